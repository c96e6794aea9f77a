//! The license claims model: standard JWT claims plus one `lic` object. See `docs/FORMAT.md`.

use std::collections::BTreeMap;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

/// Latest instant a claim may name (9999-12-31T23:59:59Z): keeps time arithmetic in range.
pub const MAX_TIMESTAMP: i64 = 253_402_300_799;

/// The claims of a `license+jwt` token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct LicenseClaims {
    /// Issuer: who signed the license (the vendor or its licensing server).
    pub iss: String,
    /// Subject: the license id.
    pub sub: String,
    /// Audience: the product id(s) the license is for.
    pub aud: Audience,
    /// Issued at (seconds since the Unix epoch).
    pub iat: i64,
    /// Not valid before (seconds since the Unix epoch).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub nbf: Option<i64>,
    /// Expiry (seconds since the Unix epoch); absent for licenses that never expire.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub exp: Option<i64>,
    /// Unique token id.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub jti: Option<String>,
    /// The licensing claims.
    pub lic: Licensing,
}

/// `aud`: one product id or several (RFC 7519 allows both forms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Audience {
    /// A single product id.
    One(String),
    /// Several product ids.
    Many(Vec<String>),
}

impl Audience {
    /// The product ids as a slice.
    pub fn as_slice(&self) -> &[String] {
        match self {
            Audience::One(one) => std::slice::from_ref(one),
            Audience::Many(many) => many,
        }
    }

    /// Whether `product_id` is one of them.
    pub fn contains(&self, product_id: &str) -> bool {
        self.as_slice().iter().any(|a| a == product_id)
    }
}

// A string or an array of strings, read directly: serde's untagged derive would buffer the
// value first and then try each form on the buffer (a measurable share of every verification).
impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct AudienceVisitor;
        impl<'de> Visitor<'de> for AudienceVisitor {
            type Value = Audience;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a product id or an array of product ids")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Audience, E> {
                Ok(Audience::One(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Audience, E> {
                Ok(Audience::One(v))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Audience, A::Error> {
                let mut many = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(16));
                while let Some(one) = seq.next_element::<String>()? {
                    many.push(one);
                }
                Ok(Audience::Many(many))
            }
        }
        d.deserialize_any(AudienceVisitor)
    }
}

/// How the license is sold and therefore how it is evaluated. The numbers are stable (the C
/// ABI exports this enum as `lic_model`).
///
/// cbindgen:rename-all=QualifiedScreamingSnakeCase
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
#[serde(rename_all = "snake_case")]
#[repr(u32)]
pub enum LicenseModel {
    /// Never expires; versions gated by the maintenance window.
    Perpetual = 0,
    /// Valid until `exp`, then a grace period.
    Subscription = 1,
    /// Valid until `exp`; no grace.
    Trial = 2,
    /// Concurrent use: a pool of `seats` shared through leases.
    Floating = 3,
    /// Bound to one or more machine fingerprints.
    NodeLocked = 4,
    /// Bound to a site: attributes of the running context must satisfy restrictions.
    Site = 5,
}

impl LicenseModel {
    /// Every model.
    ///
    /// cbindgen:ignore
    pub const ALL: [LicenseModel; 6] = [
        LicenseModel::Perpetual,
        LicenseModel::Subscription,
        LicenseModel::Trial,
        LicenseModel::Floating,
        LicenseModel::NodeLocked,
        LicenseModel::Site,
    ];

    /// The model named `name` (snake_case), if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == name)
    }

    /// The snake_case name used in tokens.
    pub fn as_str(self) -> &'static str {
        match self {
            LicenseModel::Perpetual => "perpetual",
            LicenseModel::Subscription => "subscription",
            LicenseModel::Trial => "trial",
            LicenseModel::Floating => "floating",
            LicenseModel::NodeLocked => "node_locked",
            LicenseModel::Site => "site",
        }
    }
}

// A model is a JSON string and nothing else (serde's enum support would also take
// `{"perpetual": null}`).
impl<'de> Deserialize<'de> for LicenseModel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        LicenseModel::from_name(&name).ok_or_else(|| {
            de::Error::unknown_variant(
                &name,
                &[
                    "perpetual",
                    "subscription",
                    "trial",
                    "floating",
                    "node_locked",
                    "site",
                ],
            )
        })
    }
}

/// The `lic` object: everything licensing-specific.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
#[serde(deny_unknown_fields)]
pub struct Licensing {
    /// The license model.
    pub model: LicenseModel,
    /// Who the license was sold to.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub customer: Option<Customer>,
    /// Concurrent seats (floating licenses).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub seats: Option<u32>,
    /// Machines that may be activated.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_machines: Option<u32>,
    /// Seconds after `exp` during which the license stays usable, degraded.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub grace_period: Option<u64>,
    /// Entitled features by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub features: BTreeMap<String, Feature>,
    /// Which versions of the product may run.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub version: Option<VersionRule>,
    /// Machine binding (node-locked licenses).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub node_lock: Option<NodeLock>,
    /// Site restrictions.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub site: Option<Site>,
    /// Free-form vendor data, not interpreted.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// The deadline by which the licensing server must confirm the license again.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub check_in: Option<CheckIn>,
}

/// Server check-in: the license must be confirmed by the licensing server (a fresh token) by
/// `until`; after that it stays usable, degraded, for `grace` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self")]
#[serde(deny_unknown_fields)]
pub struct CheckIn {
    /// Check-in deadline (seconds since the Unix epoch).
    pub until: i64,
    /// Seconds after `until` during which the license stays usable, as valid in grace.
    pub grace: u64,
}

impl CheckIn {
    /// The last instant the license is usable without a check-in: `until + grace`.
    pub fn deadline(&self) -> i64 {
        self.until
            .saturating_add(i64::try_from(self.grace).unwrap_or(i64::MAX))
    }
}

/// The licensee.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self")]
#[serde(deny_unknown_fields)]
pub struct Customer {
    /// Customer id in the vendor's systems.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub id: Option<String>,
    /// Display name.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub name: Option<String>,
    /// Contact e-mail.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub email: Option<String>,
}

/// One entitled feature.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(remote = "Self")]
#[serde(deny_unknown_fields)]
pub struct Feature {
    /// The feature's own expiry (seconds since the Unix epoch).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub exp: Option<i64>,
    /// A numeric limit the app enforces (e.g. max users, max exports per day).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub limit: Option<u64>,
}

/// Version entitlement: a semver requirement and/or a maintenance window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self")]
#[serde(deny_unknown_fields)]
pub struct VersionRule {
    /// Semver requirement the running version must satisfy, e.g. `>=2.0.0, <3.0.0`.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub req: Option<semver::VersionReq>,
    /// Versions released at or before this instant are entitled (seconds since the Unix epoch).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub maintenance_until: Option<i64>,
}

/// Machine binding: the fingerprints a node-locked license may run on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self")]
#[serde(deny_unknown_fields)]
pub struct NodeLock {
    /// Bound machines.
    pub fingerprints: Vec<BoundFingerprint>,
    /// How a machine is matched; absent means the combined id must match exactly.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none",
        rename = "match"
    )]
    pub match_policy: Option<MatchPolicy>,
    /// Whether virtual machines and containers may run the license (default: yes).
    #[serde(default = "default_true")]
    pub allow_virtual: bool,
}

fn default_true() -> bool {
    true
}

/// A machine's fingerprint as bound in a token: the combined id plus per-component hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self")]
#[serde(deny_unknown_fields)]
pub struct BoundFingerprint {
    /// Combined fingerprint id.
    pub id: String,
    /// Salted hash per component name (`machine_id`, `hostname`, `cpu`, `mac`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub components: BTreeMap<String, String>,
}

/// k-of-n matching: these components must match, and at least `min_matching` in all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self")]
#[serde(deny_unknown_fields)]
pub struct MatchPolicy {
    /// Components that must all match.
    #[serde(default)]
    pub required: Vec<String>,
    /// Minimum number of matching components (required ones included).
    pub min_matching: u32,
}

/// Site restrictions: each named attribute of the running context must have one of the values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self")]
#[serde(deny_unknown_fields)]
pub struct Site {
    /// Display name of the site.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub name: Option<String>,
    /// Attribute name → allowed values (exact, case-sensitive).
    #[serde(default)]
    pub restrictions: BTreeMap<String, Vec<String>>,
}

/// An optional claim that, when present, must not be `null`.
pub(crate) fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// Derived struct deserializers also accept a JSON array (fields by position). These types are
/// JSON objects only: the derive is kept as an inherent function (`remote = "Self"`) and the
/// trait impls below accept nothing but a map.
macro_rules! json_object {
    ($($t:ident),* $(,)?) => {$(
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                $t::serialize(self, s)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct ObjectOnly;
                impl<'de> Visitor<'de> for ObjectOnly {
                    type Value = $t;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("a JSON object")
                    }
                    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<$t, A::Error> {
                        $t::deserialize(de::value::MapAccessDeserializer::new(map))
                    }
                }
                d.deserialize_map(ObjectOnly)
            }
        }
    )*};
}

pub(crate) use json_object;

json_object!(
    LicenseClaims,
    Licensing,
    Customer,
    Feature,
    VersionRule,
    NodeLock,
    BoundFingerprint,
    MatchPolicy,
    Site,
    CheckIn,
);

impl LicenseClaims {
    /// Parses and validates a verified token's payload in one strict pass
    /// ([`crate::strict_json::from_slice`]). A payload that pass refuses goes the long way, the
    /// strict pre-pass and then [`Self::from_json`], which accept it or name the problem.
    pub(crate) fn from_payload(payload: &[u8]) -> Result<Self, Error> {
        let claims: LicenseClaims = match crate::strict_json::from_slice(payload) {
            Ok(claims) => claims,
            Err(_) => {
                crate::jws::check_payload(payload)?;
                return Self::from_json(payload);
            }
        };
        claims.validate()?;
        Ok(claims)
    }

    /// Parses and validates a payload that already passed the strict JSON pre-pass.
    pub(crate) fn from_json(payload: &[u8]) -> Result<Self, Error> {
        // Genuine tokens parse on the fast path; only a refused one is parsed again with path
        // tracking, to name the offending claim (path tracking costs ~2x on every parse).
        let claims: LicenseClaims = match serde_json::from_slice(payload) {
            Ok(claims) => claims,
            Err(_) => {
                let de = &mut serde_json::Deserializer::from_slice(payload);
                serde_path_to_error::deserialize(de).map_err(path_error)?
            }
        };
        claims.validate()?;
        Ok(claims)
    }

    /// Builds and validates claims from a JSON object (e.g. a vendor's claims file parsed with
    /// [`crate::strict_json::parse_object`]). Errors name the offending field.
    pub fn from_object(object: serde_json::Map<String, serde_json::Value>) -> Result<Self, Error> {
        let object = serde_json::Value::Object(object);
        // Valid claims are read once; refused ones again, tracking the path to name the field.
        let claims = match LicenseClaims::deserialize(&object) {
            Ok(claims) => claims,
            Err(_) => serde_path_to_error::deserialize(object).map_err(path_error)?,
        };
        claims.validate()?;
        Ok(claims)
    }

    /// Checks the rules the JSON types cannot express. Issuers run it before signing and
    /// verifiers after, so a token that breaks them is never valid.
    pub fn validate(&self) -> Result<(), Error> {
        self.validate_binding(true)
    }

    /// [`Self::validate`] for claims that may bind no machine yet: an issuer's template of a
    /// node-locked license, whose `lic.node_lock.fingerprints` is filled in when machines are
    /// activated. Every other rule is checked, and the match rule must be one a machine can
    /// meet (`min_matching` at least 1); bound fingerprints, if any, are checked as usual.
    pub fn validate_unbound(&self) -> Result<(), Error> {
        self.validate_binding(false)
    }

    fn validate_binding(&self, bound: bool) -> Result<(), Error> {
        non_empty("iss", &self.iss)?;
        non_empty("sub", &self.sub)?;
        if self.aud.as_slice().is_empty() {
            return Err(Error::claim("aud", "must name at least one product"));
        }
        for aud in self.aud.as_slice() {
            non_empty("aud", aud)?;
        }
        timestamp("iat", Some(self.iat))?;
        timestamp("nbf", self.nbf)?;
        timestamp("exp", self.exp)?;
        if let (Some(nbf), Some(exp)) = (self.nbf, self.exp)
            && exp <= nbf
        {
            return Err(Error::claim("exp", "must be later than nbf"));
        }
        let lic = &self.lic;
        if let Some(grace) = lic.grace_period
            && grace > (MAX_TIMESTAMP as u64)
        {
            return Err(Error::claim("lic.grace_period", "out of range"));
        }
        match lic.model {
            LicenseModel::Perpetual if self.exp.is_some() => {
                return Err(Error::claim("exp", "a perpetual license never expires"));
            }
            LicenseModel::Subscription | LicenseModel::Trial if self.exp.is_none() => {
                return Err(Error::claim(
                    "exp",
                    format!("required for a {} license", lic.model.as_str()),
                ));
            }
            LicenseModel::Trial if lic.grace_period.unwrap_or(0) > 0 => {
                return Err(Error::claim(
                    "lic.grace_period",
                    "a trial has no grace period",
                ));
            }
            LicenseModel::Floating if lic.seats.unwrap_or(0) == 0 => {
                return Err(Error::claim(
                    "lic.seats",
                    "a floating license needs seats >= 1",
                ));
            }
            LicenseModel::NodeLocked if lic.node_lock.is_none() => {
                return Err(Error::claim(
                    "lic.node_lock",
                    "required for a node_locked license",
                ));
            }
            LicenseModel::Site if lic.site.is_none() => {
                return Err(Error::claim("lic.site", "required for a site license"));
            }
            _ => {}
        }
        if self.exp.is_none() && lic.grace_period.unwrap_or(0) > 0 {
            return Err(Error::claim("lic.grace_period", "needs exp to start from"));
        }
        for (name, feature) in &lic.features {
            if name.is_empty() {
                return Err(Error::claim(
                    "lic.features",
                    "feature names must not be empty",
                ));
            }
            // The field name is only built for an out-of-range value: formatting it for every
            // feature of every verification cost more than the check itself.
            if feature
                .exp
                .is_some_and(|t| !(0..=MAX_TIMESTAMP).contains(&t))
            {
                timestamp(&format!("lic.features.{name}.exp"), feature.exp)?;
            }
        }
        if let Some(version) = &lic.version {
            if version.req.is_none() && version.maintenance_until.is_none() {
                return Err(Error::claim(
                    "lic.version",
                    "needs `req` and/or `maintenance_until`",
                ));
            }
            timestamp("lic.version.maintenance_until", version.maintenance_until)?;
        }
        if let Some(lock) = &lic.node_lock {
            lock.validate(bound)?;
        }
        if let Some(check_in) = &lic.check_in {
            timestamp("lic.check_in.until", Some(check_in.until))?;
            // Bounded like `grace_period`, so `until + grace` stays far from overflowing.
            if check_in.grace > (MAX_TIMESTAMP as u64) {
                return Err(Error::claim("lic.check_in.grace", "out of range"));
            }
        }
        if let Some(site) = &lic.site {
            if site.restrictions.is_empty() {
                return Err(Error::claim(
                    "lic.site.restrictions",
                    "must restrict at least one attribute",
                ));
            }
            for (attribute, allowed) in &site.restrictions {
                if allowed.is_empty() {
                    return Err(Error::claim(
                        format!("lic.site.restrictions.{attribute}"),
                        "must allow at least one value",
                    ));
                }
            }
        }
        Ok(())
    }

    /// The rule of a license a vendor authors and issues now, beside
    /// [`validate_new`](Self::validate_new): it is issued before it expires (`iat` earlier than
    /// `exp`). Not part of `validate`: a server re-signs a license in its grace period, with
    /// `iat` after `exp`; nor of `validate_new`: a server may create a license that has expired
    /// already (an import, a test of expiry).
    pub fn check_issued_before_expiry(&self) -> Result<(), Error> {
        if let Some(exp) = self.exp
            && self.iat >= exp
        {
            return Err(Error::claim(
                "iat",
                "must be earlier than exp (the license would be expired when issued)",
            ));
        }
        Ok(())
    }
}

/// Whether `c` may not appear in text a license carries: control characters (C0 such as NUL,
/// ESC and newlines, DEL, C1) and the bidirectional overrides and isolates (U+202A..=U+202E,
/// U+2066..=U+2069), which make a printed name read differently from what it is.
pub fn is_unsafe_text_char(c: char) -> bool {
    c.is_control()
        || ('\u{202A}'..='\u{202E}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// The most characters of a display name ([`is_display_name`]).
pub const MAX_DISPLAY_NAME_CHARS: usize = 200;

/// Whether `value` is a display name the server takes (a product, policy, organization or
/// API-token name or label, the user of a floating seat, an activation or validation): 1 to
/// [`MAX_DISPLAY_NAME_CHARS`] characters, not only white space, without an
/// [`is_unsafe_text_char`] character. The one rule of the server's `DisplayName` and the
/// online client's `Client::set_user`.
pub fn is_display_name(value: &str) -> bool {
    !value.trim().is_empty()
        && value.chars().count() <= MAX_DISPLAY_NAME_CHARS
        && !value.chars().any(is_unsafe_text_char)
}

/// Refuses text with an [`is_unsafe_text_char`] character, naming `field`.
pub fn check_text(field: &str, value: &str) -> Result<(), Error> {
    match value.chars().find(|c| is_unsafe_text_char(*c)) {
        Some(c) => Err(Error::claim(
            field,
            format!(
                "contains U+{:04X}: control characters and bidirectional overrides are not allowed",
                u32::from(c)
            ),
        )),
        None => Ok(()),
    }
}

/// [`check_text`] on every string in a JSON value: object member names and string values, at
/// any depth (`field` and its paths name the place).
fn check_json_text(field: &str, value: &serde_json::Value) -> Result<(), Error> {
    match value {
        serde_json::Value::String(text) => check_text(field, text),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| check_json_text(&format!("{field}[{i}]"), item)),
        serde_json::Value::Object(members) => members.iter().try_for_each(|(name, item)| {
            check_text(field, name)?;
            check_json_text(&format!("{field}.{name}"), item)
        }),
        _ => Ok(()),
    }
}

impl LicenseClaims {
    /// [`LicenseClaims::validate`] plus the rules for claims about to be signed for the first
    /// time (`license issue`, a server creating a policy or a license). Verifiers do not apply
    /// these, so tokens issued before them keep verifying:
    /// - text (`iss`, `sub`, `aud`, the customer, feature names, the site, metadata names and
    ///   strings) without control characters or bidirectional overrides ([`check_text`]);
    /// - a node-locked license allows at least one machine (`lic.max_machines` >= 1);
    /// - a perpetual license has no `lic.seats`.
    pub fn validate_new(&self) -> Result<(), Error> {
        self.validate_new_binding(true)
    }

    /// [`Self::validate_new`] for an issuer's template that may bind no machine yet (see
    /// [`Self::validate_unbound`]).
    pub fn validate_new_unbound(&self) -> Result<(), Error> {
        self.validate_new_binding(false)
    }

    fn validate_new_binding(&self, bound: bool) -> Result<(), Error> {
        self.validate_binding(bound)?;
        check_text("iss", &self.iss)?;
        check_text("sub", &self.sub)?;
        for aud in self.aud.as_slice() {
            check_text("aud", aud)?;
        }
        let lic = &self.lic;
        if let Some(customer) = &lic.customer {
            for (field, value) in [
                ("lic.customer.id", &customer.id),
                ("lic.customer.name", &customer.name),
                ("lic.customer.email", &customer.email),
            ] {
                if let Some(value) = value {
                    check_text(field, value)?;
                }
            }
        }
        for name in lic.features.keys() {
            check_text("lic.features", name)?;
        }
        if let Some(site) = &lic.site {
            if let Some(name) = &site.name {
                check_text("lic.site.name", name)?;
            }
            for (attribute, allowed) in &site.restrictions {
                check_text("lic.site.restrictions", attribute)?;
                for value in allowed {
                    check_text(&format!("lic.site.restrictions.{attribute}"), value)?;
                }
            }
        }
        if let Some(metadata) = &lic.metadata {
            for (name, value) in metadata {
                check_text("lic.metadata", name)?;
                check_json_text(&format!("lic.metadata.{name}"), value)?;
            }
        }
        if lic.model == LicenseModel::NodeLocked && lic.max_machines == Some(0) {
            return Err(Error::claim(
                "lic.max_machines",
                "a node_locked license needs max_machines >= 1",
            ));
        }
        if lic.model == LicenseModel::Perpetual && lic.seats.is_some() {
            return Err(Error::claim(
                "lic.seats",
                "a perpetual license has no seats (a floating one does)",
            ));
        }
        Ok(())
    }
}

impl NodeLock {
    /// `bound`: the claims must bind at least one machine (a token, not a template).
    fn validate(&self, bound: bool) -> Result<(), Error> {
        use crate::fingerprint::MAX_COMPONENTS;
        if let Some(policy) = &self.match_policy {
            if policy.min_matching as usize > MAX_COMPONENTS {
                return Err(Error::claim(
                    "lic.node_lock.match.min_matching",
                    format!(
                        "must be at most {MAX_COMPONENTS}, the most components a fingerprint has"
                    ),
                ));
            }
            if policy.required.len() > MAX_COMPONENTS {
                return Err(Error::claim(
                    "lic.node_lock.match.required",
                    format!(
                        "names more than {MAX_COMPONENTS} components, the most a fingerprint has"
                    ),
                ));
            }
        }
        if self.fingerprints.is_empty() {
            if !bound {
                return match &self.match_policy {
                    Some(policy) if policy.min_matching == 0 => Err(Error::claim(
                        "lic.node_lock.match.min_matching",
                        "must be at least 1",
                    )),
                    _ => Ok(()),
                };
            }
            return Err(Error::claim(
                "lic.node_lock.fingerprints",
                "must bind at least one machine",
            ));
        }
        for (i, fp) in self.fingerprints.iter().enumerate() {
            non_empty(&format!("lic.node_lock.fingerprints[{i}].id"), &fp.id)?;
            if let Some(policy) = &self.match_policy {
                let n = fp.components.len();
                if policy.min_matching == 0 || policy.min_matching as usize > n {
                    return Err(Error::claim(
                        "lic.node_lock.match.min_matching",
                        format!("must be between 1 and the {n} bound components"),
                    ));
                }
                if let Some(missing) = policy
                    .required
                    .iter()
                    .find(|r| !fp.components.contains_key(*r))
                {
                    return Err(Error::claim(
                        "lic.node_lock.match.required",
                        format!("component `{missing}` is not bound in fingerprint {i}"),
                    ));
                }
            }
        }
        Ok(())
    }
}

pub(crate) fn path_error(e: serde_path_to_error::Error<serde_json::Error>) -> Error {
    let path = e.path().to_string();
    Error::claim(path, e.into_inner().to_string())
}

pub(crate) fn non_empty(field: &str, value: &str) -> Result<(), Error> {
    if value.is_empty() {
        Err(Error::claim(field, "must not be empty"))
    } else {
        Ok(())
    }
}

pub(crate) fn timestamp(field: &str, value: Option<i64>) -> Result<(), Error> {
    match value {
        Some(t) if !(0..=MAX_TIMESTAMP).contains(&t) => Err(Error::claim(
            field,
            format!("{t} is outside 0..={MAX_TIMESTAMP} seconds since the epoch"),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Genuine claims of every shape take the one strict pass (the verifier's fast path), with
    /// the value the plain parse gives; a repeated name anywhere sends them to the two passes.
    #[test]
    fn every_claim_shape_is_read_in_one_pass() {
        let full = serde_json::json!({
            "iss": "https://i", "sub": "s", "aud": ["p", "q"], "iat": 1, "nbf": 1, "exp": 9,
            "jti": "j", "x-vendor": {"nested": [{"a": 1}, {"a": 2}], "b": null},
            "lic": {
                "model": "node_locked", "seats": 2, "max_machines": 3, "grace_period": 4,
                "customer": {"id": "c", "name": "Né", "email": "e@x"},
                "features": {"a": {}, "b": {"limit": 5, "exp": 6}},
                "version": {"req": ">=2.0.0, <3.0.0", "maintenance_until": 7},
                "node_lock": {
                    "fingerprints": [{"id": "f", "components": {"cpu": "h1", "disk": "h2"}}],
                    "match": {"required": ["cpu"], "min_matching": 1},
                    "allow_virtual": false
                },
                "site": {"name": "s", "restrictions": {"country": ["DE", "FR"]}},
                "metadata": {"k": [1, {"deep": {"er": true}}], "k2": "v"},
                "check_in": {"until": 8, "grace": 9}
            }
        })
        .to_string();
        let one: LicenseClaims = crate::strict_json::from_slice(full.as_bytes())
            .unwrap_or_else(|e| panic!("one pass refused genuine claims: {e}"));
        let plain: LicenseClaims = serde_json::from_str(&full).expect("plain");
        assert_eq!(one, plain);
        for repeated in [
            full.replacen(r#""jti":"j""#, r#""jti":"j","jti":"j""#, 1),
            full.replacen(r#""b":null"#, r#""b":null,"b":null"#, 1),
            full.replacen(r#""er":true"#, r#""er":true,"er":true"#, 1),
            full.replacen(r#""DE","FR"]"#, r#""DE","FR"],"country":[]"#, 1),
        ] {
            assert_ne!(repeated, full);
            assert!(crate::strict_json::from_slice::<LicenseClaims>(repeated.as_bytes()).is_err());
            assert!(LicenseClaims::from_payload(repeated.as_bytes()).is_err());
        }
        let lease = serde_json::json!({
            "iss": "i", "sub": "s", "aud": "p", "iat": 1, "exp": 2, "jti": "j",
            "license_id": "l", "client_id": "c", "user": "u", "epoch": 3, "borrowed": true
        })
        .to_string();
        let one: crate::lease::LeaseClaims = crate::strict_json::from_slice(lease.as_bytes())
            .unwrap_or_else(|e| panic!("one pass refused genuine lease claims: {e}"));
        assert_eq!(one, serde_json::from_str(&lease).expect("plain"));
    }

    fn claims(lic: serde_json::Value) -> LicenseClaims {
        let object =
            serde_json::json!({ "iss": "i", "sub": "s", "aud": "p", "iat": 1, "lic": lic });
        match object {
            serde_json::Value::Object(map) => LicenseClaims::from_object(map).unwrap(),
            _ => unreachable!(),
        }
    }

    fn field_of(e: Error) -> String {
        match e {
            Error::InvalidClaims { field, .. } => field,
            other => panic!("{other}"),
        }
    }

    #[test]
    fn new_claims_refuse_control_and_bidi_characters_old_ones_still_validate() {
        for bad in [
            "a\u{0}b",
            "a\u{1b}[2Jb",
            "a\nb",
            "a\u{7f}",
            "a\u{85}",
            "\u{202E}ab",
            "a\u{2069}",
        ] {
            for (lic, field) in [
                (
                    serde_json::json!({ "model": "perpetual", "customer": { "name": bad } }),
                    "lic.customer.name",
                ),
                (
                    serde_json::json!({ "model": "perpetual", "customer": { "email": bad } }),
                    "lic.customer.email",
                ),
                (
                    serde_json::json!({ "model": "perpetual", "metadata": { "k": [1, { "x": bad }] } }),
                    "lic.metadata.k[1].x",
                ),
                (
                    serde_json::json!({ "model": "perpetual", "features": { bad: {} } }),
                    "lic.features",
                ),
                (
                    serde_json::json!({ "model": "site", "site": { "restrictions": { "domain": [bad] } } }),
                    "lic.site.restrictions.domain",
                ),
            ] {
                let c = claims(lic);
                // Already-signed tokens keep verifying: only new claims are refused.
                c.validate().unwrap();
                assert_eq!(field_of(c.validate_new().unwrap_err()), field, "{bad:?}");
            }
        }
        claims(serde_json::json!({ "model": "perpetual",
            "customer": { "name": "Ærø 東京 שלום \u{200D}" }, "metadata": { "tab": "a b" } }))
        .validate_new()
        .unwrap();
    }

    #[test]
    fn new_claims_refuse_counts_that_make_no_sense() {
        let lock = serde_json::json!({ "fingerprints": [{ "id": "m" }] });
        let c = claims(
            serde_json::json!({ "model": "node_locked", "max_machines": 0, "node_lock": lock }),
        );
        assert_eq!(field_of(c.validate_new().unwrap_err()), "lic.max_machines");
        let c = claims(serde_json::json!({ "model": "perpetual", "seats": 3 }));
        assert_eq!(field_of(c.validate_new().unwrap_err()), "lic.seats");
        claims(serde_json::json!({ "model": "floating", "seats": 3 }))
            .validate_new()
            .unwrap();
        claims(serde_json::json!({ "model": "node_locked", "max_machines": 1, "node_lock": lock }))
            .validate_new()
            .unwrap();
    }

    #[test]
    fn a_template_may_bind_no_machine_yet() {
        let bound = claims(
            serde_json::json!({ "model": "node_locked", "max_machines": 1,
            "node_lock": { "fingerprints": [{ "id": "m", "components": { "a": "1" } }],
                           "match": { "required": ["a"], "min_matching": 1 } } }),
        );
        let mut template = bound.clone();
        if let Some(lock) = template.lic.node_lock.as_mut() {
            lock.fingerprints.clear();
        }
        assert_eq!(
            field_of(template.validate().unwrap_err()),
            "lic.node_lock.fingerprints"
        );
        template.validate_unbound().unwrap();
        template.validate_new_unbound().unwrap();
        // Any other rule is checked: a node-locked template allowing no machine.
        let mut unlimited = template.clone();
        unlimited.lic.max_machines = Some(0);
        assert_eq!(
            field_of(unlimited.validate_new_unbound().unwrap_err()),
            "lic.max_machines"
        );
        // A rule no machine can meet is still refused, naming it.
        if let Some(policy) = template
            .lic
            .node_lock
            .as_mut()
            .and_then(|lock| lock.match_policy.as_mut())
        {
            policy.min_matching = 0;
        }
        assert_eq!(
            field_of(template.validate_unbound().unwrap_err()),
            "lic.node_lock.match.min_matching"
        );
        // Bound fingerprints are checked as in a token.
        let mut wrong = bound;
        if let Some(lock) = wrong.lic.node_lock.as_mut() {
            lock.fingerprints[0].components.clear();
        }
        assert!(wrong.validate_unbound().is_err());
    }

    /// `aud` is a string or an array of strings and nothing else, read the same way by every
    /// path (one strict pass, plain serde_json, a `Value`), as the untagged derive read it.
    #[test]
    fn audience_is_a_string_or_an_array_of_strings() {
        let accepted: &[(&str, Audience)] = &[
            (r#""p""#, Audience::One("p".into())),
            (r#""\u0070""#, Audience::One("p".into())),
            (r#"["p","q"]"#, Audience::Many(vec!["p".into(), "q".into()])),
            (r#"["\u0070"]"#, Audience::Many(vec!["p".into()])),
            ("[]", Audience::Many(vec![])),
        ];
        for (json, expected) in accepted {
            let doc = format!(r#"{{"aud":{json}}}"#);
            #[derive(Deserialize)]
            struct Doc {
                aud: Audience,
            }
            let one: Doc = crate::strict_json::from_slice(doc.as_bytes()).unwrap();
            let plain: Doc = serde_json::from_str(&doc).unwrap();
            let value: Audience = serde_json::from_str::<serde_json::Value>(json)
                .and_then(Audience::deserialize)
                .unwrap();
            assert_eq!(
                (&one.aud, &plain.aud, &value),
                (expected, expected, expected),
                "{json}"
            );
        }
        for json in [
            "1",
            "null",
            "true",
            r#"{"p":1}"#,
            "[1]",
            r#"["p",null]"#,
            r#"[["p"]]"#,
            r#"[{"a":1}]"#,
        ] {
            assert!(serde_json::from_str::<Audience>(json).is_err(), "{json}");
            let value: serde_json::Value = serde_json::from_str(json).unwrap();
            assert!(Audience::deserialize(value).is_err(), "{json}");
        }
    }
}
