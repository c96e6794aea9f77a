//! Transfer and offline deactivation through the SDK (licensing-core features `online` and
//! `store`) against the real `licensing-server serve` on 127.0.0.1 (port 0, a temp data dir),
//! on SQLite and, under scripts/with-postgres.sh, on PostgreSQL. The attacks on offline
//! deactivation receipts are here too: a replay, a receipt of machine A pointed at machine B,
//! a MAC made without the machine's key, and a receipt sent by another tenant.
// `Server`'s Drop kills and waits for the child, which clippy cannot see.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::zombie_processes)]

use std::path::Path;
use std::process::Command;

use licensing_core::deactivation::{DeactivationReceipt, encode_deactivation_key};
use licensing_core::online::OnlineError;
use licensing_core::store::LicenseStore;
use licensing_core::{Licensing, Status, TrustStore, unix_now};
use serde_json::{Value, json};

mod support;
use backend::{Backend, on_both, temp_data};
use online_server::{PRODUCT, Server, client};
use support::{backend, online_server};

/// The app on one machine: its own store directory and a fixed machine identity.
fn app(dir: &Path, machine: &str, trust: &TrustStore) -> Licensing {
    Licensing::new(
        trust.clone(),
        PRODUCT,
        LicenseStore::at(dir.join(machine)).unwrap(),
    )
    .with_fingerprint_override(Some(machine.to_owned()))
}

fn machines(server: &Server, license_id: &str) -> Vec<Value> {
    server.admin(
        "GET",
        &format!("/v1/licenses/{license_id}/machines"),
        None,
        200,
    )["machines"]
        .as_array()
        .unwrap()
        .clone()
}

fn machine_ids(server: &Server, license_id: &str) -> Vec<String> {
    machines(server, license_id)
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn transfer_moves_the_activation_within_max_transfers() {
    on_both(
        "transfer_moves_the_activation_within_max_transfers",
        transfer_moves_the_activation_within_max_transfers_on,
    );
}

fn transfer_moves_the_activation_within_max_transfers_on(backend: Backend) {
    let (dir, data) = temp_data();
    let server = Server::start_with(&data, &backend.args());
    let trust = server.shipped_trust_store();
    let client = client(&server.url, &trust);
    let (license_id, key) = server.issue(json!({
        "model": "subscription", "duration": 365 * 86400, "max_machines": 1, "max_transfers": 1
    }));
    let old_box = app(dir.path(), "transfer-old", &trust);
    let new_box = app(dir.path(), "transfer-new", &trust);
    let old_fp = old_box.fingerprint().id;
    old_box.activate(&client, &key, unix_now()).unwrap();

    // The new machine is refused a plain activation (the slot is taken) ...
    let refused = new_box.activate(&client, &key, unix_now()).unwrap_err();
    assert_eq!(refused.server_code(), Some("machine_limit_reached"));
    // ... and a transfer from a machine that is not activated, with the server's code.
    let unknown = new_box
        .transfer(&client, &key, "not-a-machine", unix_now())
        .unwrap_err();
    assert_eq!(
        unknown.server_code(),
        Some("machine_not_found"),
        "{unknown}"
    );
    // A wrong key is the server's license_not_found, through the same error type.
    let wrong_key = new_box
        .transfer(
            &client,
            "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE",
            &old_fp,
            unix_now(),
        )
        .unwrap_err();
    assert_eq!(wrong_key.server_code(), Some("license_not_found"));
    assert!(matches!(wrong_key, OnlineError::Server { status: 404, .. }));

    // The transfer: the new machine's store has a valid license, the key and a deactivation
    // key; the server lists only the new machine.
    let moved = new_box
        .transfer(&client, &key, &old_fp, unix_now())
        .unwrap();
    assert_eq!(moved.verdict.status, Status::Valid, "{:?}", moved.verdict);
    assert!(moved.activation.created);
    assert!(moved.activation.deactivation_key.is_some());
    assert_eq!(
        new_box.check_at_startup(unix_now()).unwrap().status,
        Status::Valid
    );
    let listed = machines(&server, &license_id);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], moved.activation.machine_id.as_str());
    // The new machine validates online with what the transfer stored.
    let check = new_box.validate_online(&client, unix_now()).unwrap();
    assert!(check.validation.unwrap().machine_activated);
    // The old machine is no longer activated on the server.
    let old = old_box.validate_online(&client, unix_now()).unwrap();
    assert!(!old.validation.unwrap().machine_activated);

    // Moving back would be a second transfer: refused with the server's code.
    let back = old_box
        .transfer(&client, &key, &new_box.fingerprint().id, unix_now())
        .unwrap_err();
    assert_eq!(back.server_code(), Some("transfer_limit_reached"), "{back}");
    assert!(matches!(back, OnlineError::Server { status: 409, .. }));
    assert_eq!(
        machine_ids(&server, &license_id),
        [moved.activation.machine_id]
    );
}

/// The CLI `offline deactivate` on the server's database: (exit code, stdout, stderr).
fn cli_deactivate(data: &Path, backend: &Backend, receipt: &str) -> (i32, String, String) {
    let file = data.with_extension(format!("receipt-{}.json", rand_suffix()));
    std::fs::write(&file, receipt).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_licensing-server"))
        .args(["offline", "deactivate", "--receipt"])
        .arg(&file)
        .arg("--data-dir")
        .arg(data)
        .args(backend.args())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn offline_activate(server: &Server, machine: &Licensing, key: &str) {
    let client = client(&server.url, &server.shipped_trust_store());
    let request = machine
        .offline_activation_request(&client, key, unix_now())
        .unwrap();
    let response = server.admin(
        "POST",
        "/v1/offline/activate",
        Some(serde_json::from_str(&request).unwrap()),
        200,
    );
    let imported = machine
        .import_offline_response(&client, &response.to_string(), unix_now())
        .unwrap();
    assert_eq!(
        imported.verdict.status,
        Status::Valid,
        "{:?}",
        imported.verdict
    );
    assert!(imported.validation.unwrap().deactivation_key.is_some());
}

#[test]
fn an_air_gapped_machine_deactivates_itself_with_a_receipt() {
    on_both(
        "an_air_gapped_machine_deactivates_itself_with_a_receipt",
        an_air_gapped_machine_deactivates_itself_with_a_receipt_on,
    );
}

fn an_air_gapped_machine_deactivates_itself_with_a_receipt_on(backend: Backend) {
    let (dir, data) = temp_data();
    let server = Server::start_with(&data, &backend.args());
    let trust = server.shipped_trust_store();
    let client = client(&server.url, &trust);
    let (license_id, key) = server.issue(json!({
        "model": "subscription", "duration": 365 * 86400, "max_machines": 2
    }));
    let box_a = app(dir.path(), "air-a", &trust);
    let box_b = app(dir.path(), "air-b", &trust);
    offline_activate(&server, &box_a, &key);
    // B is activated online: its activation answer carries the key too.
    let b = box_b.activate(&client, &key, unix_now()).unwrap();
    assert!(b.activation.deactivation_key.is_some());
    // The key is a secret: owner-only, whatever the umask.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("air-b").join("deactivation.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let ids = machine_ids(&server, &license_id);
    assert_eq!(ids.len(), 2);
    let b_id = b.activation.machine_id.clone();
    let a_id = ids.iter().find(|id| **id != b_id).unwrap().clone();

    // A deactivates itself: the store forgets the license (startup check: no license, no key
    // to validate with) and keeps the receipt, answered again if the app lost it.
    let receipt_text = box_a.offline_deactivate(unix_now()).unwrap();
    assert_eq!(
        box_a.check_at_startup(unix_now()).unwrap().status,
        Status::NoLicense
    );
    let store_a = LicenseStore::at(dir.path().join("air-a")).unwrap();
    assert_eq!(store_a.read_license_key().unwrap(), None);
    assert_eq!(store_a.read_deactivation_key().unwrap(), None);
    assert_eq!(store_a.read_machine_token().unwrap(), None);
    assert_eq!(box_a.offline_deactivate(unix_now()).unwrap(), receipt_text);
    let receipt = DeactivationReceipt::from_json(&receipt_text).unwrap();
    assert_eq!(receipt.machine_id, a_id);
    assert_eq!(receipt.license_id, license_id);
    // The slot is still taken until the vendor imports the receipt.
    assert_eq!(machine_ids(&server, &license_id).len(), 2);
    let body: Value = serde_json::from_str(&receipt_text).unwrap();

    // Attack: A's receipt pointed at B (machine A wants to free B's slot): the MAC is A's.
    let mut at_b = body.clone();
    at_b["machine_id"] = json!(b_id);
    let (status, refused) = server.call(
        "POST",
        "/v1/offline/deactivate",
        &server.admin_token,
        Some(at_b),
    );
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["error"], "invalid_receipt");
    // Attack: someone with only the license key makes a receipt for B under a key of their
    // own choosing.
    let forged = DeactivationReceipt::sign(
        &encode_deactivation_key(&[42u8; 32]),
        &license_id,
        &b_id,
        &box_b.fingerprint().id,
        "jti-guess",
        unix_now(),
        "nonce-0123456789abcdef",
    )
    .unwrap();
    let (status, refused) = server.call(
        "POST",
        "/v1/offline/deactivate",
        &server.admin_token,
        Some(serde_json::from_str(&forged.to_json()).unwrap()),
    );
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["error"], "invalid_receipt");
    // Attack: a tampered field of A's own receipt (a later time) breaks its MAC.
    let mut tampered = body.clone();
    tampered["deactivated_at"] = json!(receipt.deactivated_at + 1);
    let (status, _) = server.call(
        "POST",
        "/v1/offline/deactivate",
        &server.admin_token,
        Some(tampered),
    );
    assert_eq!(status, 403);
    // Attack: another tenant's admin sends A's genuine receipt: the license is not theirs.
    let other = server.admin(
        "POST",
        "/v1/organizations",
        Some(json!({ "name": "Contoso" })),
        201,
    );
    let other_admin = other["admin_token"].as_str().unwrap();
    let (status, refused) = server.call(
        "POST",
        "/v1/offline/deactivate",
        other_admin,
        Some(body.clone()),
    );
    assert_eq!(status, 404, "{refused}");
    assert_eq!(refused["error"], "license_not_found");
    // An auditor may not free machines.
    let auditor = server.admin(
        "POST",
        "/v1/api-tokens",
        Some(json!({ "role": "auditor", "label": "audit" })),
        201,
    );
    let (status, _) = server.call(
        "POST",
        "/v1/offline/deactivate",
        auditor["secret"].as_str().unwrap(),
        Some(body.clone()),
    );
    assert_eq!(status, 403);
    // A malformed receipt is a 422.
    let mut malformed = body.clone();
    malformed["kind"] = json!("licensing.offline_activation_request");
    let (status, _) = server.call(
        "POST",
        "/v1/offline/deactivate",
        &server.admin_token,
        Some(malformed),
    );
    assert_eq!(status, 422);
    assert_eq!(
        machine_ids(&server, &license_id).len(),
        2,
        "nothing freed yet"
    );

    // The genuine receipt, by the license's own tenant: A's slot is freed, B's kept.
    let freed = server.admin("POST", "/v1/offline/deactivate", Some(body.clone()), 200);
    assert_eq!(freed["deactivated"], true);
    assert_eq!(freed["machine_id"], a_id.as_str());
    assert_eq!(
        machine_ids(&server, &license_id),
        std::slice::from_ref(&b_id)
    );
    // Attack: the same receipt again (single use).
    let (status, replayed) = server.call(
        "POST",
        "/v1/offline/deactivate",
        &server.admin_token,
        Some(body.clone()),
    );
    assert_eq!(status, 404, "{replayed}");
    assert_eq!(replayed["error"], "machine_not_found");

    // A activates again: a new machine id and a new key, so the old receipt cannot free it.
    offline_activate(&server, &box_a, &key);
    let (status, _) = server.call(
        "POST",
        "/v1/offline/deactivate",
        &server.admin_token,
        Some(body),
    );
    assert_eq!(status, 404);
    assert_eq!(machine_ids(&server, &license_id).len(), 2);

    // B, activated online, deactivates itself offline and the vendor's CLI frees it.
    let receipt_b = box_b.offline_deactivate(unix_now()).unwrap();
    assert_eq!(
        box_b.check_at_startup(unix_now()).unwrap().status,
        Status::NoLicense
    );
    assert!(matches!(
        box_b.validate_online(&client, unix_now()),
        Err(OnlineError::NotActivated)
    ));
    let admin_token = server.admin_token.clone();
    server.stop();
    let (code, stdout, stderr) = cli_deactivate(&data, &backend, &receipt_b);
    assert_eq!(code, 0, "{stderr}");
    let answer: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(answer["machine_id"], b_id.as_str());
    // Replayed through the CLI: refused (exit 1); a forged one too; a file that is not a
    // receipt is a usage error (exit 2).
    let (code, _, stderr) = cli_deactivate(&data, &backend, &receipt_b);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("machine_not_found"), "{stderr}");
    let (code, _, stderr) = cli_deactivate(&data, &backend, "{\"kind\": 1}");
    assert_eq!(code, 2, "{stderr}");

    let mut server = Server::start_with(&data, &backend.args());
    server.admin_token = admin_token;
    assert_eq!(machine_ids(&server, &license_id).len(), 1);
    // The freed slot takes a new machine.
    let box_c = app(dir.path(), "air-c", &trust);
    let client = online_server::client(&server.url, &trust);
    box_c.activate(&client, &key, unix_now()).unwrap();
    // The CLI's deactivation is in the audit trail.
    let audit = server.admin("GET", "/v1/audit", None, 200);
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(actions.contains(&"cli offline deactivate"), "{actions:?}");
    assert!(
        actions.contains(&"POST /v1/offline/deactivate"),
        "{actions:?}"
    );
}

#[test]
fn offline_deactivation_needs_an_activation() {
    let dir = tempfile::tempdir().unwrap();
    let trust = TrustStore::from_document(
        r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#,
    )
    .unwrap();
    let nothing = app(dir.path(), "none", &trust);
    assert!(matches!(
        nothing.offline_deactivate(unix_now()),
        Err(OnlineError::NotActivated)
    ));
}
