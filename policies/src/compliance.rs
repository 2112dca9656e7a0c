//! Compliance packs: the built-in Rego rules (`packs/rules/*.rego`) for SOC 2,
//! HIPAA, PCI-DSS v4.0, GDPR and FedRAMP (NIST SP 800-53 rev 5), with the
//! controls each rule evidences taken from the control catalogue
//! (`packs/catalogue.yaml`).
//!
//! A *profile* selects a framework; a rule runs in a namespace when it
//! evidences at least one control of a framework selected there (profiles
//! come from the config and the namespace labels
//! `compliance.tollgate.dev/<profile>: enforce|warn|audit`, see [`config`]). Every violation names
//! the controls of the selected frameworks it evidences.
//!
//! Evaluation is one Rego query per object
//! (`data.tollgate.compliance.result`) over every enabled rule: the object
//! is converted to a Rego value once, the packs are compiled once
//! ([`Packs::builtin`]) and each thread evaluates with its own clone of the
//! compiled engine, so no lock is taken on the request path.
//!
//! Namespaces themselves are judged too: a `compliance.tollgate.dev/*` label
//! naming an unknown profile or mode is refused (`profiles-label`), so a typo
//! cannot silently switch controls off.

pub mod catalogue;
pub mod config;
pub mod image;
mod input;
mod rego;

#[cfg(test)]
mod tests;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::namespace::NamespaceInfo;
use crate::{EnforcementAction, PolicySet, Violation};

pub use catalogue::{Catalogue, CatalogueError, Framework, Rule};
pub use config::{
    ComplianceConfig, ConfigError, LABEL_MODES, LabelProblem, LabelledProfile, LabelledProfiles,
    NamespaceCompliance, PROFILE_LABEL_PREFIX, PROFILES_LABEL, Parameters, ResolvedParameters,
    RuleAction, Scope, labelled_profiles,
};
pub use rego::RegoError;

/// The Rego modules of the built-in packs, as (path, source).
const SOURCES: &[(&str, &str)] = &[
    (
        "packs/rules/lib.rego",
        include_str!("../packs/rules/lib.rego"),
    ),
    (
        "packs/rules/images.rego",
        include_str!("../packs/rules/images.rego"),
    ),
    (
        "packs/rules/availability.rego",
        include_str!("../packs/rules/availability.rego"),
    ),
    (
        "packs/rules/secrets.rego",
        include_str!("../packs/rules/secrets.rego"),
    ),
    (
        "packs/rules/identity.rego",
        include_str!("../packs/rules/identity.rego"),
    ),
    (
        "packs/rules/hardening.rego",
        include_str!("../packs/rules/hardening.rego"),
    ),
    (
        "packs/rules/data.rego",
        include_str!("../packs/rules/data.rego"),
    ),
    (
        "packs/rules/network.rego",
        include_str!("../packs/rules/network.rego"),
    ),
    (
        "packs/rules/storage.rego",
        include_str!("../packs/rules/storage.rego"),
    ),
];

/// The rule every object is evaluated with.
const ENTRY_POINT: &str = "data.tollgate.compliance.result";

/// The rule that checks the profiles label of Namespace objects.
const PROFILES_LABEL_RULE: &str = "profiles-label";

/// A compliance profile: the framework a namespace opts into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Profile {
    /// SOC 2 (AICPA Trust Services Criteria).
    Soc2,
    /// The HIPAA Security Rule.
    Hipaa,
    /// PCI DSS v4.0.
    PciDss,
    /// The GDPR.
    Gdpr,
    /// FedRAMP, i.e. NIST SP 800-53 rev 5 (alias `nist-800-53`).
    Fedramp,
}

/// A profile name that is not one of the known profiles.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown compliance profile {0:?}: expected soc2, hipaa, pci-dss, gdpr or fedramp (alias nist-800-53)"
)]
pub struct UnknownProfile(pub String);

impl Profile {
    /// Every profile, in canonical order.
    pub const ALL: [Profile; 5] = [
        Profile::Soc2,
        Profile::Hipaa,
        Profile::PciDss,
        Profile::Gdpr,
        Profile::Fedramp,
    ];

    /// The profile's name in labels and config.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Soc2 => "soc2",
            Profile::Hipaa => "hipaa",
            Profile::PciDss => "pci-dss",
            Profile::Gdpr => "gdpr",
            Profile::Fedramp => "fedramp",
        }
    }
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Profile {
    type Err = UnknownProfile;

    /// Case-insensitive; `nist-800-53` is an alias of `fedramp`.
    fn from_str(s: &str) -> Result<Self, UnknownProfile> {
        let name = s.trim().to_ascii_lowercase();
        if name == "nist-800-53" {
            return Ok(Profile::Fedramp);
        }
        Profile::ALL
            .into_iter()
            .find(|p| p.as_str() == name)
            .ok_or_else(|| UnknownProfile(s.to_owned()))
    }
}

impl TryFrom<String> for Profile {
    type Error = UnknownProfile;

    fn try_from(s: String) -> Result<Self, UnknownProfile> {
        s.parse()
    }
}

impl From<Profile> for String {
    fn from(p: Profile) -> String {
        p.as_str().to_owned()
    }
}

/// Why compliance evaluation failed. The caller fails closed (denies).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComplianceError {
    /// The built-in catalogue is broken.
    #[error(transparent)]
    Catalogue(#[from] CatalogueError),
    /// The packs failed to compile, or evaluation failed or timed out.
    #[error("compliance packs: {0}")]
    Rego(#[from] RegoError),
    /// The packs returned something that is not a list of violations of
    /// catalogue rules.
    #[error("compliance packs returned an unexpected result: {0}")]
    Result(String),
}

/// What compliance evaluation found about one object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evaluation {
    /// Every violation, in catalogue order, then by path.
    pub violations: Vec<Violation>,
    /// The rules that judged the object (passed or failed), in catalogue
    /// order: enabled in its namespace, applicable to its kind, and whose
    /// condition arose (a rule about personal data does not count as passed
    /// by a workload without personal data).
    pub evaluated: Vec<String>,
    /// The profiles in force.
    pub profiles: Vec<Profile>,
    /// The frameworks they select.
    pub frameworks: Vec<String>,
    /// Notes that are not violations (an unknown profile in a label).
    pub warnings: Vec<String>,
    /// Why nothing was evaluated, when so (`exempt namespace`, ...).
    pub skipped: Option<String>,
}

/// The compiled compliance packs and the catalogue they report against.
#[derive(Debug, Clone)]
pub struct Packs {
    catalogue: &'static Catalogue,
    compiled: Arc<rego::Compiled>,
}

impl Packs {
    /// The built-in packs, compiled once per process.
    pub fn builtin() -> Result<&'static Packs, ComplianceError> {
        static BUILT: OnceLock<Result<Packs, ComplianceError>> = OnceLock::new();
        BUILT
            .get_or_init(|| {
                let catalogue = Catalogue::builtin()?;
                let compiled = rego::Compiled::compile(SOURCES, ENTRY_POINT)?;
                Ok(Packs {
                    catalogue,
                    compiled: Arc::new(compiled),
                })
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The catalogue the packs report against.
    pub fn catalogue(&self) -> &'static Catalogue {
        self.catalogue
    }

    /// The Rego modules of the packs, as (path, source).
    pub fn sources() -> &'static [(&'static str, &'static str)] {
        SOURCES
    }

    /// Evaluates an object in its namespace under `config`. `namespace` is
    /// what the namespace source knows about it (`None` when unknown or
    /// cluster-scoped); the namespace's name is the object's own
    /// `metadata.namespace`, else `namespace.name`.
    pub fn evaluate(
        &self,
        object: &Value,
        namespace: Option<&NamespaceInfo>,
        config: &ComplianceConfig,
    ) -> Result<Evaluation, ComplianceError> {
        let name = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .or(namespace.map(|n| n.name.as_str()))
            .unwrap_or("");
        let scope = config.scope(self.catalogue, name, namespace);
        let timeout = Duration::from_millis(config.evaluation_timeout_millis.max(1));
        self.evaluate_in(
            object,
            namespace,
            &scope,
            config.skip_controlled_pods,
            timeout,
        )
    }

    /// Evaluates an object with a [`Scope`] resolved beforehand (callers
    /// that judge many objects of one namespace resolve it once).
    pub fn evaluate_in(
        &self,
        object: &Value,
        namespace: Option<&NamespaceInfo>,
        scope: &Scope,
        skip_controlled_pods: bool,
        timeout: Duration,
    ) -> Result<Evaluation, ComplianceError> {
        let mut out = Evaluation {
            profiles: scope.profiles.clone(),
            frameworks: scope.frameworks.clone(),
            warnings: scope.warnings.clone(),
            ..Evaluation::default()
        };
        let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
        if scope.exempt {
            out.skipped = Some(format!("namespace {:?} is exempt", scope.namespace));
            return Ok(out);
        }
        if kind == "Namespace" {
            self.check_namespace(object, scope, &mut out);
            return Ok(out);
        }
        if skip_controlled_pods
            && let Some(controller) = crate::ownership::checked_controller(object)
        {
            out.skipped = Some(format!(
                "controlled by {controller}, which is judged instead"
            ));
            return Ok(out);
        }
        let rules: Vec<&(String, EnforcementAction)> = scope
            .rules
            .iter()
            .filter(|(id, _)| {
                self.catalogue
                    .rule(id)
                    .is_some_and(|r| r.id != PROFILES_LABEL_RULE && r.applies_to(kind))
            })
            .collect();
        if rules.is_empty() {
            return Ok(out);
        }
        let ids: Vec<&str> = rules.iter().map(|(id, _)| id.as_str()).collect();
        let input = input::build(object, kind, namespace, scope, &ids)?;
        let result = self.compiled.eval(input, timeout)?;
        let inapplicable = string_set(&result["inapplicable"])?;
        for (id, _) in &rules {
            if !inapplicable.iter().any(|r| r == id) {
                out.evaluated.push(id.clone());
            }
        }
        self.collect_violations(&result["violations"], scope, &rules, &mut out)?;
        Ok(out)
    }

    fn collect_violations(
        &self,
        found: &regorus::Value,
        scope: &Scope,
        rules: &[&(String, EnforcementAction)],
        out: &mut Evaluation,
    ) -> Result<(), ComplianceError> {
        let items: Vec<&regorus::Value> = match found {
            regorus::Value::Set(set) => set.iter().collect(),
            regorus::Value::Array(arr) => arr.iter().collect(),
            regorus::Value::Undefined => Vec::new(),
            other => return Err(ComplianceError::Result(format!("violations are {other}"))),
        };
        let frameworks: Vec<&str> = scope.frameworks.iter().map(String::as_str).collect();
        let mut violations = Vec::with_capacity(items.len());
        for item in items {
            let field = |name: &str| -> Option<String> {
                match &item[name] {
                    regorus::Value::String(s) => Some(s.to_string()),
                    _ => None,
                }
            };
            let Some(rule) = field("rule") else {
                return Err(ComplianceError::Result(format!(
                    "violation without a rule: {item}"
                )));
            };
            let Some((_, action)) = rules.iter().find(|(id, _)| *id == rule) else {
                return Err(ComplianceError::Result(format!(
                    "violation of rule {rule:?}, which is not enabled or not in the catalogue"
                )));
            };
            let message = field("msg").unwrap_or_default();
            let controls = self.catalogue.controls(&rule, Some(&frameworks));
            violations.push(Violation {
                policy: PolicySet::Compliance,
                path: field("path").filter(|p| !p.is_empty()),
                container: field("container").filter(|c| !c.is_empty()),
                message,
                rule,
                controls,
                action: *action,
            });
        }
        violations.sort_by(|a, b| {
            let pa = self.catalogue.position(&a.rule);
            let pb = self.catalogue.position(&b.rule);
            pa.cmp(&pb)
                .then_with(|| a.path.cmp(&b.path))
                .then_with(|| a.message.cmp(&b.message))
        });
        out.violations = violations;
        Ok(())
    }

    /// Judges a Namespace's own compliance labels: each label under
    /// `compliance.tollgate.dev/` names a known profile and a known mode.
    fn check_namespace(&self, object: &Value, scope: &Scope, out: &mut Evaluation) {
        let Some((_, action)) = scope.rules.iter().find(|(id, _)| id == PROFILES_LABEL_RULE) else {
            return;
        };
        out.evaluated.push(PROFILES_LABEL_RULE.to_owned());
        let Some(labels) = object
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
        else {
            return;
        };
        let found = config::labelled_profiles(labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        for problem in found.problems {
            out.violations.push(Violation {
                policy: PolicySet::Compliance,
                rule: PROFILES_LABEL_RULE.to_owned(),
                message: format!("label {}: {}", problem.label, problem.message),
                path: Some(format!("metadata.labels[\"{}\"]", problem.label)),
                container: None,
                controls: Vec::new(),
                action: *action,
            });
        }
    }
}

fn string_set(value: &regorus::Value) -> Result<Vec<String>, ComplianceError> {
    let items: Vec<&regorus::Value> = match value {
        regorus::Value::Set(set) => set.iter().collect(),
        regorus::Value::Array(arr) => arr.iter().collect(),
        regorus::Value::Undefined => Vec::new(),
        other => {
            return Err(ComplianceError::Result(format!(
                "inapplicable rules are {other}"
            )));
        }
    };
    Ok(items
        .into_iter()
        .filter_map(|v| match v {
            regorus::Value::String(s) => Some(s.to_string()),
            _ => None,
        })
        .collect())
}
