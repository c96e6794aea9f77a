//! Test-only parts of the seat writer: the client ids that make a write panic or keep off the
//! one-statement grant, and running writes as one batch whatever the timing.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use tokio::sync::{mpsc, oneshot};

use super::super::DbResult;
use super::super::leases::{CheckOutOutcome, LeaseUpdate, LeaseWrite, OwnedCheckOut};
use super::grants::licenses_of;
use super::writer::{Job, OneStatementBackoff, Outcome, Pools, QUEUE, Write, mismatch, run};

/// A check-out from this client panics inside the writer (tests of the panic isolation).
pub(crate) const PANIC_FOR_TESTS: &str = "panic-inside-the-seat-writer";

/// Check-outs from clients whose id starts with this never take [`grant_in_one_statement`]
/// (tests of the transaction path under load).
pub(crate) const TRANSACTION_ONLY_FOR_TESTS: &str = "transaction-only-";

impl super::super::Db {
    /// Runs these check-outs as one batch, whatever the timing: they are all queued before a
    /// writer starts (tests of the batch semantics and of the one-by-one fallback).
    pub(crate) async fn check_out_as_one_batch(
        &self,
        checkouts: &[super::super::CheckOut<'_>],
    ) -> Vec<DbResult<CheckOutOutcome>> {
        self.seat_writes_as_one_batch(checkouts, &[]).await.0
    }

    /// [`Self::check_out_as_one_batch`] with check-ins in the same batch: (license, lease,
    /// epoch, secret hash, now) each.
    pub(crate) async fn seat_writes_as_one_batch(
        &self,
        checkouts: &[super::super::CheckOut<'_>],
        check_ins: &[(&str, &str, i64, Option<&str>, i64)],
    ) -> (Vec<DbResult<CheckOutOutcome>>, Vec<DbResult<LeaseUpdate>>) {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let mut answers = Vec::new();
        let writes = checkouts
            .iter()
            .map(|c| Write::CheckOut(OwnedCheckOut::from(c)))
            .chain(
                check_ins
                    .iter()
                    .map(|(license, lease, epoch, secret, now)| Write::Lease {
                        kind: LeaseWrite::CheckIn,
                        license_id: (*license).to_owned(),
                        lease_id: (*lease).to_owned(),
                        epoch: *epoch,
                        secret: secret.map(str::to_owned),
                        now: *now,
                    }),
            );
        for write in writes {
            let (reply, answer) = oneshot::channel();
            assert!(jobs.send(Job { write, reply }).await.is_ok());
            answers.push(answer);
        }
        drop(jobs);
        let pools = Arc::new(Pools {
            engine: self.engine,
            durable: self.pool.clone(),
            gate: self.gate.clone(),
            relaxed: self.relaxed.clone(),
            batch_wait_us: Arc::new(AtomicU64::new(0)),
            granting: tokio::sync::Mutex::new(None),
            one_statement: std::sync::Mutex::new(OneStatementBackoff::default()),
        });
        run(pools, queue).await;
        let mut outcomes = Vec::new();
        let mut updates = Vec::new();
        for (index, answer) in answers.into_iter().enumerate() {
            let answer = answer.await.unwrap_or(Err(sqlx::Error::WorkerCrashed));
            if index < checkouts.len() {
                outcomes.push(answer.and_then(|outcome| match outcome {
                    Outcome::CheckOut(outcome) => Ok(outcome),
                    other => Err(mismatch("check-out", &other)),
                }));
            } else {
                updates.push(answer.and_then(|outcome| match outcome {
                    Outcome::Lease(update) => Ok(update),
                    other => Err(mismatch("check-in", &other)),
                }));
            }
        }
        (outcomes, updates)
    }
}

/// What one path of the writer did, by license: each time, how many check-outs (tests: that
/// the path ran, and for which check-outs).
pub(super) struct LicenseLog(std::sync::Mutex<Vec<(String, usize)>>);

impl LicenseLog {
    pub(super) const fn new() -> Self {
        LicenseLog(std::sync::Mutex::new(Vec::new()))
    }

    pub(super) fn record(&self, license_id: &str, check_outs: usize) {
        if let Ok(mut log) = self.0.lock() {
            log.push((license_id.to_owned(), check_outs));
        }
    }

    /// One entry for each license of `check_outs` (sorted by license): how many they are.
    pub(super) fn record_each(&self, check_outs: &[&OwnedCheckOut]) {
        for license in licenses_of(check_outs) {
            let n = check_outs
                .iter()
                .filter(|c| c.license_id == license)
                .count();
            self.record(license, n);
        }
    }

    /// The counts recorded for `license_id`, in order.
    pub(super) fn counts(&self, license_id: &str) -> Vec<usize> {
        self.0.lock().map_or_else(
            |_| Vec::new(),
            |log| {
                log.iter()
                    .filter(|(license, _)| license == license_id)
                    .map(|(_, n)| *n)
                    .collect()
            },
        )
    }
}

pub(super) static GRANTED_IN_ONE_STATEMENT: LicenseLog = LicenseLog::new();

pub(super) static GRANTED_TOGETHER: LicenseLog = LicenseLog::new();

/// The sizes of the groups of leases [`grant_in_one_statement`](super::grants::grant_in_one_statement) granted for `license_id`.
pub(crate) fn granted_in_one_statement(license_id: &str) -> Vec<usize> {
    GRANTED_IN_ONE_STATEMENT.counts(license_id)
}

/// The sizes of the groups of leases [`grant_together`](super::grants::grant_together) granted for `license_id`, in order.
pub(crate) fn granted_together(license_id: &str) -> Vec<usize> {
    GRANTED_TOGETHER.counts(license_id)
}

/// The licenses of the check-outs whose [`grant_in_one_statement`](super::grants::grant_in_one_statement) granted nothing (tests).
pub(super) static REFUSED_IN_ONE_STATEMENT: LicenseLog = LicenseLog::new();

/// Whether a statement of [`grant_in_one_statement`](super::grants::grant_in_one_statement) with a check-out of `license_id` granted
/// nothing (tests: that the statement ran and refused, rather than was never tried).
pub(crate) fn refused_in_one_statement(license_id: &str) -> bool {
    !REFUSED_IN_ONE_STATEMENT.counts(license_id).is_empty()
}

/// The license of the first check-out of each batch that ran in a transaction begun ahead
/// (tests: that the path ran).
pub(super) static BEGUN_AHEAD_USED: LicenseLog = LicenseLog::new();

/// Whether a batch led by a check-out of `license_id` ran in a transaction begun ahead.
pub(crate) fn begun_ahead_for(license_id: &str) -> bool {
    !BEGUN_AHEAD_USED.counts(license_id).is_empty()
}
