-- The admin console (issue 23): local sign-in accounts and their sessions. Portable SQL
-- (SQLite and PostgreSQL), like 0001.
CREATE TABLE console_accounts (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    -- The sign-in name as typed, and its lowercase form: unique across the server, so the
    -- sign-in form needs no organization.
    user_name TEXT NOT NULL,
    user_name_key TEXT NOT NULL UNIQUE,
    -- The argon2id PHC string; NULL: no local password (an invitation not accepted yet).
    password_hash TEXT,
    role TEXT NOT NULL CHECK (role IN ('admin', 'license_manager', 'it_staff', 'auditor')),
    -- An invitation (or an admin's password reset): SHA-256 (hex) of the one-time link's
    -- secret, and until when it may be accepted. NULL: none pending.
    invite_hash TEXT UNIQUE,
    invite_expires_at BIGINT,
    -- Failed sign-ins in a row, and until when (Unix seconds) the account refuses sign-ins.
    failed_sign_ins BIGINT NOT NULL DEFAULT 0,
    locked_until BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE console_sessions (
    -- SHA-256 (hex) of the session cookie's secret; the secret itself is never stored.
    id_hash TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES console_accounts (id) ON DELETE CASCADE,
    -- The session's CSRF token, sent back in every state-changing form.
    csrf TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);

CREATE INDEX console_sessions_account ON console_sessions (account_id);
