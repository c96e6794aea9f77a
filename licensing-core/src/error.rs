//! The rich error type of token verification. Boundaries (C ABI, bindings, CLI) map it to
//! [`Status`] through [`Error::status`], the one conversion point.

use crate::status::Status;

/// Everything that can go wrong while verifying (or issuing) a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The token is longer than the size cap; nothing was decoded.
    #[error("token is {len} bytes, larger than the {max}-byte cap")]
    TooLarge {
        /// Length of the rejected input.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// The token text starts with a byte-order mark (U+FEFF), as some editors write at the
    /// start of a text file; a token never has one.
    #[error(
        "the token starts with a byte-order mark (U+FEFF, bytes EF BB BF); save the file without one"
    )]
    ByteOrderMark,
    /// The token is not three dot-separated segments.
    #[error("token must have exactly 3 segments, found {0}")]
    SegmentCount(usize),
    /// A segment is not strict unpadded, canonical base64url.
    #[error("{segment} is not canonical unpadded base64url")]
    Base64 {
        /// Which segment (`header`, `payload`, `signature`).
        segment: &'static str,
    },
    /// A segment is not a strict JSON object (bad UTF-8, syntax, duplicate key, nesting).
    #[error("{segment} is not a valid JSON object: {detail}")]
    Json {
        /// Which segment.
        segment: &'static str,
        /// What the parser found.
        detail: String,
    },
    /// A header parameter this profile forbids (`crit`, `jwk`, `jku`, `x5u`, `x5c`, `b64`, ...).
    #[error("header parameter `{0}` is not allowed")]
    ForbiddenHeader(String),
    /// A required header parameter is missing or not a string.
    #[error("header parameter `{0}` is missing or not a string")]
    MissingHeader(&'static str),
    /// `alg` is anything but `EdDSA` or `Ed25519`.
    #[error("algorithm `{0}` is not accepted (only EdDSA / Ed25519)")]
    UnsupportedAlgorithm(String),
    /// `typ` names another token kind.
    #[error("token type `{found}` where `{expected}` was expected")]
    WrongTokenType {
        /// The `typ` this verifier accepts.
        expected: &'static str,
        /// The `typ` the token carries.
        found: String,
    },
    /// No key with this `kid` in the trust store.
    #[error("no trusted key with kid `{0}`")]
    UnknownKey(String),
    /// The signature does not verify under the trusted key (`verify_strict`).
    #[error("signature does not verify")]
    SignatureInvalid,
    /// The signed claims are syntactically valid JSON but violate the license schema.
    #[error("invalid claims{}: {detail}", claim_location(field))]
    InvalidClaims {
        /// JSON path of the offending claim, e.g. `lic.features.export.limit`.
        field: String,
        /// What is wrong with it.
        detail: String,
    },
    /// `aud` does not name the product this verifier is for.
    #[error("license is for product {found:?}, not `{expected}`")]
    ProductMismatch {
        /// The product id the app was built for.
        expected: String,
        /// The `aud` values of the token.
        found: Vec<String>,
    },
}

/// `` at `lic.seats` `` for a field; nothing for the top level (serde_path_to_error says `.`).
fn claim_location(field: &str) -> String {
    if field.is_empty() || field == "." {
        String::new()
    } else {
        format!(" at `{field}`")
    }
}

impl Error {
    /// The one mapping from a rich error to the status a host acts on.
    pub fn status(&self) -> Status {
        match self {
            Error::TooLarge { .. }
            | Error::ByteOrderMark
            | Error::SegmentCount(_)
            | Error::Base64 { .. }
            | Error::Json { .. }
            | Error::ForbiddenHeader(_)
            | Error::MissingHeader(_) => Status::Malformed,
            Error::UnsupportedAlgorithm(_) => Status::UnsupportedAlgorithm,
            Error::WrongTokenType { .. } => Status::WrongTokenType,
            Error::UnknownKey(_) => Status::UnknownKey,
            Error::SignatureInvalid => Status::SignatureInvalid,
            Error::InvalidClaims { .. } => Status::InvalidClaims,
            Error::ProductMismatch { .. } => Status::ProductMismatch,
        }
    }

    pub(crate) fn claim(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::InvalidClaims {
            field: field.into(),
            detail: detail.into(),
        }
    }
}
