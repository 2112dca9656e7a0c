//! Checks on the user a pod's processes run as.

use super::pod::{PodView, Report};

/// `runAsNonRoot` (restricted, v1.0+): `runAsNonRoot` must be `true`, set
/// at pod level (containers may then leave it undefined) or on every
/// container; `false` anywhere is a violation.
pub(crate) fn run_as_non_root(pod: &PodView<'_>, report: &mut Report<'_>) {
    let pod_value = pod.security_context().and_then(|sc| sc.run_as_non_root);
    if pod_value == Some(false) {
        report.pod(
            "spec.securityContext.runAsNonRoot".to_owned(),
            format_args!(
                "pod must not set spec.securityContext.runAsNonRoot=false; set it to true"
            ),
        );
    }
    for c in pod.containers() {
        match c.security_context.and_then(|sc| sc.run_as_non_root) {
            Some(true) => {}
            Some(false) => report.container(
                &c,
                c.path("securityContext.runAsNonRoot"),
                format_args!(
                    "{} must not set securityContext.runAsNonRoot=false; set it to true or remove it and set spec.securityContext.runAsNonRoot=true",
                    c.label()
                ),
            ),
            // Inherits the pod's value: fine when the pod says true; an
            // explicit pod-level false is reported once, above.
            None if pod_value.is_some() => {}
            None => report.container(
                &c,
                c.path("securityContext.runAsNonRoot"),
                format_args!(
                    "{} must set securityContext.runAsNonRoot=true (or set spec.securityContext.runAsNonRoot=true for the whole pod)",
                    c.label()
                ),
            ),
        }
    }
}

/// `runAsNonRoot` from v1.35: pods in a user namespace
/// (`spec.hostUsers: false`) are exempt, since their root is unprivileged
/// on the node (KEP-127).
pub(crate) fn run_as_non_root_userns(pod: &PodView<'_>, report: &mut Report<'_>) {
    if !pod.in_user_namespace() {
        run_as_non_root(pod, report);
    }
}

/// `runAsUser` (restricted, v1.23+): `runAsUser` must not be `0` at pod or
/// container level; undefined is allowed.
pub(crate) fn run_as_user(pod: &PodView<'_>, report: &mut Report<'_>) {
    if pod.security_context().and_then(|sc| sc.run_as_user) == Some(0) {
        report.pod(
            "spec.securityContext.runAsUser".to_owned(),
            format_args!(
                "pod must not set spec.securityContext.runAsUser=0; use a non-zero user id or remove it"
            ),
        );
    }
    for c in pod.containers() {
        if c.security_context.and_then(|sc| sc.run_as_user) == Some(0) {
            report.container(
                &c,
                c.path("securityContext.runAsUser"),
                format_args!(
                    "{} must not set securityContext.runAsUser=0; use a non-zero user id or remove it",
                    c.label()
                ),
            );
        }
    }
}

/// `runAsUser` from v1.35: pods in a user namespace are exempt.
pub(crate) fn run_as_user_userns(pod: &PodView<'_>, report: &mut Report<'_>) {
    if !pod.in_user_namespace() {
        run_as_user(pod, report);
    }
}
