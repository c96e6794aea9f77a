//! Inactivity reclamation (issue 22): a seat assigned to a user or a device that has not been
//! used for the license's threshold is reclaimed (state `reclaimed`, reason `inactive`), so it
//! is free again. The rules are here, once: the threshold's bounds ([`check_reclaim_after`]),
//! which threshold applies ([`threshold`]) and whether a seat is idle ([`idle`]); the preview
//! ([`preview`]), the run on demand and the background job ([`reclaim`], [`spawn_reclaimer`])
//! all decide through them. The `db` layer only runs the SQL (`db::reclamation`).
//!
//! Several replicas may run the job at once: the seats of one license found idle are reclaimed
//! in one transaction, which reads each assignment again after taking the license's write lock (SQLite: the database's write lock; PostgreSQL: the license
//! row, which check-outs of that license take too) and changes it with one conditional
//! statement (still active, not used since it was read), so one replica reclaims it and
//! records it in the audit trail, the other finds nothing to do.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::db::reclamation::{IdleCandidate, Scope};
use super::db::{self, Db, DbResult, NewAuditEntry};
use super::error::{ApiError, ApiResult};
use licensing_core::protocol::ErrorCode;

/// Shortest threshold accepted: one day.
pub(crate) const MIN_RECLAIM_AFTER: i64 = 86_400;

/// Longest threshold accepted: three years.
pub(crate) const MAX_RECLAIM_AFTER: i64 = 3 * 365 * 86_400;

/// Default seconds between two runs of the background job (`serve --reclaim-interval`).
pub(crate) const DEFAULT_RECLAIM_INTERVAL: u64 = 3600;

/// Candidates read per statement.
const PAGE: i64 = 500;

/// The actor of the audit entries the reclamation writes (no API token acts).
pub(crate) const RECLAIM_ACTOR: &str = "reclamation";

/// The audit action of a reclaimed seat.
pub(crate) const SEAT_RECLAIMED: &str = "seat.reclaimed";

/// The rule for a `reclaim_after` setting (of a policy or a license): `None` (never reclaim;
/// a license's `None` means its policy's applies) or 1 day to 3 years in seconds; else 422
/// naming `field`. The one check: the policy and license requests and
/// `PUT /v1/licenses/{id}/reclamation` call it.
pub(crate) fn check_reclaim_after(field: &str, value: Option<i64>) -> ApiResult<()> {
    match value {
        Some(seconds) if !(MIN_RECLAIM_AFTER..=MAX_RECLAIM_AFTER).contains(&seconds) => {
            Err(ApiError::invalid(
                ErrorCode::InvalidField,
                format!(
                    "`{field}` must be between {MIN_RECLAIM_AFTER} (1 day) and \
                     {MAX_RECLAIM_AFTER} (3 years) seconds, or null (never reclaim); got \
                     {seconds}"
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// Where a threshold comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ThresholdFrom {
    /// The license's own `reclaim_after`.
    License,
    /// The policy's (the license sets none).
    Policy,
}

/// The threshold that applies: the license's when set, else its policy's; `None`: its seats
/// are never reclaimed.
pub(crate) fn threshold(license: Option<i64>, policy: Option<i64>) -> Option<(i64, ThresholdFrom)> {
    match (license, policy) {
        (Some(seconds), _) => Some((seconds, ThresholdFrom::License)),
        (None, Some(seconds)) => Some((seconds, ThresholdFrom::Policy)),
        (None, None) => None,
    }
}

/// What a seat's last use was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum UseSource {
    /// A validation, activation or check-out recorded on the assignment (`last_used_at`).
    SeatUse,
    /// A check-out or heartbeat of one of the user's leases on the license.
    Lease,
    /// The device's last validation (or, for a user, of one of the user's machines on the
    /// license).
    Machine,
    /// Never used since it was assigned: its assignment.
    Assigned,
}

/// An idle seat: what its last use was, the threshold and how long it has been idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Idle {
    /// When it was last used (Unix seconds).
    pub last_used_at: i64,
    /// What that use was.
    pub last_use: UseSource,
    /// The threshold, seconds.
    pub reclaim_after: i64,
    /// Where the threshold comes from.
    pub reclaim_after_from: ThresholdFrom,
    /// Seconds since the last use (at least the threshold).
    pub idle_for: i64,
}

/// The idle rule, the one decision of reclamation: `Some` when `seat` is idle at `now`. A seat
/// is idle when `now - last use >= threshold`, its last use being the latest of its recorded
/// use (`last_used_at`), its user's leases' check-outs and heartbeats on the license, its
/// device's (or its user's machines') last validation, and its assignment (so a seat is never
/// reclaimed sooner than the threshold after it was assigned). Never idle: a seat without a
/// threshold, a department's (a quota), and a user's who holds a live lease (a borrowed lease
/// sends no heartbeat for days).
pub(crate) fn idle(seat: &IdleCandidate, now: i64) -> Option<Idle> {
    let (reclaim_after, reclaim_after_from) =
        threshold(seat.license_reclaim_after, seat.policy_reclaim_after)?;
    if !matches!(seat.assignee_kind.as_str(), "user" | "device") || seat.live_leases > 0 {
        return None;
    }
    let mut last = (seat.created_at, UseSource::Assigned);
    // On a tie the later source of this list wins: it tells more.
    for (at, source) in [
        (seat.machine_seen_at, UseSource::Machine),
        (seat.lease_used_at, UseSource::Lease),
        (seat.last_used_at, UseSource::SeatUse),
    ] {
        if let Some(at) = at
            && at >= last.0
        {
            last = (at, source);
        }
    }
    let idle_for = now.saturating_sub(last.0);
    (idle_for >= reclaim_after).then_some(Idle {
        last_used_at: last.0,
        last_use: last.1,
        reclaim_after,
        reclaim_after_from,
        idle_for,
    })
}

/// The cut-off of the candidates' statement at `now` (`None`: no threshold is set anywhere,
/// nothing can be idle): a seat whose recorded use is later cannot be idle under any accepted
/// threshold, nor under any stored one (a threshold stored by an older rule or by hand, shorter
/// than a day, still has its seats reclaimed).
async fn cutoff(db: &Db, now: i64) -> DbResult<Option<i64>> {
    Ok(db
        .shortest_reclaim_after()
        .await?
        .map(|shortest| now.saturating_sub(shortest.min(MIN_RECLAIM_AFTER))))
}

/// The seats in `scope` that are idle at `now`, by assignment id, at most `max` (`true` when
/// there are more). Changes nothing.
pub(crate) async fn preview(
    db: &Db,
    scope: Scope<'_>,
    now: i64,
    max: usize,
) -> DbResult<(Vec<(IdleCandidate, Idle)>, bool)> {
    let mut found = Vec::new();
    let Some(cutoff) = cutoff(db, now).await? else {
        return Ok((found, false));
    };
    let mut after = String::new();
    loop {
        let page = db.idle_candidates(scope, cutoff, now, &after, PAGE).await?;
        let full = page.len() as i64 == PAGE;
        for seat in page {
            after.clone_from(&seat.id);
            if let Some(idle) = idle(&seat, now) {
                if found.len() == max {
                    return Ok((found, true));
                }
                found.push((seat, idle));
            }
        }
        if !full {
            return Ok((found, false));
        }
    }
}

/// Reclaims the seats in `scope` idle at `now` and records each in the audit trail; returns
/// those this call reclaimed (not those another replica reclaimed meanwhile).
pub(crate) async fn reclaim(
    state: &AppState,
    scope: Scope<'_>,
    now: i64,
) -> DbResult<Vec<(IdleCandidate, Idle)>> {
    let db = state.db();
    let mut reclaimed = Vec::new();
    let Some(cutoff) = cutoff(db, now).await? else {
        return Ok(reclaimed);
    };
    let mut after = String::new();
    loop {
        let page = db.idle_candidates(scope, cutoff, now, &after, PAGE).await?;
        let full = page.len() as i64 == PAGE;
        if let Some(last) = page.last() {
            after.clone_from(&last.id);
        }
        // The page's idle seats, per license (one transaction and commit per license).
        let mut by_license: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for seat in page.iter().filter(|seat| idle(seat, now).is_some()) {
            by_license
                .entry(&seat.license_id)
                .or_default()
                .push(&seat.id);
        }
        for (license_id, ids) in by_license {
            for done in reclaim_of_license(db, license_id, &ids, now).await? {
                record(state, &done.0, now).await;
                reclaimed.push(done);
            }
        }
        if !full {
            return Ok(reclaimed);
        }
    }
}

/// Reclaims the assignments `ids` of `license_id` that are still idle at `now`, in one
/// transaction this function owns: the license's write lock first, then each assignment read
/// again and decided by [`idle`], then one conditional statement each; one commit.
async fn reclaim_of_license(
    db: &Db,
    license_id: &str,
    ids: &[&str],
    now: i64,
) -> DbResult<Vec<(IdleCandidate, Idle)>> {
    let mut tx = db.begin_license_write(license_id).await?;
    let mut done = Vec::new();
    for id in ids {
        let Some(seat) = db::reclamation::idle_candidate_in(&mut tx, id, now).await? else {
            continue;
        };
        let Some(idle) = idle(&seat, now) else {
            continue;
        };
        if db::reclamation::reclaim_in(&mut tx, &seat, now).await? {
            done.push((seat, idle));
        }
    }
    if !done.is_empty() {
        tx.commit().await?;
    }
    Ok(done)
}

/// Records a reclaimed seat in the audit trail: action `seat.reclaimed`, the target naming the
/// license and the assignment.
// ISSUE-22 clientaudit: once the client-event API is on main, record through it instead
// (action `seat.reclaimed`, target id = the assignment id, license id, subject = the assignee);
// this is the one call site.
async fn record(state: &AppState, seat: &IdleCandidate, now: i64) {
    state
        .audit()
        .append(NewAuditEntry {
            at: now,
            organization_id: Some(seat.organization_id.clone()),
            actor: RECLAIM_ACTOR.into(),
            action: SEAT_RECLAIMED.into(),
            target: format!("/v1/licenses/{}/assignments/{}", seat.license_id, seat.id),
            status: 200,
        })
        .await;
}

/// The background job: [`reclaim`] over every organization every `every`, at the time `clock`
/// tells (the server clock; tests inject theirs), the first run at once. Errors are logged and
/// retried at the next tick.
pub(crate) fn spawn_reclaimer(
    state: AppState,
    every: std::time::Duration,
    clock: fn() -> i64,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match reclaim(&state, Scope::All, clock()).await {
                Ok(seats) if seats.is_empty() => {}
                Ok(seats) => tracing::info!(seats = seats.len(), "reclaimed idle seats"),
                Err(e) => tracing::warn!(error = %e, "reclamation run failed"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seat(kind: &str) -> IdleCandidate {
        IdleCandidate {
            id: "asg_1".into(),
            organization_id: "org".into(),
            license_id: "lic".into(),
            assignee_kind: kind.into(),
            assignee_id: "usr".into(),
            assignee_name: None,
            created_at: 1_000,
            last_used_at: None,
            license_reclaim_after: None,
            policy_reclaim_after: Some(MIN_RECLAIM_AFTER),
            lease_used_at: None,
            live_leases: 0,
            machine_seen_at: None,
        }
    }

    #[test]
    fn the_threshold_is_the_licenses_else_the_policys() {
        assert_eq!(threshold(None, None), None);
        assert_eq!(threshold(None, Some(5)), Some((5, ThresholdFrom::Policy)));
        assert_eq!(
            threshold(Some(7), Some(5)),
            Some((7, ThresholdFrom::License))
        );
    }

    #[test]
    fn the_setting_is_a_day_to_three_years_or_null() {
        for ok in [None, Some(86_400), Some(94_608_000)] {
            assert!(check_reclaim_after("reclaim_after", ok).is_ok(), "{ok:?}");
        }
        for bad in [0, -1, 86_399, 94_608_001, i64::MAX, i64::MIN] {
            let e = check_reclaim_after("policy.reclaim_after", Some(bad)).unwrap_err();
            assert_eq!(e.status(), axum::http::StatusCode::UNPROCESSABLE_ENTITY);
            assert!(
                e.detail().contains("`policy.reclaim_after`"),
                "{}",
                e.detail()
            );
        }
    }

    #[test]
    fn idle_from_the_threshold_on_never_before() {
        let day = MIN_RECLAIM_AFTER;
        let s = seat("user");
        assert_eq!(idle(&s, 1_000 + day - 1), None);
        let at = idle(&s, 1_000 + day).unwrap();
        assert_eq!(
            (
                at.last_used_at,
                at.last_use,
                at.idle_for,
                at.reclaim_after_from
            ),
            (1_000, UseSource::Assigned, day, ThresholdFrom::Policy)
        );
    }

    #[test]
    fn the_latest_use_counts_and_names_its_source() {
        let day = MIN_RECLAIM_AFTER;
        let mut s = seat("device");
        s.last_used_at = Some(2_000);
        s.machine_seen_at = Some(3_000);
        s.lease_used_at = Some(2_500);
        assert_eq!(idle(&s, 3_000 + day - 1), None);
        assert_eq!(idle(&s, 3_000 + day).unwrap().last_use, UseSource::Machine);
        s.lease_used_at = Some(4_000);
        assert_eq!(idle(&s, 4_000 + day).unwrap().last_use, UseSource::Lease);
        s.last_used_at = Some(4_000);
        assert_eq!(idle(&s, 4_000 + day).unwrap().last_use, UseSource::SeatUse);
        // A use recorded before the assignment does not make a new seat idle.
        s.created_at = 10_000;
        assert_eq!(idle(&s, 10_000 + day - 1), None);
    }

    #[test]
    fn never_idle_departments_live_leases_and_seats_without_threshold() {
        let far = i64::MAX / 2;
        assert_eq!(idle(&seat("department"), far), None);
        let mut s = seat("user");
        s.live_leases = 1;
        assert_eq!(idle(&s, far), None);
        let mut s = seat("user");
        s.policy_reclaim_after = None;
        assert_eq!(idle(&s, far), None);
        s.license_reclaim_after = Some(MIN_RECLAIM_AFTER);
        assert!(idle(&s, far).is_some());
    }
}
