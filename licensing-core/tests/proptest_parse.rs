#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Property tests of the parsing surface: arbitrary input never panics, and no alteration of a
//! genuine token is ever accepted.

use std::sync::OnceLock;

use licensing_core::{
    Context, License, PrivateKey, TrustStore, Verifier, decode_unverified, sign_raw, strict_json,
};
use proptest::prelude::*;

const BASELINE: &str = r#"{"iss":"https://x","sub":"lic_1","aud":"p","iat":1767225600,"nbf":1767225600,"exp":1798761600,"lic":{"model":"subscription","grace_period":604800,"features":{"export":{"limit":10,"exp":1790000000}}}}"#;

struct Fixture {
    verifier: Verifier,
    token: String,
    license: License,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let key = PrivateKey::from_seed(&[0x42; 32]).unwrap();
        let mut store = TrustStore::new();
        store.add(key.public_key().clone()).unwrap();
        let verifier = Verifier::for_any_product(store);
        let token = sign_raw("license+jwt", &key, None, BASELINE.as_bytes());
        let license = verifier.verify(&token).expect("the baseline must verify");
        Fixture {
            verifier,
            token,
            license,
        }
    })
}

/// Runs every entry point on `input`; none may panic. Returns whether `verify` accepted it.
fn exercise(input: &str) -> bool {
    let _ = decode_unverified(input);
    let _ = strict_json::check_object(input.as_bytes());
    fixture().verifier.verify(input).is_ok()
}

/// One edit of a token's bytes.
#[derive(Debug, Clone)]
enum Edit {
    /// XOR the byte at `index % len` with a non-zero mask.
    Flip(usize, u8),
    /// Insert a byte at `index % (len + 1)`.
    Insert(usize, u8),
    /// Delete the byte at `index % len`.
    Delete(usize),
    /// Replace the byte at `index % len` by one of the base64url alphabet or a dot.
    Replace(usize, u8),
    /// Swap two bytes.
    Swap(usize, usize),
    /// Truncate to `index % len` bytes.
    Truncate(usize),
}

const TOKEN_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ";

fn edit() -> impl Strategy<Value = Edit> {
    let any_token_char = prop::sample::select(TOKEN_CHARS);
    prop_oneof![
        (any::<usize>(), 1..=u8::MAX).prop_map(|(i, m)| Edit::Flip(i, m)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
        (any::<usize>(), any_token_char.clone()).prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), any_token_char).prop_map(|(i, b)| Edit::Replace(i, b)),
        (any::<usize>(), any::<usize>()).prop_map(|(i, j)| Edit::Swap(i, j)),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn apply(bytes: &mut Vec<u8>, edit: &Edit) {
    let len = bytes.len();
    match *edit {
        Edit::Flip(i, mask) if len > 0 => bytes[i % len] ^= mask,
        Edit::Insert(i, b) => bytes.insert(i % (len + 1), b),
        Edit::Delete(i) if len > 0 => {
            bytes.remove(i % len);
        }
        Edit::Replace(i, b) if len > 0 => bytes[i % len] = b,
        Edit::Swap(i, j) if len > 0 => bytes.swap(i % len, j % len),
        Edit::Truncate(i) if len > 0 => bytes.truncate(i % len),
        _ => {}
    }
}

/// Strings of base64url characters and dots, with a bias to three segments.
fn base64url_and_dots() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[A-Za-z0-9_.-]{0,300}",
        3 => "[A-Za-z0-9_-]{0,160}\\.[A-Za-z0-9_-]{0,200}\\.[A-Za-z0-9_-]{0,100}",
        // A genuine header and signature around a random payload (a full verification each:
        // weighted down to keep the test fast in debug builds).
        1 => "[A-Za-z0-9_-]{0,200}".prop_map(|payload| {
            let token = &fixture().token;
            let mut parts = token.split('.');
            let header = parts.next().unwrap();
            let signature = parts.nth(1).unwrap();
            format!("{header}.{payload}.{signature}")
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let text = String::from_utf8_lossy(&bytes);
        prop_assert!(!exercise(&text));
        let _ = strict_json::check_object(&bytes);
    }

    #[test]
    fn check_object_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = strict_json::check_object(&bytes);
    }

    /// Evaluation takes the time from the caller: no `now` or leeway may overflow it.
    #[test]
    fn evaluation_never_panics_at_any_time(
        now in prop_oneof![any::<i64>(), Just(i64::MIN), Just(i64::MAX), 1_700_000_000i64..1_900_000_000],
        leeway in prop_oneof![any::<i64>(), Just(i64::MIN), Just(i64::MAX), 0i64..86_400],
        release_date in any::<i64>(),
    ) {
        let license = &fixture().license;
        let mut ctx = Context::at(now).with_feature("export").with_release_date(release_date);
        ctx.not_before_leeway = leeway;
        let _ = license.evaluate(&ctx);
        let _ = license.check_time(now, leeway);
        let _ = license.check_feature("export", now, leeway);
    }

    /// JSON-ish text reaches deeper into the parser than random bytes; whatever check_object
    /// accepts, serde_json must read as an object.
    #[test]
    fn check_object_agrees_with_serde_json(text in r#"[{}\[\]":,a-c0-9 \\u.e-]{0,120}"#) {
        if strict_json::check_object(text.as_bytes()).is_ok() {
            let parsed: Result<serde_json::Map<String, serde_json::Value>, _> =
                serde_json::from_str(&text);
            prop_assert!(parsed.is_ok(), "{:?}", text);
        }
    }

    /// Objects serde_json writes are accepted exactly when they are shallow enough.
    #[test]
    fn check_object_accepts_serialized_objects(value in json_object(), wrap in 0usize..20) {
        // Wrapping in `{"w": ...}` walks the depth across MAX_DEPTH.
        let value = (0..wrap).fold(value, |v, _| serde_json::json!({ "w": v }));
        let text = value.to_string();
        let accepted = strict_json::check_object(text.as_bytes()).is_ok();
        prop_assert_eq!(accepted, depth(&value) <= strict_json::MAX_DEPTH, "{}", text);
    }
}

proptest! {
    // Many cases reach a full Ed25519 verification (slow in debug builds): fewer cases.
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn edited_tokens_are_never_accepted(edits in prop::collection::vec(edit(), 1..4)) {
        let original = &fixture().token;
        let mut bytes = original.clone().into_bytes();
        for e in &edits {
            apply(&mut bytes, e);
        }
        let edited = String::from_utf8_lossy(&bytes);
        let accepted = exercise(&edited);
        prop_assert_eq!(
            accepted,
            edited == original.as_str(),
            "edits {:?} gave {:?}",
            edits,
            edited
        );
    }

    #[test]
    fn base64url_strings_never_panic_nor_verify(text in base64url_and_dots()) {
        prop_assert!(!exercise(&text));
    }

    #[test]
    fn edited_payload_json_is_never_accepted_under_the_original_signature(
        index in any::<usize>(),
        byte in any::<u8>(),
    ) {
        use base64::Engine as _;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let original = &fixture().token;
        let parts: Vec<&str> = original.split('.').collect();
        let mut payload = engine.decode(parts[1]).unwrap();
        let i = index % payload.len();
        payload[i] = byte;
        let edited = format!("{}.{}.{}", parts[0], engine.encode(&payload), parts[2]);
        prop_assert_eq!(exercise(&edited), &edited == original);
    }
}

/// Arbitrary JSON objects, sometimes deeper than `MAX_DEPTH`.
fn json_object() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        "[a-z\u{e9}\u{1f600}\\\\\"]{0,6}".prop_map(serde_json::Value::from),
    ];
    let value = leaf.prop_recursive(24, 64, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(serde_json::Value::from),
            prop::collection::btree_map("[a-d]{1,2}", inner, 0..3)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    });
    prop::collection::btree_map("[a-d]{1,2}", value, 0..3)
        .prop_map(|m| serde_json::Value::Object(m.into_iter().collect()))
}

/// Nesting depth of containers (a scalar is 0, `{}` is 1).
fn depth(value: &serde_json::Value) -> usize {
    match value {
        serde_json::Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        serde_json::Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}
