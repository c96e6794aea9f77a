//! The client over an injected [`Transport`] (in-process, no socket): requests go through it,
//! its answers get the same checks as the default transport's (size cap, retries, signatures),
//! and its errors are network errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::*;
use crate::issuer::PrivateKey;
use crate::issuer::sign_token;
use crate::jws::TokenKind;
use crate::{LicenseClaims, issue_license};

const PRODUCT: &str = "com.example.cad";
const NOW: i64 = 1_790_000_000;

/// What the test transport answers to one request (it sees the request first).
type Reply = Box<dyn FnOnce(&HttpRequest) -> Result<HttpResponse, TransportError> + Send>;

/// Answers each request with the next queued reply and records every request it was given.
#[derive(Default)]
struct Replay {
    replies: Mutex<VecDeque<Reply>>,
    sent: Mutex<Vec<HttpRequest>>,
}

impl Replay {
    fn new(replies: Vec<Reply>) -> Arc<Self> {
        Arc::new(Replay {
            replies: Mutex::new(replies.into()),
            sent: Mutex::new(Vec::new()),
        })
    }

    fn sent(&self) -> Vec<HttpRequest> {
        self.sent.lock().unwrap().clone()
    }
}

impl Transport for Replay {
    fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        self.sent.lock().unwrap().push(request.clone());
        let reply = self.replies.lock().unwrap().pop_front();
        match reply {
            Some(reply) => reply(request),
            None => Err(TransportError::Network("no reply left".into())),
        }
    }
}

fn json_reply(status: u16, body: Value) -> Reply {
    Box::new(move |_| Ok(answer(status, body.to_string().into_bytes())))
}

fn answer(status: u16, body: Vec<u8>) -> HttpResponse {
    HttpResponse {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body,
    }
}

fn vendor() -> PrivateKey {
    PrivateKey::from_seed(&[7; 32]).unwrap()
}

fn trust(key: &PrivateKey) -> TrustStore {
    let mut store = TrustStore::new();
    store.add(key.public_key().clone()).unwrap();
    store
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => unreachable!(),
    }
}

fn fingerprint() -> MachineFingerprint {
    MachineFingerprint::from_override("box-t", PRODUCT, Vec::new())
}

fn license_token(key: &PrivateKey) -> String {
    let claims = LicenseClaims::from_object(object(json!({
        "iss": "https://licensing.example.com", "aud": PRODUCT, "sub": "lic_1", "iat": NOW,
        "exp": NOW + 365 * 86_400, "lic": { "model": "subscription", "grace_period": 0 }
    })))
    .unwrap();
    issue_license(&claims, key).unwrap()
}

fn config() -> ClientConfig {
    let mut config = ClientConfig::new("https://licensing.example.com/", PRODUCT);
    config.backoff = Duration::from_millis(1);
    config.max_backoff = Duration::from_millis(2);
    config
}

fn client(transport: Arc<Replay>) -> Client {
    Client::with_transport(config(), trust(&vendor()), transport).unwrap()
}

/// The validation answer for `request`: a response token echoing its nonce.
fn validation_reply() -> Reply {
    Box::new(|request| {
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        let key = vendor();
        let claims = object(json!({
            "iss": "https://licensing.example.com", "sub": "lic_1", "aud": PRODUCT, "iat": NOW,
            "exp": NOW + 300, "jti": "jti_1", "nonce": body["nonce"], "server_time": NOW,
            "license_id": "lic_1", "status": "active", "fingerprint": body["fingerprint"],
            "machine_activated": true, "machine_id": "mch_1",
            "license_token": license_token(&key),
        }));
        let token = sign_token(TokenKind::Response, &key, &claims).unwrap();
        Ok(answer(
            200,
            json!({ "response_token": token }).to_string().into_bytes(),
        ))
    })
}

#[test]
fn requests_go_through_the_transport_and_its_answers_are_verified() {
    let transport = Replay::new(vec![validation_reply()]);
    let client = client(transport.clone());
    let fp = fingerprint();
    let validation = client.validate("AAAAA-BBBBB", &fp.id).unwrap();
    assert_eq!(validation.status, ServerStatus::Active);
    assert_eq!(validation.license_id, "lic_1");

    let sent = transport.sent();
    assert_eq!(sent.len(), 1);
    let request = &sent[0];
    assert_eq!(request.method, "POST");
    assert_eq!(
        request.url,
        "https://licensing.example.com/v1/client/validate"
    );
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("accept"), Some("application/json"));
    assert!(
        request
            .header("user-agent")
            .unwrap()
            .starts_with("licensing/")
    );
    assert_eq!(
        request.header(TRUSTED_KIDS_HEADER),
        Some(vendor().public_key().kid())
    );
    assert_eq!(request.max_body_bytes, MAX_BODY_BYTES);
    assert!(request.timeout <= config().request_timeout);
    assert!(request.connect_timeout <= request.timeout);
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(body["license_key"], "AAAAA-BBBBB");
    assert_eq!(body["fingerprint"], fp.id.as_str());
    assert!(body["nonce"].as_str().unwrap().len() >= 32);

    // The answer of another request (a stale nonce) is refused as over the default transport.
    let stale = Replay::new(vec![Box::new(|request: &HttpRequest| {
        let mut tampered = request.clone();
        let mut body: Value = serde_json::from_slice(&tampered.body).unwrap();
        body["nonce"] = json!("another-request-nonce-0000000000000");
        tampered.body = body.to_string().into_bytes();
        validation_reply()(&tampered)
    })]);
    let replayed = client_validate(stale);
    assert!(matches!(replayed, Err(OnlineError::Replay)), "{replayed:?}");
}

fn client_validate(transport: Arc<Replay>) -> Result<Validation, OnlineError> {
    client(transport).validate("AAAAA-BBBBB", &fingerprint().id)
}

#[test]
fn activation_through_the_transport_verifies_the_machine_token() {
    let key = vendor();
    let fp = fingerprint();
    let claims = object(json!({ "sub": "mch_1", "aud": PRODUCT, "iat": NOW,
        "license_id": "lic_1", "fingerprint": { "id": fp.id, "components": {} } }));
    let machine = sign_token(TokenKind::Machine, &key, &claims).unwrap();
    let transport = Replay::new(vec![json_reply(
        201,
        json!({ "machine_id": "mch_1", "license_id": "lic_1", "machine_token": machine,
            "license_token": license_token(&key) }),
    )]);
    let activation = client(transport.clone())
        .activate("AAAAA-BBBBB", &fp)
        .unwrap();
    assert!(activation.created);
    assert_eq!(activation.machine_id, "mch_1");
    assert_eq!(
        transport.sent()[0].url,
        "https://licensing.example.com/v1/client/activate"
    );

    // A machine token for another machine is refused.
    let other = Replay::new(vec![json_reply(
        201,
        json!({ "machine_id": "mch_1", "license_id": "lic_1", "machine_token": machine }),
    )]);
    let refused = client(other).activate(
        "AAAAA-BBBBB",
        &MachineFingerprint::from_override("box-u", PRODUCT, Vec::new()),
    );
    assert!(
        matches!(refused, Err(OnlineError::Mismatch(_))),
        "{refused:?}"
    );
}

#[test]
fn a_body_over_the_cap_is_refused_whatever_the_transport_read() {
    // One byte over the cap (what a transport honouring the cap reads at most), and a transport
    // that ignored the cap: both refused, at once (no retry: the same server would answer the
    // same).
    for size in [MAX_BODY_BYTES + 1, 4 * MAX_BODY_BYTES] {
        let mut body = b"{\"response_token\":\"".to_vec();
        body.resize(usize::try_from(size).unwrap() - 2, b'a');
        body.extend_from_slice(b"\"}");
        let transport = Replay::new(vec![Box::new(move |_: &HttpRequest| Ok(answer(200, body)))]);
        let result = client_validate(transport.clone());
        match result {
            Err(OnlineError::BadResponse(detail)) => {
                assert!(detail.contains("larger than"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(transport.sent().len(), 1);
    }
    // Exactly at the cap: read and parsed (here: a body that is not the protocol's).
    let mut body = b"{\"x\":\"".to_vec();
    body.resize(usize::try_from(MAX_BODY_BYTES).unwrap() - 2, b'a');
    body.extend_from_slice(b"\"}");
    let transport = Replay::new(vec![Box::new(move |_: &HttpRequest| Ok(answer(200, body)))]);
    let result = client_validate(transport);
    match result {
        Err(OnlineError::BadResponse(detail)) => assert!(!detail.contains("larger than")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn transport_errors_are_network_errors_retried_then_reported() {
    let network =
        || -> Reply { Box::new(|_| Err(TransportError::Network("reset by peer".into()))) };
    // Every attempt fails: retries, then the network error, which an online check treats as
    // unreachable (falls back to the stored token).
    let transport = Replay::new(vec![network(), network(), network()]);
    let error = client_validate(transport.clone()).unwrap_err();
    assert!(
        matches!(&error, OnlineError::Network(detail) if detail == "reset by peer"),
        "{error:?}"
    );
    assert!(error.is_unreachable());
    assert_eq!(transport.sent().len(), 1 + config().retries as usize);

    let timeout = Replay::new(vec![
        Box::new(|_| Err(TransportError::Timeout)),
        Box::new(|_| Err(TransportError::Timeout)),
        Box::new(|_| Err(TransportError::Timeout)),
    ]);
    let error = client_validate(timeout).unwrap_err();
    assert!(matches!(error, OnlineError::Timeout(_)), "{error:?}");
    assert!(error.is_unreachable());

    // A failed attempt then a good one: the call succeeds.
    let recovers = Replay::new(vec![network(), validation_reply()]);
    assert!(client_validate(recovers.clone()).is_ok());
    assert_eq!(recovers.sent().len(), 2);
}

#[test]
fn server_answers_from_the_transport_keep_their_meaning() {
    // A 503 naming `Retry-After` (any case) is retried; then the answer counts.
    let transport = Replay::new(vec![
        Box::new(|_| {
            Ok(HttpResponse {
                status: 503,
                headers: vec![("retry-after".into(), "0".into())],
                body: br#"{"error":"unavailable","detail":"busy"}"#.to_vec(),
            })
        }),
        validation_reply(),
    ]);
    assert!(client_validate(transport.clone()).is_ok());
    assert_eq!(transport.sent().len(), 2);

    // A 4xx is the server's decision: not retried, its code kept.
    let refused = Replay::new(vec![json_reply(
        404,
        json!({"error": "license_not_found", "detail": "no such key"}),
    )]);
    let error = client_validate(refused.clone()).unwrap_err();
    assert_eq!(error.server_code(), Some("license_not_found"));
    assert!(!error.is_unreachable());
    assert_eq!(refused.sent().len(), 1);

    // A redirect is not followed (and not retried).
    let moved = Replay::new(vec![Box::new(|_| {
        Ok(HttpResponse {
            status: 302,
            headers: vec![("Location".into(), "https://elsewhere.example".into())],
            body: Vec::new(),
        })
    })]);
    let error = client_validate(moved.clone()).unwrap_err();
    assert!(
        matches!(error, OnlineError::Server { status: 302, .. }),
        "{error:?}"
    );
    assert_eq!(moved.sent().len(), 1);
}

#[test]
fn only_http_and_https_base_urls_are_accepted_whatever_the_transport() {
    for url in [
        "ftp://licensing.example.com",
        "file:///etc/passwd",
        "licensing.example.com",
    ] {
        let transport = Replay::new(Vec::new());
        let result = Client::with_transport(
            ClientConfig::new(url, PRODUCT),
            trust(&vendor()),
            transport.clone(),
        );
        assert!(matches!(result, Err(OnlineError::Config(_))), "{url}");
        assert!(transport.sent().is_empty());
    }
    for url in ["https://licensing.example.com", "http://127.0.0.1:8080"] {
        let transport = Replay::new(Vec::new());
        assert!(
            Client::with_transport(ClientConfig::new(url, PRODUCT), trust(&vendor()), transport)
                .is_ok(),
            "{url}"
        );
    }
}

#[cfg(feature = "store")]
#[test]
fn the_stateful_flow_runs_over_the_transport() {
    use crate::Licensing;
    use crate::store::LicenseStore;

    let key = vendor();
    let dir = tempfile::tempdir().unwrap();
    let app = Licensing::new(trust(&key), PRODUCT, LicenseStore::at(dir.path()).unwrap())
        .with_fingerprint_override(Some("box-t".into()));
    let activate: Reply = Box::new(|request| {
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        let key = vendor();
        let claims = object(json!({ "sub": "mch_1", "aud": PRODUCT, "iat": NOW,
            "license_id": "lic_1", "fingerprint": body["fingerprint"] }));
        let machine = sign_token(TokenKind::Machine, &key, &claims).unwrap();
        Ok(answer(
            201,
            json!({ "machine_id": "mch_1", "license_id": "lic_1", "machine_token": machine,
                "license_token": license_token(&key) })
            .to_string()
            .into_bytes(),
        ))
    });
    let transport = Replay::new(vec![activate, validation_reply()]);
    let client = client(transport.clone());
    let activated = app.activate(&client, "AAAAA-BBBBB", NOW).unwrap();
    assert!(activated.verdict.is_usable(), "{:?}", activated.verdict);
    let check = app
        .check_online(&client, NOW + 60, Duration::from_secs(5))
        .unwrap();
    assert!(check.offline_reason.is_none(), "{:?}", check.offline_reason);
    assert!(check.verdict.is_usable());
    // Unreachable now: the stored token, offline.
    let check = app
        .check_online(&client, NOW + 120, Duration::from_secs(5))
        .unwrap();
    assert!(check.offline_reason.is_some());
    assert!(check.verdict.is_usable());
    assert_eq!(transport.sent().len(), 2 + 1 + config().retries as usize);
}

/// A client made `with_user` names its user in activations and validations (the server links
/// the machine to the directory user of that name); a client without one sends no `user`.
#[test]
fn a_client_with_a_user_names_it_in_activations_and_validations() {
    let key = vendor();
    let fp = fingerprint();
    let claims = object(json!({ "sub": "mch_1", "aud": PRODUCT, "iat": NOW,
        "license_id": "lic_1", "fingerprint": { "id": fp.id, "components": {} } }));
    let machine = sign_token(TokenKind::Machine, &key, &claims).unwrap();
    let activation = json_reply(
        201,
        json!({ "machine_id": "mch_1", "license_id": "lic_1", "machine_token": machine,
            "license_token": license_token(&key) }),
    );
    let transport = Replay::new(vec![activation, validation_reply(), validation_reply()]);
    let named = client(transport.clone()).with_user("alice@example.com");
    assert_eq!(named.user(), Some("alice@example.com"));
    named.activate("AAAAA-BBBBB", &fp).unwrap();
    named.validate("AAAAA-BBBBB", &fp.id).unwrap();
    client(transport.clone())
        .validate("AAAAA-BBBBB", &fp.id)
        .unwrap();
    let bodies: Vec<Value> = transport
        .sent()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(bodies[0]["user"], "alice@example.com");
    assert_eq!(bodies[1]["user"], "alice@example.com");
    assert!(bodies[2].get("user").is_none(), "{}", bodies[2]);
}

/// `set_user` names the user in later activations and validations; `None` or `""` clears it
/// (no `user` sent); a name the server would refuse is refused here as a configuration error,
/// the user unchanged.
#[test]
fn set_user_sets_clears_and_refuses_what_the_server_would() {
    let fp = fingerprint();
    let transport = Replay::new(vec![
        validation_reply(),
        validation_reply(),
        validation_reply(),
    ]);
    let mut client = client(transport.clone());
    client.set_user(Some("Ada Lovelace".into())).unwrap();
    assert_eq!(client.user(), Some("Ada Lovelace"));
    for bad in [
        " ".to_owned(),
        "a\u{7}b".to_owned(),
        "a\nb".to_owned(),
        "evil\u{202E}txt".to_owned(),
        "é".repeat(MAX_USER_CHARS + 1),
    ] {
        let err = client.set_user(Some(bad.clone())).unwrap_err();
        assert_eq!(err.kind(), OnlineErrorKind::Config, "{bad:?}: {err}");
        assert_eq!(client.user(), Some("Ada Lovelace"), "{bad:?}");
    }
    client.validate("AAAAA-BBBBB", &fp.id).unwrap();
    client.set_user(Some(String::new())).unwrap();
    assert_eq!(client.user(), None);
    client.validate("AAAAA-BBBBB", &fp.id).unwrap();
    // The longest name is accepted (characters, not bytes), and None clears it.
    client.set_user(Some("é".repeat(MAX_USER_CHARS))).unwrap();
    client.validate("AAAAA-BBBBB", &fp.id).unwrap();
    client.set_user(None).unwrap();
    assert_eq!(client.user(), None);
    let bodies: Vec<Value> = transport
        .sent()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(bodies[0]["user"], "Ada Lovelace");
    assert!(bodies[1].get("user").is_none(), "{}", bodies[1]);
    assert_eq!(bodies[2]["user"], "é".repeat(MAX_USER_CHARS));
}
