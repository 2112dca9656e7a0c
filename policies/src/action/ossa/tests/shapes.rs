//! Every shape the OSSA schemas allow for the fields the baseline reads,
//! and what each becomes.

use std::time::Instant;

use super::super::{AgentManifest, Baseline, Placement};
use super::{http, llm, mcp};
use crate::action::{Action, ActionPolicy, LlmProvider};

fn baseline(text: &str) -> ActionPolicy {
    let m = AgentManifest::parse(text, "agent.yaml").unwrap_or_else(|e| panic!("{e}\n{text}"));
    Baseline::standalone(&m, &Placement::new(Some("agents".into()))).unwrap()
}

fn allowed(policy: &ActionPolicy, action: &Action) -> bool {
    policy.evaluate(action, Instant::now()).allowed()
}

const HEAD: &str = "apiVersion: ossa/v0.3.6\nkind: Agent\nmetadata: {name: a}\nspec:\n  role: r\n";

#[test]
fn capabilities_as_objects_and_mcp_tools_without_a_name() {
    let p = baseline(&format!(
        "{HEAD}  tools:\n    - type: mcp\n      server: fs-mcp\n      capabilities:\n        - {{name: read_file, description: reads}}\n        - list_dir\n"
    ));
    assert!(allowed(&p, &mcp("fs-mcp", "tools/call", Some("read_file"))));
    assert!(allowed(&p, &mcp("fs-mcp", "tools/call", Some("list_dir"))));
    assert!(!allowed(
        &p,
        &mcp("fs-mcp", "tools/call", Some("write_file"))
    ));
    assert!(!allowed(
        &p,
        &mcp("evil.example", "tools/call", Some("read_file"))
    ));
}

#[test]
fn providers_of_the_schema_enum_and_environment_defaults() {
    for (provider, family) in [
        ("mistral", LlmProvider::Openai),
        ("google", LlmProvider::Openai),
        ("groq", LlmProvider::Openai),
        ("deepseek", LlmProvider::Openai),
        ("${LLM_PROVIDER:-anthropic}", LlmProvider::Anthropic),
        ("${OSSA_LLM_PROVIDER:-openai}", LlmProvider::Openai),
    ] {
        let p = baseline(&format!(
            "{HEAD}  llm: {{provider: \"{provider}\", model: m-1}}\n"
        ));
        assert!(allowed(&p, &llm(family, "m-1")), "{provider}");
        assert!(!allowed(&p, &llm(family, "m-2")), "{provider}");
    }
    // custom: either API, the model still decides.
    let p = baseline(&format!("{HEAD}  llm: {{provider: custom, model: m-1}}\n"));
    assert!(allowed(&p, &llm(LlmProvider::Anthropic, "m-1")));
    assert!(allowed(&p, &llm(LlmProvider::Openai, "m-1")));
    assert!(!allowed(&p, &llm(LlmProvider::Openai, "m-2")));
}

#[test]
fn model_maps_and_fallback_models() {
    let p = baseline(&format!(
        "{HEAD}  llm:\n    provider: anthropic\n    model: {{default: claude-a, fast: claude-b}}\n    fallback_models:\n      - {{provider: openai, model: gpt-4o}}\n"
    ));
    assert!(allowed(&p, &llm(LlmProvider::Anthropic, "claude-a")));
    assert!(allowed(&p, &llm(LlmProvider::Anthropic, "claude-b")));
    assert!(allowed(&p, &llm(LlmProvider::Openai, "gpt-4o")));
    assert!(!allowed(&p, &llm(LlmProvider::Openai, "gpt-5")));
}

#[test]
fn approval_required_as_a_list_denies_exactly_those_tools() {
    let p = baseline(&format!(
        "{HEAD}  tools:\n    - {{type: mcp, name: git, server: git-mcp, capabilities: [read, push]}}\n  autonomy:\n    approval_required: [push]\n"
    ));
    assert!(allowed(&p, &mcp("git-mcp", "tools/call", Some("read"))));
    let d = p.evaluate(&mcp("git-mcp", "tools/call", Some("push")), Instant::now());
    assert!(!d.allowed());
    assert_eq!(d.rule.as_deref(), Some("ossa:requires-approval"));
}

#[test]
fn allowed_actions_without_approval_is_a_whitelist_of_declared_tools() {
    let p = baseline(&format!(
        "{HEAD}  tools:\n    - {{type: mcp, name: git, server: git-mcp, capabilities: [read, push, \"list_*\"]}}\n  autonomy:\n    approval_required: false\n    allowed_actions: [read, list_branches, deploy]\n"
    ));
    assert!(allowed(&p, &mcp("git-mcp", "tools/call", Some("read"))));
    assert!(allowed(
        &p,
        &mcp("git-mcp", "tools/call", Some("list_branches"))
    ));
    assert!(!allowed(
        &p,
        &mcp("git-mcp", "tools/call", Some("list_tags"))
    ));
    assert!(!allowed(&p, &mcp("git-mcp", "tools/call", Some("push"))));
    // Whitelisted but not declared.
    assert!(!allowed(&p, &mcp("git-mcp", "tools/call", Some("deploy"))));
}

#[test]
fn multi_document_files_read_the_agent_document() {
    let text = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x}}\n---\n{HEAD}  llm: {{provider: openai, model: gpt-4o}}\n"
    );
    let m = AgentManifest::parse(&text, "agent.yaml").unwrap();
    assert_eq!(m.name(), "a");
}

#[test]
fn cost_constraints_cap_requests_and_budget_tokens() {
    let p = baseline(&format!(
        "{HEAD}  llm: {{provider: openai, model: gpt-4o}}\n  constraints:\n    cost: {{maxTokensPerRequest: 1000, maxTokensPerDay: 5000, maxCostPerDay: 3}}\n"
    ));
    let mut req = llm(LlmProvider::Openai, "gpt-4o");
    if let crate::action::ActionKind::Llm(l) = &mut req.kind {
        l.max_tokens = Some(1000);
    }
    assert!(allowed(&p, &req));
    if let crate::action::ActionKind::Llm(l) = &mut req.kind {
        l.max_tokens = Some(1001);
    }
    let d = p.evaluate(&req, Instant::now());
    assert!(!d.allowed());
    assert!(d.reason.contains("at most 1000"), "{}", d.reason);
    // No cap in the request: it could exceed the declared limit.
    assert!(!allowed(&p, &llm(LlmProvider::Openai, "gpt-4o")));
    // The daily budget is charged to the rule that allowed the request.
    if let crate::action::ActionKind::Llm(l) = &mut req.kind {
        l.max_tokens = Some(10);
    }
    let now = Instant::now();
    let d = p.evaluate(&req, now);
    p.charge_tokens(d.rule_index.unwrap(), 5000, now);
    let d = p.evaluate(&req, now);
    assert!(!d.allowed());
    assert!(d.reason.contains("token budget"), "{}", d.reason);
}

#[test]
fn rate_limiting_limits_every_action() {
    let p = baseline(&format!(
        "{HEAD}  tools:\n    - {{type: mcp, name: t, server: s}}\n  safety:\n    rate_limiting: {{enabled: true, requests_per_minute: 2}}\n"
    ));
    let now = Instant::now();
    let call = mcp("s", "tools/call", Some("t"));
    assert!(p.evaluate(&call, now).allowed());
    assert!(p.evaluate(&call, now).allowed());
    let d = p.evaluate(&call, now);
    assert!(!d.allowed());
    assert!(d.reason.contains("rate limit"), "{}", d.reason);
    // Off when disabled.
    let p = baseline(&format!(
        "{HEAD}  tools:\n    - {{type: mcp, name: t, server: s}}\n  safety:\n    rate_limiting: {{enabled: false, requests_per_minute: 1}}\n"
    ));
    for _ in 0..3 {
        assert!(p.evaluate(&call, now).allowed());
    }
}

#[test]
fn a_tool_transport_rate_limit_limits_that_tool() {
    let p = baseline(&format!(
        "{HEAD}  tools:\n    - type: mcp\n      name: gitlab\n      endpoint: https://gitlab.example/api/v4\n      transport: {{protocol: http, rateLimit: {{requestsPerMinute: 1}}}}\n"
    ));
    let now = Instant::now();
    let call = mcp("gitlab.example", "tools/call", Some("gitlab"));
    assert!(p.evaluate(&call, now).allowed());
    assert!(!p.evaluate(&call, now).allowed());
}

#[test]
fn in_cluster_names_match_the_way_kubernetes_resolves_them() {
    let p = baseline(&format!(
        "{HEAD}  tools:\n    - {{type: mcp, name: a, server: kubernetes-mcp}}\n    - {{type: mcp, name: b, server: other-mcp.default.svc.cluster.local}}\n"
    ));
    // The pod runs in "agents".
    for host in [
        "kubernetes-mcp",
        "kubernetes-mcp.agents",
        "kubernetes-mcp.agents.svc",
        "kubernetes-mcp.agents.svc.cluster.local",
    ] {
        assert!(allowed(&p, &mcp(host, "tools/call", Some("a"))), "{host}");
    }
    for host in [
        "kubernetes-mcp.default.svc.cluster.local",
        "kubernetes-mcp.evil.example",
    ] {
        assert!(!allowed(&p, &mcp(host, "tools/call", Some("a"))), "{host}");
    }
    for host in [
        "other-mcp.default",
        "other-mcp.default.svc",
        "other-mcp.default.svc.cluster.local",
    ] {
        assert!(allowed(&p, &mcp(host, "tools/call", Some("b"))), "{host}");
    }
    // The bare name is another Service in the pod's own namespace.
    assert!(!allowed(&p, &mcp("other-mcp", "tools/call", Some("b"))));
}

#[test]
fn network_access_mcp_servers_and_tool_permissions_of_0_4() {
    let p = baseline(
        "apiVersion: ossa/v0.4.6\nkind: Agent\nmetadata: {name: a}\nspec:\n  security:\n    network_access:\n      allowed_domains: [api.github.com, \"*.evil.example\"]\n      blocked_domains: [evil.example]\n  protocols:\n    mcp:\n      servers:\n        - {name: fs, url: \"http://fs-mcp:3000/mcp\", tools: [read_file, write_file]}\n  governance:\n    authorization:\n      tool_permissions:\n        - {tool: write_file, requires_approval: true}\n",
    );
    assert!(allowed(&p, &http("api.github.com")));
    assert!(!allowed(&p, &http("example.com")));
    assert!(!allowed(&p, &http("evil.example")));
    assert!(!allowed(&p, &http("api.evil.example")));
    assert!(!allowed(&p, &mcp("evil.example", "initialize", None)));
    let mut call = mcp("fs-mcp", "tools/call", Some("read_file"));
    call.target.port = 3000;
    call.target.scheme = "http".into();
    assert!(allowed(&p, &call));
    call.kind = mcp("fs-mcp", "tools/call", Some("write_file")).kind;
    assert!(!allowed(&p, &call));
}

#[test]
fn undeclared_http_and_a2a_are_the_action_policys_when_none_is_declared() {
    let text = format!("{HEAD}  tools:\n    - {{type: function, name: f}}\n");
    let m = AgentManifest::parse(&text, "agent.yaml").unwrap();
    let c = Baseline::constraint(&m, &Placement::default()).unwrap();
    assert!(allowed(&c, &http("example.com")));
    let plan = Baseline::plan(&m, &Placement::default(), false).unwrap();
    assert!(
        plan.notes.iter().any(|n| n.contains("runs in the agent")),
        "{:?}",
        plan.notes
    );
    // Declared HTTP endpoints narrow what the ActionPolicy may allow.
    let text = format!(
        "{HEAD}  tools:\n    - {{type: http, name: api, endpoint: \"https://api.example/v1\"}}\n"
    );
    let m = AgentManifest::parse(&text, "agent.yaml").unwrap();
    let c = Baseline::constraint(&m, &Placement::default()).unwrap();
    assert!(!allowed(&c, &http("example.com")));
    let mut ok = http("api.example");
    ok.target.path = "/v1/items".into();
    assert!(allowed(&c, &ok));
    ok.target.path = "/v10".into();
    assert!(!allowed(&c, &ok));
}

#[test]
fn environment_defaults_and_stdio_commands_as_servers() {
    let text = format!(
        "{HEAD}  tools:\n    - {{type: mcp, name: a, endpoint: \"${{GITLAB_URL:-https://gitlab.example/api/v4}}\"}}\n    - {{type: mcp, name: b, endpoint: \"${{HOOK_URL:-}}\"}}\n    - {{type: mcp, name: c, config: {{server: \"npx -y @modelcontextprotocol/server-github\"}}}}\n"
    );
    let p = baseline(&text);
    // The default is the server.
    assert!(allowed(&p, &mcp("gitlab.example", "tools/call", Some("a"))));
    assert!(!allowed(
        &p,
        &mcp("attacker.example", "tools/call", Some("a"))
    ));
    // No default, or a command: no server, so nowhere.
    assert!(!allowed(
        &p,
        &mcp("attacker.example", "tools/call", Some("b"))
    ));
    assert!(!allowed(
        &p,
        &mcp("attacker.example", "tools/call", Some("c"))
    ));
    let m = AgentManifest::parse(&text, "agent.yaml").unwrap();
    let notes = Baseline::plan(&m, &Placement::default(), true)
        .unwrap()
        .notes;
    assert!(
        notes.iter().any(|n| n.contains("has no default")),
        "{notes:?}"
    );
    assert!(
        notes.iter().any(|n| n.contains("stdio MCP server")),
        "{notes:?}"
    );
}
