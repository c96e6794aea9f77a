//! Named seats in the app-facing routes (issue 22): the one admission rule of a license whose
//! `seat_mode` is `named`, called by check-out, activation, transfer and validation.
//!
//! A floating license (`seat_mode` = `floating`, the default) is admitted at once: no
//! statement, nothing new on its path. A named license admits
//! - a user assigned directly;
//! - a member of an assigned department whose quota the other members' live use (a live
//!   lease, or a machine of the license linked to them) leaves room in;
//! - a machine that is an assigned device;
//!
//! and refuses everyone else with 403 `user_not_assigned`. A validation or activation of a
//! named *floating* license that names no user is admitted: its seats are leases, and the
//! check-out that takes one always names the user and is admitted by this rule. A matching assignment that was
//! reclaimed (inactivity, deprovisioning) is given back when a seat is free (403
//! `seat_reclaimed` otherwise); a deactivated directory user is refused. Cost of a named
//! license: one indexed read ([`Db::admission`]), plus one `UPDATE` of the assignment's
//! `last_used_at` at most once a minute per assignment, plus a license write transaction for a
//! re-grant.
//!
//! Department quotas are checked against a read, not under the license's write lock: two
//! members asking in the same instant may both be admitted to the last seat of their
//! department (the license's own seat count still holds; the department is over by one until
//! one of them stops).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::db::{self, Candidate, LicenseRow, NewAuditEntry};
use super::error::{ApiError, ApiResult};
use super::issue;
use licensing_core::LicenseModel;
use licensing_core::protocol::ErrorCode;

/// Who may use a license's seats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum SeatMode {
    /// Anyone in the organization, up to the seat count (the behaviour before named seats).
    Floating,
    /// Only the license's assignees: users, members of assigned departments (within their
    /// quota), assigned devices.
    Named,
}

impl SeatMode {
    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            SeatMode::Floating => "floating",
            SeatMode::Named => "named",
        }
    }
}

/// A `reclaim_after` setting as stored: the reclamation's one rule
/// (`reclamation::check_reclaim_after`: 1 day to 3 years), 422 naming `field` otherwise.
pub(crate) fn reclaim_after(field: &str, seconds: Option<u64>) -> ApiResult<Option<i64>> {
    let value = seconds.map(|s| i64::try_from(s).unwrap_or(i64::MAX));
    super::reclamation::check_reclaim_after(field, value)?;
    Ok(value)
}

/// Whether the license admits only its assignees.
pub(crate) fn is_named(row: &LicenseRow) -> bool {
    row.seat_mode == SeatMode::Named.as_str()
}

/// Whether the license's model is floating (its seats are leases).
fn is_floating_model(row: &LicenseRow) -> ApiResult<bool> {
    Ok(issue::parsed_template(row)?.license.claims().lic.model == LicenseModel::Floating)
}

/// The seats a license's assignments may take: its `seats` claim (floating) when set, else
/// its `max_machines`; `None`: no limit.
pub(crate) fn seat_limit(row: &LicenseRow) -> ApiResult<Option<i64>> {
    let lic = &issue::parsed_template(row)?.license.claims().lic;
    let seats = lic
        .seats
        .map(i64::from)
        .filter(|s| *s > 0 && lic.model == LicenseModel::Floating);
    Ok(seats.or(lic.max_machines.map(i64::from)))
}

/// What [`decide`] makes of a named license's candidates.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decision<'a> {
    /// Admitted by this active assignment.
    Use(&'a Candidate),
    /// A reclaimed assignment of the user or device: admitted if a seat is free for it.
    Regrant(&'a Candidate),
    /// Refused: the user is deactivated.
    Deactivated,
    /// Refused: the user's departments are assigned seats, all in use by other members.
    DepartmentFull {
        /// The largest quota among them.
        seats: i64,
    },
    /// Refused: no assignment names the user or the machine.
    NotAssigned,
}

/// The admission rule over the assignments that may admit a request (see the module doc):
/// a direct or device assignment first, then a department with room, then a reclaimed
/// assignment to give back.
pub(crate) fn decide(candidates: &[Candidate]) -> Decision<'_> {
    if candidates.iter().any(|c| c.user_active == Some(0)) {
        return Decision::Deactivated;
    }
    let active = |c: &&Candidate| c.state == "active";
    if let Some(c) = candidates
        .iter()
        .filter(active)
        .find(|c| c.assignee_kind == "user" || c.assignee_kind == "device")
    {
        return Decision::Use(c);
    }
    if let Some(c) = candidates
        .iter()
        .filter(active)
        .find(|c| c.assignee_kind == "department" && c.in_use < c.seats)
    {
        return Decision::Use(c);
    }
    if let Some(c) = candidates
        .iter()
        .find(|c| c.state == "reclaimed" && c.assignee_kind != "department")
    {
        return Decision::Regrant(c);
    }
    match candidates
        .iter()
        .filter(|c| c.assignee_kind == "department")
        .map(|c| c.seats)
        .max()
    {
        Some(seats) => Decision::DepartmentFull { seats },
        None => Decision::NotAssigned,
    }
}

/// Who the refusal names, for its message.
fn who(user: Option<&str>) -> String {
    match user {
        Some(user) => format!("user `{user}`"),
        None => "this machine (no user was named)".to_owned(),
    }
}

/// 403 `user_deactivated` when the user an app named is deprovisioned in its organization's
/// directory (`link`: the directory user of that name, if any). A user the directory does not
/// know is not refused: an organization that keeps no directory keeps today's behaviour.
pub(crate) fn refuse_deactivated(link: Option<&db::DirectoryLink>) -> ApiResult<()> {
    match link {
        Some(link) if !link.active => Err(ApiError::forbidden(
            ErrorCode::UserDeactivated,
            "Your account is deactivated in your organization's directory, please contact IT",
        )),
        _ => Ok(()),
    }
}

/// Admits (or refuses) a use of `row` by `user` on `machine_id` at `now`: `Ok` at once for a
/// floating license; for a named one, the rule of the module doc. It records the use on the
/// admitting assignment (`last_used_at`, at most once a minute) and gives a reclaimed
/// assignment back when a seat is free.
pub(crate) async fn admit(
    state: &AppState,
    row: &LicenseRow,
    user: Option<&str>,
    machine_id: Option<&str>,
    now: i64,
) -> ApiResult<()> {
    if !is_named(row) {
        return Ok(());
    }
    if user.is_none() && is_floating_model(row)? {
        // A floating license's seats are taken at check-out, which always names its user and
        // is admitted there; a validation or activation naming none (an SDK that does not
        // send the user) only refreshes tokens that run nothing without a lease.
        return Ok(());
    }
    let key = user.map(db::directory::name_key);
    let candidates = if key.is_none() && machine_id.is_none() {
        Vec::new()
    } else {
        state
            .db()
            .admission(
                &row.id,
                &row.organization_id,
                key.as_deref(),
                machine_id,
                now,
            )
            .await?
    };
    match decide(&candidates) {
        Decision::Use(c) => {
            if c.last_used_at.is_none_or(|at| at < now.saturating_sub(60)) {
                state.db().touch_assignment(&c.id, now).await?;
            }
            Ok(())
        }
        Decision::Regrant(c) => regrant(state, row, c, user, now).await,
        Decision::Deactivated => Err(ApiError::forbidden(
            ErrorCode::UserNotAssigned,
            format!(
                "{} is deactivated in your organization's directory and cannot use this \
                 license; ask your IT administrator",
                who(user)
            ),
        )),
        Decision::DepartmentFull { seats } => Err(ApiError::forbidden(
            ErrorCode::UserNotAssigned,
            format!(
                "all {seats} seat(s) assigned to your department are in use by colleagues; \
                 try again later or ask your IT administrator for a seat of your own"
            ),
        )),
        Decision::NotAssigned => Err(ApiError::forbidden(
            ErrorCode::UserNotAssigned,
            format!(
                "this license is assigned to named users, and {} has no seat on it; ask your \
                 IT administrator to assign you one",
                who(user)
            ),
        )),
    }
}

/// Gives the reclaimed assignment `c` its seat back when one is free (under the license's
/// write lock, so two re-grants cannot take one seat); 403 `seat_reclaimed` otherwise.
async fn regrant(
    state: &AppState,
    row: &LicenseRow,
    c: &Candidate,
    user: Option<&str>,
    now: i64,
) -> ApiResult<()> {
    let limit = seat_limit(row)?;
    let mut tx = state.db().begin_license_write(&row.id).await?;
    let assigned = db::assigned_seats_in(&mut tx, &row.id, None).await?;
    let free = limit.is_none_or(|limit| assigned.saturating_add(c.seats) <= limit);
    if free && db::regrant_in(&mut tx, &c.id, now).await? {
        tx.commit().await?;
        tracing::info!(license = %row.id, assignment = %c.id, "reclaimed seat given back");
        record_regrant(state, row, c, now).await;
        return Ok(());
    }
    drop(tx);
    if !free {
        return Err(ApiError::forbidden(
            ErrorCode::SeatReclaimed,
            format!(
                "the seat of {} on this license was reclaimed after a period without use, and \
                 all {} seat(s) are assigned now; ask your IT administrator",
                who(user),
                limit.unwrap_or_default()
            ),
        ));
    }
    // Given back meanwhile by a concurrent request: admitted.
    Ok(())
}

/// The audit action of a reclaimed seat given back.
pub(crate) const SEAT_REGRANTED: &str = "seat.regranted";

/// The actor of the audit entries of client calls that change a seat (no API token acts).
const CLIENT_ACTOR: &str = "client";

/// Records a re-grant in the audit trail: action `seat.regranted`, the target naming the
/// license and the assignment (never the user's name).
// ISSUE-22 clientaudit: once the client-event API is on main, record through it instead
// (action `seat.regranted`, target id = the assignment id, license id); this is the one call
// site.
async fn record_regrant(state: &AppState, row: &LicenseRow, c: &Candidate, now: i64) {
    state
        .audit()
        .append(NewAuditEntry {
            at: now,
            organization_id: Some(row.organization_id.clone()),
            actor: CLIENT_ACTOR.into(),
            action: SEAT_REGRANTED.into(),
            target: format!("/v1/licenses/{}/assignments/{}", row.id, c.id),
            status: 200,
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(kind: &str, state: &str, seats: i64, in_use: i64) -> Candidate {
        Candidate {
            id: format!("{kind}-{state}"),
            assignee_kind: kind.into(),
            seats,
            state: state.into(),
            last_used_at: None,
            user_id: Some("usr".into()),
            user_active: Some(1),
            in_use,
        }
    }

    #[test]
    fn the_rule_prefers_own_seats_then_departments_with_room_then_a_regrant() {
        assert_eq!(decide(&[]), Decision::NotAssigned);
        let user = candidate("user", "active", 1, 0);
        let full = candidate("department", "active", 2, 2);
        let room = candidate("department", "active", 3, 2);
        let reclaimed = candidate("user", "reclaimed", 1, 0);
        assert_eq!(decide(&[full.clone(), user.clone()]), Decision::Use(&user));
        assert_eq!(decide(&[full.clone(), room.clone()]), Decision::Use(&room));
        assert_eq!(
            decide(std::slice::from_ref(&full)),
            Decision::DepartmentFull { seats: 2 }
        );
        assert_eq!(
            decide(&[full.clone(), reclaimed.clone()]),
            Decision::Regrant(&reclaimed)
        );
        let device = candidate("device", "active", 1, 0);
        assert_eq!(
            decide(std::slice::from_ref(&device)),
            Decision::Use(&device)
        );
        let mut gone = user.clone();
        gone.user_active = Some(0);
        assert_eq!(decide(&[gone, device]), Decision::Deactivated);
        // A reclaimed department quota is not given back on a member's use.
        assert_eq!(
            decide(&[candidate("department", "reclaimed", 2, 0)]),
            Decision::DepartmentFull { seats: 2 }
        );
    }
}
