//! Named seats in the admin API (issue 22): a license's seats assigned to directory users,
//! departments (a quota) and devices (its activated machines); reassigned and unassigned; the
//! seat settings of a license; and the approval of transfers of perpetual licenses whose
//! policy asks for one. Who is admitted by an assignment is `seat_policy`'s.
//!
//! Roles: reading is for every role; assigning, reassigning and unassigning for
//! `license_manager`, `admin` and `it_staff` (the customer's IT does this:
//! [`Action::Operate`]); changing a license's seat settings for `license_manager` and `admin`;
//! approving or rejecting a transfer for `admin` only, never with the token that asked for it.

use axum::extract::Query;
use axum::response::Response;

use super::super::audit::InTxAudit;
use super::super::db::{self, Assignment, NewAssignment, SeatSettings, Transfer};
use super::*;

/// Largest department quota.
const MAX_DEPARTMENT_SEATS: u32 = 1_000_000;

/// Transfers listed at most.
const MAX_TRANSFERS_LISTED: i64 = 500;

/// What an assignment gives a seat to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum AssigneeKind {
    /// A user of the organization's directory.
    User,
    /// A department (group) of the directory: its members share a quota of seats.
    Department,
    /// An activated machine of the license.
    Device,
}

impl AssigneeKind {
    fn as_str(self) -> &'static str {
        match self {
            AssigneeKind::User => "user",
            AssigneeKind::Department => "department",
            AssigneeKind::Device => "device",
        }
    }
}

/// An assignee and the seats it takes.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AssigneeRequest {
    /// `user`, `department` or `device`.
    kind: AssigneeKind,
    /// The directory user's or department's id, or the machine's id (`GET
    /// /v1/licenses/{id}/machines`).
    #[schema(min_length = 1, max_length = 128)]
    id: String,
    /// A department's quota of seats (1 to 1000000, default 1); 1 or absent otherwise.
    #[schema(minimum = 1, maximum = 1_000_000)]
    seats: Option<u32>,
}

impl AssigneeRequest {
    /// The seats the assignment takes (422 naming the field when they cannot be).
    fn seats(&self) -> ApiResult<i64> {
        token_field("id", &self.id, 1, 128)?;
        match (self.kind, self.seats) {
            (_, None) => Ok(1),
            (AssigneeKind::Department, Some(n)) if (1..=MAX_DEPARTMENT_SEATS).contains(&n) => {
                Ok(i64::from(n))
            }
            (AssigneeKind::Department, Some(_)) => Err(ApiError::invalid(
                ErrorCode::InvalidField,
                "`seats` must be 1 to 1000000",
            )),
            (_, Some(1)) => Ok(1),
            (_, Some(_)) => Err(ApiError::invalid(
                ErrorCode::InvalidField,
                "`seats` is a department's quota: a user or a device takes one seat",
            )),
        }
    }
}

/// A seat assignment as the API shows it.
#[derive(Serialize, ToSchema)]
pub(crate) struct AssignmentView {
    id: String,
    license_id: String,
    /// `user`, `department` or `device`.
    assignee_kind: String,
    assignee_id: String,
    /// The user name, department name or machine fingerprint id (`null`: the assignee no
    /// longer exists).
    assignee_name: Option<String>,
    /// Seats it takes: a department's quota, 1 otherwise.
    seats: i64,
    /// `active`, or `reclaimed` (its seat is free; the user gets one back when they return
    /// and one is free).
    state: String,
    reclaimed_at: Option<i64>,
    reclaim_reason: Option<String>,
    /// The last validation, check-out or activation it admitted (`null`: never used).
    last_used_at: Option<i64>,
    /// The API token that assigned it.
    assigned_by: String,
    created_at: i64,
    updated_at: i64,
}

fn assignment_view(a: Assignment) -> AssignmentView {
    AssignmentView {
        id: a.id,
        license_id: a.license_id,
        assignee_kind: a.assignee_kind,
        assignee_id: a.assignee_id,
        assignee_name: a.assignee_name,
        seats: a.seats,
        state: a.state,
        reclaimed_at: a.reclaimed_at,
        reclaim_reason: a.reclaim_reason,
        last_used_at: a.last_used_at,
        assigned_by: a.assigned_by,
        created_at: a.created_at,
        updated_at: a.updated_at,
    }
}

/// A license's assignments and its seat count.
#[derive(Serialize, ToSchema)]
pub(crate) struct AssignmentList {
    /// `floating` or `named`.
    seat_mode: String,
    /// The seats assignments may take: the license's `seats` (floating) else its
    /// `max_machines`; `null`: no limit.
    seat_limit: Option<i64>,
    /// Seats the active assignments take.
    seats_assigned: i64,
    /// More seats assigned than the limit (allowed by `allow_over_allocation`; shown as an
    /// `over_allocation` compliance alert).
    over_allocated: bool,
    /// Oldest first.
    assignments: Vec<AssignmentView>,
}

/// A user's assignments, directly or through their departments.
#[derive(Serialize, ToSchema)]
pub(crate) struct UserAssignmentList {
    /// Oldest first.
    assignments: Vec<AssignmentView>,
}

/// A requested transfer of an assignment.
#[derive(Serialize, ToSchema)]
pub(crate) struct TransferView {
    id: String,
    license_id: String,
    assignment_id: String,
    /// The assignee it moves from (at the request).
    from_kind: String,
    from_id: String,
    /// The assignee it moves to.
    to_kind: String,
    to_id: String,
    /// Seats the assignment takes after the move.
    to_seats: i64,
    /// `pending`, `approved`, `rejected` or `cancelled` (its assignment was unassigned).
    state: String,
    /// The API token that asked.
    requested_by: String,
    requested_at: i64,
    /// The admin token that approved or rejected it.
    decided_by: Option<String>,
    decided_at: Option<i64>,
    reason: Option<String>,
}

fn transfer_view(t: Transfer) -> TransferView {
    TransferView {
        id: t.id,
        license_id: t.license_id,
        assignment_id: t.assignment_id,
        from_kind: t.from_kind,
        from_id: t.from_id,
        to_kind: t.to_kind,
        to_id: t.to_id,
        to_seats: t.to_seats,
        state: t.state,
        requested_by: t.requested_by,
        requested_at: t.requested_at,
        decided_by: t.decided_by,
        decided_at: t.decided_at,
        reason: t.reason,
    }
}

/// Transfers, newest first.
#[derive(Serialize, ToSchema)]
pub(crate) struct TransferList {
    /// At most 500.
    transfers: Vec<TransferView>,
}

fn assignment_not_found(id: &str) -> ApiError {
    ApiError::not_found(
        ErrorCode::AssignmentNotFound,
        format!("no assignment `{id}` on this license"),
    )
}

/// 404 unless the assignee exists where the license's assignments may name it (a user or
/// department of its organization, a machine of the license); 409 for a deactivated user.
async fn check_assignee(
    tx: &mut db::Tx,
    row: &LicenseRow,
    kind: AssigneeKind,
    id: &str,
) -> ApiResult<()> {
    match db::assignee_in(tx, &row.organization_id, &row.id, kind.as_str(), id).await? {
        None => Err(ApiError::not_found(
            ErrorCode::AssigneeNotFound,
            match kind {
                AssigneeKind::User => format!("no user `{id}` in the directory"),
                AssigneeKind::Department => format!("no department `{id}` in the directory"),
                AssigneeKind::Device => format!("no machine `{id}` is activated on this license"),
            },
        )),
        Some(false) => Err(ApiError::conflict(
            ErrorCode::AssigneeInactive,
            format!("user `{id}` is deactivated and cannot be assigned a seat"),
        )),
        Some(true) => Ok(()),
    }
}

/// 409 `assignment_limit_reached` when `seats` more would pass the license's seat limit
/// (`assigned` taken already) and it does not allow over-allocation.
fn check_limit(row: &LicenseRow, assigned: i64, seats: i64) -> ApiResult<()> {
    let limit = seat_policy::seat_limit(row)?;
    if let Some(limit) = limit
        && assigned.saturating_add(seats) > limit
        && row.allow_over_allocation == 0
    {
        return Err(ApiError::conflict(
            ErrorCode::AssignmentLimitReached,
            format!(
                "the license has {limit} seat(s) and {assigned} are assigned: {seats} more \
                 would exceed it; unassign a seat, or allow over-allocation"
            ),
        ));
    }
    Ok(())
}

/// `GET /v1/licenses/{id}/assignments`.
#[utoipa::path(get, path = "/v1/licenses/{id}/assignments", tag = TAG_ADMIN,
    security(("api_token" = [])),
    params(("id" = String, Path, description = "License id")),
    responses((status = 200, description = "The license's assignments", body = AssignmentList),
        (status = 404, description = "No such license", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn list_assignments(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<AssignmentList>> {
    caller.require(Action::Read)?;
    let row = get_license_row(&state, &caller, &id).await?;
    let assignments = state.db().assignments(&row.id).await?;
    let seats_assigned = assignments
        .iter()
        .filter(|a| a.state == "active")
        .map(|a| a.seats)
        .sum::<i64>();
    let seat_limit = seat_policy::seat_limit(&row)?;
    Ok(Json(AssignmentList {
        seat_mode: row.seat_mode.clone(),
        seat_limit,
        seats_assigned,
        over_allocated: seat_limit.is_some_and(|limit| seats_assigned > limit),
        assignments: assignments.into_iter().map(assignment_view).collect(),
    }))
}

/// `POST /v1/licenses/{id}/assignments`: assigns seats to a user, a department (its quota) or
/// a device. 409 `assignment_limit_reached` beyond the license's seats unless it allows
/// over-allocation, 409 `assignment_exists` when the assignee has an assignment on it
/// already, 404 `assignee_not_found` for an assignee outside the license's organization, 409
/// `assignee_inactive` for a deactivated user.
#[utoipa::path(post, path = "/v1/licenses/{id}/assignments", tag = TAG_ADMIN,
    security(("api_token" = [])),
    params(("id" = String, Path, description = "License id")),
    request_body = AssigneeRequest,
    responses((status = 201, description = "Assigned", body = AssignmentView),
        (status = 404, description = "No such license or assignee", body = ErrorBody),
        (status = 409, description = "Every seat is assigned, the assignee has one already, or the user is deactivated", body = ErrorBody),
        AdminErrors, BodyErrors))]
pub(crate) async fn create_assignment(
    caller: Caller,
    audit: InTxAudit,
    State(state): State<AppState>,
    Path(id): Path<String>,
    StrictJson(req): StrictJson<AssigneeRequest>,
) -> ApiResult<(StatusCode, Json<AssignmentView>)> {
    caller.require(Action::Operate)?;
    let seats = req.seats()?;
    let row = get_license_row(&state, &caller, &id).await?;
    let assignment_id = secrets::new_id("asg").map_err(internal)?;
    let now = now();
    let mut tx = state.db().begin_license_write(&row.id).await?;
    check_assignee(&mut tx, &row, req.kind, &req.id).await?;
    let exists = || {
        ApiError::conflict(
            ErrorCode::AssignmentExists,
            format!(
                "{} `{}` has an assignment on this license already",
                req.kind.as_str(),
                req.id
            ),
        )
    };
    if db::assignment_of(&mut tx, &row.id, req.kind.as_str(), &req.id)
        .await?
        .is_some()
    {
        return Err(exists());
    }
    let assigned = db::assigned_seats_in(&mut tx, &row.id, None).await?;
    check_limit(&row, assigned, seats)?;
    let stored = db::insert_assignment_in(
        &mut tx,
        &NewAssignment {
            id: &assignment_id,
            organization_id: &row.organization_id,
            license_id: &row.id,
            assignee_kind: req.kind.as_str(),
            assignee_id: &req.id,
            seats,
            assigned_by: &caller.token_id,
            now,
        },
    )
    .await?;
    if !stored {
        return Err(exists());
    }
    let assignment = db::assignment_in(&mut tx, &row.id, &assignment_id)
        .await?
        .ok_or_else(|| ApiError::internal("an assignment vanished in its transaction"))?;
    audit
        .append_in(state.db(), &mut tx, StatusCode::CREATED)
        .await?;
    tx.commit().await?;
    tracing::info!(license = %row.id, assignment = %assignment_id, "seat assigned");
    Ok((StatusCode::CREATED, Json(assignment_view(assignment))))
}

/// `DELETE /v1/licenses/{id}/assignments/{assignment_id}`: unassigns (the seat is free at
/// once; a pending transfer of it is cancelled).
#[utoipa::path(delete, path = "/v1/licenses/{id}/assignments/{assignment_id}", tag = TAG_ADMIN,
    security(("api_token" = [])),
    params(("id" = String, Path, description = "License id"),
        ("assignment_id" = String, Path, description = "Assignment id")),
    responses((status = 204, description = "Unassigned"),
        (status = 404, description = "No such license or assignment", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn delete_assignment(
    caller: Caller,
    audit: InTxAudit,
    State(state): State<AppState>,
    Path((id, assignment_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.require(Action::Operate)?;
    let row = get_license_row(&state, &caller, &id).await?;
    let mut tx = state.db().begin_license_write(&row.id).await?;
    if !db::delete_assignment_in(&mut tx, &row.id, &assignment_id, now()).await? {
        return Err(assignment_not_found(&assignment_id));
    }
    audit
        .append_in(state.db(), &mut tx, StatusCode::NO_CONTENT)
        .await?;
    tx.commit().await?;
    tracing::info!(license = %row.id, assignment = %assignment_id, "seat unassigned");
    Ok(StatusCode::NO_CONTENT)
}

/// Whether moving an assignment of this license needs an approval: a perpetual license (no
/// expiry) whose policy has `transfer_approval`.
async fn needs_approval(state: &AppState, row: &LicenseRow) -> ApiResult<bool> {
    if row.expires_at.is_some() {
        return Ok(false);
    }
    Ok(state
        .db()
        .get_policy(&row.organization_id, &row.policy_id)
        .await?
        .is_some_and(|p| p.transfer_approval != 0))
}

/// Moves assignment `assignment` of `row` to `to` (checked: the assignee, that it has no
/// assignment on the license, the seat limit), in `tx`.
async fn move_assignment(
    tx: &mut db::Tx,
    row: &LicenseRow,
    assignment: &Assignment,
    kind: AssigneeKind,
    to: &str,
    seats: i64,
    now: i64,
) -> ApiResult<()> {
    check_assignee(tx, row, kind, to).await?;
    let assigned = db::assigned_seats_in(tx, &row.id, Some(&assignment.id)).await?;
    check_limit(row, assigned, seats)?;
    if !db::move_assignment_in(tx, &assignment.id, kind.as_str(), to, seats, now).await? {
        return Err(ApiError::conflict(
            ErrorCode::AssignmentExists,
            format!(
                "{} `{to}` has an assignment on this license already",
                kind.as_str()
            ),
        ));
    }
    Ok(())
}

/// `POST /v1/licenses/{id}/assignments/{assignment_id}/reassign`: moves the assignment to
/// another assignee (200, the assignment after the move). On a perpetual license whose policy
/// has `transfer_approval`, the move is a request instead (202, the pending transfer), which
/// an admin other than the requesting token approves or rejects.
#[utoipa::path(post, path = "/v1/licenses/{id}/assignments/{assignment_id}/reassign",
    tag = TAG_ADMIN, security(("api_token" = [])),
    params(("id" = String, Path, description = "License id"),
        ("assignment_id" = String, Path, description = "Assignment id")),
    request_body = AssigneeRequest,
    responses((status = 200, description = "Moved", body = AssignmentView),
        (status = 202, description = "Requested: the transfer waits for an admin's approval", body = TransferView),
        (status = 404, description = "No such license, assignment or assignee", body = ErrorBody),
        (status = 409, description = "The seat limit, an assignee with an assignment already, a deactivated user, or a transfer pending already", body = ErrorBody),
        AdminErrors, BodyErrors))]
pub(crate) async fn reassign(
    caller: Caller,
    audit: InTxAudit,
    State(state): State<AppState>,
    Path((id, assignment_id)): Path<(String, String)>,
    StrictJson(req): StrictJson<AssigneeRequest>,
) -> ApiResult<Response> {
    caller.require(Action::Operate)?;
    let seats = req.seats()?;
    let row = get_license_row(&state, &caller, &id).await?;
    let approval = needs_approval(&state, &row).await?;
    let transfer_id = secrets::new_id("atr").map_err(internal)?;
    let now = now();
    let mut tx = state.db().begin_license_write(&row.id).await?;
    let assignment = db::assignment_in(&mut tx, &row.id, &assignment_id)
        .await?
        .ok_or_else(|| assignment_not_found(&assignment_id))?;
    if assignment.assignee_kind == req.kind.as_str() && assignment.assignee_id == req.id {
        return Err(ApiError::conflict(
            ErrorCode::AssignmentExists,
            "the assignment is this assignee's already",
        ));
    }
    if !approval {
        move_assignment(&mut tx, &row, &assignment, req.kind, &req.id, seats, now).await?;
        let moved = db::assignment_in(&mut tx, &row.id, &assignment_id)
            .await?
            .ok_or_else(|| assignment_not_found(&assignment_id))?;
        audit.append_in(state.db(), &mut tx, StatusCode::OK).await?;
        tx.commit().await?;
        tracing::info!(license = %row.id, assignment = %assignment_id, "seat reassigned");
        return Ok((StatusCode::OK, Json(assignment_view(moved))).into_response());
    }
    // A request: the same checks now (a request that could never be approved is refused at
    // once), again at the approval.
    check_assignee(&mut tx, &row, req.kind, &req.id).await?;
    if let Some(pending) = db::pending_transfer_of(&mut tx, &assignment_id).await? {
        return Err(ApiError::conflict(
            ErrorCode::TransferPending,
            format!(
                "transfer `{}` of this assignment waits for an approval already",
                pending.id
            ),
        ));
    }
    let transfer = Transfer {
        id: transfer_id,
        organization_id: row.organization_id.clone(),
        license_id: row.id.clone(),
        assignment_id: assignment.id.clone(),
        from_kind: assignment.assignee_kind.clone(),
        from_id: assignment.assignee_id.clone(),
        to_kind: req.kind.as_str().to_owned(),
        to_id: req.id.clone(),
        to_seats: seats,
        state: "pending".into(),
        requested_by: caller.token_id.clone(),
        requested_at: now,
        decided_by: None,
        decided_at: None,
        reason: None,
    };
    db::insert_transfer_in(&mut tx, &transfer).await?;
    audit
        .append_in(state.db(), &mut tx, StatusCode::ACCEPTED)
        .await?;
    tx.commit().await?;
    tracing::info!(license = %row.id, transfer = %transfer.id, "seat transfer requested");
    Ok((StatusCode::ACCEPTED, Json(transfer_view(transfer))).into_response())
}

/// `GET /v1/directory/users/{id}/assignments`: the seats a directory user holds, directly or
/// through their departments.
#[utoipa::path(get, path = "/v1/directory/users/{id}/assignments", tag = TAG_ADMIN,
    security(("api_token" = [])),
    params(("id" = String, Path, description = "Directory user id")),
    responses((status = 200, description = "The user's assignments", body = UserAssignmentList),
        (status = 404, description = "No such user", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn user_assignments(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<UserAssignmentList>> {
    caller.require(Action::Read)?;
    if !state
        .db()
        .directory_user_exists(&caller.organization_id, &id)
        .await?
    {
        return Err(ApiError::not_found(
            ErrorCode::AssigneeNotFound,
            format!("no user `{id}` in the directory"),
        ));
    }
    let assignments = state
        .db()
        .assignments_of_user(&caller.organization_id, &id)
        .await?;
    Ok(Json(UserAssignmentList {
        assignments: assignments.into_iter().map(assignment_view).collect(),
    }))
}

/// Deserializes a present member (`null` included) as `Some`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// The seat settings to change; an absent member is left as it is.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SeatingRequest {
    /// `floating` or `named`.
    seat_mode: Option<SeatMode>,
    /// Whether assigning beyond the seat count is allowed (and flagged).
    allow_over_allocation: Option<bool>,
    /// Seconds without use after which an assigned seat is reclaimed (86400 to 94608000: a day to three years);
    /// `null`: the policy's.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>, minimum = 86_400, maximum = 94_608_000)]
    reclaim_after: Option<Option<u64>>,
}

/// `PUT /v1/licenses/{id}/seating`: changes a license's `seat_mode`, `allow_over_allocation`
/// and `reclaim_after`. Turning a license `named` admits only its assignees from the next
/// request on; leases held already run on until they end.
#[utoipa::path(put, path = "/v1/licenses/{id}/seating", tag = TAG_ADMIN,
    security(("api_token" = [])),
    params(("id" = String, Path, description = "License id")),
    request_body = SeatingRequest,
    responses((status = 200, description = "The license after the change", body = LicenseView),
        (status = 404, description = "No such license", body = ErrorBody),
        AdminErrors, BodyErrors))]
pub(crate) async fn set_seating(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    StrictJson(req): StrictJson<SeatingRequest>,
) -> ApiResult<Json<LicenseView>> {
    caller.require(Action::ManageLicenses)?;
    get_license_row(&state, &caller, &id).await?;
    let reclaim = req
        .reclaim_after
        .map(|s| seat_policy::reclaim_after("reclaim_after", s))
        .transpose()?;
    let now = now();
    let mut write = state.db().begin_license_change(&id).await?;
    let row = db::license_in(write.tx(), &id).await?.ok_or_else(|| {
        ApiError::not_found(ErrorCode::LicenseNotFound, format!("no license `{id}`"))
    })?;
    let settings = SeatSettings {
        seat_mode: match req.seat_mode {
            Some(mode) => mode.as_str(),
            None => row.seat_mode.as_str(),
        },
        allow_over_allocation: req
            .allow_over_allocation
            .map_or(row.allow_over_allocation, i64::from),
        reclaim_after: reclaim.unwrap_or(row.reclaim_after),
    };
    db::set_seat_settings_in(write.tx(), &id, &settings, now).await?;
    write.commit().await?;
    tracing::info!(license = %id, seat_mode = settings.seat_mode, "seat settings changed");
    let row = get_license_row(&state, &caller, &id).await?;
    Ok(Json(license_view(&row, &caller, now)?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct TransferFilter {
    /// Only transfers in this state: `pending`, `approved`, `rejected` or `cancelled`.
    state: Option<String>,
}

/// `GET /v1/assignment-transfers?state=pending`: the organization's requested transfers,
/// newest first (at most 500).
#[utoipa::path(get, path = "/v1/assignment-transfers", tag = TAG_ADMIN,
    security(("api_token" = [])),
    params(TransferFilter),
    responses((status = 200, description = "The transfers", body = TransferList),
        (status = 422, description = "An unknown state", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn list_transfers(
    caller: Caller,
    State(state): State<AppState>,
    Query(filter): Query<TransferFilter>,
) -> ApiResult<Json<TransferList>> {
    caller.require(Action::Read)?;
    if let Some(s) = &filter.state
        && !["pending", "approved", "rejected", "cancelled"].contains(&s.as_str())
    {
        return Err(ApiError::invalid(
            ErrorCode::InvalidField,
            "`state` must be pending, approved, rejected or cancelled",
        ));
    }
    let transfers = state
        .db()
        .transfers(
            &caller.organization_id,
            filter.state.as_deref(),
            MAX_TRANSFERS_LISTED,
        )
        .await?;
    Ok(Json(TransferList {
        transfers: transfers.into_iter().map(transfer_view).collect(),
    }))
}

/// Approves (`approve`) or rejects a pending transfer: an admin, never the requesting token.
async fn decide(
    state: &AppState,
    caller: &Caller,
    id: &str,
    approve: bool,
) -> ApiResult<Json<TransferView>> {
    caller.require(Action::ApproveTransfers)?;
    let not_found =
        || ApiError::not_found(ErrorCode::TransferNotFound, format!("no transfer `{id}`"));
    let license_id = state
        .db()
        .transfer(&caller.organization_id, id)
        .await?
        .ok_or_else(not_found)?
        .license_id;
    let row = get_license_row(state, caller, &license_id).await?;
    let now = now();
    let mut tx = state.db().begin_license_write(&row.id).await?;
    let transfer = db::transfer_in(&mut tx, &caller.organization_id, id)
        .await?
        .ok_or_else(not_found)?;
    if transfer.requested_by == caller.token_id {
        return Err(ApiError::forbidden(
            ErrorCode::Forbidden,
            "a transfer is approved or rejected by another admin than the token that asked for it",
        ));
    }
    if transfer.state != "pending" {
        return Err(ApiError::conflict(
            ErrorCode::TransferDecided,
            format!("transfer `{id}` is {} already", transfer.state),
        ));
    }
    if approve {
        let assignment = db::assignment_in(&mut tx, &row.id, &transfer.assignment_id)
            .await?
            .ok_or_else(|| assignment_not_found(&transfer.assignment_id))?;
        let kind = match transfer.to_kind.as_str() {
            "user" => AssigneeKind::User,
            "department" => AssigneeKind::Department,
            _ => AssigneeKind::Device,
        };
        move_assignment(
            &mut tx,
            &row,
            &assignment,
            kind,
            &transfer.to_id,
            transfer.to_seats,
            now,
        )
        .await?;
    }
    let verdict = if approve { "approved" } else { "rejected" };
    if !db::decide_transfer_in(&mut tx, id, verdict, &caller.token_id, None, now).await? {
        return Err(ApiError::conflict(
            ErrorCode::TransferDecided,
            format!("transfer `{id}` was decided already"),
        ));
    }
    let decided = db::transfer_in(&mut tx, &caller.organization_id, id)
        .await?
        .ok_or_else(not_found)?;
    tx.commit().await?;
    tracing::info!(license = %row.id, transfer = %id, verdict, "seat transfer decided");
    Ok(Json(transfer_view(decided)))
}

/// `POST /v1/assignment-transfers/{id}/approve`: moves the assignment as requested (the
/// checks of a reassignment apply again). Admins only, never the requesting token.
#[utoipa::path(post, path = "/v1/assignment-transfers/{id}/approve", tag = TAG_ADMIN,
    security(("api_token" = [])),
    params(("id" = String, Path, description = "Transfer id")),
    responses((status = 200, description = "Approved: the assignment moved", body = TransferView),
        (status = 404, description = "No such transfer, or its assignee is gone", body = ErrorBody),
        (status = 409, description = "Decided already, or the move is no longer possible", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn approve_transfer(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<TransferView>> {
    decide(&state, &caller, &id, true).await
}

/// `POST /v1/assignment-transfers/{id}/reject`: the assignment stays. Admins only, never the
/// requesting token.
#[utoipa::path(post, path = "/v1/assignment-transfers/{id}/reject", tag = TAG_ADMIN,
    security(("api_token" = [])),
    params(("id" = String, Path, description = "Transfer id")),
    responses((status = 200, description = "Rejected", body = TransferView),
        (status = 404, description = "No such transfer", body = ErrorBody),
        (status = 409, description = "Decided already", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn reject_transfer(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<TransferView>> {
    decide(&state, &caller, &id, false).await
}
