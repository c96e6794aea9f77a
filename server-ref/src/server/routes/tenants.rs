//! Organizations (tenants) and their API tokens.

use serde::Serialize;

use super::*;
use crate::server::db::{ApiTokenRow, Organization};
use crate::server::extract::Role;

/// An organization as the API shows it.
#[derive(Serialize, ToSchema)]
pub(crate) struct OrganizationView {
    id: String,
    name: String,
    /// The organization created at first start (may create organizations, manage keys).
    operator: bool,
    created_at: i64,
}

impl From<Organization> for OrganizationView {
    fn from(o: Organization) -> Self {
        OrganizationView {
            id: o.id,
            name: o.name,
            operator: o.operator != 0,
            created_at: o.created_at,
        }
    }
}

/// An API token as the API shows it (never the secret, which is shown once at creation).
#[derive(Serialize, ToSchema)]
pub(crate) struct ApiTokenView {
    id: String,
    organization_id: String,
    /// `admin`, `license_manager`, `it_staff`, `auditor` or `scim`.
    role: String,
    label: String,
    created_at: i64,
    revoked_at: Option<i64>,
}

impl From<ApiTokenRow> for ApiTokenView {
    fn from(t: ApiTokenRow) -> Self {
        ApiTokenView {
            id: t.id,
            organization_id: t.organization_id,
            role: t.role,
            label: t.label,
            created_at: t.created_at,
            revoked_at: t.revoked_at,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewOrganization {
    /// Display name.
    name: DisplayName,
}

/// Organizations.
#[derive(Serialize, ToSchema)]
pub(crate) struct OrganizationList {
    organizations: Vec<OrganizationView>,
}

/// API tokens.
#[derive(Serialize, ToSchema)]
pub(crate) struct ApiTokenList {
    api_tokens: Vec<ApiTokenView>,
}

/// A revoked API token.
#[derive(Serialize, ToSchema)]
pub(crate) struct RevokedApiToken {
    id: String,
    /// Always `true`.
    revoked: bool,
}

/// A new organization and the admin token of its first administrator (shown once).
#[derive(Serialize, ToSchema)]
pub(crate) struct CreatedOrganization {
    organization: OrganizationView,
    admin_token: String,
    admin_token_id: String,
}

/// `POST /v1/organizations` (operator admins): a tenant plus an admin API token for it.
#[utoipa::path(post, path = "/v1/organizations", tag = TAG_ADMIN, security(("api_token" = [])),
    request_body = NewOrganization,
    responses((status = 201, description = "Created", body = CreatedOrganization),
        AdminErrors, BodyErrors))]
pub(crate) async fn create_organization(
    caller: Caller,
    State(state): State<AppState>,
    StrictJson(req): StrictJson<NewOrganization>,
) -> ApiResult<(StatusCode, Json<CreatedOrganization>)> {
    caller.require_operator()?;
    let org = Organization {
        id: secrets::new_id("org").map_err(internal)?,
        name: req.name.into_string(),
        operator: 0,
        created_at: now(),
    };
    if !state.db().insert_organization(&org).await? {
        return Err(ApiError::internal("organization id collision"));
    }
    let (admin_token_id, admin_token) =
        mint_token(&state, &org.id, Role::Admin, "first admin").await?;
    tracing::info!(organization = %org.id, by = %caller.token_id, "organization created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedOrganization {
            organization: org.into(),
            admin_token,
            admin_token_id,
        }),
    ))
}

/// `GET /v1/organizations`: every organization for operator admins, one's own otherwise.
#[utoipa::path(get, path = "/v1/organizations", tag = TAG_ADMIN, security(("api_token" = [])),
    responses((status = 200, description = "The organizations", body = OrganizationList),
        AdminErrors))]
pub(crate) async fn list_organizations(
    caller: Caller,
    State(state): State<AppState>,
) -> ApiResult<Json<OrganizationList>> {
    caller.require(Action::Read)?;
    let only = (!(caller.operator && caller.role == Role::Admin))
        .then_some(caller.organization_id.as_str());
    let orgs: Vec<OrganizationView> = state
        .db()
        .list_organizations(only)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(Json(OrganizationList {
        organizations: orgs,
    }))
}

async fn mint_token(
    state: &AppState,
    organization_id: &str,
    role: Role,
    label: &str,
) -> ApiResult<(String, String)> {
    let token = secrets::new_api_token().map_err(internal)?;
    let id = secrets::new_id("tok").map_err(internal)?;
    state
        .db()
        .insert_api_token(
            &id,
            organization_id,
            &secrets::sha256_hex(token.as_bytes()),
            role.as_str(),
            label,
            now(),
        )
        .await?;
    Ok((id, token))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewApiToken {
    /// `admin`, `license_manager`, `it_staff`, `auditor`, or `scim` (an identity provider's
    /// SCIM client: `/scim/v2` of the organization and nothing else).
    #[schema(value_type = super::super::openapi::RoleSchema)]
    role: String,
    /// What the token is for.
    label: DisplayName,
    /// Another organization (operator admins only); default: the caller's.
    organization_id: Option<String>,
}

/// A new API token (the secret is shown only here).
#[derive(Serialize, ToSchema)]
pub(crate) struct CreatedApiToken {
    #[serde(flatten)]
    token: ApiTokenView,
    secret: String,
}

/// `POST /v1/api-tokens` (admins): a token for one organization and one role.
#[utoipa::path(post, path = "/v1/api-tokens", tag = TAG_ADMIN, security(("api_token" = [])),
    request_body = NewApiToken,
    responses((status = 201, description = "Created", body = CreatedApiToken),
        (status = 404, description = "No such organization", body = ErrorBody),
        AdminErrors, BodyErrors))]
pub(crate) async fn create_api_token(
    caller: Caller,
    State(state): State<AppState>,
    StrictJson(req): StrictJson<NewApiToken>,
) -> ApiResult<(StatusCode, Json<CreatedApiToken>)> {
    caller.require(Action::Administer)?;
    let role = Role::parse(&req.role).ok_or_else(|| {
        ApiError::invalid(
            ErrorCode::InvalidField,
            "`role` must be admin, license_manager, it_staff, auditor or scim",
        )
    })?;
    let organization_id = match req.organization_id {
        Some(other) if other != caller.organization_id => {
            caller.require_operator()?;
            let exists = !state
                .db()
                .list_organizations(Some(&other))
                .await?
                .is_empty();
            if !exists {
                return Err(ApiError::not_found(
                    ErrorCode::OrganizationNotFound,
                    format!("no organization `{other}`"),
                ));
            }
            other
        }
        _ => caller.organization_id.clone(),
    };
    let (id, secret) = mint_token(&state, &organization_id, role, &req.label).await?;
    tracing::info!(token_id = %id, organization = %organization_id, role = role.as_str(),
        by = %caller.token_id, "API token created");
    let created = state
        .db()
        .list_api_tokens(&organization_id)
        .await?
        .into_iter()
        .find(|t| t.id == id)
        .ok_or_else(|| ApiError::internal("the new API token is not stored"))?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiToken {
            token: created.into(),
            secret,
        }),
    ))
}

/// `GET /v1/api-tokens` (admins): the organization's tokens, revoked ones included.
#[utoipa::path(get, path = "/v1/api-tokens", tag = TAG_ADMIN, security(("api_token" = [])),
    responses((status = 200, description = "The tokens", body = ApiTokenList), AdminErrors))]
pub(crate) async fn list_api_tokens(
    caller: Caller,
    State(state): State<AppState>,
) -> ApiResult<Json<ApiTokenList>> {
    caller.require(Action::Administer)?;
    let tokens: Vec<ApiTokenView> = state
        .db()
        .list_api_tokens(&caller.organization_id)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(Json(ApiTokenList { api_tokens: tokens }))
}

/// `POST /v1/api-tokens/{id}/revoke` (admins): the token stops working at once.
#[utoipa::path(post, path = "/v1/api-tokens/{id}/revoke", tag = TAG_ADMIN,
    security(("api_token" = [])),
    params(("id" = String, Path, description = "API token id")),
    responses((status = 200, description = "Revoked", body = RevokedApiToken),
        (status = 404, description = "No live API token with this id", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn revoke_api_token(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<RevokedApiToken>> {
    caller.require(Action::Administer)?;
    if !state
        .db()
        .revoke_api_token(&caller.organization_id, &id, now())
        .await?
    {
        return Err(ApiError::not_found(
            ErrorCode::ApiTokenNotFound,
            format!("no live API token `{id}` in this organization"),
        ));
    }
    tracing::info!(token_id = %id, by = %caller.token_id, "API token revoked");
    Ok(Json(RevokedApiToken { id, revoked: true }))
}
