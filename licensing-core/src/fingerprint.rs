//! Machine fingerprints, pure part: raw component values in, salted hashes out. Reading the
//! values from the operating system is in `machine.rs` (feature `machine`), behind
//! [`ComponentSource`] so tests and containers can inject them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::b64;
use crate::claims::{BoundFingerprint, MatchPolicy};

/// Component names, as they appear in fingerprints and in a token's `node_lock`.
pub mod component {
    /// OS machine id (Linux: `/var/lib/dbus/machine-id`, else `/etc/machine-id`; macOS:
    /// IOPlatformUUID; Windows: MachineGuid), as the `machine-uid` crate reads it.
    pub const MACHINE_ID: &str = "machine_id";
    /// Host name.
    pub const HOSTNAME: &str = "hostname";
    /// CPU brand and model.
    pub const CPU: &str = "cpu";
    /// Physical MAC addresses, sorted.
    pub const MAC: &str = "mac";
    /// Total memory, rounded to GiB.
    pub const MEMORY: &str = "memory";
    /// Root disk serial / WWID, where readable.
    pub const DISK: &str = "disk";
    /// Operating system family.
    pub const OS: &str = "os";
    /// A vendor-supplied value replacing every other component (containers, cloud nodes).
    pub const OVERRIDE: &str = "override";
}

/// Most components a fingerprint may have, and so the most a match policy may name or require:
/// a licensing server refuses larger fingerprints, and a policy beyond it could never match.
pub const MAX_COMPONENTS: usize = 32;

/// Domain separation for every hash in a fingerprint; bump to re-key all fingerprints.
const DOMAIN: &[u8] = b"licensing fingerprint v1";

/// Unhashed component values read from a machine. Never leaves the process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawComponents {
    /// Component name → raw value. Unreadable components are absent.
    pub values: BTreeMap<String, String>,
    /// Why the machine looks virtual (one entry per signal found); empty on bare metal.
    pub virtualization: Vec<String>,
}

/// Where raw component values come from: the OS in production, fixed values in tests.
pub trait ComponentSource {
    /// Reads the components of this machine.
    fn read(&self) -> RawComponents;
}

/// A machine's fingerprint: a combined id plus salted per-component hashes. It reveals nothing
/// about the machine and differs per product (salt).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineFingerprint {
    /// Combined id over every component hash.
    pub id: String,
    /// Component name → salted SHA-256, base64url.
    #[serde(default)]
    pub components: BTreeMap<String, String>,
    /// Whether the machine looks like a VM or container.
    #[serde(default)]
    pub is_virtual: bool,
    /// The signals behind `is_virtual`, for the verdict and for support.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub virtualization: Vec<String>,
}

impl MachineFingerprint {
    /// Hashes `raw` with `salt` (the product id or a vendor salt).
    pub fn derive(raw: &RawComponents, salt: &str) -> Self {
        let components: BTreeMap<String, String> = raw
            .values
            .iter()
            .map(|(name, value)| (name.clone(), component_hash(salt, name, value)))
            .collect();
        MachineFingerprint {
            id: combined_id(salt, &components),
            components,
            is_virtual: !raw.virtualization.is_empty(),
            virtualization: raw.virtualization.clone(),
        }
    }

    /// Reads the JSON form (as `serde_json` writes this type), strictly: duplicate names and
    /// over-deep nesting refused, errors named.
    pub fn from_json(json: &str) -> Result<Self, String> {
        crate::strict_json::check_object(json.as_bytes())?;
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    /// A fingerprint from a vendor-supplied value alone (containers, cloud nodes): one
    /// component, `override`. Virtualization signals are still reported.
    pub fn from_override(value: &str, salt: &str, virtualization: Vec<String>) -> Self {
        let raw = RawComponents {
            values: BTreeMap::from([(component::OVERRIDE.to_owned(), value.to_owned())]),
            virtualization,
        };
        Self::derive(&raw, salt)
    }
}

fn component_hash(salt: &str, name: &str, value: &str) -> String {
    let mut h = Sha256::new();
    for part in [DOMAIN, salt.as_bytes(), name.as_bytes(), value.as_bytes()] {
        // Length-prefixed so no two (salt, name, value) triples hash the same input.
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    b64::encode(&h.finalize())
}

fn combined_id(salt: &str, components: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update((salt.len() as u64).to_be_bytes());
    h.update(salt.as_bytes());
    for (name, hash) in components {
        h.update((name.len() as u64).to_be_bytes());
        h.update(name.as_bytes());
        h.update(hash.as_bytes());
    }
    b64::encode(&h.finalize())
}

/// A fingerprint as [`matches`](fn@matches) compares it: the combined id and the component hashes, borrowed
/// from a [`MachineFingerprint`] (presented or stored) or a token's [`BoundFingerprint`].
#[derive(Debug, Clone, Copy)]
pub struct FingerprintRef<'a> {
    /// The combined id.
    pub id: &'a str,
    /// Component name → salted hash.
    pub components: &'a BTreeMap<String, String>,
}

impl<'a> From<&'a MachineFingerprint> for FingerprintRef<'a> {
    fn from(fp: &'a MachineFingerprint) -> Self {
        FingerprintRef {
            id: &fp.id,
            components: &fp.components,
        }
    }
}

impl<'a> From<&'a BoundFingerprint> for FingerprintRef<'a> {
    fn from(fp: &'a BoundFingerprint) -> Self {
        FingerprintRef {
            id: &fp.id,
            components: &fp.components,
        }
    }
}

/// How a presented fingerprint compares with a stored one: see [`matches`](fn@matches).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchOutcome {
    /// The same machine, nothing changed: the combined ids are equal, or (under a match
    /// policy) every stored component has the same hash.
    Exact,
    /// The same machine within the policy's tolerance: these stored components changed (or
    /// are missing), by name.
    Tolerated {
        /// The changed components, in name order.
        changed: Vec<String>,
    },
    /// Another machine.
    Different {
        /// The stored components that changed or are missing, in name order (empty without a
        /// match policy, where only the combined id is compared).
        changed: Vec<String>,
        /// How many stored components have the same hash.
        matching: usize,
    },
}

impl MatchOutcome {
    /// Whether the presented fingerprint is the stored machine ([`MatchOutcome::Exact`] or
    /// [`MatchOutcome::Tolerated`]).
    pub fn is_match(&self) -> bool {
        !matches!(self, MatchOutcome::Different { .. })
    }
}

/// The one machine-match rule (k of n), used by license evaluation and by a licensing server
/// to find a license's machine. Without a policy the combined ids must be equal. With one,
/// every component in `policy.required` must have the stored hash, and at least
/// `policy.min_matching` of the stored components (required ones included) must have it; the
/// combined id is not compared (it changes with any one component).
pub fn matches<'a, 'b>(
    policy: Option<&MatchPolicy>,
    stored: impl Into<FingerprintRef<'a>>,
    presented: impl Into<FingerprintRef<'b>>,
) -> MatchOutcome {
    let (stored, presented) = (stored.into(), presented.into());
    let Some(policy) = policy else {
        return if stored.id == presented.id {
            MatchOutcome::Exact
        } else {
            MatchOutcome::Different {
                changed: Vec::new(),
                matching: 0,
            }
        };
    };
    let changed: Vec<String> = stored
        .components
        .iter()
        .filter(|(name, hash)| presented.components.get(*name) != Some(*hash))
        .map(|(name, _)| name.clone())
        .collect();
    let matching = stored.components.len() - changed.len();
    let required_ok = policy.required.iter().all(|r| !changed.contains(r));
    if required_ok && matching >= policy.min_matching as usize {
        if changed.is_empty() {
            MatchOutcome::Exact
        } else {
            MatchOutcome::Tolerated { changed }
        }
    } else {
        MatchOutcome::Different { changed, matching }
    }
}

/// Fixed component values: for tests, and for hosts that collect components themselves.
#[derive(Debug, Clone, Default)]
pub struct FixedComponents(pub RawComponents);

impl ComponentSource for FixedComponents {
    fn read(&self) -> RawComponents {
        self.0.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[(&str, &str)]) -> RawComponents {
        RawComponents {
            values: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            virtualization: vec![],
        }
    }

    #[test]
    fn unknown_members_are_refused() {
        let fp = MachineFingerprint::derive(&raw(&[("machine_id", "abc")]), "p");
        let json = serde_json::to_string(&fp).unwrap();
        assert_eq!(MachineFingerprint::from_json(&json).unwrap(), fp);
        let extra = json.replacen('{', r#"{"colour":"red","#, 1);
        let e = MachineFingerprint::from_json(&extra).unwrap_err();
        assert!(e.contains("unknown field `colour`"), "{e}");
    }

    #[test]
    fn stable_salted_and_component_wise() {
        let a = raw(&[("machine_id", "abc"), ("hostname", "h1")]);
        let fp1 = MachineFingerprint::derive(&a, "com.example.cad");
        assert_eq!(fp1, MachineFingerprint::derive(&a, "com.example.cad"));
        let other_product = MachineFingerprint::derive(&a, "com.example.viewer");
        assert_ne!(fp1.id, other_product.id);
        assert_ne!(
            fp1.components["machine_id"],
            other_product.components["machine_id"]
        );
        let renamed = raw(&[("machine_id", "abc"), ("hostname", "h2")]);
        let fp2 = MachineFingerprint::derive(&renamed, "com.example.cad");
        assert_ne!(fp1.id, fp2.id);
        assert_eq!(fp1.components["machine_id"], fp2.components["machine_id"]);
        assert_ne!(fp1.components["hostname"], fp2.components["hostname"]);
        // Nothing of the raw value shows.
        assert!(!fp1.components["hostname"].contains("h1"));
    }

    fn policy(required: &[&str], min_matching: u32) -> MatchPolicy {
        MatchPolicy {
            required: required.iter().map(|r| r.to_string()).collect(),
            min_matching,
        }
    }

    #[test]
    fn matches_within_and_beyond_tolerance() {
        let salt = "com.example.cad";
        let a = MachineFingerprint::derive(
            &raw(&[("machine_id", "m"), ("hostname", "h"), ("cpu", "c")]),
            salt,
        );
        let new_host = MachineFingerprint::derive(
            &raw(&[("machine_id", "m"), ("hostname", "h2"), ("cpu", "c")]),
            salt,
        );
        let new_id = MachineFingerprint::derive(
            &raw(&[("machine_id", "m2"), ("hostname", "h"), ("cpu", "c")]),
            salt,
        );
        let two_changed = MachineFingerprint::derive(
            &raw(&[("machine_id", "m"), ("hostname", "h2"), ("cpu", "c2")]),
            salt,
        );
        let p = policy(&["machine_id"], 2);
        assert_eq!(matches(Some(&p), &a, &a), MatchOutcome::Exact);
        assert_eq!(
            matches(Some(&p), &a, &new_host),
            MatchOutcome::Tolerated {
                changed: vec!["hostname".into()]
            }
        );
        // A required component changed: another machine, whatever else matches.
        assert!(!matches(Some(&p), &a, &new_id).is_match());
        assert_eq!(
            matches(Some(&p), &a, &two_changed),
            MatchOutcome::Different {
                changed: vec!["cpu".into(), "hostname".into()],
                matching: 1
            }
        );
        // Without a policy only the combined id counts.
        assert_eq!(matches(None, &a, &a.clone()), MatchOutcome::Exact);
        assert!(!matches(None, &a, &new_host).is_match());
    }

    #[test]
    fn no_ambiguity_between_name_and_value() {
        let a = MachineFingerprint::derive(&raw(&[("ab", "c")]), "s");
        let b = MachineFingerprint::derive(&raw(&[("a", "bc")]), "s");
        assert_ne!(a.id, b.id);
    }
}
