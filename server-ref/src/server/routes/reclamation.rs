//! Inactivity reclamation in the admin API: a license's threshold (`GET`/`PUT
//! /v1/licenses/{id}/reclamation`), the preview of what would be reclaimed now and why
//! (organization-wide and per license; changes nothing), and a run on demand for one license.
//! The rules and the run are `server::reclamation`'s; the background job runs the same.

use super::super::db::reclamation::{IdleCandidate, Scope};
use super::super::reclamation::{self, Idle, ThresholdFrom, UseSource};
use super::*;

/// Seats one preview lists at most; beyond it the answer says `truncated`.
const MAX_PREVIEW: usize = 10_000;

/// A license's reclamation threshold.
#[derive(Serialize, ToSchema)]
pub(crate) struct ReclamationSettings {
    license_id: String,
    /// The license's own threshold, seconds (`null`: its policy's applies).
    reclaim_after: Option<i64>,
    /// The policy's threshold, seconds (`null`: none).
    policy_reclaim_after: Option<i64>,
    /// The threshold in effect, seconds (`null`: the license's seats are never reclaimed).
    effective_reclaim_after: Option<i64>,
    /// Where the threshold in effect comes from (`null` when there is none).
    effective_from: Option<ThresholdFrom>,
}

/// The body of `PUT /v1/licenses/{id}/reclamation`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetReclamation {
    /// Seconds without use after which an assigned seat is reclaimed: 86 400 (1 day) to
    /// 94 608 000 (3 years), or `null` to use the policy's. Required.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, required = true, minimum = 86_400, maximum = 94_608_000)]
    reclaim_after: Option<Option<i64>>,
}

/// A member that is present, `null` included (`Some(None)`); absent stays `None`.
fn present<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<Option<i64>>, D::Error> {
    Option::<i64>::deserialize(de).map(Some)
}

/// A seat that is idle (previewed) or was reclaimed (run), and why.
#[derive(Serialize, ToSchema)]
pub(crate) struct IdleSeat {
    assignment_id: String,
    license_id: String,
    /// `user` or `device`.
    assignee_kind: String,
    /// The directory user's or the machine's id.
    assignee_id: String,
    /// The user's name, or the machine's fingerprint id.
    assignee_name: Option<String>,
    /// The last use (Unix seconds).
    last_used_at: i64,
    /// What it was: `seat_use` (a validation, activation or check-out recorded on the seat),
    /// `lease` (a check-out or heartbeat of the user's leases), `machine` (the device's last
    /// validation) or `assigned` (never used since it was assigned).
    last_use: UseSource,
    /// The threshold, seconds.
    reclaim_after: i64,
    /// `license` or `policy`.
    reclaim_after_from: ThresholdFrom,
    /// Seconds since the last use.
    idle_for: i64,
}

impl IdleSeat {
    fn of((seat, idle): (IdleCandidate, Idle)) -> IdleSeat {
        IdleSeat {
            assignment_id: seat.id,
            license_id: seat.license_id,
            assignee_kind: seat.assignee_kind,
            assignee_id: seat.assignee_id,
            assignee_name: seat.assignee_name,
            last_used_at: idle.last_used_at,
            last_use: idle.last_use,
            reclaim_after: idle.reclaim_after,
            reclaim_after_from: idle.reclaim_after_from,
            idle_for: idle.idle_for,
        }
    }
}

/// What would be reclaimed now.
#[derive(Serialize, ToSchema)]
pub(crate) struct ReclamationPreview {
    /// When it was computed (Unix seconds).
    generated_at: i64,
    /// The license previewed (`null`: the whole organization).
    license_id: Option<String>,
    /// Whether there are more idle seats than one preview lists (10 000).
    truncated: bool,
    /// The idle seats, by assignment id.
    seats: Vec<IdleSeat>,
}

/// What a run reclaimed.
#[derive(Serialize, ToSchema)]
pub(crate) struct ReclamationRun {
    /// When it ran (Unix seconds).
    ran_at: i64,
    license_id: String,
    /// The seats reclaimed, by assignment id.
    reclaimed: Vec<IdleSeat>,
}

async fn settings_of(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> ApiResult<ReclamationSettings> {
    let (own, policy) = state
        .db()
        .reclaim_thresholds(&caller.organization_id, id)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(ErrorCode::LicenseNotFound, format!("no license `{id}`"))
        })?;
    let effective = reclamation::threshold(own, policy);
    Ok(ReclamationSettings {
        license_id: id.to_owned(),
        reclaim_after: own,
        policy_reclaim_after: policy,
        effective_reclaim_after: effective.map(|(seconds, _)| seconds),
        effective_from: effective.map(|(_, from)| from),
    })
}

/// `GET /v1/licenses/{id}/reclamation`: the license's threshold, its policy's and the one in
/// effect.
#[utoipa::path(get, path = "/v1/licenses/{id}/reclamation", tag = TAG_ADMIN,
    security(("api_token" = [])),
    params(("id" = String, Path, description = "License id")),
    responses((status = 200, description = "The thresholds", body = ReclamationSettings),
        (status = 404, description = "No such license", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn get_reclamation(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<ReclamationSettings>> {
    caller.require(Action::Read)?;
    Ok(Json(settings_of(&state, &caller, &id).await?))
}

/// `PUT /v1/licenses/{id}/reclamation`: sets the license's own threshold (`null`: its
/// policy's applies); 1 day to 3 years, else 422. Applies from the next run.
#[utoipa::path(put, path = "/v1/licenses/{id}/reclamation", tag = TAG_ADMIN,
    security(("api_token" = [])),
    params(("id" = String, Path, description = "License id")),
    request_body = SetReclamation,
    responses((status = 200, description = "Set", body = ReclamationSettings),
        (status = 404, description = "No such license", body = ErrorBody),
        AdminErrors, BodyErrors))]
pub(crate) async fn set_reclamation(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    StrictJson(req): StrictJson<SetReclamation>,
) -> ApiResult<Json<ReclamationSettings>> {
    caller.require(Action::ManageLicenses)?;
    let row = get_license_row(&state, &caller, &id).await?;
    let Some(reclaim_after) = req.reclaim_after else {
        return Err(ApiError::invalid(
            ErrorCode::InvalidField,
            "`reclaim_after` is required: seconds, or null to use the policy's",
        ));
    };
    reclamation::check_reclaim_after("reclaim_after", reclaim_after)?;
    if !state
        .db()
        .set_license_reclaim_after(&caller.organization_id, &row.id, reclaim_after, now())
        .await?
    {
        return Err(ApiError::not_found(
            ErrorCode::LicenseNotFound,
            format!("no license `{id}`"),
        ));
    }
    Ok(Json(settings_of(&state, &caller, &id).await?))
}

/// `GET /v1/reclamation/preview`: the organization's seats that would be reclaimed now, and
/// why. Changes nothing.
#[utoipa::path(get, path = "/v1/reclamation/preview", tag = TAG_ADMIN,
    security(("api_token" = [])),
    responses((status = 200, description = "The idle seats", body = ReclamationPreview),
        AdminErrors, ReadErrors))]
pub(crate) async fn preview_reclamation(
    caller: Caller,
    State(state): State<AppState>,
) -> ApiResult<Json<ReclamationPreview>> {
    caller.require(Action::Read)?;
    let now = now();
    let scope = Scope::Organization(&caller.organization_id);
    let (seats, truncated) = reclamation::preview(state.db(), scope, now, MAX_PREVIEW).await?;
    Ok(Json(ReclamationPreview {
        generated_at: now,
        license_id: None,
        truncated,
        seats: seats.into_iter().map(IdleSeat::of).collect(),
    }))
}

/// `GET /v1/licenses/{id}/reclamation/preview`: the license's seats that would be reclaimed
/// now, and why. Changes nothing.
#[utoipa::path(get, path = "/v1/licenses/{id}/reclamation/preview", tag = TAG_ADMIN,
    security(("api_token" = [])),
    params(("id" = String, Path, description = "License id")),
    responses((status = 200, description = "The idle seats", body = ReclamationPreview),
        (status = 404, description = "No such license", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn preview_license_reclamation(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<ReclamationPreview>> {
    caller.require(Action::Read)?;
    let row = get_license_row(&state, &caller, &id).await?;
    let now = now();
    let scope = Scope::License(&row.id);
    let (seats, truncated) = reclamation::preview(state.db(), scope, now, MAX_PREVIEW).await?;
    Ok(Json(ReclamationPreview {
        generated_at: now,
        license_id: Some(row.id),
        truncated,
        seats: seats.into_iter().map(IdleSeat::of).collect(),
    }))
}

/// `POST /v1/licenses/{id}/reclamation/run`: reclaims the license's idle seats now, as the
/// background job would; each is recorded in the audit trail (`seat.reclaimed`).
#[utoipa::path(post, path = "/v1/licenses/{id}/reclamation/run", tag = TAG_ADMIN,
    security(("api_token" = [])),
    params(("id" = String, Path, description = "License id")),
    responses((status = 200, description = "The seats reclaimed", body = ReclamationRun),
        (status = 404, description = "No such license", body = ErrorBody),
        AdminErrors))]
pub(crate) async fn run_license_reclamation(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<ReclamationRun>> {
    caller.require(Action::ManageLicenses)?;
    let row = get_license_row(&state, &caller, &id).await?;
    let now = now();
    let reclaimed = reclamation::reclaim(&state, Scope::License(&row.id), now).await?;
    Ok(Json(ReclamationRun {
        ran_at: now,
        license_id: row.id,
        reclaimed: reclaimed.into_iter().map(IdleSeat::of).collect(),
    }))
}
