//! Licenses by key hash, kept in memory for a short while. Every client call (validate, seat
//! check-out, heartbeat, check-in) starts by loading its license by key; under load that read
//! is a large share of the database work (measured: half of a heartbeat's statements on
//! PostgreSQL). This process forgets every cached license as soon as it writes any license, so
//! it never answers from a row older than its own last write; a change made by another replica
//! is seen within [`TTL`]. Hand-written: a map, a clock and a size cap are all it needs.

use std::collections::HashMap;
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

    /// Remembers a license read at `read_at` (taken before the query, so a write that
    /// commits during the query cannot be outlived by the row it made stale).
    pub fn put(&self, key_hash: &str, read_at: Instant, row: &LicenseRow) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key_hash.to_owned(), (read_at, row.clone()));
    }

    /// Forgets every license (after any write to one).
    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
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
