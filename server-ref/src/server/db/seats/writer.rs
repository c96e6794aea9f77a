//! The writer task: gathers the seat writes waiting, runs them as one batch, commits once and
//! answers each (see the module doc of `seats`).
//!
//! Unlike the other license writes, whose handler opens and commits the transaction
//! (`Db::begin_license_change`), a seat write's transaction belongs to this task by design:
//! it is the batch of every seat write waiting (group commit), not one request's.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::{AnyConnection, AnyPool};
use tokio::sync::{mpsc, oneshot};

use super::super::leases::{CheckOutOutcome, LeaseUpdate, LeaseWrite, OwnedCheckOut, update_lease};
use super::super::{DbResult, Engine};
use super::grants::{grant_in_one_statement, grant_together, plain_check_outs};
use super::held::Seen;
#[cfg(test)]
use super::test_support::BEGUN_AHEAD_USED;
use super::writes::check_out;

/// At most this many writes share one transaction.
const MAX_BATCH: usize = 256;

/// Writes waiting for the writer beyond this make their senders wait (backpressure).
pub(super) const QUEUE: usize = 4096;

#[derive(Debug)]
pub(super) enum Write {
    CheckOut(OwnedCheckOut),
    Lease {
        kind: LeaseWrite,
        license_id: String,
        lease_id: String,
        epoch: i64,
        /// SHA-256 hex of the secret presented, if any.
        secret: Option<String>,
        now: i64,
    },
}

impl Write {
    /// Lock order across replicas: by license, a license's check-out (license row lock) before
    /// its lease updates (lease row locks).
    fn order(&self) -> (&str, u8) {
        match self {
            Write::CheckOut(c) => (&c.license_id, 0),
            Write::Lease { license_id, .. } => (license_id, 1),
        }
    }

    /// Whether the commit must reach the disk before the answer.
    fn durable(&self) -> bool {
        !matches!(
            self,
            Write::Lease {
                kind: LeaseWrite::Heartbeat,
                ..
            }
        )
    }
}

#[derive(Debug)]
pub(super) enum Outcome {
    CheckOut(CheckOutOutcome),
    Lease(LeaseUpdate),
}

pub(super) struct Job {
    pub(super) write: Write,
    pub(super) reply: oneshot::Sender<DbResult<Outcome>>,
}

/// The handle to the writer task; cloned with the [`super::Db`].
#[derive(Debug, Clone)]
pub(crate) struct SeatWriter {
    writer: mpsc::Sender<Job>,
    /// [`Pools::batch_wait_us`], shared with the writer task.
    batch_wait_us: Arc<AtomicU64>,
}

/// What the writer task writes through.
pub(super) struct Pools {
    pub(super) engine: Engine,
    pub(super) durable: AnyPool,
    /// The connections that commit without waiting for the disk (`Db::relaxed`), for batches
    /// of heartbeats only.
    pub(super) relaxed: AnyPool,
    /// SQLite: the process's turn to write (`write_gate`), taken by every batch.
    pub(super) gate: super::super::write_gate::WriteGate,
    /// The longest [`gather`] waits, in microseconds.
    pub(super) batch_wait_us: Arc<AtomicU64>,
    /// The durable connection [`grant_in_one_statement`] keeps between batches: taking one
    /// from the pool each time costs a round trip (the pool's liveness test), as much as the
    /// statement's own. Dropped when a statement on it fails, and when no write came for
    /// [`BEGUN_AHEAD_IDLE`].
    pub(super) granting: tokio::sync::Mutex<Option<sqlx::pool::PoolConnection<sqlx::Any>>>,
    /// Batches that skip [`grant_in_one_statement`] before it is tried again, and how many
    /// times in a row it granted nothing: see [`OneStatementBackoff`].
    pub(super) one_statement: std::sync::Mutex<OneStatementBackoff>,
}

impl SeatWriter {
    /// Starts the writer task on the current tokio runtime. It ends when the last handle is
    /// dropped.
    pub fn start(
        engine: Engine,
        durable: AnyPool,
        relaxed: AnyPool,
        gate: super::super::write_gate::WriteGate,
    ) -> SeatWriter {
        let batch_wait_us = Arc::new(AtomicU64::new(micros(DEFAULT_BATCH_WAIT)));
        let pools = Arc::new(Pools {
            engine,
            durable,
            relaxed,
            gate,
            batch_wait_us: batch_wait_us.clone(),
            granting: tokio::sync::Mutex::new(None),
            one_statement: std::sync::Mutex::new(OneStatementBackoff::default()),
        });
        let (writer, queue) = mpsc::channel(QUEUE);
        tokio::spawn(run(pools, queue));
        SeatWriter {
            writer,
            batch_wait_us,
        }
    }

    /// Sets how long the writer may wait for a batch to fill ([`gather`]); zero: never.
    pub fn set_batch_wait(&self, wait: Duration) {
        self.batch_wait_us.store(micros(wait), Ordering::Relaxed);
    }

    async fn submit(&self, write: Write) -> DbResult<Outcome> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(Job { write, reply })
            .await
            .map_err(|_| sqlx::Error::WorkerCrashed)?;
        answer.await.map_err(|_| sqlx::Error::WorkerCrashed)?
    }

    /// A check-out (see `Db::check_out`).
    pub async fn check_out(&self, c: OwnedCheckOut) -> DbResult<CheckOutOutcome> {
        match self.submit(Write::CheckOut(c)).await? {
            Outcome::CheckOut(outcome) => Ok(outcome),
            Outcome::Lease(other) => Err(mismatch("check-out", &other)),
        }
    }

    /// A heartbeat or check-in of the lease `lease_id` presenting `epoch` and `secret` (the
    /// SHA-256 hex of its secret).
    pub async fn lease(
        &self,
        kind: LeaseWrite,
        license_id: &str,
        lease_id: &str,
        epoch: i64,
        secret: Option<&str>,
        now: i64,
    ) -> DbResult<LeaseUpdate> {
        let write = Write::Lease {
            kind,
            license_id: license_id.to_owned(),
            lease_id: lease_id.to_owned(),
            epoch,
            secret: secret.map(str::to_owned),
            now,
        };
        match self.submit(write).await? {
            Outcome::Lease(update) => Ok(update),
            Outcome::CheckOut(other) => Err(mismatch("lease update", &other)),
        }
    }
}

fn micros(wait: Duration) -> u64 {
    u64::try_from(wait.as_micros()).unwrap_or(u64::MAX)
}

/// The writer answered a write with another write's outcome: a bug, reported as an error
/// rather than a panic.
pub(super) fn mismatch(asked: &str, got: &dyn std::fmt::Debug) -> sqlx::Error {
    sqlx::Error::Protocol(format!("seat writer answered a {asked} with {got:?}"))
}

pub(super) async fn run(pools: Arc<Pools>, mut queue: mpsc::Receiver<Job>) {
    let mut last_batch = 0;
    // PostgreSQL under load: the next batch's transaction, begun while the last batch's
    // writers are answered and come back, so its `BEGIN` round trip is off the batch's path.
    let mut begun_ahead: Option<SeatTransaction> = None;
    loop {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let holding = begun_ahead.is_some() || pools.granting.lock().await.is_some();
        let received = if holding {
            match tokio::time::timeout(BEGUN_AHEAD_IDLE, queue.recv_many(&mut batch, MAX_BATCH))
                .await
            {
                Ok(received) => received,
                Err(_) => {
                    // No write came: give the connections back (the transaction rolled back)
                    // rather than hold them while idle; a pool closing at shutdown waits for
                    // every connection.
                    begun_ahead = None;
                    *pools.granting.lock().await = None;
                    queue.recv_many(&mut batch, MAX_BATCH).await
                }
            }
        } else {
            queue.recv_many(&mut batch, MAX_BATCH).await
        };
        if received == 0 {
            return;
        }
        let wait = Duration::from_micros(pools.batch_wait_us.load(Ordering::Relaxed));
        let gathering = std::time::Instant::now();
        let queued = batch.len();
        let gathered = gather(&mut queue, &mut batch, last_batch, wait).await;
        if gathered != Gathered::NoWait {
            tracing::debug!(
                ?gathered,
                queued,
                writes = batch.len(),
                waited_us = gathering.elapsed().as_micros() as u64,
                "seat batch waited"
            );
        }
        last_batch = batch.len();
        // In a task of its own: a panic while writing fails this batch's requests (their
        // answers are dropped: `WorkerCrashed`), not every later seat write of the process.
        let written = tokio::spawn(write_batch(pools.clone(), batch, begun_ahead.take()));
        let in_one_statement = match written.await {
            Ok(in_one_statement) => in_one_statement,
            Err(error) => {
                tracing::error!(%error, "a seat batch panicked");
                false
            }
        };
        // A batch granted in one statement needed no transaction: the next one likely will
        // not either.
        if pools.engine == Engine::Postgres && last_batch > 1 && !in_one_statement {
            // A failed `BEGIN` is left to the next batch, which begins as usual.
            begun_ahead = pools.durable.begin().await.ok().map(SeatTransaction::from);
        }
    }
}

impl Pools {
    /// Runs `f` on the writer's [`OneStatementBackoff`].
    fn backoff<T>(&self, f: impl FnOnce(&mut OneStatementBackoff) -> T) -> T {
        match self.one_statement.lock() {
            Ok(mut backoff) => f(&mut backoff),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }
}

/// How the writer backs off [`grant_in_one_statement`] while it keeps granting nothing (every
/// seat taken and check-outs denied, clients coming back for their leases, another replica
/// writing the same licenses): a statement that grants nothing costs a round trip on top of
/// the transaction path. After `n` such batches in a row, the next 2^n − 1 plain batches (at
/// most 63) go straight to the transaction path; a batch granted in one statement resets it.
#[derive(Debug, Default)]
pub(super) struct OneStatementBackoff {
    skip: u32,
    refusals: u32,
}

impl OneStatementBackoff {
    /// Whether this batch tries the statement (a batch that does not counts as skipped).
    fn try_now(&mut self) -> bool {
        if self.skip == 0 {
            return true;
        }
        self.skip -= 1;
        false
    }

    fn granted(&mut self) {
        self.refusals = 0;
    }

    fn refused(&mut self) {
        self.refusals = (self.refusals + 1).min(6);
        self.skip = (1 << self.refusals) - 1;
    }
}

/// A seat batch's transaction.
type SeatTransaction = super::super::Tx;

/// How long a transaction begun ahead, or the connection kept for [`grant_in_one_statement`],
/// waits for a write before it is given back.
const BEGUN_AHEAD_IDLE: Duration = Duration::from_millis(100);

/// How long the writer may wait for a batch to fill unless told otherwise
/// ([`SeatWriter::set_batch_wait`]).
pub(crate) const DEFAULT_BATCH_WAIT: Duration = Duration::from_millis(1);

/// Group commit's wait: at most `wait`, until `batch` holds as many writes as the last batch
/// carried (`expected`). Under load the writers just answered come back within a fraction of
/// a batch's time; without this wait the writer committed the one write already queued alone,
/// then the others, in batches alternating 1 and 7 on 8 clients — two commits for 8
/// check-outs instead of one (docs/BENCHMARKS.md). It waits only when fewer writes are queued
/// than the last batch carried: not while the load holds or grows, and not at all when writes
/// come one at a time; when batches shrink (the load dropped, or arrivals are uneven) a batch
/// may wait out `wait`, which is why it is short and can be turned off. The same idea as
/// PostgreSQL's `commit_delay` with `commit_siblings`.
async fn gather(
    queue: &mut mpsc::Receiver<Job>,
    batch: &mut Vec<Job>,
    expected: usize,
    wait: Duration,
) -> Gathered {
    let expected = expected.min(MAX_BATCH);
    if batch.len() >= expected || wait.is_zero() {
        return Gathered::NoWait;
    }
    let deadline = tokio::time::Instant::now() + wait;
    while batch.len() < expected {
        let limit = MAX_BATCH - batch.len();
        match tokio::time::timeout_at(deadline, queue.recv_many(batch, limit)).await {
            Ok(0) => return Gathered::Closed,
            Err(_) => return Gathered::TimedOut,
            Ok(_) => {}
        }
    }
    Gathered::Full
}

/// How [`gather`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gathered {
    /// It did not wait: the batch was as large as the last one, or waiting is off.
    NoWait,
    /// The batch became as large as the last one.
    Full,
    /// The wait ran out first.
    TimedOut,
    /// Every sender is gone.
    Closed,
}

/// Writes one batch and answers each of its writes; whether it was granted in one statement
/// ([`grant_in_one_statement`]).
async fn write_batch(
    pools: Arc<Pools>,
    mut batch: Vec<Job>,
    begun: Option<SeatTransaction>,
) -> bool {
    // Stable: writes of one license keep their queue order.
    batch.sort_by(|a: &Job, b: &Job| a.write.order().cmp(&b.write.order()));
    match commit(&pools, &batch, begun).await {
        Ok((outcomes, in_one_statement)) => {
            for (job, outcome) in batch.into_iter().zip(outcomes) {
                // The caller may have gone (its request was cancelled); the write stands.
                let _ = job.reply.send(Ok(outcome));
            }
            return in_one_statement;
        }
        Err(error) if batch.len() == 1 => {
            if let Some(job) = batch.pop() {
                let _ = job.reply.send(Err(error));
            }
        }
        Err(error) => {
            tracing::warn!(%error, writes = batch.len(), "seat batch rolled back; writing one by one");
            for job in batch {
                let result = commit(&pools, std::slice::from_ref(&job), None)
                    .await
                    .and_then(|(mut outcomes, _)| outcomes.pop().ok_or(sqlx::Error::RowNotFound));
                let _ = job.reply.send(result);
            }
        }
    }
    false
}

/// Runs `jobs` in one transaction and commits; their outcomes in order, and whether they were
/// granted in one statement instead. `begun`: a transaction begun ahead on the durable
/// connections, used if the writes need those.
async fn commit(
    pools: &Pools,
    jobs: &[Job],
    begun: Option<SeatTransaction>,
) -> DbResult<(Vec<Outcome>, bool)> {
    if pools.engine == Engine::Postgres {
        let run = plain_check_outs(jobs);
        let started = std::time::Instant::now();
        if !run.is_empty() && run.len() == jobs.len() && pools.backoff(|b| b.try_now()) {
            let Some(leases) = grant_in_one_statement(pools, &run).await? else {
                pools.backoff(OneStatementBackoff::refused);
                return commit_in_transaction(pools, jobs, begun).await;
            };
            pools.backoff(OneStatementBackoff::granted);
            tracing::debug!(
                writes = jobs.len(),
                us = started.elapsed().as_micros() as u64,
                "seat batch granted in one statement"
            );
            let outcomes = leases
                .into_iter()
                .map(|lease| Outcome::CheckOut(CheckOutOutcome::Granted(lease)))
                .collect();
            return Ok((outcomes, true));
        }
    }
    commit_in_transaction(pools, jobs, begun).await
}

/// [`commit`]'s transaction path.
async fn commit_in_transaction(
    pools: &Pools,
    jobs: &[Job],
    begun: Option<SeatTransaction>,
) -> DbResult<(Vec<Outcome>, bool)> {
    let durable = jobs.iter().any(|job| job.write.durable());
    let pool = if durable {
        &pools.durable
    } else {
        &pools.relaxed
    };
    let begun_at = std::time::Instant::now();
    let mut tx = match (begun.filter(|_| durable), pools.engine) {
        (Some(tx), _) => {
            #[cfg(test)]
            if let Some(Write::CheckOut(c)) = jobs.first().map(|job| &job.write) {
                BEGUN_AHEAD_USED.record(&c.license_id, 1);
            }
            tx
        }
        (None, Engine::Sqlite) => pools.gate.begin_immediate(pool).await?,
        (None, Engine::Postgres) => pool.begin().await?.into(),
    };
    let started = std::time::Instant::now();
    let mut outcomes = Vec::with_capacity(jobs.len());
    let mut seen = Seen::default();
    let mut rest = jobs;
    while !rest.is_empty() {
        let run = plain_check_outs(rest);
        if run.len() < 2 {
            if let Some(job) = rest.first() {
                outcomes.push(write_one(&mut tx, pools.engine, &mut seen, &job.write).await?);
            }
            rest = rest.get(1..).unwrap_or_default();
            continue;
        }
        let granted = grant_together(&mut tx, pools.engine, &mut seen, &run).await?;
        // The others (a retry, a repeat, or no seat free for certain) one by one, after the
        // leases granted together: only check-outs of another license, which do not see
        // one another, go before them.
        let mut answered: Vec<Option<Outcome>> = granted
            .into_iter()
            .map(|lease| lease.map(|lease| Outcome::CheckOut(CheckOutOutcome::Granted(lease))))
            .collect();
        for (answer, job) in answered.iter_mut().zip(rest) {
            if answer.is_none() {
                *answer = Some(write_one(&mut tx, pools.engine, &mut seen, &job.write).await?);
            }
        }
        outcomes.extend(answered.into_iter().flatten());
        rest = rest.get(run.len()..).unwrap_or_default();
    }
    seen.write_held(&mut tx).await?;
    let worked = std::time::Instant::now();
    tx.commit().await?;
    tracing::debug!(
        writes = jobs.len(),
        begin_us = (started - begun_at).as_micros() as u64,
        work_us = (worked - started).as_micros() as u64,
        commit_us = worked.elapsed().as_micros() as u64,
        "seat batch committed"
    );
    Ok((outcomes, false))
}

/// One write inside the batch transaction.
async fn write_one(
    conn: &mut AnyConnection,
    engine: Engine,
    seen: &mut Seen,
    write: &Write,
) -> DbResult<Outcome> {
    Ok(match write {
        Write::CheckOut(c) => Outcome::CheckOut(check_out(conn, engine, seen, c).await?),
        Write::Lease {
            kind,
            license_id,
            lease_id,
            epoch,
            secret,
            now,
        } => {
            if *kind == LeaseWrite::CheckIn {
                seen.hold(conn, engine, license_id).await?;
            }
            let update = update_lease(
                conn,
                *kind,
                license_id,
                lease_id,
                *epoch,
                secret.as_deref(),
                *now,
            )
            .await?;
            if *kind == LeaseWrite::CheckIn && matches!(update, LeaseUpdate::Done(_)) {
                seen.held_changed(license_id, -1);
            }
            Outcome::Lease(update)
        }
    })
}

#[cfg(test)]
mod gather_tests {
    use std::time::Instant;

    use super::*;

    fn job() -> Job {
        Job {
            write: Write::Lease {
                kind: LeaseWrite::Heartbeat,
                license_id: "lic".into(),
                lease_id: "lease".into(),
                epoch: 1,
                secret: None,
                now: 0,
            },
            reply: oneshot::channel().0,
        }
    }

    /// A queue holding one write, and a task sending `later` more after 50 ms.
    fn queue_with_one_then(later: usize) -> (mpsc::Receiver<Job>, Vec<Job>) {
        let (sender, mut queue) = mpsc::channel(QUEUE);
        assert!(sender.try_send(job()).is_ok());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            for _ in 0..later {
                assert!(sender.send(job()).await.is_ok());
            }
            // Kept open: the channel closing would end the wait too.
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        let mut batch = Vec::new();
        assert_eq!(queue.try_recv().ok().map(|job| batch.push(job)), Some(()));
        (queue, batch)
    }

    #[tokio::test]
    async fn waits_until_the_batch_is_as_large_as_the_last_one() {
        let (mut queue, mut batch) = queue_with_one_then(2);
        let started = Instant::now();
        let gathered = gather(&mut queue, &mut batch, 3, Duration::from_secs(20)).await;
        assert_eq!((batch.len(), gathered), (3, Gathered::Full));
        // It stopped when the batch was full, not at the end of the wait.
        assert!(started.elapsed() < Duration::from_secs(20));
    }

    #[tokio::test]
    async fn gives_up_at_the_end_of_the_wait() {
        let (mut queue, mut batch) = queue_with_one_then(0);
        let started = Instant::now();
        let gathered = gather(&mut queue, &mut batch, 8, Duration::from_millis(200)).await;
        assert_eq!((batch.len(), gathered), (1, Gathered::TimedOut));
        assert!(started.elapsed() >= Duration::from_millis(200));
    }

    #[tokio::test]
    async fn does_not_wait_when_the_batch_is_full_or_waiting_is_off() {
        for (expected, wait) in [(1, Duration::from_secs(20)), (8, Duration::ZERO)] {
            let (mut queue, mut batch) = queue_with_one_then(2);
            let gathered = gather(&mut queue, &mut batch, expected, wait).await;
            assert_eq!(
                (batch.len(), gathered),
                (1, Gathered::NoWait),
                "{expected}, {wait:?}"
            );
            // The writes sent later are still queued for the next batch.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let mut next = Vec::new();
            assert_eq!(queue.recv_many(&mut next, MAX_BATCH).await, 2);
        }
    }

    #[tokio::test]
    async fn takes_every_write_queued_and_stops_when_the_queue_closes() {
        let (sender, mut queue) = mpsc::channel(QUEUE);
        for _ in 0..5 {
            assert!(sender.try_send(job()).is_ok());
        }
        let mut batch = Vec::new();
        let gathered = gather(&mut queue, &mut batch, 2, Duration::from_secs(20)).await;
        // All five at once: a batch takes what is queued, not just `expected`.
        assert_eq!((batch.len(), gathered), (5, Gathered::Full));
        drop(sender);
        let started = Instant::now();
        let gathered = gather(&mut queue, &mut batch, 8, Duration::from_secs(20)).await;
        assert_eq!((batch.len(), gathered), (5, Gathered::Closed));
        assert!(started.elapsed() < Duration::from_secs(20));
    }
}
