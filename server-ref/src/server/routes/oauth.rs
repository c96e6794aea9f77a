//! OAuth 2.0 (issue 25): the organization's clients (admin API), the client-credentials grant
//! (`POST /oauth/token`, RFC 6749 §4.4) issuing RFC 9068 access tokens, their revocation
//! (`POST /oauth/revoke`, RFC 7009) and the authorization server metadata (RFC 8414). The
//! rules are in `server/oauth.rs`.

use axum::http::HeaderMap;
use axum::response::Response;
use licensing_core::access::AccessClaims;

use super::*;
use crate::server::db::OAuthClientRow;
use crate::server::extract::Role;
use crate::server::oauth::{self, OAuthError, OAuthErrorBody};

/// Tag of the OAuth 2.0 endpoints (their own media types and error format, RFC 6749).
pub(crate) const TAG_OAUTH: &str = "oauth";

// ---- clients (admin API) -------------------------------------------------------------------

/// An OAuth client as the API shows it (never the secret, which is shown once at creation).
#[derive(Serialize, ToSchema)]
pub(crate) struct OAuthClientView {
    /// The `client_id`.
    id: String,
    organization_id: String,
    name: String,
    /// The most its tokens may do: `admin`, `license_manager`, `it_staff` or `auditor`.
    role: String,
    created_at: i64,
    revoked_at: Option<i64>,
}

impl From<OAuthClientRow> for OAuthClientView {
    fn from(c: OAuthClientRow) -> Self {
        OAuthClientView {
            id: c.id,
            organization_id: c.organization_id,
            name: c.name,
            role: c.role,
            created_at: c.created_at,
            revoked_at: c.revoked_at,
        }
    }
}

/// A client to register.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewOAuthClient {
    /// What the client is (an integration, a billing system, ...).
    name: DisplayName,
    /// The most its tokens may do: `admin`, `license_manager`, `it_staff` or `auditor`
    /// (never more than the caller's own role).
    #[schema(value_type = OAuthRole)]
    role: String,
}

/// The roles an OAuth client may have (the API tokens' roles but `scim`), which are also the
/// scopes of its tokens.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // a documentation type: never built
pub(crate) enum OAuthRole {
    /// Everything in its organization.
    Admin,
    /// Products, policies, licenses, machines, seats.
    LicenseManager,
    /// Reads, deactivations, seat releases.
    ItStaff,
    /// Read-only.
    Auditor,
}

/// The grant types of the token endpoint.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // a documentation type: never built
pub(crate) enum GrantType {
    /// RFC 6749 §4.4.
    ClientCredentials,
}

/// A new client: its `client_secret` is shown only here (only its hash is stored).
#[derive(Serialize, ToSchema)]
pub(crate) struct CreatedOAuthClient {
    #[serde(flatten)]
    client: OAuthClientView,
    /// The `client_id` again, under its OAuth name.
    client_id: String,
    client_secret: String,
}

/// The organization's OAuth clients.
#[derive(Serialize, ToSchema)]
pub(crate) struct OAuthClientList {
    oauth_clients: Vec<OAuthClientView>,
}

/// A revoked OAuth client.
#[derive(Serialize, ToSchema)]
pub(crate) struct RevokedOAuthClient {
    id: String,
    /// Always `true`.
    revoked: bool,
}

/// `POST /v1/oauth-clients` (admins): a client of the client-credentials grant for the
/// caller's organization, with a role no higher than the caller's.
#[utoipa::path(post, path = "/v1/oauth-clients", tag = TAG_ADMIN, security(("api_token" = [])),
    request_body = NewOAuthClient,
    responses((status = 201, description = "Created", body = CreatedOAuthClient),
        AdminErrors, BodyErrors))]
pub(crate) async fn create_oauth_client(
    caller: Caller,
    State(state): State<AppState>,
    StrictJson(req): StrictJson<NewOAuthClient>,
) -> ApiResult<(StatusCode, Json<CreatedOAuthClient>)> {
    caller.require(Action::Administer)?;
    let role = Role::parse(&req.role)
        .filter(|role| *role != Role::Scim)
        .ok_or_else(|| {
            ApiError::invalid(
                ErrorCode::InvalidField,
                "`role` must be admin, license_manager, it_staff or auditor",
            )
        })?;
    if !oauth::grantable(caller.role).contains(&role) {
        return Err(ApiError::forbidden(
            ErrorCode::Forbidden,
            format!(
                "role `{}` may not create a `{}` client",
                caller.role.as_str(),
                role.as_str()
            ),
        ));
    }
    let secret = secrets::new_client_secret().map_err(internal)?;
    let row = OAuthClientRow {
        id: secrets::new_id("oac").map_err(internal)?,
        organization_id: caller.organization_id.clone(),
        name: req.name.into_string(),
        role: role.as_str().to_owned(),
        created_at: now(),
        revoked_at: None,
    };
    state
        .db()
        .insert_oauth_client(&row, &secrets::sha256_hex(secret.as_bytes()))
        .await?;
    tracing::info!(client_id = %row.id, organization = %row.organization_id,
        role = %row.role, by = %caller.token_id, "OAuth client created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedOAuthClient {
            client_id: row.id.clone(),
            client: row.into(),
            client_secret: secret,
        }),
    ))
}

/// `GET /v1/oauth-clients` (admins): the organization's clients, revoked ones included.
#[utoipa::path(get, path = "/v1/oauth-clients", tag = TAG_ADMIN, security(("api_token" = [])),
    responses((status = 200, description = "The clients", body = OAuthClientList), AdminErrors))]
pub(crate) async fn list_oauth_clients(
    caller: Caller,
    State(state): State<AppState>,
) -> ApiResult<Json<OAuthClientList>> {
    caller.require(Action::Administer)?;
    let clients = state
        .db()
        .list_oauth_clients(&caller.organization_id)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(Json(OAuthClientList {
        oauth_clients: clients,
    }))
}

/// `POST /v1/oauth-clients/{id}/revoke` (admins): the client gets no more tokens and the
/// tokens it holds stop working at once.
#[utoipa::path(post, path = "/v1/oauth-clients/{id}/revoke", tag = TAG_ADMIN,
    security(("api_token" = [])),
    params(("id" = String, Path, description = "The client_id")),
    responses((status = 200, description = "Revoked", body = RevokedOAuthClient),
        (status = 404, description = "No live client with this id", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn revoke_oauth_client(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<RevokedOAuthClient>> {
    caller.require(Action::Administer)?;
    if !state
        .db()
        .revoke_oauth_client(&caller.organization_id, &id, now())
        .await?
    {
        return Err(ApiError::not_found(
            ErrorCode::OAuthClientNotFound,
            format!("no live OAuth client `{id}` in this organization"),
        ));
    }
    tracing::info!(client_id = %id, by = %caller.token_id, "OAuth client revoked");
    Ok(Json(RevokedOAuthClient { id, revoked: true }))
}

// ---- the authorization server --------------------------------------------------------------

/// The parameters of a token request (RFC 6749 §4.4.2), form-encoded.
#[derive(ToSchema)]
#[allow(dead_code)] // a documentation type: the form is read by `oauth::Form`
pub(crate) struct TokenRequest {
    /// `client_credentials`.
    #[schema(value_type = GrantType)]
    grant_type: String,
    /// One role name (`admin`, `license_manager`, `it_staff`, `auditor`) no higher than the
    /// client's role; default: the client's role.
    #[schema(value_type = Option<OAuthRole>)]
    scope: Option<String>,
    /// `client_secret_post` only (else HTTP Basic).
    client_id: Option<String>,
    /// `client_secret_post` only (else HTTP Basic).
    client_secret: Option<String>,
}

/// A token response (RFC 6749 §5.1).
#[derive(Serialize, ToSchema)]
pub(crate) struct TokenResponse {
    /// An RFC 9068 JWT (`typ: at+jwt`, EdDSA): `Authorization: Bearer <it>` on the admin API.
    access_token: String,
    /// `Bearer`.
    token_type: &'static str,
    /// Seconds until it expires (at most 900).
    expires_in: i64,
    /// The granted scope: one role name.
    scope: String,
}

/// `POST /oauth/token`: the client-credentials grant (RFC 6749 §4.4). The client authenticates
/// with HTTP Basic (`client_secret_basic`) or `client_id` and `client_secret` in the body
/// (`client_secret_post`); the answer is a short-lived RFC 9068 access token for the admin API,
/// scoped to the client's organization and one role. Errors are RFC 6749 §5.2's
/// (`invalid_client` is a 401 with `WWW-Authenticate: Basic`).
#[utoipa::path(post, path = "/oauth/token", tag = TAG_OAUTH,
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "An access token (`Cache-Control: no-store`)",
            body = TokenResponse),
        (status = 400, description = "invalid_request, unsupported_grant_type or invalid_scope",
            body = OAuthErrorBody),
        (status = 401, description = "invalid_client (`WWW-Authenticate: Basic`)",
            body = OAuthErrorBody),
        (status = 413, description = "The body is larger than 8 KiB (invalid_request)",
            body = OAuthErrorBody),
        (status = 429, description = "slow_down: the client asked for more tokens than the client \
            rate (`--client-rate-per-minute`) allows", body = OAuthErrorBody)))]
pub(crate) async fn oauth_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    match token_grant(&state, &headers, body).await {
        Ok(answer) => {
            let mut response = Json(answer).into_response();
            oauth::no_store(response.headers_mut());
            response
        }
        Err(e) => e.into_response(),
    }
}

async fn token_grant(
    state: &AppState,
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Result<TokenResponse, OAuthError> {
    let form = oauth::read_form(headers, body).await?;
    let client = oauth::authenticate_client(state, headers, &form).await?;
    // Each token costs a signature: a client mints at the client rate of this replica
    // (`--client-rate-per-minute`). Counted after authentication, so nobody can use up
    // another client's rate by sending its id with wrong secrets.
    if state
        .check_client_rate(&format!("oauth-client:{}", client.id))
        .is_err()
    {
        return Err(OAuthError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "slow_down",
            "too many token requests from this client; retry in a minute",
        ));
    }
    match form.get("grant_type") {
        None => return Err(OAuthError::invalid_request("`grant_type` is missing")),
        Some("client_credentials") => {}
        Some(_) => {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "the only grant is `client_credentials`",
            ));
        }
    }
    let client_role = Role::parse(&client.role)
        .ok_or_else(|| OAuthError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", ""))?;
    let role = oauth::granted_role(client_role, form.get("scope"))?;
    let issued_at = now();
    let claims = AccessClaims {
        iss: oauth::issuer(state).to_owned(),
        sub: client.id.clone(),
        aud: oauth::audience(state),
        client_id: client.id.clone(),
        scope: role.as_str().to_owned(),
        iat: issued_at,
        nbf: Some(issued_at),
        exp: issued_at + oauth::ACCESS_TOKEN_SECS,
        jti: secrets::new_id("atj").map_err(|_| server_error())?,
        org: client.organization_id.clone(),
    };
    let token = crate::server::with_current_key(|| {
        licensing_core::issue_access_token(&claims, &state.key())
    })
    .map_err(|_| server_error())?;
    tracing::info!(client_id = %client.id, organization = %client.organization_id,
        scope = role.as_str(), "OAuth access token issued");
    Ok(TokenResponse {
        access_token: token,
        token_type: "Bearer",
        expires_in: oauth::ACCESS_TOKEN_SECS,
        scope: claims.scope,
    })
}

fn server_error() -> OAuthError {
    OAuthError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "the server could not answer",
    )
}

/// The parameters of a revocation request (RFC 7009 §2.1), form-encoded.
#[derive(ToSchema)]
#[allow(dead_code)] // a documentation type: the form is read by `oauth::Form`
pub(crate) struct RevocationRequest {
    /// The access token to revoke.
    token: String,
    /// `access_token` (the only kind this server issues; a hint only).
    token_type_hint: Option<String>,
    /// `client_secret_post` only (else HTTP Basic).
    client_id: Option<String>,
    /// `client_secret_post` only (else HTTP Basic).
    client_secret: Option<String>,
}

/// `POST /oauth/revoke`: token revocation (RFC 7009). The client authenticates as at the token
/// endpoint and names one of its access tokens: it is refused by the admin API from then on.
/// A token that is not a live access token of this server (expired, unknown, malformed)
/// answers 200 all the same; one issued to another client is refused (`unauthorized_client`).
#[utoipa::path(post, path = "/oauth/revoke", tag = TAG_OAUTH,
    request_body(content = RevocationRequest,
        content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "Revoked, or nothing to revoke"),
        (status = 400, description = "invalid_request or unauthorized_client",
            body = OAuthErrorBody),
        (status = 401, description = "invalid_client (`WWW-Authenticate: Basic`)",
            body = OAuthErrorBody),
        (status = 413, description = "The body is larger than 8 KiB (invalid_request)",
            body = OAuthErrorBody)))]
pub(crate) async fn oauth_revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    match revoke(&state, &headers, body).await {
        Ok(()) => {
            let mut response = StatusCode::OK.into_response();
            oauth::no_store(response.headers_mut());
            response
        }
        Err(e) => e.into_response(),
    }
}

async fn revoke(
    state: &AppState,
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Result<(), OAuthError> {
    let form = oauth::read_form(headers, body).await?;
    let client = oauth::authenticate_client(state, headers, &form).await?;
    let token = form
        .get("token")
        .ok_or_else(|| OAuthError::invalid_request("`token` is missing"))?;
    let Ok(claims) = licensing_core::access::verify_access_token(
        token,
        &oauth::trust(state),
        oauth::issuer(state),
        &oauth::audience(state),
        now(),
    ) else {
        // Not a live access token of this server: nothing to revoke (RFC 7009 §2.2).
        return Ok(());
    };
    if claims.client_id != client.id {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "the token was not issued to this client",
        ));
    }
    let at = now();
    state
        .db()
        .revoke_oauth_token(
            &claims.jti,
            &client.id,
            claims.exp,
            at,
            at - 2 * licensing_core::access::LEEWAY_SECS,
        )
        .await?;
    tracing::info!(client_id = %client.id, "OAuth access token revoked");
    Ok(())
}

/// The authorization server metadata (RFC 8414).
#[derive(Serialize, ToSchema)]
pub(crate) struct AuthorizationServerMetadata {
    /// The `iss` of the access tokens (the server's `--issuer`).
    issuer: String,
    token_endpoint: String,
    revocation_endpoint: String,
    /// The keys the access tokens are signed with.
    jwks_uri: String,
    /// `client_credentials`.
    grant_types_supported: Vec<&'static str>,
    /// None: there is no authorization endpoint.
    response_types_supported: Vec<&'static str>,
    /// `client_secret_basic`, `client_secret_post`.
    token_endpoint_auth_methods_supported: Vec<&'static str>,
    /// The same as the token endpoint's.
    revocation_endpoint_auth_methods_supported: Vec<&'static str>,
    /// The role names.
    scopes_supported: Vec<&'static str>,
}

/// `GET /.well-known/oauth-authorization-server`: the authorization server metadata (RFC
/// 8414). The endpoints are under the issuer when `--issuer` is an `http(s)` URL (set it to the
/// server's public URL), else under the request's `Host`.
#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = TAG_OAUTH,
    responses((status = 200, description = "The metadata", body = AuthorizationServerMetadata)))]
pub(crate) async fn oauth_metadata(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Json<AuthorizationServerMetadata> {
    let issuer = oauth::issuer(&state).to_owned();
    let base = if issuer.starts_with("https://") || issuer.starts_with("http://") {
        issuer.clone()
    } else {
        crate::server::base_url::request_base_url(&headers)
    };
    let auth_methods = vec!["client_secret_basic", "client_secret_post"];
    Json(AuthorizationServerMetadata {
        issuer,
        token_endpoint: format!("{base}/oauth/token"),
        revocation_endpoint: format!("{base}/oauth/revoke"),
        jwks_uri: format!("{base}/.well-known/jwks.json"),
        grant_types_supported: vec!["client_credentials"],
        response_types_supported: Vec::new(),
        token_endpoint_auth_methods_supported: auth_methods.clone(),
        revocation_endpoint_auth_methods_supported: auth_methods,
        scopes_supported: oauth::SCOPES.to_vec(),
    })
}
