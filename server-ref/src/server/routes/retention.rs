//! Retention per organization (`GET`/`PUT /v1/retention`): how many days audit entries, lease
//! history and denials are kept. The reaper prunes by it on the server's clock
//! (`startup::prune_once`).

use super::*;
use crate::server::db::{DENIAL_RETENTION_SECS, RetentionRow};

/// Days a retention may be set to.
const RETENTION_DAYS: std::ops::RangeInclusive<i64> = 1..=36_500;

/// An organization's retention, in days; `null` keeps for ever.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Retention {
    /// Audit entries (admin requests and client events) older than this are pruned: a client
    /// event's content is blanked (its place in the chain stays), admin entries go once every
    /// older entry of the chain may go. 1 to 36 500, or null (default): kept for ever.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 36500)]
    audit_days: Option<i64>,
    /// Released leases (checked in, lapsed, force-released) older than this are deleted. 1 to
    /// 36 500, or null (default): kept for ever.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 36500)]
    lease_history_days: Option<i64>,
    /// Denials (refused check-outs) older than this are deleted. 1 to 36 500; default 60.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 36500)]
    denial_days: Option<i64>,
}

/// The default denial retention, in days.
fn default_denial_days() -> i64 {
    DENIAL_RETENTION_SECS / 86_400
}

fn view(row: Option<RetentionRow>) -> Retention {
    match row {
        Some(row) => Retention {
            audit_days: row.audit_days,
            lease_history_days: row.lease_history_days,
            denial_days: Some(row.denial_days),
        },
        None => Retention {
            audit_days: None,
            lease_history_days: None,
            denial_days: Some(default_denial_days()),
        },
    }
}

/// `GET /v1/retention`: the caller's organization's retention (the defaults when never set).
#[utoipa::path(get, path = "/v1/retention", tag = TAG_ADMIN, security(("api_token" = [])),
    responses((status = 200, description = "The retention", body = Retention),
        AdminErrors, ReadErrors))]
pub(crate) async fn get_retention(
    caller: Caller,
    State(state): State<AppState>,
) -> ApiResult<Json<Retention>> {
    caller.require(Action::Read)?;
    let row = state.db().get_retention(&caller.organization_id).await?;
    Ok(Json(view(row)))
}

/// `PUT /v1/retention` (role `admin`): replaces the caller's organization's retention (a field
/// left out takes its default: kept for ever, denials 60 days). Each value 1 to 36 500 days,
/// else 422 naming the field. The reaper applies it within the hour.
#[utoipa::path(put, path = "/v1/retention", tag = TAG_ADMIN, security(("api_token" = [])),
    request_body = Retention,
    responses((status = 200, description = "Set", body = Retention),
        AdminErrors, BodyErrors))]
pub(crate) async fn put_retention(
    caller: Caller,
    State(state): State<AppState>,
    StrictJson(req): StrictJson<Retention>,
) -> ApiResult<Json<Retention>> {
    caller.require(Action::Administer)?;
    for (field, value) in [
        ("audit_days", req.audit_days),
        ("lease_history_days", req.lease_history_days),
        ("denial_days", req.denial_days),
    ] {
        if let Some(days) = value
            && !RETENTION_DAYS.contains(&days)
        {
            return Err(ApiError::invalid(
                ErrorCode::InvalidField,
                format!(
                    "`{field}` must be between {} and {} days (or null); got {days}",
                    RETENTION_DAYS.start(),
                    RETENTION_DAYS.end()
                ),
            ));
        }
    }
    let row = RetentionRow {
        organization_id: caller.organization_id.clone(),
        audit_days: req.audit_days,
        lease_history_days: req.lease_history_days,
        denial_days: req.denial_days.unwrap_or_else(default_denial_days),
    };
    state.db().put_retention(&row, now()).await?;
    Ok(Json(view(Some(row))))
}
