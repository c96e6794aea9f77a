//! Public keys and the local trust store. Keys come only from here, never from a token header.

use std::collections::BTreeMap;

use ed25519_dalek::VerifyingKey;
use ed25519_dalek::pkcs8::DecodePublicKey;
use ed25519_dalek::pkcs8::EncodePublicKey;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::b64;
use crate::strict_json;

/// Why a key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The PEM or DER is not an Ed25519 key of the expected kind.
    #[error("not an Ed25519 {expected} key: {detail}")]
    Encoding {
        /// `SPKI public` or `PKCS#8 private`.
        expected: &'static str,
        /// Parser detail.
        detail: String,
    },
    /// The JWK or JWK Set is malformed or not an Ed25519 public key.
    #[error("invalid JWK: {0}")]
    Jwk(String),
    /// The point is not a canonical encoding of a curve point.
    #[error("public key is not a canonical curve point encoding")]
    NonCanonical,
    /// The point has small order: it would accept forged signatures.
    #[error("public key is a weak (small-order) point")]
    Weak,
    /// A JWK's `kid` differs from its RFC 7638 thumbprint.
    #[error("JWK kid `{given}` is not its RFC 7638 thumbprint `{thumbprint}`")]
    KidMismatch {
        /// The `kid` in the JWK.
        given: String,
        /// The thumbprint computed from the key.
        thumbprint: String,
    },
    /// A private key was offered where only public keys belong.
    #[error("private key material (`d`) in a trust store JWK")]
    PrivateKeyMaterial,
    /// The same kid was added twice.
    #[error("key `{0}` is already in the trust store")]
    Duplicate(String),
    /// The document is neither PEM nor a JSON object (a JWK or a JWK Set): what it looks like.
    #[error("not a PEM public key, JWK or JWK Set: {0}")]
    Unrecognized(String),
    /// The document holds no Ed25519 public key.
    #[error("no Ed25519 public key found")]
    Empty,
    /// Key generation or encoding failed (issuer side).
    #[error("key generation or encoding failed: {0}")]
    Internal(String),
}

/// A validated Ed25519 public key: canonical, not weak, with its RFC 7638 `kid`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
    kid: String,
}

impl PublicKey {
    /// Validates raw 32-byte key material: canonical encoding and not of small order.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, KeyError> {
        // Canonical means y < p = 2^255 - 19 (checked on the bytes: cheaper than re-encoding
        // the point). The other non-canonical form, x = 0 with the sign bit set, only exists
        // for the two small-order points y = ±1, which the weak-key check refuses.
        if !y_is_canonical(bytes) {
            return Err(KeyError::NonCanonical);
        }
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| KeyError::NonCanonical)?;
        if key.is_weak() {
            return Err(KeyError::Weak);
        }
        Ok(PublicKey {
            kid: thumbprint(bytes),
            key,
        })
    }

    /// Reads an SPKI PEM (`-----BEGIN PUBLIC KEY-----`), as written by `openssl pkey -pubout`.
    /// Text that is not PEM at all is [`KeyError::Unrecognized`], saying what it looks like.
    pub fn from_spki_pem(pem: &str) -> Result<Self, KeyError> {
        if let Some(what) = not_pem(pem) {
            return Err(KeyError::Unrecognized(what));
        }
        // The form OpenSSL and this project write is read directly; any other goes through
        // the general parser. Either way from_bytes then decompresses once, with all the checks.
        if let Some(bytes) = canonical_spki_pem(pem.trim()) {
            return Self::from_bytes(&bytes);
        }
        let key =
            ed25519_dalek::pkcs8::PublicKeyBytes::from_public_key_pem(pem.trim()).map_err(|e| {
                KeyError::Encoding {
                    expected: "SPKI public",
                    detail: e.to_string(),
                }
            })?;
        Self::from_bytes(&key.to_bytes())
    }

    /// Reads one JWK (`{"kty":"OKP","crv":"Ed25519","x":...}`). `kid`, `alg` and `use`, when
    /// present, must agree with the key; a JWK holding `d` is refused.
    pub fn from_jwk_json(json: &str) -> Result<Self, KeyError> {
        strict_json::check_object(json.as_bytes()).map_err(KeyError::Jwk)?;
        let jwk: Jwk = serde_json::from_str(json).map_err(|e| KeyError::Jwk(e.to_string()))?;
        Self::from_jwk(&jwk)
    }

    fn from_jwk(jwk: &Jwk) -> Result<Self, KeyError> {
        if jwk.d.is_some() {
            return Err(KeyError::PrivateKeyMaterial);
        }
        if jwk.kty != "OKP" || jwk.crv != "Ed25519" {
            return Err(KeyError::Jwk(format!(
                "kty `{}` crv `{}`, expected OKP / Ed25519",
                jwk.kty, jwk.crv
            )));
        }
        if let Some(alg) = &jwk.alg
            && alg != "EdDSA"
            && alg != "Ed25519"
        {
            return Err(KeyError::Jwk(format!("alg `{alg}` is not EdDSA")));
        }
        if let Some(usage) = &jwk.usage
            && usage != "sig"
        {
            return Err(KeyError::Jwk(format!("use `{usage}` is not sig")));
        }
        let x = b64::decode_array::<32>(&jwk.x)
            .ok_or_else(|| KeyError::Jwk("x is not 32 bytes of canonical base64url".into()))?;
        let key = Self::from_bytes(&x)?;
        if let Some(kid) = &jwk.kid
            && *kid != key.kid
        {
            return Err(KeyError::KidMismatch {
                given: kid.clone(),
                thumbprint: key.kid,
            });
        }
        Ok(key)
    }

    /// The key id: the RFC 7638 JWK thumbprint (SHA-256, base64url).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The raw 32-byte public key.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The key as SPKI PEM.
    pub fn to_spki_pem(&self) -> Result<String, KeyError> {
        self.key
            .to_public_key_pem(Default::default())
            .map_err(|e| KeyError::Internal(e.to_string()))
    }

    /// The key as a JWK JSON object with `kid`, `alg` and `use`.
    pub fn to_jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": b64::encode(self.key.as_bytes()),
            "kid": self.kid,
            "alg": "EdDSA",
            "use": "sig",
        })
    }

    /// Verifies an Ed25519 signature with `verify_strict` (no small-order R, canonical S and R).
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8; 64]) -> Result<(), crate::Error> {
        self.key
            .verify_strict(message, &ed25519_dalek::Signature::from_bytes(signature))
            .map_err(|_| crate::Error::SignatureInvalid)
    }
}

/// What a document that is not PEM looks like (`None` when it is PEM or may be): named in the
/// error instead of the PEM parser's complaint about its first bytes.
fn not_pem(text: &str) -> Option<String> {
    if text.starts_with('\u{feff}') {
        return Some("the file starts with a byte-order mark (U+FEFF); save it without one".into());
    }
    let trimmed = text.trim();
    if trimmed.starts_with("-----BEGIN ") {
        return None;
    }
    let what = if trimmed.is_empty() {
        "the document is empty"
    } else if trimmed.starts_with("ssh-") {
        "an OpenSSH public key; convert it with `ssh-keygen -e -m PKCS8 -f <key>.pub`"
    } else if trimmed.starts_with('{') {
        "a JSON object, not PEM (a JWK or a JWK Set goes to `TrustStore::add_document`)"
    } else if trimmed.starts_with('[')
        || trimmed.starts_with('"')
        || serde_json::from_str::<serde_json::Value>(trimmed).is_ok()
    {
        "JSON that is not an object; a JWK Set is `{\"keys\":[...]}`"
    } else {
        "text without a `-----BEGIN PUBLIC KEY-----` line"
    };
    Some(what.into())
}

/// The DER of an Ed25519 SubjectPublicKeyInfo (RFC 8410) before the key:
/// SEQUENCE { SEQUENCE { OID 1.3.101.112 }, BIT STRING (no unused bits) of 32 bytes }.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The key of an Ed25519 SPKI PEM in its canonical form (the `PUBLIC KEY` header line, the
/// 44-byte DER as one line of 60 padded base64 characters, the footer line, `\n` line ends,
/// outer whitespace trimmed), read without the general PEM and DER parsers: they take 0.08x a
/// signature check for 44 bytes. `None` for any other form (other line ends, line breaks or
/// algorithm), which the general parser then accepts or explains; what this accepts, it
/// accepts with the same key.
fn canonical_spki_pem(pem: &str) -> Option<[u8; 32]> {
    use base64::Engine as _;
    let line = pem
        .strip_prefix("-----BEGIN PUBLIC KEY-----\n")?
        .strip_suffix("\n-----END PUBLIC KEY-----")?;
    if line.len() != 60 {
        return None;
    }
    let mut der = [0u8; 45];
    let len = base64::engine::general_purpose::STANDARD
        .decode_slice(line, &mut der)
        .ok()?;
    let key = der.get(..len)?.strip_prefix(&ED25519_SPKI_PREFIX)?;
    key.try_into().ok()
}

/// Whether the little-endian y coordinate (sign bit masked) is below p = 2^255 - 19.
fn y_is_canonical(bytes: &[u8; 32]) -> bool {
    // p = 0x7fff...ffed: y >= p iff the top 31 bytes are all-ones (0x7f masked) and the low
    // byte is >= 0xed.
    let top_all_ones = bytes[1..31].iter().all(|&b| b == 0xff) && (bytes[31] & 0x7f) == 0x7f;
    !(top_all_ones && bytes[0] >= 0xed)
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    #[serde(default)]
    crv: String,
    #[serde(default)]
    x: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    d: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<Jwk>,
}

/// RFC 7638 thumbprint of an Ed25519 OKP key: SHA-256 over the canonical member order.
pub fn thumbprint(public_key: &[u8; 32]) -> String {
    let canonical = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        b64::encode(public_key)
    );
    b64::encode(&Sha256::digest(canonical.as_bytes()))
}

/// The set of public keys this app trusts, chosen by `kid`. Built from local data only
/// (PEM or JWK Set compiled into the app or read from its install directory).
#[derive(Clone, Debug, Default)]
pub struct TrustStore {
    keys: BTreeMap<String, PublicKey>,
}

impl TrustStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a validated key; the same kid twice is an error.
    pub fn add(&mut self, key: PublicKey) -> Result<&mut Self, KeyError> {
        if self.keys.contains_key(key.kid()) {
            return Err(KeyError::Duplicate(key.kid.clone()));
        }
        self.keys.insert(key.kid.clone(), key);
        Ok(self)
    }

    /// Builds a store from one document: an SPKI PEM, a single JWK or a JWK Set.
    pub fn from_document(text: &str) -> Result<Self, KeyError> {
        let mut store = Self::new();
        store.add_document(text)?;
        Ok(store)
    }

    /// Adds the keys of one document: an SPKI PEM, a single JWK or a JWK Set (`{"keys":[...]}`).
    /// A refused document adds nothing: the store is unchanged.
    pub fn add_document(&mut self, text: &str) -> Result<&mut Self, KeyError> {
        let trimmed = text.trim_start();
        if !trimmed.starts_with('{') {
            return self.add(PublicKey::from_spki_pem(text)?);
        }
        strict_json::check_object(trimmed.as_bytes()).map_err(KeyError::Jwk)?;
        let value: serde_json::Value =
            serde_json::from_str(trimmed).map_err(|e| KeyError::Jwk(e.to_string()))?;
        if value.get("keys").is_some() {
            let set: JwkSet =
                serde_json::from_value(value).map_err(|e| KeyError::Jwk(e.to_string()))?;
            // RFC 7517 §5: keys of types this verifier does not use are skipped, not fatal.
            // Private material is refused whatever its type. The whole set or nothing: the
            // keys go into a copy that replaces the store only when every member passed.
            let mut updated = self.clone();
            let mut added = 0;
            for jwk in &set.keys {
                if jwk.d.is_some() {
                    return Err(KeyError::PrivateKeyMaterial);
                }
                if jwk.kty == "OKP" && jwk.crv == "Ed25519" {
                    updated.add(PublicKey::from_jwk(jwk)?)?;
                    added += 1;
                }
            }
            if added == 0 {
                return Err(KeyError::Empty);
            }
            *self = updated;
            Ok(self)
        } else {
            let jwk: Jwk =
                serde_json::from_value(value).map_err(|e| KeyError::Jwk(e.to_string()))?;
            self.add(PublicKey::from_jwk(&jwk)?)
        }
    }

    /// The key with this kid, if trusted.
    pub fn get(&self, kid: &str) -> Option<&PublicKey> {
        self.keys.get(kid)
    }

    /// Every trusted key, ordered by kid.
    pub fn keys(&self) -> impl Iterator<Item = &PublicKey> {
        self.keys.values()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the store has no keys.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The store as a JWK Set document.
    pub fn to_jwks(&self) -> serde_json::Value {
        serde_json::json!({ "keys": self.keys().map(PublicKey::to_jwk).collect::<Vec<_>>() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The direct read of the canonical SPKI PEM gives the key the general parser gives, and
    /// leaves every other form to it (which still reads the ones that are valid).
    #[test]
    fn the_canonical_spki_pem_reads_like_the_general_parser() {
        let general = |pem: &str| {
            ed25519_dalek::pkcs8::PublicKeyBytes::from_public_key_pem(pem.trim())
                .ok()
                .map(|k| k.to_bytes())
        };
        for seed in 0..16u8 {
            let key = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]).verifying_key();
            let pem = key.to_public_key_pem(Default::default()).expect("pem");
            let bytes = key.to_bytes();
            assert_eq!(canonical_spki_pem(pem.trim()), Some(bytes), "{pem}");
            assert_eq!(general(&pem), Some(bytes));
            let line = pem.lines().nth(1).expect("body line");
            let variants = [
                pem.replace('\n', "\r\n"),
                pem.replace(line, &format!("{}\n{}", &line[..32], &line[32..])),
                pem.replace("PUBLIC KEY", "RSA PUBLIC KEY"),
                pem.replace(&line[..4], "MCow"),
                pem.replace(&line[..8], "MCswBQYD"),
                pem.replace(&line[..12], "MCowBQYDK2Vx"),
                pem.replace(&line[56..], "AAA="),
                pem.replace(&line[56..], "AAAA"),
                pem.replace(&line[58..], "A="),
            ];
            for variant in variants {
                let fast = canonical_spki_pem(variant.trim());
                if let Some(fast) = fast {
                    assert_eq!(Some(fast), general(&variant), "{variant}");
                }
            }
            assert_eq!(canonical_spki_pem(&pem.replace('\n', "\r\n")), None);
            assert_eq!(
                PublicKey::from_spki_pem(&pem.replace('\n', "\r\n")).map(|k| k.to_bytes()),
                Ok(bytes)
            );
        }
    }

    #[test]
    fn rfc8037_thumbprint() {
        // RFC 8037 Appendix A.3.
        let x = b64::decode_array::<32>("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .expect("valid x");
        assert_eq!(
            thumbprint(&x),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    /// A JWK Set with one member refused adds none of its keys (the good one before it stays
    /// out too): the whole document or nothing.
    #[test]
    fn a_refused_key_set_adds_nothing() {
        let key = |byte: u8| {
            let mut bytes = [0u8; 32];
            bytes[0] = byte;
            // A valid point: the public key of a fixed seed.
            let signing = ed25519_dalek::SigningKey::from_bytes(&[byte; 32]);
            bytes.copy_from_slice(signing.verifying_key().as_bytes());
            PublicKey::from_bytes(&bytes).expect("a valid key")
        };
        let good = key(1).to_jwk();
        let mut private = key(2).to_jwk();
        private["d"] = serde_json::json!("AAAA");
        let duplicate = serde_json::json!({ "keys": [good.clone(), good.clone()] });
        for document in [
            serde_json::json!({ "keys": [good.clone(), private] }),
            duplicate,
        ] {
            let mut store = TrustStore::new();
            assert!(
                store.add_document(&document.to_string()).is_err(),
                "{document}"
            );
            assert_eq!(store.len(), 0, "{document}");
        }
        let mut store = TrustStore::new();
        store
            .add_document(&serde_json::json!({ "keys": [good] }).to_string())
            .expect("a good set");
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn weak_and_non_canonical_keys_are_refused() {
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(PublicKey::from_bytes(&identity), Err(KeyError::Weak));
        // y = p (2^255 - 19) is the non-canonical encoding of y = 0.
        let mut y_eq_p = [0xffu8; 32];
        y_eq_p[0] = 0xed;
        y_eq_p[31] = 0x7f;
        assert_eq!(PublicKey::from_bytes(&y_eq_p), Err(KeyError::NonCanonical));
        // p with the sign bit set: still y >= p.
        let mut signed = y_eq_p;
        signed[31] |= 0x80;
        assert_eq!(PublicKey::from_bytes(&signed), Err(KeyError::NonCanonical));
        // y = p - 1 = -1 is canonical, and the order-2 point: weak.
        let mut y_minus_one = y_eq_p;
        y_minus_one[0] = 0xec;
        assert_eq!(PublicKey::from_bytes(&y_minus_one), Err(KeyError::Weak));
        // The x = -0 encoding of the identity (sign bit set on y = 1): weak, not loaded.
        let mut negative_zero = identity;
        negative_zero[31] |= 0x80;
        assert_eq!(PublicKey::from_bytes(&negative_zero), Err(KeyError::Weak));
    }

    /// Security review: a text or JSON trust file that is not PEM got "PEM preamble contains
    /// invalid data (NUL byte)". Each now says what the document is.
    #[test]
    fn a_document_that_is_no_key_says_what_it_is() {
        let pem = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n";
        assert!(TrustStore::from_document(pem).is_ok());
        let bom_pem = format!("\u{feff}{pem}");
        for (document, says) in [
            (
                "hello world\n",
                "without a `-----BEGIN PUBLIC KEY-----` line",
            ),
            ("", "empty"),
            ("  \n", "empty"),
            (r#"[{"kty":"OKP"}]"#, "JSON that is not an object"),
            (r#""abc""#, "JSON that is not an object"),
            ("42", "JSON that is not an object"),
            (
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG user@host",
                "OpenSSH",
            ),
            (bom_pem.as_str(), "byte-order mark"),
            ("\u{feff}{\"keys\":[]}", "byte-order mark"),
        ] {
            let error = TrustStore::from_document(document).unwrap_err();
            let message = error.to_string();
            assert!(
                matches!(error, KeyError::Unrecognized(_)),
                "{document:?}: {message}"
            );
            assert!(
                message.starts_with("not a PEM public key, JWK or JWK Set: "),
                "{message}"
            );
            assert!(message.contains(says), "{document:?}: {message}");
            assert!(!message.contains("NUL"), "{message}");
            let error = PublicKey::from_spki_pem(document).unwrap_err();
            assert!(error.to_string().contains(says), "{document:?}: {error}");
        }
        // JSON objects still get the JWK parser's own message.
        let error = TrustStore::from_document(r#"{"foo":1}"#).unwrap_err();
        assert!(matches!(error, KeyError::Jwk(_)), "{error}");
    }
}
