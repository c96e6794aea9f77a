//! Client-API writes beyond activation: the statements that read and write a license's
//! machines and their events inside a [`super::Db::begin_license_change`] transaction the
//! handler owns (so each write serializes with the other writes of the same license and a
//! node-locked license's stored token always binds exactly its machines). Which machine a
//! fingerprint is, transfer counting and signing are the handlers' (`server::machines`): this
//! layer only runs SQL.

use super::{Db, DbResult, Machine, Tx};

/// Which machine of a license.
#[derive(Debug, Clone, Copy)]
pub(crate) enum MachineRef<'a> {
    /// By the combined fingerprint id (client API).
    Fingerprint(&'a str),
    /// By the machine id (admin API).
    Id(&'a str),
}

/// Who removes a machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RemovedBy {
    /// The client (`/v1/client/deactivate`): the freed slot is pending, and taking it with
    /// another machine counts as a transfer.
    Client,
    /// An administrator (`DELETE /v1/licenses/{id}/machines/{mid}`): the vendor's decision,
    /// the slot is free.
    Admin,
}

/// A row of `machine_events`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct MachineEvent {
    pub id: String,
    pub license_id: String,
    pub machine_id: String,
    /// `fingerprint_updated`, `deactivated` or `deleted`.
    pub kind: String,
    pub fingerprint: String,
    pub fingerprint_json: String,
    pub previous_fingerprint: Option<String>,
    /// JSON array of component names.
    pub changed: Option<String>,
    /// 1: a client deactivation's slot not taken yet.
    #[allow(dead_code)]
    pub pending: i64,
    pub created_at: i64,
}

/// The machine of `license_id` whose fingerprint id is `fingerprint`.
pub(crate) async fn machine_by_fingerprint(
    tx: &mut Tx,
    license_id: &str,
    fingerprint: &str,
) -> DbResult<Option<Machine>> {
    sqlx::query_as("SELECT * FROM machines WHERE license_id = $1 AND fingerprint = $2")
        .bind(license_id)
        .bind(fingerprint)
        .fetch_optional(&mut **tx)
        .await
}

/// The machine of `license_id` with id `id`.
pub(crate) async fn machine_by_id(
    tx: &mut Tx,
    license_id: &str,
    id: &str,
) -> DbResult<Option<Machine>> {
    sqlx::query_as("SELECT * FROM machines WHERE license_id = $1 AND id = $2")
        .bind(license_id)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
}

/// The machines of `license_id`, oldest first.
pub(crate) async fn machines_of(tx: &mut Tx, license_id: &str) -> DbResult<Vec<Machine>> {
    sqlx::query_as("SELECT * FROM machines WHERE license_id = $1 ORDER BY created_at, id")
        .bind(license_id)
        .fetch_all(&mut **tx)
        .await
}

/// How many machines `license_id` has.
pub(crate) async fn machine_count(tx: &mut Tx, license_id: &str) -> DbResult<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM machines WHERE license_id = $1")
        .bind(license_id)
        .fetch_one(&mut **tx)
        .await
}

/// Inserts a machine row.
pub(crate) async fn insert_machine(tx: &mut Tx, machine: &Machine) -> DbResult<()> {
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
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Sets a machine's `last_seen_at`.
pub(crate) async fn touch_machine(tx: &mut Tx, machine_id: &str, now: i64) -> DbResult<()> {
    sqlx::query("UPDATE machines SET last_seen_at = $1 WHERE id = $2")
        .bind(now)
        .bind(machine_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Deletes a machine row.
pub(crate) async fn delete_machine(tx: &mut Tx, machine_id: &str) -> DbResult<()> {
    sqlx::query("DELETE FROM machines WHERE id = $1")
        .bind(machine_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Records the removal of `machine` as event `event_id`: `deactivated` and pending (see
/// [`RemovedBy::Client`]) or `deleted`.
pub(crate) async fn insert_removal_event(
    tx: &mut Tx,
    event_id: &str,
    machine: &Machine,
    by: RemovedBy,
    now: i64,
) -> DbResult<()> {
    let (kind, pending) = match by {
        RemovedBy::Client => ("deactivated", 1_i64),
        RemovedBy::Admin => ("deleted", 0),
    };
    sqlx::query(
        "INSERT INTO machine_events (id, license_id, machine_id, kind, fingerprint, \
         fingerprint_json, previous_fingerprint, changed, pending, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL, $7, $8)",
    )
    .bind(event_id)
    .bind(&machine.license_id)
    .bind(&machine.id)
    .bind(kind)
    .bind(&machine.fingerprint)
    .bind(&machine.fingerprint_json)
    .bind(pending)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Replaces a stored machine's fingerprint by `presented`'s (a tolerated hardware change) and
/// records it as a `fingerprint_updated` event `event_id` with the `changed` components.
/// Returns the updated row.
pub(crate) async fn update_fingerprint(
    tx: &mut Tx,
    stored: &Machine,
    presented: &Machine,
    event_id: &str,
    changed: &[String],
) -> DbResult<Machine> {
    let now = presented.last_seen_at;
    sqlx::query(
        "UPDATE machines SET fingerprint = $1, fingerprint_json = $2, last_seen_at = $3 \
         WHERE id = $4",
    )
    .bind(&presented.fingerprint)
    .bind(&presented.fingerprint_json)
    .bind(now)
    .bind(&stored.id)
    .execute(&mut **tx)
    .await?;
    let changed = serde_json::to_string(changed).unwrap_or_else(|_| "[]".into());
    sqlx::query(
        "INSERT INTO machine_events (id, license_id, machine_id, kind, fingerprint, \
         fingerprint_json, previous_fingerprint, changed, pending, created_at) \
         VALUES ($1, $2, $3, 'fingerprint_updated', $4, $5, $6, $7, 0, $8)",
    )
    .bind(event_id)
    .bind(&stored.license_id)
    .bind(&stored.id)
    .bind(&presented.fingerprint)
    .bind(&presented.fingerprint_json)
    .bind(&stored.fingerprint)
    .bind(changed)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(Machine {
        fingerprint: presented.fingerprint.clone(),
        fingerprint_json: presented.fingerprint_json.clone(),
        last_seen_at: now,
        ..stored.clone()
    })
}

/// Stores a license's token (`None`: no token, as before the first activation).
pub(crate) async fn set_license_token(
    tx: &mut Tx,
    license_id: &str,
    token: Option<&str>,
    now: i64,
) -> DbResult<()> {
    sqlx::query("UPDATE licenses SET token = $1, updated_at = $2 WHERE id = $3")
        .bind(token)
        .bind(now)
        .bind(license_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The client deactivations of `license_id` whose slot is not taken yet, oldest first.
pub(crate) async fn pending_deactivations(
    tx: &mut Tx,
    license_id: &str,
) -> DbResult<Vec<MachineEvent>> {
    sqlx::query_as(
        "SELECT * FROM machine_events WHERE license_id = $1 AND kind = 'deactivated' \
         AND pending = 1 ORDER BY created_at, id",
    )
    .bind(license_id)
    .fetch_all(&mut **tx)
    .await
}

/// Marks a pending deactivation's slot taken.
pub(crate) async fn take_pending(tx: &mut Tx, event_id: &str) -> DbResult<()> {
    sqlx::query("UPDATE machine_events SET pending = 0 WHERE id = $1")
        .bind(event_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The transfers `license_id` has used.
pub(crate) async fn transfers_used(tx: &mut Tx, license_id: &str) -> DbResult<i64> {
    sqlx::query_scalar("SELECT transfers FROM licenses WHERE id = $1")
        .bind(license_id)
        .fetch_one(&mut **tx)
        .await
}

/// Counts one transfer of `license_id`; `now`: also sets its `updated_at`.
pub(crate) async fn add_transfer(tx: &mut Tx, license_id: &str, now: Option<i64>) -> DbResult<()> {
    match now {
        Some(now) => {
            sqlx::query(
                "UPDATE licenses SET transfers = transfers + 1, updated_at = $1 WHERE id = $2",
            )
            .bind(now)
            .bind(license_id)
            .execute(&mut **tx)
            .await?
        }
        None => {
            sqlx::query("UPDATE licenses SET transfers = transfers + 1 WHERE id = $1")
                .bind(license_id)
                .execute(&mut **tx)
                .await?
        }
    };
    Ok(())
}

impl Db {
    /// The newest `limit` events of a license's machines, newest first.
    pub async fn list_machine_events(
        &self,
        license_id: &str,
        limit: i64,
    ) -> DbResult<Vec<MachineEvent>> {
        sqlx::query_as(
            "SELECT * FROM machine_events WHERE license_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT $2",
        )
        .bind(license_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }
}
