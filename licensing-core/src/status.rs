//! The status vocabulary shared by every boundary (C, Kotlin, Swift, Python, CLI).

use std::ffi::CStr;

use serde::Serialize;

/// The outcome of verifying and evaluating a license. Each value has exactly one meaning.
///
/// The numeric values are stable: the C ABI and the bindings expose them as they are, and a
/// value is never reused. New values are only ever appended. Only valid and valid-in-grace
/// allow the software to run (`is_usable`). The C ABI exports this enum as `lic_status`.
///
/// cbindgen:rename-all=QualifiedScreamingSnakeCase
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
#[serde(rename_all = "snake_case")]
#[repr(u32)]
pub enum Status {
    /// The license may be used.
    Valid = 0,
    /// The license has expired but is inside its grace period: usable, degraded, with time left.
    ValidInGrace = 1,
    /// A subscription (or other expiring license) has expired and its grace period is over.
    Expired = 2,
    /// `nbf` is in the future.
    NotYetValid = 3,
    /// A trial has ended (trials have no grace period).
    TrialExpired = 4,
    /// The signature does not verify under the trusted key: the token is not genuine.
    SignatureInvalid = 5,
    /// The token names a `kid` that is not in the local trust store.
    UnknownKey = 6,
    /// The token is not a well-formed compact JWS of this profile (encoding, JSON, header).
    Malformed = 7,
    /// `alg` is not EdDSA / Ed25519.
    UnsupportedAlgorithm = 8,
    /// A genuine token of another kind (`typ`), e.g. a lease presented as a license.
    WrongTokenType = 9,
    /// A genuine token whose claims violate the license schema.
    InvalidClaims = 10,
    /// The license is for another product (`aud`).
    ProductMismatch = 11,
    /// The running version is not covered (semver requirement or maintenance window).
    VersionNotEntitled = 12,
    /// A requested feature is not in the license.
    FeatureNotEntitled = 13,
    /// A requested feature is in the license but its own expiry has passed.
    FeatureExpired = 14,
    /// The context attributes do not satisfy the site restrictions.
    SiteRestricted = 15,
    /// A node-locked license does not match this machine (or no fingerprint was supplied).
    FingerprintMismatch = 16,
    /// The license forbids virtual machines and containers, and this machine is one.
    VirtualMachineNotAllowed = 17,
    /// The clock is earlier than trusted time seen before (beyond the tolerance), or the
    /// clock-guard state was edited or deleted.
    ClockTampered = 18,
    /// No license is installed (the app should offer activation).
    NoLicense = 19,
    /// The licensing server answered that the license is revoked (for good).
    Revoked = 20,
    /// The licensing server answered that the license is suspended (it may be reinstated).
    Suspended = 21,
    /// The license's server check-in deadline and its check-in grace have passed: the app must
    /// reach the licensing server to get a fresh token.
    CheckInRequired = 22,
    /// A floating license's seat lease has expired (at or after its `exp`) or was released:
    /// the app must check out a seat again.
    LeaseExpired = 23,
    /// A floating license is used without a lease for it: the app must check out a seat.
    LeaseRequired = 24,
    /// The licensing server answered that this machine is not activated on the license (never
    /// activated, deactivated, or removed by an administrator), and the license allows only
    /// activated machines: the app must activate this machine (a free machine slot or a
    /// transfer).
    MachineNotActivated = 25,
}

impl Status {
    /// Every status, in numeric order.
    ///
    /// cbindgen:ignore
    pub const ALL: [Status; 26] = [
        Status::Valid,
        Status::ValidInGrace,
        Status::Expired,
        Status::NotYetValid,
        Status::TrialExpired,
        Status::SignatureInvalid,
        Status::UnknownKey,
        Status::Malformed,
        Status::UnsupportedAlgorithm,
        Status::WrongTokenType,
        Status::InvalidClaims,
        Status::ProductMismatch,
        Status::VersionNotEntitled,
        Status::FeatureNotEntitled,
        Status::FeatureExpired,
        Status::SiteRestricted,
        Status::FingerprintMismatch,
        Status::VirtualMachineNotAllowed,
        Status::ClockTampered,
        Status::NoLicense,
        Status::Revoked,
        Status::Suspended,
        Status::CheckInRequired,
        Status::LeaseExpired,
        Status::LeaseRequired,
        Status::MachineNotActivated,
    ];

    /// Whether the software may run: [`Status::Valid`] or [`Status::ValidInGrace`].
    pub fn is_usable(self) -> bool {
        matches!(self, Status::Valid | Status::ValidInGrace)
    }

    /// The stable snake_case name, as used in JSON and by the CLI.
    pub fn as_str(self) -> &'static str {
        self.name_c().to_str().unwrap_or_default()
    }

    /// [`Self::as_str`] NUL-terminated: the C ABI hands it out as a static C string.
    pub fn name_c(self) -> &'static CStr {
        match self {
            Status::Valid => c"valid",
            Status::ValidInGrace => c"valid_in_grace",
            Status::Expired => c"expired",
            Status::NotYetValid => c"not_yet_valid",
            Status::TrialExpired => c"trial_expired",
            Status::SignatureInvalid => c"signature_invalid",
            Status::UnknownKey => c"unknown_key",
            Status::Malformed => c"malformed",
            Status::UnsupportedAlgorithm => c"unsupported_algorithm",
            Status::WrongTokenType => c"wrong_token_type",
            Status::InvalidClaims => c"invalid_claims",
            Status::ProductMismatch => c"product_mismatch",
            Status::VersionNotEntitled => c"version_not_entitled",
            Status::FeatureNotEntitled => c"feature_not_entitled",
            Status::FeatureExpired => c"feature_expired",
            Status::SiteRestricted => c"site_restricted",
            Status::FingerprintMismatch => c"fingerprint_mismatch",
            Status::VirtualMachineNotAllowed => c"virtual_machine_not_allowed",
            Status::ClockTampered => c"clock_tampered",
            Status::NoLicense => c"no_license",
            Status::Revoked => c"revoked",
            Status::Suspended => c"suspended",
            Status::CheckInRequired => c"check_in_required",
            Status::LeaseExpired => c"lease_expired",
            Status::LeaseRequired => c"lease_required",
            Status::MachineNotActivated => c"machine_not_activated",
        }
    }

    /// A short English sentence for an end user (`"No license is installed."`), the same in
    /// every binding and the CLI; the verdict's reason has the details.
    pub fn message(self) -> &'static str {
        self.message_c().to_str().unwrap_or_default()
    }

    /// [`Self::message`] NUL-terminated: the C ABI hands it out as a static C string.
    pub fn message_c(self) -> &'static CStr {
        match self {
            Status::Valid => c"The license may be used.",
            Status::ValidInGrace => {
                c"The license has expired but is inside its grace period; please renew."
            }
            Status::Expired => c"The license has expired and its grace period is over.",
            Status::NotYetValid => c"The license is not valid yet.",
            Status::TrialExpired => c"The trial period has ended.",
            Status::SignatureInvalid => {
                c"The license is not genuine (its signature does not verify)."
            }
            Status::UnknownKey => c"The license was signed with a key this app does not trust.",
            Status::Malformed => c"The license is damaged or not a license token.",
            Status::UnsupportedAlgorithm => {
                c"The license uses a signature algorithm that is refused."
            }
            Status::WrongTokenType => c"The token is genuine but is not a license.",
            Status::InvalidClaims => c"The license content is invalid.",
            Status::ProductMismatch => c"The license is for another product.",
            Status::VersionNotEntitled => c"The license does not cover this version.",
            Status::FeatureNotEntitled => c"The license does not include a requested feature.",
            Status::FeatureExpired => c"A requested feature of the license has expired.",
            Status::SiteRestricted => c"The license is restricted to another site.",
            Status::FingerprintMismatch => c"The license is bound to another machine.",
            Status::VirtualMachineNotAllowed => {
                c"The license does not allow virtual machines or containers."
            }
            Status::ClockTampered => c"The system clock appears to have been set back.",
            Status::NoLicense => c"No license is installed.",
            Status::Revoked => c"The license has been revoked.",
            Status::Suspended => c"The license is suspended.",
            Status::CheckInRequired => {
                c"The license must be confirmed by the licensing server; please connect to the internet."
            }
            Status::LeaseExpired => c"The seat lease has expired; check out a seat again.",
            Status::LeaseRequired => c"A floating license needs a seat lease; check out a seat.",
            Status::MachineNotActivated => {
                c"This machine is not activated on the license; activate it or transfer the license to it."
            }
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_positions_and_names_are_unique() {
        for (i, status) in Status::ALL.into_iter().enumerate() {
            assert_eq!(status as usize, i, "{status}");
        }
        let mut names: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Status::ALL.len());
    }

    #[test]
    fn every_status_has_its_own_end_user_sentence() {
        let mut messages: Vec<&str> = Status::ALL.iter().map(|s| s.message()).collect();
        for message in &messages {
            assert!(message.ends_with('.'), "{message}");
            assert!(message.starts_with(char::is_uppercase), "{message}");
        }
        messages.sort_unstable();
        messages.dedup();
        assert_eq!(messages.len(), Status::ALL.len());
        assert_eq!(Status::NoLicense.message(), "No license is installed.");
        assert_eq!(
            Status::CheckInRequired.message(),
            "The license must be confirmed by the licensing server; please connect to the internet."
        );
    }

    #[test]
    fn server_statuses_have_their_reserved_numbers_and_are_not_usable() {
        for (status, number, name) in [
            (Status::Revoked, 20, "revoked"),
            (Status::Suspended, 21, "suspended"),
            (Status::CheckInRequired, 22, "check_in_required"),
            (Status::MachineNotActivated, 25, "machine_not_activated"),
        ] {
            assert_eq!(status as u32, number);
            assert_eq!(status.as_str(), name);
            assert_eq!(serde_json::to_value(status).unwrap(), name);
            assert!(!status.is_usable());
        }
    }
}
