//! The machine limit (issue 20, part 0) and tolerated hardware changes (part 1), in process on
//! SQLite and PostgreSQL: a machine that is not activated gets no license token when the
//! license runs only on activated machines; a removed machine loses the license at its next
//! validation; deactivate-then-activate of another machine counts as a transfer; and a
//! machine whose hardware changed within the license's match rule is still that machine
//! (stored fingerprint updated, change recorded) while a change beyond it is another machine.

use std::collections::BTreeMap;

use licensing_core::fingerprint::RawComponents;
use licensing_core::{MachineFingerprint, TokenKind, TrustStore, verify_token};

use super::*;

fn fp(id: &str) -> Value {
    json!({ "id": id })
}

async fn activate_with(state: &AppState, key: &str, fingerprint: Value) -> (StatusCode, Value) {
    let body = json!({ "license_key": key, "fingerprint": fingerprint });
    call(state, "POST", "/v1/client/activate", None, Some(body)).await
}

async fn activate(state: &AppState, key: &str, id: &str) -> (StatusCode, Value) {
    activate_with(state, key, fp(id)).await
}

async fn deactivate(state: &AppState, key: &str, id: &str) -> (StatusCode, Value) {
    let body = json!({ "license_key": key, "fingerprint": id });
    call(state, "POST", "/v1/client/deactivate", None, Some(body)).await
}

/// Validates (`machine`: the whole fingerprint, or null) and returns the verified claims.
async fn validate_with(state: &AppState, key: &str, id: &str, machine: Value) -> Value {
    let nonce = "machines-nonce-0123456789";
    let mut body = json!({ "license_key": key, "fingerprint": id, "nonce": nonce });
    if !machine.is_null() {
        body["machine"] = machine;
    }
    let (status, answer) = call(state, "POST", "/v1/client/validate", None, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let token = answer["response_token"].as_str().unwrap();
    let store = TrustStore::from_document(&state.jwks().to_string()).unwrap();
    Value::Object(
        verify_token(token, TokenKind::Response, &store)
            .unwrap()
            .claims,
    )
}

async fn validate(state: &AppState, key: &str, id: &str) -> Value {
    validate_with(state, key, id, Value::Null).await
}

/// How many client deactivations the license's machine events record.
async fn deactivations(state: &AppState, license_id: &str) -> i64 {
    let (_, body) = call(
        state,
        "GET",
        &format!("/v1/licenses/{license_id}/machines"),
        Some(ADMIN),
        None,
    )
    .await;
    body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "deactivated")
        .count() as i64
}

fn run<F: std::future::Future<Output = ()>>(name: &str, test: fn(Option<String>) -> F) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(test(None));
    if let Some(url) = postgres::fresh_database(name) {
        runtime.block_on(test(Some(url)));
    }
}

// ---- part 0: the machine limit -----------------------------------------------------------

/// A license with a machine limit (node-locked or not) answers a machine that is not activated
/// no license token, `machine_activated: false` and `activation_required: true`; a license
/// without a machine limit, or whose policy allows unmetered use, answers any machine.
#[test]
fn an_unactivated_machine_gets_no_license_token() {
    run(
        "an_unactivated_machine_gets_no_license_token",
        |url| async move {
            let (_dir, state) = app_on(url.as_deref()).await;
            for model in ["perpetual", "subscription", "node_locked"] {
                let mut policy = json!({ "model": model, "max_machines": 1 });
                if model == "subscription" {
                    policy["duration"] = json!(86_400);
                }
                let (key, _) = license(&state, policy).await;
                let (status, body) = activate(&state, &key, "box-a").await;
                assert_eq!(status, StatusCode::CREATED, "{body}");
                let owner = validate(&state, &key, "box-a").await;
                assert_eq!(owner["machine_activated"], true, "{model}");
                assert_eq!(owner["activation_required"], true, "{model}");
                assert!(owner["license_token"].is_string(), "{model}");

                // The copied store on a second machine.
                let copy = validate(&state, &key, "box-b").await;
                assert_eq!(copy["status"], "active", "{model}");
                assert_eq!(copy["machine_activated"], false, "{model}");
                assert_eq!(copy["activation_required"], true, "{model}");
                assert!(copy["license_token"].is_null(), "{model}: {copy}");
                assert!(copy["machine_token"].is_null(), "{model}");
                // Naming a held token changes nothing.
                let nonce = "machines-nonce-0123456789";
                let held =
                    json!({ "license": { "sub": copy["license_id"], "kid": "k", "iat": 1 } });
                let body = json!({ "license_key": key, "fingerprint": "box-b", "nonce": nonce,
                "held": held });
                let (status, _) =
                    call(&state, "POST", "/v1/client/validate", None, Some(body)).await;
                assert_eq!(status, StatusCode::OK);
            }

            // No machine limit: unmetered, any machine validates.
            let (key, _) = license(&state, json!({ "model": "perpetual" })).await;
            let any = validate(&state, &key, "box-z").await;
            assert_eq!(any["activation_required"], false);
            assert!(any["license_token"].is_string());

            // A machine limit with unmetered use allowed by the policy.
            let policy =
                json!({ "model": "perpetual", "max_machines": 1, "allow_unmetered": true });
            let (key, _) = license(&state, policy).await;
            let any = validate(&state, &key, "box-z").await;
            assert_eq!(any["activation_required"], false);
            assert!(any["license_token"].is_string());
            // ... which still caps activations.
            assert_eq!(activate(&state, &key, "box-a").await.0, StatusCode::CREATED);
            assert_eq!(
                activate(&state, &key, "box-b").await.0,
                StatusCode::CONFLICT
            );

            // Not for node-locked policies, and shown on the policy.
            let body = json!({ "product_id": "p", "name": "n", "model": "node_locked",
            "max_machines": 1, "allow_unmetered": true });
            let (status, answer) =
                call(&state, "POST", "/v1/policies", Some(ADMIN), Some(body)).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
            assert!(
                answer["detail"]
                    .as_str()
                    .unwrap()
                    .contains("allow_unmetered")
            );
            let (_, policies) = call(&state, "GET", "/v1/policies", Some(ADMIN), None).await;
            let flags: Vec<&Value> = policies["policies"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| &p["allow_unmetered"])
                .collect();
            assert!(flags.contains(&&json!(true)) && flags.contains(&&json!(false)));
        },
    );
}

/// A machine deactivated by the client, or deleted by an administrator, gets no token at its
/// next validation.
#[test]
fn a_removed_machine_loses_the_license() {
    run("a_removed_machine_loses_the_license", |url| async move {
        let (_dir, state) = app_on(url.as_deref()).await;
        let (key, id) = license(&state, json!({ "model": "perpetual", "max_machines": 2 })).await;
        for box_id in ["box-a", "box-b"] {
            assert_eq!(activate(&state, &key, box_id).await.0, StatusCode::CREATED);
            assert!(validate(&state, &key, box_id).await["license_token"].is_string());
        }
        let (status, body) = deactivate(&state, &key, "box-a").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let gone = validate(&state, &key, "box-a").await;
        assert_eq!(gone["machine_activated"], false);
        assert!(gone["license_token"].is_null(), "{gone}");

        let machine_b = validate(&state, &key, "box-b").await["machine_id"].clone();
        let path = format!("/v1/licenses/{id}/machines/{}", machine_b.as_str().unwrap());
        let (status, body) = call(&state, "DELETE", &path, Some(ADMIN), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let gone = validate(&state, &key, "box-b").await;
        assert_eq!(gone["machine_activated"], false);
        assert!(gone["license_token"].is_null(), "{gone}");

        // Both removals are recorded.
        let (_, list) = call(
            &state,
            "GET",
            &format!("/v1/licenses/{id}/machines"),
            Some(ADMIN),
            None,
        )
        .await;
        let kinds: Vec<&str> = list["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap())
            .collect();
        assert!(
            kinds.contains(&"deactivated") && kinds.contains(&"deleted"),
            "{list}"
        );
    });
}

/// Deactivating a machine and activating another in its slot is a transfer: it counts against
/// `max_transfers` with `/v1/client/transfer`. Re-activating the machine deactivated is free,
/// and so is the slot an administrator freed.
#[test]
fn deactivate_then_activate_counts_as_a_transfer() {
    run(
        "deactivate_then_activate_counts_as_a_transfer",
        |url| async move {
            let (_dir, state) = app_on(url.as_deref()).await;
            let policy = json!({ "model": "perpetual", "max_machines": 1, "max_transfers": 1 });
            let (key, id) = license(&state, policy).await;
            assert_eq!(activate(&state, &key, "box-a").await.0, StatusCode::CREATED);

            // The same machine again (a reinstall): free, as often as wanted.
            for _ in 0..3 {
                assert_eq!(deactivate(&state, &key, "box-a").await.0, StatusCode::OK);
                let (status, body) = activate(&state, &key, "box-a").await;
                assert_eq!(status, StatusCode::CREATED, "{body}");
            }

            // Another machine: the one transfer.
            assert_eq!(deactivate(&state, &key, "box-a").await.0, StatusCode::OK);
            let (status, body) = activate(&state, &key, "box-b").await;
            assert_eq!(status, StatusCode::CREATED, "{body}");

            // A second move is refused, and leaves nothing changed.
            assert_eq!(deactivate(&state, &key, "box-b").await.0, StatusCode::OK);
            let (status, body) = activate(&state, &key, "box-c").await;
            assert_eq!(
                (status, body["error"].as_str()),
                (StatusCode::CONFLICT, Some("transfer_limit_reached")),
                "{body}"
            );
            assert!(validate(&state, &key, "box-c").await["license_token"].is_null());
            // box-a's slot was taken by box-b: moving back is a move too.
            let (status, _) = activate(&state, &key, "box-a").await;
            assert_eq!(status, StatusCode::CONFLICT);
            // box-b, deactivated last, may come back.
            assert_eq!(activate(&state, &key, "box-b").await.0, StatusCode::CREATED);
            // And the transfer endpoint shares the count.
            let body = json!({ "license_key": key, "from_fingerprint": "box-b",
            "fingerprint": fp("box-c") });
            let (status, body) =
                call(&state, "POST", "/v1/client/transfer", None, Some(body)).await;
            assert_eq!(
                (status, body["error"].as_str()),
                (StatusCode::CONFLICT, Some("transfer_limit_reached"))
            );

            // An administrator's removal frees the slot for any machine.
            let machine_b = validate(&state, &key, "box-b").await["machine_id"].clone();
            let path = format!("/v1/licenses/{id}/machines/{}", machine_b.as_str().unwrap());
            assert_eq!(
                call(&state, "DELETE", &path, Some(ADMIN), None).await.0,
                StatusCode::OK
            );
            let (status, body) = activate(&state, &key, "box-d").await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            assert_eq!(deactivations(&state, &id).await, 5);

            // Without `max_transfers`, moves are unlimited.
            let (key, _) =
                license(&state, json!({ "model": "perpetual", "max_machines": 1 })).await;
            for (from, to) in [("m-1", "m-2"), ("m-2", "m-3"), ("m-3", "m-4")] {
                if from == "m-1" {
                    assert_eq!(activate(&state, &key, from).await.0, StatusCode::CREATED);
                }
                assert_eq!(deactivate(&state, &key, from).await.0, StatusCode::OK);
                assert_eq!(activate(&state, &key, to).await.0, StatusCode::CREATED);
            }
        },
    );
}

// ---- part 1: tolerated hardware changes ------------------------------------------------------

/// A fingerprint of product `p` from component values.
fn machine(values: &[(&str, &str)]) -> MachineFingerprint {
    let raw = RawComponents {
        values: values
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        virtualization: vec![],
    };
    MachineFingerprint::derive(&raw, "p")
}

fn with(
    base: &[(&'static str, &'static str)],
    name: &str,
    value: &'static str,
) -> MachineFingerprint {
    let values: Vec<(&str, &str)> = base
        .iter()
        .map(|(k, v)| if *k == name { (*k, value) } else { (*k, *v) })
        .collect();
    machine(&values)
}

fn as_json(fp: &MachineFingerprint) -> Value {
    serde_json::to_value(fp).unwrap()
}

const HOST: [(&str, &str); 4] = [
    ("machine_id", "mid-1"),
    ("hostname", "host-1"),
    ("cpu", "cpu-1"),
    ("disk", "disk-1"),
];

/// The reproduction of the issue: node-locked, one machine, `machine_id` required and 3 of 4
/// components. One other component changed: validate, activate, deactivate, transfer and
/// offline activation all find the machine, its stored fingerprint is updated (and the token
/// rebinds it), and the change is recorded. Two changed, or `machine_id` changed: another
/// machine.
#[test]
fn a_tolerated_hardware_change_is_the_same_machine() {
    run(
        "a_tolerated_hardware_change_is_the_same_machine",
        |url| async move {
            let (_dir, state) = app_on(url.as_deref()).await;
            let policy = json!({ "model": "node_locked", "max_machines": 1,
            "match": { "required": ["machine_id"], "min_matching": 3 } });
            let (key, id) = license(&state, policy).await;
            let a = machine(&HOST);
            let (status, first) = activate_with(&state, &key, as_json(&a)).await;
            assert_eq!(status, StatusCode::CREATED, "{first}");

            // New host name: within tolerance.
            let renamed = with(&HOST, "hostname", "host-2");
            assert_ne!(renamed.id, a.id);
            // An older client that sends only the id is not recognized (nothing changes).
            let old_client = validate(&state, &key, &renamed.id).await;
            assert_eq!(old_client["machine_activated"], false);
            let answer = validate_with(&state, &key, &renamed.id, as_json(&renamed)).await;
            assert_eq!(answer["machine_activated"], true, "{answer}");
            assert_eq!(answer["machine_id"], first["machine_id"]);
            assert_eq!(answer["fingerprint"], renamed.id.as_str());
            let token = answer["license_token"].as_str().unwrap();
            let bound = state.verifier().verify(token).unwrap();
            let lock = bound.claims().lic.node_lock.clone().unwrap();
            assert_eq!(lock.fingerprints.len(), 1);
            assert_eq!(lock.fingerprints[0].id, renamed.id);
            let stored = state.db().list_machines(&id).await.unwrap();
            assert_eq!(stored.len(), 1);
            assert_eq!(stored[0].fingerprint, renamed.id);
            // Recorded, with what changed.
            let (_, list) = call(
                &state,
                "GET",
                &format!("/v1/licenses/{id}/machines"),
                Some(ADMIN),
                None,
            )
            .await;
            let event = &list["events"][0];
            assert_eq!(event["kind"], "fingerprint_updated", "{list}");
            assert_eq!(event["previous_fingerprint"], a.id.as_str());
            assert_eq!(event["fingerprint"], renamed.id.as_str());
            assert_eq!(event["changed"], json!(["hostname"]));
            // Now found by id: no second update.
            let again = validate(&state, &key, &renamed.id).await;
            assert_eq!(again["machine_activated"], true);

            // Activation after another tolerated change: the same machine (200), updated.
            let new_cpu = machine(&[
                ("machine_id", "mid-1"),
                ("hostname", "host-2"),
                ("cpu", "cpu-2"),
                ("disk", "disk-1"),
            ]);
            let (status, body) = activate_with(&state, &key, as_json(&new_cpu)).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(body["machine_id"], first["machine_id"]);
            assert_eq!(
                state.db().list_machines(&id).await.unwrap()[0].fingerprint,
                new_cpu.id
            );

            // Offline activation after a tolerated change: the same machine.
            let new_disk = machine(&[
                ("machine_id", "mid-1"),
                ("hostname", "host-2"),
                ("cpu", "cpu-2"),
                ("disk", "disk-2"),
            ]);
            let request = json!({ "kind": "licensing.offline_activation_request", "version": 1,
            "license_key": key, "fingerprint": as_json(&new_disk),
            "nonce": "offline-nonce-0123456789", "created_at": now() });
            let (status, file) = call(
                &state,
                "POST",
                "/v1/offline/activate",
                Some(ADMIN),
                Some(request),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{file}");
            assert_eq!(
                state.db().list_machines(&id).await.unwrap()[0].fingerprint,
                new_disk.id
            );

            // Beyond tolerance: the required component, or two components, changed.
            let new_id = machine(&[
                ("machine_id", "mid-2"),
                ("hostname", "host-2"),
                ("cpu", "cpu-2"),
                ("disk", "disk-2"),
            ]);
            let two = machine(&[
                ("machine_id", "mid-1"),
                ("hostname", "host-3"),
                ("cpu", "cpu-3"),
                ("disk", "disk-2"),
            ]);
            for other in [&new_id, &two] {
                let answer = validate_with(&state, &key, &other.id, as_json(other)).await;
                assert_eq!(answer["machine_activated"], false);
                assert!(answer["license_token"].is_null());
                let (status, body) = activate_with(&state, &key, as_json(other)).await;
                assert_eq!(
                    (status, body["error"].as_str()),
                    (StatusCode::CONFLICT, Some("machine_limit_reached"))
                );
            }
            assert_eq!(
                state.db().list_machines(&id).await.unwrap()[0].fingerprint,
                new_disk.id
            );

            // Transfer to a machine within tolerance of the stored one: already activated.
            let near = machine(&[
                ("machine_id", "mid-1"),
                ("hostname", "host-9"),
                ("cpu", "cpu-2"),
                ("disk", "disk-2"),
            ]);
            let body = json!({ "license_key": key, "from_fingerprint": new_disk.id,
            "fingerprint": as_json(&near) });
            let (status, body) =
                call(&state, "POST", "/v1/client/transfer", None, Some(body)).await;
            assert_eq!(
                (status, body["error"].as_str()),
                (StatusCode::CONFLICT, Some("machine_already_activated"))
            );

            // Deactivation by a client whose hardware changed within tolerance.
            let body = json!({ "license_key": key, "fingerprint": near.id,
            "machine": as_json(&near) });
            let (status, body) =
                call(&state, "POST", "/v1/client/deactivate", None, Some(body)).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(body["machine_id"], first["machine_id"]);
            assert!(state.db().list_machines(&id).await.unwrap().is_empty());

            // `machine` must be the fingerprint named.
            let body = json!({ "license_key": key, "fingerprint": "other", "nonce": "n-0123456789",
            "machine": as_json(&near) });
            let (status, body) =
                call(&state, "POST", "/v1/client/validate", None, Some(body)).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert!(
                body["detail"].as_str().unwrap().contains("machine"),
                "{body}"
            );
        },
    );
}

/// A handler's license write (`Db::begin_license_change`) stores nothing until it commits (a
/// dropped one, as on every error path, rolls back), and either way the license cache is
/// forgotten afterwards: a validation that cached "not activated" sees the committed machine
/// at once.
#[tokio::test]
async fn a_license_write_rolls_back_unless_committed_and_forgets_the_cache() {
    let (_dir, state) = app().await;
    let (key, id) = license(&state, json!({ "model": "perpetual", "max_machines": 2 })).await;
    let activated =
        async |state: &AppState| validate(state, &key, "box-a").await["machine_activated"] == true;
    assert!(!activated(&state).await);
    let machine = db::Machine {
        id: "mch_write_test".into(),
        license_id: id.clone(),
        fingerprint: "box-a".into(),
        fingerprint_json: fp("box-a").to_string(),
        created_at: 0,
        last_seen_at: 0,
    };
    {
        let mut write = state.db().begin_license_change(&id).await.unwrap();
        db::insert_machine(write.tx(), &machine).await.unwrap();
        // Dropped without a commit.
    }
    assert!(!activated(&state).await);
    assert!(state.db().list_machines(&id).await.unwrap().is_empty());
    let mut write = state.db().begin_license_change(&id).await.unwrap();
    db::insert_machine(write.tx(), &machine).await.unwrap();
    write.commit().await.unwrap();
    assert!(activated(&state).await);
}
