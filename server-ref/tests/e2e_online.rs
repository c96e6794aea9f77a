//! End to end through the online client (licensing-core feature `online`): the real
//! `licensing-server serve` binary on 127.0.0.1 (port 0, a temp data dir), an app's
//! `Licensing` with its own store, and the vendor's admin API. Bounded: every call has a
//! deadline, every wait a timeout.
// `Server`'s Drop kills and waits for the child, which clippy cannot see.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::zombie_processes)]

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use licensing_core::online::{OnlineError, ServerStatus};
use licensing_core::store::LicenseStore;
use licensing_core::{Licensing, Status, TrustStore, unix_now};
use serde_json::json;

mod support;
use support::online_server;

use online_server::{PRODUCT, Server, client};

/// The app on one machine: its own store directory and a fixed machine identity.
fn app(dir: &Path, machine: &str, trust: &TrustStore) -> Licensing {
    Licensing::new(
        trust.clone(),
        PRODUCT,
        LicenseStore::at(dir.join(machine)).unwrap(),
    )
    .with_fingerprint_override(Some(machine.to_owned()))
}
#[test]
fn issue_activate_validate_suspend_reinstate_revoke_then_offline() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let trust = server.shipped_trust_store();
    let client = client(&server.url, &trust);
    let (license_id, key) = server.issue(json!({
        "model": "subscription", "duration": 365 * 86400, "grace_period": 7 * 86400,
        "max_machines": 1
    }));
    let app = app(dir.path(), "e2e-box-a", &trust);

    // Nothing installed yet: offline start says so, and there is no key to validate with.
    let now = unix_now();
    assert_eq!(app.check_at_startup(now).unwrap().status, Status::NoLicense);
    let offline = app
        .check_online(&client, now, Duration::from_secs(5))
        .unwrap();
    assert!(matches!(
        offline.offline_reason,
        Some(OnlineError::NotActivated)
    ));

    // Activate: the license token is installed, the key and machine token kept.
    let activated = app.activate(&client, &key, now).unwrap();
    assert_eq!(
        activated.verdict.status,
        Status::Valid,
        "{:?}",
        activated.verdict
    );
    assert!(activated.activation.created);
    assert_eq!(activated.activation.license_id, license_id);
    assert_eq!(
        app.store().read_license_key().unwrap().as_deref(),
        Some(key.as_str())
    );
    assert!(app.store().read_machine_token().unwrap().is_some());
    assert_eq!(app.check_at_startup(now).unwrap().status, Status::Valid);
    // The machine limit is the server's: a second machine is refused with its code.
    let other = crate::app(dir.path(), "e2e-box-b", &trust);
    let refused = other.activate(&client, &key, now).unwrap_err();
    assert_eq!(
        refused.server_code(),
        Some("machine_limit_reached"),
        "{refused}"
    );
    // A wrong key is the server's 404, not a crash.
    let unknown = other.activate(&client, "AAAAA-AAAAA-AAAAA-AAAAA-AAAAA", now);
    assert_eq!(
        unknown.unwrap_err().server_code(),
        Some("license_not_found")
    );

    // Validate online: signed answer, nonce echoed, server time, token refreshed.
    let checked = app
        .check_online(&client, unix_now(), Duration::from_secs(5))
        .unwrap();
    assert!(
        checked.offline_reason.is_none(),
        "{:?}",
        checked.offline_reason
    );
    let validation = checked.validation.unwrap();
    assert_eq!(validation.status, ServerStatus::Active);
    assert!(validation.machine_activated);
    assert!((validation.server_time - unix_now()).abs() < 60);
    assert_eq!(checked.verdict.status, Status::Valid);

    // Round trips on loopback (debug build): bounded count, well under the rate limit.
    let started = Instant::now();
    for _ in 0..10 {
        let check = app.validate_online(&client, unix_now()).unwrap();
        assert_eq!(check.verdict.status, Status::Valid);
    }
    let each = started.elapsed() / 10;
    eprintln!("validate_online round trip (nonce, verify, store): {each:?}");
    assert!(each < Duration::from_secs(1), "{each:?}");

    // Suspend: the server says so, the app reports it, and keeps reporting it offline.
    assert_eq!(
        server.license_action(&license_id, "suspend")["status"],
        "suspended"
    );
    let suspended = app.validate_online(&client, unix_now()).unwrap();
    assert_eq!(
        suspended.validation.as_ref().unwrap().status,
        ServerStatus::Suspended
    );
    assert_eq!(
        suspended.verdict.status,
        Status::Suspended,
        "{:?}",
        suspended.verdict
    );
    assert_eq!(
        app.check_at_startup(unix_now()).unwrap().status,
        Status::Suspended
    );

    // Reinstate: active again, online and at the next offline start.
    server.license_action(&license_id, "reinstate");
    let reinstated = app.validate_online(&client, unix_now()).unwrap();
    assert_eq!(reinstated.verdict.status, Status::Valid);
    assert_eq!(
        app.check_at_startup(unix_now()).unwrap().status,
        Status::Valid
    );

    // A clock far behind the signed server time is caught by the clock guard.
    let behind = app.validate_online(&client, unix_now() - 86_400).unwrap();
    assert_eq!(behind.verdict.status, Status::ClockTampered);

    // Revoke: for good, also offline.
    server.license_action(&license_id, "revoke");
    let revoked = app.validate_online(&client, unix_now()).unwrap();
    assert_eq!(
        revoked.validation.as_ref().unwrap().status,
        ServerStatus::Revoked
    );
    assert_eq!(revoked.verdict.status, Status::Revoked);
    server.stop();
    let start = app
        .check_online(&client, unix_now(), Duration::from_secs(2))
        .unwrap();
    assert!(start.offline_reason.as_ref().unwrap().is_unreachable());
    assert_eq!(start.verdict.status, Status::Revoked);
}

#[test]
fn check_in_grace_when_the_server_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let trust = server.shipped_trust_store();
    let client = client(&server.url, &trust);
    // Check in every 7 days, 3 days of grace after that.
    let (_, key) = server.issue(json!({
        "model": "subscription", "duration": 365 * 86400, "grace_period": 14 * 86400,
        "max_machines": 1, "check_in_interval": 7 * 86400, "check_in_grace": 3 * 86400
    }));
    let app = app(dir.path(), "e2e-box-c", &trust);
    let now = unix_now();
    app.activate(&client, &key, now).unwrap();
    let checked = app
        .check_online(&client, now, Duration::from_secs(5))
        .unwrap();
    assert!(checked.offline_reason.is_none());
    let validation = checked.validation.unwrap();
    assert!(
        validation.license_token.is_some(),
        "validate refreshes the token"
    );
    assert!(validation.machine_token.is_some(), "and the machine token");
    let check_in = checked.license.unwrap().claims().lic.check_in.unwrap();
    assert!(
        (check_in.until - (now + 7 * 86400)).abs() < 60,
        "{check_in:?}"
    );
    assert_eq!(check_in.grace, 3 * 86400);
    server.stop();

    // Server gone: each start falls back to the stored token within the limit; the check-in
    // deadline gives valid, then valid in grace, then check-in required.
    let limit = Duration::from_secs(2);
    for (at, status) in [
        (now, Status::Valid),
        (check_in.until - 60, Status::Valid),
        (check_in.until + 86_400, Status::ValidInGrace),
        (check_in.until + 3 * 86_400 + 60, Status::CheckInRequired),
    ] {
        let started = Instant::now();
        let check = app.check_online(&client, at, limit).unwrap();
        assert!(started.elapsed() < limit + Duration::from_millis(500));
        assert!(check.offline_reason.as_ref().unwrap().is_unreachable());
        assert_eq!(check.verdict.status, status, "at {at}: {:?}", check.verdict);
    }
}

#[test]
fn deactivate_frees_the_slot_and_air_gapped_activation_takes_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let trust = server.shipped_trust_store();
    let client = client(&server.url, &trust);
    let (license_id, key) = server.issue(json!({
        "model": "subscription", "duration": 365 * 86400, "max_machines": 1
    }));
    let online_box = app(dir.path(), "e2e-box-e", &trust);
    online_box.activate(&client, &key, unix_now()).unwrap();
    let answer = online_box.deactivate(&client).unwrap();
    assert!(answer.deactivated);
    assert_eq!(
        online_box.check_at_startup(unix_now()).unwrap().status,
        Status::NoLicense
    );
    assert!(matches!(
        online_box.validate_online(&client, unix_now()),
        Err(OnlineError::NotActivated)
    ));
    let machines = server.admin(
        "GET",
        &format!("/v1/licenses/{license_id}/machines"),
        None,
        200,
    );
    assert_eq!(machines["machines"].as_array().unwrap().len(), 0);

    // The freed slot goes to an air-gapped machine: request file -> vendor API -> import.
    let air_gapped = app(dir.path(), "e2e-box-f", &trust);
    let request = air_gapped
        .offline_activation_request(&client, &key, unix_now())
        .unwrap();
    let response = server.admin(
        "POST",
        "/v1/offline/activate",
        Some(serde_json::from_str(&request).unwrap()),
        200,
    );
    let imported = air_gapped
        .import_offline_response(&client, &response.to_string(), unix_now())
        .unwrap();
    assert_eq!(
        imported.verdict.status,
        Status::Valid,
        "{:?}",
        imported.verdict
    );
    let validation = imported.validation.unwrap();
    assert!(validation.offline && validation.machine_token.is_some());
    assert_eq!(
        air_gapped.check_at_startup(unix_now()).unwrap().status,
        Status::Valid
    );
    // Imported once; the same file again is refused (nothing pending).
    assert!(matches!(
        air_gapped.import_offline_response(&client, &response.to_string(), unix_now()),
        Err(OnlineError::NoPendingRequest)
    ));
    // The air-gapped machine holds the only slot: the online one is refused now.
    let refused = online_box.activate(&client, &key, unix_now()).unwrap_err();
    assert_eq!(refused.server_code(), Some("machine_limit_reached"));
    let (_, second_key) = server.issue(json!({ "model": "perpetual", "max_machines": 1 }));
    server.stop();

    // The vendor's CLI on the server's data dir (no server running) turns request files into
    // response files; a license without a free slot is refused (exit 1).
    let offline_cli = |request: &str, name: &str| {
        let request_file = dir.path().join(format!("{name}.request.json"));
        let response_file = dir.path().join(format!("{name}.response.json"));
        std::fs::write(&request_file, request).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_licensing-server"))
            .args(["offline", "activate", "--request"])
            .arg(&request_file)
            .arg("--out")
            .arg(&response_file)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap();
        let response = std::fs::read_to_string(&response_file).ok();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            response,
        )
    };
    let third = app(dir.path(), "e2e-box-g", &trust);
    let request = third
        .offline_activation_request(&client, &key, unix_now())
        .unwrap();
    let (code, stderr, _) = offline_cli(&request, "full");
    assert_eq!(code, Some(1), "{stderr}");
    let request = third
        .offline_activation_request(&client, &second_key, unix_now())
        .unwrap();
    let (code, stderr, cli_response) = offline_cli(&request, "second");
    assert_eq!(code, Some(0), "{stderr}");
    let cli_response = cli_response.unwrap();
    // Another machine's response is refused; this machine's own is imported.
    let foreign = third.import_offline_response(&client, &response.to_string(), unix_now());
    assert!(
        matches!(foreign, Err(OnlineError::Replay | OnlineError::Mismatch(_))),
        "{foreign:?}"
    );
    let imported = third
        .import_offline_response(&client, &cli_response, unix_now())
        .unwrap();
    assert_eq!(
        imported.verdict.status,
        Status::Valid,
        "{:?}",
        imported.verdict
    );
    assert_eq!(
        third.check_at_startup(unix_now()).unwrap().status,
        Status::Valid
    );
}

#[test]
fn a_server_that_never_answers_does_not_hold_up_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let trust = server.shipped_trust_store();
    let (_, key) = server.issue(json!({ "model": "perpetual", "max_machines": 1 }));
    let app = app(dir.path(), "e2e-box-d", &trust);
    app.activate(&client(&server.url, &trust), &key, unix_now())
        .unwrap();

    // Accepts connections (kernel backlog) and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_client = client(&format!("http://{}", silent.local_addr().unwrap()), &trust);
    let limit = Duration::from_millis(700);
    let started = Instant::now();
    let check = app.check_online(&silent_client, unix_now(), limit).unwrap();
    let took = started.elapsed();
    assert!(
        matches!(check.offline_reason, Some(OnlineError::Timeout(_))),
        "{:?}",
        check.offline_reason
    );
    assert_eq!(check.verdict.status, Status::Valid);
    assert!(took < limit + Duration::from_millis(300), "took {took:?}");
    drop(silent);
}

/// Moves a license's last change `by` seconds into the past, in the server's SQLite file (as if
/// the license had been issued that long ago).
fn backdate_license(db: &Path, license_id: &str, by: i64) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(db)
            .busy_timeout(Duration::from_secs(10));
        let mut conn = sqlx::ConnectOptions::connect(&options).await.unwrap();
        let done = sqlx::query("UPDATE licenses SET updated_at = updated_at - $1 WHERE id = $2")
            .bind(by)
            .bind(license_id)
            .execute(&mut conn)
            .await
            .unwrap();
        assert_eq!(done.rows_affected(), 1);
    });
}

/// The steady state of a fleet, through the real client and server: the app names the tokens
/// it holds; while they are current the answer carries none and the app keeps its own (still
/// valid); after a change to the license it gets and stores new ones.
#[test]
fn an_app_holding_current_tokens_keeps_them_until_the_license_changes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let trust = server.shipped_trust_store();
    let client = client(&server.url, &trust);
    let (license_id, key) = server.issue(json!({
        "model": "subscription", "duration": 365 * 86400, "check_in_interval": 86400
    }));
    let app = app(dir.path(), "e2e-held", &trust);
    app.activate(&client, &key, unix_now()).unwrap();
    let license_token = app.store().read_token().unwrap().unwrap();
    let machine_token = app.store().read_machine_token().unwrap().unwrap();

    // Issued an hour ago: the tokens the app got at activation are current. (The server's
    // license cache may hold the row for up to a second.)
    backdate_license(&data.join("licensing.db"), &license_id, 3600);
    std::thread::sleep(Duration::from_millis(1100));
    let check = app.validate_online(&client, unix_now()).unwrap();
    assert_eq!(check.verdict.status, Status::Valid, "{:?}", check.verdict);
    let validation = check.validation.unwrap();
    assert_eq!(validation.status, ServerStatus::Active);
    assert!(validation.machine_activated);
    assert!(validation.license_token.is_none() && validation.machine_token.is_none());
    assert_eq!(
        app.store().read_token().unwrap(),
        Some(license_token.clone())
    );
    assert_eq!(
        app.store().read_machine_token().unwrap(),
        Some(machine_token.clone())
    );

    // Suspended and reinstated: the license changed, so both tokens come back new.
    server.license_action(&license_id, "suspend");
    server.license_action(&license_id, "reinstate");
    let check = app.validate_online(&client, unix_now()).unwrap();
    assert_eq!(check.verdict.status, Status::Valid, "{:?}", check.verdict);
    let validation = check.validation.unwrap();
    assert!(validation.license_token.is_some() && validation.machine_token.is_some());
    assert_ne!(app.store().read_token().unwrap(), Some(license_token));
    assert_ne!(
        app.store().read_machine_token().unwrap(),
        Some(machine_token)
    );
}
