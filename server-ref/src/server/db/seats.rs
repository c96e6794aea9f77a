//! Group commit for seat writes. Check-outs, check-ins and (SQLite) heartbeats of this process
//! go to one writer task; it takes every write waiting at that moment (up to [`MAX_BATCH`]),
//! runs them in one transaction, commits once and only then answers each. A durable check-out
//! still waits for its fsync, but the check-outs waiting together share one: on a disk doing
//! ~325 fsync/s, one-commit-per-check-out capped SQLite at ~400 check-outs/s
//! (docs/BENCHMARKS.md).
//!
//! Semantics are those of one transaction per write, in queue order: each write sees the
//! effects of the writes before it in the batch (a second check-out for the last seat is
//! denied; a retry with the same request id finds the lease). If anything in a batch fails, the
//! batch is rolled back and every write is run again alone, so one failing write never fails
//! another. Plain check-outs of a batch, of any licenses, are granted by a few statements
//! together ([`grant_together`]); a license's count of held leases (migration 0007) proves
//! their seats free without counting live leases.
//!
//! One writer on both engines. SQLite: it is the only seat writer of the process (what the
//! FIFO mutex did before), so writes never meet SQLite's busy handler and its sleeps; a batch
//! of heartbeats only commits on the `synchronous=NORMAL` connections (see `Db::relaxed`).
//! PostgreSQL: one writer batching every license did more check-outs per second than four
//! writers with licenses spread over them, on one license and on eight (docs/BENCHMARKS.md);
//! writes are sorted by license, check-outs first, and licenses locked in that (bytewise)
//! order, so two replicas' batches lock rows in one order. The price: a license row that
//! another transaction holds for long stalls every seat write of this process, not a quarter
//! of them. Every license write of the server is one short transaction (a batch, an
//! activation, a force-release, one license's reaping), so that wait is bounded by theirs.
//! PostgreSQL heartbeats do not come here: each is one autocommit `UPDATE` on a
//! `synchronous_commit = off` connection, concurrent with the others, which beats a serial
//! batch of them.
//!
//! Under load a batch's fixed costs are kept off its path: the writer waits briefly for a
//! batch as large as its last ([`gather`]). On PostgreSQL a batch of plain check-outs that all
//! find a seat is granted by one autocommit statement on a connection the writer keeps
//! ([`grant_in_one_statement`]): one round trip instead of four, about +34 % check-outs/s
//! (docs/BENCHMARKS.md). Other batches run in a transaction begun while the last batch's
//! clients were answered ([`BEGUN_AHEAD_IDLE`]), and count granted leases inside their insert
//! ([`grant_together`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::{AnyConnection, AnyPool};
use tokio::sync::{mpsc, oneshot};

use super::leases::{
    BORROW_LEASE, Borrow, CheckOutOutcome, LeaseRow, LeaseUpdate, LeaseWrite, Line, OwnedCheckOut,
    QUEUE_POLL_WINDOW, QueueRow, Waiting, places_held, update_lease,
};
use super::{DbResult, Engine};

/// At most this many writes share one transaction.
const MAX_BATCH: usize = 256;

/// Writes waiting for the writer beyond this make their senders wait (backpressure).
const QUEUE: usize = 4096;

#[derive(Debug)]
enum Write {
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
enum Outcome {
    CheckOut(CheckOutOutcome),
    Lease(LeaseUpdate),
}

struct Job {
    write: Write,
    reply: oneshot::Sender<DbResult<Outcome>>,
}

/// The handle to the writer task; cloned with the [`super::Db`].
#[derive(Debug, Clone)]
pub(crate) struct SeatWriter {
    writer: mpsc::Sender<Job>,
    /// [`Pools::batch_wait_us`], shared with the writer task.
    batch_wait_us: Arc<AtomicU64>,
}

/// What the writer task writes through.
struct Pools {
    engine: Engine,
    durable: AnyPool,
    /// The connections that commit without waiting for the disk (`Db::relaxed`), for batches
    /// of heartbeats only.
    relaxed: AnyPool,
    /// The longest [`gather`] waits, in microseconds.
    batch_wait_us: Arc<AtomicU64>,
    /// The durable connection [`grant_in_one_statement`] keeps between batches: taking one
    /// from the pool each time costs a round trip (the pool's liveness test), as much as the
    /// statement's own. Dropped when a statement on it fails, and when no write came for
    /// [`BEGUN_AHEAD_IDLE`].
    granting: tokio::sync::Mutex<Option<sqlx::pool::PoolConnection<sqlx::Any>>>,
    /// Batches that skip [`grant_in_one_statement`] before it is tried again, and how many
    /// times in a row it granted nothing: see [`OneStatementBackoff`].
    one_statement: std::sync::Mutex<OneStatementBackoff>,
}

impl SeatWriter {
    /// Starts the writer task on the current tokio runtime. It ends when the last handle is
    /// dropped.
    pub fn start(engine: Engine, durable: AnyPool, relaxed: AnyPool) -> SeatWriter {
        let batch_wait_us = Arc::new(AtomicU64::new(micros(DEFAULT_BATCH_WAIT)));
        let pools = Arc::new(Pools {
            engine,
            durable,
            relaxed,
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
fn mismatch(asked: &str, got: &dyn std::fmt::Debug) -> sqlx::Error {
    sqlx::Error::Protocol(format!("seat writer answered a {asked} with {got:?}"))
}

async fn run(pools: Arc<Pools>, mut queue: mpsc::Receiver<Job>) {
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
            begun_ahead = pools.durable.begin().await.ok();
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
struct OneStatementBackoff {
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
type SeatTransaction = sqlx::Transaction<'static, sqlx::Any>;

/// The license of the first check-out of each batch that ran in a transaction begun ahead
/// (tests: that the path ran).
#[cfg(test)]
static BEGUN_AHEAD_USED: LicenseLog = LicenseLog::new();

/// Whether a batch led by a check-out of `license_id` ran in a transaction begun ahead.
#[cfg(test)]
pub(crate) fn begun_ahead_for(license_id: &str) -> bool {
    !BEGUN_AHEAD_USED.counts(license_id).is_empty()
}

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
        (None, Engine::Sqlite) => pool.begin_with("BEGIN IMMEDIATE").await?,
        (None, Engine::Postgres) => pool.begin().await?,
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

/// At most this many check-outs (or licenses) go into one statement, so that a connection
/// prepares at most this many shapes of each statement built by [`grant_together`],
/// [`grant_in_one_statement`] and [`Seen::write_held`] (about 80 in all; sqlx keeps 100 per
/// connection).
const MAX_TOGETHER: usize = 16;

/// The plain check-outs (no borrowing, no wait line) at the head of `jobs`, at most
/// [`MAX_TOGETHER`]; sorted by license, like the batch.
fn plain_check_outs(jobs: &[Job]) -> Vec<&OwnedCheckOut> {
    jobs.iter()
        .take(MAX_TOGETHER)
        .map_while(|job| match &job.write {
            Write::CheckOut(c)
                if c.borrow.is_none() && c.queue.is_none() && c.presented_hash.is_none() =>
            {
                Some(c)
            }
            _ => None,
        })
        .collect()
}

/// Whether the check-out at `index` of `run` repeats one before it (the same license, client
/// and request id): it must see that one's lease, so no statement granting them together may
/// decide it. (The same client and user with another request id is another instance of the
/// app, which takes a seat of its own.)
fn repeats_one_before(run: &[&OwnedCheckOut], index: usize) -> bool {
    let Some(c) = run.get(index) else {
        return false;
    };
    run.iter().take(index).any(|before| {
        before.license_id == c.license_id
            && before.client_id == c.client_id
            && before.request_id == c.request_id
    })
}

/// The end of a PostgreSQL statement whose data-modifying `granted` CTE inserts leases: adds
/// them to their licenses' counts, and returns every lease with `counted`, how many license
/// rows changed. The increments are counted from the rows inserted, so the text depends on
/// nothing else and cannot disagree with them.
const COUNT_GRANTED: &str = "counted AS (UPDATE licenses SET leases_held = leases_held + \
     g.leases FROM (SELECT license_id, COUNT(*) AS leases FROM granted GROUP BY license_id) g \
     WHERE licenses.id = g.license_id RETURNING licenses.id) \
     SELECT granted.*, (SELECT COUNT(*) FROM counted) AS counted FROM granted";

/// The licenses of `check_outs` (sorted by license), each once.
fn licenses_of<'a>(check_outs: &[&'a OwnedCheckOut]) -> Vec<&'a str> {
    let mut licenses: Vec<&str> = check_outs.iter().map(|c| c.license_id.as_str()).collect();
    licenses.dedup();
    licenses
}

/// The leases a statement inserted for `granted` (one row each), in the order of `granted`.
/// `counted`: the statement ends with [`COUNT_GRANTED`], whose count of license rows changed
/// is checked against the licenses of `granted`.
fn leases_returned(
    rows: &[sqlx::any::AnyRow],
    granted: &[&OwnedCheckOut],
    counted: bool,
) -> DbResult<Vec<LeaseRow>> {
    if rows.len() != granted.len() {
        return Err(sqlx::Error::Protocol(format!(
            "a grant inserted {} leases for {} check-outs",
            rows.len(),
            granted.len()
        )));
    }
    if counted && let Some(row) = rows.first() {
        use sqlx::Row as _;
        let changed: i64 = row.try_get("counted")?;
        counts_written(
            u64::try_from(changed).unwrap_or(0),
            licenses_of(granted).len(),
        )?;
    }
    let mut inserted = rows
        .iter()
        .map(<LeaseRow as sqlx::FromRow<'_, sqlx::any::AnyRow>>::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    granted
        .iter()
        .map(|c| {
            // RETURNING's row order is not promised: matched by id.
            let at = inserted
                .iter()
                .position(|lease| lease.id == c.lease_id)
                .ok_or(sqlx::Error::RowNotFound)?;
            Ok(inserted.swap_remove(at))
        })
        .collect()
}

/// Grants check-outs of `run` (plain check-outs, sorted by license, in queue order within a
/// license) with three statements whatever their number: the licenses locked, one lookup, one
/// insert of every lease. On PostgreSQL the insert's statement also adds the leases to their
/// licenses' counts; on SQLite [`Seen::write_held`] writes them with the batch's other
/// changes, before the commit. Of each
/// license's check-outs, the leading ones are granted that are not retries, hold no live lease
/// for their client and user yet, repeat none before them and find a seat free for certain
/// (from the count of held leases): each is what one by one would do, since each would find no
/// lease of its own and a free seat, and check-outs of different licenses never see one
/// another. Returns, for each check-out of `run`, its lease if granted; the caller writes the
/// others one by one.
async fn grant_together(
    conn: &mut AnyConnection,
    engine: Engine,
    seen: &mut Seen,
    run: &[&OwnedCheckOut],
) -> DbResult<Vec<Option<LeaseRow>>> {
    seen.hold_all(conn, engine, &licenses_of(run)).await?;
    // Each check-out's own lookup (the one in `check_out`: its request id's lease), joined by
    // UNION ALL into one statement. Each part keeps equalities on the license and client, so
    // the planner takes the unique index for each, whatever its statistics say (one
    // `client_id IN (...)` lookup was planned as a scan of every live lease of the license on
    // a table that grew fast). Only placeholders are formatted into the SQL; every value is
    // bound.
    let lookup = (0..run.len())
        .map(|index| {
            let p = 1 + index * 3;
            format!(
                "SELECT * FROM leases WHERE license_id = ${} AND client_id = ${} AND \
                 (request_id = ${} OR id IN (SELECT lease_id FROM lease_requests \
                 WHERE license_id = ${} AND client_id = ${} AND request_id = ${}))",
                p,
                p + 1,
                p + 2,
                p,
                p + 1,
                p + 2
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let mut query = sqlx::query_as::<_, LeaseRow>(sqlx::AssertSqlSafe(lookup));
    for c in run {
        query = query
            .bind(&c.license_id)
            .bind(&c.client_id)
            .bind(&c.request_id);
    }
    let found = query.fetch_all(&mut *conn).await?;
    let mut granting: Vec<&OwnedCheckOut> = Vec::new();
    // The license whose leading check-outs met one that goes one by one.
    let mut stopped: Option<&str> = None;
    for (index, c) in run.iter().enumerate() {
        if stopped == Some(c.license_id.as_str()) {
            continue;
        }
        // Found for this check-out's request id (or, rarely, for another check-out of the
        // run by the same client, which one by one then decides exactly).
        let own = found
            .iter()
            .any(|lease| lease.license_id == c.license_id && lease.client_id == c.client_id);
        let repeat = repeats_one_before(run, index);
        let before = granting
            .iter()
            .filter(|g| g.license_id == c.license_id)
            .count();
        let held = seen
            .held(&c.license_id)
            .saturating_add(i64::try_from(before).unwrap_or(i64::MAX));
        if own || repeat || c.seats.saturating_sub(held) <= 0 {
            stopped = Some(c.license_id.as_str());
        } else {
            granting.push(c);
        }
    }
    if granting.is_empty() {
        return Ok(vec![None; run.len()]);
    }
    let rows = (0..granting.len())
        .map(|index| {
            let p = 1 + index * 8;
            format!(
                "(${}, ${}, ${}, ${}, ${}, 1, ${}, ${}, ${}, 0, ${})",
                p,
                p + 1,
                p + 2,
                p + 3,
                p + 4,
                p + 5,
                p + 5,
                p + 6,
                p + 7
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let insert = format!(
        "INSERT INTO leases (id, license_id, client_id, user_name, request_id, epoch, \
         created_at, heartbeat_at, expires_at, borrowed, secret_hash) VALUES {rows} RETURNING *"
    );
    // PostgreSQL: the licenses' counts change in the insert's own statement
    // ([`COUNT_GRANTED`]), one round trip fewer per batch; its text depends on the number of
    // leases only (at most [`MAX_TOGETHER`] forms in the statement cache). SQLite has no
    // data-modifying `WITH`; its counts go with `Seen::write_held`.
    let counted_here = engine == Engine::Postgres;
    let sql = if counted_here {
        format!("WITH granted AS ({insert}), {COUNT_GRANTED}")
    } else {
        insert
    };
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for c in &granting {
        query = query
            .bind(&c.lease_id)
            .bind(&c.license_id)
            .bind(&c.client_id)
            .bind(&c.user)
            .bind(&c.request_id)
            .bind(c.now)
            .bind(c.now.saturating_add(seen.lease_timeout(&c.license_id)))
            .bind(&c.secret_hash);
    }
    let rows = query.fetch_all(&mut *conn).await?;
    // `granting` keeps the order of `run`.
    let mut inserted = leases_returned(&rows, &granting, counted_here)?.into_iter();
    let mut leases = Vec::with_capacity(run.len());
    for c in run {
        if !granting.iter().any(|g| std::ptr::eq(*g, *c)) {
            leases.push(None);
            continue;
        }
        leases.push(Some(inserted.next().ok_or(sqlx::Error::RowNotFound)?));
        seen.granted(c, counted_here);
    }
    #[cfg(test)]
    GRANTED_TOGETHER.record_each(&granting);
    Ok(leases)
}

/// PostgreSQL, when a batch is nothing but plain check-outs (at most [`MAX_TOGETHER`]) that
/// should all be granted: grants them with one autocommit statement, one round trip where
/// the transaction path takes four (lock, lookup, insert, commit). `None` when the
/// statement granted nothing, because one of them is a retry, already holds a lease, repeats
/// one before it or finds no seat free for certain, or because the license changed after the
/// statement's snapshot: the batch then takes the transaction path, which decides each
/// check-out (a denial is recorded there, never here).
///
/// The statement is the transaction path's three statements joined, all or nothing: it
/// locks the licenses (bytewise order, like [`Seen::hold_all`]), looks each check-out's own
/// leases up like [`grant_together`], and inserts every lease and adds them to the counts
/// only if no check-out is refused. One statement reads one snapshot, taken before its locks,
/// whereas the transaction path looks up after locking; so the statement also requires each
/// locked license row to be the very version (`ctid`) its snapshot sees. Every transaction
/// that takes or releases a lease writes its license's row (the count of held leases, even
/// when its changes add up to zero: [`Seen::write_held`]), under the row's lock; so when no
/// newer version exists, no lease was taken or released after the snapshot, and the lookup
/// saw every lease there is. The only other lease writes, heartbeats and borrowing, move the
/// expiry of a lease that is live at their own `now` and leave the license row alone: a
/// statement that does not see one answers as if it ran just before it, a serial order the
/// transaction path allows as well (heartbeats never wait for the license's lock, and each
/// request brings its own `now`).
async fn grant_in_one_statement(
    pools: &Pools,
    run: &[&OwnedCheckOut],
) -> DbResult<Option<Vec<LeaseRow>>> {
    let repeats = (0..run.len()).any(|index| repeats_one_before(run, index));
    #[cfg(test)]
    let repeats = repeats
        || run
            .iter()
            .any(|c| c.client_id.starts_with(TRANSACTION_ONLY_FOR_TESTS));
    if repeats {
        return Ok(None);
    }
    // Only placeholders are formatted into the SQL; every value is bound.
    let asked = (0..run.len())
        .map(|index| {
            let p = 1 + index * 9;
            format!(
                "(${}::BIGINT, ${}, ${}, ${}, ${}, ${}, ${}::BIGINT, ${}::BIGINT, ${})",
                p,
                p + 1,
                p + 2,
                p + 3,
                p + 4,
                p + 5,
                p + 6,
                p + 7,
                p + 8
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "WITH asked (place, id, license_id, client_id, user_name, request_id, now, seats, \
         secret_hash) AS \
         (VALUES {asked}), \
         locked AS (SELECT id, leases_held, lease_timeout, ctid FROM licenses \
         WHERE id IN (SELECT license_id FROM asked) ORDER BY id COLLATE \"C\" FOR UPDATE), \
         seen AS (SELECT id, ctid FROM licenses WHERE id IN (SELECT license_id FROM asked)), \
         ranked AS (SELECT asked.*, ROW_NUMBER() OVER (PARTITION BY license_id ORDER BY place) \
         AS nth FROM asked), \
         refused AS (SELECT 1 FROM ranked r LEFT JOIN locked l ON l.id = r.license_id \
         LEFT JOIN seen s ON s.id = r.license_id \
         WHERE l.id IS NULL OR s.ctid IS DISTINCT FROM l.ctid OR l.leases_held + r.nth > r.seats \
         OR EXISTS (SELECT 1 FROM leases WHERE license_id = r.license_id \
         AND client_id = r.client_id AND request_id = r.request_id) \
         OR EXISTS (SELECT 1 FROM lease_requests WHERE license_id = r.license_id \
         AND client_id = r.client_id AND request_id = r.request_id)), \
         granted AS (INSERT INTO leases (id, license_id, client_id, user_name, request_id, \
         epoch, created_at, heartbeat_at, expires_at, borrowed, secret_hash) \
         SELECT r.id, r.license_id, r.client_id, r.user_name, r.request_id, 1, r.now, r.now, \
         r.now + l.lease_timeout, 0, r.secret_hash FROM ranked r JOIN locked l ON l.id = r.license_id \
         WHERE NOT EXISTS (SELECT 1 FROM refused) RETURNING *), {COUNT_GRANTED}"
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (place, c) in run.iter().enumerate() {
        query = query
            .bind(i64::try_from(place).unwrap_or(i64::MAX))
            .bind(&c.lease_id)
            .bind(&c.license_id)
            .bind(&c.client_id)
            .bind(&c.user)
            .bind(&c.request_id)
            .bind(c.now)
            .bind(c.seats)
            .bind(&c.secret_hash);
    }
    let mut granting = pools.granting.lock().await;
    let conn = match granting.as_mut() {
        Some(conn) => conn,
        None => granting.insert(pools.durable.acquire().await?),
    };
    let rows = match query.fetch_all(&mut **conn).await {
        Ok(rows) => rows,
        Err(error) => {
            // Nothing was written (one statement): the transaction path decides instead, and
            // reports the error if it meets it too. The connection may be the cause (e.g.
            // closed by the server while idle): the next batch takes another.
            *granting = None;
            tracing::debug!(%error, "one-statement grant failed; granting in a transaction");
            return Ok(None);
        }
    };
    drop(granting);
    if rows.is_empty() {
        #[cfg(test)]
        REFUSED_IN_ONE_STATEMENT.record_each(run);
        return Ok(None);
    }
    // Committed already, all or nothing by the statement's construction: an error here is a
    // bug, and the one-by-one rerun finds the leases by their request ids.
    let leases = leases_returned(&rows, run, true)?;
    #[cfg(test)]
    GRANTED_IN_ONE_STATEMENT.record_each(run);
    Ok(Some(leases))
}

/// What one path of the writer did, by license: each time, how many check-outs (tests: that
/// the path ran, and for which check-outs).
#[cfg(test)]
struct LicenseLog(std::sync::Mutex<Vec<(String, usize)>>);

#[cfg(test)]
impl LicenseLog {
    const fn new() -> Self {
        LicenseLog(std::sync::Mutex::new(Vec::new()))
    }

    fn record(&self, license_id: &str, check_outs: usize) {
        if let Ok(mut log) = self.0.lock() {
            log.push((license_id.to_owned(), check_outs));
        }
    }

    /// One entry for each license of `check_outs` (sorted by license): how many they are.
    fn record_each(&self, check_outs: &[&OwnedCheckOut]) {
        for license in licenses_of(check_outs) {
            let n = check_outs
                .iter()
                .filter(|c| c.license_id == license)
                .count();
            self.record(license, n);
        }
    }

    /// The counts recorded for `license_id`, in order.
    fn counts(&self, license_id: &str) -> Vec<usize> {
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

#[cfg(test)]
static GRANTED_IN_ONE_STATEMENT: LicenseLog = LicenseLog::new();

#[cfg(test)]
static GRANTED_TOGETHER: LicenseLog = LicenseLog::new();

/// The sizes of the groups of leases [`grant_in_one_statement`] granted for `license_id`.
#[cfg(test)]
pub(crate) fn granted_in_one_statement(license_id: &str) -> Vec<usize> {
    GRANTED_IN_ONE_STATEMENT.counts(license_id)
}

/// The sizes of the groups of leases [`grant_together`] granted for `license_id`, in order.
#[cfg(test)]
pub(crate) fn granted_together(license_id: &str) -> Vec<usize> {
    GRANTED_TOGETHER.counts(license_id)
}

/// The licenses of the check-outs whose [`grant_in_one_statement`] granted nothing (tests).
#[cfg(test)]
static REFUSED_IN_ONE_STATEMENT: LicenseLog = LicenseLog::new();

/// Whether a statement of [`grant_in_one_statement`] with a check-out of `license_id` granted
/// nothing (tests: that the statement ran and refused, rather than was never tried).
#[cfg(test)]
pub(crate) fn refused_in_one_statement(license_id: &str) -> bool {
    !REFUSED_IN_ONE_STATEMENT.counts(license_id).is_empty()
}

/// What a batch transaction already knows about the licenses of its writes.
#[derive(Default)]
struct Seen {
    /// The licenses this transaction holds the write lock of (PostgreSQL: their rows), in the
    /// order they were locked, with their counts of held leases.
    licenses: Vec<HeldLeases>,
    /// (license, `now`, live leases at `now`): counted once, then kept up to date by this
    /// batch's own grants (nothing else changes the license's leases while the transaction
    /// holds its lock). Reused only at the same `now`, since leases lapse as time passes.
    live: Option<(String, i64, i64)>,
}

/// A license's `leases_held` (migration 0007) as this transaction sees it.
struct HeldLeases {
    license_id: String,
    /// Its own changes included.
    held: i64,
    /// Its own changes not written to the row yet (written once, before the commit, by
    /// [`Seen::write_held`]; on PostgreSQL leases granted together are counted by their
    /// insert's statement and never show here).
    unwritten: i64,
    /// Its leases changed since this transaction last wrote its row, even if `unwritten` is 0
    /// (a lease taken and another released): the row is written anyway, so that a newer row
    /// version tells every lease change of the license apart ([`grant_in_one_statement`]).
    row_behind: bool,
    /// The license's lease timeout, in seconds.
    lease_timeout: i64,
}

impl Seen {
    fn license(&self, license_id: &str) -> Option<&HeldLeases> {
        self.licenses.iter().find(|l| l.license_id == license_id)
    }

    /// Locks `license_id`'s row until the commit (PostgreSQL; SQLite's `BEGIN IMMEDIATE`
    /// already holds the one write lock) and reads its count of held leases, unless this
    /// transaction holds it already. Every change of that count happens under this lock.
    /// Licenses are locked in the batch's order (by id, bytewise), and before any lease row of
    /// theirs (force-release and the reaper lock one license first too), so two replicas
    /// never wait on each other in a cycle.
    async fn hold(
        &mut self,
        conn: &mut AnyConnection,
        engine: Engine,
        license_id: &str,
    ) -> DbResult<()> {
        self.hold_all(conn, engine, &[license_id]).await
    }

    /// [`Seen::hold`] for each of `license_ids` (sorted like the batch), in one statement.
    async fn hold_all(
        &mut self,
        conn: &mut AnyConnection,
        engine: Engine,
        license_ids: &[&str],
    ) -> DbResult<()> {
        let new: Vec<&str> = license_ids
            .iter()
            .copied()
            .filter(|id| self.license(id).is_none())
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        let ids = (1..=new.len())
            .map(|n| format!("${n}"))
            .collect::<Vec<_>>()
            .join(", ");
        // PostgreSQL locks the rows in the ORDER BY's order, bytewise like the batch's sort.
        let sql = match engine {
            Engine::Sqlite => {
                format!("SELECT id, leases_held, lease_timeout FROM licenses WHERE id IN ({ids})")
            }
            Engine::Postgres => format!(
                "SELECT id, leases_held, lease_timeout FROM licenses WHERE id IN ({ids}) \
                 ORDER BY id COLLATE \"C\" FOR UPDATE"
            ),
        };
        let mut query = sqlx::query_as::<_, (String, i64, i64)>(sqlx::AssertSqlSafe(sql));
        for id in &new {
            query = query.bind(*id);
        }
        let rows = query.fetch_all(&mut *conn).await?;
        for id in new {
            // No such license: no lease is written for it (a lease's license must exist).
            let (held, lease_timeout) = rows
                .iter()
                .find(|(row, _, _)| row == id)
                .map_or((0, 0), |(_, held, timeout)| (*held, *timeout));
            self.licenses.push(HeldLeases {
                license_id: id.to_owned(),
                held,
                unwritten: 0,
                row_behind: false,
                lease_timeout,
            });
        }
        Ok(())
    }

    /// The held leases of `license_id` (passed to [`Seen::hold`] before).
    fn held(&self, license_id: &str) -> i64 {
        self.license(license_id).map_or(0, |license| license.held)
    }

    /// The lease timeout of `license_id` (passed to [`Seen::hold`] before).
    fn lease_timeout(&self, license_id: &str) -> i64 {
        self.license(license_id)
            .map_or(0, |license| license.lease_timeout)
    }

    fn license_mut(&mut self, license_id: &str) -> Option<&mut HeldLeases> {
        self.licenses
            .iter_mut()
            .find(|l| l.license_id == license_id)
    }

    /// This transaction took (`+1`) or released (`-1`) a lease of `license_id` (passed to
    /// [`Seen::hold`] before).
    fn held_changed(&mut self, license_id: &str, by: i64) {
        if let Some(license) = self.license_mut(license_id) {
            license.held = license.held.saturating_add(by);
            license.unwritten = license.unwritten.saturating_add(by);
            license.row_behind = true;
        }
    }

    /// `by` of this transaction's changes of `license_id`'s count were written to its row,
    /// after every lease change so far.
    fn held_written(&mut self, license_id: &str, by: i64) {
        if let Some(license) = self.license_mut(license_id) {
            license.unwritten = license.unwritten.saturating_sub(by);
            license.row_behind = license.unwritten != 0;
        }
    }

    /// Writes this transaction's changes of the counts, before the commit: one statement for
    /// up to [`MAX_TOGETHER`] licenses. Every license whose leases changed gets its row
    /// written, even by 0.
    async fn write_held(&mut self, conn: &mut AnyConnection) -> DbResult<()> {
        let changed: Vec<&HeldLeases> = self
            .licenses
            .iter()
            .filter(|license| license.row_behind)
            .collect();
        for chunk in changed.chunks(MAX_TOGETHER) {
            let cases = (0..chunk.len())
                .map(|index| format!("WHEN ${} THEN ${}", 1 + index * 2, 2 + index * 2))
                .collect::<Vec<_>>()
                .join(" ");
            let ids = (0..chunk.len())
                .map(|index| format!("${}", 1 + index * 2))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "UPDATE licenses SET leases_held = leases_held + CASE id {cases} END \
                 WHERE id IN ({ids})"
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for license in chunk {
                query = query.bind(&license.license_id).bind(license.unwritten);
            }
            let done = query.execute(&mut *conn).await?;
            counts_written(done.rows_affected(), chunk.len())?;
        }
        for license in &mut self.licenses {
            license.unwritten = 0;
            license.row_behind = false;
        }
        Ok(())
    }

    /// The live leases of `c`'s license at `c.now` (counted once per license and `now`).
    async fn live(&mut self, conn: &mut AnyConnection, c: &OwnedCheckOut) -> DbResult<i64> {
        if let Some((license, now, live)) = &self.live
            && *license == c.license_id
            && *now == c.now
        {
            return Ok(*live);
        }
        let live: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM leases WHERE license_id = $1 AND released_at IS NULL \
             AND expires_at > $2",
        )
        .bind(&c.license_id)
        .bind(c.now)
        .fetch_one(&mut *conn)
        .await?;
        self.live = Some((c.license_id.clone(), c.now, live));
        Ok(live)
    }

    /// This transaction granted a seat of `c`'s license; `counted`: the license row's count
    /// already says so (written by the grant's own statement).
    fn granted(&mut self, c: &OwnedCheckOut, counted: bool) {
        self.held_changed(&c.license_id, 1);
        if counted {
            self.held_written(&c.license_id, 1);
        }
        if let Some((license, now, live)) = &mut self.live
            && *license == c.license_id
            && *now == c.now
        {
            *live = live.saturating_add(1);
        }
    }
}

/// Checks that a statement changing the counts of held leases of `licenses` licenses changed
/// that many rows. Every license of a batch exists (it was locked, and its lease inserted or
/// released); a row missing would leave a count wrong, so the batch fails instead (and runs
/// again one by one).
fn counts_written(updated: u64, licenses: usize) -> DbResult<()> {
    if updated == licenses as u64 {
        return Ok(());
    }
    Err(sqlx::Error::Protocol(format!(
        "held-lease counts: {updated} of {licenses} licenses updated"
    )))
}

/// Check-out inside the batch transaction: idempotent retry by request id (any request id
/// answered with a lease finds it: its own, or one tied to it in `lease_requests`); a check-out
/// presenting the secret of a live lease of the same client and user gets that lease
/// (borrowing it, if asked) and ties its request id to it; then grants a seat if fewer than
/// `seats` leases are live, else records the denial. The same client and user without the
/// secret is another instance of the app: it takes a seat of its own. A borrowing also needs
/// fewer than the license's cap of leases borrowed at once.
async fn check_out(
    conn: &mut AnyConnection,
    engine: Engine,
    seen: &mut Seen,
    c: &OwnedCheckOut,
) -> DbResult<CheckOutOutcome> {
    #[cfg(test)]
    if c.client_id == PANIC_FOR_TESTS {
        panic!("a seat write panicked (test of the batch's isolation)");
    }
    // Serializes check-outs of this license across replicas until the commit.
    seen.hold(conn, engine, &c.license_id).await?;
    // This request id's lease (a retry) and, when the check-out presents a secret, the
    // client's live leases for this user, in one statement. Leases lapsed but not reaped yet
    // are not counted anywhere below, so the reaper (on the server's clock) releases them
    // without a check-out having to.
    let mine: Vec<MineRow> = sqlx::query_as(
        "SELECT leases.*, CASE WHEN request_id = $3 OR id IN (SELECT lease_id FROM \
         lease_requests WHERE license_id = $1 AND client_id = $2 AND request_id = $3) \
         THEN 1 ELSE 0 END AS by_request FROM leases WHERE license_id = $1 AND client_id = $2 \
         AND (request_id = $3 OR id IN (SELECT lease_id FROM lease_requests \
         WHERE license_id = $1 AND client_id = $2 AND request_id = $3) \
         OR ($6 = 1 AND user_name = $4 AND released_at IS NULL AND expires_at > $5)) \
         ORDER BY created_at, id",
    )
    .bind(&c.license_id)
    .bind(&c.client_id)
    .bind(&c.request_id)
    .bind(&c.user)
    .bind(c.now)
    .bind(i64::from(c.presented_hash.is_some()))
    .fetch_all(&mut *conn)
    .await?;
    let presented = c.presented_hash.as_deref();
    if let Some(MineRow { lease, .. }) = mine.iter().find(|m| m.by_request == 1) {
        if lease.user_name != c.user {
            return Ok(CheckOutOutcome::RequestIdConflict);
        }
        if !lease.is_live_at(c.now) {
            return Ok(CheckOutOutcome::Ended(lease.clone()));
        }
        if lease.secret_hash.is_some() && lease.secret_matches(presented) {
            return Ok(CheckOutOutcome::Existing(lease.clone()));
        }
        let Some(secret_hash) = &c.secret_hash else {
            // A check-out that keeps no secret: a lease without one is answered as it is (an
            // older SDK's retry); a lease with one is never answered nor downgraded by it.
            if lease.secret_hash.is_some() {
                return Ok(CheckOutOutcome::SecretRequired);
            }
            return Ok(CheckOutOutcome::Existing(lease.clone()));
        };
        // The instance that sent this request id lost the answer: a fresh secret replaces the
        // one it never received, so at most one instance holds the lease.
        let renewed: Option<LeaseRow> = sqlx::query_as(RENEW_SECRET)
            .bind(secret_hash)
            .bind(&lease.id)
            .fetch_optional(&mut *conn)
            .await?;
        return Ok(CheckOutOutcome::Existing(
            renewed.unwrap_or_else(|| lease.clone()),
        ));
    }
    let held = mine
        .into_iter()
        .map(|m| m.lease)
        .find(|lease| lease.secret_hash.is_some() && lease.secret_matches(presented));
    if let Some(lease) = held {
        let outcome = match c.borrow {
            Some(borrow) if !lease.is_borrowed() => borrow_held(conn, c, borrow, &lease).await?,
            _ => Some(CheckOutOutcome::Existing(lease)),
        };
        if let Some(outcome) = outcome {
            if let CheckOutOutcome::Existing(lease) = &outcome {
                tie_request(conn, seen, c, &lease.id).await?;
            }
            return Ok(outcome);
        }
        // It ended meanwhile (a force-release on another connection): a new lease.
    }
    // With a wait line, a free seat goes to whoever waits first: this check-out takes one only
    // if more seats are free than places ahead of it.
    let (ahead, line) = match &c.queue {
        None => (0, None),
        Some(line) => {
            let waiting = places_held(conn, &c.license_id, c.now).await?;
            let mine = waiting
                .iter()
                .position(|place| place.client_id == c.client_id && place.user_name == c.user);
            let ahead = i64::try_from(mine.unwrap_or(waiting.len())).unwrap_or(i64::MAX);
            (ahead, Some((line, waiting, mine)))
        }
    };
    // Every live lease is held, so fewer held leases than seats proves the seats free without
    // counting; only when they are all held (some may have lapsed) are the live ones counted.
    let seat_for_me = c.seats.saturating_sub(seen.held(&c.license_id)) > ahead
        || c.seats.saturating_sub(seen.live(conn, c).await?) > ahead;
    if !seat_for_me {
        if let Some((line, waiting, mine)) = line
            && line.wait > 0
        {
            return wait_in_line(conn, c, line, &waiting, mine).await;
        }
        record_denial(conn, c).await?;
        return Ok(CheckOutOutcome::Denied);
    }
    if line.is_some() {
        // Its turn: its place in line (held or lapsed) is given up, with the grant, or with a
        // refused borrowing (which must not keep the line waiting behind it).
        sqlx::query(
            "DELETE FROM seat_queue WHERE license_id = $1 AND client_id = $2 AND user_name = $3",
        )
        .bind(&c.license_id)
        .bind(&c.client_id)
        .bind(&c.user)
        .execute(&mut *conn)
        .await?;
    }
    if let Some(borrow) = c.borrow
        && borrowed_leases(conn, &c.license_id, c.now).await? >= borrow.max_leases
    {
        return Ok(CheckOutOutcome::BorrowLimit);
    }
    // The timeout read in the same statement as the insert: one round trip. No NULL
    // parameters where PostgreSQL cannot type them: a lease that does not borrow binds 0
    // (`secret_hash` goes straight into its TEXT column, a typed NULL for a lease without one).
    let lease: LeaseRow = sqlx::query_as(
        "INSERT INTO leases (id, license_id, client_id, user_name, request_id, epoch, \
         created_at, heartbeat_at, expires_at, borrowed, secret_hash) \
         SELECT $1, id, $2, $3, $4, 1, $5, $5, \
         CASE WHEN $7 = 1 THEN $8 ELSE $5 + lease_timeout END, $7, $9 FROM licenses \
         WHERE id = $6 RETURNING *",
    )
    .bind(&c.lease_id)
    .bind(&c.client_id)
    .bind(&c.user)
    .bind(&c.request_id)
    .bind(c.now)
    .bind(&c.license_id)
    .bind(i64::from(c.borrow.is_some()))
    .bind(c.borrow.map_or(0, |b| b.until))
    .bind(&c.secret_hash)
    .fetch_one(&mut *conn)
    .await?;
    seen.granted(c, false);
    Ok(CheckOutOutcome::Granted(lease))
}

/// A lease found by [`check_out`]'s lookup, and whether it was found by the check-out's request
/// id (1) rather than by the secret it presented (0).
#[derive(sqlx::FromRow)]
struct MineRow {
    #[sqlx(flatten)]
    lease: LeaseRow,
    by_request: i64,
}

/// Replaces the secret of the lease `$2` with the one whose SHA-256 hex is `$1`.
const RENEW_SECRET: &str = "UPDATE leases SET secret_hash = $1 WHERE id = $2 RETURNING *";

/// Ties the request id of the check-out `c` to the lease `lease_id` it was answered with, so a
/// retry of it finds that lease (and 410 once it has ended), never a new seat. The license's
/// row is written with the batch, as for a lease taken ([`grant_in_one_statement`] relies on
/// every change of what a request id finds showing as a new row version).
async fn tie_request(
    conn: &mut AnyConnection,
    seen: &mut Seen,
    c: &OwnedCheckOut,
    lease_id: &str,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO lease_requests (license_id, client_id, request_id, lease_id, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (license_id, client_id, request_id) DO NOTHING",
    )
    .bind(&c.license_id)
    .bind(&c.client_id)
    .bind(&c.request_id)
    .bind(lease_id)
    .bind(c.now)
    .execute(&mut *conn)
    .await?;
    seen.held_changed(&c.license_id, 0);
    Ok(())
}

/// Records the denial of the check-out `c`, once per request: a retry of a denied request
/// (the same denial id, see `secrets::denial_id`) adds nothing.
async fn record_denial(conn: &mut AnyConnection, c: &OwnedCheckOut) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO denials (id, license_id, client_id, user_name, at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
    )
    .bind(&c.denial_id)
    .bind(&c.license_id)
    .bind(&c.client_id)
    .bind(&c.user)
    .bind(c.now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// No seat is free for the check-out `c`, which may wait: it keeps its place in line (`mine`,
/// an index in `waiting`, the places held at `c.now` head first), or takes one at the end
/// (recording its denial once, then), or, when the wait it asked for is over, gives its place
/// up.
async fn wait_in_line(
    conn: &mut AnyConnection,
    c: &OwnedCheckOut,
    line: &Line,
    waiting: &[QueueRow],
    mine: Option<usize>,
) -> DbResult<CheckOutOutcome> {
    let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    if let Some(index) = mine
        && let Some(place) = waiting.get(index)
    {
        // The place may be gone meanwhile: its client left, an administrator removed it, or
        // another replica's reaper (on a clock a little ahead) gave it up. Such a check-out
        // then takes a new place below, as it would a moment later.
        let kept: Option<QueueRow> = sqlx::query_as(
            "UPDATE seat_queue SET polled_at = $1, expires_at = CASE WHEN wait_until < $2 \
             THEN wait_until ELSE $2 END WHERE id = $3 RETURNING *",
        )
        .bind(c.now)
        .bind(c.now.saturating_add(QUEUE_POLL_WINDOW))
        .bind(&place.id)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(place) = kept {
            return Ok(CheckOutOutcome::Queued(Waiting {
                place,
                position: count(index).saturating_add(1),
                waiting: count(waiting.len()),
            }));
        }
    }
    // Not in line at `c.now`: its place (if any) lapsed. If the client kept asking until the
    // wait it asked for ran out, the wait is over; otherwise (it stopped asking for longer
    // than the poll window) it starts again at the end of the line.
    let lapsed: Option<QueueRow> = sqlx::query_as(
        "DELETE FROM seat_queue WHERE license_id = $1 AND client_id = $2 AND user_name = $3 \
         RETURNING *",
    )
    .bind(&c.license_id)
    .bind(&c.client_id)
    .bind(&c.user)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(place) = lapsed
        && place.wait_until <= c.now
        && c.now < place.polled_at.saturating_add(QUEUE_POLL_WINDOW)
    {
        return Ok(CheckOutOutcome::WaitOver);
    }
    record_denial(conn, c).await?;
    let wait_until = c.now.saturating_add(line.wait);
    let place: QueueRow = sqlx::query_as(
        "INSERT INTO seat_queue (id, license_id, client_id, user_name, seq, queued_at, \
         polled_at, wait_until, expires_at) \
         SELECT $1, $2, $3, $4, COALESCE(MAX(seq), 0) + 1, $5, $5, $6, $7 \
         FROM seat_queue WHERE license_id = $2 RETURNING *",
    )
    .bind(&line.place_id)
    .bind(&c.license_id)
    .bind(&c.client_id)
    .bind(&c.user)
    .bind(c.now)
    .bind(wait_until)
    .bind(wait_until.min(c.now.saturating_add(QUEUE_POLL_WINDOW)))
    .fetch_one(&mut *conn)
    .await?;
    // Behind every other place held (its own, if it vanished above, is not one of them).
    let others = waiting.len().saturating_sub(usize::from(mine.is_some()));
    let waiting = count(others).saturating_add(1);
    Ok(CheckOutOutcome::Queued(Waiting {
        place,
        position: waiting,
        waiting,
    }))
}

/// The leases of a license borrowed and live at `now`.
async fn borrowed_leases(conn: &mut AnyConnection, license_id: &str, now: i64) -> DbResult<i64> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM leases WHERE license_id = $1 AND released_at IS NULL \
         AND expires_at > $2 AND borrowed = 1",
    )
    .bind(license_id)
    .bind(now)
    .fetch_one(&mut *conn)
    .await
}

/// Borrows the live lease the same client and user hold: it keeps its seat and id, and now
/// runs until `borrow.until` (or later, if it already did). `None` if it ended meanwhile.
async fn borrow_held(
    conn: &mut AnyConnection,
    c: &OwnedCheckOut,
    borrow: Borrow,
    lease: &LeaseRow,
) -> DbResult<Option<CheckOutOutcome>> {
    if borrowed_leases(conn, &c.license_id, c.now).await? >= borrow.max_leases {
        return Ok(Some(CheckOutOutcome::BorrowLimit));
    }
    let borrowed: Option<LeaseRow> = sqlx::query_as(BORROW_LEASE)
        .bind(c.now)
        .bind(lease.expires_at.max(borrow.until))
        .bind(&lease.id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(borrowed.map(CheckOutOutcome::Existing))
}

/// A check-out from this client panics inside the writer (tests of the panic isolation).
#[cfg(test)]
pub(crate) const PANIC_FOR_TESTS: &str = "panic-inside-the-seat-writer";

/// Check-outs from clients whose id starts with this never take [`grant_in_one_statement`]
/// (tests of the transaction path under load).
#[cfg(test)]
pub(crate) const TRANSACTION_ONLY_FOR_TESTS: &str = "transaction-only-";

#[cfg(test)]
impl super::Db {
    /// Runs these check-outs as one batch, whatever the timing: they are all queued before a
    /// writer starts (tests of the batch semantics and of the one-by-one fallback).
    pub(crate) async fn check_out_as_one_batch(
        &self,
        checkouts: &[super::CheckOut<'_>],
    ) -> Vec<DbResult<CheckOutOutcome>> {
        self.seat_writes_as_one_batch(checkouts, &[]).await.0
    }

    /// [`Self::check_out_as_one_batch`] with check-ins in the same batch: (license, lease,
    /// epoch, secret hash, now) each.
    pub(crate) async fn seat_writes_as_one_batch(
        &self,
        checkouts: &[super::CheckOut<'_>],
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

#[cfg(test)]
mod counts_written_tests {
    use super::counts_written;

    #[test]
    fn a_count_statement_that_missed_a_license_fails_the_batch() {
        assert!(counts_written(3, 3).is_ok());
        let error = counts_written(2, 3).map_err(|e| e.to_string());
        assert!(
            matches!(&error, Err(message) if message.contains("held-lease counts: 2 of 3 licenses updated")),
            "{error:?}"
        );
        assert!(counts_written(4, 3).is_err());
    }
}
