//! Client-API writes beyond activation: deactivating and transferring machines, finding a
//! license's machine by its match rule, and recording tolerated hardware changes. Each write
//! runs in one [`Db::begin_license_write`] transaction, so it serializes with activations of
//! the same license and a node-locked license's stored token always binds exactly its
//! machines.

use super::{Db, DbResult, Machine, Reissue, Tx};

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

/// Whether a stored machine is the machine presented, by the license's match rule (the core's
/// `fingerprint::matches`, applied by the caller: this layer only runs SQL): `Some(changed
/// component names)` when it is (empty: nothing changed), `None` when it is another machine.
pub(crate) type SameMachine<'a> = dyn Fn(&Machine) -> Option<Vec<String>> + Sync + 'a;

/// The presented machine: its row as it would be inserted (new id, fingerprint, JSON, times),
/// how to recognize it among the stored ones, and the id of the event recorded if a stored
/// machine is recognized within tolerance.
pub(crate) struct Presented<'a> {
    /// The machine row to insert when it is a new machine.
    pub machine: &'a Machine,
    /// The license's match rule; `None`: exact fingerprint id only.
    pub same: Option<&'a SameMachine<'a>>,
    /// The id of the `fingerprint_updated` event, if one is recorded.
    pub event_id: &'a str,
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

/// The machine of `license_id` that `fingerprint` names exactly, or else the first one `same`
/// recognizes, with the components that changed.
pub(super) async fn find_machine(
    tx: &mut Tx,
    license_id: &str,
    fingerprint: &str,
    same: Option<&SameMachine<'_>>,
) -> DbResult<Option<(Machine, Vec<String>)>> {
    let exact: Option<Machine> =
        sqlx::query_as("SELECT * FROM machines WHERE license_id = $1 AND fingerprint = $2")
            .bind(license_id)
            .bind(fingerprint)
            .fetch_optional(&mut **tx)
            .await?;
    if let Some(exact) = exact {
        return Ok(Some((exact, Vec::new())));
    }
    let Some(same) = same else {
        return Ok(None);
    };
    let machines: Vec<Machine> =
        sqlx::query_as("SELECT * FROM machines WHERE license_id = $1 ORDER BY created_at, id")
            .bind(license_id)
            .fetch_all(&mut **tx)
            .await?;
    Ok(machines
        .into_iter()
        .find_map(|m| same(&m).map(|changed| (m, changed))))
}

/// Replaces a stored machine's fingerprint by the presented one (a tolerated hardware change)
/// and records it as a `fingerprint_updated` event. Returns the updated row.
pub(super) async fn update_fingerprint(
    tx: &mut Tx,
    stored: &Machine,
    presented: &Presented<'_>,
    changed: &[String],
) -> DbResult<Machine> {
    let now = presented.machine.last_seen_at;
    sqlx::query(
        "UPDATE machines SET fingerprint = $1, fingerprint_json = $2, last_seen_at = $3          WHERE id = $4",
    )
    .bind(&presented.machine.fingerprint)
    .bind(&presented.machine.fingerprint_json)
    .bind(now)
    .bind(&stored.id)
    .execute(&mut **tx)
    .await?;
    let changed = serde_json::to_string(changed).unwrap_or_else(|_| "[]".into());
    sqlx::query(
        "INSERT INTO machine_events (id, license_id, machine_id, kind, fingerprint,          fingerprint_json, previous_fingerprint, changed, pending, created_at)          VALUES ($1, $2, $3, 'fingerprint_updated', $4, $5, $6, $7, 0, $8)",
    )
    .bind(presented.event_id)
    .bind(&stored.license_id)
    .bind(&stored.id)
    .bind(&presented.machine.fingerprint)
    .bind(&presented.machine.fingerprint_json)
    .bind(&stored.fingerprint)
    .bind(changed)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(Machine {
        fingerprint: presented.machine.fingerprint.clone(),
        fingerprint_json: presented.machine.fingerprint_json.clone(),
        last_seen_at: now,
        ..stored.clone()
    })
}

/// Signs and stores the token binding the license's machines (node-locked), inside `tx`; none
/// left: no token. `Ok(Err(e))` when signing failed (the caller rolls back).
pub(super) async fn store_reissued<E>(
    tx: &mut Tx,
    license_id: &str,
    reissue: &Reissue<'_, E>,
    now: i64,
) -> DbResult<Result<(), E>> {
    let machines: Vec<Machine> =
        sqlx::query_as("SELECT * FROM machines WHERE license_id = $1 ORDER BY created_at, id")
            .bind(license_id)
            .fetch_all(&mut **tx)
            .await?;
    let token = if machines.is_empty() {
        None
    } else {
        match reissue(&machines) {
            Ok(token) => Some(token),
            Err(e) => return Ok(Err(e)),
        }
    };
    sqlx::query("UPDATE licenses SET token = $1, updated_at = $2 WHERE id = $3")
        .bind(token)
        .bind(now)
        .bind(license_id)
        .execute(&mut **tx)
        .await?;
    Ok(Ok(()))
}

/// Whether this activation of a new machine takes a slot freed by a client deactivation, and
/// how: `Ok(None)` no pending slot (a plain activation); `Ok(Some(false))` the slot of this
/// same machine (re-activation: free); `Ok(Some(true))` another machine's (a move: one
/// transfer). The pending event taken is marked taken. `Err(())`: a move, but the license has
/// used all its transfers (nothing changed).
pub(super) async fn take_pending_slot(
    tx: &mut Tx,
    license_id: &str,
    fingerprint: &str,
    same: Option<&SameMachine<'_>>,
    max_transfers: Option<i64>,
) -> DbResult<Result<Option<bool>, ()>> {
    let pending: Vec<MachineEvent> = sqlx::query_as(
        "SELECT * FROM machine_events WHERE license_id = $1 AND kind = 'deactivated'          AND pending = 1 ORDER BY created_at, id",
    )
    .bind(license_id)
    .fetch_all(&mut **tx)
    .await?;
    if pending.is_empty() {
        return Ok(Ok(None));
    }
    let as_machine = |e: &MachineEvent| Machine {
        id: e.machine_id.clone(),
        license_id: e.license_id.clone(),
        fingerprint: e.fingerprint.clone(),
        fingerprint_json: e.fingerprint_json.clone(),
        created_at: e.created_at,
        last_seen_at: e.created_at,
    };
    let same_machine = pending.iter().find(|e| {
        e.fingerprint == fingerprint || same.is_some_and(|same| same(&as_machine(e)).is_some())
    });
    let (taken, moved) = match same_machine {
        Some(event) => (event, false),
        None => {
            let transfers: i64 = sqlx::query_scalar("SELECT transfers FROM licenses WHERE id = $1")
                .bind(license_id)
                .fetch_one(&mut **tx)
                .await?;
            if max_transfers.is_some_and(|max| transfers >= max) {
                return Ok(Err(()));
            }
            sqlx::query("UPDATE licenses SET transfers = transfers + 1 WHERE id = $1")
                .bind(license_id)
                .execute(&mut **tx)
                .await?;
            let Some(oldest) = pending.first() else {
                return Ok(Ok(None));
            };
            (oldest, true)
        }
    };
    sqlx::query("UPDATE machine_events SET pending = 0 WHERE id = $1")
        .bind(&taken.id)
        .execute(&mut **tx)
        .await?;
    Ok(Ok(Some(moved)))
}

impl Db {
    /// Removes a machine and, when `reissue` is given (node-locked), stores the license token
    /// binding the machines left (none left: no token, as before the first activation).
    /// `same` recognizes the machine by the license's match rule when no fingerprint id is
    /// exactly `which`. The removal is recorded as an event `event_id`: `deactivated`
    /// (pending: see [`RemovedBy::Client`]) or `deleted`. `reissue` returning `Err` rolls
    /// everything back.
    #[allow(clippy::too_many_arguments)]
    pub async fn deactivate<E>(
        &self,
        license_id: &str,
        which: MachineRef<'_>,
        same: Option<&SameMachine<'_>>,
        by: RemovedBy,
        event_id: &str,
        reissue: Option<&Reissue<'_, E>>,
        now: i64,
    ) -> Result<Result<Deactivation, E>, sqlx::Error> {
        let _forget = self.licenses.clear_on_drop();
        let mut tx = self.begin_license_write(license_id).await?;
        let machine = match which {
            MachineRef::Fingerprint(fp) => find_machine(&mut tx, license_id, fp, same)
                .await?
                .map(|(m, _)| m),
            MachineRef::Id(id) => {
                sqlx::query_as("SELECT * FROM machines WHERE license_id = $1 AND id = $2")
                    .bind(license_id)
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?
            }
        };
        let Some(machine) = machine else {
            tx.rollback().await?;
            return Ok(Ok(Deactivation::NotFound));
        };
        sqlx::query("DELETE FROM machines WHERE id = $1")
            .bind(&machine.id)
            .execute(&mut *tx)
            .await?;
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
        .bind(license_id)
        .bind(&machine.id)
        .bind(kind)
        .bind(&machine.fingerprint)
        .bind(&machine.fingerprint_json)
        .bind(pending)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if let Some(reissue) = reissue
            && let Err(e) = store_reissued(&mut tx, license_id, reissue, now).await?
        {
            tx.rollback().await?;
            return Ok(Err(e));
        }
        tx.commit().await?;
        Ok(Ok(Deactivation::Done(machine)))
    }

    /// Atomically replaces the machine with fingerprint `from` by the presented machine,
    /// counting one transfer against `max_transfers`; stores the reissued token like
    /// [`Db::activate`]. The presented machine is already activated when a stored one is it
    /// by the match rule.
    pub async fn transfer<E>(
        &self,
        from: &str,
        presented: &Presented<'_>,
        max_transfers: Option<i64>,
        reissue: Option<&Reissue<'_, E>>,
    ) -> Result<Result<Transfer, E>, sqlx::Error> {
        let _forget = self.licenses.clear_on_drop();
        let machine = presented.machine;
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
        if find_machine(&mut tx, license_id, &machine.fingerprint, presented.same)
            .await?
            .is_some()
        {
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
        if let Some(reissue) = reissue
            && let Err(e) = store_reissued(&mut tx, license_id, reissue, machine.created_at).await?
        {
            tx.rollback().await?;
            return Ok(Err(e));
        }
        tx.commit().await?;
        Ok(Ok(Transfer::Done))
    }

    /// Finds the license's machine the presented fingerprint is by the match rule (not by its
    /// exact id, which the caller looked up already) and, when found, stores the presented
    /// fingerprint in its place, records the change and stores the reissued token (node-locked)
    /// in one transaction. `Ok(None)`: no stored machine is it.
    pub async fn recognize_machine<E>(
        &self,
        presented: &Presented<'_>,
        reissue: Option<&Reissue<'_, E>>,
    ) -> Result<Result<Option<Machine>, E>, sqlx::Error> {
        let machine = presented.machine;
        let license_id = &machine.license_id;
        let mut tx = self.begin_license_write(license_id).await?;
        let Some((stored, changed)) =
            find_machine(&mut tx, license_id, &machine.fingerprint, presented.same).await?
        else {
            tx.rollback().await?;
            return Ok(Ok(None));
        };
        if stored.fingerprint == machine.fingerprint {
            // Activated meanwhile under this very id.
            tx.rollback().await?;
            return Ok(Ok(Some(stored)));
        }
        let _forget = self.licenses.clear_on_drop();
        let updated = update_fingerprint(&mut tx, &stored, presented, &changed).await?;
        if let Some(reissue) = reissue
            && let Err(e) =
                store_reissued(&mut tx, license_id, reissue, machine.last_seen_at).await?
        {
            tx.rollback().await?;
            return Ok(Err(e));
        }
        tx.commit().await?;
        Ok(Ok(Some(updated)))
    }

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
