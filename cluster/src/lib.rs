//! Live cluster state over the Kubernetes API (kube-rs): the namespace
//! reflector, self-managed certificate Secrets under a Lease, cluster-held
//! policies, and background audit with PolicyReports.

pub mod background;
pub mod doctor;
pub mod readiness;
pub mod report;
pub mod scan;
