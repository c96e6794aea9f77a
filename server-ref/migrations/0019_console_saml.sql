-- The admin console's SAML 2.0 single sign-on (issue 23): an organization's identity provider,
-- the AuthnRequests sent to it and not answered yet, and the assertions already consumed.
-- Portable SQL (SQLite and PostgreSQL), like 0017.

-- An organization's SAML identity provider, as its admin configured it (or imported it from
-- the IdP's metadata). The service provider's own entity id and ACS URL are derived from the
-- console's URL and the organization id; nothing of them is stored.
CREATE TABLE console_saml (
    organization_id TEXT PRIMARY KEY REFERENCES organizations (id),
    idp_entity_id TEXT NOT NULL,
    -- The IdP's SingleSignOnService URL (HTTP-Redirect binding).
    idp_sso_url TEXT NOT NULL,
    -- The IdP's signing certificate (PEM): the only key an assertion may be signed with.
    idp_certificate TEXT NOT NULL,
    -- The assertion attribute whose values map to roles; NULL: roles are set locally.
    role_attribute TEXT,
    -- JSON object: attribute value -> role.
    role_map TEXT,
    default_role TEXT,
    updated_at BIGINT NOT NULL
);

-- An AuthnRequest sent and not consumed yet: the RelayState sent with it (random, found again
-- when the answer comes back), its ID (the InResponseTo the answer must carry), the SHA-256
-- (hex) of the secret of the cookie of the browser that started it, and until when it may be
-- answered. Once the ACS accepted the answer, `identity` holds what the assertion said (JSON)
-- until that same browser finishes the sign-in; the row is then deleted.
CREATE TABLE console_saml_requests (
    relay_state TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    browser_hash TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    identity TEXT
);

CREATE INDEX console_saml_requests_expires ON console_saml_requests (expires_at);

-- Assertion IDs already consumed, kept until the assertion expires: one-time use.
CREATE TABLE console_saml_assertions (
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    assertion_id TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (organization_id, assertion_id)
);

CREATE INDEX console_saml_assertions_expires ON console_saml_assertions (expires_at);
