//! A scan: the objects already in a cluster (or in manifests, for `tollgate
//! doctor -f`) judged by the admission engine, as background audit sees
//! them. Pure: objects in, [`Scan`] out; listing them is the caller's job.
//!
//! Which objects are judged:
//! - every workload (Pod, Deployment, ReplicaSet, StatefulSet, DaemonSet,
//!   Job, CronJob, ReplicationController) **unless** it is controlled by a
//!   workload that is judged itself (a Pod of a ReplicaSet, a ReplicaSet of
//!   a Deployment, a Job of a CronJob ...: the ownership rule's own
//!   [`checked_controller`] relation). Such objects repeat their
//!   controller's template; judging them too would count one workload
//!   several times. They are counted in [`Scan::controlled`].
//! - Namespaces (their labels select policy levels and profiles, and are
//!   judged themselves); they land in the cluster-scoped report and are not
//!   scored for readiness.
//! - anything else is counted in [`Scan::other`] and left alone.
//!
//! Each object is judged as it is stored, without the mutating webhook's
//! changes ([`offline::check_object`] with `mutate = false`), by the same
//! snapshot the webhook serves.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize as _, Serialize};
use serde_json::Value;
use tollgate_policies::compliance::Catalogue;
use tollgate_policies::engine::offline;
use tollgate_policies::engine::{Options, Snapshot};
use tollgate_policies::ownership::{OwnershipConfig, checked_controller};
use tollgate_policies::report::Evaluated;
use tollgate_policies::{
    Control, EnforcementAction, NamespaceSource, PolicySet, Violation, WorkloadKind,
};

use crate::readiness::{self, Readiness};

/// Which object a result is about, as PolicyReports reference it.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    /// `apps/v1`.
    pub api_version: String,
    /// `Deployment`.
    pub kind: String,
    /// The namespace (`""` for cluster-scoped objects).
    pub namespace: String,
    /// The name.
    pub name: String,
    /// The object's UID, when it came from a cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

/// What the scan found about one object.
#[derive(Debug, Clone, PartialEq)]
pub struct Audited {
    /// The object.
    pub object: ObjectRef,
    /// Its workload kind (`None` for a Namespace).
    pub workload: Option<WorkloadKind>,
    /// Every violation, each with the controls it evidences (Pod Security
    /// violations get the catalogue's controls for their level).
    pub violations: Vec<Violation>,
    /// Per policy set that judged it and found nothing: the rules that ran
    /// (when the engine recorded them, [`Options::evidence`]) and the
    /// controls they evidence. `rule` is empty; `Passed::rules` lists them.
    pub passed: Vec<Passed>,
    /// The policy sets that skipped it by exemption, and why.
    pub exempt: Vec<(PolicySet, &'static str)>,
    /// Notes that are not violations (a misspelt namespace label ...).
    pub notes: Vec<String>,
    /// Why it could not be evaluated (its spec does not parse ...).
    pub error: Option<String>,
    /// Its agent-readiness (workloads only).
    pub readiness: Option<Readiness>,
}

/// A policy set that judged an object and found nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Passed {
    /// The policy set.
    pub policy: PolicySet,
    /// The rules that ran and passed (empty when the engine did not record
    /// them).
    pub rules: Vec<String>,
    /// The controls those rules evidence, deduplicated and sorted.
    pub controls: Vec<Control>,
}

/// Everything one scan found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scan {
    /// Judged objects, sorted by namespace, kind and name.
    pub objects: Vec<Audited>,
    /// Workloads skipped because an audited controller owns them.
    pub controlled: usize,
    /// Objects of kinds background audit does not judge.
    pub other: usize,
    /// Every namespace seen: of a judged object, or a Namespace itself.
    pub namespaces: BTreeSet<String>,
}

impl Scan {
    /// Sorts the judged objects by namespace, kind and name.
    pub fn finish(&mut self) {
        self.objects.sort_by(|a, b| {
            (&a.object.namespace, &a.object.kind, &a.object.name).cmp(&(
                &b.object.namespace,
                &b.object.kind,
                &b.object.name,
            ))
        });
    }
}

/// Judges objects with one snapshot. Set [`Options::evidence`] for pass
/// results that name the rules and controls they evidence.
pub struct Scanner<'a> {
    /// The policy set the webhook serves.
    pub snapshot: &'a Snapshot,
    /// Which policy sets to run.
    pub options: &'a Options,
    /// The ownership requirements the readiness score measures against.
    pub ownership: &'a OwnershipConfig,
    /// Namespace labels and annotations (for readiness: which keys the
    /// namespace would let a workload inherit).
    pub namespaces: &'a dyn NamespaceSource,
    /// The namespace of objects that name none (manifests).
    pub default_namespace: &'a str,
}

impl Scanner<'_> {
    /// Judges `objects`.
    pub fn scan(&self, objects: impl IntoIterator<Item = Value>) -> Scan {
        let mut scan = Scan::default();
        for object in objects {
            self.add(object, &mut scan);
        }
        scan.finish();
        scan
    }

    /// Judges one more object into `scan` (callers that page through a
    /// cluster add page by page, then call [`Scan::finish`]).
    pub fn add(&self, object: Value, scan: &mut Scan) {
        self.one(object, scan);
    }

    fn one(&self, mut object: Value, scan: &mut Scan) {
        let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
        let workload = WorkloadKind::from_kind(kind);
        if workload.is_none() && kind != "Namespace" {
            scan.other += 1;
            return;
        }
        if workload.is_some() && checked_controller(&object).is_some() {
            scan.controlled += 1;
            return;
        }
        if workload.is_some()
            && let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut)
            && meta
                .get("namespace")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        {
            meta.insert("namespace".into(), self.default_namespace.into());
        }
        let reference = object_ref(&object);
        if reference.kind == "Namespace" {
            scan.namespaces.insert(reference.name.clone());
        } else {
            scan.namespaces.insert(reference.namespace.clone());
        }
        // Readiness reads the object's own metadata only: no need to parse
        // the pod spec a second time (the engine does).
        let readiness = match (workload, object.get("metadata")) {
            (Some(_), Some(meta)) => match ObjectMeta::deserialize(meta) {
                Ok(meta) => {
                    let info = self.namespaces.namespace(&reference.namespace);
                    Some(readiness::assess(
                        &meta,
                        &reference.namespace,
                        info.as_deref(),
                        self.ownership,
                    ))
                }
                // The engine names the parse error below.
                Err(_) => None,
            },
            _ => None,
        };
        let checked = offline::check_object(
            self.snapshot,
            object,
            self.default_namespace,
            self.options,
            false,
        );
        let evaluation = checked.evaluation;
        let mut violations = strongest(evaluation.verdict.violations);
        for v in &mut violations {
            if v.controls.is_empty() && v.policy == PolicySet::PodSecurity {
                v.controls = pod_security_controls(&v.rule);
            }
        }
        let exempt: Vec<(PolicySet, &'static str)> = evaluation
            .exemptions
            .iter()
            .map(|e| (e.policy, e.reason))
            .collect();
        let passed = if evaluation.failure.is_some() || workload.is_none() {
            Vec::new()
        } else {
            self.passed(&evaluation.evaluated, &violations, &exempt)
        };
        scan.objects.push(Audited {
            object: reference,
            workload,
            violations,
            passed,
            exempt,
            notes: evaluation.notes,
            error: evaluation.failure.map(|f| f.message),
            readiness,
        });
    }
}

impl Scanner<'_> {
    /// The policy sets that ran on an object and found nothing, with the
    /// rules that passed and their controls.
    fn passed(
        &self,
        evaluated: &[Evaluated],
        violations: &[Violation],
        exempt: &[(PolicySet, &'static str)],
    ) -> Vec<Passed> {
        self.snapshot
            .policy_sets()
            .into_iter()
            .filter(|set| match &self.options.only {
                None => true,
                Some(only) => only.contains(set),
            })
            .filter(|set| !violations.iter().any(|v| v.policy == *set))
            .filter(|set| !exempt.iter().any(|(p, _)| p == set))
            .filter_map(|set| {
                let ran: Vec<&Evaluated> = evaluated.iter().filter(|e| e.policy == set).collect();
                // With evidence recorded, a set that ran no rule on this
                // object (ownership on an exempt namespace, compliance
                // without profiles) did not judge it.
                if self.options.evidence && ran.is_empty() {
                    return None;
                }
                let mut controls: Vec<Control> = ran
                    .iter()
                    .flat_map(|e| e.controls.iter().cloned())
                    .collect();
                controls.sort();
                controls.dedup();
                Some(Passed {
                    policy: set,
                    rules: ran.iter().map(|e| e.rule.clone()).collect(),
                    controls,
                })
            })
            .collect()
    }
}

/// One violation per rule and field: Pod Security reports a finding once
/// per mode (enforce, warn, audit) whose level it breaks; the report keeps
/// the strongest action (deny, then warn, then audit), in first-seen order.
fn strongest(violations: Vec<Violation>) -> Vec<Violation> {
    let rank = |a: EnforcementAction| match a {
        EnforcementAction::Deny => 0,
        EnforcementAction::Warn => 1,
        EnforcementAction::Audit => 2,
    };
    let mut out: Vec<Violation> = Vec::with_capacity(violations.len());
    for v in violations {
        let same = out.iter_mut().find(|o| {
            o.policy == v.policy
                && o.rule == v.rule
                && o.path == v.path
                && o.container == v.container
        });
        match same {
            Some(o) if rank(v.action) < rank(o.action) => *o = v,
            Some(_) => {}
            None => out.push(v),
        }
    }
    out
}

/// The controls the catalogue maps a Pod Security check's level to.
fn pod_security_controls(check: &str) -> Vec<Control> {
    let Ok(catalogue) = Catalogue::builtin() else {
        return Vec::new();
    };
    tollgate_policies::pss::registry()
        .iter()
        .find(|c| c.id == check)
        .map(|c| catalogue.pod_security_controls(c.level))
        .unwrap_or_default()
}

fn object_ref(object: &Value) -> ObjectRef {
    let s = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_owned();
    let meta = object.get("metadata");
    let kind = s(object.get("kind"));
    ObjectRef {
        api_version: s(object.get("apiVersion")),
        namespace: if kind == "Namespace" {
            String::new()
        } else {
            s(meta.and_then(|m| m.get("namespace")))
        },
        kind,
        name: s(meta.and_then(|m| m.get("name"))),
        uid: meta
            .and_then(|m| m.get("uid"))
            .and_then(Value::as_str)
            .map(str::to_owned),
    }
}
