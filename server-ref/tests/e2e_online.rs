//! End to end through the online client (licensing-core feature `online`): the real
//! `licensing-server serve` binary on 127.0.0.1 (port 0, a temp data dir), an app's
//! `Licensing` with its own store, and the vendor's admin API. Bounded: every call has a
//! deadline, every wait a timeout.
// `Server`'s Drop kills and waits for the child, which clippy cannot see.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::zombie_processes)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use licensing_core::online::{Client, ClientConfig, OnlineError, ServerStatus};
use licensing_core::store::LicenseStore;
use licensing_core::{Licensing, Status, TrustStore, unix_now};
use serde_json::{Value, json};

const PRODUCT: &str = "com.example.cad";
const TIMEOUT: Duration = Duration::from_secs(30);

/// A running server; killed on drop if the test did not stop it.
struct Server {
    child: Child,
    url: String,
    admin_token: String,
    http: reqwest::blocking::Client,
}

impl Server {
    fn start(data_dir: &Path) -> Server {
        let log = std::fs::File::create(data_dir.with_extension("log")).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_licensing-server"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut admin_token = None;
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("server did not start ({e}); see its .log"));
            if let Some(token) =
                line.strip_prefix("admin API token (shown once, only its hash is stored): ")
            {
                admin_token = Some(token.to_owned());
            } else if let Some(addr) = line.strip_prefix("listening on http://") {
                return Server {
                    child,
                    url: format!("http://{addr}"),
                    admin_token: admin_token.expect("bootstrap token on first start"),
                    http: reqwest::blocking::Client::builder()
                        .timeout(TIMEOUT)
                        .build()
                        .unwrap(),
                };
            }
        }
    }

    /// An admin call; asserts the status and answers the JSON body.
    fn admin(&self, method: &str, path: &str, body: Option<Value>, status: u16) -> Value {
        let url = format!("{}{path}", self.url);
        let request = match method {
            "GET" => self.http.get(url),
            _ => self.http.post(url),
        }
        .bearer_auth(&self.admin_token);
        let request = match body {
            Some(body) => request
                .header("content-type", "application/json")
                .body(body.to_string()),
            None => request,
        };
        let response = request.send().unwrap();
        let got = response.status().as_u16();
        let text = response.text().unwrap();
        assert_eq!(got, status, "{method} {path}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// The vendor's public keys, as the app ships them (fetched once here for the test; the
    /// client itself never reads the JWKS).
    fn shipped_trust_store(&self) -> TrustStore {
        let jwks = self.admin("GET", "/.well-known/jwks.json", None, 200);
        TrustStore::from_document(&jwks.to_string()).unwrap()
    }

    /// A license from a new policy; answers (license id, license key).
    fn issue(&self, policy: Value) -> (String, String) {
        let product = self.admin("GET", "/v1/products", None, 200);
        if !product["products"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == PRODUCT)
        {
            self.admin(
                "POST",
                "/v1/products",
                Some(json!({ "id": PRODUCT, "name": "CAD" })),
                201,
            );
        }
        let mut body = json!({ "product_id": PRODUCT, "name": "e2e" });
        body.as_object_mut()
            .unwrap()
            .extend(policy.as_object().unwrap().clone());
        let policy = self.admin("POST", "/v1/policies", Some(body), 201);
        let license = self.admin(
            "POST",
            "/v1/licenses",
            Some(json!({ "policy_id": policy["id"], "customer": { "name": "Northwind" } })),
            201,
        );
        (
            license["id"].as_str().unwrap().to_owned(),
            license["key"].as_str().unwrap().to_owned(),
        )
    }

    fn license_action(&self, id: &str, action: &str) -> Value {
        self.admin(
            "POST",
            &format!("/v1/licenses/{id}/{action}"),
            Some(json!({})),
            200,
        )
    }

    /// SIGTERM, then wait for the graceful exit.
    fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + TIMEOUT;
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The app on one machine: its own store directory and a fixed machine identity.
fn app(dir: &Path, machine: &str, trust: &TrustStore) -> Licensing {
    Licensing::new(
        trust.clone(),
        PRODUCT,
        LicenseStore::at(dir.join(machine)).unwrap(),
    )
    .with_fingerprint_override(Some(machine.to_owned()))
}

fn client(url: &str, trust: &TrustStore) -> Client {
    let config = ClientConfig {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        deadline: Duration::from_secs(10),
        ..ClientConfig::new(url, PRODUCT)
    };
    Client::new(config, trust.clone()).unwrap()
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
