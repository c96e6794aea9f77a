//! The admin console (issue 23), served by `licensing-server serve` itself at `/console/`:
//! server-rendered HTML over the admin API's own handlers. A page calls the same handler
//! function the API route calls, as the signed-in account's [`Caller`](super::extract::Caller) (so the same role
//! checks and tenant isolation apply), and renders its JSON view with a template; no second
//! copy of a query or a rule lives here. Templates and the style sheet are embedded in the
//! binary (no CDN: many licensing servers run air-gapped) and there is no script at all, so
//! the Content-Security-Policy forbids every script. Charts are inline SVG drawn by the
//! templates. See docs/ARCHITECTURE.md for why server-rendered HTML.

mod accounts;
mod catalog;
pub(crate) mod federation;
mod keys;
mod license_ops;
mod oidc;
mod pages;
mod people_ops;
pub(crate) mod saml;
pub(crate) mod session;
mod sso;
mod tokens;

use std::sync::LazyLock;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde_json::Value;

use super::AppState;
use super::error::ApiError;

/// Every console route (`/` and `/console/...`, merged into the server's router), with the
/// security headers on every answer.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(root))
        .route("/console", get(root))
        .route("/console/", get(pages::overview))
        .route("/console/setup", get(pages::setup_form).post(pages::setup))
        .route(
            "/console/sign-in",
            get(pages::sign_in_form).post(pages::sign_in),
        )
        .route("/console/sign-out", post(pages::sign_out))
        .route(
            "/console/licenses",
            get(pages::licenses).post(pages::create_license),
        )
        .route("/console/licenses/{id}", get(pages::license))
        .route(
            "/console/licenses/{id}/{change}",
            post(pages::change_license),
        )
        .route(
            "/console/licenses/{id}/leases/{lease_id}/release",
            post(pages::release_lease),
        )
        .route(
            "/console/licenses/{id}/lease-timeout",
            post(pages::lease_timeout),
        )
        .route("/console/licenses/{id}/renew", post(license_ops::renew))
        .route("/console/licenses/{id}/seating", post(license_ops::seating))
        .route(
            "/console/licenses/{id}/borrowing",
            post(license_ops::borrowing),
        )
        .route("/console/licenses/{id}/queue", post(license_ops::queue))
        .route("/console/audit", get(pages::audit))
        .route("/console/people", get(pages::people))
        .route("/console/people/{id}", get(people_ops::person))
        .route("/console/people/{id}/assign", post(people_ops::assign))
        .route(
            "/console/licenses/{id}/assignments/{assignment_id}/reclaim",
            post(people_ops::reclaim),
        )
        .route(
            "/console/settings/tokens",
            get(tokens::tokens).post(tokens::create),
        )
        .route("/console/settings/tokens/{id}/revoke", post(tokens::revoke))
        .route("/console/sso", get(sso::dispatch))
        .route(
            "/console/sso/oidc/{organization_id}/start",
            get(oidc::start),
        )
        .route(
            "/console/sso/oidc/{organization_id}/callback",
            get(oidc::callback),
        )
        .route(
            "/console/settings/sso",
            get(sso::settings).post(sso::save_oidc),
        )
        .route("/console/settings/keys", get(keys::keys))
        .route("/console/settings/keys/{change}", post(keys::server_change))
        .route(
            "/console/settings/keys/{kid}/{change}",
            post(keys::key_change),
        )
        .route("/console/catalog", get(catalog::catalog))
        .route("/console/catalog/products", post(catalog::create_product))
        .route("/console/catalog/policies", post(catalog::create_policy))
        .route(
            "/console/catalog/products/{id}",
            post(catalog::edit_product),
        )
        .route("/console/catalog/policies/{id}", post(catalog::edit_policy))
        .route(
            "/console/accounts",
            get(accounts::accounts).post(accounts::invite),
        )
        .route("/console/accounts/{id}/reset", post(accounts::reset))
        .route(
            "/console/accept",
            get(accounts::accept_form).post(accounts::accept),
        )
        .route(
            "/console/account",
            get(accounts::account).post(accounts::change_password),
        )
        .route(
            "/console/sso/saml/{organization_id}/start",
            get(saml::start),
        )
        .route(
            "/console/sso/saml/{organization_id}/acs",
            post(saml::acs).layer(DefaultBodyLimit::max(saml::MAX_ACS_BYTES)),
        )
        .route(
            "/console/sso/saml/{organization_id}/finish",
            get(saml::finish),
        )
        .route(
            "/console/sso/saml/{organization_id}/metadata",
            get(saml::metadata),
        )
        .route(
            "/console/settings/sso/saml",
            get(saml::settings)
                .post(saml::save)
                .layer(DefaultBodyLimit::max(saml::MAX_SETTINGS_BYTES)),
        )
        .route("/console/settings/sso/saml/delete", post(saml::delete))
        .route("/console/static/console.css", get(style_sheet))
        .layer(axum::middleware::map_response(security_headers))
        .layer(axum::middleware::from_fn(session::secure_cookies))
}

/// `GET /`: the console.
pub(crate) async fn root() -> Redirect {
    Redirect::to("/console/")
}

/// The strict policy: nothing from elsewhere, no script at all, no framing.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn style_sheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("templates/console.css"),
    )
}

/// The templates, parsed once; HTML auto-escaping on (`.html` names).
static TEMPLATES: LazyLock<minijinja::Environment<'static>> = LazyLock::new(|| {
    let mut env = minijinja::Environment::new();
    env.add_filter("datetime", datetime);
    for (name, source) in [
        ("base.html", include_str!("templates/base.html")),
        ("setup.html", include_str!("templates/setup.html")),
        ("sign_in.html", include_str!("templates/sign_in.html")),
        ("overview.html", include_str!("templates/overview.html")),
        ("licenses.html", include_str!("templates/licenses.html")),
        ("license.html", include_str!("templates/license.html")),
        ("audit.html", include_str!("templates/audit.html")),
        ("people.html", include_str!("templates/people.html")),
        ("person.html", include_str!("templates/person.html")),
        ("keys.html", include_str!("templates/keys.html")),
        ("accounts.html", include_str!("templates/accounts.html")),
        ("catalog.html", include_str!("templates/catalog.html")),
        ("tokens.html", include_str!("templates/tokens.html")),
        ("accept.html", include_str!("templates/accept.html")),
        ("account.html", include_str!("templates/account.html")),
        ("error.html", include_str!("templates/error.html")),
        ("saml.html", include_str!("templates/saml.html")),
        (
            "saml_continue.html",
            include_str!("templates/saml_continue.html"),
        ),
        (
            "sso_settings.html",
            include_str!("templates/sso_settings.html"),
        ),
    ] {
        // A template that does not parse is a build defect, caught by the tests that render
        // every page; here it becomes a page that says so.
        if let Err(error) = env.add_template(name, source) {
            tracing::error!(name, %error, "console template does not parse");
        }
    }
    env
});

/// The UTC day of Unix seconds, `2026-12-07` (the denial report's `date` format); empty when
/// out of range.
pub(crate) fn utc_day(seconds: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .map(|t| format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()))
        .unwrap_or_default()
}

/// The `datetime` filter: Unix seconds as `2026-12-07 21:25 UTC` (absent: empty).
fn datetime(seconds: Option<i64>) -> String {
    seconds
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .map(|t| {
            format!(
                "{} {:02}:{:02} UTC",
                utc_day(t.unix_timestamp()),
                t.hour(),
                t.minute()
            )
        })
        .unwrap_or_default()
}

/// Renders template `name` with `context`.
pub(crate) fn render(name: &str, context: Value) -> Result<Html<String>, ConsoleError> {
    TEMPLATES
        .get_template(name)
        .and_then(|t| t.render(context))
        .map(Html)
        .map_err(|e| ConsoleError::Internal(format!("template {name}: {e}")))
}

/// Why a console request did not get its page.
#[derive(Debug)]
pub(crate) enum ConsoleError {
    /// No console account exists yet: to the setup page.
    Setup,
    /// Not signed in (or the session ended): to the sign-in page.
    SignIn,
    /// The role may not, or a stale form.
    Forbidden(String),
    /// An answer of the API handler the page called.
    Api(ApiError),
    /// A defect; logged, and the page says only that.
    Internal(String),
}

impl From<ApiError> for ConsoleError {
    fn from(error: ApiError) -> Self {
        ConsoleError::Api(error)
    }
}

impl From<sqlx::Error> for ConsoleError {
    fn from(error: sqlx::Error) -> Self {
        ConsoleError::Internal(error.to_string())
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ConsoleError::Setup => return Redirect::to("/console/setup").into_response(),
            ConsoleError::SignIn => return Redirect::to("/console/sign-in").into_response(),
            ConsoleError::Forbidden(message) => (StatusCode::FORBIDDEN, message),
            ConsoleError::Api(error) => (error.status(), error.detail().to_owned()),
            ConsoleError::Internal(error) => {
                tracing::error!(%error, "console page failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong on the server; the log says what.".to_owned(),
                )
            }
        };
        let page = render(
            "error.html",
            serde_json::json!({ "status": status.as_u16(), "message": message }),
        );
        match page {
            Ok(html) => (status, html).into_response(),
            Err(_) => (status, message).into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Every embedded template parses (a broken one would only show as a 500 page).
    #[test]
    fn every_template_parses() {
        for name in [
            "base.html",
            "setup.html",
            "sign_in.html",
            "overview.html",
            "licenses.html",
            "license.html",
            "audit.html",
            "people.html",
            "person.html",
            "keys.html",
            "accounts.html",
            "catalog.html",
            "tokens.html",
            "accept.html",
            "account.html",
            "error.html",
            "saml.html",
            "saml_continue.html",
            "sso_settings.html",
        ] {
            TEMPLATES.get_template(name).unwrap();
        }
        assert_eq!(datetime(Some(0)), "1970-01-01 00:00 UTC");
        assert_eq!(datetime(None), "");
    }
}
