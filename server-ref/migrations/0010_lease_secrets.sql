-- One seat per running instance, with proof of possession (issue 20, parts 2 and 6).
-- Portable SQL (SQLite and PostgreSQL): one column per ALTER TABLE.

-- SHA-256 (lowercase hex) of the lease's secret: a random 256-bit value the server answers
-- only to the check-out that took (or found, by its request id) the lease, and requires on
-- heartbeat and check-in. Never stored in clear. NULL for leases taken before this migration
-- (they had no secret to present; they end within their timeout, or at their borrowing's end).
ALTER TABLE leases ADD COLUMN secret_hash TEXT;

-- Every other request id answered with a lease (the lease's first one is `leases.request_id`):
-- a check-out presenting the lease's secret, e.g. to borrow the seat it holds. A retry of any
-- of them finds the lease (410 once it has ended), never a new seat.
CREATE TABLE lease_requests (
    license_id TEXT NOT NULL REFERENCES licenses (id),
    client_id TEXT NOT NULL,
    request_id TEXT NOT NULL,
    lease_id TEXT NOT NULL REFERENCES leases (id),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (license_id, client_id, request_id)
);
