//! `lic_status` and `lic_model`: the core's `Status` and `LicenseModel`, one-to-one, with the
//! core's numbers.

use std::ffi::{CStr, CString, c_char};
use std::sync::OnceLock;

use licensing_core::{LicenseModel, Status};

use crate::abi::guard_value;

/// Whether and how a license may be used: the core's status vocabulary, with the core's stable
/// numbers (never reused; new values only appended). Only `LIC_STATUS_VALID` and
/// `LIC_STATUS_VALID_IN_GRACE` allow the software to run (`lic_status_is_usable`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum lic_status {
    /// The license may be used.
    LIC_STATUS_VALID = 0,
    /// The license has expired but is inside its grace period: usable, degraded, with time left.
    LIC_STATUS_VALID_IN_GRACE = 1,
    /// A subscription (or other expiring license) has expired and its grace period is over.
    LIC_STATUS_EXPIRED = 2,
    /// `nbf` is in the future.
    LIC_STATUS_NOT_YET_VALID = 3,
    /// A trial has ended (trials have no grace period).
    LIC_STATUS_TRIAL_EXPIRED = 4,
    /// The signature does not verify under the trusted key: the token is not genuine.
    LIC_STATUS_SIGNATURE_INVALID = 5,
    /// The token names a `kid` that is not in the local trust store.
    LIC_STATUS_UNKNOWN_KEY = 6,
    /// The token is not a well-formed compact JWS of this profile (encoding, JSON, header).
    LIC_STATUS_MALFORMED = 7,
    /// `alg` is not EdDSA / Ed25519.
    LIC_STATUS_UNSUPPORTED_ALGORITHM = 8,
    /// A genuine token of another kind (`typ`), e.g. a lease presented as a license.
    LIC_STATUS_WRONG_TOKEN_TYPE = 9,
    /// A genuine token whose claims violate the license schema.
    LIC_STATUS_INVALID_CLAIMS = 10,
    /// The license is for another product (`aud`).
    LIC_STATUS_PRODUCT_MISMATCH = 11,
    /// The running version is not covered (semver requirement or maintenance window).
    LIC_STATUS_VERSION_NOT_ENTITLED = 12,
    /// A requested feature is not in the license.
    LIC_STATUS_FEATURE_NOT_ENTITLED = 13,
    /// A requested feature is in the license but its own expiry has passed.
    LIC_STATUS_FEATURE_EXPIRED = 14,
    /// The context attributes do not satisfy the site restrictions.
    LIC_STATUS_SITE_RESTRICTED = 15,
    /// A node-locked license does not match this machine (or no fingerprint was supplied).
    LIC_STATUS_FINGERPRINT_MISMATCH = 16,
    /// The license forbids virtual machines and containers, and this machine is one.
    LIC_STATUS_VIRTUAL_MACHINE_NOT_ALLOWED = 17,
    /// The clock is earlier than trusted time seen before (beyond the tolerance), or the
    /// clock-guard state was edited or deleted.
    LIC_STATUS_CLOCK_TAMPERED = 18,
    /// No license is installed (the app should offer activation).
    LIC_STATUS_NO_LICENSE = 19,
    /// The licensing server answered that the license is revoked (for good).
    LIC_STATUS_REVOKED = 20,
    /// The licensing server answered that the license is suspended (it may be reinstated).
    LIC_STATUS_SUSPENDED = 21,
    /// The server check-in deadline and its grace have passed: the app must reach the
    /// licensing server for a fresh token.
    LIC_STATUS_CHECK_IN_REQUIRED = 22,
    /// A floating license's seat lease has expired (at or after its `exp`) or was released:
    /// the app must check out a seat again.
    LIC_STATUS_LEASE_EXPIRED = 23,
    /// A floating license is used without a lease for it: the app must check out a seat.
    LIC_STATUS_LEASE_REQUIRED = 24,
    /// The licensing server answered that this machine is not activated on the license (never
    /// activated, deactivated, or removed by an administrator), and the license allows only
    /// activated machines: activate this machine (a free slot or a transfer).
    LIC_STATUS_MACHINE_NOT_ACTIVATED = 25,
}

impl From<Status> for lic_status {
    fn from(status: Status) -> Self {
        match status {
            Status::Valid => lic_status::LIC_STATUS_VALID,
            Status::ValidInGrace => lic_status::LIC_STATUS_VALID_IN_GRACE,
            Status::Expired => lic_status::LIC_STATUS_EXPIRED,
            Status::NotYetValid => lic_status::LIC_STATUS_NOT_YET_VALID,
            Status::TrialExpired => lic_status::LIC_STATUS_TRIAL_EXPIRED,
            Status::SignatureInvalid => lic_status::LIC_STATUS_SIGNATURE_INVALID,
            Status::UnknownKey => lic_status::LIC_STATUS_UNKNOWN_KEY,
            Status::Malformed => lic_status::LIC_STATUS_MALFORMED,
            Status::UnsupportedAlgorithm => lic_status::LIC_STATUS_UNSUPPORTED_ALGORITHM,
            Status::WrongTokenType => lic_status::LIC_STATUS_WRONG_TOKEN_TYPE,
            Status::InvalidClaims => lic_status::LIC_STATUS_INVALID_CLAIMS,
            Status::ProductMismatch => lic_status::LIC_STATUS_PRODUCT_MISMATCH,
            Status::VersionNotEntitled => lic_status::LIC_STATUS_VERSION_NOT_ENTITLED,
            Status::FeatureNotEntitled => lic_status::LIC_STATUS_FEATURE_NOT_ENTITLED,
            Status::FeatureExpired => lic_status::LIC_STATUS_FEATURE_EXPIRED,
            Status::SiteRestricted => lic_status::LIC_STATUS_SITE_RESTRICTED,
            Status::FingerprintMismatch => lic_status::LIC_STATUS_FINGERPRINT_MISMATCH,
            Status::VirtualMachineNotAllowed => lic_status::LIC_STATUS_VIRTUAL_MACHINE_NOT_ALLOWED,
            Status::ClockTampered => lic_status::LIC_STATUS_CLOCK_TAMPERED,
            Status::NoLicense => lic_status::LIC_STATUS_NO_LICENSE,
            Status::Revoked => lic_status::LIC_STATUS_REVOKED,
            Status::Suspended => lic_status::LIC_STATUS_SUSPENDED,
            Status::CheckInRequired => lic_status::LIC_STATUS_CHECK_IN_REQUIRED,
            Status::LeaseExpired => lic_status::LIC_STATUS_LEASE_EXPIRED,
            Status::LeaseRequired => lic_status::LIC_STATUS_LEASE_REQUIRED,
            Status::MachineNotActivated => lic_status::LIC_STATUS_MACHINE_NOT_ACTIVATED,
        }
    }
}

/// The core status with this number, if any.
fn core_status(number: u32) -> Option<Status> {
    Status::ALL.into_iter().find(|s| *s as u32 == number)
}

/// One static C string per status, indexed by its number (numbers are positions in
/// `Status::ALL`, a core test checks it), built once from the core's text.
fn status_texts(
    cell: &'static OnceLock<Vec<CString>>,
    text: fn(Status) -> &'static str,
) -> &'static [CString] {
    cell.get_or_init(|| {
        Status::ALL
            .into_iter()
            .map(|status| CString::new(text(status)).unwrap_or_default())
            .collect()
    })
}

/// The core's `Status::as_str` as a static C string.
fn status_name(status: Status) -> &'static CStr {
    static NAMES: OnceLock<Vec<CString>> = OnceLock::new();
    status_texts(&NAMES, Status::as_str)
        .get(status as usize)
        .map_or(c"unknown", CString::as_c_str)
}

/// The core's `Status::message` as a static C string.
fn status_message(status: Status) -> &'static CStr {
    static MESSAGES: OnceLock<Vec<CString>> = OnceLock::new();
    status_texts(&MESSAGES, Status::message)
        .get(status as usize)
        .map_or(c"Unknown license status.", CString::as_c_str)
}

/// The stable snake_case name of a status (`"valid"`, `"valid_in_grace"`, ...), as in JSON and
/// the CLI; `"unknown"` for a number this build does not know.
///
/// Returns a static string: never free it. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn lic_status_name(status: u32) -> *const c_char {
    guard_value(c"unknown".as_ptr(), || {
        core_status(status).map_or(c"unknown", status_name).as_ptr()
    })
}

/// A short English sentence for a status, fit for an end user (`"No license is installed."`);
/// `"Unknown license status."` for a number this build does not know. Show the verdict's
/// reason (`lic_verdict_reason`) for the details.
///
/// Returns a static string: never free it. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn lic_status_message(status: u32) -> *const c_char {
    guard_value(c"Unknown license status.".as_ptr(), || {
        core_status(status)
            .map_or(c"Unknown license status.", status_message)
            .as_ptr()
    })
}

/// Whether a status lets the software run: true for `LIC_STATUS_VALID` and
/// `LIC_STATUS_VALID_IN_GRACE` only (false for unknown numbers). Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn lic_status_is_usable(status: u32) -> bool {
    guard_value(false, || core_status(status).is_some_and(Status::is_usable))
}

/// How a license is sold: the core's `LicenseModel`, with the core's numbers.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum lic_model {
    /// Never expires; versions gated by the maintenance window.
    LIC_MODEL_PERPETUAL = 0,
    /// Valid until its expiry, then a grace period.
    LIC_MODEL_SUBSCRIPTION = 1,
    /// Valid until its expiry; no grace.
    LIC_MODEL_TRIAL = 2,
    /// Concurrent use: a pool of seats shared through leases.
    LIC_MODEL_FLOATING = 3,
    /// Bound to one or more machine fingerprints.
    LIC_MODEL_NODE_LOCKED = 4,
    /// Bound to a site: attributes of the running context must satisfy restrictions.
    LIC_MODEL_SITE = 5,
}

impl From<LicenseModel> for lic_model {
    fn from(model: LicenseModel) -> Self {
        match model {
            LicenseModel::Perpetual => lic_model::LIC_MODEL_PERPETUAL,
            LicenseModel::Subscription => lic_model::LIC_MODEL_SUBSCRIPTION,
            LicenseModel::Trial => lic_model::LIC_MODEL_TRIAL,
            LicenseModel::Floating => lic_model::LIC_MODEL_FLOATING,
            LicenseModel::NodeLocked => lic_model::LIC_MODEL_NODE_LOCKED,
            LicenseModel::Site => lic_model::LIC_MODEL_SITE,
        }
    }
}

fn model_name(model: LicenseModel) -> &'static CStr {
    match model {
        LicenseModel::Perpetual => c"perpetual",
        LicenseModel::Subscription => c"subscription",
        LicenseModel::Trial => c"trial",
        LicenseModel::Floating => c"floating",
        LicenseModel::NodeLocked => c"node_locked",
        LicenseModel::Site => c"site",
    }
}

/// The snake_case name of a model (`"perpetual"`, `"node_locked"`, ...), as in tokens;
/// `"unknown"` for a number this build does not know.
///
/// Returns a static string: never free it. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn lic_model_name(model: u32) -> *const c_char {
    guard_value(c"unknown".as_ptr(), || {
        LicenseModel::ALL
            .into_iter()
            .find(|m| *m as u32 == model)
            .map_or(c"unknown", model_name)
            .as_ptr()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(text: *const c_char) -> &'static str {
        // SAFETY: the functions under test return static NUL-terminated strings.
        unsafe { CStr::from_ptr(text) }.to_str().unwrap_or("")
    }

    /// The C name of a status as the header spells it.
    fn header_name(status: Status) -> String {
        format!("LIC_STATUS_{}", status.as_str().to_uppercase())
    }

    #[test]
    fn every_core_status_maps_to_the_same_number_and_name() {
        for status in Status::ALL {
            let mapped = lic_status::from(status);
            assert_eq!(mapped as u32, status as u32, "{status}");
            assert_eq!(format!("{mapped:?}"), header_name(status));
            assert_eq!(c(lic_status_name(status as u32)), status.as_str());
            assert_eq!(lic_status_is_usable(status as u32), status.is_usable());
            assert_eq!(c(lic_status_message(status as u32)), status.message());
        }
        // Numbers are not dense (reserved values), so "past the end" is after the largest.
        let past_end = Status::ALL.iter().map(|s| *s as u32).max().unwrap_or(0) + 1;
        assert_eq!(c(lic_status_name(past_end)), "unknown");
        assert_eq!(c(lic_status_message(past_end)), "Unknown license status.");
        assert!(!lic_status_is_usable(past_end));
    }

    #[test]
    fn the_header_spells_every_status_with_its_number() {
        let header = include_str!("../../include/licensing.h");
        for status in Status::ALL {
            let line = format!("{} = {},", header_name(status), status as u32);
            assert!(header.contains(&line), "header lacks `{line}`");
        }
    }

    #[test]
    fn every_model_maps_to_the_same_number_and_name() {
        for model in LicenseModel::ALL {
            let mapped = lic_model::from(model);
            assert_eq!(mapped as u32, model as u32);
            assert_eq!(
                format!("{mapped:?}"),
                format!("LIC_MODEL_{}", model.as_str().to_uppercase())
            );
            assert_eq!(c(lic_model_name(model as u32)), model.as_str());
        }
    }
}
