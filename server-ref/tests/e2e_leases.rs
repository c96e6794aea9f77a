//! End to end for floating seats through the client's `LeaseManager` (licensing-core feature
//! `online`) against the real `licensing-server serve` binary on 127.0.0.1: heartbeats on the
//! background thread, the exact denial, check-in on drop, force-release reported through the
//! callback. Bounded: every call has a deadline, every wait a timeout.
// `Server`'s Drop kills and waits for the child, which clippy cannot see.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::zombie_processes)]

use std::sync::mpsc;
use std::time::{Duration, Instant};

use licensing_core::online::{LeaseConfig, LeaseLoss, LeaseManager};
use licensing_core::{Status, Verifier};
use serde_json::{Value, json};

mod support;
use support::online_server;

use online_server::{PRODUCT, Server, TIMEOUT, client};

fn seat(key: &str, client_id: &str, beat: Duration) -> LeaseConfig {
    LeaseConfig {
        heartbeat_interval: Some(beat),
        ..LeaseConfig::new(key, client_id, format!("user-of-{client_id}"))
    }
}

fn live_leases(server: &Server, license_id: &str) -> Vec<Value> {
    server.admin(
        "GET",
        &format!("/v1/licenses/{license_id}/leases"),
        None,
        200,
    )["leases"]
        .as_array()
        .unwrap()
        .clone()
}

/// Waits (bounded) until `ok()` holds.
fn eventually(what: &str, ok: impl Fn() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn lease_manager_heartbeats_is_denied_at_the_limit_and_checks_in_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let trust = server.shipped_trust_store();
    let client = client(&server.url, &trust);
    let (license_id, key) = server.issue(json!({ "model": "floating", "seats": 1 }));

    let a = LeaseManager::check_out(
        &client,
        seat(&key, "client-a", Duration::from_millis(100)),
        Box::new(|loss| panic!("seat lost: {loss}")),
    )
    .unwrap();
    let first = a.grant();
    assert!(first.created);
    assert_eq!(a.status(), Status::Valid);
    // The token is a lease for this license, verifiable by the app's own verifier.
    let lease = Verifier::new(trust.clone(), PRODUCT)
        .verify_lease(&a.lease_token())
        .unwrap();
    assert_eq!(
        lease.status_for(&license_id, licensing_core::unix_now()),
        Status::Valid
    );
    assert_eq!(lease.claims().client_id, "client-a");

    // The background thread heartbeats on its own: fresh tokens, same lease and epoch.
    eventually("3 heartbeats", || a.heartbeats() >= 3);
    let now = a.grant();
    assert_eq!(
        (now.lease_id.as_str(), now.epoch),
        (first.lease_id.as_str(), first.epoch)
    );
    assert_ne!(now.lease_token, first.lease_token);

    // The one seat is taken: the exact denial, recorded by the server.
    let denied = LeaseManager::check_out(
        &client,
        seat(&key, "client-b", Duration::from_millis(100)),
        Box::new(|_| {}),
    )
    .unwrap_err();
    assert!(denied.is_no_seats(), "{denied:?}");
    assert_eq!(
        denied.to_string(),
        "the licensing server refused (HTTP 409 no_seats): No available licenses, please contact IT"
    );
    let denials = server.admin(
        "GET",
        &format!("/v1/licenses/{license_id}/denials"),
        None,
        200,
    );
    assert_eq!(
        denials["denials"].as_array().map(Vec::len),
        Some(1),
        "{denials}"
    );

    // Dropping the manager checks in: the seat is free at once for client b.
    drop(a);
    assert!(live_leases(&server, &license_id).is_empty());
    let b = LeaseManager::check_out(
        &client,
        seat(&key, "client-b", Duration::from_millis(100)),
        Box::new(|_| {}),
    )
    .unwrap();
    assert_eq!(live_leases(&server, &license_id).len(), 1);
    b.check_in().unwrap();
    assert!(live_leases(&server, &license_id).is_empty());
}

#[test]
fn force_release_is_reported_through_the_callback_and_frees_the_seat() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let trust = server.shipped_trust_store();
    let client = client(&server.url, &trust);
    let (license_id, key) = server.issue(json!({ "model": "floating", "seats": 1 }));

    let (tx, rx) = mpsc::channel();
    let a = LeaseManager::check_out(
        &client,
        seat(&key, "client-a", Duration::from_millis(100)),
        Box::new(move |loss| tx.send(loss.clone()).unwrap()),
    )
    .unwrap();
    eventually("a heartbeat", || a.heartbeats() >= 1);
    let lease_id = a.grant().lease_id;
    let released = Instant::now();
    server.admin(
        "POST",
        &format!("/v1/licenses/{license_id}/leases/{lease_id}/release"),
        Some(json!({})),
        200,
    );
    let loss = rx.recv_timeout(TIMEOUT).unwrap();
    // Measured, not asserted (loaded CI machines): about one heartbeat interval.
    eprintln!("force-release reported after {:?}", released.elapsed());
    match &loss {
        LeaseLoss::Released { code, detail } => {
            assert_eq!(code, "lease_released");
            assert!(detail.contains("administrator"), "{detail}");
        }
        other => panic!("expected Released, got {other:?}"),
    }
    assert_eq!(a.status(), Status::LeaseExpired);
    assert_eq!(a.lost(), Some(loss));
    // Reported once; the manager stops heartbeating.
    let beats = a.heartbeats();
    assert!(rx.recv_timeout(Duration::from_millis(400)).is_err());
    assert_eq!(a.heartbeats(), beats);
    // The seat went free at the force-release; the same user comes back seamlessly.
    let again = LeaseManager::check_out(
        &client,
        seat(&key, "client-a", Duration::from_millis(100)),
        Box::new(|_| {}),
    )
    .unwrap();
    assert_ne!(again.grant().lease_id, lease_id);
    drop(a);
    // Dropping the lost manager checked nothing in: the new seat is still held.
    assert_eq!(live_leases(&server, &license_id).len(), 1);
    drop(again);
    assert!(live_leases(&server, &license_id).is_empty());
}

#[test]
fn a_suspended_license_ends_the_seat_at_the_next_heartbeat() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let trust = server.shipped_trust_store();
    let client = client(&server.url, &trust);
    let (license_id, key) = server.issue(json!({ "model": "floating", "seats": 2 }));
    let (tx, rx) = mpsc::channel();
    let a = LeaseManager::check_out(
        &client,
        seat(&key, "client-a", Duration::from_millis(100)),
        Box::new(move |loss| tx.send(loss.clone()).unwrap()),
    )
    .unwrap();
    server.license_action(&license_id, "suspend");
    let loss = rx.recv_timeout(TIMEOUT).unwrap();
    assert!(
        matches!(&loss, LeaseLoss::Refused { status: 403, code, .. } if code == "license_suspended"),
        "{loss:?}"
    );
    assert_eq!(a.status(), Status::LeaseExpired);
    server.stop();
}

/// Borrowing through `Licensing` against the real server: the seat is taken offline (kept in
/// the store, checked with no network, the clock guard included), holds one of the seats while
/// borrowed, is returned early (free at once), and ends by itself at its expiry.
#[test]
fn a_borrowed_seat_runs_offline_until_returned_or_expired() {
    use licensing_core::{Licensing, store::LicenseStore};
    const DAY: u64 = 86_400;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let trust = server.shipped_trust_store();
    let client = client(&server.url, &trust);
    let (license_id, key) = server.issue(json!({ "model": "floating", "seats": 1 }));
    let licensing = Licensing::new(
        trust.clone(),
        PRODUCT,
        LicenseStore::at(dir.path().join("laptop")).unwrap(),
    );
    let now = licensing_core::unix_now();

    // Not allowed until a license manager says so.
    let refused = licensing
        .borrow_seat(&client, &key, "laptop", "alice", Duration::from_secs(DAY))
        .unwrap_err();
    assert_eq!(
        refused.server_code(),
        Some("borrowing_not_allowed"),
        "{refused}"
    );
    assert_eq!(
        licensing.check_borrowed_seat(now).unwrap().status,
        Status::LeaseRequired
    );
    server.admin(
        "PUT",
        &format!("/v1/licenses/{license_id}/borrowing"),
        Some(json!({ "max_seconds": 7 * DAY, "max_leases": 1 })),
        200,
    );

    let grant = licensing
        .borrow_seat(
            &client,
            &key,
            "laptop",
            "alice",
            Duration::from_secs(3 * DAY),
        )
        .unwrap();
    assert!(grant.lease.claims().borrowed);
    let exp = grant.expires_at;
    assert!(exp >= now + 3 * DAY as i64, "{exp}");
    // Offline checks of the stored seat: live before its expiry, over at it, and a clock set
    // back before the lease was signed is caught.
    let seat = licensing.check_borrowed_seat(now).unwrap();
    assert_eq!(
        (seat.status, seat.lease.unwrap().id()),
        (Status::Valid, grant.lease_id.as_str())
    );
    assert_eq!(
        licensing.check_borrowed_seat(exp - 1).unwrap().status,
        Status::Valid
    );
    assert_eq!(
        licensing.check_borrowed_seat(exp).unwrap().status,
        Status::LeaseExpired
    );
    assert_eq!(
        licensing
            .check_borrowed_seat(now - 2 * DAY as i64)
            .unwrap()
            .status,
        Status::ClockTampered
    );
    // The borrowed seat is one of the license's seats: nobody else gets one.
    let denied = client
        .check_out_lease(&key, "desktop", "bob", "r1")
        .unwrap_err();
    assert!(denied.is_no_seats(), "{denied}");
    assert_eq!(live_leases(&server, &license_id).len(), 1);
    assert_eq!(live_leases(&server, &license_id)[0]["borrowed"], true);
    // A retry (new request id, same client and user) answers the same lease.
    let again = licensing
        .borrow_seat(&client, &key, "laptop", "alice", Duration::from_secs(DAY))
        .unwrap();
    assert_eq!(again.lease_id, grant.lease_id);

    // Returned early: free at once, gone from the store; returning again returns nothing.
    assert!(licensing.return_seat(&client, &key).unwrap());
    assert_eq!(
        licensing.check_borrowed_seat(now).unwrap().status,
        Status::LeaseRequired
    );
    assert!(!licensing.return_seat(&client, &key).unwrap());
    let bob = client
        .check_out_lease(&key, "desktop", "bob", "r1")
        .unwrap();
    assert!(!bob.lease.claims().borrowed);
    // The SDK declares `lease_secret_supported`: its lease has a secret, which the check-in
    // presents.
    assert!(bob.lease_secret.is_some());
    client.check_in_lease(&key, &bob).unwrap();

    // Borrowed again, then the server goes away: the seat still runs offline.
    licensing
        .borrow_seat(&client, &key, "laptop", "alice", Duration::from_secs(DAY))
        .unwrap();
    server.stop();
    let seat = licensing
        .check_borrowed_seat(licensing_core::unix_now())
        .unwrap();
    assert_eq!(seat.status, Status::Valid, "{}", seat.reason);
    // A clock state that does not unseal is tampering while the seat is live, and changes
    // nothing once it has ended.
    std::fs::write(dir.path().join("laptop").join("clock.json"), "{}").unwrap();
    let exp = seat.lease.unwrap().claims().exp;
    let seat = licensing.check_borrowed_seat(exp - 1).unwrap();
    assert_eq!(seat.status, Status::ClockTampered, "{}", seat.reason);
    assert_eq!(
        licensing.check_borrowed_seat(exp).unwrap().status,
        Status::LeaseExpired
    );
}

/// The wait line end to end: a client waiting in line (with a progress callback) is served
/// when the seat is checked in; one that stops waiting gives its place up; without a line the
/// same wait is a denial at once.
#[test]
fn a_waiting_client_gets_the_seat_when_it_is_checked_in() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let trust = server.shipped_trust_store();
    let client = client(&server.url, &trust);
    let (license_id, key) = server.issue(json!({ "model": "floating", "seats": 1 }));
    let beat = Duration::from_secs(30);
    let a =
        LeaseManager::check_out(&client, seat(&key, "client-a", beat), Box::new(|_| {})).unwrap();

    // No line yet: denied at once, although the client would wait.
    let wait = Duration::from_secs(120);
    let denied = LeaseManager::check_out_waiting(
        &client,
        seat(&key, "client-b", beat),
        wait,
        &mut |place| panic!("queued without a line: {place:?}"),
        Box::new(|_| {}),
    )
    .unwrap_err();
    assert!(denied.is_no_seats(), "{denied}");
    server.admin(
        "PUT",
        &format!("/v1/licenses/{license_id}/queue"),
        Some(json!({ "max_seconds": 600 })),
        200,
    );

    let (places, positions) = mpsc::channel();
    let waiter = {
        let client = client.clone();
        let config = seat(&key, "client-b", beat);
        std::thread::spawn(move || {
            LeaseManager::check_out_waiting(
                &client,
                config,
                wait,
                &mut |place| places.send(place.position).is_ok(),
                Box::new(|_| {}),
            )
        })
    };
    assert_eq!(positions.recv_timeout(TIMEOUT).unwrap(), 1);
    let listed = server.admin(
        "GET",
        &format!("/v1/licenses/{license_id}/leases"),
        None,
        200,
    );
    assert_eq!(listed["queue"]["waiting"][0]["client_id"], "client-b");
    assert_eq!(listed["queue"]["max_seconds"], 600);
    // A third client stops waiting at its first place (second in line): it leaves the line.
    let mut seen = Vec::new();
    let stopped = LeaseManager::check_out_waiting(
        &client,
        seat(&key, "client-c", beat),
        wait,
        &mut |place| {
            seen.push((place.position, place.waiting));
            false
        },
        Box::new(|_| {}),
    )
    .unwrap();
    assert!(stopped.is_none());
    assert_eq!(seen, [(2, 2)]);
    let listed = server.admin(
        "GET",
        &format!("/v1/licenses/{license_id}/leases"),
        None,
        200,
    );
    assert_eq!(listed["queue"]["waiting"].as_array().unwrap().len(), 1);

    // The seat comes back: the waiting client is served at its next ask (within 5 s).
    a.check_in().unwrap();
    let b = waiter.join().unwrap().unwrap().unwrap();
    assert_eq!(b.status(), Status::Valid);
    let leases = live_leases(&server, &license_id);
    assert_eq!(leases.len(), 1);
    assert_eq!(leases[0]["client_id"], "client-b");
    let listed = server.admin(
        "GET",
        &format!("/v1/licenses/{license_id}/leases"),
        None,
        200,
    );
    assert!(listed["queue"]["waiting"].as_array().unwrap().is_empty());
    b.check_in().unwrap();

    // Operators see the outcomes in Prometheus: 2 granted (a, then b from the line), 1 denied
    // at once (b before the line was set), and the answers with a place in line (b's first
    // ask, c's).
    let metrics = server
        .http
        .get(format!("{}/metrics", server.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let count = |outcome: &str| -> u64 {
        let name = format!("licensing_seat_check_outs_total{{outcome=\"{outcome}\"}} ");
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(&name))
            .map_or(0, |n| n.trim().parse().unwrap())
    };
    assert_eq!(count("granted"), 2, "{metrics}");
    assert_eq!(count("denied"), 1, "{metrics}");
    assert!(count("queued") >= 2, "{metrics}");
}

/// A clock the test moves by hand.
struct FakeClock(std::sync::Mutex<Duration>);

impl licensing_core::online::LeaseClock for FakeClock {
    fn now(&self) -> Duration {
        *self.0.lock().unwrap()
    }
}

impl FakeClock {
    fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

/// The customer's rule, "after a period of inactivity, the license will become available to
/// others", against the real server on an injected clock: the administrator sets the lease
/// timeout to 5 minutes; the seat is heartbeated while the app reports activity within it,
/// checked in once the app is idle past it (another user takes it at once), the idle user's
/// next activity gets the exact denial, and takes the seat again, without a new login, once
/// it is free.
#[test]
fn an_idle_user_gives_the_seat_back_and_takes_it_again_on_activity() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let trust = server.shipped_trust_store();
    let client = client(&server.url, &trust);
    let (license_id, key) = server.issue(json!({ "model": "floating", "seats": 1 }));
    server.admin(
        "PUT",
        &format!("/v1/licenses/{license_id}/lease-timeout"),
        Some(json!({ "seconds": 300 })),
        200,
    );
    let clock = std::sync::Arc::new(FakeClock(std::sync::Mutex::new(Duration::from_secs(1))));
    let (tx, rx) = mpsc::channel();
    let a = LeaseManager::check_out(
        &client,
        LeaseConfig {
            release_when_idle: true,
            clock: licensing_core::online::LeaseClockSource::custom(clock.clone()),
            ..seat(&key, "client-a", Duration::from_millis(100))
        },
        Box::new(move |loss| tx.send(loss.clone()).unwrap()),
    )
    .unwrap();
    let two_more_heartbeats = || {
        let seen = a.heartbeats();
        eventually("two more heartbeats", || a.heartbeats() >= seen + 2);
    };
    two_more_heartbeats();
    // In use: 200 s after the check-out, then 200 s after an activity (400 s in all, longer
    // than the timeout), the seat is held.
    clock.advance(Duration::from_secs(200));
    two_more_heartbeats();
    assert_eq!(a.activity().unwrap(), Status::Valid);
    clock.advance(Duration::from_secs(200));
    two_more_heartbeats();
    assert_eq!(a.status(), Status::Valid);
    assert!(rx.try_recv().is_err());

    // Idle past the administrator's 300 s: checked in, the app told, the seat free.
    clock.advance(Duration::from_secs(101));
    let loss = rx.recv_timeout(TIMEOUT).unwrap();
    assert!(
        matches!(&loss, LeaseLoss::Idle { detail } if detail.contains("300 s")),
        "{loss:?}"
    );
    assert_eq!(a.status(), Status::LeaseExpired);
    assert!(live_leases(&server, &license_id).is_empty());
    let b = LeaseManager::check_out(
        &client,
        seat(&key, "client-b", Duration::from_millis(100)),
        Box::new(|_| {}),
    )
    .unwrap();

    // The idle user comes back while b holds the seat: the exact denial.
    let denied = a.activity().unwrap_err();
    assert!(denied.is_no_seats(), "{denied:?}");
    assert_eq!(
        denied.to_string(),
        "the licensing server refused (HTTP 409 no_seats): No available licenses, please contact IT"
    );
    // b checks in; after the pause, the next activity takes the seat again.
    drop(b);
    clock.advance(licensing_core::online::RETAKE_PAUSE);
    assert_eq!(a.activity().unwrap(), Status::Valid);
    two_more_heartbeats();
    let leases = live_leases(&server, &license_id);
    assert_eq!(leases.len(), 1);
    assert_eq!(leases[0]["client_id"], "client-a");
    assert_eq!(
        leases[0]["lease_id"].as_str(),
        Some(a.grant().lease_id.as_str())
    );
    drop(a);
    assert!(live_leases(&server, &license_id).is_empty());
}
