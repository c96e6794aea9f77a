//! Where a test server keeps its data, and running a test on both engines. Included by the
//! integration tests that start `licensing-server serve` (with `postgres`, i.e.
//! `src/server/test_postgres.rs`, included beside it).

use std::path::PathBuf;

use super::postgres;

/// The default SQLite file under the data dir, or a fresh PostgreSQL database.
#[derive(Clone, Debug)]
pub enum Backend {
    Sqlite,
    Postgres(String),
}

impl Backend {
    /// The `serve` arguments that select this backend.
    pub fn args(&self) -> Vec<&str> {
        match self {
            Backend::Sqlite => vec![],
            Backend::Postgres(url) => vec!["--database-url", url],
        }
    }
}

/// Runs `test` on SQLite, then on a fresh PostgreSQL database (skipped without one, unless
/// `LICENSING_REQUIRE_POSTGRES=1`).
pub fn on_both(name: &str, test: fn(Backend)) {
    test(Backend::Sqlite);
    if let Some(url) = postgres::fresh_database(name) {
        test(Backend::Postgres(url));
    }
}

/// A temporary directory and the data directory to give the server inside it.
pub fn temp_data() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    (dir, data)
}
