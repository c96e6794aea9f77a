//! Verification cost of one realistic subscription license, against the raw Ed25519 floor and
//! two peer token formats. See `docs/BENCHMARKS.md` for how to read (and reproduce) the numbers.
//!
//! Group `verify`: the comparison. Every case works on the same claims, signed by the same
//! Ed25519 key (fixed seed):
//!
//! - `floor_warm`: `ed25519_dalek::VerifyingKey::verify_strict` over the token's exact signing
//!   input (`header.payload`, ASCII) and signature bytes, key already decoded.
//! - `floor_nonstrict_warm` (reference): the same with dalek's non-strict `verify`.
//! - `floor_keyparse`: `VerifyingKey::from_bytes` + `verify_strict` each iteration.
//! - `ours_warm`: `Verifier::verify(&token)` + `License::evaluate(&ctx)`, verifier built once.
//! - `ours_verify_only`: `Verifier::verify(&token)` alone (no evaluation).
//! - `ours_keyparse_pem`: `TrustStore::from_document(spki_pem)` + `Verifier::new` + verify +
//!   evaluate each iteration.
//! - `ours_keyparse_bytes`: `PublicKey::from_bytes` + `TrustStore::add` + `Verifier::new` +
//!   verify + evaluate each iteration.
//! - `bound_decode_only_warm` / `_keyparse`: lower bounds, not implementations: split, strict
//!   base64, typed header, `verify_strict` and one JSON pass over the payload that builds
//!   nothing (with key decompression and the weak-key check for `_keyparse`).
//! - `jsonwebtoken_warm`: `jsonwebtoken::decode::<LicenseClaims>` of the same token with a
//!   prepared `DecodingKey` (from the SPKI PEM) and an EdDSA `Validation` checking `aud`,
//!   `exp` and `nbf` (wall clock).
//! - `jsonwebtoken_keyparse_pem`: `DecodingKey::from_ed_pem` + the same decode each iteration.
//! - `pasetors_v4_warm`: `UntrustedToken::try_from` + `pasetors::public::verify` of a
//!   `v4.public` token carrying the same claims (PASETO requires `iat`/`nbf`/`exp` as RFC 3339
//!   strings, so only those three differ), with `ClaimsValidationRules` checking `aud`, `exp`,
//!   `nbf`, `iat` (wall clock); the claims end up parsed into pasetors' `Claims` map.
//!
//! Group `verify_parts`: the steps of `ours_warm` one by one, re-done with the same public
//! functions and crates the core uses, to locate the overhead above the floor; plus prototypes
//! of suggested replacements and a lower bound, named as such.
//!
//! Before criterion starts, every case of both groups also runs interleaved (batches of about
//! 1 ms, round-robin) and the bench prints each one's median per-round ratio to `floor_warm`:
//! unlike separately timed criterion results, those ratios hold on a loaded machine.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use ed25519_dalek::{Signature, VerifyingKey};
use licensing_core::{
    Context, License, LicenseClaims, PrivateKey, PublicKey, TrustStore, Verifier, issue_license,
    strict_json,
};
use pasetors::claims::{Claims, ClaimsValidationRules};
use pasetors::keys::{AsymmetricKeyPair, AsymmetricPublicKey, AsymmetricSecretKey};
use pasetors::token::UntrustedToken;
use pasetors::version4::V4;
use pasetors::{Public, public};

const SEED: [u8; 32] = [
    0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4,
    0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60,
];
const PRODUCT: &str = "com.example.cadpro";
/// 2026-01-01T00:00:00Z.
const IAT: i64 = 1_767_225_600;
/// 2100-01-01T00:00:00Z: far enough that the peers' wall-clock `exp` checks keep passing.
const EXP: i64 = 4_102_444_800;
/// Mid-2026, the `now` our (clock-free) evaluation is given.
const NOW: i64 = 1_780_000_000;

/// The same strict base64url configuration as the core's private `b64` module.
const STRICT_B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

/// The license claims, with `iat`/`nbf`/`exp` supplied by the caller (numbers for JWT,
/// RFC 3339 strings for PASETO).
fn claims_json(
    iat: serde_json::Value,
    nbf: serde_json::Value,
    exp: serde_json::Value,
) -> serde_json::Value {
    serde_json::json!({
        "iss": "https://licensing.example.com",
        "sub": "lic_01JF8Z3K4Q7W2N5M6P9R0S1T2V",
        "aud": PRODUCT,
        "iat": iat,
        "nbf": nbf,
        "exp": exp,
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
    })
}

struct Fixture {
    token: String,
    signing_input: Vec<u8>,
    signature: [u8; 64],
    key_bytes: [u8; 32],
    spki_pem: String,
    verifier: Verifier,
    ctx: Context,
    jwt_key: jsonwebtoken::DecodingKey,
    jwt_validation: jsonwebtoken::Validation,
    paseto_token: String,
    paseto_key: AsymmetricPublicKey<V4>,
    paseto_rules: ClaimsValidationRules,
}

fn fixture() -> Fixture {
    let key = PrivateKey::from_seed(&SEED).unwrap();
    let claims: LicenseClaims =
        serde_json::from_value(claims_json(IAT.into(), IAT.into(), EXP.into())).unwrap();
    let token = issue_license(&claims, &key).unwrap();
    let (signing_input, signature_b64) = token.rsplit_once('.').unwrap();
    let signature: [u8; 64] = STRICT_B64
        .decode(signature_b64)
        .unwrap()
        .try_into()
        .unwrap();
    let key_bytes = key.public_key().to_bytes();
    let spki_pem = key.public_key().to_spki_pem().unwrap();
    let verifier = Verifier::new(TrustStore::from_document(&spki_pem).unwrap(), PRODUCT);
    let ctx = Context::at(NOW)
        .with_version(semver::Version::new(2, 4, 1))
        .with_feature("export.step")
        .with_feature("render.gpu");

    let jwt_key = jsonwebtoken::DecodingKey::from_ed_pem(spki_pem.as_bytes()).unwrap();
    let mut jwt_validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    jwt_validation.set_audience(&[PRODUCT]);
    jwt_validation.validate_nbf = true;

    // PASETO v4.public with the same Ed25519 key pair (secret key = seed || public key).
    let mut sk = SEED.to_vec();
    sk.extend_from_slice(&key_bytes);
    let secret = AsymmetricSecretKey::<V4>::from(&sk).unwrap();
    let pair = AsymmetricKeyPair::<V4> {
        public: AsymmetricPublicKey::<V4>::try_from(&secret).unwrap(),
        secret,
    };
    let paseto_claims = claims_json(
        "2026-01-01T00:00:00Z".into(),
        "2026-01-01T00:00:00Z".into(),
        "2100-01-01T00:00:00Z".into(),
    );
    let paseto_claims = Claims::from_string(&paseto_claims.to_string()).unwrap();
    let paseto_token = public::sign(&pair.secret, &paseto_claims, None, None).unwrap();
    let mut paseto_rules = ClaimsValidationRules::new();
    paseto_rules.validate_audience_with(PRODUCT);

    let fixture = Fixture {
        signing_input: signing_input.as_bytes().to_vec(),
        token,
        signature,
        key_bytes,
        spki_pem,
        verifier,
        ctx,
        jwt_key,
        jwt_validation,
        paseto_token,
        paseto_key: pair.public,
        paseto_rules,
    };
    fixture.sanity_check();
    fixture
}

impl Fixture {
    /// Every measured path must succeed on the fixture, or the numbers mean nothing.
    fn sanity_check(&self) {
        let verdict = self
            .verifier
            .verify(&self.token)
            .unwrap()
            .evaluate(&self.ctx);
        assert!(verdict.is_usable(), "{verdict:?}");
        assert_eq!(verdict.features.len(), 2);
        assert!(verdict.features.iter().all(|f| f.status.is_usable()));
        VerifyingKey::from_bytes(&self.key_bytes)
            .unwrap()
            .verify_strict(&self.signing_input, &Signature::from_bytes(&self.signature))
            .unwrap();
        let data =
            jsonwebtoken::decode::<LicenseClaims>(&self.token, &self.jwt_key, &self.jwt_validation)
                .unwrap();
        assert_eq!(data.claims.lic.features.len(), 10);
        let untrusted = UntrustedToken::<Public, V4>::try_from(self.paseto_token.as_str()).unwrap();
        let trusted =
            public::verify(&self.paseto_key, &untrusted, &self.paseto_rules, None, None).unwrap();
        assert!(trusted.payload_claims().is_some());
        // Same claims, same size class: the PASETO payload differs only in the three dates.
        let jwt_payload = self.signing_input.len() - self.token.find('.').unwrap() - 1;
        println!(
            "fixture: JWS token {} B (header.payload {} B, payload b64 {} B), PASETO token {} B",
            self.token.len(),
            self.signing_input.len(),
            jwt_payload,
            self.paseto_token.len()
        );
    }
}

/// A measured case: its name in group `verify` and one iteration of it.
type Case<'a> = (&'static str, Box<dyn Fn() + 'a>);

/// Every case of group `verify`, in report order. Results go through `black_box`.
fn cases<'a>(f: &'a Fixture, floor_key: &'a VerifyingKey) -> Vec<Case<'a>> {
    vec![
        (
            "floor_warm",
            Box::new(|| {
                floor_key
                    .verify_strict(
                        black_box(&f.signing_input),
                        &Signature::from_bytes(black_box(&f.signature)),
                    )
                    .unwrap();
            }),
        ),
        // Reference only: dalek's default (cofactorless, non-strict) `verify`, what the
        // jsonwebtoken row runs (through ed25519-dalek 2). Prices strictness itself.
        (
            "floor_nonstrict_warm",
            Box::new(|| {
                ed25519_dalek::Verifier::verify(
                    floor_key,
                    black_box(&f.signing_input),
                    &Signature::from_bytes(black_box(&f.signature)),
                )
                .unwrap();
            }),
        ),
        (
            "floor_keyparse",
            Box::new(|| {
                VerifyingKey::from_bytes(black_box(&f.key_bytes))
                    .unwrap()
                    .verify_strict(
                        black_box(&f.signing_input),
                        &Signature::from_bytes(black_box(&f.signature)),
                    )
                    .unwrap();
            }),
        ),
        (
            "ours_warm",
            Box::new(|| {
                black_box(
                    f.verifier
                        .verify(black_box(&f.token))
                        .unwrap()
                        .evaluate(black_box(&f.ctx)),
                );
            }),
        ),
        (
            "ours_verify_only",
            Box::new(|| {
                black_box(f.verifier.verify(black_box(&f.token)).unwrap());
            }),
        ),
        (
            "ours_keyparse_pem",
            Box::new(|| {
                let store = TrustStore::from_document(black_box(&f.spki_pem)).unwrap();
                black_box(
                    Verifier::new(store, PRODUCT)
                        .verify(black_box(&f.token))
                        .unwrap()
                        .evaluate(black_box(&f.ctx)),
                );
            }),
        ),
        (
            "ours_keyparse_bytes",
            Box::new(|| {
                let mut store = TrustStore::new();
                store
                    .add(PublicKey::from_bytes(black_box(&f.key_bytes)).unwrap())
                    .unwrap();
                black_box(
                    Verifier::new(store, PRODUCT)
                        .verify(black_box(&f.token))
                        .unwrap()
                        .evaluate(black_box(&f.ctx)),
                );
            }),
        ),
        // Lower bounds, not implementations: the least any strict verifier of this token must
        // do (split, strict base64 of all three segments, the typed header, `verify_strict`, one
        // JSON pass over the payload that builds nothing), with no claims, no validation and no
        // evaluation. What is left between these and the targets is the whole budget for
        // typed claims and evaluation.
        (
            "bound_decode_only_warm",
            Box::new(|| decode_only(black_box(&f.token), floor_key)),
        ),
        // The same after loading the key as the trust store must: decompression and the
        // weak-key refusal (no kid thumbprint, no canonical-encoding check).
        (
            "bound_decode_only_keyparse",
            Box::new(|| {
                let key = VerifyingKey::from_bytes(black_box(&f.key_bytes)).unwrap();
                assert!(!key.is_weak());
                decode_only(black_box(&f.token), &key);
            }),
        ),
        (
            "jsonwebtoken_warm",
            Box::new(|| {
                black_box(
                    jsonwebtoken::decode::<LicenseClaims>(
                        black_box(&f.token),
                        &f.jwt_key,
                        &f.jwt_validation,
                    )
                    .unwrap(),
                );
            }),
        ),
        (
            "jsonwebtoken_keyparse_pem",
            Box::new(|| {
                let key = jsonwebtoken::DecodingKey::from_ed_pem(black_box(f.spki_pem.as_bytes()))
                    .unwrap();
                black_box(
                    jsonwebtoken::decode::<LicenseClaims>(
                        black_box(&f.token),
                        &key,
                        &f.jwt_validation,
                    )
                    .unwrap(),
                );
            }),
        ),
        (
            "pasetors_v4_warm",
            Box::new(|| {
                let untrusted =
                    UntrustedToken::<Public, V4>::try_from(black_box(f.paseto_token.as_str()))
                        .unwrap();
                black_box(
                    public::verify(&f.paseto_key, &untrusted, &f.paseto_rules, None, None).unwrap(),
                );
            }),
        ),
    ]
}

/// Ratios that survive a loaded machine: the cases run interleaved, round after round, each
/// in a batch of about 1 ms (order rotating every round), so load drift hits every case alike;
/// each case's time is divided by the time of the first case (the floor) in the same round and
/// the median of those per-round ratios printed, next to the ratio of the 5th percentiles of
/// the batch times (the batches other processes did not slow down).
fn interleaved_ratios(tables: &[(&str, &[Case<'_>])]) {
    const ROUNDS: usize = 500;
    let all: Vec<&Case<'_>> = tables.iter().flat_map(|(_, cases)| cases.iter()).collect();
    // Warm up, then size each batch to about 1 ms.
    let batches: Vec<u32> = all
        .iter()
        .map(|(_, run)| {
            let start = Instant::now();
            for _ in 0..50 {
                run();
            }
            let per_iter = start.elapsed().as_secs_f64() / 50.0;
            (1e-3 / per_iter).ceil().clamp(1.0, 1e6) as u32
        })
        .collect();
    let n = all.len();
    let mut per_iter = vec![Vec::with_capacity(ROUNDS); n];
    for round in 0..ROUNDS {
        for k in 0..n {
            let i = (k + round) % n;
            let start = Instant::now();
            for _ in 0..batches[i] {
                all[i].1();
            }
            per_iter[i].push(start.elapsed().as_secs_f64() / f64::from(batches[i]));
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    // The fastest 5 % of batches: those the other processes on the machine left alone.
    let p05 = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 20]
    };
    let floor = &per_iter[0];
    let floor_p05 = p05(floor.clone());
    let mut i = 0;
    for (title, cases) in tables {
        println!(
            "interleaved {title} ({ROUNDS} rounds; ratios to {}: median of per-round ratios, \
             ratio of 5th percentiles; per-iteration times: median, 5th percentile):",
            all[0].0
        );
        for (name, _) in cases.iter() {
            let ratio = median(per_iter[i].iter().zip(floor).map(|(t, f)| t / f).collect());
            let fast = p05(per_iter[i].clone());
            println!(
                "  {name:38} {ratio:7.3}x {:7.3}x   {:9.3} µs {:9.3} µs",
                fast / floor_p05,
                median(per_iter[i].clone()) * 1e6,
                fast * 1e6
            );
            i += 1;
        }
    }
}

fn verify_group(c: &mut Criterion) {
    let f = fixture();
    let floor_key = VerifyingKey::from_bytes(&f.key_bytes).unwrap();
    let cases = cases(&f, &floor_key);
    let p = Parts::new(&f);
    interleaved_ratios(&[("verify", &cases), ("verify_parts", &part_cases(&f, &p))]);
    let mut g = c.benchmark_group("verify");
    for (name, run) in &cases {
        g.bench_function(*name, |b| b.iter(run));
    }
    g.finish();
}

/// Inputs of the parts of `ours_warm`, prepared once from the fixture.
struct Parts {
    header_b64: String,
    payload_b64: String,
    signature_b64: String,
    payload: Vec<u8>,
    claims: LicenseClaims,
    license: License,
    dalek_key: VerifyingKey,
}

impl Parts {
    fn new(f: &Fixture) -> Parts {
        let mut segments = f.token.split('.');
        let mut next = || segments.next().unwrap().to_owned();
        let (header_b64, payload_b64, signature_b64) = (next(), next(), next());
        let payload = STRICT_B64.decode(&payload_b64).unwrap();
        let parts = Parts {
            claims: serde_json::from_slice(&payload).unwrap(),
            license: f.verifier.verify(&f.token).unwrap(),
            dalek_key: VerifyingKey::from_bytes(&f.key_bytes).unwrap(),
            header_b64,
            payload_b64,
            signature_b64,
            payload,
        };
        parts.sanity_check();
        parts
    }

    /// The prototype pre-pass must agree with the real one on what it refuses.
    fn sanity_check(&self) {
        for (doc, ok) in [
            (&br#"{"a":1,"b":{"c":[1,2,{"d":null}]}}"#[..], true),
            (br#"{"a":1,"a":2}"#, false),
            (br#"{"x":{"a":1,"a":2}}"#, false),
            (br#"{"x":[{"a":1,"\u0061":2}]}"#, false),
            (br#"{"a":{"b":1},"b":{"a":1}}"#, true),
            (br#"{"a":{"a":1},"a":2}"#, false),
            (b"[]", false),
            (b"1", false),
            (b"{} {}", false),
            (b"{\"a\":\"\xff\"}", false),
        ] {
            let text = String::from_utf8_lossy(doc);
            assert_eq!(check_object_vec(doc).is_ok(), ok, "{text}");
            assert_eq!(strict_json::check_object(doc).is_ok(), ok, "{text}");
        }
        let depth = strict_json::MAX_DEPTH;
        let ok = "{\"a\":".repeat(depth - 1) + "{}" + &"}".repeat(depth - 1);
        let deep = "{\"a\":".repeat(depth) + "{}" + &"}".repeat(depth);
        assert!(check_object_vec(ok.as_bytes()).is_ok());
        assert!(check_object_vec(deep.as_bytes()).is_err());
        check_object_vec(&self.payload).unwrap();
        // The one pass reads the genuine payload (no fall-back to the two passes).
        assert_eq!(
            strict_json::from_slice::<LicenseClaims>(&self.payload).unwrap(),
            self.claims
        );
    }
}

/// The steps of `Verifier::verify` + `evaluate`, in order, each on its own (plus prototypes
/// of suggested replacements and one lower bound, marked as such).
fn part_cases<'a>(f: &'a Fixture, p: &'a Parts) -> Vec<Case<'a>> {
    let store = f.verifier.trust_store();
    vec![
        // b64 decode + strict pre-pass + Map parse + header checks + trust-store lookup.
        (
            "header",
            Box::new(move || {
                let bytes = STRICT_B64.decode(black_box(&p.header_b64)).unwrap();
                strict_json::check_object(&bytes).unwrap();
                let map: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_slice(&bytes).unwrap();
                assert!(
                    map.keys()
                        .all(|k| ["alg", "kid", "typ"].contains(&k.as_str()))
                );
                let kid = map.get("kid").and_then(|v| v.as_str()).unwrap();
                assert_eq!(map.get("typ").and_then(|v| v.as_str()), Some("license+jwt"));
                black_box(store.get(kid).is_some());
            }),
        ),
        // Prototype: one typed, borrowing parse of the header. serde's derive rejects a
        // repeated known field and `deny_unknown_fields` everything else, so the header needs
        // neither the strict pre-pass nor a `Map<String, Value>`.
        (
            "header_typed_prototype",
            Box::new(move || {
                let bytes = STRICT_B64.decode(black_box(&p.header_b64)).unwrap();
                let header: HeaderPrototype<'_> = serde_json::from_slice(&bytes).unwrap();
                assert!(matches!(&*header.alg, "EdDSA" | "Ed25519"));
                assert_eq!(header.typ, "license+jwt");
                black_box(store.get(&header.kid).is_some());
            }),
        ),
        (
            "signature_b64",
            Box::new(|| {
                let mut out = [0u8; 64];
                STRICT_B64
                    .decode_slice(black_box(&p.signature_b64), &mut out)
                    .unwrap();
                black_box(out);
            }),
        ),
        (
            "payload_b64",
            Box::new(|| {
                black_box(STRICT_B64.decode(black_box(&p.payload_b64)).unwrap());
            }),
        ),
        (
            "payload_strict_prepass",
            Box::new(|| strict_json::check_object(black_box(&p.payload)).unwrap()),
        ),
        // Prototype: the same pre-pass with a linear scan over one reused `Vec` of keys
        // instead of a `HashSet` (allocation + SipHash) per object.
        (
            "payload_strict_prepass_vec_prototype",
            Box::new(|| check_object_vec(black_box(&p.payload)).unwrap()),
        ),
        // Lower bound: serde_json validating the payload without building anything.
        (
            "payload_json_scan_lower_bound",
            Box::new(|| {
                serde_json::from_slice::<serde::de::IgnoredAny>(black_box(&p.payload)).unwrap();
            }),
        ),
        // What `LicenseClaims::from_json` does (serde_path_to_error), minus `validate`.
        (
            "claims_deserialize",
            Box::new(|| {
                let de = &mut serde_json::Deserializer::from_slice(black_box(&p.payload));
                let claims: LicenseClaims = serde_path_to_error::deserialize(de).unwrap();
                black_box(claims);
            }),
        ),
        // The same without serde_path_to_error, to price the error-path tracking.
        (
            "claims_deserialize_plain",
            Box::new(|| {
                black_box(serde_json::from_slice::<LicenseClaims>(black_box(&p.payload)).unwrap());
            }),
        ),
        // What `Verifier::verify` does with the payload since the one-pass parsing: duplicate
        // names and depth checked inside the typed deserialization (no pre-pass).
        (
            "claims_one_pass",
            Box::new(|| {
                black_box(strict_json::from_slice::<LicenseClaims>(black_box(&p.payload)).unwrap());
            }),
        ),
        (
            "claims_validate",
            Box::new(|| black_box(&p.claims).validate().unwrap()),
        ),
        (
            "evaluate",
            Box::new(|| {
                black_box(black_box(&p.license).evaluate(black_box(&f.ctx)));
            }),
        ),
        // Key loading, step by step: what `ours_keyparse_*` add to `ours_warm`.
        (
            "key_dalek_from_bytes",
            Box::new(|| {
                black_box(VerifyingKey::from_bytes(black_box(&f.key_bytes)).unwrap());
            }),
        ),
        // The canonical-encoding check of `PublicKey::from_bytes`: re-compress and compare.
        (
            "key_recompress_check",
            Box::new(|| {
                let key = black_box(&p.dalek_key);
                assert_eq!(key.to_edwards().compress().to_bytes(), f.key_bytes);
            }),
        ),
        (
            "key_is_weak",
            Box::new(|| assert!(!black_box(&p.dalek_key).is_weak())),
        ),
        (
            "key_thumbprint",
            Box::new(|| {
                black_box(licensing_core::thumbprint(black_box(&f.key_bytes)));
            }),
        ),
        (
            "key_ours_from_bytes",
            Box::new(|| {
                black_box(PublicKey::from_bytes(black_box(&f.key_bytes)).unwrap());
            }),
        ),
        (
            "key_truststore_from_pem",
            Box::new(|| {
                black_box(TrustStore::from_document(black_box(&f.spki_pem)).unwrap());
            }),
        ),
    ]
}

fn parts_group(c: &mut Criterion) {
    let f = fixture();
    let p = Parts::new(&f);
    let mut g = c.benchmark_group("verify_parts");
    for (name, run) in &part_cases(&f, &p) {
        g.bench_function(*name, |b| b.iter(run));
    }
    // Freeing the claims (part of every verification: the `License` is dropped).
    g.bench_function("claims_drop", |b| {
        b.iter_batched(|| p.claims.clone(), drop, BatchSize::SmallInput);
    });
    g.finish();
}

/// The lower-bound pipeline of `bound_decode_only_*`: everything a strict verifier of the
/// format must do before it can build a single claim, and nothing else.
fn decode_only(token: &str, key: &VerifyingKey) {
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        panic!("three segments");
    };
    let header_bytes = STRICT_B64.decode(header_b64).unwrap();
    let header: HeaderPrototype<'_> = serde_json::from_slice(&header_bytes).unwrap();
    assert!(matches!(&*header.alg, "EdDSA" | "Ed25519"));
    let mut signature = [0u8; 64];
    STRICT_B64
        .decode_slice(signature_b64, &mut signature)
        .unwrap();
    let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
    key.verify_strict(signing_input.as_bytes(), &Signature::from_bytes(&signature))
        .unwrap();
    assert_eq!(header.typ, "license+jwt");
    let payload = STRICT_B64.decode(payload_b64).unwrap();
    serde_json::from_slice::<serde::de::IgnoredAny>(&payload).unwrap();
    black_box(&header.kid);
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderPrototype<'a> {
    #[serde(borrow)]
    alg: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    kid: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    typ: std::borrow::Cow<'a, str>,
}

/// `strict_json::check_object` with the per-object `HashSet` replaced by a linear scan over
/// one `Vec` of keys shared by the whole walk (keys are borrowed from the input when unescaped).
fn check_object_vec(bytes: &[u8]) -> Result<(), String> {
    use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
    use std::borrow::Cow;

    struct Walk<'k, 'de> {
        depth: usize,
        top: bool,
        keys: &'k mut Vec<Cow<'de, str>>,
    }
    impl<'de> Walk<'_, 'de> {
        fn scalar<E: serde::de::Error>(&self) -> Result<(), E> {
            if self.top {
                Err(E::custom("expected a JSON object"))
            } else {
                Ok(())
            }
        }
        fn child(&mut self) -> Walk<'_, 'de> {
            Walk {
                depth: self.depth + 1,
                top: false,
                keys: &mut *self.keys,
            }
        }
    }
    /// Borrows keys from the input when they have no escapes.
    struct Key;
    impl<'de> DeserializeSeed<'de> for Key {
        type Value = Cow<'de, str>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(self)
        }
    }
    impl<'de> Visitor<'de> for Key {
        type Value = Cow<'de, str>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string key")
        }
        fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(v))
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v.to_owned()))
        }
    }
    impl<'de> DeserializeSeed<'de> for Walk<'_, 'de> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for Walk<'_, 'de> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
            self.scalar()
        }
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
            self.scalar()
        }
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
            self.scalar()
        }
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
            self.scalar()
        }
        fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<(), E> {
            self.scalar()
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
            self.scalar()
        }
        fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
            if self.top {
                return Err(A::Error::custom("expected a JSON object"));
            }
            if self.depth > strict_json::MAX_DEPTH {
                return Err(A::Error::custom("too deep"));
            }
            while seq.next_element_seed(self.child())?.is_some() {}
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
            if self.depth > strict_json::MAX_DEPTH {
                return Err(A::Error::custom("too deep"));
            }
            let start = self.keys.len();
            while let Some(key) = map.next_key_seed(Key)? {
                if self.keys[start..].contains(&key) {
                    return Err(A::Error::custom(format!("duplicate key `{key}`")));
                }
                // A child object pushes its keys after ours and truncates them when done.
                map.next_value_seed(self.child())?;
                self.keys.push(key);
            }
            self.keys.truncate(start);
            Ok(())
        }
    }

    let mut keys = Vec::with_capacity(32);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    Walk {
        depth: 1,
        top: true,
        keys: &mut keys,
    }
    .deserialize(&mut de)
    .map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .without_plots()
}

criterion_group! {
    name = benches;
    config = config();
    targets = verify_group, parts_group
}
criterion_main!(benches);
