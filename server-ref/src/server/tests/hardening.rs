//! The security review's findings on the admin and client APIs (issue 20, part 6): the role is
//! checked before the body is read, read-only roles never receive signed license tokens, and
//! input that would be signed into tokens or make no sense is refused with a 422 naming the
//! field.

use super::*;

const IT_STAFF: &str = "lst_it_staff_for_tests";
const MANAGER: &str = "lst_manager_for_tests";

/// Adds IT-staff and license-manager tokens to the operator organization of `app`.
async fn more_roles(state: &AppState) {
    for (id, token, role) in [
        ("tok_it", IT_STAFF, "it_staff"),
        ("tok_lm", MANAGER, "license_manager"),
    ] {
        let hash = secrets::sha256_hex(token.as_bytes());
        state
            .db()
            .insert_api_token(id, OPERATOR_ORGANIZATION, &hash, role, "test", 0)
            .await
            .unwrap();
    }
}

/// A request with a raw body (maybe not JSON at all).
async fn raw(state: &AppState, method: &str, path: &str, token: &str, body: &str) -> StatusCode {
    let request = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from(body.to_owned()))
        .unwrap();
    router(state.clone())
        .oneshot(request)
        .await
        .unwrap()
        .status()
}

/// Every state-changing admin route of the API document, with `x` for its path parameters.
fn admin_write_routes() -> Vec<(String, String, String)> {
    let (_, doc) = api_router();
    let mut routes = Vec::new();
    for (path, item) in &doc.paths.paths {
        for (method, operation) in [
            ("POST", &item.post),
            ("PUT", &item.put),
            ("DELETE", &item.delete),
            ("PATCH", &item.patch),
        ] {
            let Some(operation) = operation else { continue };
            if operation.security.as_ref().is_none_or(Vec::is_empty) {
                continue; // client and public routes: no API token
            }
            let mut concrete = String::new();
            let mut in_param = false;
            for c in path.chars() {
                match c {
                    '{' => in_param = true,
                    '}' => {
                        in_param = false;
                        concrete.push('x');
                    }
                    _ if !in_param => concrete.push(c),
                    _ => {}
                }
            }
            routes.push((method.to_owned(), path.clone(), concrete));
        }
    }
    assert!(routes.len() >= 15, "{routes:?}");
    routes
}

/// An auditor's request to any route that changes state is refused for its role (403) before
/// its body is looked at: malformed, invalid or empty, the answer is the same.
#[tokio::test]
async fn the_role_is_checked_before_the_body() {
    the_role_is_checked_before_the_body_on(None).await;
    if let Some(url) = postgres::fresh_database("the_role_is_checked_before_the_body") {
        the_role_is_checked_before_the_body_on(Some(&url)).await;
    }
}

async fn the_role_is_checked_before_the_body_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    more_roles(&state).await;
    for (method, template, path) in admin_write_routes() {
        let method_ = axum::http::Method::from_bytes(method.as_bytes()).unwrap();
        assert!(
            extract::required_for(&method_, &template).is_some(),
            "{method} {template} has no early role check in extract::required_for"
        );
        for body in ["{", "{\"unknown\": 1}", "[]", ""] {
            let status = raw(&state, &method, &path, AUDITOR, body).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path} {body:?}");
        }
    }
    // IT staff may operate, not manage licenses or tokens: refused before the body too.
    for (method, path) in [
        ("POST", "/v1/products"),
        ("POST", "/v1/policies"),
        ("POST", "/v1/licenses"),
        ("POST", "/v1/licenses/x/renew"),
        ("PUT", "/v1/licenses/x/borrowing"),
        ("POST", "/v1/api-tokens"),
        ("POST", "/v1/keys/rotate"),
    ] {
        let status = raw(&state, method, path, IT_STAFF, "{").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}");
    }
    // A license manager is not an operator.
    for (method, path) in [("POST", "/v1/organizations"), ("POST", "/v1/keys/rotate")] {
        let status = raw(&state, method, path, MANAGER, "{").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}");
    }
    // Roles that may call a route still get the body's error (and IT staff may operate).
    assert_eq!(
        raw(&state, "POST", "/v1/products", ADMIN, "{").await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        raw(&state, "POST", "/v1/policies", MANAGER, "{\"unknown\": 1}").await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        raw(&state, "PUT", "/v1/licenses/x/lease-timeout", IT_STAFF, "{").await,
        StatusCode::BAD_REQUEST
    );
}

/// Auditors and IT staff read a license without its signed token (it is the license itself,
/// runnable anywhere); admins and license managers get it.
#[tokio::test]
async fn read_only_roles_never_receive_license_tokens() {
    read_only_roles_never_receive_license_tokens_on(None).await;
    if let Some(url) = postgres::fresh_database("read_only_roles_never_receive_license_tokens") {
        read_only_roles_never_receive_license_tokens_on(Some(&url)).await;
    }
}

async fn read_only_roles_never_receive_license_tokens_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    more_roles(&state).await;
    let (_, id) = license(&state, json!({ "model": "perpetual" })).await;
    let path = format!("/v1/licenses/{id}");
    for token in [AUDITOR, IT_STAFF] {
        let (status, body) = call(&state, "GET", &path, Some(token), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body["token"].is_null(), "{body}");
        assert_eq!(body["token_withheld"], true, "{body}");
        assert!(!body.to_string().contains("eyJ"), "{body}");
        let (status, list) = call(&state, "GET", "/v1/licenses", Some(token), None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!list.to_string().contains("eyJ"), "{list}");
        assert_eq!(list["licenses"][0]["token_withheld"], true, "{list}");
    }
    for token in [ADMIN, MANAGER] {
        let (status, body) = call(&state, "GET", &path, Some(token), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body["token"].as_str().unwrap().starts_with("eyJ"), "{body}");
        assert!(body.get("token_withheld").is_none(), "{body}");
        let (_, list) = call(&state, "GET", "/v1/licenses", Some(token), None).await;
        assert!(list["licenses"][0]["token"].is_string(), "{list}");
    }
}

/// Creates the product `p` (once) and answers the policy creation's status and body.
async fn policy(state: &AppState, fields: Value) -> (StatusCode, Value) {
    let (status, _) = call(
        state,
        "POST",
        "/v1/products",
        Some(ADMIN),
        Some(json!({ "id": "p", "name": "P" })),
    )
    .await;
    assert!(status == StatusCode::CREATED || status == StatusCode::CONFLICT);
    let mut body = json!({ "product_id": "p", "name": "n" });
    body.as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    call(state, "POST", "/v1/policies", Some(ADMIN), Some(body)).await
}

fn assert_names(status: StatusCode, body: &Value, field: &str) {
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains(&format!("`{field}`")), "{field}: {body}");
}

/// Control characters and bidirectional overrides in anything signed into a token or shown to
/// an operator: 422 naming the field, for every kind of text.
#[tokio::test]
async fn control_and_bidi_characters_are_refused() {
    control_and_bidi_characters_are_refused_on(None).await;
    if let Some(url) = postgres::fresh_database("control_and_bidi_characters_are_refused") {
        control_and_bidi_characters_are_refused_on(Some(&url)).await;
    }
}

async fn control_and_bidi_characters_are_refused_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    let (status, created) = policy(&state, json!({ "model": "perpetual" })).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let policy_id = created["id"].clone();
    for bad in [
        "Acme\u{0}Corp",
        "Acme\u{1b}[31mCorp",
        "Acme\nCorp",
        "Acme\u{202E}proC",
        "Acme\u{2066}Corp",
        "Acme\u{9b}Corp",
    ] {
        for (body, field) in [
            (
                json!({ "policy_id": policy_id, "customer": { "name": bad } }),
                "customer.name",
            ),
            (
                json!({ "policy_id": policy_id, "customer": { "email": bad } }),
                "customer.email",
            ),
            (
                json!({ "policy_id": policy_id, "customer": { "id": bad } }),
                "customer.id",
            ),
            (
                json!({ "policy_id": policy_id, "metadata": { "plan": bad } }),
                "metadata.plan",
            ),
            (
                json!({ "policy_id": policy_id, "metadata": { "deep": { "list": ["ok", bad] } } }),
                "metadata.deep.list[1]",
            ),
            (
                json!({ "policy_id": policy_id, "metadata": { bad: "name" } }),
                "metadata",
            ),
        ] {
            let (status, answer) =
                call(&state, "POST", "/v1/licenses", Some(ADMIN), Some(body)).await;
            assert_names(status, &answer, field);
        }
        let (status, answer) = call(
            &state,
            "POST",
            "/v1/products",
            Some(ADMIN),
            Some(json!({ "id": "q", "name": bad })),
        )
        .await;
        assert_names(status, &answer, "name");
        let (status, answer) = policy(&state, json!({ "model": "perpetual", "name": bad })).await;
        assert_names(status, &answer, "name");
        let (status, answer) = policy(
            &state,
            json!({ "model": "perpetual", "features": { bad: {} } }),
        )
        .await;
        assert_names(status, &answer, "features");
    }
    // Ordinary non-ASCII text is fine.
    let (status, answer) = call(
        &state,
        "POST",
        "/v1/licenses",
        Some(ADMIN),
        Some(json!({ "policy_id": policy_id,
            "customer": { "name": "Ærø Straße 東京 שלום", "email": "a@b.example" },
            "metadata": { "note": "tab-free, newline-free" } })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
}

/// Counts and durations that make no sense: 422 naming the field.
#[tokio::test]
async fn nonsensical_policies_are_refused() {
    nonsensical_policies_are_refused_on(None).await;
    if let Some(url) = postgres::fresh_database("nonsensical_policies_are_refused") {
        nonsensical_policies_are_refused_on(Some(&url)).await;
    }
}

async fn nonsensical_policies_are_refused_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    let (status, body) = policy(
        &state,
        json!({ "model": "subscription", "duration": 0, "max_machines": 1 }),
    )
    .await;
    assert_names(status, &body, "duration");
    let (status, body) = policy(&state, json!({ "model": "node_locked", "max_machines": 0 })).await;
    assert_names(status, &body, "max_machines");
    let (status, body) = policy(&state, json!({ "model": "perpetual", "seats": 5 })).await;
    assert_names(status, &body, "seats");
    let (status, body) = policy(&state, json!({ "model": "perpetual", "seats": 0 })).await;
    assert_names(status, &body, "seats");
    // A license's overrides follow the same rules.
    let (status, created) =
        policy(&state, json!({ "model": "node_locked", "max_machines": 2 })).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, body) = call(
        &state,
        "POST",
        "/v1/licenses",
        Some(ADMIN),
        Some(json!({ "policy_id": created["id"], "max_machines": 0 })),
    )
    .await;
    assert_names(status, &body, "max_machines");
    // The sensible ones pass.
    for fields in [
        json!({ "model": "subscription", "duration": 1, "max_machines": 1 }),
        json!({ "model": "node_locked", "max_machines": 1 }),
        json!({ "model": "floating", "seats": 5 }),
    ] {
        let (status, body) = policy(&state, fields).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
}

/// A lease timeout belongs to a floating license: on any other, 422.
#[tokio::test]
async fn a_lease_timeout_needs_a_floating_license() {
    a_lease_timeout_needs_a_floating_license_on(None).await;
    if let Some(url) = postgres::fresh_database("a_lease_timeout_needs_a_floating_license") {
        a_lease_timeout_needs_a_floating_license_on(Some(&url)).await;
    }
}

async fn a_lease_timeout_needs_a_floating_license_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    let (_, perpetual) = license(&state, json!({ "model": "perpetual" })).await;
    let (status, body) = call(
        &state,
        "PUT",
        &format!("/v1/licenses/{perpetual}/lease-timeout"),
        Some(ADMIN),
        Some(json!({ "seconds": 600 })),
    )
    .await;
    assert_names(status, &body, "seconds");
    assert_eq!(body["error"], "license_not_floating", "{body}");
    let (_, floating) = license(&state, json!({ "model": "floating", "seats": 2 })).await;
    let (status, body) = call(
        &state,
        "PUT",
        &format!("/v1/licenses/{floating}/lease-timeout"),
        Some(ADMIN),
        Some(json!({ "seconds": 600 })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Unknown members inside a client's `fingerprint` are refused, naming them.
#[tokio::test]
async fn unknown_fingerprint_members_are_refused() {
    unknown_fingerprint_members_are_refused_on(None).await;
    if let Some(url) = postgres::fresh_database("unknown_fingerprint_members_are_refused") {
        unknown_fingerprint_members_are_refused_on(Some(&url)).await;
    }
}

async fn unknown_fingerprint_members_are_refused_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    let (key, _) = license(&state, json!({ "model": "perpetual", "max_machines": 3 })).await;
    for (path, body) in [
        (
            "/v1/client/activate",
            json!({ "license_key": key, "fingerprint": { "id": "m1", "colour": "red" } }),
        ),
        (
            "/v1/client/activate",
            json!({ "license_key": key,
                "fingerprint": { "id": "m1", "components": {}, "is_virtual": false, "cpu": "x" } }),
        ),
        (
            "/v1/client/transfer",
            json!({ "license_key": key, "from_fingerprint": "m0",
                "fingerprint": { "id": "m1", "colour": "red" } }),
        ),
    ] {
        let (status, answer) = call(&state, "POST", path, None, Some(body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {answer}");
        let detail = answer["detail"].as_str().unwrap();
        assert!(detail.contains("fingerprint"), "{answer}");
        assert!(detail.contains("unknown field"), "{answer}");
    }
    let (status, answer) = call(
        &state,
        "POST",
        "/v1/client/activate",
        None,
        Some(json!({ "license_key": key, "fingerprint": { "id": "m1" } })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
}

/// Every display name (product, policy, organization, API-token label) is one `DisplayName`
/// rule, checked while the body is parsed, and a refused one is answered with the same body
/// as when each handler checked it: 422 `invalid_field`, "`field` must be 1 to 200 ...".
#[tokio::test]
async fn a_refused_display_name_keeps_its_error_body() {
    let (_dir, state) = app().await;
    let rule = "must be 1 to 200 characters without control characters or bidirectional overrides";
    let long = "x".repeat(201);
    for bad in ["", "  ", "Acme\u{1b}[31m", "gpj\u{202e}exe", long.as_str()] {
        for (path, body, field) in [
            ("/v1/products", json!({ "id": "p2", "name": bad }), "name"),
            (
                "/v1/policies",
                json!({ "product_id": "p2", "name": bad, "model": "perpetual" }),
                "name",
            ),
            ("/v1/organizations", json!({ "name": bad }), "name"),
            (
                "/v1/api-tokens",
                json!({ "role": "auditor", "label": bad }),
                "label",
            ),
        ] {
            let (status, answer) = call(&state, "POST", path, Some(ADMIN), Some(body)).await;
            assert_eq!(
                status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{path} {bad:?}: {answer}"
            );
            assert_eq!(answer["error"], "invalid_field", "{path}: {answer}");
            assert_eq!(
                answer["detail"],
                format!("`{field}` {rule}"),
                "{path}: {answer}"
            );
        }
    }
    let (status, answer) = call(
        &state,
        "POST",
        "/v1/products",
        Some(ADMIN),
        Some(json!({ "id": "p2", "name": "x".repeat(200) })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
}
