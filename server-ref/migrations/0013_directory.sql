-- People, departments and named seats (issue 22). Portable SQL (SQLite and PostgreSQL), like 0001.

-- The people of an organization (the buyer's directory), created through the admin API,
-- imported from CSV or provisioned by SCIM. `user_name` is unique per organization without
-- regard to case (`user_name_key` is its lowercase form, which the uniqueness and lookups use,
-- as SCIM's `userName` is case-insensitive); floating check-outs, activations and validations
-- that name a user are linked to the row whose key matches.
CREATE TABLE directory_users (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    user_name TEXT NOT NULL,
    user_name_key TEXT NOT NULL,
    display_name TEXT,
    email TEXT,
    -- The identity provider's id for the person (SCIM `externalId`).
    external_id TEXT,
    -- 0: deprovisioned (left the company or disabled); holds no seat.
    active BIGINT NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    -- The enterprise extension's `department` (free text, as identity providers send it).
    department TEXT,
    -- The last change, counted from 1 (SCIM `meta.version`, an ETag).
    version BIGINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (organization_id, user_name_key)
);

CREATE INDEX directory_users_external ON directory_users (organization_id, external_id);
CREATE INDEX directory_users_email ON directory_users (organization_id, email);

-- Departments, or groups (SCIM `Group`): a user can belong to several. `name_key` is the
-- lowercase name, unique per organization.
CREATE TABLE departments (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    external_id TEXT,
    version BIGINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (organization_id, name_key)
);

CREATE TABLE department_members (
    department_id TEXT NOT NULL REFERENCES departments (id),
    user_id TEXT NOT NULL REFERENCES directory_users (id),
    -- The organization of both (copied, so every tenant filter is one column).
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    PRIMARY KEY (department_id, user_id)
);

CREATE INDEX department_members_user ON department_members (user_id);

-- A license's seats assigned to a user, to a department (a quota of `seats`), or to a device
-- (an activated machine). `assignee_id` is the directory user's, department's or machine's id,
-- so one assignee holds at most one assignment per license.
CREATE TABLE seat_assignments (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    license_id TEXT NOT NULL REFERENCES licenses (id),
    assignee_kind TEXT NOT NULL CHECK (assignee_kind IN ('user', 'department', 'device')),
    assignee_id TEXT NOT NULL,
    -- Seats the assignment takes: 1 for a user or a device, the quota for a department.
    seats BIGINT NOT NULL DEFAULT 1 CHECK (seats >= 1),
    -- `active`; `reclaimed` (idle past the threshold, or deprovisioned): the seat is free
    -- again, and the row is kept so a returning user gets a seat back when one is free.
    state TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'reclaimed')),
    -- Why and when it was reclaimed (`inactive`, `deprovisioned`, `unassigned`...).
    reclaimed_at BIGINT,
    reclaim_reason TEXT,
    -- The last validation, heartbeat or check-out by the assignee (NULL: never used).
    last_used_at BIGINT,
    -- The API token (or `cli`, `scim`) that assigned it.
    assigned_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (license_id, assignee_kind, assignee_id)
);

CREATE INDEX seat_assignments_assignee ON seat_assignments (organization_id, assignee_kind, assignee_id);
CREATE INDEX seat_assignments_idle ON seat_assignments (state, last_used_at);

-- Who may use a license's seats: `floating` (anyone in the organization, up to the seat count;
-- today's behaviour) or `named` (only assignees). Copied from the policy at license creation,
-- and changeable per license.
ALTER TABLE policies ADD COLUMN seat_mode TEXT NOT NULL DEFAULT 'floating'
    CHECK (seat_mode IN ('floating', 'named'));
ALTER TABLE licenses ADD COLUMN seat_mode TEXT NOT NULL DEFAULT 'floating'
    CHECK (seat_mode IN ('floating', 'named'));
-- 1: assigning beyond the seat count is allowed and flagged as an over-allocation compliance
-- violation; 0 (the default): it is refused.
ALTER TABLE policies ADD COLUMN allow_over_allocation BIGINT NOT NULL DEFAULT 0
    CHECK (allow_over_allocation IN (0, 1));
ALTER TABLE licenses ADD COLUMN allow_over_allocation BIGINT NOT NULL DEFAULT 0
    CHECK (allow_over_allocation IN (0, 1));
-- Seconds without a validation, heartbeat or check-out after which an assigned seat is
-- reclaimed; NULL: never. The license's value, when set, overrides its policy's.
ALTER TABLE policies ADD COLUMN reclaim_after BIGINT;
ALTER TABLE licenses ADD COLUMN reclaim_after BIGINT;
-- 1: moving a perpetual license's assignment to another assignee needs an approval.
ALTER TABLE policies ADD COLUMN transfer_approval BIGINT NOT NULL DEFAULT 0
    CHECK (transfer_approval IN (0, 1));

-- The directory user a floating lease, a denial or a machine belongs to, when the user the app
-- named matches one (NULL otherwise): usage per user and per department.
ALTER TABLE leases ADD COLUMN user_id TEXT;
ALTER TABLE denials ADD COLUMN user_id TEXT;
ALTER TABLE machines ADD COLUMN user_id TEXT;
-- The user name an activation named (personal data: erased with the user).
ALTER TABLE machines ADD COLUMN user_name TEXT;

CREATE INDEX leases_user ON leases (user_id);
CREATE INDEX denials_user ON denials (user_id);
CREATE INDEX machines_user ON machines (user_id);
