#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Seat lease tokens (`lease+jwt`): round trip, kind confusion both ways, and forgeries of the
//! lease payload. Forgeries are signed by the trusted key, so a refusal can only come from the
//! thing under test.

use licensing_core::{
    Error, LeaseClaims, PrivateKey, Status, TokenKind, TrustStore, Verifier, issue_lease,
    issue_license, sign_raw, sign_token, verify_token,
};
use serde_json::{Value, json};

const PRODUCT: &str = "com.example.cad";
const NOW: i64 = 1_780_000_000;

fn trusted() -> PrivateKey {
    PrivateKey::from_seed(&[0x21; 32]).unwrap()
}

fn store_of(key: &PrivateKey) -> TrustStore {
    let mut store = TrustStore::new();
    store.add(key.public_key().clone()).unwrap();
    store
}

fn verifier() -> Verifier {
    Verifier::new(store_of(&trusted()), PRODUCT)
}

fn payload() -> Value {
    json!({
        "iss": "https://licensing.example.com",
        "sub": "lse_1",
        "aud": PRODUCT,
        "iat": NOW,
        "exp": NOW + 900,
        "jti": "jti_1",
        "license_id": "lic_1",
        "client_id": "client-1",
        "user": "alice",
        "epoch": 1,
    })
}

fn claims() -> LeaseClaims {
    serde_json::from_value(payload()).unwrap()
}

/// `payload` signed as a `lease+jwt` by the trusted key, without validation.
fn forged(payload: &Value) -> String {
    sign_raw(
        "lease+jwt",
        &trusted(),
        None,
        payload.to_string().as_bytes(),
    )
}

fn with(change: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    let mut p = payload();
    change(p.as_object_mut().unwrap());
    forged(&p)
}

#[test]
fn a_lease_round_trips_with_its_own_typ() {
    let token = issue_lease(&claims(), &trusted()).unwrap();
    let (header, _) = licensing_core::decode_unverified(&token).unwrap();
    assert_eq!(header["typ"], "lease+jwt");
    let lease = verifier().verify_lease(&token).unwrap();
    assert_eq!(lease.claims(), &claims());
    assert_eq!(lease.id(), "lse_1");
    assert_eq!(lease.kid(), trusted().public_key().kid());
    // sign_token validates a lease's claims like issue_lease does.
    let map = payload().as_object().unwrap().clone();
    let same = sign_token(TokenKind::Lease, &trusted(), &map).unwrap();
    assert_eq!(verifier().verify_lease(&same).unwrap().claims(), &claims());
    let mut bad = map;
    bad.remove("user");
    assert!(matches!(
        sign_token(TokenKind::Lease, &trusted(), &bad),
        Err(Error::InvalidClaims { .. })
    ));
}

#[test]
fn a_lease_is_not_a_license_and_a_license_is_not_a_lease() {
    let lease = issue_lease(&claims(), &trusted()).unwrap();
    let refused = verifier().verify(&lease).unwrap_err();
    assert!(matches!(refused, Error::WrongTokenType { .. }), "{refused}");
    assert_eq!(refused.status(), Status::WrongTokenType);
    let license_claims = serde_json::from_value(json!({
        "iss": "https://licensing.example.com", "sub": "lic_1", "aud": PRODUCT, "iat": NOW,
        "exp": NOW + 86_400, "lic": { "model": "floating", "seats": 3 },
    }))
    .unwrap();
    let license = issue_license(&license_claims, &trusted()).unwrap();
    let refused = verifier().verify_lease(&license).unwrap_err();
    assert!(matches!(refused, Error::WrongTokenType { .. }), "{refused}");
    // Other kinds are refused as leases too, and leases as other kinds.
    for kind in [TokenKind::Machine, TokenKind::Response] {
        let map = payload().as_object().unwrap().clone();
        let other = sign_token(kind, &trusted(), &map).unwrap();
        assert!(matches!(
            verifier().verify_lease(&other),
            Err(Error::WrongTokenType { .. })
        ));
        assert!(matches!(
            verify_token(&lease, kind, &store_of(&trusted())),
            Err(Error::WrongTokenType { .. })
        ));
    }
}

#[test]
fn forged_leases_are_refused_with_the_exact_status() {
    let other = PrivateKey::from_seed(&[0x66; 32]).unwrap();
    let token = issue_lease(&claims(), &trusted()).unwrap();
    let mut parts: Vec<&str> = token.split('.').collect();
    let swapped = licensing_core::decode_unverified(&with(|p| {
        p.insert("epoch".into(), json!(2));
    }))
    .unwrap();
    let tampered_payload = base64_url(swapped.1.to_string().as_bytes());
    parts[1] = &tampered_payload;
    let tampered = parts.join(".");
    let cases: Vec<(&str, String, Status, Option<&str>)> = vec![
        ("tampered payload", tampered, Status::SignatureInvalid, None),
        (
            "unknown key",
            issue_lease(&claims(), &other).unwrap(),
            Status::UnknownKey,
            None,
        ),
        (
            "typ with another spelling",
            sign_raw(
                "Lease+JWT",
                &trusted(),
                None,
                payload().to_string().as_bytes(),
            ),
            Status::WrongTokenType,
            None,
        ),
        (
            "unknown claim",
            with(|p| {
                p.insert("seats".into(), json!(99));
            }),
            Status::InvalidClaims,
            Some("seats"),
        ),
        (
            "missing user",
            with(|p| {
                p.remove("user");
            }),
            Status::InvalidClaims,
            Some("."),
        ),
        (
            "null exp",
            with(|p| {
                p.insert("exp".into(), Value::Null);
            }),
            Status::InvalidClaims,
            Some("exp"),
        ),
        (
            "epoch 0",
            with(|p| {
                p.insert("epoch".into(), json!(0));
            }),
            Status::InvalidClaims,
            Some("epoch"),
        ),
        (
            "negative epoch",
            with(|p| {
                p.insert("epoch".into(), json!(-1));
            }),
            Status::InvalidClaims,
            Some("epoch"),
        ),
        (
            "exp not after iat",
            with(|p| {
                p.insert("exp".into(), json!(NOW));
            }),
            Status::InvalidClaims,
            Some("exp"),
        ),
        (
            "empty client id",
            with(|p| {
                p.insert("client_id".into(), json!(""));
            }),
            Status::InvalidClaims,
            Some("client_id"),
        ),
        (
            "aud as an array",
            with(|p| {
                p.insert("aud".into(), json!([PRODUCT]));
            }),
            Status::InvalidClaims,
            Some("aud"),
        ),
        (
            "another product",
            with(|p| {
                p.insert("aud".into(), json!("com.example.other"));
            }),
            Status::ProductMismatch,
            None,
        ),
        (
            "a JSON array payload",
            forged(&json!(["lse_1"])),
            Status::Malformed,
            None,
        ),
    ];
    for (name, token, status, field) in cases {
        let error = verifier().verify_lease(&token).unwrap_err();
        assert_eq!(error.status(), status, "{name}: {error}");
        if let (Some(field), Error::InvalidClaims { field: got, .. }) = (field, &error) {
            assert_eq!(got, field, "{name}: {error}");
        }
    }
}

#[test]
fn a_lease_is_live_strictly_before_its_expiry() {
    let lease = verifier()
        .verify_lease(&issue_lease(&claims(), &trusted()).unwrap())
        .unwrap();
    let exp = NOW + 900;
    assert_eq!(lease.status_for("lic_1", exp - 1), Status::Valid);
    // The exact expiry instant is over (the server's heartbeat and reaper use the same rule).
    assert_eq!(lease.status_for("lic_1", exp), Status::LeaseExpired);
    assert_eq!(lease.status_for("lic_1", exp + 1), Status::LeaseExpired);
    assert_eq!(lease.status_for("lic_2", NOW), Status::LeaseRequired);
    assert_eq!(Status::LeaseExpired as u32, 23);
    assert_eq!(Status::LeaseRequired as u32, 24);
    assert_eq!(Status::LeaseExpired.as_str(), "lease_expired");
    assert_eq!(Status::LeaseRequired.as_str(), "lease_required");
    assert!(!Status::LeaseExpired.is_usable() && !Status::LeaseRequired.is_usable());
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `borrowed` is optional: absent reads as false and is never written when false (leases that
/// do not borrow are byte for byte what they were), present must be a boolean, and a borrowed
/// lease round-trips with it.
#[test]
fn a_borrowed_lease_says_so_and_other_leases_read_as_before() {
    let plain = issue_lease(&claims(), &trusted()).unwrap();
    let (_, payload_json) = licensing_core::decode_unverified(&plain).unwrap();
    assert!(payload_json.get("borrowed").is_none(), "{payload_json}");
    assert!(!verifier().verify_lease(&plain).unwrap().claims().borrowed);

    let borrowed_claims = LeaseClaims {
        borrowed: true,
        exp: NOW + 7 * 86_400,
        ..claims()
    };
    let borrowed = issue_lease(&borrowed_claims, &trusted()).unwrap();
    let (_, payload_json) = licensing_core::decode_unverified(&borrowed).unwrap();
    assert_eq!(payload_json["borrowed"], json!(true));
    let lease = verifier().verify_lease(&borrowed).unwrap();
    assert_eq!(lease.claims(), &borrowed_claims);
    assert_eq!(
        lease.status_for("lic_1", NOW + 7 * 86_400 - 1),
        Status::Valid
    );
    assert_eq!(
        lease.status_for("lic_1", NOW + 7 * 86_400),
        Status::LeaseExpired
    );

    for bad in [json!("yes"), json!(1), Value::Null] {
        let token = with(|p| {
            p.insert("borrowed".into(), bad.clone());
        });
        let error = verifier().verify_lease(&token).unwrap_err();
        assert_eq!(error.status(), Status::InvalidClaims, "{bad}: {error}");
    }
}
