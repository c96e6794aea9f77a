//! `licensing-server gdpr export | erase`: a person's data under the GDPR, working directly on
//! the server's database with the rules of `GET /v1/directory/users/{id}/export` and `POST
//! /v1/directory/users/{id}/erase` (same code, `server::gdpr`). `export` opens the database
//! read-only; `erase` is recorded in the audit trail as actor `cli`, by the user's id only.
//!
//! Exit codes: 0 done, 1 no such user in the organization, 2 usage errors (a missing `--yes`,
//! an unusable `--org`, `--user` or `--out`, no such organization or database).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::audit;
use super::config::{DatabaseArgs, ServeArgs, Settings, StoreArgs};
use super::db::{self, Db, NewAuditEntry};
use super::error::ApiError;
use super::gdpr;
use super::{AppState, now};

/// Longest `--org` or `--user` accepted (ids and user names are far shorter).
const MAX_NAME_CHARS: usize = 256;

/// `licensing-server gdpr export` options.
#[derive(clap::Args, Debug)]
pub struct GdprExportArgs {
    /// The person's organization (its id).
    #[arg(long)]
    pub org: String,
    /// The person: their directory user id, or their user name (ignoring case).
    #[arg(long)]
    pub user: String,
    /// Write the export to this new file (created with mode 0600; an existing file is
    /// refused) instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The server's data directory or database (read only: nothing is created or migrated).
    #[command(flatten)]
    pub store: DatabaseArgs,
}

/// `licensing-server gdpr erase` options.
#[derive(clap::Args, Debug)]
pub struct GdprEraseArgs {
    /// The person's organization (its id).
    #[arg(long)]
    pub org: String,
    /// The person: their directory user id, or their user name (ignoring case).
    #[arg(long)]
    pub user: String,
    /// Confirms the erasure, which cannot be undone.
    #[arg(long)]
    pub yes: bool,
    /// The server's data directory or database (must exist; migrated when older).
    #[command(flatten)]
    pub store: DatabaseArgs,
    /// The `iss` of the tokens the server signs: the same setting as `serve --issuer`.
    #[arg(long, env = "LICENSING_ISSUER")]
    pub issuer: Option<String>,
}

/// A CLI failure: exit code and message.
type CliError = (u8, String);

fn usage(message: impl Into<String>) -> CliError {
    (2, message.into())
}

/// An API refusal by the server subcommands' one mapping (`ApiError::cli_exit_code`): 404
/// is the negative answer, 1.
fn refusal(e: ApiError) -> CliError {
    (e.cli_exit_code(), format!("{} ({})", e.detail(), e.code()))
}

/// `--org` and `--user`: 1 to [`MAX_NAME_CHARS`] characters, no control characters.
fn check_arg(flag: &str, value: &str) -> Result<(), CliError> {
    if value.is_empty()
        || value.chars().count() > MAX_NAME_CHARS
        || value.chars().any(char::is_control)
    {
        return Err(usage(format!(
            "{flag}: 1 to {MAX_NAME_CHARS} characters, no control characters"
        )));
    }
    Ok(())
}

/// 2 unless the database holds organization `org`.
async fn check_organization(db: &Db, org: &str) -> Result<(), CliError> {
    let found = db
        .list_organizations(Some(org))
        .await
        .map_err(|e| usage(format!("reading organizations: {e}")))?;
    if found.is_empty() {
        return Err(usage(format!(
            "--org {}: no such organization in this database",
            crate::cli_input::printable(org)
        )));
    }
    Ok(())
}

/// Runs `gdpr export`: the person's data as JSON on stdout or in `--out`.
pub fn run_gdpr_export(args: GdprExportArgs) -> ExitCode {
    super::init_logging("warn");
    let result = (|| {
        check_arg("--org", &args.org)?;
        check_arg("--user", &args.user)?;
        if let Some(out) = &args.out
            && out.symlink_metadata().is_ok()
        {
            return Err(usage(format!(
                "--out {}: exists; name a new file (an export is never written over a file)",
                out.display()
            )));
        }
        let settings = args.store.settings().map_err(usage)?;
        let runtime = super::runtime().map_err(usage)?;
        let document = runtime.block_on(async {
            let db = super::open_existing_store(&settings, db::Schema::ReadOnly)
                .await
                .map_err(usage)?;
            let outcome = async {
                check_organization(&db, &args.org).await?;
                let user = gdpr::find_user(&db, &args.org, &args.user)
                    .await
                    .map_err(refusal)?;
                gdpr::export(&db, &args.org, &user.id, now())
                    .await
                    .map_err(refusal)
            }
            .await;
            db.close().await;
            outcome
        })?;
        let mut text =
            serde_json::to_string_pretty(&document).map_err(|e| usage(format!("encoding: {e}")))?;
        text.push('\n');
        match &args.out {
            Some(out) => write_private(out, text.as_bytes())
                .map_err(|e| usage(format!("--out {}: {e}", out.display())))?,
            None => {
                let _ = std::io::stdout().lock().write_all(text.as_bytes());
            }
        }
        Ok(())
    })();
    exit(result)
}

/// Writes `bytes` to the new file `path`, created with mode 0600 whatever the umask
/// (`create_new`: never through a link or over a file). A failed write removes the file.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    let written = (|| {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        file.write_all(bytes)?;
        file.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(path);
    }
    written
}

/// Runs `gdpr erase`: prints what was erased (JSON, as the API answers).
pub fn run_gdpr_erase(args: GdprEraseArgs) -> ExitCode {
    super::init_logging("warn");
    let result = (|| {
        check_arg("--org", &args.org)?;
        check_arg("--user", &args.user)?;
        if !args.yes {
            return Err(usage(
                "an erasure cannot be undone: pass --yes to confirm it".to_owned(),
            ));
        }
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
        let runtime = super::runtime().map_err(usage)?;
        let erasure = runtime.block_on(async {
            let db = super::open_existing_store(&settings, db::Schema::MigrateExisting)
                .await
                .map_err(usage)?;
            let outcome = async {
                check_organization(&db, &args.org).await?;
                let state = AppState::new(db.clone(), settings.issuer.clone(), u32::MAX)
                    .await
                    .map_err(usage)?;
                let user = gdpr::find_user(&db, &args.org, &args.user)
                    .await
                    .map_err(refusal)?;
                let at = now();
                let erasure = gdpr::erase(&state, &args.org, &user.id, at, audit::CLI_ACTOR)
                    .await
                    .map_err(refusal)?;
                // After the erasure committed, as the CLI's other writes: a failed append is
                // logged. The entry names the user by id only.
                let entry = NewAuditEntry {
                    at,
                    organization_id: Some(args.org.clone()),
                    actor: audit::CLI_ACTOR.to_owned(),
                    action: "cli gdpr erase".to_owned(),
                    target: format!("/v1/directory/users/{}/erase", user.id),
                    status: 200,
                };
                audit::append_or_log(&db, &entry).await;
                Ok(erasure)
            }
            .await;
            db.close().await;
            outcome
        })?;
        let text =
            serde_json::to_string_pretty(&erasure).map_err(|e| usage(format!("encoding: {e}")))?;
        let _ = writeln!(std::io::stdout().lock(), "{text}");
        Ok(())
    })();
    exit(result)
}

/// Maps a failure to its exit code, its message on stderr.
fn exit(result: Result<(), CliError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, message)) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}
