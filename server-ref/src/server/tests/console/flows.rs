//! The console's main flow: setup, the pages, the log-out, the warning, the audit trail,
//! sign-out, lockout, timeouts, roles and tenants.

use super::*;
use crate::server::console::session;

#[tokio::test]
async fn the_console_signs_in_shows_and_acts_through_the_api_rules() {
    console_on(None).await;
    if let Some(url) = postgres::fresh_database("console_flows") {
        console_on(Some(&url)).await;
    }
}

async fn console_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    let mut browser = Browser::new(&state);

    // Nothing but the way to the setup while no account exists; the headers on every page.
    let root = browser.get("/").await;
    assert_eq!(root.status, StatusCode::SEE_OTHER);
    assert_eq!(root.location(), "/console/");
    let page = browser.get("/console/").await;
    assert_eq!(page.location(), "/console/setup");
    let setup = browser.get("/console/setup").await;
    assert_eq!(setup.status, StatusCode::OK);
    let csp = setup.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(setup.headers["x-frame-options"], "DENY");
    assert!(setup.headers.contains_key("referrer-policy"));
    let csrf = setup.csrf();

    // The setup needs the pre-session CSRF token, an admin API token and a long password.
    let refused = browser
        .post(
            "/console/setup",
            &[
                ("csrf", "forged"),
                ("token", ADMIN),
                ("user_name", "ops"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let refused = browser
        .post(
            "/console/setup",
            &[
                ("csrf", &csrf),
                ("token", AUDITOR),
                ("user_name", "ops"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.body.contains(r#"class="error""#),
        "{}",
        refused.body
    );
    let refused = browser
        .post(
            "/console/setup",
            &[
                ("csrf", &csrf),
                ("token", ADMIN),
                ("user_name", "ops"),
                ("password", "short"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let done = browser
        .post(
            "/console/setup",
            &[
                ("csrf", &csrf),
                ("token", ADMIN),
                ("user_name", "Ops"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location(), "/console/");
    // Only once.
    assert_eq!(
        browser.get("/console/setup").await.location(),
        "/console/sign-in"
    );
    // The password is stored as argon2id, never as itself.
    let stored = state
        .db()
        .console_account_by_name("ops")
        .await
        .unwrap()
        .unwrap();
    assert!(
        stored
            .password_hash
            .as_deref()
            .unwrap()
            .starts_with("$argon2id$")
    );

    // A floating license with one seat, held by alice; bob is denied.
    let (key, license) = super::license(&state, json!({ "model": "floating", "seats": 1 })).await;
    for (client, expected) in [
        ("alice", StatusCode::CREATED),
        ("bob", StatusCode::CONFLICT),
    ] {
        let body = json!({ "license_key": key, "client_id": client, "user": client,
                           "request_id": "r1", "lease_secret_supported": true });
        let (status, answer) = call(&state, "POST", "/v1/client/leases", None, Some(body)).await;
        assert_eq!(status, expected, "{answer}");
    }

    let overview = browser.get("/console/").await;
    assert_eq!(overview.status, StatusCode::OK, "{}", overview.body);
    assert!(
        overview.body.contains(r#"data-total="1""#),
        "{}",
        overview.body
    );
    assert!(overview.body.contains("<svg"), "{}", overview.body);
    assert!(
        overview.body.contains("1/1"),
        "the utilisation bar: {}",
        overview.body
    );
    let list = browser
        .get(&format!("/console/licenses?q={}", &license[4..10]))
        .await;
    assert!(
        list.body.contains(&format!("/console/licenses/{license}")),
        "{}",
        list.body
    );
    let list = browser.get("/console/licenses?q=nothing-matches").await;
    assert!(!list.body.contains(&format!("/console/licenses/{license}")));

    // The license page: alice's lease with its log-out button.
    let page = browser.get(&format!("/console/licenses/{license}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let at = page
        .body
        .find(r#"data-lease=""#)
        .expect("alice's lease row");
    let lease = page.body[at + 12..].split('"').next().unwrap().to_owned();
    let csrf = page.csrf();
    let release = format!("/console/licenses/{license}/leases/{lease}/release");
    // A form without the session's CSRF token changes nothing.
    let forged = browser.post(&release, &[("csrf", "forged")]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let released = browser.post(&release, &[("csrf", &csrf)]).await;
    assert_eq!(released.status, StatusCode::SEE_OTHER, "{}", released.body);
    let page = browser.get(&format!("/console/licenses/{license}")).await;
    assert!(!page.body.contains(&lease), "{}", page.body);

    // The lease timeout: out of spec is a warning, in spec a notice.
    let timeout = format!("/console/licenses/{license}/lease-timeout");
    let warned = browser
        .post(&timeout, &[("csrf", &csrf), ("minutes", "2")])
        .await;
    assert_eq!(warned.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(warned.body.contains(r#"class="warning""#) && warned.body.contains("5 to 60 minutes"));
    let set = browser
        .post(&timeout, &[("csrf", &csrf), ("minutes", "10")])
        .await;
    assert_eq!(set.status, StatusCode::OK);
    assert!(set.body.contains(r#"class="notice""#), "{}", set.body);
    let (_, leases) = call(
        &state,
        "GET",
        &format!("/v1/licenses/{license}/leases"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(leases["lease_timeout"], 600);

    // Issue a license from the console: its key is shown once; suspend, reinstate, and a
    // revocation only when confirmed.
    let list = browser.get("/console/licenses").await;
    let csrf = list.csrf();
    let at = list
        .body
        .find(r#"<option value=""#)
        .expect("a policy to issue from");
    let policy = list.body[at + 15..].split('"').next().unwrap().to_owned();
    let issued = browser
        .post(
            "/console/licenses",
            &[
                ("csrf", &csrf),
                ("policy_id", &policy),
                ("customer", "Globex"),
            ],
        )
        .await;
    assert_eq!(issued.status, StatusCode::CREATED, "{}", issued.body);
    let at = issued
        .body
        .find(r#"<code id="new-key">"#)
        .expect("the key, once");
    let new_key = issued.body[at + 20..].split('<').next().unwrap().to_owned();
    let at = issued.body.find("<h1>License ").unwrap();
    let new_id = issued.body[at + 12..].split('<').next().unwrap().to_owned();
    let (status, _) = call(
        &state,
        "GET",
        &format!("/v1/licenses/{new_id}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let again = browser.get(&format!("/console/licenses/{new_id}")).await;
    assert!(
        !again.body.contains(&new_key),
        "the key is shown only at creation"
    );
    let change = |what: &str| format!("/console/licenses/{new_id}/{what}");
    let suspended = browser.post(&change("suspend"), &[("csrf", &csrf)]).await;
    assert!(
        suspended.body.contains("The license is suspended."),
        "{}",
        suspended.body
    );
    let reinstated = browser.post(&change("reinstate"), &[("csrf", &csrf)]).await;
    assert!(
        reinstated.body.contains("The license is active."),
        "{}",
        reinstated.body
    );
    let unconfirmed = browser.post(&change("revoke"), &[("csrf", &csrf)]).await;
    assert_eq!(unconfirmed.status, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, view) = call(
        &state,
        "GET",
        &format!("/v1/licenses/{new_id}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(view["status"], "active");
    let revoked = browser
        .post(&change("revoke"), &[("csrf", &csrf), ("confirm", "on")])
        .await;
    assert!(
        revoked.body.contains("The license is revoked."),
        "{}",
        revoked.body
    );
    assert_eq!(
        browser
            .post(&change("nonsense"), &[("csrf", &csrf)])
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // People: the directory, paged by 50 and searched, and the idle seats.
    for i in 0..60 {
        state
            .db()
            .insert_directory_user_for_tests(
                OPERATOR_ORGANIZATION,
                &format!("usr_{i}"),
                &format!("person{i:02}"),
                i != 7,
            )
            .await
            .unwrap();
    }
    let people = browser.get("/console/people").await;
    assert_eq!(people.status, StatusCode::OK, "{}", people.body);
    assert!(
        people.body.contains("60 user(s), 1 to 50 shown"),
        "{}",
        people.body
    );
    assert!(people.body.contains(r#"id="next""#) && !people.body.contains(r#"id="previous""#));
    assert!(people.body.contains(r#"id="idle-seats""#));
    let second = browser.get("/console/people?start=50").await;
    assert!(
        second.body.contains("51 to 60 shown") && second.body.contains(r#"id="previous""#),
        "{}",
        second.body
    );
    let found = browser.get("/console/people?q=person07").await;
    assert!(
        found.body.contains("1 user(s)") && found.body.contains("no (deprovisioned)"),
        "{}",
        found.body
    );

    // The audit page verifies the chain; the console's changes are in it as the account.
    // Filters: by action, by actor, by date (the entries are today's).
    let rows = |page: &Page| page.body.matches("<tr><td>").count();
    let all = browser.get("/console/audit").await;
    let timeouts = browser.get("/console/audit?action=lease-timeout").await;
    assert_eq!(rows(&timeouts), 1, "{}", timeouts.body);
    assert!(rows(&all) > rows(&timeouts));
    let mine = browser
        .get(&format!("/console/audit?actor={}", stored.id))
        .await;
    assert!(
        rows(&mine) >= 1 && rows(&mine) < rows(&all),
        "{}",
        mine.body
    );
    let today = crate::server::console::utc_day(now());
    let dated = browser
        .get(&format!("/console/audit?from={today}&to={today}"))
        .await;
    assert_eq!(rows(&dated), rows(&all));
    let before = browser.get("/console/audit?to=2000-01-01").await;
    assert_eq!(rows(&before), 0, "{}", before.body);
    let audit = browser.get("/console/audit?verify=1").await;
    assert!(
        audit.body.contains(r#"id="chain-status""#) && audit.body.contains("intact"),
        "{}",
        audit.body
    );
    let entries = state
        .db()
        .list_audit(OPERATOR_ORGANIZATION, 0, 1000)
        .await
        .unwrap();
    let console = entries
        .iter()
        .filter(|e| e.action.starts_with("POST /console/licenses"))
        .map(|e| (e.actor.as_str(), e.action.as_str(), e.status))
        .collect::<Vec<_>>();
    assert_eq!(
        console,
        [
            (
                stored.id.as_str(),
                "POST /console/licenses/{id}/lease-timeout",
                200
            ),
            (stored.id.as_str(), "POST /console/licenses", 201),
            (
                stored.id.as_str(),
                "POST /console/licenses/{id}/{change}",
                200
            ),
            (
                stored.id.as_str(),
                "POST /console/licenses/{id}/{change}",
                200
            ),
            (
                stored.id.as_str(),
                "POST /console/licenses/{id}/{change}",
                200
            ),
        ],
        "the refused (422, 404) and forged (403) forms are not"
    );
    state.audit().flush().await;
    let events = state
        .db()
        .list_audit_events(OPERATOR_ORGANIZATION, Some(&license), 0, 1000)
        .await
        .unwrap();
    assert!(
        events.iter().any(|e| e.action == "lease.force_released"
            && e.actor == stored.id
            && e.target_id == lease),
        "the log-out is in the event chain as the account"
    );

    // Sign out ends the session; its cookie no longer signs in.
    let old = browser.cookies.clone();
    let out = browser.post("/console/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(out.location(), "/console/sign-in");
    browser.cookies = old;
    assert_eq!(
        browser.get("/console/").await.location(),
        "/console/sign-in"
    );

    // Wrong passwords: one answer for an unknown name and a wrong password; the fifth failure
    // locks the account, even against the right password.
    let mut browser = Browser::new(&state);
    let unknown = browser.sign_in("nobody", PASSWORD).await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert!(unknown.body.contains("Wrong user name or password."));
    for _ in 0..4 {
        let wrong = browser.sign_in("ops", "wrong password!!").await;
        assert!(
            wrong.body.contains("Wrong user name or password."),
            "{}",
            wrong.body
        );
    }
    let locked = browser.sign_in("ops", "wrong password!!").await;
    assert!(locked.body.contains("locked"), "{}", locked.body);
    let still = browser.sign_in("OPS", PASSWORD).await;
    assert_eq!(still.status, StatusCode::UNAUTHORIZED, "{}", still.body);
    state
        .db()
        .console_sign_in_failed(&stored.id, Some(0), 0)
        .await
        .unwrap();
    let signed = browser.sign_in("OPS", PASSWORD).await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
    state.audit().flush().await;
    let sign_ins: Vec<(String, String)> = state
        .db()
        .list_audit_events(OPERATOR_ORGANIZATION, None, 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action.starts_with("console.") && e.target_id == stored.id)
        .map(|e| (e.action, e.detail))
        .collect();
    let refused = |detail: &str| ("console.sign_in_refused".to_owned(), detail.to_owned());
    assert_eq!(
        sign_ins,
        [
            refused("wrong password"),
            refused("wrong password"),
            refused("wrong password"),
            refused("wrong password"),
            refused("wrong password; locked"),
            refused("locked"),
            ("console.signed_in".to_owned(), "password".to_owned()),
        ],
        "sign-ins are in the event chain (the setup's own sign-in is the setup's entry)"
    );

    // The idle timeout: a session unseen for longer answers the sign-in page.
    let secret = browser.cookies[session::SESSION_COOKIE].clone();
    state
        .db()
        .touch_console_session(
            &secrets::sha256_hex(secret.as_bytes()),
            now() - session::IDLE_TIMEOUT_SECS - 1,
        )
        .await
        .unwrap();
    assert_eq!(
        browser.get("/console/").await.location(),
        "/console/sign-in"
    );
    // The pruning run deletes timed-out sessions it was never shown again.
    let mut idle = Browser::new(&state);
    assert_eq!(
        idle.sign_in("ops", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
    let hash = secrets::sha256_hex(idle.cookies[session::SESSION_COOKIE].as_bytes());
    state.db().touch_console_session(&hash, 0).await.unwrap();
    crate::server::startup::prune_once(state.db(), now())
        .await
        .unwrap();
    assert!(state.db().console_session(&hash).await.unwrap().is_none());

    // An auditor's account reads but cannot log a seat out; another tenant's account sees
    // nothing of this license.
    let hash = session::hash_password(PASSWORD).unwrap();
    state
        .db()
        .insert_console_account("acc_aud", OPERATOR_ORGANIZATION, "aud", &hash, "auditor", 0)
        .await
        .unwrap();
    let mut auditor = Browser::new(&state);
    assert_eq!(
        auditor.sign_in("aud", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
    let body = json!({ "license_key": key, "client_id": "carol", "user": "carol",
                       "request_id": "r2", "lease_secret_supported": true });
    let (status, _) = call(&state, "POST", "/v1/client/leases", None, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED);
    let page = auditor.get(&format!("/console/licenses/{license}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("log-out"), "no control it may not use");
    assert!(!page.body.contains(r#"id="suspend""#) && !page.body.contains(r#"id="revoke""#));
    assert!(
        !auditor
            .get("/console/licenses")
            .await
            .body
            .contains("new-license")
    );
    let at = page.body.find(r#"data-lease=""#).unwrap();
    let lease = page.body[at + 12..].split('"').next().unwrap().to_owned();
    let csrf = page.csrf();
    let refused = auditor
        .post(
            &format!("/console/licenses/{license}/leases/{lease}/release"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);

    let (status, created) = call(
        &state,
        "POST",
        "/v1/organizations",
        Some(ADMIN),
        Some(json!({ "name": "Contoso" })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let org_b = created["organization"]["id"].as_str().unwrap();
    state
        .db()
        .insert_console_account("acc_b", org_b, "contoso", &hash, "admin", 0)
        .await
        .unwrap();
    let mut other = Browser::new(&state);
    assert_eq!(
        other.sign_in("contoso", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
    let page = other.get(&format!("/console/licenses/{license}")).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND, "{}", page.body);
    let list = other.get("/console/licenses").await;
    assert!(!list.body.contains(&license));

    // Accounts: a tenant's admin cannot reset another organization's account.
    let csrf = other.get("/console/accounts").await.csrf();
    let refused = other
        .post(
            &format!("/console/accounts/{}/reset", stored.id),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND, "{}", refused.body);
}
