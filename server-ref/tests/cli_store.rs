//! The CLI commands that work on a server's database directly (`admin-token`, `offline
//! activate`, `audit verify`) and how `serve` creates it: on SQLite and, under
//! scripts/with-postgres.sh, on PostgreSQL. Commands other than `serve` never create a data
//! directory or a database, and `audit verify` never writes one; `serve` creates the SQLite
//! file 0600 (it holds the private signing keys), from `--database-url sqlite:PATH` too.
// `Server`'s Drop kills and waits for the child, which clippy cannot see.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::zombie_processes)]

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

mod support;
use backend::{Backend, on_both, temp_data};
use online_server::Server;
use support::cli::{cli, database_url, sql, stderr};
use support::{backend, online_server};

/// Review: a crash between creating the operator organization and its token left no way in.
/// The state such a crash left (the organization, no token) is made here; `serve` says what to
/// do, `admin-token` mints a working admin token from the data directory, and the audit trail
/// records it as actor `cli`.
#[test]
fn an_operator_without_a_token_recovers_with_admin_token() {
    on_both("an_operator_without_a_token_recovers", |backend| {
        let (_dir, data) = temp_data();
        let server = Server::start_with(&data, &backend.args());
        assert!(!server.admin_token.is_empty());
        server.stop();
        sql(&database_url(&data, &backend), &["DELETE FROM api_tokens"]);

        let server = Server::start_with(&data, &backend.args());
        assert!(server.admin_token.is_empty(), "no second bootstrap token");
        let log = std::fs::read_to_string(data.with_extension("log")).unwrap();
        assert!(log.contains("admin-token"), "{log}");
        server.stop();

        let mut args = vec!["admin-token", "--data-dir", data.to_str().unwrap()];
        args.extend(backend.args());
        let out = cli(&args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(token.starts_with("lst_"), "{token}");
        assert!(stderr(&out).contains("shown once"));

        let mut server = Server::start_with(&data, &backend.args());
        server.admin_token = token.clone();
        let orgs = server.admin("GET", "/v1/organizations", None, 200);
        assert_eq!(orgs["organizations"][0]["id"], "org_operator");
        // An operator admin indeed: it creates organizations.
        server.admin(
            "POST",
            "/v1/organizations",
            Some(json!({ "name": "Contoso" })),
            201,
        );
        let audit = server.admin("GET", "/v1/audit", None, 200);
        let first = &audit["entries"][0];
        assert_eq!(first["actor"], "cli", "{audit}");
        assert_eq!(first["action"], "cli admin-token", "{audit}");
        server.stop();

        // Another organization by id; an unknown one is refused and nothing is minted.
        let mut args = vec![
            "admin-token",
            "--data-dir",
            data.to_str().unwrap(),
            "--organization",
            "org_nope",
        ];
        args.extend(backend.args());
        let out = cli(&args);
        assert_eq!(out.status.code(), Some(2));
        assert!(stderr(&out).contains("org_nope"), "{}", stderr(&out));
        assert!(out.stdout.is_empty());
    });
}

/// Part 7 of the review: `offline activate` with a mistyped --data-dir created a database and
/// a signing key, then answered "unknown license". `admin-token` and `audit verify` refuse a
/// missing directory or database the same way.
#[test]
fn commands_on_the_database_never_create_one() {
    let dir = tempfile::tempdir().unwrap();
    let request = dir.path().join("request.json");
    let body = json!({
        "kind": "licensing.offline_activation_request", "version": 1,
        "license_key": "ABCDE-FGHJK-LMNPQ-RSTUV-WXYZ2",
        "fingerprint": { "id": "box", "components": { "machine_id": "h" } },
        "nonce": "offline-nonce-0123456789", "created_at": 1_800_000_000,
    });
    std::fs::write(&request, body.to_string()).unwrap();
    // A well-formed receipt (its MAC is never checked: there is no database to check it in).
    let receipt = dir.path().join("receipt.json");
    let receipt_body = json!({
        "kind": "licensing.offline_deactivation_receipt", "version": 1,
        "license_id": "lic_x", "machine_id": "mch_x", "fingerprint": "box",
        "machine_token_jti": "jti_x", "deactivated_at": 1_800_000_000,
        "nonce": "deactivation-nonce-0123456789", "mac": "AAAA",
    });
    std::fs::write(&receipt, receipt_body.to_string()).unwrap();
    let typo = dir.path().join("dta");
    let existing = dir.path().join("empty");
    std::fs::create_dir(&existing).unwrap();
    let sqlite_typo = format!("sqlite:{}", dir.path().join("typo.db").display());
    for (args, what) in [
        (
            vec![
                "offline",
                "activate",
                "--request",
                request.to_str().unwrap(),
                "--data-dir",
                typo.to_str().unwrap(),
            ],
            "no data directory",
        ),
        (
            vec![
                "offline",
                "activate",
                "--request",
                request.to_str().unwrap(),
                "--data-dir",
                existing.to_str().unwrap(),
            ],
            "no database",
        ),
        (
            vec![
                "offline",
                "activate",
                "--request",
                request.to_str().unwrap(),
                "--database-url",
                &sqlite_typo,
            ],
            "no database",
        ),
        (
            vec!["admin-token", "--data-dir", typo.to_str().unwrap()],
            "no data directory",
        ),
        (
            vec!["admin-token", "--database-url", &sqlite_typo],
            "no database",
        ),
        (
            vec!["audit", "verify", "--data-dir", existing.to_str().unwrap()],
            "no database",
        ),
        (
            vec!["audit", "verify", "--database-url", &sqlite_typo],
            "no database",
        ),
        (
            vec![
                "offline",
                "deactivate",
                "--receipt",
                receipt.to_str().unwrap(),
                "--data-dir",
                typo.to_str().unwrap(),
            ],
            "no data directory",
        ),
        (
            vec![
                "offline",
                "deactivate",
                "--receipt",
                receipt.to_str().unwrap(),
                "--database-url",
                &sqlite_typo,
            ],
            "no database",
        ),
        (
            vec!["keys", "list", "--data-dir", existing.to_str().unwrap()],
            "no database",
        ),
        (
            vec!["keys", "stage", "--database-url", &sqlite_typo],
            "no database",
        ),
    ] {
        let out = cli(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(what), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    assert!(!typo.exists(), "no data directory created");
    assert_eq!(
        std::fs::read_dir(&existing).unwrap().count(),
        0,
        "nothing created"
    );
    assert!(!dir.path().join("typo.db").exists(), "no database created");
}

/// Part 7: `audit verify` never creates or migrates a database: a database without the
/// server's schema (or one an older version left) is refused and left as it was, on SQLite
/// and PostgreSQL; its --help offers only the flags that apply to it.
#[test]
fn audit_verify_never_writes() {
    on_both("audit_verify_never_writes", |backend| {
        let (_dir, data) = temp_data();
        std::fs::create_dir(&data).unwrap();
        let url = match &backend {
            Backend::Sqlite => {
                let file = data.join("licensing.db");
                std::fs::File::create(&file).unwrap();
                format!("sqlite://{}", file.display())
            }
            Backend::Postgres(url) => url.clone(),
        };
        sql(&url, &["CREATE TABLE unrelated (x BIGINT)"]);
        let before = match &backend {
            Backend::Sqlite => std::fs::read(data.join("licensing.db")).unwrap(),
            Backend::Postgres(_) => Vec::new(),
        };
        let mut args = vec!["audit", "verify", "--data-dir", data.to_str().unwrap()];
        args.extend(backend.args());
        let out = cli(&args);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("no licensing schema"),
            "{}",
            stderr(&out)
        );
        match &backend {
            Backend::Sqlite => {
                assert_eq!(std::fs::read(data.join("licensing.db")).unwrap(), before);
            }
            Backend::Postgres(url) => {
                // Nothing migrated: a migration table would make this CREATE fail.
                sql(
                    url,
                    &[
                        "CREATE TABLE _sqlx_migrations (x BIGINT)",
                        "DROP TABLE _sqlx_migrations",
                    ],
                );
            }
        }

        // A server's database one migration behind: refused, and not migrated.
        let (_dir2, data) = temp_data();
        let server = Server::start_with(&data, &backend.args());
        server.stop();
        let url = database_url(&data, &backend);
        let latest = "(SELECT MAX(version) FROM _sqlx_migrations)";
        let copy = format!(
            "CREATE TABLE saved AS SELECT * FROM _sqlx_migrations WHERE version = {latest}"
        );
        let delete = format!("DELETE FROM _sqlx_migrations WHERE version = {latest}");
        sql(&url, &[&copy, &delete]);
        let mut args = vec!["audit", "verify", "--data-dir", data.to_str().unwrap()];
        args.extend(backend.args());
        let out = cli(&args);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("start the new `serve`"),
            "{}",
            stderr(&out)
        );
        // Still behind (a migration run would have added the row back).
        sql(
            &url,
            &[
                "INSERT INTO _sqlx_migrations SELECT * FROM saved",
                "DROP TABLE saved",
            ],
        );
        let out = cli(&args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    });

    let help = String::from_utf8(cli(&["audit", "verify", "--help"]).stdout).unwrap();
    for flag in ["--data-dir", "--database-url", "--anchor"] {
        assert!(help.contains(flag), "{help}");
    }
    for flag in ["--signing-key", "--issuer", "--listen"] {
        assert!(!help.contains(flag), "audit verify offers {flag}: {help}");
    }
}

/// Review: `--database-url sqlite:/path/lic.db` (as the README shows it) failed without
/// `?mode=rwc`, and the file was created 0644 while it holds the private signing keys. Under
/// umask 022, `serve` creates it (and its -wal and -shm) 0600, and makes an existing one 0600.
#[cfg(unix)]
#[test]
fn serve_creates_a_private_sqlite_file_from_a_url() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, data) = temp_data();
    let file = dir.path().join("db").join("lic.db");
    let url = format!("sqlite:{}", file.display());
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let with_suffix = |suffix: &str| {
        let mut name = file.as_os_str().to_owned();
        name.push(suffix);
        std::path::PathBuf::from(name)
    };
    // umask 022 for the server, whatever the test runner's.
    let start = || {
        let log = std::fs::File::create(data.with_extension("log")).unwrap();
        let mut serve = Command::new("sh");
        serve
            .args(["-c", "umask 022 && exec \"$0\" \"$@\""])
            .arg(env!("CARGO_BIN_EXE_licensing-server"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .args(["--database-url", &url])
            .stderr(std::process::Stdio::from(log));
        serve
    };
    let server = Server::from_command(start());
    assert!(
        !server.admin_token.is_empty(),
        "a first start on the URL's new file"
    );
    server.admin("GET", "/v1/organizations", None, 200);
    for path in [file.clone(), with_suffix("-wal"), with_suffix("-shm")] {
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
    server.stop();
    // An existing database left 0644 (by an older version) is made 0600.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let server = Server::from_command(start());
    assert!(server.admin_token.is_empty(), "the same database");
    assert_eq!(mode(&file), 0o600);
    server.stop();
}

/// `audit verify` reads a live server's SQLite database while it serves: nothing to create.
#[test]
fn audit_verify_reads_a_running_server() {
    let (_dir, data) = temp_data();
    let server = Server::start(&data);
    server.admin(
        "POST",
        "/v1/products",
        Some(json!({ "id": "p", "name": "P" })),
        201,
    );
    let out = cli(&["audit", "verify", "--data-dir", data.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["entries"], 1, "{answer}");
    server.stop();
}
