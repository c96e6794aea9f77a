//! The directory's admin API (`/v1/directory/...`): users and departments, roles and tenants,
//! the CSV import, client calls linked to directory users, and usage per user and department.

use super::*;

/// A second organization with an admin token, and role tokens of the operator organization.
struct Tokens {
    license_manager: String,
    it_staff: String,
    other_admin: String,
}

async fn tokens(state: &AppState) -> Tokens {
    let mut minted = Vec::new();
    for role in ["license_manager", "it_staff"] {
        let (status, t) = call(
            state,
            "POST",
            "/v1/api-tokens",
            Some(ADMIN),
            Some(json!({ "role": role, "label": role })),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{t}");
        minted.push(t["secret"].as_str().unwrap().to_owned());
    }
    let (status, created) = call(
        state,
        "POST",
        "/v1/organizations",
        Some(ADMIN),
        Some(json!({ "name": "Contoso" })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    Tokens {
        it_staff: minted.pop().unwrap(),
        license_manager: minted.pop().unwrap(),
        other_admin: created["admin_token"].as_str().unwrap().to_owned(),
    }
}

/// A request with a body of any content type (the import takes CSV).
async fn send(
    state: &AppState,
    path: &str,
    token: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let request = axum::http::Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", content_type)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from(body))
        .unwrap();
    let response = router(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

pub(super) async fn create_user(state: &AppState, token: &str, body: Value) -> (StatusCode, Value) {
    call(
        state,
        "POST",
        "/v1/directory/users",
        Some(token),
        Some(body),
    )
    .await
}

pub(super) fn refused_naming(status: StatusCode, body: &Value, field: &str) {
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"], "invalid_field", "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("`{field}`")),
        "{body}"
    );
}

/// Users: created, read, listed with filters and pages, changed, deactivated, reactivated and
/// deleted; names unique without regard to case; bad input refused naming the field.
#[tokio::test]
async fn directory_users_are_managed_through_the_admin_api() {
    users_on(None).await;
    if let Some(url) = postgres::fresh_database("directory_users_are_managed") {
        users_on(Some(&url)).await;
    }
}

async fn users_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    let (status, alice) = create_user(
        &state,
        ADMIN,
        json!({ "user_name": "Alice.Smith", "display_name": "Alice Smith",
                "email": "alice@example.com", "external_id": "idp-1", "department": "R&D" }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{alice}");
    assert_eq!(alice["active"], true);
    assert_eq!(alice["version"], 1);
    let alice_id = alice["id"].as_str().unwrap().to_owned();
    let (status, body) = create_user(&state, ADMIN, json!({ "user_name": "alice.smith" })).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("user_exists")),
        "{body}"
    );
    for (body, field) in [
        (
            json!({ "user_name": "bob", "email": "not-an-address" }),
            "email",
        ),
        (
            json!({ "user_name": "bob", "email": "bob@example" }),
            "email",
        ),
        (json!({ "user_name": "b\u{1b}[2Job" }), "user_name"),
        (json!({ "user_name": "" }), "user_name"),
        (
            json!({ "user_name": "bob", "display_name": "x".repeat(201) }),
            "display_name",
        ),
        (json!({ "user_name": "bob", "active": "yes" }), "active"),
    ] {
        let (status, answer) = create_user(&state, ADMIN, body).await;
        refused_naming(status, &answer, field);
    }
    let (status, body) =
        create_user(&state, ADMIN, json!({ "user_name": "bob", "phone": "1" })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    for n in 0..5 {
        let (status, body) = create_user(
            &state,
            ADMIN,
            json!({ "user_name": format!("user{n}"), "active": n % 2 == 0 }),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    // Lists: by user name, filtered, paged.
    let state_ref = &state;
    let list = |query: &str| {
        let path = format!("/v1/directory/users{query}");
        async move { call(state_ref, "GET", &path, Some(AUDITOR), None).await }
    };
    let (status, page) = list("?count=2").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["total"], 6);
    let names: Vec<&str> = page["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Alice.Smith", "user0"]);
    let (_, page) = list("?start=5&count=2").await;
    assert_eq!(page["users"].as_array().unwrap().len(), 1, "{page}");
    let (_, page) = list("?active=false").await;
    assert_eq!(page["total"], 2, "{page}");
    let (_, page) = list("?user_name=ALICE.SMITH").await;
    assert_eq!(page["users"][0]["id"], alice_id.as_str(), "{page}");
    let (_, page) = list("?q=smith").await;
    assert_eq!(page["total"], 1, "{page}");
    let (_, page) = list("?email=Alice@Example.com").await;
    assert_eq!(page["total"], 1, "{page}");
    let (status, body) = list("?count=0").await;
    refused_naming(status, &body, "count");
    let (status, body) = list("?count=1001").await;
    refused_naming(status, &body, "count");
    let (status, body) = list("?start=-1").await;
    refused_naming(status, &body, "start");
    let (status, _) = list("?colour=red").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Changes: members given change, `null` clears, a rename onto a taken name is refused.
    let path = format!("/v1/directory/users/{alice_id}");
    let (status, changed) = call(
        &state,
        "PATCH",
        &path,
        Some(ADMIN),
        Some(json!({ "display_name": "Alice S.", "email": null })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["display_name"], "Alice S.");
    assert!(changed.get("email").is_none(), "{changed}");
    assert_eq!(changed["external_id"], "idp-1");
    assert_eq!(changed["version"], 2);
    let (status, body) = call(
        &state,
        "PATCH",
        &path,
        Some(ADMIN),
        Some(json!({ "user_name": "USER1" })),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("user_exists")),
        "{body}"
    );
    let (status, body) = call(
        &state,
        "PATCH",
        &path,
        Some(ADMIN),
        Some(json!({ "email": "x@@y" })),
    )
    .await;
    refused_naming(status, &body, "email");
    let (status, body) = call(
        &state,
        "PATCH",
        &path,
        Some(ADMIN),
        Some(json!({ "active": false })),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "active is not patched: {body}"
    );

    // Deactivate, reactivate (idempotent), delete.
    let (status, body) = call(
        &state,
        "POST",
        &format!("{path}/deactivate"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["active"], false);
    assert!(body["released"].is_object(), "{body}");
    let (status, body) = call(
        &state,
        "POST",
        &format!("{path}/deactivate"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(
        (status, &body["user"]["version"]),
        (StatusCode::OK, &json!(3)),
        "{body}"
    );
    let (status, body) = call(
        &state,
        "POST",
        &format!("{path}/reactivate"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["active"], true);
    let (status, body) = call(&state, "DELETE", &path, Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], alice_id.as_str());
    for method in ["GET", "DELETE", "PATCH"] {
        let (status, body) = call(&state, method, &path, Some(ADMIN), Some(json!({}))).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::NOT_FOUND, Some("user_not_found")),
            "{method}: {body}"
        );
    }
}

/// Departments: created, renamed, members added and removed, listed; deleted with their
/// memberships; a user's answer names its departments.
#[tokio::test]
async fn departments_and_their_members_are_managed() {
    departments_on(None).await;
    if let Some(url) = postgres::fresh_database("departments_and_their_members") {
        departments_on(Some(&url)).await;
    }
}

async fn departments_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    let (_, alice) = create_user(&state, ADMIN, json!({ "user_name": "alice" })).await;
    let (_, bob) = create_user(&state, ADMIN, json!({ "user_name": "bob" })).await;
    let (alice, bob) = (alice["id"].as_str().unwrap(), bob["id"].as_str().unwrap());
    let (status, eng) = call(
        &state,
        "POST",
        "/v1/directory/departments",
        Some(ADMIN),
        Some(json!({ "name": "Engineering" })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{eng}");
    let eng = eng["id"].as_str().unwrap().to_owned();
    let (status, body) = call(
        &state,
        "POST",
        "/v1/directory/departments",
        Some(ADMIN),
        Some(json!({ "name": "ENGINEERING" })),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("department_exists")),
        "{body}"
    );
    let (status, body) = call(
        &state,
        "POST",
        "/v1/directory/departments",
        Some(ADMIN),
        Some(json!({ "name": "\u{202e}gne" })),
    )
    .await;
    refused_naming(status, &body, "name");

    let members = format!("/v1/directory/departments/{eng}/members");
    let (status, body) = call(
        &state,
        "POST",
        &members,
        Some(ADMIN),
        Some(json!({ "user_ids": [alice, bob] })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["members"].as_array().unwrap().len(), 2, "{body}");
    let (status, body) = call(
        &state,
        "POST",
        &members,
        Some(ADMIN),
        Some(json!({ "user_ids": [alice, "usr_nobody"] })),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("user_not_found")),
        "{body}"
    );
    let (status, body) = call(
        &state,
        "POST",
        &members,
        Some(ADMIN),
        Some(json!({ "user_ids": [] })),
    )
    .await;
    refused_naming(status, &body, "user_ids");
    let (_, user) = call(
        &state,
        "GET",
        &format!("/v1/directory/users/{alice}"),
        Some(AUDITOR),
        None,
    )
    .await;
    assert_eq!(
        user["departments"],
        json!([{ "id": eng, "name": "Engineering" }])
    );
    let (status, body) = call(
        &state,
        "DELETE",
        &format!("{members}/{bob}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["members"],
        json!([{ "user_id": alice, "user_name": "alice" }])
    );
    let (status, _) = call(
        &state,
        "DELETE",
        &format!("{members}/{bob}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "bob is no member any more");

    // Rename, list, filter by member.
    let path = format!("/v1/directory/departments/{eng}");
    let (status, body) = call(
        &state,
        "PATCH",
        &path,
        Some(ADMIN),
        Some(json!({ "name": "R&D", "external_id": "grp-7" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (&body["name"], &body["version"]),
        (&json!("R&D"), &json!(2))
    );
    let (_, list) = call(
        &state,
        "GET",
        &format!("/v1/directory/departments?member={alice}"),
        Some(AUDITOR),
        None,
    )
    .await;
    assert_eq!(list["total"], 1, "{list}");
    let (_, list) = call(
        &state,
        "GET",
        &format!("/v1/directory/departments?member={bob}"),
        Some(AUDITOR),
        None,
    )
    .await;
    assert_eq!(list["total"], 0, "{list}");
    let (_, one) = call(&state, "GET", &path, Some(AUDITOR), None).await;
    assert_eq!(one["members"], 1, "{one}");
    let (status, _) = call(&state, "DELETE", &path, Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::OK);
    let (_, user) = call(
        &state,
        "GET",
        &format!("/v1/directory/users/{alice}"),
        Some(AUDITOR),
        None,
    )
    .await;
    assert_eq!(user["departments"], json!([]), "memberships go with it");
    let (status, body) = call(&state, "GET", &members, Some(AUDITOR), None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("department_not_found")),
        "{body}"
    );
}

/// The attack: each role does what the table allows and no more, and another organization's
/// users and departments are 404 on every route, including adding them as members.
#[tokio::test]
async fn directory_roles_and_tenants_hold() {
    roles_on(None).await;
    if let Some(url) = postgres::fresh_database("directory_roles_and_tenants") {
        roles_on(Some(&url)).await;
    }
}

async fn roles_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    let t = tokens(&state).await;
    // Writes: license managers create; IT staff and auditors may not (403 before the body).
    for token in [AUDITOR, t.it_staff.as_str()] {
        let (status, body) = create_user(&state, token, json!({ "user_name": "x" })).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        let (status, _) = call(
            &state,
            "POST",
            "/v1/directory/users",
            Some(token),
            Some(json!({ "bad": true })),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "the role before the body");
        let (status, _) = send(
            &state,
            "/v1/directory/import",
            token,
            "text/csv",
            b"user_name\nx\n".to_vec(),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let (status, user) =
        create_user(&state, &t.license_manager, json!({ "user_name": "carol" })).await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    let user = user["id"].as_str().unwrap().to_owned();
    let (status, dep) = call(
        &state,
        "POST",
        "/v1/directory/departments",
        Some(&t.license_manager),
        Some(json!({ "name": "Sales" })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{dep}");
    let dep = dep["id"].as_str().unwrap().to_owned();
    // IT staff: (de)activate and memberships, not edit or delete.
    let user_path = format!("/v1/directory/users/{user}");
    let members = format!("/v1/directory/departments/{dep}/members");
    for (method, path, body, expected) in [
        (
            "POST",
            format!("{user_path}/deactivate"),
            None,
            StatusCode::OK,
        ),
        (
            "POST",
            format!("{user_path}/reactivate"),
            None,
            StatusCode::OK,
        ),
        (
            "POST",
            members.clone(),
            Some(json!({ "user_ids": [user] })),
            StatusCode::OK,
        ),
        ("DELETE", format!("{members}/{user}"), None, StatusCode::OK),
        (
            "PATCH",
            user_path.clone(),
            Some(json!({ "display_name": "C" })),
            StatusCode::FORBIDDEN,
        ),
        ("DELETE", user_path.clone(), None, StatusCode::FORBIDDEN),
        (
            "PATCH",
            format!("/v1/directory/departments/{dep}"),
            Some(json!({ "name": "S" })),
            StatusCode::FORBIDDEN,
        ),
        (
            "DELETE",
            format!("/v1/directory/departments/{dep}"),
            None,
            StatusCode::FORBIDDEN,
        ),
    ] {
        let (status, answer) = call(&state, method, &path, Some(&t.it_staff), body).await;
        assert_eq!(status, expected, "it_staff {method} {path}: {answer}");
    }
    // Auditors read everything, change nothing.
    for path in [
        user_path.clone(),
        format!("{user_path}/usage"),
        "/v1/directory/users".to_owned(),
        "/v1/directory/departments".to_owned(),
        format!("/v1/directory/departments/{dep}"),
        members.clone(),
        format!("/v1/directory/departments/{dep}/usage"),
    ] {
        let (status, body) = call(&state, "GET", &path, Some(AUDITOR), None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    for (method, path) in [
        ("POST", format!("{user_path}/deactivate")),
        ("POST", members.clone()),
        ("DELETE", format!("{members}/{user}")),
    ] {
        let (status, _) = call(
            &state,
            method,
            &path,
            Some(AUDITOR),
            Some(json!({ "user_ids": [user] })),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "auditor {method} {path}");
    }

    // Another organization: nothing of this one is visible or reachable.
    let b = t.other_admin.as_str();
    for path in ["/v1/directory/users", "/v1/directory/departments"] {
        let (status, body) = call(&state, "GET", path, Some(b), None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["total"], 0, "{path} leaks: {body}");
    }
    for (method, path) in [
        ("GET", user_path.clone()),
        ("GET", format!("{user_path}/usage")),
        ("PATCH", user_path.clone()),
        ("DELETE", user_path.clone()),
        ("POST", format!("{user_path}/deactivate")),
        ("POST", format!("{user_path}/reactivate")),
        ("GET", format!("/v1/directory/departments/{dep}")),
        ("PATCH", format!("/v1/directory/departments/{dep}")),
        ("DELETE", format!("/v1/directory/departments/{dep}")),
        ("GET", members.clone()),
        ("POST", members.clone()),
        ("DELETE", format!("{members}/{user}")),
        ("GET", format!("/v1/directory/departments/{dep}/usage")),
    ] {
        let body = if path == members {
            json!({ "user_ids": [user] })
        } else {
            json!({})
        };
        let (status, body) = call(&state, method, &path, Some(b), Some(body)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {body}");
    }
    // B's own department cannot take A's user as a member.
    let (_, dep_b) = call(
        &state,
        "POST",
        "/v1/directory/departments",
        Some(b),
        Some(json!({ "name": "Sales" })),
    )
    .await;
    let (status, body) = call(
        &state,
        "POST",
        &format!(
            "/v1/directory/departments/{}/members",
            dep_b["id"].as_str().unwrap()
        ),
        Some(b),
        Some(json!({ "user_ids": [user] })),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("user_not_found")),
        "{body}"
    );
    // And B may have a user of the same name: names are unique per organization.
    let (status, _) = create_user(&state, b, json!({ "user_name": "CAROL" })).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, a_user) = call(&state, "GET", &user_path, Some(ADMIN), None).await;
    assert_eq!(a_user["user_name"], "carol", "A's user is untouched");
}

/// The CSV import: a dry run reports line by line and changes nothing; the import creates,
/// changes and leaves users as reported, creating missing departments; a bad file changes
/// nothing and names its line and column.
#[tokio::test]
async fn the_csv_import_reports_and_applies_line_by_line() {
    import_on(None).await;
    if let Some(url) = postgres::fresh_database("the_csv_import_reports") {
        import_on(Some(&url)).await;
    }
}

async fn import_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    let (_, alice) = create_user(
        &state,
        ADMIN,
        json!({ "user_name": "alice", "display_name": "Alice", "email": "alice@example.com" }),
    )
    .await;
    let (_, bob) = create_user(
        &state,
        ADMIN,
        json!({ "user_name": "bob", "display_name": "Bob" }),
    )
    .await;
    let (_, eng) = call(
        &state,
        "POST",
        "/v1/directory/departments",
        Some(ADMIN),
        Some(json!({ "name": "Eng" })),
    )
    .await;
    let file = "user_name,display_name,email,external_id,active,department,groups\n\
                alice,Alice,alice@example.com,,,,\n\
                BOB,Bob B,,idp-2,false,Sales,eng;Sales\n\
                carol,Carol,carol@example.com,idp-3,true,,Sales\n";
    let import = |dry: bool, body: &str| {
        let path = format!("/v1/directory/import?dry_run={dry}");
        let body = body.as_bytes().to_vec();
        let state = &state;
        async move { send(state, &path, ADMIN, "text/csv; charset=utf-8", body).await }
    };
    let users = || async {
        let (_, list) = call(&state, "GET", "/v1/directory/users", Some(ADMIN), None).await;
        list
    };
    let before = users().await;
    let (status, report) = import(true, file).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["dry_run"], true);
    assert_eq!(
        (&report["created"], &report["changed"], &report["unchanged"]),
        (&json!(1), &json!(1), &json!(1)),
        "{report}"
    );
    assert_eq!(report["departments_created"], json!(["Sales"]));
    assert_eq!(report["lines"][0]["action"], "unchanged");
    assert_eq!(report["lines"][1]["line"], 3);
    assert_eq!(report["lines"][1]["action"], "changed");
    assert_eq!(
        report["lines"][1]["changes"],
        json!([
            { "field": "user_name", "old": "bob", "new": "BOB" },
            { "field": "display_name", "old": "Bob", "new": "Bob B" },
            { "field": "external_id", "old": null, "new": "idp-2" },
            { "field": "active", "old": "true", "new": "false" },
            { "field": "department", "old": null, "new": "Sales" },
            { "field": "groups", "old": null, "new": "eng;Sales" },
        ]),
        "{report}"
    );
    assert_eq!(report["lines"][2]["action"], "created");
    assert_eq!(users().await, before, "a dry run changes nothing");
    let (_, deps) = call(
        &state,
        "GET",
        "/v1/directory/departments",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(deps["total"], 1, "{deps}");

    let (status, applied) = import(false, file).await;
    assert_eq!(status, StatusCode::OK, "{applied}");
    assert_eq!(applied["dry_run"], false);
    assert_eq!(
        applied["lines"], report["lines"],
        "the import does what the dry run said"
    );
    let bob_id = bob["id"].as_str().unwrap();
    let (_, bob) = call(
        &state,
        "GET",
        &format!("/v1/directory/users/{bob_id}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(bob["user_name"], "BOB");
    assert_eq!(bob["active"], false);
    assert_eq!(bob["external_id"], "idp-2");
    let groups: Vec<&str> = bob["departments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(groups, ["Eng", "Sales"], "{bob}");
    assert_eq!(bob["departments"][0]["id"], eng["id"]);
    let (_, carol) = call(
        &state,
        "GET",
        "/v1/directory/users?user_name=carol",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(carol["users"][0]["email"], "carol@example.com", "{carol}");
    let alice_id = alice["id"].as_str().unwrap();
    let (_, alice_after) = call(
        &state,
        "GET",
        &format!("/v1/directory/users/{alice_id}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(
        alice_after["version"], 1,
        "an unchanged line writes nothing"
    );
    // Imported again: every line unchanged.
    let (_, again) = import(false, file).await;
    assert_eq!(
        (&again["created"], &again["changed"], &again["unchanged"]),
        (&json!(0), &json!(0), &json!(3)),
        "{again}"
    );
    // A column left out leaves the field; an empty cell clears it.
    let (_, partial) = import(false, "user_name,email\nalice,\n").await;
    assert_eq!(
        partial["lines"][0]["changes"],
        json!([{ "field": "email", "old": "alice@example.com", "new": null }]),
        "{partial}"
    );

    // Refused: nothing imported (a good line before the bad one included).
    let after = users().await;
    for (file, expected) in [
        ("user_name,phone\ndave,1\n", "unknown column `phone`"),
        (
            "user_name,email\ndave,dave@example.com\nerin,erin@\n",
            "line 3, column `email`",
        ),
        (
            "user_name,active\ndave,true\nerin,perhaps\n",
            "line 3, column `active`",
        ),
        ("user_name\ndave\nDAVE\n", "line 3, column `user_name`"),
        (
            "user_name,groups\ndave,\"Eng;\u{7}\"\n",
            "line 2, column `groups`",
        ),
        ("user_name,email\ndave\n", "line 2"),
    ] {
        let (status, body) = import(false, file).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{file}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains(expected),
            "{file}: {body}"
        );
    }
    assert_eq!(users().await, after, "a refused file imports nothing");
    let (status, body) = send(
        &state,
        "/v1/directory/import",
        ADMIN,
        "application/json",
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Some("unsupported_media_type")
        )
    );
    let mut big = b"user_name\n".to_vec();
    big.resize(super::super::directory_import::MAX_IMPORT_BYTES + 1, b'a');
    let (status, body) = send(&state, "/v1/directory/import", ADMIN, "text/csv", big).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large")),
        "{body}"
    );
    let (status, _) = send(
        &state,
        "/v1/directory/import?dry_run=maybe",
        ADMIN,
        "text/csv",
        b"user_name\n".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// Floating check-outs naming a directory user (any case) are linked to it: the user's usage
/// lists the license, the live lease and the denial, the department's counts the seat per
/// license and member; a name that matches no user is not linked, and one created afterwards
/// is linked from the next check-out on (the link cache is forgotten on directory changes).
#[tokio::test]
async fn check_outs_are_linked_to_directory_users_and_counted() {
    linking_on(None).await;
    if let Some(url) = postgres::fresh_database("check_outs_are_linked") {
        linking_on(Some(&url)).await;
    }
}

async fn linking_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    let (key, license) = license(&state, json!({ "model": "floating", "seats": 2 })).await;
    let (_, alice) = create_user(&state, ADMIN, json!({ "user_name": "Alice" })).await;
    let alice = alice["id"].as_str().unwrap().to_owned();
    let (_, dep) = call(
        &state,
        "POST",
        "/v1/directory/departments",
        Some(ADMIN),
        Some(json!({ "name": "Eng" })),
    )
    .await;
    let dep = dep["id"].as_str().unwrap().to_owned();
    call(
        &state,
        "POST",
        &format!("/v1/directory/departments/{dep}/members"),
        Some(ADMIN),
        Some(json!({ "user_ids": [alice] })),
    )
    .await;
    let check_out = |client: &str, user: &str| {
        let body = json!({ "license_key": key, "client_id": client, "user": user,
                           "request_id": format!("r-{client}") });
        call(&state, "POST", "/v1/client/leases", None, Some(body))
    };
    let (status, lease) = check_out("c1", "alice").await;
    assert_eq!(status, StatusCode::CREATED, "{lease}");
    let (status, _) = check_out("c2", "bob").await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = check_out("c3", "ALICE").await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "no seat left: a denial of alice"
    );

    let (status, usage) = call(
        &state,
        "GET",
        &format!("/v1/directory/users/{alice}/usage"),
        Some(AUDITOR),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{usage}");
    assert_eq!(usage["licenses"].as_array().unwrap().len(), 1, "{usage}");
    assert_eq!(usage["licenses"][0]["license_id"], license.as_str());
    assert_eq!(usage["licenses"][0]["live_leases"], 1);
    assert_eq!(usage["leases"][0]["id"], lease["lease_id"], "{usage}");
    assert_eq!(usage["leases"][0]["client_id"], "c1");
    assert_eq!(usage["denials"], 1, "{usage}");
    assert!(usage["last_used_at"].as_i64().unwrap() > 0, "{usage}");

    let (status, dep_usage) = call(
        &state,
        "GET",
        &format!("/v1/directory/departments/{dep}/usage"),
        Some(AUDITOR),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{dep_usage}");
    assert_eq!(dep_usage["members"], 1);
    assert_eq!(
        dep_usage["seats_in_use"], 1,
        "bob is no member: {dep_usage}"
    );
    assert_eq!(
        dep_usage["licenses"][0]["members"],
        json!([{ "user_id": alice, "user_name": "Alice", "live_leases": 1, "machines": 0 }]),
        "{dep_usage}"
    );

    // bob is not in the directory yet: his lease is not linked. Once he is, his next
    // check-out is (the cached absence is forgotten).
    let (_, bob) = create_user(&state, ADMIN, json!({ "user_name": "bob" })).await;
    let bob = bob["id"].as_str().unwrap().to_owned();
    let (_, usage) = call(
        &state,
        "GET",
        &format!("/v1/directory/users/{bob}/usage"),
        Some(AUDITOR),
        None,
    )
    .await;
    assert_eq!(usage["licenses"], json!([]), "{usage}");
    let check_in = json!({ "license_key": key, "epoch": lease["epoch"] });
    let (status, body) = call(
        &state,
        "POST",
        &format!(
            "/v1/client/leases/{}/release",
            lease["lease_id"].as_str().unwrap()
        ),
        None,
        Some(check_in),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = check_out("c4", "Bob").await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, usage) = call(
        &state,
        "GET",
        &format!("/v1/directory/users/{bob}/usage"),
        Some(AUDITOR),
        None,
    )
    .await;
    assert_eq!(usage["licenses"][0]["live_leases"], 1, "{usage}");
    assert_eq!(usage["leases"][0]["client_id"], "c4", "{usage}");
    // Alice checked in: no live lease, the license and her last use stay.
    let (_, usage) = call(
        &state,
        "GET",
        &format!("/v1/directory/users/{alice}/usage"),
        Some(AUDITOR),
        None,
    )
    .await;
    assert_eq!(usage["licenses"][0]["live_leases"], 0, "{usage}");
    assert_eq!(usage["leases"], json!([]), "{usage}");
}

/// Activations and validations naming a user link the machine to the directory user of that
/// name (any case): the user's usage lists the machine, the department's counts it. A
/// validation naming someone else moves the link; one naming no user leaves it.
#[tokio::test]
async fn activations_and_validations_link_machines_to_directory_users() {
    machines_on(None).await;
    if let Some(url) = postgres::fresh_database("activations_link_machines") {
        machines_on(Some(&url)).await;
    }
}

async fn machines_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    let (key, license) =
        license(&state, json!({ "model": "node_locked", "max_machines": 3 })).await;
    let (_, alice) = create_user(&state, ADMIN, json!({ "user_name": "Alice" })).await;
    let alice = alice["id"].as_str().unwrap().to_owned();
    let (_, dep) = call(
        &state,
        "POST",
        "/v1/directory/departments",
        Some(ADMIN),
        Some(json!({ "name": "Eng" })),
    )
    .await;
    let dep = dep["id"].as_str().unwrap().to_owned();
    call(
        &state,
        "POST",
        &format!("/v1/directory/departments/{dep}/members"),
        Some(ADMIN),
        Some(json!({ "user_ids": [alice] })),
    )
    .await;
    let body = json!({ "license_key": key, "fingerprint": { "id": "box-a" }, "user": "ALICE" });
    let (status, activated) = call(&state, "POST", "/v1/client/activate", None, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{activated}");
    let usage = |id: String| {
        let state = &state;
        async move {
            let (status, usage) = call(
                state,
                "GET",
                &format!("/v1/directory/users/{id}/usage"),
                Some(AUDITOR),
                None,
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{usage}");
            usage
        }
    };
    let found = usage(alice.clone()).await;
    assert_eq!(
        found["machines"][0]["id"], activated["machine_id"],
        "{found}"
    );
    assert_eq!(found["machines"][0]["fingerprint"], "box-a");
    assert_eq!(found["licenses"][0]["license_id"], license.as_str());
    assert_eq!(found["licenses"][0]["machines"], 1);
    let (_, dep_usage) = call(
        &state,
        "GET",
        &format!("/v1/directory/departments/{dep}/usage"),
        Some(AUDITOR),
        None,
    )
    .await;
    assert_eq!(dep_usage["seats_in_use"], 1, "{dep_usage}");
    assert_eq!(dep_usage["licenses"][0]["machines"], 1, "{dep_usage}");

    // A bad user name is refused naming the field.
    let body = json!({ "license_key": key, "fingerprint": { "id": "box-b" }, "user": "a\u{7}" });
    let (status, answer) = call(&state, "POST", "/v1/client/activate", None, Some(body)).await;
    refused_naming(status, &answer, "user");

    // Validations: naming bob (no directory user yet) moves the link off alice; once bob is in
    // the directory, his next validation links the machine to him; naming no user leaves it.
    let validate = |user: Option<&str>| {
        let mut body = json!({ "license_key": key, "fingerprint": "box-a",
                               "nonce": "nonce-0123456789abcdef" });
        if let Some(user) = user {
            body["user"] = json!(user);
        }
        let state = &state;
        async move {
            let (status, answer) =
                call(state, "POST", "/v1/client/validate", None, Some(body)).await;
            assert_eq!(status, StatusCode::OK, "{answer}");
        }
    };
    validate(Some("bob")).await;
    assert_eq!(usage(alice.clone()).await["machines"], json!([]));
    let (_, bob) = create_user(&state, ADMIN, json!({ "user_name": "bob" })).await;
    let bob = bob["id"].as_str().unwrap().to_owned();
    validate(Some("Bob")).await;
    validate(None).await;
    let found = usage(bob).await;
    assert_eq!(
        found["machines"][0]["id"], activated["machine_id"],
        "{found}"
    );
}

/// Deactivating a user through the admin API releases their floating seats at once (fenced:
/// their app's next heartbeat is refused) and leaves other users' seats alone; deleting one
/// does too (through `deprovision::user`, SCIM's path).
#[tokio::test]
async fn deactivating_a_user_releases_their_seats() {
    release_on(None).await;
    if let Some(url) = postgres::fresh_database("deactivating_a_user_releases") {
        release_on(Some(&url)).await;
    }
}

async fn release_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    let (key, _) = license(&state, json!({ "model": "floating", "seats": 2 })).await;
    let (_, alice) = create_user(&state, ADMIN, json!({ "user_name": "Alice" })).await;
    let (_, bob) = create_user(&state, ADMIN, json!({ "user_name": "bob" })).await;
    let check_out = |client: &str, user: &str| {
        let body = json!({ "license_key": key, "client_id": client, "user": user,
                           "request_id": format!("r-{client}"), "lease_secret_supported": true });
        let state = &state;
        async move { call(state, "POST", "/v1/client/leases", None, Some(body)).await }
    };
    let heartbeat = |lease: &Value| {
        let path = format!(
            "/v1/client/leases/{}/heartbeat",
            lease["lease_id"].as_str().unwrap()
        );
        let body = json!({ "license_key": key, "epoch": lease["epoch"],
                           "lease_secret": lease["lease_secret"] });
        let state = &state;
        async move { call(state, "POST", &path, None, Some(body)).await }
    };
    let (status, alices) = check_out("c-alice", "alice").await;
    assert_eq!(status, StatusCode::CREATED, "{alices}");
    let (status, bobs) = check_out("c-bob", "bob").await;
    assert_eq!(status, StatusCode::CREATED, "{bobs}");

    let alice_id = alice["id"].as_str().unwrap();
    let (status, answer) = call(
        &state,
        "POST",
        &format!("/v1/directory/users/{alice_id}/deactivate"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer["released"]["leases_released"],
        json!([alices["lease_id"]]),
        "{answer}"
    );
    let (status, body) = heartbeat(&alices).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("lease_released"))
    );
    let (status, _) = heartbeat(&bobs).await;
    assert_eq!(status, StatusCode::OK, "bob keeps his seat");
    let (status, carol) = check_out("c-carol", "carol").await;
    assert_eq!(status, StatusCode::CREATED, "alice's seat is free: {carol}");
    // The deprovisioning is an event of the client-event chain, naming the user by id only.
    state.audit().flush().await;
    let (status, events) = call(&state, "GET", "/v1/audit/events", Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::OK, "{events}");
    let deprovisioned: Vec<&Value> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "user.deprovisioned")
        .collect();
    assert_eq!(deprovisioned.len(), 1, "{events}");
    assert_eq!(deprovisioned[0]["target_id"], alice["id"], "{events}");
    assert!(!deprovisioned[0].to_string().contains("Alice"), "{events}");

    let bob_id = bob["id"].as_str().unwrap();
    let (status, answer) = call(
        &state,
        "DELETE",
        &format!("/v1/directory/users/{bob_id}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, _) = heartbeat(&bobs).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "deleting bob released his seat"
    );
    let (status, _) = heartbeat(&carol).await;
    assert_eq!(status, StatusCode::OK, "carol keeps hers");

    // The leaver cannot come back on a new instance: a deprovisioned user takes no seat
    // and activates no machine, in any case of their name; reactivated, they may again.
    for name in ["alice", "ALICE"] {
        let (status, body) = check_out(&format!("c-again-{name}"), name).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::FORBIDDEN, Some("user_deactivated")),
            "{body}"
        );
    }
    let (node_key, _) = license(
        &state,
        json!({ "model": "subscription", "duration": 86_400 }),
    )
    .await;
    let activate = |user: &str| {
        let body = json!({ "license_key": node_key,
            "fingerprint": { "id": "m-alice", "components": {}, "virtualization": [] },
            "user": user });
        let state = &state;
        async move { call(state, "POST", "/v1/client/activate", None, Some(body)).await }
    };
    let (status, body) = activate("Alice").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("user_deactivated")),
        "{body}"
    );
    // A user the directory does not know is not refused.
    let (status, body) = activate("dave").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, answer) = call(
        &state,
        "POST",
        &format!("/v1/directory/users/{alice_id}/reactivate"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, body) = activate("Alice").await;
    assert!(status.is_success(), "reactivated: {body}");
    let (status, body) = check_out("c-back", "alice").await;
    // Two seats: bob's was released, so one is free for her.
    assert_eq!(status, StatusCode::CREATED, "reactivated: {body}");
}
