//! Signing keys at rest, end to end with the real binary: a server started with a
//! key-encryption key (KEK) seals the plaintext keys an older start left (database rows and the
//! data directory's key file) and keeps signing with them; a copy of its database and data
//! directory without the KEK signs nothing (it refuses to start, and the stored bytes are not
//! the key); a wrong KEK is exit 2 and overwrites nothing; the KEK file must be private; the
//! KMS hook (`--key-unwrap-command`) unwraps the KEK. On SQLite and PostgreSQL.
// `Server`'s Drop kills and waits for the child, which clippy cannot see.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::zombie_processes)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

mod support;
use support::backend::{Backend, on_both, temp_data};
use support::cli::database_url;
use support::online_server::Server;

const KEK_ENV: &str = "LICENSING_KEY_ENCRYPTION_KEY";
/// base64 of 32 bytes 0x01, and of 32 bytes 0x02.
const KEK: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const WRONG_KEK: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

fn serve(data: &Path, backend: &Backend, kek: Option<&str>, args: &[&str]) -> Command {
    let mut serve = Command::new(env!("CARGO_BIN_EXE_licensing-server"));
    serve
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args(backend.args())
        .args(args)
        .env_remove(KEK_ENV)
        .env_remove("LICENSING_KEY_ENCRYPTION_KEY_FILE")
        .env_remove("LICENSING_KEY_UNWRAP_COMMAND")
        .stderr(Stdio::from(
            std::fs::File::options()
                .create(true)
                .append(true)
                .open(data.with_extension("log"))
                .unwrap(),
        ));
    if let Some(kek) = kek {
        serve.env(KEK_ENV, kek);
    }
    serve
}

/// Runs `command` expecting it to stop by itself within 30 s: (exit code, stderr).
fn run_to_exit(mut command: Command, data: &Path) -> (Option<i32>, String) {
    let err = data.with_extension("err");
    let mut child = command
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("it kept running (started?)");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status.code(), std::fs::read_to_string(&err).unwrap())
}

/// The stored private keys (kid, private_pem), by kid.
fn stored_keys(url: &str) -> Vec<(String, String)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        sqlx::any::install_default_drivers();
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(url)
            .await
            .unwrap();
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT kid, private_pem FROM signing_keys ORDER BY kid")
                .fetch_all(&pool)
                .await
                .unwrap();
        pool.close().await;
        rows
    })
}

fn kids(server: &Server) -> Vec<String> {
    let jwks = server.admin("GET", "/.well-known/jwks.json", None, 200);
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn keys_are_sealed_with_a_kek_and_a_copy_without_it_signs_nothing() {
    on_both(
        "keys_are_sealed_with_a_kek_and_a_copy_without_it_signs_nothing",
        sealed_on,
    );
}

fn sealed_on(backend: Backend) {
    let (_dir, data) = temp_data();
    let url = database_url(&data, &backend);
    let key_file = data.join("signing-key.pem");

    // An older start, without a KEK: plaintext keys, as before.
    let server = Server::from_command(serve(&data, &backend, None, &[]));
    let token = server.admin_token.clone();
    let before = kids(&server);
    server.issue(json!({ "model": "perpetual", "max_machines": 1 }));
    server.stop();
    let plain = stored_keys(&url);
    assert_eq!(plain.len(), 1);
    assert!(plain[0].1.starts_with("-----BEGIN PRIVATE KEY-----"));
    let plain_file = std::fs::read_to_string(&key_file).unwrap();
    assert!(plain_file.contains("PRIVATE KEY"));

    // With the KEK: the keys are sealed at startup, and the server signs with the same key.
    let mut server = Server::from_command(serve(&data, &backend, Some(KEK), &[]));
    server.admin_token = token.clone();
    assert_eq!(kids(&server), before);
    server.issue(json!({ "model": "perpetual", "max_machines": 1 }));
    // A key made now is sealed too.
    server.admin("POST", "/v1/keys/stage", Some(json!({})), 201);
    server.stop();
    let sealed = stored_keys(&url);
    assert_eq!(sealed.len(), 2);
    let body = plain[0].1.lines().nth(1).unwrap();
    for (kid, stored) in &sealed {
        assert!(stored.starts_with(&format!("lkw1:{kid}:")), "{stored}");
        assert!(!stored.contains("PRIVATE KEY") && !stored.contains(body));
    }
    let sealed_file = std::fs::read_to_string(&key_file).unwrap();
    assert!(sealed_file.starts_with("lkw1:"), "{sealed_file}");
    assert!(!sealed_file.contains(body));

    // The stolen copy, started without the KEK: refused, naming what it needs.
    let (code, stderr) = run_to_exit(serve(&data, &backend, None, &[]), &data);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("encrypted at rest"), "{stderr}");
    assert!(stderr.contains(KEK_ENV), "{stderr}");
    // Nor does a command on the database sign or list without it.
    let mut list = Command::new(env!("CARGO_BIN_EXE_licensing-server"));
    list.args(["keys", "list", "--data-dir"])
        .arg(&data)
        .args(backend.args())
        .env_remove(KEK_ENV);
    let (code, stderr) = run_to_exit(list, &data);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("encrypted at rest"), "{stderr}");

    // A wrong KEK: exit 2, and nothing overwritten, not even a plaintext key beside the sealed
    // ones (an older server's retired key, say), which it would seal under the wrong KEK.
    let old = licensing_core::PrivateKey::generate().unwrap();
    let old_kid = old.public_key().kid().to_owned();
    let old_pem = old.to_pkcs8_pem().unwrap().to_string();
    support::cli::sql(
        &url,
        &[&format!(
            "INSERT INTO signing_keys (kid, private_pem, status, created_at, retired_at) \
             VALUES ('{old_kid}', '{old_pem}', 'retired', 1, 2)"
        )],
    );
    let mixed = stored_keys(&url);
    assert_eq!(mixed.len(), 3);
    let (code, stderr) = run_to_exit(serve(&data, &backend, Some(WRONG_KEK), &[]), &data);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("does not open"), "{stderr}");
    assert_eq!(stored_keys(&url), mixed);
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), sealed_file);

    // The right KEK again: the same keys sign.
    let mut server = Server::from_command(serve(&data, &backend, Some(KEK), &[]));
    server.admin_token = token;
    assert_eq!(kids(&server).len(), 2);
    server.issue(json!({ "model": "perpetual", "max_machines": 1 }));
    server.stop();
    // The sealed keys as they were, and the plaintext one sealed now.
    let last = stored_keys(&url);
    assert_eq!(last.len(), 3);
    for (kid, stored) in &last {
        match sealed.iter().find(|(k, _)| k == kid) {
            Some((_, before)) => assert_eq!(stored, before),
            None => assert!(stored.starts_with(&format!("lkw1:{old_kid}:")), "{stored}"),
        }
    }
}

/// The KEK file must not be readable by group or others; the KMS hook turns the wrapped KEK
/// into the KEK, and a failing hook is a clear error.
#[test]
fn the_kek_file_is_private_and_the_unwrap_command_is_a_kms_hook() {
    use std::os::unix::fs::PermissionsExt;
    let backend = Backend::Sqlite;
    let (dir, data) = temp_data();
    // Sealed by a start with the KEK in the environment.
    let server = Server::from_command(serve(&data, &backend, Some(KEK), &[]));
    let token = server.admin_token.clone();
    let before = kids(&server);
    server.stop();

    let kek_file = dir.path().join("kek");
    std::fs::write(&kek_file, format!("{KEK}\n")).unwrap();
    std::fs::set_permissions(&kek_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let file_arg = ["--key-encryption-key-file", kek_file.to_str().unwrap()];
    let (code, stderr) = run_to_exit(serve(&data, &backend, None, &file_arg), &data);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("chmod 600"), "{stderr}");
    std::fs::set_permissions(&kek_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut server = Server::from_command(serve(&data, &backend, None, &file_arg));
    server.admin_token = token.clone();
    assert_eq!(kids(&server), before);
    server.stop();

    // The KMS hook: the file holds the KEK as the "KMS" wrapped it; the command unwraps it.
    let wrapped = dir.path().join("kek.wrapped");
    std::fs::write(&wrapped, format!("wrapped:{KEK}\n")).unwrap();
    std::fs::set_permissions(&wrapped, std::fs::Permissions::from_mode(0o600)).unwrap();
    let hook = |command: &str| {
        serve(
            &data,
            &backend,
            None,
            &[
                "--key-encryption-key-file",
                wrapped.to_str().unwrap(),
                "--key-unwrap-command",
                command,
            ],
        )
    };
    let mut server = Server::from_command(hook("sed s/^wrapped://"));
    server.admin_token = token;
    assert_eq!(kids(&server), before);
    server.issue(json!({ "model": "perpetual", "max_machines": 1 }));
    server.stop();
    let (code, stderr) = run_to_exit(hook("echo unavailable >&2; exit 7"), &data);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--key-unwrap-command"), "{stderr}");
    let (code, stderr) = run_to_exit(hook("cat"), &data);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("not base64"), "{stderr}");
}
