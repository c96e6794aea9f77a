//! OAuth 2.0 clients (secrets stored as hashes) and revoked access tokens: the SQL only.

use sqlx::FromRow;

use super::{Db, DbResult};

/// A row of `oauth_clients` as the API shows it (the hash is never read back here).
#[derive(Debug, Clone, FromRow)]
pub(crate) struct OAuthClientRow {
    pub id: String,
    pub organization_id: String,
    pub name: String,
    pub role: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// What client authentication needs of a live client: its secret's hash, organization and
/// role.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct OAuthClientAuth {
    pub id: String,
    pub organization_id: String,
    pub role: String,
    pub secret_hash: String,
}

impl Db {
    /// Stores a new client with the hash of its secret.
    pub async fn insert_oauth_client(
        &self,
        client: &OAuthClientRow,
        secret_hash: &str,
    ) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO oauth_clients (id, organization_id, name, role, secret_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&client.id)
        .bind(&client.organization_id)
        .bind(&client.name)
        .bind(&client.role)
        .bind(secret_hash)
        .bind(client.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The clients of an organization, revoked ones included, oldest first.
    pub async fn list_oauth_clients(&self, organization_id: &str) -> DbResult<Vec<OAuthClientRow>> {
        sqlx::query_as(
            "SELECT id, organization_id, name, role, created_at, revoked_at FROM oauth_clients \
             WHERE organization_id = $1 ORDER BY created_at, id",
        )
        .bind(organization_id)
        .fetch_all(&self.pool)
        .await
    }

    /// Revokes a live client of this organization; `false` when there is none with this id.
    pub async fn revoke_oauth_client(
        &self,
        organization_id: &str,
        id: &str,
        now: i64,
    ) -> DbResult<bool> {
        let done = sqlx::query(
            "UPDATE oauth_clients SET revoked_at = $1 \
             WHERE id = $2 AND organization_id = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .bind(organization_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The live (not revoked) client with this id, for client authentication.
    pub async fn oauth_client_auth(&self, id: &str) -> DbResult<Option<OAuthClientAuth>> {
        sqlx::query_as(
            "SELECT id, organization_id, role, secret_hash FROM oauth_clients \
             WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
    }

    /// Whether an access token may still act: its client is live in `organization_id` and its
    /// jti is not revoked. Returns the organization's `operator` flag when it may.
    pub async fn oauth_token_live(
        &self,
        client_id: &str,
        organization_id: &str,
        jti: &str,
    ) -> DbResult<Option<i64>> {
        sqlx::query_scalar(
            "SELECT o.operator FROM oauth_clients c \
             JOIN organizations o ON o.id = c.organization_id \
             WHERE c.id = $1 AND c.organization_id = $2 AND c.revoked_at IS NULL \
             AND NOT EXISTS (SELECT 1 FROM oauth_revoked_tokens r WHERE r.jti = $3)",
        )
        .bind(client_id)
        .bind(organization_id)
        .bind(jti)
        .fetch_optional(&self.pool)
        .await
    }

    /// Records the access token `jti` of `client_id` as revoked until `expires_at`, and
    /// forgets the revocations of tokens that expired before `forget_before` (refused anyway
    /// by then: the caller allows for the verifier's clock leeway).
    pub async fn revoke_oauth_token(
        &self,
        jti: &str,
        client_id: &str,
        expires_at: i64,
        now: i64,
        forget_before: i64,
    ) -> DbResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM oauth_revoked_tokens WHERE expires_at < $1")
            .bind(forget_before)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO oauth_revoked_tokens (jti, client_id, expires_at, revoked_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (jti) DO NOTHING",
        )
        .bind(jti)
        .bind(client_id)
        .bind(expires_at)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }
}
