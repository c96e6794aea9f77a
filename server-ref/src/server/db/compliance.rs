//! What compliance alerts are computed from: an organization's active licenses with, per
//! license, its live leases, its bound machines and its recent denials (three grouped
//! statements, not one per license).

use std::collections::HashMap;

use sqlx::FromRow;

use super::{Db, DbResult, LicenseRow};

/// A count per license.
#[derive(Debug, FromRow)]
struct PerLicense {
    license_id: String,
    n: i64,
}

/// Denials of one license since a time.
#[derive(Debug, FromRow)]
struct Denied {
    license_id: String,
    n: i64,
    last_at: i64,
}

/// One active license and what its alerts are computed from.
#[derive(Debug)]
pub(crate) struct LicenseUsage {
    pub license: LicenseRow,
    /// Leases not released and not run out at `now`.
    pub live_leases: i64,
    /// Machines bound to it.
    pub machines: i64,
    /// Denied check-outs since the period's start, and the last one's time.
    pub denials: Option<(i64, i64)>,
    /// Seats its active named-seat assignments take.
    pub assigned_seats: i64,
}

/// The licenses an alert may concern: active ones (suspended and revoked licenses are a
/// decision already taken, not something to warn about), the same `limit` oldest the report
/// reads (counting for the others would only be thrown away: at 100 000 licenses most of the
/// work), `$limit` naming the limit's placeholder. The index `licenses_organization_status`
/// (migration 0021) answers it without reading the table. A macro so that the statements
/// below stay string literals.
macro_rules! active_of {
    ($limit:literal) => {
        concat!(
            "SELECT id FROM licenses WHERE organization_id = $1 AND status = 'active' \
             ORDER BY created_at, id LIMIT ",
            $limit
        )
    };
}

impl Db {
    /// The organization's active licenses (at most `limit`, oldest first) with their live
    /// leases at `now`, machines and denials since `since`.
    pub async fn license_usage(
        &self,
        organization_id: &str,
        now: i64,
        since: i64,
        limit: i64,
    ) -> DbResult<Vec<LicenseUsage>> {
        let licenses: Vec<LicenseRow> = sqlx::query_as(
            "SELECT * FROM licenses WHERE organization_id = $1 AND status = 'active' \
             ORDER BY created_at, id LIMIT $2",
        )
        .bind(organization_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let leases: Vec<PerLicense> = sqlx::query_as(concat!(
            "SELECT license_id, COUNT(*) AS n FROM leases WHERE license_id IN (",
            active_of!("$3"),
            ") AND released_at IS NULL AND expires_at > $2 GROUP BY license_id"
        ))
        .bind(organization_id)
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let machines: Vec<PerLicense> = sqlx::query_as(concat!(
            "SELECT license_id, COUNT(*) AS n FROM machines WHERE license_id IN (",
            active_of!("$2"),
            ") GROUP BY license_id"
        ))
        .bind(organization_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let denials: Vec<Denied> = sqlx::query_as(concat!(
            "SELECT license_id, COUNT(*) AS n, MAX(at) AS last_at FROM denials WHERE license_id IN (",
            active_of!("$3"),
            ") AND at >= $2 GROUP BY license_id"
        ))
        .bind(organization_id)
        .bind(since)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let assigned: Vec<PerLicense> = sqlx::query_as(concat!(
            "SELECT license_id, CAST(SUM(seats) AS BIGINT) AS n FROM seat_assignments \
             WHERE license_id IN (",
            active_of!("$2"),
            ") AND state = 'active' GROUP BY license_id"
        ))
        .bind(organization_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let counts = |rows: Vec<PerLicense>| -> HashMap<String, i64> {
            rows.into_iter().map(|r| (r.license_id, r.n)).collect()
        };
        let (leases, machines, assigned) = (counts(leases), counts(machines), counts(assigned));
        let mut denials: HashMap<String, (i64, i64)> = denials
            .into_iter()
            .map(|d| (d.license_id, (d.n, d.last_at)))
            .collect();
        Ok(licenses
            .into_iter()
            .map(|license| LicenseUsage {
                live_leases: leases.get(&license.id).copied().unwrap_or(0),
                machines: machines.get(&license.id).copied().unwrap_or(0),
                denials: denials.remove(&license.id),
                assigned_seats: assigned.get(&license.id).copied().unwrap_or(0),
                license,
            })
            .collect())
    }
}
