//! Metrics of background audit: the agent-readiness score per namespace and
//! for the cluster, report results, and the health of the audit loop.
//! Registered into the caller's registry (the webhook's, under its
//! `tollgate` prefix in production), so one `/metrics` serves them all.
//!
//! Series that depend on a namespace disappear with it. A namespace with
//! nothing scored has no `readiness_ratio` series (the ratio is undefined),
//! and `readiness_cluster_ratio` is NaN then, so `readiness_ratio < 0.8`
//! alerts never fire on an empty namespace or cluster.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tollgate_policies::ownership::Key;

use crate::readiness::Scores;
use crate::report::{Reports, Summary};

/// Labels of per-namespace series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct NamespaceLabels {
    /// The namespace.
    pub namespace: String,
}

/// Labels of per-namespace, per-status series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct StatusLabels {
    /// The namespace.
    pub namespace: String,
    /// `ready`, `not-ready`, `ignored` or `exempt`.
    pub status: &'static str,
}

/// Labels of per-namespace, per-key series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct KeyLabels {
    /// The namespace.
    pub namespace: String,
    /// The ownership key (`owner`, `tier`, ...).
    pub key: &'static str,
}

/// Labels of per-namespace, per-result series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ResultLabels {
    /// The namespace (`""` for the cluster-scoped report).
    pub namespace: String,
    /// `pass`, `fail`, `warn`, `error` or `skip`.
    pub result: &'static str,
}

/// Labels of pass and write counters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `success` or `failure`.
    pub outcome: &'static str,
}

/// Labels of report writes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct WriteLabels {
    /// `create`, `update` or `delete`.
    pub operation: &'static str,
    /// `success` or `failure`.
    pub outcome: &'static str,
}

/// Every background-audit metric.
#[derive(Debug, Default)]
pub struct AuditMetrics {
    /// `readiness_ratio{namespace}`: ready / scored workloads.
    pub readiness_ratio: Family<NamespaceLabels, Gauge<f64, AtomicU64>>,
    /// `readiness_cluster_ratio`: the same over the cluster.
    pub readiness_cluster_ratio: Gauge<f64, AtomicU64>,
    /// `readiness_workloads{namespace, status}`.
    pub readiness_workloads: Family<StatusLabels, Gauge<i64, AtomicI64>>,
    /// `readiness_missing_keys{namespace, key}`: scored workloads lacking
    /// or misusing a key.
    pub readiness_gaps: Family<KeyLabels, Gauge<i64, AtomicI64>>,
    /// `audit_results{namespace, result}`: PolicyReport results.
    pub results: Family<ResultLabels, Gauge<i64, AtomicI64>>,
    /// `audit_passes_total{outcome}`.
    pub passes: Family<OutcomeLabels, Counter>,
    /// `audit_report_writes_total{operation, outcome}`.
    pub writes: Family<WriteLabels, Counter>,
    /// `audit_last_success_timestamp_seconds`.
    pub last_success: Gauge<i64, AtomicI64>,
    /// `audit_pass_duration_seconds`: how long the last pass took.
    pub pass_duration: Gauge<f64, AtomicU64>,
    /// `audit_objects`: objects judged in the last pass.
    pub objects: Gauge<i64, AtomicI64>,
    /// `audit_leader`: 1 while this replica runs the audit.
    pub leader: Gauge<i64, AtomicI64>,
    /// Namespaces with series, to remove those of vanished namespaces.
    known: Mutex<BTreeSet<String>>,
}

const STATUSES: [&str; 4] = ["ready", "not-ready", "ignored", "exempt"];
const RESULTS: [&str; 5] = ["pass", "fail", "warn", "error", "skip"];

impl AuditMetrics {
    /// Fresh metrics (register them with [`AuditMetrics::register`]).
    pub fn new() -> AuditMetrics {
        let m = AuditMetrics::default();
        for outcome in ["success", "failure"] {
            let _ = m.passes.get_or_create(&OutcomeLabels { outcome });
        }
        m
    }

    /// Registers every metric in `registry` (names as documented on the
    /// fields, under the registry's prefix).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "readiness_ratio",
            "Agent-readiness per namespace: share of scored workloads whose ownership annotations can route an incident",
            self.readiness_ratio.clone(),
        );
        registry.register(
            "readiness_cluster_ratio",
            "Agent-readiness of the cluster: share of scored workloads whose ownership annotations can route an incident",
            self.readiness_cluster_ratio.clone(),
        );
        registry.register(
            "readiness_workloads",
            "Workloads by namespace and readiness status (ready, not-ready, ignored, exempt)",
            self.readiness_workloads.clone(),
        );
        registry.register(
            "readiness_missing_keys",
            "Scored workloads missing a required ownership key or carrying an invalid value, by namespace and key",
            self.readiness_gaps.clone(),
        );
        registry.register(
            "audit_results",
            "PolicyReport results of the last background audit pass, by namespace and result",
            self.results.clone(),
        );
        registry.register(
            "audit_passes",
            "Background audit passes, by outcome",
            self.passes.clone(),
        );
        registry.register(
            "audit_report_writes",
            "PolicyReport writes, by operation and outcome",
            self.writes.clone(),
        );
        registry.register(
            "audit_last_success_timestamp_seconds",
            "When the last background audit pass succeeded, in Unix seconds",
            self.last_success.clone(),
        );
        registry.register(
            "audit_pass_duration_seconds",
            "Duration of the last background audit pass",
            self.pass_duration.clone(),
        );
        registry.register(
            "audit_objects",
            "Objects judged by the last background audit pass",
            self.objects.clone(),
        );
        registry.register(
            "audit_leader",
            "1 while this replica runs background audit",
            self.leader.clone(),
        );
    }

    /// Sets the readiness and result series from one pass; series of
    /// namespaces the pass did not see are removed.
    pub fn observe(&self, scores: &Scores, reports: &Reports) {
        let mut seen: BTreeSet<String> = scores.namespaces.keys().cloned().collect();
        seen.extend(reports.namespaced.keys().cloned());
        for (ns, score) in &scores.namespaces {
            let labels = NamespaceLabels {
                namespace: ns.clone(),
            };
            match score.ratio() {
                Some(r) => {
                    self.readiness_ratio.get_or_create(&labels).set(r);
                }
                None => {
                    self.readiness_ratio.remove(&labels);
                }
            }
            let counts = [
                score.ready,
                score.scored - score.ready,
                score.ignored,
                score.exempt,
            ];
            for (status, n) in STATUSES.iter().zip(counts) {
                self.readiness_workloads
                    .get_or_create(&StatusLabels {
                        namespace: ns.clone(),
                        status,
                    })
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
            for key in Key::ALL {
                let n = score.missing.get(&key).copied().unwrap_or(0)
                    + score.invalid.get(&key).copied().unwrap_or(0);
                let labels = KeyLabels {
                    namespace: ns.clone(),
                    key: key.as_str(),
                };
                if n == 0 {
                    self.readiness_gaps.remove(&labels);
                } else {
                    self.readiness_gaps
                        .get_or_create(&labels)
                        .set(i64::try_from(n).unwrap_or(i64::MAX));
                }
            }
        }
        match scores.cluster.ratio() {
            Some(r) => self.readiness_cluster_ratio.set(r),
            // No workloads scored: 1 would claim readiness, 0 would page.
            None => self.readiness_cluster_ratio.set(f64::NAN),
        };
        for (ns, report) in &reports.namespaced {
            self.set_results(ns, &report.body.summary);
        }
        match &reports.cluster {
            Some(c) => self.set_results("", &c.body.summary),
            None => self.set_results("", &Summary::default()),
        }
        let mut known = self
            .known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for gone in known.difference(&seen) {
            self.remove_namespace(gone);
        }
        *known = seen;
    }

    fn set_results(&self, ns: &str, s: &Summary) {
        let counts = [s.pass, s.fail, s.warn, s.error, s.skip];
        for (result, n) in RESULTS.iter().zip(counts) {
            self.results
                .get_or_create(&ResultLabels {
                    namespace: ns.to_owned(),
                    result,
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    fn remove_namespace(&self, ns: &str) {
        let namespace = ns.to_owned();
        self.readiness_ratio.remove(&NamespaceLabels {
            namespace: namespace.clone(),
        });
        for status in STATUSES {
            self.readiness_workloads.remove(&StatusLabels {
                namespace: namespace.clone(),
                status,
            });
        }
        for key in Key::ALL {
            self.readiness_gaps.remove(&KeyLabels {
                namespace: namespace.clone(),
                key: key.as_str(),
            });
        }
        for result in RESULTS {
            self.results.remove(&ResultLabels {
                namespace: namespace.clone(),
                result,
            });
        }
    }
}

impl prometheus_client::collector::Collector for AuditMetrics {
    /// Encodes every metric under its `tollgate_` name, for registries that
    /// take collectors (the webhook's `/metrics`).
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        fn one(
            encoder: &mut prometheus_client::encoding::DescriptorEncoder,
            name: &str,
            help: &str,
            metric: &dyn EncodeMetric,
        ) -> Result<(), std::fmt::Error> {
            let m = encoder.encode_descriptor(name, help, None, metric.metric_type())?;
            metric.encode(m)
        }
        let e = &mut encoder;
        one(
            e,
            "tollgate_readiness_ratio",
            "Agent-readiness per namespace: share of scored workloads whose ownership annotations can route an incident",
            &self.readiness_ratio,
        )?;
        one(
            e,
            "tollgate_readiness_cluster_ratio",
            "Agent-readiness of the cluster: share of scored workloads whose ownership annotations can route an incident",
            &self.readiness_cluster_ratio,
        )?;
        one(
            e,
            "tollgate_readiness_workloads",
            "Workloads by namespace and readiness status (ready, not-ready, ignored, exempt)",
            &self.readiness_workloads,
        )?;
        one(
            e,
            "tollgate_readiness_missing_keys",
            "Scored workloads missing a required ownership key or carrying an invalid value, by namespace and key",
            &self.readiness_gaps,
        )?;
        one(
            e,
            "tollgate_audit_results",
            "PolicyReport results of the last background audit pass, by namespace and result",
            &self.results,
        )?;
        one(
            e,
            "tollgate_audit_passes",
            "Background audit passes, by outcome",
            &self.passes,
        )?;
        one(
            e,
            "tollgate_audit_report_writes",
            "PolicyReport writes, by operation and outcome",
            &self.writes,
        )?;
        one(
            e,
            "tollgate_audit_last_success_timestamp_seconds",
            "When the last background audit pass succeeded, in Unix seconds",
            &self.last_success,
        )?;
        one(
            e,
            "tollgate_audit_pass_duration_seconds",
            "Duration of the last background audit pass",
            &self.pass_duration,
        )?;
        one(
            e,
            "tollgate_audit_objects",
            "Objects judged by the last background audit pass",
            &self.objects,
        )?;
        one(
            e,
            "tollgate_audit_leader",
            "1 while this replica runs background audit",
            &self.leader,
        )
    }
}
