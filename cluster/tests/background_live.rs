//! Background audit against the in-process fake Kubernetes API server of
//! `tollgate-testkit` (there is no kube-apiserver here; the fake follows the
//! real REST protocol: lists, resource versions, 409 on stale updates,
//! AlreadyExists, NotFound). Covers listing workloads, PolicyReports
//! created, left alone when unchanged, updated, retried on conflict and
//! deleted when stale, the metrics, and the leader-only loop.

// Test helpers may panic: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};
use tollgate_cluster::background::{AuditMetrics, Background, BackgroundSettings};
use tollgate_policies::config::PolicyConfig;
use tollgate_policies::engine::{Engine, Snapshot};
use tollgate_policies::ownership::OwnershipConfig;
use tollgate_testkit::{FakeApiServer, Fault};

const REPORTS: &str = "wgpolicyk8s.io/v1alpha2";

fn crd(plural: &str, kind: &str, scope: &str) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.wgpolicyk8s.io")},
        "spec": {"group": "wgpolicyk8s.io", "scope": scope,
                 "names": {"plural": plural, "singular": kind.to_lowercase(), "kind": kind},
                 "versions": [{"name": "v1alpha2", "served": true, "storage": true}]}
    })
}

fn deployment(ns: &str, name: &str, annotations: Value, privileged: bool) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "annotations": annotations},
        "spec": {"selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "ghcr.io/acme/app:1.0",
                    "securityContext": {"privileged": privileged}}]}}}})
}

async fn setup() -> (FakeApiServer, Background) {
    let server = FakeApiServer::start().await.unwrap();
    server
        .apply(crd("policyreports", "PolicyReport", "Namespaced"))
        .unwrap();
    server
        .apply(crd(
            "clusterpolicyreports",
            "ClusterPolicyReport",
            "Cluster",
        ))
        .unwrap();
    for ns in ["team-a", "team-b"] {
        server
            .apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
            .unwrap();
    }
    let owned = json!({"deployscope.dev/owner": "team-a", "deployscope.dev/tier": "standard"});
    server
        .apply(deployment("team-a", "web", owned.clone(), false))
        .unwrap();
    server
        .apply(deployment("team-a", "priv", json!({}), true))
        .unwrap();
    server
        .apply(deployment("team-b", "api", owned, false))
        .unwrap();
    server
        .apply(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1", "namespace": "team-a",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "u", "controller": true}]},
            "spec": {"containers": [{"name": "c", "image": "ghcr.io/acme/app:1.0", "securityContext": {"privileged": true}}]}}))
        .unwrap();
    // Baseline everywhere: the privileged Deployment fails, the others pass.
    let policy: PolicyConfig = yaml_serde::from_str(
        "podSecurity:\n  enforce: {level: baseline}\n  warn: {level: baseline}\n  audit: {level: baseline}\n",
    )
    .unwrap();
    let background = Background {
        client: server.client().await.unwrap(),
        engine: Arc::new(Engine::new(Snapshot::from_config(&policy))),
        ownership: OwnershipConfig::default(),
        settings: BackgroundSettings::default(),
        metrics: Arc::new(AuditMetrics::new()),
        leader: None,
    };
    (server, background)
}

fn report(server: &FakeApiServer, ns: &str) -> Option<Value> {
    server.get(REPORTS, "PolicyReport", ns, "tollgate-audit")
}

fn writes(server: &FakeApiServer) -> Vec<(String, String)> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("wgpolicyk8s.io") && r.method != "GET")
        .map(|r| (r.method, r.path))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_created_left_alone_updated_and_deleted() {
    let (server, background) = setup().await;
    let pass = background.pass().await.unwrap();
    let written = pass.written.unwrap();
    assert_eq!(
        (written.created, written.updated, written.deleted),
        (3, 0, 0)
    );
    assert_eq!(pass.scan.controlled, 1, "the ReplicaSet's pod");

    let a = report(&server, "team-a").expect("team-a report");
    assert_eq!(
        a["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "tollgate"
    );
    assert_eq!(
        a["summary"],
        // web passes Pod Security and ownership; priv fails privileged,
        // ownership-owner and ownership-tier.
        json!({"pass": 2, "fail": 3, "warn": 0, "error": 0, "skip": 0})
    );
    let fail = a["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["result"] == "fail" && r["policy"] == "pod-security")
        .unwrap();
    assert_eq!(fail["rule"], "privileged");
    assert_eq!(fail["resources"][0]["name"], "priv");
    assert!(
        fail["properties"]["controls"]
            .as_str()
            .unwrap()
            .contains("PCI-DSS 2.2.6"),
        "{fail}"
    );
    assert_eq!(report(&server, "team-b").unwrap()["summary"]["pass"], 2);
    let cluster = server
        .get(REPORTS, "ClusterPolicyReport", "", "tollgate-audit-cluster")
        .expect("cluster report");
    assert_eq!(cluster["kind"], "ClusterPolicyReport");

    // Nothing changed: no writes, whatever the new timestamps.
    let before = writes(&server).len();
    let written = background.pass().await.unwrap().written.unwrap();
    assert_eq!(
        (written.created, written.updated, written.unchanged),
        (0, 0, 3)
    );
    assert_eq!(writes(&server).len(), before, "{:?}", writes(&server));

    // Fixed: the report is updated; another tool's report is left alone; a
    // stale one of ours is deleted with its namespace's last workload.
    server
        .apply(deployment("team-a", "priv", json!({}), false))
        .unwrap();
    server
        .apply(json!({"apiVersion": REPORTS, "kind": "PolicyReport",
            "metadata": {"name": "kyverno-polr", "namespace": "team-b"}, "results": []}))
        .unwrap();
    assert!(server.delete("apps/v1", "Deployment", "team-b", "api"));
    let written = background.pass().await.unwrap().written.unwrap();
    assert_eq!((written.updated, written.deleted), (1, 1), "{written:?}");
    assert_eq!(
        report(&server, "team-a").unwrap()["summary"]["fail"],
        2,
        "the Pod Security fix shows; ownership still fails"
    );
    assert!(report(&server, "team-b").is_none(), "stale report deleted");
    assert!(
        server
            .get(REPORTS, "PolicyReport", "team-b", "kyverno-polr")
            .is_some(),
        "reports of other tools are not touched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_conflicts_are_retried() {
    let (server, background) = setup().await;
    background.pass().await.unwrap();
    server
        .apply(deployment("team-a", "priv", json!({}), false))
        .unwrap();
    server.inject(Fault {
        method: Some(http::Method::PUT),
        path_contains: "/policyreports/tollgate-audit".into(),
        query_contains: String::new(),
        code: 409,
        times: 1,
    });
    let written = background.pass().await.unwrap().written.unwrap();
    assert_eq!(written.updated, 1);
    let puts = writes(&server)
        .into_iter()
        .filter(|(m, p)| m == "PUT" && p.ends_with("/team-a/policyreports/tollgate-audit"))
        .count();
    assert_eq!(puts, 2, "one refused with 409, one after re-reading");
    assert_eq!(report(&server, "team-a").unwrap()["summary"]["fail"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_crd_fails_the_pass_and_counts_it() {
    let server = FakeApiServer::start().await.unwrap();
    let background = Background {
        client: server.client().await.unwrap(),
        engine: Arc::new(Engine::new(Snapshot::from_config(&PolicyConfig::default()))),
        ownership: OwnershipConfig::default(),
        settings: BackgroundSettings::default(),
        metrics: Arc::new(AuditMetrics::new()),
        leader: None,
    };
    let err = background.pass().await.unwrap_err();
    assert!(
        err.to_string()
            .contains("listing policyreports.wgpolicyk8s.io"),
        "{err}"
    );
    let text = encode(&background.metrics);
    assert!(
        text.contains("audit_passes_total{outcome=\"failure\"} 1"),
        "{text}"
    );
    // Metrics-only mode needs no CRD.
    let background = Background {
        settings: BackgroundSettings {
            write_reports: false,
            ..BackgroundSettings::default()
        },
        ..background
    };
    let pass = background.pass().await.unwrap();
    assert!(pass.written.is_none());
}

fn encode(metrics: &AuditMetrics) -> String {
    let mut registry = Registry::with_prefix("tollgate");
    metrics.register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_the_passes() {
    let (server, background) = setup().await;
    background.pass().await.unwrap();
    let text = encode(&background.metrics);
    for line in [
        "tollgate_readiness_ratio{namespace=\"team-a\"} 0.5",
        "tollgate_readiness_ratio{namespace=\"team-b\"} 1.0",
        "tollgate_readiness_cluster_ratio 0.6666666666666666",
        "tollgate_readiness_workloads{namespace=\"team-a\",status=\"not-ready\"} 1",
        "tollgate_readiness_missing_keys{namespace=\"team-a\",key=\"owner\"} 1",
        "tollgate_audit_results{namespace=\"team-a\",result=\"fail\"} 3",
        "tollgate_audit_report_writes_total{operation=\"create\",outcome=\"success\"} 3",
        "tollgate_audit_passes_total{outcome=\"success\"} 1",
        // 6 Namespaces (the fake's default, kube-system, kube-public and
        // kube-node-lease, and ours) and 3 Deployments.
        "tollgate_audit_objects 9",
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
    // team-b loses its only workload and then the namespace: its series go.
    assert!(server.delete("apps/v1", "Deployment", "team-b", "api"));
    assert!(server.delete("v1", "Namespace", "", "team-b"));
    background.pass().await.unwrap();
    let text = encode(&background.metrics);
    assert!(!text.contains("namespace=\"team-b\""), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_runs_passes() {
    let (server, mut background) = setup().await;
    let (leader_tx, leader_rx) = watch::channel(false);
    background.leader = Some(leader_rx);
    let metrics = background.metrics.clone();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(background.run(async {
        let _ = stop_rx.await;
    }));
    let listed_pods = |server: &FakeApiServer| {
        server
            .requests()
            .iter()
            .filter(|r| r.path == "/api/v1/pods")
            .count()
    };
    // Not the leader: no pass. (Polled against a deadline that a pass
    // would beat by far; the leader gauge shows the loop is waiting.)
    let deadline = Instant::now() + Duration::from_millis(500);
    while Instant::now() < deadline {
        assert_eq!(listed_pods(&server), 0, "a follower listed pods");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(metrics.leader.get(), 0);
    leader_tx.send(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while report(&server, "team-a").is_none() {
        assert!(Instant::now() < deadline, "no pass after becoming leader");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(metrics.leader.get(), 1);
    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the loop stops on shutdown")
        .unwrap();
    assert_eq!(metrics.leader.get(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaced_reports_are_written_without_the_cluster_report_crd() {
    let server = FakeApiServer::start().await.unwrap();
    server
        .apply(crd("policyreports", "PolicyReport", "Namespaced"))
        .unwrap();
    server
        .apply(deployment("default", "web", json!({}), false))
        .unwrap();
    let background = Background {
        client: server.client().await.unwrap(),
        engine: Arc::new(Engine::new(Snapshot::from_config(&PolicyConfig::default()))),
        ownership: OwnershipConfig::default(),
        settings: BackgroundSettings::default(),
        metrics: Arc::new(AuditMetrics::new()),
        leader: None,
    };
    let written = background.pass().await.unwrap().written.unwrap();
    assert!(written.cluster_skipped);
    assert!(report(&server, "default").is_some());
}
