//! The control catalogue (`packs/catalogue.yaml`): for every rule, its title,
//! remediation and the controls it evidences per framework; for every
//! framework, its profile and the titles of its controls. Data, not code:
//! the catalogue is what an auditor reads, and the one place the mapping
//! lives.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::Deserialize;

use super::Profile;
use crate::{Control, PolicySet, WorkloadKind};

/// The built-in catalogue's text.
const BUILTIN: &str = include_str!("../../packs/catalogue.yaml");

/// A rule's `applies` entry standing for every kind that carries a pod spec.
const WORKLOADS: &str = "workloads";

/// The parsed control catalogue.
#[derive(Debug, Clone)]
pub struct Catalogue {
    frameworks: Vec<Framework>,
    rules: Vec<Rule>,
    index: HashMap<String, usize>,
}

/// A compliance framework and the controls the catalogue maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framework {
    /// The identifier used in [`Control::framework`]: `SOC2`, `HIPAA`,
    /// `PCI-DSS`, `GDPR`, `NIST-800-53`.
    pub id: String,
    /// The framework's name and edition.
    pub title: String,
    /// The profile that selects it.
    pub profile: Profile,
    /// Control id and short title, in catalogue order.
    pub controls: Vec<(String, String)>,
}

/// One rule of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The rule id (`image-pinned`), as in [`crate::Violation::rule`].
    pub id: String,
    /// The policy set that evaluates it.
    pub policy: PolicySet,
    /// One line: what the rule requires.
    pub title: String,
    /// The kinds it judges: Kubernetes kinds, or `workloads` for every kind
    /// with a pod spec.
    pub applies: Vec<String>,
    /// How to fix a violation.
    pub remediation: String,
    /// Every control it evidences, in framework order.
    pub controls: Vec<Control>,
    /// What an assessor should know about the mapping, if anything.
    pub notes: Option<String>,
}

/// Why a catalogue was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogueError {
    /// Not YAML of the catalogue's shape.
    #[error("control catalogue: {0}")]
    Parse(String),
    /// Well-formed, but inconsistent (an unknown framework or control, a
    /// duplicate rule).
    #[error("control catalogue: rule {rule:?}: {reason}")]
    Invalid {
        /// The rule (or framework) at fault.
        rule: String,
        /// What is wrong.
        reason: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalogue {
    version: u32,
    frameworks: Vec<RawFramework>,
    rules: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFramework {
    id: String,
    title: String,
    profile: Profile,
    controls: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: String,
    policy: PolicySet,
    title: String,
    applies: Vec<String>,
    remediation: String,
    controls: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    notes: Option<String>,
}

impl Catalogue {
    /// The built-in catalogue, parsed once. An error here means the
    /// embedded data is broken (a test guards against it).
    pub fn builtin() -> Result<&'static Catalogue, CatalogueError> {
        static BUILT: OnceLock<Result<Catalogue, CatalogueError>> = OnceLock::new();
        BUILT
            .get_or_init(|| Catalogue::parse(BUILTIN))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Parses and checks a catalogue.
    pub fn parse(text: &str) -> Result<Catalogue, CatalogueError> {
        let raw: RawCatalogue =
            yaml_serde::from_str(text).map_err(|e| CatalogueError::Parse(e.to_string()))?;
        if raw.version != 1 {
            return Err(CatalogueError::Parse(format!(
                "unsupported version {} (expected 1)",
                raw.version
            )));
        }
        let mut frameworks = Vec::new();
        for f in raw.frameworks {
            let mut controls = Vec::new();
            for (id, title) in f.controls {
                let title = title.as_str().ok_or_else(|| CatalogueError::Invalid {
                    rule: f.id.clone(),
                    reason: format!("control {id:?} needs a title string"),
                })?;
                controls.push((id, title.to_owned()));
            }
            if frameworks.iter().any(|g: &Framework| g.id == f.id) {
                return Err(invalid(&f.id, "framework listed twice"));
            }
            frameworks.push(Framework {
                id: f.id,
                title: f.title,
                profile: f.profile,
                controls,
            });
        }
        let mut rules = Vec::new();
        let mut index = HashMap::new();
        for r in raw.rules {
            let controls = resolve_controls(&r.id, &r.controls, &frameworks)?;
            if r.applies.is_empty() {
                return Err(invalid(&r.id, "applies to no kind"));
            }
            if index.insert(r.id.clone(), rules.len()).is_some() {
                return Err(invalid(&r.id, "rule listed twice"));
            }
            rules.push(Rule {
                id: r.id,
                policy: r.policy,
                title: r.title,
                applies: r.applies,
                remediation: r.remediation,
                controls,
                notes: r.notes,
            });
        }
        Ok(Catalogue {
            frameworks,
            rules,
            index,
        })
    }

    /// Every framework, in catalogue order.
    pub fn frameworks(&self) -> &[Framework] {
        &self.frameworks
    }

    /// The framework a profile selects.
    pub fn framework(&self, profile: Profile) -> Option<&Framework> {
        self.frameworks.iter().find(|f| f.profile == profile)
    }

    /// The framework with this id (`SOC2`).
    pub fn framework_by_id(&self, id: &str) -> Option<&Framework> {
        self.frameworks.iter().find(|f| f.id == id)
    }

    /// Every rule, in catalogue order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The rule with this id.
    pub fn rule(&self, id: &str) -> Option<&Rule> {
        self.index.get(id).and_then(|&i| self.rules.get(i))
    }

    /// The position of a rule in catalogue order (for stable sorting).
    pub fn position(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// The controls a rule evidences in the given frameworks (all of them
    /// when `frameworks` is `None`). Empty for an unknown rule.
    pub fn controls(&self, rule: &str, frameworks: Option<&[&str]>) -> Vec<Control> {
        self.rule(rule)
            .map(|r| {
                r.controls
                    .iter()
                    .filter(|c| frameworks.is_none_or(|fs| fs.contains(&c.framework.as_str())))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The controls the Pod Security checks of a level evidence
    /// (`pod-security-baseline` or `pod-security-restricted`).
    pub fn pod_security_controls(&self, level: crate::Level) -> Vec<Control> {
        match level {
            crate::Level::Privileged => Vec::new(),
            crate::Level::Baseline => self.controls("pod-security-baseline", None),
            crate::Level::Restricted => self.controls("pod-security-restricted", None),
        }
    }
}

impl Rule {
    /// True when the rule judges objects of this kind.
    pub fn applies_to(&self, kind: &str) -> bool {
        self.applies
            .iter()
            .any(|a| a == kind || (a == WORKLOADS && WorkloadKind::from_kind(kind).is_some()))
    }

    /// True when the rule evidences a control of this framework.
    pub fn in_framework(&self, framework: &str) -> bool {
        self.controls.iter().any(|c| c.framework == framework)
    }
}

fn invalid(rule: &str, reason: &str) -> CatalogueError {
    CatalogueError::Invalid {
        rule: rule.to_owned(),
        reason: reason.to_owned(),
    }
}

fn resolve_controls(
    rule: &str,
    raw: &serde_json::Map<String, serde_json::Value>,
    frameworks: &[Framework],
) -> Result<Vec<Control>, CatalogueError> {
    for key in raw.keys() {
        if !frameworks.iter().any(|f| &f.id == key) {
            return Err(invalid(rule, &format!("unknown framework {key:?}")));
        }
    }
    let mut out = Vec::new();
    for f in frameworks {
        let Some(ids) = raw.get(&f.id) else {
            continue;
        };
        let ids = ids
            .as_array()
            .ok_or_else(|| invalid(rule, &format!("controls of {} must be a list", f.id)))?;
        if ids.is_empty() {
            return Err(invalid(rule, &format!("empty control list for {}", f.id)));
        }
        for id in ids {
            let id = id
                .as_str()
                .ok_or_else(|| invalid(rule, &format!("{} control ids must be strings", f.id)))?;
            if !f.controls.iter().any(|(c, _)| c == id) {
                return Err(invalid(
                    rule,
                    &format!(
                        "{} control {id:?} is not in the framework's control list",
                        f.id
                    ),
                ));
            }
            let control = Control {
                framework: f.id.clone(),
                id: id.to_owned(),
            };
            if out.contains(&control) {
                return Err(invalid(rule, &format!("{control} listed twice")));
            }
            out.push(control);
        }
    }
    Ok(out)
}
