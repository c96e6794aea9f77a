//! What the directory uses of the organization's licenses: a user's usage
//! (`/v1/directory/users/{id}/usage`) and a department's (`/v1/directory/departments/{id}/usage`).

use super::*;

/// `GET /v1/directory/users/{id}/usage`: the licenses the user uses or is assigned, their
/// machines, the floating seats they hold now, and their last use.
#[utoipa::path(get, path = "/v1/directory/users/{id}/usage", tag = TAG_ADMIN,
    security(("api_token" = [])),
    params(("id" = String, Path, description = "Directory user id")),
    responses((status = 200, description = "The user's usage", body = UserUsage),
        (status = 404, description = "No such user", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn user_usage(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<UserUsage>> {
    caller.require(Action::Read)?;
    let user = user_of(&state, &caller, &id).await?;
    Ok(Json(
        state
            .db()
            .user_usage(&caller.organization_id, &user.id, now())
            .await?,
    ))
}

/// `GET /v1/directory/departments/{id}/usage`: the seats its members use now, per license and
/// by member, beside the seats assigned to the department.
#[utoipa::path(get, path = "/v1/directory/departments/{id}/usage", tag = TAG_ADMIN,
    security(("api_token" = [])),
    params(("id" = String, Path, description = "Department id")),
    responses((status = 200, description = "The department's usage", body = DepartmentUsage),
        (status = 404, description = "No such department", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn department_usage(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<DepartmentUsage>> {
    caller.require(Action::Read)?;
    let department = department_of(&state, &caller, &id).await?;
    Ok(Json(
        state
            .db()
            .department_usage(&caller.organization_id, &department.id, now())
            .await?,
    ))
}
