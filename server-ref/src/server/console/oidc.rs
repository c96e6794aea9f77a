//! Console single sign-on through OpenID Connect: the authorization code flow with PKCE
//! (S256), configured per organization (`console_oidc`, migration 0018).
//!
//! `start` keeps the flow's state, nonce and PKCE verifier server-side (`console_sso_flows`,
//! found by the state's hash, bound to the browser by a short-lived `HttpOnly` cookie) and
//! sends the browser to the provider. `callback` takes the flow (once: a replayed callback
//! finds nothing), exchanges the code with the verifier, and has the `openidconnect` crate
//! verify the ID token: the signature with the provider's JWKS (asymmetric algorithms only,
//! never `none` or an HMAC keyed by the client secret), `iss`, `aud`, `exp` and the nonce. The
//! verified identity then signs in through [`super::federation`]. Every failure is a page that
//! says what went wrong, and a `console.sign_in_refused` entry in the audit trail.
//!
//! The provider is reached with a reqwest client of our own: rustls, no redirects (no
//! server-side request forgery through them), a timeout and a bound on the answer's size. The
//! discovery document and its keys are cached a few minutes per issuer.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, HttpRequest, HttpResponse, IssuerUrl,
    Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::audit::{AuditEvent, action};
use super::super::db::console_sso::OidcConfigRow;
use super::super::{AppState, now, secrets};
use super::federation::{FederatedIdentity, FederatedSignIn, RoleMapping, sign_in_federated};
use super::session::{self, SESSION_COOKIE};
use super::{ConsoleError, render};

/// The protocol's name in flows, identities and the audit trail.
pub(crate) const PROTOCOL: &str = "oidc";
/// The cookie that binds a flow to the browser that started it. `SameSite=Lax`: the
/// provider's redirect back is a cross-site top-level navigation, which a `Strict` cookie
/// would not follow.
pub(crate) const FLOW_COOKIE: &str = "lic_sso";
/// How long a flow may take at the provider.
pub(crate) const FLOW_SECS: i64 = 10 * 60;
/// The longest wait for the provider.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer read from the provider (discovery, keys, token).
const MAX_ANSWER_BYTES: usize = 256 * 1024;
/// How long a discovery document (with its keys) is used before it is fetched again.
const DISCOVERY_TTL: Duration = Duration::from_secs(300);
/// The most role claim values read from an ID token, and the longest one.
const MAX_GROUPS: usize = 256;
const MAX_GROUP_CHARS: usize = 256;

/// The ID token signature algorithms accepted: asymmetric ones (no `none`, and no HMAC keyed
/// by the client secret, which the console stores).
const ALGORITHMS: [CoreJwsSigningAlgorithm; 9] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EdDsa,
];

// ---- the HTTP client -----------------------------------------------------------------------

/// Why a request to the provider failed.
#[derive(Debug)]
pub(crate) struct HttpError(String);

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HttpError {}

static CLIENT: LazyLock<Result<reqwest::Client, String>> = LazyLock::new(|| {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(HTTP_TIMEOUT)
        .connect_timeout(HTTP_TIMEOUT)
        .build()
        .map_err(|e| e.to_string())
});

/// One request to the provider: bounded in time and size, redirects not followed.
async fn bounded(request: HttpRequest) -> Result<HttpResponse, HttpError> {
    let client = CLIENT.as_ref().map_err(|e| HttpError(e.clone()))?;
    let (parts, body) = request.into_parts();
    let mut answer = client
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .map_err(|e| HttpError(format!("{}: {e}", parts.uri)))?;
    if answer
        .content_length()
        .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
    {
        return Err(HttpError("the answer is too large".into()));
    }
    let status = answer.status();
    let headers = answer.headers().clone();
    let mut body = Vec::new();
    while let Some(chunk) = answer.chunk().await.map_err(|e| HttpError(e.to_string()))? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(HttpError("the answer is too large".into()));
        }
        body.extend_from_slice(&chunk);
    }
    let mut response = HttpResponse::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

/// Discovery documents by issuer, with when they were fetched.
static DISCOVERED: LazyLock<Mutex<HashMap<String, (Instant, CoreProviderMetadata)>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The provider's discovery document and keys (cached [`DISCOVERY_TTL`]).
pub(crate) async fn discover(issuer_url: &str) -> Result<CoreProviderMetadata, String> {
    if let Ok(cache) = DISCOVERED.lock()
        && let Some((at, metadata)) = cache.get(issuer_url)
        && at.elapsed() < DISCOVERY_TTL
    {
        return Ok(metadata.clone());
    }
    let issuer = IssuerUrl::new(issuer_url.to_owned()).map_err(|e| e.to_string())?;
    let metadata = CoreProviderMetadata::discover_async(issuer, &bounded)
        .await
        .map_err(|e| describe(&e))?;
    if let Ok(mut cache) = DISCOVERED.lock() {
        cache.retain(|_, (at, _)| at.elapsed() < DISCOVERY_TTL);
        cache.insert(issuer_url.to_owned(), (Instant::now(), metadata.clone()));
    }
    Ok(metadata)
}

/// Forgets the cached discovery of `issuer_url` (its keys may have rotated).
fn forget(issuer_url: &str) {
    if let Ok(mut cache) = DISCOVERED.lock() {
        cache.remove(issuer_url);
    }
}

/// An error with its sources, for the page and the audit trail (never holds a secret: the
/// client secret is only ever sent, not echoed by these errors).
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text.chars().take(300).collect()
}

// ---- configuration ---------------------------------------------------------------------------

/// The organization's enabled OpenID Connect configuration with its role mapping.
pub(crate) async fn enabled_config(
    state: &AppState,
    organization_id: &str,
) -> Result<Option<(OidcConfigRow, RoleMapping)>, ConsoleError> {
    let Some(row) = state.db().oidc_config(organization_id).await? else {
        return Ok(None);
    };
    if row.enabled == 0 {
        return Ok(None);
    }
    let mapping = RoleMapping::parse(
        row.role_claim.as_deref(),
        row.role_map.as_deref(),
        row.default_role.as_deref(),
    )
    .map_err(ConsoleError::Internal)?;
    Ok(Some((row, mapping)))
}

// The console's own address as the browser reached it (one definition for the whole server).
pub(crate) use crate::server::base_url::request_base_url as base_url;

/// The redirect URI to register at the provider.
pub(crate) fn callback_url(headers: &HeaderMap, organization_id: &str) -> String {
    format!(
        "{}/console/sso/oidc/{organization_id}/callback",
        base_url(headers)
    )
}

// ---- the flow ------------------------------------------------------------------------------

/// A failed sign-in: recorded in the organization's audit trail (when it has one) and shown.
fn refuse(
    state: &AppState,
    organization_id: Option<&str>,
    status: StatusCode,
    reason: &str,
) -> Response {
    if let Some(org) = organization_id {
        state.audit().record_event(
            AuditEvent::new(
                org,
                format!("{PROTOCOL}:unknown"),
                action::CONSOLE_SIGN_IN_REFUSED,
                "",
            )
            .detail(format!("{PROTOCOL}: {reason}")),
        );
    }
    tracing::info!(organization = ?organization_id, reason, "single sign-on refused");
    failure_page(status, reason)
}

/// The page of a failed single sign-on.
pub(crate) fn failure_page(status: StatusCode, reason: &str) -> Response {
    let message = format!(
        "Single sign-on failed: {reason}. Start again from the sign-in page, or ask your \
         administrator."
    );
    let mut response = match render(
        "error.html",
        json!({ "status": status.as_u16(), "message": message, "sign_in": true }),
    ) {
        Ok(html) => (status, html).into_response(),
        Err(_) => (status, message).into_response(),
    };
    if let Ok(value) = session::set_cookie(FLOW_COOKIE, "", 0).parse() {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// The flow cookie (`SameSite=Lax`, see [`FLOW_COOKIE`]).
fn flow_cookie(value: &str, max_age: i64) -> String {
    format!("{FLOW_COOKIE}={value}; Path=/console; HttpOnly; SameSite=Lax; Max-Age={max_age}")
}

/// `GET /console/sso/oidc/{organization_id}/start`: a new flow, and the browser to the
/// provider.
pub(crate) async fn start(
    State(state): State<AppState>,
    Path(organization_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    let Some((config, _)) = enabled_config(&state, &organization_id).await? else {
        return Ok(failure_page(
            StatusCode::NOT_FOUND,
            "this organization has no OpenID Connect sign-in",
        ));
    };
    let metadata = match discover(&config.issuer_url).await {
        Ok(metadata) => metadata,
        Err(e) => {
            return Ok(refuse(
                &state,
                Some(&organization_id),
                StatusCode::BAD_GATEWAY,
                &format!("the identity provider's discovery document: {e}"),
            ));
        }
    };
    let redirect = RedirectUrl::new(callback_url(&headers, &organization_id))
        .map_err(|e| ConsoleError::Internal(e.to_string()))?;
    let client =
        CoreClient::from_provider_metadata(metadata, ClientId::new(config.client_id.clone()), None)
            .set_redirect_uri(redirect);
    let flow_state = session::new_secret()?;
    let nonce = session::new_secret()?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            {
                let s = flow_state.clone();
                move || CsrfToken::new(s)
            },
            {
                let n = nonce.clone();
                move || Nonce::new(n)
            },
        )
        .set_pkce_challenge(challenge);
    for scope in config.scopes.split_whitespace().filter(|s| *s != "openid") {
        request = request.add_scope(Scope::new(scope.to_owned()));
    }
    let (url, _, _) = request.url();
    // The browser's binding: the cookie it already has, or a new one.
    let parts = super::pages::parts_of(headers);
    let (browser, new_cookie) = match session::cookie(&parts, FLOW_COOKIE) {
        Some(b) if b.len() >= 32 && b.chars().all(|c| c.is_ascii_alphanumeric()) => {
            (b.to_owned(), false)
        }
        _ => (session::new_secret()?, true),
    };
    let now = now();
    state
        .db()
        .insert_sso_flow(
            &secrets::sha256_hex(flow_state.as_bytes()),
            &organization_id,
            PROTOCOL,
            &secrets::sha256_hex(browser.as_bytes()),
            &nonce,
            verifier.secret(),
            now,
            now - FLOW_SECS,
        )
        .await?;
    let mut response = Redirect::to(url.as_str()).into_response();
    if new_cookie && let Ok(value) = flow_cookie(&browser, FLOW_SECS).parse() {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    Ok(response)
}

/// The provider's answer.
#[derive(Deserialize)]
pub(crate) struct CallbackQuery {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
}

/// `GET /console/sso/oidc/{organization_id}/callback`: the provider's answer; a session, or
/// a page that says why not.
pub(crate) async fn callback(
    State(state): State<AppState>,
    Path(organization_id): Path<String>,
    Query(query): Query<CallbackQuery>,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    let org = Some(organization_id.as_str());
    let refused = |status, reason: &str| Ok(refuse(&state, org, status, reason));
    if !state.db().organization_exists(&organization_id).await? {
        return Ok(failure_page(StatusCode::NOT_FOUND, "no such organization"));
    }
    let Some(flow_state) = query.state.filter(|s| !s.is_empty() && s.len() <= 200) else {
        return refused(StatusCode::BAD_REQUEST, "the answer has no state");
    };
    // Taken at once: the same state never signs in twice (a replayed callback).
    let Some(flow) = state
        .db()
        .take_sso_flow(&secrets::sha256_hex(flow_state.as_bytes()))
        .await?
    else {
        return refused(
            StatusCode::BAD_REQUEST,
            "unknown or already used state (a replayed or forged answer)",
        );
    };
    if flow.organization_id != organization_id || flow.protocol != PROTOCOL {
        return refused(StatusCode::BAD_REQUEST, "the state is of another sign-in");
    }
    if now().saturating_sub(flow.created_at) > FLOW_SECS {
        return refused(StatusCode::BAD_REQUEST, "the sign-in took too long");
    }
    let parts = super::pages::parts_of(headers.clone());
    let same_browser = session::cookie(&parts, FLOW_COOKIE).is_some_and(|b| {
        session::same_secret(&secrets::sha256_hex(b.as_bytes()), &flow.browser_hash)
    });
    if !same_browser {
        return refused(
            StatusCode::BAD_REQUEST,
            "this browser did not start the sign-in",
        );
    }
    if let Some(error) = query.error {
        let error: String = error
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        return refused(
            StatusCode::UNAUTHORIZED,
            &format!("the identity provider answered `{error}`"),
        );
    }
    let Some(code) = query.code.filter(|c| !c.is_empty() && c.len() <= 2048) else {
        return refused(StatusCode::BAD_REQUEST, "the answer has no code");
    };
    let Some((config, mapping)) = enabled_config(&state, &organization_id).await? else {
        return refused(
            StatusCode::NOT_FOUND,
            "this organization has no OpenID Connect sign-in",
        );
    };
    let metadata = match discover(&config.issuer_url).await {
        Ok(metadata) => metadata,
        Err(e) => {
            return refused(
                StatusCode::BAD_GATEWAY,
                &format!("the identity provider's discovery document: {e}"),
            );
        }
    };
    let redirect = RedirectUrl::new(callback_url(&headers, &organization_id))
        .map_err(|e| ConsoleError::Internal(e.to_string()))?;
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(config.client_id.clone()),
        Some(ClientSecret::new(config.client_secret.clone())),
    )
    .set_redirect_uri(redirect);
    let exchange = match client.exchange_code(AuthorizationCode::new(code)) {
        Ok(exchange) => exchange,
        Err(e) => {
            return refused(
                StatusCode::BAD_GATEWAY,
                &format!("the identity provider has no token endpoint: {e}"),
            );
        }
    };
    let tokens = match exchange
        .set_pkce_verifier(PkceCodeVerifier::new(flow.verifier.clone()))
        .request_async(&bounded)
        .await
    {
        Ok(tokens) => tokens,
        Err(e) => {
            return refused(
                StatusCode::UNAUTHORIZED,
                &format!("the code exchange failed: {}", describe(&e)),
            );
        }
    };
    let Some(id_token) = tokens.id_token() else {
        return refused(StatusCode::UNAUTHORIZED, "the provider sent no ID token");
    };
    let verifier = client
        .id_token_verifier()
        .set_allowed_algs(ALGORITHMS.iter().cloned());
    let claims = match id_token.claims(&verifier, &Nonce::new(flow.nonce.clone())) {
        Ok(claims) => claims,
        Err(e) => {
            // The provider's keys may have rotated: fetch them again next time.
            forget(&config.issuer_url);
            return refused(
                StatusCode::UNAUTHORIZED,
                &format!("the ID token is not valid: {}", describe(&e)),
            );
        }
    };
    let email = claims
        .email()
        .filter(|_| claims.email_verified() != Some(false))
        .map(|e| e.as_str().to_owned());
    let user_name = email.or_else(|| claims.preferred_username().map(|u| u.as_str().to_owned()));
    let groups = match mapping.claim.as_deref() {
        Some(claim) => claim_values(&id_token.to_string(), claim),
        None => Vec::new(),
    };
    let identity = FederatedIdentity {
        organization_id: organization_id.clone(),
        protocol: PROTOCOL,
        issuer: claims.issuer().as_str().to_owned(),
        subject: claims.subject().as_str().to_owned(),
        user_name,
        groups,
    };
    match sign_in_federated(&state, identity, &mapping).await? {
        FederatedSignIn::Started(secret) => Ok(signed_in(&secret)),
        // Recorded in the audit trail by the federation already.
        FederatedSignIn::Refused(reason) => Ok(failure_page(
            StatusCode::FORBIDDEN,
            &format!("{reason}: your identity provider grants no console role to you"),
        )),
    }
}

/// The values of claim `name` in a verified ID token's payload: a string or an array of
/// strings (anything else: none), bounded in count and length.
fn claim_values(jwt: &str, name: &str) -> Vec<String> {
    let payload = jwt.split('.').nth(1).unwrap_or("");
    let Ok(bytes) = base64url(payload) else {
        return Vec::new();
    };
    let Ok(Value::Object(claims)) = serde_json::from_slice::<Value>(&bytes) else {
        return Vec::new();
    };
    let values = match claims.get(name) {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    values
        .into_iter()
        .filter(|v| v.chars().count() <= MAX_GROUP_CHARS)
        .take(MAX_GROUPS)
        .collect()
}

/// Decodes unpadded base64url.
fn base64url(text: &str) -> Result<Vec<u8>, ()> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            b'=' => break,
            _ => return Err(()),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    Ok(out)
}

/// A page that moves the browser on to `path` at once (a meta refresh, and a link). Used
/// where a redirect would not do: see [`signed_in`] and the sign-in dispatcher.
pub(crate) fn moving_on(path: &str, message: &str) -> Response {
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
            .replace('\'', "&#39;")
    };
    let (path, message) = (escape(path), escape(message));
    let page = Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"0;url={path}\"><title>{message}</title>\
         <link rel=\"icon\" href=\"data:,\"><link rel=\"stylesheet\" href=\"/console/static/console.css\">\
         </head>\
         <body><main><p>{message} <a href=\"{path}\">Continue</a>.</p></main></body></html>"
    ));
    (StatusCode::OK, page).into_response()
}

/// The answer of a successful sign-in: the session cookie, the flow cookie gone, and the
/// browser on to the overview. A page that moves on rather than a redirect: this answer ends
/// a navigation the provider's site started, and the session cookie is `SameSite=Strict`,
/// which a browser does not send on a redirect chain that crossed sites.
fn signed_in(secret: &str) -> Response {
    let mut response = moving_on("/console/", "Signed in.");
    let cookie = session::set_cookie(SESSION_COOKIE, secret, session::ABSOLUTE_TIMEOUT_SECS);
    for value in [cookie, flow_cookie("", 0)] {
        if let Ok(value) = value.parse() {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn claim_values_read_strings_and_arrays_only() {
        // {"groups":["a","b",3],"role":"x","n":1}
        let payload = "eyJncm91cHMiOlsiYSIsImIiLDNdLCJyb2xlIjoieCIsIm4iOjF9";
        let jwt = format!("h.{payload}.s");
        assert_eq!(claim_values(&jwt, "groups"), vec!["a", "b"]);
        assert_eq!(claim_values(&jwt, "role"), vec!["x"]);
        assert!(claim_values(&jwt, "n").is_empty());
        assert!(claim_values(&jwt, "missing").is_empty());
        assert!(claim_values("not a jwt", "groups").is_empty());
        assert_eq!(base64url("aGk").unwrap(), b"hi");
        assert!(base64url("a!").is_err());
    }

    #[test]
    fn the_callback_url_follows_the_browser_and_a_tls_proxy() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "console.example:8080".parse().unwrap());
        assert_eq!(
            callback_url(&headers, "org_a"),
            "http://console.example:8080/console/sso/oidc/org_a/callback"
        );
        headers.insert("x-forwarded-proto", "https".parse().unwrap());
        assert!(callback_url(&headers, "org_a").starts_with("https://console.example:8080/"));
        headers.insert(header::HOST, "evil\"host".parse().unwrap());
        assert!(callback_url(&headers, "org_a").starts_with("https://localhost/"));
    }
}
