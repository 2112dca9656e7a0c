//! The one-line text form for people: `key=value` pairs (logfmt), one event
//! per line, so `grep outcome=deny`, `grep ns=payments` and `awk` work.
//!
//! ```text
//! 2025-11-24T10:15:30.25Z seq=42 id=0199c1a2-... priority=p0-escalate outcome=deny source=webhook ns=payments user=alice@example.com owner=team-payments tier=critical protocol=admission verb=CREATE target="apps/v1/Deployment payments/checkout" rule=pss.restricted reason="container \"app\" must ..." controls="PCI-DSS 2.2.5,NIST 800-53 AC-6" latency_us=310
//! ```

use std::fmt::Write;

use crate::Event;

fn value(out: &mut String, v: &str) {
    let plain = !v.is_empty()
        && v.chars()
            .all(|c| !c.is_whitespace() && c != '"' && c != '=' && c != '\\' && !c.is_control());
    if plain {
        out.push_str(v);
        return;
    }
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn pair(out: &mut String, key: &str, v: Option<&str>) {
    if let Some(v) = v {
        out.push(' ');
        out.push_str(key);
        out.push('=');
        value(out, v);
    }
}

/// The event as one line (no newline).
pub fn line(seq: u64, event: &Event) -> String {
    let mut out = String::with_capacity(256);
    value(&mut out, &event.time);
    let seq = seq.to_string();
    pair(&mut out, "seq", Some(&seq));
    pair(&mut out, "id", Some(&event.id));
    pair(&mut out, "priority", Some(event.priority.as_str()));
    pair(&mut out, "outcome", Some(event.decision.outcome.as_str()));
    pair(&mut out, "source", Some(event.source.as_str()));
    let a = &event.actor;
    pair(&mut out, "ns", a.namespace.as_deref());
    pair(&mut out, "user", a.user.as_deref());
    pair(&mut out, "sa", a.service_account.as_deref());
    pair(&mut out, "pod", a.pod.as_deref());
    pair(&mut out, "agent", a.agent.as_deref());
    let o = &event.ownership;
    pair(&mut out, "owner", o.owner.as_deref());
    pair(&mut out, "tier", o.tier.as_deref());
    pair(&mut out, "oncall", o.oncall.as_deref());
    pair(&mut out, "protocol", Some(&event.action.protocol));
    pair(&mut out, "verb", Some(&event.action.verb));
    pair(&mut out, "target", Some(&event.action.target));
    pair(&mut out, "rule", event.decision.rule.as_deref());
    pair(&mut out, "reason", event.decision.reason.as_deref());
    if !event.decision.controls.is_empty() {
        pair(
            &mut out,
            "controls",
            Some(&event.decision.controls.join(",")),
        );
    }
    let latency = event.latency_us.to_string();
    pair(&mut out, "latency_us", Some(&latency));
    if !event.redactions.is_empty() {
        pair(&mut out, "redacted", Some(&event.redactions.join(",")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Actor, Decision, EventAction, Outcome, Ownership, Source};

    #[test]
    fn one_grep_friendly_line() {
        let mut e = Event::new(
            Source::Webhook,
            Actor {
                namespace: Some("payments".into()),
                ..Actor::default()
            },
            Ownership::default(),
            EventAction {
                protocol: "admission".into(),
                verb: "CREATE".into(),
                target: "apps/v1/Deployment payments/checkout".into(),
                ..EventAction::default()
            },
            Decision {
                outcome: Outcome::Deny,
                rule: Some("r".into()),
                reason: Some("bad \"x\"\nnext".into()),
                controls: vec!["A 1".into(), "B".into()],
            },
            3,
        );
        e.time = "2025-11-24T10:15:30Z".into();
        let l = line(9, &e);
        assert!(!l.contains('\n'));
        assert!(l.starts_with("2025-11-24T10:15:30Z seq=9 id="), "{l}");
        assert!(
            l.contains(" outcome=deny source=webhook ns=payments "),
            "{l}"
        );
        assert!(
            l.contains(r#" target="apps/v1/Deployment payments/checkout" "#),
            "{l}"
        );
        assert!(
            l.contains(r#" reason="bad \"x\"\nnext" controls="A 1,B" latency_us=3"#),
            "{l}"
        );
    }
}
