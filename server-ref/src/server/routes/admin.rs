//! The admin API: products, policies, licenses (bearer API token).

use axum::extract::Query;

use super::*;

// ---- products ------------------------------------------------------------------------------

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewProduct {
    /// The product id licenses name in `aud`.
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9._:/@+-]+$")]
    id: String,
    /// Display name.
    name: DisplayName,
}

/// The caller's organization's products.
#[derive(Serialize, ToSchema)]
pub(crate) struct ProductList {
    products: Vec<Product>,
}

/// `POST /v1/products`.
#[utoipa::path(post, path = "/v1/products", tag = TAG_ADMIN, security(("api_token" = [])),
    request_body = NewProduct,
    responses((status = 201, description = "Created", body = Product),
        (status = 409, description = "The product id is taken", body = ErrorBody),
        AdminErrors, BodyErrors))]
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
            ErrorCode::InvalidField,
            "`id` must be 1 to 128 characters of A-Z a-z 0-9 . _ - : / @ +",
        ));
    }
    let product = Product {
        id: req.id,
        organization_id: caller.organization_id.clone(),
        name: req.name.into_string(),
        created_at: now(),
    };
    if !state.db().insert_product(&product).await? {
        return Err(ApiError::conflict(
            ErrorCode::ProductExists,
            // Product ids are unique across tenants (a token's `aud` must name one product).
            format!("the product id `{}` is taken", product.id),
        ));
    }
    tracing::info!(product = %product.id, "product created");
    Ok((StatusCode::CREATED, Json(product)))
}

/// `GET /v1/products`.
#[utoipa::path(get, path = "/v1/products", tag = TAG_ADMIN, security(("api_token" = [])),
    responses((status = 200, description = "The products", body = ProductList), AdminErrors))]
pub(crate) async fn list_products(
    caller: Caller,
    State(state): State<AppState>,
) -> ApiResult<Json<ProductList>> {
    caller.require(Action::Read)?;
    Ok(Json(ProductList {
        products: state.db().list_products(&caller.organization_id).await?,
    }))
}

// ---- policies ------------------------------------------------------------------------------

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewPolicy {
    /// The product the policy's licenses are for.
    product_id: String,
    /// Display name.
    name: DisplayName,
    #[schema(value_type = super::super::openapi::LicenseModelSchema)]
    model: LicenseModel,
    /// Seconds from issue to expiry.
    #[schema(minimum = 0, maximum = 9_223_372_036_854_775_807_u64)]
    duration: Option<u64>,
    /// Seconds a license stays usable after its expiry.
    #[schema(minimum = 0, maximum = 9_223_372_036_854_775_807_u64)]
    grace_period: Option<u64>,
    /// Machines a license may activate.
    max_machines: Option<u32>,
    /// Floating seats.
    seats: Option<u32>,
    /// Entitled features by name.
    #[serde(default)]
    #[schema(value_type = Option<BTreeMap<String, super::super::openapi::FeatureSchema>>)]
    features: BTreeMap<String, Feature>,
    /// Version entitlement.
    #[schema(value_type = Option<super::super::openapi::VersionRuleSchema>)]
    version: Option<VersionRule>,
    /// Fingerprint match policy of node-locked licenses (k of n components).
    #[serde(rename = "match")]
    #[schema(value_type = Option<super::super::openapi::MatchPolicySchema>)]
    match_policy: Option<MatchPolicy>,
    /// Whether node-locked licenses run in VMs and containers (default true).
    allow_virtual: Option<bool>,
    /// Site restrictions.
    #[schema(value_type = Option<super::super::openapi::SiteSchema>)]
    site: Option<Site>,
    /// Seconds between server check-ins (3600 ..= 365 days): each license token signed for
    /// the policy's licenses carries `lic.check_in.until` = signing time + this.
    #[schema(minimum = 3600, maximum = 31_536_000)]
    check_in_interval: Option<u64>,
    /// Seconds a license stays usable after a missed check-in (0 ..= 365 days, default 0).
    #[schema(minimum = 0, maximum = 31_536_000)]
    check_in_grace: Option<u64>,
    /// Machine transfers allowed per license (`POST /v1/client/transfer`, and activating
    /// another machine in a slot a client deactivation freed); absent: unlimited.
    max_transfers: Option<u32>,
    /// Whether machines that were never activated may validate a license with a machine limit
    /// and receive its token (`max_machines` then only caps activations). Default false: such
    /// a machine gets no token and the SDK refuses it (`machine_not_activated`). Not for
    /// node-locked policies, whose tokens bind their machines.
    allow_unmetered: Option<bool>,
    /// Who may use its licenses' seats: `floating` (default: anyone, up to the seat count)
    /// or `named` (only assignees: `POST /v1/licenses/{id}/assignments`). Copied to each
    /// license at creation.
    seat_mode: Option<SeatMode>,
    /// Whether assigning beyond the seat count is stored (and flagged as an
    /// `over_allocation` compliance alert) instead of refused (default false). Copied to each
    /// license at creation.
    allow_over_allocation: Option<bool>,
    /// Seconds without a validation, heartbeat or check-out after which an assigned seat is
    /// reclaimed (86400 to 94608000: a day to three years); absent: never. Copied to each license at creation.
    #[schema(minimum = 86_400, maximum = 94_608_000)]
    reclaim_after: Option<u64>,
    /// Whether moving an assignment of a perpetual license (no expiry) to another assignee
    /// needs an admin's approval (default false): the reassignment is then a pending
    /// transfer (`GET /v1/assignment-transfers`).
    transfer_approval: Option<bool>,
}

/// Longest check-in interval or grace: a year.
pub(super) const MAX_CHECK_IN_SECS: u64 = 365 * 86_400;

/// Shortest check-in interval: an hour (every validation signs a fresh token).
pub(super) const MIN_CHECK_IN_INTERVAL_SECS: u64 = 3_600;

/// `check_in_interval` and `check_in_grace` as stored.
fn check_in_settings(req: &NewPolicy) -> ApiResult<(Option<i64>, Option<i64>)> {
    let out_of_range = |field: &str, range: &str| {
        ApiError::invalid(
            ErrorCode::InvalidField,
            format!("`{field}` must be {range} seconds"),
        )
    };
    match (req.check_in_interval, req.check_in_grace) {
        (None, None) => Ok((None, None)),
        (None, Some(_)) => Err(ApiError::invalid(
            ErrorCode::InvalidField,
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

/// A policy as the API shows it.
#[derive(Serialize, ToSchema)]
pub(crate) struct PolicyView {
    id: String,
    product_id: String,
    name: String,
    #[schema(value_type = super::super::openapi::LicenseModelSchema)]
    model: String,
    duration: Option<i64>,
    grace_period: Option<i64>,
    max_machines: Option<i64>,
    seats: Option<i64>,
    #[schema(value_type = BTreeMap<String, super::super::openapi::FeatureSchema>)]
    features: Value,
    #[schema(value_type = Option<super::super::openapi::VersionRuleSchema>)]
    version: Option<Value>,
    #[serde(rename = "match")]
    #[schema(value_type = Option<super::super::openapi::MatchPolicySchema>)]
    match_policy: Option<Value>,
    allow_virtual: bool,
    #[schema(value_type = Option<super::super::openapi::SiteSchema>)]
    site: Option<Value>,
    check_in_interval: Option<i64>,
    check_in_grace: Option<i64>,
    max_transfers: Option<i64>,
    allow_unmetered: bool,
    /// `floating` or `named`.
    seat_mode: String,
    allow_over_allocation: bool,
    reclaim_after: Option<i64>,
    transfer_approval: bool,
    created_at: i64,
}

/// The caller's organization's policies.
#[derive(Serialize, ToSchema)]
pub(crate) struct PolicyList {
    policies: Vec<PolicyView>,
}

pub(super) fn policy_view(p: &Policy) -> PolicyView {
    PolicyView {
        id: p.id.clone(),
        product_id: p.product_id.clone(),
        name: p.name.clone(),
        model: p.model.clone(),
        duration: p.duration,
        grace_period: p.grace_period,
        max_machines: p.max_machines,
        seats: p.seats,
        features: json_value(&p.features),
        version: p.version_rule.as_deref().map(json_value),
        match_policy: p.match_policy.as_deref().map(json_value),
        allow_virtual: p.allow_virtual != 0,
        site: p.site.as_deref().map(json_value),
        check_in_interval: p.check_in_interval,
        check_in_grace: p.check_in_grace,
        max_transfers: p.max_transfers,
        allow_unmetered: p.allow_unmetered != 0,
        seat_mode: p.seat_mode.clone(),
        allow_over_allocation: p.allow_over_allocation != 0,
        reclaim_after: p.reclaim_after,
        transfer_approval: p.transfer_approval != 0,
        created_at: p.created_at,
    }
}

/// `POST /v1/policies`. The policy is checked by signing a trial license from it: the core's
/// claim rules decide, and their error names the field.
#[utoipa::path(post, path = "/v1/policies", tag = TAG_ADMIN, security(("api_token" = [])),
    request_body = NewPolicy,
    responses((status = 201, description = "Created", body = PolicyView),
        (status = 404, description = "No such product", body = ErrorBody),
        AdminErrors, BodyErrors))]
pub(crate) async fn create_policy(
    caller: Caller,
    State(state): State<AppState>,
    StrictJson(req): StrictJson<NewPolicy>,
) -> ApiResult<(StatusCode, Json<PolicyView>)> {
    caller.require(Action::ManageLicenses)?;
    if state
        .db()
        .get_product(&caller.organization_id, &req.product_id)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found(
            ErrorCode::ProductNotFound,
            format!("no product with id `{}`", req.product_id),
        ));
    }
    let duration =
        req.duration.map(i64::try_from).transpose().map_err(|_| {
            ApiError::invalid(ErrorCode::InvalidField, "`duration` is out of range")
        })?;
    let grace_period = req
        .grace_period
        .map(i64::try_from)
        .transpose()
        .map_err(|_| {
            ApiError::invalid(ErrorCode::InvalidField, "`grace_period` is out of range")
        })?;
    if req.duration == Some(0) {
        return Err(ApiError::invalid(
            ErrorCode::InvalidField,
            "`duration` must be at least 1 second",
        ));
    }
    let (check_in_interval, check_in_grace) = check_in_settings(&req)?;
    let allow_unmetered = req.allow_unmetered.unwrap_or(false);
    if allow_unmetered && req.model == LicenseModel::NodeLocked {
        return Err(ApiError::invalid(
            ErrorCode::InvalidField,
            "`allow_unmetered` is not for node-locked policies: their tokens bind their machines",
        ));
    }
    let now = now();
    let policy = Policy {
        id: secrets::new_id("pol").map_err(internal)?,
        organization_id: caller.organization_id.clone(),
        product_id: req.product_id,
        name: req.name.into_string(),
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
        allow_unmetered: i64::from(allow_unmetered),
        seat_mode: req
            .seat_mode
            .unwrap_or(SeatMode::Floating)
            .as_str()
            .to_owned(),
        allow_over_allocation: i64::from(req.allow_over_allocation.unwrap_or(false)),
        reclaim_after: seat_policy::reclaim_after("reclaim_after", req.reclaim_after)?,
        transfer_approval: i64::from(req.transfer_approval.unwrap_or(false)),
    };
    let template = issue::build_claims(&state, &policy, &NewLicense::default(), "lic_trial", now)?;
    issue::check_template(&template, now)
        .map_err(|e| e.context("the policy would issue invalid licenses"))?;
    state.db().insert_policy(&policy).await?;
    tracing::info!(policy = %policy.id, product = %policy.product_id, "policy created");
    Ok((StatusCode::CREATED, Json(policy_view(&policy))))
}

/// `GET /v1/policies`.
#[utoipa::path(get, path = "/v1/policies", tag = TAG_ADMIN, security(("api_token" = [])),
    responses((status = 200, description = "The policies", body = PolicyList), AdminErrors))]
pub(crate) async fn list_policies(
    caller: Caller,
    State(state): State<AppState>,
) -> ApiResult<Json<PolicyList>> {
    caller.require(Action::Read)?;
    let policies: Vec<PolicyView> = state
        .db()
        .list_policies(&caller.organization_id)
        .await?
        .iter()
        .map(policy_view)
        .collect();
    Ok(Json(PolicyList { policies }))
}

/// `GET /v1/policies/{id}`.
#[utoipa::path(get, path = "/v1/policies/{id}", tag = TAG_ADMIN, security(("api_token" = [])),
    params(("id" = String, Path, description = "Policy id")),
    responses((status = 200, description = "The policy", body = PolicyView),
        (status = 404, description = "No such policy", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn get_policy(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<PolicyView>> {
    caller.require(Action::Read)?;
    let policy = state
        .db()
        .get_policy(&caller.organization_id, &id)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(ErrorCode::PolicyNotFound, format!("no policy `{id}`"))
        })?;
    Ok(Json(policy_view(&policy)))
}

// ---- licenses ------------------------------------------------------------------------------

/// A license as the API shows it (never its key, which is shown once at creation).
#[derive(Serialize, ToSchema)]
pub(crate) struct LicenseView {
    id: String,
    product_id: String,
    policy_id: String,
    /// `active`, `suspended`, `revoked`, `expired`, `not_yet_valid`.
    status: licensing_core::protocol::ServerStatus,
    /// The key's last group, `…-XXXXX`.
    key_hint: String,
    expires_at: Option<i64>,
    /// The signed license token (none for a node-locked license without machines, and none
    /// for a caller whose role may not manage licenses: see `token_withheld`).
    token: Option<String>,
    /// Present and true when the license has a token that this caller's role (auditor, IT
    /// staff) may not receive: a signed token is the license itself, runnable anywhere its
    /// product is installed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    token_withheld: bool,
    /// `floating` (anyone, up to the seat count) or `named` (only assignees).
    seat_mode: String,
    /// Whether assigning beyond the seat count is allowed (and flagged).
    allow_over_allocation: bool,
    /// Seconds without use after which an assigned seat is reclaimed (`null`: the policy's).
    reclaim_after: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

/// A new license: the view plus its key (shown only here: the server keeps its hash).
#[derive(Serialize, ToSchema)]
pub(crate) struct CreatedLicense {
    #[serde(flatten)]
    license: LicenseView,
    /// The human-typeable license key.
    key: String,
}

/// A page of the caller's organization's licenses, newest first.
#[derive(Serialize, ToSchema)]
pub(crate) struct LicenseList {
    licenses: Vec<LicenseView>,
    /// The cursor of the next (older) page, for `after`; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    next: Option<String>,
    /// The cursor of the previous (newer) page, for `before`; absent on the first page.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    previous: Option<String>,
}

/// A license as `caller` may see it: the signed token only for roles that manage licenses.
pub(crate) fn license_view(row: &LicenseRow, caller: &Caller, now: i64) -> ApiResult<LicenseView> {
    let show_token = caller.may(Action::ManageLicenses);
    Ok(LicenseView {
        id: row.id.clone(),
        product_id: row.product_id.clone(),
        policy_id: row.policy_id.clone(),
        status: issue::effective_status(row, now)?,
        key_hint: format!("…-{}", row.key_hint),
        expires_at: row.expires_at,
        token: row.token.clone().filter(|_| show_token),
        token_withheld: row.token.is_some() && !show_token,
        seat_mode: row.seat_mode.clone(),
        allow_over_allocation: row.allow_over_allocation != 0,
        reclaim_after: row.reclaim_after,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

/// `POST /v1/licenses`: a license from a policy plus overrides. Answers the license key (shown
/// only here: the server keeps its hash) and the signed license token (none for a node-locked
/// license until its first machine is activated).
#[utoipa::path(post, path = "/v1/licenses", tag = TAG_ADMIN, security(("api_token" = [])),
    request_body = NewLicense,
    responses((status = 201, description = "Created", body = CreatedLicense),
        (status = 404, description = "No such policy", body = ErrorBody),
        AdminErrors, BodyErrors))]
pub(crate) async fn create_license(
    caller: Caller,
    State(state): State<AppState>,
    StrictJson(req): StrictJson<NewLicense>,
) -> ApiResult<(StatusCode, Json<CreatedLicense>)> {
    caller.require(Action::ManageLicenses)?;
    let policy = state
        .db()
        .get_policy(&caller.organization_id, &req.policy_id)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(
                ErrorCode::PolicyNotFound,
                format!("no policy with id `{}`", req.policy_id),
            )
        })?;
    let now = now();
    let id = secrets::new_id("lic").map_err(internal)?;
    let template = issue::build_claims(&state, &policy, &req, &id, now)?;
    let token = if template.is_node_locked() {
        // Validate now; the token is signed when machines are bound.
        issue::check_template(&template, now)?;
        None
    } else {
        let (token, license) = issue::sign_license(&state, &template, &[], now)?;
        issue::check_new(&license)?;
        Some(token)
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
        claims: template.to_json()?,
        token,
        expires_at: template.claims.exp,
        created_at: now,
        updated_at: now,
        lease_timeout: super::floating::DEFAULT_LEASE_TIMEOUT,
        // Not lent until a license manager allows it (`PUT /v1/licenses/{id}/borrowing`).
        borrow_max_seconds: 0,
        borrow_max_leases: 0,
        queue_max_seconds: 0,
        allow_unmetered: policy.allow_unmetered,
        seat_mode: req
            .seat_mode
            .map_or_else(|| policy.seat_mode.clone(), |m| m.as_str().to_owned()),
        allow_over_allocation: req
            .allow_over_allocation
            .map_or(policy.allow_over_allocation, i64::from),
        reclaim_after: match req.reclaim_after {
            Some(_) => seat_policy::reclaim_after("reclaim_after", req.reclaim_after)?,
            None => policy.reclaim_after,
        },
        customer_key: Some(
            req.customer
                .as_ref()
                .and_then(|c| c.name.as_deref())
                .unwrap_or_default()
                .to_lowercase(),
        ),
        parsed: Default::default(),
    };
    if !state.db().insert_license(&row).await? {
        return Err(ApiError::internal("license key collision"));
    }
    tracing::info!(license = %row.id, policy = %row.policy_id, "license created");
    let license = license_view(&row, &caller, now)?;
    Ok((StatusCode::CREATED, Json(CreatedLicense { license, key })))
}

/// A page of `GET /v1/licenses`; every parameter is optional, and without any the answer is
/// the newest 500 licenses, as it always was.
#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct LicenseListQuery {
    /// The licenses after this cursor in the list's order (older): a page's `next`,
    /// `<created_at>,<id>`.
    after: Option<String>,
    /// The licenses before this cursor (newer): a page's `previous`.
    before: Option<String>,
    /// Only the licenses this text finds (1 to 200 characters): the whole license key, part
    /// (any case) of the license id, its product's or policy's id, the key's last group or
    /// the customer's name, or a directory user's user name or e-mail (the licenses assigned
    /// to them or whose seats they held).
    q: Option<String>,
    /// At most this many (1 to 500, default 500).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
}

/// Licenses answered by one `GET /v1/licenses` at most (and without `limit`).
const MAX_LICENSE_PAGE: i64 = 500;

/// A list cursor, `<created_at>,<id>`, or 422 naming `field`.
fn license_cursor(field: &str, text: &str) -> ApiResult<db::LicenseCursor> {
    let invalid = || {
        ApiError::invalid(
            ErrorCode::InvalidField,
            format!("`{field}` must be a cursor of this list (`<created_at>,<id>`)"),
        )
    };
    let (at, id) = text.split_once(',').ok_or_else(invalid)?;
    let created_at = at.parse::<i64>().map_err(|_| invalid())?;
    token_field(field, id, 1, 128)?;
    Ok(db::LicenseCursor {
        created_at,
        id: id.to_owned(),
    })
}

fn cursor_of(row: &LicenseRow) -> String {
    format!("{},{}", row.created_at, row.id)
}

/// What `q` finds, or 422 naming it.
fn license_search(q: &str) -> ApiResult<Option<db::LicenseSearch>> {
    let q = q.trim();
    if q.is_empty() {
        return Ok(None);
    }
    if q.chars().count() > 200 || q.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            ErrorCode::InvalidField,
            "`q` must be 1 to 200 characters without control characters",
        ));
    }
    let lower = q.to_lowercase();
    let escaped: String = lower
        .chars()
        .flat_map(|c| match c {
            '%' | '_' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    Ok(Some(db::LicenseSearch {
        key_hash: secrets::canonical_license_key(q).map(|k| secrets::sha256_hex(k.as_bytes())),
        like: format!("%{escaped}%"),
        user: lower,
        email: q.to_owned(),
    }))
}

/// `GET /v1/licenses[?after|before&q&limit]`: the organization's licenses newest first
/// (`created_at` descending, then `id`), paged by cursor (keyset: however deep the page, it
/// reads only its own rows), optionally searched. Without parameters: the newest 500.
#[utoipa::path(get, path = "/v1/licenses", tag = TAG_ADMIN, security(("api_token" = [])),
    params(LicenseListQuery),
    responses((status = 200, description = "A page of licenses, newest first (without parameters: the newest 500)", body = LicenseList),
        (status = 422, description = "A cursor, `q` or `limit` is not valid (named)", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn list_licenses(
    caller: Caller,
    State(state): State<AppState>,
    Query(query): Query<LicenseListQuery>,
) -> ApiResult<Json<LicenseList>> {
    caller.require(Action::Read)?;
    let limit = query.limit.unwrap_or(MAX_LICENSE_PAGE);
    if !(1..=MAX_LICENSE_PAGE).contains(&limit) {
        return Err(ApiError::invalid(
            ErrorCode::InvalidField,
            "`limit` must be 1 to 500",
        ));
    }
    let page = match (query.after.as_deref(), query.before.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                ErrorCode::InvalidRequest,
                "give `after` or `before`, not both",
            ));
        }
        (Some(after), None) => db::LicensePage::After(license_cursor("after", after)?),
        (None, Some(before)) => db::LicensePage::Before(license_cursor("before", before)?),
        (None, None) => db::LicensePage::First,
    };
    let search = license_search(query.q.as_deref().unwrap_or(""))?;
    // One more than asked: whether a page follows in the direction read.
    let mut rows = state
        .db()
        .license_page(&caller.organization_id, &page, search.as_ref(), limit + 1)
        .await?;
    let more = rows.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    if more {
        match page {
            // Read newest first: the extra row is the last.
            db::LicensePage::First | db::LicensePage::After(_) => {
                rows.pop();
            }
            // Read oldest first, then reversed: the extra row is the first.
            db::LicensePage::Before(_) => {
                rows.remove(0);
            }
        }
    }
    let (next, previous) = match page {
        db::LicensePage::First => (more.then(|| rows.last().map(cursor_of)).flatten(), None),
        db::LicensePage::After(_) => (
            more.then(|| rows.last().map(cursor_of)).flatten(),
            rows.first().map(cursor_of),
        ),
        db::LicensePage::Before(_) => (
            rows.last().map(cursor_of),
            more.then(|| rows.first().map(cursor_of)).flatten(),
        ),
    };
    let now = now();
    let licenses = rows
        .iter()
        .map(|row| license_view(row, &caller, now))
        .collect::<ApiResult<Vec<LicenseView>>>()?;
    Ok(Json(LicenseList {
        licenses,
        next,
        previous,
    }))
}

/// `GET /v1/licenses/{id}`.
#[utoipa::path(get, path = "/v1/licenses/{id}", tag = TAG_ADMIN, security(("api_token" = [])),
    params(("id" = String, Path, description = "License id")),
    responses((status = 200, description = "The license", body = LicenseView),
        (status = 404, description = "No such license", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn get_license(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<LicenseView>> {
    caller.require(Action::Read)?;
    let row = get_license_row(&state, &caller, &id).await?;
    Ok(Json(license_view(&row, &caller, now())?))
}

async fn transition(
    state: &AppState,
    caller: &Caller,
    id: &str,
    transition: Transition,
) -> ApiResult<Json<LicenseView>> {
    caller.require(Action::ManageLicenses)?;
    // Tenant check first: a license of another organization is never touched.
    get_license_row(state, caller, id).await?;
    let now = now();
    if !state.db().transition(id, transition, now).await? {
        let row = get_license_row(state, caller, id).await?;
        return Err(ApiError::conflict(
            ErrorCode::InvalidTransition,
            format!(
                "license `{id}` is {}; it cannot become {}",
                row.status,
                transition.target()
            ),
        ));
    }
    tracing::info!(license = %id, status = transition.target(), "license status changed");
    let row = get_license_row(state, caller, id).await?;
    Ok(Json(license_view(&row, caller, now)?))
}

/// `POST /v1/licenses/{id}/suspend`: active → suspended.
#[utoipa::path(post, path = "/v1/licenses/{id}/suspend", tag = TAG_ADMIN, security(("api_token" = [])),
    params(("id" = String, Path, description = "License id")),
    responses((status = 200, description = "The license after the change", body = LicenseView),
        (status = 404, description = "No such license", body = ErrorBody),
        (status = 409, description = "The license cannot make this transition", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn suspend_license(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<LicenseView>> {
    transition(&state, &caller, &id, Transition::Suspend).await
}

/// `POST /v1/licenses/{id}/reinstate`: suspended → active.
#[utoipa::path(post, path = "/v1/licenses/{id}/reinstate", tag = TAG_ADMIN, security(("api_token" = [])),
    params(("id" = String, Path, description = "License id")),
    responses((status = 200, description = "The license after the change", body = LicenseView),
        (status = 404, description = "No such license", body = ErrorBody),
        (status = 409, description = "The license cannot make this transition", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn reinstate_license(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<LicenseView>> {
    transition(&state, &caller, &id, Transition::Reinstate).await
}

/// `POST /v1/licenses/{id}/revoke`: active or suspended → revoked, for good.
#[utoipa::path(post, path = "/v1/licenses/{id}/revoke", tag = TAG_ADMIN, security(("api_token" = [])),
    params(("id" = String, Path, description = "License id")),
    responses((status = 200, description = "The license after the change", body = LicenseView),
        (status = 404, description = "No such license", body = ErrorBody),
        (status = 409, description = "The license cannot make this transition", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn revoke_license(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<LicenseView>> {
    transition(&state, &caller, &id, Transition::Revoke).await
}

/// A machine as the API shows it.
#[derive(Serialize, ToSchema)]
pub(crate) struct MachineView {
    id: String,
    /// The fingerprint id.
    fingerprint: String,
    created_at: i64,
    last_seen_at: i64,
}

/// An event of a license's machines.
#[derive(Serialize, ToSchema)]
pub(crate) struct MachineEventView {
    id: String,
    machine_id: String,
    /// `fingerprint_updated` (a hardware change within the license's match rule: the stored
    /// fingerprint replaced), `deactivated` (by the client; activating another machine in its
    /// slot counts as a transfer) or `deleted` (by an administrator).
    kind: String,
    /// The fingerprint id after the update, or of the machine removed.
    fingerprint: String,
    /// `fingerprint_updated`: the fingerprint id it replaced.
    previous_fingerprint: Option<String>,
    /// `fingerprint_updated`: the components that changed.
    changed: Vec<String>,
    created_at: i64,
}

/// A license's machines.
#[derive(Serialize, ToSchema)]
pub(crate) struct MachineList {
    machines: Vec<MachineView>,
    /// The newest 100 events of the license's machines, newest first.
    events: Vec<MachineEventView>,
}

/// `GET /v1/licenses/{id}/machines`.
#[utoipa::path(get, path = "/v1/licenses/{id}/machines", tag = TAG_ADMIN,
    security(("api_token" = [])),
    params(("id" = String, Path, description = "License id")),
    responses((status = 200, description = "The license's machines", body = MachineList),
        (status = 404, description = "No such license", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn list_machines(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<MachineList>> {
    caller.require(Action::Read)?;
    get_license_row(&state, &caller, &id).await?;
    let machines: Vec<MachineView> = state
        .db()
        .list_machines(&id)
        .await?
        .iter()
        .map(|m| MachineView {
            id: m.id.clone(),
            fingerprint: m.fingerprint.clone(),
            created_at: m.created_at,
            last_seen_at: m.last_seen_at,
        })
        .collect();
    let events = state
        .db()
        .list_machine_events(&id, 100)
        .await?
        .into_iter()
        .map(|e| MachineEventView {
            changed: e
                .changed
                .as_deref()
                .and_then(|c| serde_json::from_str(c).ok())
                .unwrap_or_default(),
            id: e.id,
            machine_id: e.machine_id,
            kind: e.kind,
            fingerprint: e.fingerprint,
            previous_fingerprint: e.previous_fingerprint,
            created_at: e.created_at,
        })
        .collect();
    Ok(Json(MachineList { machines, events }))
}

// ---- renewal -------------------------------------------------------------------------------

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RenewRequest {
    /// New expiry (Unix seconds).
    expires_at: Option<i64>,
    /// Seconds added to the later of the current expiry and now. Default when nothing is
    /// given: the policy's duration.
    #[schema(minimum = 0, maximum = 9_223_372_036_854_775_807_u64)]
    extend_by: Option<u64>,
    /// New end of the maintenance window (versions released before it are entitled).
    maintenance_until: Option<i64>,
}

/// `POST /v1/licenses/{id}/renew`: moves the expiry (and/or the maintenance window) and
/// re-signs the license token; clients pick it up at their next validation. A revoked license
/// is not renewed.
#[utoipa::path(post, path = "/v1/licenses/{id}/renew", tag = TAG_ADMIN, security(("api_token" = [])),
    params(("id" = String, Path, description = "License id")),
    request_body = RenewRequest,
    responses((status = 200, description = "The renewed license", body = LicenseView),
        (status = 404, description = "No such license", body = ErrorBody),
        (status = 409, description = "The license is revoked", body = ErrorBody),
        AdminErrors, BodyErrors))]
pub(crate) async fn renew_license(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    StrictJson(req): StrictJson<RenewRequest>,
) -> ApiResult<Json<LicenseView>> {
    caller.require(Action::ManageLicenses)?;
    let row = get_license_row(&state, &caller, &id).await?;
    if req.expires_at.is_some() && req.extend_by.is_some() {
        return Err(ApiError::invalid(
            ErrorCode::InvalidRequest,
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
                ErrorCode::LicenseRevoked,
                "a revoked license cannot be renewed",
            ));
        }
        let mut template = issue::LicenseTemplate::of(row)?;
        let current_exp = template.claims.exp;
        let extend_by = match (req.expires_at, req.extend_by, req.maintenance_until) {
            (None, None, None) => Some(policy_duration.ok_or_else(|| {
                ApiError::invalid(
                    ErrorCode::InvalidRequest,
                    "the policy has no duration: give `expires_at`, `extend_by` or \
                     `maintenance_until`",
                )
            })?),
            (_, Some(by), _) => Some(i64::try_from(by).map_err(|_| {
                ApiError::invalid(ErrorCode::InvalidField, "`extend_by` is too large")
            })?),
            _ => None,
        };
        let new_exp = match (req.expires_at, extend_by) {
            (Some(at), _) => Some(at),
            (None, Some(by)) => {
                let from = current_exp.ok_or_else(|| {
                    ApiError::invalid(
                        ErrorCode::InvalidRequest,
                        "the license has no expiry to extend; use `expires_at` or \
                         `maintenance_until`",
                    )
                })?;
                Some(from.max(now).saturating_add(by))
            }
            (None, None) => None,
        };
        if new_exp.is_some() {
            template.claims.exp = new_exp;
        }
        if let Some(until) = req.maintenance_until {
            template
                .claims
                .lic
                .version
                .get_or_insert_with(|| VersionRule {
                    req: None,
                    maintenance_until: None,
                })
                .maintenance_until = Some(until);
        }
        // Signing validates the new claims (the core names a bad field).
        let token = issue::sign_license_for(&state, &template, machines, now)?;
        Ok(Some(Rewrite {
            claims: template.to_json()?,
            token,
            expires_at: template.claims.exp,
        }))
    };
    rewrite_license(&state, &id, now, renew).await?;
    tracing::info!(license = %id, by = %caller.token_id, "license renewed");
    let row = get_license_row(&state, &caller, &id).await?;
    Ok(Json(license_view(&row, &caller, now)?))
}

/// `DELETE /v1/licenses/{id}/machines/{machine_id}`: deactivates a machine (frees its slot;
/// a node-locked license's token is reissued without it).
#[utoipa::path(delete, path = "/v1/licenses/{id}/machines/{machine_id}", tag = TAG_ADMIN,
    security(("api_token" = [])),
    params(("id" = String, Path, description = "License id"),
        ("machine_id" = String, Path, description = "Machine id")),
    responses((status = 200, description = "Deactivated", body = DeactivateResponse),
        (status = 404, description = "No such license or machine", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn delete_machine(
    caller: Caller,
    State(state): State<AppState>,
    Path((id, machine_id)): Path<(String, String)>,
) -> ApiResult<Json<DeactivateResponse>> {
    caller.require(Action::Operate)?;
    let row = get_license_row(&state, &caller, &id).await?;
    let answer = deactivate_machine(
        &state,
        &row,
        super::super::db::MachineRef::Id(&machine_id),
        None,
        super::super::db::RemovedBy::Admin,
    )
    .await?;
    Ok(Json(answer))
}
