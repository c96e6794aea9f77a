//! The machine limit and tolerated hardware changes end to end through the SDK (licensing-core
//! features `online` and `store`) against the real `licensing-server serve` on 127.0.0.1: a
//! license store copied to a second machine is refused online and at the offline starts after
//! it; a machine an administrator removed loses the license at its next validation; a machine
//! whose hardware changed within the license's match rule keeps it.
// `Server`'s Drop kills and waits for the child, which clippy cannot see.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::zombie_processes)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use licensing_core::fingerprint::{FixedComponents, RawComponents};
use licensing_core::store::LicenseStore;
use licensing_core::{Licensing, Status, TrustStore, unix_now};
use serde_json::json;

mod support;
use support::online_server;

use online_server::{PRODUCT, Server, client};

const LIMIT: Duration = Duration::from_secs(5);

/// The app on one machine: its store directory `dir/<machine>` and the machine's identity.
fn app(dir: &Path, machine: &str, trust: &TrustStore) -> Licensing {
    Licensing::new(
        trust.clone(),
        PRODUCT,
        LicenseStore::at(dir.join(machine)).unwrap(),
    )
    .with_fingerprint_override(Some(machine.to_owned()))
}

/// Copies every file of one machine's store into another's (what a user copying the app's
/// data directory does).
fn copy_store(dir: &Path, from: &str, to: &str) {
    std::fs::create_dir_all(dir.join(to)).unwrap();
    for entry in std::fs::read_dir(dir.join(from)).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), dir.join(to).join(entry.file_name())).unwrap();
        }
    }
}

/// A license with a machine limit, not node-locked: the license token binds no machine, so
/// only the server can tell a copied store from the activated machine.
#[test]
fn a_copied_store_on_a_second_machine_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let trust = server.shipped_trust_store();
    let client = client(&server.url, &trust);
    let (license_id, key) = server.issue(json!({ "model": "perpetual", "max_machines": 1 }));
    let now = unix_now();

    let owner = app(dir.path(), "box-a", &trust);
    assert_eq!(
        owner.activate(&client, &key, now).unwrap().verdict.status,
        Status::Valid
    );
    let check = owner.check_online(&client, now, LIMIT).unwrap();
    assert_eq!(check.verdict.status, Status::Valid, "{:?}", check.verdict);

    // The store copied to box-b: online, the server answers no token for box-b.
    copy_store(dir.path(), "box-a", "box-b");
    let copy = app(dir.path(), "box-b", &trust);
    let check = copy.check_online(&client, now, LIMIT).unwrap();
    assert!(check.offline_reason.is_none(), "{:?}", check.offline_reason);
    let validation = check.validation.unwrap();
    assert!(!validation.machine_activated);
    assert!(validation.activation_required);
    assert!(validation.license_token.is_none());
    assert_eq!(
        check.verdict.status,
        Status::MachineNotActivated,
        "{:?}",
        check.verdict
    );
    assert!(!check.verdict.is_usable());
    // ... and the refusal is kept for the offline starts that follow.
    for later in [now, now + 60, now + 86_400] {
        let verdict = copy.check_at_startup(later).unwrap();
        assert_eq!(verdict.status, Status::MachineNotActivated, "{verdict:?}");
    }
    // The activated machine is not affected.
    assert_eq!(
        owner
            .check_online(&client, now, LIMIT)
            .unwrap()
            .verdict
            .status,
        Status::Valid
    );

    // An administrator removes box-a: it loses the license at its next validation, and stays
    // refused offline.
    let machines = server.admin(
        "GET",
        &format!("/v1/licenses/{license_id}/machines"),
        None,
        200,
    );
    let machine_id = machines["machines"][0]["id"].as_str().unwrap().to_owned();
    server.admin(
        "DELETE",
        &format!("/v1/licenses/{license_id}/machines/{machine_id}"),
        None,
        200,
    );
    let check = owner.check_online(&client, now, LIMIT).unwrap();
    assert_eq!(check.verdict.status, Status::MachineNotActivated);
    assert_eq!(
        owner.check_at_startup(now).unwrap().status,
        Status::MachineNotActivated
    );

    // box-b takes the free slot by activating: usable, online and offline.
    let activated = copy.activate(&client, &key, now).unwrap();
    assert_eq!(activated.verdict.status, Status::Valid);
    assert_eq!(copy.check_at_startup(now).unwrap().status, Status::Valid);
    assert_eq!(
        copy.check_online(&client, now, LIMIT)
            .unwrap()
            .verdict
            .status,
        Status::Valid
    );
    // A deactivated machine loses it too.
    copy.deactivate(&client).unwrap();
    let refused = copy.check_online(&client, now, LIMIT).unwrap();
    assert_eq!(refused.verdict.status, Status::NoLicense);
}

fn components(hostname: &str, machine_id: &str) -> FixedComponents {
    let values: BTreeMap<String, String> = [
        ("machine_id", machine_id),
        ("hostname", hostname),
        ("cpu", "cpu-1"),
        ("disk", "disk-1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    FixedComponents(RawComponents {
        values,
        virtualization: vec![],
    })
}

/// The issue's reproduction through the SDK: node-locked, one machine, `machine_id` required
/// and 3 of 4 components. A new host name keeps the license online (the server updates the
/// stored fingerprint); a new machine id is another machine.
#[test]
fn a_tolerated_hardware_change_keeps_the_license_online() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let trust = server.shipped_trust_store();
    let client = client(&server.url, &trust);
    let (license_id, key) = server.issue(json!({
        "model": "node_locked", "max_machines": 1,
        "match": { "required": ["machine_id"], "min_matching": 3 }
    }));
    let now = unix_now();
    let store = dir.path().join("store");
    let on = |hostname: &str, machine_id: &str| {
        Licensing::new(trust.clone(), PRODUCT, LicenseStore::at(&store).unwrap())
            .with_fingerprint_override(None)
            .with_component_source(components(hostname, machine_id))
    };
    let before = on("host-1", "mid-1");
    assert_eq!(
        before.activate(&client, &key, now).unwrap().verdict.status,
        Status::Valid
    );

    let renamed = on("host-2", "mid-1");
    assert_ne!(renamed.fingerprint().id, before.fingerprint().id);
    let check = renamed.check_online(&client, now, LIMIT).unwrap();
    assert!(check.offline_reason.is_none(), "{:?}", check.offline_reason);
    assert!(check.validation.as_ref().unwrap().machine_activated);
    assert_eq!(check.verdict.status, Status::Valid, "{:?}", check.verdict);
    assert_eq!(renamed.check_at_startup(now).unwrap().status, Status::Valid);
    let machines = server.admin(
        "GET",
        &format!("/v1/licenses/{license_id}/machines"),
        None,
        200,
    );
    assert_eq!(
        machines["machines"][0]["fingerprint"],
        renamed.fingerprint().id.as_str()
    );
    assert_eq!(machines["events"][0]["kind"], "fingerprint_updated");

    // Beyond tolerance: another machine, refused.
    let other = on("host-2", "mid-2");
    let check = other.check_online(&client, now, LIMIT).unwrap();
    assert!(!check.verdict.is_usable(), "{:?}", check.verdict);
    let refused = other.activate(&client, &key, now).unwrap_err();
    assert_eq!(refused.server_code(), Some("machine_limit_reached"));

    // Deactivation after another tolerated change finds the machine.
    let again = on("host-3", "mid-1");
    let answer = again.deactivate(&client).unwrap();
    assert!(answer.deactivated);
    let machines = server.admin(
        "GET",
        &format!("/v1/licenses/{license_id}/machines"),
        None,
        200,
    );
    assert_eq!(machines["machines"], json!([]));
}
