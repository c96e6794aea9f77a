//! The client API, authenticated by license key: activation, validation, deactivation and
//! transfer; and the one activation path the offline (air-gapped) activation shares.

use licensing_core::License;
pub(crate) use licensing_core::protocol::{
    ActivateRequest, ActivateResponse, DeactivateRequest, DeactivateResponse, TransferRequest,
    ValidateRequest, ValidateResponse,
};

use super::super::db::{self, MachineRef, RemovedBy};
use super::super::issue::{Answer, HeldTokens, LicenseTemplate, ResponseClaims, Use};
use super::super::machines::{self, SameMachine, Slot};
use super::*;

// ---- shared --------------------------------------------------------------------------------

/// 403 when the license may not take a machine now: suspended, revoked or expired (one not
/// valid yet may: [`Use::Bind`]).
fn refuse_unusable(row: &LicenseRow, now: i64, action: &str) -> ApiResult<()> {
    let outcome = format!("{action} refused");
    issue::refuse_status(&issue::effective_status(row, now)?, Use::Bind, &outcome)
}

fn template_of(row: &LicenseRow) -> ApiResult<LicenseTemplate> {
    LicenseTemplate::of(row)
}

/// The row a presented fingerprint would be inserted as.
fn new_machine_row(
    row: &LicenseRow,
    fingerprint: &MachineFingerprint,
    now: i64,
) -> ApiResult<Machine> {
    Ok(Machine {
        id: secrets::new_id("mch").map_err(internal)?,
        license_id: row.id.clone(),
        fingerprint: fingerprint.id.clone(),
        fingerprint_json: json_text(fingerprint)?,
        created_at: now,
        last_seen_at: now,
    })
}

/// The transfers the license's policy allows (`None`: unlimited).
async fn max_transfers_of(state: &AppState, row: &LicenseRow) -> ApiResult<Option<i64>> {
    Ok(state
        .db()
        .get_policy(&row.organization_id, &row.policy_id)
        .await?
        .and_then(|p| p.max_transfers))
}

/// The optional whole fingerprint of a validation or deactivation: its id must be the
/// request's `fingerprint`.
fn check_presented(presented: Option<&MachineFingerprint>, fingerprint: &str) -> ApiResult<()> {
    if let Some(presented) = presented {
        check_fingerprint(presented)
            .map_err(|e| e.context("`machine` is not a valid fingerprint"))?;
        if presented.id != fingerprint {
            return Err(ApiError::invalid(
                ErrorCode::InvalidField,
                "`machine.id` is not the request's `fingerprint`",
            ));
        }
    }
    Ok(())
}

/// The license's machine that `fingerprint` names exactly or, when the client sent its whole
/// fingerprint (`presented`) and the license has a match rule, the one the rule recognizes:
/// its stored fingerprint is then replaced by the presented one (and the change recorded, and
/// a node-locked token reissued), so the next validation finds it by id again. The flag says
/// whether the machine was updated so (the license row read before is then stale).
async fn find_machine(
    state: &AppState,
    row: &LicenseRow,
    fingerprint: &str,
    presented: Option<&MachineFingerprint>,
    now: i64,
) -> ApiResult<Option<(Machine, bool)>> {
    if let Some(machine) = state.db().get_machine(&row.id, fingerprint).await? {
        return Ok(Some((machine, false)));
    }
    let Some(presented) = presented else {
        return Ok(None);
    };
    let Some(same) = SameMachine::of(row, presented)? else {
        return Ok(None);
    };
    // A read first: a fingerprint that is no machine of the license (a copied store asking
    // again and again) costs no write transaction.
    let machines = state.db().list_machines(&row.id).await?;
    if !machines.iter().any(|m| same.changed(m).is_some()) {
        return Ok(None);
    }
    let template = template_of(row)?;
    let machine = new_machine_row(row, presented, now)?;
    let event_id = secrets::new_id("mev").map_err(internal)?;
    let mut write = state.db().begin_license_change(&row.id).await?;
    let Some((stored, changed)) =
        machines::find(write.tx(), &row.id, &machine.fingerprint, Some(&same)).await?
    else {
        return Ok(None);
    };
    let found = if stored.fingerprint == machine.fingerprint {
        // Activated meanwhile under this very id.
        Some(stored)
    } else {
        let updated =
            db::update_fingerprint(write.tx(), &stored, &machine, &event_id, &changed).await?;
        machines::store_bound_token(write.tx(), state, &template, &row.id, now).await?;
        write.commit().await?;
        Some(updated)
    };
    if let Some(found) = &found {
        tracing::info!(
            license = %row.id,
            machine = %found.id,
            "machine fingerprint updated within tolerance"
        );
    }
    Ok(found.map(|m| (m, true)))
}

/// The machines a license token binds: all of them for a node-locked license, none otherwise
/// (saves the query).
async fn bound_machines(state: &AppState, row: &LicenseRow) -> ApiResult<Vec<Machine>> {
    if issue::parsed_template(row)?.node_locked {
        Ok(state.db().list_machines(&row.id).await?)
    } else {
        Ok(Vec::new())
    }
}

/// An activated machine: whether it is new (201) or was already activated (200), and the
/// license as stored after the activation.
pub(crate) struct Activated {
    /// 201 for a new machine, 200 for one already activated.
    pub status: StatusCode,
    /// The machine.
    pub machine: Machine,
    /// The license after the activation.
    pub row: LicenseRow,
    /// The machine's deactivation key (offline deactivation receipts are MAC'd with it).
    pub deactivation_key: Option<String>,
}

/// Activates `fingerprint` on the license (replacing the machine `transfer_from` when given):
/// the one activation path of `/v1/client/activate`, `/v1/client/transfer` and offline
/// activation (API and CLI).
pub(crate) async fn activate_machine(
    state: &AppState,
    row: &LicenseRow,
    fingerprint: &MachineFingerprint,
    transfer_from: Option<&str>,
    now: i64,
) -> ApiResult<Activated> {
    check_fingerprint(fingerprint)?;
    let action = if transfer_from.is_some() {
        "transfer"
    } else {
        "activation"
    };
    refuse_unusable(row, now, action)?;
    let template = template_of(row)?;
    let machine = new_machine_row(row, fingerprint, now)?;
    let event_id = secrets::new_id("mev").map_err(internal)?;
    let same = SameMachine::of(row, fingerprint)?;
    let max_transfers = max_transfers_of(state, row).await?;
    let transfer_limit = || {
        ApiError::conflict(
            ErrorCode::TransferLimitReached,
            format!(
                "the license allows {} transfer(s) and all are used",
                max_transfers.unwrap_or_default()
            ),
        )
    };
    // One write transaction: concurrent writers of the license queue, so the machine limit
    // holds and a node-locked token binds every machine. Every early return drops it (rolls
    // back); only the final commit stores anything.
    let mut write = state.db().begin_license_change(&row.id).await?;
    let tx = write.tx();
    let (status, machine) = match transfer_from {
        None => {
            let existing = machines::find(tx, &row.id, &machine.fingerprint, same.as_ref()).await?;
            match existing {
                // Activated already: the same id, or another one within tolerance (its
                // fingerprint updated and recorded).
                Some((existing, _)) if existing.fingerprint == machine.fingerprint => {
                    db::touch_machine(tx, &existing.id, machine.last_seen_at).await?;
                    (StatusCode::OK, existing)
                }
                Some((existing, changed)) => {
                    let updated =
                        db::update_fingerprint(tx, &existing, &machine, &event_id, &changed)
                            .await?;
                    machines::store_bound_token(tx, state, &template, &row.id, now).await?;
                    (StatusCode::OK, updated)
                }
                None => {
                    let max = template.max_machines();
                    let count = db::machine_count(tx, &row.id).await?;
                    if max.is_some_and(|max| count >= max) {
                        return Err(ApiError::conflict(
                            ErrorCode::MachineLimitReached,
                            format!(
                                "the license allows {} machine(s) and all are activated",
                                max.unwrap_or_default()
                            ),
                        ));
                    }
                    let slot = machines::take_pending_slot(
                        tx,
                        &row.id,
                        &machine.fingerprint,
                        same.as_ref(),
                        max_transfers,
                    )
                    .await?;
                    if slot == Slot::TransferLimitReached {
                        return Err(transfer_limit().context(
                            "activating another machine after a deactivation is a transfer",
                        ));
                    }
                    db::insert_machine(tx, &machine).await?;
                    machines::store_bound_token(tx, state, &template, &row.id, now).await?;
                    (StatusCode::CREATED, machine)
                }
            }
        }
        Some(from) => {
            let Some(old) = db::machine_by_fingerprint(tx, &row.id, from).await? else {
                return Err(ApiError::not_found(
                    ErrorCode::MachineNotFound,
                    "`from_fingerprint` is not activated on this license",
                ));
            };
            if machines::find(tx, &row.id, &machine.fingerprint, same.as_ref())
                .await?
                .is_some()
            {
                return Err(ApiError::conflict(
                    ErrorCode::MachineAlreadyActivated,
                    "the new machine is already activated on this license",
                ));
            }
            let transfers = db::transfers_used(tx, &row.id).await?;
            if max_transfers.is_some_and(|max| transfers >= max) {
                return Err(transfer_limit());
            }
            db::delete_machine(tx, &old.id).await?;
            db::insert_machine(tx, &machine).await?;
            db::add_transfer(tx, &row.id, Some(machine.created_at)).await?;
            // A named seat assigned to the old machine moves with it.
            db::follow_device_in(tx, &row.id, &old.id, &machine.id, now).await?;
            machines::store_bound_token(tx, state, &template, &row.id, now).await?;
            (StatusCode::CREATED, machine)
        }
    };
    write.commit().await?;
    if status == StatusCode::CREATED {
        tracing::info!(license = %row.id, machine = %machine.id, action, "machine activated");
    }
    let new_key = secrets::new_deactivation_key().map_err(internal)?;
    let deactivation_key = state
        .db()
        .ensure_deactivation_key(&machine.id, &new_key)
        .await?;
    let row = get_license_row_unscoped(state, &row.id).await?;
    Ok(Activated {
        status,
        machine,
        row,
        deactivation_key,
    })
}

// ---- activate and transfer -------------------------------------------------------------------

/// A named license admits only its assignees (`seat_policy`): `user`, or the machine
/// `fingerprint` names when it is activated and an assigned device (a transfer, which names no
/// user, moves an assigned device's activation and its assignment). A floating license reads
/// nothing.
async fn admit_named(
    state: &AppState,
    row: &LicenseRow,
    user: Option<&str>,
    fingerprint: &str,
    now: i64,
) -> ApiResult<()> {
    if !seat_policy::is_named(row) {
        return Ok(());
    }
    let machine = state.db().get_machine(&row.id, fingerprint).await?;
    let machine_id = machine.as_ref().map(|m| m.id.as_str());
    seat_policy::admit(state, row, user, machine_id, now).await
}

async fn activation_answer(
    state: &AppState,
    activated: Activated,
    now: i64,
) -> ApiResult<(StatusCode, Json<ActivateResponse>)> {
    let machines = bound_machines(state, &activated.row).await?;
    let (license_token, license): (String, License) =
        issue::fresh_license_token(state, &activated.row, &machines, now)?;
    let machine_token = issue::sign_machine_token(state, &activated.machine, &license, now)?;
    Ok((
        activated.status,
        Json(ActivateResponse {
            machine_id: activated.machine.id,
            license_id: activated.row.id,
            machine_token,
            license_token: Some(license_token),
            deactivation_key: activated.deactivation_key,
        }),
    ))
}

/// `POST /v1/client/activate`: binds a machine to the license (refused when the license is
/// suspended, revoked or expired, or its machine limit is reached) and answers a signed
/// `machine+jwt` plus a freshly signed license token. Activating the same fingerprint again
/// answers the existing machine (200) instead of a new one (201).
#[utoipa::path(post, path = "/v1/client/activate", tag = TAG_CLIENT, request_body = ActivateRequest,
    responses((status = 201, description = "A new machine", body = ActivateResponse),
        (status = 200, description = "The machine was activated already", body = ActivateResponse),
        (status = 403, description = "The license is suspended, revoked or expired", body = ErrorBody),
        (status = 404, description = "No license has this key", body = ErrorBody),
        (status = 409, description = "The machine limit is reached", body = ErrorBody),
        BodyErrors, RateLimited))]
pub(crate) async fn activate(
    State(state): State<AppState>,
    StrictJson(req): StrictJson<ActivateRequest>,
) -> ApiResult<(StatusCode, Json<ActivateResponse>)> {
    check_fingerprint(&req.fingerprint)?;
    if let Some(user) = &req.user {
        DisplayName::check("user", user)?;
    }
    let row = license_by_key(&state, &req.license_key, RateLimit::Apply).await?;
    let now = now();
    if let Some(user) = &req.user {
        let link = state
            .db()
            .directory_link(&row.organization_id, user)
            .await?;
        seat_policy::refuse_deactivated(link.as_ref())?;
    }
    admit_named(&state, &row, req.user.as_deref(), &req.fingerprint.id, now).await?;
    let activated = activate_machine(&state, &row, &req.fingerprint, None, now).await?;
    if let Some(user) = &req.user {
        link_machine(&state, &row, &activated.machine.id, user).await?;
    }
    activation_answer(&state, activated, now).await
}

/// Links machine `machine_id` of license `row` to the user an activation or validation named:
/// `machines.user_name`, and `machines.user_id` when a directory user of the license's
/// organization has that name (see `db::directory_links`; no write when this process linked
/// it so already).
async fn link_machine(
    state: &AppState,
    row: &LicenseRow,
    machine_id: &str,
    user: &str,
) -> ApiResult<()> {
    let user_id = state
        .db()
        .directory_user_id(&row.organization_id, user)
        .await?;
    state
        .db()
        .link_machine(machine_id, user_id.as_deref(), user)
        .await?;
    Ok(())
}

/// `POST /v1/client/transfer`: deactivates `from_fingerprint` and activates `fingerprint` in
/// one transaction (both or neither), counting one transfer against the policy's
/// `max_transfers`. Answers like an activation (201).
#[utoipa::path(post, path = "/v1/client/transfer", tag = TAG_CLIENT, request_body = TransferRequest,
    responses((status = 201, description = "Transferred", body = ActivateResponse),
        (status = 403, description = "The license is suspended, revoked or expired", body = ErrorBody),
        (status = 404, description = "No license has this key, or `from_fingerprint` is not activated", body = ErrorBody),
        (status = 409, description = "The new machine is activated already, or the transfer limit is reached", body = ErrorBody),
        BodyErrors, RateLimited))]
pub(crate) async fn transfer(
    State(state): State<AppState>,
    StrictJson(req): StrictJson<TransferRequest>,
) -> ApiResult<(StatusCode, Json<ActivateResponse>)> {
    token_field("from_fingerprint", &req.from_fingerprint, 1, 128)?;
    check_fingerprint(&req.fingerprint)?;
    if req.from_fingerprint == req.fingerprint.id {
        return Err(ApiError::invalid(
            ErrorCode::InvalidField,
            "`fingerprint` is the machine named by `from_fingerprint`",
        ));
    }
    let row = license_by_key(&state, &req.license_key, RateLimit::Apply).await?;
    let now = now();
    admit_named(&state, &row, None, &req.from_fingerprint, now).await?;
    let activated = activate_machine(
        &state,
        &row,
        &req.fingerprint,
        Some(&req.from_fingerprint),
        now,
    )
    .await?;
    activation_answer(&state, activated, now).await
}

// ---- deactivate ------------------------------------------------------------------------------

/// Removes a machine from a license (client or admin API): frees its slot and, for a
/// node-locked license, reissues the stored token without it. `presented`: the client's whole
/// fingerprint, to find the machine by the match rule. A client's deactivation leaves its slot
/// pending: activating another machine in it counts as a transfer. 404 `machine_not_found`.
pub(crate) async fn deactivate_machine(
    state: &AppState,
    row: &LicenseRow,
    which: MachineRef<'_>,
    presented: Option<&MachineFingerprint>,
    by: RemovedBy,
) -> ApiResult<DeactivateResponse> {
    let now = now();
    let template = template_of(row)?;
    let same = match presented {
        Some(presented) => SameMachine::of(row, presented)?,
        None => None,
    };
    let event_id = secrets::new_id("mev").map_err(internal)?;
    let mut write = state.db().begin_license_change(&row.id).await?;
    let tx = write.tx();
    let machine = match which {
        MachineRef::Fingerprint(fp) => machines::find(tx, &row.id, fp, same.as_ref())
            .await?
            .map(|(m, _)| m),
        MachineRef::Id(id) => db::machine_by_id(tx, &row.id, id).await?,
    };
    let Some(machine) = machine else {
        return Err(ApiError::not_found(
            ErrorCode::MachineNotFound,
            "no such machine is activated on this license",
        ));
    };
    db::delete_machine(tx, &machine.id).await?;
    db::insert_removal_event(tx, &event_id, &machine, by, now).await?;
    machines::store_bound_token(tx, state, &template, &row.id, now).await?;
    write.commit().await?;
    tracing::info!(license = %row.id, machine = %machine.id, "machine deactivated");
    Ok(DeactivateResponse {
        deactivated: true,
        machine_id: Some(machine.id),
    })
}

/// `POST /v1/client/deactivate`.
#[utoipa::path(post, path = "/v1/client/deactivate", tag = TAG_CLIENT,
    request_body = DeactivateRequest,
    responses((status = 200, description = "Deactivated", body = DeactivateResponse),
        (status = 404, description = "No license has this key, or no such machine", body = ErrorBody),
        BodyErrors, RateLimited))]
pub(crate) async fn deactivate(
    State(state): State<AppState>,
    StrictJson(req): StrictJson<DeactivateRequest>,
) -> ApiResult<Json<DeactivateResponse>> {
    token_field("fingerprint", &req.fingerprint, 1, 128)?;
    check_presented(req.machine.as_ref(), &req.fingerprint)?;
    let row = license_by_key(&state, &req.license_key, RateLimit::Apply).await?;
    let answer = deactivate_machine(
        &state,
        &row,
        MachineRef::Fingerprint(&req.fingerprint),
        req.machine.as_ref(),
        RemovedBy::Client,
    )
    .await?;
    Ok(Json(answer))
}

// ---- validate --------------------------------------------------------------------------------

/// The signed claims about a license and one machine at `now` (validation and offline
/// activation). Tokens named in `held` that are still current are not signed again.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn answer_claims(
    state: &AppState,
    row: &LicenseRow,
    fingerprint: &str,
    machine: Option<&Machine>,
    nonce: &str,
    now: i64,
    ttl: i64,
    held: Option<&HeldTokens>,
) -> ApiResult<ResponseClaims> {
    let status = issue::effective_status(row, now)?;
    issue::response_claims(
        state,
        &Answer {
            row,
            status,
            fingerprint,
            machine,
            nonce,
            now,
            held,
        },
        || bound_machines(state, row),
        ttl,
    )
    .await
}

/// `POST /v1/client/validate`: a signed `response+jwt` echoing the nonce, with the server
/// time, the license's status (`active`, `suspended`, `revoked`, `expired`, `not_yet_valid`),
/// whether this fingerprint is activated, and — when the license is active (node-locked: and
/// this machine activated) — a freshly signed license token (its `lic.check_in.until` moved
/// forward) and machine token, each unless the client's `held` one is still current (issued
/// after the license's last change by the current key, and less than half a check-in
/// interval ago).
#[utoipa::path(post, path = "/v1/client/validate", tag = TAG_CLIENT, request_body = ValidateRequest,
    responses((status = 200, description = "A signed `response+jwt`", body = ValidateResponse),
        (status = 404, description = "No license has this key", body = ErrorBody),
        BodyErrors, RateLimited))]
pub(crate) async fn validate(
    State(state): State<AppState>,
    StrictJson(req): StrictJson<ValidateRequest>,
) -> ApiResult<Json<ValidateResponse>> {
    token_field("nonce", &req.nonce, 8, 128)?;
    token_field("fingerprint", &req.fingerprint, 1, 128)?;
    if let Some(held) = &req.held {
        // Field names as literals: nothing is formatted on this hot path unless it fails.
        for (token, sub, kid) in [
            (&held.license, "held.license.sub", "held.license.kid"),
            (&held.machine, "held.machine.sub", "held.machine.kid"),
        ] {
            if let Some(token) = token {
                token_field(sub, &token.sub, 1, 128)?;
                token_field(kid, &token.kid, 1, 128)?;
            }
        }
    }
    check_presented(req.machine.as_ref(), &req.fingerprint)?;
    if let Some(user) = &req.user {
        DisplayName::check("user", user)?;
    }
    let mut row = license_by_key(&state, &req.license_key, RateLimit::Apply).await?;
    let now = now();
    let found = find_machine(&state, &row, &req.fingerprint, req.machine.as_ref(), now).await?;
    let machine = match found {
        Some((machine, updated)) => {
            if updated {
                // Its node-locked token was reissued: answer from the row as it is now.
                row = std::sync::Arc::new(get_license_row_unscoped(&state, &row.id).await?);
            }
            state.db().touch_machine(&machine, now).await?;
            if let Some(user) = &req.user {
                link_machine(&state, &row, &machine.id, user).await?;
            }
            Some(machine)
        }
        None => None,
    };
    // A named license admits only its assignees (a floating one: nothing is read).
    let machine_id = machine.as_ref().map(|m| m.id.as_str());
    seat_policy::admit(&state, &row, req.user.as_deref(), machine_id, now).await?;
    let claims = answer_claims(
        &state,
        &row,
        &req.fingerprint,
        machine.as_ref(),
        &req.nonce,
        now,
        issue::RESPONSE_TTL_SECS,
        req.held.as_ref(),
    )
    .await?;
    Ok(Json(ValidateResponse {
        response_token: issue::sign_response(&state, &claims)?,
    }))
}
