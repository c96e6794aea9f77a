//! The shared scenario file `tests/scenarios/scenarios.json`: the same tokens, keys, times and
//! contexts, with the statuses every language must report (Rust, C, Kotlin, Python, Swift).
//! Its verification cases are also written as flat `key=value` lines to
//! `tests/scenarios/scenarios.txt`, which C reads without a JSON parser.
//!
//! The file is generated here, once, from fixed seeds and fixed times, and committed:
//!
//! ```text
//! LICENSING_REGENERATE_SCENARIOS=1 cargo test -p licensing-uniffi --test scenarios
//! ```
//!
//! Every case below states its expected status (and per-feature statuses) by hand: generation
//! fails if the core disagrees. The other verdict fields in the file (license id, model,
//! expiry, time and grace left, limits) are what the core computed. Without the variable the
//! tests regenerate in memory and fail if the committed file differs, then replay the file
//! through licensing-core and through this crate's Rust API.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use licensing_core::fingerprint::RawComponents;
use licensing_core::{
    Context, LicenseClaims, MachineFingerprint, PrivateKey, Status, TrustStore, Verdict, Verifier,
    issue_license, sign_raw,
};
use serde_json::{Value, json};

const FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/scenarios/scenarios.json"
);
/// The verification cases of the same file as flat `key=value` lines, for C
/// (`licensing-ffi/tests/scenarios_replay.c`).
const TEXT_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/scenarios/scenarios.txt"
);
const REGENERATE: &str = "LICENSING_REGENERATE_SCENARIOS";

const PRODUCT: &str = "com.example.cad";
/// The vendor's signing key (in the trust store).
const SEED: [u8; 32] = *b"licensing scenario vendor key 01";
/// A key the trust store does not hold.
const OTHER_SEED: [u8; 32] = *b"licensing scenario unknown key 2";

const DAY: i64 = 86_400;
/// 2026-01-01T00:00:00Z: issued, valid from.
const T0: i64 = 1_767_225_600;
/// 2026-05-29T…: the usual "now".
const NOW: i64 = 1_780_000_000;
/// 2027-01-01T00:00:00Z: subscription, floating and site expiry.
const EXP: i64 = 1_798_761_600;
/// 14 days.
const GRACE: i64 = 14 * DAY;
/// 2026-09-21T…: the `simulation` feature's own expiry.
const FEATURE_EXP: i64 = 1_790_000_000;
/// 2026-12-01T00:00:00Z: the perpetual license's maintenance window ends.
const MAINTENANCE_UNTIL: i64 = 1_796_083_200;

/// The machine the node-locked license is bound to (raw values; only hashes go in the token).
fn bound_machine() -> RawComponents {
    raw(&[
        ("machine_id", "4c4c4544-0042-3510-8051-b4c04f4e3132"),
        ("hostname", "cad-workstation-07"),
        ("cpu", "Intel(R) Xeon(R) W-2245 CPU @ 3.90GHz"),
        ("mac", "3c:ec:ef:12:34:56"),
        ("memory", "64 GiB"),
        ("disk", "S4EWNF0M123456"),
        ("os", "linux"),
    ])
}

fn raw(pairs: &[(&str, &str)]) -> RawComponents {
    RawComponents {
        values: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        virtualization: vec![],
    }
}

fn with_value(mut r: RawComponents, name: &str, value: &str) -> RawComponents {
    r.values.insert(name.into(), value.into());
    r
}

/// One case: which token, which product (default: the file's), what the app passes, and the
/// expected status and per-feature statuses, written by hand.
struct Case {
    name: &'static str,
    token: &'static str,
    product: Option<&'static str>,
    context: Context,
    status: Status,
    features: &'static [(&'static str, Status)],
}

fn case(name: &'static str, token: &'static str, context: Context, status: Status) -> Case {
    Case {
        name,
        token,
        product: None,
        context,
        status,
        features: &[],
    }
}

impl Case {
    fn features(mut self, features: &'static [(&'static str, Status)]) -> Self {
        for (name, _) in features {
            self.context.features.push((*name).to_owned());
        }
        self.features = features;
        self
    }
    fn product(mut self, product: &'static str) -> Self {
        self.product = Some(product);
        self
    }
}

fn claims(sub: &str, lic: Value, extra: Value) -> LicenseClaims {
    let mut claims = json!({
        "iss": "https://licensing.example.com",
        "sub": sub,
        "aud": PRODUCT,
        "iat": T0,
        "nbf": T0,
        "jti": format!("{sub}-jti"),
        "lic": lic,
    });
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    serde_json::from_value(claims).unwrap()
}

fn tokens(key: &PrivateKey, other: &PrivateKey) -> BTreeMap<&'static str, String> {
    let bound = MachineFingerprint::derive(&bound_machine(), PRODUCT);
    let subscription = claims(
        "lic_subscription",
        json!({
            "model": "subscription",
            "customer": { "id": "cus_001", "name": "Northwind Engineering" },
            "grace_period": GRACE,
            "features": {
                "export": { "limit": 10 },
                "simulation": { "exp": FEATURE_EXP },
            },
            "version": { "req": ">=2.0.0, <3.0.0" },
        }),
        json!({ "exp": EXP }),
    );
    let mut t = BTreeMap::new();
    let mut sign = |name: &'static str, c: &LicenseClaims| {
        t.insert(name, issue_license(c, key).unwrap());
    };
    sign(
        "perpetual",
        &claims(
            "lic_perpetual",
            json!({
                "model": "perpetual",
                "customer": { "name": "Initech" },
                "features": { "core": {} },
                "version": { "maintenance_until": MAINTENANCE_UNTIL },
            }),
            json!({}),
        ),
    );
    sign("subscription", &subscription);
    sign(
        "trial",
        &claims(
            "lic_trial",
            json!({ "model": "trial", "features": { "core": {} } }),
            json!({ "exp": T0 + 30 * DAY }),
        ),
    );
    sign(
        "floating",
        &claims(
            "lic_floating",
            json!({ "model": "floating", "seats": 5, "features": { "core": {} } }),
            json!({ "exp": EXP }),
        ),
    );
    sign(
        "node_locked",
        &claims(
            "lic_node_locked",
            json!({
                "model": "node_locked",
                "features": { "core": {} },
                "node_lock": {
                    "fingerprints": [{ "id": bound.id, "components": bound.components }],
                    "match": { "required": ["machine_id"], "min_matching": 5 },
                    "allow_virtual": false,
                },
            }),
            json!({}),
        ),
    );
    sign(
        "site",
        &claims(
            "lic_site",
            json!({
                "model": "site",
                "grace_period": GRACE,
                "features": { "core": {} },
                "site": {
                    "name": "Stark Industries, Berlin campus",
                    "restrictions": { "country": ["DE", "AT"] },
                },
            }),
            json!({ "exp": EXP }),
        ),
    );
    sign(
        "check_in",
        &claims(
            "lic_check_in",
            json!({
                "model": "perpetual",
                "features": { "core": {} },
                "check_in": { "until": NOW, "grace": DAY },
            }),
            json!({}),
        ),
    );

    // Tokens every verifier must refuse, each for one reason.
    let genuine = t["subscription"].clone();
    let (rest, signature) = genuine.rsplit_once('.').unwrap();
    // Change one character in the middle of the signature: still canonical base64url.
    let mut sig: Vec<char> = signature.chars().collect();
    sig[40] = if sig[40] == 'A' { 'B' } else { 'A' };
    t.insert(
        "tampered_signature",
        format!("{rest}.{}", sig.into_iter().collect::<String>()),
    );
    t.insert("unknown_key", issue_license(&subscription, other).unwrap());
    t.insert("malformed", "this is not a token".to_owned());
    let payload = serde_json::to_vec(&subscription).unwrap();
    t.insert(
        "wrong_token_type",
        sign_raw("machine+jwt", key, None, &payload),
    );
    // A genuine seat lease is not a license.
    let lease = licensing_core::LeaseClaims {
        iss: "https://licensing.example.com".into(),
        sub: "lse_1".into(),
        aud: PRODUCT.into(),
        iat: NOW,
        exp: NOW + 900,
        jti: "jti_lease_1".into(),
        license_id: "lic_floating".into(),
        client_id: "client-1".into(),
        user: "alice".into(),
        epoch: 1,
        borrowed: false,
    };
    t.insert(
        "lease_as_license",
        licensing_core::issue_lease(&lease, key).unwrap(),
    );
    let hs256 = json!({ "alg": "HS256", "kid": key.public_key().kid(), "typ": "license+jwt" });
    t.insert(
        "unsupported_algorithm",
        sign_raw("license+jwt", key, Some(&hs256.to_string()), &payload),
    );
    let no_exp = json!({
        "iss": "https://licensing.example.com",
        "sub": "lic_invalid",
        "aud": PRODUCT,
        "iat": T0,
        "lic": { "model": "subscription" },
    });
    t.insert(
        "invalid_claims",
        sign_raw("license+jwt", key, None, no_exp.to_string().as_bytes()),
    );
    t
}

fn cases() -> Vec<Case> {
    use Status::*;
    let at = Context::at;
    let machine = |r: RawComponents| MachineFingerprint::derive(&r, PRODUCT);
    let mut vm = bound_machine();
    vm.virtualization = vec!["hypervisor: DMI sys_vendor QEMU".into()];
    vec![
        // Perpetual: the maintenance window gates versions by release date.
        case(
            "perpetual_valid",
            "perpetual",
            at(NOW).with_release_date(MAINTENANCE_UNTIL - DAY),
            Valid,
        ),
        case(
            "perpetual_released_on_last_day",
            "perpetual",
            at(NOW).with_release_date(MAINTENANCE_UNTIL),
            Valid,
        ),
        case(
            "perpetual_released_after_maintenance",
            "perpetual",
            at(NOW).with_release_date(MAINTENANCE_UNTIL + 1),
            VersionNotEntitled,
        ),
        case(
            "perpetual_no_release_date",
            "perpetual",
            at(NOW),
            VersionNotEntitled,
        ),
        // Subscription: features, versions, grace, time edges.
        case(
            "subscription_valid_with_features",
            "subscription",
            at(NOW).with_version(v("2.4.0")),
            Valid,
        )
        .features(&[("export", Valid), ("simulation", Valid)]),
        case(
            "subscription_feature_not_entitled",
            "subscription",
            at(NOW).with_version(v("2.4.0")),
            FeatureNotEntitled,
        )
        .features(&[("export", Valid), ("render", FeatureNotEntitled)]),
        case(
            "subscription_feature_expired",
            "subscription",
            at(FEATURE_EXP).with_version(v("2.4.0")),
            FeatureExpired,
        )
        .features(&[("simulation", FeatureExpired), ("export", Valid)]),
        case(
            "subscription_version_too_new",
            "subscription",
            at(NOW).with_version(v("3.0.0")),
            VersionNotEntitled,
        ),
        case(
            "subscription_no_version",
            "subscription",
            at(NOW),
            VersionNotEntitled,
        ),
        case(
            "subscription_not_yet_valid",
            "subscription",
            at(T0 - 1).with_version(v("2.4.0")),
            NotYetValid,
        ),
        case(
            "subscription_nbf_within_leeway",
            "subscription",
            Context {
                not_before_leeway: 60,
                ..at(T0 - 60).with_version(v("2.4.0"))
            },
            Valid,
        ),
        case(
            "subscription_last_second",
            "subscription",
            at(EXP - 1).with_version(v("2.4.0")),
            Valid,
        ),
        case(
            "subscription_in_grace",
            "subscription",
            at(EXP + DAY).with_version(v("2.4.0")),
            ValidInGrace,
        )
        .features(&[("export", ValidInGrace)]),
        case(
            "subscription_grace_over",
            "subscription",
            at(EXP + GRACE).with_version(v("2.4.0")),
            Expired,
        )
        .features(&[("export", Expired)]),
        case(
            "subscription_other_product",
            "subscription",
            at(NOW).with_version(v("2.4.0")),
            ProductMismatch,
        )
        .product("com.example.viewer"),
        // Trial: no grace.
        case("trial_valid", "trial", at(T0 + DAY), Valid),
        case("trial_expired", "trial", at(T0 + 30 * DAY), TrialExpired),
        // Floating: evaluated offline like a subscription (leases come later).
        case("floating_valid", "floating", at(NOW), Valid).features(&[("core", Valid)]),
        // Node-locked: k-of-n matching with machine_id required; no VMs.
        case(
            "node_locked_same_machine",
            "node_locked",
            at(NOW).with_fingerprint(machine(bound_machine())),
            Valid,
        ),
        case(
            "node_locked_hostname_changed",
            "node_locked",
            at(NOW).with_fingerprint(machine(with_value(bound_machine(), "hostname", "renamed"))),
            Valid,
        ),
        case(
            "node_locked_machine_id_changed",
            "node_locked",
            at(NOW).with_fingerprint(machine(with_value(
                bound_machine(),
                "machine_id",
                "another-machine",
            ))),
            FingerprintMismatch,
        ),
        case(
            "node_locked_no_fingerprint",
            "node_locked",
            at(NOW),
            FingerprintMismatch,
        ),
        case(
            "node_locked_virtual_machine",
            "node_locked",
            at(NOW).with_fingerprint(machine(vm)),
            VirtualMachineNotAllowed,
        ),
        // Server check-in: confirmed until NOW, then one day of grace, then required.
        case("check_in_confirmed", "check_in", at(NOW), Valid),
        case(
            "check_in_overdue_in_grace",
            "check_in",
            at(NOW + 1),
            ValidInGrace,
        )
        .features(&[("core", ValidInGrace)]),
        case(
            "check_in_required",
            "check_in",
            at(NOW + DAY + 1),
            CheckInRequired,
        )
        .features(&[("core", CheckInRequired)]),
        // Site: attributes of the running context.
        case(
            "site_allowed_country",
            "site",
            at(NOW).with_attribute("country", "DE"),
            Valid,
        ),
        case(
            "site_other_country",
            "site",
            at(NOW).with_attribute("country", "US"),
            SiteRestricted,
        ),
        case("site_no_country", "site", at(NOW), SiteRestricted),
        // Tokens that are not genuine licenses for this product.
        case(
            "tampered_signature",
            "tampered_signature",
            at(NOW),
            SignatureInvalid,
        ),
        case("unknown_key", "unknown_key", at(NOW), UnknownKey),
        case("malformed", "malformed", at(NOW), Malformed),
        case(
            "wrong_token_type",
            "wrong_token_type",
            at(NOW),
            WrongTokenType,
        ),
        case(
            "lease_as_license",
            "lease_as_license",
            at(NOW),
            WrongTokenType,
        ),
        case(
            "unsupported_algorithm",
            "unsupported_algorithm",
            at(NOW),
            UnsupportedAlgorithm,
        ),
        case("invalid_claims", "invalid_claims", at(NOW), InvalidClaims),
    ]
}

fn v(s: &str) -> semver::Version {
    semver::Version::parse(s).unwrap()
}

/// Fingerprints every language must derive identically from raw components.
fn fingerprint_cases() -> Vec<(&'static str, &'static str, RawComponents)> {
    let mut vm = raw(&[("machine_id", "m-1"), ("hostname", "node-a")]);
    vm.virtualization = vec!["container: /.dockerenv".into()];
    vec![
        ("bound_machine", PRODUCT, bound_machine()),
        ("other_salt", "com.example.viewer", bound_machine()),
        (
            "override_value",
            PRODUCT,
            raw(&[("override", "cluster-node-7")]),
        ),
        ("virtual", PRODUCT, vm),
    ]
}

/// Trust-store documents every language must refuse with the invalid-key error.
fn bad_documents(key: &PrivateKey) -> Vec<(&'static str, String)> {
    let jwk = key.public_key().to_jwk();
    let mut with_d = jwk.clone();
    with_d["d"] = json!("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A");
    let mut wrong_kid = jwk.clone();
    wrong_kid["kid"] = json!("not-the-thumbprint");
    let mut identity = jwk.clone();
    identity["x"] = json!("AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    identity.as_object_mut().unwrap().remove("kid");
    vec![
        ("not_a_key", "hello".to_owned()),
        ("private_key_material", with_d.to_string()),
        ("kid_mismatch", wrong_kid.to_string()),
        ("weak_key", identity.to_string()),
        ("empty_key_set", json!({ "keys": [] }).to_string()),
        ("duplicate_key", json!({ "keys": [jwk, jwk] }).to_string()),
    ]
}

/// The startup check in a fresh store, step by step: (action, token, now, expected status).
/// The options ask for version 2.4.0 and feature `export`, and fingerprint the bound machine's
/// components (so the run does not depend on the host).
fn startup_steps() -> Vec<(&'static str, Option<&'static str>, i64, Status)> {
    use Status::*;
    vec![
        ("check", None, NOW, NoLicense),
        ("install", Some("tampered_signature"), NOW, SignatureInvalid),
        ("check", None, NOW, NoLicense),
        ("install", Some("subscription"), NOW, Valid),
        ("check", None, NOW + DAY, Valid),
        // Within the one-hour tolerance of the trusted time seen (NOW + DAY).
        ("check", None, NOW + DAY - 3_600, Valid),
        // A day behind: the clock was set back.
        ("check", None, NOW, ClockTampered),
        ("check", None, NOW + 2 * DAY, Valid),
    ]
}

/// Runs the startup steps through the core in a temporary store; returns each step's status.
fn run_startup_core(file: &Value) -> Vec<Status> {
    let s = &file["startup"];
    let dir = tempfile::tempdir().unwrap();
    let store = licensing_core::store::LicenseStore::at(dir.path()).unwrap();
    let trust = TrustStore::from_document(file["trust_store"]["jwks"].as_str().unwrap()).unwrap();
    let options = &s["options"];
    let context = Context {
        app_version: options["app_version"].as_str().map(v),
        features: strings(&options["features"]),
        ..Context::default()
    };
    let components = RawComponents {
        values: str_map(&options["components"]["values"]),
        virtualization: strings(&options["components"]["virtualization"]),
    };
    let licensing = licensing_core::Licensing::new(trust, s["product"].as_str().unwrap(), store)
        .with_context(context)
        .with_component_source(licensing_core::fingerprint::FixedComponents(components))
        .with_fingerprint_override(None);
    s["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|step| {
            let now = step["now"].as_i64().unwrap();
            let verdict = match step["action"].as_str().unwrap() {
                "install" => {
                    let token = &file["tokens"][step["token"].as_str().unwrap()];
                    licensing.install(token.as_str().unwrap(), now).unwrap()
                }
                _ => licensing.check_at_startup(now).unwrap(),
            };
            verdict.status
        })
        .collect()
}

fn fingerprint_json(f: &MachineFingerprint) -> Value {
    json!({
        "id": f.id,
        "components": f.components,
        "is_virtual": f.is_virtual,
        "virtualization": f.virtualization,
    })
}

fn context_json(c: &Context) -> Value {
    json!({
        "now": c.now,
        "not_before_leeway": c.not_before_leeway,
        "app_version": c.app_version.as_ref().map(|v| v.to_string()),
        "release_date": c.release_date,
        "features": c.features,
        "attributes": c.attributes,
        "fingerprint": c.fingerprint.as_ref().map(fingerprint_json),
    })
}

/// The verdict as the file records it: every field but the human-readable reasons.
fn verdict_json(v: &Verdict) -> Value {
    json!({
        "status": v.status.as_str(),
        "status_code": v.status as u32,
        "usable": v.is_usable(),
        "license_id": v.license_id,
        "model": v.model.map(|m| m.as_str()),
        "customer": v.customer,
        "expires_at": v.expires_at,
        "grace_ends_at": v.grace_ends_at,
        "time_left": v.time_left,
        "grace_left": v.grace_left,
        "features": v.features.iter().map(|f| json!({
            "name": f.name,
            "status": f.status.as_str(),
            "status_code": f.status as u32,
            "limit": f.limit,
            "expires_at": f.expires_at,
            "time_left": f.time_left,
        })).collect::<Vec<_>>(),
    })
}

/// The whole file, generated from the fixed seeds and times; checks every hand-written
/// expectation against the core on the way.
fn generate() -> Value {
    let key = PrivateKey::from_seed(&SEED).unwrap();
    let other = PrivateKey::from_seed(&OTHER_SEED).unwrap();
    let jwks = json!({ "keys": [key.public_key().to_jwk()] }).to_string();
    let store = TrustStore::from_document(&jwks).unwrap();
    let tokens = tokens(&key, &other);

    let mut cases_json = Vec::new();
    for c in cases() {
        let product = c.product.unwrap_or(PRODUCT);
        let verdict = Verifier::new(store.clone(), product).check(&tokens[c.token], &c.context);
        assert_eq!(verdict.status, c.status, "{}: {}", c.name, verdict.reason);
        let features: Vec<(&str, Status)> = verdict
            .features
            .iter()
            .map(|f| (f.name.as_str(), f.status))
            .collect();
        assert_eq!(features, c.features.to_vec(), "{}", c.name);
        cases_json.push(json!({
            "name": c.name,
            "token": c.token,
            "product": product,
            "context": context_json(&c.context),
            "expect": verdict_json(&verdict),
        }));
    }

    let fingerprints: Vec<Value> = fingerprint_cases()
        .into_iter()
        .map(|(name, salt, raw)| {
            json!({
                "name": name,
                "salt": salt,
                "values": raw.values,
                "virtualization": raw.virtualization,
                "expect": fingerprint_json(&MachineFingerprint::derive(&raw, salt)),
            })
        })
        .collect();

    let bad: Vec<Value> = bad_documents(&key)
        .into_iter()
        .map(|(name, document)| {
            assert!(TrustStore::from_document(&document).is_err(), "{name}");
            json!({ "name": name, "document": document, "error": "invalid_key" })
        })
        .collect();

    let statuses: Vec<Value> = Status::ALL
        .iter()
        .map(|s| json!({ "name": s.as_str(), "code": *s as u32, "usable": s.is_usable() }))
        .collect();

    let steps: Vec<Value> = startup_steps()
        .into_iter()
        .map(|(action, token, now, status)| {
            json!({ "action": action, "token": token, "now": now, "expect": status.as_str() })
        })
        .collect();
    let components = bound_machine();
    let startup = json!({
        "product": PRODUCT,
        "options": {
            "app_version": "2.4.0",
            "features": ["export"],
            "components": { "values": components.values, "virtualization": components.virtualization },
        },
        "steps": steps,
    });

    let file = json!({
        "format": 1,
        "about": "Shared scenarios replayed by the Rust, C, Kotlin, Python and Swift tests. Generated by bindings/uniffi/tests/scenarios.rs; do not edit by hand (see tests/scenarios/README.md).",
        "product": PRODUCT,
        "trust_store": {
            "jwks": jwks,
            "spki_pem": key.public_key().to_spki_pem().unwrap(),
            "kid": key.public_key().kid(),
        },
        "tokens": tokens,
        "cases": cases_json,
        "fingerprints": fingerprints,
        "bad_trust_documents": bad,
        "statuses": statuses,
        "startup": startup,
    });
    let expected: Vec<Status> = startup_steps().into_iter().map(|s| s.3).collect();
    assert_eq!(run_startup_core(&file), expected);
    file
}

fn render(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap() + "\n"
}

/// One line of the text file: `key=value`, the value on one line.
fn line(out: &mut String, key: &str, value: impl std::fmt::Display) {
    let value = value.to_string();
    assert!(
        !value.contains(['\n', '\r']),
        "{key}: a value must fit on one line"
    );
    out.push_str(key);
    out.push('=');
    out.push_str(&value);
    out.push('\n');
}

/// An optional number or string: empty when absent.
fn opt(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The verification cases of `file` as the line-based format of tests/scenarios/README.md.
fn render_text(file: &Value) -> String {
    let mut out = String::from(
        "# Shared scenarios: the verification cases of scenarios.json as key=value lines, for C.\n\
         # Generated by bindings/uniffi/tests/scenarios.rs; do not edit by hand (see README.md).\n",
    );
    line(&mut out, "format", 1);
    line(&mut out, "product", file["product"].as_str().unwrap());
    line(
        &mut out,
        "jwks",
        file["trust_store"]["jwks"].as_str().unwrap(),
    );
    line(&mut out, "cases", file["cases"].as_array().unwrap().len());
    for c in file["cases"].as_array().unwrap() {
        let ctx = &c["context"];
        let expect = &c["expect"];
        out.push('\n');
        line(&mut out, "case", c["name"].as_str().unwrap());
        line(&mut out, "product", c["product"].as_str().unwrap());
        let token = file["tokens"][c["token"].as_str().unwrap()]
            .as_str()
            .unwrap();
        line(&mut out, "token", token);
        line(&mut out, "now", &ctx["now"]);
        line(&mut out, "not_before_leeway", &ctx["not_before_leeway"]);
        line(&mut out, "version", opt(&ctx["app_version"]));
        line(&mut out, "release_date", opt(&ctx["release_date"]));
        let features = strings(&ctx["features"]);
        assert!(
            features
                .iter()
                .all(|f| !f.is_empty() && !f.contains([',', ' ']))
        );
        line(&mut out, "features", features.join(","));
        for (name, value) in str_map(&ctx["attributes"]) {
            assert!(!name.is_empty() && !name.contains('='), "{name}");
            line(&mut out, "attribute", format!("{name}={value}"));
        }
        let fp = &ctx["fingerprint"];
        line(&mut out, "fingerprint_id", opt(&fp["id"]));
        if !fp.is_null() {
            for (name, hash) in str_map(&fp["components"]) {
                line(&mut out, "fingerprint_component", format!("{name}={hash}"));
            }
            line(
                &mut out,
                "fingerprint_is_virtual",
                u8::from(fp["is_virtual"] == true),
            );
            for v in strings(&fp["virtualization"]) {
                line(&mut out, "fingerprint_virtualization", v);
            }
            // The same fingerprint in the JSON form `lic_fingerprint_from_json` reads.
            line(&mut out, "fingerprint_json", fp.to_string());
        }
        line(
            &mut out,
            "expect_status",
            expect["status"].as_str().unwrap(),
        );
        line(&mut out, "expect_status_code", &expect["status_code"]);
        line(
            &mut out,
            "expect_usable",
            u8::from(expect["usable"] == true),
        );
        for f in expect["features"].as_array().unwrap() {
            line(
                &mut out,
                "expect_feature",
                format!(
                    "{} {} {}",
                    f["name"].as_str().unwrap(),
                    f["status_code"],
                    f["limit"]
                        .as_u64()
                        .map_or("-".to_owned(), |l| l.to_string())
                ),
            );
        }
    }
    out
}

fn load() -> Value {
    let text = std::fs::read_to_string(FILE)
        .unwrap_or_else(|e| panic!("{FILE}: {e}; generate it with {REGENERATE}=1"));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn scenario_files_are_up_to_date() {
    let file = generate();
    let fresh = [(FILE, render(&file)), (TEXT_FILE, render_text(&file))];
    if std::env::var_os(REGENERATE).is_some() {
        std::fs::create_dir_all(std::path::Path::new(FILE).parent().unwrap()).unwrap();
        for (path, text) in &fresh {
            std::fs::write(path, text).unwrap();
        }
        return;
    }
    for (path, text) in &fresh {
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == *text,
            "{path} is stale or missing: run `{REGENERATE}=1 cargo test -p licensing-uniffi --test scenarios` and commit it"
        );
    }
}

// ---- replay ---------------------------------------------------------------------------------

fn str_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

fn core_fingerprint(v: &Value) -> MachineFingerprint {
    MachineFingerprint {
        id: v["id"].as_str().unwrap().to_owned(),
        components: str_map(&v["components"]),
        is_virtual: v["is_virtual"].as_bool().unwrap(),
        virtualization: strings(&v["virtualization"]),
    }
}

fn core_context(c: &Value) -> Context {
    Context {
        now: c["now"].as_i64().unwrap(),
        not_before_leeway: c["not_before_leeway"].as_i64().unwrap(),
        app_version: c["app_version"].as_str().map(v),
        release_date: c["release_date"].as_i64(),
        features: strings(&c["features"]),
        attributes: str_map(&c["attributes"]),
        fingerprint: (!c["fingerprint"].is_null()).then(|| core_fingerprint(&c["fingerprint"])),
    }
}

#[test]
fn replay_through_licensing_core() {
    let file = load();
    let store = TrustStore::from_document(file["trust_store"]["jwks"].as_str().unwrap()).unwrap();
    let cases = file["cases"].as_array().unwrap();
    assert!(cases.len() >= 30);
    for c in cases {
        let verifier = Verifier::new(store.clone(), c["product"].as_str().unwrap());
        let token = file["tokens"][c["token"].as_str().unwrap()]
            .as_str()
            .unwrap();
        let verdict = verifier.check(token, &core_context(&c["context"]));
        assert_eq!(verdict_json(&verdict), c["expect"], "{}", c["name"]);
    }
    for f in file["fingerprints"].as_array().unwrap() {
        let raw = RawComponents {
            values: str_map(&f["values"]),
            virtualization: strings(&f["virtualization"]),
        };
        let fp = MachineFingerprint::derive(&raw, f["salt"].as_str().unwrap());
        assert_eq!(fingerprint_json(&fp), f["expect"], "{}", f["name"]);
    }
    for d in file["bad_trust_documents"].as_array().unwrap() {
        assert!(
            TrustStore::from_document(d["document"].as_str().unwrap()).is_err(),
            "{}",
            d["name"]
        );
    }
    for s in file["statuses"].as_array().unwrap() {
        let status = Status::ALL[s["code"].as_u64().unwrap() as usize];
        assert_eq!(status.as_str(), s["name"]);
    }
    let expected: Vec<&str> = file["startup"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["expect"].as_str().unwrap())
        .collect();
    let got: Vec<&str> = run_startup_core(&file).iter().map(|s| s.as_str()).collect();
    assert_eq!(got, expected);
}

/// The same replay through this crate's Rust API: the conversions the hosts go through.
#[test]
fn replay_through_binding_api() {
    use licensing_uniffi as b;
    let file = load();
    let store = Arc::new(
        b::TrustStore::from_document(file["trust_store"]["jwks"].as_str().unwrap().into()).unwrap(),
    );
    assert_eq!(
        store.kids(),
        vec![file["trust_store"]["kid"].as_str().unwrap()]
    );
    for c in file["cases"].as_array().unwrap() {
        let verifier = b::Verifier::new(store.clone(), c["product"].as_str().unwrap().into());
        let token = file["tokens"][c["token"].as_str().unwrap()]
            .as_str()
            .unwrap();
        let ctx = &c["context"];
        let context = b::Context {
            now: ctx["now"].as_i64().unwrap(),
            app_version: ctx["app_version"].as_str().map(Into::into),
            release_date: ctx["release_date"].as_i64(),
            features: strings(&ctx["features"]),
            attributes: str_map(&ctx["attributes"])
                .into_iter()
                .collect::<HashMap<_, _>>(),
            fingerprint: (!ctx["fingerprint"].is_null())
                .then(|| core_fingerprint(&ctx["fingerprint"]).into()),
            not_before_leeway: ctx["not_before_leeway"].as_i64().unwrap(),
        };
        let verdict = verifier.check(token.into(), context).unwrap();
        assert_eq!(verdict_json(&verdict), c["expect"], "{}", c["name"]);
        // `verify` agrees: a genuine license, or the same status as an error.
        match verifier.verify(token.into()) {
            Ok(license) => assert_eq!(Some(license.id()), verdict.license_id),
            Err(b::LicensingError::Rejected { status, .. }) => {
                assert_eq!(status, verdict.status, "{}", c["name"])
            }
            Err(e) => panic!("{}: {e}", c["name"]),
        }
    }
    for f in file["fingerprints"].as_array().unwrap() {
        let raw = b::RawComponents {
            values: str_map(&f["values"]).into_iter().collect(),
            virtualization: strings(&f["virtualization"]),
        };
        let fp = b::fingerprint_from_components(raw, f["salt"].as_str().unwrap().into());
        assert_eq!(fp, core_fingerprint(&f["expect"]).into(), "{}", f["name"]);
    }
    for d in file["bad_trust_documents"].as_array().unwrap() {
        let err = b::TrustStore::from_document(d["document"].as_str().unwrap().into()).unwrap_err();
        assert!(
            matches!(err, b::LicensingError::InvalidKey { .. }),
            "{}: {err}",
            d["name"]
        );
    }
    for s in file["statuses"].as_array().unwrap() {
        let status = b::status_from_code(s["code"].as_u64().unwrap() as u32).unwrap();
        assert_eq!(b::status_name(status), s["name"].as_str().unwrap());
        assert_eq!(b::status_is_usable(status), s["usable"].as_bool().unwrap());
    }
    assert_eq!(b::status_from_code(Status::ALL.len() as u32), None);

    // The startup steps through the binding objects.
    let s = &file["startup"];
    let dir = tempfile::tempdir().unwrap();
    let options = &s["options"];
    let licensing = b::Licensing::new(
        store,
        s["product"].as_str().unwrap().into(),
        Arc::new(b::LicenseStore::at(dir.path().to_string_lossy().into()).unwrap()),
        b::LicensingOptions {
            app_version: options["app_version"].as_str().map(Into::into),
            features: strings(&options["features"]),
            components: Some(b::RawComponents {
                values: str_map(&options["components"]["values"])
                    .into_iter()
                    .collect(),
                virtualization: strings(&options["components"]["virtualization"]),
            }),
            ..Default::default()
        },
    )
    .unwrap();
    for step in s["steps"].as_array().unwrap() {
        let now = step["now"].as_i64().unwrap();
        let verdict = match step["action"].as_str().unwrap() {
            "install" => {
                let token = file["tokens"][step["token"].as_str().unwrap()]
                    .as_str()
                    .unwrap();
                licensing.install(token.into(), now).unwrap()
            }
            _ => licensing.check_at_startup(now).unwrap(),
        };
        assert_eq!(verdict.status.as_str(), step["expect"], "{step}");
    }
}
