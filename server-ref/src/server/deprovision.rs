//! Deprovisioning a directory user (issue 22): when a person leaves (SCIM `active: false` or
//! delete, or the admin API's deactivate and delete), every seat and lease they hold is given
//! back at once.
//!
//! - Every lease live on a license of the organization that is the user's (linked to them by
//!   `user_id`, or not linked yet and naming their user name, without regard to case) is
//!   force-released through the administrators' force-release path
//!   ([`Db::force_release`](super::db::Db::force_release)): the seat is free at once and the
//!   lease's epoch moves on, so the app's next heartbeat is refused (fencing) and it learns the
//!   seat is gone. A borrowed lease is kept, as a force-release keeps it (its holder may be
//!   offline with a token valid until its expiry, so freeing the seat would let one more user
//!   in than the license has seats); [`Deprovisioned::borrowed_kept`] lists them.
//! - Every active seat assignment of the user becomes `reclaimed` with the reason
//!   `deprovisioned` (the row stays, so a returning user can get a seat back).
//!
//! Each lease is released in its own transaction on its license's lock (as an administrator's
//! force-release is); a lease taken by the user between the read and the releases is not
//! released (the caller deactivates the user first, which the named-seat checks refuse).

use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::db::directory;
use super::error::{ApiError, ApiResult};
use licensing_core::protocol::ErrorCode;

/// The reason recorded on the seat assignments a deprovisioning reclaims.
pub(crate) const REASON: &str = "deprovisioned";

/// A released or kept lease.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub(crate) struct LeaseRef {
    /// The license.
    pub license_id: String,
    /// The lease.
    pub lease_id: String,
}

/// What deprovisioning a user gave back.
#[derive(Debug, Clone, Default, Serialize, ToSchema, PartialEq, Eq)]
pub(crate) struct Deprovisioned {
    /// The directory user.
    pub user_id: String,
    /// Leases force-released (their holders' next heartbeat is refused).
    pub leases_released: Vec<LeaseRef>,
    /// Borrowed leases left as they are (they end at their expiry).
    pub borrowed_kept: Vec<LeaseRef>,
    /// Seat assignments set to `reclaimed` (reason `deprovisioned`).
    pub assignments_reclaimed: u64,
}

/// Releases every seat and lease of directory user `user_id` of `organization_id` at `now`
/// (see the module doc); `actor` is who did it (an API token id, `scim:<token id>`, `cli`).
/// 404 when the organization has no such user (a user of another organization included).
pub(crate) async fn user(
    state: &AppState,
    organization_id: &str,
    user_id: &str,
    now: i64,
    actor: &str,
) -> ApiResult<Deprovisioned> {
    let db = state.db();
    let Some(found) = db.user(organization_id, user_id).await? else {
        return Err(ApiError::not_found(
            ErrorCode::NotFound,
            format!("no directory user `{user_id}`"),
        ));
    };
    let name_key = directory::name_key(&found.user_name);
    let assignments_reclaimed = db
        .reclaim_user_assignments(organization_id, user_id, REASON, now)
        .await?;
    let mut done = Deprovisioned {
        user_id: user_id.to_owned(),
        assignments_reclaimed,
        ..Deprovisioned::default()
    };
    for lease in db
        .live_leases_of_user(organization_id, user_id, now)
        .await?
    {
        let theirs = lease.user_id.as_deref() == Some(user_id)
            || (lease.user_id.is_none() && directory::name_key(&lease.user_name) == name_key);
        if !theirs {
            continue;
        }
        let after = db.force_release(&lease.license_id, &lease.id, now).await?;
        let lease_ref = LeaseRef {
            license_id: lease.license_id,
            lease_id: lease.id,
        };
        match after {
            Some(row) if row.is_live_at(now) => done.borrowed_kept.push(lease_ref),
            // Released now, or ended meanwhile (checked in, lapsed): not held either way.
            _ => done.leases_released.push(lease_ref),
        }
    }
    // TODO(issue 22, coordinator): record `user.deprovisioned` through the client-event API of
    // the audit trail (the `clientaudit` helper's), with `actor`, the organization, the user id
    // as the target and the counts above, once that API is on main. The request that
    // deprovisions (a SCIM or admin write) is recorded by the request layer already.
    tracing::info!(
        organization = %organization_id,
        user = %user_id,
        actor = %actor,
        leases_released = done.leases_released.len(),
        borrowed_kept = done.borrowed_kept.len(),
        assignments_reclaimed = done.assignments_reclaimed,
        "user deprovisioned"
    );
    Ok(done)
}
