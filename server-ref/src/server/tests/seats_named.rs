//! Named seats (issue 22): assignments to users, departments and devices, the seat count and
//! over-allocation, enforcement in check-out, activation and validation, re-grant of a
//! reclaimed seat, transfers approved by another role, tenant isolation.

use super::*;

const ORG: &str = OPERATOR_ORGANIZATION;

/// Directory users of the operator organization: `alice`, `bob`, `carol`, `erin` active,
/// `dave` deactivated.
async fn people(state: &AppState) {
    for (id, name, active) in [
        ("usr_alice", "Alice", true),
        ("usr_bob", "bob", true),
        ("usr_carol", "carol", true),
        ("usr_dave", "dave", false),
        ("usr_erin", "erin", true),
    ] {
        state
            .db()
            .insert_directory_user_for_tests(ORG, id, name, active)
            .await
            .unwrap();
    }
}

async fn assign(state: &AppState, token: &str, license: &str, body: Value) -> (StatusCode, Value) {
    let path = format!("/v1/licenses/{license}/assignments");
    call(state, "POST", &path, Some(token), Some(body)).await
}

fn user(id: &str) -> Value {
    json!({ "kind": "user", "id": id })
}

async fn assignments(state: &AppState, license: &str) -> Value {
    let path = format!("/v1/licenses/{license}/assignments");
    let (status, body) = call(state, "GET", &path, Some(AUDITOR), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn check_out(state: &AppState, key: &str, user: &str) -> (StatusCode, Value) {
    let body = json!({ "license_key": key, "client_id": format!("c-{user}"), "user": user,
                       "request_id": format!("r-{user}"), "lease_secret_supported": true });
    call(state, "POST", "/v1/client/leases", None, Some(body)).await
}

async fn check_in(state: &AppState, key: &str, lease: &Value) -> StatusCode {
    let path = format!(
        "/v1/client/leases/{}/release",
        lease["lease_id"].as_str().unwrap()
    );
    let body = json!({ "license_key": key, "epoch": lease["epoch"],
                       "lease_secret": lease["lease_secret"] });
    call(state, "POST", &path, None, Some(body)).await.0
}

/// A token of `role` in the operator organization.
async fn token(state: &AppState, role: &str) -> String {
    let (status, t) = call(
        state,
        "POST",
        "/v1/api-tokens",
        Some(ADMIN),
        Some(json!({ "role": role, "label": role })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    t["secret"].as_str().unwrap().to_owned()
}

async fn alerts_of(state: &AppState, license: &str) -> Vec<Value> {
    let (status, report) = call(state, "GET", "/v1/alerts", Some(AUDITOR), None).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    report["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["license_id"] == license)
        .cloned()
        .collect()
}

/// Assigning counts seats: beyond the count is refused with a clear code unless the license
/// allows over-allocation, which is then a compliance alert; assignees are checked (in the
/// organization, active, once); roles: IT staff assigns, an auditor reads only.
#[tokio::test]
async fn assignments_count_seats_and_over_allocation_is_flagged() {
    assignments_on(None).await;
    if let Some(url) = postgres::fresh_database("assignments_count_seats") {
        assignments_on(Some(&url)).await;
    }
}

async fn assignments_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    people(&state).await;
    let (_, license) = license(
        &state,
        json!({ "model": "floating", "seats": 2, "seat_mode": "named" }),
    )
    .await;
    let (_, view) = call(
        &state,
        "GET",
        &format!("/v1/licenses/{license}"),
        Some(AUDITOR),
        None,
    )
    .await;
    assert_eq!(view["seat_mode"], "named", "{view}");
    assert_eq!(view["allow_over_allocation"], false, "{view}");
    assert_eq!(view["reclaim_after"], Value::Null, "{view}");
    // The policy's settings are copied to its licenses; a threshold out of the reclamation's
    // range is refused, naming the field.
    let (_, copied) = super::license(
        &state,
        json!({ "model": "floating", "seats": 2, "seat_mode": "named",
                "allow_over_allocation": true, "reclaim_after": 30 * 86_400 }),
    )
    .await;
    let (_, view) = call(
        &state,
        "GET",
        &format!("/v1/licenses/{copied}"),
        Some(AUDITOR),
        None,
    )
    .await;
    assert_eq!(
        (
            view["seat_mode"].clone(),
            view["allow_over_allocation"].clone(),
            view["reclaim_after"].clone()
        ),
        (json!("named"), json!(true), json!(30 * 86_400)),
        "{view}"
    );
    let body = json!({ "product_id": "p", "name": "n", "model": "floating", "seats": 2,
                       "reclaim_after": 3600 });
    let (status, body) = call(&state, "POST", "/v1/policies", Some(ADMIN), Some(body)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("reclaim_after"),
        "{body}"
    );
    let it = token(&state, "it_staff").await;

    let (status, alice) = assign(&state, &it, &license, user("usr_alice")).await;
    assert_eq!(status, StatusCode::CREATED, "{alice}");
    assert_eq!(alice["assignee_name"], "Alice");
    assert_eq!(alice["state"], "active");
    assert_eq!(
        assign(&state, ADMIN, &license, user("usr_bob")).await.0,
        StatusCode::CREATED
    );
    // Beyond the two seats.
    let (status, body) = assign(&state, ADMIN, &license, user("usr_carol")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "assignment_limit_reached", "{body}");
    // Once per assignee; a deactivated user, an unknown one, a quota on a user: refused.
    let (status, body) = assign(&state, ADMIN, &license, user("usr_alice")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("assignment_exists"))
    );
    let (status, body) = assign(&state, ADMIN, &license, user("usr_dave")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("assignee_inactive"))
    );
    let (status, body) = assign(&state, ADMIN, &license, user("usr_nobody")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("assignee_not_found"))
    );
    let body = json!({ "kind": "user", "id": "usr_carol", "seats": 2 });
    let (status, body) = assign(&state, ADMIN, &license, body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("seats"), "{body}");
    let body = json!({ "kind": "department", "id": "x", "seats": 2_000_000 });
    let (status, _) = assign(&state, ADMIN, &license, body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let body = json!({ "kind": "user", "id": "u".repeat(129) });
    let (status, _) = assign(&state, ADMIN, &license, body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // An auditor reads, never assigns.
    let (status, _) = assign(&state, AUDITOR, &license, user("usr_carol")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let listed = assignments(&state, &license).await;
    assert_eq!(
        (
            listed["seat_limit"].clone(),
            listed["seats_assigned"].clone()
        ),
        (json!(2), json!(2)),
        "{listed}"
    );
    assert_eq!(listed["over_allocated"], false);
    assert_eq!(listed["assignments"].as_array().unwrap().len(), 2);
    assert!(alerts_of(&state, &license).await.is_empty());

    // Over-allocation allowed (IT staff may not change the setting; a license manager may):
    // stored, and flagged until a seat is unassigned.
    let path = format!("/v1/licenses/{license}/seating");
    let allow = json!({ "allow_over_allocation": true });
    let (status, _) = call(&state, "PUT", &path, Some(&it), Some(allow.clone())).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, view) = call(&state, "PUT", &path, Some(ADMIN), Some(allow)).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["allow_over_allocation"], true);
    let (status, carol) = assign(&state, &it, &license, user("usr_carol")).await;
    assert_eq!(status, StatusCode::CREATED, "{carol}");
    let listed = assignments(&state, &license).await;
    assert_eq!(listed["over_allocated"], true, "{listed}");
    let alerts = alerts_of(&state, &license).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["kind"], "over_allocation");
    assert_eq!(alerts[0]["severity"], "warning");
    assert_eq!(
        (alerts[0]["count"].clone(), alerts[0]["limit"].clone()),
        (json!(3), json!(2))
    );
    let path = format!(
        "/v1/licenses/{license}/assignments/{}",
        carol["id"].as_str().unwrap()
    );
    let (status, _) = call(&state, "DELETE", &path, Some(AUDITOR), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(&state, "DELETE", &path, Some(&it), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = call(&state, "DELETE", &path, Some(&it), None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("assignment_not_found"))
    );
    assert!(alerts_of(&state, &license).await.is_empty());

    // The user's view: Alice holds one seat.
    let (status, mine) = call(
        &state,
        "GET",
        "/v1/directory/users/usr_alice/assignments",
        Some(AUDITOR),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    assert_eq!(mine["assignments"][0]["license_id"], license.as_str());

    // The request layer recorded the assignment in the audit trail.
    let (_, audit) = call(&state, "GET", "/v1/audit?limit=1000", Some(AUDITOR), None).await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(
        actions.contains(&"POST /v1/licenses/{id}/assignments"),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"DELETE /v1/licenses/{id}/assignments/{assignment_id}"),
        "{actions:?}"
    );
}

/// A named license admits only its assignees at check-out (user names without regard to
/// case); a colleague of an assignee is refused although seats are free; a floating license
/// admits anyone as before; use is recorded on the assignment.
#[tokio::test]
async fn a_named_license_refuses_unassigned_users_at_check_out() {
    check_out_on(None).await;
    if let Some(url) = postgres::fresh_database("named_check_out") {
        check_out_on(Some(&url)).await;
    }
}

async fn check_out_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    people(&state).await;
    let (key, license) = license(
        &state,
        json!({ "model": "floating", "seats": 3, "seat_mode": "named" }),
    )
    .await;
    assert_eq!(
        assign(&state, ADMIN, &license, user("usr_alice")).await.0,
        StatusCode::CREATED
    );
    let (status, lease) = check_out(&state, &key, "ALICE").await;
    assert_eq!(status, StatusCode::CREATED, "{lease}");
    let listed = assignments(&state, &license).await;
    assert!(
        listed["assignments"][0]["last_used_at"].is_i64(),
        "{listed}"
    );
    // Bob shares Alice's seat: refused, with a message an end user understands.
    let (status, body) = check_out(&state, &key, "bob").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "user_not_assigned");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("ask your IT administrator"),
        "{body}"
    );
    // Neither is someone outside the directory, nor a deactivated user.
    assert_eq!(
        check_out(&state, &key, "mallory").await.1["error"],
        "user_not_assigned"
    );
    assert_eq!(
        check_out(&state, &key, "dave").await.0,
        StatusCode::FORBIDDEN
    );
    // Validation: a user named is admitted as at check-out; none named (an SDK that does not
    // send the user) is admitted, the check-out holding the seat being the gate.
    let validate = |user: Option<&str>| {
        let mut body = json!({ "license_key": key, "fingerprint": "box-1",
                               "nonce": "nonce-123456" });
        if let Some(user) = user {
            body["user"] = json!(user);
        }
        call(&state, "POST", "/v1/client/validate", None, Some(body))
    };
    assert_eq!(validate(Some("alice")).await.0, StatusCode::OK);
    let (status, body) = validate(Some("bob")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("user_not_assigned"))
    );
    assert_eq!(validate(None).await.0, StatusCode::OK);
    // The same license made floating admits anyone again.
    let path = format!("/v1/licenses/{license}/seating");
    let body = json!({ "seat_mode": "floating" });
    let (status, view) = call(&state, "PUT", &path, Some(ADMIN), Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["seat_mode"], "floating");
    assert_eq!(check_out(&state, &key, "bob").await.0, StatusCode::CREATED);
    assert_eq!(check_in(&state, &key, &lease).await, StatusCode::OK);
}

/// A department's quota: its members share its seats, up to the quota, counted by their live
/// leases; a member is admitted again once a colleague checks in.
#[tokio::test]
async fn a_department_quota_is_shared_by_its_members() {
    department_on(None).await;
    if let Some(url) = postgres::fresh_database("department_quota") {
        department_on(Some(&url)).await;
    }
}

async fn department_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    people(&state).await;
    state
        .db()
        .insert_department_for_tests(ORG, "dep_eng", &["usr_alice", "usr_bob", "usr_carol"])
        .await
        .unwrap();
    let (key, license) = license(
        &state,
        json!({ "model": "floating", "seats": 5, "seat_mode": "named" }),
    )
    .await;
    let body = json!({ "kind": "department", "id": "dep_eng", "seats": 2 });
    let (status, dep) = assign(&state, ADMIN, &license, body).await;
    assert_eq!(status, StatusCode::CREATED, "{dep}");
    assert_eq!(dep["seats"], 2);
    assert_eq!(assignments(&state, &license).await["seats_assigned"], 2);
    let (status, alice) = check_out(&state, &key, "alice").await;
    assert_eq!(status, StatusCode::CREATED, "{alice}");
    assert_eq!(check_out(&state, &key, "bob").await.0, StatusCode::CREATED);
    let (status, body) = check_out(&state, &key, "carol").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "user_not_assigned");
    assert!(
        body["detail"].as_str().unwrap().contains("department"),
        "{body}"
    );
    // Not a member: refused whatever the quota.
    assert_eq!(
        check_out(&state, &key, "erin").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(check_in(&state, &key, &alice).await, StatusCode::OK);
    assert_eq!(
        check_out(&state, &key, "carol").await.0,
        StatusCode::CREATED
    );
    // Alice's own check-out again: the quota is used up by Bob and Carol.
    assert_eq!(
        check_out(&state, &key, "alice").await.0,
        StatusCode::FORBIDDEN
    );
}

/// Validation and activation of a named license: an activated machine that is not an
/// assigned device is refused; assigned as a device, it validates; a new machine's activation
/// without an assigned user is refused, with one admitted; a transfer moves a device's
/// assignment.
#[tokio::test]
async fn a_named_license_admits_assigned_devices_at_validation_and_activation() {
    devices_on(None).await;
    if let Some(url) = postgres::fresh_database("named_devices") {
        devices_on(Some(&url)).await;
    }
}

async fn devices_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    people(&state).await;
    let (key, license) = license(
        &state,
        json!({ "model": "subscription", "duration": 86_400,
                                                   "max_machines": 3 }),
    )
    .await;
    let activate = |fp: &'static str| {
        let body = json!({ "license_key": key, "fingerprint": { "id": fp } });
        call(&state, "POST", "/v1/client/activate", None, Some(body))
    };
    let validate = |fp: &'static str| {
        let body = json!({ "license_key": key, "fingerprint": fp, "nonce": "nonce-123456" });
        call(&state, "POST", "/v1/client/validate", None, Some(body))
    };
    // Activated while the license was floating.
    let (status, machine) = activate("box-a").await;
    assert_eq!(status, StatusCode::CREATED, "{machine}");
    assert_eq!(activate("box-b").await.0, StatusCode::CREATED);
    assert_eq!(validate("box-a").await.0, StatusCode::OK);
    let path = format!("/v1/licenses/{license}/seating");
    let body = json!({ "seat_mode": "named" });
    assert_eq!(
        call(&state, "PUT", &path, Some(ADMIN), Some(body)).await.0,
        StatusCode::OK
    );
    let (status, body) = validate("box-a").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "user_not_assigned");
    let machine_id = machine["machine_id"].as_str().unwrap();
    let body = json!({ "kind": "device", "id": machine_id });
    let (status, device) = assign(&state, ADMIN, &license, body).await;
    assert_eq!(status, StatusCode::CREATED, "{device}");
    assert_eq!(device["assignee_name"], "box-a");
    assert_eq!(validate("box-a").await.0, StatusCode::OK);
    // Activating again an assigned device: admitted; another machine, or a new one: refused.
    assert_eq!(activate("box-a").await.0, StatusCode::OK);
    assert_eq!(validate("box-b").await.0, StatusCode::FORBIDDEN);
    let (status, body) = activate("box-c").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "user_not_assigned");

    // Requests naming a user: an assigned user activates and validates a new machine (which
    // the next validation without the user does not admit); an unassigned colleague does not,
    // but an assigned device admits whoever uses it.
    assert_eq!(
        assign(&state, ADMIN, &license, user("usr_alice")).await.0,
        StatusCode::CREATED
    );
    let as_user = |fp: &'static str, user: &'static str| {
        let body = json!({ "license_key": key, "fingerprint": { "id": fp }, "user": user });
        call(&state, "POST", "/v1/client/activate", None, Some(body))
    };
    let validate_as = |fp: &'static str, user: &'static str| {
        let body = json!({ "license_key": key, "fingerprint": fp, "nonce": "nonce-123456",
                           "user": user });
        call(&state, "POST", "/v1/client/validate", None, Some(body))
    };
    let (status, body) = as_user("box-c", "bob").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("user_not_assigned")),
        "{body}"
    );
    assert_eq!(as_user("box-c", "alice").await.0, StatusCode::CREATED);
    assert_eq!(validate_as("box-c", "Alice").await.0, StatusCode::OK);
    assert_eq!(validate_as("box-c", "bob").await.0, StatusCode::FORBIDDEN);
    assert_eq!(validate("box-c").await.0, StatusCode::FORBIDDEN);
    assert_eq!(validate_as("box-a", "bob").await.0, StatusCode::OK);

    // A transfer of the assigned device moves its assignment to the new machine.
    let body = json!({ "license_key": key, "from_fingerprint": "box-a",
                       "fingerprint": { "id": "box-d" } });
    let (status, moved) = call(&state, "POST", "/v1/client/transfer", None, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{moved}");
    assert_eq!(validate("box-d").await.0, StatusCode::OK);
    let listed = assignments(&state, &license).await;
    let device = listed["assignments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["assignee_kind"] == "device")
        .unwrap()
        .clone();
    assert_eq!(device["assignee_id"], moved["machine_id"], "{listed}");
    assert_eq!(device["assignee_name"], "box-d");
    // An unassigned machine's transfer is refused.
    let body = json!({ "license_key": key, "from_fingerprint": "box-b",
                       "fingerprint": { "id": "box-e" } });
    let (status, _) = call(&state, "POST", "/v1/client/transfer", None, Some(body)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A machine of another license is no device of this one.
    let (other_key, _) = super::license(
        &state,
        json!({ "model": "subscription", "duration": 86_400 }),
    )
    .await;
    let body = json!({ "license_key": other_key, "fingerprint": { "id": "box-z" } });
    let (_, other) = call(&state, "POST", "/v1/client/activate", None, Some(body)).await;
    let body = json!({ "kind": "device", "id": other["machine_id"] });
    let (status, body) = assign(&state, ADMIN, &license, body).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("assignee_not_found"))
    );
}

/// A reclaimed assignment is given back when its user returns and a seat is free; while
/// every seat is assigned, the user is refused with `seat_reclaimed`.
#[tokio::test]
async fn a_reclaimed_user_gets_a_seat_back_when_one_is_free() {
    regrant_on(None).await;
    if let Some(url) = postgres::fresh_database("named_regrant") {
        regrant_on(Some(&url)).await;
    }
}

async fn regrant_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    people(&state).await;
    let (key, license) = license(
        &state,
        json!({ "model": "floating", "seats": 1, "seat_mode": "named" }),
    )
    .await;
    let (_, alice) = assign(&state, ADMIN, &license, user("usr_alice")).await;
    let alice_id = alice["id"].as_str().unwrap();
    state
        .db()
        .reclaim_assignment_for_tests(alice_id, now())
        .await
        .unwrap();
    // Her seat is free: Bob takes it.
    let (status, bob) = assign(&state, ADMIN, &license, user("usr_bob")).await;
    assert_eq!(status, StatusCode::CREATED, "{bob}");
    let (status, body) = check_out(&state, &key, "alice").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "seat_reclaimed");
    let path = format!(
        "/v1/licenses/{license}/assignments/{}",
        bob["id"].as_str().unwrap()
    );
    assert_eq!(
        call(&state, "DELETE", &path, Some(ADMIN), None).await.0,
        StatusCode::NO_CONTENT
    );
    let (status, lease) = check_out(&state, &key, "alice").await;
    assert_eq!(status, StatusCode::CREATED, "{lease}");
    let listed = assignments(&state, &license).await;
    assert_eq!(listed["assignments"][0]["state"], "active", "{listed}");
    assert_eq!(listed["seats_assigned"], 1);
    // The re-grant is in the audit trail, naming the assignment (not the user).
    let (_, audit) = call(&state, "GET", "/v1/audit?limit=1000", Some(AUDITOR), None).await;
    let regrants: Vec<&Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "seat.regranted")
        .collect();
    assert_eq!(regrants.len(), 1, "{audit}");
    assert_eq!(
        regrants[0]["target"],
        format!("/v1/licenses/{license}/assignments/{alice_id}")
    );
    assert_eq!(regrants[0]["actor"], "client");
}

/// Transfers of a perpetual license whose policy asks for approval: a license manager's
/// reassignment is a request, which neither its own role nor IT staff may approve, and an
/// admin approves; an admin's own request is decided by another admin token only. A license
/// with an expiry moves at once.
#[tokio::test]
async fn transfers_need_an_approval_by_another_role() {
    transfers_on(None).await;
    if let Some(url) = postgres::fresh_database("named_transfers") {
        transfers_on(Some(&url)).await;
    }
}

async fn transfers_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    people(&state).await;
    let (_, license) = license(
        &state,
        json!({ "model": "perpetual", "max_machines": 5, "seat_mode": "named",
                "transfer_approval": true }),
    )
    .await;
    let (_, policies) = call(&state, "GET", "/v1/policies", Some(AUDITOR), None).await;
    assert_eq!(policies["policies"][0]["transfer_approval"], true);
    let manager = token(&state, "license_manager").await;
    let it = token(&state, "it_staff").await;
    let admin2 = token(&state, "admin").await;
    let (_, alice) = assign(&state, &manager, &license, user("usr_alice")).await;
    let reassign = format!(
        "/v1/licenses/{license}/assignments/{}/reassign",
        alice["id"].as_str().unwrap()
    );
    let (status, transfer) = call(
        &state,
        "POST",
        &reassign,
        Some(&manager),
        Some(user("usr_bob")),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{transfer}");
    assert_eq!(transfer["state"], "pending");
    assert_eq!(transfer["to_id"], "usr_bob");
    let (status, body) = call(
        &state,
        "POST",
        &reassign,
        Some(&it),
        Some(user("usr_carol")),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("transfer_pending"))
    );
    let (_, pending) = call(
        &state,
        "GET",
        "/v1/assignment-transfers?state=pending",
        Some(AUDITOR),
        None,
    )
    .await;
    assert_eq!(
        pending["transfers"].as_array().unwrap().len(),
        1,
        "{pending}"
    );
    let id = transfer["id"].as_str().unwrap();
    let approve = format!("/v1/assignment-transfers/{id}/approve");
    for token in [manager.as_str(), it.as_str(), AUDITOR] {
        let (status, _) = call(&state, "POST", &approve, Some(token), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    // Still Alice's until approved.
    assert_eq!(
        assignments(&state, &license).await["assignments"][0]["assignee_id"],
        "usr_alice"
    );
    let (status, approved) = call(&state, "POST", &approve, Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["state"], "approved");
    assert_eq!(approved["decided_by"], "tok_a");
    assert_eq!(
        assignments(&state, &license).await["assignments"][0]["assignee_id"],
        "usr_bob"
    );
    let (status, body) = call(&state, "POST", &approve, Some(&admin2), None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("transfer_decided"))
    );

    // An admin's own request: not by its own token; another admin rejects it.
    let (status, transfer) = call(
        &state,
        "POST",
        &reassign,
        Some(ADMIN),
        Some(user("usr_carol")),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{transfer}");
    let id = transfer["id"].as_str().unwrap();
    let (status, _) = call(
        &state,
        "POST",
        &format!("/v1/assignment-transfers/{id}/approve"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, rejected) = call(
        &state,
        "POST",
        &format!("/v1/assignment-transfers/{id}/reject"),
        Some(&admin2),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rejected}");
    assert_eq!(rejected["state"], "rejected");
    assert_eq!(
        assignments(&state, &license).await["assignments"][0]["assignee_id"],
        "usr_bob"
    );
    let (status, _) = call(
        &state,
        "GET",
        "/v1/assignment-transfers?state=bogus",
        Some(AUDITOR),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // A subscription (it has an expiry): the reassignment is immediate.
    let (_, sub) = super::license(
        &state,
        json!({ "model": "subscription", "duration": 86_400, "max_machines": 5,
                "seat_mode": "named", "transfer_approval": true }),
    )
    .await;
    let (_, a) = assign(&state, &it, &sub, user("usr_alice")).await;
    let path = format!(
        "/v1/licenses/{sub}/assignments/{}/reassign",
        a["id"].as_str().unwrap()
    );
    let (status, moved) = call(&state, "POST", &path, Some(&it), Some(user("usr_erin"))).await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(moved["assignee_id"], "usr_erin");
    assert_eq!(moved["id"], a["id"]);
}

/// Another organization sees and touches nothing of these seats: its admin gets 404 for the
/// license, its assignments and transfers, and cannot assign this organization's users to
/// its own license.
#[tokio::test]
async fn assignments_are_isolated_between_tenants() {
    tenants_on(None).await;
    if let Some(url) = postgres::fresh_database("named_tenants") {
        tenants_on(Some(&url)).await;
    }
}

async fn tenants_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    people(&state).await;
    let (_, license_a) = license(
        &state,
        json!({ "model": "perpetual", "max_machines": 5, "seat_mode": "named",
                "transfer_approval": true }),
    )
    .await;
    let (_, alice) = assign(&state, ADMIN, &license_a, user("usr_alice")).await;
    let alice_assignment = alice["id"].as_str().unwrap();
    let reassign = format!("/v1/licenses/{license_a}/assignments/{alice_assignment}/reassign");
    let (_, transfer) = call(
        &state,
        "POST",
        &reassign,
        Some(ADMIN),
        Some(user("usr_bob")),
    )
    .await;
    let transfer_id = transfer["id"].as_str().unwrap();

    let (status, created) = call(
        &state,
        "POST",
        "/v1/organizations",
        Some(ADMIN),
        Some(json!({ "name": "Contoso" })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let admin_b = created["admin_token"].as_str().unwrap().to_owned();
    let org_b = created["organization"]["id"].as_str().unwrap().to_owned();
    let b = Some(admin_b.as_str());

    let path = format!("/v1/licenses/{license_a}/assignments");
    assert_eq!(
        call(&state, "GET", &path, b, None).await.0,
        StatusCode::NOT_FOUND
    );
    let (status, _) = call(&state, "POST", &path, b, Some(user("usr_carol"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let path = format!("/v1/licenses/{license_a}/assignments/{alice_assignment}");
    assert_eq!(
        call(&state, "DELETE", &path, b, None).await.0,
        StatusCode::NOT_FOUND
    );
    let (status, _) = call(&state, "POST", &reassign, b, Some(user("usr_carol"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for verb in ["approve", "reject"] {
        let path = format!("/v1/assignment-transfers/{transfer_id}/{verb}");
        let (status, body) = call(&state, "POST", &path, b, None).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::NOT_FOUND, Some("transfer_not_found"))
        );
    }
    let (_, listed) = call(&state, "GET", "/v1/assignment-transfers", b, None).await;
    assert_eq!(listed["transfers"], json!([]));
    let (status, _) = call(
        &state,
        "GET",
        "/v1/directory/users/usr_alice/assignments",
        b,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let path = format!("/v1/licenses/{license_a}/seating");
    let (status, _) = call(
        &state,
        "PUT",
        &path,
        b,
        Some(json!({ "seat_mode": "floating" })),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // B's own license: A's users and departments are not B's.
    state
        .db()
        .insert_department_for_tests(ORG, "dep_a", &["usr_alice"])
        .await
        .unwrap();
    let (status, product) = call(
        &state,
        "POST",
        "/v1/products",
        b,
        Some(json!({ "id": "pb", "name": "PB" })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{product}");
    let (_, policy) = call(
        &state,
        "POST",
        "/v1/policies",
        b,
        Some(
            json!({ "product_id": "pb", "name": "n", "model": "perpetual",
                     "max_machines": 3, "seat_mode": "named" }),
        ),
    )
    .await;
    let (_, license_b) = call(
        &state,
        "POST",
        "/v1/licenses",
        b,
        Some(json!({ "policy_id": policy["id"] })),
    )
    .await;
    let license_b = license_b["id"].as_str().unwrap();
    for body in [
        user("usr_alice"),
        json!({ "kind": "department", "id": "dep_a" }),
    ] {
        let (status, body) = assign(&state, &admin_b, license_b, body).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::NOT_FOUND, Some("assignee_not_found")),
            "{org_b}"
        );
    }
    // A's transfer is still pending, A's assignment still Alice's.
    let (_, pending) = call(
        &state,
        "GET",
        "/v1/assignment-transfers?state=pending",
        Some(AUDITOR),
        None,
    )
    .await;
    assert_eq!(pending["transfers"].as_array().unwrap().len(), 1);
    assert_eq!(
        assignments(&state, &license_a).await["assignments"][0]["assignee_id"],
        "usr_alice"
    );
}

/// The admission read of a named license finds each assignment by the whole unique (license,
/// kind, assignee) index: its cost does not grow with the license's assignments (SQLite's
/// plan; PostgreSQL's planner is asked by the same statement in the tests above).
#[tokio::test]
async fn admission_reads_assignments_by_their_unique_index() {
    let (_dir, state) = app().await;
    let plan = state.db().admission_plan_for_tests().await.unwrap();
    let text = plan.join("\n");
    let assignments: Vec<&String> = plan
        .iter()
        .filter(|line| line.contains(" a ") || line.ends_with(" a"))
        .collect();
    assert_eq!(assignments.len(), 3, "{text}");
    for line in assignments {
        assert!(
            line.starts_with("SEARCH a USING")
                && line.contains("license_id=? AND assignee_kind=? AND assignee_id=?"),
            "{text}"
        );
    }
    for line in &plan {
        assert!(!line.starts_with("SCAN u"), "{text}");
    }
}

/// Scale (run by hand: `cargo test -p licensing-server --bin licensing-server --release --
/// --ignored seat_assignment_at_scale --nocapture`): a directory of 100 000 users and 10 000
/// licenses; the latency of assignments (`POST /v1/licenses/{id}/assignments`) and of
/// check-outs on a named license (the admission read included) beside a floating one's.
/// Prints percentiles; asserts nothing about time.
#[tokio::test]
#[ignore]
async fn seat_assignment_at_scale() {
    scale_on(None).await;
    if let Some(url) = postgres::fresh_database("seat_assignment_at_scale") {
        scale_on(Some(&url)).await;
    }
}

fn percentiles(mut micros: Vec<u128>) -> String {
    micros.sort_unstable();
    let at = |p: usize| micros[(micros.len() * p / 100).min(micros.len() - 1)];
    format!(
        "n={} p50={}us p99={}us max={}us",
        micros.len(),
        at(50),
        at(99),
        micros[micros.len() - 1]
    )
}

async fn scale_on(url: Option<&str>) {
    let engine = if url.is_some() { "postgres" } else { "sqlite" };
    let (_dir, state) = app_on(url).await;
    let started = std::time::Instant::now();
    state.db().bulk_users_for_tests(ORG, 100_000).await.unwrap();
    let (key, named) = license(
        &state,
        json!({ "model": "floating", "seats": 1000, "seat_mode": "named" }),
    )
    .await;
    state
        .db()
        .bulk_licenses_for_tests(&named, 9_998)
        .await
        .unwrap();
    let (floating_key, _) =
        super::license(&state, json!({ "model": "floating", "seats": 1000 })).await;
    println!("{engine}: set up in {:?}", started.elapsed());
    // 1 000 assignments spread over the licenses, then 300 on the named license itself.
    let mut assigning = Vec::new();
    for i in 0..1_000_usize {
        let lic = format!("{named}_{}", (i * 7919) % 9_998);
        let body = user(&format!("usr_{}", (i * 104_729) % 100_000));
        let t = std::time::Instant::now();
        let (status, body) = assign(&state, ADMIN, &lic, body).await;
        assigning.push(t.elapsed().as_micros());
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    for i in 0..300_usize {
        let body = user(&format!("usr_{}", i * 97));
        let t = std::time::Instant::now();
        let (status, body) = assign(&state, ADMIN, &named, body).await;
        assigning.push(t.elapsed().as_micros());
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    println!("{engine}: assignment {}", percentiles(assigning));
    let mut named_times = Vec::new();
    let mut floating_times = Vec::new();
    for i in 0..300_usize {
        let name = format!("user{}", i * 97);
        let t = std::time::Instant::now();
        let (status, body) = check_out(&state, &key, &name).await;
        named_times.push(t.elapsed().as_micros());
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let t = std::time::Instant::now();
        let (status, body) = check_out(&state, &floating_key, &name).await;
        floating_times.push(t.elapsed().as_micros());
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    println!("{engine}: named check-out {}", percentiles(named_times));
    println!(
        "{engine}: floating check-out {}",
        percentiles(floating_times)
    );
}

/// A seat assignment's change and its audit entry commit in one transaction (the handler
/// appends the entry, `audit::InTxAudit`): each successful assign, reassign and unassign is in
/// the trail exactly once with the status it answered, a refused one not at all, and the chain
/// still verifies.
#[tokio::test]
async fn assignment_changes_are_in_the_audit_trail_exactly_once() {
    assignment_audit_on(None).await;
    if let Some(url) = postgres::fresh_database("assignment_audit_once") {
        assignment_audit_on(Some(&url)).await;
    }
}

async fn assignment_audit_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    people(&state).await;
    let (_, license) = license(
        &state,
        json!({ "model": "floating", "seats": 1, "seat_mode": "named" }),
    )
    .await;
    let (status, alice) = assign(&state, ADMIN, &license, user("usr_alice")).await;
    assert_eq!(status, StatusCode::CREATED, "{alice}");
    let id = alice["id"].as_str().unwrap().to_owned();
    // Refused: the assignee has one already, then the seat limit.
    assert_eq!(
        assign(&state, ADMIN, &license, user("usr_alice")).await.0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        assign(&state, ADMIN, &license, user("usr_bob")).await.0,
        StatusCode::CONFLICT
    );
    let path = format!("/v1/licenses/{license}/assignments/{id}");
    let (status, moved) = call(
        &state,
        "POST",
        &format!("{path}/reassign"),
        Some(ADMIN),
        Some(user("usr_bob")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    let (status, _) = call(&state, "DELETE", &path, Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = call(&state, "DELETE", &path, Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    let entries = state
        .db()
        .list_audit(ORG, 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| {
            e.target
                .starts_with(&format!("/v1/licenses/{license}/assignments"))
        })
        .map(|e| (e.action, e.status))
        .collect::<Vec<_>>();
    assert_eq!(
        entries,
        [
            ("POST /v1/licenses/{id}/assignments".to_owned(), 201),
            (
                "POST /v1/licenses/{id}/assignments/{assignment_id}/reassign".to_owned(),
                200
            ),
            (
                "DELETE /v1/licenses/{id}/assignments/{assignment_id}".to_owned(),
                204
            ),
        ]
    );
    assert!(matches!(
        state.db().verify_audit().await.unwrap(),
        crate::server::db::ChainCheck::Intact { .. }
    ));
}
