//! Editing products and policies (`PATCH /v1/products/{id}`, `PATCH /v1/policies/{id}`).
//!
//! A policy is a template: each license copies what it needs from it when it is issued, so
//! a change reaches the licenses issued after it and never re-signs or re-rules a license
//! issued before. Only the members that are nothing but such a template may change: the name,
//! the term (`duration`, `grace_period`), the counts (`max_machines`, `seats`), the check-in
//! rule, and the seating copied to each license (`seat_mode`, `allow_over_allocation`,
//! `reclaim_after`). The rest stays as created: `product_id` and `model` decide what a
//! license is (its `aud` and the claims its tokens carry); `features`, `version`, `match`,
//! `allow_virtual`, `site` and `allow_unmetered` shape the claims in ways a vendor re-issues
//! for rather than edits; and `max_transfers` and `transfer_approval` are read from the policy
//! by its existing licenses at each transfer, so changing them would change the rules of
//! licenses already sold. (`duration` is also the term of a renewal that names none: such a
//! renewal after the change uses the new term, as a renewal "by the policy" should.)

use super::*;

/// Deserializes a present member (`null` included) as `Some`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// The product members to change; an absent member is left as it is.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProductChange {
    /// Display name. (The id is the `aud` of every token issued for the product: it stays.)
    name: Option<DisplayName>,
}

/// `PATCH /v1/products/{id}`: renames a product.
#[utoipa::path(patch, path = "/v1/products/{id}", tag = TAG_ADMIN, security(("api_token" = [])),
    params(("id" = String, Path, description = "Product id")),
    request_body = ProductChange,
    responses((status = 200, description = "The product after the change", body = Product),
        (status = 404, description = "No such product", body = ErrorBody),
        AdminErrors, BodyErrors))]
pub(crate) async fn update_product(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    StrictJson(req): StrictJson<ProductChange>,
) -> ApiResult<Json<Product>> {
    caller.require(Action::ManageLicenses)?;
    let not_found =
        || ApiError::not_found(ErrorCode::ProductNotFound, format!("no product `{id}`"));
    let mut product = state
        .db()
        .get_product(&caller.organization_id, &id)
        .await?
        .ok_or_else(not_found)?;
    if let Some(name) = req.name {
        product.name = name.into_string();
    }
    if !state.db().update_product(&product).await? {
        return Err(not_found());
    }
    tracing::info!(product = %product.id, "product changed");
    Ok(Json(product))
}

/// The policy members to change (those that only shape future licenses; see the module);
/// an absent member is left as it is, `null` clears an optional one.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PolicyChange {
    /// Display name.
    name: Option<DisplayName>,
    /// Seconds from issue to expiry (at least 1); `null`: licenses that do not expire.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>, minimum = 1)]
    duration: Option<Option<u64>>,
    /// Seconds a license stays usable after its expiry; `null`: none.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>, minimum = 0)]
    grace_period: Option<Option<u64>>,
    /// Machines a license may activate; `null`: no limit.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>)]
    max_machines: Option<Option<u32>>,
    /// Floating seats; `null`: none.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>)]
    seats: Option<Option<u32>>,
    /// Seconds between server check-ins (3600 to 31536000); `null`: no check-in.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>, minimum = 3600, maximum = 31_536_000)]
    check_in_interval: Option<Option<u64>>,
    /// Seconds a license stays usable after a missed check-in (0 to 31536000).
    #[schema(minimum = 0, maximum = 31_536_000)]
    check_in_grace: Option<u64>,
    /// `floating` or `named`, copied to each license at creation.
    seat_mode: Option<SeatMode>,
    /// Copied to each license at creation.
    allow_over_allocation: Option<bool>,
    /// Seconds without use after which an assigned seat is reclaimed (86400 to 94608000);
    /// `null`: never. Copied to each license at creation.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>, minimum = 86_400, maximum = 94_608_000)]
    reclaim_after: Option<Option<u64>>,
}

/// A count or a number of seconds as stored, or 422 naming `field`.
fn stored(field: &str, value: u64) -> ApiResult<i64> {
    i64::try_from(value).map_err(|_| {
        ApiError::invalid(
            ErrorCode::InvalidField,
            format!("`{field}` is out of range"),
        )
    })
}

/// Applies `req` to `policy`, checking each member (422 naming it).
fn apply(policy: &mut Policy, req: PolicyChange) -> ApiResult<()> {
    let invalid = |message: String| ApiError::invalid(ErrorCode::InvalidField, message);
    if let Some(name) = req.name {
        policy.name = name.into_string();
    }
    if let Some(duration) = req.duration {
        if duration == Some(0) {
            return Err(invalid("`duration` must be at least 1 second".into()));
        }
        policy.duration = duration.map(|d| stored("duration", d)).transpose()?;
    }
    if let Some(grace) = req.grace_period {
        policy.grace_period = grace.map(|g| stored("grace_period", g)).transpose()?;
    }
    if let Some(machines) = req.max_machines {
        policy.max_machines = machines.map(i64::from);
    }
    if let Some(seats) = req.seats {
        policy.seats = seats.map(i64::from);
    }
    if let Some(interval) = req.check_in_interval {
        if let Some(i) = interval
            && !(MIN_CHECK_IN_INTERVAL_SECS..=MAX_CHECK_IN_SECS).contains(&i)
        {
            return Err(invalid(
                "`check_in_interval` must be 3600 to 31536000 seconds".into(),
            ));
        }
        policy.check_in_interval = interval
            .map(|i| stored("check_in_interval", i))
            .transpose()?;
        policy.check_in_grace = match interval {
            Some(_) => Some(policy.check_in_grace.unwrap_or(0)),
            None => None,
        };
    }
    if let Some(grace) = req.check_in_grace {
        if policy.check_in_interval.is_none() {
            return Err(invalid("`check_in_grace` needs `check_in_interval`".into()));
        }
        if grace > MAX_CHECK_IN_SECS {
            return Err(invalid(
                "`check_in_grace` must be 0 to 31536000 seconds".into(),
            ));
        }
        policy.check_in_grace = Some(stored("check_in_grace", grace)?);
    }
    if let Some(mode) = req.seat_mode {
        policy.seat_mode = mode.as_str().to_owned();
    }
    if let Some(allow) = req.allow_over_allocation {
        policy.allow_over_allocation = i64::from(allow);
    }
    if let Some(reclaim) = req.reclaim_after {
        policy.reclaim_after = seat_policy::reclaim_after("reclaim_after", reclaim)?;
    }
    Ok(())
}

/// `PATCH /v1/policies/{id}`: changes the members of a policy that only shape the licenses
/// issued after the change (see the module); licenses issued before keep what they were
/// issued with. The changed policy is checked as a new one is: by building a trial license
/// from it (the core's claim rules decide, naming the field).
#[utoipa::path(patch, path = "/v1/policies/{id}", tag = TAG_ADMIN, security(("api_token" = [])),
    params(("id" = String, Path, description = "Policy id")),
    request_body = PolicyChange,
    responses((status = 200, description = "The policy after the change", body = PolicyView),
        (status = 404, description = "No such policy", body = ErrorBody),
        AdminErrors, BodyErrors))]
pub(crate) async fn update_policy(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    StrictJson(req): StrictJson<PolicyChange>,
) -> ApiResult<Json<PolicyView>> {
    caller.require(Action::ManageLicenses)?;
    let not_found = || ApiError::not_found(ErrorCode::PolicyNotFound, format!("no policy `{id}`"));
    let mut policy = state
        .db()
        .get_policy(&caller.organization_id, &id)
        .await?
        .ok_or_else(not_found)?;
    apply(&mut policy, req)?;
    let now = now();
    let template = issue::build_claims(&state, &policy, &NewLicense::default(), "lic_trial", now)?;
    issue::check_template(&template, now)
        .map_err(|e| e.context("the policy would issue invalid licenses"))?;
    if !state.db().update_policy(&policy).await? {
        return Err(not_found());
    }
    tracing::info!(policy = %policy.id, "policy changed");
    Ok(Json(policy_view(&policy)))
}
