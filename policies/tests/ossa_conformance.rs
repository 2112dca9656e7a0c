//! Conformance with real OSSA manifests: every `kind: Agent` manifest of
//! the corpus in `../shared/corpora/ossa` (from the repository root; see
//! its README), read as the sidecar reads it.
//!
//! - Every manifest valid under its strict 0.2.x–0.3.x schema and written
//!   as one YAML document is accepted, or refused for one of the documented
//!   fail-closed reasons; at least 95% are accepted.
//! - The shipped schemas agree with the corpus index on validity.
//! - For every accepted one the baseline allows the declared tools on
//!   their declared servers and the declared model, and nothing else the
//!   probes try (the same tools elsewhere, undeclared tools and models).
//!
//! Skipped, with a message, when the corpus is absent.
// Test code: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::PathBuf;
use std::time::Instant;

use serde_json::Value;
use tollgate_policies::action::ossa::schema::{self, SchemaCheck};
use tollgate_policies::action::ossa::{AgentManifest, Baseline, Placement};
use tollgate_policies::action::{
    Action, ActionKind, ActionPolicy, LlmProvider, LlmRequest, McpCall, Target,
};

/// The refusals the README documents (fail closed), by what their message
/// says.
const DOCUMENTED_REFUSALS: &[&str] = &[
    "is not one the sidecar recognises",
    "depends on the agent's environment and has no default",
    "is a template; write the server",
    "a tool has one server",
    "is not one the OSSA schemas define",
    "is not a host name",
    "user information in a server address",
    "the path must be plain",
    "is not one the sidecar sees (http, https)",
    "expected a server name or URL",
    "expected a whole number of at least 1",
];

fn corpus() -> Option<PathBuf> {
    let dir = std::env::var_os("TOLLGATE_OSSA_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpora/ossa")
        });
    dir.join("index.json").is_file().then_some(dir)
}

struct Entry {
    file: String,
    schema: Option<String>,
    valid: bool,
    documents: Option<u64>,
}

fn strict_single(e: &Entry) -> bool {
    e.valid
        && e.documents == Some(1)
        && e.schema
            .as_deref()
            .is_some_and(|s| s.starts_with("spec_v0.2") || s.starts_with("spec_v0.3"))
}

#[test]
fn every_valid_manifest_of_the_corpus_is_read_and_enforced() {
    let Some(dir) = corpus() else {
        eprintln!(
            "skipped: the OSSA corpus (../shared/corpora/ossa from the repository root, or TOLLGATE_OSSA_CORPUS) is absent"
        );
        return;
    };
    let index: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("index.json")).unwrap()).unwrap();
    let entries: Vec<Entry> = index
        .iter()
        .map(|e| Entry {
            file: e["file"].as_str().unwrap().to_owned(),
            schema: e["schema"].as_str().map(str::to_owned),
            valid: e["schemaValid"].as_bool().unwrap_or(false),
            documents: e["documents"].as_u64(),
        })
        .collect();
    let mut population = 0;
    let mut accepted = 0;
    let mut all_accepted = 0;
    let mut undocumented = Vec::new();
    let mut refusals = Vec::new();
    let mut schema_agree = 0;
    let mut schema_compared = 0;
    let mut schema_disagree = Vec::new();
    let mut probe_failures = Vec::new();
    let mut probes = 0;
    for e in &entries {
        let Ok(text) = std::fs::read_to_string(dir.join(&e.file)) else {
            continue;
        };
        let parsed = AgentManifest::parse(&text, &e.file);
        if parsed.is_ok() {
            all_accepted += 1;
        }
        if e.schema.is_some() && e.documents == Some(1) {
            // Our validation of the shipped schemas against the index's.
            if let Ok(check) = schema::check_manifest(&text, &e.file) {
                schema_compared += 1;
                let ours = matches!(check, SchemaCheck::Valid { .. });
                if ours == e.valid {
                    schema_agree += 1;
                } else {
                    schema_disagree.push(format!("{} (index {}, ours {check:?})", e.file, e.valid));
                }
            }
        }
        if !strict_single(e) {
            continue;
        }
        population += 1;
        match parsed {
            Ok(m) => {
                accepted += 1;
                probes += probe(&m, &text, &e.file, &mut probe_failures);
            }
            Err(err) => {
                let message = err.to_string();
                if !DOCUMENTED_REFUSALS.iter().any(|r| message.contains(r)) {
                    undocumented.push(message.clone());
                }
                refusals.push(message);
            }
        }
    }
    let rate = accepted as f64 * 100.0 / population.max(1) as f64;
    eprintln!(
        "OSSA corpus: {} manifests, {all_accepted} accepted in all; schema-valid 0.2.x-0.3.x single-document: {accepted}/{population} accepted ({rate:.1}%)",
        entries.len()
    );
    for r in &refusals {
        eprintln!("  refused: {r}");
    }
    eprintln!("shipped schemas agree with the index on {schema_agree}/{schema_compared} manifests");
    for d in schema_disagree.iter().take(10) {
        eprintln!("  schema disagreement: {d}");
    }
    eprintln!("{probes} baseline probes on the accepted manifests");
    assert!(population > 200, "{population}");
    assert!(rate >= 95.0, "only {rate:.1}% accepted");
    assert!(
        undocumented.is_empty(),
        "refusals without a documented reason:\n{}",
        undocumented.join("\n")
    );
    assert!(
        schema_agree * 100 >= schema_compared * 95,
        "the shipped schemas disagree with the index too often"
    );
    assert!(probe_failures.is_empty(), "{}", probe_failures.join("\n"));
}

fn target(scheme: &str, host: &str, port: u16, path: &str) -> Target {
    Target {
        method: "POST".into(),
        scheme: scheme.into(),
        host: host.into(),
        port,
        path: path.into(),
        query: None,
    }
}

fn mcp(target: Target, tool: &str) -> Action {
    let server = target.host.clone();
    Action {
        target,
        route: None,
        upgrade: None,
        kind: ActionKind::Mcp(McpCall {
            method: "tools/call".into(),
            tool: Some(tool.into()),
            server,
            ..McpCall::default()
        }),
    }
}

/// Where a bare server name or URL sends requests, as a test reads it
/// (`${VAR:-default}` is its default; a command line is no server).
fn where_to(text: &str) -> Option<Target> {
    let text = text.trim();
    let text = match text.strip_prefix("${").and_then(|t| t.strip_suffix('}')) {
        Some(inner) => inner.split_once(":-")?.1,
        None => text,
    };
    if text.is_empty() || text.contains(char::is_whitespace) || text.contains("${") {
        return None;
    }
    let (scheme, rest) = match text.split_once("://") {
        Some((s, r)) => (s.to_owned(), r),
        None => ("http".to_owned(), text),
    };
    let authority = rest.split(['/', '?']).next()?;
    let path = rest.get(authority.len()..).unwrap_or("");
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (authority, if scheme == "https" { 443 } else { 80 }),
    };
    Some(target(&scheme, &host.to_ascii_lowercase(), port, path))
}

/// Probes the standalone baseline of an accepted manifest; returns how
/// many probes ran.
fn probe(m: &AgentManifest, text: &str, file: &str, failures: &mut Vec<String>) -> usize {
    let policy = Baseline::standalone(m, &Placement::new(Some("agents".into()))).unwrap();
    let doc = AgentManifest::document(text, file).unwrap();
    let spec = &doc["spec"];
    let mut n = 0;
    let mut check = |policy: &ActionPolicy, action: &Action, want: bool, what: &str| {
        n += 1;
        let d = policy.evaluate(action, Instant::now());
        if d.allowed() != want {
            failures.push(format!(
                "{file}: {what}: allowed {} ({:?}: {})",
                d.allowed(),
                d.rule,
                d.reason
            ));
        }
    };
    let autonomy = &spec["autonomy"];
    let restricted = autonomy["approval_required"] == Value::Bool(true)
        || autonomy["allowed_actions"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
        || autonomy["approval_required"].is_array();
    let blocked: Vec<&str> = autonomy["blocked_actions"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for t in spec["tools"].as_array().into_iter().flatten() {
        if t["type"] != "mcp" {
            continue;
        }
        let names: Vec<String> = match t["capabilities"].as_array() {
            Some(c) if !c.is_empty() => c
                .iter()
                .filter_map(|c| c.as_str().or_else(|| c["name"].as_str()))
                .map(str::to_owned)
                .collect(),
            _ => t["name"].as_str().map(str::to_owned).into_iter().collect(),
        };
        let server = t["endpoint"]
            .as_str()
            .or_else(|| t["config"]["endpoint"].as_str())
            .or_else(|| t["server"].as_str())
            .or_else(|| t["config"]["server"].as_str());
        for name in names.iter().filter(|n| !n.contains('*')) {
            // Never on a server the manifest does not name.
            let elsewhere = mcp(target("https", "attacker.example", 443, "/mcp"), name);
            check(
                &policy,
                &elsewhere,
                false,
                &format!("{name} on attacker.example"),
            );
            if let Some(at) = server.and_then(where_to)
                && !restricted
                && !blocked.contains(&name.as_str())
            {
                check(
                    &policy,
                    &mcp(at, name),
                    true,
                    &format!("{name} on its server"),
                );
            }
        }
        if let Some(at) = server.and_then(where_to) {
            check(
                &policy,
                &mcp(at, "tollgate_undeclared_probe"),
                false,
                "an undeclared tool on a declared server",
            );
        }
    }
    // The declared model, and another.
    let llm = &spec["llm"];
    if let (Some(provider), Some(model)) = (llm["provider"].as_str(), llm["model"].as_str()) {
        let family = if provider.contains("anthropic") {
            LlmProvider::Anthropic
        } else {
            LlmProvider::Openai
        };
        let cap = spec["constraints"]["cost"]["maxTokensPerRequest"].as_u64();
        let request = |model: &str| Action {
            target: target("https", "llm.example", 443, "/v1/messages"),
            route: None,
            upgrade: None,
            kind: ActionKind::Llm(LlmRequest {
                provider: family,
                operation: "messages".into(),
                model: Some(model.into()),
                max_tokens: Some(cap.unwrap_or(100).min(100)),
                stream: false,
                choices: 1,
                worst_case_tokens: Some(cap.unwrap_or(100).min(100)),
            }),
        };
        if !model.contains("${") && !provider.contains("custom") {
            check(&policy, &request(model), true, "the declared model");
        }
        check(
            &policy,
            &request("tollgate-undeclared-model"),
            false,
            "an undeclared model",
        );
    }
    // Plain HTTP to an undeclared host is never the baseline's to allow.
    let http = Action::http(target("https", "attacker.example", 443, "/"));
    check(&policy, &http, false, "HTTP to attacker.example");
    n
}
