//! HTTP: the router and its OpenAPI document, the middleware around every request (metrics,
//! deadline, JSON errors) and the Prometheus metrics.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::{self, Next};
use axum::response::Response;

use super::*;
use licensing_core::protocol::ErrorCode;

/// The HTTP API.
pub(crate) fn router(state: AppState) -> Router {
    prometheus();
    let (api, _) = api_router();
    // SCIM 2.0 has its own schema discovery (`/scim/v2/Schemas`): not in the OpenAPI document.
    api.nest(scim::routes::PREFIX, scim::routes::router())
        .merge(console::router())
        .fallback(routes::not_found)
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
        .routes(routes!(create_oauth_client, list_oauth_clients))
        .routes(routes!(revoke_oauth_client))
        .routes(routes!(oauth_token))
        .routes(routes!(oauth_revoke))
        .routes(routes!(oauth_metadata))
        .routes(routes!(list_keys))
        .routes(routes!(rotate_key))
        .routes(routes!(stage_key))
        .routes(routes!(promote_key))
        .routes(routes!(retire_key))
        .routes(routes!(create_product, list_products))
        .routes(routes!(update_product))
        .routes(routes!(create_policy, list_policies))
        .routes(routes!(get_policy, update_policy))
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
        .routes(routes!(get_reclamation, set_reclamation))
        .routes(routes!(preview_reclamation))
        .routes(routes!(preview_license_reclamation))
        .routes(routes!(run_license_reclamation))
        .routes(routes!(check_out))
        .routes(routes!(heartbeat))
        .routes(routes!(check_in))
        .routes(routes!(leave_queue))
        .routes(routes!(create_user, list_users))
        .routes(routes!(get_user, update_user, delete_user))
        .routes(routes!(deactivate_user))
        .routes(routes!(reactivate_user))
        .routes(routes!(user_usage))
        .routes(routes!(create_department, list_departments))
        .routes(routes!(
            get_department,
            update_department,
            delete_department
        ))
        .routes(routes!(list_members, add_members))
        .routes(routes!(remove_member))
        .routes(routes!(department_usage))
        .routes(routes!(import_directory))
        .routes(routes!(list_assignments, create_assignment))
        .routes(routes!(delete_assignment))
        .routes(routes!(reassign))
        .routes(routes!(user_assignments))
        .routes(routes!(set_seating))
        .routes(routes!(list_transfers))
        .routes(routes!(approve_transfer))
        .routes(routes!(reject_transfer))
        .routes(routes!(list_audit))
        .routes(routes!(verify_audit))
        .routes(routes!(list_audit_events))
        .routes(routes!(heartbeat_counts))
        .routes(routes!(erase_audit_subject))
        .routes(routes!(audit_cef))
        .routes(routes!(audit_cef_feed))
        .routes(routes!(list_checkpoints, create_checkpoint))
        .routes(routes!(audit_package))
        .routes(routes!(get_retention, put_retention))
        .routes(routes!(export_user))
        .routes(routes!(erase_user))
        .split_for_parts()
}

/// The process-wide Prometheus recorder (a recorder can be installed once per process).
pub(super) fn prometheus() -> &'static metrics_exporter_prometheus::PrometheusHandle {
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
pub(super) const METRICS_UPKEEP_EVERY: u64 = 4096;

/// Records `value` in `histogram`. The Prometheus recorder keeps every raw sample (24 bytes)
/// until it is drained into its buckets, which a scrape of `/metrics` does: a server nobody
/// scrapes grew by that much per request, for ever. Every [`METRICS_UPKEEP_EVERY`]-th
/// observation drains them here, so memory stays flat whether or not anything scrapes.
pub(super) fn observe(histogram: &metrics::Histogram, value: f64) {
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
pub(super) async fn around_request(
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
pub(super) const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A label value from a bounded set (the router's route templates, status codes; never a value a
/// client chooses) as a `&'static str`, so the metrics of a request allocate nothing: each
/// distinct value is leaked once, on first use.
pub(super) fn static_label(value: &str) -> metrics::SharedString {
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
pub(super) async fn deadline(handler: impl std::future::Future<Output = Response>) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, handler).await {
        Ok(response) => response,
        Err(_) => axum::response::IntoResponse::into_response(error::ApiError::new(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            ErrorCode::RequestTimeout,
            format!(
                "the request took longer than {} s",
                REQUEST_TIMEOUT.as_secs()
            ),
        )),
    }
}

/// Any error answer that is not JSON yet (a rejection from an extractor this crate does not
/// wrap, e.g. a path segment that is not UTF-8) becomes `{"error", "detail"}` too.
pub(super) async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.starts_with("application/json")
                || v.starts_with("application/scim+json")
                // The console's pages answer their errors as pages.
                || v.starts_with("text/html")
        });
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let detail = match axum::body::to_bytes(response.into_body(), 4096).await {
        Ok(bytes) if !bytes.is_empty() => String::from_utf8_lossy(&bytes).into_owned(),
        _ => status.canonical_reason().unwrap_or("error").to_owned(),
    };
    let code = if status.is_client_error() {
        ErrorCode::BadRequest
    } else {
        ErrorCode::Internal
    };
    axum::response::IntoResponse::into_response(error::ApiError::new(status, code, detail))
}
