//! JWS compact serialization (RFC 7515) restricted to Ed25519 (RFC 8037) and this profile.
//!
//! Hand-written rather than taken from a JOSE crate: the general crates accept algorithms,
//! header parameters and encodings this profile must refuse, and none offers `verify_strict`
//! with weak-key refusal; the code here is only the strict subset.

use crate::b64;
use crate::error::Error;
use crate::keys::TrustStore;
use crate::strict_json;

/// Largest token accepted, checked before anything is decoded.
pub const MAX_TOKEN_BYTES: usize = 64 * 1024;

/// The `typ` of each token kind. A genuine token of one kind is refused as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A license (`license+jwt`).
    License,
}

impl TokenKind {
    /// The exact `typ` header value.
    pub const fn typ(self) -> &'static str {
        match self {
            TokenKind::License => "license+jwt",
        }
    }
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
    /// The decoded payload, already checked to be one strict JSON object.
    pub payload: Vec<u8>,
}

/// Verifies `token` as a `kind` token signed by a key in `store`.
///
/// Order matters: structure, then algorithm and key, then the signature, and only then the
/// type, so [`Error::WrongTokenType`] always means a genuine token of another kind.
pub(crate) fn verify(
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
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Error::SegmentCount(token.split('.').count()));
    };

    let header_bytes = b64::decode(header_b64).ok_or(Error::Base64 { segment: "header" })?;
    strict_json::check_object(&header_bytes).map_err(|detail| Error::Json {
        segment: "header",
        detail,
    })?;
    let header_map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&header_bytes).map_err(|e| Error::Json {
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
    let Some(serde_json::Value::String(kid)) = header_map.get("kid") else {
        return Err(Error::MissingHeader("kid"));
    };
    let Some(serde_json::Value::String(typ)) = header_map.get("typ") else {
        return Err(Error::MissingHeader("typ"));
    };
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
    strict_json::check_object(&payload).map_err(|detail| Error::Json {
        segment: "payload",
        detail,
    })?;
    Ok(VerifiedJws {
        kid: kid.clone(),
        payload,
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

/// The protected header of every token this profile signs, members in RFC 7638 order.
#[cfg(feature = "issuer")]
pub(crate) fn header_for(kind_typ: &str, kid: &str) -> String {
    serde_json::json!({ "alg": "EdDSA", "kid": kid, "typ": kind_typ }).to_string()
}

/// Signs `header` and `payload` (JSON bytes) as a compact JWS.
#[cfg(feature = "issuer")]
pub(crate) fn sign_compact(
    key: &crate::issuer::PrivateKey,
    header: &[u8],
    payload: &[u8],
) -> String {
    let mut token = b64::encode(header);
    token.push('.');
    token.push_str(&b64::encode(payload));
    let signature = key.sign(token.as_bytes());
    token.push('.');
    token.push_str(&b64::encode(&signature));
    token
}
