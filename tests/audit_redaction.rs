//! The shared redaction corpus (`audit/tests/redaction_corpus.yaml`) through
//! the real binary: the sidecar with its default JSON-lines `--audit-log`
//! and with a journal (`--audit-dir`, read back with `audit tail` in every
//! format), and the webhook with secrets in ownership annotations and the
//! requesting user. No secret of the corpus may appear in any output.
// Test code: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "../audit/tests/support/corpus.rs"]
mod corpus;
#[path = "support_sidecar/mod.rs"]
mod support;
#[path = "support_webhook/mod.rs"]
mod webhook;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use support::upstream::Upstream;
use support::{Sidecar, bin, send};

const POLICY: &str = r#"apiVersion: tollgate.dev/v1alpha1
kind: ActionPolicy
metadata: { name: redaction }
spec:
  rules:
    - name: any-mcp
      effect: allow
      protocol: mcp
    - name: any-http
      effect: allow
      protocol: http
"#;

/// Percent-encodes everything but unreserved characters, as a client
/// building a query string does.
fn encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Sends one MCP tool call per corpus case: the case's text as the tool
/// name, in the arguments and in the URL query; its arguments as
/// arguments.
async fn send_corpus(sidecar: &Sidecar, upstream: &Upstream, cases: &[corpus::Case]) {
    for (n, case) in cases.iter().enumerate() {
        let text = case.text.clone().unwrap_or_else(|| "plain".into());
        let mut arguments = case.arguments.clone();
        arguments.insert("note".into(), Value::String(text.clone()));
        let body = json!({
            "jsonrpc": "2.0", "id": n, "method": "tools/call",
            "params": {"name": text, "arguments": arguments},
        });
        let url = format!("{}/mcp?q={}", upstream.url(), encode(&text));
        let req = http::Request::post(url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body.to_string())
            .unwrap();
        let (status, _, answer) = send(sidecar.addr, req).await.unwrap();
        assert_eq!(
            status,
            200,
            "case {:?}: {}\n{}",
            case.name,
            String::from_utf8_lossy(&answer),
            sidecar.log()
        );
    }
}

fn check_events(cases: &[corpus::Case], events: &[Value], what: &str) {
    let mcp: Vec<&Value> = events
        .iter()
        .filter(|e| e["action"]["protocol"] == "mcp")
        .collect();
    assert_eq!(mcp.len(), cases.len(), "{what}: {events:?}");
    for (case, event) in cases.iter().zip(mcp) {
        corpus::assert_kinds(case, event, what);
    }
}

fn assert_no_secret(cases: &[corpus::Case], output: &str, what: &str) {
    for case in cases {
        corpus::assert_clean(case, output, what);
    }
}

fn tail(journal: &Path, format: &str) -> String {
    let out = Command::new(bin())
        .args(["audit", "tail", "--format", format, "-n", "1000000"])
        .arg(journal)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every file under `dir`, as text (compressed segments hold nothing
/// readable; the live segment is plain).
fn raw_files(dir: &Path) -> String {
    let mut out = String::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_json_lines_log_holds_no_secret_of_the_corpus() {
    let cases = corpus::cases();
    let upstream = Upstream::start().await;
    let sidecar = Sidecar::start(Some(POLICY), &[]).await;
    send_corpus(&sidecar, &upstream, &cases).await;
    let events = sidecar
        .events_where(cases.len(), |e| e["action"]["protocol"] == "mcp")
        .await;
    check_events(&cases, &events, "--audit-log");
    let raw = std::fs::read_to_string(&sidecar.audit).unwrap();
    assert_no_secret(&cases, &raw, "--audit-log file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_and_every_tail_format_hold_no_secret_of_the_corpus() {
    let cases = corpus::cases();
    let upstream = Upstream::start().await;
    let work = tempfile::tempdir().unwrap();
    let journal = work.path().join("journal");
    let state = work.path().join("state");
    let mut sidecar = Sidecar::start(
        Some(POLICY),
        &[
            "--audit-dir",
            journal.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ],
    )
    .await;
    send_corpus(&sidecar, &upstream, &cases).await;
    let events = sidecar
        .events_where(cases.len(), |e| e["action"]["protocol"] == "mcp")
        .await;
    check_events(&cases, &events, "--audit-dir");
    let status = sidecar.terminate(Duration::from_secs(20)).await;
    assert!(status.success(), "{status}\n{}", sidecar.log());
    for format in ["json", "text", "ocsf"] {
        assert_no_secret(
            &cases,
            &tail(&journal, format),
            &format!("tail --format {format}"),
        );
    }
    assert_no_secret(&cases, &raw_files(&journal), "journal files");
}

#[tokio::test]
async fn ownership_annotations_and_the_user_are_redacted_by_the_webhook() {
    let cases: Vec<corpus::Case> = corpus::cases()
        .into_iter()
        .filter(|c| c.text.is_some())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    let mut hook = webhook::Webhook::start_with(webhook::Start {
        args: vec![
            "--audit-dir".into(),
            journal.display().to_string(),
            "--shutdown-grace".into(),
            "1s".into(),
        ],
        dir: Some(dir),
        ..webhook::Start::default()
    });
    for case in &cases {
        let text = case.text.clone().unwrap();
        let mut review = webhook::example_review("deployment-restricted.json");
        let meta = &mut review["request"]["object"]["metadata"];
        meta["annotations"] = json!({
            "deployscope.dev/owner": text,
            "deployscope.dev/oncall": text,
            "deployscope.dev/tier": text,
        });
        review["request"]["userInfo"]["username"] = Value::String(text.clone());
        let (status, answer) = hook.post("/validate", &review).await;
        assert_eq!(status, 200, "{answer}");
    }
    hook.sigterm();
    let status = hook.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status}\n{}", hook.stderr());
    let json = tail(&journal, "json");
    let events: Vec<Value> = json
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["source"] == "webhook")
        .collect();
    assert_eq!(events.len(), cases.len());
    for (case, event) in cases.iter().zip(&events) {
        corpus::assert_kinds(case, event, "webhook");
    }
    for format in ["json", "text", "ocsf"] {
        assert_no_secret(
            &cases,
            &tail(&journal, format),
            &format!("webhook tail --format {format}"),
        );
    }
    assert_no_secret(&cases, &raw_files(&journal), "webhook journal files");
}
