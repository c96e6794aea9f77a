//! HTTP handlers: health and keys, the admin API (bearer API token) and the client API
//! (license key).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use licensing_core::claims::{Feature, MatchPolicy, Site, VersionRule};
use licensing_core::{LicenseModel, MachineFingerprint};
use serde::Deserialize;
use serde_json::{Value, json};

use super::db::{Activation, LicenseRow, Machine, Policy, Product, Reissue, Transition};
use super::error::{ApiError, ApiResult};
use super::extract::{Admin, StrictJson};
use super::issue::{self, NewLicense, ValidationAnswer};
use super::{AppState, now, secrets};

// ---- health and keys -----------------------------------------------------------------------

/// `GET /healthz`: the process is up and the database answers.
pub(crate) async fn healthz(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    state.db().ping().await?;
    Ok(Json(json!({ "status": "ok" })))
}

/// `GET /.well-known/jwks.json`: the public keys tokens are signed with.
pub(crate) async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(state.jwks().clone()),
    )
}

/// Unknown path.
pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found("not_found", "no such endpoint")
}

/// Known path, wrong method.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not accept that method",
    )
}

// ---- input rules ---------------------------------------------------------------------------

fn text_field(field: &str, value: &str, max: usize) -> ApiResult<()> {
    if value.trim().is_empty() || value.chars().count() > max || value.chars().any(char::is_control)
    {
        return Err(ApiError::invalid(
            "invalid_field",
            format!("`{field}` must be 1 to {max} characters without control characters"),
        ));
    }
    Ok(())
}

/// Identifiers and hashes: printable ASCII without spaces.
fn token_field(field: &str, value: &str, min: usize, max: usize) -> ApiResult<()> {
    if value.len() < min || value.len() > max || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::invalid(
            "invalid_field",
            format!("`{field}` must be {min} to {max} printable ASCII characters without spaces"),
        ));
    }
    Ok(())
}

fn check_fingerprint(fp: &MachineFingerprint) -> ApiResult<()> {
    token_field("fingerprint.id", &fp.id, 1, 128)?;
    if fp.components.len() > 32 || fp.virtualization.len() > 16 {
        return Err(ApiError::invalid(
            "invalid_field",
            "`fingerprint` has too many components (32) or virtualization signals (16)",
        ));
    }
    for (name, hash) in &fp.components {
        token_field("fingerprint.components (name)", name, 1, 64)?;
        token_field(&format!("fingerprint.components.{name}"), hash, 1, 128)?;
    }
    for signal in &fp.virtualization {
        text_field("fingerprint.virtualization", signal, 200)?;
    }
    Ok(())
}

/// The license a typed key names: 422 when it cannot be a key, 404 when no license has it.
async fn license_by_key(state: &AppState, typed: &str) -> ApiResult<LicenseRow> {
    let key = secrets::canonical_license_key(typed).ok_or_else(|| {
        ApiError::invalid(
            "invalid_license_key",
            "`license_key` is not of the form XXXXX-XXXXX-XXXXX-XXXXX-XXXXX",
        )
    })?;
    state
        .db()
        .license_by_key_hash(&secrets::sha256_hex(key.as_bytes()))
        .await?
        .ok_or_else(|| ApiError::not_found("license_not_found", "no license has this key"))
}

fn internal(e: String) -> ApiError {
    ApiError::internal(e)
}

// ---- products ------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewProduct {
    /// The product id licenses name in `aud`.
    id: String,
    /// Display name.
    name: String,
}

/// `POST /v1/products`.
pub(crate) async fn create_product(
    _: Admin,
    State(state): State<AppState>,
    StrictJson(req): StrictJson<NewProduct>,
) -> ApiResult<(StatusCode, Json<Product>)> {
    if req.id.is_empty()
        || req.id.len() > 128
        || !req
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-:/@+".contains(&b))
    {
        return Err(ApiError::invalid(
            "invalid_field",
            "`id` must be 1 to 128 characters of A-Z a-z 0-9 . _ - : / @ +",
        ));
    }
    text_field("name", &req.name, 200)?;
    let product = Product {
        id: req.id,
        name: req.name,
        created_at: now(),
    };
    if !state.db().insert_product(&product).await? {
        return Err(ApiError::conflict(
            "product_exists",
            format!("a product with id `{}` exists", product.id),
        ));
    }
    tracing::info!(product = %product.id, "product created");
    Ok((StatusCode::CREATED, Json(product)))
}

/// `GET /v1/products`.
pub(crate) async fn list_products(
    _: Admin,
    State(state): State<AppState>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({ "products": state.db().list_products().await? }),
    ))
}

// ---- policies ------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewPolicy {
    product_id: String,
    name: String,
    model: LicenseModel,
    /// Seconds from issue to expiry.
    duration: Option<u64>,
    grace_period: Option<u64>,
    max_machines: Option<u32>,
    seats: Option<u32>,
    #[serde(default)]
    features: BTreeMap<String, Feature>,
    version: Option<VersionRule>,
    /// Fingerprint match policy of node-locked licenses (k of n components).
    #[serde(rename = "match")]
    match_policy: Option<MatchPolicy>,
    /// Whether node-locked licenses run in VMs and containers (default true).
    allow_virtual: Option<bool>,
    site: Option<Site>,
}

fn json_text<T: serde::Serialize>(value: &T) -> ApiResult<String> {
    serde_json::to_string(value).map_err(ApiError::internal)
}

fn json_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

fn policy_view(p: &Policy) -> Value {
    json!({
        "id": p.id,
        "product_id": p.product_id,
        "name": p.name,
        "model": p.model,
        "duration": p.duration,
        "grace_period": p.grace_period,
        "max_machines": p.max_machines,
        "seats": p.seats,
        "features": json_value(&p.features),
        "version": p.version_rule.as_deref().map(json_value),
        "match": p.match_policy.as_deref().map(json_value),
        "allow_virtual": p.allow_virtual,
        "site": p.site.as_deref().map(json_value),
        "created_at": p.created_at,
    })
}

/// `POST /v1/policies`. The policy is checked by signing a trial license from it: the core's
/// claim rules decide, and their error names the field.
pub(crate) async fn create_policy(
    _: Admin,
    State(state): State<AppState>,
    StrictJson(req): StrictJson<NewPolicy>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    text_field("name", &req.name, 200)?;
    if state.db().get_product(&req.product_id).await?.is_none() {
        return Err(ApiError::not_found(
            "product_not_found",
            format!("no product with id `{}`", req.product_id),
        ));
    }
    let duration = req
        .duration
        .map(i64::try_from)
        .transpose()
        .map_err(|_| ApiError::invalid("invalid_field", "`duration` is out of range"))?;
    let grace_period = req
        .grace_period
        .map(i64::try_from)
        .transpose()
        .map_err(|_| ApiError::invalid("invalid_field", "`grace_period` is out of range"))?;
    let now = now();
    let policy = Policy {
        id: secrets::new_id("pol").map_err(internal)?,
        product_id: req.product_id,
        name: req.name,
        model: req.model.as_str().to_owned(),
        duration,
        grace_period,
        max_machines: req.max_machines.map(i64::from),
        seats: req.seats.map(i64::from),
        features: json_text(&req.features)?,
        version_rule: req.version.as_ref().map(json_text).transpose()?,
        match_policy: req.match_policy.as_ref().map(json_text).transpose()?,
        allow_virtual: req.allow_virtual.unwrap_or(true),
        site: req.site.as_ref().map(json_text).transpose()?,
        created_at: now,
    };
    let template = issue::build_claims(&state, &policy, &NewLicense::default(), "lic_trial", now)?;
    issue::sign_license(
        &state,
        &template,
        &[issue::placeholder_fingerprint(&template)],
        now,
    )
    .map_err(|e| e.context("the policy would issue invalid licenses"))?;
    state.db().insert_policy(&policy).await?;
    tracing::info!(policy = %policy.id, product = %policy.product_id, "policy created");
    Ok((StatusCode::CREATED, Json(policy_view(&policy))))
}

/// `GET /v1/policies`.
pub(crate) async fn list_policies(
    _: Admin,
    State(state): State<AppState>,
) -> ApiResult<Json<Value>> {
    let policies: Vec<Value> = state
        .db()
        .list_policies()
        .await?
        .iter()
        .map(policy_view)
        .collect();
    Ok(Json(json!({ "policies": policies })))
}

/// `GET /v1/policies/{id}`.
pub(crate) async fn get_policy(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let policy = state
        .db()
        .get_policy(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("policy_not_found", format!("no policy `{id}`")))?;
    Ok(Json(policy_view(&policy)))
}

// ---- licenses ------------------------------------------------------------------------------

fn license_view(state: &AppState, row: &LicenseRow, now: i64) -> ApiResult<Value> {
    Ok(json!({
        "id": row.id,
        "product_id": row.product_id,
        "policy_id": row.policy_id,
        "status": issue::effective_status(state, row, now)?,
        "key_hint": format!("…-{}", row.key_hint),
        "expires_at": row.expires_at,
        "token": row.token,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }))
}

async fn get_license_row(state: &AppState, id: &str) -> ApiResult<LicenseRow> {
    state
        .db()
        .get_license(id)
        .await?
        .ok_or_else(|| ApiError::not_found("license_not_found", format!("no license `{id}`")))
}

/// `POST /v1/licenses`: a license from a policy plus overrides. Answers the license key (shown
/// only here: the server keeps its hash) and the signed license token (none for a node-locked
/// license until its first machine is activated).
pub(crate) async fn create_license(
    _: Admin,
    State(state): State<AppState>,
    StrictJson(req): StrictJson<NewLicense>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let policy = state
        .db()
        .get_policy(&req.policy_id)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(
                "policy_not_found",
                format!("no policy with id `{}`", req.policy_id),
            )
        })?;
    let now = now();
    let id = secrets::new_id("lic").map_err(internal)?;
    let template = issue::build_claims(&state, &policy, &req, &id, now)?;
    let token = if issue::is_node_locked(&template) {
        // Validate now; the token is signed when machines are bound.
        issue::sign_license(
            &state,
            &template,
            &[issue::placeholder_fingerprint(&template)],
            now,
        )?;
        None
    } else {
        Some(issue::sign_license(&state, &template, &[], now)?.0)
    };
    let key = secrets::new_license_key().map_err(internal)?;
    let row = LicenseRow {
        id,
        key_hash: secrets::sha256_hex(key.as_bytes()),
        key_hint: key.rsplit('-').next().unwrap_or_default().to_owned(),
        product_id: policy.product_id.clone(),
        policy_id: policy.id.clone(),
        status: "active".into(),
        claims: json_text(&template)?,
        token,
        expires_at: template.get("exp").and_then(Value::as_i64),
        created_at: now,
        updated_at: now,
    };
    if !state.db().insert_license(&row).await? {
        return Err(ApiError::internal("license key collision"));
    }
    tracing::info!(license = %row.id, policy = %row.policy_id, "license created");
    let mut view = license_view(&state, &row, now)?;
    if let Some(object) = view.as_object_mut() {
        object.insert("key".into(), key.into());
    }
    Ok((StatusCode::CREATED, Json(view)))
}

/// `GET /v1/licenses`: the newest 500.
pub(crate) async fn list_licenses(
    _: Admin,
    State(state): State<AppState>,
) -> ApiResult<Json<Value>> {
    let now = now();
    let licenses = state
        .db()
        .list_licenses(500)
        .await?
        .iter()
        .map(|row| license_view(&state, row, now))
        .collect::<ApiResult<Vec<Value>>>()?;
    Ok(Json(json!({ "licenses": licenses })))
}

/// `GET /v1/licenses/{id}`.
pub(crate) async fn get_license(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let row = get_license_row(&state, &id).await?;
    Ok(Json(license_view(&state, &row, now())?))
}

async fn transition(state: &AppState, id: &str, transition: Transition) -> ApiResult<Json<Value>> {
    let now = now();
    if !state.db().transition(id, transition, now).await? {
        let row = get_license_row(state, id).await?;
        return Err(ApiError::conflict(
            "invalid_transition",
            format!(
                "license `{id}` is {}; it cannot become {}",
                row.status,
                transition.target()
            ),
        ));
    }
    tracing::info!(license = %id, status = transition.target(), "license status changed");
    let row = get_license_row(state, id).await?;
    Ok(Json(license_view(state, &row, now)?))
}

/// `POST /v1/licenses/{id}/suspend`: active → suspended.
pub(crate) async fn suspend_license(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    transition(&state, &id, Transition::Suspend).await
}

/// `POST /v1/licenses/{id}/reinstate`: suspended → active.
pub(crate) async fn reinstate_license(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    transition(&state, &id, Transition::Reinstate).await
}

/// `POST /v1/licenses/{id}/revoke`: active or suspended → revoked, for good.
pub(crate) async fn revoke_license(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    transition(&state, &id, Transition::Revoke).await
}

/// `GET /v1/licenses/{id}/machines`.
pub(crate) async fn list_machines(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    get_license_row(&state, &id).await?;
    let machines: Vec<Value> = state
        .db()
        .list_machines(&id)
        .await?
        .iter()
        .map(|m| {
            json!({
                "id": m.id,
                "fingerprint": m.fingerprint,
                "created_at": m.created_at,
                "last_seen_at": m.last_seen_at,
            })
        })
        .collect();
    Ok(Json(json!({ "machines": machines })))
}

// ---- client API ----------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ActivateRequest {
    license_key: String,
    /// As printed by `licensing-server machine fingerprint --json --product <product id>`.
    fingerprint: MachineFingerprint,
}

/// `POST /v1/client/activate`: binds a machine to the license (refused when the license is
/// suspended, revoked or expired, or its machine limit is reached) and answers a signed
/// `machine+jwt` plus the current license token. Activating the same fingerprint again answers
/// the existing machine (200) instead of a new one (201).
pub(crate) async fn activate(
    State(state): State<AppState>,
    StrictJson(req): StrictJson<ActivateRequest>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    check_fingerprint(&req.fingerprint)?;
    let row = license_by_key(&state, &req.license_key).await?;
    let now = now();
    match issue::effective_status(&state, &row, now)? {
        "suspended" => {
            return Err(ApiError::forbidden(
                "license_suspended",
                "the license is suspended; activation refused",
            ));
        }
        "revoked" => {
            return Err(ApiError::forbidden(
                "license_revoked",
                "the license is revoked; activation refused",
            ));
        }
        "expired" => {
            return Err(ApiError::forbidden(
                "license_expired",
                "the license has expired; activation refused",
            ));
        }
        _ => {}
    }
    let template: serde_json::Map<String, Value> =
        serde_json::from_str(&row.claims).map_err(ApiError::internal)?;
    let machine = Machine {
        id: secrets::new_id("mch").map_err(internal)?,
        license_id: row.id.clone(),
        fingerprint: req.fingerprint.id.clone(),
        fingerprint_json: json_text(&req.fingerprint)?,
        created_at: now,
        last_seen_at: now,
    };
    let reissue = |machines: &[Machine]| -> ApiResult<String> {
        let fingerprints = machines
            .iter()
            .map(issue::machine_fingerprint)
            .collect::<ApiResult<Vec<_>>>()?;
        issue::sign_license(&state, &template, &fingerprints, now)
            .map(|(token, _)| token)
            .map_err(|e| e.context("this machine cannot be bound to the license"))
    };
    let reissue: &Reissue<'_, ApiError> = &reissue;
    let max = issue::max_machines(&template);
    let outcome = state
        .db()
        .activate(
            &machine,
            max,
            issue::is_node_locked(&template).then_some(reissue),
        )
        .await??;
    let (status, machine) = match outcome {
        Activation::Created => (StatusCode::CREATED, machine),
        Activation::Existing(existing) => (StatusCode::OK, existing),
        Activation::LimitReached => {
            return Err(ApiError::conflict(
                "machine_limit_reached",
                format!(
                    "the license allows {} machine(s) and all are activated",
                    max.unwrap_or_default()
                ),
            ));
        }
    };
    let row = get_license_row(&state, &row.id).await?;
    let token = row
        .token
        .as_deref()
        .ok_or_else(|| ApiError::internal(format!("license {} has no token", row.id)))?;
    let license = state
        .verifier()
        .verify(token)
        .map_err(|e| ApiError::internal(format!("stored token does not verify: {e}")))?;
    let machine_token = issue::sign_machine_token(&state, &machine, &license, now)?;
    if status == StatusCode::CREATED {
        tracing::info!(license = %row.id, machine = %machine.id, "machine activated");
    }
    Ok((
        status,
        Json(json!({
            "machine_id": machine.id,
            "license_id": row.id,
            "machine_token": machine_token,
            "license_token": token,
        })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ValidateRequest {
    license_key: String,
    /// The machine's fingerprint id.
    fingerprint: String,
    /// A fresh random value from the client, echoed in the signed response.
    nonce: String,
}

/// `POST /v1/client/validate`: a signed `response+jwt` echoing the nonce, with the server
/// time, the license's status (`active`, `suspended`, `revoked`, `expired`, `not_yet_valid`),
/// whether this fingerprint is activated, and the current license token.
pub(crate) async fn validate(
    State(state): State<AppState>,
    StrictJson(req): StrictJson<ValidateRequest>,
) -> ApiResult<Json<Value>> {
    token_field("nonce", &req.nonce, 8, 128)?;
    token_field("fingerprint", &req.fingerprint, 1, 128)?;
    let row = license_by_key(&state, &req.license_key).await?;
    let now = now();
    let machine = state.db().get_machine(&row.id, &req.fingerprint).await?;
    if let Some(machine) = &machine {
        state.db().touch_machine(&machine.id, now).await?;
    }
    let status = issue::effective_status(&state, &row, now)?;
    let response_token = issue::sign_response(
        &state,
        &ValidationAnswer {
            row: &row,
            status,
            fingerprint: &req.fingerprint,
            machine_id: machine.as_ref().map(|m| m.id.as_str()),
            nonce: &req.nonce,
            now,
        },
    )?;
    Ok(Json(json!({ "response_token": response_token })))
}
