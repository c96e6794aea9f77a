//! The server's address as a client reached it, for the absolute URLs the server hands out:
//! SCIM's `location`s and `$ref`s, the console's single sign-on redirect and assertion
//! consumer URLs, the OAuth 2.0 metadata's endpoints. One definition, so they all agree.

use axum::http::{HeaderMap, header};

/// `scheme://host` of the request, no trailing slash: the `Host` header when it is a
/// plausible host name or address (it is the client's choice: a path, a user part or a
/// space would let it steer the URLs), else `localhost`; `https` when `X-Forwarded-Proto`
/// says so (a TLS proxy in front, or the connection layer over the server's own TLS, which
/// overwrites whatever the client sent).
pub(crate) fn request_base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| plausible_host(h))
        .unwrap_or("localhost");
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    format!("{}://{host}", if https { "https" } else { "http" })
}

/// A host name, an IPv4 or bracketed IPv6 address, with an optional port: nothing else.
fn plausible_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn with(host: Option<&str>, proto: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(host) = host {
            headers.insert(header::HOST, host.parse().unwrap());
        }
        if let Some(proto) = proto {
            headers.insert("x-forwarded-proto", proto.parse().unwrap());
        }
        headers
    }

    #[test]
    fn the_host_and_scheme_the_client_reached() {
        assert_eq!(
            request_base_url(&with(Some("licensing.example.com"), None)),
            "http://licensing.example.com"
        );
        assert_eq!(
            request_base_url(&with(Some("127.0.0.1:8443"), Some("HTTPS"))),
            "https://127.0.0.1:8443"
        );
        assert_eq!(
            request_base_url(&with(Some("[::1]:80"), Some("http"))),
            "http://[::1]:80"
        );
        assert_eq!(request_base_url(&with(None, None)), "http://localhost");
    }

    #[test]
    fn a_host_that_would_steer_the_url_is_not_used() {
        for host in [
            "evil.example/steal?",
            "user@evil.example",
            "evil.example#",
            "a b",
            "",
        ] {
            let headers = match host {
                "" => with(None, None),
                _ => with(Some(host), None),
            };
            assert_eq!(request_base_url(&headers), "http://localhost", "{host}");
        }
        assert_eq!(
            request_base_url(&with(Some(&"a".repeat(256)), None)),
            "http://localhost"
        );
    }
}
