//! The online flow of [`Licensing`] (features `online` and `store`): activate, validate with a
//! time limit and fall back to the stored token, deactivate, air-gapped activation.

use std::time::Duration;

use super::{
    Activation, Client, Deactivation, HeldTokens, LeaseGrant, LeaseSecret, OfflineRequest,
    OnlineError, ServerStatus, Validation, new_nonce,
};
use crate::clock::ClockCheck;
use crate::evaluate::{License, Verdict};
use crate::fingerprint::MachineFingerprint;
use crate::startup::{
    ClockGuard, Licensing, apply_server_status, clock_key, machine_refused, tampered,
};
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
        self.install_activation(activation, license_key, now)
    }

    /// Moves the activation of the machine whose fingerprint id is `from_fingerprint_id` (the
    /// old machine: its id is what its `machine fingerprint` printed, or what the server lists)
    /// to this machine, with `license_key` (see [`Client::transfer`]: it counts against the
    /// policy's `max_transfers`), and installs the answer as [`Self::activate`] does.
    pub fn transfer(
        &self,
        client: &Client,
        license_key: &str,
        from_fingerprint_id: &str,
        now: i64,
    ) -> Result<Activated, OnlineError> {
        let activation = client.transfer(license_key, from_fingerprint_id, &self.fingerprint())?;
        self.install_activation(activation, license_key, now)
    }

    fn install_activation(
        &self,
        activation: Activation,
        license_key: &str,
        now: i64,
    ) -> Result<Activated, OnlineError> {
        let token = activation.license_token.clone().ok_or_else(|| {
            OnlineError::BadResponse("the activation carries no license token".into())
        })?;
        let _lock = self.store.lock()?;
        let (verdict, license, stored) = self.install_stored(&token, now)?;
        if !stored {
            // Not stored (a clock behind the token's `iat`): the store keeps what it had, its
            // key, machine token and any refusal it keeps, untouched.
            return Ok(Activated {
                verdict,
                license,
                activation,
            });
        }
        self.store.write_license_key(license_key.trim())?;
        self.store.write_machine_token(&activation.machine_token)?;
        self.store
            .write_deactivation_key(activation.deactivation_key.as_deref())?;
        // A receipt of an earlier offline deactivation was used up by this activation.
        self.store.write_deactivation_receipt(None)?;
        // A fresh activation is the server saying active: forget an older refusal.
        self.forget_server_answer(clock_key(&self.fingerprint()))?;
        Ok(Activated {
            verdict,
            license,
            activation,
        })
    }

    /// Deactivates this air-gapped machine by itself: writes an offline deactivation receipt
    /// (see [`crate::deactivation`]: MAC'd with the deactivation key the server issued at
    /// activation, naming the license, this machine's activation and its machine token), keeps
    /// it in the store, then removes the license from the store (the startup check then says
    /// [`Status::NoLicense`]). Answers the receipt's JSON: the file to hand to the vendor, who
    /// frees the machine's slot with it (`licensing-server offline deactivate --receipt`, or
    /// `POST /v1/offline/deactivate`).
    ///
    /// When nothing is installed any more but a receipt was written before (the app did not
    /// save it), that receipt is answered again. [`OnlineError::NotActivated`] when neither a
    /// machine token nor a receipt is stored; [`OnlineError::Config`] when the activation
    /// carries no deactivation key (made by a server that predates offline deactivation:
    /// deactivate online, or ask the vendor to remove the machine).
    pub fn offline_deactivate(&self, now: i64) -> Result<String, OnlineError> {
        let _lock = self.store.lock()?;
        let Some(machine_token) = self.store.read_machine_token()? else {
            return match self.store.read_deactivation_receipt()? {
                Some(receipt) => {
                    // A crash after the receipt was written may have left files behind.
                    self.store.clear_unlocked()?;
                    Ok(receipt)
                }
                None => Err(OnlineError::NotActivated),
            };
        };
        let key = self.store.read_deactivation_key()?.ok_or_else(|| {
            OnlineError::Config(
                "this activation has no deactivation key (the server predates offline \
                 deactivation): deactivate online or ask the vendor to remove the machine"
                    .into(),
            )
        })?;
        let machine = crate::jws::verify_token(
            &machine_token,
            crate::jws::TokenKind::Machine,
            self.verifier.trust_store(),
        )
        .map_err(OnlineError::Token)?;
        let machine: crate::protocol::MachineClaims =
            serde_json::from_value(serde_json::Value::Object(machine.claims)).map_err(|e| {
                OnlineError::BadResponse(format!("the stored machine token's claims: {e}"))
            })?;
        let claim = |name: &str, value: &str| {
            if value.is_empty() {
                Err(OnlineError::BadResponse(format!(
                    "the stored machine token has no string `{name}`"
                )))
            } else {
                Ok(value.to_owned())
            }
        };
        let fingerprint = claim("fingerprint.id", &machine.fingerprint.id)?;
        let receipt = crate::deactivation::DeactivationReceipt::sign(
            &key,
            &claim("license_id", &machine.license_id)?,
            &claim("sub", &machine.sub)?,
            &fingerprint,
            &claim("jti", &machine.jti)?,
            now,
            &new_nonce()?,
        )
        .map_err(|e| OnlineError::Config(format!("the stored deactivation key: {e}")))?;
        let json = receipt.to_json();
        // The receipt first: a crash after it leaves a receipt to hand over, never a machine
        // that forgot its license but cannot prove it.
        self.store.write_deactivation_receipt(Some(&json))?;
        self.store.clear_unlocked()?;
        Ok(json)
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
        let validation = client.validate_within(
            &key,
            &fingerprint.id,
            Some(&fingerprint),
            Some(&held),
            limit,
        )?;
        let _lock = self.store.lock()?;
        let (verdict, license, _) = self.apply_validation(&validation, &fingerprint, now)?;
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
        let answer = client.deactivate_machine(&key, &self.fingerprint())?;
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
        let (verdict, license, applied) = self.apply_validation(&validation, &fingerprint, now)?;
        if !applied {
            // The answer's token was not stored (a clock behind its `iat`): the store keeps
            // what it had, and the request stays pending to import again once the clock is right.
            return Ok(OnlineCheck {
                verdict,
                license,
                validation: Some(validation),
                offline_reason: None,
            });
        }
        self.store.write_license_key(&request.license_key)?;
        // This activation's key, or none (an older server): never a key of an earlier one.
        self.store
            .write_deactivation_key(validation.deactivation_key.as_deref())?;
        self.store.write_deactivation_receipt(None)?;
        self.store.write_pending_request(None)?;
        Ok(OnlineCheck {
            verdict,
            license,
            validation: Some(validation),
            offline_reason: None,
        })
    }

    /// Applies a verified server answer; the caller holds the store's lock. The flag is
    /// `false` when the answer's token could not be stored (a clock behind its `iat`): then
    /// nothing in the store changed.
    fn apply_validation(
        &self,
        validation: &Validation,
        fingerprint: &MachineFingerprint,
        now: i64,
    ) -> Result<(Verdict, Option<License>, bool), StoreError> {
        let refuses_machine = validation.refuses_machine();
        let (verdict, license) = match (&validation.status, &validation.license_token) {
            // A token answered beside a refusal of this machine is not installed.
            (ServerStatus::Active, Some(token)) if !refuses_machine => {
                let (verdict, license, stored) = self.install_stored(token, now)?;
                if !stored {
                    // Not stored (a clock behind the token's `iat`): the store, and any
                    // refusal it keeps, stay as they were.
                    return Ok((verdict, license, false));
                }
                (verdict, license)
            }
            _ => self.evaluate_stored(now, fingerprint)?,
        };
        if let Some(machine_token) = &validation.machine_token {
            self.store.write_machine_token(machine_token)?;
        }
        // Kept only while the server says the license is not in force, or this machine not
        // activated on it (a copied store stays refused at offline starts).
        let refusal = refuses_machine || validation.status.is_refusal();
        let kept = refusal.then_some(validation.response_token.as_str());
        let verdict = apply_server_status(verdict, &validation.status);
        let verdict = if refuses_machine {
            machine_refused(verdict)
        } else {
            verdict
        };
        // The signed, fresh server time is authoritative: it becomes the clock mark (even
        // below a mark a clock set ahead had pushed up), and a clock behind it is rolled back.
        let behind = match ClockGuard::new(self, clock_key(fingerprint)).check(
            None,
            now,
            validation.server_time,
        ) {
            ClockCheck::RolledBack { behind_by } => Some(behind_by),
            ClockCheck::Trusted { .. } => None,
        };
        // The answer kept is sealed with the mark, so deleting or replacing it is evident.
        if license.is_some() {
            self.keep_server_answer(clock_key(fingerprint), kept, validation.server_time)?;
        } else {
            self.store.write_server_response(kept)?;
        }
        let verdict = match behind {
            Some(behind_by) => tampered(verdict, behind_by),
            None => verdict,
        };
        Ok((verdict, license, true))
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
