//! Inactivity reclamation (issue 22): the idle rule at its edge with an injected clock, the
//! preview against the run, the background job's statement on its index, two replicas running
//! at once, and the admin routes under the roles and tenant isolation.

use super::*;
use crate::server::db::reclamation::Scope;
use crate::server::reclamation::{self, MIN_RECLAIM_AFTER};

const DAY: i64 = 86_400;

/// Seat ids of a preview or a run, sorted.
fn ids(seats: &[(db::reclamation::IdleCandidate, reclamation::Idle)]) -> Vec<String> {
    let mut ids: Vec<String> = seats.iter().map(|(seat, _)| seat.id.clone()).collect();
    ids.sort();
    ids
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// The entries `seat.reclaimed` of the operator organization's trail.
async fn reclaimed_entries(state: &AppState, token: &str) -> Vec<Value> {
    let (status, list) = call(state, "GET", "/v1/audit?limit=1000", Some(token), None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "seat.reclaimed")
        .cloned()
        .collect()
}

/// A seat is kept one second before its threshold and reclaimed at it, whatever its last use
/// was (a recorded use, a lease, its device, its assignment); a user with a live lease and a
/// department are never reclaimed; the preview lists exactly what the run then reclaims; a
/// license without its own threshold uses its policy's, and one with neither is left alone.
#[tokio::test]
async fn reclamation_at_the_threshold_edge() {
    edge_on(None).await;
    if let Some(url) = postgres::fresh_database("reclamation_at_the_threshold_edge") {
        edge_on(Some(&url)).await;
    }
}

async fn edge_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    let db = state.db();
    let org = OPERATOR_ORGANIZATION;
    let (_, lic) = license(&state, json!({ "model": "floating", "seats": 10 })).await;
    let threshold = 2 * DAY;
    let (status, body) = call(
        &state,
        "PUT",
        &format!("/v1/licenses/{lic}/reclamation"),
        Some(ADMIN),
        Some(json!({ "reclaim_after": threshold })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["effective_reclaim_after"], threshold);
    // A device: a machine of a node-locked license, with its own threshold.
    let (key, node) = license(&state, json!({ "model": "node_locked", "max_machines": 3 })).await;
    let activate = json!({ "license_key": key, "fingerprint": { "id": "box-a" } });
    let (status, body) = call(&state, "POST", "/v1/client/activate", None, Some(activate)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let machine = db.list_machines(&node).await.unwrap()[0].id.clone();
    assert!(
        db.set_license_reclaim_after(org, &node, Some(threshold), 0)
            .await
            .unwrap()
    );
    // The policy's threshold, and none at all.
    let (_, by_policy) = license(&state, json!({ "model": "floating", "seats": 2 })).await;
    db.set_policy_reclaim_after_for_tests(&by_policy, Some(3 * DAY))
        .await;
    let (_, never) = license(&state, json!({ "model": "floating", "seats": 2 })).await;

    // Times around a real "now" so that the alerts (on the server's clock) show the run.
    let t0 = now() - 20 * DAY;
    let used = t0 + 100;
    db.insert_user_for_tests("usr_alice", org, "Alice").await;
    let assign = |id: &'static str, license: String, kind: &'static str, who: String, at, last| {
        let db = db.clone();
        async move {
            db.insert_assignment_for_tests(id, org, &license, kind, &who, at, last)
                .await
        }
    };
    // Used through the seat (last_used_at) at `used`.
    assign(
        "asg_a",
        lic.clone(),
        "user",
        "usr_alice".into(),
        t0,
        Some(used),
    )
    .await;
    // Assigned at `used`, never used since.
    assign("asg_b", lic.clone(), "user", "usr_bob".into(), used, None).await;
    // Used through a lease: checked out earlier, its last heartbeat at `used`, lapsed since.
    assign("asg_c", lic.clone(), "user", "usr_carol".into(), t0, None).await;
    db.insert_lease_for_tests("lse_c", &lic, "usr_carol", t0 + 1, used, used + 900, None)
        .await;
    // A device last validated at `used` (its user's machine too, for nobody).
    assign("asg_d", node.clone(), "device", machine.clone(), t0, None).await;
    db.set_machine_for_tests(&machine, None, used).await;
    // A user holding a live lease (borrowed: no heartbeat for weeks) is kept.
    assign(
        "asg_e",
        lic.clone(),
        "user",
        "usr_dave".into(),
        t0,
        Some(t0),
    )
    .await;
    db.insert_lease_for_tests("lse_e", &lic, "usr_dave", t0, t0, now() + 30 * DAY, None)
        .await;
    // A department is a quota: kept.
    assign("asg_f", lic.clone(), "department", "dep_x".into(), t0, None).await;
    // The policy's threshold (3 days), and no threshold.
    assign(
        "asg_g",
        by_policy.clone(),
        "user",
        "usr_erin".into(),
        used,
        None,
    )
    .await;
    assign("asg_h", never.clone(), "user", "usr_frank".into(), t0, None).await;

    let edge = used + threshold;
    // One second before the threshold: nothing to preview, nothing reclaimed.
    let (seats, truncated) = reclamation::preview(db, Scope::All, edge - 1, 100)
        .await
        .unwrap();
    assert_eq!((ids(&seats), truncated), (vec![], false));
    assert!(
        reclamation::reclaim(&state, Scope::All, edge - 1)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(db.assignment_state_for_tests("asg_a").await.0, "active");

    // At the threshold: the preview names each seat, its last use and why.
    let (seats, _) = reclamation::preview(db, Scope::All, edge, 100)
        .await
        .unwrap();
    assert_eq!(ids(&seats), strings(&["asg_a", "asg_b", "asg_c", "asg_d"]));
    let why: Vec<_> = seats
        .iter()
        .map(|(seat, idle)| {
            (
                seat.id.as_str(),
                idle.last_use,
                idle.last_used_at,
                idle.idle_for,
                idle.reclaim_after,
            )
        })
        .collect();
    use reclamation::UseSource::*;
    assert_eq!(
        why,
        vec![
            ("asg_a", SeatUse, used, threshold, threshold),
            ("asg_b", Assigned, used, threshold, threshold),
            ("asg_c", Lease, used, threshold, threshold),
            ("asg_d", Machine, used, threshold, threshold),
        ]
    );
    assert_eq!(seats[0].0.assignee_name.as_deref(), Some("Alice"));
    assert_eq!(seats[3].0.assignee_name.as_deref(), Some("box-a"));
    // A preview changes nothing.
    assert_eq!(db.assignment_state_for_tests("asg_a").await.0, "active");

    // The run reclaims exactly what the preview listed.
    let run = reclamation::reclaim(&state, Scope::All, edge)
        .await
        .unwrap();
    assert_eq!(ids(&run), ids(&seats));
    for id in ["asg_a", "asg_b", "asg_c", "asg_d"] {
        assert_eq!(
            db.assignment_state_for_tests(id).await,
            ("reclaimed".into(), Some("inactive".into()), Some(edge)),
            "{id}"
        );
    }
    for id in ["asg_e", "asg_f", "asg_g", "asg_h"] {
        assert_eq!(db.assignment_state_for_tests(id).await.0, "active", "{id}");
    }
    // Each reclamation is in the audit trail once, naming the license and the assignment.
    let entries = reclaimed_entries(&state, AUDITOR).await;
    assert_eq!(entries.len(), 4, "{entries:#?}");
    assert!(
        entries.iter().any(
            |e| e["target"] == format!("/v1/licenses/{lic}/assignments/asg_a")
                && e["actor"] == "reclamation"
                && e["at"] == edge
        ),
        "{entries:#?}"
    );
    let (_, verified) = call(&state, "GET", "/v1/audit/verify", Some(ADMIN), None).await;
    assert_eq!(verified["ok"], true, "{verified}");
    // And in the compliance alerts.
    let (_, report) = call(&state, "GET", "/v1/alerts", Some(AUDITOR), None).await;
    let reclaimed: Vec<&Value> = report["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "seat_reclaimed")
        .collect();
    assert_eq!(reclaimed.len(), 2, "{report}");
    let of = |license: &str| {
        reclaimed
            .iter()
            .find(|a| a["license_id"] == license)
            .map(|a| (a["count"].clone(), a["at"].clone()))
    };
    assert_eq!(of(&lic), Some((json!(3), json!(edge))), "{report}");
    assert_eq!(of(&node), Some((json!(1), json!(edge))), "{report}");

    // A second run finds nothing more.
    assert!(
        reclamation::reclaim(&state, Scope::All, edge)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(reclaimed_entries(&state, AUDITOR).await.len(), 4);

    // The policy's threshold applies at its own edge; a license with none never loses a seat.
    let policy_edge = used + 3 * DAY;
    let (seats, _) = reclamation::preview(db, Scope::All, policy_edge - 1, 100)
        .await
        .unwrap();
    assert!(seats.is_empty(), "{:?}", ids(&seats));
    let run = reclamation::reclaim(&state, Scope::All, policy_edge)
        .await
        .unwrap();
    assert_eq!(ids(&run), strings(&["asg_g"]));
    assert_eq!(
        run[0].1.reclaim_after_from,
        reclamation::ThresholdFrom::Policy
    );
    let far = now() + 3 * 365 * DAY;
    assert!(
        reclamation::reclaim(&state, Scope::All, far)
            .await
            .unwrap()
            .iter()
            .all(|(seat, _)| seat.id != "asg_h" && seat.id != "asg_f")
    );
    assert_eq!(db.assignment_state_for_tests("asg_h").await.0, "active");
    assert_eq!(db.assignment_state_for_tests("asg_f").await.0, "active");
}

/// Two replicas running the job at once on one database reclaim each idle seat once and
/// record it once.
#[tokio::test]
async fn two_concurrent_runs_reclaim_once() {
    concurrent_on(None).await;
    if let Some(url) = postgres::fresh_database("two_concurrent_runs_reclaim_once") {
        concurrent_on(Some(&url)).await;
    }
}

async fn concurrent_on(url: Option<&str>) {
    let (dir, state) = app_on(url).await;
    // The second replica: its own pool, seat writer and audit writer on the same database.
    let other_db = match url {
        None => Db::open_sqlite_file(&dir.path().join("test.db")).await,
        Some(url) => Db::open(url).await,
    }
    .unwrap();
    let other = AppState::new(other_db, "test".into(), 1_000_000)
        .await
        .unwrap();
    let t0 = 1_700_000_000;
    let mut expected = Vec::new();
    for l in 0..3 {
        let (_, lic) = license(&state, json!({ "model": "floating", "seats": 50 })).await;
        state
            .db()
            .set_license_reclaim_after(OPERATOR_ORGANIZATION, &lic, Some(MIN_RECLAIM_AFTER), 0)
            .await
            .unwrap();
        for i in 0..15 {
            let id = format!("asg_{l}_{i:02}");
            state
                .db()
                .insert_assignment_for_tests(
                    &id,
                    OPERATOR_ORGANIZATION,
                    &lic,
                    "user",
                    &format!("usr_{l}_{i}"),
                    t0,
                    Some(t0 + i),
                )
                .await;
            expected.push(id);
        }
    }
    expected.sort();
    let at = t0 + 100 + MIN_RECLAIM_AFTER;
    let (a, b) = tokio::join!(
        reclamation::reclaim(&state, Scope::All, at),
        reclamation::reclaim(&other, Scope::All, at)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let mut all = ids(&a);
    all.extend(ids(&b));
    all.sort();
    assert_eq!(all, expected, "each seat reclaimed exactly once");
    assert_eq!(
        reclaimed_entries(&state, ADMIN).await.len(),
        expected.len(),
        "each reclamation recorded once"
    );
    other.db().close().await;
}

/// The job's statement reads the index `seat_assignments_idle` (not every assignment) on a
/// table of mostly recently used seats.
#[tokio::test]
async fn the_job_statement_reads_the_idle_index() {
    plan_on(None).await;
    if let Some(url) = postgres::fresh_database("the_job_statement_reads_the_idle_index") {
        plan_on(Some(&url)).await;
    }
}

async fn plan_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    let (_, lic) = license(&state, json!({ "model": "floating", "seats": 50 })).await;
    let now = 1_800_000_000;
    state
        .db()
        .fill_assignments_for_tests(OPERATOR_ORGANIZATION, &lic, 20_000, now - 60)
        .await;
    let plan = state.db().candidates_plan_for_tests(now).await;
    // Both branches read a range of the index: used seats up to the cut-off, never-used ones.
    let (used, never) = if url.is_some() {
        (
            "Index Cond: ((state = 'active'::text) AND (last_used_at <= ",
            "Index Cond: ((state = 'active'::text) AND (last_used_at IS NULL))",
        )
    } else {
        (
            "USING INDEX seat_assignments_idle (state=? AND last_used_at<?)",
            "USING INDEX seat_assignments_idle (state=? AND last_used_at=?)",
        )
    };
    assert!(plan.contains(used) && plan.contains(never), "{plan}");
    if url.is_some() {
        assert_eq!(
            plan.matches("Index Scan using seat_assignments_idle on seat_assignments")
                .count(),
            2,
            "{plan}"
        );
    }
    eprintln!("the job statement's plan:\n{plan}");
}

/// The routes: a license's threshold (422 out of bounds or missing), the previews (auditor and
/// IT staff read them), the run (license managers, not IT staff nor auditors), and another
/// organization sees and touches none of it (404, an empty preview).
#[tokio::test]
async fn reclamation_routes_roles_and_tenants() {
    routes_on(None).await;
    if let Some(url) = postgres::fresh_database("reclamation_routes_roles_and_tenants") {
        routes_on(Some(&url)).await;
    }
}

async fn token(state: &AppState, admin: &str, role: &str) -> String {
    let (status, t) = call(
        state,
        "POST",
        "/v1/api-tokens",
        Some(admin),
        Some(json!({ "role": role, "label": role })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    t["secret"].as_str().unwrap().to_owned()
}

async fn routes_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    let db = state.db();
    let (_, lic) = license(&state, json!({ "model": "floating", "seats": 5 })).await;
    let manager = token(&state, ADMIN, "license_manager").await;
    let it = token(&state, ADMIN, "it_staff").await;
    let settings = format!("/v1/licenses/{lic}/reclamation");
    let preview = format!("/v1/licenses/{lic}/reclamation/preview");
    let run = format!("/v1/licenses/{lic}/reclamation/run");

    // The threshold: bounds, required, null inherits the policy's.
    for (body, needle) in [
        (
            json!({ "reclaim_after": MIN_RECLAIM_AFTER - 1 }),
            "`reclaim_after`",
        ),
        (
            json!({ "reclaim_after": 3 * 365 * DAY + 1 }),
            "`reclaim_after`",
        ),
        (json!({ "reclaim_after": "30d" }), "reclaim_after"),
        (json!({}), "`reclaim_after` is required"),
        (json!({ "reclaim_after": DAY, "x": 1 }), "x"),
    ] {
        let (status, e) = call(&state, "PUT", &settings, Some(&manager), Some(body.clone())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {e}");
        assert!(
            e["detail"].as_str().unwrap().contains(needle),
            "{body}: {e}"
        );
    }
    for token in [AUDITOR, it.as_str()] {
        let body = json!({ "reclaim_after": DAY });
        let (status, _) = call(&state, "PUT", &settings, Some(token), Some(body)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    db.set_policy_reclaim_after_for_tests(&lic, Some(5 * DAY))
        .await;
    let body = json!({ "reclaim_after": null });
    let (status, got) = call(&state, "PUT", &settings, Some(&manager), Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(
        (
            got["reclaim_after"].clone(),
            got["effective_reclaim_after"].clone(),
            got["effective_from"].clone()
        ),
        (Value::Null, json!(5 * DAY), json!("policy"))
    );
    let body = json!({ "reclaim_after": DAY });
    let (status, got) = call(&state, "PUT", &settings, Some(&manager), Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    let (status, got) = call(&state, "GET", &settings, Some(AUDITOR), None).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(
        (
            got["reclaim_after"].clone(),
            got["policy_reclaim_after"].clone(),
            got["effective_reclaim_after"].clone(),
            got["effective_from"].clone()
        ),
        (json!(DAY), json!(5 * DAY), json!(DAY), json!("license"))
    );

    // Two idle seats (the server's own clock: well past the threshold) and a fresh one.
    let long_ago = now() - 10 * DAY;
    for (id, at) in [
        ("asg_1", long_ago),
        ("asg_2", long_ago + 1),
        ("asg_3", now()),
    ] {
        db.insert_assignment_for_tests(
            id,
            OPERATOR_ORGANIZATION,
            &lic,
            "user",
            &format!("usr_{id}"),
            at,
            Some(at),
        )
        .await;
    }
    for token in [AUDITOR, it.as_str(), &manager] {
        for path in [preview.as_str(), "/v1/reclamation/preview"] {
            let (status, got) = call(&state, "GET", path, Some(token), None).await;
            assert_eq!(status, StatusCode::OK, "{path}: {got}");
            let listed: Vec<&Value> = got["seats"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| &s["assignment_id"])
                .collect();
            assert_eq!(listed, vec!["asg_1", "asg_2"], "{path}: {got}");
            assert_eq!(got["seats"][0]["last_use"], "seat_use");
            assert_eq!(got["seats"][0]["reclaim_after"], DAY);
            assert_eq!(got["seats"][0]["last_used_at"], long_ago);
            assert!(got["seats"][0]["idle_for"].as_i64().unwrap() >= 10 * DAY);
            assert_eq!(got["truncated"], false);
        }
    }
    for token in [AUDITOR, it.as_str()] {
        let (status, _) = call(&state, "POST", &run, Some(token), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }

    // Another organization: nothing of this one, whatever it asks.
    let (status, created) = call(
        &state,
        "POST",
        "/v1/organizations",
        Some(ADMIN),
        Some(json!({ "name": "Contoso" })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let admin_b = created["admin_token"].as_str().unwrap().to_owned();
    for (method, path, body) in [
        ("GET", settings.as_str(), None),
        (
            "PUT",
            settings.as_str(),
            Some(json!({ "reclaim_after": 7 * DAY })),
        ),
        ("GET", preview.as_str(), None),
        ("POST", run.as_str(), None),
    ] {
        let (status, got) = call(&state, method, path, Some(&admin_b), body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {got}");
    }
    let (status, got) = call(
        &state,
        "GET",
        "/v1/reclamation/preview",
        Some(&admin_b),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["seats"], json!([]), "{got}");
    let (_, got) = call(&state, "GET", &settings, Some(AUDITOR), None).await;
    assert_eq!(
        got["reclaim_after"], DAY,
        "the other tenant changed nothing"
    );
    assert_eq!(
        db.assignment_state_for_tests("asg_1").await.0,
        "active",
        "the other tenant reclaimed nothing"
    );

    // The run reclaims what the preview listed; the request and each seat are audited.
    let (status, got) = call(&state, "POST", &run, Some(&manager), None).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    let reclaimed: Vec<&Value> = got["reclaimed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["assignment_id"])
        .collect();
    assert_eq!(reclaimed, vec!["asg_1", "asg_2"], "{got}");
    assert_eq!(db.assignment_state_for_tests("asg_3").await.0, "active");
    let (_, got) = call(&state, "GET", &preview, Some(AUDITOR), None).await;
    assert_eq!(got["seats"], json!([]), "{got}");
    assert_eq!(reclaimed_entries(&state, AUDITOR).await.len(), 2);
    let (_, list) = call(&state, "GET", "/v1/audit?limit=1000", Some(AUDITOR), None).await;
    assert!(
        list["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "POST /v1/licenses/{id}/reclamation/run"),
        "{list}"
    );
}

/// The background job runs on the clock it is given (the server's, in `serve`): started with
/// one far in the future, it reclaims an idle seat without being asked, and records it.
#[tokio::test]
async fn the_background_job_reclaims_on_its_clock() {
    fn later() -> i64 {
        2_000_000_000
    }
    let (_dir, state) = app().await;
    let (_, lic) = license(&state, json!({ "model": "floating", "seats": 5 })).await;
    let db = state.db();
    db.set_license_reclaim_after(OPERATOR_ORGANIZATION, &lic, Some(MIN_RECLAIM_AFTER), 0)
        .await
        .unwrap();
    let at = later() - MIN_RECLAIM_AFTER;
    db.insert_assignment_for_tests(
        "asg_old",
        OPERATOR_ORGANIZATION,
        &lic,
        "user",
        "u1",
        at,
        None,
    )
    .await;
    db.insert_assignment_for_tests(
        "asg_new",
        OPERATOR_ORGANIZATION,
        &lic,
        "user",
        "u2",
        at + 1,
        None,
    )
    .await;
    let job =
        reclamation::spawn_reclaimer(state.clone(), std::time::Duration::from_secs(3600), later);
    // The first run starts at once; wait for it (bounded), whatever the machine's speed.
    let mut state_of_old = String::new();
    for _ in 0..500 {
        state_of_old = db.assignment_state_for_tests("asg_old").await.0;
        if state_of_old == "reclaimed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    job.abort();
    assert_eq!(state_of_old, "reclaimed");
    assert_eq!(
        db.assignment_state_for_tests("asg_old").await,
        ("reclaimed".into(), Some("inactive".into()), Some(later()))
    );
    assert_eq!(db.assignment_state_for_tests("asg_new").await.0, "active");
    // Its audit entry is written right after the commit; wait for it too (bounded).
    let mut entries = Vec::new();
    for _ in 0..500 {
        entries = reclaimed_entries(&state, ADMIN).await;
        if !entries.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(entries.len(), 1, "{entries:#?}");
}

/// A threshold stored shorter than the API accepts (by another version's rule, or by hand)
/// still has its seats reclaimed at its own edge: the job's cut-off follows the shortest
/// stored threshold.
#[tokio::test]
async fn a_shorter_stored_threshold_still_applies() {
    shorter_on(None).await;
    if let Some(url) = postgres::fresh_database("a_shorter_stored_threshold_still_applies") {
        shorter_on(Some(&url)).await;
    }
}

async fn shorter_on(url: Option<&str>) {
    let (_dir, state) = app_on(url).await;
    let db = state.db();
    let (_, lic) = license(&state, json!({ "model": "floating", "seats": 5 })).await;
    let t0 = 1_700_000_000;
    assert!(
        reclamation::reclaim(&state, Scope::All, t0)
            .await
            .unwrap()
            .is_empty(),
        "no threshold anywhere: nothing to do"
    );
    db.set_policy_reclaim_after_for_tests(&lic, Some(3600))
        .await;
    db.insert_assignment_for_tests("asg_1", OPERATOR_ORGANIZATION, &lic, "user", "u", t0, None)
        .await;
    let (seats, _) = reclamation::preview(db, Scope::All, t0 + 3599, 10)
        .await
        .unwrap();
    assert!(seats.is_empty());
    let run = reclamation::reclaim(&state, Scope::All, t0 + 3600)
        .await
        .unwrap();
    assert_eq!(ids(&run), strings(&["asg_1"]));
}
