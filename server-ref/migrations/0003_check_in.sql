-- Server check-in and machine transfers.
-- Portable SQL (SQLite and PostgreSQL): one column per ALTER TABLE, BIGINT seconds and counts.

-- Seconds from each signing of a license token to its `lic.check_in.until`; NULL: no check-in.
ALTER TABLE policies ADD COLUMN check_in_interval BIGINT;
-- Seconds after `until` the license stays usable without a check-in (`lic.check_in.grace`).
ALTER TABLE policies ADD COLUMN check_in_grace BIGINT;
-- Machine transfers allowed per license; NULL: unlimited.
ALTER TABLE policies ADD COLUMN max_transfers BIGINT;
-- Transfers made so far (`POST /v1/client/transfer`).
ALTER TABLE licenses ADD COLUMN transfers BIGINT NOT NULL DEFAULT 0;
