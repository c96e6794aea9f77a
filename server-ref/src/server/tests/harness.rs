//! The harness of the server's in-process tests, the one convention for them:
//!
//! - In-process tests live in `server/tests/`, one file per area (`machines.rs`,
//!   `floating.rs`, `client.rs`, ...), each a `mod` of `tests/mod.rs` starting with
//!   `use super::*;`, which brings this harness and the server's items.
//! - A test gets its app from [`app`] (a fresh SQLite file) or [`app_on`] (`None`: SQLite;
//!   `Some(url)`: the PostgreSQL database `postgres::fresh_database(name)` made when
//!   `LICENSING_TEST_POSTGRES_URL` is set; run the PostgreSQL half with
//!   `./scripts/with-postgres.sh cargo test -p licensing-server`), already holding an operator
//!   organization, the [`ADMIN`] and [`AUDITOR`] tokens and a current signing key.
//! - It sets up through the API: [`license`] creates a product, a policy and a license; [`call`]
//!   sends a request through the router (no socket) and returns the status and JSON body.
//! - Tests that need a real process and socket (the CLI, the online client) are integration
//!   tests in `server-ref/tests/`, sharing `server-ref/tests/support/`.

use axum::body::Body;
use axum::http::StatusCode;
use serde_json::{Value, json};
use tower::ServiceExt;

use licensing_core::PrivateKey;

use super::super::*;

pub(crate) const ADMIN: &str = "lst_admin_for_tests";
pub(crate) const AUDITOR: &str = "lst_auditor_for_tests";

pub(crate) async fn app() -> (tempfile::TempDir, AppState) {
    app_on(None).await
}

/// An app on SQLite (`None`) or on the PostgreSQL database `url`.
pub(crate) async fn app_on(url: Option<&str>) -> (tempfile::TempDir, AppState) {
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

pub(crate) async fn call(
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
pub(crate) async fn license(state: &AppState, policy: Value) -> (String, String) {
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
