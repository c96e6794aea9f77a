//! JWS compact serialization (RFC 7515) restricted to Ed25519 (RFC 8037) and this profile:
//! verification only. Signing lives in `issuer.rs` (feature `issuer`), so this module
//! imports nothing from the issuer side.
//!
//! Hand-written rather than taken from a JOSE crate: the general crates accept algorithms,
//! header parameters and encodings this profile must refuse, and none offers `verify_strict`
//! with weak-key refusal; the code here is only the strict subset.

use std::borrow::Cow;

use serde::Deserialize;

use crate::b64;
use crate::error::Error;
use crate::keys::TrustStore;
use crate::strict_json;

/// Largest token accepted, checked before anything is decoded.
pub const MAX_TOKEN_BYTES: usize = 64 * 1024;

/// U+FEFF, which editors (Notepad, PowerShell's `Out-File`) may write at the start of a text
/// file: named in the error rather than reported as bad base64url.
const BYTE_ORDER_MARK: char = '\u{feff}';

/// The `typ` of each token kind. A genuine token of one kind is refused as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A license (`license+jwt`).
    License,
    /// A machine activation issued by a licensing server (`machine+jwt`).
    Machine,
    /// A signed licensing-server response, e.g. to an online validation (`response+jwt`).
    Response,
    /// A floating-license seat lease granted by a licensing server (`lease+jwt`).
    Lease,
    /// An OAuth 2.0 access token of a licensing server's admin API (`at+jwt`, RFC 9068).
    Access,
    /// A signed checkpoint of a licensing server's audit chain (`audit-checkpoint+jwt`, see
    /// [`crate::audit_checkpoint`]).
    AuditCheckpoint,
}

impl TokenKind {
    /// The exact `typ` header value.
    pub const fn typ(self) -> &'static str {
        match self {
            TokenKind::License => "license+jwt",
            TokenKind::Machine => "machine+jwt",
            TokenKind::Response => "response+jwt",
            TokenKind::Lease => "lease+jwt",
            TokenKind::Access => "at+jwt",
            TokenKind::AuditCheckpoint => "audit-checkpoint+jwt",
        }
    }
}

/// A token whose signature, header and `typ` verified, with its payload as a strict JSON object.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedToken {
    /// The kid of the key that verified it.
    pub kid: String,
    /// The payload: one JSON object, duplicate names and excess nesting already refused.
    pub claims: serde_json::Map<String, serde_json::Value>,
}

/// Verifies `token` as a genuine `kind` token signed by a key in `store`, with the same strict
/// procedure as licenses (size, structure, header, algorithm, key by kid, `verify_strict`, then
/// `typ`), and returns its payload. The claims are not interpreted: for licenses use
/// [`crate::Verifier`], which also validates the license claims and the product.
pub fn verify_token(
    token: &str,
    kind: TokenKind,
    store: &TrustStore,
) -> Result<VerifiedToken, Error> {
    let jws = verify_signature(token, kind, store)?;
    let claims = match strict_json::from_slice(&jws.payload) {
        Ok(claims) => claims,
        // Refused in one pass: the two passes accept it or name the problem.
        Err(_) => {
            check_payload(&jws.payload)?;
            serde_json::from_slice(&jws.payload).map_err(|e| Error::Json {
                segment: "payload",
                detail: e.to_string(),
            })?
        }
    };
    Ok(VerifiedToken {
        kid: jws.kid,
        claims,
    })
}

/// Header parameters refused outright: they ask the verifier to trust or fetch key material
/// named by the token, or to change how the token is processed.
const FORBIDDEN_HEADERS: [&str; 10] = [
    "crit", "jwk", "jku", "x5u", "x5c", "x5t", "x5t#S256", "b64", "zip", "enc",
];

/// Header parameters this profile understands. Anything else is refused too: a profile this
/// narrow has no optional parameters to ignore.
const ALLOWED_HEADERS: [&str; 3] = ["alg", "kid", "typ"];

/// A token whose signature verified under a trusted key.
#[derive(Debug)]
pub(crate) struct VerifiedJws {
    /// The kid of the key that verified it.
    pub kid: String,
    /// The decoded payload. Not yet checked to be strict JSON: the caller parses it with
    /// [`strict_json::from_slice`] and, when that refuses, runs [`check_payload`] first.
    pub payload: Vec<u8>,
}

/// Verifies `token` as a `kind` token signed by a key in `store`, all but the payload's JSON.
///
/// Order matters: structure, then algorithm and key, then the signature, and only then the
/// type, so [`Error::WrongTokenType`] always means a genuine token of another kind. The payload
/// is then parsed by the caller in one strict pass ([`strict_json::from_slice`]), and only if
/// that refuses it is checked apart ([`check_payload`]) to name the problem: a genuine token
/// is read once, not pre-checked and then read.
pub(crate) fn verify_signature(
    token: &str,
    kind: TokenKind,
    store: &TrustStore,
) -> Result<VerifiedJws, Error> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Error::TooLarge {
            len: token.len(),
            max: MAX_TOKEN_BYTES,
        });
    }
    if token.starts_with(BYTE_ORDER_MARK) {
        return Err(Error::ByteOrderMark);
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Error::SegmentCount(token.split('.').count()));
    };

    let header_bytes = b64::decode(header_b64).ok_or(Error::Base64 { segment: "header" })?;
    let header = match typical_header(&header_bytes) {
        Some(header) => header,
        None => checked_header(&header_bytes)?,
    };
    let (kid, typ) = (header.kid.as_ref(), header.typ.as_ref());
    let key = store
        .get(kid)
        .ok_or_else(|| Error::UnknownKey(untrusted(kid)))?;

    let signature_bytes = b64::decode_array::<64>(signature_b64).ok_or(Error::Base64 {
        segment: "signature",
    })?;
    let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
    key.verify(signing_input.as_bytes(), &signature_bytes)?;

    if typ != kind.typ() {
        return Err(Error::WrongTokenType {
            expected: kind.typ(),
            found: untrusted(typ),
        });
    }
    let payload = b64::decode(payload_b64).ok_or(Error::Base64 { segment: "payload" })?;
    Ok(VerifiedJws {
        kid: kid.to_owned(),
        payload,
    })
}

/// The strict pre-pass over a verified payload (one JSON object, no duplicate names, depth
/// cap), for a payload the one-pass parsing refused: its error names the JSON problem.
pub(crate) fn check_payload(payload: &[u8]) -> Result<(), Error> {
    strict_json::check_object(payload).map_err(|detail| Error::Json {
        segment: "payload",
        detail,
    })
}

/// A protected header that passed every check: `alg` is EdDSA or Ed25519, and nothing but
/// `alg`, `kid` and `typ` is present.
struct Header<'a> {
    kid: Cow<'a, str>,
    typ: Cow<'a, str>,
}

/// The fast path for the header every genuine token has: one JSON object of exactly the three
/// string members `alg`, `kid`, `typ`, read in one typed pass that refuses any other member
/// and a repeated one (serde's derive does both), so it accepts exactly what
/// [`checked_header`] accepts. Anything else (`None`) goes through [`checked_header`], which
/// names the problem.
fn typical_header(bytes: &[u8]) -> Option<Header<'_>> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Typical<'a> {
        #[serde(borrow)]
        alg: Cow<'a, str>,
        #[serde(borrow)]
        kid: Cow<'a, str>,
        #[serde(borrow)]
        typ: Cow<'a, str>,
    }
    // serde's derive also reads a struct from a JSON array: only an object takes this path.
    if bytes.first() != Some(&b'{') {
        return None;
    }
    let typical: Typical<'_> = serde_json::from_slice(bytes).ok()?;
    matches!(typical.alg.as_ref(), "EdDSA" | "Ed25519").then_some(Header {
        kid: typical.kid,
        typ: typical.typ,
    })
}

/// Every check of the protected header, each refusal with its own error: one strict JSON
/// object (no duplicate names), no member outside `alg`, `kid`, `typ` (named, the forbidden
/// ones first), `alg` EdDSA or Ed25519, `kid` and `typ` strings.
fn checked_header(bytes: &[u8]) -> Result<Header<'static>, Error> {
    strict_json::check_object(bytes).map_err(|detail| Error::Json {
        segment: "header",
        detail,
    })?;
    let mut header_map: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(bytes)
        .map_err(|e| Error::Json {
            segment: "header",
            detail: e.to_string(),
        })?;
    if let Some(name) = header_map
        .keys()
        .find(|k| FORBIDDEN_HEADERS.contains(&k.as_str()) || !ALLOWED_HEADERS.contains(&k.as_str()))
    {
        return Err(Error::ForbiddenHeader(untrusted(name)));
    }
    let alg = header_map.get("alg").ok_or(Error::MissingHeader("alg"))?;
    match alg.as_str() {
        Some("EdDSA" | "Ed25519") => {}
        Some(other) => return Err(Error::UnsupportedAlgorithm(untrusted(other))),
        None => return Err(Error::UnsupportedAlgorithm(untrusted(&alg.to_string()))),
    }
    let Some(serde_json::Value::String(kid)) = header_map.remove("kid") else {
        return Err(Error::MissingHeader("kid"));
    };
    let Some(serde_json::Value::String(typ)) = header_map.remove("typ") else {
        return Err(Error::MissingHeader("typ"));
    };
    Ok(Header {
        kid: Cow::Owned(kid),
        typ: Cow::Owned(typ),
    })
}

/// Header text an attacker chose, made safe for messages and logs: control characters
/// escaped, at most 64 characters kept.
fn untrusted(text: &str) -> String {
    const KEEP: usize = 64;
    let mut shown = String::new();
    for c in text.chars().take(KEEP) {
        if c.is_control() {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    if text.chars().nth(KEEP).is_some() {
        shown.push('…');
    }
    shown
}

/// Decodes a token's header and payload without verifying anything (for `inspect`).
pub fn decode_unverified(token: &str) -> Result<(serde_json::Value, serde_json::Value), Error> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Error::TooLarge {
            len: token.len(),
            max: MAX_TOKEN_BYTES,
        });
    }
    if token.starts_with(BYTE_ORDER_MARK) {
        return Err(Error::ByteOrderMark);
    }
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err(Error::SegmentCount(parts.len()));
    }
    let decode = |segment: &'static str, text: &str| -> Result<serde_json::Value, Error> {
        let bytes = b64::decode(text).ok_or(Error::Base64 { segment })?;
        strict_json::check_object(&bytes).map_err(|detail| Error::Json { segment, detail })?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Json {
            segment,
            detail: e.to_string(),
        })
    };
    Ok((decode("header", parts[0])?, decode("payload", parts[1])?))
}

#[cfg(test)]
mod header_tests {
    use super::*;

    /// This module only verifies: signing is `issuer.rs`'s, and nothing here names the issuer
    /// side (which imports `evaluate`, which imports this module: no circle).
    #[test]
    fn jws_imports_nothing_from_the_issuer() {
        let source = include_str!("jws.rs");
        for name in [
            concat!("crate::", "issuer"),
            concat!("Private", "Key"),
            concat!("fn ", "sign_"),
        ] {
            assert!(!source.contains(name), "jws.rs names `{name}`");
        }
    }

    /// The fast path accepts only headers the full checks accept, with the same `kid` and
    /// `typ`; it takes the genuine shapes, and leaves every other one to the full checks.
    #[test]
    fn the_fast_header_path_accepts_exactly_what_the_checks_accept() {
        let cases: &[(&str, bool)] = &[
            (r#"{"alg":"EdDSA","kid":"k1","typ":"license+jwt"}"#, true),
            (
                r#"{"typ":"lease+jwt","kid":"k\u0031","alg":"Ed25519"}"#,
                true,
            ),
            (
                r#"{"alg":"Ed\u0044SA","kid":"k1","typ":"license+jwt"}"#,
                true,
            ),
            (r#"{ "alg" : "EdDSA" , "kid":"k1","typ":"x"}"#, true),
            (r#" {"alg":"EdDSA","kid":"k1","typ":"x"}"#, false),
            (r#"["EdDSA","k1","license+jwt"]"#, false),
            (
                r#"{"alg":"EdDSA","\u0061lg":"EdDSA","kid":"k1","typ":"x"}"#,
                false,
            ),
            (r#"{"alg":"EdDSA","kid":"k1","typ":null}"#, false),
            (
                "\u{feff}{\"alg\":\"EdDSA\",\"kid\":\"k1\",\"typ\":\"x\"}",
                false,
            ),
            ("{\"alg\":\"EdDSA\",\"kid\":\"k1\",\"typ\":\"x\"} \n", true),
            (
                r#"{"alg":"EdDSA","alg":"EdDSA","kid":"k1","typ":"x"}"#,
                false,
            ),
            (
                r#"{"alg":"EdDSA","kid":"k1","typ":"x","crit":["b64"]}"#,
                false,
            ),
            (r#"{"alg":"EdDSA","kid":"k1","typ":"x","cty":"JWT"}"#, false),
            (r#"{"alg":"none","kid":"k1","typ":"x"}"#, false),
            (r#"{"alg":"HS256","kid":"k1","typ":"x"}"#, false),
            (r#"{"alg":"EdDSA","kid":1,"typ":"x"}"#, false),
            (r#"{"alg":"EdDSA","typ":"x"}"#, false),
            (r#"{"alg":"EdDSA","kid":"k1","typ":"x"} x"#, false),
            (r#"{"alg":"EdDSA","kid":"\ud800","typ":"x"}"#, false),
        ];
        for (json, typical) in cases {
            let bytes = json.as_bytes();
            let fast = typical_header(bytes);
            let checked = checked_header(bytes);
            assert_eq!(fast.is_some(), *typical, "{json}");
            if let Some(fast) = fast {
                let checked = checked.unwrap_or_else(|e| panic!("{json}: fast path only: {e}"));
                assert_eq!((fast.kid, fast.typ), (checked.kid, checked.typ), "{json}");
            } else if json.starts_with(' ') {
                assert!(checked.is_ok(), "{json}: leading space is valid JSON");
            } else {
                assert!(checked.is_err(), "{json}: accepted by the full checks");
            }
        }
    }
}
