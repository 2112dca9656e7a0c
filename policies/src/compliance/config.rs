//! The `compliance:` section of the policy configuration, and its
//! resolution for one namespace into a [`Scope`]: the profiles in force, the
//! rules they enable with their enforcement actions, and the parameters.
//!
//! Profiles for a namespace are the configured ones (its entry under
//! `namespaces`, else the cluster default `profiles`) plus those its labels
//! select: one label per framework, `compliance.tollgate.dev/<profile>:
//! enforce|warn|audit` (a mode per framework, like Pod Security Admission's
//! labels), or the older single-profile label
//! `compliance.tollgate.dev/profiles: <profile>`, which takes the configured
//! action. A label can add profiles or make one stricter, never remove or
//! weaken what the configuration requires: a rule selected several ways takes
//! the strictest action.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Profile;
use super::catalogue::Catalogue;
use crate::namespace::NamespaceInfo;
use crate::{EnforcementAction, PolicySet};

/// The older namespace label that selects one compliance profile with the
/// configured action (`compliance.tollgate.dev/profiles: pci-dss`). A label
/// value cannot hold a comma, so several profiles need [`PROFILE_LABEL_PREFIX`].
pub const PROFILES_LABEL: &str = "compliance.tollgate.dev/profiles";

/// The prefix of the per-framework labels:
/// `compliance.tollgate.dev/<profile>: enforce|warn|audit`.
pub const PROFILE_LABEL_PREFIX: &str = "compliance.tollgate.dev/";

/// The values a per-framework label takes, as in the README.
pub const LABEL_MODES: [&str; 3] = ["enforce", "warn", "audit"];

/// The `compliance:` section. Every field has a default; unknown keys are
/// refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ComplianceConfig {
    /// Evaluate compliance packs at all. Default: true (they still run only
    /// where a profile is selected).
    pub enabled: bool,
    /// Profiles in force in every namespace without its own entry under
    /// `namespaces`. Default: none.
    pub profiles: Vec<Profile>,
    /// What a violation does: `deny` (default), `warn` or `audit`.
    pub action: EnforcementAction,
    /// Per-rule overrides of the action: `deny`, `warn`, `audit` or `off`.
    pub rules: BTreeMap<String, RuleAction>,
    /// Rule parameters (allowed registries, storage classes, regions, ...).
    pub parameters: Parameters,
    /// Per-namespace settings, keyed by namespace name.
    pub namespaces: BTreeMap<String, NamespaceCompliance>,
    /// Namespaces never evaluated. Default: `kube-system`, `kube-public`,
    /// `kube-node-lease`. Setting the list replaces the default.
    pub exempt_namespaces: Vec<String>,
    /// Skip Pods controlled by a ReplicaSet, StatefulSet, DaemonSet or Job,
    /// ReplicaSets controlled by a Deployment and Jobs controlled by a
    /// CronJob: their controller was judged already, and judging the pods
    /// again would only repeat its findings (or, for a controller admitted
    /// before a rule existed, stop its pods from being recreated). Default:
    /// true.
    pub skip_controlled_pods: bool,
    /// Longest time one evaluation may take, in milliseconds (an error,
    /// treated as a denial, past it). Default: 100.
    pub evaluation_timeout_millis: u64,
}

/// A per-rule override.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleAction {
    /// Refuse the object.
    Deny,
    /// Admit with a warning.
    Warn,
    /// Admit, and record the violation only.
    Audit,
    /// Do not evaluate the rule.
    Off,
}

/// Rule parameters. In a namespace entry, each field set replaces the
/// cluster-wide value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Parameters {
    /// Registries images may come from: a host, optionally with a path
    /// prefix (`ghcr.io/acme`, `registry.example.com`,
    /// `docker.io/library`). Docker Hub references are normalised
    /// (`nginx` is `docker.io/library/nginx`). Default: none, so every image
    /// fails `image-registry` until the list is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_registries: Option<Vec<String>>,
    /// Accept only images pinned by digest (else a version tag other than
    /// `latest` passes `image-pinned`). Default: false.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require_digest: Option<bool>,
    /// Require a CPU limit as well as a memory limit. Default: true.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require_cpu_limit: Option<bool>,
    /// Storage classes whose volumes are encrypted at rest. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_storage_classes: Option<Vec<String>>,
    /// Regions (`topology.kubernetes.io/region` values) personal data may
    /// be processed in. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_regions: Option<Vec<String>>,
    /// Data classifications that require the audit sidecar. Default:
    /// `phi`, `pci`, `personal`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audited_classifications: Option<Vec<String>>,
    /// Data classifications that must stay in `allowedRegions`. Default:
    /// `personal`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub residency_classifications: Option<Vec<String>>,
    /// The name of the injected audit sidecar container. Default:
    /// `tollgate-sidecar`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sidecar_container_name: Option<String>,
}

/// One namespace under `compliance.namespaces`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct NamespaceCompliance {
    /// Profiles in force here, replacing the cluster default (the namespace
    /// label can still add more).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profiles: Option<Vec<Profile>>,
    /// The default action here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<EnforcementAction>,
    /// Per-rule overrides, applied over the cluster-wide ones.
    pub rules: BTreeMap<String, RuleAction>,
    /// Parameters set here replace the cluster-wide ones.
    pub parameters: Parameters,
}

/// Why a `compliance:` section was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("compliance.{field}: {reason}")]
pub struct ConfigError {
    /// The field, as a dotted path inside the section.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Default for ComplianceConfig {
    fn default() -> Self {
        ComplianceConfig {
            enabled: true,
            profiles: Vec::new(),
            action: EnforcementAction::Deny,
            rules: BTreeMap::new(),
            parameters: Parameters::default(),
            namespaces: BTreeMap::new(),
            exempt_namespaces: ["kube-system", "kube-public", "kube-node-lease"]
                .map(String::from)
                .to_vec(),
            skip_controlled_pods: true,
            evaluation_timeout_millis: 100,
        }
    }
}

/// Parameters with every default filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedParameters {
    /// See [`Parameters::allowed_registries`] (trailing `/` removed, host
    /// lower-cased).
    pub allowed_registries: Vec<String>,
    /// See [`Parameters::require_digest`].
    pub require_digest: bool,
    /// See [`Parameters::require_cpu_limit`].
    pub require_cpu_limit: bool,
    /// See [`Parameters::allowed_storage_classes`].
    pub allowed_storage_classes: Vec<String>,
    /// See [`Parameters::allowed_regions`].
    pub allowed_regions: Vec<String>,
    /// See [`Parameters::audited_classifications`] (lower-cased).
    pub audited_classifications: Vec<String>,
    /// See [`Parameters::residency_classifications`] (lower-cased).
    pub residency_classifications: Vec<String>,
    /// See [`Parameters::sidecar_container_name`].
    pub sidecar_container_name: String,
}

/// What applies to objects of one namespace: resolved once per namespace
/// (and cacheable by the caller until the config or the namespace changes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The namespace, `""` for cluster-scoped objects.
    pub namespace: String,
    /// Nothing is evaluated (compliance off, or an exempt namespace).
    pub exempt: bool,
    /// The profiles in force, in canonical order.
    pub profiles: Vec<Profile>,
    /// The frameworks they select (`SOC2`, ...), in catalogue order.
    pub frameworks: Vec<String>,
    /// Every enabled rule with its action, in catalogue order.
    pub rules: Vec<(String, EnforcementAction)>,
    /// The parameters.
    pub parameters: ResolvedParameters,
    /// Problems with the namespace's label (unknown profile names).
    pub warnings: Vec<String>,
}

impl ComplianceConfig {
    /// Checks what the types alone cannot: rule ids exist in the catalogue
    /// and are compliance rules, names are non-empty.
    pub fn validate(&self, catalogue: &Catalogue) -> Result<(), ConfigError> {
        let check_rules = |field: &str, rules: &BTreeMap<String, RuleAction>| {
            for id in rules.keys() {
                match catalogue.rule(id) {
                    Some(r) if r.policy == PolicySet::Compliance => {}
                    _ => {
                        let known: Vec<&str> = catalogue
                            .rules()
                            .iter()
                            .filter(|r| r.policy == PolicySet::Compliance)
                            .map(|r| r.id.as_str())
                            .collect();
                        return Err(ConfigError {
                            field: format!("{field}.{id}"),
                            reason: format!(
                                "unknown compliance rule; known rules: {}",
                                known.join(", ")
                            ),
                        });
                    }
                }
            }
            Ok(())
        };
        check_rules("rules", &self.rules)?;
        self.parameters.validate("parameters")?;
        for (name, ns) in &self.namespaces {
            if name.is_empty() {
                return Err(ConfigError {
                    field: "namespaces".into(),
                    reason: "contains an empty namespace name".into(),
                });
            }
            check_rules(&format!("namespaces.{name}.rules"), &ns.rules)?;
            ns.parameters
                .validate(&format!("namespaces.{name}.parameters"))?;
        }
        if self.exempt_namespaces.iter().any(String::is_empty) {
            return Err(ConfigError {
                field: "exemptNamespaces".into(),
                reason: "contains an empty name".into(),
            });
        }
        if self.evaluation_timeout_millis == 0 {
            return Err(ConfigError {
                field: "evaluationTimeoutMillis".into(),
                reason: "must be at least 1".into(),
            });
        }
        Ok(())
    }

    /// Resolves what applies in a namespace (`None`: a cluster-scoped
    /// object, or a namespace the source does not know, which gets the
    /// cluster defaults).
    pub fn scope(
        &self,
        catalogue: &Catalogue,
        namespace_name: &str,
        namespace: Option<&NamespaceInfo>,
    ) -> Scope {
        let entry = self.namespaces.get(namespace_name);
        let exempt = !self.enabled || self.exempt_namespaces.iter().any(|n| n == namespace_name);
        let mut profiles: Vec<Profile> = entry
            .and_then(|e| e.profiles.clone())
            .unwrap_or_else(|| self.profiles.clone());
        let default_action = entry.and_then(|e| e.action).unwrap_or(self.action);
        // Every way a profile is selected, with the action it asks for.
        let mut selections: Vec<(Profile, EnforcementAction)> =
            profiles.iter().map(|p| (*p, default_action)).collect();
        let mut warnings = Vec::new();
        if let Some(ns) = namespace {
            let labels = labelled_profiles(
                ns.labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), Some(v.as_str()))),
            );
            for selected in labels.profiles {
                profiles.push(selected.profile);
                selections.push((selected.profile, selected.action.unwrap_or(default_action)));
            }
            for problem in labels.problems {
                warnings.push(format!(
                    "namespace {namespace_name:?}: label {}: {}",
                    problem.label, problem.message
                ));
            }
        }
        profiles.sort();
        profiles.dedup();
        let frameworks: Vec<String> = catalogue
            .frameworks()
            .iter()
            .filter(|f| profiles.contains(&f.profile))
            .map(|f| f.id.clone())
            .collect();
        let mut rules = Vec::new();
        if !exempt {
            for rule in catalogue.rules() {
                if rule.policy != PolicySet::Compliance {
                    continue;
                }
                // The label check guards profile selection itself: it runs
                // whenever compliance is on.
                let selected =
                    rule.controls.is_empty() || frameworks.iter().any(|f| rule.in_framework(f));
                if !selected {
                    continue;
                }
                // The strictest action among the selections whose framework
                // the rule evidences (the label check: the default action).
                let selected_action = if rule.controls.is_empty() {
                    default_action
                } else {
                    selections
                        .iter()
                        .filter(|(p, _)| {
                            catalogue
                                .frameworks()
                                .iter()
                                .any(|f| f.profile == *p && rule.in_framework(&f.id))
                        })
                        .map(|(_, a)| *a)
                        .min_by_key(|a| strictness(*a))
                        .unwrap_or(default_action)
                };
                let override_ = entry
                    .and_then(|e| e.rules.get(&rule.id))
                    .or_else(|| self.rules.get(&rule.id));
                let action = match override_ {
                    None => Some(selected_action),
                    Some(RuleAction::Deny) => Some(EnforcementAction::Deny),
                    Some(RuleAction::Warn) => Some(EnforcementAction::Warn),
                    Some(RuleAction::Audit) => Some(EnforcementAction::Audit),
                    Some(RuleAction::Off) => None,
                };
                if let Some(action) = action {
                    rules.push((rule.id.clone(), action));
                }
            }
        }
        let parameters = match entry {
            Some(e) => e.parameters.over(&self.parameters).resolve(),
            None => self.parameters.resolve(),
        };
        Scope {
            namespace: namespace_name.to_owned(),
            exempt,
            profiles,
            frameworks,
            rules,
            parameters,
            warnings,
        }
    }
}

/// Orders actions from the strictest (`deny`) to the mildest (`audit`).
fn strictness(action: EnforcementAction) -> u8 {
    match action {
        EnforcementAction::Deny => 0,
        EnforcementAction::Warn => 1,
        EnforcementAction::Audit => 2,
    }
}

/// A profile a namespace label selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelledProfile {
    /// The profile.
    pub profile: Profile,
    /// The action its label asks for; `None` for the single-profile label
    /// [`PROFILES_LABEL`], which takes the configured action.
    pub action: Option<EnforcementAction>,
    /// The label key that selected it.
    pub label: String,
}

/// A namespace label under [`PROFILE_LABEL_PREFIX`] that is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelProblem {
    /// The label key.
    pub label: String,
    /// What is wrong and what to write instead.
    pub message: String,
}

/// What a namespace's compliance labels select, and what is wrong with them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelledProfiles {
    /// The profiles selected, in label order.
    pub profiles: Vec<LabelledProfile>,
    /// Labels that are wrong (unknown profile, unknown mode, a list where
    /// one value fits).
    pub problems: Vec<LabelProblem>,
}

/// Reads the compliance labels among a namespace's labels (`None`: a value
/// that is not a string). Fails closed: an unknown mode on a known profile
/// selects it with `deny` (as Pod Security Admission uses its most
/// restrictive level for an unparseable one), and the known names of a
/// comma list in [`PROFILES_LABEL`] (which kube-apiserver refuses, but a
/// manifest checked offline may hold) are all selected; each is also a
/// problem.
pub fn labelled_profiles<'a>(
    labels: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> LabelledProfiles {
    let mut out = LabelledProfiles::default();
    let known = || Profile::ALL.map(Profile::as_str).join(", ");
    for (key, value) in labels {
        let Some(name) = key.strip_prefix(PROFILE_LABEL_PREFIX) else {
            continue;
        };
        let mut problem = |message: String| {
            out.problems.push(LabelProblem {
                label: key.to_owned(),
                message,
            });
        };
        let Some(value) = value else {
            problem("the value is not a string".to_owned());
            continue;
        };
        if key == PROFILES_LABEL {
            let (named, unknown) = parse_profiles(value);
            if value.contains(',') || value.trim() != value {
                problem(format!(
                    "{value:?} is not a valid label value (kube-apiserver refuses commas and spaces); select each framework with its own label, e.g. {}",
                    suggest_labels(&named)
                ));
            }
            for u in unknown {
                problem(format!(
                    "names unknown profile {u:?} (known: {}, alias nist-800-53 for fedramp); it is ignored",
                    known()
                ));
            }
            out.profiles
                .extend(named.into_iter().map(|profile| LabelledProfile {
                    profile,
                    action: None,
                    label: key.to_owned(),
                }));
            continue;
        }
        let Ok(profile) = name.parse::<Profile>() else {
            problem(format!(
                "unknown profile {name:?} (known: {}, alias nist-800-53 for fedramp); it is ignored",
                known()
            ));
            continue;
        };
        let action = match value {
            "enforce" => EnforcementAction::Deny,
            "warn" => EnforcementAction::Warn,
            "audit" => EnforcementAction::Audit,
            other => {
                problem(format!(
                    "unknown mode {other:?} (expected {}); {} is enforced until it is fixed",
                    LABEL_MODES.join(", "),
                    profile.as_str()
                ));
                EnforcementAction::Deny
            }
        };
        out.profiles.push(LabelledProfile {
            profile,
            action: Some(action),
            label: key.to_owned(),
        });
    }
    out
}

/// `compliance.tollgate.dev/soc2: enforce, compliance.tollgate.dev/pci-dss:
/// enforce` for these profiles (a generic example when there are none).
fn suggest_labels(profiles: &[Profile]) -> String {
    let names: Vec<&str> = if profiles.is_empty() {
        vec![Profile::PciDss.as_str()]
    } else {
        profiles.iter().map(|p| p.as_str()).collect()
    };
    names
        .iter()
        .map(|n| format!("{PROFILE_LABEL_PREFIX}{n}: enforce"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Splits a profiles label into known profiles and unknown names.
pub fn parse_profiles(label: &str) -> (Vec<Profile>, Vec<String>) {
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for name in label.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match name.parse::<Profile>() {
            Ok(p) => known.push(p),
            Err(_) => unknown.push(name.to_owned()),
        }
    }
    (known, unknown)
}

impl Parameters {
    fn validate(&self, field: &str) -> Result<(), ConfigError> {
        let lists = [
            ("allowedRegistries", &self.allowed_registries),
            ("allowedStorageClasses", &self.allowed_storage_classes),
            ("allowedRegions", &self.allowed_regions),
            ("auditedClassifications", &self.audited_classifications),
            ("residencyClassifications", &self.residency_classifications),
        ];
        for (name, list) in lists {
            if list.iter().flatten().any(|s| s.trim().is_empty()) {
                return Err(ConfigError {
                    field: format!("{field}.{name}"),
                    reason: "contains an empty entry".into(),
                });
            }
        }
        for r in self.allowed_registries.iter().flatten() {
            if r.contains("://") || r.contains('@') || r.chars().any(char::is_whitespace) {
                return Err(ConfigError {
                    field: format!("{field}.allowedRegistries"),
                    reason: format!(
                        "{r:?} is not a registry: give a host with an optional path prefix, e.g. ghcr.io/acme"
                    ),
                });
            }
        }
        if self
            .sidecar_container_name
            .as_deref()
            .is_some_and(|s| s.trim().is_empty())
        {
            return Err(ConfigError {
                field: format!("{field}.sidecarContainerName"),
                reason: "is empty".into(),
            });
        }
        Ok(())
    }

    /// These parameters, with unset fields taken from `base`.
    fn over(&self, base: &Parameters) -> Parameters {
        Parameters {
            allowed_registries: self
                .allowed_registries
                .clone()
                .or_else(|| base.allowed_registries.clone()),
            require_digest: self.require_digest.or(base.require_digest),
            require_cpu_limit: self.require_cpu_limit.or(base.require_cpu_limit),
            allowed_storage_classes: self
                .allowed_storage_classes
                .clone()
                .or_else(|| base.allowed_storage_classes.clone()),
            allowed_regions: self
                .allowed_regions
                .clone()
                .or_else(|| base.allowed_regions.clone()),
            audited_classifications: self
                .audited_classifications
                .clone()
                .or_else(|| base.audited_classifications.clone()),
            residency_classifications: self
                .residency_classifications
                .clone()
                .or_else(|| base.residency_classifications.clone()),
            sidecar_container_name: self
                .sidecar_container_name
                .clone()
                .or_else(|| base.sidecar_container_name.clone()),
        }
    }

    /// Fills in the defaults.
    pub fn resolve(&self) -> ResolvedParameters {
        let lower = |v: &Option<Vec<String>>, default: &[&str]| -> Vec<String> {
            match v {
                Some(v) => v.iter().map(|s| s.trim().to_lowercase()).collect(),
                None => default.iter().map(|s| (*s).to_owned()).collect(),
            }
        };
        ResolvedParameters {
            allowed_registries: self
                .allowed_registries
                .iter()
                .flatten()
                .map(|r| normalise_registry(r))
                .collect(),
            require_digest: self.require_digest.unwrap_or(false),
            require_cpu_limit: self.require_cpu_limit.unwrap_or(true),
            allowed_storage_classes: self.allowed_storage_classes.clone().unwrap_or_default(),
            allowed_regions: self.allowed_regions.clone().unwrap_or_default(),
            audited_classifications: lower(
                &self.audited_classifications,
                &["phi", "pci", "personal"],
            ),
            residency_classifications: lower(&self.residency_classifications, &["personal"]),
            sidecar_container_name: self
                .sidecar_container_name
                .clone()
                .unwrap_or_else(|| "tollgate-sidecar".to_owned()),
        }
    }
}

/// `Docker.IO/Library/` -> `docker.io/Library`: trailing slashes removed,
/// the host lower-cased (paths are case-sensitive), Docker Hub's aliases
/// folded into `docker.io`.
fn normalise_registry(entry: &str) -> String {
    let entry = entry.trim().trim_end_matches('/');
    let (host, rest) = match entry.split_once('/') {
        Some((h, r)) => (h, Some(r)),
        None => (entry, None),
    };
    let mut host = host.to_lowercase();
    if host == "index.docker.io" || host == "registry-1.docker.io" {
        host = "docker.io".to_owned();
    }
    match rest {
        Some(r) => format!("{host}/{r}"),
        None => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_are_normalised() {
        assert_eq!(normalise_registry("GHCR.io/Acme/"), "ghcr.io/Acme");
        assert_eq!(normalise_registry("index.docker.io"), "docker.io");
        assert_eq!(
            normalise_registry("registry-1.docker.io/library"),
            "docker.io/library"
        );
    }

    #[test]
    fn labels_add_profiles_and_report_unknown_ones() {
        let (known, unknown) = parse_profiles(" soc2, NIST-800-53,hipa,,");
        assert_eq!(known, [Profile::Soc2, Profile::Fedramp]);
        assert_eq!(unknown, ["hipa"]);
    }
}
