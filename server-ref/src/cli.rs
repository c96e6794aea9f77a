//! Command-line interface. Exit codes: 0 success (for `verify`: the license may be used),
//! 1 the operation's answer is negative (license not usable, claims invalid), 2 usage errors
//! (bad arguments, unreadable files, unusable keys).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::cli_input::{self, Source};
use licensing_core::{
    Context, LicenseClaims, MachineFingerprint, PrivateKey, Status, TrustStore, Verdict, Verifier,
    decode_unverified, issue_license, strict_json,
};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

#[derive(Parser)]
#[command(
    name = "licensing-server",
    version,
    about = "Licensing reference server and vendor toolbox"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Issue, verify and inspect license tokens.
    #[command(subcommand)]
    License(LicenseCommand),
    /// This machine's identity.
    #[command(subcommand)]
    Machine(MachineCommand),
    /// Run the licensing server (HTTP API on an embedded SQLite database).
    Serve(crate::server::ServeArgs),
    /// Air-gapped activation, working directly on the server's database.
    #[command(subcommand)]
    Offline(OfflineCommand),
    /// The audit trail, read directly from the server's database.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Mint an admin API token directly in the server's existing database (the operator's
    /// way back in when no admin token is left). Prints the token once; recorded in the audit
    /// trail as actor `cli`. Exit 0 done, 2 usage errors (no such database or organization).
    AdminToken(crate::server::AdminTokenArgs),
    /// A person's data under the GDPR (Articles 15 and 17), read or erased directly in the
    /// server's database. Exit 0 done, 1 no such user, 2 usage errors.
    #[command(subcommand)]
    Gdpr(GdprCommand),
}

#[derive(Subcommand)]
enum GdprCommand {
    /// Export everything the server keeps about a directory user as one JSON document (stdout,
    /// or a new 0600 file with --out). Opens the database read-only.
    Export(crate::server::GdprExportArgs),
    /// Release a directory user's seats and leases, then pseudonymise their personal data
    /// everywhere the server keeps it (needs --yes; cannot be undone; idempotent). Recorded in
    /// the audit trail as actor `cli`, by the user's id only.
    Erase(crate::server::GdprEraseArgs),
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recompute the audit trail's hash chain and check anchors kept elsewhere. Prints JSON;
    /// exit 0 intact (and every anchor matches), 1 broken or an anchor differs, 2 usage errors.
    Verify(crate::server::AuditVerifyArgs),
    /// Check an audit package (`GET /v1/audit/package`) offline: its zip structure (size
    /// caps, only the package's files), every checkpoint's signature, every entry's hash, and
    /// the entries of each checkpoint's range against the digest it signed. Prints JSON; exit 0
    /// sound, 1 a check failed, 2 the file cannot be read or is not a zip (or a bad --jwks).
    VerifyPackage(crate::server::AuditVerifyPackageArgs),
}

#[derive(Subcommand)]
enum OfflineCommand {
    /// Turn a client's offline activation request file into a signed response file (the rules
    /// of online activation). Exit 0 done, 1 refused (license suspended, revoked, expired or
    /// unknown; machine limit), 2 usage errors (invalid request file, unusable data directory).
    Activate(crate::server::OfflineActivateArgs),
    /// Free the slot of a machine that deactivated itself offline, from the receipt it wrote
    /// (its MAC checked with the machine's deactivation key). Exit 0 done, 1 refused (unknown
    /// license or machine, receipt already used, MAC does not verify), 2 usage errors.
    Deactivate(crate::server::OfflineDeactivateArgs),
}

#[derive(Subcommand)]
enum MachineCommand {
    /// Print this machine's fingerprint and its components (salted hashes: what an end user
    /// sends for offline activation). Honours LICENSING_FINGERPRINT_OVERRIDE.
    Fingerprint {
        /// Product id used as the salt.
        #[arg(long, default_value = "")]
        product: String,
        /// Print JSON (the format `license verify --fingerprint-file` reads).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Generate an Ed25519 key pair: DIR/private.pem (PKCS#8, 0600), DIR/public.pem (SPKI),
    /// DIR/jwks.json. Prints the kid.
    Generate {
        /// Output directory (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Overwrite an existing private.pem.
        #[arg(long)]
        force: bool,
    },
    /// Stage the server's next signing key in its database: published in the JWKS at once,
    /// signing only once promoted (`keys promote`, or by itself at `--promote-at`). Prints it
    /// as JSON. Exit 0 staged, 1 refused (a key is staged already), 2 usage errors.
    Stage(crate::server::KeysStageArgs),
    /// Promote the staged key KID: it signs from now on (never before it has been published
    /// for the minimum time: the refusal says from when). Exit 0 promoted, 1 refused, 2 usage
    /// errors.
    Promote(crate::server::KeysPromoteArgs),
    /// List the server's signing keys (public halves, statuses) as JSON.
    List(crate::server::KeysListArgs),
}

#[derive(Subcommand)]
enum LicenseCommand {
    /// Sign a claims file; prints the token.
    Issue {
        /// PKCS#8 PEM private key.
        #[arg(long)]
        private_key: PathBuf,
        /// Claims JSON. `iat` defaults to now and `jti` to a random id.
        #[arg(long)]
        claims: PathBuf,
    },
    /// Verify and evaluate a token. Exit 0 when usable, 1 when not, 2 on usage errors.
    Verify(VerifyArgs),
    /// Decode a token WITHOUT verifying it.
    Inspect {
        /// Token file, or `-` for stdin.
        #[arg(long, default_value = "-")]
        token: String,
    },
}

#[derive(Args)]
struct VerifyArgs {
    /// Trusted public key: SPKI PEM, JWK or JWK Set. Repeatable.
    #[arg(long = "public-key", required = true)]
    public_keys: Vec<PathBuf>,
    /// Token file, or `-` for stdin.
    #[arg(long, default_value = "-")]
    token: String,
    /// Product id the license must be for (`aud`). Required unless `--any-product`: without
    /// it, a token the same key signed for another product (another tenant's) would verify.
    #[arg(long)]
    product: Option<String>,
    /// Accept a license for any product, with a warning on stderr and in `--json`
    /// (`product_checked: false`): for inspecting tokens, never for deciding access.
    #[arg(long, conflicts_with = "product")]
    any_product: bool,
    /// Evaluate at this instant (RFC 3339) instead of now.
    #[arg(long)]
    at: Option<String>,
    /// The running app's version (semver).
    #[arg(long)]
    version: Option<String>,
    /// The running app's release date (YYYY-MM-DD or RFC 3339).
    #[arg(long)]
    release_date: Option<String>,
    /// Feature to check. Repeatable.
    #[arg(long = "feature")]
    features: Vec<String>,
    /// Context attribute NAME=VALUE for site restrictions. Repeatable.
    #[arg(long = "attribute")]
    attributes: Vec<String>,
    /// This machine's fingerprint as printed by `machine fingerprint --json`, for node-locked
    /// licenses.
    #[arg(long)]
    fingerprint_file: Option<PathBuf>,
    /// Seconds of tolerated clock skew for `nbf`.
    #[arg(long, default_value_t = 0)]
    not_before_leeway: i64,
    /// Print the verdict as JSON.
    #[arg(long)]
    json: bool,
}

/// How a command failed.
enum Failure {
    /// Exit 2: the invocation or its input files are unusable.
    Usage(String),
    /// Exit 1: the command ran and the answer is no.
    Negative(String),
}

type CliResult = Result<ExitCode, Failure>;

/// `println!` that ignores a closed stdout (`| head`) instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// Parses arguments, runs the command, maps failures to exit codes.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Keys(KeysCommand::Generate { out, force }) => keys_generate(&out, force),
        Command::Keys(KeysCommand::Stage(args)) => return crate::server::run_keys_stage(args),
        Command::Keys(KeysCommand::Promote(args)) => return crate::server::run_keys_promote(args),
        Command::Keys(KeysCommand::List(args)) => return crate::server::run_keys_list(args),
        Command::License(LicenseCommand::Issue {
            private_key,
            claims,
        }) => license_issue(&private_key, &claims),
        Command::License(LicenseCommand::Verify(args)) => license_verify(&args),
        Command::License(LicenseCommand::Inspect { token }) => license_inspect(&token),
        Command::Machine(MachineCommand::Fingerprint { product, json }) => {
            machine_fingerprint(&product, json)
        }
        Command::Serve(args) => return crate::server::run(args),
        Command::Offline(OfflineCommand::Activate(args)) => {
            return crate::server::run_offline_activate(args);
        }
        Command::Offline(OfflineCommand::Deactivate(args)) => {
            return crate::server::run_offline_deactivate(args);
        }
        Command::Audit(AuditCommand::Verify(args)) => return crate::server::run_audit_verify(args),
        Command::Audit(AuditCommand::VerifyPackage(args)) => {
            return crate::server::run_audit_verify_package(args);
        }
        Command::AdminToken(args) => return crate::server::run_admin_token(args),
        Command::Gdpr(GdprCommand::Export(args)) => return crate::server::run_gdpr_export(args),
        Command::Gdpr(GdprCommand::Erase(args)) => return crate::server::run_gdpr_erase(args),
    };
    match result {
        Ok(code) => code,
        Err(Failure::Usage(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Negative(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}

/// The text of the file `flag` named, at most `cap` bytes ([`cli_input::read_capped`]).
fn read_text(flag: &str, path: &Path, cap: u64) -> Result<String, Failure> {
    cli_input::read_capped_text(flag, Source::File(path), cap).map_err(Failure::Usage)
}

/// The token in the file `--token` named (`-`: stdin), at most the format's 64 KiB.
fn read_token(source: &str) -> Result<String, Failure> {
    let text =
        cli_input::read_capped_text("--token", Source::from_arg(source), cli_input::TOKEN_CAP)
            .map_err(Failure::Usage)?;
    // Files usually end with a newline; the token itself never contains whitespace.
    Ok(text.trim().to_owned())
}

/// The files `keys generate` writes, and whether each is secret (mode 0600).
const KEY_FILES: [(&str, bool); 3] = [
    ("private.pem", true),
    ("public.pem", false),
    ("jwks.json", false),
];

fn keys_generate(out: &Path, force: bool) -> CliResult {
    let usage = |e: std::io::Error| Failure::Usage(format!("{}: {e}", out.display()));
    fs::create_dir_all(out).map_err(usage)?;
    if !force {
        // A link counts as there (symlink_metadata: a dangling link too); each file is then
        // created with create_new, which never follows a link, so a link made meanwhile fails.
        let existing: Vec<String> = KEY_FILES
            .iter()
            .map(|(name, _)| out.join(name))
            .filter(|path| path.symlink_metadata().is_ok())
            .map(|path| path.display().to_string())
            .collect();
        if !existing.is_empty() {
            return Err(Failure::Usage(format!(
                "{} exists; pass --force to replace it",
                existing.join(", ")
            )));
        }
    }
    let key = PrivateKey::generate().map_err(|e| Failure::Usage(e.to_string()))?;
    let pem = key
        .to_pkcs8_pem()
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let public = key.public_key();
    let public_pem = public
        .to_spki_pem()
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let mut store = TrustStore::new();
    store
        .add(public.clone())
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let jwks = serde_json::to_string_pretty(&store.to_jwks()).unwrap_or_default() + "\n";
    let contents: [&[u8]; 3] = [pem.as_bytes(), public_pem.as_bytes(), jwks.as_bytes()];
    for ((name, secret), bytes) in KEY_FILES.iter().zip(contents) {
        let path = out.join(name);
        write_key_file(&path, bytes, *secret, force)
            .map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?;
    }
    outln!("{}", public.kid());
    Ok(ExitCode::SUCCESS)
}

/// Writes a file of `keys generate` without ever writing through a link: a new file is
/// created with `create_new` (`O_CREAT | O_EXCL`: fails on any existing name, a link
/// included); with `replace`, the bytes go to a new temporary file in the same directory that
/// is then renamed over the name (a link there is replaced, never followed). Secret files are
/// created 0600, public ones 0644, whatever the umask.
fn write_key_file(path: &Path, bytes: &[u8], secret: bool, replace: bool) -> std::io::Result<()> {
    let mode = if secret { 0o600 } else { 0o644 };
    if !replace {
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(mode);
        }
        let mut file = options.open(path)?;
        set_mode(&file, mode)?;
        file.write_all(bytes)?;
        return file.sync_all();
    }
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    // tempfile creates the file with create_new and mode 0600.
    let mut file = tempfile::Builder::new()
        .prefix(".keys-generate-")
        .tempfile_in(dir)?;
    set_mode(file.as_file(), mode)?;
    file.write_all(bytes)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Sets the file's mode (umask ignored) on Unix.
fn set_mode(file: &fs::File, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = (file, mode);
    Ok(())
}

fn license_issue(private_key: &Path, claims_path: &Path) -> CliResult {
    let key = PrivateKey::from_pkcs8_pem(&read_text(
        "--private-key",
        private_key,
        cli_input::KEY_CAP,
    )?)
    .map_err(|e| Failure::Usage(format!("{}: {e}", private_key.display())))?;
    let text = read_text("--claims", claims_path, cli_input::CLAIMS_CAP)?;
    let mut object = strict_json::parse_object(text.as_bytes())
        .map_err(|e| Failure::Negative(format!("{}: {e}", claims_path.display())))?;
    if !object.contains_key("iat") {
        object.insert("iat".into(), now().into());
    }
    if !object.contains_key("jti") {
        object.insert("jti".into(), random_id().map_err(Failure::Usage)?.into());
    }
    let claims = LicenseClaims::from_object(object)
        .and_then(|claims| claims.check_issued_before_expiry().map(|()| claims))
        .map_err(|e| Failure::Negative(format!("{}: {e}", claims_path.display())))?;
    // New claims: also no control characters or bidi overrides in text, and consistent counts.
    claims
        .validate_new()
        .map_err(|e| Failure::Negative(format!("{}: {e}", claims_path.display())))?;
    let token = issue_license(&claims, &key).map_err(|e| Failure::Negative(e.to_string()))?;
    outln!("{token}");
    Ok(ExitCode::SUCCESS)
}

/// Printed on stderr, and in `--json` as `warning`, when `--any-product` skips the check.
const ANY_PRODUCT_WARNING: &str = "WARNING: --any-product: the license's product (aud) was NOT \
     checked; a token the same key signed for any other product verifies too";

fn license_verify(args: &VerifyArgs) -> CliResult {
    if args.product.is_none() && !args.any_product {
        return Err(Failure::Usage(
            "pass --product ID, the product the license must be for (its `aud`): without it a \
             token signed by the same key for another product would verify. --any-product \
             skips that check, with a warning"
                .into(),
        ));
    }
    let mut store = TrustStore::new();
    for path in &args.public_keys {
        store
            .add_document(&read_text("--public-key", path, cli_input::KEY_CAP)?)
            .map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?;
    }
    let verifier = match &args.product {
        Some(product) => Verifier::new(store, product),
        None => Verifier::for_any_product(store),
    };
    let mut ctx = Context::at(match &args.at {
        Some(at) => parse_instant(at)?,
        None => now(),
    });
    ctx.not_before_leeway = args.not_before_leeway;
    if let Some(version) = &args.version {
        ctx.app_version = Some(
            licensing_core::parse_version(version)
                .map_err(|e| Failure::Usage(format!("--version: {e}")))?,
        );
    }
    if let Some(date) = &args.release_date {
        ctx.release_date = Some(parse_date(date)?);
    }
    ctx.features = args.features.clone();
    for attribute in &args.attributes {
        let (name, value) = attribute
            .split_once('=')
            .filter(|(name, _)| !name.is_empty())
            .ok_or_else(|| {
                Failure::Usage(format!(
                    "--attribute {}: expected NAME=VALUE with a non-empty NAME",
                    cli_input::printable(attribute)
                ))
            })?;
        ctx.attributes.insert(name.to_owned(), value.to_owned());
    }
    if let Some(path) = &args.fingerprint_file {
        let text = read_text("--fingerprint-file", path, cli_input::FINGERPRINT_CAP)?;
        ctx.fingerprint =
            Some(MachineFingerprint::from_json(&text).map_err(|e| {
                Failure::Usage(format!("{}: not a fingerprint: {e}", path.display()))
            })?);
    }
    let token = read_token(&args.token)?;
    let verdict = verifier.check(&token, &ctx);
    if args.any_product {
        eprintln!("{ANY_PRODUCT_WARNING}");
    }
    if args.json {
        let mut value = serde_json::to_value(&verdict).unwrap_or_default();
        if let Some(object) = value.as_object_mut() {
            object.insert("usable".into(), verdict.is_usable().into());
            object.insert("message".into(), verdict.status.message().into());
            object.insert("evaluated_at".into(), ctx.now.into());
            object.insert("product_checked".into(), (!args.any_product).into());
            if args.any_product {
                object.insert("warning".into(), ANY_PRODUCT_WARNING.into());
            }
        }
        let text = serde_json::to_string_pretty(&value).unwrap_or_default();
        outln!("{}", cli_input::printable_json(&text));
    } else {
        print_verdict(&verdict);
        if args.any_product {
            outln!("product:    NOT checked (--any-product)");
        }
    }
    Ok(if verdict.is_usable() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The verdict for a person. Every text that comes from the token (ids, customer, feature
/// names, reasons quoting claims) is printed through [`cli_input::printable`]: a token issued
/// elsewhere may carry escape sequences or bidirectional overrides.
fn print_verdict(verdict: &Verdict) {
    use cli_input::printable as safe;
    outln!("status:     {}", verdict.status);
    outln!("message:    {}", verdict.status.message());
    outln!("reason:     {}", safe(&verdict.reason));
    if let Some(id) = &verdict.license_id {
        outln!("license id: {}", safe(id));
    }
    if let Some(model) = verdict.model {
        outln!("model:      {}", model.as_str());
    }
    if let Some(customer) = &verdict.customer {
        outln!("customer:   {}", safe(customer));
    }
    match verdict.expires_at {
        Some(exp) => outln!("expires:    {}", format_instant(exp)),
        None if verdict.license_id.is_some() => outln!("expires:    never"),
        None => {}
    }
    if let Some(end) = verdict
        .grace_ends_at
        .filter(|end| Some(*end) != verdict.expires_at)
    {
        outln!("grace ends: {}", format_instant(end));
    }
    if let Some(left) = verdict.grace_left {
        outln!("grace left: {}", format_duration(left));
    } else if let Some(left) = verdict.time_left {
        outln!("time left:  {}", format_duration(left));
    }
    for feature in &verdict.features {
        let limit = feature
            .limit
            .map(|l| format!(", limit {l}"))
            .unwrap_or_default();
        outln!(
            "feature {}: {}{limit} ({})",
            safe(&feature.name),
            feature.status,
            safe(&feature.reason)
        );
    }
    if verdict.status == Status::Valid || verdict.status == Status::ValidInGrace {
        outln!("=> the license may be used");
    } else {
        outln!("=> the license may NOT be used");
    }
}

fn license_inspect(source: &str) -> CliResult {
    let token = read_token(source)?;
    let (header, payload) =
        decode_unverified(&token).map_err(|e| Failure::Negative(e.to_string()))?;
    let out = serde_json::json!({
        "WARNING": "UNVERIFIED: decoded without checking the signature; do not trust these claims",
        "verified": false,
        "header": header,
        "payload": payload,
    });
    let text = serde_json::to_string_pretty(&out).unwrap_or_default();
    outln!("{}", cli_input::printable_json(&text));
    Ok(ExitCode::SUCCESS)
}

fn machine_fingerprint(product: &str, json: bool) -> CliResult {
    let fp = licensing_core::machine::this_machine(product);
    if json {
        outln!("{}", serde_json::to_string_pretty(&fp).unwrap_or_default());
    } else {
        outln!("fingerprint: {}", fp.id);
        for (name, hash) in &fp.components {
            outln!("  {name:<11} {hash}");
        }
        outln!("virtual:     {}", if fp.is_virtual { "yes" } else { "no" });
        for signal in &fp.virtualization {
            outln!("  {signal}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn random_id() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| e.to_string())?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn parse_instant(text: &str) -> Result<i64, Failure> {
    OffsetDateTime::parse(text, &Rfc3339)
        .map(OffsetDateTime::unix_timestamp)
        .map_err(|e| Failure::Usage(format!("{text}: not an RFC 3339 instant: {e}")))
}

fn parse_date(text: &str) -> Result<i64, Failure> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    match time::Date::parse(text, &format) {
        Ok(date) => Ok(date.midnight().assume_utc().unix_timestamp()),
        Err(_) => parse_instant(text),
    }
}

fn format_instant(t: i64) -> String {
    OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| d.format(&Rfc3339).ok())
        .unwrap_or_else(|| t.to_string())
}

fn format_duration(seconds: i64) -> String {
    let days = seconds / 86_400;
    let hours = (seconds % 86_400) / 3_600;
    let minutes = (seconds % 3_600) / 60;
    format!("{days}d {hours}h {minutes}m ({seconds} s)")
}
