//! Plain check-outs of a batch granted together: by a few statements inside the batch
//! transaction ([`grant_together`]) or, on PostgreSQL, by one autocommit statement
//! ([`grant_in_one_statement`]).

use sqlx::AnyConnection;

use super::super::leases::{LeaseRow, OwnedCheckOut};
use super::super::{DbResult, Engine};
use super::held::{Seen, counts_written};
#[cfg(test)]
use super::test_support::{
    GRANTED_IN_ONE_STATEMENT, GRANTED_TOGETHER, REFUSED_IN_ONE_STATEMENT,
    TRANSACTION_ONLY_FOR_TESTS,
};
use super::writer::{Job, Pools, Write};

/// At most this many check-outs (or licenses) go into one statement, so that a connection
/// prepares at most this many shapes of each statement built by [`grant_together`],
/// [`grant_in_one_statement`] and [`Seen::write_held`] (about 80 in all; sqlx keeps 100 per
/// connection).
pub(super) const MAX_TOGETHER: usize = 16;

/// The plain check-outs (no borrowing, no wait line) at the head of `jobs`, at most
/// [`MAX_TOGETHER`]; sorted by license, like the batch.
pub(super) fn plain_check_outs(jobs: &[Job]) -> Vec<&OwnedCheckOut> {
    jobs.iter()
        .take(MAX_TOGETHER)
        .map_while(|job| match &job.write {
            Write::CheckOut(c)
                if c.borrow.is_none() && c.queue.is_none() && c.presented_hash.is_none() =>
            {
                Some(c)
            }
            _ => None,
        })
        .collect()
}

/// Whether the check-out at `index` of `run` repeats one before it (the same license, client
/// and request id): it must see that one's lease, so no statement granting them together may
/// decide it. (The same client and user with another request id is another instance of the
/// app, which takes a seat of its own.)
fn repeats_one_before(run: &[&OwnedCheckOut], index: usize) -> bool {
    let Some(c) = run.get(index) else {
        return false;
    };
    run.iter().take(index).any(|before| {
        before.license_id == c.license_id
            && before.client_id == c.client_id
            && before.request_id == c.request_id
    })
}

/// The end of a PostgreSQL statement whose data-modifying `granted` CTE inserts leases: adds
/// them to their licenses' counts, and returns every lease with `counted`, how many license
/// rows changed. The increments are counted from the rows inserted, so the text depends on
/// nothing else and cannot disagree with them.
const COUNT_GRANTED: &str = "counted AS (UPDATE licenses SET leases_held = leases_held + \
     g.leases FROM (SELECT license_id, COUNT(*) AS leases FROM granted GROUP BY license_id) g \
     WHERE licenses.id = g.license_id RETURNING licenses.id) \
     SELECT granted.*, (SELECT COUNT(*) FROM counted) AS counted FROM granted";

/// The licenses of `check_outs` (sorted by license), each once.
pub(super) fn licenses_of<'a>(check_outs: &[&'a OwnedCheckOut]) -> Vec<&'a str> {
    let mut licenses: Vec<&str> = check_outs.iter().map(|c| c.license_id.as_str()).collect();
    licenses.dedup();
    licenses
}

/// The leases a statement inserted for `granted` (one row each), in the order of `granted`.
/// `counted`: the statement ends with [`COUNT_GRANTED`], whose count of license rows changed
/// is checked against the licenses of `granted`.
fn leases_returned(
    rows: &[sqlx::any::AnyRow],
    granted: &[&OwnedCheckOut],
    counted: bool,
) -> DbResult<Vec<LeaseRow>> {
    if rows.len() != granted.len() {
        return Err(sqlx::Error::Protocol(format!(
            "a grant inserted {} leases for {} check-outs",
            rows.len(),
            granted.len()
        )));
    }
    if counted && let Some(row) = rows.first() {
        use sqlx::Row as _;
        let changed: i64 = row.try_get("counted")?;
        counts_written(
            u64::try_from(changed).unwrap_or(0),
            licenses_of(granted).len(),
        )?;
    }
    let mut inserted = rows
        .iter()
        .map(<LeaseRow as sqlx::FromRow<'_, sqlx::any::AnyRow>>::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    granted
        .iter()
        .map(|c| {
            // RETURNING's row order is not promised: matched by id.
            let at = inserted
                .iter()
                .position(|lease| lease.id == c.lease_id)
                .ok_or(sqlx::Error::RowNotFound)?;
            Ok(inserted.swap_remove(at))
        })
        .collect()
}

/// Grants check-outs of `run` (plain check-outs, sorted by license, in queue order within a
/// license) with three statements whatever their number: the licenses locked, one lookup, one
/// insert of every lease. On PostgreSQL the insert's statement also adds the leases to their
/// licenses' counts; on SQLite [`Seen::write_held`] writes them with the batch's other
/// changes, before the commit. Of each
/// license's check-outs, the leading ones are granted that are not retries, hold no live lease
/// for their client and user yet, repeat none before them and find a seat free for certain
/// (from the count of held leases): each is what one by one would do, since each would find no
/// lease of its own and a free seat, and check-outs of different licenses never see one
/// another. Returns, for each check-out of `run`, its lease if granted; the caller writes the
/// others one by one.
pub(super) async fn grant_together(
    conn: &mut AnyConnection,
    engine: Engine,
    seen: &mut Seen,
    run: &[&OwnedCheckOut],
) -> DbResult<Vec<Option<LeaseRow>>> {
    seen.hold_all(conn, engine, &licenses_of(run)).await?;
    // Each check-out's own lookup (the one in `check_out`: its request id's lease), joined by
    // UNION ALL into one statement. Each part keeps equalities on the license and client, so
    // the planner takes the unique index for each, whatever its statistics say (one
    // `client_id IN (...)` lookup was planned as a scan of every live lease of the license on
    // a table that grew fast). Only placeholders are formatted into the SQL; every value is
    // bound.
    let lookup = (0..run.len())
        .map(|index| {
            let p = 1 + index * 3;
            format!(
                "SELECT * FROM leases WHERE license_id = ${} AND client_id = ${} AND \
                 (request_id = ${} OR id IN (SELECT lease_id FROM lease_requests \
                 WHERE license_id = ${} AND client_id = ${} AND request_id = ${}))",
                p,
                p + 1,
                p + 2,
                p,
                p + 1,
                p + 2
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let mut query = sqlx::query_as::<_, LeaseRow>(sqlx::AssertSqlSafe(lookup));
    for c in run {
        query = query
            .bind(&c.license_id)
            .bind(&c.client_id)
            .bind(&c.request_id);
    }
    let found = query.fetch_all(&mut *conn).await?;
    let mut granting: Vec<&OwnedCheckOut> = Vec::new();
    // The license whose leading check-outs met one that goes one by one.
    let mut stopped: Option<&str> = None;
    for (index, c) in run.iter().enumerate() {
        if stopped == Some(c.license_id.as_str()) {
            continue;
        }
        // Found for this check-out's request id (or, rarely, for another check-out of the
        // run by the same client, which one by one then decides exactly).
        let own = found
            .iter()
            .any(|lease| lease.license_id == c.license_id && lease.client_id == c.client_id);
        let repeat = repeats_one_before(run, index);
        let before = granting
            .iter()
            .filter(|g| g.license_id == c.license_id)
            .count();
        let held = seen
            .held(&c.license_id)
            .saturating_add(i64::try_from(before).unwrap_or(i64::MAX));
        if own || repeat || c.seats.saturating_sub(held) <= 0 {
            stopped = Some(c.license_id.as_str());
        } else {
            granting.push(c);
        }
    }
    if granting.is_empty() {
        return Ok(vec![None; run.len()]);
    }
    let rows = (0..granting.len())
        .map(|index| {
            let p = 1 + index * 9;
            format!(
                "(${}, ${}, ${}, ${}, ${}, 1, ${}, ${}, ${}, 0, ${}, ${})",
                p,
                p + 1,
                p + 2,
                p + 3,
                p + 4,
                p + 5,
                p + 5,
                p + 6,
                p + 7,
                p + 8
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let insert = format!(
        "INSERT INTO leases (id, license_id, client_id, user_name, request_id, epoch, \
         created_at, heartbeat_at, expires_at, borrowed, secret_hash, user_id) VALUES {rows} \
         RETURNING *"
    );
    // PostgreSQL: the licenses' counts change in the insert's own statement
    // ([`COUNT_GRANTED`]), one round trip fewer per batch; its text depends on the number of
    // leases only (at most [`MAX_TOGETHER`] forms in the statement cache). SQLite has no
    // data-modifying `WITH`; its counts go with `Seen::write_held`.
    let counted_here = engine == Engine::Postgres;
    let sql = if counted_here {
        format!("WITH granted AS ({insert}), {COUNT_GRANTED}")
    } else {
        insert
    };
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for c in &granting {
        query = query
            .bind(&c.lease_id)
            .bind(&c.license_id)
            .bind(&c.client_id)
            .bind(&c.user)
            .bind(&c.request_id)
            .bind(c.now)
            .bind(c.now.saturating_add(seen.lease_timeout(&c.license_id)))
            .bind(&c.secret_hash)
            .bind(&c.user_id);
    }
    let rows = query.fetch_all(&mut *conn).await?;
    // `granting` keeps the order of `run`.
    let mut inserted = leases_returned(&rows, &granting, counted_here)?.into_iter();
    let mut leases = Vec::with_capacity(run.len());
    for c in run {
        if !granting.iter().any(|g| std::ptr::eq(*g, *c)) {
            leases.push(None);
            continue;
        }
        leases.push(Some(inserted.next().ok_or(sqlx::Error::RowNotFound)?));
        seen.granted(c, counted_here);
    }
    #[cfg(test)]
    GRANTED_TOGETHER.record_each(&granting);
    Ok(leases)
}

/// PostgreSQL, when a batch is nothing but plain check-outs (at most [`MAX_TOGETHER`]) that
/// should all be granted: grants them with one autocommit statement, one round trip where
/// the transaction path takes four (lock, lookup, insert, commit). `None` when the
/// statement granted nothing, because one of them is a retry, already holds a lease, repeats
/// one before it or finds no seat free for certain, or because the license changed after the
/// statement's snapshot: the batch then takes the transaction path, which decides each
/// check-out (a denial is recorded there, never here).
///
/// The statement is the transaction path's three statements joined, all or nothing: it
/// locks the licenses (bytewise order, like [`Seen::hold_all`]), looks each check-out's own
/// leases up like [`grant_together`], and inserts every lease and adds them to the counts
/// only if no check-out is refused. One statement reads one snapshot, taken before its locks,
/// whereas the transaction path looks up after locking; so the statement also requires each
/// locked license row to be the very version (`ctid`) its snapshot sees. Every transaction
/// that takes or releases a lease writes its license's row (the count of held leases, even
/// when its changes add up to zero: [`Seen::write_held`]), under the row's lock; so when no
/// newer version exists, no lease was taken or released after the snapshot, and the lookup
/// saw every lease there is. The only other lease writes, heartbeats and borrowing, move the
/// expiry of a lease that is live at their own `now` and leave the license row alone: a
/// statement that does not see one answers as if it ran just before it, a serial order the
/// transaction path allows as well (heartbeats never wait for the license's lock, and each
/// request brings its own `now`).
pub(super) async fn grant_in_one_statement(
    pools: &Pools,
    run: &[&OwnedCheckOut],
) -> DbResult<Option<Vec<LeaseRow>>> {
    let repeats = (0..run.len()).any(|index| repeats_one_before(run, index));
    #[cfg(test)]
    let repeats = repeats
        || run
            .iter()
            .any(|c| c.client_id.starts_with(TRANSACTION_ONLY_FOR_TESTS));
    if repeats {
        return Ok(None);
    }
    // Only placeholders are formatted into the SQL; every value is bound.
    let asked = (0..run.len())
        .map(|index| {
            let p = 1 + index * 10;
            format!(
                "(${}::BIGINT, ${}, ${}, ${}, ${}, ${}, ${}::BIGINT, ${}::BIGINT, ${}, ${})",
                p,
                p + 1,
                p + 2,
                p + 3,
                p + 4,
                p + 5,
                p + 6,
                p + 7,
                p + 8,
                p + 9
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "WITH asked (place, id, license_id, client_id, user_name, request_id, now, seats, \
         secret_hash, user_id) AS \
         (VALUES {asked}), \
         locked AS (SELECT id, leases_held, lease_timeout, ctid FROM licenses \
         WHERE id IN (SELECT license_id FROM asked) ORDER BY id COLLATE \"C\" FOR UPDATE), \
         seen AS (SELECT id, ctid FROM licenses WHERE id IN (SELECT license_id FROM asked)), \
         ranked AS (SELECT asked.*, ROW_NUMBER() OVER (PARTITION BY license_id ORDER BY place) \
         AS nth FROM asked), \
         refused AS (SELECT 1 FROM ranked r LEFT JOIN locked l ON l.id = r.license_id \
         LEFT JOIN seen s ON s.id = r.license_id \
         WHERE l.id IS NULL OR s.ctid IS DISTINCT FROM l.ctid OR l.leases_held + r.nth > r.seats \
         OR EXISTS (SELECT 1 FROM leases WHERE license_id = r.license_id \
         AND client_id = r.client_id AND request_id = r.request_id) \
         OR EXISTS (SELECT 1 FROM lease_requests WHERE license_id = r.license_id \
         AND client_id = r.client_id AND request_id = r.request_id)), \
         granted AS (INSERT INTO leases (id, license_id, client_id, user_name, request_id, \
         epoch, created_at, heartbeat_at, expires_at, borrowed, secret_hash, user_id) \
         SELECT r.id, r.license_id, r.client_id, r.user_name, r.request_id, 1, r.now, r.now, \
         r.now + l.lease_timeout, 0, r.secret_hash, r.user_id FROM ranked r JOIN locked l ON l.id = r.license_id \
         WHERE NOT EXISTS (SELECT 1 FROM refused) RETURNING *), {COUNT_GRANTED}"
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (place, c) in run.iter().enumerate() {
        query = query
            .bind(i64::try_from(place).unwrap_or(i64::MAX))
            .bind(&c.lease_id)
            .bind(&c.license_id)
            .bind(&c.client_id)
            .bind(&c.user)
            .bind(&c.request_id)
            .bind(c.now)
            .bind(c.seats)
            .bind(&c.secret_hash)
            .bind(&c.user_id);
    }
    let mut granting = pools.granting.lock().await;
    let conn = match granting.as_mut() {
        Some(conn) => conn,
        None => granting.insert(pools.durable.acquire().await?),
    };
    let rows = match query.fetch_all(&mut **conn).await {
        Ok(rows) => rows,
        Err(error) => {
            // Nothing was written (one statement): the transaction path decides instead, and
            // reports the error if it meets it too. The connection may be the cause (e.g.
            // closed by the server while idle): the next batch takes another.
            *granting = None;
            tracing::debug!(%error, "one-statement grant failed; granting in a transaction");
            return Ok(None);
        }
    };
    drop(granting);
    if rows.is_empty() {
        #[cfg(test)]
        REFUSED_IN_ONE_STATEMENT.record_each(run);
        return Ok(None);
    }
    // Committed already, all or nothing by the statement's construction: an error here is a
    // bug, and the one-by-one rerun finds the leases by their request ids.
    let leases = leases_returned(&rows, run, true)?;
    #[cfg(test)]
    GRANTED_IN_ONE_STATEMENT.record_each(run);
    Ok(Some(leases))
}
