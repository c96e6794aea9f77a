//! Console single sign-on's pages: the sign-in page's "Single sign-on" form resolves the
//! organization (by the e-mail's domain, or by its id) and sends the browser to the start
//! route of the protocol the organization configured ([`configured_protocol`], the one place
//! that knows which protocols exist); and the admins' settings page of the organization's
//! OpenID Connect provider (`/console/settings/sso`).

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::db::console_sso::OidcConfigRow;
use super::super::extract::Action;
use super::super::{AppState, now};
use super::federation::RoleMapping;
use super::session::Session;
use super::{ConsoleError, oidc, render};

type Page = Result<Response, ConsoleError>;

/// The single sign-on protocols an organization may configure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// OpenID Connect (console/oidc.rs).
    Oidc,
    /// SAML 2.0 (console/saml.rs).
    Saml,
}

impl Protocol {
    /// Where a sign-in of `organization_id` through this protocol starts.
    pub(crate) fn start_path(self, organization_id: &str) -> String {
        match self {
            Protocol::Oidc => format!("/console/sso/oidc/{organization_id}/start"),
            Protocol::Saml => format!("/console/sso/saml/{organization_id}/start"),
        }
    }
}

/// The protocol `organization_id` signs in with, if any.
pub(crate) async fn configured_protocol(
    state: &AppState,
    organization_id: &str,
) -> Result<Option<Protocol>, ConsoleError> {
    if oidc::enabled_config(state, organization_id)
        .await?
        .is_some()
    {
        return Ok(Some(Protocol::Oidc));
    }
    if state.db().console_saml(organization_id).await?.is_some() {
        return Ok(Some(Protocol::Saml));
    }
    Ok(None)
}

#[derive(Deserialize)]
pub(crate) struct WhoQuery {
    #[serde(default)]
    who: String,
}

/// `GET /console/sso?who=…`: a work e-mail or an organization id, to its sign-in.
pub(crate) async fn dispatch(State(state): State<AppState>, Query(q): Query<WhoQuery>) -> Page {
    let who = q.who.trim();
    let db = state.db();
    let organization = if who.is_empty() || who.len() > 320 {
        None
    } else if let Some((_, domain)) = who.rsplit_once('@') {
        db.sso_organization_by_domain(&domain.to_lowercase())
            .await?
    } else if db.organization_exists(who).await? {
        Some(who.to_owned())
    } else {
        None
    };
    let protocol = match &organization {
        Some(org) => configured_protocol(&state, org).await?,
        None => None,
    };
    match (organization, protocol) {
        // A page that moves on, not a redirect: the sign-in form's submission may not be
        // redirected off the console's origin (the CSP's `form-action 'self'`), and the start
        // route redirects to the provider.
        (Some(org), Some(protocol)) => Ok(oidc::moving_on(
            &protocol.start_path(&org),
            "Continuing to your organization's sign-in.",
        )),
        _ => Ok(oidc::failure_page(
            StatusCode::NOT_FOUND,
            "no single sign-on is configured for that e-mail domain or organization",
        )),
    }
}

/// The settings form.
#[derive(Deserialize)]
pub(crate) struct OidcForm {
    csrf: String,
    #[serde(default)]
    issuer_url: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    client_secret: String,
    #[serde(default)]
    scopes: String,
    #[serde(default)]
    role_claim: String,
    #[serde(default)]
    role_map: String,
    #[serde(default)]
    default_role: String,
    #[serde(default)]
    email_domains: String,
    #[serde(default)]
    enabled: Option<String>,
}

async fn settings_page(
    state: &AppState,
    session: &Session,
    headers: &HeaderMap,
    status: StatusCode,
    extra: Value,
) -> Page {
    session.caller.require(Action::Administer)?;
    let org = &session.caller.organization_id;
    let db = state.db();
    let stored = db.oidc_config(org).await?;
    let domains = db.sso_domains(org).await?;
    let config = match &stored {
        // The secret is write-only: only whether one is set.
        Some(row) => json!({
            "issuer_url": row.issuer_url,
            "client_id": row.client_id,
            "secret_set": !row.client_secret.is_empty(),
            "scopes": row.scopes,
            "role_claim": row.role_claim,
            "role_map": row.role_map,
            "default_role": row.default_role,
            "enabled": row.enabled != 0,
            "updated_at": row.updated_at,
        }),
        None => json!({ "scopes": "openid email profile", "enabled": true }),
    };
    let base = oidc::base_url(headers);
    let context = json!({
        "configured": stored.is_some(),
        "config": config,
        "email_domains": domains.join(" "),
        "callback_url": oidc::callback_url(headers, org),
        "start_url": format!("{base}{}", super::sso::Protocol::Oidc.start_path(org)),
        "organization_id": org,
        "roles": ["admin", "license_manager", "it_staff", "auditor"],
        "saml_configured": db.console_saml(org).await?.is_some(),
    });
    let context = super::pages::frame_with(session, "sso", context, extra);
    Ok((status, render("sso_settings.html", context)?).into_response())
}

/// `GET /console/settings/sso` (admins).
pub(crate) async fn settings(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
) -> Page {
    settings_page(&state, &session, &headers, StatusCode::OK, json!({})).await
}

/// The longest issuer URL, client id, secret, scope list.
const MAX_FIELD: usize = 2000;

/// A domain as the form may name it.
fn is_domain(d: &str) -> bool {
    d.len() <= 253
        && d.contains('.')
        && !d.starts_with(['.', '-'])
        && !d.ends_with(['.', '-'])
        && d.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

/// `POST /console/settings/sso` (admins): stores the OpenID Connect provider. A field out of
/// spec is refused with a warning naming it; a provider whose discovery document cannot be
/// fetched is stored with a warning.
pub(crate) async fn save_oidc(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    Form(form): Form<OidcForm>,
) -> Page {
    session.caller.require(Action::Administer)?;
    session.check_csrf(&form.csrf)?;
    let org = session.caller.organization_id.clone();
    let db = state.db();
    let refuse = |warning: String| {
        settings_page(
            &state,
            &session,
            &headers,
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({ "warning": warning }),
        )
    };
    let issuer_url = form.issuer_url.trim().trim_end_matches('/').to_owned();
    let issuer_ok = issuer_url.len() <= MAX_FIELD
        && url::Url::parse(&issuer_url).is_ok_and(|u| {
            matches!(u.scheme(), "https" | "http")
                && u.host().is_some()
                && u.query().is_none()
                && u.fragment().is_none()
        });
    if !issuer_ok {
        return refuse(
            "Issuer URL: an https:// URL (the provider's issuer, without a query).".into(),
        )
        .await;
    }
    let client_id = form.client_id.trim().to_owned();
    if client_id.is_empty() || client_id.len() > MAX_FIELD {
        return refuse("Client ID: required (as registered at the provider).".into()).await;
    }
    let stored = db.oidc_config(&org).await?;
    let client_secret = match form.client_secret.trim() {
        "" => match &stored {
            Some(row) => row.client_secret.clone(),
            None => {
                return refuse("Client secret: required the first time.".into()).await;
            }
        },
        secret if secret.len() > MAX_FIELD => {
            return refuse("Client secret: at most 2000 characters.".into()).await;
        }
        secret => secret.to_owned(),
    };
    let mut scopes: Vec<&str> = form.scopes.split_whitespace().collect();
    if scopes.len() > 20
        || scopes.iter().any(|s| {
            s.len() > 100
                || !s
                    .chars()
                    .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\')
        })
    {
        return refuse("Scopes: at most 20 scope names, separated by spaces.".into()).await;
    }
    if !scopes.contains(&"openid") {
        scopes.insert(0, "openid");
    }
    scopes.dedup();
    let mapping = match RoleMapping::parse(
        Some(&form.role_claim),
        Some(&form.role_map),
        Some(&form.default_role),
    ) {
        Ok(mapping) => mapping,
        Err(problem) => {
            let mut chars = problem.chars();
            let first = chars.next().map(|c| c.to_uppercase().to_string());
            return refuse(format!("{}{}.", first.unwrap_or_default(), chars.as_str())).await;
        }
    };
    let mut domains: Vec<String> = form
        .email_domains
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|d| !d.is_empty())
        .map(|d| d.trim_start_matches('@').to_lowercase())
        .collect();
    domains.sort();
    domains.dedup();
    if domains.len() > 50 || domains.iter().any(|d| !is_domain(d)) {
        return refuse(
            "E-mail domains: domain names like example.com, separated by spaces.".into(),
        )
        .await;
    }
    if let Err(taken) = db.set_sso_domains(&org, &domains).await? {
        return refuse(format!(
            "E-mail domains: {taken} signs in to another organization."
        ))
        .await;
    }
    let row = OidcConfigRow {
        organization_id: org.clone(),
        issuer_url: issuer_url.clone(),
        client_id,
        client_secret,
        scopes: scopes.join(" "),
        role_claim: mapping.claim.clone(),
        role_map: mapping.map_json(),
        default_role: mapping.default_role.map(|r| r.as_str().to_owned()),
        enabled: i64::from(form.enabled.is_some()),
        updated_at: now(),
    };
    db.put_oidc_config(&row).await?;
    // Checked now rather than at the first sign-in.
    let extra = match oidc::discover(&issuer_url).await {
        Ok(_) => json!({ "notice": "Saved. The provider's discovery document was fetched." }),
        Err(e) => json!({
            "warning": format!("Saved, but the provider's discovery document could not be fetched: {e}")
        }),
    };
    settings_page(&state, &session, &headers, StatusCode::OK, extra).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_checked() {
        assert!(is_domain("example.com"));
        assert!(is_domain("a-b.example.co.uk"));
        assert!(!is_domain("localhost"));
        assert!(!is_domain("-x.com"));
        assert!(!is_domain("x.com."));
        assert!(!is_domain("ex ample.com"));
        assert!(!is_domain("exa\"mple.com"));
    }
}
