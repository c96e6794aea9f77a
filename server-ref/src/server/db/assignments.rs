//! Named seats (issue 22): a license's seats assigned to directory users, departments (a
//! quota of seats) or devices (its activated machines), the transfers of assignments that need
//! an approval (migration 0016), and the one read the app-facing routes make to admit a user of
//! a named license. Which assignment admits whom, seat counting and approvals are the
//! handlers' (`server::seat_policy`, `routes::assignments`): this layer only runs SQL.
//!
//! Writes take the license's write transaction ([`Db::begin_license_write`]), so the count of
//! assigned seats and the insert that relies on it serialize with every other writer of the
//! license.

use sqlx::FromRow;

use super::{Db, DbResult, Tx};

/// The columns of an [`Assignment`]: the row, and the assignee's name (user name, department
/// name or machine fingerprint id) when the assignee still exists.
macro_rules! assignment_select {
    () => {
        "SELECT a.id, a.license_id, a.assignee_kind, a.assignee_id, a.seats, \
         a.state, a.reclaimed_at, a.reclaim_reason, a.last_used_at, a.assigned_by, \
         a.created_at, a.updated_at, \
         COALESCE(u.user_name, d.name, m.fingerprint) AS assignee_name \
         FROM seat_assignments a \
         LEFT JOIN directory_users u ON a.assignee_kind = 'user' AND u.id = a.assignee_id \
         LEFT JOIN departments d ON a.assignee_kind = 'department' AND d.id = a.assignee_id \
         LEFT JOIN machines m ON a.assignee_kind = 'device' AND m.id = a.assignee_id "
    };
}

/// A row of `seat_assignments`, with its assignee's name.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct Assignment {
    pub id: String,
    pub license_id: String,
    /// `user`, `department` or `device`.
    pub assignee_kind: String,
    pub assignee_id: String,
    /// Seats it takes: the quota of a department, 1 otherwise.
    pub seats: i64,
    /// `active` or `reclaimed`.
    pub state: String,
    pub reclaimed_at: Option<i64>,
    pub reclaim_reason: Option<String>,
    pub last_used_at: Option<i64>,
    pub assigned_by: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// The user name, department name or machine fingerprint id (`None`: the assignee is
    /// gone).
    pub assignee_name: Option<String>,
}

/// An assignment to store.
#[derive(Debug, Clone)]
pub(crate) struct NewAssignment<'a> {
    pub id: &'a str,
    pub organization_id: &'a str,
    pub license_id: &'a str,
    pub assignee_kind: &'a str,
    pub assignee_id: &'a str,
    pub seats: i64,
    pub assigned_by: &'a str,
    pub now: i64,
}

/// An assignment that may admit a user or machine of a named license ([`Db::admission`]).
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub(crate) struct Candidate {
    pub id: String,
    /// `user`, `department` or `device`.
    pub assignee_kind: String,
    pub seats: i64,
    /// `active` or `reclaimed`.
    pub state: String,
    pub last_used_at: Option<i64>,
    /// The directory user the request named, when one matched (`None` for a device match
    /// without a user).
    pub user_id: Option<String>,
    /// That user's `active` flag (0: deprovisioned).
    pub user_active: Option<i64>,
    /// A department assignment: the other members of the department using the license now
    /// (a live lease, or a machine of the license linked to them); 0 for the other kinds.
    pub in_use: i64,
}

/// A row of `assignment_transfers`.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct Transfer {
    pub id: String,
    pub organization_id: String,
    pub license_id: String,
    pub assignment_id: String,
    pub from_kind: String,
    pub from_id: String,
    pub to_kind: String,
    pub to_id: String,
    pub to_seats: i64,
    /// `pending`, `approved`, `rejected` or `cancelled`.
    pub state: String,
    pub requested_by: String,
    pub requested_at: i64,
    pub decided_by: Option<String>,
    pub decided_at: Option<i64>,
    pub reason: Option<String>,
}

/// The seat settings of a license (`PUT /v1/licenses/{id}/seating`).
#[derive(Debug, Clone)]
pub(crate) struct SeatSettings<'a> {
    /// `floating` or `named`.
    pub seat_mode: &'a str,
    /// 0 or 1.
    pub allow_over_allocation: i64,
    /// Seconds; `None`: the policy's.
    pub reclaim_after: Option<i64>,
}

/// [`Db::admission`]: `$1` license, `$2` organization, `$3` user key, `$4` machine id, `$5`
/// now.
const ADMISSION: &str = "\
    SELECT a.id, a.assignee_kind, a.seats, a.state, a.last_used_at, u.id AS user_id, \
      u.active AS user_active, 0 AS in_use \
    FROM directory_users u JOIN seat_assignments a ON a.license_id = $1 \
      AND a.assignee_kind = 'user' AND a.assignee_id = u.id \
    WHERE u.organization_id = $2 AND u.user_name_key = $3 \
    UNION ALL \
    SELECT a.id, a.assignee_kind, a.seats, a.state, a.last_used_at, u.id AS user_id, \
      u.active AS user_active, ( \
        SELECT COUNT(*) FROM ( \
          SELECT mu.id FROM leases l \
            JOIN directory_users mu ON mu.organization_id = $2 \
              AND mu.user_name_key = LOWER(l.user_name) \
            JOIN department_members m1 ON m1.department_id = a.assignee_id \
              AND m1.user_id = mu.id \
            WHERE l.license_id = $1 AND l.released_at IS NULL AND l.expires_at > $5 \
              AND mu.id <> u.id \
          UNION SELECT l.user_id FROM leases l \
            JOIN department_members m2 ON m2.department_id = a.assignee_id \
              AND m2.user_id = l.user_id \
            WHERE l.license_id = $1 AND l.released_at IS NULL AND l.expires_at > $5 \
              AND l.user_id <> u.id \
          UNION SELECT mc.user_id FROM machines mc \
            JOIN department_members m3 ON m3.department_id = a.assignee_id \
              AND m3.user_id = mc.user_id \
            WHERE mc.license_id = $1 AND mc.user_id <> u.id \
        ) in_use_by \
      ) AS in_use \
    FROM seat_assignments a \
      JOIN directory_users u ON u.organization_id = $2 AND u.user_name_key = $3 \
    WHERE a.license_id = $1 AND a.assignee_kind = 'department' AND a.assignee_id IN ( \
      SELECT dm.department_id FROM department_members dm \
        JOIN directory_users du ON du.id = dm.user_id \
        WHERE du.organization_id = $2 AND du.user_name_key = $3) \
    UNION ALL \
    SELECT a.id, a.assignee_kind, a.seats, a.state, a.last_used_at, u.id AS user_id, \
      u.active AS user_active, 0 AS in_use \
    FROM seat_assignments a \
      LEFT JOIN directory_users u ON u.organization_id = $2 AND u.user_name_key = $3 \
    WHERE a.license_id = $1 AND a.assignee_kind = 'device' AND a.assignee_id = $4 \
    ORDER BY 1";

#[derive(FromRow)]
struct Flag {
    active: i64,
}

/// Whether the assignee exists where an assignment of `license_id` (of `organization_id`)
/// may name it: a user or department of the organization, a machine of the license. `None`:
/// no such assignee; `Some(false)`: a deactivated user.
pub(crate) async fn assignee_in(
    tx: &mut Tx,
    organization_id: &str,
    license_id: &str,
    kind: &str,
    id: &str,
) -> DbResult<Option<bool>> {
    let (sql, scope) = match kind {
        "user" => (
            "SELECT active FROM directory_users WHERE id = $1 AND organization_id = $2",
            organization_id,
        ),
        "department" => (
            "SELECT 1 AS active FROM departments WHERE id = $1 AND organization_id = $2",
            organization_id,
        ),
        "device" => (
            "SELECT 1 AS active FROM machines WHERE id = $1 AND license_id = $2",
            license_id,
        ),
        _ => return Ok(None),
    };
    let found: Option<Flag> = sqlx::query_as(sql)
        .bind(id)
        .bind(scope)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(found.map(|f| f.active != 0))
}

/// The assignment `id` of the license.
pub(crate) async fn assignment_in(
    tx: &mut Tx,
    license_id: &str,
    id: &str,
) -> DbResult<Option<Assignment>> {
    sqlx::query_as(concat!(
        assignment_select!(),
        "WHERE a.id = $1 AND a.license_id = $2"
    ))
    .bind(id)
    .bind(license_id)
    .fetch_optional(&mut **tx)
    .await
}

/// The license's assignment to this assignee, if any.
pub(crate) async fn assignment_of(
    tx: &mut Tx,
    license_id: &str,
    kind: &str,
    assignee_id: &str,
) -> DbResult<Option<Assignment>> {
    sqlx::query_as(concat!(
        assignment_select!(),
        "WHERE a.license_id = $1 AND a.assignee_kind = $2 AND a.assignee_id = $3"
    ))
    .bind(license_id)
    .bind(kind)
    .bind(assignee_id)
    .fetch_optional(&mut **tx)
    .await
}

/// Seats the license's active assignments take, but the assignment `except`'s.
pub(crate) async fn assigned_seats_in(
    tx: &mut Tx,
    license_id: &str,
    except: Option<&str>,
) -> DbResult<i64> {
    sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(seats), 0) AS BIGINT) FROM seat_assignments \
         WHERE license_id = $1 AND state = 'active' AND ($2 IS NULL OR id <> $2)",
    )
    .bind(license_id)
    .bind(except)
    .fetch_one(&mut **tx)
    .await
}

/// Stores an assignment; `false` when the assignee holds one on the license already.
pub(crate) async fn insert_assignment_in(tx: &mut Tx, a: &NewAssignment<'_>) -> DbResult<bool> {
    let done = sqlx::query(
        "INSERT INTO seat_assignments (id, organization_id, license_id, assignee_kind, \
         assignee_id, seats, state, assigned_by, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'active', $7, $8, $8) \
         ON CONFLICT (license_id, assignee_kind, assignee_id) DO NOTHING",
    )
    .bind(a.id)
    .bind(a.organization_id)
    .bind(a.license_id)
    .bind(a.assignee_kind)
    .bind(a.assignee_id)
    .bind(a.seats)
    .bind(a.assigned_by)
    .bind(a.now)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes the assignment `id` of the license and cancels its pending transfers; `false`
/// when there is no such assignment.
pub(crate) async fn delete_assignment_in(
    tx: &mut Tx,
    license_id: &str,
    id: &str,
    now: i64,
) -> DbResult<bool> {
    let done = sqlx::query("DELETE FROM seat_assignments WHERE id = $1 AND license_id = $2")
        .bind(id)
        .bind(license_id)
        .execute(&mut **tx)
        .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE assignment_transfers SET state = 'cancelled', decided_at = $1, \
         reason = 'unassigned' WHERE assignment_id = $2 AND state = 'pending'",
    )
    .bind(now)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(true)
}

/// Moves the assignment `id` to another assignee (active again, never used by it yet).
/// `false` when the new assignee holds an assignment on the license already.
pub(crate) async fn move_assignment_in(
    tx: &mut Tx,
    id: &str,
    kind: &str,
    assignee_id: &str,
    seats: i64,
    now: i64,
) -> DbResult<bool> {
    let taken: Option<String> = sqlx::query_scalar(
        "SELECT b.id FROM seat_assignments a JOIN seat_assignments b \
         ON b.license_id = a.license_id AND b.assignee_kind = $2 AND b.assignee_id = $3 \
         WHERE a.id = $1 AND b.id <> a.id",
    )
    .bind(id)
    .bind(kind)
    .bind(assignee_id)
    .fetch_optional(&mut **tx)
    .await?;
    if taken.is_some() {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE seat_assignments SET assignee_kind = $1, assignee_id = $2, seats = $3, \
         state = 'active', reclaimed_at = NULL, reclaim_reason = NULL, last_used_at = NULL, \
         updated_at = $4 WHERE id = $5",
    )
    .bind(kind)
    .bind(assignee_id)
    .bind(seats)
    .bind(now)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(true)
}

/// Gives a reclaimed assignment its seat back (used at `now`); `false` when it is not
/// reclaimed (any more).
pub(crate) async fn regrant_in(tx: &mut Tx, id: &str, now: i64) -> DbResult<bool> {
    let done = sqlx::query(
        "UPDATE seat_assignments SET state = 'active', reclaimed_at = NULL, \
         reclaim_reason = NULL, last_used_at = $1, updated_at = $1 \
         WHERE id = $2 AND state = 'reclaimed'",
    )
    .bind(now)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A transfer of the machine `from` to `to` (`/v1/client/transfer`): its device assignment,
/// if any, follows it to the new machine.
pub(crate) async fn follow_device_in(
    tx: &mut Tx,
    license_id: &str,
    from: &str,
    to: &str,
    now: i64,
) -> DbResult<()> {
    sqlx::query(
        "UPDATE seat_assignments SET assignee_id = $1, updated_at = $2 \
         WHERE license_id = $3 AND assignee_kind = 'device' AND assignee_id = $4",
    )
    .bind(to)
    .bind(now)
    .bind(license_id)
    .bind(from)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Changes a license's seat settings (in the handler's license change, which forgets the
/// cached license rows).
pub(crate) async fn set_seat_settings_in(
    tx: &mut Tx,
    license_id: &str,
    settings: &SeatSettings<'_>,
    now: i64,
) -> DbResult<()> {
    sqlx::query(
        "UPDATE licenses SET seat_mode = $1, allow_over_allocation = $2, reclaim_after = $3, \
         updated_at = $4 WHERE id = $5",
    )
    .bind(settings.seat_mode)
    .bind(settings.allow_over_allocation)
    .bind(settings.reclaim_after)
    .bind(now)
    .bind(license_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Stores a transfer request (pending).
pub(crate) async fn insert_transfer_in(tx: &mut Tx, t: &Transfer) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO assignment_transfers (id, organization_id, license_id, assignment_id, \
         from_kind, from_id, to_kind, to_id, to_seats, state, requested_by, requested_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $11)",
    )
    .bind(&t.id)
    .bind(&t.organization_id)
    .bind(&t.license_id)
    .bind(&t.assignment_id)
    .bind(&t.from_kind)
    .bind(&t.from_id)
    .bind(&t.to_kind)
    .bind(&t.to_id)
    .bind(t.to_seats)
    .bind(&t.requested_by)
    .bind(t.requested_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The pending transfer of an assignment, if any.
pub(crate) async fn pending_transfer_of(
    tx: &mut Tx,
    assignment_id: &str,
) -> DbResult<Option<Transfer>> {
    sqlx::query_as(
        "SELECT * FROM assignment_transfers WHERE assignment_id = $1 AND state = 'pending'",
    )
    .bind(assignment_id)
    .fetch_optional(&mut **tx)
    .await
}

/// The transfer `id` of the organization.
pub(crate) async fn transfer_in(
    tx: &mut Tx,
    organization_id: &str,
    id: &str,
) -> DbResult<Option<Transfer>> {
    sqlx::query_as("SELECT * FROM assignment_transfers WHERE id = $1 AND organization_id = $2")
        .bind(id)
        .bind(organization_id)
        .fetch_optional(&mut **tx)
        .await
}

/// Decides a pending transfer (`approved` or `rejected`); `false` when it is not pending.
pub(crate) async fn decide_transfer_in(
    tx: &mut Tx,
    id: &str,
    state: &str,
    decided_by: &str,
    reason: Option<&str>,
    now: i64,
) -> DbResult<bool> {
    let done = sqlx::query(
        "UPDATE assignment_transfers SET state = $1, decided_by = $2, decided_at = $3, \
         reason = $4 WHERE id = $5 AND state = 'pending'",
    )
    .bind(state)
    .bind(decided_by)
    .bind(now)
    .bind(reason)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

impl Db {
    /// The license's assignments, oldest first.
    pub async fn assignments(&self, license_id: &str) -> DbResult<Vec<Assignment>> {
        sqlx::query_as(concat!(
            assignment_select!(),
            "WHERE a.license_id = $1 ORDER BY a.created_at, a.id"
        ))
        .bind(license_id)
        .fetch_all(&self.pool)
        .await
    }

    /// The assignments that name a user of the organization: directly, or through a
    /// department they belong to; oldest first.
    pub async fn assignments_of_user(
        &self,
        organization_id: &str,
        user_id: &str,
    ) -> DbResult<Vec<Assignment>> {
        sqlx::query_as(concat!(
            assignment_select!(),
            "WHERE a.organization_id = $1 AND ((a.assignee_kind = 'user' AND a.assignee_id = $2) \
             OR (a.assignee_kind = 'department' AND a.assignee_id IN \
             (SELECT department_id FROM department_members WHERE user_id = $2))) \
             ORDER BY a.created_at, a.id"
        ))
        .bind(organization_id)
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
    }

    /// Whether the organization has a directory user with this id.
    pub async fn directory_user_exists(
        &self,
        organization_id: &str,
        user_id: &str,
    ) -> DbResult<bool> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM directory_users WHERE id = $1 AND organization_id = $2",
        )
        .bind(user_id)
        .bind(organization_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(found.is_some())
    }

    /// The assignments of the license that may admit the user whose lowercase user name is
    /// `user_key` (directly, or through one of their departments) or the machine
    /// `machine_id` (a device assignment): one statement of three branches, each an exact
    /// lookup of the unique (license, kind, assignee) index (after the directory user's
    /// unique name and the members' user index), so its cost does not grow with the license's
    /// assignments. A department's row counts its other members using the license at `now`
    /// (live leases, by directory user id or by user name; machines linked to them), which
    /// reads the license's live leases.
    pub async fn admission(
        &self,
        license_id: &str,
        organization_id: &str,
        user_key: Option<&str>,
        machine_id: Option<&str>,
        now: i64,
    ) -> DbResult<Vec<Candidate>> {
        sqlx::query_as(ADMISSION)
            .bind(license_id)
            .bind(organization_id)
            .bind(user_key)
            .bind(machine_id)
            .bind(now)
            .fetch_all(&self.pool)
            .await
    }

    /// Records that an assignment was used at `now`: at most one write per assignment per
    /// minute (the caller skips the statement when its read says it was used in the last
    /// minute).
    pub async fn touch_assignment(&self, id: &str, now: i64) -> DbResult<()> {
        sqlx::query(
            "UPDATE seat_assignments SET last_used_at = $1 \
             WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $3)",
        )
        .bind(now)
        .bind(id)
        .bind(now.saturating_sub(60))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The transfer `id` of the organization.
    pub async fn transfer(&self, organization_id: &str, id: &str) -> DbResult<Option<Transfer>> {
        sqlx::query_as("SELECT * FROM assignment_transfers WHERE id = $1 AND organization_id = $2")
            .bind(id)
            .bind(organization_id)
            .fetch_optional(&self.pool)
            .await
    }

    /// The organization's transfers, newest first, at most `limit`; only those in `state`
    /// when given.
    pub async fn transfers(
        &self,
        organization_id: &str,
        state: Option<&str>,
        limit: i64,
    ) -> DbResult<Vec<Transfer>> {
        sqlx::query_as(
            "SELECT * FROM assignment_transfers WHERE organization_id = $1 \
             AND ($2 IS NULL OR state = $2) ORDER BY requested_at DESC, id LIMIT $3",
        )
        .bind(organization_id)
        .bind(state)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }
}

#[cfg(test)]
impl Db {
    /// Tests: a directory user (`active`), as the directory's own writes store one.
    pub async fn insert_directory_user_for_tests(
        &self,
        organization_id: &str,
        id: &str,
        user_name: &str,
        active: bool,
    ) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO directory_users (id, organization_id, user_name, user_name_key, \
             active, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 0, 0)",
        )
        .bind(id)
        .bind(organization_id)
        .bind(user_name)
        .bind(user_name.to_lowercase())
        .bind(i64::from(active))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Tests: a department with these members.
    pub async fn insert_department_for_tests(
        &self,
        organization_id: &str,
        id: &str,
        members: &[&str],
    ) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO departments (id, organization_id, name, name_key, created_at, \
             updated_at) VALUES ($1, $2, $1, $1, 0, 0)",
        )
        .bind(id)
        .bind(organization_id)
        .execute(&self.pool)
        .await?;
        for member in members {
            sqlx::query(
                "INSERT INTO department_members (department_id, user_id, organization_id) \
                 VALUES ($1, $2, $3)",
            )
            .bind(id)
            .bind(member)
            .bind(organization_id)
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    /// Tests: reclaims an assignment, as the reclamation job does.
    pub async fn reclaim_assignment_for_tests(&self, id: &str, now: i64) -> DbResult<()> {
        sqlx::query(
            "UPDATE seat_assignments SET state = 'reclaimed', reclaimed_at = $1, \
             reclaim_reason = 'inactive' WHERE id = $2",
        )
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
impl Db {
    /// Tests: SQLite's plan of [`Db::admission`], one line per step.
    pub async fn admission_plan_for_tests(&self) -> DbResult<Vec<String>> {
        use sqlx::Row as _;
        let sql = format!("EXPLAIN QUERY PLAN {ADMISSION}");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind("lic")
            .bind("org")
            .bind("user")
            .bind("mch")
            .bind(0_i64)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|row| row.try_get("detail")).collect()
    }
}

#[cfg(test)]
impl Db {
    /// Tests (scale): `count` directory users `usr_{i}` named `user{i}`, in one transaction.
    pub async fn bulk_users_for_tests(&self, organization_id: &str, count: usize) -> DbResult<()> {
        let mut tx = self.pool.begin().await?;
        for i in 0..count {
            sqlx::query(
                "INSERT INTO directory_users (id, organization_id, user_name, user_name_key, \
                 active, created_at, updated_at) VALUES ($1, $2, $3, $3, 1, 0, 0)",
            )
            .bind(format!("usr_{i}"))
            .bind(organization_id)
            .bind(format!("user{i}"))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }

    /// Tests (scale): `count` copies `{id}_{i}` of license `id` (keys `{hash}_{i}`), in one
    /// transaction.
    pub async fn bulk_licenses_for_tests(&self, id: &str, count: usize) -> DbResult<()> {
        let mut tx = self.pool.begin().await?;
        for i in 0..count {
            sqlx::query(
                "INSERT INTO licenses (id, organization_id, key_hash, key_hint, product_id, \
                 policy_id, status, claims, token, expires_at, created_at, updated_at, \
                 lease_timeout, allow_unmetered, seat_mode, allow_over_allocation, \
                 reclaim_after) \
                 SELECT id || $2, organization_id, key_hash || $2, key_hint, product_id, \
                 policy_id, status, claims, token, expires_at, created_at, updated_at, \
                 lease_timeout, allow_unmetered, seat_mode, allow_over_allocation, \
                 reclaim_after FROM licenses WHERE id = $1",
            )
            .bind(id)
            .bind(format!("_{i}"))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }
}
