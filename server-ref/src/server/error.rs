//! The one error shape of the API: a status and `{"error": "<code>", "detail": "<text>"}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use licensing_core::protocol::{ErrorBody, ErrorCode};

/// Longest `detail` sent back: details may quote what the client sent.
const MAX_DETAIL_CHARS: usize = 300;

/// An error answer. Client mistakes are 4xx with a code naming the problem; only the server's
/// own failures are 5xx, and their detail is logged, never sent.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    error: ErrorCode,
    detail: String,
    /// Seconds for a `Retry-After` header (429 answers).
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error with this status, code and detail.
    pub fn new(status: StatusCode, error: ErrorCode, detail: impl Into<String>) -> Self {
        let mut detail: String = detail.into();
        if let Some((cut, _)) = detail.char_indices().nth(MAX_DETAIL_CHARS) {
            detail.truncate(cut);
            detail.push('…');
        }
        ApiError {
            status,
            error,
            detail,
            retry_after: None,
        }
    }

    /// 429: too many requests for this license key; retry after `secs`.
    pub fn rate_limited(secs: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited,
            format!("too many requests for this license key; retry in {secs} s"),
        );
        e.retry_after = Some(secs);
        e
    }

    /// 400: the request is not well-formed.
    pub fn bad_request(error: ErrorCode, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error, detail)
    }

    /// 404: the named thing does not exist.
    pub fn not_found(error: ErrorCode, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, error, detail)
    }

    /// 409: the request conflicts with the current state.
    pub fn conflict(error: ErrorCode, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, error, detail)
    }

    /// 403: refused by a licensing rule (suspended, revoked, expired).
    pub fn forbidden(error: ErrorCode, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, error, detail)
    }

    /// 422: well-formed but invalid content; `detail` names the field.
    pub fn invalid(error: ErrorCode, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, error, detail)
    }

    /// 500: the server failed. `cause` is logged, the client sees a generic message.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "internal server error; see the server log",
        )
    }

    /// Prefixes the detail of a client error with `context` (server errors stay generic).
    pub fn context(self, context: &str) -> Self {
        if self.status.is_client_error() {
            ApiError::new(
                self.status,
                self.error,
                format!("{context}: {}", self.detail),
            )
        } else {
            self
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The error code (`machine_limit_reached`, ...).
    pub fn code(&self) -> &ErrorCode {
        &self.error
    }

    /// The detail sent to the client.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The exit code of a server subcommand (`offline`, `keys`) this refusal ends: the one
    /// mapping of them all. A refusal by a rule, or an unknown license, machine or key (a 4xx
    /// other than bad input) is the negative answer, 1; input the server would not take (400,
    /// 413, 415, 422) or a failure of the server (5xx) is 2.
    pub fn cli_exit_code(&self) -> u8 {
        let status = self.status;
        if status.is_client_error() && !matches!(status.as_u16(), 400 | 413 | 415 | 422) {
            1
        } else {
            2
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            // The database is out of reach for a moment (no free connection, a connection or
            // the seat writer lost): 503 with Retry-After, so clients retry (check-outs are
            // idempotent by request id) instead of reporting a server bug.
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Io(_) => {
                tracing::error!(cause = %e, "database unavailable");
                let mut unavailable = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::Unavailable,
                    "the database is unavailable for a moment; retry",
                );
                unavailable.retry_after = Some(1);
                unavailable
            }
            e => ApiError::internal(format_args!("database: {e}")),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.error,
            detail: self.detail,
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Result of a handler.
pub(crate) type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    /// One exit mapping for every server subcommand (`offline`, `keys`).
    #[test]
    fn cli_exit_codes_split_refusals_from_bad_input_and_failures() {
        for (error, code) in [
            (
                ApiError::not_found(ErrorCode::KeyNotFound, "no such key"),
                1,
            ),
            (
                ApiError::conflict(ErrorCode::KeyAlreadyStaged, "one is staged"),
                1,
            ),
            (
                ApiError::forbidden(ErrorCode::LicenseSuspended, "suspended"),
                1,
            ),
            (ApiError::invalid(ErrorCode::InvalidRequest, "bad field"), 2),
            (ApiError::bad_request(ErrorCode::BadRequest, "not JSON"), 2),
            (ApiError::internal("boom"), 2),
        ] {
            assert_eq!(error.cli_exit_code(), code, "{}", error.code());
        }
    }

    /// A database out of reach is 503 with Retry-After (clients retry); any other database
    /// failure stays a 500.
    #[test]
    fn transient_database_failures_are_503_with_retry_after() {
        for e in [sqlx::Error::PoolTimedOut, sqlx::Error::WorkerCrashed] {
            let response = ApiError::from(e).into_response();
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        }
        let other = ApiError::from(sqlx::Error::RowNotFound);
        assert_eq!(other.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
