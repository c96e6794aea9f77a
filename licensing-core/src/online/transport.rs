//! The HTTP exchange of the online client, injectable: [`Transport`] sends one request and
//! answers the status, the headers and the body. Everything else (what to send, the nonce, the
//! retries and backoff, the deadline, the size cap, the signature checks) stays in the client,
//! so a transport written in Kotlin or Swift on top of the platform's HTTP stack (its trust
//! store, proxies and certificate pinning) cannot change what the client accepts.
//!
//! With feature `online` the default is [`ReqwestTransport`] (reqwest with rustls); feature
//! `online-core` is the client without it, for builds that hand in their own (mobile apps
//! through the uniffi bindings): it compiles no C code.

use std::sync::Arc;
use std::time::Duration;

/// One request the client asks a [`Transport`] to send. Always a `POST` of JSON today.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpRequest {
    /// The HTTP method (`POST`).
    pub method: String,
    /// The absolute URL (`http` or `https`; the client refuses any other scheme before a
    /// transport is asked).
    pub url: String,
    /// The header lines to send, in order (`Content-Type`, `Accept`, `User-Agent` and the
    /// trusted-kids header). The transport may add its own (`Content-Length`, `Host`, ...).
    pub headers: Vec<(String, String)>,
    /// The request body (JSON).
    pub body: Vec<u8>,
    /// The limit for this attempt, connection included: past it, answer
    /// [`TransportError::Timeout`].
    pub timeout: Duration,
    /// The limit for establishing the connection (a hint for stacks that have one).
    pub connect_timeout: Duration,
    /// The largest body the client accepts. Read at most one byte more and stop: the client
    /// refuses a longer body whatever the transport answers (it checks again).
    pub max_body_bytes: u64,
}

impl HttpRequest {
    /// The value of the header `name` (case-insensitive), if the request has it.
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// What the server answered: any status, not only a 2xx (the client reads the server's error
/// format from 4xx and 5xx bodies and `Retry-After` from 429 and 503).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The HTTP status code.
    pub status: u16,
    /// The response headers (names in any case).
    pub headers: Vec<(String, String)>,
    /// The response body, at most [`HttpRequest::max_body_bytes`] + 1 bytes.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The value of the header `name` (case-insensitive), if the response has it.
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Why a transport got no answer. The client treats both like a network failure: retried while
/// attempts and time are left, then [`super::OnlineError::Timeout`] or
/// [`super::OnlineError::Network`] (so an online check falls back to the stored token).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// No answer within [`HttpRequest::timeout`].
    #[error("timed out")]
    Timeout,
    /// The server could not be reached or the exchange broke off (DNS, refused or reset
    /// connection, TLS, proxy, a body cut short): the message says which.
    #[error("{0}")]
    Network(String),
}

/// Sends the client's HTTP requests. Implementations must not follow redirects (the API never
/// redirects, and a redirect could carry the license key elsewhere): answer the 3xx as it is.
/// Called from any thread, concurrently (a floating lease heartbeats on its own thread).
pub trait Transport: Send + Sync {
    /// Sends `request` and answers the server's status, headers and body, or why there is
    /// none.
    fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError>;
}

impl<T: Transport + ?Sized> Transport for Arc<T> {
    fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        (**self).send(request)
    }
}

#[cfg(feature = "online")]
pub use default::ReqwestTransport;

#[cfg(feature = "online")]
mod default {
    use super::{HttpRequest, HttpResponse, Transport, TransportError};
    use crate::online::{ClientConfig, OnlineError};

    /// The desktop default: reqwest (blocking) with rustls, its connection pool, proxies from
    /// the environment as reqwest reads them, no redirects followed.
    #[derive(Debug, Clone)]
    pub struct ReqwestTransport {
        client: reqwest::blocking::Client,
    }

    impl ReqwestTransport {
        /// A transport with `config`'s connect timeout (the per-attempt limit comes with each
        /// request).
        pub fn new(config: &ClientConfig) -> Result<Self, OnlineError> {
            let client = reqwest::blocking::Client::builder()
                .connect_timeout(config.connect_timeout)
                .timeout(config.request_timeout)
                // Redirects could carry the license key elsewhere; the API never redirects.
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| OnlineError::Config(format!("HTTP client: {e}")))?;
            Ok(ReqwestTransport { client })
        }
    }

    impl Transport for ReqwestTransport {
        fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
            let method = reqwest::Method::from_bytes(request.method.as_bytes())
                .map_err(|e| TransportError::Network(format!("HTTP method: {e}")))?;
            let mut builder = self
                .client
                .request(method, &request.url)
                .timeout(request.timeout);
            for (name, value) in &request.headers {
                builder = builder.header(name, value);
            }
            let response = match builder.body(request.body.clone()).send() {
                Ok(response) => response,
                Err(e) if e.is_timeout() => return Err(TransportError::Timeout),
                Err(e) => return Err(TransportError::Network(describe(&e))),
            };
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .filter_map(|(name, value)| {
                    Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
                })
                .collect();
            let mut body = Vec::new();
            std::io::Read::read_to_end(
                &mut std::io::Read::take(response, request.max_body_bytes.saturating_add(1)),
                &mut body,
            )
            .map_err(|e| TransportError::Network(format!("reading the answer: {e}")))?;
            Ok(HttpResponse {
                status,
                headers,
                body,
            })
        }
    }

    /// The error and its causes on one line (reqwest's own message is only the outermost).
    fn describe(error: &reqwest::Error) -> String {
        let mut text = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }
}
