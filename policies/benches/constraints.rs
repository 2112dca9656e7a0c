//! Benchmark: evaluating 50 user constraints (Gatekeeper ConstraintTemplates)
//! against a typical Deployment, with baselines measured in the same run.
//!
//! Run with `cargo bench -p tollgate-policies --bench constraints`.
//!
//! Measured, per admission request (one thread, warm worker engines):
//! - `review`: turning the AdmissionRequest into the Rego input (done once
//!   per request, shared by every constraint);
//! - `50 constraints`: 10 templates x 5 constraints, all matching the
//!   Deployment, evaluated end to end (matching, Rego, results);
//! - baseline `50 empty rules`: the same 50 evaluations of a template whose
//!   `violation` rule is empty: the interpreter's fixed cost per evaluation;
//! - baseline `50 unmatched`: 50 constraints whose `spec.match` excludes the
//!   object: the cost of matching alone, Rego never runs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use tollgate_policies::StaticNamespaces;
use tollgate_policies::gatekeeper::{ConstraintSet, Inventory, LoadOptions, Review, SourceFile};

const INLINE_TEMPLATES: &[(&str, &str, &str)] = &[
    (
        "K8sAllowedRepos",
        r#"package k8sallowedrepos
violation[{"msg": msg}] {
  container := input.review.object.spec.template.spec.containers[_]
  satisfied := [good | repo = input.parameters.repos[_]; good = startswith(container.image, repo)]
  not any(satisfied)
  msg := sprintf("container <%v> has an invalid image repo <%v>", [container.name, container.image])
}"#,
        "  parameters:\n    repos: [\"registry.example.com/\", \"ghcr.io/example/\"]\n",
    ),
    (
        "K8sContainerLimits",
        r#"package k8scontainerlimits
violation[{"msg": msg}] {
  container := input.review.object.spec.template.spec.containers[_]
  not container.resources.limits.memory
  msg := sprintf("container <%v> has no memory limit", [container.name])
}
violation[{"msg": msg}] {
  container := input.review.object.spec.template.spec.containers[_]
  mem := units.parse_bytes(container.resources.limits.memory)
  mem > units.parse_bytes(input.parameters.memory)
  msg := sprintf("container <%v> memory limit is above %v", [container.name, input.parameters.memory])
}"#,
        "  parameters:\n    memory: 2Gi\n",
    ),
    (
        "K8sPSPPrivileged",
        r#"package k8spspprivileged
import rego.v1
violation contains {"msg": msg} if {
  some c in input.review.object.spec.template.spec.containers
  c.securityContext.privileged
  msg := sprintf("privileged container is not allowed: %v", [c.name])
}"#,
        "  match: {}\n",
    ),
    (
        "K8sPSPHostNamespace",
        r#"package k8spsphostnamespace
violation[{"msg": msg}] {
  spec := input.review.object.spec.template.spec
  flags := [f | f := spec[k]; k == {"hostPID", "hostIPC", "hostNetwork"}[_]; f == true]
  count(flags) > 0
  msg := "sharing the host namespaces is not allowed"
}"#,
        "  match: {}\n",
    ),
    (
        "K8sRequiredProbes",
        r#"package k8srequiredprobes
violation[{"msg": msg}] {
  container := input.review.object.spec.template.spec.containers[_]
  probe := input.parameters.probes[_]
  not container[probe]
  msg := sprintf("container <%v> has no %v", [container.name, probe])
}"#,
        "  parameters:\n    probes: [readinessProbe, livenessProbe]\n",
    ),
];

fn inline_template(kind: &str, rego: &str) -> String {
    let body: String = rego.lines().map(|l| format!("        {l}\n")).collect();
    format!(
        "apiVersion: templates.gatekeeper.sh/v1\nkind: ConstraintTemplate\nmetadata:\n  name: {}\nspec:\n  crd:\n    spec:\n      names:\n        kind: {kind}\n  targets:\n    - target: admission.k8s.gatekeeper.sh\n      rego: |\n{body}",
        kind.to_lowercase()
    )
}

fn constraint(kind: &str, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: {kind}\nmetadata:\n  name: {name}\nspec:\n{spec}"
    )
}

/// Ten templates (five from `policies/gatekeeper/`, five inline), five
/// constraints each. `matching` decides whether the constraints' match
/// selects the benchmark Deployment.
fn files(matching: bool) -> Vec<SourceFile> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("gatekeeper");
    let mut out = Vec::new();
    let mut kinds: Vec<(String, String)> = Vec::new();
    let examples = [
        (
            "required-labels",
            "K8sRequiredLabels",
            "  parameters:\n    labels:\n      - key: owner\n      - key: tier\n        allowedRegex: \"^(critical|standard|best-effort)$\"\n",
        ),
        (
            "image-digests",
            "K8sImageDigests",
            "  parameters:\n    exemptImages: [\"registry.example.com/debug/*\"]\n",
        ),
        ("agent-sidecar", "K8sAgentSidecar", "  match: {}\n"),
        (
            "immutable-owner",
            "K8sImmutableOwner",
            "  parameters:\n    allowedGroups: [platform-admins]\n",
        ),
        (
            "unique-service-selector",
            "K8sUniqueServiceSelector",
            "  match: {}\n",
        ),
    ];
    for (dir, kind, spec) in examples {
        let path = root.join(dir).join("template.yaml");
        out.push(SourceFile::new(
            path.display().to_string(),
            std::fs::read_to_string(&path).unwrap(),
        ));
        kinds.push((kind.to_owned(), spec.to_owned()));
    }
    for (kind, rego, spec) in INLINE_TEMPLATES {
        out.push(SourceFile::new(
            format!("{kind}.yaml"),
            inline_template(kind, rego),
        ));
        kinds.push(((*kind).to_owned(), (*spec).to_owned()));
    }
    for (kind, spec) in &kinds {
        // Every constraint keeps its parameters; the match decides whether
        // the Deployment is in scope.
        let spec = spec.replace("  match: {}\n", "");
        let scope = if matching {
            "  match:\n    kinds:\n      - apiGroups: [\"apps\"]\n        kinds: [\"Deployment\"]\n    excludedNamespaces: [\"kube-*\"]\n"
        } else {
            "  match:\n    kinds:\n      - apiGroups: [\"apps\"]\n        kinds: [\"Deployment\"]\n    namespaces: [\"kube-*\"]\n"
        };
        for i in 0..5 {
            out.push(SourceFile::new(
                format!("{kind}-{i}.yaml"),
                constraint(
                    kind,
                    &format!("{}-{i}", kind.to_lowercase()),
                    &format!("{scope}{spec}"),
                ),
            ));
        }
    }
    out
}

fn empty_rule_files() -> Vec<SourceFile> {
    let mut out = vec![SourceFile::new(
        "empty.yaml",
        inline_template(
            "K8sEmpty",
            "package k8sempty\nviolation[{\"msg\": \"never\"}] { false }",
        ),
    )];
    for i in 0..50 {
        out.push(SourceFile::new(
            format!("empty-{i}.yaml"),
            constraint("K8sEmpty", &format!("empty-{i}"), "  match: {}\n"),
        ));
    }
    out
}

/// A 3-container Deployment as the API server sends it for a CREATE.
fn request() -> serde_json::Value {
    let container = |name: &str, image: &str| {
        json!({
            "name": name, "image": image,
            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
            "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "t", "key": "token"}}}],
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}},
            "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}},
            "livenessProbe": {"httpGet": {"path": "/live", "port": 8080}},
            "securityContext": {"allowPrivilegeEscalation": false, "runAsNonRoot": true, "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}
        })
    };
    json!({
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
        "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
        "name": "agent", "namespace": "agents", "operation": "CREATE",
        "userInfo": {"username": "system:serviceaccount:ci:deployer", "groups": ["system:serviceaccounts"]},
        "dryRun": false,
        "object": {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "agent", "namespace": "agents",
                         "labels": {"app": "agent", "owner": "research", "tier": "standard"},
                         "annotations": {"deployscope.dev/owner": "research", "deployscope.dev/tier": "standard"}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "agent"}},
                     "template": {"metadata": {"labels": {"app": "agent", "tollgate.dev/inject": "enabled"}},
                                  "spec": {"serviceAccountName": "agent", "automountServiceAccountToken": false,
                                           "containers": [container("agent", "registry.example.com/agent:3.1"),
                                                          container("tools", "registry.example.com/tools:1.0"),
                                                          container("metrics", "ghcr.io/example/exporter:0.9")]}}}
        }
    })
}

struct Stats {
    p50: Duration,
    p99: Duration,
    mean: Duration,
}

fn measure(iterations: usize, mut f: impl FnMut()) -> Stats {
    for _ in 0..iterations / 10 {
        f();
    }
    let mut samples: Vec<Duration> = (0..iterations)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed()
        })
        .collect();
    samples.sort();
    let total: Duration = samples.iter().sum();
    Stats {
        p50: samples[samples.len() / 2],
        p99: samples[samples.len() * 99 / 100],
        mean: total / iterations as u32,
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    // `cargo bench` passes `--bench`; under `cargo test` the same binary
    // runs as a quick smoke test of the setup.
    let benching = std::env::args().any(|a| a == "--bench");
    let iterations = std::env::var("BENCH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { 2000 } else { 20 });
    let options = LoadOptions::default();
    let matched = ConstraintSet::load(&files(true), options).expect("load 50 constraints");
    let unmatched = ConstraintSet::load(&files(false), options).expect("load unmatched");
    let empty = ConstraintSet::load(&empty_rule_files(), options).expect("load empty rules");
    assert_eq!(matched.constraints().len(), 50);
    let request = request();
    let namespaces = StaticNamespaces::default();
    let inventory = Inventory::empty();
    let review = Review::from_admission_request(&request).unwrap();
    let found = matched.evaluate(&review, &namespaces, &inventory);
    assert!(
        found.iter().all(|v| !v.message.contains("could not")),
        "{found:?}"
    );

    let review_stats = measure(iterations, || {
        std::hint::black_box(Review::from_admission_request(&request).unwrap());
    });
    let full = measure(iterations, || {
        let review = Review::from_admission_request(&request).unwrap();
        std::hint::black_box(matched.evaluate(&review, &namespaces, &inventory));
    });
    let rego_only = measure(iterations, || {
        std::hint::black_box(matched.evaluate(&review, &namespaces, &inventory));
    });
    let empty_stats = measure(iterations, || {
        std::hint::black_box(empty.evaluate(&review, &namespaces, &inventory));
    });
    let unmatched_stats = measure(iterations, || {
        std::hint::black_box(unmatched.evaluate(&review, &namespaces, &inventory));
    });

    println!("constraints bench: 3-container Deployment, {iterations} iterations, one thread");
    println!(
        "{:<44} {:>10} {:>10} {:>10}",
        "", "p50 µs", "p99 µs", "mean µs"
    );
    for (name, s) in [
        ("review conversion (once per request)", &review_stats),
        ("50 constraints, incl. review conversion", &full),
        ("50 constraints, review already converted", &rego_only),
        ("baseline: 50 empty rules", &empty_stats),
        ("baseline: 50 unmatched constraints", &unmatched_stats),
    ] {
        println!(
            "{name:<44} {:>10.1} {:>10.1} {:>10.1}",
            micros(s.p50),
            micros(s.p99),
            micros(s.mean)
        );
    }
    if std::env::var_os("BENCH_BREAKDOWN").is_some() {
        let all = files(true);
        for template in all
            .iter()
            .filter(|f| !f.name.contains('-') || f.name.ends_with("template.yaml"))
        {
            let set = ConstraintSet::load(std::slice::from_ref(template), options).unwrap();
            let kind = set.templates().next().unwrap().kind().to_owned();
            let mut subset = vec![template.clone()];
            subset.extend(
                all.iter()
                    .filter(|f| f.name.starts_with(&format!("{kind}-")))
                    .cloned(),
            );
            let set = ConstraintSet::load(&subset, options).unwrap();
            let s = measure(iterations, || {
                std::hint::black_box(set.evaluate(&review, &namespaces, &inventory));
            });
            println!("  {kind:<40} 5 constraints p50 {:>8.1} µs", micros(s.p50));
        }
    }
    println!(
        "per constraint: {:.2} µs (p50 / 50); {:.1}x the empty-rule baseline; {} violations found",
        micros(rego_only.p50) / 50.0,
        micros(rego_only.p50) / micros(empty_stats.p50),
        found.len()
    );
}
