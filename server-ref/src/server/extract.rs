//! Request extractors: strict JSON bodies and bearer API tokens, both answering with
//! [`ApiError`]s.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use super::AppState;
use super::audit::AuditSlot;
use super::display_name::DisplayName;
use super::error::ApiError;
use super::secrets;
use licensing_core::protocol::ErrorCode;

/// Largest request body accepted.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

/// A JSON body parsed strictly: `application/json`, at most [`MAX_BODY_BYTES`], one object,
/// no duplicate names at any depth (licensing-core's strict pre-pass), then typed parsing whose
/// errors name the field. Request types deny unknown fields.
#[derive(Debug)]
pub(crate) struct StrictJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for StrictJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let essence = content_type.split(';').next().unwrap_or("").trim();
        if !essence.eq_ignore_ascii_case("application/json") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
                "the body must be JSON with `Content-Type: application/json`",
            ));
        }
        let too_large = || {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                format!("the body is larger than {MAX_BODY_BYTES} bytes"),
            )
        };
        // Refuse an announced oversize body before waiting for any of it.
        let announced = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if announced.is_some_and(|len| len > MAX_BODY_BYTES as u64) {
            return Err(too_large());
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large()
            } else {
                ApiError::bad_request(ErrorCode::UnreadableBody, rejection.body_text())
            }
        })?;
        parse_strict(&bytes).map(StrictJson)
    }
}

/// The strict parse of [`StrictJson`], for JSON that does not come as a request body (the
/// offline activation request file read by the CLI).
pub(crate) fn parse_strict<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    licensing_core::strict_json::check_object(bytes)
        .map_err(|e| ApiError::bad_request(ErrorCode::MalformedJson, e))?;
    // A valid body is parsed once; only a refused one is parsed again, tracking the path to
    // name the field (path tracking costs as much as the parse itself).
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            ApiError::invalid(ErrorCode::InvalidRequest, inner.to_string())
        } else if inner.to_string().starts_with(DisplayName::RULE) {
            // The body the handlers' own check answered before the rule moved into the type.
            DisplayName::refused(&path)
        } else {
            ApiError::invalid(ErrorCode::InvalidField, format!("`{path}`: {inner}"))
        }
    })
}

/// A role an API token carries. What each may do is decided in one place,
/// [`Caller::require`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Everything in its organization, API tokens included.
    Admin,
    /// Products, policies, licenses, machines, seats: read and write.
    LicenseManager,
    /// The customer's IT: read licenses, machines, seats and denials; deactivate machines,
    /// force-release seats, set a floating license's timeout.
    ItStaff,
    /// Read-only, audit trail included.
    Auditor,
    /// An identity provider's SCIM client: `/scim/v2` of its organization and nothing else
    /// (every admin-API route refuses it; see [`Caller`]'s extractor).
    Scim,
}

impl Role {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::LicenseManager => "license_manager",
            Role::ItStaff => "it_staff",
            Role::Auditor => "auditor",
            Role::Scim => "scim",
        }
    }

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<Role> {
        Some(match name {
            "admin" => Role::Admin,
            "license_manager" => Role::LicenseManager,
            "it_staff" => Role::ItStaff,
            "auditor" => Role::Auditor,
            "scim" => Role::Scim,
            _ => return None,
        })
    }
}

/// What an admin-API call does, for the role check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Any read (GET).
    Read,
    /// Create or change products, policies and licenses (incl. suspend/revoke/renew).
    ManageLicenses,
    /// Operational actions of the customer's IT: deactivate a machine, force-release a seat,
    /// set a floating license's timeout, assign, reassign and unassign named seats.
    Operate,
    /// Approve or reject a requested transfer of a named seat (admins only; never the
    /// requesting token, checked by the route).
    ApproveTransfers,
    /// API tokens, organizations, signing keys.
    Administer,
    /// The audit evidence: the CEF export, signed checkpoints, the audit package (admins and
    /// auditors).
    Audit,
}

/// The authenticated caller of the admin API (`Authorization: Bearer <API token>`): the
/// token's organization and role. Every admin read and write is scoped to `organization_id`.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// The token's id (for the audit trail; never the secret).
    pub token_id: String,
    /// The tenant the token belongs to.
    pub organization_id: String,
    /// Whether that tenant is the operator (the organization created at first start).
    pub operator: bool,
    /// The token's role.
    pub role: Role,
}

impl Caller {
    /// 403 unless the caller's role may do `action`. The one role table of the server.
    pub fn require(&self, action: Action) -> Result<(), ApiError> {
        let allowed = match self.role {
            Role::Admin => true,
            Role::LicenseManager => !matches!(
                action,
                Action::Administer | Action::ApproveTransfers | Action::Audit
            ),
            Role::ItStaff => matches!(action, Action::Read | Action::Operate),
            Role::Auditor => matches!(action, Action::Read | Action::Audit),
            Role::Scim => false,
        };
        if allowed {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                ErrorCode::Forbidden,
                format!("role `{}` may not do this", self.role.as_str()),
            ))
        }
    }

    /// Whether the caller's role may do `action` ([`Caller::require`] without the error).
    pub fn may(&self, action: Action) -> bool {
        self.require(action).is_ok()
    }

    /// 403 unless the caller is an admin of the operator organization (creating organizations,
    /// managing signing keys).
    pub fn require_operator(&self) -> Result<(), ApiError> {
        self.require(Action::Administer)?;
        if self.operator {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                ErrorCode::Forbidden,
                "only an admin of the operator organization may do this",
            ))
        }
    }
}

/// What an admin route that changes state requires of its caller, checked by the [`Caller`]
/// extractor before anything else is read from the request: a caller who may not call the
/// route gets 403 whatever its body (never a 422 that tells what the body lacks). The
/// handlers check the same again with [`Caller::require`]; reads need no early check (they
/// carry no body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Required {
    /// The role must allow this action.
    Action(Action),
    /// An admin of the operator organization.
    Operator,
}

/// The [`Required`] of a state-changing admin route (`route` is the router's template), or
/// `None` for reads and routes that are not admin routes.
pub(crate) fn required_for(method: &axum::http::Method, route: &str) -> Option<Required> {
    use axum::http::Method;
    if method == Method::GET || method == Method::HEAD {
        return None;
    }
    Some(match route {
        "/v1/products"
        | "/v1/products/{id}"
        | "/v1/policies"
        | "/v1/policies/{id}"
        | "/v1/licenses"
        | "/v1/licenses/{id}/suspend"
        | "/v1/licenses/{id}/reinstate"
        | "/v1/licenses/{id}/revoke"
        | "/v1/licenses/{id}/renew"
        | "/v1/licenses/{id}/borrowing"
        | "/v1/licenses/{id}/seating"
        | "/v1/licenses/{id}/reclamation"
        | "/v1/licenses/{id}/reclamation/run" => Required::Action(Action::ManageLicenses),
        "/v1/licenses/{id}/machines/{machine_id}"
        | "/v1/licenses/{id}/leases/{lease_id}/release"
        | "/v1/licenses/{id}/lease-timeout"
        | "/v1/licenses/{id}/queue"
        | "/v1/licenses/{id}/queue/{queue_id}/remove"
        | "/v1/offline/activate"
        | "/v1/offline/deactivate"
        | "/v1/licenses/{id}/assignments"
        | "/v1/licenses/{id}/assignments/{assignment_id}"
        | "/v1/licenses/{id}/assignments/{assignment_id}/reassign" => {
            Required::Action(Action::Operate)
        }
        "/v1/assignment-transfers/{id}/approve" | "/v1/assignment-transfers/{id}/reject" => {
            Required::Action(Action::ApproveTransfers)
        }
        "/v1/directory/users"
        | "/v1/directory/users/{id}"
        | "/v1/directory/departments"
        | "/v1/directory/departments/{id}"
        | "/v1/directory/import" => Required::Action(Action::ManageLicenses),
        "/v1/directory/users/{id}/deactivate"
        | "/v1/directory/users/{id}/reactivate"
        | "/v1/directory/departments/{id}/members"
        | "/v1/directory/departments/{id}/members/{user_id}" => Required::Action(Action::Operate),
        "/v1/api-tokens" | "/v1/api-tokens/{id}/revoke" | "/v1/audit/erase" | "/v1/retention" => {
            Required::Action(Action::Administer)
        }
        "/v1/oauth-clients" | "/v1/oauth-clients/{id}/revoke" => {
            Required::Action(Action::Administer)
        }
        "/v1/directory/users/{id}/erase" => Required::Action(Action::Administer),
        "/v1/audit/checkpoints" => Required::Action(Action::Administer),
        "/v1/organizations"
        | "/v1/keys/stage"
        | "/v1/keys/{kid}/promote"
        | "/v1/keys/rotate"
        | "/v1/keys/{kid}/retire" => Required::Operator,
        _ => return None,
    })
}

/// The caller a request's `Authorization: Bearer <API token>` header names, whatever its role:
/// 401 when the header is missing, malformed, or names no live token. The admin API's
/// [`Caller`] extractor and the SCIM service provider each check the role on top.
pub(crate) async fn bearer_caller(parts: &Parts, state: &AppState) -> Result<Caller, ApiError> {
    let unauthorized =
        |detail: &str| ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, detail);
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("missing `Authorization: Bearer <API token>`"))?;
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| unauthorized("the Authorization header is not `Bearer <API token>`"))?;
    let grant = state
        .db()
        .api_token_grant(&secrets::sha256_hex(token.as_bytes()))
        .await?
        .ok_or_else(|| unauthorized("unknown or revoked API token"))?;
    let role = Role::parse(&grant.role)
        .ok_or_else(|| ApiError::internal(format!("stored role `{}` is unknown", grant.role)))?;
    Ok(Caller {
        token_id: grant.id,
        organization_id: grant.organization_id,
        operator: grant.operator != 0,
        role,
    })
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // An OAuth 2.0 access token (`typ: at+jwt`) or else an API token.
        let caller = match super::oauth::access_token_bearer(parts) {
            Some(token) => super::oauth::access_caller(token, state).await?,
            None => bearer_caller(parts, state).await?,
        };
        if caller.role == Role::Scim {
            // Whatever the route: a SCIM token reads and writes the directory, nothing else.
            return Err(ApiError::forbidden(
                ErrorCode::Forbidden,
                "a `scim` token may call only /scim/v2",
            ));
        }
        // The role before the body: a caller who may not call this route learns nothing more.
        let route = parts
            .extensions
            .get::<axum::extract::MatchedPath>()
            .map(axum::extract::MatchedPath::as_str);
        match route.and_then(|route| required_for(&parts.method, route)) {
            Some(Required::Action(action)) => caller.require(action)?,
            Some(Required::Operator) => caller.require_operator()?,
            None => {}
        }
        // A state-changing request: the audit trail records this caller if it succeeds.
        if let Some(slot) = parts.extensions.get::<AuditSlot>() {
            slot.set(&caller);
        }
        Ok(caller)
    }
}
