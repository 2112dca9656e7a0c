//! The outcome of evaluating an object or an action: the violations found,
//! each naming its policy, the controls it evidences and the field to fix.

use serde::{Deserialize, Serialize};

/// Which family of policy produced a violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicySet {
    /// The native Pod Security Standards checks.
    PodSecurity,
    /// The `deployscope.dev/*` ownership annotation rules.
    Ownership,
    /// The built-in compliance packs.
    Compliance,
    /// Users' Gatekeeper constraints.
    Constraints,
    /// The sidecar's action policy.
    Action,
    /// Sidecar injection and its anti-bypass checks.
    Injection,
}

impl PolicySet {
    /// The name used on the command line (`--only pod-security,...`).
    pub fn as_str(self) -> &'static str {
        match self {
            PolicySet::PodSecurity => "pod-security",
            PolicySet::Ownership => "ownership",
            PolicySet::Compliance => "compliance",
            PolicySet::Constraints => "constraints",
            PolicySet::Action => "action",
            PolicySet::Injection => "injection",
        }
    }
}

/// What happens when a violation is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnforcementAction {
    /// Refuse the request.
    Deny,
    /// Allow, and tell the requester (admission warnings).
    Warn,
    /// Allow silently, and record it (Gatekeeper's `dryrun`).
    Audit,
}

impl EnforcementAction {
    /// `deny`, `warn` or `audit`.
    pub fn as_str(self) -> &'static str {
        match self {
            EnforcementAction::Deny => "deny",
            EnforcementAction::Warn => "warn",
            EnforcementAction::Audit => "audit",
        }
    }
}

/// A compliance control a rule evidences, e.g. `PCI-DSS 2.2.5`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Control {
    /// The framework: `SOC2`, `HIPAA`, `PCI-DSS`, `GDPR`, `NIST-800-53`.
    pub framework: String,
    /// The control identifier within the framework, e.g. `164.312(a)(1)`.
    pub id: String,
}

impl std::fmt::Display for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.framework, self.id)
    }
}

/// One thing wrong with an object, phrased so a person can fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// The policy family.
    pub policy: PolicySet,
    /// The rule within it: a Pod Security check id (`allowPrivilegeEscalation`),
    /// a compliance rule id, or a constraint's `kind/name`.
    pub rule: String,
    /// What is wrong and how to fix it.
    pub message: String,
    /// The field at fault, as a dotted path from the object's root
    /// (`spec.template.spec.containers[0].securityContext`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The container at fault, when the violation is about one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The compliance controls the rule evidences.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub controls: Vec<Control>,
    /// Deny, warn or audit.
    pub action: EnforcementAction,
}

/// Everything evaluation found about one object or action.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// Every violation, in a stable order.
    pub violations: Vec<Violation>,
}

impl Verdict {
    /// True unless some violation denies.
    pub fn allowed(&self) -> bool {
        !self
            .violations
            .iter()
            .any(|v| v.action == EnforcementAction::Deny)
    }

    /// The violations with the given action.
    pub fn with_action(&self, action: EnforcementAction) -> impl Iterator<Item = &Violation> {
        self.violations.iter().filter(move |v| v.action == action)
    }
}
