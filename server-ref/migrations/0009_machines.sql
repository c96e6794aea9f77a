-- The machine limit and tolerated hardware changes (issue 20, parts 0 and 1).

-- 1: machines that were never activated may validate a license with a machine limit and get
-- its token (`max_machines` then only caps activations). 0 (the default): a license with a
-- machine limit (or node-locked) answers no token to a machine that is not activated.
ALTER TABLE policies ADD COLUMN allow_unmetered BIGINT NOT NULL DEFAULT 0;
-- The policy's `allow_unmetered`, copied at license creation.
ALTER TABLE licenses ADD COLUMN allow_unmetered BIGINT NOT NULL DEFAULT 0;

-- What happened to a license's machines besides activation: a tolerated hardware change
-- (`fingerprint_updated`: the stored fingerprint replaced by the one presented, which the
-- license's match rule recognized as the same machine), a deactivation by the client
-- (`deactivated`) and a removal by an administrator (`deleted`).
CREATE TABLE machine_events (
    id TEXT PRIMARY KEY,
    license_id TEXT NOT NULL REFERENCES licenses (id),
    machine_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('fingerprint_updated', 'deactivated', 'deleted')),
    -- The machine's combined fingerprint id after the event (updated) or when removed.
    fingerprint TEXT NOT NULL,
    -- JSON: that fingerprint as the client sent it.
    fingerprint_json TEXT NOT NULL,
    -- fingerprint_updated: the id it replaced.
    previous_fingerprint TEXT,
    -- fingerprint_updated: JSON array of the component names that changed.
    changed TEXT,
    -- deactivated: 1 until an activation takes the freed slot. Re-activating the same machine
    -- takes it freely; activating another machine counts one transfer against the policy's
    -- max_transfers, like POST /v1/client/transfer.
    pending BIGINT NOT NULL DEFAULT 0 CHECK (pending IN (0, 1)),
    created_at BIGINT NOT NULL
);

CREATE INDEX machine_events_license ON machine_events (license_id, created_at);
