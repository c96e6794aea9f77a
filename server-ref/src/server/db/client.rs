//! Client-API writes beyond activation: deactivating and transferring machines. Each runs in
//! one [`Db::begin_license_write`] transaction, so it serializes with activations of the same
//! license and a node-locked license's stored token always binds exactly its machines.

use super::{Db, Machine, Reissue};

/// Which machine of a license.
#[derive(Debug, Clone, Copy)]
pub(crate) enum MachineRef<'a> {
    /// By the combined fingerprint id (client API).
    Fingerprint(&'a str),
    /// By the machine id (admin API).
    Id(&'a str),
}

/// Outcome of a deactivation.
#[derive(Debug)]
pub(crate) enum Deactivation {
    /// The machine was removed: the removed row.
    Done(Machine),
    /// The license has no such machine.
    NotFound,
}

/// Outcome of a transfer.
#[derive(Debug)]
pub(crate) enum Transfer {
    /// `from` was removed and the new machine inserted.
    Done,
    /// `from` is not activated on the license.
    FromNotFound,
    /// The new fingerprint is already activated on the license.
    AlreadyActivated,
    /// The license has used all the transfers its policy allows.
    LimitReached,
}

impl Db {
    /// Removes a machine and, when `reissue` is given (node-locked), stores the license token
    /// binding the machines left (none left: no token, as before the first activation).
    /// `reissue` returning `Err` rolls everything back.
    pub async fn deactivate<E>(
        &self,
        license_id: &str,
        which: MachineRef<'_>,
        reissue: Option<&Reissue<'_, E>>,
        now: i64,
    ) -> Result<Result<Deactivation, E>, sqlx::Error> {
        let _forget = self.licenses.clear_on_drop();
        let mut tx = self.begin_license_write(license_id).await?;
        let (sql, key) = match which {
            MachineRef::Fingerprint(fp) => (
                "SELECT * FROM machines WHERE license_id = $1 AND fingerprint = $2",
                fp,
            ),
            MachineRef::Id(id) => (
                "SELECT * FROM machines WHERE license_id = $1 AND id = $2",
                id,
            ),
        };
        let machine: Option<Machine> = sqlx::query_as(sql)
            .bind(license_id)
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(machine) = machine else {
            tx.rollback().await?;
            return Ok(Ok(Deactivation::NotFound));
        };
        sqlx::query("DELETE FROM machines WHERE id = $1")
            .bind(&machine.id)
            .execute(&mut *tx)
            .await?;
        if let Some(reissue) = reissue {
            let machines: Vec<Machine> = sqlx::query_as(
                "SELECT * FROM machines WHERE license_id = $1 ORDER BY created_at, id",
            )
            .bind(license_id)
            .fetch_all(&mut *tx)
            .await?;
            let token = if machines.is_empty() {
                None
            } else {
                match reissue(&machines) {
                    Ok(token) => Some(token),
                    Err(e) => {
                        tx.rollback().await?;
                        return Ok(Err(e));
                    }
                }
            };
            sqlx::query("UPDATE licenses SET token = $1, updated_at = $2 WHERE id = $3")
                .bind(token)
                .bind(now)
                .bind(license_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Ok(Deactivation::Done(machine)))
    }

    /// Atomically replaces the machine with fingerprint `from` by `machine`, counting one
    /// transfer against `max_transfers`; stores the reissued token like [`Db::activate`].
    pub async fn transfer<E>(
        &self,
        from: &str,
        machine: &Machine,
        max_transfers: Option<i64>,
        reissue: Option<&Reissue<'_, E>>,
    ) -> Result<Result<Transfer, E>, sqlx::Error> {
        let _forget = self.licenses.clear_on_drop();
        let license_id = &machine.license_id;
        let mut tx = self.begin_license_write(license_id).await?;
        let old: Option<Machine> =
            sqlx::query_as("SELECT * FROM machines WHERE license_id = $1 AND fingerprint = $2")
                .bind(license_id)
                .bind(from)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(old) = old else {
            tx.rollback().await?;
            return Ok(Ok(Transfer::FromNotFound));
        };
        let existing: Option<Machine> =
            sqlx::query_as("SELECT * FROM machines WHERE license_id = $1 AND fingerprint = $2")
                .bind(license_id)
                .bind(&machine.fingerprint)
                .fetch_optional(&mut *tx)
                .await?;
        if existing.is_some() {
            tx.rollback().await?;
            return Ok(Ok(Transfer::AlreadyActivated));
        }
        let transfers: i64 = sqlx::query_scalar("SELECT transfers FROM licenses WHERE id = $1")
            .bind(license_id)
            .fetch_one(&mut *tx)
            .await?;
        if max_transfers.is_some_and(|max| transfers >= max) {
            tx.rollback().await?;
            return Ok(Ok(Transfer::LimitReached));
        }
        sqlx::query("DELETE FROM machines WHERE id = $1")
            .bind(&old.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO machines (id, license_id, fingerprint, fingerprint_json, created_at, \
             last_seen_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&machine.id)
        .bind(license_id)
        .bind(&machine.fingerprint)
        .bind(&machine.fingerprint_json)
        .bind(machine.created_at)
        .bind(machine.last_seen_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE licenses SET transfers = transfers + 1, updated_at = $1 WHERE id = $2")
            .bind(machine.created_at)
            .bind(license_id)
            .execute(&mut *tx)
            .await?;
        if let Some(reissue) = reissue {
            let machines: Vec<Machine> = sqlx::query_as(
                "SELECT * FROM machines WHERE license_id = $1 ORDER BY created_at, id",
            )
            .bind(license_id)
            .fetch_all(&mut *tx)
            .await?;
            let token = match reissue(&machines) {
                Ok(token) => token,
                Err(e) => {
                    tx.rollback().await?;
                    return Ok(Err(e));
                }
            };
            sqlx::query("UPDATE licenses SET token = $1 WHERE id = $2")
                .bind(&token)
                .bind(license_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Ok(Transfer::Done))
    }
}
