//! One JSON POST with timeouts, retries (exponential backoff with jitter), a deadline and a
//! size cap, over the client's [`Transport`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::transport::{HttpRequest, Transport, TransportError};
use super::{ClientConfig, OnlineError};
use crate::keys::TrustStore;
use crate::protocol::ErrorBody;

/// Largest answer body accepted; real answers are a few KiB of tokens.
pub const MAX_BODY_BYTES: u64 = 256 * 1024;

/// The request header naming the kids of the app's trust store, so a server that rotated its
/// key answers an app built before the rotation with a key the app trusts (while that key is
/// not retired). Public key ids only: nothing secret.
pub const TRUSTED_KIDS_HEADER: &str = "Licensing-Trusted-Kids";

/// Most kids named in [`TRUSTED_KIDS_HEADER`] (the server refuses more).
const MAX_TRUSTED_KIDS: usize = 32;

/// The client's side of the HTTP exchange: builds each request, asks the [`Transport`], and
/// applies the protocol's rules to what comes back (size cap, status classes, retries).
#[derive(Clone)]
pub(super) struct Http {
    transport: Arc<dyn Transport>,
    /// The value of [`TRUSTED_KIDS_HEADER`]; `None` for an empty trust store.
    trusted_kids: Option<String>,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("transport", &"dyn Transport")
            .field("trusted_kids", &self.trusted_kids)
            .finish()
    }
}

/// What one attempt ended with.
enum Attempt {
    Done(u16, Value),
    /// Worth another attempt: the error to report if none is left, and how long the server
    /// asked to wait first (`Retry-After` of a 429 or 503).
    Retry(OnlineError, Option<Duration>),
    /// Final: another attempt would get the same answer.
    Fail(OnlineError),
}

/// The one rule on the base URL, whatever the transport: `https`, or `http` (loopback tests
/// and private networks; the answers are signed either way). Anything else is refused before
/// a request is sent.
pub(super) fn check_base_url(base_url: &str) -> Result<(), OnlineError> {
    let base = url::Url::parse(base_url)
        .map_err(|e| OnlineError::Config(format!("base URL `{base_url}`: {e}")))?;
    if !matches!(base.scheme(), "https" | "http") {
        return Err(OnlineError::Config(format!(
            "base URL `{base_url}` is not http(s)"
        )));
    }
    Ok(())
}

impl Http {
    pub(super) fn new(
        config: &ClientConfig,
        trust: &TrustStore,
        transport: Arc<dyn Transport>,
    ) -> Result<Self, OnlineError> {
        check_base_url(&config.base_url)?;
        let kids: Vec<&str> = trust
            .keys()
            .map(|key| key.kid())
            .take(MAX_TRUSTED_KIDS)
            .collect();
        let trusted_kids = (!kids.is_empty()).then(|| kids.join(","));
        Ok(Http {
            transport,
            trusted_kids,
        })
    }

    /// POSTs `body` as JSON to `path`; answers the status and the JSON body of a 2xx. A 4xx is
    /// [`OnlineError::Server`] at once; transport errors (connection, timeouts), 5xx and 429
    /// are retried while attempts and time are left. Never takes longer than `limit` (nor the
    /// deadline).
    pub(super) fn post(
        &self,
        config: &ClientConfig,
        path: &str,
        body: &impl Serialize,
        limit: Duration,
    ) -> Result<(u16, Value), OnlineError> {
        let limit = limit.min(config.deadline);
        let started = Instant::now();
        let url = format!("{}{path}", config.base_url.trim_end_matches('/'));
        let body = serde_json::to_vec(body).map_err(|e| OnlineError::Config(e.to_string()))?;
        let mut attempt = 0u32;
        loop {
            let left = limit.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(OnlineError::Timeout(limit));
            }
            let timeout = left.min(config.request_timeout);
            let request = self.request(config, &url, &body, timeout);
            let (error, retry_after) = match self.attempt(&request, limit) {
                Attempt::Done(status, value) => return Ok((status, value)),
                Attempt::Retry(error, retry_after) => (error, retry_after),
                Attempt::Fail(error) => return Err(error),
            };
            if attempt >= config.retries {
                return Err(error);
            }
            // The server's own `Retry-After` wins over the backoff (it knows its rate limit).
            let pause = retry_after.unwrap_or_else(|| backoff(config, attempt));
            let left = limit.saturating_sub(started.elapsed());
            if pause >= left {
                // No time for another attempt: say why the last one failed.
                return Err(error);
            }
            std::thread::sleep(pause);
            attempt += 1;
        }
    }

    fn request(
        &self,
        config: &ClientConfig,
        url: &str,
        body: &[u8],
        timeout: Duration,
    ) -> HttpRequest {
        let mut headers = vec![
            ("Content-Type".to_owned(), "application/json".to_owned()),
            ("Accept".to_owned(), "application/json".to_owned()),
            (
                "User-Agent".to_owned(),
                concat!("licensing/", env!("CARGO_PKG_VERSION")).to_owned(),
            ),
        ];
        if let Some(kids) = &self.trusted_kids {
            headers.push((TRUSTED_KIDS_HEADER.to_owned(), kids.clone()));
        }
        HttpRequest {
            method: "POST".to_owned(),
            url: url.to_owned(),
            headers,
            body: body.to_vec(),
            timeout,
            connect_timeout: config.connect_timeout.min(timeout),
            max_body_bytes: MAX_BODY_BYTES,
        }
    }

    fn attempt(&self, request: &HttpRequest, limit: Duration) -> Attempt {
        let response = match self.transport.send(request) {
            Ok(response) => response,
            Err(TransportError::Timeout) => {
                return Attempt::Retry(OnlineError::Timeout(limit), None);
            }
            Err(TransportError::Network(detail)) => {
                return Attempt::Retry(OnlineError::Network(detail), None);
            }
        };
        let status = response.status;
        let retry_after = response
            .header("Retry-After")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        // The transport was told the cap; whatever it read, a longer body is refused here.
        if response.body.len() as u64 > MAX_BODY_BYTES {
            return Attempt::Fail(OnlineError::BadResponse(format!(
                "HTTP {status}: answer larger than {MAX_BODY_BYTES} bytes"
            )));
        }
        let json: Option<Value> = serde_json::from_slice(&response.body).ok();
        if (200..300).contains(&status) {
            return match json {
                Some(value) => Attempt::Done(status, value),
                None => Attempt::Fail(OnlineError::BadResponse(format!(
                    "HTTP {status} with a body that is not JSON"
                ))),
            };
        }
        let error = server_error(status, json.as_ref());
        if status >= 500 || status == 429 {
            Attempt::Retry(error, retry_after)
        } else {
            // 4xx other than 429 (and 1xx/3xx): the server decided; asking again would not
            // change it.
            Attempt::Fail(error)
        }
    }
}

/// The server's error answer (the protocol's [`ErrorBody`]); a body in another format (a
/// proxy's page, say) is reported as `http_<status>`.
fn server_error(status: u16, json: Option<&Value>) -> OnlineError {
    match json.and_then(|j| ErrorBody::deserialize(j).ok()) {
        Some(body) => OnlineError::Server {
            status,
            code: body.error.to_string(),
            detail: body.detail,
        },
        None => OnlineError::Server {
            status,
            code: format!("http_{status}"),
            detail: "no detail".into(),
        },
    }
}

/// `backoff · 2^attempt`, capped, times a random factor in [0.5, 1) so clients that failed
/// together do not retry together.
fn backoff(config: &ClientConfig, attempt: u32) -> Duration {
    let base = config
        .backoff
        .saturating_mul(1u32 << attempt.min(16))
        .min(config.max_backoff);
    let mut byte = [0u8; 1];
    let jitter = match getrandom::fill(&mut byte) {
        Ok(()) => 0.5 + f64::from(byte[0]) / 512.0,
        Err(_) => 0.75,
    };
    base.mul_f64(jitter)
}
