//! Checks on what a container may do beyond an ordinary process:
//! privileged mode, privilege escalation and Linux capabilities.

use super::pod::{PodView, Report};

/// The capabilities baseline lets a container add: the container runtime's
/// default set (`NET_RAW` excluded).
const BASELINE_CAPABILITIES: [&str; 13] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// The one capability restricted lets a container add back.
const NET_BIND_SERVICE: &str = "NET_BIND_SERVICE";

/// The `drop` entry restricted requires.
const ALL: &str = "ALL";

/// `privileged` (baseline, v1.0+): privileged containers disable most
/// isolation. Allowed: undefined or `false`.
pub(crate) fn privileged(pod: &PodView<'_>, report: &mut Report<'_>) {
    for c in pod.containers() {
        if c.security_context.and_then(|sc| sc.privileged) == Some(true) {
            report.container(
                &c,
                c.path("securityContext.privileged"),
                format_args!(
                    "{} must not set securityContext.privileged=true; remove it or set it to false",
                    c.label()
                ),
            );
        }
    }
}

/// `capabilities_baseline` (baseline, v1.0+): containers may only add
/// capabilities from the default set. Names are compared exactly, as Pod
/// Security Admission does (`CAP_CHOWN` is not `CHOWN`).
pub(crate) fn capabilities_baseline(pod: &PodView<'_>, report: &mut Report<'_>) {
    for c in pod.containers() {
        let added = c
            .security_context
            .and_then(|sc| sc.capabilities.as_ref())
            .and_then(|caps| caps.add.as_deref())
            .unwrap_or_default();
        for (i, cap) in added.iter().enumerate() {
            if BASELINE_CAPABILITIES.contains(&cap.as_str()) {
                continue;
            }
            report.container(
                &c,
                c.path(&format!("securityContext.capabilities.add[{i}]")),
                format_args!(
                    "{} must not add capability {cap:?} in securityContext.capabilities.add; only {} may be added",
                    c.label(),
                    BASELINE_CAPABILITIES.join(", ")
                ),
            );
        }
    }
}

/// `allowPrivilegeEscalation` (restricted, v1.8+): every container must
/// set `allowPrivilegeEscalation: false`; undefined is a violation.
pub(crate) fn allow_privilege_escalation(pod: &PodView<'_>, report: &mut Report<'_>) {
    for c in pod.containers() {
        let value = c
            .security_context
            .and_then(|sc| sc.allow_privilege_escalation);
        if value != Some(false) {
            let now = if value == Some(true) { "true" } else { "unset" };
            report.container(
                &c,
                c.path("securityContext.allowPrivilegeEscalation"),
                format_args!(
                    "{} must set securityContext.allowPrivilegeEscalation=false (it is {now})",
                    c.label()
                ),
            );
        }
    }
}

/// `allowPrivilegeEscalation` from v1.25: Windows pods are exempt.
pub(crate) fn allow_privilege_escalation_linux(pod: &PodView<'_>, report: &mut Report<'_>) {
    if !pod.is_windows() {
        allow_privilege_escalation(pod, report);
    }
}

/// `capabilities_restricted` (restricted, v1.22+): every container must
/// drop `ALL` and may add back only `NET_BIND_SERVICE`. Replaces
/// `capabilities_baseline` at the restricted level.
pub(crate) fn capabilities_restricted(pod: &PodView<'_>, report: &mut Report<'_>) {
    for c in pod.containers() {
        let caps = c.security_context.and_then(|sc| sc.capabilities.as_ref());
        let drop = caps
            .and_then(|caps| caps.drop.as_deref())
            .unwrap_or_default();
        if !drop.iter().any(|d| d == ALL) {
            report.container(
                &c,
                c.path("securityContext.capabilities.drop"),
                format_args!(
                    "{} must set securityContext.capabilities.drop=[\"ALL\"]",
                    c.label()
                ),
            );
        }
        let added = caps
            .and_then(|caps| caps.add.as_deref())
            .unwrap_or_default();
        for (i, cap) in added.iter().enumerate() {
            if cap != NET_BIND_SERVICE {
                report.container(
                    &c,
                    c.path(&format!("securityContext.capabilities.add[{i}]")),
                    format_args!(
                        "{} must not add capability {cap:?} in securityContext.capabilities.add; only NET_BIND_SERVICE may be added",
                        c.label()
                    ),
                );
            }
        }
    }
}

/// `capabilities_restricted` from v1.25: Windows pods are exempt.
pub(crate) fn capabilities_restricted_linux(pod: &PodView<'_>, report: &mut Report<'_>) {
    if !pod.is_windows() {
        capabilities_restricted(pod, report);
    }
}
