//! Signing keys.

use sqlx::FromRow;

use super::{Db, DbResult, Engine, LicenseRow, Machine};

/// A row of `signing_keys`.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct SigningKeyRow {
    pub kid: String,
    pub private_pem: String,
    pub status: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
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
        let mut tx = match self.engine {
            Engine::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Engine::Postgres => {
                let mut tx = self.pool.begin().await?;
                // One key change at a time across replicas; released at commit.
                sqlx::query("LOCK TABLE signing_keys IN EXCLUSIVE MODE")
                    .execute(&mut *tx)
                    .await?;
                tx
            }
        };
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

    /// Retires a `previous` key; `false` when there is no such key (the current key is never
    /// retired: rotate first).
    pub async fn retire_signing_key(&self, kid: &str, now: i64) -> DbResult<bool> {
        let done = sqlx::query(
            "UPDATE signing_keys SET status = 'retired', retired_at = $1 \
             WHERE kid = $2 AND status = 'previous'",
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

/// Computes a license's rewrite from its row and machines (`None`: leave it as it is).
pub(crate) type Rewriter<'a, E> =
    dyn Fn(&LicenseRow, &[Machine]) -> Result<Option<Rewrite>, E> + Sync + 'a;

impl Db {
    /// Every stored license token with its license id (for re-signing after a key retires).
    pub async fn stored_license_tokens(&self) -> DbResult<Vec<(String, String)>> {
        sqlx::query_as("SELECT id, token FROM licenses WHERE token IS NOT NULL ORDER BY id")
            .fetch_all(&self.pool)
            .await
    }

    /// Rewrites license `id` (claims, token, expiry) as `rewrite` computes from its current row
    /// and machines, under the license's write lock (so it cannot undo a concurrent
    /// activation's reissue, nor be undone by one). `Ok(Ok(false))`: nothing to do.
    pub async fn rewrite_license<E>(
        &self,
        id: &str,
        rewrite: &Rewriter<'_, E>,
        now: i64,
    ) -> Result<Result<bool, E>, sqlx::Error> {
        let _forget = self.licenses.clear_on_drop();
        let mut tx = self.begin_license_write(id).await?;
        let row: Option<LicenseRow> = sqlx::query_as("SELECT * FROM licenses WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(Ok(false));
        };
        let machines: Vec<Machine> =
            sqlx::query_as("SELECT * FROM machines WHERE license_id = $1 ORDER BY created_at, id")
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
        let new = match rewrite(&row, &machines) {
            Ok(Some(new)) => new,
            Ok(None) => {
                tx.rollback().await?;
                return Ok(Ok(false));
            }
            Err(e) => {
                tx.rollback().await?;
                return Ok(Err(e));
            }
        };
        sqlx::query(
            "UPDATE licenses SET claims = $1, token = $2, expires_at = $3, updated_at = $4 \
             WHERE id = $5",
        )
        .bind(&new.claims)
        .bind(&new.token)
        .bind(new.expires_at)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Ok(true))
    }
}
