//! JUnit XML, as GitLab's test reports read it: one `<testsuite>` per
//! policy set, one `<testcase>` per object and rule (every rule that judged
//! the object, so passes are counted too), a `<failure>` per denied rule
//! with every message. Warn- and audit-mode violations do not fail a test
//! case (they do not fail the check either); their messages go to
//! `<system-out>`. Objects that could not be evaluated are `<error>`s in a
//! suite of their own, and so are inputs that could not be read or parsed
//! (suite `input`).

use std::fmt::Write as _;

use super::{CheckResult, action_str, controls_text};
use crate::{EnforcementAction, PolicySet, Violation};

/// The order suites appear in.
const SETS: [PolicySet; 6] = [
    PolicySet::PodSecurity,
    PolicySet::Ownership,
    PolicySet::Compliance,
    PolicySet::Constraints,
    PolicySet::Action,
    PolicySet::Injection,
];

struct Case<'a> {
    result: &'a CheckResult,
    rule: &'a str,
    violations: Vec<&'a Violation>,
}

/// The JUnit XML report of `results` and of the inputs that could not be
/// read or parsed.
pub fn junit(results: &[CheckResult], input_errors: &[String]) -> String {
    let mut suites = String::new();
    let (mut total, mut total_failures, mut total_errors) = (0, 0, 0);
    for set in SETS {
        let cases = cases(results, set);
        if cases.is_empty() {
            continue;
        }
        let failures = cases
            .iter()
            .filter(|c| {
                c.violations
                    .iter()
                    .any(|v| v.action == EnforcementAction::Deny)
            })
            .count();
        total += cases.len();
        total_failures += failures;
        let _ = writeln!(
            suites,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\" time=\"0\">",
            set.as_str(),
            cases.len()
        );
        for case in &cases {
            write_case(&mut suites, case);
        }
        suites.push_str("  </testsuite>\n");
    }
    let errored: Vec<&CheckResult> = results.iter().filter(|r| r.error.is_some()).collect();
    if !errored.is_empty() {
        total += errored.len();
        total_errors += errored.len();
        let _ = writeln!(
            suites,
            "  <testsuite name=\"evaluation\" tests=\"{n}\" failures=\"0\" errors=\"{n}\" skipped=\"0\" time=\"0\">",
            n = errored.len()
        );
        for r in errored {
            let message = r.error.as_deref().unwrap_or_default();
            let _ = writeln!(
                suites,
                "    <testcase name=\"evaluate\" classname=\"{}\" file=\"{}\" time=\"0\">\n      <error type=\"error\" message=\"{}\">{}</error>\n    </testcase>",
                escape(&r.object.display()),
                escape(&r.file),
                escape(message),
                escape(&format!("{}: {message}", r.location()))
            );
        }
        suites.push_str("  </testsuite>\n");
    }
    if !input_errors.is_empty() {
        total += input_errors.len();
        total_errors += input_errors.len();
        let _ = writeln!(
            suites,
            "  <testsuite name=\"input\" tests=\"{n}\" failures=\"0\" errors=\"{n}\" skipped=\"0\" time=\"0\">",
            n = input_errors.len()
        );
        for message in input_errors {
            let _ = writeln!(
                suites,
                "    <testcase name=\"read\" classname=\"input\" time=\"0\">\n      <error type=\"input\" message=\"{m}\">{m}</error>\n    </testcase>",
                m = escape(message)
            );
        }
        suites.push_str("  </testsuite>\n");
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"tollgate check\" tests=\"{total}\" failures=\"{total_failures}\" errors=\"{total_errors}\" skipped=\"0\" time=\"0\">\n{suites}</testsuites>\n"
    )
}

/// One case per object and rule of `set`: every rule evaluated, plus any
/// rule that reported a violation without being listed as evaluated.
fn cases(results: &[CheckResult], set: PolicySet) -> Vec<Case<'_>> {
    let mut out = Vec::new();
    for r in results.iter().filter(|r| r.error.is_none()) {
        let mut rules: Vec<&str> = r
            .evaluated
            .iter()
            .filter(|e| e.policy == set)
            .map(|e| e.rule.as_str())
            .collect();
        for v in r.verdict.violations.iter().filter(|v| v.policy == set) {
            if !rules.contains(&v.rule.as_str()) {
                rules.push(&v.rule);
            }
        }
        for rule in rules {
            let violations = r
                .verdict
                .violations
                .iter()
                .filter(|v| v.policy == set && v.rule == rule)
                .collect();
            out.push(Case {
                result: r,
                rule,
                violations,
            });
        }
    }
    out
}

fn write_case(out: &mut String, case: &Case<'_>) {
    let r = case.result;
    let _ = write!(
        out,
        "    <testcase name=\"{}\" classname=\"{}\" file=\"{}\" time=\"0\"",
        escape(case.rule),
        escape(&r.object.display()),
        escape(&r.file)
    );
    if case.violations.is_empty() {
        out.push_str("/>\n");
        return;
    }
    out.push_str(">\n");
    let denied: Vec<&&Violation> = case
        .violations
        .iter()
        .filter(|v| v.action == EnforcementAction::Deny)
        .collect();
    if let Some(first) = denied.first() {
        let body: Vec<String> = denied.iter().map(|v| describe(r, v)).collect();
        let _ = writeln!(
            out,
            "      <failure type=\"deny\" message=\"{}\">{}</failure>",
            escape(&first.message),
            escape(&body.join("\n\n"))
        );
    }
    let others: Vec<String> = case
        .violations
        .iter()
        .filter(|v| v.action != EnforcementAction::Deny)
        .map(|v| format!("{}: {}", action_str(v.action), describe(r, v)))
        .collect();
    if !others.is_empty() {
        let _ = writeln!(
            out,
            "      <system-out>{}</system-out>",
            escape(&others.join("\n\n"))
        );
    }
    out.push_str("    </testcase>\n");
}

fn describe(r: &CheckResult, v: &Violation) -> String {
    let mut text = String::new();
    if let Some(path) = &v.path {
        let _ = write!(text, "{path}: ");
    }
    text.push_str(&v.message);
    let _ = write!(text, "\n{} ({})", r.object.display(), r.location());
    if !v.controls.is_empty() {
        let _ = write!(text, "\ncontrols: {}", controls_text(&v.controls));
    }
    text
}

/// Escapes text for XML content and attributes, dropping the characters
/// XML 1.0 cannot carry (most control characters).
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}
