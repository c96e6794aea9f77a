//! The SQL of a person's data (GDPR Articles 15 and 17, `server::gdpr`): what the server keeps
//! about one directory user, read for an export and pseudonymised for an erasure.
//!
//! A row is the person's when it is linked to their directory user (`user_id`), or linked to
//! no user and names one of the spellings of their user name the caller found with
//! [`unlinked_names_in`] (user names compare without regard to case, which the caller decides
//! in Rust, as the directory does: SQLite's `LOWER` folds ASCII only). Rows are read on
//! licenses of the person's organization only.

use sqlx::FromRow;

use super::{Db, DbResult, Engine, Tx};

/// Unlinked user names read per statement by [`unlinked_names_in`].
const NAMES_PAGE: i64 = 1000;

impl Db {
    /// A transaction whose reads all see one snapshot of the database (an export is
    /// consistent): SQLite's deferred transaction reads one snapshot from its first read on;
    /// PostgreSQL's `REPEATABLE READ`.
    pub async fn begin_snapshot(&self) -> DbResult<Tx> {
        match self.engine {
            Engine::Sqlite => self.begin_read().await,
            Engine::Postgres => Ok(Tx::from(
                self.pool
                    .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ")
                    .await?,
            )),
        }
    }
}

/// A seat assignment to the person.
#[derive(Debug, Clone, PartialEq, Eq, FromRow, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct SubjectAssignment {
    pub id: String,
    pub license_id: String,
    /// `active` or `reclaimed`.
    pub state: String,
    /// Seats it takes (1 for a user).
    pub seats: i64,
    /// Unix seconds.
    pub reclaimed_at: Option<i64>,
    pub reclaim_reason: Option<String>,
    /// The last validation, heartbeat or check-out by the person (Unix seconds).
    pub last_used_at: Option<i64>,
    /// The API token (or `cli`, `scim`) that assigned it.
    pub assigned_by: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A machine activated by the person.
#[derive(Debug, Clone, PartialEq, Eq, FromRow, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct SubjectMachine {
    pub id: String,
    pub license_id: String,
    /// The user name the activation named.
    pub user_name: Option<String>,
    /// The combined fingerprint id.
    pub fingerprint: String,
    /// The fingerprint as the client sent it: salted hashes of the machine's components.
    pub fingerprint_json: String,
    /// When it was activated (Unix seconds).
    pub created_at: i64,
    /// When it last validated (Unix seconds, at most one write a minute).
    pub last_seen_at: i64,
}

/// A floating seat lease the person held (or holds).
#[derive(Debug, Clone, PartialEq, Eq, FromRow, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct SubjectLease {
    pub id: String,
    pub license_id: String,
    /// The client installation's id.
    pub client_id: String,
    pub user_name: String,
    /// Check-out (Unix seconds).
    pub created_at: i64,
    pub heartbeat_at: i64,
    pub expires_at: i64,
    pub released_at: Option<i64>,
    /// `checked_in`, `forced` or `expired`.
    pub release_reason: Option<String>,
    /// 1: borrowed for offline use.
    pub borrowed: i64,
}

/// A check-out refused to the person (no seat free).
#[derive(Debug, Clone, PartialEq, Eq, FromRow, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct SubjectDenial {
    pub id: String,
    pub license_id: String,
    pub client_id: String,
    pub user_name: String,
    /// Unix seconds.
    pub at: i64,
}

/// A place the person holds in a license's seat queue.
#[derive(Debug, Clone, PartialEq, Eq, FromRow, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct SubjectQueuePlace {
    pub id: String,
    pub license_id: String,
    pub client_id: String,
    pub user_name: String,
    pub queued_at: i64,
    pub wait_until: i64,
}

/// The person's rows of one table: linked to `user_id`, or unlinked under one of `names`; at
/// most `cap + 1` (the caller tells a cut list by its length), by time then id.
///
/// `$1` the organization, `$2` the user id or the spelling; `linked` and `unlinked` are the
/// two statements (each ends in `LIMIT $3`).
async fn rows_of<R>(
    tx: &mut Tx,
    linked: Option<&'static str>,
    unlinked: &'static str,
    organization_id: &str,
    user_id: &str,
    names: &[String],
    cap: i64,
) -> DbResult<Vec<R>>
where
    R: for<'r> FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
{
    let mut rows = Vec::new();
    if let Some(linked) = linked {
        rows = sqlx::query_as(linked)
            .bind(organization_id)
            .bind(user_id)
            .bind(cap + 1)
            .fetch_all(&mut **tx)
            .await?;
    }
    for name in names {
        if rows.len() as i64 > cap {
            break;
        }
        let more: Vec<R> = sqlx::query_as(unlinked)
            .bind(organization_id)
            .bind(name)
            .bind(cap + 1)
            .fetch_all(&mut **tx)
            .await?;
        rows.extend(more);
    }
    Ok(rows)
}

/// Every distinct user name that rows linked to no directory user carry on licenses of
/// `organization_id` (leases, denials, machines, seat queue places) whose `LOWER(user_name)`
/// is `LIKE` `pattern` (escape `\`), kept when `keep` says so. `pattern` narrows the scan to
/// candidates (it must match every name `keep` keeps); `keep` decides. Read in pages of
/// [`NAMES_PAGE`], so memory holds the kept names only.
pub(crate) async fn unlinked_names_in(
    tx: &mut Tx,
    organization_id: &str,
    pattern: &str,
    keep: impl Fn(&str) -> bool,
) -> DbResult<Vec<String>> {
    let mut kept = Vec::new();
    let mut after = String::new();
    loop {
        let page: Vec<(String,)> = sqlx::query_as(
            "SELECT user_name FROM ( \
             SELECT l.user_name FROM leases l JOIN licenses c ON c.id = l.license_id \
             WHERE c.organization_id = $1 AND l.user_id IS NULL \
             AND LOWER(l.user_name) LIKE $4 ESCAPE '\\' \
             UNION SELECT d.user_name FROM denials d JOIN licenses c ON c.id = d.license_id \
             WHERE c.organization_id = $1 AND d.user_id IS NULL \
             AND LOWER(d.user_name) LIKE $4 ESCAPE '\\' \
             UNION SELECT m.user_name FROM machines m JOIN licenses c ON c.id = m.license_id \
             WHERE c.organization_id = $1 AND m.user_id IS NULL \
             AND LOWER(m.user_name) LIKE $4 ESCAPE '\\' \
             UNION SELECT q.user_name FROM seat_queue q JOIN licenses c ON c.id = q.license_id \
             WHERE c.organization_id = $1 AND LOWER(q.user_name) LIKE $4 ESCAPE '\\' \
             ) names WHERE user_name > $2 ORDER BY user_name LIMIT $3",
        )
        .bind(organization_id)
        .bind(&after)
        .bind(NAMES_PAGE)
        .bind(pattern)
        .fetch_all(&mut **tx)
        .await?;
        let full = page.len() as i64 == NAMES_PAGE;
        let Some((last,)) = page.last() else {
            break;
        };
        after = last.clone();
        kept.extend(page.into_iter().map(|(n,)| n).filter(|n| keep(n)));
        if !full {
            break;
        }
    }
    Ok(kept)
}

/// The person's seat assignments, oldest first (at most `cap + 1`).
pub(crate) async fn assignments_in(
    tx: &mut Tx,
    organization_id: &str,
    user_id: &str,
    cap: i64,
) -> DbResult<Vec<SubjectAssignment>> {
    sqlx::query_as(
        "SELECT id, license_id, state, seats, reclaimed_at, reclaim_reason, last_used_at, \
         assigned_by, created_at, updated_at FROM seat_assignments \
         WHERE organization_id = $1 AND assignee_kind = 'user' AND assignee_id = $2 \
         ORDER BY created_at, id LIMIT $3",
    )
    .bind(organization_id)
    .bind(user_id)
    .bind(cap + 1)
    .fetch_all(&mut **tx)
    .await
}

/// A transfer of a seat assignment from or to the person.
#[derive(Debug, Clone, PartialEq, Eq, FromRow, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct SubjectTransfer {
    pub id: String,
    pub license_id: String,
    pub assignment_id: String,
    pub from_kind: String,
    pub from_id: String,
    pub to_kind: String,
    pub to_id: String,
    /// `pending`, `approved`, `rejected` or `cancelled`.
    pub state: String,
    pub requested_at: i64,
    pub decided_at: Option<i64>,
    /// Why it was rejected or cancelled (the decider's free text).
    pub reason: Option<String>,
}

/// The transfers of seat assignments from or to the person, oldest first (at most `cap + 1`).
pub(crate) async fn transfers_in(
    tx: &mut Tx,
    organization_id: &str,
    user_id: &str,
    cap: i64,
) -> DbResult<Vec<SubjectTransfer>> {
    sqlx::query_as(
        "SELECT id, license_id, assignment_id, from_kind, from_id, to_kind, to_id, state, \
         requested_at, decided_at, reason FROM assignment_transfers \
         WHERE organization_id = $1 AND ((from_kind = 'user' AND from_id = $2) \
         OR (to_kind = 'user' AND to_id = $2)) ORDER BY requested_at, id LIMIT $3",
    )
    .bind(organization_id)
    .bind(user_id)
    .bind(cap + 1)
    .fetch_all(&mut **tx)
    .await
}

/// The person's machines (at most about `cap + 1`).
pub(crate) async fn machines_in(
    tx: &mut Tx,
    organization_id: &str,
    user_id: &str,
    names: &[String],
    cap: i64,
) -> DbResult<Vec<SubjectMachine>> {
    rows_of(
        tx,
        Some(
            "SELECT m.id, m.license_id, m.user_name, m.fingerprint, m.fingerprint_json, \
             m.created_at, m.last_seen_at FROM machines m JOIN licenses c ON c.id = m.license_id \
             WHERE c.organization_id = $1 AND m.user_id = $2 \
             ORDER BY m.created_at, m.id LIMIT $3",
        ),
        "SELECT m.id, m.license_id, m.user_name, m.fingerprint, m.fingerprint_json, \
         m.created_at, m.last_seen_at FROM machines m JOIN licenses c ON c.id = m.license_id \
         WHERE c.organization_id = $1 AND m.user_id IS NULL AND m.user_name = $2 \
         ORDER BY m.created_at, m.id LIMIT $3",
        organization_id,
        user_id,
        names,
        cap,
    )
    .await
}

/// The person's leases, live and past (at most about `cap + 1`).
pub(crate) async fn leases_in(
    tx: &mut Tx,
    organization_id: &str,
    user_id: &str,
    names: &[String],
    cap: i64,
) -> DbResult<Vec<SubjectLease>> {
    rows_of(
        tx,
        Some(
            "SELECT l.id, l.license_id, l.client_id, l.user_name, l.created_at, l.heartbeat_at, \
             l.expires_at, l.released_at, l.release_reason, l.borrowed FROM leases l \
             JOIN licenses c ON c.id = l.license_id \
             WHERE c.organization_id = $1 AND l.user_id = $2 \
             ORDER BY l.created_at, l.id LIMIT $3",
        ),
        "SELECT l.id, l.license_id, l.client_id, l.user_name, l.created_at, l.heartbeat_at, \
         l.expires_at, l.released_at, l.release_reason, l.borrowed FROM leases l \
         JOIN licenses c ON c.id = l.license_id \
         WHERE c.organization_id = $1 AND l.user_id IS NULL AND l.user_name = $2 \
         ORDER BY l.created_at, l.id LIMIT $3",
        organization_id,
        user_id,
        names,
        cap,
    )
    .await
}

/// The person's denials (at most about `cap + 1`).
pub(crate) async fn denials_in(
    tx: &mut Tx,
    organization_id: &str,
    user_id: &str,
    names: &[String],
    cap: i64,
) -> DbResult<Vec<SubjectDenial>> {
    rows_of(
        tx,
        Some(
            "SELECT d.id, d.license_id, d.client_id, d.user_name, d.at FROM denials d \
             JOIN licenses c ON c.id = d.license_id \
             WHERE c.organization_id = $1 AND d.user_id = $2 ORDER BY d.at, d.id LIMIT $3",
        ),
        "SELECT d.id, d.license_id, d.client_id, d.user_name, d.at FROM denials d \
         JOIN licenses c ON c.id = d.license_id \
         WHERE c.organization_id = $1 AND d.user_id IS NULL AND d.user_name = $2 \
         ORDER BY d.at, d.id LIMIT $3",
        organization_id,
        user_id,
        names,
        cap,
    )
    .await
}

/// The person's places in seat queues (which carry no user id: by name only).
pub(crate) async fn queue_places_in(
    tx: &mut Tx,
    organization_id: &str,
    names: &[String],
    cap: i64,
) -> DbResult<Vec<SubjectQueuePlace>> {
    rows_of(
        tx,
        None,
        "SELECT q.id, q.license_id, q.client_id, q.user_name, q.queued_at, q.wait_until \
         FROM seat_queue q JOIN licenses c ON c.id = q.license_id \
         WHERE c.organization_id = $1 AND q.user_name = $2 ORDER BY q.queued_at, q.id LIMIT $3",
        organization_id,
        "",
        names,
        cap,
    )
    .await
}

/// How many rows an erasure changed, per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Scrubbed {
    /// Department memberships removed.
    pub memberships: u64,
    /// Leases whose user name was replaced by the pseudonym.
    pub leases: u64,
    /// Denials whose user name was replaced.
    pub denials: u64,
    /// Machines whose user name was replaced.
    pub machines: u64,
    /// Seat queue places removed.
    pub queue_places: u64,
}

/// Replaces the person's user name by `pseudonym` in their leases, denials and machines
/// (linking the unlinked ones to `user_id`, so counts per user stay right), removes their
/// department memberships and seat queue places. `names`: the spellings of their user name on
/// unlinked rows ([`unlinked_names_in`]). The directory row is the caller's
/// (`directory::update_user`).
pub(crate) async fn scrub_in(
    tx: &mut Tx,
    organization_id: &str,
    user_id: &str,
    names: &[String],
    pseudonym: &str,
) -> DbResult<Scrubbed> {
    let mut done = Scrubbed {
        memberships: sqlx::query(
            "DELETE FROM department_members WHERE organization_id = $1 AND user_id = $2",
        )
        .bind(organization_id)
        .bind(user_id)
        .execute(&mut **tx)
        .await?
        .rows_affected(),
        ..Scrubbed::default()
    };
    // `$1` the organization, `$2` the user id, `$3` the pseudonym, `$4` a spelling.
    let linked = [
        "UPDATE leases SET user_name = $3 WHERE user_id = $2 AND user_name <> $3 \
         AND license_id IN (SELECT id FROM licenses WHERE organization_id = $1)",
        "UPDATE denials SET user_name = $3 WHERE user_id = $2 AND user_name <> $3 \
         AND license_id IN (SELECT id FROM licenses WHERE organization_id = $1)",
        "UPDATE machines SET user_name = $3 WHERE user_id = $2 AND user_name <> $3 \
         AND license_id IN (SELECT id FROM licenses WHERE organization_id = $1)",
    ];
    let unlinked = [
        "UPDATE leases SET user_name = $3, user_id = $2 WHERE user_id IS NULL \
         AND user_name = $4 AND license_id IN \
         (SELECT id FROM licenses WHERE organization_id = $1)",
        "UPDATE denials SET user_name = $3, user_id = $2 WHERE user_id IS NULL \
         AND user_name = $4 AND license_id IN \
         (SELECT id FROM licenses WHERE organization_id = $1)",
        "UPDATE machines SET user_name = $3, user_id = $2 WHERE user_id IS NULL \
         AND user_name = $4 AND license_id IN \
         (SELECT id FROM licenses WHERE organization_id = $1)",
    ];
    let mut counts = [0u64; 3];
    for (count, sql) in counts.iter_mut().zip(linked) {
        *count += sqlx::query(sql)
            .bind(organization_id)
            .bind(user_id)
            .bind(pseudonym)
            .execute(&mut **tx)
            .await?
            .rows_affected();
    }
    for name in names {
        for (count, sql) in counts.iter_mut().zip(unlinked) {
            *count += sqlx::query(sql)
                .bind(organization_id)
                .bind(user_id)
                .bind(pseudonym)
                .bind(name)
                .execute(&mut **tx)
                .await?
                .rows_affected();
        }
        done.queue_places += sqlx::query(
            "DELETE FROM seat_queue WHERE user_name = $2 AND license_id IN \
             (SELECT id FROM licenses WHERE organization_id = $1)",
        )
        .bind(organization_id)
        .bind(name)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    }
    [done.leases, done.denials, done.machines] = counts;
    Ok(done)
}

#[cfg(test)]
impl Db {
    /// Runs `sql` with `args` bound as texts (test set-up: rows no API writes yet).
    pub(crate) async fn gdpr_exec_for_tests(&self, sql: &str, args: &[&str]) {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
        for arg in args {
            query = query.bind(arg.to_string());
        }
        query.execute(&self.pool).await.unwrap();
    }

    /// Every non-NULL value of every column of every table of the schema (migrations' own
    /// table aside), as text: `(table, column, value)`. What an erasure must leave no trace of
    /// is searched for here.
    pub(crate) async fn text_dump_for_tests(&self) -> Vec<(String, String, String)> {
        let columns: Vec<(String, String)> = match self.engine {
            Engine::Sqlite => sqlx::query_as(
                "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p \
                 WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' \
                 AND m.name <> '_sqlx_migrations'",
            ),
            Engine::Postgres => sqlx::query_as(
                "SELECT CAST(table_name AS TEXT), CAST(column_name AS TEXT) \
                 FROM information_schema.columns WHERE table_schema = current_schema() \
                 AND table_name <> '_sqlx_migrations'",
            ),
        }
        .fetch_all(&self.pool)
        .await
        .unwrap();
        assert!(columns.len() > 50, "{columns:?}");
        let mut dump = Vec::new();
        for (table, column) in columns {
            let sql = format!("SELECT CAST(\"{column}\" AS TEXT) FROM \"{table}\"");
            let values: Vec<(Option<String>,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .fetch_all(&self.pool)
                .await
                .unwrap();
            for (value,) in values {
                if let Some(value) = value {
                    dump.push((table.clone(), column.clone(), value));
                }
            }
        }
        dump
    }
}
