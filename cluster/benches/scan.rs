//! One background-audit pass over N workloads, without the API calls: the
//! scan (controller-owned objects dropped, every remaining workload judged
//! by the admission engine, readiness assessed), then scoring and building
//! the PolicyReports. Baseline measured in the same run: the engine alone
//! judging the same top-level workloads (`offline::check_object`, with
//! evidence), which any audit must pay; the ratio says what background
//! audit adds. Inputs are cloned outside the timing (a listing arrives as
//! owned objects); dropping the controller-owned ones is timed, as a pass
//! pays it.
//!
//! The cluster: N top-level workloads in 20 namespaces (Deployments, half
//! of them privileged and unannotated, StatefulSets, CronJobs), plus a
//! ReplicaSet and 3 Pods per Deployment, as a real listing returns them.
//! Policy: the built-in default (Pod Security restricted, latest).
//!
//! Run: `cargo bench -p tollgate-cluster --bench scan` (`BENCH_MILLIS` sets
//! the time per case, default 3000; `BENCH_WORKLOADS` sets N, default
//! 1000). Without `--bench` (as `cargo test --all-targets` runs it) it only
//! checks that every case runs once, on 50 workloads.

// A bench binary: a panic aborts the run with a message, which is fine.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_precision_loss
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tollgate_cluster::scan::Scanner;
use tollgate_cluster::{readiness, report};
use tollgate_policies::config::PolicyConfig;
use tollgate_policies::engine::offline;
use tollgate_policies::engine::{Options, Snapshot};
use tollgate_policies::ownership::OwnershipConfig;
use tollgate_policies::{NamespaceInfo, StaticNamespaces};

fn pod_spec(privileged: bool) -> Value {
    let security = if privileged {
        json!({"privileged": true})
    } else {
        json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}})
    };
    json!({
        "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [
            {"name": "app", "image": "ghcr.io/acme/app:1.4.2", "securityContext": security,
             "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}},
            {"name": "agent", "image": "ghcr.io/acme/agent:0.9.0",
             "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}
        ]
    })
}

/// The listing of a cluster with `n` top-level workloads.
fn cluster(n: usize) -> (Vec<Value>, Vec<Value>) {
    let mut all = Vec::new();
    let mut top = Vec::new();
    for i in 0..n {
        let ns = format!("team-{}", i % 20);
        let annotated = i % 2 == 0;
        let annotations = if annotated {
            json!({"deployscope.dev/owner": format!("team-{}", i % 20), "deployscope.dev/tier": "standard"})
        } else {
            json!({})
        };
        let name = format!("w-{i}");
        let template = json!({"metadata": {"labels": {"app": name}}, "spec": pod_spec(!annotated)});
        let object = match i % 5 {
            0..=2 => json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": name, "namespace": ns, "uid": format!("d-{i}"), "annotations": annotations},
                "spec": {"selector": {"matchLabels": {"app": name}}, "template": template}}),
            3 => json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
                "metadata": {"name": name, "namespace": ns, "annotations": annotations},
                "spec": {"serviceName": name, "selector": {"matchLabels": {"app": name}}, "template": template}}),
            _ => json!({"apiVersion": "batch/v1", "kind": "CronJob",
                "metadata": {"name": name, "namespace": ns, "annotations": annotations},
                "spec": {"schedule": "0 * * * *", "jobTemplate": {"spec": {"template": template}}}}),
        };
        top.push(object.clone());
        all.push(object);
        if i % 5 <= 2 {
            let rs = format!("{name}-5d9f");
            all.push(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": rs, "namespace": ns, "ownerReferences": [
                    {"apiVersion": "apps/v1", "kind": "Deployment", "name": name, "uid": format!("d-{i}"), "controller": true}]},
                "spec": {"selector": {"matchLabels": {"app": name}}, "template": template}}));
            for p in 0..3 {
                all.push(json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": format!("{rs}-{p}"), "namespace": ns, "ownerReferences": [
                        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs, "uid": "r", "controller": true}]},
                    "spec": pod_spec(!annotated)}));
            }
        }
    }
    (all, top)
}

/// p50 and mean of `f` over `budget` (at least 3 runs), in ms; `setup`
/// prepares each run's input outside the timing (the listing arrives as
/// owned objects, which the pass consumes).
fn measure<T>(budget: Duration, mut setup: impl FnMut() -> T, mut f: impl FnMut(T)) -> (f64, f64) {
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < 3 || start.elapsed() < budget {
        let input = setup();
        let t = Instant::now();
        f(input);
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    (times[times.len() / 2], mean)
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let budget = if benching {
        Duration::from_millis(
            std::env::var("BENCH_MILLIS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(3000),
        )
    } else {
        Duration::from_millis(1)
    };
    let n: usize = if benching {
        std::env::var("BENCH_WORKLOADS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000)
    } else {
        50
    };
    let (all, top) = cluster(n);
    let policy = PolicyConfig::default();
    let namespaces = StaticNamespaces::new((0..20).map(|i| NamespaceInfo {
        name: format!("team-{i}"),
        ..NamespaceInfo::default()
    }));
    let snapshot = Snapshot::from_config(&policy);
    let options = Options {
        only: None,
        evidence: true,
    };
    let ownership = OwnershipConfig::default();
    let scanner = Scanner {
        snapshot: &snapshot,
        options: &options,
        ownership: &ownership,
        namespaces: &namespaces,
        default_namespace: "default",
    };

    let (base_p50, base_mean) = measure(
        budget,
        || top.clone(),
        |objects| {
            for o in objects {
                black_box(offline::check_object(
                    &snapshot, o, "default", &options, false,
                ));
            }
        },
    );
    let (scan_p50, scan_mean) = measure(
        budget,
        || all.clone(),
        |objects| {
            black_box(scanner.scan(objects));
        },
    );
    let scan = scanner.scan(all.iter().cloned());
    assert_eq!(scan.objects.len(), n);
    let (build_p50, build_mean) = measure(
        budget,
        || (),
        |()| {
            black_box(readiness::score(&scan));
            black_box(report::build(&scan, time::OffsetDateTime::now_utc()));
        },
    );
    let scores = readiness::score(&scan);
    assert_eq!(scores.cluster.scored, n);

    println!(
        "{n} top-level workloads ({} objects listed), Pod Security restricted:latest",
        all.len()
    );
    println!("| case | p50 ms | mean ms | p50 µs per workload |");
    println!("| --- | ---: | ---: | ---: |");
    let per = |ms: f64| ms * 1e3 / n as f64;
    println!(
        "| baseline: engine alone on the {n} workloads | {base_p50:.2} | {base_mean:.2} | {:.1} |",
        per(base_p50)
    );
    println!(
        "| scan: drop controlled, judge, assess readiness | {scan_p50:.2} | {scan_mean:.2} | {:.1} |",
        per(scan_p50)
    );
    println!(
        "| score + build PolicyReports | {build_p50:.2} | {build_mean:.2} | {:.1} |",
        per(build_p50)
    );
    println!("pass / baseline: {:.2}x", (scan_p50 + build_p50) / base_p50);
}
