//! Start-up of `serve`: logging, the runtime, the data directory and the database, the
//! signing key, the admin bootstrap token, the reaper, the inactivity reclamation and the key
//! reload, then serving until a signal.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use super::*;

/// Runs `serve` to completion: exit 0 after a graceful shutdown, 2 when startup fails.
pub fn run(args: ServeArgs) -> ExitCode {
    init_logging("info,sqlx=warn");
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let settings = match Settings::resolve(args) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(serve(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `default_filter`).
pub(super) fn init_logging(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

pub(super) fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the async runtime: {e}"))
}

/// `println!` that ignores a closed stdout.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// Refuses an unusable `--database-url` before anything is created.
pub(super) fn check_database_url(args: &Settings) -> Result<(), String> {
    if let Some(url) = &args.database_url
        && !["sqlite:", "postgres://", "postgresql://"]
            .iter()
            .any(|scheme| url.starts_with(scheme))
    {
        return Err("--database-url must start with sqlite: or postgres:// (postgresql://)".into());
    }
    Ok(())
}

/// Opens what `serve` works on: the data directory (created), the migrated database (a SQLite
/// file created 0600: it holds the private signing keys), and the signing key in it (from the
/// key file on first start or when one is named).
pub(super) async fn open_store(args: &Settings) -> Result<Db, String> {
    check_database_url(args)?;
    create_data_dir(&args.data_dir)?;
    let file = match &args.database_url {
        None => Some(args.data_dir.join("licensing.db")),
        Some(url) if url.starts_with("sqlite:") => db::sqlite_url_path(url)?,
        Some(_) => None,
    };
    let db = match (&args.database_url, file) {
        // `sqlite:/path/lic.db` as written in the README: the file is created here (0600), so
        // the URL needs no `?mode=rwc`.
        (_, Some(file)) => {
            if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
                create_data_dir(parent)?;
            }
            private_database_file(&file)?;
            Db::open_sqlite_file(&file).await?
        }
        (Some(url), None) => Db::open(url).await?,
        (None, None) => return Err("no database".into()),
    };
    if let Some(kek) = key_wrap::load(&args.key_encryption)? {
        db.set_key_encryption(kek);
        // A wrong KEK stops here, before anything is written.
        check_sealed_keys_open(&db).await?;
    }
    ensure_signing_key(&db, args).await?;
    if db.key_encryption().is_some() {
        seal_plaintext_keys(&db, &args.data_dir.join("signing-key.pem")).await?;
    }
    Ok(db)
}

/// Every sealed signing key in the database opens with the KEK set on `db`.
async fn check_sealed_keys_open(db: &Db) -> Result<(), String> {
    let rows = db
        .list_signing_keys()
        .await
        .map_err(|e| format!("loading signing keys: {e}"))?;
    for row in rows
        .iter()
        .filter(|row| key_wrap::is_sealed(&row.private_pem))
    {
        key_wrap::open_stored(db.key_encryption(), Some(&row.kid), &row.private_pem)?;
    }
    Ok(())
}

/// Seals, with the KEK set on `db`, the signing keys stored in plaintext: the database's rows
/// (each replaced only if still the plaintext read, so replicas starting together agree) and
/// the data directory's key file `file` (replaced by renaming a sealed copy over it).
async fn seal_plaintext_keys(db: &Db, file: &Path) -> Result<(), String> {
    let rows = db
        .list_signing_keys()
        .await
        .map_err(|e| format!("loading signing keys: {e}"))?;
    let mut sealed = 0u64;
    for row in rows
        .iter()
        .filter(|row| !key_wrap::is_sealed(&row.private_pem))
    {
        let new = key_wrap::seal_for_storage(db.key_encryption(), &row.kid, &row.private_pem)?;
        if db
            .reseal_signing_key(&row.kid, &row.private_pem, &new)
            .await
            .map_err(|e| format!("sealing signing key {}: {e}", row.kid))?
        {
            sealed += 1;
        }
    }
    if sealed > 0 {
        tracing::info!(
            keys = sealed,
            "sealed the plaintext signing keys with the key-encryption key"
        );
    }
    secrets::seal_key_file(file, db.key_encryption())
}

/// Opens the database of an existing server for a command that works on it directly (`offline
/// activate`, `admin-token`, `audit verify`): a missing data directory or database file is
/// refused (never created; a mistyped `--data-dir` must not start a new server's state), and
/// so is a PostgreSQL database without the server's schema. `schema` says whether it may be
/// migrated or must be read only.
pub(crate) async fn open_existing_store(args: &Settings, schema: db::Schema) -> Result<Db, String> {
    let kek = key_wrap::load(&args.key_encryption)?;
    let db = open_existing_database(args, schema).await?;
    if let Some(kek) = kek {
        db.set_key_encryption(kek);
    }
    Ok(db)
}

async fn open_existing_database(args: &Settings, schema: db::Schema) -> Result<Db, String> {
    check_database_url(args)?;
    let mode = if schema == db::Schema::ReadOnly {
        "ro"
    } else {
        "rw"
    };
    let never = "this command never creates one";
    let file = match &args.database_url {
        None => {
            if !args.data_dir.is_dir() {
                return Err(format!(
                    "no data directory at {} (check --data-dir; {never})",
                    args.data_dir.display()
                ));
            }
            args.data_dir.join("licensing.db")
        }
        Some(url) if url.starts_with("sqlite:") => match db::sqlite_url_path(url)? {
            Some(file) => file,
            None => return Err("--database-url: an in-memory database holds no server".into()),
        },
        Some(url) => return Db::open_as(url, schema).await,
    };
    if !file.is_file() {
        return Err(format!(
            "no database at {} (check --data-dir / --database-url; {never})",
            file.display()
        ));
    }
    Db::open_as(&db::sqlite_file_url(&file, mode)?, schema).await
}

/// The SQLite database file holds the private signing keys: it is created 0600 whatever the
/// umask (SQLite gives its `-wal` and `-shm` files the database file's mode), and an existing
/// one (with its `-wal` and `-shm`) open to group or others is made 0600.
pub(super) fn private_database_file(path: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let fail = |p: &Path, e: std::io::Error| format!("database file {}: {e}", p.display());
        // Never truncated: an existing database is only opened.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| fail(path, e))?;
        let mut files = vec![(path.to_path_buf(), Some(file))];
        for suffix in ["-wal", "-shm"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            files.push((std::path::PathBuf::from(name), None));
        }
        for (path, file) in files {
            let meta = match &file {
                Some(file) => file.metadata(),
                None => std::fs::symlink_metadata(&path),
            };
            let meta = match meta {
                Ok(meta) => meta,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(fail(&path, e)),
            };
            let mode = meta.permissions().mode();
            if meta.is_file() && mode & 0o077 != 0 {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o700))
                    .map_err(|e| fail(&path, e))?;
                tracing::warn!(path = %path.display(), "was open to group or others; made 0600");
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

pub(super) async fn serve(args: Settings) -> Result<(), String> {
    let db = open_store(&args).await?;
    db.set_seat_batch_wait(args.seat_batch_wait);
    bootstrap_admin_token(&db).await?;
    let state = AppState::new(db.clone(), args.issuer.clone(), args.client_rate_per_minute).await?;
    state.set_key_min_publish_secs(args.key_min_publish_secs);
    tracing::info!(kid = state.key().public_key().kid(), "current signing key");
    tokio::spawn(reload_keys_periodically(
        state.clone(),
        std::time::Duration::from_secs(args.key_reload_secs),
    ));

    let tls = match &args.tls {
        Some((cert, key)) => Some(Arc::new(super::tls::Tls::load(cert, key)?)),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("listening on {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(%addr, tls = tls.is_some(), "listening");
    let tls_reloader = tls
        .as_ref()
        .map(|tls| Arc::clone(tls).spawn_reloader(super::tls::RELOAD_EVERY));
    outln!(
        "listening on {}://{addr}",
        if tls.is_some() { "https" } else { "http" }
    );
    let reaper = spawn_reaper(
        db.clone(),
        std::time::Duration::from_secs(args.reap_interval),
        now,
    );
    let reclaimer = (args.reclaim_interval > 0).then(|| {
        reclamation::spawn_reclaimer(
            state.clone(),
            std::time::Duration::from_secs(args.reclaim_interval),
            now,
        )
    });
    let transport = conn::Transport {
        tls,
        behind_tls_proxy: args.behind_tls_proxy,
    };
    let checkpointer = (args.audit_checkpoint_interval > 0).then(|| {
        super::checkpoints::spawn_checkpointer(
            state.clone(),
            std::time::Duration::from_secs(args.audit_checkpoint_interval),
            now,
        )
    });
    let syslog = args
        .audit_syslog
        .map(|target| super::syslog::spawn_syslog(db.clone(), target, super::syslog::POLL, None));
    conn::serve(
        listener,
        router(state.clone()),
        args.limits,
        transport,
        shutdown_signal(),
    )
    .await;
    reaper.abort();
    if let Some(reloader) = tls_reloader {
        reloader.abort();
    }
    if let Some(reclaimer) = reclaimer {
        reclaimer.abort();
    }
    if let Some(checkpointer) = checkpointer {
        checkpointer.abort();
    }
    if let Some(syslog) = syslog {
        syslog.abort();
    }
    // Audit events still queued are written before the database closes.
    state.audit().flush().await;
    db.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// What one reaper run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Reaped {
    /// Seat leases released (lapsed).
    pub leases: u64,
    /// Denials purged (older than the retention).
    pub denials: u64,
    /// Places in wait lines given up (their clients stopped asking, or their wait is over).
    pub places: u64,
}

/// One reaper run at `now`: releases the seat leases lapsed by then, purges denials older
/// than the retention and gives up lapsed places in wait lines.
pub(crate) async fn reap_once(db: &Db, now: i64) -> Result<Reaped, sqlx::Error> {
    Ok(Reaped {
        leases: db.reap_expired_leases(now).await?,
        denials: db.purge_denials(now).await?,
        places: db.reap_queue(now).await?,
    })
}

/// What one pruning run did (retention, see `GET /v1/retention`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Pruned {
    /// Client events blanked (their organization's `audit_days` passed).
    pub audit_events: u64,
    /// Admin entries deleted from the chain's start.
    pub audit_entries: u64,
    /// Released leases deleted (`lease_history_days`).
    pub leases: u64,
}

/// Seconds between two pruning runs of the reaper.
pub(crate) const PRUNE_EVERY_SECS: i64 = 3600;

/// One pruning run at `now`: for each organization with a retention, its client events older
/// than its `audit_days` are blanked and its leases released before its `lease_history_days`
/// deleted; then the admin chain's start, as far as every entry is due, is deleted below a
/// checkpoint. (Denials are purged by [`reap_once`], by the same retention.)
pub(crate) async fn prune_once(db: &Db, now: i64) -> Result<Pruned, sqlx::Error> {
    let mut pruned = Pruned::default();
    let horizon = |days: i64| now.saturating_sub(days.saturating_mul(86_400));
    for policy in db.list_retention().await? {
        if let Some(days) = policy.audit_days {
            let blanked = db
                .prune_audit_events(&policy.organization_id, horizon(days))
                .await?;
            pruned.audit_events = pruned.audit_events.saturating_add(blanked);
        }
        if let Some(days) = policy.lease_history_days {
            let deleted = db
                .prune_lease_history(&policy.organization_id, horizon(days))
                .await?;
            pruned.leases = pruned.leases.saturating_add(deleted);
        }
    }
    pruned.audit_entries = db.prune_audit_log(now, OPERATOR_ORGANIZATION).await?;
    // Timed-out console sessions (they no longer sign in; here they stop taking room).
    db.purge_console_sessions(
        now.saturating_sub(super::console::session::IDLE_TIMEOUT_SECS),
        now.saturating_sub(super::console::session::ABSOLUTE_TIMEOUT_SECS),
    )
    .await?;
    Ok(pruned)
}

/// The background reaper: [`reap_once`] every `every`, and [`prune_once`] at its first tick
/// and then every [`PRUNE_EVERY_SECS`], at the time `clock` tells (the server clock; tests
/// inject theirs). Errors are logged and retried at the next tick. Nothing is done at startup
/// beyond what the clock says: a restart frees no seat early.
pub(crate) fn spawn_reaper(
    db: Db,
    every: std::time::Duration,
    clock: fn() -> i64,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pruned_at: Option<i64> = None;
        loop {
            ticks.tick().await;
            let now = clock();
            if pruned_at.is_none_or(|at| now.saturating_sub(at) >= PRUNE_EVERY_SECS) {
                pruned_at = Some(now);
                match prune_once(&db, now).await {
                    Ok(pruned) if pruned == Pruned::default() => {}
                    Ok(Pruned {
                        audit_events,
                        audit_entries,
                        leases,
                    }) => tracing::info!(
                        audit_events,
                        audit_entries,
                        leases,
                        "pruned by the organizations' retention"
                    ),
                    Err(e) => tracing::warn!(error = %e, "pruning run failed"),
                }
            }
            match reap_once(&db, now).await {
                Ok(reaped) if reaped == Reaped::default() => {}
                Ok(Reaped {
                    leases,
                    denials,
                    places,
                }) => {
                    tracing::info!(
                        leases,
                        denials,
                        places,
                        "reaped lapsed leases and places in line, and old denials"
                    );
                }
                Err(e) => tracing::warn!(error = %e, "reaper run failed"),
            }
        }
    })
}

pub(super) fn create_data_dir(dir: &Path) -> Result<(), String> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| format!("data directory {}: {e}", dir.display()))
}

/// The signing key at startup. `--signing-key FILE` (must exist): that key becomes current
/// unless the database knows it already (a restart with the same flag changes nothing, and
/// never undoes a rotation made since). Without it: the database's current key; on first
/// start, `signing-key.pem` in the data directory (created if missing) becomes current.
pub(crate) async fn ensure_signing_key(db: &Db, args: &Settings) -> Result<(), String> {
    let (path, explicit) = match &args.signing_key {
        Some(path) => (path.clone(), true),
        None => (args.data_dir.join("signing-key.pem"), false),
    };
    if !explicit {
        let rows = db
            .list_signing_keys()
            .await
            .map_err(|e| format!("loading signing keys: {e}"))?;
        if rows.iter().any(|row| row.status == "current") {
            return Ok(());
        }
    }
    let (key, created) =
        secrets::load_or_create_signing_key(&path, !explicit, db.key_encryption())?;
    let kid = key.public_key().kid().to_owned();
    let row = db::SigningKeyRow {
        private_pem: key_wrap::seal_for_storage(
            db.key_encryption(),
            &kid,
            &key.to_pkcs8_pem().map_err(|e| e.to_string())?,
        )?,
        kid,
        status: "current".into(),
        created_at: now(),
        retired_at: None,
        promote_at: None,
    };
    let added = db
        .add_current_signing_key(&row, !explicit)
        .await
        .map_err(|e| format!("storing the signing key: {e}"))?;
    tracing::info!(kid = %row.kid, path = %path.display(), created, added, "signing key file");
    Ok(())
}

/// Re-reads the signing keys every `period`, so a rotation made on another replica takes
/// effect here too (tokens signed meanwhile by either key verify everywhere: the previous key
/// stays published), after promoting the staged keys whose `promote_at` has come (any replica
/// may; the database lets one do it).
pub(super) async fn reload_keys_periodically(state: AppState, period: std::time::Duration) {
    let mut tick = tokio::time::interval(period);
    tick.tick().await;
    loop {
        tick.tick().await;
        routes::promote_due_keys(&state, now()).await;
        if let Err(e) = state.reload_keys().await {
            tracing::warn!(error = %e, "reloading signing keys");
        }
        // Forget license keys whose rate budget is full again (bounds the limiter's memory).
        state.0.client_limiter.retain_recent();
    }
}

/// The organization created at first start; its admins may create organizations and manage
/// signing keys.
pub(crate) const OPERATOR_ORGANIZATION: &str = "org_operator";

/// On first start, creates the operator organization with an admin token and prints the token
/// once. Exactly once even when several replicas start together on one PostgreSQL: only the
/// replica whose insert of the fixed organization id succeeds mints the token. The organization
/// and its token are written in one transaction: a crash between them leaves neither, and the
/// next start bootstraps again. An operator organization left without an admin token (by an
/// older version's crash, or every token revoked) is reported with its remedy,
/// `licensing-server admin-token`.
pub(super) async fn bootstrap_admin_token(db: &Db) -> Result<(), String> {
    let org = db::Organization {
        id: OPERATOR_ORGANIZATION.into(),
        name: "Operator".into(),
        operator: 1,
        created_at: now(),
    };
    let token = secrets::new_api_token()?;
    let id = secrets::new_id("tok")?;
    let grant = db::NewApiToken {
        id: &id,
        organization_id: OPERATOR_ORGANIZATION,
        token_hash: &secrets::sha256_hex(token.as_bytes()),
        role: "admin",
        label: "bootstrap",
        now: now(),
    };
    if !db
        .insert_organization_with_token(&org, &grant)
        .await
        .map_err(|e| e.to_string())?
    {
        let tokens = db
            .list_api_tokens(OPERATOR_ORGANIZATION)
            .await
            .map_err(|e| e.to_string())?;
        if !tokens
            .iter()
            .any(|t| t.role == "admin" && t.revoked_at.is_none())
        {
            tracing::warn!(
                "the operator organization has no live admin API token; mint one with \
                 `licensing-server admin-token` (same --data-dir / --database-url)"
            );
        }
        return Ok(());
    }
    tracing::info!(token_id = %id, "created the admin bootstrap API token");
    outln!("admin API token (shown once, only its hash is stored): {token}");
    Ok(())
}

pub(super) async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
