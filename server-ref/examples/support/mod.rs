//! What the load harnesses share: a keep-alive HTTP/1.1 client, a `licensing-server serve`
//! child process on 127.0.0.1, timed phases with latency percentiles, and a process's CPU time
//! from /proc. Hand-written on purpose: a harness that measures the server must add as little
//! client-side work as possible (no async runtime, no connection pool).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[path = "../../tests/support/spawn.rs"]
mod spawn;

/// A keep-alive HTTP/1.1 connection.
pub struct Conn {
    reader: BufReader<TcpStream>,
    addr: String,
}

impl Conn {
    pub fn open(addr: &str) -> Conn {
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

    /// One request; the status and the body (JSON, or a string for other bodies).
    pub fn call(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let body = body.map(Value::to_string).unwrap_or_default();
        self.send(method, path, token, "application/json", &body)
    }

    /// One request with a body of `content_type` (sent when not empty).
    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: &str,
    ) -> (u16, Value) {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        if !body.is_empty() {
            head.push_str(&format!("Content-Type: {content_type}\r\n"));
        }
        if let Some(token) = token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        head.push_str("\r\n");
        head.push_str(body);
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
        let value = serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
        (status, value)
    }
}

/// A child process killed on drop.
pub struct Proc(pub Child);

impl Proc {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `--name value` from the command line, or `default`.
pub fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("a number"))
        .unwrap_or(default)
}

/// The `licensing-server` binary next to this example's directory (same Cargo profile), or
/// `LICENSING_SERVER_BIN`.
pub fn server_bin() -> PathBuf {
    std::env::var_os("LICENSING_SERVER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let exe = std::env::current_exe().unwrap();
            exe.parent()
                .unwrap()
                .parent()
                .unwrap()
                .join("licensing-server")
        })
}

/// A running `licensing-server serve` on 127.0.0.1 with its bootstrap admin token.
pub struct Server {
    pub proc: Proc,
    pub addr: String,
    pub admin: String,
}

/// Starts `licensing-server serve` on a free loopback port with `data_dir` and `extra` flags.
pub fn start_server(data_dir: &Path, extra: &[&str]) -> Server {
    let (proc, addr, admin) = serve(data_dir, extra);
    Server {
        proc,
        addr,
        admin: admin.expect("a first start prints the admin token"),
    }
}

/// Starts one more `licensing-server serve` on the database that `extra` names, which a first
/// server set up already (a replica: it prints no admin token); its process and address.
#[allow(dead_code)] // Used by floating_load only.
pub fn start_replica(data_dir: &Path, extra: &[&str]) -> (Proc, String) {
    let (proc, addr, _) = serve(data_dir, extra);
    (proc, addr)
}

fn serve(data_dir: &Path, extra: &[&str]) -> (Proc, String, Option<String>) {
    let mut serve = Command::new(server_bin());
    serve
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(extra)
        // `LICENSING_LOAD_SERVER_LOG` (a `RUST_LOG` value) shows more of the server's log,
        // e.g. `licensing_server::server::db::seats=debug` for each seat batch's timings.
        .env(
            "RUST_LOG",
            std::env::var("LICENSING_LOAD_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stderr(Stdio::inherit());
    let started = spawn::spawn_serve(serve, Duration::from_secs(60));
    (Proc(started.child), started.addr, started.admin_token)
}

/// User + system CPU time a process has used so far (Linux /proc).
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after `) `.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_secs_f64(ticks as f64 / clock_ticks_per_second())
}

/// CPU time the whole machine has spent busy so far, over all CPUs, and the number of CPUs
/// (Linux /proc/stat: every field of the `cpu` line but idle and iowait).
#[allow(dead_code)] // Used by floating_load only.
pub fn machine_busy() -> (Duration, usize) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let cpus = stat
        .lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .count();
    let all: Vec<u64> = stat
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user already).
    let busy: u64 = all.iter().take(8).sum::<u64>() - all[3] - all[4];
    (
        Duration::from_secs_f64(busy as f64 / clock_ticks_per_second()),
        cpus.max(1),
    )
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// What a phase measured.
pub struct PhaseResult {
    pub requests: usize,
    pub seconds: f64,
    pub per_second: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    /// Per client, what `step` returned.
    pub outputs: Vec<Vec<Value>>,
}

/// Runs `step(client, conn, n)` on every client for `seconds` (each client on its own
/// keep-alive connection to `addr`); prints and returns the rate and latencies.
pub fn phase<S>(name: &str, addr: &str, clients: usize, seconds: u64, step: S) -> PhaseResult
where
    S: Fn(usize, &mut Conn, usize) -> Option<Value> + Send + Sync + 'static,
{
    phase_on(name, &[addr.to_owned()], clients, seconds, step)
}

/// [`phase`] over several servers: client `c` connects to `addrs[c % addrs.len()]`.
pub fn phase_on<S>(
    name: &str,
    addrs: &[String],
    clients: usize,
    seconds: u64,
    step: S,
) -> PhaseResult
where
    S: Fn(usize, &mut Conn, usize) -> Option<Value> + Send + Sync + 'static,
{
    let step = Arc::new(step);
    let barrier = Arc::new(Barrier::new(clients + 1));
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let addr = addrs[c % addrs.len()].clone();
            let (step, barrier) = (step.clone(), barrier.clone());
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
    let mut outputs = Vec::new();
    for t in threads {
        let (latencies, out) = t.join().unwrap();
        all.extend(latencies);
        outputs.push(out);
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let result = PhaseResult {
        requests: all.len(),
        seconds: elapsed,
        per_second: all.len() as f64 / elapsed,
        p50: percentile(&all, 0.50),
        p99: percentile(&all, 0.99),
        max: all.last().copied().unwrap_or_default(),
        outputs,
    };
    println!(
        "{name}: {} in {elapsed:.1} s = {:.0}/s with {clients} clients; latency p50 {:.2} ms, \
         p99 {:.2} ms, max {:.2} ms",
        result.requests,
        result.per_second,
        result.p50.as_secs_f64() * 1e3,
        result.p99.as_secs_f64() * 1e3,
        result.max.as_secs_f64() * 1e3,
    );
    result
}

/// Creates the product `com.example.{name}`, a one-year subscription policy for 64 machines
/// and one license, and activates the fingerprints `{name}-0` .. `{name}-{clients - 1}`; answers
/// the license key, for validation loads.
pub fn activated_license(conn: &mut Conn, admin: &str, name: &str, clients: u64) -> String {
    let product = format!("com.example.{name}");
    let admin = Some(admin);
    let (status, _) = conn.call(
        "POST",
        "/v1/products",
        admin,
        Some(&json!({ "id": product, "name": name })),
    );
    assert_eq!(status, 201);
    let (status, policy) = conn.call(
        "POST",
        "/v1/policies",
        admin,
        Some(
            &json!({ "product_id": product, "name": name, "model": "subscription",
            "duration": 86400 * 365, "max_machines": 64, "check_in_interval": 86400 }),
        ),
    );
    assert_eq!(status, 201, "{policy}");
    let (status, license) = conn.call(
        "POST",
        "/v1/licenses",
        admin,
        Some(&json!({ "policy_id": policy["id"] })),
    );
    assert_eq!(status, 201, "{license}");
    let key = license["key"].as_str().unwrap().to_owned();
    for c in 0..clients {
        let (status, body) = conn.call(
            "POST",
            "/v1/client/activate",
            None,
            Some(&json!({ "license_key": key, "fingerprint": { "id": format!("{name}-{c}") } })),
        );
        assert_eq!(status, 201, "{body}");
    }
    key
}
