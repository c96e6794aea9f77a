//! A desktop app's licensing check at launch, ready to copy.
//!
//! ```text
//! startup_check --public-key keys/jwks.json [--product com.example.cad] [--store DIR]
//!               [--install TOKEN_FILE] [--version 2.4.0] [--feature NAME]... [--timing]
//! ```
//! A real app embeds its public keys (`include_str!("jwks.json")`) and its version
//! (`env!("CARGO_PKG_VERSION")`) instead of taking them as arguments.
//! Exit status: 0 when the license may be used, 1 when not, 2 on setup errors.

use std::process::ExitCode;
use std::time::Instant;

use licensing_core::store::{LicenseStore, Scope};
use licensing_core::{Context, Licensing, Status, TrustStore, unix_now};

struct Args {
    public_key: String,
    product: String,
    store: Option<String>,
    install: Option<String>,
    version: Option<String>,
    features: Vec<String>,
    timing: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        public_key: String::new(),
        product: "com.example.cad".into(),
        store: None,
        install: None,
        version: None,
        features: Vec::new(),
        timing: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--public-key" => args.public_key = value()?,
            "--product" => args.product = value()?,
            "--store" => args.store = Some(value()?),
            "--install" => args.install = Some(value()?),
            "--version" => args.version = Some(value()?),
            "--feature" => args.features.push(value()?),
            "--timing" => args.timing = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.public_key.is_empty() {
        return Err("--public-key is required".into());
    }
    Ok(args)
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(message) => {
            eprintln!("startup_check: {message}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<ExitCode, String> {
    let started = Instant::now();
    let args = parse_args()?;
    let keys = std::fs::read_to_string(&args.public_key).map_err(|e| e.to_string())?;
    let trust = TrustStore::from_document(&keys).map_err(|e| e.to_string())?;
    let store = match &args.store {
        Some(dir) => LicenseStore::at(dir),
        None => LicenseStore::for_app("com", "Example", "CAD", Scope::User),
    }
    .map_err(|e| e.to_string())?;

    let mut context = Context::default();
    if let Some(v) = &args.version {
        context.app_version = Some(licensing_core::parse_version(v).map_err(|e| e.to_string())?);
    }
    context.features = args.features.clone();
    let licensing = Licensing::new(trust, args.product.clone(), store).with_context(context);

    if let Some(path) = &args.install {
        let token = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        let verdict = licensing
            .install(&token, unix_now())
            .map_err(|e| e.to_string())?;
        println!("install: {} ({})", verdict.status, verdict.reason);
    }

    let check_started = Instant::now();
    let verdict = licensing
        .check_at_startup_now()
        .map_err(|e| e.to_string())?;
    let check_time = check_started.elapsed();

    println!("license: {} ({})", verdict.status, verdict.reason);
    if let Some(left) = verdict.grace_left {
        println!("grace period: {} days left, please renew", left / 86_400);
    }
    for feature in &verdict.features {
        println!("feature {}: {}", feature.name, feature.status);
    }
    match verdict.status {
        Status::NoLicense => println!("=> show the activation dialog"),
        Status::ClockTampered => println!("=> ask the user to correct the system clock"),
        s if s.is_usable() => println!("=> start the app"),
        _ => println!("=> the app may not start: {}", verdict.status.message()),
    }
    if args.timing {
        println!(
            "timing: check_at_startup {} µs, whole process so far {} µs",
            check_time.as_micros(),
            started.elapsed().as_micros()
        );
    }
    Ok(if verdict.is_usable() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
