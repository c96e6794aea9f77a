//! `OnlineClient`: the core's online client and the online operations of [`Licensing`], one
//! delegation each.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use licensing_core::Verdict;
use licensing_core::online::{Client, ClientConfig, OnlineCheck};

use crate::transport::{ForeignTransport, HttpTransport};
use crate::{Licensing, LicensingError, TrustStore};

/// The outcome of an online check or validation.
#[derive(Debug, Clone, uniffi::Record)]
pub struct OnlineResult {
    /// The verdict to act on.
    pub verdict: Verdict,
    /// Whether the server answered (false: the verdict is the stored token's, offline).
    pub online: bool,
    /// Why the check was offline, when it was.
    pub offline_reason: Option<String>,
    /// The license's status on the server (`active`, `suspended`, `revoked`, ...), when it
    /// answered.
    pub server_status: Option<String>,
    /// The server's signed clock (seconds since the epoch), when it answered.
    pub server_time: Option<i64>,
}

impl From<OnlineCheck> for OnlineResult {
    fn from(check: OnlineCheck) -> Self {
        OnlineResult {
            verdict: check.verdict,
            online: check.offline_reason.is_none(),
            offline_reason: check.offline_reason.map(|e| e.to_string()),
            server_status: check
                .validation
                .as_ref()
                .map(|v| v.status.as_str().to_owned()),
            server_time: check.validation.as_ref().map(|v| v.server_time),
        }
    }
}

/// A client of one licensing server for one product: timeouts, retries with backoff, a
/// deadline per call; every answer verified against the app's trust store (never against keys
/// the server publishes). Proxies come from the environment. Calls block: run them off the UI
/// thread.
#[derive(Debug, uniffi::Object)]
pub struct OnlineClient(RwLock<Arc<Client>>);

impl OnlineClient {
    fn wrap(client: Client) -> Self {
        OnlineClient(RwLock::new(Arc::new(client)))
    }

    /// The client as it is now (the user last set); a call keeps the one it started with.
    pub(crate) fn client(&self) -> Arc<Client> {
        Arc::clone(&self.0.read().unwrap_or_else(|e| e.into_inner()))
    }
}

#[uniffi::export]
impl OnlineClient {
    /// A client for the server at `base_url` and the product `product_id`; `deadline_ms`
    /// bounds each call, retries included (absent: 20 s). Over the built-in HTTP stack
    /// (rustls); a build without it (feature `online-core`, mobile) refuses with
    /// `InvalidArgument`: use `with_transport`.
    #[uniffi::constructor]
    pub fn new(
        trust_store: Arc<TrustStore>,
        base_url: String,
        product_id: String,
        deadline_ms: Option<u32>,
    ) -> Result<Self, LicensingError> {
        let config = config(base_url, product_id, deadline_ms);
        #[cfg(feature = "online")]
        let client = Client::new(config, trust_store.0.clone());
        #[cfg(not(feature = "online"))]
        let client: Result<Client, _> = {
            let _ = (config, &trust_store);
            Err(licensing_core::OnlineError::Config(
                "this build has no built-in HTTP stack: use OnlineClient.with_transport".into(),
            ))
        };
        Ok(OnlineClient::wrap(client?))
    }

    /// `new` over `transport`, the app's own HTTP stack (`HttpURLConnection`/OkHttp,
    /// `URLSession`, ...), so the app keeps its platform's trust store, proxies and
    /// certificate pinning. The requests, retries, time limits, size cap and every signature
    /// check stay the library's.
    #[uniffi::constructor]
    pub fn with_transport(
        trust_store: Arc<TrustStore>,
        base_url: String,
        product_id: String,
        deadline_ms: Option<u32>,
        transport: Arc<dyn HttpTransport>,
    ) -> Result<Self, LicensingError> {
        let config = config(base_url, product_id, deadline_ms);
        let transport = Arc::new(ForeignTransport(transport));
        Ok(OnlineClient::wrap(Client::with_transport(
            config,
            trust_store.0.clone(),
            transport,
        )?))
    }

    /// Names `user` (the person using the app: their login or e-mail address) in the
    /// activations and validations this client sends from now on, so the server links the
    /// machine to the directory user of that name (usage per user and department; required on
    /// a license with named seats). `None` or `""` clears it. `InvalidArgument` (the user
    /// unchanged) for a name the server would refuse: only white space, more than 200
    /// characters, control characters or bidirectional overrides.
    pub fn set_user(&self, user: Option<String>) -> Result<(), LicensingError> {
        let mut slot = self.0.write().unwrap_or_else(|e| e.into_inner());
        let mut next = Client::clone(&slot);
        next.set_user(user)?;
        *slot = Arc::new(next);
        Ok(())
    }

    /// Activates this machine with `license_key` and installs the license token the server
    /// answers (with the key, for later validations).
    pub fn activate(
        &self,
        licensing: Arc<Licensing>,
        license_key: String,
        now: i64,
    ) -> Result<Verdict, LicensingError> {
        Ok(licensing
            .0
            .activate(&self.client(), &license_key, now)?
            .verdict)
    }

    /// Validates online with the stored key: fresh nonce, signed answer, refreshed token,
    /// server time into the clock guard, suspension/revocation kept for offline starts.
    pub fn validate(
        &self,
        licensing: Arc<Licensing>,
        now: i64,
    ) -> Result<OnlineResult, LicensingError> {
        Ok(licensing.0.validate_online(&self.client(), now)?.into())
    }

    /// The startup check with the server, never longer than `limit_ms`: online when it
    /// answers, otherwise the stored token offline (`online` false, with the reason).
    pub fn check_online(
        &self,
        licensing: Arc<Licensing>,
        now: i64,
        limit_ms: u32,
    ) -> Result<OnlineResult, LicensingError> {
        let limit = Duration::from_millis(u64::from(limit_ms));
        Ok(licensing.0.check_online(&self.client(), now, limit)?.into())
    }

    /// Moves the activation of the machine whose fingerprint id is `from_fingerprint` (the old
    /// machine) to this one with `license_key`, counted against the policy's `max_transfers`,
    /// and installs the answer as `activate` does. Server refusals: `transfer_limit_reached`,
    /// `machine_not_found`, `machine_already_activated`, `license_not_found`, ...
    pub fn transfer(
        &self,
        licensing: Arc<Licensing>,
        license_key: String,
        from_fingerprint: String,
        now: i64,
    ) -> Result<Verdict, LicensingError> {
        Ok(licensing
            .0
            .transfer(&self.client(), &license_key, &from_fingerprint, now)?
            .verdict)
    }

    /// Deactivates this air-gapped machine by itself: answers the offline deactivation receipt
    /// (JSON for the vendor, who frees the slot with it), keeps a copy in the store and removes
    /// the license from the store. Again with nothing installed: the receipt kept before. No
    /// network.
    pub fn offline_deactivate(
        &self,
        licensing: Arc<Licensing>,
        now: i64,
    ) -> Result<String, LicensingError> {
        Ok(licensing.0.offline_deactivate(now)?)
    }

    /// Releases this machine's activation, then clears the store; whether one was removed.
    pub fn deactivate(&self, licensing: Arc<Licensing>) -> Result<bool, LicensingError> {
        Ok(licensing.0.deactivate(&self.client())?.deactivated)
    }

    /// Borrows a seat of the floating license `license_key` for `seconds` for `user` of this
    /// installation (`client_id`): taken offline with no heartbeat, its token kept in the store
    /// (see `Licensing.check_borrowed_seat`). Answers when it ends (the server may end it
    /// earlier than asked, never past the license's expiry). Server refusals:
    /// `borrowing_not_allowed`, `borrow_limit`, `no_seats`.
    pub fn borrow_seat(
        &self,
        licensing: Arc<Licensing>,
        license_key: String,
        client_id: String,
        user: String,
        seconds: u64,
    ) -> Result<i64, LicensingError> {
        let duration = Duration::from_secs(seconds);
        let grant =
            licensing
                .0
                .borrow_seat(&self.client(), &license_key, &client_id, &user, duration)?;
        Ok(grant.expires_at)
    }

    /// Returns the borrowed seat early (free on the server at once) and removes it from the
    /// store; whether one was stored.
    pub fn return_seat(
        &self,
        licensing: Arc<Licensing>,
        license_key: String,
    ) -> Result<bool, LicensingError> {
        Ok(licensing.0.return_seat(&self.client(), &license_key)?)
    }

    /// An air-gapped activation request (JSON for the vendor), kept pending in the store.
    pub fn offline_request(
        &self,
        licensing: Arc<Licensing>,
        license_key: String,
        now: i64,
    ) -> Result<String, LicensingError> {
        Ok(licensing
            .0
            .offline_activation_request(&self.client(), &license_key, now)?)
    }

    /// Imports the vendor's air-gapped activation response (the file's text).
    pub fn import_offline_response(
        &self,
        licensing: Arc<Licensing>,
        response: String,
        now: i64,
    ) -> Result<OnlineResult, LicensingError> {
        Ok(licensing
            .0
            .import_offline_response(&self.client(), &response, now)?
            .into())
    }
}

/// The client's configuration: `deadline_ms` (when given and not 0) bounds each call, and each
/// request and connection within it.
fn config(base_url: String, product_id: String, deadline_ms: Option<u32>) -> ClientConfig {
    let mut config = ClientConfig::new(base_url, product_id);
    if let Some(ms) = deadline_ms.filter(|ms| *ms > 0) {
        config.deadline = Duration::from_millis(u64::from(ms));
        config.request_timeout = config.request_timeout.min(config.deadline);
        config.connect_timeout = config.connect_timeout.min(config.deadline);
    }
    config
}
