//! The client API, authenticated by license key: activation and validation.

use super::*;

// ---- client API ----------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ActivateRequest {
    license_key: String,
    /// As printed by `licensing-server machine fingerprint --json --product <product id>`.
    fingerprint: MachineFingerprint,
}

/// `POST /v1/client/activate`: binds a machine to the license (refused when the license is
/// suspended, revoked or expired, or its machine limit is reached) and answers a signed
/// `machine+jwt` plus the current license token. Activating the same fingerprint again answers
/// the existing machine (200) instead of a new one (201).
pub(crate) async fn activate(
    State(state): State<AppState>,
    StrictJson(req): StrictJson<ActivateRequest>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    check_fingerprint(&req.fingerprint)?;
    let row = license_by_key(&state, &req.license_key).await?;
    let now = now();
    match issue::effective_status(&state, &row, now)? {
        "suspended" => {
            return Err(ApiError::forbidden(
                "license_suspended",
                "the license is suspended; activation refused",
            ));
        }
        "revoked" => {
            return Err(ApiError::forbidden(
                "license_revoked",
                "the license is revoked; activation refused",
            ));
        }
        "expired" => {
            return Err(ApiError::forbidden(
                "license_expired",
                "the license has expired; activation refused",
            ));
        }
        _ => {}
    }
    let template: serde_json::Map<String, Value> =
        serde_json::from_str(&row.claims).map_err(ApiError::internal)?;
    let machine = Machine {
        id: secrets::new_id("mch").map_err(internal)?,
        license_id: row.id.clone(),
        fingerprint: req.fingerprint.id.clone(),
        fingerprint_json: json_text(&req.fingerprint)?,
        created_at: now,
        last_seen_at: now,
    };
    let reissue = |machines: &[Machine]| -> ApiResult<String> {
        let fingerprints = machines
            .iter()
            .map(issue::machine_fingerprint)
            .collect::<ApiResult<Vec<_>>>()?;
        issue::sign_license(&state, &template, &fingerprints, now)
            .map(|(token, _)| token)
            .map_err(|e| e.context("this machine cannot be bound to the license"))
    };
    let reissue: &Reissue<'_, ApiError> = &reissue;
    let max = issue::max_machines(&template);
    let outcome = state
        .db()
        .activate(
            &machine,
            max,
            issue::is_node_locked(&template).then_some(reissue),
        )
        .await??;
    let (status, machine) = match outcome {
        Activation::Created => (StatusCode::CREATED, machine),
        Activation::Existing(existing) => (StatusCode::OK, existing),
        Activation::LimitReached => {
            return Err(ApiError::conflict(
                "machine_limit_reached",
                format!(
                    "the license allows {} machine(s) and all are activated",
                    max.unwrap_or_default()
                ),
            ));
        }
    };
    let row = get_license_row_unscoped(&state, &row.id).await?;
    let token = row
        .token
        .as_deref()
        .ok_or_else(|| ApiError::internal(format!("license {} has no token", row.id)))?;
    let license = state
        .verifier()
        .verify(token)
        .map_err(|e| ApiError::internal(format!("stored token does not verify: {e}")))?;
    let machine_token = issue::sign_machine_token(&state, &machine, &license, now)?;
    if status == StatusCode::CREATED {
        tracing::info!(license = %row.id, machine = %machine.id, "machine activated");
    }
    Ok((
        status,
        Json(json!({
            "machine_id": machine.id,
            "license_id": row.id,
            "machine_token": machine_token,
            "license_token": token,
        })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ValidateRequest {
    license_key: String,
    /// The machine's fingerprint id.
    fingerprint: String,
    /// A fresh random value from the client, echoed in the signed response.
    nonce: String,
}

/// `POST /v1/client/validate`: a signed `response+jwt` echoing the nonce, with the server
/// time, the license's status (`active`, `suspended`, `revoked`, `expired`, `not_yet_valid`),
/// whether this fingerprint is activated, and the current license token.
pub(crate) async fn validate(
    State(state): State<AppState>,
    StrictJson(req): StrictJson<ValidateRequest>,
) -> ApiResult<Json<Value>> {
    token_field("nonce", &req.nonce, 8, 128)?;
    token_field("fingerprint", &req.fingerprint, 1, 128)?;
    let row = license_by_key(&state, &req.license_key).await?;
    let now = now();
    let machine = state.db().get_machine(&row.id, &req.fingerprint).await?;
    if let Some(machine) = &machine {
        state.db().touch_machine(&machine.id, now).await?;
    }
    let status = issue::effective_status(&state, &row, now)?;
    let response_token = issue::sign_response(
        &state,
        &ValidationAnswer {
            row: &row,
            status,
            fingerprint: &req.fingerprint,
            machine_id: machine.as_ref().map(|m| m.id.as_str()),
            nonce: &req.nonce,
            now,
        },
    )?;
    Ok(Json(json!({ "response_token": response_token })))
}
