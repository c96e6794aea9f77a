//! The reference licensing server, `licensing-server serve`: an HTTP API over a database
//! (embedded SQLite now). It stores state and calls licensing-core to sign, verify and evaluate;
//! no licensing rule is decided here.
//!
//! Startup: the data directory, the signing key (created on first start, PKCS#8 0600), the
//! database (created and migrated), a one-time admin API token on first start (printed once,
//! only its SHA-256 stored), then `listening on http://ADDR` on stdout. SIGINT/SIGTERM stop it
//! gracefully.

mod admin_token;
mod audit;
mod config;
mod conn;
mod db;
mod error;
mod extract;
mod issue;
mod keys_cli;
mod offline;
mod openapi;
mod routes;
mod secrets;
#[cfg(test)]
pub(crate) mod test_postgres;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use licensing_core::{PrivateKey, TrustStore};

pub use config::ServeArgs;
use config::Settings;
use db::Db;

pub use admin_token::{AdminTokenArgs, run_admin_token};
pub use audit::{AuditVerifyArgs, run_audit_verify};
pub use keys_cli::{
    KeysListArgs, KeysPromoteArgs, KeysStageArgs, run_keys_list, run_keys_promote, run_keys_stage,
};
pub use offline::{
    OfflineActivateArgs, OfflineDeactivateArgs, run_offline_activate, run_offline_deactivate,
};

/// The seats of a floating license that its seat-call rate grows with, at most (see
/// [`AppState::check_seat_rate`]).
const SEAT_RATE_CELLS: u32 = 1024;

/// The seats of a floating license that its seat-call rate counts at least: a small license's
/// users waiting in line poll every few seconds.
const MIN_SEAT_RATE_SEATS: i64 = 4;

/// Shared state of the handlers.
#[derive(Clone)]
pub(crate) struct AppState(Arc<Inner>);

struct Inner {
    db: Db,
    keys: std::sync::RwLock<Arc<KeyRing>>,
    issuer: String,
    /// Client API requests per license key (hash), on this replica.
    client_limiter: governor::DefaultKeyedRateLimiter<String>,
    /// Seat calls per floating license (id), on this replica: the client rate per seat (see
    /// [`AppState::check_seat_rate`]).
    seat_limiter: governor::DefaultKeyedRateLimiter<String>,
    /// This replica's one audit writer.
    audit: audit::Writer,
    /// Seconds a staged key must have been published before it may sign
    /// (`--key-min-publish-secs`).
    key_min_publish_secs: std::sync::atomic::AtomicI64,
}

/// The signing keys in effect, as loaded from the database: the keys that may sign (the
/// current key first, then the previous ones, newest first) and the published JWK Set
/// (staged, current and previous keys; retired ones are unpublished). The server never
/// verifies its own stored tokens: it decides from the claims in its database.
pub(crate) struct KeyRing {
    signers: Vec<PrivateKey>,
    jwks: serde_json::Value,
}

impl KeyRing {
    fn from_rows(rows: &[db::SigningKeyRow]) -> Result<KeyRing, String> {
        let mut current = None;
        let mut previous = Vec::new();
        let mut published = TrustStore::new();
        // `rows` come newest first.
        for row in rows {
            let key = PrivateKey::from_pkcs8_pem(&row.private_pem)
                .map_err(|e| format!("signing key {}: {e}", row.kid))?;
            if row.status != "retired" {
                published
                    .add(key.public_key().clone())
                    .map_err(|e| format!("signing key {}: {e}", row.kid))?;
            }
            match row.status.as_str() {
                "current" => current = Some(key),
                "previous" => previous.push(key),
                _ => {}
            }
        }
        let mut signers = vec![current.ok_or("the database holds no current signing key")?];
        signers.extend(previous);
        Ok(KeyRing {
            signers,
            jwks: published.to_jwks(),
        })
    }

    /// Which key signs for a client that trusts `trust`: the current key when the client
    /// trusts it (or says nothing), else the newest previous key it trusts (an app built
    /// before a promotion keeps working until that key is retired), else the current key
    /// (the client will report the key it does not trust). Staged keys never sign.
    fn signer_for(&self, trust: &ClientTrust) -> usize {
        let trusted = |kid: &str| match (&trust.kids, trust.held.get()) {
            (Some(kids), _) => kids.iter().any(|k| k == kid),
            (None, Some(held)) => held == kid,
            (None, None) => false,
        };
        if trust.kids.is_none() && trust.held.get().is_none() {
            return 0;
        }
        if trusted(self.signers[0].public_key().kid()) {
            return 0;
        }
        self.signers
            .iter()
            .position(|key| trusted(key.public_key().kid()))
            .unwrap_or(0)
    }
}

/// The keys a client request says its app trusts: the `Licensing-Trusted-Kids` header (sent
/// by the SDK: the kids of the app's trust store), or else the `kid` of the license token the
/// app holds (older SDKs send no header). Set for each request by the request layer.
#[derive(Debug, Default)]
pub(crate) struct ClientTrust {
    kids: Option<Vec<String>>,
    held: std::sync::OnceLock<String>,
}

tokio::task_local! {
    static CLIENT_TRUST: Arc<ClientTrust>;
}

/// The request header in which the SDK names the kids of the app's trust store.
pub(crate) const TRUSTED_KIDS_HEADER: &str = "licensing-trusted-kids";

/// Most kids a request may name.
const MAX_TRUSTED_KIDS: usize = 32;

/// Parses the `Licensing-Trusted-Kids` header: comma-separated kids (visible ASCII, 1 to 128
/// characters each, at most [`MAX_TRUSTED_KIDS`]). `Ok(None)` without the header.
fn trusted_kids(req: &Request) -> Result<Option<Vec<String>>, error::ApiError> {
    let mut values = req.headers().get_all(TRUSTED_KIDS_HEADER).iter().peekable();
    if values.peek().is_none() {
        return Ok(None);
    }
    let invalid = |why: &str| {
        error::ApiError::invalid(
            "invalid_trusted_kids",
            format!("header Licensing-Trusted-Kids: {why}"),
        )
    };
    let mut kids = Vec::new();
    for value in values {
        let text = value.to_str().map_err(|_| invalid("not visible ASCII"))?;
        for kid in text.split(',').map(str::trim).filter(|k| !k.is_empty()) {
            if kid.len() > 128 || !kid.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(invalid("each kid is 1 to 128 visible ASCII characters"));
            }
            kids.push(kid.to_owned());
        }
    }
    if kids.len() > MAX_TRUSTED_KIDS {
        return Err(invalid(&format!("at most {MAX_TRUSTED_KIDS} kids")));
    }
    Ok(Some(kids))
}

/// Notes the kid of the license token a client holds (signature checked by the client): when
/// the request named no trusted kids, the answer is signed with that key if it still signs.
pub(crate) fn note_held_kid(kid: &str) {
    let _ = CLIENT_TRUST.try_with(|trust| trust.held.set(kid.to_owned()));
}

/// Runs `f` signing with the current key whatever the client trusts (tokens the server stores
/// are always signed by the current key).
pub(crate) fn with_current_key<T>(f: impl FnOnce() -> T) -> T {
    CLIENT_TRUST.sync_scope(Arc::new(ClientTrust::default()), f)
}

/// The key that signs (keeps its key ring alive while in use).
pub(crate) struct Signer(Arc<KeyRing>, usize);

impl std::ops::Deref for Signer {
    type Target = PrivateKey;
    fn deref(&self) -> &PrivateKey {
        &self.0.signers[self.1]
    }
}

impl AppState {
    async fn new(db: Db, issuer: String, client_rate_per_minute: u32) -> Result<Self, String> {
        let ring = Self::load_ring(&db).await?;
        let per_minute = std::num::NonZeroU32::new(client_rate_per_minute)
            .ok_or("client_rate_per_minute must be at least 1")?;
        Ok(AppState(Arc::new(Inner {
            audit: audit::Writer::start(db.clone()),
            db,
            keys: std::sync::RwLock::new(Arc::new(ring)),
            issuer,
            client_limiter: governor::RateLimiter::keyed(governor::Quota::per_minute(per_minute)),
            key_min_publish_secs: std::sync::atomic::AtomicI64::new(
                config::DEFAULT_KEY_MIN_PUBLISH_SECS,
            ),
            seat_limiter: governor::RateLimiter::keyed(governor::Quota::per_minute(
                per_minute.saturating_mul(
                    std::num::NonZeroU32::new(SEAT_RATE_CELLS).unwrap_or(std::num::NonZeroU32::MIN),
                ),
            )),
        })))
    }

    /// Sets how long a staged key must have been published before it may sign.
    pub(crate) fn set_key_min_publish_secs(&self, secs: u64) {
        let secs = i64::try_from(secs).unwrap_or(i64::MAX);
        self.0
            .key_min_publish_secs
            .store(secs, std::sync::atomic::Ordering::Relaxed);
    }

    /// How long a staged key must have been published before it may sign, seconds.
    pub(crate) fn key_min_publish_secs(&self) -> i64 {
        self.0
            .key_min_publish_secs
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// This replica's audit writer.
    pub(crate) fn audit(&self) -> &audit::Writer {
        &self.0.audit
    }

    /// 429 when the license key with this hash has used its client-API rate on this replica.
    pub(crate) fn check_client_rate(&self, key_hash: &str) -> Result<(), error::ApiError> {
        use governor::clock::Clock as _;
        match self.0.client_limiter.check_key(&key_hash.to_owned()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                metrics::counter!("licensing_client_rate_limited_total").increment(1);
                let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
                Err(error::ApiError::rate_limited(wait.as_secs().max(1)))
            }
        }
    }

    /// 429 when the floating license `license_id`, of `seats` seats, has used its seat-call
    /// rate on this replica: the client rate (`client_rate_per_minute`) times its seats, at
    /// least [`MIN_SEAT_RATE_SEATS`] and at most [`SEAT_RATE_CELLS`] of them (a burst of as
    /// many). Each call costs `SEAT_RATE_CELLS / seats` cells of a bucket of the client rate
    /// times `SEAT_RATE_CELLS`, so one keyed limiter serves every size of license.
    pub(crate) fn check_seat_rate(
        &self,
        license_id: &str,
        seats: i64,
    ) -> Result<(), error::ApiError> {
        use governor::clock::Clock as _;
        let seats = u32::try_from(seats.clamp(MIN_SEAT_RATE_SEATS, i64::from(SEAT_RATE_CELLS)))
            .unwrap_or(SEAT_RATE_CELLS);
        let cost = std::num::NonZeroU32::new(SEAT_RATE_CELLS.div_ceil(seats.max(1)))
            .unwrap_or(std::num::NonZeroU32::MIN);
        match self
            .0
            .seat_limiter
            .check_key_n(&license_id.to_owned(), cost)
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => {
                metrics::counter!("licensing_seat_rate_limited_total").increment(1);
                let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
                Err(error::ApiError::rate_limited(wait.as_secs().max(1)))
            }
            // Never: the cost is at most the bucket (the client rate is at least 1).
            Err(_) => Err(error::ApiError::rate_limited(60)),
        }
    }

    async fn load_ring(db: &Db) -> Result<KeyRing, String> {
        let rows = db
            .list_signing_keys()
            .await
            .map_err(|e| format!("loading signing keys: {e}"))?;
        KeyRing::from_rows(&rows)
    }

    /// Reloads the key ring from the database (after a rotation here, and periodically, so
    /// every replica follows a rotation made on another).
    pub(crate) async fn reload_keys(&self) -> Result<(), String> {
        let ring = Arc::new(Self::load_ring(self.db()).await?);
        match self.0.keys.write() {
            Ok(mut keys) => *keys = ring,
            Err(poisoned) => *poisoned.into_inner() = ring,
        }
        Ok(())
    }

    fn ring(&self) -> Arc<KeyRing> {
        match self.0.keys.read() {
            Ok(keys) => Arc::clone(&keys),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// The database.
    pub(crate) fn db(&self) -> &Db {
        &self.0.db
    }

    /// The key that signs now: the current key, or, in a client request whose app does not
    /// trust the current key yet, the newest previous key it trusts ([`KeyRing::signer_for`]).
    pub(crate) fn key(&self) -> Signer {
        let ring = self.ring();
        let index = CLIENT_TRUST
            .try_with(|trust| ring.signer_for(trust))
            .unwrap_or(0);
        Signer(ring, index)
    }

    /// A verifier trusting the published keys, for any product (tests check what the server
    /// signs the way a client would).
    #[cfg(test)]
    pub(crate) fn verifier(&self) -> licensing_core::Verifier {
        let store = TrustStore::from_document(&self.jwks().to_string())
            .unwrap_or_else(|_| TrustStore::new());
        licensing_core::Verifier::for_any_product(store)
    }

    /// The JWK Set of the published public keys.
    pub(crate) fn jwks(&self) -> serde_json::Value {
        self.ring().jwks.clone()
    }

    /// The `iss` of signed tokens.
    pub(crate) fn issuer(&self) -> &str {
        &self.0.issuer
    }
}

/// Now, in Unix seconds, from the server's clock.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The HTTP API.
pub(crate) fn router(state: AppState) -> Router {
    prometheus();
    let (api, _) = api_router();
    api.fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(extract::MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            around_request,
        ))
        .with_state(state)
}

/// Every route and its OpenAPI document, from one list: `routes!` registers each handler at the
/// method and path of its `#[utoipa::path]` attribute and adds that operation to the document.
pub(crate) fn api_router() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    use routes::*;
    use utoipa_axum::routes;
    let mut doc = <openapi::ApiDoc as utoipa::OpenApi>::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    utoipa_axum::router::OpenApiRouter::with_openapi(doc)
        .routes(routes!(healthz))
        .routes(routes!(metrics_text))
        .routes(routes!(jwks))
        .routes(routes!(openapi::openapi_json))
        .routes(routes!(create_organization, list_organizations))
        .routes(routes!(create_api_token, list_api_tokens))
        .routes(routes!(revoke_api_token))
        .routes(routes!(list_keys))
        .routes(routes!(rotate_key))
        .routes(routes!(stage_key))
        .routes(routes!(promote_key))
        .routes(routes!(retire_key))
        .routes(routes!(create_product, list_products))
        .routes(routes!(create_policy, list_policies))
        .routes(routes!(get_policy))
        .routes(routes!(create_license, list_licenses))
        .routes(routes!(get_license))
        .routes(routes!(suspend_license))
        .routes(routes!(reinstate_license))
        .routes(routes!(revoke_license))
        .routes(routes!(renew_license))
        .routes(routes!(list_machines))
        .routes(routes!(delete_machine))
        .routes(routes!(activate))
        .routes(routes!(validate))
        .routes(routes!(deactivate))
        .routes(routes!(transfer))
        .routes(routes!(offline::activate_handler))
        .routes(routes!(offline::deactivate_handler))
        .routes(routes!(list_leases))
        .routes(routes!(force_release))
        .routes(routes!(set_lease_timeout))
        .routes(routes!(set_borrowing))
        .routes(routes!(set_queue))
        .routes(routes!(remove_from_queue))
        .routes(routes!(list_denials))
        .routes(routes!(denials_report))
        .routes(routes!(list_alerts))
        .routes(routes!(check_out))
        .routes(routes!(heartbeat))
        .routes(routes!(check_in))
        .routes(routes!(leave_queue))
        .routes(routes!(list_audit))
        .routes(routes!(verify_audit))
        .split_for_parts()
}

/// The process-wide Prometheus recorder (a recorder can be installed once per process).
fn prometheus() -> &'static metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
        std::sync::OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = metrics_exporter_prometheus::PrometheusBuilder::new()
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Suffix("duration_seconds".into()),
                &[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ],
            )
            .unwrap_or_else(|_| metrics_exporter_prometheus::PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder is installed; then this handle renders nothing.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// Histogram observations between two drains of the recorder's sample buffers.
const METRICS_UPKEEP_EVERY: u64 = 4096;

/// Records `value` in `histogram`. The Prometheus recorder keeps every raw sample (24 bytes)
/// until it is drained into its buckets, which a scrape of `/metrics` does: a server nobody
/// scrapes grew by that much per request, for ever. Every [`METRICS_UPKEEP_EVERY`]-th
/// observation drains them here, so memory stays flat whether or not anything scrapes.
fn observe(histogram: &metrics::Histogram, value: f64) {
    static OBSERVED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    histogram.record(value);
    let n = OBSERVED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if n % METRICS_UPKEEP_EVERY == METRICS_UPKEEP_EVERY - 1 {
        prometheus().run_upkeep();
    }
}

/// `GET /metrics`: Prometheus text format (request counts and latencies per route, rate
/// limiting, and the licensing events the handlers count).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = openapi::TAG_PUBLIC,
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)),
)]
pub(crate) async fn metrics_text() -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        prometheus().render(),
    )
}

/// What every request goes through, in one layer (each layer costs a boxed service clone and
/// future per request): the [`REQUEST_TIMEOUT`] deadline, error answers made JSON
/// ([`json_errors`]), then metrics and one log line: method, path, status, duration. Never
/// headers or bodies (they carry API tokens and license keys). A successful state-changing
/// admin request is appended to the audit trail here, after its handler ([`audit::Pending`]).
async fn around_request(
    axum::extract::State(state): axum::extract::State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let method = req.method().clone();
    // Copied only when the line is written (the log level may leave it out).
    let path: Option<String> = tracing::enabled!(tracing::Level::INFO)
        .then(|| req.uri().path().chars().take(200).collect());
    // The route template (`/v1/licenses/{id}`), never the raw path: bounded label values.
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".into(), |m| static_label(m.as_str()));
    let start = Instant::now();
    let audit = audit::Pending::for_request(&mut req);
    let response = match trusted_kids(&req) {
        Ok(kids) => {
            let trust = Arc::new(ClientTrust {
                kids,
                ..ClientTrust::default()
            });
            json_errors(CLIENT_TRUST.scope(trust, deadline(next.run(req))).await).await
        }
        Err(e) => axum::response::IntoResponse::into_response(e),
    };
    if let Some(audit) = audit {
        audit.record(&state, response.status(), now()).await;
    }
    let status = response.status();
    // Never interned: a client may send any method token.
    let method_label = match method {
        axum::http::Method::GET => "GET",
        axum::http::Method::POST => "POST",
        axum::http::Method::PUT => "PUT",
        axum::http::Method::DELETE => "DELETE",
        axum::http::Method::HEAD => "HEAD",
        axum::http::Method::PATCH => "PATCH",
        axum::http::Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    let labels = [
        ("method", metrics::SharedString::const_str(method_label)),
        ("route", route),
        ("status", static_label(status.as_str())),
    ];
    metrics::counter!("licensing_http_requests_total", &labels).increment(1);
    observe(
        &metrics::histogram!("licensing_http_request_duration_seconds", &labels[..2]),
        start.elapsed().as_secs_f64(),
    );
    tracing::info!(
        %method,
        path = path.as_deref().unwrap_or_default(),
        status = response.status().as_u16(),
        micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX),
        "request"
    );
    response
}

/// Longest a request may take, body upload included.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A label value from a bounded set (the router's route templates, status codes; never a value a
/// client chooses) as a `&'static str`, so the metrics of a request allocate nothing: each
/// distinct value is leaked once, on first use.
fn static_label(value: &str) -> metrics::SharedString {
    static SEEN: std::sync::RwLock<std::collections::BTreeSet<&'static str>> =
        std::sync::RwLock::new(std::collections::BTreeSet::new());
    let known = SEEN
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(value)
        .copied();
    let value = known.unwrap_or_else(|| {
        let mut seen = SEEN
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match seen.get(value) {
            Some(known) => *known,
            None => {
                let leaked: &'static str = Box::leak(value.to_owned().into_boxed_str());
                seen.insert(leaked);
                leaked
            }
        }
    });
    metrics::SharedString::const_str(value)
}

/// Answers 408 to a request not done within [`REQUEST_TIMEOUT`] (a client that announces a
/// body and never sends it holds nothing longer than that).
async fn deadline(handler: impl std::future::Future<Output = Response>) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, handler).await {
        Ok(response) => response,
        Err(_) => axum::response::IntoResponse::into_response(error::ApiError::new(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!(
                "the request took longer than {} s",
                REQUEST_TIMEOUT.as_secs()
            ),
        )),
    }
}

/// Any error answer that is not JSON yet (a rejection from an extractor this crate does not
/// wrap, e.g. a path segment that is not UTF-8) becomes `{"error", "detail"}` too.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let detail = match axum::body::to_bytes(response.into_body(), 4096).await {
        Ok(bytes) if !bytes.is_empty() => String::from_utf8_lossy(&bytes).into_owned(),
        _ => status.canonical_reason().unwrap_or("error").to_owned(),
    };
    let code = if status.is_client_error() {
        "bad_request"
    } else {
        "internal"
    };
    axum::response::IntoResponse::into_response(error::ApiError::new(status, code, detail))
}

/// Runs `serve` to completion: exit 0 after a graceful shutdown, 2 when startup fails.
pub fn run(args: ServeArgs) -> ExitCode {
    init_logging("info,sqlx=warn");
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let settings = match Settings::resolve(args) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(serve(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `default_filter`).
fn init_logging(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the async runtime: {e}"))
}

/// `println!` that ignores a closed stdout.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// Refuses an unusable `--database-url` before anything is created.
fn check_database_url(args: &Settings) -> Result<(), String> {
    if let Some(url) = &args.database_url
        && !["sqlite:", "postgres://", "postgresql://"]
            .iter()
            .any(|scheme| url.starts_with(scheme))
    {
        return Err("--database-url must start with sqlite: or postgres:// (postgresql://)".into());
    }
    Ok(())
}

/// Opens what `serve` works on: the data directory (created), the migrated database (a SQLite
/// file created 0600: it holds the private signing keys), and the signing key in it (from the
/// key file on first start or when one is named).
async fn open_store(args: &Settings) -> Result<Db, String> {
    check_database_url(args)?;
    create_data_dir(&args.data_dir)?;
    let file = match &args.database_url {
        None => Some(args.data_dir.join("licensing.db")),
        Some(url) if url.starts_with("sqlite:") => db::sqlite_url_path(url)?,
        Some(_) => None,
    };
    let db = match (&args.database_url, file) {
        // `sqlite:/path/lic.db` as written in the README: the file is created here (0600), so
        // the URL needs no `?mode=rwc`.
        (_, Some(file)) => {
            if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
                create_data_dir(parent)?;
            }
            private_database_file(&file)?;
            Db::open_sqlite_file(&file).await?
        }
        (Some(url), None) => Db::open(url).await?,
        (None, None) => return Err("no database".into()),
    };
    ensure_signing_key(&db, args).await?;
    Ok(db)
}

/// Opens the database of an existing server for a command that works on it directly (`offline
/// activate`, `admin-token`, `audit verify`): a missing data directory or database file is
/// refused (never created; a mistyped `--data-dir` must not start a new server's state), and
/// so is a PostgreSQL database without the server's schema. `schema` says whether it may be
/// migrated or must be read only.
pub(crate) async fn open_existing_store(args: &Settings, schema: db::Schema) -> Result<Db, String> {
    check_database_url(args)?;
    let mode = if schema == db::Schema::ReadOnly {
        "ro"
    } else {
        "rw"
    };
    let never = "this command never creates one";
    let file = match &args.database_url {
        None => {
            if !args.data_dir.is_dir() {
                return Err(format!(
                    "no data directory at {} (check --data-dir; {never})",
                    args.data_dir.display()
                ));
            }
            args.data_dir.join("licensing.db")
        }
        Some(url) if url.starts_with("sqlite:") => match db::sqlite_url_path(url)? {
            Some(file) => file,
            None => return Err("--database-url: an in-memory database holds no server".into()),
        },
        Some(url) => return Db::open_as(url, schema).await,
    };
    if !file.is_file() {
        return Err(format!(
            "no database at {} (check --data-dir / --database-url; {never})",
            file.display()
        ));
    }
    Db::open_as(&db::sqlite_file_url(&file, mode)?, schema).await
}

/// The SQLite database file holds the private signing keys: it is created 0600 whatever the
/// umask (SQLite gives its `-wal` and `-shm` files the database file's mode), and an existing
/// one (with its `-wal` and `-shm`) open to group or others is made 0600.
fn private_database_file(path: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let fail = |p: &Path, e: std::io::Error| format!("database file {}: {e}", p.display());
        // Never truncated: an existing database is only opened.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| fail(path, e))?;
        let mut files = vec![(path.to_path_buf(), Some(file))];
        for suffix in ["-wal", "-shm"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            files.push((std::path::PathBuf::from(name), None));
        }
        for (path, file) in files {
            let meta = match &file {
                Some(file) => file.metadata(),
                None => std::fs::symlink_metadata(&path),
            };
            let meta = match meta {
                Ok(meta) => meta,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(fail(&path, e)),
            };
            let mode = meta.permissions().mode();
            if meta.is_file() && mode & 0o077 != 0 {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o700))
                    .map_err(|e| fail(&path, e))?;
                tracing::warn!(path = %path.display(), "was open to group or others; made 0600");
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

async fn serve(args: Settings) -> Result<(), String> {
    let db = open_store(&args).await?;
    db.set_seat_batch_wait(args.seat_batch_wait);
    bootstrap_admin_token(&db).await?;
    let state = AppState::new(db.clone(), args.issuer.clone(), args.client_rate_per_minute).await?;
    state.set_key_min_publish_secs(args.key_min_publish_secs);
    tracing::info!(kid = state.key().public_key().kid(), "current signing key");
    tokio::spawn(reload_keys_periodically(
        state.clone(),
        std::time::Duration::from_secs(args.key_reload_secs),
    ));

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("listening on {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(%addr, "listening");
    outln!("listening on http://{addr}");
    let reaper = spawn_reaper(
        db.clone(),
        std::time::Duration::from_secs(args.reap_interval),
        now,
    );
    conn::serve(listener, router(state), args.limits, shutdown_signal()).await;
    reaper.abort();
    db.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// What one reaper run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Reaped {
    /// Seat leases released (lapsed).
    pub leases: u64,
    /// Denials purged (older than the retention).
    pub denials: u64,
    /// Places in wait lines given up (their clients stopped asking, or their wait is over).
    pub places: u64,
}

/// One reaper run at `now`: releases the seat leases lapsed by then, purges denials older
/// than the retention and gives up lapsed places in wait lines.
pub(crate) async fn reap_once(db: &Db, now: i64) -> Result<Reaped, sqlx::Error> {
    Ok(Reaped {
        leases: db.reap_expired_leases(now).await?,
        denials: db.purge_denials(now).await?,
        places: db.reap_queue(now).await?,
    })
}

/// The background reaper: [`reap_once`] every `every`, at the time `clock` tells (the server
/// clock; tests inject theirs). Errors are logged and retried at the next tick. Nothing is
/// done at startup beyond what the clock says: a restart frees no seat early.
pub(crate) fn spawn_reaper(
    db: Db,
    every: std::time::Duration,
    clock: fn() -> i64,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match reap_once(&db, clock()).await {
                Ok(reaped) if reaped == Reaped::default() => {}
                Ok(Reaped {
                    leases,
                    denials,
                    places,
                }) => {
                    tracing::info!(
                        leases,
                        denials,
                        places,
                        "reaped lapsed leases and places in line, and old denials"
                    );
                }
                Err(e) => tracing::warn!(error = %e, "reaper run failed"),
            }
        }
    })
}

fn create_data_dir(dir: &Path) -> Result<(), String> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| format!("data directory {}: {e}", dir.display()))
}

/// The signing key at startup. `--signing-key FILE` (must exist): that key becomes current
/// unless the database knows it already (a restart with the same flag changes nothing, and
/// never undoes a rotation made since). Without it: the database's current key; on first
/// start, `signing-key.pem` in the data directory (created if missing) becomes current.
pub(crate) async fn ensure_signing_key(db: &Db, args: &Settings) -> Result<(), String> {
    let (path, explicit) = match &args.signing_key {
        Some(path) => (path.clone(), true),
        None => (args.data_dir.join("signing-key.pem"), false),
    };
    if !explicit {
        let rows = db
            .list_signing_keys()
            .await
            .map_err(|e| format!("loading signing keys: {e}"))?;
        if rows.iter().any(|row| row.status == "current") {
            return Ok(());
        }
    }
    let (key, created) = secrets::load_or_create_signing_key(&path, !explicit)?;
    let row = db::SigningKeyRow {
        kid: key.public_key().kid().to_owned(),
        private_pem: key.to_pkcs8_pem().map_err(|e| e.to_string())?.to_string(),
        status: "current".into(),
        created_at: now(),
        retired_at: None,
        promote_at: None,
    };
    let added = db
        .add_current_signing_key(&row, !explicit)
        .await
        .map_err(|e| format!("storing the signing key: {e}"))?;
    tracing::info!(kid = %row.kid, path = %path.display(), created, added, "signing key file");
    Ok(())
}

/// Re-reads the signing keys every `period`, so a rotation made on another replica takes
/// effect here too (tokens signed meanwhile by either key verify everywhere: the previous key
/// stays published), after promoting the staged keys whose `promote_at` has come (any replica
/// may; the database lets one do it).
async fn reload_keys_periodically(state: AppState, period: std::time::Duration) {
    let mut tick = tokio::time::interval(period);
    tick.tick().await;
    loop {
        tick.tick().await;
        routes::promote_due_keys(&state, now()).await;
        if let Err(e) = state.reload_keys().await {
            tracing::warn!(error = %e, "reloading signing keys");
        }
        // Forget license keys whose rate budget is full again (bounds the limiter's memory).
        state.0.client_limiter.retain_recent();
    }
}

/// The organization created at first start; its admins may create organizations and manage
/// signing keys.
pub(crate) const OPERATOR_ORGANIZATION: &str = "org_operator";

/// On first start, creates the operator organization with an admin token and prints the token
/// once. Exactly once even when several replicas start together on one PostgreSQL: only the
/// replica whose insert of the fixed organization id succeeds mints the token. The organization
/// and its token are written in one transaction: a crash between them leaves neither, and the
/// next start bootstraps again. An operator organization left without an admin token (by an
/// older version's crash, or every token revoked) is reported with its remedy,
/// `licensing-server admin-token`.
async fn bootstrap_admin_token(db: &Db) -> Result<(), String> {
    let org = db::Organization {
        id: OPERATOR_ORGANIZATION.into(),
        name: "Operator".into(),
        operator: 1,
        created_at: now(),
    };
    let token = secrets::new_api_token()?;
    let id = secrets::new_id("tok")?;
    let grant = db::NewApiToken {
        id: &id,
        organization_id: OPERATOR_ORGANIZATION,
        token_hash: &secrets::sha256_hex(token.as_bytes()),
        role: "admin",
        label: "bootstrap",
        now: now(),
    };
    if !db
        .insert_organization_with_token(&org, &grant)
        .await
        .map_err(|e| e.to_string())?
    {
        let tokens = db
            .list_api_tokens(OPERATOR_ORGANIZATION)
            .await
            .map_err(|e| e.to_string())?;
        if !tokens
            .iter()
            .any(|t| t.role == "admin" && t.revoked_at.is_none())
        {
            tracing::warn!(
                "the operator organization has no live admin API token; mint one with \
                 `licensing-server admin-token` (same --data-dir / --database-url)"
            );
        }
        return Ok(());
    }
    tracing::info!(token_id = %id, "created the admin bootstrap API token");
    outln!("admin API token (shown once, only its hash is stored): {token}");
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod client_tests;

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::StatusCode;
    use serde_json::{Value, json};
    use tower::ServiceExt;

    use super::*;

    mod audit_writer;
    mod compliance;
    mod floating;
    mod hardening;
    mod machines;
    mod protocol;

    pub(super) const ADMIN: &str = "lst_admin_for_tests";
    pub(super) const AUDITOR: &str = "lst_auditor_for_tests";

    use super::test_postgres as postgres;

    pub(super) async fn app() -> (tempfile::TempDir, AppState) {
        app_on(None).await
    }

    /// An app on SQLite (`None`) or on the PostgreSQL database `url`.
    pub(super) async fn app_on(url: Option<&str>) -> (tempfile::TempDir, AppState) {
        let _ = tracing_subscriber::fmt().with_test_writer().try_init();
        let dir = tempfile::tempdir().unwrap();
        let db = match url {
            None => Db::open_sqlite_file(&dir.path().join("test.db")).await,
            Some(url) => Db::open(url).await,
        }
        .unwrap();
        let operator = db::Organization {
            id: OPERATOR_ORGANIZATION.into(),
            name: "Operator".into(),
            operator: 1,
            created_at: 0,
        };
        assert!(db.insert_organization(&operator).await.unwrap());
        for (id, token, role) in [("tok_a", ADMIN, "admin"), ("tok_b", AUDITOR, "auditor")] {
            let hash = secrets::sha256_hex(token.as_bytes());
            db.insert_api_token(id, OPERATOR_ORGANIZATION, &hash, role, "test", 0)
                .await
                .unwrap();
        }
        let key = PrivateKey::generate().unwrap();
        let row = db::SigningKeyRow {
            kid: key.public_key().kid().to_owned(),
            private_pem: key.to_pkcs8_pem().unwrap().to_string(),
            status: "current".into(),
            created_at: 0,
            retired_at: None,
            promote_at: None,
        };
        assert!(db.add_current_signing_key(&row, true).await.unwrap());
        let state = AppState::new(db, "test".into(), 1_000_000).await.unwrap();
        (dir, state)
    }

    pub(super) async fn call(
        state: &AppState,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let body = body.map(|b| Body::from(b.to_string())).unwrap_or_default();
        let response = router(state.clone())
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// A product, a policy with `policy` merged in, and a license; returns the license key and id.
    pub(super) async fn license(state: &AppState, policy: Value) -> (String, String) {
        let (status, _) = call(
            state,
            "POST",
            "/v1/products",
            Some(ADMIN),
            Some(json!({ "id": "p", "name": "P" })),
        )
        .await;
        assert!(status == StatusCode::CREATED || status == StatusCode::CONFLICT);
        let mut body = json!({ "product_id": "p", "name": "n" });
        body.as_object_mut()
            .unwrap()
            .extend(policy.as_object().unwrap().clone());
        let (status, policy) = call(state, "POST", "/v1/policies", Some(ADMIN), Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{policy}");
        let (status, license) = call(
            state,
            "POST",
            "/v1/licenses",
            Some(ADMIN),
            Some(json!({ "policy_id": policy["id"] })),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{license}");
        (
            license["key"].as_str().unwrap().to_owned(),
            license["id"].as_str().unwrap().to_owned(),
        )
    }

    /// Tenants: a second organization and its tokens see nothing of the first, and each role
    /// does exactly what the role table allows.
    #[tokio::test]
    async fn tenants_are_isolated_and_roles_enforced() {
        tenants_on(None).await;
        if let Some(url) = postgres::fresh_database("tenants_are_isolated_and_roles_enforced") {
            tenants_on(Some(&url)).await;
        }
    }

    async fn tenants_on(url: Option<&str>) {
        let (_dir, state) = app_on(url).await;
        let (key_a, license_a) = license(&state, json!({ "model": "perpetual" })).await;
        let (_, policies_a) = call(&state, "GET", "/v1/policies", Some(ADMIN), None).await;
        let policy_a = policies_a["policies"][0]["id"].as_str().unwrap().to_owned();

        // Only an operator admin creates organizations.
        let body = json!({ "name": "Contoso" });
        let (status, _) = call(
            &state,
            "POST",
            "/v1/organizations",
            Some(AUDITOR),
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, created) =
            call(&state, "POST", "/v1/organizations", Some(ADMIN), Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let org_b = created["organization"]["id"].as_str().unwrap().to_owned();
        let admin_b = created["admin_token"].as_str().unwrap().to_owned();
        assert_eq!(created["organization"]["operator"], false);

        // B's admin mints role tokens for B; not for A.
        let mut tokens = std::collections::HashMap::new();
        for role in ["license_manager", "it_staff", "auditor"] {
            let (status, t) = call(
                &state,
                "POST",
                "/v1/api-tokens",
                Some(&admin_b),
                Some(json!({ "role": role, "label": role })),
            )
            .await;
            assert_eq!(status, StatusCode::CREATED, "{t}");
            assert_eq!(t["organization_id"], org_b.as_str());
            tokens.insert(role, t["secret"].as_str().unwrap().to_owned());
        }
        let (status, _) = call(
            &state,
            "POST",
            "/v1/api-tokens",
            Some(&admin_b),
            Some(
                json!({ "role": "admin", "label": "x", "organization_id": OPERATOR_ORGANIZATION }),
            ),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "a tenant admin cannot mint for another tenant"
        );
        let (status, _) = call(
            &state,
            "POST",
            "/v1/organizations",
            Some(&admin_b),
            Some(json!({ "name": "Evil" })),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);

        // B sees none of A's data, and cannot touch it.
        for path in ["/v1/products", "/v1/policies", "/v1/licenses"] {
            let (status, body) = call(&state, "GET", path, Some(&admin_b), None).await;
            assert_eq!(status, StatusCode::OK);
            let list = body.as_object().unwrap().values().next().unwrap();
            assert_eq!(list, &json!([]), "{path} leaks: {body}");
        }
        for (method, path) in [
            ("GET", format!("/v1/licenses/{license_a}")),
            ("GET", format!("/v1/licenses/{license_a}/machines")),
            ("GET", format!("/v1/policies/{policy_a}")),
            ("POST", format!("/v1/licenses/{license_a}/suspend")),
            ("POST", format!("/v1/licenses/{license_a}/revoke")),
        ] {
            let (status, body) = call(&state, method, &path, Some(&admin_b), None).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {body}");
        }
        // Nor activate a machine on A's license through the offline route, even with its key
        // (the review found it did: 200, and A's machine slot taken).
        let request = json!({
            "kind": "licensing.offline_activation_request",
            "version": 1,
            "license_key": key_a,
            "fingerprint": { "id": "tenant-b-box", "components": { "machine_id": "h" } },
            "nonce": "offline-nonce-0123456789",
            "created_at": now(),
        });
        for token in [&admin_b, &tokens["it_staff"]] {
            let (status, body) = call(
                &state,
                "POST",
                "/v1/offline/activate",
                Some(token),
                Some(request.clone()),
            )
            .await;
            assert_eq!(
                (status, body["error"].as_str()),
                (StatusCode::NOT_FOUND, Some("license_not_found")),
                "{body}"
            );
        }
        let (_, machines) = call(
            &state,
            "GET",
            &format!("/v1/licenses/{license_a}/machines"),
            Some(ADMIN),
            None,
        )
        .await;
        assert_eq!(machines["machines"], json!([]), "{machines}");
        let (status, _) = call(
            &state,
            "POST",
            "/v1/licenses",
            Some(&admin_b),
            Some(json!({ "policy_id": policy_a })),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "B cannot issue from A's policy"
        );
        let (status, _) = call(
            &state,
            "POST",
            "/v1/policies",
            Some(&admin_b),
            Some(json!({ "product_id": "p", "name": "n", "model": "perpetual" })),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "B cannot attach a policy to A's product"
        );
        let (_, a) = call(
            &state,
            "GET",
            &format!("/v1/licenses/{license_a}"),
            Some(ADMIN),
            None,
        )
        .await;
        assert_eq!(a["status"], "active", "A's license untouched");

        // Roles inside B.
        let product = |id: &str| json!({ "id": id, "name": "B product" });
        let (status, _) = call(
            &state,
            "POST",
            "/v1/products",
            Some(&tokens["it_staff"]),
            Some(product("b.it")),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = call(
            &state,
            "POST",
            "/v1/products",
            Some(&tokens["auditor"]),
            Some(product("b.au")),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = call(
            &state,
            "POST",
            "/v1/products",
            Some(&tokens["license_manager"]),
            Some(product("b.lm")),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, _) = call(
            &state,
            "POST",
            "/v1/products",
            Some(&admin_b),
            Some(product("p")),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::CONFLICT,
            "product ids are unique across tenants"
        );
        for role in ["it_staff", "auditor", "license_manager"] {
            let (status, body) =
                call(&state, "GET", "/v1/products", Some(&tokens[role]), None).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(body["products"][0]["id"], "b.lm", "{role}");
            let (status, _) =
                call(&state, "GET", "/v1/api-tokens", Some(&tokens[role]), None).await;
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "{role} cannot list API tokens"
            );
        }
        let (_, orgs) = call(&state, "GET", "/v1/organizations", Some(&admin_b), None).await;
        assert_eq!(orgs["organizations"].as_array().unwrap().len(), 1);
        let (_, orgs) = call(&state, "GET", "/v1/organizations", Some(ADMIN), None).await;
        assert_eq!(orgs["organizations"].as_array().unwrap().len(), 2);

        // A revoked token stops at once; A's admin cannot revoke B's tokens.
        let (_, listed) = call(&state, "GET", "/v1/api-tokens", Some(&admin_b), None).await;
        let auditor_id = listed["api_tokens"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["role"] == "auditor")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            listed.to_string().find("lst_").is_none(),
            "no secret in listings"
        );
        let revoke = format!("/v1/api-tokens/{auditor_id}/revoke");
        let (status, _) = call(&state, "POST", &revoke, Some(ADMIN), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = call(&state, "POST", &revoke, Some(&admin_b), None).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = call(
            &state,
            "GET",
            "/v1/products",
            Some(&tokens["auditor"]),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    /// Bootstrap: an organization and its first token are written together or not at all. A
    /// token insert that fails (a taken token id here, as a crash before the commit would)
    /// leaves no organization behind; a taken organization id writes nothing.
    #[tokio::test]
    async fn an_organization_and_its_first_token_are_written_together() {
        organization_with_token_on(None).await;
        let name = "an_organization_and_its_first_token_are_written_together";
        if let Some(url) = postgres::fresh_database(name) {
            organization_with_token_on(Some(&url)).await;
        }
    }

    async fn organization_with_token_on(url: Option<&str>) {
        let (_dir, state) = app_on(url).await;
        let db = state.db();
        let org = db::Organization {
            id: "org_new".into(),
            name: "New".into(),
            operator: 0,
            created_at: 1,
        };
        let token = |id| db::NewApiToken {
            id,
            organization_id: "org_new",
            token_hash: "hash-of-new",
            role: "admin",
            label: "bootstrap",
            now: 1,
        };
        assert!(
            db.insert_organization_with_token(&org, &token("tok_a"))
                .await
                .is_err()
        );
        assert!(
            db.list_organizations(Some("org_new"))
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            db.insert_organization_with_token(&org, &token("tok_new"))
                .await
                .unwrap()
        );
        assert_eq!(db.list_api_tokens("org_new").await.unwrap().len(), 1);
        let again = db::NewApiToken {
            token_hash: "another",
            ..token("tok_again")
        };
        assert!(
            !db.insert_organization_with_token(&org, &again)
                .await
                .unwrap()
        );
        assert_eq!(db.list_api_tokens("org_new").await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn sqlite_runs_in_wal_mode_with_the_schema_migrated() {
        let (_dir, state) = app().await;
        assert_eq!(state.db().journal_mode().await.unwrap(), "wal");
        assert_eq!(state.db().api_token_count().await.unwrap(), 2);
    }

    /// Resident memory of this process, in bytes (Linux).
    #[cfg(target_os = "linux")]
    fn rss_bytes() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib * 1024
    }

    /// The child of [`histogram_memory_stays_flat_without_a_scrape`]: a fresh process (the
    /// recorder is process-wide and other tests allocate beside it), so its resident memory
    /// measures the request-duration histogram alone.
    #[cfg(target_os = "linux")]
    #[test]
    #[ignore = "run by histogram_memory_stays_flat_without_a_scrape in its own process"]
    fn histogram_memory_child() {
        if std::env::var_os("LICENSING_HISTOGRAM_CHILD").is_none() {
            return;
        }
        prometheus();
        let labels = [
            ("method", metrics::SharedString::const_str("POST")),
            ("route", static_label("/v1/client/validate")),
        ];
        let histogram = metrics::histogram!("licensing_http_request_duration_seconds", &labels);
        for _ in 0..200_000 {
            observe(&histogram, 0.0002);
        }
        let warm = rss_bytes();
        for _ in 0..1_000_000 {
            observe(&histogram, 0.0002);
        }
        let grown = rss_bytes().saturating_sub(warm);
        // Raw samples kept until a scrape: 24 MB here. Drained ones: nothing.
        assert!(
            grown < 4 << 20,
            "grew by {grown} bytes over a million observations"
        );
        // Nothing was lost: a scrape counts every observation.
        assert!(
            prometheus()
                .render()
                .contains("route=\"/v1/client/validate\"} 1200000"),
            "{}",
            prometheus().render()
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn histogram_memory_stays_flat_without_a_scrape() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "server::tests::histogram_memory_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("LICENSING_HISTOGRAM_CHILD", "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("1 passed"), "{text}");
    }

    #[tokio::test]
    async fn the_role_is_enforced_and_errors_are_json() {
        let (_dir, state) = app().await;
        // The auditor reads but never writes.
        let (status, _) = call(&state, "GET", "/v1/products", Some(AUDITOR), None).await;
        assert_eq!(status, StatusCode::OK);
        let product = json!({ "id": "com.example.x", "name": "X" });
        let (status, body) =
            call(&state, "POST", "/v1/products", Some(AUDITOR), Some(product)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(body["error"], "forbidden");
        let (status, body) = call(&state, "GET", "/v1/products", None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"], "unauthorized");
        let (status, body) = call(&state, "GET", "/v1/products", Some(ADMIN), None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["products"], json!([]));
        // A rejection axum produces itself (path segment not UTF-8) is JSON as well.
        let (status, body) = call(&state, "GET", "/v1/licenses/%FF", Some(ADMIN), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "bad_request", "{body}");
        assert_eq!(
            error::ApiError::internal("boom").status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    /// 16 machines race for 3 slots of a node-locked license: exactly 3 win, and the final
    /// license token binds exactly those 3.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_activations_never_exceed_max_machines() {
        concurrent_activations_on(None).await;
        let name = "concurrent_activations_never_exceed_max_machines";
        if let Some(url) = postgres::fresh_database(name) {
            concurrent_activations_on(Some(&url)).await;
        }
    }

    async fn concurrent_activations_on(url: Option<&str>) {
        let (_dir, state) = app_on(url).await;
        let (key, id) = license(&state, json!({ "model": "node_locked", "max_machines": 3 })).await;
        let mut tasks = Vec::new();
        for i in 0..16 {
            let state = state.clone();
            let key = key.clone();
            tasks.push(tokio::spawn(async move {
                let body =
                    json!({ "license_key": key, "fingerprint": { "id": format!("fp-{i}") } });
                call(&state, "POST", "/v1/client/activate", None, Some(body)).await
            }));
        }
        let mut created = 0;
        for task in tasks {
            let (status, body) = task.await.unwrap();
            match status {
                StatusCode::CREATED => created += 1,
                StatusCode::CONFLICT => assert_eq!(body["error"], "machine_limit_reached"),
                other => panic!("{other}: {body}"),
            }
        }
        assert_eq!(created, 3);
        let row = state.db().get_license(&id).await.unwrap().unwrap();
        let license = state
            .verifier()
            .verify(row.token.as_deref().unwrap())
            .unwrap();
        let lock = license.claims().lic.node_lock.as_ref().unwrap();
        let machines = state.db().list_machines(&id).await.unwrap();
        assert_eq!(lock.fingerprints.len(), 3);
        assert_eq!(machines.len(), 3);
        for machine in &machines {
            assert!(
                lock.fingerprints
                    .iter()
                    .any(|f| f.id == machine.fingerprint)
            );
        }
    }
}
