//! The Rego input document of the packs, built once per object.
//!
//! For kinds that carry a pod spec, the packs get a projection of the
//! object: the fields they read (listed below), not the whole object. That
//! keeps the conversion into Rego values, which costs more than the
//! evaluation of most rules, small. A rule that needs another field adds it
//! here. Other kinds (Ingress, Service, PersistentVolumeClaim, ...) are
//! passed whole, without `status` and `metadata.managedFields`.
//!
//! Image references are parsed here once ([`super::image`]) and passed as
//! `input.images`, keyed by the reference as written.

use serde_json::Value;

use super::config::{ResolvedParameters, Scope};
use super::image;
use super::rego::{RegoError, key, to_rego, to_rego_without};
use crate::WorkloadKind;
use crate::namespace::NamespaceInfo;

/// Object metadata fields the packs read.
const META: &[&str] = &["name", "namespace", "labels", "annotations"];
/// Pod spec fields the packs read.
const POD_SPEC: &[&str] = &[
    "initContainers",
    "containers",
    "ephemeralContainers",
    "securityContext",
    "serviceAccountName",
    "serviceAccount",
    "automountServiceAccountToken",
    "nodeSelector",
    "affinity",
    "os",
    "volumes",
    "restartPolicy",
];
/// Container fields the packs read.
const CONTAINER: &[&str] = &[
    "name",
    "image",
    "env",
    "resources",
    "livenessProbe",
    "readinessProbe",
    "securityContext",
];
/// Environment variable fields the packs read.
const ENV: &[&str] = &["name", "value"];
/// Volume fields the packs read.
const VOLUME: &[&str] = &["name", "ephemeral"];
/// Affinity fields the packs read.
const AFFINITY: &[&str] = &["nodeAffinity"];
/// Container security context fields the packs read.
const CONTAINER_SECURITY: &[&str] = &["readOnlyRootFilesystem", "runAsUser"];
/// Pod security context fields the packs read.
const POD_SECURITY: &[&str] = &["runAsUser"];

/// A Rego object under construction.
struct Obj(regorus::value::Object);

impl Obj {
    fn new() -> Obj {
        Obj(regorus::value::Object::new())
    }

    fn set(&mut self, k: &str, value: regorus::Value) {
        self.0.insert(key(k), value);
    }

    fn done(self) -> regorus::Value {
        self.0.into_value()
    }
}

/// Builds the input document for `object` (of kind `kind`).
pub(crate) fn build(
    object: &Value,
    kind: &str,
    namespace: Option<&NamespaceInfo>,
    scope: &Scope,
    rules: &[&str],
) -> Result<regorus::Value, RegoError> {
    let mut input = Obj::new();
    match WorkloadKind::from_kind(kind) {
        Some(workload) => {
            let mut template = object;
            for seg in workload.template_segments() {
                template = template.get(*seg).unwrap_or(&Value::Null);
            }
            let mut obj = Obj::new();
            for key in ["apiVersion", "kind"] {
                if let Some(v) = object.get(key) {
                    obj.set(key, to_rego(v)?);
                }
            }
            obj.set("metadata", pick(object.get("metadata"), META)?);
            if let Some(t) = object.pointer("/spec/volumeClaimTemplates") {
                let mut spec = Obj::new();
                spec.set("volumeClaimTemplates", to_rego(t)?);
                obj.set("spec", spec.done());
            }
            let spec = template.get("spec");
            input.set("images", images(spec));
            let mut pod = Obj::new();
            pod.set("metadata", pick(template.get("metadata"), META)?);
            pod.set("spec", pod_spec(spec)?);
            input.set("object", obj.done());
            input.set("pod", pod.done());
            input.set("podPath", workload.template_path().into());
        }
        None => input.set("object", to_rego_without(object, &["status"])?),
    }
    input.set("kind", kind.into());
    input.set("namespace", namespace_value(namespace, scope));
    let mut enabled = Obj::new();
    for r in rules {
        enabled.set(r, true.into());
    }
    input.set("rules", enabled.done());
    input.set("params", params_value(&scope.parameters));
    Ok(input.done())
}

/// The listed fields of an object (`{}` when it is not one).
fn pick(value: Option<&Value>, fields: &[&str]) -> Result<regorus::Value, RegoError> {
    pick_with(value, fields, |_, v| to_rego(v))
}

/// The listed fields of an object, each converted by `convert`.
fn pick_with(
    value: Option<&Value>,
    fields: &[&str],
    convert: impl Fn(&str, &Value) -> Result<regorus::Value, RegoError>,
) -> Result<regorus::Value, RegoError> {
    let mut out = Obj::new();
    if let Some(Value::Object(map)) = value {
        for f in fields {
            if let Some(v) = map.get(*f) {
                out.set(f, convert(f, v)?);
            }
        }
    }
    Ok(out.done())
}

/// Each element of a list converted by `each`; a non-list as it is.
fn each(
    value: &Value,
    each: impl Fn(&Value) -> Result<regorus::Value, RegoError>,
) -> Result<regorus::Value, RegoError> {
    match value {
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                out.push(each(item)?);
            }
            Ok(regorus::Value::from(out))
        }
        other => to_rego(other),
    }
}

fn container(c: &Value) -> Result<regorus::Value, RegoError> {
    pick_with(Some(c), CONTAINER, |field, v| match field {
        "env" => each(v, |e| pick(Some(e), ENV)),
        "securityContext" => pick(Some(v), CONTAINER_SECURITY),
        // The packs only ask whether a probe is set.
        "livenessProbe" | "readinessProbe" if v.is_object() => Ok(regorus::Value::from(true)),
        _ => to_rego(v),
    })
}

fn pod_spec(spec: Option<&Value>) -> Result<regorus::Value, RegoError> {
    pick_with(spec, POD_SPEC, |field, v| match field {
        "initContainers" | "containers" | "ephemeralContainers" => each(v, container),
        "volumes" => each(v, |vol| pick(Some(vol), VOLUME)),
        "affinity" => pick(Some(v), AFFINITY),
        "securityContext" => pick(Some(v), POD_SECURITY),
        _ => to_rego(v),
    })
}

/// Every image of the pod spec, parsed: `{image: {registry, repository,
/// tag, digest}}`.
fn images(spec: Option<&Value>) -> regorus::Value {
    let mut out = Obj::new();
    let mut seen: Vec<&str> = Vec::new();
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        let containers = spec.and_then(|s| s.get(list)).and_then(Value::as_array);
        for c in containers.into_iter().flatten() {
            let Some(image) = c.get("image").and_then(Value::as_str) else {
                continue;
            };
            if seen.contains(&image) {
                continue;
            }
            seen.push(image);
            let r = image::parse(image);
            let mut m = Obj::new();
            m.set("registry", r.registry.as_str().into());
            m.set("repository", r.repository.as_str().into());
            m.set("tag", r.tag.as_str().into());
            m.set("digest", r.digest.as_str().into());
            out.set(image, m.done());
        }
    }
    out.done()
}

fn strings(list: &[String]) -> regorus::Value {
    regorus::Value::from(
        list.iter()
            .map(|s| regorus::Value::from(s.as_str()))
            .collect::<Vec<_>>(),
    )
}

fn namespace_value(namespace: Option<&NamespaceInfo>, scope: &Scope) -> regorus::Value {
    let map = |m: Option<&std::collections::BTreeMap<String, String>>| {
        let mut o = Obj::new();
        for (k, v) in m.into_iter().flatten() {
            o.set(k, v.as_str().into());
        }
        o.done()
    };
    let mut ns = Obj::new();
    ns.set("name", scope.namespace.as_str().into());
    ns.set("labels", map(namespace.map(|n| &n.labels)));
    ns.set("annotations", map(namespace.map(|n| &n.annotations)));
    ns.done()
}

fn params_value(p: &ResolvedParameters) -> regorus::Value {
    let mut o = Obj::new();
    o.set("allowedRegistries", strings(&p.allowed_registries));
    // "ghcr.io/acme" matches that repository and everything under it: the
    // packs test `repository + "/"` against these prefixes.
    let prefixes: Vec<String> = p
        .allowed_registries
        .iter()
        .map(|r| format!("{r}/"))
        .collect();
    o.set("allowedRegistryPrefixes", strings(&prefixes));
    o.set("requireDigest", p.require_digest.into());
    o.set("requireCpuLimit", p.require_cpu_limit.into());
    o.set("allowedStorageClasses", strings(&p.allowed_storage_classes));
    o.set("allowedRegions", strings(&p.allowed_regions));
    o.set(
        "auditedClassifications",
        strings(&p.audited_classifications),
    );
    o.set(
        "residencyClassifications",
        strings(&p.residency_classifications),
    );
    o.set(
        "sidecarContainerName",
        p.sidecar_container_name.as_str().into(),
    );
    o.done()
}
