//! The directory's SQL (`db/directory.rs`) on SQLite and PostgreSQL: uniqueness ignoring case,
//! filters (each operator, NULL-safe negation, LIKE wildcards taken literally), pagination,
//! memberships, and organizations kept apart.

use super::*;
use db::directory::{self as dir, DepartmentAttr as D, Filter, Page, UserAttr as U, Value as V};

fn user(org: &str, id: &str, name: &str) -> dir::DirectoryUser {
    dir::DirectoryUser {
        id: id.into(),
        organization_id: org.into(),
        user_name: name.into(),
        display_name: None,
        email: None,
        external_id: None,
        active: true,
        department: None,
        version: 1,
        created_at: 10,
        updated_at: 10,
    }
}

fn eq(attr: U, text: &str) -> Filter<U> {
    Filter::Eq(attr, V::Text(text.into()))
}

const ALL: Page = Page {
    start: 0,
    count: 100,
};

async fn names(db: &Db, org: &str, filter: Filter<U>) -> Vec<String> {
    let (users, total) = db.users(org, &filter, ALL).await.unwrap();
    assert_eq!(total, users.len() as i64);
    users.into_iter().map(|u| u.user_name).collect()
}

async fn directory_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    let db = state.db();
    let org = OPERATOR_ORGANIZATION;
    let other = "org_other";
    assert!(
        db.insert_organization(&db::Organization {
            id: other.into(),
            name: "Other".into(),
            operator: 0,
            created_at: 0,
        })
        .await
        .unwrap()
    );

    let mut tx = db.begin_directory_change(org).await.unwrap();
    let mut alice = user(org, "u1", "Alice@Example.com");
    alice.email = Some("alice@example.com".into());
    alice.department = Some("R&D".into());
    alice.display_name = Some("Alice Liddell".into());
    assert!(dir::insert_user(&mut tx, &alice).await.unwrap());
    // The same name in another case is the same user name.
    assert!(
        !dir::insert_user(&mut tx, &user(org, "u9", "alice@example.COM"))
            .await
            .unwrap()
    );
    let mut bob = user(org, "u2", "bob_100%");
    bob.active = false;
    bob.external_id = Some("ext-2".into());
    assert!(dir::insert_user(&mut tx, &bob).await.unwrap());
    assert!(
        dir::insert_user(&mut tx, &user(org, "u3", "bobby"))
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    // Another organization may use the same name.
    let mut tx = db.begin_directory_change(other).await.unwrap();
    assert!(
        dir::insert_user(&mut tx, &user(other, "u4", "alice@example.com"))
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();

    assert_eq!(
        db.user_by_name(org, "ALICE@example.com")
            .await
            .unwrap()
            .unwrap()
            .id,
        "u1"
    );
    assert!(
        db.user(org, "u4").await.unwrap().is_none(),
        "another tenant's user"
    );
    assert_eq!(
        db.user(other, "u4").await.unwrap().unwrap().user_name,
        "alice@example.com"
    );

    assert_eq!(
        names(db, org, Filter::All).await,
        ["Alice@Example.com", "bob_100%", "bobby"]
    );
    assert_eq!(
        names(db, org, eq(U::UserName, "alice@EXAMPLE.com")).await,
        ["Alice@Example.com"]
    );
    assert_eq!(
        names(db, org, eq(U::Email, "ALICE@example.com")).await,
        ["Alice@Example.com"]
    );
    assert_eq!(
        names(db, org, eq(U::Department, "r&d")).await,
        ["Alice@Example.com"]
    );
    assert_eq!(
        names(db, org, eq(U::ExternalId, "ext-2")).await,
        ["bob_100%"]
    );
    assert!(
        names(db, org, eq(U::ExternalId, "EXT-2")).await.is_empty(),
        "ids are exact"
    );
    assert_eq!(
        names(db, org, Filter::Eq(U::Active, V::Bool(false))).await,
        ["bob_100%"]
    );
    assert_eq!(
        names(db, org, Filter::StartsWith(U::UserName, "BOB".into())).await,
        ["bob_100%", "bobby"]
    );
    // `%` and `_` are literal characters, not wildcards.
    assert_eq!(
        names(db, org, Filter::EndsWith(U::UserName, "0%".into())).await,
        ["bob_100%"]
    );
    assert!(
        names(db, org, Filter::Contains(U::UserName, "b_b".into()))
            .await
            .is_empty()
    );
    assert_eq!(
        names(db, org, Filter::Contains(U::UserName, "B_1".into())).await,
        ["bob_100%"]
    );
    assert_eq!(
        names(db, org, Filter::Present(U::Email)).await,
        ["Alice@Example.com"]
    );
    // NULL-safe negation: users without an e-mail are "not equal" to it.
    assert_eq!(
        names(
            db,
            org,
            Filter::Ne(U::Email, V::Text("alice@example.com".into()))
        )
        .await,
        ["bob_100%", "bobby"]
    );
    assert_eq!(
        names(db, org, Filter::Not(Box::new(Filter::Present(U::Email)))).await,
        ["bob_100%", "bobby"]
    );
    let either = Filter::Or(
        Box::new(eq(U::UserName, "bobby")),
        Box::new(Filter::And(
            Box::new(Filter::Present(U::Department)),
            Box::new(Filter::Eq(U::Active, V::Bool(true))),
        )),
    );
    assert_eq!(names(db, org, either).await, ["Alice@Example.com", "bobby"]);
    // A boolean compared with a text attribute matches nothing.
    assert!(
        names(db, org, Filter::Eq(U::UserName, V::Bool(true)))
            .await
            .is_empty()
    );

    let (page, total) = db
        .users(org, &Filter::All, Page { start: 1, count: 1 })
        .await
        .unwrap();
    assert_eq!(
        (page.len(), total, page[0].user_name.as_str()),
        (1, 3, "bob_100%")
    );

    // Updates bump the version; a taken name is refused.
    let mut tx = db.begin_directory_change(org).await.unwrap();
    let mut renamed = user(org, "u3", "BOB_100%");
    assert!(!dir::update_user(&mut tx, &renamed).await.unwrap());
    renamed.user_name = "robert".into();
    renamed.updated_at = 20;
    assert!(dir::update_user(&mut tx, &renamed).await.unwrap());
    assert!(
        !dir::update_user(&mut tx, &user(org, "u4", "x"))
            .await
            .unwrap(),
        "other tenant"
    );
    tx.commit().await.unwrap();
    let robert = db.user(org, "u3").await.unwrap().unwrap();
    assert_eq!(
        (robert.user_name.as_str(), robert.version, robert.updated_at),
        ("robert", 2, 20)
    );

    // Departments and members.
    let department = |id: &str, name: &str| dir::Department {
        id: id.into(),
        organization_id: org.into(),
        name: name.into(),
        external_id: None,
        version: 1,
        created_at: 10,
        updated_at: 10,
    };
    let mut tx = db.begin_directory_change(org).await.unwrap();
    assert!(
        dir::insert_department(&mut tx, &department("d1", "Engineering"))
            .await
            .unwrap()
    );
    assert!(
        !dir::insert_department(&mut tx, &department("d9", "ENGINEERING"))
            .await
            .unwrap()
    );
    assert!(
        dir::insert_department(&mut tx, &department("d2", "Sales"))
            .await
            .unwrap()
    );
    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // `u4` is another tenant's user: skipped.
    dir::set_members(&mut tx, org, "d1", &ids(&["u1", "u2", "u4"]))
        .await
        .unwrap();
    dir::add_members(&mut tx, org, "d2", &ids(&["u1", "u1"]))
        .await
        .unwrap();
    dir::remove_members(&mut tx, org, "d1", &ids(&["u2"]))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        db.members(org, "d1").await.unwrap(),
        vec![("u1".to_owned(), "Alice@Example.com".to_owned())]
    );
    let of_alice: Vec<String> = db
        .departments_of(org, "u1")
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(of_alice, ["Engineering", "Sales"]);
    let with = |f: Filter<D>| async move {
        let (found, _) = db.departments(org, &f, ALL).await.unwrap();
        found.into_iter().map(|d| d.id).collect::<Vec<_>>()
    };
    assert_eq!(
        with(Filter::Eq(D::Member, V::Text("u1".into()))).await,
        ["d1", "d2"]
    );
    assert_eq!(
        with(Filter::Eq(D::Name, V::Text("sales".into()))).await,
        ["d2"]
    );
    assert_eq!(with(Filter::Present(D::Member)).await, ["d1", "d2"]);
    assert_eq!(
        with(Filter::Ne(D::Member, V::Text("u1".into()))).await,
        Vec::<String>::new()
    );
    assert!(
        db.department(other, "d1").await.unwrap().is_none(),
        "another tenant's department"
    );

    // Deleting a user removes its memberships.
    let mut tx = db.begin_directory_change(org).await.unwrap();
    assert!(dir::delete_user(&mut tx, org, "u1").await.unwrap());
    assert!(
        !dir::delete_user(&mut tx, org, "u4").await.unwrap(),
        "other tenant"
    );
    assert!(dir::delete_department(&mut tx, org, "d2").await.unwrap());
    tx.commit().await.unwrap();
    assert!(db.members(org, "d1").await.unwrap().is_empty());
    assert!(db.user(other, "u4").await.unwrap().is_some());
}

#[tokio::test]
async fn directory_sql_on_sqlite() {
    directory_on(None).await;
}

#[tokio::test]
async fn directory_sql_on_postgres() {
    if let Some(url) = postgres::fresh_database("directory_sql_on_postgres") {
        directory_on(Some(&url)).await;
    }
}
