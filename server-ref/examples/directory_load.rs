//! Scale harness of the buyer's directory (issue 22): a directory of `--users` people (100 000)
//! and `--licenses` named-seat licenses (10 000) in one organization, then two timed phases
//! against a real `licensing-server serve` on 127.0.0.1:
//!
//! 1. SCIM `GET /scim/v2/Users?filter=userName eq "…"` of random users (the identity
//!    provider's lookup before every provisioning change);
//! 2. seat assignment, `POST /v1/licenses/{id}/assignments`, of random users to random
//!    licenses (each with `--seats` seats).
//!
//! Each phase runs `--clients` keep-alive connections (2: the load an identity provider and an
//! administrator put on the server, not a saturation test) for `--seconds` and prints the rate
//! and the latency percentiles. The directory is filled through the product's own routes: the
//! CSV import (10 000 rows a request) and `POST /v1/licenses`.
//!
//! ```text
//! cargo build --release -p licensing-server --bins --examples
//! target/release/examples/directory_load [--users 100000] [--licenses 10000] [--seconds 10]
//! LICENSING_LOAD_DATABASE_URL=postgres://... target/release/examples/directory_load
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use support::{Conn, arg, phase, start_server};

/// Rows per CSV import request (the import takes at most 100 000 and 10 MiB).
const IMPORT_BATCH: u64 = 10_000;

fn main() {
    let users = arg("--users", 100_000).max(1);
    let licenses = arg("--licenses", 10_000).max(1);
    let seats = arg("--seats", 20).max(1);
    let clients = arg("--clients", 2).max(1) as usize;
    let seconds = arg("--seconds", 10).clamp(1, 120);
    let dir = tempfile::tempdir().unwrap();
    let database = std::env::var("LICENSING_LOAD_DATABASE_URL").ok();
    let mut extra = vec!["--client-rate-per-minute", "1000000"];
    if let Some(url) = &database {
        extra.extend(["--database-url", url.as_str()]);
    }
    let server = start_server(&dir.path().join("data"), &extra);
    let addr = server.addr.clone();
    let engine = if database.is_some() {
        "PostgreSQL"
    } else {
        "SQLite synchronous=FULL"
    };
    let mut conn = Conn::open(&addr);
    let admin = Some(server.admin.as_str());

    // The identity provider's token.
    let (status, token) = conn.call(
        "POST",
        "/v1/api-tokens",
        admin,
        Some(&json!({ "role": "scim", "label": "load" })),
    );
    assert_eq!(status, 201, "{token}");
    let scim: Arc<str> = token["secret"].as_str().unwrap().into();

    // The people, through the CSV import.
    let started = Instant::now();
    let mut first = 0;
    while first < users {
        let last = (first + IMPORT_BATCH).min(users);
        let mut csv = String::from("user_name,display_name,email,department\n");
        for n in first..last {
            csv.push_str(&format!(
                "user-{n:07},User {n},user-{n:07}@example.com,Department {}\n",
                n % 100
            ));
        }
        let (status, report) = conn.send(
            "POST",
            "/v1/directory/import?dry_run=false",
            admin,
            "text/csv",
            &csv,
        );
        assert_eq!(status, 200, "{report}");
        first = last;
    }
    println!(
        "{engine}: imported {users} users in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // The licenses: named seats.
    let (status, body) = conn.call(
        "POST",
        "/v1/products",
        admin,
        Some(&json!({ "id": "com.example.directory", "name": "Directory load" })),
    );
    assert_eq!(status, 201, "{body}");
    let (status, policy) = conn.call(
        "POST",
        "/v1/policies",
        admin,
        Some(&json!({
            "product_id": "com.example.directory", "name": "named", "model": "floating",
            "seats": seats, "seat_mode": "named"
        })),
    );
    assert_eq!(status, 201, "{policy}");
    let policy_id = policy["id"].as_str().unwrap().to_owned();
    let started = Instant::now();
    let made = phase_count(&addr, &server.admin, &policy_id, licenses);
    println!(
        "{engine}: created {} licenses in {:.1} s",
        made.len(),
        started.elapsed().as_secs_f64()
    );
    let made: Arc<Vec<String>> = Arc::new(made);

    // 1. SCIM lookups by user name.
    let lookup = {
        let scim = scim.clone();
        phase(
            &format!("{engine}: SCIM GET /Users?filter=userName eq (of {users} users)"),
            &addr,
            clients,
            seconds,
            move |c, conn, n| {
                let user = pick(c, n, users);
                let path = format!("/scim/v2/Users?filter=userName%20eq%20%22user-{user:07}%22");
                let (status, body) = conn.call("GET", &path, Some(&scim), None);
                assert_eq!(status, 200, "{body}");
                assert_eq!(body["totalResults"], 1, "{body}");
                Some(body["Resources"][0]["id"].clone())
            },
        )
    };
    let ids: Arc<Vec<String>> = Arc::new(
        lookup
            .outputs
            .iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
    );
    assert!(!ids.is_empty());

    // 2. Seat assignments of looked-up users to licenses (a repeated pair is answered 409,
    // a full license too: both are answers the server computes, and are counted).
    let admin_token: Arc<str> = server.admin.as_str().into();
    phase(
        &format!("{engine}: POST /v1/licenses/{{id}}/assignments (of {licenses} licenses)"),
        &addr,
        clients,
        seconds,
        move |c, conn, n| {
            let license = &made[pick(c, n, made.len() as u64) as usize];
            let user = &ids[pick(c, n.wrapping_mul(7).wrapping_add(3), ids.len() as u64) as usize];
            let (status, body) = conn.call(
                "POST",
                &format!("/v1/licenses/{license}/assignments"),
                Some(&admin_token),
                Some(&json!({ "kind": "user", "id": user })),
            );
            assert!(status == 201 || status == 409, "{status} {body}");
            None
        },
    );
}

/// Creates `count` licenses of `policy_id` over 8 connections; their ids.
fn phase_count(addr: &str, admin: &str, policy_id: &str, count: u64) -> Vec<String> {
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let (addr, admin, policy_id) =
                (addr.to_owned(), admin.to_owned(), policy_id.to_owned());
            std::thread::spawn(move || {
                let mut conn = Conn::open(&addr);
                let mut ids = Vec::new();
                for _ in (t..count).step_by(8) {
                    let (status, body) = conn.call(
                        "POST",
                        "/v1/licenses",
                        Some(&admin),
                        Some(&json!({ "policy_id": policy_id })),
                    );
                    assert_eq!(status, 201, "{body}");
                    ids.push(body["id"].as_str().unwrap().to_owned());
                }
                ids
            })
        })
        .collect();
    threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect()
}

/// A pseudo-random index below `n` for request `i` of client `c` (SplitMix64: spread, and the
/// same sequence in every run).
fn pick(c: usize, i: usize, n: u64) -> u64 {
    let mut z = (c as u64) << 40 ^ i as u64;
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) % n
}
