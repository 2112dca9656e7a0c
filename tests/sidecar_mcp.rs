//! The official MCP Python SDK through the sidecar: a FastMCP server
//! (Streamable HTTP) and a `ClientSession` calling its tools with
//! `HTTP_PROXY` pointing at the real `tollgate sidecar`. Allowed calls return
//! the tool's result, denied ones surface as `McpError` with the rule's
//! reason, argument constraints bite, and the audit log holds exactly one
//! event per call.
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
use support::{
    Sidecar, free_port, outcome, python_script, require_python, rule, run_bounded, start_mcp_server,
};

fn policy(port: u16) -> String {
    format!(
        r#"apiVersion: tollgate.dev/v1alpha1
kind: ActionPolicy
metadata: {{ name: mcp-e2e }}
spec:
  routes:
    - name: tools
      protocol: mcp
      hosts: ["127.0.0.1:{port}"]
  rules:
    - name: mcp-session
      effect: allow
      protocol: mcp
      match: {{ servers: [tools], methods: [initialize, ping, "notifications/*", tools/list, "$/listen", "$/close"] }}
    - name: no-deletes
      effect: deny
      protocol: mcp
      reason: deleting files needs a human; ask the on-call
      controls: ["SOC2 CC6.1"]
      match: {{ tools: [delete_file] }}
    - name: read-workspace
      effect: allow
      protocol: mcp
      match:
        servers: [tools]
        tools: [read_file]
        arguments: [{{ pointer: /path, withinPath: /workspace }}]
    - name: arithmetic
      effect: allow
      protocol: mcp
      match: {{ tools: [add] }}
    - name: short-searches
      effect: allow
      protocol: mcp
      match:
        tools: [search]
        arguments: [{{ pointer: /query, maxLength: 20 }}]
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_sdk_calls_are_allowed_denied_and_audited() {
    require_python(&["mcp", "httpx"]);
    let port = free_port();
    // Decisions go to the tamper-evident journal, read back with
    // `tollgate audit tail`; it must verify afterwards.
    let state = tempfile::tempdir().unwrap();
    let journal = state.path().join("journal");
    let mut sidecar = Sidecar::start(
        Some(&policy(port)),
        &[
            "--audit-dir",
            journal.to_str().unwrap(),
            "--state-dir",
            state.path().to_str().unwrap(),
        ],
    )
    .await;
    let _server = start_mcp_server(port).await;

    let mut client = tokio::process::Command::new("python3");
    client
        .arg(python_script("mcp_client.py"))
        .arg(format!("http://127.0.0.1:{port}/mcp"))
        .env("HTTP_PROXY", sidecar.url())
        .env("http_proxy", sidecar.url())
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .env_remove("HTTPS_PROXY")
        .env_remove("ALL_PROXY")
        .env("PYTHONUNBUFFERED", "1");
    let (code, stdout, stderr) = run_bounded(client, Duration::from_secs(60)).await;
    assert_eq!(
        code,
        Some(0),
        "the MCP client failed:\n{stdout}\n{stderr}\n{}",
        sidecar.log()
    );
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 6, "{stdout}");

    // tools/list went through and returned the server's tools.
    assert_eq!(
        lines[0]["tools"],
        serde_json::json!(["add", "delete_file", "read_file", "search"])
    );
    // An allowed call returns the tool's result.
    assert_eq!(lines[1]["ok"], true, "{}", lines[1]);
    assert_eq!(lines[1]["text"], "contents of /workspace/notes.md");
    // The argument constraint (withinPath /workspace) bites.
    assert_eq!(lines[2]["ok"], false);
    assert_eq!(lines[2]["code"], -32040);
    let msg = lines[2]["error"].as_str().unwrap();
    assert!(
        msg.contains("no rule of action policy \"mcp-e2e\" allows mcp tools/call tools/read_file"),
        "{msg}"
    );
    // A deny rule's reason reaches the client.
    assert_eq!(lines[3]["ok"], false);
    assert!(
        lines[3]["error"]
            .as_str()
            .unwrap()
            .contains("deleting files needs a human"),
        "{}",
        lines[3]
    );
    assert_eq!(lines[3]["data"]["rule"], "no-deletes");
    assert_eq!(lines[4]["ok"], true);
    assert_eq!(lines[4]["text"], "5");
    // maxLength on the query.
    assert_eq!(lines[5]["ok"], false);

    // Exactly one audit event per tool call, with the decision and rule.
    let calls = sidecar
        .events_where(5, |e| e["action"]["verb"] == "tools/call")
        .await;
    assert_eq!(calls.len(), 5, "{calls:#?}");
    let summary: Vec<(String, String, String)> = calls
        .iter()
        .map(|e| {
            (
                e["action"]["target"].as_str().unwrap().to_owned(),
                outcome(e).to_owned(),
                rule(e).to_owned(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("tools/read_file", "allow", "read-workspace"),
            ("tools/read_file", "deny", "tollgate/default-deny"),
            ("tools/delete_file", "deny", "no-deletes"),
            ("tools/add", "allow", "arithmetic"),
            ("tools/search", "deny", "tollgate/default-deny"),
        ]
        .map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()))
    );
    assert_eq!(
        calls[1]["action"]["attributes"]["arguments"]["path"],
        "/etc/passwd"
    );
    assert_eq!(
        calls[2]["decision"]["controls"],
        serde_json::json!(["SOC2 CC6.1"])
    );
    assert_eq!(calls[2]["priority"], "p1-inform");
    assert_eq!(calls[0]["source"], "sidecar");
    // The session plumbing was decided and recorded too.
    let events = sidecar.events();
    for method in ["initialize", "notifications/initialized", "tools/list"] {
        assert_eq!(
            events
                .iter()
                .filter(|e| e["action"]["verb"] == method)
                .count(),
            1,
            "{method}"
        );
    }
    // And the metrics agree.
    assert_eq!(
        sidecar
            .metric(r#"tollgate_sidecar_decisions_total{protocol="mcp",outcome="deny",rule="no-deletes"}"#)
            .await,
        Some(1.0)
    );
    assert_eq!(
        sidecar
            .metric(r#"tollgate_sidecar_decisions_total{protocol="mcp",outcome="allow",rule="read-workspace"}"#)
            .await,
        Some(1.0)
    );
    // After a clean stop the journal verifies: chain, checkpoints, signature.
    let status = sidecar.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "{status}\n{}", sidecar.log());
    support_journal::verify(&support::bin(), &journal);
}
