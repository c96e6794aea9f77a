//! The client half of floating licenses: seat check-out, heartbeat and check-in, and leaving
//! the wait line (`/v1/client/...`, license key).

use licensing_core::protocol::{CheckOutRequest, LeaseRequest, LeaveQueueRequest};

use super::*;

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
        epoch: u64::try_from(lease.epoch).map_err(ApiError::internal)?,
        expires_at: lease.expires_at,
        heartbeat_interval: u64::try_from(timeout / HEARTBEAT_FRACTION)
            .map_err(ApiError::internal)?,
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
            ErrorCode::LeaseSecretInvalid,
            "`lease_secret` is not this lease's secret; only the instance that checked the \
             lease out can heartbeat or check it in",
        )
    } else {
        ApiError::forbidden(
            ErrorCode::LeaseSecretRequired,
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
        ErrorCode::LeaseReleased,
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
        ErrorCode::LeaseReleased,
        format!(
            "epoch {presented} is stale: the lease's current epoch is {}, so this holder was \
             superseded; check out a seat again",
            lease.epoch
        ),
    )
}

// ---- client API ----------------------------------------------------------------------------

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
    DisplayName::check("user", &req.user)?;
    token_field("request_id", &req.request_id, 1, 128)?;
    let presented = presented_hash(req.lease_secret.as_deref())?;
    let row = license_by_key(&state, &req.license_key, RateLimit::Skip).await?;
    seat_rate(&state, &row)?;
    let now = now();
    let seats = floating_seats(&row, now)?;
    // The directory user the check-out names (one cached, indexed lookup; see
    // `db::directory_links`): a deprovisioned one takes no seat, and the lease or denial
    // records it.
    let link = state
        .db()
        .directory_link(&row.organization_id, &req.user)
        .await?;
    seat_policy::refuse_deactivated(link.as_ref())?;
    // A named license admits only its assignees (a floating one: nothing is read).
    seat_policy::admit(&state, &row, Some(&req.user), None, now).await?;
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
    let user_id = link.map(|link| link.id);
    let outcome = state
        .db()
        .check_out_linked(
            &CheckOut {
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
            },
            user_id.as_deref(),
        )
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
                ErrorCode::LeaseSecretRequired,
                "this request id's lease was checked out with `lease_secret_supported`; a \
                 retry must declare it too (and present `lease_secret` if it holds it)",
            ));
        }
        CheckOutOutcome::RequestIdConflict => {
            return Err(ApiError::conflict(
                ErrorCode::RequestIdConflict,
                "this client used this request id for another user",
            ));
        }
        CheckOutOutcome::Denied => {
            tracing::info!(license = %row.id, "seat check-out denied");
            return Err(ApiError::conflict(ErrorCode::NoSeats, NO_SEATS_MESSAGE));
        }
        CheckOutOutcome::WaitOver => {
            tracing::info!(license = %row.id, "seat check-out denied after waiting in line");
            return Err(ApiError::conflict(ErrorCode::NoSeats, NO_SEATS_MESSAGE));
        }
        CheckOutOutcome::Queued(waiting) => return Ok(queued_answer(&waiting)),
        CheckOutOutcome::BorrowLimit => {
            return Err(ApiError::conflict(
                ErrorCode::BorrowLimit,
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
                ErrorCode::InvalidField,
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
    // Counts from the database, never negative.
    let count = |n: i64| u64::try_from(n).unwrap_or_default();
    let answer = QueuedAnswer {
        queue_id: waiting.place.id.clone(),
        position: count(waiting.position),
        waiting: count(waiting.waiting),
        queued_at: waiting.place.queued_at,
        wait_until: waiting.place.wait_until,
        retry_after: count(QUEUE_RETRY_AFTER),
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
            ErrorCode::BorrowingNotAllowed,
            "this license does not allow borrowing seats",
        ));
    }
    if !(1..=row.borrow_max_seconds).contains(&seconds) {
        return Err(ApiError::invalid(
            ErrorCode::InvalidField,
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
                ErrorCode::BorrowingNotAllowed,
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
