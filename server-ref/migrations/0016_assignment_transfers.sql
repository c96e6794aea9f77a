-- Transfers of named-seat assignments that need an approval (issue 22): moving an assignment
-- of a perpetual license (no `exp`) whose policy has `transfer_approval` = 1 to another
-- assignee is a request, approved or rejected by an admin other than the requester's token.
-- Portable SQL (SQLite and PostgreSQL), like 0001.
CREATE TABLE assignment_transfers (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    license_id TEXT NOT NULL REFERENCES licenses (id),
    -- The assignment to move (no foreign key: unassigning deletes it, and its pending
    -- transfers are then `cancelled`, kept for the record).
    assignment_id TEXT NOT NULL,
    -- The assignee it moves from (as it was at the request) and to.
    from_kind TEXT NOT NULL CHECK (from_kind IN ('user', 'department', 'device')),
    from_id TEXT NOT NULL,
    to_kind TEXT NOT NULL CHECK (to_kind IN ('user', 'department', 'device')),
    to_id TEXT NOT NULL,
    -- Seats the moved assignment takes (the quota of a department; 1 otherwise).
    to_seats BIGINT NOT NULL DEFAULT 1 CHECK (to_seats >= 1),
    state TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'approved', 'rejected', 'cancelled')),
    -- The API token that asked, and the one that decided (never the same).
    requested_by TEXT NOT NULL,
    requested_at BIGINT NOT NULL,
    decided_by TEXT,
    decided_at BIGINT,
    -- Why it was rejected or cancelled (free text from the decider, or `unassigned`).
    reason TEXT
);

CREATE INDEX assignment_transfers_queue ON assignment_transfers (organization_id, state, requested_at);
CREATE INDEX assignment_transfers_assignment ON assignment_transfers (assignment_id, state);
