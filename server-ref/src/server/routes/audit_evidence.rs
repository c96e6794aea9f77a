//! The audit evidence (issue 24; roles `admin` and `auditor`, [`Action::Audit`]): the trail in
//! CEF (a download by period and a feed by cursor), the signed checkpoints of the chains
//! (listed and made on demand), and the one-click audit package (one zip for a vendor audit,
//! checked offline by `licensing-server audit verify-package`). Every answer holds the caller's
//! organization's entries only.

use axum::body::Body;
use axum::extract::Query;
use axum::http::HeaderValue;
use axum::response::Response;

use super::*;
use crate::server::cef;
use crate::server::checkpoints::{self, RunCheckpoint, Scope};
use crate::server::db::{AuditEntry, AuditEventRow, SignedCheckpointRow};
use crate::server::package;

/// Lines one `GET /v1/audit/cef` download holds at most (per chain); beyond, the answer says
/// `Licensing-Truncated: true` (ask again from a later `from`, or use the feed's cursor).
pub(crate) const MAX_CEF_DOWNLOAD: i64 = 100_000;
/// Lines one `GET /v1/audit/cef/feed` answers at most.
const MAX_FEED_LIMIT: i64 = 1000;
/// Lines answered by a feed when `limit` is not given.
const DEFAULT_FEED_LIMIT: i64 = 100;
/// Rows read per statement.
const PAGE: i64 = 1000;
/// Default period of a download or a package: the 30 days up to `to`.
const DEFAULT_PERIOD_SECS: i64 = 30 * 86_400;
/// The answer's header naming the cursor to continue from.
pub(crate) const NEXT_AFTER_HEADER: &str = "licensing-next-after";
/// The answer's header saying a download hit [`MAX_CEF_DOWNLOAD`].
pub(crate) const TRUNCATED_HEADER: &str = "licensing-truncated";

/// A period, in Unix seconds, both ends included.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct CefPeriod {
    /// Entries at or after this time (Unix seconds; default: 30 days before `to`).
    from: Option<i64>,
    /// Entries at or before this time (Unix seconds; default: now).
    to: Option<i64>,
    /// Whether the client events (`audit_events`) are included beside the admin entries
    /// (default true).
    events: Option<bool>,
}

fn period(from: Option<i64>, to: Option<i64>) -> ApiResult<(i64, i64)> {
    let to = to.unwrap_or_else(now);
    let from = from.unwrap_or_else(|| to.saturating_sub(DEFAULT_PERIOD_SECS));
    if from < 0 || from > to {
        return Err(ApiError::invalid(
            ErrorCode::InvalidField,
            "`from` must be 0 or more and not later than `to`",
        ));
    }
    Ok((from, to))
}

fn text_response(body: String, filename: Option<String>) -> ApiResult<Response> {
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Some(name) = filename {
        headers.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
                .map_err(ApiError::internal)?,
        );
    }
    Ok(response)
}

/// A file name part from an id: ASCII letters, digits, `-` and `_` kept, the rest `_`.
fn file_part(id: &str) -> String {
    id.chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// One organization's admin entries of a period, oldest first, at most `cap` (and whether
/// there were more).
async fn entries_of_period(
    state: &AppState,
    org: &str,
    (from, to): (i64, i64),
    cap: i64,
) -> ApiResult<(Vec<AuditEntry>, bool)> {
    let db = state.db();
    gather_by_seq(
        cap,
        |e: &AuditEntry| e.seq,
        |after, want| db.audit_entries_in_period(org, from, to, after, want),
    )
    .await
}

/// The same for the client events.
async fn events_of_period(
    state: &AppState,
    org: &str,
    (from, to): (i64, i64),
    cap: i64,
) -> ApiResult<(Vec<AuditEventRow>, bool)> {
    let db = state.db();
    gather_by_seq(
        cap,
        |e: &AuditEventRow| e.seq,
        |after, want| db.audit_events_in_period(org, from, to, after, want),
    )
    .await
}

/// Rows read `PAGE` at a time in `seq` order (`fetch(after, want)`: at most `want` rows with a
/// seq above `after`), at most `cap` of them, and whether there were more.
async fn gather_by_seq<T, E, Fut>(
    cap: i64,
    seq: impl Fn(&T) -> i64,
    mut fetch: impl FnMut(i64, i64) -> Fut,
) -> ApiResult<(Vec<T>, bool)>
where
    Fut: std::future::Future<Output = Result<Vec<T>, E>>,
    ApiError: From<E>,
{
    let mut out: Vec<T> = Vec::new();
    let mut after = 0;
    loop {
        let want = PAGE.min(cap + 1 - i64::try_from(out.len()).unwrap_or(i64::MAX));
        let page = fetch(after, want).await?;
        let done = i64::try_from(page.len()).unwrap_or(i64::MAX) < want;
        if let Some(last) = page.last() {
            after = seq(last);
        }
        out.extend(page);
        if i64::try_from(out.len()).unwrap_or(i64::MAX) > cap {
            out.truncate(usize::try_from(cap).unwrap_or(usize::MAX));
            return Ok((out, true));
        }
        if done {
            return Ok((out, false));
        }
    }
}

/// Admin entries and client events as CEF lines, merged by time (then admin entries first,
/// then by seq), each line ending in `\n`.
pub(crate) fn cef_lines(entries: &[AuditEntry], events: &[AuditEventRow]) -> String {
    let mut lines: Vec<(i64, u8, i64, String)> = entries
        .iter()
        .map(|e| (e.at, 0, e.seq, cef::admin_line(e)))
        .chain(events.iter().map(|e| (e.at, 1, e.seq, cef::event_line(e))))
        .collect();
    lines.sort_by_key(|a| (a.0, a.1, a.2));
    let mut out = String::new();
    for (_, _, _, line) in lines {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// `GET /v1/audit/cef?from&to&events`: the caller's organization's audit trail of a period as
/// a CEF file (`text/plain`, one event per line, an attachment): its admin entries and, unless
/// `events=false`, its client events, in time order. At most 100 000 lines of each chain: past
/// that, `Licensing-Truncated: true` (ask again from a later `from`).
#[utoipa::path(get, path = "/v1/audit/cef", tag = TAG_ADMIN, security(("api_token" = [])),
    params(CefPeriod),
    responses((status = 200, description = "The period's entries in CEF:0, one per line",
            content_type = "text/plain", body = String,
            headers(("Content-Disposition" = String, description = "attachment; filename=\"audit-<org>-<from>-<to>.cef\""),
                ("Licensing-Truncated" = String, description = "`true` when the period held more than 100 000 lines of a chain"))),
        (status = 403, description = "Not an admin or auditor", body = ErrorBody),
        (status = 422, description = "`from` later than `to`, or negative", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn audit_cef(
    caller: Caller,
    State(state): State<AppState>,
    Query(query): Query<CefPeriod>,
) -> ApiResult<Response> {
    caller.require(Action::Audit)?;
    let span = period(query.from, query.to)?;
    let org = &caller.organization_id;
    let (entries, more) = entries_of_period(&state, org, span, MAX_CEF_DOWNLOAD).await?;
    let (events, more_events) = if query.events.unwrap_or(true) {
        events_of_period(&state, org, span, MAX_CEF_DOWNLOAD).await?
    } else {
        (Vec::new(), false)
    };
    let name = format!("audit-{}-{}-{}.cef", file_part(org), span.0, span.1);
    let mut response = text_response(cef_lines(&entries, &events), Some(name))?;
    if more || more_events {
        response
            .headers_mut()
            .insert(TRUNCATED_HEADER, HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// A page of the CEF feed.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct CefFeed {
    /// `audit_log` (the admin entries, default) or `audit_events` (the client events).
    chain: Option<String>,
    /// Entries with a larger `seq` (default 0: from the first): the previous answer's
    /// `Licensing-Next-After`.
    #[param(minimum = 0)]
    after: Option<i64>,
    /// At most this many lines (default 100; more than 1000 is taken as 1000).
    #[param(minimum = 1)]
    limit: Option<i64>,
}

/// `GET /v1/audit/cef/feed?chain&after&limit`: the caller's organization's entries of one chain
/// with `seq > after` as CEF lines (`text/plain`, oldest first), for a SIEM collector that
/// polls: the answer's `Licensing-Next-After` header is the cursor of the next call (the last
/// line's seq, or `after` when there is nothing new).
#[utoipa::path(get, path = "/v1/audit/cef/feed", tag = TAG_ADMIN, security(("api_token" = [])),
    params(CefFeed),
    responses((status = 200, description = "CEF:0 lines, oldest first", content_type = "text/plain",
            body = String,
            headers(("Licensing-Next-After" = i64, description = "The `after` of the next call"))),
        (status = 403, description = "Not an admin or auditor", body = ErrorBody),
        (status = 422, description = "`after` negative, `limit` below 1, or an unknown `chain`", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn audit_cef_feed(
    caller: Caller,
    State(state): State<AppState>,
    Query(query): Query<CefFeed>,
) -> ApiResult<Response> {
    caller.require(Action::Audit)?;
    let after = query.after.unwrap_or(0);
    let limit = query.limit.unwrap_or(DEFAULT_FEED_LIMIT);
    if after < 0 || limit < 1 {
        return Err(ApiError::invalid(
            ErrorCode::InvalidField,
            "`after` must be at least 0 and `limit` at least 1",
        ));
    }
    let limit = limit.min(MAX_FEED_LIMIT);
    let org = &caller.organization_id;
    let (body, next) = match query.chain.as_deref().unwrap_or("audit_log") {
        "audit_log" => {
            let entries = state.db().list_audit(org, after, limit).await?;
            let next = entries.last().map_or(after, |e| e.seq);
            (cef_lines(&entries, &[]), next)
        }
        "audit_events" => {
            let events = state
                .db()
                .list_audit_events(org, None, after, limit)
                .await?;
            let next = events.last().map_or(after, |e| e.seq);
            (cef_lines(&[], &events), next)
        }
        _ => {
            return Err(ApiError::invalid(
                ErrorCode::InvalidField,
                "`chain` must be `audit_log` or `audit_events`",
            ));
        }
    };
    let mut response = text_response(body, None)?;
    response
        .headers_mut()
        .insert(NEXT_AFTER_HEADER, HeaderValue::from(next));
    Ok(response)
}

/// A page of checkpoints.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct CheckpointPage {
    /// Checkpoints with a larger `id` (default 0: from the first).
    #[param(minimum = 0)]
    after: Option<i64>,
    /// At most this many (default 100; more than 1000 is taken as 1000).
    #[param(minimum = 1)]
    limit: Option<i64>,
}

/// Signed checkpoints, oldest first.
#[derive(Serialize, ToSchema)]
pub(crate) struct CheckpointList {
    checkpoints: Vec<SignedCheckpointRow>,
}

/// `GET /v1/audit/checkpoints?after&limit`: the signed checkpoints of the caller's
/// organization (and, for the operator organization, the server's: `organization_id` null),
/// oldest first. Each `token` is an `audit-checkpoint+jwt` that verifies with the keys of
/// `/.well-known/jwks.json` (docs/FORMAT.md).
#[utoipa::path(get, path = "/v1/audit/checkpoints", tag = TAG_ADMIN, security(("api_token" = [])),
    params(CheckpointPage),
    responses((status = 200, description = "The checkpoints", body = CheckpointList),
        (status = 403, description = "Not an admin or auditor", body = ErrorBody),
        (status = 422, description = "`after` negative or `limit` below 1", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn list_checkpoints(
    caller: Caller,
    State(state): State<AppState>,
    Query(page): Query<CheckpointPage>,
) -> ApiResult<Json<CheckpointList>> {
    caller.require(Action::Audit)?;
    let after = page.after.unwrap_or(0);
    let limit = page.limit.unwrap_or(DEFAULT_FEED_LIMIT);
    if after < 0 || limit < 1 {
        return Err(ApiError::invalid(
            ErrorCode::InvalidField,
            "`after` must be at least 0 and `limit` at least 1",
        ));
    }
    let checkpoints = state
        .db()
        .list_signed_checkpoints(
            &caller.organization_id,
            caller.operator,
            after,
            limit.min(MAX_FEED_LIMIT),
        )
        .await?;
    Ok(Json(CheckpointList { checkpoints }))
}

/// What `POST /v1/audit/checkpoints` signed.
#[derive(Serialize, ToSchema)]
pub(crate) struct CheckpointRun {
    /// The organization's checkpoint (and the server's, for the operator): new ones with
    /// `created` true, else the last one (the chain has not moved since).
    checkpoints: Vec<RunCheckpoint>,
}

/// `POST /v1/audit/checkpoints` (admins; auditors are read-only): signs a checkpoint of the caller's
/// organization's entries now (and of the whole server's chains, for the operator
/// organization), unless nothing was added since the last one, which is then answered (200).
/// The request's own audit entry is written after the answer: the next checkpoint covers it.
#[utoipa::path(post, path = "/v1/audit/checkpoints", tag = TAG_ADMIN, security(("api_token" = [])),
    responses((status = 201, description = "A checkpoint signed", body = CheckpointRun),
        (status = 200, description = "Nothing new: the last checkpoints", body = CheckpointRun),
        (status = 403, description = "Not an admin", body = ErrorBody),
        AdminErrors))]
pub(crate) async fn create_checkpoint(
    caller: Caller,
    State(state): State<AppState>,
) -> ApiResult<(StatusCode, Json<CheckpointRun>)> {
    caller.require(Action::Administer)?;
    let checkpoints = checkpoints::run_once(
        &state,
        Scope::Organization {
            id: &caller.organization_id,
            with_server: caller.operator,
        },
        now(),
    )
    .await?;
    let status = if checkpoints.iter().any(|c| c.created) {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(CheckpointRun { checkpoints })))
}

/// The period of an audit package.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PackagePeriod {
    /// Entries at or after this time (Unix seconds; default: 30 days before `to`).
    from: Option<i64>,
    /// Entries at or before this time (Unix seconds; default: now).
    to: Option<i64>,
}

/// `GET /v1/audit/package?from&to` (admins and auditors): the one-click audit package, one
/// zip (`application/zip`, an attachment) holding the caller's organization's admin entries of
/// the period (JSON lines and CEF; extended to the ranges of the checkpoints that cover them),
/// its client events of the period, those checkpoints, the compliance report
/// (`GET /v1/alerts`), its licenses with their terms and signed tokens (withheld from an
/// auditor, as `GET /v1/licenses` does: `token_withheld`), the server's JWKS and a
/// README.txt on verifying it offline (`licensing-server audit verify-package FILE`). Layout in
/// docs/FORMAT.md. At most 200 000 entries and events each; 422 past that (a shorter period).
#[utoipa::path(get, path = "/v1/audit/package", tag = TAG_ADMIN, security(("api_token" = [])),
    params(PackagePeriod),
    responses((status = 200, description = "The package", content_type = "application/zip",
            body = Vec<u8>,
            headers(("Content-Disposition" = String, description = "attachment; filename=\"audit-package-<org>-<from>-<to>.zip\""))),
        (status = 403, description = "Not an admin or auditor", body = ErrorBody),
        (status = 422, description = "`from` later than `to`, or the period holds too much for one package", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn audit_package(
    caller: Caller,
    State(state): State<AppState>,
    Query(query): Query<PackagePeriod>,
) -> ApiResult<Response> {
    caller.require(Action::Audit)?;
    let (from, to) = period(query.from, query.to)?;
    let org = caller.organization_id.clone();
    let db = state.db();
    let too_much = || {
        ApiError::invalid(
            ErrorCode::InvalidField,
            format!(
                "the period holds more than {} entries or events: ask for a shorter one",
                package::MAX_ENTRIES
            ),
        )
    };
    // The checkpoints covering the period's entries, and the entries of their ranges.
    let mut checkpoints = Vec::new();
    let mut entries = Vec::new();
    if let Some((first, last)) = db.audit_seq_span(&org, from, to).await? {
        for row in db
            .checkpoints_from(&org, first, package::MAX_CHECKPOINTS)
            .await?
        {
            let reached = row.seq >= last;
            checkpoints.push(row);
            if reached {
                break;
            }
        }
        let lo = checkpoints
            .iter()
            .filter_map(|c| package::prev_seq_of(&c.token))
            .min()
            .map_or(first - 1, |prev| prev.min(first - 1));
        let hi = checkpoints
            .iter()
            .map(|c| c.seq)
            .max()
            .unwrap_or(last)
            .max(last);
        let mut after = lo;
        loop {
            let page = db.audit_entries_between(&org, after, hi, PAGE).await?;
            let done = i64::try_from(page.len()).unwrap_or(i64::MAX) < PAGE;
            if let Some(last) = page.last() {
                after = last.seq;
            }
            entries.extend(page);
            if entries.len() > package::MAX_ENTRIES {
                return Err(too_much());
            }
            if done {
                break;
            }
        }
    }
    let max = i64::try_from(package::MAX_ENTRIES).unwrap_or(i64::MAX);
    let (events, more) = events_of_period(&state, &org, (from, to), max).await?;
    if more {
        return Err(too_much());
    }
    let Json(alerts) = list_alerts(
        caller.clone(),
        State(state.clone()),
        Query(AlertWindow::default_window()),
    )
    .await?;
    let licenses = db
        .license_page(
            &org,
            &crate::server::db::LicensePage::First,
            None,
            package::MAX_LICENSES,
        )
        .await?
        .iter()
        .map(|row| package::license_json(row, caller.may(Action::ManageLicenses)))
        .collect::<Vec<_>>();
    let generated_at = now();
    let contents = package::Contents {
        organization: &org,
        issuer: state.issuer(),
        from,
        to,
        generated_at,
        entries: &entries,
        events: &events,
        checkpoints: &checkpoints,
        compliance: serde_json::to_value(&alerts).map_err(ApiError::internal)?,
        licenses,
        jwks: package::jwks_for(&state, &checkpoints).await?,
        cef: cef_lines(&entries, &events),
    };
    let zip = package::build(&contents).map_err(ApiError::internal)?;
    let mut response = Response::new(Body::from(zip));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&format!(
            "attachment; filename=\"audit-package-{}-{from}-{to}.zip\"",
            file_part(&org)
        ))
        .map_err(ApiError::internal)?,
    );
    Ok(response)
}
