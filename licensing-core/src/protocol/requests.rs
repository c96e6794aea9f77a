//! The requests of `/v1/client/*`: what the client sends and the server reads. Strict: a
//! member the protocol does not define is refused (the server answers 422 naming it).

use serde::{Deserialize, Serialize};

use super::HeldTokens;
use crate::fingerprint::MachineFingerprint;

/// `POST /v1/client/activate`: binds this machine to the license.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ActivateRequest {
    /// The license key.
    #[cfg_attr(feature = "openapi", schema(example = "ABCDE-FGHJK-LMNPQ-RSTUV-WXYZ2"))]
    pub license_key: String,
    /// As printed by `licensing-server machine fingerprint --json --product <product id>`.
    #[cfg_attr(feature = "openapi", schema(value_type = super::schema::FingerprintSchema))]
    pub fingerprint: MachineFingerprint,
    /// The user of the app, when the app knows one: linked to the organization's directory
    /// user of that name, and required to be an assignee on a license with named seats.
    /// Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 200,
            pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
        )
    )]
    pub user: Option<String>,
}

/// `POST /v1/client/transfer`: moves an activation from another machine to this one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    /// The license key.
    #[cfg_attr(feature = "openapi", schema(example = "ABCDE-FGHJK-LMNPQ-RSTUV-WXYZ2"))]
    pub license_key: String,
    /// The fingerprint id of the activated machine to give up.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 128, pattern = "^[!-~]+$")
    )]
    pub from_fingerprint: String,
    /// The new machine, as for activation.
    #[cfg_attr(feature = "openapi", schema(value_type = super::schema::FingerprintSchema))]
    pub fingerprint: MachineFingerprint,
}

/// `POST /v1/client/deactivate`: releases a machine's activation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeactivateRequest {
    /// The license key.
    #[cfg_attr(feature = "openapi", schema(example = "ABCDE-FGHJK-LMNPQ-RSTUV-WXYZ2"))]
    pub license_key: String,
    /// The machine's fingerprint id.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 128, pattern = "^[!-~]+$")
    )]
    pub fingerprint: String,
    /// The machine's whole fingerprint (its `id` is `fingerprint`), so the machine is found by
    /// the license's match rule after a tolerated hardware change. Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = Option<super::schema::FingerprintSchema>)
    )]
    pub machine: Option<MachineFingerprint>,
}

/// `POST /v1/client/validate`: asks for a signed answer about the license and this machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ValidateRequest {
    /// The license key.
    #[cfg_attr(feature = "openapi", schema(example = "ABCDE-FGHJK-LMNPQ-RSTUV-WXYZ2"))]
    pub license_key: String,
    /// The machine's fingerprint id.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 128, pattern = "^[!-~]+$")
    )]
    pub fingerprint: String,
    /// A fresh random value from the client, echoed in the signed response.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 8, max_length = 128, pattern = "^[!-~]+$")
    )]
    pub nonce: String,
    /// The machine's whole fingerprint (its `id` is `fingerprint`), so that after a hardware
    /// change within the license's match rule the machine is still recognized (and its stored
    /// fingerprint updated). Optional: without it only the exact fingerprint id is looked up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = Option<super::schema::FingerprintSchema>)
    )]
    pub machine: Option<MachineFingerprint>,
    /// The license and machine tokens the client stores (after checking their signatures).
    /// A token still current is not signed again: the response's `license_token` or
    /// `machine_token` is then null and the client keeps its own. Absent: both are signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<HeldTokens>,
    /// The user of the app, when the app knows one: linked to the organization's directory
    /// user of that name, and required to be an assignee on a license with named seats.
    /// Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 200,
            pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
        )
    )]
    pub user: Option<String>,
}

/// `POST /v1/client/leases`: checks out (or borrows, or waits in line for) a floating seat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CheckOutRequest {
    /// The license key.
    #[cfg_attr(feature = "openapi", schema(example = "ABCDE-FGHJK-LMNPQ-RSTUV-WXYZ2"))]
    pub license_key: String,
    /// The client installation.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 128, pattern = "^[!-~]+$")
    )]
    pub client_id: String,
    /// The user of the app.
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 200,
            pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
        )
    )]
    pub user: String,
    /// The client's id for this check-out, new for each running instance of the app: a retry
    /// with it returns the same lease (with a fresh `lease_secret` that replaces the first,
    /// unless the retry presents it). Another request id is another instance: it takes a seat
    /// of its own (or is denied), even for the same client and user.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 128, pattern = "^[!-~]+$")
    )]
    pub request_id: String,
    /// Borrow the seat: take it offline for this many seconds (1 to the license's
    /// `borrowing.max_seconds`, never past the license's expiry), with no heartbeat. The same
    /// client and user holding a lease already borrow that one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub borrow_seconds: Option<i64>,
    /// Wait in line for up to this many seconds (1 to 86 400; capped by the license's
    /// `queue.max_seconds`) when no seat is free: the answer is then 202 with the place in
    /// line, and asking again with the same request id keeps it. A license with no line
    /// denies at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 86_400))]
    pub queue_seconds: Option<i64>,
    /// The secret of a live lease this instance holds (same client and user): the answer is
    /// that lease (borrowed, with `borrow_seconds`) and this request id is tied to it. A
    /// secret that matches no live lease of the client and user is ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
    pub lease_secret: Option<String>,
    /// `true`: this client keeps the `lease_secret` answered with the lease and presents it
    /// on heartbeat and check-in (current SDKs). The lease then has a secret, and its
    /// heartbeats and check-ins require it; a retry of its request id must declare it too (403
    /// `lease_secret_required` otherwise, nothing changes). Absent or `false` (SDKs older
    /// than lease secrets): the lease has none, and is protected only by its id being
    /// unguessable. Presenting `lease_secret` implies `true`.
    #[serde(default)]
    pub lease_secret_supported: bool,
}

/// `POST /v1/client/leases/{id}/heartbeat` and `.../release`: names the lease held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LeaseRequest {
    /// The license key.
    #[cfg_attr(feature = "openapi", schema(example = "ABCDE-FGHJK-LMNPQ-RSTUV-WXYZ2"))]
    pub license_key: String,
    /// The lease's epoch, as in its token.
    pub epoch: i64,
    /// The lease's secret, as answered at check-out: required for a lease that has one (403
    /// `lease_secret_required` without it, `lease_secret_invalid` for another; the lease goes
    /// on either way).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
    pub lease_secret: Option<String>,
}

/// `POST /v1/client/queue/{id}/leave`: gives up a place in a wait line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LeaveQueueRequest {
    /// The license key.
    #[cfg_attr(feature = "openapi", schema(example = "ABCDE-FGHJK-LMNPQ-RSTUV-WXYZ2"))]
    pub license_key: String,
}
