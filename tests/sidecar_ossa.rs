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

/// Real manifests of the OSSA corpus (`../shared/corpora/ossa` from the
/// repository root, or `TOLLGATE_OSSA_CORPUS`) through the real sidecar,
/// alone: a declared tool on its declared server and the declared model
/// are allowed; the same tool on another host, an undeclared tool and
/// another model are denied. Nothing listens on the declared servers: an
/// allowed call fails upstream, and the decision is what is checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_manifests_through_the_real_sidecar() {
    let dir = std::env::var_os("TOLLGATE_OSSA_CORPUS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpora/ossa")
        });
    let Ok(index) = std::fs::read_to_string(dir.join("index.json")) else {
        eprintln!("skipped: the OSSA corpus ({}) is absent", dir.display());
        return;
    };
    let index: Vec<Value> = serde_json::from_str(&index).unwrap();
    // Schema-valid single-document manifests with an MCP tool on a named
    // server, no autonomy restrictions, and an Anthropic model.
    let mut sample = Vec::new();
    for e in &index {
        if e["schemaValid"] != true || e["documents"] != 1 {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(dir.join(e["file"].as_str().unwrap())) else {
            continue;
        };
        let Ok(doc) = yaml_serde::from_str::<Value>(&text) else {
            continue;
        };
        let spec = &doc["spec"];
        let autonomy = &spec["autonomy"];
        if autonomy["allowed_actions"].is_array()
            || autonomy["approval_required"] != Value::Null
                && autonomy["approval_required"] != false
            || spec["safety"]["rate_limiting"].is_object()
            || spec["llm"]["provider"] != "anthropic"
            || !spec["llm"]["model"].is_string()
            || spec["constraints"]["cost"]["maxTokensPerRequest"].is_number()
        {
            continue;
        }
        let tool = spec["tools"].as_array().into_iter().flatten().find(|t| {
            t["type"] == "mcp"
                && t["name"].is_string()
                && t["capabilities"].is_null()
                && t["endpoint"].is_null()
                && t["config"].is_null()
                && t["server"]
                    .as_str()
                    .is_some_and(|s| !s.contains([':', '/', '$']))
        });
        if let Some(tool) = tool {
            sample.push((
                e["file"].as_str().unwrap().to_owned(),
                text,
                tool["name"].as_str().unwrap().to_owned(),
                tool["server"].as_str().unwrap().to_owned(),
                spec["llm"]["model"].as_str().unwrap().to_owned(),
            ));
        }
        if sample.len() == 3 {
            break;
        }
    }
    assert!(
        !sample.is_empty(),
        "no manifest of the corpus fits the sample"
    );
    for (file, text, tool, server, model) in sample {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("agent.yaml");
        std::fs::write(&path, &text).unwrap();
        let sidecar = Sidecar::start(None, &["--ossa-manifest", path.to_str().unwrap()]).await;
        let headers = [("content-type", "application/json")];
        for host in [server.as_str(), "attacker.example"] {
            let url = format!("http://{host}/mcp");
            via_proxy(sidecar.addr, "POST", &url, &headers, &tools_call(&tool)).await;
        }
        let url = format!("http://{server}/mcp");
        via_proxy(
            sidecar.addr,
            "POST",
            &url,
            &headers,
            &tools_call("tollgate_undeclared_probe"),
        )
        .await;
        for m in [model.as_str(), "tollgate-undeclared-model"] {
            let body = serde_json::json!({"model": m, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]});
            via_proxy(
                sidecar.addr,
                "POST",
                "http://api.anthropic.com/v1/messages",
                &[
                    ("content-type", "application/json"),
                    ("anthropic-version", "2023-06-01"),
                ],
                &body.to_string(),
            )
            .await;
        }
        let events = sidecar
            .events_where(5, |e| rule(e) != "tollgate/upstream-error")
            .await;
        let summary: Vec<(&str, bool)> = events
            .iter()
            .map(|e| (outcome(e), rule(e).starts_with("ossa:")))
            .collect();
        assert_eq!(
            summary,
            [
                ("allow", true),
                ("deny", true),
                ("deny", true),
                ("allow", true),
                ("deny", true),
            ],
            "{file}: {events:#?}\n{}",
            sidecar.log()
        );
        assert_eq!(rule(&events[1]), "ossa:undeclared-tool", "{file}");
        assert_eq!(rule(&events[4]), "ossa:undeclared-llm", "{file}");
    }
}

/// `tollgate sidecar --check --ossa-manifest`: whether the manifest is
/// valid under the official schema of its version, separately from
/// whether the sidecar can enforce it (which alone decides the exit code),
/// with what is declared but not enforced.
#[test]
fn check_tells_schema_validity_from_enforceability() {
    let dir = tempfile::tempdir().unwrap();
    let run = |text: &str| {
        let path = dir.path().join("agent.yaml");
        std::fs::write(&path, text).unwrap();
        let out = std::process::Command::new(support::bin())
            .args(["sidecar", "--check", "--ossa-manifest"])
            .arg(&path)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // The example: valid and enforceable.
    let example = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/injection/ossa-agent.yaml"),
    )
    .unwrap();
    let cm: Value = yaml_serde::from_str(&example).unwrap();
    let (code, stdout, stderr) = run(cm["data"]["agent.yaml"].as_str().unwrap());
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("schema: valid under the OSSA 0.3.6 schema"),
        "{stdout}"
    );
    assert!(
        stdout.contains("enforceable: OSSA manifest of agent \"security-scanner\""),
        "{stdout}"
    );
    assert!(stdout.contains("note: spec.autonomy.level"), "{stdout}");
    // Not schema-valid (a tool description 0.2.x does not allow), still
    // enforceable.
    let (code, stdout, stderr) = run(
        "apiVersion: ossa/v0.2.x\nkind: Agent\nmetadata: {name: s, version: 1.0.0}\nspec:\n  llm: {provider: anthropic, model: m}\n  tools:\n    - {type: mcp, name: t, description: d, server: s}\n",
    );
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("schema: NOT valid under the OSSA 0.2.4 schema"),
        "{stdout}"
    );
    assert!(stdout.contains("enforceable:"), "{stdout}");
    // Schema-valid, not enforceable: an unknown provider, the field named.
    let (code, stdout, stderr) = run(
        "apiVersion: ossa/v0.3.6\nkind: Agent\nmetadata: {name: s, version: 1.0.0}\nspec:\n  role: r\n  llm: {provider: \"${LLM_PROVIDER}\", model: m}\n",
    );
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("schema: valid under the OSSA 0.3.6 schema"),
        "{stdout}"
    );
    assert!(
        stderr.contains("not enforceable") && stderr.contains("spec.llm.provider"),
        "{stderr}"
    );
}
