//! The console's pages and form actions. Each calls the admin API's handler function for what
//! it shows or changes, as the session's caller, and renders the JSON view.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::super::extract::{Action, Role, StrictJson};
use super::super::{AppState, now, routes, secrets};
use super::session::{self, PRE_COOKIE, SESSION_COOKIE, Session, SignIn};
use super::{ConsoleError, render};

type Page = Result<Response, ConsoleError>;

/// A handler's JSON view as a template value.
pub(super) fn view<T: serde::Serialize>(value: T) -> Result<Value, ConsoleError> {
    serde_json::to_value(value).map_err(|e| ConsoleError::Internal(e.to_string()))
}

/// A handler's query from JSON.
pub(super) fn query<T: DeserializeOwned>(value: Value) -> Result<Query<T>, ConsoleError> {
    serde_json::from_value(value)
        .map(Query)
        .map_err(|e| ConsoleError::Internal(e.to_string()))
}

/// What every signed-in page shows: who is signed in, the CSRF token of its forms, the page.
/// [`frame`] of `context` with the fields of `extra` (a notice, a warning, a key shown once)
/// added.
pub(super) fn frame_with(session: &Session, page: &str, mut context: Value, extra: Value) -> Value {
    if let (Some(map), Value::Object(extra)) = (context.as_object_mut(), extra) {
        map.extend(extra);
    }
    frame(session, page, context)
}

pub(super) fn frame(session: &Session, page: &str, mut context: Value) -> Value {
    if let Some(map) = context.as_object_mut() {
        map.insert("account".into(), json!(session.stored.user_name));
        map.insert("role".into(), json!(session.stored.role));
        map.insert("csrf".into(), json!(session.stored.csrf));
        map.insert("page".into(), json!(page));
        map.insert(
            "may_operate".into(),
            json!(session.caller.may(Action::Operate)),
        );
        map.insert(
            "may_manage".into(),
            json!(session.caller.may(Action::ManageLicenses)),
        );
        map.insert(
            "may_administer".into(),
            json!(session.caller.may(Action::Administer)),
        );
    }
    context
}

fn html(status: StatusCode, page: Html<String>) -> Response {
    (status, page).into_response()
}

// ---- setup and sign-in -------------------------------------------------------------------

/// Request parts holding `headers` (what the cookie reader takes).
pub(super) fn parts_of(headers: axum::http::HeaderMap) -> axum::http::request::Parts {
    let mut req = axum::http::Request::new(());
    *req.headers_mut() = headers;
    req.into_parts().0
}

/// A pre-session CSRF token: the one in the cookie, or a new one set with the page.
fn pre_token(headers: &axum::http::HeaderMap) -> Result<(String, bool), ConsoleError> {
    let parts = parts_of(headers.clone());
    match session::cookie(&parts, PRE_COOKIE) {
        Some(token) if !token.is_empty() => Ok((token.to_owned(), false)),
        _ => Ok((session::new_secret()?, true)),
    }
}

fn with_pre_cookie(mut response: Response, token: &str, new: bool) -> Response {
    if new && let Ok(value) = session::set_cookie(PRE_COOKIE, token, 3600).parse() {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

fn pre_matches(headers: &axum::http::HeaderMap, sent: &str) -> bool {
    pre_token(headers).is_ok_and(|(token, new)| !new && session::same_secret(&token, sent))
}

pub(super) fn signed_in(secret: &str) -> Response {
    let mut response = Redirect::to("/console/").into_response();
    let cookie = session::set_cookie(SESSION_COOKIE, secret, session::ABSOLUTE_TIMEOUT_SECS);
    if let Ok(value) = cookie.parse() {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// `GET /console/setup`: the first account, only while none exists.
pub(crate) async fn setup_form(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Page {
    if state.db().console_account_count().await? > 0 {
        return Err(ConsoleError::SignIn);
    }
    let (token, new) = pre_token(&headers)?;
    let page = render("setup.html", json!({ "csrf": token }))?;
    Ok(with_pre_cookie(html(StatusCode::OK, page), &token, new))
}

#[derive(Deserialize)]
pub(crate) struct SetupForm {
    csrf: String,
    token: String,
    user_name: String,
    password: String,
}

/// `POST /console/setup`: the bootstrap admin API token proves the operator; the account is
/// an admin of the token's organization.
pub(crate) async fn setup(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    Form(form): Form<SetupForm>,
) -> Page {
    let db = state.db();
    if db.console_account_count().await? > 0 {
        return Err(ConsoleError::SignIn);
    }
    if !pre_matches(&headers, &form.csrf) {
        return Err(ConsoleError::Forbidden(
            "The form is stale. Reload the page and try again.".into(),
        ));
    }
    let again = |message: String| -> Page {
        let page = render("setup.html", json!({ "csrf": form.csrf, "error": message }))?;
        Ok(html(StatusCode::UNPROCESSABLE_ENTITY, page))
    };
    let grant = db
        .api_token_grant(&secrets::sha256_hex(form.token.trim().as_bytes()))
        .await?;
    let Some(grant) = grant.filter(|g| g.role == Role::Admin.as_str()) else {
        return again("That is not an admin API token of this server.".into());
    };
    if !licensing_core::claims::is_display_name(&form.user_name) {
        return again("The user name must be 1 to 200 characters.".into());
    }
    if let Some(problem) = session::password_problem(&form.password) {
        return again(problem);
    }
    let hash = session::hash_password(&form.password).map_err(ConsoleError::Internal)?;
    let id = secrets::new_id("acc").map_err(ConsoleError::Internal)?;
    let created = db
        .insert_console_account(
            &id,
            &grant.organization_id,
            form.user_name.trim(),
            &hash,
            Role::Admin.as_str(),
            now(),
        )
        .await?;
    if !created {
        return again("That user name is taken.".into());
    }
    tracing::info!(account = %id, "first console account created");
    let secret = session::start_session(&state, &id).await?;
    Ok(signed_in(&secret))
}

/// `GET /console/sign-in`.
pub(crate) async fn sign_in_form(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Page {
    if state.db().console_account_count().await? == 0 {
        return Err(ConsoleError::Setup);
    }
    let (token, new) = pre_token(&headers)?;
    let page = render("sign_in.html", json!({ "csrf": token }))?;
    Ok(with_pre_cookie(html(StatusCode::OK, page), &token, new))
}

#[derive(Deserialize)]
pub(crate) struct SignInForm {
    csrf: String,
    user_name: String,
    password: String,
}

/// `POST /console/sign-in`.
pub(crate) async fn sign_in(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    Form(form): Form<SignInForm>,
) -> Page {
    if !pre_matches(&headers, &form.csrf) {
        return Err(ConsoleError::Forbidden(
            "The form is stale. Reload the page and try again.".into(),
        ));
    }
    let refused = |message: &str| -> Page {
        let page = render(
            "sign_in.html",
            json!({ "csrf": form.csrf, "error": message, "user_name": form.user_name }),
        )?;
        Ok(html(StatusCode::UNAUTHORIZED, page))
    };
    match session::sign_in(&state, form.user_name.trim(), &form.password).await? {
        SignIn::Started(secret) => Ok(signed_in(&secret)),
        SignIn::Refused => refused("Wrong user name or password."),
        SignIn::Locked => refused(
            "Too many failed sign-ins: this account is locked for 15 minutes. An admin can reset it.",
        ),
    }
}

#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    pub(super) csrf: String,
}

/// `POST /console/sign-out`.
pub(crate) async fn sign_out(
    State(state): State<AppState>,
    session: Session,
    headers: axum::http::HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Page {
    session.check_csrf(&form.csrf)?;
    let parts = parts_of(headers);
    if let Some(secret) = session::cookie(&parts, SESSION_COOKIE) {
        state
            .db()
            .delete_console_session(&secrets::sha256_hex(secret.as_bytes()))
            .await?;
    }
    let mut response = Redirect::to("/console/sign-in").into_response();
    if let Ok(value) = session::set_cookie(SESSION_COOKIE, "", 0).parse() {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    Ok(response)
}

// ---- pages ---------------------------------------------------------------------------------

/// The busiest licenses drawn as utilisation bars.
const BARS: i64 = 20;

/// `GET /console/`: compliance alerts (warnings first), seat utilisation of the busiest
/// floating licenses, licenses expiring soon, denials per day over 60 days.
pub(crate) async fn overview(State(state): State<AppState>, session: Session) -> Page {
    let caller = &session.caller;
    let alerts = routes::list_alerts(caller.clone(), State(state.clone()), query(json!({}))?)
        .await?
        .0;
    let denials = routes::denials_report(caller.clone(), State(state.clone()), query(json!({}))?)
        .await?
        .0;
    // The busiest licenses and their rows: two statements, not one per bar. A bar's seats are
    // the license's seat count, as the leases view answers it (`GET /v1/licenses/{id}/leases`).
    let busiest = state
        .db()
        .busiest_licenses(&caller.organization_id, now(), BARS)
        .await?;
    let ids: Vec<&str> = busiest.iter().map(|(id, _)| id.as_str()).collect();
    let rows = state
        .db()
        .licenses_among(&caller.organization_id, &ids)
        .await?;
    let mut bars = Vec::new();
    for (license_id, live) in &busiest {
        let seats = rows
            .get(license_id)
            .and_then(|row| routes::template_seats(row).ok())
            .unwrap_or(0);
        bars.push(json!({ "license_id": license_id, "live": live, "seats": seats }));
    }
    let denials = view(denials)?;
    let series = denial_days(&denials, now());
    let max_day = series
        .iter()
        .filter_map(|d| d["count"].as_i64())
        .max()
        .unwrap_or(0);
    let context = frame(
        &session,
        "overview",
        json!({ "alerts": view(alerts)?, "bars": bars, "denials": denials, "days": series,
                "max_day": max_day }),
    );
    Ok(html(StatusCode::OK, render("overview.html", context)?))
}

/// Days the denial chart spans (the retention of denials).
const CHART_DAYS: i64 = 60;

/// One `{date, count}` per UTC day of the last [`CHART_DAYS`] up to `now`, oldest first: the
/// report's counts, and 0 for a day it does not list.
fn denial_days(report: &Value, now: i64) -> Vec<Value> {
    let counts: std::collections::HashMap<&str, i64> = report["per_day"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| Some((d["date"].as_str()?, d["count"].as_i64()?)))
        .collect();
    (0..CHART_DAYS)
        .rev()
        .map(|back| {
            let date = super::utc_day(now - back * 86_400);
            let count = counts.get(date.as_str()).copied().unwrap_or(0);
            json!({ "date": date, "count": count })
        })
        .collect()
}

#[derive(Deserialize)]
pub(crate) struct Search {
    q: Option<String>,
    after: Option<String>,
    before: Option<String>,
}

/// Licenses shown per page of the list.
const LICENSE_PAGE: i64 = 50;

/// `GET /console/licenses?q=&after=&before=`: the organization's licenses newest first, 50 a
/// page by cursor (the API's keyset paging, Next and Previous links), searched by the API (the
/// license id, its key or the key's last group, the customer's name, a user).
pub(crate) async fn licenses(
    State(state): State<AppState>,
    session: Session,
    Query(search): Query<Search>,
) -> Page {
    let q = search.q.unwrap_or_default().trim().to_owned();
    let mut filter = json!({ "limit": LICENSE_PAGE });
    for (name, value) in [("after", &search.after), ("before", &search.before)] {
        if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
            filter[name] = json!(value);
        }
    }
    if !q.is_empty() {
        filter["q"] = json!(q);
    }
    let list = view(
        routes::list_licenses(session.caller.clone(), State(state.clone()), query(filter)?)
            .await?
            .0,
    )?;
    let policies = view(
        routes::list_policies(session.caller.clone(), State(state.clone()))
            .await?
            .0,
    )?;
    let context = frame(
        &session,
        "licenses",
        json!({ "licenses": list["licenses"], "q": q, "next": list["next"],
                "previous": list["previous"], "policies": policies["policies"] }),
    );
    Ok(html(StatusCode::OK, render("licenses.html", context)?))
}

#[derive(Deserialize)]
pub(crate) struct NewLicenseForm {
    csrf: String,
    policy_id: String,
    customer: Option<String>,
}

/// `POST /console/licenses`: issues a license of a policy; the page shows its key, once (the
/// server keeps only its hash).
pub(crate) async fn create_license(
    State(state): State<AppState>,
    session: Session,
    Form(form): Form<NewLicenseForm>,
) -> Page {
    session.check_csrf(&form.csrf)?;
    let mut body = json!({ "policy_id": form.policy_id });
    if let Some(customer) = form
        .customer
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        body["customer"] = json!({ "name": customer });
    }
    let request =
        serde_json::from_value(body).map_err(|e| ConsoleError::Internal(e.to_string()))?;
    let (_, created) = routes::create_license(
        session.caller.clone(),
        State(state.clone()),
        StrictJson(request),
    )
    .await?;
    let created = view(created.0)?;
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    let extra = json!({ "new_key": created["key"] });
    license_page(&state, &session, &id, StatusCode::CREATED, extra).await
}

#[derive(Deserialize)]
pub(crate) struct ChangeForm {
    csrf: String,
    /// The revocation's confirmation (a checkbox: `on`).
    confirm: Option<String>,
}

/// `POST /console/licenses/{id}/{change}`: suspend, reinstate or revoke (confirmed).
pub(crate) async fn change_license(
    State(state): State<AppState>,
    session: Session,
    Path((id, change)): Path<(String, String)>,
    Form(form): Form<ChangeForm>,
) -> Page {
    session.check_csrf(&form.csrf)?;
    let caller = session.caller.clone();
    let st = State(state.clone());
    let path = Path(id.clone());
    let done = match change.as_str() {
        "suspend" => routes::suspend_license(caller, st, path).await?,
        "reinstate" => routes::reinstate_license(caller, st, path).await?,
        "revoke" if form.confirm.as_deref() == Some("on") => {
            routes::revoke_license(caller, st, path).await?
        }
        "revoke" => {
            let extra = json!({ "warning": "Tick the box to confirm the revocation: it cannot be undone." });
            return license_page(
                &state,
                &session,
                &id,
                StatusCode::UNPROCESSABLE_ENTITY,
                extra,
            )
            .await;
        }
        _ => return Err(ConsoleError::Api(routes::not_found().await)),
    };
    let status = view(done.0)?["status"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let extra = json!({ "notice": format!("The license is {status}.") });
    license_page(&state, &session, &id, StatusCode::OK, extra).await
}

/// `GET /console/licenses/{id}`: the license with its machines, live leases (each with a log
/// out button), denials, seat assignments and audit entries.
pub(crate) async fn license(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> Page {
    license_page(&state, &session, &id, StatusCode::OK, json!({})).await
}

pub(super) async fn license_page(
    state: &AppState,
    session: &Session,
    id: &str,
    status: StatusCode,
    extra: Value,
) -> Page {
    let caller = &session.caller;
    let st = || State(state.clone());
    let license = view(
        routes::get_license(caller.clone(), st(), Path(id.to_owned()))
            .await?
            .0,
    )?;
    let machines = view(
        routes::list_machines(caller.clone(), st(), Path(id.to_owned()))
            .await?
            .0,
    )?;
    let leases = view(
        routes::list_leases(caller.clone(), st(), Path(id.to_owned()))
            .await?
            .0,
    )?;
    let denials = view(
        routes::list_denials(caller.clone(), st(), Path(id.to_owned()), query(json!({}))?)
            .await?
            .0,
    )?;
    let assignments = view(
        routes::list_assignments(caller.clone(), st(), Path(id.to_owned()))
            .await?
            .0,
    )?;
    // The license's own API routes (`/v1/licenses/{id}…`) and console forms
    // (`/console/licenses/{id}…`), read by the API on an index.
    let audit = view(
        routes::list_audit(
            caller.clone(),
            st(),
            query(json!({ "limit": 1000, "license": id }))?,
        )
        .await?
        .0,
    )?;
    let audit = audit["entries"].clone();
    let context = json!({
        "license": license, "machines": machines, "leases": leases, "denials": denials,
        "assignments": assignments, "audit": audit,
    });
    let context = frame_with(session, "licenses", context, extra);
    Ok(html(status, render("license.html", context)?))
}

/// `POST /console/licenses/{id}/leases/{lease_id}/release`: the force-release (log out).
pub(crate) async fn release_lease(
    State(state): State<AppState>,
    session: Session,
    Path((id, lease_id)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Page {
    session.check_csrf(&form.csrf)?;
    let _released = routes::force_release(
        session.caller.clone(),
        State(state),
        Path((id.clone(), lease_id)),
    )
    .await?;
    Ok(Redirect::to(&format!("/console/licenses/{id}")).into_response())
}

#[derive(Deserialize)]
pub(crate) struct TimeoutForm {
    csrf: String,
    minutes: String,
}

/// `POST /console/licenses/{id}/lease-timeout`: the lease timeout in minutes; the server's
/// bounds (5 to 60 minutes) refuse anything else, shown as a warning.
pub(crate) async fn lease_timeout(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<TimeoutForm>,
) -> Page {
    session.check_csrf(&form.csrf)?;
    let warning = |message: String| json!({ "warning": message });
    let Ok(minutes) = form.minutes.trim().parse::<i64>() else {
        let extra =
            warning("The lease timeout must be a whole number of minutes, 5 to 60 minutes.".into());
        return license_page(
            &state,
            &session,
            &id,
            StatusCode::UNPROCESSABLE_ENTITY,
            extra,
        )
        .await;
    };
    let body = serde_json::from_value(json!({ "seconds": minutes.saturating_mul(60) }))
        .map_err(|e| ConsoleError::Internal(e.to_string()))?;
    match routes::set_lease_timeout(
        session.caller.clone(),
        State(state.clone()),
        Path(id.clone()),
        StrictJson(body),
    )
    .await
    {
        Ok(_) => {
            let extra = json!({ "notice": format!("The lease timeout is {minutes} minutes.") });
            license_page(&state, &session, &id, StatusCode::OK, extra).await
        }
        Err(error) if error.status() == StatusCode::UNPROCESSABLE_ENTITY => {
            let extra = warning(format!(
                "Out of spec: {minutes} minutes. The lease timeout must be 5 to 60 minutes."
            ));
            license_page(
                &state,
                &session,
                &id,
                StatusCode::UNPROCESSABLE_ENTITY,
                extra,
            )
            .await
        }
        Err(error) => Err(error.into()),
    }
}

#[derive(Deserialize)]
pub(crate) struct AuditQuery {
    verify: Option<String>,
    /// The cursor: entries after this `seq`.
    after: Option<i64>,
    actor: Option<String>,
    action: Option<String>,
    target: Option<String>,
    /// `YYYY-MM-DD` (UTC), inclusive.
    from: Option<String>,
    /// `YYYY-MM-DD` (UTC), inclusive.
    to: Option<String>,
}

/// Entries read per audit page (the API's most).
const AUDIT_PAGE: i64 = 1000;

/// Whether entry `e` passes the page's filters (text filters ignore case; dates are the UTC
/// day of `at`).
fn audit_matches(e: &Value, q: &AuditQuery) -> bool {
    let text = |field: &str, wanted: &Option<String>| {
        wanted
            .as_deref()
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .is_none_or(|w| {
                e[field]
                    .as_str()
                    .is_some_and(|v| v.to_lowercase().contains(&w.to_lowercase()))
            })
    };
    let day = e["at"].as_i64().map(super::utc_day).unwrap_or_default();
    let from = q.from.as_deref().map(str::trim).filter(|d| !d.is_empty());
    let to = q.to.as_deref().map(str::trim).filter(|d| !d.is_empty());
    text("actor", &q.actor)
        && text("action", &q.action)
        && text("target", &q.target)
        && from.is_none_or(|from| day.as_str() >= from)
        && to.is_none_or(|to| day.as_str() <= to)
}

/// `GET /console/audit[?verify=1]`: the organization's audit entries (newest 1000), and the
/// chain's verification on request.
pub(crate) async fn audit(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<AuditQuery>,
) -> Page {
    let caller = &session.caller;
    let after = q.after.unwrap_or(0).max(0);
    let page = view(
        routes::list_audit(
            caller.clone(),
            State(state.clone()),
            query(json!({ "after": after, "limit": AUDIT_PAGE }))?,
        )
        .await?
        .0,
    )?;
    let read = page["entries"].as_array().cloned().unwrap_or_default();
    let next = (read.len() == usize::try_from(AUDIT_PAGE).unwrap_or(usize::MAX))
        .then(|| read.last().and_then(|e| e["seq"].as_i64()))
        .flatten();
    let entries: Vec<Value> = read.into_iter().filter(|e| audit_matches(e, &q)).collect();
    let verification = if q.verify.is_some() {
        Some(view(
            routes::verify_audit(caller.clone(), State(state), query(json!({}))?)
                .await?
                .0,
        )?)
    } else {
        None
    };
    let filters = json!({
        "actor": q.actor, "action": q.action, "target": q.target, "from": q.from, "to": q.to,
    });
    let context = frame(
        &session,
        "audit",
        json!({ "entries": entries, "verification": verification, "after": after,
                "next": next, "filters": filters }),
    );
    Ok(html(StatusCode::OK, render("audit.html", context)?))
}

#[derive(Deserialize)]
pub(crate) struct PeopleQuery {
    q: Option<String>,
    start: Option<i64>,
}

/// People shown per page.
const PEOPLE_PAGE: i64 = 50;

/// `GET /console/people?q=&start=`: the directory's users (the API's list, searched and paged)
/// and the assigned seats nobody has used lately (the reclamation preview).
pub(crate) async fn people(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<PeopleQuery>,
) -> Page {
    let caller = &session.caller;
    let search = q.q.unwrap_or_default();
    let start = q.start.unwrap_or(0).max(0);
    let mut filter = json!({ "start": start, "count": PEOPLE_PAGE });
    if !search.trim().is_empty() {
        filter["q"] = json!(search.trim());
    }
    let users = view(
        routes::list_users(caller.clone(), State(state.clone()), query(filter)?)
            .await?
            .0,
    )?;
    let idle = view(
        routes::preview_reclamation(caller.clone(), State(state.clone()))
            .await?
            .0,
    )?;
    let total = users["total"].as_i64().unwrap_or(0);
    let context = frame(
        &session,
        "people",
        json!({
            "users": users["users"], "total": total, "q": search, "start": start,
            "previous": (start > 0).then(|| (start - PEOPLE_PAGE).max(0)),
            "next": (start + PEOPLE_PAGE < total).then_some(start + PEOPLE_PAGE),
            "idle": idle["seats"],
        }),
    );
    Ok(html(StatusCode::OK, render("people.html", context)?))
}
