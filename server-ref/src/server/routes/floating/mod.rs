//! Floating licenses: seat check-out, heartbeat and check-in for clients (license key), leases,
//! the lease timeout and denials for the admin API (roles). The seat rules live in one
//! transaction in `db/floating.rs`; the token is licensing-core's `lease+jwt`.

use axum::extract::Query;
use licensing_core::LeaseClaims;

use axum::response::{IntoResponse, Response};

use super::super::db::{
    Borrow, CheckOut, CheckOutOutcome, DENIAL_RETENTION_SECS, DayCount, DenialRow, DenialScope,
    LeaseRow, LeaseUpdate, Line, QUEUE_RETRY_AFTER, QueueRow, Waiting,
};
use super::*;

mod admin;
mod client;

pub(crate) use admin::*;
pub(crate) use client::*;

/// The denial message of the customer's specification, exactly.
pub(crate) const NO_SEATS_MESSAGE: &str = "No available licenses, please contact IT";

/// A new license's lease timeout (15 minutes), as in the schema's default.
pub(crate) const DEFAULT_LEASE_TIMEOUT: i64 = 900;

/// Bounds of a license's lease timeout, in seconds (5 to 60 minutes).
pub(crate) const LEASE_TIMEOUT_BOUNDS: std::ops::RangeInclusive<i64> = 300..=3600;

/// Longest borrowing a license may allow, in seconds (30 days), as in the schema.
pub(crate) const MAX_BORROW_SECONDS: i64 = 30 * 86_400;

/// Longest wait in line a license may allow, in seconds (one day), as in the schema.
pub(crate) const MAX_QUEUE_SECONDS: i64 = 86_400;

/// The client is told to heartbeat at this fraction of the timeout, so two beats may be lost
/// before the seat lapses.
const HEARTBEAT_FRACTION: i64 = 3;

/// Most denials one listing returns.
const MAX_DENIALS_LISTED: i64 = 1000;

/// A seat lease as the API shows it.
#[derive(Serialize, ToSchema)]
pub(crate) struct LeaseView {
    lease_id: String,
    license_id: String,
    client_id: String,
    user: String,
    epoch: i64,
    created_at: i64,
    heartbeat_at: i64,
    expires_at: i64,
    released_at: Option<i64>,
    /// `checked_in`, `expired` or `forced`.
    release_reason: Option<String>,
    /// Borrowed: taken offline until `expires_at`; heartbeats do not move it, and it cannot be
    /// force-released (only returned by its holder, or lapsed).
    borrowed: bool,
}

/// A refused seat check-out.
#[derive(Serialize, ToSchema)]
pub(crate) struct DenialView {
    id: String,
    license_id: String,
    client_id: String,
    user: String,
    at: i64,
}

/// The client answers carrying a lease or a place in line, and the answer to leaving the line:
/// the protocol's own types.
pub(crate) use licensing_core::protocol::{LeaseAnswer, LeftQueue, QueuedAnswer};

/// A license's live leases.
#[derive(Serialize, ToSchema)]
pub(crate) struct LeaseList {
    license_id: String,
    /// Seconds without a heartbeat after which a lease lapses (300 to 3600). Clients that
    /// hold a seat only while in use also check it in after this long without user activity.
    lease_timeout: i64,
    /// How the license may be borrowed.
    borrowing: BorrowingView,
    /// Its wait line.
    queue: QueueView,
    /// The seats of a floating license (`null`: not floating).
    seats: Option<i64>,
    leases: Vec<LeaseView>,
}

/// A floating license's wait line: when no seat is free, a check-out with `queue_seconds` waits
/// in line, first come first served.
#[derive(Serialize, ToSchema)]
pub(crate) struct QueueView {
    /// Longest wait a check-out may ask for, in seconds (0: no line).
    max_seconds: i64,
    /// The places held now, head first.
    waiting: Vec<QueuePlaceView>,
}

/// A place in a license's wait line.
#[derive(Serialize, ToSchema)]
pub(crate) struct QueuePlaceView {
    queue_id: String,
    client_id: String,
    user: String,
    /// 1 for the head of the line.
    position: i64,
    queued_at: i64,
    /// The last time its client asked.
    polled_at: i64,
    wait_until: i64,
    /// The place is given up then, unless its client asks again.
    expires_at: i64,
}

/// How long a floating license's check-outs may wait in line.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueueSettings {
    /// Longest wait in line, in seconds: 0 (no line: a check-out finding no free seat is
    /// denied at once) to 86 400 (one day).
    #[schema(minimum = 0, maximum = 86_400)]
    max_seconds: i64,
}

/// How a floating license may be borrowed: a check-out with `borrow_seconds` takes its seat
/// offline for that long, with no heartbeat.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BorrowingView {
    /// Longest borrowing, in seconds: 0 (borrowing not allowed) to 2 592 000 (30 days).
    #[schema(minimum = 0, maximum = 2_592_000)]
    max_seconds: i64,
    /// Most leases borrowed at once: 0 to the license's seats.
    #[schema(minimum = 0)]
    max_leases: i64,
}

/// A license's lease timeout.
#[derive(Serialize, ToSchema)]
pub(crate) struct LeaseTimeoutView {
    license_id: String,
    lease_timeout: i64,
}

/// Denials on one UTC day.
#[derive(Serialize, ToSchema)]
pub(crate) struct DayCountView {
    /// `YYYY-MM-DD`.
    date: String,
    count: i64,
}

/// Denials in a period.
#[derive(Serialize, ToSchema)]
pub(crate) struct DenialReport {
    from: i64,
    to: i64,
    total: i64,
    per_day: Vec<DayCountView>,
    /// At most 1000, newest first.
    denials: Vec<DenialView>,
    /// Whether `denials` holds fewer than `total`.
    truncated: bool,
}

fn lease_view(lease: &LeaseRow) -> LeaseView {
    LeaseView {
        lease_id: lease.id.clone(),
        license_id: lease.license_id.clone(),
        client_id: lease.client_id.clone(),
        user: lease.user_name.clone(),
        epoch: lease.epoch,
        created_at: lease.created_at,
        heartbeat_at: lease.heartbeat_at,
        expires_at: lease.expires_at,
        released_at: lease.released_at,
        release_reason: lease.release_reason.clone(),
        borrowed: lease.is_borrowed(),
    }
}

fn place_view((place, position): (&QueueRow, i64)) -> QueuePlaceView {
    QueuePlaceView {
        queue_id: place.id.clone(),
        client_id: place.client_id.clone(),
        user: place.user_name.clone(),
        position,
        queued_at: place.queued_at,
        polled_at: place.polled_at,
        wait_until: place.wait_until,
        expires_at: place.expires_at,
    }
}

fn denial_view(denial: &DenialRow) -> DenialView {
    DenialView {
        id: denial.id.clone(),
        license_id: denial.license_id.clone(),
        client_id: denial.client_id.clone(),
        user: denial.user_name.clone(),
        at: denial.at,
    }
}

/// A license usable for seats: floating and active; its seats.
fn floating_seats(row: &LicenseRow, now: i64) -> ApiResult<i64> {
    issue::refuse_status(
        &issue::effective_status(row, now)?,
        issue::Use::Run,
        "no seat can be checked out",
    )?;
    template_seats(row)
}

/// The seats of a floating license, from its claims template (parsed once per read of the
/// row, as `effective_status` uses it); 409 if it is not floating.
pub(crate) fn template_seats(row: &LicenseRow) -> ApiResult<i64> {
    let lic = &issue::parsed_template(row)?.license.claims().lic;
    if lic.model != LicenseModel::Floating {
        return Err(ApiError::conflict(
            ErrorCode::LicenseNotFloating,
            "seats are checked out only from a floating license",
        ));
    }
    lic.seats
        .map(i64::from)
        .filter(|seats| *seats >= 1)
        .ok_or_else(|| ApiError::internal(format!("floating license {} has no seats", row.id)))
}

fn lease_not_found(id: &str) -> ApiError {
    ApiError::not_found(
        ErrorCode::LeaseNotFound,
        format!("no lease `{id}` on this license"),
    )
}
