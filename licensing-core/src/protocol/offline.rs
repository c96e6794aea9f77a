//! The air-gapped activation files: the request a machine writes, and the response the vendor
//! hands back (`docs/FORMAT.md`, "Offline activation"). Both strict: no member beside these.

use serde::{Deserialize, Serialize};

use crate::fingerprint::MachineFingerprint;

/// `kind` of an air-gapped activation request file.
pub const OFFLINE_REQUEST_KIND: &str = "licensing.offline_activation_request";
/// `kind` of an air-gapped activation response file.
pub const OFFLINE_RESPONSE_KIND: &str = "licensing.offline_activation_response";
/// The one version of both files.
pub const OFFLINE_FILE_VERSION: u32 = 1;

/// An air-gapped activation request: what the vendor needs, and the nonce its answer echoes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = OfflineActivationRequest))]
#[serde(deny_unknown_fields)]
pub struct OfflineRequest {
    /// Always [`OFFLINE_REQUEST_KIND`].
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^licensing\\.offline_activation_request$")
    )]
    pub kind: String,
    /// Format version, 1.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1))]
    pub version: u32,
    /// The license key.
    #[cfg_attr(feature = "openapi", schema(example = "ABCDE-FGHJK-LMNPQ-RSTUV-WXYZ2"))]
    pub license_key: String,
    /// This machine's fingerprint.
    #[cfg_attr(feature = "openapi", schema(value_type = super::schema::FingerprintSchema))]
    pub fingerprint: MachineFingerprint,
    /// Random (16 to 128 printable ASCII characters); the response must echo it.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 16, max_length = 128, pattern = "^[!-~]+$")
    )]
    pub nonce: String,
    /// When the request was made (seconds since the epoch).
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 253402300799_i64))]
    pub created_at: i64,
}

/// An air-gapped activation response file, carried back to the machine and imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = OfflineActivationResponse))]
#[serde(deny_unknown_fields)]
pub struct OfflineResponse {
    /// Always [`OFFLINE_RESPONSE_KIND`].
    pub kind: String,
    /// Always 1.
    pub version: u32,
    /// A `response+jwt` ([`super::ResponseClaims`]): the validation claims plus
    /// `machine_token` and `offline: true`, valid 30 days.
    pub response_token: String,
}

impl OfflineResponse {
    /// The response file for `response_token`.
    pub fn new(response_token: String) -> Self {
        OfflineResponse {
            kind: OFFLINE_RESPONSE_KIND.into(),
            version: OFFLINE_FILE_VERSION,
            response_token,
        }
    }

    /// Whether the file is a version-1 offline activation response (its `kind` and
    /// `version`).
    pub fn is_known_kind(&self) -> bool {
        self.kind == OFFLINE_RESPONSE_KIND && self.version == OFFLINE_FILE_VERSION
    }
}

impl OfflineRequest {
    /// Whether the file is a version-1 offline activation request (its `kind` and `version`).
    pub fn is_known_kind(&self) -> bool {
        self.kind == OFFLINE_REQUEST_KIND && self.version == OFFLINE_FILE_VERSION
    }
}
