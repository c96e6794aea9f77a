//! The audit evidence (issue 24) through the router, on SQLite and PostgreSQL: the CEF export
//! (download and feed, escaping, roles, tenants), signed checkpoints (signed, listed, isolated,
//! refused when forged, and the interval run), and the audit package (verifies when genuine;
//! an entry altered, one removed, a checkpoint altered, a swapped JWKS, a path in the zip and a
//! zip bomb each refused for their own reason).

use std::io::{Read, Write};

use axum::http::HeaderMap;
use licensing_core::audit_checkpoint::{AuditCheckpointClaims, verify_audit_checkpoint};
use licensing_core::{PrivateKey, TrustStore};

use super::*;
use crate::server::audit::{AuditEvent, action};
use crate::server::checkpoints::{self, Scope};
use crate::server::package;

/// A request through the router, answered as status, headers and raw body.
async fn raw(
    state: &AppState,
    method: &str,
    path: &str,
    token: &str,
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let request = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let response = router(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, headers, bytes.to_vec())
}

/// A second organization `org_b` with an admin token, and a license manager token of the
/// operator organization.
async fn setup_tokens(state: &AppState) -> (&'static str, &'static str) {
    let db = state.db();
    let org = db::Organization {
        id: "org_b".into(),
        name: "B".into(),
        operator: 0,
        created_at: 0,
    };
    assert!(db.insert_organization(&org).await.unwrap());
    for (id, token, org, role) in [
        ("tok_b_admin", "lst_b_admin", "org_b", "admin"),
        ("tok_lm", "lst_lm", OPERATOR_ORGANIZATION, "license_manager"),
    ] {
        let hash = secrets::sha256_hex(token.as_bytes());
        db.insert_api_token(id, org, &hash, role, "test", 0)
            .await
            .unwrap();
    }
    ("lst_b_admin", "lst_lm")
}

fn lines(body: &[u8]) -> Vec<String> {
    String::from_utf8(body.to_vec())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn cef_export_escapes_pages_and_stays_in_its_tenant() {
    cef_on(None).await;
    if let Some(url) = postgres::fresh_database("cef_export_escapes_pages") {
        cef_on(Some(&url)).await;
    }
}

async fn cef_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    let (admin_b, manager) = setup_tokens(&state).await;
    let (_key, license_id) = license(&state, json!({ "model": "perpetual" })).await;
    let (status, _) = call(
        &state,
        "POST",
        "/v1/products",
        Some(admin_b),
        Some(json!({ "id": "b.p", "name": "B" })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    // A client event with every character CEF escapes, in the detail, target and subject.
    state.audit().record_event(
        AuditEvent::new(
            OPERATOR_ORGANIZATION,
            "system:test",
            action::LEASE_DENIED,
            "t|a=b\\c",
        )
        .license(&license_id)
        .detail("x=1\ny\\z|w")
        .subject("Ann = O'Hara \\ |"),
    );
    state.audit().flush().await;

    let (status, headers, body) = raw(&state, "GET", "/v1/audit/cef", ADMIN).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
    let disposition = headers["content-disposition"].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"audit-org_operator-"),
        "{disposition}"
    );
    assert!(headers.get("licensing-truncated").is_none());
    let all = lines(&body);
    // Three admin entries (product, policy, license) and the event; none of org_b's.
    assert_eq!(all.len(), 4, "{all:#?}");
    assert!(
        all.iter()
            .all(|l| l.starts_with("CEF:0|licensing|licensing-server|"))
    );
    assert!(
        all.iter()
            .all(|l| !l.contains("org_b") && !l.contains("b.p"))
    );
    let denied = all.iter().find(|l| l.contains("lease.denied")).unwrap();
    assert!(denied.contains("|lease.denied|Seat denied|5|"), "{denied}");
    assert!(denied.ends_with(" cs6=x\\=1\\ny\\\\z|w"), "{denied}");
    assert!(denied.contains(" cs3=t|a\\=b\\\\c "), "{denied}");
    assert!(denied.contains(" duser=Ann \\= O'Hara \\\\ | "), "{denied}");
    assert!(denied.contains(" outcome=failure "), "{denied}");
    // Without the events; an empty period; a reversed one.
    let (_, _, body) = raw(&state, "GET", "/v1/audit/cef?events=false", ADMIN).await;
    assert_eq!(lines(&body).len(), 3);
    let (_, _, body) = raw(&state, "GET", "/v1/audit/cef?from=0&to=1", AUDITOR).await;
    assert!(body.is_empty());
    let (status, _, _) = raw(&state, "GET", "/v1/audit/cef?from=5&to=1", ADMIN).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // The feed: one line at a time, the cursor in the header, then nothing new.
    let (status, headers, body) = raw(&state, "GET", "/v1/audit/cef/feed?limit=1", AUDITOR).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(lines(&body).len(), 1);
    assert!(lines(&body)[0].contains("externalId=1 "));
    assert_eq!(headers["licensing-next-after"], "1");
    let (_, headers, body) = raw(&state, "GET", "/v1/audit/cef/feed?after=1", AUDITOR).await;
    assert_eq!(lines(&body).len(), 2);
    assert_eq!(headers["licensing-next-after"], "3");
    let (_, headers, body) = raw(&state, "GET", "/v1/audit/cef/feed?after=3", AUDITOR).await;
    assert!(body.is_empty());
    assert_eq!(headers["licensing-next-after"], "3");
    let (_, headers, body) = raw(
        &state,
        "GET",
        "/v1/audit/cef/feed?chain=audit_events",
        AUDITOR,
    )
    .await;
    assert_eq!(lines(&body).len(), 1);
    assert_eq!(headers["licensing-next-after"], "1");
    for bad in ["chain=x", "limit=0", "after=-1"] {
        let (status, _, _) = raw(&state, "GET", &format!("/v1/audit/cef/feed?{bad}"), ADMIN).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    // Another tenant reads its own line only; a license manager may not export.
    let (_, _, body) = raw(&state, "GET", "/v1/audit/cef", admin_b).await;
    let b_lines = lines(&body);
    assert_eq!(b_lines.len(), 1);
    assert!(b_lines[0].contains("cs1=org_b "));
    for path in [
        "/v1/audit/cef",
        "/v1/audit/cef/feed",
        "/v1/audit/checkpoints",
        "/v1/audit/package",
    ] {
        let (status, _, _) = raw(&state, "GET", path, manager).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
    }
}

/// The store of the server's published keys.
fn published(state: &AppState) -> TrustStore {
    TrustStore::from_document(&state.jwks().to_string()).unwrap()
}

#[tokio::test]
async fn checkpoints_are_signed_published_per_tenant_and_forgeries_refused() {
    checkpoints_on(None).await;
    if let Some(url) = postgres::fresh_database("checkpoints_are_signed_published") {
        checkpoints_on(Some(&url)).await;
    }
}

async fn checkpoints_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    let (admin_b, manager) = setup_tokens(&state).await;
    license(&state, json!({ "model": "perpetual" })).await;
    let (status, _) = call(
        &state,
        "POST",
        "/v1/products",
        Some(admin_b),
        Some(json!({ "id": "b.p", "name": "B" })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    // The operator's admin: the server's checkpoint and its organization's.
    let (status, run) = call(&state, "POST", "/v1/audit/checkpoints", Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    let made = run["checkpoints"].as_array().unwrap();
    assert_eq!(made.len(), 2, "{run}");
    let store = published(&state);
    let (_, server) = verify_audit_checkpoint(made[0]["token"].as_str().unwrap(), &store).unwrap();
    assert_eq!(server.scope, "server");
    assert_eq!(server.seq, 4);
    assert_eq!(server.events_seq, Some(0));
    let (_, own) = verify_audit_checkpoint(made[1]["token"].as_str().unwrap(), &store).unwrap();
    assert_eq!(own.org.as_deref(), Some(OPERATOR_ORGANIZATION));
    assert_eq!((own.seq, own.prev_seq, own.entries), (3, Some(0), Some(3)));
    assert_eq!(own.hash, made[1]["hash"]);

    // B's admin signs B's only, and lists B's only; the operator never sees B's.
    let (status, run) = call(&state, "POST", "/v1/audit/checkpoints", Some(admin_b), None).await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    let made = run["checkpoints"].as_array().unwrap();
    assert_eq!(made.len(), 1, "{run}");
    assert_eq!(made[0]["organization_id"], "org_b");
    let (_, listed) = call(&state, "GET", "/v1/audit/checkpoints", Some(admin_b), None).await;
    let listed = listed["checkpoints"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["organization_id"], "org_b");
    let (_, listed) = call(&state, "GET", "/v1/audit/checkpoints", Some(AUDITOR), None).await;
    let orgs: Vec<&Value> = listed["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["organization_id"])
        .collect();
    assert_eq!(orgs, [&Value::Null, &json!(OPERATOR_ORGANIZATION)]);
    // A license manager or an auditor (read-only) may not sign one.
    for token in [manager, AUDITOR] {
        let (status, _) = call(&state, "POST", "/v1/audit/checkpoints", Some(token), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    // The POSTs' own entries are the next checkpoint's.
    let (status, run) = call(&state, "POST", "/v1/audit/checkpoints", Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    let (_, next) =
        verify_audit_checkpoint(run["checkpoints"][1]["token"].as_str().unwrap(), &store).unwrap();
    assert_eq!(next.prev_seq, Some(3));
    assert_eq!(next.prev_digest, own.digest);

    // Nothing new since: the last ones are answered, not signed again.
    state.audit().flush().await;
    let all = checkpoints::run_once(&state, Scope::Everything, now())
        .await
        .unwrap();
    let again = checkpoints::run_once(&state, Scope::Everything, now())
        .await
        .unwrap();
    assert!(all.iter().any(|c| c.created));
    assert!(again.iter().all(|c| !c.created), "{again:?}");
    assert_eq!(again.len(), 3, "server, operator and org_b: {again:?}");

    // Forgeries: another key, an altered claim, another type, alg none.
    let other = PrivateKey::generate().unwrap();
    let token = issue(&own, &other);
    assert!(verify_audit_checkpoint(&token, &store).is_err());
    let mut altered = own.clone();
    altered.seq = 2;
    let genuine = issue(&own, &state.key());
    let forged = swap_payload(&genuine, &altered);
    assert!(verify_audit_checkpoint(&forged, &store).is_err());
    let payload = serde_json::to_vec(&own).unwrap();
    let typed = licensing_core::sign_raw("lease+jwt", &state.key(), None, &payload);
    assert!(verify_audit_checkpoint(&typed, &store).is_err());
    let none = licensing_core::sign_raw(
        "audit-checkpoint+jwt",
        &state.key(),
        Some(r#"{"alg":"none","kid":"x","typ":"audit-checkpoint+jwt"}"#),
        &payload,
    );
    assert!(verify_audit_checkpoint(&none, &store).is_err());
}

fn issue(claims: &AuditCheckpointClaims, key: &PrivateKey) -> String {
    licensing_core::audit_checkpoint::issue_audit_checkpoint(claims, key).unwrap()
}

/// `token` with its payload replaced by `claims` (its header and signature kept).
fn swap_payload(token: &str, claims: &AuditCheckpointClaims) -> String {
    let other = PrivateKey::generate().unwrap();
    let payload = serde_json::to_vec(claims).unwrap();
    let resigned = licensing_core::sign_raw("audit-checkpoint+jwt", &other, None, &payload);
    let parts: Vec<&str> = token.split('.').collect();
    let payload = resigned.split('.').nth(1).unwrap();
    format!("{}.{payload}.{}", parts[0], parts[2])
}

/// The members of a zip, by name.
fn unzip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    (0..archive.len())
        .map(|i| {
            let mut file = archive.by_index(i).unwrap();
            let mut body = Vec::new();
            file.read_to_end(&mut body).unwrap();
            (file.name().unwrap().into_owned(), body)
        })
        .collect()
}

fn rezip(members: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, body) in members {
        zip.start_file(name.as_str(), options).unwrap();
        zip.write_all(body).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// The package with member `name` changed by `edit` (its text).
fn edited(bytes: &[u8], name: &str, edit: impl Fn(String) -> String) -> Vec<u8> {
    let members: Vec<(String, Vec<u8>)> = unzip(bytes)
        .into_iter()
        .map(|(n, body)| {
            if n == name {
                let text = edit(String::from_utf8(body).unwrap());
                (n, text.into_bytes())
            } else {
                (n, body)
            }
        })
        .collect();
    rezip(&members)
}

fn failures(report: &Value) -> String {
    assert_eq!(report["ok"], false, "{report:#}");
    report["failures"].to_string()
}

#[tokio::test]
async fn a_genuine_package_verifies_and_each_tampering_fails_for_its_reason() {
    package_on(None).await;
    if let Some(url) = postgres::fresh_database("a_genuine_package_verifies") {
        package_on(Some(&url)).await;
    }
}

async fn package_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    let (admin_b, manager) = setup_tokens(&state).await;
    let (_key, license_id) = license(&state, json!({ "model": "perpetual" })).await;
    for action in ["suspend", "reinstate"] {
        let (status, body) = call(
            &state,
            "POST",
            &format!("/v1/licenses/{license_id}/{action}"),
            Some(ADMIN),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, _) = call(
        &state,
        "POST",
        "/v1/products",
        Some(admin_b),
        Some(json!({ "id": "b.p", "name": "B" })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    checkpoints::run_once(&state, Scope::Everything, now())
        .await
        .unwrap();

    let (status, headers, bytes) = raw(&state, "GET", "/v1/audit/package", AUDITOR).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/zip");
    let names: Vec<String> = unzip(&bytes).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, package::MEMBERS);
    let files: std::collections::BTreeMap<String, Vec<u8>> = unzip(&bytes).into_iter().collect();
    let licenses: Value = serde_json::from_slice(&files["licenses.json"]).unwrap();
    assert_eq!(licenses["licenses"][0]["id"], license_id.as_str());
    assert!(licenses["licenses"][0]["terms"].is_object());
    // An auditor's package withholds the license tokens (as GET /v1/licenses does); an
    // admin's holds them.
    assert_eq!(licenses["licenses"][0]["token"], Value::Null);
    assert_eq!(licenses["licenses"][0]["token_withheld"], true);
    let (_, _, admins) = raw(&state, "GET", "/v1/audit/package", ADMIN).await;
    let admins: std::collections::BTreeMap<String, Vec<u8>> = unzip(&admins).into_iter().collect();
    let licenses: Value = serde_json::from_slice(&admins["licenses.json"]).unwrap();
    assert!(licenses["licenses"][0]["token"].is_string(), "{licenses}");
    let compliance: Value = serde_json::from_slice(&files["compliance.json"]).unwrap();
    assert!(compliance["alerts"].is_array());
    assert!(String::from_utf8_lossy(&files["README.txt"]).contains("audit verify-package"));

    let report = package::verify(&bytes, None, true).unwrap();
    assert_eq!(report["ok"], true, "{report:#}");
    assert_eq!(report["entries"], 5);
    assert_eq!(report["covered"], true);
    // The same against the server's published keys given from outside.
    let report = package::verify(&bytes, Some(&published(&state)), true).unwrap();
    assert_eq!(report["ok"], true, "{report:#}");

    // One entry altered, its hash left: the entry is named as altered.
    let altered = edited(&bytes, "entries.jsonl", |t| {
        t.replacen("/suspend\"", "/revoke\"", 1)
    });
    let why = failures(&package::verify(&altered, None, false).unwrap());
    assert!(
        why.contains("entry 4: its hash does not match its columns (altered)"),
        "{why}"
    );
    // Altered with its hash recomputed (and the next entry's link): the checkpoint's digest.
    let rehashed = edited(&bytes, "entries.jsonl", |t| {
        let mut out = String::new();
        let mut prev: Option<String> = None;
        for line in t.lines() {
            let mut e: Value = serde_json::from_str(line).unwrap();
            if e["seq"] == 4 {
                e["action"] = json!("POST /v1/licenses/{id}/revoke");
                e["target"] = json!(e["target"].as_str().unwrap().replace("suspend", "revoke"));
            }
            if let Some(prev) = &prev {
                e["prev_hash"] = json!(prev);
            }
            let hash = db::entry_hash(
                e["seq"].as_i64().unwrap(),
                e["at"].as_i64().unwrap(),
                e["organization_id"].as_str(),
                e["actor"].as_str().unwrap(),
                e["action"].as_str().unwrap(),
                e["target"].as_str().unwrap(),
                e["status"].as_i64().unwrap(),
                e["prev_hash"].as_str().unwrap(),
            );
            e["hash"] = json!(hash);
            prev = Some(hash);
            out.push_str(&format!("{e}\n"));
        }
        out
    });
    let why = failures(&package::verify(&rehashed, None, false).unwrap());
    assert!(why.contains("do not match the digest it signed"), "{why}");
    assert!(!why.contains("altered)"), "{why}");
    // One entry removed.
    let removed = edited(&bytes, "entries.jsonl", |t| {
        t.lines()
            .filter(|l| !l.contains("\"seq\":2,"))
            .map(|l| format!("{l}\n"))
            .collect()
    });
    let why = failures(&package::verify(&removed, None, false).unwrap());
    assert!(why.contains("(4 in the package, 5 signed)"), "{why}");
    // A checkpoint altered (its seq, the signature kept).
    let (_, own) = verify_audit_checkpoint(
        serde_json::from_str::<Value>(
            String::from_utf8_lossy(&files["checkpoints.jsonl"])
                .lines()
                .next()
                .unwrap(),
        )
        .unwrap()["token"]
            .as_str()
            .unwrap(),
        &published(&state),
    )
    .unwrap();
    let forged_checkpoint = edited(&bytes, "checkpoints.jsonl", |t| {
        let mut c: Value = serde_json::from_str(t.lines().next().unwrap()).unwrap();
        let mut claims = own.clone();
        claims.seq = 4;
        c["token"] = json!(swap_payload(c["token"].as_str().unwrap(), &claims));
        format!("{c}\n")
    });
    let why = failures(&package::verify(&forged_checkpoint, None, false).unwrap());
    assert!(why.contains("refused (signature_invalid)"), "{why}");
    // A swapped JWKS: the checkpoint was signed by no key of it.
    let mut other = TrustStore::new();
    other
        .add(PrivateKey::generate().unwrap().public_key().clone())
        .unwrap();
    let swapped = edited(&bytes, "jwks.json", |_| other.to_jwks().to_string());
    let why = failures(&package::verify(&swapped, None, false).unwrap());
    assert!(why.contains("refused (unknown_key)"), "{why}");
    // The genuine package against that other key from outside: refused too.
    let why = failures(&package::verify(&bytes, Some(&other), false).unwrap());
    assert!(why.contains("refused (unknown_key)"), "{why}");
    // A path in the zip, a zip bomb, not a zip.
    let mut members = unzip(&bytes);
    members.push(("../../etc/cron.d/x".into(), b"x".to_vec()));
    members.remove(0);
    let why = failures(&package::verify(&rezip(&members), None, false).unwrap());
    assert!(
        why.contains("unexpected member `../../etc/cron.d/x`"),
        "{why}"
    );
    let bomb = edited(&bytes, "README.txt", |_| "0".repeat(200_000));
    let caps = package::Caps {
        member: 100_000,
        total: 1_000_000,
    };
    let why = failures(&package::verify_capped(&bomb, None, false, caps).unwrap());
    assert!(why.contains("README.txt"), "{why}");
    assert!(package::verify(b"not a zip", None, false).is_err());

    // Entries after the last checkpoint are reported as uncovered.
    let (status, _) = call(
        &state,
        "POST",
        &format!("/v1/licenses/{license_id}/suspend"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, _, later) = raw(&state, "GET", "/v1/audit/package", ADMIN).await;
    let report = package::verify(&later, None, false).unwrap();
    assert_eq!(report["ok"], true, "{report:#}");
    assert_eq!(report["covered"], false);
    assert_eq!(report["uncovered"]["seqs"], json!([7]));
    assert_eq!(package::verify(&later, None, true).unwrap()["ok"], false);

    // Another tenant's package holds its own entries only; a license manager gets none.
    let (_, _, b_bytes) = raw(&state, "GET", "/v1/audit/package", admin_b).await;
    let report = package::verify(&b_bytes, None, true).unwrap();
    assert_eq!(report["ok"], true, "{report:#}");
    assert_eq!(report["organization"], "org_b");
    assert_eq!(report["entries"], 1);
    let (status, _, _) = raw(&state, "GET", "/v1/audit/package", manager).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = raw(&state, "GET", "/v1/audit/package?from=9&to=1", ADMIN).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn new_entries_reach_a_syslog_collector_as_rfc_5424_with_their_cef_line() {
    let (_dir, state) = app().await;
    license(&state, json!({ "model": "perpetual" })).await;
    let collector = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let target = crate::server::syslog::SyslogTarget::Udp(collector.local_addr().unwrap());
    // Started after the three entries written so far (as `serve` starts at the heads): the
    // next ones are sent, these are not.
    assert_eq!(state.db().audit_heads().await.unwrap(), (3, 0));
    let task = crate::server::syslog::spawn_syslog(
        state.db().clone(),
        target,
        std::time::Duration::from_millis(20),
        Some((3, 0)),
    );
    let (status, _) = call(
        &state,
        "POST",
        "/v1/products",
        Some(ADMIN),
        Some(json!({ "id": "q", "name": "Q" })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    state.audit().record_event(
        AuditEvent::new(
            OPERATOR_ORGANIZATION,
            "system:test",
            action::LEASE_DENIED,
            "t=1",
        )
        .detail("no_seats"),
    );
    state.audit().flush().await;
    let mut buffer = vec![0u8; 65_536];
    let mut received = Vec::new();
    while received.len() < 2 {
        let (n, _) = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            collector.recv_from(&mut buffer),
        )
        .await
        .expect("a syslog message within 10 s")
        .unwrap();
        received.push(String::from_utf8(buffer[..n].to_vec()).unwrap());
    }
    task.abort();
    let admin = &received[0];
    assert!(admin.starts_with("<110>1 "), "{admin}");
    assert!(
        admin.contains(" - licensing-server - audit - CEF:0|licensing|licensing-server|"),
        "{admin}"
    );
    assert!(admin.contains("externalId=4 "), "{admin}");
    let event = &received[1];
    assert!(event.starts_with("<109>1 "), "{event}");
    assert!(event.contains(" - event - CEF:0|"), "{event}");
    assert!(event.contains("cs3=t\\=1 "), "{event}");
}
