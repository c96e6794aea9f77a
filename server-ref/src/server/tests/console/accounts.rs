//! Console accounts (invitations, resets, password changes) and the catalog page.

use super::*;
use crate::server::console::session;

/// Invitations, an admin's reset, and a password change.
#[tokio::test]
async fn console_accounts_are_invited_reset_and_change_their_password() {
    accounts_on(None).await;
    if let Some(url) = postgres::fresh_database("console_accounts") {
        accounts_on(Some(&url)).await;
    }
}

async fn accounts_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    let hash = session::hash_password(PASSWORD).unwrap();
    state
        .db()
        .insert_console_account(
            "acc_admin",
            OPERATOR_ORGANIZATION,
            "admin",
            &hash,
            "admin",
            0,
        )
        .await
        .unwrap();
    let mut admin = Browser::new(&state);
    assert_eq!(
        admin.sign_in("admin", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
    let page = admin.get("/console/accounts").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let csrf = page.csrf();
    // A role that is not a console role is refused; a taken name too.
    let bad = admin
        .post(
            "/console/accounts",
            &[("csrf", &csrf), ("user_name", "x"), ("role", "scim")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let taken = admin
        .post(
            "/console/accounts",
            &[("csrf", &csrf), ("user_name", "ADMIN"), ("role", "auditor")],
        )
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    let invited = admin
        .post(
            "/console/accounts",
            &[
                ("csrf", &csrf),
                ("user_name", "lm"),
                ("role", "license_manager"),
            ],
        )
        .await;
    assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.body);
    let link = code(&invited, "invite-link");
    let token = link.split("token=").nth(1).unwrap().to_owned();
    assert!(
        admin
            .get("/console/accounts")
            .await
            .body
            .contains("invited (until")
    );
    // No password yet: no sign-in.
    let mut lm = Browser::new(&state);
    assert_eq!(
        lm.sign_in("lm", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    // The link: a short password is refused, then it signs in, once.
    let form = lm.get(&format!("/console/accept?token={token}")).await;
    assert_eq!(form.status, StatusCode::OK);
    let short = lm
        .post(
            "/console/accept",
            &[("token", &token), ("password", "short")],
        )
        .await;
    assert_eq!(short.status, StatusCode::UNPROCESSABLE_ENTITY);
    let accepted = lm
        .post(
            "/console/accept",
            &[("token", &token), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(accepted.status, StatusCode::SEE_OTHER, "{}", accepted.body);
    let overview = lm.get("/console/").await;
    assert_eq!(overview.status, StatusCode::OK);
    assert!(
        !overview.body.contains("nav-accounts"),
        "no control it may not use"
    );
    assert_eq!(
        lm.get("/console/accounts").await.status,
        StatusCode::FORBIDDEN
    );
    let again = Browser::new(&state)
        .post(
            "/console/accept",
            &[("token", &token), ("password", "another password!")],
        )
        .await;
    assert_eq!(
        again.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a link is used once"
    );

    // The admin resets lm: lm's session ends, the old password no longer signs in, the new
    // link does; an expired link does not.
    let page = admin.get("/console/accounts").await;
    let reset = admin
        .post(
            "/console/accounts/acc_missing/reset",
            &[("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(reset.status, StatusCode::NOT_FOUND);
    let at = page.body.find(r#"<tr data-account=""#).unwrap();
    let ids: Vec<String> = page.body[at..]
        .split(r#"<tr data-account=""#)
        .filter_map(|part| part.split('"').next())
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .collect();
    let lm_id = ids.into_iter().find(|id| id != "acc_admin").unwrap();
    let reset = admin
        .post(
            &format!("/console/accounts/{lm_id}/reset"),
            &[("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(reset.status, StatusCode::OK, "{}", reset.body);
    let token = code(&reset, "invite-link")
        .split("token=")
        .nth(1)
        .unwrap()
        .to_owned();
    assert_eq!(lm.get("/console/").await.location(), "/console/sign-in");
    assert_eq!(
        Browser::new(&state).sign_in("lm", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    let mut lm = Browser::new(&state);
    let accepted = lm
        .post(
            "/console/accept",
            &[("token", &token), ("password", "a brand new password")],
        )
        .await;
    assert_eq!(accepted.status, StatusCode::SEE_OTHER);
    let expired = secrets::sha256_hex(b"expired-secret");
    assert!(
        state
            .db()
            .reset_console_account(OPERATOR_ORGANIZATION, &lm_id, &expired, now() - 1, now())
            .await
            .unwrap()
    );
    let late = Browser::new(&state)
        .post(
            "/console/accept",
            &[("token", "expired-secret"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(
        late.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "an expired link"
    );

    // A password change needs the current password, and signs the other sessions out.
    let mut other_session = Browser::new(&state);
    assert_eq!(
        other_session.sign_in("admin", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
    let page = admin.get("/console/account").await;
    let csrf = page.csrf();
    let wrong = admin
        .post(
            "/console/account",
            &[
                ("csrf", &csrf),
                ("current", "not it at all"),
                ("password", "the next password"),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    let changed = admin
        .post(
            "/console/account",
            &[
                ("csrf", &csrf),
                ("current", PASSWORD),
                ("password", "the next password"),
            ],
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert!(changed.body.contains(r#"class="notice""#));
    assert_eq!(
        admin.get("/console/").await.status,
        StatusCode::OK,
        "this session stays"
    );
    assert_eq!(
        other_session.get("/console/").await.location(),
        "/console/sign-in",
        "the other session ends"
    );
    assert_eq!(
        Browser::new(&state)
            .sign_in("admin", "the next password")
            .await
            .status,
        StatusCode::SEE_OTHER
    );
}

/// The catalog page: products and policies created through the API's handlers, its refusals
/// shown as warnings, and nothing for a role that may not.
#[tokio::test]
async fn the_catalog_creates_products_and_policies() {
    let (_dir, state) = app().await;
    let hash = session::hash_password(PASSWORD).unwrap();
    for (id, name, role) in [
        ("acc_1", "lm", "license_manager"),
        ("acc_2", "aud", "auditor"),
    ] {
        state
            .db()
            .insert_console_account(id, OPERATOR_ORGANIZATION, name, &hash, role, 0)
            .await
            .unwrap();
    }
    let mut lm = Browser::new(&state);
    assert_eq!(
        lm.sign_in("lm", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
    let csrf = lm.get("/console/catalog").await.csrf();
    let product = |id: &'static str, name: &'static str| {
        [
            ("csrf", csrf.clone()),
            ("id", id.to_owned()),
            ("name", name.to_owned()),
        ]
    };
    let fields = product("com.example.cad", "Example CAD");
    let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let made = lm.post("/console/catalog/products", &pairs).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    assert!(made.body.contains("Product `com.example.cad` created."));
    let again = lm.post("/console/catalog/products", &pairs).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    assert!(again.body.contains(r#"class="warning""#));
    let bad = lm
        .post(
            "/console/catalog/products",
            &[("csrf", &csrf), ("id", "x"), ("name", "bad\u{202e}name")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);

    let policy = |seats: &str| {
        vec![
            ("csrf", csrf.clone()),
            ("product_id", "com.example.cad".to_owned()),
            ("name", "Floating".to_owned()),
            ("model", "floating".to_owned()),
            ("duration_days", String::new()),
            ("seats", seats.to_owned()),
            ("max_machines", String::new()),
        ]
    };
    let fields = policy("abc");
    let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let refused = lm.post("/console/catalog/policies", &pairs).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.body.contains("`seats` must be a whole number"),
        "{}",
        refused.body
    );
    let fields = policy("5");
    let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let made = lm.post("/console/catalog/policies", &pairs).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let (_, policies) = call(&state, "GET", "/v1/policies", Some(ADMIN), None).await;
    assert_eq!(policies["policies"][0]["seats"], 5, "{policies}");

    let mut auditor = Browser::new(&state);
    assert_eq!(
        auditor.sign_in("aud", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
    let page = auditor.get("/console/catalog").await;
    assert!(page.body.contains("Example CAD") && !page.body.contains("new-product"));
    let csrf = page.csrf();
    let refused = auditor
        .post(
            "/console/catalog/products",
            &[("csrf", &csrf), ("id", "com.example.two"), ("name", "Two")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
}

/// Settings, API tokens: created (the secret shown once, and it works), revoked (it no longer
/// does), an unknown role refused as a warning; only for admins.
#[tokio::test]
async fn api_tokens_are_created_and_revoked_from_the_console() {
    let (_dir, state) = app().await;
    let hash = session::hash_password(PASSWORD).unwrap();
    for (id, name, role) in [
        ("acc_1", "boss", "admin"),
        ("acc_2", "lm", "license_manager"),
    ] {
        state
            .db()
            .insert_console_account(id, OPERATOR_ORGANIZATION, name, &hash, role, 0)
            .await
            .unwrap();
    }
    let mut boss = Browser::new(&state);
    assert_eq!(
        boss.sign_in("boss", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
    let page = boss.get("/console/settings/tokens").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let csrf = page.csrf();
    let bad = boss
        .post(
            "/console/settings/tokens",
            &[("csrf", &csrf), ("label", "ci"), ("role", "overlord")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    assert!(bad.body.contains(r#"class="warning""#));
    let made = boss
        .post(
            "/console/settings/tokens",
            &[("csrf", &csrf), ("label", "ci"), ("role", "auditor")],
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let secret = code(&made, "new-token");
    let (status, _) = call(&state, "GET", "/v1/licenses", Some(&secret), None).await;
    assert_eq!(status, StatusCode::OK, "the new token works");
    assert!(
        !boss
            .get("/console/settings/tokens")
            .await
            .body
            .contains(&secret)
    );
    let at = made.body.find(r#"<tr data-token=""#).unwrap();
    let rows: Vec<&str> = made.body[at..].split(r#"<tr data-token=""#).collect();
    let id = rows
        .iter()
        .find(|row| row.contains("<td>ci</td>"))
        .and_then(|row| row.split('"').next())
        .unwrap()
        .to_owned();
    let revoked = boss
        .post(
            &format!("/console/settings/tokens/{id}/revoke"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    let (status, _) = call(&state, "GET", "/v1/licenses", Some(&secret), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a revoked token");

    let mut lm = Browser::new(&state);
    assert_eq!(
        lm.sign_in("lm", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
    assert!(!lm.get("/console/").await.body.contains("nav-tokens"));
    assert_eq!(
        lm.get("/console/settings/tokens").await.status,
        StatusCode::FORBIDDEN
    );
}
