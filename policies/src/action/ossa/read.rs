//! Reading what a manifest declares: its tools and their servers, LLM
//! providers and models, and the numbers of its limits, each refused with
//! its field path when the sidecar cannot enforce it.

use super::super::LlmProvider;
use super::super::matcher::{Patterns, Separator};
use super::manifest::{AgentManifest, ModelSpec, ToolSpec};
use super::server::ServerRef;

/// Tool types that are not network actions the sidecar sees (they run in
/// the agent's process or describe triggers): accepted, listed in notes.
pub(super) const LOCAL_TOOL_TYPES: [&str; 10] = [
    "function",
    "library",
    "webhook",
    "schedule",
    "pipeline",
    "workflow",
    "artifact",
    "git-commit",
    "ci-status",
    "comment",
];

/// A manifest field that cannot be enforced: its path and why.
pub(super) type Refusal = (String, String);

/// A tool entry, read.
pub(super) struct Tool {
    pub(super) index: usize,
    pub(super) kind: String,
    pub(super) label: String,
    pub(super) names: Vec<String>,
    pub(super) server: Option<ServerRef>,
    pub(super) rate_per_minute: Option<u64>,
}

/// Reads the tools of a manifest; what it cannot use is noted.
pub(super) fn read_tools(
    manifest: &AgentManifest,
    notes: &mut Vec<String>,
) -> Result<Vec<Tool>, Refusal> {
    let mut out = Vec::new();
    for (index, t) in manifest.tools().iter().enumerate() {
        let path = format!("spec.tools[{index}]");
        let kind = t.kind.to_ascii_lowercase();
        let known = matches!(
            kind.as_str(),
            "mcp" | "http" | "api" | "grpc" | "a2a" | "kubernetes" | "custom"
        ) || LOCAL_TOOL_TYPES.contains(&kind.as_str());
        if !known {
            return Err((
                format!("{path}.type"),
                format!(
                    "tool type {:?} is not one the OSSA schemas define (mcp, http, api, grpc, a2a, kubernetes, function, ...); Tollgate will not guess what it reaches",
                    t.kind
                ),
            ));
        }
        let mut names: Vec<String> = match &t.capabilities {
            Some(caps) if !caps.is_empty() => caps.iter().map(|c| c.name().to_owned()).collect(),
            _ => t.name.iter().cloned().collect(),
        };
        names.retain(|n| !n.trim().is_empty());
        let server = tool_server(t, &path, notes)?;
        let rate_per_minute = t
            .transport
            .as_ref()
            .and_then(|tr| tr.rate_limit.as_ref())
            .and_then(|r| r.requests_per_minute)
            .map(|n| positive(n, &format!("{path}.transport.rateLimit.requestsPerMinute")))
            .transpose()?;
        out.push(Tool {
            index,
            label: t
                .name
                .clone()
                .or_else(|| server.as_ref().map(ToString::to_string))
                .unwrap_or_else(|| t.kind.clone()),
            kind,
            names,
            server,
            rate_per_minute,
        });
    }
    Ok(out)
}

/// The one server a tool entry names: a URL (`endpoint`, `config.endpoint`,
/// a URL in `server`/`config.server`) wins over a bare name; two different
/// URLs, or two different names, are ambiguous and refused. A whole-value
/// `${VAR:-default}` is its default; without one, or as a command line (a
/// stdio server run by the agent), it names no network server (noted).
fn tool_server(
    t: &ToolSpec,
    path: &str,
    notes: &mut Vec<String>,
) -> Result<Option<ServerRef>, Refusal> {
    let mut candidates: Vec<(String, &str)> = Vec::new();
    for (field, value) in [("server", &t.server), ("endpoint", &t.endpoint)] {
        if let Some(v) = value.as_deref().filter(|v| !v.trim().is_empty()) {
            candidates.push((format!("{path}.{field}"), v));
        }
    }
    if let Some(config) = &t.config {
        for field in ["server", "endpoint"] {
            match config.get(field) {
                None | Some(serde_json::Value::Null) => {}
                Some(serde_json::Value::String(s)) if !s.trim().is_empty() => {
                    candidates.push((format!("{path}.config.{field}"), s));
                }
                Some(_) => {
                    return Err((
                        format!("{path}.config.{field}"),
                        "expected a server name or URL (a string)".into(),
                    ));
                }
            }
        }
    }
    let mut address: Option<(String, ServerRef)> = None;
    let mut name: Option<(String, ServerRef)> = None;
    for (field, text) in candidates {
        let text = text.trim();
        let text = if text.starts_with("${") && text.ends_with('}') {
            let value = resolve_default(text);
            if value.is_empty() || value.starts_with("${") {
                notes.push(format!(
                    "{field}: {text:?} depends on the agent's environment and has no default; it names no server the sidecar can allow"
                ));
                continue;
            }
            value
        } else {
            text.to_owned()
        };
        if text.contains(char::is_whitespace) {
            notes.push(format!(
                "{field}: {text:?} is a command the agent runs (a stdio MCP server): its MCP traffic never crosses the network, and what the command reaches is decided as any other request"
            ));
            continue;
        }
        let parsed = ServerRef::parse(&text).map_err(|m| (field.clone(), m))?;
        let slot = match parsed {
            ServerRef::Name(_) => &mut name,
            ServerRef::Address { .. } => &mut address,
        };
        match slot {
            Some((other, existing)) if *existing != parsed => {
                return Err((
                    field,
                    format!(
                        "names server {parsed} but {other} names {existing}; a tool has one server: keep one"
                    ),
                ));
            }
            Some(_) => {}
            None => *slot = Some((field, parsed)),
        }
    }
    Ok(address.or(name).map(|(_, s)| s))
}

/// A positive count from a YAML number.
pub(super) fn positive(n: f64, path: &str) -> Result<u64, Refusal> {
    if (1.0..=1e15).contains(&n) {
        // Fractions round down: never more than declared.
        Ok(n.floor() as u64)
    } else {
        Err((
            path.to_owned(),
            format!("expected a whole number of at least 1, found {n}"),
        ))
    }
}

/// The LLM API families of an OSSA provider name; `${VAR:-default}` is
/// its default.
pub(super) fn provider(name: &str, path: &str) -> Result<Vec<LlmProvider>, Refusal> {
    let trimmed = name.trim();
    let resolved = match trimmed.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
        Some(inner) => match inner.split_once(":-") {
            Some((_, default)) if !default.is_empty() => default,
            _ => {
                return Err((
                    path.to_owned(),
                    format!(
                        "provider {trimmed:?} depends on the agent's environment and has no default (${{VAR:-provider}}); the sidecar cannot know it"
                    ),
                ));
            }
        },
        None => trimmed,
    };
    match resolved.to_ascii_lowercase().as_str() {
        "anthropic" => Ok(vec![LlmProvider::Anthropic]),
        "openai" | "azure-openai" | "azure" | "ollama" | "vllm" | "openai-compatible"
        | "google" | "gemini" | "mistral" | "groq" | "together" | "fireworks" | "deepseek"
        | "cohere" | "xai" | "openrouter" | "litellm" => Ok(vec![LlmProvider::Openai]),
        "custom" => Ok(vec![LlmProvider::Openai, LlmProvider::Anthropic]),
        other => Err((
            path.to_owned(),
            format!(
                "provider {other:?} is not one the sidecar recognises: anthropic, openai, an OpenAI-compatible one (azure, google, ollama, mistral, groq, together, fireworks, deepseek, cohere, vllm), or custom"
            ),
        )),
    }
}

/// The model names of `spec.llm.model`.
pub(super) fn models(model: &ModelSpec) -> Vec<String> {
    match model {
        ModelSpec::Name(n) => vec![resolve_default(n)],
        ModelSpec::Map(map) => map
            .values()
            .filter_map(|v| match v {
                serde_json::Value::String(s) => Some(resolve_default(s)),
                other => other
                    .get("name")
                    .or_else(|| other.get("model"))
                    .and_then(serde_json::Value::as_str)
                    .map(resolve_default),
            })
            .collect(),
    }
}

/// `${VAR:-value}` is `value`; anything else is itself.
pub(super) fn resolve_default(text: &str) -> String {
    let t = text.trim();
    t.strip_prefix("${")
        .and_then(|r| r.strip_suffix('}'))
        .and_then(|inner| inner.split_once(":-"))
        .map_or(t, |(_, d)| d)
        .to_owned()
}

/// The names in both `declared` and `allowed`, as literal names where a
/// glob of one side covers a name of the other: never more than either.
pub(super) fn intersect(declared: &[String], allowed: &[String]) -> Vec<String> {
    let is_glob = |s: &str| s.contains(['*', '?', '[', ']', '{', '}']);
    let covers = |pattern: &str, name: &str| {
        pattern == name
            || Patterns::compile(&[pattern.to_owned()], Separator::Free, false)
                .is_ok_and(|p| p.matches(name))
    };
    let mut out: Vec<String> = Vec::new();
    for d in declared {
        for a in allowed {
            let hit = if d == a {
                Some(d)
            } else if !is_glob(a) && covers(d, a) {
                Some(a)
            } else if !is_glob(d) && covers(a, d) {
                Some(d)
            } else {
                None
            };
            if let Some(h) = hit
                && !out.contains(h)
            {
                out.push(h.clone());
            }
        }
    }
    out
}

/// `spec.protocols.mcp.servers[]` (0.4+): each server with its tools.
pub(super) fn protocols_mcp(manifest: &AgentManifest) -> Vec<(ServerRef, Vec<String>)> {
    manifest
        .spec
        .protocols
        .as_ref()
        .and_then(|p| p.mcp.as_ref())
        .and_then(|m| m.servers.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|s| {
            let text = s.url.as_ref().or(s.endpoint.as_ref()).or(s.name.as_ref())?;
            let server = ServerRef::parse(text).ok()?;
            let tools = s
                .tools
                .iter()
                .flatten()
                .map(|t| t.name().to_owned())
                .collect();
            Some((server, tools))
        })
        .collect()
}
