-- Floating (concurrent) licenses: seat leases, the per-license lease timeout, denials.
-- Portable SQL (SQLite and PostgreSQL), like 0001.

-- Seconds of inactivity after which a seat lease lapses; set by the customer's administrator
-- within 5 to 60 minutes (the API refuses other values first, with a clear error).
ALTER TABLE licenses ADD COLUMN lease_timeout BIGINT NOT NULL DEFAULT 900
    CHECK (lease_timeout BETWEEN 300 AND 3600);

CREATE TABLE leases (
    id TEXT PRIMARY KEY,
    license_id TEXT NOT NULL REFERENCES licenses (id),
    -- The client installation and the user holding the seat (`user` is reserved in PostgreSQL).
    client_id TEXT NOT NULL,
    user_name TEXT NOT NULL,
    -- The client's id for the check-out request: a retry returns the same lease.
    request_id TEXT NOT NULL,
    -- Fencing counter: a heartbeat must present it; a force-release bumps it.
    epoch BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    -- Absolute server time; the lease is live while released_at IS NULL AND now < expires_at.
    expires_at BIGINT NOT NULL,
    released_at BIGINT,
    release_reason TEXT CHECK (release_reason IN ('checked_in', 'forced', 'expired')),
    UNIQUE (license_id, client_id, request_id)
);

-- Live leases of a license (check-out counts them) and expired ones (the reaper).
CREATE INDEX leases_license_live ON leases (license_id, released_at, expires_at);
CREATE INDEX leases_expiry ON leases (released_at, expires_at);

-- Every refused check-out, kept 60 days (rolling purge).
CREATE TABLE denials (
    id TEXT PRIMARY KEY,
    license_id TEXT NOT NULL REFERENCES licenses (id),
    client_id TEXT NOT NULL,
    user_name TEXT NOT NULL,
    at BIGINT NOT NULL
);

CREATE INDEX denials_at ON denials (at);
CREATE INDEX denials_license_at ON denials (license_id, at);
