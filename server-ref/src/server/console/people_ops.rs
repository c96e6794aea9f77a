//! The People page's actions: a user's view (their seats, a seat of a license assigned to
//! them, a seat reclaimed), and the reclaim button of each seat not used lately; through the
//! admin API's assignment handlers as the session's caller (IT staff, license managers and
//! admins may; the API decides).

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::AppState;
use super::super::audit::InTxAudit;
use super::super::extract::StrictJson;
use super::super::routes;
use super::pages::{frame_with, view};
use super::session::Session;
use super::{ConsoleError, render};

type Page = Result<Response, ConsoleError>;

async fn user_page(
    state: &AppState,
    session: &Session,
    user_id: &str,
    status: StatusCode,
    extra: Value,
) -> Page {
    let caller = &session.caller;
    let user = view(
        routes::get_user(
            caller.clone(),
            State(state.clone()),
            Path(user_id.to_owned()),
        )
        .await?
        .0,
    )?;
    let seats = view(
        routes::user_assignments(
            caller.clone(),
            State(state.clone()),
            Path(user_id.to_owned()),
        )
        .await?
        .0,
    )?;
    let context = json!({ "user": user, "assignments": seats["assignments"] });
    let context = frame_with(session, "people", context, extra);
    Ok((status, render("person.html", context)?).into_response())
}

/// `GET /console/people/{id}`: a directory user and the seats they hold.
pub(crate) async fn person(
    State(state): State<AppState>,
    session: Session,
    Path(user_id): Path<String>,
) -> Page {
    user_page(&state, &session, &user_id, StatusCode::OK, json!({})).await
}

#[derive(Deserialize)]
pub(crate) struct AssignForm {
    csrf: String,
    license_id: String,
}

/// `POST /console/people/{id}/assign`: a seat of the license assigned to the user. The API's
/// refusals (no such license, every seat assigned, one already held, a deactivated user) are
/// shown as warnings.
pub(crate) async fn assign(
    State(state): State<AppState>,
    session: Session,
    audit: InTxAudit,
    Path(user_id): Path<String>,
    Form(form): Form<AssignForm>,
) -> Page {
    session.check_csrf(&form.csrf)?;
    let license_id = form.license_id.trim().to_owned();
    let request = serde_json::from_value(json!({ "kind": "user", "id": user_id }))
        .map_err(|e| ConsoleError::Internal(e.to_string()))?;
    match routes::create_assignment(
        session.caller.clone(),
        audit,
        State(state.clone()),
        Path(license_id.clone()),
        StrictJson(request),
    )
    .await
    {
        Ok(_) => {
            let extra = json!({ "notice": format!("A seat of {license_id} is assigned.") });
            user_page(&state, &session, &user_id, StatusCode::CREATED, extra).await
        }
        Err(error)
            if error.status().is_client_error() && error.status() != StatusCode::FORBIDDEN =>
        {
            let extra = json!({ "warning": error.detail() });
            user_page(&state, &session, &user_id, error.status(), extra).await
        }
        Err(error) => Err(error.into()),
    }
}

#[derive(Deserialize)]
pub(crate) struct ReclaimForm {
    csrf: String,
    /// Where to go after: `people` (the list) or a user id (their view).
    back: Option<String>,
}

/// `POST /console/licenses/{id}/assignments/{assignment_id}/reclaim`: unassigns the seat (it
/// is free at once), then back to the People page or the user's view. The handler records
/// the audit entry with the change, as the account (a redirect is not an answer the request
/// layer records).
pub(crate) async fn reclaim(
    State(state): State<AppState>,
    session: Session,
    audit: InTxAudit,
    Path((license_id, assignment_id)): Path<(String, String)>,
    Form(form): Form<ReclaimForm>,
) -> Page {
    session.check_csrf(&form.csrf)?;
    routes::delete_assignment(
        session.caller.clone(),
        audit,
        State(state),
        Path((license_id, assignment_id)),
    )
    .await?;
    let back = match form.back.as_deref() {
        Some(user) if !user.is_empty() && user != "people" => {
            let user: String = url::form_urlencoded::byte_serialize(user.as_bytes()).collect();
            format!("/console/people/{user}")
        }
        _ => "/console/people".to_owned(),
    };
    Ok(Redirect::to(&back).into_response())
}
