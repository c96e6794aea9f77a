#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A catalogue of forged and malformed tokens. Every case names the exact [`Status`] the
//! verifier must return and the error it must carry (the exact [`Error`], the segment of a JSON
//! error, or the JSON path of a claims error).
//!
//! Most forgeries here are *signed by the trusted key*: the token is genuine except for the one
//! thing under test, so a rejection can only come from that thing and not from a bad signature.
//! Where the attacker has no key, the case says so.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use ed25519_dalek::Signer as _;
use licensing_core::strict_json::MAX_DEPTH;
use licensing_core::{
    Context, Error, KeyError, MAX_TOKEN_BYTES, PrivateKey, PublicKey, Status, TrustStore, Verifier,
    decode_unverified, sign_raw, thumbprint, verify_ed25519,
};

const TYP: &str = "license+jwt";
const TRUSTED_SEED: [u8; 32] = [0x11; 32];
const ATTACKER_SEED: [u8; 32] = [0x66; 32];
const BASELINE: &str =
    r#"{"iss":"https://x","sub":"lic_1","aud":"p","iat":1767225600,"lic":{"model":"perpetual"}}"#;

// ---------------------------------------------------------------------------------------------
// Token building
// ---------------------------------------------------------------------------------------------

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn trusted() -> PrivateKey {
    PrivateKey::from_seed(&TRUSTED_SEED).unwrap()
}

fn attacker() -> PrivateKey {
    PrivateKey::from_seed(&ATTACKER_SEED).unwrap()
}

fn kid() -> String {
    trusted().public_key().kid().to_owned()
}

fn attacker_kid() -> String {
    attacker().public_key().kid().to_owned()
}

/// A verifier that trusts only the trusted key, for any product.
fn verifier() -> Verifier {
    let mut store = TrustStore::new();
    store.add(trusted().public_key().clone()).unwrap();
    Verifier::for_any_product(store)
}

/// A header with these three string members, in the profile's member order.
fn header(alg: &str, kid: &str, typ: &str) -> String {
    format!(r#"{{"alg":"{alg}","kid":"{kid}","typ":"{typ}"}}"#)
}

/// The profile's header for the trusted key.
fn good_header() -> String {
    header("EdDSA", &kid(), TYP)
}

/// The profile's header with `extra` (`"name":value` members) inserted before `kid`.
fn header_with(extra: &str) -> String {
    format!(
        r#"{{"alg":"EdDSA",{extra},"kid":"{}","typ":"{TYP}"}}"#,
        kid()
    )
}

/// A genuine token: the profile header and `payload`, signed by the trusted key.
fn genuine(payload: &str) -> String {
    sign_raw(TYP, &trusted(), None, payload.as_bytes())
}

/// `header` and `payload` exactly as given, signed by the trusted key.
fn signed(header: &str, payload: impl AsRef<[u8]>) -> String {
    sign_raw(TYP, &trusted(), Some(header), payload.as_ref())
}

/// `header` and `payload` signed by the attacker's key.
fn forged(header: &str, payload: impl AsRef<[u8]>) -> String {
    sign_raw(TYP, &attacker(), Some(header), payload.as_ref())
}

/// Signs a signing input (`header.payload`) *as text*, whatever its encoding, with `seed`, and
/// appends the signature: what an issuer with a lax encoder would produce.
fn sign_text(seed: &[u8; 32], signing_input: &str) -> String {
    let signature = ed25519_dalek::SigningKey::from_bytes(seed).sign(signing_input.as_bytes());
    format!("{signing_input}.{}", b64(signature.to_bytes()))
}

/// The three segments of a token.
fn split(token: &str) -> (String, String, String) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    (parts[0].into(), parts[1].into(), parts[2].into())
}

fn join(header: &str, payload: &str, signature: &str) -> String {
    format!("{header}.{payload}.{signature}")
}

/// The raw 64 signature bytes of a token.
fn signature_of(token: &str) -> [u8; 64] {
    URL_SAFE_NO_PAD
        .decode(split(token).2)
        .unwrap()
        .try_into()
        .unwrap()
}

/// `token` with its signature segment replaced by the encoding of `signature`.
fn with_signature(token: &str, signature: &[u8]) -> String {
    let (h, p, _) = split(token);
    join(&h, &p, &b64(signature))
}

/// `json` with spaces after its opening brace (still the same JSON value), the fewest for which
/// `want` holds of the base64url encoding. Lets an encoding case pick a segment that has unused
/// trailing bits or that differs between the two base64 alphabets.
fn spaced_until(json: &str, want: impl Fn(&str) -> bool) -> String {
    let rest = json.strip_prefix('{').unwrap();
    (0..64)
        .map(|n| format!("{{{}{rest}", " ".repeat(n)))
        .find(|candidate| want(&b64(candidate)))
        .expect("some spacing gives the wanted encoding")
}

/// Base64url text whose last character carries unused bits (the byte count is not a multiple of 3).
fn has_unused_bits(encoded: &str) -> bool {
    !encoded.len().is_multiple_of(4)
}

/// Base64url text whose standard-alphabet encoding differs (it contains `-` or `_`).
fn has_url_only_chars(encoded: &str) -> bool {
    encoded.contains(['-', '_'])
}

const URL_ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A decoder that ignores non-zero trailing bits, as lax JOSE libraries do.
const LAX: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// The same bytes with the lowest unused bit of the last character set: a lax decoder reads
/// the original bytes, a strict one must refuse it.
fn non_canonical_tail(segment: &str) -> String {
    assert!(has_unused_bits(segment), "{segment} has no unused bits");
    let last = *segment.as_bytes().last().unwrap();
    let value = URL_ALPHABET.iter().position(|&c| c == last).unwrap();
    assert_eq!(value & 1, 0, "canonical encodings have zero unused bits");
    let mut altered = segment[..segment.len() - 1].to_owned();
    altered.push(char::from(URL_ALPHABET[value | 1]));
    assert_eq!(
        LAX.decode(&altered).unwrap(),
        LAX.decode(segment).unwrap(),
        "a lax decoder must read the same bytes"
    );
    altered
}

/// The segment with `=` padding, as the standard (padded) base64url would write it.
fn padded(segment: &str) -> String {
    assert!(has_unused_bits(segment));
    let mut s = segment.to_owned();
    while !s.len().is_multiple_of(4) {
        s.push('=');
    }
    s
}

/// The same bytes in the standard alphabet (`+` `/`).
fn standard_alphabet(segment: &str) -> String {
    let standard = STANDARD_NO_PAD.encode(URL_SAFE_NO_PAD.decode(segment).unwrap());
    assert_ne!(standard, segment, "the segment must contain `-` or `_`");
    standard
}

/// `text` with `insert` in its middle.
fn inserted_mid(text: &str, insert: &str) -> String {
    let mid = text.len() / 2;
    format!("{}{insert}{}", &text[..mid], &text[mid..])
}

/// `text` with its middle character replaced by `c`.
fn replaced_mid(text: &str, c: char) -> String {
    let mid = text.len() / 2;
    format!("{}{c}{}", &text[..mid], &text[mid + 1..])
}

/// Nested objects `{"a":{"a":...{}}}`, `levels` containers deep.
fn nested_objects(levels: usize) -> String {
    assert!(levels >= 1);
    format!(
        "{}{{}}{}",
        r#"{"a":"#.repeat(levels - 1),
        "}".repeat(levels - 1)
    )
}

/// The baseline claims with `lic.metadata` set to `metadata`.
fn with_metadata(metadata: &str) -> String {
    format!(
        r#"{{"iss":"https://x","sub":"lic_1","aud":"p","iat":1767225600,"lic":{{"model":"perpetual","metadata":{metadata}}}}}"#
    )
}

/// Claims `{iss, sub, aud, iat}` of the baseline followed by `rest` (`"name":value,...`).
fn claims(rest: &str) -> String {
    format!(r#"{{"iss":"https://x","sub":"lic_1","aud":"p","iat":1767225600,{rest}}}"#)
}

// ---------------------------------------------------------------------------------------------
// Cases and the runner
// ---------------------------------------------------------------------------------------------

/// What the verifier must answer, beyond the status.
#[derive(Debug)]
enum Want {
    /// Accepted.
    Valid,
    /// Exactly this error.
    Error(Error),
    /// An [`Error::Json`] in this segment (the detail is the parser's).
    Json(&'static str),
    /// An [`Error::InvalidClaims`] naming this JSON path.
    Claim(&'static str),
}

struct Case {
    name: String,
    token: String,
    status: Status,
    want: Want,
}

fn case(name: impl Into<String>, token: impl Into<String>, status: Status, want: Want) -> Case {
    Case {
        name: name.into(),
        token: token.into(),
        status,
        want,
    }
}

/// Runs every case (also through `decode_unverified`, which must not panic) and reports all
/// mismatches at once.
fn check(verifier: &Verifier, cases: &[Case]) {
    let mut failures = Vec::new();
    for c in cases {
        let _ = decode_unverified(&c.token);
        let got = verifier.verify(&c.token);
        let status = got.as_ref().map_or_else(Error::status, |_| Status::Valid);
        // `check` reports a verification failure with the same status.
        if let Err(error) = &got {
            let verdict = verifier.check(&c.token, &Context::at(1_780_000_000));
            if verdict.status != error.status() {
                failures.push(format!("  {}: check() said {:?}", c.name, verdict.status));
            }
        }
        let matches = match (&c.want, &got) {
            (Want::Valid, Ok(_)) => true,
            (Want::Error(want), Err(got)) => want == got,
            (Want::Json(want), Err(Error::Json { segment, .. })) => want == segment,
            (Want::Claim(want), Err(Error::InvalidClaims { field, .. })) => want == field,
            _ => false,
        };
        if status != c.status || !matches {
            failures.push(format!(
                "  {}: want {:?} / {:?}, got {:?}",
                c.name, c.status, c.want, got
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

fn malformed(error: Error) -> Want {
    assert_eq!(error.status(), Status::Malformed);
    Want::Error(error)
}

fn base64_error(segment: &'static str) -> Want {
    malformed(Error::Base64 { segment })
}

// ---------------------------------------------------------------------------------------------
// Baseline
// ---------------------------------------------------------------------------------------------

#[test]
fn baseline_verifies() {
    let token = genuine(BASELINE);
    let license = verifier().verify(&token).unwrap();
    assert_eq!(license.id(), "lic_1");
    assert_eq!(license.kid(), kid());
    assert_eq!(split(&token).0, b64(good_header()));
    // And the controls the cases below lean on: semantically equal variants are accepted.
    check(
        &verifier(),
        &[
            case("baseline", &token, Status::Valid, Want::Valid),
            case(
                "alg Ed25519 (fully specified)",
                signed(&header("Ed25519", &kid(), TYP), BASELINE),
                Status::Valid,
                Want::Valid,
            ),
            case(
                "header with insignificant whitespace",
                signed(&spaced_until(&good_header(), has_unused_bits), BASELINE),
                Status::Valid,
                Want::Valid,
            ),
            case(
                "header members in another order",
                signed(
                    &format!(r#"{{"typ":"{TYP}","kid":"{}","alg":"EdDSA"}}"#, kid()),
                    BASELINE,
                ),
                Status::Valid,
                Want::Valid,
            ),
            case(
                "payload with insignificant whitespace",
                genuine(&spaced_until(BASELINE, has_unused_bits)),
                Status::Valid,
                Want::Valid,
            ),
            case(
                "unknown claims are ignored",
                genuine(&claims(
                    r#""lic":{"model":"perpetual"},"x-vendor":{"a":[1,2]}"#,
                )),
                Status::Valid,
                Want::Valid,
            ),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Algorithm
// ---------------------------------------------------------------------------------------------

#[test]
fn algorithm_confusion() {
    let kid = kid();
    let payload = b64(BASELINE);
    let unsupported = |alg: &str| Want::Error(Error::UnsupportedAlgorithm(alg.into()));

    // alg=none, unsigned: empty signature segment.
    let none_header = b64(header("none", &kid, TYP));
    let alg_none = format!("{none_header}.{payload}.");

    // alg=HS256 keyed with the trusted *public* key (raw bytes and PEM text): the classic
    // confusion, a verifier that lets the token pick the algorithm would check this HMAC.
    let hs_input = format!("{}.{payload}", b64(header("HS256", &kid, TYP)));
    let hmac = |secret: &[u8]| {
        jsonwebtoken::crypto::sign(
            hs_input.as_bytes(),
            &jsonwebtoken::EncodingKey::from_secret(secret),
            jsonwebtoken::Algorithm::HS256,
        )
        .unwrap()
    };
    let public = trusted().public_key().clone();
    let hs256_raw = format!("{hs_input}.{}", hmac(&public.to_bytes()));
    let hs256_pem = format!(
        "{hs_input}.{}",
        hmac(public.to_spki_pem().unwrap().as_bytes())
    );

    let cases = [
        case(
            "alg none, empty signature",
            alg_none,
            Status::UnsupportedAlgorithm,
            unsupported("none"),
        ),
        case(
            "alg none, with a genuine EdDSA signature",
            signed(&header("none", &kid, TYP), BASELINE),
            Status::UnsupportedAlgorithm,
            unsupported("none"),
        ),
        case(
            "alg None",
            signed(&header("None", &kid, TYP), BASELINE),
            Status::UnsupportedAlgorithm,
            unsupported("None"),
        ),
        case(
            "alg HS256, HMAC keyed with the raw public key",
            hs256_raw,
            Status::UnsupportedAlgorithm,
            unsupported("HS256"),
        ),
        case(
            "alg HS256, HMAC keyed with the public key PEM",
            hs256_pem,
            Status::UnsupportedAlgorithm,
            unsupported("HS256"),
        ),
        case(
            "alg ES256",
            signed(&header("ES256", &kid, TYP), BASELINE),
            Status::UnsupportedAlgorithm,
            unsupported("ES256"),
        ),
        case(
            "alg RS256",
            signed(&header("RS256", &kid, TYP), BASELINE),
            Status::UnsupportedAlgorithm,
            unsupported("RS256"),
        ),
        case(
            "alg with a trailing space",
            signed(&header("EdDSA ", &kid, TYP), BASELINE),
            Status::UnsupportedAlgorithm,
            unsupported("EdDSA "),
        ),
        case(
            "alg lower case",
            signed(&header("eddsa", &kid, TYP), BASELINE),
            Status::UnsupportedAlgorithm,
            unsupported("eddsa"),
        ),
        case(
            "alg ED25519",
            signed(&header("ED25519", &kid, TYP), BASELINE),
            Status::UnsupportedAlgorithm,
            unsupported("ED25519"),
        ),
        case(
            "alg Ed448",
            signed(&header("Ed448", &kid, TYP), BASELINE),
            Status::UnsupportedAlgorithm,
            unsupported("Ed448"),
        ),
        case(
            "alg with a NUL suffix",
            signed(&header(r"EdDSA\u0000", &kid, TYP), BASELINE),
            Status::UnsupportedAlgorithm,
            // Control characters in attacker-chosen text are escaped in errors.
            unsupported("EdDSA\\u{0}"),
        ),
        case(
            "alg empty",
            signed(&header("", &kid, TYP), BASELINE),
            Status::UnsupportedAlgorithm,
            unsupported(""),
        ),
        case(
            "alg missing",
            signed(&format!(r#"{{"kid":"{kid}","typ":"{TYP}"}}"#), BASELINE),
            Status::Malformed,
            malformed(Error::MissingHeader("alg")),
        ),
        case(
            "alg a number",
            signed(
                &format!(r#"{{"alg":1,"kid":"{kid}","typ":"{TYP}"}}"#),
                BASELINE,
            ),
            Status::UnsupportedAlgorithm,
            unsupported("1"),
        ),
        case(
            "alg null",
            signed(
                &format!(r#"{{"alg":null,"kid":"{kid}","typ":"{TYP}"}}"#),
                BASELINE,
            ),
            Status::UnsupportedAlgorithm,
            unsupported("null"),
        ),
        case(
            "alg an array holding EdDSA",
            signed(
                &format!(r#"{{"alg":["EdDSA"],"kid":"{kid}","typ":"{TYP}"}}"#),
                BASELINE,
            ),
            Status::UnsupportedAlgorithm,
            unsupported(r#"["EdDSA"]"#),
        ),
        case(
            "alg an object",
            signed(
                &format!(r#"{{"alg":{{"name":"EdDSA"}},"kid":"{kid}","typ":"{TYP}"}}"#),
                BASELINE,
            ),
            Status::UnsupportedAlgorithm,
            unsupported(r#"{"name":"EdDSA"}"#),
        ),
        case(
            "alg key spelled ALG",
            signed(
                &format!(r#"{{"ALG":"EdDSA","kid":"{kid}","typ":"{TYP}"}}"#),
                BASELINE,
            ),
            Status::Malformed,
            malformed(Error::ForbiddenHeader("ALG".into())),
        ),
    ];
    check(&verifier(), &cases);
}

// ---------------------------------------------------------------------------------------------
// Keys and kid
// ---------------------------------------------------------------------------------------------

#[test]
fn foreign_keys_and_kid_tricks() {
    let kid = kid();
    let attacker_kid = attacker_kid();
    let with_kid = |kid_json: &str| format!(r#"{{"alg":"EdDSA","kid":{kid_json},"typ":"{TYP}"}}"#);
    let unknown = |kid: &str| Want::Error(Error::UnknownKey(kid.into()));
    let cases = [
        case(
            "signed by another key, trusted kid",
            forged(&good_header(), BASELINE),
            Status::SignatureInvalid,
            Want::Error(Error::SignatureInvalid),
        ),
        case(
            "signed by another key, its own kid",
            sign_raw(TYP, &attacker(), None, BASELINE.as_bytes()),
            Status::UnknownKey,
            unknown(&attacker_kid),
        ),
        case(
            "genuine token relabelled with another kid",
            signed(&header("EdDSA", &attacker_kid, TYP), BASELINE),
            Status::UnknownKey,
            unknown(&attacker_kid),
        ),
        case(
            "kid missing",
            signed(&format!(r#"{{"alg":"EdDSA","typ":"{TYP}"}}"#), BASELINE),
            Status::Malformed,
            malformed(Error::MissingHeader("kid")),
        ),
        case(
            "kid empty",
            signed(&with_kid(r#""""#), BASELINE),
            Status::UnknownKey,
            unknown(""),
        ),
        case(
            "kid path traversal",
            signed(&with_kid(r#""../../etc/passwd""#), BASELINE),
            Status::UnknownKey,
            unknown("../../etc/passwd"),
        ),
        case(
            "kid a URL",
            signed(
                &with_kid(r#""https://attacker.example/jwks.json#k1""#),
                BASELINE,
            ),
            Status::UnknownKey,
            unknown("https://attacker.example/jwks.json#k1"),
        ),
        case(
            "kid a file URL",
            signed(&with_kid(r#""file:///etc/ssl/private/key.pem""#), BASELINE),
            Status::UnknownKey,
            unknown("file:///etc/ssl/private/key.pem"),
        ),
        case(
            "kid with a NUL byte after the trusted kid",
            signed(&with_kid(&format!(r#""{kid}\u0000""#)), BASELINE),
            Status::UnknownKey,
            unknown(&format!("{kid}\\u{{0}}")), // control characters escaped in errors
        ),
        case(
            "kid with a trailing space",
            signed(&with_kid(&format!(r#""{kid} ""#)), BASELINE),
            Status::UnknownKey,
            unknown(&format!("{kid} ")),
        ),
        case(
            "kid upper-cased",
            signed(&with_kid(&format!(r#""{}""#, kid.to_uppercase())), BASELINE),
            Status::UnknownKey,
            unknown(&kid.to_uppercase()),
        ),
        case(
            "kid is the public key itself, not its thumbprint",
            signed(
                &with_kid(&format!(r#""{}""#, b64(trusted().public_key().to_bytes()))),
                BASELINE,
            ),
            Status::UnknownKey,
            unknown(&b64(trusted().public_key().to_bytes())),
        ),
        case(
            "kid a number",
            signed(&with_kid("42"), BASELINE),
            Status::Malformed,
            malformed(Error::MissingHeader("kid")),
        ),
        case(
            "kid null",
            signed(&with_kid("null"), BASELINE),
            Status::Malformed,
            malformed(Error::MissingHeader("kid")),
        ),
        case(
            "kid an array holding the trusted kid",
            signed(&with_kid(&format!(r#"["{kid}"]"#)), BASELINE),
            Status::Malformed,
            malformed(Error::MissingHeader("kid")),
        ),
    ];
    check(&verifier(), &cases);

    // With both keys trusted, each still verifies only its own signatures.
    let mut store = verifier().trust_store().clone();
    store.add(attacker().public_key().clone()).unwrap();
    let both = Verifier::for_any_product(store);
    check(
        &both,
        &[
            case(
                "second trusted key, own kid",
                sign_raw(TYP, &attacker(), None, BASELINE.as_bytes()),
                Status::Valid,
                Want::Valid,
            ),
            case(
                "signed by the second trusted key under the first one's kid",
                forged(&good_header(), BASELINE),
                Status::SignatureInvalid,
                Want::Error(Error::SignatureInvalid),
            ),
            case(
                "signed by the first trusted key under the second one's kid",
                signed(&header("EdDSA", &attacker_kid, TYP), BASELINE),
                Status::SignatureInvalid,
                Want::Error(Error::SignatureInvalid),
            ),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Header parameters
// ---------------------------------------------------------------------------------------------

#[test]
fn forbidden_and_unknown_header_parameters() {
    let kid = kid();
    let forbidden = |name: &str| malformed(Error::ForbiddenHeader(name.into()));
    // The attacker's own key, embedded so that a naive verifier would use it.
    let attacker_jwk = attacker().public_key().to_jwk().to_string();
    let jwk_header = format!(
        r#"{{"alg":"EdDSA","jwk":{attacker_jwk},"kid":"{}","typ":"{TYP}"}}"#,
        attacker_kid()
    );
    let jwk_with_trusted_kid =
        format!(r#"{{"alg":"EdDSA","jwk":{attacker_jwk},"kid":"{kid}","typ":"{TYP}"}}"#);

    let cases = [
        case(
            "crit",
            signed(&header_with(r#""crit":["exp"]"#), BASELINE),
            Status::Malformed,
            forbidden("crit"),
        ),
        case(
            "crit empty",
            signed(&header_with(r#""crit":[]"#), BASELINE),
            Status::Malformed,
            forbidden("crit"),
        ),
        case(
            "jwk: attacker key, attacker kid, attacker signature",
            forged(&jwk_header, BASELINE),
            Status::Malformed,
            forbidden("jwk"),
        ),
        case(
            "jwk: attacker key, trusted kid, attacker signature",
            forged(&jwk_with_trusted_kid, BASELINE),
            Status::Malformed,
            forbidden("jwk"),
        ),
        case(
            "jku",
            forged(
                &header_with(r#""jku":"https://attacker.example/jwks.json""#),
                BASELINE,
            ),
            Status::Malformed,
            forbidden("jku"),
        ),
        case(
            "x5u",
            forged(
                &header_with(r#""x5u":"https://attacker.example/cert.pem""#),
                BASELINE,
            ),
            Status::Malformed,
            forbidden("x5u"),
        ),
        case(
            "x5c",
            forged(
                &header_with(r#""x5c":["MIIBKjCB3aADAgECAgEBMAUGAytlcDAA"]"#),
                BASELINE,
            ),
            Status::Malformed,
            forbidden("x5c"),
        ),
        case(
            "x5t",
            signed(&header_with(r#""x5t":"AAAA""#), BASELINE),
            Status::Malformed,
            forbidden("x5t"),
        ),
        case(
            "x5t#S256",
            signed(&header_with(r##""x5t#S256":"AAAA""##), BASELINE),
            Status::Malformed,
            forbidden("x5t#S256"),
        ),
        case(
            "b64 false (unencoded payload)",
            signed(&header_with(r#""b64":false"#), BASELINE),
            Status::Malformed,
            forbidden("b64"),
        ),
        case(
            "b64 false with crit [b64] (first offender by name is reported)",
            signed(&header_with(r#""b64":false,"crit":["b64"]"#), BASELINE),
            Status::Malformed,
            forbidden("b64"),
        ),
        case(
            "zip",
            signed(&header_with(r#""zip":"DEF""#), BASELINE),
            Status::Malformed,
            forbidden("zip"),
        ),
        case(
            "enc",
            signed(&header_with(r#""enc":"A256GCM""#), BASELINE),
            Status::Malformed,
            forbidden("enc"),
        ),
        case(
            "cty",
            signed(&header_with(r#""cty":"JWT""#), BASELINE),
            Status::Malformed,
            forbidden("cty"),
        ),
        case(
            "unknown parameter",
            signed(&header_with(r#""foo":1"#), BASELINE),
            Status::Malformed,
            forbidden("foo"),
        ),
        case(
            "empty parameter name",
            signed(&header_with(r#""":1"#), BASELINE),
            Status::Malformed,
            forbidden(""),
        ),
        case(
            "unknown parameter with a null value",
            signed(&header_with(r#""x-debug":null"#), BASELINE),
            Status::Malformed,
            forbidden("x-debug"),
        ),
        case(
            "duplicate alg (EdDSA then none)",
            signed(
                &format!(r#"{{"alg":"EdDSA","alg":"none","kid":"{kid}","typ":"{TYP}"}}"#),
                BASELINE,
            ),
            Status::Malformed,
            Want::Json("header"),
        ),
        case(
            "duplicate alg (none then EdDSA)",
            signed(
                &format!(r#"{{"alg":"none","alg":"EdDSA","kid":"{kid}","typ":"{TYP}"}}"#),
                BASELINE,
            ),
            Status::Malformed,
            Want::Json("header"),
        ),
        case(
            "duplicate kid (trusted then attacker)",
            forged(
                &format!(
                    r#"{{"alg":"EdDSA","kid":"{kid}","kid":"{}","typ":"{TYP}"}}"#,
                    attacker_kid()
                ),
                BASELINE,
            ),
            Status::Malformed,
            Want::Json("header"),
        ),
        case(
            "duplicate typ",
            signed(
                &format!(r#"{{"alg":"EdDSA","kid":"{kid}","typ":"lease+jwt","typ":"{TYP}"}}"#),
                BASELINE,
            ),
            Status::Malformed,
            Want::Json("header"),
        ),
        case(
            "duplicate alg spelled with an escape",
            signed(
                &format!(r#"{{"alg":"none","\u0061lg":"EdDSA","kid":"{kid}","typ":"{TYP}"}}"#),
                BASELINE,
            ),
            Status::Malformed,
            Want::Json("header"),
        ),
        case(
            "header a JSON array",
            signed(&format!(r#"["EdDSA","{kid}","{TYP}"]"#), BASELINE),
            Status::Malformed,
            Want::Json("header"),
        ),
        case(
            "header null",
            signed("null", BASELINE),
            Status::Malformed,
            Want::Json("header"),
        ),
        case(
            "header empty",
            signed("", BASELINE),
            Status::Malformed,
            Want::Json("header"),
        ),
        case(
            "header with trailing garbage",
            signed(&format!("{}x", good_header()), BASELINE),
            Status::Malformed,
            Want::Json("header"),
        ),
        case(
            "header followed by a second object",
            signed(&format!("{}{{}}", good_header()), BASELINE),
            Status::Malformed,
            Want::Json("header"),
        ),
        case(
            "header with a UTF-8 byte order mark",
            signed(&format!("\u{feff}{}", good_header()), BASELINE),
            Status::Malformed,
            Want::Json("header"),
        ),
        case(
            "header not UTF-8",
            sign_raw(TYP, &trusted(), None, BASELINE.as_bytes()).replacen(
                &b64(good_header()),
                &b64([good_header().as_bytes(), b"\xff"].concat()),
                1,
            ),
            Status::Malformed,
            Want::Json("header"),
        ),
        case(
            "header with a lone surrogate",
            signed(&header_with(r#""x":"\ud800""#), BASELINE),
            Status::Malformed,
            Want::Json("header"),
        ),
        case(
            "header nested deeper than MAX_DEPTH",
            signed(
                &header_with(&format!(r#""x":{}"#, nested_objects(MAX_DEPTH))),
                BASELINE,
            ),
            Status::Malformed,
            Want::Json("header"),
        ),
        case(
            "header nested at MAX_DEPTH (parses, then refused by name)",
            signed(
                &header_with(&format!(r#""x":{}"#, nested_objects(MAX_DEPTH - 1))),
                BASELINE,
            ),
            Status::Malformed,
            forbidden("x"),
        ),
    ];
    check(&verifier(), &cases);
}

// ---------------------------------------------------------------------------------------------
// Duplicate claims
// ---------------------------------------------------------------------------------------------

#[test]
fn duplicate_claims_in_a_genuine_token() {
    let cases = [
        (
            "two sub",
            r#"{"iss":"https://x","sub":"lic_1","sub":"lic_2","aud":"p","iat":1767225600,"lic":{"model":"perpetual"}}"#,
        ),
        (
            "two sub, the second spelled with an escape",
            r#"{"iss":"https://x","sub":"lic_1","\u0073ub":"lic_2","aud":"p","iat":1767225600,"lic":{"model":"perpetual"}}"#,
        ),
        (
            "two exp, the later one larger",
            r#"{"iss":"https://x","sub":"lic_1","aud":"p","iat":1767225600,"exp":1798761600,"exp":4102444800,"lic":{"model":"subscription"}}"#,
        ),
        (
            "two aud",
            r#"{"iss":"https://x","sub":"lic_1","aud":"p","aud":"other","iat":1767225600,"lic":{"model":"perpetual"}}"#,
        ),
        (
            "two lic",
            r#"{"iss":"https://x","sub":"lic_1","aud":"p","iat":1767225600,"lic":{"model":"trial"},"lic":{"model":"perpetual"}}"#,
        ),
        (
            "two lic.model",
            r#"{"iss":"https://x","sub":"lic_1","aud":"p","iat":1767225600,"lic":{"model":"trial","model":"perpetual"}}"#,
        ),
        (
            "duplicate feature in lic.features",
            r#"{"iss":"https://x","sub":"lic_1","aud":"p","iat":1767225600,"lic":{"model":"perpetual","features":{"export":{"limit":1},"export":{"limit":1000}}}}"#,
        ),
        (
            "duplicate limit in lic.features.export",
            r#"{"iss":"https://x","sub":"lic_1","aud":"p","iat":1767225600,"lic":{"model":"perpetual","features":{"export":{"limit":1,"limit":1000}}}}"#,
        ),
        (
            "duplicate key deep in metadata arrays",
            r#"{"iss":"https://x","sub":"lic_1","aud":"p","iat":1767225600,"lic":{"model":"perpetual","metadata":{"a":[{"b":1,"b":2}]}}}"#,
        ),
    ];
    let cases: Vec<Case> = cases
        .into_iter()
        .map(|(name, payload)| {
            case(
                name,
                genuine(payload),
                Status::Malformed,
                Want::Json("payload"),
            )
        })
        .collect();
    check(&verifier(), &cases);

    // The refusal names the duplicate.
    let err = verifier().verify(&cases[0].token).unwrap_err();
    assert!(err.to_string().contains("duplicate key `sub`"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Base64url encoding of each segment
// ---------------------------------------------------------------------------------------------

#[test]
fn non_canonical_base64url() {
    // Segments chosen so that each alteration below is meaningful: the encodings end in a
    // character with unused bits, and the payload's contains a `-` or `_` (its standard-alphabet
    // encoding differs). An ASCII header cannot: only `>`, `?`, `~` and bytes >= 0x80 encode to
    // `-` or `_`, so the header gets `+` and `/` substituted instead.
    let header = spaced_until(&good_header(), has_unused_bits);
    let payload = spaced_until(&BASELINE.replace("https://x", "https://x/?a>b~"), |e| {
        has_unused_bits(e) && has_url_only_chars(e)
    });
    let token = signed(&header, &payload);
    let (h, p, s) = split(&token);
    assert!(
        has_url_only_chars(&s),
        "pick seeds whose signature has a `-` or `_`"
    );
    let v = verifier();
    assert!(v.verify(&token).is_ok(), "the control token must verify");

    let sig_bad = || Want::Error(Error::SignatureInvalid);
    let mut cases = Vec::new();
    type Alter = fn(&str) -> String;
    let alterations: [(&str, Alter); 9] = [
        ("'=' padding", padded),
        ("a newline inside", |s| inserted_mid(s, "\n")),
        ("CRLF inside", |s| inserted_mid(s, "\r\n")),
        ("a space inside", |s| inserted_mid(s, " ")),
        ("the same bytes in the standard alphabet", standard_alphabet),
        ("a '+' in place of a character", |s| replaced_mid(s, '+')),
        ("a '/' in place of a character", |s| replaced_mid(s, '/')),
        ("non-canonical trailing bits", non_canonical_tail),
        ("a percent-encoded character", |s| inserted_mid(s, "%41")),
    ];
    for (what, alter) in alterations {
        // The header is decoded before the signature is checked: refused as Base64 even when
        // the altered text is properly signed.
        if has_url_only_chars(&h) || !what.contains("standard alphabet") {
            let altered = alter(&h);
            cases.push(case(
                format!("header with {what}, signed as text"),
                sign_text(&TRUSTED_SEED, &format!("{altered}.{p}")),
                Status::Malformed,
                base64_error("header"),
            ));
        }
        // The payload text is covered by the signature: altering it breaks the signature...
        let altered = alter(&p);
        cases.push(case(
            format!("payload with {what}, original signature"),
            join(&h, &altered, &s),
            Status::SignatureInvalid,
            sig_bad(),
        ));
        // ...and an issuer that signed the altered text still gets a strict refusal.
        cases.push(case(
            format!("payload with {what}, signed as text"),
            sign_text(&TRUSTED_SEED, &format!("{h}.{altered}")),
            Status::Malformed,
            base64_error("payload"),
        ));
        cases.push(case(
            format!("signature with {what}"),
            join(&h, &p, &alter(&s)),
            Status::Malformed,
            base64_error("signature"),
        ));
    }
    cases.extend([
        case(
            "whole token with a trailing newline",
            format!("{token}\n"),
            Status::Malformed,
            base64_error("signature"),
        ),
        case(
            "whole token with a leading space",
            format!(" {token}"),
            Status::Malformed,
            base64_error("header"),
        ),
        case(
            "Bearer prefix",
            format!("Bearer {token}"),
            Status::Malformed,
            base64_error("header"),
        ),
    ]);
    check(&v, &cases);
}

// ---------------------------------------------------------------------------------------------
// Signature bytes
// ---------------------------------------------------------------------------------------------

/// The order of the Ed25519 group, little-endian.
const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// `S + L` in place of `S`: the same scalar mod L, so a verifier that does not demand a
/// canonical `S` accepts a second, different signature (malleability).
fn s_plus_l(signature: &[u8; 64]) -> [u8; 64] {
    let mut out = *signature;
    let mut carry = 0u16;
    for (i, l) in L.iter().enumerate() {
        let sum = u16::from(out[32 + i]) + u16::from(*l) + carry;
        out[32 + i] = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0, "S + L fits in 32 bytes since S < L < 2^253");
    out
}

#[test]
fn signature_tampering() {
    let token = genuine(BASELINE);
    let signature = signature_of(&token);
    let other = signature_of(&genuine(&claims(
        r#""lic":{"model":"perpetual"},"jti":"x""#,
    )));
    let sig_bad = || Want::Error(Error::SignatureInvalid);

    let mut flipped = signature;
    flipped[10] ^= 0x01;
    let mut high_bit = signature;
    high_bit[63] |= 0x80;
    let mut identity_r = signature;
    identity_r[..32].copy_from_slice(&{
        let mut r = [0u8; 32];
        r[0] = 1;
        r
    });
    let mut r_and_s_zero = [0u8; 64];
    r_and_s_zero[0] = 1;

    let cases = [
        case(
            "S + L",
            with_signature(&token, &s_plus_l(&signature)),
            Status::SignatureInvalid,
            sig_bad(),
        ),
        case(
            "S + L of another token's signature",
            with_signature(&token, &s_plus_l(&other)),
            Status::SignatureInvalid,
            sig_bad(),
        ),
        case(
            "one bit flipped in R",
            with_signature(&token, &flipped),
            Status::SignatureInvalid,
            sig_bad(),
        ),
        case(
            "top bit of S set",
            with_signature(&token, &high_bit),
            Status::SignatureInvalid,
            sig_bad(),
        ),
        case(
            "all zero",
            with_signature(&token, &[0u8; 64]),
            Status::SignatureInvalid,
            sig_bad(),
        ),
        case(
            "all 0xff",
            with_signature(&token, &[0xffu8; 64]),
            Status::SignatureInvalid,
            sig_bad(),
        ),
        case(
            "R = identity, S kept",
            with_signature(&token, &identity_r),
            Status::SignatureInvalid,
            sig_bad(),
        ),
        case(
            "R = identity, S = 0",
            with_signature(&token, &r_and_s_zero),
            Status::SignatureInvalid,
            sig_bad(),
        ),
        case(
            "signature of another token",
            with_signature(&token, &other),
            Status::SignatureInvalid,
            sig_bad(),
        ),
        case(
            "63 bytes",
            with_signature(&token, &signature[..63]),
            Status::Malformed,
            base64_error("signature"),
        ),
        case(
            "65 bytes",
            with_signature(&token, &[&signature[..], &[0]].concat()),
            Status::Malformed,
            base64_error("signature"),
        ),
        case(
            "128 bytes (signature twice)",
            with_signature(&token, &[signature, signature].concat()),
            Status::Malformed,
            base64_error("signature"),
        ),
        case(
            "empty",
            with_signature(&token, &[]),
            Status::Malformed,
            base64_error("signature"),
        ),
    ];
    check(&verifier(), &cases);
}

#[test]
fn payload_changed_after_signing() {
    let token = genuine(BASELINE);
    let (h, _, s) = split(&token);
    let changed = BASELINE.replace("lic_1", "lic_2");
    assert_eq!(changed.len(), BASELINE.len());
    let changed_b64 = b64(&changed);
    let upgraded = BASELINE.replace("perpetual", "subscription");

    let (_, p, _) = split(&token);
    let mut one_char = p.clone().into_bytes();
    one_char[5] = if one_char[5] == b'A' { b'B' } else { b'A' };
    let one_char = String::from_utf8(one_char).unwrap();

    let cases = [
        case(
            "one payload byte changed, original signature",
            join(&h, &changed_b64, &s),
            Status::SignatureInvalid,
            Want::Error(Error::SignatureInvalid),
        ),
        case(
            "one payload character changed, original signature",
            join(&h, &one_char, &s),
            Status::SignatureInvalid,
            Want::Error(Error::SignatureInvalid),
        ),
        case(
            "one payload byte changed, re-signed by the attacker under the trusted kid",
            forged(&good_header(), &changed),
            Status::SignatureInvalid,
            Want::Error(Error::SignatureInvalid),
        ),
        case(
            "model changed, original signature",
            join(&h, &b64(&upgraded), &s),
            Status::SignatureInvalid,
            Want::Error(Error::SignatureInvalid),
        ),
        case(
            "header of another genuine token spliced in",
            join(
                &split(&signed(&header("Ed25519", &kid(), TYP), BASELINE)).0,
                &p,
                &s,
            ),
            Status::SignatureInvalid,
            Want::Error(Error::SignatureInvalid),
        ),
        case(
            "one payload byte changed, re-signed by the trusted key (control: genuine)",
            genuine(&changed),
            Status::Valid,
            Want::Valid,
        ),
    ];
    check(&verifier(), &cases);
}

// ---------------------------------------------------------------------------------------------
// Structure
// ---------------------------------------------------------------------------------------------

#[test]
fn segment_structure() {
    let token = genuine(BASELINE);
    let (h, p, s) = split(&token);
    let count = |n| malformed(Error::SegmentCount(n));
    let cases = [
        case("empty string", "", Status::Malformed, count(1)),
        case("one segment", h.clone(), Status::Malformed, count(1)),
        case(
            "two segments",
            format!("{h}.{p}"),
            Status::Malformed,
            count(2),
        ),
        case(
            "four segments",
            format!("{token}.{s}"),
            Status::Malformed,
            count(4),
        ),
        case(
            "five segments (JWE shape)",
            format!("{h}.{p}.{p}.{p}.{s}"),
            Status::Malformed,
            count(5),
        ),
        case(
            "trailing dot",
            format!("{token}."),
            Status::Malformed,
            count(4),
        ),
        case(
            "leading dot",
            format!(".{token}"),
            Status::Malformed,
            count(4),
        ),
        case("a lone dot", ".", Status::Malformed, count(2)),
        case("two dots", "..", Status::Malformed, Want::Json("header")),
        case(
            "empty header",
            format!(".{p}.{s}"),
            Status::Malformed,
            Want::Json("header"),
        ),
        case(
            "empty payload, original signature",
            format!("{h}..{s}"),
            Status::SignatureInvalid,
            Want::Error(Error::SignatureInvalid),
        ),
        case(
            "empty payload, signed",
            signed(&good_header(), ""),
            Status::Malformed,
            Want::Json("payload"),
        ),
        case(
            "empty signature",
            format!("{h}.{p}."),
            Status::Malformed,
            base64_error("signature"),
        ),
        case(
            "JWS JSON serialization",
            format!(r#"{{"protected":"{h}","payload":"{p}","signature":"{s}"}}"#),
            Status::Malformed,
            count(1),
        ),
        case(
            "dots replaced by spaces",
            format!("{h} {p} {s}"),
            Status::Malformed,
            count(1),
        ),
    ];
    check(&verifier(), &cases);
}

// ---------------------------------------------------------------------------------------------
// Token type
// ---------------------------------------------------------------------------------------------

#[test]
fn token_type_confusion() {
    let kid = kid();
    let wrong = |found: &str| {
        Want::Error(Error::WrongTokenType {
            expected: TYP,
            found: found.into(),
        })
    };
    let cases = [
        case(
            "genuine lease+jwt",
            sign_raw("lease+jwt", &trusted(), None, BASELINE.as_bytes()),
            Status::WrongTokenType,
            wrong("lease+jwt"),
        ),
        case(
            "genuine JWT",
            signed(&header("EdDSA", &kid, "JWT"), BASELINE),
            Status::WrongTokenType,
            wrong("JWT"),
        ),
        case(
            "genuine license+JWT (case differs)",
            signed(&header("EdDSA", &kid, "license+JWT"), BASELINE),
            Status::WrongTokenType,
            wrong("license+JWT"),
        ),
        case(
            "genuine application/license+jwt",
            signed(&header("EdDSA", &kid, "application/license+jwt"), BASELINE),
            Status::WrongTokenType,
            wrong("application/license+jwt"),
        ),
        case(
            "genuine, typ empty",
            signed(&header("EdDSA", &kid, ""), BASELINE),
            Status::WrongTokenType,
            wrong(""),
        ),
        case(
            "genuine, typ missing (refused before the signature)",
            signed(&format!(r#"{{"alg":"EdDSA","kid":"{kid}"}}"#), BASELINE),
            Status::Malformed,
            malformed(Error::MissingHeader("typ")),
        ),
        case(
            "genuine, typ a number",
            signed(
                &format!(r#"{{"alg":"EdDSA","kid":"{kid}","typ":1}}"#),
                BASELINE,
            ),
            Status::Malformed,
            malformed(Error::MissingHeader("typ")),
        ),
        // WrongTokenType is only for genuine tokens: a forged one is a bad signature.
        case(
            "forged lease+jwt under the trusted kid",
            forged(&header("EdDSA", &kid, "lease+jwt"), BASELINE),
            Status::SignatureInvalid,
            Want::Error(Error::SignatureInvalid),
        ),
        case(
            "lease+jwt with the signature of a genuine license",
            join(
                &b64(header("EdDSA", &kid, "lease+jwt")),
                &b64(BASELINE),
                &split(&genuine(BASELINE)).2,
            ),
            Status::SignatureInvalid,
            Want::Error(Error::SignatureInvalid),
        ),
        case(
            "genuine lease+jwt with an unparsable payload (type is checked before the payload)",
            sign_raw("lease+jwt", &trusted(), None, b"[not json"),
            Status::WrongTokenType,
            wrong("lease+jwt"),
        ),
    ];
    check(&verifier(), &cases);
}

// ---------------------------------------------------------------------------------------------
// Payload JSON
// ---------------------------------------------------------------------------------------------

#[test]
fn payload_not_one_json_object() {
    let json = || Want::Json("payload");
    let cases = [
        case(
            "JSON array",
            genuine(&format!("[{BASELINE}]")),
            Status::Malformed,
            json(),
        ),
        case(
            "JSON string",
            genuine(r#""lic_1""#),
            Status::Malformed,
            json(),
        ),
        case("JSON null", genuine("null"), Status::Malformed, json()),
        case("JSON number", genuine("1"), Status::Malformed, json()),
        case(
            "not UTF-8",
            signed(&good_header(), [BASELINE.as_bytes(), b"\xff"].concat()),
            Status::Malformed,
            json(),
        ),
        case(
            "Latin-1 byte inside a string (sub \"lic\\xe91\")",
            signed(
                &good_header(),
                BASELINE
                    .bytes()
                    .map(|b| if b == b'_' { 0xe9 } else { b })
                    .collect::<Vec<u8>>(),
            ),
            Status::Malformed,
            json(),
        ),
        case(
            "trailing garbage",
            genuine(&format!("{BASELINE}x")),
            Status::Malformed,
            json(),
        ),
        case(
            "trailing NUL",
            genuine(&format!("{BASELINE}\0")),
            Status::Malformed,
            json(),
        ),
        case(
            "two objects",
            genuine(&format!("{BASELINE}{BASELINE}")),
            Status::Malformed,
            json(),
        ),
        case(
            "byte order mark",
            genuine(&format!("\u{feff}{BASELINE}")),
            Status::Malformed,
            json(),
        ),
        case(
            "truncated",
            genuine(&BASELINE[..BASELINE.len() - 1]),
            Status::Malformed,
            json(),
        ),
        case("empty", genuine(""), Status::Malformed, json()),
        case(
            "lone surrogate",
            genuine(&BASELINE.replace("lic_1", r"lic_\ud800")),
            Status::Malformed,
            json(),
        ),
        case(
            "single quotes",
            genuine(&BASELINE.replace('"', "'")),
            Status::Malformed,
            json(),
        ),
        case(
            "comment",
            genuine(&format!("/* x */{BASELINE}")),
            Status::Malformed,
            json(),
        ),
        case(
            "trailing comma",
            genuine(&BASELINE.replace(r#""lic_1","#, r#""lic_1",,"#)),
            Status::Malformed,
            json(),
        ),
        case(
            "NaN timestamp",
            genuine(&BASELINE.replace("1767225600", "NaN")),
            Status::Malformed,
            json(),
        ),
        case(
            "trailing whitespace (control: allowed by JSON)",
            genuine(&format!("{BASELINE} \n")),
            Status::Valid,
            Want::Valid,
        ),
    ];
    check(&verifier(), &cases);
}

// ---------------------------------------------------------------------------------------------
// Size
// ---------------------------------------------------------------------------------------------

/// A genuine token exactly `len` bytes long, padded with insignificant whitespace in the header
/// JSON and a metadata string in the payload.
fn genuine_of_len(len: usize) -> String {
    for spaces in 0..3 {
        let header = format!("{{{}{}", " ".repeat(spaces), &good_header()[1..]);
        let base = signed(&header, with_metadata(r#"{"pad":""}"#)).len();
        // Each 3 payload bytes add 4 characters; search around the estimate.
        let estimate = (len.saturating_sub(base)) * 3 / 4;
        for pad in estimate.saturating_sub(4)..estimate + 4 {
            let payload = with_metadata(&format!(r#"{{"pad":"{}"}}"#, "a".repeat(pad)));
            let token = signed(&header, payload);
            if token.len() == len {
                return token;
            }
        }
    }
    panic!("no genuine token of {len} bytes");
}

#[test]
fn size_cap_is_checked_before_decoding() {
    let v = verifier();
    let too_large = |len| {
        malformed(Error::TooLarge {
            len,
            max: MAX_TOKEN_BYTES,
        })
    };

    // At the cap a genuine token is accepted.
    let at_cap = genuine_of_len(MAX_TOKEN_BYTES);
    assert_eq!(at_cap.len(), MAX_TOKEN_BYTES);
    assert!(v.verify(&at_cap).is_ok());
    let just_over = genuine_of_len(MAX_TOKEN_BYTES + 1);

    let garbage = |n| "!".repeat(n);
    let cases = [
        case(
            "genuine, exactly MAX_TOKEN_BYTES",
            at_cap.clone(),
            Status::Valid,
            Want::Valid,
        ),
        case(
            "genuine, MAX_TOKEN_BYTES + 1",
            just_over,
            Status::Malformed,
            too_large(MAX_TOKEN_BYTES + 1),
        ),
        // Garbage at the cap is decoded (and fails on structure); one byte more is refused on
        // size alone, without being looked at.
        case(
            "garbage, exactly MAX_TOKEN_BYTES",
            garbage(MAX_TOKEN_BYTES),
            Status::Malformed,
            malformed(Error::SegmentCount(1)),
        ),
        case(
            "garbage, MAX_TOKEN_BYTES + 1",
            garbage(MAX_TOKEN_BYTES + 1),
            Status::Malformed,
            too_large(MAX_TOKEN_BYTES + 1),
        ),
        case(
            "dots only, MAX_TOKEN_BYTES + 1",
            ".".repeat(MAX_TOKEN_BYTES + 1),
            Status::Malformed,
            too_large(MAX_TOKEN_BYTES + 1),
        ),
        case(
            "genuine at the cap with a byte changed",
            {
                let mut t = at_cap.into_bytes();
                t[MAX_TOKEN_BYTES / 2] = if t[MAX_TOKEN_BYTES / 2] == b'A' {
                    b'B'
                } else {
                    b'A'
                };
                String::from_utf8(t).unwrap()
            },
            Status::SignatureInvalid,
            Want::Error(Error::SignatureInvalid),
        ),
        // The cap is in bytes, not characters.
        case(
            "two-byte characters, MAX_TOKEN_BYTES bytes",
            "é".repeat(MAX_TOKEN_BYTES / 2),
            Status::Malformed,
            malformed(Error::SegmentCount(1)),
        ),
        case(
            "two-byte characters, MAX_TOKEN_BYTES + 2 bytes",
            "é".repeat(MAX_TOKEN_BYTES / 2 + 1),
            Status::Malformed,
            too_large(MAX_TOKEN_BYTES + 2),
        ),
        // Far over the cap, including over the segment-count path.
        case(
            "10 MiB of dots",
            ".".repeat(10 << 20),
            Status::Malformed,
            too_large(10 << 20),
        ),
    ];
    check(&v, &cases);

    // decode_unverified has the same cap.
    assert_eq!(
        decode_unverified(&garbage(MAX_TOKEN_BYTES + 1)).unwrap_err(),
        Error::TooLarge {
            len: MAX_TOKEN_BYTES + 1,
            max: MAX_TOKEN_BYTES
        }
    );
    assert_eq!(
        decode_unverified(&garbage(MAX_TOKEN_BYTES)).unwrap_err(),
        Error::SegmentCount(1)
    );
}

// ---------------------------------------------------------------------------------------------
// Nesting
// ---------------------------------------------------------------------------------------------

#[test]
fn nesting_depth() {
    // Top-level object is depth 1, `lic` 2, `lic.metadata` 3: metadata holding `n` more levels
    // reaches depth 3 + n - 1.
    let metadata_reaching = |depth: usize| with_metadata(&nested_objects(depth - 2));
    let arrays_reaching = |depth: usize| {
        let n = depth - 3;
        with_metadata(&format!(r#"{{"a":{}{}}}"#, "[".repeat(n), "]".repeat(n)))
    };
    let huge = format!(r#"{{"a":{}{}}}"#, "[".repeat(20_000), "]".repeat(20_000));
    let cases = [
        case(
            "objects at MAX_DEPTH",
            genuine(&metadata_reaching(MAX_DEPTH)),
            Status::Valid,
            Want::Valid,
        ),
        case(
            "objects at MAX_DEPTH + 1",
            genuine(&metadata_reaching(MAX_DEPTH + 1)),
            Status::Malformed,
            Want::Json("payload"),
        ),
        case(
            "arrays at MAX_DEPTH",
            genuine(&arrays_reaching(MAX_DEPTH)),
            Status::Valid,
            Want::Valid,
        ),
        case(
            "arrays at MAX_DEPTH + 1",
            genuine(&arrays_reaching(MAX_DEPTH + 1)),
            Status::Malformed,
            Want::Json("payload"),
        ),
        case(
            "20 000 nested arrays in the payload",
            genuine(&huge),
            Status::Malformed,
            Want::Json("payload"),
        ),
        case(
            "20 000 nested arrays in the header",
            signed(&huge, BASELINE),
            Status::Malformed,
            Want::Json("header"),
        ),
    ];
    check(&verifier(), &cases);
}

// ---------------------------------------------------------------------------------------------
// Claims schema
// ---------------------------------------------------------------------------------------------

#[test]
fn claims_schema_violations_name_the_field() {
    let table: &[(&str, String, &str)] = &[
        ("perpetual with exp", claims(r#""exp":1798761600,"lic":{"model":"perpetual"}"#), "exp"),
        ("trial with grace_period", claims(r#""exp":1798761600,"lic":{"model":"trial","grace_period":86400}"#), "lic.grace_period"),
        ("subscription without exp", claims(r#""lic":{"model":"subscription"}"#), "exp"),
        ("trial without exp", claims(r#""lic":{"model":"trial"}"#), "exp"),
        ("floating without seats", claims(r#""lic":{"model":"floating"}"#), "lic.seats"),
        ("floating with 0 seats", claims(r#""lic":{"model":"floating","seats":0}"#), "lic.seats"),
        ("floating with negative seats", claims(r#""lic":{"model":"floating","seats":-1}"#), "lic.seats"),
        ("floating with 2^32 seats", claims(r#""lic":{"model":"floating","seats":4294967296}"#), "lic.seats"),
        ("node_locked without node_lock", claims(r#""lic":{"model":"node_locked"}"#), "lic.node_lock"),
        (
            "node_locked binding no machine",
            claims(r#""lic":{"model":"node_locked","node_lock":{"fingerprints":[]}}"#),
            "lic.node_lock.fingerprints",
        ),
        (
            "node_locked with an empty fingerprint id",
            claims(r#""lic":{"model":"node_locked","node_lock":{"fingerprints":[{"id":""}]}}"#),
            "lic.node_lock.fingerprints[0].id",
        ),
        (
            "node_locked with min_matching 0",
            claims(r#""lic":{"model":"node_locked","node_lock":{"fingerprints":[{"id":"m","components":{"cpu":"h"}}],"match":{"min_matching":0}}}"#),
            "lic.node_lock.match.min_matching",
        ),
        ("site without site", claims(r#""lic":{"model":"site"}"#), "lic.site"),
        (
            "site restriction allowing nothing",
            claims(r#""lic":{"model":"site","site":{"restrictions":{"country":[]}}}"#),
            "lic.site.restrictions.country",
        ),
        ("unknown model", claims(r#""lic":{"model":"lifetime"}"#), "lic.model"),
        ("model upper case", claims(r#""lic":{"model":"Perpetual"}"#), "lic.model"),
        ("model a number", claims(r#""lic":{"model":0}"#), "lic.model"),
        (
            "model as a serde externally tagged map",
            claims(r#""lic":{"model":{"perpetual":null}}"#),
            "lic.model",
        ),
        (
            "negative feature limit",
            claims(r#""lic":{"model":"perpetual","features":{"export":{"limit":-1}}}"#),
            "lic.features.export.limit",
        ),
        (
            "fractional feature limit",
            claims(r#""lic":{"model":"perpetual","features":{"export":{"limit":1.5}}}"#),
            "lic.features.export.limit",
        ),
        (
            "negative feature exp",
            claims(r#""lic":{"model":"perpetual","features":{"export":{"exp":-1}}}"#),
            "lic.features.export.exp",
        ),
        (
            "empty feature name",
            claims(r#""lic":{"model":"perpetual","features":{"":{}}}"#),
            "lic.features",
        ),
        ("grace without exp", claims(r#""lic":{"model":"perpetual","grace_period":60}"#), "lic.grace_period"),
        (
            "negative grace",
            claims(r#""exp":1798761600,"lic":{"model":"subscription","grace_period":-1}"#),
            "lic.grace_period",
        ),
        ("empty version rule", claims(r#""lic":{"model":"perpetual","version":{}}"#), "lic.version"),
        ("invalid semver requirement", claims(r#""lic":{"model":"perpetual","version":{"req":"~~1"}}"#), "lic.version.req"),
        (
            "negative maintenance_until",
            claims(r#""lic":{"model":"perpetual","version":{"maintenance_until":-5}}"#),
            "lic.version.maintenance_until",
        ),
        ("metadata not an object", claims(r#""lic":{"model":"perpetual","metadata":[1]}"#), "lic.metadata"),
        ("lic not an object", claims(r#""lic":"perpetual""#), "lic"),
        (
            "empty sub",
            r#"{"iss":"https://x","sub":"","aud":"p","iat":1767225600,"lic":{"model":"perpetual"}}"#.into(),
            "sub",
        ),
        (
            "empty iss",
            r#"{"iss":"","sub":"lic_1","aud":"p","iat":1767225600,"lic":{"model":"perpetual"}}"#.into(),
            "iss",
        ),
        (
            "sub a number",
            r#"{"iss":"https://x","sub":1,"aud":"p","iat":1767225600,"lic":{"model":"perpetual"}}"#.into(),
            "sub",
        ),
        ("aud empty array", BASELINE.replace(r#""aud":"p""#, r#""aud":[]"#), "aud"),
        ("aud empty string", BASELINE.replace(r#""aud":"p""#, r#""aud":"""#), "aud"),
        ("aud holding an empty string", BASELINE.replace(r#""aud":"p""#, r#""aud":["p",""]"#), "aud"),
        ("aud a number", BASELINE.replace(r#""aud":"p""#, r#""aud":7"#), "aud"),
        ("exp equal to nbf", claims(r#""nbf":1798761600,"exp":1798761600,"lic":{"model":"subscription"}"#), "exp"),
        ("exp before nbf", claims(r#""nbf":1798761600,"exp":1798761599,"lic":{"model":"subscription"}"#), "exp"),
        ("negative iat", BASELINE.replace("1767225600", "-1"), "iat"),
        ("negative nbf", claims(r#""nbf":-1,"lic":{"model":"perpetual"}"#), "nbf"),
        ("negative exp", claims(r#""exp":-1,"lic":{"model":"subscription"}"#), "exp"),
        ("exp after year 9999", claims(r#""exp":253402300800,"lic":{"model":"subscription"}"#), "exp"),
        ("iat beyond i64", BASELINE.replace("1767225600", "9223372036854775808"), "iat"),
        ("iat fractional", BASELINE.replace("1767225600", "1767225600.5"), "iat"),
        ("iat in exponent form", BASELINE.replace("1767225600", "1.7672256e9"), "iat"),
        ("iat a string", BASELINE.replace("1767225600", r#""1767225600""#), "iat"),
        ("exp null", claims(r#""exp":null,"lic":{"model":"subscription"}"#), "exp"),
    ];
    let cases: Vec<Case> = table
        .iter()
        .map(|(name, payload, field)| {
            case(
                *name,
                genuine(payload),
                Status::InvalidClaims,
                Want::Claim(field),
            )
        })
        .collect();
    check(&verifier(), &cases);
}

/// `null` is not a value of any claim type (`docs/FORMAT.md` 5.5: a payload is valid when it has
/// the types of 5.1 - 5.4; `docs/license.schema.json` has no `null` anywhere), optional members
/// included: "absent" is written by omitting the member.
#[test]
fn null_claim_values() {
    let invalid = Status::InvalidClaims;
    let cases = [
        case(
            "exp null on a perpetual license",
            genuine(&claims(r#""exp":null,"lic":{"model":"perpetual"}"#)),
            invalid,
            Want::Claim("exp"),
        ),
        case(
            "nbf null",
            genuine(&claims(r#""nbf":null,"lic":{"model":"perpetual"}"#)),
            invalid,
            Want::Claim("nbf"),
        ),
        case(
            "jti null",
            genuine(&claims(r#""jti":null,"lic":{"model":"perpetual"}"#)),
            invalid,
            Want::Claim("jti"),
        ),
        case(
            "lic.grace_period null",
            genuine(&claims(
                r#""lic":{"model":"perpetual","grace_period":null}"#,
            )),
            invalid,
            Want::Claim("lic.grace_period"),
        ),
        case(
            "lic.version null",
            genuine(&claims(r#""lic":{"model":"perpetual","version":null}"#)),
            invalid,
            Want::Claim("lic.version"),
        ),
        case(
            "lic.customer.name null",
            genuine(&claims(
                r#""lic":{"model":"perpetual","customer":{"name":null}}"#,
            )),
            invalid,
            Want::Claim("lic.customer.name"),
        ),
        case(
            "lic.features.export.limit null",
            genuine(&claims(
                r#""lic":{"model":"perpetual","features":{"export":{"limit":null}}}"#,
            )),
            invalid,
            Want::Claim("lic.features.export.limit"),
        ),
        case(
            "exp null on a subscription (refused, as exp is required)",
            genuine(&claims(r#""exp":null,"lic":{"model":"subscription"}"#)),
            invalid,
            Want::Claim("exp"),
        ),
        case(
            "lic.features null",
            genuine(&claims(r#""lic":{"model":"perpetual","features":null}"#)),
            invalid,
            Want::Claim("lic.features"),
        ),
        case(
            "lic.site.restrictions null",
            genuine(&claims(
                r#""lic":{"model":"site","site":{"restrictions":null}}"#,
            )),
            invalid,
            Want::Claim("lic.site.restrictions"),
        ),
        case(
            "lic.node_lock.allow_virtual null",
            genuine(&claims(
                r#""lic":{"model":"node_locked","node_lock":{"fingerprints":[{"id":"m"}],"allow_virtual":null}}"#,
            )),
            invalid,
            Want::Claim("lic.node_lock.allow_virtual"),
        ),
        case(
            "sub null",
            genuine(&BASELINE.replace(r#""lic_1""#, "null")),
            invalid,
            Want::Claim("sub"),
        ),
    ];
    check(&verifier(), &cases);
}

#[test]
fn missing_claims_are_invalid_claims() {
    // serde reports a missing field at the path of the object that lacks it.
    let v = verifier();
    for (name, payload) in [
        ("no iss", BASELINE.replace(r#""iss":"https://x","#, "")),
        ("no lic", claims(r#""jti":"j""#)),
        ("no lic.model", claims(r#""lic":{}"#)),
        ("empty object", "{}".to_owned()),
    ] {
        let err = v.verify(&genuine(&payload)).unwrap_err();
        assert_eq!(err.status(), Status::InvalidClaims, "{name}: {err}");
        assert!(err.to_string().contains("missing field"), "{name}: {err}");
    }
}

// ---------------------------------------------------------------------------------------------
// Product
// ---------------------------------------------------------------------------------------------

#[test]
fn product_mismatch() {
    let store = verifier().trust_store().clone();
    let for_p = Verifier::new(store.clone(), "p");
    let for_other = Verifier::new(store, "other");
    let mismatch = |found: &[&str]| {
        Want::Error(Error::ProductMismatch {
            expected: "other".into(),
            found: found.iter().map(|s| s.to_string()).collect(),
        })
    };
    check(
        &for_p,
        &[case("for p", genuine(BASELINE), Status::Valid, Want::Valid)],
    );
    check(
        &for_other,
        &[
            case(
                "aud p",
                genuine(BASELINE),
                Status::ProductMismatch,
                mismatch(&["p"]),
            ),
            case(
                "aud [a, b]",
                genuine(&BASELINE.replace(r#""aud":"p""#, r#""aud":["a","b"]"#)),
                Status::ProductMismatch,
                mismatch(&["a", "b"]),
            ),
            case(
                "aud differs in case",
                genuine(&BASELINE.replace(r#""aud":"p""#, r#""aud":"Other""#)),
                Status::ProductMismatch,
                mismatch(&["Other"]),
            ),
            case(
                "aud with a trailing space",
                genuine(&BASELINE.replace(r#""aud":"p""#, r#""aud":"other ""#)),
                Status::ProductMismatch,
                mismatch(&["other "]),
            ),
            case(
                "aud a prefix",
                genuine(&BASELINE.replace(r#""aud":"p""#, r#""aud":"othe""#)),
                Status::ProductMismatch,
                mismatch(&["othe"]),
            ),
            case(
                "aud [p, other] (control)",
                genuine(&BASELINE.replace(r#""aud":"p""#, r#""aud":["p","other"]"#)),
                Status::Valid,
                Want::Valid,
            ),
            // Invalid claims are reported before the product.
            case(
                "aud other but claims invalid",
                genuine(
                    &claims(r#""lic":{"model":"lifetime"}"#)
                        .replace(r#""aud":"p""#, r#""aud":"other""#),
                ),
                Status::InvalidClaims,
                Want::Claim("lic.model"),
            ),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Weak keys
// ---------------------------------------------------------------------------------------------

#[test]
fn weak_key_is_never_trusted() {
    // The identity point as a public key with the signature (R = identity, S = 0) verifies
    // *any* message under the cofactorless equation [S]B = R + [k]A: 0 = 0 + 0.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let mut signature = [0u8; 64];
    signature[0] = 1;
    let message = b"any message at all";

    // The danger, shown with dalek directly: plain verification accepts it, strict does not.
    let lax = ed25519_dalek::VerifyingKey::from_bytes(&identity).unwrap();
    let forged_signature = ed25519_dalek::Signature::from_bytes(&signature);
    assert!(ed25519_dalek::Verifier::verify(&lax, message, &forged_signature).is_ok());
    assert!(lax.verify_strict(message, &forged_signature).is_err());

    // The key cannot enter a trust store, by any route.
    assert_eq!(PublicKey::from_bytes(&identity), Err(KeyError::Weak));
    let jwk = format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{}"}}"#, b64(identity));
    assert_eq!(PublicKey::from_jwk_json(&jwk), Err(KeyError::Weak));
    assert_eq!(
        TrustStore::from_document(&format!(r#"{{"keys":[{jwk}]}}"#)).unwrap_err(),
        KeyError::Weak
    );
    // The other small-order points too: (0, -1) of order 2.
    let mut order_two = [0xffu8; 32];
    order_two[0] = 0xec;
    order_two[31] = 0x7f;
    assert_eq!(PublicKey::from_bytes(&order_two), Err(KeyError::Weak));

    // The raw verification entry point refuses it as a bad signature.
    assert_eq!(
        verify_ed25519(&identity, message, &signature),
        Err(Error::SignatureInvalid)
    );

    // A token "signed" that way, naming the weak key's kid, names an unknown key; naming the
    // trusted kid, a bad signature.
    let weak_kid = thumbprint(&identity);
    let input = format!("{}.{}", b64(header("EdDSA", &weak_kid, TYP)), b64(BASELINE));
    let trusted_input = format!("{}.{}", b64(good_header()), b64(BASELINE));
    check(
        &verifier(),
        &[
            case(
                "weak key's kid",
                format!("{input}.{}", b64(signature)),
                Status::UnknownKey,
                Want::Error(Error::UnknownKey(weak_kid.clone())),
            ),
            case(
                "trusted kid, weak-key signature",
                format!("{trusted_input}.{}", b64(signature)),
                Status::SignatureInvalid,
                Want::Error(Error::SignatureInvalid),
            ),
        ],
    );
}

#[test]
fn attacker_chosen_header_text_is_escaped_and_capped_in_errors() {
    let key = licensing_core::PrivateKey::from_seed(&[42u8; 32]).unwrap();
    let mut store = licensing_core::TrustStore::new();
    store.add(key.public_key().clone()).unwrap();
    let verifier = licensing_core::Verifier::for_any_product(store);
    let kid = format!("evil\n\u{1b}[31m{}", "k".repeat(500));
    let header = serde_json::json!({"alg": "EdDSA", "kid": kid, "typ": "license+jwt"}).to_string();
    let token = licensing_core::sign_raw("license+jwt", &key, Some(&header), b"{}");
    let verdict = verifier.check(&token, &licensing_core::Context::at(0));
    assert_eq!(verdict.status, licensing_core::Status::UnknownKey);
    assert!(
        !verdict.reason.contains('\n') && !verdict.reason.contains('\u{1b}'),
        "{}",
        verdict.reason
    );
    assert!(verdict.reason.len() < 200, "{}", verdict.reason);
}
