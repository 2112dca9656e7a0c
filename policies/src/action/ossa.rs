//! OSSA agent manifests (`kind: Agent`) as a baseline action policy.
//!
//! An agent that declares its tools and its model in an OSSA manifest gets
//! exactly those, and nothing else, on the protocols the manifest speaks
//! about:
//!
//! - **MCP.** Each `spec.tools[]` entry of `type: mcp` allows `tools/call`
//!   of the tools it names: its `capabilities` list when given, else its
//!   `name`; with `server` (a route name, host or URL) only on that server.
//!   The session plumbing every MCP client needs (`initialize`, `ping`,
//!   `notifications/*`, `tools/list`, stream `$/listen`, `$/close`,
//!   `$/response`) is allowed to the declared servers (any server when an
//!   entry names none). Every other MCP call (undeclared tools, resources,
//!   prompts) is denied, naming the manifest.
//! - **LLM.** `spec.llm.provider` and `spec.llm.model` allow that provider
//!   (OpenAI-compatible providers count as `openai`) and model; any other
//!   model or provider is denied.
//! - **Autonomy.** `spec.autonomy.blocked_actions` lists tools that are
//!   always denied. `spec.autonomy.approval_required: true` means a person
//!   must approve each action; the sidecar cannot obtain that approval, so
//!   every tool call is denied with that reason, except the tools listed in
//!   `spec.autonomy.allowed_actions` (approved in advance).
//!
//! **Combining with an ActionPolicy file.** An action must pass both: the
//! baseline is evaluated first and a denial there is final; otherwise the
//! ActionPolicy decides (its routes, limits and budgets apply). The
//! baseline has no opinion on plain HTTP, Kubernetes and A2A, which the
//! ActionPolicy governs alone. With no ActionPolicy the baseline alone
//! decides ([`Baseline::standalone`]), and everything it does not allow,
//! including HTTP, Kubernetes and A2A, is denied.
//!
//! Fields of the manifest this module does not read (`taxonomy`,
//! `observability`, `extensions`, ...) are accepted and ignored; the ones it
//! reads are typed, and errors name `file:line:column`.

use std::sync::Arc;

use serde::Deserialize;

use super::spec::{ActionPolicyDocument, ActionPolicySpec, MatchSpec, RuleSpec};
use super::{ActionPolicy, ActionPolicyError, LlmProvider, Protocol};

/// The largest manifest accepted, in bytes.
pub const MAX_MANIFEST_BYTES: usize = 1 << 20;

/// The MCP methods of session plumbing, allowed to declared servers.
const MCP_SESSION_METHODS: [&str; 7] = [
    "initialize",
    "ping",
    "notifications/*",
    "tools/list",
    "$/listen",
    "$/close",
    "$/response",
];

/// An OSSA agent manifest, as far as Tollgate reads it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentManifest {
    /// `ossa/v0.2.x` and the like: must start with `ossa/`.
    pub api_version: String,
    /// Must be `Agent`.
    pub kind: String,
    /// Name and version.
    #[serde(default)]
    pub metadata: AgentMetadata,
    /// The agent.
    pub spec: AgentSpec,
}

/// `metadata`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct AgentMetadata {
    /// The agent's name.
    #[serde(default)]
    pub name: String,
    /// Its version.
    #[serde(default)]
    pub version: Option<String>,
}

/// `spec`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct AgentSpec {
    /// The model the agent uses.
    #[serde(default)]
    pub llm: Option<LlmSpec>,
    /// The tools it may use.
    #[serde(default)]
    pub tools: Vec<ToolSpec>,
    /// How far it may act on its own.
    #[serde(default)]
    pub autonomy: Option<AutonomySpec>,
}

/// `spec.llm`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LlmSpec {
    /// `openai`, `anthropic`, or an OpenAI-compatible provider
    /// (`azure-openai`, `ollama`, `vllm`, `openai-compatible`).
    pub provider: String,
    /// The model; absent: any model of the provider.
    #[serde(default)]
    pub model: Option<String>,
}

/// `spec.tools[]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ToolSpec {
    /// `mcp` entries become allow rules; other types are not network
    /// actions Tollgate can tell apart and are ignored.
    #[serde(rename = "type")]
    pub kind: String,
    /// The tool's name.
    pub name: String,
    /// The MCP server: a route name, a host, or a URL.
    #[serde(default)]
    pub server: Option<String>,
    /// The MCP tool names this entry allows (globs); default: `name`.
    #[serde(default)]
    pub capabilities: Vec<String>,
}

/// `spec.autonomy`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct AutonomySpec {
    /// `autonomous`, `supervised`, ... (recorded, not enforced by itself).
    #[serde(default)]
    pub level: Option<String>,
    /// Every action needs a person's approval.
    #[serde(default)]
    pub approval_required: bool,
    /// Tools approved in advance (with `approval_required`).
    #[serde(default)]
    pub allowed_actions: Vec<String>,
    /// Tools never allowed.
    #[serde(default)]
    pub blocked_actions: Vec<String>,
}

impl AgentManifest {
    /// Parses a manifest; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<AgentManifest, ActionPolicyError> {
        if text.len() > MAX_MANIFEST_BYTES {
            return Err(ActionPolicyError::Unlocated {
                file: file.to_owned(),
                message: format!(
                    "the OSSA manifest is {} bytes; the limit is {MAX_MANIFEST_BYTES}",
                    text.len()
                ),
            });
        }
        let manifest: AgentManifest = yaml_serde::from_str(text).map_err(|e| {
            let text = e.to_string();
            match e.location() {
                Some(loc) => {
                    let suffix = format!(" at line {} column {}", loc.line(), loc.column());
                    ActionPolicyError::File {
                        file: file.to_owned(),
                        line: loc.line(),
                        column: loc.column(),
                        message: text.strip_suffix(&suffix).unwrap_or(&text).to_owned(),
                    }
                }
                None => ActionPolicyError::Unlocated {
                    file: file.to_owned(),
                    message: text,
                },
            }
        })?;
        manifest
            .check()
            .map_err(|(path, message)| ActionPolicyError::Unlocated {
                file: file.to_owned(),
                message: format!("{path}: {message}"),
            })?;
        Ok(manifest)
    }

    fn check(&self) -> Result<(), (String, String)> {
        if !self.api_version.starts_with("ossa/") {
            return Err((
                "apiVersion".into(),
                format!(
                    "expected an OSSA version such as \"ossa/v0.2.x\", found {:?}",
                    self.api_version
                ),
            ));
        }
        if self.kind != "Agent" {
            return Err((
                "kind".into(),
                format!("expected \"Agent\", found {:?}", self.kind),
            ));
        }
        for (i, t) in self.spec.tools.iter().enumerate() {
            if t.name.trim().is_empty() {
                return Err((format!("spec.tools[{i}].name"), "must not be empty".into()));
            }
        }
        if let Some(llm) = &self.spec.llm {
            provider(&llm.provider).map_err(|m| ("spec.llm.provider".to_owned(), m))?;
        }
        Ok(())
    }

    /// The agent's name (`metadata.name`, or `agent`).
    pub fn name(&self) -> &str {
        if self.metadata.name.is_empty() {
            "agent"
        } else {
            &self.metadata.name
        }
    }
}

/// The LLM API family of an OSSA provider name.
fn provider(name: &str) -> Result<LlmProvider, String> {
    match name.to_ascii_lowercase().as_str() {
        "anthropic" => Ok(LlmProvider::Anthropic),
        "openai" | "azure-openai" | "azure" | "ollama" | "vllm" | "openai-compatible" => {
            Ok(LlmProvider::Openai)
        }
        other => Err(format!(
            "provider {other:?} is not one the sidecar recognises: anthropic, openai, or an OpenAI-compatible one (azure-openai, ollama, vllm, openai-compatible)"
        )),
    }
}

/// The server a tool entry names, as actions carry it: a URL's host, or the
/// value itself (a route name or host).
fn server_of(server: &str) -> String {
    let rest = server
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(server);
    let host = rest.split(['/', '?']).next().unwrap_or(rest);
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(']') => h,
        _ => host,
    };
    host.to_ascii_lowercase()
}

/// The baseline action policy of a manifest.
#[derive(Debug)]
pub struct Baseline;

impl Baseline {
    /// The baseline as a constraint on an ActionPolicy file: decides MCP
    /// and LLM actions, allows the rest (the file decides them).
    pub fn constraint(manifest: &AgentManifest) -> Result<ActionPolicy, ActionPolicyError> {
        Self::compile(manifest, false)
    }

    /// The baseline alone (no ActionPolicy file): what it does not allow is
    /// denied.
    pub fn standalone(manifest: &AgentManifest) -> Result<ActionPolicy, ActionPolicyError> {
        Self::compile(manifest, true)
    }

    /// The rules, as a spec (for `tollgate sidecar --check` and tests).
    pub fn spec(manifest: &AgentManifest, standalone: bool) -> ActionPolicySpec {
        let name = manifest.name();
        let mut rules = Vec::new();
        let mcp_tools: Vec<&ToolSpec> = manifest
            .spec
            .tools
            .iter()
            .filter(|t| t.kind.eq_ignore_ascii_case("mcp"))
            .collect();
        let tool_call = |tools: Vec<String>| MatchSpec {
            methods: vec!["tools/call".into()],
            tools,
            ..MatchSpec::default()
        };
        let autonomy = manifest.spec.autonomy.clone().unwrap_or_default();
        if !autonomy.blocked_actions.is_empty() {
            rules.push(
                RuleSpec::deny("ossa:blocked-actions", Some(Protocol::Mcp))
                    .with_match(tool_call(autonomy.blocked_actions.clone()))
                    .with_reason(format!(
                        "the OSSA manifest of agent {name:?} blocks this tool (spec.autonomy.blocked_actions)"
                    )),
            );
        }
        if autonomy.approval_required {
            if !autonomy.allowed_actions.is_empty() {
                rules.push(
                    RuleSpec::allow("ossa:pre-approved-actions", Some(Protocol::Mcp))
                        .with_match(tool_call(autonomy.allowed_actions.clone()))
                        .with_reason(format!(
                            "approved in advance by the OSSA manifest of agent {name:?} (spec.autonomy.allowed_actions)"
                        )),
                );
            }
            rules.push(
                RuleSpec::deny("ossa:approval-required", Some(Protocol::Mcp))
                    .with_match(tool_call(Vec::new()))
                    .with_reason(format!(
                        "the OSSA manifest of agent {name:?} requires a person's approval for every action (spec.autonomy.approval_required: true), which Tollgate cannot obtain; list approved tools in spec.autonomy.allowed_actions or set approval_required: false"
                    )),
            );
        }
        let mut servers: Vec<String> = Vec::new();
        let mut any_server = false;
        for (i, t) in mcp_tools.iter().enumerate() {
            let tools = if t.capabilities.is_empty() {
                vec![t.name.clone()]
            } else {
                t.capabilities.clone()
            };
            let mut m = tool_call(tools);
            match &t.server {
                Some(s) => {
                    let s = server_of(s);
                    m.servers = vec![s.clone()];
                    if !servers.contains(&s) {
                        servers.push(s);
                    }
                }
                None => any_server = true,
            }
            rules.push(
                RuleSpec::allow(format!("ossa:tool[{i}]:{}", t.name), Some(Protocol::Mcp))
                    .with_match(m)
                    .with_reason(format!(
                        "declared in the OSSA manifest of agent {name:?} (spec.tools[{i}])"
                    )),
            );
        }
        if !mcp_tools.is_empty() {
            rules.push(
                RuleSpec::allow("ossa:mcp-session", Some(Protocol::Mcp))
                    .with_match(MatchSpec {
                        methods: MCP_SESSION_METHODS
                            .iter()
                            .map(|m| (*m).to_owned())
                            .collect(),
                        servers: if any_server { Vec::new() } else { servers },
                        ..MatchSpec::default()
                    })
                    .with_reason(format!(
                        "MCP session plumbing for the tools of agent {name:?}"
                    )),
            );
        }
        rules.push(
            RuleSpec::deny("ossa:undeclared-tool", Some(Protocol::Mcp)).with_reason(format!(
                "the OSSA manifest of agent {name:?} does not declare this MCP tool or server; add it to spec.tools[] (type: mcp)"
            )),
        );
        if let Some(llm) = &manifest.spec.llm
            && let Ok(p) = provider(&llm.provider)
        {
            rules.push(
                RuleSpec::allow("ossa:llm", Some(Protocol::Llm))
                    .with_match(MatchSpec {
                        providers: vec![p],
                        models: llm.model.iter().cloned().collect(),
                        ..MatchSpec::default()
                    })
                    .with_reason(format!(
                        "the LLM declared in the OSSA manifest of agent {name:?} (spec.llm)"
                    )),
            );
        }
        let declared = match &manifest.spec.llm {
            Some(LlmSpec {
                provider,
                model: Some(model),
            }) => format!("only {provider}/{model} is declared"),
            Some(LlmSpec { provider, .. }) => format!("only provider {provider} is declared"),
            None => "no LLM is declared".to_owned(),
        };
        rules.push(
            RuleSpec::deny("ossa:undeclared-llm", Some(Protocol::Llm)).with_reason(format!(
                "the OSSA manifest of agent {name:?} does not allow this model ({declared} in spec.llm)"
            )),
        );
        if standalone {
            rules.push(RuleSpec::deny("ossa:not-declared", None).with_reason(format!(
                "the OSSA manifest of agent {name:?} declares only MCP tools and an LLM, and the pod has no ActionPolicy; name one with the tollgate.dev/action-policy annotation to allow other actions"
            )));
        } else {
            for p in [Protocol::Http, Protocol::Kubernetes, Protocol::A2a] {
                // Upgrades (WebSocket, SPDY) are the ActionPolicy's call too.
                let mut rule = RuleSpec::allow(format!("ossa:defer-{p}"), Some(p))
                    .with_reason("not governed by the OSSA manifest; the ActionPolicy decides");
                rule.allow_upgrade = true;
                rules.push(rule);
            }
        }
        ActionPolicySpec {
            rules,
            ..ActionPolicySpec::default()
        }
    }

    fn compile(
        manifest: &AgentManifest,
        standalone: bool,
    ) -> Result<ActionPolicy, ActionPolicyError> {
        let doc = ActionPolicyDocument::new(
            format!("ossa:{}", manifest.name()),
            Self::spec(manifest, standalone),
        );
        ActionPolicy::compile(&doc)
    }
}

impl ActionPolicy {
    /// This policy with `baseline` evaluated first: an action must pass
    /// both (see the module docs of [`crate::action::ossa`]).
    pub fn with_baseline(mut self, baseline: Arc<ActionPolicy>) -> ActionPolicy {
        self.baseline = Some(baseline);
        self
    }

    /// The baseline this policy is combined with, if any.
    pub fn baseline(&self) -> Option<&ActionPolicy> {
        self.baseline.as_deref()
    }
}

#[cfg(test)]
mod tests;
