use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use super::*;
use crate::action::{Action, ActionKind, LlmProvider, LlmRequest, McpCall, Target};

mod golden;
mod shapes;

const MANIFEST: &str = r#"apiVersion: ossa/v0.2.x
kind: Agent
metadata:
  name: security-scanner
  version: 1.0.0
spec:
  taxonomy: {domain: security}
  llm:
    provider: anthropic
    model: claude-3-5-sonnet-20241022
    temperature: 0.1
  tools:
    - type: mcp
      name: trivy-scanner
      description: Trivy vulnerability scanner
      auth: {type: bearer, tokenPath: /var/secrets/trivy-token}
      server: trivy
    - type: mcp
      name: github
      server: https://mcp.github.example/mcp
      capabilities: [get_file_contents, "search_*"]
    - type: function
      name: summarise
  autonomy:
    level: autonomous
    approval_required: false
    blocked_actions: [delete_repository]
  observability: {tracing: {enabled: true}}
"#;

fn mcp(server: &str, method: &str, tool: Option<&str>) -> Action {
    Action {
        target: Target {
            method: "POST".into(),
            scheme: "https".into(),
            host: server.into(),
            port: 443,
            path: "/mcp".into(),
            query: None,
        },
        route: None,
        upgrade: None,
        kind: ActionKind::Mcp(McpCall {
            method: method.into(),
            tool: tool.map(str::to_owned),
            server: server.into(),
            ..McpCall::default()
        }),
    }
}

fn llm(provider: LlmProvider, model: &str) -> Action {
    Action {
        target: Target {
            method: "POST".into(),
            scheme: "https".into(),
            host: "api.anthropic.com".into(),
            port: 443,
            path: "/v1/messages".into(),
            query: None,
        },
        route: None,
        upgrade: None,
        kind: ActionKind::Llm(LlmRequest {
            provider,
            operation: "messages".into(),
            model: Some(model.into()),
            max_tokens: None,
            choices: 1,
            worst_case_tokens: None,
            stream: false,
        }),
    }
}

fn http(host: &str) -> Action {
    Action::http(Target {
        method: "GET".into(),
        scheme: "https".into(),
        host: host.into(),
        port: 443,
        path: "/".into(),
        query: None,
    })
}

fn decide(policy: &ActionPolicy, action: &Action) -> (bool, String) {
    let d = policy.evaluate(action, Instant::now());
    (d.allowed(), d.reason.to_string())
}

#[test]
fn the_seed_manifest_parses() {
    let seed =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/seeds/000_8519e8a90b4b52bb.txt");
    let Ok(text) = std::fs::read_to_string(&seed) else {
        eprintln!(
            "skipped: {} is absent (shared seeds not checked out)",
            seed.display()
        );
        return;
    };
    let block = text
        .split("```yaml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .unwrap();
    let m = AgentManifest::parse(block, "seed.yaml").unwrap();
    assert_eq!(m.name(), "security-scanner");
    assert_eq!(m.tools()[0].name.as_deref(), Some("trivy-scanner"));
    assert_eq!(
        m.spec.llm.as_ref().unwrap().provider.as_deref(),
        Some("anthropic")
    );
    // The seed's tool names no server: alone, the baseline allows it
    // nowhere; with an ActionPolicy, only on its MCP routes.
    let policy = Baseline::standalone(&m, &Placement::default()).unwrap();
    assert!(
        !decide(
            &policy,
            &mcp("trivy.tools.svc", "tools/call", Some("trivy-scanner"))
        )
        .0
    );
    let placement = Placement {
        mcp_routes: vec!["trivy".into()],
        ..Placement::default()
    };
    let policy = Baseline::constraint(&m, &placement).unwrap();
    assert!(decide(&policy, &mcp("trivy", "tools/call", Some("trivy-scanner"))).0);
    assert!(
        !decide(
            &policy,
            &mcp("attacker.example", "tools/call", Some("trivy-scanner"))
        )
        .0
    );
    assert!(
        !decide(
            &policy,
            &mcp("trivy.tools.svc", "tools/call", Some("kubectl_exec"))
        )
        .0
    );
}

#[test]
fn errors_are_located_and_say_what_is_expected() {
    let cases = [
        (
            "apiVersion: v1\nkind: Agent\nspec: {}\n",
            "apiVersion: expected an OSSA version",
        ),
        (
            "apiVersion: ossa/v0.2.x\nkind: Pod\nspec: {}\n",
            "kind: expected \"Agent\"",
        ),
        (
            "apiVersion: ossa/v0.2.x\nkind: Agent\nspec:\n  llm: {provider: hal9000}\n",
            "spec.llm.provider: provider \"hal9000\" is not one",
        ),
        (
            "apiVersion: ossa/${OSSA_VERSION}\nkind: Agent\nspec: {}\n",
            "apiVersion: expected an OSSA version",
        ),
        (
            "apiVersion: ossa/v0.3.6\nkind: Agent\nspec:\n  llm: {provider: \"${LLM_PROVIDER}\"}\n",
            "spec.llm.provider: provider \"${LLM_PROVIDER}\" depends on the agent's environment",
        ),
        (
            "apiVersion: ossa/v0.3.6\nkind: Agent\nspec:\n  tools:\n    - {type: teleport, name: x}\n",
            "spec.tools[0].type: tool type \"teleport\" is not one the OSSA schemas define",
        ),
        (
            "apiVersion: ossa/v0.3.6\nkind: Agent\nspec:\n  tools:\n    - {type: mcp, name: x, server: a, config: {server: b}}\n",
            "spec.tools[0].config.server: names server b but spec.tools[0].server names a",
        ),
        (
            "apiVersion: ossa/v0.3.6\nkind: Agent\nspec:\n  tools:\n    - {type: mcp, name: x, endpoint: \"http://user@evil.example/\"}\n",
            "spec.tools[0].endpoint: \"http://user@evil.example/\": user information",
        ),
        (
            "apiVersion: ossa/v0.3.6\nkind: Agent\nspec:\n  tools:\n    - {type: mcp, name: x, endpoint: \"http://${MCP_HOST}:80\"}\n",
            "spec.tools[0].endpoint: \"http://${MCP_HOST}:80\" is a template",
        ),
        (
            "apiVersion: ossa/v0.3.6\nkind: Agent\nspec:\n  tools:\n    - {type: mcp, name: x, server: \"*.example\"}\n",
            "is not a host name",
        ),
        (
            "kind: Agent\napiVersion: ossa/v0.3.6\nspec: {}\n---\nkind: Agent\napiVersion: ossa/v0.3.6\nmetadata: {name: b}\nspec: {}\n",
            "the file holds 2 Agent documents",
        ),
        ("", "agent.yaml:1:1: missing field `apiVersion`"),
        (
            "apiVersion: ossa/v0.2.x\nkind: Agent\nspec:\n  tools:\n    - type: mcp\n      name: x\n      capabilities: yes-please\n",
            "agent.yaml:7:",
        ),
        (
            "apiVersion: ossa/v0.2.x\nkind: Agent\n",
            "missing field `spec`",
        ),
        ("- not\n- a map\n", "agent.yaml:1:1"),
    ];
    for (text, want) in cases {
        let err = AgentManifest::parse(text, "agent.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(want),
            "{text:?}: {err} should contain {want:?}"
        );
    }
    let big = "#".repeat(MAX_MANIFEST_BYTES + 1);
    let err = AgentManifest::parse(&big, "agent.yaml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("the limit is"), "{err}");
}

#[test]
fn only_declared_tools_servers_and_model_are_allowed() {
    let m = AgentManifest::parse(MANIFEST, "agent.yaml").unwrap();
    let policy = Baseline::standalone(&m, &Placement::default()).unwrap();
    let cases: [(Action, bool, &str); 11] = [
        (
            mcp("trivy", "tools/call", Some("trivy-scanner")),
            true,
            "spec.tools[0]",
        ),
        (
            mcp("trivy", "tools/call", Some("exec_shell")),
            false,
            "does not declare this MCP tool",
        ),
        (
            mcp("mcp.github.example", "tools/call", Some("search_code")),
            true,
            "spec.tools[1]",
        ),
        (
            mcp(
                "mcp.github.example",
                "tools/call",
                Some("get_file_contents"),
            ),
            true,
            "spec.tools[1]",
        ),
        // A github capability on another server is not declared.
        (
            mcp("evil.example", "tools/call", Some("search_code")),
            false,
            "does not declare",
        ),
        (
            mcp(
                "mcp.github.example",
                "tools/call",
                Some("delete_repository"),
            ),
            false,
            "blocks this tool",
        ),
        (
            mcp("mcp.github.example", "initialize", None),
            true,
            "session plumbing",
        ),
        (
            mcp("mcp.github.example", "resources/read", None),
            false,
            "does not declare",
        ),
        (
            llm(LlmProvider::Anthropic, "claude-3-5-sonnet-20241022"),
            true,
            "spec.llm",
        ),
        (
            llm(LlmProvider::Anthropic, "claude-opus-4"),
            false,
            "only claude-3-5-sonnet-20241022 declared in spec.llm",
        ),
        (http("example.com"), false, "has no ActionPolicy"),
    ];
    for (action, allowed, reason) in cases {
        let (got, why) = decide(&policy, &action);
        assert_eq!(got, allowed, "{}: {why}", action.target_label());
        assert!(
            why.contains(reason),
            "{}: {why} should contain {reason:?}",
            action.target_label()
        );
    }
    assert!(!decide(&policy, &llm(LlmProvider::Openai, "gpt-4o")).0);
}

#[test]
fn approval_required_denies_tool_calls_except_pre_approved_ones() {
    let text = MANIFEST.replace(
        "approval_required: false",
        "approval_required: true\n    allowed_actions: [get_file_contents]",
    );
    let m = AgentManifest::parse(&text, "agent.yaml").unwrap();
    let policy = Baseline::standalone(&m, &Placement::default()).unwrap();
    let (ok, why) = decide(&policy, &mcp("trivy", "tools/call", Some("trivy-scanner")));
    assert!(!ok);
    assert!(why.contains("requires a person's approval"), "{why}");
    assert!(
        decide(
            &policy,
            &mcp(
                "mcp.github.example",
                "tools/call",
                Some("get_file_contents")
            )
        )
        .0
    );
    assert!(decide(&policy, &mcp("trivy", "tools/list", None)).0);
    // Pre-approved, but only on the server that declares it.
    let (ok, why) = decide(
        &policy,
        &mcp("attacker.example", "tools/call", Some("get_file_contents")),
    );
    assert!(!ok, "{why}");
    assert!(!decide(&policy, &mcp("attacker.example", "initialize", None)).0);
}

#[test]
fn combined_with_an_action_policy_an_action_must_pass_both() {
    let m = AgentManifest::parse(MANIFEST, "agent.yaml").unwrap();
    let file = r#"apiVersion: tollgate.dev/v1alpha1
kind: ActionPolicy
metadata: {name: scanner}
spec:
  rules:
    - {name: no-search, effect: deny, protocol: mcp, match: {tools: ["search_*"]}}
    - {name: any-mcp, effect: allow, protocol: mcp}
    - {name: any-llm, effect: allow, protocol: llm}
    - {name: docs, effect: allow, protocol: http, match: {hosts: [docs.example.com]}}
"#;
    let policy = ActionPolicy::parse(file, "policy.yaml")
        .unwrap()
        .with_baseline(Arc::new(
            Baseline::constraint(&m, &Placement::default()).unwrap(),
        ));
    assert!(policy.baseline().is_some());
    // Both allow.
    assert!(decide(&policy, &mcp("trivy", "tools/call", Some("trivy-scanner"))).0);
    // The file allows any MCP tool; the baseline refuses an undeclared one.
    let (ok, why) = decide(&policy, &mcp("trivy", "tools/call", Some("exec_shell")));
    assert!(!ok);
    assert!(why.contains("OSSA manifest"), "{why}");
    let d = policy.evaluate(
        &mcp("trivy", "tools/call", Some("exec_shell")),
        Instant::now(),
    );
    assert_eq!(d.rule.as_deref(), Some("ossa:undeclared-tool"));
    assert_eq!(d.rule_index, None);
    // The baseline allows a declared tool; the file denies it.
    let d = policy.evaluate(
        &mcp("mcp.github.example", "tools/call", Some("search_code")),
        Instant::now(),
    );
    assert!(!d.allowed());
    assert_eq!(d.rule.as_deref(), Some("no-search"));
    // The baseline defers HTTP to the file.
    assert!(decide(&policy, &http("docs.example.com")).0);
    assert!(!decide(&policy, &http("example.com")).0);
    // The LLM model is still the manifest's.
    assert!(!decide(&policy, &llm(LlmProvider::Anthropic, "claude-opus-4")).0);
}

#[test]
fn the_example_manifest_is_schema_valid_and_enforced() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/injection/ossa-agent.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    // The example is a ConfigMap holding the manifest under `agent.yaml`.
    let cm: serde_json::Value = yaml_serde::from_str(&text).unwrap();
    let manifest = cm["data"]["agent.yaml"].as_str().unwrap();
    // An official schema accepts it.
    assert_eq!(
        schema::check_manifest(manifest, "agent.yaml").unwrap(),
        schema::SchemaCheck::Valid { schema: "0.3.6" }
    );
    let m = AgentManifest::parse(manifest, "agent.yaml").unwrap();
    let policy = Baseline::standalone(&m, &Placement::new(Some("agents".into()))).unwrap();
    let mut trivy = mcp(
        "trivy.tools.svc.cluster.local",
        "tools/call",
        Some("trivy-scanner"),
    );
    trivy.target.scheme = "http".into();
    trivy.target.port = 8080;
    assert!(decide(&policy, &trivy).0);
    trivy.target.port = 8081;
    assert!(!decide(&policy, &trivy).0);
    assert!(
        decide(
            &policy,
            &mcp("mcp.github.example", "tools/call", Some("search_code"))
        )
        .0
    );
    assert!(
        decide(
            &policy,
            &llm(LlmProvider::Anthropic, "claude-3-5-haiku-20241022")
        )
        .0
    );
    Baseline::constraint(&m, &Placement::default()).unwrap();
    // The example before: no official schema accepted it.
    let before = "apiVersion: ossa/v0.2.x\nkind: Agent\nmetadata: {name: s, version: 1.0.0}\nspec:\n  llm: {provider: anthropic, model: m}\n  tools:\n    - {type: mcp, name: t, description: d}\n";
    assert!(matches!(
        schema::check_manifest(before, "agent.yaml").unwrap(),
        schema::SchemaCheck::Invalid { .. }
    ));
}
