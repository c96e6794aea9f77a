//! The audit trail end to end: the real `licensing-server serve` on 127.0.0.1 (port 0, a temp
//! data dir), on SQLite and, under scripts/with-postgres.sh, on PostgreSQL. What is recorded
//! (successful state-changing admin requests only), who reads it, and that
//! `GET /v1/audit/verify` finds an edited, deleted or moved entry, which the tests make with
//! SQL straight on the database.
// `Server`'s Drop kills and waits for the child, which clippy cannot see.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::zombie_processes)]

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

mod support;
use backend::{Backend, on_both, temp_data};
use online_server::Server;
use support::{backend, online_server};

const OPERATOR: &str = "org_operator";
const ZEROS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What these tests ask a running server about its audit trail.
trait AuditCalls {
    /// `GET /v1/audit` (with `query`) as `token`: the entries.
    fn audit(&self, token: &str, query: &str) -> Vec<Value>;
    /// `GET /v1/audit/verify` as the bootstrap admin.
    fn verify(&self) -> Value;
    /// The id of the bootstrap admin token (what the trail names as the actor).
    fn admin_token_id(&self) -> String;
}

impl AuditCalls for Server {
    fn audit(&self, token: &str, query: &str) -> Vec<Value> {
        let (status, body) = self.call("GET", &format!("/v1/audit{query}"), token, None);
        assert_eq!(status, 200, "{body}");
        body["entries"].as_array().unwrap().clone()
    }

    fn verify(&self) -> Value {
        self.admin("GET", "/v1/audit/verify", None, 200)
    }

    fn admin_token_id(&self) -> String {
        let tokens = self.admin("GET", "/v1/api-tokens", None, 200);
        let bootstrap = tokens["api_tokens"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["label"] == "bootstrap")
            .unwrap();
        bootstrap["id"].as_str().unwrap().to_owned()
    }
}

/// A server on `backend`'s database.
fn start(data_dir: &Path, backend: &Backend) -> Server {
    Server::start_with(data_dir, &backend.args())
}

/// Runs SQL straight on the server's database (the tampering an attacker with database access
/// would do).
fn sql(data_dir: &Path, backend: &Backend, statements: &[&str]) {
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}", data_dir.join("licensing.db").display()),
        Backend::Postgres(url) => url.clone(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        sqlx::any::install_default_drivers();
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap();
        for statement in statements {
            // Test SQL written in this file (the restores name values read from the server).
            sqlx::query(sqlx::AssertSqlSafe(statement.to_string()))
                .execute(&pool)
                .await
                .unwrap();
        }
        pool.close().await;
    });
}

/// The hash of an entry as the README documents it, written again here: SHA-256 over a tag,
/// then each column (integers 8 bytes big-endian, texts length-prefixed, the organization after
/// a 0/1 byte), `prev_hash` last; `actor` and `prev_hash` as given (to forge an edit).
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

fn seqs(entries: &[Value]) -> Vec<i64> {
    entries.iter().map(|e| e["seq"].as_i64().unwrap()).collect()
}

/// Successful admin writes add one entry each, with the acting token's id, its organization,
/// the route template and the concrete path; reads, client calls and refused requests add
/// none; the chain verifies, and an edit, a deletion or a swap of entries is reported.
#[test]
fn admin_writes_are_recorded_and_tampering_is_found() {
    on_both(
        "admin_writes_are_recorded_and_tampering_is_found",
        |backend| {
            let (_dir, data) = temp_data();
            let server = start(&data, &backend);
            let actor = server.admin_token_id();
            let empty = server.verify();
            assert_eq!(empty, json!({ "ok": true, "entries": 0, "head": ZEROS }));

            // An admin write: one entry.
            server.admin(
                "POST",
                "/v1/products",
                Some(json!({ "id": "com.example.cad", "name": "CAD" })),
                201,
            );
            let entries = server.audit(&server.admin_token, "");
            assert_eq!(entries.len(), 1, "{entries:?}");
            let first = &entries[0];
            assert_eq!(first["seq"], 1);
            assert_eq!(first["actor"], actor.as_str());
            assert_eq!(first["organization_id"], OPERATOR);
            assert_eq!(first["action"], "POST /v1/products");
            assert_eq!(first["target"], "/v1/products");
            assert_eq!(first["status"], 201);
            assert_eq!(first["prev_hash"], ZEROS);
            let hash = first["hash"].as_str().unwrap();
            assert!(
                hash.len() == 64 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            );

            // Reads add none.
            for path in [
                "/v1/products",
                "/v1/licenses",
                "/v1/audit",
                "/v1/audit/verify",
            ] {
                server.admin("GET", path, None, 200);
            }
            // Refused and failed requests add none: 403 (role), 404, 409, 422.
            let auditor = server.admin(
                "POST",
                "/v1/api-tokens",
                Some(json!({ "role": "auditor", "label": "auditor" })),
                201,
            );
            let auditor = auditor["secret"].as_str().unwrap().to_owned();
            let (status, _) = server.call(
                "POST",
                "/v1/products",
                &auditor,
                Some(json!({ "id": "x", "name": "X" })),
            );
            assert_eq!(status, 403);
            server.admin("POST", "/v1/licenses/lic_nope/suspend", None, 404);
            server.admin(
                "POST",
                "/v1/products",
                Some(json!({ "id": "com.example.cad", "name": "again" })),
                409,
            );
            server.admin(
                "POST",
                "/v1/products",
                Some(json!({ "id": "", "name": "X" })),
                422,
            );
            let entries = server.audit(&server.admin_token, "");
            assert_eq!(
                seqs(&entries),
                [1, 2],
                "only the token creation: {entries:?}"
            );
            assert_eq!(entries[1]["action"], "POST /v1/api-tokens");

            // A license, a client activation (not recorded: client API), a suspension.
            let policy = server.admin(
                "POST",
                "/v1/policies",
                Some(json!({ "product_id": "com.example.cad", "name": "n", "model": "perpetual" })),
                201,
            );
            let license = server.admin(
                "POST",
                "/v1/licenses",
                Some(json!({ "policy_id": policy["id"] })),
                201,
            );
            let license_id = license["id"].as_str().unwrap().to_owned();
            let key = license["key"].as_str().unwrap().to_owned();
            let (status, body) = server.call(
                "POST",
                "/v1/client/activate",
                "",
                Some(json!({ "license_key": key, "fingerprint": { "id": "fp-1" } })),
            );
            assert_eq!(status, 201, "{body}");
            server.admin(
                "POST",
                &format!("/v1/licenses/{license_id}/suspend"),
                None,
                200,
            );
            let entries = server.audit(&server.admin_token, "");
            assert_eq!(seqs(&entries), [1, 2, 3, 4, 5], "{entries:?}");
            let suspend = &entries[4];
            assert_eq!(suspend["action"], "POST /v1/licenses/{id}/suspend");
            assert_eq!(
                suspend["target"],
                format!("/v1/licenses/{license_id}/suspend")
            );
            assert_eq!(suspend["actor"], actor.as_str());
            assert_eq!(suspend["status"], 200);
            assert_eq!(suspend["prev_hash"], entries[3]["hash"]);
            let verified = server.verify();
            assert_eq!(
                verified,
                json!({ "ok": true, "entries": 5, "head": entries[4]["hash"] })
            );

            // Paging: after and limit.
            assert_eq!(
                seqs(&server.audit(&server.admin_token, "?after=2&limit=2")),
                [3, 4]
            );
            assert_eq!(
                seqs(&server.audit(&server.admin_token, "?after=5")),
                [] as [i64; 0]
            );
            assert_eq!(
                seqs(&server.audit(&server.admin_token, "?limit=100000")).len(),
                5
            );
            let (status, _) = server.call("GET", "/v1/audit?limit=0", &server.admin_token, None);
            assert_eq!(status, 422);

            // Who reads: IT staff and auditors of the organization; not a license key.
            let it = server.admin(
                "POST",
                "/v1/api-tokens",
                Some(json!({ "role": "it_staff", "label": "it" })),
                201,
            );
            let it = it["secret"].as_str().unwrap().to_owned();
            assert_eq!(server.audit(&it, "").len(), 6);
            assert_eq!(server.audit(&auditor, "").len(), 6);
            let (status, _) = server.call("GET", "/v1/audit/verify", &it, None);
            assert_eq!(status, 200);
            for path in ["/v1/audit", "/v1/audit/verify"] {
                let (status, _) = server.call("GET", path, &key, None);
                assert_eq!(status, 401, "a license key reads no audit trail");
                let (status, _) = server.call("GET", path, "", None);
                assert_eq!(status, 401);
            }

            // Another organization sees only its own entries.
            let created = server.admin(
                "POST",
                "/v1/organizations",
                Some(json!({ "name": "Contoso" })),
                201,
            );
            let org_b = created["organization"]["id"].as_str().unwrap().to_owned();
            let admin_b = created["admin_token"].as_str().unwrap().to_owned();
            assert_eq!(server.audit(&admin_b, ""), [] as [Value; 0]);
            let (status, _) = server.call(
                "POST",
                "/v1/api-tokens",
                &admin_b,
                Some(json!({ "role": "auditor", "label": "b" })),
            );
            assert_eq!(status, 201);
            let seen_by_b = server.audit(&admin_b, "");
            assert_eq!(seqs(&seen_by_b), [8], "{seen_by_b:?}");
            assert_eq!(seen_by_b[0]["organization_id"], org_b.as_str());
            let seen_by_a = server.audit(&server.admin_token, "");
            assert_eq!(seqs(&seen_by_a), [1, 2, 3, 4, 5, 6, 7]);
            assert_eq!(seen_by_a[6]["action"], "POST /v1/organizations");
            assert_eq!(server.verify()["entries"], 8);
            // Verifying reads every tenant's entries: only the operator organization may.
            let (status, _) = server.call("GET", "/v1/audit/verify", &admin_b, None);
            assert_eq!(status, 403, "a tenant does not verify the shared chain");

            // An edited entry breaks at itself; put back, the chain is whole again.
            let actor_2 = entries[1]["actor"].as_str().unwrap();
            sql(
                &data,
                &backend,
                &["UPDATE audit_log SET actor = 'x' WHERE seq = 2"],
            );
            let broken = server.verify();
            assert_eq!(broken["ok"], false, "{broken}");
            assert_eq!(broken["broken_at"], 2, "{broken}");
            assert!(broken["reason"].as_str().is_some_and(|r| !r.is_empty()));
            let restore = format!("UPDATE audit_log SET actor = '{actor_2}' WHERE seq = 2");
            sql(&data, &backend, &[&restore]);
            assert_eq!(server.verify()["ok"], true);

            // The hash is the documented one.
            for entry in &entries {
                let actor = entry["actor"].as_str().unwrap();
                let prev = entry["prev_hash"].as_str().unwrap();
                assert_eq!(entry["hash"], hash_of(entry, actor, prev), "{entry}");
            }

            // An edit with the entry's hash recomputed: the next entry's prev_hash gives it away.
            let forged = hash_of(&entries[2], "x", entries[2]["prev_hash"].as_str().unwrap());
            sql(
                &data,
                &backend,
                &[&format!(
                    "UPDATE audit_log SET actor = 'x', hash = '{forged}' WHERE seq = 3"
                )],
            );
            let broken = server.verify();
            assert_eq!(broken["broken_at"], 4, "{broken}");
            assert!(
                broken["reason"].as_str().unwrap().contains("prev_hash"),
                "{broken}"
            );
            // A prev_hash replaced and the hash recomputed over it: caught at that entry.
            let forged = hash_of(&entries[2], entries[2]["actor"].as_str().unwrap(), ZEROS);
            sql(
                &data,
                &backend,
                &[&format!(
                    "UPDATE audit_log SET actor = '{}', prev_hash = '{ZEROS}', hash = '{forged}' \
                 WHERE seq = 3",
                    entries[2]["actor"].as_str().unwrap()
                )],
            );
            let broken = server.verify();
            assert_eq!(broken["broken_at"], 3, "{broken}");
            assert!(
                broken["reason"].as_str().unwrap().contains("prev_hash"),
                "{broken}"
            );
            sql(
                &data,
                &backend,
                &[&format!(
                    "UPDATE audit_log SET prev_hash = '{}', hash = '{}' WHERE seq = 3",
                    entries[2]["prev_hash"].as_str().unwrap(),
                    entries[2]["hash"].as_str().unwrap()
                )],
            );
            assert_eq!(server.verify()["ok"], true);

            // Two entries swapped: broken where the first moved.
            let swap = [
                "UPDATE audit_log SET seq = -3 WHERE seq = 3",
                "UPDATE audit_log SET seq = 3 WHERE seq = 4",
                "UPDATE audit_log SET seq = 4 WHERE seq = -3",
            ];
            sql(&data, &backend, &swap);
            let broken = server.verify();
            assert_eq!(broken["broken_at"], 3, "{broken}");
            sql(&data, &backend, &swap);
            assert_eq!(server.verify()["ok"], true);

            // A deleted entry: the gap is reported at the entry after it.
            sql(&data, &backend, &["DELETE FROM audit_log WHERE seq = 2"]);
            let broken = server.verify();
            assert_eq!(broken["ok"], false, "{broken}");
            assert_eq!(broken["broken_at"], 3, "{broken}");
            assert!(
                broken["reason"].as_str().unwrap().contains("missing"),
                "{broken}"
            );
            // The first entry deleted: the chain does not start at 1.
            sql(&data, &backend, &["DELETE FROM audit_log WHERE seq = 1"]);
            let broken = server.verify();
            assert_eq!(broken["broken_at"], 3, "{broken}");
            assert!(
                broken["reason"].as_str().unwrap().contains("not 1"),
                "{broken}"
            );
            // An entry moved below 1 beside an intact start is found as well.
            sql(
                &data,
                &backend,
                &["UPDATE audit_log SET seq = 0 WHERE seq = 3"],
            );
            let broken = server.verify();
            assert_eq!(broken["broken_at"], 0, "{broken}");
        },
    );
}

/// 8 admin writes at once (on PostgreSQL, spread over two replicas of one database) leave one
/// valid chain: seqs 1..8, each chained to the one before.
#[test]
fn concurrent_admin_writes_leave_a_valid_chain() {
    on_both("concurrent_admin_writes_leave_a_valid_chain", |backend| {
        let (_dir_a, data_a) = temp_data();
        let (_dir_b, data_b) = temp_data();
        let a = start(&data_a, &backend);
        let mut servers = vec![a];
        if matches!(backend, Backend::Postgres(_)) {
            let mut b = start(&data_b, &backend);
            b.admin_token = servers[0].admin_token.clone();
            servers.push(b);
        }
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let server = &servers[i % servers.len()];
                    scope.spawn(move || {
                        server.admin(
                            "POST",
                            "/v1/products",
                            Some(json!({ "id": format!("com.example.p{i}"), "name": "P" })),
                            201,
                        );
                    })
                })
                .collect();
            for handle in handles {
                handle.join().unwrap();
            }
        });
        let server = &servers[0];
        let entries = server.audit(&server.admin_token, "");
        assert_eq!(seqs(&entries), (1..=8).collect::<Vec<_>>(), "{entries:?}");
        let mut prev = ZEROS.to_owned();
        for entry in &entries {
            assert_eq!(entry["prev_hash"], prev.as_str());
            assert_eq!(entry["action"], "POST /v1/products");
            prev = entry["hash"].as_str().unwrap().to_owned();
        }
        let verified = server.verify();
        assert_eq!(
            verified,
            json!({ "ok": true, "entries": 8, "head": prev }),
            "{verified}"
        );
    });
}

/// `licensing-server audit verify` on the database: the chain and anchors kept elsewhere. A
/// chain rewritten from an entry on (every later hash recomputed) still verifies by itself; the
/// anchor taken before the rewrite is what finds it.
#[test]
fn the_cli_verifies_the_chain_and_finds_a_rewrite_by_its_anchor() {
    on_both(
        "the_cli_verifies_the_chain_and_finds_a_rewrite_by_its_anchor",
        |backend| {
            let (_dir, data) = temp_data();
            let server = start(&data, &backend);
            for id in ["p.one", "p.two", "p.three"] {
                server.admin(
                    "POST",
                    "/v1/products",
                    Some(json!({ "id": id, "name": id })),
                    201,
                );
            }
            let verified = server.verify();
            let anchor = format!(
                "{}:{}",
                verified["entries"],
                verified["head"].as_str().unwrap()
            );
            let cli = |anchors: &[&str]| {
                let mut command = Command::new(env!("CARGO_BIN_EXE_licensing-server"));
                command.args(["audit", "verify", "--data-dir"]).arg(&data);
                if let Backend::Postgres(url) = &backend {
                    command.args(["--database-url", url]);
                }
                for anchor in anchors {
                    command.args(["--anchor", anchor]);
                }
                let run = command.output().unwrap();
                let answer: Value = serde_json::from_slice(&run.stdout).unwrap_or(Value::Null);
                (
                    run.status.code(),
                    answer,
                    String::from_utf8_lossy(&run.stderr).into_owned(),
                )
            };
            let (code, answer, _) = cli(&[&anchor]);
            assert_eq!(code, Some(0), "{answer}");
            assert_eq!(answer["ok"], true);
            assert_eq!(answer["entries"], 3);
            assert_eq!(answer["head"], verified["head"]);
            assert_eq!(answer["anchors"][0]["matches"], true, "{answer}");

            // Entry 2 rewritten, and entry 3 re-chained to it: the chain is whole again.
            let entries = server.audit(&server.admin_token, "");
            let forged_2 = hash_of(
                &entries[1],
                "someone-else",
                entries[1]["prev_hash"].as_str().unwrap(),
            );
            let forged_3 = hash_of(
                &entries[2],
                entries[2]["actor"].as_str().unwrap(),
                &forged_2,
            );
            sql(
                &data,
                &backend,
                &[
                    &format!(
                        "UPDATE audit_log SET actor = 'someone-else', hash = '{forged_2}' WHERE seq = 2"
                    ),
                    &format!(
                        "UPDATE audit_log SET prev_hash = '{forged_2}', hash = '{forged_3}' WHERE seq = 3"
                    ),
                ],
            );
            assert_eq!(server.verify()["ok"], true, "the rewrite is consistent");
            let (code, answer, _) = cli(&[]);
            assert_eq!((code, &answer["ok"]), (Some(0), &json!(true)), "{answer}");
            let (code, answer, _) = cli(&[&anchor]);
            assert_eq!(code, Some(1), "{answer}");
            assert_eq!(answer["ok"], false);
            assert_eq!(answer["anchors"][0]["matches"], false, "{answer}");

            // Usage errors: a malformed anchor, no database.
            let (code, _, stderr) = cli(&["3:nothex"]);
            assert_eq!(code, Some(2));
            assert!(stderr.contains("SEQ:HASH"), "{stderr}");
            drop(server);
            if matches!(backend, Backend::Sqlite) {
                let missing = tempfile::tempdir().unwrap();
                let run = Command::new(env!("CARGO_BIN_EXE_licensing-server"))
                    .args(["audit", "verify", "--data-dir"])
                    .arg(missing.path().join("none"))
                    .output()
                    .unwrap();
                assert_eq!(run.status.code(), Some(2));
                assert!(!missing.path().join("none").exists(), "nothing is created");
            }
        },
    );
}

/// Client events end to end on the real server: check-outs naming users land in the event
/// chain; erasing a user (`POST /v1/audit/erase`) leaves `GET /v1/audit/verify` and the CLI's
/// `audit verify` intact (the event anchor taken before still matches); a tampered commitment
/// is found by both.
#[test]
fn an_erased_subject_leaves_the_event_chain_intact_for_the_api_and_the_cli() {
    on_both(
        "an_erased_subject_leaves_the_event_chain_intact",
        |backend| {
            let (_dir, data) = temp_data();
            let server = start(&data, &backend);
            server.admin(
                "POST",
                "/v1/products",
                Some(json!({ "id": "com.example.cad", "name": "CAD" })),
                201,
            );
            let policy = server.admin(
                "POST",
                "/v1/policies",
                Some(
                    json!({ "product_id": "com.example.cad", "name": "n", "model": "floating",
                         "seats": 1 }),
                ),
                201,
            );
            let license = server.admin(
                "POST",
                "/v1/licenses",
                Some(json!({ "policy_id": policy["id"] })),
                201,
            );
            let key = license["key"].as_str().unwrap().to_owned();
            for (user, expected) in [("alice", 201), ("bob", 409)] {
                let (status, body) = server.call(
                    "POST",
                    "/v1/client/leases",
                    "",
                    Some(json!({ "license_key": key, "client_id": user, "user": user,
                             "request_id": format!("r-{user}") })),
                );
                assert_eq!(status, expected, "{body}");
            }
            // Events are written by the writer, after the answers: waited for.
            let mut events = Vec::new();
            for _ in 0..200 {
                let (_, body) = server.call("GET", "/v1/audit/events", &server.admin_token, None);
                events = body["events"].as_array().unwrap().clone();
                if events.len() == 2 {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(25));
            }
            assert_eq!(events.len(), 2, "{events:?}");
            assert_eq!(events[0]["action"], "lease.checked_out");
            assert_eq!(events[1]["action"], "lease.denied");
            assert_eq!(events[1]["subject"], "bob");
            let chain = server.admin("GET", "/v1/audit/verify?chain=audit_events", None, 200);
            let anchor = format!("{}:{}", chain["entries"], chain["head"].as_str().unwrap());

            let erased = server.admin(
                "POST",
                "/v1/audit/erase",
                Some(json!({ "subject": "bob" })),
                200,
            );
            assert_eq!(erased["erased"], 1);
            let (_, body) = server.call("GET", "/v1/audit/events", &server.admin_token, None);
            assert_eq!(body["events"][1]["subject"], Value::Null);
            assert_eq!(
                body["events"][1]["subject_commitment"],
                events[1]["subject_commitment"]
            );
            assert_eq!(server.verify()["ok"], true);
            let cli = || {
                let mut command = Command::new(env!("CARGO_BIN_EXE_licensing-server"));
                command.args(["audit", "verify", "--data-dir"]).arg(&data);
                if let Backend::Postgres(url) = &backend {
                    command.args(["--database-url", url]);
                }
                command.args(["--event-anchor", &anchor]);
                let run = command.output().unwrap();
                let answer: Value = serde_json::from_slice(&run.stdout).unwrap_or(Value::Null);
                (run.status.code(), answer)
            };
            let (code, answer) = cli();
            assert_eq!(code, Some(0), "{answer}");
            assert_eq!(answer["events"]["ok"], true, "{answer}");
            assert_eq!(answer["events"]["entries"], 2, "{answer}");
            assert_eq!(answer["events"]["anchors"][0]["matches"], true, "{answer}");

            // The erased event's commitment replaced: broken for both.
            sql(
                &data,
                &backend,
                &[&format!(
                    "UPDATE audit_events SET subject_commitment = '{ZEROS}' WHERE seq = 2"
                )],
            );
            let broken = server.verify();
            assert_eq!(broken["ok"], false, "{broken}");
            assert_eq!(broken["chain"], "audit_events", "{broken}");
            assert_eq!(broken["broken_at"], 2, "{broken}");
            let (code, answer) = cli();
            assert_eq!(code, Some(1), "{answer}");
            assert_eq!(answer["events"]["broken_at"], 2, "{answer}");
        },
    );
}
