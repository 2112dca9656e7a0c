//! Agent actions and the action policy that allows or denies them.
//!
//! The sidecar reduces every request an agent makes to one typed [`Action`]
//! (an MCP tool call, an A2A message, a Kubernetes API call, an LLM request
//! or a plain HTTP request) and asks an [`ActionPolicy`] about it. The policy
//! is an ordered list of rules: the first rule that matches decides, and an
//! action no rule matches is denied. Evaluation is pure: it does no I/O, and
//! the only state it keeps (rate limits and token budgets) lives in memory and
//! is told the current time by the caller, so tests can move the clock.
//!
//! The YAML schema is [`spec::ActionPolicyDocument`]; [`ActionPolicy::parse`]
//! reads it with `file:line:column` errors, and [`ActionPolicy::compile`]
//! builds a policy from a spec assembled in code, as [`ossa`] does from an
//! OSSA agent manifest (a baseline every action must also pass, see
//! [`ActionPolicy::with_baseline`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;

mod a2a;
mod compile;
mod error;
mod eval;
pub mod host;
mod limit;
mod matcher;
pub mod ossa;
mod parse;
pub mod path;
mod rego;
mod route;
pub mod spec;

pub use a2a::{A2A_METHODS, a2a_method_alias, canonical_a2a_method};
pub use compile::ActionPolicy;
pub use error::ActionPolicyError;
pub use eval::{ActionDecision, DecisionKind, Effect};
pub use limit::{LimitKind, LimitUsage, TokenReservation};
pub use route::{BodyLimits, Route, RouteTarget};

/// The protocol an action was recognised as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Model Context Protocol: JSON-RPC 2.0 over Streamable HTTP.
    Mcp,
    /// Agent2Agent protocol: JSON-RPC 2.0 over HTTP.
    A2a,
    /// The Kubernetes API.
    Kubernetes,
    /// An LLM provider API (OpenAI-style or Anthropic).
    Llm,
    /// Any other HTTP(S) request, or a `CONNECT` tunnel.
    Http,
}

impl Protocol {
    /// Every protocol, in a stable order.
    pub const ALL: [Protocol; 5] = [
        Protocol::Mcp,
        Protocol::A2a,
        Protocol::Kubernetes,
        Protocol::Llm,
        Protocol::Http,
    ];

    /// The lowercase name used in policies, metrics and audit events.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Mcp => "mcp",
            Protocol::A2a => "a2a",
            Protocol::Kubernetes => "kubernetes",
            Protocol::Llm => "llm",
            Protocol::Http => "http",
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a request goes, as the agent addressed it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Target {
    /// The HTTP method (`GET`, `POST`, ..., `CONNECT`).
    pub method: String,
    /// `http` or `https`.
    pub scheme: String,
    /// The host, lowercase; IPv6 literals keep their brackets.
    pub host: String,
    /// The port (the scheme's default when the agent gave none).
    pub port: u16,
    /// The path, without the query (empty for `CONNECT`).
    pub path: String,
    /// The raw query string, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
}

/// One action an agent attempted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    /// Where the request goes.
    #[serde(default)]
    pub target: Target,
    /// The declared route that recognised the request, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// The protocol the agent asked to switch to (`websocket`, `SPDY/3.1`),
    /// when the request is an HTTP upgrade.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade: Option<String>,
    /// What the request does, per protocol.
    #[serde(flatten)]
    pub kind: ActionKind,
}

/// The protocol-specific part of an action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "protocol", rename_all = "lowercase")]
pub enum ActionKind {
    /// An MCP message.
    Mcp(McpCall),
    /// An A2A message.
    A2a(A2aCall),
    /// A Kubernetes API request.
    Kubernetes(KubeRequest),
    /// An LLM API request.
    Llm(LlmRequest),
    /// Any other HTTP request, or a `CONNECT` tunnel.
    Http,
}

/// An MCP message: a JSON-RPC request or notification the agent sends to an
/// MCP server, or one of the transport operations of Streamable HTTP.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct McpCall {
    /// The JSON-RPC method (`tools/call`, `initialize`, ...). Transport
    /// operations without a JSON-RPC body use `$/` names: `$/listen` (the
    /// GET that opens the server-to-client stream), `$/close` (the DELETE
    /// that ends a session) and `$/response` (a JSON-RPC response the agent
    /// posts back to a server request).
    pub method: String,
    /// `tools/call`: the tool's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// `tools/call`: the tool's arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Value>,
    /// `resources/read`, `resources/subscribe`: the resource URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// `prompts/get`: the prompt's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// The MCP server: the route's name, or the host when no route matched.
    pub server: String,
}

/// An A2A message the agent sends to another agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct A2aCall {
    /// The canonical (A2A 0.3) method name (`message/send`, `tasks/get`,
    /// ...), whichever generation or binding the request used (A2A 1.0
    /// `SendMessage`, `POST /message:send`, ...; see [`A2A_METHODS`]), or
    /// `$/agent-card` for fetching the agent card.
    pub method: String,
    /// The target agent: the route's name, or the host when no route matched.
    pub agent: String,
    /// The task the call refers to (`params.id`, `params.taskId`,
    /// `params.message.taskId`, or the `tasks/{id}` path segment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// The conversation (`params.message.contextId`, or `params.contextId`
    /// of a task listing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_id: Option<String>,
}

/// A Kubernetes API request, decoded from method and path the way the API
/// server's request-info resolver does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubeRequest {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`; for non-resource paths the lowercase HTTP method.
    pub verb: String,
    /// True for requests on API resources, false for non-resource paths
    /// (`/version`, `/healthz`, discovery documents).
    pub resource_request: bool,
    /// The API group (`""` for the core group).
    #[serde(default)]
    pub api_group: String,
    /// The API version (`v1`).
    #[serde(default)]
    pub api_version: String,
    /// The resource (`pods`).
    #[serde(default)]
    pub resource: String,
    /// The subresource (`exec`, `log`, `status`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subresource: Option<String>,
    /// The namespace, for namespaced requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The object's name, when the request names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Which LLM API family a request speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LlmProvider {
    /// OpenAI and OpenAI-compatible APIs.
    Openai,
    /// Anthropic's Messages API.
    Anthropic,
}

impl LlmProvider {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            LlmProvider::Openai => "openai",
            LlmProvider::Anthropic => "anthropic",
        }
    }
}

/// An LLM API request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LlmRequest {
    /// The API family.
    pub provider: LlmProvider,
    /// The operation: `chat.completions`, `responses`, `messages`,
    /// `embeddings`, `completions`, `models`, or the path for anything else.
    pub operation: String,
    /// The requested model, when the body names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The requested cap on generated tokens per generation
    /// (`max_tokens`, `max_completion_tokens`, `max_output_tokens`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// How many generations one call asks for: `n` × `best_of` (1 when
    /// neither is given).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub choices: u64,
    /// The most tokens the call can use, input and output together, as
    /// reserved against a token budget (`None`: no bound is known — no
    /// output cap, or input the provider fetches itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worst_case_tokens: Option<u64>,
    /// Whether the response is streamed.
    #[serde(default)]
    pub stream: bool,
}

fn one() -> u64 {
    1
}

fn is_one(n: &u64) -> bool {
    *n == 1
}

impl LlmRequest {
    /// The cap on the whole generation: `max_tokens` × `choices`
    /// (`None` without a cap).
    pub fn generation_cap(&self) -> Option<u64> {
        self.max_tokens
            .map(|m| m.saturating_mul(self.choices.max(1)))
    }
}

impl Action {
    /// A plain HTTP action on `target`.
    pub fn http(target: Target) -> Action {
        Action {
            target,
            route: None,
            upgrade: None,
            kind: ActionKind::Http,
        }
    }

    /// The protocol.
    pub fn protocol(&self) -> Protocol {
        match self.kind {
            ActionKind::Mcp(_) => Protocol::Mcp,
            ActionKind::A2a(_) => Protocol::A2a,
            ActionKind::Kubernetes(_) => Protocol::Kubernetes,
            ActionKind::Llm(_) => Protocol::Llm,
            ActionKind::Http => Protocol::Http,
        }
    }

    /// The verb in the protocol's own terms: the JSON-RPC method, the
    /// Kubernetes verb, the LLM operation, the HTTP method.
    pub fn verb(&self) -> &str {
        match &self.kind {
            ActionKind::Mcp(c) => &c.method,
            ActionKind::A2a(c) => &c.method,
            ActionKind::Kubernetes(k) => &k.verb,
            ActionKind::Llm(l) => &l.operation,
            ActionKind::Http => &self.target.method,
        }
    }

    /// What the action is aimed at, for people: `server/tool` for MCP tool
    /// calls, the resource path for Kubernetes, `provider/model` for LLM
    /// calls, the URL otherwise.
    pub fn target_label(&self) -> String {
        match &self.kind {
            ActionKind::Mcp(c) => match (&c.tool, &c.uri, &c.prompt) {
                (Some(tool), _, _) => format!("{}/{}", c.server, tool),
                (None, Some(uri), _) => format!("{} {}", c.server, uri),
                (None, None, Some(prompt)) => format!("{}/{}", c.server, prompt),
                _ => c.server.clone(),
            },
            ActionKind::A2a(c) => c.agent.clone(),
            ActionKind::Kubernetes(_) => self.target.path.clone(),
            ActionKind::Llm(l) => match &l.model {
                Some(model) => format!("{}/{}", l.provider.as_str(), model),
                None => l.provider.as_str().to_owned(),
            },
            ActionKind::Http => self.url(),
        }
    }

    /// The request URL (`scheme://host:port/path`), or `host:port` for a
    /// `CONNECT` tunnel.
    pub fn url(&self) -> String {
        let t = &self.target;
        if t.method == "CONNECT" {
            return format!("{}:{}", t.host, t.port);
        }
        let default_port = matches!((t.scheme.as_str(), t.port), ("http", 80) | ("https", 443));
        let mut url = if default_port {
            format!("{}://{}{}", t.scheme, t.host, t.path)
        } else {
            format!("{}://{}:{}{}", t.scheme, t.host, t.port, t.path)
        };
        if let Some(q) = &t.query {
            url.push('?');
            url.push_str(q);
        }
        url
    }

    /// The server (MCP), agent (A2A), route name, or host this action goes
    /// to: what `servers:` matchers compare against.
    pub fn server(&self) -> &str {
        match &self.kind {
            ActionKind::Mcp(c) => &c.server,
            ActionKind::A2a(c) => &c.agent,
            _ => self.route.as_deref().unwrap_or(&self.target.host),
        }
    }
}

#[cfg(test)]
mod tests;
