//! The directory's CSV import (`POST /v1/directory/import`): the handler; parsing and the
//! rules of a line live in `directory_import.rs`.

use super::*;

/// `?dry_run=` of the import.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ImportQuery {
    /// `true`: answer what would change and change nothing. Default false.
    dry_run: Option<bool>,
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
