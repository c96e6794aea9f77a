//! HTTP handlers: health and keys, the admin API (bearer API token) and the client API
//! (license key).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use licensing_core::claims::{Feature, MatchPolicy, Site, VersionRule};
use licensing_core::fingerprint::MAX_COMPONENTS;
pub(crate) use licensing_core::protocol::ErrorCode;
use licensing_core::{LicenseModel, MachineFingerprint};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::db::{self, Engine, LicenseRow, Machine, Policy, Product, Rewrite, Transition};
use super::display_name::DisplayName;
use super::error::{ApiError, ApiResult};
use super::extract::{Action, Caller, StrictJson};
use super::issue::{self, NewLicense};
use super::openapi::{
    AdminErrors, BodyErrors, ErrorBody, RateLimited, ReadErrors, TAG_ADMIN, TAG_CLIENT, TAG_PUBLIC,
};
use super::seat_policy::{self, SeatMode};
use super::{AppState, now, secrets};

mod admin;
mod assignments;
mod audit;
mod audit_evidence;
mod catalog;
mod client;
mod compliance;
mod directory;
mod floating;
mod gdpr;
mod keys;
mod oauth;
mod reclamation;
mod retention;
mod tenants;

pub(crate) use admin::*;
pub(crate) use assignments::*;
pub(crate) use audit::*;
pub(crate) use audit_evidence::*;
pub(crate) use catalog::*;
pub(crate) use client::*;
pub(crate) use compliance::*;
pub(crate) use directory::*;
pub(crate) use floating::*;
pub(crate) use gdpr::*;
pub(crate) use keys::*;
pub(crate) use oauth::*;
pub(crate) use reclamation::*;
pub(crate) use retention::*;
pub(crate) use tenants::*;

// ---- health and keys -----------------------------------------------------------------------

/// The answer of `GET /healthz`.
#[derive(Serialize, ToSchema)]
pub(crate) struct Health {
    /// Always `ok`.
    status: &'static str,
    /// `sqlite` or `postgres`.
    database: &'static str,
}

/// `GET /healthz`: the process is up and the database answers.
#[utoipa::path(get, path = "/healthz", tag = TAG_PUBLIC,
    responses((status = 200, description = "Up, and the database answers", body = Health)))]
pub(crate) async fn healthz(State(state): State<AppState>) -> ApiResult<Json<Health>> {
    state.db().ping().await?;
    let database = match state.db().engine() {
        Engine::Sqlite => "sqlite",
        Engine::Postgres => "postgres",
    };
    Ok(Json(Health {
        status: "ok",
        database,
    }))
}

/// `GET /.well-known/jwks.json`: the public keys tokens are signed with.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = TAG_PUBLIC,
    responses((status = 200, description = "The published public keys (JWK Set)",
        body = super::openapi::Jwks)))]
pub(crate) async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(state.jwks().clone()),
    )
}

/// Unknown path.
pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found(ErrorCode::NotFound, "no such endpoint")
}

/// Known path, wrong method.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        "this endpoint does not accept that method",
    )
}

// ---- input rules ---------------------------------------------------------------------------

/// Identifiers and hashes: printable ASCII without spaces.
pub(crate) fn token_field(field: &str, value: &str, min: usize, max: usize) -> ApiResult<()> {
    if value.len() < min || value.len() > max || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::invalid(
            ErrorCode::InvalidField,
            format!("`{field}` must be {min} to {max} printable ASCII characters without spaces"),
        ));
    }
    Ok(())
}

pub(crate) fn check_fingerprint(fp: &MachineFingerprint) -> ApiResult<()> {
    token_field("fingerprint.id", &fp.id, 1, 128)?;
    if fp.components.len() > MAX_COMPONENTS || fp.virtualization.len() > 16 {
        return Err(ApiError::invalid(
            ErrorCode::InvalidField,
            format!(
                "`fingerprint` has too many components ({MAX_COMPONENTS}) or virtualization signals (16)"
            ),
        ));
    }
    for (name, hash) in &fp.components {
        token_field("fingerprint.components (name)", name, 1, 64)?;
        token_field(&format!("fingerprint.components.{name}"), hash, 1, 128)?;
    }
    for signal in &fp.virtualization {
        DisplayName::check("fingerprint.virtualization", signal)?;
    }
    Ok(())
}

/// Whether a client-API call counts against its license key's rate (activation, validation,
/// deactivation, transfer). Seat calls count against a rate of their own, scaled by the
/// license's seats (`AppState::check_seat_rate`): one floating license key is shared by every
/// user of a customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RateLimit {
    /// Counted; 429 beyond the rate.
    Apply,
    /// Not counted.
    Skip,
}

/// The license a typed key names: 422 when it cannot be a key, 429 when `limit` applies and the
/// key is over its rate, 404 when no license has it.
pub(crate) async fn license_by_key(
    state: &AppState,
    typed: &str,
    limit: RateLimit,
) -> ApiResult<std::sync::Arc<LicenseRow>> {
    let key = secrets::canonical_license_key(typed).ok_or_else(|| {
        ApiError::invalid(
            ErrorCode::InvalidLicenseKey,
            "`license_key` is not of the form XXXXX-XXXXX-XXXXX-XXXXX-XXXXX",
        )
    })?;
    let key_hash = secrets::sha256_hex(key.as_bytes());
    if limit == RateLimit::Apply {
        state.check_client_rate(&key_hash)?;
    }
    state
        .db()
        .license_by_key_hash(&key_hash)
        .await?
        .ok_or_else(|| ApiError::not_found(ErrorCode::LicenseNotFound, "no license has this key"))
}

/// Serializes a value for a TEXT column.
pub(crate) fn json_text<T: serde::Serialize>(value: &T) -> ApiResult<String> {
    serde_json::to_string(value).map_err(ApiError::internal)
}

/// The license with this id in the caller's organization, or 404 (a license of another tenant
/// is indistinguishable from a missing one). The one tenant check of the admin license routes.
pub(crate) async fn get_license_row(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> ApiResult<LicenseRow> {
    state
        .db()
        .get_license(id)
        .await?
        .filter(|row| row.organization_id == caller.organization_id)
        .ok_or_else(|| {
            ApiError::not_found(ErrorCode::LicenseNotFound, format!("no license `{id}`"))
        })
}

/// The license with this id, whatever its tenant: the client API, authenticated by the
/// license key, after it found the license by that key.
pub(crate) async fn get_license_row_unscoped(state: &AppState, id: &str) -> ApiResult<LicenseRow> {
    state.db().get_license(id).await?.ok_or_else(|| {
        ApiError::not_found(ErrorCode::LicenseNotFound, format!("no license `{id}`"))
    })
}

pub(crate) fn internal(e: String) -> ApiError {
    ApiError::internal(e)
}

/// Rewrites license `id` (claims, token, expiry) as `rewrite` computes from its row and
/// machines read under the license's write lock (so it cannot undo a concurrent activation's
/// reissue, nor be undone by one), in one transaction this handler helper owns. `Ok(false)`:
/// no such license, or `rewrite` answered `None` (nothing stored). An `Err` from `rewrite`
/// rolls back.
async fn rewrite_license(
    state: &AppState,
    id: &str,
    now: i64,
    rewrite: impl FnOnce(&LicenseRow, &[Machine]) -> ApiResult<Option<Rewrite>>,
) -> ApiResult<bool> {
    let mut write = state.db().begin_license_change(id).await?;
    let Some(row) = db::license_in(write.tx(), id).await? else {
        return Ok(false);
    };
    let machines = db::machines_of(write.tx(), id).await?;
    let Some(new) = rewrite(&row, &machines)? else {
        return Ok(false);
    };
    db::store_rewrite(write.tx(), id, &new, now).await?;
    write.commit().await?;
    Ok(true)
}
