//! Live cluster state over the Kubernetes API (kube-rs): the namespace
//! reflector, self-managed certificate Secrets under a Lease, cluster-held
//! policies, and background audit with PolicyReports.

pub mod background;
pub mod certificates;
pub mod crd;
pub mod doctor;
pub mod duration;
pub mod error;
pub mod lease;
pub mod metrics;
pub mod namespaces;
pub mod policies;
pub mod readiness;
pub mod report;
pub mod scan;
pub mod settings;

pub use certificates::{CertificateManager, CertificateMode, CertificateSettings};
pub use error::ClusterError;
pub use lease::LeaderElector;
pub use metrics::ClusterMetrics;
pub use namespaces::{NamespaceReflector, NamespaceSettings};
pub use policies::{ClusterPolicies, PolicySettings, PolicyStatus};
pub use settings::{ClusterSettings, client};
