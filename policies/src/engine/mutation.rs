//! The secure-defaults mutation as the engine calls it: the Pod Security
//! evaluator decides *where* defaults apply (kinds, operations, exemptions,
//! namespaces whose enforce level is not `privileged`); the secure-defaults
//! module ([`crate::defaults`]) decides *what* is set, from the
//! `policy.defaults` settings.

use json_patch::PatchOperation;

use crate::Workload;
use crate::defaults::{self, DefaultsConfig};

/// What part of a workload the mutation may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultsScope {
    /// The whole pod (template): pod and container settings. CREATE of any
    /// workload, UPDATE of a controller's template.
    Pod,
    /// Ephemeral containers only: UPDATE of `pods/ephemeralcontainers`
    /// (the rest of a running pod's spec is immutable).
    EphemeralContainers,
}

/// A secure-defaults mutation: the workload, the settings and the scope in,
/// JSON Patch operations (paths from the object's root) out.
pub type DefaultsMutation = fn(&Workload, &DefaultsConfig, DefaultsScope) -> Vec<PatchOperation>;

/// The secure-defaults mutation the engine runs by default.
pub fn secure_defaults(
    workload: &Workload,
    settings: &DefaultsConfig,
    scope: DefaultsScope,
) -> Vec<PatchOperation> {
    match scope {
        DefaultsScope::Pod => defaults::secure_defaults(workload, settings),
        DefaultsScope::EphemeralContainers => {
            defaults::ephemeral_container_defaults(workload, settings)
        }
    }
}
