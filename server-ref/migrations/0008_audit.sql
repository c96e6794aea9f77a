-- The audit trail: one row per successful state-changing admin request, hash-chained.
-- `seq` is 1, 2, 3, ... assigned by the one writer (Db::append_audit, serialized across
-- replicas); `hash` is SHA-256 (lowercase hex) over a length-prefixed encoding of every other
-- column, `prev_hash` included (64 zeros for seq 1), so an edited, deleted or reordered row
-- breaks the chain (`GET /v1/audit/verify`). `actor` is an API token's id (never the token)
-- or `cli`. Portable SQL (SQLite and PostgreSQL).

CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    organization_id TEXT,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    status BIGINT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);

-- `GET /v1/audit`: one organization's entries after a seq.
CREATE INDEX audit_log_by_organization ON audit_log (organization_id, seq);
