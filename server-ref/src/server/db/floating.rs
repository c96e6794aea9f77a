//! Floating licenses: seat leases, the per-license lease timeout, denials.
//!
//! One rule decides whether a lease holds a seat, everywhere (check-out count, heartbeat,
//! check-in, reaper): `released_at IS NULL AND now < expires_at`, on the server's clock. At the
//! exact expiry instant the lease is over: a heartbeat at that second fails and the reaper
//! releases it.

use sqlx::{AnyConnection, FromRow};

use super::leases::{
    CheckOut, CheckOutOutcome, FORCE_RELEASE_LEASE, LEASE_OF_LICENSE, LeaseRow, LeaseUpdate,
    LeaseWrite, OwnedCheckOut, QUEUE_POLL_WINDOW, QueueRow, less_held, places_held, recount_held,
    update_lease,
};
use super::{Db, DbResult, Engine};

/// Denials are kept this long (rolling): a record exactly this old stays, one second older goes.
pub(crate) const DENIAL_RETENTION_SECS: i64 = 60 * 86_400;

/// A row of `denials`.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub(crate) struct DenialRow {
    pub id: String,
    pub license_id: String,
    pub client_id: String,
    pub user_name: String,
    pub at: i64,
}

/// Denials per UTC day.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub(crate) struct DayCount {
    /// Days since the Unix epoch.
    pub utc_day: i64,
    pub denials: i64,
}

/// Whose denials a report covers.
#[derive(Debug, Clone, Copy)]
pub(crate) enum DenialScope<'a> {
    /// One license.
    License(&'a str),
    /// Every license of one organization (tenant).
    Organization(&'a str),
}

impl Db {
    /// Check-out, serialized per license: idempotent retry by request id; the same client and
    /// user keep their live lease; then grants a seat if fewer than `seats` leases are live,
    /// else records the denial. Committed before it answers (grouped with other seat writes,
    /// see `seats`), so a license never has more live leases than seats and every denial is
    /// recorded.
    ///
    /// `user_id`: the directory user `c.user` names in the license's organization (see
    /// `directory_links`), recorded in a new lease or denial.
    pub async fn check_out_linked(
        &self,
        c: &CheckOut<'_>,
        user_id: Option<&str>,
    ) -> DbResult<CheckOutOutcome> {
        let mut owned = OwnedCheckOut::from(c);
        owned.user_id = user_id.map(str::to_owned);
        self.seats.check_out(owned).await
    }

    /// [`Db::check_out_linked`] by no directory user (the tests' check-out).
    #[cfg(test)]
    pub async fn check_out(&self, c: &CheckOut<'_>) -> DbResult<CheckOutOutcome> {
        self.check_out_linked(c, None).await
    }

    /// One lease of a license.
    pub async fn get_lease(&self, license_id: &str, lease_id: &str) -> DbResult<Option<LeaseRow>> {
        sqlx::query_as(LEASE_OF_LICENSE)
            .bind(lease_id)
            .bind(license_id)
            .fetch_optional(&self.pool)
            .await
    }

    /// Heartbeat: extends a live lease presenting its current epoch and `secret` (the SHA-256
    /// hex of its secret) to `now` + the license's
    /// timeout (a borrowed lease keeps its expiry). One conditional `UPDATE`, so it and the reaper (or a force-release) cannot
    /// both win: at `now == expires_at` the lease is over and the heartbeat fails.
    ///
    /// A heartbeat's loss at a power cut only ends its lease earlier (the client re-acquires
    /// with its request id), so it commits without waiting for the disk (see `Db::relaxed`):
    /// on SQLite in a batch of heartbeats (see `seats`), on PostgreSQL alone, concurrently.
    /// Check-outs and check-ins stay fully durable.
    pub async fn heartbeat(
        &self,
        license_id: &str,
        lease_id: &str,
        epoch: i64,
        secret: Option<&str>,
        now: i64,
    ) -> DbResult<LeaseUpdate> {
        match self.engine {
            Engine::Sqlite => {
                self.seats
                    .lease(
                        LeaseWrite::Heartbeat,
                        license_id,
                        lease_id,
                        epoch,
                        secret,
                        now,
                    )
                    .await
            }
            Engine::Postgres => {
                let mut conn = self.relaxed.acquire().await?;
                update_lease(
                    &mut conn,
                    LeaseWrite::Heartbeat,
                    license_id,
                    lease_id,
                    epoch,
                    secret,
                    now,
                )
                .await
            }
        }
    }

    /// Check-in by the holder (presenting the lease's epoch and `secret`, the SHA-256 hex of
    /// its secret): frees the seat at once.
    pub async fn check_in(
        &self,
        license_id: &str,
        lease_id: &str,
        epoch: i64,
        secret: Option<&str>,
        now: i64,
    ) -> DbResult<LeaseUpdate> {
        self.seats
            .lease(
                LeaseWrite::CheckIn,
                license_id,
                lease_id,
                epoch,
                secret,
                now,
            )
            .await
    }

    /// Force-release by an administrator: the seat is free at once and the epoch moves on, so
    /// the old holder's next heartbeat is refused (fencing). `None`: no such lease. A borrowed
    /// lease is left as it is (its holder may be offline with a token valid until its
    /// expiry, so freeing the seat would let one more user in than the license has seats): the
    /// caller sees it still live and borrowed.
    pub async fn force_release(
        &self,
        license_id: &str,
        lease_id: &str,
        now: i64,
    ) -> DbResult<Option<LeaseRow>> {
        let mut tx = self.begin_license_write(license_id).await?;
        let released = sqlx::query(FORCE_RELEASE_LEASE)
            .bind(now)
            .bind(lease_id)
            .bind(license_id)
            .execute(&mut *tx)
            .await?;
        less_held(&mut tx, license_id, released.rows_affected()).await?;
        tx.commit().await?;
        self.get_lease(license_id, lease_id).await
    }

    /// The live leases of a license at `now`, oldest first.
    pub async fn live_leases(&self, license_id: &str, now: i64) -> DbResult<Vec<LeaseRow>> {
        sqlx::query_as(
            "SELECT * FROM leases WHERE license_id = $1 AND released_at IS NULL \
             AND expires_at > $2 ORDER BY created_at, id",
        )
        .bind(license_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await
    }

    /// Releases every lease lapsed at `now` (server clock); returns how many.
    ///
    ///
    /// Each license's leases are released under its write lock (like a check-out), and its
    /// count of held leases is then counted afresh rather than lowered, so a count that
    /// drifted (a database edited by hand, or an older replica still running, which never
    /// keeps the count: stop every replica before starting this version) heals at the
    /// license's next lapse. PostgreSQL: one transaction per license, so a check-out waits for
    /// one license's reaping at most, and a license that fails is logged and skipped.
    /// SQLite: one transaction for all, since any write there takes the one write lock.
    pub async fn reap_expired_leases(&self, now: i64) -> DbResult<u64> {
        let licenses: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT license_id FROM leases WHERE released_at IS NULL \
             AND expires_at <= $1 ORDER BY license_id",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        let mut reaped = 0_u64;
        match self.engine {
            Engine::Sqlite => {
                if licenses.is_empty() {
                    return Ok(0);
                }
                let mut tx = self.begin_license_write("").await?;
                for license_id in &licenses {
                    reaped = reaped.saturating_add(reap_license(&mut tx, license_id, now).await?);
                }
                tx.commit().await?;
            }
            Engine::Postgres => {
                for license_id in &licenses {
                    let reaping = async {
                        let mut tx = self.begin_license_write(license_id).await?;
                        let done = reap_license(&mut tx, license_id, now).await?;
                        tx.commit().await?;
                        DbResult::Ok(done)
                    };
                    match reaping.await {
                        Ok(done) => reaped = reaped.saturating_add(done),
                        Err(error) => {
                            tracing::warn!(%error, license_id, "reaping a license's leases failed; the next run tries again");
                        }
                    }
                }
            }
        }
        Ok(reaped)
    }

    /// Gives up the places in line whose clients stopped asking (for the poll window) by
    /// `now`; returns how many. A place whose wait ran out while its client still asks is left
    /// to that client's next ask, which answers that the wait is over (a place deleted before
    /// would make that ask start a new wait instead).
    pub async fn reap_queue(&self, now: i64) -> DbResult<u64> {
        let done = sqlx::query("DELETE FROM seat_queue WHERE polled_at <= $1")
            .bind(now.saturating_sub(QUEUE_POLL_WINDOW))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// The places in line of a license held at `now`, head first.
    pub async fn waiting(&self, license_id: &str, now: i64) -> DbResult<Vec<QueueRow>> {
        places_held(&mut *self.pool.acquire().await?, license_id, now).await
    }

    /// Gives up the place `place_id` in the line of a license (its client stopped waiting);
    /// whether there was one.
    pub async fn leave_queue(&self, license_id: &str, place_id: &str) -> DbResult<bool> {
        let done = sqlx::query("DELETE FROM seat_queue WHERE id = $1 AND license_id = $2")
            .bind(place_id)
            .bind(license_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Sets the longest wait in line of a floating license (0: no line, and its places are
    /// given up; bounds checked by the caller and the schema). Places taken already keep their
    /// end.
    pub async fn set_queue(&self, license_id: &str, max_seconds: i64, now: i64) -> DbResult<()> {
        let _forget = self.licenses.clear_on_drop();
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE licenses SET queue_max_seconds = $1, updated_at = $2 WHERE id = $3")
            .bind(max_seconds)
            .bind(now)
            .bind(license_id)
            .execute(&mut *tx)
            .await?;
        if max_seconds == 0 {
            // No line any more: its places go, so a line set again later starts empty (a
            // place kept from before would stand ahead of everyone).
            sqlx::query("DELETE FROM seat_queue WHERE license_id = $1")
                .bind(license_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }

    /// Deletes denials older than their organization's retention at `now` (its
    /// `denial_days`, else [`DENIAL_RETENTION_SECS`]); returns how many.
    pub async fn purge_denials(&self, now: i64) -> DbResult<u64> {
        let done = sqlx::query(
            "DELETE FROM denials WHERE at < $1 AND license_id NOT IN (SELECT l.id FROM \
             licenses l JOIN retention_policies r ON r.organization_id = l.organization_id)",
        )
        .bind(now.saturating_sub(DENIAL_RETENTION_SECS))
        .execute(&self.pool)
        .await?;
        let mut purged = done.rows_affected();
        for policy in self.list_retention().await? {
            let done = sqlx::query(
                "DELETE FROM denials WHERE at < $1 \
                 AND license_id IN (SELECT id FROM licenses WHERE organization_id = $2)",
            )
            .bind(now.saturating_sub(policy.denial_days.saturating_mul(86_400)))
            .bind(&policy.organization_id)
            .execute(&self.pool)
            .await?;
            purged = purged.saturating_add(done.rows_affected());
        }
        Ok(purged)
    }

    /// Sets the lease timeout of a license (bounds checked by the caller and the schema).
    pub async fn set_lease_timeout(
        &self,
        license_id: &str,
        seconds: i64,
        now: i64,
    ) -> DbResult<()> {
        let _forget = self.licenses.clear_on_drop();
        sqlx::query("UPDATE licenses SET lease_timeout = $1, updated_at = $2 WHERE id = $3")
            .bind(seconds)
            .bind(now)
            .bind(license_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Sets how a floating license may be borrowed (bounds checked by the caller and the
    /// schema): the longest borrowing in seconds (0: none) and the most leases borrowed at once.
    /// Leases borrowed already keep their expiry.
    pub async fn set_borrowing(
        &self,
        license_id: &str,
        max_seconds: i64,
        max_leases: i64,
        now: i64,
    ) -> DbResult<()> {
        let _forget = self.licenses.clear_on_drop();
        sqlx::query(
            "UPDATE licenses SET borrow_max_seconds = $1, borrow_max_leases = $2, \
             updated_at = $3 WHERE id = $4",
        )
        .bind(max_seconds)
        .bind(max_leases)
        .bind(now)
        .bind(license_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Denials in `[from, to)`, newest first, at most `limit`; of one license or of one
    /// organization's licenses.
    pub async fn list_denials(
        &self,
        scope: DenialScope<'_>,
        from: i64,
        to: i64,
        limit: i64,
    ) -> DbResult<Vec<DenialRow>> {
        // Two statements rather than `$1 IS NULL OR ...`: PostgreSQL cannot always type an
        // untyped NULL parameter.
        let query = match scope {
            DenialScope::License(id) => sqlx::query_as(
                "SELECT * FROM denials WHERE license_id = $1 AND at >= $2 AND at < $3 \
                 ORDER BY at DESC, id LIMIT $4",
            )
            .bind(id),
            // From the period's denials, each checked against its license's organization
            // (indexes `denials_at_license` and `licenses_id_organization`, migration 0021),
            // not from each of the organization's licenses (100 000 index lookups at scale).
            // `CROSS JOIN` keeps SQLite's loops in that order; PostgreSQL plans it as a join.
            DenialScope::Organization(org) => sqlx::query_as(
                "SELECT d.* FROM denials d CROSS JOIN licenses c \
                 WHERE c.id = d.license_id AND c.organization_id = $1 \
                 AND d.at >= $2 AND d.at < $3 ORDER BY d.at DESC, d.id LIMIT $4",
            )
            .bind(org),
        };
        query
            .bind(from)
            .bind(to)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
    }

    /// Denials in `[from, to)` per UTC day; of one license or of one organization's licenses.
    pub async fn denials_per_day(
        &self,
        scope: DenialScope<'_>,
        from: i64,
        to: i64,
    ) -> DbResult<Vec<DayCount>> {
        let query = match scope {
            DenialScope::License(id) => sqlx::query_as(
                "SELECT at / 86400 AS utc_day, COUNT(*) AS denials FROM denials \
                 WHERE license_id = $1 AND at >= $2 AND at < $3 GROUP BY at / 86400 ORDER BY utc_day",
            )
            .bind(id),
            // As in `list_denials`: from the period's denials.
            DenialScope::Organization(org) => sqlx::query_as(
                "SELECT d.at / 86400 AS utc_day, COUNT(*) AS denials \
                 FROM denials d CROSS JOIN licenses c \
                 WHERE c.id = d.license_id AND c.organization_id = $1 \
                 AND d.at >= $2 AND d.at < $3 GROUP BY d.at / 86400 ORDER BY utc_day",
            )
            .bind(org),
        };
        query.bind(from).bind(to).fetch_all(&self.pool).await
    }
}

/// Releases the leases of `license_id` lapsed at `now` and counts its held leases afresh, in a
/// transaction holding the license's write lock; returns how many were released.
async fn reap_license(tx: &mut AnyConnection, license_id: &str, now: i64) -> DbResult<u64> {
    let done = sqlx::query(
        "UPDATE leases SET released_at = expires_at, release_reason = 'expired' \
         WHERE license_id = $1 AND released_at IS NULL AND expires_at <= $2",
    )
    .bind(license_id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    recount_held(tx, license_id).await?;
    Ok(done.rows_affected())
}
