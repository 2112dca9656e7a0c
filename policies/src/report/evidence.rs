//! The compliance evidence report (`tollgate check --report`): results
//! grouped by framework and control, with how many objects passed and
//! failed each control and which objects failed it, why.
//!
//! An object counts for a framework when the framework is in scope for it
//! (a profile selects it in the object's namespace). It passes a control
//! when at least one rule evidencing the control judged it and none of
//! those rules found a violation, whatever the violation's enforcement
//! action: a warn-mode violation is not enforced, but the control is not
//! met either. Every control of the framework is listed, including those no
//! rule judged, so gaps in the evidence are visible.

use std::fmt::Write as _;

use serde::Serialize;

use super::{API_VERSION, CheckResult, ObjectRef, action_str};
use crate::compliance::Catalogue;
use crate::{Control, PolicySet};

/// The evidence report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EvidenceReport {
    /// Objects judged, in scope of any framework or not.
    pub objects: usize,
    /// One entry per framework in scope of at least one object, in
    /// catalogue order.
    pub frameworks: Vec<FrameworkEvidence>,
}

/// The evidence for one framework.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FrameworkEvidence {
    /// `SOC2`.
    pub id: String,
    /// The framework's name and edition.
    pub title: String,
    /// Objects in scope of the framework.
    pub objects: usize,
    /// Controls that passed (judged, no failure).
    pub passed: usize,
    /// Controls with at least one failing object.
    pub failed: usize,
    /// Controls no rule judged.
    pub not_evaluated: usize,
    /// Every control of the framework, in catalogue order.
    pub controls: Vec<ControlEvidence>,
}

/// Whether a control is met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Every object judged passed.
    Pass,
    /// At least one object failed.
    Fail,
    /// No rule evidencing the control judged any object.
    NotEvaluated,
}

/// The evidence for one control.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ControlEvidence {
    /// The control id (`CC6.1`).
    pub id: String,
    /// Its short title.
    pub title: String,
    /// Pass, fail or not evaluated.
    pub status: Status,
    /// The catalogue rules that evidence it (`compliance/image-pinned`).
    pub rules: Vec<String>,
    /// Objects that passed it.
    pub passed_objects: usize,
    /// Objects that failed it.
    pub failed_objects: usize,
    /// Every failure: object, rule and message.
    pub failures: Vec<Failure>,
}

/// One object failing a control.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// The object.
    pub object: ObjectRef,
    /// The manifest file.
    pub file: String,
    /// The line of the object, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// `compliance/image-pinned`.
    pub rule: String,
    /// `deny`, `warn` or `audit`.
    pub action: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// Builds the evidence report from check results, with control titles from
/// `catalogue` (the built-in one when `None`).
pub fn build(results: &[CheckResult], catalogue: Option<&Catalogue>) -> EvidenceReport {
    let catalogue = catalogue.or_else(|| Catalogue::builtin().ok());
    let mut frameworks = Vec::new();
    for framework in catalogue.map(Catalogue::frameworks).unwrap_or_default() {
        let in_scope: Vec<&CheckResult> = results
            .iter()
            .filter(|r| r.error.is_none() && r.frameworks.contains(&framework.id))
            .collect();
        if in_scope.is_empty() {
            continue;
        }
        let mut fe = FrameworkEvidence {
            id: framework.id.clone(),
            title: framework.title.clone(),
            objects: in_scope.len(),
            passed: 0,
            failed: 0,
            not_evaluated: 0,
            controls: Vec::new(),
        };
        for (id, title) in &framework.controls {
            let control = Control {
                framework: framework.id.clone(),
                id: id.clone(),
            };
            let ce = control_evidence(&control, title, &in_scope, catalogue);
            match ce.status {
                Status::Pass => fe.passed += 1,
                Status::Fail => fe.failed += 1,
                Status::NotEvaluated => fe.not_evaluated += 1,
            }
            fe.controls.push(ce);
        }
        frameworks.push(fe);
    }
    EvidenceReport {
        objects: results.len(),
        frameworks,
    }
}

fn control_evidence(
    control: &Control,
    title: &str,
    results: &[&CheckResult],
    catalogue: Option<&Catalogue>,
) -> ControlEvidence {
    let rules: Vec<String> = catalogue
        .map(|c| {
            c.rules()
                .iter()
                .filter(|r| r.controls.contains(control))
                .map(|r| format!("{}/{}", r.policy.as_str(), r.id))
                .collect()
        })
        .unwrap_or_default();
    let mut ce = ControlEvidence {
        id: control.id.clone(),
        title: title.to_owned(),
        status: Status::NotEvaluated,
        rules,
        passed_objects: 0,
        failed_objects: 0,
        failures: Vec::new(),
    };
    for r in results {
        let judged: Vec<(PolicySet, &str)> = r
            .evaluated
            .iter()
            .filter(|e| e.controls.contains(control))
            .map(|e| (e.policy, e.rule.as_str()))
            .collect();
        let failing: Vec<_> = r
            .verdict
            .violations
            .iter()
            .filter(|v| {
                v.controls.contains(control) || judged.contains(&(v.policy, v.rule.as_str()))
            })
            .collect();
        if judged.is_empty() && failing.is_empty() {
            continue;
        }
        if failing.is_empty() {
            ce.passed_objects += 1;
            continue;
        }
        ce.failed_objects += 1;
        for v in failing {
            ce.failures.push(Failure {
                object: r.object.clone(),
                file: r.file.clone(),
                line: r.line,
                rule: format!("{}/{}", v.policy.as_str(), v.rule),
                action: action_str(v.action),
                message: v.message.clone(),
            });
        }
    }
    ce.status = if ce.failed_objects > 0 {
        Status::Fail
    } else if ce.passed_objects > 0 {
        Status::Pass
    } else {
        Status::NotEvaluated
    };
    ce
}

/// The evidence report as text.
pub fn text(report: &EvidenceReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Compliance evidence: {} object{} judged",
        report.objects,
        if report.objects == 1 { "" } else { "s" }
    );
    if report.frameworks.is_empty() {
        out.push_str(
            "No compliance framework is in scope: select profiles with the namespace label compliance.tollgate.dev/profiles or compliance.profiles in the config.\n",
        );
    }
    for f in &report.frameworks {
        let _ = writeln!(
            out,
            "\n{} ({}): {} object{} in scope; {} control{} pass, {} fail, {} not evaluated",
            f.id,
            f.title,
            f.objects,
            if f.objects == 1 { "" } else { "s" },
            f.passed,
            if f.passed == 1 { "" } else { "s" },
            f.failed,
            f.not_evaluated
        );
        for c in &f.controls {
            let status = match c.status {
                Status::Pass => "PASS",
                Status::Fail => "FAIL",
                Status::NotEvaluated => "n/a ",
            };
            let _ = writeln!(out, "  {status}  {:<22} {}", c.id, c.title);
            match c.status {
                Status::NotEvaluated => {
                    let _ = writeln!(
                        out,
                        "        no rule evidencing this control judged an object{}",
                        if c.rules.is_empty() {
                            " (no built-in rule maps to it)".to_owned()
                        } else {
                            format!(" (rules: {})", c.rules.join(", "))
                        }
                    );
                }
                _ => {
                    let _ = writeln!(
                        out,
                        "        objects: {} passed, {} failed; rules: {}",
                        c.passed_objects,
                        c.failed_objects,
                        c.rules.join(", ")
                    );
                }
            }
            for failure in &c.failures {
                let location = match failure.line {
                    Some(l) => format!("{}:{l}", failure.file),
                    None => failure.file.clone(),
                };
                let _ = writeln!(
                    out,
                    "        - {} ({location}) {} [{}]: {}",
                    failure.object.display(),
                    failure.rule,
                    failure.action,
                    failure.message
                );
            }
        }
    }
    out
}

/// The evidence report as JSON: `{"apiVersion", "kind": "EvidenceReport",
/// "objects", "frameworks": [...]}`.
pub fn json(report: &EvidenceReport) -> String {
    let mut doc = serde_json::json!({
        "apiVersion": API_VERSION,
        "kind": "EvidenceReport",
    });
    if let (Some(obj), Ok(serde_json::Value::Object(body))) =
        (doc.as_object_mut(), serde_json::to_value(report))
    {
        obj.extend(body);
    }
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}
