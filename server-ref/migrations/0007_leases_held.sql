-- A count of each license's held leases (not released yet, live or lapsed), kept in the same
-- transactions that take or release a lease, under the license's write lock. Since every live
-- lease is held, `leases_held < seats` proves a seat free without counting the live leases: a
-- check-out then costs the same whether the license has 5 seats or 50 000. Only at the edge
-- (every seat held, some perhaps lapsed but not reaped yet) are the live leases counted.
-- Portable SQL (SQLite and PostgreSQL).

ALTER TABLE licenses ADD COLUMN leases_held BIGINT NOT NULL DEFAULT 0
    CHECK (leases_held >= 0);

UPDATE licenses SET leases_held = (
    SELECT COUNT(*) FROM leases
    WHERE leases.license_id = licenses.id AND leases.released_at IS NULL
);
