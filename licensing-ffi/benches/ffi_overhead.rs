//! The C ABI's overhead on the hot path: verify + evaluate one realistic subscription license
//! through the Rust API (`Verifier::verify` + `License::evaluate`, what `Verifier::check` does)
//! and through the exported C functions, called from Rust exactly as a C host calls them
//! (`lic_verifier_check` + `lic_verdict_status` + `lic_verdict_free`). Both use the same
//! verifier, token and context.
//!
//! Before criterion starts, both cases run interleaved (batches of about 1 ms, alternating) and
//! the bench prints the median per-round ratio C / Rust: unlike two separately timed criterion
//! results, that ratio holds on a loaded machine. See docs/BENCHMARKS.md.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::ffi::c_char;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use licensing_core::{
    Context, LicenseClaims, PrivateKey, Status, TrustStore, Verifier, issue_license,
};
use licensing_ffi::{
    lic_context, lic_context_add_feature, lic_context_free, lic_context_new,
    lic_context_set_version, lic_result, lic_trust_store, lic_trust_store_add_document,
    lic_trust_store_free, lic_trust_store_new, lic_verdict, lic_verdict_free, lic_verdict_status,
    lic_verifier, lic_verifier_check, lic_verifier_free, lic_verifier_new,
};

const SEED: [u8; 32] = [
    0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4,
    0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60,
];
const PRODUCT: &str = "com.example.cadpro";
const NOW: i64 = 1_780_000_000;

/// The same realistic subscription claims as licensing-core's `verify` bench.
fn token(key: &PrivateKey) -> String {
    let claims = serde_json::json!({
        "iss": "https://licensing.example.com",
        "sub": "lic_01JF8Z3K4Q7W2N5M6P9R0S1T2V",
        "aud": PRODUCT,
        "iat": 1_767_225_600,
        "nbf": 1_767_225_600,
        "exp": 4_102_444_800_i64,
        "jti": "9f3c2a71-5d4e-4b8a-9c1f-2e7d6a5b4c3d",
        "lic": {
            "model": "subscription",
            "customer": {
                "id": "cus_8842",
                "name": "Northwind Engineering GmbH",
                "email": "licensing@northwind.example"
            },
            "max_machines": 5,
            "grace_period": 1_209_600,
            "features": {
                "core": {},
                "export.pdf": {},
                "export.step": { "limit": 500 },
                "import.iges": {},
                "render.gpu": { "limit": 4 },
                "simulation.fea": { "exp": 1_798_761_600 },
                "collab.cloud": { "limit": 25 },
                "api.scripting": {},
                "plugins.marketplace": {},
                "support.priority": { "exp": 1_798_761_600 }
            },
            "version": { "req": ">=2.0.0, <3.0.0" },
            "metadata": {
                "order_id": "SO-2026-004211",
                "reseller": "Acme Distribution",
                "plan": "professional-annual",
                "seats_purchased": 5,
                "notes": "Renewal of lic_01HB..., migrated from v1 format"
            }
        }
    });
    let serde_json::Value::Object(object) = claims else {
        unreachable!()
    };
    issue_license(&LicenseClaims::from_object(object).unwrap(), key).unwrap()
}

struct Fixture {
    token: String,
    verifier: Verifier,
    context: Context,
    c_verifier: *mut lic_verifier,
    c_context: *mut lic_context,
}

impl Fixture {
    fn new() -> Self {
        let key = PrivateKey::from_seed(&SEED).unwrap();
        let pem = key.public_key().to_spki_pem().unwrap();
        let token = token(&key);
        let verifier = Verifier::new(TrustStore::from_document(&pem).unwrap(), PRODUCT);
        let context = Context::at(NOW)
            .with_version(semver::Version::new(2, 4, 0))
            .with_feature("export.step")
            .with_feature("render.gpu");
        let mut store: *mut lic_trust_store = std::ptr::null_mut();
        let mut c_verifier: *mut lic_verifier = std::ptr::null_mut();
        let mut c_context: *mut lic_context = std::ptr::null_mut();
        // SAFETY: valid pointers and NUL-terminated strings throughout.
        unsafe {
            assert_eq!(lic_trust_store_new(&mut store), lic_result::LIC_OK);
            assert_eq!(
                lic_trust_store_add_document(store, pem.as_ptr().cast(), pem.len()),
                lic_result::LIC_OK
            );
            assert_eq!(
                lic_verifier_new(store, c"com.example.cadpro".as_ptr(), &mut c_verifier),
                lic_result::LIC_OK
            );
            lic_trust_store_free(store);
            assert_eq!(lic_context_new(NOW, &mut c_context), lic_result::LIC_OK);
            assert_eq!(
                lic_context_set_version(c_context, c"2.4.0".as_ptr()),
                lic_result::LIC_OK
            );
            for feature in [c"export.step", c"render.gpu"] {
                assert_eq!(
                    lic_context_add_feature(c_context, feature.as_ptr()),
                    lic_result::LIC_OK
                );
            }
        }
        Fixture {
            token,
            verifier,
            context,
            c_verifier,
            c_context,
        }
    }

    /// The Rust API: what `Verifier::check` does.
    fn rust(&self) -> Status {
        let verdict = match self.verifier.verify(black_box(&self.token)) {
            Ok(license) => license.evaluate(black_box(&self.context)),
            Err(error) => licensing_core::Verdict::from_error(&error),
        };
        black_box(verdict).status
    }

    /// The C ABI, called as a C host calls it.
    fn c(&self) -> Status {
        let mut verdict: *mut lic_verdict = std::ptr::null_mut();
        let mut status = Status::NoLicense;
        let token = black_box(self.token.as_ptr().cast::<c_char>());
        // SAFETY: live handles, the token's bytes and length, valid out-pointers.
        unsafe {
            let code = lic_verifier_check(
                self.c_verifier,
                token,
                self.token.len(),
                self.c_context,
                &mut verdict,
            );
            debug_assert_eq!(code, lic_result::LIC_OK);
            lic_verdict_status(verdict, &mut status);
            lic_verdict_free(verdict);
        }
        status
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // SAFETY: handles made in `new`, freed once.
        unsafe {
            lic_verifier_free(self.c_verifier);
            lic_context_free(self.c_context);
        }
    }
}

/// Timing of two cases run interleaved: batches of `batch` calls, alternating which goes
/// first, `rounds` times.
struct Interleaved {
    /// Fastest batch, per call: the least disturbed by other processes.
    min_a: Duration,
    min_b: Duration,
    /// Median batch, per call.
    median_a: Duration,
    median_b: Duration,
    /// Median over rounds of b / a (each round's two batches run back to back).
    median_ratio: f64,
}

fn interleaved(rounds: usize, batch: u32, a: &dyn Fn(), b: &dyn Fn()) -> Interleaved {
    let time = |f: &dyn Fn()| {
        let t = Instant::now();
        for _ in 0..batch {
            f();
        }
        t.elapsed() / batch
    };
    let (mut times_a, mut times_b, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        // Alternate which case goes first so neither always runs on a warmer cache.
        let (ta, tb) = if round % 2 == 0 {
            let ta = time(a);
            (ta, time(b))
        } else {
            let tb = time(b);
            (time(a), tb)
        };
        times_a.push(ta);
        times_b.push(tb);
        ratios.push(tb.as_secs_f64() / ta.as_secs_f64());
    }
    times_a.sort();
    times_b.sort();
    ratios.sort_by(f64::total_cmp);
    Interleaved {
        min_a: times_a[0],
        min_b: times_b[0],
        median_a: times_a[rounds / 2],
        median_b: times_b[rounds / 2],
        median_ratio: ratios[rounds / 2],
    }
}

/// Calls that fit in about `target` of wall time.
fn batch_for(target: Duration, f: &dyn Fn()) -> u32 {
    let start = Instant::now();
    let mut calls = 0u32;
    while start.elapsed() < target * 20 {
        f();
        calls += 1;
    }
    (calls / 20).max(1)
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn bench(c: &mut Criterion) {
    let fixture = Fixture::new();
    assert_eq!(fixture.rust(), Status::Valid);
    assert_eq!(fixture.c(), Status::Valid);
    let rounds = std::env::var("FFI_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3000);

    // 1. The whole call, Rust vs C.
    let rust = || {
        black_box(fixture.rust());
    };
    let c_abi = || {
        black_box(fixture.c());
    };
    let batch = batch_for(Duration::from_micros(500), &rust);
    let full = interleaved(rounds, batch, &rust, &c_abi);
    println!(
        "verify+evaluate, interleaved ({rounds} rounds of {batch} calls): \
         fastest batch rust {:.2} µs, c {:.2} µs (c/rust {:.4}); \
         median batch rust {:.2} µs, c {:.2} µs; median per-round ratio c/rust {:.4}",
        us(full.min_a),
        us(full.min_b),
        full.min_b.as_secs_f64() / full.min_a.as_secs_f64(),
        us(full.median_a),
        us(full.median_b),
        full.median_ratio,
    );

    // 2. The wrapper alone: the same calls on a token of the same length that the core refuses
    // at once (four segments), so the difference is what the C layer adds (panic boundary,
    // pointer and UTF-8 checks, the verdict's allocation, the status getter and the free).
    let mut malformed = Fixture::new();
    malformed
        .token
        .replace_range(malformed.token.len() - 1.., ".");
    assert_eq!(malformed.token.len(), fixture.token.len());
    assert_eq!(malformed.rust(), Status::Malformed);
    assert_eq!(malformed.c(), Status::Malformed);
    let rust_cheap = || {
        black_box(malformed.rust());
    };
    let c_cheap = || {
        black_box(malformed.c());
    };
    let batch = batch_for(Duration::from_micros(200), &rust_cheap);
    let cheap = interleaved(rounds, batch, &rust_cheap, &c_cheap);
    let wrapper = cheap.min_b.saturating_sub(cheap.min_a);
    println!(
        "refused at once, interleaved ({rounds} rounds of {batch} calls): \
         fastest batch rust {:.0} ns, c {:.0} ns: the C layer adds {:.0} ns per call",
        cheap.min_a.as_secs_f64() * 1e9,
        cheap.min_b.as_secs_f64() * 1e9,
        wrapper.as_secs_f64() * 1e9,
    );
    println!(
        "C ABI overhead on verify+evaluate: {:.0} ns / {:.2} µs = {:.3} % (fastest batches: {:+.2} %)",
        wrapper.as_secs_f64() * 1e9,
        us(full.min_a),
        wrapper.as_secs_f64() / full.min_a.as_secs_f64() * 100.0,
        (full.min_b.as_secs_f64() / full.min_a.as_secs_f64() - 1.0) * 100.0,
    );

    let mut group = c.benchmark_group("ffi_overhead");
    group.bench_function("rust_verify_evaluate", |b| b.iter(|| fixture.rust()));
    group.bench_function("c_verify_evaluate", |b| b.iter(|| fixture.c()));
    group.bench_function("rust_refused_at_once", |b| b.iter(|| malformed.rust()));
    group.bench_function("c_refused_at_once", |b| b.iter(|| malformed.c()));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
