//! `HttpTransport`: the app's own HTTP stack for `OnlineClient.with_transport` (Kotlin:
//! `HttpURLConnection` or OkHttp; Swift: `URLSession`; Python: `urllib`), so the app keeps its
//! platform's trust store, proxies and certificate pinning. Only the exchange is the app's:
//! the requests, retries, time limits, size cap and every signature check stay in the core.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use licensing_core::online;

/// One request the client asks the app's transport to send (a `POST` of JSON).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HttpRequest {
    /// The HTTP method (`POST`).
    pub method: String,
    /// The absolute URL (`https`, or `http` for loopback and private networks).
    pub url: String,
    /// The headers to send (`Content-Type`, `Accept`, `User-Agent`, `Licensing-Trusted-Kids`).
    pub headers: HashMap<String, String>,
    /// The request body (JSON).
    pub body: Vec<u8>,
    /// The limit for this attempt in milliseconds, connection included: past it, throw
    /// `TransportError.Timeout`.
    pub timeout_ms: u64,
    /// The limit for establishing the connection, in milliseconds.
    pub connect_timeout_ms: u64,
    /// The largest body the client accepts: read at most one byte more and stop (a longer
    /// body is refused whatever the transport answers).
    pub max_body_bytes: u64,
}

/// What the server answered: any status (4xx and 5xx included, with their bodies: the client
/// reads the server's error and `Retry-After` from them).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HttpResponse {
    /// The HTTP status code.
    pub status: u16,
    /// The response headers (names in any case; repeated ones joined with `, `).
    pub headers: HashMap<String, String>,
    /// The response body, at most `max_body_bytes` + 1 bytes.
    pub body: Vec<u8>,
}

/// Why the transport got no answer. Both count as the server being unreachable (retried, then
/// `LicensingError.Network`, and an online check falls back to the stored token); so does any
/// other exception the transport throws.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum TransportError {
    /// No answer within `timeout_ms`.
    #[error("timed out: {reason}")]
    Timeout {
        /// What timed out.
        reason: String,
    },
    /// The server could not be reached or the exchange broke off (DNS, refused or reset
    /// connection, TLS, proxy, a body cut short).
    #[error("{reason}")]
    Network {
        /// What failed.
        reason: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for TransportError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        TransportError::Network {
            reason: format!("the app's transport failed: {}", e.reason),
        }
    }
}

/// Implemented by the app: sends one request with the platform's HTTP stack. Must not follow
/// redirects (answer the 3xx as it is). Called from any thread, concurrently (a floating lease
/// heartbeats on its own thread); blocking is expected.
#[uniffi::export(with_foreign)]
pub trait HttpTransport: Send + Sync {
    /// Sends `request`; answers the server's status, headers and body, or throws
    /// `TransportError` when there is no answer.
    fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError>;
}

/// The app's transport as the core's.
pub(crate) struct ForeignTransport(pub(crate) Arc<dyn HttpTransport>);

impl online::Transport for ForeignTransport {
    fn send(
        &self,
        request: &online::HttpRequest,
    ) -> Result<online::HttpResponse, online::TransportError> {
        let request = HttpRequest {
            method: request.method.clone(),
            url: request.url.clone(),
            headers: request.headers.iter().cloned().collect(),
            body: request.body.clone(),
            timeout_ms: millis(request.timeout),
            connect_timeout_ms: millis(request.connect_timeout),
            max_body_bytes: request.max_body_bytes,
        };
        match self.0.send(request) {
            Ok(response) => Ok(online::HttpResponse {
                status: response.status,
                headers: response.headers.into_iter().collect(),
                body: response.body,
            }),
            Err(TransportError::Timeout { .. }) => Err(online::TransportError::Timeout),
            Err(TransportError::Network { reason }) => Err(online::TransportError::Network(reason)),
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
