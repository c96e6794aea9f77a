//! The license page's actions beyond its status: the renewal (a new expiry date, confirmed)
//! and the license's settings (seating, borrowing, the wait line), each through the admin
//! API's handler as the session's caller. A value the API refuses is shown as a warning, the
//! way the lease-timeout form shows one.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::super::AppState;
use super::super::error::ApiError;
use super::super::extract::StrictJson;
use super::super::routes;
use super::ConsoleError;
use super::pages::license_page;
use super::session::Session;

type Page = Result<Response, ConsoleError>;

/// The license page with a warning (answered 422).
async fn warn(state: &AppState, session: &Session, id: &str, warning: String) -> Page {
    let extra = json!({ "warning": warning });
    license_page(state, session, id, StatusCode::UNPROCESSABLE_ENTITY, extra).await
}

/// The license page after a handler's answer: its notice, or the API's refusal of the value
/// as a warning (a 403 or 404 stays an error page), said in the form's units when `spec`
/// gives them (the API's own words follow).
async fn after(
    state: &AppState,
    session: &Session,
    id: &str,
    result: Result<String, ApiError>,
    spec: Option<String>,
) -> Page {
    match result {
        Ok(notice) => {
            let extra = json!({ "notice": notice });
            license_page(state, session, id, StatusCode::OK, extra).await
        }
        Err(error)
            if error.status() == StatusCode::UNPROCESSABLE_ENTITY
                || error.status() == StatusCode::CONFLICT =>
        {
            let warning = match &spec {
                Some(spec) => format!("Out of spec: {spec} (the server: {})", error.detail()),
                None => format!("Out of spec: {}", error.detail()),
            };
            let extra = json!({ "warning": warning });
            license_page(state, session, id, error.status(), extra).await
        }
        Err(error) => Err(error.into()),
    }
}

/// A request body from JSON the form built (a shape the form cannot miss).
fn body<T: DeserializeOwned>(value: Value) -> Result<T, ConsoleError> {
    serde_json::from_value(value).map_err(|e| ConsoleError::Internal(e.to_string()))
}

/// A whole number of a form; `Ok(None)` when empty, `Err` naming the field otherwise.
fn whole(field: &str, value: Option<&str>) -> Result<Option<i64>, String> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .parse::<i64>()
            .map(Some)
            .map_err(|_| format!("`{field}` must be a whole number")),
    }
}

/// The last second (UTC) of a `YYYY-MM-DD` day.
fn end_of_day(date: &str) -> Option<i64> {
    let mut parts = date.trim().splitn(3, '-');
    let year = parts.next()?.parse::<i32>().ok()?;
    let month = time::Month::try_from(parts.next()?.parse::<u8>().ok()?).ok()?;
    let day = parts.next()?.parse::<u8>().ok()?;
    let date = time::Date::from_calendar_date(year, month, day).ok()?;
    Some(date.midnight().assume_utc().unix_timestamp() + 86_399)
}

#[derive(Deserialize)]
pub(crate) struct RenewForm {
    csrf: String,
    /// `YYYY-MM-DD`: the license is valid through this UTC day.
    expires_on: String,
    /// The confirmation (a checkbox: `on`).
    confirm: Option<String>,
}

/// `POST /console/licenses/{id}/renew`: a new expiry (through the end of the chosen UTC day),
/// confirmed; the token is re-signed and clients pick it up at their next validation.
pub(crate) async fn renew(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<RenewForm>,
) -> Page {
    session.check_csrf(&form.csrf)?;
    let Some(expires_at) = end_of_day(&form.expires_on) else {
        let warning = "`expires_on` must be a date, YYYY-MM-DD.".to_owned();
        return warn(&state, &session, &id, warning).await;
    };
    if expires_at < super::super::now() {
        let warning = format!(
            "Out of spec: {} is past. A renewal ends on a day to come.",
            form.expires_on.trim()
        );
        return warn(&state, &session, &id, warning).await;
    }
    if form.confirm.as_deref() != Some("on") {
        let warning = "Tick the box to confirm the renewal.".to_owned();
        return warn(&state, &session, &id, warning).await;
    }
    let request = body(json!({ "expires_at": expires_at }))?;
    let result = routes::renew_license(
        session.caller.clone(),
        State(state.clone()),
        Path(id.clone()),
        StrictJson(request),
    )
    .await
    .map(|_| {
        format!(
            "The license is renewed through {} (UTC).",
            form.expires_on.trim()
        )
    });
    after(&state, &session, &id, result, None).await
}

#[derive(Deserialize)]
pub(crate) struct SeatingForm {
    csrf: String,
    seat_mode: String,
    /// A checkbox: `on`.
    allow_over_allocation: Option<String>,
    /// Days; empty: the policy's threshold.
    reclaim_days: Option<String>,
}

/// `POST /console/licenses/{id}/seating`: who may use the seats (`floating` or `named`),
/// whether assigning beyond the seats is allowed, and the reclamation threshold in days.
pub(crate) async fn seating(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<SeatingForm>,
) -> Page {
    session.check_csrf(&form.csrf)?;
    let days = match whole("reclaim_days", form.reclaim_days.as_deref()) {
        Ok(days) => days,
        Err(warning) => return warn(&state, &session, &id, warning).await,
    };
    if !matches!(form.seat_mode.as_str(), "floating" | "named") {
        let warning = "`seat_mode` must be floating or named.".to_owned();
        return warn(&state, &session, &id, warning).await;
    }
    // A negative number of days is sent as it is, for the API to refuse by name.
    let request = body(json!({
        "seat_mode": form.seat_mode,
        "allow_over_allocation": form.allow_over_allocation.as_deref() == Some("on"),
        "reclaim_after": days.map(|d| d.saturating_mul(86_400)).map(|s| s.max(0)),
    }))?;
    let result = routes::set_seating(
        session.caller.clone(),
        State(state.clone()),
        Path(id.clone()),
        StrictJson(request),
    )
    .await
    .map(|_| "The seat settings are saved.".to_owned());
    let spec = days.map(|d| format!("{d} days; a seat is reclaimed after 1 to 1095 days idle"));
    after(&state, &session, &id, result, spec).await
}

#[derive(Deserialize)]
pub(crate) struct BorrowingForm {
    csrf: String,
    /// Days, 0 to 30 (0: no borrowing).
    max_days: String,
    /// 0 to the license's seats.
    max_leases: String,
}

/// `POST /console/licenses/{id}/borrowing`: how long and how many seats may be borrowed.
pub(crate) async fn borrowing(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<BorrowingForm>,
) -> Page {
    session.check_csrf(&form.csrf)?;
    let numbers = whole("max_days", Some(&form.max_days))
        .and_then(|d| Ok((d, whole("max_leases", Some(&form.max_leases))?)));
    let (Some(days), Some(leases)) = (match numbers {
        Ok(numbers) => numbers,
        Err(warning) => return warn(&state, &session, &id, warning).await,
    }) else {
        let warning = "Give the days (0 to 30) and the number of leases.".to_owned();
        return warn(&state, &session, &id, warning).await;
    };
    let request = body(json!({
        "max_seconds": days.saturating_mul(86_400), "max_leases": leases,
    }))?;
    let result = routes::set_borrowing(
        session.caller.clone(),
        State(state.clone()),
        Path(id.clone()),
        StrictJson(request),
    )
    .await
    .map(|_| format!("Borrowing: up to {days} day(s), {leases} lease(s) at once."));
    let spec = format!(
        "{days} days, {leases} leases; borrowing is 0 to 30 days, at most the license's seats"
    );
    after(&state, &session, &id, result, Some(spec)).await
}

#[derive(Deserialize)]
pub(crate) struct QueueForm {
    csrf: String,
    /// Minutes, 0 to 1440 (0: no wait line).
    max_minutes: String,
}

/// `POST /console/licenses/{id}/queue`: how long a check-out may wait in line for a seat.
pub(crate) async fn queue(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<QueueForm>,
) -> Page {
    session.check_csrf(&form.csrf)?;
    let minutes = match whole("max_minutes", Some(&form.max_minutes)) {
        Ok(Some(minutes)) => minutes,
        Ok(None) => {
            let warning = "Give the minutes, 0 to 1440.".to_owned();
            return warn(&state, &session, &id, warning).await;
        }
        Err(warning) => return warn(&state, &session, &id, warning).await,
    };
    let request = body(json!({ "max_seconds": minutes.saturating_mul(60) }))?;
    let result = routes::set_queue(
        session.caller.clone(),
        State(state.clone()),
        Path(id.clone()),
        StrictJson(request),
    )
    .await
    .map(|_| format!("The wait line: up to {minutes} minute(s)."));
    let spec = format!("{minutes} minutes; the longest wait in line is 0 to 1440 minutes");
    after(&state, &session, &id, result, Some(spec)).await
}
