-- The console's overview at scale (issue 23: its pages fast with 100 000 licenses and
-- 1 000 000 lease rows). Portable SQL (SQLite and PostgreSQL), like 0001.
--
-- The compliance alerts read an organization's active licenses, oldest first, and count per
-- license what those licenses hold: with this index the licenses' ids come from the index
-- alone, in order, instead of one table read per license to test its status.
CREATE INDEX licenses_organization_status ON licenses (organization_id, status, created_at, id);
-- An organization's denials over a period (the overview's chart, `GET /v1/denials/report`)
-- are read from the period's denials, each checked against its license's organization: both
-- from indexes alone.
CREATE INDEX denials_at_license ON denials (at, license_id);
CREATE INDEX licenses_id_organization ON licenses (id, organization_id);
-- The live leases (`released_at IS NULL AND expires_at > now`) with their license, from the
-- index alone: the overview's busiest licenses, and the reaper's licenses to visit. It holds
-- every column of `leases_expiry` first, which it replaces.
CREATE INDEX leases_live_license ON leases (released_at, expires_at, license_id);
DROP INDEX leases_expiry;
