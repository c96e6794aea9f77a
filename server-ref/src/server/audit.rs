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

/// The actor of entries written by the command line (`licensing-server offline activate`).
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
