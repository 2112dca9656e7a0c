//! `tollgate_cluster_*` metrics, read from the components on each scrape.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::{CertificateManager, ClusterPolicies, NamespaceReflector};

/// The cluster components a scrape reports on (each optional).
#[derive(Debug, Clone, Default)]
pub struct ClusterMetrics {
    /// The namespace reflector.
    pub reflector: Option<NamespaceReflector>,
    /// Cluster policies.
    pub policies: Option<ClusterPolicies>,
    /// The certificate manager.
    pub certificates: Option<Arc<CertificateManager>>,
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    let m = encoder.encode_descriptor(name, help, None, metric.metric_type())?;
    metric.encode(m)
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    let m = encoder.encode_descriptor(name, help, None, metric.metric_type())?;
    metric.encode(m)
}

impl Collector for ClusterMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let e = &mut encoder;
        if let Some(r) = &self.reflector {
            let n = i64::try_from(r.len()).unwrap_or(i64::MAX);
            gauge(
                e,
                "tollgate_cluster_namespaces",
                "Namespaces known to the reflector",
                n,
            )?;
            gauge(
                e,
                "tollgate_cluster_namespaces_ready",
                "1 once the first namespace list completed",
                i64::from(r.is_ready()),
            )?;
            let s = r.stats();
            counter(
                e,
                "tollgate_cluster_namespace_lists",
                "Completed namespace lists (the first, then one per relist)",
                s.lists.load(Ordering::Relaxed),
            )?;
            counter(
                e,
                "tollgate_cluster_namespace_watch_errors",
                "Namespace watch errors (each followed by a resume or relist)",
                s.errors.load(Ordering::Relaxed),
            )?;
        }
        if let Some(p) = &self.policies {
            let s = p.status();
            let n = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
            gauge(
                e,
                "tollgate_cluster_constraint_templates",
                "ConstraintTemplates in the active set",
                n(s.templates),
            )?;
            gauge(
                e,
                "tollgate_cluster_constraints",
                "Constraints in the active set",
                n(s.constraints),
            )?;
            counter(
                e,
                "tollgate_cluster_policy_reloads",
                "Cluster policy reloads applied",
                s.reloads,
            )?;
            counter(
                e,
                "tollgate_cluster_policy_reload_failures",
                "Cluster policy reloads refused (the previous policy stayed active)",
                s.failures,
            )?;
            let failing = s.last_error.is_some() || s.tollgate_policy_error.is_some();
            gauge(
                e,
                "tollgate_cluster_policy_error",
                "1 while a refused cluster policy is pending a fix",
                i64::from(failing),
            )?;
        }
        if let Some(c) = &self.certificates {
            gauge(
                e,
                "tollgate_cluster_certificate_leader",
                "1 while this replica holds the certificate Lease",
                i64::from(c.elector().is_leader()),
            )?;
            gauge(
                e,
                "tollgate_cluster_certificate_ready",
                "1 once a certificate from the Secret is installed",
                i64::from(c.is_ready()),
            )?;
        }
        Ok(())
    }
}
