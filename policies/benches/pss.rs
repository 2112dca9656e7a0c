//! Pod Security checks and secure defaults: cost per evaluation, against a
//! baseline measured in the same run (parsing the same Deployment into a
//! `Workload`, which every admission request pays anyway).
//!
//! Run: `cargo bench -p tollgate-policies --bench pss`

// A bench binary: a panic aborts the run with a message, which is fine.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tollgate_policies::defaults::{DefaultsConfig, secure_defaults};
use tollgate_policies::pss::check_pod;
use tollgate_policies::{Level, Version, Workload};

/// A Deployment with 3 containers, compliant with restricted when
/// `hardened`, with no security settings at all otherwise.
fn deployment(hardened: bool) -> Value {
    let sc = if hardened {
        json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": true})
    } else {
        Value::Null
    };
    let container = |name: &str, port: i32| {
        json!({
            "name": name, "image": format!("ghcr.io/example/{name}:1.0"),
            "ports": [{"containerPort": port}],
            "env": [{"name": "LOG_LEVEL", "value": "info"}],
            "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}},
            "readinessProbe": {"httpGet": {"path": "/ready", "port": port}},
            "securityContext": sc,
        })
    };
    let pod_sc = if hardened {
        json!({"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}})
    } else {
        Value::Null
    };
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "agent", "namespace": "agents", "labels": {"app": "agent"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {
                "metadata": {"labels": {"app": "agent"}, "annotations": {"deployscope.dev/owner": "team-a"}},
                "spec": {
                    "securityContext": pod_sc,
                    "volumes": [{"name": "tmp", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "agent"}}],
                    "containers": [container("agent", 8080), container("proxy", 15001), container("exporter", 9090)],
                }
            }
        }
    })
}

/// Runs `f` repeatedly for about `budget` and returns nanoseconds per call.
fn measure(budget: Duration, mut f: impl FnMut()) -> f64 {
    for _ in 0..1_000 {
        f();
    }
    let mut iterations: u64 = 0;
    let start = Instant::now();
    while start.elapsed() < budget {
        for _ in 0..1_000 {
            f();
        }
        iterations += 1_000;
    }
    start.elapsed().as_nanos() as f64 / iterations as f64
}

fn main() {
    let budget = Duration::from_millis(
        std::env::var("BENCH_MILLIS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1_000),
    );
    let clean_json = deployment(true);
    let bare_json = deployment(false);
    let clean = Workload::from_object(&clean_json).unwrap().unwrap();
    let bare = Workload::from_object(&bare_json).unwrap().unwrap();
    assert!(
        check_pod(
            Level::Restricted,
            Version::Latest,
            &clean.pod_metadata,
            &clean.spec
        )
        .is_empty()
    );
    let bare_violations = check_pod(
        Level::Restricted,
        Version::Latest,
        &bare.pod_metadata,
        &bare.spec,
    )
    .len();
    let config = DefaultsConfig::default();

    let parse = measure(budget, || {
        black_box(Workload::from_object(black_box(&clean_json)).unwrap());
    });
    let cases: Vec<(String, f64)> = vec![
        (
            "check_pod restricted/latest, compliant".into(),
            measure(budget, || {
                black_box(check_pod(
                    Level::Restricted,
                    Version::Latest,
                    black_box(&clean.pod_metadata),
                    black_box(&clean.spec),
                ));
            }),
        ),
        (
            "check_pod baseline/v1.30, compliant".into(),
            measure(budget, || {
                black_box(check_pod(
                    Level::Baseline,
                    Version::Minor(30),
                    black_box(&clean.pod_metadata),
                    black_box(&clean.spec),
                ));
            }),
        ),
        (
            format!("check_pod restricted/latest, {bare_violations} violations"),
            measure(budget, || {
                black_box(check_pod(
                    Level::Restricted,
                    Version::Latest,
                    black_box(&bare.pod_metadata),
                    black_box(&bare.spec),
                ));
            }),
        ),
        (
            "secure_defaults, compliant (empty patch)".into(),
            measure(budget, || {
                black_box(secure_defaults(black_box(&clean), &config));
            }),
        ),
        (
            "secure_defaults, bare (full patch)".into(),
            measure(budget, || {
                black_box(secure_defaults(black_box(&bare), &config));
            }),
        ),
    ];
    println!("Deployment with 3 containers; baseline = Workload::from_object on the same object");
    println!("{:<48} {:>10} {:>12}", "case", "ns/op", "x baseline");
    println!(
        "{:<48} {:>10.0} {:>12.3}",
        "baseline: Workload::from_object", parse, 1.0
    );
    for (name, ns) in cases {
        println!("{name:<48} {ns:>10.0} {:>12.3}", ns / parse);
    }
}
