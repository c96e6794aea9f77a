//! SCIM `Groups` (RFC 7644 §3), the directory's departments: list and search with filter and
//! pagination, read, create, replace, PATCH (members too) and delete.

use super::*;

fn group_not_found(id: &str) -> ScimError {
    ScimError::not_found(format!("no Group `{id}`"))
}

fn group_name_taken(name: &str) -> ScimError {
    ScimError::uniqueness(format!("displayName `{name}` is taken"))
}

pub(super) async fn list_groups(
    caller: ScimCaller,
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> ScimResult<Scim> {
    groups_matching(&caller, &state, &headers, ListQuery::parse(&query)?).await
}

/// `POST /Groups/.search`.
pub(super) async fn search_groups(
    caller: ScimCaller,
    State(state): State<AppState>,
    headers: HeaderMap,
    ScimJson(body): ScimJson,
) -> ScimResult<Scim> {
    groups_matching(&caller, &state, &headers, search_query(&body)?).await
}

async fn groups_matching(
    caller: &ScimCaller,
    state: &AppState,
    headers: &HeaderMap,
    list: ListQuery,
) -> ScimResult<Scim> {
    let filter = match &list.filter {
        Some(text) => filter::groups(text)?,
        None => directory::Filter::All,
    };
    let db = state.db();
    let (groups, total) = db.departments(caller.org(), &filter, list.page()).await?;
    let base = base_url(headers);
    let with_members = members_wanted(&list.attributes, &list.excluded);
    let mut resources = Vec::with_capacity(groups.len());
    for g in &groups {
        let members = if with_members {
            db.members(caller.org(), &g.id).await?
        } else {
            Vec::new()
        };
        let mut json = group_json(g, &members, &base);
        schema::project(&mut json, &list.attributes, &list.excluded);
        resources.push(json);
    }
    Ok(Scim::ok(schema::list_response(
        resources,
        total,
        list.start_index,
    )))
}

pub(super) async fn get_group(
    caller: ScimCaller,
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ScimResult<Scim> {
    let db = state.db();
    let group = db
        .department(caller.org(), &id)
        .await?
        .ok_or_else(|| group_not_found(&id))?;
    let (attributes, excluded) = projection(&query);
    let members = if members_wanted(&attributes, &excluded) {
        db.members(caller.org(), &id).await?
    } else {
        Vec::new()
    };
    let mut json = group_json(&group, &members, &base_url(&headers));
    schema::project(&mut json, &attributes, &excluded);
    Ok(Scim::resource(StatusCode::OK, json))
}

/// 400 `invalidValue` unless every id is a user of the organization.
async fn check_members(tx: &mut Tx, org: &str, ids: &[String]) -> ScimResult<()> {
    for id in ids {
        if directory::user_in(tx, org, id).await?.is_none() {
            return Err(ScimError::bad(
                ScimType::InvalidValue,
                format!("`members`: no User `{id}`"),
            ));
        }
    }
    Ok(())
}

pub(super) async fn create_group(
    caller: ScimCaller,
    State(state): State<AppState>,
    headers: HeaderMap,
    ScimJson(body): ScimJson,
) -> ScimResult<Scim> {
    let fields = schema::group_from_json(&body)?;
    let now = now();
    let group = Department {
        id: secrets::new_id("dep").map_err(ScimError::internal)?,
        organization_id: caller.org().to_owned(),
        name: fields.display_name,
        external_id: fields.external_id,
        version: 1,
        created_at: now,
        updated_at: now,
    };
    let org = caller.org();
    let mut tx = state.db().begin_directory_change(org).await?;
    check_members(&mut tx, org, &fields.members).await?;
    if !directory::insert_department(&mut tx, &group).await? {
        return Err(group_name_taken(&group.name));
    }
    directory::set_members(&mut tx, org, &group.id, &fields.members).await?;
    let members = directory::members_in(&mut tx, org, &group.id).await?;
    let stored = directory::department_in(&mut tx, org, &group.id)
        .await?
        .ok_or_else(|| ScimError::internal("the new department is not stored"))?;
    tx.commit().await?;
    // This process's client calls see the change at once (other replicas within the
    // link cache's lifetime).
    state.db().forget_directory_links();
    Ok(Scim::resource(
        StatusCode::CREATED,
        group_json(&stored, &members, &base_url(&headers)),
    ))
}

/// Stores `fields` over department `before` (read in `tx`): its name and external id, and its
/// members as the difference from `old_members` (ids).
async fn store_group(
    caller: &ScimCaller,
    mut tx: Tx,
    before: Department,
    old_members: Vec<String>,
    fields: GroupFields,
    base: &str,
) -> ScimResult<Scim> {
    let org = caller.org();
    let added: Vec<String> = fields
        .members
        .iter()
        .filter(|id| !old_members.contains(id))
        .cloned()
        .collect();
    let removed: Vec<String> = old_members
        .iter()
        .filter(|id| !fields.members.contains(id))
        .cloned()
        .collect();
    check_members(&mut tx, org, &added).await?;
    let renamed = before.name != fields.display_name || before.external_id != fields.external_id;
    if renamed || !added.is_empty() || !removed.is_empty() {
        let mut group = before;
        group.name = fields.display_name;
        group.external_id = fields.external_id;
        group.updated_at = now();
        // Also when only the members change: `meta.version` and `lastModified` move on.
        if !directory::update_department(&mut tx, &group).await? {
            return Err(group_name_taken(&group.name));
        }
        if !added.is_empty() {
            directory::add_members(&mut tx, org, &group.id, &added).await?;
        }
        if !removed.is_empty() {
            directory::remove_members(&mut tx, org, &group.id, &removed).await?;
        }
        finish_group(tx, org, &group.id, base).await
    } else {
        finish_group(tx, org, &before.id, base).await
    }
}

async fn finish_group(mut tx: Tx, org: &str, id: &str, base: &str) -> ScimResult<Scim> {
    let stored = directory::department_in(&mut tx, org, id)
        .await?
        .ok_or_else(|| group_not_found(id))?;
    let members = directory::members_in(&mut tx, org, id).await?;
    tx.commit().await?;
    Ok(Scim::resource(
        StatusCode::OK,
        group_json(&stored, &members, base),
    ))
}

pub(super) async fn replace_group(
    caller: ScimCaller,
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    ScimJson(body): ScimJson,
) -> ScimResult<Scim> {
    let fields = schema::group_from_json(&body)?;
    let org = caller.org();
    let mut tx = state.db().begin_directory_change(org).await?;
    let before = directory::department_in(&mut tx, org, &id)
        .await?
        .ok_or_else(|| group_not_found(&id))?;
    let old: Vec<String> = directory::members_in(&mut tx, org, &id)
        .await?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    store_group(&caller, tx, before, old, fields, &base_url(&headers)).await
}

pub(super) async fn patch_group(
    caller: ScimCaller,
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    ScimJson(body): ScimJson,
) -> ScimResult<Scim> {
    let operations = patch::parse_request(&body)?;
    let base = base_url(&headers);
    let org = caller.org();
    let mut tx = state.db().begin_directory_change(org).await?;
    let before = directory::department_in(&mut tx, org, &id)
        .await?
        .ok_or_else(|| group_not_found(&id))?;
    let members = directory::members_in(&mut tx, org, &id).await?;
    let mut resource = as_object(group_json(&before, &members, &base));
    patch::apply(&GROUP_SCHEMA, &mut resource, &operations)?;
    let fields = schema::group_from_json(&Value::Object(resource))?;
    let old = members.into_iter().map(|(id, _)| id).collect();
    store_group(&caller, tx, before, old, fields, &base).await
}

pub(super) async fn delete_group(
    caller: ScimCaller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ScimResult<StatusCode> {
    let mut tx = state.db().begin_directory_change(caller.org()).await?;
    if !directory::delete_department(&mut tx, caller.org(), &id).await? {
        return Err(group_not_found(&id));
    }
    tx.commit().await?;
    // This process's client calls see the change at once (other replicas within the
    // link cache's lifetime).
    state.db().forget_directory_links();
    Ok(StatusCode::NO_CONTENT)
}
