//! SARIF 2.1.0, as GitHub code scanning and GitLab read it: one run of
//! the `Tollgate` tool; `tool.driver.rules` lists every rule that reported
//! or judged something, with its help text and its controls as tags;
//! `results` has one entry per violation, with the manifest file and the
//! line of the object, the object as a logical location, and a stable
//! fingerprint so code scanning tracks an alert across runs. Inputs that
//! could not be read or parsed are `invocations[0].toolExecutionNotifications`
//! (and the invocation is not `executionSuccessful`).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::rules::{RuleDoc, describe};
use super::{CheckResult, controls_text};
use crate::compliance::Catalogue;
use crate::{EnforcementAction, PolicySet, Violation};

/// The SARIF schema this output follows.
pub const SARIF_SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

/// The SARIF report of `results` and of the inputs that could not be read
/// or parsed. Rules are described from `catalogue` (the built-in one when
/// `None`).
pub fn sarif(
    results: &[CheckResult],
    input_errors: &[String],
    catalogue: Option<&Catalogue>,
) -> String {
    let catalogue = catalogue.or_else(|| Catalogue::builtin().ok());
    // Every (policy, rule) that judged or reported, in first-seen order.
    let mut order: Vec<(PolicySet, String)> = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut note = |policy: PolicySet, rule: &str| {
        let id = rule_id(policy, rule);
        if let std::collections::btree_map::Entry::Vacant(slot) = seen.entry(id) {
            slot.insert(order.len());
            order.push((policy, rule.to_owned()));
        }
    };
    for r in results {
        for e in &r.evaluated {
            note(e.policy, &e.rule);
        }
        for v in &r.verdict.violations {
            note(v.policy, &v.rule);
        }
    }
    let docs: Vec<RuleDoc> = order
        .iter()
        .map(|(policy, rule)| describe(*policy, rule, catalogue))
        .collect();
    let rules: Vec<Value> = docs.iter().map(rule_descriptor).collect();
    let mut out_results = Vec::new();
    for r in results {
        for (i, v) in r.verdict.violations.iter().enumerate() {
            let id = rule_id(v.policy, &v.rule);
            let index = seen.get(&id).copied().unwrap_or_default();
            out_results.push(result(r, v, &r.modes_of(i), &id, index));
        }
        if let Some(err) = &r.error {
            out_results.push(json!({
                "ruleId": "tollgate/evaluation-error",
                "level": "error",
                "message": {"text": format!("{} could not be evaluated: {err}", r.object.display())},
                "locations": [location(r)],
            }));
        }
    }
    let has_errors = results.iter().any(|r| r.error.is_some());
    let mut rules = rules;
    if has_errors {
        rules.push(json!({
            "id": "tollgate/evaluation-error",
            "name": "EvaluationError",
            "shortDescription": {"text": "An object could not be evaluated"},
            "fullDescription": {"text": "The object is malformed or a policy failed on it; it is refused."},
            "help": {"text": "Fix the object so it parses as a Kubernetes object of its kind."},
            "defaultConfiguration": {"level": "error"},
        }));
    }
    let doc = json!({
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "Tollgate",
                "semanticVersion": env!("CARGO_PKG_VERSION"),
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "invocations": [{
                "executionSuccessful": input_errors.is_empty(),
                "toolExecutionNotifications": input_errors
                    .iter()
                    .map(|e| json!({"level": "error", "message": {"text": e}}))
                    .collect::<Vec<_>>(),
            }],
            "columnKind": "unicodeCodePoints",
            "results": out_results,
        }],
    });
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}

/// `compliance/image-pinned`: rule ids are unique across policy sets.
fn rule_id(policy: PolicySet, rule: &str) -> String {
    format!("{}/{rule}", policy.as_str())
}

/// `ImagePinned`, from `image-pinned` or `allowPrivilegeEscalation`.
fn pascal(rule: &str) -> String {
    let mut out = String::new();
    let mut upper = true;
    for c in rule.chars() {
        if c.is_ascii_alphanumeric() {
            if upper {
                out.extend(c.to_uppercase());
            } else {
                out.push(c);
            }
            upper = false;
        } else {
            upper = true;
        }
    }
    out
}

fn rule_descriptor(doc: &RuleDoc) -> Value {
    let mut tags: Vec<String> = vec![
        "security".to_owned(),
        "kubernetes".to_owned(),
        doc.policy.as_str().to_owned(),
    ];
    tags.extend(doc.controls.iter().map(|c| c.to_string()));
    let mut markdown = format!("**{}**\n\n{}", doc.title, doc.help);
    if !doc.controls.is_empty() {
        markdown.push_str(&format!("\n\nControls: {}", controls_text(&doc.controls)));
    }
    let mut help_text = doc.help.clone();
    if !doc.controls.is_empty() {
        help_text.push_str(&format!("\nControls: {}", controls_text(&doc.controls)));
    }
    let mut d = json!({
        "id": rule_id(doc.policy, &doc.rule),
        "name": pascal(&doc.rule),
        "shortDescription": {"text": doc.title},
        "fullDescription": {"text": doc.title},
        "help": {"text": help_text, "markdown": markdown},
        "defaultConfiguration": {"level": "error"},
        "properties": {
            "tags": tags,
            "precision": "very-high",
            "problem.severity": "error",
            "security-severity": severity(doc.policy),
        },
    });
    if let (Some(uri), Some(map)) = (&doc.help_uri, d.as_object_mut()) {
        map.insert("helpUri".into(), json!(uri));
    }
    d
}

/// GitHub's severity scale: Pod Security high, compliance medium,
/// ownership low.
fn severity(policy: PolicySet) -> &'static str {
    match policy {
        PolicySet::PodSecurity => "8.0",
        PolicySet::Compliance
        | PolicySet::Constraints
        | PolicySet::Action
        | PolicySet::Injection => "5.0",
        PolicySet::Ownership => "3.0",
    }
}

fn level(action: EnforcementAction) -> &'static str {
    match action {
        EnforcementAction::Deny => "error",
        EnforcementAction::Warn => "warning",
        EnforcementAction::Audit => "note",
    }
}

fn result(
    r: &CheckResult,
    v: &Violation,
    modes: &[EnforcementAction],
    id: &str,
    index: usize,
) -> Value {
    let mut text = format!("{}: {}", r.object.display(), v.message);
    if let Some(path) = &v.path {
        text.push_str(&format!(" (field {path})"));
    }
    let loc = json!({
        "physicalLocation": physical_location(r),
        "logicalLocations": [{
            "name": r.object.name,
            "fullyQualifiedName": r.object.display(),
            "kind": "object",
        }],
    });
    let fingerprint = format!(
        "{}|{}|{}|{}|{}",
        r.object.kind,
        r.object.namespace,
        r.object.name,
        id,
        v.path.as_deref().unwrap_or("")
    );
    let mut out = json!({
        "ruleId": id,
        "ruleIndex": index,
        "level": level(v.action),
        "message": {"text": text},
        "locations": [loc],
        "partialFingerprints": {"tollgateObjectRule/v1": fingerprint},
    });
    let mut properties = serde_json::Map::new();
    if !v.controls.is_empty() {
        properties.insert(
            "controls".into(),
            json!(v.controls.iter().map(|c| c.to_string()).collect::<Vec<_>>()),
        );
    }
    if modes.len() > 1 {
        properties.insert(
            "modes".into(),
            json!(modes.iter().map(|m| m.as_str()).collect::<Vec<_>>()),
        );
    }
    if let (false, Some(map)) = (properties.is_empty(), out.as_object_mut()) {
        map.insert("properties".into(), Value::Object(properties));
    }
    out
}

fn physical_location(r: &CheckResult) -> Value {
    json!({
        "artifactLocation": {"uri": uri(&r.file)},
        "region": {"startLine": r.line.unwrap_or(1).max(1)},
    })
}

fn location(r: &CheckResult) -> Value {
    json!({"physicalLocation": physical_location(r)})
}

/// A relative URI reference for a manifest path: forward slashes,
/// percent-encoded; absolute paths become `file://` URIs; standard input
/// becomes `stdin`.
fn uri(file: &str) -> String {
    if file == "-" || file == "<stdin>" {
        return "stdin".to_owned();
    }
    let path = file.replace('\\', "/");
    let path = path.strip_prefix("./").unwrap_or(&path);
    let mut out = String::new();
    if path.starts_with('/') {
        out.push_str("file://");
    }
    for b in path.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                out.push(char::from(b));
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
