//! The online client (feature `online`): activation, validation and deactivation against a
//! licensing server over HTTPS, and the air-gapped activation files. Feature `online-core` is
//! the same client without the default HTTP stack: the app hands in its own [`Transport`]
//! ([`Client::with_transport`]).
//!
//! Every answer that matters is a token signed by the vendor and verified here against the
//! app's own trust store (never against keys the server publishes): a server, proxy or network
//! that lies can refuse service, but cannot make a license valid. Validation sends a fresh
//! random nonce and only accepts a response echoing it, so an old response cannot be replayed.
//!
//! [`Client`] is stateless (only the HTTP connection pool); the stateful flow (store the
//! refreshed token, feed the server time into the clock guard, remember a revocation, fall back
//! offline) is [`crate::Licensing`]'s, with feature `store` too.
//!
//! ```no_run
//! # #[cfg(all(feature = "store", feature = "online"))] {
//! use std::time::Duration;
//! use licensing_core::online::{Client, ClientConfig};
//! use licensing_core::{Licensing, TrustStore, store::LicenseStore, unix_now};
//!
//! # let jwks = "";
//! let trust = TrustStore::from_document(jwks)?; // shipped with the app
//! let client = Client::new(
//!     ClientConfig::new("https://licensing.example.com", "com.example.cad"),
//!     trust.clone(),
//! )?;
//! let app = Licensing::new(trust, "com.example.cad", LicenseStore::at("/tmp/cad")?);
//! app.activate(&client, "ABCDE-FGHIJ-KLMNO-PQRST-UVWXY", unix_now())?;
//! // At each start: online when the server answers within 3 s, else the stored token.
//! let check = app.check_online(&client, unix_now(), Duration::from_secs(3))?;
//! if !check.verdict.is_usable() { /* explain check.verdict.reason, offer activation */ }
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod answer;
mod http;
mod lease_manager;
mod leases;
#[cfg(feature = "store")]
mod sync;
mod transport;

use std::sync::Arc;
use std::time::Duration;

use crate::evaluate::Verifier;
use crate::fingerprint::MachineFingerprint;
use crate::keys::TrustStore;
use crate::protocol::{
    ActivateRequest, DeactivateRequest, TransferRequest, ValidateRequest, ValidateResponse,
};

pub use http::{MAX_BODY_BYTES, TRUSTED_KIDS_HEADER};
#[cfg(feature = "online")]
pub use transport::ReqwestTransport;
pub use transport::{HttpRequest, HttpResponse, Transport, TransportError};

pub use crate::protocol::{
    HeldToken, HeldTokens, OFFLINE_REQUEST_KIND, OFFLINE_RESPONSE_KIND, OfflineRequest,
    ServerStatus,
};
pub use answer::{Activation, Deactivation, Validation};
pub use lease_manager::{LeaseCallback, LeaseManager, RETAKE_PAUSE};
pub use leases::{
    LeaseClock, LeaseClockSource, LeaseConfig, LeaseGrant, LeaseLoss, LeaseSecret, NO_SEATS,
    QueuePlace, SeatAnswer,
};
#[cfg(feature = "store")]
pub use sync::{Activated, OnlineCheck};

pub use leases::LeaseLossKind;

/// The most characters of the user an activation or validation names (the protocol's rule for
/// `user`, a display name; [`Client::set_user`] refuses longer names).
pub const MAX_USER_CHARS: usize = crate::claims::MAX_DISPLAY_NAME_CHARS;

/// How to reach the licensing server and how long to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// The server's base URL, e.g. `https://licensing.example.com` (paths `/v1/client/...` are
    /// appended). `http://` is accepted for loopback tests and private networks; the answers
    /// are signed either way.
    pub base_url: String,
    /// The product id this app is (the `aud` every answer must name).
    pub product: String,
    /// Limit for establishing one connection.
    pub connect_timeout: Duration,
    /// Limit for one request, connection included.
    pub request_timeout: Duration,
    /// Further attempts after a connection error, a timeout, a 5xx or a 429 (never after
    /// another 4xx: the server's answer would not change). A `Retry-After` in seconds replaces
    /// the backoff; one longer than the time left ends the call with the server's answer.
    pub retries: u32,
    /// First pause between attempts; doubled each time, with random jitter.
    pub backoff: Duration,
    /// Longest pause between attempts.
    pub max_backoff: Duration,
    /// Limit for one whole call, retries and pauses included.
    pub deadline: Duration,
}

impl ClientConfig {
    /// Defaults for `base_url` and `product`: 5 s to connect, 10 s per request, 2 retries
    /// from 250 ms up to 2 s apart, and 20 s for a whole call.
    pub fn new(base_url: impl Into<String>, product: impl Into<String>) -> Self {
        ClientConfig {
            base_url: base_url.into(),
            product: product.into(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            retries: 2,
            backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(2),
            deadline: Duration::from_secs(20),
        }
    }
}

/// Why an online operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OnlineError {
    /// The configuration cannot work (bad URL, no product, TLS backend unavailable).
    #[error("invalid client configuration: {0}")]
    Config(String),
    /// The system refused something the call needs (random numbers for a nonce, a thread):
    /// neither the caller's arguments nor the server are at fault.
    #[error("the system refused a resource: {0}")]
    System(String),
    /// The server could not be reached (DNS, refused or reset connection, TLS, proxy).
    #[error("cannot reach the licensing server: {0}")]
    Network(String),
    /// No answer within the limit (the call's deadline or the caller's limit).
    #[error("no answer from the licensing server within {0:?}")]
    Timeout(Duration),
    /// The server answered with an error (`{"error": code, "detail": ...}`).
    #[error("the licensing server refused (HTTP {status} {code}): {detail}")]
    Server {
        /// The HTTP status.
        status: u16,
        /// The server's error code (`license_not_found`, `machine_limit_reached`, ...), or
        /// `http_<status>` when the body was not the server's error format.
        code: String,
        /// The server's explanation.
        detail: String,
    },
    /// The answer is not what the protocol says (not JSON, a field missing or mistyped).
    #[error("unexpected answer from the licensing server: {0}")]
    BadResponse(String),
    /// A token in the answer does not verify against the app's trust store (wrong key,
    /// tampered, wrong `typ`) or is for another product.
    #[error("a token from the licensing server does not verify: {0}")]
    Token(#[source] crate::Error),
    /// The signed response does not echo this request's nonce: a replayed or stale answer.
    #[error("the signed response does not answer this request (nonce mismatch): replayed or stale")]
    Replay,
    /// The signed response is about another license or machine than the one asked about.
    #[error("the signed response does not match the request: {0}")]
    Mismatch(String),
    /// An offline activation response has expired (`exp` passed).
    #[error("the offline activation response expired {0} s ago; ask the vendor for a new one")]
    Expired(i64),
    /// An offline activation response was imported with no matching pending request.
    #[error("no offline activation request is pending on this machine")]
    NoPendingRequest,
    /// No license key is stored: activate first.
    #[error("no license key is stored: activate this machine first")]
    NotActivated,
    /// The license store could not be read or written.
    #[cfg(feature = "store")]
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl OnlineError {
    /// Whether the server was not reached or did not answer in time (so an offline check of
    /// the stored token is the right fallback), as opposed to an answer that was refused.
    pub fn is_unreachable(&self) -> bool {
        match self {
            OnlineError::Network(_) | OnlineError::Timeout(_) => true,
            OnlineError::Server { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }

    /// The class of the failure, the one every boundary (C result codes, binding exceptions)
    /// reports: each layer maps the class, none classifies the error itself.
    pub fn kind(&self) -> OnlineErrorKind {
        match self {
            OnlineError::Network(_) | OnlineError::Timeout(_) => OnlineErrorKind::Network,
            OnlineError::Server { .. } => OnlineErrorKind::Server,
            OnlineError::Config(_) => OnlineErrorKind::Config,
            OnlineError::System(_) => OnlineErrorKind::System,
            OnlineError::NotActivated | OnlineError::NoPendingRequest => {
                OnlineErrorKind::NotActivated
            }
            #[cfg(feature = "store")]
            OnlineError::Store(_) => OnlineErrorKind::Store,
            OnlineError::BadResponse(_)
            | OnlineError::Token(_)
            | OnlineError::Replay
            | OnlineError::Mismatch(_)
            | OnlineError::Expired(_) => OnlineErrorKind::BadResponse,
        }
    }

    /// The HTTP status of the server's refusal, when the server refused.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            OnlineError::Server { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server's error code, when the server refused.
    pub fn server_code(&self) -> Option<&str> {
        match self {
            OnlineError::Server { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// The class of an [`OnlineError`]: what the host does about it. Exhaustive on purpose: a new
/// class is a compile error wherever a layer must decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OnlineErrorKind {
    /// The server was not reached or did not answer in time (network, DNS, TLS, timeout).
    Network,
    /// The server answered with an error (its code is [`OnlineError::server_code`]).
    Server,
    /// The client's configuration cannot work (an argument of the host).
    Config,
    /// The system refused a resource (random numbers, a thread); retrying later may work.
    System,
    /// An earlier step is missing: no license key stored, or no offline request pending.
    NotActivated,
    /// The license store could not be read or written.
    Store,
    /// The server's answer was refused: not the protocol's format, a token that does not
    /// verify, a replay, another license or machine, an expired offline response.
    BadResponse,
}

/// A client of one licensing server for one product. Cheap to share across threads.
///
/// Blocking: call it from a plain thread, not from inside an async runtime.
#[derive(Debug, Clone)]
pub struct Client {
    config: ClientConfig,
    verifier: Verifier,
    http: http::Http,
    /// The app's user, sent with activations and validations ([`Client::with_user`]).
    user: Option<String>,
}

impl Client {
    /// A client for `config`, verifying every answer against `trust_store` (the keys shipped
    /// with the app), over the default transport ([`ReqwestTransport`]: reqwest with rustls).
    /// Each request names the trust store's kids ([`TRUSTED_KIDS_HEADER`]), so a server that
    /// promoted a new key keeps answering this app with a key it trusts until the vendor
    /// retires that key.
    #[cfg(feature = "online")]
    pub fn new(config: ClientConfig, trust_store: TrustStore) -> Result<Self, OnlineError> {
        let transport = ReqwestTransport::new(&config)?;
        Self::with_transport(config, trust_store, Arc::new(transport))
    }

    /// A client as `Client::new` (feature `online`) makes, over `transport`: the app's own HTTP
    /// stack (the platform's on mobile: its trust store, proxies and certificate pinning).
    /// Only the exchange is the transport's: the requests, retries, time limits, size cap and
    /// every signature check stay the client's. `http://` and `https://` base URLs only,
    /// whatever the transport.
    pub fn with_transport(
        config: ClientConfig,
        trust_store: TrustStore,
        transport: Arc<dyn Transport>,
    ) -> Result<Self, OnlineError> {
        if config.product.is_empty() {
            return Err(OnlineError::Config("the product id is empty".into()));
        }
        let http = http::Http::new(&config, &trust_store, transport)?;
        let verifier = Verifier::new(trust_store, config.product.clone());
        Ok(Client {
            config,
            verifier,
            http,
            user: None,
        })
    }

    /// This client, naming `user` (the person using the app, e.g. their login or e-mail
    /// address) in every activation and validation it sends: the server links the machine to
    /// the directory user of that name in the license's organization (usage per user and
    /// department; required on a license with named seats). Floating check-outs name their
    /// user themselves ([`LeaseConfig`]). 1 to 200 characters without control characters;
    /// the server refuses other names (422 `invalid_field`).
    #[must_use]
    pub fn with_user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// Sets the user this client names in later activations and validations, as
    /// [`Client::with_user`] does; `None` or an empty name clears it (no `user` is sent).
    /// Refuses, with [`OnlineError::Config`] and the user unchanged, a name the server would
    /// refuse ([`crate::claims::is_display_name`]: only white space, more than
    /// [`MAX_USER_CHARS`] characters, or a control character or bidirectional override).
    pub fn set_user(&mut self, user: Option<String>) -> Result<(), OnlineError> {
        let user = user.filter(|u| !u.is_empty());
        if user
            .as_deref()
            .is_some_and(|name| !crate::claims::is_display_name(name))
        {
            return Err(OnlineError::Config(format!(
                "the user must be 1 to {MAX_USER_CHARS} characters, not only white space, \
                 without control characters or bidirectional overrides"
            )));
        }
        self.user = user;
        Ok(())
    }

    /// The user this client names ([`Client::with_user`], [`Client::set_user`]), if any.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The license verifier (the app's trust store, this product).
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// Activates this machine: `POST /v1/client/activate`. The machine token and the license
    /// token in the answer are verified (signature, `typ`, product, this fingerprint).
    pub fn activate(
        &self,
        license_key: &str,
        fingerprint: &MachineFingerprint,
    ) -> Result<Activation, OnlineError> {
        self.activate_within(license_key, fingerprint, self.config.deadline)
    }

    pub(crate) fn activate_within(
        &self,
        license_key: &str,
        fingerprint: &MachineFingerprint,
        limit: Duration,
    ) -> Result<Activation, OnlineError> {
        let (status, body) = self.http.post(
            &self.config,
            "/v1/client/activate",
            &ActivateRequest {
                license_key: license_key.to_owned(),
                fingerprint: fingerprint.clone(),
                user: self.user.clone(),
            },
            limit,
        )?;
        answer::activation(&self.verifier, status, body, &fingerprint.id)
    }

    /// Moves the activation of the machine `from_fingerprint_id` to `fingerprint` (this
    /// machine): `POST /v1/client/transfer`, one transaction on the server counting one
    /// transfer against the policy's `max_transfers`. Answers and is verified like
    /// [`Self::activate`]; refusals are [`OnlineError::Server`] with the server's code
    /// (`transfer_limit_reached`, `machine_not_found` for an unknown `from_fingerprint_id`,
    /// `machine_already_activated`, `license_suspended`, ...).
    pub fn transfer(
        &self,
        license_key: &str,
        from_fingerprint_id: &str,
        fingerprint: &MachineFingerprint,
    ) -> Result<Activation, OnlineError> {
        let (status, body) = self.http.post(
            &self.config,
            "/v1/client/transfer",
            &TransferRequest {
                license_key: license_key.to_owned(),
                from_fingerprint: from_fingerprint_id.to_owned(),
                fingerprint: fingerprint.clone(),
            },
            self.config.deadline,
        )?;
        answer::activation(&self.verifier, status, body, &fingerprint.id)
    }

    /// Releases this machine's activation: `POST /v1/client/deactivate`.
    pub fn deactivate(
        &self,
        license_key: &str,
        fingerprint_id: &str,
    ) -> Result<Deactivation, OnlineError> {
        self.deactivate_with(license_key, fingerprint_id, None)
    }

    /// [`Self::deactivate`] with this machine's whole fingerprint, so the server finds the
    /// activation by the license's match rule after a tolerated hardware change.
    pub fn deactivate_machine(
        &self,
        license_key: &str,
        fingerprint: &MachineFingerprint,
    ) -> Result<Deactivation, OnlineError> {
        self.deactivate_with(license_key, &fingerprint.id, Some(fingerprint))
    }

    fn deactivate_with(
        &self,
        license_key: &str,
        fingerprint_id: &str,
        machine: Option<&MachineFingerprint>,
    ) -> Result<Deactivation, OnlineError> {
        let (_, body) = self.http.post(
            &self.config,
            "/v1/client/deactivate",
            &DeactivateRequest {
                license_key: license_key.to_owned(),
                fingerprint: fingerprint_id.to_owned(),
                machine: machine.cloned(),
            },
            self.config.deadline,
        )?;
        answer::deactivation(body)
    }

    /// Validates online: `POST /v1/client/validate` with a fresh random nonce; the answer must
    /// be a `response+jwt` for this product signed by a trusted key and echoing that nonce.
    /// Any license or machine token it carries is verified too.
    pub fn validate(
        &self,
        license_key: &str,
        fingerprint_id: &str,
    ) -> Result<Validation, OnlineError> {
        self.validate_within(
            license_key,
            fingerprint_id,
            None,
            None,
            self.config.deadline,
        )
    }

    /// [`Self::validate`], naming the tokens the app already holds: the server signs a new
    /// license or machine token only when the held one is due (the license changed, the key
    /// rotated, or half the check-in interval passed), and otherwise answers `None` for it.
    /// Only name tokens whose signatures were checked ([`HeldTokens::from_verified`]).
    pub fn validate_holding(
        &self,
        license_key: &str,
        fingerprint_id: &str,
        held: &HeldTokens,
    ) -> Result<Validation, OnlineError> {
        self.validate_within(
            license_key,
            fingerprint_id,
            None,
            Some(held),
            self.config.deadline,
        )
    }

    /// `machine`: this machine's whole fingerprint (its id is `fingerprint_id`), so the server
    /// recognizes it by the license's match rule after a tolerated hardware change.
    pub(crate) fn validate_within(
        &self,
        license_key: &str,
        fingerprint_id: &str,
        machine: Option<&MachineFingerprint>,
        held: Option<&HeldTokens>,
        limit: Duration,
    ) -> Result<Validation, OnlineError> {
        let nonce = new_nonce()?;
        let (_, body) = self.http.post(
            &self.config,
            "/v1/client/validate",
            &ValidateRequest {
                license_key: license_key.to_owned(),
                fingerprint: fingerprint_id.to_owned(),
                nonce: nonce.clone(),
                machine: machine.cloned(),
                held: held.cloned(),
                user: self.user.clone(),
            },
            limit,
        )?;
        let answer: ValidateResponse = answer::parse(body, "validation")?;
        answer::verify_response(
            &self.verifier,
            &answer.response_token,
            &nonce,
            fingerprint_id,
        )
    }

    /// An air-gapped activation request for `fingerprint` at `now`, with a fresh nonce: the
    /// JSON to hand to the vendor (a file), and the nonce its response must echo.
    pub fn offline_activation_request(
        &self,
        license_key: &str,
        fingerprint: &MachineFingerprint,
        now: i64,
    ) -> Result<OfflineRequest, OnlineError> {
        OfflineRequest::new(license_key, fingerprint, new_nonce()?, now)
    }

    /// Verifies the vendor's air-gapped activation response (the file's text) against the
    /// request it answers: signed `response+jwt` for this product, `offline: true`, the
    /// request's nonce and fingerprint, not expired at `now`.
    pub fn verify_offline_response(
        &self,
        response: &str,
        request: &OfflineRequest,
        now: i64,
    ) -> Result<Validation, OnlineError> {
        answer::verify_offline_response(&self.verifier, response, request, now)
    }
}

/// 32 random bytes, base64url: 43 printable ASCII characters, as the server's 8–128 rule asks.
fn new_nonce() -> Result<String, OnlineError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| OnlineError::System(format!("no random numbers for a nonce: {e}")))?;
    Ok(crate::b64::encode(&bytes))
}

#[cfg(all(test, feature = "issuer", feature = "online"))]
mod tests;
#[cfg(all(test, feature = "issuer"))]
mod transport_tests;

#[cfg(test)]
mod kind_tests {
    use super::*;

    #[test]
    fn every_online_error_has_its_class() {
        let server = |status| OnlineError::Server {
            status,
            code: "license_not_found".into(),
            detail: String::new(),
        };
        let cases = [
            (
                OnlineError::Network("refused".into()),
                OnlineErrorKind::Network,
            ),
            (
                OnlineError::Timeout(Duration::from_secs(1)),
                OnlineErrorKind::Network,
            ),
            (server(404), OnlineErrorKind::Server),
            (server(503), OnlineErrorKind::Server),
            (OnlineError::Config("url".into()), OnlineErrorKind::Config),
            (OnlineError::System("rng".into()), OnlineErrorKind::System),
            (OnlineError::NotActivated, OnlineErrorKind::NotActivated),
            (OnlineError::NoPendingRequest, OnlineErrorKind::NotActivated),
            (
                OnlineError::BadResponse("json".into()),
                OnlineErrorKind::BadResponse,
            ),
            (
                OnlineError::Token(crate::Error::SignatureInvalid),
                OnlineErrorKind::BadResponse,
            ),
            (OnlineError::Replay, OnlineErrorKind::BadResponse),
            (
                OnlineError::Mismatch("fp".into()),
                OnlineErrorKind::BadResponse,
            ),
            (OnlineError::Expired(5), OnlineErrorKind::BadResponse),
        ];
        for (error, kind) in cases {
            assert_eq!(error.kind(), kind, "{error}");
            assert_eq!(
                error.http_status().is_some(),
                kind == OnlineErrorKind::Server,
                "{error}"
            );
        }
    }

    #[test]
    fn every_lease_loss_has_its_class_number_and_code() {
        let cases = [
            (
                LeaseLoss::Released {
                    code: "lease_released".into(),
                    detail: "d".into(),
                },
                LeaseLossKind::Released,
                Some("lease_released"),
            ),
            (
                LeaseLoss::Refused {
                    status: 403,
                    code: "license_suspended".into(),
                    detail: "d".into(),
                },
                LeaseLossKind::Refused,
                Some("license_suspended"),
            ),
            (
                LeaseLoss::Unreachable { detail: "d".into() },
                LeaseLossKind::Unreachable,
                None,
            ),
            (
                LeaseLoss::Invalid { detail: "d".into() },
                LeaseLossKind::Invalid,
                None,
            ),
            (
                LeaseLoss::Idle { detail: "d".into() },
                LeaseLossKind::Idle,
                None,
            ),
        ];
        for (loss, kind, code) in cases {
            assert_eq!(loss.kind(), kind, "{loss}");
            assert_eq!(loss.server_code(), code, "{loss}");
            assert_eq!(loss.detail(), "d");
        }
        for (i, kind) in LeaseLossKind::ALL.into_iter().enumerate() {
            assert_eq!(kind as usize, i + 1, "{kind:?}");
        }
    }
}
