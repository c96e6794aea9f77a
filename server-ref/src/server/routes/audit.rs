//! The audit trail (bearer API token, role `auditor` and up): one organization's entries (the
//! admin requests of `audit_log` and the client events of `audit_events`), its heartbeat
//! counts, a verification of both hash chains, and the erasure of a person's data from the
//! events (role `admin`). What is recorded is decided in `server::audit`.

use axum::extract::Query;

use super::*;
use crate::server::db::{AuditEntry, AuditEventRow, ChainCheck, HeartbeatCount};

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
    /// Only the entries whose target is this license: its API routes (`/v1/licenses/{id}…`)
    /// and the console's (`/console/licenses/{id}…`); read on an index, not filtered.
    license: Option<String>,
}

/// The caller's organization's entries, oldest first.
#[derive(Serialize, ToSchema)]
pub(crate) struct AuditList {
    entries: Vec<AuditEntry>,
}

/// `GET /v1/audit?after&limit[&license]`: the caller's organization's audit entries with
/// `seq > after`, oldest first (only one license's, with `license`).
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
    let limit = limit.min(MAX_AUDIT_LIMIT);
    let entries = match page.license.as_deref() {
        Some(license) => {
            token_field("license", license, 1, 128)?;
            state
                .db()
                .license_audit(&caller.organization_id, license, after, limit)
                .await?
        }
        None => {
            state
                .db()
                .list_audit(&caller.organization_id, after, limit)
                .await?
        }
    };
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
    /// Broken: which chain (`audit_log` or `audit_events`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, value_type = String)]
    chain: Option<&'static str>,
}

/// Which chain `GET /v1/audit/verify` reports.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct VerifyQuery {
    /// `audit_events`: report the client-event chain (its entries and head). Default: `ok`
    /// covers both chains, `entries` and `head` are the admin chain's (`audit_log`).
    chain: Option<String>,
}

fn verification(check: ChainCheck, chain: &'static str) -> AuditVerification {
    match check {
        ChainCheck::Intact { entries, head } => AuditVerification {
            ok: true,
            entries: Some(entries),
            head: Some(head),
            broken_at: None,
            reason: None,
            chain: None,
        },
        ChainCheck::Broken { at, reason } => {
            tracing::warn!(chain, broken_at = at, %reason, "audit chain broken");
            AuditVerification {
                ok: false,
                entries: None,
                head: None,
                broken_at: Some(at),
                reason: Some(reason),
                chain: Some(chain),
            }
        }
    }
}

/// `GET /v1/audit/verify?chain`: recomputes the whole chain (every organization's entries: the
/// chain is one) and reports the first entry that is edited, missing or out of place. Only for
/// the operator organization (auditors and up): the answer (entry count, head hash) and the
/// cost of a full scan concern every tenant. Without `chain`, both chains are verified: `ok`
/// only when both are intact, `entries` and `head` the admin chain's, and when one is broken,
/// `chain` names it. An erased subject leaves both intact; so does pruning (each chain restarts
/// at its checkpoint). `entries` is the last seq.
#[utoipa::path(get, path = "/v1/audit/verify", tag = TAG_ADMIN, security(("api_token" = [])),
    params(VerifyQuery),
    responses((status = 200, description = "Whether the chain is intact", body = AuditVerification),
        (status = 403, description = "Not the operator organization", body = ErrorBody),
        (status = 422, description = "`chain` is neither `audit_log` nor `audit_events`", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn verify_audit(
    caller: Caller,
    State(state): State<AppState>,
    Query(query): Query<VerifyQuery>,
) -> ApiResult<Json<AuditVerification>> {
    caller.require(Action::Read)?;
    if !caller.operator {
        return Err(ApiError::forbidden(
            ErrorCode::Forbidden,
            "the audit chain holds every organization's entries: only the operator organization \
             verifies it",
        ));
    }
    let answer = match query.chain.as_deref() {
        None => {
            let admin = verification(state.db().verify_audit().await?, "audit_log");
            if !admin.ok {
                admin
            } else {
                let events = verification(state.db().verify_audit_events().await?, "audit_events");
                if events.ok { admin } else { events }
            }
        }
        Some("audit_log") => verification(state.db().verify_audit().await?, "audit_log"),
        Some("audit_events") => {
            verification(state.db().verify_audit_events().await?, "audit_events")
        }
        Some(_) => {
            return Err(ApiError::invalid(
                ErrorCode::InvalidField,
                "`chain` must be `audit_log` or `audit_events`",
            ));
        }
    };
    Ok(Json(answer))
}

/// The caller's organization's client events, oldest first.
#[derive(Serialize, ToSchema)]
pub(crate) struct AuditEventList {
    events: Vec<AuditEventRow>,
}

/// A page of the client events.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditEventPage {
    /// Events with a larger `seq` (default 0: from the first).
    #[param(minimum = 0)]
    after: Option<i64>,
    /// At most this many (default 100; more than 1000 is taken as 1000).
    #[param(minimum = 1)]
    limit: Option<i64>,
    /// Only this license's events.
    license_id: Option<String>,
}

/// `GET /v1/audit/events?after&limit&license_id`: the caller's organization's client events
/// (`machine.activated`, `lease.denied`, ...: the `audit_events` chain) with `seq > after`,
/// oldest first. `subject` is the personal data the event names (null once erased).
#[utoipa::path(get, path = "/v1/audit/events", tag = TAG_ADMIN, security(("api_token" = [])),
    params(AuditEventPage),
    responses((status = 200, description = "The organization's events", body = AuditEventList),
        (status = 422, description = "`after` is negative or `limit` below 1", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn list_audit_events(
    caller: Caller,
    State(state): State<AppState>,
    Query(page): Query<AuditEventPage>,
) -> ApiResult<Json<AuditEventList>> {
    caller.require(Action::Read)?;
    let after = page.after.unwrap_or(0);
    let limit = page.limit.unwrap_or(DEFAULT_AUDIT_LIMIT);
    if after < 0 || limit < 1 {
        return Err(ApiError::invalid(
            ErrorCode::InvalidField,
            "`after` must be at least 0 and `limit` at least 1",
        ));
    }
    if let Some(license) = &page.license_id {
        token_field("license_id", license, 1, 128)?;
    }
    let events = state
        .db()
        .list_audit_events(
            &caller.organization_id,
            page.license_id.as_deref(),
            after,
            limit.min(MAX_AUDIT_LIMIT),
        )
        .await?;
    Ok(Json(AuditEventList { events }))
}

/// Days of heartbeat counts one `GET /v1/audit/heartbeats` covers at most.
const MAX_HEARTBEAT_DAYS: i64 = 366;

/// The period of `GET /v1/audit/heartbeats`.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct HeartbeatPeriod {
    /// Unix seconds: counts of the UTC days from this one's (default: 30 days before `to`).
    from: Option<i64>,
    /// Unix seconds: counts of the UTC days up to this one's, included (default: now).
    to: Option<i64>,
    /// Only this license's counts.
    license_id: Option<String>,
}

/// Heartbeat counts per license and UTC day.
#[derive(Serialize, ToSchema)]
pub(crate) struct HeartbeatReport {
    /// The first UTC day covered (`YYYY-MM-DD`).
    from: String,
    /// The last UTC day covered (`YYYY-MM-DD`).
    to: String,
    /// Heartbeats in the period.
    total: i64,
    /// Per day and license, oldest first.
    counts: Vec<HeartbeatDay>,
}

/// One license's heartbeats on one UTC day.
#[derive(Serialize, ToSchema)]
pub(crate) struct HeartbeatDay {
    /// `YYYY-MM-DD` (UTC).
    date: String,
    /// The license.
    license_id: String,
    /// Heartbeats accepted that day.
    beats: i64,
}

fn utc_date(day: i64) -> ApiResult<String> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::OffsetDateTime::from_unix_timestamp(day.saturating_mul(86_400))
        .map_err(|_| ApiError::invalid(ErrorCode::InvalidField, "`from`/`to` out of range"))?
        .format(format)
        .map_err(ApiError::internal)
}

/// `GET /v1/audit/heartbeats?from&to&license_id`: seat heartbeats are counted per license and
/// UTC day, not recorded one by one: the caller's organization's counts in the period (at most
/// 366 days).
#[utoipa::path(get, path = "/v1/audit/heartbeats", tag = TAG_ADMIN, security(("api_token" = [])),
    params(HeartbeatPeriod),
    responses((status = 200, description = "Heartbeats per license and day", body = HeartbeatReport),
        (status = 422, description = "`from` is later than `to`, or the period is longer than 366 days", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn heartbeat_counts(
    caller: Caller,
    State(state): State<AppState>,
    Query(period): Query<HeartbeatPeriod>,
) -> ApiResult<Json<HeartbeatReport>> {
    caller.require(Action::Read)?;
    let to = period.to.unwrap_or_else(now).div_euclid(86_400);
    let from = period
        .from
        .map_or(to.saturating_sub(29), |from| from.div_euclid(86_400));
    if from > to || to.saturating_sub(from) >= MAX_HEARTBEAT_DAYS {
        return Err(ApiError::invalid(
            ErrorCode::InvalidField,
            format!(
                "`from` must not be later than `to`, and at most {MAX_HEARTBEAT_DAYS} days before it"
            ),
        ));
    }
    if let Some(license) = &period.license_id {
        token_field("license_id", license, 1, 128)?;
    }
    let rows: Vec<HeartbeatCount> = state
        .db()
        .heartbeat_counts(
            &caller.organization_id,
            period.license_id.as_deref(),
            from,
            to,
        )
        .await?;
    let counts = rows
        .into_iter()
        .map(|row| {
            Ok(HeartbeatDay {
                date: utc_date(row.utc_day)?,
                license_id: row.license_id,
                beats: row.beats,
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(HeartbeatReport {
        from: utc_date(from)?,
        to: utc_date(to)?,
        total: counts.iter().map(|c| c.beats).sum(),
        counts,
    }))
}

/// The person to erase from the audit events.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EraseSubject {
    /// The value the events name exactly: a user name, a host name, an e-mail (1 to 256
    /// characters).
    #[schema(min_length = 1, max_length = 256)]
    subject: String,
}

/// How many events named the subject.
#[derive(Serialize, ToSchema)]
pub(crate) struct Erased {
    /// Events of the organization whose subject was erased.
    erased: u64,
}

/// `POST /v1/audit/erase` (role `admin`): erases a person's data from the caller's
/// organization's audit events (GDPR Article 17). Every event naming `subject` loses the value
/// and the salt of its commitment; the commitment stays in the chain, so `GET
/// /v1/audit/verify` still answers intact, and nobody can tell the value back from it
/// (docs/PRIVACY.md). Another organization's events are never touched.
#[utoipa::path(post, path = "/v1/audit/erase", tag = TAG_ADMIN, security(("api_token" = [])),
    request_body = EraseSubject,
    responses((status = 200, description = "Erased", body = Erased),
        AdminErrors, BodyErrors))]
pub(crate) async fn erase_audit_subject(
    caller: Caller,
    State(state): State<AppState>,
    StrictJson(req): StrictJson<EraseSubject>,
) -> ApiResult<Json<Erased>> {
    caller.require(Action::Administer)?;
    if req.subject.is_empty() || req.subject.chars().count() > 256 {
        return Err(ApiError::invalid(
            ErrorCode::InvalidField,
            "`subject` must be 1 to 256 characters",
        ));
    }
    let erased = state
        .db()
        .erase_subject(&caller.organization_id, &req.subject)
        .await?;
    tracing::info!(erased, "audit subject erased");
    Ok(Json(Erased { erased }))
}
