//! The answers of `/v1/client/*`: what the server sends and the client reads. Tolerant: a
//! member this client does not know is ignored (a newer server may add some), and a member
//! that older servers leave out is optional. The tokens they carry are verified by the client
//! ([`crate::online`]), never trusted as read.

use serde::{Deserialize, Serialize};

/// The answer of an activation or a transfer (HTTP 201 for a new machine, 200 for one
/// activated already).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActivateResponse {
    /// The activated machine.
    pub machine_id: String,
    /// The license.
    pub license_id: String,
    /// A `machine+jwt` binding this machine to the license.
    pub machine_token: String,
    /// A license token signed now (node-locked: binding the license's machines). Always sent
    /// by this server; a client accepts its absence.
    #[serde(default)]
    pub license_token: Option<String>,
    /// This machine's deactivation key (32 random bytes, base64url): kept secret by the client,
    /// it MACs the receipt an air-gapped machine writes when it deactivates itself
    /// (`POST /v1/offline/deactivate`). The same key for every activation of one machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deactivation_key: Option<String>,
}

/// The answer of a deactivation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeactivateResponse {
    /// Always `true` from this server (a machine that is not activated is a 404).
    pub deactivated: bool,
    /// The machine removed.
    #[serde(default)]
    pub machine_id: Option<String>,
}

/// The answer of a validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ValidateResponse {
    /// A `response+jwt` whose claims are [`super::ResponseClaims`].
    pub response_token: String,
}

/// The answer carrying a lease: a check-out (201 new, 200 the same lease again) or a
/// heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeaseAnswer {
    /// The lease id.
    pub lease_id: String,
    /// A signed `lease+jwt`.
    pub lease_token: String,
    /// The lease's fencing epoch (heartbeats and check-in present it).
    pub epoch: u64,
    /// When the lease lapses without a heartbeat (server clock, Unix seconds).
    pub expires_at: i64,
    /// Seconds between heartbeats (a borrowed lease needs none: they leave its expiry alone).
    pub heartbeat_interval: u64,
    /// Borrowed: usable offline until `expires_at` (as its token says).
    #[serde(default)]
    pub borrowed: bool,
    /// The lease's secret, proof of holding it: heartbeats and check-ins present it. Only in
    /// a check-out's answer (never in a heartbeat's); keep it private (not logged, files
    /// 0600). A retry with the same request id answers a fresh one that replaces it, unless
    /// the retry presents it; absent for a lease without one (taken before secrets existed,
    /// or by a check-out that did not declare `lease_secret_supported`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_secret: Option<String>,
}

/// A check-out waiting in line for a seat (202): ask again with the same request id every
/// `retry_after` seconds to keep the place; the answer is the lease once a seat is free for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueuedAnswer {
    /// The place in line (to give it up: `POST /v1/client/queue/{id}/leave`).
    pub queue_id: String,
    /// 1 for the head of the line.
    pub position: u64,
    /// Places in line, this one included.
    pub waiting: u64,
    /// When the place was taken (server clock, Unix seconds).
    pub queued_at: i64,
    /// The end of the wait (server clock): a check-out after it without a seat is denied.
    pub wait_until: i64,
    /// Seconds to wait before asking again (also in `Retry-After`). A place not asked for
    /// within 30 seconds is given up.
    pub retry_after: u64,
    /// The message to show meanwhile: "No available licenses, please contact IT".
    pub message: String,
}

/// The answer to leaving a wait line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeftQueue {
    /// The place in line.
    #[serde(default)]
    pub queue_id: String,
    /// Whether the place was still held (`false`: it had lapsed or been served already).
    pub left: bool,
}
