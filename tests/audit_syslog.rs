//! Syslog export against a real rsyslog (Debian `rsyslog` + `rsyslog-gnutls`,
//! started by the test on a loopback port with a test CA): RFC 5424
//! messages over TLS with RFC 5425 octet-counted framing, and an rsyslog
//! outage under load that loses nothing and keeps each source's order.

// Helpers of this test file may panic: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support_audit;

use std::sync::Arc;
use std::time::{Duration, Instant};

use support_audit::rsyslog::{Rsyslog, payload};
use support_audit::{assert_ordered_per_source, wait_for};
use tollgate_audit::{
    Actor, AuditConfig, AuditOptions, Decision, Event, EventAction, Outcome, Ownership, Recorder,
    Source,
};

fn config(rsyslog: &Rsyslog, extra: &str) -> AuditConfig {
    let yaml = format!(
        r#"
segment: {{maxBytes: 2MiB}}
spool: {{maxBytes: 64MiB}}
exporters:
  - type: syslog
    name: rsyslog
    address: "127.0.0.1:{port}"
    tls: {{caFile: "{ca}"}}
    batch: {{maxRecords: 500, maxWait: 50ms}}
    retry: {{initialBackoff: 50ms, maxBackoff: 500ms, timeout: 5s}}
{extra}"#,
        port = rsyslog.port,
        ca = rsyslog.ca.display()
    );
    yaml_serde::from_str(&yaml).unwrap()
}

fn event(source: &str, n: u64) -> Event {
    let mut attributes = serde_json::Map::new();
    attributes.insert("n".into(), serde_json::json!(n));
    attributes.insert(
        "headers".into(),
        serde_json::json!({"authorization": "Bearer abc.def.ghi"}),
    );
    Event::new(
        Source::Sidecar,
        Actor {
            pod: Some(source.to_owned()),
            namespace: Some("agents".into()),
            ..Actor::default()
        },
        Ownership {
            owner: Some("team-a".into()),
            tier: Some("critical".into()),
            oncall: None,
        },
        EventAction {
            protocol: "http".into(),
            verb: "GET".into(),
            target: format!("https://api.example/v1/items/{n}"),
            attributes,
        },
        Decision {
            outcome: if n.is_multiple_of(3) {
                Outcome::Deny
            } else {
                Outcome::Allow
            },
            rule: Some("egress".into()),
            reason: Some("test".into()),
            controls: vec![],
        },
        7,
    )
}

/// (source, n, id) of every event message rsyslog wrote.
fn received(rsyslog: &Rsyslog) -> Vec<(String, u64, String)> {
    rsyslog
        .messages()
        .iter()
        .filter_map(|m| payload(m))
        .filter(|p| p["source"] == "sidecar")
        .map(|p| {
            (
                p["actor"]["pod"].as_str().unwrap().to_owned(),
                p["action"]["attributes"]["n"].as_u64().unwrap(),
                p["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_a_real_rsyslog_as_rfc5424_over_tls() {
    let tmp = tempfile::tempdir().unwrap();
    let rsyslog = Rsyslog::start(&tmp.path().join("rsyslog"));
    let (recorder, handle) = tollgate_audit::start(AuditOptions {
        dir: tmp.path().join("journal"),
        state_dir: tmp.path().join("state"),
        signing_key: None,
        config: config(&rsyslog, ""),
    })
    .await
    .unwrap();
    let mut ids = Vec::new();
    for n in 0..300 {
        let e = event("pod-a", n);
        ids.push(e.id.clone());
        recorder.record(e).await.unwrap();
    }
    wait_for(
        Duration::from_secs(20),
        "rsyslog received all 300 events",
        || received(&rsyslog).len() >= 300,
    );
    handle.shutdown().await.unwrap();
    let messages = rsyslog.messages();
    let first = messages
        .iter()
        .find(|m| m.contains(&ids[0]))
        .expect("first event received");
    // <PRI>VERSION: local facility audit (13) * 8 + warning (4, p1-inform).
    assert!(
        first.starts_with("<106>1 ") || first.starts_with("<108>1 "),
        "{first}"
    );
    assert!(
        first.contains(&format!("[tollgate@32473 id=\"{}\" seq=\"", ids[0])),
        "{first}"
    );
    assert!(first.contains(" tollgate "), "APP-NAME: {first}");
    let p = payload(first).unwrap();
    assert_eq!(p["schema"], "tollgate.audit/v1");
    assert_eq!(
        p["action"]["attributes"]["headers"]["authorization"], "[REDACTED]",
        "secrets are redacted before they reach the SIEM"
    );
    let got = received(&rsyslog);
    let in_order: Vec<String> = got.iter().map(|r| r.2.clone()).collect();
    assert_eq!(in_order, ids, "each event once, in order, nothing lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rsyslog_outage_under_load_loses_nothing_and_keeps_order() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rsyslog = Rsyslog::start(&tmp.path().join("rsyslog"));
    let (recorder, handle) = tollgate_audit::start(AuditOptions {
        dir: tmp.path().join("journal"),
        state_dir: tmp.path().join("state"),
        signing_key: None,
        config: config(&rsyslog, ""),
    })
    .await
    .unwrap();
    let sources = ["pod-a", "pod-b", "pod-c"];
    let produce = |recorder: Arc<dyn Recorder>, source: &'static str, from: u64, to: u64| {
        tokio::spawn(async move {
            let mut slowest = Duration::ZERO;
            for n in from..to {
                let t = Instant::now();
                recorder.record(event(source, n)).await.unwrap();
                slowest = slowest.max(t.elapsed());
                if n.is_multiple_of(50) {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            slowest
        })
    };
    // Load before, during and after the outage.
    let mut tasks: Vec<_> = sources
        .iter()
        .map(|s| produce(recorder.clone(), s, 0, 400))
        .collect();
    tokio::time::sleep(Duration::from_millis(150)).await;
    rsyslog.stop();
    let outage = Instant::now();
    for t in tasks.drain(..) {
        let slowest = t.await.unwrap();
        assert!(
            slowest < Duration::from_secs(2),
            "a producer waited {slowest:?}: the SIEM outage must not block producers"
        );
    }
    let during: Vec<_> = sources
        .iter()
        .map(|s| produce(recorder.clone(), s, 400, 800))
        .collect();
    for t in during {
        t.await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(800).saturating_sub(outage.elapsed())).await;
    rsyslog.restart();
    let after: Vec<_> = sources
        .iter()
        .map(|s| produce(recorder.clone(), s, 800, 1000))
        .collect();
    for t in after {
        t.await.unwrap();
    }
    wait_for(
        Duration::from_secs(30),
        "every event delivered after the outage",
        || {
            let got = received(&rsyslog);
            let distinct: std::collections::HashSet<_> = got.iter().map(|r| r.2.clone()).collect();
            distinct.len() >= 3000
        },
    );
    handle.shutdown().await.unwrap();
    let got = received(&rsyslog);
    let pairs: Vec<(String, u64)> = got.iter().map(|r| (r.0.clone(), r.1)).collect();
    let distinct = assert_ordered_per_source(&pairs);
    assert_eq!(distinct.len(), 3000, "nothing lost");
    eprintln!(
        "rsyslog wrote {} messages for {} events (the rest are resends of unconfirmed batches)",
        got.len(),
        distinct.len()
    );
    // A resend carries the same id: no two ids for one event.
    let mut ids_per_event = std::collections::HashMap::new();
    for (source, n, id) in &got {
        let first = ids_per_event
            .entry((source.clone(), *n))
            .or_insert(id.clone());
        assert_eq!(first, id, "duplicates carry the same event id");
    }
}
