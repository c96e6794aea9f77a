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
#[cfg(test)]
pub(crate) mod test_postgres;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
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
        .route(
            "/v1/organizations",
            post(create_organization).get(list_organizations),
        )
        .route(
            "/v1/api-tokens",
            post(create_api_token).get(list_api_tokens),
        )
        .route("/v1/api-tokens/{id}/revoke", post(revoke_api_token))
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
    if let Some(url) = &args.database_url
        && !["sqlite:", "postgres://", "postgresql://"]
            .iter()
            .any(|scheme| url.starts_with(scheme))
    {
        return Err("--database-url must start with sqlite: or postgres:// (postgresql://)".into());
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
        Some(url) => Db::open(url).await?,
    };
    bootstrap_admin_token(&db).await?;
    let state = AppState::new(db.clone(), key, args.issuer)?;

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("listening on {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(%addr, "listening");
    outln!("listening on http://{addr}");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| format!("serving: {e}"))?;
    db.close().await;
    tracing::info!("stopped");
    Ok(())
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

/// The organization created at first start; its admins may create organizations and manage
/// signing keys.
pub(crate) const OPERATOR_ORGANIZATION: &str = "org_operator";

/// On first start, creates the operator organization with an admin token and prints the token
/// once. Exactly once even when several replicas start together on one PostgreSQL: only the
/// replica whose insert of the fixed organization id succeeds mints the token.
async fn bootstrap_admin_token(db: &Db) -> Result<(), String> {
    let org = db::Organization {
        id: OPERATOR_ORGANIZATION.into(),
        name: "Operator".into(),
        operator: 1,
        created_at: now(),
    };
    if !db
        .insert_organization(&org)
        .await
        .map_err(|e| e.to_string())?
    {
        return Ok(());
    }
    let token = secrets::new_api_token()?;
    let id = secrets::new_id("tok")?;
    db.insert_api_token(
        &id,
        OPERATOR_ORGANIZATION,
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

    const ADMIN: &str = "lst_admin_for_tests";
    const AUDITOR: &str = "lst_auditor_for_tests";

    use super::test_postgres as postgres;

    async fn app() -> (tempfile::TempDir, AppState) {
        app_on(None).await
    }

    /// An app on SQLite (`None`) or on the PostgreSQL database `url`.
    async fn app_on(url: Option<&str>) -> (tempfile::TempDir, AppState) {
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
        let (_key, license_a) = license(&state, json!({ "model": "perpetual" })).await;
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
