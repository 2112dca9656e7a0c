//! Anti-bypass checks: wherever injection applies, a pod must carry the
//! sidecar exactly as the template renders it, and nothing in the pod may
//! route around it or reach its private volumes. Every problem is reported
//! at once, each naming the field and the fix.

use k8s_openapi::api::core::v1::{
    Container, EphemeralContainer, PodSpec, SecurityContext, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::compare;
use super::config::InjectionMode;
use super::names::{SIDECAR_NAME, SIDECAR_ONLY_VOLUMES, VOLUME_TRUST};
use super::patch::{agent_lists, containers};
use super::template::{PROXY_ENV, Template};
use super::{escape, isolation};

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The rule id (`sidecarMissing`, `proxyEnv`, ...).
    pub rule: &'static str,
    /// The field, relative to the pod (`spec.containers[1].env`).
    pub path: String,
    /// The container at fault, if any.
    pub container: Option<String>,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// What to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A Pod at creation: after injection it must match the template.
    Pod,
    /// A controller's pod template: the sidecar is added when its Pods are
    /// created, so only what would make those Pods fail is checked.
    PodTemplate,
    /// A Pod after creation (an UPDATE, an ephemeral container): everything
    /// [`Scope::Pod`] checks except the comparison with the current
    /// template, which the UPDATE check replaces by a comparison with the
    /// pod as it was admitted ([`super::update`]).
    Running,
}

/// Every problem with a pod (`meta`, `spec`) for `template`; `enforced`
/// when its namespace is `tollgate.dev/inject=enforced`.
pub fn check(
    meta: &ObjectMeta,
    spec: &PodSpec,
    template: &Template,
    scope: Scope,
    enforced: bool,
) -> Vec<Problem> {
    let mut out = Vec::new();
    if scope == Scope::Pod {
        sidecar(spec, template, &mut out);
    }
    isolation::name_resolution(spec, &mut out);
    if spec.host_network == Some(true) {
        out.push(Problem {
            rule: "hostNetwork",
            path: "spec.hostNetwork".into(),
            container: None,
            message: "hostNetwork: true puts the agents on the node's network, around the sidecar (and the sidecar's ports on the node); remove hostNetwork".into(),
        });
    }
    if spec.share_process_namespace == Some(true) {
        out.push(Problem {
            rule: "shareProcessNamespace",
            path: "spec.shareProcessNamespace".into(),
            container: None,
            message: "shareProcessNamespace: true lets agents reach the sidecar's process and files (audit spool, CA key) through /proc; remove shareProcessNamespace".into(),
        });
    }
    let lists: [(&str, &[Container]); 2] = [
        ("initContainers", containers(spec, "initContainers")),
        ("containers", containers(spec, "containers")),
    ];
    for (list, cs) in lists {
        for (i, c) in cs.iter().enumerate() {
            let at = format!("spec.{list}[{i}]");
            let ours = c.name == SIDECAR_NAME;
            if !ours {
                mounts(&at, &c.name, c.volume_mounts.as_deref(), &mut out);
            }
            capabilities(&at, &c.name, c.security_context.as_ref(), &mut out);
            if !ours && agent_lists(template.mode).contains(&list) {
                proxy_env(&at, c, template, scope, &mut out);
                escape::check(&at, c, enforced, &mut out);
            }
        }
    }
    for (i, e) in spec.ephemeral_containers.iter().flatten().enumerate() {
        let at = format!("spec.ephemeralContainers[{i}]");
        let c = as_container(e);
        mounts(&at, &c.name, c.volume_mounts.as_deref(), &mut out);
        capabilities(&at, &c.name, c.security_context.as_ref(), &mut out);
        isolation::ephemeral(&at, e, spec, &mut out);
        if scope != Scope::PodTemplate {
            proxy_env(&at, &c, template, scope, &mut out);
            escape::check(&at, &c, enforced, &mut out);
        }
    }
    if enforced {
        isolation::baseline(meta, spec, &mut out);
    }
    out
}

/// An ephemeral container as a container (the same fields, less the
/// target): the checks and the patch treat it like any agent.
pub fn as_container(e: &EphemeralContainer) -> Container {
    serde_json::to_value(e)
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_else(|| Container {
            name: e.name.clone(),
            ..Container::default()
        })
}

fn sidecar(spec: &PodSpec, template: &Template, out: &mut Vec<Problem>) {
    let (list, placement) = match template.mode {
        InjectionMode::Native => (
            "initContainers",
            "the first init container, with restartPolicy: Always",
        ),
        InjectionMode::Legacy => ("containers", "the first container"),
    };
    let found = ["initContainers", "containers"].iter().find_map(|l| {
        containers(spec, l)
            .iter()
            .enumerate()
            .find(|(_, c)| c.name == SIDECAR_NAME)
            .map(|(i, c)| (*l, i, c))
    });
    let fix = "remove any tollgate-sidecar container and tollgate-* volumes from the manifest and create the pod through Tollgate's mutating webhook, which injects them (check that its MutatingWebhookConfiguration covers this namespace)";
    match found {
        None => out.push(Problem {
            rule: "sidecarMissing",
            path: format!("spec.{list}"),
            container: None,
            message: format!(
                "the pod has no {SIDECAR_NAME} container, but sidecar injection applies to it; {fix}"
            ),
        }),
        Some((l, i, c)) => {
            if l != list || i != 0 {
                out.push(Problem {
                    rule: "sidecarPlacement",
                    path: format!("spec.{l}[{i}]"),
                    container: Some(SIDECAR_NAME.into()),
                    message: format!("{SIDECAR_NAME} must be {placement}; {fix}"),
                });
            }
            let diff = compare::sidecar_differences(c, &template.sidecar_typed);
            if !diff.is_empty() {
                out.push(Problem {
                    rule: "sidecarModified",
                    path: format!("spec.{l}[{i}]"),
                    container: Some(SIDECAR_NAME.into()),
                    message: format!(
                        "{SIDECAR_NAME} differs from the injection template (template {}) in {}; {fix}",
                        template.version,
                        diff.join(", ")
                    ),
                });
            }
        }
    }
    let volumes = spec.volumes.as_deref().unwrap_or(&[]);
    let mut missing = Vec::new();
    for want in &template.volumes_typed {
        match volumes
            .iter()
            .enumerate()
            .find(|(_, v)| v.name == want.name)
        {
            None => missing.push(format!("{:?}", want.name)),
            Some((i, have)) => {
                let diff = compare::volume_differences(have, want);
                if !diff.is_empty() {
                    out.push(Problem {
                        rule: "volumeModified",
                        path: format!("spec.volumes[{i}]"),
                        container: None,
                        message: format!(
                            "volume {:?} differs from the injection template in {}; {fix}",
                            want.name,
                            diff.join(", ")
                        ),
                    });
                }
            }
        }
    }
    if !missing.is_empty() {
        out.push(Problem {
            rule: "volumeMissing",
            path: "spec.volumes".into(),
            container: None,
            message: format!(
                "the injected sidecar's volume{} {} {} missing; {fix}",
                if missing.len() == 1 { "" } else { "s" },
                missing.join(", "),
                if missing.len() == 1 { "is" } else { "are" }
            ),
        });
    }
}

fn mounts(at: &str, name: &str, mounts: Option<&[VolumeMount]>, out: &mut Vec<Problem>) {
    for (j, m) in mounts.unwrap_or(&[]).iter().enumerate() {
        if SIDECAR_ONLY_VOLUMES.contains(&m.name.as_str()) {
            out.push(Problem {
                rule: "reservedVolumeMount",
                path: format!("{at}.volumeMounts[{j}]"),
                container: Some(name.to_owned()),
                message: format!(
                    "container {name:?} mounts {:?}, which only {SIDECAR_NAME} may mount (it holds the {}); remove this volumeMount",
                    m.name,
                    if m.name == "tollgate-audit" { "audit spool" } else { "interception CA key" }
                ),
            });
        } else if m.name == VOLUME_TRUST && m.read_only != Some(true) {
            out.push(Problem {
                rule: "reservedVolumeMount",
                path: format!("{at}.volumeMounts[{j}]"),
                container: Some(name.to_owned()),
                message: format!(
                    "container {name:?} mounts {VOLUME_TRUST:?} writable, so it could replace the trust bundle; set readOnly: true"
                ),
            });
        }
    }
}

fn capabilities(at: &str, name: &str, sc: Option<&SecurityContext>, out: &mut Vec<Problem>) {
    let Some(sc) = sc else {
        return;
    };
    if sc.privileged == Some(true) {
        out.push(Problem {
            rule: "netCapability",
            path: format!("{at}.securityContext.privileged"),
            container: Some(name.to_owned()),
            message: format!(
                "container {name:?} is privileged, so it holds NET_ADMIN and can reroute the pod's traffic around the sidecar; remove privileged: true"
            ),
        });
    }
    for cap in sc
        .capabilities
        .as_ref()
        .and_then(|c| c.add.as_ref())
        .into_iter()
        .flatten()
    {
        let bare = cap.to_ascii_uppercase();
        let bare = bare.strip_prefix("CAP_").unwrap_or(&bare);
        if bare == "NET_ADMIN" || bare == "NET_RAW" || bare == "ALL" {
            out.push(Problem {
                rule: "netCapability",
                path: format!("{at}.securityContext.capabilities.add"),
                container: Some(name.to_owned()),
                message: format!(
                    "container {name:?} adds capability {cap}, which can reroute or forge the pod's traffic around the sidecar; remove it from capabilities.add"
                ),
            });
        }
    }
}

fn proxy_env(at: &str, c: &Container, template: &Template, scope: Scope, out: &mut Vec<Problem>) {
    let env = c.env.as_deref().unwrap_or(&[]);
    let mut missing: Vec<&str> = Vec::new();
    for (name, want) in &template.agent_env {
        if !PROXY_ENV.contains(&name.as_str()) {
            continue;
        }
        let entries: Vec<(usize, &k8s_openapi::api::core::v1::EnvVar)> = env
            .iter()
            .enumerate()
            .filter(|(_, e)| &e.name == name)
            .collect();
        if entries.is_empty() {
            missing.push(name.as_str());
            continue;
        }
        for (j, e) in entries {
            let same = e.value_from.is_none() && e.value.as_deref() == Some(want.as_str());
            if !same {
                let have = match (&e.value, &e.value_from) {
                    (_, Some(_)) => "a valueFrom reference".to_owned(),
                    (Some(v), None) => format!("{v:?}"),
                    (None, None) => "\"\"".to_owned(),
                };
                out.push(Problem {
                    rule: "proxyEnv",
                    path: format!("{at}.env[{j}]"),
                    container: Some(c.name.clone()),
                    message: format!(
                        "container {:?} sets {name} to {have}, which would send its traffic around the sidecar (Tollgate sets {want:?}); remove {name} from the container's env",
                        c.name
                    ),
                });
            }
        }
    }
    if scope != Scope::PodTemplate && !missing.is_empty() {
        out.push(Problem {
            rule: "proxyEnv",
            path: format!("{at}.env"),
            container: Some(c.name.clone()),
            message: format!(
                "container {:?} lacks the sidecar's proxy environment ({}), so its traffic would not go through the sidecar; let Tollgate's mutating webhook set it",
                c.name,
                missing.join(", ")
            ),
        });
    }
}
