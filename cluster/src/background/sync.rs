//! Writing a pass's reports: create what is new, replace what changed
//! (optimistic concurrency: a conflict re-reads and retries), leave
//! unchanged findings alone (whatever their timestamps), and delete the
//! reports Tollgate manages that the pass no longer yields.

use std::collections::BTreeMap;

use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, PostParams};

use super::BackgroundError;
use super::metrics::{AuditMetrics, WriteLabels};
use crate::report::{ClusterPolicyReport, MANAGED_BY, PolicyReport, ReportBody, Reports};

/// Attempts per report when updates conflict.
const ATTEMPTS: usize = 3;

/// What a sync did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// Reports created.
    pub created: usize,
    /// Reports replaced.
    pub updated: usize,
    /// Reports left as they were.
    pub unchanged: usize,
    /// Stale reports deleted.
    pub deleted: usize,
    /// The ClusterPolicyReport was not written (CRD or permission missing).
    pub cluster_skipped: bool,
}

/// Makes the cluster's Tollgate-managed reports those of `reports`.
pub async fn sync(
    client: &Client,
    reports: &Reports,
    metrics: &AuditMetrics,
) -> Result<Written, BackgroundError> {
    let mut written = Written::default();
    let selector = format!("{}={}", MANAGED_BY.0, MANAGED_BY.1);
    let all: Api<PolicyReport> = Api::all(client.clone());
    let existing = all
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|source| BackgroundError::List {
            resource: "policyreports.wgpolicyk8s.io".into(),
            source,
        })?;
    let mut stale: BTreeMap<(String, String), ()> = BTreeMap::new();
    for r in &existing.items {
        if let (Some(ns), Some(name)) = (&r.metadata.namespace, &r.metadata.name) {
            stale.insert((ns.clone(), name.clone()), ());
        }
    }
    for (ns, report) in &reports.namespaced {
        let name = report.metadata.name.clone().unwrap_or_default();
        stale.remove(&(ns.clone(), name.clone()));
        let api: Api<PolicyReport> = Api::namespaced(client.clone(), ns);
        let current = existing
            .items
            .iter()
            .find(|r| {
                r.metadata.namespace.as_deref() == Some(ns)
                    && r.metadata.name.as_ref() == Some(&name)
            })
            .cloned();
        put(&api, report.clone(), current, metrics, &mut written).await?;
    }
    for ((ns, name), ()) in stale {
        let api: Api<PolicyReport> = Api::namespaced(client.clone(), &ns);
        delete(&api, &name, metrics, &mut written).await?;
    }
    let cluster_api: Api<ClusterPolicyReport> = Api::all(client.clone());
    let existing = match cluster_api
        .list(&ListParams::default().labels(&selector))
        .await
    {
        Ok(list) => list,
        // The namespaced reports are written; a missing ClusterPolicyReport
        // CRD or permission only loses the Namespaces' own results.
        Err(kube::Error::Api(s)) if s.is_forbidden() || s.is_not_found() => {
            tracing::warn!(
                reason = %s.message,
                "ClusterPolicyReports not written: grant list/create/update/delete on clusterpolicyreports.wgpolicyk8s.io or install the CRD"
            );
            written.cluster_skipped = true;
            return Ok(written);
        }
        Err(source) => {
            return Err(BackgroundError::List {
                resource: "clusterpolicyreports.wgpolicyk8s.io".into(),
                source,
            });
        }
    };
    let wanted = reports
        .cluster
        .as_ref()
        .and_then(|c| c.metadata.name.clone());
    for r in &existing.items {
        if let Some(name) = &r.metadata.name
            && Some(name) != wanted.as_ref()
        {
            delete(&cluster_api, name, metrics, &mut written).await?;
        }
    }
    if let Some(report) = &reports.cluster {
        let current = existing
            .items
            .iter()
            .find(|r| r.metadata.name == report.metadata.name)
            .cloned();
        put(&cluster_api, report.clone(), current, metrics, &mut written).await?;
    }
    Ok(written)
}

/// A report type background audit writes.
trait Report:
    kube::Resource<DynamicType = ()>
    + Clone
    + serde::Serialize
    + serde::de::DeserializeOwned
    + std::fmt::Debug
{
    fn body(&self) -> &ReportBody;
}

impl Report for PolicyReport {
    fn body(&self) -> &ReportBody {
        &self.body
    }
}

impl Report for ClusterPolicyReport {
    fn body(&self) -> &ReportBody {
        &self.body
    }
}

fn count(metrics: &AuditMetrics, operation: &'static str, ok: bool) {
    metrics
        .writes
        .get_or_create(&WriteLabels {
            operation,
            outcome: if ok { "success" } else { "failure" },
        })
        .inc();
}

fn write_error<R: Report>(
    operation: &'static str,
    report: &R,
    source: kube::Error,
) -> BackgroundError {
    BackgroundError::Write {
        operation,
        kind: R::kind(&()).into_owned(),
        namespace: report.meta().namespace.clone().unwrap_or_default(),
        name: report.meta().name.clone().unwrap_or_default(),
        source,
    }
}

async fn put<R: Report>(
    api: &Api<R>,
    mut wanted: R,
    mut current: Option<R>,
    metrics: &AuditMetrics,
    written: &mut Written,
) -> Result<(), BackgroundError> {
    let name = wanted.meta().name.clone().unwrap_or_default();
    for attempt in 1..=ATTEMPTS {
        let Some(existing) = current.take() else {
            match api.create(&PostParams::default(), &wanted).await {
                Ok(_) => {
                    count(metrics, "create", true);
                    written.created += 1;
                    return Ok(());
                }
                Err(kube::Error::Api(s)) if s.is_already_exists() && attempt < ATTEMPTS => {
                    current = api
                        .get_opt(&name)
                        .await
                        .map_err(|e| write_error("get", &wanted, e))?;
                    continue;
                }
                Err(e) => {
                    count(metrics, "create", false);
                    return Err(write_error("create", &wanted, e));
                }
            }
        };
        if existing.body().same_findings(wanted.body())
            && existing.meta().annotations == wanted.meta().annotations
        {
            written.unchanged += 1;
            return Ok(());
        }
        wanted.meta_mut().resource_version = existing.meta().resource_version.clone();
        match api.replace(&name, &PostParams::default(), &wanted).await {
            Ok(_) => {
                count(metrics, "update", true);
                written.updated += 1;
                return Ok(());
            }
            Err(kube::Error::Api(s))
                if (s.is_conflict() || s.is_not_found()) && attempt < ATTEMPTS =>
            {
                // Someone changed or removed it since we listed: read again.
                current = api
                    .get_opt(&name)
                    .await
                    .map_err(|e| write_error("get", &wanted, e))?;
                wanted.meta_mut().resource_version = None;
            }
            Err(e) => {
                count(metrics, "update", false);
                return Err(write_error("update", &wanted, e));
            }
        }
    }
    count(metrics, "update", false);
    Err(BackgroundError::Conflict {
        kind: R::kind(&()).into_owned(),
        name,
    })
}

async fn delete<R: Report>(
    api: &Api<R>,
    name: &str,
    metrics: &AuditMetrics,
    written: &mut Written,
) -> Result<(), BackgroundError> {
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => {
            count(metrics, "delete", true);
            written.deleted += 1;
            Ok(())
        }
        // Already gone: that is what we wanted.
        Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
        Err(source) => {
            count(metrics, "delete", false);
            Err(BackgroundError::Write {
                operation: "delete",
                kind: R::kind(&()).into_owned(),
                namespace: String::new(),
                name: name.to_owned(),
                source,
            })
        }
    }
}
