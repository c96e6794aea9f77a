//! The server's answers, verified: no I/O here, so every rule is unit-tested with signed tokens.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::OnlineError;
use crate::Error;
use crate::evaluate::Verifier;
use crate::fingerprint::MachineFingerprint;
use crate::jws::{TokenKind, verify_token};

/// `kind` of an air-gapped activation request file.
pub const OFFLINE_REQUEST_KIND: &str = "licensing.offline_activation_request";
/// `kind` of an air-gapped activation response file.
pub const OFFLINE_RESPONSE_KIND: &str = "licensing.offline_activation_response";

/// A license's status as the server reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerStatus {
    /// In force.
    Active,
    /// Suspended by the vendor (may be reinstated).
    Suspended,
    /// Revoked for good.
    Revoked,
    /// Expired (grace included).
    Expired,
    /// Not valid yet.
    NotYetValid,
    /// A status this client does not know (a newer server); treated as not active.
    Other(String),
}

impl ServerStatus {
    fn parse(text: &str) -> Self {
        match text {
            "active" => ServerStatus::Active,
            "suspended" => ServerStatus::Suspended,
            "revoked" => ServerStatus::Revoked,
            "expired" => ServerStatus::Expired,
            "not_yet_valid" => ServerStatus::NotYetValid,
            other => ServerStatus::Other(other.chars().take(64).collect()),
        }
    }

    /// The server's name for it.
    pub fn as_str(&self) -> &str {
        match self {
            ServerStatus::Active => "active",
            ServerStatus::Suspended => "suspended",
            ServerStatus::Revoked => "revoked",
            ServerStatus::Expired => "expired",
            ServerStatus::NotYetValid => "not_yet_valid",
            ServerStatus::Other(text) => text,
        }
    }
}

/// A verified validation answer (online, or an imported air-gapped activation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validation {
    /// The license's status on the server.
    pub status: ServerStatus,
    /// The server's clock when it answered (signed, and fresh: it echoes this request's nonce).
    pub server_time: i64,
    /// When the response stops being acceptable (`exp`).
    pub expires_at: i64,
    /// The license id.
    pub license_id: String,
    /// Whether this machine's fingerprint is activated on the license.
    pub machine_activated: bool,
    /// Whether the license runs only on activated machines (it has a machine limit or is
    /// node-locked, and its policy does not allow unmetered use). With `machine_activated`
    /// false this answer refuses the machine: [`Validation::refuses_machine`]. `false` from a
    /// server that does not say.
    pub activation_required: bool,
    /// The activation's id, when activated.
    pub machine_id: Option<String>,
    /// The current license token, verified for this product; absent when the license is not
    /// active, or when the license token the app named as held is still current.
    pub license_token: Option<String>,
    /// A machine token for this fingerprint, verified, when the server sent one (not when
    /// the machine token the app named as held is still current).
    pub machine_token: Option<String>,
    /// Whether this answers an air-gapped request.
    pub offline: bool,
    /// The signed response itself (kept by the store as evidence of the last server answer).
    pub response_token: String,
    /// The machine's deactivation key (base64url), in an air-gapped activation response: what
    /// an offline deactivation receipt is MAC'd with ([`crate::deactivation`]).
    pub deactivation_key: Option<String>,
}

impl Validation {
    /// Whether the server refuses this machine: the license runs only on activated machines
    /// and this one is not activated (never was, was deactivated, or an administrator removed
    /// it). The app's verdict is then [`crate::Status::MachineNotActivated`].
    pub fn refuses_machine(&self) -> bool {
        self.activation_required && !self.machine_activated
    }
}

/// A verified activation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activation {
    /// The activation's id.
    pub machine_id: String,
    /// The license id.
    pub license_id: String,
    /// The `machine+jwt` binding the license to this fingerprint, verified.
    pub machine_token: String,
    /// The license token, verified for this product (absent only if the server has none).
    pub license_token: Option<String>,
    /// Whether this call created the activation (`false`: it existed already).
    pub created: bool,
    /// The machine's deactivation key (base64url), what an offline deactivation receipt is
    /// MAC'd with ([`crate::deactivation`]); absent from servers that predate it.
    pub deactivation_key: Option<String>,
}

/// The answer to a deactivation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deactivation {
    /// Whether an activation was removed (`false`: there was none for this machine).
    pub deactivated: bool,
    /// The removed activation's id.
    pub machine_id: Option<String>,
}

/// An air-gapped activation request: what the vendor needs, and the nonce its answer echoes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfflineRequest {
    /// Always [`OFFLINE_REQUEST_KIND`].
    pub kind: String,
    /// Format version, 1.
    pub version: u32,
    /// The license key.
    pub license_key: String,
    /// This machine's fingerprint.
    pub fingerprint: MachineFingerprint,
    /// Random; the response must echo it.
    pub nonce: String,
    /// When the request was made (seconds since the epoch).
    pub created_at: i64,
}

impl OfflineRequest {
    pub(super) fn new(
        license_key: &str,
        fingerprint: &MachineFingerprint,
        nonce: String,
        now: i64,
    ) -> Result<Self, OnlineError> {
        if license_key.trim().is_empty() {
            return Err(OnlineError::Config("the license key is empty".into()));
        }
        Ok(OfflineRequest {
            kind: OFFLINE_REQUEST_KIND.into(),
            version: 1,
            license_key: license_key.trim().into(),
            fingerprint: fingerprint.clone(),
            nonce,
            created_at: now,
        })
    }

    /// The request file's content.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Reads a request file (strict: no duplicate or unknown members).
    pub fn from_json(text: &str) -> Result<Self, OnlineError> {
        crate::strict_json::check_object(text.as_bytes()).map_err(OnlineError::BadResponse)?;
        let request: OfflineRequest = serde_json::from_str(text)
            .map_err(|e| OnlineError::BadResponse(format!("offline request: {e}")))?;
        if request.kind != OFFLINE_REQUEST_KIND || request.version != 1 {
            return Err(OnlineError::BadResponse(format!(
                "not an offline activation request (kind `{}`, version {})",
                request.kind, request.version
            )));
        }
        Ok(request)
    }
}

pub(super) fn string_field(body: &Value, name: &str) -> Result<String, OnlineError> {
    body.get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| OnlineError::BadResponse(format!("`{name}` is missing or not a string")))
}

fn optional_string(claims: &Map<String, Value>, name: &str) -> Result<Option<String>, OnlineError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(OnlineError::BadResponse(format!(
            "`{name}` is not a string"
        ))),
    }
}

fn claim_str<'a>(claims: &'a Map<String, Value>, name: &str) -> Result<&'a str, OnlineError> {
    claims.get(name).and_then(Value::as_str).ok_or_else(|| {
        OnlineError::BadResponse(format!("claim `{name}` is missing or not a string"))
    })
}

fn claim_i64(claims: &Map<String, Value>, name: &str) -> Result<i64, OnlineError> {
    claims.get(name).and_then(Value::as_i64).ok_or_else(|| {
        OnlineError::BadResponse(format!("claim `{name}` is missing or not an integer"))
    })
}

/// `aud` (a string or an array of strings) names `product`.
fn check_audience(claims: &Map<String, Value>, product: &str) -> Result<(), OnlineError> {
    let found: Vec<String> = match claims.get("aud") {
        Some(Value::String(aud)) => vec![aud.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    if found.iter().any(|a| a == product) {
        Ok(())
    } else {
        Err(OnlineError::Token(Error::ProductMismatch {
            expected: product.to_owned(),
            found,
        }))
    }
}

fn product(verifier: &Verifier) -> &str {
    verifier.product_id().unwrap_or_default()
}

/// A `machine+jwt` for this product, this fingerprint and this license.
fn verify_machine_token(
    verifier: &Verifier,
    token: &str,
    fingerprint_id: &str,
    license_id: &str,
) -> Result<crate::jws::VerifiedToken, OnlineError> {
    let machine = verify_token(token, TokenKind::Machine, verifier.trust_store())
        .map_err(OnlineError::Token)?;
    check_audience(&machine.claims, product(verifier))?;
    let bound = machine
        .claims
        .get("fingerprint")
        .and_then(|f| f.get("id"))
        .and_then(Value::as_str);
    if bound != Some(fingerprint_id) {
        return Err(OnlineError::Mismatch(
            "the machine token is for another machine".into(),
        ));
    }
    if claim_str(&machine.claims, "license_id")? != license_id {
        return Err(OnlineError::Mismatch(
            "the machine token is for another license".into(),
        ));
    }
    Ok(machine)
}

/// A token the app holds, named to the server by its signed `sub`, `kid` and `iat`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeldToken {
    /// The license id (license token) or the machine id (machine token).
    pub sub: String,
    /// The key that signed it.
    pub kid: String,
    /// When it was signed.
    pub iat: i64,
}

/// The license and machine tokens an app holds, sent with a validation so the server signs
/// again only those that are due ([`super::Client::validate_holding`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HeldTokens {
    /// The stored license token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license: Option<HeldToken>,
    /// The stored machine token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine: Option<HeldToken>,
}

impl HeldTokens {
    /// Names the stored tokens that verify: the license token for this product, and the
    /// machine token for this fingerprint and that license. A token that does not verify (or
    /// a machine token without a license token) is left out, so the server sends a new one:
    /// a damaged store heals at the next validation.
    pub fn from_verified(
        verifier: &Verifier,
        license_token: Option<&str>,
        machine_token: Option<&str>,
        fingerprint_id: &str,
    ) -> Self {
        let Some(license) = license_token.and_then(|token| verifier.verify(token).ok()) else {
            return Self::default();
        };
        let machine = machine_token
            .and_then(|token| {
                verify_machine_token(verifier, token, fingerprint_id, license.id()).ok()
            })
            .and_then(|machine| {
                Some(HeldToken {
                    sub: machine.claims.get("sub")?.as_str()?.to_owned(),
                    iat: machine.claims.get("iat")?.as_i64()?,
                    kid: machine.kid,
                })
            });
        Self {
            license: Some(HeldToken {
                sub: license.id().to_owned(),
                kid: license.kid().to_owned(),
                iat: license.claims().iat,
            }),
            machine,
        }
    }
}

/// A license token for this product and this license.
fn verify_license_token(
    verifier: &Verifier,
    token: &str,
    license_id: &str,
) -> Result<(), OnlineError> {
    let license = verifier.verify(token).map_err(OnlineError::Token)?;
    if license.id() != license_id {
        return Err(OnlineError::Mismatch(format!(
            "the license token is for license {}, not {license_id}",
            license.id()
        )));
    }
    Ok(())
}

pub(super) fn activation(
    verifier: &Verifier,
    status: u16,
    body: &Value,
    fingerprint_id: &str,
) -> Result<Activation, OnlineError> {
    let machine_id = string_field(body, "machine_id")?;
    let license_id = string_field(body, "license_id")?;
    let machine_token = string_field(body, "machine_token")?;
    verify_machine_token(verifier, &machine_token, fingerprint_id, &license_id)?;
    let license_token = match body.get("license_token") {
        None | Some(Value::Null) => None,
        Some(Value::String(token)) => {
            verify_license_token(verifier, token, &license_id)?;
            Some(token.clone())
        }
        Some(_) => {
            return Err(OnlineError::BadResponse(
                "`license_token` is not a string".into(),
            ));
        }
    };
    let deactivation_key = match body.get("deactivation_key") {
        None | Some(Value::Null) => None,
        Some(Value::String(key)) => Some(checked_key(key)?),
        Some(_) => {
            return Err(OnlineError::BadResponse(
                "`deactivation_key` is not a string".into(),
            ));
        }
    };
    Ok(Activation {
        machine_id,
        license_id,
        machine_token,
        license_token,
        created: status == 201,
        deactivation_key,
    })
}

/// A deactivation key as the server hands it out (32 bytes, base64url).
fn checked_key(key: &str) -> Result<String, OnlineError> {
    crate::deactivation::decode_deactivation_key(key)
        .map_err(|e| OnlineError::BadResponse(format!("`deactivation_key`: {e}")))?;
    Ok(key.to_owned())
}

pub(super) fn deactivation(body: &Value) -> Result<Deactivation, OnlineError> {
    let deactivated = body
        .get("deactivated")
        .and_then(Value::as_bool)
        .ok_or_else(|| {
            OnlineError::BadResponse("`deactivated` is missing or not a boolean".into())
        })?;
    let machine_id = match body.get("machine_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(id.clone()),
        Some(_) => {
            return Err(OnlineError::BadResponse(
                "`machine_id` is not a string".into(),
            ));
        }
    };
    Ok(Deactivation {
        deactivated,
        machine_id,
    })
}

/// Verifies a `response+jwt`: signature and `typ` under the app's trust store, this product,
/// the nonce sent (else [`OnlineError::Replay`]), this fingerprint, and every token it carries.
pub(super) fn verify_response(
    verifier: &Verifier,
    token: &str,
    nonce: &str,
    fingerprint_id: &str,
) -> Result<Validation, OnlineError> {
    let response = verify_token(token, TokenKind::Response, verifier.trust_store())
        .map_err(OnlineError::Token)?;
    let claims = &response.claims;
    check_audience(claims, product(verifier))?;
    if claim_str(claims, "nonce")? != nonce {
        return Err(OnlineError::Replay);
    }
    if claim_str(claims, "fingerprint")? != fingerprint_id {
        return Err(OnlineError::Mismatch(
            "the response is about another machine".into(),
        ));
    }
    let license_id = claim_str(claims, "license_id")?.to_owned();
    if claim_str(claims, "sub")? != license_id {
        return Err(OnlineError::BadResponse(
            "`sub` and `license_id` differ".into(),
        ));
    }
    let machine_activated = claims
        .get("machine_activated")
        .and_then(Value::as_bool)
        .ok_or_else(|| OnlineError::BadResponse("claim `machine_activated` is missing".into()))?;
    let activation_required = match claims.get("activation_required") {
        None => false,
        Some(Value::Bool(required)) => *required,
        Some(_) => {
            return Err(OnlineError::BadResponse(
                "claim `activation_required` is not a boolean".into(),
            ));
        }
    };
    let license_token = optional_string(claims, "license_token")?;
    if let Some(license_token) = &license_token {
        verify_license_token(verifier, license_token, &license_id)?;
    }
    let machine_token = optional_string(claims, "machine_token")?;
    if let Some(machine_token) = &machine_token {
        verify_machine_token(verifier, machine_token, fingerprint_id, &license_id)?;
    }
    Ok(Validation {
        status: ServerStatus::parse(claim_str(claims, "status")?),
        server_time: claim_i64(claims, "server_time")?,
        expires_at: claim_i64(claims, "exp")?,
        license_id,
        machine_activated,
        activation_required,
        machine_id: optional_string(claims, "machine_id")?,
        license_token,
        machine_token,
        offline: claims.get("offline").and_then(Value::as_bool) == Some(true),
        response_token: token.to_owned(),
        deactivation_key: optional_string(claims, "deactivation_key")?
            .map(|key| checked_key(&key))
            .transpose()?,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OfflineResponseFile {
    kind: String,
    version: u32,
    response_token: String,
}

pub(super) fn verify_offline_response(
    verifier: &Verifier,
    text: &str,
    request: &OfflineRequest,
    now: i64,
) -> Result<Validation, OnlineError> {
    crate::strict_json::check_object(text.trim().as_bytes()).map_err(OnlineError::BadResponse)?;
    let file: OfflineResponseFile = serde_json::from_str(text.trim())
        .map_err(|e| OnlineError::BadResponse(format!("offline response: {e}")))?;
    if file.kind != OFFLINE_RESPONSE_KIND || file.version != 1 {
        return Err(OnlineError::BadResponse(format!(
            "not an offline activation response (kind `{}`, version {})",
            file.kind, file.version
        )));
    }
    let validation = verify_response(
        verifier,
        &file.response_token,
        &request.nonce,
        &request.fingerprint.id,
    )?;
    if !validation.offline {
        return Err(OnlineError::BadResponse(
            "the response is not an offline activation (`offline` is not true)".into(),
        ));
    }
    if now > validation.expires_at {
        return Err(OnlineError::Expired(now - validation.expires_at));
    }
    Ok(validation)
}
