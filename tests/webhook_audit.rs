//! `tollgate webhook --audit-dir`: every admission decision lands in the
//! tamper-evident journal, the journal's metrics are served beside the
//! webhook's, and SIGTERM closes it so `tollgate audit verify` finds it
//! intact.
// Test code: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "support_webhook/mod.rs"]
mod support;
mod support_journal;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use support::{Start, Webhook, binary, example_review};

#[tokio::test]
async fn decisions_are_journaled_and_verify_after_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    let mut webhook = Webhook::start_with(Start {
        args: vec![
            "--audit-dir".into(),
            journal.display().to_string(),
            // The test's client keeps its connection open; no need to wait
            // the default 20 s for it.
            "--shutdown-grace".into(),
            "1s".into(),
        ],
        dir: Some(dir),
        ..Start::default()
    });
    assert!(
        webhook.stdout().contains("audit journal:"),
        "{}",
        webhook.stdout()
    );

    let (status, denied) = webhook
        .post("/validate", &example_review("deployment-privileged.json"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(denied["response"]["allowed"], false, "{denied}");
    let (status, allowed) = webhook
        .post("/validate", &example_review("deployment-restricted.json"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(allowed["response"]["allowed"], true, "{allowed}");

    let metrics = webhook.metrics_text();
    assert!(metrics.contains("tollgate_webhook_requests"), "{metrics}");
    assert!(metrics.contains("tollgate_audit_"), "{metrics}");

    webhook.sigterm();
    let status = webhook.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status}\n{}", webhook.stderr());

    support_journal::verify(Path::new(binary()), &journal);
    let events: Vec<Value> = support_journal::events(Path::new(binary()), &journal)
        .into_iter()
        .filter(|e| e["source"] == "webhook")
        .collect();
    let decisions: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["decision"]["outcome"].as_str().unwrap_or(""),
                e["action"]["target"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(events.len(), 2, "{decisions:?}");
    assert!(
        decisions.iter().any(|(o, _)| *o == "deny") && decisions.iter().any(|(o, _)| *o == "allow"),
        "{decisions:?}"
    );
    // The ownership context of the annotations routes the denial.
    let denial = events
        .iter()
        .find(|e| e["decision"]["outcome"] == "deny")
        .unwrap();
    assert_eq!(denial["ownership"]["owner"], "ml-platform", "{denial}");
}
