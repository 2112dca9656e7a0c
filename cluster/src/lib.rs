//! Live cluster state over the Kubernetes API (kube-rs): the namespace
//! reflector, self-managed certificate Secrets under a Lease, cluster-held
//! policies, and background audit with PolicyReports.

pub mod error;
pub mod namespaces;

pub use error::ClusterError;
pub use namespaces::{NamespaceReflector, NamespaceSettings};
