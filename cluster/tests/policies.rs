//! Cluster-held policies against the in-process fake API server (there is
//! no kube-apiserver here): Gatekeeper templates and constraints and the
//! TollgatePolicy are watched and hot-reloaded; broken ones keep the last
//! good state and are reported.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tollgate_cluster::{ClusterPolicies, PolicySettings};
use tollgate_policies::gatekeeper::{ConstraintSet, ConstraintStore, LoadOptions};
use tollgate_testkit::FakeApiServer;

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn yaml(path: &str) -> Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    yaml_serde::from_str(&std::fs::read_to_string(root.join(path)).unwrap()).unwrap()
}

fn crd(group: &str, plural: &str, kind: &str, version: &str) -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": format!("{plural}.{group}")},
           "spec": {"group": group, "scope": "Cluster", "names": {"plural": plural, "kind": kind},
                    "versions": [{"name": version, "served": true, "storage": true}]}})
}

#[tokio::test]
async fn gatekeeper_templates_and_constraints_reload_and_bad_ones_are_refused() {
    let server = FakeApiServer::start().await.unwrap();
    server
        .apply(crd(
            "templates.gatekeeper.sh",
            "constrainttemplates",
            "ConstraintTemplate",
            "v1",
        ))
        .unwrap();
    // Gatekeeper (or its CRDs) provides the constraint kinds.
    server
        .apply(crd(
            "constraints.gatekeeper.sh",
            "k8srequiredlabels",
            "K8sRequiredLabels",
            "v1beta1",
        ))
        .unwrap();
    let store = Arc::new(ConstraintStore::new(ConstraintSet::empty()));
    let settings = PolicySettings {
        tollgate_policy: false,
        ..PolicySettings::default()
    };
    let policies = ClusterPolicies::spawn(
        server.client().await.unwrap(),
        &settings,
        store.clone(),
        LoadOptions::default(),
        Vec::new(),
    );

    server
        .apply(yaml("policies/gatekeeper/required-labels/template.yaml"))
        .unwrap();
    server
        .apply(yaml(
            "policies/gatekeeper/required-labels/samples/owner-and-tier/constraint.yaml",
        ))
        .unwrap();
    eventually("template and constraint active", || {
        store.current().constraints().len() == 1
    })
    .await;
    assert_eq!(policies.status().templates, 1);
    assert_eq!(store.current().constraints()[0].name(), "owner-and-tier");

    // A second constraint arrives through the watch.
    let mut second =
        yaml("policies/gatekeeper/required-labels/samples/owner-and-tier/constraint.yaml");
    second["metadata"]["name"] = json!("second");
    server.apply(second).unwrap();
    eventually("second constraint", || {
        store.current().constraints().len() == 2
    })
    .await;

    // A broken template is refused; the last good set stays.
    let mut broken = yaml("policies/gatekeeper/required-labels/template.yaml");
    broken["spec"]["targets"][0]["rego"] =
        json!("package k8srequiredlabels\nviolation[{\"msg\": msg}] { msg := }\n");
    server.apply(broken).unwrap();
    eventually("refusal reported", || {
        policies.status().last_error.is_some()
    })
    .await;
    assert!(
        policies
            .status()
            .last_error
            .unwrap()
            .contains("ConstraintTemplate/k8srequiredlabels")
    );
    assert_eq!(
        store.current().constraints().len(),
        2,
        "the last good set stays active"
    );

    // Fixing it clears the error; deleting a constraint removes it.
    server
        .apply(yaml("policies/gatekeeper/required-labels/template.yaml"))
        .unwrap();
    eventually("recovered", || policies.status().last_error.is_none()).await;
    assert!(server.delete(
        "constraints.gatekeeper.sh/v1beta1",
        "K8sRequiredLabels",
        "",
        "second"
    ));
    eventually("constraint removed", || {
        store.current().constraints().len() == 1
    })
    .await;
}

#[tokio::test]
async fn tollgate_policy_is_loaded_validated_and_falls_back() {
    let server = FakeApiServer::start().await.unwrap();
    let crd: Value = yaml_serde::from_str(&tollgate_cluster::crd::crd_yaml().unwrap()).unwrap();
    server.apply(crd).unwrap();
    let store = Arc::new(ConstraintStore::new(ConstraintSet::empty()));
    let settings = PolicySettings {
        gatekeeper: false,
        ..PolicySettings::default()
    };
    let policies = ClusterPolicies::spawn(
        server.client().await.unwrap(),
        &settings,
        store,
        LoadOptions::default(),
        Vec::new(),
    );
    let mut rx = policies.tollgate_policy();

    let policy = |spec: Value| json!({"apiVersion": "tollgate.dev/v1alpha1", "kind": "TollgatePolicy", "metadata": {"name": "default"}, "spec": {"policy": spec}});
    server
        .apply(policy(
            json!({"podSecurity": {"enforce": {"level": "baseline"}}}),
        ))
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|c| c.is_some()))
        .await
        .unwrap()
        .unwrap();
    let loaded = rx.borrow().clone().unwrap();
    assert_eq!(loaded.pod_security.enforce.level.to_string(), "baseline");

    // An unknown field is refused with its name; the previous one stays.
    server.apply(policy(json!({"podSecurty": {}}))).unwrap();
    eventually("refusal", || {
        policies.status().tollgate_policy_error.is_some()
    })
    .await;
    assert!(
        policies
            .status()
            .tollgate_policy_error
            .unwrap()
            .contains("podSecurty")
    );
    assert_eq!(rx.borrow().clone().unwrap(), loaded);

    // Another object name is ignored; deleting ours falls back to the file.
    let mut other = policy(json!({}));
    other["metadata"]["name"] = json!("other");
    server.apply(other).unwrap();
    assert!(server.delete("tollgate.dev/v1alpha1", "TollgatePolicy", "", "default"));
    tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|c| c.is_none()))
        .await
        .unwrap()
        .unwrap();
}

#[test]
fn committed_crd_matches_the_rust_type() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/crds/tollgate.dev_tollgatepolicies.yaml");
    let generated = tollgate_cluster::crd::crd_yaml().unwrap();
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is stale: regenerate it with `tollgate crd > deploy/crds/tollgate.dev_tollgatepolicies.yaml`",
        path.display()
    );
}
