//! The namespace reflector against the in-process fake API server (there is
//! no kube-apiserver here; the fake speaks the real list + watch protocol,
//! including `410 Gone` and dropped connections).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;
use tollgate_cluster::{NamespaceReflector, NamespaceSettings};
use tollgate_policies::NamespaceSource;
use tollgate_testkit::FakeApiServer;

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn ns(name: &str, labels: serde_json::Value, annotations: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Namespace",
           "metadata": {"name": name, "labels": labels, "annotations": annotations}})
}

#[tokio::test]
async fn follows_adds_changes_deletes_and_relists_after_410() {
    let server = FakeApiServer::start().await.unwrap();
    server
        .apply(ns(
            "team-a",
            json!({"pss.tollgate.dev/enforce": "baseline"}),
            json!({"deployscope.dev/owner": "team-a", "kubectl.kubernetes.io/last-applied-configuration": "x".repeat(10_000)}),
        ))
        .unwrap();
    let (reflector, task) =
        NamespaceReflector::spawn(server.client().await.unwrap(), NamespaceSettings::default());
    assert!(!reflector.is_ready() || reflector.namespace("team-a").is_some());
    tokio::time::timeout(Duration::from_secs(10), reflector.wait_ready())
        .await
        .unwrap();
    let a = reflector.namespace("team-a").unwrap();
    assert_eq!(a.labels["pss.tollgate.dev/enforce"], "baseline");
    assert_eq!(a.labels["kubernetes.io/metadata.name"], "team-a");
    assert_eq!(
        a.annotations.len(),
        1,
        "only policy annotations are kept: {:?}",
        a.annotations
    );
    assert!(reflector.namespace("default").is_some());

    // Add, modify, delete through the watch.
    server.apply(ns("team-b", json!({}), json!({}))).unwrap();
    eventually("team-b added", || reflector.namespace("team-b").is_some()).await;
    server
        .apply(ns(
            "team-a",
            json!({"pss.tollgate.dev/enforce": "restricted"}),
            json!({}),
        ))
        .unwrap();
    eventually("team-a modified", || {
        reflector.namespace("team-a").unwrap().labels["pss.tollgate.dev/enforce"] == "restricted"
    })
    .await;
    assert!(server.delete("v1", "Namespace", "", "team-b"));
    eventually("team-b deleted", || reflector.namespace("team-b").is_none()).await;

    // Dropped connections: the watcher resumes without a relist.
    let lists = reflector.stats().lists.load(Ordering::SeqCst);
    let watches = server.watches_started();
    server.drop_watches();
    eventually("watch resumed", || {
        server.watches_started() > watches && server.active_watches() > 0
    })
    .await;
    server.apply(ns("team-c", json!({}), json!({}))).unwrap();
    eventually("team-c added after reconnect", || {
        reflector.namespace("team-c").is_some()
    })
    .await;
    assert_eq!(
        reflector.stats().lists.load(Ordering::SeqCst),
        lists,
        "a resume is not a relist"
    );

    // Expired history: changes made while the watch is down include a
    // delete the watch can no longer replay; the relist removes it.
    server.inject(tollgate_testkit::Fault {
        method: None,
        path_contains: "/api/v1/namespaces".into(),
        query_contains: "watch=true".into(),
        code: 503,
        times: 1,
    });
    server.expire_watches();
    assert!(server.delete("v1", "Namespace", "", "team-c"));
    server
        .apply(ns("team-d", json!({"x": "y"}), json!({})))
        .unwrap();
    eventually("relisted", || {
        reflector.stats().lists.load(Ordering::SeqCst) > lists
    })
    .await;
    eventually("relist state", || {
        reflector.namespace("team-c").is_none() && reflector.namespace("team-d").is_some()
    })
    .await;
    assert!(reflector.stats().errors.load(Ordering::SeqCst) >= 1);
    task.abort();
}
