//! The directory's lists (`GET /v1/directory/users`, `GET /v1/directory/departments`): their
//! equality filters, alone and joined, and the refusal of a bad filter text.

use super::directory::{create_user, refused_naming};
use super::*;

#[tokio::test]
async fn list_filters_match_each_field_and_refuse_bad_text() {
    filters_on(None).await;
    if let Some(url) = postgres::fresh_database("directory_list_filters") {
        filters_on(Some(&url)).await;
    }
}

async fn filters_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    for (name, external_id, department) in [("ann", "idp-a", "Sales"), ("ben", "idp-b", "R&D")] {
        let (status, body) = create_user(
            &state,
            ADMIN,
            json!({ "user_name": name, "email": format!("{name}@example.com"),
                    "external_id": external_id, "department": department }),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, body) = call(
            &state,
            "POST",
            "/v1/directory/departments",
            Some(ADMIN),
            Some(json!({ "name": department, "external_id": external_id })),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let list = |path: String| {
        let state = &state;
        async move { call(state, "GET", &path, Some(AUDITOR), None).await }
    };

    // Each equality filter alone, and two together (joined by `and`).
    for query in [
        "user_name=BEN",
        "email=ben@example.com",
        "external_id=idp-b",
        "department=R%26D",
        "user_name=ben&external_id=idp-b",
    ] {
        let (status, page) = list(format!("/v1/directory/users?{query}")).await;
        assert_eq!(status, StatusCode::OK, "{query}: {page}");
        assert_eq!(page["total"], 1, "{query}: {page}");
        assert_eq!(page["users"][0]["user_name"], "ben", "{query}: {page}");
    }
    let (_, page) = list("/v1/directory/users?user_name=ben&external_id=idp-a".into()).await;
    assert_eq!(page["total"], 0, "{page}");
    for query in [
        "name=r%26d",
        "external_id=idp-b",
        "name=R%26D&external_id=idp-b",
    ] {
        let (status, page) = list(format!("/v1/directory/departments?{query}")).await;
        assert_eq!(status, StatusCode::OK, "{query}: {page}");
        assert_eq!(page["total"], 1, "{query}: {page}");
        assert_eq!(page["departments"][0]["name"], "R&D", "{query}: {page}");
    }
    let (_, page) = list("/v1/directory/departments?name=R%26D&external_id=idp-a".into()).await;
    assert_eq!(page["total"], 0, "{page}");

    // A filter's text with a control character is refused, naming its field.
    for field in ["user_name", "email", "external_id", "department"] {
        let (status, body) = list(format!("/v1/directory/users?{field}=a%01b")).await;
        refused_naming(status, &body, field);
    }
    for field in ["name", "external_id"] {
        let (status, body) = list(format!("/v1/directory/departments?{field}=a%01b")).await;
        refused_naming(status, &body, field);
    }
}
