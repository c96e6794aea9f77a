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

/// The answer carrying a lease.
#[derive(Serialize, ToSchema)]
pub(crate) struct LeaseAnswer {
    lease_id: String,
    /// A signed `lease+jwt`.
    lease_token: String,
    epoch: i64,
    expires_at: i64,
    /// Seconds between heartbeats (a borrowed lease needs none: they leave its expiry alone).
    heartbeat_interval: i64,
    /// Borrowed: usable offline until `expires_at` (as its token says).
    borrowed: bool,
    /// The lease's secret, proof of holding it: heartbeats and check-ins present it. Only in
    /// a check-out's answer (never in a heartbeat's); keep it private (not logged, files
    /// 0600). A retry with the same request id answers a fresh one that replaces it, unless
    /// the retry presents it; absent for a lease without one (taken before secrets existed,
    /// or by a check-out that did not declare `lease_secret_supported`).
    #[serde(skip_serializing_if = "Option::is_none")]
    lease_secret: Option<String>,
}

/// A check-out waiting in line for a seat (202): ask again with the same request id every
/// `retry_after` seconds to keep the place; the answer is the lease once a seat is free for it.
#[derive(Serialize, ToSchema)]
pub(crate) struct QueuedAnswer {
    /// The place in line (to give it up: `POST /v1/client/queue/{id}/leave`).
    queue_id: String,
    /// 1 for the head of the line.
    position: i64,
    /// Places in line, this one included.
    waiting: i64,
    queued_at: i64,
    /// The end of the wait (server clock): a check-out after it without a seat is denied.
    wait_until: i64,
    /// Seconds to wait before asking again (also in `Retry-After`). A place not asked for
    /// within 30 seconds is given up.
    retry_after: i64,
    /// The message to show meanwhile: "No available licenses, please contact IT".
    message: String,
}

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
fn template_seats(row: &LicenseRow) -> ApiResult<i64> {
    let lic = &issue::parsed_template(row)?.license.claims().lic;
    if lic.model != LicenseModel::Floating {
        return Err(ApiError::conflict(
            "license_not_floating",
            "seats are checked out only from a floating license",
        ));
    }
    lic.seats
        .map(i64::from)
        .filter(|seats| *seats >= 1)
        .ok_or_else(|| ApiError::internal(format!("floating license {} has no seats", row.id)))
}

/// Signs the `lease+jwt` for a lease as it is now.
fn sign_lease(state: &AppState, row: &LicenseRow, lease: &LeaseRow, now: i64) -> ApiResult<String> {
    let claims = LeaseClaims {
        iss: state.issuer().to_owned(),
        sub: lease.id.clone(),
        aud: row.product_id.clone(),
        iat: now,
        exp: lease.expires_at,
        jti: secrets::new_id("jti").map_err(internal)?,
        license_id: lease.license_id.clone(),
        client_id: lease.client_id.clone(),
        user: lease.user_name.clone(),
        epoch: u64::try_from(lease.epoch).map_err(ApiError::internal)?,
        borrowed: lease.is_borrowed(),
    };
    licensing_core::issue_lease(&claims, &state.key())
        .map_err(|e| ApiError::internal(format!("signing a lease: {e}")))
}

/// The answer carrying a lease: its id, a fresh token, its expiry and the heartbeat interval;
/// and `secret` (a check-out's answer only).
async fn lease_answer(
    state: &AppState,
    row: &LicenseRow,
    lease: &LeaseRow,
    now: i64,
    secret: Option<String>,
) -> ApiResult<LeaseAnswer> {
    let timeout = row.lease_timeout;
    Ok(LeaseAnswer {
        lease_id: lease.id.clone(),
        lease_token: sign_lease(state, row, lease, now)?,
        epoch: lease.epoch,
        expires_at: lease.expires_at,
        heartbeat_interval: timeout / HEARTBEAT_FRACTION,
        borrowed: lease.is_borrowed(),
        lease_secret: secret,
    })
}

/// The secret a check-out answers for `lease`: the fresh one (a new lease, or a retry's
/// replacement) or the one the check-out presented, whichever is the lease's now (compared in
/// constant time); none for a lease without one (taken before secrets existed, or by a
/// check-out that did not declare `lease_secret_supported`).
fn answered_secret(
    lease: &LeaseRow,
    fresh: Option<String>,
    presented: Option<String>,
) -> Option<String> {
    let hash = |secret: &str| secrets::sha256_hex(secret.as_bytes());
    lease.secret_hash.as_ref()?;
    if let Some(fresh) = fresh
        && lease.secret_matches(Some(&hash(&fresh)))
    {
        return Some(fresh);
    }
    presented.filter(|secret| lease.secret_matches(Some(&hash(secret))))
}

/// The refusal of a heartbeat or check-in whose secret is not the lease's: 403, and the
/// lease goes on (its holder is not disturbed).
fn wrong_secret(presented: bool) -> ApiError {
    if presented {
        ApiError::forbidden(
            "lease_secret_invalid",
            "`lease_secret` is not this lease's secret; only the instance that checked the \
             lease out can heartbeat or check it in",
        )
    } else {
        ApiError::forbidden(
            "lease_secret_required",
            "`lease_secret` is missing: present the secret answered with the lease at \
             check-out",
        )
    }
}

/// The SHA-256 hex of a presented lease secret (422 when it cannot be one).
fn presented_hash(secret: Option<&str>) -> ApiResult<Option<String>> {
    secret
        .map(|secret| {
            token_field("lease_secret", secret, 1, 128)?;
            Ok(secrets::sha256_hex(secret.as_bytes()))
        })
        .transpose()
}

/// Counts a seat call against its license's seat rate (429 beyond it). A license's seat
/// calls may go as fast as the client rate per seat: a floating license is shared by all its
/// seats' users, whose heartbeats, check-outs and polls in line grow with its seats.
fn seat_rate(state: &AppState, row: &LicenseRow) -> ApiResult<()> {
    let seats = template_seats(row).unwrap_or(1);
    state.check_seat_rate(&row.id, seats)
}

fn lease_released(status: StatusCode, lease: &LeaseRow) -> ApiError {
    let why = match lease.release_reason.as_deref() {
        Some("forced") => "was released by an administrator",
        Some("checked_in") => "was checked in",
        Some("expired") | None => "has lapsed",
        Some(_) => "has ended",
    };
    ApiError::new(
        status,
        "lease_released",
        format!("the lease {why}; check out a seat again"),
    )
}

/// 409 `lease_released` for an epoch that is not the lease's: a live lease says so (the
/// request comes from a holder the lease has moved on from), an ended one says how it ended.
fn lease_fenced(lease: &LeaseRow, presented: i64) -> ApiError {
    if lease.released_at.is_some() {
        return lease_released(StatusCode::CONFLICT, lease);
    }
    ApiError::new(
        StatusCode::CONFLICT,
        "lease_released",
        format!(
            "epoch {presented} is stale: the lease's current epoch is {}, so this holder was \
             superseded; check out a seat again",
            lease.epoch
        ),
    )
}

fn lease_not_found(id: &str) -> ApiError {
    ApiError::not_found(
        "lease_not_found",
        format!("no lease `{id}` on this license"),
    )
}

// ---- client API ----------------------------------------------------------------------------

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckOutRequest {
    /// The license key.
    #[schema(example = "ABCDE-FGHJK-LMNPQ-RSTUV-WXYZ2")]
    license_key: String,
    /// The client installation.
    #[schema(min_length = 1, max_length = 128, pattern = "^[!-~]+$")]
    client_id: String,
    /// The user of the app.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    user: String,
    /// The client's id for this check-out, new for each running instance of the app: a retry
    /// with it returns the same lease (with a fresh `lease_secret` that replaces the first,
    /// unless the retry presents it). Another request id is another instance: it takes a seat
    /// of its own (or is denied), even for the same client and user.
    #[schema(min_length = 1, max_length = 128, pattern = "^[!-~]+$")]
    request_id: String,
    /// The secret of a live lease this instance holds (same client and user): the answer is
    /// that lease (borrowed, with `borrow_seconds`) and this request id is tied to it. A
    /// secret that matches no live lease of the client and user is ignored.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128)]
    lease_secret: Option<String>,
    /// `true`: this client keeps the `lease_secret` answered with the lease and presents it
    /// on heartbeat and check-in (current SDKs). The lease then has a secret, and its
    /// heartbeats and check-ins require it; a retry of its request id must declare it too (403
    /// `lease_secret_required` otherwise, nothing changes). Absent or `false` (SDKs older
    /// than lease secrets): the lease has none, and is protected only by its id being
    /// unguessable. Presenting `lease_secret` implies `true`.
    #[serde(default)]
    lease_secret_supported: bool,
    /// Borrow the seat: take it offline for this many seconds (1 to the license's
    /// `borrowing.max_seconds`, never past the license's expiry), with no heartbeat. The same
    /// client and user holding a lease already borrow that one.
    #[serde(default)]
    #[schema(minimum = 1)]
    borrow_seconds: Option<i64>,
    /// Wait in line for up to this many seconds (1 to 86 400; capped by the license's
    /// `queue.max_seconds`) when no seat is free: the answer is then 202 with the place in
    /// line, and asking again with the same request id keeps it. A license with no line
    /// denies at once.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 86_400)]
    queue_seconds: Option<i64>,
}

/// `POST /v1/client/leases`: 201 and a new lease (with its `lease_secret`) when a seat is
/// free; 200 and the same lease for a retry with the same request id (or any request id tied
/// to it), or for a check-out presenting the secret of a live lease of this client and user;
/// 410 once that lease has ended. Another request id without the secret is another instance:
/// it never shares a seat. 409 `no_seats` with the specification's message otherwise (the denial is recorded). With
/// `borrow_seconds`, the lease is borrowed: 409 `borrowing_not_allowed` when the license
/// allows none (or has passed its expiry), 422 past its longest borrowing, 409 `borrow_limit`
/// when its cap of borrowed leases is reached (not a denial: nothing is recorded). With
/// `queue_seconds` on a license with a wait line: 202 and the place in line instead of the
/// denial (recorded once, when the place is taken); 409 `no_seats` once the wait is over.
/// While anyone waits, a freed seat goes to the head of the line. 429 beyond the license's
/// seat rate.
#[utoipa::path(post, path = "/v1/client/leases", tag = TAG_CLIENT, request_body = CheckOutRequest,
    responses((status = 201, description = "A new lease", body = LeaseAnswer),
        (status = 200, description = "The lease of this request id, or whose secret it presented", body = LeaseAnswer),
        (status = 202, description = "No seat yet: waiting in line", body = QueuedAnswer,
            headers(("Retry-After" = i64, description = "Seconds before asking again"))),
        (status = 403, description = "The license is suspended, revoked, expired or not yet valid, or a retry of a lease with a secret did not declare `lease_secret_supported`", body = ErrorBody),
        (status = 404, description = "No license has this key", body = ErrorBody),
        (status = 409, description = "No seat is free (or the wait in line is over), the license is not floating, the request id was used for another user, or the borrowing is not allowed or at its cap", body = ErrorBody),
        (status = 410, description = "This request id's lease has ended", body = ErrorBody),
        BodyErrors, RateLimited))]
pub(crate) async fn check_out(
    State(state): State<AppState>,
    StrictJson(req): StrictJson<CheckOutRequest>,
) -> ApiResult<Response> {
    token_field("client_id", &req.client_id, 1, 128)?;
    text_field("user", &req.user, 200)?;
    token_field("request_id", &req.request_id, 1, 128)?;
    let presented = presented_hash(req.lease_secret.as_deref())?;
    let row = license_by_key(&state, &req.license_key, RateLimit::Skip).await?;
    seat_rate(&state, &row)?;
    let now = now();
    let seats = floating_seats(&row, now)?;
    let borrow = req
        .borrow_seconds
        .map(|seconds| borrowing(&row, seconds, now))
        .transpose()?;
    let queue = line(&row, req.queue_seconds)?;
    let lease_id = secrets::new_id("lse").map_err(internal)?;
    // Only a client that keeps the secret gets one (an older SDK's lease has none).
    let secret = (req.lease_secret_supported || presented.is_some())
        .then(secrets::new_lease_secret)
        .transpose()
        .map_err(internal)?;
    let secret_hash = secret
        .as_ref()
        .map(|secret| secrets::sha256_hex(secret.as_bytes()));
    let denial_id = secrets::denial_id(&row.id, &req.client_id, &req.request_id);
    let outcome = state
        .db()
        .check_out(&CheckOut {
            license_id: &row.id,
            client_id: &req.client_id,
            user: &req.user,
            request_id: &req.request_id,
            seats,
            now,
            lease_id: &lease_id,
            secret_hash: secret_hash.as_deref(),
            presented_hash: presented.as_deref(),
            denial_id: &denial_id,
            borrow,
            queue,
        })
        .await?;
    metrics::counter!("licensing_seat_check_outs_total", "outcome" => outcome_label(&outcome))
        .increment(1);
    let (status, lease) = match outcome {
        CheckOutOutcome::Granted(lease) => {
            tracing::info!(license = %row.id, lease = %lease.id, "seat checked out");
            (StatusCode::CREATED, lease)
        }
        CheckOutOutcome::Existing(lease) => (StatusCode::OK, lease),
        CheckOutOutcome::Ended(lease) => {
            return Err(lease_released(StatusCode::GONE, &lease)
                .context("this request id's lease has ended; check out with a new request id"));
        }
        CheckOutOutcome::SecretRequired => {
            return Err(ApiError::forbidden(
                "lease_secret_required",
                "this request id's lease was checked out with `lease_secret_supported`; a \
                 retry must declare it too (and present `lease_secret` if it holds it)",
            ));
        }
        CheckOutOutcome::RequestIdConflict => {
            return Err(ApiError::conflict(
                "request_id_conflict",
                "this client used this request id for another user",
            ));
        }
        CheckOutOutcome::Denied => {
            tracing::info!(license = %row.id, "seat check-out denied");
            return Err(ApiError::conflict("no_seats", NO_SEATS_MESSAGE));
        }
        CheckOutOutcome::WaitOver => {
            tracing::info!(license = %row.id, "seat check-out denied after waiting in line");
            return Err(ApiError::conflict("no_seats", NO_SEATS_MESSAGE));
        }
        CheckOutOutcome::Queued(waiting) => return Ok(queued_answer(&waiting)),
        CheckOutOutcome::BorrowLimit => {
            return Err(ApiError::conflict(
                "borrow_limit",
                format!(
                    "the license's {} borrowable seat(s) are all borrowed; check out without \
                     borrowing, or return a borrowed seat",
                    row.borrow_max_leases
                ),
            ));
        }
    };
    let secret = answered_secret(&lease, secret, req.lease_secret);
    Ok((
        status,
        Json(lease_answer(&state, &row, &lease, now, secret).await?),
    )
        .into_response())
}

/// The `outcome` label of `licensing_seat_check_outs_total` (a fixed set: no value a client
/// chooses becomes a label).
fn outcome_label(outcome: &CheckOutOutcome) -> &'static str {
    match outcome {
        CheckOutOutcome::Granted(_) => "granted",
        CheckOutOutcome::Existing(_) => "existing",
        CheckOutOutcome::Ended(_) => "ended",
        CheckOutOutcome::SecretRequired => "secret_required",
        CheckOutOutcome::RequestIdConflict => "request_id_conflict",
        CheckOutOutcome::Denied => "denied",
        CheckOutOutcome::Queued(_) => "queued",
        CheckOutOutcome::WaitOver => "wait_over",
        CheckOutOutcome::BorrowLimit => "borrow_limit",
    }
}

/// The wait line of a check-out asking to wait `queue_seconds` on the license `row`: `None`
/// when the license has none; a wait of 0 when the check-out does not ask to wait; the wait
/// capped by the license's longest.
fn line(row: &LicenseRow, queue_seconds: Option<i64>) -> ApiResult<Option<Line>> {
    let wait = match queue_seconds {
        None => 0,
        Some(seconds) if (1..=MAX_QUEUE_SECONDS).contains(&seconds) => seconds,
        Some(seconds) => {
            return Err(ApiError::invalid(
                "invalid_field",
                format!("`queue_seconds` must be between 1 and {MAX_QUEUE_SECONDS}; got {seconds}"),
            ));
        }
    };
    if row.queue_max_seconds == 0 {
        return Ok(None);
    }
    Ok(Some(Line {
        wait: wait.min(row.queue_max_seconds),
        place_id: secrets::new_id("que").map_err(internal)?,
    }))
}

/// 202 with the place in line and `Retry-After`.
fn queued_answer(waiting: &Waiting) -> Response {
    let answer = QueuedAnswer {
        queue_id: waiting.place.id.clone(),
        position: waiting.position,
        waiting: waiting.waiting,
        queued_at: waiting.place.queued_at,
        wait_until: waiting.place.wait_until,
        retry_after: QUEUE_RETRY_AFTER,
        message: NO_SEATS_MESSAGE.to_owned(),
    };
    (
        StatusCode::ACCEPTED,
        [(
            axum::http::header::RETRY_AFTER,
            QUEUE_RETRY_AFTER.to_string(),
        )],
        Json(answer),
    )
        .into_response()
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LeaveQueueRequest {
    /// The license key.
    #[schema(example = "ABCDE-FGHJK-LMNPQ-RSTUV-WXYZ2")]
    license_key: String,
}

/// The answer to leaving a wait line.
#[derive(Serialize, ToSchema)]
pub(crate) struct LeftQueue {
    queue_id: String,
    /// Whether the place was still held (`false`: it had lapsed or been served already).
    left: bool,
}

/// `POST /v1/client/queue/{id}/leave`: gives up a place in a license's wait line (the client
/// stopped waiting), so the places behind it move up at once. 200 either way.
#[utoipa::path(post, path = "/v1/client/queue/{id}/leave", tag = TAG_CLIENT,
    params(("id" = String, Path, description = "Place in line (`queue_id`)")),
    request_body = LeaveQueueRequest,
    responses((status = 200, description = "Left (or not in line any more)", body = LeftQueue),
        (status = 404, description = "No license has this key", body = ErrorBody),
        BodyErrors, RateLimited))]
pub(crate) async fn leave_queue(
    State(state): State<AppState>,
    Path(id): Path<String>,
    StrictJson(req): StrictJson<LeaveQueueRequest>,
) -> ApiResult<Json<LeftQueue>> {
    let row = license_by_key(&state, &req.license_key, RateLimit::Skip).await?;
    seat_rate(&state, &row)?;
    let left = state.db().leave_queue(&row.id, &id).await?;
    Ok(Json(LeftQueue { queue_id: id, left }))
}

/// A borrowing of `seconds` from the license `row` at `now`: allowed by the license, within its
/// longest borrowing, and ending no later than the license itself.
fn borrowing(row: &LicenseRow, seconds: i64, now: i64) -> ApiResult<Borrow> {
    if row.borrow_max_seconds == 0 || row.borrow_max_leases == 0 {
        return Err(ApiError::conflict(
            "borrowing_not_allowed",
            "this license does not allow borrowing seats",
        ));
    }
    if !(1..=row.borrow_max_seconds).contains(&seconds) {
        return Err(ApiError::invalid(
            "invalid_field",
            format!(
                "`borrow_seconds` must be between 1 and {} for this license; got {seconds}",
                row.borrow_max_seconds
            ),
        ));
    }
    let until = now.saturating_add(seconds);
    let until = match row.expires_at {
        // In its grace period a license still runs, but nothing is lent beyond its expiry.
        Some(expiry) if expiry <= now => {
            return Err(ApiError::conflict(
                "borrowing_not_allowed",
                "the license has passed its expiry; seats cannot be borrowed",
            ));
        }
        Some(expiry) => until.min(expiry),
        None => until,
    };
    Ok(Borrow {
        until,
        max_leases: row.borrow_max_leases,
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LeaseRequest {
    /// The license key.
    #[schema(example = "ABCDE-FGHJK-LMNPQ-RSTUV-WXYZ2")]
    license_key: String,
    /// The lease's epoch, as in its token.
    epoch: i64,
    /// The lease's secret, as answered at check-out: required for a lease that has one (403
    /// `lease_secret_required` without it, `lease_secret_invalid` for another; the lease goes
    /// on either way).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128)]
    lease_secret: Option<String>,
}

/// `POST /v1/client/leases/{id}/heartbeat`: extends a live lease presenting its epoch and
/// secret and answers its new expiry and a fresh token (a borrowed lease keeps its expiry;
/// the secret is not answered again). 403 `lease_secret_required` / `lease_secret_invalid`
/// without the lease's secret (nothing changes); 410 `lease_released` once it is over
/// (checked in, lapsed, force-released); 409 `lease_released` for an epoch that is not the
/// lease's.
#[utoipa::path(post, path = "/v1/client/leases/{id}/heartbeat", tag = TAG_CLIENT,
    params(("id" = String, Path, description = "Lease id")),
    request_body = LeaseRequest,
    responses((status = 200, description = "Extended", body = LeaseAnswer),
        (status = 403, description = "Not the lease's secret, or the license is suspended, revoked, expired or not yet valid", body = ErrorBody),
        (status = 404, description = "No license has this key, or no such lease", body = ErrorBody),
        (status = 409, description = "Not the lease's epoch, or the license is not floating", body = ErrorBody),
        (status = 410, description = "The lease is over", body = ErrorBody),
        BodyErrors, RateLimited))]
pub(crate) async fn heartbeat(
    State(state): State<AppState>,
    Path(id): Path<String>,
    StrictJson(req): StrictJson<LeaseRequest>,
) -> ApiResult<Json<LeaseAnswer>> {
    let presented = presented_hash(req.lease_secret.as_deref())?;
    let row = license_by_key(&state, &req.license_key, RateLimit::Skip).await?;
    seat_rate(&state, &row)?;
    let now = now();
    // A suspended, revoked or expired license keeps no seat alive.
    floating_seats(&row, now)?;
    let beat = state
        .db()
        .heartbeat(&row.id, &id, req.epoch, presented.as_deref(), now);
    match beat.await? {
        LeaseUpdate::Done(lease) => Ok(Json(lease_answer(&state, &row, &lease, now, None).await?)),
        LeaseUpdate::NotFound => Err(lease_not_found(&id)),
        LeaseUpdate::WrongSecret => Err(wrong_secret(presented.is_some())),
        LeaseUpdate::Ended(lease) => Err(lease_released(StatusCode::GONE, &lease)),
        LeaseUpdate::Fenced(lease) => Err(lease_fenced(&lease, req.epoch)),
    }
}

/// `POST /v1/client/leases/{id}/release`: check-in, the seat is free at once (for a borrowed
/// lease: returned early). Checking in a lease that is already over answers 200 too (the seat
/// is free either way). The lease's secret is required, as for a heartbeat (403 otherwise,
/// and the lease goes on).
#[utoipa::path(post, path = "/v1/client/leases/{id}/release", tag = TAG_CLIENT,
    params(("id" = String, Path, description = "Lease id")),
    request_body = LeaseRequest,
    responses((status = 200, description = "Checked in (or over already)", body = LeaseView),
        (status = 403, description = "Not the lease's secret", body = ErrorBody),
        (status = 404, description = "No license has this key, or no such lease", body = ErrorBody),
        (status = 409, description = "Not the lease's epoch", body = ErrorBody),
        BodyErrors, RateLimited))]
pub(crate) async fn check_in(
    State(state): State<AppState>,
    Path(id): Path<String>,
    StrictJson(req): StrictJson<LeaseRequest>,
) -> ApiResult<Json<LeaseView>> {
    let presented = presented_hash(req.lease_secret.as_deref())?;
    let row = license_by_key(&state, &req.license_key, RateLimit::Skip).await?;
    seat_rate(&state, &row)?;
    let now = now();
    let release = state
        .db()
        .check_in(&row.id, &id, req.epoch, presented.as_deref(), now);
    match release.await? {
        LeaseUpdate::Done(lease) | LeaseUpdate::Ended(lease) => Ok(Json(lease_view(&lease))),
        LeaseUpdate::NotFound => Err(lease_not_found(&id)),
        LeaseUpdate::WrongSecret => Err(wrong_secret(presented.is_some())),
        LeaseUpdate::Fenced(lease) => Err(lease_fenced(&lease, req.epoch)),
    }
}

// ---- admin API -----------------------------------------------------------------------------

/// `GET /v1/licenses/{id}/leases`: the live leases, the timeout, the borrowing terms and the
/// wait line.
#[utoipa::path(get, path = "/v1/licenses/{id}/leases", tag = TAG_ADMIN, security(("api_token" = [])),
    params(("id" = String, Path, description = "License id")),
    responses((status = 200, description = "The live leases", body = LeaseList),
        (status = 404, description = "No such license", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn list_leases(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<LeaseList>> {
    caller.require(Action::Read)?;
    let row = get_license_row(&state, &caller, &id).await?;
    let now = now();
    let leases = state.db().live_leases(&row.id, now).await?;
    let waiting = state.db().waiting(&row.id, now).await?;
    Ok(Json(LeaseList {
        lease_timeout: row.lease_timeout,
        borrowing: BorrowingView {
            max_seconds: row.borrow_max_seconds,
            max_leases: row.borrow_max_leases,
        },
        queue: QueueView {
            max_seconds: row.queue_max_seconds,
            waiting: waiting.iter().zip(1..).map(place_view).collect(),
        },
        license_id: row.id,
        leases: leases.iter().map(lease_view).collect(),
    }))
}

/// `POST /v1/licenses/{id}/leases/{lease_id}/release`: force-release (IT staff may). The seat
/// is free at once; the holder's next heartbeat is refused. A borrowed lease cannot be
/// released (409 `lease_borrowed`): its holder may be offline with a token valid until its
/// expiry, so freeing its seat would let more users in than the license has seats.
#[utoipa::path(post, path = "/v1/licenses/{id}/leases/{lease_id}/release", tag = TAG_ADMIN,
    security(("api_token" = [])),
    params(("id" = String, Path, description = "License id"),
        ("lease_id" = String, Path, description = "Lease id")),
    responses((status = 200, description = "Released", body = LeaseView),
        (status = 404, description = "No such license or lease", body = ErrorBody),
        (status = 409, description = "The lease is borrowed", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn force_release(
    caller: Caller,
    State(state): State<AppState>,
    Path((id, lease_id)): Path<(String, String)>,
) -> ApiResult<Json<LeaseView>> {
    caller.require(Action::Operate)?;
    let row = get_license_row(&state, &caller, &id).await?;
    let lease = state
        .db()
        .force_release(&row.id, &lease_id, now())
        .await?
        .ok_or_else(|| lease_not_found(&lease_id))?;
    let now = now();
    if lease.is_borrowed() && lease.is_live_at(now) {
        return Err(ApiError::conflict(
            "lease_borrowed",
            format!(
                "the lease is borrowed until {} (Unix seconds) and may be offline; only its \
                 holder can return it earlier",
                lease.expires_at
            ),
        ));
    }
    tracing::info!(license = %row.id, lease = %lease.id, "seat force-released");
    Ok(Json(lease_view(&lease)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LeaseTimeout {
    /// 300 to 3600.
    #[schema(minimum = 300, maximum = 3600)]
    seconds: i64,
}

/// `PUT /v1/licenses/{id}/lease-timeout`: 300 to 3600 seconds, else 422 naming the bounds.
/// Applies from each lease's next heartbeat (and to new leases).
#[utoipa::path(put, path = "/v1/licenses/{id}/lease-timeout", tag = TAG_ADMIN,
    security(("api_token" = [])),
    params(("id" = String, Path, description = "License id")),
    request_body = LeaseTimeout,
    responses((status = 200, description = "Set", body = LeaseTimeoutView),
        (status = 404, description = "No such license", body = ErrorBody),
        AdminErrors, BodyErrors))]
pub(crate) async fn set_lease_timeout(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    StrictJson(req): StrictJson<LeaseTimeout>,
) -> ApiResult<Json<LeaseTimeoutView>> {
    caller.require(Action::Operate)?;
    let row = get_license_row(&state, &caller, &id).await?;
    if issue::parsed_template(&row)?.license.claims().lic.model != LicenseModel::Floating {
        return Err(ApiError::invalid(
            "license_not_floating",
            "`seconds`: a lease timeout applies only to a floating license",
        ));
    }
    if !LEASE_TIMEOUT_BOUNDS.contains(&req.seconds) {
        return Err(ApiError::invalid(
            "invalid_field",
            format!(
                "`seconds` must be between {} and {} (5 to 60 minutes); got {}",
                LEASE_TIMEOUT_BOUNDS.start(),
                LEASE_TIMEOUT_BOUNDS.end(),
                req.seconds
            ),
        ));
    }
    state
        .db()
        .set_lease_timeout(&row.id, req.seconds, now())
        .await?;
    Ok(Json(LeaseTimeoutView {
        license_id: row.id,
        lease_timeout: req.seconds,
    }))
}

/// `PUT /v1/licenses/{id}/borrowing`: how a floating license may be borrowed (license
/// managers: it is a term of the license, not an operational setting). `max_seconds` 0 to
/// 2 592 000 (30 days; 0: no borrowing), `max_leases` 0 to the license's seats, else 422.
/// Applies to later check-outs; seats borrowed already keep their expiry.
#[utoipa::path(put, path = "/v1/licenses/{id}/borrowing", tag = TAG_ADMIN,
    security(("api_token" = [])),
    params(("id" = String, Path, description = "License id")),
    request_body = BorrowingView,
    responses((status = 200, description = "Set", body = BorrowingView),
        (status = 404, description = "No such license", body = ErrorBody),
        (status = 409, description = "The license is not floating", body = ErrorBody),
        AdminErrors, BodyErrors))]
pub(crate) async fn set_borrowing(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    StrictJson(req): StrictJson<BorrowingView>,
) -> ApiResult<Json<BorrowingView>> {
    caller.require(Action::ManageLicenses)?;
    let row = get_license_row(&state, &caller, &id).await?;
    let seats = template_seats(&row)?;
    if !(0..=MAX_BORROW_SECONDS).contains(&req.max_seconds) {
        return Err(ApiError::invalid(
            "invalid_field",
            format!(
                "`max_seconds` must be between 0 and {MAX_BORROW_SECONDS} (30 days); got {}",
                req.max_seconds
            ),
        ));
    }
    if !(0..=seats).contains(&req.max_leases) {
        return Err(ApiError::invalid(
            "invalid_field",
            format!(
                "`max_leases` must be between 0 and the license's {seats} seats; got {}",
                req.max_leases
            ),
        ));
    }
    state
        .db()
        .set_borrowing(&row.id, req.max_seconds, req.max_leases, now())
        .await?;
    Ok(Json(req))
}

/// `PUT /v1/licenses/{id}/queue`: how long a floating license's check-outs may wait in line
/// (IT staff may: it is an operational setting, like the lease timeout). `max_seconds` 0 to
/// 86 400 (0: no line), else 422. Places taken already keep their end; with 0, the places
/// left are ignored and lapse.
#[utoipa::path(put, path = "/v1/licenses/{id}/queue", tag = TAG_ADMIN,
    security(("api_token" = [])),
    params(("id" = String, Path, description = "License id")),
    request_body = QueueSettings,
    responses((status = 200, description = "Set", body = QueueSettings),
        (status = 404, description = "No such license", body = ErrorBody),
        (status = 409, description = "The license is not floating", body = ErrorBody),
        AdminErrors, BodyErrors))]
pub(crate) async fn set_queue(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    StrictJson(req): StrictJson<QueueSettings>,
) -> ApiResult<Json<QueueSettings>> {
    caller.require(Action::Operate)?;
    let row = get_license_row(&state, &caller, &id).await?;
    template_seats(&row)?;
    if !(0..=MAX_QUEUE_SECONDS).contains(&req.max_seconds) {
        return Err(ApiError::invalid(
            "invalid_field",
            format!(
                "`max_seconds` must be between 0 and {MAX_QUEUE_SECONDS} (one day); got {}",
                req.max_seconds
            ),
        ));
    }
    state
        .db()
        .set_queue(&row.id, req.max_seconds, now())
        .await?;
    Ok(Json(req))
}

/// `POST /v1/licenses/{id}/queue/{queue_id}/remove`: takes a place out of the license's wait
/// line (IT staff may, as they may force-release a seat): the places behind it move up at once,
/// and its client's next ask starts again at the end of the line. 200 with `left` false when
/// the place was not in line any more.
#[utoipa::path(post, path = "/v1/licenses/{id}/queue/{queue_id}/remove", tag = TAG_ADMIN,
    security(("api_token" = [])),
    params(("id" = String, Path, description = "License id"),
        ("queue_id" = String, Path, description = "Place in line")),
    responses((status = 200, description = "Removed (or not in line any more)", body = LeftQueue),
        (status = 404, description = "No such license", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn remove_from_queue(
    caller: Caller,
    State(state): State<AppState>,
    Path((id, queue_id)): Path<(String, String)>,
) -> ApiResult<Json<LeftQueue>> {
    caller.require(Action::Operate)?;
    let row = get_license_row(&state, &caller, &id).await?;
    let left = state.db().leave_queue(&row.id, &queue_id).await?;
    if left {
        tracing::info!(license = %row.id, place = %queue_id, "place in line removed");
    }
    Ok(Json(LeftQueue { queue_id, left }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct Period {
    /// Unix seconds, inclusive; default: the start of the retention window.
    from: Option<i64>,
    /// Unix seconds, exclusive; default: now.
    to: Option<i64>,
}

impl Period {
    fn resolve(&self, now: i64) -> ApiResult<(i64, i64)> {
        let to = self.to.unwrap_or(now.saturating_add(1));
        let from = self
            .from
            .unwrap_or(now.saturating_sub(DENIAL_RETENTION_SECS));
        if from > to {
            return Err(ApiError::invalid(
                "invalid_field",
                "`from` must not be later than `to`",
            ));
        }
        Ok((from, to))
    }
}

fn per_day(counts: &[DayCount]) -> ApiResult<Vec<DayCountView>> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    counts
        .iter()
        .map(|c| {
            let date = time::OffsetDateTime::from_unix_timestamp(c.utc_day.saturating_mul(86_400))
                .map_err(ApiError::internal)?
                .format(format)
                .map_err(ApiError::internal)?;
            Ok(DayCountView {
                date,
                count: c.denials,
            })
        })
        .collect()
}

async fn denial_report(
    state: &AppState,
    scope: DenialScope<'_>,
    period: &Period,
) -> ApiResult<Json<DenialReport>> {
    let (from, to) = period.resolve(now())?;
    let denials = state
        .db()
        .list_denials(scope, from, to, MAX_DENIALS_LISTED)
        .await?;
    let counts = state.db().denials_per_day(scope, from, to).await?;
    let total: i64 = counts.iter().map(|c| c.denials).sum();
    Ok(Json(DenialReport {
        from,
        to,
        total,
        per_day: per_day(&counts)?,
        denials: denials.iter().map(denial_view).collect(),
        truncated: total > i64::try_from(denials.len()).unwrap_or(i64::MAX),
    }))
}

/// `GET /v1/licenses/{id}/denials?from&to`: this license's denials and counts per UTC day.
#[utoipa::path(get, path = "/v1/licenses/{id}/denials", tag = TAG_ADMIN, security(("api_token" = [])),
    params(("id" = String, Path, description = "License id"), Period),
    responses((status = 200, description = "The license's denials", body = DenialReport),
        (status = 404, description = "No such license", body = ErrorBody),
        (status = 422, description = "`from` is later than `to`", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn list_denials(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(period): Query<Period>,
) -> ApiResult<Json<DenialReport>> {
    caller.require(Action::Read)?;
    let row = get_license_row(&state, &caller, &id).await?;
    denial_report(&state, DenialScope::License(&row.id), &period).await
}

/// `GET /v1/denials/report?from&to`: every denial of the caller's organization in the period
/// and counts per UTC day.
#[utoipa::path(get, path = "/v1/denials/report", tag = TAG_ADMIN, security(("api_token" = [])),
    params(Period),
    responses((status = 200, description = "The organization's denials", body = DenialReport),
        (status = 422, description = "`from` is later than `to`", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn denials_report(
    caller: Caller,
    State(state): State<AppState>,
    Query(period): Query<Period>,
) -> ApiResult<Json<DenialReport>> {
    caller.require(Action::Read)?;
    denial_report(
        &state,
        DenialScope::Organization(&caller.organization_id),
        &period,
    )
    .await
}
