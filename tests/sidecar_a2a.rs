//! A2A 1.0 through the sidecar, with the real a2a-sdk: its client (JSON-RPC
//! and HTTP+JSON bindings) talks through `HTTP_PROXY` to its server, which
//! records every operation it executes. Sent messages, task reads and
//! listings are allowed; a cancel denied by a rule written in A2A 1.0
//! spelling (`CancelTask`) is refused in both bindings, on a declared route
//! and on an undeclared host, and the server never runs it.
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
use support::{Sidecar, free_port, outcome, python_script, require_python, rule, run_bounded};

fn policy(port: u16, declared: bool) -> String {
    let route = if declared {
        format!(
            "  routes:\n    - name: planner\n      protocol: a2a\n      hosts: [\"127.0.0.1:{port}\"]\n"
        )
    } else {
        String::new()
    };
    // Undeclared, the agent card and REST reads are plain HTTP to the host.
    let http = if declared {
        ""
    } else {
        "    - name: agent-host\n      effect: allow\n      protocol: http\n      match: { hosts: [\"127.0.0.1\"] }\n"
    };
    format!(
        r#"apiVersion: tollgate.dev/v1alpha1
kind: ActionPolicy
metadata: {{ name: a2a-e2e }}
spec:
{route}  rules:
    - name: no-cancel
      effect: deny
      protocol: a2a
      reason: cancelling another agent's task needs a human
      match: {{ methods: [CancelTask] }}
    - name: a2a-work
      effect: allow
      protocol: a2a
      match: {{ methods: [SendMessage, tasks/get, ListTasks, "$/agent-card"] }}
{http}"#
    )
}

async fn run_client(sidecar: &Sidecar, port: u16, binding: &str) -> Vec<Value> {
    let mut client = tokio::process::Command::new("python3");
    client
        .arg(python_script("a2a_client.py"))
        .arg(format!("http://127.0.0.1:{port}"))
        .arg(binding)
        .env("HTTP_PROXY", sidecar.url())
        .env("http_proxy", sidecar.url())
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .env_remove("HTTPS_PROXY")
        .env_remove("ALL_PROXY")
        .env("PYTHONUNBUFFERED", "1");
    let (code, stdout, stderr) = run_bounded(client, Duration::from_secs(90)).await;
    assert_eq!(
        code,
        Some(0),
        "the A2A client failed:\n{stdout}\n{stderr}\n{}",
        sidecar.log()
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

async fn client_and_server(declared: bool) {
    require_python(&["a2a", "httpx", "uvicorn", "starlette"]);
    let port = free_port();
    let state = tempfile::tempdir().unwrap();
    let log = state.path().join("executed.jsonl");
    let sidecar = Sidecar::start(Some(&policy(port, declared)), &[]).await;
    let _server = support::start_logging_server("a2a_server.py", port, &log).await;

    for binding in ["JSONRPC", "HTTP+JSON"] {
        let steps = run_client(&sidecar, port, binding).await;
        let names: Vec<&str> = steps.iter().map(|s| s["step"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            ["send", "get", "list", "cancel"],
            "{binding}: {steps:?}"
        );
        for step in &steps[..3] {
            assert_eq!(step["ok"], true, "{binding}: {step}\n{}", sidecar.log());
        }
        assert_eq!(steps[3]["ok"], false, "{binding}: the cancel went through");
        let task = steps[0]["task"].as_str().unwrap();
        // The server ran the message, and never the cancel.
        let ran = support::executed(&log);
        assert!(
            ran.iter()
                .any(|r| r["op"] == "execute" && r["task"] == task),
            "{binding}: {ran:?}"
        );
        assert!(
            !ran.iter().any(|r| r["op"] == "cancel"),
            "{binding}: the server cancelled a task: {ran:?}"
        );
    }

    // One event per A2A call, under the canonical method names.
    let a2a = sidecar
        .events_where(6, |e| e["action"]["protocol"] == "a2a")
        .await;
    let cancels: Vec<&Value> = a2a
        .iter()
        .filter(|e| e["action"]["verb"] == "tasks/cancel")
        .collect();
    assert_eq!(cancels.len(), 2, "{a2a:#?}");
    for e in &cancels {
        assert_eq!(outcome(e), "deny");
        assert_eq!(rule(e), "no-cancel");
    }
    let sends = a2a
        .iter()
        .filter(|e| e["action"]["verb"] == "message/send")
        .count();
    assert_eq!(sends, 2, "{a2a:#?}");
    if declared {
        // On the route every call is A2A: reads and listings included.
        for verb in ["tasks/get", "tasks/list"] {
            let n = a2a.iter().filter(|e| e["action"]["verb"] == verb).count();
            assert_eq!(n, 2, "{verb}: {a2a:#?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a2a_sdk_through_a_declared_route() {
    client_and_server(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a2a_sdk_to_an_undeclared_host() {
    client_and_server(false).await;
}
