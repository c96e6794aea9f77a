//! Pure evaluation of verified claims: the caller passes the time, the running version, the
//! features asked about and context attributes; nothing here reads a clock or a file.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::claims::{LicenseClaims, LicenseModel, NodeLock};
use crate::error::Error;
use crate::fingerprint::{self, MachineFingerprint, MatchOutcome};
use crate::jws::{self, TokenKind};
use crate::keys::TrustStore;
use crate::lease::{Lease, LeaseClaims};
use crate::protocol::ServerStatus;
use crate::status::Status;

/// What the running app knows about itself and its environment.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// Now, in seconds since the Unix epoch (from the caller's clock or a trusted time).
    pub now: i64,
    /// Seconds `nbf` may be in the future to tolerate clock skew (default 0).
    pub not_before_leeway: i64,
    /// The running app's version, checked against `lic.version.req`.
    pub app_version: Option<semver::Version>,
    /// The running app's release date (seconds since the epoch), checked against the
    /// maintenance window.
    pub release_date: Option<i64>,
    /// Features the app asks about; each gets a [`FeatureVerdict`].
    pub features: Vec<String>,
    /// Attributes checked against site restrictions (e.g. `country`, `department`).
    pub attributes: BTreeMap<String, String>,
    /// This machine's fingerprint, required by node-locked licenses.
    pub fingerprint: Option<MachineFingerprint>,
}

impl Context {
    /// A context at `now` with nothing else set.
    pub fn at(now: i64) -> Self {
        Context {
            now,
            ..Context::default()
        }
    }

    /// Sets the running version.
    pub fn with_version(mut self, version: semver::Version) -> Self {
        self.app_version = Some(version);
        self
    }

    /// Sets the release date of the running version.
    pub fn with_release_date(mut self, release_date: i64) -> Self {
        self.release_date = Some(release_date);
        self
    }

    /// Adds a feature to ask about.
    pub fn with_feature(mut self, name: impl Into<String>) -> Self {
        self.features.push(name.into());
        self
    }

    /// Adds a context attribute.
    pub fn with_attribute(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.attributes.insert(name.into(), value.into());
        self
    }

    /// Sets this machine's fingerprint.
    pub fn with_fingerprint(mut self, fingerprint: MachineFingerprint) -> Self {
        self.fingerprint = Some(fingerprint);
        self
    }
}

/// The answer for one feature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct FeatureVerdict {
    /// Feature name.
    pub name: String,
    /// [`Status::Valid`]/[`Status::ValidInGrace`], [`Status::FeatureNotEntitled`],
    /// [`Status::FeatureExpired`], or the license's own status when the license is unusable.
    pub status: Status,
    /// Human-readable explanation.
    pub reason: String,
    /// The feature's numeric limit, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// When the feature stops (its own expiry or the license's end, whichever is first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// Seconds until `expires_at`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_left: Option<i64>,
}

/// The result of verifying and evaluating a license.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct Verdict {
    /// The one status a host acts on.
    pub status: Status,
    /// Human-readable explanation, safe to show or log (no secrets).
    pub reason: String,
    /// License id (`sub`), when the token was genuine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license_id: Option<String>,
    /// License model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<LicenseModel>,
    /// Customer display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
    /// `exp`, when the license expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// `exp + grace_period`: the last moment the license is usable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grace_ends_at: Option<i64>,
    /// Seconds until the license stops being usable (end of grace); absent when it never does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_left: Option<i64>,
    /// Seconds of grace left, when the status is [`Status::ValidInGrace`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grace_left: Option<i64>,
    /// One answer per feature asked about, in the order asked.
    pub features: Vec<FeatureVerdict>,
}

impl Verdict {
    /// A verdict for a token that could not be verified.
    pub fn from_error(error: &Error) -> Self {
        Verdict {
            reason: error.to_string(),
            ..Verdict::from_status(error.status())
        }
    }

    /// A verdict with only a status and its name as the reason.
    pub fn from_status(status: Status) -> Self {
        Verdict {
            status,
            reason: status.as_str().to_owned(),
            license_id: None,
            model: None,
            customer: None,
            expires_at: None,
            grace_ends_at: None,
            time_left: None,
            grace_left: None,
            features: Vec::new(),
        }
    }

    /// Whether the software may run.
    pub fn is_usable(&self) -> bool {
        self.status.is_usable()
    }
}

/// Answer of a single check (time, version, site, machine).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct Check {
    /// Status of the check; [`Status::Valid`] when it passes.
    pub status: Status,
    /// Explanation.
    pub reason: String,
}

impl Check {
    fn pass(reason: impl Into<String>) -> Self {
        Check {
            status: Status::Valid,
            reason: reason.into(),
        }
    }
    fn with_status(status: Status, reason: impl Into<String>) -> Self {
        Check {
            status,
            reason: reason.into(),
        }
    }
}

/// A genuine license: its signature verified and its claims are valid. Evaluate it against a
/// [`Context`] as often as needed; evaluation never touches the network or the disk.
#[derive(Debug, Clone, PartialEq)]
pub struct License {
    claims: LicenseClaims,
    kid: String,
}

impl License {
    /// A license its issuer knows to be genuine (it signed it, or keeps it in its own store).
    #[cfg(feature = "issuer")]
    pub(crate) fn issued(claims: LicenseClaims, kid: String) -> License {
        License { claims, kid }
    }

    /// The verified claims.
    pub fn claims(&self) -> &LicenseClaims {
        &self.claims
    }

    /// The kid of the key that signed it.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The license id (`sub`).
    pub fn id(&self) -> &str {
        &self.claims.sub
    }

    /// The last usable instant: `exp + grace` (trials: `exp`). `None` when it never ends.
    pub fn usable_until(&self) -> Option<i64> {
        let exp = self.claims.exp?;
        let grace = match self.claims.lic.model {
            LicenseModel::Trial => 0,
            _ => self.claims.lic.grace_period.unwrap_or(0),
        };
        Some(exp.saturating_add(i64::try_from(grace).unwrap_or(i64::MAX)))
    }

    /// The time rule: not yet valid, valid, in grace, expired (or trial expired), then the
    /// server check-in deadline (`lic.check_in`) when the license is otherwise usable.
    pub fn check_time(&self, now: i64, not_before_leeway: i64) -> Check {
        self.lifetime(now, not_before_leeway).0
    }

    /// The last instant the license is usable without a server check-in: `until + grace`.
    pub fn check_in_deadline(&self) -> Option<i64> {
        self.claims.lic.check_in.as_ref().map(|c| c.deadline())
    }

    /// [`License::check_time`] and the seconds of grace left when in grace: the smaller of
    /// the subscription's and the check-in's.
    fn lifetime(&self, now: i64, not_before_leeway: i64) -> (Check, Option<i64>) {
        let time = self.expiry_time(now, not_before_leeway);
        let subscription_left = (time.status == Status::ValidInGrace)
            .then(|| self.usable_until().map(|u| u.saturating_sub(now)))
            .flatten();
        let Some(check_in) = self.claims.lic.check_in.filter(|_| time.status.is_usable()) else {
            return (time, subscription_left);
        };
        let deadline = check_in.deadline();
        if now <= check_in.until {
            return (time, subscription_left);
        }
        if now > deadline {
            return (
                Check::with_status(
                    Status::CheckInRequired,
                    format!(
                        "server check-in overdue by {} s; connect to the licensing server",
                        now.saturating_sub(deadline)
                    ),
                ),
                None,
            );
        }
        let left = deadline.saturating_sub(now);
        let reason = format!("server check-in overdue; usable for {left} s without it");
        let reason = if time.status == Status::ValidInGrace {
            format!("{}; {reason}", time.reason)
        } else {
            reason
        };
        let grace_left = subscription_left.map_or(left, |s| s.min(left));
        (
            Check::with_status(Status::ValidInGrace, reason),
            Some(grace_left),
        )
    }

    /// `nbf`, `exp` and the grace period.
    fn expiry_time(&self, now: i64, not_before_leeway: i64) -> Check {
        let c = &self.claims;
        if let Some(nbf) = c.nbf
            && now < nbf.saturating_sub(not_before_leeway.max(0))
        {
            return Check::with_status(
                Status::NotYetValid,
                format!("license becomes valid in {} s", nbf.saturating_sub(now)),
            );
        }
        match self.term_at(now) {
            Term::Unlimited => Check::pass("license does not expire"),
            Term::Running { expires_at } => Check::pass(format!(
                "license valid for {} s",
                expires_at.saturating_sub(now)
            )),
            Term::InGrace { usable_until, .. } => Check::with_status(
                Status::ValidInGrace,
                format!(
                    "license expired; grace period ends in {} s",
                    usable_until.saturating_sub(now)
                ),
            ),
            Term::Ended { .. } if c.lic.model == LicenseModel::Trial => {
                Check::with_status(Status::TrialExpired, "trial period has ended")
            }
            Term::Ended { .. } => Check::with_status(
                Status::Expired,
                "license expired and its grace period is over",
            ),
        }
    }

    /// The term rule: where the license stands at `now` in its own term, `exp` and the grace
    /// after it (trials have none). Only the term: `nbf`, the server check-in and everything
    /// else are [`Self::check_time`]'s and [`Self::evaluate`]'s. The server's compliance
    /// alerts (`expiring`, `in_grace`) use it as the time rule does.
    pub fn term_at(&self, now: i64) -> Term {
        let Some(exp) = self.claims.exp else {
            return Term::Unlimited;
        };
        if now < exp {
            return Term::Running { expires_at: exp };
        }
        let usable_until = self.usable_until().unwrap_or(exp);
        if now < usable_until {
            Term::InGrace {
                expired_at: exp,
                usable_until,
            }
        } else {
            Term::Ended { expired_at: exp }
        }
    }

    /// The status a licensing server reports for this license at `now` by the time rule alone
    /// (no leeway): `not_yet_valid` before `nbf`, `expired` once its term has ended (grace
    /// included), else `active`. Revocation and suspension are the server's own records; the
    /// server check-in is the server itself, so it never makes the license less than active.
    pub fn server_status_at(&self, now: i64) -> ServerStatus {
        if self.claims.nbf.is_some_and(|nbf| now < nbf) {
            return ServerStatus::NotYetValid;
        }
        match self.term_at(now) {
            Term::Ended { .. } => ServerStatus::Expired,
            Term::Unlimited | Term::Running { .. } | Term::InGrace { .. } => ServerStatus::Active,
        }
    }

    /// The version rule: semver requirement and maintenance window. A rule the caller gave
    /// no input for is reported as not entitled: the app must pass what the license gates on.
    pub fn check_version(
        &self,
        version: Option<&semver::Version>,
        release_date: Option<i64>,
    ) -> Check {
        let Some(rule) = &self.claims.lic.version else {
            return Check::pass("no version restriction");
        };
        if let Some(req) = &rule.req {
            match version {
                None => {
                    return Check::with_status(
                        Status::VersionNotEntitled,
                        format!("license requires version {req}; the app passed no version"),
                    );
                }
                Some(v) if !req.matches(v) => {
                    return Check::with_status(
                        Status::VersionNotEntitled,
                        format!("version {v} does not satisfy {req}"),
                    );
                }
                Some(_) => {}
            }
        }
        if let Some(until) = rule.maintenance_until {
            match release_date {
                None => {
                    return Check::with_status(
                        Status::VersionNotEntitled,
                        "license has a maintenance window; the app passed no release date",
                    );
                }
                Some(released) if released > until => {
                    return Check::with_status(
                        Status::VersionNotEntitled,
                        format!(
                            "this version was released {} s after maintenance ended",
                            released.saturating_sub(until)
                        ),
                    );
                }
                Some(_) => {}
            }
        }
        Check::pass("version entitled")
    }

    /// The site rule: every restricted attribute present with an allowed value.
    pub fn check_site(&self, attributes: &BTreeMap<String, String>) -> Check {
        let Some(site) = &self.claims.lic.site else {
            return Check::pass("no site restriction");
        };
        for (name, allowed) in &site.restrictions {
            match attributes.get(name) {
                None => {
                    return Check::with_status(
                        Status::SiteRestricted,
                        format!("site restriction on `{name}`: the app passed no `{name}`"),
                    );
                }
                Some(value) if !allowed.iter().any(|a| a == value) => {
                    return Check::with_status(
                        Status::SiteRestricted,
                        format!("`{name}` = `{value}` is not one of {allowed:?}"),
                    );
                }
                Some(_) => {}
            }
        }
        Check::pass("site restrictions satisfied")
    }

    /// The machine rule for node-locked licenses (and any license carrying `node_lock`).
    pub fn check_machine(&self, fingerprint: Option<&MachineFingerprint>) -> Check {
        let lock = match (&self.claims.lic.node_lock, self.claims.lic.model) {
            (Some(lock), _) => lock,
            (None, _) => return Check::pass("not node-locked"),
        };
        let Some(fp) = fingerprint else {
            return Check::with_status(
                Status::FingerprintMismatch,
                "license is node-locked; no machine fingerprint was supplied",
            );
        };
        if fp.is_virtual && !lock.allow_virtual {
            return Check::with_status(
                Status::VirtualMachineNotAllowed,
                "license does not allow virtual machines or containers",
            );
        }
        match_node_lock(lock, fp)
    }

    /// One feature: entitled, not expired, and the license itself usable at `now`.
    pub fn check_feature(&self, name: &str, now: i64, not_before_leeway: i64) -> FeatureVerdict {
        let license = self.check_time(now, not_before_leeway);
        self.feature_verdict(name, now, &license)
    }

    fn feature_verdict(&self, name: &str, now: i64, license: &Check) -> FeatureVerdict {
        let feature = self.claims.lic.features.get(name);
        let license_end = self.usable_until();
        let feature_end = feature.and_then(|f| f.exp);
        let expires_at = match (feature_end, license_end) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let (status, reason) = match feature {
            _ if !license.status.is_usable() => (license.status, license.reason.clone()),
            None => (
                Status::FeatureNotEntitled,
                format!("feature `{name}` is not in the license"),
            ),
            Some(f) if f.exp.is_some_and(|exp| now >= exp) => {
                (Status::FeatureExpired, format!("feature `{name}` expired"))
            }
            Some(_) => (license.status, format!("feature `{name}` entitled")),
        };
        FeatureVerdict {
            name: name.to_owned(),
            status,
            reason,
            limit: feature.and_then(|f| f.limit),
            expires_at,
            time_left: expires_at.map(|end| end.saturating_sub(now)),
        }
    }

    /// Evaluates everything against `ctx`. The status is the first failing rule in this order:
    /// time, machine, site, version, requested features; otherwise valid or valid in grace.
    pub fn evaluate(&self, ctx: &Context) -> Verdict {
        let (time, grace_left) = self.lifetime(ctx.now, ctx.not_before_leeway);
        let features: Vec<FeatureVerdict> = ctx
            .features
            .iter()
            .map(|name| self.feature_verdict(name, ctx.now, &time))
            .collect();
        let decisive = if !time.status.is_usable() {
            time.clone()
        } else {
            let machine = self.check_machine(ctx.fingerprint.as_ref());
            let failed = [
                machine.clone(),
                self.check_site(&ctx.attributes),
                self.check_version(ctx.app_version.as_ref(), ctx.release_date),
            ]
            .into_iter()
            .find(|c| c.status != Status::Valid)
            .or_else(|| {
                features
                    .iter()
                    .find(|f| !f.status.is_usable())
                    .map(|f| Check::with_status(f.status, f.reason.clone()))
            });
            failed.unwrap_or_else(|| match self.claims.lic.node_lock {
                // Say how the machine matched: a tolerated change is worth showing.
                Some(_) => {
                    Check::with_status(time.status, format!("{}; {}", time.reason, machine.reason))
                }
                None => time.clone(),
            })
        };
        let until = self.usable_until();
        // Without a check-in the license stops at the check-in deadline, if that comes first.
        let stops = match (until, self.check_in_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Verdict {
            status: decisive.status,
            reason: decisive.reason,
            license_id: Some(self.claims.sub.clone()),
            model: Some(self.claims.lic.model),
            customer: self
                .claims
                .lic
                .customer
                .as_ref()
                .and_then(|c| c.name.clone()),
            expires_at: self.claims.exp,
            grace_ends_at: until.filter(|_| self.claims.lic.model != LicenseModel::Trial),
            time_left: stops.map(|u| u.saturating_sub(ctx.now).max(0)),
            // Only when the verdict is in grace (FORMAT 6.7), not when the time rule is but
            // another rule decided (a machine, a site, a version).
            grace_left: grace_left.filter(|_| decisive.status == Status::ValidInGrace),
            features,
        }
    }
}

fn match_node_lock(lock: &NodeLock, fp: &MachineFingerprint) -> Check {
    if lock.match_policy.is_none() {
        return if lock.fingerprints.iter().any(|bound| bound.id == fp.id) {
            Check::pass("machine fingerprint matches")
        } else {
            Check::with_status(
                Status::FingerprintMismatch,
                "this machine's fingerprint is not bound to the license",
            )
        };
    }
    // The bound machine closest to this one explains the mismatch best.
    let mut best: Option<(usize, Vec<String>)> = None;
    for bound in &lock.fingerprints {
        match fingerprint::matches(lock.match_policy.as_ref(), bound, fp) {
            MatchOutcome::Exact => return Check::pass("machine fingerprint matches"),
            MatchOutcome::Tolerated { changed } => {
                return Check::pass(format!(
                    "machine matches within tolerance; changed: {}",
                    changed.join(", ")
                ));
            }
            MatchOutcome::Different { changed, matching } => {
                if best.as_ref().is_none_or(|(m, _)| matching > *m) {
                    best = Some((matching, changed));
                }
            }
        }
    }
    let changed = best.map(|(_, c)| c.join(", ")).unwrap_or_default();
    Check::with_status(
        Status::FingerprintMismatch,
        format!("machine fingerprint does not match; changed components: {changed}"),
    )
}

/// Where a license stands in its own term at an instant ([`License::term_at`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Term {
    /// The license does not expire (no `exp`).
    Unlimited,
    /// Before `exp`.
    Running {
        /// `exp`.
        expires_at: i64,
    },
    /// `exp` has passed and the grace period after it has not: usable, degraded.
    InGrace {
        /// `exp`.
        expired_at: i64,
        /// The last usable instant is just before this one (`exp` + grace).
        usable_until: i64,
    },
    /// `exp` and its grace period (none for a trial) have passed.
    Ended {
        /// `exp`.
        expired_at: i64,
    },
}

/// Verifies license tokens against a trust store for one product.
#[derive(Debug, Clone)]
pub struct Verifier {
    store: TrustStore,
    product_id: Option<String>,
}

impl Verifier {
    /// A verifier for `product_id`: tokens whose `aud` does not name it are refused.
    pub fn new(store: TrustStore, product_id: impl Into<String>) -> Self {
        Verifier {
            store,
            product_id: Some(product_id.into()),
        }
    }

    /// A verifier that accepts any product (for vendor tools, not for apps).
    pub fn for_any_product(store: TrustStore) -> Self {
        Verifier {
            store,
            product_id: None,
        }
    }

    /// The trust store.
    pub fn trust_store(&self) -> &TrustStore {
        &self.store
    }

    /// The product tokens must name; `None` for a verifier of any product.
    pub fn product_id(&self) -> Option<&str> {
        self.product_id.as_deref()
    }

    /// Verifies the signature, type, claims and product of `token`.
    pub fn verify(&self, token: &str) -> Result<License, Error> {
        let jws = jws::verify_signature(token, TokenKind::License, &self.store)?;
        let claims = LicenseClaims::from_payload(&jws.payload)?;
        if let Some(product) = &self.product_id
            && !claims.aud.contains(product)
        {
            return Err(Error::ProductMismatch {
                expected: product.clone(),
                found: claims.aud.as_slice().to_vec(),
            });
        }
        Ok(License {
            claims,
            kid: jws.kid,
        })
    }

    /// Verifies a `lease+jwt` token with the same procedure as a license (a license presented
    /// as a lease is [`Error::WrongTokenType`], and the reverse too), then its claims and
    /// product. Whether it is still live is [`Lease::status_for`]'s question.
    pub fn verify_lease(&self, token: &str) -> Result<Lease, Error> {
        let jws = jws::verify_signature(token, TokenKind::Lease, &self.store)?;
        let claims = LeaseClaims::from_payload(&jws.payload)?;
        if let Some(product) = &self.product_id
            && claims.aud != *product
        {
            return Err(Error::ProductMismatch {
                expected: product.clone(),
                found: vec![claims.aud],
            });
        }
        Ok(Lease {
            claims,
            kid: jws.kid,
        })
    }

    /// Verifies and evaluates in one call; never fails: problems are in the verdict.
    pub fn check(&self, token: &str, ctx: &Context) -> Verdict {
        self.check_license(token, ctx).0
    }

    /// [`Self::check`], keeping the verified license for later questions (features, versions,
    /// claims): the verdict, and the license when the token is genuine (`None` when the verdict
    /// is a verification failure such as `malformed` or `signature_invalid`).
    pub fn check_license(&self, token: &str, ctx: &Context) -> (Verdict, Option<License>) {
        match self.verify(token) {
            Ok(license) => (license.evaluate(ctx), Some(license)),
            Err(error) => (Verdict::from_error(&error), None),
        }
    }
}

/// A running version that is not a semantic version (`2.4.0`, `2.4.0-beta.1+build.5`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("version `{}` is not semver: {detail}", text.escape_debug())]
pub struct VersionError {
    /// The text that was given.
    pub text: String,
    /// What the parser found.
    pub detail: String,
}

/// Parses the running app's version as every boundary (C, the bindings, the CLI) takes it:
/// strict SemVer 2.0, nothing trimmed. Surrounding whitespace is refused, not ignored: the
/// SemVer grammar has none, a version is a constant of the build (a stray newline read from a
/// file is a bug to report at the first call, not to hide), and the same text must give the
/// same answer in every language.
pub fn parse_version(text: &str) -> Result<semver::Version, VersionError> {
    semver::Version::parse(text).map_err(|e| VersionError {
        text: text.to_owned(),
        detail: e.to_string(),
    })
}
