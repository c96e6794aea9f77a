//! SCIM `Users` (RFC 7644 §3): list and search with filter and pagination, read, create,
//! replace, PATCH and delete. A user made inactive or deleted is deprovisioned: its seats and
//! leases are released.

use super::*;

fn user_not_found(id: &str) -> ScimError {
    ScimError::not_found(format!("no User `{id}`"))
}

fn user_name_taken(name: &str) -> ScimError {
    ScimError::uniqueness(format!("userName `{name}` is taken"))
}

pub(super) async fn list_users(
    caller: ScimCaller,
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> ScimResult<Scim> {
    users_matching(&caller, &state, &headers, ListQuery::parse(&query)?).await
}

/// `POST /Users/.search`.
pub(super) async fn search_users(
    caller: ScimCaller,
    State(state): State<AppState>,
    headers: HeaderMap,
    ScimJson(body): ScimJson,
) -> ScimResult<Scim> {
    users_matching(&caller, &state, &headers, search_query(&body)?).await
}

async fn users_matching(
    caller: &ScimCaller,
    state: &AppState,
    headers: &HeaderMap,
    list: ListQuery,
) -> ScimResult<Scim> {
    let filter = match &list.filter {
        Some(text) => filter::users(text)?,
        None => directory::Filter::All,
    };
    let (users, total) = state.db().users(caller.org(), &filter, list.page()).await?;
    let base = base_url(headers);
    let resources = users
        .iter()
        .map(|u| {
            let mut json = user_json(u, &base);
            schema::project(&mut json, &list.attributes, &list.excluded);
            json
        })
        .collect();
    Ok(Scim::ok(schema::list_response(
        resources,
        total,
        list.start_index,
    )))
}

pub(super) async fn get_user(
    caller: ScimCaller,
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ScimResult<Scim> {
    let user = state
        .db()
        .user(caller.org(), &id)
        .await?
        .ok_or_else(|| user_not_found(&id))?;
    let mut json = user_json(&user, &base_url(&headers));
    let (attributes, excluded) = projection(&query);
    schema::project(&mut json, &attributes, &excluded);
    Ok(Scim::resource(StatusCode::OK, json))
}

pub(super) async fn create_user(
    caller: ScimCaller,
    State(state): State<AppState>,
    headers: HeaderMap,
    ScimJson(body): ScimJson,
) -> ScimResult<Scim> {
    let fields = schema::user_from_json(&body)?;
    let now = now();
    let user = DirectoryUser {
        id: secrets::new_id("usr").map_err(ScimError::internal)?,
        organization_id: caller.org().to_owned(),
        user_name: fields.user_name,
        display_name: fields.display_name,
        email: fields.email,
        external_id: fields.external_id,
        active: fields.active,
        department: fields.department,
        version: 1,
        created_at: now,
        updated_at: now,
    };
    let mut tx = state.db().begin_directory_change(caller.org()).await?;
    if !directory::insert_user(&mut tx, &user).await? {
        return Err(user_name_taken(&user.user_name));
    }
    let stored = directory::user_in(&mut tx, caller.org(), &user.id)
        .await?
        .ok_or_else(|| ScimError::internal("the new user is not stored"))?;
    tx.commit().await?;
    // This process's client calls see the change at once (other replicas within the
    // link cache's lifetime).
    state.db().forget_directory_links();
    Ok(Scim::resource(
        StatusCode::CREATED,
        user_json(&stored, &base_url(&headers)),
    ))
}

/// Stores `fields` over user `id` (read in `tx`, which the caller opened), deprovisioning the
/// user after the commit when it goes from active to inactive.
async fn store_user(
    state: &AppState,
    caller: &ScimCaller,
    mut tx: Tx,
    before: DirectoryUser,
    fields: UserFields,
    base: &str,
) -> ScimResult<Scim> {
    let was_active = before.active;
    let unchanged = user_fields(&before) == fields;
    let mut user = before;
    if !unchanged {
        user.user_name = fields.user_name;
        user.display_name = fields.display_name;
        user.email = fields.email;
        user.external_id = fields.external_id;
        user.active = fields.active;
        user.department = fields.department;
        user.updated_at = now();
        if !directory::update_user(&mut tx, &user).await? {
            return Err(user_name_taken(&user.user_name));
        }
    }
    let stored = directory::user_in(&mut tx, caller.org(), &user.id)
        .await?
        .ok_or_else(|| user_not_found(&user.id))?;
    tx.commit().await?;
    // This process's client calls see the change at once (other replicas within the
    // link cache's lifetime).
    state.db().forget_directory_links();
    if was_active && !stored.active {
        // After the commit: the releases take each license's write lock, which the directory's
        // transaction must not hold at the same time (SQLite has one write lock).
        deprovision::user(state, caller.org(), &stored.id, now(), &caller.actor()).await?;
    }
    Ok(Scim::resource(StatusCode::OK, user_json(&stored, base)))
}

pub(super) async fn replace_user(
    caller: ScimCaller,
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    ScimJson(body): ScimJson,
) -> ScimResult<Scim> {
    let fields = schema::user_from_json(&body)?;
    let mut tx = state.db().begin_directory_change(caller.org()).await?;
    let before = directory::user_in(&mut tx, caller.org(), &id)
        .await?
        .ok_or_else(|| user_not_found(&id))?;
    store_user(&state, &caller, tx, before, fields, &base_url(&headers)).await
}

pub(super) async fn patch_user(
    caller: ScimCaller,
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    ScimJson(body): ScimJson,
) -> ScimResult<Scim> {
    let operations = patch::parse_request(&body)?;
    let base = base_url(&headers);
    let mut tx = state.db().begin_directory_change(caller.org()).await?;
    let before = directory::user_in(&mut tx, caller.org(), &id)
        .await?
        .ok_or_else(|| user_not_found(&id))?;
    let mut resource = as_object(user_json(&before, &base));
    patch::apply(&USER_SCHEMA, &mut resource, &operations)?;
    let fields = schema::user_from_json(&Value::Object(resource))?;
    store_user(&state, &caller, tx, before, fields, &base).await
}

pub(super) async fn delete_user(
    caller: ScimCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ScimResult<StatusCode> {
    // First what the user holds (404 when there is no such user), then the user.
    deprovision::user(&state, caller.org(), &id, now(), &caller.actor())
        .await
        .map_err(|e| {
            if e.status() == StatusCode::NOT_FOUND {
                user_not_found(&id)
            } else {
                e.into()
            }
        })?;
    let mut tx = state.db().begin_directory_change(caller.org()).await?;
    if !directory::delete_user(&mut tx, caller.org(), &id).await? {
        return Err(user_not_found(&id));
    }
    tx.commit().await?;
    // This process's client calls see the change at once (other replicas within the
    // link cache's lifetime).
    state.db().forget_directory_links();
    Ok(StatusCode::NO_CONTENT)
}
