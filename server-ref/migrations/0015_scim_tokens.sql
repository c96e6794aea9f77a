-- API tokens may carry the role `scim` (issue 22): the bearer token of an organization's
-- identity provider, which may call /scim/v2 and nothing else (and no other role may call
-- /scim/v2). The role CHECK of 0001 lists four roles and neither engine can widen a CHECK
-- portably, so the table is rebuilt: created anew, copied, the old one dropped, the new one
-- renamed (no table references api_tokens). Portable SQL (SQLite and PostgreSQL), like 0001.
CREATE TABLE api_tokens_0015 (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    -- SHA-256 (hex) of the bearer token; the token itself is never stored.
    token_hash TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('admin', 'license_manager', 'it_staff', 'auditor', 'scim')),
    label TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

INSERT INTO api_tokens_0015 (id, organization_id, token_hash, role, label, created_at, revoked_at)
    SELECT id, organization_id, token_hash, role, label, created_at, revoked_at FROM api_tokens;

DROP TABLE api_tokens;

ALTER TABLE api_tokens_0015 RENAME TO api_tokens;
