//! Reports of offline checks (`tollgate check`): pure formatting of
//! [`CheckResult`]s into `text` (grouped per object, with the fix), `json`,
//! `junit` (JUnit XML, as GitLab reads it) and `sarif` (SARIF 2.1.0, as
//! GitHub code scanning and GitLab read it), and the compliance evidence
//! report ([`evidence`]). No I/O: every function returns a `String`.

pub mod evidence;
mod junit;
mod locate;
mod rules;
mod sarif;

#[cfg(test)]
mod tests;

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::{Value, json};

use crate::{Control, EnforcementAction, PolicySet, Verdict, Violation};

pub use junit::junit;
pub use locate::document_lines;
pub use rules::{RuleDoc, describe};
pub use sarif::sarif;

/// The schema identifier of the JSON reports.
pub const API_VERSION: &str = "tollgate.dev/v1";

/// Which object a result is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    /// `apps/v1`.
    pub api_version: String,
    /// `Deployment`.
    pub kind: String,
    /// The namespace (`""` for cluster-scoped objects).
    pub namespace: String,
    /// The name (or the `generateName` prefix followed by `*`).
    pub name: String,
}

/// A rule that judged an object, passed or failed, with the controls it
/// evidences in the frameworks in scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evaluated {
    /// The policy set.
    pub policy: PolicySet,
    /// The rule id.
    pub rule: String,
    /// The controls it evidences.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub controls: Vec<Control>,
}

/// What an offline check found about one object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckResult {
    /// The manifest file (`<stdin>` for standard input).
    pub file: String,
    /// The 1-based line where the object's document starts, when known.
    pub line: Option<u32>,
    /// The object.
    pub object: ObjectRef,
    /// Every violation.
    pub verdict: Verdict,
    /// The rules that judged the object (for pass counts and evidence).
    pub evaluated: Vec<Evaluated>,
    /// The compliance frameworks in scope for the object (`SOC2`, ...).
    pub frameworks: Vec<String>,
    /// Notes that are not violations.
    pub notes: Vec<String>,
    /// Why the object could not be evaluated (counts as denied).
    pub error: Option<String>,
    /// Per violation (same index), every action of the modes that found
    /// it, strictest first, when more than its own (see
    /// [`CheckResult::fold_modes`]); shorter than `verdict.violations`
    /// when the last ones were found by one mode only.
    pub modes: Vec<Vec<EnforcementAction>>,
}

/// The outcome of one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// A violation denies it.
    Denied,
    /// Allowed, with warnings.
    Warned,
    /// Allowed (audit-mode violations are recorded only).
    Allowed,
    /// It could not be evaluated.
    Error,
}

/// Counts over a set of results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Objects judged.
    pub objects: usize,
    /// Objects denied.
    pub denied: usize,
    /// Objects allowed with warnings.
    pub warned: usize,
    /// Objects allowed.
    pub allowed: usize,
    /// Objects that could not be evaluated.
    pub errors: usize,
    /// Violations by action.
    pub violations: ViolationCounts,
}

/// Violations by enforcement action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ViolationCounts {
    /// That deny.
    pub deny: usize,
    /// That warn.
    pub warn: usize,
    /// Recorded only.
    pub audit: usize,
}

impl ObjectRef {
    /// The reference of a Kubernetes object given as JSON.
    pub fn of(object: &Value) -> ObjectRef {
        let s = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_owned();
        let meta = object.get("metadata");
        let mut name = s(meta.and_then(|m| m.get("name")));
        if name.is_empty() {
            let generate = s(meta.and_then(|m| m.get("generateName")));
            if !generate.is_empty() {
                name = format!("{generate}*");
            }
        }
        ObjectRef {
            api_version: s(object.get("apiVersion")),
            kind: s(object.get("kind")),
            namespace: s(meta.and_then(|m| m.get("namespace"))),
            name,
        }
    }

    /// `Deployment payments/agent`, `Namespace payments`.
    pub fn display(&self) -> String {
        let kind = if self.kind.is_empty() {
            "object"
        } else {
            &self.kind
        };
        let name = if self.name.is_empty() {
            "<unnamed>"
        } else {
            &self.name
        };
        if self.namespace.is_empty() || self.kind == "Namespace" {
            format!("{kind} {name}")
        } else {
            format!("{kind} {}/{name}", self.namespace)
        }
    }
}

impl Evaluated {
    /// A rule run.
    pub fn new(policy: PolicySet, rule: impl Into<String>, controls: Vec<Control>) -> Evaluated {
        Evaluated {
            policy,
            rule: rule.into(),
            controls,
        }
    }
}

impl CheckResult {
    /// An empty result for `object` found in `file` at `line`.
    pub fn new(file: impl Into<String>, line: Option<u32>, object: &Value) -> CheckResult {
        CheckResult {
            file: file.into(),
            line,
            object: ObjectRef::of(object),
            ..CheckResult::default()
        }
    }

    /// Adds what the compliance packs found: violations, the rules that ran
    /// (with their controls in the frameworks in scope) and those
    /// frameworks. Add compliance first: the frameworks scope the evidence
    /// of every other set.
    pub fn add_compliance(&mut self, evaluation: crate::compliance::Evaluation) {
        let catalogue = crate::compliance::Catalogue::builtin().ok();
        let frameworks: Vec<&str> = evaluation.frameworks.iter().map(String::as_str).collect();
        for rule in &evaluation.evaluated {
            let controls = catalogue
                .map(|c| c.controls(rule, Some(&frameworks)))
                .unwrap_or_default();
            self.evaluated.push(Evaluated::new(
                PolicySet::Compliance,
                rule.clone(),
                controls,
            ));
        }
        self.verdict.violations.extend(evaluation.violations);
        self.notes.extend(evaluation.warnings);
        for f in evaluation.frameworks {
            if !self.frameworks.contains(&f) {
                self.frameworks.push(f);
            }
        }
    }

    /// Adds what the ownership check found.
    pub fn add_ownership(&mut self, evaluation: crate::ownership::Evaluation) {
        for rule in evaluation.evaluated {
            let controls = crate::ownership::controls(&rule);
            self.evaluated
                .push(Evaluated::new(PolicySet::Ownership, rule, controls));
        }
        self.verdict.violations.extend(evaluation.violations);
    }

    /// Adds the Pod Security checks that ran (`checks`, e.g. from
    /// [`crate::pss::active_checks`]) and the violations found, both with the
    /// controls the catalogue maps each check's level to. Violations that
    /// carry no controls get them.
    pub fn add_pod_security<'a>(
        &mut self,
        checks: impl IntoIterator<Item = &'a str>,
        violations: Vec<crate::Violation>,
    ) {
        self.evaluated.extend(pod_security_evidence(checks));
        for mut v in violations {
            if v.controls.is_empty() {
                v.controls = pod_security_controls(&v.rule);
            }
            self.verdict.violations.push(v);
        }
    }

    /// Reports each finding once: violations that differ only in their
    /// action (Pod Security's enforce, warn and audit levels find the same
    /// fault) become one, with the strictest action, and [`Self::modes`]
    /// lists the actions of every mode that found it.
    pub fn fold_modes(&mut self) {
        let mut kept: Vec<Violation> = Vec::with_capacity(self.verdict.violations.len());
        let mut modes: Vec<Vec<EnforcementAction>> = Vec::new();
        for v in std::mem::take(&mut self.verdict.violations) {
            let same = kept.iter().position(|k| {
                k.policy == v.policy
                    && k.rule == v.rule
                    && k.path == v.path
                    && k.container == v.container
                    && k.message == v.message
            });
            match same.and_then(|i| kept.get_mut(i).zip(modes.get_mut(i))) {
                Some((k, m)) => {
                    if !m.contains(&v.action) {
                        m.push(v.action);
                        m.sort_by_key(|a| strictness(*a));
                    }
                    if strictness(v.action) < strictness(k.action) {
                        k.action = v.action;
                    }
                    for c in v.controls {
                        if !k.controls.contains(&c) {
                            k.controls.push(c);
                        }
                    }
                }
                None => {
                    modes.push(vec![v.action]);
                    kept.push(v);
                }
            }
        }
        self.verdict.violations = kept;
        while modes.last().is_some_and(|m| m.len() < 2) {
            modes.pop();
        }
        for m in &mut modes {
            if m.len() < 2 {
                m.clear();
            }
        }
        self.modes = modes;
    }

    /// The actions of every mode that found violation `index` (its own
    /// action alone when one mode found it).
    pub fn modes_of(&self, index: usize) -> Vec<EnforcementAction> {
        match self.modes.get(index) {
            Some(m) if !m.is_empty() => m.clone(),
            _ => self
                .verdict
                .violations
                .get(index)
                .map(|v| vec![v.action])
                .unwrap_or_default(),
        }
    }

    /// The object's outcome.
    pub fn outcome(&self) -> Outcome {
        if self.error.is_some() {
            Outcome::Error
        } else if !self.verdict.allowed() {
            Outcome::Denied
        } else if self
            .verdict
            .with_action(EnforcementAction::Warn)
            .next()
            .is_some()
        {
            Outcome::Warned
        } else {
            Outcome::Allowed
        }
    }

    /// `file:line` or `file`.
    pub fn location(&self) -> String {
        match self.line {
            Some(line) => format!("{}:{line}", self.file),
            None => self.file.clone(),
        }
    }
}

/// The controls the catalogue maps a Pod Security check's level to.
pub fn pod_security_controls(check: &str) -> Vec<Control> {
    let catalogue = crate::compliance::Catalogue::builtin().ok();
    crate::pss::registry()
        .iter()
        .find(|c| c.id == check)
        .and_then(|c| catalogue.map(|cat| cat.pod_security_controls(c.level)))
        .unwrap_or_default()
}

/// The Pod Security checks `checks` as rules that ran, with their controls.
pub fn pod_security_evidence<'a>(checks: impl IntoIterator<Item = &'a str>) -> Vec<Evaluated> {
    checks
        .into_iter()
        .map(|check| Evaluated::new(PolicySet::PodSecurity, check, pod_security_controls(check)))
        .collect()
}

/// Counts over `results`.
pub fn summary(results: &[CheckResult]) -> Summary {
    let mut s = Summary {
        objects: results.len(),
        ..Summary::default()
    };
    for r in results {
        match r.outcome() {
            Outcome::Denied => s.denied += 1,
            Outcome::Warned => s.warned += 1,
            Outcome::Allowed => s.allowed += 1,
            Outcome::Error => s.errors += 1,
        }
        for v in &r.verdict.violations {
            match v.action {
                EnforcementAction::Deny => s.violations.deny += 1,
                EnforcementAction::Warn => s.violations.warn += 1,
                EnforcementAction::Audit => s.violations.audit += 1,
            }
        }
    }
    s
}

/// Orders actions from the strictest (`deny`) to the mildest (`audit`).
fn strictness(action: EnforcementAction) -> u8 {
    match action {
        EnforcementAction::Deny => 0,
        EnforcementAction::Warn => 1,
        EnforcementAction::Audit => 2,
    }
}

/// `deny`, `warn` or `audit`.
fn action_str(action: EnforcementAction) -> &'static str {
    match action {
        EnforcementAction::Deny => "deny",
        EnforcementAction::Warn => "warn",
        EnforcementAction::Audit => "audit",
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn controls_text(controls: &[Control]) -> String {
    controls
        .iter()
        .map(Control::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The human report: one block per object with its outcome and, for each
/// violation, the action, the rule, the field, what to change and the
/// controls; then a summary line.
pub fn text(results: &[CheckResult]) -> String {
    let mut out = String::new();
    for r in results {
        let status = match r.outcome() {
            Outcome::Error => "ERROR".to_owned(),
            Outcome::Denied => {
                let warned = r.verdict.with_action(EnforcementAction::Warn).count();
                format!(
                    "DENIED ({}{})",
                    plural(
                        r.verdict.with_action(EnforcementAction::Deny).count(),
                        "violation"
                    ),
                    if warned > 0 {
                        format!(", {}", plural(warned, "warning"))
                    } else {
                        String::new()
                    }
                )
            }
            Outcome::Warned => format!(
                "allowed with warnings ({})",
                plural(
                    r.verdict.with_action(EnforcementAction::Warn).count(),
                    "warning"
                )
            ),
            Outcome::Allowed => "allowed".to_owned(),
        };
        let _ = writeln!(out, "{}: {}: {status}", r.location(), r.object.display());
        if let Some(err) = &r.error {
            let _ = writeln!(out, "  error: {err}");
        }
        for (i, v) in r.verdict.violations.iter().enumerate() {
            write_violation(&mut out, v, &r.modes_of(i));
        }
        for note in &r.notes {
            let _ = writeln!(out, "  note: {note}");
        }
    }
    let s = summary(results);
    let _ = writeln!(
        out,
        "{}: {} denied, {} allowed with warnings, {} allowed{}; {} ({} deny, {} warn, {} audit)",
        plural(s.objects, "object"),
        s.denied,
        s.warned,
        s.allowed,
        if s.errors > 0 {
            format!(", {} could not be evaluated", s.errors)
        } else {
            String::new()
        },
        plural(
            s.violations.deny + s.violations.warn + s.violations.audit,
            "violation"
        ),
        s.violations.deny,
        s.violations.warn,
        s.violations.audit
    );
    out
}

fn write_violation(out: &mut String, v: &Violation, modes: &[EnforcementAction]) {
    let also: Vec<&str> = modes
        .iter()
        .filter(|m| **m != v.action)
        .map(|m| action_str(*m))
        .collect();
    let _ = writeln!(
        out,
        "  {:<5} {}/{}{}{}",
        action_str(v.action),
        v.policy.as_str(),
        v.rule,
        v.path
            .as_deref()
            .map(|p| format!(" at {p}"))
            .unwrap_or_default(),
        if also.is_empty() {
            String::new()
        } else {
            format!(" (also {})", also.join(", "))
        }
    );
    let _ = writeln!(out, "        {}", v.message);
    if !v.controls.is_empty() {
        let _ = writeln!(out, "        controls: {}", controls_text(&v.controls));
    }
}

/// The machine-readable report: `{"apiVersion", "kind": "CheckReport",
/// "summary", "results": [...], "errors": [...]}`, one result per object
/// with its outcome, violations (with controls) and the rules evaluated;
/// `errors` lists the inputs that could not be read or parsed (each
/// `{"message"}`), and `summary.errors` counts them with the objects that
/// could not be evaluated. Compact: one line; `evaluated` lists rule ids
/// (`compliance/image-pinned`) and `rules` gives each rule's controls once;
/// a violation found by several modes carries `modes` (`["deny","audit"]`).
pub fn json(results: &[CheckResult], input_errors: &[String]) -> String {
    // Each rule's controls once for the whole report (the union over the
    // objects, each of which lists the frameworks in scope for it).
    let mut rules: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let items: Vec<Value> = results
        .iter()
        .map(|r| {
            let evaluated: Vec<String> = r
                .evaluated
                .iter()
                .map(|e| {
                    let id = format!("{}/{}", e.policy.as_str(), e.rule);
                    let controls = rules.entry(id.clone()).or_default();
                    for c in &e.controls {
                        let c = c.to_string();
                        if !controls.contains(&c) {
                            controls.push(c);
                        }
                    }
                    id
                })
                .collect();
            let violations: Vec<Value> = r
                .verdict
                .violations
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let mut item = serde_json::to_value(v).unwrap_or(Value::Null);
                    let modes = r.modes_of(i);
                    if let (true, Some(map)) = (modes.len() > 1, item.as_object_mut()) {
                        map.insert(
                            "modes".into(),
                            json!(modes.into_iter().map(action_str).collect::<Vec<_>>()),
                        );
                    }
                    item
                })
                .collect();
            let mut item = json!({
                "file": r.file,
                "line": r.line,
                "object": r.object,
                "outcome": r.outcome(),
                "violations": violations,
                "evaluated": evaluated,
            });
            if let Some(map) = item.as_object_mut() {
                if !r.frameworks.is_empty() {
                    map.insert("frameworks".into(), json!(r.frameworks));
                }
                if !r.notes.is_empty() {
                    map.insert("notes".into(), json!(r.notes));
                }
                if let Some(e) = &r.error {
                    map.insert("error".into(), json!(e));
                }
            }
            item
        })
        .collect();
    let rules: serde_json::Map<String, Value> = rules
        .into_iter()
        .map(|(id, controls)| (id, json!({"controls": controls})))
        .collect();
    let mut counts = summary(results);
    counts.errors += input_errors.len();
    let errors: Vec<Value> = input_errors.iter().map(|e| json!({"message": e})).collect();
    let doc = json!({
        "apiVersion": API_VERSION,
        "kind": "CheckReport",
        "summary": counts,
        "results": items,
        "rules": rules,
        "errors": errors,
    });
    let mut text = serde_json::to_string(&doc).unwrap_or_default();
    text.push('\n');
    text
}
