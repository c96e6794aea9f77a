//! The protocol corpus (`tests/protocol/`) replayed against the real router: each corpus
//! request is accepted (or refused with the status and code the corpus names), and each
//! answer the server produces parses into its `licensing_core::protocol` type; the tokens it
//! carries have the protocol's claims. The same files are replayed by the core's tests, so the
//! client and the server read one protocol.

use std::path::{Path, PathBuf};

use licensing_core::protocol::{
    ActivateResponse, DeactivateResponse, ErrorBody, ErrorCode, LeaseAnswer, LeftQueue,
    MachineClaims, OfflineResponse, QueuedAnswer, ResponseClaims, ServerStatus, ValidateResponse,
};
use licensing_core::{LeaseClaims, TokenKind, TrustStore, verify_token};
use serde::de::DeserializeOwned;

use super::*;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/protocol")
}

/// A corpus file.
fn corpus(name: &str) -> Value {
    let text = std::fs::read_to_string(corpus_dir().join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Every corpus file of `kind`: its name and document.
fn corpus_of(kind: &str) -> Vec<(String, Value)> {
    let mut found = Vec::new();
    for dir in std::fs::read_dir(corpus_dir()).unwrap() {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&dir).unwrap() {
            let path = file.unwrap().path();
            let name = format!(
                "{}/{}",
                dir.file_name().unwrap().to_string_lossy(),
                path.file_name().unwrap().to_string_lossy()
            );
            let doc: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            if doc["kind"] == kind {
                found.push((name, doc));
            }
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// `value` read as the protocol type `T`, or the test fails naming `what`.
fn typed<T: DeserializeOwned>(value: &Value, what: &str) -> T {
    serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{what}: {e}: {value}"))
}

fn trust(state: &AppState) -> TrustStore {
    TrustStore::from_document(&state.jwks().to_string()).unwrap()
}

/// The verified claims of `token` (a `kind` token) read as `T`.
fn claims<T: DeserializeOwned>(state: &AppState, token: &str, kind: TokenKind) -> T {
    let verified = verify_token(token, kind, &trust(state)).unwrap();
    typed(&Value::Object(verified.claims), "claims")
}

/// The corpus request `name` with the license key `key`, sent to `path` (the route's, `{id}`
/// filled in); the answer.
async fn send(
    state: &AppState,
    name: &str,
    path: &str,
    key: &str,
    token: Option<&str>,
    edit: impl FnOnce(&mut Value),
) -> (StatusCode, Value) {
    let mut body = corpus(name)["body"].clone();
    body["license_key"] = json!(key);
    edit(&mut body);
    call(state, "POST", path, token, Some(body)).await
}

/// A refusal the server answered: an [`ErrorBody`] with `code`.
fn refused(answer: &Value, status: StatusCode, expect: (StatusCode, ErrorCode), what: &str) {
    assert_eq!(status, expect.0, "{what}: {answer}");
    let body: ErrorBody = typed(answer, what);
    assert_eq!(body.error, expect.1, "{what}: {answer}");
}

/// The corpus refusal `name`: its status and code.
fn corpus_refusal(name: &str) -> (StatusCode, ErrorCode) {
    let doc = corpus(name);
    let status = StatusCode::from_u16(doc["status"].as_u64().unwrap() as u16).unwrap();
    (
        status,
        ErrorCode::parse(doc["body"]["error"].as_str().unwrap()),
    )
}

#[tokio::test]
async fn the_corpus_replays_against_the_router() {
    protocol_on(None).await;
    if let Some(url) = postgres::fresh_database("the_corpus_replays_against_the_router") {
        protocol_on(Some(&url)).await;
    }
}

async fn protocol_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    machines(&state).await;
    seats(&state).await;
    invalid_requests(&state).await;
}

/// Activation, transfer, validation, deactivation and offline activation.
async fn machines(state: &AppState) {
    let (key, license_id) = license(
        state,
        json!({ "model": "perpetual", "max_machines": 2, "max_transfers": 1 }),
    )
    .await;
    let fp = corpus("activate/request.json")["body"]["fingerprint"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The machine a transfer gives up, then the transfer to the corpus's machine.
    let (status, old) = call(
        state,
        "POST",
        "/v1/client/activate",
        None,
        Some(json!({ "license_key": key, "fingerprint": { "id": "fp_old_machine_0001" } })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{old}");
    let (status, answer) = send(
        state,
        "transfer/request.json",
        "/v1/client/transfer",
        &key,
        None,
        |_| {},
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let moved: ActivateResponse = typed(&answer, "transfer");
    assert_eq!(moved.license_id, license_id);

    for name in [
        "activate/request.json",
        "activate/request-virtual.json",
        "activate/request-with-user.json",
    ] {
        let (status, answer) = send(state, name, "/v1/client/activate", &key, None, |_| {}).await;
        // The machine is activated already (the transfer moved it here).
        assert_eq!(status, StatusCode::OK, "{name}: {answer}");
        let activated: ActivateResponse = typed(&answer, name);
        assert_eq!(activated.machine_id, moved.machine_id);
        let machine: MachineClaims = claims(state, &activated.machine_token, TokenKind::Machine);
        assert_eq!(
            (machine.sub.as_str(), machine.fingerprint.id.as_str()),
            (activated.machine_id.as_str(), fp.as_str())
        );
        assert_eq!(machine.license_id, license_id);
        assert!(activated.license_token.is_some() && activated.deactivation_key.is_some());
    }

    for name in [
        "validate/request.json",
        "validate/request-holding.json",
        "validate/request-holding-license-only.json",
        "validate/request-with-user.json",
    ] {
        let (status, answer) = send(state, name, "/v1/client/validate", &key, None, |_| {}).await;
        assert_eq!(status, StatusCode::OK, "{name}: {answer}");
        let validated: ValidateResponse = typed(&answer, name);
        let response: ResponseClaims =
            claims(state, &validated.response_token, TokenKind::Response);
        assert_eq!(response.status, ServerStatus::Active, "{name}");
        assert!(
            response.machine_activated && response.activation_required,
            "{name}"
        );
        assert_eq!(response.fingerprint, fp);
        assert_eq!(response.nonce, corpus(name)["body"]["nonce"]);
    }

    let (status, answer) = send(
        state,
        "deactivate/request-with-machine.json",
        "/v1/client/deactivate",
        &key,
        None,
        |_| {},
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let deactivated: DeactivateResponse = typed(&answer, "deactivation");
    assert_eq!(deactivated.machine_id, Some(moved.machine_id.clone()));
    // Deactivated already: the corpus's refusal.
    let (status, answer) = send(
        state,
        "deactivate/request.json",
        "/v1/client/deactivate",
        &key,
        None,
        |_| {},
    )
    .await;
    let expect = corpus_refusal("deactivate/refused-404-machine_not_found.json");
    refused(&answer, status, expect, "deactivate again");

    // An unknown key: the validation refusal of the corpus.
    let (status, answer) = send(
        state,
        "validate/request.json",
        "/v1/client/validate",
        "ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ",
        None,
        |_| {},
    )
    .await;
    let expect = corpus_refusal("validate/refused-404-license_not_found.json");
    refused(&answer, status, expect, "unknown key");

    // The air-gapped request file, through the admin API: the response file.
    let (status, answer) = send(
        state,
        "offline/request.json",
        "/v1/offline/activate",
        &key,
        Some(ADMIN),
        |_| {},
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let file: OfflineResponse = typed(&answer, "offline response");
    assert!(file.is_known_kind());
    let response: ResponseClaims = claims(state, &file.response_token, TokenKind::Response);
    assert!(response.is_offline() && response.deactivation_key.is_some());
    assert_eq!(
        response.nonce,
        corpus("offline/request.json")["body"]["nonce"]
    );
}

/// Check-out, heartbeat, borrowing, waiting in line, leaving the line, denial and check-in.
async fn seats(state: &AppState) {
    let (key, license_id) = license(state, json!({ "model": "floating", "seats": 1 })).await;
    for (path, body) in [
        (
            "borrowing",
            json!({ "max_seconds": 7 * 86_400, "max_leases": 1 }),
        ),
        ("queue", json!({ "max_seconds": 3600 })),
    ] {
        let path = format!("/v1/licenses/{license_id}/{path}");
        let (status, answer) = call(state, "PUT", &path, Some(ADMIN), Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }

    let (status, answer) = send(
        state,
        "check-out/request.json",
        "/v1/client/leases",
        &key,
        None,
        |_| {},
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let lease: LeaseAnswer = typed(&answer, "check-out");
    let secret = lease.lease_secret.clone().expect("a lease secret");
    let token: LeaseClaims = claims(state, &lease.lease_token, TokenKind::Lease);
    assert_eq!(
        (token.sub.as_str(), token.epoch),
        (lease.lease_id.as_str(), lease.epoch)
    );

    let path = |what: &str| format!("/v1/client/leases/{}/{what}", lease.lease_id);
    let with_lease = |body: &mut Value| {
        body["epoch"] = json!(lease.epoch);
        if body.get("lease_secret").is_some() {
            body["lease_secret"] = json!(secret);
        }
    };
    let (status, answer) = send(
        state,
        "heartbeat/request.json",
        &path("heartbeat"),
        &key,
        None,
        with_lease,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let beat: LeaseAnswer = typed(&answer, "heartbeat");
    assert_eq!(beat.lease_id, lease.lease_id);
    assert_eq!(beat.lease_secret, None, "a heartbeat answers no secret");

    // Borrowing the lease held (its secret presented): the same lease, borrowed.
    let (status, answer) = send(
        state,
        "check-out/request-borrow.json",
        "/v1/client/leases",
        &key,
        None,
        |body| body["lease_secret"] = json!(secret),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let borrowed: LeaseAnswer = typed(&answer, "borrowing");
    assert!(borrowed.borrowed && borrowed.lease_id == lease.lease_id);
    let token: LeaseClaims = claims(state, &borrowed.lease_token, TokenKind::Lease);
    assert!(token.borrowed);

    // Another instance waits in line (the one seat is taken), then leaves it.
    let (status, answer) = send(
        state,
        "check-out/request-queue.json",
        "/v1/client/leases",
        &key,
        None,
        |_| {},
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let place: QueuedAnswer = typed(&answer, "place in line");
    assert_eq!((place.position, place.waiting), (1, 1));
    let (status, answer) = send(
        state,
        "leave-queue/request.json",
        &format!("/v1/client/queue/{}/leave", place.queue_id),
        &key,
        None,
        |_| {},
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let left: LeftQueue = typed(&answer, "leaving the line");
    assert!(left.left && left.queue_id == place.queue_id);

    // An instance that does not wait: the corpus's denial.
    let (status, answer) = send(
        state,
        "check-out/request-older-sdk.json",
        "/v1/client/leases",
        &key,
        None,
        |_| {},
    )
    .await;
    let expect = corpus_refusal("check-out/refused-409-no_seats.json");
    refused(&answer, status, expect, "no seat");

    // A check-in without the secret of a lease that has one, then with it.
    let with_borrowed = |body: &mut Value| {
        body["epoch"] = json!(borrowed.epoch);
        if body.get("lease_secret").is_some() {
            body["lease_secret"] = json!(secret);
        }
    };
    let (status, answer) = send(
        state,
        "check-in/request-older-sdk.json",
        &path("release"),
        &key,
        None,
        with_borrowed,
    )
    .await;
    let expect = corpus_refusal("heartbeat/refused-403-lease_secret_required.json");
    refused(&answer, status, expect, "check-in without the secret");
    let (status, answer) = send(
        state,
        "check-in/request.json",
        &path("release"),
        &key,
        None,
        with_borrowed,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // Over: a heartbeat is the corpus's `lease_released`.
    let (status, answer) = send(
        state,
        "heartbeat/request.json",
        &path("heartbeat"),
        &key,
        None,
        with_borrowed,
    )
    .await;
    let expect = corpus_refusal("heartbeat/refused-410-lease_released.json");
    refused(&answer, status, expect, "heartbeat after check-in");
}

/// Every must-be-refused request of the corpus: its status, its code, and the field named.
async fn invalid_requests(state: &AppState) {
    let invalid = corpus_of("invalid_request");
    assert!(invalid.len() >= 10, "{} invalid requests", invalid.len());
    for (name, doc) in invalid {
        let route = doc["route"].as_str().unwrap();
        let path = route
            .strip_prefix("POST ")
            .unwrap()
            .replace("{id}", "lse_corpus");
        let token = path.starts_with("/v1/offline/").then_some(ADMIN);
        let (status, answer) = call(state, "POST", &path, token, Some(doc["body"].clone())).await;
        let expect = (
            StatusCode::from_u16(doc["status"].as_u64().unwrap() as u16).unwrap(),
            ErrorCode::parse(doc["error"].as_str().unwrap()),
        );
        refused(&answer, status, expect, &name);
        let field = doc["field"].as_str().unwrap();
        assert!(
            answer["detail"].as_str().unwrap().contains(field),
            "{name}: the detail does not name `{field}`: {answer}"
        );
    }
}

/// A license not valid yet: a validation answers it signed (`not_yet_valid`, no license
/// token), a seat check-out is refused with 403 `license_not_yet_valid` (the corpus's
/// refusal), and an activation binds the machine (its token carries `nbf`: the machine runs it
/// from its start, offline).
#[tokio::test]
async fn a_license_not_valid_yet_is_refused_use_but_may_be_bound() {
    not_yet_valid_on(None).await;
    if let Some(url) = postgres::fresh_database("a_license_not_valid_yet_is_refused_use") {
        not_yet_valid_on(Some(&url)).await;
    }
}

/// A license of a policy `policy` starting in a day; its key.
async fn future_license(state: &AppState, policy: Value) -> String {
    let (_, _) = license(state, policy.clone()).await;
    let (_, policies) = call(state, "GET", "/v1/policies", Some(ADMIN), None).await;
    let policy_id = policies["policies"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|p| p["model"] == policy["model"])
        .unwrap()["id"]
        .clone();
    let starts_at = now() + 86_400;
    let (status, created) = call(
        state,
        "POST",
        "/v1/licenses",
        Some(ADMIN),
        Some(json!({ "policy_id": policy_id, "starts_at": starts_at })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["key"].as_str().unwrap().to_owned()
}

async fn not_yet_valid_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;

    let key = future_license(&state, json!({ "model": "floating", "seats": 2 })).await;
    let (status, answer) = send(
        &state,
        "check-out/request.json",
        "/v1/client/leases",
        &key,
        None,
        |_| {},
    )
    .await;
    let expect = corpus_refusal("check-out/refused-403-license_not_yet_valid.json");
    refused(&answer, status, expect, "check-out before the start");
    let (status, answer) = send(
        &state,
        "validate/request.json",
        "/v1/client/validate",
        &key,
        None,
        |_| {},
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let validated: ValidateResponse = typed(&answer, "validation");
    let response: ResponseClaims = claims(&state, &validated.response_token, TokenKind::Response);
    assert_eq!(response.status, ServerStatus::NotYetValid);
    assert!(response.status.is_refusal());
    assert_eq!(
        response.license_token, None,
        "no license token before the start"
    );

    let key = future_license(&state, json!({ "model": "perpetual", "max_machines": 1 })).await;
    let (status, answer) = send(
        &state,
        "activate/request.json",
        "/v1/client/activate",
        &key,
        None,
        |_| {},
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let (status, answer) = send(
        &state,
        "validate/request.json",
        "/v1/client/validate",
        &key,
        None,
        |_| {},
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let validated: ValidateResponse = typed(&answer, "validation");
    let response: ResponseClaims = claims(&state, &validated.response_token, TokenKind::Response);
    assert_eq!(response.status, ServerStatus::NotYetValid);
    assert!(response.machine_activated);
    assert_eq!(response.license_token, None);
}

/// The claims of the license token signed from a typed template are the claims the policy and
/// the license's overrides say, member for member (the template is typed, not edited by JSON
/// path): model, customer, limits, features (the policy's, one overridden, one added), version,
/// node lock with the activated machine bound, site, metadata, check-in, times.
#[tokio::test]
async fn a_template_signs_the_claims_its_policy_and_overrides_say() {
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
    let (status, policy) = call(
        &state,
        "POST",
        "/v1/policies",
        Some(ADMIN),
        Some(
            json!({ "product_id": "p", "name": "n", "model": "node_locked",
            "duration": 86_400, "grace_period": 600, "max_machines": 2,
            "features": { "export": { "limit": 3 }, "render": {} },
            "version": { "req": ">=2.0.0, <3.0.0" },
            "match": { "required": ["machine_id"], "min_matching": 2 },
            "allow_virtual": false,
            "site": { "name": "HQ", "restrictions": { "country": ["DE"] } },
            "check_in_interval": 3600, "check_in_grace": 120 }),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{policy}");
    let starts_at = now() - 60;
    let (status, license) = call(
        &state,
        "POST",
        "/v1/licenses",
        Some(ADMIN),
        Some(json!({ "policy_id": policy["id"], "starts_at": starts_at,
            "expires_at": starts_at + 7 * 86_400,
            "customer": { "id": "c-1", "name": "Contoso" },
            "features": { "export": { "limit": 9 }, "print": {} },
            "metadata": { "tier": "gold" } })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{license}");
    assert!(
        license["token"].is_null(),
        "node-locked: no token before a machine"
    );
    let fingerprint = json!({ "id": "fp_template", "components":
        { "machine_id": "h1", "hostname": "h2", "cpu": "h3" } });
    let (status, activated) = call(
        &state,
        "POST",
        "/v1/client/activate",
        None,
        Some(json!({ "license_key": license["key"], "fingerprint": fingerprint })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{activated}");
    let token = activated["license_token"].as_str().unwrap();
    let verified = verify_token(token, TokenKind::License, &trust(&state)).unwrap();
    let mut claims = Value::Object(verified.claims);
    let iat = claims["iat"].as_i64().unwrap();
    assert!(claims["jti"].as_str().unwrap().starts_with("jti_"));
    claims.as_object_mut().unwrap().remove("jti");
    assert_eq!(
        claims,
        json!({
            "iss": "test", "sub": license["id"], "aud": "p", "iat": iat,
            "nbf": starts_at, "exp": starts_at + 7 * 86_400,
            "lic": {
                "model": "node_locked",
                "customer": { "id": "c-1", "name": "Contoso" },
                "max_machines": 2, "grace_period": 600,
                "features": { "export": { "limit": 9 }, "print": {}, "render": {} },
                "version": { "req": ">=2.0.0, <3.0.0" },
                "node_lock": {
                    "fingerprints": [{ "id": "fp_template", "components":
                        { "cpu": "h3", "hostname": "h2", "machine_id": "h1" } }],
                    "match": { "required": ["machine_id"], "min_matching": 2 },
                    "allow_virtual": false
                },
                "site": { "name": "HQ", "restrictions": { "country": ["DE"] } },
                "metadata": { "tier": "gold" },
                "check_in": { "until": iat + 3600, "grace": 120 }
            }
        })
    );
}
