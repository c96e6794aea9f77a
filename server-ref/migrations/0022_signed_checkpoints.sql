-- Signed checkpoints of the audit chains (issue 24, "Audit evidence"). Portable SQL (SQLite
-- and PostgreSQL).
--
-- Each row is one `audit-checkpoint+jwt` token signed by the server's current signing key
-- (docs/FORMAT.md, "Audit checkpoint"): `organization_id` NULL for a checkpoint of the whole
-- server's chains (`scope` `server`: the heads of `audit_log` and `audit_events`), else one
-- organization's (`scope` `organization`: its last admin entry and the digest of its entries
-- since its checkpoint before). The token is the evidence; the other columns repeat its claims
-- for lookups. `id` 1, 2, 3, ... is assigned under the audit chain's write lock. (Not to be
-- confused with `audit_checkpoints`, where verification restarts once a chain is pruned.)
CREATE TABLE audit_signed_checkpoints (
    id BIGINT PRIMARY KEY,
    organization_id TEXT,
    at BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    digest TEXT,
    kid TEXT NOT NULL,
    token TEXT NOT NULL
);

-- An organization's checkpoints in order (its last one starts the next digest).
CREATE INDEX audit_signed_checkpoints_by_organization
    ON audit_signed_checkpoints (organization_id, seq);
