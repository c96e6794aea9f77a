//! Load harness for online validation: validate requests per second and server CPU per
//! request against a real `licensing-server serve` (SQLite default, synchronous=FULL) on
//! 127.0.0.1, beside an axum hello-world server measured the same way in the same run, and
//! one `verify_strict` timed in-process as the unit of CPU cost. Bounded: a temp data
//! directory, a fixed duration per phase, loopback only.
//!
//! Several rounds (`--rounds`, default 3), each running three phases (hello-world,
//! validation without held tokens, validation holding current ones) with the unit timed
//! between them: each phase is divided by the mean of the units timed right before and right
//! after it. On a shared machine the unit and the server's CPU drift with the load, so each
//! ratio compares numbers taken close together, and the medians are the result.
//!
//! ```text
//! cargo build --release -p licensing-server --examples
//! target/release/examples/validate_load [--clients 8] [--seconds 5] [--rounds 3]
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use support::{Conn, Proc, activated_license, arg, cpu_time, phase, start_server};

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

/// [`verify_strict_time`] in seconds, printed.
fn unit_now() -> f64 {
    let unit = verify_strict_time().as_secs_f64();
    println!("one verify_strict (in-process): {:.1} µs", unit * 1e6);
    unit
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("--hello-world-server") {
        hello_world_server();
        return;
    }
    let clients = arg("--clients", 8) as usize;
    let seconds = arg("--seconds", 5).clamp(1, 60);
    let rounds = arg("--rounds", 3).clamp(1, 20) as usize;

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
    let key = activated_license(&mut conn, &server.admin, "load", clients as u64);
    // Measured after the license was made (and its machines activated): a safe upper bound.
    let created = Instant::now();

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

    let mut results = Vec::new();
    for round in 1..=rounds {
        println!("\nround {round} of {rounds}");
        // The unit is timed right before and right after the phase it divides, and
        // averaged: on this shared machine one `verify_strict` moved by a third between
        // minutes, so a unit timed a phase or two earlier added its own noise to the ratio.
        let unit_before_hello = unit_now();
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
        let hello_cpu =
            (cpu_time(hello.pid()) - cpu_before).as_secs_f64() / hello_run.requests as f64;
        let unit_before_first = unit_now();
        let (first_run, first_cpu) = validate_phase(
            "validate (no tokens held: 3 signatures)",
            &server,
            clients,
            seconds,
            &key,
            None,
        );
        let unit_before_held = unit_now();
        let (held_run, held_cpu) = validate_phase(
            "validate (current tokens held: 1 signature)",
            &server,
            clients,
            seconds,
            &key,
            Some(held.clone()),
        );
        let unit_after_held = unit_now();
        let measure = |run: &support::PhaseResult, cpu: f64, unit: f64| Measure {
            per_second: run.per_second,
            of_hello: run.per_second / hello_run.per_second,
            cpu,
            unit,
            of_unit: cpu / unit,
        };
        results.push(Round {
            hello: measure(
                &hello_run,
                hello_cpu,
                (unit_before_hello + unit_before_first) / 2.0,
            ),
            first: measure(
                &first_run,
                first_cpu,
                (unit_before_first + unit_before_held) / 2.0,
            ),
            held: measure(
                &held_run,
                held_cpu,
                (unit_before_held + unit_after_held) / 2.0,
            ),
        });
    }

    println!();
    println!(
        "| round | hello-world req/s (CPU) | no tokens held: req/s, % of hello, CPU, verify_strict, \
         × verify | current tokens held: req/s, % of hello, CPU, verify_strict, × verify |"
    );
    println!("|---:|---:|---:|---|---|");
    let row = |m: &Measure| {
        format!(
            "{:.0}, {:.1} %, {:.0} µs, {:.1} µs, {:.2}",
            m.per_second,
            100.0 * m.of_hello,
            m.cpu * 1e6,
            m.unit * 1e6,
            m.of_unit
        )
    };
    for (i, r) in results.iter().enumerate() {
        println!(
            "| {} | {:.0} ({:.0} µs) | {} | {} |",
            i + 1,
            r.hello.per_second,
            r.hello.cpu * 1e6,
            row(&r.first),
            row(&r.held)
        );
    }
    for (name, pick) in [
        (
            "no tokens held",
            (|r: &Round| r.first) as fn(&Round) -> Measure,
        ),
        ("current tokens held", |r: &Round| r.held),
    ] {
        let of_hello = median(results.iter().map(|r| pick(r).of_hello).collect());
        let of_unit = median(results.iter().map(|r| pick(r).of_unit).collect());
        println!(
            "\nvalidate, {name}, median of {rounds} round(s): requests/s = {:.1} % of \
             hello-world (target ≥ 25 %); CPU per validation = {:.2} × verify_strict \
             (target ≤ 1.5)",
            100.0 * of_hello,
            of_unit
        );
    }
}

/// One phase's numbers, and its ratios to the same round's hello-world rate and unit.
#[derive(Clone, Copy)]
struct Measure {
    per_second: f64,
    of_hello: f64,
    /// Server CPU per request, seconds.
    cpu: f64,
    /// One `verify_strict`, seconds: the mean of its timings right before and after the phase.
    unit: f64,
    of_unit: f64,
}

/// One round: its three phases.
struct Round {
    hello: Measure,
    first: Measure,
    held: Measure,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
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
