//! The console's SAML single sign-on (migration 0019): SQL only; the protocol and its checks
//! are in `console/saml.rs`.

use sqlx::FromRow;

use super::{Db, DbResult};

/// An organization's SAML identity provider.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct SamlConfig {
    pub organization_id: String,
    pub idp_entity_id: String,
    pub idp_sso_url: String,
    pub idp_certificate: String,
    pub role_attribute: Option<String>,
    pub role_map: Option<String>,
    pub default_role: Option<String>,
    pub updated_at: i64,
}

/// An AuthnRequest not consumed yet.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct SamlRequest {
    pub request_id: String,
    pub browser_hash: String,
    pub expires_at: i64,
    /// The verified identity (JSON) once the ACS accepted the answer.
    pub identity: Option<String>,
}

impl Db {
    /// The SAML configuration of `organization_id`, if any.
    pub async fn console_saml(&self, organization_id: &str) -> DbResult<Option<SamlConfig>> {
        sqlx::query_as(
            "SELECT organization_id, idp_entity_id, idp_sso_url, idp_certificate, role_attribute, \
             role_map, default_role, updated_at FROM console_saml WHERE organization_id = $1",
        )
        .bind(organization_id)
        .fetch_optional(&self.pool)
        .await
    }

    /// Stores (inserts or replaces) an organization's SAML configuration.
    pub async fn put_console_saml(&self, config: &SamlConfig) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO console_saml (organization_id, idp_entity_id, idp_sso_url, \
             idp_certificate, role_attribute, role_map, default_role, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (organization_id) DO UPDATE SET \
             idp_entity_id = excluded.idp_entity_id, idp_sso_url = excluded.idp_sso_url, \
             idp_certificate = excluded.idp_certificate, role_attribute = excluded.role_attribute, \
             role_map = excluded.role_map, default_role = excluded.default_role, \
             updated_at = excluded.updated_at",
        )
        .bind(&config.organization_id)
        .bind(&config.idp_entity_id)
        .bind(&config.idp_sso_url)
        .bind(&config.idp_certificate)
        .bind(&config.role_attribute)
        .bind(&config.role_map)
        .bind(&config.default_role)
        .bind(config.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes an organization's SAML configuration (its sign-ins in progress end too); whether
    /// there was one.
    pub async fn delete_console_saml(&self, organization_id: &str) -> DbResult<bool> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM console_saml_requests WHERE organization_id = $1")
            .bind(organization_id)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM console_saml WHERE organization_id = $1")
            .bind(organization_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records an AuthnRequest sent for the browser whose cookie secret hashes to
    /// `browser_hash`; expired requests and consumed assertions are purged on the way.
    pub async fn insert_console_saml_request(
        &self,
        relay_state: &str,
        request_id: &str,
        organization_id: &str,
        browser_hash: &str,
        expires_at: i64,
        now: i64,
    ) -> DbResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM console_saml_requests WHERE expires_at < $1")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM console_saml_assertions WHERE expires_at < $1")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO console_saml_requests (relay_state, request_id, organization_id, \
             browser_hash, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(relay_state)
        .bind(request_id)
        .bind(organization_id)
        .bind(browser_hash)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// The outstanding request of `organization_id` sent with `relay_state`.
    pub async fn console_saml_request(
        &self,
        organization_id: &str,
        relay_state: &str,
    ) -> DbResult<Option<SamlRequest>> {
        sqlx::query_as(
            "SELECT request_id, browser_hash, expires_at, identity FROM console_saml_requests \
             WHERE organization_id = $1 AND relay_state = $2",
        )
        .bind(organization_id)
        .bind(relay_state)
        .fetch_optional(&self.pool)
        .await
    }

    /// The ACS accepted the answer to the request sent with `relay_state`: consumes assertion `assertion_id` (kept
    /// until `assertion_expires_at`) and stores the verified `identity` on the request, in
    /// one transaction. `false` (nothing written) when the assertion was consumed before or
    /// the request was already answered: a replay.
    pub async fn answer_console_saml_request(
        &self,
        organization_id: &str,
        relay_state: &str,
        assertion_id: &str,
        assertion_expires_at: i64,
        identity: &str,
    ) -> DbResult<bool> {
        let mut tx = self.begin_write().await?;
        let consumed = sqlx::query(
            "INSERT INTO console_saml_assertions (organization_id, assertion_id, expires_at) \
             VALUES ($1, $2, $3) ON CONFLICT (organization_id, assertion_id) DO NOTHING",
        )
        .bind(organization_id)
        .bind(assertion_id)
        .bind(assertion_expires_at)
        .execute(&mut *tx)
        .await?;
        if consumed.rows_affected() != 1 {
            return Ok(false);
        }
        let answered = sqlx::query(
            "UPDATE console_saml_requests SET identity = $3 \
             WHERE organization_id = $1 AND relay_state = $2 AND identity IS NULL",
        )
        .bind(organization_id)
        .bind(relay_state)
        .bind(identity)
        .execute(&mut *tx)
        .await?;
        if answered.rows_affected() != 1 {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Deletes the request sent with `relay_state` (spent); whether it was there (one finish
    /// per request).
    pub async fn delete_console_saml_request(
        &self,
        organization_id: &str,
        relay_state: &str,
    ) -> DbResult<bool> {
        let done = sqlx::query(
            "DELETE FROM console_saml_requests WHERE organization_id = $1 AND relay_state = $2",
        )
        .bind(organization_id)
        .bind(relay_state)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
