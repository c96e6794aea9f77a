#![doc = include_str!("../README.md")]

pub mod access;
pub mod audit_checkpoint;
mod b64;
pub mod claims;
pub mod clock;
pub mod deactivation;
mod error;
mod evaluate;
pub mod fingerprint;
#[cfg(feature = "issuer")]
mod issuer;
mod jws;
mod keys;
pub mod lease;
#[cfg(feature = "machine")]
pub mod machine;
#[cfg(feature = "online-core")]
pub mod online;
pub mod protocol;
#[cfg(feature = "store")]
mod startup;
mod status;
#[cfg(feature = "store")]
pub mod store;
pub mod strict_json;

pub use claims::{LicenseClaims, LicenseModel};
pub use error::Error;
pub use evaluate::{
    Check, Context, FeatureVerdict, License, Term, Verdict, Verifier, VersionError, parse_version,
};
pub use fingerprint::MachineFingerprint;
#[cfg(feature = "issuer")]
pub use issuer::{
    PrivateKey, issue_access_token, issue_lease, issue_license, issue_license_checked, sign_claims,
    sign_raw, sign_token, trusted_license, trusted_template,
};
pub use jws::{MAX_TOKEN_BYTES, TokenKind, VerifiedToken, decode_unverified, verify_token};
pub use keys::{KeyError, KeyErrorKind, PublicKey, TrustStore, thumbprint};
pub use lease::{Lease, LeaseClaims};
#[cfg(feature = "online-core")]
pub use online::{Client, ClientConfig, OnlineError};
#[cfg(feature = "store")]
pub use startup::{BorrowedSeat, Licensing, unix_now};
pub use status::Status;

// The uniffi scaffolding for the records and enums above that derive uniffi (feature `uniffi`,
// used only by `bindings/uniffi`); the bindings see them as the `licensing_core` namespace.
#[cfg(feature = "uniffi")]
uniffi::setup_scaffolding!("licensing_core");

/// Verifies a raw Ed25519 signature the way every token is verified: the key must be canonical
/// and not weak, and the signature must pass `verify_strict`. Exposed so public test vectors
/// can be run through the project's own path.
pub fn verify_ed25519(public_key: &[u8], message: &[u8], signature: &[u8]) -> Result<(), Error> {
    let key: &[u8; 32] = public_key.try_into().map_err(|_| Error::SignatureInvalid)?;
    let signature: &[u8; 64] = signature.try_into().map_err(|_| Error::SignatureInvalid)?;
    let key = PublicKey::from_bytes(key).map_err(|_| Error::SignatureInvalid)?;
    key.verify(message, signature)
}
