//! The `policy:` section of Tollgate's config file: which policy sets run,
//! at which levels, for which namespaces and kinds. Every field has a
//! default, so an empty section is the built-in policy (Pod Security
//! `restricted:latest` enforced everywhere except `kube-system`).
//!
//! Parsing is strict (`deny_unknown_fields`): a misspelt key is an error
//! that names it, never a silently ignored setting.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::defaults::DefaultsConfig;
use crate::namespace::{NamespaceInfo, StaticNamespaces};
use crate::{Level, Version, WorkloadKind};

mod serde_helpers;

pub use serde_helpers::KindList;

/// The `policy:` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Pod Security Standards, enforced like Pod Security Admission.
    pub pod_security: PodSecurityConfig,
    /// Secure defaults filled in by the mutating webhook, where Pod
    /// Security applies and the namespace's enforce level is not
    /// `privileged`.
    pub defaults: DefaultsConfig,
    /// Namespaces known without a cluster: their labels select Pod Security
    /// levels (and, later, compliance profiles and injection). Keyed by
    /// namespace name. A namespace not listed here has no labels.
    pub namespaces: BTreeMap<String, NamespaceEntry>,
    /// Ownership annotations (`deployscope.dev/*`): required keys, value
    /// checks and inheritance from the namespace.
    pub ownership: crate::ownership::OwnershipConfig,
    /// The built-in compliance packs (SOC 2, HIPAA, PCI-DSS, GDPR,
    /// FedRAMP), selected per namespace.
    pub compliance: crate::compliance::ComplianceConfig,
    /// Gatekeeper ConstraintTemplates and constraints to enforce.
    pub constraints: ConstraintsConfig,
}

/// The `policy.constraints` section: where Gatekeeper templates and
/// constraints are read from. The policy engine does no I/O; the webhook
/// and `tollgate check` read these paths and reload them when they change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ConstraintsConfig {
    /// Files or directories (searched recursively for `*.yaml`, `*.yml`,
    /// `*.json`) holding ConstraintTemplates and constraints. Relative
    /// paths are resolved against the config file's directory.
    pub paths: Vec<std::path::PathBuf>,
}

/// One namespace under `policy.namespaces`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct NamespaceEntry {
    /// The namespace's labels, e.g. `pss.tollgate.dev/enforce: baseline`.
    pub labels: BTreeMap<String, String>,
    /// The namespace's annotations (e.g. inherited `deployscope.dev/*`).
    pub annotations: BTreeMap<String, String>,
}

/// The `policy.podSecurity` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct PodSecurityConfig {
    /// Evaluate Pod Security at all (default true). When false, neither
    /// checks nor secure defaults run.
    pub enabled: bool,
    /// Refuse objects that violate this level (cluster default; a namespace
    /// overrides it with `pss.tollgate.dev/enforce` and `…/enforce-version`).
    pub enforce: ModeConfig,
    /// Allow, and return admission warnings (kubectl prints them).
    pub warn: ModeConfig,
    /// Allow, and record the violations in the audit trail only.
    pub audit: ModeConfig,
    /// Requests never evaluated, like Pod Security Admission's exemptions.
    pub exemptions: Exemptions,
}

/// The cluster default for one mode (enforce, warn or audit).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ModeConfig {
    /// `privileged`, `baseline` or `restricted`.
    #[serde(with = "serde_helpers::level")]
    pub level: Level,
    /// `latest` or `v1.N`.
    #[serde(with = "serde_helpers::version")]
    pub version: Version,
    /// The kinds this mode judges: `Pod` and the pod templates of
    /// `Deployment`, `ReplicaSet`, `StatefulSet`, `DaemonSet`, `Job`,
    /// `CronJob`, `ReplicationController`. Default: all of them.
    pub kinds: KindList,
}

/// Pod Security exemptions: requests matching any of these are admitted
/// without evaluation (and without secure defaults).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Exemptions {
    /// Namespaces never evaluated. Default: `[kube-system]`. Setting this
    /// list replaces the default, so include `kube-system` if you want it.
    pub namespaces: Vec<String>,
    /// Requesting users never evaluated (e.g. a controller's ServiceAccount,
    /// `system:serviceaccount:NS:NAME`). Pods created by controllers are
    /// requested by the controller's user, so exempting a user who creates a
    /// Deployment does not exempt its pods.
    pub usernames: Vec<String>,
    /// Pods whose `spec.runtimeClassName` is one of these (e.g. a
    /// VM-isolated runtime) are never evaluated.
    pub runtime_classes: Vec<String>,
}

impl Default for PodSecurityConfig {
    fn default() -> Self {
        PodSecurityConfig {
            enabled: true,
            enforce: ModeConfig::default(),
            warn: ModeConfig::default(),
            audit: ModeConfig::default(),
            exemptions: Exemptions::default(),
        }
    }
}

impl Default for ModeConfig {
    fn default() -> Self {
        ModeConfig {
            level: Level::Restricted,
            version: Version::Latest,
            kinds: KindList::all(),
        }
    }
}

impl Default for Exemptions {
    fn default() -> Self {
        Exemptions {
            namespaces: vec!["kube-system".to_owned()],
            usernames: Vec::new(),
            runtime_classes: Vec::new(),
        }
    }
}

impl ModeConfig {
    /// True when this mode judges objects of `kind`.
    pub fn applies_to(&self, kind: WorkloadKind) -> bool {
        self.kinds.contains(kind)
    }
}

impl PolicyConfig {
    /// Parses the section from YAML (or JSON), naming the offending field
    /// and position on error.
    pub fn from_yaml(text: &str) -> Result<PolicyConfig, ConfigError> {
        let config: PolicyConfig =
            yaml_serde::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what the types alone cannot: names that must be non-empty,
    /// and lists without duplicates.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let ps = &self.pod_security;
        for (mode, cfg) in [
            ("enforce", &ps.enforce),
            ("warn", &ps.warn),
            ("audit", &ps.audit),
        ] {
            if cfg.kinds.is_empty() && cfg.level != Level::Privileged {
                return Err(ConfigError::Invalid {
                    field: format!("podSecurity.{mode}.kinds"),
                    reason: "is empty; list the kinds to judge, or set the level to privileged"
                        .into(),
                });
            }
        }
        for (field, list) in [
            (
                "podSecurity.exemptions.namespaces",
                &ps.exemptions.namespaces,
            ),
            ("podSecurity.exemptions.usernames", &ps.exemptions.usernames),
            (
                "podSecurity.exemptions.runtimeClasses",
                &ps.exemptions.runtime_classes,
            ),
        ] {
            if list.iter().any(String::is_empty) {
                return Err(ConfigError::Invalid {
                    field: field.into(),
                    reason: "contains an empty name".into(),
                });
            }
        }
        self.ownership
            .validate()
            .map_err(|e| ConfigError::Invalid {
                field: format!("ownership.{}", e.field),
                reason: e.reason,
            })?;
        if let Ok(catalogue) = crate::compliance::Catalogue::builtin() {
            self.compliance
                .validate(catalogue)
                .map_err(|e| ConfigError::Invalid {
                    field: format!("compliance.{}", e.field),
                    reason: e.reason,
                })?;
        }
        if self
            .constraints
            .paths
            .iter()
            .any(|p| p.as_os_str().is_empty())
        {
            return Err(ConfigError::Invalid {
                field: "constraints.paths".into(),
                reason: "contains an empty path".into(),
            });
        }
        if self.namespaces.keys().any(String::is_empty) {
            return Err(ConfigError::Invalid {
                field: "namespaces".into(),
                reason: "contains an empty namespace name".into(),
            });
        }
        Ok(())
    }

    /// The namespaces of `policy.namespaces`, as a namespace source.
    pub fn static_namespaces(&self) -> StaticNamespaces {
        StaticNamespaces::new(self.namespaces.iter().map(|(name, entry)| NamespaceInfo {
            name: name.clone(),
            labels: entry.labels.clone(),
            annotations: entry.annotations.clone(),
        }))
    }
}

/// Why a policy configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The text is not valid YAML for this schema: unknown field, wrong
    /// type, bad level or version. The message names the field and the
    /// line and column.
    #[error("{0}")]
    Parse(String),
    /// A value is well-typed but unusable.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field, as a dotted path inside the `policy:` section.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

#[cfg(test)]
mod tests;
