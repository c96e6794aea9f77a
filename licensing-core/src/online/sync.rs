//! The online flow of [`Licensing`] (features `online` and `store`): activate, validate with a
//! time limit and fall back to the stored token, deactivate, air-gapped activation.

use std::time::Duration;

use super::{
    Activation, Client, Deactivation, HeldTokens, LeaseGrant, LeaseSecret, OfflineRequest,
    OnlineError, ServerStatus, Validation, new_nonce,
};
use crate::clock::{self, ClockCheck};
use crate::evaluate::{License, Verdict};
use crate::fingerprint::MachineFingerprint;
use crate::startup::{Licensing, apply_server_status, clock_key, tampered};
use crate::status::Status;
use crate::store::StoreError;

/// The outcome of an online check: the verdict to act on, and where it came from.
#[derive(Debug)]
pub struct OnlineCheck {
    /// The verdict to act on.
    pub verdict: Verdict,
    /// The verified license whenever the token evaluated was genuine (see
    /// [`Licensing::check_at_startup_license`]).
    pub license: Option<License>,
    /// The server's verified answer, when it answered.
    pub validation: Option<Validation>,
    /// Why the server was not asked or did not answer, when the verdict is the stored token's
    /// alone (offline). `None` when the server answered.
    pub offline_reason: Option<OnlineError>,
}

/// The outcome of an online activation.
#[derive(Debug)]
pub struct Activated {
    /// The verdict of the installed license.
    pub verdict: Verdict,
    /// The verified license, when the token was installed.
    pub license: Option<License>,
    /// The server's verified answer.
    pub activation: Activation,
}

impl Licensing {
    /// Activates this machine with `license_key` and installs the license token the server
    /// answers (verified, then stored with the key and the machine token, as [`Self::install`]
    /// does).
    pub fn activate(
        &self,
        client: &Client,
        license_key: &str,
        now: i64,
    ) -> Result<Activated, OnlineError> {
        let activation = client.activate(license_key, &self.fingerprint())?;
        let token = activation.license_token.clone().ok_or_else(|| {
            OnlineError::BadResponse("the activation carries no license token".into())
        })?;
        let _lock = self.store.lock()?;
        let (verdict, license) = self.install_unlocked(&token, now)?;
        self.store.write_license_key(license_key.trim())?;
        self.store.write_machine_token(&activation.machine_token)?;
        // A fresh activation is the server saying active: forget an older refusal.
        self.store.write_server_response(None)?;
        Ok(Activated {
            verdict,
            license,
            activation,
        })
    }

    /// Validates online with the stored license key (see [`Client::validate`]) and applies the
    /// answer: the refreshed token is stored, the signed server time moves the clock guard (a
    /// local clock far behind it is [`Status::ClockTampered`]), and a suspension or revocation
    /// is kept so later offline starts report it until the server says active again.
    pub fn validate_online(&self, client: &Client, now: i64) -> Result<OnlineCheck, OnlineError> {
        self.validate_within(client, now, client.config().deadline)
    }

    /// The startup check with the server: [`Self::validate_online`] within `limit` (at most the
    /// client's deadline); when the server cannot be asked or its answer is refused, the stored
    /// token is evaluated offline ([`Self::check_at_startup_license`]; its check-in deadline
    /// gives valid → valid in grace → check-in required), with the reason in
    /// [`OnlineCheck::offline_reason`]. Errors are only I/O failures of the store.
    pub fn check_online(
        &self,
        client: &Client,
        now: i64,
        limit: Duration,
    ) -> Result<OnlineCheck, StoreError> {
        match self.validate_within(client, now, limit) {
            Ok(check) => Ok(check),
            Err(OnlineError::Store(error)) => Err(error),
            Err(reason) => {
                let (verdict, license) = self.check_at_startup_license(now)?;
                Ok(OnlineCheck {
                    verdict,
                    license,
                    validation: None,
                    offline_reason: Some(reason),
                })
            }
        }
    }

    fn validate_within(
        &self,
        client: &Client,
        now: i64,
        limit: Duration,
    ) -> Result<OnlineCheck, OnlineError> {
        let key = self
            .store
            .read_license_key()?
            .ok_or(OnlineError::NotActivated)?;
        let fingerprint = self.fingerprint();
        let held = HeldTokens::from_verified(
            &self.verifier,
            self.store.read_token()?.as_deref(),
            self.store.read_machine_token()?.as_deref(),
            &fingerprint.id,
        );
        let validation = client.validate_within(&key, &fingerprint.id, Some(&held), limit)?;
        let _lock = self.store.lock()?;
        let (verdict, license) = self.apply_validation(&validation, &fingerprint, now)?;
        Ok(OnlineCheck {
            verdict,
            license,
            validation: Some(validation),
            offline_reason: None,
        })
    }

    /// Releases this machine's activation on the server, then clears the store.
    pub fn deactivate(&self, client: &Client) -> Result<Deactivation, OnlineError> {
        let key = self
            .store
            .read_license_key()?
            .ok_or(OnlineError::NotActivated)?;
        let answer = client.deactivate(&key, &self.fingerprint().id)?;
        self.store.clear()?;
        Ok(answer)
    }

    /// Borrows a seat of the floating license `license_key` for `duration` for `user` of this
    /// installation (`client_id`), see [`Client::borrow_lease`], and keeps its token in the
    /// store, where [`Self::check_borrowed_seat`] finds it offline until its `exp`, with its
    /// secret (owner-only file), which returning it early needs. A new request id each call,
    /// presenting the secret of the seat borrowed before (if it is still stored): the server
    /// answers that seat while it lasts, so calling again never takes a second one. Replaces a
    /// seat borrowed before.
    pub fn borrow_seat(
        &self,
        client: &Client,
        license_key: &str,
        client_id: &str,
        user: &str,
        duration: Duration,
    ) -> Result<LeaseGrant, OnlineError> {
        let request_id = new_nonce()?;
        let held = self.store.read_borrowed_secret()?.map(LeaseSecret::new);
        let grant = client.borrow_lease_holding(
            license_key,
            client_id,
            user,
            &request_id,
            duration,
            held.as_ref(),
        )?;
        let _lock = self.store.lock()?;
        self.store
            .write_borrowed_secret(grant.lease_secret.as_ref().map(LeaseSecret::expose))?;
        self.store.write_borrowed_lease(Some(&grant.lease_token))?;
        Ok(grant)
    }

    /// Returns the borrowed seat early (a check-in: the seat is free on the server at once) and
    /// removes its token from the store. `false` when none is stored; a stored token that no
    /// longer verifies is removed too (there is nothing it could return).
    pub fn return_seat(&self, client: &Client, license_key: &str) -> Result<bool, OnlineError> {
        let Some(token) = self.store.read_borrowed_lease()? else {
            return Ok(false);
        };
        let Ok(lease) = self.verifier.verify_lease(&token) else {
            let _lock = self.store.lock()?;
            self.store.write_borrowed_lease(None)?;
            return Ok(false);
        };
        let secret = self.store.read_borrowed_secret()?.map(LeaseSecret::new);
        client.check_in(license_key, lease.claims(), secret.as_ref())?;
        let _lock = self.store.lock()?;
        // Another process of the app may have borrowed again meanwhile: keep that one.
        if self.store.read_borrowed_lease()?.as_deref() == Some(token.as_str()) {
            self.store.write_borrowed_lease(None)?;
        }
        Ok(true)
    }

    /// Writes an air-gapped activation request for this machine (the JSON to hand to the
    /// vendor) and keeps it in the store as pending, so only the response to it is accepted.
    pub fn offline_activation_request(
        &self,
        client: &Client,
        license_key: &str,
        now: i64,
    ) -> Result<String, OnlineError> {
        let request = client.offline_activation_request(license_key, &self.fingerprint(), now)?;
        let json = request.to_json();
        let _lock = self.store.lock()?;
        self.store.write_pending_request(Some(&json))?;
        Ok(json)
    }

    /// Imports the vendor's air-gapped activation response (the file's text): verified against
    /// the pending request (signature, product, nonce, this machine, not expired), then
    /// applied like an online validation; the request is no longer pending.
    pub fn import_offline_response(
        &self,
        client: &Client,
        response: &str,
        now: i64,
    ) -> Result<OnlineCheck, OnlineError> {
        let _lock = self.store.lock()?;
        let pending = self
            .store
            .read_pending_request()?
            .ok_or(OnlineError::NoPendingRequest)?;
        let request = OfflineRequest::from_json(&pending)?;
        let fingerprint = self.fingerprint();
        if request.fingerprint.id != fingerprint.id {
            return Err(OnlineError::Mismatch(
                "the pending request was made for another machine".into(),
            ));
        }
        let validation = client.verify_offline_response(response, &request, now)?;
        let (verdict, license) = self.apply_validation(&validation, &fingerprint, now)?;
        self.store.write_license_key(&request.license_key)?;
        self.store.write_pending_request(None)?;
        Ok(OnlineCheck {
            verdict,
            license,
            validation: Some(validation),
            offline_reason: None,
        })
    }

    /// Applies a verified server answer; the caller holds the store's lock.
    fn apply_validation(
        &self,
        validation: &Validation,
        fingerprint: &MachineFingerprint,
        now: i64,
    ) -> Result<(Verdict, Option<License>), StoreError> {
        let (verdict, license) = match (&validation.status, &validation.license_token) {
            (ServerStatus::Active, Some(token)) => self.install_unlocked(token, now)?,
            _ => self.evaluate_stored(now, fingerprint)?,
        };
        if let Some(machine_token) = &validation.machine_token {
            self.store.write_machine_token(machine_token)?;
        }
        // Kept only while the server says the license is not in force.
        let refusal = matches!(
            validation.status,
            ServerStatus::Suspended
                | ServerStatus::Revoked
                | ServerStatus::Expired
                | ServerStatus::NotYetValid
        );
        self.store
            .write_server_response(refusal.then_some(validation.response_token.as_str()))?;
        let verdict = apply_server_status(verdict, validation.status.as_str());
        // The signed, fresh server time is authoritative: it becomes the clock mark (even
        // below a mark a clock set ahead had pushed up), and a clock behind it is rolled back.
        let behind = match clock::check_clock(
            None,
            now,
            Some(validation.server_time),
            self.clock_tolerance,
        ) {
            ClockCheck::RolledBack { behind_by } => Some(behind_by),
            ClockCheck::Trusted { .. } => None,
        };
        if license.is_some() {
            self.store.write_clock(&clock::seal(
                &self.product_id,
                clock_key(fingerprint),
                validation.server_time,
            ))?;
        }
        let verdict = match behind {
            Some(behind_by) => tampered(verdict, behind_by),
            None => verdict,
        };
        Ok((verdict, license))
    }

    /// The stored token's verdict at `now`, without the clock guard (the caller has a trusted
    /// time).
    fn evaluate_stored(
        &self,
        now: i64,
        fingerprint: &MachineFingerprint,
    ) -> Result<(Verdict, Option<License>), StoreError> {
        let Some(token) = self.store.read_token()? else {
            let verdict = Verdict {
                reason: "no license is installed".into(),
                ..Verdict::from_status(Status::NoLicense)
            };
            return Ok((verdict, None));
        };
        match self.verifier.verify(&token) {
            Ok(license) => {
                let verdict = license.evaluate(&self.context_at(now, fingerprint.clone()));
                Ok((verdict, Some(license)))
            }
            Err(error) => Ok((Verdict::from_error(&error), None)),
        }
    }
}
