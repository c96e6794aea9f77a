//! Settings: the organization's API tokens, listed, created (the secret shown once) and
//! revoked through the admin API's handlers (admins only, as the API).

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::AppState;
use super::super::extract::StrictJson;
use super::super::routes;
use super::pages::{CsrfForm, view};
use super::session::Session;
use super::{ConsoleError, render};

type Page = Result<Response, ConsoleError>;

/// The roles an API token may have, as the API names them.
const TOKEN_ROLES: [&str; 5] = ["admin", "license_manager", "it_staff", "auditor", "scim"];

async fn tokens_page(
    state: &AppState,
    session: &Session,
    status: StatusCode,
    extra: Value,
) -> Page {
    let list = routes::list_api_tokens(session.caller.clone(), State(state.clone()))
        .await?
        .0;
    let list = view(list)?;
    let context = json!({ "tokens": list["api_tokens"], "roles": TOKEN_ROLES });
    let context = super::pages::frame_with(session, "tokens", context, extra);
    Ok((status, render("tokens.html", context)?).into_response())
}

/// `GET /console/settings/tokens`.
pub(crate) async fn tokens(State(state): State<AppState>, session: Session) -> Page {
    tokens_page(&state, &session, StatusCode::OK, json!({})).await
}

#[derive(Deserialize)]
pub(crate) struct TokenForm {
    csrf: String,
    role: String,
    label: String,
}

/// `POST /console/settings/tokens`: a new token of this organization; its secret is shown once.
pub(crate) async fn create(
    State(state): State<AppState>,
    session: Session,
    Form(form): Form<TokenForm>,
) -> Page {
    session.check_csrf(&form.csrf)?;
    let request = serde_json::from_value(json!({ "role": form.role, "label": form.label.trim() }));
    let Ok(request) = request else {
        let extra = json!({ "warning": "The label must be 1 to 200 characters without control characters." });
        return tokens_page(&state, &session, StatusCode::UNPROCESSABLE_ENTITY, extra).await;
    };
    match routes::create_api_token(
        session.caller.clone(),
        State(state.clone()),
        StrictJson(request),
    )
    .await
    {
        Ok((_, created)) => {
            let created = view(created.0)?;
            let extra = json!({ "secret": created["secret"], "secret_for": created["label"] });
            tokens_page(&state, &session, StatusCode::CREATED, extra).await
        }
        Err(error) if error.status() == StatusCode::UNPROCESSABLE_ENTITY => {
            let extra = json!({ "warning": error.detail() });
            tokens_page(&state, &session, StatusCode::UNPROCESSABLE_ENTITY, extra).await
        }
        Err(error) => Err(error.into()),
    }
}

/// `POST /console/settings/tokens/{id}/revoke`.
pub(crate) async fn revoke(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Page {
    session.check_csrf(&form.csrf)?;
    let _revoked =
        routes::revoke_api_token(session.caller.clone(), State(state.clone()), Path(id)).await?;
    let extra = json!({ "notice": "The token is revoked." });
    tokens_page(&state, &session, StatusCode::OK, extra).await
}
