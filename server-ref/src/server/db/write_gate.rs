//! SQLite: the process's write transactions take turns in a queue of their own instead of in
//! SQLite's busy handler.
//!
//! SQLite has one write lock per database. A connection that finds it taken waits in the busy
//! handler, which polls with growing sleeps (1, 2, 5, 10, 15, 20, 25, 50, 100 ms): two
//! writers that take turns every couple of milliseconds make the unlucky one sleep tens of
//! milliseconds while the lock is free most of that time. Measured on a seat assignment
//! (issue 22, `directory_load`, 2 clients): p50 1.6 ms but p99 36 ms and a maximum above a
//! second, and `strace` showed the sleeps. So every write transaction of this process
//! (`BEGIN IMMEDIATE`: the handlers' license writes, the audit writers, the seat writer, key
//! and directory writes) first takes [`WriteGate`], a fair (FIFO) async mutex, and holds it
//! until it commits or rolls back ([`Tx`] carries it). Writers of the same process then never
//! meet in the busy handler; another process (a CLI command next to `serve`) still does, as
//! before.
//!
//! The gate waits at most [`GATE_WAIT`] (SQLite's `busy_timeout`); after that the transaction
//! begins without it and SQLite's lock decides, as it did before the gate existed. So a code
//! path that began a second write transaction while holding one (which SQLite itself would
//! refuse after `busy_timeout`) is not turned into a hang. PostgreSQL has no gate: its row
//! locks and advisory locks queue waiters already.

use std::sync::Arc;
use std::time::Duration;

use sqlx::Any;
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::{DbResult, Engine};

/// The longest a writer waits for the gate: SQLite's `busy_timeout` (5 s).
const GATE_WAIT: Duration = Duration::from_secs(5);

/// The write gate of one database (SQLite), or none (PostgreSQL). Cloned with the `Db`.
#[derive(Clone, Debug, Default)]
pub(crate) struct WriteGate(Option<Arc<Mutex<()>>>);

impl WriteGate {
    /// The gate `engine` needs.
    pub(super) fn for_engine(engine: Engine) -> WriteGate {
        WriteGate((engine == Engine::Sqlite).then(|| Arc::new(Mutex::new(()))))
    }

    /// Waits for this process's turn to write (SQLite), at most [`GATE_WAIT`].
    pub(super) async fn enter(&self) -> Option<OwnedMutexGuard<()>> {
        self.enter_within(GATE_WAIT).await
    }

    /// [`WriteGate::enter`], waiting at most `wait`.
    async fn enter_within(&self, wait: Duration) -> Option<OwnedMutexGuard<()>> {
        let gate = self.0.as_ref()?;
        match tokio::time::timeout(wait, gate.clone().lock_owned()).await {
            Ok(turn) => Some(turn),
            Err(_) => {
                tracing::warn!("a write waited {wait:?} for the write gate; beginning without it");
                None
            }
        }
    }

    /// Whether a write transaction of this process holds the turn now.
    #[cfg(test)]
    pub(super) fn is_taken(&self) -> bool {
        self.0.as_ref().is_some_and(|gate| gate.try_lock().is_err())
    }

    /// `BEGIN IMMEDIATE` on `pool` in this process's turn (SQLite).
    pub(super) async fn begin_immediate(&self, pool: &sqlx::AnyPool) -> DbResult<Tx> {
        let turn = self.enter().await;
        let tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        Ok(Tx { tx, _turn: turn })
    }
}

/// A database transaction of either engine; a SQLite write transaction also holds the
/// process's turn to write ([`WriteGate`]) until it ends. Dereferences to the connection, as
/// `sqlx::Transaction` does, so queries run on `&mut *tx`; dropping it rolls back.
pub(crate) struct Tx {
    // Dropped in this order: the transaction (rolled back unless committed), then the turn.
    tx: sqlx::Transaction<'static, Any>,
    _turn: Option<OwnedMutexGuard<()>>,
}

impl Tx {
    /// Commits, then gives the turn to the next writer.
    pub async fn commit(self) -> DbResult<()> {
        let Tx { tx, _turn } = self;
        tx.commit().await
    }

    /// Rolls back, then gives the turn to the next writer.
    pub async fn rollback(self) -> DbResult<()> {
        let Tx { tx, _turn } = self;
        tx.rollback().await
    }
}

impl From<sqlx::Transaction<'static, Any>> for Tx {
    /// A transaction that holds no turn (PostgreSQL, or a SQLite read or deferred transaction).
    fn from(tx: sqlx::Transaction<'static, Any>) -> Tx {
        Tx { tx, _turn: None }
    }
}

impl std::ops::Deref for Tx {
    type Target = <Any as sqlx::Database>::Connection;

    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

impl std::fmt::Debug for Tx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx")
            .field("gated", &self._turn.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::server::db::Db;

    /// Every kind of write transaction holds the turn until it commits, rolls back or is
    /// dropped; a read transaction does not take it.
    #[tokio::test]
    async fn a_write_transaction_holds_the_turn_until_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open_sqlite_file(&dir.path().join("gate.db"))
            .await
            .unwrap();
        assert!(!db.gate.is_taken());
        let tx = db.begin_write().await.unwrap();
        assert!(db.gate.is_taken());
        // The next writer waits in the gate, not in SQLite's busy handler.
        let next = tokio::spawn({
            let db = db.clone();
            async move { db.begin_license_write("lic_x").await.map(drop) }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!next.is_finished());
        tx.commit().await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), next)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(!db.gate.is_taken());
        let tx = db.begin_write().await.unwrap();
        tx.rollback().await.unwrap();
        assert!(!db.gate.is_taken());
        drop(db.begin_write().await.unwrap());
        assert!(!db.gate.is_taken());
        let read = db.begin_read().await.unwrap();
        assert!(!db.gate.is_taken());
        drop(read);
    }

    /// A writer that waited the whole wait begins without the turn (SQLite's lock decides, as
    /// before the gate): a path that nests two write transactions is not turned into a hang.
    #[tokio::test]
    async fn a_writer_goes_on_without_the_turn_after_the_wait() {
        let gate = WriteGate::for_engine(Engine::Sqlite);
        let held = gate.enter().await;
        assert!(held.is_some());
        assert!(gate.enter_within(Duration::from_millis(20)).await.is_none());
        drop(held);
        assert!(gate.enter_within(Duration::from_millis(20)).await.is_some());
        assert!(
            WriteGate::for_engine(Engine::Postgres)
                .enter()
                .await
                .is_none()
        );
    }
}
