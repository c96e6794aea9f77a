//! In-process tests of the client API's check-in refresh, deactivation, transfer, the admin
//! machine DELETE and offline activation (the router called directly, no socket).

use axum::http::StatusCode;
use licensing_core::{TokenKind, TrustStore, verify_token};
use serde_json::{Value, json};

use super::*;

const IT_STAFF: &str = "lst_it_staff_for_tests";
const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;

fn fp(id: &str) -> Value {
    json!({ "id": id })
}

async fn activate(state: &AppState, key: &str, id: &str) -> (StatusCode, Value) {
    let body = json!({ "license_key": key, "fingerprint": fp(id) });
    call(state, "POST", "/v1/client/activate", None, Some(body)).await
}

/// Validates and returns the verified response claims.
async fn validate(state: &AppState, key: &str, fingerprint: &str) -> Value {
    validate_holding(state, key, fingerprint, Value::Null).await
}

/// Validates naming the tokens `held` (null: none) and returns the verified response claims.
async fn validate_holding(state: &AppState, key: &str, fingerprint: &str, held: Value) -> Value {
    let nonce = format!("nonce-{fingerprint}-0123456789");
    let mut body = json!({ "license_key": key, "fingerprint": fingerprint, "nonce": nonce });
    if !held.is_null() {
        body["held"] = held;
    }
    let (status, answer) = call(state, "POST", "/v1/client/validate", None, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let token = answer["response_token"].as_str().unwrap();
    let verified = verify_token(token, TokenKind::Response, &store(state)).unwrap();
    assert_eq!(verified.claims["nonce"], nonce.as_str());
    Value::Object(verified.claims)
}

/// The trust store a client builds from the server's JWKS.
fn store(state: &AppState) -> TrustStore {
    TrustStore::from_document(&state.jwks().to_string()).unwrap()
}

fn check_in_of(state: &AppState, token: &str) -> (i64, i64, u64) {
    let license = state.verifier().verify(token).unwrap();
    let check_in = license.claims().lic.check_in.unwrap();
    (license.claims().iat, check_in.until, check_in.grace)
}

async fn stored_token(state: &AppState, id: &str) -> Option<String> {
    state.db().get_license(id).await.unwrap().unwrap().token
}

/// The fingerprint ids a license token binds, sorted (machines of one second have no order).
fn bound_ids(state: &AppState, token: &str) -> Vec<String> {
    let license = state.verifier().verify(token).unwrap();
    let lock = license.claims().lic.node_lock.clone().unwrap();
    let mut ids: Vec<String> = lock.fingerprints.into_iter().map(|f| f.id).collect();
    ids.sort();
    ids
}

async fn machine_ids(state: &AppState, license_id: &str) -> Vec<String> {
    let machines = state.db().list_machines(license_id).await.unwrap();
    let mut ids: Vec<String> = machines.into_iter().map(|m| m.fingerprint).collect();
    ids.sort();
    ids
}

async fn add_token(state: &AppState, token: &str, role: &str) {
    let hash = secrets::sha256_hex(token.as_bytes());
    state
        .db()
        .insert_api_token(
            &format!("tok_{role}"),
            OPERATOR_ORGANIZATION,
            &hash,
            role,
            "test",
            0,
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn policies_check_their_check_in_and_transfer_settings() {
    let (_dir, state) = app().await;
    let (status, _) = call(
        &state,
        "POST",
        "/v1/products",
        Some(ADMIN),
        Some(json!({ "id": "p", "name": "P" })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    for (extra, field) in [
        (json!({ "check_in_interval": 3599 }), "check_in_interval"),
        (
            json!({ "check_in_interval": 365 * DAY + 1 }),
            "check_in_interval",
        ),
        (
            json!({ "check_in_interval": HOUR, "check_in_grace": 365 * DAY + 1 }),
            "check_in_grace",
        ),
        (json!({ "check_in_grace": 60 }), "check_in_grace"),
        (json!({ "check_in_interval": -1 }), "check_in_interval"),
        (json!({ "max_transfers": -1 }), "max_transfers"),
    ] {
        let mut body = json!({ "product_id": "p", "name": "n", "model": "perpetual" });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let (status, answer) = call(&state, "POST", "/v1/policies", Some(ADMIN), Some(body)).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{extra}: {answer}"
        );
        assert!(
            answer["detail"].as_str().unwrap().contains(field),
            "{answer}"
        );
    }
    // The edges are accepted, and the policy shows them.
    let body = json!({ "product_id": "p", "name": "n", "model": "perpetual",
                       "check_in_interval": 365 * DAY, "check_in_grace": 365 * DAY,
                       "max_transfers": 0 });
    let (status, policy) = call(&state, "POST", "/v1/policies", Some(ADMIN), Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{policy}");
    assert_eq!(policy["check_in_interval"], 365 * DAY);
    assert_eq!(policy["check_in_grace"], 365 * DAY);
    assert_eq!(policy["max_transfers"], 0);
}

#[tokio::test]
async fn validation_refreshes_the_license_token_and_moves_check_in_forward() {
    let (_dir, state) = app().await;
    let policy = json!({ "model": "perpetual", "check_in_interval": HOUR, "check_in_grace": 600 });
    let (key, id) = license(&state, policy).await;
    let created = stored_token(&state, &id).await.unwrap();
    let (iat, until, grace) = check_in_of(&state, &created);
    assert_eq!((until, grace), (iat + HOUR, 600));

    // One second later, validation answers a token signed then: `until` moved forward.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let answer = validate(&state, &key, "any-machine").await;
    assert_eq!(answer["status"], "active");
    assert_eq!(answer["machine_activated"], false);
    assert_eq!(answer["machine_token"], Value::Null);
    let refreshed = answer["license_token"].as_str().unwrap();
    let (new_iat, new_until, new_grace) = check_in_of(&state, refreshed);
    assert!(new_iat > iat);
    assert_eq!((new_until, new_grace), (new_iat + HOUR, 600));
    assert!(new_until > until);
    // The refreshed token verifies with a client's verifier built from the JWKS.
    let client = licensing_core::Verifier::new(store(&state), "p");
    let verdict = client.check(refreshed, &licensing_core::Context::at(new_iat));
    assert_eq!(verdict.status, licensing_core::Status::Valid, "{verdict:?}");
    let verdict = client.check(refreshed, &licensing_core::Context::at(new_until + 601));
    assert_eq!(verdict.status, licensing_core::Status::CheckInRequired);

    // An activation answers a token with check-in as well.
    let (status, activated) = activate(&state, &key, "box-a").await;
    assert_eq!(status, StatusCode::CREATED, "{activated}");
    let (at, until, _) = check_in_of(&state, activated["license_token"].as_str().unwrap());
    assert_eq!(until, at + HOUR);
    let answer = validate(&state, &key, "box-a").await;
    assert_eq!(answer["machine_activated"], true);
    assert_eq!(answer["machine_id"], activated["machine_id"]);
    let machine = answer["machine_token"].as_str().unwrap();
    let machine = verify_token(machine, TokenKind::Machine, &store(&state)).unwrap();
    assert_eq!(machine.claims["fingerprint"]["id"], "box-a");
}

/// A validation naming the tokens the client holds signs again only those that are due: the
/// license token past half its check-in interval, a token issued before the license's last
/// change (within the margin), by another key, for another license or machine, or dated in
/// the future. Tokens not due come back null, and the status is answered all the same.
#[tokio::test]
async fn validation_signs_again_only_the_tokens_that_are_due() {
    let (_dir, state) = app().await;
    let policy = json!({ "model": "perpetual", "check_in_interval": HOUR });
    let (key, id) = license(&state, policy).await;
    let (status, activated) = activate(&state, &key, "box-a").await;
    assert_eq!(status, StatusCode::CREATED, "{activated}");
    let machine_id = activated["machine_id"].as_str().unwrap().to_owned();
    let now = unix_now();
    // The license last changed an hour ago.
    state.db().backdate_license(&id, now - HOUR).await.unwrap();
    let kid = state.key().public_key().kid().to_owned();
    let held = |license: (&str, &str, i64), machine: (&str, &str, i64)| {
        json!({ "license": { "sub": license.0, "kid": license.1, "iat": license.2 },
                "machine": { "sub": machine.0, "kid": machine.1, "iat": machine.2 } })
    };
    let signed = |answer: &Value| {
        (
            answer["license_token"].is_string(),
            answer["machine_token"].is_string(),
        )
    };
    let recent = now - 60;
    let cases = [
        // Both current: nothing is signed but the response.
        (
            (id.as_str(), kid.as_str(), recent),
            (machine_id.as_str(), kid.as_str(), recent),
            (false, false),
        ),
        // Less than half the check-in interval old: still current.
        (
            (&id, &kid, now - HOUR / 2 + 60),
            (&machine_id, &kid, recent),
            (false, false),
        ),
        // Past half the interval: a new license token (`check_in.until` moves forward).
        (
            (&id, &kid, now - HOUR / 2 - 5),
            (&machine_id, &kid, recent),
            (true, false),
        ),
        // Within the margin after the last change: signed again.
        (
            (&id, &kid, recent),
            (&machine_id, &kid, now - HOUR + 10),
            (false, true),
        ),
        // Another key, another license or machine, a future `iat`.
        (
            (&id, "another-kid", recent),
            (&machine_id, "another-kid", recent),
            (true, true),
        ),
        (
            ("lic_other", &kid, recent),
            ("mch_other", &kid, recent),
            (true, true),
        ),
        (
            (&id, &kid, now + 120),
            (&machine_id, &kid, now + 120),
            (true, true),
        ),
    ];
    for (license, machine, expect) in cases {
        let answer = validate_holding(&state, &key, "box-a", held(license, machine)).await;
        assert_eq!(answer["status"], "active");
        assert_eq!(answer["machine_activated"], true);
        assert_eq!(signed(&answer), expect, "{license:?} {machine:?}");
    }
    // Holding nothing, or only a license token: what is not held is signed.
    assert_eq!(signed(&validate(&state, &key, "box-a").await), (true, true));
    let only_license = json!({ "license": { "sub": id, "kid": kid, "iat": recent } });
    let answer = validate_holding(&state, &key, "box-a", only_license).await;
    assert_eq!(signed(&answer), (false, true));
    // The machine token signed without a new license token still verifies and carries the
    // license's end.
    let machine = verify_token(
        answer["machine_token"].as_str().unwrap(),
        TokenKind::Machine,
        &store(&state),
    )
    .unwrap();
    assert_eq!(machine.claims["sub"], machine_id.as_str());
    assert_eq!(machine.claims["license_id"], id.as_str());

    // A change to the license (suspend, then reinstate) makes both due again; while
    // suspended, nothing is signed whatever is held.
    let current = held((&id, &kid, recent), (&machine_id, &kid, recent));
    for action in ["suspend", "reinstate"] {
        let path = format!("/v1/licenses/{id}/{action}");
        let (code, _) = call(&state, "POST", &path, Some(ADMIN), Some(json!({}))).await;
        assert_eq!(code, StatusCode::OK);
        let answer = validate_holding(&state, &key, "box-a", current.clone()).await;
        let expect = if action == "suspend" {
            (false, false)
        } else {
            (true, true)
        };
        assert_eq!(signed(&answer), expect, "{action}");
    }

    // Held tokens are checked like every field.
    for bad in [
        json!({ "license": { "sub": "", "kid": kid, "iat": recent } }),
        json!({ "machine": { "sub": machine_id, "kid": "a kid", "iat": recent } }),
        json!({ "license": { "sub": id, "kid": kid } }),
        json!({ "license": { "sub": id, "kid": kid, "iat": recent, "extra": 1 } }),
    ] {
        let body = json!({ "license_key": key, "fingerprint": "box-a",
                           "nonce": "nonce-0123456789", "held": bad });
        let (status, answer) = call(&state, "POST", "/v1/client/validate", None, Some(body)).await;
        assert!(status.is_client_error(), "{bad}: {status} {answer}");
    }
}

/// Machines are cached for validations, but this process's activations, deactivations and
/// transfers are seen by the next validation at once (the cache also remembers a fingerprint
/// that is not activated, and that too is forgotten).
#[tokio::test]
async fn validation_sees_this_process_machine_changes_at_once() {
    let (_dir, state) = app().await;
    let policy = json!({ "model": "node_locked", "max_machines": 2, "max_transfers": 1 });
    let (key, _) = license(&state, policy).await;
    let activated = |fingerprint: &'static str| {
        let (state, key) = (&state, &key);
        async move { validate(state, key, fingerprint).await["machine_activated"] == true }
    };
    assert!(!activated("box-a").await);
    assert!(!activated("box-a").await);
    activate(&state, &key, "box-a").await;
    assert!(activated("box-a").await);
    let body =
        json!({ "license_key": key, "from_fingerprint": "box-a", "fingerprint": fp("box-b") });
    let (status, answer) = call(&state, "POST", "/v1/client/transfer", None, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert!(!activated("box-a").await);
    assert!(activated("box-b").await);
    let body = json!({ "license_key": key, "fingerprint": "box-b" });
    let (status, _) = call(&state, "POST", "/v1/client/deactivate", None, Some(body)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!activated("box-b").await);
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn node_locked_validation_refreshes_only_for_an_activated_machine() {
    let (_dir, state) = app().await;
    let policy = json!({ "model": "node_locked", "max_machines": 2, "check_in_interval": HOUR });
    let (key, _) = license(&state, policy).await;
    let answer = validate(&state, &key, "box-a").await;
    assert_eq!(answer["status"], "active");
    assert_eq!(answer["license_token"], Value::Null);
    activate(&state, &key, "box-a").await;
    activate(&state, &key, "box-b").await;
    let answer = validate(&state, &key, "box-a").await;
    let token = answer["license_token"].as_str().unwrap();
    assert_eq!(bound_ids(&state, token), ["box-a", "box-b"]);
    let (iat, until, grace) = check_in_of(&state, token);
    assert_eq!((until, grace), (iat + HOUR, 0));
    assert!(answer["machine_token"].is_string());
    assert_eq!(
        validate(&state, &key, "box-c").await["license_token"],
        Value::Null
    );
}

#[tokio::test]
async fn suspended_and_revoked_answers_carry_no_tokens() {
    let (_dir, state) = app().await;
    let (key, id) = license(&state, json!({ "model": "perpetual" })).await;
    activate(&state, &key, "box-a").await;
    assert!(validate(&state, &key, "box-a").await["license_token"].is_string());
    for (action, status) in [("suspend", "suspended"), ("revoke", "revoked")] {
        let path = format!("/v1/licenses/{id}/{action}");
        let (code, _) = call(&state, "POST", &path, Some(ADMIN), Some(json!({}))).await;
        assert_eq!(code, StatusCode::OK);
        let answer = validate(&state, &key, "box-a").await;
        assert_eq!(answer["status"], status);
        assert_eq!(answer["machine_activated"], true);
        assert_eq!(answer["license_token"], Value::Null);
        assert_eq!(answer["machine_token"], Value::Null);
    }
}

#[tokio::test]
async fn deactivating_frees_the_slot_and_unbinds_the_machine() {
    let (_dir, state) = app().await;
    let (key, id) = license(&state, json!({ "model": "node_locked", "max_machines": 1 })).await;
    let (status, a) = activate(&state, &key, "box-a").await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = activate(&state, &key, "box-b").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    let deactivate = |fingerprint: &str| {
        let body = json!({ "license_key": key, "fingerprint": fingerprint });
        call(&state, "POST", "/v1/client/deactivate", None, Some(body))
    };
    let (status, body) = deactivate("box-a").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({ "deactivated": true, "machine_id": a["machine_id"] })
    );
    // No machine left: a node-locked license has no token, as before its first activation.
    assert_eq!(stored_token(&state, &id).await, None);
    let (status, body) = deactivate("box-a").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "machine_not_found");

    let (status, _) = activate(&state, &key, "box-b").await;
    assert_eq!(status, StatusCode::CREATED);
    let token = stored_token(&state, &id).await.unwrap();
    assert_eq!(bound_ids(&state, &token), ["box-b"]);
    assert_eq!(machine_ids(&state, &id).await, ["box-b"]);

    // Bad input is a 4xx naming the problem.
    let (status, body) = deactivate("").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let body = json!({ "license_key": key, "fingerprint": "box-b", "extra": 1 });
    let (status, _) = call(&state, "POST", "/v1/client/deactivate", None, Some(body)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let body = json!({ "license_key": "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE", "fingerprint": "box-b" });
    let (status, body) = call(&state, "POST", "/v1/client/deactivate", None, Some(body)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("license_not_found"))
    );
}

#[tokio::test]
async fn transfer_is_atomic_and_limited() {
    let (_dir, state) = app().await;
    let policy = json!({ "model": "node_locked", "max_machines": 2, "max_transfers": 1 });
    let (key, id) = license(&state, policy).await;
    activate(&state, &key, "box-a").await;
    activate(&state, &key, "box-b").await;
    let transfer = |from: &str, to: &str| {
        let body = json!({ "license_key": key, "from_fingerprint": from, "fingerprint": fp(to) });
        call(&state, "POST", "/v1/client/transfer", None, Some(body))
    };
    let (status, body) = transfer("box-x", "box-c").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("machine_not_found"))
    );
    let (status, _) = transfer("box-a", "box-a").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, body) = transfer("box-a", "box-b").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "machine_already_activated");
    assert_eq!(machine_ids(&state, &id).await, ["box-a", "box-b"]);

    let (status, moved) = transfer("box-a", "box-c").await;
    assert_eq!(status, StatusCode::CREATED, "{moved}");
    let machine = verify_token(
        moved["machine_token"].as_str().unwrap(),
        TokenKind::Machine,
        &store(&state),
    )
    .unwrap();
    assert_eq!(machine.claims["fingerprint"]["id"], "box-c");
    assert_eq!(
        bound_ids(&state, moved["license_token"].as_str().unwrap()),
        ["box-b", "box-c"]
    );
    let stored = stored_token(&state, &id).await.unwrap();
    assert_eq!(bound_ids(&state, &stored), ["box-b", "box-c"]);
    assert_eq!(machine_ids(&state, &id).await, ["box-b", "box-c"]);

    // The one transfer is used: refused, and nothing changed.
    let (status, body) = transfer("box-b", "box-d").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "transfer_limit_reached");
    assert_eq!(machine_ids(&state, &id).await, ["box-b", "box-c"]);
    assert_eq!(stored_token(&state, &id).await.unwrap(), stored);

    // A suspended license transfers nothing.
    let (key, id) = license(&state, json!({ "model": "node_locked", "max_machines": 1 })).await;
    activate(&state, &key, "box-a").await;
    let path = format!("/v1/licenses/{id}/suspend");
    call(&state, "POST", &path, Some(ADMIN), Some(json!({}))).await;
    let body =
        json!({ "license_key": key, "from_fingerprint": "box-a", "fingerprint": fp("box-z") });
    let (status, body) = call(&state, "POST", "/v1/client/transfer", None, Some(body)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "license_suspended");
    assert_eq!(machine_ids(&state, &id).await, ["box-a"]);
}

#[tokio::test]
async fn admin_deletes_a_machine_with_the_operate_role() {
    let (_dir, state) = app().await;
    add_token(&state, IT_STAFF, "it_staff").await;
    let (key, id) = license(&state, json!({ "model": "node_locked", "max_machines": 1 })).await;
    let (_, a) = activate(&state, &key, "box-a").await;
    let machine_id = a["machine_id"].as_str().unwrap();
    let path = format!("/v1/licenses/{id}/machines/{machine_id}");
    let (status, body) = call(&state, "DELETE", &path, Some(AUDITOR), None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let (status, _) = call(&state, "DELETE", &path, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(machine_ids(&state, &id).await, ["box-a"]);
    let (status, body) = call(&state, "DELETE", &path, Some(IT_STAFF), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["machine_id"], machine_id);
    assert!(machine_ids(&state, &id).await.is_empty());
    let (status, body) = call(&state, "DELETE", &path, Some(IT_STAFF), None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("machine_not_found"))
    );
    let path = format!("/v1/licenses/lic_nope/machines/{machine_id}");
    let (status, body) = call(&state, "DELETE", &path, Some(ADMIN), None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("license_not_found"))
    );
    // The slot is free again.
    let (status, _) = activate(&state, &key, "box-b").await;
    assert_eq!(status, StatusCode::CREATED);
}

fn offline_request(key: &str, machine: &str, nonce: &str) -> Value {
    json!({
        "kind": "licensing.offline_activation_request",
        "version": 1,
        "license_key": key,
        "fingerprint": fp(machine),
        "nonce": nonce,
        "created_at": now(),
    })
}

#[tokio::test]
async fn offline_activation_through_the_api() {
    let (_dir, state) = app().await;
    add_token(&state, IT_STAFF, "it_staff").await;
    let policy = json!({ "model": "node_locked", "max_machines": 1, "check_in_interval": HOUR });
    let (key, id) = license(&state, policy).await;
    let nonce = "offline-nonce-0123456789";
    let request = offline_request(&key, "box-air", nonce);
    let post = |token: &'static str, body: Value| {
        call(
            &state,
            "POST",
            "/v1/offline/activate",
            Some(token),
            Some(body),
        )
    };
    let (status, body) = post(AUDITOR, request.clone()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );

    let (status, file) = post(IT_STAFF, request.clone()).await;
    assert_eq!(status, StatusCode::OK, "{file}");
    assert_eq!(file["kind"], "licensing.offline_activation_response");
    assert_eq!(file["version"], 1);
    let token = file["response_token"].as_str().unwrap();
    let store = store(&state);
    assert!(verify_token(token, TokenKind::Machine, &store).is_err());
    let claims = verify_token(token, TokenKind::Response, &store)
        .unwrap()
        .claims;
    assert_eq!(claims["nonce"], nonce);
    assert_eq!(claims["offline"], true);
    assert_eq!(claims["status"], "active");
    assert_eq!(claims["machine_activated"], true);
    assert_eq!(claims["fingerprint"], "box-air");
    assert_eq!(claims["license_id"], id.as_str());
    let iat = claims["iat"].as_i64().unwrap();
    assert_eq!(claims["exp"].as_i64().unwrap(), iat + 30 * DAY);
    let machine = claims["machine_token"].as_str().unwrap();
    let machine = verify_token(machine, TokenKind::Machine, &store).unwrap();
    assert_eq!(machine.claims["sub"], claims["machine_id"]);
    let license_token = claims["license_token"].as_str().unwrap();
    assert_eq!(bound_ids(&state, license_token), ["box-air"]);
    assert_eq!(check_in_of(&state, license_token).1, iat + HOUR);
    assert_eq!(machine_ids(&state, &id).await, ["box-air"]);

    // The rules of online activation: the machine limit holds.
    let (status, body) = post(IT_STAFF, offline_request(&key, "box-two", nonce)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "machine_limit_reached");

    // A bad request file is a 4xx naming the problem.
    let mut bad = request.clone();
    bad["kind"] = json!("licensing.something_else");
    let (status, body) = post(IT_STAFF, bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["detail"].as_str().unwrap().contains("kind"), "{body}");
    let mut bad = request.clone();
    bad["version"] = json!(2);
    let (status, body) = post(IT_STAFF, bad).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("unsupported_version")
        )
    );
    let mut bad = request.clone();
    bad["nonce"] = json!("too-short");
    let (status, body) = post(IT_STAFF, bad).await;
    assert!(
        body["detail"].as_str().unwrap().contains("nonce"),
        "{status} {body}"
    );
    let mut bad = request.clone();
    bad["extra"] = json!(true);
    let (status, _) = post(IT_STAFF, bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let mut bad = request;
    bad.as_object_mut().unwrap().remove("created_at");
    let (status, body) = post(IT_STAFF, bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["detail"].as_str().unwrap().contains("created_at"),
        "{body}"
    );
}

#[tokio::test]
async fn activation_and_validation_may_name_the_user_within_the_display_name_rules() {
    let (_dir, state) = app().await;
    let (key, _) = license(
        &state,
        json!({ "model": "subscription", "duration": 86_400 }),
    )
    .await;
    let machine = json!({ "id": "m-user", "components": {}, "virtualization": [] });
    for bad in ["", " ", "a\u{7}b", &"x".repeat(201)] {
        let body = json!({ "license_key": key, "fingerprint": machine, "user": bad });
        let (status, answer) = call(&state, "POST", "/v1/client/activate", None, Some(body)).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad:?}: {answer}"
        );
        assert!(answer.to_string().contains("user"), "{answer}");
        let body = json!({ "license_key": key, "fingerprint": "m-user",
            "nonce": "nonce-123456", "user": bad });
        let (status, answer) = call(&state, "POST", "/v1/client/validate", None, Some(body)).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad:?}: {answer}"
        );
    }
    let body = json!({ "license_key": key, "fingerprint": machine, "user": "Alice Liddell" });
    let (status, answer) = call(&state, "POST", "/v1/client/activate", None, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let body = json!({ "license_key": key, "fingerprint": "m-user",
        "nonce": "nonce-123456", "user": "Alice Liddell" });
    let (status, answer) = call(&state, "POST", "/v1/client/validate", None, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}
