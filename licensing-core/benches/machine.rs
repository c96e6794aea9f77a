//! Fingerprint and startup-check costs (warm, in one process). The first call in a fresh
//! process is measured by `examples/cold_start.rs` (see docs/BENCHMARKS.md).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use licensing_core::fingerprint::{ComponentSource, MachineFingerprint};
use licensing_core::machine::{SystemComponents, this_machine};
use licensing_core::store::LicenseStore;
use licensing_core::{LicenseClaims, Licensing, PrivateKey, TrustStore, issue_license, unix_now};

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("machine");
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_secs(1));
    g.sample_size(50);

    g.bench_function("read_components_from_os_uncached", |b| {
        b.iter(SystemComponents::read_uncached)
    });
    let raw = SystemComponents.read();
    g.bench_function("derive_fingerprint_from_components", |b| {
        b.iter(|| MachineFingerprint::derive(&raw, "com.example.cad"))
    });
    g.bench_function("this_machine_fingerprint", |b| {
        b.iter(|| this_machine("com.example.cad"))
    });

    let key = PrivateKey::from_seed(&[3u8; 32]).unwrap();
    let fp = this_machine("com.example.cad");
    let claims: LicenseClaims = serde_json::from_value(serde_json::json!({
        "iss": "i", "sub": "lic", "aud": "com.example.cad", "iat": unix_now() - 10,
        "lic": {"model": "node_locked", "features": {"core": {}},
                "node_lock": {"fingerprints": [{"id": fp.id, "components": fp.components}],
                              "match": {"required": ["machine_id"], "min_matching": 3}}}
    }))
    .unwrap();
    let token = issue_license(&claims, &key).unwrap();
    let mut trust = TrustStore::new();
    trust.add(key.public_key().clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let licensing = Licensing::new(
        trust,
        "com.example.cad",
        LicenseStore::at(dir.path()).unwrap(),
    );
    assert!(licensing.install(&token, unix_now()).unwrap().is_usable());
    g.bench_function("check_at_startup", |b| {
        b.iter(|| {
            let v = licensing.check_at_startup(unix_now()).unwrap();
            assert!(v.is_usable(), "{}", v.reason);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
