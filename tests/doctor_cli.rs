//! End to end: `tollgate doctor` over the example manifests
//! (`examples/doctor/`) and over a cluster — the in-process fake Kubernetes
//! API server of `tollgate-testkit`, reached through a kubeconfig, as there
//! is no kube-apiserver here — with its exit codes (0 score met, 1 below
//! `--min-score`, 2 unreadable input or unreachable cluster).

// Test helpers may panic: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};
use tollgate_testkit::FakeApiServer;

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_tollgate")
}

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn doctor(args: &[&str]) -> Output {
    Command::new(binary())
        .current_dir(root())
        .arg("doctor")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn row<'a>(report: &'a Value, namespace: &str) -> &'a Value {
    report["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["namespace"] == namespace)
        .unwrap_or_else(|| panic!("no row for {namespace}: {report}"))
}

#[test]
fn scores_the_example_manifests() {
    let out = doctor(&["-f", "examples/doctor", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["kind"], "DoctorReport");
    assert_eq!(report["source"], "manifests");
    // checkout is ready; settlement, research-agent, node-probe and
    // notebook are not; the ReplicaSet of notebook is not counted again.
    assert_eq!(report["score"], json!(0.2));
    assert_eq!(report["controlled"], 1);
    assert_eq!(report["readiness"]["scored"], 5);
    assert_eq!(report["readiness"]["ready"], 1);
    assert_eq!(report["readiness"]["ready_after_inheritance"], 1);
    let payments = row(&report, "payments");
    assert_eq!(payments["readiness"]["workloads"], 2);
    assert_eq!(payments["score"], json!(0.5));
    assert_eq!(payments["failingObjects"], 1, "settlement fails ownership");
    let research = row(&report, "research");
    assert_eq!(research["score"], json!(0.0));
    assert_eq!(
        research["topGaps"][0],
        json!({"name": "tier", "count": 2}),
        "{research}"
    );
    // All three fail ownership; node-probe fails Pod Security baseline too.
    assert_eq!(research["failingObjects"], 3);
    let controls: Vec<&str> = research["failingControls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(controls.contains(&"PCI-DSS 2.2.6"), "{controls:?}");
    let notebook = report["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "notebook")
        .unwrap();
    assert_eq!(notebook["status"], "not-ready");
    assert_eq!(notebook["invalid"][0][0], "tier");
    let steps = report["nextSteps"].as_array().unwrap();
    assert!(
        steps.iter().any(|s| s
            .as_str()
            .unwrap()
            .contains("namespace payments: 1 workload(s) become ready when re-applied")),
        "{steps:?}"
    );
    assert!(
        steps.iter().any(|s| s.as_str().unwrap().contains(
            "critical deployment/research-agent in research cannot be routed: add oncall, gitops-repo, gitops-path, runbook"
        )),
        "{steps:?}"
    );
}

#[test]
fn text_output_has_a_row_per_namespace() {
    let out = doctor(&["-f", "examples/doctor"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("Agent readiness: 20% of 5 scored workloads can route an incident (1 ready, 4 not ready; 0 ignored, 0 exempt, 1 controller-owned not counted)"),
        "{stdout}"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    let header = lines
        .iter()
        .position(|l| l.starts_with("NAMESPACE"))
        .unwrap();
    assert!(lines[header + 1].starts_with("payments "), "{stdout}");
    assert!(lines[header + 1].contains("1/2 (50%)"), "{stdout}");
    assert!(lines[header + 2].starts_with("research "), "{stdout}");
    assert!(lines[header + 2].contains("0/3 (0%)"), "{stdout}");
    assert!(stdout.contains("\nNext steps:\n  1. "), "{stdout}");
}

#[test]
fn min_score_sets_the_exit_code() {
    let below = doctor(&["-f", "examples/doctor", "--min-score", "80%"]);
    assert_eq!(below.status.code(), Some(1), "{}", text(&below));
    assert!(text(&below).contains("Minimum score 80%: NOT met"));
    let met = doctor(&["-f", "examples/doctor", "--min-score", "0.2"]);
    assert_eq!(met.status.code(), Some(0), "{}", text(&met));
    let bad = doctor(&["-f", "examples/doctor", "--min-score", "150%"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    assert!(text(&bad).contains("outside 0..1"), "{}", text(&bad));
}

#[test]
fn unreadable_input_exits_2() {
    let missing = doctor(&["-f", "examples/doctor/no-such.yaml"]);
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing));
    assert!(
        text(&missing).contains("no-such.yaml"),
        "{}",
        text(&missing)
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "apiVersion: v1\nkind: Pod\nmetadata: [\n").unwrap();
    let out = doctor(&["-f", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("document 1"), "{}", text(&out));
}

#[test]
fn nothing_to_score_is_not_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("svc.yaml");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n",
    )
    .unwrap();
    let out = doctor(&[
        "-f",
        file.to_str().unwrap(),
        "--min-score",
        "1",
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["score"], Value::Null);
    assert_eq!(report["passed"], true);
    assert!(
        report["nextSteps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "no workloads found: nothing to score"),
        "{report}"
    );
}

/// Against the fake API server: namespaces with labels and annotations
/// (inheritance hints, Pod Security level), workloads of several kinds,
/// controller-owned pods.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scores_a_live_cluster() {
    let server = FakeApiServer::start().await.unwrap();
    for object in example_objects() {
        server.apply(object).unwrap();
    }
    // A pod of the checkout Deployment's ReplicaSet: not counted.
    server
        .apply(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "checkout-abc", "namespace": "payments",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "checkout-5d", "uid": "u", "controller": true}]},
            "spec": {"containers": [{"name": "c", "image": "ghcr.io/acme/checkout:1.4.2"}]}}))
        .unwrap();
    let kubeconfig = server.kubeconfig_path().to_str().unwrap().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        doctor(&[
            "--kubeconfig",
            &kubeconfig,
            "-o",
            "json",
            "--page-size",
            "2",
        ])
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["source"], "cluster");
    assert_eq!(report["score"], json!(0.2), "{report}");
    assert_eq!(report["controlled"], 2, "the ReplicaSet and the Pod");
    assert_eq!(
        row(&report, "payments")["readiness"]["ready_after_inheritance"],
        1
    );
    assert_eq!(row(&report, "research")["failingObjects"], 3);
    // Every workload kind and the namespaces were listed.
    let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
    for path in [
        "/api/v1/namespaces",
        "/api/v1/pods",
        "/api/v1/replicationcontrollers",
        "/apis/apps/v1/deployments",
        "/apis/apps/v1/replicasets",
        "/apis/apps/v1/statefulsets",
        "/apis/apps/v1/daemonsets",
        "/apis/batch/v1/jobs",
        "/apis/batch/v1/cronjobs",
    ] {
        assert!(
            paths.iter().any(|p| p == path),
            "{path} not listed: {paths:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_cluster_exits_2() {
    let server = FakeApiServer::start().await.unwrap();
    // A port nothing listens on: bound, then released.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let yaml = server
        .kubeconfig_yaml()
        .replace(&server.url(), &format!("https://127.0.0.1:{port}"));
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("kubeconfig");
    std::fs::write(&copy, yaml).unwrap();
    let out =
        tokio::task::spawn_blocking(move || doctor(&["--kubeconfig", copy.to_str().unwrap()]))
            .await
            .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("listing namespaces"), "{}", text(&out));
    assert!(
        text(&out).contains("doctor needs list permission"),
        "{}",
        text(&out)
    );
}

fn example_objects() -> Vec<Value> {
    let mut out = Vec::new();
    for file in ["namespaces.yaml", "payments.yaml", "research.yaml"] {
        let text = std::fs::read_to_string(root().join("examples/doctor").join(file)).unwrap();
        for doc in text.split("\n---\n") {
            let value: Value = yaml_serde::from_str(doc).unwrap();
            if !value.is_null() {
                out.push(value);
            }
        }
    }
    out
}

#[test]
fn user_constraints_count_as_failing_checks() {
    let library = "policies/gatekeeper/image-digests";
    let out = doctor(&[
        "-f",
        "examples/doctor",
        "--constraints",
        &format!("{library}/template.yaml"),
        "--constraints",
        &format!("{library}/samples/pinned-images/constraint.yaml"),
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    // checkout passes everything built in, but its images are tagged, not
    // pinned by digest.
    assert_eq!(row(&report, "payments")["failingObjects"], 2, "{report}");
    let missing = doctor(&["-f", "examples/doctor", "--constraints", "no/such/dir"]);
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing));
}

/// The copy-paste fixes suggest placeholders, never another team's values
/// (the payments namespace's on-call channel for a research workload).
#[test]
fn suggestions_use_placeholders_not_other_teams_values() {
    let out = doctor(&["-f", "examples/doctor"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let steps: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("Next steps"))
        .collect();
    assert!(!steps.is_empty(), "{stdout}");
    for line in steps.iter().filter(|l| l.contains(" research")) {
        for other in ["payments", "team-payments", "#payments-oncall", "acme"] {
            assert!(!line.contains(other), "{line}");
        }
    }
    let critical = steps
        .iter()
        .find(|l| l.contains("critical deployment/research-agent"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        critical.contains("deployscope.dev/oncall='<on-call-rotation>'"),
        "{critical}"
    );
}
