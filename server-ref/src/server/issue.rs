//! Turning stored state into signed tokens. The server only assembles claims from a policy and
//! a license's overrides; licensing-core validates them, signs them and evaluates them.

use std::collections::BTreeMap;

use licensing_core::claims::{
    Audience, BoundFingerprint, CheckIn, Customer, Feature, Licensing, MatchPolicy, NodeLock, Site,
    VersionRule,
};
pub(crate) use licensing_core::protocol::{HeldToken, HeldTokens, ResponseClaims};
use licensing_core::protocol::{MachineClaims, ServerStatus};
use licensing_core::{
    Error as CoreError, License, LicenseClaims, LicenseModel, MachineFingerprint, TokenKind,
};
use serde_json::{Map, Value};

use super::AppState;
use super::db::{LicenseRow, Machine, Policy};
use super::error::ApiError;
use super::secrets;
use licensing_core::protocol::ErrorCode;

/// Lifetime of a signed validation response.
pub(crate) const RESPONSE_TTL_SECS: i64 = 300;

/// Lifetime of an offline activation response: it is carried to the machine by hand.
pub(crate) const OFFLINE_RESPONSE_TTL_SECS: i64 = 30 * 86_400;

/// A license's claims template, as its row stores it (`claims`, JSON): the claims every token
/// of the license is signed from, plus the policy's check-in interval (server-private). At each
/// signing `iat` and `jti` are set, `lic.check_in.until` moves to the signing time plus the
/// interval, and a node-locked license's `lic.node_lock.fingerprints` binds its machines (empty
/// in the template).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct LicenseTemplate {
    /// The claims, without machines bound.
    #[serde(flatten)]
    pub claims: LicenseClaims,
    /// The policy's check-in interval, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_in_interval: Option<i64>,
}

impl LicenseTemplate {
    /// The template a license row stores.
    pub fn of(row: &LicenseRow) -> Result<Self, ApiError> {
        parse_json(&row.claims)
    }

    /// Whether the license is node-locked.
    pub fn is_node_locked(&self) -> bool {
        self.claims.lic.model == LicenseModel::NodeLocked
    }

    /// `lic.max_machines`.
    pub fn max_machines(&self) -> Option<i64> {
        self.claims.lic.max_machines.map(i64::from)
    }

    /// The claims a token signed at `now` carries, binding `machines` when node-locked.
    pub fn claims_at(
        &self,
        machines: &[MachineFingerprint],
        now: i64,
        jti: Option<String>,
    ) -> LicenseClaims {
        let mut claims = self.claims.clone();
        claims.iat = now;
        claims.jti = jti;
        if let (Some(interval), Some(check_in)) =
            (self.check_in_interval, claims.lic.check_in.as_mut())
        {
            check_in.until = now.saturating_add(interval);
        }
        if let Some(lock) = claims.lic.node_lock.as_mut() {
            lock.fingerprints = machines.iter().map(bound).collect();
        }
        claims
    }

    /// The template's JSON, as the row stores it.
    pub fn to_json(&self) -> Result<String, ApiError> {
        serde_json::to_string(self).map_err(ApiError::internal)
    }
}

/// A new license (`POST /v1/licenses`): its policy and the overrides it carries over it.
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewLicense {
    /// The policy the license is created from.
    pub policy_id: String,
    /// Who the license is for.
    #[schema(value_type = Option<super::openapi::CustomerSchema>)]
    pub customer: Option<Customer>,
    /// `nbf`: not usable before (Unix seconds).
    pub starts_at: Option<i64>,
    /// `exp` (Unix seconds), instead of issue time + the policy's duration.
    pub expires_at: Option<i64>,
    /// Grace after `exp`, seconds.
    #[schema(minimum = 0, maximum = 9_223_372_036_854_775_807_u64)]
    pub grace_period: Option<u64>,
    /// Machines that may be activated.
    pub max_machines: Option<u32>,
    /// Floating seats.
    pub seats: Option<u32>,
    /// Features added to (or replacing) the policy's.
    #[schema(value_type = Option<BTreeMap<String, super::openapi::FeatureSchema>>)]
    pub features: Option<BTreeMap<String, Feature>>,
    /// Version rule instead of the policy's.
    #[schema(value_type = Option<super::openapi::VersionRuleSchema>)]
    pub version: Option<VersionRule>,
    /// Site restrictions instead of the policy's.
    #[schema(value_type = Option<super::openapi::SiteSchema>)]
    pub site: Option<Site>,
    /// Free-form vendor data carried in the token.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    /// `floating` or `named`, instead of the policy's.
    pub seat_mode: Option<super::seat_policy::SeatMode>,
    /// Whether assigning beyond the seat count is allowed (and flagged), instead of the
    /// policy's.
    pub allow_over_allocation: Option<bool>,
    /// Seconds without use after which an assigned seat is reclaimed (86400 to 94608000: a day to three years),
    /// instead of the policy's.
    #[schema(minimum = 86_400, maximum = 94_608_000)]
    pub reclaim_after: Option<u64>,
}

/// How a state or core failure at signing time is reported.
fn claims_error(context: &str, e: &CoreError) -> ApiError {
    ApiError::invalid(ErrorCode::InvalidLicense, format!("{context}: {e}"))
}

/// Checks the claims of a license being created (a license, or a policy's trial license) with
/// the core's rules for new claims ([`licensing_core::LicenseClaims::validate_new`]): 422
/// `invalid_field` naming the request field (`customer.name` for `lic.customer.name`).
pub(crate) fn check_new(license: &License) -> Result<(), ApiError> {
    license
        .claims()
        .validate_new_unbound()
        .map_err(|e| match e {
            CoreError::InvalidClaims { field, detail } => ApiError::invalid(
                ErrorCode::InvalidField,
                format!(
                    "`{}`: {detail}",
                    field.strip_prefix("lic.").unwrap_or(&field)
                ),
            ),
            other => claims_error("the license claims are invalid", &other),
        })
}

fn to_value<T: serde::Serialize>(value: &T) -> Result<Value, ApiError> {
    serde_json::to_value(value).map_err(ApiError::internal)
}

fn parse_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ApiError> {
    serde_json::from_str(text).map_err(ApiError::internal)
}

/// The model of a stored policy.
pub(crate) fn policy_model(policy: &Policy) -> Result<LicenseModel, ApiError> {
    LicenseModel::from_name(&policy.model).ok_or_else(|| {
        ApiError::internal(format!("policy {} has model {}", policy.id, policy.model))
    })
}

/// The claims template of a license: the policy with the overrides applied. `iat` and `jti`
/// are set at each signing; a node-locked template has `node_lock.fingerprints` empty until
/// machines are activated.
pub(crate) fn build_claims(
    state: &AppState,
    policy: &Policy,
    overrides: &NewLicense,
    license_id: &str,
    now: i64,
) -> Result<LicenseTemplate, ApiError> {
    let model = policy_model(policy)?;
    let count = |field: &str, n: Option<i64>| {
        n.map(u32::try_from)
            .transpose()
            .map_err(|_| claims_error("the license claims are invalid", &out_of_range(field)))
    };
    let mut features: BTreeMap<String, Feature> = parse_json(&policy.features)?;
    for (name, feature) in overrides.features.iter().flatten() {
        features.insert(name.clone(), feature.clone());
    }
    let version = match &overrides.version {
        Some(rule) => Some(rule.clone()),
        None => policy.version_rule.as_deref().map(parse_json).transpose()?,
    };
    let node_lock = if model == LicenseModel::NodeLocked {
        Some(NodeLock {
            fingerprints: Vec::new(),
            match_policy: policy
                .match_policy
                .as_deref()
                .map(parse_json::<MatchPolicy>)
                .transpose()?,
            allow_virtual: policy.allow_virtual != 0,
        })
    } else {
        None
    };
    let site = match &overrides.site {
        Some(site) => Some(site.clone()),
        None => policy.site.as_deref().map(parse_json).transpose()?,
    };
    let check_in = policy
        .check_in_interval
        .map(|interval| {
            // `until` is recomputed at every signing (see `LicenseTemplate::claims_at`).
            let grace = u64::try_from(policy.check_in_grace.unwrap_or(0)).map_err(|_| {
                claims_error(
                    "the license claims are invalid",
                    &out_of_range("lic.check_in.grace"),
                )
            })?;
            Ok::<_, ApiError>(CheckIn {
                until: now.saturating_add(interval),
                grace,
            })
        })
        .transpose()?;
    let lic = Licensing {
        model,
        customer: overrides.customer.clone(),
        seats: count("lic.seats", overrides.seats.map(i64::from).or(policy.seats))?,
        max_machines: count(
            "lic.max_machines",
            overrides
                .max_machines
                .map(i64::from)
                .or(policy.max_machines),
        )?,
        grace_period: overrides
            .grace_period
            .or(policy.grace_period.and_then(|g| u64::try_from(g).ok())),
        features,
        version,
        node_lock,
        site,
        metadata: overrides.metadata.clone(),
        check_in,
    };
    let exp = match (overrides.expires_at, policy.duration) {
        (Some(exp), _) => Some(exp),
        // An out-of-range sum is left for the core to refuse, naming `exp`.
        (None, Some(duration)) => Some(now.saturating_add(duration)),
        (None, None) => None,
    };
    Ok(LicenseTemplate {
        claims: LicenseClaims {
            iss: state.issuer().to_owned(),
            sub: license_id.to_owned(),
            aud: Audience::One(policy.product_id.clone()),
            iat: now,
            nbf: overrides.starts_at,
            exp,
            jti: None,
            lic,
        },
        check_in_interval: policy.check_in_interval,
    })
}

/// A claim out of its type's range, named.
fn out_of_range(field: &str) -> CoreError {
    CoreError::InvalidClaims {
        field: field.to_owned(),
        detail: "out of range".to_owned(),
    }
}

/// Checks a template that signs no token yet (a node-locked license before its first
/// activation, a policy's trial license): the claims' rules as for a token signed now
/// (422 `invalid_license` naming the claim), then the rules of new claims ([`check_new`]).
pub(crate) fn check_template(template: &LicenseTemplate, now: i64) -> Result<License, ApiError> {
    let license = licensing_core::trusted_template(template.claims_at(&[], now, None))
        .map_err(|e| claims_error("the license claims are invalid", &e))?;
    check_new(&license)?;
    Ok(license)
}

/// Signs a license token from `template` (fresh `iat` and `jti`), binding `machines` when the
/// license is node-locked, and returns it with the verified [`License`]. The core validates the
/// claims; its error names the field.
pub(crate) fn sign_license(
    state: &AppState,
    template: &LicenseTemplate,
    machines: &[MachineFingerprint],
    now: i64,
) -> Result<(String, License), ApiError> {
    let jti = secrets::new_id("jti").map_err(ApiError::internal)?;
    let claims = template.claims_at(machines, now, Some(jti));
    // The core validates the claims (its error names the field) and, having just signed them,
    // hands back the License without re-verifying our own signature.
    licensing_core::issue_license_checked(claims, &state.key())
        .map_err(|e| claims_error("the license claims are invalid", &e))
}

/// Signs the license token a license stores, given its machines: bound to them when the
/// license is node-locked (`None` while it has none), unbound otherwise. Always with the
/// current key, whatever the client of the request trusts.
pub(crate) fn sign_license_for(
    state: &AppState,
    template: &LicenseTemplate,
    machines: &[Machine],
    now: i64,
) -> Result<Option<String>, ApiError> {
    super::with_current_key(|| sign_stored_license(state, template, machines, now))
}

fn sign_stored_license(
    state: &AppState,
    template: &LicenseTemplate,
    machines: &[Machine],
    now: i64,
) -> Result<Option<String>, ApiError> {
    if !template.is_node_locked() {
        return Ok(Some(sign_license(state, template, &[], now)?.0));
    }
    if machines.is_empty() {
        // Validate the template all the same: the token is signed when a machine is bound.
        licensing_core::trusted_template(template.claims_at(&[], now, None))
            .map_err(|e| claims_error("the license claims are invalid", &e))?;
        return Ok(None);
    }
    let fingerprints = machines
        .iter()
        .map(machine_fingerprint)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(sign_license(state, template, &fingerprints, now)?.0))
}

/// The license's status as clients see it: `revoked` and `suspended` as stored; otherwise the
/// core's time rule at `now` decides `expired` or `not_yet_valid`, else `active`
/// ([`License::server_status_at`]).
pub(crate) fn effective_status(row: &LicenseRow, now: i64) -> Result<ServerStatus, ApiError> {
    match row.status.as_str() {
        "revoked" => return Ok(ServerStatus::Revoked),
        "suspended" => return Ok(ServerStatus::Suspended),
        _ => {}
    }
    Ok(parsed_template(row)?.license.server_status_at(now))
}

/// What a license in `status` may not do now: `action` names it in the detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    /// Bind a machine (activation, transfer, offline activation). A license that is not valid
    /// yet may: its token carries `nbf`, so the machine runs it from its start, offline.
    Bind,
    /// Run now (a floating seat's check-out or heartbeat): only an active license may.
    Run,
}

/// The one status → refusal table: 403 with the status's code ([`ServerStatus::refusal_code`])
/// when a license in `status` may not be put to `used` (see [`Use`]); `outcome` ends the
/// detail ("activation refused").
pub(crate) fn refuse_status(
    status: &ServerStatus,
    used: Use,
    outcome: &str,
) -> Result<(), ApiError> {
    let refused = match (status, used) {
        (ServerStatus::NotYetValid, Use::Bind) => false,
        (status, _) => status.is_refusal(),
    };
    let Some(code) = status.refusal_code().filter(|_| refused) else {
        return Ok(());
    };
    let what = match status {
        ServerStatus::NotYetValid => "not valid yet",
        other => other.as_str(),
    };
    Err(ApiError::forbidden(
        code,
        format!("the license is {what}; {outcome}"),
    ))
}

/// What client calls read from a license's claims template, parsed once per read of the row.
#[derive(Debug)]
pub(crate) struct Template {
    /// The license a token signed from the template would carry, built without any
    /// signature work (a node-locked template binds no machine). Its time rule, `aud` and
    /// `usable_until` are the signed token's.
    pub license: License,
    /// Whether the license is node-locked.
    pub node_locked: bool,
    /// The policy's check-in interval, seconds.
    pub check_in_interval: Option<i64>,
}

impl Template {
    /// The license's machine-match rule (`lic.node_lock.match`); `None`: machines are
    /// identified by their exact fingerprint id.
    pub fn match_policy(&self) -> Option<&MatchPolicy> {
        self.license
            .claims()
            .lic
            .node_lock
            .as_ref()
            .and_then(|lock| lock.match_policy.as_ref())
    }
}

/// Whether the license runs only on activated machines: node-locked, or with a machine limit
/// (`lic.max_machines`) unless its policy allows unmetered use. A validation of a machine that
/// is not activated then answers no license token, and says `activation_required` (the SDK's
/// verdict is `machine_not_activated`). Without a machine limit (a floating license metered by
/// its seats, a site license) any machine validates.
pub(crate) fn activation_required(row: &LicenseRow) -> Result<bool, ApiError> {
    let template = parsed_template(row)?;
    Ok(template.node_locked
        || (template.license.claims().lic.max_machines.is_some() && row.allow_unmetered == 0))
}

/// The slot of a [`LicenseRow`] holding its parsed [`Template`] (empty until first asked;
/// cloned rows share it).
pub(crate) type ParsedTemplate = std::sync::Arc<std::sync::OnceLock<Result<Template, String>>>;

/// The row's claims template, parsed on first use (a validation or heartbeat answered from the
/// license cache parses nothing).
pub(crate) fn parsed_template(row: &LicenseRow) -> Result<&Template, ApiError> {
    row.parsed
        .get_or_init(|| parse_template(row))
        .as_ref()
        .map_err(|e| ApiError::internal(format!("stored claims of {}: {e}", row.id)))
}

fn parse_template(row: &LicenseRow) -> Result<Template, String> {
    let template: LicenseTemplate = serde_json::from_str(&row.claims).map_err(|e| e.to_string())?;
    let node_locked = template.is_node_locked();
    let check_in_interval = template.check_in_interval;
    let license = licensing_core::trusted_template(template.claims).map_err(|e| e.to_string())?;
    Ok(Template {
        license,
        node_locked,
        check_in_interval,
    })
}

/// The fingerprint stored with a machine.
pub(crate) fn machine_fingerprint(machine: &Machine) -> Result<MachineFingerprint, ApiError> {
    parse_json(&machine.fingerprint_json)
}

/// A `machine+jwt`: this machine (fingerprint id and component hashes) is activated on this
/// license, until the license's last usable instant.
pub(crate) fn sign_machine_token(
    state: &AppState,
    machine: &Machine,
    license: &License,
    now: i64,
) -> Result<String, ApiError> {
    let fp = machine_fingerprint(machine)?;
    let claims = MachineClaims {
        iss: state.issuer().to_owned(),
        sub: machine.id.clone(),
        aud: license.claims().aud.clone(),
        iat: now,
        exp: license.usable_until(),
        jti: secrets::new_id("jti").map_err(ApiError::internal)?,
        license_id: license.id().to_owned(),
        fingerprint: bound(&fp),
    };
    // Through a JSON object, as every token the server signs: members in name order.
    let Value::Object(claims) = to_value(&claims)? else {
        return Err(ApiError::internal("machine claims are not an object"));
    };
    licensing_core::sign_token(TokenKind::Machine, &state.key(), &claims)
        .map_err(|e| ApiError::internal(format!("signing a machine token: {e}")))
}

/// A machine's fingerprint as a token binds it (its id and component hashes).
pub(crate) fn bound(fp: &MachineFingerprint) -> BoundFingerprint {
    BoundFingerprint {
        id: fp.id.clone(),
        components: fp.components.clone(),
    }
}

/// What the server knows about a license and one machine at `now`, before signing.
pub(crate) struct Answer<'a> {
    /// The license.
    pub row: &'a LicenseRow,
    /// Its status as clients see it.
    pub status: ServerStatus,
    /// The fingerprint id asked about.
    pub fingerprint: &'a str,
    /// The machine, when that fingerprint is activated on the license.
    pub machine: Option<&'a Machine>,
    /// The client's nonce, echoed.
    pub nonce: &'a str,
    /// Server time.
    pub now: i64,
    /// The tokens the client says it holds: those still current are not signed again.
    pub held: Option<&'a HeldTokens>,
}

/// A license token signed now from the license's template (binding its machines when
/// node-locked), with the verified license.
pub(crate) fn fresh_license_token(
    state: &AppState,
    row: &LicenseRow,
    machines: &[Machine],
    now: i64,
) -> Result<(String, License), ApiError> {
    let template = LicenseTemplate::of(row)?;
    let fingerprints = machines
        .iter()
        .map(machine_fingerprint)
        .collect::<Result<Vec<_>, _>>()?;
    sign_license(state, &template, &fingerprints, now)
}

/// Builds the response claims for `a`: when the license is active (and, node-locked, the
/// machine activated), a fresh license token and machine token, each unless the client holds
/// one that is still current ([`held_is_current`]). `machines` loads the license's machines
/// (node-locked tokens bind them), only when a license token is signed.
pub(crate) async fn response_claims<F, Fut>(
    state: &AppState,
    a: &Answer<'_>,
    machines: F,
    ttl: i64,
) -> Result<ResponseClaims, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<Machine>, ApiError>>,
{
    let template = parsed_template(a.row)?;
    let required = activation_required(a.row)?;
    let refresh = a.status == ServerStatus::Active && (a.machine.is_some() || !required);
    // An app that names no trusted kids is answered with the key its license token is signed
    // by, while that key still signs (an app built before a key promotion keeps working).
    if let Some(held) = a.held.and_then(|h| h.license.as_ref()) {
        super::note_held_kid(&held.kid);
    }
    let key = state.key();
    let kid = key.public_key().kid();
    let held = |which: fn(&HeldTokens) -> Option<&HeldToken>| a.held.and_then(which);
    let license_current = held_is_current(
        held(|h| h.license.as_ref()),
        &a.row.id,
        kid,
        a.row,
        a.now,
        template.check_in_interval,
    );
    let machine_current = a.machine.is_some_and(|m| {
        held_is_current(held(|h| h.machine.as_ref()), &m.id, kid, a.row, a.now, None)
    });
    let (mut license_token, mut machine_token) = (None, None);
    if refresh {
        let license = if license_current {
            None
        } else {
            let (token, license) = fresh_license_token(state, a.row, &machines().await?, a.now)?;
            license_token = Some(token);
            Some(license)
        };
        if let Some(machine) = a.machine.filter(|_| !machine_current) {
            let license = license.as_ref().unwrap_or(&template.license);
            machine_token = Some(sign_machine_token(state, machine, license, a.now)?);
        }
    }
    Ok(ResponseClaims {
        iss: state.issuer().to_owned(),
        sub: a.row.id.clone(),
        aud: Audience::One(a.row.product_id.clone()),
        iat: a.now,
        exp: a.now.saturating_add(ttl),
        jti: secrets::new_id("jti").map_err(ApiError::internal)?,
        nonce: a.nonce.to_owned(),
        server_time: a.now,
        license_id: a.row.id.clone(),
        status: a.status.clone(),
        fingerprint: a.fingerprint.to_owned(),
        machine_activated: a.machine.is_some(),
        activation_required: required,
        machine_id: a.machine.map(|m| m.id.clone()),
        license_token,
        machine_token,
        offline: None,
        deactivation_key: None,
    })
}

/// Tokens issued within this many seconds after the license's last change are signed again
/// when presented: another replica may have signed them from a license row up to the license
/// cache's lifetime old, or with a clock a little ahead.
pub(crate) const REFRESH_MARGIN_SECS: i64 = 30;

/// Whether a token the client holds (signature already checked by the client) is what the
/// server would sign now, so signing it again would change nothing but `iat` and `jti`: it
/// names the same license or machine (`sub`), is signed by the current key, was issued after
/// the license's last change (by [`REFRESH_MARGIN_SECS`]) and not in the future, and, with a
/// check-in interval, less than half of it ago (so `lic.check_in.until` always stays at
/// least half an interval ahead of a client that validates).
pub(crate) fn held_is_current(
    held: Option<&HeldToken>,
    sub: &str,
    kid: &str,
    row: &LicenseRow,
    now: i64,
    check_in_interval: Option<i64>,
) -> bool {
    let Some(held) = held else {
        return false;
    };
    held.sub == sub
        && held.kid == kid
        && held.iat > row.updated_at.saturating_add(REFRESH_MARGIN_SECS)
        && held.iat <= now
        && check_in_interval.is_none_or(|interval| now.saturating_sub(held.iat) < interval / 2)
}

/// Signs response claims as a `response+jwt`.
pub(crate) fn sign_response(state: &AppState, claims: &ResponseClaims) -> Result<String, ApiError> {
    licensing_core::sign_claims(TokenKind::Response, &state.key(), claims)
        .map_err(|e| ApiError::internal(format!("signing a response: {e}")))
}
