//! Every license model, grace boundary, feature and version rule at the exact edges of time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use licensing_core::{
    Context, LicenseClaims, MachineFingerprint, PrivateKey, Status, TrustStore, Verdict, Verifier,
    issue_license,
};
use serde_json::{Value, json};

const T0: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z
const DAY: i64 = 86_400;
const PRODUCT: &str = "com.example.cad";

struct Fixture {
    key: PrivateKey,
    verifier: Verifier,
}

impl Fixture {
    fn new() -> Self {
        let key = PrivateKey::from_seed(&[7u8; 32]).unwrap();
        let mut store = TrustStore::new();
        store.add(key.public_key().clone()).unwrap();
        Fixture {
            verifier: Verifier::new(store, PRODUCT),
            key,
        }
    }

    fn token(&self, lic: Value, extra: Value) -> String {
        let mut claims = json!({
            "iss": "https://licensing.example.com",
            "sub": "lic_1",
            "aud": PRODUCT,
            "iat": T0,
            "nbf": T0,
            "lic": lic,
        });
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        let claims: LicenseClaims = serde_json::from_value(claims).unwrap();
        issue_license(&claims, &self.key).unwrap()
    }

    fn check(&self, token: &str, ctx: &Context) -> Verdict {
        self.verifier.check(token, ctx)
    }

    fn status_at(&self, token: &str, now: i64) -> Status {
        self.check(token, &Context::at(now)).status
    }
}

#[test]
fn subscription_valid_then_grace_then_expired_at_exact_edges() {
    let f = Fixture::new();
    let exp = T0 + 30 * DAY;
    let grace = 7 * DAY;
    let t = f.token(
        json!({"model": "subscription", "grace_period": grace}),
        json!({"exp": exp}),
    );
    assert_eq!(f.status_at(&t, T0 - 1), Status::NotYetValid);
    assert_eq!(f.status_at(&t, T0), Status::Valid);
    let v = f.check(&t, &Context::at(exp - 1));
    assert_eq!(v.status, Status::Valid);
    assert_eq!(v.time_left, Some(grace + 1));
    assert_eq!(v.grace_left, None);
    let v = f.check(&t, &Context::at(exp));
    assert_eq!(v.status, Status::ValidInGrace);
    assert_eq!(v.grace_left, Some(grace));
    assert_eq!(v.expires_at, Some(exp));
    assert_eq!(v.grace_ends_at, Some(exp + grace));
    assert!(v.is_usable());
    let v = f.check(&t, &Context::at(exp + grace - 1));
    assert_eq!(v.status, Status::ValidInGrace);
    assert_eq!(v.grace_left, Some(1));
    let v = f.check(&t, &Context::at(exp + grace));
    assert_eq!(v.status, Status::Expired);
    assert!(!v.is_usable());
    assert_eq!(v.time_left, Some(0));
}

#[test]
fn subscription_without_grace_expires_at_exp() {
    let f = Fixture::new();
    let exp = T0 + DAY;
    let t = f.token(json!({"model": "subscription"}), json!({"exp": exp}));
    assert_eq!(f.status_at(&t, exp - 1), Status::Valid);
    assert_eq!(f.status_at(&t, exp), Status::Expired);
}

#[test]
fn trial_has_no_grace_and_its_own_status() {
    let f = Fixture::new();
    let exp = T0 + 14 * DAY;
    let t = f.token(json!({"model": "trial"}), json!({"exp": exp}));
    assert_eq!(f.status_at(&t, exp - 1), Status::Valid);
    let v = f.check(&t, &Context::at(exp));
    assert_eq!(v.status, Status::TrialExpired);
    assert_eq!(v.grace_ends_at, None);
    assert_eq!(f.status_at(&t, exp + 365 * DAY), Status::TrialExpired);
}

#[test]
fn perpetual_never_expires_and_gates_versions_by_maintenance_window() {
    let f = Fixture::new();
    let until = T0 + 365 * DAY;
    let t = f.token(
        json!({"model": "perpetual", "version": {"maintenance_until": until}}),
        json!({}),
    );
    let far = T0 + 50 * 365 * DAY;
    // The app must pass what the license gates on: no release date, no entitlement.
    let v = f.check(&t, &Context::at(far));
    assert_eq!(v.status, Status::VersionNotEntitled);
    assert_eq!(v.time_left, None);
    assert_eq!(v.expires_at, None);
    // Released exactly at the end of maintenance: entitled (inclusive); one second later: not.
    let at_edge = Context::at(far).with_release_date(until);
    assert_eq!(f.check(&t, &at_edge).status, Status::Valid);
    let after = Context::at(far).with_release_date(until + 1);
    assert_eq!(f.check(&t, &after).status, Status::VersionNotEntitled);
    // A version but no release date cannot be judged against a maintenance window.
    let no_date = Context::at(far).with_version(semver::Version::new(9, 0, 0));
    assert_eq!(f.check(&t, &no_date).status, Status::VersionNotEntitled);
}

#[test]
fn semver_requirement_edges() {
    let f = Fixture::new();
    let t = f.token(
        json!({"model": "perpetual", "version": {"req": ">=2.0.0, <3.0.0"}}),
        json!({}),
    );
    let at = |v: &str| {
        f.check(
            &t,
            &Context::at(T0).with_version(semver::Version::parse(v).unwrap()),
        )
        .status
    };
    assert_eq!(at("1.9.9"), Status::VersionNotEntitled);
    assert_eq!(at("2.0.0"), Status::Valid);
    assert_eq!(at("2.99.99"), Status::Valid);
    assert_eq!(at("3.0.0"), Status::VersionNotEntitled);
    assert_eq!(at("3.0.0-beta.1"), Status::VersionNotEntitled);
    // Version rule without version input: the app must pass what the license gates on.
    let v = f.check(&t, &Context::at(T0).with_release_date(T0));
    assert_eq!(v.status, Status::VersionNotEntitled);
}

#[test]
fn features_with_own_expiry_and_limits() {
    let f = Fixture::new();
    let exp = T0 + 100 * DAY;
    let feature_exp = T0 + 10 * DAY;
    let t = f.token(
        json!({"model": "subscription", "grace_period": DAY, "features": {
            "core": {},
            "export": {"limit": 25},
            "cloud": {"exp": feature_exp}
        }}),
        json!({"exp": exp}),
    );
    let ctx = |now| {
        Context::at(now)
            .with_feature("core")
            .with_feature("export")
            .with_feature("cloud")
    };
    let v = f.check(&t, &ctx(feature_exp - 1));
    assert_eq!(v.status, Status::Valid);
    assert_eq!(v.features.len(), 3);
    assert_eq!(v.features[1].limit, Some(25));
    assert_eq!(v.features[2].expires_at, Some(feature_exp));
    assert_eq!(v.features[2].time_left, Some(1));
    assert_eq!(v.features[0].expires_at, Some(exp + DAY));

    let v = f.check(&t, &ctx(feature_exp));
    assert_eq!(v.status, Status::FeatureExpired);
    assert_eq!(v.features[2].status, Status::FeatureExpired);
    assert_eq!(v.features[0].status, Status::Valid);

    let v = f.check(&t, &Context::at(T0).with_feature("render"));
    assert_eq!(v.status, Status::FeatureNotEntitled);
    assert!(v.reason.contains("render"), "{}", v.reason);

    // In grace, entitled features are usable and degraded like the license.
    let v = f.check(&t, &Context::at(exp).with_feature("core"));
    assert_eq!(v.status, Status::ValidInGrace);
    assert_eq!(v.features[0].status, Status::ValidInGrace);

    // Once the license is unusable, so is every feature, with the license's status.
    let v = f.check(&t, &Context::at(exp + DAY).with_feature("core"));
    assert_eq!(v.status, Status::Expired);
    assert_eq!(v.features[0].status, Status::Expired);

    // The standalone feature check agrees with evaluate().
    let license = f.verifier.verify(&t).unwrap();
    assert_eq!(
        license.check_feature("cloud", feature_exp, 0).status,
        Status::FeatureExpired
    );
    assert_eq!(
        license.check_feature("nope", T0, 0).status,
        Status::FeatureNotEntitled
    );
    assert_eq!(
        license.check_feature("core", exp + DAY, 0).status,
        Status::Expired
    );
}

#[test]
fn site_restrictions() {
    let f = Fixture::new();
    let t = f.token(
        json!({"model": "site", "site": {"name": "HQ", "restrictions": {
            "country": ["DE", "AT"], "department": ["R&D"]
        }}}),
        json!({}),
    );
    let ok = Context::at(T0)
        .with_attribute("country", "AT")
        .with_attribute("department", "R&D");
    assert_eq!(f.check(&t, &ok).status, Status::Valid);
    let wrong = Context::at(T0)
        .with_attribute("country", "FR")
        .with_attribute("department", "R&D");
    assert_eq!(f.check(&t, &wrong).status, Status::SiteRestricted);
    let case = Context::at(T0)
        .with_attribute("country", "de")
        .with_attribute("department", "R&D");
    assert_eq!(f.check(&t, &case).status, Status::SiteRestricted);
    let missing = Context::at(T0).with_attribute("country", "DE");
    let v = f.check(&t, &missing);
    assert_eq!(v.status, Status::SiteRestricted);
    assert!(v.reason.contains("department"), "{}", v.reason);
}

#[test]
fn floating_license_token_evaluates_like_its_expiry() {
    let f = Fixture::new();
    let exp = T0 + DAY;
    let t = f.token(
        json!({"model": "floating", "seats": 5, "grace_period": 3600}),
        json!({"exp": exp}),
    );
    let license = f.verifier.verify(&t).unwrap();
    assert_eq!(license.claims().lic.seats, Some(5));
    assert_eq!(f.status_at(&t, exp - 1), Status::Valid);
    assert_eq!(f.status_at(&t, exp), Status::ValidInGrace);
    assert_eq!(f.status_at(&t, exp + 3600), Status::Expired);
}

fn fingerprint(components: &[(&str, &str)], id: &str) -> MachineFingerprint {
    MachineFingerprint {
        id: id.into(),
        components: components
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        is_virtual: false,
        virtualization: vec![],
    }
}

#[test]
fn node_locked_exact_and_k_of_n() {
    let f = Fixture::new();
    let bound = json!({"id": "fp1", "components": {
        "machine_id": "m", "hostname": "h", "cpu": "c", "mac": "n", "disk": "d"
    }});
    let exact = f.token(
        json!({"model": "node_locked", "node_lock": {"fingerprints": [bound.clone()]}}),
        json!({}),
    );
    let same = fingerprint(
        &[
            ("machine_id", "m"),
            ("hostname", "h"),
            ("cpu", "c"),
            ("mac", "n"),
            ("disk", "d"),
        ],
        "fp1",
    );
    assert_eq!(
        f.check(&exact, &Context::at(T0)).status,
        Status::FingerprintMismatch,
        "no fingerprint supplied: never valid"
    );
    let ok = Context::at(T0).with_fingerprint(same.clone());
    assert_eq!(f.check(&exact, &ok).status, Status::Valid);
    let other = Context::at(T0).with_fingerprint(fingerprint(&[], "fp2"));
    assert_eq!(f.check(&exact, &other).status, Status::FingerprintMismatch);

    let tolerant = f.token(
        json!({"model": "node_locked", "node_lock": {
            "fingerprints": [bound],
            "match": {"required": ["machine_id"], "min_matching": 4},
            "allow_virtual": false
        }}),
        json!({}),
    );
    // One component changed: still this machine, and the verdict says which.
    let one_changed = fingerprint(
        &[
            ("machine_id", "m"),
            ("hostname", "NEW"),
            ("cpu", "c"),
            ("mac", "n"),
            ("disk", "d"),
        ],
        "fpX",
    );
    let v = f.check(&tolerant, &Context::at(T0).with_fingerprint(one_changed));
    assert_eq!(v.status, Status::Valid);
    assert!(v.reason.contains("hostname"), "{}", v.reason);
    // Two changed: below min_matching, mismatch naming both.
    let two_changed = fingerprint(
        &[
            ("machine_id", "m"),
            ("hostname", "NEW"),
            ("cpu", "NEW"),
            ("mac", "n"),
            ("disk", "d"),
        ],
        "fpX",
    );
    let v = f.check(&tolerant, &Context::at(T0).with_fingerprint(two_changed));
    assert_eq!(v.status, Status::FingerprintMismatch);
    assert!(
        v.reason.contains("cpu") && v.reason.contains("hostname"),
        "{}",
        v.reason
    );
    // The required component changed: mismatch even though 4 others match.
    let id_changed = fingerprint(
        &[
            ("machine_id", "X"),
            ("hostname", "h"),
            ("cpu", "c"),
            ("mac", "n"),
            ("disk", "d"),
        ],
        "fpX",
    );
    let v = f.check(&tolerant, &Context::at(T0).with_fingerprint(id_changed));
    assert_eq!(v.status, Status::FingerprintMismatch);
    assert!(v.reason.contains("machine_id"), "{}", v.reason);
    // Virtual machines refused when the license says so.
    let mut vm = same;
    vm.is_virtual = true;
    let v = f.check(&tolerant, &Context::at(T0).with_fingerprint(vm.clone()));
    assert_eq!(v.status, Status::VirtualMachineNotAllowed);
    assert_eq!(
        f.check(&exact, &Context::at(T0).with_fingerprint(vm))
            .status,
        Status::Valid
    );
}

#[test]
fn not_before_leeway_is_applied_only_to_nbf() {
    let f = Fixture::new();
    let exp = T0 + DAY;
    let t = f.token(json!({"model": "subscription"}), json!({"exp": exp}));
    let mut ctx = Context::at(T0 - 60);
    ctx.not_before_leeway = 60;
    assert_eq!(f.check(&t, &ctx).status, Status::Valid);
    ctx.now = T0 - 61;
    assert_eq!(f.check(&t, &ctx).status, Status::NotYetValid);
    ctx.now = exp;
    assert_eq!(f.check(&t, &ctx).status, Status::Expired);
}

#[test]
fn rule_order_time_first_then_machine_site_version_features() {
    let f = Fixture::new();
    let exp = T0 + DAY;
    let t = f.token(
        json!({"model": "site", "site": {"restrictions": {"country": ["DE"]}},
               "version": {"req": "^1"}}),
        json!({"exp": exp}),
    );
    let ctx = Context::at(exp)
        .with_attribute("country", "FR")
        .with_version(semver::Version::new(2, 0, 0))
        .with_feature("x");
    assert_eq!(f.check(&t, &ctx).status, Status::Expired);
    let ctx = Context { now: T0, ..ctx };
    assert_eq!(f.check(&t, &ctx).status, Status::SiteRestricted);
    let ctx = ctx.with_attribute("country", "DE");
    assert_eq!(f.check(&t, &ctx).status, Status::VersionNotEntitled);
    let ctx = ctx.with_version(semver::Version::new(1, 2, 3));
    assert_eq!(f.check(&t, &ctx).status, Status::FeatureNotEntitled);
}

#[test]
fn audience_arrays_and_product_mismatch() {
    let f = Fixture::new();
    let t = f.token(
        json!({"model": "perpetual"}),
        json!({"aud": ["com.example.other", PRODUCT]}),
    );
    assert_eq!(f.status_at(&t, T0), Status::Valid);
    let other = Verifier::new(f.verifier.trust_store().clone(), "com.example.viewer");
    assert_eq!(
        other.check(&t, &Context::at(T0)).status,
        Status::ProductMismatch
    );
}

#[test]
fn key_rotation_selects_by_kid() {
    let old = PrivateKey::from_seed(&[1u8; 32]).unwrap();
    let new = PrivateKey::from_seed(&[2u8; 32]).unwrap();
    let mut store = TrustStore::new();
    store.add(old.public_key().clone()).unwrap();
    store.add(new.public_key().clone()).unwrap();
    let verifier = Verifier::new(store.clone(), PRODUCT);
    let claims: LicenseClaims = serde_json::from_value(json!({
        "iss": "i", "sub": "s", "aud": PRODUCT, "iat": T0, "lic": {"model": "perpetual"}
    }))
    .unwrap();
    for key in [&old, &new] {
        let token = issue_license(&claims, key).unwrap();
        let license = verifier.verify(&token).unwrap();
        assert_eq!(license.kid(), key.public_key().kid());
    }
    // The same store round-trips through a JWK Set.
    let jwks = serde_json::to_string(&store.to_jwks()).unwrap();
    assert_eq!(TrustStore::from_document(&jwks).unwrap().len(), 2);
    // Adding the same key twice is refused.
    assert!(store.add(old.public_key().clone()).is_err());
}

// ---- server check-in (`lic.check_in`) -------------------------------------------------------

#[test]
fn check_in_valid_until_then_grace_then_required_at_exact_edges() {
    let f = Fixture::new();
    let until = T0 + 7 * DAY;
    let grace = 3 * DAY;
    let t = f.token(
        json!({"model": "perpetual", "check_in": {"until": until, "grace": grace}}),
        json!({}),
    );
    let v = f.check(&t, &Context::at(until));
    assert_eq!(v.status, Status::Valid, "{}", v.reason);
    assert_eq!(v.grace_left, None);
    assert_eq!(v.time_left, Some(grace), "counted to the check-in deadline");
    let v = f.check(&t, &Context::at(until + 1));
    assert_eq!(v.status, Status::ValidInGrace);
    assert!(v.reason.contains("server check-in"), "{}", v.reason);
    assert_eq!(v.grace_left, Some(grace - 1));
    let v = f.check(&t, &Context::at(until + grace));
    assert_eq!(v.status, Status::ValidInGrace);
    assert_eq!(v.grace_left, Some(0));
    assert!(v.is_usable());
    let v = f.check(&t, &Context::at(until + grace + 1));
    assert_eq!(v.status, Status::CheckInRequired);
    assert!(!v.is_usable());
    assert_eq!(v.grace_left, None);
    assert_eq!(v.time_left, Some(0));
    // Features follow the license: unusable once the check-in is required.
    let v = f.check(&t, &Context::at(until + grace + 1).with_feature("anything"));
    assert_eq!(v.features[0].status, Status::CheckInRequired);
}

#[test]
fn check_in_without_grace_is_required_one_second_after_until() {
    let f = Fixture::new();
    let until = T0 + DAY;
    let t = f.token(
        json!({"model": "perpetual", "check_in": {"until": until, "grace": 0}}),
        json!({}),
    );
    assert_eq!(f.status_at(&t, until), Status::Valid);
    assert_eq!(f.status_at(&t, until + 1), Status::CheckInRequired);
}

#[test]
fn check_in_grace_inside_subscription_grace_keeps_the_smaller_time_left() {
    let f = Fixture::new();
    let exp = T0 + 30 * DAY;
    let sub_grace = 10 * DAY;
    let lic = |until: i64, grace: i64| {
        json!({"model": "subscription", "grace_period": sub_grace,
               "check_in": {"until": until, "grace": grace}})
    };
    // Check-in grace ends first (exp + 2 days) while in subscription grace.
    let t = f.token(lic(exp + DAY, DAY), json!({"exp": exp}));
    let v = f.check(&t, &Context::at(exp + DAY + 1));
    assert_eq!(v.status, Status::ValidInGrace);
    assert_eq!(v.grace_left, Some(DAY - 1));
    assert!(v.reason.contains("grace period ends"), "{}", v.reason);
    assert!(v.reason.contains("server check-in"), "{}", v.reason);
    assert_eq!(f.status_at(&t, exp + 2 * DAY + 1), Status::CheckInRequired);
    // Subscription grace ends first: its time left is kept, then the license expires.
    let t = f.token(lic(exp + DAY, 30 * DAY), json!({"exp": exp}));
    let v = f.check(&t, &Context::at(exp + DAY + 1));
    assert_eq!(v.status, Status::ValidInGrace);
    assert_eq!(v.grace_left, Some(sub_grace - DAY - 1));
    assert_eq!(v.time_left, Some(sub_grace - DAY - 1));
    assert_eq!(f.status_at(&t, exp + sub_grace), Status::Expired);
    // Expiry wins over a missed check-in: the time rule comes first.
    let t = f.token(lic(T0, 0), json!({"exp": exp}));
    assert_eq!(f.status_at(&t, T0 + 1), Status::CheckInRequired);
    assert_eq!(f.status_at(&t, exp + sub_grace), Status::Expired);
    // Not yet valid wins too.
    assert_eq!(f.status_at(&t, T0 - 1), Status::NotYetValid);
}

#[test]
fn check_in_claims_are_validated() {
    let f = Fixture::new();
    let base = |check_in: Value| {
        json!({
            "iss": "i", "sub": "lic_1", "aud": PRODUCT, "iat": T0,
            "lic": {"model": "perpetual", "check_in": check_in},
        })
    };
    let parse = |v: Value| LicenseClaims::from_object(v.as_object().unwrap().clone());
    for (check_in, field) in [
        (json!({"until": -1, "grace": 0}), "lic.check_in.until"),
        (
            json!({"until": 253_402_300_800_i64, "grace": 0}),
            "lic.check_in.until",
        ),
        (json!({"until": T0, "grace": -1}), "lic.check_in.grace"),
        (
            json!({"until": T0, "grace": 253_402_300_800_i64}),
            "lic.check_in.grace",
        ),
        (
            json!({"until": T0, "grace": 0, "every": 1}),
            "lic.check_in.every",
        ),
        (json!({"until": T0}), "lic.check_in"),
        (json!(null), "lic.check_in"),
        (json!([T0, 0]), "lic.check_in"),
    ] {
        let err = parse(base(check_in.clone())).unwrap_err().to_string();
        assert!(err.contains(&format!("`{field}`")), "{check_in}: {err}");
    }
    // The extremes are valid, and evaluation saturates instead of overflowing.
    let claims = parse(base(
        json!({"until": 253_402_300_799_i64, "grace": 253_402_300_799_i64}),
    ));
    let token = issue_license(&claims.unwrap(), &f.key).unwrap();
    assert_eq!(f.status_at(&token, i64::MAX), Status::CheckInRequired);
    assert_eq!(f.status_at(&token, T0), Status::Valid);
}

/// What an issuer gets back without verifying its own signature is exactly what a client
/// verifying the token gets; invalid claims are refused before any signing.
#[test]
fn issuer_shortcuts_agree_with_verification() {
    let f = Fixture::new();
    let claims: LicenseClaims = serde_json::from_value(json!({
        "iss": "https://licensing.example.com", "sub": "lic_9", "aud": PRODUCT,
        "iat": T0, "exp": T0 + 30 * DAY,
        "lic": { "model": "subscription", "grace_period": 7 * DAY },
    }))
    .unwrap();
    let (token, issued) = licensing_core::issue_license_checked(claims.clone(), &f.key).unwrap();
    let verified = f.verifier.verify(&token).unwrap();
    assert_eq!(issued, verified);
    let trusted =
        licensing_core::trusted_license(claims.clone(), f.key.public_key().kid()).unwrap();
    assert_eq!(trusted, verified);
    for now in [T0, T0 + 30 * DAY, T0 + 37 * DAY, T0 + 37 * DAY + 1] {
        assert_eq!(
            trusted.check_time(now, 0),
            verified.check_time(now, 0),
            "{now}"
        );
    }
    let mut bad = claims;
    bad.exp = None; // a subscription must expire
    assert!(licensing_core::issue_license_checked(bad.clone(), &f.key).is_err());
    assert!(licensing_core::trusted_license(bad, "kid").is_err());
}

/// The issuer refuses what its verifiers would refuse as malformed: metadata nested past the
/// depth cap, or a token past the size cap. Just inside both, the token is issued and verifies.
#[test]
fn the_issuer_refuses_tokens_its_verifier_cannot_read() {
    let f = Fixture::new();
    let claims = |metadata: Value| -> LicenseClaims {
        serde_json::from_value(json!({
            "iss": "i", "sub": "lic_1", "aud": PRODUCT, "iat": T0,
            "lic": { "model": "perpetual", "metadata": metadata },
        }))
        .unwrap()
    };
    // The payload is depth 1, `lic` 2, `metadata` 3: 13 more levels reach the cap of 16.
    let nested = |levels: usize| (0..levels).fold(json!("leaf"), |inner, _| json!({ "x": inner }));
    let deepest = issue_license(&claims(json!({ "x": nested(13) })), &f.key).unwrap();
    assert_eq!(f.status_at(&deepest, T0), Status::Valid);
    let too_deep = issue_license(&claims(json!({ "x": nested(14) })), &f.key);
    let error = too_deep.expect_err("nesting past the cap is refused when issuing");
    assert!(error.to_string().contains("nesting"), "{error}");

    let big = |bytes: usize| json!({ "notes": "n".repeat(bytes) });
    let fits = issue_license(&claims(big(40_000)), &f.key).unwrap();
    assert_eq!(f.status_at(&fits, T0), Status::Valid);
    let too_big = issue_license(&claims(big(60_000)), &f.key);
    assert!(
        matches!(too_big, Err(licensing_core::Error::TooLarge { .. })),
        "{too_big:?}"
    );
}

/// `grace_left` is reported only when the verdict is `valid_in_grace`: in grace, a license
/// refused by another rule (here its site) reports no grace left.
#[test]
fn grace_left_only_with_valid_in_grace() {
    let f = Fixture::new();
    let exp = T0 + 30 * DAY;
    let t = f.token(
        json!({"model": "site", "grace_period": 7 * DAY,
               "site": {"restrictions": {"country": ["DE"]}}}),
        json!({"exp": exp}),
    );
    let at_site = Context::at(exp + DAY).with_attribute("country", "DE");
    let v = f.check(&t, &at_site);
    assert_eq!(
        (v.status, v.grace_left),
        (Status::ValidInGrace, Some(6 * DAY))
    );
    let elsewhere = Context::at(exp + DAY).with_attribute("country", "FR");
    let v = f.check(&t, &elsewhere);
    assert_eq!((v.status, v.grace_left), (Status::SiteRestricted, None));
}

#[test]
fn check_license_gives_the_verdict_of_check_and_the_verified_license() {
    let f = Fixture::new();
    let t = f.token(
        json!({"model": "subscription", "grace_period": 7 * DAY}),
        json!({"exp": T0 + 30 * DAY}),
    );
    for now in [T0, T0 + 30 * DAY, T0 + 40 * DAY] {
        let ctx = Context::at(now).with_feature("export");
        let (verdict, license) = f.verifier.check_license(&t, &ctx);
        assert_eq!(verdict, f.check(&t, &ctx), "at {now}");
        let license = license.expect("a genuine token keeps its license");
        assert_eq!(license.id(), "lic_1");
        assert_eq!(license.evaluate(&ctx), verdict);
    }
    // Not genuine: the verification failure's verdict, and no license.
    let mut forged = t.clone();
    forged.pop();
    forged.push(if t.ends_with('A') { 'B' } else { 'A' });
    let (verdict, license) = f.verifier.check_license(&forged, &Context::at(T0));
    assert_eq!(verdict, f.check(&forged, &Context::at(T0)));
    assert_ne!(verdict.status, Status::Valid);
    assert!(license.is_none());
    let (verdict, license) = f.verifier.check_license("not a token", &Context::at(T0));
    assert_eq!(verdict.status, Status::Malformed);
    assert!(license.is_none());
}

#[test]
fn versions_are_strict_semver_with_nothing_trimmed() {
    assert_eq!(
        licensing_core::parse_version("2.4.0-beta.1+build.5").unwrap(),
        semver::Version::parse("2.4.0-beta.1+build.5").unwrap()
    );
    for bad in [
        " 2.4.0", "2.4.0 ", "2.4.0\n", "\t2.4.0", "2.4", "v2.4.0", "",
    ] {
        let error = licensing_core::parse_version(bad).unwrap_err();
        assert_eq!(error.text, bad);
        assert!(error.to_string().contains("is not semver"), "{error}");
    }
    // The text is quoted escaped, so a newline shows.
    assert!(
        licensing_core::parse_version("2.4.0\n")
            .unwrap_err()
            .to_string()
            .starts_with("version `2.4.0\\n`")
    );
}

#[test]
fn the_term_rule_at_its_exact_edges() {
    use licensing_core::Term;
    let f = Fixture::new();
    let exp = T0 + 30 * DAY;
    let grace = 7 * DAY;
    let sub = f.token(
        json!({"model": "subscription", "grace_period": grace}),
        json!({"exp": exp}),
    );
    let license = f.verifier.verify(&sub).unwrap();
    assert_eq!(license.term_at(exp - 1), Term::Running { expires_at: exp });
    let in_grace = Term::InGrace {
        expired_at: exp,
        usable_until: exp + grace,
    };
    assert_eq!(license.term_at(exp), in_grace);
    assert_eq!(license.term_at(exp + grace - 1), in_grace);
    assert_eq!(
        license.term_at(exp + grace),
        Term::Ended { expired_at: exp }
    );
    // The time rule agrees at each edge.
    for (now, status) in [
        (exp - 1, Status::Valid),
        (exp, Status::ValidInGrace),
        (exp + grace - 1, Status::ValidInGrace),
        (exp + grace, Status::Expired),
    ] {
        assert_eq!(license.check_time(now, 0).status, status, "at {now}");
    }
    // A trial has no grace: it ends at `exp`.
    let trial = f.token(json!({"model": "trial"}), json!({"exp": exp}));
    let trial = f.verifier.verify(&trial).unwrap();
    assert_eq!(trial.term_at(exp), Term::Ended { expired_at: exp });
    assert_eq!(trial.check_time(exp, 0).status, Status::TrialExpired);
    // No `exp`: unlimited.
    let perpetual = f.token(json!({"model": "perpetual"}), json!({}));
    let perpetual = f.verifier.verify(&perpetual).unwrap();
    assert_eq!(perpetual.term_at(i64::MAX), Term::Unlimited);
}

#[test]
fn the_status_a_server_reports_follows_the_time_rule() {
    use licensing_core::protocol::ServerStatus;
    let f = Fixture::new();
    let nbf = T0 + DAY;
    let exp = T0 + 30 * DAY;
    let grace = 7 * DAY;
    let sub = f.token(
        json!({"model": "subscription", "grace_period": grace,
               "check_in": {"until": nbf + DAY, "grace": DAY}}),
        json!({"nbf": nbf, "exp": exp}),
    );
    let license = f.verifier.verify(&sub).unwrap();
    for (now, status) in [
        (nbf - 1, ServerStatus::NotYetValid),
        (nbf, ServerStatus::Active),
        // A check-in overdue is the client's business: the server is the check-in.
        (nbf + 5 * DAY, ServerStatus::Active),
        (exp + grace - 1, ServerStatus::Active),
        (exp + grace, ServerStatus::Expired),
    ] {
        assert_eq!(license.server_status_at(now), status, "at {now}");
    }
    assert_eq!(
        license.check_time(nbf + 5 * DAY, 0).status,
        Status::CheckInRequired
    );
    let trial = f.token(json!({"model": "trial"}), json!({"exp": exp}));
    let trial = f.verifier.verify(&trial).unwrap();
    assert_eq!(trial.server_status_at(exp - 1), ServerStatus::Active);
    assert_eq!(trial.server_status_at(exp), ServerStatus::Expired);
}
