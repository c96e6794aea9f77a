//! SCIM errors (RFC 7644 §3.12): `{"schemas": [Error URN], "status": "<code as a string>",
//! "scimType": ..., "detail": ...}` as `application/scim+json`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::super::error::ApiError;
use super::schema::{ERROR_URN, SCIM_MEDIA_TYPE};

/// Longest `detail` sent back (details may quote what the client sent).
const MAX_DETAIL_CHARS: usize = 300;

/// The `scimType` of an error, where RFC 7644 §3.12 names one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum ScimType {
    /// The filter syntax is invalid, or names an attribute or operator not supported (400).
    InvalidFilter,
    /// Too many results, or a filter too large to run (400).
    TooMany,
    /// A unique attribute's value is taken (409).
    Uniqueness,
    /// An attempt to change an immutable or read-only attribute (400).
    Mutability,
    /// The body is not a valid SCIM message (400).
    InvalidSyntax,
    /// A PATCH path is invalid or names an unsupported attribute (400).
    InvalidPath,
    /// A PATCH path's filter selected nothing (400).
    NoTarget,
    /// A value is missing, of the wrong type, or not allowed (400).
    InvalidValue,
}

/// An error answer of the SCIM service provider.
#[derive(Debug)]
pub(crate) struct ScimError {
    status: StatusCode,
    scim_type: Option<ScimType>,
    detail: String,
}

/// Result of a SCIM handler or helper.
pub(crate) type ScimResult<T> = Result<T, ScimError>;

impl ScimError {
    /// An error with this status, `scimType` and detail.
    pub fn new(status: StatusCode, scim_type: Option<ScimType>, detail: impl Into<String>) -> Self {
        let mut detail: String = detail.into();
        if let Some((cut, _)) = detail.char_indices().nth(MAX_DETAIL_CHARS) {
            detail.truncate(cut);
            detail.push('…');
        }
        ScimError {
            status,
            scim_type,
            detail,
        }
    }

    /// 400 with a `scimType`.
    pub fn bad(scim_type: ScimType, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some(scim_type), detail)
    }

    /// 404: no such resource (one of another organization included).
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, None, detail)
    }

    /// 409 `uniqueness`.
    pub fn uniqueness(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, Some(ScimType::Uniqueness), detail)
    }

    /// 500: the server failed (`cause` is logged, never sent).
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        ApiError::internal(cause).into()
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The `scimType`.
    pub fn scim_type(&self) -> Option<ScimType> {
        self.scim_type
    }

    /// The detail.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

/// The server's other errors (authentication, the database, a deprovisioning) in the SCIM
/// shape: the same status and detail (a 5xx detail is generic already).
impl From<ApiError> for ScimError {
    fn from(e: ApiError) -> Self {
        let retry = e.status() == StatusCode::SERVICE_UNAVAILABLE;
        let mut out = ScimError::new(e.status(), None, e.detail());
        if retry {
            out.detail = format!("{} (retry in 1 s)", out.detail);
        }
        out
    }
}

impl From<sqlx::Error> for ScimError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::from(e).into()
    }
}

#[derive(Serialize)]
struct Body<'a> {
    schemas: [&'static str; 1],
    status: String,
    #[serde(rename = "scimType", skip_serializing_if = "Option::is_none")]
    scim_type: Option<ScimType>,
    detail: &'a str,
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let body = Body {
            schemas: [ERROR_URN],
            status: self.status.as_u16().to_string(),
            scim_type: self.scim_type,
            detail: &self.detail,
        };
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(SCIM_MEDIA_TYPE),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(1));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The RFC 7644 §3.12 shape: the Error URN, `status` as a string, `scimType` when set.
    #[tokio::test]
    async fn errors_have_the_rfc_shape() {
        let response = ScimError::uniqueness("userName `bjensen` is taken").into_response();
        assert_eq!(response.status(), StatusCode::CONFLICT);
        assert_eq!(response.headers()[header::CONTENT_TYPE], SCIM_MEDIA_TYPE);
        let bytes = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "schemas": [ERROR_URN], "status": "409", "scimType": "uniqueness",
                "detail": "userName `bjensen` is taken",
            })
        );
        let plain = ScimError::not_found("no such user").into_response();
        let bytes = axum::body::to_bytes(plain.into_body(), 4096).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["status"], "404");
        assert!(body.get("scimType").is_none());
    }
}
