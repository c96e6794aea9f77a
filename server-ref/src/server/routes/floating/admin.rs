//! The admin half of floating licenses: leases, force-release, the lease timeout, borrowing,
//! the wait line and denials (admin API, roles).

use super::*;

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
        seats: template_seats(&row).ok(),
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
            ErrorCode::LeaseBorrowed,
            format!(
                "the lease is borrowed until {} (Unix seconds) and may be offline; only its \
                 holder can return it earlier",
                lease.expires_at
            ),
        ));
    }
    tracing::info!(license = %row.id, lease = %lease.id, "seat force-released");
    state.audit().record_event(
        crate::server::audit::AuditEvent::new(
            &row.organization_id,
            caller.token_id.as_str(),
            crate::server::audit::action::LEASE_FORCE_RELEASED,
            &lease.id,
        )
        .license(&row.id)
        .subject(&lease.user_name),
    );
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
            ErrorCode::LicenseNotFloating,
            "`seconds`: a lease timeout applies only to a floating license",
        ));
    }
    if !LEASE_TIMEOUT_BOUNDS.contains(&req.seconds) {
        return Err(ApiError::invalid(
            ErrorCode::InvalidField,
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
            ErrorCode::InvalidField,
            format!(
                "`max_seconds` must be between 0 and {MAX_BORROW_SECONDS} (30 days); got {}",
                req.max_seconds
            ),
        ));
    }
    if !(0..=seats).contains(&req.max_leases) {
        return Err(ApiError::invalid(
            ErrorCode::InvalidField,
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
            ErrorCode::InvalidField,
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
                ErrorCode::InvalidField,
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
