//! PolicyReports (`wgpolicyk8s.io/v1alpha2`, the Kubernetes Policy WG's
//! report format that Kyverno, Trivy and Policy Reporter read) built from a
//! [`Scan`]: one `PolicyReport` per namespace with a judged object, named
//! [`REPORT_NAME`], and one `ClusterPolicyReport` named
//! [`CLUSTER_REPORT_NAME`] for cluster-scoped objects (Namespaces).
//!
//! Results, one per finding:
//! - a violation is `fail` (deny or audit action) or `warn` (warn action),
//!   with the rule, the message (what to change), `severity`, `category`
//!   (the frameworks whose controls the rule evidences, else the policy
//!   set) and `properties` naming the controls (`controls`:
//!   `"PCI-DSS 2.2.5, SOC2 CC6.1"`), the enforcement action, the field path
//!   and the container;
//! - a policy set that judged a workload and found nothing is one `pass`,
//!   naming the rules that ran (`properties.rules`) and the controls they
//!   evidence (`properties.controls`, `category`);
//! - a policy set that skipped a workload by exemption is one `skip`;
//! - an object that could not be evaluated is one `error`.
//!
//! Reports carry the label `app.kubernetes.io/managed-by: tollgate`, which
//! is how background audit finds (and deletes) its own stale reports.
//! A report holds at most [`MAX_RESULTS`] results (etcd refuses objects
//! over 1.5 MiB): past that, `pass` and `skip` results go first, and the
//! annotation [`TRUNCATED_ANNOTATION`] says how many were left out; the
//! summary always counts every result.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tollgate_policies::{Control, EnforcementAction, PolicySet, Violation};

use crate::scan::{Audited, ObjectRef, Scan};

/// The API group.
pub const GROUP: &str = "wgpolicyk8s.io";
/// The API version.
pub const VERSION: &str = "v1alpha2";
/// The name of each namespace's report.
pub const REPORT_NAME: &str = "tollgate-audit";
/// The name of the cluster-scoped report.
pub const CLUSTER_REPORT_NAME: &str = "tollgate-audit-cluster";
/// The label marking reports Tollgate manages, and its value.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "tollgate");
/// The `source` of every result.
pub const SOURCE: &str = "tollgate";
/// Results kept per report.
pub const MAX_RESULTS: usize = 2_000;
/// Annotation giving the number of results left out of a full report.
pub const TRUNCATED_ANNOTATION: &str = "audit.tollgate.dev/results-truncated";
/// Longest message kept in a result.
const MAX_MESSAGE_CHARS: usize = 1_024;

/// `apiVersion` and `kind` (empty when a list response leaves them out).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypeMeta {
    /// `wgpolicyk8s.io/v1alpha2`.
    #[serde(default)]
    pub api_version: String,
    /// `PolicyReport` or `ClusterPolicyReport`.
    #[serde(default)]
    pub kind: String,
}

/// A result's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The requirements are met.
    Pass,
    /// They are not.
    Fail,
    /// They are not, and the policy is not scored (warn action).
    Warn,
    /// The policy could not be evaluated.
    Error,
    /// The policy was not applied (exemption).
    Skip,
}

/// A result's severity (the values every published version of the CRD
/// accepts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Host or privilege exposure, or an object that cannot be judged.
    High,
    /// Hardening and compliance gaps.
    Medium,
    /// Metadata gaps (ownership annotations).
    Low,
}

/// `metav1.Timestamp`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timestamp {
    /// Seconds since the Unix epoch.
    pub seconds: i64,
    /// Nanoseconds within the second.
    pub nanos: i32,
}

/// An `ObjectReference` as reports use it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    /// `apps/v1`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// `Deployment`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// The name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// The UID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

/// One result (`PolicyReportResult`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportResult {
    /// Always [`SOURCE`].
    pub source: String,
    /// The policy set (`pod-security`, `ownership`, `compliance`,
    /// `constraints`).
    pub policy: String,
    /// The rule within it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rule: String,
    /// The frameworks the rule evidences (`"HIPAA, PCI-DSS"`), else the
    /// policy set's name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub category: String,
    /// How serious a failure is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    /// When the scan found it.
    pub timestamp: Timestamp,
    /// The outcome.
    pub result: Outcome,
    /// True for results that count against the object (deny and audit
    /// actions, passes).
    #[serde(default)]
    pub scored: bool,
    /// The object.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<Resource>,
    /// What is wrong and how to fix it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// `controls`, `frameworks`, `action`, `path`, `container`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
}

/// `PolicyReportSummary`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Passed.
    pub pass: usize,
    /// Failed.
    pub fail: usize,
    /// Warned.
    pub warn: usize,
    /// Could not be evaluated.
    pub error: usize,
    /// Skipped.
    pub skip: usize,
}

/// The body both report kinds share.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportBody {
    /// Counts of every result (also those truncated away).
    #[serde(default)]
    pub summary: Summary,
    /// The results.
    #[serde(default)]
    pub results: Vec<ReportResult>,
}

/// A `wgpolicyk8s.io/v1alpha2` `PolicyReport` (namespaced).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PolicyReport {
    /// `apiVersion: wgpolicyk8s.io/v1alpha2`, `kind: PolicyReport`.
    #[serde(flatten)]
    pub types: TypeMeta,
    /// Standard metadata.
    pub metadata: ObjectMeta,
    /// Summary and results.
    #[serde(flatten)]
    pub body: ReportBody,
}

/// A `wgpolicyk8s.io/v1alpha2` `ClusterPolicyReport`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterPolicyReport {
    /// `apiVersion: wgpolicyk8s.io/v1alpha2`, `kind: ClusterPolicyReport`.
    #[serde(flatten)]
    pub types: TypeMeta,
    /// Standard metadata.
    pub metadata: ObjectMeta,
    /// Summary and results.
    #[serde(flatten)]
    pub body: ReportBody,
}

macro_rules! report_resource {
    ($ty:ty, $kind:literal, $plural:literal, $scope:ty) => {
        impl kube::Resource for $ty {
            type DynamicType = ();
            type Scope = $scope;

            fn kind(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($kind)
            }
            fn group(_: &()) -> Cow<'_, str> {
                Cow::Borrowed(GROUP)
            }
            fn version(_: &()) -> Cow<'_, str> {
                Cow::Borrowed(VERSION)
            }
            fn plural(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($plural)
            }
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

report_resource!(
    PolicyReport,
    "PolicyReport",
    "policyreports",
    NamespaceResourceScope
);
report_resource!(
    ClusterPolicyReport,
    "ClusterPolicyReport",
    "clusterpolicyreports",
    ClusterResourceScope
);

/// Every report a scan yields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reports {
    /// One per namespace with a judged object, keyed by namespace.
    pub namespaced: BTreeMap<String, PolicyReport>,
    /// The cluster-scoped report (absent when no cluster-scoped object was
    /// judged).
    pub cluster: Option<ClusterPolicyReport>,
}

/// Builds the reports of `scan`, stamping results with `now`.
pub fn build(scan: &Scan, now: OffsetDateTime) -> Reports {
    let timestamp = Timestamp {
        seconds: now.unix_timestamp(),
        nanos: i32::try_from(now.nanosecond()).unwrap_or(0),
    };
    let mut bodies: BTreeMap<String, Vec<ReportResult>> = BTreeMap::new();
    let mut cluster: Vec<ReportResult> = Vec::new();
    let mut cluster_seen = false;
    for audited in &scan.objects {
        let results = if audited.object.namespace.is_empty() {
            cluster_seen = true;
            &mut cluster
        } else {
            bodies.entry(audited.object.namespace.clone()).or_default()
        };
        results_of(audited, timestamp, results);
    }
    Reports {
        namespaced: bodies
            .into_iter()
            .map(|(ns, results)| {
                let (body, dropped) = body(results);
                let report = PolicyReport {
                    types: type_meta("PolicyReport"),
                    metadata: metadata(REPORT_NAME, Some(&ns), dropped),
                    body,
                };
                (ns, report)
            })
            .collect(),
        cluster: cluster_seen.then(|| {
            let (body, dropped) = body(cluster);
            ClusterPolicyReport {
                types: type_meta("ClusterPolicyReport"),
                metadata: metadata(CLUSTER_REPORT_NAME, None, dropped),
                body,
            }
        }),
    }
}

fn type_meta(kind: &str) -> TypeMeta {
    TypeMeta {
        api_version: format!("{GROUP}/{VERSION}"),
        kind: kind.to_owned(),
    }
}

fn metadata(name: &str, namespace: Option<&str>, dropped: usize) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.map(str::to_owned),
        labels: Some(BTreeMap::from([(
            MANAGED_BY.0.to_owned(),
            MANAGED_BY.1.to_owned(),
        )])),
        annotations: (dropped > 0)
            .then(|| BTreeMap::from([(TRUNCATED_ANNOTATION.to_owned(), dropped.to_string())])),
        ..ObjectMeta::default()
    }
}

/// The summary of every result, and the results kept, with how many were
/// left out.
fn body(mut results: Vec<ReportResult>) -> (ReportBody, usize) {
    let mut summary = Summary::default();
    for r in &results {
        match r.result {
            Outcome::Pass => summary.pass += 1,
            Outcome::Fail => summary.fail += 1,
            Outcome::Warn => summary.warn += 1,
            Outcome::Error => summary.error += 1,
            Outcome::Skip => summary.skip += 1,
        }
    }
    let mut dropped = 0;
    if results.len() > MAX_RESULTS {
        // Keep findings before passes; a stable sort keeps object order.
        results.sort_by_key(|r| match r.result {
            Outcome::Error | Outcome::Fail => 0,
            Outcome::Warn => 1,
            Outcome::Skip | Outcome::Pass => 2,
        });
        dropped = results.len() - MAX_RESULTS;
        results.truncate(MAX_RESULTS);
    }
    (ReportBody { summary, results }, dropped)
}

fn resource(object: &ObjectRef) -> Resource {
    Resource {
        api_version: object.api_version.clone(),
        kind: object.kind.clone(),
        name: object.name.clone(),
        namespace: object.namespace.clone(),
        uid: object.uid.clone(),
    }
}

fn results_of(audited: &Audited, timestamp: Timestamp, out: &mut Vec<ReportResult>) {
    let resources = vec![resource(&audited.object)];
    let base = |policy: &str, result: Outcome| ReportResult {
        source: SOURCE.to_owned(),
        policy: policy.to_owned(),
        rule: String::new(),
        category: String::new(),
        severity: None,
        timestamp,
        result,
        scored: true,
        resources: resources.clone(),
        message: String::new(),
        properties: BTreeMap::new(),
    };
    if let Some(error) = &audited.error {
        out.push(ReportResult {
            rule: "evaluation".to_owned(),
            severity: Some(Severity::High),
            message: clip(error),
            ..base("tollgate", Outcome::Error)
        });
        return;
    }
    for v in &audited.violations {
        out.push(violation_result(v, base(v.policy.as_str(), Outcome::Fail)));
    }
    for passed in &audited.passed {
        let mut properties = BTreeMap::new();
        if !passed.rules.is_empty() {
            properties.insert("rules".to_owned(), passed.rules.join(", "));
        }
        let frameworks = frameworks(&passed.controls);
        if !passed.controls.is_empty() {
            properties.insert(
                "controls".to_owned(),
                passed
                    .controls
                    .iter()
                    .map(Control::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            );
            properties.insert("frameworks".to_owned(), frameworks.join(", "));
        }
        let set = passed.policy;
        out.push(ReportResult {
            category: if frameworks.is_empty() {
                set_category(set).to_owned()
            } else {
                frameworks.join(", ")
            },
            message: match passed.rules.len() {
                0 => format!("no {} violations", set.as_str()),
                n => format!("no {} violations ({n} rules)", set.as_str()),
            },
            properties,
            ..base(set.as_str(), Outcome::Pass)
        });
    }
    for (set, reason) in &audited.exempt {
        out.push(ReportResult {
            category: set_category(*set).to_owned(),
            scored: false,
            message: format!("not evaluated: exempt by {reason}"),
            properties: BTreeMap::from([("exemption".to_owned(), (*reason).to_owned())]),
            ..base(set.as_str(), Outcome::Skip)
        });
    }
}

fn violation_result(v: &Violation, base: ReportResult) -> ReportResult {
    let mut properties = BTreeMap::new();
    let action = match v.action {
        EnforcementAction::Deny => "deny",
        EnforcementAction::Warn => "warn",
        EnforcementAction::Audit => "audit",
    };
    properties.insert("action".to_owned(), action.to_owned());
    let frameworks = frameworks(&v.controls);
    if !v.controls.is_empty() {
        properties.insert(
            "controls".to_owned(),
            v.controls
                .iter()
                .map(Control::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        );
        properties.insert("frameworks".to_owned(), frameworks.join(", "));
    }
    if let Some(path) = &v.path {
        properties.insert("path".to_owned(), path.clone());
    }
    if let Some(container) = &v.container {
        properties.insert("container".to_owned(), container.clone());
    }
    let (result, scored) = match v.action {
        EnforcementAction::Warn => (Outcome::Warn, false),
        EnforcementAction::Deny | EnforcementAction::Audit => (Outcome::Fail, true),
    };
    ReportResult {
        rule: v.rule.clone(),
        category: if frameworks.is_empty() {
            set_category(v.policy).to_owned()
        } else {
            frameworks.join(", ")
        },
        severity: Some(severity(v)),
        result,
        scored,
        message: clip(&v.message),
        properties,
        ..base
    }
}

/// The distinct frameworks of `controls`, sorted.
fn frameworks(controls: &[Control]) -> Vec<&str> {
    let mut out: Vec<&str> = controls.iter().map(|c| c.framework.as_str()).collect();
    out.sort_unstable();
    out.dedup();
    out
}

fn set_category(set: PolicySet) -> &'static str {
    match set {
        PolicySet::PodSecurity => "Pod Security Standards",
        PolicySet::Ownership => "Ownership",
        PolicySet::Compliance => "Compliance",
        PolicySet::Constraints => "Gatekeeper constraints",
        PolicySet::Action => "Action policy",
        PolicySet::Injection => "Sidecar injection",
    }
}

/// High for Baseline Pod Security checks (host and privilege exposure) and
/// evaluation errors, low for ownership annotations, medium otherwise.
fn severity(v: &Violation) -> Severity {
    match v.policy {
        _ if v.rule == "evaluationError" => Severity::High,
        PolicySet::PodSecurity => {
            let baseline = tollgate_policies::pss::registry()
                .iter()
                .find(|c| c.id == v.rule)
                .is_some_and(|c| c.level == tollgate_policies::Level::Baseline);
            if baseline {
                Severity::High
            } else {
                Severity::Medium
            }
        }
        PolicySet::Ownership => Severity::Low,
        PolicySet::Compliance
        | PolicySet::Constraints
        | PolicySet::Action
        | PolicySet::Injection => Severity::Medium,
    }
}

fn clip(text: &str) -> String {
    if text.chars().count() <= MAX_MESSAGE_CHARS {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(MAX_MESSAGE_CHARS - 1).collect();
    out.push('…');
    out
}

impl ReportBody {
    /// True when `other` holds the same findings, whatever their
    /// timestamps: background audit then leaves the stored report alone.
    pub fn same_findings(&self, other: &ReportBody) -> bool {
        self.summary == other.summary
            && self.results.len() == other.results.len()
            && self.results.iter().zip(&other.results).all(|(a, b)| {
                ReportResult {
                    timestamp: b.timestamp,
                    ..a.clone()
                } == *b
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::Audited;

    fn audited(name: &str, fail: bool) -> Audited {
        Audited {
            object: ObjectRef {
                api_version: "v1".into(),
                kind: "Pod".into(),
                namespace: "big".into(),
                name: name.into(),
                uid: None,
            },
            workload: Some(tollgate_policies::WorkloadKind::Pod),
            violations: if fail {
                vec![Violation {
                    policy: PolicySet::Ownership,
                    rule: "ownership-owner".into(),
                    message: "x".repeat(MAX_MESSAGE_CHARS + 10),
                    path: None,
                    container: None,
                    controls: Vec::new(),
                    action: EnforcementAction::Deny,
                }]
            } else {
                Vec::new()
            },
            passed: if fail {
                Vec::new()
            } else {
                vec![crate::scan::Passed {
                    policy: PolicySet::PodSecurity,
                    rules: vec!["privileged".into()],
                    controls: Vec::new(),
                }]
            },
            exempt: Vec::new(),
            notes: Vec::new(),
            error: None,
            readiness: None,
        }
    }

    #[test]
    fn full_reports_keep_findings_and_count_everything() {
        let mut scan = Scan::default();
        for i in 0..MAX_RESULTS + 100 {
            scan.objects.push(audited(&format!("ok-{i}"), false));
        }
        for i in 0..10 {
            scan.objects.push(audited(&format!("bad-{i}"), true));
        }
        let reports = build(&scan, OffsetDateTime::UNIX_EPOCH);
        let report = &reports.namespaced["big"];
        assert_eq!(report.body.summary.pass, MAX_RESULTS + 100);
        assert_eq!(report.body.summary.fail, 10);
        assert_eq!(report.body.results.len(), MAX_RESULTS);
        assert!(
            report.body.results[..10]
                .iter()
                .all(|r| r.result == Outcome::Fail)
        );
        assert_eq!(
            report.body.results[0].message.chars().count(),
            MAX_MESSAGE_CHARS
        );
        assert_eq!(report.body.results[0].severity, Some(Severity::Low));
        assert_eq!(
            report.metadata.annotations.as_ref().unwrap()[TRUNCATED_ANNOTATION],
            "110"
        );
    }

    #[test]
    fn findings_compare_without_timestamps() {
        let mut scan = Scan::default();
        scan.objects.push(audited("a", true));
        let then = build(&scan, OffsetDateTime::UNIX_EPOCH);
        let now = build(&scan, OffsetDateTime::now_utc());
        let (a, b) = (&then.namespaced["big"].body, &now.namespaced["big"].body);
        assert_ne!(a, b);
        assert!(a.same_findings(b));
        scan.objects.push(audited("b", false));
        let more = build(&scan, OffsetDateTime::UNIX_EPOCH);
        assert!(!a.same_findings(&more.namespaced["big"].body));
    }
}
