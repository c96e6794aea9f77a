//! Signing keys: list, stage, promote, rotate, retire (operator admins; listing for any
//! caller). A staged rotation keeps shipped apps working: stage (the next key is published,
//! not signing), ship it in the next app release, promote it (it signs; never before it has
//! been published for the minimum time), retire the old key (apps that only trust it stop).

use serde::Serialize;

use super::*;
use crate::server::db::{Rewrite, SigningKeyRow};
use crate::server::key_wrap;

/// A signing key as the API shows it: its public half only.
#[derive(Serialize, ToSchema)]
pub(crate) struct KeyView {
    kid: String,
    /// `staged` (published, not signing yet), `current` (signs), `previous` (verifies,
    /// published; still signs for apps that do not trust the current key), `retired`
    /// (unpublished).
    status: String,
    /// When the key was created (for a staged key: published).
    created_at: i64,
    retired_at: Option<i64>,
    /// A staged key's planned promotion (Unix seconds), if one was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    promote_at: Option<i64>,
    /// A staged key: the first instant it may be promoted (published for the server's
    /// minimum time, `--key-min-publish-secs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    promotable_at: Option<i64>,
    /// The public key as a JWK.
    #[schema(value_type = super::super::openapi::Jwk)]
    public_jwk: Value,
}

/// `POST /v1/keys/stage`: the next key's planned promotion, if any.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StageRequest {
    /// When the staged key starts signing by itself (Unix seconds); at least the server's
    /// minimum publication time from now. Absent: only when an operator promotes it.
    pub promote_at: Option<i64>,
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

fn key_view(state: &AppState, row: &SigningKeyRow) -> ApiResult<KeyView> {
    let pem = key_wrap::open_stored(
        state.db().key_encryption(),
        Some(&row.kid),
        &row.private_pem,
    )
    .map_err(ApiError::internal)?;
    let key = licensing_core::PrivateKey::from_pkcs8_pem(&pem)
        .map_err(|e| ApiError::internal(format!("signing key {}: {e}", row.kid)))?;
    let staged = row.status == "staged";
    Ok(KeyView {
        kid: row.kid.clone(),
        status: row.status.clone(),
        created_at: row.created_at,
        retired_at: row.retired_at,
        promote_at: row.promote_at.filter(|_| staged),
        promotable_at: staged.then(|| row.created_at.saturating_add(state.key_min_publish_secs())),
        public_jwk: key.public_key().to_jwk(),
    })
}

/// A Unix time as RFC 3339 (UTC), for messages.
fn rfc3339(at: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| at.to_string())
}

/// Stages a new key at `now`: published in the JWKS and `GET /v1/keys`, not signing until it
/// is promoted (at `promote_at`, or by an operator). 422 naming `promote_at` when it comes
/// before the minimum publication time; 409 `key_already_staged` while another key is staged.
pub(crate) async fn stage(
    state: &AppState,
    promote_at: Option<i64>,
    now: i64,
) -> ApiResult<KeyView> {
    let earliest = now.saturating_add(state.key_min_publish_secs());
    if let Some(at) = promote_at
        && at < earliest
    {
        return Err(ApiError::invalid(
            ErrorCode::InvalidField,
            format!(
                "`promote_at` ({}) is before the key has been published for the minimum of {} s \
                 (--key-min-publish-secs), so apps can ship it first: the earliest is {earliest} ({})",
                rfc3339(at),
                state.key_min_publish_secs(),
                rfc3339(earliest),
            ),
        ));
    }
    let key = licensing_core::PrivateKey::generate().map_err(ApiError::internal)?;
    let row = SigningKeyRow {
        kid: key.public_key().kid().to_owned(),
        private_pem: key_wrap::seal_for_storage(
            state.db().key_encryption(),
            key.public_key().kid(),
            &key.to_pkcs8_pem().map_err(ApiError::internal)?,
        )
        .map_err(ApiError::internal)?,
        status: "staged".into(),
        created_at: now,
        retired_at: None,
        promote_at,
    };
    // One staged key at a time, checked and added in one key-ring transaction.
    let mut tx = state.db().begin_key_change().await?;
    if let Some(staged) = db::staged_kid(&mut tx).await? {
        return Err(ApiError::conflict(
            ErrorCode::KeyAlreadyStaged,
            format!("`{staged}` is staged already; promote or retire it first"),
        ));
    }
    db::insert_staged_key(&mut tx, &row).await?;
    tx.commit().await?;
    state.reload_keys().await.map_err(ApiError::internal)?;
    tracing::info!(kid = %row.kid, promote_at, "signing key staged");
    key_view(state, &row)
}

/// Promotes the staged key `kid` at `now`: it signs from now on and the current key becomes
/// `previous`. 409 `key_not_published_long_enough` (saying from when it is possible) before
/// the minimum publication time, 409 `key_not_staged` for a key in another state, 404
/// `key_not_found`.
pub(crate) async fn promote(state: &AppState, kid: &str, now: i64) -> ApiResult<KeyView> {
    let min = state.key_min_publish_secs();
    match promote_staged(state, kid, now.saturating_sub(min)).await? {
        None => {}
        Some(PromoteRefusal::NotFound) => {
            return Err(ApiError::not_found(
                ErrorCode::KeyNotFound,
                format!("no signing key `{kid}`"),
            ));
        }
        Some(PromoteRefusal::NotStaged(status)) => {
            return Err(ApiError::conflict(
                ErrorCode::KeyNotStaged,
                format!("`{kid}` is {status}; only a staged key is promoted (stage one first)"),
            ));
        }
        Some(PromoteRefusal::TooEarly { published_at }) => {
            let from = published_at.saturating_add(min);
            return Err(ApiError::conflict(
                ErrorCode::KeyNotPublishedLongEnough,
                format!(
                    "`{kid}` has been published since {} ({} s); a key must be published for \
                     {min} s (--key-min-publish-secs) before it signs, so apps can ship it: it \
                     can be promoted from {} (Unix {from})",
                    rfc3339(published_at),
                    now.saturating_sub(published_at).max(0),
                    rfc3339(from),
                ),
            ));
        }
    }
    state.reload_keys().await.map_err(ApiError::internal)?;
    tracing::info!(%kid, "signing key promoted");
    let rows = state.db().list_signing_keys().await?;
    let row = rows
        .iter()
        .find(|row| row.kid == kid)
        .ok_or_else(|| ApiError::internal(format!("promoted key `{kid}` vanished")))?;
    key_view(state, row)
}

/// Why a staged key was not promoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PromoteRefusal {
    /// No key with that kid.
    NotFound,
    /// The key is not staged: its status.
    NotStaged(String),
    /// Published too recently: it was published at this instant.
    TooEarly { published_at: i64 },
}

/// Promotes the staged key `kid` to `current` (the current key becomes `previous`), in one
/// key-ring transaction serialized across replicas, when it was published (`created_at`) at
/// or before `published_by`. `Some`: why not (nothing changed).
async fn promote_staged(
    state: &AppState,
    kid: &str,
    published_by: i64,
) -> ApiResult<Option<PromoteRefusal>> {
    let mut tx = state.db().begin_key_change().await?;
    let refusal = match db::key_state(&mut tx, kid).await? {
        None => Some(PromoteRefusal::NotFound),
        Some((status, _)) if status != "staged" => Some(PromoteRefusal::NotStaged(status)),
        Some((_, published_at)) if published_at > published_by => {
            Some(PromoteRefusal::TooEarly { published_at })
        }
        Some(_) => None,
    };
    if refusal.is_none() {
        db::promote_staged_key(&mut tx, kid).await?;
        tx.commit().await?;
    }
    Ok(refusal)
}

/// The audit actor of promotions the server makes by itself at a staged key's `promote_at`.
pub(crate) const SCHEDULE_ACTOR: &str = "schedule";

/// Promotes the staged keys whose `promote_at` has come (and that were published long
/// enough), recording each in the audit trail as actor [`SCHEDULE_ACTOR`]. Run by every
/// replica at each key reload; the database lets one promotion through. Errors are logged.
pub(crate) async fn promote_due_keys(state: &AppState, now: i64) {
    let min = state.key_min_publish_secs();
    let due = match state
        .db()
        .due_staged_keys(now, now.saturating_sub(min))
        .await
    {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(error = %e, "reading the staged signing keys");
            return;
        }
    };
    for kid in due {
        match promote_staged(state, &kid, now.saturating_sub(min)).await {
            Ok(None) => {
                tracing::info!(%kid, "staged signing key promoted at its promote_at");
                let entry = crate::server::db::NewAuditEntry {
                    at: now,
                    organization_id: Some(crate::server::OPERATOR_ORGANIZATION.to_owned()),
                    actor: SCHEDULE_ACTOR.to_owned(),
                    action: "POST /v1/keys/{kid}/promote".to_owned(),
                    target: format!("/v1/keys/{kid}/promote"),
                    status: 200,
                };
                state.audit().append(entry).await;
            }
            // Another replica promoted it first, or it changed meanwhile.
            Ok(Some(_)) => {}
            Err(e) => tracing::warn!(error = ?e, %kid, "promoting a staged signing key"),
        }
    }
}

/// `GET /v1/keys`: every signing key, newest first (public halves only).
#[utoipa::path(get, path = "/v1/keys", tag = TAG_ADMIN, security(("api_token" = [])),
    responses((status = 200, description = "The signing keys", body = KeyList), AdminErrors))]
pub(crate) async fn list_keys(
    caller: Caller,
    State(state): State<AppState>,
) -> ApiResult<Json<KeyList>> {
    caller.require(Action::Read)?;
    Ok(Json(key_list(&state).await?))
}

/// Every signing key, newest first (public halves only).
pub(crate) async fn key_list(state: &AppState) -> ApiResult<KeyList> {
    let keys = state
        .db()
        .list_signing_keys()
        .await?
        .iter()
        .map(|row| key_view(state, row))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(KeyList { keys })
}

/// `POST /v1/keys/stage` (operator admins): the next signing key, published in the JWKS at
/// once but not signing until it is promoted (`POST /v1/keys/{kid}/promote`, or by itself at
/// `promote_at`), never before it has been published for the server's minimum time.
#[utoipa::path(post, path = "/v1/keys/stage", tag = TAG_ADMIN, security(("api_token" = [])),
    request_body(content = StageRequest, description = "Optional: an empty body stages without a date"),
    responses((status = 201, description = "The staged key", body = KeyView),
        (status = 409, description = "Another key is staged already", body = ErrorBody),
        AdminErrors, BodyErrors))]
pub(crate) async fn stage_key(
    caller: Caller,
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<KeyView>)> {
    caller.require_operator()?;
    let req: StageRequest = if body.iter().all(u8::is_ascii_whitespace) {
        StageRequest::default()
    } else {
        crate::server::extract::parse_strict(&body)?
    };
    let view = stage(&state, req.promote_at, now()).await?;
    tracing::info!(kid = %view.kid, by = %caller.token_id, "signing key staged");
    Ok((StatusCode::CREATED, Json(view)))
}

/// `POST /v1/keys/{kid}/promote` (operator admins): the staged key signs from now on; the
/// current key becomes `previous` (it still verifies, and still signs for apps that do not
/// trust the new key yet) until it is retired.
#[utoipa::path(post, path = "/v1/keys/{kid}/promote", tag = TAG_ADMIN, security(("api_token" = [])),
    params(("kid" = String, Path, description = "Key id")),
    responses((status = 200, description = "The key, now current", body = KeyView),
        (status = 404, description = "No such key", body = ErrorBody),
        (status = 409, description = "Not staged, or not published for the minimum time yet (the detail says from when)", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn promote_key(
    caller: Caller,
    State(state): State<AppState>,
    Path(kid): Path<String>,
) -> ApiResult<Json<KeyView>> {
    caller.require_operator()?;
    let view = promote(&state, &kid, now()).await?;
    tracing::info!(%kid, by = %caller.token_id, "signing key promoted");
    Ok(Json(view))
}

/// `POST /v1/keys/rotate` (operator admins): the immediate, breaking rotation — a new key
/// signs from now on; the former current key becomes `previous` and keeps verifying (and stays
/// in the JWKS) until it is retired. Apps built before it that send their trusted kids (or
/// hold a token signed by the previous key) are still answered with the previous key; others
/// fail online validation. Prefer stage, ship, promote.
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
        private_pem: key_wrap::seal_for_storage(
            state.db().key_encryption(),
            key.public_key().kid(),
            &key.to_pkcs8_pem().map_err(ApiError::internal)?,
        )
        .map_err(ApiError::internal)?,
        status: "current".into(),
        created_at: now(),
        retired_at: None,
        promote_at: None,
    };
    if !state.db().add_current_signing_key(&row, false).await? {
        return Err(ApiError::internal(
            "a freshly generated key is already known",
        ));
    }
    state.reload_keys().await.map_err(ApiError::internal)?;
    tracing::info!(kid = %row.kid, by = %caller.token_id, "signing key rotated");
    Ok((StatusCode::CREATED, Json(key_view(&state, &row)?)))
}

/// `POST /v1/keys/{kid}/retire` (operator admins): a `previous` key leaves the JWKS and stops
/// signing (apps that trust only it then fail with `unknown_key`); a `staged` key is withdrawn.
/// License tokens the server stores that it signed are re-signed with the current key first,
/// so the server never hands out a token clients can no longer verify.
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
                ErrorCode::KeyNotFound,
                format!("no signing key `{kid}`"),
            ));
        }
        Some("current") => {
            return Err(ApiError::conflict(
                ErrorCode::KeyIsCurrent,
                "the current signing key cannot be retired; rotate first",
            ));
        }
        Some("retired") => {
            return Err(ApiError::conflict(
                ErrorCode::KeyRetired,
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
        let template = issue::LicenseTemplate::of(row)?;
        let token = issue::sign_license_for(&state, &template, machines, now)?;
        Ok(Some(Rewrite {
            claims: row.claims.clone(),
            token,
            expires_at: row.expires_at,
        }))
    };
    let mut resigned = 0_u64;
    let resign_all = async |resigned: &mut u64| -> ApiResult<()> {
        for (id, token) in state.db().stored_license_tokens().await? {
            if signed_by(&token).as_deref() == Some(kid.as_str())
                && rewrite_license(&state, &id, now, resign).await?
            {
                *resigned += 1;
            }
        }
        Ok(())
    };
    resign_all(&mut resigned).await?;
    if !state.db().retire_signing_key(&kid, now).await? {
        return Err(ApiError::conflict(
            ErrorCode::KeyNotPrevious,
            format!("`{kid}` changed state meanwhile; list the keys and retry"),
        ));
    }
    state.reload_keys().await.map_err(ApiError::internal)?;
    // Once more: a token a request stored under the key between the first pass and the
    // retirement (the key no longer signs here now).
    resign_all(&mut resigned).await?;
    tracing::info!(%kid, resigned, by = %caller.token_id, "signing key retired");
    Ok(Json(RetiredKey {
        kid,
        status: "retired",
        resigned_licenses: resigned,
    }))
}
