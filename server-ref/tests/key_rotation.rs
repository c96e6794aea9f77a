//! Staged key rotation end to end, on the real `licensing-server serve` on 127.0.0.1 (SQLite,
//! and PostgreSQL under scripts/with-postgres.sh): an app that pinned the JWKS before the
//! rotation keeps validating online through stage and promote, and only retiring its key stops
//! it, with `unknown_key`. An app released after staging (both keys) moves to the new key at
//! promotion. Staging and promotion through the API and the CLI, the minimum publication time,
//! a promotion at a date with no request, and the audit trail of each.
// `Server`'s Drop kills and waits for the child, which clippy cannot see.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::zombie_processes)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use licensing_core::online::{OnlineError, TRUSTED_KIDS_HEADER};
use licensing_core::store::LicenseStore;
use licensing_core::{Error, Licensing, Status, TrustStore, decode_unverified, unix_now};
use serde_json::{Value, json};

mod support;
use backend::{Backend, on_both, temp_data};
use online_server::{PRODUCT, Server, client};
use support::{backend, online_server};

/// The app on one machine: its own store and machine identity, trusting `trust` (the keys it
/// shipped with).
fn app(dir: &Path, machine: &str, trust: &TrustStore) -> Licensing {
    Licensing::new(
        trust.clone(),
        PRODUCT,
        LicenseStore::at(dir.join(machine)).unwrap(),
    )
    .with_fingerprint_override(Some(machine.to_owned()))
}

fn kid_of(token: &str) -> String {
    let (header, _) = decode_unverified(token).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

fn jwks_kids(server: &Server) -> Vec<String> {
    let (status, jwks) = server.call("GET", "/.well-known/jwks.json", "", None);
    assert_eq!(status, 200);
    let mut kids: Vec<String> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    kids.sort();
    kids
}

/// `kid → status` of `GET /v1/keys`.
fn key_statuses(server: &Server) -> Vec<(String, String)> {
    let keys = server.admin("GET", "/v1/keys", None, 200);
    keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["kid"].as_str().unwrap().to_owned(),
                k["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn status_of(server: &Server, kid: &str) -> String {
    key_statuses(server)
        .into_iter()
        .find(|(k, _)| k == kid)
        .map(|(_, s)| s)
        .unwrap_or_default()
}

/// `licensing-server ARGS` on the server's store; answers (exit code, stdout, stderr).
fn cli(data: &Path, backend: &Backend, args: &[&str]) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_licensing-server"));
    command.args(args).arg("--data-dir").arg(data);
    command.args(backend.args());
    let out = command.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn start(data: &Path, backend: &Backend, min_publish: &str) -> Server {
    let mut args = backend.args();
    args.extend([
        "--key-reload-secs",
        "1",
        "--key-min-publish-secs",
        min_publish,
    ]);
    Server::start_with(data, &args)
}

/// Validates online and answers the kid of the signed response (the key the server answered
/// this app with).
fn validate(app: &Licensing, client: &licensing_core::online::Client) -> (Status, String) {
    let check = app.validate_online(client, unix_now()).unwrap();
    let kid = kid_of(&check.validation.unwrap().response_token);
    (check.verdict.status, kid)
}

/// A raw `POST /v1/client/validate` with `headers`, as an app whose SDK predates the
/// trusted-kids header; answers the kid of the response.
fn raw_validate(server: &Server, body: Value, headers: &[(&str, &str)]) -> (u16, String) {
    let mut request = server
        .http
        .post(format!("{}/v1/client/validate", server.url))
        .header("content-type", "application/json")
        .body(body.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().unwrap();
    let status = response.status().as_u16();
    let body: Value = serde_json::from_str(&response.text().unwrap()).unwrap_or(Value::Null);
    let kid = body["response_token"]
        .as_str()
        .map(kid_of)
        .unwrap_or_default();
    (status, kid)
}

#[test]
fn an_app_pinned_before_the_rotation_validates_through_stage_and_promote_until_retire() {
    on_both("key_rotation_shipped_apps", shipped_apps_on);
}

fn shipped_apps_on(backend: Backend) {
    let (dir, data) = temp_data();
    // A week of minimum publication, as by default in spirit: promotion is refused at first.
    let mut server = start(&data, &backend, "3600");
    let old_kid = jwks_kids(&server).remove(0);
    let (_, key) = server.issue(json!({
        "model": "subscription", "duration": 365 * 86400, "max_machines": 5
    }));

    // The app released before the rotation pinned the JWKS as it was then: the old key only.
    let old_trust = server.shipped_trust_store();
    let old_client = client(&server.url, &old_trust);
    let old_app = app(dir.path(), "old-app", &old_trust);
    let activated = old_app.activate(&old_client, &key, unix_now()).unwrap();
    assert_eq!(activated.verdict.status, Status::Valid);

    // 1. Stage: the next key is published (JWKS and GET /v1/keys) but does not sign.
    let staged = server.admin("POST", "/v1/keys/stage", None, 201);
    let new_kid = staged["kid"].as_str().unwrap().to_owned();
    assert_eq!(staged["status"], "staged");
    let promotable_at = staged["promotable_at"].as_i64().unwrap();
    assert_eq!(promotable_at, staged["created_at"].as_i64().unwrap() + 3600);
    let mut both = vec![old_kid.clone(), new_kid.clone()];
    both.sort();
    assert_eq!(jwks_kids(&server), both);
    assert_eq!(status_of(&server, &new_kid), "staged");
    assert_eq!(status_of(&server, &old_kid), "current");
    assert_eq!(
        validate(&old_app, &old_client),
        (Status::Valid, old_kid.clone())
    );
    let fresh = server.admin(
        "POST",
        "/v1/licenses",
        Some(json!({ "policy_id": policy_of(&server) })),
        201,
    );
    assert_eq!(
        kid_of(fresh["token"].as_str().unwrap()),
        old_kid,
        "a staged key never signs"
    );
    // One staged key at a time; a planned promotion before the minimum is refused, naming it.
    let (status, body) = server.call("POST", "/v1/keys/stage", &server.admin_token, None);
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("key_already_staged")),
        "{body}"
    );
    let early = json!({ "promote_at": unix_now() + 60 });
    let (status, body) = server.call("POST", "/v1/keys/stage", &server.admin_token, Some(early));
    assert_eq!(status, 422, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("`promote_at`"),
        "{body}"
    );

    // 3. Promote: refused before the key has been published for the minimum time, saying
    // from when; through the API and the CLI alike.
    let promote = format!("/v1/keys/{new_kid}/promote");
    let (status, body) = server.call("POST", &promote, &server.admin_token, Some(json!({})));
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("key_not_published_long_enough")),
        "{body}"
    );
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("3600 s") && detail.contains(&format!("Unix {promotable_at}")),
        "{detail}"
    );
    let (code, _, stderr) = cli(&data, &backend, &["keys", "promote", &new_kid]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("key_not_published_long_enough"), "{stderr}");
    // Only operator admins stage and promote.
    let org = server.admin(
        "POST",
        "/v1/organizations",
        Some(json!({ "name": "T" })),
        201,
    );
    let tenant = org["admin_token"].as_str().unwrap();
    let (status, _) = server.call("POST", &promote, tenant, Some(json!({})));
    assert_eq!(status, 403);
    let (status, _) = server.call("POST", "/v1/keys/stage", tenant, None);
    assert_eq!(status, 403);

    // 2. Ship: the next app release trusts both keys (the JWKS while the key is staged).
    let new_trust = server.shipped_trust_store();
    assert_eq!(new_trust.len(), 2);
    let new_client = client(&server.url, &new_trust);
    let new_app = app(dir.path(), "new-app", &new_trust);
    new_app.activate(&new_client, &key, unix_now()).unwrap();

    // The operator shortens the minimum (a restart with another setting); the CLI promotes
    // while the server runs, and the server follows within its reload period.
    let admin_token = server.admin_token.clone();
    drop(server);
    server = start(&data, &backend, "0");
    server.admin_token = admin_token;
    let (old_client, new_client) = (
        client(&server.url, &old_trust),
        client(&server.url, &new_trust),
    );
    let (code, stdout, stderr) = cli(
        &data,
        &backend,
        &["keys", "promote", &new_kid, "--key-min-publish-secs", "0"],
    );
    assert_eq!(code, 0, "{stderr}");
    let promoted: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(promoted["status"], "current", "{stdout}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while validate(&new_app, &new_client).1 != new_kid {
        assert!(
            Instant::now() < deadline,
            "the server never signed with the promoted key"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(status_of(&server, &old_kid), "previous");
    // The app released after staging is answered with the new key; its stored license token
    // is re-signed with it.
    assert_eq!(
        validate(&new_app, &new_client),
        (Status::Valid, new_kid.clone())
    );
    assert_eq!(
        kid_of(&new_app.store().read_token().unwrap().unwrap()),
        new_kid
    );
    // The app pinned before the rotation is answered with the key it trusts: it keeps
    // validating online, and its start-up check stays valid.
    assert_eq!(
        validate(&old_app, &old_client),
        (Status::Valid, old_kid.clone())
    );
    let check = old_app
        .check_online(&old_client, unix_now(), Duration::from_secs(5))
        .unwrap();
    assert_eq!(check.verdict.status, Status::Valid);
    assert!(check.offline_reason.is_none(), "{:?}", check.offline_reason);
    // Stored tokens (what administrators read) are always signed by the current key.
    let fresh = server.admin(
        "POST",
        "/v1/licenses",
        Some(json!({ "policy_id": policy_of(&server) })),
        201,
    );
    assert_eq!(kid_of(fresh["token"].as_str().unwrap()), new_kid);

    // An app whose SDK sends no trusted kids is answered with the key of the license token it
    // holds while that key signs; one that holds none gets the current key.
    let held = |kid: &str| {
        json!({ "license_key": key, "fingerprint": "old-app", "nonce": "nonce-raw-0001",
                "held": { "license": { "sub": activated.activation.license_id, "kid": kid, "iat": 1 } } })
    };
    assert_eq!(
        raw_validate(&server, held(&old_kid), &[]),
        (200, old_kid.clone())
    );
    assert_eq!(
        raw_validate(&server, held(&new_kid), &[]),
        (200, new_kid.clone())
    );
    let bare = json!({ "license_key": key, "fingerprint": "old-app", "nonce": "nonce-raw-0002" });
    assert_eq!(
        raw_validate(&server, bare.clone(), &[]),
        (200, new_kid.clone())
    );
    // Named kids win over the held token; an unknown kid alone gets the current key.
    let header = [(TRUSTED_KIDS_HEADER, old_kid.as_str())];
    assert_eq!(
        raw_validate(&server, held(&new_kid), &header),
        (200, old_kid.clone())
    );
    let header = [(TRUSTED_KIDS_HEADER, "nobody")];
    assert_eq!(
        raw_validate(&server, held(&old_kid), &header),
        (200, new_kid.clone())
    );
    // A malformed header is refused, naming it.
    let many = vec!["k"; 33].join(",");
    let (status, _) = raw_validate(&server, bare.clone(), &[(TRUSTED_KIDS_HEADER, &many)]);
    assert_eq!(status, 422);

    // 4. Retire: the old key leaves the JWKS and stops signing; the app that trusts only it
    // now fails online with unknown_key, naming the server's key it does not trust.
    server.admin("POST", &format!("/v1/keys/{old_kid}/retire"), None, 200);
    assert_eq!(jwks_kids(&server), vec![new_kid.clone()]);
    let refused = old_app
        .validate_online(&old_client, unix_now())
        .unwrap_err();
    match &refused {
        OnlineError::Token(e @ Error::UnknownKey(kid)) => {
            assert_eq!(kid, &new_kid);
            assert_eq!(e.status(), Status::UnknownKey);
        }
        other => panic!("expected unknown_key, got {other:?}"),
    }
    let message = refused.to_string();
    assert!(
        message.contains("does not verify")
            && message.contains("no trusted key")
            && message.contains(&new_kid),
        "{message}"
    );
    let check = old_app
        .check_online(&old_client, unix_now(), Duration::from_secs(5))
        .unwrap();
    assert!(
        matches!(
            check.offline_reason,
            Some(OnlineError::Token(Error::UnknownKey(_)))
        ),
        "{:?}",
        check.offline_reason
    );
    // The app released after staging is unaffected.
    assert_eq!(
        validate(&new_app, &new_client),
        (Status::Valid, new_kid.clone())
    );
    assert_eq!(
        raw_validate(&server, held(&old_kid), &[]),
        (200, new_kid.clone())
    );

    // Every key change is in the audit trail: the API's as the admin token, the CLI's as `cli`.
    let (status, audit) = server.call("GET", "/v1/audit?limit=1000", &server.admin_token, None);
    assert_eq!(status, 200, "{audit}");
    let entries: Vec<(String, String)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap().to_owned(),
                e["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let has = |actor: Option<&str>, action: &str| {
        entries
            .iter()
            .any(|(a, act)| act == action && actor.is_none_or(|want| a == want))
    };
    assert!(has(None, "POST /v1/keys/stage"), "{entries:?}");
    assert!(has(Some("cli"), "cli keys promote"), "{entries:?}");
    assert!(has(None, "POST /v1/keys/{kid}/retire"), "{entries:?}");
    drop(dir);
}

/// The id of the first policy (the one `issue` created).
fn policy_of(server: &Server) -> String {
    let policies = server.admin("GET", "/v1/policies", None, 200);
    policies["policies"][0]["id"].as_str().unwrap().to_owned()
}

#[test]
fn a_staged_key_is_promoted_at_its_date_without_a_request() {
    on_both("key_rotation_promote_at", promote_at_on);
}

fn promote_at_on(backend: Backend) {
    let (_dir, data) = temp_data();
    let server = start(&data, &backend, "1");
    let old_kid = jwks_kids(&server).remove(0);
    // A mistyped data directory is refused; nothing is created there.
    let missing = data.with_file_name("no-such-data");
    let (code, _, stderr) = cli(&missing, &Backend::Sqlite, &["keys", "list"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(!missing.exists());
    // Staged by the CLI with a date 3 s ahead (the minimum here is 1 s).
    let at = (unix_now() + 3).to_string();
    let (code, stdout, stderr) = cli(
        &data,
        &backend,
        &[
            "keys",
            "stage",
            "--promote-at",
            &at,
            "--key-min-publish-secs",
            "1",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let staged: Value = serde_json::from_str(&stdout).unwrap();
    let new_kid = staged["kid"].as_str().unwrap().to_owned();
    assert_eq!(staged["promote_at"], at.parse::<i64>().unwrap());
    // Published at once by the running server (its next reload), not signing yet.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !jwks_kids(&server).contains(&new_kid) {
        assert!(
            Instant::now() < deadline,
            "the staged key was never published"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // On PostgreSQL, a second replica publishes it too.
    let replica = match &backend {
        Backend::Postgres(_) => {
            let (dir, data) = temp_data();
            let mut replica = start(&data, &backend, "1");
            replica.admin_token = server.admin_token.clone();
            assert!(jwks_kids(&replica).contains(&new_kid));
            Some((dir, replica))
        }
        Backend::Sqlite => None,
    };
    // Promoted at its date with no request: the server's reload does it.
    while status_of(&server, &new_kid) != "current" {
        assert!(
            Instant::now() < deadline,
            "the staged key was never promoted"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Every replica signs with it within its reload period.
    for server in std::iter::once(&server).chain(replica.as_ref().map(|(_, r)| r)) {
        let (_, key) = server.issue(json!({ "model": "subscription", "duration": 86400 }));
        let trust = server.shipped_trust_store();
        let client = client(&server.url, &trust);
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path(), "after-promotion", &trust);
        app.activate(&client, &key, unix_now()).unwrap();
        while validate(&app, &client).1 != new_kid {
            assert!(
                Instant::now() < deadline,
                "a replica never signed with the promoted key"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    assert!(
        unix_now() >= at.parse::<i64>().unwrap(),
        "promoted before its date"
    );
    assert_eq!(status_of(&server, &old_kid), "previous");
    let (code, stdout, _) = cli(&data, &backend, &["keys", "list"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains(&new_kid) && !stdout.contains("PRIVATE"),
        "{stdout}"
    );
    let (status, audit) = server.call("GET", "/v1/audit?limit=1000", &server.admin_token, None);
    assert_eq!(status, 200);
    let actors: Vec<(&str, &str)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["actor"].as_str().unwrap(), e["action"].as_str().unwrap()))
        .collect();
    assert!(actors.contains(&("cli", "cli keys stage")), "{actors:?}");
    assert!(
        actors.contains(&("schedule", "POST /v1/keys/{kid}/promote")),
        "{actors:?}"
    );
}

/// The immediate `POST /v1/keys/rotate` (kept as a contract) no longer breaks an app built
/// before it either: the app names the key it trusts, and is answered with it until the
/// vendor retires that key. (On the server before staged rotation, the app failed online at
/// once with unknown_key.)
#[test]
fn an_app_built_before_an_immediate_rotation_validates_until_retire() {
    on_both("key_rotation_immediate", immediate_rotation_on);
}

fn immediate_rotation_on(backend: Backend) {
    let (dir, data) = temp_data();
    let server = Server::start_with(&data, &backend.args());
    let (_, key) = server.issue(json!({ "model": "subscription", "duration": 86400 * 30 }));
    let trust = server.shipped_trust_store();
    let client = client(&server.url, &trust);
    let app = app(dir.path(), "built-before", &trust);
    app.activate(&client, &key, unix_now()).unwrap();
    let old_kid = jwks_kids(&server).remove(0);
    let rotated = server.admin("POST", "/v1/keys/rotate", None, 201);
    let new_kid = rotated["kid"].as_str().unwrap().to_owned();
    assert_eq!(validate(&app, &client), (Status::Valid, old_kid.clone()));
    // Seat leases too: every token of a client answer is signed with the key the app trusts.
    let (_, floating) = server.issue(json!({ "model": "floating", "seats": 2 }));
    let check_out = |client_id: &str, headers: &[(&str, &str)]| {
        let body = json!({ "license_key": floating, "client_id": client_id, "user": "ann",
                           "request_id": format!("req-{client_id}") });
        let mut request = server
            .http
            .post(format!("{}/v1/client/leases", server.url))
            .header("content-type", "application/json")
            .body(body.to_string());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().unwrap();
        assert_eq!(response.status().as_u16(), 201);
        let body: Value = serde_json::from_str(&response.text().unwrap()).unwrap();
        kid_of(body["lease_token"].as_str().unwrap())
    };
    assert_eq!(
        check_out("built-before", &[(TRUSTED_KIDS_HEADER, &old_kid)]),
        old_kid
    );
    assert_eq!(check_out("no-header", &[]), new_kid);
    server.admin("POST", &format!("/v1/keys/{old_kid}/retire"), None, 200);
    match app.validate_online(&client, unix_now()) {
        Err(OnlineError::Token(Error::UnknownKey(kid))) => assert_eq!(kid, new_kid),
        other => panic!("expected unknown_key, got {other:?}"),
    }
}
