//! Secure defaults: the JSON Patch that fills in the restricted-level
//! security settings a workload leaves unset, without ever changing a value
//! its author set.
//!
//! Per container (init, regular and ephemeral): `allowPrivilegeEscalation:
//! false`, `capabilities.drop: ["ALL"]`, and optionally
//! `readOnlyRootFilesystem: true`. Per pod: `runAsNonRoot: true`,
//! `seccompProfile: {type: RuntimeDefault}`, and optionally a non-root
//! `runAsUser` / `runAsGroup`. Each default can be switched off.
//!
//! Rules, so that the patch never turns a valid pod into an invalid or a
//! differently-behaving one:
//!
//! - Only unset (absent or `null`) fields are added. An explicit
//!   `allowPrivilegeEscalation: true` stays; validation will deny it.
//! - A `capabilities.drop` list without `ALL` gets `ALL` appended: dropping
//!   is additive (the user's entries stay, and dropping everything subsumes
//!   them); `capabilities.add` is never touched.
//! - `allowPrivilegeEscalation: false` is not added to a container that is
//!   `privileged` or adds `CAP_SYS_ADMIN`: the API server refuses both
//!   combinations.
//! - Linux-only settings (everything but `runAsNonRoot`) are not added to
//!   Windows pods (`spec.os.name: windows`, or a `kubernetes.io/os: windows`
//!   node selector): the API server refuses them on `os.name: windows`.
//! - Pods with Windows HostProcess containers are left alone: they run as
//!   host accounts, where none of these settings apply.
//! - `runAsNonRoot: true` is not added when a container that would inherit
//!   it runs explicitly as uid 0: the kubelet would refuse to start it.
//! - The pod-level seccomp profile is not added when the legacy
//!   `seccomp.security.alpha.kubernetes.io/pod` annotation names another
//!   profile than `runtime/default` (or `docker/default`): the API server
//!   refuses a field that disagrees with the annotation.
//!
//! Applying the patch and computing it again yields an empty patch.
//!
//! Pod specs are immutable once created: apply [`secure_defaults`] on
//! CREATE only, and [`ephemeral_container_defaults`] on updates of the
//! `pods/ephemeralcontainers` subresource.

use json_patch::jsonptr::{PointerBuf, Token};
use json_patch::{AddOperation, PatchOperation};
use k8s_openapi::api::core::v1::{PodSpec, SecurityContext};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::workload::Workload;

#[cfg(test)]
mod tests;

/// The capability `drop` entry that drops every capability.
const ALL: &str = "ALL";
/// The capability the API server refuses together with
/// `allowPrivilegeEscalation: false`.
const CAP_SYS_ADMIN: &str = "CAP_SYS_ADMIN";
/// The legacy pod-level seccomp annotation.
const SECCOMP_POD_ANNOTATION: &str = "seccomp.security.alpha.kubernetes.io/pod";
/// The well-known node label naming the node's operating system.
const OS_LABEL: &str = "kubernetes.io/os";

/// Which secure defaults to apply. Every field is optional in a config
/// file (camelCase keys); unknown keys are refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct DefaultsConfig {
    /// Set `allowPrivilegeEscalation: false` on containers that leave it
    /// unset. Default: on.
    pub disallow_privilege_escalation: bool,
    /// Drop every capability (`capabilities.drop: ["ALL"]`), appending
    /// `ALL` to an existing drop list. Default: on.
    pub drop_all_capabilities: bool,
    /// Set the pod's `seccompProfile` to `RuntimeDefault` when unset.
    /// Default: on.
    pub seccomp_runtime_default: bool,
    /// Set the pod's `runAsNonRoot: true` when unset. Images that run as
    /// root then refuse to start; pair with `runAsUser` to run them as a
    /// non-root user instead. Default: on.
    pub run_as_non_root: bool,
    /// Set `readOnlyRootFilesystem: true` on containers that leave it
    /// unset. Off by default: many images write to their root filesystem.
    pub read_only_root_filesystem: bool,
    /// Set the pod's `runAsUser` to this non-root uid (65534 is `nobody`)
    /// when unset. Off by default.
    pub run_as_user: Option<NonRootId>,
    /// Set the pod's `runAsGroup` to this non-root gid when unset. Off by
    /// default.
    pub run_as_group: Option<NonRootId>,
}

impl Default for DefaultsConfig {
    fn default() -> Self {
        DefaultsConfig {
            disallow_privilege_escalation: true,
            drop_all_capabilities: true,
            seccomp_runtime_default: true,
            run_as_non_root: true,
            read_only_root_filesystem: false,
            run_as_user: None,
            run_as_group: None,
        }
    }
}

impl DefaultsConfig {
    /// A configuration that adds nothing.
    pub fn none() -> Self {
        DefaultsConfig {
            disallow_privilege_escalation: false,
            drop_all_capabilities: false,
            seccomp_runtime_default: false,
            run_as_non_root: false,
            read_only_root_filesystem: false,
            run_as_user: None,
            run_as_group: None,
        }
    }
}

/// A Linux user or group id other than root: `1..=2147483647`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct NonRootId(i64);

/// A user or group id that is root or out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not a non-root id: expected 1 to 2147483647")]
pub struct InvalidId(pub i64);

impl NonRootId {
    /// The id, or an error for 0 (root), negatives and ids above
    /// 2147483647 (the API's limit).
    pub fn new(id: i64) -> Result<Self, InvalidId> {
        if (1..=i64::from(i32::MAX)).contains(&id) {
            Ok(NonRootId(id))
        } else {
            Err(InvalidId(id))
        }
    }

    /// The numeric id.
    pub fn get(self) -> i64 {
        self.0
    }
}

impl TryFrom<i64> for NonRootId {
    type Error = InvalidId;

    fn try_from(id: i64) -> Result<Self, InvalidId> {
        NonRootId::new(id)
    }
}

impl From<NonRootId> for i64 {
    fn from(id: NonRootId) -> i64 {
        id.0
    }
}

/// The JSON Patch (RFC 6902, `add` operations only) that applies the
/// configured defaults to every container and to the pod, at the
/// workload's pod template. Empty when nothing is missing. Use on CREATE.
pub fn secure_defaults(workload: &Workload, config: &DefaultsConfig) -> Vec<PatchOperation> {
    let mut ops = Vec::new();
    let Some(pod) = Target::new(workload) else {
        return ops;
    };
    pod.pod_defaults(config, &mut ops);
    for (list, containers) in [
        ("initContainers", workload.spec.init_containers.as_deref()),
        ("containers", Some(workload.spec.containers.as_slice())),
    ] {
        for (i, c) in containers.unwrap_or_default().iter().enumerate() {
            let sc = c.security_context.as_ref();
            pod.container_defaults(list, i, sc, config, &mut ops);
        }
    }
    ephemeral(&pod, workload, config, &mut ops);
    ops
}

/// The JSON Patch that applies the per-container defaults to ephemeral
/// containers only, for updates of the `pods/ephemeralcontainers`
/// subresource (the rest of a pod spec is immutable then). Pod-level
/// settings are not touched.
pub fn ephemeral_container_defaults(
    workload: &Workload,
    config: &DefaultsConfig,
) -> Vec<PatchOperation> {
    let mut ops = Vec::new();
    if let Some(pod) = Target::new(workload) {
        ephemeral(&pod, workload, config, &mut ops);
    }
    ops
}

fn ephemeral(
    pod: &Target<'_>,
    w: &Workload,
    config: &DefaultsConfig,
    ops: &mut Vec<PatchOperation>,
) {
    for (i, c) in w.spec.ephemeral_containers.iter().flatten().enumerate() {
        let sc = c.security_context.as_ref();
        pod.container_defaults("ephemeralContainers", i, sc, config, ops);
    }
}

/// The pod being defaulted and what we know about it.
struct Target<'a> {
    spec: &'a PodSpec,
    /// The pointer of the pod spec (`/spec/template/spec`).
    spec_ptr: PointerBuf,
    windows: bool,
    /// A legacy seccomp annotation that a `RuntimeDefault` field would
    /// contradict.
    seccomp_annotation_conflicts: bool,
}

impl<'a> Target<'a> {
    /// `None` for a workload with nothing to default: no containers at all
    /// (the pod spec may not even exist in the object), or a Windows
    /// HostProcess pod.
    fn new(w: &'a Workload) -> Option<Self> {
        let spec = &w.spec;
        let no_containers = spec.containers.is_empty()
            && spec.init_containers.as_ref().is_none_or(Vec::is_empty)
            && spec.ephemeral_containers.as_ref().is_none_or(Vec::is_empty);
        if no_containers || host_process(spec) {
            return None;
        }
        let mut spec_ptr = PointerBuf::root();
        for seg in w.kind.template_segments() {
            spec_ptr.push_back(Token::new(*seg));
        }
        spec_ptr.push_back(Token::new("spec"));
        let windows = spec.os.as_ref().is_some_and(|os| os.name == "windows")
            || spec
                .node_selector
                .as_ref()
                .and_then(|s| s.get(OS_LABEL))
                .is_some_and(|os| os == "windows");
        let seccomp_annotation_conflicts = w
            .pod_metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(SECCOMP_POD_ANNOTATION))
            .is_some_and(|v| v != "runtime/default" && v != "docker/default");
        Some(Target {
            spec,
            spec_ptr,
            windows,
            seccomp_annotation_conflicts,
        })
    }

    fn ptr(&self, tokens: &[&str]) -> PointerBuf {
        let mut p = self.spec_ptr.clone();
        for t in tokens {
            p.push_back(Token::new(*t));
        }
        p
    }

    fn pod_defaults(&self, config: &DefaultsConfig, ops: &mut Vec<PatchOperation>) {
        let sc = self.spec.security_context.as_ref();
        let mut fields = Map::new();
        let linux = !self.windows;
        let pod_uid = sc.and_then(|sc| sc.run_as_user);
        if let Some(uid) = config.run_as_user.filter(|_| linux && pod_uid.is_none()) {
            fields.insert("runAsUser".into(), json!(uid.get()));
        }
        let pod_gid = sc.and_then(|sc| sc.run_as_group);
        if let Some(gid) = config.run_as_group.filter(|_| linux && pod_gid.is_none()) {
            fields.insert("runAsGroup".into(), json!(gid.get()));
        }
        if config.run_as_non_root
            && sc.and_then(|sc| sc.run_as_non_root).is_none()
            && !self.root_would_inherit(pod_uid.or(config.run_as_user.map(NonRootId::get)))
        {
            fields.insert("runAsNonRoot".into(), json!(true));
        }
        if config.seccomp_runtime_default
            && linux
            && !self.seccomp_annotation_conflicts
            && sc.and_then(|sc| sc.seccomp_profile.as_ref()).is_none()
        {
            fields.insert("seccompProfile".into(), json!({"type": "RuntimeDefault"}));
        }
        if fields.is_empty() {
            return;
        }
        if sc.is_none() {
            ops.push(add(self.ptr(&["securityContext"]), Value::Object(fields)));
        } else {
            for (k, v) in fields {
                ops.push(add(self.ptr(&["securityContext", &k]), v));
            }
        }
    }

    /// True when a container that leaves `runAsNonRoot` unset would run as
    /// uid 0, given the pod-level uid (after defaulting).
    fn root_would_inherit(&self, pod_uid: Option<i64>) -> bool {
        let spec = self.spec;
        let contexts = spec
            .init_containers
            .iter()
            .flatten()
            .chain(spec.containers.iter())
            .map(|c| c.security_context.as_ref())
            .chain(
                spec.ephemeral_containers
                    .iter()
                    .flatten()
                    .map(|c| c.security_context.as_ref()),
            );
        contexts
            .filter(|sc| sc.and_then(|sc| sc.run_as_non_root).is_none())
            .any(|sc| sc.and_then(|sc| sc.run_as_user).or(pod_uid) == Some(0))
    }

    fn container_defaults(
        &self,
        list: &str,
        index: usize,
        sc: Option<&SecurityContext>,
        config: &DefaultsConfig,
        ops: &mut Vec<PatchOperation>,
    ) {
        if self.windows {
            return; // Every per-container default is Linux-only.
        }
        let index = index.to_string();
        let mut fields = Map::new();
        let privileged = sc.and_then(|sc| sc.privileged) == Some(true);
        let caps = sc.and_then(|sc| sc.capabilities.as_ref());
        let adds_sys_admin = caps
            .and_then(|c| c.add.as_ref())
            .is_some_and(|add| add.iter().any(|a| a == CAP_SYS_ADMIN));
        if config.disallow_privilege_escalation
            && sc.and_then(|sc| sc.allow_privilege_escalation).is_none()
            && !privileged
            && !adds_sys_admin
        {
            fields.insert("allowPrivilegeEscalation".into(), json!(false));
        }
        if config.read_only_root_filesystem
            && sc.and_then(|sc| sc.read_only_root_filesystem).is_none()
        {
            fields.insert("readOnlyRootFilesystem".into(), json!(true));
        }
        // Drop ALL: a whole `capabilities` object when there is none, else
        // a `drop` list, else `ALL` appended to the user's list.
        let mut drop_op = None;
        if config.drop_all_capabilities {
            match caps.map(|c| c.drop.as_ref()) {
                None => {
                    fields.insert("capabilities".into(), json!({"drop": [ALL]}));
                }
                Some(None) => {
                    drop_op = Some(add(
                        self.ptr(&[list, &index, "securityContext", "capabilities", "drop"]),
                        json!([ALL]),
                    ))
                }
                Some(Some(drop)) if !drop.iter().any(|d| d == ALL) => {
                    drop_op = Some(add(
                        self.ptr(&[list, &index, "securityContext", "capabilities", "drop", "-"]),
                        json!(ALL),
                    ));
                }
                Some(Some(_)) => {}
            }
        }
        if sc.is_none() {
            if !fields.is_empty() {
                ops.push(add(
                    self.ptr(&[list, &index, "securityContext"]),
                    Value::Object(fields),
                ));
            }
        } else {
            for (k, v) in fields {
                ops.push(add(self.ptr(&[list, &index, "securityContext", &k]), v));
            }
        }
        ops.extend(drop_op);
    }
}

fn host_process(spec: &PodSpec) -> bool {
    let pod = spec
        .security_context
        .as_ref()
        .and_then(|sc| sc.windows_options.as_ref())
        .and_then(|w| w.host_process);
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .filter_map(|c| c.security_context.as_ref())
        .chain(
            spec.ephemeral_containers
                .iter()
                .flatten()
                .filter_map(|c| c.security_context.as_ref()),
        )
        .any(|sc| sc.windows_options.as_ref().and_then(|w| w.host_process) == Some(true));
    pod == Some(true) || containers
}

fn add(path: PointerBuf, value: Value) -> PatchOperation {
    PatchOperation::Add(AddOperation { path, value })
}
