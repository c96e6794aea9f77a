//! Every SQL statement of the server, in one place. The SQL is portable (SQLite and
//! PostgreSQL: `$N` placeholders, BIGINT seconds, TEXT JSON, no engine-specific functions) so a
//! PostgreSQL pool can be added beside the SQLite one without touching the handlers.

mod keys;

pub(crate) use keys::{
    Rewrite, SigningKeyRow, insert_staged_key, key_state, license_in, promote_staged_key,
    staged_kid, store_rewrite,
};

use std::path::Path;
use std::time::Duration;

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use sqlx::{Executor, FromRow};

/// The `WHERE` clause of a statement that addresses one lease by its primary key `$id`, with
/// the further `conditions` it must meet (its license, its epoch, that it is live...).
///
/// The conditions are wrapped in a `CASE`, which no index can serve, so the lease is found by
/// its primary key whatever the planner believes. Written plainly, `license_id = ...
/// AND released_at IS NULL AND expires_at > ...` also matches the index of a license's live
/// leases, and PostgreSQL took that index on a large table not analyzed yet (one filled fast
/// after the server started): every heartbeat then walked the license's live leases instead
/// of reading one row, 0.5 – 24 ms instead of 0.06 – 0.19 ms, and at 100 000 leases over 100
/// licenses heartbeats fell seconds behind (docs/BENCHMARKS.md). Tested by
/// `tests::floating::lease_statements_find_the_lease_by_its_primary_key`.
macro_rules! by_lease_id {
    ($id:literal, $conditions:literal) => {
        concat!(
            "id = ",
            $id,
            " AND CASE WHEN ",
            $conditions,
            " THEN 1 ELSE 0 END = 1"
        )
    };
}

mod assignments;
mod audit;
mod audit_events;
mod client;
mod compliance;
pub(crate) mod console;
pub(crate) mod console_saml;
pub(crate) mod console_sso;
mod deactivation_keys;
mod deprovision;
pub(crate) mod directory;
pub(crate) mod signed_checkpoints;
// A person's data for GDPR export and erasure (issue 22).
mod directory_links;
pub(crate) use directory_links::DirectoryLink;
mod directory_usage;
pub(crate) mod gdpr;

pub(crate) use directory::bulk::{
    insert_users_in, memberships_in, replace_memberships_in, update_users_in,
};
pub(crate) use directory_usage::{DepartmentUsage, UserUsage};

pub(crate) use assignments::{
    Assignment, Candidate, NewAssignment, SeatSettings, Transfer, assigned_seats_in, assignee_in,
    assignment_in, assignment_of, decide_transfer_in, delete_assignment_in, follow_device_in,
    insert_assignment_in, insert_transfer_in, move_assignment_in, pending_transfer_of, regrant_in,
    set_seat_settings_in, transfer_in,
};
pub(crate) use audit::{AuditEntry, ChainCheck, NewAuditEntry, entry_hash};
pub(crate) use audit_events::{
    AuditEventRow, BeatKey, HeartbeatCount, NewAuditEvent, SaltedSubject,
};
pub(crate) use client::{
    MachineEvent, MachineRef, RemovedBy, add_transfer, delete_machine, insert_machine,
    insert_removal_event, machine_by_fingerprint, machine_by_id, machine_count, machines_of,
    pending_deactivations, set_license_token, take_pending, touch_machine, transfers_used,
    update_fingerprint,
};
pub(crate) use compliance::LicenseUsage;
pub(crate) use oauth::{OAuthClientAuth, OAuthClientRow};
pub(crate) use organizations::{ApiTokenRow, NewApiToken, Organization};
pub(crate) use retention::RetentionRow;
pub(crate) use signed_checkpoints::SignedCheckpointRow;

mod catalog;
mod floating;
#[cfg(test)]
mod held_check;
mod leases;
mod license_cache;
mod license_lists;
mod oauth;
pub(crate) use license_lists::{LicenseCursor, LicensePage, LicenseSearch};
mod organizations;
pub(crate) mod reclamation;
mod retention;
mod seats;
#[cfg(test)]
mod test_support;
mod write_gate;
#[cfg(test)]
pub(crate) use seats::{PANIC_FOR_TESTS, TRANSACTION_ONLY_FOR_TESTS};
#[cfg(test)]
pub(crate) use seats::{
    begun_ahead_for, granted_in_one_statement, granted_together, refused_in_one_statement,
};
#[cfg(test)]
pub(crate) use test_support::PLAIN_HEARTBEAT_CONTROL;

pub(crate) use floating::{DENIAL_RETENTION_SECS, DayCount, DenialRow, DenialScope};
#[cfg(test)]
pub(crate) use leases::QUEUE_POLL_WINDOW;
pub(crate) use leases::{
    Borrow, CheckOut, CheckOutOutcome, LeaseRow, LeaseUpdate, Line, QUEUE_RETRY_AFTER, QueueRow,
    Waiting,
};

/// PostgreSQL: locks a license's row until the commit, serializing the writers of one license
/// across replicas. `FOR UPDATE` rather than a no-op `UPDATE`, which would write a new row
/// version on every check-out.
const LOCK_LICENSE_FOR_WRITE: &str = "SELECT id FROM licenses WHERE id = $1 FOR UPDATE";

/// Result of a query.
pub(crate) type DbResult<T> = Result<T, sqlx::Error>;

/// The database: a connection pool with the schema migrated. One set of queries serves both
/// engines through sqlx's `Any` driver; the few engine differences (transaction start,
/// connection pragmas) branch on [`Engine`].
#[derive(Clone, Debug)]
pub(crate) struct Db {
    pool: AnyPool,
    engine: Engine,
    /// Connections for writes whose loss at a power cut is harmless (a seat heartbeat: losing it
    /// only ends a lease earlier, and the client re-acquires with its request id). They commit
    /// without waiting for the disk: SQLite `synchronous=NORMAL` (the next FULL commit makes
    /// them durable), PostgreSQL `synchronous_commit = off`.
    relaxed: AnyPool,
    /// The group-commit writer of check-outs, heartbeats and check-ins (see `seats`).
    seats: seats::SeatWriter,
    /// SQLite: this process's write transactions take turns here (see `write_gate`).
    gate: write_gate::WriteGate,
    /// Licenses by key hash, for client calls (see `license_cache`).
    licenses: license_cache::LicenseCache,
    /// Directory users by organization and user name, for linking client calls (see
    /// `directory_links`).
    links: directory_links::LinkCache,
    /// The key-encryption key the signing keys are sealed with at rest, once set (see
    /// `key_wrap`; none: stored in plaintext).
    kek: std::sync::Arc<std::sync::OnceLock<super::key_wrap::Kek>>,
}

/// The database engine behind a [`Db`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Engine {
    /// Embedded SQLite (the default: one file under the data directory).
    Sqlite,
    /// PostgreSQL (several server replicas may share it).
    Postgres,
}

pub(crate) use write_gate::Tx;

/// A write transaction on one license that the handler owns (see
/// [`Db::begin_license_change`]): the query functions take [`LicenseWrite::tx`], nothing is
/// stored until [`LicenseWrite::commit`], and dropping it (any error path) rolls back. Either
/// way the license cache is forgotten afterwards.
pub(crate) struct LicenseWrite<'a> {
    // Dropped in this order: the transaction (rolled back unless committed), then the cache.
    tx: Tx,
    _forget: license_cache::ClearOnDrop<'a>,
}

impl LicenseWrite<'_> {
    /// The transaction, for the query functions.
    pub fn tx(&mut self) -> &mut Tx {
        &mut self.tx
    }

    /// Commits the transaction, then forgets the cached licenses.
    pub async fn commit(self) -> DbResult<()> {
        let LicenseWrite { tx, _forget } = self;
        tx.commit().await
    }
}

/// A row of `products` (also the API's view of a product).
#[derive(Debug, Clone, FromRow, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Product {
    pub id: String,
    pub organization_id: String,
    pub name: String,
    pub created_at: i64,
}

/// A row of `policies`; JSON columns as text.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct Policy {
    pub id: String,
    pub organization_id: String,
    pub product_id: String,
    pub name: String,
    pub model: String,
    pub duration: Option<i64>,
    pub grace_period: Option<i64>,
    pub max_machines: Option<i64>,
    pub seats: Option<i64>,
    pub features: String,
    pub version_rule: Option<String>,
    pub match_policy: Option<String>,
    /// 0 or 1.
    pub allow_virtual: i64,
    pub site: Option<String>,
    pub created_at: i64,
    /// Seconds from each token signing to `lic.check_in.until`.
    pub check_in_interval: Option<i64>,
    /// `lic.check_in.grace`, seconds.
    pub check_in_grace: Option<i64>,
    /// Machine transfers allowed per license.
    pub max_transfers: Option<i64>,
    /// 1: machines never activated may validate a license with a machine limit (0 or 1).
    pub allow_unmetered: i64,
    /// `floating` (anyone up to the seat count) or `named` (only assignees), copied to its
    /// licenses.
    pub seat_mode: String,
    /// 1: assigning beyond the seat count is stored and flagged (0 or 1).
    pub allow_over_allocation: i64,
    /// Seconds without use after which an assigned seat is reclaimed (`None`: never).
    pub reclaim_after: Option<i64>,
    /// 1: moving an assignment of a perpetual license needs an admin's approval (0 or 1).
    pub transfer_approval: i64,
}

/// A row of `licenses`.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct LicenseRow {
    pub id: String,
    pub organization_id: String,
    pub key_hash: String,
    pub key_hint: String,
    pub product_id: String,
    pub policy_id: String,
    pub status: String,
    pub claims: String,
    pub token: Option<String>,
    pub expires_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Floating licenses: seconds without a heartbeat after which a lease lapses (300 to 3600);
    /// clients holding a seat only while in use also check it in after this long idle.
    pub lease_timeout: i64,
    /// Floating licenses: longest borrowing a check-out may ask for, in seconds (0: none).
    pub borrow_max_seconds: i64,
    /// Floating licenses: most leases borrowed at once.
    pub borrow_max_leases: i64,
    /// Floating licenses: longest wait in line a check-out may ask for, in seconds (0: none).
    pub queue_max_seconds: i64,
    /// The policy's `allow_unmetered` at creation (0 or 1).
    pub allow_unmetered: i64,
    /// `floating` or `named` (only assignees may use it): the policy's at creation, or set.
    pub seat_mode: String,
    /// 1: assigning beyond the seat count is stored and flagged as over-allocation (0 or 1).
    pub allow_over_allocation: i64,
    /// Seconds without use after which an assigned seat is reclaimed; `None`: the policy's.
    pub reclaim_after: Option<i64>,
    /// The customer's name as issued, lowercase, for the list's search ('' without one;
    /// `None` for a license issued before migration 0020).
    pub customer_key: Option<String>,
    /// `claims` parsed, once per read of the row (its cached copies share it): see
    /// `issue::parsed_template`.
    #[sqlx(skip)]
    pub parsed: crate::server::issue::ParsedTemplate,
}

/// A row of `machines`.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct Machine {
    pub id: String,
    pub license_id: String,
    pub fingerprint: String,
    pub fingerprint_json: String,
    pub created_at: i64,
    pub last_seen_at: i64,
}

/// A license status change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    /// active → suspended.
    Suspend,
    /// suspended → active.
    Reinstate,
    /// active or suspended → revoked (final).
    Revoke,
}

impl Transition {
    /// The stored status after the change.
    pub fn target(self) -> &'static str {
        match self {
            Transition::Suspend => "suspended",
            Transition::Reinstate => "active",
            Transition::Revoke => "revoked",
        }
    }
}

/// What opening a database may do to its schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Schema {
    /// Create it on an empty database, migrate it when older (`serve`).
    Migrate,
    /// It must exist already (a database `serve` made); migrated when older (commands that
    /// write to the server's database: `offline activate`, `admin-token`).
    MigrateExisting,
    /// It must exist at this version's last migration; nothing is written (SQLite: open the
    /// file with `mode=ro`, its journal mode untouched; PostgreSQL: read-only transactions).
    /// For `audit verify`.
    ReadOnly,
}

/// The file a `sqlite:` URL names; `None` for an in-memory database. `Err` for a URL sqlx
/// cannot read.
pub(crate) fn sqlite_url_path(url: &str) -> Result<Option<std::path::PathBuf>, String> {
    use std::str::FromStr as _;
    if url.contains(":memory:") || url.contains("mode=memory") {
        return Ok(None);
    }
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
        .map_err(|e| format!("--database-url: {e}"))?;
    Ok(Some(options.get_filename().to_path_buf()))
}

/// The `sqlite:` URL of the file at `path` with `mode` (`rwc`, `rw` or `ro`).
pub(crate) fn sqlite_file_url(path: &Path, mode: &str) -> Result<String, String> {
    let absolute =
        std::path::absolute(path).map_err(|e| format!("database path {}: {e}", path.display()))?;
    let file_url = url::Url::from_file_path(&absolute)
        .map_err(|()| format!("database path {} is not usable", absolute.display()))?;
    // `file:///a%20b/x.db` → `sqlite:///a%20b/x.db` (sqlx percent-decodes the path).
    Ok(format!("sqlite://{}?mode={mode}", file_url.path()))
}

/// The last migration this binary knows.
fn latest_migration() -> i64 {
    sqlx::migrate!("./migrations")
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap_or(0)
}

/// The last migration applied to the database behind `pool`; `None` when it has no schema.
async fn applied_migration(pool: &AnyPool) -> Option<i64> {
    sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(version) FROM _sqlx_migrations")
        .fetch_one(pool)
        .await
        .ok()
        .flatten()
}

impl Db {
    /// Opens (creating if missing) the SQLite database file at `path` and migrates it.
    pub async fn open_sqlite_file(path: &Path) -> Result<Db, String> {
        Self::open(&sqlite_file_url(path, "rwc")?).await
    }

    /// Opens the database a URL names and migrates it: `sqlite:PATH[?mode=rwc...]` or
    /// `postgres://user:password@host:port/database`.
    pub async fn open(url: &str) -> Result<Db, String> {
        Self::open_as(url, Schema::Migrate).await
    }

    /// Opens the database a URL names, doing to its schema what `schema` allows.
    pub async fn open_as(url: &str, schema: Schema) -> Result<Db, String> {
        let read_only = schema == Schema::ReadOnly;
        let engine = if url.starts_with("sqlite:") {
            Engine::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Engine::Postgres
        } else {
            return Err(
                "--database-url must start with sqlite: or postgres:// (postgresql://)".into(),
            );
        };
        sqlx::any::install_default_drivers();
        let options = AnyPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            // A SQLite connection is in-process and cannot drop; testing it is a round trip to
            // its worker thread on every acquire (measured: +8 % check-outs/s without it).
            .test_before_acquire(engine == Engine::Postgres);
        let options = match engine {
            Engine::Sqlite => options.after_connect(|conn, _| {
                Box::pin(async move {
                    // FULL: an acknowledged write survives power loss (WAL + NORMAL may lose
                    // the last transactions). The WAL mode itself is set once, below. (None of
                    // these writes to the file: a read-only connection takes them too.)
                    conn.execute(
                        "PRAGMA busy_timeout = 5000; PRAGMA synchronous = FULL; \
                         PRAGMA foreign_keys = ON;",
                    )
                    .await?;
                    Ok(())
                })
            }),
            Engine::Postgres if read_only => options.after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("SET default_transaction_read_only = on")
                        .await?;
                    Ok(())
                })
            }),
            Engine::Postgres => options,
        };
        let pool = options
            .connect(url)
            .await
            .map_err(|e| format!("opening the database: {e}"))?;
        let relaxed = AnyPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .test_before_acquire(engine == Engine::Postgres)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    conn.execute(match engine {
                        Engine::Sqlite => {
                            "PRAGMA busy_timeout = 5000; PRAGMA synchronous = NORMAL; \
                             PRAGMA foreign_keys = ON;"
                        }
                        Engine::Postgres if read_only => {
                            "SET synchronous_commit TO OFF; \
                             SET default_transaction_read_only = on"
                        }
                        Engine::Postgres => "SET synchronous_commit TO OFF",
                    })
                    .await?;
                    Ok(())
                })
            })
            .connect(url)
            .await
            .map_err(|e| format!("opening the database: {e}"))?;
        if schema != Schema::Migrate {
            let expected = latest_migration();
            match applied_migration(&pool).await {
                None => {
                    return Err("the database holds no licensing schema (not a database \
                                `serve` created; check --data-dir / --database-url)"
                        .into());
                }
                Some(found) if found > expected => {
                    return Err(format!(
                        "the database is at migration {found}, newer than this binary \
                         ({expected}); use the newer licensing-server"
                    ));
                }
                Some(found) if read_only && found < expected => {
                    return Err(format!(
                        "the database is at migration {found}, this binary expects \
                         {expected}; start the new `serve` once to migrate it (this command \
                         never writes)"
                    ));
                }
                Some(_) => {}
            }
        }
        if engine == Engine::Sqlite && !read_only {
            // WAL (persistent in the file): readers never block the writer.
            pool.execute("PRAGMA journal_mode = WAL")
                .await
                .map_err(|e| format!("setting WAL mode: {e}"))?;
        }
        if !read_only {
            sqlx::migrate!("./migrations")
                .run(&pool)
                .await
                .map_err(|e| format!("migrating the database: {e}"))?;
        }
        let gate = write_gate::WriteGate::for_engine(engine);
        Ok(Db {
            seats: seats::SeatWriter::start(engine, pool.clone(), relaxed.clone(), gate.clone()),
            gate,
            licenses: Default::default(),
            links: Default::default(),
            kek: Default::default(),
            pool,
            engine,
            relaxed,
        })
    }

    /// How long the seat writer may wait for a batch of seat writes to fill (`serve
    /// --seat-batch-wait-us`; see `seats::writer::gather`).
    pub fn set_seat_batch_wait(&self, wait: Duration) {
        self.seats.set_batch_wait(wait);
    }

    /// Seals the signing keys at rest with `kek` from now on (set once, at startup).
    pub fn set_key_encryption(&self, kek: super::key_wrap::Kek) {
        let _ = self.kek.set(kek);
    }

    /// The key-encryption key of the signing keys, if one is set.
    pub fn key_encryption(&self) -> Option<&super::key_wrap::Kek> {
        self.kek.get()
    }

    /// The engine.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> DbResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection (at shutdown).
    pub async fn close(&self) {
        self.relaxed.close().await;
        self.pool.close().await;
    }

    // ---- products --------------------------------------------------------------------------

    /// Inserts a product; `false` when the id is taken.
    pub async fn insert_product(&self, product: &Product) -> DbResult<bool> {
        let done = sqlx::query(
            "INSERT INTO products (id, organization_id, name, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&product.id)
        .bind(&product.organization_id)
        .bind(&product.name)
        .bind(product.created_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The organization's products, by id.
    pub async fn list_products(&self, organization_id: &str) -> DbResult<Vec<Product>> {
        sqlx::query_as("SELECT * FROM products WHERE organization_id = $1 ORDER BY id")
            .bind(organization_id)
            .fetch_all(&self.pool)
            .await
    }

    /// One product of the organization.
    pub async fn get_product(&self, organization_id: &str, id: &str) -> DbResult<Option<Product>> {
        sqlx::query_as("SELECT * FROM products WHERE id = $1 AND organization_id = $2")
            .bind(id)
            .bind(organization_id)
            .fetch_optional(&self.pool)
            .await
    }

    // ---- policies --------------------------------------------------------------------------

    /// Inserts a policy (its product exists: checked by the caller and the foreign key).
    pub async fn insert_policy(&self, p: &Policy) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO policies (id, organization_id, product_id, name, model, duration, \
             grace_period, max_machines, seats, features, version_rule, match_policy, \
             allow_virtual, site, created_at, check_in_interval, check_in_grace, max_transfers, \
             allow_unmetered, seat_mode, allow_over_allocation, reclaim_after, transfer_approval) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
             $18, $19, $20, $21, $22, $23)",
        )
        .bind(&p.id)
        .bind(&p.organization_id)
        .bind(&p.product_id)
        .bind(&p.name)
        .bind(&p.model)
        .bind(p.duration)
        .bind(p.grace_period)
        .bind(p.max_machines)
        .bind(p.seats)
        .bind(&p.features)
        .bind(&p.version_rule)
        .bind(&p.match_policy)
        .bind(p.allow_virtual)
        .bind(&p.site)
        .bind(p.created_at)
        .bind(p.check_in_interval)
        .bind(p.check_in_grace)
        .bind(p.max_transfers)
        .bind(p.allow_unmetered)
        .bind(&p.seat_mode)
        .bind(p.allow_over_allocation)
        .bind(p.reclaim_after)
        .bind(p.transfer_approval)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// One policy of the organization.
    pub async fn get_policy(&self, organization_id: &str, id: &str) -> DbResult<Option<Policy>> {
        sqlx::query_as("SELECT * FROM policies WHERE id = $1 AND organization_id = $2")
            .bind(id)
            .bind(organization_id)
            .fetch_optional(&self.pool)
            .await
    }

    /// The organization's policies, oldest first.
    pub async fn list_policies(&self, organization_id: &str) -> DbResult<Vec<Policy>> {
        sqlx::query_as("SELECT * FROM policies WHERE organization_id = $1 ORDER BY created_at, id")
            .bind(organization_id)
            .fetch_all(&self.pool)
            .await
    }

    // ---- licenses --------------------------------------------------------------------------

    /// Inserts a license; `false` if its key hash collides (practically never: 125 random bits).
    pub async fn insert_license(&self, l: &LicenseRow) -> DbResult<bool> {
        let done = sqlx::query(
            "INSERT INTO licenses (id, organization_id, key_hash, key_hint, product_id, policy_id, \
             status, claims, token, expires_at, created_at, updated_at, lease_timeout, \
             allow_unmetered, seat_mode, allow_over_allocation, reclaim_after, customer_key) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
             $18) ON CONFLICT (key_hash) DO NOTHING",
        )
        .bind(&l.id)
        .bind(&l.organization_id)
        .bind(&l.key_hash)
        .bind(&l.key_hint)
        .bind(&l.product_id)
        .bind(&l.policy_id)
        .bind(&l.status)
        .bind(&l.claims)
        .bind(&l.token)
        .bind(l.expires_at)
        .bind(l.created_at)
        .bind(l.updated_at)
        .bind(l.lease_timeout)
        .bind(l.allow_unmetered)
        .bind(&l.seat_mode)
        .bind(l.allow_over_allocation)
        .bind(l.reclaim_after)
        .bind(&l.customer_key)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// One license by id, whatever its organization: the client API (authenticated by the
    /// license key) and internal paths. The admin API goes through `routes::get_license_row`,
    /// which scopes it to the caller's organization.
    pub async fn get_license(&self, id: &str) -> DbResult<Option<LicenseRow>> {
        sqlx::query_as("SELECT * FROM licenses WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    /// One license by the hash of its key, as of at most `license_cache::TTL` ago (this
    /// process's own writes are always seen).
    pub async fn license_by_key_hash(
        &self,
        key_hash: &str,
    ) -> DbResult<Option<std::sync::Arc<LicenseRow>>> {
        if let Some(row) = self.licenses.get(key_hash) {
            return Ok(Some(row));
        }
        let start = self.licenses.before_read();
        let row: Option<LicenseRow> = sqlx::query_as("SELECT * FROM licenses WHERE key_hash = $1")
            .bind(key_hash)
            .fetch_optional(&self.pool)
            .await?;
        let row = row.map(std::sync::Arc::new);
        if let Some(row) = &row {
            self.licenses.put(key_hash, &start, row);
        }
        Ok(row)
    }

    /// Applies `transition` if the license is in a state it starts from; `false` otherwise.
    pub async fn transition(&self, id: &str, transition: Transition, now: i64) -> DbResult<bool> {
        let _forget = self.licenses.clear_on_drop();
        let sql = match transition {
            Transition::Suspend => {
                "UPDATE licenses SET status = $1, updated_at = $2 WHERE id = $3 AND status = 'active'"
            }
            Transition::Reinstate => {
                "UPDATE licenses SET status = $1, updated_at = $2 \
                 WHERE id = $3 AND status = 'suspended'"
            }
            Transition::Revoke => {
                "UPDATE licenses SET status = $1, updated_at = $2 \
                 WHERE id = $3 AND status <> 'revoked'"
            }
        };
        let done = sqlx::query(sql)
            .bind(transition.target())
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    // ---- machines --------------------------------------------------------------------------

    /// The machine with this fingerprint on the license, as of at most `license_cache::TTL`
    /// ago (this process's own writes are always seen).
    pub async fn get_machine(
        &self,
        license_id: &str,
        fingerprint: &str,
    ) -> DbResult<Option<Machine>> {
        if let Some(machine) = self.licenses.get_machine(license_id, fingerprint) {
            return Ok(machine);
        }
        let start = self.licenses.before_read();
        let machine: Option<Machine> =
            sqlx::query_as("SELECT * FROM machines WHERE license_id = $1 AND fingerprint = $2")
                .bind(license_id)
                .bind(fingerprint)
                .fetch_optional(&self.pool)
                .await?;
        self.licenses
            .put_machine(license_id, fingerprint, &start, &machine);
        Ok(machine)
    }

    /// The machines of a license, oldest first.
    pub async fn list_machines(&self, license_id: &str) -> DbResult<Vec<Machine>> {
        sqlx::query_as("SELECT * FROM machines WHERE license_id = $1 ORDER BY created_at, id")
            .bind(license_id)
            .fetch_all(&self.pool)
            .await
    }

    /// Records that a machine was seen at `now`: at most one write per machine per minute (a
    /// validation is a read, and a durable write per request would cost more than everything
    /// else it does), and no statement at all when `machine` was seen in the last minute.
    pub async fn touch_machine(&self, machine: &Machine, now: i64) -> DbResult<()> {
        let a_minute_ago = now.saturating_sub(60);
        if machine.last_seen_at >= a_minute_ago {
            return Ok(());
        }
        sqlx::query("UPDATE machines SET last_seen_at = $1 WHERE id = $2 AND last_seen_at < $3")
            .bind(now)
            .bind(&machine.id)
            .bind(a_minute_ago)
            .execute(&self.pool)
            .await?;
        self.licenses.machine_seen(machine, now);
        Ok(())
    }

    /// Starts a write transaction that serializes with every other writer of this license:
    /// SQLite takes the database write lock up front (a deferred transaction could fail to
    /// upgrade); PostgreSQL locks the license row (`SELECT ... FOR UPDATE`), so concurrent
    /// writers of one license (activations, seat check-outs) queue while other licenses
    /// proceed.
    pub async fn begin_license_write(&self, license_id: &str) -> DbResult<Tx> {
        let tx = match self.engine {
            // The one write lock of the database, until the commit.
            Engine::Sqlite => self.gate.begin_immediate(&self.pool).await?,
            Engine::Postgres => {
                let mut tx = Tx::from(self.pool.begin().await?);
                sqlx::query(LOCK_LICENSE_FOR_WRITE)
                    .bind(license_id)
                    .execute(&mut *tx)
                    .await?;
                tx
            }
        };
        Ok(tx)
    }

    /// A write transaction not tied to one license: SQLite `BEGIN IMMEDIATE` in this
    /// process's turn to write (`write_gate`), PostgreSQL a plain `BEGIN`.
    pub async fn begin_write(&self) -> DbResult<Tx> {
        match self.engine {
            Engine::Sqlite => self.gate.begin_immediate(&self.pool).await,
            Engine::Postgres => Ok(Tx::from(self.pool.begin().await?)),
        }
    }

    /// A transaction that only reads: it takes no turn to write.
    pub async fn begin_read(&self) -> DbResult<Tx> {
        Ok(Tx::from(self.pool.begin().await?))
    }

    /// [`Db::begin_license_write`] for a handler that writes a license or its machines: the
    /// answer also forgets the cached licenses when it is dropped, after its transaction
    /// (committed or rolled back), so no client call answers from a row the write changed.
    pub async fn begin_license_change(&self, license_id: &str) -> DbResult<LicenseWrite<'_>> {
        let forget = self.licenses.clear_on_drop();
        let tx = self.begin_license_write(license_id).await?;
        Ok(LicenseWrite {
            tx,
            _forget: forget,
        })
    }
}
