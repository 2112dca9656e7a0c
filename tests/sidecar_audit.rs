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

use std::process::Command;
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

    let verify = Command::new(bin())
        .args(["audit", "verify"])
        .arg(&journal_dir)
        .output()
        .unwrap();
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    let tail = Command::new(bin())
        .args(["audit", "tail", "--format", "json"])
        .arg(&journal_dir)
        .output()
        .unwrap();
    assert!(
        tail.status.success(),
        "{}",
        String::from_utf8_lossy(&tail.stderr)
    );
    let events: Vec<Value> = String::from_utf8_lossy(&tail.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|e: &Value| e["source"] == "sidecar")
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    let upload = events
        .iter()
        .find(|e| e["decision"]["rule"] == "no-exfiltration")
        .unwrap_or_else(|| panic!("no event for the upload in {events:?}"));
    assert_eq!(upload["decision"]["outcome"], "deny");
    assert_eq!(upload["actor"]["pod"], "agent-0", "{upload}");
    // The body never reaches the journal.
    assert!(!String::from_utf8_lossy(&tail.stdout).contains("secret plans"));
}
