//! Usage per directory user and per department: what the client calls linked to directory
//! users (`directory_links`) recorded, read back. Every statement joins `licenses` on the
//! caller's organization, so another tenant's rows never count.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::FromRow;
use utoipa::ToSchema;

use super::{Db, DbResult};

/// Most machines or live leases listed per user (the counts stay exact).
pub(crate) const MAX_LISTED: i64 = 1_000;

/// A machine activated by a directory user.
#[derive(Debug, Clone, FromRow, Serialize, ToSchema, PartialEq, Eq)]
pub(crate) struct UserMachine {
    /// The machine's id.
    pub id: String,
    /// Its license.
    pub license_id: String,
    /// The license's product.
    pub product_id: String,
    /// Its fingerprint id.
    pub fingerprint: String,
    /// Activated at (Unix seconds).
    pub created_at: i64,
    /// Last activation or validation (Unix seconds, to the minute).
    pub last_seen_at: i64,
}

/// A floating seat a directory user holds now.
#[derive(Debug, Clone, FromRow, Serialize, ToSchema, PartialEq, Eq)]
pub(crate) struct UserLease {
    /// The lease's id.
    pub id: String,
    /// Its license.
    pub license_id: String,
    /// The license's product.
    pub product_id: String,
    /// The client id of the app instance holding it.
    pub client_id: String,
    /// Checked out at (Unix seconds).
    pub created_at: i64,
    /// Last heartbeat (Unix seconds).
    pub heartbeat_at: i64,
    /// Lapses at (Unix seconds) without a heartbeat.
    pub expires_at: i64,
    /// 1: borrowed (offline until `expires_at`).
    pub borrowed: i64,
}

/// One license a directory user uses or is assigned.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub(crate) struct UserLicenseUsage {
    /// The license.
    pub license_id: String,
    /// Its product.
    pub product_id: String,
    /// Machines of the user activated on it.
    pub machines: i64,
    /// Floating seats of it the user holds now.
    pub live_leases: i64,
    /// The user's named-seat assignment on it: `active`, `reclaimed`, or absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assignment: Option<String>,
    /// The user's last use of it: a check-out or heartbeat, an activation or validation, or
    /// the assignment's last use (Unix seconds); absent when never used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<i64>,
}

/// The answer of `GET /v1/directory/users/{id}/usage`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct UserUsage {
    /// The directory user.
    pub user_id: String,
    /// When this was computed (Unix seconds).
    pub at: i64,
    /// Every license the user used or is assigned, by license id.
    pub licenses: Vec<UserLicenseUsage>,
    /// The user's activated machines (at most 1 000, oldest first).
    pub machines: Vec<UserMachine>,
    /// The floating seats the user holds now (at most 1 000, oldest first).
    pub leases: Vec<UserLease>,
    /// Check-outs refused to the user in the denial log (kept 60 days).
    pub denials: i64,
    /// The user's last use of any license (Unix seconds); absent when never used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<i64>,
}

/// A department member's use of one license.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub(crate) struct MemberUsage {
    /// The directory user.
    pub user_id: String,
    /// Their user name.
    pub user_name: String,
    /// Floating seats they hold now.
    pub live_leases: i64,
    /// Machines they activated.
    pub machines: i64,
}

/// One license as a department uses it now.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub(crate) struct DepartmentLicenseUsage {
    /// The license.
    pub license_id: String,
    /// Its product.
    pub product_id: String,
    /// Seats in use by members now: floating seats held plus machines activated.
    pub seats_in_use: i64,
    /// Floating seats members hold now.
    pub live_leases: i64,
    /// Machines members activated.
    pub machines: i64,
    /// Seats of it assigned to the department (an active quota), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assigned_seats: Option<i64>,
    /// By member, by user name.
    pub members: Vec<MemberUsage>,
}

/// The answer of `GET /v1/directory/departments/{id}/usage`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct DepartmentUsage {
    /// The department.
    pub department_id: String,
    /// When this was computed (Unix seconds).
    pub at: i64,
    /// Its members.
    pub members: i64,
    /// Seats in use by members now, all licenses together.
    pub seats_in_use: i64,
    /// Per license, by license id.
    pub licenses: Vec<DepartmentLicenseUsage>,
}

#[derive(FromRow)]
struct LastUse {
    license_id: String,
    product_id: String,
    last_used_at: Option<i64>,
}

#[derive(FromRow)]
struct Assignment {
    license_id: String,
    product_id: String,
    state: String,
    last_used_at: Option<i64>,
}

#[derive(FromRow)]
struct MemberCount {
    license_id: String,
    product_id: String,
    user_id: String,
    user_name: String,
    n: i64,
}

#[derive(FromRow)]
struct Quota {
    license_id: String,
    product_id: String,
    seats: i64,
}

impl Db {
    /// The usage of directory user `user_id` of `organization_id` at `now` (the caller checked
    /// the user is the organization's).
    pub async fn user_usage(
        &self,
        organization_id: &str,
        user_id: &str,
        now: i64,
    ) -> DbResult<UserUsage> {
        let machines: Vec<UserMachine> = sqlx::query_as(
            "SELECT m.id, m.license_id, l.product_id, m.fingerprint, m.created_at, \
             m.last_seen_at FROM machines m JOIN licenses l ON l.id = m.license_id \
             WHERE m.user_id = $1 AND l.organization_id = $2 \
             ORDER BY m.created_at, m.id LIMIT $3",
        )
        .bind(user_id)
        .bind(organization_id)
        .bind(MAX_LISTED)
        .fetch_all(&self.pool)
        .await?;
        let leases: Vec<UserLease> = sqlx::query_as(
            "SELECT le.id, le.license_id, l.product_id, le.client_id, le.created_at, \
             le.heartbeat_at, le.expires_at, le.borrowed FROM leases le \
             JOIN licenses l ON l.id = le.license_id \
             WHERE le.user_id = $1 AND l.organization_id = $2 AND le.released_at IS NULL \
             AND le.expires_at > $3 ORDER BY le.created_at, le.id LIMIT $4",
        )
        .bind(user_id)
        .bind(organization_id)
        .bind(now)
        .bind(MAX_LISTED)
        .fetch_all(&self.pool)
        .await?;
        // Per license: machines (count, last seen), leases (live count, last heartbeat).
        let machine_use: Vec<(String, String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT m.license_id, l.product_id, COUNT(*), MAX(m.last_seen_at) FROM machines m \
             JOIN licenses l ON l.id = m.license_id \
             WHERE m.user_id = $1 AND l.organization_id = $2 GROUP BY m.license_id, l.product_id",
        )
        .bind(user_id)
        .bind(organization_id)
        .fetch_all(&self.pool)
        .await?;
        let lease_use: Vec<LastUse> = sqlx::query_as(
            "SELECT le.license_id, l.product_id, MAX(le.heartbeat_at) AS last_used_at \
             FROM leases le JOIN licenses l ON l.id = le.license_id \
             WHERE le.user_id = $1 AND l.organization_id = $2 \
             GROUP BY le.license_id, l.product_id",
        )
        .bind(user_id)
        .bind(organization_id)
        .fetch_all(&self.pool)
        .await?;
        let live: Vec<(String, i64)> = sqlx::query_as(
            "SELECT le.license_id, COUNT(*) FROM leases le \
             JOIN licenses l ON l.id = le.license_id \
             WHERE le.user_id = $1 AND l.organization_id = $2 AND le.released_at IS NULL \
             AND le.expires_at > $3 GROUP BY le.license_id",
        )
        .bind(user_id)
        .bind(organization_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        let assignments: Vec<Assignment> = sqlx::query_as(
            "SELECT sa.license_id, l.product_id, sa.state, sa.last_used_at \
             FROM seat_assignments sa JOIN licenses l ON l.id = sa.license_id \
             WHERE sa.organization_id = $1 AND l.organization_id = $1 \
             AND sa.assignee_kind = 'user' AND sa.assignee_id = $2",
        )
        .bind(organization_id)
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        let denials: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM denials d JOIN licenses l ON l.id = d.license_id \
             WHERE d.user_id = $1 AND l.organization_id = $2",
        )
        .bind(user_id)
        .bind(organization_id)
        .fetch_one(&self.pool)
        .await?;

        let mut licenses: BTreeMap<String, UserLicenseUsage> = BTreeMap::new();
        for (license_id, product_id, count, last) in &machine_use {
            let usage = user_license(&mut licenses, license_id, product_id);
            usage.machines = *count;
            usage.last_used_at = usage.last_used_at.max(*last);
        }
        for row in &lease_use {
            let usage = user_license(&mut licenses, &row.license_id, &row.product_id);
            usage.live_leases = live
                .iter()
                .find(|(id, _)| *id == row.license_id)
                .map_or(0, |(_, n)| *n);
            usage.last_used_at = usage.last_used_at.max(row.last_used_at);
        }
        for row in &assignments {
            let usage = user_license(&mut licenses, &row.license_id, &row.product_id);
            usage.assignment = Some(row.state.clone());
            usage.last_used_at = usage.last_used_at.max(row.last_used_at);
        }
        let licenses: Vec<UserLicenseUsage> = licenses.into_values().collect();
        let last_used_at = licenses.iter().filter_map(|l| l.last_used_at).max();
        Ok(UserUsage {
            user_id: user_id.to_owned(),
            at: now,
            licenses,
            machines,
            leases,
            denials,
            last_used_at,
        })
    }

    /// The usage of department `department_id` of `organization_id` at `now` (the caller
    /// checked the department is the organization's).
    pub async fn department_usage(
        &self,
        organization_id: &str,
        department_id: &str,
        now: i64,
    ) -> DbResult<DepartmentUsage> {
        let members: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM department_members \
             WHERE department_id = $1 AND organization_id = $2",
        )
        .bind(department_id)
        .bind(organization_id)
        .fetch_one(&self.pool)
        .await?;
        let leases: Vec<MemberCount> = sqlx::query_as(
            "SELECT le.license_id, l.product_id, le.user_id, du.user_name, COUNT(*) AS n \
             FROM department_members dm \
             JOIN leases le ON le.user_id = dm.user_id \
             JOIN licenses l ON l.id = le.license_id \
             JOIN directory_users du ON du.id = dm.user_id \
             WHERE dm.department_id = $1 AND dm.organization_id = $2 \
             AND l.organization_id = $2 AND du.organization_id = $2 \
             AND le.released_at IS NULL AND le.expires_at > $3 \
             GROUP BY le.license_id, l.product_id, le.user_id, du.user_name",
        )
        .bind(department_id)
        .bind(organization_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        let machines: Vec<MemberCount> = sqlx::query_as(
            "SELECT m.license_id, l.product_id, m.user_id, du.user_name, COUNT(*) AS n \
             FROM department_members dm \
             JOIN machines m ON m.user_id = dm.user_id \
             JOIN licenses l ON l.id = m.license_id \
             JOIN directory_users du ON du.id = dm.user_id \
             WHERE dm.department_id = $1 AND dm.organization_id = $2 \
             AND l.organization_id = $2 AND du.organization_id = $2 \
             GROUP BY m.license_id, l.product_id, m.user_id, du.user_name",
        )
        .bind(department_id)
        .bind(organization_id)
        .fetch_all(&self.pool)
        .await?;
        let quotas: Vec<Quota> = sqlx::query_as(
            "SELECT sa.license_id, l.product_id, sa.seats FROM seat_assignments sa \
             JOIN licenses l ON l.id = sa.license_id \
             WHERE sa.organization_id = $1 AND l.organization_id = $1 \
             AND sa.assignee_kind = 'department' AND sa.assignee_id = $2 \
             AND sa.state = 'active'",
        )
        .bind(organization_id)
        .bind(department_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(DepartmentUsage {
            department_id: department_id.to_owned(),
            at: now,
            members,
            seats_in_use: leases.iter().chain(&machines).map(|row| row.n).sum(),
            licenses: per_license(&leases, &machines, &quotas),
        })
    }
}

/// The entry of `license_id` in a user's per-license usage, made empty if new.
fn user_license<'a>(
    licenses: &'a mut BTreeMap<String, UserLicenseUsage>,
    license_id: &str,
    product_id: &str,
) -> &'a mut UserLicenseUsage {
    licenses
        .entry(license_id.to_owned())
        .or_insert_with(|| UserLicenseUsage {
            license_id: license_id.to_owned(),
            product_id: product_id.to_owned(),
            machines: 0,
            live_leases: 0,
            assignment: None,
            last_used_at: None,
        })
}

/// Folds the per-member counts and the quotas into one entry per license.
fn per_license(
    leases: &[MemberCount],
    machines: &[MemberCount],
    quotas: &[Quota],
) -> Vec<DepartmentLicenseUsage> {
    let mut by_license: BTreeMap<String, DepartmentLicenseUsage> = BTreeMap::new();
    for (rows, is_lease) in [(leases, true), (machines, false)] {
        for row in rows {
            let usage = by_license.entry(row.license_id.clone()).or_insert_with(|| {
                DepartmentLicenseUsage {
                    license_id: row.license_id.clone(),
                    product_id: row.product_id.clone(),
                    seats_in_use: 0,
                    live_leases: 0,
                    machines: 0,
                    assigned_seats: None,
                    members: Vec::new(),
                }
            });
            usage.seats_in_use += row.n;
            let member = match usage.members.iter_mut().find(|m| m.user_id == row.user_id) {
                Some(member) => member,
                None => {
                    usage.members.push(MemberUsage {
                        user_id: row.user_id.clone(),
                        user_name: row.user_name.clone(),
                        live_leases: 0,
                        machines: 0,
                    });
                    let last = usage.members.len() - 1;
                    &mut usage.members[last]
                }
            };
            if is_lease {
                usage.live_leases += row.n;
                member.live_leases += row.n;
            } else {
                usage.machines += row.n;
                member.machines += row.n;
            }
        }
    }
    for quota in quotas {
        by_license
            .entry(quota.license_id.clone())
            .or_insert_with(|| DepartmentLicenseUsage {
                license_id: quota.license_id.clone(),
                product_id: quota.product_id.clone(),
                seats_in_use: 0,
                live_leases: 0,
                machines: 0,
                assigned_seats: None,
                members: Vec::new(),
            })
            .assigned_seats = Some(quota.seats);
    }
    by_license
        .into_values()
        .map(|mut usage| {
            usage.members.sort_by(|a, b| {
                a.user_name
                    .cmp(&b.user_name)
                    .then(a.user_id.cmp(&b.user_id))
            });
            usage
        })
        .collect()
}
