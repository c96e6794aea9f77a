//! The handlers of `/scim/v2` (RFC 7644 §3): discovery, `Users` and `Groups` (create, read,
//! list with filter and pagination, replace, PATCH, delete). Each parses and authorizes (a
//! token of role `scim`, its organization's rows only: another organization's are 404), calls
//! the directory's SQL in a transaction it owns, and answers `application/scim+json`. A user
//! made inactive (PUT or PATCH `active: false`) or deleted is deprovisioned
//! ([`deprovision::user`]): its seats and leases are released.
//!
//! State-changing requests are recorded in the audit trail by the request layer, as the admin
//! API's are (the SCIM token is the actor).
//!
//! Here: the router, the request parts (caller, body, list query), discovery, the resources'
//! JSON and `/.search` over both; the `Users` handlers are in `users.rs`, the `Groups` ones in
//! `groups.rs`.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value};

use super::super::audit::AuditSlot;
use super::super::db::Tx;
use super::super::db::directory::{self, Department, DirectoryUser, Page};
use super::super::deprovision;
use super::super::extract::{Caller, Role, bearer_caller};
use super::super::{AppState, now, secrets};
use super::error::{ScimError, ScimResult, ScimType};
use super::schema::{
    self, GROUP_SCHEMA, GroupFields, MAX_BODY_BYTES, MAX_RESULTS, Meta, SCIM_MEDIA_TYPE,
    USER_SCHEMA, UserFields,
};
use super::{filter, patch};

mod groups;
mod users;

use groups::*;
use users::*;

/// The mount point of the service provider.
pub(crate) const PREFIX: &str = "/scim/v2";

/// The routes of `/scim/v2` (nested under [`PREFIX`] by the server's router), with SCIM
/// answers for unknown paths and methods.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/ServiceProviderConfig", get(service_provider_config))
        .route("/ResourceTypes", get(resource_types))
        .route("/ResourceTypes/{id}", get(resource_type))
        .route("/Schemas", get(schemas))
        .route("/Schemas/{id}", get(schema_by_id))
        .route("/.search", post(search_all))
        .route("/Users/.search", post(search_users))
        .route("/Groups/.search", post(search_groups))
        .route("/Users", get(list_users).post(create_user))
        .route(
            "/Users/{id}",
            get(get_user)
                .put(replace_user)
                .patch(patch_user)
                .delete(delete_user),
        )
        .route("/Groups", get(list_groups).post(create_group))
        .route(
            "/Groups/{id}",
            get(get_group)
                .put(replace_group)
                .patch(patch_group)
                .delete(delete_group),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Over the server's 64 KiB: a group's members can be many (the SCIM body extractor
        // enforces the same bound).
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

async fn not_found() -> ScimError {
    ScimError::not_found("no such SCIM endpoint")
}

async fn method_not_allowed() -> ScimError {
    ScimError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        None,
        "this SCIM endpoint does not accept that method",
    )
}

// ---- request parts --------------------------------------------------------------------------

/// The caller of `/scim/v2`: an API token of role `scim` (401 without a live token, 403 for a
/// token of any other role). Its organization scopes every read and write.
pub(crate) struct ScimCaller(Caller);

impl FromRequestParts<AppState> for ScimCaller {
    type Rejection = ScimError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ScimResult<Self> {
        let caller = bearer_caller(parts, state).await?;
        if caller.role != Role::Scim {
            return Err(ScimError::new(
                StatusCode::FORBIDDEN,
                None,
                "only an API token of role `scim` may call /scim/v2",
            ));
        }
        if let Some(slot) = parts.extensions.get::<AuditSlot>() {
            slot.set(&caller);
        }
        Ok(ScimCaller(caller))
    }
}

impl ScimCaller {
    fn org(&self) -> &str {
        &self.0.organization_id
    }

    /// Who deprovisioned, for the logs and the trail.
    fn actor(&self) -> String {
        format!("scim:{}", self.0.token_id)
    }
}

/// A SCIM request body: `application/scim+json` or `application/json`, at most
/// [`MAX_BODY_BYTES`], one JSON object without duplicate names.
pub(crate) struct ScimJson(Value);

impl<S: Send + Sync> FromRequest<S> for ScimJson {
    type Rejection = ScimError;

    async fn from_request(req: Request, state: &S) -> ScimResult<Self> {
        let essence = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if essence != SCIM_MEDIA_TYPE && essence != "application/json" {
            return Err(ScimError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                None,
                "the body must be `application/scim+json` or `application/json`",
            ));
        }
        let too_large = || {
            ScimError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                None,
                format!("the body is larger than {MAX_BODY_BYTES} bytes"),
            )
        };
        let announced = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if announced.is_some_and(|len| len > MAX_BODY_BYTES as u64) {
            return Err(too_large());
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large()
            } else {
                ScimError::bad(ScimType::InvalidSyntax, rejection.body_text())
            }
        })?;
        licensing_core::strict_json::check_object(&bytes)
            .map_err(|e| ScimError::bad(ScimType::InvalidSyntax, e))?;
        let value = serde_json::from_slice(&bytes)
            .map_err(|e| ScimError::bad(ScimType::InvalidSyntax, e.to_string()))?;
        Ok(ScimJson(value))
    }
}

/// The service provider's base URL as the client reached it (`location`, `$ref`).
fn base_url(headers: &HeaderMap) -> String {
    format!(
        "{}{PREFIX}",
        crate::server::base_url::request_base_url(headers)
    )
}

/// A SCIM answer: status, JSON, and the resource's `ETag` and `Location` when it has them.
struct Scim {
    status: StatusCode,
    body: Value,
    etag: Option<String>,
    location: Option<String>,
}

impl Scim {
    fn ok(body: Value) -> Scim {
        Scim {
            status: StatusCode::OK,
            body,
            etag: None,
            location: None,
        }
    }

    /// A resource: its `meta.version` as the `ETag`.
    fn resource(status: StatusCode, body: Value) -> Scim {
        let etag = body["meta"]["version"].as_str().map(str::to_owned);
        let location = (status == StatusCode::CREATED)
            .then(|| body["meta"]["location"].as_str().map(str::to_owned))
            .flatten();
        Scim {
            status,
            body,
            etag,
            location,
        }
    }
}

impl IntoResponse for Scim {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(SCIM_MEDIA_TYPE),
        );
        for (name, value) in [(header::ETAG, self.etag), (header::LOCATION, self.location)] {
            if let Some(v) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
                headers.insert(name, v);
            }
        }
        response
    }
}

/// The query of a list: `filter`, `startIndex` (1-based), `count`, `attributes`,
/// `excludedAttributes`.
struct ListQuery {
    filter: Option<String>,
    start_index: i64,
    count: i64,
    attributes: Vec<String>,
    excluded: Vec<String>,
}

fn int_param(query: &HashMap<String, String>, name: &str) -> ScimResult<Option<i64>> {
    query
        .get(name)
        .map(|v| {
            v.trim().parse::<i64>().map_err(|_| {
                ScimError::bad(
                    ScimType::InvalidValue,
                    format!("`{name}` must be an integer"),
                )
            })
        })
        .transpose()
}

fn list_param(query: &HashMap<String, String>, name: &str) -> Vec<String> {
    query
        .get(name)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

impl ListQuery {
    /// RFC 7644 §3.4.2.4: a `startIndex` below 1 is 1; a negative `count` is 0; `count` is
    /// capped at [`MAX_RESULTS`].
    fn parse(query: &HashMap<String, String>) -> ScimResult<ListQuery> {
        Ok(ListQuery {
            filter: query.get("filter").cloned(),
            start_index: int_param(query, "startIndex")?.unwrap_or(1).max(1),
            count: int_param(query, "count")?
                .unwrap_or(MAX_RESULTS)
                .clamp(0, MAX_RESULTS),
            attributes: list_param(query, "attributes"),
            excluded: list_param(query, "excludedAttributes"),
        })
    }

    fn page(&self) -> Page {
        Page {
            start: self.start_index - 1,
            count: self.count,
        }
    }
}

/// The query of a `POST .../.search` body (RFC 7644 §3.4.3), as a [`ListQuery`].
fn search_query(body: &Value) -> ScimResult<ListQuery> {
    let object = body
        .as_object()
        .ok_or_else(|| ScimError::bad(ScimType::InvalidSyntax, "a SearchRequest is an object"))?;
    let mut query = HashMap::new();
    for (key, value) in object {
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    ScimError::bad(ScimType::InvalidValue, format!("`{key}` must list strings"))
                })?
                .join(","),
            _ => continue,
        };
        if key != "schemas" {
            query.insert(key.clone(), text);
        }
    }
    ListQuery::parse(&query)
}

/// `attributes` / `excludedAttributes` of a single-resource answer.
fn projection(query: &HashMap<String, String>) -> (Vec<String>, Vec<String>) {
    (
        list_param(query, "attributes"),
        list_param(query, "excludedAttributes"),
    )
}

// ---- discovery ------------------------------------------------------------------------------

async fn service_provider_config(_caller: ScimCaller, headers: HeaderMap) -> Scim {
    Scim::ok(schema::service_provider_config(&base_url(&headers)))
}

async fn resource_types(_caller: ScimCaller, headers: HeaderMap) -> Scim {
    let all = schema::resource_types(&base_url(&headers));
    let total = i64::try_from(all.len()).unwrap_or(i64::MAX);
    Scim::ok(schema::list_response(all, total, 1))
}

async fn resource_type(
    _caller: ScimCaller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ScimResult<Scim> {
    schema::resource_types(&base_url(&headers))
        .into_iter()
        .find(|t| t["id"] == id.as_str())
        .map(Scim::ok)
        .ok_or_else(|| ScimError::not_found(format!("no resource type `{id}`")))
}

async fn schemas(_caller: ScimCaller, headers: HeaderMap) -> Scim {
    let all = schema::schemas(&base_url(&headers));
    let total = i64::try_from(all.len()).unwrap_or(i64::MAX);
    Scim::ok(schema::list_response(all, total, 1))
}

async fn schema_by_id(
    _caller: ScimCaller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ScimResult<Scim> {
    schema::schemas(&base_url(&headers))
        .into_iter()
        .find(|s| s["id"] == id.as_str())
        .map(Scim::ok)
        .ok_or_else(|| ScimError::not_found(format!("no schema `{id}`")))
}

// ---- the resources' JSON, and the search of both --------------------------------------------

fn user_fields(u: &DirectoryUser) -> UserFields {
    UserFields {
        user_name: u.user_name.clone(),
        display_name: u.display_name.clone(),
        email: u.email.clone(),
        external_id: u.external_id.clone(),
        active: u.active,
        department: u.department.clone(),
    }
}

fn user_json(u: &DirectoryUser, base: &str) -> Value {
    let meta = Meta {
        resource_type: "User",
        id: &u.id,
        created: u.created_at,
        last_modified: u.updated_at,
        version: u.version,
        base,
    };
    schema::user_json(&user_fields(u), &meta)
}

/// `POST /.search` (RFC 7644 §3.4.3 at the root): Users, then Groups, paged as one list. A
/// filter applies to each type it can be read for (an attribute only one type has selects
/// nothing of the other); a filter neither can read is `invalidFilter`.
async fn search_all(
    caller: ScimCaller,
    State(state): State<AppState>,
    headers: HeaderMap,
    ScimJson(body): ScimJson,
) -> ScimResult<Scim> {
    let list = search_query(&body)?;
    fn nothing<A>() -> directory::Filter<A> {
        directory::Filter::Not(Box::new(directory::Filter::All))
    }
    let (users_filter, groups_filter) = match &list.filter {
        None => (directory::Filter::All, directory::Filter::All),
        Some(text) => match (filter::users(text), filter::groups(text)) {
            (Err(e), Err(_)) => return Err(e),
            (users, groups) => (
                users.unwrap_or_else(|_| nothing()),
                groups.unwrap_or_else(|_| nothing()),
            ),
        },
    };
    let db = state.db();
    let org = caller.org();
    let base = base_url(&headers);
    let page = list.page();
    let (users, users_total) = db.users(org, &users_filter, page).await?;
    let taken = i64::try_from(users.len()).unwrap_or(i64::MAX);
    let groups_page = Page {
        start: (page.start - users_total).max(0),
        count: (page.count - taken).max(0),
    };
    let (groups, groups_total) = db.departments(org, &groups_filter, groups_page).await?;
    let mut resources = Vec::with_capacity(users.len() + groups.len());
    for u in &users {
        let mut json = user_json(u, &base);
        schema::project(&mut json, &list.attributes, &list.excluded);
        resources.push(json);
    }
    let with_members = members_wanted(&list.attributes, &list.excluded);
    for g in &groups {
        let members = if with_members {
            db.members(org, &g.id).await?
        } else {
            Vec::new()
        };
        let mut json = group_json(g, &members, &base);
        schema::project(&mut json, &list.attributes, &list.excluded);
        resources.push(json);
    }
    Ok(Scim::ok(schema::list_response(
        resources,
        users_total + groups_total,
        list.start_index,
    )))
}

fn as_object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(o) => o,
        _ => Map::new(),
    }
}

fn group_json(d: &Department, members: &[(String, String)], base: &str) -> Value {
    let meta = Meta {
        resource_type: "Group",
        id: &d.id,
        created: d.created_at,
        last_modified: d.updated_at,
        version: d.version,
        base,
    };
    let fields = GroupFields {
        display_name: d.name.clone(),
        external_id: d.external_id.clone(),
        members: Vec::new(),
    };
    schema::group_json(&fields, members, &meta)
}

/// Whether `attributes` / `excludedAttributes` leave `members` out (then they are not read).
fn members_wanted(attributes: &[String], excluded: &[String]) -> bool {
    let names = |list: &[String]| {
        list.iter().any(|a| {
            a.eq_ignore_ascii_case("members") || a.to_ascii_lowercase().starts_with("members.")
        })
    };
    if attributes.is_empty() {
        !names(excluded)
    } else {
        names(attributes)
    }
}
