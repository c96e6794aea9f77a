//! A person's data under the GDPR (bearer API token, role `admin`): its export (Article 15)
//! and its erasure (Article 17). The rules are `server::gdpr`'s.

use super::*;
use crate::server::gdpr::{self, Erasure, SubjectExport};

/// `GET /v1/directory/users/{id}/export`: everything the server keeps about directory user
/// `id` of the caller's organization, as one JSON document (each kind of row capped; see
/// `truncated`). Handing out a person's data is an admin's act: other roles get 403.
#[utoipa::path(get, path = "/v1/directory/users/{id}/export", tag = TAG_ADMIN,
    security(("api_token" = [])),
    params(("id" = String, Path, description = "The directory user's id")),
    responses((status = 200, description = "The person's data", body = SubjectExport),
        (status = 404, description = "No such directory user", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn export_user(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<SubjectExport>> {
    caller.require(Action::Administer)?;
    Ok(Json(
        gdpr::export(state.db(), &caller.organization_id, &id, now()).await?,
    ))
}

/// `POST /v1/directory/users/{id}/erase`: releases the seats and leases of directory user
/// `id` of the caller's organization, then pseudonymises its personal data everywhere the
/// server keeps it. Idempotent. The audit trail records the request by the user's id only.
#[utoipa::path(post, path = "/v1/directory/users/{id}/erase", tag = TAG_ADMIN,
    security(("api_token" = [])),
    params(("id" = String, Path, description = "The directory user's id")),
    responses((status = 200, description = "Erased (or erased already)", body = Erasure),
        (status = 404, description = "No such directory user", body = ErrorBody),
        AdminErrors, ReadErrors))]
pub(crate) async fn erase_user(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Erasure>> {
    caller.require(Action::Administer)?;
    Ok(Json(
        gdpr::erase(
            &state,
            &caller.organization_id,
            &id,
            now(),
            &caller.token_id,
        )
        .await?,
    ))
}
