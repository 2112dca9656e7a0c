//! Updates that change nothing a policy judges. Like Pod Security
//! Admission for pods, an UPDATE that leaves unchanged every field a policy
//! set reads is admitted: that set's violations become warnings instead of
//! a refusal. Otherwise an object that violates a level raised after it was
//! created could never be scaled, annotated by its controller, or have its
//! finalizers removed by the garbage collector (it would stay Terminating).
//!
//! Each policy set says what it reads ([`super::Evaluator::judged_unchanged`]);
//! the default view is the whole object without the fields only controllers
//! and the API server write (status, bookkeeping metadata, finalizers, owner
//! references, the replica count, controller annotations). On an object
//! being deleted, metadata is left out of the view too: it is going away,
//! and the garbage collector must be able to release it.

use serde_json::Value;

use super::{Context, Findings, Object, Operation};
use crate::{EnforcementAction, PolicySet};

/// Metadata fields only the API server and controllers write.
const BOOKKEEPING_METADATA: [&str; 10] = [
    "resourceVersion",
    "generation",
    "managedFields",
    "finalizers",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "ownerReferences",
    "uid",
    "creationTimestamp",
    "selfLink",
];

/// Annotations controllers write on the objects they manage (the
/// deployment controller's revision, the daemon set controller's template
/// generation).
const CONTROLLER_ANNOTATION_PREFIXES: [&str; 2] = [
    "deployment.kubernetes.io/",
    "deprecated.daemonset.template.generation",
];

/// True for a plain UPDATE with both objects present: the requests where an
/// unchanged view means nothing new is being judged.
pub fn is_update(ctx: &Context<'_>) -> bool {
    ctx.request.operation == Operation::Update
        && ctx.object.is_some()
        && ctx.request.old_object.is_some()
}

/// True when the old object is being deleted (`metadata.deletionTimestamp`
/// set).
pub fn is_terminating(ctx: &Context<'_>) -> bool {
    ctx.request
        .old_object
        .as_ref()
        .and_then(|o| o.value().pointer("/metadata/deletionTimestamp"))
        .is_some_and(|t| !t.is_null())
}

/// The default test: the object, without what only controllers and the API
/// server write, is the same before and after.
pub fn object_unchanged(ctx: &Context<'_>) -> bool {
    let (Some(new), Some(old)) = (ctx.object, ctx.request.old_object.as_ref()) else {
        return false;
    };
    let terminating = is_terminating(ctx);
    view(new, terminating) == view(old, terminating)
}

/// The object as policies on its contents read it.
fn view(object: &Object, terminating: bool) -> Value {
    let mut value = object.value().clone();
    let Some(map) = value.as_object_mut() else {
        return value;
    };
    map.remove("status");
    if let Some(spec) = map.get_mut("spec").and_then(Value::as_object_mut) {
        // The scale subresource writes only this, and is not judged either.
        spec.remove("replicas");
    }
    if terminating {
        map.remove("metadata");
        return value;
    }
    if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in BOOKKEEPING_METADATA {
            meta.remove(key);
        }
        if let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            annotations.retain(|k, _| {
                !CONTROLLER_ANNOTATION_PREFIXES
                    .iter()
                    .any(|p| k.starts_with(p))
            });
        }
    }
    value
}

/// True when an UPDATE leaves the pod template (a Pod's own metadata and
/// spec) as it was: what Pod Security reads of a controller.
pub fn template_unchanged(ctx: &Context<'_>) -> bool {
    match (ctx.workload, ctx.old_workload) {
        (Some(new), Some(old)) if is_update(ctx) => {
            new.pod_metadata == old.pod_metadata && new.spec == old.spec
        }
        _ => false,
    }
}

/// True when an UPDATE leaves the annotations under `prefix` (on the object
/// and on its pod template) as they were, or the object is being deleted.
pub fn annotations_unchanged(ctx: &Context<'_>, prefix: &str) -> bool {
    let (Some(new), Some(old)) = (ctx.workload, ctx.old_workload) else {
        return false;
    };
    if !is_update(ctx) {
        return false;
    }
    if is_terminating(ctx) {
        return true;
    }
    let pick = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        meta.annotations
            .iter()
            .flatten()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<Vec<_>>()
    };
    pick(&new.metadata) == pick(&old.metadata) && pick(&new.pod_metadata) == pick(&old.pod_metadata)
}

/// Turns a policy set's refusals into warnings, with a note saying why.
pub fn admit_unchanged(policy: PolicySet, findings: &mut Findings) {
    let mut downgraded = 0usize;
    for v in &mut findings.violations {
        if v.action == EnforcementAction::Deny {
            v.action = EnforcementAction::Warn;
            downgraded += 1;
        }
    }
    if downgraded > 0 {
        findings.warnings.push(format!(
            "{}: this update changes nothing {} judges, so the object's {downgraded} existing violation{} {} not refused; fix {} at the next change",
            policy.as_str(),
            policy.as_str(),
            if downgraded == 1 { "" } else { "s" },
            if downgraded == 1 { "is" } else { "are" },
            if downgraded == 1 { "it" } else { "them" },
        ));
        findings.audit_annotations.insert(
            format!("{}.unchanged-update", policy.as_str()),
            format!("{downgraded} existing violations not enforced"),
        );
    }
}
