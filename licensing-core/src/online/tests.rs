//! The client against signed canned answers and a loopback stub server (std only): every
//! verification rule, retries, and the time limits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::*;
use crate::fingerprint::MachineFingerprint;
use crate::issuer::{PrivateKey, sign_token};
use crate::jws::TokenKind;
use crate::{Error, Status, issue_license};

const PRODUCT: &str = "com.example.cad";
const NOW: i64 = 1_790_000_000;

fn key(seed: u8) -> PrivateKey {
    PrivateKey::from_seed(&[seed; 32]).unwrap()
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
    MachineFingerprint::from_override("box-a", PRODUCT, Vec::new())
}

fn license_token(key: &PrivateKey, id: &str) -> String {
    let claims = crate::LicenseClaims::from_object(object(json!({
        "iss": "https://licensing.example.com", "aud": PRODUCT, "sub": id, "iat": NOW,
        "exp": NOW + 365 * 86_400, "lic": { "model": "subscription", "grace_period": 0 }
    })))
    .unwrap();
    issue_license(&claims, key).unwrap()
}

fn machine_token(key: &PrivateKey, fp: &str, license: &str) -> String {
    let claims = json!({ "sub": "mch_1", "aud": PRODUCT, "iat": NOW, "license_id": license,
        "fingerprint": { "id": fp, "components": {} } });
    sign_token(TokenKind::Machine, key, &object(claims)).unwrap()
}

fn response_claims(nonce: &str, fp: &str, key: &PrivateKey) -> Map<String, Value> {
    object(json!({
        "iss": "https://licensing.example.com", "sub": "lic_1", "aud": PRODUCT, "iat": NOW,
        "exp": NOW + 300, "jti": "jti_1", "nonce": nonce, "server_time": NOW,
        "license_id": "lic_1", "status": "active", "fingerprint": fp,
        "machine_activated": true, "machine_id": "mch_1",
        "license_token": license_token(key, "lic_1"),
    }))
}

fn response(claims: &Map<String, Value>, key: &PrivateKey) -> String {
    sign_token(TokenKind::Response, key, claims).unwrap()
}

fn verifier(key: &PrivateKey) -> Verifier {
    Verifier::new(trust(key), PRODUCT)
}

#[test]
fn a_genuine_response_verifies_and_every_forgery_is_refused() {
    let vendor = key(1);
    let v = verifier(&vendor);
    let fp = fingerprint().id;
    let claims = response_claims("nonce-0001", &fp, &vendor);
    let ok = answer::verify_response(&v, &response(&claims, &vendor), "nonce-0001", &fp).unwrap();
    assert_eq!(ok.status, ServerStatus::Active);
    assert_eq!(ok.server_time, NOW);
    assert_eq!(ok.license_id, "lic_1");
    assert!(ok.machine_activated && !ok.offline);
    assert!(ok.license_token.is_some());

    // A replayed answer (another request's nonce).
    let replay = answer::verify_response(&v, &response(&claims, &vendor), "nonce-0002", &fp);
    assert!(matches!(replay, Err(OnlineError::Replay)), "{replay:?}");
    // Signed by a key the app does not trust (e.g. one the server's JWKS would offer).
    let rogue = key(2);
    let forged = answer::verify_response(&v, &response(&claims, &rogue), "nonce-0001", &fp);
    assert!(
        matches!(forged, Err(OnlineError::Token(Error::UnknownKey(_)))),
        "{forged:?}"
    );
    // A genuine token of another kind.
    let machine = sign_token(TokenKind::Machine, &vendor, &claims).unwrap();
    let wrong_typ = answer::verify_response(&v, &machine, "nonce-0001", &fp);
    assert!(matches!(
        wrong_typ,
        Err(OnlineError::Token(Error::WrongTokenType { .. }))
    ));
    // Another product.
    let mut other = claims.clone();
    other.insert("aud".into(), json!("com.example.other"));
    let product = answer::verify_response(&v, &response(&other, &vendor), "nonce-0001", &fp);
    assert!(matches!(
        product,
        Err(OnlineError::Token(Error::ProductMismatch { .. }))
    ));
    // About another machine.
    let machine = answer::verify_response(&v, &response(&claims, &vendor), "nonce-0001", "fp-b");
    assert!(
        matches!(machine, Err(OnlineError::Mismatch(_))),
        "{machine:?}"
    );
    // A license token for another license inside a genuine response.
    let mut swapped = claims.clone();
    swapped.insert(
        "license_token".into(),
        json!(license_token(&vendor, "lic_2")),
    );
    let swapped = answer::verify_response(&v, &response(&swapped, &vendor), "nonce-0001", &fp);
    assert!(
        matches!(swapped, Err(OnlineError::Mismatch(_))),
        "{swapped:?}"
    );
    // A license token signed by the rogue key inside a genuine response.
    let mut rogue_license = claims.clone();
    rogue_license.insert(
        "license_token".into(),
        json!(license_token(&rogue, "lic_1")),
    );
    let rogue_license =
        answer::verify_response(&v, &response(&rogue_license, &vendor), "nonce-0001", &fp);
    assert!(matches!(
        rogue_license,
        Err(OnlineError::Token(Error::UnknownKey(_)))
    ));
    // A missing claim.
    let mut missing = claims.clone();
    missing.remove("server_time");
    let missing = answer::verify_response(&v, &response(&missing, &vendor), "nonce-0001", &fp);
    assert!(
        matches!(missing, Err(OnlineError::BadResponse(_))),
        "{missing:?}"
    );
    // Status names the client does not know are kept, not guessed.
    let mut newer = claims.clone();
    newer.insert("status".into(), json!("frozen"));
    let newer = answer::verify_response(&v, &response(&newer, &vendor), "nonce-0001", &fp).unwrap();
    assert_eq!(newer.status, ServerStatus::Other("frozen".into()));
}

#[test]
fn offline_responses_must_answer_the_pending_request_and_not_be_expired() {
    let vendor = key(1);
    let client = Client::new(
        ClientConfig::new("http://127.0.0.1:9", PRODUCT),
        trust(&vendor),
    )
    .unwrap();
    let fp = fingerprint();
    let request = client
        .offline_activation_request("AAAAA-BBBBB", &fp, NOW)
        .unwrap();
    let parsed = OfflineRequest::from_json(&request.to_json()).unwrap();
    assert_eq!(parsed, request);
    assert_eq!(parsed.kind, OFFLINE_REQUEST_KIND);
    assert!(request.nonce.len() >= 32);
    let mut claims = response_claims(&request.nonce, &fp.id, &vendor);
    claims.insert("offline".into(), json!(true));
    claims.insert("exp".into(), json!(NOW + 30 * 86_400));
    claims.insert(
        "machine_token".into(),
        json!(machine_token(&vendor, &fp.id, "lic_1")),
    );
    let file = |claims: &Map<String, Value>| {
        json!({ "kind": OFFLINE_RESPONSE_KIND, "version": 1,
            "response_token": response(claims, &vendor) })
        .to_string()
    };
    let ok = client
        .verify_offline_response(&file(&claims), &request, NOW + 86_400)
        .unwrap();
    assert!(ok.offline && ok.machine_token.is_some());

    let late = client.verify_offline_response(&file(&claims), &request, NOW + 31 * 86_400);
    assert!(matches!(late, Err(OnlineError::Expired(_))), "{late:?}");
    let other_request = client
        .offline_activation_request("AAAAA-BBBBB", &fp, NOW)
        .unwrap();
    let replay = client.verify_offline_response(&file(&claims), &other_request, NOW);
    assert!(matches!(replay, Err(OnlineError::Replay)), "{replay:?}");
    let mut online = claims.clone();
    online.remove("offline");
    let online = client.verify_offline_response(&file(&online), &request, NOW);
    assert!(
        matches!(online, Err(OnlineError::BadResponse(_))),
        "{online:?}"
    );
    let mut bad_machine = claims.clone();
    bad_machine.insert(
        "machine_token".into(),
        json!(machine_token(&vendor, "fp-b", "lic_1")),
    );
    let bad_machine = client.verify_offline_response(&file(&bad_machine), &request, NOW);
    assert!(
        matches!(bad_machine, Err(OnlineError::Mismatch(_))),
        "{bad_machine:?}"
    );
    let not_a_file = client.verify_offline_response("{\"kind\":\"x\"}", &request, NOW);
    assert!(matches!(not_a_file, Err(OnlineError::BadResponse(_))));
}

/// A loopback HTTP/1.1 stub: answers each connection with `answer(request body)`, counting
/// requests. Stops when the test ends (the thread is detached; the listener lives with it).
struct Stub {
    url: String,
    hits: Arc<AtomicUsize>,
}

fn stub(answer: impl Fn(&Value, usize) -> (u16, String) + Send + 'static) -> Stub {
    stub_with_headers(move |body, n| {
        let (status, text) = answer(body, n);
        (status, text, String::new())
    })
}

/// [`stub`] whose answers carry extra header lines (`"Name: value\r\n"`).
fn stub_with_headers(
    answer: impl Fn(&Value, usize) -> (u16, String, String) + Send + 'static,
) -> Stub {
    stub_routes(move |_, body, n| answer(body, n))
}

/// [`stub_with_headers`] whose answers also see the request's path.
fn stub_routes(
    answer: impl Fn(&str, &Value, usize) -> (u16, String, String) + Send + 'static,
) -> Stub {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { break };
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let _ = serve_one(stream, |path, body| answer(path, body, n));
        }
    });
    Stub { url, hits }
}

fn serve_one(
    stream: TcpStream,
    answer: impl FnOnce(&str, &Value) -> (u16, String, String),
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut length = 0usize;
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let path = request_line
        .split(' ')
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (status, text, headers) = answer(&path, &body);
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{headers}Connection: close\r\n\r\n{text}",
        text.len()
    )
}

fn fast_config(url: &str) -> ClientConfig {
    ClientConfig {
        retries: 2,
        backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(20),
        ..ClientConfig::new(url, PRODUCT)
    }
}

#[test]
fn validate_sends_a_fresh_nonce_and_checks_the_echo() {
    let vendor = key(1);
    let signer = key(1);
    let fp = fingerprint().id;
    let fp_stub = fp.clone();
    // Echoes the nonce the first time; the second time answers with the first nonce (replay).
    let first_nonce = Arc::new(std::sync::Mutex::new(None::<String>));
    let seen = first_nonce.clone();
    let server = stub(move |body, n| {
        let nonce = body["nonce"].as_str().unwrap().to_owned();
        assert!((8..=128).contains(&nonce.len()) && nonce.bytes().all(|b| b.is_ascii_graphic()));
        assert_eq!(body["license_key"], "AAAAA-BBBBB");
        let mut slot = seen.lock().unwrap();
        let echoed = if n == 0 {
            *slot = Some(nonce.clone());
            nonce
        } else {
            assert_ne!(slot.as_deref(), Some(nonce.as_str()), "nonce reused");
            slot.clone().unwrap()
        };
        let token = response(&response_claims(&echoed, &fp_stub, &signer), &signer);
        (200, json!({ "response_token": token }).to_string())
    });
    let client = Client::new(fast_config(&server.url), trust(&vendor)).unwrap();
    let ok = client.validate("AAAAA-BBBBB", &fp).unwrap();
    assert_eq!(ok.status, ServerStatus::Active);
    let replay = client.validate("AAAAA-BBBBB", &fp);
    assert!(matches!(replay, Err(OnlineError::Replay)), "{replay:?}");
    assert_eq!(server.hits.load(Ordering::SeqCst), 2);
}

#[test]
fn a_4xx_is_final_and_5xx_or_429_are_retried_with_backoff() {
    let vendor = key(1);
    let refused = stub(|_, _| {
        (
            409,
            json!({ "error": "machine_limit_reached", "detail": "2 of 2" }).to_string(),
        )
    });
    let client = Client::new(fast_config(&refused.url), trust(&vendor)).unwrap();
    let error = client.activate("AAAAA-BBBBB", &fingerprint()).unwrap_err();
    assert_eq!(error.server_code(), Some("machine_limit_reached"));
    assert!(!error.is_unreachable());
    assert!(matches!(error, OnlineError::Server { status: 409, .. }));
    assert_eq!(
        refused.hits.load(Ordering::SeqCst),
        1,
        "a 4xx is not retried"
    );

    let failing = stub(|_, n| match n {
        0 => (503, "not json".into()),
        _ => (
            429,
            json!({ "error": "rate_limited", "detail": "slow down" }).to_string(),
        ),
    });
    let client = Client::new(fast_config(&failing.url), trust(&vendor)).unwrap();
    let error = client.deactivate("AAAAA-BBBBB", "fp").unwrap_err();
    assert_eq!(
        failing.hits.load(Ordering::SeqCst),
        3,
        "1 attempt + 2 retries"
    );
    assert_eq!(error.server_code(), Some("rate_limited"));
    assert!(error.is_unreachable());

    // Retried, then answered.
    let flaky = stub(|_, n| match n {
        0 => (502, String::new()),
        _ => (
            200,
            json!({ "deactivated": true, "machine_id": "mch_1" }).to_string(),
        ),
    });
    let client = Client::new(fast_config(&flaky.url), trust(&vendor)).unwrap();
    let answer = client.deactivate("AAAAA-BBBBB", "fp").unwrap();
    assert!(answer.deactivated);
    assert_eq!(answer.machine_id.as_deref(), Some("mch_1"));
    assert_eq!(flaky.hits.load(Ordering::SeqCst), 2);
}

#[test]
fn retry_after_is_honoured_within_the_deadline_and_not_beyond() {
    let limited = || json!({ "error": "rate_limited", "detail": "too many requests" }).to_string();
    let server = stub_with_headers(move |_, n| match n {
        0 => (429, limited(), "Retry-After: 1\r\n".into()),
        _ => (
            200,
            json!({ "deactivated": true, "machine_id": "mch_1" }).to_string(),
            String::new(),
        ),
    });
    let client = Client::new(fast_config(&server.url), trust(&key(1))).unwrap();
    let started = Instant::now();
    assert!(client.deactivate("AAAAA-BBBBB", "fp").unwrap().deactivated);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited as asked"
    );
    assert_eq!(server.hits.load(Ordering::SeqCst), 2);

    // Asked to wait longer than the call may take: give up at once with the server's answer.
    let server = stub_with_headers(move |_, _| (429, limited(), "Retry-After: 60\r\n".into()));
    let client = Client::new(fast_config(&server.url), trust(&key(1))).unwrap();
    let started = Instant::now();
    let error = client.deactivate("AAAAA-BBBBB", "fp").unwrap_err();
    assert_eq!(error.server_code(), Some("rate_limited"));
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);
}

#[test]
fn a_server_that_never_answers_costs_at_most_the_deadline() {
    // Accepts connections (the kernel's backlog) but never reads or answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let config = ClientConfig {
        request_timeout: Duration::from_millis(400),
        deadline: Duration::from_millis(900),
        ..fast_config(&url)
    };
    let client = Client::new(config, trust(&key(1))).unwrap();
    let started = Instant::now();
    let error = client.validate("AAAAA-BBBBB", "fp").unwrap_err();
    let took = started.elapsed();
    assert!(matches!(error, OnlineError::Timeout(_)), "{error:?}");
    assert!(error.is_unreachable());
    assert!(took >= Duration::from_millis(400), "{took:?}");
    assert!(took < Duration::from_millis(1_500), "took {took:?}");
    // A shorter limit from the caller wins.
    let started = Instant::now();
    let error = client
        .validate_within("AAAAA-BBBBB", "fp", None, None, Duration::from_millis(150))
        .unwrap_err();
    assert!(matches!(error, OnlineError::Timeout(_)), "{error:?}");
    assert!(
        started.elapsed() < Duration::from_millis(700),
        "{:?}",
        started.elapsed()
    );
    drop(listener);
}

#[test]
fn nobody_listening_is_a_network_error_after_the_retries() {
    // Bind then drop: the port is (almost certainly) closed.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = Client::new(
        fast_config(&format!("http://127.0.0.1:{port}")),
        trust(&key(1)),
    )
    .unwrap();
    let started = Instant::now();
    let error = client.validate("AAAAA-BBBBB", "fp").unwrap_err();
    assert!(matches!(error, OnlineError::Network(_)), "{error:?}");
    assert!(error.is_unreachable());
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn bad_configurations_are_refused() {
    for url in ["not a url", "ftp://example.com"] {
        let error = Client::new(ClientConfig::new(url, PRODUCT), trust(&key(1))).unwrap_err();
        assert!(matches!(error, OnlineError::Config(_)), "{url}: {error:?}");
    }
    let error = Client::new(ClientConfig::new("http://127.0.0.1:1", ""), trust(&key(1)));
    assert!(matches!(error, Err(OnlineError::Config(_))));
}

#[test]
fn activation_answers_are_verified() {
    let vendor = key(1);
    let fp = fingerprint();
    let fp_id = fp.id.clone();
    let server = stub(move |body, n| {
        assert_eq!(body["fingerprint"]["id"], fp_id.as_str());
        let machine = if n == 0 {
            machine_token(&key(1), &fp_id, "lic_1")
        } else {
            // Bound to another machine.
            machine_token(&key(1), "fp-other", "lic_1")
        };
        let answer = json!({ "machine_id": "mch_1", "license_id": "lic_1",
            "machine_token": machine, "license_token": license_token(&key(1), "lic_1") });
        (if n == 0 { 201 } else { 200 }, answer.to_string())
    });
    let client = Client::new(fast_config(&server.url), trust(&vendor)).unwrap();
    let activation = client.activate("AAAAA-BBBBB", &fp).unwrap();
    assert!(activation.created);
    assert_eq!(activation.machine_id, "mch_1");
    let error = client.activate("AAAAA-BBBBB", &fp).unwrap_err();
    assert!(matches!(error, OnlineError::Mismatch(_)), "{error:?}");
}

#[cfg(feature = "store")]
mod with_store {
    use super::*;
    use crate::Licensing;
    use crate::Status;
    use crate::store::LicenseStore;

    const DAY: i64 = 86_400;

    fn app(dir: &std::path::Path, vendor: &PrivateKey) -> Licensing {
        Licensing::new(trust(vendor), PRODUCT, LicenseStore::at(dir).unwrap())
            .with_fingerprint_override(Some("box-a".into()))
    }

    /// A validate endpoint answering `status` at `server_time`, echoing each nonce.
    fn validating(status: &'static str, server_time: i64) -> Stub {
        stub(move |body, _| {
            let vendor = key(1);
            let mut claims = response_claims(
                body["nonce"].as_str().unwrap(),
                body["fingerprint"].as_str().unwrap(),
                &vendor,
            );
            claims.insert("status".into(), json!(status));
            claims.insert("server_time".into(), json!(server_time));
            if status != "active" {
                claims.insert("license_token".into(), Value::Null);
            }
            (
                200,
                json!({ "response_token": response(&claims, &vendor) }).to_string(),
            )
        })
    }

    /// A validation names the stored tokens that verify, and an answer without new tokens
    /// (the held ones are current) keeps them: the verdict is the stored token's.
    #[test]
    fn validation_names_the_held_tokens_and_keeps_them_when_the_server_sends_none() {
        let dir = tempfile::tempdir().unwrap();
        let vendor = key(1);
        let app = app(dir.path(), &vendor);
        let license = license_token(&vendor, "lic_1");
        app.install(&license, NOW).unwrap();
        app.store().write_license_key("AAAAA-BBBBB").unwrap();
        let fp = app.fingerprint().id;
        let kid = vendor.public_key().kid().to_owned();

        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let server = {
            let seen = seen.clone();
            stub(move |body, _| {
                seen.lock().unwrap().push(body["held"].clone());
                let vendor = key(1);
                let mut claims = response_claims(
                    body["nonce"].as_str().unwrap(),
                    body["fingerprint"].as_str().unwrap(),
                    &vendor,
                );
                claims.insert("license_token".into(), Value::Null);
                (
                    200,
                    json!({ "response_token": response(&claims, &vendor) }).to_string(),
                )
            })
        };
        let client = Client::new(fast_config(&server.url), trust(&vendor)).unwrap();
        let check = app.validate_online(&client, NOW + 60).unwrap();
        assert_eq!(check.verdict.status, Status::Valid, "{:?}", check.verdict);
        assert!(check.validation.unwrap().license_token.is_none());
        assert_eq!(
            app.store().read_token().unwrap().as_deref(),
            Some(&*license)
        );

        // With a machine token stored, both are named.
        app.store()
            .write_machine_token(&machine_token(&vendor, &fp, "lic_1"))
            .unwrap();
        app.validate_online(&client, NOW + 60).unwrap();
        let held = |sub: &str| json!({ "sub": sub, "kid": kid, "iat": NOW });
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen[0], json!({ "license": held("lic_1") }));
        assert_eq!(
            seen[1],
            json!({ "license": held("lic_1"), "machine": held("mch_1") })
        );
    }

    #[test]
    fn the_signed_server_time_resets_a_mark_pushed_up_by_a_clock_set_ahead() {
        let dir = tempfile::tempdir().unwrap();
        let vendor = key(1);
        let app = app(dir.path(), &vendor);
        // Installed while the clock was 10 days ahead: the mark is in the future.
        app.install(&license_token(&vendor, "lic_1"), NOW + 10 * DAY)
            .unwrap();
        assert_eq!(
            app.check_at_startup(NOW).unwrap().status,
            Status::ClockTampered
        );
        app.store().write_license_key("AAAAA-BBBBB").unwrap();

        let server = validating("active", NOW);
        let client = Client::new(fast_config(&server.url), trust(&vendor)).unwrap();
        let check = app.validate_online(&client, NOW).unwrap();
        assert_eq!(check.verdict.status, Status::Valid, "{:?}", check.verdict);
        assert_eq!(app.check_at_startup(NOW).unwrap().status, Status::Valid);
        // And a clock far behind the server's is caught, online and at the next start.
        let behind = app.validate_online(&client, NOW - 2 * DAY).unwrap();
        assert_eq!(behind.verdict.status, Status::ClockTampered);
        assert_eq!(
            app.check_at_startup(NOW - 2 * DAY).unwrap().status,
            Status::ClockTampered
        );
    }

    /// A server answering `machine_activated` and `activation_required`, with a license token
    /// (a server that forgets to withhold it must not be trusted with it either).
    fn activation_answer(activated: bool, required: Option<bool>) -> Stub {
        stub(move |body, _| {
            // The request carries the whole fingerprint, for the server's match rule.
            assert_eq!(body["machine"]["id"], body["fingerprint"], "{body}");
            let vendor = key(1);
            let mut claims = response_claims(
                body["nonce"].as_str().unwrap(),
                body["fingerprint"].as_str().unwrap(),
                &vendor,
            );
            claims.insert("machine_activated".into(), json!(activated));
            if let Some(required) = required {
                claims.insert("activation_required".into(), json!(required));
            }
            if !activated {
                claims.insert("machine_id".into(), Value::Null);
                claims.insert("machine_token".into(), Value::Null);
            }
            (
                200,
                json!({ "response_token": response(&claims, &vendor) }).to_string(),
            )
        })
    }

    /// The server says this machine is not activated on a license that needs it: the verdict
    /// is `machine_not_activated`, no token is installed, and the refusal is kept for the
    /// offline starts (a copied store stays refused) until the server says activated. An
    /// unmetered answer, or one from a server that does not say, changes nothing.
    #[test]
    fn a_machine_the_server_says_is_not_activated_is_refused_online_and_offline() {
        let dir = tempfile::tempdir().unwrap();
        let vendor = key(1);
        let app = app(dir.path(), &vendor);
        let installed = license_token(&vendor, "lic_1");
        app.install(&installed, NOW).unwrap();
        app.store().write_license_key("AAAAA-BBBBB").unwrap();

        let refused = activation_answer(false, Some(true));
        let client = Client::new(fast_config(&refused.url), trust(&vendor)).unwrap();
        let check = app.validate_online(&client, NOW).unwrap();
        assert!(check.validation.as_ref().unwrap().refuses_machine());
        assert_eq!(check.verdict.status, Status::MachineNotActivated);
        assert!(!check.verdict.is_usable());
        assert_eq!(
            app.store().read_token().unwrap().as_deref(),
            Some(&*installed)
        );
        for later in [NOW + 60, NOW + 90] {
            assert_eq!(
                app.check_at_startup(later).unwrap().status,
                Status::MachineNotActivated
            );
        }
        // Unreachable server: still refused.
        let gone = Client::new(fast_config("http://127.0.0.1:9"), trust(&vendor)).unwrap();
        let start = app
            .check_online(&gone, NOW + 120, Duration::from_secs(2))
            .unwrap();
        assert_eq!(start.verdict.status, Status::MachineNotActivated);

        // Activated again: usable, online and offline.
        let activated = activation_answer(true, Some(true));
        let client = Client::new(fast_config(&activated.url), trust(&vendor)).unwrap();
        assert_eq!(
            app.validate_online(&client, NOW + 180)
                .unwrap()
                .verdict
                .status,
            Status::Valid
        );
        assert_eq!(
            app.check_at_startup(NOW + 240).unwrap().status,
            Status::Valid
        );

        // Unmetered, or an older server that does not say: not a refusal.
        for required in [Some(false), None] {
            let server = activation_answer(false, required);
            let client = Client::new(fast_config(&server.url), trust(&vendor)).unwrap();
            let check = app.validate_online(&client, NOW + 300).unwrap();
            assert_eq!(check.verdict.status, Status::Valid, "{required:?}");
            assert_eq!(
                app.check_at_startup(NOW + 360).unwrap().status,
                Status::Valid
            );
        }
    }

    #[test]
    fn a_refusal_is_kept_offline_until_the_server_says_active_and_only_for_its_license() {
        let dir = tempfile::tempdir().unwrap();
        let vendor = key(1);
        let app = app(dir.path(), &vendor);
        app.install(&license_token(&vendor, "lic_1"), NOW).unwrap();
        app.store().write_license_key("AAAAA-BBBBB").unwrap();

        let refused = validating("revoked", NOW);
        let client = Client::new(fast_config(&refused.url), trust(&vendor)).unwrap();
        let check = app.validate_online(&client, NOW).unwrap();
        assert!(!check.verdict.is_usable(), "{:?}", check.verdict);
        let offline = app.check_at_startup(NOW + 60).unwrap();
        assert_eq!(offline.status, check.verdict.status);
        assert!(offline.reason.contains("revoked"), "{}", offline.reason);

        // Server unreachable: the kept refusal still applies.
        let gone = Client::new(fast_config("http://127.0.0.1:9"), trust(&vendor)).unwrap();
        let start = app
            .check_online(&gone, NOW + 120, Duration::from_secs(2))
            .unwrap();
        assert!(start.offline_reason.unwrap().is_unreachable());
        assert_eq!(start.verdict.status, check.verdict.status);

        let active = validating("active", NOW + 180);
        let client = Client::new(fast_config(&active.url), trust(&vendor)).unwrap();
        assert_eq!(
            app.validate_online(&client, NOW + 180)
                .unwrap()
                .verdict
                .status,
            Status::Valid
        );
        assert_eq!(
            app.check_at_startup(NOW + 240).unwrap().status,
            Status::Valid
        );

        // A kept answer about another license, or not signed by a trusted key, changes nothing.
        let mut other = response_claims("n-12345678", "fp", &vendor);
        other.insert("license_id".into(), json!("lic_2"));
        other.insert("status".into(), json!("revoked"));
        app.store()
            .write_server_response(Some(&response(&other, &vendor)))
            .unwrap();
        assert_eq!(
            app.check_at_startup(NOW + 300).unwrap().status,
            Status::Valid
        );
        let mut forged = response_claims("n-12345678", "fp", &vendor);
        forged.insert("status".into(), json!("revoked"));
        app.store()
            .write_server_response(Some(&response(&forged, &key(2))))
            .unwrap();
        assert_eq!(
            app.check_at_startup(NOW + 360).unwrap().status,
            Status::Valid
        );
    }

    /// Security review: after the server said revoked, deleting `response.jwt` brought the
    /// license back offline (`valid`). The answer's digest is sealed in the clock state, so a
    /// deleted answer, or one replaced by an older `active` answer or by anything else, is
    /// `clock_tampered` like a deleted clock state; only the server saying active forgets it.
    #[test]
    fn a_deleted_or_replaced_refusal_does_not_bring_the_license_back() {
        let dir = tempfile::tempdir().unwrap();
        let vendor = key(1);
        let app = app(dir.path(), &vendor);
        let license = license_token(&vendor, "lic_1");
        app.install(&license, NOW).unwrap();
        app.store().write_license_key("AAAAA-BBBBB").unwrap();
        let kept = dir.path().join("response.jwt");

        // An older genuine `active` answer of this license, saved by the user for a replay.
        let mut active = response_claims("n-12345678", "fp", &vendor);
        active.insert("status".into(), json!("active"));
        let active = response(&active, &vendor);

        let refused = validating("revoked", NOW);
        let client = Client::new(fast_config(&refused.url), trust(&vendor)).unwrap();
        assert_eq!(
            app.validate_online(&client, NOW).unwrap().verdict.status,
            Status::Revoked
        );
        let answer = std::fs::read_to_string(&kept).unwrap();
        for (attack, content) in [
            ("deleted", None),
            ("an older active answer", Some(active.as_str())),
            ("garbage", Some("not a token")),
            ("empty", Some("")),
        ] {
            match content {
                None => std::fs::remove_file(&kept).unwrap(),
                Some(content) => std::fs::write(&kept, content).unwrap(),
            }
            let start = app.check_at_startup(NOW + 60).unwrap();
            assert_eq!(start.status, Status::ClockTampered, "{attack}: {start:?}");
            assert!(start.reason.contains("response.jwt"), "{}", start.reason);
            // Installing the license file again does not forget the refusal either.
            app.install(&license, NOW + 90).unwrap();
            assert_eq!(
                app.check_at_startup(NOW + 120).unwrap().status,
                Status::ClockTampered,
                "{attack} after a reinstall"
            );
            std::fs::write(&kept, &answer).unwrap();
            assert_eq!(
                app.check_at_startup(NOW + 180).unwrap().status,
                Status::Revoked,
                "{attack} restored"
            );
        }

        // The server says active again: the refusal is forgotten, and removing a file that is
        // no longer there changes nothing.
        let active_server = validating("active", NOW + 240);
        let client = Client::new(fast_config(&active_server.url), trust(&vendor)).unwrap();
        assert_eq!(
            app.validate_online(&client, NOW + 240)
                .unwrap()
                .verdict
                .status,
            Status::Valid
        );
        assert!(!kept.exists());
        assert_eq!(
            app.check_at_startup(NOW + 300).unwrap().status,
            Status::Valid
        );
    }

    /// An activation whose token is not stored (the clock is behind its `iat`) leaves the store
    /// as it was: the kept refusal of the installed license is not forgotten, so putting the
    /// clock right afterwards does not bring a revoked license back.
    #[test]
    fn an_activation_refused_by_the_clock_keeps_the_refusal() {
        // The other license usable here, and one that is not (not valid before 10 days on):
        // the second evaluates `not_yet_valid`, not `clock_tampered`, and is not stored either.
        let later = crate::LicenseClaims::from_object(object(json!({
            "iss": "https://licensing.example.com", "aud": PRODUCT, "sub": "lic_2", "iat": NOW,
            "nbf": NOW + 10 * DAY, "exp": NOW + 365 * DAY,
            "lic": { "model": "subscription", "grace_period": 0 }
        })))
        .unwrap();
        let later = issue_license(&later, &key(1)).unwrap();
        for (what, token) in [
            ("usable", license_token(&key(1), "lic_2")),
            ("not yet valid", later),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let vendor = key(1);
            let app = app(dir.path(), &vendor);
            app.install(&license_token(&vendor, "lic_1"), NOW).unwrap();
            app.store().write_license_key("AAAAA-BBBBB").unwrap();
            let refused = validating("revoked", NOW);
            let client = Client::new(fast_config(&refused.url), trust(&vendor)).unwrap();
            assert_eq!(
                app.validate_online(&client, NOW).unwrap().verdict.status,
                Status::Revoked
            );
            // The other license activated with the clock set back two days before its `iat`.
            let other = stub(move |_, _| {
                let vendor = key(1);
                let answer = json!({ "machine_id": "mch_2", "license_id": "lic_2",
                    "machine_token": machine_token(&vendor, &fingerprint().id, "lic_2"),
                    "license_token": token });
                (201, answer.to_string())
            });
            let client = Client::new(fast_config(&other.url), trust(&vendor)).unwrap();
            let activated = app.activate(&client, "CCCCC-DDDDD", NOW - 2 * DAY).unwrap();
            assert!(
                !activated.verdict.is_usable(),
                "{what}: {:?}",
                activated.verdict
            );
            assert_eq!(
                app.store().read_license_key().unwrap().as_deref(),
                Some("AAAAA-BBBBB"),
                "{what}"
            );
            // The clock put right: the installed license is still the revoked one.
            assert_eq!(
                app.check_at_startup(NOW + 60).unwrap().status,
                Status::Revoked,
                "{what}"
            );
        }
    }

    /// A refusal kept by an earlier release (no digest in the clock state) still applies, and
    /// is sealed at the next start, so deleting it afterwards is caught too.
    #[test]
    fn a_refusal_kept_before_sealing_is_sealed_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let vendor = key(1);
        let app = app(dir.path(), &vendor);
        app.install(&license_token(&vendor, "lic_1"), NOW).unwrap();
        let mut revoked = response_claims("n-12345678", "fp", &vendor);
        revoked.insert("status".into(), json!("suspended"));
        app.store()
            .write_server_response(Some(&response(&revoked, &vendor)))
            .unwrap();
        assert_eq!(
            app.check_at_startup(NOW + 60).unwrap().status,
            Status::Suspended
        );
        app.store().write_server_response(None).unwrap();
        assert_eq!(
            app.check_at_startup(NOW + 120).unwrap().status,
            Status::ClockTampered
        );
    }

    #[test]
    fn air_gapped_activation_through_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let vendor = key(1);
        let app = app(dir.path(), &vendor);
        let client = Client::new(fast_config("http://127.0.0.1:9"), trust(&vendor)).unwrap();
        let answer = |request: &OfflineRequest| {
            let mut claims = response_claims(&request.nonce, &request.fingerprint.id, &vendor);
            claims.insert("offline".into(), json!(true));
            claims.insert("exp".into(), json!(NOW + 30 * DAY));
            claims.insert(
                "machine_token".into(),
                json!(machine_token(&vendor, &request.fingerprint.id, "lic_1")),
            );
            json!({ "kind": OFFLINE_RESPONSE_KIND, "version": 1,
                "response_token": response(&claims, &vendor) })
            .to_string()
        };
        let no_request = app.import_offline_response(&client, "{}", NOW);
        assert!(
            matches!(no_request, Err(OnlineError::NoPendingRequest)),
            "{no_request:?}"
        );

        let first = OfflineRequest::from_json(
            &app.offline_activation_request(&client, "AAAAA-BBBBB", NOW)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(first.fingerprint, app.fingerprint());
        // A newer request replaces it: the answer to the first is now a replay.
        let second = OfflineRequest::from_json(
            &app.offline_activation_request(&client, "AAAAA-BBBBB", NOW)
                .unwrap(),
        )
        .unwrap();
        let stale = app.import_offline_response(&client, &answer(&first), NOW);
        assert!(matches!(stale, Err(OnlineError::Replay)), "{stale:?}");
        assert_eq!(app.check_at_startup(NOW).unwrap().status, Status::NoLicense);

        let imported = app
            .import_offline_response(&client, &answer(&second), NOW + DAY)
            .unwrap();
        assert_eq!(
            imported.verdict.status,
            Status::Valid,
            "{:?}",
            imported.verdict
        );
        assert!(imported.validation.unwrap().offline);
        assert_eq!(
            app.check_at_startup(NOW + DAY).unwrap().status,
            Status::Valid
        );
        assert_eq!(
            app.store().read_license_key().unwrap().as_deref(),
            Some("AAAAA-BBBBB")
        );
        assert!(app.store().read_machine_token().unwrap().is_some());
        // Imported once: not pending any more.
        let again = app.import_offline_response(&client, &answer(&second), NOW + DAY);
        assert!(
            matches!(again, Err(OnlineError::NoPendingRequest)),
            "{again:?}"
        );
    }
}

/// A lease answer signed by `key`, living `life` seconds from the real now.
fn lease_answer(key: &PrivateKey, lease_id: &str, epoch: u64, life: i64) -> String {
    let now = crate::unix_now();
    let claims = object(json!({
        "iss": "https://licensing.example.com", "sub": lease_id, "aud": PRODUCT, "iat": now,
        "exp": now + life, "jti": format!("jti_{now}_{epoch}"), "license_id": "lic_1",
        "client_id": "client-1", "user": "ada", "epoch": epoch,
    }));
    let token = sign_token(TokenKind::Lease, key, &claims).unwrap();
    json!({ "lease_id": lease_id, "lease_token": token, "epoch": epoch,
        "expires_at": now + life, "heartbeat_interval": 1 })
    .to_string()
}

#[test]
fn lease_answers_are_verified() {
    let vendor = key(1);
    let stranger = key(2);
    let answers = stub(move |body, n| match n {
        0 => (201, lease_answer(&stranger, "lse_1", 1, 60)),
        1 => {
            let mut answer: Value =
                serde_json::from_str(&lease_answer(&vendor, "lse_1", 2, 60)).unwrap();
            answer["epoch"] = json!(1);
            (201, answer.to_string())
        }
        _ => {
            assert_eq!(body["request_id"], "req-1");
            // It keeps the lease's secret, so the server gives it one and requires it.
            assert_eq!(body["lease_secret_supported"], true, "{body}");
            (201, lease_answer(&vendor, "lse_1", 1, 60))
        }
    });
    let client = Client::new(fast_config(&answers.url), trust(&key(1))).unwrap();
    let check_out = || client.check_out_lease("AAAAA-BBBBB", "client-1", "ada", "req-1");
    // Signed by a key the app does not trust.
    let untrusted = check_out();
    assert!(
        matches!(untrusted, Err(OnlineError::Token(Error::UnknownKey(_)))),
        "{untrusted:?}"
    );
    // The token's epoch is not the answer's.
    assert!(matches!(check_out(), Err(OnlineError::Mismatch(_))));
    let grant = check_out().unwrap();
    assert_eq!(
        (grant.lease_id.as_str(), grant.epoch, grant.created),
        ("lse_1", 1, true)
    );
    // Asked for another user: the lease is not ours.
    let other = client.check_out_lease("AAAAA-BBBBB", "client-1", "bob", "req-1");
    assert!(matches!(other, Err(OnlineError::Mismatch(_))), "{other:?}");
}

#[test]
fn a_denied_check_out_names_no_seats_with_the_server_message() {
    let denied = stub(|_, _| {
        let detail = "No available licenses, please contact IT";
        (
            409,
            json!({ "error": "no_seats", "detail": detail }).to_string(),
        )
    });
    let client = Client::new(fast_config(&denied.url), trust(&key(1))).unwrap();
    let config = LeaseConfig::new("AAAAA-BBBBB", "client-1", "ada");
    let error = LeaseManager::check_out(&client, config, Box::new(|_| {})).unwrap_err();
    assert!(error.is_no_seats(), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("No available licenses, please contact IT")
    );
    // A 409 is final: asked once.
    assert_eq!(denied.hits.load(Ordering::SeqCst), 1);
}

#[test]
fn an_unreachable_server_past_the_lease_is_reported_once() {
    let vendor = key(1);
    // Grants a 2-second lease, then answers every heartbeat with 503.
    let server = stub(move |_, n| match n {
        0 => (201, lease_answer(&vendor, "lse_1", 1, 2)),
        _ => (
            503,
            json!({ "error": "unavailable", "detail": "down" }).to_string(),
        ),
    });
    let client = Client::new(fast_config(&server.url), trust(&key(1))).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let config = LeaseConfig {
        heartbeat_interval: Some(Duration::from_millis(200)),
        ..LeaseConfig::new("AAAAA-BBBBB", "client-1", "ada")
    };
    let started = Instant::now();
    let manager = LeaseManager::check_out(
        &client,
        config,
        Box::new(move |loss| tx.send(loss.clone()).unwrap()),
    )
    .unwrap();
    assert_eq!(manager.status(), crate::Status::Valid);
    let loss = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let took = started.elapsed();
    assert!(matches!(loss, LeaseLoss::Unreachable { .. }), "{loss:?}");
    // Not before the lease ran out (2 s, whole server seconds), not long after.
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert_eq!(manager.status(), crate::Status::LeaseExpired);
    assert_eq!(manager.lost(), Some(loss));
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "reported twice"
    );
    drop(manager);
    let hits = server.hits.load(Ordering::SeqCst);
    // Kept trying (several heartbeats), and no check-in of a seat already lost.
    assert!(hits >= 4, "{hits}");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(server.hits.load(Ordering::SeqCst), hits);
}

/// The held tokens named to the server are exactly the stored ones that verify: a forged or
/// foreign token is left out (so the server signs a new one), and a machine token counts only
/// for this machine and the held license.
#[test]
fn held_tokens_name_only_tokens_that_verify() {
    let vendor = key(1);
    let v = verifier(&vendor);
    let fp = fingerprint().id;
    let kid = vendor.public_key().kid().to_owned();
    let license = license_token(&vendor, "lic_1");
    let machine = machine_token(&vendor, &fp, "lic_1");

    let held = HeldTokens::from_verified(&v, Some(&license), Some(&machine), &fp);
    let expect = |sub: &str| HeldToken {
        sub: sub.into(),
        kid: kid.clone(),
        iat: NOW,
    };
    assert_eq!(held.license, Some(expect("lic_1")));
    assert_eq!(held.machine, Some(expect("mch_1")));
    assert_eq!(
        serde_json::to_value(&held).unwrap(),
        json!({ "license": { "sub": "lic_1", "kid": kid, "iat": NOW },
                "machine": { "sub": "mch_1", "kid": kid, "iat": NOW } })
    );

    // Another machine's token, or one for another license: not held.
    let other_box = machine_token(&vendor, "box-b", "lic_1");
    let held = HeldTokens::from_verified(&v, Some(&license), Some(&other_box), &fp);
    assert!(held.license.is_some() && held.machine.is_none());
    let other_license = machine_token(&vendor, &fp, "lic_2");
    let held = HeldTokens::from_verified(&v, Some(&license), Some(&other_license), &fp);
    assert!(held.machine.is_none());

    // A license token signed by an untrusted key, or damaged: nothing is held.
    let rogue = license_token(&key(2), "lic_1");
    assert_eq!(
        HeldTokens::from_verified(&v, Some(&rogue), Some(&machine), &fp),
        HeldTokens::default()
    );
    let mut damaged = license.clone();
    damaged.pop();
    assert_eq!(
        HeldTokens::from_verified(&v, Some(&damaged), Some(&machine), &fp),
        HeldTokens::default()
    );
    assert_eq!(
        HeldTokens::from_verified(&v, None, Some(&machine), &fp),
        HeldTokens::default()
    );
    assert_eq!(
        serde_json::to_value(HeldTokens::default()).unwrap(),
        json!({})
    );
}

fn place_answer(position: u64, waiting: u64) -> String {
    json!({ "queue_id": "que_1", "position": position, "waiting": waiting,
        "queued_at": NOW, "wait_until": NOW + 30, "retry_after": 1,
        "message": "No available licenses, please contact IT" })
    .to_string()
}

/// Waiting in line: the same request id asked again at the server's pace, each place shown to
/// the caller, the lease once served; a caller that stops waiting gives its place up; an
/// answer that is not a place is refused.
#[test]
fn waiting_in_line_asks_again_until_served() {
    let vendor = key(1);
    let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = asked.clone();
    let server = stub(move |body, n| {
        log.lock().unwrap().push(body.clone());
        match n {
            0 => (202, place_answer(2, 2)),
            1 => (202, place_answer(1, 2)),
            _ => (201, lease_answer(&vendor, "lse_1", 1, 60)),
        }
    });
    let client = Client::new(fast_config(&server.url), trust(&key(1))).unwrap();
    let mut places = Vec::new();
    let started = Instant::now();
    let grant = client
        .wait_for_lease(
            "AAAAA-BBBBB",
            "client-1",
            "ada",
            "req-1",
            Duration::from_secs(30),
            &mut |place| {
                places.push((place.position, place.waiting));
                assert_eq!(place.message, "No available licenses, please contact IT");
                true
            },
        )
        .unwrap()
        .unwrap();
    assert_eq!(grant.lease_id, "lse_1");
    assert_eq!(places, [(2, 2), (1, 2)]);
    // At the server's pace (1 s), not in a tight loop.
    assert!(started.elapsed() >= Duration::from_millis(1900));
    // The same request each time, for what is left of the wait.
    let asked = asked.lock().unwrap();
    let waits: Vec<u64> = asked
        .iter()
        .map(|body| {
            assert_eq!(body["request_id"], "req-1", "{body}");
            body["queue_seconds"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(waits.len(), 3);
    assert_eq!(waits[0], 30);
    assert!(waits[1] < 30 && waits[2] < waits[1], "{waits:?}");
    drop(asked);

    // Stopped by the caller: the place is given up (one more request: the leave).
    let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = asked.clone();
    let server = stub(move |body, n| {
        log.lock().unwrap().push(body.clone());
        match n {
            0 => (202, place_answer(3, 3)),
            _ => (
                200,
                json!({ "queue_id": "que_1", "left": true }).to_string(),
            ),
        }
    });
    let client = Client::new(fast_config(&server.url), trust(&key(1))).unwrap();
    let stopped = client
        .wait_for_lease(
            "AAAAA-BBBBB",
            "client-1",
            "ada",
            "req-1",
            Duration::from_secs(30),
            &mut |_| false,
        )
        .unwrap();
    assert!(stopped.is_none());
    let asked = asked.lock().unwrap();
    assert_eq!(asked.len(), 2);
    assert_eq!(asked[1], json!({ "license_key": "AAAAA-BBBBB" }));

    // In line, then the server goes away: the caller is shown its last place at each try and
    // may stop. Before any answer, an unreachable server ends the wait at once.
    let server = stub(|_, n| match n {
        0 => (202, place_answer(2, 2)),
        _ => (
            503,
            json!({ "error": "unavailable", "detail": "down" }).to_string(),
        ),
    });
    let client = Client::new(fast_config(&server.url), trust(&key(1))).unwrap();
    let mut shown = Vec::new();
    let stopped = client
        .wait_for_lease(
            "AAAAA-BBBBB",
            "client-1",
            "ada",
            "req-1",
            Duration::from_secs(30),
            &mut |place| {
                shown.push(place.position);
                shown.len() < 2
            },
        )
        .unwrap();
    assert!(stopped.is_none());
    assert_eq!(shown, [2, 2]);
    let down = stub(|_, _| {
        (
            503,
            json!({ "error": "unavailable", "detail": "down" }).to_string(),
        )
    });
    let client = Client::new(fast_config(&down.url), trust(&key(1))).unwrap();
    let started = Instant::now();
    let error = client
        .wait_for_lease(
            "K",
            "client-1",
            "ada",
            "r",
            Duration::from_secs(30),
            &mut |_| true,
        )
        .unwrap_err();
    assert!(error.is_unreachable(), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(5));

    // A wait longer than the server takes is asked as a day.
    let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = asked.clone();
    let server = stub(move |body, _| {
        log.lock().unwrap().push(body["queue_seconds"].clone());
        (202, place_answer(1, 1))
    });
    let client = Client::new(fast_config(&server.url), trust(&key(1))).unwrap();
    let week = Duration::from_secs(7 * 86_400);
    client
        .check_out_or_wait("K", "client-1", "ada", "r", week)
        .unwrap();
    assert_eq!(*asked.lock().unwrap(), [json!(86_400)]);

    // A place behind the end of its line, or no wait asked: refused.
    let server = stub(|_, _| (202, place_answer(3, 2)));
    let client = Client::new(fast_config(&server.url), trust(&key(1))).unwrap();
    let bad = client.check_out_or_wait("K", "client-1", "ada", "r", Duration::from_secs(5));
    assert!(matches!(bad, Err(OnlineError::BadResponse(_))), "{bad:?}");
    let zero = client.check_out_or_wait("K", "client-1", "ada", "r", Duration::ZERO);
    assert!(matches!(zero, Err(OnlineError::Config(_))), "{zero:?}");
    // A check-out that does not wait is never answered with a place.
    let server = stub(|_, _| (202, place_answer(1, 1)));
    let client = Client::new(fast_config(&server.url), trust(&key(1))).unwrap();
    let plain = client.check_out_lease("K", "client-1", "ada", "r");
    assert!(matches!(plain, Err(OnlineError::Mismatch(_))), "{plain:?}");
}

/// A lease manager configured to wait holds the seat it is served, its local deadline counted
/// from the request that was served (not from the start of the wait).
#[test]
fn a_lease_manager_can_wait_in_line() {
    let vendor = key(1);
    // A 2-second lease with no heartbeat due within the test (so nothing moves its deadline).
    let mut grant: Value = serde_json::from_str(&lease_answer(&vendor, "lse_1", 1, 2)).unwrap();
    grant["heartbeat_interval"] = json!(60);
    let server = stub(move |_, n| match n {
        0 => (202, place_answer(1, 1)),
        _ => (201, grant.to_string()),
    });
    let client = Client::new(fast_config(&server.url), trust(&key(1))).unwrap();
    let config = LeaseConfig {
        queue_wait: Some(Duration::from_secs(30)),
        ..LeaseConfig::new("AAAAA-BBBBB", "client-1", "ada")
    };
    let manager = LeaseManager::check_out(&client, config, Box::new(|_| {})).unwrap();
    assert_eq!(manager.grant().lease_id, "lse_1");
    // Granted after a 1-second wait: valid for 2 s from the served request, so still valid
    // 1.2 s later (counted from the start of the wait, it would have run out).
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(manager.status(), crate::Status::Valid);
}

/// A clock the test moves by hand.
struct FakeClock(std::sync::Mutex<Duration>);

impl FakeClock {
    fn new() -> Arc<Self> {
        Arc::new(FakeClock(std::sync::Mutex::new(Duration::from_secs(1_000))))
    }

    fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl LeaseClock for FakeClock {
    fn now(&self) -> Duration {
        *self.0.lock().unwrap()
    }
}

/// A one-seat license's seat rules, as far as one client needs them: check-out (201, or the
/// exact denial while `taken` says someone else holds the seat), heartbeat and release. Every
/// request is logged (its path's last part, and the check-out's request id).
struct SeatServer {
    stub: Stub,
    log: Arc<std::sync::Mutex<Vec<String>>>,
    taken: Arc<std::sync::atomic::AtomicBool>,
    /// Heartbeats answer `lease_released` (a force-release).
    released: Arc<std::sync::atomic::AtomicBool>,
}

impl SeatServer {
    /// Leases live `life` seconds.
    fn start(life: i64) -> Self {
        let vendor = key(1);
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let taken = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let released = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (seen, other, forced) = (log.clone(), taken.clone(), released.clone());
        let leases = AtomicUsize::new(0);
        let stub = stub_routes(move |path, body, _| {
            let last = path.rsplit('/').next().unwrap_or_default();
            let mut seen = seen.lock().unwrap();
            if path == "/v1/client/leases" {
                seen.push(format!(
                    "check-out {}",
                    body["request_id"].as_str().unwrap()
                ));
                if let Some(secret) = body["lease_secret"].as_str() {
                    seen.push(format!("presented {secret}"));
                }
                if other.load(Ordering::SeqCst) {
                    let detail = "No available licenses, please contact IT";
                    let denial = json!({ "error": "no_seats", "detail": detail });
                    return (409, denial.to_string(), String::new());
                }
                let n = leases.fetch_add(1, Ordering::SeqCst) + 1;
                let mut answer: Value =
                    serde_json::from_str(&lease_answer(&vendor, &format!("lse_{n}"), 1, life))
                        .unwrap();
                answer["lease_secret"] = json!(format!("secret-{n}"));
                return (201, answer.to_string(), String::new());
            }
            seen.push(last.to_owned());
            let id = path.split('/').nth(4).unwrap_or_default().to_owned();
            match last {
                "heartbeat" if forced.load(Ordering::SeqCst) => {
                    let detail = "the lease was released by an administrator";
                    let refusal = json!({ "error": "lease_released", "detail": detail });
                    (409, refusal.to_string(), String::new())
                }
                "heartbeat" => (200, lease_answer(&vendor, &id, 1, life), String::new()),
                _ => (200, json!({ "released": true }).to_string(), String::new()),
            }
        });
        SeatServer {
            stub,
            log,
            taken,
            released,
        }
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    fn count(&self, what: &str) -> usize {
        self.log().iter().filter(|l| l.starts_with(what)).count()
    }
}

/// Waits (bounded) until `ok()` holds.
fn eventually(what: &str, ok: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn idle_config(clock: &Arc<FakeClock>, release_when_idle: bool) -> LeaseConfig {
    LeaseConfig {
        heartbeat_interval: Some(Duration::from_millis(20)),
        release_when_idle,
        clock: LeaseClockSource::custom(clock.clone()),
        ..LeaseConfig::new("AAAAA-BBBBB", "client-1", "ada")
    }
}

/// The customer's rule, "after a period of inactivity, the license will become available to
/// others", on an injected clock: heartbeats only while the app reported activity within the
/// license's lease timeout (the lease's life, 900 s here); then the seat is checked in and the
/// app told (`Idle`); the next activity takes a seat again without a new login, or answers the
/// exact denial (asked again only after `RETAKE_PAUSE`).
#[test]
fn an_idle_app_gives_its_seat_back_and_takes_one_again_on_activity() {
    let server = SeatServer::start(900);
    let client = Client::new(fast_config(&server.stub.url), trust(&key(1))).unwrap();
    let clock = FakeClock::new();
    let (tx, rx) = std::sync::mpsc::channel();
    let manager = LeaseManager::check_out(
        &client,
        idle_config(&clock, true),
        Box::new(move |loss| tx.send(loss.clone()).unwrap()),
    )
    .unwrap();
    let first = manager.grant().lease_id;
    let beats = || server.count("heartbeat");
    eventually("heartbeats", || beats() >= 2);

    // In use: 600 s after the check-out, and again 600 s after an activity (1 200 s after the
    // check-out, longer than the timeout), the seat is held and heartbeated.
    clock.advance(Duration::from_secs(600));
    let seen = beats();
    eventually("heartbeats after 600 s", || beats() >= seen + 2);
    assert_eq!(manager.activity().unwrap(), Status::Valid);
    clock.advance(Duration::from_secs(600));
    let seen = beats();
    eventually("heartbeats after another 600 s", || beats() >= seen + 2);
    assert_eq!(manager.status(), Status::Valid);
    assert!(manager.lost().is_none());
    assert!(rx.try_recv().is_err());

    // Idle for the whole timeout: checked in, heartbeats stop, the app is told once.
    clock.advance(Duration::from_secs(301));
    let loss = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    assert!(matches!(loss, LeaseLoss::Idle { .. }), "{loss:?}");
    assert!(loss.detail().contains("900 s"), "{loss}");
    assert_eq!(manager.lost(), Some(loss));
    assert_eq!(manager.status(), Status::LeaseExpired);
    let released = server.log();
    assert_eq!(released.last().map(String::as_str), Some("release"));
    assert_eq!(server.count("release"), 1);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        server.log(),
        released,
        "heartbeats went on after the idle release"
    );

    // Someone else took the seat meanwhile: the next activity is denied with the exact
    // message, and activity right after does not ask the server again.
    server.taken.store(true, Ordering::SeqCst);
    let denied = manager.activity().unwrap_err();
    assert!(denied.is_no_seats(), "{denied:?}");
    assert!(
        denied
            .to_string()
            .ends_with(": No available licenses, please contact IT"),
        "{denied}"
    );
    let asked = server.count("check-out");
    assert_eq!(asked, 2);
    server.taken.store(false, Ordering::SeqCst);
    let again = manager.activity().unwrap_err();
    assert!(again.is_no_seats(), "{again:?}");
    assert_eq!(server.count("check-out"), asked);
    assert_eq!(manager.status(), Status::LeaseExpired);

    // After the pause, activity takes the free seat again: a fresh request id, a new lease,
    // heartbeats again, and the next idle period is reported again.
    clock.advance(RETAKE_PAUSE);
    assert_eq!(manager.activity().unwrap(), Status::Valid);
    assert_eq!(manager.status(), Status::Valid);
    assert!(manager.lost().is_none());
    let ids: Vec<String> = server
        .log()
        .iter()
        .filter_map(|l| l.strip_prefix("check-out ").map(str::to_owned))
        .collect();
    assert_eq!(ids.len(), 3);
    assert!(
        ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2],
        "{ids:?}"
    );
    let second = manager.grant().lease_id;
    assert_ne!(second, first);
    // Each check-out after the idle release presented the released lease's secret: had its
    // check-in not reached the server, the live lease would be taken back, not a second seat.
    let presented: Vec<String> = server
        .log()
        .iter()
        .filter_map(|l| l.strip_prefix("presented ").map(str::to_owned))
        .collect();
    assert_eq!(presented, ["secret-1", "secret-1"]);
    let seen = beats();
    eventually("heartbeats after the seat was taken again", || {
        beats() >= seen + 2
    });
    clock.advance(Duration::from_secs(900));
    let loss = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    assert!(matches!(loss, LeaseLoss::Idle { .. }), "{loss:?}");
    assert_eq!(server.count("release"), 2);

    // Dropped while idle: the seat was checked in already, not again.
    drop(manager);
    assert_eq!(server.count("release"), 2);
}

/// Activity reported by many threads at once after an idle release takes one seat, with one
/// check-out.
#[test]
fn concurrent_activity_takes_one_seat() {
    let server = SeatServer::start(900);
    let client = Client::new(fast_config(&server.stub.url), trust(&key(1))).unwrap();
    let clock = FakeClock::new();
    let manager =
        LeaseManager::check_out(&client, idle_config(&clock, true), Box::new(|_| {})).unwrap();
    clock.advance(Duration::from_secs(900));
    eventually("the idle release", || manager.lost().is_some());
    std::thread::scope(|scope| {
        let calls: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| manager.activity().unwrap()))
            .collect();
        for call in calls {
            assert_eq!(call.join().unwrap(), Status::Valid);
        }
    });
    assert_eq!(server.count("check-out"), 2);
    assert_eq!(manager.status(), Status::Valid);
}

/// Without `release_when_idle` (the default), the seat is held however long the app is idle.
#[test]
fn without_idle_release_the_seat_is_held() {
    let server = SeatServer::start(900);
    let client = Client::new(fast_config(&server.stub.url), trust(&key(1))).unwrap();
    let clock = FakeClock::new();
    let manager =
        LeaseManager::check_out(&client, idle_config(&clock, false), Box::new(|_| {})).unwrap();
    let beats = || server.count("heartbeat");
    for _ in 0..4 {
        clock.advance(Duration::from_secs(600));
        let seen = beats();
        eventually("heartbeats", || beats() >= seen + 2);
    }
    assert_eq!(manager.status(), Status::Valid);
    assert!(manager.lost().is_none());
    assert_eq!(server.count("release"), 0);
}

/// A seat force-released by an administrator is not taken back by the next activity, even on
/// a lease held while active: only an idle release is.
#[test]
fn a_force_released_seat_is_not_taken_again_by_activity() {
    let server = SeatServer::start(900);
    let client = Client::new(fast_config(&server.stub.url), trust(&key(1))).unwrap();
    let clock = FakeClock::new();
    let (tx, rx) = std::sync::mpsc::channel();
    let manager = LeaseManager::check_out(
        &client,
        idle_config(&clock, true),
        Box::new(move |loss| tx.send(loss.clone()).unwrap()),
    )
    .unwrap();
    server.released.store(true, Ordering::SeqCst);
    let loss = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    assert!(matches!(loss, LeaseLoss::Released { .. }), "{loss:?}");
    assert_eq!(manager.activity().unwrap(), Status::LeaseExpired);
    assert_eq!(server.count("check-out"), 1);
}
