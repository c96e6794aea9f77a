//! Costs in a fresh process, printed as one JSON line; `scripts/bench-startup.sh` runs it many
//! times for a distribution. Mode `startup` (default): the startup check as the process's first
//! licensing call (trust store from JWKS, store opened, first fingerprint, verify, evaluate,
//! clock guard), then a cached fingerprint and an uncached OS read. Mode `fingerprint`: the
//! first fingerprint of the process alone.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Instant;

use licensing_core::machine::{SystemComponents, this_machine};
use licensing_core::store::LicenseStore;
use licensing_core::{Licensing, TrustStore, unix_now};

fn micros(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e6
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("fingerprint") {
        let t = Instant::now();
        let fp = this_machine("com.example.cad");
        let first = micros(t);
        assert!(!fp.id.is_empty());
        println!("{{\"fingerprint_first_us\":{first:.1}}}");
        return;
    }
    let (keys, store_dir) = (&args[0], &args[1]);

    let t = Instant::now();
    let trust = TrustStore::from_document(&std::fs::read_to_string(keys).unwrap()).unwrap();
    let licensing = Licensing::new(
        trust,
        "com.example.cad",
        LicenseStore::at(store_dir).unwrap(),
    );
    let verdict = licensing.check_at_startup(unix_now()).unwrap();
    let startup = micros(t);
    assert!(verdict.is_usable(), "{}", verdict.reason);

    let t = Instant::now();
    let _ = this_machine("com.example.cad");
    let cached = micros(t);
    let t = Instant::now();
    let _ = SystemComponents::read_uncached();
    let uncached = micros(t);
    println!(
        "{{\"startup_check_first_call_us\":{startup:.1},\"fingerprint_warm_us\":{cached:.1},\"os_read_uncached_us\":{uncached:.1}}}"
    );
}
