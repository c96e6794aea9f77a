//! The machine rules every handler that writes a license's machines shares (activation,
//! transfer, deactivation, validation after a tolerated hardware change, offline activation):
//! which stored machine a presented fingerprint is (the core's `fingerprint::matches`), whether
//! taking a freed slot counts as a transfer, and the node-locked token that binds the license's
//! machines. They run inside the handler's transaction (`Db::begin_license_change`) through
//! the `db` query functions; the `db` layer itself only runs SQL.

use licensing_core::MachineFingerprint;
use licensing_core::claims::MatchPolicy;
use licensing_core::fingerprint::{self, MatchOutcome};

use super::AppState;
use super::db::{self, DbResult, LicenseRow, Machine, MachineEvent, Tx};
use super::error::ApiResult;
use super::issue::{self, LicenseTemplate};

/// The license's match rule applied to a presented fingerprint: whether a stored machine is
/// it, and which components changed.
pub(crate) struct SameMachine<'a> {
    policy: &'a MatchPolicy,
    presented: &'a MachineFingerprint,
}

impl<'a> SameMachine<'a> {
    /// The rule of `row` for `presented`; `None` when the license has no match rule (exact
    /// fingerprint id only).
    pub fn of(row: &'a LicenseRow, presented: &'a MachineFingerprint) -> ApiResult<Option<Self>> {
        Ok(issue::parsed_template(row)?
            .match_policy()
            .map(|policy| SameMachine { policy, presented }))
    }

    /// `Some(changed component names)` when `stored` is the presented machine (empty: nothing
    /// changed), `None` when it is another machine.
    pub fn changed(&self, stored: &Machine) -> Option<Vec<String>> {
        let stored = issue::machine_fingerprint(stored).ok()?;
        match fingerprint::matches(Some(self.policy), &stored, self.presented) {
            MatchOutcome::Exact => Some(Vec::new()),
            MatchOutcome::Tolerated { changed } => Some(changed),
            MatchOutcome::Different { .. } => None,
        }
    }
}

/// The machine of `license_id` that `fingerprint` names exactly, or else the first one `same`
/// recognizes, with the components that changed.
pub(crate) async fn find(
    tx: &mut Tx,
    license_id: &str,
    fingerprint: &str,
    same: Option<&SameMachine<'_>>,
) -> DbResult<Option<(Machine, Vec<String>)>> {
    if let Some(exact) = db::machine_by_fingerprint(tx, license_id, fingerprint).await? {
        return Ok(Some((exact, Vec::new())));
    }
    let Some(same) = same else {
        return Ok(None);
    };
    Ok(db::machines_of(tx, license_id)
        .await?
        .into_iter()
        .find_map(|m| same.changed(&m).map(|changed| (m, changed))))
}

/// Whether activating a new machine takes a slot a client deactivation freed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    /// No pending slot: a plain activation.
    Free,
    /// The slot this same machine freed (a re-activation: no transfer).
    Reactivated,
    /// Another machine's slot (a move): one transfer counted.
    Moved,
    /// A move, but the license has used all its transfers (nothing changed).
    TransferLimitReached,
}

/// Takes the pending slot of a client deactivation, if any, for the machine `fingerprint`
/// (recognized by `same` too), counting a move against `max_transfers`. The pending event
/// taken is marked taken.
pub(crate) async fn take_pending_slot(
    tx: &mut Tx,
    license_id: &str,
    fingerprint: &str,
    same: Option<&SameMachine<'_>>,
    max_transfers: Option<i64>,
) -> DbResult<Slot> {
    let pending = db::pending_deactivations(tx, license_id).await?;
    let as_machine = |e: &MachineEvent| Machine {
        id: e.machine_id.clone(),
        license_id: e.license_id.clone(),
        fingerprint: e.fingerprint.clone(),
        fingerprint_json: e.fingerprint_json.clone(),
        created_at: e.created_at,
        last_seen_at: e.created_at,
    };
    let same_machine = pending.iter().find(|e| {
        e.fingerprint == fingerprint
            || same.is_some_and(|same| same.changed(&as_machine(e)).is_some())
    });
    let (taken, slot) = match same_machine {
        Some(event) => (event, Slot::Reactivated),
        None => {
            let Some(oldest) = pending.first() else {
                return Ok(Slot::Free);
            };
            let transfers = db::transfers_used(tx, license_id).await?;
            if max_transfers.is_some_and(|max| transfers >= max) {
                return Ok(Slot::TransferLimitReached);
            }
            db::add_transfer(tx, license_id, None).await?;
            (oldest, Slot::Moved)
        }
    };
    db::take_pending(tx, &taken.id).await?;
    Ok(slot)
}

/// Signs a node-locked license's token for `machines`. The stored token is always signed by
/// the current key, whatever the client of the request trusts (a retire re-signs only the
/// tokens of the key it retires); the answer to the client is signed apart, in its scope.
pub(crate) fn sign_bound_token(
    state: &AppState,
    template: &LicenseTemplate,
    machines: &[Machine],
    now: i64,
) -> ApiResult<String> {
    let fingerprints = machines
        .iter()
        .map(issue::machine_fingerprint)
        .collect::<ApiResult<Vec<_>>>()?;
    super::with_current_key(|| issue::sign_license(state, template, &fingerprints, now))
        .map(|(token, _)| token)
        .map_err(|e| e.context("this machine cannot be bound to the license"))
}

/// When the license is node-locked, signs and stores, inside `tx`, the token binding its
/// machines as they are now (none left: no token). A signing error is returned before
/// anything is stored; the caller's dropped transaction rolls the rest back.
pub(crate) async fn store_bound_token(
    tx: &mut Tx,
    state: &AppState,
    template: &LicenseTemplate,
    license_id: &str,
    now: i64,
) -> ApiResult<()> {
    if !template.is_node_locked() {
        return Ok(());
    }
    let machines = db::machines_of(tx, license_id).await?;
    let token = if machines.is_empty() {
        None
    } else {
        Some(sign_bound_token(state, template, &machines, now)?)
    };
    db::set_license_token(tx, license_id, token.as_deref(), now).await?;
    Ok(())
}
