//! Load harness for floating licenses: durable check-outs per second and heartbeats per second
//! against a real `licensing-server serve` (SQLite, synchronous=FULL) on 127.0.0.1, with N
//! client threads on keep-alive connections. Bounded: a temp data directory, a fixed duration
//! per phase, loopback only.
//!
//! ```text
//! cargo build --release -p licensing-server --example floating_load
//! target/release/examples/floating_load [--clients 8] [--seconds 5]
//! LICENSING_LOAD_DATABASE_URL=postgres://... target/release/examples/floating_load
//! target/release/examples/floating_load --live 100000 [--licenses 100] [--rate 1700] \
//!     [--seconds 60] [--connections 64]
//! LICENSING_LOAD_DATABASE_URL=postgres://... target/release/examples/floating_load --replicas 2
//! ```
//!
//! With `--live N`, it instead fills the server with N live leases spread over `--licenses`
//! floating licenses (8 clients checking out as fast as they can), then heartbeats them
//! open-loop: `--rate` heartbeats per second (default N/60: each lease once a minute) for
//! `--seconds`, sent on schedule from `--connections` keep-alive connections whatever the
//! answers' latency, each latency measured from the scheduled send time (so a stalled server
//! cannot hide its queue: no coordinated omission).
//!
//! With `--replicas N` (PostgreSQL only), N servers share the database and the clients are
//! spread over them (client `c` on server `c % N`); the CPU reported is all servers'.
//!
//! A third phase checks out from a license whose one seat is taken: every check-out is denied
//! (and recorded).
//!
//! Under each timed phase it prints the CPU per request: the server's, and the whole
//! machine's (database and load generator included), with how busy the CPUs were.
//!
//! The server binary is the `licensing-server` next to the `examples/` directory of this
//! executable (the same Cargo profile), or `LICENSING_SERVER_BIN`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use support::{Conn, arg, percentile, phase_on, start_replica, start_server};

fn main() {
    let clients = arg("--clients", 8) as usize;
    let seconds = arg("--seconds", 5).clamp(1, 60);
    let dir = tempfile::tempdir().unwrap();
    let database = std::env::var("LICENSING_LOAD_DATABASE_URL").ok();
    let mut extra = vec!["--client-rate-per-minute", "1000000"];
    if let Some(url) = &database {
        extra.extend(["--database-url", url.as_str()]);
    }
    let server = start_server(&dir.path().join("data"), &extra);
    let addr = server.addr.clone();
    // `--replicas N` (PostgreSQL): N servers on the one database, clients spread over them.
    let replicas = arg("--replicas", 1).max(1) as usize;
    assert!(
        replicas == 1 || database.is_some(),
        "--replicas needs LICENSING_LOAD_DATABASE_URL (PostgreSQL)"
    );
    let others: Vec<_> = (1..replicas)
        .map(|r| start_replica(&dir.path().join(format!("data-{r}")), &extra))
        .collect();
    let mut addrs = vec![addr.clone()];
    addrs.extend(others.iter().map(|(_, addr)| addr.clone()));
    let mut server_pids = vec![server.proc.pid()];
    server_pids.extend(others.iter().map(|(proc, _)| proc.pid()));
    let engine = if database.is_some() {
        "PostgreSQL"
    } else {
        "SQLite synchronous=FULL"
    };
    let mut conn = Conn::open(&addr);
    let admin = Some(server.admin.as_str());
    let (s, _) = conn.call(
        "POST",
        "/v1/products",
        admin,
        Some(&json!({ "id": "com.example.load", "name": "Load" })),
    );
    assert_eq!(s, 201);
    let policy = json!({ "product_id": "com.example.load", "name": "pool", "model": "floating",
                         "seats": 1_000_000 });
    let (s, policy) = conn.call("POST", "/v1/policies", admin, Some(&policy));
    assert_eq!(s, 201, "{policy}");
    let live = arg("--live", 0) as usize;
    let licenses = arg("--licenses", if live > 0 { 100 } else { 1 }).max(1) as usize;
    let keys: Vec<String> = (0..licenses)
        .map(|_| {
            let (s, license) = conn.call(
                "POST",
                "/v1/licenses",
                admin,
                Some(&json!({ "policy_id": policy["id"] })),
            );
            assert_eq!(s, 201, "{license}");
            license["key"].as_str().unwrap().to_owned()
        })
        .collect();
    if live > 0 {
        live_leases(&addr, engine, clients, &keys, live);
        return;
    }
    let keys = Arc::new(keys);
    println!(
        "server on {}, {engine}, {clients} clients over {} license(s), {seconds} s per phase",
        addrs.join(" and "),
        keys.len()
    );

    let k = keys.clone();
    let before = CpuMark::now(&server_pids);
    let leases = phase_on("check-outs", &addrs, clients, seconds, move |c, conn, n| {
        let body = json!({ "license_key": k[c % k.len()], "client_id": format!("c{c}-{n}"), "user": "u",
                           "request_id": "r", "lease_secret_supported": true });
        let (s, lease) = conn.call("POST", "/v1/client/leases", None, Some(&body));
        assert_eq!(s, 201, "{lease}");
        Some(json!([
            lease["lease_id"],
            lease["epoch"],
            lease["lease_secret"]
        ]))
    });
    before.report("check-out", leases.requests);
    let leases = Arc::new(leases.outputs);
    let k = keys.clone();
    let ls = leases.clone();
    let before = CpuMark::now(&server_pids);
    let beats = phase_on("heartbeats", &addrs, clients, seconds, move |c, conn, n| {
        let mine = &ls[c];
        let lease = &mine[n % mine.len()];
        let path = format!("/v1/client/leases/{}/heartbeat", lease[0].as_str().unwrap());
        let (s, answer) = conn.call(
            "POST",
            &path,
            None,
            Some(&json!({ "license_key": k[c % k.len()], "epoch": lease[1],
                          "lease_secret": lease[2] })),
        );
        assert_eq!(s, 200, "{answer}");
        None
    });
    before.report("heartbeat", beats.requests);
    let live: usize = leases.iter().map(Vec::len).sum();
    println!("{live} live leases at the end");

    // Denials: check-outs of a license whose one seat is taken, each refused with the
    // message and recorded (a durable write, like a grant).
    let full = json!({ "product_id": "com.example.load", "name": "full", "model": "floating",
                       "seats": 1 });
    let (s, full) = conn.call("POST", "/v1/policies", admin, Some(&full));
    assert_eq!(s, 201, "{full}");
    let (s, license) = conn.call(
        "POST",
        "/v1/licenses",
        admin,
        Some(&json!({ "policy_id": full["id"] })),
    );
    assert_eq!(s, 201, "{license}");
    let full_key = license["key"].as_str().unwrap().to_owned();
    let body = json!({ "license_key": full_key, "client_id": "holder", "user": "u",
                       "request_id": "r", "lease_secret_supported": true });
    let (s, lease) = conn.call("POST", "/v1/client/leases", None, Some(&body));
    assert_eq!(s, 201, "{lease}");
    let before = CpuMark::now(&server_pids);
    let denials = phase_on("denials", &addrs, clients, seconds, move |c, conn, n| {
        let body = json!({ "license_key": full_key, "client_id": format!("d{c}-{n}"), "user": "u",
                           "request_id": "r", "lease_secret_supported": true });
        let (s, answer) = conn.call("POST", "/v1/client/leases", None, Some(&body));
        assert_eq!(s, 409, "{answer}");
        None
    });
    before.report("denial", denials.requests);
}

/// CPU used so far by the server and by the whole machine, to divide a phase's share by its
/// requests. The machine's share includes the database (PostgreSQL runs beside the server
/// here), the load generator and anything else running: it says what one request costs on
/// this machine, not what the server alone needs.
struct CpuMark {
    server_pids: Vec<u32>,
    server: Duration,
    machine: Duration,
    at: Instant,
}

impl CpuMark {
    fn now(server_pids: &[u32]) -> CpuMark {
        CpuMark {
            server_pids: server_pids.to_vec(),
            server: Self::servers(server_pids),
            machine: support::machine_busy().0,
            at: Instant::now(),
        }
    }

    /// The CPU the servers (every replica) have used so far.
    fn servers(pids: &[u32]) -> Duration {
        pids.iter().map(|pid| support::cpu_time(*pid)).sum()
    }

    /// Prints the CPU per request since this mark.
    fn report(&self, what: &str, requests: usize) {
        let server = Self::servers(&self.server_pids).saturating_sub(self.server);
        let (machine, cpus) = support::machine_busy();
        let machine = machine.saturating_sub(self.machine);
        let per = |d: Duration| d.as_secs_f64() * 1e6 / requests.max(1) as f64;
        println!(
            "  CPU per {what}: server {:.0} µs, whole machine {:.0} µs ({cpus} CPUs {:.0} % busy)",
            per(server),
            per(machine),
            100.0 * machine.as_secs_f64() / (self.at.elapsed().as_secs_f64() * cpus as f64),
        );
    }
}

/// Fills the server with `live` leases over `keys`, then heartbeats them open-loop.
fn live_leases(addr: &str, engine: &str, clients: usize, keys: &[String], live: usize) {
    let rate = arg("--rate", (live as u64).div_ceil(60)).max(1) as f64;
    let seconds = arg("--seconds", 60).clamp(1, 600);
    let connections = arg("--connections", 64).max(1) as usize;
    println!(
        "server on {addr}, {engine}: {live} leases over {} licenses, then heartbeats at \
         {rate}/s for {seconds} s from {connections} connections",
        keys.len()
    );

    let keys = Arc::new(keys.to_vec());
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let fillers: Vec<_> = (0..clients)
        .map(|c| {
            let (keys, next, addr) = (keys.clone(), next.clone(), addr.to_owned());
            std::thread::spawn(move || {
                let mut conn = Conn::open(&addr);
                let mut mine = Vec::new();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= live {
                        return mine;
                    }
                    let key = n % keys.len();
                    let body = json!({ "license_key": keys[key], "client_id": format!("c{c}-{n}"),
                                       "user": "u", "request_id": "r", "lease_secret_supported": true });
                    let (s, lease) = conn.call("POST", "/v1/client/leases", None, Some(&body));
                    assert_eq!(s, 201, "{lease}");
                    mine.push((
                        key,
                        lease["lease_id"].as_str().unwrap().to_owned(),
                        lease["epoch"].as_i64().unwrap(),
                        lease["lease_secret"].as_str().unwrap().to_owned(),
                    ));
                }
            })
        })
        .collect();
    let leases: Vec<(usize, String, i64, String)> = fillers
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let filled = started.elapsed().as_secs_f64();
    println!(
        "filled: {} live leases in {filled:.1} s = {:.0} check-outs/s with {clients} clients",
        leases.len(),
        leases.len() as f64 / filled
    );

    let leases = Arc::new(leases);
    let total = (rate * seconds as f64) as usize;
    let start = Instant::now() + Duration::from_millis(200);
    let senders: Vec<_> = (0..connections)
        .map(|t| {
            let (keys, leases, addr) = (keys.clone(), leases.clone(), addr.to_owned());
            std::thread::spawn(move || {
                let mut conn = Conn::open(&addr);
                let (mut latencies, mut failures) = (Vec::new(), 0usize);
                for k in (t..total).step_by(connections) {
                    let due = start + Duration::from_secs_f64(k as f64 / rate);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let (key, id, epoch, secret) = &leases[k % leases.len()];
                    let path = format!("/v1/client/leases/{id}/heartbeat");
                    let body = json!({ "license_key": keys[*key], "epoch": epoch,
                                       "lease_secret": secret });
                    let (s, _) = conn.call("POST", &path, None, Some(&body));
                    if s != 200 {
                        failures += 1;
                    }
                    latencies.push(due.elapsed());
                }
                (latencies, failures)
            })
        })
        .collect();
    let (mut all, mut failures) = (Vec::new(), 0);
    for t in senders {
        let (latencies, failed) = t.join().unwrap();
        all.extend(latencies);
        failures += failed;
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "heartbeats: {} in {elapsed:.1} s = {:.0}/s (scheduled {rate}/s), {failures} not 200; \
         latency from the scheduled time p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        all.len(),
        all.len() as f64 / elapsed,
        ms(percentile(&all, 0.50)),
        ms(percentile(&all, 0.99)),
        ms(percentile(&all, 0.999)),
        ms(all.last().copied().unwrap_or_default()),
    );
}
