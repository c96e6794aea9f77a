//! The directory's departments or groups (`/v1/directory/departments`): creating, listing,
//! reading, renaming and deleting a department, and its members.

use super::*;

/// Most user ids one membership change names.
const MAX_MEMBERS_PER_CHANGE: usize = 1_000;

/// The body of `POST /v1/directory/departments`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewDepartment {
    /// Unique in the organization without regard to case.
    name: DisplayName,
    external_id: Option<DisplayName>,
}

/// The body of `PATCH /v1/directory/departments/{id}` (a rename, or its external id).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DepartmentPatch {
    name: Option<DisplayName>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<DisplayName>)]
    external_id: Option<Option<DisplayName>>,
}

/// The body of `POST /v1/directory/departments/{id}/members`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MembersChange {
    /// Directory user ids to add (1 to 1 000); members already stay.
    user_ids: Vec<String>,
}

/// The filters and page of `GET /v1/directory/departments`.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct DepartmentQuery {
    /// This name (without regard to case).
    name: Option<String>,
    /// This external id.
    external_id: Option<String>,
    /// Departments whose name contains this text.
    q: Option<String>,
    /// Departments this directory user belongs to.
    member: Option<String>,
    /// Rows to skip (0-based); default 0.
    start: Option<i64>,
    /// Rows to answer, 1 to 1 000; default 100.
    count: Option<i64>,
}

/// A department.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DepartmentView {
    id: String,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    external_id: Option<String>,
    /// Its members (answers about one department only).
    #[serde(skip_serializing_if = "Option::is_none")]
    members: Option<i64>,
    version: i64,
    created_at: i64,
    updated_at: i64,
}

fn department_view(department: Department, members: Option<i64>) -> DepartmentView {
    DepartmentView {
        id: department.id,
        name: department.name,
        external_id: department.external_id,
        members,
        version: department.version,
        created_at: department.created_at,
        updated_at: department.updated_at,
    }
}

/// A page of departments.
#[derive(Serialize, ToSchema)]
pub(crate) struct DepartmentList {
    departments: Vec<DepartmentView>,
    /// Departments matching the filters in all.
    total: i64,
    start: i64,
    count: i64,
}

/// A member of a department.
#[derive(Serialize, ToSchema)]
pub(crate) struct Member {
    user_id: String,
    user_name: String,
}

/// The members of a department.
#[derive(Serialize, ToSchema)]
pub(crate) struct MemberList {
    department_id: String,
    /// By user name.
    members: Vec<Member>,
}

/// The answer of deleting a department.
#[derive(Serialize, ToSchema)]
pub(crate) struct DepartmentDeleted {
    /// The deleted department's id.
    id: String,
}

/// `POST /v1/directory/departments`: a new department (409 `department_exists` when the name is
/// taken, without regard to case).
#[utoipa::path(post, path = "/v1/directory/departments", tag = TAG_ADMIN,
    security(("api_token" = [])),
    request_body = NewDepartment,
    responses((status = 201, description = "Created", body = DepartmentView),
        (status = 409, description = "The name is taken", body = ErrorBody),
        AdminErrors, BodyErrors))]
pub(crate) async fn create_department(
    caller: Caller,
    State(state): State<AppState>,
    StrictJson(body): StrictJson<NewDepartment>,
) -> ApiResult<(StatusCode, Json<DepartmentView>)> {
    caller.require(Action::ManageLicenses)?;
    let now = now();
    let department = Department {
        id: secrets::new_id("dep").map_err(internal)?,
        organization_id: caller.organization_id.clone(),
        name: body.name.into_string(),
        external_id: body.external_id.map(DisplayName::into_string),
        version: 1,
        created_at: now,
        updated_at: now,
    };
    let mut tx = state
        .db()
        .begin_directory_change(&caller.organization_id)
        .await?;
    if !dir::insert_department(&mut tx, &department).await? {
        return Err(department_exists(&department.name));
    }
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(department_view(department, Some(0))),
    ))
}

/// `GET /v1/directory/departments`: departments by name, filtered, a page of them.
#[utoipa::path(get, path = "/v1/directory/departments", tag = TAG_ADMIN,
    security(("api_token" = [])),
    params(DepartmentQuery),
    responses((status = 200, description = "A page of departments", body = DepartmentList),
        (status = 422, description = "A filter or page out of range", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn list_departments(
    caller: Caller,
    State(state): State<AppState>,
    Query(query): Query<DepartmentQuery>,
) -> ApiResult<Json<DepartmentList>> {
    caller.require(Action::Read)?;
    let page = page(query.start, query.count)?;
    let mut filter = equal_texts([
        (DepartmentAttr::Name, "name", query.name),
        (DepartmentAttr::ExternalId, "external_id", query.external_id),
    ])?;
    if let Some(member) = query.member {
        token_field("member", &member, 1, 128)?;
        filter = and(filter, Filter::Eq(DepartmentAttr::Member, Is::Text(member)));
    }
    if let Some(q) = query.q {
        filter = and(
            filter,
            Filter::Contains(DepartmentAttr::Name, filter_text("q", q)?),
        );
    }
    let (departments, total) = state
        .db()
        .departments(&caller.organization_id, &filter, page)
        .await?;
    Ok(Json(DepartmentList {
        departments: departments
            .into_iter()
            .map(|d| department_view(d, None))
            .collect(),
        total,
        start: page.start,
        count: page.count,
    }))
}

/// `GET /v1/directory/departments/{id}`: a department and its member count.
#[utoipa::path(get, path = "/v1/directory/departments/{id}", tag = TAG_ADMIN,
    security(("api_token" = [])),
    params(("id" = String, Path, description = "Department id")),
    responses((status = 200, description = "The department", body = DepartmentView),
        (status = 404, description = "No such department", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn get_department(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<DepartmentView>> {
    caller.require(Action::Read)?;
    let department = department_of(&state, &caller, &id).await?;
    let members = state
        .db()
        .members(&caller.organization_id, &department.id)
        .await?;
    let count = i64::try_from(members.len()).map_err(ApiError::internal)?;
    Ok(Json(department_view(department, Some(count))))
}

/// `PATCH /v1/directory/departments/{id}`: renames it, or sets its external id (409
/// `department_exists` when the new name is taken).
#[utoipa::path(patch, path = "/v1/directory/departments/{id}", tag = TAG_ADMIN,
    security(("api_token" = [])),
    params(("id" = String, Path, description = "Department id")),
    request_body = DepartmentPatch,
    responses((status = 200, description = "The department as changed", body = DepartmentView),
        (status = 404, description = "No such department", body = ErrorBody),
        (status = 409, description = "The new name is taken", body = ErrorBody),
        AdminErrors, BodyErrors))]
pub(crate) async fn update_department(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    StrictJson(patch): StrictJson<DepartmentPatch>,
) -> ApiResult<Json<DepartmentView>> {
    caller.require(Action::ManageLicenses)?;
    let org = &caller.organization_id;
    let mut tx = state.db().begin_directory_change(org).await?;
    let mut department = dir::department_in(&mut tx, org, &id)
        .await?
        .ok_or_else(|| department_not_found(&id))?;
    if let Some(name) = patch.name {
        department.name = name.into_string();
    }
    if let Some(external_id) = patch.external_id {
        department.external_id = external_id.map(DisplayName::into_string);
    }
    department.updated_at = now();
    if !dir::update_department(&mut tx, &department).await? {
        return Err(department_exists(&department.name));
    }
    let department = dir::department_in(&mut tx, org, &id)
        .await?
        .ok_or_else(|| department_not_found(&id))?;
    tx.commit().await?;
    Ok(Json(department_view(department, None)))
}

/// `DELETE /v1/directory/departments/{id}`: deletes the department and its memberships (the
/// users stay).
#[utoipa::path(delete, path = "/v1/directory/departments/{id}", tag = TAG_ADMIN,
    security(("api_token" = [])),
    params(("id" = String, Path, description = "Department id")),
    responses((status = 200, description = "Deleted", body = DepartmentDeleted),
        (status = 404, description = "No such department", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn delete_department(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<DepartmentDeleted>> {
    caller.require(Action::ManageLicenses)?;
    let mut tx = state
        .db()
        .begin_directory_change(&caller.organization_id)
        .await?;
    if !dir::delete_department(&mut tx, &caller.organization_id, &id).await? {
        return Err(department_not_found(&id));
    }
    tx.commit().await?;
    Ok(Json(DepartmentDeleted { id }))
}

async fn member_list(
    tx: &mut db::Tx,
    organization_id: &str,
    department_id: &str,
) -> ApiResult<MemberList> {
    let members = dir::members_in(tx, organization_id, department_id).await?;
    Ok(MemberList {
        department_id: department_id.to_owned(),
        members: members
            .into_iter()
            .map(|(user_id, user_name)| Member { user_id, user_name })
            .collect(),
    })
}

/// `GET /v1/directory/departments/{id}/members`: its members, by user name.
#[utoipa::path(get, path = "/v1/directory/departments/{id}/members", tag = TAG_ADMIN,
    security(("api_token" = [])),
    params(("id" = String, Path, description = "Department id")),
    responses((status = 200, description = "The members", body = MemberList),
        (status = 404, description = "No such department", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn list_members(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<MemberList>> {
    caller.require(Action::Read)?;
    let department = department_of(&state, &caller, &id).await?;
    let members = state
        .db()
        .members(&caller.organization_id, &department.id)
        .await?;
    Ok(Json(MemberList {
        department_id: department.id,
        members: members
            .into_iter()
            .map(|(user_id, user_name)| Member { user_id, user_name })
            .collect(),
    }))
}

/// `POST /v1/directory/departments/{id}/members`: adds users (members already stay); 404
/// naming the first id that is not a user of the organization (nothing is added then).
#[utoipa::path(post, path = "/v1/directory/departments/{id}/members", tag = TAG_ADMIN,
    security(("api_token" = [])),
    params(("id" = String, Path, description = "Department id")),
    request_body = MembersChange,
    responses((status = 200, description = "The members after", body = MemberList),
        (status = 404, description = "No such department or user", body = ErrorBody),
        AdminErrors, BodyErrors))]
pub(crate) async fn add_members(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    StrictJson(change): StrictJson<MembersChange>,
) -> ApiResult<Json<MemberList>> {
    caller.require(Action::Operate)?;
    if change.user_ids.is_empty() || change.user_ids.len() > MAX_MEMBERS_PER_CHANGE {
        return Err(ApiError::invalid(
            ErrorCode::InvalidField,
            format!("`user_ids` must list 1 to {MAX_MEMBERS_PER_CHANGE} ids"),
        ));
    }
    for user_id in &change.user_ids {
        token_field("user_ids", user_id, 1, 128)?;
    }
    let org = &caller.organization_id;
    let mut tx = state.db().begin_directory_change(org).await?;
    let department = dir::department_in(&mut tx, org, &id)
        .await?
        .ok_or_else(|| department_not_found(&id))?;
    for user_id in &change.user_ids {
        if dir::user_in(&mut tx, org, user_id).await?.is_none() {
            return Err(user_not_found(user_id));
        }
    }
    dir::add_members(&mut tx, org, &department.id, &change.user_ids).await?;
    let members = member_list(&mut tx, org, &department.id).await?;
    tx.commit().await?;
    Ok(Json(members))
}

/// `DELETE /v1/directory/departments/{id}/members/{user_id}`: removes one member (404 when the
/// user is not one).
#[utoipa::path(delete, path = "/v1/directory/departments/{id}/members/{user_id}",
    tag = TAG_ADMIN, security(("api_token" = [])),
    params(("id" = String, Path, description = "Department id"),
        ("user_id" = String, Path, description = "Directory user id")),
    responses((status = 200, description = "The members after", body = MemberList),
        (status = 404, description = "No such department, or the user is not a member", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn remove_member(
    caller: Caller,
    State(state): State<AppState>,
    Path((id, user_id)): Path<(String, String)>,
) -> ApiResult<Json<MemberList>> {
    caller.require(Action::Operate)?;
    let org = &caller.organization_id;
    let mut tx = state.db().begin_directory_change(org).await?;
    let department = dir::department_in(&mut tx, org, &id)
        .await?
        .ok_or_else(|| department_not_found(&id))?;
    let before = dir::members_in(&mut tx, org, &department.id).await?;
    if !before.iter().any(|(member, _)| *member == user_id) {
        return Err(ApiError::not_found(
            ErrorCode::UserNotFound,
            format!(
                "`{}` is not a member of this department",
                user_id.chars().take(128).collect::<String>()
            ),
        ));
    }
    dir::remove_members(&mut tx, org, &department.id, std::slice::from_ref(&user_id)).await?;
    let members = member_list(&mut tx, org, &department.id).await?;
    tx.commit().await?;
    Ok(Json(members))
}
