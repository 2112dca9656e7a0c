//! A Kubernetes object carried by an admission request, kept as the JSON
//! text it arrived in and parsed only as far as a policy needs: the pod
//! spec of a workload is read typed in one pass straight from the text,
//! and the generic [`Value`] tree is built only for policies that ask for
//! it ([`Object::value`]), once per request.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::{Workload, WorkloadKind};

/// An object in an admission request.
pub struct Object {
    raw: OnceLock<Box<RawValue>>,
    value: OnceLock<Value>,
}

impl Object {
    /// An object from its parsed value.
    pub fn from_value(value: Value) -> Object {
        Object {
            raw: OnceLock::new(),
            value: OnceLock::from(value),
        }
    }

    /// An object from its JSON text.
    pub fn from_raw(raw: Box<RawValue>) -> Object {
        Object {
            raw: OnceLock::from(raw),
            value: OnceLock::new(),
        }
    }

    /// The object as a JSON value, parsed on first use.
    pub fn value(&self) -> &Value {
        self.value.get_or_init(|| match self.raw.get() {
            // The text is valid JSON (it was parsed once to be captured),
            // and its depth was bounded before that.
            Some(raw) => serde_json::from_str(raw.get()).unwrap_or(Value::Null),
            None => Value::Null,
        })
    }

    /// The value, owned.
    pub fn into_value(self) -> Value {
        self.value();
        self.value.into_inner().unwrap_or(Value::Null)
    }

    /// The JSON text.
    pub fn raw(&self) -> &str {
        self.raw
            .get_or_init(|| {
                serde_json::value::to_raw_value(self.value()).unwrap_or_else(|_| {
                    RawValue::from_string("null".to_owned()).unwrap_or_default()
                })
            })
            .get()
    }

    /// `kind`, if a string.
    pub fn kind(&self) -> Option<&str> {
        match self.value.get() {
            Some(v) => v.get("kind").and_then(Value::as_str),
            None => self.value().get("kind").and_then(Value::as_str),
        }
    }

    /// The workload of `kind` this object holds, read typed from the text
    /// (or from the value when it is already parsed). Errors name the
    /// field at fault.
    pub fn workload(&self, kind: WorkloadKind) -> Result<Workload, String> {
        let count = self.container_count(kind);
        if count > MAX_CONTAINERS {
            return Err(format!(
                "{kind}: {}spec holds {count} containers (containers, initContainers and ephemeralContainers together); more than {MAX_CONTAINERS} is not judged, split the workload",
                kind.template_path()
            ));
        }
        if let Some(value) = self.value.get() {
            return from_value(value, kind);
        }
        let Some(raw) = self.raw.get() else {
            return from_value(self.value(), kind);
        };
        match typed(raw.get(), kind) {
            Ok(Some(workload)) => Ok(workload),
            // Wrong kind or a malformed field: the value path phrases the
            // error exactly.
            Ok(None) | Err(_) => from_value(self.value(), kind),
        }
    }

    /// How many containers the pod template holds, counted without
    /// building them (0 when the shape is not a pod template's: the typed
    /// parse then says what is wrong).
    fn container_count(&self, kind: WorkloadKind) -> usize {
        if let Some(value) = self.value.get() {
            let mut pod = value;
            for seg in kind.template_segments() {
                pod = pod.get(*seg).unwrap_or(&Value::Null);
            }
            return ["containers", "initContainers", "ephemeralContainers"]
                .iter()
                .filter_map(|k| pod.pointer(&format!("/spec/{k}")))
                .filter_map(Value::as_array)
                .map(Vec::len)
                .sum();
        }
        let Some(raw) = self.raw.get() else {
            return 0;
        };
        let text = raw.get();
        let pod = match kind {
            WorkloadKind::Pod => serde_json::from_str::<Counted<CountPod>>(text)
                .ok()
                .and_then(|o| o.spec),
            WorkloadKind::CronJob => serde_json::from_str::<Counted<CountCron>>(text)
                .ok()
                .and_then(|o| o.spec)
                .and_then(|s| s.job_template)
                .and_then(|j| j.spec)
                .and_then(|s| s.template)
                .and_then(|t| t.spec),
            _ => serde_json::from_str::<Counted<CountController>>(text)
                .ok()
                .and_then(|o| o.spec)
                .and_then(|s| s.template)
                .and_then(|t| t.spec),
        };
        pod.map(|p| {
            [p.containers, p.init_containers, p.ephemeral_containers]
                .iter()
                .map(|l| l.as_ref().map_or(0, Vec::len))
                .sum()
        })
        .unwrap_or(0)
    }

    /// True when the object carries a pod template (`spec.template.spec`
    /// or `spec.jobTemplate.spec.template.spec` with a `containers` list),
    /// whatever its kind: a custom resource that creates pods.
    pub fn has_pod_template(&self) -> bool {
        let listed = |pod: Option<CountPod>| pod.is_some_and(|p| p.containers.is_some());
        if let Some(value) = self.value.get() {
            return [
                "/spec/template/spec/containers",
                "/spec/jobTemplate/spec/template/spec/containers",
            ]
            .iter()
            .any(|p| value.pointer(p).is_some_and(Value::is_array));
        }
        let Some(raw) = self.raw.get() else {
            return false;
        };
        let text = raw.get();
        let controller = serde_json::from_str::<Counted<CountController>>(text)
            .ok()
            .and_then(|o| o.spec)
            .and_then(|s| s.template)
            .and_then(|t| t.spec);
        let cron = serde_json::from_str::<Counted<CountCron>>(text)
            .ok()
            .and_then(|o| o.spec)
            .and_then(|s| s.job_template)
            .and_then(|j| j.spec)
            .and_then(|s| s.template)
            .and_then(|t| t.spec);
        listed(controller) || listed(cron)
    }

    /// The annotations of the object and of its pod template (the object's
    /// win), read without building the value tree.
    pub fn annotations(&self, keys: &[&str]) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let shape = match (self.value.get(), self.raw.get()) {
            (None, Some(raw)) => serde_json::from_str::<Annotated>(raw.get()).ok(),
            _ => Annotated::deserialize(self.value()).ok(),
        };
        let Some(shape) = shape else {
            return out;
        };
        let template = shape.spec.and_then(|s| {
            s.template
                .or_else(|| s.job_template.and_then(|j| j.spec).and_then(|s| s.template))
        });
        let sources = [
            shape.metadata.and_then(|m| m.annotations),
            template
                .and_then(|t| t.metadata)
                .and_then(|m| m.annotations),
        ];
        for annotations in sources.into_iter().flatten() {
            for key in keys {
                if let Some(v) = annotations.get(*key) {
                    out.entry((*key).to_owned()).or_insert_with(|| v.clone());
                }
            }
        }
        out
    }
}

/// The most containers (every list together) a pod template may hold to be
/// judged. Kubernetes sets no number, only an object size (1.5 MiB in
/// etcd), which fits tens of thousands of empty containers; judging them
/// all would let one request take seconds and gigabytes.
pub const MAX_CONTAINERS: usize = 1000;

/// Shapes that count containers without building them (`IgnoredAny` takes
/// no space, so a list of them allocates nothing).
#[derive(Deserialize)]
struct Counted<S> {
    // A missing `Option` field is `None` without `default`, which would
    // ask `S: Default`.
    spec: Option<S>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CountPod {
    #[serde(default)]
    containers: Option<Vec<serde::de::IgnoredAny>>,
    #[serde(default)]
    init_containers: Option<Vec<serde::de::IgnoredAny>>,
    #[serde(default)]
    ephemeral_containers: Option<Vec<serde::de::IgnoredAny>>,
}

#[derive(Deserialize)]
struct CountTemplate {
    #[serde(default)]
    spec: Option<CountPod>,
}

#[derive(Deserialize)]
struct CountController {
    #[serde(default)]
    template: Option<CountTemplate>,
}

#[derive(Deserialize)]
struct CountJob {
    #[serde(default)]
    spec: Option<CountController>,
}

#[derive(Deserialize)]
struct CountCron {
    #[serde(default, rename = "jobTemplate")]
    job_template: Option<CountJob>,
}

fn from_value(value: &Value, kind: WorkloadKind) -> Result<Workload, String> {
    let object_kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
    if object_kind != kind.as_str() {
        return Err(format!(
            "kind {object_kind:?} does not match the request's kind {:?}",
            kind.as_str()
        ));
    }
    match Workload::from_object(value) {
        Ok(Some(w)) => Ok(w),
        Ok(None) => Err(format!("{object_kind} carries no pod spec")),
        Err(e) => Err(e.to_string()),
    }
}

#[derive(Deserialize)]
struct PodShape {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    metadata: Option<ObjectMeta>,
    #[serde(default)]
    spec: Option<PodSpec>,
}

#[derive(Deserialize)]
struct TemplateShape {
    #[serde(default)]
    metadata: Option<ObjectMeta>,
    #[serde(default)]
    spec: Option<PodSpec>,
}

#[derive(Deserialize)]
struct ControllerSpec {
    #[serde(default)]
    template: Option<TemplateShape>,
}

#[derive(Deserialize)]
struct ControllerShape {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    metadata: Option<ObjectMeta>,
    #[serde(default)]
    spec: Option<ControllerSpec>,
}

#[derive(Deserialize)]
struct JobTemplate {
    #[serde(default)]
    spec: Option<ControllerSpec>,
}

#[derive(Deserialize)]
struct CronSpec {
    #[serde(default, rename = "jobTemplate")]
    job_template: Option<JobTemplate>,
}

#[derive(Deserialize)]
struct CronShape {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    metadata: Option<ObjectMeta>,
    #[serde(default)]
    spec: Option<CronSpec>,
}

/// Typed parse; `Ok(None)` when the object's kind is not `kind`.
fn typed(text: &str, kind: WorkloadKind) -> Result<Option<Workload>, serde_json::Error> {
    let (object_kind, metadata, template) = match kind {
        WorkloadKind::Pod => {
            let s: PodShape = serde_json::from_str(text)?;
            let metadata = s.metadata.unwrap_or_default();
            let pod = TemplateShape {
                metadata: Some(metadata.clone()),
                spec: s.spec,
            };
            (s.kind, metadata, Some(pod))
        }
        WorkloadKind::CronJob => {
            let s: CronShape = serde_json::from_str(text)?;
            let template = s
                .spec
                .and_then(|s| s.job_template)
                .and_then(|j| j.spec)
                .and_then(|s| s.template);
            (s.kind, s.metadata.unwrap_or_default(), template)
        }
        _ => {
            let s: ControllerShape = serde_json::from_str(text)?;
            let template = s.spec.and_then(|s| s.template);
            (s.kind, s.metadata.unwrap_or_default(), template)
        }
    };
    if object_kind != kind.as_str() {
        return Ok(None);
    }
    let (pod_metadata, spec) = match template {
        Some(t) => (t.metadata.unwrap_or_default(), t.spec.unwrap_or_default()),
        None => (ObjectMeta::default(), PodSpec::default()),
    };
    Ok(Some(Workload {
        kind,
        metadata,
        pod_metadata,
        spec,
    }))
}

#[derive(Deserialize)]
struct Annotated {
    #[serde(default)]
    metadata: Option<AnnotatedMeta>,
    #[serde(default)]
    spec: Option<AnnotatedSpec>,
}

#[derive(Deserialize)]
struct AnnotatedMeta {
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct AnnotatedTemplate {
    #[serde(default)]
    metadata: Option<AnnotatedMeta>,
}

#[derive(Deserialize)]
struct AnnotatedSpec {
    #[serde(default)]
    template: Option<AnnotatedTemplate>,
    #[serde(default, rename = "jobTemplate")]
    job_template: Option<AnnotatedJob>,
}

#[derive(Deserialize)]
struct AnnotatedJob {
    #[serde(default)]
    spec: Option<Box<AnnotatedSpec>>,
}

impl Clone for Object {
    fn clone(&self) -> Self {
        Object {
            raw: self.raw.clone(),
            value: self.value.clone(),
        }
    }
}

impl PartialEq for Object {
    fn eq(&self, other: &Self) -> bool {
        self.value() == other.value()
    }
}

impl fmt::Debug for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.value.get() {
            Some(v) => write!(f, "Object({v})"),
            None => write!(f, "Object({})", self.raw()),
        }
    }
}

impl From<Value> for Object {
    fn from(value: Value) -> Self {
        Object::from_value(value)
    }
}

impl Serialize for Object {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match (self.value.get(), self.raw.get()) {
            (Some(v), _) => v.serialize(s),
            (None, Some(raw)) => raw.serialize(s),
            (None, None) => Value::Null.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(d).map(Object::from_raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn raw(v: &Value) -> Object {
        Object::from_raw(serde_json::value::to_raw_value(v).unwrap())
    }

    #[test]
    fn typed_and_value_paths_agree_for_every_kind() {
        let pod = json!({"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
        for kind in WorkloadKind::ALL {
            let mut obj = json!({"apiVersion": "v1", "kind": kind.as_str(), "metadata": {"name": "w", "annotations": {"x": "1"}}});
            if kind == WorkloadKind::Pod {
                obj["spec"] = pod["spec"].clone();
                obj["metadata"]["labels"] = pod["metadata"]["labels"].clone();
            } else {
                let mut cur = &mut obj;
                for seg in kind.template_segments() {
                    cur = &mut cur[*seg];
                }
                *cur = pod.clone();
            }
            let fast = raw(&obj).workload(kind).unwrap();
            let slow = Workload::from_object(&obj).unwrap().unwrap();
            assert_eq!(fast.spec, slow.spec, "{kind}");
            assert_eq!(fast.metadata, slow.metadata, "{kind}");
            assert_eq!(fast.pod_metadata, slow.pod_metadata, "{kind}");
            let o = raw(&obj);
            assert!(o.value.get().is_none());
            assert_eq!(
                o.annotations(&["x"]).get("x").map(String::as_str),
                Some("1")
            );
            assert!(
                o.value.get().is_none(),
                "annotations do not build the value"
            );
        }
    }

    #[test]
    fn errors_come_from_the_value_path() {
        let bad = json!({"kind": "Pod", "spec": {"containers": 42}});
        let err = raw(&bad).workload(WorkloadKind::Pod).unwrap_err();
        assert!(
            err.contains("Pod <unnamed>: spec: invalid type: integer `42`"),
            "{err}"
        );
        let other = json!({"kind": "ConfigMap"});
        let err = raw(&other).workload(WorkloadKind::Deployment).unwrap_err();
        assert_eq!(
            err,
            "kind \"ConfigMap\" does not match the request's kind \"Deployment\""
        );
    }

    #[test]
    fn round_trips_and_compares_by_value() {
        let v = json!({"kind": "Pod", "metadata": {"name": "p"}});
        let a = raw(&v);
        let b = Object::from_value(v.clone());
        assert_eq!(a, b);
        assert_eq!(serde_json::to_value(&a).unwrap(), v);
        assert_eq!(serde_json::to_value(&b).unwrap(), v);
        let c: Object = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(c.into_value(), v);
        assert_eq!(b.raw(), r#"{"kind":"Pod","metadata":{"name":"p"}}"#);
        assert_eq!(b.kind(), Some("Pod"));
    }
}
