//! Floating licenses end to end: the real `licensing-server serve` binary on 127.0.0.1, driven
//! over plain HTTP/1.1 by client threads: the last-seat race over the network, and kill -9 of
//! the server in the middle of a load of check-outs and heartbeats. Bounded in clients, rounds
//! and time.
// `Server`'s Drop kills and waits for the child, which clippy cannot see.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::zombie_processes)]

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use licensing_core::{Status, TrustStore, Verifier};
use serde_json::{Value, json};

mod support;
use support::{held_check, postgres, spawn};

const PRODUCT: &str = "com.example.cad";
const TIMEOUT: Duration = Duration::from_secs(30);
const NO_SEATS: &str = "No available licenses, please contact IT";

/// A running server; killed on drop.
struct Server {
    child: Child,
    addr: String,
    admin_token: Option<String>,
}

impl Server {
    /// Starts on `listen` (`127.0.0.1:0` for any free port).
    fn start(data_dir: &Path, listen: &str) -> Server {
        Self::start_with(data_dir, listen, &[])
    }

    /// Starts with extra `serve` flags (e.g. `--database-url`).
    fn start_with(data_dir: &Path, listen: &str, extra: &[&str]) -> Server {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.with_extension("log"))
            .unwrap();
        let mut serve = Command::new(env!("CARGO_BIN_EXE_licensing-server"));
        serve
            .args(["serve", "--listen", listen, "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stderr(Stdio::from(log));
        let started = spawn::spawn_serve(serve, TIMEOUT);
        Server {
            child: started.child,
            addr: started.addr,
            admin_token: started.admin_token,
        }
    }

    /// SIGKILL: no graceful anything.
    fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    body: Value,
}

/// One HTTP/1.1 request per connection; `Err` when the connection fails (server killed).
fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<Reply, String> {
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    head.push_str("\r\n");
    head.push_str(&body);
    stream
        .write_all(head.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw).map_err(|e| e.to_string())?;
    let (head, body) = raw.split_once("\r\n\r\n").ok_or("truncated answer")?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("no status")?;
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).map_err(|e| format!("not JSON ({e}): {body}"))?
    };
    Ok(Reply { status, body })
}

/// A floating license with `seats`; returns (license key, license id).
fn floating_license(addr: &str, admin: &str, seats: u32) -> (String, String) {
    let product = http(
        addr,
        "POST",
        "/v1/products",
        Some(admin),
        Some(&json!({ "id": PRODUCT, "name": "CAD" })),
    )
    .unwrap();
    assert!(
        product.status == 201 || product.status == 409,
        "{product:?}"
    );
    let policy =
        json!({ "product_id": PRODUCT, "name": "floating", "model": "floating", "seats": seats });
    let policy = http(addr, "POST", "/v1/policies", Some(admin), Some(&policy)).unwrap();
    assert_eq!(policy.status, 201, "{policy:?}");
    let license = json!({ "policy_id": policy.body["id"] });
    let license = http(addr, "POST", "/v1/licenses", Some(admin), Some(&license)).unwrap();
    assert_eq!(license.status, 201, "{license:?}");
    (
        license.body["key"].as_str().unwrap().to_owned(),
        license.body["id"].as_str().unwrap().to_owned(),
    )
}

fn check_out(addr: &str, key: &str, client: &str, request: &str) -> Result<Reply, String> {
    let body = json!({ "license_key": key, "client_id": client, "user": client,
                       "request_id": request, "lease_secret_supported": true });
    http(addr, "POST", "/v1/client/leases", None, Some(&body))
}

fn verifier(addr: &str) -> Verifier {
    let jwks = http(addr, "GET", "/.well-known/jwks.json", None, None).unwrap();
    Verifier::new(
        TrustStore::from_document(&jwks.body.to_string()).unwrap(),
        PRODUCT,
    )
}

/// Seats N, 64 clients (threads released together by a barrier) check out over HTTP, three
/// rounds: exactly N granted, the rest 409 with the exact message, every denial recorded.
#[test]
fn last_seat_race_over_http() {
    last_seat_race_over_http_with(&[]);
}

#[test]
fn last_seat_race_over_http_on_postgres() {
    if let Some(url) = postgres::fresh_database("last_seat_race_over_http_on_postgres") {
        last_seat_race_over_http_with(&["--database-url", &url]);
    }
}

fn last_seat_race_over_http_with(extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&dir.path().join("data"), "127.0.0.1:0", extra);
    let admin = server.admin_token.clone().unwrap();
    let verifier = verifier(&server.addr);
    let mut total_denied = 0;
    for (round, seats) in [1u32, 5, 16].into_iter().enumerate() {
        let (key, id) = floating_license(&server.addr, &admin, seats);
        let barrier = Arc::new(Barrier::new(64));
        let threads: Vec<_> = (0..64)
            .map(|i| {
                let (addr, key, barrier) = (server.addr.clone(), key.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    check_out(&addr, &key, &format!("c{round}-{i}"), "r1").unwrap()
                })
            })
            .collect();
        let mut granted = BTreeSet::new();
        let mut denied = 0;
        for thread in threads {
            let reply = thread.join().unwrap();
            match reply.status {
                201 => {
                    let lease = verifier
                        .verify_lease(reply.body["lease_token"].as_str().unwrap())
                        .unwrap();
                    assert_eq!(lease.status_for(&id, lease.claims().iat), Status::Valid);
                    let secret = reply.body["lease_secret"].as_str().unwrap().to_owned();
                    assert!(granted.insert((lease.id().to_owned(), lease.claims().epoch, secret)));
                }
                409 => {
                    assert_eq!(reply.body["error"], "no_seats");
                    assert_eq!(reply.body["detail"], NO_SEATS);
                    denied += 1;
                }
                _ => panic!("{reply:?}"),
            }
        }
        assert_eq!(granted.len(), seats as usize);
        assert_eq!(denied, 64 - seats as usize);
        total_denied += denied;
        // Every holder heartbeats (durably enough: see `Db::heartbeat`); a stale epoch is fenced.
        for (lease_id, epoch, secret) in &granted {
            let path = format!("/v1/client/leases/{lease_id}/heartbeat");
            let beat = http(
                &server.addr,
                "POST",
                &path,
                None,
                Some(&json!({ "license_key": key, "epoch": epoch, "lease_secret": secret })),
            )
            .unwrap();
            assert_eq!(beat.status, 200, "{beat:?}");
            let stale = http(
                &server.addr,
                "POST",
                &path,
                None,
                Some(&json!({ "license_key": key, "epoch": epoch + 1, "lease_secret": secret })),
            )
            .unwrap();
            assert_ne!(stale.status, 200, "{stale:?}");
        }
        let listed = http(
            &server.addr,
            "GET",
            &format!("/v1/licenses/{id}/leases"),
            Some(&admin),
            None,
        )
        .unwrap();
        assert_eq!(
            listed.body["leases"].as_array().unwrap().len(),
            seats as usize
        );
        let denials = http(
            &server.addr,
            "GET",
            &format!("/v1/licenses/{id}/denials"),
            Some(&admin),
            None,
        )
        .unwrap();
        assert_eq!(denials.body["total"], denied);
        let users: BTreeSet<&str> = denials.body["denials"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["user"].as_str().unwrap())
            .collect();
        assert_eq!(users.len(), denied);
    }
    let report = http(
        &server.addr,
        "GET",
        "/v1/denials/report",
        Some(&admin),
        None,
    )
    .unwrap();
    assert_eq!(report.status, 200, "{report:?}");
    assert_eq!(report.body["total"], total_denied);
}

/// What one client thread knows.
#[derive(Debug, Default)]
struct ClientLog {
    /// The request id of the next (or retried) check-out.
    attempt: usize,
    /// The lease the server said this client holds (lease id, request id, epoch, secret).
    granted: Option<(String, String, i64, String)>,
    /// Heartbeats answered for the lease held.
    beats: usize,
    /// A check-in was sent and not yet answered.
    releasing: bool,
    /// Requests that failed at the connection level (the kill).
    failures: usize,
}

/// One step of a client: check out (retrying its request id until answered), heartbeat a few
/// times, check in (retrying until answered), and again. Panics on any answer that breaks the
/// rules (a refused heartbeat of a held lease, a 5xx).
fn client_step(addr: &str, key: &str, i: usize, log: &mut ClientLog) {
    let client = format!("client-{i}");
    let result = match (&log.granted, log.releasing) {
        (Some((lease, _, epoch, secret)), true) => http(
            addr,
            "POST",
            &format!("/v1/client/leases/{lease}/release"),
            None,
            Some(&json!({ "license_key": key, "epoch": epoch, "lease_secret": secret })),
        ),
        (Some((lease, _, epoch, secret)), false) => http(
            addr,
            "POST",
            &format!("/v1/client/leases/{lease}/heartbeat"),
            None,
            Some(&json!({ "license_key": key, "epoch": epoch, "lease_secret": secret })),
        ),
        (None, _) => check_out(addr, key, &client, &format!("r{}", log.attempt)),
    };
    let reply = match result {
        Ok(reply) => reply,
        Err(_) => {
            log.failures += 1;
            std::thread::sleep(Duration::from_millis(5));
            return;
        }
    };
    match (&log.granted, log.releasing, reply.status) {
        (Some(_), true, 200) => {
            log.granted = None;
            log.releasing = false;
            log.attempt += 1;
        }
        (Some(_), false, 200) => {
            log.beats += 1;
            if log.beats >= 3 {
                log.releasing = true;
            }
        }
        (None, _, 200 | 201) => {
            log.granted = Some((
                reply.body["lease_id"].as_str().unwrap().to_owned(),
                format!("r{}", log.attempt),
                reply.body["epoch"].as_i64().unwrap(),
                reply.body["lease_secret"].as_str().unwrap().to_owned(),
            ));
            log.beats = 0;
        }
        (None, _, 409) => {
            assert_eq!(reply.body["detail"], NO_SEATS);
            log.attempt += 1;
        }
        _ => panic!("client {i} in {log:?}: {reply:?}"),
    }
}

/// kill -9 in the middle of check-outs, heartbeats and check-ins, then a restart on the same
/// port: no seat lost, none double-granted; every client told "granted" still holds its lease
/// (its heartbeat works, a retry of its request id answers the same lease), and a client whose
/// answer the kill swallowed gets the committed lease back by retrying its request id.
#[test]
fn kill_9_under_load_loses_no_seat_and_grants_none_twice() {
    const SEATS: usize = 6;
    const CLIENTS: usize = 16;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, "127.0.0.1:0");
    let admin = server.admin_token.clone().unwrap();
    let addr = server.addr.clone();
    let (key, id) = floating_license(&addr, &admin, SEATS as u32);
    let stop = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicUsize::new(0));
    let logs: Vec<Arc<Mutex<ClientLog>>> = (0..CLIENTS).map(|_| Arc::default()).collect();
    let threads: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (addr, key, stop, requests, log) = (
                addr.clone(),
                key.clone(),
                stop.clone(),
                requests.clone(),
                logs[i].clone(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    requests.fetch_add(1, Ordering::Relaxed);
                    client_step(&addr, &key, i, &mut log.lock().unwrap());
                }
            })
        })
        .collect();
    let deadline = Instant::now() + TIMEOUT;
    let wait_for = |n: usize| {
        while requests.load(Ordering::Relaxed) < n {
            assert!(Instant::now() < deadline, "the load stalled");
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    wait_for(400);
    server.kill9();
    let at_kill = requests.load(Ordering::Relaxed);
    let server = Server::start(&data, &addr);
    assert_eq!(server.addr, addr);
    wait_for(at_kill + 400);
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().unwrap();
    }
    let logs: Vec<ClientLog> = logs
        .into_iter()
        .map(|l| Arc::try_unwrap(l).unwrap().into_inner().unwrap())
        .collect();
    let failures: usize = logs.iter().map(|l| l.failures).sum();
    assert!(failures > 0, "the kill hit no request");
    // Settle: pending check-ins finish, then every client without a seat checks out
    // (retrying its pending request id first), one pass in client order.
    let mut logs = logs;
    for (i, log) in logs.iter_mut().enumerate() {
        let deadline = Instant::now() + TIMEOUT;
        while log.releasing {
            assert!(Instant::now() < deadline);
            client_step(&addr, &key, i, log);
        }
    }
    for (i, log) in logs.iter_mut().enumerate() {
        if log.granted.is_none() {
            client_step(&addr, &key, i, log);
        }
    }
    // Every holder still holds: heartbeat works, the request id answers the same lease.
    let mut known = BTreeSet::new();
    for (i, log) in logs.iter().enumerate() {
        if let Some((lease, request, epoch, secret)) = &log.granted {
            let beat = http(
                &addr,
                "POST",
                &format!("/v1/client/leases/{lease}/heartbeat"),
                None,
                Some(&json!({ "license_key": key, "epoch": epoch, "lease_secret": secret })),
            )
            .unwrap();
            assert_eq!(beat.status, 200, "client {i}: {beat:?}");
            let retry = check_out(&addr, &key, &format!("client-{i}"), request).unwrap();
            assert_eq!(retry.status, 200, "client {i}: {retry:?}");
            assert_eq!(retry.body["lease_id"], lease.as_str());
            assert!(known.insert(lease.clone()), "lease {lease} held twice");
        }
    }
    let listed = http(
        &addr,
        "GET",
        &format!("/v1/licenses/{id}/leases"),
        Some(&admin),
        None,
    )
    .unwrap();
    let live: BTreeSet<String> = listed.body["leases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["lease_id"].as_str().unwrap().to_owned())
        .collect();
    // None double-granted, none orphaned (a lease no client knows would hold a seat forever),
    // none lost (16 clients want 6 seats: all 6 are held).
    assert_eq!(live, known, "live leases vs leases clients hold");
    assert_eq!(live.len(), SEATS, "{logs:?}");
    // The count of held leases (taken and released in the same transactions) survived too.
    let disagree = held_counts_that_disagree(&format!(
        "sqlite:{}?mode=ro",
        data.join("licensing.db").display()
    ));
    assert!(
        disagree.is_empty(),
        "(license, count, leases): {disagree:?}"
    );
    let beats: usize = logs.iter().map(|l| l.beats).sum();
    eprintln!("kill -9 test: {at_kill} requests before the kill, {failures} failed, {beats} beats");
}

/// The licenses of the database at `url` whose count of held leases disagrees with their
/// leases (see `held_check`).
fn held_counts_that_disagree(url: &str) -> Vec<(String, i64, i64)> {
    sqlx::any::install_default_drivers();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let pool = sqlx::AnyPool::connect(url).await.unwrap();
        let rows = sqlx::query_as(held_check::HELD_COUNTS_THAT_DISAGREE)
            .fetch_all(&pool)
            .await
            .unwrap();
        pool.close().await;
        rows
    })
}

/// Two server processes on one database (the SQLite file here; the PostgreSQL run shares a
/// URL instead): 64 clients split between them race for N seats, rounds: exactly N granted.
#[test]
fn last_seat_race_across_two_server_processes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let a = Server::start(&data, "127.0.0.1:0");
    let b = Server::start(&data, "127.0.0.1:0");
    let url = format!("sqlite:{}?mode=ro", data.join("licensing.db").display());
    race_across(&a, &b, &url);
}

/// Two replicas, each with its own data directory, sharing one PostgreSQL database.
#[test]
fn last_seat_race_across_two_replicas_on_one_postgres() {
    let name = "last_seat_race_across_two_replicas_on_one_postgres";
    let Some(url) = postgres::fresh_database(name) else {
        return;
    };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let extra = ["--database-url", url.as_str()];
    let a = Server::start_with(&dir_a.path().join("data"), "127.0.0.1:0", &extra);
    let b = Server::start_with(&dir_b.path().join("data"), "127.0.0.1:0", &extra);
    race_across(&a, &b, &url);
}

/// `url`: the database both servers share (for the check of its held-lease counts).
fn race_across(a: &Server, b: &Server, url: &str) {
    assert!(
        b.admin_token.is_none(),
        "the second process bootstrapped again"
    );
    let admin = a.admin_token.clone().unwrap();
    for (round, seats) in [1u32, 4].into_iter().enumerate() {
        let (key, id) = floating_license(&a.addr, &admin, seats);
        let barrier = Arc::new(Barrier::new(64));
        let threads: Vec<_> = (0..64)
            .map(|i| {
                let addr = if i % 2 == 0 {
                    a.addr.clone()
                } else {
                    b.addr.clone()
                };
                let (key, barrier) = (key.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    check_out(&addr, &key, &format!("c{round}-{i}"), "r1").unwrap()
                })
            })
            .collect();
        let mut granted = 0;
        for thread in threads {
            let reply = thread.join().unwrap();
            match reply.status {
                201 => granted += 1,
                409 => assert_eq!(reply.body["detail"], NO_SEATS),
                _ => panic!("{reply:?}"),
            }
        }
        assert_eq!(granted, seats, "round {round}");
        for server in [&a, &b] {
            let path = format!("/v1/licenses/{id}/leases");
            let listed = http(&server.addr, "GET", &path, Some(&admin), None).unwrap();
            assert_eq!(
                listed.body["leases"].as_array().unwrap().len(),
                seats as usize
            );
            let path = format!("/v1/licenses/{id}/denials");
            let denials = http(&server.addr, "GET", &path, Some(&admin), None).unwrap();
            assert_eq!(denials.body["total"], 64 - seats);
        }
    }
    line_across(a, b, &admin);
    let disagree = held_counts_that_disagree(url);
    assert!(
        disagree.is_empty(),
        "(license, count, leases): {disagree:?}"
    );
}

/// The wait line across two replicas: 64 clients, half on each, all willing to wait for one
/// of 3 seats. Exactly 3 are granted; the others hold distinct places 1 ..= 61, and both
/// replicas list the same line (it lives in the shared database, ordered under the license
/// lock).
fn line_across(a: &Server, b: &Server, admin: &str) {
    let seats = 3;
    let (key, id) = floating_license(&a.addr, admin, seats);
    let path = format!("/v1/licenses/{id}/queue");
    let set = http(
        &a.addr,
        "PUT",
        &path,
        Some(admin),
        Some(&json!({ "max_seconds": 600 })),
    );
    assert_eq!(set.unwrap().status, 200);
    // The other replica reads licenses through a cache of at most 1 s.
    std::thread::sleep(Duration::from_millis(1100));
    let barrier = Arc::new(Barrier::new(64));
    let threads: Vec<_> = (0..64)
        .map(|i| {
            let addr = [&a.addr, &b.addr][i % 2].clone();
            let (key, barrier) = (key.clone(), barrier.clone());
            std::thread::spawn(move || {
                let client = format!("line-{i}");
                let body = json!({ "license_key": key, "client_id": client, "user": client,
                    "request_id": "r1", "queue_seconds": 600 });
                barrier.wait();
                http(&addr, "POST", "/v1/client/leases", None, Some(&body)).unwrap()
            })
        })
        .collect();
    let (mut granted, mut positions) = (0, Vec::new());
    for thread in threads {
        let reply = thread.join().unwrap();
        match reply.status {
            201 => granted += 1,
            202 => positions.push(reply.body["position"].as_u64().unwrap()),
            _ => panic!("{reply:?}"),
        }
    }
    assert_eq!(granted, seats);
    positions.sort_unstable();
    let expected: Vec<u64> = (1..=u64::from(64 - seats)).collect();
    assert_eq!(positions, expected);
    let line = |server: &Server| {
        let path = format!("/v1/licenses/{id}/leases");
        let listed = http(&server.addr, "GET", &path, Some(admin), None).unwrap();
        listed.body["queue"]["waiting"].clone()
    };
    let (seen_by_a, seen_by_b) = (line(a), line(b));
    assert_eq!(seen_by_a.as_array().unwrap().len(), 61);
    assert_eq!(seen_by_a, seen_by_b);
}
