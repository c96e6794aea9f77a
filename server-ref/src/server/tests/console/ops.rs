//! The console's actions and large lists (issue 23): products and policies edited (`PATCH`
//! on the API, forms on the catalog page), a license renewed and its settings changed from
//! its page (out-of-spec values as warnings), the license list paged by cursor and searched
//! (API and page), a license page's audit entries read on an index, seats assigned and
//! reclaimed from the People page, and the signing keys' staged rotation. Each with the role
//! that may not (no control, and refused anyway) and another tenant (404). On SQLite and
//! PostgreSQL.

use super::*;
use crate::server::console::session;

/// Console accounts `name` with `role` in `organization`, signed in.
async fn signed_in(state: &AppState, organization: &str, name: &str, role: &str) -> Browser {
    let hash = session::hash_password(PASSWORD).unwrap();
    let id = format!("acc_{name}");
    assert!(
        state
            .db()
            .insert_console_account(&id, organization, name, &hash, role, 0)
            .await
            .unwrap()
    );
    let mut browser = Browser::new(state);
    assert_eq!(
        browser.sign_in(name, PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
    browser
}

/// A second organization and its admin token.
async fn tenant_b(state: &AppState) -> (String, String) {
    let (status, created) = call(
        state,
        "POST",
        "/v1/organizations",
        Some(ADMIN),
        Some(json!({ "name": "Contoso" })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    (
        created["organization"]["id"].as_str().unwrap().to_owned(),
        created["admin_token"].as_str().unwrap().to_owned(),
    )
}

fn refused_naming(status: StatusCode, body: &Value, field: &str) {
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("`{field}`")),
        "{body}"
    );
}

#[tokio::test]
async fn products_and_policies_are_edited_for_future_licenses() {
    catalog_edits_on(None).await;
    if let Some(url) = postgres::fresh_database("console_catalog_edits") {
        catalog_edits_on(Some(&url)).await;
    }
}

async fn catalog_edits_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    let (_, before) = super::license(&state, json!({ "model": "floating", "seats": 2 })).await;
    let (_, policies) = call(&state, "GET", "/v1/policies", Some(ADMIN), None).await;
    let policy = policies["policies"][0]["id"].as_str().unwrap().to_owned();
    let (_, admin_b) = tenant_b(&state).await;

    // The API: a product renamed; a bad name, an unknown member, the auditor, another tenant.
    let (status, body) = call(
        &state,
        "PATCH",
        "/v1/products/p",
        Some(ADMIN),
        Some(json!({ "name": "Product Two" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["name"], "Product Two");
    let (_, products) = call(&state, "GET", "/v1/products", Some(ADMIN), None).await;
    assert_eq!(products["products"][0]["name"], "Product Two");
    let (status, body) = call(
        &state,
        "PATCH",
        "/v1/products/p",
        Some(ADMIN),
        Some(json!({ "name": "bad\u{202e}name" })),
    )
    .await;
    refused_naming(status, &body, "name");
    let (status, _) = call(
        &state,
        "PATCH",
        "/v1/products/p",
        Some(ADMIN),
        Some(json!({ "id": "q" })),
    )
    .await;
    assert!(status.is_client_error() && status != StatusCode::OK);
    let (status, _) = call(
        &state,
        "PATCH",
        "/v1/products/p",
        Some(AUDITOR),
        Some(json!({ "name": "X" })),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for (path, body) in [
        ("/v1/products/p".to_owned(), json!({ "name": "Mine" })),
        (format!("/v1/policies/{policy}"), json!({ "seats": 9 })),
    ] {
        let (status, answer) = call(&state, "PATCH", &path, Some(&admin_b), Some(body)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {answer}");
    }
    let (_, products) = call(&state, "GET", "/v1/products", Some(ADMIN), None).await;
    assert_eq!(products["products"][0]["name"], "Product Two");

    // A policy: the seats and the term change for the licenses issued after; the license
    // issued before keeps its two seats. Out-of-range members named; the model cannot change.
    let (status, body) = call(
        &state,
        "PATCH",
        &format!("/v1/policies/{policy}"),
        Some(ADMIN),
        Some(json!({ "seats": 7, "duration": 86_400, "name": "Seven" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["seats"].as_i64(), body["name"].as_str()),
        (Some(7), Some("Seven"))
    );
    let (_, old) = call(
        &state,
        "GET",
        &format!("/v1/licenses/{before}/leases"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(old["seats"], 2, "{old}");
    let (status, new) = call(
        &state,
        "POST",
        "/v1/licenses",
        Some(ADMIN),
        Some(json!({ "policy_id": policy })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{new}");
    let (_, leases) = call(
        &state,
        "GET",
        &format!("/v1/licenses/{}/leases", new["id"].as_str().unwrap()),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(leases["seats"], 7, "{leases}");
    assert!(new["expires_at"].as_i64().is_some(), "{new}");
    for (body, field) in [
        (json!({ "duration": 0 }), "duration"),
        (json!({ "check_in_interval": 60 }), "check_in_interval"),
        (json!({ "check_in_grace": 60 }), "check_in_grace"),
        (json!({ "reclaim_after": 5 }), "reclaim_after"),
    ] {
        let (status, answer) = call(
            &state,
            "PATCH",
            &format!("/v1/policies/{policy}"),
            Some(ADMIN),
            Some(body),
        )
        .await;
        refused_naming(status, &answer, field);
    }
    let (status, _) = call(
        &state,
        "PATCH",
        &format!("/v1/policies/{policy}"),
        Some(ADMIN),
        Some(json!({ "model": "trial" })),
    )
    .await;
    assert!(status.is_client_error(), "the model stays");
    let (status, _) = call(
        &state,
        "PATCH",
        &format!("/v1/policies/{policy}"),
        Some(AUDITOR),
        Some(json!({ "seats": 1 })),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Cleared with null.
    let (status, body) = call(
        &state,
        "PATCH",
        &format!("/v1/policies/{policy}"),
        Some(ADMIN),
        Some(json!({ "duration": null })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["duration"].is_null(), "{body}");
    // Audited by the request layer, once each.
    let (_, audit) = call(&state, "GET", "/v1/audit?limit=1000", Some(ADMIN), None).await;
    let patches = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "PATCH /v1/policies/{id}")
        .count();
    assert_eq!(patches, 2, "{audit}");

    // The console: a license manager renames and edits; a bad number is a warning; the
    // auditor has no edit form and is refused anyway.
    let mut lm = signed_in(&state, OPERATOR_ORGANIZATION, "lm", "license_manager").await;
    let page = lm.get("/console/catalog").await;
    assert!(page.body.contains("edit-policy") && page.body.contains("edit-product"));
    let csrf = page.csrf();
    let done = lm
        .post(
            "/console/catalog/products/p",
            &[("csrf", &csrf), ("name", "Renamed")],
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(done.body.contains("Renamed"));
    let path = format!("/console/catalog/policies/{policy}");
    let form = |seats: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("name", "Seven".to_owned()),
            ("duration_days", String::new()),
            ("duration_days_was", String::new()),
            ("seats", seats.to_owned()),
            ("max_machines", String::new()),
        ]
    };
    let fields = form("x3");
    let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let bad = lm.post(&path, &pairs).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains(r#"class="warning""#) && bad.body.contains("`seats`"));
    let fields = form("3");
    let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let done = lm.post(&path, &pairs).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    let (_, body) = call(
        &state,
        "GET",
        &format!("/v1/policies/{policy}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(body["seats"], 3, "{body}");
    let mut auditor = signed_in(&state, OPERATOR_ORGANIZATION, "aud", "auditor").await;
    let page = auditor.get("/console/catalog").await;
    assert!(!page.body.contains("edit-policy") && !page.body.contains("edit-product"));
    let csrf = page.csrf();
    let refused = auditor
        .post(
            "/console/catalog/products/p",
            &[("csrf", &csrf), ("name", "Nope")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let stale = lm
        .post(
            "/console/catalog/products/p",
            &[("csrf", "forged"), ("name", "Nope")],
        )
        .await;
    assert_eq!(stale.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_license_list_pages_by_cursor_and_searches() {
    license_list_on(None).await;
    if let Some(url) = postgres::fresh_database("console_license_list") {
        license_list_on(Some(&url)).await;
    }
}

async fn license_list_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    let (first_key, first) = super::license(
        &state,
        json!({ "model": "floating", "seats": 3, "seat_mode": "named" }),
    )
    .await;
    let (_, policies) = call(&state, "GET", "/v1/policies", Some(ADMIN), None).await;
    let policy = policies["policies"][0]["id"].as_str().unwrap().to_owned();
    let mut all = vec![first.clone()];
    for n in 0..119 {
        let mut body = json!({ "policy_id": policy });
        if n == 60 {
            body["customer"] = json!({ "name": "Acme Rockets GmbH" });
        }
        let (status, made) = call(&state, "POST", "/v1/licenses", Some(ADMIN), Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{made}");
        all.push(made["id"].as_str().unwrap().to_owned());
    }
    let acme = all[61].clone();
    // Another tenant's license for a customer of the same name never shows.
    let (_, admin_b) = tenant_b(&state).await;
    call(
        &state,
        "POST",
        "/v1/products",
        Some(&admin_b),
        Some(json!({ "id": "pb", "name": "B" })),
    )
    .await;
    let (_, pol_b) = call(
        &state,
        "POST",
        "/v1/policies",
        Some(&admin_b),
        Some(json!({ "product_id": "pb", "name": "b", "model": "perpetual" })),
    )
    .await;
    let (status, other) = call(
        &state,
        "POST",
        "/v1/licenses",
        Some(&admin_b),
        Some(json!({ "policy_id": pol_b["id"], "customer": { "name": "Acme Rockets GmbH" } })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{other}");
    let other = other["id"].as_str().unwrap().to_owned();

    // Without parameters: every license (fewer than 500), newest first, no cursor.
    let (status, list) = call(&state, "GET", "/v1/licenses", Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::OK);
    let ids = |list: &Value| -> Vec<String> {
        list["licenses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&list).len(), 120);
    assert!(
        list.get("next").is_none() && list.get("previous").is_none(),
        "{}",
        list["next"]
    );
    let default_order = ids(&list);

    // Pages of 50: every license exactly once, in the same order; back with `before`.
    let mut seen = Vec::new();
    let mut pages = Vec::new();
    let mut path = "/v1/licenses?limit=50".to_owned();
    loop {
        let (status, page) = call(&state, "GET", &path, Some(ADMIN), None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.extend(ids(&page));
        pages.push(page.clone());
        match page["next"].as_str() {
            Some(next) => {
                path = format!("/v1/licenses?limit=50&after={}", next.replace(',', "%2C"))
            }
            None => break,
        }
    }
    assert_eq!(pages.len(), 3);
    assert_eq!(seen, default_order, "each license once, in order");
    assert!(!seen.contains(&other));
    let back = pages[2]["previous"].as_str().unwrap();
    let (_, page) = call(
        &state,
        "GET",
        &format!("/v1/licenses?limit=50&before={back}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(ids(&page), ids(&pages[1]));
    let back = page["previous"].as_str().unwrap();
    let (_, page) = call(
        &state,
        "GET",
        &format!("/v1/licenses?limit=50&before={back}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(ids(&page), ids(&pages[0]));
    assert!(page.get("previous").is_none(), "the first page: {page}");
    for (query, field) in [
        ("after=nonsense", "after"),
        ("before=12,has%20space", "before"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("q=%01", "q"),
    ] {
        let (status, body) = call(
            &state,
            "GET",
            &format!("/v1/licenses?{query}"),
            Some(ADMIN),
            None,
        )
        .await;
        refused_naming(status, &body, field);
    }

    // Search: the customer (any case, part of it), the license id, the whole key, the key's
    // last group, a directory user assigned a seat.
    let search = |q: String| {
        let state = state.clone();
        async move {
            let q: String = url::form_urlencoded::byte_serialize(q.as_bytes()).collect();
            let (status, list) = call(
                &state,
                "GET",
                &format!("/v1/licenses?q={q}"),
                Some(ADMIN),
                None,
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{list}");
            list["licenses"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(search("rockets".into()).await, vec![acme.clone()]);
    assert_eq!(search("ACME ROCKETS".into()).await, vec![acme.clone()]);
    assert_eq!(search(first.clone()).await, vec![first.clone()]);
    assert_eq!(search(first_key.clone()).await, vec![first.clone()]);
    assert_eq!(search(first_key.to_lowercase()).await, vec![first.clone()]);
    let hint = first_key.rsplit('-').next().unwrap().to_owned();
    assert!(search(hint).await.contains(&first));
    assert!(
        search("100%_".into()).await.is_empty(),
        "LIKE wildcards are literal"
    );
    let (status, user) = call(
        &state,
        "POST",
        "/v1/directory/users",
        Some(ADMIN),
        Some(json!({ "user_name": "dana@example.com", "email": "dana.k@example.com" })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    let (status, body) = call(
        &state,
        "POST",
        &format!("/v1/licenses/{first}/assignments"),
        Some(ADMIN),
        Some(json!({ "kind": "user", "id": user["id"] })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(search("DANA@example.com".into()).await, vec![first.clone()]);
    assert_eq!(
        search("dana.k@example.com".into()).await,
        vec![first.clone()]
    );
    // Another tenant finds none of it.
    let (_, list) = call(&state, "GET", "/v1/licenses?q=acme", Some(&admin_b), None).await;
    assert_eq!(ids(&list), vec![other.clone()]);
    let (_, list) = call(
        &state,
        "GET",
        &format!("/v1/licenses?q={first}"),
        Some(&admin_b),
        None,
    )
    .await;
    assert!(ids(&list).is_empty());

    // The console's list: 50 a page, Next and Previous links, the search.
    let mut browser = signed_in(&state, OPERATOR_ORGANIZATION, "ops", "auditor").await;
    let page = browser.get("/console/licenses").await;
    assert_eq!(page.body.matches(r#"class="license""#).count(), 50);
    assert!(page.body.contains(r#"id="next""#) && !page.body.contains(r#"id="previous""#));
    let href = |page: &Page, id: &str| {
        let start = format!(r#"id="{id}" href=""#);
        let at = page.body.find(&start).unwrap() + start.len();
        page.body[at..]
            .split('"')
            .next()
            .unwrap()
            .replace("&amp;", "&")
    };
    let second = browser.get(&href(&page, "next")).await;
    assert!(
        second
            .body
            .contains(&format!("/console/licenses/{}", default_order[50])),
        "{}",
        second.body
    );
    assert!(
        !second
            .body
            .contains(&format!("/console/licenses/{}\"", default_order[49]))
    );
    let again = browser.get(&href(&second, "previous")).await;
    assert!(
        again
            .body
            .contains(&format!("/console/licenses/{}", default_order[0]))
    );
    let found = browser.get("/console/licenses?q=Rockets").await;
    assert_eq!(
        found.body.matches(r#"class="license""#).count(),
        1,
        "{}",
        found.body
    );
    assert!(!found.body.contains(&other));

    // SQLite's plans: a page after a cursor reads the index in order (no sort), searched or
    // not; a license's audit entries come from the two expression indexes.
    if url.is_none() {
        let (page, searched, audit) = state.db().list_plans_for_tests().await;
        for plan in [&page, &searched] {
            assert!(plan.contains("licenses_newest"), "{plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        }
        assert!(
            audit.contains("audit_log_by_api_license")
                && audit.contains("audit_log_by_console_license"),
            "{audit}"
        );
    }
}

#[tokio::test]
async fn a_license_page_shows_its_own_audit_entries() {
    let (_dir, state) = app().await;
    let (_, one) = super::license(&state, json!({ "model": "floating", "seats": 2 })).await;
    let (_, two) = super::license(&state, json!({ "model": "floating", "seats": 2 })).await;
    for path in [
        format!("/v1/licenses/{one}/suspend"),
        format!("/v1/licenses/{two}/suspend"),
        format!("/v1/licenses/{two}/reinstate"),
    ] {
        let (status, body) = call(&state, "POST", &path, Some(ADMIN), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let mut browser = signed_in(&state, OPERATOR_ORGANIZATION, "ops", "admin").await;
    let page = browser.get(&format!("/console/licenses/{one}")).await;
    let csrf = page.csrf();
    browser
        .post(
            &format!("/console/licenses/{one}/reinstate"),
            &[("csrf", &csrf)],
        )
        .await;
    let (status, entries) = call(
        &state,
        "GET",
        &format!("/v1/audit?license={one}"),
        Some(AUDITOR),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let targets: Vec<&str> = entries["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["target"].as_str().unwrap())
        .collect();
    assert_eq!(
        targets,
        vec![
            format!("/v1/licenses/{one}/suspend"),
            format!("/console/licenses/{one}/reinstate")
        ],
        "{entries}"
    );
    let page = browser.get(&format!("/console/licenses/{one}")).await;
    let section = &page.body[page.body.find(r#"id="audit""#).unwrap()..];
    assert_eq!(section.matches("<li>#").count(), 2, "{section}");
    assert!(section.contains("suspend"), "{section}");
    // Another tenant's entries are never read, and the id is checked.
    let (_, admin_b) = tenant_b(&state).await;
    let (_, entries) = call(
        &state,
        "GET",
        &format!("/v1/audit?license={one}"),
        Some(&admin_b),
        None,
    )
    .await;
    assert_eq!(entries["entries"], json!([]));
    let (status, body) = call(
        &state,
        "GET",
        "/v1/audit?license=has%20space",
        Some(ADMIN),
        None,
    )
    .await;
    refused_naming(status, &body, "license");
}

#[tokio::test]
async fn a_license_is_renewed_and_its_settings_changed_from_its_page() {
    license_settings_on(None).await;
    if let Some(url) = postgres::fresh_database("console_license_settings") {
        license_settings_on(Some(&url)).await;
    }
}

async fn license_settings_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    let (_, license) = super::license(
        &state,
        json!({ "model": "floating", "seats": 4, "duration": 86_400 }),
    )
    .await;
    let page_path = format!("/console/licenses/{license}");
    let mut lm = signed_in(&state, OPERATOR_ORGANIZATION, "lm", "license_manager").await;
    let page = lm.get(&page_path).await;
    for control in ["renew-form", "seating-form", "borrowing-form", "queue-form"] {
        assert!(page.body.contains(control), "{control}");
    }
    let csrf = page.csrf();

    // The renewal: a date and a confirmation.
    let renew = format!("{page_path}/renew");
    let unconfirmed = lm
        .post(&renew, &[("csrf", &csrf), ("expires_on", "2031-06-30")])
        .await;
    assert_eq!(unconfirmed.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(unconfirmed.body.contains(r#"class="warning""#));
    let bad = lm
        .post(
            &renew,
            &[
                ("csrf", &csrf),
                ("expires_on", "2031-02-30"),
                ("confirm", "on"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("`expires_on`"), "{}", bad.body);
    let done = lm
        .post(
            &renew,
            &[
                ("csrf", &csrf),
                ("expires_on", "2031-06-30"),
                ("confirm", "on"),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    let (_, view) = call(
        &state,
        "GET",
        &format!("/v1/licenses/{license}"),
        Some(ADMIN),
        None,
    )
    .await;
    // 2031-06-30T23:59:59Z.
    assert_eq!(view["expires_at"], 1_940_630_399, "{view}");
    let past = lm
        .post(
            &renew,
            &[
                ("csrf", &csrf),
                ("expires_on", "1999-01-01"),
                ("confirm", "on"),
            ],
        )
        .await;
    assert_eq!(
        past.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        past.body
    );
    assert!(past.body.contains(r#"class="warning""#), "{}", past.body);
    let (_, view) = call(
        &state,
        "GET",
        &format!("/v1/licenses/{license}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(view["expires_at"], 1_940_630_399, "unchanged: {view}");

    // Settings: saved when in spec; out of spec refused by the server and shown as a warning,
    // the stored value unchanged.
    let borrowing = format!("{page_path}/borrowing");
    let done = lm
        .post(
            &borrowing,
            &[("csrf", &csrf), ("max_days", "3"), ("max_leases", "2")],
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    for (days, leases) in [("45", "1"), ("1", "9"), ("-1", "1"), ("x", "1")] {
        let refused = lm
            .post(
                &borrowing,
                &[("csrf", &csrf), ("max_days", days), ("max_leases", leases)],
            )
            .await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{days} {leases}"
        );
        assert!(
            refused.body.contains(r#"class="warning""#),
            "{}",
            refused.body
        );
    }
    let queue = format!("{page_path}/queue");
    let refused = lm
        .post(&queue, &[("csrf", &csrf), ("max_minutes", "2000")])
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused
            .body
            .contains("Out of spec: 2000 minutes; the longest wait in line is 0 to 1440"),
        "{}",
        refused.body
    );
    let done = lm
        .post(&queue, &[("csrf", &csrf), ("max_minutes", "10")])
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    let (_, leases) = call(
        &state,
        "GET",
        &format!("/v1/licenses/{license}/leases"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(
        leases["borrowing"],
        json!({ "max_seconds": 259_200, "max_leases": 2 })
    );
    assert_eq!(leases["queue"]["max_seconds"], 600);
    let seating = format!("{page_path}/seating");
    let refused = lm
        .post(
            &seating,
            &[
                ("csrf", &csrf),
                ("seat_mode", "named"),
                ("reclaim_days", "0"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.body.contains("`reclaim_after`"), "{}", refused.body);
    let done = lm
        .post(
            &seating,
            &[
                ("csrf", &csrf),
                ("seat_mode", "named"),
                ("allow_over_allocation", "on"),
                ("reclaim_days", "30"),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    let (_, view) = call(
        &state,
        "GET",
        &format!("/v1/licenses/{license}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(
        (
            view["seat_mode"].as_str(),
            view["allow_over_allocation"].as_bool(),
            view["reclaim_after"].as_i64()
        ),
        (Some("named"), Some(true), Some(2_592_000))
    );

    // IT staff: the wait line only; the rest refused anyway. The auditor: nothing.
    let mut it = signed_in(&state, OPERATOR_ORGANIZATION, "it", "it_staff").await;
    let page = it.get(&page_path).await;
    assert!(page.body.contains("queue-form"));
    for control in ["renew-form", "seating-form", "borrowing-form"] {
        assert!(!page.body.contains(control), "{control}");
    }
    let csrf_it = page.csrf();
    let refused = it
        .post(
            &borrowing,
            &[("csrf", &csrf_it), ("max_days", "1"), ("max_leases", "1")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let refused = it
        .post(
            &renew,
            &[
                ("csrf", &csrf_it),
                ("expires_on", "2032-01-01"),
                ("confirm", "on"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let mut auditor = signed_in(&state, OPERATOR_ORGANIZATION, "aud", "auditor").await;
    let page = auditor.get(&page_path).await;
    assert!(!page.body.contains(r#"id="settings""#) && !page.body.contains("renew-form"));
    let refused = auditor
        .post(&queue, &[("csrf", &page.csrf()), ("max_minutes", "5")])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    // Another tenant's admin: 404, nothing changed.
    let (org_b, _) = tenant_b(&state).await;
    let mut other = signed_in(&state, &org_b, "other", "admin").await;
    let csrf_b = other.get("/console/licenses").await.csrf();
    let refused = other
        .post(&queue, &[("csrf", &csrf_b), ("max_minutes", "1")])
        .await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
    let (_, leases) = call(
        &state,
        "GET",
        &format!("/v1/licenses/{license}/leases"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(leases["queue"]["max_seconds"], 600);
}

#[tokio::test]
async fn seats_are_assigned_and_reclaimed_from_the_people_page() {
    people_on(None).await;
    if let Some(url) = postgres::fresh_database("console_people_ops") {
        people_on(Some(&url)).await;
    }
}

async fn people_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    let (_, license) = super::license(
        &state,
        json!({ "model": "floating", "seats": 1, "seat_mode": "named" }),
    )
    .await;
    let (_, user) = call(
        &state,
        "POST",
        "/v1/directory/users",
        Some(ADMIN),
        Some(json!({ "user_name": "erin" })),
    )
    .await;
    let user = user["id"].as_str().unwrap().to_owned();
    let (_, other) = call(
        &state,
        "POST",
        "/v1/directory/users",
        Some(ADMIN),
        Some(json!({ "user_name": "fred" })),
    )
    .await;
    let other = other["id"].as_str().unwrap().to_owned();

    let mut it = signed_in(&state, OPERATOR_ORGANIZATION, "it", "it_staff").await;
    let people = it.get("/console/people").await;
    assert!(people.body.contains(&format!("/console/people/{user}")));
    let page = it.get(&format!("/console/people/{user}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("assign-form"));
    let csrf = page.csrf();
    let done = it
        .post(
            &format!("/console/people/{user}/assign"),
            &[("csrf", &csrf), ("license_id", &license)],
        )
        .await;
    assert_eq!(done.status, StatusCode::CREATED, "{}", done.body);
    assert!(
        done.body
            .contains(&format!(r#"href="/console/licenses/{license}""#))
    );
    // The one seat is taken: the API's refusal is a warning; an unknown license too.
    let full = it
        .post(
            &format!("/console/people/{other}/assign"),
            &[("csrf", &csrf), ("license_id", &license)],
        )
        .await;
    assert_eq!(full.status, StatusCode::CONFLICT, "{}", full.body);
    assert!(full.body.contains(r#"class="warning""#));
    let unknown = it
        .post(
            &format!("/console/people/{other}/assign"),
            &[("csrf", &csrf), ("license_id", "lic_nothing")],
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(unknown.body.contains(r#"class="warning""#));

    // Idle past the threshold: listed with a reclaim button on the People page.
    let (status, body) = call(
        &state,
        "PUT",
        &format!("/v1/licenses/{license}/seating"),
        Some(ADMIN),
        Some(json!({ "reclaim_after": 86_400 })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    state
        .db()
        .backdate_assignments_for_tests(&license, now() - 10 * 86_400)
        .await;
    let people = it.get("/console/people").await;
    let idle = &people.body[people.body.find(r#"id="idle-seats""#).unwrap()..];
    assert!(
        idle.contains("erin") && idle.contains(r#"class="reclaim""#),
        "{idle}"
    );
    let (_, seats) = call(
        &state,
        "GET",
        &format!("/v1/licenses/{license}/assignments"),
        Some(ADMIN),
        None,
    )
    .await;
    let assignment = seats["assignments"][0]["id"].as_str().unwrap().to_owned();
    let reclaim = format!("/console/licenses/{license}/assignments/{assignment}/reclaim");

    // The auditor sees no control and is refused anyway; another tenant's admin gets 404.
    let mut auditor = signed_in(&state, OPERATOR_ORGANIZATION, "aud", "auditor").await;
    let people = auditor.get("/console/people").await;
    assert!(!people.body.contains(r#"class="reclaim""#));
    let page = auditor.get(&format!("/console/people/{user}")).await;
    assert!(!page.body.contains("assign-form") && !page.body.contains(r#"class="reclaim""#));
    let refused = auditor
        .post(&reclaim, &[("csrf", &page.csrf()), ("back", "people")])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let (org_b, _) = tenant_b(&state).await;
    let mut stranger = signed_in(&state, &org_b, "stranger", "admin").await;
    let csrf_b = stranger.get("/console/people").await.csrf();
    let refused = stranger
        .post(&reclaim, &[("csrf", &csrf_b), ("back", "people")])
        .await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
    assert_eq!(
        stranger
            .get(&format!("/console/people/{user}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let stale = it
        .post(&reclaim, &[("csrf", "forged"), ("back", "people")])
        .await;
    assert_eq!(stale.status, StatusCode::FORBIDDEN);

    // Reclaimed: the seat is free, and the change is in the audit trail as the account.
    let done = it
        .post(&reclaim, &[("csrf", &csrf), ("back", "people")])
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location(), "/console/people");
    let (_, seats) = call(
        &state,
        "GET",
        &format!("/v1/licenses/{license}/assignments"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(seats["seats_assigned"], 0, "{seats}");
    let again = it
        .post(
            &format!("/console/people/{other}/assign"),
            &[("csrf", &csrf), ("license_id", &license)],
        )
        .await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    let (_, audit) = call(&state, "GET", "/v1/audit?limit=1000", Some(ADMIN), None).await;
    let mine: Vec<&Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == "acc_it")
        .collect();
    let actions: Vec<&str> = mine.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions.iter().filter(|a| a.ends_with("/reclaim")).count(),
        1,
        "{actions:?}"
    );
    assert_eq!(
        actions.iter().filter(|a| a.ends_with("/assign")).count(),
        2,
        "{actions:?}"
    );
}

#[tokio::test]
async fn signing_keys_are_rotated_in_stages_from_the_settings_page() {
    keys_on(None).await;
    if let Some(url) = postgres::fresh_database("console_keys") {
        keys_on(Some(&url)).await;
    }
}

async fn keys_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    let mut admin = signed_in(&state, OPERATOR_ORGANIZATION, "boss", "admin").await;
    assert!(admin.get("/console/").await.body.contains("nav-keys"));
    let page = admin.get("/console/settings/keys").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(page.body.matches("<tr data-kid=").count(), 1);
    assert!(page.body.contains(r#"class="key-current""#));
    let csrf = page.csrf();
    let unconfirmed = admin
        .post("/console/settings/keys/stage", &[("csrf", &csrf)])
        .await;
    assert_eq!(unconfirmed.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(unconfirmed.body.contains(r#"class="warning""#));
    let staged = admin
        .post(
            "/console/settings/keys/stage",
            &[("csrf", &csrf), ("confirm", "on")],
        )
        .await;
    assert_eq!(staged.status, StatusCode::OK, "{}", staged.body);
    assert!(staged.body.contains(r#"class="key-staged""#) && !staged.body.contains("stage-key"));
    let (_, keys) = call(&state, "GET", "/v1/keys", Some(ADMIN), None).await;
    let kid = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["status"] == "staged")
        .unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    // Not published long enough: the API's refusal, as a warning.
    let early = admin
        .post(
            &format!("/console/settings/keys/{kid}/promote"),
            &[("csrf", &csrf), ("confirm", "on")],
        )
        .await;
    assert_eq!(early.status, StatusCode::CONFLICT, "{}", early.body);
    assert!(early.body.contains(r#"class="warning""#));
    let withdrawn = admin
        .post(
            &format!("/console/settings/keys/{kid}/retire"),
            &[("csrf", &csrf), ("confirm", "on")],
        )
        .await;
    assert_eq!(withdrawn.status, StatusCode::OK, "{}", withdrawn.body);
    let rotated = admin
        .post(
            "/console/settings/keys/rotate",
            &[("csrf", &csrf), ("confirm", "on")],
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    assert!(
        rotated.body.contains(r#"class="key-previous""#),
        "{}",
        rotated.body
    );
    let (_, keys) = call(&state, "GET", "/v1/keys", Some(ADMIN), None).await;
    let states: Vec<&str> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        states.iter().filter(|s| **s == "current").count(),
        1,
        "{states:?}"
    );
    assert!(
        states.contains(&"previous") && states.contains(&"retired"),
        "{states:?}"
    );
    // Each change in the audit trail as the account.
    let (_, audit) = call(&state, "GET", "/v1/audit?limit=1000", Some(ADMIN), None).await;
    let mine = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["actor"] == "acc_boss"
                && e["target"]
                    .as_str()
                    .unwrap()
                    .starts_with("/console/settings/keys")
        })
        .count();
    assert_eq!(mine, 3, "{audit}");

    // A license manager: no link, no page, refused. Another organization's admin: the list,
    // no control, refused by the API.
    let mut lm = signed_in(&state, OPERATOR_ORGANIZATION, "lm", "license_manager").await;
    assert!(!lm.get("/console/").await.body.contains("nav-keys"));
    assert_eq!(
        lm.get("/console/settings/keys").await.status,
        StatusCode::FORBIDDEN
    );
    let csrf_lm = lm.get("/console/").await.csrf();
    let refused = lm
        .post(
            "/console/settings/keys/rotate",
            &[("csrf", &csrf_lm), ("confirm", "on")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let (org_b, _) = tenant_b(&state).await;
    let mut tenant = signed_in(&state, &org_b, "tenant", "admin").await;
    let page = tenant.get("/console/settings/keys").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("rotate-form") && !page.body.contains("stage-form"));
    let refused = tenant
        .post(
            "/console/settings/keys/rotate",
            &[("csrf", &page.csrf()), ("confirm", "on")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let (_, keys) = call(&state, "GET", "/v1/keys", Some(ADMIN), None).await;
    assert_eq!(keys["keys"].as_array().unwrap().len(), 3);
}

/// Measurement, not a check (run by hand, `--ignored --nocapture`; on PostgreSQL through
/// scripts/with-postgres.sh): the license list's pages and searches and a license page's
/// audit entries at 100,000 licenses and 100,000 audit entries, server time through the router.
#[tokio::test]
#[ignore = "a measurement: run by hand"]
async fn license_lists_at_100000_licenses() {
    lists_at_scale(None).await;
    if let Some(url) = postgres::fresh_database("console_lists_scale") {
        lists_at_scale(Some(&url)).await;
    }
}

async fn lists_at_scale(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    let (key, license) = super::license(&state, json!({ "model": "floating", "seats": 3 })).await;
    state.db().fill_licenses_for_tests(&license, 100_000).await;
    let (_, deep) = call(
        &state,
        "GET",
        "/v1/licenses?limit=1&q=customer%2090000",
        Some(ADMIN),
        None,
    )
    .await;
    let deep = deep["licenses"][0]["id"].as_str().unwrap().to_owned();
    let (_, row) = call(
        &state,
        "GET",
        &format!("/v1/licenses/{deep}"),
        Some(ADMIN),
        None,
    )
    .await;
    let cursor = format!("{},{deep}", row["created_at"]);
    let mut browser = signed_in(&state, OPERATOR_ORGANIZATION, "ops", "admin").await;
    let engine = if url.is_some() { "postgres" } else { "sqlite" };
    for (what, path) in [
        ("API first page (50)", "/v1/licenses?limit=50".to_owned()),
        (
            "API page after the 90,000th",
            format!("/v1/licenses?limit=50&after={cursor}"),
        ),
        (
            "API page before the 90,000th",
            format!("/v1/licenses?limit=50&before={cursor}"),
        ),
        ("API default (newest 500)", "/v1/licenses".to_owned()),
        (
            "API search, customer",
            "/v1/licenses?limit=50&q=customer%2099999".to_owned(),
        ),
        (
            "API search, whole key",
            format!("/v1/licenses?limit=50&q={key}"),
        ),
        (
            "API search, id",
            format!("/v1/licenses?limit=50&q={license}"),
        ),
        (
            "API search, nothing found",
            "/v1/licenses?limit=50&q=zzzz".to_owned(),
        ),
        (
            "API audit of one license",
            format!("/v1/audit?license={license}"),
        ),
    ] {
        let mut best = std::time::Duration::MAX;
        for _ in 0..5 {
            let start = std::time::Instant::now();
            let (status, _) = call(&state, "GET", &path, Some(ADMIN), None).await;
            best = best.min(start.elapsed());
            assert_eq!(status, StatusCode::OK, "{path}");
        }
        println!("{engine}: {what}: {:.1} ms", best.as_secs_f64() * 1000.0);
    }
    for (what, path) in [
        ("console list, first page", "/console/licenses".to_owned()),
        (
            "console list, search",
            "/console/licenses?q=customer%2012345".to_owned(),
        ),
        (
            "console license page",
            format!("/console/licenses/{license}"),
        ),
    ] {
        let mut best = std::time::Duration::MAX;
        for _ in 0..5 {
            let start = std::time::Instant::now();
            let page = browser.get(&path).await;
            best = best.min(start.elapsed());
            assert_eq!(page.status, StatusCode::OK, "{path}");
        }
        println!("{engine}: {what}: {:.1} ms", best.as_secs_f64() * 1000.0);
    }
}
