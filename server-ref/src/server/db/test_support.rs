//! Test-only database methods: fills, backdating, query plans, lock and session probes and
//! the held-count check. Kept out of the production files; only `cargo test` builds them.

use super::leases::{FORCE_RELEASE_LEASE, LEASE_OF_LICENSE};
use super::{Db, DbResult, Engine};

/// The name of the control among [`Db::lease_statement_plans`]: the heartbeat's conditions
/// written plainly, which PostgreSQL plans on another index than the primary key on a table
/// not analyzed yet (so the test shows its fill reproduces the hazard).
pub(crate) const PLAIN_HEARTBEAT_CONTROL: &str = "plain heartbeat (control)";

impl Db {
    /// Inserts `n` live leases of `license_id` in one statement, as a fast fill leaves them:
    /// with no `ANALYZE` since (PostgreSQL's autovacuum is switched off for the table first, so
    /// none can run meanwhile). Tests of the statements' plans.
    pub(crate) async fn fill_leases_unanalyzed(&self, license_id: &str, n: i64, now: i64) {
        if self.engine == Engine::Postgres {
            sqlx::query("ALTER TABLE leases SET (autovacuum_enabled = false)")
                .execute(&self.pool)
                .await
                .expect("switching autovacuum off");
        }
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $2) \
             INSERT INTO leases (id, license_id, client_id, user_name, request_id, epoch, \
             created_at, heartbeat_at, expires_at) \
             SELECT 'lse_fill_' || i, $1, 'fill-' || i, 'u', 'r', 1, $3, $3, $3 + 900 FROM n",
        )
        .bind(license_id)
        .bind(n)
        .bind(now)
        .execute(&self.pool)
        .await
        .expect("filling leases");
        let mut conn = self.pool.acquire().await.expect("a connection");
        super::leases::change_held(&mut conn, license_id, n)
            .await
            .expect("counting the filled leases");
    }

    /// `ANALYZE` of the leases (tests of the statements' plans).
    pub(crate) async fn analyze_leases(&self) {
        sqlx::query("ANALYZE leases")
            .execute(&self.pool)
            .await
            .expect("ANALYZE leases");
    }

    /// The indexes of `leases`, its primary key's first (tests of the statements' plans).
    pub(crate) async fn lease_indexes(&self) -> (String, Vec<String>) {
        let (primary, all_sql) = match self.engine {
            Engine::Postgres => (
                "leases_pkey",
                "SELECT indexname::text FROM pg_indexes WHERE tablename = 'leases'",
            ),
            Engine::Sqlite => (
                "sqlite_autoindex_leases_1",
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'leases'",
            ),
        };
        let all: Vec<String> = sqlx::query_scalar(all_sql)
            .fetch_all(&self.pool)
            .await
            .expect("listing the indexes of leases");
        assert!(all.iter().any(|i| i == primary), "{all:?}");
        let others = all.into_iter().filter(|i| i != primary).collect();
        (primary.to_owned(), others)
    }

    /// The plans of the statements that address one lease by its id, and of a control (the
    /// heartbeat's conditions written plainly, [`PLAIN_HEARTBEAT_CONTROL`]), for the lease
    /// `lease_id` of `license_id` at `now`: (statement, plan). PostgreSQL: the plan of a
    /// prepared statement (sqlx prepares every statement), generic or custom as `generic`
    /// says; SQLite: `EXPLAIN QUERY PLAN`. Tests of the statements' plans.
    pub(crate) async fn lease_statement_plans(
        &self,
        license_id: &str,
        lease_id: &str,
        now: i64,
        generic: bool,
    ) -> Vec<(&'static str, String)> {
        use super::leases::{BORROW_LEASE, CHECK_IN_LEASE, HEARTBEAT_LEASE};
        enum Arg<'a> {
            Int(i64),
            Text(&'a str),
        }
        let (now_arg, until, lease, license) = (
            Arg::Int(now),
            Arg::Int(now + 3600),
            Arg::Text(lease_id),
            Arg::Text(license_id),
        );
        let statements: [(&'static str, &'static str, Vec<&Arg<'_>>); 6] = [
            (
                PLAIN_HEARTBEAT_CONTROL,
                "UPDATE leases SET heartbeat_at = $1 WHERE id = $2 AND license_id = $3 \
                 AND epoch = $4 AND released_at IS NULL AND expires_at > $1",
                vec![&now_arg, &lease, &license, &Arg::Int(1)],
            ),
            (
                "heartbeat",
                HEARTBEAT_LEASE,
                vec![
                    &now_arg,
                    &lease,
                    &license,
                    &Arg::Int(1),
                    &Arg::Text("secret"),
                ],
            ),
            (
                "check-in",
                CHECK_IN_LEASE,
                vec![
                    &now_arg,
                    &lease,
                    &license,
                    &Arg::Int(1),
                    &Arg::Text("secret"),
                ],
            ),
            ("lease of license", LEASE_OF_LICENSE, vec![&lease, &license]),
            ("borrow", BORROW_LEASE, vec![&now_arg, &until, &lease]),
            (
                "force-release",
                FORCE_RELEASE_LEASE,
                vec![&now_arg, &lease, &license],
            ),
        ];
        let mut conn = self.pool.acquire().await.expect("a connection");
        let mut plans = Vec::new();
        for (name, sql, args) in statements {
            let plan: Vec<String> = match self.engine {
                Engine::Postgres => {
                    let mode = if generic {
                        "force_generic_plan"
                    } else {
                        "force_custom_plan"
                    };
                    sqlx::query(sqlx::AssertSqlSafe(format!("SET plan_cache_mode = {mode}")))
                        .execute(&mut *conn)
                        .await
                        .expect("plan_cache_mode");
                    sqlx::query(sqlx::AssertSqlSafe(format!("PREPARE planned AS {sql}")))
                        .execute(&mut *conn)
                        .await
                        .expect("PREPARE");
                    // Written as literals because `EXECUTE` takes no bind parameters;
                    // test values only, and refused if they could end the literal.
                    let literals: Vec<String> = args
                        .iter()
                        .map(|a| match a {
                            Arg::Int(i) => i.to_string(),
                            Arg::Text(t) => {
                                assert!(!t.contains(['\'', '\\']), "{t}");
                                format!("'{t}'")
                            }
                        })
                        .collect();
                    let explain = format!(
                        "EXPLAIN (COSTS OFF) EXECUTE planned({})",
                        literals.join(", ")
                    );
                    let plan = sqlx::query_scalar(sqlx::AssertSqlSafe(explain))
                        .fetch_all(&mut *conn)
                        .await
                        .expect("EXPLAIN");
                    sqlx::query("DEALLOCATE planned")
                        .execute(&mut *conn)
                        .await
                        .expect("DEALLOCATE");
                    sqlx::query("RESET plan_cache_mode")
                        .execute(&mut *conn)
                        .await
                        .expect("RESET plan_cache_mode");
                    plan
                }
                Engine::Sqlite => {
                    let explain = format!("EXPLAIN QUERY PLAN {sql}");
                    let mut query =
                        sqlx::query_as::<_, (i64, i64, i64, String)>(sqlx::AssertSqlSafe(explain));
                    for arg in args {
                        query = match arg {
                            Arg::Int(i) => query.bind(*i),
                            Arg::Text(t) => query.bind(*t),
                        };
                    }
                    let rows = query
                        .fetch_all(&mut *conn)
                        .await
                        .expect("EXPLAIN QUERY PLAN");
                    rows.into_iter().map(|(_, _, _, detail)| detail).collect()
                }
            };
            plans.push((name, plan.join("\n")));
        }
        plans
    }

    /// Overwrites the count of held leases of `license_id` (tests of its healing).
    pub(crate) async fn set_held_for_tests(&self, license_id: &str, held: i64) {
        sqlx::query("UPDATE licenses SET leases_held = $1 WHERE id = $2")
            .bind(held)
            .bind(license_id)
            .execute(&self.pool)
            .await
            .expect("setting the held count");
    }

    /// PostgreSQL: a transaction of its own that does what a check-out on another replica does
    /// (locks the license, inserts a live lease for `client` and `user`, adds it to the
    /// count) and stays open until the caller commits it (tests of a check-out racing it).
    pub(crate) async fn check_out_elsewhere_open(
        &self,
        license_id: &str,
        client: &str,
        user: &str,
        lease_id: &str,
        now: i64,
    ) -> sqlx::Transaction<'static, sqlx::Any> {
        let mut tx = self.pool.begin().await.expect("a transaction");
        sqlx::query("SELECT id FROM licenses WHERE id = $1 FOR UPDATE")
            .bind(license_id)
            .fetch_one(&mut *tx)
            .await
            .expect("locking the license");
        sqlx::query(
            "INSERT INTO leases (id, license_id, client_id, user_name, request_id, epoch, \
             created_at, heartbeat_at, expires_at, borrowed) \
             VALUES ($1, $2, $3, $4, 'elsewhere', 1, $5, $5, $5 + 900, 0)",
        )
        .bind(lease_id)
        .bind(license_id)
        .bind(client)
        .bind(user)
        .bind(now)
        .execute(&mut *tx)
        .await
        .expect("inserting the lease");
        super::leases::change_held(&mut tx, license_id, 1)
            .await
            .expect("counting the lease");
        tx
    }

    /// Ends every other session of this database, as a database restart would (PostgreSQL;
    /// tests of the connections kept open); how many.
    pub(crate) async fn terminate_other_sessions(&self) -> i64 {
        sqlx::query_scalar(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() \
             AND backend_type = 'client backend'",
        )
        .fetch_one(&self.pool)
        .await
        .expect("terminating the other sessions")
    }

    /// This database's sessions waiting for a lock (PostgreSQL; tests).
    pub(crate) async fn sessions_waiting_for_a_lock(&self) -> i64 {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND wait_event_type = 'Lock'",
        )
        .fetch_one(&self.pool)
        .await
        .expect("reading pg_stat_activity")
    }

    /// The physical place of a license's row version (PostgreSQL; tests): a new version of the
    /// row gets another.
    pub(crate) async fn license_row_version(&self, license_id: &str) -> String {
        sqlx::query_scalar("SELECT ctid::TEXT FROM licenses WHERE id = $1")
            .bind(license_id)
            .fetch_one(&self.pool)
            .await
            .expect("reading the row's ctid")
    }

    /// This database's sessions that are idle inside a transaction (PostgreSQL; tests).
    pub(crate) async fn sessions_idle_in_transaction(&self) -> i64 {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND state = 'idle in transaction'",
        )
        .fetch_one(&self.pool)
        .await
        .expect("reading pg_stat_activity")
    }

    /// Panics unless every license's count of held leases agrees with its leases (tests).
    pub(crate) async fn assert_held_counts_agree(&self) {
        let disagree: Vec<(String, i64, i64)> =
            sqlx::query_as(super::held_check::HELD_COUNTS_THAT_DISAGREE)
                .fetch_all(&self.pool)
                .await
                .expect("reading the held counts");
        assert!(
            disagree.is_empty(),
            "(license, leases_held, leases not released): {disagree:?}"
        );
    }

    /// The journal mode in effect (`wal`).
    pub async fn journal_mode(&self) -> DbResult<String> {
        sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&self.pool)
            .await
    }

    /// How many API tokens exist (revoked included).
    pub async fn api_token_count(&self) -> DbResult<i64> {
        sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens")
            .fetch_one(&self.pool)
            .await
    }

    /// Sets a license's last change to `updated_at` (tests of what is older than it).
    pub async fn backdate_license(&self, id: &str, updated_at: i64) -> DbResult<()> {
        let _forget = self.licenses.clear_on_drop();
        sqlx::query("UPDATE licenses SET updated_at = $1 WHERE id = $2")
            .bind(updated_at)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Replaces the stored claims template of `license_id` (tests of a license made long ago).
    pub(crate) async fn set_claims_for_tests(&self, license_id: &str, claims: &str) {
        sqlx::query("UPDATE licenses SET claims = $1 WHERE id = $2")
            .bind(claims)
            .bind(license_id)
            .execute(&self.pool)
            .await
            .expect("setting the claims template");
    }
}
