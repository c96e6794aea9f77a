//! Load harness for online validation: validate requests per second and server CPU per
//! request against a real `licensing-server serve` (SQLite default, synchronous=FULL) on
//! 127.0.0.1, beside an axum hello-world server measured the same way in the same run, and
//! one `verify_strict` timed in-process as the unit of CPU cost. Bounded: a temp data
//! directory, a fixed duration per phase, loopback only.
//!
//! ```text
//! cargo build --release -p licensing-server --examples
//! target/release/examples/validate_load [--clients 8] [--seconds 5]
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use support::{Conn, Proc, arg, cpu_time, phase, start_server};

// The allocator `licensing-server` uses, so the hello-world baseline (this binary, in a child
// process) is measured on equal terms.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The server's `issue::REFRESH_MARGIN_SECS` (the example cannot see the binary's modules).
const REFRESH_MARGIN_SECS: u64 = 30;

/// Runs the hello-world server of the comparison: axum + tokio like `licensing-server`, one
/// GET route answering a constant, no middleware.
fn hello_world_server() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let app = axum::Router::new().route("/hello", axum::routing::get(|| async { "hello" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("listening on http://{}", listener.local_addr().unwrap());
        axum::serve(listener, app).await.unwrap();
    });
}

/// Median time of one `verify_strict` over a message the size of a validation answer's
/// signing input, in-process.
fn verify_strict_time() -> Duration {
    use ed25519_dalek::{Signer, SigningKey};
    let key = SigningKey::from_bytes(&[7; 32]);
    let message = vec![b'x'; 900];
    let signature = key.sign(&message);
    let public = key.verifying_key();
    let mut batches = Vec::new();
    for _ in 0..21 {
        let start = Instant::now();
        for _ in 0..500 {
            public
                .verify_strict(std::hint::black_box(&message), &signature)
                .unwrap();
        }
        batches.push(start.elapsed() / 500);
    }
    batches.sort_unstable();
    batches[batches.len() / 2]
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("--hello-world-server") {
        hello_world_server();
        return;
    }
    let clients = arg("--clients", 8) as usize;
    let seconds = arg("--seconds", 5).clamp(1, 60);

    // The hello-world server, a child process like the licensing server.
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("--hello-world-server")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let line = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .next()
        .unwrap()
        .unwrap();
    let hello = Proc(child);
    let hello_addr = line
        .strip_prefix("listening on http://")
        .unwrap()
        .to_owned();

    let dir = tempfile::tempdir().unwrap();
    let server = start_server(
        &dir.path().join("data"),
        &["--client-rate-per-minute", "1000000"],
    );
    let mut conn = Conn::open(&server.addr);
    let admin = Some(server.admin.as_str());
    let (status, _) = conn.call(
        "POST",
        "/v1/products",
        admin,
        Some(&json!({ "id": "com.example.load", "name": "Load" })),
    );
    assert_eq!(status, 201);
    let (status, policy) = conn.call(
        "POST",
        "/v1/policies",
        admin,
        Some(
            &json!({ "product_id": "com.example.load", "name": "load", "model": "subscription",
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
    let created = Instant::now();
    for c in 0..clients {
        let (status, body) = conn.call(
            "POST",
            "/v1/client/activate",
            None,
            Some(&json!({ "license_key": key, "fingerprint": { "id": format!("load-{c}") } })),
        );
        assert_eq!(status, 201, "{body}");
    }

    let unit = verify_strict_time();
    println!(
        "one verify_strict (in-process): {:.1} µs",
        unit.as_secs_f64() * 1e6
    );

    let cpu_before = cpu_time(hello.pid());
    let hello_run = phase(
        "hello-world",
        &hello_addr,
        clients,
        seconds,
        |_, conn, _| {
            let (status, _) = conn.call("GET", "/hello", None, None);
            assert_eq!(status, 200);
            None
        },
    );
    let hello_cpu = (cpu_time(hello.pid()) - cpu_before).as_secs_f64() / hello_run.requests as f64;

    let (validate_run, validate_cpu) = validate_phase(
        "validate (no tokens held: 3 signatures)",
        &server,
        clients,
        seconds,
        &key,
        None,
    );

    // The steady state of a fleet: each client names the tokens it holds, and they are
    // current, so only the response is signed. Tokens issued within the server's refresh
    // margin after the license's last change are always signed again: wait it out.
    let margin = Duration::from_secs(REFRESH_MARGIN_SECS + 2);
    if let Some(wait) = margin.checked_sub(created.elapsed()) {
        println!("waiting {wait:?} for the refresh margin after the license's creation");
        std::thread::sleep(wait);
    }
    let held: Vec<serde_json::Value> = (0..clients)
        .map(|c| {
            let body = json!({ "license_key": key, "fingerprint": format!("load-{c}"),
                "nonce": format!("nonce-held-{c}") });
            let (status, answer) = conn.call("POST", "/v1/client/validate", None, Some(&body));
            assert_eq!(status, 200, "{answer}");
            let response = claims_of(answer["response_token"].as_str().unwrap());
            let named = |token: &str| {
                let (header, claims) = licensing_core::decode_unverified(token).unwrap();
                json!({ "sub": claims["sub"], "kid": header["kid"], "iat": claims["iat"] })
            };
            json!({
                "license": named(response["license_token"].as_str().unwrap()),
                "machine": named(response["machine_token"].as_str().unwrap()),
            })
        })
        .collect();
    let (held_run, held_cpu) = validate_phase(
        "validate (current tokens held: 1 signature)",
        &server,
        clients,
        seconds,
        &key,
        Some(held),
    );

    println!();
    println!("| | requests/s | server CPU per request | × verify_strict |");
    println!("|---|---:|---:|---:|");
    for (name, run, cpu) in [
        ("axum hello-world", &hello_run, hello_cpu),
        ("validate, no tokens held", &validate_run, validate_cpu),
        ("validate, current tokens held", &held_run, held_cpu),
    ] {
        println!(
            "| {name} | {:.0} | {:.0} µs | {:.1} |",
            run.per_second,
            cpu * 1e6,
            cpu / unit.as_secs_f64()
        );
    }
    for (name, run, cpu) in [
        ("no tokens held", &validate_run, validate_cpu),
        ("current tokens held", &held_run, held_cpu),
    ] {
        println!(
            "\nvalidate, {name}: requests/s = {:.1} % of hello-world (target ≥ 25 %); CPU per \
             validation = {:.2} × verify_strict (target ≤ 1.5)",
            100.0 * run.per_second / hello_run.per_second,
            cpu / unit.as_secs_f64()
        );
    }
}

/// One validation phase: each client validates its machine, naming the tokens in `held` (one
/// per client) when given, and then checks once that none came back. Answers the phase and
/// the server's CPU per request, seconds.
fn validate_phase(
    name: &str,
    server: &support::Server,
    clients: usize,
    seconds: u64,
    key: &str,
    held: Option<Vec<serde_json::Value>>,
) -> (support::PhaseResult, f64) {
    let cpu_before = cpu_time(server.proc.pid());
    let key = key.to_owned();
    let run = phase(name, &server.addr, clients, seconds, move |c, conn, n| {
        let mut body = json!({ "license_key": key, "fingerprint": format!("load-{c}"),
            "nonce": format!("nonce-{c}-{n:08}") });
        if let Some(held) = &held {
            body["held"] = held[c].clone();
        }
        let (status, answer) = conn.call("POST", "/v1/client/validate", None, Some(&body));
        assert_eq!(status, 200, "{answer}");
        if held.is_some() && n == 0 {
            let response = claims_of(answer["response_token"].as_str().unwrap());
            assert!(response["license_token"].is_null(), "{response}");
            assert!(response["machine_token"].is_null(), "{response}");
        }
        None
    });
    let cpu = (cpu_time(server.proc.pid()) - cpu_before).as_secs_f64() / run.requests as f64;
    (run, cpu)
}

/// The claims of a token, unverified (the harness trusts its own server).
fn claims_of(token: &str) -> serde_json::Value {
    licensing_core::decode_unverified(token).unwrap().1
}
