//! End to end for deprovisioning (issue 22): an app holds a floating seat through the client's
//! `LeaseManager` against the real `licensing-server serve` on 127.0.0.1; the organization's
//! identity provider deactivates the app's user over SCIM (Entra ID's dialect: a capitalised
//! op, no path, the boolean as a string); the app's next heartbeat learns the seat is gone.
// `Server`'s Drop kills and waits for the child, which clippy cannot see.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::zombie_processes)]

use std::sync::mpsc;
use std::time::{Duration, Instant};

use licensing_core::Status;
use licensing_core::online::{LeaseConfig, LeaseLoss, LeaseManager};
use serde_json::json;

mod support;
use support::online_server;

use online_server::{Server, TIMEOUT, client};

#[test]
fn an_app_learns_at_its_next_heartbeat_that_scim_deactivated_its_user() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let trust = server.shipped_trust_store();
    let client = client(&server.url, &trust);
    let (license_id, key) = server.issue(json!({ "model": "floating", "seats": 1 }));
    let scim = server.admin(
        "POST",
        "/v1/api-tokens",
        Some(json!({ "role": "scim", "label": "Entra ID" })),
        201,
    )["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, user) = server.call(
        "POST",
        "/scim/v2/Users",
        &scim,
        Some(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "Jane.Doe@example.com", "active": true,
        })),
    );
    assert_eq!(status, 201, "{user}");
    let user_id = user["id"].as_str().unwrap();

    let (tx, rx) = mpsc::channel();
    let app = LeaseManager::check_out(
        &client,
        LeaseConfig {
            heartbeat_interval: Some(Duration::from_millis(100)),
            // The app names its user in its own case.
            ..LeaseConfig::new(&key, "jane-laptop", "jane.doe@example.com")
        },
        Box::new(move |loss| tx.send(loss.clone()).unwrap()),
    )
    .unwrap();
    let deadline = Instant::now() + TIMEOUT;
    while app.heartbeats() < 1 {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for a heartbeat"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let deactivated = Instant::now();
    let (status, patched) = server.call(
        "PATCH",
        &format!("/scim/v2/Users/{user_id}"),
        &scim,
        Some(json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{ "op": "Replace", "value": { "active": "False" } }],
        })),
    );
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["active"], false);
    let loss = rx.recv_timeout(TIMEOUT).unwrap();
    // Measured, not asserted (loaded CI machines): about one heartbeat interval.
    eprintln!("deprovisioning reported after {:?}", deactivated.elapsed());
    match &loss {
        LeaseLoss::Released { code, .. } => assert_eq!(code, "lease_released"),
        other => panic!("expected Released, got {other:?}"),
    }
    assert_eq!(app.status(), Status::LeaseExpired);
    // The seat is free for someone else at once.
    let leases = server.admin(
        "GET",
        &format!("/v1/licenses/{license_id}/leases"),
        None,
        200,
    );
    assert_eq!(leases["leases"], json!([]));
    // The deprovisioning is in the audit trail (the SCIM request, its token as the actor).
    let audit = server.admin("GET", "/v1/audit", None, 200);
    assert!(
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "PATCH /scim/v2/Users/{id}"),
        "{audit}"
    );
}
