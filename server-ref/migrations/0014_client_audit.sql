-- The audit of client events, personal data that can be erased, and retention (issue 22).
-- Portable SQL (SQLite and PostgreSQL).
--
-- `audit_events`: a second hash chain beside `audit_log` (which keeps the admin requests and
-- its contract), one row per client event (`machine.activated`, `lease.denied`, ...) and per
-- event other parts report (`seat.reclaimed`, `user.deprovisioned`). `seq` 1, 2, 3, ...
-- across organizations, written by each replica's audit writer in batches (serialized across
-- replicas like `audit_log`). Two hashes per row:
--   content_hash = SHA-256 over actor, action, target_id, license_id, detail and
--                  subject_commitment;
--   hash         = SHA-256 over seq, at, organization_id, content_hash and prev_hash.
-- Personal data (a floating `user`, a host name, an e-mail) is in `subject`, outside both;
-- the hashes cover `subject_commitment` = SHA-256(subject_salt || subject), the salt random
-- per row. Erasure blanks `subject` and `subject_salt` and keeps the commitment, so the chain
-- still verifies. Pruning (retention) blanks a row's content columns and sets `pruned`: its
-- `content_hash` stays, so the row keeps its place in the chain and its seq, time and
-- organization stay verified (docs/PRIVACY.md).
CREATE TABLE audit_events (
    seq BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    organization_id TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target_id TEXT NOT NULL,
    license_id TEXT,
    detail TEXT NOT NULL,
    subject_commitment TEXT,
    subject TEXT,
    subject_salt TEXT,
    content_hash TEXT NOT NULL,
    pruned BIGINT NOT NULL DEFAULT 0,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);

-- `GET /v1/audit/events`: one organization's events after a seq.
CREATE INDEX audit_events_by_organization ON audit_events (organization_id, seq);
-- No index on `subject`: erasure is rare and reads the organization's rows by the index above,
-- while every check-out would pay for one more index.

-- Where verification of a chain starts once its oldest rows are pruned: the last deleted
-- row's seq and hash (`chain`: `audit_log` or `audit_events`). Verification restarts at
-- seq + 1 with prev_hash = hash.
CREATE TABLE audit_checkpoints (
    chain TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    at BIGINT NOT NULL
);

-- Heartbeats are counted, not chained: per organization, license and UTC day (days since the
-- Unix epoch).
CREATE TABLE audit_heartbeats (
    organization_id TEXT NOT NULL,
    license_id TEXT NOT NULL,
    utc_day BIGINT NOT NULL,
    beats BIGINT NOT NULL,
    PRIMARY KEY (organization_id, license_id, utc_day)
);

-- Retention per organization, in days (NULL: kept for ever). Without a row: audit entries and
-- lease history kept for ever, denials 60 days. `audit_pruned_before`: the newest horizon the
-- pruning applied to this organization's audit rows (Unix seconds; a pruned row older than it
-- is a pruning, a pruned row newer than it is tampering).
CREATE TABLE retention_policies (
    organization_id TEXT PRIMARY KEY,
    audit_days BIGINT,
    lease_history_days BIGINT,
    denial_days BIGINT NOT NULL DEFAULT 60,
    audit_pruned_before BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL
);
