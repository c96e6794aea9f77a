//! Fresh PostgreSQL databases for tests, on the throwaway server `scripts/with-postgres.sh`
//! starts (it exports `LICENSING_TEST_POSTGRES_URL`). Without that variable the PostgreSQL
//! half of a test reports itself skipped on stderr, unless `LICENSING_REQUIRE_POSTGRES=1`
//! (set by `scripts/test-all.sh`, so CI never skips it): then it fails.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// The admin URL of the test server, or `None` (skip) when none is configured.
pub fn admin_url(test: &str) -> Option<String> {
    match std::env::var("LICENSING_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("LICENSING_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "{test}: LICENSING_REQUIRE_POSTGRES=1 but LICENSING_TEST_POSTGRES_URL is unset \
                 (run under scripts/with-postgres.sh)"
            );
            eprintln!("{test}: PostgreSQL part SKIPPED (no LICENSING_TEST_POSTGRES_URL)");
            None
        }
    }
}

/// Creates an empty database and returns its URL, or `None` (skip) as [`admin_url`].
pub fn fresh_database(test: &str) -> Option<String> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let admin = admin_url(test)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let name = format!(
        "lic_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let out = Command::new("psql")
        .arg(&admin)
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-c"])
        .arg(format!("CREATE DATABASE {name}"))
        .output()
        .unwrap_or_else(|e| panic!("{test}: running psql: {e}"));
    assert!(
        out.status.success(),
        "{test}: CREATE DATABASE failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let base = admin
        .rsplit_once('/')
        .map(|(base, _)| base)
        .unwrap_or_else(|| panic!("{test}: no database name in {admin}"));
    Some(format!("{base}/{name}"))
}
