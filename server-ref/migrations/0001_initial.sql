-- Initial schema of the reference licensing server.
-- Portable SQL (SQLite and PostgreSQL): TEXT ids chosen by the server, BIGINT Unix seconds,
-- JSON kept as TEXT, no AUTOINCREMENT/SERIAL, no engine-specific functions.

-- Tenants. Every admin-API read and write is scoped to the caller's organization; the one
-- created at first start (`operator` = 1) may also create organizations and rotate keys.
CREATE TABLE organizations (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    operator BIGINT NOT NULL CHECK (operator IN (0, 1)),
    created_at BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    -- SHA-256 (hex) of the bearer token; the token itself is never stored.
    token_hash TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('admin', 'license_manager', 'it_staff', 'auditor')),
    label TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE products (
    -- The product id licenses name in `aud`, e.g. `com.example.cad`. Unique across tenants:
    -- tokens of every tenant are signed by the server's keys, so an `aud` must name one product.
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE policies (
    id TEXT PRIMARY KEY,
    -- The product's organization (copied, so every tenant filter is one column).
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    product_id TEXT NOT NULL REFERENCES products (id),
    name TEXT NOT NULL,
    model TEXT NOT NULL,
    -- Seconds from issue to `exp`; NULL: no expiry unless the license sets one.
    duration BIGINT,
    grace_period BIGINT,
    max_machines BIGINT,
    seats BIGINT,
    -- JSON object: feature name -> {exp?, limit?}.
    features TEXT NOT NULL,
    -- JSON: {req?, maintenance_until?}.
    version_rule TEXT,
    -- JSON: {required, min_matching} for node-locked licenses.
    match_policy TEXT,
    -- 0 or 1 (BIGINT: the Any driver decodes no SQLite BOOLEAN).
    allow_virtual BIGINT NOT NULL CHECK (allow_virtual IN (0, 1)),
    -- JSON: {name?, restrictions} for site licenses.
    site TEXT,
    created_at BIGINT NOT NULL
);

CREATE INDEX policies_product ON policies (product_id);
CREATE INDEX policies_organization ON policies (organization_id);

CREATE TABLE licenses (
    id TEXT PRIMARY KEY,
    -- The product's organization (copied, so every tenant filter is one column).
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    -- SHA-256 (hex) of the canonical license key; the key is shown once, at creation.
    key_hash TEXT NOT NULL UNIQUE,
    -- The key's last group, to tell keys apart in listings.
    key_hint TEXT NOT NULL,
    product_id TEXT NOT NULL REFERENCES products (id),
    policy_id TEXT NOT NULL REFERENCES policies (id),
    status TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'revoked')),
    -- JSON: the claims license tokens are signed from (iat/jti renewed at each signing).
    claims TEXT NOT NULL,
    -- The current signed license token; NULL for a node-locked license with no machine yet.
    token TEXT,
    expires_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX licenses_policy ON licenses (policy_id);
CREATE INDEX licenses_organization ON licenses (organization_id, created_at);

CREATE TABLE machines (
    id TEXT PRIMARY KEY,
    license_id TEXT NOT NULL REFERENCES licenses (id),
    -- The combined fingerprint id.
    fingerprint TEXT NOT NULL,
    -- JSON: the fingerprint as the client sent it (id, component hashes, virtualization).
    fingerprint_json TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    UNIQUE (license_id, fingerprint)
);
