-- Borrowing: a floating seat taken offline for a fixed time (a lease that needs no heartbeat
-- and ends at its `expires_at`, or earlier when its holder returns it).
-- Portable SQL (SQLite and PostgreSQL): one column per ALTER TABLE, BIGINT seconds and counts.

-- Longest borrowing a check-out may ask for, in seconds; 0: borrowing not allowed. Set by the
-- vendor (license managers), at most 30 days.
ALTER TABLE licenses ADD COLUMN borrow_max_seconds BIGINT NOT NULL DEFAULT 0
    CHECK (borrow_max_seconds BETWEEN 0 AND 2592000);
-- Most leases of the license borrowed at once (each also holds one of its seats).
ALTER TABLE licenses ADD COLUMN borrow_max_leases BIGINT NOT NULL DEFAULT 0
    CHECK (borrow_max_leases >= 0);
-- 1: a borrowed lease (heartbeats leave its expiry alone; an administrator cannot release it,
-- since its holder may be offline with a token valid until `expires_at`).
ALTER TABLE leases ADD COLUMN borrowed BIGINT NOT NULL DEFAULT 0 CHECK (borrowed IN (0, 1));
