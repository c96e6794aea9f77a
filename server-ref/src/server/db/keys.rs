//! Signing keys.

use sqlx::FromRow;

use super::{Db, DbResult, Engine, LicenseRow, Tx};

/// A row of `signing_keys`.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct SigningKeyRow {
    pub kid: String,
    pub private_pem: String,
    pub status: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
    /// A staged key's planned promotion (Unix seconds).
    pub promote_at: Option<i64>,
}

impl Db {
    /// Every key, newest first.
    pub async fn list_signing_keys(&self) -> DbResult<Vec<SigningKeyRow>> {
        sqlx::query_as("SELECT * FROM signing_keys ORDER BY created_at DESC, kid")
            .fetch_all(&self.pool)
            .await
    }

    /// Adds `key` as the current signing key, demoting the former current key to `previous`,
    /// in one transaction serialized across replicas. With `only_if_none`, adds it only when
    /// there is no current key yet (first start: replicas racing to create one agree on the
    /// first). A kid already in the table is left as it is. Returns whether `key` was added.
    pub async fn add_current_signing_key(
        &self,
        key: &SigningKeyRow,
        only_if_none: bool,
    ) -> DbResult<bool> {
        let mut tx = self.begin_key_change().await?;
        let known: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM signing_keys WHERE kid = $1")
            .bind(&key.kid)
            .fetch_one(&mut *tx)
            .await?;
        let current: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM signing_keys WHERE status = 'current'")
                .fetch_one(&mut *tx)
                .await?;
        if known > 0 || (only_if_none && current > 0) {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query("UPDATE signing_keys SET status = 'previous' WHERE status = 'current'")
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO signing_keys (kid, private_pem, status, created_at) \
             VALUES ($1, $2, 'current', $3)",
        )
        .bind(&key.kid)
        .bind(&key.private_pem)
        .bind(key.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Replaces key `kid`'s stored private key `old` by `new` (its sealed form); `false` when
    /// the row no longer holds `old` (another replica sealed it first).
    pub async fn reseal_signing_key(&self, kid: &str, old: &str, new: &str) -> DbResult<bool> {
        let done = sqlx::query(
            "UPDATE signing_keys SET private_pem = $1 WHERE kid = $2 AND private_pem = $3",
        )
        .bind(new)
        .bind(kid)
        .bind(old)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A transaction that changes the key ring, serialized across replicas (released at
    /// commit or rollback): the handler owns it and runs the key statements below in it.
    pub async fn begin_key_change(&self) -> DbResult<super::Tx> {
        Ok(match self.engine {
            Engine::Sqlite => self.gate.begin_immediate(&self.pool).await?,
            Engine::Postgres => {
                let mut tx = super::Tx::from(self.pool.begin().await?);
                sqlx::query("LOCK TABLE signing_keys IN EXCLUSIVE MODE")
                    .execute(&mut *tx)
                    .await?;
                tx
            }
        })
    }

    /// Staged keys whose `promote_at` has come by `now` and that were published at or before
    /// `published_by`.
    pub async fn due_staged_keys(&self, now: i64, published_by: i64) -> DbResult<Vec<String>> {
        sqlx::query_scalar(
            "SELECT kid FROM signing_keys WHERE status = 'staged' AND promote_at IS NOT NULL \
             AND promote_at <= $1 AND created_at <= $2 ORDER BY created_at, kid",
        )
        .bind(now)
        .bind(published_by)
        .fetch_all(&self.pool)
        .await
    }

    /// Retires a `previous` key, or withdraws a `staged` one; `false` when there is no such
    /// key (the current key is never retired: rotate or promote first).
    pub async fn retire_signing_key(&self, kid: &str, now: i64) -> DbResult<bool> {
        let done = sqlx::query(
            "UPDATE signing_keys SET status = 'retired', retired_at = $1, promote_at = NULL \
             WHERE kid = $2 AND status IN ('previous', 'staged')",
        )
        .bind(now)
        .bind(kid)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

/// A license's new claims template, stored token and expiry.
#[derive(Debug)]
pub(crate) struct Rewrite {
    pub claims: String,
    pub token: Option<String>,
    pub expires_at: Option<i64>,
}

impl Db {
    /// Every stored license token with its license id (for re-signing after a key retires).
    pub async fn stored_license_tokens(&self) -> DbResult<Vec<(String, String)>> {
        sqlx::query_as("SELECT id, token FROM licenses WHERE token IS NOT NULL ORDER BY id")
            .fetch_all(&self.pool)
            .await
    }
}

/// License `id` as stored, read inside a write transaction (see
/// [`super::Db::begin_license_change`]).
pub(crate) async fn license_in(tx: &mut Tx, id: &str) -> DbResult<Option<LicenseRow>> {
    sqlx::query_as("SELECT * FROM licenses WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
}

/// Stores license `id`'s rewrite (claims, token, expiry).
pub(crate) async fn store_rewrite(tx: &mut Tx, id: &str, new: &Rewrite, now: i64) -> DbResult<()> {
    sqlx::query(
        "UPDATE licenses SET claims = $1, token = $2, expires_at = $3, updated_at = $4 \
         WHERE id = $5",
    )
    .bind(&new.claims)
    .bind(&new.token)
    .bind(new.expires_at)
    .bind(now)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The kid of the staged key, if one is.
pub(crate) async fn staged_kid(tx: &mut Tx) -> DbResult<Option<String>> {
    sqlx::query_scalar("SELECT kid FROM signing_keys WHERE status = 'staged'")
        .fetch_optional(&mut **tx)
        .await
}

/// Inserts `key` as a `staged` key (published, not signing), to be promoted at its
/// `promote_at` or by an operator.
pub(crate) async fn insert_staged_key(tx: &mut Tx, key: &SigningKeyRow) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO signing_keys (kid, private_pem, status, created_at, promote_at) \
         VALUES ($1, $2, 'staged', $3, $4)",
    )
    .bind(&key.kid)
    .bind(&key.private_pem)
    .bind(key.created_at)
    .bind(key.promote_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Key `kid`'s status and publication time (`created_at`).
pub(crate) async fn key_state(tx: &mut Tx, kid: &str) -> DbResult<Option<(String, i64)>> {
    sqlx::query_as("SELECT status, created_at FROM signing_keys WHERE kid = $1")
        .bind(kid)
        .fetch_optional(&mut **tx)
        .await
}

/// Makes the staged key `kid` the `current` one; the current key becomes `previous`.
pub(crate) async fn promote_staged_key(tx: &mut Tx, kid: &str) -> DbResult<()> {
    sqlx::query("UPDATE signing_keys SET status = 'previous' WHERE status = 'current'")
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "UPDATE signing_keys SET status = 'current', promote_at = NULL \
         WHERE kid = $1 AND status = 'staged'",
    )
    .bind(kid)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
