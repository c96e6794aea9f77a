//! `licensing-server admin-token`: the operator's way back in. It mints an admin API token of
//! an organization (the operator organization by default) directly in the server's existing
//! database, prints it once (only its hash is stored) and records it in the audit trail as
//! actor `cli`. For an operator organization left without a token (a crash during the first
//! start of an older version, every admin token revoked, the printed token lost).

use std::process::ExitCode;

use super::audit;
use super::config::DatabaseArgs;
use super::db::{self, NewApiToken, NewAuditEntry};
use super::{OPERATOR_ORGANIZATION, now, secrets};

/// `licensing-server admin-token` options.
#[derive(clap::Args, Debug)]
pub struct AdminTokenArgs {
    /// The organization whose admin the token is [default: the operator organization].
    #[arg(long, default_value = OPERATOR_ORGANIZATION)]
    pub organization: String,
    /// The token's label, as `GET /v1/api-tokens` lists it.
    #[arg(long, default_value = "admin-token (cli)")]
    pub label: String,
    /// The server's data directory or database (must exist; migrated when older).
    #[command(flatten)]
    pub store: DatabaseArgs,
}

/// Runs `admin-token`: the token alone on stdout (exit 0), or exit 2 for usage errors (no
/// such database or organization, an unusable label).
pub fn run_admin_token(args: AdminTokenArgs) -> ExitCode {
    super::init_logging("warn");
    let result = super::runtime().and_then(|rt| rt.block_on(mint(&args)));
    match result {
        Ok((token, id)) => {
            eprintln!(
                "admin API token {id} of organization {} (shown once, only its hash is \
                 stored; revoke it with POST /v1/api-tokens/{id}/revoke):",
                args.organization
            );
            use std::io::Write as _;
            let _ = writeln!(std::io::stdout().lock(), "{token}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

/// Longest label accepted (as the API's token labels).
const MAX_LABEL_CHARS: usize = 200;

async fn mint(args: &AdminTokenArgs) -> Result<(String, String), String> {
    if args.label.is_empty()
        || args.label.chars().count() > MAX_LABEL_CHARS
        || args.label.chars().any(char::is_control)
    {
        return Err(format!(
            "--label: 1 to {MAX_LABEL_CHARS} characters, no control characters"
        ));
    }
    let settings = args.store.settings()?;
    let db = super::open_existing_store(&settings, db::Schema::MigrateExisting).await?;
    let outcome = async {
        let found = db
            .list_organizations(Some(&args.organization))
            .await
            .map_err(|e| format!("reading organizations: {e}"))?;
        if found.is_empty() {
            return Err(format!(
                "--organization {}: no such organization in this database",
                crate::cli_input::printable(&args.organization)
            ));
        }
        let token = secrets::new_api_token()?;
        let id = secrets::new_id("tok")?;
        let at = now();
        db.insert_new_api_token(&NewApiToken {
            id: &id,
            organization_id: &args.organization,
            token_hash: &secrets::sha256_hex(token.as_bytes()),
            role: "admin",
            label: &args.label,
            now: at,
        })
        .await
        .map_err(|e| format!("storing the token: {e}"))?;
        // After the token committed, as the CLI's offline activation: a failed append is
        // logged and the token still printed (it exists; withholding it helps nobody).
        let entry = NewAuditEntry {
            at,
            organization_id: Some(args.organization.clone()),
            actor: audit::CLI_ACTOR.to_owned(),
            action: "cli admin-token".to_owned(),
            target: format!("/v1/api-tokens/{id}"),
            status: 201,
        };
        audit::append_or_log(&db, &entry).await;
        Ok((token, id))
    }
    .await;
    db.close().await;
    outcome
}
