//! What the audit trail records, decided in one place: the request layer ([`super::router`])
//! marks each request that may change state (any method but `GET`, `HEAD` and `OPTIONS`, on a
//! route outside `/v1/client/`) with an [`AuditSlot`]; the [`Caller`] extractor fills the slot
//! when it authenticates the API token; after the handler answers, a 2xx answer with a filled
//! slot is appended to the chain ([`Db::append_audit`](super::db::Db::append_audit)). Handlers
//! take no part in it, except that a handler owning a write transaction may append its entry
//! inside it ([`InTxAudit`]), so that the change and its entry commit together (and the
//! request commits once, not twice); the layer then writes nothing more.
//!
//! Client events (activations, check-outs, denials, ...) and the events other parts of the
//! server report (reclamation, deprovisioning) go to the second chain, `audit_events`, through
//! one call: [`Writer::record_event`] with an [`AuditEvent`]. It queues the event and returns
//! at once (no database round trip on the request's path); the writer appends queued events
//! in batches. Heartbeats are counted per license and UTC day ([`Writer::count_heartbeat`]),
//! not chained.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode};

use super::AppState;
use tokio::sync::{mpsc, oneshot};

use super::db::{BeatKey, Db, NewAuditEntry, NewAuditEvent, SaltedSubject};
use super::extract::Caller;

/// The actor of entries written by the command line (`licensing-server offline activate`,
/// `licensing-server admin-token`).
pub(crate) const CLI_ACTOR: &str = "cli";

/// Who the request acted as: filled by the [`Caller`] extractor, read by the request layer
/// after the handler. Present only in the extensions of requests the trail may record.
#[derive(Clone)]
pub(crate) struct AuditSlot(Arc<Slot>);

/// What an [`AuditSlot`] shares between the request layer, the extractor and the handler.
struct Slot {
    actor: OnceLock<Actor>,
    /// `METHOD /route/template`.
    action: String,
    /// The request path.
    target: String,
    /// Set when the handler appended the entry in its own transaction ([`InTxAudit`]).
    written_in_tx: std::sync::atomic::AtomicBool,
}

/// The authenticated API token of a request.
#[derive(Debug)]
struct Actor {
    token_id: String,
    organization_id: String,
}

impl AuditSlot {
    /// Records the authenticated caller (the first one, if a handler authenticated twice).
    pub(crate) fn set(&self, caller: &Caller) {
        let _ = self.0.actor.set(Actor {
            token_id: caller.token_id.clone(),
            organization_id: caller.organization_id.clone(),
        });
    }

    /// The entry of this request answered with `status` at `at`, once an API token is
    /// authenticated.
    fn entry(&self, status: StatusCode, at: i64) -> Option<NewAuditEntry> {
        let actor = self.0.actor.get()?;
        Some(NewAuditEntry {
            at,
            organization_id: Some(actor.organization_id.clone()),
            actor: actor.token_id.clone(),
            action: self.0.action.clone(),
            target: self.0.target.clone(),
            status: i64::from(status.as_u16()),
        })
    }
}

/// The extractor of a handler that appends its request's audit entry inside its own write
/// transaction ([`InTxAudit::append_in`]). Extract it after [`Caller`] (which fills the slot).
pub(crate) struct InTxAudit(Option<AuditSlot>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for InTxAudit {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(InTxAudit(parts.extensions.get::<AuditSlot>().cloned()))
    }
}

impl InTxAudit {
    /// Appends the request's entry, as answered with `status` (the 2xx the handler answers
    /// once `tx` commits), inside `tx`; the request layer then writes nothing for it. Nothing
    /// when the request is not recorded (no slot, or no authenticated token).
    pub(crate) async fn append_in(
        &self,
        db: &Db,
        tx: &mut super::db::Tx,
        status: StatusCode,
    ) -> super::db::DbResult<()> {
        let Some(slot) = &self.0 else {
            return Ok(());
        };
        let Some(entry) = slot.entry(status, super::now()) else {
            return Ok(());
        };
        db.append_audit_in(tx, &entry).await?;
        // Read by the layer only after the handler answered: a rolled-back `tx` answers an
        // error, which the layer does not record either.
        slot.0
            .written_in_tx
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

/// A request the trail may record, as seen before its handler runs.
pub(crate) struct Pending {
    slot: AuditSlot,
}

impl Pending {
    /// `Some` (and a slot put in the request's extensions) when `req` is a state-changing
    /// admin request: any method but `GET`, `HEAD` and `OPTIONS`, on a known route outside the
    /// client API.
    pub(crate) fn for_request(req: &mut Request) -> Option<Pending> {
        if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
            return None;
        }
        let route = req.extensions().get::<MatchedPath>()?.as_str();
        if route.starts_with("/v1/client/") {
            return None;
        }
        let pending = Pending {
            slot: AuditSlot(Arc::new(Slot {
                actor: OnceLock::new(),
                action: format!("{} {route}", req.method()),
                target: req.uri().path().to_owned(),
                written_in_tx: std::sync::atomic::AtomicBool::new(false),
            })),
        };
        req.extensions_mut().insert(pending.slot.clone());
        Some(pending)
    }

    /// After the handler: appends the entry when the answer is 2xx and an API token was
    /// authenticated, through this replica's [`Writer`].
    ///
    /// The entry is written after the handler's change has committed, in its own transaction:
    /// a crash (or a database failure) between the two loses that entry while the change
    /// stands. A failed append is logged (action, target and the database error; never a
    /// header or body) and the answer goes out all the same.
    pub(crate) async fn record(self, state: &AppState, status: StatusCode, at: i64) {
        let written_in_tx = self
            .slot
            .0
            .written_in_tx
            .load(std::sync::atomic::Ordering::Relaxed);
        if !status.is_success() || written_in_tx {
            return;
        }
        let Some(entry) = self.slot.entry(status, at) else {
            return;
        };
        state.audit().append(entry).await;
    }
}

/// How long a request waits for its entry to be written before it answers anyway (the entry
/// stays queued and is written when the database lets it).
const WRITTEN_WAIT: Duration = Duration::from_secs(5);

/// The stable names of the events of the `audit_events` chain (`action`).
pub(crate) mod action {
    /// A machine was activated on a license (target: the machine id).
    pub(crate) const MACHINE_ACTIVATED: &str = "machine.activated";
    /// An activation was refused: machine limit, license suspended, revoked or expired,
    /// transfer limit, ... (target: the license id; detail: the error code).
    pub(crate) const MACHINE_ACTIVATION_REFUSED: &str = "machine.activation_refused";
    /// A machine was transferred: the old one removed, the new one activated (target: the new
    /// machine id; detail: `from:<old machine id>`).
    pub(crate) const MACHINE_TRANSFERRED: &str = "machine.transferred";
    /// A transfer was refused (target: the license id; detail: the error code).
    pub(crate) const MACHINE_TRANSFER_REFUSED: &str = "machine.transfer_refused";
    /// A machine was deactivated, by its client or an administrator (target: the machine id;
    /// detail: `client` or `admin`).
    pub(crate) const MACHINE_DEACTIVATED: &str = "machine.deactivated";
    /// A floating seat was checked out (target: the lease id; subject: the user).
    pub(crate) const LEASE_CHECKED_OUT: &str = "lease.checked_out";
    /// A check-out was refused for want of a seat (target: the license id; subject: the user;
    /// detail: `no_seats` or `wait_over`).
    pub(crate) const LEASE_DENIED: &str = "lease.denied";
    /// A seat was checked in by its holder (target: the lease id; subject: the user).
    pub(crate) const LEASE_CHECKED_IN: &str = "lease.checked_in";
    /// A seat was force-released by an administrator (target: the lease id; subject: the
    /// user).
    pub(crate) const LEASE_FORCE_RELEASED: &str = "lease.force_released";
    /// A seat was reclaimed for inactivity (reported by the reclamation job).
    #[allow(dead_code)] // emitted by the reclamation part of issue 22
    pub(crate) const SEAT_RECLAIMED: &str = "seat.reclaimed";
    /// A user was deprovisioned: SCIM or the admin API deactivated or deleted it (target:
    /// the user id; detail: what was released).
    pub(crate) const USER_DEPROVISIONED: &str = "user.deprovisioned";
    /// A console account signed in (target: the account).
    pub(crate) const CONSOLE_SIGNED_IN: &str = "console.signed_in";
    /// A console sign-in was refused: a wrong password, or the account is locked (target: the
    /// account; an unknown name has no organization to record it in).
    pub(crate) const CONSOLE_SIGN_IN_REFUSED: &str = "console.sign_in_refused";
}

/// The actor of a client event: the license, never its key.
pub(crate) fn license_actor(license_id: &str) -> String {
    format!("license:{license_id}")
}

/// One event for the `audit_events` chain, as any part of the server reports it to
/// [`Writer::record_event`]:
///
/// ```ignore
/// state.audit().record_event(
///     AuditEvent::new(&org_id, "system:reclaim", action::SEAT_RECLAIMED, &seat_id)
///         .license(&license_id)
///         .detail("inactive:30d")
///         .subject(&user_name),
/// );
/// ```
///
/// `subject` is the personal data the event names (a user name, a host name, an e-mail): it is
/// kept outside the hashes, behind a salted commitment, so it can be erased
/// ([`Db::erase_subject`](super::db::Db::erase_subject)) while the chain still verifies. Put
/// no personal data in the other fields: they are hashed and cannot be erased.
#[derive(Debug, Clone)]
pub(crate) struct AuditEvent {
    /// The organization the event belongs to (its tenant: only it reads the event).
    pub organization_id: String,
    /// Who acted: [`license_actor`] for a client, an API token's id, `system:<job>`.
    pub actor: String,
    /// A stable dotted name, one of [`action`].
    pub action: &'static str,
    /// The id acted on: a machine, lease, license or user id.
    pub target_id: String,
    /// The license concerned, when there is one.
    pub license_id: Option<String>,
    /// A short machine-readable detail (e.g. the refusal's error code); no personal data.
    pub detail: String,
    /// The personal data the event names, if any (erasable).
    pub subject: Option<String>,
}

impl AuditEvent {
    /// An event of `organization_id`: `actor` did `action` to `target_id`.
    pub(crate) fn new(
        organization_id: &str,
        actor: impl Into<String>,
        action: &'static str,
        target_id: &str,
    ) -> AuditEvent {
        AuditEvent {
            organization_id: organization_id.to_owned(),
            actor: actor.into(),
            action,
            target_id: target_id.to_owned(),
            license_id: None,
            detail: String::new(),
            subject: None,
        }
    }

    /// The license concerned.
    pub(crate) fn license(mut self, license_id: &str) -> AuditEvent {
        self.license_id = Some(license_id.to_owned());
        self
    }

    /// A short detail (no personal data).
    pub(crate) fn detail(mut self, detail: impl Into<String>) -> AuditEvent {
        self.detail = detail.into();
        self
    }

    /// The personal data the event names.
    pub(crate) fn subject(mut self, subject: &str) -> AuditEvent {
        self.subject = Some(subject.to_owned());
        self
    }
}

/// What the event queue carries.
enum Queued {
    Event(NewAuditEvent),
    Beat(BeatKey),
    /// Answered once everything queued before it is written (tests, shutdown).
    Flush(oneshot::Sender<()>),
}

/// Events (and heartbeats) queued at most, per replica; beyond, an event is dropped, logged
/// and counted (`licensing_audit_events_dropped_total`).
pub(crate) const EVENT_QUEUE: usize = 65_536;

/// Events and heartbeats appended in one transaction at most.
const EVENT_BATCH: usize = 512;

/// How long the writer gathers events after the first of a batch: under load it takes the
/// database's write lock (SQLite: the one the seat writer needs too) at most 1 / this per
/// second.
const EVENT_GATHER: Duration = Duration::from_millis(50);

/// The replica's one audit writer: a task that appends queued admin entries one at a time, and
/// queued events in batches. Requests hand their admin entry over and wait for it (at most
/// [`WRITTEN_WAIT`]); the hand-over cannot be cancelled, so a client that disconnects, or a
/// request past its deadline, still has its entry written. Events are not waited for. One
/// writer per replica also means at most one pooled connection waits for a chain's lock,
/// however many writes come at once.
pub(crate) struct Writer {
    queue: mpsc::UnboundedSender<(NewAuditEntry, oneshot::Sender<()>)>,
    events: mpsc::Sender<Queued>,
    dropped: std::sync::atomic::AtomicU64,
}

impl Writer {
    /// Starts the writer task on the current runtime.
    pub(crate) fn start(db: Db) -> Writer {
        Writer::start_with(db, EVENT_QUEUE)
    }

    /// Starts the writer task with room for `capacity` queued events.
    pub(crate) fn start_with(db: Db, capacity: usize) -> Writer {
        let (queue, mut entries) =
            mpsc::unbounded_channel::<(NewAuditEntry, oneshot::Sender<()>)>();
        let (events, mut queued) = mpsc::channel::<Queued>(capacity);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    biased;
                    entry = entries.recv() => {
                        let Some((entry, written)) = entry else { break };
                        append_or_log(&db, &entry).await;
                        let _ = written.send(());
                    }
                    first = queued.recv() => {
                        let Some(first) = first else { break };
                        let batch = gather(first, &mut queued).await;
                        append_events_or_log(&db, batch).await;
                    }
                }
            }
        });
        Writer {
            queue,
            events,
            dropped: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Queues `entry` (at once: this part is not cancelled with the request) and waits, at most
    /// [`WRITTEN_WAIT`], until it is written or its failure logged.
    pub(crate) async fn append(&self, entry: NewAuditEntry) {
        let (written, done) = oneshot::channel();
        if let Err(unsent) = self.queue.send((entry, written)) {
            let entry = unsent.0.0;
            tracing::error!(action = %entry.action, target = %entry.target, actor = %entry.actor,
                "audit entry not written: the audit writer has stopped");
            return;
        }
        if tokio::time::timeout(WRITTEN_WAIT, done).await.is_err() {
            tracing::warn!("audit entry still queued after {WRITTEN_WAIT:?}; answering");
        }
    }

    /// Records `event` in the `audit_events` chain: queued at once, written by the writer in
    /// its next batch; the caller never waits for the database. When the queue is full
    /// ([`EVENT_QUEUE`]) the event is dropped, counted in `licensing_audit_events_dropped_total`
    /// and logged (the first, then every 1000th); a failed write is counted in
    /// `licensing_audit_events_lost_total` and logged.
    pub(crate) fn record_event(&self, event: AuditEvent) {
        let subject = match event.subject {
            None => None,
            Some(value) => match super::secrets::new_salt() {
                Ok(salt) => Some(SaltedSubject { value, salt }),
                Err(error) => {
                    self.lost(event.action, &error);
                    return;
                }
            },
        };
        let event = NewAuditEvent {
            at: super::now(),
            organization_id: event.organization_id,
            actor: event.actor,
            action: event.action.to_owned(),
            target_id: event.target_id,
            license_id: event.license_id,
            detail: event.detail,
            subject,
        };
        let action = event.action.clone();
        self.enqueue(Queued::Event(event), &action);
    }

    /// Counts one accepted heartbeat of `license_id` at `at` (per UTC day; not chained).
    pub(crate) fn count_heartbeat(&self, organization_id: &str, license_id: &str, at: i64) {
        let beat = BeatKey {
            organization_id: organization_id.to_owned(),
            license_id: license_id.to_owned(),
            utc_day: at.div_euclid(86_400),
        };
        self.enqueue(Queued::Beat(beat), "heartbeat");
    }

    /// Events dropped so far because the queue was full.
    #[cfg(test)]
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits until every event queued before is written (or its failure logged), at most
    /// [`WRITTEN_WAIT`] (then logged: the events stay queued).
    pub(crate) async fn flush(&self) {
        let (done, written) = oneshot::channel();
        let flushed = tokio::time::timeout(WRITTEN_WAIT, async {
            if self.events.send(Queued::Flush(done)).await.is_ok() {
                let _ = written.await;
            }
        });
        if flushed.await.is_err() {
            tracing::warn!("audit events still queued after {WRITTEN_WAIT:?}");
        }
    }

    fn enqueue(&self, item: Queued, action: &str) {
        match self.events.try_send(item) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::counter!("licensing_audit_events_dropped_total").increment(1);
                let n = self
                    .dropped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n.is_multiple_of(1000) {
                    tracing::error!(
                        action,
                        dropped = n + 1,
                        "audit event dropped: the audit writer's queue is full"
                    );
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.lost(action, "the audit writer has stopped");
            }
        }
    }

    fn lost(&self, action: &str, why: &str) {
        metrics::counter!("licensing_audit_events_lost_total").increment(1);
        tracing::error!(action, why, "audit event not written");
    }
}

/// The batch that starts with `first`: what is queued, and what comes within
/// [`EVENT_GATHER`], up to [`EVENT_BATCH`]; a flush ends it at once.
async fn gather(first: Queued, queued: &mut mpsc::Receiver<Queued>) -> Vec<Queued> {
    let deadline = tokio::time::Instant::now() + EVENT_GATHER;
    let mut flush = matches!(first, Queued::Flush(_));
    let mut batch = vec![first];
    while batch.len() < EVENT_BATCH && !flush {
        let next = match queued.try_recv() {
            Ok(next) => next,
            Err(mpsc::error::TryRecvError::Empty) => {
                match tokio::time::timeout_at(deadline, queued.recv()).await {
                    Ok(Some(next)) => next,
                    Ok(None) | Err(_) => break,
                }
            }
            Err(mpsc::error::TryRecvError::Disconnected) => break,
        };
        flush = matches!(next, Queued::Flush(_));
        batch.push(next);
    }
    batch
}

/// Appends one batch of queued events and heartbeat counts in one transaction (tried twice),
/// logging and counting a failure; then answers the flushes in the batch.
async fn append_events_or_log(db: &Db, batch: Vec<Queued>) {
    let mut events = Vec::new();
    let mut beats = std::collections::BTreeMap::<BeatKey, i64>::new();
    let mut flushes = Vec::new();
    for item in batch {
        match item {
            Queued::Event(event) => events.push(event),
            Queued::Beat(key) => *beats.entry(key).or_default() += 1,
            Queued::Flush(done) => flushes.push(done),
        }
    }
    let beats: Vec<(BeatKey, i64)> = beats.into_iter().collect();
    if !events.is_empty() || !beats.is_empty() {
        let mut result = db.append_audit_events(&events, &beats).await;
        if result.is_err() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            result = db.append_audit_events(&events, &beats).await;
        }
        if let Err(error) = result {
            let lost = u64::try_from(events.len()).unwrap_or(u64::MAX);
            metrics::counter!("licensing_audit_events_lost_total").increment(lost);
            tracing::error!(
                events = events.len(),
                heartbeat_counts = beats.len(),
                %error,
                "audit events not written"
            );
        }
    }
    for done in flushes {
        let _ = done.send(());
    }
}

/// Appends `entry`, logging a failure instead of answering it.
pub(crate) async fn append_or_log(db: &Db, entry: &NewAuditEntry) {
    if let Err(e) = db.append_audit(entry).await {
        tracing::error!(
            action = %entry.action,
            target = %entry.target,
            actor = %entry.actor,
            error = %e,
            "audit entry not written"
        );
    }
}

/// `licensing-server audit verify` options.
#[derive(clap::Args, Debug)]
pub struct AuditVerifyArgs {
    /// An entry's hash kept outside the database earlier, as `SEQ:HASH` (e.g. the `entries`
    /// and `head` a verify printed then). The chain must still hold that hash at that seq: with
    /// the chain intact, this proves no entry up to it was rewritten since, which the chain
    /// alone cannot (a database writer can recompute every hash). Repeatable.
    #[arg(long, value_name = "SEQ:HASH")]
    pub anchor: Vec<String>,
    /// The same for the client-event chain (`audit_events`): an event's hash kept outside
    /// the database earlier (the `events.entries` and `events.head` a verify printed then).
    /// Repeatable.
    #[arg(long, value_name = "SEQ:HASH")]
    pub event_anchor: Vec<String>,
    /// Check the signed checkpoints against this JWK Set instead of the database's keys: a
    /// file, or an `http(s)://` URL such as a running server's `/.well-known/jwks.json`. Without
    /// it, every key the database holds (retired ones included) is trusted.
    #[arg(long, value_name = "FILE|URL")]
    pub jwks: Option<String>,
    /// The server's data directory or database (read only: nothing is created or migrated).
    #[command(flatten)]
    pub store: super::config::DatabaseArgs,
}

/// Runs `audit verify` on the server's database: prints the outcome as JSON; exit 0 when the
/// chain is intact and every anchor matches, 1 when not, 2 for usage errors (a malformed
/// anchor, no database).
pub fn run_audit_verify(args: AuditVerifyArgs) -> std::process::ExitCode {
    super::init_logging("warn");
    let result = super::runtime().and_then(|rt| rt.block_on(audit_verify(&args)));
    match result {
        Ok((answer, intact)) => {
            println!("{answer:#}");
            std::process::ExitCode::from(if intact { 0 } else { 1 })
        }
        Err(message) => {
            eprintln!("error: {message}");
            std::process::ExitCode::from(2)
        }
    }
}

/// `SEQ:HASH`, the hash 64 lowercase hex digits.
fn parse_anchor(text: &str) -> Result<(i64, String), String> {
    let bad = || format!("--anchor `{text}`: expected SEQ:HASH (a seq from 1, 64 hex digits)");
    let (seq, hash) = text.split_once(':').ok_or_else(bad)?;
    let seq: i64 = seq.parse().ok().filter(|s| *s >= 1).ok_or_else(bad)?;
    let hash = hash.to_ascii_lowercase();
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    Ok((seq, hash))
}

/// A chain's outcome as the CLI prints it, and whether it is intact.
fn chain_json(check: super::db::ChainCheck) -> (serde_json::Value, bool) {
    use super::db::ChainCheck;
    match check {
        ChainCheck::Intact { entries, head } => (
            serde_json::json!({ "ok": true, "entries": entries, "head": head }),
            true,
        ),
        ChainCheck::Broken { at, reason } => (
            serde_json::json!({ "ok": false, "broken_at": at, "reason": reason }),
            false,
        ),
    }
}

async fn audit_verify(args: &AuditVerifyArgs) -> Result<(serde_json::Value, bool), String> {
    use super::db::ChainCheck;
    let anchors = args
        .anchor
        .iter()
        .map(|a| parse_anchor(a))
        .collect::<Result<Vec<_>, _>>()?;
    let event_anchors = args
        .event_anchor
        .iter()
        .map(|a| parse_anchor(a))
        .collect::<Result<Vec<_>, _>>()?;
    let external = match &args.jwks {
        Some(source) => Some(load_jwks(source).await?),
        None => None,
    };
    let settings = args.store.settings()?;
    let db = super::open_existing_store(&settings, super::db::Schema::ReadOnly).await?;
    let outcome = async {
        let chain = db.verify_audit().await.map_err(|e| e.to_string())?;
        let events = db.verify_audit_events().await.map_err(|e| e.to_string())?;
        let mut checked = Vec::new();
        for (seq, hash) in &anchors {
            let found = db.audit_hash_at(*seq).await.map_err(|e| e.to_string())?;
            checked.push(serde_json::json!({
                "seq": seq,
                "hash": hash,
                "matches": found.as_deref() == Some(hash.as_str()),
            }));
        }
        let mut checked_events = Vec::new();
        for (seq, hash) in &event_anchors {
            let found = db
                .audit_event_hash_at(*seq)
                .await
                .map_err(|e| e.to_string())?;
            checked_events.push(serde_json::json!({
                "seq": seq,
                "hash": hash,
                "matches": found.as_deref() == Some(hash.as_str()),
            }));
        }
        let checkpoints = verify_checkpoints(&db, external.as_ref()).await?;
        Ok::<_, String>((chain, events, checked, checked_events, checkpoints))
    }
    .await;
    db.close().await;
    let (chain, events, anchors, event_anchors, checkpoints) = outcome?;
    let anchors_match = anchors
        .iter()
        .chain(&event_anchors)
        .all(|a| a["matches"] == true)
        && checkpoints["ok"] == true;
    let (mut events, events_ok) = chain_json(events);
    events["anchors"] = serde_json::Value::Array(event_anchors);
    Ok(match chain {
        ChainCheck::Intact { entries, head } => {
            let ok = anchors_match && events_ok;
            (
                serde_json::json!({
                    "ok": ok, "entries": entries, "head": head, "anchors": anchors,
                    "events": events, "checkpoints": checkpoints,
                }),
                ok,
            )
        }
        ChainCheck::Broken { at, reason } => (
            serde_json::json!({
                "ok": false, "broken_at": at, "reason": reason, "anchors": anchors,
                "events": events, "checkpoints": checkpoints,
            }),
            false,
        ),
    })
}

/// Largest JWK Set `--jwks` reads.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// The trust store of `--jwks`: a file, or an `http(s)://` URL fetched once (10 s at most).
pub(crate) async fn load_jwks(source: &str) -> Result<licensing_core::TrustStore, String> {
    let text = if source.starts_with("http://") || source.starts_with("https://") {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("--jwks {source}: {e}"))?;
        let mut response = client
            .get(source)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("--jwks {source}: {e}"))?;
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("--jwks {source}: {e}"))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_JWKS_BYTES {
                return Err(format!(
                    "--jwks {source}: larger than {MAX_JWKS_BYTES} bytes"
                ));
            }
        }
        String::from_utf8(body).map_err(|_| format!("--jwks {source}: not UTF-8"))?
    } else {
        let meta = std::fs::metadata(source).map_err(|e| format!("--jwks {source}: {e}"))?;
        if meta.len() > MAX_JWKS_BYTES as u64 {
            return Err(format!(
                "--jwks {source}: larger than {MAX_JWKS_BYTES} bytes"
            ));
        }
        std::fs::read_to_string(source).map_err(|e| format!("--jwks {source}: {e}"))?
    };
    licensing_core::TrustStore::from_document(&text).map_err(|e| format!("--jwks {source}: {e}"))
}

/// Checks every stored signed checkpoint: its signature by a trusted key (`external`, or every
/// key the database holds, retired ones included), its claims, and that the chains still hold
/// what it signed: the hash at its seq (both chains' heads for a server checkpoint), and for an
/// organization checkpoint the digest of the organization's entries in its range. A checkpoint
/// whose entries were pruned since (below the chain's restart point) is counted as `pruned`.
async fn verify_checkpoints(
    db: &super::db::Db,
    external: Option<&licensing_core::TrustStore>,
) -> Result<serde_json::Value, String> {
    use licensing_core::audit_checkpoint::{SCOPE_SERVER, fold_digest, verify_audit_checkpoint};
    let error = |e: sqlx::Error| e.to_string();
    let own_store;
    let store = match external {
        Some(store) => store,
        None => {
            let mut store = licensing_core::TrustStore::new();
            for (kid, pem) in db.every_signing_key_pem().await.map_err(error)? {
                let key = licensing_core::PrivateKey::from_pkcs8_pem(&pem)
                    .map_err(|e| format!("signing key {kid}: {e}"))?;
                store
                    .add(key.public_key().clone())
                    .map_err(|e| format!("signing key {kid}: {e}"))?;
            }
            own_store = store;
            &own_store
        }
    };
    let pruned_below = db
        .audit_checkpoint("audit_log")
        .await
        .map_err(error)?
        .map_or(0, |(seq, _)| seq);
    let (mut checked, mut pruned) = (0i64, 0i64);
    let mut failures = Vec::new();
    let mut after = 0;
    loop {
        let page = db.all_signed_checkpoints(after, 500).await.map_err(error)?;
        let done = page.len() < 500;
        for row in page {
            after = row.id;
            checked += 1;
            let fail = |reason: String| serde_json::json!({ "id": row.id, "reason": reason });
            let claims = match verify_audit_checkpoint(&row.token, store) {
                Ok((_, claims)) => claims,
                Err(e) => {
                    failures.push(fail(format!(
                        "the token does not verify ({}): {e}",
                        e.status().as_str()
                    )));
                    continue;
                }
            };
            if claims.org != row.organization_id {
                failures.push(fail("its organization is not the row's".into()));
                continue;
            }
            if claims.seq > 0 && claims.seq < pruned_below {
                pruned += 1;
                continue;
            }
            if claims.seq > 0 {
                let found = db.audit_hash_at(claims.seq).await.map_err(error)?;
                if found.as_deref() != Some(claims.hash.as_str()) {
                    failures.push(fail(format!(
                        "the chain no longer holds the hash it signed at seq {}: entries up \
                         to it were rewritten",
                        claims.seq
                    )));
                    continue;
                }
            }
            if claims.scope == SCOPE_SERVER {
                let events_seq = claims.events_seq.unwrap_or(0);
                if events_seq > 0 {
                    let found = db.audit_event_hash_at(events_seq).await.map_err(error)?;
                    if found.as_deref() != claims.events_hash.as_deref() {
                        failures.push(fail(format!(
                            "the event chain no longer holds the hash it signed at seq \
                             {events_seq}: events up to it were rewritten"
                        )));
                    }
                }
                continue;
            }
            // An organization checkpoint: its range's digest, unless pruned into.
            let prev = claims.prev_seq.unwrap_or(0);
            if prev < pruned_below {
                pruned += 1;
                continue;
            }
            let (org, mut digest, mut count, mut from) = (
                claims.org.clone().unwrap_or_default(),
                claims.prev_digest.clone().unwrap_or_default(),
                0i64,
                prev,
            );
            loop {
                let entries = db
                    .audit_entries_between(&org, from, claims.seq, 1000)
                    .await
                    .map_err(error)?;
                let last_page = entries.len() < 1000;
                for entry in entries {
                    digest = fold_digest(&digest, [(entry.seq, entry.expected_hash().as_str())]);
                    count += 1;
                    from = entry.seq;
                }
                if last_page {
                    break;
                }
            }
            if Some(&digest) != claims.digest.as_ref() || Some(count) != claims.entries {
                failures.push(fail(format!(
                    "organization {org}'s entries with {prev} < seq <= {} no longer match the \
                     digest it signed: one was altered, removed or added",
                    claims.seq
                )));
            }
        }
        if done {
            break;
        }
    }
    Ok(serde_json::json!({
        "ok": failures.is_empty(),
        "checked": checked,
        "pruned": pruned,
        "trusted": if external.is_some() { "jwks" } else { "database" },
        "failures": failures,
    }))
}

/// `licensing-server audit verify-package` options.
#[derive(clap::Args, Debug)]
pub struct AuditVerifyPackageArgs {
    /// The package (`GET /v1/audit/package`), a zip.
    pub file: std::path::PathBuf,
    /// Trust this JWK Set (a file, or an `http(s)://` URL such as the server's
    /// `/.well-known/jwks.json`) instead of the package's own `jwks.json`.
    #[arg(long, value_name = "FILE|URL")]
    pub jwks: Option<String>,
    /// Fail (exit 1) when an entry of the package is covered by no checkpoint.
    #[arg(long)]
    pub require_covered: bool,
}

/// Runs `audit verify-package`: prints the report as JSON; exit 0 sound, 1 a check failed, 2
/// the file cannot be read, is not a zip, or `--jwks` cannot be loaded.
pub fn run_audit_verify_package(args: AuditVerifyPackageArgs) -> std::process::ExitCode {
    super::init_logging("warn");
    let outcome = (|| {
        let trust = match &args.jwks {
            Some(source) => Some(super::runtime()?.block_on(load_jwks(source))?),
            None => None,
        };
        let path = args.file.display();
        let meta = std::fs::metadata(&args.file).map_err(|e| format!("{path}: {e}"))?;
        if meta.len() > super::package::MAX_PACKAGE_BYTES {
            return Err(format!(
                "{path}: larger than {} bytes",
                super::package::MAX_PACKAGE_BYTES
            ));
        }
        let bytes = std::fs::read(&args.file).map_err(|e| format!("{path}: {e}"))?;
        super::package::verify(&bytes, trust.as_ref(), args.require_covered)
            .map_err(|e| format!("{path}: {}", e.0))
    })();
    match outcome {
        Ok(report) => {
            println!("{report:#}");
            std::process::ExitCode::from(if report["ok"] == true { 0 } else { 1 })
        }
        Err(message) => {
            eprintln!("error: {message}");
            std::process::ExitCode::from(2)
        }
    }
}
