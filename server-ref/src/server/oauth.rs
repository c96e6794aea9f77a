//! OAuth 2.0 for the admin API (issue 25): the client-credentials grant's rules (scopes,
//! client authentication, the RFC 6749 §5.2 error answers) and the resource-server side, which
//! turns an RFC 9068 access token (`typ: at+jwt`) into the same [`Caller`] an API token
//! would be. The handlers are in `routes/oauth.rs`; the token format is the core's
//! (`licensing_core::access`).
//!
//! Scopes are role names: a client registered with a role may ask for that role or any role
//! below it (admin > license_manager > it_staff > auditor, each allowed everything the next
//! one is); the token carries exactly one.

use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use licensing_core::TrustStore;
use licensing_core::protocol::ErrorCode;
use serde::Serialize;

use super::db::OAuthClientAuth;
use super::error::ApiError;
use super::extract::{Caller, Role};
use super::{AppState, now, secrets};

/// Largest body accepted by `/oauth/token` and `/oauth/revoke` (a handful of short
/// parameters; an access token to revoke is about 600 bytes).
pub(crate) const MAX_FORM_BYTES: usize = 8 * 1024;

/// Lifetime of an access token, seconds (the most RFC 9068 tokens of this server may have).
pub(crate) const ACCESS_TOKEN_SECS: i64 = licensing_core::access::MAX_LIFETIME_SECS;

/// The scopes of the authorization server (the roles an OAuth client may have), highest first.
pub(crate) const SCOPES: [&str; 4] = ["admin", "license_manager", "it_staff", "auditor"];

/// The roles a client registered with `role` may be granted (itself and those below it); none
/// for `scim` (SCIM has its own tokens).
pub(crate) fn grantable(role: Role) -> &'static [Role] {
    const ALL: [Role; 4] = [
        Role::Admin,
        Role::LicenseManager,
        Role::ItStaff,
        Role::Auditor,
    ];
    match role {
        Role::Admin => &ALL,
        Role::LicenseManager => &ALL[1..],
        Role::ItStaff => &ALL[2..],
        Role::Auditor => &ALL[3..],
        Role::Scim => &[],
    }
}

/// The issuer of access tokens (`iss`) and of the metadata document: the server's `--issuer`,
/// without a trailing `/`.
pub(crate) fn issuer(state: &AppState) -> &str {
    state.issuer().trim_end_matches('/')
}

/// The admin API's resource identifier, the `aud` of every access token: `<issuer>/v1`.
pub(crate) fn audience(state: &AppState) -> String {
    format!("{}/v1", issuer(state))
}

/// An error answer of the token or revocation endpoint (RFC 6749 §5.2).
#[derive(Debug)]
pub(crate) struct OAuthError {
    status: StatusCode,
    /// The RFC's error code (`invalid_request`, `invalid_client`, ...).
    error: &'static str,
    description: String,
    /// `WWW-Authenticate: Basic` with a 401 (client authentication failed).
    challenge: bool,
}

/// The JSON of an [`OAuthError`] (RFC 6749 §5.2).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct OAuthErrorBody {
    /// `invalid_request`, `invalid_client`, `unsupported_grant_type`, `invalid_scope`,
    /// `unauthorized_client`.
    error: String,
    /// What went wrong, for a human.
    error_description: String,
}

impl OAuthError {
    /// `invalid_request` (400): a parameter missing, repeated or malformed.
    pub(crate) fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    /// `invalid_client` (401 with `WWW-Authenticate: Basic`): client authentication failed.
    pub(crate) fn invalid_client(description: impl Into<String>) -> Self {
        OAuthError {
            challenge: true,
            ..Self::new(StatusCode::UNAUTHORIZED, "invalid_client", description)
        }
    }

    /// An error of `status` with the RFC code `error`.
    pub(crate) fn new(
        status: StatusCode,
        error: &'static str,
        description: impl Into<String>,
    ) -> Self {
        OAuthError {
            status,
            error,
            description: description.into(),
            challenge: false,
        }
    }
}

impl From<sqlx::Error> for OAuthError {
    fn from(e: sqlx::Error) -> Self {
        // A database failure, logged by ApiError's own conversion: the RFC has no code for it.
        let status = ApiError::from(e).into_response().status();
        OAuthError::new(status, "server_error", "the server could not answer")
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            axum::Json(OAuthErrorBody {
                error: self.error.to_owned(),
                error_description: self.description,
            }),
        )
            .into_response();
        no_store(response.headers_mut());
        if self.challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"licensing\", charset=\"UTF-8\""),
            );
        }
        response
    }
}

/// `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1).
pub(crate) fn no_store(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// The parameters of a form body (`application/x-www-form-urlencoded`, at most
/// [`MAX_FORM_BYTES`]): a parameter given twice is refused, one without a value counts as
/// absent (RFC 6749 §3.1), unknown ones are ignored by the caller.
#[derive(Debug, Default)]
pub(crate) struct Form(Vec<(String, String)>);

impl Form {
    /// Parses `body`, which came with `headers`.
    pub(crate) fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Form, OAuthError> {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let essence = content_type.split(';').next().unwrap_or("").trim();
        if !essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            return Err(OAuthError::invalid_request(
                "the body must be `application/x-www-form-urlencoded`",
            ));
        }
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (name, value) in url::form_urlencoded::parse(body) {
            if pairs.iter().any(|(n, _)| *n == name) {
                return Err(OAuthError::invalid_request(format!(
                    "parameter `{}` is repeated",
                    name.chars().take(64).collect::<String>()
                )));
            }
            pairs.push((name.into_owned(), value.into_owned()));
        }
        Ok(Form(pairs))
    }

    /// The value of `name`, `None` when absent or empty.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }
}

/// Reads a form body of at most [`MAX_FORM_BYTES`]: 413 (`invalid_request`) beyond.
pub(crate) async fn read_form(
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Result<Form, OAuthError> {
    let too_large = || {
        OAuthError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            format!("the body is larger than {MAX_FORM_BYTES} bytes"),
        )
    };
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|len| len > MAX_FORM_BYTES as u64) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| too_large())?;
    Form::parse(headers, &bytes)
}

/// Authenticates the client of a token or revocation request: HTTP Basic
/// (`client_secret_basic`, RFC 6749 §2.3.1: id and secret form-urlencoded, then base64) or
/// `client_id` and `client_secret` in the body (`client_secret_post`), never both. Returns the
/// live client.
pub(crate) async fn authenticate_client(
    state: &AppState,
    headers: &HeaderMap,
    form: &Form,
) -> Result<OAuthClientAuth, OAuthError> {
    let (id, secret) = match headers.get(header::AUTHORIZATION) {
        Some(value) => {
            if form.get("client_secret").is_some() {
                return Err(OAuthError::invalid_request(
                    "use one client authentication method: HTTP Basic or the body, not both",
                ));
            }
            let (id, secret) = basic_credentials(value)
                .ok_or_else(|| OAuthError::invalid_client("malformed HTTP Basic credentials"))?;
            if form.get("client_id").is_some_and(|body_id| body_id != id) {
                return Err(OAuthError::invalid_client(
                    "`client_id` differs from the HTTP Basic user",
                ));
            }
            (id, secret)
        }
        None => match (form.get("client_id"), form.get("client_secret")) {
            (Some(id), Some(secret)) => (id.to_owned(), secret.to_owned()),
            _ => {
                return Err(OAuthError::invalid_client(
                    "client authentication required (HTTP Basic, or client_id and client_secret)",
                ));
            }
        },
    };
    let unknown = || OAuthError::invalid_client("unknown client, revoked client or wrong secret");
    let client = state
        .db()
        .oauth_client_auth(&id)
        .await?
        .ok_or_else(unknown)?;
    let presented = secrets::sha256_hex(secret.as_bytes());
    use subtle::ConstantTimeEq as _;
    if !bool::from(presented.as_bytes().ct_eq(client.secret_hash.as_bytes())) {
        return Err(unknown());
    }
    Ok(client)
}

/// The client id and secret of an `Authorization: Basic` header, `None` when it is not one.
fn basic_credentials(value: &HeaderValue) -> Option<(String, String)> {
    use base64::Engine as _;
    let text = value.to_str().ok()?;
    let (scheme, encoded) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |part: &str| -> String {
        url::form_urlencoded::parse(format!("x={part}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let (id, secret) = (unescape(id), unescape(secret));
    (!id.is_empty() && !secret.is_empty()).then_some((id, secret))
}

/// The role a token request's `scope` asks for (space-separated; exactly one role name), or
/// the client's own role without one. `invalid_scope` when the client may not have it.
pub(crate) fn granted_role(client_role: Role, scope: Option<&str>) -> Result<Role, OAuthError> {
    let invalid = |why: String| OAuthError::new(StatusCode::BAD_REQUEST, "invalid_scope", why);
    let Some(scope) = scope else {
        return Ok(client_role);
    };
    let mut asked = scope.split(' ').filter(|s| !s.is_empty());
    let (Some(one), None) = (asked.next(), asked.next()) else {
        return Err(invalid(
            "ask for one scope: a role name (admin, license_manager, it_staff, auditor)".into(),
        ));
    };
    let role = Role::parse(one)
        .filter(|role| grantable(client_role).contains(role))
        .ok_or_else(|| {
            invalid(format!(
                "scope `{}` is not one this client may have",
                one.chars().take(64).collect::<String>()
            ))
        })?;
    Ok(role)
}

/// The bearer of `parts` when it is an access token: a JWS whose header says `typ: at+jwt`.
/// Anything else (an API token, another JWS) is left to the API-token path.
pub(crate) fn access_token_bearer(parts: &Parts) -> Option<&str> {
    let token = parts
        .headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?
        .trim();
    if token.bytes().filter(|b| *b == b'.').count() != 2 {
        return None;
    }
    let (header, _) = licensing_core::decode_unverified(token).ok()?;
    (header["typ"] == licensing_core::TokenKind::Access.typ()).then_some(token)
}

/// The keys access tokens may be signed with: the server's published keys. Parsed once per
/// key set (a key is validated when parsed, which costs more than the signature check), and
/// again whenever the published set changes (a rotation, a reload from the database).
pub(crate) fn trust(state: &AppState) -> TrustStore {
    static PARSED: std::sync::Mutex<Option<(serde_json::Value, TrustStore)>> =
        std::sync::Mutex::new(None);
    let jwks = state.jwks();
    let mut parsed = PARSED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((document, store)) = parsed.as_ref()
        && *document == jwks
    {
        return store.clone();
    }
    let store = TrustStore::from_document(&jwks.to_string()).unwrap_or_default();
    *parsed = Some((jwks, store.clone()));
    store
}

/// The [`Caller`] of an access token: signature, type, issuer, audience and lifetime
/// checked (`licensing_core::access::verify_access_token`), then, in the database, that its
/// client is live in its organization and its jti not revoked (at once: nothing is cached).
/// 401 otherwise.
pub(crate) async fn access_caller(token: &str, state: &AppState) -> Result<Caller, ApiError> {
    let unauthorized =
        |detail: String| ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, detail);
    let claims = licensing_core::access::verify_access_token(
        token,
        &trust(state),
        issuer(state),
        &audience(state),
        now(),
    )
    .map_err(|e| unauthorized(format!("access token refused: {e}")))?;
    let role = Role::parse(&claims.scope)
        .filter(|role| *role != Role::Scim)
        .ok_or_else(|| unauthorized("access token refused: unknown scope".into()))?;
    let operator = state
        .db()
        .oauth_token_live(&claims.client_id, &claims.org, &claims.jti)
        .await?
        .ok_or_else(|| unauthorized("access token or its client revoked".into()))?;
    Ok(Caller {
        token_id: claims.client_id,
        organization_id: claims.org,
        operator: operator != 0,
        role,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_never_exceed_the_clients_role() {
        assert_eq!(granted_role(Role::ItStaff, None).unwrap(), Role::ItStaff);
        assert_eq!(
            granted_role(Role::Admin, Some("auditor")).unwrap(),
            Role::Auditor
        );
        for (role, scope) in [
            (Role::ItStaff, "license_manager"),
            (Role::Auditor, "admin"),
            (Role::Admin, "scim"),
            (Role::Admin, "auditor it_staff"),
            (Role::Admin, "read"),
        ] {
            assert_eq!(
                granted_role(role, Some(scope)).unwrap_err().error,
                "invalid_scope",
                "{scope}"
            );
        }
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let value = HeaderValue::from_static("Basic b2FjX2E6cyUzQXQrMQ=="); // oac_a:s%3At+1
        assert_eq!(
            basic_credentials(&value),
            Some(("oac_a".into(), "s:t 1".into()))
        );
        for bad in ["Bearer x", "Basic !!", "Basic b2FjX2E="] {
            assert_eq!(basic_credentials(&HeaderValue::from_static(bad)), None);
        }
    }
}
