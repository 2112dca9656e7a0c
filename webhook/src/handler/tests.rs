//! Controller updates of objects that violate the policies in force, as
//! kube-apiserver sends them: none may be refused unless it changes what a
//! policy judges, or a workload created before a level was raised could
//! never be scaled, rolled by its controller or released by the garbage
//! collector.

use serde_json::{Value, json};
use tollgate_policies::PolicySet;
use tollgate_policies::config::PolicyConfig;
use tollgate_policies::engine::{Options, Snapshot};

use super::*;

/// Restricted Pod Security, required ownership annotations and the PCI-DSS
/// pack, all enforced in `payments`.
fn snapshot() -> Snapshot {
    let config: PolicyConfig = serde_json::from_value(json!({
        "namespaces": {"payments": {"labels": {
            "pss.tollgate.dev/enforce": "restricted",
            "compliance.tollgate.dev/profiles": "pci-dss"
        }}},
        "ownership": {"enabled": true, "action": "deny"},
        "compliance": {"enabled": true}
    }))
    .unwrap();
    Snapshot::from_config(&config)
}

/// A Deployment violating all three sets: privileged, no owner, no
/// resource limits.
fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {
            "name": "legacy", "namespace": "payments", "uid": "7d5c0c4e-1b4f-4a9c-9d0e-2f1c3b4a5d6e",
            "resourceVersion": "4711", "generation": 1,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "annotations": {"deployment.kubernetes.io/revision": "1"},
            "managedFields": [{"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "apps/v1"}]
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "legacy"}},
            "template": {
                "metadata": {"labels": {"app": "legacy"}},
                "spec": {"containers": [{"name": "app", "image": "registry.example/legacy:1",
                    "securityContext": {"privileged": true}}]}
            }
        },
        "status": {"replicas": 2, "readyReplicas": 2, "observedGeneration": 1}
    })
}

fn review(request: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})).unwrap()
}

fn request(operation: &str, user: &str, object: &Value, old: Option<&Value>) -> Value {
    let mut r = json!({
        "uid": "b7a5c1e2-0d6f-4f7e-9a51-3c2d1e0f9a8b",
        "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
        "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
        "requestKind": {"group": "apps", "version": "v1", "kind": "Deployment"},
        "requestResource": {"group": "apps", "version": "v1", "resource": "deployments"},
        "name": "legacy", "namespace": "payments", "operation": operation,
        "userInfo": {"username": user, "groups": ["system:serviceaccounts", "system:authenticated"]},
        "object": object,
        "oldObject": old,
        "dryRun": false,
        "options": {"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1"}
    });
    if operation == "CREATE" {
        r["options"] = json!({"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"});
    }
    r
}

fn judge(request: Value) -> tollgate_policies::engine::Evaluation {
    let snapshot = snapshot();
    let (_, evaluation) = decide(
        &snapshot,
        Endpoint::Validate,
        &review(request),
        64,
        &Options::default(),
    )
    .unwrap();
    evaluation
}

fn denied_sets(evaluation: &tollgate_policies::engine::Evaluation) -> Vec<PolicySet> {
    let mut sets: Vec<PolicySet> = evaluation
        .verdict
        .with_action(EnforcementAction::Deny)
        .map(|v| v.policy)
        .collect();
    sets.dedup();
    sets
}

#[test]
fn the_deployment_violates_every_policy_set_on_create() {
    let evaluation = judge(request("CREATE", "alice", &deployment(), None));
    assert!(!evaluation.allowed());
    assert_eq!(
        denied_sets(&evaluation),
        [
            PolicySet::PodSecurity,
            PolicySet::Ownership,
            PolicySet::Compliance
        ]
    );
}

#[test]
fn full_object_replicas_update_is_admitted_with_warnings() {
    let old = deployment();
    let mut new = old.clone();
    new["spec"]["replicas"] = json!(4);
    new["metadata"]["generation"] = json!(2);
    let evaluation = judge(request("UPDATE", "alice", &new, Some(&old)));
    assert!(evaluation.allowed(), "{:?}", evaluation.denial());
    let warnings = evaluation.warnings().join("\n");
    for set in ["pod-security", "ownership", "compliance"] {
        assert!(
            warnings.contains(&format!("{set}: this update changes nothing {set} judges")),
            "{warnings}"
        );
    }
    assert!(
        warnings.contains("securityContext.privileged"),
        "{warnings}"
    );
}

#[test]
fn deployment_controller_revision_annotation_is_admitted() {
    let old = deployment();
    let mut new = old.clone();
    new["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = json!("2");
    new["metadata"]["resourceVersion"] = json!("4712");
    let evaluation = judge(request(
        "UPDATE",
        "system:serviceaccount:kube-system:deployment-controller",
        &new,
        Some(&old),
    ));
    assert!(evaluation.allowed(), "{:?}", evaluation.denial());
}

#[test]
fn garbage_collector_removing_foreground_deletion_finalizer_is_admitted() {
    let mut old = deployment();
    old["metadata"]["deletionTimestamp"] = json!("2026-12-07T10:00:00Z");
    old["metadata"]["deletionGracePeriodSeconds"] = json!(0);
    old["metadata"]["finalizers"] = json!(["foregroundDeletion"]);
    let mut new = old.clone();
    new["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("finalizers");
    new["metadata"]["resourceVersion"] = json!("4713");
    let evaluation = judge(request(
        "UPDATE",
        "system:serviceaccount:kube-system:generic-garbage-collector",
        &new,
        Some(&old),
    ));
    assert!(evaluation.allowed(), "{:?}", evaluation.denial());
}

#[test]
fn scale_subresource_is_admitted() {
    let scale = |n: u32| {
        json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
            "metadata": {"name": "legacy", "namespace": "payments", "uid": "7d5c0c4e-1b4f-4a9c-9d0e-2f1c3b4a5d6e", "resourceVersion": "4711", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"replicas": n},
            "status": {"replicas": 2, "selector": "app=legacy"}})
    };
    let mut r = request(
        "UPDATE",
        "system:serviceaccount:kube-system:horizontal-pod-autoscaler",
        &scale(4),
        Some(&scale(2)),
    );
    r["kind"] = json!({"group": "autoscaling", "version": "v1", "kind": "Scale"});
    r["requestKind"] = r["kind"].clone();
    r["subResource"] = json!("scale");
    r["requestSubResource"] = json!("scale");
    let evaluation = judge(r);
    assert!(evaluation.allowed(), "{:?}", evaluation.denial());
}

#[test]
fn status_subresource_is_admitted() {
    let old = deployment();
    let mut new = old.clone();
    new["status"]["readyReplicas"] = json!(1);
    let mut r = request(
        "UPDATE",
        "system:serviceaccount:kube-system:deployment-controller",
        &new,
        Some(&old),
    );
    r["subResource"] = json!("status");
    r["requestSubResource"] = json!("status");
    let evaluation = judge(r);
    assert!(evaluation.allowed(), "{:?}", evaluation.denial());
}

#[test]
fn changing_the_template_is_still_refused() {
    let old = deployment();
    let mut new = old.clone();
    new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("registry.example/legacy:2");
    let evaluation = judge(request("UPDATE", "alice", &new, Some(&old)));
    assert!(!evaluation.allowed());
    assert!(denied_sets(&evaluation).contains(&PolicySet::PodSecurity));
}

#[test]
fn labelling_the_object_does_not_excuse_compliance() {
    // A user change to what the compliance rules read (the whole object
    // but bookkeeping) is judged in full.
    let old = deployment();
    let mut new = old.clone();
    new["metadata"]["labels"] = json!({"team": "payments"});
    let evaluation = judge(request("UPDATE", "alice", &new, Some(&old)));
    assert!(denied_sets(&evaluation).contains(&PolicySet::Compliance));
    assert!(!denied_sets(&evaluation).contains(&PolicySet::PodSecurity));
}
