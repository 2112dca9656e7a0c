//! Checks on kernel interfaces a pod can change: the `/proc` mount type and
//! sysctls.

use super::pod::{PodView, Report};

/// The only `procMount` value that keeps the default `/proc` masks.
const DEFAULT_PROC_MOUNT: &str = "Default";

/// The safe sysctls, with the first policy minor version that allows each.
/// A sysctl is safe when it is namespaced and isolated from other pods.
const SAFE_SYSCTLS: [(&str, u16); 14] = [
    ("kernel.shm_rmid_forced", 0),
    ("net.ipv4.ip_local_port_range", 0),
    ("net.ipv4.tcp_syncookies", 0),
    ("net.ipv4.ping_group_range", 0),
    ("net.ipv4.ip_unprivileged_port_start", 0),
    ("net.ipv4.ip_local_reserved_ports", 27),
    ("net.ipv4.tcp_keepalive_time", 29),
    ("net.ipv4.tcp_fin_timeout", 29),
    ("net.ipv4.tcp_keepalive_intvl", 29),
    ("net.ipv4.tcp_keepalive_probes", 29),
    ("net.ipv4.tcp_rmem", 32),
    ("net.ipv4.tcp_wmem", 32),
    ("net.ipv4.tcp_slow_start_after_idle", 37),
    ("net.ipv4.tcp_notsent_lowat", 37),
];

/// `procMount` (baseline, v1.0–v1.34) and `procMount_restricted`
/// (restricted, v1.35+): `securityContext.procMount` must be undefined or
/// `Default`.
pub(crate) fn proc_mount_strict(pod: &PodView<'_>, report: &mut Report<'_>) {
    proc_mount(pod, report, "");
}

/// `procMount` from v1.35 (baseline): any value is allowed for pods in a
/// user namespace (`spec.hostUsers: false`), where an unmasked `/proc`
/// cannot reach the host.
pub(crate) fn proc_mount_baseline(pod: &PodView<'_>, report: &mut Report<'_>) {
    if !pod.in_user_namespace() {
        proc_mount(
            pod,
            report,
            " (or run the pod in a user namespace with spec.hostUsers=false)",
        );
    }
}

fn proc_mount(pod: &PodView<'_>, report: &mut Report<'_>, alternative: &str) {
    for c in pod.containers() {
        let Some(value) = c.security_context.and_then(|sc| sc.proc_mount.as_deref()) else {
            continue;
        };
        if value != DEFAULT_PROC_MOUNT {
            report.container(
                &c,
                c.path("securityContext.procMount"),
                format_args!(
                    "{} must not set securityContext.procMount to {value:?}; remove it or set it to \"Default\"{alternative}",
                    c.label()
                ),
            );
        }
    }
}

/// `sysctls` (baseline, v1.0+, list grown in v1.27, v1.29, v1.32, v1.37):
/// only safe sysctls may be set (`spec.securityContext.sysctls`, the only
/// place the API accepts them).
pub(crate) fn sysctls(pod: &PodView<'_>, report: &mut Report<'_>) {
    let minor = report.minor();
    let sysctls = pod
        .security_context()
        .and_then(|sc| sc.sysctls.as_deref())
        .unwrap_or_default();
    for (i, sysctl) in sysctls.iter().enumerate() {
        if safe_sysctl(&sysctl.name, minor) {
            continue;
        }
        let allowed: Vec<&str> = SAFE_SYSCTLS
            .iter()
            .filter(|(_, since)| *since <= minor)
            .map(|(name, _)| *name)
            .collect();
        report.pod(
            format!("spec.securityContext.sysctls[{i}].name"),
            format_args!(
                "pod must not set sysctl {:?}; only these sysctls are allowed: {}",
                sysctl.name,
                allowed.join(", ")
            ),
        );
    }
}

/// True when `name` is a safe sysctl at policy minor version `minor`.
pub(crate) fn safe_sysctl(name: &str, minor: u16) -> bool {
    SAFE_SYSCTLS
        .iter()
        .any(|(safe, since)| *safe == name && *since <= minor)
}
