//! Air-gapped activation. The client writes a request file (license key, fingerprint, nonce);
//! the vendor turns it into a signed response file, through the admin API
//! (`POST /v1/offline/activate`) or the CLI (`licensing-server offline activate`), both with
//! [`offline_activate`], which activates like `/v1/client/activate` (same code path).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use axum::Json;
use axum::extract::State;
use licensing_core::MachineFingerprint;
use licensing_core::claims::MAX_TIMESTAMP;
use serde::{Deserialize, Serialize};

use super::audit;
use super::config::{ServeArgs, Settings, StoreArgs};
use super::db::NewAuditEntry;
use super::error::{ApiError, ApiResult};
use super::extract::{self, Action, Caller, StrictJson};
use super::routes::{
    RateLimit, activate_machine, answer_claims, check_fingerprint, license_by_key, token_field,
};
use super::{AppState, issue, now};

/// `kind` of a request file.
pub(crate) const REQUEST_KIND: &str = "licensing.offline_activation_request";
/// `kind` of a response file.
pub(crate) const RESPONSE_KIND: &str = "licensing.offline_activation_response";
/// The one version of both files.
pub(crate) const FILE_VERSION: u32 = 1;

/// The request file, written by the client on the air-gapped machine.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OfflineActivationRequest {
    /// Always `licensing.offline_activation_request`.
    #[schema(pattern = "^licensing\\.offline_activation_request$")]
    pub kind: String,
    /// Always 1.
    #[schema(minimum = 1, maximum = 1)]
    pub version: u32,
    /// The license key.
    #[schema(example = "ABCDE-FGHJK-LMNPQ-RSTUV-WXYZ2")]
    pub license_key: String,
    /// This machine's fingerprint.
    #[schema(value_type = super::openapi::FingerprintSchema)]
    pub fingerprint: MachineFingerprint,
    /// 16 to 128 printable ASCII characters, echoed in the signed response.
    #[schema(min_length = 16, max_length = 128, pattern = "^[!-~]+$")]
    pub nonce: String,
    /// When the client wrote the request (Unix seconds).
    #[schema(minimum = 0, maximum = 253402300799_i64)]
    pub created_at: i64,
}

/// The response file, carried back to the machine and imported by the client.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OfflineActivationResponse {
    /// Always `licensing.offline_activation_response`.
    pub kind: String,
    /// Always 1.
    pub version: u32,
    /// A `response+jwt`: the validation claims plus `machine_token` and `offline: true`,
    /// valid 30 days.
    pub response_token: String,
}

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
            "invalid_field",
            format!("`kind` must be `{REQUEST_KIND}`"),
        ));
    }
    if req.version != FILE_VERSION {
        return Err(ApiError::invalid(
            "unsupported_version",
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
            "invalid_field",
            "`created_at` is not a time in Unix seconds",
        ));
    }
    let row = license_by_key(state, &req.license_key, RateLimit::Skip).await?;
    if organization.is_some_and(|org| org != row.organization_id) {
        return Err(ApiError::not_found(
            "license_not_found",
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
    tracing::info!(license = %row.id, machine = %activated.machine.id, "offline activation");
    Ok(OfflineActivationResponse {
        kind: RESPONSE_KIND.to_owned(),
        version: FILE_VERSION,
        response_token: issue::sign_response(state, &claims)?,
    })
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
    super::init_logging("warn");
    let result = super::runtime()
        .map_err(usage)
        .and_then(|rt| rt.block_on(offline_cli(&args)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, message)) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

/// A CLI failure: exit code and message.
type CliError = (u8, String);

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
    let response = outcome.map_err(|e| {
        let status = e.status();
        // A request file the server cannot use is a usage error; a refusal by a licensing
        // rule (or an unknown license) is the negative answer.
        let code = if status.is_client_error() && !matches!(status.as_u16(), 400 | 413 | 415 | 422)
        {
            1
        } else {
            2
        };
        (code, format!("{} ({})", e.detail(), e.code()))
    })?;
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
