//! Admission decisions as audit events: who asked (`userInfo`), for what
//! (`group/version/Kind namespace/name`), whose workload it is (the
//! object's `deployscope.dev/*` annotations), and what was decided and why
//! (every violation with its rule, reason and compliance controls).

use std::time::Duration;

use serde_json::{Map, Value, json};
use tollgate_audit::{Actor, Decision, Event, EventAction, Outcome, Ownership, Source};
use tollgate_policies::engine::{AdmissionRequest, Evaluation};
use tollgate_policies::{EnforcementAction, Violation};

use crate::Endpoint;

/// The ownership annotation keys read into events.
pub const OWNER: &str = "deployscope.dev/owner";
/// The tier annotation.
pub const TIER: &str = "deployscope.dev/tier";
/// The on-call annotation.
pub const ONCALL: &str = "deployscope.dev/oncall";

/// The event for one answered review: a refusal that is not a violation
/// (the object could not be evaluated) is recorded as a denial with its
/// reason as the rule.
pub fn event(
    endpoint: Endpoint,
    request: &AdmissionRequest,
    evaluation: &Evaluation,
    latency: Duration,
) -> Event {
    let actor = Actor {
        user: non_empty(&request.user_info.username),
        groups: request.user_info.groups.clone(),
        service_account: request.user_info.service_account(),
        pod: (request.kind.kind == "Pod")
            .then(|| evaluation.subject.name.clone())
            .filter(|n| !n.is_empty()),
        namespace: non_empty(&request.namespace),
        agent: None,
    };
    let object = request.object.as_ref().or(request.old_object.as_ref());
    let mut annotations = object
        .map(|o| o.annotations(&[OWNER, TIER, ONCALL]))
        .unwrap_or_default();
    let ownership = Ownership {
        owner: annotations.remove(OWNER),
        tier: annotations.remove(TIER),
        oncall: annotations.remove(ONCALL),
    };
    let action = EventAction {
        protocol: "admission".to_owned(),
        verb: request.operation.as_str().to_owned(),
        target: target(request, evaluation),
        attributes: attributes(endpoint, request, evaluation),
    };
    let latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
    Event::new(
        Source::Webhook,
        actor,
        ownership,
        action,
        decision(evaluation),
        latency_us,
    )
}

/// `apps/v1/Deployment team-a/web` (`v1/Namespace team-a` when
/// cluster-scoped).
pub fn target(request: &AdmissionRequest, evaluation: &Evaluation) -> String {
    let mut out = format!("{}/{}", request.kind.api_version(), request.kind.kind);
    let name = &evaluation.subject.name;
    if request.namespace.is_empty() || request.kind.kind == "Namespace" {
        out.push(' ');
        out.push_str(name);
    } else {
        out.push_str(&format!(" {}/{name}", request.namespace));
    }
    if !request.sub_resource.is_empty() {
        out.push_str(&format!(" ({})", request.sub_resource));
    }
    out
}

fn decision(evaluation: &Evaluation) -> Decision {
    let violations = &evaluation.verdict.violations;
    let mut controls: Vec<String> = Vec::new();
    for c in violations.iter().flat_map(|v| &v.controls) {
        let text = c.to_string();
        if !controls.contains(&text) {
            controls.push(text);
        }
    }
    let rules = |action: EnforcementAction| -> Option<String> {
        let mut rules: Vec<String> = Vec::new();
        for v in violations.iter().filter(|v| v.action == action) {
            let rule = format!("{}:{}", v.policy.as_str(), v.rule);
            if !rules.contains(&rule) {
                rules.push(rule);
            }
        }
        (!rules.is_empty()).then(|| rules.join(","))
    };
    if let Some(denial) = evaluation.denial() {
        return Decision {
            outcome: Outcome::Deny,
            rule: rules(EnforcementAction::Deny).or_else(|| Some(denial.reason.to_owned())),
            reason: Some(denial.message),
            controls,
        };
    }
    let warnings = evaluation.warnings();
    if violations
        .iter()
        .any(|v| v.action == EnforcementAction::Warn)
    {
        return Decision {
            outcome: Outcome::Warn,
            rule: rules(EnforcementAction::Warn),
            reason: Some(warnings.join("\n")),
            controls,
        };
    }
    Decision {
        outcome: Outcome::Allow,
        rule: rules(EnforcementAction::Audit),
        reason: (!warnings.is_empty()).then(|| warnings.join("\n")),
        controls,
    }
}

fn attributes(
    endpoint: Endpoint,
    request: &AdmissionRequest,
    evaluation: &Evaluation,
) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("uid".into(), json!(request.uid));
    out.insert("endpoint".into(), json!(endpoint.as_str()));
    out.insert(
        "resource".into(),
        json!(format!(
            "{}/{}",
            request.resource.group, request.resource.resource
        )),
    );
    if !request.sub_resource.is_empty() {
        out.insert("subResource".into(), json!(request.sub_resource));
    }
    out.insert("dryRun".into(), json!(request.is_dry_run()));
    if !evaluation.verdict.violations.is_empty() {
        out.insert(
            "violations".into(),
            Value::Array(
                evaluation
                    .verdict
                    .violations
                    .iter()
                    .map(violation)
                    .collect(),
            ),
        );
    }
    if !evaluation.exemptions.is_empty() {
        out.insert(
            "exemptions".into(),
            Value::Array(
                evaluation
                    .exemptions
                    .iter()
                    .map(|e| json!({"policy": e.policy.as_str(), "reason": e.reason}))
                    .collect(),
            ),
        );
    }
    if !evaluation.patch.is_empty() {
        out.insert("patchOperations".into(), json!(evaluation.patch.len()));
    }
    out
}

fn violation(v: &Violation) -> Value {
    json!({
        "policy": v.policy.as_str(),
        "rule": v.rule,
        "action": v.action,
        "message": v.message,
        "path": v.path,
        "container": v.container,
        "controls": v.controls.iter().map(ToString::to_string).collect::<Vec<_>>(),
    })
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}
