//! Retention per organization (`retention_policies`, migration 0014): how many days audit
//! entries, lease history (released leases) and denials are kept, and the pruning the reaper
//! runs on the server's clock (`startup::prune_once`).

use sqlx::FromRow;

use super::{Db, DbResult};

/// An organization's retention, in days (`None`: kept for ever).
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub(crate) struct RetentionRow {
    /// The organization.
    pub organization_id: String,
    /// Audit entries (both chains) older than this are pruned.
    pub audit_days: Option<i64>,
    /// Released (checked in, expired, force-released) leases older than this are deleted.
    pub lease_history_days: Option<i64>,
    /// Denials older than this are deleted.
    pub denial_days: i64,
}

impl Db {
    /// The organization's retention row, if it has set one.
    pub async fn get_retention(&self, organization_id: &str) -> DbResult<Option<RetentionRow>> {
        sqlx::query_as(
            "SELECT organization_id, audit_days, lease_history_days, denial_days \
             FROM retention_policies WHERE organization_id = $1",
        )
        .bind(organization_id)
        .fetch_optional(&self.pool)
        .await
    }

    /// Every organization's retention row.
    pub async fn list_retention(&self) -> DbResult<Vec<RetentionRow>> {
        sqlx::query_as(
            "SELECT organization_id, audit_days, lease_history_days, denial_days \
             FROM retention_policies ORDER BY organization_id",
        )
        .fetch_all(&self.pool)
        .await
    }

    /// Sets an organization's retention (bounds checked by the caller).
    pub async fn put_retention(&self, row: &RetentionRow, now: i64) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO retention_policies \
             (organization_id, audit_days, lease_history_days, denial_days, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (organization_id) DO UPDATE SET \
             audit_days = excluded.audit_days, \
             lease_history_days = excluded.lease_history_days, \
             denial_days = excluded.denial_days, updated_at = excluded.updated_at",
        )
        .bind(&row.organization_id)
        .bind(row.audit_days)
        .bind(row.lease_history_days)
        .bind(row.denial_days)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deletes one organization's leases released before `before` (Unix seconds), with the
    /// request ids tied to them. Live leases (and lapsed ones the reaper has not released yet)
    /// stay. Returns how many leases were deleted.
    pub async fn prune_lease_history(&self, organization_id: &str, before: i64) -> DbResult<u64> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "DELETE FROM lease_requests WHERE lease_id IN (SELECT id FROM leases \
             WHERE released_at IS NOT NULL AND released_at < $1 \
             AND license_id IN (SELECT id FROM licenses WHERE organization_id = $2))",
        )
        .bind(before)
        .bind(organization_id)
        .execute(&mut *tx)
        .await?;
        let done = sqlx::query(
            "DELETE FROM leases WHERE released_at IS NOT NULL AND released_at < $1 \
             AND license_id IN (SELECT id FROM licenses WHERE organization_id = $2)",
        )
        .bind(before)
        .bind(organization_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }
}
