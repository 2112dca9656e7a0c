//! The admission request the engine judges: the `request` of an
//! `admission.k8s.io/v1` AdmissionReview, typed. Field names and shapes are
//! the Kubernetes ones, so the value serialises back into exactly what
//! Gatekeeper-style Rego expects as `input.review`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Object;
use crate::WorkloadKind;

/// An admission request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    /// Identifies this admission call; echoed in the response.
    #[serde(default)]
    pub uid: String,
    /// The kind of the object (after conversion to the webhook's version).
    #[serde(default)]
    pub kind: GroupVersionKind,
    /// The resource being requested.
    #[serde(default)]
    pub resource: GroupVersionResource,
    /// The subresource (`status`, `ephemeralcontainers`, `scale`, ...).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sub_resource: String,
    /// The kind the client originally requested, when converted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_kind: Option<GroupVersionKind>,
    /// The resource the client originally requested, when converted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_resource: Option<GroupVersionResource>,
    /// The subresource the client originally requested.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub request_sub_resource: String,
    /// The object's name (empty on CREATE with `generateName`).
    #[serde(default)]
    pub name: String,
    /// The namespace (empty for cluster-scoped objects).
    #[serde(default)]
    pub namespace: String,
    /// CREATE, UPDATE, DELETE or CONNECT.
    pub operation: Operation,
    /// Who is asking.
    #[serde(default)]
    pub user_info: UserInfo,
    /// The object as it would be stored (absent on DELETE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<Object>,
    /// The existing object (UPDATE and DELETE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_object: Option<Object>,
    /// True when the request will not be persisted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    /// The operation's options (CreateOptions, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Value>,
}

/// The admission operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Operation {
    /// Object creation.
    #[default]
    Create,
    /// Object update (including subresources such as `ephemeralcontainers`).
    Update,
    /// Object deletion.
    Delete,
    /// `exec`, `attach`, `portforward`, `proxy`.
    Connect,
}

/// API group, version and kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GroupVersionKind {
    /// The API group (`""` for core).
    #[serde(default)]
    pub group: String,
    /// The version.
    #[serde(default)]
    pub version: String,
    /// The kind.
    #[serde(default)]
    pub kind: String,
}

/// API group, version and resource.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GroupVersionResource {
    /// The API group (`""` for core).
    #[serde(default)]
    pub group: String,
    /// The version.
    #[serde(default)]
    pub version: String,
    /// The resource (plural, lower case).
    #[serde(default)]
    pub resource: String,
}

/// The requesting user, as authenticated by kube-apiserver.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// The user name (`system:serviceaccount:NS:NAME` for ServiceAccounts).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    /// A unique id for the user.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// The user's groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Extra authenticator attributes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

impl Operation {
    /// The Kubernetes spelling (`CREATE`).
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl GroupVersionKind {
    /// The `apiVersion` spelling: `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The workload kind, when this is one of the built-in kinds that carry
    /// a pod spec (group and kind both match; a CRD named `Deployment` in
    /// another group is not a workload).
    pub fn workload_kind(&self) -> Option<WorkloadKind> {
        let kind = WorkloadKind::from_kind(&self.kind)?;
        // Every version of the group is judged (apps/v1beta2, batch/v1beta1),
        // and the kinds served from `extensions` before `apps` existed
        // (clusters and manifests still carry extensions/v1beta1 DaemonSets).
        let legacy = self.group == "extensions"
            && matches!(
                kind,
                WorkloadKind::Deployment | WorkloadKind::DaemonSet | WorkloadKind::ReplicaSet
            );
        (workload_group(kind) == self.group || legacy).then_some(kind)
    }

    /// Reads `apiVersion` and `kind` from an object.
    pub fn of_object(object: &Value) -> Option<GroupVersionKind> {
        let api_version = object.get("apiVersion")?.as_str()?;
        let kind = object.get("kind")?.as_str()?;
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        Some(GroupVersionKind {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: kind.to_owned(),
        })
    }
}

/// The API group a workload kind belongs to.
pub fn workload_group(kind: WorkloadKind) -> &'static str {
    match kind {
        WorkloadKind::Pod | WorkloadKind::ReplicationController => "",
        WorkloadKind::Deployment
        | WorkloadKind::ReplicaSet
        | WorkloadKind::StatefulSet
        | WorkloadKind::DaemonSet => "apps",
        WorkloadKind::Job | WorkloadKind::CronJob => "batch",
    }
}

impl UserInfo {
    /// The ServiceAccount (`NS/NAME`) when the user is one.
    pub fn service_account(&self) -> Option<String> {
        let rest = self.username.strip_prefix("system:serviceaccount:")?;
        let (ns, name) = rest.split_once(':')?;
        Some(format!("{ns}/{name}"))
    }
}

impl AdmissionRequest {
    /// A CREATE request for an object read from a manifest, as kube-apiserver
    /// would send it: kind and resource from the object, namespace from the
    /// object or `default_namespace`. Used by offline checks. `None` when
    /// the object has no `apiVersion` or `kind`.
    pub fn for_object(object: Value, default_namespace: &str) -> Option<AdmissionRequest> {
        let kind = GroupVersionKind::of_object(&object)?;
        let meta = object.get("metadata");
        let text = |key: &str| {
            meta.and_then(|m| m.get(key))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        let name = text("name");
        let namespace = match text("namespace") {
            ns if ns.is_empty() && !is_cluster_scoped(&kind) => default_namespace.to_owned(),
            ns => ns,
        };
        let resource = GroupVersionResource {
            group: kind.group.clone(),
            version: kind.version.clone(),
            resource: plural(&kind.kind),
        };
        Some(AdmissionRequest {
            uid: String::new(),
            kind,
            resource,
            name,
            namespace,
            operation: Operation::Create,
            object: Some(Object::from_value(object)),
            ..AdmissionRequest::default()
        })
    }

    /// True when `dryRun` is set.
    pub fn is_dry_run(&self) -> bool {
        self.dry_run.unwrap_or(false)
    }

    /// True when the request is for the core `namespaces` resource itself
    /// (not a subresource).
    pub fn is_namespace(&self) -> bool {
        self.resource.group.is_empty()
            && self.resource.resource == "namespaces"
            && self.sub_resource.is_empty()
    }
}

/// The well-known cluster-scoped kinds (offline checks only need a guess for
/// manifests without a namespace).
fn is_cluster_scoped(kind: &GroupVersionKind) -> bool {
    matches!(
        kind.kind.as_str(),
        "Namespace"
            | "Node"
            | "PersistentVolume"
            | "ClusterRole"
            | "ClusterRoleBinding"
            | "CustomResourceDefinition"
            | "StorageClass"
            | "PriorityClass"
            | "RuntimeClass"
            | "IngressClass"
            | "ValidatingWebhookConfiguration"
            | "MutatingWebhookConfiguration"
            | "ValidatingAdmissionPolicy"
            | "ValidatingAdmissionPolicyBinding"
            | "APIService"
    ) || kind.kind.starts_with("Cluster")
}

/// The resource name of a kind: lower case, plural (`NetworkPolicy` ->
/// `networkpolicies`, `Ingress` -> `ingresses`).
fn plural(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    if lower.ends_with("s") || lower.ends_with("x") || lower.ends_with("ch") {
        format!("{lower}es")
    } else if let Some(stem) = lower
        .strip_suffix('y')
        .filter(|s| !s.ends_with(['a', 'e', 'i', 'o', 'u']))
    {
        format!("{stem}ies")
    } else {
        format!("{lower}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_a_kube_apiserver_request() {
        let req: AdmissionRequest = serde_json::from_value(json!({
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "requestKind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "name": "web", "namespace": "team-a", "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:ci:deployer", "groups": ["system:authenticated"]},
            "object": {"apiVersion": "apps/v1", "kind": "Deployment"},
            "oldObject": null, "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }))
        .unwrap();
        assert_eq!(req.operation, Operation::Create);
        assert_eq!(req.kind.workload_kind(), Some(WorkloadKind::Deployment));
        assert_eq!(
            req.user_info.service_account().as_deref(),
            Some("ci/deployer")
        );
        assert!(req.old_object.is_none());
        assert!(!req.is_dry_run());
        let back = serde_json::to_value(&req).unwrap();
        assert_eq!(
            back["userInfo"]["username"],
            "system:serviceaccount:ci:deployer"
        );
        assert_eq!(back["requestKind"]["kind"], "Deployment");
    }

    #[test]
    fn a_crd_named_like_a_workload_is_not_one() {
        let gvk = GroupVersionKind {
            group: "example.com".into(),
            version: "v1".into(),
            kind: "Deployment".into(),
        };
        assert_eq!(gvk.workload_kind(), None);
    }

    #[test]
    fn legacy_groups_and_versions_are_workloads() {
        let gvk = |group: &str, version: &str, kind: &str| GroupVersionKind {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
        };
        for (g, v, k, want) in [
            (
                "extensions",
                "v1beta1",
                "DaemonSet",
                Some(WorkloadKind::DaemonSet),
            ),
            (
                "extensions",
                "v1beta1",
                "Deployment",
                Some(WorkloadKind::Deployment),
            ),
            (
                "extensions",
                "v1beta1",
                "ReplicaSet",
                Some(WorkloadKind::ReplicaSet),
            ),
            (
                "apps",
                "v1beta2",
                "StatefulSet",
                Some(WorkloadKind::StatefulSet),
            ),
            ("batch", "v1beta1", "CronJob", Some(WorkloadKind::CronJob)),
            ("extensions", "v1beta1", "Job", None),
            ("extensions", "v1beta1", "Pod", None),
        ] {
            assert_eq!(gvk(g, v, k).workload_kind(), want, "{g}/{v} {k}");
        }
    }

    #[test]
    fn builds_requests_for_manifests() {
        let req = AdmissionRequest::for_object(
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "x"}}),
            "default",
        )
        .unwrap();
        assert_eq!(req.resource.resource, "networkpolicies");
        assert_eq!(req.namespace, "default");
        let ns = AdmissionRequest::for_object(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}),
            "default",
        )
        .unwrap();
        assert_eq!(ns.namespace, "");
        assert!(ns.is_namespace());
        assert_eq!(plural("Ingress"), "ingresses");
        assert_eq!(plural("Gateway"), "gateways");
        assert!(AdmissionRequest::for_object(json!({"kind": "Pod"}), "default").is_none());
    }
}
