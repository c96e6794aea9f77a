//! The admin console's accounts and sessions (migration 0017): SQL only; the rules (hashing,
//! timeouts, lockout) are in `console/session.rs`.

use sqlx::FromRow;

use super::{Db, DbResult, LicenseRow};

/// A console sign-in account.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct ConsoleAccount {
    pub id: String,
    pub organization_id: String,
    pub password_hash: Option<String>,
    pub failed_sign_ins: i64,
    pub locked_until: Option<i64>,
}

/// A live console session with its account.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct ConsoleSession {
    pub account_id: String,
    pub organization_id: String,
    pub user_name: String,
    pub role: String,
    pub csrf: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    /// 1 when the account's organization is the operator.
    pub operator: i64,
}

impl Db {
    /// Whether any console account exists (the first is made with the bootstrap token).
    pub async fn console_account_count(&self) -> DbResult<i64> {
        sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM console_accounts")
            .fetch_one(&self.pool)
            .await
    }

    /// Stores an account; `false` when the sign-in name is taken.
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_console_account(
        &self,
        id: &str,
        organization_id: &str,
        user_name: &str,
        password_hash: &str,
        role: &str,
        now: i64,
    ) -> DbResult<bool> {
        let done = sqlx::query(
            "INSERT INTO console_accounts (id, organization_id, user_name, user_name_key, \
             password_hash, role, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
             ON CONFLICT (user_name_key) DO NOTHING",
        )
        .bind(id)
        .bind(organization_id)
        .bind(user_name)
        .bind(user_name.to_lowercase())
        .bind(password_hash)
        .bind(role)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The account signing in as `user_name` (case ignored).
    pub async fn console_account_by_name(
        &self,
        user_name: &str,
    ) -> DbResult<Option<ConsoleAccount>> {
        sqlx::query_as(
            "SELECT id, organization_id, password_hash, failed_sign_ins, locked_until FROM console_accounts \
             WHERE user_name_key = $1",
        )
        .bind(user_name.to_lowercase())
        .fetch_optional(&self.pool)
        .await
    }

    /// Records a failed sign-in of `account_id`: counts it, and locks the account until
    /// `lock_until` when `lock_until` is given.
    pub async fn console_sign_in_failed(
        &self,
        account_id: &str,
        lock_until: Option<i64>,
        now: i64,
    ) -> DbResult<()> {
        sqlx::query(
            "UPDATE console_accounts SET failed_sign_ins = CASE WHEN $2 IS NULL \
             THEN failed_sign_ins + 1 ELSE 0 END, locked_until = COALESCE($2, locked_until), \
             updated_at = $3 WHERE id = $1",
        )
        .bind(account_id)
        .bind(lock_until)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Starts a session of `account_id` (a successful sign-in also clears the failures).
    pub async fn insert_console_session(
        &self,
        id_hash: &str,
        account_id: &str,
        csrf: &str,
        now: i64,
    ) -> DbResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE console_accounts SET failed_sign_ins = 0, locked_until = NULL WHERE id = $1",
        )
        .bind(account_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO console_sessions (id_hash, account_id, csrf, created_at, last_seen_at) \
             VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(id_hash)
        .bind(account_id)
        .bind(csrf)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// The session whose secret hashes to `id_hash`, with its account.
    pub async fn console_session(&self, id_hash: &str) -> DbResult<Option<ConsoleSession>> {
        sqlx::query_as(
            "SELECT s.account_id, a.organization_id, a.user_name, a.role, s.csrf, s.created_at, \
             s.last_seen_at, o.operator FROM console_sessions s \
             JOIN console_accounts a ON a.id = s.account_id \
             JOIN organizations o ON o.id = a.organization_id WHERE s.id_hash = $1",
        )
        .bind(id_hash)
        .fetch_optional(&self.pool)
        .await
    }

    /// Marks the session seen at `now` (its idle timeout restarts).
    pub async fn touch_console_session(&self, id_hash: &str, now: i64) -> DbResult<()> {
        sqlx::query("UPDATE console_sessions SET last_seen_at = $2 WHERE id_hash = $1")
            .bind(id_hash)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Ends a session (sign-out, or a timed-out one).
    pub async fn delete_console_session(&self, id_hash: &str) -> DbResult<()> {
        sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The organization's licenses with the most live leases at `now` (at most `limit`):
    /// (license id, live leases). The overview's utilisation bars.
    pub async fn busiest_licenses(
        &self,
        organization_id: &str,
        now: i64,
        limit: i64,
    ) -> DbResult<Vec<(String, i64)>> {
        sqlx::query_as(
            "SELECT l.license_id, CAST(COUNT(*) AS BIGINT) AS live FROM leases l \
             JOIN licenses c ON c.id = l.license_id WHERE c.organization_id = $1 \
             AND l.released_at IS NULL AND l.expires_at > $2 \
             GROUP BY l.license_id ORDER BY live DESC, l.license_id LIMIT $3",
        )
        .bind(organization_id)
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }

    /// The organization's licenses among `ids` (one statement, at most a page's worth of ids:
    /// the overview's bars), by id; an id of another organization is left out.
    pub async fn licenses_among(
        &self,
        organization_id: &str,
        ids: &[&str],
    ) -> DbResult<std::collections::HashMap<String, LicenseRow>> {
        if ids.is_empty() {
            return Ok(std::collections::HashMap::new());
        }
        let marks: Vec<String> = (2..ids.len() + 2).map(|n| format!("${n}")).collect();
        // Only numbered placeholders are formatted into the statement; the ids are bound.
        let sql = format!(
            "SELECT * FROM licenses WHERE organization_id = $1 AND id IN ({})",
            marks.join(", ")
        );
        let mut query =
            sqlx::query_as::<_, LicenseRow>(sqlx::AssertSqlSafe(sql)).bind(organization_id);
        for id in ids {
            query = query.bind(*id);
        }
        let rows = query.fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(|row| (row.id.clone(), row)).collect())
    }

    /// Deletes the sessions unseen since `idle_before` or started before `started_before`
    /// (timed out: they no longer sign in); how many.
    pub async fn purge_console_sessions(
        &self,
        idle_before: i64,
        started_before: i64,
    ) -> DbResult<u64> {
        let done =
            sqlx::query("DELETE FROM console_sessions WHERE last_seen_at < $1 OR created_at < $2")
                .bind(idle_before)
                .bind(started_before)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected())
    }

    /// The organization's console accounts, by name.
    pub async fn list_console_accounts(
        &self,
        organization_id: &str,
    ) -> DbResult<Vec<ConsoleAccountView>> {
        sqlx::query_as(
            "SELECT id, user_name, role, locked_until, invite_expires_at, \
             CASE WHEN password_hash IS NULL THEN 0 ELSE 1 END AS has_password \
             FROM console_accounts WHERE organization_id = $1 ORDER BY user_name_key",
        )
        .bind(organization_id)
        .fetch_all(&self.pool)
        .await
    }

    /// Stores an invited account (no password until the invitation is accepted); `false` when
    /// the sign-in name is taken.
    #[allow(clippy::too_many_arguments)]
    pub async fn invite_console_account(
        &self,
        id: &str,
        organization_id: &str,
        user_name: &str,
        role: &str,
        invite_hash: &str,
        invite_expires_at: i64,
        now: i64,
    ) -> DbResult<bool> {
        let done = sqlx::query(
            "INSERT INTO console_accounts (id, organization_id, user_name, user_name_key, role, \
             invite_hash, invite_expires_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) ON CONFLICT (user_name_key) DO NOTHING",
        )
        .bind(id)
        .bind(organization_id)
        .bind(user_name)
        .bind(user_name.to_lowercase())
        .bind(role)
        .bind(invite_hash)
        .bind(invite_expires_at)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// An admin's password reset of account `id` of `organization_id`: the password and every
    /// session go, the lockout too, and a new invitation replaces any pending one. `false`:
    /// no such account in that organization.
    pub async fn reset_console_account(
        &self,
        organization_id: &str,
        id: &str,
        invite_hash: &str,
        invite_expires_at: i64,
        now: i64,
    ) -> DbResult<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE console_accounts SET password_hash = NULL, invite_hash = $3, \
             invite_expires_at = $4, failed_sign_ins = 0, locked_until = NULL, updated_at = $5 \
             WHERE id = $1 AND organization_id = $2",
        )
        .bind(id)
        .bind(organization_id)
        .bind(invite_hash)
        .bind(invite_expires_at)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM console_sessions WHERE account_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Accepts the invitation whose secret hashes to `invite_hash` if it is still valid at
    /// `now`: sets the password, spends the invitation; the account's id.
    pub async fn accept_console_invite(
        &self,
        invite_hash: &str,
        password_hash: &str,
        now: i64,
    ) -> DbResult<Option<String>> {
        sqlx::query_scalar(
            "UPDATE console_accounts SET password_hash = $2, invite_hash = NULL, \
             invite_expires_at = NULL, updated_at = $3 \
             WHERE invite_hash = $1 AND invite_expires_at >= $3 RETURNING id",
        )
        .bind(invite_hash)
        .bind(password_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
    }

    /// The account's stored password hash.
    pub async fn console_password_hash(&self, id: &str) -> DbResult<Option<String>> {
        sqlx::query_scalar("SELECT password_hash FROM console_accounts WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map(Option::flatten)
    }

    /// Sets the account's password; its other sessions (all but `keep_session`) end.
    pub async fn set_console_password(
        &self,
        id: &str,
        password_hash: &str,
        keep_session: &str,
        now: i64,
    ) -> DbResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE console_accounts SET password_hash = $2, updated_at = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(password_hash)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM console_sessions WHERE account_id = $1 AND id_hash <> $2")
            .bind(id)
            .bind(keep_session)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }
}

/// A console account as the accounts page lists it.
#[derive(Debug, Clone, FromRow, serde::Serialize)]
pub(crate) struct ConsoleAccountView {
    pub id: String,
    pub user_name: String,
    pub role: String,
    pub locked_until: Option<i64>,
    pub invite_expires_at: Option<i64>,
    /// 1 when a password is set.
    pub has_password: i64,
}
