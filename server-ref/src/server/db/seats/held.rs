//! What a batch transaction knows about its licenses: their write locks and their counts of
//! held leases (migration 0007), kept in step with the leases the batch grants and releases.

use sqlx::AnyConnection;

use super::super::leases::OwnedCheckOut;
use super::super::{DbResult, Engine};
use super::grants::MAX_TOGETHER;

/// What a batch transaction already knows about the licenses of its writes.
#[derive(Default)]
pub(super) struct Seen {
    /// The licenses this transaction holds the write lock of (PostgreSQL: their rows), in the
    /// order they were locked, with their counts of held leases.
    licenses: Vec<HeldLeases>,
    /// (license, `now`, live leases at `now`): counted once, then kept up to date by this
    /// batch's own grants (nothing else changes the license's leases while the transaction
    /// holds its lock). Reused only at the same `now`, since leases lapse as time passes.
    live: Option<(String, i64, i64)>,
}

/// A license's `leases_held` (migration 0007) as this transaction sees it.
struct HeldLeases {
    license_id: String,
    /// Its own changes included.
    held: i64,
    /// Its own changes not written to the row yet (written once, before the commit, by
    /// [`Seen::write_held`]; on PostgreSQL leases granted together are counted by their
    /// insert's statement and never show here).
    unwritten: i64,
    /// Its leases changed since this transaction last wrote its row, even if `unwritten` is 0
    /// (a lease taken and another released): the row is written anyway, so that a newer row
    /// version tells every lease change of the license apart ([`grant_in_one_statement`]).
    row_behind: bool,
    /// The license's lease timeout, in seconds.
    lease_timeout: i64,
}

impl Seen {
    fn license(&self, license_id: &str) -> Option<&HeldLeases> {
        self.licenses.iter().find(|l| l.license_id == license_id)
    }

    /// Locks `license_id`'s row until the commit (PostgreSQL; SQLite's `BEGIN IMMEDIATE`
    /// already holds the one write lock) and reads its count of held leases, unless this
    /// transaction holds it already. Every change of that count happens under this lock.
    /// Licenses are locked in the batch's order (by id, bytewise), and before any lease row of
    /// theirs (force-release and the reaper lock one license first too), so two replicas
    /// never wait on each other in a cycle.
    pub(super) async fn hold(
        &mut self,
        conn: &mut AnyConnection,
        engine: Engine,
        license_id: &str,
    ) -> DbResult<()> {
        self.hold_all(conn, engine, &[license_id]).await
    }

    /// [`Seen::hold`] for each of `license_ids` (sorted like the batch), in one statement.
    pub(super) async fn hold_all(
        &mut self,
        conn: &mut AnyConnection,
        engine: Engine,
        license_ids: &[&str],
    ) -> DbResult<()> {
        let new: Vec<&str> = license_ids
            .iter()
            .copied()
            .filter(|id| self.license(id).is_none())
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        let ids = (1..=new.len())
            .map(|n| format!("${n}"))
            .collect::<Vec<_>>()
            .join(", ");
        // PostgreSQL locks the rows in the ORDER BY's order, bytewise like the batch's sort.
        let sql = match engine {
            Engine::Sqlite => {
                format!("SELECT id, leases_held, lease_timeout FROM licenses WHERE id IN ({ids})")
            }
            Engine::Postgres => format!(
                "SELECT id, leases_held, lease_timeout FROM licenses WHERE id IN ({ids}) \
                 ORDER BY id COLLATE \"C\" FOR UPDATE"
            ),
        };
        let mut query = sqlx::query_as::<_, (String, i64, i64)>(sqlx::AssertSqlSafe(sql));
        for id in &new {
            query = query.bind(*id);
        }
        let rows = query.fetch_all(&mut *conn).await?;
        for id in new {
            // No such license: no lease is written for it (a lease's license must exist).
            let (held, lease_timeout) = rows
                .iter()
                .find(|(row, _, _)| row == id)
                .map_or((0, 0), |(_, held, timeout)| (*held, *timeout));
            self.licenses.push(HeldLeases {
                license_id: id.to_owned(),
                held,
                unwritten: 0,
                row_behind: false,
                lease_timeout,
            });
        }
        Ok(())
    }

    /// The held leases of `license_id` (passed to [`Seen::hold`] before).
    pub(super) fn held(&self, license_id: &str) -> i64 {
        self.license(license_id).map_or(0, |license| license.held)
    }

    /// The lease timeout of `license_id` (passed to [`Seen::hold`] before).
    pub(super) fn lease_timeout(&self, license_id: &str) -> i64 {
        self.license(license_id)
            .map_or(0, |license| license.lease_timeout)
    }

    fn license_mut(&mut self, license_id: &str) -> Option<&mut HeldLeases> {
        self.licenses
            .iter_mut()
            .find(|l| l.license_id == license_id)
    }

    /// This transaction took (`+1`) or released (`-1`) a lease of `license_id` (passed to
    /// [`Seen::hold`] before).
    pub(super) fn held_changed(&mut self, license_id: &str, by: i64) {
        if let Some(license) = self.license_mut(license_id) {
            license.held = license.held.saturating_add(by);
            license.unwritten = license.unwritten.saturating_add(by);
            license.row_behind = true;
        }
    }

    /// `by` of this transaction's changes of `license_id`'s count were written to its row,
    /// after every lease change so far.
    pub(super) fn held_written(&mut self, license_id: &str, by: i64) {
        if let Some(license) = self.license_mut(license_id) {
            license.unwritten = license.unwritten.saturating_sub(by);
            license.row_behind = license.unwritten != 0;
        }
    }

    /// Writes this transaction's changes of the counts, before the commit: one statement for
    /// up to [`MAX_TOGETHER`] licenses. Every license whose leases changed gets its row
    /// written, even by 0.
    pub(super) async fn write_held(&mut self, conn: &mut AnyConnection) -> DbResult<()> {
        let changed: Vec<&HeldLeases> = self
            .licenses
            .iter()
            .filter(|license| license.row_behind)
            .collect();
        for chunk in changed.chunks(MAX_TOGETHER) {
            let cases = (0..chunk.len())
                .map(|index| format!("WHEN ${} THEN ${}", 1 + index * 2, 2 + index * 2))
                .collect::<Vec<_>>()
                .join(" ");
            let ids = (0..chunk.len())
                .map(|index| format!("${}", 1 + index * 2))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "UPDATE licenses SET leases_held = leases_held + CASE id {cases} END \
                 WHERE id IN ({ids})"
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for license in chunk {
                query = query.bind(&license.license_id).bind(license.unwritten);
            }
            let done = query.execute(&mut *conn).await?;
            counts_written(done.rows_affected(), chunk.len())?;
        }
        for license in &mut self.licenses {
            license.unwritten = 0;
            license.row_behind = false;
        }
        Ok(())
    }

    /// The live leases of `c`'s license at `c.now` (counted once per license and `now`).
    pub(super) async fn live(
        &mut self,
        conn: &mut AnyConnection,
        c: &OwnedCheckOut,
    ) -> DbResult<i64> {
        if let Some((license, now, live)) = &self.live
            && *license == c.license_id
            && *now == c.now
        {
            return Ok(*live);
        }
        let live: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM leases WHERE license_id = $1 AND released_at IS NULL \
             AND expires_at > $2",
        )
        .bind(&c.license_id)
        .bind(c.now)
        .fetch_one(&mut *conn)
        .await?;
        self.live = Some((c.license_id.clone(), c.now, live));
        Ok(live)
    }

    /// This transaction granted a seat of `c`'s license; `counted`: the license row's count
    /// already says so (written by the grant's own statement).
    pub(super) fn granted(&mut self, c: &OwnedCheckOut, counted: bool) {
        self.held_changed(&c.license_id, 1);
        if counted {
            self.held_written(&c.license_id, 1);
        }
        if let Some((license, now, live)) = &mut self.live
            && *license == c.license_id
            && *now == c.now
        {
            *live = live.saturating_add(1);
        }
    }
}

/// Checks that a statement changing the counts of held leases of `licenses` licenses changed
/// that many rows. Every license of a batch exists (it was locked, and its lease inserted or
/// released); a row missing would leave a count wrong, so the batch fails instead (and runs
/// again one by one).
pub(super) fn counts_written(updated: u64, licenses: usize) -> DbResult<()> {
    if updated == licenses as u64 {
        return Ok(());
    }
    Err(sqlx::Error::Protocol(format!(
        "held-lease counts: {updated} of {licenses} licenses updated"
    )))
}

#[cfg(test)]
mod counts_written_tests {
    use super::counts_written;

    #[test]
    pub(super) fn a_count_statement_that_missed_a_license_fails_the_batch() {
        assert!(counts_written(3, 3).is_ok());
        let error = counts_written(2, 3).map_err(|e| e.to_string());
        assert!(
            matches!(&error, Err(message) if message.contains("held-lease counts: 2 of 3 licenses updated")),
            "{error:?}"
        );
        assert!(counts_written(4, 3).is_err());
    }
}
