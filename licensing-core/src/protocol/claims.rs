//! The claims of the tokens the server signs for a client, beside the license token's own
//! ([`crate::LicenseClaims`]): the validation answer (`response+jwt`), the machine binding
//! (`machine+jwt`) and the seat lease (`lease+jwt`, [`crate::LeaseClaims`]).

use serde::{Deserialize, Serialize};

use super::ServerStatus;
use crate::claims::{Audience, BoundFingerprint};

/// The claims of a `response+jwt`: the server's signed answer about a license and a machine
/// (validation, and air-gapped activation with `offline: true`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseClaims {
    /// The server's issuer name.
    #[serde(default)]
    pub iss: String,
    /// The license id.
    pub sub: String,
    /// The license's product id (the client also accepts an array naming it).
    pub aud: Audience,
    /// Signing time.
    #[serde(default)]
    pub iat: i64,
    /// `iat` + 300 s (validation) or + 30 days (offline activation).
    pub exp: i64,
    /// Unique response id.
    #[serde(default)]
    pub jti: String,
    /// The client's nonce, echoed.
    pub nonce: String,
    /// The server's clock, for the client's clock guard.
    pub server_time: i64,
    /// The license id.
    pub license_id: String,
    /// The license's status.
    pub status: ServerStatus,
    /// The fingerprint id asked about.
    pub fingerprint: String,
    /// Whether that fingerprint is activated on the license.
    pub machine_activated: bool,
    /// Whether the license runs only on activated machines: with `machine_activated` false,
    /// no license token is answered and the client refuses. `false` from a server that does
    /// not say.
    #[serde(default)]
    pub activation_required: bool,
    /// The machine, when activated.
    #[serde(default)]
    pub machine_id: Option<String>,
    /// A freshly signed license token (refreshed `lic.check_in.until`) when the license is
    /// active and this machine is activated or need not be (`activation_required` false),
    /// unless the one the client holds is current; otherwise null.
    #[serde(default)]
    pub license_token: Option<String>,
    /// A freshly signed `machine+jwt` when this machine is activated and the license active,
    /// unless the one the client holds is current; otherwise null.
    #[serde(default)]
    pub machine_token: Option<String>,
    /// `true` in an offline activation response; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline: Option<bool>,
    /// In an offline activation response: the machine's deactivation key (base64url), which
    /// MACs the machine's offline deactivation receipt. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deactivation_key: Option<String>,
}

impl ResponseClaims {
    /// Whether this answers an air-gapped activation request (`offline: true`).
    pub fn is_offline(&self) -> bool {
        self.offline == Some(true)
    }

    /// Whether the server refuses this machine: the license runs only on activated machines
    /// and this one is not activated.
    pub fn refuses_machine(&self) -> bool {
        self.activation_required && !self.machine_activated
    }
}

/// The claims of a `machine+jwt`: this machine (fingerprint id and component hashes) is
/// activated on this license, until the license's last usable instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineClaims {
    /// The server's issuer name.
    #[serde(default)]
    pub iss: String,
    /// The machine (activation) id (empty from a server that does not say).
    #[serde(default)]
    pub sub: String,
    /// The license's product id(s).
    pub aud: Audience,
    /// Signing time (0 from a server that does not say).
    #[serde(default)]
    pub iat: i64,
    /// The license's last usable instant; absent for a license that never ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Unique token id.
    #[serde(default)]
    pub jti: String,
    /// The license the machine is activated on.
    pub license_id: String,
    /// The machine's fingerprint as activated (read leniently: a client needs its `id`; any
    /// member beside `id` and `components` is ignored).
    #[serde(deserialize_with = "bound_leniently")]
    pub fingerprint: BoundFingerprint,
}

/// A machine token's `fingerprint`, as tolerantly as a client reads it: the `id`, and the
/// `components` when they are a map of strings (ignored otherwise, like any other member).
fn bound_leniently<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<BoundFingerprint, D::Error> {
    #[derive(Deserialize)]
    struct Lenient {
        id: String,
        #[serde(default)]
        components: serde_json::Value,
    }
    let lenient = Lenient::deserialize(deserializer)?;
    Ok(BoundFingerprint {
        id: lenient.id,
        components: serde_json::from_value(lenient.components).unwrap_or_default(),
    })
}
