//! Checks on the Linux security modules a pod runs under: seccomp,
//! AppArmor and SELinux, both their fields and their legacy annotations.

use k8s_openapi::api::core::v1::{SELinuxOptions, SeccompProfile};

use super::pod::{ContainerRef, PodView, Report};

/// Legacy AppArmor annotation prefix, still honoured by Pod Security
/// Admission: `container.apparmor.security.beta.kubernetes.io/<container>`.
pub(crate) const APPARMOR_ANNOTATION_PREFIX: &str =
    "container.apparmor.security.beta.kubernetes.io/";
/// Legacy pod-level seccomp annotation (policy versions before v1.19).
pub(crate) const SECCOMP_POD_ANNOTATION: &str = "seccomp.security.alpha.kubernetes.io/pod";
/// Legacy container-level seccomp annotation prefix (before v1.19).
pub(crate) const SECCOMP_CONTAINER_ANNOTATION_PREFIX: &str =
    "container.seccomp.security.alpha.kubernetes.io/";

const RUNTIME_DEFAULT: &str = "RuntimeDefault";
const LOCALHOST: &str = "Localhost";

/// SELinux types baseline allows from v1.0 (`""` means undefined).
const SELINUX_TYPES_1_0: [&str; 4] = ["", "container_t", "container_init_t", "container_kvm_t"];
/// SELinux type baseline adds in v1.31.
const SELINUX_TYPE_1_31: &str = "container_engine_t";

/// `appArmorProfile` (baseline, v1.0+): no unconfined AppArmor profile.
/// The `securityContext.appArmorProfile.type` fields (pod and containers)
/// must be `RuntimeDefault` or `Localhost`; the legacy
/// `container.apparmor.security.beta.kubernetes.io/*` annotations must be
/// empty, `runtime/default` or `localhost/*`.
pub(crate) fn app_armor(pod: &PodView<'_>, report: &mut Report<'_>) {
    let pod_type = pod
        .security_context()
        .and_then(|sc| sc.app_armor_profile.as_ref())
        .map(|p| p.type_.as_str());
    if let Some(t) = pod_type.filter(|t| !valid_profile_type(t)) {
        report.pod(
            "spec.securityContext.appArmorProfile.type".to_owned(),
            format_args!(
                "pod must not set spec.securityContext.appArmorProfile.type to {t:?}; use \"RuntimeDefault\" or \"Localhost\""
            ),
        );
    }
    for c in pod.containers() {
        let t = c
            .security_context
            .and_then(|sc| sc.app_armor_profile.as_ref())
            .map(|p| p.type_.as_str());
        if let Some(t) = t.filter(|t| !valid_profile_type(t)) {
            report.container(
                &c,
                c.path("securityContext.appArmorProfile.type"),
                format_args!(
                    "{} must not set securityContext.appArmorProfile.type to {t:?}; use \"RuntimeDefault\" or \"Localhost\"",
                    c.label()
                ),
            );
        }
    }
    for (key, value) in pod.annotations() {
        let Some(container) = key.strip_prefix(APPARMOR_ANNOTATION_PREFIX) else {
            continue;
        };
        let allowed =
            value.is_empty() || value == "runtime/default" || value.starts_with("localhost/");
        if !allowed {
            report.push(
                Some(container),
                format!("metadata.annotations[{key:?}]"),
                format_args!(
                    "annotation {key:?} must not be {value:?}; set it to \"runtime/default\" or \"localhost/<profile>\", or remove it"
                ),
            );
        }
    }
}

/// `seLinuxOptions` (baseline, v1.0+; v1.31 adds `container_engine_t`):
/// the SELinux type must be one of the container types, and user and role
/// must not be set, at pod and container level.
pub(crate) fn se_linux(pod: &PodView<'_>, report: &mut Report<'_>) {
    let minor = report.minor();
    if let Some(opts) = pod
        .security_context()
        .and_then(|sc| sc.se_linux_options.as_ref())
    {
        se_linux_options(opts, minor, None, report);
    }
    for c in pod.containers() {
        if let Some(opts) = c
            .security_context
            .and_then(|sc| sc.se_linux_options.as_ref())
        {
            se_linux_options(opts, minor, Some(&c), report);
        }
    }
}

fn se_linux_options(
    opts: &SELinuxOptions,
    minor: u16,
    c: Option<&ContainerRef<'_>>,
    report: &mut Report<'_>,
) {
    let type_ = opts.type_.as_deref().unwrap_or_default();
    let type_ok = SELINUX_TYPES_1_0.contains(&type_) || (minor >= 31 && type_ == SELINUX_TYPE_1_31);
    let fields = [
        ("type", !type_ok, type_),
        (
            "user",
            !opts.user.as_deref().unwrap_or_default().is_empty(),
            opts.user.as_deref().unwrap_or_default(),
        ),
        (
            "role",
            !opts.role.as_deref().unwrap_or_default().is_empty(),
            opts.role.as_deref().unwrap_or_default(),
        ),
    ];
    for (field, bad, value) in fields {
        if !bad {
            continue;
        }
        let fix = if field == "type" {
            if minor >= 31 {
                "use container_t, container_init_t, container_kvm_t or container_engine_t, or remove it"
            } else {
                "use container_t, container_init_t or container_kvm_t, or remove it"
            }
        } else {
            "remove it"
        };
        match c {
            Some(c) => report.container(
                c,
                c.path(&format!("securityContext.seLinuxOptions.{field}")),
                format_args!(
                    "{} must not set securityContext.seLinuxOptions.{field} to {value:?}; {fix}",
                    c.label()
                ),
            ),
            None => report.pod(
                format!("spec.securityContext.seLinuxOptions.{field}"),
                format_args!(
                    "pod must not set spec.securityContext.seLinuxOptions.{field} to {value:?}; {fix}"
                ),
            ),
        }
    }
}

/// `seccompProfile_baseline` before v1.19: the legacy seccomp annotations
/// (pod, and one per container by name) must be `runtime/default`,
/// `docker/default` or `localhost/*` when present.
pub(crate) fn seccomp_annotations(pod: &PodView<'_>, report: &mut Report<'_>) {
    for (key, value) in pod.annotations() {
        if valid_seccomp_annotation(value) {
            continue;
        }
        if key == SECCOMP_POD_ANNOTATION {
            report.pod(
                format!("metadata.annotations[{key:?}]"),
                format_args!(
                    "annotation {key:?} must not be {value:?}; set it to \"runtime/default\" or \"localhost/<profile>\", or remove it"
                ),
            );
            continue;
        }
        // Container annotations count only for containers the pod has.
        let Some(name) = key.strip_prefix(SECCOMP_CONTAINER_ANNOTATION_PREFIX) else {
            continue;
        };
        if let Some(c) = pod.containers().find(|c| c.name == name) {
            report.container(
                &c,
                format!("metadata.annotations[{key:?}]"),
                format_args!(
                    "annotation {key:?} must not be {value:?}; set it to \"runtime/default\" or \"localhost/<profile>\", or remove it"
                ),
            );
        }
    }
}

/// `seccompProfile_baseline` from v1.19: `seccompProfile.type` must not be
/// anything but `RuntimeDefault` or `Localhost` where it is set.
pub(crate) fn seccomp_baseline(pod: &PodView<'_>, report: &mut Report<'_>) {
    seccomp_fields(pod, report, false);
}

/// `seccompProfile_restricted` (restricted, v1.19+): the seccomp profile
/// must be set, to `RuntimeDefault` or `Localhost`, at pod level or on
/// every container. Replaces `seccompProfile_baseline` at restricted.
pub(crate) fn seccomp_restricted(pod: &PodView<'_>, report: &mut Report<'_>) {
    seccomp_fields(pod, report, true);
}

/// `seccompProfile_restricted` from v1.25: Windows pods are exempt.
pub(crate) fn seccomp_restricted_linux(pod: &PodView<'_>, report: &mut Report<'_>) {
    if !pod.is_windows() {
        seccomp_restricted(pod, report);
    }
}

fn seccomp_fields(pod: &PodView<'_>, report: &mut Report<'_>, required: bool) {
    let pod_profile = pod
        .security_context()
        .and_then(|sc| sc.seccomp_profile.as_ref());
    if let Some(t) = bad_seccomp(pod_profile) {
        report.pod(
            "spec.securityContext.seccompProfile.type".to_owned(),
            format_args!(
                "pod must not set spec.securityContext.seccompProfile.type to {t:?}; use \"RuntimeDefault\" or \"Localhost\""
            ),
        );
    }
    for c in pod.containers() {
        let profile = c
            .security_context
            .and_then(|sc| sc.seccomp_profile.as_ref());
        if let Some(t) = bad_seccomp(profile) {
            report.container(
                &c,
                c.path("securityContext.seccompProfile.type"),
                format_args!(
                    "{} must not set securityContext.seccompProfile.type to {t:?}; use \"RuntimeDefault\" or \"Localhost\"",
                    c.label()
                ),
            );
        } else if required && profile.is_none() && pod_profile.is_none() {
            // Unset on the container and at pod level. (A pod-level profile
            // that is set but invalid is reported once, above.)
            report.container(
                &c,
                c.path("securityContext.seccompProfile.type"),
                format_args!(
                    "{} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\" (or set spec.securityContext.seccompProfile.type for the whole pod)",
                    c.label()
                ),
            );
        }
    }
}

fn bad_seccomp(profile: Option<&SeccompProfile>) -> Option<&str> {
    profile
        .map(|p| p.type_.as_str())
        .filter(|t| !valid_profile_type(t))
}

fn valid_profile_type(t: &str) -> bool {
    t == RUNTIME_DEFAULT || t == LOCALHOST
}

fn valid_seccomp_annotation(value: &str) -> bool {
    value == "runtime/default" || value == "docker/default" || value.starts_with("localhost/")
}
