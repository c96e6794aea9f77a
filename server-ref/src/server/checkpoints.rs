//! Signed checkpoints of the audit chains (issue 24): the server signs where its chains stand
//! with its current signing key, as `audit-checkpoint+jwt` tokens
//! ([`licensing_core::audit_checkpoint`]), stores them (`audit_signed_checkpoints`) and
//! publishes them (`GET /v1/audit/checkpoints`). Two scopes:
//!
//! - `server`: the heads of the admin chain and of the client-event chain, once per run when
//!   either moved. Published to the operator organization only (like `GET /v1/audit/verify`:
//!   the heads concern every tenant).
//! - `organization`: per organization with admin entries since its last checkpoint, the last
//!   one's seq and hash and the digest of those entries, so that one tenant's entries (an audit
//!   package) verify offline without any other tenant's.
//!
//! A run happens every `serve --audit-checkpoint-interval` seconds (every organization) and on
//! `POST /v1/audit/checkpoints` (the caller's organization, plus the server scope for the
//! operator). It holds the admin chain's write lock, so no entry is appended while it reads,
//! and replicas do not sign the same head twice.

use licensing_core::audit_checkpoint::{
    AuditCheckpointClaims, SCOPE_ORGANIZATION, SCOPE_SERVER, ZERO_DIGEST, fold_digest,
    issue_audit_checkpoint,
};

use super::AppState;
use super::db::SignedCheckpointRow;
use super::db::signed_checkpoints::{
    FOLD_PAGE, heads_in, insert_checkpoint_in, last_checkpoint_in, organization_entries_in,
    organization_ids_in,
};

/// Why a checkpoint run failed.
#[derive(Debug)]
pub(crate) enum CheckpointError {
    /// The database failed.
    Db(sqlx::Error),
    /// The core refused to sign the claims (a bug: they are built here).
    Sign(licensing_core::Error),
}

impl std::fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CheckpointError::Db(e) => write!(f, "{e}"),
            CheckpointError::Sign(e) => write!(f, "signing a checkpoint: {e}"),
        }
    }
}

impl From<sqlx::Error> for CheckpointError {
    fn from(e: sqlx::Error) -> Self {
        CheckpointError::Db(e)
    }
}

impl From<licensing_core::Error> for CheckpointError {
    fn from(e: licensing_core::Error) -> Self {
        CheckpointError::Sign(e)
    }
}

impl From<CheckpointError> for super::error::ApiError {
    fn from(e: CheckpointError) -> Self {
        match e {
            CheckpointError::Db(e) => e.into(),
            CheckpointError::Sign(e) => super::error::ApiError::internal(e),
        }
    }
}

/// Which checkpoints a run signs.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scope<'a> {
    /// The server's and every organization's (the interval job).
    Everything,
    /// One organization's, and the server's too when `with_server`.
    Organization {
        /// The organization.
        id: &'a str,
        /// Whether the server scope is signed too (the operator).
        with_server: bool,
    },
}

/// A checkpoint a run signed, or the last one when there was nothing new to sign.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct RunCheckpoint {
    /// Whether this run signed it (false: the chain has not moved since).
    pub created: bool,
    /// The checkpoint.
    #[serde(flatten)]
    pub row: SignedCheckpointRow,
}

/// One checkpoint run at `now` over `scope`.
pub(crate) async fn run_once(
    state: &AppState,
    scope: Scope<'_>,
    now: i64,
) -> Result<Vec<RunCheckpoint>, CheckpointError> {
    let db = state.db();
    let key = state.key();
    let mut tx = db.begin_checkpoint().await?;
    let ((seq, hash), (events_seq, events_hash)) = heads_in(&mut tx).await?;
    let mut out = Vec::new();
    let (organizations, with_server) = match scope {
        Scope::Everything => (organization_ids_in(&mut tx).await?, true),
        Scope::Organization { id, with_server } => (vec![id.to_owned()], with_server),
    };
    if with_server {
        let last = last_checkpoint_in(&mut tx, None).await?;
        let moved = match &last {
            None => true,
            Some(last) => {
                let claims = licensing_core::decode_unverified(&last.token)
                    .map(|(_, claims)| claims)
                    .unwrap_or_default();
                last.seq != seq
                    || last.hash != hash
                    || claims["events_seq"].as_i64() != Some(events_seq)
                    || claims["events_hash"].as_str() != Some(events_hash.as_str())
            }
        };
        match last {
            Some(row) if !moved => out.push(RunCheckpoint {
                created: false,
                row,
            }),
            _ => {
                let claims = AuditCheckpointClaims {
                    iss: state.issuer().to_owned(),
                    iat: now,
                    scope: SCOPE_SERVER.into(),
                    org: None,
                    seq,
                    hash: hash.clone(),
                    events_seq: Some(events_seq),
                    events_hash: Some(events_hash),
                    prev_seq: None,
                    prev_digest: None,
                    digest: None,
                    entries: None,
                };
                let token = issue_audit_checkpoint(&claims, &key)?;
                let row = SignedCheckpointRow {
                    id: 0,
                    organization_id: None,
                    at: now,
                    seq,
                    hash: hash.clone(),
                    digest: None,
                    kid: key.public_key().kid().to_owned(),
                    token,
                };
                let row = insert_checkpoint_in(&mut tx, &row).await?;
                out.push(RunCheckpoint { created: true, row });
            }
        }
    }
    for org in organizations {
        let last = last_checkpoint_in(&mut tx, Some(&org)).await?;
        let (prev_seq, prev_digest) = match &last {
            Some(last) => (
                last.seq,
                last.digest
                    .clone()
                    .unwrap_or_else(|| ZERO_DIGEST.to_owned()),
            ),
            None => (0, ZERO_DIGEST.to_owned()),
        };
        // Fold the organization's entries since, each by the hash its columns call for: a
        // stored hash that differs (an edited entry) is never signed over.
        let (mut digest, mut after, mut entries, mut head) =
            (prev_digest.clone(), prev_seq, 0i64, None);
        let mut tampered = None;
        loop {
            let page = organization_entries_in(&mut tx, &org, after, FOLD_PAGE).await?;
            let done = i64::try_from(page.len()).unwrap_or(i64::MAX) < FOLD_PAGE;
            for entry in page {
                let expected = entry.expected_hash();
                if expected != entry.hash {
                    tampered = Some(entry.seq);
                    break;
                }
                digest = fold_digest(&digest, [(entry.seq, expected.as_str())]);
                entries += 1;
                after = entry.seq;
                head = Some((entry.seq, expected));
            }
            if done || tampered.is_some() {
                break;
            }
        }
        if let Some(seq) = tampered {
            tracing::error!(organization = %org, seq,
                "audit entry does not match its hash: no checkpoint signed over it");
            metrics::counter!("licensing_audit_checkpoint_refused_total").increment(1);
            continue;
        }
        let Some((seq, hash)) = head else {
            if let Some(row) = last {
                out.push(RunCheckpoint {
                    created: false,
                    row,
                });
            }
            continue;
        };
        let claims = AuditCheckpointClaims {
            iss: state.issuer().to_owned(),
            iat: now,
            scope: SCOPE_ORGANIZATION.into(),
            org: Some(org.clone()),
            seq,
            hash: hash.clone(),
            events_seq: None,
            events_hash: None,
            prev_seq: Some(prev_seq),
            prev_digest: Some(prev_digest),
            digest: Some(digest.clone()),
            entries: Some(entries),
        };
        let token = issue_audit_checkpoint(&claims, &key)?;
        let row = SignedCheckpointRow {
            id: 0,
            organization_id: Some(org),
            at: now,
            seq,
            hash,
            digest: Some(digest),
            kid: key.public_key().kid().to_owned(),
            token,
        };
        let row = insert_checkpoint_in(&mut tx, &row).await?;
        out.push(RunCheckpoint { created: true, row });
    }
    tx.commit().await?;
    let created = out.iter().filter(|c| c.created).count();
    metrics::counter!("licensing_audit_checkpoints_signed_total")
        .increment(u64::try_from(created).unwrap_or(0));
    Ok(out)
}

/// Longest `--audit-checkpoint-interval` accepted (a week).
pub(crate) const MAX_CHECKPOINT_INTERVAL: u64 = 7 * 86_400;

/// The interval job: [`run_once`] over every organization every `every`, the first after
/// one period (a failure is logged; the next tick tries again).
pub(crate) fn spawn_checkpointer(
    state: AppState,
    every: std::time::Duration,
    now: fn() -> i64,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            match run_once(&state, Scope::Everything, now()).await {
                Ok(done) => {
                    let created = done.iter().filter(|c| c.created).count();
                    tracing::info!(created, "audit checkpoints signed");
                }
                Err(error) => tracing::error!(%error, "audit checkpoint run failed"),
            }
        }
    })
}
