//! Machines' deactivation keys (offline deactivation, migration 0012): set once per machine
//! row, read to check a receipt's MAC. The row (and its key) goes with the machine.

use super::{Db, DbResult};

impl Db {
    /// The machine's deactivation key: `key` when it had none (a new machine, or one activated
    /// before keys existed), else the one it has (a repeated activation answers the same key,
    /// so two installations on one machine never invalidate each other). `None` when the
    /// machine is gone.
    pub async fn ensure_deactivation_key(
        &self,
        machine_id: &str,
        key: &str,
    ) -> DbResult<Option<String>> {
        sqlx::query(
            "UPDATE machines SET deactivation_key = $1 WHERE id = $2 AND deactivation_key IS NULL",
        )
        .bind(key)
        .bind(machine_id)
        .execute(&self.pool)
        .await?;
        let row: Option<(Option<String>,)> =
            sqlx::query_as("SELECT deactivation_key FROM machines WHERE id = $1")
                .bind(machine_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.and_then(|(key,)| key))
    }

    /// The deactivation key of the machine `machine_id` of `license_id`: `None` when the
    /// license has no such machine, `Some(None)` when the machine has no key.
    pub async fn deactivation_key(
        &self,
        license_id: &str,
        machine_id: &str,
    ) -> DbResult<Option<Option<String>>> {
        let row: Option<(Option<String>,)> = sqlx::query_as(
            "SELECT deactivation_key FROM machines WHERE license_id = $1 AND id = $2",
        )
        .bind(license_id)
        .bind(machine_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(key,)| key))
    }
}
