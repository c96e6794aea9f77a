//! The admin API: products, policies, licenses (bearer API token).

use super::*;

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
    caller: Caller,
    State(state): State<AppState>,
    StrictJson(req): StrictJson<NewProduct>,
) -> ApiResult<(StatusCode, Json<Product>)> {
    caller.require(Action::ManageLicenses)?;
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
        organization_id: caller.organization_id.clone(),
        name: req.name,
        created_at: now(),
    };
    if !state.db().insert_product(&product).await? {
        return Err(ApiError::conflict(
            "product_exists",
            // Product ids are unique across tenants (a token's `aud` must name one product).
            format!("the product id `{}` is taken", product.id),
        ));
    }
    tracing::info!(product = %product.id, "product created");
    Ok((StatusCode::CREATED, Json(product)))
}

/// `GET /v1/products`.
pub(crate) async fn list_products(
    caller: Caller,
    State(state): State<AppState>,
) -> ApiResult<Json<Value>> {
    caller.require(Action::Read)?;
    Ok(Json(
        json!({ "products": state.db().list_products(&caller.organization_id).await? }),
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
    /// Seconds between server check-ins (3600 ..= 365 days): each license token signed for
    /// the policy's licenses carries `lic.check_in.until` = signing time + this.
    check_in_interval: Option<u64>,
    /// Seconds a license stays usable after a missed check-in (0 ..= 365 days, default 0).
    check_in_grace: Option<u64>,
    /// Machine transfers allowed per license (`POST /v1/client/transfer`); absent: unlimited.
    max_transfers: Option<u32>,
}

/// Longest check-in interval or grace: a year.
const MAX_CHECK_IN_SECS: u64 = 365 * 86_400;

/// Shortest check-in interval: an hour (every validation signs a fresh token).
const MIN_CHECK_IN_INTERVAL_SECS: u64 = 3_600;

/// `check_in_interval` and `check_in_grace` as stored.
fn check_in_settings(req: &NewPolicy) -> ApiResult<(Option<i64>, Option<i64>)> {
    let out_of_range = |field: &str, range: &str| {
        ApiError::invalid(
            "invalid_field",
            format!("`{field}` must be {range} seconds"),
        )
    };
    match (req.check_in_interval, req.check_in_grace) {
        (None, None) => Ok((None, None)),
        (None, Some(_)) => Err(ApiError::invalid(
            "invalid_field",
            "`check_in_grace` needs `check_in_interval`",
        )),
        (Some(interval), grace) => {
            if !(MIN_CHECK_IN_INTERVAL_SECS..=MAX_CHECK_IN_SECS).contains(&interval) {
                return Err(out_of_range("check_in_interval", "3600 to 31536000"));
            }
            let grace = grace.unwrap_or(0);
            if grace > MAX_CHECK_IN_SECS {
                return Err(out_of_range("check_in_grace", "0 to 31536000"));
            }
            // Both are at most a year: they fit.
            Ok((
                i64::try_from(interval).ok(),
                Some(i64::try_from(grace).unwrap_or_default()),
            ))
        }
    }
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
        "allow_virtual": p.allow_virtual != 0,
        "site": p.site.as_deref().map(json_value),
        "check_in_interval": p.check_in_interval,
        "check_in_grace": p.check_in_grace,
        "max_transfers": p.max_transfers,
        "created_at": p.created_at,
    })
}

/// `POST /v1/policies`. The policy is checked by signing a trial license from it: the core's
/// claim rules decide, and their error names the field.
pub(crate) async fn create_policy(
    caller: Caller,
    State(state): State<AppState>,
    StrictJson(req): StrictJson<NewPolicy>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(Action::ManageLicenses)?;
    text_field("name", &req.name, 200)?;
    if state
        .db()
        .get_product(&caller.organization_id, &req.product_id)
        .await?
        .is_none()
    {
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
    let (check_in_interval, check_in_grace) = check_in_settings(&req)?;
    let now = now();
    let policy = Policy {
        id: secrets::new_id("pol").map_err(internal)?,
        organization_id: caller.organization_id.clone(),
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
        allow_virtual: i64::from(req.allow_virtual.unwrap_or(true)),
        site: req.site.as_ref().map(json_text).transpose()?,
        created_at: now,
        check_in_interval,
        check_in_grace,
        max_transfers: req.max_transfers.map(i64::from),
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
    caller: Caller,
    State(state): State<AppState>,
) -> ApiResult<Json<Value>> {
    caller.require(Action::Read)?;
    let policies: Vec<Value> = state
        .db()
        .list_policies(&caller.organization_id)
        .await?
        .iter()
        .map(policy_view)
        .collect();
    Ok(Json(json!({ "policies": policies })))
}

/// `GET /v1/policies/{id}`.
pub(crate) async fn get_policy(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Action::Read)?;
    let policy = state
        .db()
        .get_policy(&caller.organization_id, &id)
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

/// `POST /v1/licenses`: a license from a policy plus overrides. Answers the license key (shown
/// only here: the server keeps its hash) and the signed license token (none for a node-locked
/// license until its first machine is activated).
pub(crate) async fn create_license(
    caller: Caller,
    State(state): State<AppState>,
    StrictJson(req): StrictJson<NewLicense>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(Action::ManageLicenses)?;
    let policy = state
        .db()
        .get_policy(&caller.organization_id, &req.policy_id)
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
        organization_id: policy.organization_id.clone(),
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
    caller: Caller,
    State(state): State<AppState>,
) -> ApiResult<Json<Value>> {
    caller.require(Action::Read)?;
    let now = now();
    let licenses = state
        .db()
        .list_licenses(&caller.organization_id, 500)
        .await?
        .iter()
        .map(|row| license_view(&state, row, now))
        .collect::<ApiResult<Vec<Value>>>()?;
    Ok(Json(json!({ "licenses": licenses })))
}

/// `GET /v1/licenses/{id}`.
pub(crate) async fn get_license(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Action::Read)?;
    let row = get_license_row(&state, &caller, &id).await?;
    Ok(Json(license_view(&state, &row, now())?))
}

async fn transition(
    state: &AppState,
    caller: &Caller,
    id: &str,
    transition: Transition,
) -> ApiResult<Json<Value>> {
    caller.require(Action::ManageLicenses)?;
    // Tenant check first: a license of another organization is never touched.
    get_license_row(state, caller, id).await?;
    let now = now();
    if !state.db().transition(id, transition, now).await? {
        let row = get_license_row(state, caller, id).await?;
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
    let row = get_license_row(state, caller, id).await?;
    Ok(Json(license_view(state, &row, now)?))
}

/// `POST /v1/licenses/{id}/suspend`: active → suspended.
pub(crate) async fn suspend_license(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    transition(&state, &caller, &id, Transition::Suspend).await
}

/// `POST /v1/licenses/{id}/reinstate`: suspended → active.
pub(crate) async fn reinstate_license(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    transition(&state, &caller, &id, Transition::Reinstate).await
}

/// `POST /v1/licenses/{id}/revoke`: active or suspended → revoked, for good.
pub(crate) async fn revoke_license(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    transition(&state, &caller, &id, Transition::Revoke).await
}

/// `GET /v1/licenses/{id}/machines`.
pub(crate) async fn list_machines(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Action::Read)?;
    get_license_row(&state, &caller, &id).await?;
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

// ---- renewal -------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RenewRequest {
    /// New expiry (Unix seconds).
    expires_at: Option<i64>,
    /// Seconds added to the later of the current expiry and now. Default when nothing is
    /// given: the policy's duration.
    extend_by: Option<u64>,
    /// New end of the maintenance window (versions released before it are entitled).
    maintenance_until: Option<i64>,
}

/// `POST /v1/licenses/{id}/renew`: moves the expiry (and/or the maintenance window) and
/// re-signs the license token; clients pick it up at their next validation. A revoked license
/// is not renewed.
pub(crate) async fn renew_license(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    StrictJson(req): StrictJson<RenewRequest>,
) -> ApiResult<Json<Value>> {
    caller.require(Action::ManageLicenses)?;
    let row = get_license_row(&state, &caller, &id).await?;
    if req.expires_at.is_some() && req.extend_by.is_some() {
        return Err(ApiError::invalid(
            "invalid_request",
            "give `expires_at` or `extend_by`, not both",
        ));
    }
    let policy_duration = state
        .db()
        .get_policy(&caller.organization_id, &row.policy_id)
        .await?
        .and_then(|p| p.duration);
    let now = now();
    let renew = |row: &LicenseRow, machines: &[Machine]| -> ApiResult<Option<Rewrite>> {
        if row.status == "revoked" {
            return Err(ApiError::conflict(
                "license_revoked",
                "a revoked license cannot be renewed",
            ));
        }
        let mut template: serde_json::Map<String, Value> =
            serde_json::from_str(&row.claims).map_err(ApiError::internal)?;
        let current_exp = template.get("exp").and_then(Value::as_i64);
        let extend_by = match (req.expires_at, req.extend_by, req.maintenance_until) {
            (None, None, None) => Some(policy_duration.ok_or_else(|| {
                ApiError::invalid(
                    "invalid_request",
                    "the policy has no duration: give `expires_at`, `extend_by` or \
                     `maintenance_until`",
                )
            })?),
            (_, Some(by), _) => Some(
                i64::try_from(by)
                    .map_err(|_| ApiError::invalid("invalid_field", "`extend_by` is too large"))?,
            ),
            _ => None,
        };
        let new_exp = match (req.expires_at, extend_by) {
            (Some(at), _) => Some(at),
            (None, Some(by)) => {
                let from = current_exp.ok_or_else(|| {
                    ApiError::invalid(
                        "invalid_request",
                        "the license has no expiry to extend; use `expires_at` or \
                         `maintenance_until`",
                    )
                })?;
                Some(from.max(now).saturating_add(by))
            }
            (None, None) => None,
        };
        if let Some(exp) = new_exp {
            template.insert("exp".into(), exp.into());
        }
        if let Some(until) = req.maintenance_until {
            let lic = template
                .get_mut("lic")
                .and_then(Value::as_object_mut)
                .ok_or_else(|| ApiError::internal("license claims without `lic`"))?;
            let version = lic
                .entry("version")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .ok_or_else(|| ApiError::internal("`lic.version` is not an object"))?;
            version.insert("maintenance_until".into(), until.into());
        }
        // Signing validates the new claims (the core names a bad field).
        let token = issue::sign_license_for(&state, &template, machines, now)?;
        Ok(Some(Rewrite {
            claims: json_text(&template)?,
            token,
            expires_at: template.get("exp").and_then(Value::as_i64),
        }))
    };
    let renew: &Rewriter<'_, ApiError> = &renew;
    state.db().rewrite_license(&id, renew, now).await??;
    tracing::info!(license = %id, by = %caller.token_id, "license renewed");
    let row = get_license_row(&state, &caller, &id).await?;
    Ok(Json(license_view(&state, &row, now)?))
}

/// `DELETE /v1/licenses/{id}/machines/{machine_id}`: deactivates a machine (frees its slot;
/// a node-locked license's token is reissued without it).
pub(crate) async fn delete_machine(
    caller: Caller,
    State(state): State<AppState>,
    Path((id, machine_id)): Path<(String, String)>,
) -> ApiResult<Json<DeactivateResponse>> {
    caller.require(Action::Operate)?;
    let row = get_license_row(&state, &caller, &id).await?;
    let answer =
        deactivate_machine(&state, &row, super::super::db::MachineRef::Id(&machine_id)).await?;
    Ok(Json(answer))
}
