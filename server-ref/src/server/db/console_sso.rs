//! The console's single sign-on (migration 0018): identities linked to console accounts, the
//! OpenID Connect configuration per organization, e-mail domains, and the flows in progress.
//! SQL only; the rules are in `console/federation.rs` and `console/oidc.rs`.

use sqlx::FromRow;

use super::{Db, DbResult};

/// The console account an identity provider's user is linked to.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct FederatedAccount {
    pub account_id: String,
}

/// What linking a new identity did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NewIdentity {
    /// The account was created and the identity linked to it.
    Created,
    /// The user name is taken (by any organization): nothing written.
    NameTaken,
    /// A concurrent sign-in linked the identity first: nothing written.
    AlreadyLinked,
}

/// An organization's OpenID Connect provider, as stored.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct OidcConfigRow {
    pub organization_id: String,
    pub issuer_url: String,
    pub client_id: String,
    pub client_secret: String,
    pub scopes: String,
    pub role_claim: Option<String>,
    pub role_map: Option<String>,
    pub default_role: Option<String>,
    pub enabled: i64,
    pub updated_at: i64,
}

/// A sign-in sent to an identity provider and not back yet.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct SsoFlow {
    pub organization_id: String,
    pub protocol: String,
    pub browser_hash: String,
    pub nonce: String,
    pub verifier: String,
    pub created_at: i64,
}

impl Db {
    /// The account linked to `subject` of `issuer` in `organization_id`.
    pub async fn federated_account(
        &self,
        organization_id: &str,
        issuer: &str,
        subject: &str,
    ) -> DbResult<Option<FederatedAccount>> {
        sqlx::query_as(
            "SELECT a.id AS account_id FROM console_identities i \
             JOIN console_accounts a ON a.id = i.account_id AND a.organization_id = i.organization_id \
             WHERE i.organization_id = $1 AND i.issuer = $2 AND i.subject = $3",
        )
        .bind(organization_id)
        .bind(issuer)
        .bind(subject)
        .fetch_optional(&self.pool)
        .await
    }

    /// Creates an account without a password (it signs in only through its provider) and
    /// links `subject` of `issuer` to it, in one transaction.
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_federated_account(
        &self,
        account_id: &str,
        organization_id: &str,
        user_name: &str,
        role: &str,
        issuer: &str,
        subject: &str,
        protocol: &str,
        now: i64,
    ) -> DbResult<NewIdentity> {
        let mut tx = self.begin_write().await?;
        let linked: Option<String> = sqlx::query_scalar(
            "SELECT account_id FROM console_identities \
             WHERE organization_id = $1 AND issuer = $2 AND subject = $3",
        )
        .bind(organization_id)
        .bind(issuer)
        .bind(subject)
        .fetch_optional(&mut *tx)
        .await?;
        if linked.is_some() {
            return Ok(NewIdentity::AlreadyLinked);
        }
        let done = sqlx::query(
            "INSERT INTO console_accounts (id, organization_id, user_name, user_name_key, role, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) \
             ON CONFLICT (user_name_key) DO NOTHING",
        )
        .bind(account_id)
        .bind(organization_id)
        .bind(user_name)
        .bind(user_name.to_lowercase())
        .bind(role)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(NewIdentity::NameTaken);
        }
        sqlx::query(
            "INSERT INTO console_identities (organization_id, issuer, subject, account_id, \
             protocol, created_at, last_sign_in_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(organization_id)
        .bind(issuer)
        .bind(subject)
        .bind(account_id)
        .bind(protocol)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(NewIdentity::Created)
    }

    /// Records a sign-in of a linked identity; sets its account's role when `role` is given
    /// (mapped from the provider's claim).
    pub async fn federated_sign_in(
        &self,
        organization_id: &str,
        issuer: &str,
        subject: &str,
        account_id: &str,
        role: Option<&str>,
        now: i64,
    ) -> DbResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE console_identities SET last_sign_in_at = $4 \
             WHERE organization_id = $1 AND issuer = $2 AND subject = $3",
        )
        .bind(organization_id)
        .bind(issuer)
        .bind(subject)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if let Some(role) = role {
            sqlx::query(
                "UPDATE console_accounts SET role = $3, updated_at = $4 \
                 WHERE id = $1 AND organization_id = $2 AND role <> $3",
            )
            .bind(account_id)
            .bind(organization_id)
            .bind(role)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }

    /// The organization's OpenID Connect provider.
    pub async fn oidc_config(&self, organization_id: &str) -> DbResult<Option<OidcConfigRow>> {
        sqlx::query_as(
            "SELECT organization_id, issuer_url, client_id, client_secret, scopes, role_claim, \
             role_map, default_role, enabled, updated_at FROM console_oidc \
             WHERE organization_id = $1",
        )
        .bind(organization_id)
        .fetch_optional(&self.pool)
        .await
    }

    /// Stores the organization's OpenID Connect provider (replacing it).
    pub async fn put_oidc_config(&self, row: &OidcConfigRow) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO console_oidc (organization_id, issuer_url, client_id, client_secret, \
             scopes, role_claim, role_map, default_role, enabled, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (organization_id) DO UPDATE SET issuer_url = excluded.issuer_url, \
             client_id = excluded.client_id, client_secret = excluded.client_secret, \
             scopes = excluded.scopes, role_claim = excluded.role_claim, \
             role_map = excluded.role_map, default_role = excluded.default_role, \
             enabled = excluded.enabled, updated_at = excluded.updated_at",
        )
        .bind(&row.organization_id)
        .bind(&row.issuer_url)
        .bind(&row.client_id)
        .bind(&row.client_secret)
        .bind(&row.scopes)
        .bind(&row.role_claim)
        .bind(&row.role_map)
        .bind(&row.default_role)
        .bind(row.enabled)
        .bind(row.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The organization's sign-in e-mail domains, sorted.
    pub async fn sso_domains(&self, organization_id: &str) -> DbResult<Vec<String>> {
        sqlx::query_scalar(
            "SELECT domain FROM console_sso_domains WHERE organization_id = $1 ORDER BY domain",
        )
        .bind(organization_id)
        .fetch_all(&self.pool)
        .await
    }

    /// Replaces the organization's sign-in e-mail domains (lowercase). `Err(domain)` (nothing
    /// written) when another organization has one of them.
    pub async fn set_sso_domains(
        &self,
        organization_id: &str,
        domains: &[String],
    ) -> DbResult<Result<(), String>> {
        let mut tx = self.begin_write().await?;
        for domain in domains {
            let owner: Option<String> = sqlx::query_scalar(
                "SELECT organization_id FROM console_sso_domains WHERE domain = $1",
            )
            .bind(domain)
            .fetch_optional(&mut *tx)
            .await?;
            if owner.is_some_and(|o| o != organization_id) {
                return Ok(Err(domain.clone()));
            }
        }
        sqlx::query("DELETE FROM console_sso_domains WHERE organization_id = $1")
            .bind(organization_id)
            .execute(&mut *tx)
            .await?;
        for domain in domains {
            sqlx::query(
                "INSERT INTO console_sso_domains (domain, organization_id) VALUES ($1, $2)",
            )
            .bind(domain)
            .bind(organization_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// The organization whose users sign in with e-mail `domain` (lowercase).
    pub async fn sso_organization_by_domain(&self, domain: &str) -> DbResult<Option<String>> {
        sqlx::query_scalar("SELECT organization_id FROM console_sso_domains WHERE domain = $1")
            .bind(domain)
            .fetch_optional(&self.pool)
            .await
    }

    /// Whether organization `id` exists.
    pub async fn organization_exists(&self, id: &str) -> DbResult<bool> {
        let found: Option<String> =
            sqlx::query_scalar("SELECT id FROM organizations WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(found.is_some())
    }

    /// Stores a flow sent to an identity provider, found again by `state_hash`; flows older
    /// than `expired_before` go.
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_sso_flow(
        &self,
        state_hash: &str,
        organization_id: &str,
        protocol: &str,
        browser_hash: &str,
        nonce: &str,
        verifier: &str,
        now: i64,
        expired_before: i64,
    ) -> DbResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM console_sso_flows WHERE created_at < $1")
            .bind(expired_before)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO console_sso_flows (state_hash, organization_id, protocol, browser_hash, \
             nonce, verifier, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(state_hash)
        .bind(organization_id)
        .bind(protocol)
        .bind(browser_hash)
        .bind(nonce)
        .bind(verifier)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// Takes (deletes and returns) the flow found by `state_hash`: a flow is answered once.
    pub async fn take_sso_flow(&self, state_hash: &str) -> DbResult<Option<SsoFlow>> {
        sqlx::query_as(
            "DELETE FROM console_sso_flows WHERE state_hash = $1 RETURNING organization_id, \
             protocol, browser_hash, nonce, verifier, created_at",
        )
        .bind(state_hash)
        .fetch_optional(&self.pool)
        .await
    }
}
