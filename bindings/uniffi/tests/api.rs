//! The binding API from Rust: the one error enum and where each core error lands in it, and the
//! options of the startup check. (The shared scenarios are in `scenarios.rs`; the hosts' own
//! tests are in bindings/kotlin, bindings/python and bindings/swift.)
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::sync::Arc;

use licensing_core::{PrivateKey, Status};
use licensing_uniffi::{
    Context, LicenseStore, Licensing, LicensingError, LicensingOptions, RawComponents, TrustStore,
    Verifier, fingerprint_from_components, status_code, status_from_code,
};

const PRODUCT: &str = "com.example.cad";

fn key() -> PrivateKey {
    PrivateKey::from_seed(&[9u8; 32]).unwrap()
}

fn store() -> Arc<TrustStore> {
    Arc::new(TrustStore::from_document(key().public_key().to_spki_pem().unwrap()).unwrap())
}

fn token() -> String {
    let claims = serde_json::from_value(serde_json::json!({
        "iss": "https://licensing.example.com", "sub": "lic_api", "aud": PRODUCT, "iat": 1_767_225_600,
        "lic": { "model": "perpetual", "version": { "req": "^2" } }
    }))
    .unwrap();
    licensing_core::issue_license(&claims, &key()).unwrap()
}

#[test]
fn each_failure_has_its_variant() {
    assert!(matches!(
        TrustStore::from_document("nope".into()),
        Err(LicensingError::InvalidKey { .. })
    ));
    let verifier = Verifier::new(store(), PRODUCT.into());
    let bad_version = Context {
        now: 1_780_000_000,
        app_version: Some("2.x".into()),
        ..Context::default()
    };
    let err = verifier.check(token(), bad_version).unwrap_err();
    assert!(
        matches!(&err, LicensingError::InvalidArgument { reason } if reason.contains("semver")),
        "{err}"
    );
    // The core's version rule: strict semver, surrounding whitespace refused (as in C).
    for padded in [" 2.4.0", "2.4.0 ", "2.4.0\n"] {
        let padded = Context {
            now: 1_780_000_000,
            app_version: Some(padded.into()),
            ..Context::default()
        };
        let err = verifier.check(token(), padded).unwrap_err();
        assert!(
            matches!(&err, LicensingError::InvalidArgument { reason } if reason.contains("is not semver")),
            "{err}"
        );
    }
    // A license that may not be used is a verdict, not an error.
    let verdict = verifier.check("x.y.z".into(), Context::default()).unwrap();
    assert_eq!(verdict.status, Status::Malformed);
    // The explicit verify carries the same status as an error.
    assert!(matches!(
        verifier.verify("x.y.z".into()),
        Err(LicensingError::Rejected {
            status: Status::Malformed,
            ..
        })
    ));
    let file = tempfile::NamedTempFile::new().unwrap();
    let under_a_file = file.path().join("store").to_string_lossy().into_owned();
    assert!(matches!(
        LicenseStore::at(under_a_file),
        Err(LicensingError::Storage { .. })
    ));
}

#[test]
fn license_queries_delegate() {
    let license = Verifier::new(store(), PRODUCT.into())
        .verify(token())
        .unwrap();
    assert_eq!(license.id(), "lic_api");
    assert_eq!(
        license
            .check_version(Some("2.1.0".into()), None)
            .unwrap()
            .status,
        Status::Valid
    );
    // One version rule with C (the core's `parse_version`): surrounding whitespace is refused,
    // no longer trimmed here only.
    assert!(matches!(
        license.check_version(Some(" 2.1.0 ".into()), None),
        Err(LicensingError::InvalidArgument { .. })
    ));
    assert_eq!(
        license
            .check_version(Some("3.0.0".into()), None)
            .unwrap()
            .status,
        Status::VersionNotEntitled
    );
    assert!(matches!(
        license.check_version(Some("three".into()), None),
        Err(LicensingError::InvalidArgument { .. })
    ));
    let claims: serde_json::Value = serde_json::from_str(&license.claims_json().unwrap()).unwrap();
    assert_eq!(claims["sub"], "lic_api");
}

#[test]
fn startup_options_reach_the_core() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().to_string_lossy().into_owned();
    let licensing = Licensing::new(
        store(),
        PRODUCT.into(),
        Arc::new(LicenseStore::at(store_dir.clone()).unwrap()),
        LicensingOptions {
            app_version: Some("2.0.0".into()),
            fingerprint_override: Some("node-7".into()),
            clock_tolerance: Some(0),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(licensing.store_dir(), store_dir);
    // The override replaces the hardware components.
    let fp = licensing.fingerprint();
    let expected = fingerprint_from_components(
        RawComponents {
            values: HashMap::from([("override".into(), "node-7".into())]),
            virtualization: vec![],
        },
        PRODUCT.into(),
    );
    assert_eq!((fp.id, fp.components), (expected.id, expected.components));
    let now = 1_780_000_000;
    assert_eq!(
        licensing.install(token(), now).unwrap().status,
        Status::Valid
    );
    // Tolerance 0: one second back is a rollback.
    assert_eq!(
        licensing.check_at_startup(now - 1).unwrap().status,
        Status::ClockTampered
    );
    // A version outside the requirement is reported by the verdict.
    let old = Licensing::new(
        store(),
        PRODUCT.into(),
        Arc::new(LicenseStore::at(store_dir).unwrap()),
        LicensingOptions {
            app_version: Some("1.9.0".into()),
            fingerprint_override: Some("node-7".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        old.check_at_startup(now + 10).unwrap().status,
        Status::VersionNotEntitled
    );
    // A bad version in the options is refused up front.
    assert!(matches!(
        Licensing::new(
            store(),
            PRODUCT.into(),
            Arc::new(LicenseStore::at(dir.path().to_string_lossy().into_owned()).unwrap()),
            LicensingOptions {
                app_version: Some("v2".into()),
                ..Default::default()
            },
        ),
        Err(LicensingError::InvalidArgument { .. })
    ));
}

#[test]
fn status_numbers_round_trip() {
    for status in Status::ALL {
        assert_eq!(status_from_code(status_code(status)), Some(status));
    }
    assert_eq!(status_from_code(u32::MAX), None);
}

/// Key errors map by the core's class (`KeyError::kind`), as in C: a refused document is
/// `InvalidKey` (C: `LIC_KEY_REJECTED`), a failure that is not the document's fault is `System`
/// (C: `LIC_SYSTEM_ERROR`).
#[test]
fn key_errors_map_by_their_core_class() {
    use licensing_core::KeyError;
    assert!(matches!(
        LicensingError::from(KeyError::Weak),
        LicensingError::InvalidKey { .. }
    ));
    assert!(matches!(
        LicensingError::from(KeyError::Duplicate("kid".into())),
        LicensingError::InvalidKey { .. }
    ));
    assert!(matches!(
        LicensingError::from(KeyError::Internal("no random numbers".into())),
        LicensingError::System { reason } if reason.contains("no random numbers")
    ));
}

/// Online errors map by the core's class (`OnlineError::kind`), as C's result codes do.
#[cfg(feature = "online")]
#[test]
fn online_errors_map_by_their_core_class() {
    use licensing_core::online::OnlineError;
    assert!(matches!(
        LicensingError::from(OnlineError::Server {
            status: 409,
            code: "machine_limit_reached".into(),
            detail: "full".into(),
        }),
        LicensingError::Server { http_status: 409, code, .. } if code == "machine_limit_reached"
    ));
    assert!(matches!(
        LicensingError::from(OnlineError::Timeout(std::time::Duration::from_secs(3))),
        LicensingError::Network { .. }
    ));
    assert!(matches!(
        LicensingError::from(OnlineError::NoPendingRequest),
        LicensingError::NotActivated { .. }
    ));
    assert!(matches!(
        LicensingError::from(OnlineError::Replay),
        LicensingError::BadResponse { .. }
    ));
}
