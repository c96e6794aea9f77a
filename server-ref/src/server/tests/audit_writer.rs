//! The audit writer: an entry handed over is written even when the request that handed it over
//! is dropped at once (a client that disconnects, a request past its deadline).

use std::future::Future as _;

use super::*;
use crate::server::db::NewAuditEntry;

#[tokio::test]
async fn an_entry_handed_over_is_written_when_its_request_is_dropped() {
    let (_dir, state) = app().await;
    let entry = |target: &str| NewAuditEntry {
        at: now(),
        organization_id: Some(OPERATOR_ORGANIZATION.to_owned()),
        actor: "tok_test".to_owned(),
        action: "POST /v1/products".to_owned(),
        target: target.to_owned(),
        status: 201,
    };
    // Polled once (the hand-over), then dropped before the entry is written.
    {
        let mut append = std::pin::pin!(state.audit().append(entry("/dropped")));
        let pending = std::future::poll_fn(|cx| {
            std::task::Poll::Ready(append.as_mut().poll(cx).is_pending())
        })
        .await;
        assert!(pending, "written within one poll: the test proves nothing");
    }
    // Awaited to the end.
    state.audit().append(entry("/awaited")).await;
    let mut targets = Vec::new();
    for _ in 0..100 {
        targets = state
            .db()
            .list_audit(OPERATOR_ORGANIZATION, 0, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.target)
            .collect();
        if targets.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(targets, ["/dropped", "/awaited"]);
    assert!(matches!(
        state.db().verify_audit().await.unwrap(),
        crate::server::db::ChainCheck::Intact { entries: 2, .. }
    ));
}
