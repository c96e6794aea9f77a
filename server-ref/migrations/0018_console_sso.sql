-- The admin console's single sign-on (issue 23): identities asserted by an organization's
-- identity provider (OpenID Connect or SAML) linked to console accounts, the OpenID Connect
-- configuration per organization, the e-mail domains that route a sign-in to an organization,
-- and the sign-in flows in progress. Portable SQL (SQLite and PostgreSQL), like 0017.

-- An identity provider's user, linked to the console account it signs in as. The key is the
-- organization with the issuer's own identifiers: a subject of one organization's provider
-- never signs in to another organization.
CREATE TABLE console_identities (
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    -- OIDC `iss` / SAML IdP entity id, and OIDC `sub` / SAML NameID.
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    account_id TEXT NOT NULL REFERENCES console_accounts (id) ON DELETE CASCADE,
    -- 'oidc' or 'saml': the protocol of the first sign-in.
    protocol TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_sign_in_at BIGINT NOT NULL,
    PRIMARY KEY (organization_id, issuer, subject)
);

CREATE INDEX console_identities_account ON console_identities (account_id);

-- An organization's OpenID Connect provider.
CREATE TABLE console_oidc (
    organization_id TEXT PRIMARY KEY REFERENCES organizations (id),
    issuer_url TEXT NOT NULL,
    client_id TEXT NOT NULL,
    -- Write-only in the console: never rendered back, never logged.
    client_secret TEXT NOT NULL,
    -- Space-separated, `openid` included.
    scopes TEXT NOT NULL,
    -- The ID token claim whose values map to roles; NULL: roles are set locally.
    role_claim TEXT,
    -- JSON object: claim value -> role.
    role_map TEXT,
    default_role TEXT,
    enabled BIGINT NOT NULL DEFAULT 1,
    updated_at BIGINT NOT NULL
);

-- An e-mail domain (lowercase) whose users sign in through their organization's provider:
-- one organization per domain.
CREATE TABLE console_sso_domains (
    domain TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id)
);

CREATE INDEX console_sso_domains_organization ON console_sso_domains (organization_id);

-- A sign-in sent to an identity provider and not back yet: found by the SHA-256 (hex) of its
-- `state` (OIDC) or request id (SAML), spent when the provider answers (a replayed answer finds
-- nothing), and bound to the browser that started it by the SHA-256 of a cookie's secret.
CREATE TABLE console_sso_flows (
    state_hash TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    protocol TEXT NOT NULL,
    browser_hash TEXT NOT NULL,
    -- OIDC: the nonce and the PKCE verifier; SAML: unused or the request's own data.
    nonce TEXT NOT NULL,
    verifier TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE INDEX console_sso_flows_created ON console_sso_flows (created_at);
