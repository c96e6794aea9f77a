//! What the audit trail records, decided in one place: the request layer ([`super::router`])
//! marks each request that may change state (any method but `GET`, `HEAD` and `OPTIONS`, on a
//! route outside `/v1/client/`) with an [`AuditSlot`]; the [`Caller`] extractor fills the slot
//! when it authenticates the API token; after the handler answers, a 2xx answer with a filled
//! slot is appended to the chain ([`Db::append_audit`](super::db::Db::append_audit)). Handlers
//! take no part in it.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode};

use super::AppState;
use tokio::sync::{mpsc, oneshot};

use super::db::{Db, NewAuditEntry};
use super::extract::Caller;

/// The actor of entries written by the command line (`licensing-server offline activate`,
/// `licensing-server admin-token`).
pub(crate) const CLI_ACTOR: &str = "cli";

/// Who the request acted as: filled by the [`Caller`] extractor, read by the request layer
/// after the handler. Present only in the extensions of requests the trail may record.
#[derive(Clone, Default)]
pub(crate) struct AuditSlot(Arc<OnceLock<Actor>>);

/// The authenticated API token of a request.
#[derive(Debug)]
struct Actor {
    token_id: String,
    organization_id: String,
}

impl AuditSlot {
    /// Records the authenticated caller (the first one, if a handler authenticated twice).
    pub(crate) fn set(&self, caller: &Caller) {
        let _ = self.0.set(Actor {
            token_id: caller.token_id.clone(),
            organization_id: caller.organization_id.clone(),
        });
    }
}

/// A request the trail may record, as seen before its handler runs.
pub(crate) struct Pending {
    slot: AuditSlot,
    action: String,
    target: String,
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
            slot: AuditSlot::default(),
            action: format!("{} {route}", req.method()),
            target: req.uri().path().to_owned(),
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
        if !status.is_success() {
            return;
        }
        let Some(actor) = self.slot.0.get() else {
            return;
        };
        let entry = NewAuditEntry {
            at,
            organization_id: Some(actor.organization_id.clone()),
            actor: actor.token_id.clone(),
            action: self.action,
            target: self.target,
            status: i64::from(status.as_u16()),
        };
        state.audit().append(entry).await;
    }
}

/// How long a request waits for its entry to be written before it answers anyway (the entry
/// stays queued and is written when the database lets it).
const WRITTEN_WAIT: Duration = Duration::from_secs(5);

/// The replica's one audit writer: a task that appends queued entries one at a time. Requests
/// hand their entry over and wait for it (at most [`WRITTEN_WAIT`]); the hand-over cannot be
/// cancelled, so a client that disconnects, or a request past its deadline, still has its entry
/// written. One writer per replica also means at most one pooled connection waits for the
/// chain's lock, however many admin writes come at once.
pub(crate) struct Writer {
    queue: mpsc::UnboundedSender<(NewAuditEntry, oneshot::Sender<()>)>,
}

impl Writer {
    /// Starts the writer task on the current runtime.
    pub(crate) fn start(db: Db) -> Writer {
        let (queue, mut entries) =
            mpsc::unbounded_channel::<(NewAuditEntry, oneshot::Sender<()>)>();
        tokio::spawn(async move {
            while let Some((entry, written)) = entries.recv().await {
                append_or_log(&db, &entry).await;
                let _ = written.send(());
            }
        });
        Writer { queue }
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

async fn audit_verify(args: &AuditVerifyArgs) -> Result<(serde_json::Value, bool), String> {
    use super::db::ChainCheck;
    let anchors = args
        .anchor
        .iter()
        .map(|a| parse_anchor(a))
        .collect::<Result<Vec<_>, _>>()?;
    let settings = args.store.settings()?;
    let db = super::open_existing_store(&settings, super::db::Schema::ReadOnly).await?;
    let outcome = async {
        let chain = db.verify_audit().await.map_err(|e| e.to_string())?;
        let mut checked = Vec::new();
        for (seq, hash) in &anchors {
            let found = db.audit_hash_at(*seq).await.map_err(|e| e.to_string())?;
            checked.push(serde_json::json!({
                "seq": seq,
                "hash": hash,
                "matches": found.as_deref() == Some(hash.as_str()),
            }));
        }
        Ok::<_, String>((chain, checked))
    }
    .await;
    db.close().await;
    let (chain, anchors) = outcome?;
    let anchors_match = anchors.iter().all(|a| a["matches"] == true);
    Ok(match chain {
        ChainCheck::Intact { entries, head } => (
            serde_json::json!({
                "ok": anchors_match, "entries": entries, "head": head, "anchors": anchors,
            }),
            anchors_match,
        ),
        ChainCheck::Broken { at, reason } => (
            serde_json::json!({
                "ok": false, "broken_at": at, "reason": reason, "anchors": anchors,
            }),
            false,
        ),
    })
}
