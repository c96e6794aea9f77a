//! Client calls linked to directory users: the user a floating check-out, an activation or a
//! validation names is looked up in its license's organization by user name (without regard
//! to case, the `directory_users (organization_id, user_name_key)` unique index), and its id
//! goes into `leases.user_id`, `denials.user_id` and `machines.user_id`.
//!
//! The check-out is the hot path: the lookup is cached here per organization and user name,
//! the user's id or its absence, for [`LINK_TTL`], so a license's steady stream of check-outs
//! by the same people costs one indexed read per user per [`LINK_TTL`], not one per check-out.
//! This process forgets every link when it changes the directory ([`LinkCache::clear`]);
//! a change made by another replica (or through a path that does not clear) is seen within
//! [`LINK_TTL`]. A validation writes a machine's link only when it changes: the last link
//! written per machine is remembered too, so the steady state of validations stays without
//! a write. Hand-written, like `license_cache`: a map, a clock and a size cap.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::directory::name_key as user_name_key;
use super::{Db, DbResult};

/// How long a cached link may be used.
pub(crate) const LINK_TTL: Duration = Duration::from_secs(5);

/// Past this many entries a map starts over (bounds memory whatever the user names sent).
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Default)]
struct Maps {
    /// `org \0 user_name_key` -> (read at, the user's id or `None`: no such user).
    users: HashMap<String, (Instant, Option<DirectoryLink>)>,
    /// machine id -> (user id, user name) last written by this process.
    machines: HashMap<String, (Option<String>, String)>,
}

/// The cache; cloned with the `Db`.
/// The directory user a name links to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DirectoryLink {
    /// The user's id.
    pub id: String,
    /// `false`: deprovisioned (left the organization).
    pub active: bool,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct LinkCache {
    maps: Arc<Mutex<Maps>>,
    /// Bumped by every clear: a lookup that started before a change must not cache its answer.
    generation: Arc<AtomicU64>,
}

fn user_key(organization_id: &str, user_name: &str) -> String {
    format!("{organization_id}\0{}", user_name_key(user_name))
}

impl LinkCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Maps> {
        self.maps.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached link (`Some(None)`: known to match no user), if read less than
    /// [`LINK_TTL`] ago.
    fn get(&self, key: &str) -> Option<Option<DirectoryLink>> {
        match self.lock().users.get(key) {
            Some((at, id)) if at.elapsed() < LINK_TTL => Some(id.clone()),
            _ => None,
        }
    }

    /// Remembers a lookup that started at `at` in `generation`, unless the directory changed
    /// since.
    fn put(&self, key: String, at: Instant, generation: u64, id: Option<DirectoryLink>) {
        let mut maps = self.lock();
        if self.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        if maps.users.len() >= MAX_ENTRIES {
            maps.users.clear();
        }
        maps.users.insert(key, (at, id));
    }

    /// Whether this process last linked machine `machine_id` to exactly this user.
    fn machine_linked(&self, machine_id: &str, user_id: Option<&str>, user_name: &str) -> bool {
        self.lock()
            .machines
            .get(machine_id)
            .is_some_and(|(id, name)| id.as_deref() == user_id && name == user_name)
    }

    fn machine_written(&self, machine_id: &str, user_id: Option<&str>, user_name: &str) {
        let mut maps = self.lock();
        if maps.machines.len() >= MAX_ENTRIES {
            maps.machines.clear();
        }
        maps.machines.insert(
            machine_id.to_owned(),
            (user_id.map(str::to_owned), user_name.to_owned()),
        );
    }

    /// Forgets every link (after any change of the directory).
    pub fn clear(&self) {
        let mut maps = self.lock();
        self.generation.fetch_add(1, Ordering::SeqCst);
        maps.users.clear();
        maps.machines.clear();
    }
}

impl Db {
    /// The id of the directory user of `organization_id` named `user_name` (without regard to
    /// case), `None` when none matches: one indexed read, cached for [`LINK_TTL`].
    pub async fn directory_user_id(
        &self,
        organization_id: &str,
        user_name: &str,
    ) -> DbResult<Option<String>> {
        Ok(self
            .directory_link(organization_id, user_name)
            .await?
            .map(|link| link.id))
    }

    /// The directory user of `organization_id` named `user_name` (without regard to case):
    /// its id and whether it is active; `None` when none matches. One indexed read, cached for
    /// [`LINK_TTL`].
    pub async fn directory_link(
        &self,
        organization_id: &str,
        user_name: &str,
    ) -> DbResult<Option<DirectoryLink>> {
        let key = user_key(organization_id, user_name);
        if let Some(found) = self.links.get(&key) {
            return Ok(found);
        }
        let at = Instant::now();
        let generation = self.links.generation.load(Ordering::SeqCst);
        let row: Option<(String, i64)> = sqlx::query_as(
            "SELECT id, active FROM directory_users \
             WHERE organization_id = $1 AND user_name_key = $2",
        )
        .bind(organization_id)
        .bind(user_name_key(user_name))
        .fetch_optional(&self.pool)
        .await?;
        let link = row.map(|(id, active)| DirectoryLink {
            id,
            active: active != 0,
        });
        self.links.put(key, at, generation, link.clone());
        Ok(link)
    }

    /// Forgets the cached links: called after every change of the directory this process
    /// makes, so its next client call sees the change.
    pub fn forget_directory_links(&self) {
        self.links.clear();
    }

    /// Links machine `machine_id` to the user a validation named, unless this process last
    /// linked it to the same one (no write in the steady state). The statement changes
    /// nothing when the stored link is the same already.
    pub async fn link_machine(
        &self,
        machine_id: &str,
        user_id: Option<&str>,
        user_name: &str,
    ) -> DbResult<()> {
        if self.links.machine_linked(machine_id, user_id, user_name) {
            return Ok(());
        }
        sqlx::query(
            "UPDATE machines SET user_id = $1, user_name = $2 WHERE id = $3 \
             AND (user_id IS DISTINCT FROM $1 OR user_name IS DISTINCT FROM $2)",
        )
        .bind(user_id)
        .bind(user_name)
        .bind(machine_id)
        .execute(&self.pool)
        .await?;
        self.links.machine_written(machine_id, user_id, user_name);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lookup that started before a directory change is not cached; one after it is, and a
    /// clear forgets it.
    #[test]
    fn a_lookup_racing_a_change_is_not_cached() {
        let cache = LinkCache::default();
        let generation = cache.generation.load(Ordering::SeqCst);
        cache.clear(); // the directory changes while the lookup is in flight
        let link = DirectoryLink {
            id: "usr_1".into(),
            active: true,
        };
        cache.put("k".into(), Instant::now(), generation, Some(link));
        assert_eq!(cache.get("k"), None);

        let generation = cache.generation.load(Ordering::SeqCst);
        cache.put("k".into(), Instant::now(), generation, None);
        assert_eq!(cache.get("k"), Some(None), "an absence is cached too");
        cache.clear();
        assert_eq!(cache.get("k"), None);
    }

    #[test]
    fn user_names_match_without_regard_to_case() {
        assert_eq!(
            user_key("org", "Alice.Smith"),
            user_key("org", "alice.smith")
        );
        assert_ne!(user_key("org", "alice"), user_key("org2", "alice"));
    }
}
