//! The shipped cluster manifests hold together: the webhook configurations
//! parse as Kubernetes types and route to the paths the server serves, for
//! every kind the engine judges; the webhook's own Deployment passes the
//! restricted level it enforces, with its config file valid.

// Test helpers may panic: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support_webhook;

use std::process::Command;

use base64::Engine as _;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, RuleWithOperations, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Deserialize;
use support_webhook::{binary, root, write};

fn documents(name: &str) -> Vec<serde_json::Value> {
    let ca = tollgate_certs::Authority::generate("ca", time::Duration::days(1)).unwrap();
    let bundle = base64::engine::general_purpose::STANDARD.encode(ca.cert_pem());
    let text = std::fs::read_to_string(root().join("examples/webhook-configuration").join(name))
        .unwrap()
        .replace("${CA_BUNDLE}", &bundle);
    yaml_serde::Deserializer::from_str(&text)
        .map(|d| serde_json::Value::deserialize(d).unwrap())
        .collect()
}

fn excludes_system_namespaces(selector: &Option<LabelSelector>) {
    let expr = &selector
        .as_ref()
        .unwrap()
        .match_expressions
        .as_ref()
        .unwrap()[0];
    assert_eq!(expr.key, "kubernetes.io/metadata.name");
    assert_eq!(expr.operator, "NotIn");
    for ns in ["kube-system", "kube-node-lease", "tollgate"] {
        assert!(
            expr.values.as_ref().unwrap().iter().any(|v| v == ns),
            "{ns}"
        );
    }
}

fn resources(rules: &Option<Vec<RuleWithOperations>>) -> Vec<String> {
    rules
        .as_ref()
        .unwrap()
        .iter()
        .flat_map(|r| {
            let res = r.resources.clone().unwrap();
            // Writes for objects, CONNECT for the connections into pods,
            // DELETE only where a deletion is judged (policy ConfigMaps).
            let want: &[&str] = if res.iter().any(|x| x == "configmaps") {
                &["CREATE", "UPDATE", "DELETE"]
            } else if res.iter().any(|x| x == "pods/exec") {
                &["CONNECT"]
            } else {
                &["CREATE", "UPDATE"]
            };
            assert_eq!(r.operations.clone().unwrap(), want, "{res:?}");
            let group = r.api_groups.as_ref().unwrap()[0].clone();
            r.resources
                .clone()
                .unwrap()
                .into_iter()
                .map(move |res| format!("{group}/{res}"))
        })
        .collect()
}

const WORKLOADS: [&str; 8] = [
    "/pods",
    "/replicationcontrollers",
    "apps/deployments",
    "apps/replicasets",
    "apps/statefulsets",
    "apps/daemonsets",
    "batch/jobs",
    "batch/cronjobs",
];

#[test]
fn webhook_configurations_route_every_judged_kind() {
    let docs = documents("webhooks.yaml");
    assert_eq!(docs.len(), 2);
    let mutating: MutatingWebhookConfiguration = serde_json::from_value(docs[0].clone()).unwrap();
    let validating: ValidatingWebhookConfiguration =
        serde_json::from_value(docs[1].clone()).unwrap();

    let m = &mutating.webhooks.as_ref().unwrap()[0];
    assert_eq!(m.admission_review_versions, ["v1"]);
    assert_eq!(m.side_effects, "None");
    assert_eq!(m.failure_policy.as_deref(), Some("Fail"));
    assert!(m.timeout_seconds.unwrap() <= 5);
    assert_eq!(m.reinvocation_policy.as_deref(), Some("IfNeeded"));
    assert_eq!(
        m.client_config.service.as_ref().unwrap().path.as_deref(),
        Some("/mutate")
    );
    assert!(!m.client_config.ca_bundle.as_ref().unwrap().0.is_empty());
    excludes_system_namespaces(&m.namespace_selector);
    let mutated = resources(&m.rules);
    assert!(mutated.contains(&"/pods/ephemeralcontainers".to_owned()));

    let v = &validating.webhooks.as_ref().unwrap()[0];
    assert_eq!(v.admission_review_versions, ["v1"]);
    assert_eq!(v.side_effects, "None");
    assert!(v.timeout_seconds.unwrap() <= 5);
    assert_eq!(
        v.client_config.service.as_ref().unwrap().path.as_deref(),
        Some("/validate")
    );
    excludes_system_namespaces(&v.namespace_selector);
    let validated = resources(&v.rules);
    assert!(validated.contains(&"/pods/*".to_owned()));
    assert!(validated.contains(&"/namespaces".to_owned()));
    // Injected pods' policy ConfigMaps and the connections into sidecars.
    for res in [
        "/configmaps",
        "/pods/exec",
        "/pods/attach",
        "/pods/portforward",
    ] {
        assert!(
            validated.contains(&res.to_owned()),
            "validating misses {res}"
        );
        assert!(!mutated.contains(&res.to_owned()), "mutating has {res}");
    }
    for kind in WORKLOADS {
        assert!(mutated.iter().any(|r| r == kind), "mutating misses {kind}");
        assert!(
            validated.iter().any(|r| r == kind),
            "validating misses {kind}"
        );
    }
}

#[test]
fn the_webhook_deployment_passes_restricted_with_a_valid_config() {
    let docs = documents("deployment.yaml");
    let config_map: ConfigMap = serde_json::from_value(
        docs.iter()
            .find(|d| d["kind"] == "ConfigMap")
            .unwrap()
            .clone(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "tollgate.yaml",
        &config_map.data.unwrap()["tollgate.yaml"],
    );
    let manifest = root().join("examples/webhook-configuration/deployment.yaml");
    let out = Command::new(binary())
        .args([
            "check",
            "--no-mutate",
            "--pod-security",
            "restricted",
            "--config",
        ])
        .arg(&config)
        .arg("-f")
        .arg(&manifest)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("Deployment \"tollgate-webhook\" in namespace \"tollgate\": allowed\n"),
        "{stdout}"
    );
}
