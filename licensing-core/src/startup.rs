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
        let iat = license.claims().iat;
        let mark = match clock::check_clock(None, now, Some(iat), self.clock_tolerance) {
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
        let key = clock_key(&fingerprint);
        let answer = match self.sealed_state(key)? {
            Ok(Some(state)) => state.answer,
            _ => None,
        };
        self.store.write_clock(&clock::seal_state(
            &self.product_id,
            key,
            &ClockState { mark, answer },
        ))?;
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
                let key = clock_key(&self.fingerprint()).to_owned();
                let sealed = ClockState {
                    answer: digest,
                    ..state
                };
                self.store
                    .write_clock(&clock::seal_state(&self.product_id, &key, &sealed))?;
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
        self.store
            .write_clock(&clock::seal_state(&self.product_id, key, &state))?;
        if answer.is_none() {
            self.store.write_server_response(None)?;
        }
        Ok(())
    }

    /// Forgets a kept server refusal (a fresh activation is the server saying active): the
    /// clock state, when it opens, is sealed again without it, then the answer is removed.
    #[cfg(feature = "online-core")]
    pub(crate) fn forget_server_answer(&self, key: &str) -> Result<(), StoreError> {
        if let Ok(Some(state)) = self.sealed_state(key)?
            && state.answer.is_some()
        {
            self.store.write_clock(&clock::seal_state(
                &self.product_id,
                key,
                &ClockState::mark(state.mark),
            ))?;
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
        let state = match self.sealed_state(&key)? {
            Ok(Some(state)) => state,
            Ok(None) => {
                let verdict = tampered_with(
                    verdict,
                    "clock state is missing although a license is installed".into(),
                );
                return Ok((verdict, None));
            }
            Err(reason) => return Ok((tampered_with(verdict, reason), None)),
        };
        match clock::check_clock(
            Some(state.mark),
            now,
            Some(license.claims().iat),
            self.clock_tolerance,
        ) {
            ClockCheck::RolledBack { behind_by } => Ok((tampered(verdict, behind_by), Some(state))),
            ClockCheck::Trusted { new_mark } => {
                if new_mark >= state.mark.saturating_add(MARK_GRANULARITY_SECS) {
                    let state = ClockState {
                        mark: new_mark,
                        ..state
                    };
                    self.store
                        .write_clock(&clock::seal_state(&self.product_id, &key, &state))?;
                    return Ok((verdict, Some(state)));
                }
                Ok((verdict, Some(state)))
            }
        }
    }

    /// The clock state sealed in the store for this product and machine (`key`, see
    /// [`clock_key`]): `Ok(None)` when none is stored, `Err(why)` when it does not unseal.
    fn sealed_state(&self, key: &str) -> Result<Result<Option<ClockState>, String>, StoreError> {
        Ok(match self.store.read_clock()? {
            None => Ok(None),
            Some(text) => clock::unseal_state(&self.product_id, key, &text)
                .map(Some)
                .map_err(|e| e.to_string()),
        })
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
        let state = match self.sealed_state(key)? {
            Ok(state @ Some(_)) => state,
            // As at startup: with a license installed the clock state exists, so its absence
            // is a deletion (which would otherwise leave only the lease's `iat` to guard).
            Ok(None) if installed.is_some() && status.is_usable() => {
                return Ok(tampered(
                    "clock state is missing although a license is installed".into(),
                ));
            }
            Ok(None) => None,
            Err(reason) if status.is_usable() => return Ok(tampered(reason)),
            Err(_) => None,
        };
        let mark = state.map(|state| state.mark);
        let (status, reason) =
            match clock::check_clock(mark, now, Some(lease.claims().iat), self.clock_tolerance) {
                ClockCheck::RolledBack { behind_by } if status.is_usable() => {
                    (Status::ClockTampered, rolled_back(behind_by))
                }
                ClockCheck::Trusted { new_mark } => {
                    // A trusted check moves the mark on, as the startup check does.
                    if let Some(state) = state
                        && new_mark >= state.mark.saturating_add(MARK_GRANULARITY_SECS)
                    {
                        let state = ClockState {
                            mark: new_mark,
                            ..state
                        };
                        self.store.write_clock(&clock::seal_state(
                            &self.product_id,
                            key,
                            &state,
                        ))?;
                    }
                    (status, reason)
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
