//! Issuer side: private keys and signing. Behind the `issuer` feature so that apps, which
//! only verify, never link private-key code.

use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{Signer, SigningKey};
use zeroize::Zeroizing;

use crate::claims::LicenseClaims;
use crate::error::Error;
use crate::evaluate::License;
use crate::jws::{self, TokenKind};
use crate::keys::{KeyError, PublicKey};
use crate::lease::LeaseClaims;

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
    jws::sign_checked(key, TokenKind::License.typ(), &payload)
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
    jws::sign_checked(key, TokenKind::Lease.typ(), &payload)
}

/// Signs arbitrary header and payload bytes, without any validation: for tests and tools
/// that must produce tokens a verifier will refuse. `header: None` means the profile's
/// header with `typ`.
pub fn sign_raw(typ: &str, key: &PrivateKey, header: Option<&str>, payload: &[u8]) -> String {
    let header = header
        .map(str::to_owned)
        .unwrap_or_else(|| jws::header_for(typ, key.public_key().kid()));
    jws::sign_compact(key, header.as_bytes(), payload)
}
