//! Public Ed25519 / JWS test vectors run through the project's own verification path
//! (`verify_ed25519`, `PublicKey::from_bytes`, `Verifier`). The vector files live in
//! `tests/vectors/` (see the README there for source, commit and licence of each).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use base64::Engine as _;
use licensing_core::{
    Error, KeyError, PrivateKey, PublicKey, Status, TrustStore, Verifier, sign_raw, thumbprint,
    verify_ed25519,
};
use serde::Deserialize;

macro_rules! vector_file {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/vectors/",
            $name
        ))
    };
}

const WYCHEPROOF: &str = vector_file!("wycheproof_ed25519_test.json");
const RFC: &str = vector_file!("rfc8032_rfc8037_vectors.json");
const SPECCHECK: &str = vector_file!("speccheck_cases.json");
const CCTV: &str = vector_file!("cctv_ed25519vectors.json");

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd-length hex `{s}`");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or_else(|_| panic!("bad hex `{s}`")))
        .collect()
}

fn hex32(s: &str) -> [u8; 32] {
    hex(s).try_into().expect("32 bytes")
}

fn b64url(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .expect("base64url")
}

// ---------------------------------------------------------------------------------------------
// Wycheproof
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WycheproofFile {
    number_of_tests: usize,
    test_groups: Vec<WycheproofGroup>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WycheproofGroup {
    public_key: WycheproofKey,
    tests: Vec<WycheproofTest>,
}

#[derive(Deserialize)]
struct WycheproofKey {
    pk: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WycheproofTest {
    tc_id: u32,
    comment: String,
    flags: Vec<String>,
    msg: String,
    sig: String,
    result: String,
}

#[test]
fn wycheproof_outcomes_match_labels() {
    let file: WycheproofFile = serde_json::from_str(WYCHEPROOF).unwrap();
    let mut total = 0;
    let (mut valid, mut invalid) = (0, 0);
    let mut failures = Vec::new();
    for group in &file.test_groups {
        let pk = hex(&group.public_key.pk);
        for case in &group.tests {
            total += 1;
            let expect_ok = match case.result.as_str() {
                "valid" => {
                    valid += 1;
                    true
                }
                "invalid" => {
                    invalid += 1;
                    false
                }
                other => panic!("tcId {}: unexpected result `{other}`", case.tc_id),
            };
            let outcome = verify_ed25519(&pk, &hex(&case.msg), &hex(&case.sig));
            if outcome.is_ok() != expect_ok {
                failures.push(format!(
                    "tcId {} ({}; {:?}): expected {}, got {:?}",
                    case.tc_id, case.comment, case.flags, case.result, outcome
                ));
            } else if let Err(e) = outcome {
                // The raw path collapses every refusal to SignatureInvalid.
                assert_eq!(e, Error::SignatureInvalid, "tcId {}", case.tc_id);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} Wycheproof case(s) disagree with their label:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(total, 151);
    assert_eq!(file.number_of_tests, total);
    assert_eq!((valid, invalid), (88, 63));
}

// ---------------------------------------------------------------------------------------------
// RFC 8032 and RFC 8037
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct RfcFile {
    rfc8032_ed25519: Vec<Rfc8032Case>,
    rfc8037_appendix_a: Rfc8037,
}

#[derive(Deserialize)]
struct Rfc8032Case {
    name: String,
    sk: String,
    pk: String,
    msg: String,
    sig: String,
}

#[derive(Deserialize)]
struct Rfc8037 {
    jwk_private: Jwk,
    jwk_public: Jwk,
    thumbprint_sha256: String,
    protected_header: String,
    payload: String,
    jws_compact: String,
}

#[derive(Deserialize)]
struct Jwk {
    x: String,
    d: Option<String>,
}

fn rfc() -> RfcFile {
    serde_json::from_str(RFC).unwrap()
}

#[test]
fn rfc8032_test_1_to_3() {
    let cases = rfc().rfc8032_ed25519;
    assert_eq!(cases.len(), 3);
    let mut failures = Vec::new();
    for case in &cases {
        let pk = hex32(&case.pk);
        let key = PrivateKey::from_seed(&hex32(&case.sk))
            .unwrap_or_else(|e| panic!("{}: seed refused: {e}", case.name));
        if key.public_key().to_bytes() != pk {
            failures.push(format!("{}: derived public key differs", case.name));
        }
        if PublicKey::from_bytes(&pk).map(|k| k.to_bytes()) != Ok(pk) {
            failures.push(format!(
                "{}: PublicKey::from_bytes refused the key",
                case.name
            ));
        }
        let (msg, sig) = (hex(&case.msg), hex(&case.sig));
        if let Err(e) = verify_ed25519(&pk, &msg, &sig) {
            failures.push(format!("{}: valid signature refused: {e:?}", case.name));
        }
        // Flipping one bit of the message or of S must break it.
        let mut bad_msg = msg.clone();
        bad_msg.push(0);
        if verify_ed25519(&pk, &bad_msg, &sig).is_ok() {
            failures.push(format!("{}: accepted for an altered message", case.name));
        }
        let mut bad_sig = sig.clone();
        bad_sig[40] ^= 1;
        if verify_ed25519(&pk, &msg, &bad_sig).is_ok() {
            failures.push(format!("{}: accepted an altered signature", case.name));
        }
        // Signing is deterministic: the public signing entry point gives the same token twice.
        let a = sign_raw("license+jwt", &key, None, &msg);
        let b = sign_raw("license+jwt", &key, None, &msg);
        if a != b {
            failures.push(format!("{}: signing is not deterministic", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "RFC 8032 failures:\n{}",
        failures.join("\n")
    );
}

#[test]
fn rfc8037_thumbprint() {
    let a = rfc().rfc8037_appendix_a;
    let x: [u8; 32] = b64url(&a.jwk_public.x).try_into().unwrap();
    assert_eq!(thumbprint(&x), a.thumbprint_sha256);
    assert_eq!(a.jwk_private.x, a.jwk_public.x);

    // The same key loaded as a JWK gets the thumbprint as its kid.
    let jwk = format!(
        r#"{{"kty":"OKP","crv":"Ed25519","x":"{}"}}"#,
        a.jwk_public.x
    );
    let key = PublicKey::from_jwk_json(&jwk).unwrap();
    assert_eq!(key.kid(), a.thumbprint_sha256);
    assert_eq!(key.to_bytes(), x);

    // The private JWK (with `d`) is refused as trust-store material.
    let private = format!(
        r#"{{"kty":"OKP","crv":"Ed25519","d":"{}","x":"{}"}}"#,
        a.jwk_private.d.as_deref().unwrap(),
        a.jwk_private.x
    );
    assert_eq!(
        PublicKey::from_jwk_json(&private),
        Err(KeyError::PrivateKeyMaterial)
    );
}

#[test]
fn rfc8037_a4_jws() {
    let a = rfc().rfc8037_appendix_a;
    let x: [u8; 32] = b64url(&a.jwk_public.x).try_into().unwrap();
    let parts: Vec<&str> = a.jws_compact.split('.').collect();
    assert_eq!(parts.len(), 3);
    assert_eq!(b64url(parts[0]), a.protected_header.as_bytes());
    assert_eq!(b64url(parts[1]), a.payload.as_bytes());

    // The raw signature verifies over the ASCII signing input `header.payload`.
    let signing_input = format!("{}.{}", parts[0], parts[1]);
    let signature = b64url(parts[2]);
    assert_eq!(
        verify_ed25519(&x, signing_input.as_bytes(), &signature),
        Ok(())
    );
    assert_eq!(
        verify_ed25519(&x, b"altered signing input", &signature),
        Err(Error::SignatureInvalid)
    );

    // Signing the same header and payload with the RFC seed (`d`, which is also RFC 8032
    // TEST 1's secret key) reproduces the RFC's token byte for byte: Ed25519 is deterministic.
    let seed: [u8; 32] = b64url(a.jwk_private.d.as_deref().unwrap())
        .try_into()
        .unwrap();
    let key = PrivateKey::from_seed(&seed).unwrap();
    assert_eq!(key.public_key().to_bytes(), x);
    let resigned = sign_raw(
        "license+jwt",
        &key,
        Some(&a.protected_header),
        a.payload.as_bytes(),
    );
    assert_eq!(resigned, a.jws_compact);

    // The full license path refuses it even though the RFC key is trusted: the header is just
    // `{"alg":"EdDSA"}`, and this profile requires `kid` (keys are chosen by kid, never by
    // trying every trusted key) and `typ`. `kid` is checked first, so the error is
    // MissingHeader("kid") -> Status::Malformed, before the signature is even looked at. (Had
    // the header carried them, the payload, plain text rather than a JSON object, would have
    // been refused as Malformed too.)
    let mut store = TrustStore::new();
    store.add(PublicKey::from_bytes(&x).unwrap()).unwrap();
    assert_eq!(store.len(), 1);
    let error = Verifier::for_any_product(store)
        .verify(&a.jws_compact)
        .unwrap_err();
    assert_eq!(error, Error::MissingHeader("kid"));
    assert_eq!(error.status(), Status::Malformed);
}

// ---------------------------------------------------------------------------------------------
// ed25519-speccheck ("Taming the many EdDSAs")
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct SpeccheckCase {
    message: String,
    pub_key: String,
    signature: String,
}

/// Where our path stops a speccheck case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// `verify_ed25519` returns Ok.
    Accepted,
    /// `PublicKey::from_bytes` refuses the key (so no signature under it can ever be checked).
    KeyRefused(KeyRefusal),
    /// The key loads; `verify_strict` refuses the signature.
    SignatureRefused,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyRefusal {
    Weak,
    NonCanonical,
}

fn key_outcome(pk: &[u8; 32]) -> Result<PublicKey, KeyRefusal> {
    match PublicKey::from_bytes(pk) {
        Ok(key) => Ok(key),
        Err(KeyError::Weak) => Err(KeyRefusal::Weak),
        Err(KeyError::NonCanonical) => Err(KeyRefusal::NonCanonical),
        Err(other) => panic!("unexpected key error {other:?}"),
    }
}

fn outcome(pk: &[u8; 32], msg: &[u8], sig: &[u8]) -> Outcome {
    let verified = verify_ed25519(pk, msg, sig);
    match key_outcome(pk) {
        Err(refusal) => {
            assert_eq!(verified, Err(Error::SignatureInvalid));
            Outcome::KeyRefused(refusal)
        }
        Ok(_) if verified.is_ok() => Outcome::Accepted,
        Ok(_) => {
            assert_eq!(verified, Err(Error::SignatureInvalid));
            Outcome::SignatureRefused
        }
    }
}

#[test]
fn speccheck_only_case_3_accepted() {
    use KeyRefusal::*;
    use Outcome::*;
    // Case numbering and meaning follow the speccheck README (Chalkias et al., Table 5).
    // `verify_strict` alone accepts only case 3. Refusing weak and non-canonical keys at load
    // does not change the accepted set; it only moves the refusal of cases 0, 1, 10 and 11
    // from the signature check to key loading:
    let expected = [
        KeyRefused(Weak), // 0: small-order A and R, S = 0
        KeyRefused(Weak), // 1: small-order A, mixed-order R
        SignatureRefused, // 2: mixed-order A, small-order R (verify_strict)
        Accepted,         // 3: mixed-order A and R, cofactorless equation holds
        SignatureRefused, // 4: only the cofactored equation holds
        SignatureRefused, // 5: only the cofactored equation holds (variant of 4)
        SignatureRefused, // 6: S >= L (non-canonical S)
        SignatureRefused, // 7: S much larger than L
        SignatureRefused, // 8: non-canonical small-order R, k over its re-encoding
        SignatureRefused, // 9: same R, k over the bytes as given
        KeyRefused(Weak), // 10: A = x=-0 encoding of the order-2 point (y < p), k re-encoded
        KeyRefused(Weak), // 11: same A, k over the bytes as given
    ];
    let cases: Vec<SpeccheckCase> = serde_json::from_str(SPECCHECK).unwrap();
    assert_eq!(cases.len(), 12);
    let observed: Vec<Outcome> = cases
        .iter()
        .map(|c| outcome(&hex32(&c.pub_key), &hex(&c.message), &hex(&c.signature)))
        .collect();
    let failures: Vec<String> = observed
        .iter()
        .zip(expected)
        .enumerate()
        .filter(|(_, (got, want))| **got != *want)
        .map(|(i, (got, want))| format!("case {i}: expected {want:?}, got {got:?}"))
        .collect();
    assert!(failures.is_empty(), "speccheck:\n{}", failures.join("\n"));
    let accepted: Vec<usize> = (0..observed.len())
        .filter(|&i| observed[i] == Accepted)
        .collect();
    assert_eq!(accepted, [3]);
}

// ---------------------------------------------------------------------------------------------
// C2SP CCTV ed25519vectors
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct CctvCase {
    number: u32,
    key: String,
    sig: String,
    /// UTF-8 text, not hex.
    msg: String,
    /// `null` for the one plain case.
    flags: Option<Vec<String>>,
}

impl CctvCase {
    fn has(&self, flag: &str) -> bool {
        self.flags.iter().flatten().any(|f| f == flag)
    }
}

fn cctv() -> Vec<CctvCase> {
    serde_json::from_str(CCTV).unwrap()
}

/// Every flag the CCTV file uses; anything new must be classified below before it is trusted.
const CCTV_FLAGS: [&str; 8] = [
    "low_order_A",
    "low_order_R",
    "non_canonical_A",
    "non_canonical_R",
    "low_order_component_A",
    "low_order_component_R",
    "low_order_residue",
    "reencoded_k",
];

/// Flags our path refuses, and where:
/// - `low_order_A`: `PublicKey::from_bytes` -> `KeyError::Weak` (or `NonCanonical` when the
///   encoding has y >= p); `verify_strict` would refuse it too.
/// - `non_canonical_A`: `PublicKey::from_bytes` -> `KeyError::NonCanonical` when y >= p; the
///   other non-canonical form (x = 0 with the sign bit set) exists only for the small-order
///   points y = ±1 and is refused as `Weak`. In CCTV every non-canonical A is also low-order,
///   so this adds no refusal over `verify_strict`.
/// - `low_order_R`: `verify_strict` refuses small-order R.
/// - `non_canonical_R`: `verify_strict` recomputes R and compares encodings.
/// - `low_order_residue`: only the cofactored equation holds; `verify_strict` is cofactorless.
/// - `reencoded_k`: k was computed over the canonical re-encoding, not the bytes given; only
///   occurs together with a non-canonical A or R, so it is refused anyway.
///
/// Accepted: `low_order_component_A` / `low_order_component_R` alone (mixed-order points are
/// not on any blocklist and the cofactorless equation holds for them).
const CCTV_REFUSED_FLAGS: [&str; 6] = [
    "low_order_A",
    "non_canonical_A",
    "low_order_R",
    "non_canonical_R",
    "low_order_residue",
    "reencoded_k",
];

/// y (sign bit cleared) >= p = 2^255 - 19, compared as big-endian integers. Written
/// independently of the library's byte check.
fn y_at_least_p(key: &[u8; 32]) -> bool {
    let mut y: Vec<u8> = key.iter().rev().copied().collect();
    y[0] &= 0x7f;
    let mut p = vec![0xffu8; 32];
    p[0] = 0x7f;
    p[31] = 0xed;
    y >= p
}

#[test]
fn cctv_outcomes_follow_flags() {
    let cases = cctv();
    assert_eq!(cases.len(), 914);
    let seen: BTreeSet<&str> = cases
        .iter()
        .flat_map(|c| c.flags.iter().flatten().map(String::as_str))
        .collect();
    let unknown: Vec<&&str> = seen.iter().filter(|f| !CCTV_FLAGS.contains(f)).collect();
    assert!(unknown.is_empty(), "unclassified CCTV flags: {unknown:?}");

    let mut failures = Vec::new();
    let mut accepted = Vec::new();
    for case in &cases {
        let pk = hex32(&case.key);
        let expect_ok = !CCTV_REFUSED_FLAGS.iter().any(|f| case.has(f));
        let got = outcome(&pk, case.msg.as_bytes(), &hex(&case.sig));
        // The stage is predicted by the flags too: a low-order or non-canonical A is refused
        // when the key is loaded, everything else reaches `verify_strict`.
        let expected = if case.has("non_canonical_A") && y_at_least_p(&pk) {
            Outcome::KeyRefused(KeyRefusal::NonCanonical)
        } else if case.has("low_order_A") {
            Outcome::KeyRefused(KeyRefusal::Weak)
        } else if expect_ok {
            Outcome::Accepted
        } else {
            Outcome::SignatureRefused
        };
        if got != expected {
            failures.push(format!(
                "#{} {:?}: expected {expected:?}, got {got:?}",
                case.number, case.flags
            ));
        }
        if got == Outcome::Accepted {
            accepted.push(case.number);
        }
    }
    assert!(
        failures.is_empty(),
        "{} CCTV case(s) disagree with their flags:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Observed: 43 of 914 accepted (35 with both low_order_component flags, 7 with only
    // low_order_component_A, and the one unflagged case #305), the same 43 that `verify_strict`
    // alone accepts: weak/non-canonical key refusal changes the stage, not the count.
    assert_eq!(accepted.len(), 43, "accepted: {accepted:?}");
}

// ---------------------------------------------------------------------------------------------
// Key loading
// ---------------------------------------------------------------------------------------------

#[test]
fn small_order_points_are_refused_as_keys() {
    let mut points: BTreeSet<[u8; 32]> = BTreeSet::new();
    for case in cctv() {
        let key = hex32(&case.key);
        let r: [u8; 32] = hex(&case.sig)[..32].try_into().unwrap();
        if case.has("low_order_A") {
            points.insert(key);
        }
        // The R halves of low_order_R cases are the same set of points; refuse them as keys too.
        if case.has("low_order_R") {
            points.insert(r);
        }
    }
    // CCTV's README lists 8 low-order points plus 6 alternative encodings.
    assert_eq!(points.len(), 14, "distinct low-order encodings");

    let mut failures = Vec::new();
    let (mut weak, mut non_canonical) = (0, 0);
    for point in &points {
        match PublicKey::from_bytes(point) {
            Err(KeyError::Weak) => weak += 1,
            Err(KeyError::NonCanonical) => non_canonical += 1,
            other => failures.push(format!("{}: {other:?}", hex_string(point))),
        }
    }
    assert!(
        failures.is_empty(),
        "small-order points not refused:\n{}",
        failures.join("\n")
    );
    // The encodings with y >= p are NonCanonical (checked first, on the bytes); the rest —
    // the 8 canonical encodings and the x = -0 encodings of y = ±1 — are Weak.
    let expected_non_canonical = points.iter().filter(|p| y_at_least_p(p)).count();
    assert_eq!(expected_non_canonical, 4);
    assert_eq!(
        (weak, non_canonical),
        (14 - expected_non_canonical, expected_non_canonical)
    );

    // And every CCTV key that is not low-order (prime- or mixed-order) loads.
    let refused: Vec<u32> = cctv()
        .iter()
        .filter(|c| !c.has("low_order_A") && PublicKey::from_bytes(&hex32(&c.key)).is_err())
        .map(|c| c.number)
        .collect();
    assert!(
        refused.is_empty(),
        "non-low-order keys refused: {refused:?}"
    );
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
