//! OAuth 2.0 (issue 25): clients, the client-credentials grant and its RFC 6749 errors, the
//! RFC 9068 access tokens on the admin API (tenant, role, expiry, type, algorithm, key,
//! revocation), RFC 7009 revocation and RFC 8414 metadata. Each on SQLite and PostgreSQL.

use axum::http::HeaderMap;
use licensing_core::access::AccessClaims;
use licensing_core::{PrivateKey, TokenKind};

use super::*;

/// A form POST to `path` with HTTP Basic credentials (or none) and a raw body.
async fn form(
    state: &AppState,
    path: &str,
    basic: Option<(&str, &str)>,
    content_type: &str,
    body: &str,
) -> (StatusCode, HeaderMap, Value) {
    use base64::Engine as _;
    let mut request = axum::http::Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", content_type);
    if let Some((id, secret)) = basic {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}").as_bytes());
        request = request.header("authorization", format!("Basic {encoded}"));
    }
    let response = router(state.clone())
        .oneshot(request.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

const FORM: &str = "application/x-www-form-urlencoded";

/// Registers a client of `role` with `admin`'s token; returns its id and secret.
async fn client(state: &AppState, admin: &str, role: &str) -> (String, String) {
    let (status, body) = call(
        state,
        "POST",
        "/v1/oauth-clients",
        Some(admin),
        Some(json!({ "name": "billing", "role": role })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["role"], role);
    assert_eq!(body["client_id"], body["id"]);
    (
        body["client_id"].as_str().unwrap().to_owned(),
        body["client_secret"].as_str().unwrap().to_owned(),
    )
}

/// An access token for `(id, secret)` by HTTP Basic, with `extra` form parameters.
async fn token(state: &AppState, id: &str, secret: &str, extra: &str) -> String {
    let body = format!("grant_type=client_credentials{extra}");
    let (status, _, answer) = form(state, "/oauth/token", Some((id, secret)), FORM, &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["access_token"].as_str().unwrap().to_owned()
}

fn claims_of(token: &str) -> (Value, Value) {
    licensing_core::decode_unverified(token).unwrap()
}

#[tokio::test]
async fn the_grant_issues_rfc_9068_tokens_the_admin_api_accepts() {
    grant_on(None).await;
    if let Some(url) = postgres::fresh_database("oauth_grant") {
        grant_on(Some(&url)).await;
    }
}

async fn grant_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    let (id, secret) = client(&state, ADMIN, "license_manager").await;

    // client_secret_basic, no scope: the client's role.
    let (status, headers, answer) = form(
        &state,
        "/oauth/token",
        Some((&id, &secret)),
        FORM,
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(answer["token_type"], "Bearer");
    assert_eq!(answer["expires_in"], 900);
    assert_eq!(answer["scope"], "license_manager");
    let access = answer["access_token"].as_str().unwrap().to_owned();
    let (header, claims) = claims_of(&access);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["kid"], state.key().public_key().kid());
    assert_eq!(claims["iss"], "test");
    assert_eq!(claims["aud"], "test/v1");
    assert_eq!(claims["sub"], id.as_str());
    assert_eq!(claims["client_id"], id.as_str());
    assert_eq!(claims["scope"], "license_manager");
    assert_eq!(claims["org"], OPERATOR_ORGANIZATION);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
    assert!(claims["jti"].as_str().unwrap().starts_with("atj_"));
    licensing_core::access::verify_access_token(
        &access,
        &super::super::oauth::trust(&state),
        "test",
        "test/v1",
        now(),
    )
    .unwrap();

    // The token is the client's organization and role on the admin API.
    let (status, _) = call(&state, "GET", "/v1/licenses", Some(&access), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = call(
        &state,
        "POST",
        "/v1/products",
        Some(&access),
        Some(json!({ "id": "oauth-p", "name": "P" })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _) = call(&state, "GET", "/v1/api-tokens", Some(&access), None).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a license manager is no admin"
    );

    // client_secret_post with a lower scope: that role only.
    let body = format!(
        "grant_type=client_credentials&scope=auditor&client_id={id}&client_secret={secret}"
    );
    let (status, _, answer) = form(&state, "/oauth/token", None, FORM, &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["scope"], "auditor");
    let auditor = answer["access_token"].as_str().unwrap();
    let (status, _) = call(
        &state,
        "POST",
        "/v1/products",
        Some(auditor),
        Some(json!({ "id": "oauth-q", "name": "Q" })),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The request layer audits the client's creation and the token's writes, naming the
    // admin token and the OAuth client.
    let (_, audit) = call(&state, "GET", "/v1/audit", Some(ADMIN), None).await;
    let entries = audit["entries"].as_array().unwrap();
    let by = |action: &str| {
        entries
            .iter()
            .find(|e| e["action"] == action)
            .map(|e| e["actor"].as_str().unwrap().to_owned())
    };
    assert_eq!(by("POST /v1/oauth-clients").as_deref(), Some("tok_a"));
    assert_eq!(by("POST /v1/products").as_deref(), Some(id.as_str()));

    // Listed without the secret.
    let (status, list) = call(&state, "GET", "/v1/oauth-clients", Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["oauth_clients"][0]["id"], id.as_str());
    assert!(!list.to_string().contains(&secret));
}

#[tokio::test]
async fn token_endpoint_errors_follow_rfc_6749() {
    errors_on(None).await;
    if let Some(url) = postgres::fresh_database("oauth_errors") {
        errors_on(Some(&url)).await;
    }
}

async fn errors_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    let (id, secret) = client(&state, ADMIN, "it_staff").await;
    let grant = "grant_type=client_credentials";
    // (Basic credentials, content type, body, status, RFC 6749 error)
    type Case<'a> = (
        Option<(&'a str, &'a str)>,
        &'a str,
        String,
        StatusCode,
        &'a str,
    );
    let cases: Vec<Case<'_>> = vec![
        // No client authentication, a wrong secret, an unknown client.
        (
            None,
            FORM,
            grant.into(),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            Some((&id, "lsc_wrong")),
            FORM,
            grant.into(),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            Some(("oac_nobody", &secret)),
            FORM,
            grant.into(),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            None,
            FORM,
            format!("{grant}&client_id={id}&client_secret=nope"),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        // Two authentication methods at once.
        (
            Some((&id, &secret)),
            FORM,
            format!("{grant}&client_secret={secret}"),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        // No grant type, another grant type, a repeated parameter, not a form.
        (
            Some((&id, &secret)),
            FORM,
            "scope=it_staff".into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Some((&id, &secret)),
            FORM,
            "grant_type=password&username=a&password=b".into(),
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        ),
        (
            Some((&id, &secret)),
            FORM,
            format!("{grant}&{grant}"),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Some((&id, &secret)),
            "application/json",
            r#"{"grant_type":"client_credentials"}"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        // A scope above the client's role, an unknown one, two roles.
        (
            Some((&id, &secret)),
            FORM,
            format!("{grant}&scope=admin"),
            StatusCode::BAD_REQUEST,
            "invalid_scope",
        ),
        (
            Some((&id, &secret)),
            FORM,
            format!("{grant}&scope=license_manager"),
            StatusCode::BAD_REQUEST,
            "invalid_scope",
        ),
        (
            Some((&id, &secret)),
            FORM,
            format!("{grant}&scope=scim"),
            StatusCode::BAD_REQUEST,
            "invalid_scope",
        ),
        (
            Some((&id, &secret)),
            FORM,
            format!("{grant}&scope=it_staff%20auditor"),
            StatusCode::BAD_REQUEST,
            "invalid_scope",
        ),
        // Oversize.
        (
            Some((&id, &secret)),
            FORM,
            format!("{grant}&pad={}", "x".repeat(9000)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
        ),
    ];
    for (basic, content_type, body, status, error) in cases {
        let (got, headers, answer) = form(&state, "/oauth/token", basic, content_type, &body).await;
        let shown = &body[..body.len().min(80)];
        assert_eq!(got, status, "{shown}: {answer}");
        assert_eq!(answer["error"], error, "{shown}");
        assert!(answer["error_description"].is_string());
        assert_eq!(headers["cache-control"], "no-store", "{shown}");
        if error == "invalid_client" {
            let challenge = headers["www-authenticate"].to_str().unwrap();
            assert!(challenge.starts_with("Basic "), "{challenge}");
        }
    }
    // An empty parameter counts as absent (RFC 6749 §3.1): the client's own role.
    let answer = token(&state, &id, &secret, "&scope=").await;
    assert_eq!(claims_of(&answer).1["scope"], "it_staff");
}

#[tokio::test]
async fn clients_are_per_organization_and_admin_only() {
    tenants_on_oauth(None).await;
    if let Some(url) = postgres::fresh_database("oauth_tenants") {
        tenants_on_oauth(Some(&url)).await;
    }
}

async fn tenants_on_oauth(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    let (_, license_a) = license(&state, json!({ "model": "perpetual" })).await;
    let (id_a, _) = client(&state, ADMIN, "auditor").await;

    // Organization B, its admin, its client and token.
    let (status, created) = call(
        &state,
        "POST",
        "/v1/organizations",
        Some(ADMIN),
        Some(json!({ "name": "Contoso" })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let admin_b = created["admin_token"].as_str().unwrap().to_owned();
    let (id_b, secret_b) = client(&state, &admin_b, "admin").await;
    let token_b = token(&state, &id_b, &secret_b, "").await;
    assert_eq!(claims_of(&token_b).1["org"], created["organization"]["id"]);

    // B's token sees none of A's rows: 404 as for a missing one, empty lists.
    let (status, _) = call(
        &state,
        "GET",
        &format!("/v1/licenses/{license_a}"),
        Some(&token_b),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = call(&state, "GET", "/v1/licenses", Some(&token_b), None).await;
    assert_eq!(list["licenses"], json!([]));
    let (_, list) = call(&state, "GET", "/v1/oauth-clients", Some(&token_b), None).await;
    assert_eq!(list["oauth_clients"].as_array().unwrap().len(), 1);
    let (status, _) = call(
        &state,
        "POST",
        &format!("/v1/oauth-clients/{id_a}/revoke"),
        Some(&token_b),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Not an operator: no organizations, no keys.
    let (status, _) = call(
        &state,
        "POST",
        "/v1/organizations",
        Some(&token_b),
        Some(json!({ "name": "Evil" })),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Only admins register or revoke clients, never with the `scim` role.
    let (status, _) = call(
        &state,
        "POST",
        "/v1/oauth-clients",
        Some(AUDITOR),
        Some(json!({ "name": "x", "role": "auditor" })),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(&state, "GET", "/v1/oauth-clients", Some(AUDITOR), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = call(
        &state,
        "POST",
        "/v1/oauth-clients",
        Some(ADMIN),
        Some(json!({ "name": "x", "role": "scim" })),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // A license manager's token cannot mint itself an admin client.
    let (id_lm, secret_lm) = client(&state, &admin_b, "license_manager").await;
    let token_lm = token(&state, &id_lm, &secret_lm, "").await;
    let (status, _) = call(
        &state,
        "POST",
        "/v1/oauth-clients",
        Some(&token_lm),
        Some(json!({ "name": "x", "role": "admin" })),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The SCIM service provider has its own tokens: an access token is not one of them.
    let (status, _) = call(&state, "GET", "/scim/v2/Users", Some(&token_b), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// A token signed by `key` with these claims.
fn signed(key: &PrivateKey, claims: &AccessClaims) -> String {
    let map = serde_json::to_value(claims).unwrap();
    licensing_core::sign_token(TokenKind::Access, key, map.as_object().unwrap()).unwrap()
}

#[tokio::test]
async fn forged_expired_and_revoked_tokens_are_refused() {
    refused_on(None).await;
    if let Some(url) = postgres::fresh_database("oauth_refused") {
        refused_on(Some(&url)).await;
    }
}

async fn refused_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    let (id, secret) = client(&state, ADMIN, "admin").await;
    let good = token(&state, &id, &secret, "").await;
    let (status, _) = call(&state, "GET", "/v1/licenses", Some(&good), None).await;
    assert_eq!(status, StatusCode::OK);

    let key = state.key();
    let base: AccessClaims = serde_json::from_value(claims_of(&good).1).unwrap();
    let at = now();
    let with = |f: &dyn Fn(&mut AccessClaims)| {
        let mut c = base.clone();
        f(&mut c);
        c
    };
    let payload = serde_json::to_vec(&base).unwrap();
    let kid = key.public_key().kid().to_owned();
    let header = |alg: &str, typ: &str| format!(r#"{{"alg":"{alg}","kid":"{kid}","typ":"{typ}"}}"#);
    let other_key = PrivateKey::generate().unwrap();
    let refused = [
        // Expired (beyond the leeway), not yet valid, more than 15 minutes of life.
        (
            "expired",
            signed(
                &key,
                &with(&|c| {
                    c.iat = at - 2000;
                    c.nbf = Some(at - 2000);
                    c.exp = at - 1100;
                }),
            ),
        ),
        (
            "not yet valid",
            signed(
                &key,
                &with(&|c| {
                    c.iat = at + 600;
                    c.nbf = Some(at + 600);
                    c.exp = at + 1200;
                }),
            ),
        ),
        ("too long", signed(&key, &with(&|c| c.exp = c.iat + 3600))),
        // Another issuer, audience, organization or client.
        ("issuer", signed(&key, &with(&|c| c.iss = "evil".into()))),
        (
            "audience",
            signed(&key, &with(&|c| c.aud = "test/scim".into())),
        ),
        (
            "organization",
            signed(&key, &with(&|c| c.org = "org_other".into())),
        ),
        (
            "client",
            signed(
                &key,
                &with(&|c| {
                    c.sub = "oac_other".into();
                    c.client_id = "oac_other".into();
                }),
            ),
        ),
        (
            "scim scope",
            signed(&key, &with(&|c| c.scope = "scim".into())),
        ),
        // Another key, another type, another algorithm.
        ("other key", signed(&other_key, &base)),
        (
            "typ JWT",
            licensing_core::sign_raw("JWT", &key, Some(&header("EdDSA", "JWT")), &payload),
        ),
        ("alg none", {
            let signed =
                licensing_core::sign_raw("at+jwt", &key, Some(&header("none", "at+jwt")), &payload);
            let (unsigned, _) = signed.rsplit_once('.').unwrap();
            format!("{unsigned}.")
        }),
        (
            "alg HS256",
            licensing_core::sign_raw("at+jwt", &key, Some(&header("HS256", "at+jwt")), &payload),
        ),
        // A genuine token with its payload changed.
        ("tampered", {
            let parts: Vec<&str> = good.split('.').collect();
            let forged = signed(&key, &with(&|c| c.scope = "admin".into()));
            let forged_payload = forged.split('.').nth(1).unwrap().to_owned();
            format!("{}.{}.{}", parts[0], forged_payload, parts[2])
        }),
    ];
    drop(key);
    for (what, token) in refused {
        let (status, body) = call(&state, "GET", "/v1/licenses", Some(&token), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
    }

    // Revoked by its client (RFC 7009); another client may not; unknown tokens answer 200.
    let (other_id, other_secret) = client(&state, ADMIN, "auditor").await;
    let body = format!("token={good}&token_type_hint=access_token");
    let (status, _, answer) = form(
        &state,
        "/oauth/revoke",
        Some((&other_id, &other_secret)),
        FORM,
        &body,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"], "unauthorized_client");
    let (status, _) = call(&state, "GET", "/v1/licenses", Some(&good), None).await;
    assert_eq!(status, StatusCode::OK, "still live");
    for unknown in ["token=not-a-token", "token=a.b.c"] {
        let (status, headers, _) =
            form(&state, "/oauth/revoke", Some((&id, &secret)), FORM, unknown).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["cache-control"], "no-store");
    }
    let (status, _, answer) = form(&state, "/oauth/revoke", None, FORM, &body).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    let (status, _, answer) = form(&state, "/oauth/revoke", Some((&id, &secret)), FORM, "").await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    let (status, _, _) = form(&state, "/oauth/revoke", Some((&id, &secret)), FORM, &body).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(&state, "GET", "/v1/licenses", Some(&good), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "revoked token");
    // Revoking again is harmless.
    let (status, _, _) = form(&state, "/oauth/revoke", Some((&id, &secret)), FORM, &body).await;
    assert_eq!(status, StatusCode::OK);

    // A revoked client: its live tokens stop at once and it gets no new ones.
    let fresh = token(&state, &id, &secret, "").await;
    let (status, _) = call(&state, "GET", "/v1/licenses", Some(&fresh), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(
        &state,
        "POST",
        &format!("/v1/oauth-clients/{id}/revoke"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(&state, "GET", "/v1/licenses", Some(&fresh), None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "token of a revoked client"
    );
    let (status, _, answer) = form(
        &state,
        "/oauth/token",
        Some((&id, &secret)),
        FORM,
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    let (status, _) = call(
        &state,
        "POST",
        &format!("/v1/oauth-clients/{id}/revoke"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "revoked already");
    // API tokens still work beside them.
    let (status, _) = call(&state, "GET", "/v1/licenses", Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_metadata_document_names_the_endpoints() {
    let (_dir, state) = app().await;
    let (status, doc) = call(
        &state,
        "GET",
        "/.well-known/oauth-authorization-server",
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["issuer"], "test");
    assert_eq!(doc["token_endpoint"], "http://localhost/oauth/token");
    assert_eq!(doc["revocation_endpoint"], "http://localhost/oauth/revoke");
    assert_eq!(doc["jwks_uri"], "http://localhost/.well-known/jwks.json");
    assert_eq!(doc["grant_types_supported"], json!(["client_credentials"]));
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post"])
    );
    assert_eq!(
        doc["scopes_supported"],
        json!(["admin", "license_manager", "it_staff", "auditor"])
    );
}

/// The keys access tokens verify with follow the key ring: after a rotation the new current
/// key signs and its tokens are accepted, the previous key's tokens too until it is retired.
#[tokio::test]
async fn access_tokens_follow_key_rotation_and_retirement() {
    let (_dir, state) = app().await;
    let (id, secret) = client(&state, ADMIN, "auditor").await;
    let before = token(&state, &id, &secret, "").await;
    let old_kid = claims_of(&before).0["kid"].as_str().unwrap().to_owned();
    let (status, _) = call(&state, "GET", "/v1/licenses", Some(&before), None).await;
    assert_eq!(status, StatusCode::OK);

    let (status, rotated) = call(&state, "POST", "/v1/keys/rotate", Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::CREATED, "{rotated}");
    let after = token(&state, &id, &secret, "").await;
    assert_eq!(claims_of(&after).0["kid"], rotated["kid"]);
    assert_ne!(claims_of(&after).0["kid"], old_kid.as_str());
    for token in [&before, &after] {
        let (status, _) = call(&state, "GET", "/v1/licenses", Some(token), None).await;
        assert_eq!(status, StatusCode::OK);
    }

    let (status, body) = call(
        &state,
        "POST",
        &format!("/v1/keys/{old_kid}/retire"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = call(&state, "GET", "/v1/licenses", Some(&before), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "signed by a retired key");
    let (status, _) = call(&state, "GET", "/v1/licenses", Some(&after), None).await;
    assert_eq!(status, StatusCode::OK);
}

/// A client that mints tokens in a flood is slowed down at the client rate (429 `slow_down`,
/// RFC 8628's code for a client asking too fast), while another client of the same
/// organization still gets its tokens: the rate is counted per authenticated client, so a
/// flood with a client's id and wrong secrets uses up nothing of its rate.
#[tokio::test]
async fn token_floods_are_slowed_down_per_client() {
    let (_dir, state) = app().await;
    // The server's default client rate: 120 per minute.
    let state = AppState::new(state.db().clone(), "test".into(), 120)
        .await
        .unwrap();
    let (flooder, flooder_secret) = client(&state, ADMIN, "auditor").await;
    let (other, other_secret) = client(&state, ADMIN, "auditor").await;
    // Wrong secrets with the other client's id: refused as invalid_client, never counted.
    for _ in 0..200 {
        let (status, _, body) = form(
            &state,
            "/oauth/token",
            Some((&other, "lsc_wrong")),
            FORM,
            "grant_type=client_credentials",
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
    let mut slowed = 0;
    for _ in 0..200 {
        let (status, _, body) = form(
            &state,
            "/oauth/token",
            Some((&flooder, &flooder_secret)),
            FORM,
            "grant_type=client_credentials",
        )
        .await;
        match status {
            StatusCode::OK => {}
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(body["error"], "slow_down", "{body}");
                slowed += 1;
            }
            other => panic!("{other}: {body}"),
        }
    }
    // A burst of 120, then 2 a second: 200 requests in far less than 40 s meet the limit.
    assert!(
        slowed > 0,
        "200 token requests in a row were never slowed down"
    );
    token(&state, &other, &other_secret, "").await;
}
