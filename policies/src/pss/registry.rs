//! The registry of Pod Security checks: which check exists at which level,
//! which revision applies from which policy version, and which baseline
//! checks a restricted revision replaces.

use super::pod::{PodView, Report};
use super::{host, kernel, privilege, profiles, users, volumes};
use crate::Level;
use crate::level::LATEST_MINOR;

/// Evaluates one revision of a check against a pod, reporting violations.
pub(crate) type EvalFn = fn(&PodView<'_>, &mut Report<'_>);

/// A Pod Security check, as Pod Security Admission registers it.
#[derive(Debug)]
pub struct Check {
    /// PSA's check id (`allowPrivilegeEscalation`, `capabilities_baseline`).
    pub id: &'static str,
    /// The lowest level that includes the check (`Baseline` or
    /// `Restricted`); restricted includes every baseline check.
    pub level: Level,
    /// The revisions, oldest first, with strictly increasing `since`.
    pub revisions: &'static [Revision],
}

/// One revision of a check: the rule from policy version `v1.{since}` until
/// the next revision (or the latest version).
#[derive(Debug)]
pub struct Revision {
    /// The first policy minor version (`v1.N`) this revision applies to.
    pub since: u16,
    /// Baseline check ids this (restricted) revision replaces at the
    /// restricted level.
    pub overrides: &'static [&'static str],
    /// What changed in this revision, for people reading the registry.
    pub summary: &'static str,
    pub(crate) eval: EvalFn,
}

impl Check {
    /// The revision in force at minor version `minor`, if the check exists
    /// at that version.
    pub fn revision_at(&self, minor: u16) -> Option<&Revision> {
        self.revisions.iter().rev().find(|r| r.since <= minor)
    }

    /// The first minor version the check exists at.
    pub fn since(&self) -> u16 {
        self.revisions.first().map_or(u16::MAX, |r| r.since)
    }

    /// Each revision with the inclusive range of minor versions it governs
    /// (`(19, 24, r)` for v1.19 to v1.24); the last one runs to
    /// [`LATEST_MINOR`].
    pub fn version_ranges(&self) -> impl Iterator<Item = (u16, u16, &Revision)> {
        let ends = self
            .revisions
            .iter()
            .skip(1)
            .map(|next| next.since.saturating_sub(1))
            .chain(std::iter::once(LATEST_MINOR));
        self.revisions
            .iter()
            .zip(ends)
            .map(|(r, end)| (r.since, end, r))
    }
}

const fn rev(since: u16, summary: &'static str, eval: EvalFn) -> Revision {
    Revision {
        since,
        overrides: &[],
        summary,
        eval,
    }
}

const fn rev_over(
    since: u16,
    overrides: &'static [&'static str],
    summary: &'static str,
    eval: EvalFn,
) -> Revision {
    Revision {
        since,
        overrides,
        summary,
        eval,
    }
}

const B: Level = Level::Baseline;
const R: Level = Level::Restricted;

static REGISTRY: [Check; 19] = [
    // Baseline.
    Check {
        id: "hostNamespaces",
        level: B,
        revisions: &[rev(
            0,
            "hostNetwork, hostPID, hostIPC must not be true",
            host::host_namespaces,
        )],
    },
    Check {
        id: "privileged",
        level: B,
        revisions: &[rev(
            0,
            "securityContext.privileged must not be true",
            privilege::privileged,
        )],
    },
    Check {
        id: "capabilities_baseline",
        level: B,
        revisions: &[rev(
            0,
            "capabilities.add only from the default set",
            privilege::capabilities_baseline,
        )],
    },
    Check {
        id: "hostPathVolumes",
        level: B,
        revisions: &[rev(0, "no hostPath volumes", volumes::host_path_volumes)],
    },
    Check {
        id: "hostPorts",
        level: B,
        revisions: &[rev(0, "no hostPort", host::host_ports)],
    },
    Check {
        id: "appArmorProfile",
        level: B,
        revisions: &[rev(
            0,
            "AppArmor annotations and appArmorProfile fields: no unconfined profile",
            profiles::app_armor,
        )],
    },
    Check {
        id: "seLinuxOptions",
        level: B,
        revisions: &[
            rev(
                0,
                "SELinux type container_t/container_init_t/container_kvm_t; no user or role",
                profiles::se_linux,
            ),
            rev(
                31,
                "also allows type container_engine_t",
                profiles::se_linux,
            ),
        ],
    },
    Check {
        id: "procMount",
        level: B,
        revisions: &[
            rev(0, "procMount must be Default", kernel::proc_mount_strict),
            rev(
                35,
                "any procMount allowed in a user namespace (hostUsers: false)",
                kernel::proc_mount_baseline,
            ),
        ],
    },
    Check {
        id: "seccompProfile_baseline",
        level: B,
        revisions: &[
            rev(
                0,
                "seccomp annotations must not be unconfined",
                profiles::seccomp_annotations,
            ),
            rev(
                19,
                "seccompProfile.type must not be Unconfined",
                profiles::seccomp_baseline,
            ),
        ],
    },
    Check {
        id: "sysctls",
        level: B,
        revisions: &[
            rev(0, "only safe sysctls", kernel::sysctls),
            rev(27, "adds net.ipv4.ip_local_reserved_ports", kernel::sysctls),
            rev(
                29,
                "adds tcp_keepalive_time, tcp_fin_timeout, tcp_keepalive_intvl, tcp_keepalive_probes",
                kernel::sysctls,
            ),
            rev(
                32,
                "adds net.ipv4.tcp_rmem, net.ipv4.tcp_wmem",
                kernel::sysctls,
            ),
            rev(
                37,
                "adds net.ipv4.tcp_slow_start_after_idle, net.ipv4.tcp_notsent_lowat",
                kernel::sysctls,
            ),
        ],
    },
    Check {
        id: "windowsHostProcess",
        level: B,
        revisions: &[rev(
            0,
            "windowsOptions.hostProcess must not be true",
            host::windows_host_process,
        )],
    },
    Check {
        id: "hostProbesAndHostLifecycle",
        level: B,
        revisions: &[rev(
            34,
            "probes and lifecycle handlers must not set host",
            host::probe_hosts,
        )],
    },
    // Restricted.
    Check {
        id: "restrictedVolumes",
        level: R,
        revisions: &[rev_over(
            0,
            &["hostPathVolumes"],
            "only configMap, csi, downwardAPI, emptyDir, ephemeral, image, persistentVolumeClaim, projected, secret volumes",
            volumes::restricted_volumes,
        )],
    },
    Check {
        id: "allowPrivilegeEscalation",
        level: R,
        revisions: &[
            rev(
                8,
                "allowPrivilegeEscalation must be false",
                privilege::allow_privilege_escalation,
            ),
            rev(
                25,
                "Windows pods exempt",
                privilege::allow_privilege_escalation_linux,
            ),
        ],
    },
    Check {
        id: "runAsNonRoot",
        level: R,
        revisions: &[
            rev(
                0,
                "runAsNonRoot must be true (pod or every container)",
                users::run_as_non_root,
            ),
            rev(
                35,
                "user-namespace pods (hostUsers: false) exempt",
                users::run_as_non_root_userns,
            ),
        ],
    },
    Check {
        id: "runAsUser",
        level: R,
        revisions: &[
            rev(23, "runAsUser must not be 0", users::run_as_user),
            rev(
                35,
                "user-namespace pods (hostUsers: false) exempt",
                users::run_as_user_userns,
            ),
        ],
    },
    Check {
        id: "seccompProfile_restricted",
        level: R,
        revisions: &[
            rev_over(
                19,
                &["seccompProfile_baseline"],
                "seccompProfile.type must be RuntimeDefault or Localhost",
                profiles::seccomp_restricted,
            ),
            rev_over(
                25,
                &["seccompProfile_baseline"],
                "Windows pods exempt",
                profiles::seccomp_restricted_linux,
            ),
        ],
    },
    Check {
        id: "capabilities_restricted",
        level: R,
        revisions: &[
            rev_over(
                22,
                &["capabilities_baseline"],
                "drop ALL; add only NET_BIND_SERVICE",
                privilege::capabilities_restricted,
            ),
            rev_over(
                25,
                &["capabilities_baseline"],
                "Windows pods exempt",
                privilege::capabilities_restricted_linux,
            ),
        ],
    },
    Check {
        id: "procMount_restricted",
        level: R,
        revisions: &[rev_over(
            35,
            &["procMount"],
            "procMount must be Default, even in a user namespace",
            kernel::proc_mount_strict,
        )],
    },
];

/// Every Pod Security check this build knows, baseline checks first.
pub fn registry() -> &'static [Check] {
    &REGISTRY
}

/// True when a restricted revision active at `minor` overrides `id`.
fn overridden(id: &str, minor: u16) -> bool {
    REGISTRY
        .iter()
        .filter(|c| c.level == Level::Restricted)
        .filter_map(|c| c.revision_at(minor))
        .any(|r| r.overrides.contains(&id))
}

/// The checks (and their revisions) that run at `level` and `minor`.
pub(crate) fn active(
    level: Level,
    minor: u16,
) -> impl Iterator<Item = (&'static Check, &'static Revision)> {
    REGISTRY.iter().filter_map(move |check| {
        if level == Level::Privileged || check.level > level {
            return None;
        }
        let revision = check.revision_at(minor)?;
        if level == Level::Restricted
            && check.level == Level::Baseline
            && overridden(check.id, minor)
        {
            return None;
        }
        Some((check, revision))
    })
}
