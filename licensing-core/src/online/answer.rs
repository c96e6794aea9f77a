//! The server's answers, verified: no I/O here, so every rule is unit-tested with signed tokens.

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::OnlineError;
use crate::Error;
use crate::claims::Audience;
use crate::evaluate::Verifier;
use crate::fingerprint::MachineFingerprint;
use crate::jws::{TokenKind, verify_token};
use crate::protocol::{
    ActivateResponse, DeactivateResponse, HeldToken, HeldTokens, MachineClaims,
    OFFLINE_FILE_VERSION, OFFLINE_REQUEST_KIND, OfflineRequest, OfflineResponse, ResponseClaims,
    ServerStatus,
};

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
            version: OFFLINE_FILE_VERSION,
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
        if !request.is_known_kind() {
            return Err(OnlineError::BadResponse(format!(
                "not an offline activation request (kind `{}`, version {})",
                request.kind, request.version
            )));
        }
        Ok(request)
    }
}

/// An answer's body read as the protocol type `T`: an error names the member at fault.
pub(super) fn parse<T: DeserializeOwned>(body: Value, what: &str) -> Result<T, OnlineError> {
    serde_path_to_error::deserialize(body).map_err(|e| {
        let path = e.path().to_string();
        OnlineError::BadResponse(format!("{what}: `{path}`: {}", e.inner()))
    })
}

/// A verified token's claims read as the protocol type `T`.
fn claims<T: DeserializeOwned>(
    claims: &serde_json::Map<String, Value>,
    what: &str,
) -> Result<T, OnlineError> {
    parse(Value::Object(claims.clone()), what)
}

/// `aud` names `product`.
fn check_audience(aud: &Audience, product: &str) -> Result<(), OnlineError> {
    if aud.contains(product) {
        Ok(())
    } else {
        Err(OnlineError::Token(Error::ProductMismatch {
            expected: product.to_owned(),
            found: aud.as_slice().to_vec(),
        }))
    }
}

fn product(verifier: &Verifier) -> &str {
    verifier.product_id().unwrap_or_default()
}

/// A `machine+jwt` for this product, this fingerprint and this license: its kid and claims.
fn verify_machine_token(
    verifier: &Verifier,
    token: &str,
    fingerprint_id: &str,
    license_id: &str,
) -> Result<(String, MachineClaims), OnlineError> {
    let machine = verify_token(token, TokenKind::Machine, verifier.trust_store())
        .map_err(OnlineError::Token)?;
    let parsed: MachineClaims = claims(&machine.claims, "machine token claims")?;
    check_audience(&parsed.aud, product(verifier))?;
    if parsed.fingerprint.id != fingerprint_id {
        return Err(OnlineError::Mismatch(
            "the machine token is for another machine".into(),
        ));
    }
    if parsed.license_id != license_id {
        return Err(OnlineError::Mismatch(
            "the machine token is for another license".into(),
        ));
    }
    Ok((machine.kid, parsed))
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
            .filter(|(_, machine)| !machine.sub.is_empty() && machine.iat != 0)
            .map(|(kid, machine)| HeldToken {
                sub: machine.sub,
                iat: machine.iat,
                kid,
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
    body: Value,
    fingerprint_id: &str,
) -> Result<Activation, OnlineError> {
    let answer: ActivateResponse = parse(body, "activation")?;
    verify_machine_token(
        verifier,
        &answer.machine_token,
        fingerprint_id,
        &answer.license_id,
    )?;
    if let Some(token) = &answer.license_token {
        verify_license_token(verifier, token, &answer.license_id)?;
    }
    let deactivation_key = answer
        .deactivation_key
        .map(|key| checked_key(&key))
        .transpose()?;
    Ok(Activation {
        machine_id: answer.machine_id,
        license_id: answer.license_id,
        machine_token: answer.machine_token,
        license_token: answer.license_token,
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

pub(super) fn deactivation(body: Value) -> Result<Deactivation, OnlineError> {
    let answer: DeactivateResponse = parse(body, "deactivation")?;
    Ok(Deactivation {
        deactivated: answer.deactivated,
        machine_id: answer.machine_id,
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
    let claims: ResponseClaims = claims(&response.claims, "response claims")?;
    check_audience(&claims.aud, product(verifier))?;
    if claims.nonce != nonce {
        return Err(OnlineError::Replay);
    }
    if claims.fingerprint != fingerprint_id {
        return Err(OnlineError::Mismatch(
            "the response is about another machine".into(),
        ));
    }
    if claims.sub != claims.license_id {
        return Err(OnlineError::BadResponse(
            "`sub` and `license_id` differ".into(),
        ));
    }
    if let Some(license_token) = &claims.license_token {
        verify_license_token(verifier, license_token, &claims.license_id)?;
    }
    if let Some(machine_token) = &claims.machine_token {
        verify_machine_token(verifier, machine_token, fingerprint_id, &claims.license_id)?;
    }
    let offline = claims.is_offline();
    Ok(Validation {
        status: claims.status,
        server_time: claims.server_time,
        expires_at: claims.exp,
        license_id: claims.license_id,
        machine_activated: claims.machine_activated,
        activation_required: claims.activation_required,
        machine_id: claims.machine_id,
        license_token: claims.license_token,
        machine_token: claims.machine_token,
        offline,
        response_token: token.to_owned(),
        deactivation_key: claims
            .deactivation_key
            .map(|key| checked_key(&key))
            .transpose()?,
    })
}

pub(super) fn verify_offline_response(
    verifier: &Verifier,
    text: &str,
    request: &OfflineRequest,
    now: i64,
) -> Result<Validation, OnlineError> {
    crate::strict_json::check_object(text.trim().as_bytes()).map_err(OnlineError::BadResponse)?;
    let file: OfflineResponse = serde_json::from_str(text.trim())
        .map_err(|e| OnlineError::BadResponse(format!("offline response: {e}")))?;
    if !file.is_known_kind() {
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
