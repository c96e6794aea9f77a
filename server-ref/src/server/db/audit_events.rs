//! The client-event chain (`audit_events`, migration 0014): a second SHA-256 hash chain beside
//! the admin requests' `audit_log`, for the events of the client API (activations, check-outs,
//! denials, ...) and those other parts report (`seat.reclaimed`, `user.deprovisioned`).
//!
//! Each row has two hashes: `content_hash` over what happened (actor, action, target, license,
//! detail, and the commitment to the personal data), and `hash` over `seq`, `at`, the
//! organization, `content_hash` and `prev_hash`. The personal data itself (`subject`) and its
//! salt are outside both, so erasing them ([`Db::erase_subject`]) leaves the chain intact; a
//! pruned row ([`Db::prune_audit_events`]) loses its content but keeps `content_hash`, so its
//! place, time and organization stay verified. Rows are appended in batches by the replica's
//! audit writer ([`Db::append_audit_events`]), together with the heartbeat counts.

use sha2::{Digest, Sha256};
use sqlx::FromRow;

use super::audit::GENESIS_HASH;
use super::{Db, DbResult, Engine};

/// PostgreSQL: the advisory lock key of the event chain's writers ("audev" in ASCII).
const EVENTS_LOCK_KEY: i64 = 0x61_75_64_65_76;

/// The `chain` of `audit_checkpoints` for this chain.
pub(crate) const EVENTS_CHAIN: &str = "audit_events";

/// Rows read per statement while verifying the chain.
const VERIFY_PAGE: i64 = 1000;

/// Events inserted per statement (14 parameters each).
const INSERT_CHUNK: usize = 64;

/// Personal data an event names, with the random salt of its commitment.
#[derive(Debug, Clone)]
pub(crate) struct SaltedSubject {
    /// The value (a user name, a host name, an e-mail).
    pub value: String,
    /// Random per event (lowercase hex).
    pub salt: String,
}

/// An event as the writer appends it; the chain adds `seq`, the hashes and `prev_hash`.
#[derive(Debug, Clone)]
pub(crate) struct NewAuditEvent {
    /// Unix seconds.
    pub at: i64,
    /// The organization the event belongs to.
    pub organization_id: String,
    /// Who acted: `license:<id>`, an API token's id, or `system:<job>`.
    pub actor: String,
    /// Stable dotted name, e.g. `machine.activated`.
    pub action: String,
    /// The id acted on (machine, lease, license, user id).
    pub target_id: String,
    /// The license concerned, when there is one.
    pub license_id: Option<String>,
    /// A short machine-readable detail (a refusal's error code, ...), never personal data.
    pub detail: String,
    /// Personal data, kept outside the hashes.
    pub subject: Option<SaltedSubject>,
}

/// One day's heartbeats of one license.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct BeatKey {
    /// The license's organization.
    pub organization_id: String,
    /// The license.
    pub license_id: String,
    /// Days since the Unix epoch (UTC).
    pub utc_day: i64,
}

/// A row of `audit_events`.
#[derive(Debug, Clone, PartialEq, Eq, FromRow, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct AuditEventRow {
    /// 1, 2, 3, ... across all organizations.
    pub seq: i64,
    /// Unix seconds.
    pub at: i64,
    /// The organization.
    pub organization_id: String,
    /// Who acted: `license:<id>`, an API token's id, or `system:<job>` (empty once pruned).
    pub actor: String,
    /// e.g. `machine.activated`, `lease.denied` (empty once pruned).
    pub action: String,
    /// The id acted on (empty once pruned).
    pub target_id: String,
    /// The license concerned.
    pub license_id: Option<String>,
    /// A short detail, e.g. a refusal's error code.
    pub detail: String,
    /// SHA-256 (hex) of `subject_salt` then `subject`, when the event named personal data.
    pub subject_commitment: Option<String>,
    /// The personal data (null once erased or pruned).
    pub subject: Option<String>,
    /// The commitment's salt (null once erased or pruned).
    pub subject_salt: Option<String>,
    /// SHA-256 over the content columns (kept when the row is pruned).
    pub content_hash: String,
    /// 1 once pruned by the retention policy (content blanked), else 0.
    pub pruned: i64,
    /// `hash` of the row before.
    pub prev_hash: String,
    /// SHA-256 over seq, at, organization, content_hash and prev_hash.
    pub hash: String,
}

/// Heartbeats of one license on one UTC day.
#[derive(Debug, Clone, PartialEq, Eq, FromRow, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct HeartbeatCount {
    /// The license.
    pub license_id: String,
    /// Days since the Unix epoch (UTC).
    pub utc_day: i64,
    /// Heartbeats accepted that day.
    pub beats: i64,
}

fn text(hasher: &mut Sha256, value: &str) {
    hasher.update((value.len() as u64).to_be_bytes());
    hasher.update(value.as_bytes());
}

fn optional(hasher: &mut Sha256, value: Option<&str>) {
    match value {
        None => hasher.update([0u8]),
        Some(value) => {
            hasher.update([1u8]);
            text(hasher, value);
        }
    }
}

/// The commitment to a subject: SHA-256 (lowercase hex) of the salt's text then the value's
/// UTF-8 bytes.
pub(crate) fn subject_commitment(salt: &str, value: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(salt.as_bytes());
    hasher.update(value.as_bytes());
    base16ct::lower::encode_string(&hasher.finalize())
}

/// The content hash: SHA-256 over a domain tag, then actor, action, target_id, license_id,
/// detail and subject_commitment (texts 8-byte length-prefixed, the optional ones after a 0/1
/// byte).
pub(crate) fn content_hash(
    actor: &str,
    action: &str,
    target_id: &str,
    license_id: Option<&str>,
    detail: &str,
    commitment: Option<&str>,
) -> String {
    let mut hasher = Sha256::new();
    text(&mut hasher, "licensing-server audit_events content v1");
    text(&mut hasher, actor);
    text(&mut hasher, action);
    text(&mut hasher, target_id);
    optional(&mut hasher, license_id);
    text(&mut hasher, detail);
    optional(&mut hasher, commitment);
    base16ct::lower::encode_string(&hasher.finalize())
}

/// The row hash: SHA-256 over a domain tag, seq and at (8 bytes big-endian), then the
/// organization, the content hash and prev_hash (length-prefixed).
pub(crate) fn event_hash(
    seq: i64,
    at: i64,
    organization_id: &str,
    content_hash: &str,
    prev_hash: &str,
) -> String {
    let mut hasher = Sha256::new();
    text(&mut hasher, "licensing-server audit_events v1");
    hasher.update(seq.to_be_bytes());
    hasher.update(at.to_be_bytes());
    text(&mut hasher, organization_id);
    text(&mut hasher, content_hash);
    text(&mut hasher, prev_hash);
    base16ct::lower::encode_string(&hasher.finalize())
}

impl AuditEventRow {
    /// Why the row is not what its hashes say, if it is not (`None`: intact).
    fn fault(&self, pruned_before: Option<i64>) -> Option<String> {
        if self.pruned != 0 {
            // A pruned row's content is gone; only a row the retention reached may be.
            if pruned_before.is_none_or(|before| self.at >= before) {
                return Some(
                    "the entry is blanked as pruned, but its organization's pruning never \
                     reached it"
                        .to_owned(),
                );
            }
        } else {
            match (&self.subject, &self.subject_salt, &self.subject_commitment) {
                (Some(value), Some(salt), Some(commitment)) => {
                    if subject_commitment(salt, value) != *commitment {
                        return Some("subject does not match its commitment (edited)".to_owned());
                    }
                }
                (None, None, _) => {}
                _ => return Some("subject without its salt or commitment (edited)".to_owned()),
            }
            let content = content_hash(
                &self.actor,
                &self.action,
                &self.target_id,
                self.license_id.as_deref(),
                &self.detail,
                self.subject_commitment.as_deref(),
            );
            if content != self.content_hash {
                return Some("content_hash does not match the entry's columns (edited)".to_owned());
            }
        }
        let hash = event_hash(
            self.seq,
            self.at,
            &self.organization_id,
            &self.content_hash,
            &self.prev_hash,
        );
        (hash != self.hash).then(|| "hash does not match the entry's columns (edited)".to_owned())
    }
}

impl Db {
    /// Begins a transaction holding the write lock of the chain `chain` (SQLite: `BEGIN
    /// IMMEDIATE`, the database's one write lock; PostgreSQL: a transaction-scoped advisory
    /// lock), as every writer of that chain does.
    ///
    /// `relaxed`: on the connections that commit without waiting for the disk (SQLite
    /// `synchronous=NORMAL`, PostgreSQL `synchronous_commit = off`; durable at the next
    /// ordinary commit): the event batches, whose loss at a power cut is no larger than that of
    /// the events still queued.
    pub(super) async fn begin_chain_write(
        &self,
        lock_key: i64,
        relaxed: bool,
    ) -> DbResult<super::Tx> {
        let pool = if relaxed { &self.relaxed } else { &self.pool };
        match self.engine {
            Engine::Sqlite => self.gate.begin_immediate(pool).await,
            Engine::Postgres => {
                let mut tx = super::Tx::from(pool.begin().await?);
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(lock_key)
                    .execute(&mut *tx)
                    .await?;
                Ok(tx)
            }
        }
    }

    /// Appends `events` to the event chain and adds `beats` to the heartbeat counts, in one
    /// transaction (the writer's group commit). Returns the stored rows.
    pub async fn append_audit_events(
        &self,
        events: &[NewAuditEvent],
        beats: &[(BeatKey, i64)],
    ) -> DbResult<Vec<AuditEventRow>> {
        let mut tx = self.begin_chain_write(EVENTS_LOCK_KEY, true).await?;
        let (mut seq, mut prev_hash) = if events.is_empty() {
            (0, String::new())
        } else {
            chain_head(&mut tx, EVENTS_CHAIN).await?
        };
        let mut stored = Vec::with_capacity(events.len());
        for event in events {
            seq += 1;
            let commitment = event
                .subject
                .as_ref()
                .map(|s| subject_commitment(&s.salt, &s.value));
            let content = content_hash(
                &event.actor,
                &event.action,
                &event.target_id,
                event.license_id.as_deref(),
                &event.detail,
                commitment.as_deref(),
            );
            let hash = event_hash(seq, event.at, &event.organization_id, &content, &prev_hash);
            stored.push(AuditEventRow {
                seq,
                at: event.at,
                organization_id: event.organization_id.clone(),
                actor: event.actor.clone(),
                action: event.action.clone(),
                target_id: event.target_id.clone(),
                license_id: event.license_id.clone(),
                detail: event.detail.clone(),
                subject_commitment: commitment,
                subject: event.subject.as_ref().map(|s| s.value.clone()),
                subject_salt: event.subject.as_ref().map(|s| s.salt.clone()),
                content_hash: content,
                pruned: 0,
                prev_hash: std::mem::replace(&mut prev_hash, hash.clone()),
                hash,
            });
        }
        // Several rows per statement: one round trip per chunk, not per event.
        for chunk in stored.chunks(INSERT_CHUNK) {
            let rows: Vec<String> = (0..chunk.len())
                .map(|i| {
                    let p = |k: usize| format!("${}", i * 14 + k);
                    format!(
                        "({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, 0, {}, {})",
                        p(1),
                        p(2),
                        p(3),
                        p(4),
                        p(5),
                        p(6),
                        p(7),
                        p(8),
                        p(9),
                        p(10),
                        p(11),
                        p(12),
                        p(13),
                        p(14)
                    )
                })
                .collect();
            let sql = format!(
                "INSERT INTO audit_events (seq, at, organization_id, actor, action, target_id, \
                 license_id, detail, subject_commitment, subject, subject_salt, content_hash, \
                 pruned, prev_hash, hash) VALUES {}",
                rows.join(", ")
            );
            // Placeholders only: every value is bound.
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for row in chunk {
                query = query
                    .bind(row.seq)
                    .bind(row.at)
                    .bind(row.organization_id.clone())
                    .bind(row.actor.clone())
                    .bind(row.action.clone())
                    .bind(row.target_id.clone())
                    .bind(row.license_id.clone())
                    .bind(row.detail.clone())
                    .bind(row.subject_commitment.clone())
                    .bind(row.subject.clone())
                    .bind(row.subject_salt.clone())
                    .bind(row.content_hash.clone())
                    .bind(row.prev_hash.clone())
                    .bind(row.hash.clone());
            }
            query.execute(&mut *tx).await?;
        }
        for (key, beats) in beats {
            sqlx::query(
                "INSERT INTO audit_heartbeats (organization_id, license_id, utc_day, beats) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (organization_id, license_id, utc_day) \
                 DO UPDATE SET beats = audit_heartbeats.beats + excluded.beats",
            )
            .bind(&key.organization_id)
            .bind(&key.license_id)
            .bind(key.utc_day)
            .bind(*beats)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(stored)
    }

    /// One organization's events with `seq > after`, oldest first, at most `limit`; only
    /// those of `license_id` when given.
    pub async fn list_audit_events(
        &self,
        organization_id: &str,
        license_id: Option<&str>,
        after: i64,
        limit: i64,
    ) -> DbResult<Vec<AuditEventRow>> {
        sqlx::query_as(
            "SELECT * FROM audit_events WHERE organization_id = $1 AND seq > $2 \
             AND ($3 IS NULL OR license_id = $3) ORDER BY seq LIMIT $4",
        )
        .bind(organization_id)
        .bind(after)
        .bind(license_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }

    /// The distinct erasable subjects of one organization's events whose lowercase matches
    /// the `LIKE` pattern `pattern` (escaped by `\`): the candidates for a person's spellings
    /// of their name, which the caller narrows.
    pub async fn audit_subjects_like(
        &self,
        organization_id: &str,
        pattern: &str,
    ) -> DbResult<Vec<String>> {
        sqlx::query_scalar(
            "SELECT DISTINCT subject FROM audit_events WHERE organization_id = $1 \
             AND subject IS NOT NULL AND LOWER(subject) LIKE $2 ESCAPE '\\' ORDER BY subject",
        )
        .bind(organization_id)
        .bind(pattern)
        .fetch_all(&self.pool)
        .await
    }

    /// One organization's events whose erasable subject is exactly `subject`, oldest first,
    /// at most `limit` (a person's data export).
    pub async fn audit_events_naming(
        &self,
        organization_id: &str,
        subject: &str,
        limit: i64,
    ) -> DbResult<Vec<AuditEventRow>> {
        sqlx::query_as(
            "SELECT * FROM audit_events WHERE organization_id = $1 AND subject = $2 \
             ORDER BY seq LIMIT $3",
        )
        .bind(organization_id)
        .bind(subject)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }

    /// One organization's heartbeat counts on UTC days `from_day..=to_day`, by day then
    /// license; only `license_id`'s when given.
    pub async fn heartbeat_counts(
        &self,
        organization_id: &str,
        license_id: Option<&str>,
        from_day: i64,
        to_day: i64,
    ) -> DbResult<Vec<HeartbeatCount>> {
        sqlx::query_as(
            "SELECT license_id, utc_day, beats FROM audit_heartbeats \
             WHERE organization_id = $1 AND utc_day >= $2 AND utc_day <= $3 \
             AND ($4 IS NULL OR license_id = $4) ORDER BY utc_day, license_id LIMIT 10000",
        )
        .bind(organization_id)
        .bind(from_day)
        .bind(to_day)
        .bind(license_id)
        .fetch_all(&self.pool)
        .await
    }

    /// Erases a person from one organization's audit events: every event naming `value` as its
    /// subject loses the value and its salt; the commitment stays in the chain, so the chain
    /// still verifies. Returns how many events were erased.
    pub async fn erase_subject(&self, organization_id: &str, value: &str) -> DbResult<u64> {
        let done = sqlx::query(
            "UPDATE audit_events SET subject = NULL, subject_salt = NULL \
             WHERE organization_id = $1 AND subject = $2",
        )
        .bind(organization_id)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// The hash of event `seq` (or the checkpoint's, when `seq` is the checkpoint's).
    pub async fn audit_event_hash_at(&self, seq: i64) -> DbResult<Option<String>> {
        let hash: Option<String> =
            sqlx::query_scalar("SELECT hash FROM audit_events WHERE seq = $1")
                .bind(seq)
                .fetch_optional(&self.pool)
                .await?;
        if hash.is_some() {
            return Ok(hash);
        }
        Ok(self
            .audit_checkpoint(EVENTS_CHAIN)
            .await?
            .filter(|(at, _)| *at == seq)
            .map(|(_, hash)| hash))
    }

    /// Recomputes the event chain from its checkpoint (or seq 1): seqs without a gap, each
    /// `prev_hash` the hash before, each row's hashes and subject commitment as its columns
    /// call for, and a pruned row only where its organization's pruning reached.
    pub async fn verify_audit_events(&self) -> DbResult<super::ChainCheck> {
        let (start, mut prev_hash) = match self.audit_checkpoint(EVENTS_CHAIN).await? {
            Some((seq, hash)) => (seq + 1, hash),
            None => (1, GENESIS_HASH.to_owned()),
        };
        let below: Option<i64> =
            sqlx::query_scalar("SELECT MIN(seq) FROM audit_events WHERE seq < $1")
                .bind(start)
                .fetch_one(&self.pool)
                .await?;
        if let Some(seq) = below {
            return Ok(super::audit::broken(
                seq,
                &format!("an entry below the chain's start ({start}) is left"),
            ));
        }
        let pruned_before: std::collections::HashMap<String, i64> =
            sqlx::query_as("SELECT organization_id, audit_pruned_before FROM retention_policies")
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .collect();
        let mut expected_seq = start;
        loop {
            let page: Vec<AuditEventRow> =
                sqlx::query_as("SELECT * FROM audit_events WHERE seq >= $1 ORDER BY seq LIMIT $2")
                    .bind(expected_seq)
                    .bind(VERIFY_PAGE)
                    .fetch_all(&self.pool)
                    .await?;
            let done = i64::try_from(page.len()).unwrap_or(i64::MAX) < VERIFY_PAGE;
            for row in page {
                if row.seq != expected_seq {
                    return Ok(super::audit::broken(
                        row.seq,
                        &format!(
                            "seq {} follows {}: an entry is missing",
                            row.seq,
                            expected_seq - 1
                        ),
                    ));
                }
                if row.prev_hash != prev_hash {
                    return Ok(super::audit::broken(
                        row.seq,
                        &format!("prev_hash is not the hash of entry {}", expected_seq - 1),
                    ));
                }
                if let Some(fault) = row.fault(pruned_before.get(&row.organization_id).copied()) {
                    return Ok(super::audit::broken(row.seq, &fault));
                }
                prev_hash = row.hash;
                expected_seq += 1;
            }
            if done {
                break;
            }
        }
        Ok(super::ChainCheck::Intact {
            entries: expected_seq - 1,
            head: prev_hash,
        })
    }

    /// Prunes one organization's events older than `before` (Unix seconds): their content is
    /// blanked (`pruned` 1, `content_hash` kept) and the organization's horizon recorded; then
    /// the chain's oldest rows, once all pruned, are deleted below a new checkpoint. Returns
    /// how many rows were pruned.
    pub async fn prune_audit_events(&self, organization_id: &str, before: i64) -> DbResult<u64> {
        let mut tx = self.begin_chain_write(EVENTS_LOCK_KEY, false).await?;
        let pruned = sqlx::query(
            "UPDATE audit_events SET actor = '', action = '', target_id = '', license_id = NULL, \
             detail = '', subject_commitment = NULL, subject = NULL, subject_salt = NULL, \
             pruned = 1 WHERE organization_id = $1 AND at < $2 AND pruned = 0",
        )
        .bind(organization_id)
        .bind(before)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query(
            "UPDATE retention_policies SET audit_pruned_before = $2 \
             WHERE organization_id = $1 AND audit_pruned_before < $2",
        )
        .bind(organization_id)
        .bind(before)
        .execute(&mut *tx)
        .await?;
        let first_kept: Option<i64> =
            sqlx::query_scalar("SELECT MIN(seq) FROM audit_events WHERE pruned = 0")
                .fetch_one(&mut *tx)
                .await?;
        let last: Option<i64> = match first_kept {
            Some(seq) => Some(seq - 1),
            None => {
                sqlx::query_scalar("SELECT MAX(seq) FROM audit_events")
                    .fetch_one(&mut *tx)
                    .await?
            }
        };
        if let Some(cut) = last {
            super::audit::checkpoint_below(&mut tx, EVENTS_CHAIN, "audit_events", cut, before)
                .await?;
        }
        tx.commit().await?;
        Ok(pruned)
    }
}

/// The seq and hash the next row of `chain` follows: its last row's, else its checkpoint's,
/// else 0 and the genesis hash. Read inside the chain's write lock.
pub(super) async fn chain_head(tx: &mut super::Tx, chain: &str) -> DbResult<(i64, String)> {
    let last: Option<(i64, String)> = if chain == EVENTS_CHAIN {
        sqlx::query_as("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut **tx)
            .await?
    } else {
        sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut **tx)
            .await?
    };
    if let Some(last) = last {
        return Ok(last);
    }
    let checkpoint: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, hash FROM audit_checkpoints WHERE chain = $1")
            .bind(chain)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(checkpoint.unwrap_or((0, GENESIS_HASH.to_owned())))
}

#[cfg(test)]
impl Db {
    /// Runs `sql` straight on the database (the tampering of the audit tests).
    pub(crate) async fn execute_for_tests(&self, sql: &str) -> u64 {
        sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&self.pool)
            .await
            .unwrap()
            .rows_affected()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every content column moves the content hash, every header column the row hash.
    #[test]
    fn every_column_is_in_a_hash() {
        let base = content_hash("a", "b", "c", Some("d"), "e", Some("f"));
        for (i, variant) in [
            content_hash("x", "b", "c", Some("d"), "e", Some("f")),
            content_hash("a", "x", "c", Some("d"), "e", Some("f")),
            content_hash("a", "b", "x", Some("d"), "e", Some("f")),
            content_hash("a", "b", "c", None, "e", Some("f")),
            content_hash("a", "b", "c", Some("d"), "x", Some("f")),
            content_hash("a", "b", "c", Some("d"), "e", None),
            content_hash("ab", "", "c", Some("d"), "e", Some("f")),
        ]
        .iter()
        .enumerate()
        {
            assert_ne!(&base, variant, "content variant {i}");
        }
        let base = event_hash(1, 2, "org", "c", GENESIS_HASH);
        for (i, variant) in [
            event_hash(2, 2, "org", "c", GENESIS_HASH),
            event_hash(1, 3, "org", "c", GENESIS_HASH),
            event_hash(1, 2, "orgc", "", GENESIS_HASH),
            event_hash(1, 2, "org", "d", GENESIS_HASH),
            event_hash(1, 2, "org", "c", &"1".repeat(64)),
        ]
        .iter()
        .enumerate()
        {
            assert_ne!(&base, variant, "row variant {i}");
        }
        assert_ne!(
            subject_commitment("s1", "alice"),
            subject_commitment("s2", "alice")
        );
    }
}
