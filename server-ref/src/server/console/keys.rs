//! Settings: the server's signing keys with their state, and the staged rotation (stage,
//! promote, retire; the immediate rotate), each confirmed, through the admin API's handlers
//! (admins only on the page; the changes, as the API, for the operator organization's admins,
//! and recorded in the audit trail as the account by the request layer).

use axum::Form;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::AppState;
use super::super::error::ApiError;
use super::super::extract::Action;
use super::super::routes;
use super::pages::{frame_with, view};
use super::session::Session;
use super::{ConsoleError, render};

type Page = Result<Response, ConsoleError>;

async fn keys_page(state: &AppState, session: &Session, status: StatusCode, extra: Value) -> Page {
    session.caller.require(Action::Administer)?;
    let list = view(
        routes::list_keys(session.caller.clone(), State(state.clone()))
            .await?
            .0,
    )?;
    let context = json!({
        "keys": list["keys"],
        "may_rotate": session.caller.require_operator().is_ok(),
        "staged": list["keys"].as_array().is_some_and(|k| k.iter().any(|k| k["status"] == "staged")),
    });
    let context = frame_with(session, "keys", context, extra);
    Ok((status, render("keys.html", context)?).into_response())
}

/// `GET /console/settings/keys` (admins).
pub(crate) async fn keys(State(state): State<AppState>, session: Session) -> Page {
    keys_page(&state, &session, StatusCode::OK, json!({})).await
}

#[derive(Deserialize)]
pub(crate) struct KeyForm {
    csrf: String,
    /// The confirmation (a checkbox: `on`).
    confirm: Option<String>,
}

/// The page after a change: its notice, or the API's refusal (a key staged already, one not
/// published long enough, the current key) as a warning.
async fn after(state: &AppState, session: &Session, result: Result<String, ApiError>) -> Page {
    match result {
        Ok(notice) => keys_page(state, session, StatusCode::OK, json!({ "notice": notice })).await,
        Err(error)
            if error.status() == StatusCode::CONFLICT
                || error.status() == StatusCode::UNPROCESSABLE_ENTITY =>
        {
            let extra = json!({ "warning": error.detail() });
            keys_page(state, session, error.status(), extra).await
        }
        Err(error) => Err(error.into()),
    }
}

/// `POST /console/settings/keys/{change}` (`stage`, `rotate`) and
/// `POST /console/settings/keys/{kid}/{change}` (`promote`, `retire`): each only when
/// confirmed.
async fn change(
    state: AppState,
    session: Session,
    form: KeyForm,
    kid: Option<String>,
    change: &str,
) -> Page {
    session.check_csrf(&form.csrf)?;
    if form.confirm.as_deref() != Some("on") {
        let extra = json!({ "warning": "Tick the box to confirm: a signing key change reaches every client." });
        return keys_page(&state, &session, StatusCode::UNPROCESSABLE_ENTITY, extra).await;
    }
    let caller = session.caller.clone();
    let st = State(state.clone());
    let result = match (change, kid) {
        ("stage", None) => routes::stage_key(caller, st, Bytes::new())
            .await
            .map(|_| "A new key is staged: published now, signing once promoted.".to_owned()),
        ("rotate", None) => routes::rotate_key(caller, st)
            .await
            .map(|_| "A new key signs from now on; the former one is previous.".to_owned()),
        ("promote", Some(kid)) => routes::promote_key(caller, st, Path(kid.clone()))
            .await
            .map(|_| format!("Key {kid} signs from now on.")),
        ("retire", Some(kid)) => routes::retire_key(caller, st, Path(kid.clone()))
            .await
            .map(|_| format!("Key {kid} is retired.")),
        _ => return Err(ConsoleError::Api(routes::not_found().await)),
    };
    after(&state, &session, result).await
}

/// `POST /console/settings/keys/{change}`: `stage` or `rotate`.
pub(crate) async fn server_change(
    State(state): State<AppState>,
    session: Session,
    Path(what): Path<String>,
    Form(form): Form<KeyForm>,
) -> Page {
    change(state, session, form, None, &what).await
}

/// `POST /console/settings/keys/{kid}/{change}`: `promote` or `retire`.
pub(crate) async fn key_change(
    State(state): State<AppState>,
    session: Session,
    Path((kid, what)): Path<(String, String)>,
    Form(form): Form<KeyForm>,
) -> Page {
    change(state, session, form, Some(kid), &what).await
}
