//! Signed checkpoints of the audit chains (`audit_signed_checkpoints`, migration 0022) and the
//! reads the audit evidence needs (entries by period, chain heads). Only SQL here: what is
//! signed, and how, is decided in `server::checkpoints`.

use sqlx::FromRow;

use super::audit::{AUDIT_LOCK_KEY, AuditEntry};
use super::audit_events::{EVENTS_CHAIN, chain_head};
use super::{AuditEventRow, Db, DbResult, Tx};

/// A row of `audit_signed_checkpoints`.
#[derive(Debug, Clone, PartialEq, Eq, FromRow, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct SignedCheckpointRow {
    /// 1, 2, 3, ... in the order they were signed.
    pub id: i64,
    /// The organization of an `organization` checkpoint; none for a `server` one.
    pub organization_id: Option<String>,
    /// When it was signed (Unix seconds).
    pub at: i64,
    /// The `seq` of the admin entry it covers last.
    pub seq: i64,
    /// That entry's hash.
    pub hash: String,
    /// An organization checkpoint's digest of its entries.
    pub digest: Option<String>,
    /// The kid of the key that signed it.
    pub kid: String,
    /// The `audit-checkpoint+jwt` token: the evidence (the other columns repeat its claims).
    pub token: String,
}

/// Rows read per statement while folding an organization's entries.
pub(crate) const FOLD_PAGE: i64 = 1000;

impl Db {
    /// A transaction holding the admin chain's write lock (the one [`Db::append_audit`]
    /// takes), in which a checkpoint run reads the heads and stores what it signed: no entry
    /// is appended meanwhile, and replicas checkpoint one at a time.
    pub async fn begin_checkpoint(&self) -> DbResult<Tx> {
        self.begin_chain_write(AUDIT_LOCK_KEY, false).await
    }
}

/// The heads of the admin chain and of the event chain: `(seq, hash)` each (0 and 64 zeros
/// for an empty chain).
pub(crate) async fn heads_in(tx: &mut Tx) -> DbResult<((i64, String), (i64, String))> {
    let admin = chain_head(tx, super::audit::ADMIN_CHAIN).await?;
    let events = chain_head(tx, EVENTS_CHAIN).await?;
    Ok((admin, events))
}

/// The last checkpoint of `organization_id` (`None`: the server's).
pub(crate) async fn last_checkpoint_in(
    tx: &mut Tx,
    organization_id: Option<&str>,
) -> DbResult<Option<SignedCheckpointRow>> {
    sqlx::query_as(
        "SELECT * FROM audit_signed_checkpoints \
         WHERE (organization_id = $1 OR ($1 IS NULL AND organization_id IS NULL)) \
         ORDER BY id DESC LIMIT 1",
    )
    .bind(organization_id)
    .fetch_optional(&mut **tx)
    .await
}

/// One organization's entries with `seq > after`, oldest first, at most `limit`.
pub(crate) async fn organization_entries_in(
    tx: &mut Tx,
    organization_id: &str,
    after: i64,
    limit: i64,
) -> DbResult<Vec<AuditEntry>> {
    sqlx::query_as(
        "SELECT * FROM audit_log WHERE organization_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    )
    .bind(organization_id)
    .bind(after)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await
}

/// Stores a checkpoint as the next `id`; returns it.
pub(crate) async fn insert_checkpoint_in(
    tx: &mut Tx,
    row: &SignedCheckpointRow,
) -> DbResult<SignedCheckpointRow> {
    let id: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) + 1 FROM audit_signed_checkpoints")
            .fetch_one(&mut **tx)
            .await?;
    sqlx::query(
        "INSERT INTO audit_signed_checkpoints \
         (id, organization_id, at, seq, hash, digest, kid, token) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(row.organization_id.as_deref())
    .bind(row.at)
    .bind(row.seq)
    .bind(&row.hash)
    .bind(row.digest.as_deref())
    .bind(&row.kid)
    .bind(&row.token)
    .execute(&mut **tx)
    .await?;
    Ok(SignedCheckpointRow { id, ..row.clone() })
}

impl Db {
    /// Checkpoints with `id > after`, oldest first, at most `limit`: one organization's, and
    /// the server's too when `with_server`.
    pub async fn list_signed_checkpoints(
        &self,
        organization_id: &str,
        with_server: bool,
        after: i64,
        limit: i64,
    ) -> DbResult<Vec<SignedCheckpointRow>> {
        sqlx::query_as(
            "SELECT * FROM audit_signed_checkpoints WHERE id > $1 \
             AND (organization_id = $2 OR ($3 = 1 AND organization_id IS NULL)) \
             ORDER BY id LIMIT $4",
        )
        .bind(after)
        .bind(organization_id)
        .bind(i64::from(with_server))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }

    /// Every checkpoint with `id > after`, oldest first, at most `limit` (`audit verify`).
    pub async fn all_signed_checkpoints(
        &self,
        after: i64,
        limit: i64,
    ) -> DbResult<Vec<SignedCheckpointRow>> {
        sqlx::query_as("SELECT * FROM audit_signed_checkpoints WHERE id > $1 ORDER BY id LIMIT $2")
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
    }

    /// One organization's checkpoints whose range `(prev, seq]` reaches `from_seq` or later,
    /// oldest first: those covering entries with `seq >= from_seq`. `prev` is the seq of the
    /// organization's checkpoint before (0 for its first).
    pub async fn checkpoints_from(
        &self,
        organization_id: &str,
        from_seq: i64,
        limit: i64,
    ) -> DbResult<Vec<SignedCheckpointRow>> {
        sqlx::query_as(
            "SELECT * FROM audit_signed_checkpoints \
             WHERE organization_id = $1 AND seq >= $2 ORDER BY seq, id LIMIT $3",
        )
        .bind(organization_id)
        .bind(from_seq)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }

    /// One organization's admin entries with `after < seq <= until`, oldest first, at most
    /// `limit`.
    pub async fn audit_entries_between(
        &self,
        organization_id: &str,
        after: i64,
        until: i64,
        limit: i64,
    ) -> DbResult<Vec<AuditEntry>> {
        sqlx::query_as(
            "SELECT * FROM audit_log WHERE organization_id = $1 AND seq > $2 AND seq <= $3 \
             ORDER BY seq LIMIT $4",
        )
        .bind(organization_id)
        .bind(after)
        .bind(until)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map(|entries: Vec<AuditEntry>| {
            entries
                .into_iter()
                .map(AuditEntry::with_target_id)
                .collect()
        })
    }

    /// The first and last seq of one organization's admin entries with `from <= at <= to`.
    pub async fn audit_seq_span(
        &self,
        organization_id: &str,
        from: i64,
        to: i64,
    ) -> DbResult<Option<(i64, i64)>> {
        let span: (Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT MIN(seq), MAX(seq) FROM audit_log \
             WHERE organization_id = $1 AND at >= $2 AND at <= $3",
        )
        .bind(organization_id)
        .bind(from)
        .bind(to)
        .fetch_one(&self.pool)
        .await?;
        Ok(span.0.zip(span.1))
    }

    /// One organization's admin entries with `from <= at <= to` and `seq > after`, oldest
    /// first, at most `limit`.
    pub async fn audit_entries_in_period(
        &self,
        organization_id: &str,
        from: i64,
        to: i64,
        after: i64,
        limit: i64,
    ) -> DbResult<Vec<AuditEntry>> {
        sqlx::query_as(
            "SELECT * FROM audit_log WHERE organization_id = $1 AND at >= $2 AND at <= $3 \
             AND seq > $4 ORDER BY seq LIMIT $5",
        )
        .bind(organization_id)
        .bind(from)
        .bind(to)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map(|entries: Vec<AuditEntry>| {
            entries
                .into_iter()
                .map(AuditEntry::with_target_id)
                .collect()
        })
    }

    /// One organization's client events with `from <= at <= to` and `seq > after`, oldest
    /// first, at most `limit`.
    pub async fn audit_events_in_period(
        &self,
        organization_id: &str,
        from: i64,
        to: i64,
        after: i64,
        limit: i64,
    ) -> DbResult<Vec<AuditEventRow>> {
        sqlx::query_as(
            "SELECT * FROM audit_events WHERE organization_id = $1 AND at >= $2 AND at <= $3 \
             AND seq > $4 ORDER BY seq LIMIT $5",
        )
        .bind(organization_id)
        .bind(from)
        .bind(to)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }

    /// The public halves' PEMs of every signing key ever stored (retired ones included), for
    /// `audit verify`: a checkpoint signed by a since-retired key still verifies.
    pub async fn every_signing_key_pem(&self) -> DbResult<Vec<(String, String)>> {
        sqlx::query_as("SELECT kid, private_pem FROM signing_keys ORDER BY created_at, kid")
            .fetch_all(&self.pool)
            .await
    }
}

/// Every organization's id (a checkpoint run over every organization).
pub(crate) async fn organization_ids_in(tx: &mut Tx) -> DbResult<Vec<String>> {
    sqlx::query_scalar("SELECT id FROM organizations ORDER BY id")
        .fetch_all(&mut **tx)
        .await
}

impl Db {
    /// The last seq of the admin chain and of the event chain (0 when empty).
    pub async fn audit_heads(&self) -> DbResult<(i64, i64)> {
        let admin: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM audit_log")
            .fetch_one(&self.pool)
            .await?;
        let events: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM audit_events")
            .fetch_one(&self.pool)
            .await?;
        Ok((admin.unwrap_or(0), events.unwrap_or(0)))
    }

    /// Every organization's admin entries with `seq > after`, oldest first, at most `limit`.
    pub async fn audit_entries_after(&self, after: i64, limit: i64) -> DbResult<Vec<AuditEntry>> {
        sqlx::query_as("SELECT * FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2")
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map(|entries: Vec<AuditEntry>| {
                entries
                    .into_iter()
                    .map(AuditEntry::with_target_id)
                    .collect()
            })
    }

    /// Every organization's client events with `seq > after`, oldest first, at most `limit`.
    pub async fn audit_events_after(&self, after: i64, limit: i64) -> DbResult<Vec<AuditEventRow>> {
        sqlx::query_as("SELECT * FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2")
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
    }
}
