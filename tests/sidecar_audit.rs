//! `tollgate sidecar --audit-dir`: agent actions land in the tamper-evident
//! journal, its metrics are on the sidecar's `/metrics`, and SIGTERM closes
//! it so `tollgate audit verify` finds it intact.
// Test code: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "support_sidecar/mod.rs"]
mod support;
mod support_journal;

use std::time::Duration;

use serde_json::Value;
use support::{Sidecar, bin, via_proxy};

const POLICY: &str = r#"apiVersion: tollgate.dev/v1alpha1
kind: ActionPolicy
metadata: { name: audit-e2e }
spec:
  rules:
    - name: no-exfiltration
      effect: deny
      protocol: http
      reason: uploads leave the cluster
      match: { hosts: ["paste.example.com"] }
"#;

#[tokio::test]
async fn actions_are_journaled_and_verify_after_shutdown() {
    let journal = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let journal_dir = journal.path().join("journal");
    let mut sidecar = Sidecar::start(
        Some(POLICY),
        &[
            "--audit-dir",
            journal_dir.to_str().unwrap(),
            "--state-dir",
            state.path().to_str().unwrap(),
            "--pod-name",
            "agent-0",
            "--pod-namespace",
            "agents",
        ],
    )
    .await;
    let (status, _, body) = via_proxy(
        sidecar.addr,
        "POST",
        "http://paste.example.com/upload",
        &[("content-type", "text/plain")],
        "secret plans",
    )
    .await;
    assert_eq!(status, 403, "{body}");
    // Not matched by any rule: denied by default, recorded too.
    let (status, _, _) = via_proxy(
        sidecar.addr,
        "GET",
        "http://elsewhere.example.com/",
        &[],
        "",
    )
    .await;
    assert_eq!(status, 403);
    let metrics = sidecar.metrics_text().await;
    assert!(metrics.contains("tollgate_sidecar_"), "{metrics}");
    assert!(metrics.contains("tollgate_audit_"), "{metrics}");

    let status = sidecar.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "{status}\n{}", sidecar.log());

    support_journal::verify(&bin(), &journal_dir);
    let events: Vec<Value> = support_journal::events(&bin(), &journal_dir)
        .into_iter()
        .filter(|e| e["source"] == "sidecar")
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    let upload = events
        .iter()
        .find(|e| e["decision"]["rule"] == "no-exfiltration")
        .unwrap_or_else(|| panic!("no event for the upload in {events:?}"));
    assert_eq!(upload["decision"]["outcome"], "deny");
    assert_eq!(upload["actor"]["pod"], "agent-0", "{upload}");
    // The body never reaches the journal.
    assert!(!format!("{events:?}").contains("secret plans"));
}
