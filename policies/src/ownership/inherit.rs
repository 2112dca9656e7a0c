//! The ownership mutation: missing `deployscope.dev/*` annotations filled
//! in from the namespace (on the object) and from the object (on its pod
//! template), never overriding a value someone set. See the module
//! documentation of [`crate::ownership`] for the rules.

use std::collections::BTreeMap;

use json_patch::jsonptr::{PointerBuf, Token};
use json_patch::{AddOperation, PatchOperation, RemoveOperation};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Map, Value};

use super::{Key, OwnershipConfig, controller_of, namespace_of, validate};
use crate::namespace::NamespaceInfo;
use crate::{Workload, WorkloadKind};

/// The annotation recording which ownership values Tollgate filled in on
/// this metadata, and with which value: a JSON object from key
/// (`owner`) to value.
pub const INHERITED_ANNOTATION: &str = "ownership.tollgate.dev/inherited";

/// The JSON Patch that fills missing ownership annotations (paths from the
/// object's root). Empty when nothing is missing, when inheritance is off,
/// and for objects the check skips (exempt namespaces, other kinds,
/// controlled pods). Applying it and computing it again yields an empty
/// patch.
pub fn inherit(
    workload: &Workload,
    namespace: Option<&NamespaceInfo>,
    config: &OwnershipConfig,
) -> Vec<PatchOperation> {
    let mut ops = Vec::new();
    let ns_name = namespace_of(workload, namespace);
    if !config.inherit || !config.resolve(ns_name).enabled || !config.applies_to(workload.kind) {
        return ops;
    }
    if config.skip_controlled_pods && controller_of(workload.kind, &workload.metadata).is_some() {
        return ops;
    }
    let ignored = workload
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(Key::Ignore.annotation()))
        .is_some_and(|v| v == "true");
    if config.honour_ignore && ignored {
        return ops;
    }
    // Valid namespace values of every key but `ignore`.
    let from_namespace: BTreeMap<Key, String> = namespace
        .map(|ns| {
            Key::ALL
                .into_iter()
                .filter(|k| *k != Key::Ignore)
                .filter_map(|k| {
                    let v = ns.annotations.get(k.annotation())?;
                    validate::problem(k, v).is_none().then(|| (k, v.clone()))
                })
                .collect()
        })
        .unwrap_or_default();
    let object_after = fill(
        &workload.metadata,
        pointer(&["metadata"]),
        &from_namespace,
        &mut ops,
    );
    let has_template = workload.kind != WorkloadKind::Pod
        && !(workload.spec.containers.is_empty() && workload.pod_metadata == ObjectMeta::default());
    if has_template {
        let from_object: BTreeMap<Key, String> = Key::ALL
            .into_iter()
            .filter_map(|k| object_after.get(k.annotation()).map(|v| (k, v.clone())))
            .collect();
        let mut segments: Vec<&str> = workload.kind.template_segments().to_vec();
        segments.push("metadata");
        fill(
            &workload.pod_metadata,
            pointer(&segments),
            &from_object,
            &mut ops,
        );
    }
    ops
}

fn pointer(segments: &[&str]) -> PointerBuf {
    let mut p = PointerBuf::root();
    for s in segments {
        p.push_back(Token::new(*s));
    }
    p
}

/// Fills `meta`'s missing annotations from `source`, appending the
/// operations to `ops`; returns the resulting annotations.
fn fill(
    meta: &ObjectMeta,
    meta_ptr: PointerBuf,
    source: &BTreeMap<Key, String>,
    ops: &mut Vec<PatchOperation>,
) -> BTreeMap<String, String> {
    let original = meta.annotations.clone().unwrap_or_default();
    let mut marker: BTreeMap<String, String> = original
        .get(INHERITED_ANNOTATION)
        .and_then(|m| serde_json::from_str(m).ok())
        .unwrap_or_default();
    let mut annotations = original.clone();
    for key in Key::ALL {
        let current = annotations.get(key.annotation()).cloned();
        let wanted = source.get(&key);
        let recorded = marker.get(key.as_str()).cloned();
        match (current, wanted) {
            (None, Some(value)) => {
                annotations.insert(key.annotation().to_owned(), value.clone());
                marker.insert(key.as_str().to_owned(), value.clone());
            }
            (None, None) => {
                marker.remove(key.as_str());
            }
            (Some(current), wanted) if recorded.as_deref() == Some(current.as_str()) => {
                // Ours: follow the source, keep the value if it went away.
                if let Some(value) = wanted.filter(|v| **v != current) {
                    annotations.insert(key.annotation().to_owned(), value.clone());
                    marker.insert(key.as_str().to_owned(), value.clone());
                }
            }
            (Some(_), _) => {
                // Set by someone: never touched.
                marker.remove(key.as_str());
            }
        }
    }
    if marker.is_empty() {
        annotations.remove(INHERITED_ANNOTATION);
    } else if let Ok(text) = serde_json::to_string(&marker) {
        annotations.insert(INHERITED_ANNOTATION.to_owned(), text);
    }
    if annotations == original {
        return annotations;
    }
    let as_json = |m: &BTreeMap<String, String>| {
        Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect::<Map<String, Value>>(),
        )
    };
    if *meta == ObjectMeta::default() {
        // No metadata at all (or an empty one): add it whole.
        let mut m = Map::new();
        m.insert("annotations".into(), as_json(&annotations));
        ops.push(add(meta_ptr, Value::Object(m)));
        return annotations;
    }
    let mut ann_ptr = meta_ptr;
    ann_ptr.push_back(Token::new("annotations"));
    if meta.annotations.is_none() {
        ops.push(add(ann_ptr, as_json(&annotations)));
        return annotations;
    }
    for (k, v) in &annotations {
        if original.get(k) != Some(v) {
            let mut p = ann_ptr.clone();
            p.push_back(Token::new(k.as_str()));
            ops.push(add(p, Value::String(v.clone())));
        }
    }
    for k in original.keys() {
        if !annotations.contains_key(k) {
            let mut p = ann_ptr.clone();
            p.push_back(Token::new(k.as_str()));
            ops.push(PatchOperation::Remove(RemoveOperation { path: p }));
        }
    }
    annotations
}

fn add(path: PointerBuf, value: Value) -> PatchOperation {
    PatchOperation::Add(AddOperation { path, value })
}
