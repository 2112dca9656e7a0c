//! Denial messages and admission warnings, phrased for the person running
//! `kubectl apply`: one line per violation, each naming the field, the fix
//! and the rule, all of them at once.
//!
//! kube-apiserver passes warnings to clients as HTTP `Warning` headers; it
//! may truncate a warning over 256 characters and drops warnings once 4096
//! characters have been added, so warnings are cut to fit, and a final line
//! says how many were left out.

use crate::Violation;

use super::Subject;

/// The longest warning kube-apiserver passes on untruncated.
pub const MAX_WARNING_CHARS: usize = 256;
/// The total warning text kube-apiserver accepts for one request.
pub const MAX_WARNINGS_TOTAL_CHARS: usize = 4096;

/// The most violations a denial message lists; the rest are counted.
pub const MAX_DENIAL_LINES: usize = 50;
/// The longest line of a denial message.
pub const MAX_DENIAL_LINE_CHARS: usize = 512;

/// `Deployment "web" in namespace "team-a" has 2 policy violations:` and
/// one `- path: message [policy:rule]` line per violation, at most
/// [`MAX_DENIAL_LINES`] of them (each cut to [`MAX_DENIAL_LINE_CHARS`]),
/// then `- … and N more`: the answer stays small whatever the object holds.
pub fn denial(subject: &Subject, violations: &[&Violation]) -> String {
    let mut out = format!(
        "{} has {} policy violation{}:",
        describe(subject),
        violations.len(),
        if violations.len() == 1 { "" } else { "s" }
    );
    for v in violations.iter().take(MAX_DENIAL_LINES) {
        out.push_str("\n- ");
        out.push_str(&truncate(&line(v), MAX_DENIAL_LINE_CHARS));
    }
    if let Some(more) = violations
        .len()
        .checked_sub(MAX_DENIAL_LINES)
        .filter(|n| *n > 0)
    {
        out.push_str(&format!(
            "\n- … and {more} more; run `tollgate check` on the manifest to see all"
        ));
    }
    sanitize_multiline(&out)
}

/// The warnings for warn-mode violations, then the notes.
pub fn warnings(subject: &Subject, violations: &[&Violation], notes: &[String]) -> Vec<String> {
    let mut lines = Vec::with_capacity(violations.len() + notes.len() + 1);
    if !violations.is_empty() {
        lines.push(format!(
            "{} has {} policy violation{} (warn mode, not enforced):",
            describe(subject),
            violations.len(),
            if violations.len() == 1 { "" } else { "s" }
        ));
        lines.extend(violations.iter().map(|v| line(v)));
    }
    lines.extend(notes.iter().cloned());
    fit(lines)
}

/// `path: message [policy:rule]`, or `message [policy:rule]` without a path.
pub fn line(v: &Violation) -> String {
    match &v.path {
        Some(path) if !path.is_empty() => {
            format!("{path}: {} [{}:{}]", v.message, v.policy.as_str(), v.rule)
        }
        _ => format!("{} [{}:{}]", v.message, v.policy.as_str(), v.rule),
    }
}

fn describe(subject: &Subject) -> String {
    let kind = if subject.kind.is_empty() {
        "object"
    } else {
        &subject.kind
    };
    let mut out = if subject.name.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind} {:?}", subject.name)
    };
    if !subject.namespace.is_empty() && subject.kind != "Namespace" {
        out.push_str(&format!(" in namespace {:?}", subject.namespace));
    }
    out
}

/// Applies kube-apiserver's warning limits.
fn fit(lines: Vec<String>) -> Vec<String> {
    let total_lines = lines.len();
    let mut out = Vec::with_capacity(total_lines);
    let mut used = 0;
    // Room kept for the final "N more" line.
    const TAIL: usize = 100;
    for (i, line) in lines.into_iter().enumerate() {
        let line = truncate(&sanitize(&line), MAX_WARNING_CHARS);
        let len = line.chars().count();
        let last = i + 1 == total_lines;
        let budget = if last {
            MAX_WARNINGS_TOTAL_CHARS
        } else {
            MAX_WARNINGS_TOTAL_CHARS - TAIL
        };
        if used + len > budget {
            let left = total_lines - i;
            out.push(format!(
                "{left} more warning{} not shown; run `tollgate check` on the manifest to see all",
                if left == 1 { "" } else { "s" }
            ));
            return out;
        }
        used += len;
        out.push(line);
    }
    out
}

/// Cuts `text` to at most `max` characters, ending in `…` when cut.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Replaces control characters (a warning becomes an HTTP header value).
pub fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Like [`sanitize`], keeping line breaks (denial messages are multi-line).
fn sanitize_multiline(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() && c != '\n' { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EnforcementAction, PolicySet};

    fn violation(path: &str, message: &str) -> Violation {
        Violation {
            policy: PolicySet::PodSecurity,
            rule: "allowPrivilegeEscalation".into(),
            message: message.into(),
            path: Some(path.into()),
            container: Some("agent".into()),
            controls: vec![],
            action: EnforcementAction::Deny,
        }
    }

    fn subject() -> Subject {
        Subject {
            kind: "Deployment".into(),
            name: "web".into(),
            namespace: "team-a".into(),
        }
    }

    #[test]
    fn denial_lists_every_violation_on_its_own_line() {
        let a = violation(
            "spec.template.spec.containers[0].securityContext.allowPrivilegeEscalation",
            "container \"agent\" must set securityContext.allowPrivilegeEscalation=false (restricted, v1.37)",
        );
        let b = violation(
            "spec.template.spec.hostNetwork",
            "must not set hostNetwork=true\r",
        );
        let text = denial(&subject(), &[&a, &b]);
        assert_eq!(
            text,
            "Deployment \"web\" in namespace \"team-a\" has 2 policy violations:\n\
             - spec.template.spec.containers[0].securityContext.allowPrivilegeEscalation: container \"agent\" must set securityContext.allowPrivilegeEscalation=false (restricted, v1.37) [pod-security:allowPrivilegeEscalation]\n\
             - spec.template.spec.hostNetwork: must not set hostNetwork=true  [pod-security:allowPrivilegeEscalation]"
        );
    }

    #[test]
    fn warnings_fit_kube_apiserver_limits() {
        let long = "x".repeat(1000);
        let many: Vec<Violation> = (0..100)
            .map(|i| violation(&format!("spec.containers[{i}]"), &long))
            .collect();
        let refs: Vec<&Violation> = many.iter().collect();
        let out = warnings(&subject(), &refs, &[]);
        assert!(out.iter().all(|w| w.chars().count() <= MAX_WARNING_CHARS));
        let total: usize = out.iter().map(|w| w.chars().count()).sum();
        assert!(total <= MAX_WARNINGS_TOTAL_CHARS, "{total}");
        let last = out.last().unwrap();
        assert!(last.contains("more warnings not shown"), "{last}");
        assert!(out[1].ends_with('…'));
        assert!(out[0].contains("100 policy violations (warn mode"));
    }

    #[test]
    fn denial_lists_the_first_violations_and_counts_the_rest() {
        let long = "y".repeat(10_000);
        let many: Vec<Violation> = (0..100_000)
            .map(|i| violation(&format!("spec.containers[{i}]"), &long))
            .collect();
        let refs: Vec<&Violation> = many.iter().collect();
        let text = denial(&subject(), &refs);
        assert!(text.starts_with(
            "Deployment \"web\" in namespace \"team-a\" has 100000 policy violations:"
        ));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1 + MAX_DENIAL_LINES + 1);
        assert!(
            lines
                .iter()
                .all(|l| l.chars().count() <= MAX_DENIAL_LINE_CHARS + 2)
        );
        assert_eq!(
            lines.last().copied(),
            Some("- … and 99950 more; run `tollgate check` on the manifest to see all")
        );
        assert!(text.len() < 64 * 1024, "{}", text.len());
    }

    #[test]
    fn few_short_warnings_pass_unchanged() {
        let v = violation("spec.hostPID", "must not set hostPID=true");
        let out = warnings(&subject(), &[&v], &["note\nwith newline".into()]);
        assert_eq!(
            out,
            [
                "Deployment \"web\" in namespace \"team-a\" has 1 policy violation (warn mode, not enforced):",
                "spec.hostPID: must not set hostPID=true [pod-security:allowPrivilegeEscalation]",
                "note with newline",
            ]
        );
    }
}
