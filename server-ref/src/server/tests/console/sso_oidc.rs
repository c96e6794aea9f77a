//! Console single sign-on through OpenID Connect against a small provider run by the test on
//! 127.0.0.1 (discovery, JWKS, a token endpoint that checks the client, the redirect URI and
//! the PKCE verifier): the settings page (admins only, the secret write-only), the sign-in
//! dispatcher, a sign-in with the role from the `groups` claim, and the attacks: a replayed
//! callback, a forged state, another browser, a code bound to another flow's PKCE challenge,
//! ID tokens with the wrong audience, issuer or nonce, expired, signed by another key or not
//! at all, and another tenant's account name. On SQLite and PostgreSQL. (The same flow with a
//! real provider library in Chromium: tests/console/sso_oidc.py.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use openidconnect::core::{CoreJwsSigningAlgorithm, CoreRsaPrivateSigningKey};
use openidconnect::{JsonWebKeyId, PkceCodeChallenge, PkceCodeVerifier, PrivateSigningKey};

use super::*;
use crate::server::console::session;

const CLIENT_ID: &str = "licensing-console";
const CLIENT_SECRET: &str = "s3cret-never-shown";
const ORG_B: &str = "org_b";

/// The provider's signing key, and another one with the same key id (a forger's).
const KEY_A: &str = include_str!("oidc_key_a.pem");
const KEY_B: &str = include_str!("oidc_key_b.pem");

/// A code the provider issued: the PKCE challenge and redirect URI of its authorization
/// request, and the ID token it answers.
struct Grant {
    challenge: String,
    redirect_uri: String,
    id_token: String,
}

struct Idp {
    issuer: String,
    codes: Mutex<HashMap<String, Grant>>,
    /// Token requests the provider refused, and why.
    refusals: Mutex<Vec<String>>,
}

fn b64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fn key(pem: &str) -> CoreRsaPrivateSigningKey {
    CoreRsaPrivateSigningKey::from_pem(pem, Some(JsonWebKeyId::new("k1".into()))).unwrap()
}

/// A JWT of `claims` signed with `pem` (RS256), or unsigned (`alg: none`) without one.
fn jwt(claims: &Value, pem: Option<&str>) -> String {
    let alg = if pem.is_some() { "RS256" } else { "none" };
    let header = json!({ "alg": alg, "kid": "k1", "typ": "JWT" });
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = match pem {
        Some(pem) => b64(&key(pem)
            .sign(
                &CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
                input.as_bytes(),
            )
            .unwrap()),
        None => String::new(),
    };
    format!("{input}.{signature}")
}

/// Starts the provider on 127.0.0.1; its issuer URL.
async fn start_idp() -> Arc<Idp> {
    use axum::extract::{Form, State};
    use axum::routing::{get, post};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let idp = Arc::new(Idp {
        issuer: issuer.clone(),
        codes: Mutex::new(HashMap::new()),
        refusals: Mutex::new(Vec::new()),
    });
    async fn discovery(State(idp): State<Arc<Idp>>) -> axum::Json<Value> {
        let i = &idp.issuer;
        axum::Json(json!({
            "issuer": i,
            "authorization_endpoint": format!("{i}/authorize"),
            "token_endpoint": format!("{i}/token"),
            "jwks_uri": format!("{i}/jwks"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
        }))
    }
    async fn jwks() -> axum::Json<Value> {
        let public = serde_json::to_value(key(KEY_A).as_verification_key()).unwrap();
        axum::Json(json!({ "keys": [public] }))
    }
    async fn token(
        State(idp): State<Arc<Idp>>,
        headers: axum::http::HeaderMap,
        Form(form): Form<HashMap<String, String>>,
    ) -> axum::response::Response {
        use axum::response::IntoResponse;
        let refuse = |why: &str| {
            idp.refusals.lock().unwrap().push(why.to_owned());
            (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({ "error": "invalid_grant", "error_description": why })),
            )
                .into_response()
        };
        let basic = format!("Basic {}", {
            let mut s = b64(format!("{CLIENT_ID}:{CLIENT_SECRET}").as_bytes());
            while !s.len().is_multiple_of(4) {
                s.push('=');
            }
            s.replace('-', "+").replace('_', "/")
        });
        if headers.get("authorization").and_then(|h| h.to_str().ok()) != Some(basic.as_str()) {
            return refuse("client authentication");
        }
        if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
            return refuse("grant type");
        }
        let code = form.get("code").cloned().unwrap_or_default();
        let Some(grant) = idp.codes.lock().unwrap().remove(&code) else {
            return refuse("unknown code");
        };
        if form.get("redirect_uri") != Some(&grant.redirect_uri) {
            return refuse("redirect uri");
        }
        let Some(verifier) = form.get("code_verifier") else {
            return refuse("no PKCE verifier");
        };
        let computed =
            PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(verifier.clone()));
        if computed.as_str() != grant.challenge {
            return refuse("PKCE verifier does not match the challenge");
        }
        axum::Json(json!({
            "access_token": "at", "token_type": "Bearer", "expires_in": 300,
            "id_token": grant.id_token,
        }))
        .into_response()
    }
    let app = axum::Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/token", post(token))
        .with_state(idp.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    idp
}

/// A browser: its cookies (any SameSite: the flow cookie is Lax), requests through the router.
struct Agent {
    state: AppState,
    cookies: HashMap<String, String>,
}

impl Agent {
    fn new(state: &AppState) -> Agent {
        Agent {
            state: state.clone(),
            cookies: HashMap::new(),
        }
    }

    async fn send(&mut self, method: &str, path: &str, form: Option<&[(&str, &str)]>) -> Page {
        let mut request = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "console.test");
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
            assert!(cookie.contains("HttpOnly"), "{cookie}");
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

    async fn get(&mut self, path: &str) -> Page {
        self.send("GET", path, None).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        self.send("POST", path, Some(form)).await
    }

    async fn sign_in(&mut self, user: &str) {
        let form = self.get("/console/sign-in").await;
        let csrf = form.csrf();
        let page = self
            .post(
                "/console/sign-in",
                &[("csrf", &csrf), ("user_name", user), ("password", PASSWORD)],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    }
}

/// What the console sent the browser to the provider with.
struct Authorization {
    state: String,
    nonce: String,
    challenge: String,
    redirect_uri: String,
}

/// Starts a sign-in of `org` in `agent`; the authorization request's parameters.
async fn authorize(agent: &mut Agent, idp: &Idp, org: &str) -> Authorization {
    let page = agent.get(&format!("/console/sso/oidc/{org}/start")).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let location = url::Url::parse(page.location()).unwrap();
    assert!(
        location
            .as_str()
            .starts_with(&format!("{}/authorize?", idp.issuer)),
        "{location}"
    );
    let q: HashMap<String, String> = location.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q["scope"].split(' ').any(|s| s == "openid"), "{q:?}");
    assert!(!location.as_str().contains(CLIENT_SECRET));
    assert!(agent.cookies.contains_key("lic_sso"));
    Authorization {
        state: q["state"].clone(),
        nonce: q["nonce"].clone(),
        challenge: q["code_challenge"].clone(),
        redirect_uri: q["redirect_uri"].clone(),
    }
}

/// ID token claims as the provider would send them for `auth`.
fn claims(idp: &Idp, auth: &Authorization, sub: &str, email: &str, groups: &[&str]) -> Value {
    let now = now();
    json!({
        "iss": idp.issuer, "aud": CLIENT_ID, "sub": sub, "email": email,
        "email_verified": true, "groups": groups, "nonce": auth.nonce,
        "iat": now, "exp": now + 300,
    })
}

/// The provider issues a code for `auth` answering `id_token`; the callback with it and the
/// state of `answer_state`.
async fn answer(
    agent: &mut Agent,
    idp: &Idp,
    org: &str,
    auth: &Authorization,
    answer_state: &str,
    id_token: String,
) -> Page {
    let code = session::new_secret().unwrap();
    idp.codes.lock().unwrap().insert(
        code.clone(),
        Grant {
            challenge: auth.challenge.clone(),
            redirect_uri: auth.redirect_uri.clone(),
            id_token,
        },
    );
    agent
        .get(&format!(
            "/console/sso/oidc/{org}/callback?code={code}&state={answer_state}"
        ))
        .await
}

/// A refused callback: the status, the reason on the page, no session.
fn assert_refused(page: &Page, status: StatusCode, reason: &str, agent: &Agent) {
    assert_eq!(page.status, status, "{}", page.body);
    assert!(page.body.contains("Single sign-on failed"), "{}", page.body);
    assert!(
        page.body.contains(reason),
        "wanted `{reason}`: {}",
        page.body
    );
    assert!(!agent.cookies.contains_key("lic_session"), "no session");
}

async fn post_settings(agent: &mut Agent, fields: Vec<(String, String)>) -> Page {
    let borrowed: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    agent.post("/console/settings/sso", &borrowed).await
}

#[tokio::test]
async fn oidc_sign_in_works_and_refuses_every_forgery() {
    oidc_on(None).await;
    if let Some(url) = postgres::fresh_database("console_oidc") {
        oidc_on(Some(&url)).await;
    }
}

async fn oidc_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    let db = state.db();
    let idp = start_idp().await;
    let hash = session::hash_password(PASSWORD).unwrap();
    for (id, org, name, role) in [
        ("acc_admin", OPERATOR_ORGANIZATION, "admin", "admin"),
        ("acc_lm", OPERATOR_ORGANIZATION, "lm", "license_manager"),
    ] {
        db.insert_console_account(id, org, name, &hash, role, 0)
            .await
            .unwrap();
    }
    let org_b = db::Organization {
        id: ORG_B.into(),
        name: "B".into(),
        operator: 0,
        created_at: 0,
    };
    assert!(db.insert_organization(&org_b).await.unwrap());

    // A license manager sees no link and is refused the page and the form.
    let mut lm = Agent::new(&state);
    lm.sign_in("lm").await;
    let overview = lm.get("/console/").await;
    assert!(!overview.body.contains("nav-sso"), "{}", overview.body);
    assert_eq!(
        lm.get("/console/settings/sso").await.status,
        StatusCode::FORBIDDEN
    );
    let csrf = overview.csrf();
    let forged = lm
        .post(
            "/console/settings/sso",
            &[
                ("csrf", &csrf),
                ("issuer_url", &idp.issuer),
                ("client_id", "x"),
                ("client_secret", "y"),
            ],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(
        db.oidc_config(OPERATOR_ORGANIZATION)
            .await
            .unwrap()
            .is_none()
    );

    // The admin configures the provider through the settings page.
    let mut admin = Agent::new(&state);
    admin.sign_in("admin").await;
    let page = admin.get("/console/settings/sso").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("nav-sso"));
    let callback = format!("http://console.test/console/sso/oidc/{OPERATOR_ORGANIZATION}/callback");
    // (minijinja escapes `/` in text.)
    let escaped = |s: &str| s.replace('/', "&#x2f;");
    assert!(page.body.contains(&escaped(&callback)), "{}", page.body);
    let csrf = page.csrf();
    let settings = |issuer: &str, secret: &str, map: &str, domains: &str| {
        vec![
            ("csrf".to_owned(), csrf.clone()),
            ("issuer_url".to_owned(), issuer.to_owned()),
            ("client_id".to_owned(), CLIENT_ID.to_owned()),
            ("client_secret".to_owned(), secret.to_owned()),
            ("scopes".to_owned(), "email profile".to_owned()),
            ("role_claim".to_owned(), "groups".to_owned()),
            ("role_map".to_owned(), map.to_owned()),
            ("default_role".to_owned(), String::new()),
            ("email_domains".to_owned(), domains.to_owned()),
            ("enabled".to_owned(), "1".to_owned()),
        ]
    };
    let map = r#"{"licensing-admins": "admin", "licensing-readers": "auditor"}"#;
    for (fields, field) in [
        (settings("ftp://idp", CLIENT_SECRET, map, ""), "Issuer URL"),
        (settings(&idp.issuer, "", map, ""), "Client secret"),
        (
            settings(&idp.issuer, CLIENT_SECRET, r#"{"x": "root"}"#, ""),
            "Role map",
        ),
        (
            settings(&idp.issuer, CLIENT_SECRET, map, "not a domain"),
            "E-mail domains",
        ),
    ] {
        let bad = post_settings(&mut admin, fields).await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{field}");
        assert!(bad.body.contains(field), "{field}: {}", bad.body);
    }
    assert!(
        db.oidc_config(OPERATOR_ORGANIZATION)
            .await
            .unwrap()
            .is_none()
    );
    let saved = post_settings(
        &mut admin,
        settings(&idp.issuer, CLIENT_SECRET, map, "Example.com"),
    )
    .await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
    assert!(
        saved.body.contains("discovery document was fetched"),
        "{}",
        saved.body
    );
    // The secret is write-only: "(set)", never the value; an empty field keeps it.
    assert!(saved.body.contains(r#"id="secret-set""#));
    assert!(!saved.body.contains(CLIENT_SECRET));
    let kept = post_settings(&mut admin, settings(&idp.issuer, "", map, "example.com")).await;
    assert_eq!(kept.status, StatusCode::OK, "{}", kept.body);
    let stored = db
        .oidc_config(OPERATOR_ORGANIZATION)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.client_secret, CLIENT_SECRET);
    assert_eq!(stored.scopes, "openid email profile");
    // Org B uses the same provider; a domain of another organization is refused.
    let row = db::console_sso::OidcConfigRow {
        organization_id: ORG_B.into(),
        ..stored.clone()
    };
    db.put_oidc_config(&row).await.unwrap();
    assert_eq!(
        db.set_sso_domains(ORG_B, &["example.com".into()])
            .await
            .unwrap(),
        Err("example.com".to_owned())
    );

    // The sign-in page's single sign-on form: by e-mail domain or organization id.
    let mut browser = Agent::new(&state);
    let sign_in = browser.get("/console/sign-in").await;
    assert!(sign_in.body.contains(r#"action="/console/sso""#));
    let start = format!("/console/sso/oidc/{OPERATOR_ORGANIZATION}/start");
    for who in ["alice@EXAMPLE.com", OPERATOR_ORGANIZATION] {
        let page = browser.get(&format!("/console/sso?who={who}")).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(
            page.body.contains(&format!(r#"content="0;url={start}""#)),
            "{}",
            page.body
        );
    }
    for who in ["bob@elsewhere.test", "org_nope", ""] {
        let page = browser.get(&format!("/console/sso?who={who}")).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{who}");
    }

    // A sign-in: the role from the `groups` claim, the session like a password sign-in's.
    let auth = authorize(&mut browser, &idp, OPERATOR_ORGANIZATION).await;
    assert_eq!(auth.redirect_uri, callback);
    let token = jwt(
        &claims(
            &idp,
            &auth,
            "sub-alice",
            "alice@example.com",
            &["licensing-admins"],
        ),
        Some(KEY_A),
    );
    let callback_path = format!("/console/sso/oidc/{OPERATOR_ORGANIZATION}/callback");
    let done = answer(
        &mut browser,
        &idp,
        OPERATOR_ORGANIZATION,
        &auth,
        &auth.state,
        token,
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(done.body.contains(r#"content="0;url=/console/""#));
    assert!(browser.cookies.contains_key("lic_session"));
    assert!(
        !browser.cookies.contains_key("lic_sso"),
        "the flow cookie is gone"
    );
    let overview = browser.get("/console/").await;
    assert_eq!(overview.status, StatusCode::OK, "{}", overview.body);
    assert!(
        overview.body.contains("alice@example.com (admin)"),
        "{}",
        overview.body
    );
    let signed_in_cookies = browser.cookies.clone();

    // Replayed: the same callback again (the state is spent), in the same browser.
    browser.cookies.remove("lic_session");
    let sso_cookie = {
        let again = authorize(&mut browser, &idp, OPERATOR_ORGANIZATION).await;
        drop(again);
        browser.cookies["lic_sso"].clone()
    };
    let replay = browser
        .get(&format!(
            "{callback_path}?code=whatever&state={}",
            auth.state
        ))
        .await;
    assert_refused(
        &replay,
        StatusCode::BAD_REQUEST,
        "already used state",
        &browser,
    );

    // A forged state.
    browser.cookies.insert("lic_sso".into(), sso_cookie.clone());
    let forged = browser
        .get(&format!("{callback_path}?code=c&state=forged"))
        .await;
    assert_refused(
        &forged,
        StatusCode::BAD_REQUEST,
        "already used state",
        &browser,
    );

    // Another browser with the victim's answer (login CSRF / a stolen link).
    let auth = authorize(&mut browser, &idp, OPERATOR_ORGANIZATION).await;
    let token = jwt(
        &claims(
            &idp,
            &auth,
            "sub-alice",
            "a@example.com",
            &["licensing-admins"],
        ),
        Some(KEY_A),
    );
    let mut stranger = Agent::new(&state);
    let stolen = answer(
        &mut stranger,
        &idp,
        OPERATOR_ORGANIZATION,
        &auth,
        &auth.state,
        token,
    )
    .await;
    assert_refused(
        &stolen,
        StatusCode::BAD_REQUEST,
        "did not start the sign-in",
        &stranger,
    );

    // PKCE: a code issued to flow A's challenge, injected into flow B: the provider refuses
    // the exchange because B's verifier does not match.
    let a = authorize(&mut browser, &idp, OPERATOR_ORGANIZATION).await;
    let b = authorize(&mut browser, &idp, OPERATOR_ORGANIZATION).await;
    let token = jwt(
        &claims(
            &idp,
            &b,
            "sub-alice",
            "a@example.com",
            &["licensing-admins"],
        ),
        Some(KEY_A),
    );
    let injected = answer(
        &mut browser,
        &idp,
        OPERATOR_ORGANIZATION,
        &a,
        &b.state,
        token,
    )
    .await;
    assert_refused(
        &injected,
        StatusCode::UNAUTHORIZED,
        "code exchange failed",
        &browser,
    );
    assert_eq!(
        idp.refusals.lock().unwrap().last().map(String::as_str),
        Some("PKCE verifier does not match the challenge")
    );

    // Forged or wrong ID tokens, each refused for its own reason.
    type Change = fn(&mut Value);
    let cases: [(&str, Option<&str>, Change, &str); 6] = [
        (
            "wrong audience",
            Some(KEY_A),
            |c| c["aud"] = json!("another-client"),
            "Invalid audiences",
        ),
        (
            "wrong issuer",
            Some(KEY_A),
            |c| c["iss"] = json!("http://127.0.0.1:1"),
            "Invalid issuer",
        ),
        (
            "expired",
            Some(KEY_A),
            |c| {
                c["exp"] = json!(now() - 3600);
                c["iat"] = json!(now() - 7200);
            },
            "Expired",
        ),
        (
            "wrong nonce",
            Some(KEY_A),
            |c| c["nonce"] = json!("another-nonce"),
            "Invalid nonce",
        ),
        (
            "another key",
            Some(KEY_B),
            |_| {},
            "Signature verification failed",
        ),
        ("alg none", None, |_| {}, "the ID token is not valid"),
    ];
    for (case, pem, change, reason) in cases {
        let auth = authorize(&mut browser, &idp, OPERATOR_ORGANIZATION).await;
        let mut c = claims(
            &idp,
            &auth,
            "sub-alice",
            "alice@example.com",
            &["licensing-admins"],
        );
        change(&mut c);
        let page = answer(
            &mut browser,
            &idp,
            OPERATOR_ORGANIZATION,
            &auth,
            &auth.state,
            jwt(&c, pem),
        )
        .await;
        assert_eq!(
            page.status,
            StatusCode::UNAUTHORIZED,
            "{case}: {}",
            page.body
        );
        assert!(
            page.body.contains(reason),
            "{case}: wanted `{reason}`: {}",
            page.body
        );
        assert!(!browser.cookies.contains_key("lic_session"), "{case}");
    }

    // Another tenant: org B's provider asserts the operator admin's user name. A new account
    // of org B is made (the name made unique); the operator's admin is untouched.
    let mut tenant = Agent::new(&state);
    let auth = authorize(&mut tenant, &idp, ORG_B).await;
    let token = jwt(
        &claims(&idp, &auth, "sub-mallory", "admin", &["licensing-admins"]),
        Some(KEY_A),
    );
    let page = answer(&mut tenant, &idp, ORG_B, &auth, &auth.state, token).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let secret = tenant.cookies["lic_session"].clone();
    let stored = db
        .console_session(&secrets::sha256_hex(secret.as_bytes()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.organization_id, ORG_B);
    assert_ne!(stored.account_id, "acc_admin");
    assert_eq!(stored.user_name, "admin (2)");
    let operator_accounts = db
        .list_console_accounts(OPERATOR_ORGANIZATION)
        .await
        .unwrap();
    assert!(
        operator_accounts
            .iter()
            .any(|a| a.id == "acc_admin" && a.role == "admin")
    );
    assert_eq!(db.list_console_accounts(ORG_B).await.unwrap().len(), 1);
    // Org B's session sees org B only: the operator's SSO settings are not its.
    let b_page = tenant.get("/console/settings/sso").await;
    assert_eq!(b_page.status, StatusCode::OK);
    assert!(
        b_page
            .body
            .contains(&escaped(&format!("/console/sso/oidc/{ORG_B}/callback")))
    );

    // A sign-in whose groups map to no role is refused (no default role).
    let auth = authorize(&mut browser, &idp, OPERATOR_ORGANIZATION).await;
    let token = jwt(
        &claims(&idp, &auth, "sub-alice", "alice@example.com", &["sales"]),
        Some(KEY_A),
    );
    let page = answer(
        &mut browser,
        &idp,
        OPERATOR_ORGANIZATION,
        &auth,
        &auth.state,
        token,
    )
    .await;
    assert_refused(&page, StatusCode::FORBIDDEN, "no role", &browser);

    // The first session still works; every refusal is in the audit trail with its reason.
    browser.cookies = signed_in_cookies;
    assert_eq!(browser.get("/console/").await.status, StatusCode::OK);
    state.audit().flush().await;
    let events = db
        .list_audit_events(OPERATOR_ORGANIZATION, None, 0, 1000)
        .await
        .unwrap();
    let refusals: Vec<&str> = events
        .iter()
        .filter(|e| e.action == "console.sign_in_refused")
        .map(|e| e.detail.as_str())
        .collect();
    for reason in [
        "already used state",
        "did not start the sign-in",
        "code exchange failed",
        "Invalid audiences",
        "Invalid issuer",
        "Expired",
        "Invalid nonce",
        "Signature verification failed",
        "no role",
    ] {
        assert!(
            refusals
                .iter()
                .any(|d| d.starts_with("oidc: ") && d.contains(reason)),
            "{reason}: {refusals:?}"
        );
    }
    assert!(
        events
            .iter()
            .any(|e| e.action == "console.signed_in" && e.detail == "oidc")
    );
    // The settings changes are in the audit trail as the admin (the request layer's record).
    let entries = db.list_audit(OPERATOR_ORGANIZATION, 0, 1000).await.unwrap();
    let text = format!("{entries:?}");
    assert!(text.contains("/console/settings/sso"), "{text}");
    assert!(
        !text.contains(CLIENT_SECRET),
        "the secret is never recorded"
    );
}
