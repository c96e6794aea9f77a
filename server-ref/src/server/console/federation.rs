//! Single sign-on's shared part: an identity an organization's identity provider asserted
//! (verified by the protocol module, OpenID Connect or SAML) becomes a console session. The
//! identity is linked to a console account by (organization, issuer, subject); the first
//! sign-in creates the account just in time, without a password (password sign-in stays
//! impossible for it), with the role mapped from the provider's claim or the default role.
//! An account is never found by its user name: an account of another organization (or a
//! local one) with the same name is never reused, the new account's name is made unique.

use std::collections::BTreeMap;

use super::super::audit::{AuditEvent, action};
use super::super::db::console_sso::NewIdentity;
use super::super::extract::Role;
use super::super::{AppState, now, secrets};
use super::ConsoleError;
use super::session;

/// An identity an organization's identity provider asserted, already verified by the protocol
/// module (OIDC ID token or SAML assertion).
pub(crate) struct FederatedIdentity {
    /// The organization whose provider asserted it.
    pub(crate) organization_id: String,
    /// `"oidc"` or `"saml"`.
    pub(crate) protocol: &'static str,
    /// OIDC `iss` / SAML IdP entity id.
    pub(crate) issuer: String,
    /// OIDC `sub` / SAML NameID.
    pub(crate) subject: String,
    /// E-mail or preferred_username / NameID e-mail: the new account's user name.
    pub(crate) user_name: Option<String>,
    /// The values of the configured role claim/attribute.
    pub(crate) groups: Vec<String>,
}

/// How an organization maps its IdP's claim values to console roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RoleMapping {
    /// The claim (attribute) whose values map to roles; `None`: roles are set locally.
    pub(crate) claim: Option<String>,
    /// Claim value -> role.
    pub(crate) map: BTreeMap<String, Role>,
    /// For a first sign-in with no mapped value (and, with a claim, every sign-in).
    pub(crate) default_role: Option<Role>,
}

/// The roles a console account may have, most privileged first.
const CONSOLE_ROLES: [Role; 4] = [
    Role::Admin,
    Role::LicenseManager,
    Role::ItStaff,
    Role::Auditor,
];

/// A console role from its stored name (`scim` is not one).
fn console_role(name: &str) -> Option<Role> {
    Role::parse(name.trim()).filter(|r| CONSOLE_ROLES.contains(r))
}

impl RoleMapping {
    /// Parses the stored (or submitted) mapping: `claim` (blank: none), `map_json` a JSON
    /// object of claim value to role name, `default_role` a role name (blank: none). The error
    /// names the field for a form.
    pub(crate) fn parse(
        claim: Option<&str>,
        map_json: Option<&str>,
        default_role: Option<&str>,
    ) -> Result<Self, String> {
        let claim = claim
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned);
        if claim.as_ref().is_some_and(|c| c.chars().count() > 100) {
            return Err("role claim: at most 100 characters".into());
        }
        let mut map = BTreeMap::new();
        if let Some(json) = map_json.map(str::trim).filter(|j| !j.is_empty()) {
            if json.len() > 10_000 {
                return Err("role map: at most 10000 bytes".into());
            }
            let object: BTreeMap<String, String> = serde_json::from_str(json).map_err(|_| {
                "role map: a JSON object of claim value to role, like {\"licensing-admins\": \"admin\"}"
                    .to_owned()
            })?;
            for (value, role) in object {
                let Some(role) = console_role(&role) else {
                    return Err(format!(
                        "role map: `{role}` is not a role (admin, license_manager, it_staff, auditor)"
                    ));
                };
                map.insert(value, role);
            }
        }
        let default_role = match default_role.map(str::trim).filter(|r| !r.is_empty()) {
            None => None,
            Some(name) => Some(console_role(name).ok_or_else(|| {
                format!(
                    "default role: `{name}` is not a role (admin, license_manager, it_staff, auditor)"
                )
            })?),
        };
        if claim.is_none() && !map.is_empty() {
            return Err("role map: name the role claim the map applies to".into());
        }
        Ok(RoleMapping {
            claim,
            map,
            default_role,
        })
    }

    /// The most privileged role any of `values` maps to.
    pub(crate) fn role_for(&self, values: &[String]) -> Option<Role> {
        let mapped: Vec<Role> = values
            .iter()
            .filter_map(|v| self.map.get(v).copied())
            .collect();
        CONSOLE_ROLES.into_iter().find(|r| mapped.contains(r))
    }

    /// The map as stored (a JSON object; `None` when empty).
    pub(crate) fn map_json(&self) -> Option<String> {
        (!self.map.is_empty()).then(|| {
            let object: BTreeMap<&str, &str> = self
                .map
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            serde_json::to_string(&object).unwrap_or_default()
        })
    }
}

/// The outcome of a federated sign-in.
pub(crate) enum FederatedSignIn {
    /// Signed in: the session cookie's secret.
    Started(String),
    /// Refused: why (recorded in the audit trail, shown on the error page).
    Refused(&'static str),
}

/// The longest user name an account gets from a provider.
const MAX_USER_NAME_CHARS: usize = 200;

/// The user name a new account gets: the asserted one, else one from the subject.
fn base_user_name(identity: &FederatedIdentity) -> String {
    let name = identity
        .user_name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty() && !n.chars().any(char::is_control))
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{}-{}", identity.protocol, identity.subject));
    name.chars()
        .filter(|c| !c.is_control())
        .take(MAX_USER_NAME_CHARS - 12)
        .collect()
}

/// Signs `identity` in: links or creates its account, maps its role, starts a session, and
/// records the sign-in (or the refusal) in the audit trail.
pub(crate) async fn sign_in_federated(
    state: &AppState,
    identity: FederatedIdentity,
    mapping: &RoleMapping,
) -> Result<FederatedSignIn, ConsoleError> {
    let db = state.db();
    let now = now();
    let org = identity.organization_id.as_str();
    let record = |action, account: &str, detail: String| {
        state.audit().record_event(
            AuditEvent::new(
                org,
                if account.is_empty() {
                    format!("{}:{}", identity.protocol, identity.subject)
                } else {
                    account.to_owned()
                },
                action,
                account,
            )
            .detail(detail),
        );
    };
    let mapped = mapping
        .claim
        .is_some()
        .then(|| mapping.role_for(&identity.groups))
        .flatten();
    let existing = db
        .federated_account(org, &identity.issuer, &identity.subject)
        .await?;
    let account_id = match existing {
        Some(account) => {
            let role = if mapping.claim.is_some() {
                match mapped.or(mapping.default_role) {
                    Some(role) => Some(role),
                    None => {
                        record(
                            action::CONSOLE_SIGN_IN_REFUSED,
                            &account.account_id,
                            format!("{}: no role", identity.protocol),
                        );
                        return Ok(FederatedSignIn::Refused("no role"));
                    }
                }
            } else {
                None
            };
            db.federated_sign_in(
                org,
                &identity.issuer,
                &identity.subject,
                &account.account_id,
                role.map(Role::as_str),
                now,
            )
            .await?;
            account.account_id
        }
        None => {
            let Some(role) = mapped.or(mapping.default_role) else {
                record(
                    action::CONSOLE_SIGN_IN_REFUSED,
                    "",
                    format!("{}: no role", identity.protocol),
                );
                return Ok(FederatedSignIn::Refused("no role"));
            };
            let base = base_user_name(&identity);
            let mut created = None;
            for attempt in 0..12u32 {
                let user_name = match attempt {
                    0 => base.clone(),
                    1..=9 => format!("{base} ({})", attempt + 1),
                    _ => {
                        let suffix = session::new_secret()?;
                        format!("{base} ({})", &suffix[..8.min(suffix.len())])
                    }
                };
                let id = secrets::new_id("acc").map_err(ConsoleError::Internal)?;
                match db
                    .insert_federated_account(
                        &id,
                        org,
                        &user_name,
                        role.as_str(),
                        &identity.issuer,
                        &identity.subject,
                        identity.protocol,
                        now,
                    )
                    .await?
                {
                    NewIdentity::Created => {
                        created = Some(id);
                        break;
                    }
                    NewIdentity::NameTaken => continue,
                    NewIdentity::AlreadyLinked => {
                        // A concurrent first sign-in won: sign in as its account.
                        created = db
                            .federated_account(org, &identity.issuer, &identity.subject)
                            .await?
                            .map(|a| a.account_id);
                        break;
                    }
                }
            }
            let Some(id) = created else {
                return Err(ConsoleError::Internal(
                    "no free user name for a federated account".into(),
                ));
            };
            tracing::info!(account = %id, protocol = identity.protocol, "console account created at its first single sign-on");
            id
        }
    };
    let secret = session::start_session(state, &account_id).await?;
    record(
        action::CONSOLE_SIGNED_IN,
        &account_id,
        identity.protocol.to_owned(),
    );
    Ok(FederatedSignIn::Started(secret))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_mapping_parses_and_picks_the_most_privileged_role() {
        let m = RoleMapping::parse(
            Some("groups"),
            Some(r#"{"readers": "auditor", "admins": "admin", "it": "it_staff"}"#),
            Some("auditor"),
        )
        .unwrap();
        assert_eq!(m.claim.as_deref(), Some("groups"));
        let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(m.role_for(&v(&["readers", "admins"])), Some(Role::Admin));
        assert_eq!(m.role_for(&v(&["it", "readers"])), Some(Role::ItStaff));
        assert_eq!(m.role_for(&v(&["other"])), None);
        assert_eq!(m.role_for(&[]), None);
        assert_eq!(m.default_role, Some(Role::Auditor));
        // Round trip through the stored JSON.
        let again = RoleMapping::parse(Some("groups"), m.map_json().as_deref(), Some("auditor"));
        assert_eq!(again.unwrap(), m);
        // Blank fields: roles set locally, no default.
        let local = RoleMapping::parse(Some(" "), Some(""), None).unwrap();
        assert_eq!(local.claim, None);
        assert_eq!(local.map_json(), None);
    }

    #[test]
    fn a_bad_mapping_names_its_field() {
        let scim = RoleMapping::parse(Some("groups"), Some(r#"{"x": "scim"}"#), None);
        assert!(scim.unwrap_err().starts_with("role map:"));
        let not_json = RoleMapping::parse(Some("groups"), Some("[1]"), None);
        assert!(not_json.unwrap_err().starts_with("role map:"));
        let default = RoleMapping::parse(None, None, Some("root"));
        assert!(default.unwrap_err().starts_with("default role:"));
        let no_claim = RoleMapping::parse(None, Some(r#"{"x": "admin"}"#), None);
        assert!(no_claim.unwrap_err().starts_with("role map:"));
    }
}
