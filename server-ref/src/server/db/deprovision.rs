//! The SQL of deprovisioning a directory user (`server::deprovision`): the user's name key, the
//! live leases that are theirs, and reclaiming their seat assignments.

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
    /// The lowercase user name (`user_name_key`) of directory user `user_id` of
    /// `organization_id`; `None` when the organization has no such user.
    pub async fn directory_user_name_key(
        &self,
        organization_id: &str,
        user_id: &str,
    ) -> DbResult<Option<String>> {
        sqlx::query_scalar(
            "SELECT user_name_key FROM directory_users WHERE organization_id = $1 AND id = $2",
        )
        .bind(organization_id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await
    }

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
