//! `licensing-server keys stage | promote | list`: the staged key rotation, working directly on
//! the server's database (the rules of `POST /v1/keys/stage` and `POST /v1/keys/{kid}/promote`,
//! same code). Each change is recorded in the audit trail as actor `cli`. Serving replicas
//! pick the change up at their next key reload (`--key-reload-secs`).

use std::process::ExitCode;

use super::audit;
use super::config::{DatabaseArgs, ServeArgs, Settings, StoreArgs};
use super::db::NewAuditEntry;
use super::routes;
use super::{AppState, OPERATOR_ORGANIZATION, now};

/// Where the server keeps its state, and the minimum publication time of a staged key.
#[derive(clap::Args, Debug, Clone)]
pub struct KeysStoreArgs {
    /// The server's existing database (never created, nor given a signing key: a key reaches
    /// the ring only by `stage` and `promote`).
    #[command(flatten)]
    pub store: DatabaseArgs,
    /// The `iss` of the tokens the server signs [default: licensing-server]: the same setting
    /// as `serve --issuer` (a promotion re-signs stored tokens).
    #[arg(long, env = "LICENSING_ISSUER")]
    pub issuer: Option<String>,
    /// Seconds a staged key must have been published before it may sign [default: 604800,
    /// 7 days]; the same setting as `serve --key-min-publish-secs`.
    #[arg(long, env = "LICENSING_KEY_MIN_PUBLISH_SECS")]
    pub key_min_publish_secs: Option<u64>,
}

/// `licensing-server keys stage` options.
#[derive(clap::Args, Debug)]
pub struct KeysStageArgs {
    /// When the staged key starts signing by itself: RFC 3339 or Unix seconds; at least the
    /// minimum publication time from now. Without it, only `keys promote` promotes it.
    #[arg(long)]
    pub promote_at: Option<String>,
    /// The server's store.
    #[command(flatten)]
    pub store: KeysStoreArgs,
}

/// `licensing-server keys promote` options.
#[derive(clap::Args, Debug)]
pub struct KeysPromoteArgs {
    /// The staged key's kid (`keys list`).
    pub kid: String,
    /// The server's store.
    #[command(flatten)]
    pub store: KeysStoreArgs,
}

/// `licensing-server keys list` options.
#[derive(clap::Args, Debug)]
pub struct KeysListArgs {
    /// The server's store.
    #[command(flatten)]
    pub store: KeysStoreArgs,
}

/// A CLI failure: exit code and message.
type CliError = (u8, String);

fn usage(message: impl Into<String>) -> CliError {
    (2, message.into())
}

/// Runs `keys stage`: prints the staged key (JSON, as `POST /v1/keys/stage` answers). Exit 0
/// staged, 1 refused (another key is staged), 2 usage errors.
pub fn run_keys_stage(args: KeysStageArgs) -> ExitCode {
    exit(with_state(&args.store, async |state| {
        let promote_at = args.promote_at.as_deref().map(parse_time).transpose()?;
        let view = routes::stage(state, promote_at, now())
            .await
            .map_err(refusal)?;
        record(state, "cli keys stage", "/v1/keys/stage").await;
        Ok(view)
    }))
}

/// Runs `keys promote KID`: prints the promoted key. Exit 0 promoted, 1 refused (not staged,
/// not published for the minimum time yet: the message says from when), 2 usage errors.
pub fn run_keys_promote(args: KeysPromoteArgs) -> ExitCode {
    exit(with_state(&args.store, async |state| {
        let view = routes::promote(state, &args.kid, now())
            .await
            .map_err(refusal)?;
        let target = format!("/v1/keys/{}/promote", args.kid);
        record(state, "cli keys promote", &target).await;
        Ok(view)
    }))
}

/// Runs `keys list`: prints every signing key (JSON, as `GET /v1/keys` answers).
pub fn run_keys_list(args: KeysListArgs) -> ExitCode {
    exit(with_state(&args.store, async |state| {
        routes::key_list(state).await.map_err(refusal)
    }))
}

/// An API refusal as the CLI reports it, by the one mapping of the server's subcommands
/// (`ApiError::cli_exit_code`): exit 1 for a refusal by a rule (404, 409), 2 for input the
/// server would not take (422) or an internal failure.
fn refusal(e: super::error::ApiError) -> CliError {
    (e.cli_exit_code(), format!("{} ({})", e.detail(), e.code()))
}

/// RFC 3339 or Unix seconds.
fn parse_time(text: &str) -> Result<i64, CliError> {
    if let Ok(secs) = text.trim().parse::<i64>() {
        return Ok(secs);
    }
    time::OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|e| {
            usage(format!(
                "--promote-at `{text}`: not RFC 3339 nor Unix seconds ({e})"
            ))
        })
}

/// Opens the server's existing store (never creates one: a mistyped `--data-dir` is an
/// error) and runs `f` on it.
fn with_state<T: serde::Serialize>(
    args: &KeysStoreArgs,
    f: impl AsyncFnOnce(&AppState) -> Result<T, CliError>,
) -> Result<T, CliError> {
    super::init_logging("warn");
    let settings = Settings::resolve(ServeArgs {
        store: StoreArgs {
            config: args.store.config.clone(),
            data_dir: args.store.data_dir.clone(),
            database_url: args.store.database_url.clone(),
            key_encryption: args.store.key_encryption.clone(),
            issuer: args.issuer.clone(),
            ..StoreArgs::default()
        },
        key_min_publish_secs: args.key_min_publish_secs,
        ..ServeArgs::default()
    })
    .map_err(usage)?;
    let runtime = super::runtime().map_err(usage)?;
    runtime.block_on(async {
        // The server's existing store: a mistyped --data-dir or URL is refused, never created.
        let db = super::open_existing_store(&settings, super::db::Schema::MigrateExisting)
            .await
            .map_err(usage)?;
        let state = AppState::new(db.clone(), settings.issuer.clone(), u32::MAX)
            .await
            .map_err(usage)?;
        state.set_key_min_publish_secs(settings.key_min_publish_secs);
        let outcome = f(&state).await;
        db.close().await;
        outcome
    })
}

/// Appends the CLI's key change to the audit trail (actor `cli`, the operator organization,
/// status 200 as the HTTP route would answer), after the change committed.
async fn record(state: &AppState, action: &str, target: &str) {
    let entry = NewAuditEntry {
        at: now(),
        organization_id: Some(OPERATOR_ORGANIZATION.to_owned()),
        actor: audit::CLI_ACTOR.to_owned(),
        action: action.to_owned(),
        target: target.to_owned(),
        status: 200,
    };
    audit::append_or_log(state.db(), &entry).await;
}

/// Prints the answer as JSON and maps a failure to its exit code.
fn exit<T: serde::Serialize>(result: Result<T, CliError>) -> ExitCode {
    let printed = result.and_then(|value| {
        serde_json::to_string_pretty(&value).map_err(|e| usage(format!("encoding: {e}")))
    });
    match printed {
        Ok(text) => {
            use std::io::Write as _;
            let _ = writeln!(std::io::stdout().lock(), "{text}");
            ExitCode::SUCCESS
        }
        Err((code, message)) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}
