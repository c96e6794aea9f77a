//! SAML 2.0 single sign-on into the console (console/saml.rs) through the real router, with
//! Responses built here and signed with the throwaway keys of fixtures/saml/ (see its
//! README): the happy path, and each attack refused for its own reason (an unsigned assertion,
//! a Response signed but not its assertion, another key, an attribute changed after signing,
//! signature wrapping, wrong audience, wrong destination, expired, an unknown InResponseTo or
//! RelayState, a replay, another organization's ACS, another browser, an oversized body). On
//! SQLite and PostgreSQL. (The same sign-in against a real pysaml2 IdP in Chromium:
//! tests/console/sso_saml.py.)

use saml_rs::crypto::keys::load_private_key;
use saml_rs::crypto::sign::construct_saml_signature;

use super::*;
use crate::server::console::saml::{self, BROWSER_COOKIE};
use crate::server::console::session;
use crate::server::db::console_saml::SamlConfig;

const IDP_KEY: &str = include_str!("fixtures/saml/idp.key");
const IDP_CERT: &str = include_str!("fixtures/saml/idp.crt");
const OTHER_KEY: &str = include_str!("fixtures/saml/other.key");
const OTHER_CERT: &str = include_str!("fixtures/saml/other.crt");
const IDP: &str = "https://idp.test/metadata";
const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";

fn instant(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// What a Response says; `Answer::to` fills in the right values for a request.
#[derive(Clone)]
struct Answer {
    response_id: String,
    assertion_id: String,
    in_response_to: String,
    destination: String,
    audience: String,
    issuer: String,
    not_on_or_after: i64,
    name_id: String,
    group: String,
}

impl Answer {
    fn to(organization_id: &str, request_id: &str, n: u32) -> Answer {
        let urls = saml::SpUrls::at("http://localhost", organization_id);
        Answer {
            response_id: format!("_resp{n}"),
            assertion_id: format!("_assertion{n}"),
            in_response_to: request_id.to_owned(),
            destination: urls.acs,
            audience: urls.entity_id,
            issuer: IDP.to_owned(),
            not_on_or_after: now() + 300,
            name_id: "alice@example.com".to_owned(),
            group: "licensing-admins".to_owned(),
        }
    }

    fn assertion(&self, id: &str, name_id: &str) -> String {
        let now = now();
        format!(
            r#"<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="{issued}"><saml:Issuer>{issuer}</saml:Issuer><saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">{name_id}</saml:NameID><saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData InResponseTo="{irt}" NotOnOrAfter="{noa}" Recipient="{recipient}"/></saml:SubjectConfirmation></saml:Subject><saml:Conditions NotBefore="{nb}" NotOnOrAfter="{noa}"><saml:AudienceRestriction><saml:Audience>{audience}</saml:Audience></saml:AudienceRestriction></saml:Conditions><saml:AuthnStatement AuthnInstant="{issued}" SessionIndex="_session"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement><saml:AttributeStatement><saml:Attribute Name="groups"><saml:AttributeValue>{group}</saml:AttributeValue></saml:Attribute></saml:AttributeStatement></saml:Assertion>"#,
            issued = instant(now - 5),
            issuer = self.issuer,
            irt = self.in_response_to,
            noa = instant(self.not_on_or_after),
            nb = instant(now - 60),
            recipient = self.destination,
            audience = self.audience,
            group = self.group,
        )
    }

    /// The Response XML around `assertions`.
    fn response(&self, assertions: &str) -> String {
        format!(
            r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" IssueInstant="{issued}" Destination="{destination}" InResponseTo="{irt}"><saml:Issuer>{issuer}</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>{assertions}</samlp:Response>"#,
            id = self.response_id,
            issued = instant(now() - 5),
            destination = self.destination,
            irt = self.in_response_to,
            issuer = self.issuer,
        )
    }

    /// The Response with its assertion signed by `key` (KeyInfo: `cert`).
    fn signed_with(&self, key: &str, cert: &str) -> String {
        let xml = self.response(&self.assertion(&self.assertion_id, &self.name_id));
        sign(&xml, false, key, cert)
    }

    fn signed(&self) -> String {
        self.signed_with(IDP_KEY, IDP_CERT)
    }
}

fn sign(xml: &str, whole_response: bool, key: &str, cert: &str) -> String {
    let key = load_private_key(key, None).unwrap();
    construct_saml_signature(xml, whole_response, &key, cert, RSA_SHA256, &[], None).unwrap()
}

fn b64(xml: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(xml)
}

fn config(organization_id: &str) -> SamlConfig {
    SamlConfig {
        organization_id: organization_id.to_owned(),
        idp_entity_id: IDP.to_owned(),
        idp_sso_url: "https://idp.test/sso".to_owned(),
        idp_certificate: IDP_CERT.to_owned(),
        role_attribute: Some("groups".to_owned()),
        role_map: Some(r#"{"licensing-admins":"admin","licensing-auditors":"auditor"}"#.to_owned()),
        default_role: None,
        updated_at: 0,
    }
}

/// A sign-in started by `browser`: (RelayState, AuthnRequest ID).
async fn start(state: &AppState, browser: &mut Browser, organization_id: &str) -> (String, String) {
    let page = browser
        .get(&format!("/console/sso/saml/{organization_id}/start"))
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert!(browser.cookies.contains_key(BROWSER_COOKIE));
    let location = url::Url::parse(page.location()).unwrap();
    assert_eq!(location.host_str(), Some("idp.test"));
    let pairs: HashMap<String, String> = location.query_pairs().into_owned().collect();
    assert!(pairs.contains_key("SAMLRequest"), "{location}");
    let relay_state = pairs["RelayState"].clone();
    let request = state
        .db()
        .console_saml_request(organization_id, &relay_state)
        .await
        .unwrap()
        .unwrap();
    (relay_state, request.request_id)
}

async fn post_acs(
    browser: &mut Browser,
    organization_id: &str,
    relay_state: &str,
    xml: &str,
) -> Page {
    browser
        .post(
            &format!("/console/sso/saml/{organization_id}/acs"),
            &[("SAMLResponse", &b64(xml)), ("RelayState", relay_state)],
        )
        .await
}

/// The ACS refused `xml`, naming `reason`.
#[track_caller]
fn assert_refused(page: &Page, reason: &str) {
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    assert!(
        page.body.contains("Single sign-on refused") && page.body.contains(reason),
        "expected `{reason}`: {}",
        page.body
    );
}

#[tokio::test]
async fn saml_sign_in_requires_a_signed_fresh_assertion_for_this_sp_and_browser() {
    saml_on(None).await;
    if let Some(url) = postgres::fresh_database("console_saml") {
        saml_on(Some(&url)).await;
    }
}

async fn saml_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    let org = OPERATOR_ORGANIZATION;
    let db = state.db();
    let mut browser = Browser::new(&state);

    // Without a configuration: 404, for start and ACS alike.
    let page = browser.get(&format!("/console/sso/saml/{org}/start")).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    // The SP metadata of an existing organization (its entity id is its URL), none of another.
    let page = browser
        .get(&format!("/console/sso/saml/{org}/metadata"))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(&format!(
        r#"entityID="http://localhost/console/sso/saml/{org}/metadata""#
    )));
    assert!(page.body.contains(&format!("/console/sso/saml/{org}/acs")));
    let page = browser.get("/console/sso/saml/org_nobody/metadata").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    db.put_console_saml(&config(org)).await.unwrap();
    // The sign-in page's single sign-on form leads to the SAML start of the organization.
    let page = browser.get(&format!("/console/sso?who={org}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body
            .contains(&format!(r#"url=/console/sso/saml/{org}/start""#)),
        "{}",
        page.body
    );

    // The happy path: start, the IdP's signed answer at the ACS, then this browser finishes.
    let (relay, request_id) = start(&state, &mut browser, org).await;
    let good = Answer::to(org, &request_id, 1).signed();
    let page = post_acs(&mut browser, org, &relay, &good).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let finish = format!("/console/sso/saml/{org}/finish?state={relay}");
    // (minijinja escapes the slashes of the link.)
    assert!(
        page.body.replace("&#x2f;", "/").contains(&finish),
        "{}",
        page.body
    );
    assert!(page.body.contains(r#"http-equiv="refresh""#));
    // The same Response again: the request is answered already.
    let again = post_acs(&mut browser, org, &relay, &good).await;
    assert_refused(&again, "already answered (replay)");
    // Another browser (no cookie, or another's) cannot collect the identity.
    let mut thief = Browser::new(&state);
    assert_refused(&thief.get(&finish).await, "started in another browser");
    thief
        .cookies
        .insert(BROWSER_COOKIE.to_owned(), "forged".to_owned());
    assert_refused(&thief.get(&finish).await, "started in another browser");
    let done = browser.get(&finish).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location(), "/console/");
    assert!(browser.cookies.contains_key(session::SESSION_COOKIE));
    assert!(!browser.cookies.contains_key(BROWSER_COOKIE));
    let overview = browser.get("/console/").await;
    assert_eq!(overview.status, StatusCode::OK, "{}", overview.body);
    assert!(
        overview.body.contains("alice@example.com (admin)"),
        "{}",
        overview.body
    );
    // Finishing twice: the request is spent.
    assert_refused(&browser.get(&finish).await, "no sign-in in progress");

    // The assertion ID is one-time even if a request row were answered again: a fresh request
    // answered with the same assertion is refused as a replay.
    let (relay, request_id) = start(&state, &mut browser, org).await;
    let mut answer = Answer::to(org, &request_id, 2);
    answer.assertion_id = "_assertion1".to_owned();
    let page = post_acs(&mut browser, org, &relay, &answer.signed()).await;
    assert_refused(&page, "already used (replay)");

    // Each attack on a fresh request, refused for its reason.
    type Forge = fn(&Answer) -> String;
    let attacks: [(&str, Forge, &str); 12] = [
        (
            "unsigned assertion",
            |a| a.response(&a.assertion(&a.assertion_id, &a.name_id)),
            "signature missing where required",
        ),
        (
            "only the Response signed",
            |a| {
                let xml = a.response(&a.assertion(&a.assertion_id, &a.name_id));
                sign(&xml, true, IDP_KEY, IDP_CERT)
            },
            "not directly covered by a trusted XML signature",
        ),
        (
            "another key, its own certificate",
            |a| a.signed_with(OTHER_KEY, OTHER_CERT),
            "certificate mismatch",
        ),
        (
            "another key, the IdP's certificate",
            |a| a.signed_with(OTHER_KEY, IDP_CERT),
            "signature verification failed",
        ),
        (
            "an attribute changed after signing",
            |a| {
                let mut a = a.clone();
                a.group = "licensing-auditors".into();
                a.signed().replace("licensing-auditors", "licensing-admins")
            },
            "signature verification failed",
        ),
        (
            "signature wrapping: a second, unsigned assertion",
            |a| {
                let signed = a.signed();
                let evil = a.assertion("_evil", "mallory@example.com");
                signed.replace("<samlp:Status>", &format!("{evil}<samlp:Status>"))
            },
            "ERR_POTENTIAL_WRAPPING_ATTACK",
        ),
        (
            "signature wrapping: the signed assertion moved into an unsigned one's Advice",
            |a| {
                let signed = a.signed();
                let start = signed.find("<saml:Assertion").unwrap();
                let end = signed.find("</saml:Assertion>").unwrap() + "</saml:Assertion>".len();
                let original = &signed[start..end];
                let evil = a.assertion("_evil", "mallory@example.com").replace(
                    "</saml:Assertion>",
                    &format!("<saml:Advice>{original}</saml:Advice></saml:Assertion>"),
                );
                signed.replace(original, &evil)
            },
            "signature missing where required",
        ),
        (
            "signature wrapping: a second, unsigned assertion after the signed one",
            |a| {
                let signed = a.signed();
                let evil = a.assertion("_evil", "mallory@example.com");
                signed.replace("</samlp:Response>", &format!("{evil}</samlp:Response>"))
            },
            "ERR_POTENTIAL_WRAPPING_ATTACK",
        ),
        (
            "wrong audience",
            |a| {
                let mut a = a.clone();
                a.audience = "https://other-sp.test/metadata".into();
                a.signed()
            },
            "audience restriction not satisfied",
        ),
        (
            "wrong destination",
            |a| {
                let mut a = a.clone();
                a.destination = "https://other-sp.test/acs".into();
                a.signed()
            },
            "destination mismatch",
        ),
        (
            "expired",
            |a| {
                let mut a = a.clone();
                a.not_on_or_after = now() - 600;
                a.signed()
            },
            "time window",
        ),
        (
            "an InResponseTo of no request",
            |a| {
                let mut a = a.clone();
                a.in_response_to = "_not_a_request".into();
                a.signed()
            },
            "inResponseTo mismatch",
        ),
    ];
    let mut wrong = Vec::new();
    for (n, (name, forge, reason)) in attacks.iter().enumerate() {
        let (relay, request_id) = start(&state, &mut browser, org).await;
        let answer = Answer::to(org, &request_id, 10 + u32::try_from(n).unwrap());
        let page = post_acs(&mut browser, org, &relay, &forge(&answer)).await;
        let said = page
            .body
            .split(r#"<p class="error" role="alert">"#)
            .nth(1)
            .and_then(|rest| rest.split("</p>").next())
            .unwrap_or(&page.body)
            .to_owned();
        if page.status != StatusCode::FORBIDDEN || !said.contains(reason) {
            wrong.push(format!(
                "{name}: {} {said} (expected `{reason}`)",
                page.status
            ));
        }
        // Nothing to collect afterwards.
        let finish = format!("/console/sso/saml/{org}/finish?state={relay}");
        assert_refused(&browser.get(&finish).await, "has not answered");
    }
    assert!(wrong.is_empty(), "{wrong:#?}");

    // A RelayState of no request, and none at all (IdP-initiated).
    let (_, request_id) = start(&state, &mut browser, org).await;
    let good = Answer::to(org, &request_id, 40).signed();
    let page = post_acs(&mut browser, org, "made-up", &good).await;
    assert_refused(&page, "no sign-in of this organization is waiting");
    let page = browser
        .post(
            &format!("/console/sso/saml/{org}/acs"),
            &[("SAMLResponse", &b64(&good))],
        )
        .await;
    assert_refused(&page, "no RelayState");

    // Another organization's ACS: 404 while it has no SAML; with its own IdP configured, the
    // first organization's request is not its own.
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
    let (relay, request_id) = start(&state, &mut browser, org).await;
    let good = Answer::to(org, &request_id, 41).signed();
    let page = post_acs(&mut browser, org_b, &relay, &good).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND, "{}", page.body);
    db.put_console_saml(&config(org_b)).await.unwrap();
    let page = post_acs(&mut browser, org_b, &relay, &good).await;
    assert_refused(&page, "no sign-in of this organization is waiting");
    // ... and its own request with the first organization's audience and destination.
    let (relay_b, request_b) = start(&state, &mut browser, org_b).await;
    let mut answer = Answer::to(org, &request_b, 42);
    answer.in_response_to = request_b.clone();
    let page = post_acs(&mut browser, org_b, &relay_b, &answer.signed()).await;
    assert_refused(&page, "destination");

    // An oversized form is refused before it is parsed.
    let huge = "A".repeat(saml::MAX_ACS_BYTES + 1);
    let page = browser
        .post(
            &format!("/console/sso/saml/{org}/acs"),
            &[("SAMLResponse", &huge), ("RelayState", &relay)],
        )
        .await;
    assert_eq!(page.status, StatusCode::PAYLOAD_TOO_LARGE);

    // The refusals are in the organization's audit trail, with their reasons.
    state.audit().flush().await;
    let events = db.list_audit_events(org, None, 0, 1000).await.unwrap();
    let refusals: Vec<&str> = events
        .iter()
        .filter(|e| e.action == "console.sign_in_refused")
        .map(|e| e.detail.as_str())
        .collect();
    assert!(
        refusals
            .iter()
            .any(|d| d.starts_with("saml: ") && d.contains("audience")),
        "{refusals:?}"
    );
}

/// The settings page: admins only, the fields or the IdP's metadata, the warnings, the audit.
#[tokio::test]
async fn saml_settings_are_for_admins_validated_and_audited() {
    settings_on(None).await;
    if let Some(url) = postgres::fresh_database("console_saml_settings") {
        settings_on(Some(&url)).await;
    }
}

async fn settings_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    let org = OPERATOR_ORGANIZATION;
    let hash = session::hash_password(PASSWORD).unwrap();
    for (id, name, role) in [
        ("acc_a", "admin", "admin"),
        ("acc_m", "lm", "license_manager"),
    ] {
        state
            .db()
            .insert_console_account(id, org, name, &hash, role, 0)
            .await
            .unwrap();
    }
    // A license manager sees no SAML settings and may not change them.
    let mut manager = Browser::new(&state);
    manager.sign_in("lm", PASSWORD).await;
    let page = manager.get("/console/settings/sso/saml").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    let csrf = manager.get("/console/").await.csrf();
    let page = manager
        .post(
            "/console/settings/sso/saml",
            &[("csrf", &csrf), ("idp_entity_id", "x")],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);

    let mut admin = Browser::new(&state);
    admin.sign_in("admin", PASSWORD).await;
    let page = admin.get("/console/settings/sso/saml").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(
        code(&page, "sp-entity-id"),
        format!(
            "http:&#x2f;&#x2f;localhost&#x2f;console&#x2f;sso&#x2f;saml&#x2f;{org}&#x2f;metadata"
        )
    );
    let csrf = page.csrf();
    let form = |entity: &'static str, certificate: &'static str, role_map: &'static str| {
        vec![
            ("idp_entity_id", entity),
            ("idp_sso_url", "https://idp.test/sso"),
            ("idp_certificate", certificate),
            ("role_attribute", "groups"),
            ("role_map", role_map),
        ]
    };
    let post = |fields: Vec<(&'static str, &'static str)>| {
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend(fields);
        all.into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect::<Vec<_>>()
    };
    // A forged form, a certificate that is not one, an unknown role: refused, nothing stored.
    let page = admin
        .post(
            "/console/settings/sso/saml",
            &[("csrf", "forged"), ("idp_entity_id", IDP)],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    for (fields, warning) in [
        (form(IDP, "not a certificate", "{}"), "X.509 certificate"),
        (form(IDP, "<xml/>", "{}"), "PEM certificate"),
        (
            form(IDP, IDP_CERT, r#"{"licensing-admins":"owner"}"#),
            "role mapping",
        ),
        (form("", IDP_CERT, "{}"), "entity id"),
    ] {
        let fields = post(fields);
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (&**k, &**v)).collect();
        let page = admin.post("/console/settings/sso/saml", &fields).await;
        assert_eq!(
            page.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            page.body
        );
        assert!(
            page.body.contains(r#"class="warning""#) && page.body.contains(warning),
            "{warning}: {}",
            page.body
        );
    }
    assert!(state.db().console_saml(org).await.unwrap().is_none());
    // The IdP's metadata fills the fields.
    let body: String = IDP_CERT
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let metadata = format!(
        r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{IDP}"><md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{body}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.test/sso/redirect"/></md:IDPSSODescriptor></md:EntityDescriptor>"#
    );
    let page = admin
        .post(
            "/console/settings/sso/saml",
            &[
                ("csrf", &csrf),
                ("idp_metadata", &metadata),
                ("role_attribute", "groups"),
                ("role_map", r#"{"licensing-admins":"admin"}"#),
                ("default_role", "auditor"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let stored = state.db().console_saml(org).await.unwrap().unwrap();
    assert_eq!(stored.idp_entity_id, IDP);
    assert_eq!(stored.idp_sso_url, "https://idp.test/sso/redirect");
    assert!(stored.idp_certificate.contains(&body[..60]));
    assert_eq!(stored.default_role.as_deref(), Some("auditor"));
    assert!(page.body.contains(r#"id="saml-start""#));
    // Oversized metadata is refused before it is parsed.
    let huge = "x".repeat(saml::MAX_SETTINGS_BYTES + 1);
    let page = admin
        .post(
            "/console/settings/sso/saml",
            &[("csrf", &csrf), ("idp_metadata", &huge)],
        )
        .await;
    assert_eq!(page.status, StatusCode::PAYLOAD_TOO_LARGE);
    // Removed.
    let page = admin
        .post("/console/settings/sso/saml/delete", &[("csrf", &csrf)])
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(state.db().console_saml(org).await.unwrap().is_none());
    // The changes are in the audit trail as the admin, the refused ones are not.
    let entries = state.db().list_audit(org, 0, 100).await.unwrap();
    let saml: Vec<(&str, &str)> = entries
        .iter()
        .filter(|e| e.action.contains("/console/settings/sso/saml"))
        .map(|e| (e.actor.as_str(), e.action.as_str()))
        .collect();
    assert_eq!(
        saml,
        [
            ("acc_a", "POST /console/settings/sso/saml"),
            ("acc_a", "POST /console/settings/sso/saml/delete"),
        ]
    );
}
