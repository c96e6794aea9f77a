//! The admin console (issue 23) through the real router: first-account setup with the admin
//! token, sign-in and its lockout, CSRF on every form, the session's timeouts and sign-out,
//! the license page and its log-out (force-release) and lease-timeout warning, the audit
//! page's verification, role checks and tenant isolation, and the security headers. On SQLite
//! and PostgreSQL. (The same flows in a real Chromium: scripts/test-console.sh.)

use std::collections::HashMap;

use super::*;

mod accounts;
mod federation;
mod flows;
mod ops;
mod overview;
mod sso_oidc;
mod sso_saml;

/// A browser's share of the work: a cookie jar and form posts.
pub(super) struct Browser {
    state: AppState,
    pub(super) cookies: HashMap<String, String>,
}

pub(super) struct Page {
    pub(super) status: StatusCode,
    pub(super) headers: axum::http::HeaderMap,
    pub(super) body: String,
}

impl Page {
    pub(super) fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The first `name="csrf" value="…"` of the page.
    pub(super) fn csrf(&self) -> String {
        let at = self.body.find(r#"name="csrf" value=""#).expect("a form");
        let rest = &self.body[at + r#"name="csrf" value=""#.len()..];
        rest[..rest.find('"').unwrap()].to_owned()
    }
}

impl Browser {
    pub(super) fn new(state: &AppState) -> Browser {
        Browser {
            state: state.clone(),
            cookies: HashMap::new(),
        }
    }

    async fn send(&mut self, method: &str, path: &str, form: Option<&[(&str, &str)]>) -> Page {
        let mut request = axum::http::Request::builder().method(method).uri(path);
        let jar: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if !jar.is_empty() {
            request = request.header("cookie", jar.join("; "));
        }
        let body = match form {
            Some(fields) => {
                request = request.header("content-type", "application/x-www-form-urlencoded");
                Body::from(
                    url::form_urlencoded::Serializer::new(String::new())
                        .extend_pairs(fields)
                        .finish(),
                )
            }
            None => Body::empty(),
        };
        let response = router(self.state.clone())
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        for cookie in headers.get_all("set-cookie") {
            let cookie = cookie.to_str().unwrap();
            assert!(
                cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
                "{cookie}"
            );
            let (pair, _) = cookie.split_once(';').unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        Page {
            status,
            headers,
            body: String::from_utf8(bytes.to_vec()).unwrap(),
        }
    }

    pub(super) async fn get(&mut self, path: &str) -> Page {
        self.send("GET", path, None).await
    }

    pub(super) async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        self.send("POST", path, Some(form)).await
    }

    pub(super) async fn sign_in(&mut self, user: &str, password: &str) -> Page {
        let form = self.get("/console/sign-in").await;
        let csrf = form.csrf();
        self.post(
            "/console/sign-in",
            &[("csrf", &csrf), ("user_name", user), ("password", password)],
        )
        .await
    }
}

pub(super) const PASSWORD: &str = "correct horse battery";

/// The text of `<code id="…">` on a page.
pub(super) fn code(page: &Page, id: &str) -> String {
    let start = format!(r#"<code id="{id}">"#);
    let at = page
        .body
        .find(&start)
        .unwrap_or_else(|| panic!("no #{id}: {}", page.body));
    page.body[at + start.len()..]
        .split('<')
        .next()
        .unwrap()
        .to_owned()
}
