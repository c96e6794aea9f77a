//! The tokens a client holds, named in a validation so the server signs again only those due.

use serde::{Deserialize, Serialize};

/// A token the app holds, named to the server by its signed `sub`, `kid` and `iat`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HeldToken {
    /// The token's `sub`: the license id (license token) or the machine id (machine token).
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 128, pattern = "^[!-~]+$")
    )]
    pub sub: String,
    /// The `kid` of the key that signed it.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 128, pattern = "^[!-~]+$")
    )]
    pub kid: String,
    /// Its `iat`.
    pub iat: i64,
}

/// The license and machine tokens an app holds, sent with a validation so the server signs
/// again only those that are due.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HeldTokens {
    /// The stored license token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<HeldToken>,
    /// The stored machine token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<HeldToken>,
}
