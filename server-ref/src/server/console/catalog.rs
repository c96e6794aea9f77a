//! The catalog page: products and policies, listed and created through the admin API's
//! handlers (the API's checks and messages, shown as a warning naming the field).

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::AppState;
use super::super::extract::StrictJson;
use super::super::routes;
use super::pages::view;
use super::session::Session;
use super::{ConsoleError, render};

type Page = Result<Response, ConsoleError>;

/// The license models a policy may have, as the API names them.
const MODELS: [&str; 6] = [
    "perpetual",
    "subscription",
    "trial",
    "floating",
    "node_locked",
    "site",
];

async fn catalog_page(
    state: &AppState,
    session: &Session,
    status: StatusCode,
    extra: Value,
) -> Page {
    let caller = &session.caller;
    let products = view(
        routes::list_products(caller.clone(), State(state.clone()))
            .await?
            .0,
    )?;
    let policies = view(
        routes::list_policies(caller.clone(), State(state.clone()))
            .await?
            .0,
    )?;
    let context = json!({
        "products": products["products"], "policies": policies["policies"], "models": MODELS,
    });
    let context = super::pages::frame_with(session, "catalog", context, extra);
    Ok((status, render("catalog.html", context)?).into_response())
}

/// `GET /console/catalog`.
pub(crate) async fn catalog(State(state): State<AppState>, session: Session) -> Page {
    catalog_page(&state, &session, StatusCode::OK, json!({})).await
}

/// The API's refusal of a form, shown on the page as a warning; other errors as errors.
async fn refused(
    state: &AppState,
    session: &Session,
    error: super::super::error::ApiError,
) -> Page {
    let status = error.status();
    if status.is_client_error() && status != StatusCode::FORBIDDEN {
        let extra = json!({ "warning": error.detail() });
        return catalog_page(state, session, status, extra).await;
    }
    Err(error.into())
}

/// The catalog page with a warning (422): a form refused before the API was asked.
async fn warned(state: &AppState, session: &Session, warning: String) -> Page {
    let extra = json!({ "warning": warning });
    catalog_page(state, session, StatusCode::UNPROCESSABLE_ENTITY, extra).await
}

/// The catalog page after the API's answer to a form: `notice` with `status` when it took the
/// change, its refusal otherwise ([`refused`]).
async fn answered<T>(
    state: &AppState,
    session: &Session,
    answer: Result<T, super::super::error::ApiError>,
    status: StatusCode,
    notice: String,
) -> Page {
    match answer {
        Ok(_) => catalog_page(state, session, status, json!({ "notice": notice })).await,
        Err(error) => refused(state, session, error).await,
    }
}

/// Parses a form's JSON as the API's request body (a shape the form cannot miss).
fn body<T: serde::de::DeserializeOwned>(value: Value) -> Result<Result<T, String>, ConsoleError> {
    Ok(serde_json::from_value(value).map_err(|e| e.to_string()))
}

#[derive(Deserialize)]
pub(crate) struct ProductForm {
    csrf: String,
    id: String,
    name: String,
}

/// `POST /console/catalog/products`.
pub(crate) async fn create_product(
    State(state): State<AppState>,
    session: Session,
    Form(form): Form<ProductForm>,
) -> Page {
    session.check_csrf(&form.csrf)?;
    let request = match body(json!({ "id": form.id.trim(), "name": form.name.trim() }))? {
        Ok(request) => request,
        Err(problem) => return warned(&state, &session, format!("The product: {problem}")).await,
    };
    let answer = routes::create_product(
        session.caller.clone(),
        State(state.clone()),
        StrictJson(request),
    )
    .await;
    let notice = format!("Product `{}` created.", form.id.trim());
    answered(&state, &session, answer, StatusCode::CREATED, notice).await
}

#[derive(Deserialize)]
pub(crate) struct PolicyForm {
    csrf: String,
    product_id: String,
    name: String,
    model: String,
    /// Days; empty: none.
    duration_days: Option<String>,
    seats: Option<String>,
    max_machines: Option<String>,
}

/// An optional whole number of a form, or the sentence that refuses it.
fn number(field: &str, value: Option<&str>) -> Result<Option<u64>, String> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .parse::<u64>()
            .map(Some)
            .map_err(|_| format!("`{field}` must be a whole number")),
    }
}

/// A policy form's numbers: its duration in days, its seats and its machine limit.
type PolicyNumbers = (Option<u64>, Option<u64>, Option<u64>);

fn policy_numbers(
    duration_days: Option<&str>,
    seats: Option<&str>,
    max_machines: Option<&str>,
) -> Result<PolicyNumbers, String> {
    Ok((
        number("duration_days", duration_days)?,
        number("seats", seats)?,
        number("max_machines", max_machines)?,
    ))
}

/// `POST /console/catalog/policies`.
pub(crate) async fn create_policy(
    State(state): State<AppState>,
    session: Session,
    Form(form): Form<PolicyForm>,
) -> Page {
    session.check_csrf(&form.csrf)?;
    let numbers = policy_numbers(
        form.duration_days.as_deref(),
        form.seats.as_deref(),
        form.max_machines.as_deref(),
    );
    let (days, seats, machines) = match numbers {
        Ok(numbers) => numbers,
        Err(problem) => return warned(&state, &session, problem).await,
    };
    let mut request = json!({
        "product_id": form.product_id, "name": form.name.trim(), "model": form.model,
    });
    if let Some(days) = days {
        request["duration"] = json!(days.saturating_mul(86_400));
    }
    if let Some(seats) = seats {
        request["seats"] = json!(seats);
    }
    if let Some(machines) = machines {
        request["max_machines"] = json!(machines);
    }
    let request = match body(request)? {
        Ok(request) => request,
        Err(problem) => return warned(&state, &session, format!("The policy: {problem}")).await,
    };
    let answer = routes::create_policy(
        session.caller.clone(),
        State(state.clone()),
        StrictJson(request),
    )
    .await;
    let notice = format!("Policy `{}` created.", form.name.trim());
    answered(&state, &session, answer, StatusCode::CREATED, notice).await
}

#[derive(Deserialize)]
pub(crate) struct ProductEditForm {
    csrf: String,
    name: String,
}

/// `POST /console/catalog/products/{id}`: renames a product (`PATCH /v1/products/{id}`).
pub(crate) async fn edit_product(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<ProductEditForm>,
) -> Page {
    session.check_csrf(&form.csrf)?;
    let request = match body(json!({ "name": form.name.trim() }))? {
        Ok(request) => request,
        Err(problem) => return warned(&state, &session, format!("The product: {problem}")).await,
    };
    let notice = format!("Product `{id}` changed.");
    let answer = routes::update_product(
        session.caller.clone(),
        State(state.clone()),
        Path(id),
        StrictJson(request),
    )
    .await;
    answered(&state, &session, answer, StatusCode::OK, notice).await
}

#[derive(Deserialize)]
pub(crate) struct PolicyEditForm {
    csrf: String,
    name: String,
    /// Days; empty: none.
    duration_days: Option<String>,
    /// The days the form showed: the duration is sent only when they were changed (a
    /// duration of part of a day shows rounded).
    duration_days_was: Option<String>,
    seats: Option<String>,
    max_machines: Option<String>,
}

/// `POST /console/catalog/policies/{id}`: changes what a policy gives the licenses issued
/// from now on (`PATCH /v1/policies/{id}`); an emptied number clears it.
pub(crate) async fn edit_policy(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<PolicyEditForm>,
) -> Page {
    session.check_csrf(&form.csrf)?;
    let numbers = policy_numbers(
        form.duration_days.as_deref(),
        form.seats.as_deref(),
        form.max_machines.as_deref(),
    );
    let (days, seats, machines) = match numbers {
        Ok(numbers) => numbers,
        Err(problem) => return warned(&state, &session, problem).await,
    };
    let mut request = json!({
        "name": form.name.trim(), "seats": seats, "max_machines": machines,
    });
    let shown = form.duration_days_was.as_deref().map(str::trim);
    if form.duration_days.as_deref().map(str::trim) != shown {
        request["duration"] = json!(days.map(|d| d.saturating_mul(86_400)));
    }
    let request = match body(request)? {
        Ok(request) => request,
        Err(problem) => return warned(&state, &session, format!("The policy: {problem}")).await,
    };
    let answer = routes::update_policy(
        session.caller.clone(),
        State(state.clone()),
        Path(id),
        StrictJson(request),
    )
    .await;
    let notice = format!(
        "Policy `{}` changed: licenses issued from now on follow it.",
        form.name.trim()
    );
    answered(&state, &session, answer, StatusCode::OK, notice).await
}
