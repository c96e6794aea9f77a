//! The license store on Unix (security review): private modes whatever the process umask, and
//! a lock held elsewhere ends in an error after the lock timeout instead of an endless wait.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use licensing_core::store::{LicenseStore, StoreError};
use licensing_core::{Licensing, Status, TrustStore};

const NOW: i64 = 1_790_000_000;

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Under umask 022 (and no umask at all) the store directory was 0755 and `license.key` 0644:
/// now 0700 and 0600, for every file the store writes and its lock file, and an existing
/// directory left open by an earlier release is tightened.
#[test]
fn the_store_is_private_whatever_the_umask() {
    for umask in [0o022, 0o000] {
        let previous = rustix::process::umask(rustix::fs::Mode::from_raw_mode(umask));
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("data").join("app");
        let store = LicenseStore::at(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700, "umask {umask:o}");
        store.write_license_key("AAAAA-BBBBB").unwrap();
        store.write_token("a.b.c").unwrap();
        store.write_clock("{}").unwrap();
        store.write_machine_token("a.b.c").unwrap();
        store.write_server_response(Some("a.b.c")).unwrap();
        store.write_pending_request(Some("{}")).unwrap();
        store.write_borrowed_lease(Some("a.b.c")).unwrap();
        drop(store.lock().unwrap());
        let mut files = 0;
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            assert_eq!(mode(&path), 0o600, "umask {umask:o}: {}", path.display());
            files += 1;
        }
        assert_eq!(files, 8, "seven files and the lock");

        // A store directory an earlier release created 0755, with a 0644 lock file in it.
        let old = base.path().join("old");
        fs::create_dir(&old).unwrap();
        fs::set_permissions(&old, fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(old.join(".lock"), "").unwrap();
        fs::set_permissions(old.join(".lock"), fs::Permissions::from_mode(0o644)).unwrap();
        let store = LicenseStore::at(&old).unwrap();
        assert_eq!(mode(&old), 0o700);
        drop(store.lock().unwrap());
        assert_eq!(mode(&old.join(".lock")), 0o600);
        rustix::process::umask(previous);
    }
}

/// Another holder of the lock (here a thread with its own open file, as another process
/// would have) blocked `check_at_startup` for as long as it held the lock. Now the check,
/// an installation and a clear give up after the store's lock timeout with
/// `StoreError::Locked`, and work again once the lock is free.
#[test]
fn a_held_lock_is_an_error_after_the_timeout_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let (held_tx, held_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let holder_dir = dir.path().to_owned();
    let holder = std::thread::spawn(move || {
        let store = LicenseStore::at(holder_dir).unwrap();
        let lock = store.lock().unwrap();
        held_tx.send(()).unwrap();
        let _ = release_rx.recv();
        drop(lock);
    });
    held_rx.recv().unwrap();

    let store = LicenseStore::at(dir.path())
        .unwrap()
        .with_lock_timeout(Duration::from_millis(200));
    let app = Licensing::new(TrustStore::new(), "com.example.cad", store)
        .with_fingerprint_override(Some("box-a".into()));
    // A watchdog rather than a timing assertion: on a store without the bounded wait the
    // check never returns.
    let (done_tx, done_rx) = mpsc::channel();
    let checker = std::thread::spawn(move || {
        let startup = app.check_at_startup(NOW);
        let install = app.install("a.b.c", NOW);
        let clear = app.store().clear();
        done_tx
            .send((startup.err(), install.err(), clear.err()))
            .unwrap();
        app
    });
    let (startup, install, clear) = done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the startup check is still waiting for the lock");
    for error in [startup, install, clear] {
        let error = error.expect("an error while the lock is held");
        assert!(matches!(error, StoreError::Locked { .. }), "{error:?}");
        assert!(
            error.to_string().contains("locked by another process"),
            "{error}"
        );
    }
    let app = checker.join().unwrap();
    release_tx.send(()).unwrap();
    holder.join().unwrap();
    assert_eq!(app.check_at_startup(NOW).unwrap().status, Status::NoLicense);
}
