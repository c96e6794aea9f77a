//! The reference licensing server, `licensing-server serve`: an HTTP API over a database
//! (embedded SQLite now). It stores state and calls licensing-core to sign, verify and evaluate;
//! no licensing rule is decided here.
//!
//! Startup: the data directory, the signing key (created on first start, PKCS#8 0600), the
//! database (created and migrated), a one-time admin API token on first start (printed once,
//! only its SHA-256 stored), then `listening on http://ADDR` on stdout. SIGINT/SIGTERM stop it
//! gracefully.

mod db;
mod error;
mod extract;
mod issue;
mod routes;
mod secrets;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post, put};
use licensing_core::{PrivateKey, TrustStore, Verifier};

use db::Db;

/// `licensing-server serve` options. Every flag can also come from the environment.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (the bound address is printed).
    #[arg(long, env = "LICENSING_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Directory for the database and the signing key (created if missing, mode 0700).
    #[arg(long, env = "LICENSING_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Database URL, e.g. `sqlite:///var/lib/licensing/licensing.db`. Default: the file
    /// `licensing.db` in the data directory.
    #[arg(long, env = "LICENSING_DATABASE_URL")]
    pub database_url: Option<String>,
    /// PKCS#8 PEM signing key to use (must exist). Default: `signing-key.pem` in the data
    /// directory, generated on first start.
    #[arg(long, env = "LICENSING_SIGNING_KEY_FILE")]
    pub signing_key: Option<PathBuf>,
    /// The `iss` of every token the server signs.
    #[arg(long, env = "LICENSING_ISSUER", default_value = "licensing-server")]
    pub issuer: String,
    /// Seconds between two runs of the reaper (releases lapsed seat leases, purges denials
    /// older than 60 days).
    #[arg(long, env = "LICENSING_REAP_INTERVAL", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub reap_interval: u64,
}

/// Shared state of the handlers.
#[derive(Clone)]
pub(crate) struct AppState(Arc<Inner>);

struct Inner {
    db: Db,
    key: PrivateKey,
    verifier: Verifier,
    jwks: serde_json::Value,
    issuer: String,
}

impl AppState {
    fn new(db: Db, key: PrivateKey, issuer: String) -> Result<Self, String> {
        let mut store = TrustStore::new();
        store
            .add(key.public_key().clone())
            .map_err(|e| e.to_string())?;
        let jwks = store.to_jwks();
        Ok(AppState(Arc::new(Inner {
            db,
            key,
            verifier: Verifier::for_any_product(store),
            jwks,
            issuer,
        })))
    }

    /// The database.
    pub(crate) fn db(&self) -> &Db {
        &self.0.db
    }

    /// The signing key.
    pub(crate) fn key(&self) -> &PrivateKey {
        &self.0.key
    }

    /// A verifier trusting the server's live keys, for any product.
    pub(crate) fn verifier(&self) -> &Verifier {
        &self.0.verifier
    }

    /// The JWK Set of the live public keys.
    pub(crate) fn jwks(&self) -> &serde_json::Value {
        &self.0.jwks
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
    use routes::*;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/v1/products", post(create_product).get(list_products))
        .route("/v1/policies", post(create_policy).get(list_policies))
        .route("/v1/policies/{id}", get(get_policy))
        .route("/v1/licenses", post(create_license).get(list_licenses))
        .route("/v1/licenses/{id}", get(get_license))
        .route("/v1/licenses/{id}/suspend", post(suspend_license))
        .route("/v1/licenses/{id}/reinstate", post(reinstate_license))
        .route("/v1/licenses/{id}/revoke", post(revoke_license))
        .route("/v1/licenses/{id}/machines", get(list_machines))
        .route("/v1/client/activate", post(activate))
        .route("/v1/client/validate", post(validate))
        .route("/v1/licenses/{id}/leases", get(list_leases))
        .route(
            "/v1/licenses/{id}/leases/{lease_id}/release",
            post(force_release),
        )
        .route("/v1/licenses/{id}/lease-timeout", put(set_lease_timeout))
        .route("/v1/licenses/{id}/denials", get(list_denials))
        .route("/v1/denials/report", get(denials_report))
        .route("/v1/client/leases", post(check_out))
        .route("/v1/client/leases/{id}/heartbeat", post(heartbeat))
        .route("/v1/client/leases/{id}/release", post(check_in))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(extract::MAX_BODY_BYTES))
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn(deadline))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// One log line per request: method, path, status, duration. Never headers or bodies (they
/// carry API tokens and license keys).
async fn log_request(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path: String = req.uri().path().chars().take(200).collect();
    let start = Instant::now();
    let response = next.run(req).await;
    tracing::info!(
        %method,
        %path,
        status = response.status().as_u16(),
        micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX),
        "request"
    );
    response
}

/// Longest a request may take, body upload included.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Answers 408 to a request not done within [`REQUEST_TIMEOUT`] (a client that announces a
/// body and never sends it holds nothing longer than that).
async fn deadline(req: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
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
async fn json_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
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
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// `println!` that ignores a closed stdout.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    // Refuse an unusable URL before anything is created.
    match &args.database_url {
        None => {}
        Some(url) if url.starts_with("sqlite:") => {}
        Some(url) if url.starts_with("postgres:") || url.starts_with("postgresql:") => {
            return Err("PostgreSQL is not supported yet; use a sqlite: URL or the default".into());
        }
        Some(_) => return Err("--database-url must start with sqlite:".into()),
    }
    create_data_dir(&args.data_dir)?;
    let (key_path, create_key) = match &args.signing_key {
        Some(path) => (path.clone(), false),
        None => (args.data_dir.join("signing-key.pem"), true),
    };
    let (key, created) = secrets::load_or_create_signing_key(&key_path, create_key)?;
    tracing::info!(
        kid = key.public_key().kid(),
        path = %key_path.display(),
        created,
        "signing key"
    );
    let db = match &args.database_url {
        None => Db::open_sqlite_file(&args.data_dir.join("licensing.db")).await?,
        Some(url) => Db::open_sqlite_url(url).await?,
    };
    bootstrap_admin_token(&db).await?;
    let state = AppState::new(db.clone(), key, args.issuer)?;

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
    let served = axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| format!("serving: {e}"));
    reaper.abort();
    served?;
    db.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// One reaper run at `now`: releases the seat leases lapsed by then and purges denials older
/// than the retention. Returns (leases released, denials purged).
pub(crate) async fn reap_once(db: &Db, now: i64) -> Result<(u64, u64), sqlx::Error> {
    let leases = db.reap_expired_leases(now).await?;
    let denials = db.purge_denials(now).await?;
    Ok((leases, denials))
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
                Ok((0, 0)) => {}
                Ok((leases, denials)) => {
                    tracing::info!(leases, denials, "reaped lapsed leases and old denials");
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

/// On first start (no API token at all), creates an admin token and prints it once.
async fn bootstrap_admin_token(db: &Db) -> Result<(), String> {
    let count = db.api_token_count().await.map_err(|e| e.to_string())?;
    if count > 0 {
        return Ok(());
    }
    let token = secrets::new_api_token()?;
    let id = secrets::new_id("tok")?;
    db.insert_api_token(
        &id,
        &secrets::sha256_hex(token.as_bytes()),
        "admin",
        "bootstrap",
        now(),
    )
    .await
    .map_err(|e| e.to_string())?;
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
mod tests {
    use axum::body::Body;
    use axum::http::StatusCode;
    use serde_json::{Value, json};
    use tower::ServiceExt;

    use super::*;

    mod floating;

    const ADMIN: &str = "lst_admin_for_tests";
    const AUDITOR: &str = "lst_auditor_for_tests";

    async fn app() -> (tempfile::TempDir, AppState) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open_sqlite_file(&dir.path().join("test.db"))
            .await
            .unwrap();
        for (id, token, role) in [("tok_a", ADMIN, "admin"), ("tok_b", AUDITOR, "auditor")] {
            db.insert_api_token(id, &secrets::sha256_hex(token.as_bytes()), role, "test", 0)
                .await
                .unwrap();
        }
        let state = AppState::new(db, PrivateKey::generate().unwrap(), "test".into()).unwrap();
        (dir, state)
    }

    async fn call(
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
    async fn license(state: &AppState, policy: Value) -> (String, String) {
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

    #[tokio::test]
    async fn sqlite_runs_in_wal_mode_with_the_schema_migrated() {
        let (_dir, state) = app().await;
        assert_eq!(state.db().journal_mode().await.unwrap(), "wal");
        assert_eq!(state.db().api_token_count().await.unwrap(), 2);
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
        let (_dir, state) = app().await;
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
