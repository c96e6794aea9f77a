-- The FIFO wait queue of a floating license: a check-out that finds no free seat may wait in
-- line (it asks with `queue_seconds`). While anyone waits, a freed seat goes to the head of the
-- line, not to whoever asks first.
-- Portable SQL (SQLite and PostgreSQL): one column per ALTER TABLE, BIGINT seconds.

-- Longest wait in line a check-out may ask for, in seconds; 0: no queue (the default). Set by
-- the customer's administrator (IT staff), at most one day.
ALTER TABLE licenses ADD COLUMN queue_max_seconds BIGINT NOT NULL DEFAULT 0
    CHECK (queue_max_seconds BETWEEN 0 AND 86400);

-- One place in line per client installation and user of a license.
CREATE TABLE seat_queue (
    id TEXT PRIMARY KEY,
    license_id TEXT NOT NULL REFERENCES licenses (id),
    client_id TEXT NOT NULL,
    user_name TEXT NOT NULL,
    -- The order of the line: one more than the license's last place, taken under the license's
    -- write lock (the check-out's), so two places never share a number.
    seq BIGINT NOT NULL,
    queued_at BIGINT NOT NULL,
    -- The last check-out that kept this place (the waiting client asks again every few seconds).
    polled_at BIGINT NOT NULL,
    -- The end of the wait the client asked for (capped by `queue_max_seconds`).
    wait_until BIGINT NOT NULL,
    -- The place is held while now < expires_at = min(wait_until, polled_at + the poll window):
    -- a client that stopped asking loses it, as does one whose wait is over.
    expires_at BIGINT NOT NULL,
    UNIQUE (license_id, client_id, user_name),
    UNIQUE (license_id, seq)
);

-- Places whose clients stopped asking (the reaper).
CREATE INDEX seat_queue_polled ON seat_queue (polled_at);
