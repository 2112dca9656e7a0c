//! The shared redaction corpus against the audit crate's own outputs: the
//! event as the journal stores it (written and read back through a real
//! journal), the text line of `audit tail`, and the OCSF form exporters
//! send. Each case's text goes into every user-supplied string field.

// Helpers of this test file may panic: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support;

#[path = "support/corpus.rs"]
mod corpus;

use serde_json::{Map, Value};
use support::*;
use tollgate_audit::redact::Redactor;
use tollgate_audit::{
    Actor, Decision, Event, EventAction, Outcome, Ownership, Recorder, Source, ocsf, text,
};

/// An event with `case`'s text in every field a producer fills from input.
fn event_for(case: &corpus::Case) -> Event {
    let t = case.text.clone().unwrap_or_else(|| "plain".into());
    let mut attributes = Map::new();
    attributes.insert("arguments".into(), Value::Object(case.arguments.clone()));
    attributes.insert(
        "url".into(),
        Value::String(format!("https://h.example/p?q={t}")),
    );
    attributes.insert("free".into(), Value::String(t.clone()));
    attributes.insert(t.clone(), Value::Bool(true));
    Event::new(
        Source::Webhook,
        Actor {
            user: Some(t.clone()),
            groups: vec![t.clone()],
            service_account: Some(t.clone()),
            pod: Some(t.clone()),
            namespace: Some(t.clone()),
            agent: Some(t.clone()),
        },
        Ownership {
            owner: Some(t.clone()),
            tier: Some(t.clone()),
            oncall: Some(t.clone()),
        },
        EventAction {
            protocol: "mcp".into(),
            verb: t.clone(),
            target: t.clone(),
            attributes,
        },
        Decision {
            outcome: Outcome::Deny,
            rule: Some(t.clone()),
            reason: Some(t.clone()),
            controls: vec![t.clone()],
        },
        1,
    )
}

fn check_event(case: &corpus::Case, event: &Event, seq: u64, what: &str) {
    let json = serde_json::to_value(event).unwrap();
    corpus::assert_clean(case, &json.to_string(), &format!("{what} json"));
    corpus::assert_kept(case, &json.to_string(), &format!("{what} json"));
    corpus::assert_kinds(case, &json, what);
    corpus::assert_clean(case, &text::line(seq, event), &format!("{what} text"));
    let ocsf = ocsf::to_ocsf(event, Some(seq)).to_string();
    corpus::assert_clean(case, &ocsf, &format!("{what} ocsf"));
}

#[test]
fn the_redactor_cleans_every_field_of_every_corpus_case() {
    let redactor = Redactor::new(&[]).unwrap();
    for case in corpus::cases() {
        let mut event = event_for(&case);
        redactor.redact_event(&mut event);
        check_event(&case, &event, 1, "redactor");
        // Idempotent: a second pass (as `audit tail` makes) changes nothing.
        let mut again = event.clone();
        redactor.redact_event(&mut again);
        assert_eq!(again, event, "case {:?}", case.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_stores_no_secret_of_the_corpus() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, state) = (tmp.path().join("j"), tmp.path().join("state"));
    let journal = open_with(&dir, &state, small_config(""), &[], None).unwrap();
    let cases = corpus::cases();
    for case in &cases {
        journal.record(event_for(case)).await.unwrap();
    }
    journal.shutdown().await.unwrap();
    let mut reader = tollgate_audit::reader::Reader::new(&dir, 1);
    let items: Vec<_> = reader
        .read(u64::MAX, 10_000, 64 << 20)
        .unwrap()
        .into_iter()
        .filter(|i| i.event.source != Source::Journal)
        .collect();
    assert_eq!(items.len(), cases.len());
    for (case, item) in cases.iter().zip(&items) {
        check_event(case, &item.event, item.seq, "journal");
    }
    // And nothing in clear in the raw records either.
    let raw: Vec<String> = journal_lines(&dir).iter().map(Value::to_string).collect();
    let raw = raw.join("\n");
    for case in &cases {
        for secret in &case.secrets {
            assert!(
                !raw.contains(secret.as_str()),
                "raw journal leaked {secret:?}"
            );
        }
    }
}
