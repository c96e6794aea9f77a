//! Signing keys: list, rotate, retire (operator admins; listing for any caller).

use serde::Serialize;

use super::*;
use crate::server::db::{Rewrite, Rewriter, SigningKeyRow};

/// A signing key as the API shows it: its public half only.
#[derive(Serialize, ToSchema)]
pub(crate) struct KeyView {
    kid: String,
    /// `current` (signs), `previous` (verifies, published), `retired` (unpublished).
    status: String,
    created_at: i64,
    retired_at: Option<i64>,
    /// The public key as a JWK.
    #[schema(value_type = super::super::openapi::Jwk)]
    public_jwk: Value,
}

/// Every signing key.
#[derive(Serialize, ToSchema)]
pub(crate) struct KeyList {
    keys: Vec<KeyView>,
}

/// A key just retired.
#[derive(Serialize, ToSchema)]
pub(crate) struct RetiredKey {
    kid: String,
    /// Always `retired`.
    status: &'static str,
    /// Stored license tokens re-signed with the current key.
    resigned_licenses: u64,
}

fn key_view(row: &SigningKeyRow) -> ApiResult<KeyView> {
    let key = licensing_core::PrivateKey::from_pkcs8_pem(&row.private_pem)
        .map_err(|e| ApiError::internal(format!("signing key {}: {e}", row.kid)))?;
    Ok(KeyView {
        kid: row.kid.clone(),
        status: row.status.clone(),
        created_at: row.created_at,
        retired_at: row.retired_at,
        public_jwk: key.public_key().to_jwk(),
    })
}

/// `GET /v1/keys`: every signing key, newest first (public halves only).
#[utoipa::path(get, path = "/v1/keys", tag = TAG_ADMIN, security(("api_token" = [])),
    responses((status = 200, description = "The signing keys", body = KeyList), AdminErrors))]
pub(crate) async fn list_keys(
    caller: Caller,
    State(state): State<AppState>,
) -> ApiResult<Json<KeyList>> {
    caller.require(Action::Read)?;
    let keys = state
        .db()
        .list_signing_keys()
        .await?
        .iter()
        .map(key_view)
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(KeyList { keys }))
}

/// `POST /v1/keys/rotate` (operator admins): a new key signs from now on; the former current key
/// becomes `previous` and keeps verifying (and stays in the JWKS) until it is retired.
#[utoipa::path(post, path = "/v1/keys/rotate", tag = TAG_ADMIN, security(("api_token" = [])),
    responses((status = 201, description = "The new current key", body = KeyView), AdminErrors))]
pub(crate) async fn rotate_key(
    caller: Caller,
    State(state): State<AppState>,
) -> ApiResult<(StatusCode, Json<KeyView>)> {
    caller.require_operator()?;
    let key = licensing_core::PrivateKey::generate().map_err(ApiError::internal)?;
    let row = SigningKeyRow {
        kid: key.public_key().kid().to_owned(),
        private_pem: key.to_pkcs8_pem().map_err(ApiError::internal)?.to_string(),
        status: "current".into(),
        created_at: now(),
        retired_at: None,
    };
    if !state.db().add_current_signing_key(&row, false).await? {
        return Err(ApiError::internal(
            "a freshly generated key is already known",
        ));
    }
    state.reload_keys().await.map_err(ApiError::internal)?;
    tracing::info!(kid = %row.kid, by = %caller.token_id, "signing key rotated");
    Ok((StatusCode::CREATED, Json(key_view(&row)?)))
}

/// `POST /v1/keys/{kid}/retire` (operator admins): a `previous` key leaves the JWKS. License
/// tokens the server stores that it signed are re-signed with the current key first, so the
/// server never hands out a token clients can no longer verify.
#[utoipa::path(post, path = "/v1/keys/{kid}/retire", tag = TAG_ADMIN, security(("api_token" = [])),
    params(("kid" = String, Path, description = "Key id")),
    responses((status = 200, description = "Retired", body = RetiredKey),
        (status = 404, description = "No such key", body = ErrorBody),
        (status = 409, description = "The key is current or retired already", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn retire_key(
    caller: Caller,
    State(state): State<AppState>,
    Path(kid): Path<String>,
) -> ApiResult<Json<RetiredKey>> {
    caller.require_operator()?;
    let rows = state.db().list_signing_keys().await?;
    match rows
        .iter()
        .find(|row| row.kid == kid)
        .map(|r| r.status.as_str())
    {
        None => {
            return Err(ApiError::not_found(
                "key_not_found",
                format!("no signing key `{kid}`"),
            ));
        }
        Some("current") => {
            return Err(ApiError::conflict(
                "key_is_current",
                "the current signing key cannot be retired; rotate first",
            ));
        }
        Some("retired") => {
            return Err(ApiError::conflict(
                "key_retired",
                format!("`{kid}` is retired already"),
            ));
        }
        Some(_) => {}
    }
    let now = now();
    let signed_by = |token: &str| -> Option<String> {
        let (header, _) = licensing_core::decode_unverified(token).ok()?;
        header.get("kid")?.as_str().map(str::to_owned)
    };
    let resign = |row: &LicenseRow, machines: &[Machine]| -> ApiResult<Option<Rewrite>> {
        // Only tokens still signed by the retiring key (a concurrent reissue may have replaced it).
        if row.token.as_deref().and_then(signed_by).as_deref() != Some(kid.as_str()) {
            return Ok(None);
        }
        let template = serde_json::from_str(&row.claims).map_err(ApiError::internal)?;
        let token = issue::sign_license_for(&state, &template, machines, now)?;
        Ok(Some(Rewrite {
            claims: row.claims.clone(),
            token,
            expires_at: row.expires_at,
        }))
    };
    let resign: &Rewriter<'_, ApiError> = &resign;
    let mut resigned = 0_u64;
    for (id, token) in state.db().stored_license_tokens().await? {
        if signed_by(&token).as_deref() == Some(kid.as_str())
            && state.db().rewrite_license(&id, resign, now).await??
        {
            resigned += 1;
        }
    }
    if !state.db().retire_signing_key(&kid, now).await? {
        return Err(ApiError::conflict(
            "key_not_previous",
            format!("`{kid}` changed state meanwhile; list the keys and retry"),
        ));
    }
    state.reload_keys().await.map_err(ApiError::internal)?;
    tracing::info!(%kid, resigned, by = %caller.token_id, "signing key retired");
    Ok(Json(RetiredKey {
        kid,
        status: "retired",
        resigned_licenses: resigned,
    }))
}
