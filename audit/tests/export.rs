//! Exporters against receivers that enforce the real API contracts.
//! Splunk HEC, Elasticsearch and the webhook are loopback HTTPS stubs (no
//! such server can run here; see `support/stubs.rs` for the contract each
//! enforces); the file exporter writes a real file.

// Helpers of this test file may panic: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support;

use std::time::Duration;

use serde_json::Value;
use support::stubs;
use support::*;
use tollgate_audit::{AuditConfig, AuditHandle, AuditOptions, Recorder};

async fn start(
    dir: &std::path::Path,
    exporters: &str,
) -> (std::sync::Arc<dyn Recorder>, AuditHandle) {
    let yaml =
        format!("segment: {{maxBytes: 2MiB}}\nspool: {{maxBytes: 64MiB}}\nexporters:\n{exporters}");
    let config: AuditConfig = yaml_serde::from_str(&yaml).unwrap();
    tollgate_audit::start(AuditOptions {
        dir: dir.join("journal"),
        state_dir: dir.join("state"),
        signing_key: None,
        config,
    })
    .await
    .unwrap()
}

fn retry() -> &'static str {
    "retry: {initialBackoff: 20ms, maxBackoff: 200ms, timeout: 5s}"
}

fn event_with_target(n: u64, target: &str) -> tollgate_audit::Event {
    let mut e = event(n, "pod-a");
    e.action.target = target.to_owned();
    e
}

fn deadletters(dir: &std::path::Path, name: &str) -> Vec<Value> {
    std::fs::read_to_string(dir.join("journal/deadletter").join(format!("{name}.jsonl")))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn producer_events(accepted: &[Value], path: &[&str]) -> Vec<String> {
    accepted
        .iter()
        .filter_map(|v| {
            let mut cur = v;
            for p in path {
                cur = &cur[*p];
            }
            let source = &cur["source"];
            (source == "sidecar").then(|| cur["id"].as_str().unwrap().to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splunk_hec_partial_failure_dead_letters_only_the_invalid_event() {
    let tmp = tempfile::tempdir().unwrap();
    let stub = stubs::splunk(tmp.path(), "hec-token-1").await;
    stub.state.lock().unwrap().fail_first = 2;
    std::fs::write(tmp.path().join("hec-token"), "hec-token-1\n").unwrap();
    let (recorder, handle) = start(
        tmp.path(),
        &format!(
            "- {{type: splunk-hec, name: splunk, url: 'https://127.0.0.1:{}', tokenFile: '{}', index: audit, tls: {{caFile: '{}'}}, batch: {{maxRecords: 50, maxWait: 20ms}}, {}}}",
            stub.addr.port(),
            tmp.path().join("hec-token").display(),
            stub.ca.display(),
            retry()
        ),
    )
    .await;
    let mut ids = Vec::new();
    let mut poison = String::new();
    for n in 0..120 {
        let e = if n == 30 {
            event_with_target(n, "https://x/poison")
        } else {
            event(n, "pod-a")
        };
        if n == 30 {
            poison = e.id.clone();
        } else {
            ids.push(e.id.clone());
        }
        recorder.record(e).await.unwrap();
    }
    let state = stub.state.clone();
    eventually(
        Duration::from_secs(20),
        "HEC indexed every valid event",
        || producer_events(&state.lock().unwrap().accepted, &["event"]).len() >= 119,
    )
    .await;
    let metrics = handle.journal().metrics().clone();
    handle.shutdown().await.unwrap();
    let s = stub.state.lock().unwrap();
    assert_eq!(
        producer_events(&s.accepted, &["event"]),
        ids,
        "each valid event indexed once, in order"
    );
    let first = &s.accepted[0];
    assert_eq!(first["index"], "audit");
    assert_eq!(first["sourcetype"], "tollgate:audit");
    assert!(first["fields"]["tollgate_seq"].is_u64());
    let dead = deadletters(tmp.path(), "splunk");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["id"], poison.as_str());
    assert!(
        dead[0]["reason"]
            .as_str()
            .unwrap()
            .contains("Invalid data format")
    );
    let labels = tollgate_audit::metrics::Metrics::exporter("splunk");
    assert!(
        metrics.export_retries.get_or_create(&labels).get() >= 2,
        "503 busy was retried"
    );
    assert_eq!(metrics.export_dead_lettered.get_or_create(&labels).get(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splunk_hec_with_a_bad_token_keeps_everything_for_later() {
    let tmp = tempfile::tempdir().unwrap();
    let stub = stubs::splunk(tmp.path(), "right").await;
    std::fs::write(tmp.path().join("hec-token"), "wrong").unwrap();
    let (recorder, handle) = start(
        tmp.path(),
        &format!(
            "- {{type: splunk-hec, name: splunk, url: 'https://127.0.0.1:{}', tokenFile: '{}', tls: {{caFile: '{}'}}, batch: {{maxWait: 20ms}}, {}}}",
            stub.addr.port(),
            tmp.path().join("hec-token").display(),
            stub.ca.display(),
            retry()
        ),
    )
    .await;
    for n in 0..10 {
        recorder.record(event(n, "pod-a")).await.unwrap();
    }
    let state = stub.state.clone();
    eventually(Duration::from_secs(10), "several refused attempts", || {
        state.lock().unwrap().requests >= 3
    })
    .await;
    assert_eq!(
        handle.journal().cursors().get("splunk"),
        0,
        "the cursor never moves without an acknowledgement"
    );
    handle.shutdown().await.unwrap();
    assert!(stub.state.lock().unwrap().accepted.is_empty());
    assert!(
        deadletters(tmp.path(), "splunk").is_empty(),
        "auth errors never discard events"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elasticsearch_bulk_retries_only_rejected_items_and_dead_letters_mapping_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let stub = stubs::elasticsearch(tmp.path(), "es-key").await;
    std::fs::write(tmp.path().join("es-key"), "es-key").unwrap();
    let config = format!(
        "- {{type: elasticsearch, name: elastic, url: 'https://127.0.0.1:{}', index: audit-events, apiKeyFile: '{}', tls: {{caFile: '{}'}}, batch: {{maxRecords: 40, maxWait: 20ms}}, {}}}",
        stub.addr.port(),
        tmp.path().join("es-key").display(),
        stub.ca.display(),
        retry()
    );
    let (recorder, handle) = start(tmp.path(), &config).await;
    let mut ids = Vec::new();
    let mut bomb = String::new();
    for n in 0..100 {
        let e = if n == 55 {
            event_with_target(n, "mapping-bomb")
        } else {
            event(n, "pod-a")
        };
        if n == 55 {
            bomb = e.id.clone();
        } else {
            ids.push(e.id.clone());
        }
        if n % 10 == 3 {
            stub.state.lock().unwrap().reject_once.insert(e.id.clone());
        }
        recorder.record(e).await.unwrap();
    }
    let state = stub.state.clone();
    eventually(Duration::from_secs(20), "every valid event indexed", || {
        producer_events(&state.lock().unwrap().accepted, &["tollgate"]).len() >= 99
    })
    .await;
    handle.shutdown().await.unwrap();
    {
        let s = stub.state.lock().unwrap();
        let indexed = producer_events(&s.accepted, &["tollgate"]);
        let mut sorted = indexed.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), indexed.len(), "each event indexed once");
        assert_eq!(indexed.len(), ids.len());
        for id in &ids {
            let expected = if s.reject_once.contains(id) { 2 } else { 1 };
            assert_eq!(
                s.attempts[id], expected,
                "only rejected items are resent ({id})"
            );
        }
        assert_eq!(s.attempts[&bomb], 1, "a mapping error is not retried");
        // ECS shape.
        let doc = &s.accepted[0];
        assert!(doc["@timestamp"].is_string());
        assert_eq!(doc["ecs"]["version"], "8.11.0");
        assert_eq!(doc["event"]["dataset"], "tollgate.audit");
        assert!(doc["event"]["sequence"].is_u64());
        assert!(matches!(
            doc["event"]["outcome"].as_str(),
            Some("success" | "failure")
        ));
        assert_eq!(doc["orchestrator"]["namespace"], "agents");
    }
    let dead = deadletters(tmp.path(), "elastic");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["id"], bomb.as_str());
    assert!(
        dead[0]["reason"]
            .as_str()
            .unwrap()
            .contains("mapper_parsing_exception")
    );

    // A restart that resends (cursor rewound, as after a crash before the
    // cursor write) is answered 409 and counted as delivered: no duplicates.
    std::fs::remove_file(tmp.path().join("journal/cursors/elastic.json")).unwrap();
    let before = producer_events(&stub.state.lock().unwrap().accepted, &["tollgate"]).len();
    let (_recorder, handle) = start(tmp.path(), &config).await;
    let journal = handle.journal().clone();
    eventually(Duration::from_secs(20), "resend acknowledged", || {
        journal.cursors().get("elastic") >= 100
    })
    .await;
    handle.shutdown().await.unwrap();
    let after = producer_events(&stub.state.lock().unwrap().accepted, &["tollgate"]).len();
    assert_eq!(
        after, before,
        "409 for every resent id: no event indexed twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_retries_server_errors_and_sends_ocsf_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let stub = stubs::webhook(tmp.path(), "hook-token").await;
    stub.state.lock().unwrap().fail_first = 3;
    std::fs::write(tmp.path().join("token"), "hook-token").unwrap();
    let (recorder, handle) = start(
        tmp.path(),
        &format!(
            "- {{type: webhook, name: hook, url: 'https://127.0.0.1:{}/ingest', format: ocsf, bearerTokenFile: '{}', headers: {{X-Tenant: platform}}, tls: {{caFile: '{}'}}, batch: {{maxRecords: 25, maxWait: 20ms}}, {}}}",
            stub.addr.port(),
            tmp.path().join("token").display(),
            stub.ca.display(),
            retry()
        ),
    )
    .await;
    let mut ids = Vec::new();
    let mut rejected = String::new();
    for n in 0..60 {
        let e = if n == 10 {
            event_with_target(n, "reject-me")
        } else {
            event(n, "pod-a")
        };
        if n == 10 {
            rejected = e.id.clone();
        } else {
            ids.push(e.id.clone());
        }
        recorder.record(e).await.unwrap();
    }
    let state = stub.state.clone();
    let count = |s: &stubs::State| {
        s.accepted
            .iter()
            .filter(|e| e["unmapped"]["tollgate"]["source"] == "sidecar")
            .count()
    };
    // The batch holding the rejected event is dead-lettered as a whole
    // (a generic webhook cannot say which event it refused).
    eventually(
        Duration::from_secs(20),
        "the webhook received the deliverable batches",
        || {
            let s = state.lock().unwrap();
            count(&s) + deadletters(tmp.path(), "hook").len() >= 60
        },
    )
    .await;
    handle.shutdown().await.unwrap();
    let s = stub.state.lock().unwrap();
    let first = s
        .accepted
        .iter()
        .find(|e| e["unmapped"]["tollgate"]["source"] == "sidecar")
        .unwrap();
    assert_eq!(first["class_uid"], 6003);
    assert_eq!(first["category_uid"], 6);
    assert!(first["metadata"]["sequence"].is_u64());
    let headers: std::collections::HashMap<_, _> = s.last_headers.iter().cloned().collect();
    assert_eq!(headers["x-tenant"], "platform");
    assert!(headers["x-tollgate-batch"].contains('-'));
    let dead = deadletters(tmp.path(), "hook");
    assert!(dead.iter().any(|d| d["id"] == rejected.as_str()));
    let delivered: Vec<String> = s
        .accepted
        .iter()
        .filter(|e| e["unmapped"]["tollgate"]["source"] == "sidecar")
        .map(|e| e["metadata"]["uid"].as_str().unwrap().to_owned())
        .collect();
    for id in &ids {
        assert!(
            delivered.contains(id) || dead.iter().any(|d| d["id"] == id.as_str()),
            "{id} neither delivered nor dead-lettered"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_exporter_survives_external_rotation_and_rotates_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ship/audit.jsonl");
    let (recorder, handle) = start(
        tmp.path(),
        &format!(
            "- {{type: file, name: fluent, path: '{}', maxBytes: 64KiB, maxFiles: 50, batch: {{maxRecords: 20, maxWait: 10ms}}, {}}}",
            out.display(),
            retry()
        ),
    )
    .await;
    let mut ids = Vec::new();
    for n in 0..100 {
        let e = event(n, "pod-a");
        ids.push(e.id.clone());
        recorder.record(e).await.unwrap();
    }
    let journal = handle.journal().clone();
    eventually(Duration::from_secs(10), "first half written", || {
        journal.cursors().get("fluent") >= 100
    })
    .await;
    // A log rotator moves the file away (logrotate `create` mode).
    std::fs::rename(&out, tmp.path().join("ship/rotated-by-logrotate.jsonl")).unwrap();
    for n in 100..400 {
        let e = event(n, "pod-a");
        ids.push(e.id.clone());
        recorder.record(e).await.unwrap();
    }
    eventually(Duration::from_secs(10), "everything written", || {
        journal.cursors().get("fluent") >= journal.head().seq.min(400)
    })
    .await;
    handle.shutdown().await.unwrap();
    let mut files: Vec<_> = std::fs::read_dir(tmp.path().join("ship"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 3, "rotated by size too: {files:?}");
    let mut seen = Vec::new();
    for f in &files {
        for line in std::fs::read_to_string(f).unwrap().lines() {
            let v: Value = serde_json::from_str(line).expect("whole JSON lines only");
            if v["source"] == "sidecar" {
                seen.push(v["id"].as_str().unwrap().to_owned());
            }
        }
    }
    seen.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(seen, want, "every event exactly once across the files");
}
