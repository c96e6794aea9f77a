//! Licenses by key hash, kept in memory for a short while. Every client call (validate, seat
//! check-out, heartbeat, check-in) starts by loading its license by key; under load that read
//! is a large share of the database work (measured: half of a heartbeat's statements on
//! PostgreSQL). This process forgets every cached license as soon as it writes any license, so
//! it never answers from a row older than its own last write; a change made by another replica
//! is seen within [`TTL`]. Hand-written: a map, a clock and a size cap are all it needs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::LicenseRow;

/// How long a cached license may be used: the most a change made on another replica can take
/// to reach this one's client calls.
pub(crate) const TTL: Duration = Duration::from_secs(1);

/// Past this many entries the cache starts over (bounds memory whatever the keys presented).
const MAX_ENTRIES: usize = 100_000;

/// The cache; cloned with the `Db`.
#[derive(Debug, Clone, Default)]
pub(crate) struct LicenseCache {
    entries: Arc<Mutex<HashMap<String, (Instant, LicenseRow)>>>,
    /// Bumped by every clear: a read that started before a write must not cache what it read.
    generation: Arc<AtomicU64>,
}

/// When a read started: see [`LicenseCache::before_read`].
pub(crate) struct ReadStart {
    at: Instant,
    generation: u64,
}

impl LicenseCache {
    /// The license with this key hash, if cached less than [`TTL`] ago.
    pub fn get(&self, key_hash: &str) -> Option<LicenseRow> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        match entries.get(key_hash) {
            Some((at, row)) if at.elapsed() < TTL => Some(row.clone()),
            _ => None,
        }
    }

    /// Taken before reading a license from the database.
    pub fn before_read(&self) -> ReadStart {
        ReadStart {
            at: Instant::now(),
            generation: self.generation.load(Ordering::SeqCst),
        }
    }

    /// Remembers a license read since `start`, unless this process wrote a license meanwhile
    /// (the row may predate that write). Its age counts from `start`.
    pub fn put(&self, key_hash: &str, start: &ReadStart, row: &LicenseRow) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        // Checked under the lock `clear` takes, so a clear cannot slip in between.
        if self.generation.load(Ordering::SeqCst) != start.generation {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key_hash.to_owned(), (start.at, row.clone()));
    }

    /// Forgets every license (after any write to one).
    pub fn clear(&self) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        self.generation.fetch_add(1, Ordering::SeqCst);
        entries.clear();
    }

    /// A guard that forgets every license when dropped: declared first in a method that writes
    /// licenses, it runs after the method's transaction, on every return path.
    pub fn clear_on_drop(&self) -> ClearOnDrop<'_> {
        ClearOnDrop(self)
    }
}

/// See [`LicenseCache::clear_on_drop`].
pub(crate) struct ClearOnDrop<'a>(&'a LicenseCache);

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        self.0.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(status: &str) -> LicenseRow {
        LicenseRow {
            id: "lic_1".into(),
            organization_id: "org".into(),
            key_hash: "hash".into(),
            key_hint: "ABCDE".into(),
            product_id: "p".into(),
            policy_id: "pol".into(),
            status: status.into(),
            claims: "{}".into(),
            token: None,
            expires_at: None,
            created_at: 0,
            updated_at: 0,
            lease_timeout: 900,
        }
    }

    /// A row read before a write of this process is not cached: the next read goes to the
    /// database and sees the write. A read after it is cached, and a clear forgets it.
    #[test]
    fn a_read_racing_a_write_is_not_cached() {
        let cache = LicenseCache::default();
        let start = cache.before_read();
        cache.clear(); // a write commits while the read is in flight
        cache.put("hash", &start, &row("active"));
        assert!(cache.get("hash").is_none());

        let start = cache.before_read();
        cache.put("hash", &start, &row("suspended"));
        assert_eq!(
            cache.get("hash").map(|r| r.status),
            Some("suspended".into())
        );
        cache.clear();
        assert!(cache.get("hash").is_none());
    }
}
