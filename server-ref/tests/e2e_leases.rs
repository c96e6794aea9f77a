//! End to end for floating seats through the client's `LeaseManager` (licensing-core feature
//! `online`) against the real `licensing-server serve` binary on 127.0.0.1: heartbeats on the
//! background thread, the exact denial, check-in on drop, force-release reported through the
//! callback. Bounded: every call has a deadline, every wait a timeout.
// `Server`'s Drop kills and waits for the child, which clippy cannot see.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::zombie_processes)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use licensing_core::online::{Client, ClientConfig, LeaseConfig, LeaseLoss, LeaseManager};
use licensing_core::{Status, TrustStore, Verifier};
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

fn client(url: &str, trust: &TrustStore) -> Client {
    let config = ClientConfig {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        deadline: Duration::from_secs(10),
        ..ClientConfig::new(url, PRODUCT)
    };
    Client::new(config, trust.clone()).unwrap()
}

fn seat(key: &str, client_id: &str, beat: Duration) -> LeaseConfig {
    LeaseConfig {
        heartbeat_interval: Some(beat),
        ..LeaseConfig::new(key, client_id, format!("user-of-{client_id}"))
    }
}

fn live_leases(server: &Server, license_id: &str) -> Vec<Value> {
    server.admin(
        "GET",
        &format!("/v1/licenses/{license_id}/leases"),
        None,
        200,
    )["leases"]
        .as_array()
        .unwrap()
        .clone()
}

/// Waits (bounded) until `ok()` holds.
fn eventually(what: &str, ok: impl Fn() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn lease_manager_heartbeats_is_denied_at_the_limit_and_checks_in_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let trust = server.shipped_trust_store();
    let client = client(&server.url, &trust);
    let (license_id, key) = server.issue(json!({ "model": "floating", "seats": 1 }));

    let a = LeaseManager::check_out(
        &client,
        seat(&key, "client-a", Duration::from_millis(100)),
        Box::new(|loss| panic!("seat lost: {loss}")),
    )
    .unwrap();
    let first = a.grant();
    assert!(first.created);
    assert_eq!(a.status(), Status::Valid);
    // The token is a lease for this license, verifiable by the app's own verifier.
    let lease = Verifier::new(trust.clone(), PRODUCT)
        .verify_lease(&a.lease_token())
        .unwrap();
    assert_eq!(
        lease.status_for(&license_id, licensing_core::unix_now()),
        Status::Valid
    );
    assert_eq!(lease.claims().client_id, "client-a");

    // The background thread heartbeats on its own: fresh tokens, same lease and epoch.
    eventually("3 heartbeats", || a.heartbeats() >= 3);
    let now = a.grant();
    assert_eq!(
        (now.lease_id.as_str(), now.epoch),
        (first.lease_id.as_str(), first.epoch)
    );
    assert_ne!(now.lease_token, first.lease_token);

    // The one seat is taken: the exact denial, recorded by the server.
    let denied = LeaseManager::check_out(
        &client,
        seat(&key, "client-b", Duration::from_millis(100)),
        Box::new(|_| {}),
    )
    .unwrap_err();
    assert!(denied.is_no_seats(), "{denied:?}");
    assert_eq!(
        denied.to_string(),
        "the licensing server refused (HTTP 409 no_seats): No available licenses, please contact IT"
    );
    let denials = server.admin(
        "GET",
        &format!("/v1/licenses/{license_id}/denials"),
        None,
        200,
    );
    assert_eq!(
        denials["denials"].as_array().map(Vec::len),
        Some(1),
        "{denials}"
    );

    // Dropping the manager checks in: the seat is free at once for client b.
    drop(a);
    assert!(live_leases(&server, &license_id).is_empty());
    let b = LeaseManager::check_out(
        &client,
        seat(&key, "client-b", Duration::from_millis(100)),
        Box::new(|_| {}),
    )
    .unwrap();
    assert_eq!(live_leases(&server, &license_id).len(), 1);
    b.check_in().unwrap();
    assert!(live_leases(&server, &license_id).is_empty());
}

#[test]
fn force_release_is_reported_through_the_callback_and_frees_the_seat() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let trust = server.shipped_trust_store();
    let client = client(&server.url, &trust);
    let (license_id, key) = server.issue(json!({ "model": "floating", "seats": 1 }));

    let (tx, rx) = mpsc::channel();
    let a = LeaseManager::check_out(
        &client,
        seat(&key, "client-a", Duration::from_millis(100)),
        Box::new(move |loss| tx.send(loss.clone()).unwrap()),
    )
    .unwrap();
    eventually("a heartbeat", || a.heartbeats() >= 1);
    let lease_id = a.grant().lease_id;
    let released = Instant::now();
    server.admin(
        "POST",
        &format!("/v1/licenses/{license_id}/leases/{lease_id}/release"),
        Some(json!({})),
        200,
    );
    let loss = rx.recv_timeout(TIMEOUT).unwrap();
    // Measured, not asserted (loaded CI machines): about one heartbeat interval.
    eprintln!("force-release reported after {:?}", released.elapsed());
    match &loss {
        LeaseLoss::Released { code, detail } => {
            assert_eq!(code, "lease_released");
            assert!(detail.contains("administrator"), "{detail}");
        }
        other => panic!("expected Released, got {other:?}"),
    }
    assert_eq!(a.status(), Status::LeaseExpired);
    assert_eq!(a.lost(), Some(loss));
    // Reported once; the manager stops heartbeating.
    let beats = a.heartbeats();
    assert!(rx.recv_timeout(Duration::from_millis(400)).is_err());
    assert_eq!(a.heartbeats(), beats);
    // The seat went free at the force-release; the same user comes back seamlessly.
    let again = LeaseManager::check_out(
        &client,
        seat(&key, "client-a", Duration::from_millis(100)),
        Box::new(|_| {}),
    )
    .unwrap();
    assert_ne!(again.grant().lease_id, lease_id);
    drop(a);
    // Dropping the lost manager checked nothing in: the new seat is still held.
    assert_eq!(live_leases(&server, &license_id).len(), 1);
    drop(again);
    assert!(live_leases(&server, &license_id).is_empty());
}

#[test]
fn a_suspended_license_ends_the_seat_at_the_next_heartbeat() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let trust = server.shipped_trust_store();
    let client = client(&server.url, &trust);
    let (license_id, key) = server.issue(json!({ "model": "floating", "seats": 2 }));
    let (tx, rx) = mpsc::channel();
    let a = LeaseManager::check_out(
        &client,
        seat(&key, "client-a", Duration::from_millis(100)),
        Box::new(move |loss| tx.send(loss.clone()).unwrap()),
    )
    .unwrap();
    server.license_action(&license_id, "suspend");
    let loss = rx.recv_timeout(TIMEOUT).unwrap();
    assert!(
        matches!(&loss, LeaseLoss::Refused { status: 403, code, .. } if code == "license_suspended"),
        "{loss:?}"
    );
    assert_eq!(a.status(), Status::LeaseExpired);
    server.stop();
}
