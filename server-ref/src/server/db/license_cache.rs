//! Licenses by key hash and machines by fingerprint, kept in memory for a short while. Every
//! client call (validate, seat check-out, heartbeat, check-in) starts by loading its license
//! by key, and a validation then loads the machine; under load those reads are a large share
//! of the database work (measured: half of a heartbeat's statements on PostgreSQL, and every
//! validation crossing to sqlx's SQLite worker thread twice). This process forgets everything
//! cached as soon as it writes any license or machine, so it never answers from a row older
//! than its own last write; a change made by another replica is seen within [`TTL`].
//! Hand-written: a map, a clock and a size cap are all it needs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::{LicenseRow, Machine};

/// How long a cached row may be used: the most a change made on another replica can take to
/// reach this one's client calls.
pub(crate) const TTL: Duration = Duration::from_secs(1);

/// Past this many entries a map starts over (bounds memory whatever the keys presented).
const MAX_ENTRIES: usize = 100_000;

/// Rows read at an instant, by key.
#[derive(Debug)]
struct TtlMap<V>(HashMap<String, (Instant, V)>);

impl<V> Default for TtlMap<V> {
    fn default() -> Self {
        Self(HashMap::new())
    }
}

impl<V: Clone> TtlMap<V> {
    fn get(&self, key: &str) -> Option<V> {
        match self.0.get(key) {
            Some((at, value)) if at.elapsed() < TTL => Some(value.clone()),
            _ => None,
        }
    }

    fn put(&mut self, key: &str, at: Instant, value: V) {
        if self.0.len() >= MAX_ENTRIES {
            self.0.clear();
        }
        self.0.insert(key.to_owned(), (at, value));
    }
}

#[derive(Debug, Default)]
struct Maps {
    licenses: TtlMap<Arc<LicenseRow>>,
    /// `None`: the fingerprint is not activated on the license.
    machines: TtlMap<Option<Machine>>,
}

/// The cache; cloned with the `Db`.
#[derive(Debug, Clone, Default)]
pub(crate) struct LicenseCache {
    maps: Arc<Mutex<Maps>>,
    /// Bumped by every clear: a read that started before a write must not cache what it read.
    generation: Arc<AtomicU64>,
}

/// When a read started: see [`LicenseCache::before_read`].
pub(crate) struct ReadStart {
    at: Instant,
    generation: u64,
}

/// The key of a machine: its license and fingerprint id (neither contains a NUL: both are
/// printable ASCII).
fn machine_key(license_id: &str, fingerprint: &str) -> String {
    format!("{license_id}\0{fingerprint}")
}

impl LicenseCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Maps> {
        self.maps.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The license with this key hash, if cached less than [`TTL`] ago.
    pub fn get(&self, key_hash: &str) -> Option<Arc<LicenseRow>> {
        self.lock().licenses.get(key_hash)
    }

    /// The machine with this fingerprint on the license (`Some(None)`: known not to be
    /// activated), if cached less than [`TTL`] ago.
    pub fn get_machine(&self, license_id: &str, fingerprint: &str) -> Option<Option<Machine>> {
        self.lock()
            .machines
            .get(&machine_key(license_id, fingerprint))
    }

    /// Taken before reading from the database.
    pub fn before_read(&self) -> ReadStart {
        ReadStart {
            at: Instant::now(),
            generation: self.generation.load(Ordering::SeqCst),
        }
    }

    /// Runs `put` on the maps unless this process wrote meanwhile (what was read may predate
    /// that write). Checked under the lock `clear` takes, so a clear cannot slip in between.
    fn put_if_unchanged(&self, start: &ReadStart, put: impl FnOnce(&mut Maps)) {
        let mut maps = self.lock();
        if self.generation.load(Ordering::SeqCst) == start.generation {
            put(&mut maps);
        }
    }

    /// Remembers a license read since `start`. Its age counts from `start`.
    pub fn put(&self, key_hash: &str, start: &ReadStart, row: &Arc<LicenseRow>) {
        self.put_if_unchanged(start, |maps| {
            maps.licenses.put(key_hash, start.at, row.clone());
        });
    }

    /// Remembers a machine (or its absence) read since `start`.
    pub fn put_machine(
        &self,
        license_id: &str,
        fingerprint: &str,
        start: &ReadStart,
        machine: &Option<Machine>,
    ) {
        self.put_if_unchanged(start, |maps| {
            let key = machine_key(license_id, fingerprint);
            maps.machines.put(&key, start.at, machine.clone());
        });
    }

    /// Records a new `last_seen_at` in a cached machine (nothing else of it changed).
    pub fn machine_seen(&self, machine: &Machine, at: i64) {
        let key = machine_key(&machine.license_id, &machine.fingerprint);
        if let Some((_, Some(cached))) = self.lock().machines.0.get_mut(&key) {
            cached.last_seen_at = cached.last_seen_at.max(at);
        }
    }

    /// Forgets every license and machine (after any write to one).
    pub fn clear(&self) {
        let mut maps = self.lock();
        self.generation.fetch_add(1, Ordering::SeqCst);
        maps.licenses.0.clear();
        maps.machines.0.clear();
    }

    /// A guard that forgets everything when dropped: declared first in a method that writes
    /// licenses or machines, it runs after the method's transaction, on every return path.
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
            borrow_max_seconds: 0,
            borrow_max_leases: 0,
            queue_max_seconds: 0,
            allow_unmetered: 0,
            seat_mode: "floating".into(),
            allow_over_allocation: 0,
            reclaim_after: None,
            customer_key: None,
            parsed: Default::default(),
        }
    }

    /// A row read before a write of this process is not cached: the next read goes to the
    /// database and sees the write. A read after it is cached, and a clear forgets it.
    #[test]
    fn a_read_racing_a_write_is_not_cached() {
        let cache = LicenseCache::default();
        let start = cache.before_read();
        cache.clear(); // a write commits while the read is in flight
        cache.put("hash", &start, &Arc::new(row("active")));
        assert!(cache.get("hash").is_none());

        let start = cache.before_read();
        cache.put("hash", &start, &Arc::new(row("suspended")));
        assert_eq!(
            cache.get("hash").map(|r| r.status.clone()),
            Some("suspended".into())
        );
        cache.clear();
        assert!(cache.get("hash").is_none());
    }
}
