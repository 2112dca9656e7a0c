//! What keeps the sidecar's view of the network and its process to
//! itself: the pod may not choose how names resolve (the sidecar shares
//! the pod's `/etc/hosts` and `resolv.conf`, so a pod-chosen address for
//! an allowed host name would be approved and dialled), an ephemeral
//! container may not join the sidecar's process namespace or run as its
//! user, and in namespaces that enforce injection nothing below Pod
//! Security `baseline` (host namespaces, host paths, added capabilities,
//! unconfined seccomp or AppArmor, unmasked `/proc`, privilege escalation)
//! is admitted, whatever the namespace's Pod Security level.

use k8s_openapi::api::core::v1::{EphemeralContainer, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tollgate_policies::{Level, Version};

use super::bypass::Problem;
use super::names::SIDECAR_NAME;
use super::patch::containers;
use super::template::SIDECAR_UID;

/// `hostAliases`, `dnsPolicy: None`/`Default` and pod-chosen name servers
/// or search domains.
pub fn name_resolution(spec: &PodSpec, out: &mut Vec<Problem>) {
    let problem = |path: &str, message: String| Problem {
        rule: "nameResolution",
        path: path.to_owned(),
        container: None,
        message,
    };
    if spec.host_aliases.as_ref().is_some_and(|a| !a.is_empty()) {
        out.push(problem(
            "spec.hostAliases",
            "hostAliases write addresses into the pod's /etc/hosts, which the sidecar reads too, so it would connect an allowed host name to the pod's chosen address; remove hostAliases".into(),
        ));
    }
    if let Some(policy @ ("None" | "Default")) = spec.dns_policy.as_deref() {
        out.push(problem(
            "spec.dnsPolicy",
            format!(
                "dnsPolicy: {policy} replaces the cluster's DNS with {} for the whole pod, the sidecar included, so it would connect allowed host names to addresses it cannot vouch for; use dnsPolicy: ClusterFirst (or leave it out)",
                if policy == "None" { "the pod's own dnsConfig" } else { "the node's resolver" }
            ),
        ));
    }
    if let Some(config) = &spec.dns_config {
        if config.nameservers.as_ref().is_some_and(|n| !n.is_empty()) {
            out.push(problem(
                "spec.dnsConfig.nameservers",
                "dnsConfig.nameservers adds name servers the pod chooses, which the sidecar would ask too; remove them".into(),
            ));
        }
        if config.searches.as_ref().is_some_and(|s| !s.is_empty()) {
            out.push(problem(
                "spec.dnsConfig.searches",
                "dnsConfig.searches adds search domains the pod chooses, so an allowed host name could resolve inside a domain the pod controls; remove them".into(),
            ));
        }
    }
}

/// An ephemeral container targeting the sidecar or running as its user.
pub fn ephemeral(at: &str, e: &EphemeralContainer, spec: &PodSpec, out: &mut Vec<Problem>) {
    if e.target_container_name.as_deref() == Some(SIDECAR_NAME) {
        out.push(Problem {
            rule: "ephemeralTarget",
            path: format!("{at}.targetContainerName"),
            container: Some(e.name.clone()),
            message: format!(
                "ephemeral container {:?} targets {SIDECAR_NAME}, whose process namespace would let it read the sidecar's CA key, journal and signing key through /proc and stop the proxy; target an agent container instead",
                e.name
            ),
        });
    }
    let user = e
        .security_context
        .as_ref()
        .and_then(|sc| sc.run_as_user)
        .or_else(|| spec.security_context.as_ref().and_then(|sc| sc.run_as_user));
    if user == Some(SIDECAR_UID) {
        out.push(Problem {
            rule: "sidecarUser",
            path: format!("{at}.securityContext.runAsUser"),
            container: Some(e.name.clone()),
            message: format!(
                "ephemeral container {:?} runs as uid {SIDECAR_UID}, the sidecar's user, which may signal and inspect the sidecar's processes; run it as another user",
                e.name
            ),
        });
    }
}

/// Pod Security `baseline` and explicit privilege escalation, for a
/// namespace that enforces injection. The sidecar itself is restricted.
pub fn baseline(meta: &ObjectMeta, spec: &PodSpec, out: &mut Vec<Problem>) {
    let why = "its namespace enforces sidecar injection (tollgate.dev/inject=enforced), where nothing may reach the sidecar's process, files or network, whatever the Pod Security level";
    let found = tollgate_policies::pss::check_pod(Level::Baseline, Version::Latest, meta, spec);
    for v in found {
        if v.container.as_deref() == Some(SIDECAR_NAME) || out.iter().any(|p| p.path == v.path) {
            continue;
        }
        out.push(Problem {
            rule: "belowBaseline",
            path: v.path,
            container: v.container,
            message: format!("{}; {why}", v.message),
        });
    }
    let lists = [
        ("initContainers", containers(spec, "initContainers")),
        ("containers", containers(spec, "containers")),
    ];
    let mut escalating: Vec<(String, String)> = Vec::new();
    for (list, cs) in lists {
        for (i, c) in cs.iter().enumerate() {
            if c.security_context
                .as_ref()
                .and_then(|sc| sc.allow_privilege_escalation)
                == Some(true)
            {
                escalating.push((format!("spec.{list}[{i}]"), c.name.clone()));
            }
        }
    }
    for (i, e) in spec.ephemeral_containers.iter().flatten().enumerate() {
        if e.security_context
            .as_ref()
            .and_then(|sc| sc.allow_privilege_escalation)
            == Some(true)
        {
            escalating.push((format!("spec.ephemeralContainers[{i}]"), e.name.clone()));
        }
    }
    for (at, name) in escalating {
        if name == SIDECAR_NAME {
            continue;
        }
        out.push(Problem {
            rule: "privilegeEscalation",
            path: format!("{at}.securityContext.allowPrivilegeEscalation"),
            container: Some(name.clone()),
            message: format!(
                "container {name:?} allows privilege escalation (setuid binaries become root); set allowPrivilegeEscalation: false, because {why}"
            ),
        });
    }
}
