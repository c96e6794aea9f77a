-- The console's lists at 100,000 licenses (issue 23). Portable SQL (SQLite and PostgreSQL).

-- `GET /v1/licenses?after=`: an organization's licenses newest first (`created_at DESC, id`),
-- read by keyset from this index (no OFFSET, no sort).
CREATE INDEX licenses_newest ON licenses (organization_id, created_at DESC, id);

-- `GET /v1/licenses?q=`: the customer's name as issued (`lic.customer.name`), lowercased for
-- the search; '' for a license without one. Set at creation; NULL for licenses issued before
-- this migration, which the search matches by their claims' text instead.
ALTER TABLE licenses ADD COLUMN customer_key TEXT;

-- A license page's audit entries: the targets `/v1/licenses/{id}...` and
-- `/console/licenses/{id}...` (license ids are `lic_` and 20 characters: 24), by the id's
-- place in each, newest first.
CREATE INDEX audit_log_by_api_license ON audit_log (organization_id, substr(target, 14, 24), seq);
CREATE INDEX audit_log_by_console_license ON audit_log (organization_id, substr(target, 19, 24), seq);
