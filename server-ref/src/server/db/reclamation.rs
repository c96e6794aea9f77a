//! Inactivity reclamation (issue 22): the seat assignments that may be idle, with what their
//! last use is computed from, the reclamation of one of them, a license's threshold, and the
//! recent reclamations the compliance alerts report. SQL only: whether an assignment is idle
//! is decided by `server::reclamation::idle`.

use sqlx::FromRow;

use super::{Db, DbResult, Tx};

/// An active user or device assignment of an active license that has a reclamation threshold
/// (its own or its policy's), and the facts its last use is computed from.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct IdleCandidate {
    /// The assignment's id.
    pub id: String,
    pub organization_id: String,
    pub license_id: String,
    /// `user` or `device` (department assignments are a quota, never reclaimed).
    pub assignee_kind: String,
    pub assignee_id: String,
    /// The directory user's name (`user`) or the machine's fingerprint id (`device`).
    pub assignee_name: Option<String>,
    /// When it was assigned (or last changed to active).
    pub created_at: i64,
    /// The last validation, activation or check-out the seat recorded.
    pub last_used_at: Option<i64>,
    /// The license's threshold, seconds (overrides the policy's when set).
    pub license_reclaim_after: Option<i64>,
    /// The policy's threshold, seconds.
    pub policy_reclaim_after: Option<i64>,
    /// `user`: the latest check-out or heartbeat of the user's leases on the license.
    pub lease_used_at: Option<i64>,
    /// `user`: the user's leases on the license live at the time asked.
    pub live_leases: i64,
    /// `device`: the machine's last validation; `user`: the latest of the user's machines on
    /// the license.
    pub machine_seen_at: Option<i64>,
}

/// Reclamations of one license since a time (the compliance alert `seat_reclaimed`).
#[derive(Debug, Clone, FromRow)]
pub(crate) struct ReclaimedSeats {
    pub license_id: String,
    pub product_id: String,
    /// Assignments reclaimed for inactivity in the window (and not re-granted since).
    pub n: i64,
    /// The last one's `reclaimed_at`.
    pub last_at: i64,
}

/// Which candidates a statement looks at: the whole database (the background job),
/// an organization's or one license's (previews, a run on demand).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scope<'a> {
    /// Every organization.
    All,
    /// One organization.
    Organization(&'a str),
    /// One license (of the organization already checked by the caller).
    License(&'a str),
}

/// The columns of an [`IdleCandidate`] (`$2`: now, for live leases), from the assignments
/// joined to their licenses and policies (by the `WHERE` clauses below). `CROSS JOIN` keeps
/// the assignments the outer loop in SQLite (it never reorders a `CROSS JOIN`), so the
/// candidates are read from their index once, not once per license; PostgreSQL plans it as
/// any inner join. A macro so that the statements below stay string literals.
macro_rules! candidate_columns {
    () => {
        "SELECT a.id AS id, a.organization_id, a.license_id, a.assignee_kind, a.assignee_id, \
         CASE WHEN a.assignee_kind = 'user' THEN \
           (SELECT u.user_name FROM directory_users u \
            WHERE u.id = a.assignee_id AND u.organization_id = a.organization_id) \
         ELSE (SELECT m.fingerprint FROM machines m \
               WHERE m.id = a.assignee_id AND m.license_id = a.license_id) END AS assignee_name, \
         a.created_at, a.last_used_at, \
         l.reclaim_after AS license_reclaim_after, p.reclaim_after AS policy_reclaim_after, \
         (SELECT MAX(CASE WHEN s.heartbeat_at > s.created_at THEN s.heartbeat_at \
                     ELSE s.created_at END) FROM leases s \
          WHERE a.assignee_kind = 'user' AND s.user_id = a.assignee_id \
            AND s.license_id = a.license_id) AS lease_used_at, \
         (SELECT COUNT(*) FROM leases s \
          WHERE a.assignee_kind = 'user' AND s.user_id = a.assignee_id \
            AND s.license_id = a.license_id \
            AND s.released_at IS NULL AND s.expires_at > $2) AS live_leases, \
         CASE WHEN a.assignee_kind = 'device' THEN \
           (SELECT m.last_seen_at FROM machines m \
            WHERE m.id = a.assignee_id AND m.license_id = a.license_id) \
         ELSE (SELECT MAX(m.last_seen_at) FROM machines m \
               WHERE m.user_id = a.assignee_id AND m.license_id = a.license_id) \
         END AS machine_seen_at \
         FROM seat_assignments a CROSS JOIN licenses l CROSS JOIN policies p "
    };
}

/// What every candidate meets besides the index range: active, a user's or a device's, on an
/// active license with a threshold, its recorded use (`last_used_at`, else `created_at`) at
/// least that threshold before `$2` (a necessary condition of `reclamation::idle`, which
/// decides; it keeps the pages to the seats that are nearly all idle, not every seat unused
/// for a day), in the scope (`$3` organization, `$4` license, NULL for any), after the page's
/// last id (`$5`).
macro_rules! candidate_filter {
    () => {
        " AND l.id = a.license_id AND p.id = l.policy_id \
          AND a.assignee_kind IN ('user', 'device') AND l.status = 'active' \
          AND (l.reclaim_after IS NOT NULL OR p.reclaim_after IS NOT NULL) \
          AND COALESCE(a.last_used_at, a.created_at) \
              <= $2 - COALESCE(l.reclaim_after, p.reclaim_after) \
          AND ($3 IS NULL OR a.organization_id = $3) AND ($4 IS NULL OR a.license_id = $4) \
          AND a.id > $5"
    };
}

/// One page of candidates whose recorded use (`last_used_at`, else `created_at`) is at or
/// before `$1` (now less the shortest threshold: a day, or a shorter one stored), by id. Two branches, so each reads the index `seat_assignments_idle (state,
/// last_used_at)` by a range: used seats up to the cut-off, and never-used ones.
const CANDIDATES: &str = concat!(
    candidate_columns!(),
    "WHERE a.state = 'active' AND a.last_used_at <= $1",
    candidate_filter!(),
    " UNION ALL ",
    candidate_columns!(),
    "WHERE a.state = 'active' AND a.last_used_at IS NULL AND a.created_at <= $1",
    candidate_filter!(),
    " ORDER BY id LIMIT $6"
);

/// One assignment as a candidate (`$1`: its id, `$2`: now), read again inside the
/// reclamation's transaction.
const CANDIDATE_BY_ID: &str = concat!(
    candidate_columns!(),
    "WHERE a.id = $1 AND l.id = a.license_id AND p.id = l.policy_id AND a.state = 'active' \
     AND a.assignee_kind IN ('user', 'device') AND l.status = 'active'"
);

/// Reclaims an active assignment for inactivity, unless it was used (or changed) since it was
/// read: `$3` is the `last_used_at` read (-1 for none), `$4` its assignee.
const RECLAIM: &str = "UPDATE seat_assignments SET state = 'reclaimed', \
     reclaim_reason = 'inactive', reclaimed_at = $1, updated_at = $1 \
     WHERE id = $2 AND state = 'active' AND COALESCE(last_used_at, -1) = $3 \
     AND assignee_id = $4";

impl Db {
    /// Up to `limit` candidates in `scope` whose recorded use is at or before `cutoff`, with
    /// ids after `after` (`""` for the first page), by id; live leases counted at `now`.
    pub async fn idle_candidates(
        &self,
        scope: Scope<'_>,
        cutoff: i64,
        now: i64,
        after: &str,
        limit: i64,
    ) -> DbResult<Vec<IdleCandidate>> {
        let (organization, license) = match scope {
            Scope::All => (None, None),
            Scope::Organization(org) => (Some(org), None),
            Scope::License(license) => (None, Some(license)),
        };
        sqlx::query_as(CANDIDATES)
            .bind(cutoff)
            .bind(now)
            .bind(organization)
            .bind(license)
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
    }

    /// The shortest threshold stored on any license or policy (`None`: none is set).
    pub async fn shortest_reclaim_after(&self) -> DbResult<Option<i64>> {
        sqlx::query_scalar(
            "SELECT MIN(t) FROM (\
             SELECT MIN(reclaim_after) AS t FROM licenses WHERE reclaim_after IS NOT NULL \
             UNION ALL \
             SELECT MIN(reclaim_after) AS t FROM policies WHERE reclaim_after IS NOT NULL) x",
        )
        .fetch_one(&self.pool)
        .await
    }

    /// The recent reclamations for inactivity of the organization's licenses: those since
    /// `since` whose assignment is still reclaimed, per license.
    pub async fn reclaimed_since(
        &self,
        organization_id: &str,
        since: i64,
    ) -> DbResult<Vec<ReclaimedSeats>> {
        sqlx::query_as(
            "SELECT a.license_id, l.product_id, COUNT(*) AS n, MAX(a.reclaimed_at) AS last_at \
             FROM seat_assignments a JOIN licenses l ON l.id = a.license_id \
             WHERE a.state = 'reclaimed' AND a.organization_id = $1 \
             AND a.reclaim_reason = 'inactive' AND a.reclaimed_at >= $2 \
             GROUP BY a.license_id, l.product_id ORDER BY a.license_id",
        )
        .bind(organization_id)
        .bind(since)
        .fetch_all(&self.pool)
        .await
    }

    /// A license's own threshold and its policy's: `None` when the license is not in the
    /// organization.
    pub async fn reclaim_thresholds(
        &self,
        organization_id: &str,
        license_id: &str,
    ) -> DbResult<Option<(Option<i64>, Option<i64>)>> {
        sqlx::query_as(
            "SELECT l.reclaim_after, p.reclaim_after FROM licenses l \
             JOIN policies p ON p.id = l.policy_id WHERE l.id = $1 AND l.organization_id = $2",
        )
        .bind(license_id)
        .bind(organization_id)
        .fetch_optional(&self.pool)
        .await
    }

    /// Sets a license's own threshold (`None`: its policy's applies); `false` when the license
    /// is not in the organization.
    pub async fn set_license_reclaim_after(
        &self,
        organization_id: &str,
        license_id: &str,
        reclaim_after: Option<i64>,
        now: i64,
    ) -> DbResult<bool> {
        let _forget = self.licenses.clear_on_drop();
        let done = sqlx::query(
            "UPDATE licenses SET reclaim_after = $1, updated_at = $2 \
             WHERE id = $3 AND organization_id = $4",
        )
        .bind(reclaim_after)
        .bind(now)
        .bind(license_id)
        .bind(organization_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

/// The assignment `id` as a candidate at `now`, read in `tx` (after its license's write lock):
/// `None` when it is no longer an active user or device assignment of an active license.
pub(crate) async fn idle_candidate_in(
    tx: &mut Tx,
    id: &str,
    now: i64,
) -> DbResult<Option<IdleCandidate>> {
    sqlx::query_as(CANDIDATE_BY_ID)
        .bind(id)
        .bind(now)
        .fetch_optional(&mut **tx)
        .await
}

/// Reclaims `candidate` for inactivity at `now` in `tx`: `false` when it was reclaimed,
/// unassigned, reassigned or used since it was read (another replica's run, a validation).
pub(crate) async fn reclaim_in(tx: &mut Tx, candidate: &IdleCandidate, now: i64) -> DbResult<bool> {
    let done = sqlx::query(RECLAIM)
        .bind(now)
        .bind(&candidate.id)
        .bind(candidate.last_used_at.unwrap_or(-1))
        .bind(&candidate.assignee_id)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() == 1)
}

#[cfg(test)]
impl Db {
    /// Stores an assignment as the seats API would (tests of reclamation).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn insert_assignment_for_tests(
        &self,
        id: &str,
        organization_id: &str,
        license_id: &str,
        kind: &str,
        assignee_id: &str,
        created_at: i64,
        last_used_at: Option<i64>,
    ) {
        sqlx::query(
            "INSERT INTO seat_assignments (id, organization_id, license_id, assignee_kind, \
             assignee_id, seats, last_used_at, assigned_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'test', $8, $8)",
        )
        .bind(id)
        .bind(organization_id)
        .bind(license_id)
        .bind(kind)
        .bind(assignee_id)
        .bind(if kind == "department" { 3_i64 } else { 1 })
        .bind(last_used_at)
        .bind(created_at)
        .execute(&self.pool)
        .await
        .expect("inserting an assignment");
    }

    /// An assignment's state, reason and reclamation time.
    pub(crate) async fn assignment_state_for_tests(
        &self,
        id: &str,
    ) -> (String, Option<String>, Option<i64>) {
        sqlx::query_as(
            "SELECT state, reclaim_reason, reclaimed_at FROM seat_assignments WHERE id = $1",
        )
        .bind(id)
        .fetch_one(&self.pool)
        .await
        .expect("reading an assignment")
    }

    /// Sets the threshold of the policy of `license_id` (the policy requests do not take it
    /// yet on this branch).
    pub(crate) async fn set_policy_reclaim_after_for_tests(
        &self,
        license_id: &str,
        reclaim_after: Option<i64>,
    ) {
        sqlx::query(
            "UPDATE policies SET reclaim_after = $1 \
             WHERE id = (SELECT policy_id FROM licenses WHERE id = $2)",
        )
        .bind(reclaim_after)
        .bind(license_id)
        .execute(&self.pool)
        .await
        .expect("setting a policy's threshold");
    }

    /// A directory user (for the names previews show).
    pub(crate) async fn insert_user_for_tests(&self, id: &str, organization_id: &str, name: &str) {
        sqlx::query(
            "INSERT INTO directory_users (id, organization_id, user_name, user_name_key, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, 0, 0)",
        )
        .bind(id)
        .bind(organization_id)
        .bind(name)
        .bind(name.to_lowercase())
        .execute(&self.pool)
        .await
        .expect("inserting a user");
    }

    /// A lease of `user_id` on `license_id` (released when `released_at` is set).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn insert_lease_for_tests(
        &self,
        id: &str,
        license_id: &str,
        user_id: &str,
        created_at: i64,
        heartbeat_at: i64,
        expires_at: i64,
        released_at: Option<i64>,
    ) {
        sqlx::query(
            "INSERT INTO leases (id, license_id, client_id, user_name, request_id, epoch, \
             created_at, heartbeat_at, expires_at, released_at, user_id) \
             VALUES ($1, $2, $1, $3, $1, 1, $4, $5, $6, $7, $3)",
        )
        .bind(id)
        .bind(license_id)
        .bind(user_id)
        .bind(created_at)
        .bind(heartbeat_at)
        .bind(expires_at)
        .bind(released_at)
        .execute(&self.pool)
        .await
        .expect("inserting a lease");
    }

    /// Sets when a machine was last seen, and its user.
    pub(crate) async fn set_machine_for_tests(
        &self,
        id: &str,
        user_id: Option<&str>,
        last_seen_at: i64,
    ) {
        sqlx::query("UPDATE machines SET user_id = $1, last_seen_at = $2 WHERE id = $3")
            .bind(user_id)
            .bind(last_seen_at)
            .bind(id)
            .execute(&self.pool)
            .await
            .expect("setting a machine");
    }

    /// The plan of one page of candidates (SQLite: `EXPLAIN QUERY PLAN`; PostgreSQL: `EXPLAIN`
    /// of the prepared statement, custom plan), after `ANALYZE`.
    pub(crate) async fn candidates_plan_for_tests(&self, now: i64) -> String {
        let mut conn = self.pool.acquire().await.expect("a connection");
        sqlx::query("ANALYZE")
            .execute(&mut *conn)
            .await
            .expect("ANALYZE");
        let cutoff = now - 86_400;
        let lines: Vec<String> = match self.engine {
            super::Engine::Postgres => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "PREPARE planned (BIGINT, BIGINT, TEXT, TEXT, TEXT, BIGINT) AS {CANDIDATES}"
                )))
                .execute(&mut *conn)
                .await
                .expect("PREPARE");
                let explain = format!(
                    "EXPLAIN (COSTS OFF) EXECUTE planned({cutoff}, {now}, NULL, NULL, '', 500)"
                );
                let plan = sqlx::query_scalar(sqlx::AssertSqlSafe(explain))
                    .fetch_all(&mut *conn)
                    .await
                    .expect("EXPLAIN");
                sqlx::query("DEALLOCATE planned")
                    .execute(&mut *conn)
                    .await
                    .expect("DEALLOCATE");
                plan
            }
            super::Engine::Sqlite => {
                let explain = format!("EXPLAIN QUERY PLAN {CANDIDATES}");
                let rows =
                    sqlx::query_as::<_, (i64, i64, i64, String)>(sqlx::AssertSqlSafe(explain))
                        .bind(cutoff)
                        .bind(now)
                        .bind(None::<String>)
                        .bind(None::<String>)
                        .bind("")
                        .bind(500_i64)
                        .fetch_all(&mut *conn)
                        .await
                        .expect("EXPLAIN QUERY PLAN");
                rows.into_iter().map(|(_, _, _, detail)| detail).collect()
            }
        };
        lines.join("\n")
    }

    /// Fills `n` user assignments of `license_id` used at `used_at` (plan tests).
    pub(crate) async fn fill_assignments_for_tests(
        &self,
        organization_id: &str,
        license_id: &str,
        n: i64,
        used_at: i64,
    ) {
        sqlx::query(
            "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < $1) \
             INSERT INTO seat_assignments (id, organization_id, license_id, assignee_kind, \
             assignee_id, seats, last_used_at, assigned_by, created_at, updated_at) \
             SELECT 'asg_fill_' || $3 || '_' || i, $2, $3, 'user', 'usr_fill_' || i, 1, $4, 'test', $4, $4 \
             FROM k",
        )
        .bind(n)
        .bind(organization_id)
        .bind(license_id)
        .bind(used_at)
        .execute(&self.pool)
        .await
        .expect("filling assignments");
    }
}
