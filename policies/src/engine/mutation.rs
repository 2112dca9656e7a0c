//! The secure-defaults mutation as the engine calls it: the Pod Security
//! evaluator decides *where* defaults apply (kinds, exemptions, namespaces
//! whose enforce level is not `privileged`); this function decides *what*
//! is set, from the `policy.defaults` settings.

use json_patch::PatchOperation;

use crate::Workload;
use crate::config::DefaultsSection;

/// A secure-defaults mutation: the workload and the `policy.defaults`
/// settings in, JSON Patch operations (paths from the object's root) out.
pub type DefaultsMutation = fn(&Workload, &DefaultsSection) -> Vec<PatchOperation>;

/// The secure-defaults mutation the engine runs by default. It is the single
/// place where the engine reaches the secure-defaults module; this build
/// sets no defaults.
pub fn secure_defaults(_workload: &Workload, _settings: &DefaultsSection) -> Vec<PatchOperation> {
    Vec::new()
}
