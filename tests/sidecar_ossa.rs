//! OSSA agent manifests through the real `tollgate sidecar`: the official
//! MCP Python SDK calls tools of a FastMCP server with the sidecar as its
//! proxy; the manifest's baseline denies the tools it does not declare even
//! though the ActionPolicy allows every tool, allows the declared ones, and
//! is hot-reloaded. Without an ActionPolicy the baseline alone decides.
//! Also `tollgate wait-ready`, the legacy-mode startup gate, against the
//! real sidecar's readiness.
// Test code: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "support_sidecar/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{
    Sidecar, free_port, outcome, python_script, require_python, rule, run_bounded,
    start_mcp_server, via_proxy,
};

fn policy(port: u16) -> String {
    format!(
        r#"apiVersion: tollgate.dev/v1alpha1
kind: ActionPolicy
metadata: {{ name: any-tool }}
spec:
  routes:
    - {{ name: tools, protocol: mcp, hosts: ["127.0.0.1:{port}"] }}
  rules:
    - {{ name: any-mcp, effect: allow, protocol: mcp, match: {{ servers: [tools] }} }}
"#
    )
}

fn manifest(tools: &[&str]) -> String {
    let mut out = String::from(
        "apiVersion: ossa/v0.2.x\nkind: Agent\nmetadata: {name: file-agent}\nspec:\n  llm: {provider: openai, model: gpt-4o}\n  tools:\n",
    );
    for t in tools {
        out.push_str(&format!("    - {{type: mcp, name: {t}, server: tools}}\n"));
    }
    out
}

fn tools_call(tool: &str) -> String {
    serde_json::json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": tool, "arguments": {}}})
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ossa_baseline_denies_undeclared_tools_the_policy_allows() {
    require_python(&["mcp", "httpx"]);
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let manifest_path = dir.path().join("agent.yaml");
    std::fs::write(&manifest_path, manifest(&["read_file", "add"])).unwrap();
    let sidecar = Sidecar::start(
        Some(&policy(port)),
        &["--ossa-manifest", manifest_path.to_str().unwrap()],
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
    assert_eq!(code, Some(0), "{stdout}\n{stderr}\n{}", sidecar.log());
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6, "{stdout}");
    // Declared: allowed by both (the manifest names no argument limits).
    assert_eq!(lines[1]["ok"], true, "{}", lines[1]);
    assert_eq!(lines[2]["ok"], true, "{}", lines[2]);
    assert_eq!(lines[4]["text"], "5");
    // Undeclared: the policy allows any tool, the manifest does not.
    assert_eq!(lines[3]["ok"], false);
    let msg = lines[3]["error"].as_str().unwrap();
    assert!(
        msg.contains("the OSSA manifest of agent \"file-agent\" does not declare this MCP tool"),
        "{msg}"
    );
    assert_eq!(lines[5]["ok"], false);

    let calls = sidecar
        .events_where(5, |e| e["action"]["verb"] == "tools/call")
        .await;
    let summary: Vec<(&str, &str, &str)> = calls
        .iter()
        .map(|e| (e["action"]["target"].as_str().unwrap(), outcome(e), rule(e)))
        .collect();
    assert_eq!(
        summary,
        [
            ("tools/read_file", "allow", "any-mcp"),
            ("tools/read_file", "allow", "any-mcp"),
            ("tools/delete_file", "deny", "ossa:undeclared-tool"),
            ("tools/add", "allow", "any-mcp"),
            ("tools/search", "deny", "ossa:undeclared-tool"),
        ]
    );

    // Hot reload: declaring `search` lets it through.
    let tmp = dir.path().join(".agent.tmp");
    std::fs::write(&tmp, manifest(&["read_file", "add", "search"])).unwrap();
    std::fs::rename(&tmp, &manifest_path).unwrap();
    let url = format!("http://127.0.0.1:{port}/mcp");
    let headers = [
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
    ];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        via_proxy(sidecar.addr, "POST", &url, &headers, &tools_call("search")).await;
        let allowed = sidecar
            .events()
            .iter()
            .any(|e| e["action"]["target"] == "tools/search" && outcome(e) == "allow");
        if allowed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the reloaded manifest never allowed search:\n{}",
            sidecar.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_action_policy_the_baseline_alone_decides() {
    let dir = tempfile::tempdir().unwrap();
    let manifest_path = dir.path().join("agent.yaml");
    // No routes without a policy: the tool names its server by URL.
    let port = free_port();
    let text = manifest(&["read_file"]).replace(
        "server: tools",
        &format!("server: \"http://127.0.0.1:{port}\""),
    );
    std::fs::write(&manifest_path, text).unwrap();
    let sidecar = Sidecar::start(None, &["--ossa-manifest", manifest_path.to_str().unwrap()]).await;
    // Nothing listens there: an allowed call fails upstream (502), a denied
    // one never leaves the sidecar.
    let url = format!("http://127.0.0.1:{port}/mcp");
    let headers = [("content-type", "application/json")];
    let (_, _, body) = via_proxy(
        sidecar.addr,
        "POST",
        &url,
        &headers,
        &tools_call("drop_tables"),
    )
    .await;
    assert!(
        body.to_string().contains("does not declare this MCP tool"),
        "{body}"
    );
    via_proxy(
        sidecar.addr,
        "POST",
        &url,
        &headers,
        &tools_call("read_file"),
    )
    .await;
    let (status, _, body) =
        via_proxy(sidecar.addr, "GET", "http://example.invalid/", &[], "").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.to_string().contains("has no ActionPolicy"), "{body}");

    // Decisions (the failed upstream of the allowed call is recorded too).
    let events = sidecar
        .events_where(3, |e| rule(e) != "tollgate/upstream-error")
        .await;
    let summary: Vec<(&str, &str)> = events.iter().map(|e| (outcome(e), rule(e))).collect();
    assert_eq!(
        summary,
        [
            ("deny", "ossa:undeclared-tool"),
            ("allow", "ossa:tool[0]:read_file"),
            ("deny", "ossa:not-declared"),
        ],
        "{events:#?}"
    );
}

/// `tollgate wait-ready`, the legacy-mode `postStart` gate: it returns 0
/// once the sidecar's `/readyz` answers 200, and 1 when nothing becomes
/// ready within its timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_ready_gates_on_the_sidecar_readiness() {
    let dir = tempfile::tempdir().unwrap();
    let manifest_path = dir.path().join("agent.yaml");
    std::fs::write(&manifest_path, manifest(&["read_file"])).unwrap();
    let sidecar = Sidecar::start(None, &["--ossa-manifest", manifest_path.to_str().unwrap()]).await;
    let ready = std::process::Command::new(support::bin())
        .args(["wait-ready", "--timeout", "10s", "--url"])
        .arg(format!("http://{}/readyz", sidecar.metrics))
        .output()
        .unwrap();
    assert_eq!(
        ready.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ready.stderr)
    );
    let started = Instant::now();
    let never = std::process::Command::new(support::bin())
        .args([
            "wait-ready",
            "--timeout",
            "1s",
            "--interval",
            "100ms",
            "--url",
        ])
        .arg(format!("http://127.0.0.1:{}/readyz", free_port()))
        .output()
        .unwrap();
    assert_eq!(never.status.code(), Some(1));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        String::from_utf8_lossy(&never.stderr).contains("was not ready within 1s"),
        "{}",
        String::from_utf8_lossy(&never.stderr)
    );
}
