//! The injection patch: the JSON Patch operations that make a pod match
//! its [`Template`], computed as a difference so that a pod that already
//! matches (re-invocation, a re-applied manifest) gets no operation at all.
//!
//! Order matters (operations apply one after another, indices shift):
//! annotations, then volumes, then the agents' environment and mounts at
//! their original container indices, then the sidecar is removed from
//! wherever it was and inserted where the mode puts it.

use json_patch::jsonptr::{PointerBuf, Token};
use json_patch::{AddOperation, PatchOperation, RemoveOperation, ReplaceOperation};
use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec};
use serde_json::Value;

use super::compare;
use super::config::InjectionMode;
use super::names::{ANNOTATION_VERSION, SIDECAR_NAME};
use super::template::Template;

/// The operations, and warnings for the person applying the pod.
#[derive(Debug, Default)]
pub struct Patch {
    /// JSON Patch operations, paths from the pod's root.
    pub ops: Vec<PatchOperation>,
    /// Admission warnings (values of theirs the injection replaced).
    pub notes: Vec<String>,
}

/// Which containers are agents (get the proxy environment) in this mode:
/// regular containers always; init containers only with a native sidecar,
/// which starts before them.
pub fn agent_lists(mode: InjectionMode) -> &'static [&'static str] {
    match mode {
        InjectionMode::Native => &["initContainers", "containers"],
        InjectionMode::Legacy => &["containers"],
    }
}

/// The patch that makes `pod` (its JSON and typed spec) match `template`.
pub fn compute(pod: &Value, spec: &PodSpec, template: &Template) -> Patch {
    let mut patch = Patch::default();
    annotations(pod, template, &mut patch);
    volumes(spec, template, &mut patch);
    for list in agent_lists(template.mode) {
        let containers = containers(spec, list);
        for (i, c) in containers.iter().enumerate() {
            if c.name != SIDECAR_NAME {
                agent(list, i, c, template, &mut patch);
            }
        }
    }
    sidecar(spec, template, &mut patch);
    patch
}

/// The patch of a `pods/ephemeralcontainers` UPDATE: every ephemeral
/// container that is new (not in `old`) gets the agents' environment and
/// trust mount, like any agent. Containers already in the pod are left
/// alone: the API server refuses changes to them.
pub fn ephemeral(spec: &PodSpec, old: Option<&PodSpec>, template: &Template) -> Patch {
    let mut patch = Patch::default();
    let existing: Vec<&str> = old
        .and_then(|o| o.ephemeral_containers.as_ref())
        .into_iter()
        .flatten()
        .map(|e| e.name.as_str())
        .collect();
    for (i, e) in spec.ephemeral_containers.iter().flatten().enumerate() {
        if !existing.contains(&e.name.as_str()) {
            let c = super::bypass::as_container(e);
            agent("ephemeralContainers", i, &c, template, &mut patch);
        }
    }
    patch
}

fn annotations(pod: &Value, template: &Template, patch: &mut Patch) {
    let current = pod
        .pointer("/metadata/annotations")
        .and_then(Value::as_object);
    let value = Value::String(template.version.clone());
    match current {
        None => patch.ops.push(add(
            ptr(&["metadata", "annotations"]),
            serde_json::json!({ ANNOTATION_VERSION: template.version }),
        )),
        Some(map) => match map.get(ANNOTATION_VERSION) {
            Some(v) if *v == value => {}
            Some(_) => patch.ops.push(replace(
                ptr(&["metadata", "annotations", ANNOTATION_VERSION]),
                value,
            )),
            None => patch.ops.push(add(
                ptr(&["metadata", "annotations", ANNOTATION_VERSION]),
                value,
            )),
        },
    }
}

fn volumes(spec: &PodSpec, template: &Template, patch: &mut Patch) {
    let Some(existing) = &spec.volumes else {
        patch.ops.push(add(
            ptr(&["spec", "volumes"]),
            Value::Array(template.volumes.clone()),
        ));
        return;
    };
    for (want, json) in template.volumes_typed.iter().zip(&template.volumes) {
        match existing
            .iter()
            .enumerate()
            .find(|(_, v)| v.name == want.name)
        {
            Some((_, have)) if compare::volume_differences(have, want).is_empty() => {}
            Some((i, _)) => {
                patch.notes.push(format!(
                    "Tollgate replaced volume {:?}: the name is reserved for the injected sidecar",
                    want.name
                ));
                patch.ops.push(replace(
                    ptr(&["spec", "volumes", &i.to_string()]),
                    json.clone(),
                ));
            }
            None => patch
                .ops
                .push(add(ptr(&["spec", "volumes", "-"]), json.clone())),
        }
    }
}

fn agent(list: &str, index: usize, c: &Container, template: &Template, patch: &mut Patch) {
    let idx = index.to_string();
    let wanted = template.agent_env_vars();
    match &c.env {
        None => patch.ops.push(add(
            ptr(&["spec", list, &idx, "env"]),
            serde_json::to_value(&wanted).unwrap_or(Value::Null),
        )),
        Some(env) => {
            for want in &wanted {
                let value = serde_json::to_value(want).unwrap_or(Value::Null);
                let mut found = false;
                for (j, have) in env.iter().enumerate() {
                    if have.name != want.name {
                        continue;
                    }
                    found = true;
                    if !same_env(have, want) {
                        patch.notes.push(format!(
                            "Tollgate set {} of container {:?} to the sidecar's value: agents' traffic goes through the sidecar",
                            want.name, c.name
                        ));
                        patch.ops.push(replace(
                            ptr(&["spec", list, &idx, "env", &j.to_string()]),
                            value.clone(),
                        ));
                    }
                }
                if !found {
                    patch
                        .ops
                        .push(add(ptr(&["spec", list, &idx, "env", "-"]), value));
                }
            }
        }
    }
    let Some(mount) = &template.agent_mount else {
        return;
    };
    let value = serde_json::to_value(mount).unwrap_or(Value::Null);
    match &c.volume_mounts {
        None => patch.ops.push(add(
            ptr(&["spec", list, &idx, "volumeMounts"]),
            Value::Array(vec![value]),
        )),
        Some(mounts) => match mounts
            .iter()
            .enumerate()
            .find(|(_, m)| m.name == mount.name)
        {
            Some((_, have))
                if have.mount_path == mount.mount_path
                    && have.read_only == Some(true)
                    && have.sub_path.is_none() => {}
            Some((j, _)) => patch.ops.push(replace(
                ptr(&["spec", list, &idx, "volumeMounts", &j.to_string()]),
                value,
            )),
            None => patch
                .ops
                .push(add(ptr(&["spec", list, &idx, "volumeMounts", "-"]), value)),
        },
    }
}

fn same_env(have: &EnvVar, want: &EnvVar) -> bool {
    have.value_from.is_none()
        && have.value.as_deref().unwrap_or("") == want.value.as_deref().unwrap_or("")
}

fn sidecar(spec: &PodSpec, template: &Template, patch: &mut Patch) {
    let (target, other) = match template.mode {
        InjectionMode::Native => ("initContainers", "containers"),
        InjectionMode::Legacy => ("containers", "initContainers"),
    };
    let in_target = containers(spec, target);
    let first_is_ours = in_target.first().is_some_and(|c| {
        c.name == SIDECAR_NAME
            && compare::sidecar_differences(c, &template.sidecar_typed).is_empty()
    });
    let stray_in_target = in_target
        .iter()
        .enumerate()
        .filter(|(i, c)| c.name == SIDECAR_NAME && !(*i == 0 && first_is_ours))
        .map(|(i, _)| i)
        .collect::<Vec<_>>();
    let stray_in_other = containers(spec, other)
        .iter()
        .enumerate()
        .filter(|(_, c)| c.name == SIDECAR_NAME)
        .map(|(i, _)| i)
        .collect::<Vec<_>>();
    if first_is_ours && stray_in_target.is_empty() && stray_in_other.is_empty() {
        return;
    }
    if !stray_in_target.is_empty() || !stray_in_other.is_empty() {
        patch.notes.push(format!(
            "Tollgate replaced the container named {SIDECAR_NAME:?} with the injected sidecar: the name is reserved"
        ));
    }
    // Remove from the highest index down so earlier indices stay valid.
    for i in stray_in_other.iter().rev() {
        patch
            .ops
            .push(remove(ptr(&["spec", other, &i.to_string()])));
    }
    for i in stray_in_target.iter().rev() {
        patch
            .ops
            .push(remove(ptr(&["spec", target, &i.to_string()])));
    }
    if first_is_ours {
        return;
    }
    let target_absent = match template.mode {
        InjectionMode::Native => spec.init_containers.is_none(),
        InjectionMode::Legacy => false,
    };
    if target_absent {
        patch.ops.push(add(
            ptr(&["spec", target]),
            Value::Array(vec![template.sidecar.clone()]),
        ));
    } else {
        patch
            .ops
            .push(add(ptr(&["spec", target, "0"]), template.sidecar.clone()));
    }
}

/// The containers of one list (`initContainers`, `containers`).
pub fn containers<'a>(spec: &'a PodSpec, list: &str) -> &'a [Container] {
    match list {
        "initContainers" => spec.init_containers.as_deref().unwrap_or(&[]),
        _ => &spec.containers,
    }
}

fn ptr(tokens: &[&str]) -> PointerBuf {
    let mut p = PointerBuf::root();
    for t in tokens {
        p.push_back(Token::new(*t));
    }
    p
}

fn add(path: PointerBuf, value: Value) -> PatchOperation {
    PatchOperation::Add(AddOperation { path, value })
}

fn replace(path: PointerBuf, value: Value) -> PatchOperation {
    PatchOperation::Replace(ReplaceOperation { path, value })
}

fn remove(path: PointerBuf) -> PatchOperation {
    PatchOperation::Remove(RemoveOperation { path })
}
