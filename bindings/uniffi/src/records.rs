//! Records the core cannot derive for uniffi (a `semver::Version` field, `BTreeMap`s), as plain
//! records here, each converted to and from its core type in exactly one `From`/`TryFrom`.
//! The core's own records and enums (`Verdict`, `FeatureVerdict`, `Check`, `Status`,
//! `LicenseModel`, `Scope`) derive uniffi themselves (feature `uniffi` of licensing-core).

use std::collections::{BTreeMap, HashMap};

use licensing_core::fingerprint as core_fp;

use crate::error::LicensingError;

/// What the running app knows about itself, for one check. The core's `Context`, with the
/// version as a semver string.
#[derive(Debug, Clone, PartialEq, Eq, Default, uniffi::Record)]
pub struct Context {
    /// Now, in seconds since the Unix epoch.
    pub now: i64,
    /// The running app's version (semver, e.g. `2.4.0`), checked against `lic.version.req`.
    #[uniffi(default)]
    pub app_version: Option<String>,
    /// The running app's release date (seconds since the epoch), checked against the
    /// maintenance window.
    #[uniffi(default)]
    pub release_date: Option<i64>,
    /// Features to ask about; the verdict has one answer per feature, in this order.
    #[uniffi(default)]
    pub features: Vec<String>,
    /// Attributes checked against site restrictions (e.g. `country`).
    #[uniffi(default)]
    pub attributes: HashMap<String, String>,
    /// This machine's fingerprint, required by node-locked licenses.
    #[uniffi(default)]
    pub fingerprint: Option<MachineFingerprint>,
    /// Seconds `nbf` may be in the future (clock skew); default 0.
    #[uniffi(default)]
    pub not_before_leeway: i64,
}

impl TryFrom<Context> for licensing_core::Context {
    type Error = LicensingError;

    fn try_from(c: Context) -> Result<Self, LicensingError> {
        Ok(licensing_core::Context {
            now: c.now,
            not_before_leeway: c.not_before_leeway,
            app_version: c.app_version.as_deref().map(parse_version).transpose()?,
            release_date: c.release_date,
            features: c.features,
            attributes: c.attributes.into_iter().collect(),
            fingerprint: c.fingerprint.map(Into::into),
        })
    }
}

/// Parses a host-supplied version by the core's rule (strict semver, nothing trimmed).
pub(crate) fn parse_version(version: &str) -> Result<semver::Version, LicensingError> {
    Ok(licensing_core::parse_version(version)?)
}

/// A machine's fingerprint: the core's `MachineFingerprint`.
#[derive(Debug, Clone, PartialEq, Eq, Default, uniffi::Record)]
pub struct MachineFingerprint {
    /// Combined id over every component hash.
    pub id: String,
    /// Component name → salted SHA-256 (base64url).
    #[uniffi(default)]
    pub components: HashMap<String, String>,
    /// Whether the machine looks like a VM or container.
    #[uniffi(default)]
    pub is_virtual: bool,
    /// The signals behind `is_virtual`.
    #[uniffi(default)]
    pub virtualization: Vec<String>,
}

impl From<core_fp::MachineFingerprint> for MachineFingerprint {
    fn from(f: core_fp::MachineFingerprint) -> Self {
        MachineFingerprint {
            id: f.id,
            components: f.components.into_iter().collect(),
            is_virtual: f.is_virtual,
            virtualization: f.virtualization,
        }
    }
}

impl From<MachineFingerprint> for core_fp::MachineFingerprint {
    fn from(f: MachineFingerprint) -> Self {
        core_fp::MachineFingerprint {
            id: f.id,
            components: f.components.into_iter().collect(),
            is_virtual: f.is_virtual,
            virtualization: f.virtualization,
        }
    }
}

/// Unhashed component values a host collected itself (e.g. on a phone, where the OS
/// components mean little): the core's `RawComponents`. They are hashed in the process and
/// never leave it.
#[derive(Debug, Clone, PartialEq, Eq, Default, uniffi::Record)]
pub struct RawComponents {
    /// Component name (`machine_id`, `hostname`, ... or the host's own) → raw value.
    pub values: HashMap<String, String>,
    /// Why the machine looks virtual, one entry per signal; empty on real hardware.
    #[uniffi(default)]
    pub virtualization: Vec<String>,
}

impl From<RawComponents> for core_fp::RawComponents {
    fn from(r: RawComponents) -> Self {
        core_fp::RawComponents {
            values: r.values.into_iter().collect::<BTreeMap<_, _>>(),
            virtualization: r.virtualization,
        }
    }
}

/// How the startup check is set up; every field is optional.
#[derive(Debug, Clone, PartialEq, Eq, Default, uniffi::Record)]
pub struct LicensingOptions {
    /// The running app's version (semver).
    #[uniffi(default)]
    pub app_version: Option<String>,
    /// The running app's release date (seconds since the epoch).
    #[uniffi(default)]
    pub release_date: Option<i64>,
    /// Features to ask about at each check.
    #[uniffi(default)]
    pub features: Vec<String>,
    /// Attributes checked against site restrictions.
    #[uniffi(default)]
    pub attributes: HashMap<String, String>,
    /// A vendor-supplied fingerprint value (containers, cloud nodes) replacing the hardware
    /// components. Absent: the `LICENSING_FINGERPRINT_OVERRIDE` environment variable, if set.
    #[uniffi(default)]
    pub fingerprint_override: Option<String>,
    /// How far (seconds) the clock may lag trusted time before it counts as rolled back.
    /// Absent: one hour.
    #[uniffi(default)]
    pub clock_tolerance: Option<i64>,
    /// Components the host collected itself, used instead of reading the OS.
    #[uniffi(default)]
    pub components: Option<RawComponents>,
}

impl LicensingOptions {
    /// The core context these options ask about (`now` and the fingerprint are filled in by
    /// each check).
    pub(crate) fn context(&self) -> Result<licensing_core::Context, LicensingError> {
        Context {
            app_version: self.app_version.clone(),
            release_date: self.release_date,
            features: self.features.clone(),
            attributes: self.attributes.clone(),
            ..Context::default()
        }
        .try_into()
    }
}
