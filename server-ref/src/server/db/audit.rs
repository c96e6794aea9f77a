//! The audit trail (`audit_log`): a SHA-256 hash chain of the successful state-changing admin
//! requests. One writer ([`Db::append_audit`]) serialized across replicas assigns `seq` 1, 2,
//! 3, ... and chains each entry to the one before; [`Db::verify_audit`] recomputes the chain.

use sha2::{Digest, Sha256};
use sqlx::FromRow;

use super::audit_events::chain_head;
use super::{Db, DbResult, Tx};

/// `prev_hash` of the first entry.
pub(crate) const GENESIS_HASH: &str =
    "0000000000000000000000000000000000000000000000000000000000000000";

/// PostgreSQL: the advisory lock key of the audit writer (any fixed number; "audit" in ASCII).
const AUDIT_LOCK_KEY: i64 = 0x61_75_64_69_74;

/// Rows read per statement while verifying the chain.
const VERIFY_PAGE: i64 = 1000;

/// The `chain` of `audit_checkpoints` for the admin chain.
pub(crate) const ADMIN_CHAIN: &str = "audit_log";

/// What is recorded about one request; the writer adds `seq`, `prev_hash` and `hash`.
#[derive(Debug, Clone)]
pub(crate) struct NewAuditEntry {
    /// Unix seconds.
    pub at: i64,
    /// The acting API token's organization (`None`: no organization, e.g. a CLI action that
    /// names none).
    pub organization_id: Option<String>,
    /// The API token's id (never the token), or `cli`.
    pub actor: String,
    /// Method and route template: `POST /v1/licenses/{id}/suspend`.
    pub action: String,
    /// The concrete path: `/v1/licenses/lic_123/suspend`.
    pub target: String,
    /// The HTTP status answered.
    pub status: i64,
}

/// A row of `audit_log`.
#[derive(Debug, Clone, PartialEq, Eq, FromRow, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct AuditEntry {
    /// 1, 2, 3, ... across all organizations.
    pub seq: i64,
    /// Unix seconds.
    pub at: i64,
    /// The acting token's organization.
    pub organization_id: Option<String>,
    /// The acting API token's id, or `cli`.
    pub actor: String,
    /// Method and route template, e.g. `POST /v1/licenses/{id}/suspend`.
    pub action: String,
    /// The concrete path.
    pub target: String,
    /// The id the request acted on: the path's last `{...}` segment (e.g. the license id of
    /// `/v1/licenses/{id}/suspend`); none for a route without one. Derived from `action` and
    /// `target`, so the hash covers it.
    #[sqlx(skip)]
    pub target_id: Option<String>,
    /// The HTTP status answered.
    pub status: i64,
    /// `hash` of the entry before (64 zeros for seq 1).
    pub prev_hash: String,
    /// SHA-256 (lowercase hex) over a length-prefixed encoding of every other column.
    pub hash: String,
}

/// The outcome of a verification of the whole chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ChainCheck {
    /// Every entry is intact and in place: how many, and the last one's hash (64 zeros when
    /// the chain is empty).
    Intact { entries: i64, head: String },
    /// The first entry found wrong, and why.
    Broken { at: i64, reason: String },
}

/// The hash of an entry: SHA-256 over a domain tag, then each column in table order, integers
/// as 8 big-endian bytes, texts as an 8-byte big-endian length and their UTF-8 bytes, the
/// nullable organization as one byte (0 none, 1 some) before its text; `prev_hash` last. Every
/// column has one encoding and no two columns can be confused, so no other entry has the same
/// input.
#[allow(clippy::too_many_arguments)] // one per column: the encoding reads as the table
pub(crate) fn entry_hash(
    seq: i64,
    at: i64,
    organization_id: Option<&str>,
    actor: &str,
    action: &str,
    target: &str,
    status: i64,
    prev_hash: &str,
) -> String {
    fn text(hasher: &mut Sha256, value: &str) {
        hasher.update((value.len() as u64).to_be_bytes());
        hasher.update(value.as_bytes());
    }
    let mut hasher = Sha256::new();
    text(&mut hasher, "licensing-server audit_log v1");
    hasher.update(seq.to_be_bytes());
    hasher.update(at.to_be_bytes());
    match organization_id {
        None => hasher.update([0u8]),
        Some(org) => {
            hasher.update([1u8]);
            text(&mut hasher, org);
        }
    }
    text(&mut hasher, actor);
    text(&mut hasher, action);
    text(&mut hasher, target);
    hasher.update(status.to_be_bytes());
    text(&mut hasher, prev_hash);
    base16ct::lower::encode_string(&hasher.finalize())
}

/// The value of the last `{...}` segment of the route template in `action` (`METHOD
/// /route`) within the concrete path `target`: `None` when the route has none or the two do
/// not line up.
pub(crate) fn target_id_of(action: &str, target: &str) -> Option<String> {
    let route = action.split_once(' ')?.1;
    let template: Vec<&str> = route.split('/').collect();
    let path: Vec<&str> = target.split('/').collect();
    if template.len() != path.len() {
        return None;
    }
    template
        .iter()
        .zip(&path)
        .filter(|(t, _)| t.starts_with('{') && t.ends_with('}'))
        .map(|(_, p)| (*p).to_owned())
        .next_back()
}

impl AuditEntry {
    /// Fills the derived `target_id`.
    pub(super) fn with_target_id(mut self) -> AuditEntry {
        self.target_id = target_id_of(&self.action, &self.target);
        self
    }

    /// The hash its columns (other than `hash`) call for.
    fn expected_hash(&self) -> String {
        entry_hash(
            self.seq,
            self.at,
            self.organization_id.as_deref(),
            &self.actor,
            &self.action,
            &self.target,
            self.status,
            &self.prev_hash,
        )
    }
}

impl Db {
    /// Appends `entry` to the audit chain in its own transaction: writers are serialized
    /// across replicas (SQLite: `BEGIN IMMEDIATE`, the database's one write lock; PostgreSQL:
    /// a transaction-scoped advisory lock), the last entry is read and the new one inserted as
    /// its `seq + 1`, chained to its hash. Returns the stored entry.
    pub async fn append_audit(&self, entry: &NewAuditEntry) -> DbResult<AuditEntry> {
        let mut tx = self.begin_chain_write(AUDIT_LOCK_KEY, false).await?;
        let stored = append_audit_locked(&mut tx, entry).await?;
        tx.commit().await?;
        Ok(stored)
    }

    /// Appends `entry` to the audit chain inside the caller's write transaction `tx`, so the
    /// change and its entry commit (or roll back) together. SQLite: `tx` holds the database's
    /// write lock already (`BEGIN IMMEDIATE`); PostgreSQL: the chain's advisory lock is taken
    /// here, held until `tx` ends (take it last: it serializes every audit writer).
    pub async fn append_audit_in(
        &self,
        tx: &mut Tx,
        entry: &NewAuditEntry,
    ) -> DbResult<AuditEntry> {
        if self.engine == super::Engine::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(AUDIT_LOCK_KEY)
                .execute(&mut **tx)
                .await?;
        }
        append_audit_locked(tx, entry).await
    }
}

/// [`Db::append_audit`] in `tx`, which holds the chain's lock.
async fn append_audit_locked(tx: &mut Tx, entry: &NewAuditEntry) -> DbResult<AuditEntry> {
    // The last entry, else (every entry pruned) the checkpoint, else the genesis.
    let (last, prev_hash) = chain_head(tx, ADMIN_CHAIN).await?;
    let seq = last + 1;
    let hash = entry_hash(
        seq,
        entry.at,
        entry.organization_id.as_deref(),
        &entry.actor,
        &entry.action,
        &entry.target,
        entry.status,
        &prev_hash,
    );
    sqlx::query(
        "INSERT INTO audit_log \
             (seq, at, organization_id, actor, action, target, status, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(seq)
    .bind(entry.at)
    .bind(entry.organization_id.as_deref())
    .bind(&entry.actor)
    .bind(&entry.action)
    .bind(&entry.target)
    .bind(entry.status)
    .bind(&prev_hash)
    .bind(&hash)
    .execute(&mut **tx)
    .await?;
    Ok(AuditEntry {
        seq,
        at: entry.at,
        organization_id: entry.organization_id.clone(),
        actor: entry.actor.clone(),
        action: entry.action.clone(),
        target: entry.target.clone(),
        target_id: target_id_of(&entry.action, &entry.target),
        status: entry.status,
        prev_hash,
        hash,
    })
}

impl Db {
    /// The hash stored for entry `seq`, if there is one (the checkpoint's, when `seq` is the
    /// checkpoint's: that entry is pruned).
    pub async fn audit_hash_at(&self, seq: i64) -> DbResult<Option<String>> {
        let hash: Option<String> = sqlx::query_scalar("SELECT hash FROM audit_log WHERE seq = $1")
            .bind(seq)
            .fetch_optional(&self.pool)
            .await?;
        if hash.is_some() {
            return Ok(hash);
        }
        Ok(self
            .audit_checkpoint(ADMIN_CHAIN)
            .await?
            .filter(|(at, _)| *at == seq)
            .map(|(_, hash)| hash))
    }

    /// The checkpoint of `chain` (`audit_log` or `audit_events`): the seq and hash of the last
    /// entry pruned from its start, where verification restarts.
    pub async fn audit_checkpoint(&self, chain: &str) -> DbResult<Option<(i64, String)>> {
        sqlx::query_as("SELECT seq, hash FROM audit_checkpoints WHERE chain = $1")
            .bind(chain)
            .fetch_optional(&self.pool)
            .await
    }

    /// Prunes the admin chain by its start: every entry older than its organization's audit
    /// retention (`audit_days`; an entry without an organization is the operator's) up to the
    /// first entry that is not is deleted, below a new checkpoint. Entries are never blanked
    /// one by one here: an admin entry's one hash covers its columns, so only a prefix can go
    /// while the rest still verifies. Returns how many entries were deleted.
    pub async fn prune_audit_log(&self, now: i64, operator: &str) -> DbResult<u64> {
        let mut tx = self.begin_chain_write(AUDIT_LOCK_KEY, false).await?;
        let first_kept: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(a.seq) FROM audit_log a LEFT JOIN retention_policies r \
             ON r.organization_id = COALESCE(a.organization_id, $1) \
             WHERE r.audit_days IS NULL OR a.at >= $2 - r.audit_days * 86400",
        )
        .bind(operator)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let cut: Option<i64> = match first_kept {
            Some(seq) => Some(seq - 1),
            None => {
                sqlx::query_scalar("SELECT MAX(seq) FROM audit_log")
                    .fetch_one(&mut *tx)
                    .await?
            }
        };
        let deleted = match cut {
            Some(cut) => checkpoint_below(&mut tx, ADMIN_CHAIN, "audit_log", cut, now).await?,
            None => 0,
        };
        tx.commit().await?;
        Ok(deleted)
    }

    /// One organization's entries with `seq > after`, oldest first, at most `limit`.
    pub async fn list_audit(
        &self,
        organization_id: &str,
        after: i64,
        limit: i64,
    ) -> DbResult<Vec<AuditEntry>> {
        sqlx::query_as(
            "SELECT * FROM audit_log WHERE organization_id = $1 AND seq > $2 \
             ORDER BY seq LIMIT $3",
        )
        .bind(organization_id)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map(|entries: Vec<AuditEntry>| {
            entries
                .into_iter()
                .map(AuditEntry::with_target_id)
                .collect()
        })
    }

    /// Recomputes the whole chain, oldest first: seqs 1, 2, 3, ... without a gap, each
    /// `prev_hash` the hash of the entry before (64 zeros for the first), each `hash` the one
    /// its columns call for. Reports the first entry where one of these fails: an edited entry
    /// breaks at itself, a deleted one at the entry after it, a moved one at its new place.
    ///
    /// Once the oldest entries are pruned, the walk starts at the checkpoint instead: the
    /// entry after it must be chained to the checkpoint's hash.
    pub async fn verify_audit(&self) -> DbResult<ChainCheck> {
        let (start, mut prev_hash) = match self.audit_checkpoint(ADMIN_CHAIN).await? {
            Some((seq, hash)) => (seq + 1, hash),
            None => (1, GENESIS_HASH.to_owned()),
        };
        // Entries below the start are never read by the walk below: looked for first.
        let below: Option<i64> =
            sqlx::query_scalar("SELECT MIN(seq) FROM audit_log WHERE seq < $1")
                .bind(start)
                .fetch_one(&self.pool)
                .await?;
        if let Some(seq) = below {
            return Ok(broken(seq, &format!("seq must start at {start}")));
        }
        let mut expected_seq = start;
        loop {
            let page: Vec<AuditEntry> =
                sqlx::query_as("SELECT * FROM audit_log WHERE seq >= $1 ORDER BY seq LIMIT $2")
                    .bind(expected_seq)
                    .bind(VERIFY_PAGE)
                    .fetch_all(&self.pool)
                    .await?;
            let done = i64::try_from(page.len()).unwrap_or(i64::MAX) < VERIFY_PAGE;
            for entry in page {
                if entry.seq != expected_seq {
                    let reason = if expected_seq == start {
                        format!("the chain starts at seq {}, not {start}", entry.seq)
                    } else {
                        format!(
                            "seq {} follows {}: an entry is missing",
                            entry.seq,
                            expected_seq - 1
                        )
                    };
                    return Ok(broken(entry.seq, &reason));
                }
                if entry.prev_hash != prev_hash {
                    let reason = if expected_seq == 1 {
                        "the first entry's prev_hash is not 64 zeros".to_owned()
                    } else {
                        format!("prev_hash is not the hash of entry {}", expected_seq - 1)
                    };
                    return Ok(broken(entry.seq, &reason));
                }
                if entry.hash != entry.expected_hash() {
                    return Ok(broken(
                        entry.seq,
                        "hash does not match the entry's columns (edited)",
                    ));
                }
                prev_hash = entry.hash;
                expected_seq += 1;
            }
            if done {
                break;
            }
        }
        Ok(ChainCheck::Intact {
            entries: expected_seq - 1,
            head: prev_hash,
        })
    }
}

/// Deletes the rows of `table` (the chain `chain`) with `seq <= cut` and stores the checkpoint
/// `(cut, hash of cut)`, when `cut` is above the current checkpoint and its row exists. In the
/// chain's write transaction. Returns how many rows were deleted.
pub(super) async fn checkpoint_below(
    tx: &mut super::Tx,
    chain: &str,
    table: &str,
    cut: i64,
    at: i64,
) -> DbResult<u64> {
    // `table` is one of two names written in this crate.
    let (hash_at, delete) = match table {
        "audit_events" => (
            "SELECT hash FROM audit_events WHERE seq = $1",
            "DELETE FROM audit_events WHERE seq <= $1",
        ),
        _ => (
            "SELECT hash FROM audit_log WHERE seq = $1",
            "DELETE FROM audit_log WHERE seq <= $1",
        ),
    };
    let Some(hash) = sqlx::query_scalar::<_, String>(hash_at)
        .bind(cut)
        .fetch_optional(&mut **tx)
        .await?
    else {
        return Ok(0);
    };
    let deleted = sqlx::query(delete)
        .bind(cut)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    sqlx::query(
        "INSERT INTO audit_checkpoints (chain, seq, hash, at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (chain) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, \
         at = excluded.at",
    )
    .bind(chain)
    .bind(cut)
    .bind(&hash)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(deleted)
}

pub(super) fn broken(at: i64, reason: &str) -> ChainCheck {
    ChainCheck::Broken {
        at,
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every column moves the hash, and the length prefixes keep adjacent texts apart.
    #[test]
    fn every_column_is_in_the_hash() {
        let base = entry_hash(1, 2, Some("org"), "tok", "POST /x", "/x", 201, GENESIS_HASH);
        assert_eq!(base.len(), 64);
        assert!(
            base.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        let variants = [
            entry_hash(2, 2, Some("org"), "tok", "POST /x", "/x", 201, GENESIS_HASH),
            entry_hash(1, 3, Some("org"), "tok", "POST /x", "/x", 201, GENESIS_HASH),
            entry_hash(1, 2, None, "tok", "POST /x", "/x", 201, GENESIS_HASH),
            entry_hash(1, 2, Some(""), "tok", "POST /x", "/x", 201, GENESIS_HASH),
            entry_hash(1, 2, Some("or"), "gtok", "POST /x", "/x", 201, GENESIS_HASH),
            entry_hash(1, 2, Some("org"), "tok", "POST /y", "/x", 201, GENESIS_HASH),
            entry_hash(1, 2, Some("org"), "tok", "POST /x", "/y", 201, GENESIS_HASH),
            entry_hash(1, 2, Some("org"), "tok", "POST /x", "/x", 200, GENESIS_HASH),
            entry_hash(
                1,
                2,
                Some("org"),
                "tok",
                "POST /x",
                "/x",
                201,
                &"1".repeat(64),
            ),
        ];
        for (i, variant) in variants.iter().enumerate() {
            assert_ne!(&base, variant, "variant {i}");
        }
    }
}
