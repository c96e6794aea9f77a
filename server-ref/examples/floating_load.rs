//! Load harness for floating licenses: durable check-outs per second and heartbeats per second
//! against a real `licensing-server serve` (SQLite, synchronous=FULL) on 127.0.0.1, with N
//! client threads on keep-alive connections. Bounded: a temp data directory, a fixed duration
//! per phase, loopback only.
//!
//! ```text
//! cargo build --release -p licensing-server --example floating_load
//! target/release/examples/floating_load [--clients 8] [--seconds 5]
//! ```
//!
//! The server binary is the `licensing-server` next to the `examples/` directory of this
//! executable (the same Cargo profile), or `LICENSING_SERVER_BIN`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A keep-alive HTTP/1.1 connection.
struct Conn {
    reader: BufReader<TcpStream>,
    addr: String,
}

impl Conn {
    fn open(addr: &str) -> Conn {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        Conn {
            reader: BufReader::new(stream),
            addr: addr.to_owned(),
        }
    }

    fn call(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> (u16, Value) {
        let body = body.to_string();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n",
            self.addr,
            body.len()
        );
        if let Some(token) = token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        head.push_str("\r\n");
        head.push_str(&body);
        self.reader.get_mut().write_all(head.as_bytes()).unwrap();
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let status: u16 = line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut length = 0;
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).unwrap();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("a number"))
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Runs `step(client, conn, n)` on every client for `seconds`; prints the rate and latencies.
fn phase<S>(name: &str, addr: &str, clients: usize, seconds: u64, step: S) -> Vec<Vec<Value>>
where
    S: Fn(usize, &mut Conn, usize) -> Option<Value> + Send + Sync + 'static,
{
    let step = Arc::new(step);
    let barrier = Arc::new(Barrier::new(clients + 1));
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let (step, barrier, addr) = (step.clone(), barrier.clone(), addr.to_owned());
            std::thread::spawn(move || {
                let mut conn = Conn::open(&addr);
                let mut latencies = Vec::new();
                let mut out = Vec::new();
                barrier.wait();
                let end = Instant::now() + Duration::from_secs(seconds);
                let mut n = 0;
                while Instant::now() < end {
                    let start = Instant::now();
                    if let Some(v) = step(c, &mut conn, n) {
                        out.push(v);
                    }
                    latencies.push(start.elapsed());
                    n += 1;
                }
                (latencies, out)
            })
        })
        .collect();
    barrier.wait();
    let started = Instant::now();
    let mut all = Vec::new();
    let mut outs = Vec::new();
    for t in threads {
        let (latencies, out) = t.join().unwrap();
        all.extend(latencies);
        outs.push(out);
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    println!(
        "{name}: {} in {elapsed:.1} s = {:.0}/s with {clients} clients; latency p50 {:.2} ms, \
         p99 {:.2} ms, max {:.2} ms",
        all.len(),
        all.len() as f64 / elapsed,
        percentile(&all, 0.50).as_secs_f64() * 1e3,
        percentile(&all, 0.99).as_secs_f64() * 1e3,
        all.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    outs
}

fn main() {
    let clients = arg("--clients", 8) as usize;
    let seconds = arg("--seconds", 5).clamp(1, 60);
    let bin = std::env::var_os("LICENSING_SERVER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let exe = std::env::current_exe().unwrap();
            exe.parent()
                .unwrap()
                .parent()
                .unwrap()
                .join("licensing-server")
        });
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(&bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let _server = Server(child);
    let (mut admin, mut addr) = (String::new(), String::new());
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(t) =
            line.strip_prefix("admin API token (shown once, only its hash is stored): ")
        {
            admin = t.to_owned();
        } else if let Some(a) = line.strip_prefix("listening on http://") {
            addr = a.to_owned();
            break;
        }
    }
    let mut conn = Conn::open(&addr);
    let admin = Some(admin.as_str());
    let (s, _) = conn.call(
        "POST",
        "/v1/products",
        admin,
        &json!({ "id": "com.example.load", "name": "Load" }),
    );
    assert_eq!(s, 201);
    let policy = json!({ "product_id": "com.example.load", "name": "pool", "model": "floating",
                         "seats": 1_000_000 });
    let (s, policy) = conn.call("POST", "/v1/policies", admin, &policy);
    assert_eq!(s, 201, "{policy}");
    let (s, license) = conn.call(
        "POST",
        "/v1/licenses",
        admin,
        &json!({ "policy_id": policy["id"] }),
    );
    assert_eq!(s, 201, "{license}");
    let key = license["key"].as_str().unwrap().to_owned();
    println!(
        "server {} on {addr}, SQLite synchronous=FULL, {clients} clients, {seconds} s per phase",
        bin.display()
    );

    let k = key.clone();
    let leases = phase("check-outs", &addr, clients, seconds, move |c, conn, n| {
        let body = json!({ "license_key": k, "client_id": format!("c{c}-{n}"), "user": "u",
                           "request_id": "r" });
        let (s, lease) = conn.call("POST", "/v1/client/leases", None, &body);
        assert_eq!(s, 201, "{lease}");
        Some(json!([lease["lease_id"], lease["epoch"]]))
    });
    let leases = Arc::new(leases);
    let k = key.clone();
    let ls = leases.clone();
    phase("heartbeats", &addr, clients, seconds, move |c, conn, n| {
        let mine = &ls[c];
        let lease = &mine[n % mine.len()];
        let path = format!("/v1/client/leases/{}/heartbeat", lease[0].as_str().unwrap());
        let (s, answer) = conn.call(
            "POST",
            &path,
            None,
            &json!({ "license_key": k, "epoch": lease[1] }),
        );
        assert_eq!(s, 200, "{answer}");
        None
    });
    let live: usize = leases.iter().map(Vec::len).sum();
    println!("{live} live leases at the end");
}
