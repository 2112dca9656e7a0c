//! What reports say about a rule: its title, how to fix it, where to read
//! more and the controls it evidences, from the control catalogue for
//! ownership and compliance rules, from the Pod Security registry for Pod
//! Security checks, and generically for users' constraints.

use serde::Serialize;

use crate::compliance::Catalogue;
use crate::{Control, Level, PolicySet, pss};

/// Where the Pod Security Standards are defined.
const PSS_URI: &str = "https://kubernetes.io/docs/concepts/security/pod-security-standards/";

/// The documentation of one rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleDoc {
    /// The policy set.
    pub policy: PolicySet,
    /// The rule id.
    pub rule: String,
    /// One line: what the rule requires.
    pub title: String,
    /// How to fix a violation.
    pub help: String,
    /// Where to read more, if anywhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help_uri: Option<String>,
    /// Every control the rule evidences.
    pub controls: Vec<Control>,
}

/// Describes a rule. Unknown rules (users' constraints) get a generic text.
pub fn describe(policy: PolicySet, rule: &str, catalogue: Option<&Catalogue>) -> RuleDoc {
    if let Some(entry) = catalogue
        .and_then(|c| c.rule(rule))
        .filter(|e| e.policy == policy)
    {
        let mut help = entry.remediation.clone();
        if let Some(notes) = &entry.notes {
            help.push_str("\n\nNote: ");
            help.push_str(notes);
        }
        return RuleDoc {
            policy,
            rule: rule.to_owned(),
            title: entry.title.clone(),
            help,
            help_uri: None,
            controls: entry.controls.clone(),
        };
    }
    if policy == PolicySet::PodSecurity
        && let Some(check) = pss::registry().iter().find(|c| c.id == rule)
    {
        let summary = check
            .revisions
            .last()
            .map(|r| r.summary)
            .unwrap_or_default();
        let level = match check.level {
            Level::Baseline => "baseline",
            _ => "restricted",
        };
        return RuleDoc {
            policy,
            rule: rule.to_owned(),
            title: format!("Pod Security Standards ({level}): {summary}"),
            help: format!(
                "The Pod Security Standards {level} check {rule}: {summary}. The violation message names the container, the field and the value to set."
            ),
            help_uri: Some(PSS_URI.to_owned()),
            controls: catalogue
                .map(|c| c.pod_security_controls(check.level))
                .unwrap_or_default(),
        };
    }
    RuleDoc {
        policy,
        rule: rule.to_owned(),
        title: format!("{} rule {rule}", policy.as_str()),
        help: "The violation message says what is wrong and how to fix it.".to_owned(),
        help_uri: None,
        controls: Vec::new(),
    }
}
