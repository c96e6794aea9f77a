//! The directory of the caller's organization (admin API): its people
//! (`/v1/directory/users`) and departments or groups (`/v1/directory/departments`), their
//! usage of the organization's licenses, and the CSV import (`/v1/directory/import`).
//!
//! Roles: license managers and admins write; IT staff may deactivate and reactivate users and
//! change department memberships; every role reads. A user or department of another
//! organization is indistinguishable from a missing one (404). Deactivating or deleting a
//! user releases their seats and leases at once ([`release_seats`]).

use axum::body::Body;
use axum::extract::Query;
use axum::http::HeaderMap;
use serde::Deserializer;

use super::super::db::directory::{
    self as dir, Department, DepartmentAttr, DirectoryUser, Filter, Page, UserAttr, Value as Is,
};
use super::super::db::{DepartmentUsage, UserUsage};
use super::super::directory_import::{self as import, FieldChange, LineOutcome};
use super::*;

/// Most rows one list answers (`count`).
const MAX_PAGE: i64 = 1_000;

/// Rows a list answers when `count` is not given.
const DEFAULT_PAGE: i64 = 100;

/// Most user ids one membership change names.
const MAX_MEMBERS_PER_CHANGE: usize = 1_000;

// ---- input types -----------------------------------------------------------------------------

/// A checked e-mail address (`directory_import::is_valid_email`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub(crate) struct Email(String);

/// What a refused e-mail address is told, after the field's name.
const EMAIL_RULE: &str = "must be an e-mail address like name@example.com (at most 254 characters)";

impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        if import::is_valid_email(&value) {
            Ok(Email(value))
        } else {
            Err(serde::de::Error::custom(EMAIL_RULE))
        }
    }
}

impl utoipa::PartialSchema for Email {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .min_length(Some(3))
            .max_length(Some(254))
            .description(Some(
                "An e-mail address: `local@domain`, one `@`, a domain of at least two labels, \
                 no white space.",
            ))
            .into()
    }
}

impl ToSchema for Email {}

/// A member given as `null` (clear it) or a value, told apart from a member left out.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

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

/// `?dry_run=` of the import.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ImportQuery {
    /// `true`: answer what would change and change nothing. Default false.
    dry_run: Option<bool>,
}

// ---- answers ---------------------------------------------------------------------------------

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

/// What deactivating or deleting a user gave back.
#[derive(Serialize, ToSchema)]
pub(crate) struct Released {
    /// Floating leases force-released (their holders' next heartbeat is refused).
    leases_released: Vec<String>,
    /// Borrowed leases left to end at their expiry.
    borrowed_kept: Vec<String>,
    /// Named-seat assignments reclaimed.
    assignments_reclaimed: u64,
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

/// The answer of deleting a department.
#[derive(Serialize, ToSchema)]
pub(crate) struct DepartmentDeleted {
    /// The deleted department's id.
    id: String,
}

/// The answer of `POST /v1/directory/import`.
#[derive(Serialize, ToSchema)]
pub(crate) struct ImportReport {
    /// `true`: nothing was changed; this is what the import would do.
    dry_run: bool,
    /// Users created, changed, left unchanged.
    created: usize,
    changed: usize,
    unchanged: usize,
    /// Departments created (named in `groups` and missing), first spelling in the file.
    departments_created: Vec<String>,
    /// Each user line in file order: what happens to it, and each field changed (old and new).
    lines: Vec<LineOutcome>,
}

// ---- shared helpers --------------------------------------------------------------------------

fn user_not_found(id: &str) -> ApiError {
    ApiError::not_found(
        ErrorCode::UserNotFound,
        format!(
            "no directory user `{}`",
            id.chars().take(128).collect::<String>()
        ),
    )
}

fn department_not_found(id: &str) -> ApiError {
    ApiError::not_found(
        ErrorCode::DepartmentNotFound,
        format!(
            "no department `{}`",
            id.chars().take(128).collect::<String>()
        ),
    )
}

fn user_exists(name: &str) -> ApiError {
    ApiError::conflict(
        ErrorCode::UserExists,
        format!("the organization has a user named `{name}` already (names ignore case)"),
    )
}

fn department_exists(name: &str) -> ApiError {
    ApiError::conflict(
        ErrorCode::DepartmentExists,
        format!("the organization has a department named `{name}` already (names ignore case)"),
    )
}

fn page(start: Option<i64>, count: Option<i64>) -> ApiResult<Page> {
    let start = start.unwrap_or(0);
    let count = count.unwrap_or(DEFAULT_PAGE);
    if start < 0 {
        return Err(ApiError::invalid(
            ErrorCode::InvalidField,
            "`start` must be 0 or more",
        ));
    }
    if !(1..=MAX_PAGE).contains(&count) {
        return Err(ApiError::invalid(
            ErrorCode::InvalidField,
            format!("`count` must be between 1 and {MAX_PAGE}"),
        ));
    }
    Ok(Page { start, count })
}

/// A filter's text: 1 to 200 characters without control characters.
fn filter_text(field: &str, value: String) -> ApiResult<String> {
    DisplayName::check(field, &value)?;
    Ok(value)
}

fn and<A>(filter: Filter<A>, next: Filter<A>) -> Filter<A> {
    match filter {
        Filter::All => next,
        filter => Filter::And(Box::new(filter), Box::new(next)),
    }
}

async fn user_of(state: &AppState, caller: &Caller, id: &str) -> ApiResult<DirectoryUser> {
    state
        .db()
        .user(&caller.organization_id, id)
        .await?
        .ok_or_else(|| user_not_found(id))
}

async fn department_of(state: &AppState, caller: &Caller, id: &str) -> ApiResult<Department> {
    state
        .db()
        .department(&caller.organization_id, id)
        .await?
        .ok_or_else(|| department_not_found(id))
}

/// Releases every seat and lease of directory user `user_id` (deactivated or about to be
/// deleted): `deprovision::user`, the one deprovisioning path (SCIM's too). Its leases are
/// force-released (fenced: the app's next heartbeat is refused) and its seat assignments
/// reclaimed.
async fn release_seats(
    state: &AppState,
    caller: &Caller,
    user_id: &str,
    now: i64,
) -> ApiResult<Released> {
    let done = super::super::deprovision::user(
        state,
        &caller.organization_id,
        user_id,
        now,
        &caller.token_id,
    )
    .await?;
    Ok(Released {
        leases_released: done
            .leases_released
            .into_iter()
            .map(|l| l.lease_id)
            .collect(),
        borrowed_kept: done.borrowed_kept.into_iter().map(|l| l.lease_id).collect(),
        assignments_reclaimed: done.assignments_reclaimed,
    })
}

// ---- users -----------------------------------------------------------------------------------

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
    let mut filter = Filter::All;
    for (attr, field, value) in [
        (UserAttr::UserName, "user_name", query.user_name),
        (UserAttr::Email, "email", query.email),
        (UserAttr::ExternalId, "external_id", query.external_id),
        (UserAttr::Department, "department", query.department),
    ] {
        if let Some(value) = value {
            filter = and(
                filter,
                Filter::Eq(attr, Is::Text(filter_text(field, value)?)),
            );
        }
    }
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

// ---- departments -----------------------------------------------------------------------------

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
    let mut filter = Filter::All;
    for (attr, field, value) in [
        (DepartmentAttr::Name, "name", query.name),
        (DepartmentAttr::ExternalId, "external_id", query.external_id),
    ] {
        if let Some(value) = value {
            filter = and(
                filter,
                Filter::Eq(attr, Is::Text(filter_text(field, value)?)),
            );
        }
    }
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

// ---- CSV import ------------------------------------------------------------------------------

/// `POST /v1/directory/import?dry_run=true|false`: upserts users from a CSV file
/// (`Content-Type: text/csv`, at most 10 MiB and 100 000 rows). Header row: any of
/// `user_name,display_name,email,external_id,active,department,groups` (`user_name` required);
/// a column left out leaves that field as it is, an empty cell clears it; `groups` lists
/// department names separated by `;` (the user's memberships become exactly those, missing
/// departments are created). Strict: an unknown column or a bad row is a 422 naming the line
/// and the column, and nothing is imported (one transaction). The answer reports each line:
/// created, changed (each field's old and new value) or unchanged. A dry run changes nothing.
/// Users the file deactivates have their seats released.
#[utoipa::path(post, path = "/v1/directory/import", tag = TAG_ADMIN,
    security(("api_token" = [])),
    params(ImportQuery),
    responses((status = 200, description = "What the import did (or would do)", body = ImportReport),
        (status = 413, description = "The file is larger than 10 MiB", body = ErrorBody),
        (status = 415, description = "The body is not `text/csv`", body = ErrorBody),
        (status = 422, description = "An unknown column or a bad row; `detail` names the line and column", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn import_directory(
    caller: Caller,
    State(state): State<AppState>,
    Query(query): Query<ImportQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<ImportReport>> {
    caller.require(Action::ManageLicenses)?;
    let essence = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim();
    if !essence.eq_ignore_ascii_case("text/csv") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            "the body must be CSV with `Content-Type: text/csv`",
        ));
    }
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|len| len > import::MAX_IMPORT_BYTES as u64) {
        return Err(import::too_large());
    }
    let bytes = axum::body::to_bytes(body, import::MAX_IMPORT_BYTES)
        .await
        .map_err(|_| import::too_large())?;
    let rows = import::parse(&bytes)?;
    let dry_run = query.dry_run.unwrap_or(false);
    let now = now();
    let org = &caller.organization_id;
    // A dry run reads without the organization's write lock.
    let mut tx = if dry_run {
        state.db().begin_directory_read().await?
    } else {
        state.db().begin_directory_change(org).await?
    };
    let (users, _) = dir::users_in(
        &mut tx,
        org,
        &Filter::All,
        Page {
            start: 0,
            count: i64::MAX,
        },
    )
    .await?;
    let (departments, _) = dir::departments_in(
        &mut tx,
        org,
        &Filter::All,
        Page {
            start: 0,
            count: i64::MAX,
        },
    )
    .await?;
    let memberships = db::memberships_in(&mut tx, org).await?;
    let names: std::collections::HashMap<&str, &str> = departments
        .iter()
        .map(|d| (d.id.as_str(), d.name.as_str()))
        .collect();
    let mut groups: std::collections::HashMap<&str, Vec<String>> = std::collections::HashMap::new();
    for (user_id, department_id) in &memberships {
        if let Some(name) = names.get(department_id.as_str()) {
            groups
                .entry(user_id.as_str())
                .or_default()
                .push((*name).to_owned());
        }
    }
    let current: std::collections::HashMap<String, import::Current> = users
        .iter()
        .map(|u| {
            let mut member_of = groups.remove(u.id.as_str()).unwrap_or_default();
            member_of.sort_by_key(|g| g.to_lowercase());
            (
                dir::name_key(&u.user_name),
                import::Current {
                    user_name: u.user_name.clone(),
                    display_name: u.display_name.clone(),
                    email: u.email.clone(),
                    external_id: u.external_id.clone(),
                    active: u.active,
                    department: u.department.clone(),
                    groups: member_of,
                },
            )
        })
        .collect();
    let known: std::collections::BTreeSet<String> =
        departments.iter().map(|d| dir::name_key(&d.name)).collect();
    let plan = import::plan(&rows, &current, &known);
    let count = |action: &str| plan.lines.iter().filter(|l| l.action == action).count();
    let report = ImportReport {
        dry_run,
        created: count("created"),
        changed: count("changed"),
        unchanged: count("unchanged"),
        departments_created: plan.new_departments.clone(),
        lines: plan.lines.clone(),
    };
    if dry_run {
        // Nothing written: the transaction is rolled back as it is dropped.
        return Ok(Json(report));
    }
    // Departments first, then each created or changed user, then their memberships.
    let mut department_ids: std::collections::HashMap<String, String> = departments
        .iter()
        .map(|d| (dir::name_key(&d.name), d.id.clone()))
        .collect();
    for name in &plan.new_departments {
        let department = Department {
            id: secrets::new_id("dep").map_err(internal)?,
            organization_id: org.clone(),
            name: name.clone(),
            external_id: None,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        if !dir::insert_department(&mut tx, &department).await? {
            return Err(ApiError::internal("a department planned new exists"));
        }
        department_ids.insert(dir::name_key(name), department.id);
    }
    let ids: std::collections::HashMap<String, &DirectoryUser> = users
        .iter()
        .map(|u| (dir::name_key(&u.user_name), u))
        .collect();
    let mut created = Vec::new();
    let mut changed = Vec::new();
    let mut regrouped = Vec::new();
    let mut memberships = Vec::new();
    let mut deactivated = Vec::new();
    for (line, after) in plan.lines.iter().zip(&plan.after) {
        let Some(after) = after else { continue };
        let existing = ids.get(&dir::name_key(&after.user_name));
        let user = DirectoryUser {
            id: match existing {
                Some(existing) => existing.id.clone(),
                None => secrets::new_id("usr").map_err(internal)?,
            },
            organization_id: org.clone(),
            user_name: after.user_name.clone(),
            display_name: after.display_name.clone(),
            email: after.email.clone(),
            external_id: after.external_id.clone(),
            active: after.active,
            department: after.department.clone(),
            version: 1,
            created_at: existing.map_or(now, |e| e.created_at),
            updated_at: now,
        };
        if line
            .changes
            .iter()
            .any(|c: &FieldChange| c.field == "groups")
        {
            // A new user has no memberships to replace.
            if existing.is_some() {
                regrouped.push(user.id.clone());
            }
            for group in &after.groups {
                let department = department_ids
                    .get(&dir::name_key(group))
                    .ok_or_else(|| ApiError::internal("a planned department is missing"))?;
                memberships.push((user.id.clone(), department.clone()));
            }
        }
        if existing.is_some_and(|e| e.active) && !user.active {
            deactivated.push(user.id.clone());
        }
        if existing.is_some() {
            changed.push(user);
        } else {
            created.push(user);
        }
    }
    // Many rows per statement: one per row took longer than a request may on PostgreSQL.
    let stored = db::insert_users_in(&mut tx, &created).await?;
    let updated = db::update_users_in(&mut tx, org, &changed).await?;
    if stored != created.len() as u64 || updated != changed.len() as u64 {
        return Err(ApiError::internal(
            "the import's users could not all be stored as planned",
        ));
    }
    db::replace_memberships_in(&mut tx, org, &regrouped, &memberships).await?;
    tx.commit().await?;
    state.db().forget_directory_links();
    for user_id in deactivated {
        release_seats(&state, &caller, &user_id, now).await?;
    }
    Ok(Json(report))
}
