//! The audit of client events (issue 22): what the client API records in the `audit_events`
//! chain, heartbeat counts, erasure of a subject (the chain still verifies; a tampered
//! commitment does not), retention and pruning below a checkpoint, on SQLite and PostgreSQL.

use super::*;
use crate::server::audit::{AuditEvent, Writer, action};
use crate::server::db::{ChainCheck, NewAuditEntry, NewAuditEvent, SaltedSubject};
use crate::server::startup::prune_once;

const DAY: i64 = 86_400;

/// The caller's organization's events, after the writer has written what is queued.
async fn events(state: &AppState, token: &str, query: &str) -> Vec<Value> {
    state.audit().flush().await;
    let (status, body) = call(
        state,
        "GET",
        &format!("/v1/audit/events{query}"),
        Some(token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["events"].as_array().unwrap().clone()
}

async fn verify(state: &AppState, query: &str) -> Value {
    state.audit().flush().await;
    let (status, body) = call(
        state,
        "GET",
        &format!("/v1/audit/verify{query}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn actions(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect()
}

async fn client(state: &AppState, path: &str, body: Value) -> (StatusCode, Value) {
    call(state, "POST", path, None, Some(body)).await
}

fn checkout(key: &str, user: &str, request: &str) -> Value {
    json!({ "license_key": key, "client_id": format!("c-{user}"), "user": user,
            "request_id": request, "lease_secret_supported": true })
}

fn lease_body(key: &str, lease: &Value) -> Value {
    json!({ "license_key": key, "epoch": lease["epoch"], "lease_secret": lease["lease_secret"] })
}

/// A second organization with an admin token (`lst_b_admin`).
async fn organization_b(state: &AppState) -> &'static str {
    let db = state.db();
    let org = db::Organization {
        id: "org_b".into(),
        name: "B".into(),
        operator: 0,
        created_at: 0,
    };
    assert!(db.insert_organization(&org).await.unwrap());
    let hash = secrets::sha256_hex(b"lst_b_admin");
    db.insert_api_token("tok_b_admin", "org_b", &hash, "admin", "test", 0)
        .await
        .unwrap();
    "lst_b_admin"
}

#[tokio::test]
async fn client_events_are_recorded_with_ids_and_counted_heartbeats() {
    client_events_on(None).await;
    if let Some(url) = postgres::fresh_database("client_events_are_recorded_with_ids") {
        client_events_on(Some(&url)).await;
    }
}

async fn client_events_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    // Activations: one machine allowed.
    let (key, license_id) =
        license(&state, json!({ "model": "perpetual", "max_machines": 1 })).await;
    let fp = |id: &str| json!({ "license_key": key, "fingerprint": { "id": id } });
    let (status, first) = client(&state, "/v1/client/activate", fp("fp-1")).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, _) = client(&state, "/v1/client/activate", fp("fp-1")).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "activated already: not recorded again"
    );
    let (status, _) = client(&state, "/v1/client/activate", fp("fp-2")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let transfer = json!({ "license_key": key, "from_fingerprint": "fp-1",
                           "fingerprint": { "id": "fp-3" } });
    let (status, moved) = client(&state, "/v1/client/transfer", transfer).await;
    assert_eq!(status, StatusCode::CREATED, "{moved}");
    let (status, _) = client(
        &state,
        "/v1/client/deactivate",
        json!({ "license_key": key, "fingerprint": "fp-3" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let path = format!("/v1/licenses/{license_id}/suspend");
    let (status, _) = call(&state, "POST", &path, Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = client(&state, "/v1/client/activate", fp("fp-4")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Seats: one; alice holds it, bob is denied, alice beats three times and checks in,
    // carol's seat is force-released.
    let (fkey, floating_id) = license(&state, json!({ "model": "floating", "seats": 1 })).await;
    let (status, alice) = client(&state, "/v1/client/leases", checkout(&fkey, "alice", "r1")).await;
    assert_eq!(status, StatusCode::CREATED, "{alice}");
    let (status, _) = client(&state, "/v1/client/leases", checkout(&fkey, "bob", "r2")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let alice_id = alice["lease_id"].as_str().unwrap();
    for _ in 0..3 {
        let path = format!("/v1/client/leases/{alice_id}/heartbeat");
        let (status, body) = client(&state, &path, lease_body(&fkey, &alice)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let path = format!("/v1/client/leases/{alice_id}/release");
    let (status, _) = client(&state, &path, lease_body(&fkey, &alice)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, carol) = client(&state, "/v1/client/leases", checkout(&fkey, "carol", "r3")).await;
    assert_eq!(status, StatusCode::CREATED);
    let carol_id = carol["lease_id"].as_str().unwrap();
    let path = format!("/v1/licenses/{floating_id}/leases/{carol_id}/release");
    let (status, _) = call(&state, "POST", &path, Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::OK);

    let all = events(&state, AUDITOR, "").await;
    assert_eq!(
        actions(&all),
        [
            action::MACHINE_ACTIVATED,
            action::MACHINE_ACTIVATION_REFUSED,
            action::MACHINE_TRANSFERRED,
            action::MACHINE_DEACTIVATED,
            action::MACHINE_ACTIVATION_REFUSED,
            action::LEASE_CHECKED_OUT,
            action::LEASE_DENIED,
            action::LEASE_CHECKED_IN,
            action::LEASE_CHECKED_OUT,
            action::LEASE_FORCE_RELEASED,
        ],
        "{all:#?}"
    );
    let machine_1 = first["machine_id"].as_str().unwrap();
    let machine_3 = moved["machine_id"].as_str().unwrap();
    let targets: Vec<&str> = all
        .iter()
        .map(|e| e["target_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        targets,
        [
            machine_1,
            &license_id,
            machine_3,
            machine_3,
            &license_id,
            alice_id,
            &floating_id,
            alice_id,
            carol_id,
            carol_id,
        ]
    );
    assert_eq!(all[1]["detail"], "machine_limit_reached");
    assert_eq!(all[4]["detail"], "license_suspended", "{}", all[4]);
    assert_eq!(all[3]["detail"], "client");
    assert_eq!(all[6]["detail"], "no_seats");
    for event in &all[..9] {
        let license = event["license_id"].as_str().unwrap();
        assert_eq!(event["actor"], format!("license:{license}"), "{event}");
        assert_eq!(event["organization_id"], OPERATOR_ORGANIZATION);
    }
    assert_eq!(
        all[9]["actor"], "tok_a",
        "force-released by the admin token"
    );
    let subjects: Vec<Value> = all.iter().map(|e| e["subject"].clone()).collect();
    assert_eq!(
        subjects,
        [
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            json!("alice"),
            json!("bob"),
            json!("alice"),
            json!("carol"),
            json!("carol"),
        ]
    );
    // No license key, anywhere.
    let text = serde_json::to_string(&all).unwrap();
    assert!(!text.contains(&key) && !text.contains(&fkey), "{text}");
    // Only this license's.
    let only = events(
        &state,
        AUDITOR,
        &format!("?license_id={floating_id}&limit=2"),
    )
    .await;
    assert_eq!(
        actions(&only),
        [action::LEASE_CHECKED_OUT, action::LEASE_DENIED]
    );

    // Heartbeats: counted, not chained.
    let (status, beats) = call(&state, "GET", "/v1/audit/heartbeats", Some(AUDITOR), None).await;
    assert_eq!(status, StatusCode::OK, "{beats}");
    assert_eq!(beats["total"], 3, "{beats}");
    assert_eq!(beats["counts"][0]["license_id"], floating_id.as_str());
    let (status, _) = call(
        &state,
        "GET",
        "/v1/audit/heartbeats?from=172800&to=86400",
        Some(AUDITOR),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = call(
        &state,
        "GET",
        &format!("/v1/audit/heartbeats?from=0&to={}", 400 * DAY),
        Some(AUDITOR),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // The admin chain keeps its entries, with the route's id.
    let (_, admin) = call(&state, "GET", "/v1/audit", Some(AUDITOR), None).await;
    let suspend = admin["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "POST /v1/licenses/{id}/suspend")
        .unwrap();
    assert_eq!(suspend["target_id"], license_id.as_str());
    let release = admin["entries"].as_array().unwrap().last().unwrap();
    assert_eq!(
        release["target_id"], carol_id,
        "the last `{{...}}` of the route"
    );

    // Both chains intact; the event chain's own count and head.
    let whole = verify(&state, "").await;
    assert_eq!(whole["ok"], true, "{whole}");
    let chain = verify(&state, "?chain=audit_events").await;
    assert_eq!(chain["entries"], 10, "{chain}");
    assert_eq!(chain["head"], all[9]["hash"]);
    let (status, _) = call(
        &state,
        "GET",
        "/v1/audit/verify?chain=nope",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // Another organization sees none of them.
    let b = organization_b(&state).await;
    assert_eq!(events(&state, b, "").await, [] as [Value; 0]);
    let (_, beats) = call(&state, "GET", "/v1/audit/heartbeats", Some(b), None).await;
    assert_eq!(beats["total"], 0);
}

/// The one event API other parts call: queued, chained, read back.
#[tokio::test]
async fn other_parts_record_events_through_the_one_api() {
    let (_dir, state) = app().await;
    state.audit().record_event(
        AuditEvent::new(
            OPERATOR_ORGANIZATION,
            "system:reclaim",
            action::SEAT_RECLAIMED,
            "seat_1",
        )
        .license("lic_1")
        .detail("inactive:30d")
        .subject("dana@example.com"),
    );
    state.audit().record_event(AuditEvent::new(
        OPERATOR_ORGANIZATION,
        "scim",
        action::USER_DEPROVISIONED,
        "usr_1",
    ));
    let all = events(&state, AUDITOR, "").await;
    assert_eq!(actions(&all), ["seat.reclaimed", "user.deprovisioned"]);
    assert_eq!(all[0]["subject"], "dana@example.com");
    assert_eq!(all[0]["detail"], "inactive:30d");
    assert_eq!(all[1]["subject"], Value::Null);
    assert_eq!(all[1]["subject_commitment"], Value::Null);
}

/// A full queue drops the event, counted (never silently).
#[tokio::test(flavor = "current_thread")]
async fn a_full_event_queue_drops_and_counts() {
    let (_dir, state) = app().await;
    let writer = Writer::start_with(state.db().clone(), 4);
    // No await in between: the writer task cannot drain the queue meanwhile.
    for i in 0..10 {
        writer.record_event(AuditEvent::new(
            OPERATOR_ORGANIZATION,
            "system:test",
            action::SEAT_RECLAIMED,
            &format!("seat_{i}"),
        ));
    }
    assert_eq!(writer.dropped(), 6);
    writer.flush().await;
    let all = events(&state, AUDITOR, "").await;
    assert_eq!(all.len(), 4);
}

#[tokio::test]
async fn erasure_keeps_the_chain_intact_and_a_tampered_commitment_breaks_it() {
    erasure_on(None).await;
    if let Some(url) = postgres::fresh_database("erasure_keeps_the_chain_intact") {
        erasure_on(Some(&url)).await;
    }
}

async fn erasure_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    let b = organization_b(&state).await;
    let record = |org: &str, user: &str, target: &str| {
        state.audit().record_event(
            AuditEvent::new(org, "license:lic_x", action::LEASE_CHECKED_OUT, target)
                .license("lic_x")
                .subject(user),
        );
    };
    record(OPERATOR_ORGANIZATION, "alice", "lse_1");
    record(OPERATOR_ORGANIZATION, "bob", "lse_2");
    record("org_b", "alice", "lse_3");
    record(OPERATOR_ORGANIZATION, "alice", "lse_4");
    let before = events(&state, AUDITOR, "").await;
    assert_eq!(verify(&state, "").await["ok"], true);

    // Only an admin erases; bad input is 422.
    let erase = |subject: &str| json!({ "subject": subject });
    let (status, _) = call(
        &state,
        "POST",
        "/v1/audit/erase",
        Some(AUDITOR),
        Some(erase("alice")),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(
        &state,
        "POST",
        "/v1/audit/erase",
        Some(ADMIN),
        Some(erase("")),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let long = "x".repeat(257);
    let (status, _) = call(
        &state,
        "POST",
        "/v1/audit/erase",
        Some(ADMIN),
        Some(erase(&long)),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let (status, body) = call(
        &state,
        "POST",
        "/v1/audit/erase",
        Some(ADMIN),
        Some(erase("alice")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["erased"], 2);
    let after = events(&state, AUDITOR, "").await;
    for (old, new) in before.iter().zip(&after) {
        assert_eq!(old["subject_commitment"], new["subject_commitment"]);
        assert_eq!(old["hash"], new["hash"]);
        if old["subject"] == "alice" {
            assert_eq!(new["subject"], Value::Null, "{new}");
            assert_eq!(new["subject_salt"], Value::Null, "{new}");
        } else {
            assert_eq!(old["subject"], new["subject"]);
        }
    }
    // Another organization's alice stays.
    let theirs = events(&state, b, "").await;
    assert_eq!(theirs[0]["subject"], "alice");
    // Still intact, through the API and the database layer.
    let verified = verify(&state, "").await;
    assert_eq!(verified["ok"], true, "{verified}");
    assert_eq!(verify(&state, "?chain=audit_events").await["entries"], 4);

    // A commitment tampered with: broken there.
    let db = state.db();
    db.execute_for_tests(&format!(
        "UPDATE audit_events SET subject_commitment = '{}' WHERE seq = 2",
        "0".repeat(64)
    ))
    .await;
    let broken = verify(&state, "").await;
    assert_eq!(broken["ok"], false, "{broken}");
    assert_eq!(broken["chain"], "audit_events");
    assert_eq!(broken["broken_at"], 2, "{broken}");
    db.execute_for_tests(&format!(
        "UPDATE audit_events SET subject_commitment = '{}' WHERE seq = 2",
        before[1]["subject_commitment"].as_str().unwrap()
    ))
    .await;
    assert_eq!(verify(&state, "").await["ok"], true);
    // A subject replaced (not erased): its commitment gives it away.
    db.execute_for_tests("UPDATE audit_events SET subject = 'mallory' WHERE seq = 2")
        .await;
    let broken = verify(&state, "").await;
    assert_eq!(broken["broken_at"], 2, "{broken}");
    assert!(
        broken["reason"].as_str().unwrap().contains("commitment"),
        "{broken}"
    );
}

/// An event dated `at` (the pruning tests' injected clock).
fn dated(org: &str, at: i64, target: &str) -> NewAuditEvent {
    NewAuditEvent {
        at,
        organization_id: org.to_owned(),
        actor: "license:lic_x".to_owned(),
        action: action::LEASE_CHECKED_OUT.to_owned(),
        target_id: target.to_owned(),
        license_id: Some("lic_x".to_owned()),
        detail: String::new(),
        subject: Some(SaltedSubject {
            value: "alice".to_owned(),
            salt: "00112233445566778899aabbccddeeff".to_owned(),
        }),
    }
}

fn admin_entry(org: Option<&str>, at: i64, target: &str) -> NewAuditEntry {
    NewAuditEntry {
        at,
        organization_id: org.map(str::to_owned),
        actor: "tok_a".to_owned(),
        action: "POST /v1/products".to_owned(),
        target: target.to_owned(),
        status: 201,
    }
}

#[tokio::test]
async fn pruning_below_a_checkpoint_keeps_what_remains_verifiable() {
    pruning_on(None).await;
    if let Some(url) = postgres::fresh_database("pruning_below_a_checkpoint") {
        pruning_on(Some(&url)).await;
    }
}

async fn pruning_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    organization_b(&state).await;
    let db = state.db();
    let now = 1_000 * DAY;
    let op = OPERATOR_ORGANIZATION;
    // Events 1-2 the operator's, 100 days old; 3 org B's, 100 days old (B keeps for ever);
    // 4 the operator's, 100 days old; 5 the operator's, 1 day old.
    let old = now - 100 * DAY;
    let rows = [
        dated(op, old, "lse_1"),
        dated(op, old, "lse_2"),
        dated("org_b", old, "lse_3"),
        dated(op, old, "lse_4"),
        dated(op, now - DAY, "lse_5"),
    ];
    db.append_audit_events(&rows, &[]).await.unwrap();
    // Admin entries: 1-2 the operator's (one without organization: the CLI's), old; 3 B's;
    // 4 the operator's, old.
    for entry in [
        admin_entry(Some(op), old, "/a1"),
        admin_entry(None, old, "/a2"),
        admin_entry(Some("org_b"), old, "/a3"),
        admin_entry(Some(op), old, "/a4"),
    ] {
        db.append_audit(&entry).await.unwrap();
    }
    // Nothing set: nothing pruned.
    assert_eq!(prune_once(db, now).await.unwrap(), Default::default());

    let (status, _) = call(
        &state,
        "PUT",
        "/v1/retention",
        Some(ADMIN),
        Some(json!({ "audit_days": 30 })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let pruned = prune_once(db, now).await.unwrap();
    assert_eq!(pruned.audit_events, 3, "{pruned:?}");
    assert_eq!(
        pruned.audit_entries, 2,
        "the admin chain's start, up to B's entry"
    );
    // The events: 1-2 deleted below the checkpoint (every row before 3 pruned), 3 kept as it
    // was, 4 blanked in place, 5 kept.
    let checkpoint = db.audit_checkpoint("audit_events").await.unwrap().unwrap();
    assert_eq!(checkpoint.0, 2);
    let left = db.list_audit_events(op, None, 0, 100).await.unwrap();
    let seqs: Vec<i64> = left.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [4, 5]);
    assert_eq!(left[0].pruned, 1);
    assert_eq!(
        (left[0].action.as_str(), left[0].subject.as_deref()),
        ("", None)
    );
    assert_eq!(left[1].subject.as_deref(), Some("alice"));
    let theirs = db.list_audit_events("org_b", None, 0, 100).await.unwrap();
    assert_eq!((theirs[0].seq, theirs[0].pruned), (3, 0));
    assert!(matches!(
        db.verify_audit_events().await.unwrap(),
        ChainCheck::Intact { entries: 5, .. }
    ));
    assert_eq!(
        db.audit_event_hash_at(2).await.unwrap(),
        Some(checkpoint.1.clone())
    );
    // The admin chain restarts at its checkpoint.
    assert_eq!(
        db.audit_checkpoint("audit_log").await.unwrap().unwrap().0,
        2
    );
    let admin = db.verify_audit().await.unwrap();
    assert!(
        // 4 and the `PUT /v1/retention` just made.
        matches!(admin, ChainCheck::Intact { entries: 5, .. }),
        "{admin:?}"
    );
    assert_eq!(verify(&state, "").await["ok"], true);
    // Appends go on from there.
    db.append_audit(&admin_entry(Some(op), now, "/a5"))
        .await
        .unwrap();
    db.append_audit_events(&[dated(op, now, "lse_6")], &[])
        .await
        .unwrap();
    assert_eq!(verify(&state, "").await["ok"], true);
    assert!(matches!(
        db.verify_audit_events().await.unwrap(),
        ChainCheck::Intact { entries: 6, .. }
    ));

    // A kept row edited: broken.
    db.execute_for_tests("UPDATE audit_events SET actor = 'x' WHERE seq = 3")
        .await;
    assert!(matches!(
        db.verify_audit_events().await.unwrap(),
        ChainCheck::Broken { at: 3, .. }
    ));
    db.execute_for_tests("UPDATE audit_events SET actor = 'license:lic_x' WHERE seq = 3")
        .await;
    db.execute_for_tests("UPDATE audit_log SET target = '/x' WHERE seq = 3")
        .await;
    assert!(matches!(
        db.verify_audit().await.unwrap(),
        ChainCheck::Broken { at: 3, .. }
    ));
    db.execute_for_tests("UPDATE audit_log SET target = '/a3' WHERE seq = 3")
        .await;
    assert_eq!(verify(&state, "").await["ok"], true);
    // A recent row blanked as if pruned: the pruning never reached it.
    db.execute_for_tests("UPDATE audit_events SET pruned = 1, subject = NULL WHERE seq = 5")
        .await;
    let broken = verify(&state, "").await;
    assert_eq!(
        (&broken["broken_at"], &broken["chain"]),
        (&json!(5), &json!("audit_events")),
        "{broken}"
    );
    db.execute_for_tests("UPDATE audit_events SET pruned = 0, subject = 'alice' WHERE seq = 5")
        .await;
    assert_eq!(verify(&state, "").await["ok"], true);
    // The checkpoint rewritten: the row after it no longer follows.
    db.execute_for_tests(&format!(
        "UPDATE audit_checkpoints SET hash = '{}' WHERE chain = 'audit_events'",
        "1".repeat(64)
    ))
    .await;
    assert!(matches!(
        db.verify_audit_events().await.unwrap(),
        ChainCheck::Broken { at: 3, .. }
    ));
}

/// Lease history and denials go by their organization's retention; the default keeps denials
/// 60 days and leases for ever.
#[tokio::test]
async fn lease_history_and_denials_are_pruned_by_retention() {
    lease_pruning_on(None).await;
    if let Some(url) = postgres::fresh_database("lease_history_and_denials_are_pruned") {
        lease_pruning_on(Some(&url)).await;
    }
}

async fn lease_pruning_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    let (key, license_id) = license(&state, json!({ "model": "floating", "seats": 1 })).await;
    let (status, lease) = client(&state, "/v1/client/leases", checkout(&key, "alice", "r1")).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = client(&state, "/v1/client/leases", checkout(&key, "bob", "r2")).await;
    assert_eq!(status, StatusCode::CONFLICT, "a denial");
    let lease_id = lease["lease_id"].as_str().unwrap();
    let path = format!("/v1/client/leases/{lease_id}/release");
    let (status, _) = client(&state, &path, lease_body(&key, &lease)).await;
    assert_eq!(status, StatusCode::OK);
    let db = state.db();
    let later = now() + 10 * DAY;
    // Defaults: nothing goes after 10 days.
    prune_once(db, later).await.unwrap();
    assert_eq!(db.purge_denials(later).await.unwrap(), 0);
    assert!(db.get_lease(&license_id, lease_id).await.unwrap().is_some());
    let body = json!({ "lease_history_days": 5, "denial_days": 5 });
    let (status, _) = call(&state, "PUT", "/v1/retention", Some(ADMIN), Some(body)).await;
    assert_eq!(status, StatusCode::OK);
    let pruned = prune_once(db, later).await.unwrap();
    assert_eq!(pruned.leases, 1);
    assert!(db.get_lease(&license_id, lease_id).await.unwrap().is_none());
    assert_eq!(db.purge_denials(later).await.unwrap(), 1);
    let _ = license_id;
}

#[tokio::test]
async fn retention_is_read_by_readers_and_set_by_admins_within_bounds() {
    let (_dir, state) = app().await;
    let (status, body) = call(&state, "GET", "/v1/retention", Some(AUDITOR), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({ "audit_days": null, "lease_history_days": null, "denial_days": 60 })
    );
    let set = json!({ "audit_days": 365, "lease_history_days": 90 });
    let (status, _) = call(
        &state,
        "PUT",
        "/v1/retention",
        Some(AUDITOR),
        Some(set.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for (field, value) in [
        ("audit_days", 0),
        ("lease_history_days", -1),
        ("denial_days", 36_501),
    ] {
        let body = json!({ field: value });
        let (status, answer) = call(&state, "PUT", "/v1/retention", Some(ADMIN), Some(body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert!(
            answer["detail"].as_str().unwrap().contains(field),
            "{answer}"
        );
    }
    let (status, _) = call(
        &state,
        "PUT",
        "/v1/retention",
        Some(ADMIN),
        Some(json!({ "days": 1 })),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, body) = call(&state, "PUT", "/v1/retention", Some(ADMIN), Some(set)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let expected = json!({ "audit_days": 365, "lease_history_days": 90, "denial_days": 60 });
    assert_eq!(body, expected);
    let (_, body) = call(&state, "GET", "/v1/retention", Some(AUDITOR), None).await;
    assert_eq!(body, expected);
    // Another organization's is its own.
    let b = organization_b(&state).await;
    let (_, theirs) = call(&state, "GET", "/v1/retention", Some(b), None).await;
    assert_eq!(theirs["audit_days"], Value::Null);
}

/// A batch larger than one insert statement's chunk is chained without a gap.
#[tokio::test]
async fn a_large_batch_is_chained_whole() {
    large_batch_on(None).await;
    if let Some(url) = postgres::fresh_database("a_large_batch_is_chained_whole") {
        large_batch_on(Some(&url)).await;
    }
}

async fn large_batch_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    let db = state.db();
    let batch: Vec<NewAuditEvent> = (0..150)
        .map(|i| dated(OPERATOR_ORGANIZATION, i, &format!("lse_{i}")))
        .collect();
    let beats = [(
        crate::server::db::BeatKey {
            organization_id: OPERATOR_ORGANIZATION.to_owned(),
            license_id: "lic_x".to_owned(),
            utc_day: 0,
        },
        7,
    )];
    let stored = db.append_audit_events(&batch, &beats).await.unwrap();
    assert_eq!(stored.len(), 150);
    db.append_audit_events(&batch[..1], &beats).await.unwrap();
    let listed = db
        .list_audit_events(OPERATOR_ORGANIZATION, None, 0, 1000)
        .await
        .unwrap();
    assert_eq!(listed.len(), 151);
    assert_eq!(&listed[..150], &stored[..]);
    assert!(matches!(
        db.verify_audit_events().await.unwrap(),
        ChainCheck::Intact { entries: 151, .. }
    ));
    let counts = db
        .heartbeat_counts(OPERATOR_ORGANIZATION, Some("lic_x"), 0, 0)
        .await
        .unwrap();
    assert_eq!(counts[0].beats, 14, "counts add up");
}
