//! Turning a Kubernetes object into a [`Workload`]: the pod spec a policy
//! judges, wherever the object keeps it (a Pod's `spec`, a Deployment's
//! `spec.template.spec`, a CronJob's `spec.jobTemplate.spec.template.spec`).

use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use crate::PolicyError;

/// The kinds of object that carry a pod spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkloadKind {
    /// `v1/Pod`.
    Pod,
    /// `apps/v1 Deployment`.
    Deployment,
    /// `apps/v1 ReplicaSet`.
    ReplicaSet,
    /// `apps/v1 StatefulSet`.
    StatefulSet,
    /// `apps/v1 DaemonSet`.
    DaemonSet,
    /// `batch/v1 Job`.
    Job,
    /// `batch/v1 CronJob`.
    CronJob,
    /// `v1/ReplicationController`.
    ReplicationController,
}

impl WorkloadKind {
    /// Every workload kind.
    pub const ALL: [WorkloadKind; 8] = [
        WorkloadKind::Pod,
        WorkloadKind::Deployment,
        WorkloadKind::ReplicaSet,
        WorkloadKind::StatefulSet,
        WorkloadKind::DaemonSet,
        WorkloadKind::Job,
        WorkloadKind::CronJob,
        WorkloadKind::ReplicationController,
    ];

    /// The kind for a `kind` field, if it is a workload kind.
    pub fn from_kind(kind: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == kind)
    }

    /// The Kubernetes `kind` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Pod => "Pod",
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::ReplicaSet => "ReplicaSet",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::Job => "Job",
            WorkloadKind::CronJob => "CronJob",
            WorkloadKind::ReplicationController => "ReplicationController",
        }
    }

    /// Where the pod template lives inside the object, as path segments
    /// (empty for a Pod, whose `metadata` and `spec` are the pod's own).
    pub fn template_segments(self) -> &'static [&'static str] {
        match self {
            WorkloadKind::Pod => &[],
            WorkloadKind::CronJob => &["spec", "jobTemplate", "spec", "template"],
            _ => &["spec", "template"],
        }
    }

    /// The dotted field path of the pod template, with a trailing dot
    /// (`""` for a Pod, `"spec.template."` for a Deployment). Violation paths
    /// are written relative to the pod (`spec.containers[0]...`) and
    /// prefixed with this.
    pub fn template_path(self) -> &'static str {
        match self {
            WorkloadKind::Pod => "",
            WorkloadKind::CronJob => "spec.jobTemplate.spec.template.",
            _ => "spec.template.",
        }
    }

    /// The JSON pointer of the pod template (`""` for a Pod,
    /// `"/spec/template"` for a Deployment), for building JSON Patches.
    pub fn template_pointer(self) -> &'static str {
        match self {
            WorkloadKind::Pod => "",
            WorkloadKind::CronJob => "/spec/jobTemplate/spec/template",
            _ => "/spec/template",
        }
    }
}

impl std::fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An object with a pod spec, parsed into typed values.
#[derive(Debug, Clone)]
pub struct Workload {
    /// What kind of object this is.
    pub kind: WorkloadKind,
    /// The object's own metadata (name, namespace, labels, annotations).
    pub metadata: ObjectMeta,
    /// The pod's metadata: the object's own for a Pod, the template's
    /// otherwise. Pod Security checks read annotations from here.
    pub pod_metadata: ObjectMeta,
    /// The pod spec.
    pub spec: PodSpec,
}

impl Workload {
    /// Extracts the workload from an object, or `Ok(None)` when the
    /// object's kind carries no pod spec. An object of a workload kind whose
    /// pod spec does not match the Kubernetes schema is an error.
    pub fn from_object(object: &Value) -> Result<Option<Workload>, PolicyError> {
        let Some(kind) = object.get("kind").and_then(Value::as_str) else {
            return Err(PolicyError::InvalidObject("object has no kind".into()));
        };
        let Some(kind) = WorkloadKind::from_kind(kind) else {
            return Ok(None);
        };
        let metadata = parse_meta(object.get("metadata"), "metadata")?;
        let mut template = object;
        for seg in kind.template_segments() {
            template = template.get(*seg).unwrap_or(&Value::Null);
        }
        let pod_metadata = if kind == WorkloadKind::Pod {
            metadata.clone()
        } else {
            parse_meta(template.get("metadata"), "template metadata")?
        };
        let spec = match template.get("spec") {
            None | Some(Value::Null) => PodSpec::default(),
            Some(spec) => PodSpec::deserialize(spec).map_err(|e| {
                PolicyError::InvalidObject(format!(
                    "{kind} {}: {}spec: {e}",
                    metadata.name.as_deref().unwrap_or("<unnamed>"),
                    kind.template_path()
                ))
            })?,
        };
        Ok(Some(Workload {
            kind,
            metadata,
            pod_metadata,
            spec,
        }))
    }

    /// The object's name, or `""` when it has none (generateName objects).
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or("")
    }

    /// The object's namespace, if set in the object.
    pub fn namespace(&self) -> Option<&str> {
        self.metadata.namespace.as_deref()
    }
}

use serde::Deserialize as _;

fn parse_meta(meta: Option<&Value>, what: &str) -> Result<ObjectMeta, PolicyError> {
    match meta {
        None | Some(Value::Null) => Ok(ObjectMeta::default()),
        Some(m) => ObjectMeta::deserialize(m)
            .map_err(|e| PolicyError::InvalidObject(format!("{what}: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_the_pod_template_of_every_kind() {
        let pod = json!({"spec": {"containers": [{"name": "c", "image": "i"}]}});
        for kind in WorkloadKind::ALL {
            let mut obj = json!({"kind": kind.as_str(), "metadata": {"name": "w"}});
            if kind == WorkloadKind::Pod {
                obj["spec"] = pod["spec"].clone();
            } else {
                let mut cur = &mut obj;
                for seg in kind.template_segments() {
                    cur = &mut cur[*seg];
                }
                *cur = pod.clone();
            }
            let w = Workload::from_object(&obj).unwrap().unwrap();
            assert_eq!(w.spec.containers[0].name, "c", "{kind}");
        }
    }

    #[test]
    fn other_kinds_are_not_workloads_and_bad_specs_are_errors() {
        assert!(
            Workload::from_object(&json!({"kind": "ConfigMap"}))
                .unwrap()
                .is_none()
        );
        assert!(Workload::from_object(&json!({"metadata": {}})).is_err());
        let bad = json!({"kind": "Pod", "spec": {"containers": "nope"}});
        assert!(Workload::from_object(&bad).is_err());
    }
}
