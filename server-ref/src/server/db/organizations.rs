//! Organizations (tenants) and their API tokens, stored as hashes: the SQL only.

use sqlx::FromRow;

use super::{Db, DbResult, Tx};

/// A row of `organizations` (tenants).
#[derive(Debug, Clone, FromRow)]
pub(crate) struct Organization {
    pub id: String,
    pub name: String,
    /// 1 for the organization created at first start: it may create organizations and manage
    /// signing keys.
    pub operator: i64,
    pub created_at: i64,
}

/// An API token to store: its hash, never the token.
#[derive(Debug, Clone)]
pub(crate) struct NewApiToken<'a> {
    pub id: &'a str,
    pub organization_id: &'a str,
    pub token_hash: &'a str,
    pub role: &'a str,
    pub label: &'a str,
    pub now: i64,
}

async fn insert_api_token_in(tx: &mut Tx, token: &NewApiToken<'_>) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO api_tokens (id, organization_id, token_hash, role, label, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(token.id)
    .bind(token.organization_id)
    .bind(token.token_hash)
    .bind(token.role)
    .bind(token.label)
    .bind(token.now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A live API token as the authentication layer sees it.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct TokenGrant {
    pub id: String,
    pub organization_id: String,
    pub role: String,
    /// The organization's `operator` flag.
    pub operator: i64,
}

/// A row of `api_tokens` (the hash is never read back).
#[derive(Debug, Clone, FromRow)]
pub(crate) struct ApiTokenRow {
    pub id: String,
    pub organization_id: String,
    pub role: String,
    pub label: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

impl Db {
    /// Inserts an organization; `false` when the id is taken.
    pub async fn insert_organization(&self, org: &Organization) -> DbResult<bool> {
        let done = sqlx::query(
            "INSERT INTO organizations (id, name, operator, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&org.id)
        .bind(&org.name)
        .bind(org.operator)
        .bind(org.created_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Inserts an organization and its first API token in one transaction: both or neither
    /// (a crash between the two must not leave an organization nobody can reach). `false`,
    /// and nothing written, when the organization id is taken.
    pub async fn insert_organization_with_token(
        &self,
        org: &Organization,
        token: &NewApiToken<'_>,
    ) -> DbResult<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "INSERT INTO organizations (id, name, operator, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&org.id)
        .bind(&org.name)
        .bind(org.operator)
        .bind(org.created_at)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_api_token_in(&mut tx, token).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Stores a token's hash, organization and role (a [`NewApiToken`]).
    pub async fn insert_new_api_token(&self, token: &NewApiToken<'_>) -> DbResult<()> {
        let mut tx = self.begin_write().await?;
        insert_api_token_in(&mut tx, token).await?;
        tx.commit().await
    }

    /// Organizations: all of them (`None`) or the one with this id.
    pub async fn list_organizations(&self, only: Option<&str>) -> DbResult<Vec<Organization>> {
        sqlx::query_as(
            "SELECT * FROM organizations WHERE ($1 IS NULL OR id = $1) ORDER BY created_at, id",
        )
        .bind(only)
        .fetch_all(&self.pool)
        .await
    }

    /// Stores a token's hash, organization and role.
    pub async fn insert_api_token(
        &self,
        id: &str,
        organization_id: &str,
        token_hash: &str,
        role: &str,
        label: &str,
        now: i64,
    ) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO api_tokens (id, organization_id, token_hash, role, label, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(organization_id)
        .bind(token_hash)
        .bind(role)
        .bind(label)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The live (not revoked) token with this hash: its organization and role.
    pub async fn api_token_grant(&self, token_hash: &str) -> DbResult<Option<TokenGrant>> {
        sqlx::query_as(
            "SELECT t.id, t.organization_id, t.role, o.operator FROM api_tokens t \
             JOIN organizations o ON o.id = t.organization_id \
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await
    }

    /// The API tokens of an organization, oldest first.
    pub async fn list_api_tokens(&self, organization_id: &str) -> DbResult<Vec<ApiTokenRow>> {
        sqlx::query_as(
            "SELECT id, organization_id, role, label, created_at, revoked_at FROM api_tokens \
             WHERE organization_id = $1 ORDER BY created_at, id",
        )
        .bind(organization_id)
        .fetch_all(&self.pool)
        .await
    }

    /// Revokes a token of this organization; `false` when there is no such live token.
    pub async fn revoke_api_token(
        &self,
        organization_id: &str,
        id: &str,
        now: i64,
    ) -> DbResult<bool> {
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 \
             WHERE id = $2 AND organization_id = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .bind(organization_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
