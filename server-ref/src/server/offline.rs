//! Air-gapped activation. The client writes a request file (license key, fingerprint, nonce);
//! the vendor turns it into a signed response file, through the admin API
//! (`POST /v1/offline/activate`) or the CLI (`licensing-server offline activate`), both with
//! [`offline_activate`], which activates like `/v1/client/activate` (same code path).
//!
//! Air-gapped deactivation, the other way: the machine removes its license and writes a
//! receipt MAC'd with its deactivation key ([`licensing_core::deactivation`]); the vendor
//! frees the machine's slot with it, through the admin API (`POST /v1/offline/deactivate`)
//! or the CLI (`licensing-server offline deactivate`), both with [`offline_deactivate`], which
//! removes the machine like `/v1/client/deactivate` (same code path).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use axum::Json;
use axum::extract::State;
use licensing_core::claims::MAX_TIMESTAMP;

use super::audit;
use super::config::{DatabaseArgs, ServeArgs, Settings, StoreArgs};
use super::db::NewAuditEntry;
use super::db::{MachineRef, RemovedBy};
use super::error::{ApiError, ApiResult};
use super::extract::{self, Action, Caller, StrictJson};
use super::routes::{
    DeactivateResponse, RateLimit, activate_machine, answer_claims, check_fingerprint,
    deactivate_machine, get_license_row_unscoped, license_by_key, token_field,
};
use super::{AppState, issue, now};
use licensing_core::deactivation::ReceiptError;
use licensing_core::protocol::ErrorCode;

/// The request file, written by the client on the air-gapped machine, and the response file
/// carried back to it: the protocol's own types.
pub(crate) use licensing_core::protocol::{
    OFFLINE_FILE_VERSION as FILE_VERSION, OFFLINE_REQUEST_KIND as REQUEST_KIND,
    OfflineRequest as OfflineActivationRequest, OfflineResponse as OfflineActivationResponse,
};

/// Checks the request, activates the machine (the rules of `/v1/client/activate`) and signs
/// the response. `organization` is the admin API caller's: a license of another organization
/// is answered as unknown. The command line (the operator, on the server's own machine) passes
/// `None`.
pub(crate) async fn offline_activate(
    state: &AppState,
    req: &OfflineActivationRequest,
    organization: Option<&str>,
) -> ApiResult<OfflineActivationResponse> {
    if req.kind != REQUEST_KIND {
        return Err(ApiError::invalid(
            ErrorCode::InvalidField,
            format!("`kind` must be `{REQUEST_KIND}`"),
        ));
    }
    if req.version != FILE_VERSION {
        return Err(ApiError::invalid(
            ErrorCode::UnsupportedVersion,
            format!(
                "request version {} is not supported (only {FILE_VERSION})",
                req.version
            ),
        ));
    }
    token_field("nonce", &req.nonce, 16, 128)?;
    check_fingerprint(&req.fingerprint)?;
    if !(0..=MAX_TIMESTAMP).contains(&req.created_at) {
        return Err(ApiError::invalid(
            ErrorCode::InvalidField,
            "`created_at` is not a time in Unix seconds",
        ));
    }
    let row = license_by_key(state, &req.license_key, RateLimit::Skip).await?;
    if organization.is_some_and(|org| org != row.organization_id) {
        return Err(ApiError::not_found(
            ErrorCode::LicenseNotFound,
            "no license has this key",
        ));
    }
    let now = now();
    let activated = activate_machine(state, &row, &req.fingerprint, None, now).await?;
    let mut claims = answer_claims(
        state,
        &activated.row,
        &req.fingerprint.id,
        Some(&activated.machine),
        &req.nonce,
        now,
        issue::OFFLINE_RESPONSE_TTL_SECS,
        None,
    )
    .await?;
    claims.offline = Some(true);
    claims.deactivation_key = activated.deactivation_key.clone();
    tracing::info!(license = %row.id, machine = %activated.machine.id, "offline activation");
    Ok(OfflineActivationResponse::new(issue::sign_response(
        state, &claims,
    )?))
}

/// `POST /v1/offline/activate` (admin API, IT staff and up): request file in, response file out.
#[utoipa::path(post, path = "/v1/offline/activate", tag = super::openapi::TAG_ADMIN,
    security(("api_token" = [])),
    request_body = OfflineActivationRequest,
    responses((status = 200, description = "The response file", body = OfflineActivationResponse),
        (status = 403, description = "The role may not, or the license is suspended, revoked or expired", body = super::openapi::ErrorBody),
        (status = 404, description = "No license has this key", body = super::openapi::ErrorBody),
        (status = 409, description = "The machine limit is reached", body = super::openapi::ErrorBody),
        super::openapi::AdminErrors, super::openapi::BodyErrors))]
pub(crate) async fn activate_handler(
    caller: Caller,
    State(state): State<AppState>,
    StrictJson(req): StrictJson<OfflineActivationRequest>,
) -> ApiResult<Json<OfflineActivationResponse>> {
    caller.require(Action::Operate)?;
    Ok(Json(
        offline_activate(&state, &req, Some(&caller.organization_id)).await?,
    ))
}

/// `licensing-server offline activate` options.
#[derive(clap::Args, Debug)]
pub struct OfflineActivateArgs {
    /// The request file the client wrote.
    #[arg(long)]
    pub request: PathBuf,
    /// Where to write the response file; default stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The server's data directory, database and signing key.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Runs `offline activate` on the server's database: exit 0 with the response file written,
/// 1 when the activation is refused (license suspended, revoked, expired or unknown, machine
/// limit), 2 for usage errors (unreadable or invalid request file, unusable store).
pub fn run_offline_activate(args: OfflineActivateArgs) -> ExitCode {
    run_cli(|| offline_cli(&args))
}

/// A CLI failure: exit code and message.
type CliError = (u8, String);

/// The exit of an offline command the server's function refused: a file the server cannot use
/// is a usage error (2); a refusal by a licensing rule (or an unknown license or machine) is
/// the negative answer (1).
fn refusal_or_usage(e: ApiError) -> CliError {
    (e.cli_exit_code(), format!("{} ({})", e.detail(), e.code()))
}

/// Runs an offline command on a fresh runtime: exit 0, or the failure's code and message.
fn run_cli<F: std::future::Future<Output = Result<(), CliError>>>(
    command: impl FnOnce() -> F,
) -> ExitCode {
    super::init_logging("warn");
    let result = super::runtime()
        .map_err(usage)
        .and_then(|rt| rt.block_on(command()));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, message)) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

fn usage(message: impl Into<String>) -> CliError {
    (2, message.into())
}

async fn offline_cli(args: &OfflineActivateArgs) -> Result<(), CliError> {
    let bytes = read_request(&args.request)?;
    let req: OfflineActivationRequest = extract::parse_strict(&bytes).map_err(|e| {
        usage(format!(
            "{}: {} ({})",
            args.request.display(),
            e.detail(),
            e.code()
        ))
    })?;
    let settings = Settings::resolve(ServeArgs {
        store: args.store.clone(),
        ..ServeArgs::default()
    })
    .map_err(usage)?;
    // The server's existing store: a mistyped --data-dir is refused, never created.
    let db = super::open_existing_store(&settings, super::db::Schema::MigrateExisting)
        .await
        .map_err(usage)?;
    if settings.signing_key.is_some() {
        super::ensure_signing_key(&db, &settings)
            .await
            .map_err(usage)?;
    }
    let state = AppState::new(db.clone(), settings.issuer, u32::MAX)
        .await
        .map_err(usage)?;
    let outcome = offline_activate(&state, &req, None).await;
    if outcome.is_ok() {
        record_cli_activation(&state, &req).await;
    }
    db.close().await;
    let response = outcome.map_err(refusal_or_usage)?;
    let mut text = serde_json::to_string_pretty(&response)
        .map_err(|e| usage(format!("encoding the response: {e}")))?;
    text.push('\n');
    match &args.out {
        Some(path) => {
            std::fs::write(path, text).map_err(|e| usage(format!("{}: {e}", path.display())))?
        }
        None => {
            use std::io::Write as _;
            std::io::stdout()
                .lock()
                .write_all(text.as_bytes())
                .map_err(|e| usage(format!("stdout: {e}")))?;
        }
    }
    Ok(())
}

/// Appends the CLI's activation to the audit trail (actor `cli`, the license's organization,
/// action `cli offline activate`, target the license id, status 200 as the HTTP route would
/// answer), after the activation committed: a crash between the two loses the entry, and a
/// failed append is logged while the response file is still written.
async fn record_cli_activation(state: &AppState, req: &OfflineActivationRequest) {
    let row = match license_by_key(state, &req.license_key, RateLimit::Skip).await {
        Ok(row) => row,
        Err(e) => {
            tracing::error!(error = %e.detail(), "audit entry not written: license not read");
            return;
        }
    };
    let entry = NewAuditEntry {
        at: now(),
        organization_id: Some(row.organization_id.clone()),
        actor: audit::CLI_ACTOR.to_owned(),
        action: "cli offline activate".to_owned(),
        target: row.id.clone(),
        status: 200,
    };
    audit::append_or_log(state.db(), &entry).await;
    // The client event of the same change, queued to the writer: written before the CLI exits.
    state.audit().flush().await;
}

/// Reads the request file, refusing one larger than an API request body may be.
fn read_request(path: &Path) -> Result<Vec<u8>, CliError> {
    use crate::cli_input::{Source, read_capped};
    read_capped(
        "--request",
        Source::File(path),
        extract::MAX_BODY_BYTES as u64,
    )
    .map_err(usage)
}

// ---- offline deactivation ----------------------------------------------------------------

/// The receipt file an air-gapped machine writes when it deactivates itself (docs/FORMAT.md,
/// "Offline deactivation receipt"): the protocol's own type.
pub(crate) use licensing_core::protocol::DeactivationReceipt as OfflineDeactivationReceipt;

/// Checks a receipt and removes the machine it names (the rules and the code path of
/// `/v1/client/deactivate`). `organization` is the admin API caller's: a license of another
/// organization is answered as unknown; the command line passes `None`. Refusals: 422 a
/// malformed receipt, 404 `license_not_found`, 404 `machine_not_found` (never activated, or
/// already freed: a receipt works once), 409 `no_deactivation_key` (activated before keys
/// existed), 403 `invalid_receipt` (the MAC does not verify under that machine's key).
pub(crate) async fn offline_deactivate(
    state: &AppState,
    req: &OfflineDeactivationReceipt,
    organization: Option<&str>,
) -> ApiResult<DeactivateResponse> {
    let receipt = req;
    receipt.check_fields().map_err(|e| match e {
        ReceiptError::Malformed(detail) => ApiError::invalid(ErrorCode::InvalidField, detail),
        other => ApiError::invalid(ErrorCode::InvalidField, other.to_string()),
    })?;
    let unknown = || ApiError::not_found(ErrorCode::LicenseNotFound, "no such license");
    let row = match get_license_row_unscoped(state, &receipt.license_id).await {
        Ok(row) => row,
        Err(e) if e.status() == axum::http::StatusCode::NOT_FOUND => return Err(unknown()),
        Err(e) => return Err(e),
    };
    if organization.is_some_and(|org| org != row.organization_id) {
        return Err(unknown());
    }
    let key = match state
        .db()
        .deactivation_key(&row.id, &receipt.machine_id)
        .await?
    {
        None => {
            return Err(ApiError::not_found(
                ErrorCode::MachineNotFound,
                "no such machine is activated on this license (never activated, or already \
                 deactivated: a receipt frees its machine once)",
            ));
        }
        Some(None) => {
            return Err(ApiError::conflict(
                ErrorCode::NoDeactivationKey,
                "this machine was activated before offline deactivation existed; remove it \
                 with DELETE /v1/licenses/{id}/machines/{machine_id}",
            ));
        }
        Some(Some(key)) => key,
    };
    if receipt.verify_mac(&key).is_err() {
        tracing::warn!(license = %row.id, machine = %receipt.machine_id, "offline deactivation receipt refused: MAC");
        return Err(ApiError::forbidden(
            ErrorCode::InvalidReceipt,
            "the receipt's MAC does not verify: forged, altered, or made for another machine",
        ));
    }
    // The machine freed itself, like a client deactivation: taking its slot with another
    // machine counts as a transfer.
    let answer = deactivate_machine(
        state,
        &row,
        MachineRef::Id(&receipt.machine_id),
        None,
        RemovedBy::Client,
    )
    .await?;
    tracing::info!(license = %row.id, machine = answer.machine_id.as_deref().unwrap_or_default(), "offline deactivation");
    Ok(answer)
}

/// `POST /v1/offline/deactivate` (admin API, IT staff and up): an air-gapped machine's
/// deactivation receipt in, its slot freed.
#[utoipa::path(post, path = "/v1/offline/deactivate", tag = super::openapi::TAG_ADMIN,
    security(("api_token" = [])),
    request_body = OfflineDeactivationReceipt,
    responses((status = 200, description = "The machine was removed", body = DeactivateResponse),
        (status = 403, description = "The role may not, or the receipt's MAC does not verify (`invalid_receipt`)", body = super::openapi::ErrorBody),
        (status = 404, description = "No such license, or no such machine on it (a receipt frees its machine once)", body = super::openapi::ErrorBody),
        (status = 409, description = "The machine has no deactivation key (activated before offline deactivation existed)", body = super::openapi::ErrorBody),
        super::openapi::AdminErrors, super::openapi::BodyErrors))]
pub(crate) async fn deactivate_handler(
    caller: Caller,
    State(state): State<AppState>,
    StrictJson(req): StrictJson<OfflineDeactivationReceipt>,
) -> ApiResult<Json<DeactivateResponse>> {
    caller.require(Action::Operate)?;
    Ok(Json(
        offline_deactivate(&state, &req, Some(&caller.organization_id)).await?,
    ))
}

/// `licensing-server offline deactivate` options.
#[derive(clap::Args, Debug)]
pub struct OfflineDeactivateArgs {
    /// The deactivation receipt file the machine wrote.
    #[arg(long)]
    pub receipt: PathBuf,
    /// The server's existing database (never created).
    #[command(flatten)]
    pub store: DatabaseArgs,
    /// The `iss` of the tokens the server signs [default: licensing-server]: the same setting
    /// as `serve --issuer` (freeing a node-locked license's machine re-signs its token).
    #[arg(long, env = "LICENSING_ISSUER")]
    pub issuer: Option<String>,
}

/// Runs `offline deactivate` on the server's database: exit 0 with the machine removed (its
/// id printed as JSON), 1 when the receipt is refused (unknown license or machine, already
/// used, MAC does not verify), 2 for usage errors (unreadable or invalid receipt file,
/// unusable store).
pub fn run_offline_deactivate(args: OfflineDeactivateArgs) -> ExitCode {
    run_cli(|| offline_deactivate_cli(&args))
}

async fn offline_deactivate_cli(args: &OfflineDeactivateArgs) -> Result<(), CliError> {
    let bytes = read_request(&args.receipt)?;
    let req: OfflineDeactivationReceipt = extract::parse_strict(&bytes).map_err(|e| {
        usage(format!(
            "{}: {} ({})",
            args.receipt.display(),
            e.detail(),
            e.code()
        ))
    })?;
    let settings = Settings::resolve(ServeArgs {
        store: StoreArgs {
            config: args.store.config.clone(),
            data_dir: args.store.data_dir.clone(),
            database_url: args.store.database_url.clone(),
            key_encryption: args.store.key_encryption.clone(),
            issuer: args.issuer.clone(),
            ..StoreArgs::default()
        },
        ..ServeArgs::default()
    })
    .map_err(usage)?;
    // The server's existing store: a mistyped --data-dir is refused, never created.
    let db = super::open_existing_store(&settings, super::db::Schema::MigrateExisting)
        .await
        .map_err(usage)?;
    let state = AppState::new(db.clone(), settings.issuer, u32::MAX)
        .await
        .map_err(usage)?;
    let outcome = offline_deactivate(&state, &req, None).await;
    if outcome.is_ok() {
        record_cli(&state, "cli offline deactivate", &req.license_id).await;
    }
    db.close().await;
    let answer = outcome.map_err(refusal_or_usage)?;
    let text =
        serde_json::to_string(&answer).map_err(|e| usage(format!("encoding the answer: {e}")))?;
    println!("{text}");
    Ok(())
}

/// Appends a CLI action on license `license_id` to the audit trail (actor `cli`, status 200),
/// as [`record_cli_activation`] does.
async fn record_cli(state: &AppState, action: &str, license_id: &str) {
    let row = match get_license_row_unscoped(state, license_id).await {
        Ok(row) => row,
        Err(e) => {
            tracing::error!(error = %e.detail(), "audit entry not written: license not read");
            return;
        }
    };
    let entry = NewAuditEntry {
        at: now(),
        organization_id: Some(row.organization_id.clone()),
        actor: audit::CLI_ACTOR.to_owned(),
        action: action.to_owned(),
        target: row.id.clone(),
        status: 200,
    };
    audit::append_or_log(state.db(), &entry).await;
    // The client event of the same change, queued to the writer: written before the CLI exits.
    state.audit().flush().await;
}
