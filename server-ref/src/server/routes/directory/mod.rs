//! The directory of the caller's organization (admin API): its people
//! (`/v1/directory/users`) and departments or groups (`/v1/directory/departments`), their
//! usage of the organization's licenses, and the CSV import (`/v1/directory/import`).
//!
//! Roles: license managers and admins write; IT staff may deactivate and reactivate users and
//! change department memberships; every role reads. A user or department of another
//! organization is indistinguishable from a missing one (404). Deactivating or deleting a
//! user releases their seats and leases at once ([`release_seats`]).

use axum::body::Body;
use axum::extract::Query;
use axum::http::HeaderMap;
use serde::Deserializer;

use super::super::db::directory::{
    self as dir, Department, DepartmentAttr, DirectoryUser, Filter, Page, UserAttr, Value as Is,
};
use super::super::db::{DepartmentUsage, UserUsage};
use super::super::directory_import::{self as import, FieldChange, LineOutcome};
use super::*;

/// Most rows one list answers (`count`).
const MAX_PAGE: i64 = 1_000;

/// Rows a list answers when `count` is not given.
const DEFAULT_PAGE: i64 = 100;

mod csv_import;
mod departments;
mod usage;
mod users;

pub(crate) use csv_import::*;
pub(crate) use departments::*;
pub(crate) use usage::*;
pub(crate) use users::*;

// ---- input types -----------------------------------------------------------------------------

/// A checked e-mail address (`directory_import::is_valid_email`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub(crate) struct Email(String);

/// What a refused e-mail address is told, after the field's name.
const EMAIL_RULE: &str = "must be an e-mail address like name@example.com (at most 254 characters)";

impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        if import::is_valid_email(&value) {
            Ok(Email(value))
        } else {
            Err(serde::de::Error::custom(EMAIL_RULE))
        }
    }
}

impl utoipa::PartialSchema for Email {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .min_length(Some(3))
            .max_length(Some(254))
            .description(Some(
                "An e-mail address: `local@domain`, one `@`, a domain of at least two labels, \
                 no white space.",
            ))
            .into()
    }
}

impl ToSchema for Email {}

/// A member given as `null` (clear it) or a value, told apart from a member left out.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

// ---- answers ---------------------------------------------------------------------------------

/// What deactivating or deleting a user gave back.
#[derive(Serialize, ToSchema)]
pub(crate) struct Released {
    /// Floating leases force-released (their holders' next heartbeat is refused).
    leases_released: Vec<String>,
    /// Borrowed leases left to end at their expiry.
    borrowed_kept: Vec<String>,
    /// Named-seat assignments reclaimed.
    assignments_reclaimed: u64,
}

// ---- shared helpers --------------------------------------------------------------------------

fn user_not_found(id: &str) -> ApiError {
    ApiError::not_found(
        ErrorCode::UserNotFound,
        format!(
            "no directory user `{}`",
            id.chars().take(128).collect::<String>()
        ),
    )
}

fn department_not_found(id: &str) -> ApiError {
    ApiError::not_found(
        ErrorCode::DepartmentNotFound,
        format!(
            "no department `{}`",
            id.chars().take(128).collect::<String>()
        ),
    )
}

fn user_exists(name: &str) -> ApiError {
    ApiError::conflict(
        ErrorCode::UserExists,
        format!("the organization has a user named `{name}` already (names ignore case)"),
    )
}

fn department_exists(name: &str) -> ApiError {
    ApiError::conflict(
        ErrorCode::DepartmentExists,
        format!("the organization has a department named `{name}` already (names ignore case)"),
    )
}

fn page(start: Option<i64>, count: Option<i64>) -> ApiResult<Page> {
    let start = start.unwrap_or(0);
    let count = count.unwrap_or(DEFAULT_PAGE);
    if start < 0 {
        return Err(ApiError::invalid(
            ErrorCode::InvalidField,
            "`start` must be 0 or more",
        ));
    }
    if !(1..=MAX_PAGE).contains(&count) {
        return Err(ApiError::invalid(
            ErrorCode::InvalidField,
            format!("`count` must be between 1 and {MAX_PAGE}"),
        ));
    }
    Ok(Page { start, count })
}

/// A filter's text: 1 to 200 characters without control characters.
fn filter_text(field: &str, value: String) -> ApiResult<String> {
    DisplayName::check(field, &value)?;
    Ok(value)
}

fn and<A>(filter: Filter<A>, next: Filter<A>) -> Filter<A> {
    match filter {
        Filter::All => next,
        filter => Filter::And(Box::new(filter), Box::new(next)),
    }
}

/// The equality filters of a list's query, joined by `and`: for each value given, its
/// attribute equal to it (each checked as the filter text of its query field); `All` when none
/// is given.
fn equal_texts<A, const N: usize>(fields: [(A, &str, Option<String>); N]) -> ApiResult<Filter<A>> {
    let mut filter = Filter::All;
    for (attr, field, value) in fields {
        if let Some(value) = value {
            filter = and(
                filter,
                Filter::Eq(attr, Is::Text(filter_text(field, value)?)),
            );
        }
    }
    Ok(filter)
}

async fn user_of(state: &AppState, caller: &Caller, id: &str) -> ApiResult<DirectoryUser> {
    state
        .db()
        .user(&caller.organization_id, id)
        .await?
        .ok_or_else(|| user_not_found(id))
}

async fn department_of(state: &AppState, caller: &Caller, id: &str) -> ApiResult<Department> {
    state
        .db()
        .department(&caller.organization_id, id)
        .await?
        .ok_or_else(|| department_not_found(id))
}

/// Releases every seat and lease of directory user `user_id` (deactivated or about to be
/// deleted): `deprovision::user`, the one deprovisioning path (SCIM's too). Its leases are
/// force-released (fenced: the app's next heartbeat is refused) and its seat assignments
/// reclaimed.
async fn release_seats(
    state: &AppState,
    caller: &Caller,
    user_id: &str,
    now: i64,
) -> ApiResult<Released> {
    let done = super::super::deprovision::user(
        state,
        &caller.organization_id,
        user_id,
        now,
        &caller.token_id,
    )
    .await?;
    Ok(Released {
        leases_released: done
            .leases_released
            .into_iter()
            .map(|l| l.lease_id)
            .collect(),
        borrowed_kept: done.borrowed_kept.into_iter().map(|l| l.lease_id).collect(),
        assignments_reclaimed: done.assignments_reclaimed,
    })
}
