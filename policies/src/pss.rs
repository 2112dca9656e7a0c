//! The Pod Security Standards, exactly as Kubernetes Pod Security Admission
//! defines them: every baseline and restricted check at every version.
//!
//! The standards are a registry of checks ([`registry`]). Each check has an
//! id (PSA's own: `allowPrivilegeEscalation`, `hostNamespaces`, ...), the
//! lowest level that includes it, and one or more revisions, each applying
//! from a policy version until the next revision. Evaluating a pod at a
//! level and version runs, for every check of that level or below, the
//! newest revision not newer than the version. At `restricted`, a restricted
//! revision may *override* baseline checks it subsumes (for example
//! `capabilities_restricted` replaces `capabilities_baseline` from v1.22):
//! the overridden baseline check does not run, which is what makes the
//! restricted Windows exemptions of v1.25+ effective.
//!
//! Evaluation allocates nothing for a compliant pod: it walks the typed spec
//! once per check and only builds strings for the violations it reports.

mod host;
mod kernel;
mod pod;
mod privilege;
mod profiles;
mod registry;
mod users;
mod volumes;

#[cfg(test)]
mod tests;

use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::{Level, Version};

pub use registry::{Check, Revision, registry};

/// One failed Pod Security check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PssViolation {
    /// The check's id, as Pod Security Admission names it
    /// (`allowPrivilegeEscalation`, `hostNamespaces`, ...).
    pub check: &'static str,
    /// The lowest level that includes the check.
    pub level: Level,
    /// The container at fault, if any.
    pub container: Option<String>,
    /// The field at fault, relative to the pod
    /// (`spec.containers[0].securityContext.allowPrivilegeEscalation`).
    pub path: String,
    /// What is wrong and how to fix it, ending with the level and version
    /// that require it: `container "agent" must set
    /// securityContext.allowPrivilegeEscalation=false (restricted, v1.37)`.
    pub message: String,
}

/// Evaluates a pod (or pod template) at a level and version. Returns every
/// violation, not just the first: one per offending field and container,
/// in registry order. `Level::Privileged` never fails. A version newer than
/// this build is evaluated as the latest one.
pub fn check_pod(
    level: Level,
    version: Version,
    meta: &ObjectMeta,
    spec: &PodSpec,
) -> Vec<PssViolation> {
    let mut out = Vec::new();
    if level == Level::Privileged {
        return out;
    }
    let minor = version.minor();
    let view = pod::PodView::new(meta, spec);
    for (check, revision) in registry::active(level, minor) {
        let mut report = pod::Report::new(check, level, minor, &mut out);
        (revision.eval)(&view, &mut report);
    }
    out
}

/// The ids of the checks that run at a level and version, in evaluation
/// order (baseline checks, minus those a restricted check overrides, then
/// restricted checks).
pub fn active_checks(level: Level, version: Version) -> impl Iterator<Item = &'static str> {
    let minor = version.minor();
    registry::active(level, minor).map(|(check, _)| check.id)
}
