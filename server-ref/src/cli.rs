//! Command-line interface. Exit codes: 0 success (for `verify`: the license may be used),
//! 1 the operation's answer is negative (license not usable, claims invalid), 2 usage errors
//! (bad arguments, unreadable files, unusable keys).

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
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
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recompute the audit trail's hash chain and check anchors kept elsewhere. Prints JSON;
    /// exit 0 intact (and every anchor matches), 1 broken or an anchor differs, 2 usage errors.
    Verify(crate::server::AuditVerifyArgs),
}

#[derive(Subcommand)]
enum OfflineCommand {
    /// Turn a client's offline activation request file into a signed response file (the rules
    /// of online activation). Exit 0 done, 1 refused (license suspended, revoked, expired or
    /// unknown; machine limit), 2 usage errors (invalid request file, unusable data directory).
    Activate(crate::server::OfflineActivateArgs),
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
    /// Product id the license must be for (`aud`). Without it any product is accepted.
    #[arg(long)]
    product: Option<String>,
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
        Command::Audit(AuditCommand::Verify(args)) => return crate::server::run_audit_verify(args),
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

fn read_text(path: &Path) -> Result<String, Failure> {
    fs::read_to_string(path).map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))
}

fn read_token(source: &str) -> Result<String, Failure> {
    let mut text = String::new();
    if source == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Failure::Usage(format!("stdin: {e}")))?;
    } else {
        text = read_text(Path::new(source))?;
    }
    // Files usually end with a newline; the token itself never contains whitespace.
    Ok(text.trim().to_owned())
}

fn keys_generate(out: &Path, force: bool) -> CliResult {
    let usage = |e: std::io::Error| Failure::Usage(format!("{}: {e}", out.display()));
    fs::create_dir_all(out).map_err(usage)?;
    let private_path = out.join("private.pem");
    if private_path.exists() && !force {
        return Err(Failure::Usage(format!(
            "{} exists; pass --force to replace it",
            private_path.display()
        )));
    }
    let key = PrivateKey::generate().map_err(|e| Failure::Usage(e.to_string()))?;
    let pem = key
        .to_pkcs8_pem()
        .map_err(|e| Failure::Usage(e.to_string()))?;
    write_private(&private_path, pem.as_bytes()).map_err(usage)?;
    let public = key.public_key();
    let public_pem = public
        .to_spki_pem()
        .map_err(|e| Failure::Usage(e.to_string()))?;
    fs::write(out.join("public.pem"), public_pem).map_err(usage)?;
    let mut store = TrustStore::new();
    store
        .add(public.clone())
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let jwks = serde_json::to_string_pretty(&store.to_jwks()).unwrap_or_default();
    fs::write(out.join("jwks.json"), jwks + "\n").map_err(usage)?;
    outln!("{}", public.kid());
    Ok(ExitCode::SUCCESS)
}

/// Writes the private key readable by its owner only, created with that mode.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // An existing file keeps its old mode on open; force it.
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(bytes)?;
    file.sync_all()
}

fn license_issue(private_key: &Path, claims_path: &Path) -> CliResult {
    let key = PrivateKey::from_pkcs8_pem(&read_text(private_key)?)
        .map_err(|e| Failure::Usage(format!("{}: {e}", private_key.display())))?;
    let text = read_text(claims_path)?;
    let mut object = strict_json::parse_object(text.as_bytes())
        .map_err(|e| Failure::Negative(format!("{}: {e}", claims_path.display())))?;
    if !object.contains_key("iat") {
        object.insert("iat".into(), now().into());
    }
    if !object.contains_key("jti") {
        object.insert("jti".into(), random_id().map_err(Failure::Usage)?.into());
    }
    let claims = LicenseClaims::from_object(object)
        .map_err(|e| Failure::Negative(format!("{}: {e}", claims_path.display())))?;
    // New claims: also no control characters or bidi overrides in text, and consistent counts.
    claims
        .validate_new()
        .map_err(|e| Failure::Negative(format!("{}: {e}", claims_path.display())))?;
    let token = issue_license(&claims, &key).map_err(|e| Failure::Negative(e.to_string()))?;
    outln!("{token}");
    Ok(ExitCode::SUCCESS)
}

fn license_verify(args: &VerifyArgs) -> CliResult {
    let mut store = TrustStore::new();
    for path in &args.public_keys {
        store
            .add_document(&read_text(path)?)
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
            semver::Version::parse(version)
                .map_err(|e| Failure::Usage(format!("--version {version}: {e}")))?,
        );
    }
    if let Some(date) = &args.release_date {
        ctx.release_date = Some(parse_date(date)?);
    }
    ctx.features = args.features.clone();
    for attribute in &args.attributes {
        let (name, value) = attribute.split_once('=').ok_or_else(|| {
            Failure::Usage(format!("--attribute {attribute}: expected NAME=VALUE"))
        })?;
        ctx.attributes.insert(name.to_owned(), value.to_owned());
    }
    if let Some(path) = &args.fingerprint_file {
        let text = read_text(path)?;
        ctx.fingerprint =
            Some(MachineFingerprint::from_json(&text).map_err(|e| {
                Failure::Usage(format!("{}: not a fingerprint: {e}", path.display()))
            })?);
    }
    let token = read_token(&args.token)?;
    let verdict = verifier.check(&token, &ctx);
    if args.json {
        let mut value = serde_json::to_value(&verdict).unwrap_or_default();
        if let Some(object) = value.as_object_mut() {
            object.insert("usable".into(), verdict.is_usable().into());
            object.insert("evaluated_at".into(), ctx.now.into());
        }
        outln!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    } else {
        print_verdict(&verdict);
    }
    Ok(if verdict.is_usable() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_verdict(verdict: &Verdict) {
    outln!("status:     {}", verdict.status);
    outln!("reason:     {}", verdict.reason);
    if let Some(id) = &verdict.license_id {
        outln!("license id: {id}");
    }
    if let Some(model) = verdict.model {
        outln!("model:      {}", model.as_str());
    }
    if let Some(customer) = &verdict.customer {
        outln!("customer:   {customer}");
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
            feature.name,
            feature.status,
            feature.reason
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
    outln!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
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
