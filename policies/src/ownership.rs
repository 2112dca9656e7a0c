//! Ownership annotations: every workload says who owns it, how critical it
//! is and, for critical ones, who is on call, where its GitOps source lives
//! and where its runbook is, following the DeployScope `deployscope.dev/*`
//! convention (`owner`, `oncall`, `tier`, `gitops-repo`, `gitops-path`,
//! `runbook`, `dashboard`, `depends-on`, `ignore`).
//!
//! - **Checked**: the object's own `metadata.annotations` (a Deployment's,
//!   not its pod template's, as DeployScope reads them). Required by
//!   default: `owner` and `tier`; tier `critical` also requires `oncall`,
//!   `gitops-repo`, `gitops-path` and `runbook` (see [`OwnershipConfig`]).
//!   Every present key is validated, required or not. A denial lists every
//!   missing or invalid key at once, each with an example of the fix.
//! - **Kinds**: Pod, Deployment, ReplicaSet, StatefulSet, DaemonSet, Job and
//!   CronJob. Pods, ReplicaSets and Jobs created by a checked controller
//!   (an `ownerReference` with `controller: true` to a ReplicaSet,
//!   StatefulSet, DaemonSet, Job, ReplicationController, Deployment or
//!   CronJob, as the relation allows) are skipped: the controller was
//!   checked, and a controller admitted before a requirement existed must
//!   still be able to recreate its pods.
//! - **Inherited** ([`inherit`], mutating webhook): a key missing on the
//!   object is filled from the namespace's own `deployscope.dev/*`
//!   annotation, so a team annotates its namespace once. A value the
//!   workload sets is never overridden. For controllers, the pod template
//!   also receives every ownership annotation of the object (own or
//!   inherited) that it lacks, so the pods carry them and the sidecar's
//!   audit events name the owner. Tollgate records what it filled in, and
//!   with which value, in the annotation `ownership.tollgate.dev/inherited`;
//!   such a value is refreshed when its source changes (a renamed team),
//!   while a value that differs from the recorded one was set by someone
//!   and is left alone. `ignore` is never inherited (opting out is per
//!   workload), and an invalid namespace value is not copied.

mod config;
mod inherit;
mod requirements;
mod validate;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::compliance::Catalogue;
use crate::namespace::NamespaceInfo;
use crate::{PolicySet, Violation, Workload, WorkloadKind};

pub use config::{ConfigError, NamespaceOwnership, OwnershipConfig};
pub use inherit::{INHERITED_ANNOTATION, inherit};
pub use requirements::value_problem;

/// The annotation prefix of the convention.
pub const PREFIX: &str = "deployscope.dev/";

/// An ownership annotation key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Key {
    /// `deployscope.dev/owner`: the owning team.
    Owner,
    /// `deployscope.dev/tier`: `critical`, `standard` or `best-effort`.
    Tier,
    /// `deployscope.dev/oncall`: the on-call rotation or channel.
    Oncall,
    /// `deployscope.dev/gitops-repo`: the repository it is deployed from.
    GitopsRepo,
    /// `deployscope.dev/gitops-path`: its path in that repository.
    GitopsPath,
    /// `deployscope.dev/runbook`: an http(s) URL.
    Runbook,
    /// `deployscope.dev/dashboard`: an http(s) URL.
    Dashboard,
    /// `deployscope.dev/depends-on`: a comma list of DNS-1123 names.
    DependsOn,
    /// `deployscope.dev/ignore`: `"true"` or `"false"`.
    Ignore,
}

/// A criticality tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tier {
    /// Page on-call.
    Critical,
    /// Work order.
    Standard,
    /// Log.
    BestEffort,
}

impl Key {
    /// Every key, in the order violations are listed.
    pub const ALL: [Key; 9] = [
        Key::Owner,
        Key::Tier,
        Key::Oncall,
        Key::GitopsRepo,
        Key::GitopsPath,
        Key::Runbook,
        Key::Dashboard,
        Key::DependsOn,
        Key::Ignore,
    ];

    /// The key's short name (`gitops-repo`).
    pub fn as_str(self) -> &'static str {
        match self {
            Key::Owner => "owner",
            Key::Tier => "tier",
            Key::Oncall => "oncall",
            Key::GitopsRepo => "gitops-repo",
            Key::GitopsPath => "gitops-path",
            Key::Runbook => "runbook",
            Key::Dashboard => "dashboard",
            Key::DependsOn => "depends-on",
            Key::Ignore => "ignore",
        }
    }

    /// The annotation (`deployscope.dev/gitops-repo`).
    pub fn annotation(self) -> &'static str {
        match self {
            Key::Owner => "deployscope.dev/owner",
            Key::Tier => "deployscope.dev/tier",
            Key::Oncall => "deployscope.dev/oncall",
            Key::GitopsRepo => "deployscope.dev/gitops-repo",
            Key::GitopsPath => "deployscope.dev/gitops-path",
            Key::Runbook => "deployscope.dev/runbook",
            Key::Dashboard => "deployscope.dev/dashboard",
            Key::DependsOn => "deployscope.dev/depends-on",
            Key::Ignore => "deployscope.dev/ignore",
        }
    }

    /// The rule id of violations about this key (`ownership-gitops-repo`).
    pub fn rule(self) -> &'static str {
        match self {
            Key::Owner => "ownership-owner",
            Key::Tier => "ownership-tier",
            Key::Oncall => "ownership-oncall",
            Key::GitopsRepo => "ownership-gitops-repo",
            Key::GitopsPath => "ownership-gitops-path",
            Key::Runbook => "ownership-runbook",
            Key::Dashboard => "ownership-dashboard",
            Key::DependsOn => "ownership-depends-on",
            Key::Ignore => "ownership-ignore",
        }
    }

    /// A placeholder for the value, for messages and copy-paste commands:
    /// never a real team's value, and (for the free-form keys) one that
    /// fails validation until it is replaced.
    pub fn placeholder(self) -> &'static str {
        match self {
            Key::Owner => "<owning-team>",
            Key::Tier => "<critical|standard|best-effort>",
            Key::Oncall => "<on-call-rotation>",
            Key::GitopsRepo => "<git-host>/<org>/<repo>",
            Key::GitopsPath => "<path-in-repo>/",
            Key::Runbook => "https://<runbook-url>",
            Key::Dashboard => "https://<dashboard-url>",
            Key::DependsOn => "<service>,<service>",
            Key::Ignore => "false",
        }
    }

    /// A valid example value (the format, for tests and documentation).
    pub fn example(self) -> &'static str {
        match self {
            Key::Owner => "team-payments",
            Key::Tier => "standard",
            Key::Oncall => "#payments-oncall",
            Key::GitopsRepo => "github.com/acme/infra",
            Key::GitopsPath => "clusters/prod/payments/",
            Key::Runbook => "https://wiki.acme.example/runbooks/payments",
            Key::Dashboard => "https://grafana.acme.example/d/payments",
            Key::DependsOn => "postgres-platform,redis-shared",
            Key::Ignore => "false",
        }
    }
}

impl Tier {
    /// The tier's annotation value.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Critical => "critical",
            Tier::Standard => "standard",
            Tier::BestEffort => "best-effort",
        }
    }
}

impl std::str::FromStr for Tier {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "critical" => Ok(Tier::Critical),
            "standard" => Ok(Tier::Standard),
            "best-effort" => Ok(Tier::BestEffort),
            _ => Err(()),
        }
    }
}

/// What the ownership check found about one object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evaluation {
    /// Every missing or invalid key, in key order.
    pub violations: Vec<Violation>,
    /// The rules that judged the object (one per key required or present).
    pub evaluated: Vec<String>,
    /// Why the object was not checked, when so.
    pub skipped: Option<String>,
}

/// Every missing or invalid ownership annotation of a workload, as
/// violations (rule `ownership-<key>`) carrying the controls the catalogue
/// maps the key to. See [`evaluate`] for the rules that ran too.
pub fn check(
    workload: &Workload,
    namespace: Option<&NamespaceInfo>,
    config: &OwnershipConfig,
) -> Vec<Violation> {
    evaluate(workload, namespace, config).violations
}

/// Checks a workload's ownership annotations in its namespace (the object's
/// `metadata.namespace`, else `namespace.name`).
pub fn evaluate(
    workload: &Workload,
    namespace: Option<&NamespaceInfo>,
    config: &OwnershipConfig,
) -> Evaluation {
    let mut out = Evaluation::default();
    let ns_name = namespace_of(workload, namespace);
    let settings = config.resolve(ns_name);
    if !settings.enabled || !config.applies_to(workload.kind) {
        out.skipped = Some(if settings.enabled {
            format!("{} is not an ownership-checked kind", workload.kind)
        } else {
            format!("ownership is not checked in namespace {ns_name:?}")
        });
        return out;
    }
    if config.skip_controlled_pods
        && let Some(controller) = controller_of(workload.kind, &workload.metadata)
    {
        out.skipped = Some(format!(
            "controlled by {controller}, which is checked instead"
        ));
        return out;
    }
    let empty = BTreeMap::new();
    let own = workload.metadata.annotations.as_ref().unwrap_or(&empty);
    if config.honour_ignore && own.get(Key::Ignore.annotation()).map(String::as_str) == Some("true")
    {
        out.skipped = Some("annotated deployscope.dev/ignore: \"true\"".into());
        return out;
    }
    let template = workload.pod_metadata.annotations.as_ref().unwrap_or(&empty);
    let tier = own
        .get(Key::Tier.annotation())
        .and_then(|t| t.parse::<Tier>().ok());
    let tier_keys = tier.map(|t| settings.tier_keys(t)).unwrap_or_default();
    let catalogue = Catalogue::builtin().ok();
    let subject = Subject {
        kind: workload.kind,
        namespace: ns_name,
        inheritable: config.inherit,
    };
    for key in Key::ALL {
        let by_config = settings.required.contains(&key);
        let by_tier = tier_keys.contains(&key);
        let value = own.get(key.annotation());
        if !(by_config || by_tier || value.is_some()) {
            continue;
        }
        out.evaluated.push(key.rule().to_owned());
        let message = match value {
            None => {
                let why = if by_config {
                    if settings.required_here {
                        format!("required in namespace {ns_name:?}")
                    } else {
                        "required for every workload".to_owned()
                    }
                } else {
                    format!(
                        "required for tier {}",
                        tier.map(Tier::as_str).unwrap_or_default()
                    )
                };
                subject.missing(key, &why, template.get(key.annotation()).is_some())
            }
            Some(v) => match validate::problem(key, v) {
                None => continue,
                Some(problem) => subject.invalid(key, &problem),
            },
        };
        out.violations.push(Violation {
            policy: PolicySet::Ownership,
            rule: key.rule().to_owned(),
            message,
            path: Some(format!("metadata.annotations[\"{}\"]", key.annotation())),
            container: None,
            controls: catalogue
                .map(|c| c.controls(key.rule(), None))
                .unwrap_or_default(),
            action: settings.action,
        });
    }
    out
}

/// The object a message is about.
struct Subject<'a> {
    kind: WorkloadKind,
    namespace: &'a str,
    inheritable: bool,
}

impl Subject<'_> {
    fn missing(&self, key: Key, why: &str, on_template: bool) -> String {
        let mut msg = format!(
            "missing annotation {} ({why}); add metadata.annotations: {{\"{}\": \"{}\"}}",
            key.annotation(),
            key.annotation(),
            key.placeholder()
        );
        if self.inheritable && key != Key::Ignore && !self.namespace.is_empty() {
            msg.push_str(&format!(
                ", or annotate namespace {:?} once to have it inherited",
                self.namespace
            ));
        }
        if on_template && self.kind != WorkloadKind::Pod {
            msg.push_str(&format!(
                " (the pod template has it, but the {}'s own metadata is what counts)",
                self.kind
            ));
        }
        msg
    }

    fn invalid(&self, key: Key, problem: &str) -> String {
        format!(
            "annotation {} {problem}; set {}: \"{}\"",
            key.annotation(),
            key.annotation(),
            key.placeholder()
        )
    }
}

fn namespace_of<'a>(workload: &'a Workload, namespace: Option<&'a NamespaceInfo>) -> &'a str {
    workload
        .namespace()
        .filter(|n| !n.is_empty())
        .or(namespace.map(|n| n.name.as_str()))
        .unwrap_or("")
}

/// The controller that creates objects of `kind` and is judged itself, as
/// (apiVersion group prefix, kind) pairs.
fn checked_controllers(kind: &str) -> &'static [(&'static str, &'static str)] {
    match kind {
        "Pod" => &[
            ("apps/", "ReplicaSet"),
            ("apps/", "StatefulSet"),
            ("apps/", "DaemonSet"),
            ("batch/", "Job"),
            ("v1", "ReplicationController"),
        ],
        "ReplicaSet" => &[("apps/", "Deployment")],
        "Job" => &[("batch/", "CronJob")],
        _ => &[],
    }
}

fn is_checked_controller(kind: &str, reference: &OwnerReference) -> bool {
    reference.controller == Some(true)
        && checked_controllers(kind).iter().any(|(group, k)| {
            reference.kind == *k
                && (reference.api_version == *group
                    || (group.ends_with('/') && reference.api_version.starts_with(group)))
        })
}

fn controller_of(kind: WorkloadKind, meta: &ObjectMeta) -> Option<String> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| is_checked_controller(kind.as_str(), r))
        .map(|r| format!("{} {:?}", r.kind, r.name))
}

/// The checked controller of an object (`ReplicaSet "web-7d9f"`), when it
/// has one: Pods controlled by a ReplicaSet, StatefulSet, DaemonSet, Job or
/// ReplicationController, ReplicaSets controlled by a Deployment, Jobs
/// controlled by a CronJob. Such objects repeat their controller's pod
/// template, which was judged when the controller was admitted.
pub fn checked_controller(object: &Value) -> Option<String> {
    let kind = object.get("kind").and_then(Value::as_str)?;
    let refs = object.pointer("/metadata/ownerReferences")?.as_array()?;
    refs.iter()
        .filter_map(|r| OwnerReference::deserialize(r).ok())
        .find(|r| is_checked_controller(kind, r))
        .map(|r| format!("{} {:?}", r.kind, r.name))
}

/// The controls an ownership rule evidences (all frameworks): for callers
/// building evidence without running the check.
pub fn controls(rule: &str) -> Vec<crate::Control> {
    Catalogue::builtin()
        .map(|c| c.controls(rule, None))
        .unwrap_or_default()
}
