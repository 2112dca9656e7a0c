//! Background audit: every `interval`, list the cluster's Namespaces and
//! workloads, judge them with the webhook's current policy snapshot
//! ([`crate::scan`]), write one `PolicyReport` per namespace and a
//! `ClusterPolicyReport` ([`crate::report`]), delete the stale ones Tollgate
//! manages, and export the agent-readiness score ([`crate::readiness`]) as
//! metrics.
//!
//! Only the leader runs passes when a leadership signal is given (replicas
//! would otherwise write the same reports); without one, this replica
//! always does. A failed pass is logged and counted, and the next one runs
//! on schedule: nothing in a pass is kept between passes, so a failure
//! cannot leave stale state behind beyond the reports it did not write.
//!
//! RBAC: list on namespaces, pods, replicationcontrollers,
//! apps/{deployments,replicasets,statefulsets,daemonsets},
//! batch/{jobs,cronjobs}; get, list, create, update, delete on
//! wgpolicyk8s.io policyreports and clusterpolicyreports.

mod list;
mod metrics;
mod sync;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::Client;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tollgate_policies::config::PolicyConfig;
use tollgate_policies::engine::{Engine, Options, Snapshot};
use tollgate_policies::gatekeeper::ConstraintStore;
use tollgate_policies::namespace::{NamespaceInfo, StaticNamespaces};
use tollgate_policies::ownership::OwnershipConfig;

pub use list::{RESOURCES, list_all};
pub use metrics::AuditMetrics;
pub use sync::{Written, sync};

use crate::readiness::{self, Scores};
use crate::report::{self, Reports};
use crate::scan::{Scan, Scanner};

/// Background audit settings (`cluster.backgroundAudit` in the config).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct BackgroundSettings {
    /// Run background audit at all. Default: true.
    pub enabled: bool,
    /// Seconds between the start of two passes. Default: 300; at least 10.
    pub interval_seconds: u64,
    /// Objects per list request. Default: 500.
    pub page_size: u32,
    /// Write PolicyReports (false: metrics only, e.g. when the
    /// wgpolicyk8s.io CRDs are not installed). Default: true.
    pub write_reports: bool,
}

impl Default for BackgroundSettings {
    fn default() -> Self {
        BackgroundSettings {
            enabled: true,
            interval_seconds: 300,
            page_size: 500,
            write_reports: true,
        }
    }
}

/// The shortest interval accepted.
pub const MIN_INTERVAL_SECONDS: u64 = 10;

impl BackgroundSettings {
    /// Checks what the types cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.interval_seconds < MIN_INTERVAL_SECONDS {
            return Err(format!(
                "backgroundAudit.intervalSeconds: {} is below the minimum of {MIN_INTERVAL_SECONDS}",
                self.interval_seconds
            ));
        }
        if self.page_size == 0 {
            return Err("backgroundAudit.pageSize: must be at least 1".into());
        }
        Ok(())
    }
}

/// Why a pass failed.
#[derive(Debug, thiserror::Error)]
pub enum BackgroundError {
    /// Listing a resource failed (unreachable API server, missing RBAC,
    /// CRD not installed).
    #[error("listing {resource}: {source}")]
    List {
        /// `pods`, `policyreports.wgpolicyk8s.io`, ...
        resource: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// Writing a report failed.
    #[error("{operation} {kind} {namespace}/{name}: {source}")]
    Write {
        /// `create`, `update`, `delete` or `get`.
        operation: &'static str,
        /// `PolicyReport` or `ClusterPolicyReport`.
        kind: String,
        /// Its namespace (empty for cluster-scoped reports).
        namespace: String,
        /// Its name.
        name: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// A report kept changing under us.
    #[error("{kind} {name}: still conflicting after retries")]
    Conflict {
        /// `PolicyReport` or `ClusterPolicyReport`.
        kind: String,
        /// Its name.
        name: String,
    },
    /// The evaluation task panicked or was cancelled.
    #[error("evaluation task: {0}")]
    Task(String),
}

/// What one pass found and did.
#[derive(Debug, Clone, Default)]
pub struct Pass {
    /// The scan.
    pub scan: Scan,
    /// Its readiness scores.
    pub scores: Scores,
    /// Its reports.
    pub reports: Reports,
    /// What writing them did (`None` when reports are not written).
    pub written: Option<Written>,
}

/// Which policy snapshot judges a scan.
#[derive(Clone)]
pub enum Policies<'a> {
    /// The webhook's engine: its current snapshot, with its own namespace
    /// source (the reflector).
    Engine(&'a Engine),
    /// A snapshot built from this config (and these Gatekeeper
    /// constraints), reading namespace labels from the Namespaces listed
    /// (`tollgate doctor`).
    Config(&'a PolicyConfig, Option<Arc<ConstraintStore>>),
}

/// Lists and judges the cluster's Namespaces and workloads. Namespace
/// labels and annotations for readiness come from the Namespaces listed.
pub async fn scan_cluster(
    client: &Client,
    policies: Policies<'_>,
    ownership: &OwnershipConfig,
    page_size: u32,
) -> Result<Scan, BackgroundError> {
    // Controlled objects (most Pods, every ReplicaSet of a Deployment) are
    // dropped as their page arrives, so memory holds what is judged only.
    let mut pages: Vec<Vec<serde_json::Value>> = Vec::new();
    let mut controlled = 0;
    list_all(client, page_size, &mut |mut page| {
        let before = page.len();
        page.retain(|o| tollgate_policies::ownership::checked_controller(o).is_none());
        controlled += before - page.len();
        pages.push(page);
    })
    .await?;
    let namespaces = Arc::new(StaticNamespaces::new(
        pages
            .iter()
            .flatten()
            .filter(|o| o.get("kind").and_then(|k| k.as_str()) == Some("Namespace"))
            .filter_map(namespace_info),
    ));
    let snapshot = match policies {
        Policies::Engine(engine) => engine.snapshot(),
        Policies::Config(config, constraints) => {
            let mut builder = Snapshot::builder(config).namespaces(namespaces.clone());
            if let Some(store) = constraints {
                builder = builder.constraints(store);
            }
            Arc::new(builder.build())
        }
    };
    let ownership = ownership.clone();
    // Evaluation is CPU work (Rego, Pod Security): off the async workers.
    tokio::task::spawn_blocking(move || {
        let options = Options {
            only: None,
            evidence: true,
        };
        let scanner = Scanner {
            snapshot: &snapshot,
            options: &options,
            ownership: &ownership,
            namespaces: namespaces.as_ref(),
            default_namespace: "default",
        };
        let mut scan = Scan::default();
        for object in pages.into_iter().flatten() {
            scanner.add(object, &mut scan);
        }
        scan.controlled += controlled;
        scan.finish();
        scan
    })
    .await
    .map_err(|e| BackgroundError::Task(e.to_string()))
}

/// A Namespace object's name, labels and annotations.
pub fn namespace_info(object: &serde_json::Value) -> Option<NamespaceInfo> {
    let meta = object.get("metadata")?;
    let map = |key: &str| {
        meta.get(key)
            .and_then(|m| serde_json::from_value(m.clone()).ok())
            .unwrap_or_default()
    };
    Some(NamespaceInfo {
        name: meta.get("name")?.as_str()?.to_owned(),
        labels: map("labels"),
        annotations: map("annotations"),
    })
}

/// Background audit, ready to run.
pub struct Background {
    /// The Kubernetes client.
    pub client: Client,
    /// The webhook's engine: each pass judges with its current snapshot.
    pub engine: Arc<Engine>,
    /// The ownership requirements readiness is measured against.
    pub ownership: OwnershipConfig,
    /// Interval, page size, reports on or off.
    pub settings: BackgroundSettings,
    /// Where results go.
    pub metrics: Arc<AuditMetrics>,
    /// `Some`: run passes only while it holds `true` (leader election);
    /// `None`: always.
    pub leader: Option<watch::Receiver<bool>>,
}

impl Background {
    /// One pass: scan, score, build and (per settings) write the reports,
    /// update the metrics.
    pub async fn pass(&self) -> Result<Pass, BackgroundError> {
        let started = Instant::now();
        let result = self.pass_inner().await;
        self.metrics
            .pass_duration
            .set(started.elapsed().as_secs_f64());
        let outcome = if result.is_ok() { "success" } else { "failure" };
        self.metrics
            .passes
            .get_or_create(&metrics::OutcomeLabels { outcome })
            .inc();
        if result.is_ok() {
            self.metrics
                .last_success
                .set(time::OffsetDateTime::now_utc().unix_timestamp());
        }
        result
    }

    async fn pass_inner(&self) -> Result<Pass, BackgroundError> {
        let scan = scan_cluster(
            &self.client,
            Policies::Engine(&self.engine),
            &self.ownership,
            self.settings.page_size,
        )
        .await?;
        let scores = readiness::score(&scan);
        let reports = report::build(&scan, time::OffsetDateTime::now_utc());
        self.metrics.observe(&scores, &reports);
        self.metrics
            .objects
            .set(i64::try_from(scan.objects.len()).unwrap_or(i64::MAX));
        let written = if self.settings.write_reports {
            Some(sync(&self.client, &reports, &self.metrics).await?)
        } else {
            None
        };
        Ok(Pass {
            scan,
            scores,
            reports,
            written,
        })
    }

    /// Runs passes every `interval` until `shutdown` completes. While a
    /// leadership signal says `false`, waits for it to turn `true`.
    pub async fn run(mut self, shutdown: impl Future<Output = ()> + Send) {
        let interval =
            Duration::from_secs(self.settings.interval_seconds.max(MIN_INTERVAL_SECONDS));
        tokio::pin!(shutdown);
        loop {
            if let Some(leader) = self.leader.as_mut() {
                self.metrics.leader.set(i64::from(*leader.borrow()));
                if !*leader.borrow_and_update() {
                    tokio::select! {
                        () = &mut shutdown => break,
                        changed = leader.changed() => {
                            if changed.is_err() {
                                // The elector is gone: no leadership, ever.
                                tracing::warn!("background audit: leadership signal closed; stopping");
                                self.metrics.leader.set(0);
                                break;
                            }
                            continue;
                        }
                    }
                }
            } else {
                self.metrics.leader.set(1);
            }
            let started = Instant::now();
            match self.pass().await {
                Ok(pass) => tracing::info!(
                    objects = pass.scan.objects.len(),
                    controlled = pass.scan.controlled,
                    readiness = pass.scores.cluster.ratio(),
                    written = ?pass.written,
                    elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    "background audit pass"
                ),
                Err(e) => tracing::warn!(error = %e, "background audit pass failed"),
            }
            let next = tokio::time::sleep(interval.saturating_sub(started.elapsed()));
            tokio::select! {
                () = &mut shutdown => break,
                () = next => {}
            }
        }
        self.metrics.leader.set(0);
    }
}

/// How often the leadership signal is refreshed.
pub const LEADERSHIP_CHECK_SECONDS: u64 = 10;
/// How long a leader holds the Lease after each renewal, when background
/// audit elects one itself.
pub const LEASE_SECONDS: u64 = 30;

/// How background audit learns whether this replica leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Election {
    /// Another component (the certificate manager) renews the Lease:
    /// follow it, read-only, so both agree on one leader and never race
    /// on the Lease's resourceVersion.
    Follow,
    /// Nobody else renews it (certificates by cert-manager): compete for
    /// it here.
    Elect,
}

/// Publishes whether `identity` holds Lease `namespace/lease` (held and not
/// expired), refreshed every [`LEADERSHIP_CHECK_SECONDS`], for the life of
/// the process. Replicas therefore share one leader for certificates and
/// reports (the chart's Lease and RBAC).
pub fn leadership(
    client: Client,
    namespace: &str,
    lease: &str,
    identity: &str,
    election: Election,
) -> watch::Receiver<bool> {
    let elector = crate::lease::LeaderElector::new(
        client.clone(),
        namespace,
        lease,
        identity,
        Duration::from_secs(LEASE_SECONDS),
    );
    let api: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
        kube::Api::namespaced(client, namespace);
    let (lease, identity) = (lease.to_owned(), identity.to_owned());
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        loop {
            let leading = match election {
                Election::Elect => elector.try_acquire_or_renew().await.unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "background audit: lease not renewed");
                    false
                }),
                Election::Follow => match api.get_opt(&lease).await {
                    Ok(Some(l)) => holds(&l, &identity),
                    Ok(None) => false,
                    Err(e) => {
                        tracing::warn!(error = %e, "background audit: lease not readable");
                        false
                    }
                },
            };
            tx.send_if_modified(|current| {
                let changed = *current != leading;
                *current = leading;
                changed
            });
            if tx.is_closed() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(LEADERSHIP_CHECK_SECONDS)).await;
        }
    });
    rx
}

/// True when `identity` holds `lease` and its last renewal has not expired.
fn holds(lease: &k8s_openapi::api::coordination::v1::Lease, identity: &str) -> bool {
    let Some(spec) = &lease.spec else {
        return false;
    };
    if spec.holder_identity.as_deref() != Some(identity) {
        return false;
    }
    let held_for = k8s_openapi::jiff::SignedDuration::from_secs(i64::from(
        spec.lease_duration_seconds.unwrap_or(0),
    ));
    spec.renew_time.as_ref().is_some_and(|renewed| {
        renewed
            .0
            .saturating_add(held_for)
            .is_ok_and(|until| until >= k8s_openapi::jiff::Timestamp::now())
    })
}

/// Runs background audit until `shutdown` (see [`Background::run`]); the
/// entry point for `tollgate webhook --in-cluster`.
pub async fn run(background: Background, shutdown: impl Future<Output = ()> + Send) {
    background.run(shutdown).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_strictly_and_validate() {
        let s: BackgroundSettings =
            yaml_serde::from_str("intervalSeconds: 60\nwriteReports: false\n").unwrap();
        assert_eq!(s.interval_seconds, 60);
        assert!(!s.write_reports);
        assert_eq!(s.page_size, 500);
        assert!(s.validate().is_ok());
        let err = yaml_serde::from_str::<BackgroundSettings>("interval: 60\n").unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
        let short = BackgroundSettings {
            interval_seconds: 5,
            ..BackgroundSettings::default()
        };
        assert!(short.validate().unwrap_err().contains("minimum of 10"));
        let zero = BackgroundSettings {
            page_size: 0,
            ..BackgroundSettings::default()
        };
        assert!(zero.validate().is_err());
    }

    #[test]
    fn namespace_info_reads_labels_and_annotations() {
        let ns = serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "a", "labels": {"x": "1"}, "annotations": {"deployscope.dev/owner": "t"}}});
        let info = namespace_info(&ns).unwrap();
        assert_eq!(info.name, "a");
        assert_eq!(info.labels["x"], "1");
        assert_eq!(info.annotations["deployscope.dev/owner"], "t");
        assert!(namespace_info(&serde_json::json!({"kind": "Namespace"})).is_none());
    }
}
