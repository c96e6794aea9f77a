//! Issuer side: private keys and signing. Behind the `issuer` feature so that apps, which
//! only verify, never link private-key code.

use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{Signer, SigningKey};
use zeroize::Zeroizing;

use crate::access::AccessClaims;
use crate::claims::LicenseClaims;
use crate::error::Error;
use crate::evaluate::License;
use crate::jws::{MAX_TOKEN_BYTES, TokenKind};
use crate::keys::{KeyError, PublicKey};
use crate::lease::LeaseClaims;
use crate::{b64, strict_json};

/// An Ed25519 signing key with its validated public half. The secret is zeroized on drop.
pub struct PrivateKey {
    key: SigningKey,
    public: PublicKey,
}

impl std::fmt::Debug for PrivateKey {
    // Never print the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateKey")
            .field("kid", &self.public.kid())
            .finish_non_exhaustive()
    }
}

impl PrivateKey {
    /// Generates a new key from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, KeyError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut()).map_err(|e| KeyError::Internal(e.to_string()))?;
        Self::from_seed(&seed)
    }

    /// Builds a key from a 32-byte seed (RFC 8032 private key).
    pub fn from_seed(seed: &[u8; 32]) -> Result<Self, KeyError> {
        let key = SigningKey::from_bytes(seed);
        let public = PublicKey::from_bytes(key.verifying_key().as_bytes())?;
        Ok(PrivateKey { key, public })
    }

    /// Reads a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), as written by `openssl genpkey`.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, KeyError> {
        let key = SigningKey::from_pkcs8_pem(pem.trim()).map_err(|e| KeyError::Encoding {
            expected: "PKCS#8 private",
            detail: e.to_string(),
        })?;
        let public = PublicKey::from_bytes(key.verifying_key().as_bytes())?;
        Ok(PrivateKey { key, public })
    }

    /// The key as PKCS#8 v1 PEM (RFC 8410, no embedded public key: the form
    /// `openssl genpkey -algorithm ed25519` writes and every OpenSSL 3 reads), zeroized on drop.
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, KeyError> {
        let bytes = ed25519_dalek::pkcs8::KeypairBytes {
            secret_key: self.key.to_bytes(),
            public_key: None,
        };
        bytes
            .to_pkcs8_pem(Default::default())
            .map_err(|e| KeyError::Internal(e.to_string()))
    }

    /// The public half.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }
}

/// Validates `claims` and signs them as a `license+jwt` token.
pub fn issue_license(claims: &LicenseClaims, key: &PrivateKey) -> Result<String, Error> {
    claims.validate()?;
    let payload = serde_json::to_vec(claims).map_err(|e| Error::claim("", e.to_string()))?;
    sign_checked(key, TokenKind::License.typ(), &payload)
}

/// Validates `claims`, signs them as a `license+jwt` token, and returns the token with its
/// [`License`]: an issuer that just signed a token knows it is genuine, so it skips verifying
/// its own signature (a verify costs twice a signature).
pub fn issue_license_checked(
    claims: LicenseClaims,
    key: &PrivateKey,
) -> Result<(String, License), Error> {
    let token = issue_license(&claims, key)?;
    let license = License::issued(claims, key.public_key().kid().to_owned());
    Ok((token, license))
}

/// The [`License`] of claims an issuer keeps in its own trusted storage (e.g. the template a
/// server signs a license's tokens from), validated, without any signature: for the issuer's
/// own decisions (is it expired now?), never for a client's.
pub fn trusted_license(claims: LicenseClaims, kid: &str) -> Result<License, Error> {
    claims.validate()?;
    Ok(License::issued(claims, kid.to_owned()))
}

/// [`trusted_license`] for an issuer's template that may bind no machine yet
/// ([`LicenseClaims::validate_unbound`]): a node-locked license before its first activation.
/// Its time rule, audience and limits are the tokens' it will sign; it runs on no machine.
pub fn trusted_template(claims: LicenseClaims) -> Result<License, Error> {
    claims.validate_unbound()?;
    Ok(License::issued(claims, String::new()))
}

/// Validates `claims` and signs them as a `lease+jwt` token.
pub fn issue_lease(claims: &LeaseClaims, key: &PrivateKey) -> Result<String, Error> {
    claims.validate()?;
    let payload = serde_json::to_vec(claims).map_err(|e| Error::claim("", e.to_string()))?;
    sign_checked(key, TokenKind::Lease.typ(), &payload)
}

/// Validates `claims` ([`AccessClaims::validate`]: at most 15 minutes of life) and signs them
/// as an OAuth 2.0 access token (`at+jwt`, RFC 9068).
pub fn issue_access_token(claims: &AccessClaims, key: &PrivateKey) -> Result<String, Error> {
    claims.validate()?;
    let payload = serde_json::to_vec(claims).map_err(|e| Error::claim("", e.to_string()))?;
    sign_checked(key, TokenKind::Access.typ(), &payload)
}

/// Signs arbitrary header and payload bytes, without any validation: for tests and tools
/// that must produce tokens a verifier will refuse. `header: None` means the profile's
/// header with `typ`.
pub fn sign_raw(typ: &str, key: &PrivateKey, header: Option<&str>, payload: &[u8]) -> String {
    let header = header
        .map(str::to_owned)
        .unwrap_or_else(|| header_for(typ, key.public_key().kid()));
    sign_compact(key, header.as_bytes(), payload)
}

/// Signs `claims` as a `kind` token with the profile's header. A license goes through
/// [`crate::issue_license`] and a lease through [`crate::issue_lease`] (their claims are
/// validated first); other kinds are signed as given.
pub fn sign_token(
    kind: TokenKind,
    key: &PrivateKey,
    claims: &serde_json::Map<String, serde_json::Value>,
) -> Result<String, Error> {
    if kind == TokenKind::License {
        let claims = LicenseClaims::from_object(claims.clone())?;
        return issue_license(&claims, key);
    }
    if kind == TokenKind::Lease {
        let claims = LeaseClaims::from_object(claims.clone())?;
        return issue_lease(&claims, key);
    }
    let payload = serde_json::to_vec(claims).map_err(|e| Error::Json {
        segment: "payload",
        detail: e.to_string(),
    })?;
    sign_checked(key, kind.typ(), &payload)
}

/// [`sign_token`] for claims in any serializable form (e.g. a struct), without building a
/// JSON map first. License and lease claims still go through their validation.
pub fn sign_claims<T: serde::Serialize>(
    kind: TokenKind,
    key: &PrivateKey,
    claims: &T,
) -> Result<String, Error> {
    let json_error = |e: serde_json::Error| Error::Json {
        segment: "payload",
        detail: e.to_string(),
    };
    if matches!(kind, TokenKind::License | TokenKind::Lease) {
        let serde_json::Value::Object(map) = serde_json::to_value(claims).map_err(json_error)?
        else {
            return Err(Error::Json {
                segment: "payload",
                detail: "the claims are not a JSON object".into(),
            });
        };
        return sign_token(kind, key, &map);
    }
    let payload = serde_json::to_vec(claims).map_err(json_error)?;
    if payload.first() != Some(&b'{') {
        return Err(Error::Json {
            segment: "payload",
            detail: "the claims are not a JSON object".into(),
        });
    }
    sign_checked(key, kind.typ(), &payload)
}

/// The protected header of every token this profile signs, members in RFC 7638 order.
fn header_for(kind_typ: &str, kid: &str) -> String {
    // Written out rather than a `json!` map: the same bytes (members in this order, strings
    // escaped by serde_json's `Display`, which cannot fail), without building a map for every
    // token signed.
    let (kid, typ) = (
        serde_json::Value::from(kid),
        serde_json::Value::from(kind_typ),
    );
    format!(r#"{{"alg":"EdDSA","kid":{kid},"typ":{typ}}}"#)
}

/// Signs `payload` (JSON bytes) as a `typ` token with the profile's header, refusing what a
/// verifier of this profile refuses as malformed, so an issuer never hands out a token its own
/// verifiers cannot read: a payload that is not one strict JSON object (duplicate names,
/// nesting deeper than [`strict_json::MAX_DEPTH`]) or a token over [`MAX_TOKEN_BYTES`].
fn sign_checked(key: &PrivateKey, typ: &str, payload: &[u8]) -> Result<String, Error> {
    strict_json::check_object(payload).map_err(|detail| Error::Json {
        segment: "payload",
        detail,
    })?;
    let header = header_for(typ, key.public_key().kid());
    let token = sign_compact(key, header.as_bytes(), payload);
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Error::TooLarge {
            len: token.len(),
            max: MAX_TOKEN_BYTES,
        });
    }
    Ok(token)
}

/// Signs `header` and `payload` (JSON bytes) as a compact JWS.
fn sign_compact(key: &PrivateKey, header: &[u8], payload: &[u8]) -> String {
    let mut token = b64::encode(header);
    token.push('.');
    token.push_str(&b64::encode(payload));
    let signature = key.sign(token.as_bytes());
    token.push('.');
    token.push_str(&b64::encode(&signature));
    token
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jws::{decode_unverified, verify_token};
    use crate::keys::TrustStore;

    fn setup() -> (PrivateKey, TrustStore) {
        let key = PrivateKey::from_seed(&[7; 32]).expect("key");
        let mut store = TrustStore::new();
        store.add(key.public_key().clone()).expect("add");
        (key, store)
    }

    fn claims() -> serde_json::Map<String, serde_json::Value> {
        let serde_json::Value::Object(map) = serde_json::json!({"sub": "m_1", "nonce": "abc"})
        else {
            unreachable!()
        };
        map
    }

    /// A struct signs to the same claims as its map, and only an object is signed.
    #[test]
    fn the_header_is_the_same_bytes_as_its_map_form() {
        for (typ, kid) in [
            ("license+jwt", "abc_DEF-123"),
            ("response+jwt", "q\"uote\\é"),
        ] {
            let map = serde_json::json!({ "alg": "EdDSA", "kid": kid, "typ": typ }).to_string();
            assert_eq!(header_for(typ, kid), map);
        }
        assert_eq!(
            header_for("lease+jwt", "k"),
            r#"{"alg":"EdDSA","kid":"k","typ":"lease+jwt"}"#
        );
    }

    #[test]
    fn sign_claims_signs_a_struct_like_its_map() {
        #[derive(serde::Serialize)]
        struct Claims {
            sub: &'static str,
            nonce: &'static str,
        }
        let (key, store) = setup();
        let token = sign_claims(
            TokenKind::Response,
            &key,
            &Claims {
                sub: "m_1",
                nonce: "abc",
            },
        )
        .expect("sign");
        let verified = verify_token(&token, TokenKind::Response, &store).expect("verify");
        assert_eq!(verified.claims, claims());
        assert!(sign_claims(TokenKind::Response, &key, &[1, 2]).is_err());
        // License claims are validated: a response's claims are not a license.
        assert!(sign_claims(TokenKind::License, &key, &claims()).is_err());
    }

    #[test]
    fn machine_and_response_tokens_round_trip_with_their_own_typ() {
        let (key, store) = setup();
        for kind in [TokenKind::Machine, TokenKind::Response] {
            let token = sign_token(kind, &key, &claims()).expect("sign");
            let (header, _) = decode_unverified(&token).expect("decode");
            assert_eq!(header["typ"], kind.typ());
            let verified = verify_token(&token, kind, &store).expect("verify");
            assert_eq!(verified.claims, claims());
            assert_eq!(verified.kid, key.public_key().kid());
        }
    }

    #[test]
    fn a_genuine_token_of_one_kind_is_refused_as_another() {
        let (key, store) = setup();
        let machine = sign_token(TokenKind::Machine, &key, &claims()).expect("sign");
        for other in [TokenKind::License, TokenKind::Response] {
            assert!(matches!(
                verify_token(&machine, other, &store),
                Err(Error::WrongTokenType { .. })
            ));
        }
        let verifier = crate::Verifier::for_any_product(store);
        assert!(matches!(
            verifier.verify(&machine),
            Err(Error::WrongTokenType { .. })
        ));
    }

    #[test]
    fn sign_token_validates_license_claims() {
        let (key, _) = setup();
        assert!(matches!(
            sign_token(TokenKind::License, &key, &claims()),
            Err(Error::InvalidClaims { .. })
        ));
    }

    #[test]
    fn a_tampered_machine_token_is_refused() {
        let (key, store) = setup();
        let token = sign_token(TokenKind::Machine, &key, &claims()).expect("sign");
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] = crate::b64::encode(br#"{"sub":"m_2","nonce":"abc"}"#);
        assert_eq!(
            verify_token(&parts.join("."), TokenKind::Machine, &store),
            Err(Error::SignatureInvalid)
        );
    }

    /// Security review: a token file saved with a UTF-8 BOM was reported as "header is not
    /// canonical unpadded base64url". The error now names the byte-order mark; the token is
    /// still refused (malformed), never stripped silently.
    #[test]
    fn a_byte_order_mark_is_named_and_refused() {
        let (key, store) = setup();
        let token = sign_token(TokenKind::Response, &key, &claims()).expect("sign");
        assert!(verify_token(&token, TokenKind::Response, &store).is_ok());
        let with_bom = format!("\u{feff}{token}");
        let error = verify_token(&with_bom, TokenKind::Response, &store).unwrap_err();
        assert_eq!(error, Error::ByteOrderMark);
        assert_eq!(error.status(), crate::Status::Malformed);
        let message = error.to_string();
        assert!(message.contains("byte-order mark"), "{message}");
        assert!(!message.contains("base64url"), "{message}");
        assert_eq!(
            decode_unverified(&with_bom).unwrap_err(),
            Error::ByteOrderMark
        );
        // Anywhere else it is simply not base64url.
        let inside = format!("{token}\u{feff}");
        assert!(matches!(
            verify_token(&inside, TokenKind::Response, &store),
            Err(Error::Base64 { .. })
        ));
    }
}
