//! The protocol between the client and the licensing server, typed: the one definition of
//! what they exchange, which the online client ([`crate::online`]) and the reference server
//! both use (the server derives its OpenAPI schemas from these types, feature `openapi`).
//!
//! - requests of `/v1/client/*` ([`ActivateRequest`], [`ValidateRequest`],
//!   [`CheckOutRequest`], ...): strict, an unknown member is refused;
//! - their answers ([`ActivateResponse`], [`ValidateResponse`], [`LeaseAnswer`],
//!   [`QueuedAnswer`], ...) and the error answer ([`ErrorBody`]): tolerant, an unknown member
//!   is ignored;
//! - the claims of the tokens a client receives beside the license token
//!   ([`ResponseClaims`], [`MachineClaims`], [`crate::LeaseClaims`]);
//! - the tokens a client holds ([`HeldTokens`]), the air-gapped activation files
//!   ([`OfflineRequest`], [`OfflineResponse`]) and the offline deactivation receipt
//!   ([`DeactivationReceipt`], [`crate::deactivation`]'s);
//! - the words: a license's status as the server reports it ([`ServerStatus`]) and the error
//!   codes ([`ErrorCode`]).
//!
//! Serde only: no I/O, no feature needed. `tests/protocol/` at the repository root holds real
//! requests and answers that both sides' tests replay against these types.

mod answers;
mod claims;
mod held;
mod offline;
mod requests;
#[cfg(feature = "openapi")]
pub mod schema;
mod words;

pub use answers::{
    ActivateResponse, DeactivateResponse, LeaseAnswer, LeftQueue, QueuedAnswer, ValidateResponse,
};
pub use claims::{MachineClaims, ResponseClaims};
pub use held::{HeldToken, HeldTokens};
pub use offline::{
    OFFLINE_FILE_VERSION, OFFLINE_REQUEST_KIND, OFFLINE_RESPONSE_KIND, OfflineRequest,
    OfflineResponse,
};
pub use requests::{
    ActivateRequest, CheckOutRequest, DeactivateRequest, LeaseRequest, LeaveQueueRequest,
    TransferRequest, ValidateRequest,
};
pub use words::{ErrorBody, ErrorCode, ServerStatus};

pub use crate::deactivation::DeactivationReceipt;
pub use crate::lease::LeaseClaims;

#[cfg(test)]
mod tests;
