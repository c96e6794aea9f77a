#![no_main]
//! Arbitrary bytes into every parsing entry point of licensing-core.
//!
//! Each input is used twice:
//! 1. as a token (when it is UTF-8): `Verifier::verify`, `Verifier::check` and
//!    `decode_unverified` must not panic, and nothing the fuzzer writes may verify, since it
//!    cannot sign; `strict_json::check_object` gets the raw bytes whatever they are;
//! 2. as the payload of a token genuinely signed by the trusted key, so that the strict JSON
//!    pass, the claims schema and evaluation are reached past the signature check. Whatever
//!    verifies must also have passed `check_object`.

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use licensing_core::{
    Context, PrivateKey, TrustStore, Verifier, decode_unverified, sign_raw, strict_json,
};

/// 2026-07-01T00:00:00Z: a fixed "now" so runs are reproducible.
const NOW: i64 = 1_782_864_000;

struct Fixture {
    key: PrivateKey,
    verifier: Verifier,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let key = PrivateKey::from_seed(&[0x5a; 32]).expect("fixed seed is a valid key");
        let mut store = TrustStore::new();
        store
            .add(key.public_key().clone())
            .expect("an empty store takes a key");
        Fixture {
            key,
            verifier: Verifier::for_any_product(store),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let fixture = fixture();

    let object_ok = strict_json::check_object(data).is_ok();

    if let Ok(token) = std::str::from_utf8(data) {
        let _ = decode_unverified(token);
        assert!(
            fixture.verifier.verify(token).is_err(),
            "an unsigned input verified: {token:?}"
        );
        let verdict = fixture.verifier.check(token, &Context::at(NOW));
        assert!(!verdict.is_usable());
    }

    let token = sign_raw("license+jwt", &fixture.key, None, data);
    let _ = decode_unverified(&token);
    match fixture.verifier.verify(&token) {
        Ok(license) => {
            assert!(object_ok, "a payload that fails check_object verified");
            let _ = license.evaluate(&Context::at(NOW).with_feature("export"));
        }
        Err(error) => {
            let _ = error.status();
            let _ = error.to_string();
        }
    }
});
