//! One JSON POST with timeouts, retries (exponential backoff with jitter) and a deadline.

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use super::{ClientConfig, OnlineError};
use crate::keys::TrustStore;

/// Largest answer body read; real answers are a few KiB of tokens.
const MAX_BODY_BYTES: u64 = 256 * 1024;

/// The request header naming the kids of the app's trust store, so a server that rotated its
/// key answers an app built before the rotation with a key the app trusts (while that key is
/// not retired). Public key ids only: nothing secret.
pub const TRUSTED_KIDS_HEADER: &str = "Licensing-Trusted-Kids";

/// Most kids named in [`TRUSTED_KIDS_HEADER`] (the server refuses more).
const MAX_TRUSTED_KIDS: usize = 32;

#[derive(Debug, Clone)]
pub(super) struct Http {
    client: reqwest::blocking::Client,
    /// The value of [`TRUSTED_KIDS_HEADER`]; `None` for an empty trust store.
    trusted_kids: Option<String>,
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

impl Http {
    pub(super) fn new(config: &ClientConfig, trust: &TrustStore) -> Result<Self, OnlineError> {
        let base = reqwest::Url::parse(&config.base_url)
            .map_err(|e| OnlineError::Config(format!("base URL `{}`: {e}", config.base_url)))?;
        if !matches!(base.scheme(), "https" | "http") {
            return Err(OnlineError::Config(format!(
                "base URL `{}` is not http(s)",
                config.base_url
            )));
        }
        let client = reqwest::blocking::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .user_agent(concat!("licensing/", env!("CARGO_PKG_VERSION")))
            // Redirects could carry the license key elsewhere; the API never redirects.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| OnlineError::Config(format!("HTTP client: {e}")))?;
        let kids: Vec<&str> = trust
            .keys()
            .map(|key| key.kid())
            .take(MAX_TRUSTED_KIDS)
            .collect();
        let trusted_kids = (!kids.is_empty()).then(|| kids.join(","));
        Ok(Http {
            client,
            trusted_kids,
        })
    }

    /// POSTs `body` as JSON to `path`; answers the status and the JSON body of a 2xx. A 4xx is
    /// [`OnlineError::Server`] at once; connection errors, timeouts, 5xx and 429 are retried
    /// while attempts and time are left. Never takes longer than `limit` (nor the deadline).
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
            let (error, retry_after) = match self.attempt(&url, &body, timeout, limit) {
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

    fn attempt(&self, url: &str, body: &[u8], timeout: Duration, limit: Duration) -> Attempt {
        let mut request = self
            .client
            .post(url)
            .timeout(timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(kids) = &self.trusted_kids {
            request = request.header(TRUSTED_KIDS_HEADER, kids);
        }
        let sent = request.body(body.to_vec()).send();
        let response = match sent {
            Ok(response) => response,
            Err(e) if e.is_timeout() => return Attempt::Retry(OnlineError::Timeout(limit), None),
            Err(e) => return Attempt::Retry(OnlineError::Network(describe(&e)), None),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let mut bytes = Vec::new();
        let read = std::io::Read::read_to_end(
            &mut std::io::Read::take(response, MAX_BODY_BYTES + 1),
            &mut bytes,
        );
        if let Err(e) = read {
            return Attempt::Retry(
                OnlineError::Network(format!("reading the answer: {e}")),
                None,
            );
        }
        if bytes.len() as u64 > MAX_BODY_BYTES {
            return Attempt::Fail(OnlineError::BadResponse(format!(
                "HTTP {status}: answer larger than {MAX_BODY_BYTES} bytes"
            )));
        }
        let json: Option<Value> = serde_json::from_slice(&bytes).ok();
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

fn server_error(status: u16, json: Option<&Value>) -> OnlineError {
    let field = |name: &str| {
        json.and_then(|j| j.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    OnlineError::Server {
        status,
        code: field("error").unwrap_or_else(|| format!("http_{status}")),
        detail: field("detail").unwrap_or_else(|| "no detail".into()),
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
