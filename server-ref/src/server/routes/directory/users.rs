//! The directory's people (`/v1/directory/users`): creating, listing, reading, changing,
//! deactivating, reactivating and deleting a user. Deactivating or deleting a user releases
//! their seats and leases at once (`release_seats` in the parent module).

use super::*;

/// The body of `POST /v1/directory/users`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewUser {
    /// Unique in the organization without regard to case; what apps send as `user`.
    user_name: DisplayName,
    display_name: Option<DisplayName>,
    email: Option<Email>,
    /// The identity provider's id for the person.
    external_id: Option<DisplayName>,
    /// Default true.
    active: Option<bool>,
    /// Free text (the SCIM enterprise extension's `department`).
    department: Option<DisplayName>,
}

/// The body of `PATCH /v1/directory/users/{id}`: the members given change (`null` clears an
/// optional one), the others stay. `active` changes through `deactivate` and `reactivate`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserPatch {
    user_name: Option<DisplayName>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<DisplayName>)]
    display_name: Option<Option<DisplayName>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Email>)]
    email: Option<Option<Email>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<DisplayName>)]
    external_id: Option<Option<DisplayName>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<DisplayName>)]
    department: Option<Option<DisplayName>>,
}

/// The filters and page of `GET /v1/directory/users`.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct UserQuery {
    /// This user name (without regard to case).
    user_name: Option<String>,
    /// This e-mail address (without regard to case).
    email: Option<String>,
    /// This external id.
    external_id: Option<String>,
    /// This department (the free-text attribute).
    department: Option<String>,
    /// Only active (`true`) or deactivated (`false`) users.
    active: Option<bool>,
    /// Users whose user name, display name or e-mail contains this text.
    q: Option<String>,
    /// Rows to skip (0-based); default 0.
    start: Option<i64>,
    /// Rows to answer, 1 to 1 000; default 100.
    count: Option<i64>,
}

/// A department, as a user's answer names it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DepartmentRef {
    id: String,
    name: String,
}

/// A directory user.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UserView {
    id: String,
    user_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    external_id: Option<String>,
    /// `false`: deactivated (holds no seat).
    active: bool,
    /// The free-text department attribute.
    #[serde(skip_serializing_if = "Option::is_none")]
    department: Option<String>,
    /// The departments (groups) the user belongs to (answers about one user only).
    #[serde(skip_serializing_if = "Option::is_none")]
    departments: Option<Vec<DepartmentRef>>,
    /// 1, 2, 3, ...: bumped by every change.
    version: i64,
    created_at: i64,
    updated_at: i64,
}

fn user_view(user: DirectoryUser, departments: Option<Vec<Department>>) -> UserView {
    UserView {
        id: user.id,
        user_name: user.user_name,
        display_name: user.display_name,
        email: user.email,
        external_id: user.external_id,
        active: user.active,
        department: user.department,
        departments: departments.map(|list| {
            list.into_iter()
                .map(|d| DepartmentRef {
                    id: d.id,
                    name: d.name,
                })
                .collect()
        }),
        version: user.version,
        created_at: user.created_at,
        updated_at: user.updated_at,
    }
}

/// A page of users.
#[derive(Serialize, ToSchema)]
pub(crate) struct UserList {
    users: Vec<UserView>,
    /// Users matching the filters in all.
    total: i64,
    /// Rows skipped.
    start: i64,
    /// Rows asked for.
    count: i64,
}

/// The answer of deactivating or reactivating a user.
#[derive(Serialize, ToSchema)]
pub(crate) struct UserChange {
    user: UserView,
    /// What was released (deactivation only).
    #[serde(skip_serializing_if = "Option::is_none")]
    released: Option<Released>,
}

/// The answer of deleting a user.
#[derive(Serialize, ToSchema)]
pub(crate) struct UserDeleted {
    /// The deleted user's id.
    id: String,
    released: Released,
}

/// `POST /v1/directory/users`: a new user (409 `user_exists` when the name is taken, without
/// regard to case).
#[utoipa::path(post, path = "/v1/directory/users", tag = TAG_ADMIN, security(("api_token" = [])),
    request_body = NewUser,
    responses((status = 201, description = "Created", body = UserView),
        (status = 409, description = "The user name is taken", body = ErrorBody),
        AdminErrors, BodyErrors))]
pub(crate) async fn create_user(
    caller: Caller,
    State(state): State<AppState>,
    StrictJson(body): StrictJson<NewUser>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    caller.require(Action::ManageLicenses)?;
    let now = now();
    let user = DirectoryUser {
        id: secrets::new_id("usr").map_err(internal)?,
        organization_id: caller.organization_id.clone(),
        user_name: body.user_name.into_string(),
        display_name: body.display_name.map(DisplayName::into_string),
        email: body.email.map(|e| e.0),
        external_id: body.external_id.map(DisplayName::into_string),
        active: body.active.unwrap_or(true),
        department: body.department.map(DisplayName::into_string),
        version: 1,
        created_at: now,
        updated_at: now,
    };
    let mut tx = state
        .db()
        .begin_directory_change(&caller.organization_id)
        .await?;
    if !dir::insert_user(&mut tx, &user).await? {
        return Err(user_exists(&user.user_name));
    }
    tx.commit().await?;
    state.db().forget_directory_links();
    Ok((StatusCode::CREATED, Json(user_view(user, Some(Vec::new())))))
}

/// `GET /v1/directory/users`: users by user name, filtered, a page of them.
#[utoipa::path(get, path = "/v1/directory/users", tag = TAG_ADMIN, security(("api_token" = [])),
    params(UserQuery),
    responses((status = 200, description = "A page of users", body = UserList),
        (status = 422, description = "A filter or page out of range", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn list_users(
    caller: Caller,
    State(state): State<AppState>,
    Query(query): Query<UserQuery>,
) -> ApiResult<Json<UserList>> {
    caller.require(Action::Read)?;
    let page = page(query.start, query.count)?;
    let mut filter = equal_texts([
        (UserAttr::UserName, "user_name", query.user_name),
        (UserAttr::Email, "email", query.email),
        (UserAttr::ExternalId, "external_id", query.external_id),
        (UserAttr::Department, "department", query.department),
    ])?;
    if let Some(active) = query.active {
        filter = and(filter, Filter::Eq(UserAttr::Active, Is::Bool(active)));
    }
    if let Some(q) = query.q {
        let q = filter_text("q", q)?;
        let any = Filter::Or(
            Box::new(Filter::Contains(UserAttr::UserName, q.clone())),
            Box::new(Filter::Or(
                Box::new(Filter::Contains(UserAttr::DisplayName, q.clone())),
                Box::new(Filter::Contains(UserAttr::Email, q)),
            )),
        );
        filter = and(filter, any);
    }
    let (users, total) = state
        .db()
        .users(&caller.organization_id, &filter, page)
        .await?;
    Ok(Json(UserList {
        users: users.into_iter().map(|u| user_view(u, None)).collect(),
        total,
        start: page.start,
        count: page.count,
    }))
}

/// `GET /v1/directory/users/{id}`: a user and the departments it belongs to.
#[utoipa::path(get, path = "/v1/directory/users/{id}", tag = TAG_ADMIN,
    security(("api_token" = [])),
    params(("id" = String, Path, description = "Directory user id")),
    responses((status = 200, description = "The user", body = UserView),
        (status = 404, description = "No such user", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn get_user(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<UserView>> {
    caller.require(Action::Read)?;
    let user = user_of(&state, &caller, &id).await?;
    let departments = state
        .db()
        .departments_of(&caller.organization_id, &user.id)
        .await?;
    Ok(Json(user_view(user, Some(departments))))
}

/// `PATCH /v1/directory/users/{id}`: changes the members given (a rename: 409 `user_exists`
/// when the new name is taken).
#[utoipa::path(patch, path = "/v1/directory/users/{id}", tag = TAG_ADMIN,
    security(("api_token" = [])),
    params(("id" = String, Path, description = "Directory user id")),
    request_body = UserPatch,
    responses((status = 200, description = "The user as changed", body = UserView),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 409, description = "The new user name is taken", body = ErrorBody),
        AdminErrors, BodyErrors))]
pub(crate) async fn update_user(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    StrictJson(patch): StrictJson<UserPatch>,
) -> ApiResult<Json<UserView>> {
    caller.require(Action::ManageLicenses)?;
    let org = &caller.organization_id;
    let mut tx = state.db().begin_directory_change(org).await?;
    let mut user = dir::user_in(&mut tx, org, &id)
        .await?
        .ok_or_else(|| user_not_found(&id))?;
    if let Some(name) = patch.user_name {
        user.user_name = name.into_string();
    }
    let text = |value: Option<DisplayName>| value.map(DisplayName::into_string);
    if let Some(value) = patch.display_name {
        user.display_name = text(value);
    }
    if let Some(value) = patch.email {
        user.email = value.map(|e| e.0);
    }
    if let Some(value) = patch.external_id {
        user.external_id = text(value);
    }
    if let Some(value) = patch.department {
        user.department = text(value);
    }
    user.updated_at = now();
    if !dir::update_user(&mut tx, &user).await? {
        return Err(user_exists(&user.user_name));
    }
    let user = dir::user_in(&mut tx, org, &id)
        .await?
        .ok_or_else(|| user_not_found(&id))?;
    let departments = dir::departments_of_in(&mut tx, org, &id).await?;
    tx.commit().await?;
    state.db().forget_directory_links();
    Ok(Json(user_view(user, Some(departments))))
}

/// Sets user `id`'s active flag; `Ok(user)` as stored after.
async fn set_active(
    state: &AppState,
    caller: &Caller,
    id: &str,
    active: bool,
) -> ApiResult<DirectoryUser> {
    let org = &caller.organization_id;
    let mut tx = state.db().begin_directory_change(org).await?;
    let mut user = dir::user_in(&mut tx, org, id)
        .await?
        .ok_or_else(|| user_not_found(id))?;
    if user.active != active {
        user.active = active;
        user.updated_at = now();
        if !dir::update_user(&mut tx, &user).await? {
            return Err(user_not_found(id));
        }
        user = dir::user_in(&mut tx, org, id)
            .await?
            .ok_or_else(|| user_not_found(id))?;
    }
    tx.commit().await?;
    state.db().forget_directory_links();
    Ok(user)
}

/// `POST /v1/directory/users/{id}/deactivate`: the person left or is disabled. Every seat and
/// lease they hold is released at once (a running app learns it at its next heartbeat).
/// Deactivating a deactivated user releases what may be left and changes nothing else.
#[utoipa::path(post, path = "/v1/directory/users/{id}/deactivate", tag = TAG_ADMIN,
    security(("api_token" = [])),
    params(("id" = String, Path, description = "Directory user id")),
    responses((status = 200, description = "Deactivated; what was released", body = UserChange),
        (status = 404, description = "No such user", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn deactivate_user(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<UserChange>> {
    caller.require(Action::Operate)?;
    let user = set_active(&state, &caller, &id, false).await?;
    let released = release_seats(&state, &caller, &user.id, now()).await?;
    Ok(Json(UserChange {
        user: user_view(user, None),
        released: Some(released),
    }))
}

/// `POST /v1/directory/users/{id}/reactivate`: the person is back.
#[utoipa::path(post, path = "/v1/directory/users/{id}/reactivate", tag = TAG_ADMIN,
    security(("api_token" = [])),
    params(("id" = String, Path, description = "Directory user id")),
    responses((status = 200, description = "Active again", body = UserChange),
        (status = 404, description = "No such user", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn reactivate_user(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<UserChange>> {
    caller.require(Action::Operate)?;
    let user = set_active(&state, &caller, &id, true).await?;
    Ok(Json(UserChange {
        user: user_view(user, None),
        released: None,
    }))
}

/// `DELETE /v1/directory/users/{id}`: deactivates the user, releases their seats and leases,
/// then deletes the user and their memberships. Leases, denials and machines keep the id.
#[utoipa::path(delete, path = "/v1/directory/users/{id}", tag = TAG_ADMIN,
    security(("api_token" = [])),
    params(("id" = String, Path, description = "Directory user id")),
    responses((status = 200, description = "Deleted; what was released", body = UserDeleted),
        (status = 404, description = "No such user", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn delete_user(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<UserDeleted>> {
    caller.require(Action::ManageLicenses)?;
    // Deactivated first: while its seats are released, no named seat takes it back.
    let user = set_active(&state, &caller, &id, false).await?;
    let released = release_seats(&state, &caller, &user.id, now()).await?;
    let mut tx = state
        .db()
        .begin_directory_change(&caller.organization_id)
        .await?;
    if !dir::delete_user(&mut tx, &caller.organization_id, &user.id).await? {
        return Err(user_not_found(&id));
    }
    tx.commit().await?;
    state.db().forget_directory_links();
    Ok(Json(UserDeleted {
        id: user.id,
        released,
    }))
}
