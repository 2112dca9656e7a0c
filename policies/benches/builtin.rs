//! The full built-in policy set on a typical Deployment with 3 containers:
//! Pod Security (restricted, latest), ownership annotations and every
//! compliance pack (all five profiles), from the parsed JSON object to the
//! list of violations. Reports p50 and p99 µs per evaluation, against two
//! baselines measured in the same run: parsing the Deployment's JSON text
//! (`serde_json::from_str`) and `Workload::from_object`, which every
//! admission request pays anyway.
//!
//! Run: `cargo bench -p tollgate-policies --bench builtin`
//! (`BENCH_MILLIS` sets the time per case, default 2000). Run without
//! `--bench` (as `cargo test --all-targets` does), it only checks that every
//! case runs, for a few milliseconds each.

// A bench binary: a panic aborts the run with a message, which is fine.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tollgate_policies::compliance::{ComplianceConfig, Packs, Parameters, Profile};
use tollgate_policies::ownership::{self, OwnershipConfig};
use tollgate_policies::pss::check_pod;
use tollgate_policies::{Level, NamespaceInfo, Version, Workload};

/// A Deployment with 3 containers. `compliant`: passes every built-in
/// rule; otherwise it fails several of each set (unpinned images, no
/// limits, a literal password, no ownership annotations, ...).
fn deployment(compliant: bool) -> Value {
    let container = |name: &str, port: i32| {
        let mut c = json!({
            "name": name,
            "image": format!("ghcr.io/acme/{name}:1.4.2"),
            "ports": [{"containerPort": port}],
            "env": [
                {"name": "LOG_LEVEL", "value": "info"},
                {"name": "MAX_TOKENS", "value": "4096"},
                {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
            ],
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
            "livenessProbe": {"httpGet": {"path": "/healthz", "port": port}},
            "readinessProbe": {"httpGet": {"path": "/ready", "port": port}},
            "securityContext": {
                "allowPrivilegeEscalation": false,
                "capabilities": {"drop": ["ALL"]},
                "readOnlyRootFilesystem": true,
            },
            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        });
        if !compliant {
            c["image"] = json!(format!("docker.io/acme/{name}:latest"));
            c["env"][2] = json!({"name": "DB_PASSWORD", "value": "hunter2hunter2"});
            c.as_object_mut().unwrap().remove("resources");
            c.as_object_mut().unwrap().remove("livenessProbe");
            c["securityContext"] = json!({});
        }
        c
    };
    let mut d = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {
            "name": "agent", "namespace": "payments",
            "labels": {"app": "agent"},
            "annotations": {
                "deployscope.dev/owner": "team-payments",
                "deployscope.dev/tier": "critical",
                "deployscope.dev/oncall": "#payments-oncall",
                "deployscope.dev/gitops-repo": "github.com/acme/infra",
                "deployscope.dev/gitops-path": "clusters/prod/payments/",
                "deployscope.dev/runbook": "https://wiki.acme.example/runbooks/agent",
            },
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {
                "metadata": {"labels": {"app": "agent", "tollgate.dev/inject": "enabled",
                    "data.tollgate.dev/classification": "personal"}},
                "spec": {
                    "serviceAccountName": "agent",
                    "automountServiceAccountToken": false,
                    "nodeSelector": {"topology.kubernetes.io/region": "eu-west-1"},
                    "securityContext": {"runAsNonRoot": true, "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                    "containers": [container("agent", 8080), container("proxy", 15001), container("exporter", 9090)],
                }
            }
        }
    });
    if !compliant {
        d["metadata"]["annotations"] = json!({});
        let spec = d["spec"]["template"]["spec"].as_object_mut().unwrap();
        spec.remove("serviceAccountName");
        spec.remove("automountServiceAccountToken");
        spec.remove("securityContext");
    }
    d
}

fn compliance_config() -> ComplianceConfig {
    ComplianceConfig {
        profiles: Profile::ALL.to_vec(),
        parameters: Parameters {
            allowed_registries: Some(vec!["ghcr.io/acme".into()]),
            allowed_regions: Some(vec!["eu-west-1".into(), "eu-central-1".into()]),
            allowed_storage_classes: Some(vec!["encrypted-gp3".into()]),
            ..Parameters::default()
        },
        ..ComplianceConfig::default()
    }
}

/// The full built-in set on one object; returns the number of violations.
fn evaluate_all(
    object: &Value,
    namespace: &NamespaceInfo,
    ownership_config: &OwnershipConfig,
    compliance_config: &ComplianceConfig,
    packs: &Packs,
) -> usize {
    let workload = Workload::from_object(object).unwrap().unwrap();
    let pss = check_pod(
        Level::Restricted,
        Version::Latest,
        &workload.pod_metadata,
        &workload.spec,
    );
    let own = ownership::check(&workload, Some(namespace), ownership_config);
    let comp = packs
        .evaluate(object, Some(namespace), compliance_config)
        .unwrap();
    pss.len() + own.len() + comp.violations.len()
}

/// Per-call nanoseconds of `f`, over about `budget`: (p50, p99, mean).
fn measure(budget: Duration, mut f: impl FnMut()) -> (f64, f64, f64) {
    for _ in 0..200 {
        f();
    }
    let mut samples = Vec::new();
    let start = Instant::now();
    while start.elapsed() < budget {
        let t = Instant::now();
        f();
        samples.push(t.elapsed().as_nanos() as f64);
    }
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    (at(0.5), at(0.99), mean)
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let budget = Duration::from_millis(if benching {
        std::env::var("BENCH_MILLIS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(2_000)
    } else {
        5
    });
    let packs = Packs::builtin().unwrap();
    let namespace = NamespaceInfo {
        name: "payments".into(),
        ..NamespaceInfo::default()
    };
    let own_cfg = OwnershipConfig::default();
    let comp_cfg = compliance_config();
    let clean = deployment(true);
    let dirty = deployment(false);
    let clean_text = serde_json::to_string(&clean).unwrap();
    assert_eq!(
        evaluate_all(&clean, &namespace, &own_cfg, &comp_cfg, packs),
        0,
        "the compliant Deployment must pass every rule"
    );
    let dirty_violations = evaluate_all(&dirty, &namespace, &own_cfg, &comp_cfg, packs);

    let parse = measure(budget, || {
        black_box(serde_json::from_str::<Value>(black_box(&clean_text)).unwrap());
    });
    let workload = measure(budget, || {
        black_box(Workload::from_object(black_box(&clean)).unwrap());
    });
    let cases = [
        (
            "full built-in set, compliant (0 violations)".to_owned(),
            measure(budget, || {
                black_box(evaluate_all(
                    black_box(&clean),
                    &namespace,
                    &own_cfg,
                    &comp_cfg,
                    packs,
                ));
            }),
        ),
        (
            format!("full built-in set, {dirty_violations} violations"),
            measure(budget, || {
                black_box(evaluate_all(
                    black_box(&dirty),
                    &namespace,
                    &own_cfg,
                    &comp_cfg,
                    packs,
                ));
            }),
        ),
        (
            "compliance packs only, compliant".to_owned(),
            measure(budget, || {
                black_box(
                    packs
                        .evaluate(black_box(&clean), Some(&namespace), &comp_cfg)
                        .unwrap(),
                );
            }),
        ),
        (
            "ownership only, compliant".to_owned(),
            measure(budget, || {
                let w = Workload::from_object(black_box(&clean)).unwrap().unwrap();
                black_box(ownership::check(&w, Some(&namespace), &own_cfg));
            }),
        ),
    ];
    println!(
        "Deployment with 3 containers; all five compliance profiles; baselines measured in the same run"
    );
    println!(
        "{:<46} {:>9} {:>9} {:>9} {:>12}",
        "case", "p50 µs", "p99 µs", "mean µs", "p50 × parse"
    );
    let row = |name: &str, (p50, p99, mean): (f64, f64, f64)| {
        println!(
            "{name:<46} {:>9.2} {:>9.2} {:>9.2} {:>12.2}",
            p50 / 1e3,
            p99 / 1e3,
            mean / 1e3,
            p50 / parse.0
        );
    };
    row("baseline: serde_json::from_str", parse);
    row("baseline: Workload::from_object", workload);
    for (name, m) in cases {
        row(&name, m);
    }
}
