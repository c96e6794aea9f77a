//! Load harness for floating licenses: durable check-outs per second and heartbeats per second
//! against a real `licensing-server serve` (SQLite, synchronous=FULL) on 127.0.0.1, with N
//! client threads on keep-alive connections. Bounded: a temp data directory, a fixed duration
//! per phase, loopback only.
//!
//! ```text
//! cargo build --release -p licensing-server --example floating_load
//! target/release/examples/floating_load [--clients 8] [--seconds 5]
//! LICENSING_LOAD_DATABASE_URL=postgres://... target/release/examples/floating_load
//! ```
//!
//! The server binary is the `licensing-server` next to the `examples/` directory of this
//! executable (the same Cargo profile), or `LICENSING_SERVER_BIN`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::sync::Arc;

use serde_json::json;
use support::{Conn, arg, phase, start_server};

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
    let (s, license) = conn.call(
        "POST",
        "/v1/licenses",
        admin,
        Some(&json!({ "policy_id": policy["id"] })),
    );
    assert_eq!(s, 201, "{license}");
    let key = license["key"].as_str().unwrap().to_owned();
    println!("server on {addr}, {engine}, {clients} clients, {seconds} s per phase");

    let k = key.clone();
    let leases = phase("check-outs", &addr, clients, seconds, move |c, conn, n| {
        let body = json!({ "license_key": k, "client_id": format!("c{c}-{n}"), "user": "u",
                           "request_id": "r" });
        let (s, lease) = conn.call("POST", "/v1/client/leases", None, Some(&body));
        assert_eq!(s, 201, "{lease}");
        Some(json!([lease["lease_id"], lease["epoch"]]))
    });
    let leases = Arc::new(leases.outputs);
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
            Some(&json!({ "license_key": k, "epoch": lease[1] })),
        );
        assert_eq!(s, 200, "{answer}");
        None
    });
    let live: usize = leases.iter().map(Vec::len).sum();
    println!("{live} live leases at the end");
}
