-- OAuth 2.0 (issue 25): clients of the client-credentials grant, registered per organization,
-- and the access tokens revoked before they expire (RFC 7009). Portable SQL (SQLite and
-- PostgreSQL), like 0001.
CREATE TABLE oauth_clients (
    -- The client_id.
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    name TEXT NOT NULL,
    -- The most its tokens may do: one of the API tokens' roles (never `scim`: SCIM has its
    -- own tokens).
    role TEXT NOT NULL CHECK (role IN ('admin', 'license_manager', 'it_staff', 'auditor')),
    -- SHA-256 (hex) of the client secret; the secret itself is never stored.
    secret_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE INDEX oauth_clients_organization ON oauth_clients (organization_id);

-- Revoked access tokens, by jti, until they would have expired anyway.
CREATE TABLE oauth_revoked_tokens (
    jti TEXT PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES oauth_clients (id),
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL
);

CREATE INDEX oauth_revoked_tokens_expiry ON oauth_revoked_tokens (expires_at);
