//! The SQL of deprovisioning a directory user (`server::deprovision`): the live leases that may
//! be theirs, and reclaiming their seat assignments.

use sqlx::FromRow;

use super::{Db, DbResult};

/// A live lease a deprovisioned user may hold: linked to them (`user_id`), or not linked to
/// anyone yet (then `user_name` decides, compared by the caller).
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub(crate) struct UserLease {
    pub license_id: String,
    pub id: String,
    pub user_name: String,
    pub user_id: Option<String>,
}

impl Db {
    /// The leases live at `now` on licenses of `organization_id` that are linked to `user_id`
    /// or linked to no user (the caller keeps those whose user name is the user's).
    pub async fn live_leases_of_user(
        &self,
        organization_id: &str,
        user_id: &str,
        now: i64,
    ) -> DbResult<Vec<UserLease>> {
        sqlx::query_as(
            "SELECT l.license_id, l.id, l.user_name, l.user_id FROM leases l \
             JOIN licenses c ON c.id = l.license_id \
             WHERE c.organization_id = $1 AND l.released_at IS NULL AND l.expires_at > $2 \
             AND (l.user_id = $3 OR l.user_id IS NULL) ORDER BY l.license_id, l.id",
        )
        .bind(organization_id)
        .bind(now)
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
    }

    /// Sets every active seat assignment of user `user_id` of `organization_id` to
    /// `reclaimed` with `reason` at `now`; returns how many.
    pub async fn reclaim_user_assignments(
        &self,
        organization_id: &str,
        user_id: &str,
        reason: &str,
        now: i64,
    ) -> DbResult<u64> {
        let done = sqlx::query(
            "UPDATE seat_assignments SET state = 'reclaimed', reclaimed_at = $1, \
             reclaim_reason = $2, updated_at = $1 \
             WHERE organization_id = $3 AND assignee_kind = 'user' AND assignee_id = $4 \
             AND state = 'active'",
        )
        .bind(now)
        .bind(reason)
        .bind(organization_id)
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
impl Db {
    /// Stores an active seat assignment of `license_id` to user `user_id` (the seat-assignment
    /// API is another part's; the deprovisioning tests need a row).
    pub(crate) async fn assign_user_for_tests(
        &self,
        id: &str,
        organization_id: &str,
        license_id: &str,
        user_id: &str,
    ) {
        sqlx::query(
            "INSERT INTO seat_assignments (id, organization_id, license_id, assignee_kind, \
             assignee_id, assigned_by, created_at, updated_at) \
             VALUES ($1, $2, $3, 'user', $4, 'test', 0, 0)",
        )
        .bind(id)
        .bind(organization_id)
        .bind(license_id)
        .bind(user_id)
        .execute(&self.pool)
        .await
        .expect("an assignment");
    }

    /// The plan of the statement a SCIM `userName eq` filter runs (as the directory's `WHERE`
    /// builder writes it: the organization, then the name key), on this database's engine
    /// (PostgreSQL: after `ANALYZE`).
    pub(crate) async fn user_name_filter_plan_for_tests(&self, org: &str, name: &str) -> String {
        const STATEMENT: &str = "SELECT id FROM directory_users \
             WHERE organization_id = $1 AND user_name_key = $2 ORDER BY user_name_key, id \
             LIMIT 200 OFFSET 0";
        match self.engine {
            super::Engine::Sqlite => {
                let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(
                    format!("EXPLAIN QUERY PLAN {STATEMENT}"),
                ))
                .bind(org)
                .bind(name)
                .fetch_all(&self.pool)
                .await
                .expect("a plan");
                rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("; ")
            }
            super::Engine::Postgres => {
                sqlx::query("ANALYZE directory_users")
                    .execute(&self.pool)
                    .await
                    .expect("analyzed");
                let rows: Vec<(String,)> =
                    sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN {STATEMENT}")))
                        .bind(org)
                        .bind(name)
                        .fetch_all(&self.pool)
                        .await
                        .expect("a plan");
                rows.into_iter().map(|r| r.0).collect::<Vec<_>>().join("; ")
            }
        }
    }
}
