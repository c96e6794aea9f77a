//! `OnlineClient.with_transport`: the online flow over a transport the host implements (here in
//! Rust, as Kotlin, Swift and Python implement `HttpTransport`), its failures as the host sees
//! them, and the rules the library keeps whatever the transport (URL scheme, body cap).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
#![cfg(feature = "online-core")]

use std::sync::{Arc, Mutex};

use licensing_core::{PrivateKey, Status, TokenKind, sign_token};
use licensing_uniffi::{
    HttpRequest, HttpResponse, HttpTransport, LicenseStore, Licensing, LicensingError,
    LicensingOptions, OnlineClient, TransportError, TrustStore,
};
use serde_json::{Map, Value, json};

const PRODUCT: &str = "com.example.cad";
const NOW: i64 = 1_780_000_000;

fn key() -> PrivateKey {
    PrivateKey::from_seed(&[11u8; 32]).unwrap()
}

fn store() -> Arc<TrustStore> {
    Arc::new(TrustStore::from_document(key().public_key().to_spki_pem().unwrap()).unwrap())
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => unreachable!(),
    }
}

fn license_token() -> String {
    let claims = serde_json::from_value(json!({
        "iss": "https://licensing.example.com", "sub": "lic_t", "aud": PRODUCT, "iat": NOW - 60,
        "lic": { "model": "perpetual" }
    }))
    .unwrap();
    licensing_core::issue_license(&claims, &key()).unwrap()
}

/// A stand-in for the server: answers activation and validation as it would (signed), or fails
/// the way `mode` says; records every request.
struct FakeServer {
    mode: Mutex<&'static str>,
    sent: Mutex<Vec<HttpRequest>>,
}

impl FakeServer {
    fn new() -> Arc<Self> {
        Arc::new(FakeServer {
            mode: Mutex::new("serve"),
            sent: Mutex::new(Vec::new()),
        })
    }

    fn set(&self, mode: &'static str) {
        *self.mode.lock().unwrap() = mode;
    }

    fn answer(status: u16, body: Value) -> Result<HttpResponse, TransportError> {
        Ok(HttpResponse {
            status,
            headers: [("Content-Type".to_owned(), "application/json".to_owned())].into(),
            body: body.to_string().into_bytes(),
        })
    }
}

impl HttpTransport for FakeServer {
    fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        self.sent.lock().unwrap().push(request.clone());
        let mode = *self.mode.lock().unwrap();
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        match mode {
            "down" => Err(TransportError::Network {
                reason: "connection refused".into(),
            }),
            "slow" => Err(TransportError::Timeout {
                reason: "read timed out".into(),
            }),
            "refuse" => Self::answer(
                404,
                json!({ "error": "license_not_found", "detail": "no such key" }),
            ),
            "huge" => Ok(HttpResponse {
                status: 200,
                headers: Default::default(),
                body: vec![b' '; usize::try_from(request.max_body_bytes).unwrap() + 1],
            }),
            _ if request.url.ends_with("/v1/client/activate") => {
                let claims = object(json!({ "sub": "mch_t", "aud": PRODUCT, "iat": NOW,
                    "license_id": "lic_t", "fingerprint": body["fingerprint"] }));
                let machine = sign_token(TokenKind::Machine, &key(), &claims).unwrap();
                Self::answer(
                    201,
                    json!({ "machine_id": "mch_t", "license_id": "lic_t",
                        "machine_token": machine, "license_token": license_token() }),
                )
            }
            _ => {
                let claims = object(json!({
                    "iss": "https://licensing.example.com", "sub": "lic_t", "aud": PRODUCT,
                    "iat": NOW, "exp": NOW + 300, "jti": "jti_t", "nonce": body["nonce"],
                    "server_time": NOW, "license_id": "lic_t", "status": "active",
                    "fingerprint": body["fingerprint"], "machine_activated": true,
                    "machine_id": "mch_t",
                }));
                let token = sign_token(TokenKind::Response, &key(), &claims).unwrap();
                Self::answer(200, json!({ "response_token": token }))
            }
        }
    }
}

fn licensing(dir: &tempfile::TempDir) -> Arc<Licensing> {
    Arc::new(
        Licensing::new(
            store(),
            PRODUCT.into(),
            Arc::new(LicenseStore::at(dir.path().to_string_lossy().into_owned()).unwrap()),
            LicensingOptions {
                fingerprint_override: Some("node-t".into()),
                ..Default::default()
            },
        )
        .unwrap(),
    )
}

fn client(server: &Arc<FakeServer>) -> OnlineClient {
    OnlineClient::with_transport(
        store(),
        "https://licensing.example.com".into(),
        PRODUCT.into(),
        Some(2_000),
        server.clone(),
    )
    .unwrap()
}

#[test]
fn the_online_flow_runs_over_the_hosts_transport() {
    let dir = tempfile::tempdir().unwrap();
    let licensing = licensing(&dir);
    let server = FakeServer::new();
    let client = client(&server);

    let verdict = client
        .activate(licensing.clone(), "AAAAA-BBBBB".into(), NOW)
        .unwrap();
    assert_eq!(verdict.status, Status::Valid);
    let result = client.validate(licensing.clone(), NOW + 60).unwrap();
    assert!(result.online);
    assert_eq!(result.server_status.as_deref(), Some("active"));

    let sent = server.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[0].url,
        "https://licensing.example.com/v1/client/activate"
    );
    assert_eq!(
        sent[1].url,
        "https://licensing.example.com/v1/client/validate"
    );
    let request = &sent[1];
    assert_eq!(request.method, "POST");
    assert_eq!(
        request.headers.get("Content-Type").map(String::as_str),
        Some("application/json")
    );
    assert!(request.headers.contains_key("Licensing-Trusted-Kids"));
    assert!(request.timeout_ms > 0 && request.timeout_ms <= 2_000);
    assert!(request.connect_timeout_ms <= request.timeout_ms);
    assert_eq!(request.max_body_bytes, 256 * 1024);

    // The transport cannot reach the server: the startup check falls back to the stored token.
    server.set("down");
    let offline = client
        .check_online(licensing.clone(), NOW + 120, 2_000)
        .unwrap();
    assert!(!offline.online);
    assert!(
        offline
            .offline_reason
            .as_deref()
            .unwrap()
            .contains("connection refused")
    );
    assert_eq!(offline.verdict.status, Status::Valid);
}

#[test]
fn transport_failures_reach_the_host_as_licensing_errors() {
    let dir = tempfile::tempdir().unwrap();
    let licensing = licensing(&dir);
    let server = FakeServer::new();
    let client = client(&server);
    client
        .activate(licensing.clone(), "AAAAA-BBBBB".into(), NOW)
        .unwrap();

    server.set("slow");
    let err = client.validate(licensing.clone(), NOW + 60).unwrap_err();
    assert!(matches!(err, LicensingError::Network { .. }), "{err}");
    server.set("down");
    let err = client.validate(licensing.clone(), NOW + 60).unwrap_err();
    assert!(matches!(err, LicensingError::Network { .. }), "{err}");
    server.set("refuse");
    let err = client.validate(licensing.clone(), NOW + 60).unwrap_err();
    assert!(
        matches!(&err, LicensingError::Server { http_status: 404, code, .. } if code == "license_not_found"),
        "{err}"
    );
    // More than the cap, whatever the transport read: refused.
    server.set("huge");
    let err = client.validate(licensing.clone(), NOW + 60).unwrap_err();
    assert!(matches!(err, LicensingError::BadResponse { .. }), "{err}");
}

#[test]
fn the_url_rule_holds_whatever_the_transport() {
    let server = FakeServer::new();
    let refused = OnlineClient::with_transport(
        store(),
        "ftp://licensing.example.com".into(),
        PRODUCT.into(),
        None,
        server.clone(),
    );
    assert!(matches!(
        refused,
        Err(LicensingError::InvalidArgument { .. })
    ));
    assert!(server.sent.lock().unwrap().is_empty());
    // Plain http (the loopback test server) is accepted, as by the built-in transport.
    assert!(
        OnlineClient::with_transport(
            store(),
            "http://127.0.0.1:8080".into(),
            PRODUCT.into(),
            None,
            server,
        )
        .is_ok()
    );
}

/// Without the built-in stack (feature `online-core` alone, the mobile build), the plain
/// constructor keeps its name and refuses, pointing to `with_transport`.
#[cfg(not(feature = "online"))]
#[test]
fn without_the_built_in_stack_the_plain_constructor_refuses() {
    let err = OnlineClient::new(
        store(),
        "https://licensing.example.com".into(),
        PRODUCT.into(),
        None,
    )
    .unwrap_err();
    assert!(
        matches!(&err, LicensingError::InvalidArgument { reason } if reason.contains("with_transport")),
        "{err}"
    );
}

/// `set_user` names the app's user in the activations and validations that follow; `None` or
/// `""` clears it; a name the server would refuse is `InvalidArgument`, the user unchanged.
#[test]
fn the_user_set_reaches_activations_and_validations_until_cleared() {
    let dir = tempfile::tempdir().unwrap();
    let licensing = licensing(&dir);
    let server = FakeServer::new();
    let client = client(&server);

    client.set_user(Some("ada@example.com".into())).unwrap();
    for bad in [
        "x".repeat(201),
        "a\u{0}b".into(),
        "a\nb".into(),
        "  ".into(),
    ] {
        let err = client.set_user(Some(bad.clone())).unwrap_err();
        assert!(
            matches!(err, LicensingError::InvalidArgument { .. }),
            "{bad:?}: {err:?}"
        );
    }
    client
        .activate(licensing.clone(), "AAAAA-BBBBB".into(), NOW)
        .unwrap();
    client.validate(licensing.clone(), NOW + 60).unwrap();
    client.set_user(Some(String::new())).unwrap();
    client.validate(licensing.clone(), NOW + 61).unwrap();
    client.set_user(Some("ada@example.com".into())).unwrap();
    client.set_user(None).unwrap();
    client.validate(licensing.clone(), NOW + 62).unwrap();

    let bodies: Vec<Value> = server
        .sent
        .lock()
        .unwrap()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(bodies.len(), 4);
    assert_eq!(bodies[0]["user"], "ada@example.com", "{}", bodies[0]);
    assert_eq!(bodies[1]["user"], "ada@example.com", "{}", bodies[1]);
    assert!(bodies[2].get("user").is_none(), "{}", bodies[2]);
    assert!(bodies[3].get("user").is_none(), "{}", bodies[3]);
}
