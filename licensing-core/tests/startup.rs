//! Machine binding, the clock-rollback guard and the license store, through the startup check.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use licensing_core::fingerprint::{FixedComponents, RawComponents};
use licensing_core::store::LicenseStore;
use licensing_core::{
    Context, LicenseClaims, Licensing, MachineFingerprint, PrivateKey, Status, TrustStore,
    issue_license,
};
use serde_json::json;

const PRODUCT: &str = "com.example.cad";
const T0: i64 = 1_767_225_600; // 2026-01-01
const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;

fn key() -> PrivateKey {
    PrivateKey::from_seed(&[9u8; 32]).unwrap()
}

fn trust() -> TrustStore {
    let mut store = TrustStore::new();
    store.add(key().public_key().clone()).unwrap();
    store
}

fn machine(hostname: &str) -> FixedComponents {
    FixedComponents(RawComponents {
        values: BTreeMap::from([
            ("machine_id".to_owned(), "0123456789abcdef".to_owned()),
            ("hostname".to_owned(), hostname.to_owned()),
            ("cpu".to_owned(), "Example CPU @ 3.0GHz".to_owned()),
            ("mac".to_owned(), "02:00:00:00:00:01".to_owned()),
            ("memory".to_owned(), "16 GiB".to_owned()),
        ]),
        virtualization: vec![],
    })
}

fn token(lic: serde_json::Value, iat: i64, exp: Option<i64>) -> String {
    let mut claims = json!({"iss": "i", "sub": "lic_1", "aud": PRODUCT, "iat": iat, "lic": lic});
    if let Some(exp) = exp {
        claims["exp"] = exp.into();
    }
    let claims: LicenseClaims = serde_json::from_value(claims).unwrap();
    issue_license(&claims, &key()).unwrap()
}

fn licensing(dir: &Path, host: &str) -> Licensing {
    Licensing::new(trust(), PRODUCT, LicenseStore::at(dir).unwrap())
        .with_component_source(machine(host))
        .with_fingerprint_override(None)
}

fn bound_to(fp: &MachineFingerprint) -> serde_json::Value {
    json!({
        "model": "node_locked",
        "node_lock": {
            "fingerprints": [{"id": fp.id, "components": fp.components}],
            "match": {"required": ["machine_id"], "min_matching": 4}
        }
    })
}

#[test]
fn no_license_then_install_then_valid() {
    let dir = tempfile::tempdir().unwrap();
    let lic = licensing(dir.path(), "ws-01");
    assert_eq!(lic.check_at_startup(T0).unwrap().status, Status::NoLicense);
    let t = token(json!({"model": "subscription"}), T0, Some(T0 + 30 * DAY));
    assert_eq!(lic.install(&t, T0).unwrap().status, Status::Valid);
    let v = lic.check_at_startup(T0 + DAY).unwrap();
    assert_eq!(v.status, Status::Valid, "{}", v.reason);
    // A forged token is never stored.
    let forged = format!("{}A", &t[..t.len() - 1]);
    let before = std::fs::read_to_string(dir.path().join("license.jwt")).unwrap();
    assert!(!lic.install(&forged, T0).unwrap().is_usable());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("license.jwt")).unwrap(),
        before
    );
}

#[test]
fn node_locked_survives_small_hardware_change_and_names_big_ones() {
    let dir = tempfile::tempdir().unwrap();
    let lic = licensing(dir.path(), "ws-01");
    let fp = lic.fingerprint();
    let t = token(bound_to(&fp), T0, None);
    assert_eq!(lic.install(&t, T0).unwrap().status, Status::Valid);

    // Host renamed: 4 of 5 components still match, machine id among them.
    let renamed = licensing(dir.path(), "ws-01-renamed");
    let v = renamed.check_at_startup(T0 + HOUR).unwrap();
    assert_eq!(v.status, Status::Valid, "{}", v.reason);
    assert!(v.reason.contains("hostname"), "{}", v.reason);

    // Another machine entirely: mismatch, with the changed components named.
    let other = FixedComponents(RawComponents {
        values: BTreeMap::from([
            ("machine_id".to_owned(), "ffff".to_owned()),
            ("hostname".to_owned(), "laptop".to_owned()),
            ("cpu".to_owned(), "Example CPU @ 3.0GHz".to_owned()),
        ]),
        virtualization: vec![],
    });
    let lic_other = Licensing::new(trust(), PRODUCT, LicenseStore::at(dir.path()).unwrap())
        .with_component_source(other)
        .with_fingerprint_override(None);
    let v = lic_other.check_at_startup(T0 + HOUR).unwrap();
    assert_eq!(v.status, Status::FingerprintMismatch);
    for name in ["machine_id", "hostname", "mac", "memory"] {
        assert!(v.reason.contains(name), "{name} in {}", v.reason);
    }
}

#[test]
fn override_is_honoured_and_vms_can_be_refused() {
    let dir = tempfile::tempdir().unwrap();
    let lic = licensing(dir.path(), "node").with_fingerprint_override(Some("k8s-node-17".into()));
    let fp = lic.fingerprint();
    assert_eq!(fp.components.keys().collect::<Vec<_>>(), ["override"]);
    let t = token(
        json!({"model": "node_locked", "node_lock": {"fingerprints": [{"id": fp.id}]}}),
        T0,
        None,
    );
    assert_eq!(lic.install(&t, T0).unwrap().status, Status::Valid);
    let moved = licensing(dir.path(), "node").with_fingerprint_override(Some("k8s-node-18".into()));
    assert_eq!(
        moved.check_at_startup(T0).unwrap().status,
        Status::FingerprintMismatch
    );

    let vm = FixedComponents(RawComponents {
        virtualization: vec!["hypervisor: test".into()],
        ..machine("vm").0
    });
    let dir = tempfile::tempdir().unwrap();
    let lic = Licensing::new(trust(), PRODUCT, LicenseStore::at(dir.path()).unwrap())
        .with_component_source(vm)
        .with_fingerprint_override(None);
    let fp = lic.fingerprint();
    assert!(fp.is_virtual);
    let mut lic_claims = bound_to(&fp);
    lic_claims["node_lock"]["allow_virtual"] = false.into();
    let v = lic.install(&token(lic_claims, T0, None), T0).unwrap();
    assert_eq!(v.status, Status::VirtualMachineNotAllowed);
}

#[test]
fn clock_rollback_beyond_tolerance_is_tampering_within_is_fine() {
    let dir = tempfile::tempdir().unwrap();
    let lic = licensing(dir.path(), "ws");
    let exp = T0 + 30 * DAY;
    let t = token(json!({"model": "subscription"}), T0, Some(exp));
    lic.install(&t, T0).unwrap();
    // Used until day 29.
    assert_eq!(
        lic.check_at_startup(exp - DAY).unwrap().status,
        Status::Valid
    );
    // Expired on day 31...
    assert_eq!(
        lic.check_at_startup(exp + DAY).unwrap().status,
        Status::Expired
    );
    // ...so the user sets the clock back to day 20: tampering, not valid, not "expired".
    let v = lic.check_at_startup(T0 + 20 * DAY).unwrap();
    assert_eq!(v.status, Status::ClockTampered, "{}", v.reason);
    // DST / NTP: within one hour of the mark is fine (mark is exp + DAY now).
    let v = lic.check_at_startup(exp + DAY - HOUR).unwrap();
    assert_eq!(v.status, Status::Expired);
    let v = lic.check_at_startup(exp + DAY - HOUR - 1).unwrap();
    assert_eq!(
        v.status,
        Status::Expired,
        "not usable anyway: keeps its own status"
    );
    // Forward jumps are fine.
    let dir = tempfile::tempdir().unwrap();
    let lic = licensing(dir.path(), "ws");
    let t = token(json!({"model": "perpetual"}), T0, None);
    lic.install(&t, T0).unwrap();
    assert_eq!(
        lic.check_at_startup(T0 + 400 * DAY).unwrap().status,
        Status::Valid
    );
    assert_eq!(
        lic.check_at_startup(T0 + 400 * DAY - HOUR).unwrap().status,
        Status::Valid
    );
    assert_eq!(
        lic.check_at_startup(T0 + 400 * DAY - HOUR - 1)
            .unwrap()
            .status,
        Status::ClockTampered
    );
    // A configurable tolerance.
    let strict = licensing(dir.path(), "ws").with_clock_tolerance(60);
    assert_eq!(
        strict.check_at_startup(T0 + 400 * DAY - 61).unwrap().status,
        Status::ClockTampered
    );
}

#[test]
fn token_issued_in_the_clocks_future_is_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let lic = licensing(dir.path(), "ws");
    let t = token(json!({"model": "perpetual"}), T0 + 10 * DAY, None);
    let v = lic.install(&t, T0).unwrap();
    assert_eq!(v.status, Status::ClockTampered);
    assert!(!dir.path().join("license.jwt").exists(), "not installed");
}

#[test]
fn edited_deleted_or_foreign_clock_state_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let lic = licensing(dir.path(), "ws");
    let t = token(json!({"model": "perpetual"}), T0, None);
    lic.install(&t, T0).unwrap();
    lic.check_at_startup(T0 + 100 * DAY).unwrap();
    let clock = dir.path().join("clock.json");
    let sealed = std::fs::read_to_string(&clock).unwrap();
    let mark: serde_json::Value = serde_json::from_str(&sealed).unwrap();
    assert_eq!(mark["mark"], T0 + 100 * DAY);

    // Edited: the mark set back by hand.
    let edited = sealed.replace(&(T0 + 100 * DAY).to_string(), &T0.to_string());
    std::fs::write(&clock, edited).unwrap();
    let v = lic.check_at_startup(T0 + DAY).unwrap();
    assert_eq!(v.status, Status::ClockTampered, "{}", v.reason);

    // Garbage.
    std::fs::write(&clock, "{]").unwrap();
    assert_eq!(
        lic.check_at_startup(T0 + 100 * DAY).unwrap().status,
        Status::ClockTampered
    );

    // Deleted while a license is installed: suspicious, not a fresh start.
    std::fs::remove_file(&clock).unwrap();
    let v = lic.check_at_startup(T0 + 100 * DAY).unwrap();
    assert_eq!(v.status, Status::ClockTampered);
    assert!(v.reason.contains("missing"), "{}", v.reason);

    // Copied from another machine: the seal is keyed to the machine.
    std::fs::write(&clock, &sealed).unwrap();
    let elsewhere = Licensing::new(trust(), PRODUCT, LicenseStore::at(dir.path()).unwrap())
        .with_component_source(FixedComponents(RawComponents {
            values: BTreeMap::from([("machine_id".to_owned(), "other".to_owned())]),
            virtualization: vec![],
        }))
        .with_fingerprint_override(None);
    assert_eq!(
        elsewhere.check_at_startup(T0 + 100 * DAY).unwrap().status,
        Status::ClockTampered
    );
    // Reinstalling through the app starts a fresh, valid mark.
    assert_eq!(
        lic.install(&t, T0 + 100 * DAY).unwrap().status,
        Status::Valid
    );
    assert_eq!(
        lic.check_at_startup(T0 + 100 * DAY).unwrap().status,
        Status::Valid
    );
}

#[test]
fn corrupt_store_files_give_clear_answers() {
    let dir = tempfile::tempdir().unwrap();
    let lic = licensing(dir.path(), "ws");
    std::fs::write(dir.path().join("license.jwt"), "not a token").unwrap();
    let v = lic.check_at_startup(T0).unwrap();
    assert_eq!(v.status, Status::Malformed);
    std::fs::write(dir.path().join("license.jwt"), [0xff, 0xfe, 0x00]).unwrap();
    let err = lic.check_at_startup(T0).unwrap_err();
    assert!(err.to_string().contains("not UTF-8"), "{err}");
    std::fs::write(dir.path().join("license.jwt"), vec![b'a'; 70 * 1024]).unwrap();
    let err = lic.check_at_startup(T0).unwrap_err();
    assert!(err.to_string().contains("larger than"), "{err}");
}

#[test]
fn context_from_the_app_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    let lic = licensing(dir.path(), "ws").with_context(
        Context::default()
            .with_version(semver::Version::new(3, 0, 0))
            .with_feature("export"),
    );
    let t = token(
        json!({"model": "perpetual", "version": {"req": "^2"}, "features": {"export": {"limit": 3}}}),
        T0,
        None,
    );
    let v = lic.install(&t, T0).unwrap();
    assert_eq!(v.status, Status::VersionNotEntitled);
    assert_eq!(v.features[0].limit, Some(3));
}

#[test]
fn startup_and_install_return_the_verified_license_when_genuine() {
    let dir = tempfile::tempdir().unwrap();
    let lic = licensing(dir.path(), "ws").with_context(
        Context::default()
            .with_version(semver::Version::new(2, 4, 0))
            .with_feature("export"),
    );
    let exp = T0 + 30 * DAY;
    let t = token(
        json!({"model": "subscription", "version": {"req": "^2"},
               "features": {"export": {"limit": 3}, "render": {}}}),
        T0,
        Some(exp),
    );

    // Nothing installed, or a forged token: no license.
    let (v, license) = lic.check_at_startup_license(T0).unwrap();
    assert_eq!(v.status, Status::NoLicense);
    assert!(license.is_none());
    // One signature character changed (never equal to the original).
    let last = if t.ends_with('A') { "B" } else { "A" };
    let forged = format!("{}{last}", &t[..t.len() - 1]);
    let (v, license) = lic.install_license(&forged, T0).unwrap();
    assert!(!v.is_usable(), "{}", v.reason);
    assert!(license.is_none());

    // Installed: the same verdict as `install`, and the license to ask more questions.
    let (v, license) = lic.install_license(&t, T0).unwrap();
    assert_eq!(v.status, Status::Valid, "{}", v.reason);
    let license = license.expect("a genuine token gives its license");
    assert_eq!(license.id(), "lic_1");
    assert_eq!(license.check_feature("render", T0, 0).status, Status::Valid);
    assert_eq!(
        license.check_feature("teleport", T0, 0).status,
        Status::FeatureNotEntitled
    );

    // The startup check: same verdict as `check_at_startup`, plus the license.
    let (v, license) = lic.check_at_startup_license(T0 + DAY).unwrap();
    assert_eq!(v, lic.check_at_startup(T0 + DAY).unwrap());
    assert_eq!(v.status, Status::Valid);
    assert_eq!(v.features[0].limit, Some(3));
    let license = license.unwrap();
    assert_eq!(
        license
            .check_version(Some(&semver::Version::new(2, 5, 0)), None)
            .status,
        Status::Valid
    );
    assert_eq!(
        license
            .check_version(Some(&semver::Version::new(3, 0, 0)), None)
            .status,
        Status::VersionNotEntitled
    );

    // Genuine but not usable (clock set back; expired): the license is still returned.
    let (v, license) = lic.check_at_startup_license(T0 - DAY).unwrap();
    assert_eq!(v.status, Status::ClockTampered);
    assert!(license.is_some());
    let (v, license) = lic.check_at_startup_license(exp + DAY).unwrap();
    assert_eq!(v.status, Status::Expired);
    assert!(license.is_some());
    // A token issued in the clock's future is not installed, but was genuine.
    let (v, license) = lic
        .install_license(
            &token(
                json!({"model": "perpetual", "features": {"export": {}}}),
                T0 + 10 * DAY,
                None,
            ),
            T0,
        )
        .unwrap();
    assert_eq!(v.status, Status::ClockTampered, "{}", v.reason);
    assert!(license.is_some());

    // A stored token that is no longer genuine: no license.
    std::fs::write(dir.path().join("license.jwt"), &forged).unwrap();
    let (v, license) = lic.check_at_startup_license(exp + DAY).unwrap();
    assert!(!v.is_usable());
    assert!(license.is_none());
}

/// Spawns this test binary running one `#[ignore]`d child test with `env` set.
fn spawn_child(test: &str, env: &[(&str, String)]) -> std::process::Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        test,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
#[ignore = "child process of concurrent_writers_from_several_processes"]
fn child_writer() {
    let Ok(dir) = std::env::var("LIC_TEST_STORE") else {
        return;
    };
    let id: i64 = std::env::var("LIC_TEST_ID").unwrap().parse().unwrap();
    let rounds: i64 = std::env::var("LIC_TEST_ROUNDS").unwrap().parse().unwrap();
    // The default 5 s lock wait is a product setting; on a loaded machine four processes
    // writing at once can wait longer than that, which says nothing about correctness.
    let store = LicenseStore::at(Path::new(&dir))
        .unwrap()
        .with_lock_timeout(std::time::Duration::from_secs(120));
    let lic = Licensing::new(trust(), PRODUCT, store)
        .with_component_source(machine("ws"))
        .with_fingerprint_override(None);
    for round in 0..rounds {
        let t = token(json!({"model": "perpetual"}), T0 + id * 1000 + round, None);
        lic.install(&t, T0 + DAY).unwrap();
        let v = lic.check_at_startup(T0 + DAY + round).unwrap();
        assert!(v.is_usable(), "{}", v.reason);
    }
}

#[test]
fn concurrent_writers_from_several_processes() {
    let dir = tempfile::tempdir().unwrap();
    let children: Vec<_> = (0..4)
        .map(|id| {
            spawn_child(
                "child_writer",
                &[
                    ("LIC_TEST_STORE", dir.path().display().to_string()),
                    ("LIC_TEST_ID", id.to_string()),
                    ("LIC_TEST_ROUNDS", "25".to_string()),
                ],
            )
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success(), "a writer failed");
    }
    let lic = licensing(dir.path(), "ws");
    let v = lic.check_at_startup(T0 + 2 * DAY).unwrap();
    assert_eq!(v.status, Status::Valid, "{}", v.reason);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
#[ignore = "child process of kill_during_writes_never_tears_the_store"]
fn child_endless_writer() {
    let Ok(dir) = std::env::var("LIC_TEST_STORE") else {
        return;
    };
    let store = LicenseStore::at(&dir).unwrap();
    // Large, distinct tokens so a torn write would show.
    let tokens: Vec<String> = (0..8)
        .map(|i| {
            token(
                json!({"model": "perpetual", "metadata": {"pad": "x".repeat(20_000 + i)}}),
                T0,
                None,
            )
        })
        .collect();
    for i in 0.. {
        store.write_token(&tokens[i % tokens.len()]).unwrap();
    }
}

#[test]
fn kill_during_writes_never_tears_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let lic = licensing(dir.path(), "ws");
    lic.install(&token(json!({"model": "perpetual"}), T0, None), T0)
        .unwrap();
    let initial = lic.store().read_token().unwrap().unwrap();
    for round in 0..10u64 {
        let mut child = spawn_child(
            "child_endless_writer",
            &[("LIC_TEST_STORE", dir.path().display().to_string())],
        );
        // Wait until the child is writing (a loaded machine can take a while to start it),
        // then kill it at a varying point of its write loop.
        let started = std::time::Instant::now();
        while lic.store().read_token().unwrap().unwrap().len() <= initial.len() {
            assert!(started.elapsed().as_secs() < 60, "the child never wrote");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        std::thread::sleep(std::time::Duration::from_millis(3 * round));
        child.kill().unwrap(); // SIGKILL: no destructors, no cleanup
        child.wait().unwrap();
        let stored = lic.store().read_token().unwrap().unwrap();
        assert!(stored.len() > 20_000, "a complete token of the child's");
        let verdict = Licensing::new(trust(), PRODUCT, lic.store().clone())
            .with_component_source(machine("ws"))
            .with_fingerprint_override(None)
            .check_at_startup(T0)
            .unwrap();
        assert_eq!(
            verdict.status,
            Status::Valid,
            "round {round}: {} bytes",
            stored.len()
        );
        lic.store().write_token(&initial).unwrap();
    }
}

#[test]
fn crash_between_write_and_rename_leaves_the_old_file() {
    // What a crash before rename leaves behind: a partial temp file beside the real one.
    let dir = tempfile::tempdir().unwrap();
    let lic = licensing(dir.path(), "ws");
    let t = token(json!({"model": "perpetual"}), T0, None);
    lic.install(&t, T0).unwrap();
    std::fs::write(dir.path().join(".license.jwt.999.1.tmp"), &t[..t.len() / 2]).unwrap();
    assert_eq!(
        lic.store().read_token().unwrap().as_deref(),
        Some(t.as_str())
    );
    assert_eq!(lic.check_at_startup(T0).unwrap().status, Status::Valid);
}

#[test]
fn platform_data_directory_is_used_for_the_user_scope() {
    let home = tempfile::tempdir().unwrap();
    // directories resolves XDG_DATA_HOME on Linux; other platforms ignore it.
    if cfg!(target_os = "linux") {
        // A child process gets the environment; setting it here would race other tests.
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["child_user_store", "--exact", "--ignored", "--nocapture"])
            .env("XDG_DATA_HOME", home.path())
            .env("LIC_TEST_CHILD", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(home.path().join("examplecad").join("license.jwt").exists());
    }
}

#[test]
#[ignore = "child process of platform_data_directory_is_used_for_the_user_scope"]
fn child_user_store() {
    if std::env::var("LIC_TEST_CHILD").is_err() {
        return;
    }
    let store = LicenseStore::for_app(
        "com",
        "Example",
        "Example CAD",
        licensing_core::store::Scope::User,
    )
    .unwrap();
    store.write_token("t").unwrap();
}

/// Clearing (deactivation) takes the store's lock: it waits while another thread or process
/// holds it (a startup check, an install), then clears.
#[test]
fn clear_waits_for_the_store_lock() {
    let dir = tempfile::tempdir().unwrap();
    let store = LicenseStore::at(dir.path().to_owned()).unwrap();
    store.write_token("a.b.c").unwrap();
    let held = store.lock().unwrap();
    let (done, finished) = std::sync::mpsc::channel();
    let clearing = {
        let store = store.clone();
        std::thread::spawn(move || done.send(store.clear()).unwrap())
    };
    assert!(
        finished
            .recv_timeout(std::time::Duration::from_millis(300))
            .is_err(),
        "clear did not wait for the lock"
    );
    assert_eq!(store.read_token().unwrap().as_deref(), Some("a.b.c"));
    drop(held);
    finished
        .recv_timeout(std::time::Duration::from_secs(10))
        .unwrap()
        .unwrap();
    clearing.join().unwrap();
    assert_eq!(store.read_token().unwrap(), None);
}

/// A borrowed seat keeps the clock guard of the installed license: deleting the clock state
/// and setting the clock back into the lease's term is tampering, not a seat again.
#[test]
fn a_borrowed_seat_is_guarded_when_the_clock_state_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let lic = licensing(dir.path(), "box");
    let license = token(json!({"model": "floating", "seats": 1}), T0, None);
    assert_eq!(lic.install(&license, T0).unwrap().status, Status::Valid);
    let lease = licensing_core::LeaseClaims {
        iss: "i".into(),
        sub: "lse_1".into(),
        aud: PRODUCT.into(),
        iat: T0,
        exp: T0 + 30 * DAY,
        jti: "j".into(),
        license_id: "lic_1".into(),
        client_id: "c".into(),
        user: "u".into(),
        epoch: 1,
        borrowed: true,
    };
    let lease = licensing_core::issue_lease(&lease, &key()).unwrap();
    let store = LicenseStore::at(dir.path()).unwrap();
    store.write_borrowed_lease(Some(&lease)).unwrap();

    assert_eq!(
        lic.check_borrowed_seat(T0 + DAY).unwrap().status,
        Status::Valid
    );
    // The seat's check moves the mark on, as the startup check does.
    assert_eq!(
        lic.check_borrowed_seat(T0 + 40 * DAY).unwrap().status,
        Status::LeaseExpired
    );
    assert_eq!(
        lic.check_borrowed_seat(T0 + 20 * DAY).unwrap().status,
        Status::ClockTampered
    );
    std::fs::remove_file(dir.path().join("clock.json")).unwrap();
    let seat = lic.check_borrowed_seat(T0 + 20 * DAY).unwrap();
    assert_eq!(seat.status, Status::ClockTampered, "{}", seat.reason);
    assert!(seat.reason.contains("missing"), "{}", seat.reason);
}

/// An install that fails to write leaves the store as it was: never a new token without its
/// clock state (which the next start would report as tampering).
#[test]
fn a_failed_install_keeps_the_store_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let lic = licensing(dir.path(), "box");
    let store = LicenseStore::at(dir.path()).unwrap();
    let license = token(json!({"model": "perpetual"}), T0, None);
    // The clock state cannot be written: a directory stands where its file goes.
    std::fs::create_dir_all(dir.path().join("clock.json")).unwrap();
    assert!(lic.install(&license, T0).is_err());
    assert_eq!(store.read_token().unwrap(), None);
    std::fs::remove_dir(dir.path().join("clock.json")).unwrap();
    assert_eq!(lic.install(&license, T0).unwrap().status, Status::Valid);
    assert_eq!(
        lic.check_at_startup(T0 + HOUR).unwrap().status,
        Status::Valid
    );
}
