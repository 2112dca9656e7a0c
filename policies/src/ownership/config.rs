//! The `ownership:` section of the policy configuration: which
//! `deployscope.dev/*` annotations are required, cluster-wide, per tier and
//! per namespace.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Key, Tier};
use crate::{EnforcementAction, WorkloadKind};

/// The `ownership:` section. Every field has a default; unknown keys are
/// refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct OwnershipConfig {
    /// Check ownership annotations at all. Default: true.
    pub enabled: bool,
    /// What a violation does: `deny` (default), `warn` or `audit`.
    pub action: EnforcementAction,
    /// Keys every workload must carry. Default: `owner`, `tier`.
    pub required: Vec<Key>,
    /// Further keys required per tier. Default: `critical` requires
    /// `oncall`, `gitops-repo`, `gitops-path`, `runbook`; the other tiers
    /// nothing more.
    pub tiers: BTreeMap<Tier, Vec<Key>>,
    /// Per-namespace settings, keyed by namespace name.
    pub namespaces: BTreeMap<String, NamespaceOwnership>,
    /// Namespaces never checked nor mutated. Default: `kube-system`,
    /// `kube-public`, `kube-node-lease`. Setting the list replaces the
    /// default.
    pub exempt_namespaces: Vec<String>,
    /// The kinds checked. Default: Pod, Deployment, ReplicaSet,
    /// StatefulSet, DaemonSet, Job, CronJob (ReplicationController may be
    /// added).
    pub kinds: Vec<String>,
    /// Fill missing annotations from the namespace's own
    /// `deployscope.dev/*` annotations (mutating webhook). Default: true.
    pub inherit: bool,
    /// Skip Pods controlled by a ReplicaSet, StatefulSet, DaemonSet, Job
    /// or ReplicationController, ReplicaSets controlled by a Deployment and
    /// Jobs controlled by a CronJob: the controller carries the annotations
    /// and was checked. Default: true.
    pub skip_controlled_pods: bool,
    /// Exempt workloads annotated `deployscope.dev/ignore: "true"` (hidden
    /// from agents by the DeployScope convention). Default: false, as an
    /// annotation anyone can set should not switch a control off.
    pub honour_ignore: bool,
}

/// One namespace under `ownership.namespaces`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct NamespaceOwnership {
    /// Check this namespace at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// The action here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<EnforcementAction>,
    /// Keys required here, replacing the cluster-wide `required`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required: Option<Vec<Key>>,
    /// Per-tier requirements here; a tier listed replaces the cluster-wide
    /// entry for that tier.
    pub tiers: BTreeMap<Tier, Vec<Key>>,
}

/// Why an `ownership:` section was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ownership.{field}: {reason}")]
pub struct ConfigError {
    /// The field, as a dotted path inside the section.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

/// The kinds checked by default.
const DEFAULT_KINDS: [WorkloadKind; 7] = [
    WorkloadKind::Pod,
    WorkloadKind::Deployment,
    WorkloadKind::ReplicaSet,
    WorkloadKind::StatefulSet,
    WorkloadKind::DaemonSet,
    WorkloadKind::Job,
    WorkloadKind::CronJob,
];

impl Default for OwnershipConfig {
    fn default() -> Self {
        OwnershipConfig {
            enabled: true,
            action: EnforcementAction::Deny,
            required: vec![Key::Owner, Key::Tier],
            tiers: BTreeMap::from([
                (
                    Tier::Critical,
                    vec![Key::Oncall, Key::GitopsRepo, Key::GitopsPath, Key::Runbook],
                ),
                (Tier::Standard, Vec::new()),
                (Tier::BestEffort, Vec::new()),
            ]),
            namespaces: BTreeMap::new(),
            exempt_namespaces: ["kube-system", "kube-public", "kube-node-lease"]
                .map(String::from)
                .to_vec(),
            kinds: DEFAULT_KINDS.map(|k| k.as_str().to_owned()).to_vec(),
            inherit: true,
            skip_controlled_pods: true,
            honour_ignore: false,
        }
    }
}

/// What applies in one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolved<'a> {
    pub(crate) enabled: bool,
    pub(crate) action: EnforcementAction,
    pub(crate) required: &'a [Key],
    /// Where `required` comes from, for messages.
    pub(crate) required_here: bool,
    entry: Option<&'a NamespaceOwnership>,
    config: &'a OwnershipConfig,
}

impl OwnershipConfig {
    /// Checks what the types alone cannot: kinds are workload kinds, names
    /// are non-empty.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for kind in &self.kinds {
            if WorkloadKind::from_kind(kind).is_none() {
                return Err(ConfigError {
                    field: "kinds".into(),
                    reason: format!(
                        "{kind:?} is not a workload kind; use {}",
                        WorkloadKind::ALL.map(WorkloadKind::as_str).join(", ")
                    ),
                });
            }
        }
        if self.exempt_namespaces.iter().any(String::is_empty) {
            return Err(ConfigError {
                field: "exemptNamespaces".into(),
                reason: "contains an empty name".into(),
            });
        }
        if self.namespaces.keys().any(String::is_empty) {
            return Err(ConfigError {
                field: "namespaces".into(),
                reason: "contains an empty namespace name".into(),
            });
        }
        Ok(())
    }

    /// True when objects of this kind are checked.
    pub fn applies_to(&self, kind: WorkloadKind) -> bool {
        self.kinds.iter().any(|k| k == kind.as_str())
    }

    /// The settings in force in a namespace.
    pub(crate) fn resolve(&self, namespace: &str) -> Resolved<'_> {
        let entry = self.namespaces.get(namespace);
        let exempt = self.exempt_namespaces.iter().any(|n| n == namespace);
        let enabled = self.enabled && !exempt && entry.and_then(|e| e.enabled).unwrap_or(true);
        let (required, required_here) = match entry.and_then(|e| e.required.as_deref()) {
            Some(r) => (r, true),
            None => (self.required.as_slice(), false),
        };
        Resolved {
            enabled,
            action: entry.and_then(|e| e.action).unwrap_or(self.action),
            required,
            required_here,
            entry,
            config: self,
        }
    }
}

impl Resolved<'_> {
    /// The extra keys a tier requires here.
    pub(crate) fn tier_keys(&self, tier: Tier) -> &[Key] {
        self.entry
            .and_then(|e| e.tiers.get(&tier))
            .or_else(|| self.config.tiers.get(&tier))
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}
