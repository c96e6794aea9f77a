//! `GET /v1/alerts`: compliance alerts of the caller's organization, computed when asked from
//! the licenses' current state (nothing is stored, so an alert disappears once its cause is
//! gone): users turned away by a floating license, its seats nearly all in use, a machine limit
//! reached, a license expiring soon or already in its grace period, seats reclaimed for
//! inactivity in the last 30 days, named seats over-allocated.

use axum::extract::Query;
use licensing_core::Term;

use super::super::db::{DENIAL_RETENTION_SECS, LicenseUsage};
use super::*;

/// Licenses looked at per request; beyond it the report says `truncated`.
const MAX_LICENSES: i64 = 10_000;

/// Share of a floating license's seats in use (percent) from which it is reported as nearly
/// exhausted.
const SEATS_NEARLY_EXHAUSTED_PERCENT: i64 = 90;

const DAY: i64 = 86_400;

/// Days a reclamation for inactivity stays in the alerts (`seat_reclaimed`).
const RECLAIMED_ALERT_DAYS: i64 = 30;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AlertWindow {
    /// Days of denials to look at, 1 to 60 (the denial log's retention); default 7.
    days: Option<i64>,
    /// Report licenses ending within this many days, 1 to 365; default 30.
    expiring_within_days: Option<i64>,
}

impl AlertWindow {
    /// The default windows (7 days of denials, licenses ending within 30 days): the report an
    /// audit package holds.
    pub(crate) fn default_window() -> AlertWindow {
        AlertWindow {
            days: None,
            expiring_within_days: None,
        }
    }
}

/// One compliance alert about one license.
#[derive(Debug, Serialize, ToSchema, PartialEq, Eq)]
pub(crate) struct ComplianceAlert {
    /// `seats_denied`, `seats_nearly_exhausted`, `machine_limit_reached`, `expiring`,
    /// `in_grace`, `seat_reclaimed` or `over_allocation` (more named seats assigned than the
    /// license has).
    kind: &'static str,
    /// `warning` (users are or will soon be turned away) or `info`.
    severity: &'static str,
    license_id: String,
    product_id: String,
    /// What happened and what to do, for a person.
    message: String,
    /// Denials in the window (`seats_denied`), seats or machines in use, days left, or seats
    /// reclaimed (`seat_reclaimed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    count: Option<i64>,
    /// The seats or machines allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<i64>,
    /// The last denial (`seats_denied`), the end of the license (`expiring`, `in_grace`) or
    /// the last reclamation (`seat_reclaimed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    at: Option<i64>,
}

/// The answer of `GET /v1/alerts`.
#[derive(Serialize, ToSchema)]
pub(crate) struct AlertReport {
    /// When the alerts were computed (Unix seconds).
    generated_at: i64,
    /// Start of the denial window (Unix seconds).
    since: i64,
    /// Active licenses looked at.
    licenses_checked: usize,
    /// Whether the organization has more active licenses than one report looks at (10 000).
    truncated: bool,
    /// Warnings first, then by license.
    alerts: Vec<ComplianceAlert>,
}

fn bounded(value: Option<i64>, default: i64, max: i64, name: &str) -> ApiResult<i64> {
    let value = value.unwrap_or(default);
    if !(1..=max).contains(&value) {
        return Err(ApiError::invalid(
            ErrorCode::InvalidField,
            format!("`{name}` must be between 1 and {max}"),
        ));
    }
    Ok(value)
}

/// `GET /v1/alerts?days&expiring_within_days`: the organization's compliance alerts now.
#[utoipa::path(get, path = "/v1/alerts", tag = TAG_ADMIN, security(("api_token" = [])),
    params(AlertWindow),
    responses((status = 200, description = "The organization's compliance alerts", body = AlertReport),
        (status = 422, description = "A window out of range", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn list_alerts(
    caller: Caller,
    State(state): State<AppState>,
    Query(window): Query<AlertWindow>,
) -> ApiResult<Json<AlertReport>> {
    caller.require(Action::Read)?;
    let days = bounded(window.days, 7, DENIAL_RETENTION_SECS / DAY, "days")?;
    let expiring = bounded(window.expiring_within_days, 30, 365, "expiring_within_days")?;
    let now = now();
    let since = now.saturating_sub(days * DAY);
    let usage = state
        .db()
        .license_usage(&caller.organization_id, now, since, MAX_LICENSES + 1)
        .await?;
    let truncated = usage.len() > MAX_LICENSES as usize;
    let usage = &usage[..usage.len().min(MAX_LICENSES as usize)];
    let mut alerts = Vec::new();
    for license in usage {
        alerts_of(license, now, days, expiring * DAY, &mut alerts)?;
    }
    let since_reclaimed = now.saturating_sub(RECLAIMED_ALERT_DAYS * DAY);
    for seats in state
        .db()
        .reclaimed_since(&caller.organization_id, since_reclaimed)
        .await?
    {
        alerts.push(ComplianceAlert {
            kind: "seat_reclaimed",
            severity: "info",
            message: format!(
                "{} assigned seat(s) reclaimed for inactivity in the last {RECLAIMED_ALERT_DAYS} \
                 day(s), the last at {} (Unix seconds); a returning user gets a seat again when \
                 one is free",
                seats.n, seats.last_at
            ),
            license_id: seats.license_id,
            product_id: seats.product_id,
            count: Some(seats.n),
            limit: None,
            at: Some(seats.last_at),
        });
    }
    alerts.sort_by(|a, b| {
        (a.severity != "warning", &a.license_id, a.kind).cmp(&(
            b.severity != "warning",
            &b.license_id,
            b.kind,
        ))
    });
    Ok(Json(AlertReport {
        generated_at: now,
        since,
        licenses_checked: usage.len(),
        truncated,
        alerts,
    }))
}

/// The alerts of one license at `now`.
fn alerts_of(
    usage: &LicenseUsage,
    now: i64,
    days: i64,
    expiring_within: i64,
    alerts: &mut Vec<ComplianceAlert>,
) -> ApiResult<()> {
    let row = &usage.license;
    let license = &issue::parsed_template(row)?.license;
    let lic = &license.claims().lic;
    let alert = |kind, severity, message: String| ComplianceAlert {
        kind,
        severity,
        license_id: row.id.clone(),
        product_id: row.product_id.clone(),
        message,
        count: None,
        limit: None,
        at: None,
    };
    // Seats are a pool only on floating licenses (another model may carry a `seats` claim).
    if let Some(seats) = lic
        .seats
        .map(i64::from)
        .filter(|seats| *seats > 0 && lic.model == LicenseModel::Floating)
    {
        if let Some((denied, last_at)) = usage.denials {
            alerts.push(ComplianceAlert {
                count: Some(denied),
                limit: Some(seats),
                at: Some(last_at),
                ..alert(
                    "seats_denied",
                    "warning",
                    format!(
                        "{denied} check-out(s) denied in the last {days} day(s): users were \
                         turned away with all {seats} seat(s) in use; add seats or shorten the \
                         lease timeout"
                    ),
                )
            });
        } else if usage.live_leases * 100 >= seats * SEATS_NEARLY_EXHAUSTED_PERCENT {
            alerts.push(ComplianceAlert {
                count: Some(usage.live_leases),
                limit: Some(seats),
                ..alert(
                    "seats_nearly_exhausted",
                    "info",
                    format!(
                        "{} of {seats} seat(s) in use: the next users may be turned away",
                        usage.live_leases
                    ),
                )
            });
        }
    }
    if let Some(max) = lic.max_machines.map(i64::from)
        && usage.machines >= max
    {
        alerts.push(ComplianceAlert {
            count: Some(usage.machines),
            limit: Some(max),
            ..alert(
                "machine_limit_reached",
                "info",
                format!(
                    "{} of {max} machine(s) activated: another machine can only be activated \
                     after one is deactivated or transferred",
                    usage.machines
                ),
            )
        });
    }
    // Named seats assigned beyond the seat count (only a license allowing over-allocation
    // gets there): a compliance violation until seats are unassigned or added.
    if let Some(limit) = seat_policy::seat_limit(row)?
        && usage.assigned_seats > limit
    {
        alerts.push(ComplianceAlert {
            count: Some(usage.assigned_seats),
            limit: Some(limit),
            ..alert(
                "over_allocation",
                "warning",
                format!(
                    "{} seat(s) assigned of {limit}: the license is over-allocated; unassign \
                     seats or buy more",
                    usage.assigned_seats
                ),
            )
        })
    }
    // The license's own term only: `exp` and its grace (the core's term rule). (Not
    // `check_time`: the stored template keeps the check-in deadline of the day it was made,
    // while each signed token gets a fresh one, so the template's check-in would report every
    // older license as lapsing.)
    match license.term_at(now) {
        Term::Running { expires_at: exp } if exp.saturating_sub(now) <= expiring_within => {
            let days_left = exp.saturating_sub(now) / DAY;
            alerts.push(ComplianceAlert {
                at: Some(exp),
                count: Some(days_left),
                ..alert(
                    "expiring",
                    "info",
                    format!("expires in {days_left} day(s), at {exp} (Unix seconds): renew it"),
                )
            });
        }
        Term::InGrace {
            expired_at: exp,
            usable_until: end,
        } => {
            alerts.push(ComplianceAlert {
                at: Some(end),
                count: Some(end.saturating_sub(now) / DAY),
                ..alert(
                    "in_grace",
                    "warning",
                    format!(
                        "expired at {exp}; usable in its grace period until {end} (Unix \
                         seconds): renew it"
                    ),
                )
            });
        }
        Term::Unlimited | Term::Running { .. } | Term::Ended { .. } => {}
    }
    Ok(())
}
