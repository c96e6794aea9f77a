//! The one call a desktop app makes at launch (feature `store`): load the stored token,
//! fingerprint the machine, verify, evaluate, and run the clock-rollback guard.

use crate::clock::{self, ClockCheck, ClockState, DEFAULT_TOLERANCE_SECS};
use crate::evaluate::{Context, License, Verdict, Verifier};
use crate::fingerprint::{ComponentSource, MachineFingerprint, component};
use crate::jws::{self, TokenKind};
use crate::keys::TrustStore;
use crate::lease::Lease;
use crate::machine::{self, SystemComponents};
use crate::protocol::{ResponseClaims, ServerStatus};
use crate::status::Status;
use crate::store::{LicenseStore, StoreError};

/// The clock mark is persisted only when it advances by at least this much, so most launches
/// only read the store. Far below the rollback tolerance, so detection is unaffected.
const MARK_GRANULARITY_SECS: i64 = 300;

/// A seat borrowed from a floating license, as the store holds it, checked offline
/// ([`Licensing::check_borrowed_seat`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BorrowedSeat {
    /// [`Status::Valid`] while the seat is borrowed; [`Status::LeaseExpired`] from its `exp`
    /// on; [`Status::LeaseRequired`] when none is stored (or its token does not verify, or is
    /// for another license than the one installed); [`Status::ClockTampered`] when the clock
    /// is behind time already seen.
    pub status: Status,
    /// Why, in one line.
    pub reason: String,
    /// The verified lease, when a genuine one is stored.
    pub lease: Option<Lease>,
}

/// An app's licensing: trust store, product, store, machine and what the app asks about.
pub struct Licensing {
    pub(crate) verifier: Verifier,
    pub(crate) product_id: String,
    pub(crate) store: LicenseStore,
    source: Box<dyn ComponentSource + Send + Sync>,
    fingerprint_override: Option<String>,
    pub(crate) clock_tolerance: i64,
    context: Context,
}

impl std::fmt::Debug for Licensing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Licensing")
            .field("product_id", &self.product_id)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Licensing {
    /// Licensing for `product_id` with the OS as fingerprint source and the override from
    /// [`machine::OVERRIDE_ENV`], a 1-hour clock tolerance, and no features/version asked.
    pub fn new(
        trust_store: TrustStore,
        product_id: impl Into<String>,
        store: LicenseStore,
    ) -> Self {
        let product_id = product_id.into();
        Licensing {
            verifier: Verifier::new(trust_store, product_id.clone()),
            product_id,
            store,
            source: Box::new(SystemComponents),
            fingerprint_override: std::env::var(machine::OVERRIDE_ENV).ok(),
            clock_tolerance: DEFAULT_TOLERANCE_SECS,
            context: Context::default(),
        }
    }

    /// Reads machine components from `source` instead of the OS (tests, custom hosts).
    pub fn with_component_source(
        mut self,
        source: impl ComponentSource + Send + Sync + 'static,
    ) -> Self {
        self.source = Box::new(source);
        self
    }

    /// Uses a vendor-supplied fingerprint value (containers, cloud nodes); `None` uses hardware.
    pub fn with_fingerprint_override(mut self, value: Option<String>) -> Self {
        self.fingerprint_override = value;
        self
    }

    /// How far the clock may lag trusted time before it counts as rolled back.
    pub fn with_clock_tolerance(mut self, seconds: i64) -> Self {
        self.clock_tolerance = seconds.max(0);
        self
    }

    /// What the app asks about at each check: version, release date, features, attributes.
    /// `now` and the fingerprint are filled in by each check.
    pub fn with_context(mut self, context: Context) -> Self {
        self.context = context;
        self
    }

    /// The store.
    pub fn store(&self) -> &LicenseStore {
        &self.store
    }

    /// This machine's fingerprint for this product (what offline activation sends).
    pub fn fingerprint(&self) -> MachineFingerprint {
        machine::fingerprint_with(
            self.source.as_ref(),
            &self.product_id,
            self.fingerprint_override.as_deref(),
        )
    }

    /// Installs a token (from activation or a file): verified first; only a genuine token for
    /// this product is stored, and the clock mark starts at `max(now, iat)`.
    pub fn install(&self, token: &str, now: i64) -> Result<Verdict, StoreError> {
        self.install_license(token, now).map(|(verdict, _)| verdict)
    }

    /// [`Self::install`], also returning the verified [`License`] whenever the token was
    /// genuine (even when the verdict is not usable, e.g. a clock set back), for later
    /// questions (`check_feature`, `check_version`). `None` when the token was refused.
    pub fn install_license(
        &self,
        token: &str,
        now: i64,
    ) -> Result<(Verdict, Option<License>), StoreError> {
        let _lock = self.store.lock()?;
        self.install_unlocked(token, now)
    }

    /// [`Self::install_license`] for a caller that holds the store's lock.
    pub(crate) fn install_unlocked(
        &self,
        token: &str,
        now: i64,
    ) -> Result<(Verdict, Option<License>), StoreError> {
        self.install_stored(token, now)
            .map(|(verdict, license, _)| (verdict, license))
    }

    /// [`Self::install_unlocked`], also telling whether the token was stored: a genuine token
    /// is not when the clock is behind its `iat` (whatever its verdict), and the store then
    /// keeps what it had.
    pub(crate) fn install_stored(
        &self,
        token: &str,
        now: i64,
    ) -> Result<(Verdict, Option<License>, bool), StoreError> {
        let license = match self.verifier.verify(token.trim()) {
            Ok(license) => license,
            Err(error) => return Ok((Verdict::from_error(&error), None, false)),
        };
        let fingerprint = self.fingerprint();
        let key = clock_key(&fingerprint).to_owned();
        let guard = ClockGuard::new(self, &key);
        // A new token starts the mark afresh, from `max(now, iat)`.
        let mark = match guard.check(None, now, license.claims().iat) {
            ClockCheck::Trusted { new_mark } => new_mark,
            ClockCheck::RolledBack { behind_by } => {
                let verdict = tampered(
                    license.evaluate(&self.context_at(now, fingerprint)),
                    behind_by,
                );
                return Ok((verdict, Some(license), false));
            }
        };
        // The clock state first: if the token's write then fails, the store keeps the token it
        // had (or none), whose start is not judged tampered; the other order would leave the
        // new token without clock state, which the next start reports as `clock_tampered`.
        // A kept server refusal stays sealed: installing the token again does not forget it.
        let answer = match guard.unseal()? {
            Ok(Some(state)) => state.answer,
            _ => None,
        };
        guard.seal(&ClockState { mark, answer })?;
        self.store.write_token(token.trim())?;
        let verdict = license.evaluate(&self.context_at(now, fingerprint));
        Ok((verdict, Some(license), true))
    }

    /// The startup check: load, fingerprint, verify, evaluate, guard the clock. `now` is the
    /// wall clock (seconds since the epoch); errors are only I/O failures of the store.
    pub fn check_at_startup(&self, now: i64) -> Result<Verdict, StoreError> {
        self.check_at_startup_license(now)
            .map(|(verdict, _)| verdict)
    }

    /// [`Self::check_at_startup`], also returning the verified [`License`] whenever the stored
    /// token was genuine (even when the verdict is not usable: expired, clock set back, another
    /// machine), for later questions (`check_feature`, `check_version`). `None` when no token
    /// is installed or it was refused. Act on the verdict's status: the license answers only
    /// what it says, not the machine or the clock guard.
    pub fn check_at_startup_license(
        &self,
        now: i64,
    ) -> Result<(Verdict, Option<License>), StoreError> {
        let _lock = self.store.lock()?;
        let Some(token) = self.store.read_token()? else {
            let verdict = Verdict {
                reason: "no license is installed".into(),
                ..Verdict::from_status(Status::NoLicense)
            };
            return Ok((verdict, None));
        };
        let license = match self.verifier.verify(&token) {
            Ok(license) => license,
            Err(error) => return Ok((Verdict::from_error(&error), None)),
        };
        let (verdict, state) = self.guard_clock(&license, now)?;
        let verdict = self.server_override(&license, verdict, state)?;
        Ok((verdict, Some(license)))
    }

    /// Applies the last signed server answer kept in the store (written by an online
    /// validation that said suspended, revoked, ...) to a genuine license's verdict, so an
    /// offline start reports it until the server says active again. An answer that does not
    /// verify or is about another license is ignored: it can only take rights away.
    ///
    /// The clock state (`state`, when it opened) seals the digest of the answer kept: when one
    /// is sealed and the file is missing or holds something else than a refusal of this
    /// license, the answer was deleted or replaced, which is [`Status::ClockTampered`] like a
    /// deleted clock state. A refusal of this license kept but not sealed yet (a crash between
    /// the two writes, a store of an earlier release) is applied and sealed.
    fn server_override(
        &self,
        license: &License,
        verdict: Verdict,
        state: Option<ClockState>,
    ) -> Result<Verdict, StoreError> {
        let kept = state.and_then(|state| state.answer);
        let token = self.store.read_server_response()?;
        let refusal = token
            .as_deref()
            .and_then(|token| self.refusal_of(license, token));
        let digest = token.as_deref().map(clock::answer_digest);
        if let Some(refusal) = refusal {
            if let Some(state) = state
                && digest.is_some()
                && kept != digest
            {
                let fingerprint = self.fingerprint();
                ClockGuard::new(self, clock_key(&fingerprint)).seal(&ClockState {
                    answer: digest,
                    ..state
                })?;
            }
            return Ok(refusal.apply(verdict));
        }
        match kept {
            // The sealed answer is the file's: about another license (one installed since).
            Some(kept) if digest == Some(kept) => Ok(verdict),
            Some(_) => Ok(tampered_with(
                verdict,
                format!(
                    "the licensing server's last answer ({}) was deleted or replaced",
                    crate::store::RESPONSE_FILE
                ),
            )),
            None => Ok(verdict),
        }
    }

    /// What a kept server answer refuses of `license` when it is a genuine refusal of it (a
    /// status `revoked`, `suspended`, `expired`, `not_yet_valid`, or this machine not activated
    /// on a license that needs it); `None` otherwise.
    fn refusal_of(&self, license: &License, token: &str) -> Option<KeptRefusal> {
        let answer =
            jws::verify_token(token, TokenKind::Response, self.verifier.trust_store()).ok()?;
        let answer: ResponseClaims =
            serde_json::from_value(serde_json::Value::Object(answer.claims)).ok()?;
        if answer.license_id != license.id() {
            return None;
        }
        let machine = answer.refuses_machine();
        let status = answer.status.is_refusal().then_some(answer.status);
        (status.is_some() || machine).then_some(KeptRefusal { status, machine })
    }

    /// Keeps `answer`, the server's signed answer refusing the license, or forgets the kept
    /// one (`None`: the server said active), sealing its digest with `mark` in the clock state
    /// (`key`, see [`clock_key`]). Written in the order that never makes a crash look like
    /// tampering: a refusal before its seal, the seal before the refusal is removed.
    #[cfg(feature = "online-core")]
    pub(crate) fn keep_server_answer(
        &self,
        key: &str,
        answer: Option<&str>,
        mark: i64,
    ) -> Result<(), StoreError> {
        let state = ClockState {
            mark,
            answer: answer.map(clock::answer_digest),
        };
        if answer.is_some() {
            self.store.write_server_response(answer)?;
        }
        ClockGuard::new(self, key).seal(&state)?;
        if answer.is_none() {
            self.store.write_server_response(None)?;
        }
        Ok(())
    }

    /// Forgets a kept server refusal (a fresh activation is the server saying active): the
    /// clock state, when it opens, is sealed again without it, then the answer is removed.
    #[cfg(feature = "online-core")]
    pub(crate) fn forget_server_answer(&self, key: &str) -> Result<(), StoreError> {
        let guard = ClockGuard::new(self, key);
        if let Ok(Some(state)) = guard.unseal()?
            && state.answer.is_some()
        {
            guard.seal(&ClockState::mark(state.mark))?;
        }
        self.store.write_server_response(None)
    }

    /// Evaluates a genuine stored license at `now` and runs the clock guard on it; also the
    /// clock state when it opened.
    fn guard_clock(
        &self,
        license: &License,
        now: i64,
    ) -> Result<(Verdict, Option<ClockState>), StoreError> {
        let fingerprint = self.fingerprint();
        let key = clock_key(&fingerprint).to_owned();
        let verdict = license.evaluate(&self.context_at(now, fingerprint));
        Ok(
            match ClockGuard::new(self, &key).guard(now, license.claims().iat)? {
                Guarded::Missing => (
                    tampered_with(
                        verdict,
                        "clock state is missing although a license is installed".into(),
                    ),
                    None,
                ),
                Guarded::Unsealable(reason) => (tampered_with(verdict, reason), None),
                Guarded::Checked {
                    state,
                    check: ClockCheck::RolledBack { behind_by },
                } => (tampered(verdict, behind_by), Some(state)),
                Guarded::Checked {
                    state,
                    check: ClockCheck::Trusted { .. },
                } => (verdict, Some(state)),
            },
        )
    }

    /// The seat borrowed from a floating license (`Licensing::borrow_seat`), checked offline at
    /// `now`: the stored `lease+jwt` verified (trusted key, this product), for the installed
    /// license if one is, live strictly before its `exp`, with the clock guard: a clock behind
    /// the sealed mark or the lease's own `iat` (beyond the tolerance) is
    /// [`Status::ClockTampered`]. Errors are only I/O failures of the store.
    pub fn check_borrowed_seat(&self, now: i64) -> Result<BorrowedSeat, StoreError> {
        let none = |reason: String| BorrowedSeat {
            status: Status::LeaseRequired,
            reason,
            lease: None,
        };
        let _lock = self.store.lock()?;
        let Some(token) = self.store.read_borrowed_lease()? else {
            return Ok(none("no seat is borrowed".into()));
        };
        let lease = match self.verifier.verify_lease(&token) {
            Ok(lease) => lease,
            Err(error) => {
                return Ok(none(format!(
                    "the borrowed seat's token is refused: {error}"
                )));
            }
        };
        let installed = self.store.read_token()?;
        let license_id = match &installed {
            Some(token) => match self.verifier.verify(token) {
                Ok(license) => license.id().to_owned(),
                Err(_) => lease.claims().license_id.clone(),
            },
            None => lease.claims().license_id.clone(),
        };
        let exp = lease.claims().exp;
        let (status, reason) = match lease.status_for(&license_id, now) {
            Status::Valid => (Status::Valid, format!("a seat is borrowed until {exp}")),
            Status::LeaseExpired => (
                Status::LeaseExpired,
                format!("the borrowed seat ended at {exp}"),
            ),
            other => (other, "the borrowed seat is for another license".into()),
        };
        let fingerprint = self.fingerprint();
        let key = clock_key(&fingerprint);
        let tampered = |reason: String| BorrowedSeat {
            status: Status::ClockTampered,
            reason,
            lease: Some(lease.clone()),
        };
        // Judged on time only while usable, as below and as `tampered` does.
        let guard = ClockGuard::new(self, key);
        let iat = lease.claims().iat;
        let check = match guard.guard(now, iat)? {
            Guarded::Checked { check, .. } => check,
            // As at startup: with a license installed the clock state exists, so its absence
            // is a deletion (which would otherwise leave only the lease's `iat` to guard).
            Guarded::Missing if installed.is_some() && status.is_usable() => {
                return Ok(tampered(
                    "clock state is missing although a license is installed".into(),
                ));
            }
            Guarded::Unsealable(reason) if status.is_usable() => return Ok(tampered(reason)),
            // No mark to go by (nor to move on): the lease's own `iat` still guards.
            Guarded::Missing | Guarded::Unsealable(_) => guard.check(None, now, iat),
        };
        let (status, reason) = match check {
            ClockCheck::RolledBack { behind_by } if status.is_usable() => {
                (Status::ClockTampered, rolled_back(behind_by))
            }
            _ => (status, reason),
        };
        Ok(BorrowedSeat {
            status,
            reason,
            lease: Some(lease),
        })
    }

    /// [`Self::check_at_startup`] with the system clock.
    pub fn check_at_startup_now(&self) -> Result<Verdict, StoreError> {
        self.check_at_startup(unix_now())
    }

    pub(crate) fn context_at(&self, now: i64, fingerprint: MachineFingerprint) -> Context {
        Context {
            now,
            fingerprint: Some(fingerprint),
            ..self.context.clone()
        }
    }
}

/// The clock guard of one product on one machine: the state sealed in the store, a clock
/// checked against its mark and trusted evidence, and the mark moved on. The one place the
/// unseal → check → advance-mark sequence is written ([`Self::guard`]); the startup check, the
/// borrowed-seat check, installing a token and an online validation all go through it.
pub(crate) struct ClockGuard<'a> {
    licensing: &'a Licensing,
    /// The seal's key ([`clock_key`]).
    key: &'a str,
}

/// What [`ClockGuard::guard`] found in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Guarded {
    /// No clock state is stored.
    Missing,
    /// The stored state does not unseal (edited, or copied from another machine): why.
    Unsealable(String),
    /// The state opened and the clock was checked against its mark: the state (its mark moved
    /// on when the clock was trusted and it advanced far enough) and the outcome.
    Checked {
        /// The state as it now is in the store.
        state: ClockState,
        /// The clock against the mark and the evidence.
        check: ClockCheck,
    },
}

impl<'a> ClockGuard<'a> {
    /// The guard of `licensing`'s product with the seal keyed by `key` ([`clock_key`]).
    pub(crate) fn new(licensing: &'a Licensing, key: &'a str) -> Self {
        ClockGuard { licensing, key }
    }

    /// `now` against `mark` (`None`: a fresh start, as for a new token or a signed server
    /// time) and `evidence` (trusted time: a token's `iat`, the server's time), within the
    /// licensing's tolerance.
    pub(crate) fn check(&self, mark: Option<i64>, now: i64, evidence: i64) -> ClockCheck {
        clock::check_clock(mark, now, Some(evidence), self.licensing.clock_tolerance)
    }

    /// The sealed state: `Ok(None)` when none is stored, `Err(why)` when it does not unseal.
    pub(crate) fn unseal(&self) -> Result<Result<Option<ClockState>, String>, StoreError> {
        let licensing = self.licensing;
        Ok(match licensing.store.read_clock()? {
            None => Ok(None),
            Some(text) => clock::unseal_state(&licensing.product_id, self.key, &text)
                .map(Some)
                .map_err(|e| e.to_string()),
        })
    }

    /// Seals `state` into the store.
    pub(crate) fn seal(&self, state: &ClockState) -> Result<(), StoreError> {
        let licensing = self.licensing;
        licensing
            .store
            .write_clock(&clock::seal_state(&licensing.product_id, self.key, state))
    }

    /// Unseals the state, checks `now` against its mark and `evidence`, and moves the mark on
    /// when the clock is trusted (persisted only once it advanced by [`MARK_GRANULARITY_SECS`],
    /// so most launches only read the store).
    pub(crate) fn guard(&self, now: i64, evidence: i64) -> Result<Guarded, StoreError> {
        let state = match self.unseal()? {
            Ok(Some(state)) => state,
            Ok(None) => return Ok(Guarded::Missing),
            Err(reason) => return Ok(Guarded::Unsealable(reason)),
        };
        let check = self.check(Some(state.mark), now, evidence);
        let state = match check {
            ClockCheck::Trusted { new_mark }
                if new_mark >= state.mark.saturating_add(MARK_GRANULARITY_SECS) =>
            {
                let state = ClockState {
                    mark: new_mark,
                    ..state
                };
                self.seal(&state)?;
                state
            }
            ClockCheck::Trusted { .. } | ClockCheck::RolledBack { .. } => state,
        };
        Ok(Guarded::Checked { state, check })
    }
}

/// The clock seal is keyed to the machine id component (stable when other hardware changes
/// within the match policy), or to the whole id when there is none (override).
pub(crate) fn clock_key(fp: &MachineFingerprint) -> &str {
    fp.components
        .get(component::MACHINE_ID)
        .or_else(|| fp.components.get(component::OVERRIDE))
        .unwrap_or(&fp.id)
}

/// A genuine refusal of the installed license in a kept server answer.
#[derive(Debug, Clone)]
struct KeptRefusal {
    /// The refusing status ([`ServerStatus::is_refusal`]), if the answer has one.
    status: Option<ServerStatus>,
    /// The answer says this machine is not activated on a license that needs it.
    machine: bool,
}

impl KeptRefusal {
    /// The verdict with this refusal applied.
    fn apply(self, verdict: Verdict) -> Verdict {
        let verdict = match &self.status {
            Some(status) => apply_server_status(verdict, status),
            None => verdict,
        };
        if self.machine {
            machine_refused(verdict)
        } else {
            verdict
        }
    }
}

/// The verdict when the licensing server reports the license `status` (its name in a signed
/// answer): suspended, revoked, expired and not-yet-valid replace the local verdict; active or
/// an unknown name leave it.
pub(crate) fn apply_server_status(verdict: Verdict, status: &ServerStatus) -> Verdict {
    let (status, reason) = match status {
        ServerStatus::Revoked => (
            Status::Revoked,
            "the licensing server reports the license revoked",
        ),
        ServerStatus::Suspended => (
            Status::Suspended,
            "the licensing server reports the license suspended",
        ),
        ServerStatus::Expired => (
            Status::Expired,
            "the licensing server reports the license expired",
        ),
        ServerStatus::NotYetValid => (
            Status::NotYetValid,
            "the licensing server reports the license not valid yet",
        ),
        ServerStatus::Active | ServerStatus::Other(_) => return verdict,
    };
    Verdict {
        status,
        reason: reason.into(),
        grace_left: None,
        ..verdict
    }
}

/// The verdict when the licensing server answered that this machine is not activated on a
/// license that runs only on activated machines: [`Status::MachineNotActivated`], unless the
/// verdict already refuses for another reason.
pub(crate) fn machine_refused(verdict: Verdict) -> Verdict {
    if !verdict.status.is_usable() && verdict.status != Status::NoLicense {
        return verdict;
    }
    Verdict {
        status: Status::MachineNotActivated,
        reason: "the licensing server reports this machine not activated on the license; \
                 activate it (or transfer the activation to it)"
            .into(),
        grace_left: None,
        ..verdict
    }
}

pub(crate) fn tampered(verdict: Verdict, behind_by: i64) -> Verdict {
    tampered_with(verdict, rolled_back(behind_by))
}

/// Why a clock `behind_by` seconds behind time already seen is not trusted.
fn rolled_back(behind_by: i64) -> String {
    format!("the clock is {behind_by} s behind time already seen; was it set back?")
}

fn tampered_with(verdict: Verdict, reason: String) -> Verdict {
    // Only a genuine license is judged on time; a license that fails for other reasons keeps
    // its own status (clock tampering would not make it usable).
    if verdict.status.is_usable() {
        Verdict {
            status: Status::ClockTampered,
            reason,
            grace_left: None,
            ..verdict
        }
    } else {
        verdict
    }
}

/// Seconds since the Unix epoch from the system clock (0 if the clock is before 1970).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod clock_guard_tests {
    use super::*;

    const MARK: i64 = 1_767_225_600;

    #[test]
    fn the_guard_unseals_checks_and_moves_the_mark_on() {
        let dir = tempfile::tempdir().unwrap();
        let licensing = Licensing::new(
            TrustStore::new(),
            "com.example.cad",
            LicenseStore::at(dir.path()).unwrap(),
        );
        let guard = ClockGuard::new(&licensing, "machine");
        assert_eq!(guard.guard(MARK, MARK).unwrap(), Guarded::Missing);

        guard.seal(&ClockState::mark(MARK)).unwrap();
        // Trusted, but not far enough on to be written.
        let near = MARK + MARK_GRANULARITY_SECS - 1;
        assert_eq!(
            guard.guard(near, MARK).unwrap(),
            Guarded::Checked {
                state: ClockState::mark(MARK),
                check: ClockCheck::Trusted { new_mark: near },
            }
        );
        assert_eq!(guard.unseal().unwrap(), Ok(Some(ClockState::mark(MARK))));
        // Far enough: the new mark is sealed.
        let later = MARK + MARK_GRANULARITY_SECS;
        assert_eq!(
            guard.guard(later, MARK).unwrap(),
            Guarded::Checked {
                state: ClockState::mark(later),
                check: ClockCheck::Trusted { new_mark: later },
            }
        );
        assert_eq!(guard.unseal().unwrap(), Ok(Some(ClockState::mark(later))));
        // Behind the mark beyond the tolerance: rolled back, the mark stays.
        let behind = later - DEFAULT_TOLERANCE_SECS - 1;
        assert_eq!(
            guard.guard(behind, MARK).unwrap(),
            Guarded::Checked {
                state: ClockState::mark(later),
                check: ClockCheck::RolledBack {
                    behind_by: DEFAULT_TOLERANCE_SECS + 1
                },
            }
        );
        assert_eq!(guard.unseal().unwrap(), Ok(Some(ClockState::mark(later))));
        // Evidence later than the mark counts too.
        assert!(matches!(
            guard
                .guard(later, later + DEFAULT_TOLERANCE_SECS + 1)
                .unwrap(),
            Guarded::Checked {
                check: ClockCheck::RolledBack { .. },
                ..
            }
        ));
        // Sealed for another machine: it does not unseal.
        assert!(matches!(
            ClockGuard::new(&licensing, "another machine")
                .guard(later, MARK)
                .unwrap(),
            Guarded::Unsealable(_)
        ));
        // A fresh start ignores the mark: only the evidence counts.
        assert_eq!(
            guard.check(None, behind, MARK),
            ClockCheck::Trusted { new_mark: MARK }
        );
    }
}
