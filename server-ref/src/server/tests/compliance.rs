//! `GET /v1/alerts`: compliance alerts computed from the licenses' state, per organization.

use super::*;

/// Every kind of alert, each from the state that causes it; none for healthy licenses, none
/// from another organization, readable by an auditor, not by a client.
#[tokio::test]
async fn compliance_alerts_name_each_cause() {
    alerts_on(None).await;
    if let Some(url) = postgres::fresh_database("compliance_alerts_name_each_cause") {
        alerts_on(Some(&url)).await;
    }
}

fn of<'a>(report: &'a Value, license: &str) -> Vec<&'a Value> {
    report["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["license_id"] == license)
        .collect()
}

async fn alerts_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    let alerts = |token: &'static str| call(&state, "GET", "/v1/alerts", Some(token), None);
    let (status, report) = alerts(AUDITOR).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["alerts"], json!([]), "{report}");

    // A floating license with 2 seats: one in use is no alert, both in use is, a denial is a
    // warning instead.
    let (key, floating) = license(&state, json!({ "model": "floating", "seats": 2 })).await;
    let check_out = |client: &'static str| {
        let body = json!({ "license_key": key, "client_id": client, "user": client,
                           "request_id": format!("r-{client}") });
        call(&state, "POST", "/v1/client/leases", None, Some(body))
    };
    assert_eq!(check_out("a").await.0, StatusCode::CREATED);
    let (_, report) = alerts(AUDITOR).await;
    assert!(of(&report, &floating).is_empty(), "{report}");
    assert_eq!(check_out("b").await.0, StatusCode::CREATED);
    let (_, report) = alerts(AUDITOR).await;
    let found = of(&report, &floating);
    assert_eq!(found.len(), 1, "{report}");
    assert_eq!(found[0]["kind"], "seats_nearly_exhausted");
    assert_eq!(found[0]["severity"], "info");
    assert_eq!(
        (found[0]["count"].clone(), found[0]["limit"].clone()),
        (json!(2), json!(2))
    );
    assert_eq!(check_out("c").await.0, StatusCode::CONFLICT);
    assert_eq!(check_out("d").await.0, StatusCode::CONFLICT);
    let (_, report) = alerts(AUDITOR).await;
    let found = of(&report, &floating);
    assert_eq!(found.len(), 1, "{report}");
    assert_eq!(found[0]["kind"], "seats_denied");
    assert_eq!(found[0]["severity"], "warning");
    assert_eq!(found[0]["count"], 2);
    assert!(
        found[0]["message"]
            .as_str()
            .unwrap()
            .contains("turned away")
    );

    // A machine limit reached.
    let (key, node) = license(&state, json!({ "model": "node_locked", "max_machines": 1 })).await;
    let body = json!({ "license_key": key, "fingerprint": { "id": "box-a" } });
    let (status, body) = call(&state, "POST", "/v1/client/activate", None, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, report) = alerts(AUDITOR).await;
    let found = of(&report, &node);
    assert_eq!(found.len(), 1, "{report}");
    assert_eq!(found[0]["kind"], "machine_limit_reached");
    assert_eq!(
        (found[0]["count"].clone(), found[0]["limit"].clone()),
        (json!(1), json!(1))
    );

    // Ending within the window, not beyond it; in grace.
    let day = 86_400;
    let (_, soon) = license(
        &state,
        json!({ "model": "subscription", "duration": 10 * day }),
    )
    .await;
    let (_, later) = license(
        &state,
        json!({ "model": "subscription", "duration": 90 * day }),
    )
    .await;
    let (_, lapsing) = license(
        &state,
        json!({ "model": "subscription", "duration": 1, "grace_period": 7 * day }),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (_, report) = alerts(AUDITOR).await;
    let found = of(&report, &soon);
    assert_eq!(found.len(), 1, "{report}");
    assert_eq!(found[0]["kind"], "expiring");
    assert!(
        [json!(9), json!(10)].contains(&found[0]["count"]),
        "{report}"
    );
    assert!(of(&report, &later).is_empty(), "{report}");
    let found = of(&report, &lapsing);
    assert_eq!(found.len(), 1, "{report}");
    assert_eq!(found[0]["kind"], "in_grace");
    assert_eq!(found[0]["severity"], "warning");
    // Warnings first.
    let severities: Vec<&Value> = report["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["severity"])
        .collect();
    assert_eq!(severities.iter().filter(|s| **s == "warning").count(), 2);
    assert!(severities[..2].iter().all(|s| *s == "warning"), "{report}");
    let path = "/v1/alerts?expiring_within_days=120";
    let (_, wide) = call(&state, "GET", path, Some(AUDITOR), None).await;
    assert_eq!(of(&wide, &later).len(), 1, "{wide}");

    // A license with a server check-in made two hours ago (its template keeps that day's
    // check-in deadline, each signed token gets a fresh one) raises nothing: it is neither in
    // grace nor lapsing. Nor does a `seats` claim on a license that is not floating.
    let (_, checked_in) = license(
        &state,
        json!({ "model": "perpetual", "check_in_interval": 3600, "check_in_grace": 600 }),
    )
    .await;
    let row = state.db().get_license(&checked_in).await.unwrap().unwrap();
    let mut claims: Value = serde_json::from_str(&row.claims).unwrap();
    let until = claims["lic"]["check_in"]["until"].as_i64().unwrap();
    claims["lic"]["check_in"]["until"] = json!(until - 7200);
    claims["iat"] = json!(claims["iat"].as_i64().unwrap() - 7200);
    state
        .db()
        .set_claims_for_tests(&checked_in, &claims.to_string())
        .await;
    let (_, seatless) = license(&state, json!({ "model": "perpetual" })).await;
    let (_, report) = alerts(AUDITOR).await;
    assert!(of(&report, &checked_in).is_empty(), "{report}");
    assert!(of(&report, &seatless).is_empty(), "{report}");

    // A suspended license raises nothing.
    let path = format!("/v1/licenses/{floating}/suspend");
    let (status, _) = call(&state, "POST", &path, Some(ADMIN), Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK);
    let (_, report) = alerts(ADMIN).await;
    assert!(of(&report, &floating).is_empty(), "{report}");

    // Windows are bounded; another organization sees none of these; clients cannot ask.
    for bad in [
        "days=0",
        "days=61",
        "expiring_within_days=366",
        "colour=red",
    ] {
        let path = format!("/v1/alerts?{bad}");
        let (status, body) = call(&state, "GET", &path, Some(AUDITOR), None).await;
        assert!(status.is_client_error(), "{bad}: {status} {body}");
    }
    let (status, created) = call(
        &state,
        "POST",
        "/v1/organizations",
        Some(ADMIN),
        Some(json!({ "name": "Tenant B" })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let admin_b = created["admin_token"].as_str().unwrap();
    let (status, report) = call(&state, "GET", "/v1/alerts", Some(admin_b), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(report["alerts"], json!([]), "{report}");
    let (status, _) = call(&state, "GET", "/v1/alerts", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
