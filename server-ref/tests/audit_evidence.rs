//! Signed checkpoints and audit packages end to end (issue 24): the real `licensing-server
//! serve` on 127.0.0.1 (SQLite, and PostgreSQL under scripts/with-postgres.sh), and the
//! `audit verify` / `audit verify-package` commands on its database and files. The attack: a
//! database writer rewrites the whole admin chain with every hash recomputed; the chain alone
//! still verifies, an earlier checkpoint does not.
// `Server`'s Drop kills and waits for the child, which clippy cannot see.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::zombie_processes)]

use std::path::Path;
use std::process::Command;

use licensing_core::audit_checkpoint::{AuditCheckpointClaims, issue_audit_checkpoint};
use serde_json::{Value, json};

mod support;
use support::backend::{Backend, on_both, temp_data};
use support::cli::{database_url, sql};
use support::online_server::Server;

/// `licensing-server audit verify ARGS` on the server's database: exit code and JSON answer.
fn verify(data: &Path, backend: &Backend, args: &[&str]) -> (Option<i32>, Value) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_licensing-server"));
    command.args(["audit", "verify", "--data-dir"]).arg(data);
    if let Backend::Postgres(url) = backend {
        command.args(["--database-url", url]);
    }
    let run = command.args(args).output().unwrap();
    let answer = serde_json::from_slice(&run.stdout).unwrap_or(Value::Null);
    (run.status.code(), answer)
}

/// `licensing-server audit verify-package FILE ARGS`: exit code and JSON answer.
fn verify_package(file: &Path, args: &[&str]) -> (Option<i32>, Value) {
    let run = Command::new(env!("CARGO_BIN_EXE_licensing-server"))
        .args(["audit", "verify-package"])
        .arg(file)
        .args(args)
        .output()
        .unwrap();
    let answer = serde_json::from_slice(&run.stdout).unwrap_or(Value::Null);
    (run.status.code(), answer)
}

/// The hash of an admin entry (docs/FORMAT.md), written again here to forge a whole chain.
fn hash_of(entry: &Value, actor: &str, prev_hash: &str) -> String {
    use sha2::Digest;
    fn text(hasher: &mut sha2::Sha256, value: &str) {
        hasher.update((value.len() as u64).to_be_bytes());
        hasher.update(value.as_bytes());
    }
    let mut h = sha2::Sha256::new();
    text(&mut h, "licensing-server audit_log v1");
    h.update(entry["seq"].as_i64().unwrap().to_be_bytes());
    h.update(entry["at"].as_i64().unwrap().to_be_bytes());
    h.update([1u8]);
    text(&mut h, entry["organization_id"].as_str().unwrap());
    text(&mut h, actor);
    text(&mut h, entry["action"].as_str().unwrap());
    text(&mut h, entry["target"].as_str().unwrap());
    h.update(entry["status"].as_i64().unwrap().to_be_bytes());
    text(&mut h, prev_hash);
    base16ct::lower::encode_string(&h.finalize())
}

fn package(server: &Server, file: &Path) {
    let response = server
        .http
        .get(format!("{}/v1/audit/package", server.url))
        .bearer_auth(&server.admin_token)
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    std::fs::write(file, response.bytes().unwrap()).unwrap();
}

fn product(server: &Server, id: &str) {
    server.admin(
        "POST",
        "/v1/products",
        Some(json!({ "id": id, "name": id })),
        201,
    );
}

#[test]
fn a_rewritten_chain_is_caught_by_an_earlier_checkpoint() {
    on_both(
        "a_rewritten_chain_is_caught_by_an_earlier_checkpoint",
        |backend| {
            let (dir, data) = temp_data();
            let server = Server::start_with(&data, &backend.args());
            product(&server, "p1");
            product(&server, "p2");
            let run = server.admin("POST", "/v1/audit/checkpoints", None, 201);
            assert_eq!(run["checkpoints"].as_array().unwrap().len(), 2, "{run}");
            product(&server, "p3");

            // Verified against the database's keys, and against the server's JWKS by URL.
            let (code, answer) = verify(&data, &backend, &[]);
            assert_eq!(code, Some(0), "{answer:#}");
            assert_eq!(answer["checkpoints"]["checked"], 2, "{answer:#}");
            assert_eq!(answer["checkpoints"]["trusted"], "database");
            let jwks_url = format!("{}/.well-known/jwks.json", server.url);
            let (code, answer) = verify(&data, &backend, &["--jwks", &jwks_url]);
            assert_eq!(code, Some(0), "{answer:#}");
            assert_eq!(answer["checkpoints"]["trusted"], "jwks");
            let (code, _) = verify(&data, &backend, &["--jwks", "/no/such/jwks.json"]);
            assert_eq!(code, Some(2));

            // A package of now verifies offline, by its own JWKS and by the server's.
            let genuine = dir.path().join("genuine.zip");
            package(&server, &genuine);
            let (code, answer) = verify_package(&genuine, &[]);
            assert_eq!(code, Some(0), "{answer:#}");
            assert_eq!(answer["checkpoints_verified"], 1, "{answer:#}");
            let (code, _) = verify_package(&genuine, &["--jwks", &jwks_url]);
            assert_eq!(code, Some(0));
            // Entries 3 (the POST) and 4 came after the checkpoint.
            assert_eq!(answer["uncovered"]["seqs"], json!([3, 4]), "{answer:#}");
            let (code, _) = verify_package(&genuine, &["--require-covered"]);
            assert_eq!(code, Some(1));
            let garbage = dir.path().join("garbage.zip");
            std::fs::write(&garbage, b"PK not really").unwrap();
            assert_eq!(verify_package(&garbage, &[]).0, Some(2));
            assert_eq!(verify_package(&dir.path().join("none.zip"), &[]).0, Some(2));

            // After a key rotation and the old key's retirement, a checkpoint it signed still
            // verifies with the database's keys (retired ones included).
            server.admin("POST", "/v1/keys/rotate", None, 201);
            let old = run["checkpoints"][0]["kid"].as_str().unwrap().to_owned();
            server.admin("POST", &format!("/v1/keys/{old}/retire"), None, 200);
            let (code, answer) = verify(&data, &backend, &[]);
            assert_eq!(code, Some(0), "{answer:#}");

            // A forged checkpoint row (signed by another key) is refused by name.
            let url = database_url(&data, &backend);
            let other = licensing_core::PrivateKey::generate().unwrap();
            let claims: AuditCheckpointClaims = serde_json::from_value(json!({
                "iss": "forger", "iat": 1, "scope": "server", "seq": 1,
                "hash": "0".repeat(64), "events_seq": 0, "events_hash": "0".repeat(64),
            }))
            .unwrap();
            let forged = issue_audit_checkpoint(&claims, &other).unwrap();
            sql(
                &url,
                &[&format!(
                    "INSERT INTO audit_signed_checkpoints \
                     (id, organization_id, at, seq, hash, digest, kid, token) \
                     VALUES (100, NULL, 1, 1, '{}', NULL, 'x', '{forged}')",
                    "0".repeat(64)
                )],
            );
            let (code, answer) = verify(&data, &backend, &[]);
            assert_eq!(code, Some(1), "{answer:#}");
            let failures = answer["checkpoints"]["failures"].to_string();
            assert!(failures.contains("\"id\":100"), "{failures}");
            assert!(failures.contains("unknown_key"), "{failures}");
            sql(
                &url,
                &["DELETE FROM audit_signed_checkpoints WHERE id = 100"],
            );
            assert_eq!(verify(&data, &backend, &[]).0, Some(0));

            // The attack: every entry rewritten (entry 1's actor), every hash recomputed.
            let (status, listed) =
                server.call("GET", "/v1/audit?limit=1000", &server.admin_token, None);
            assert_eq!(status, 200);
            let mut prev = "0".repeat(64);
            let mut statements = Vec::new();
            for entry in listed["entries"].as_array().unwrap() {
                let actor = if entry["seq"] == 1 {
                    "tok_someone_else".to_owned()
                } else {
                    entry["actor"].as_str().unwrap().to_owned()
                };
                let hash = hash_of(entry, &actor, &prev);
                statements.push(format!(
                    "UPDATE audit_log SET actor = '{actor}', prev_hash = '{prev}', hash = '{hash}' \
                     WHERE seq = {}",
                    entry["seq"]
                ));
                prev = hash;
            }
            let statements: Vec<&str> = statements.iter().map(String::as_str).collect();
            sql(&url, &statements);
            // The chain alone is intact: only the checkpoints see the rewrite.
            let (code, answer) = verify(&data, &backend, &[]);
            assert_eq!(code, Some(1), "{answer:#}");
            assert!(answer["broken_at"].is_null(), "{answer:#}");
            let failures = answer["checkpoints"]["failures"].to_string();
            assert!(
                failures.contains("no longer holds the hash it signed at seq 2"),
                "{failures}"
            );
            // Both the server's checkpoint and the organization's.
            assert_eq!(
                answer["checkpoints"]["failures"].as_array().unwrap().len(),
                2,
                "{failures}"
            );
            let after = server.admin("GET", "/v1/audit/verify", None, 200);
            assert_eq!(
                after["ok"], true,
                "the chain alone does not see it: {after}"
            );
            // A package made now fails on the checkpoint's digest.
            let rewritten = dir.path().join("rewritten.zip");
            package(&server, &rewritten);
            let (code, answer) = verify_package(&rewritten, &[]);
            assert_eq!(code, Some(1), "{answer:#}");
            assert!(
                answer["failures"]
                    .to_string()
                    .contains("do not match the digest"),
                "{answer:#}"
            );
            // The package taken before the rewrite still verifies: kept elsewhere, it is
            // the evidence of what the chain held.
            assert_eq!(verify_package(&genuine, &[]).0, Some(0));
            server.stop();
        },
    );
}
