//! uniffi bindings (Kotlin, Swift, Python) of the licensing SDK.
//!
//! Thin by rule (see `docs/ARCHITECTURE.md`): every object wraps a core type and each method
//! is a one-line delegation; records the core cannot derive are converted in [`records`]; every
//! error becomes [`LicensingError`] in [`error`]; the status enum is the core's
//! [`licensing_core::Status`], with its stable numbers. Nothing here decides anything about a
//! license.
//!
//! Two uniffi namespaces end up in the one library: `licensing_core` (the core's `Status`,
//! `LicenseModel`, `Verdict`, `FeatureVerdict`, `Check`, `Scope`) and `licensing_uniffi` (this
//! crate). Generate the bindings from the built library:
//!
//! ```text
//! cargo build -p licensing-uniffi
//! cargo run -p uniffi-bindgen -- generate --no-format \
//!     --library target/debug/liblicensing_uniffi.so --language kotlin --out-dir out/
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use licensing_core::fingerprint::FixedComponents;
use licensing_core::machine::{self, SystemComponents};
use licensing_core::{Check, FeatureVerdict, LicenseModel, Status, Verdict, store};

pub mod error;
#[cfg(feature = "online-core")]
pub mod lease;
#[cfg(feature = "online-core")]
pub mod online;
pub mod records;
#[cfg(feature = "online-core")]
pub mod transport;

pub use error::LicensingError;
#[cfg(feature = "online-core")]
pub use lease::{FloatingLease, LeaseListener, LeaseLossInfo, LeaseLossKind, MonotonicClock};
#[cfg(feature = "online-core")]
pub use online::{OnlineClient, OnlineResult};
pub use records::{Context, LicensingOptions, MachineFingerprint, RawComponents};
#[cfg(feature = "online-core")]
pub use transport::{HttpRequest, HttpResponse, HttpTransport, TransportError};

uniffi::setup_scaffolding!();

/// The public keys an app trusts (PEM, JWK or JWK Set, shipped with the app).
#[derive(Debug, uniffi::Object)]
pub struct TrustStore(licensing_core::TrustStore);

#[uniffi::export]
impl TrustStore {
    /// A store from one document: an SPKI PEM, a JWK or a JWK Set.
    #[uniffi::constructor]
    pub fn from_document(document: String) -> Result<Self, LicensingError> {
        Ok(TrustStore(licensing_core::TrustStore::from_document(
            &document,
        )?))
    }

    /// A store from several documents (e.g. the current and the next key during a rotation).
    #[uniffi::constructor]
    pub fn from_documents(documents: Vec<String>) -> Result<Self, LicensingError> {
        let mut store = licensing_core::TrustStore::new();
        for document in &documents {
            store.add_document(document)?;
        }
        Ok(TrustStore(store))
    }

    /// The kids (RFC 7638 thumbprints) of the trusted keys, in order.
    pub fn kids(&self) -> Vec<String> {
        self.0.keys().map(|k| k.kid().to_owned()).collect()
    }

    /// The store as a JWK Set document.
    pub fn to_jwks(&self) -> String {
        self.0.to_jwks().to_string()
    }
}

/// Verifies license tokens for one product against a trust store.
#[derive(Debug, uniffi::Object)]
pub struct Verifier(licensing_core::Verifier);

#[uniffi::export]
impl Verifier {
    /// A verifier for `product_id`: tokens for another product are refused.
    #[uniffi::constructor]
    pub fn new(trust_store: Arc<TrustStore>, product_id: String) -> Self {
        Verifier(licensing_core::Verifier::new(
            trust_store.0.clone(),
            product_id,
        ))
    }

    /// Verifies and evaluates in one call. A license that may not be used is a verdict, not an
    /// error; the only error is an invalid `context` (e.g. a version that is not semver).
    pub fn check(&self, token: String, context: Context) -> Result<Verdict, LicensingError> {
        Ok(self.0.check(&token, &context.try_into()?))
    }

    /// Verifies the signature, type, claims and product of `token`, for evaluating it
    /// repeatedly. A refused token is [`LicensingError::Rejected`] with its status.
    pub fn verify(&self, token: String) -> Result<Arc<License>, LicensingError> {
        Ok(Arc::new(License(self.0.verify(&token)?)))
    }
}

/// A genuine license (signature, type, claims and product verified).
#[derive(Debug, uniffi::Object)]
pub struct License(licensing_core::License);

#[uniffi::export]
impl License {
    /// The license id (`sub`).
    pub fn id(&self) -> String {
        self.0.id().to_owned()
    }

    /// The kid of the key that signed it.
    pub fn kid(&self) -> String {
        self.0.kid().to_owned()
    }

    /// The license model.
    pub fn model(&self) -> LicenseModel {
        self.0.claims().lic.model
    }

    /// `exp`, when the license expires (absent: never).
    pub fn expires_at(&self) -> Option<i64> {
        self.0.claims().exp
    }

    /// The last usable instant (`exp` + grace); absent when it never ends.
    pub fn usable_until(&self) -> Option<i64> {
        self.0.usable_until()
    }

    /// The entitled feature names, sorted.
    pub fn feature_names(&self) -> Vec<String> {
        self.0.claims().lic.features.keys().cloned().collect()
    }

    /// The verified claims as JSON (vendor `metadata` included).
    pub fn claims_json(&self) -> Result<String, LicensingError> {
        Ok(serde_json::to_string(self.0.claims())?)
    }

    /// Evaluates everything against `context`; see `Verifier.check`.
    pub fn evaluate(&self, context: Context) -> Result<Verdict, LicensingError> {
        Ok(self.0.evaluate(&context.try_into()?))
    }

    /// One feature at `now`: entitled, not expired, and the license itself usable.
    pub fn check_feature(&self, name: String, now: i64, not_before_leeway: i64) -> FeatureVerdict {
        self.0.check_feature(&name, now, not_before_leeway)
    }

    /// The version rule: semver requirement (`version`) and maintenance window
    /// (`release_date`, seconds since the epoch). A rule given no input is not entitled.
    pub fn check_version(
        &self,
        version: Option<String>,
        release_date: Option<i64>,
    ) -> Result<Check, LicensingError> {
        let version = version.as_deref().map(records::parse_version).transpose()?;
        Ok(self.0.check_version(version.as_ref(), release_date))
    }

    /// The time rule at `now`: not yet valid, valid, in grace, expired.
    pub fn check_time(&self, now: i64, not_before_leeway: i64) -> Check {
        self.0.check_time(now, not_before_leeway)
    }

    /// The site rule against these attributes.
    pub fn check_site(&self, attributes: HashMap<String, String>) -> Check {
        self.0.check_site(&attributes.into_iter().collect())
    }

    /// The machine rule (node-locked licenses) against a fingerprint.
    pub fn check_machine(&self, fingerprint: Option<MachineFingerprint>) -> Check {
        self.0.check_machine(fingerprint.map(Into::into).as_ref())
    }
}

/// The directory holding one app's license token and clock state.
#[derive(Debug, uniffi::Object)]
pub struct LicenseStore(store::LicenseStore);

#[uniffi::export]
impl LicenseStore {
    /// A store in `dir`, created if missing.
    #[uniffi::constructor]
    pub fn at(dir: String) -> Result<Self, LicensingError> {
        Ok(LicenseStore(store::LicenseStore::at(dir)?))
    }

    /// The platform's data directory for this app (user or machine-wide).
    #[uniffi::constructor]
    pub fn for_app(
        qualifier: String,
        organization: String,
        application: String,
        scope: store::Scope,
    ) -> Result<Self, LicensingError> {
        Ok(LicenseStore(store::LicenseStore::for_app(
            &qualifier,
            &organization,
            &application,
            scope,
        )?))
    }

    /// The directory.
    pub fn dir(&self) -> String {
        self.0.dir().to_string_lossy().into_owned()
    }

    /// The stored token, if any.
    pub fn read_token(&self) -> Result<Option<String>, LicensingError> {
        Ok(self.0.read_token()?)
    }

    /// Removes the token and the clock state (deactivation).
    pub fn clear(&self) -> Result<(), LicensingError> {
        Ok(self.0.clear()?)
    }
}

/// An app's licensing: the startup check with the license store and the clock guard.
#[derive(Debug, uniffi::Object)]
pub struct Licensing(licensing_core::Licensing);

#[uniffi::export]
impl Licensing {
    /// Licensing for `product_id`, its trust store, its store, and what it asks about.
    #[uniffi::constructor]
    pub fn new(
        trust_store: Arc<TrustStore>,
        product_id: String,
        store: Arc<LicenseStore>,
        options: LicensingOptions,
    ) -> Result<Self, LicensingError> {
        let mut licensing =
            licensing_core::Licensing::new(trust_store.0.clone(), product_id, store.0.clone())
                .with_context(options.context()?);
        if let Some(components) = options.components {
            licensing = licensing.with_component_source(FixedComponents(components.into()));
        }
        if let Some(value) = options.fingerprint_override {
            licensing = licensing.with_fingerprint_override(Some(value));
        }
        if let Some(seconds) = options.clock_tolerance {
            licensing = licensing.with_clock_tolerance(seconds);
        }
        Ok(Licensing(licensing))
    }

    /// Installs a token (from activation or a file) at `now`: only a genuine token for this
    /// product is stored. The verdict says whether it may be used.
    pub fn install(&self, token: String, now: i64) -> Result<Verdict, LicensingError> {
        Ok(self.0.install(&token, now)?)
    }

    /// The startup check at `now` (seconds since the epoch): load, fingerprint, verify,
    /// evaluate, guard the clock. `no_license` means: offer activation.
    pub fn check_at_startup(&self, now: i64) -> Result<Verdict, LicensingError> {
        Ok(self.0.check_at_startup(now)?)
    }

    /// The startup check with the system clock.
    pub fn check_at_startup_now(&self) -> Result<Verdict, LicensingError> {
        Ok(self.0.check_at_startup_now()?)
    }

    /// This machine's fingerprint for this product (what offline activation sends).
    pub fn fingerprint(&self) -> MachineFingerprint {
        self.0.fingerprint().into()
    }

    /// The store's directory.
    pub fn store_dir(&self) -> String {
        self.0.store().dir().to_string_lossy().into_owned()
    }

    /// The seat borrowed from a floating license (`OnlineClient.borrow_seat`), checked at `now`
    /// with no network: `valid` while borrowed, `lease_expired` from its end on,
    /// `lease_required` when none is stored, `clock_tampered` when the clock was set back.
    pub fn check_borrowed_seat(&self, now: i64) -> Result<BorrowedSeat, LicensingError> {
        Ok(self.0.check_borrowed_seat(now)?.into())
    }
}

/// A seat borrowed from a floating license, as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct BorrowedSeat {
    /// `valid`, `lease_expired`, `lease_required` or `clock_tampered`.
    pub status: Status,
    /// Why, in one line.
    pub reason: String,
    /// The lease id, when a genuine lease is stored.
    pub lease_id: Option<String>,
    /// When the borrowed seat ends (server clock, seconds since the epoch), when one is stored.
    pub expires_at: Option<i64>,
}

impl From<licensing_core::BorrowedSeat> for BorrowedSeat {
    fn from(seat: licensing_core::BorrowedSeat) -> Self {
        BorrowedSeat {
            status: seat.status,
            reason: seat.reason,
            lease_id: seat.lease.as_ref().map(|lease| lease.id().to_owned()),
            expires_at: seat.lease.as_ref().map(|lease| lease.claims().exp),
        }
    }
}

/// This machine's fingerprint salted with `salt` (the product id), read from the OS once per
/// process; honours the `LICENSING_FINGERPRINT_OVERRIDE` environment variable.
#[uniffi::export]
pub fn this_machine_fingerprint(salt: String) -> MachineFingerprint {
    machine::this_machine(&salt).into()
}

/// This machine's fingerprint with a vendor-supplied `override_value` (containers, cloud
/// nodes) replacing the hardware components; an empty value means the hardware.
#[uniffi::export]
pub fn this_machine_fingerprint_with_override(
    salt: String,
    override_value: String,
) -> MachineFingerprint {
    machine::fingerprint_with(&SystemComponents, &salt, Some(&override_value)).into()
}

/// The fingerprint of components the host collected itself, salted with `salt`.
#[uniffi::export]
pub fn fingerprint_from_components(components: RawComponents, salt: String) -> MachineFingerprint {
    licensing_core::MachineFingerprint::derive(&components.into(), &salt).into()
}

/// The name of the environment variable holding a fingerprint override.
#[uniffi::export]
pub fn fingerprint_override_env() -> String {
    machine::OVERRIDE_ENV.to_owned()
}

/// The stable number of a status (the C ABI's `LIC_STATUS_*` value).
#[uniffi::export]
pub fn status_code(status: Status) -> u32 {
    status as u32
}

/// The status with this stable number, if any.
#[uniffi::export]
pub fn status_from_code(code: u32) -> Option<Status> {
    Status::ALL.into_iter().find(|s| *s as u32 == code)
}

/// The stable snake_case name of a status (`valid_in_grace`), as in JSON and the CLI.
#[uniffi::export]
pub fn status_name(status: Status) -> String {
    status.as_str().to_owned()
}

/// Whether the software may run: `valid` or `valid_in_grace`.
#[uniffi::export]
pub fn status_is_usable(status: Status) -> bool {
    status.is_usable()
}

/// Seconds since the Unix epoch from the system clock.
#[uniffi::export]
pub fn unix_now() -> i64 {
    licensing_core::unix_now()
}

/// The SDK version.
#[uniffi::export]
pub fn sdk_version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}

/// **Test only**: panics with `message`, to show that a Rust panic reaches the host as the
/// language's uniffi internal error instead of aborting the process. Never call it in an app.
#[uniffi::export]
pub fn panic_for_test(message: String) -> Result<(), LicensingError> {
    panic!("{message}")
}
