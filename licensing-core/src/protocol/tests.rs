//! Replays the protocol corpus (`tests/protocol/` at the repository root): each request and
//! file serializes from its typed value to the same JSON, each answer and claims set parses
//! into its type and round-trips, and the inputs that must be refused are.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::*;
use crate::MachineFingerprint;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/protocol")
}

/// Every corpus file: its path (relative) and its document.
fn corpus() -> Vec<(String, Value)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("corpus directory") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "json") {
                out.push(path);
            }
        }
    }
    let root = corpus_dir();
    let mut paths = Vec::new();
    walk(&root, &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("corpus file");
            let name = path
                .strip_prefix(&root)
                .expect("under the corpus")
                .display()
                .to_string();
            let doc: Value = serde_json::from_str(&text).expect("corpus file is JSON");
            (name, doc)
        })
        .collect()
}

/// Parses `body` as `T` and serializes it back: `Ok` with the JSON written, or the error
/// (its path and message).
fn round_trip<T: Serialize + DeserializeOwned>(body: &Value) -> Result<Value, String> {
    let typed: T = serde_path_to_error::deserialize(body.clone())
        .map_err(|e| format!("{} {}", e.path(), e.inner()))?;
    Ok(serde_json::to_value(&typed).expect("serializes"))
}

fn round_trip_as(type_name: &str, body: &Value) -> Result<Value, String> {
    match type_name {
        "ActivateRequest" => round_trip::<ActivateRequest>(body),
        "TransferRequest" => round_trip::<TransferRequest>(body),
        "DeactivateRequest" => round_trip::<DeactivateRequest>(body),
        "ValidateRequest" => round_trip::<ValidateRequest>(body),
        "CheckOutRequest" => round_trip::<CheckOutRequest>(body),
        "LeaseRequest" => round_trip::<LeaseRequest>(body),
        "LeaveQueueRequest" => round_trip::<LeaveQueueRequest>(body),
        "ActivateResponse" => round_trip::<ActivateResponse>(body),
        "DeactivateResponse" => round_trip::<DeactivateResponse>(body),
        "ValidateResponse" => round_trip::<ValidateResponse>(body),
        "LeaseAnswer" => round_trip::<LeaseAnswer>(body),
        "QueuedAnswer" => round_trip::<QueuedAnswer>(body),
        "LeftQueue" => round_trip::<LeftQueue>(body),
        "ErrorBody" => round_trip::<ErrorBody>(body),
        "ResponseClaims" => round_trip::<ResponseClaims>(body),
        "MachineClaims" => round_trip::<MachineClaims>(body),
        "LeaseClaims" => round_trip::<LeaseClaims>(body),
        "HeldTokens" => round_trip::<HeldTokens>(body),
        "OfflineRequest" => round_trip::<OfflineRequest>(body),
        "OfflineResponse" => round_trip::<OfflineResponse>(body),
        "DeactivationReceipt" => round_trip::<DeactivationReceipt>(body),
        other => panic!("the corpus names an unknown type `{other}`"),
    }
}

#[test]
fn the_corpus_replays() {
    let corpus = corpus();
    assert!(corpus.len() >= 60, "the corpus is {} files", corpus.len());
    for (name, doc) in &corpus {
        let kind = doc["kind"].as_str().expect("kind");
        let type_name = doc["type"].as_str().expect("type");
        let body = &doc["body"];
        let result = round_trip_as(type_name, body);
        match kind {
            "request" | "answer" | "refusal" | "claims" | "file" | "held" => {
                let written = result.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(&written, body, "{name}: does not round-trip");
            }
            "invalid_request" | "invalid_claims" | "invalid_file" => {
                let error = match result {
                    Ok(_) => panic!("{name}: accepted, must be refused"),
                    Err(error) => error,
                };
                if let Some(field) = doc["field"].as_str() {
                    let last = field.rsplit('.').next().unwrap_or(field);
                    assert!(
                        error.contains(last),
                        "{name}: `{error}` does not name {field}"
                    );
                }
            }
            other => panic!("{name}: unknown kind `{other}`"),
        }
    }
}

#[test]
fn every_refusal_in_the_corpus_is_a_known_code() {
    let mut seen = Vec::new();
    for (name, doc) in corpus() {
        let code = match doc["kind"].as_str() {
            Some("refusal") => doc["body"]["error"].as_str(),
            Some("invalid_request") => doc["error"].as_str(),
            _ => None,
        };
        let Some(code) = code else { continue };
        let parsed = ErrorCode::parse(code);
        assert!(
            !matches!(parsed, ErrorCode::Other(_)),
            "{name}: `{code}` is not an ErrorCode"
        );
        assert_eq!(parsed.as_str(), code);
        seen.push(parsed);
    }
    assert!(seen.contains(&ErrorCode::NoSeats));
    assert!(seen.contains(&ErrorCode::LeaseReleased));
}

#[test]
fn every_status_in_the_corpus_is_known() {
    let mut seen = Vec::new();
    for (name, doc) in corpus() {
        if doc["type"] != "ResponseClaims" || doc["kind"] != "claims" {
            continue;
        }
        let claims: ResponseClaims = serde_json::from_value(doc["body"].clone()).expect("claims");
        assert!(
            !matches!(claims.status, ServerStatus::Other(_)),
            "{name}: unknown status"
        );
        seen.push(claims.status);
    }
    for status in ServerStatus::KNOWN {
        assert!(seen.contains(&status), "no corpus answer says {status}");
    }
}

fn corpus_body(name: &str) -> Value {
    let text = std::fs::read_to_string(corpus_dir().join(name)).expect("corpus file");
    serde_json::from_str::<Value>(&text).expect("JSON")["body"].clone()
}

fn fingerprint() -> MachineFingerprint {
    serde_json::from_value(corpus_body("activate/request.json")["fingerprint"].clone())
        .expect("fingerprint")
}

#[test]
fn typed_requests_serialize_to_the_corpus() {
    let key = "ABCDE-FGHJK-LMNPQ-RSTUV-WXYZ2".to_owned();
    let activate = ActivateRequest {
        license_key: key.clone(),
        fingerprint: fingerprint(),
        user: None,
    };
    assert_eq!(
        serde_json::to_value(&activate).expect("json"),
        corpus_body("activate/request.json")
    );
    let validate = ValidateRequest {
        license_key: key.clone(),
        fingerprint: fingerprint().id,
        nonce: "Zk3t9Qm2Lx8Vb7Nc6Xz5Aa4Ss3Dd2Ff1Gg0Hh9Jj8Kk".into(),
        machine: None,
        user: None,
        held: Some(HeldTokens {
            license: Some(HeldToken {
                sub: "lic_01J8Z2".into(),
                kid: "k_2026".into(),
                iat: 1_796_601_600,
            }),
            machine: None,
        }),
    };
    assert_eq!(
        serde_json::to_value(&validate).expect("json"),
        corpus_body("validate/request-holding-license-only.json")
    );
    let check_out = CheckOutRequest {
        license_key: key.clone(),
        client_id: "ws-0042".into(),
        user: "alice".into(),
        request_id: "req_7f3a9e".into(),
        borrow_seconds: None,
        queue_seconds: Some(600),
        lease_secret: None,
        lease_secret_supported: true,
    };
    assert_eq!(
        serde_json::to_value(&check_out).expect("json"),
        corpus_body("check-out/request-queue.json")
    );
    let check_in = LeaseRequest {
        license_key: key,
        epoch: 1,
        lease_secret: None,
    };
    assert_eq!(
        serde_json::to_value(&check_in).expect("json"),
        corpus_body("check-in/request-older-sdk.json")
    );
}

#[test]
fn answers_are_read_tolerantly() {
    // A member a newer server adds is ignored; members older servers leave out are optional.
    let answer: ActivateResponse = serde_json::from_value(json!({
        "machine_id": "m", "license_id": "l", "machine_token": "t", "seats_left": 3
    }))
    .expect("tolerant");
    assert_eq!(answer.license_token, None);
    assert_eq!(answer.deactivation_key, None);
    let claims: ResponseClaims = serde_json::from_value(json!({
        "sub": "l", "aud": ["other", "p"], "exp": 2, "nonce": "n", "server_time": 1,
        "license_id": "l", "status": "archived", "fingerprint": "f",
        "machine_activated": false, "region": "eu"
    }))
    .expect("tolerant");
    assert_eq!(claims.status, ServerStatus::Other("archived".into()));
    assert!(!claims.status.is_refusal());
    assert!(!claims.activation_required && !claims.is_offline());
    // A machine token whose fingerprint carries more than `id` and `components` (a server
    // that binds the whole presented fingerprint).
    let machine: MachineClaims = serde_json::from_value(json!({
        "sub": "m", "aud": "p", "iat": 1, "license_id": "l",
        "fingerprint": { "id": "f", "components": { "a": "1" }, "is_virtual": false,
            "virtualization": [] }
    }))
    .expect("tolerant");
    assert_eq!(machine.fingerprint.id, "f");
    assert_eq!(machine.fingerprint.components.len(), 1);
    let error: ErrorBody =
        serde_json::from_value(json!({ "error": "seat_quota", "detail": "d" })).expect("error");
    assert_eq!(error.error, ErrorCode::Other("seat_quota".into()));
}

#[test]
fn requests_are_strict() {
    let unknown = serde_json::from_value::<LeaveQueueRequest>(json!({
        "license_key": "k", "extra": true
    }));
    assert!(unknown.is_err());
    let held = serde_json::from_value::<HeldTokens>(json!({ "license": null, "lease": {} }));
    assert!(held.is_err());
}

#[test]
fn words_round_trip() {
    for status in ServerStatus::KNOWN {
        assert_eq!(ServerStatus::parse(status.as_str()), status);
        assert_eq!(
            serde_json::to_value(&status).expect("json"),
            json!(status.as_str())
        );
    }
    assert_eq!(
        ServerStatus::Active.refusal_code(),
        None,
        "an active license is not refused"
    );
    assert_eq!(
        ServerStatus::NotYetValid.refusal_code(),
        Some(ErrorCode::LicenseNotYetValid)
    );
    let mut words: Vec<&str> = ErrorCode::KNOWN.iter().map(ErrorCode::as_str).collect();
    for code in ErrorCode::KNOWN {
        assert_eq!(&ErrorCode::parse(code.as_str()), code);
    }
    let count = words.len();
    words.sort_unstable();
    words.dedup();
    assert_eq!(words.len(), count, "a code word is listed twice");
    let long = "x".repeat(500);
    assert_eq!(ErrorCode::parse(&long).as_str().len(), 64);
}
