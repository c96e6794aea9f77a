//! Single sign-on's shared part (console/federation.rs): identities linked to accounts made
//! just in time, roles mapped from the provider's claim or kept locally, refusals, tenant
//! isolation, sessions and the audit trail. On SQLite and PostgreSQL.

use super::*;
use crate::server::console::federation::{
    FederatedIdentity, FederatedSignIn, RoleMapping, sign_in_federated,
};
use crate::server::console::session;
use crate::server::extract::Role;

const OTHER: &str = "org_other";
const ISSUER: &str = "https://idp.example.test";

fn identity(org: &str, subject: &str, name: Option<&str>, groups: &[&str]) -> FederatedIdentity {
    FederatedIdentity {
        organization_id: org.to_owned(),
        protocol: "oidc",
        issuer: ISSUER.to_owned(),
        subject: subject.to_owned(),
        user_name: name.map(str::to_owned),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

fn mapped() -> RoleMapping {
    RoleMapping::parse(
        Some("groups"),
        Some(r#"{"licensing-admins": "admin", "licensing-readers": "auditor"}"#),
        None,
    )
    .unwrap()
}

/// The account and role a started session signs in as.
async fn session_of(state: &AppState, outcome: FederatedSignIn) -> (String, String, String) {
    let FederatedSignIn::Started(secret) = outcome else {
        panic!("refused")
    };
    let stored = state
        .db()
        .console_session(&secrets::sha256_hex(secret.as_bytes()))
        .await
        .unwrap()
        .expect("a live session");
    (stored.account_id, stored.user_name, stored.role)
}

fn refused(outcome: FederatedSignIn) -> &'static str {
    match outcome {
        FederatedSignIn::Refused(why) => why,
        FederatedSignIn::Started(_) => panic!("signed in"),
    }
}

#[tokio::test]
async fn federated_sign_ins_link_map_refuse_and_stay_in_their_tenant() {
    federation_on(None).await;
    if let Some(url) = postgres::fresh_database("console_federation") {
        federation_on(Some(&url)).await;
    }
}

async fn federation_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    let db = state.db();
    let other = db::Organization {
        id: OTHER.into(),
        name: "Other".into(),
        operator: 0,
        created_at: 0,
    };
    assert!(db.insert_organization(&other).await.unwrap());
    // A local account of the operator named like the IdP's user.
    let hash = session::hash_password(PASSWORD).unwrap();
    db.insert_console_account(
        "acc_local",
        OPERATOR_ORGANIZATION,
        "alice@example.com",
        &hash,
        "admin",
        0,
    )
    .await
    .unwrap();

    // First sign-in at the other organization's IdP with the same e-mail: a new account of
    // that organization (tenant isolation: the operator's admin account is never reused), the
    // name made unique, the role mapped from the claim.
    let first = sign_in_federated(
        &state,
        identity(
            OTHER,
            "sub-1",
            Some("alice@example.com"),
            &["licensing-readers"],
        ),
        &mapped(),
    )
    .await
    .unwrap();
    let (account, name, role) = session_of(&state, first).await;
    assert_ne!(account, "acc_local");
    assert_eq!(name, "alice@example.com (2)");
    assert_eq!(role, "auditor");
    let listed = db.list_console_accounts(OTHER).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].has_password, 0,
        "no password: no password sign-in"
    );
    assert!(
        db.list_console_accounts(OPERATOR_ORGANIZATION)
            .await
            .unwrap()
            .len()
            == 1
    );
    // Password sign-in is impossible for it (it has no password).
    assert!(matches!(
        session::sign_in(&state, "alice@example.com (2)", "")
            .await
            .unwrap(),
        session::SignIn::Refused
    ));

    // The same subject signs in again: the same account; the claim now grants admin.
    let again = sign_in_federated(
        &state,
        identity(
            OTHER,
            "sub-1",
            Some("renamed@example.com"),
            &["licensing-readers", "licensing-admins"],
        ),
        &mapped(),
    )
    .await
    .unwrap();
    let FederatedSignIn::Started(again_secret) = again else {
        panic!("refused")
    };
    let again_hash = secrets::sha256_hex(again_secret.as_bytes());
    let stored = db.console_session(&again_hash).await.unwrap().unwrap();
    assert_eq!(stored.account_id, account);
    assert_eq!(stored.role, "admin");
    // The group removed at the IdP takes the role away: no value maps, no default, refused.
    let removed = sign_in_federated(&state, identity(OTHER, "sub-1", None, &[]), &mapped())
        .await
        .unwrap();
    assert_eq!(refused(removed), "no role");
    // ...and the account's live sessions end with it.
    assert!(db.console_session(&again_hash).await.unwrap().is_none());
    // With a default role, the same sign-in gets it.
    let mut with_default = mapped();
    with_default.default_role = Some(Role::ItStaff);
    let defaulted = sign_in_federated(&state, identity(OTHER, "sub-1", None, &[]), &with_default)
        .await
        .unwrap();
    assert_eq!(session_of(&state, defaulted).await.2, "it_staff");

    // The same subject of the same issuer in another organization is another identity.
    let elsewhere = sign_in_federated(
        &state,
        identity(
            OPERATOR_ORGANIZATION,
            "sub-1",
            Some("alice@example.com"),
            &["licensing-readers"],
        ),
        &mapped(),
    )
    .await
    .unwrap();
    let (elsewhere_account, elsewhere_name, _) = session_of(&state, elsewhere).await;
    assert_ne!(elsewhere_account, account);
    assert_ne!(elsewhere_account, "acc_local");
    assert_eq!(elsewhere_name, "alice@example.com (3)");

    // A first sign-in with no mapped value and no default is refused; nothing is created.
    let unmapped = sign_in_federated(
        &state,
        identity(OTHER, "sub-2", Some("bob@example.com"), &["sales"]),
        &mapped(),
    )
    .await
    .unwrap();
    assert_eq!(refused(unmapped), "no role");
    assert_eq!(db.list_console_accounts(OTHER).await.unwrap().len(), 1);

    // Roles set locally: the default at the first sign-in, then the local role stays whatever
    // the IdP sends.
    let local = RoleMapping::parse(None, None, Some("auditor")).unwrap();
    let carol = sign_in_federated(
        &state,
        identity(
            OTHER,
            "sub-3",
            Some("carol@example.com"),
            &["licensing-admins"],
        ),
        &local,
    )
    .await
    .unwrap();
    let (carol_account, carol_name, carol_role) = session_of(&state, carol).await;
    assert_eq!(
        (carol_name.as_str(), carol_role.as_str()),
        ("carol@example.com", "auditor")
    );
    // An admin changes the role locally.
    let mut tx = db.begin_write().await.unwrap();
    sqlx::query("UPDATE console_accounts SET role = 'license_manager' WHERE id = $1")
        .bind(&carol_account)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let no_default = RoleMapping::parse(None, None, None).unwrap();
    let carol = sign_in_federated(&state, identity(OTHER, "sub-3", None, &[]), &no_default)
        .await
        .unwrap();
    assert_eq!(session_of(&state, carol).await.2, "license_manager");
    // With no claim and no default, a first sign-in is refused.
    let dave = sign_in_federated(&state, identity(OTHER, "sub-4", None, &[]), &no_default)
        .await
        .unwrap();
    assert_eq!(refused(dave), "no role");

    // No user name asserted: one made from the subject.
    let nameless = sign_in_federated(&state, identity(OTHER, "sub-5", None, &[]), &local)
        .await
        .unwrap();
    assert_eq!(session_of(&state, nameless).await.1, "oidc-sub-5");

    // The audit trail has the sign-ins with their protocol, and the refusals with the reason.
    state.audit().flush().await;
    let events = db.list_audit_events(OTHER, None, 0, 1000).await.unwrap();
    let signed_in = events
        .iter()
        .filter(|e| e.action == "console.signed_in" && e.detail == "oidc")
        .count();
    assert_eq!(signed_in, 6, "{events:?}");
    assert!(
        events.iter().any(|e| e.action == "console.signed_in"
            && e.actor == account
            && e.target_id == account)
    );
    let refusals: Vec<_> = events
        .iter()
        .filter(|e| e.action == "console.sign_in_refused" && e.detail.starts_with("oidc"))
        .collect();
    assert_eq!(refusals.len(), 3, "{events:?}");
    assert!(refusals.iter().all(|e| e.detail == "oidc: no role"));
    // The operator's trail has only its own sign-in.
    let operator = db
        .list_audit_events(OPERATOR_ORGANIZATION, None, 0, 1000)
        .await
        .unwrap();
    assert_eq!(
        operator
            .iter()
            .filter(|e| e.action.starts_with("console."))
            .count(),
        1
    );
}
