//! Every SQL statement of the server, in one place. The SQL is portable (SQLite and
//! PostgreSQL: `$N` placeholders, BIGINT seconds, TEXT JSON, no engine-specific functions) so a
//! PostgreSQL pool can be added beside the SQLite one without touching the handlers.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{FromRow, SqlitePool};

mod floating;

pub(crate) use floating::{
    CheckOut, CheckOutOutcome, DENIAL_RETENTION_SECS, DayCount, DenialRow, LeaseRow, LeaseUpdate,
};

/// Result of a query.
pub(crate) type DbResult<T> = Result<T, sqlx::Error>;

/// The database: a connection pool with the schema migrated.
#[derive(Clone, Debug)]
pub(crate) struct Db {
    pool: SqlitePool,
    /// Queues this process's seat writers (check-out, heartbeat) in FIFO order before they
    /// reach SQLite, whose busy handler otherwise retries a locked database with sleeps of up
    /// to 100 ms (measured: p99 of check-outs 430 ms → see docs/BENCHMARKS.md).
    seat_writes: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// A row of `products`.
#[derive(Debug, Clone, FromRow, serde::Serialize)]
pub(crate) struct Product {
    pub id: String,
    pub name: String,
    pub created_at: i64,
}

/// A row of `policies`; JSON columns as text.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct Policy {
    pub id: String,
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
    pub allow_virtual: bool,
    pub site: Option<String>,
    pub created_at: i64,
}

/// A row of `licenses`.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct LicenseRow {
    pub id: String,
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

/// Signs the license token binding these machines (node-locked licenses), inside the
/// activation transaction.
pub(crate) type Reissue<'a, E> = dyn Fn(&[Machine]) -> Result<String, E> + Sync + 'a;

/// Outcome of an activation insert.
#[derive(Debug)]
pub(crate) enum Activation {
    /// A new machine row was inserted.
    Created,
    /// The fingerprint was already activated on this license: that row.
    Existing(Machine),
    /// The license's machine limit is reached.
    LimitReached,
}

impl Db {
    /// Opens (creating if missing) the SQLite database file at `path` and migrates it.
    pub async fn open_sqlite_file(path: &Path) -> Result<Db, String> {
        Self::open_sqlite(SqliteConnectOptions::new().filename(path)).await
    }

    /// Opens (creating if missing) the SQLite database named by a `sqlite:` URL and migrates it.
    pub async fn open_sqlite_url(url: &str) -> Result<Db, String> {
        let options =
            SqliteConnectOptions::from_str(url).map_err(|e| format!("database URL: {e}"))?;
        Self::open_sqlite(options).await
    }

    async fn open_sqlite(options: SqliteConnectOptions) -> Result<Db, String> {
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: an acknowledged write survives power loss (WAL + NORMAL may lose the last).
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(|e| format!("opening the database: {e}"))?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|e| format!("migrating the database: {e}"))?;
        Ok(Db {
            pool,
            seat_writes: Default::default(),
        })
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> DbResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection (at shutdown).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The journal mode in effect (`wal`).
    #[cfg(test)]
    pub async fn journal_mode(&self) -> DbResult<String> {
        sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&self.pool)
            .await
    }

    // ---- API tokens ------------------------------------------------------------------------

    /// How many API tokens exist (revoked included): zero means first start.
    pub async fn api_token_count(&self) -> DbResult<i64> {
        sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens")
            .fetch_one(&self.pool)
            .await
    }

    /// Stores a token's hash and role.
    pub async fn insert_api_token(
        &self,
        id: &str,
        token_hash: &str,
        role: &str,
        label: &str,
        now: i64,
    ) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO api_tokens (id, token_hash, role, label, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(token_hash)
        .bind(role)
        .bind(label)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The role of the live (not revoked) token with this hash.
    pub async fn api_token_role(&self, token_hash: &str) -> DbResult<Option<String>> {
        sqlx::query_scalar(
            "SELECT role FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await
    }

    // ---- products --------------------------------------------------------------------------

    /// Inserts a product; `false` when the id is taken.
    pub async fn insert_product(&self, product: &Product) -> DbResult<bool> {
        let done = sqlx::query(
            "INSERT INTO products (id, name, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&product.id)
        .bind(&product.name)
        .bind(product.created_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every product, by id.
    pub async fn list_products(&self) -> DbResult<Vec<Product>> {
        sqlx::query_as("SELECT id, name, created_at FROM products ORDER BY id")
            .fetch_all(&self.pool)
            .await
    }

    /// One product.
    pub async fn get_product(&self, id: &str) -> DbResult<Option<Product>> {
        sqlx::query_as("SELECT id, name, created_at FROM products WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    // ---- policies --------------------------------------------------------------------------

    /// Inserts a policy (its product exists: checked by the caller and the foreign key).
    pub async fn insert_policy(&self, p: &Policy) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO policies (id, product_id, name, model, duration, grace_period, \
             max_machines, seats, features, version_rule, match_policy, allow_virtual, site, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(&p.id)
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
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// One policy.
    pub async fn get_policy(&self, id: &str) -> DbResult<Option<Policy>> {
        sqlx::query_as("SELECT * FROM policies WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    /// Every policy, oldest first.
    pub async fn list_policies(&self) -> DbResult<Vec<Policy>> {
        sqlx::query_as("SELECT * FROM policies ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await
    }

    // ---- licenses --------------------------------------------------------------------------

    /// Inserts a license; `false` if its key hash collides (practically never: 125 random bits).
    pub async fn insert_license(&self, l: &LicenseRow) -> DbResult<bool> {
        let done = sqlx::query(
            "INSERT INTO licenses (id, key_hash, key_hint, product_id, policy_id, status, claims, \
             token, expires_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (key_hash) DO NOTHING",
        )
        .bind(&l.id)
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
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// One license by id.
    pub async fn get_license(&self, id: &str) -> DbResult<Option<LicenseRow>> {
        sqlx::query_as("SELECT * FROM licenses WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    /// One license by the hash of its key.
    pub async fn license_by_key_hash(&self, key_hash: &str) -> DbResult<Option<LicenseRow>> {
        sqlx::query_as("SELECT * FROM licenses WHERE key_hash = $1")
            .bind(key_hash)
            .fetch_optional(&self.pool)
            .await
    }

    /// Licenses, newest first, at most `limit`.
    pub async fn list_licenses(&self, limit: i64) -> DbResult<Vec<LicenseRow>> {
        sqlx::query_as("SELECT * FROM licenses ORDER BY created_at DESC, id LIMIT $1")
            .bind(limit)
            .fetch_all(&self.pool)
            .await
    }

    /// Applies `transition` if the license is in a state it starts from; `false` otherwise.
    pub async fn transition(&self, id: &str, transition: Transition, now: i64) -> DbResult<bool> {
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

    /// The machine with this fingerprint on this license.
    pub async fn get_machine(
        &self,
        license_id: &str,
        fingerprint: &str,
    ) -> DbResult<Option<Machine>> {
        sqlx::query_as("SELECT * FROM machines WHERE license_id = $1 AND fingerprint = $2")
            .bind(license_id)
            .bind(fingerprint)
            .fetch_optional(&self.pool)
            .await
    }

    /// The machines of a license, oldest first.
    pub async fn list_machines(&self, license_id: &str) -> DbResult<Vec<Machine>> {
        sqlx::query_as("SELECT * FROM machines WHERE license_id = $1 ORDER BY created_at, id")
            .bind(license_id)
            .fetch_all(&self.pool)
            .await
    }

    /// Records that a machine was seen.
    pub async fn touch_machine(&self, id: &str, now: i64) -> DbResult<()> {
        sqlx::query("UPDATE machines SET last_seen_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Starts a write transaction that serializes with every other writer of this license:
    /// SQLite takes the database write lock up front (a deferred transaction could fail to
    /// upgrade); PostgreSQL locks the license row (a no-op `UPDATE`), so concurrent writers
    /// of one license (activations, seat check-outs) queue while other licenses proceed.
    pub async fn begin_license_write(
        &self,
        license_id: &str,
    ) -> DbResult<sqlx::Transaction<'static, sqlx::Sqlite>> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("UPDATE licenses SET updated_at = updated_at WHERE id = $1")
            .bind(license_id)
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    /// Activates `machine` unless its license already has `max_machines` machines, and, when
    /// `reissue` is given, stores the license token it returns for the license's machines (new
    /// one included), all in one write transaction: concurrent activations of one license are
    /// serialized, so the limit holds and a node-locked token binds every machine.
    /// `reissue` returning `Err` rolls everything back.
    pub async fn activate<E>(
        &self,
        machine: &Machine,
        max_machines: Option<i64>,
        reissue: Option<&Reissue<'_, E>>,
    ) -> Result<Result<Activation, E>, sqlx::Error> {
        let mut tx = self.begin_license_write(&machine.license_id).await?;
        let existing: Option<Machine> =
            sqlx::query_as("SELECT * FROM machines WHERE license_id = $1 AND fingerprint = $2")
                .bind(&machine.license_id)
                .bind(&machine.fingerprint)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(existing) = existing {
            sqlx::query("UPDATE machines SET last_seen_at = $1 WHERE id = $2")
                .bind(machine.last_seen_at)
                .bind(&existing.id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(Ok(Activation::Existing(existing)));
        }
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM machines WHERE license_id = $1")
            .bind(&machine.license_id)
            .fetch_one(&mut *tx)
            .await?;
        if max_machines.is_some_and(|max| count >= max) {
            tx.rollback().await?;
            return Ok(Ok(Activation::LimitReached));
        }
        sqlx::query(
            "INSERT INTO machines (id, license_id, fingerprint, fingerprint_json, created_at, \
             last_seen_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&machine.id)
        .bind(&machine.license_id)
        .bind(&machine.fingerprint)
        .bind(&machine.fingerprint_json)
        .bind(machine.created_at)
        .bind(machine.last_seen_at)
        .execute(&mut *tx)
        .await?;
        if let Some(reissue) = reissue {
            let machines: Vec<Machine> = sqlx::query_as(
                "SELECT * FROM machines WHERE license_id = $1 ORDER BY created_at, id",
            )
            .bind(&machine.license_id)
            .fetch_all(&mut *tx)
            .await?;
            let token = match reissue(&machines) {
                Ok(token) => token,
                Err(e) => {
                    tx.rollback().await?;
                    return Ok(Err(e));
                }
            };
            sqlx::query("UPDATE licenses SET token = $1, updated_at = $2 WHERE id = $3")
                .bind(&token)
                .bind(machine.created_at)
                .bind(&machine.license_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Ok(Activation::Created))
    }
}
