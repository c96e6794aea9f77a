//! The overview's utilisation bars at more than one license and more than one tenant: each
//! bar is its license's live leases over its seats (read in two statements for all bars, not
//! one request per bar), busiest first, and another organization's licenses never show.

use super::*;
use crate::server::console::session;

#[tokio::test]
async fn the_overview_bars_are_each_license_live_over_seats_of_one_tenant() {
    overview_on(None).await;
    if let Some(url) = postgres::fresh_database("console_overview") {
        overview_on(Some(&url)).await;
    }
}

/// `seats` seats, `live` of them checked out; the license's id.
async fn floating(state: &AppState, token: &str, product: &str, seats: i64, live: i64) -> String {
    let (status, body) = call(
        state,
        "POST",
        "/v1/products",
        Some(token),
        Some(json!({ "id": product, "name": product })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, policy) = call(
        state,
        "POST",
        "/v1/policies",
        Some(token),
        Some(json!({ "product_id": product, "name": "f", "model": "floating", "seats": seats })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{policy}");
    let (status, license) = call(
        state,
        "POST",
        "/v1/licenses",
        Some(token),
        Some(json!({ "policy_id": policy["id"] })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{license}");
    for n in 0..live {
        let body = json!({ "license_key": license["key"], "client_id": format!("c{n}"),
                           "user": format!("u{n}"), "request_id": "r", "lease_secret_supported": true });
        let (status, answer) = call(state, "POST", "/v1/client/leases", None, Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }
    license["id"].as_str().unwrap().to_owned()
}

async fn overview_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    let a1 = floating(&state, ADMIN, "com.example.a1", 5, 1).await;
    let a2 = floating(&state, ADMIN, "com.example.a2", 3, 3).await;
    let a3 = floating(&state, ADMIN, "com.example.a3", 4, 2).await;
    let (status, created) = call(
        &state,
        "POST",
        "/v1/organizations",
        Some(ADMIN),
        Some(json!({ "name": "Contoso" })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let org_b = created["organization"]["id"].as_str().unwrap().to_owned();
    let admin_b = created["admin_token"].as_str().unwrap().to_owned();
    let b1 = floating(&state, &admin_b, "com.contoso.b1", 7, 4).await;

    let hash = session::hash_password(PASSWORD).unwrap();
    for (id, org, name) in [
        ("acc_a", OPERATOR_ORGANIZATION, "ops-a"),
        ("acc_b", org_b.as_str(), "ops-b"),
    ] {
        state
            .db()
            .insert_console_account(id, org, name, &hash, "admin", 0)
            .await
            .unwrap();
    }
    let mut a = Browser::new(&state);
    assert_eq!(
        a.sign_in("ops-a", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
    let page = a.get("/console/").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let bars = page.body.split(r#"id="utilisation""#).nth(1).unwrap();
    let bars = bars.split("</section>").next().unwrap();
    // Busiest first: 3/3, then 2/4, then 1/5; each with its own license's seats.
    let at = |text: &str| {
        bars.find(text)
            .unwrap_or_else(|| panic!("no {text}: {bars}"))
    };
    assert!(
        at("3 of 3 seats in use") < at("2 of 4 seats in use"),
        "{bars}"
    );
    assert!(
        at("2 of 4 seats in use") < at("1 of 5 seats in use"),
        "{bars}"
    );
    for id in [&a1, &a2, &a3] {
        assert!(bars.contains(&id[..12]), "{id}: {bars}");
    }
    assert!(
        !page.body.contains(&b1[..12]),
        "another tenant's license: {}",
        page.body
    );
    assert!(!bars.contains("of 7 seats"), "{bars}");

    let mut b = Browser::new(&state);
    assert_eq!(
        b.sign_in("ops-b", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
    let page = b.get("/console/").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("4 of 7 seats in use"), "{}", page.body);
    for id in [&a1, &a2, &a3] {
        assert!(
            !page.body.contains(&id[..12]),
            "another tenant's license: {}",
            page.body
        );
    }

    // The rows the bars read: another organization's license is left out, as if missing.
    let rows = state
        .db()
        .licenses_among(
            OPERATOR_ORGANIZATION,
            &[a1.as_str(), b1.as_str(), "lic_missing"],
        )
        .await
        .unwrap();
    assert_eq!(rows.keys().collect::<Vec<_>>(), vec![&a1]);
}
