//! SAML 2.0 single sign-on into the console (issue 23): SP-initiated, the AuthnRequest sent
//! with the HTTP-Redirect binding, the IdP's Response received with HTTP-POST at the ACS, and
//! **signed assertions required** (signed with the organization's configured IdP certificate).
//!
//! The XML signature work (exclusive C14N, RSA-SHA2, the reference and wrapping checks) and the
//! SAML checks (Issuer, Audience = our SP entity id, Destination and Recipient = our ACS,
//! InResponseTo = the outstanding request, NotBefore/NotOnOrAfter with a small skew, bearer
//! confirmation, status) are `saml-rs` with its pure-Rust `bergshamra` backend (RustCrypto):
//! `samael` needs libxmlsec1 and OpenSSL, which deny.toml bans, and a hand-written XML-DSig
//! verifier is exactly where signature-wrapping bugs live. What is ours: the per-organization
//! configuration, the request store, the one-time use of an assertion ID (in the database, so
//! it holds across restarts and processes) and the binding to the browser.
//!
//! The browser binding. The ACS is a cross-site POST from the IdP, so no `SameSite=Strict`
//! (nor `Lax`) cookie comes with it, and `SameSite=None` needs `Secure`, which plain-HTTP
//! deployments cannot set. So the ACS binds nothing to a browser and signs no one in: it
//! verifies the Response, spends the assertion ID and parks the verified identity on the
//! request, then answers a page that navigates (meta refresh, plus a link) to `finish`. That
//! navigation starts on our own page, so it is same-site and carries the `SameSite=Strict`
//! cookie set by `start`; `finish` signs in only the browser whose cookie secret hashes to the
//! one stored with the request. A Response replayed, injected into another browser (login
//! CSRF) or lifted from a log signs no one in.
//!
//! The SP's entity id and ACS URL are built from the request's `Host` (and
//! `X-Forwarded-Proto: https` from a TLS proxy), as the SCIM service builds its URLs: reach the
//! console under the one name registered at the IdP. A forged `Host` only changes what the
//! Audience and Destination must say, which a genuine assertion for the real name never does.

use std::time::SystemTime;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use licensing_core::protocol::ErrorCode;
use saml_rs::constants::{Binding, CertUse};
use saml_rs::metadata::idp::IdpMetadata;
use saml_rs::{
    AcsEndpoint, AssertionSignaturePolicy, AudienceValidationPolicy, AuthnRequest, BrowserInput,
    ClockSkew, EntityId, FormField, IdpDescriptor, MetadataTrustPolicy, PendingAuthnRequest,
    PendingSnapshot, RelayStateParam, ReplayPolicy, Saml, SamlError, SamlValidationContext, Sp,
    SpConfig, SpValidationPolicy, SsoResponse, StartSso, XmlSignatureProfile,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::super::audit::{AuditEvent, action};
use super::super::db::console_saml::SamlConfig;
use super::super::error::ApiError;
use super::super::extract::Action;
use super::super::{AppState, now, secrets};
use super::federation::{FederatedIdentity, FederatedSignIn, RoleMapping, sign_in_federated};
use super::pages::{frame_with, parts_of, signed_in};
use super::session::{self, Session};
use super::{ConsoleError, render};

type Page = Result<Response, ConsoleError>;

/// The cookie that binds a sign-in in progress to the browser that started it.
pub(crate) const BROWSER_COOKIE: &str = "lic_saml";
/// How long an AuthnRequest may be answered and finished.
pub(crate) const REQUEST_TTL_SECS: i64 = 10 * 60;
/// The largest ACS form (a signed Response is a few KiB; base64 adds a third).
pub(crate) const MAX_ACS_BYTES: usize = 256 * 1024;
/// The largest IdP metadata import.
pub(crate) const MAX_METADATA_BYTES: usize = 256 * 1024;
/// The largest settings form (the metadata and a certificate).
pub(crate) const MAX_SETTINGS_BYTES: usize = MAX_METADATA_BYTES + 64 * 1024;
/// The largest IdP certificate (PEM).
const MAX_CERTIFICATE_BYTES: usize = 16 * 1024;
/// Clock skew allowed on NotBefore / NotOnOrAfter, both ways.
const CLOCK_SKEW_MS: i64 = 90_000;
/// A consumed assertion ID is kept at least this long (longer when its NotOnOrAfter is later).
const KEEP_ASSERTION_SECS: i64 = 24 * 3600;
/// The roles a mapping may name.
const ROLES: [&str; 4] = ["admin", "license_manager", "it_staff", "auditor"];

/// The service provider this console is for one organization.
pub(crate) struct SpUrls {
    /// The SP entity id: the Audience an assertion must name (the metadata URL).
    pub entity_id: String,
    /// The ACS URL: the Destination / Recipient an answer must name.
    pub acs: String,
}

impl SpUrls {
    /// The URLs of organization `organization_id` at `base` (`https://console.example.com`).
    pub(crate) fn at(base: &str, organization_id: &str) -> SpUrls {
        SpUrls {
            entity_id: format!("{base}/console/sso/saml/{organization_id}/metadata"),
            acs: format!("{base}/console/sso/saml/{organization_id}/acs"),
        }
    }
}

// The console's base URL as the browser reached it (one definition for the whole server).
use crate::server::base_url::request_base_url as base_url;

/// Organization ids as the server makes them; anything else is not an organization (404).
fn plausible_organization(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The validation policy: a signature directly over the consumed assertion, RSA-SHA2 with
/// exclusive C14N only, and the audience always checked.
fn policy() -> SpValidationPolicy {
    SpValidationPolicy {
        assertions: AssertionSignaturePolicy::RequireSigned,
        xml_signatures: XmlSignatureProfile::StrictRsaSha2,
        audience: AudienceValidationPolicy::Validate,
        ..SpValidationPolicy::recommended()
    }
}

fn service_provider(urls: &SpUrls) -> Result<Saml<Sp>, SamlError> {
    Saml::sp(
        SpConfig::builder(EntityId::try_new(&urls.entity_id)?)
            .acs_endpoint(AcsEndpoint::post(&urls.acs)?)
            .validation(policy())
            .build()?,
    )
}

fn escape_xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// The base64 body of a PEM certificate (or of bare base64), whitespace removed; `None` when
/// it is not one certificate's base64.
fn certificate_body(pem: &str) -> Option<String> {
    let inner = match pem.find("-----BEGIN CERTIFICATE-----") {
        Some(at) => {
            let rest = &pem[at + "-----BEGIN CERTIFICATE-----".len()..];
            &rest[..rest.find("-----END CERTIFICATE-----")?]
        }
        None => pem,
    };
    let body: String = inner.chars().filter(|c| !c.is_whitespace()).collect();
    let valid = !body.is_empty()
        && body.len() <= MAX_CERTIFICATE_BYTES
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
    valid.then_some(body)
}

/// `body` (base64) as a PEM certificate, 64 characters a line.
fn certificate_pem(body: &str) -> String {
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

/// The IdP as saml-rs takes it: metadata written from the stored configuration, trusted
/// because an admin of the organization entered it (the certificate is pinned).
fn idp_descriptor(config: &SamlConfig) -> Result<IdpDescriptor, SamlError> {
    let certificate = certificate_body(&config.idp_certificate)
        .ok_or_else(|| SamlError::Invalid("the IdP certificate is not PEM".into()))?;
    let xml = format!(
        r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{entity}"><md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{certificate}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{sso}"/></md:IDPSSODescriptor></md:EntityDescriptor>"#,
        entity = escape_xml(&config.idp_entity_id),
        sso = escape_xml(&config.idp_sso_url),
    );
    IdpDescriptor::from_metadata_xml_for(
        EntityId::try_new(&config.idp_entity_id)?,
        &xml,
        MetadataTrustPolicy::UnsignedForCompatibility,
    )
}

/// What a verified assertion said, kept on the request until the browser finishes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct AssertedIdentity {
    /// The IdP entity id (the assertion's Issuer).
    pub issuer: String,
    /// The NameID.
    pub subject: String,
    /// An e-mail attribute, or the NameID.
    pub user_name: Option<String>,
    /// The values of the role attribute.
    pub groups: Vec<String>,
}

/// A Response that passed every check.
#[derive(Debug)]
pub(crate) struct Verified {
    /// The consumed assertion's ID (one-time use).
    pub assertion_id: String,
    /// Until when (Unix seconds) the assertion ID must be remembered.
    pub keep_until: i64,
    /// What it asserted.
    pub identity: AssertedIdentity,
}

/// E-mail attributes, by the names IdPs commonly give them.
const MAIL_ATTRIBUTES: [&str; 4] = [
    "email",
    "mail",
    "urn:oid:0.9.2342.19200300.100.1.3",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
];

/// Verifies the base64 `saml_response` posted to the ACS of `urls` as the answer to request
/// `request_id` (sent with `relay_state`) from the IdP of `config`, at `now`.
pub(crate) fn verify_response(
    config: &SamlConfig,
    urls: &SpUrls,
    request_id: &str,
    relay_state: &str,
    saml_response: &str,
    now: SystemTime,
) -> Result<Verified, SamlError> {
    let sp = service_provider(urls)?;
    let idp = idp_descriptor(config)?;
    let relay = RelayStateParam::try_from_option(Some(relay_state))?;
    let pending =
        PendingAuthnRequest::from_snapshot(PendingSnapshot::<AuthnRequest>::authn_request(
            request_id,
            relay,
            &config.idp_entity_id,
            "post",
            &urls.acs,
            "post",
        ))?;
    let input = BrowserInput::<SsoResponse>::post(vec![
        FormField::new("SAMLResponse", saml_response),
        FormField::new("RelayState", relay_state),
    ]);
    // Replay is ours (in the database, atomically, after these checks).
    let validation = SamlValidationContext::new(now, ReplayPolicy::DisabledForCompatibility)
        .with_clock_skew(ClockSkew::from_millis(-CLOCK_SKEW_MS, CLOCK_SKEW_MS));
    let session = sp.finish_sso(&idp, &pending, input, validation)?;
    let attributes = session.attributes();
    let values = |name: &str| -> Vec<String> {
        attributes
            .get(name)
            .map(|a| a.values().iter().map(|v| v.as_str().to_owned()).collect())
            .unwrap_or_default()
    };
    let groups = config
        .role_attribute
        .as_deref()
        .map(values)
        .unwrap_or_default();
    let subject = session.name_id().value().to_owned();
    let user_name = MAIL_ATTRIBUTES
        .iter()
        .find_map(|name| values(name).into_iter().find(|v| !v.trim().is_empty()))
        .or_else(|| Some(subject.clone()));
    let unix = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    };
    let not_on_or_after = session
        .not_on_or_after()
        .and_then(|t| {
            time::OffsetDateTime::parse(t.as_str(), &time::format_description::well_known::Rfc3339)
                .ok()
        })
        .map(|t| t.unix_timestamp())
        .unwrap_or(0);
    let keep_until = not_on_or_after
        .saturating_add(CLOCK_SKEW_MS / 1000)
        .max(unix(now).saturating_add(KEEP_ASSERTION_SECS));
    Ok(Verified {
        assertion_id: session.assertion_id().as_str().to_owned(),
        keep_until,
        identity: AssertedIdentity {
            issuer: session.issuer().as_str().to_owned(),
            subject,
            user_name,
            groups,
        },
    })
}

/// The organization's configuration, or the 404 of an organization without SAML.
async fn configured(state: &AppState, organization_id: &str) -> Result<SamlConfig, ConsoleError> {
    if !plausible_organization(organization_id) {
        return Err(not_configured());
    }
    state
        .db()
        .console_saml(organization_id)
        .await?
        .ok_or_else(not_configured)
}

fn not_configured() -> ConsoleError {
    ConsoleError::Api(ApiError::not_found(
        ErrorCode::OrganizationNotFound,
        "SAML single sign-on is not configured for this organization",
    ))
}

fn internal(error: SamlError) -> ConsoleError {
    ConsoleError::Internal(format!("SAML: {error}"))
}

/// A refused sign-in: recorded in the organization's audit trail, and a 403 page saying why.
fn refused(state: &AppState, organization_id: &str, reason: &str) -> ConsoleError {
    let reason: String = reason.chars().take(300).collect();
    state.audit().record_event(
        AuditEvent::new(
            organization_id,
            "saml",
            action::CONSOLE_SIGN_IN_REFUSED,
            organization_id,
        )
        .detail(format!("saml: {reason}")),
    );
    ConsoleError::Forbidden(format!("Single sign-on refused: {reason}"))
}

fn with_cookie(mut response: Response, name: &str, value: &str, max_age: i64) -> Response {
    if let Ok(value) = session::set_cookie(name, value, max_age).parse() {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// `GET /console/sso/saml/{organization_id}/start`: an AuthnRequest with a fresh ID, kept
/// server-side for ten minutes and bound to this browser by a cookie; to the IdP.
pub(crate) async fn start(
    State(state): State<AppState>,
    Path(organization_id): Path<String>,
    headers: HeaderMap,
) -> Page {
    let config = configured(&state, &organization_id).await?;
    let urls = SpUrls::at(&base_url(&headers), &organization_id);
    let relay_state = session::new_secret()?;
    let browser = session::new_secret()?;
    let sp = service_provider(&urls).map_err(internal)?;
    let idp = idp_descriptor(&config).map_err(internal)?;
    let relay = RelayStateParam::try_from_option(Some(relay_state.as_str())).map_err(internal)?;
    let started = sp
        .start_sso(&idp, StartSso::redirect().relay_state(relay))
        .map_err(internal)?;
    let location = started
        .outbound
        .redirect_url()
        .map_err(internal)?
        .to_owned();
    let now = now();
    state
        .db()
        .insert_console_saml_request(
            &relay_state,
            started.pending.request_id().as_str(),
            &organization_id,
            &secrets::sha256_hex(browser.as_bytes()),
            now + REQUEST_TTL_SECS,
            now,
        )
        .await?;
    Ok(with_cookie(
        Redirect::to(&location).into_response(),
        BROWSER_COOKIE,
        &browser,
        REQUEST_TTL_SECS,
    ))
}

/// The ACS form (HTTP-POST binding).
#[derive(Deserialize)]
pub(crate) struct AcsForm {
    #[serde(rename = "SAMLResponse")]
    saml_response: String,
    #[serde(rename = "RelayState", default)]
    relay_state: Option<String>,
}

/// `POST /console/sso/saml/{organization_id}/acs`: verifies the IdP's Response (see
/// [`verify_response`]), spends the assertion ID, and sends the browser on to `finish`.
pub(crate) async fn acs(
    State(state): State<AppState>,
    Path(organization_id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<AcsForm>,
) -> Page {
    let config = configured(&state, &organization_id).await?;
    let refuse = |reason: &str| Err(refused(&state, &organization_id, reason));
    let Some(relay_state) = form.relay_state.filter(|r| !r.is_empty()) else {
        return refuse("the answer has no RelayState (an IdP-initiated sign-in is not accepted)");
    };
    let db = state.db();
    let Some(request) = db
        .console_saml_request(&organization_id, &relay_state)
        .await?
    else {
        return refuse("no sign-in of this organization is waiting for this answer");
    };
    if request.expires_at < now() {
        return refuse("the sign-in request expired; start again");
    }
    if request.identity.is_some() {
        return refuse("this sign-in was already answered (replay)");
    }
    let urls = SpUrls::at(&base_url(&headers), &organization_id);
    let verified = match verify_response(
        &config,
        &urls,
        &request.request_id,
        &relay_state,
        &form.saml_response,
        SystemTime::now(),
    ) {
        Ok(verified) => verified,
        Err(error) => return refuse(&error.to_string()),
    };
    let identity = serde_json::to_string(&verified.identity)
        .map_err(|e| ConsoleError::Internal(e.to_string()))?;
    if !db
        .answer_console_saml_request(
            &organization_id,
            &relay_state,
            &verified.assertion_id,
            verified.keep_until,
            &identity,
        )
        .await?
    {
        return refuse("this assertion was already used (replay)");
    }
    let next = format!(
        "/console/sso/saml/{organization_id}/finish?state={}",
        url::form_urlencoded::byte_serialize(relay_state.as_bytes()).collect::<String>()
    );
    let page = render("saml_continue.html", json!({ "next": next }))?;
    Ok((StatusCode::OK, page).into_response())
}

/// The finish link's query.
#[derive(Deserialize)]
pub(crate) struct FinishQuery {
    state: String,
}

/// `GET /console/sso/saml/{organization_id}/finish?state=…`: the browser that started the
/// sign-in (its cookie) collects the verified identity once and is signed in.
pub(crate) async fn finish(
    State(state): State<AppState>,
    Path(organization_id): Path<String>,
    headers: HeaderMap,
    Query(query): Query<FinishQuery>,
) -> Page {
    let config = configured(&state, &organization_id).await?;
    let refuse = |reason: &str| Err(refused(&state, &organization_id, reason));
    let db = state.db();
    let Some(request) = db
        .console_saml_request(&organization_id, &query.state)
        .await?
    else {
        return refuse("no sign-in in progress (it finished, expired or never started)");
    };
    let parts = parts_of(headers);
    let this_browser = session::cookie(&parts, BROWSER_COOKIE).is_some_and(|secret| {
        session::same_secret(
            &secrets::sha256_hex(secret.as_bytes()),
            &request.browser_hash,
        )
    });
    if !this_browser {
        return refuse("this sign-in was started in another browser");
    }
    let Some(identity) = request.identity else {
        return refuse("the identity provider has not answered this sign-in");
    };
    if !db
        .delete_console_saml_request(&organization_id, &query.state)
        .await?
    {
        return refuse("this sign-in was already finished");
    }
    if request.expires_at < now() {
        return refuse("the sign-in request expired; start again");
    }
    let identity: AssertedIdentity =
        serde_json::from_str(&identity).map_err(|e| ConsoleError::Internal(e.to_string()))?;
    let mapping = RoleMapping::parse(
        config.role_attribute.as_deref(),
        config.role_map.as_deref(),
        config.default_role.as_deref(),
    )
    .map_err(|e| ConsoleError::Internal(format!("stored SAML role mapping: {e}")))?;
    let federated = FederatedIdentity {
        organization_id: organization_id.clone(),
        protocol: "saml",
        issuer: identity.issuer,
        subject: identity.subject,
        user_name: identity.user_name,
        groups: identity.groups,
    };
    match sign_in_federated(&state, federated, &mapping).await? {
        FederatedSignIn::Started(secret) => {
            Ok(with_cookie(signed_in(&secret), BROWSER_COOKIE, "", 0))
        }
        FederatedSignIn::Refused(reason) => Err(ConsoleError::Forbidden(format!(
            "Single sign-on refused: {reason}"
        ))),
    }
}

/// `GET /console/sso/saml/{organization_id}/metadata`: the SP's metadata (its entity id is
/// this URL) for the IdP's administrator.
pub(crate) async fn metadata(
    State(state): State<AppState>,
    Path(organization_id): Path<String>,
    headers: HeaderMap,
) -> Page {
    let known = plausible_organization(&organization_id)
        && !state
            .db()
            .list_organizations(Some(&organization_id))
            .await?
            .is_empty();
    if !known {
        return Err(not_configured());
    }
    let urls = SpUrls::at(&base_url(&headers), &organization_id);
    let sp = service_provider(&urls).map_err(internal)?;
    Ok((
        [(header::CONTENT_TYPE, "application/samlmetadata+xml")],
        sp.metadata_xml().to_owned(),
    )
        .into_response())
}

// ---- settings ----------------------------------------------------------------------------

async fn settings_page(
    state: &AppState,
    session: &Session,
    headers: &HeaderMap,
    status: StatusCode,
    extra: Value,
) -> Page {
    let organization_id = &session.caller.organization_id;
    let stored = state.db().console_saml(organization_id).await?;
    let urls = SpUrls::at(&base_url(headers), organization_id);
    let config = stored.as_ref().map_or_else(
        || json!({}),
        |c| {
            json!({
                "idp_entity_id": c.idp_entity_id,
                "idp_sso_url": c.idp_sso_url,
                "idp_certificate": c.idp_certificate,
                "role_attribute": c.role_attribute,
                "role_map": c.role_map,
                "default_role": c.default_role,
            })
        },
    );
    let context = json!({
        "configured": stored.is_some(),
        "config": config,
        "roles": ROLES,
        "sp_entity_id": urls.entity_id,
        "sp_acs": urls.acs,
        "sp_metadata_path": format!("/console/sso/saml/{organization_id}/metadata"),
        "start_path": format!("/console/sso/saml/{organization_id}/start"),
    });
    let context = frame_with(session, "sso", context, extra);
    Ok((status, render("saml.html", context)?).into_response())
}

/// `GET /console/settings/sso/saml` (admins only).
pub(crate) async fn settings(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
) -> Page {
    session.caller.require(Action::Administer)?;
    settings_page(&state, &session, &headers, StatusCode::OK, json!({})).await
}

/// The settings form.
#[derive(Deserialize)]
pub(crate) struct SamlForm {
    csrf: String,
    #[serde(default)]
    idp_metadata: String,
    #[serde(default)]
    idp_entity_id: String,
    #[serde(default)]
    idp_sso_url: String,
    #[serde(default)]
    idp_certificate: String,
    #[serde(default)]
    role_attribute: String,
    #[serde(default)]
    role_map: String,
    #[serde(default)]
    default_role: String,
}

fn optional(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// The configuration the form describes, or what is wrong with it.
pub(crate) fn config_from_form(
    organization_id: &str,
    form: &SamlForm,
    now: i64,
) -> Result<SamlConfig, String> {
    let (mut entity_id, mut sso_url, mut certificate) = (
        form.idp_entity_id.trim().to_owned(),
        form.idp_sso_url.trim().to_owned(),
        form.idp_certificate.trim().to_owned(),
    );
    if !form.idp_metadata.trim().is_empty() {
        if form.idp_metadata.len() > MAX_METADATA_BYTES {
            return Err(format!(
                "The metadata is over {} KiB.",
                MAX_METADATA_BYTES / 1024
            ));
        }
        let metadata = IdpMetadata::from_xml(form.idp_metadata.trim())
            .map_err(|e| format!("The metadata does not parse: {e}"))?;
        entity_id = metadata
            .get_entity_id()
            .ok_or("The metadata names no entityID.")?
            .to_owned();
        sso_url = metadata
            .get_single_sign_on_service(Binding::Redirect)
            .ok_or("The metadata has no HTTP-Redirect SingleSignOnService.")?;
        certificate = metadata
            .get_x509_certificate(CertUse::Signing)
            .ok_or("The metadata has no signing certificate.")?;
    }
    if entity_id.is_empty() || entity_id.len() > 1024 || entity_id.chars().any(char::is_control) {
        return Err("The IdP entity id must be 1 to 1024 characters.".into());
    }
    let url = url::Url::parse(&sso_url)
        .map_err(|_| "The IdP single sign-on URL is not an absolute URL.".to_owned())?;
    if !matches!(url.scheme(), "http" | "https") || sso_url.len() > 2048 {
        return Err("The IdP single sign-on URL must be http(s), at most 2048 characters.".into());
    }
    let body = certificate_body(&certificate).ok_or(
        "The IdP signing certificate must be one PEM certificate (-----BEGIN CERTIFICATE-----).",
    )?;
    let certificate = certificate_pem(&body);
    saml_rs::crypto::keys::load_certificate(&certificate).map_err(|_| {
        "The IdP signing certificate is not an X.509 certificate with a usable key.".to_owned()
    })?;
    let config = SamlConfig {
        organization_id: organization_id.to_owned(),
        idp_entity_id: entity_id,
        idp_sso_url: sso_url,
        idp_certificate: certificate,
        role_attribute: optional(&form.role_attribute),
        role_map: optional(&form.role_map),
        default_role: optional(&form.default_role),
        updated_at: now,
    };
    RoleMapping::parse(
        config.role_attribute.as_deref(),
        config.role_map.as_deref(),
        config.default_role.as_deref(),
    )
    .map_err(|e| format!("The role mapping: {e}"))?;
    idp_descriptor(&config).map_err(|e| format!("The IdP configuration is not usable: {e}"))?;
    Ok(config)
}

/// `POST /console/settings/sso/saml` (admins only): stores the organization's IdP.
pub(crate) async fn save(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    Form(form): Form<SamlForm>,
) -> Page {
    session.caller.require(Action::Administer)?;
    session.check_csrf(&form.csrf)?;
    match config_from_form(&session.caller.organization_id, &form, now()) {
        Ok(config) => {
            state.db().put_console_saml(&config).await?;
            let extra = json!({ "notice": "SAML single sign-on is configured." });
            settings_page(&state, &session, &headers, StatusCode::OK, extra).await
        }
        Err(warning) => {
            let extra = json!({ "warning": warning });
            settings_page(
                &state,
                &session,
                &headers,
                StatusCode::UNPROCESSABLE_ENTITY,
                extra,
            )
            .await
        }
    }
}

/// `POST /console/settings/sso/saml/delete` (admins only): SAML sign-in off.
pub(crate) async fn delete(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    Form(form): Form<super::pages::CsrfForm>,
) -> Page {
    session.caller.require(Action::Administer)?;
    session.check_csrf(&form.csrf)?;
    state
        .db()
        .delete_console_saml(&session.caller.organization_id)
        .await?;
    let extra = json!({ "notice": "SAML single sign-on is removed." });
    settings_page(&state, &session, &headers, StatusCode::OK, extra).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn certificates_are_pem_or_base64_and_bounded() {
        assert_eq!(
            certificate_body(
                "-----BEGIN CERTIFICATE-----\nQUJD\nREVG\n-----END CERTIFICATE-----\n"
            )
            .unwrap(),
            "QUJDREVG"
        );
        assert_eq!(certificate_body(" QUJD REVG ").unwrap(), "QUJDREVG");
        assert!(certificate_body("-----BEGIN CERTIFICATE-----\nQUJD").is_none());
        assert!(certificate_body("<xml/>").is_none());
        assert!(certificate_body(&"A".repeat(MAX_CERTIFICATE_BYTES + 1)).is_none());
        assert!(
            certificate_pem(&"A".repeat(70)).contains(&format!("{}\nAAAAAA\n", "A".repeat(64)))
        );
    }

    #[test]
    fn only_plausible_organization_ids_and_escaped_metadata() {
        assert!(plausible_organization("org_1-a"));
        assert!(!plausible_organization("a/b"));
        assert!(!plausible_organization(""));
        assert_eq!(escape_xml(r#"a"<&>'"#), "a&quot;&lt;&amp;&gt;&apos;");
    }
}
