//! Golden redaction cases: one YAML file per case under
//! `testdata/redaction/`, each an input (target, reason, attributes) and the
//! expected scrubbed fields and recorded kinds.

use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::*;
use crate::{Actor, Decision, EventAction, Outcome, Ownership, Source};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    description: String,
    input: Fields,
    expect: Expect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fields {
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    attributes: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    attributes: Map<String, Value>,
    redactions: Vec<String>,
}

fn event(fields: &Fields) -> Event {
    Event::new(
        Source::Sidecar,
        Actor::default(),
        Ownership::default(),
        EventAction {
            protocol: "http".into(),
            verb: "GET".into(),
            target: fields.target.clone().unwrap_or_default(),
            attributes: fields.attributes.clone(),
        },
        Decision {
            outcome: Outcome::Allow,
            rule: None,
            reason: fields.reason.clone(),
            controls: vec![],
        },
        1,
    )
}

#[test]
fn golden_cases() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/redaction");
    let redactor = Redactor::new(&[]).unwrap();
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let case: Case = yaml_serde::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut got = event(&case.input);
        redactor.redact_event(&mut got);
        let name = path.file_name().unwrap().to_string_lossy();
        let ctx = format!("{name}: {}", case.description);
        assert_eq!(
            got.action.target,
            case.expect.target.unwrap_or_default(),
            "{ctx}"
        );
        assert_eq!(got.decision.reason, case.expect.reason, "{ctx}");
        assert_eq!(
            Value::Object(got.action.attributes),
            Value::Object(case.expect.attributes),
            "{ctx}"
        );
        assert_eq!(got.redactions, case.expect.redactions, "{ctx}");
        seen += 1;
    }
    assert!(
        seen >= 10,
        "only {seen} golden cases found in {}",
        dir.display()
    );
}

#[test]
fn redaction_is_idempotent() {
    let redactor = Redactor::new(&[]).unwrap();
    let mut attributes = Map::new();
    attributes.insert("password".into(), Value::String("x".into()));
    attributes.insert(
        "url".into(),
        Value::String("https://a:b@c/?token=t Bearer abcdefghijk".into()),
    );
    let mut once = event(&Fields {
        target: None,
        reason: None,
        attributes,
    });
    redactor.redact_event(&mut once);
    let mut twice = once.clone();
    redactor.redact_event(&mut twice);
    assert_eq!(once, twice);
}

#[test]
fn deep_nesting_is_cut_not_recursed() {
    let redactor = Redactor::new(&[]).unwrap();
    let mut value = Value::String("leaf".into());
    for _ in 0..1_000 {
        value = Value::Array(vec![value]);
    }
    let mut attributes = Map::new();
    attributes.insert("deep".into(), value);
    let mut e = event(&Fields {
        target: None,
        reason: None,
        attributes,
    });
    redactor.redact_event(&mut e);
    assert!(e.redactions.contains(&"depth-limit".to_string()));
    // Dropping the remaining structure must not overflow either.
    let text = serde_json::to_string(&e.action.attributes).unwrap();
    assert!(text.contains("[REDACTED:depth-limit]"));
}

#[test]
fn configured_patterns_apply_with_their_kind() {
    let redactor =
        Redactor::new(&[("employee-id".to_string(), r"\bEMP-\d{6}\b".to_string())]).unwrap();
    let mut kinds = Default::default();
    let out = redactor
        .redact_text("owner EMP-123456 approved", &mut kinds)
        .unwrap();
    assert_eq!(out, "owner [REDACTED:employee-id] approved");
    assert!(kinds.contains("employee-id"));
    assert!(Redactor::new(&[("bad".into(), "(".into())]).is_err());
}

#[test]
fn the_journals_own_signed_records_are_never_rewritten() {
    let redactor = Redactor::new(&[]).unwrap();
    let mut attributes = Map::new();
    // A checkpoint's signature and hash look like the high-entropy tokens
    // the redactor removes from user input.
    attributes.insert(
        "signature".into(),
        Value::String("eyJhbGciOiJFZERTQSJ9.c2lnbmF0dXJl.QUtJQU1BUktBV1MwS0VZMTIzNDU=".into()),
    );
    attributes.insert(
        "token".into(),
        Value::String("ghp_0123456789abcdefghijABCDEFGHIJ0123".into()),
    );
    let mut notice = Event::notice(
        "checkpoint",
        "journal",
        Outcome::Allow,
        crate::Priority::P2Log,
        "password=hunter2 api_key=AKIAMARKAWS0KEY12345".into(),
        attributes.clone(),
    );
    let before = serde_json::to_value(&notice).unwrap();
    redactor.redact_event(&mut notice);
    assert_eq!(serde_json::to_value(&notice).unwrap(), before);
    // The same content from a recorder is redacted.
    let mut event = event(&Fields {
        target: None,
        reason: Some("password=hunter2".into()),
        attributes,
    });
    redactor.redact_event(&mut event);
    assert!(!event.redactions.is_empty());
    assert!(!serde_json::to_string(&event).unwrap().contains("hunter2"));
}
