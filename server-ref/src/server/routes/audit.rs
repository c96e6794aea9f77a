//! The audit trail (bearer API token, role `auditor` and up): one organization's entries, and a
//! verification of the whole hash chain. What is recorded is decided in `server::audit`.

use axum::extract::Query;

use super::*;
use crate::server::db::{AuditEntry, ChainCheck};

/// Entries answered by one `GET /v1/audit` at most.
const MAX_AUDIT_LIMIT: i64 = 1000;
/// Entries answered when `limit` is not given.
const DEFAULT_AUDIT_LIMIT: i64 = 100;

/// A page of the trail.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditPage {
    /// Entries with a larger `seq` (default 0: from the first).
    #[param(minimum = 0)]
    after: Option<i64>,
    /// At most this many (default 100; more than 1000 is taken as 1000).
    #[param(minimum = 1)]
    limit: Option<i64>,
}

/// The caller's organization's entries, oldest first.
#[derive(Serialize, ToSchema)]
pub(crate) struct AuditList {
    entries: Vec<AuditEntry>,
}

/// `GET /v1/audit?after&limit`: the caller's organization's audit entries with `seq > after`,
/// oldest first.
#[utoipa::path(get, path = "/v1/audit", tag = TAG_ADMIN, security(("api_token" = [])),
    params(AuditPage),
    responses((status = 200, description = "The organization's entries", body = AuditList),
        (status = 422, description = "`after` is negative or `limit` below 1", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn list_audit(
    caller: Caller,
    State(state): State<AppState>,
    Query(page): Query<AuditPage>,
) -> ApiResult<Json<AuditList>> {
    caller.require(Action::Read)?;
    let after = page.after.unwrap_or(0);
    let limit = page.limit.unwrap_or(DEFAULT_AUDIT_LIMIT);
    if after < 0 || limit < 1 {
        return Err(ApiError::invalid(
            ErrorCode::InvalidField,
            "`after` must be at least 0 and `limit` at least 1",
        ));
    }
    let entries = state
        .db()
        .list_audit(&caller.organization_id, after, limit.min(MAX_AUDIT_LIMIT))
        .await?;
    Ok(Json(AuditList { entries }))
}

/// The answer of `GET /v1/audit/verify`: `{"ok":true,"entries","head"}` or
/// `{"ok":false,"broken_at","reason"}`.
#[derive(Serialize, ToSchema)]
pub(crate) struct AuditVerification {
    /// Whether the whole chain is intact.
    ok: bool,
    /// Intact: how many entries the chain holds (every organization's).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    entries: Option<i64>,
    /// Intact: the last entry's hash (64 zeros for an empty chain), to anchor elsewhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    head: Option<String>,
    /// Broken: the `seq` of the first entry found wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    broken_at: Option<i64>,
    /// Broken: what is wrong there.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    reason: Option<String>,
}

/// `GET /v1/audit/verify`: recomputes the whole chain (every organization's entries: the chain
/// is one) and reports the first entry that is edited, missing or out of place. Only for the
/// operator organization (auditors and up): the answer (entry count, head hash) and the cost of
/// a full scan concern every tenant.
#[utoipa::path(get, path = "/v1/audit/verify", tag = TAG_ADMIN, security(("api_token" = [])),
    responses((status = 200, description = "Whether the chain is intact", body = AuditVerification),
        (status = 403, description = "Not the operator organization", body = ErrorBody),
        AdminErrors))]
pub(crate) async fn verify_audit(
    caller: Caller,
    State(state): State<AppState>,
) -> ApiResult<Json<AuditVerification>> {
    caller.require(Action::Read)?;
    if !caller.operator {
        return Err(ApiError::forbidden(
            ErrorCode::Forbidden,
            "the audit chain holds every organization's entries: only the operator organization \
             verifies it",
        ));
    }
    let answer = match state.db().verify_audit().await? {
        ChainCheck::Intact { entries, head } => AuditVerification {
            ok: true,
            entries: Some(entries),
            head: Some(head),
            broken_at: None,
            reason: None,
        },
        ChainCheck::Broken { at, reason } => {
            tracing::warn!(broken_at = at, %reason, "audit chain broken");
            AuditVerification {
                ok: false,
                entries: None,
                head: None,
                broken_at: Some(at),
                reason: Some(reason),
            }
        }
    };
    Ok(Json(answer))
}
