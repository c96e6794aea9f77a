//! The one error a host sees, and the one place every core error becomes it.
//!
//! A license that may not be used is not an error: `check`, `install` and `check_at_startup`
//! return a [`Verdict`](licensing_core::Verdict) whose [`Status`] says why. Errors are for
//! what the host must fix or report: a bad key document, a bad argument, a store that cannot
//! be read or written — and [`LicensingError::Rejected`] from the explicit `verify` call, which
//! carries the same status a verdict would.

#[cfg(feature = "online-core")]
use licensing_core::online::OnlineError;
use licensing_core::store::StoreError;
use licensing_core::{KeyError, Status};

/// Why a call failed. Kotlin: `LicensingException.*`; Swift: `LicensingError.*`; Python:
/// `LicensingError.*`. A Rust panic is not one of these: it arrives as the language's uniffi
/// internal error (`InternalException`, `InternalError`, `UniffiInternalError.rustPanic`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum LicensingError {
    /// A trust-store document (PEM, JWK, JWK Set) was refused: malformed, weak or
    /// non-canonical key, private key material, kid mismatch, duplicate or no key.
    #[error("invalid key: {reason}")]
    InvalidKey {
        /// What is wrong with the key.
        reason: String,
    },
    /// An argument is not valid (e.g. a version that is not semver).
    #[error("invalid argument: {reason}")]
    InvalidArgument {
        /// Which argument and why.
        reason: String,
    },
    /// `Verifier.verify` refused the token; `status` is what a verdict would say.
    #[error("token rejected ({status}): {reason}")]
    Rejected {
        /// The status (malformed, signature_invalid, unknown_key, product_mismatch, ...).
        status: Status,
        /// Human-readable explanation.
        reason: String,
    },
    /// The license store could not be read or written (permissions, disk, no data directory).
    #[error("license store: {reason}")]
    Storage {
        /// The failing path and OS error.
        reason: String,
    },
    /// The licensing server could not be reached or did not answer in time.
    #[error("network: {reason}")]
    Network {
        /// What failed (connection, DNS, TLS, proxy, timeout).
        reason: String,
    },
    /// The licensing server answered with an error (`machine_limit_reached`,
    /// `license_not_found`, `license_suspended`, ...).
    #[error("server refused ({code}): {reason}")]
    Server {
        /// The HTTP status.
        http_status: u16,
        /// The server's error code.
        code: String,
        /// Its explanation.
        reason: String,
    },
    /// The server's answer was refused: not signed by a trusted key, replayed (nonce), another
    /// machine or product, an expired offline response, or not the protocol's format.
    #[error("bad response: {reason}")]
    BadResponse {
        /// Why it was refused.
        reason: String,
    },
    /// An earlier step is missing: no license key stored (activate first) or no air-gapped
    /// request pending.
    #[error("not activated: {reason}")]
    NotActivated {
        /// Which step.
        reason: String,
    },
    /// The system refused something the call needs (random numbers, a thread): neither an
    /// argument nor the server is at fault; retrying later may work.
    #[error("system: {reason}")]
    System {
        /// What was refused.
        reason: String,
    },
    /// Something that should not happen (a bug); report it.
    #[error("internal error: {reason}")]
    Internal {
        /// What happened.
        reason: String,
    },
}

impl From<KeyError> for LicensingError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::Internal(reason) => LicensingError::Internal { reason },
            other => LicensingError::InvalidKey {
                reason: other.to_string(),
            },
        }
    }
}

impl From<licensing_core::Error> for LicensingError {
    fn from(e: licensing_core::Error) -> Self {
        LicensingError::Rejected {
            status: e.status(),
            reason: e.to_string(),
        }
    }
}

impl From<StoreError> for LicensingError {
    fn from(e: StoreError) -> Self {
        LicensingError::Storage {
            reason: e.to_string(),
        }
    }
}

impl From<semver::Error> for LicensingError {
    fn from(e: semver::Error) -> Self {
        LicensingError::InvalidArgument {
            reason: format!("version is not semver: {e}"),
        }
    }
}

impl From<serde_json::Error> for LicensingError {
    fn from(e: serde_json::Error) -> Self {
        LicensingError::Internal {
            reason: format!("JSON encoding: {e}"),
        }
    }
}

#[cfg(feature = "online-core")]
impl From<OnlineError> for LicensingError {
    fn from(e: OnlineError) -> Self {
        let reason = e.to_string();
        match e {
            OnlineError::Network(_) | OnlineError::Timeout(_) => LicensingError::Network { reason },
            OnlineError::Server { status, code, .. } => LicensingError::Server {
                http_status: status,
                code,
                reason,
            },
            OnlineError::Config(_) => LicensingError::InvalidArgument { reason },
            OnlineError::System(_) => LicensingError::System { reason },
            OnlineError::NotActivated | OnlineError::NoPendingRequest => {
                LicensingError::NotActivated { reason }
            }
            OnlineError::Store(_) => LicensingError::Storage { reason },
            _ => LicensingError::BadResponse { reason },
        }
    }
}
