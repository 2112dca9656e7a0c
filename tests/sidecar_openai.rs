//! The official `openai` Python SDK through the sidecar with TLS
//! interception: `HTTPS_PROXY` points at the real `tollgate sidecar`, the
//! client trusts only the per-pod interception CA (`SSL_CERT_FILE`), and the
//! sidecar verifies the upstream against a test CA. The upstream is a
//! loopback stub LLM (no model runs here) that reports token usage, plain
//! and streamed; the token budget is enforced on that reported usage.
// Test code: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "support_sidecar/mod.rs"]
mod support;

use std::time::Duration;

use serde_json::Value;
use support::upstream::Upstream;
use support::{Sidecar, TestCa, outcome, python_script, require_python, rule, run_bounded};

fn policy(port: u16) -> String {
    format!(
        r#"apiVersion: tollgate.dev/v1alpha1
kind: ActionPolicy
metadata: {{ name: llm-e2e }}
spec:
  routes:
    - name: llm
      protocol: llm
      provider: openai
      hosts: ["localhost:{port}"]
  rules:
    - name: no-frontier
      effect: deny
      protocol: llm
      reason: frontier models are not approved for this agent
      match: {{ models: ["gpt-5*"] }}
    - name: small-model
      effect: allow
      protocol: llm
      match: {{ models: ["gpt-4o-mini*"], maxTokens: 256 }}
      tokenBudget: {{ tokens: 50, per: 1h }}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_sdk_through_interception_with_a_token_budget() {
    require_python(&["openai", "httpx"]);
    let certs = tempfile::tempdir().unwrap();
    let ca = TestCa::new(certs.path());
    let llm = Upstream::start_with(Some(ca.server_config(&[b"http/1.1"]))).await;
    let intercept = certs.path().join("intercept");
    let trust = certs.path().join("agent-trust.crt");
    let sidecar = Sidecar::start(
        Some(&policy(llm.addr.port())),
        &[
            "--intercept-ca",
            intercept.to_str().unwrap(),
            "--intercept-ca-cert-out",
            trust.to_str().unwrap(),
            "--upstream-ca",
            ca.ca_file.to_str().unwrap(),
            "--no-system-roots",
        ],
    )
    .await;
    assert!(
        intercept.join("ca.key").exists(),
        "the per-pod CA was generated"
    );

    let mut client = tokio::process::Command::new("python3");
    client
        .arg(python_script("openai_client.py"))
        .arg(format!("https://localhost:{}/v1", llm.addr.port()))
        .env("HTTPS_PROXY", sidecar.url())
        .env("https_proxy", sidecar.url())
        .env("SSL_CERT_FILE", &trust)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("ALL_PROXY")
        .env_remove("SSL_CERT_DIR")
        .env("PYTHONUNBUFFERED", "1");
    let (code, stdout, stderr) = run_bounded(client, Duration::from_secs(60)).await;
    assert_eq!(
        code,
        Some(0),
        "the OpenAI client failed:\n{stdout}\n{stderr}\n{}",
        sidecar.log()
    );
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{stdout}");

    // A deny rule: 403, its reason in the SDK's error.
    assert_eq!(lines[0]["call"], "frontier");
    assert_eq!(lines[0]["status"], 403, "{}", lines[0]);
    assert!(
        lines[0]["error"]
            .as_str()
            .unwrap()
            .contains("frontier models are not approved")
    );
    // Within budget, plain and streamed: the upstream's answer, unchanged.
    assert_eq!(lines[1]["ok"], true, "{}", lines[1]);
    assert_eq!(lines[1]["text"], "Hello");
    assert_eq!(lines[1]["tokens"], 30);
    assert_eq!(lines[2]["ok"], true, "{}", lines[2]);
    assert_eq!(lines[2]["text"], "Hello");
    assert_eq!(lines[2]["tokens"], 30);
    // 30 + 30 reported tokens exhaust the budget of 50: denied with 429.
    assert_eq!(lines[3]["status"], 429, "{}", lines[3]);
    assert!(
        lines[3]["error"]
            .as_str()
            .unwrap()
            .contains("token budget of rule \"small-model\" is used up")
    );
    // Only the two allowed calls reached the upstream.
    assert_eq!(llm.seen().len(), 2);

    let events = sidecar
        .events_where(4, |e| e["action"]["protocol"] == "llm")
        .await;
    let decisions: Vec<(&str, &str)> = events.iter().map(|e| (outcome(e), rule(e))).collect();
    assert_eq!(
        decisions,
        [
            ("deny", "no-frontier"),
            ("allow", "small-model"),
            ("allow", "small-model"),
            ("deny", "small-model")
        ]
    );
    assert_eq!(events[1]["action"]["target"], "openai/gpt-4o-mini");
    assert_eq!(events[2]["action"]["attributes"]["stream"], true);
    assert_eq!(events[1]["action"]["attributes"]["maxTokens"], 64);
    assert_eq!(
        sidecar
            .metric(r#"tollgate_sidecar_limit_used{rule="small-model",kind="tokens"}"#)
            .await,
        Some(60.0)
    );
    assert_eq!(
        sidecar
            .metric(r#"tollgate_sidecar_llm_tokens_total{provider="openai",rule="small-model"}"#)
            .await,
        Some(60.0)
    );
}
