//! Soak benchmark for the server's memory under validation load: a real `licensing-server
//! serve` (SQLite) on 127.0.0.1 answers `--validations` online validations (default
//! 2,000,000) from `--clients` keep-alive connections, and its resident memory (VmRSS from
//! /proc) is sampled every `--sample-secs`. Nothing scrapes `/metrics` unless
//! `--scrape-secs` is given: the case of a small deployment. The answer is the RSS at the end
//! against the RSS after the warm-up (`--warmup`, default 200,000 validations): flat memory
//! stays within 10 %. Long-running (minutes): never part of CI.
//!
//! ```text
//! cargo build --release -p licensing-server --examples
//! target/release/examples/validate_soak [--validations 2000000] [--clients 4]
//!     [--warmup 200000] [--sample-secs 10] [--scrape-secs 0]
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use support::{Conn, activated_license, arg, start_server};

/// Resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn main() {
    let total = arg("--validations", 2_000_000);
    let clients = arg("--clients", 4).clamp(1, 64);
    let warmup = arg("--warmup", 200_000).min(total);
    let sample_every = Duration::from_secs(arg("--sample-secs", 10).max(1));
    let scrape_every = arg("--scrape-secs", 0);

    let dir = tempfile::tempdir().unwrap();
    let server = start_server(
        &dir.path().join("data"),
        &["--client-rate-per-minute", "1000000"],
    );
    let pid = server.proc.pid();
    let mut conn = Conn::open(&server.addr);
    let key = activated_license(&mut conn, &server.admin, "soak", clients);
    println!(
        "server pid {pid}: {total} validations from {clients} clients, warm-up {warmup}, \
         /metrics scraped {}; RSS at start {} KiB",
        if scrape_every == 0 {
            "never".to_owned()
        } else {
            format!("every {scrape_every} s")
        },
        rss_kib(pid)
    );

    let done = Arc::new(AtomicU64::new(0));
    let finished = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|c| {
            let (addr, key, done) = (server.addr.clone(), key.clone(), done.clone());
            let share = total / clients + u64::from(c < total % clients);
            std::thread::spawn(move || {
                let mut conn = Conn::open(&addr);
                for n in 0..share {
                    let body = json!({ "license_key": key, "fingerprint": format!("soak-{c}"),
                        "nonce": format!("nonce-{c}-{n:08}") });
                    let (status, answer) =
                        conn.call("POST", "/v1/client/validate", None, Some(&body));
                    assert_eq!(status, 200, "{answer}");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let scraper = (scrape_every > 0).then(|| {
        let (addr, finished) = (server.addr.clone(), finished.clone());
        std::thread::spawn(move || {
            let mut conn = Conn::open(&addr);
            while !finished.load(Ordering::Relaxed) {
                let (status, _) = conn.call("GET", "/metrics", None, None);
                assert_eq!(status, 200);
                std::thread::sleep(Duration::from_secs(scrape_every));
            }
        })
    });

    // Samples: (seconds, validations done, RSS KiB).
    let mut samples = Vec::new();
    let mut at_warmup = None;
    let mut next_sample = Instant::now() + sample_every;
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let n = done.load(Ordering::Relaxed);
        if at_warmup.is_none() && n >= warmup {
            let rss = rss_kib(pid);
            println!(
                "after warm-up: {n} validations, RSS {rss} KiB ({:.0} s)",
                started.elapsed().as_secs_f64()
            );
            at_warmup = Some((n, rss));
        }
        if Instant::now() >= next_sample || n >= total {
            let rss = rss_kib(pid);
            let secs = started.elapsed().as_secs_f64();
            println!(
                "{secs:7.0} s  {n:>9} validations  {:7.0}/s  RSS {rss} KiB",
                n as f64 / secs
            );
            samples.push((secs, n, rss));
            next_sample += sample_every;
        }
        if n >= total {
            break;
        }
    }
    for worker in workers {
        worker.join().unwrap();
    }
    finished.store(true, Ordering::Relaxed);
    if let Some(scraper) = scraper {
        scraper.join().unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let end = rss_kib(pid);
    let (warm_n, warm) = at_warmup.unwrap();
    let peak = samples.iter().map(|s| s.2).max().unwrap_or(end);
    let change = 100.0 * (end as f64 - warm as f64) / warm as f64;
    println!(
        "\n{total} validations in {elapsed:.0} s ({:.0}/s). RSS after warm-up ({warm_n}): \
         {warm} KiB; at the end: {end} KiB ({change:+.1} %); peak sample {peak} KiB; \
         {:.2} bytes per validation after warm-up. {}",
        total as f64 / elapsed,
        (end as f64 - warm as f64) * 1024.0 / (total - warm_n).max(1) as f64,
        if change.abs() <= 10.0 {
            "Within 10 %."
        } else {
            "NOT within 10 %."
        }
    );
}
