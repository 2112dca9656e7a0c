//! Shared helpers of the audit crate's integration tests.
// Test helpers: a panic here is a failed test, as in the tests themselves.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

pub mod stubs;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tollgate_audit::config::AuditConfig;
use tollgate_audit::cursor::Cursors;
use tollgate_audit::journal::{Journal, JournalOptions, WriteFault};
use tollgate_audit::keys::SigningKey;
use tollgate_audit::metrics::Metrics;
use tollgate_audit::{Actor, Decision, Event, EventAction, Outcome, Ownership, Source};

/// A config with small segments so tests rotate quickly.
pub fn small_config(extra: &str) -> AuditConfig {
    let mut base: serde_json::Value = yaml_serde::from_str(
        "{journal: {maxRecordBytes: 16KiB}, segment: {maxBytes: 64KiB}, spool: {maxBytes: 1MiB}}",
    )
    .unwrap();
    if !extra.trim().is_empty() {
        let extra: serde_json::Value = yaml_serde::from_str(extra).unwrap();
        merge(&mut base, extra);
    }
    let config: AuditConfig = serde_json::from_value(base).unwrap();
    config.validate().unwrap();
    config
}

fn merge(base: &mut serde_json::Value, extra: serde_json::Value) {
    match (base, extra) {
        (serde_json::Value::Object(b), serde_json::Value::Object(e)) => {
            for (k, v) in e {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

pub struct Opened {
    pub journal: Journal,
    pub key_dir: PathBuf,
}

pub fn open_with(
    dir: &Path,
    state: &Path,
    config: AuditConfig,
    consumers: &[&str],
    fault: Option<WriteFault>,
) -> Result<Journal, tollgate_audit::Error> {
    let key = SigningKey::load_or_generate(None, state)?;
    let names: Vec<String> = consumers.iter().map(|s| s.to_string()).collect();
    let cursors = Arc::new(Cursors::load(dir, &names)?);
    Journal::open(
        JournalOptions {
            dir: dir.to_owned(),
            config,
            key,
            fault,
        },
        cursors,
        Metrics::default(),
    )
}

pub fn event(n: u64, source: &str) -> Event {
    let mut attributes = serde_json::Map::new();
    attributes.insert("n".into(), serde_json::json!(n));
    attributes.insert("src".into(), serde_json::json!(source));
    Event::new(
        Source::Sidecar,
        Actor {
            pod: Some(source.to_owned()),
            namespace: Some("agents".into()),
            ..Actor::default()
        },
        Ownership {
            tier: Some("standard".into()),
            ..Ownership::default()
        },
        EventAction {
            protocol: "mcp".into(),
            verb: "tools/call".into(),
            target: format!("docs/search?n={n}"),
            attributes,
        },
        Decision {
            outcome: if n.is_multiple_of(7) {
                Outcome::Deny
            } else {
                Outcome::Allow
            },
            rule: Some("r1".into()),
            reason: Some("because".into()),
            controls: vec!["SOC2 CC6.1".into()],
        },
        12,
    )
}

/// Polls `check` until it returns true or `timeout` passes.
pub async fn eventually<F: FnMut() -> bool>(timeout: Duration, what: &str, mut check: F) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every record line of the live journal, decompressed, in order.
pub fn journal_lines(dir: &Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for seg in tollgate_audit::journal::segment::list(&dir.join("segments")).unwrap() {
        let bytes = tollgate_audit::journal::segment::read_all(&seg).unwrap();
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            out.push(serde_json::from_slice(line).unwrap());
        }
    }
    out
}

/// Ids of the event records in the live journal.
pub fn journal_event_ids(dir: &Path) -> Vec<String> {
    journal_lines(dir)
        .into_iter()
        .filter(|r| r["kind"] == "event")
        .map(|r| r["event"]["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Journal notices with a verb.
pub fn notices(dir: &Path, verb: &str) -> Vec<serde_json::Value> {
    journal_lines(dir)
        .into_iter()
        .filter(|r| {
            r["kind"] == "event"
                && r["event"]["source"] == "journal"
                && r["event"]["action"]["verb"] == verb
        })
        .map(|r| r["event"].clone())
        .collect()
}
