//! OSSA agent manifests (`kind: Agent`) as a baseline action policy.
//!
//! An agent that declares its tools, servers and model in an OSSA manifest
//! gets exactly those, and nothing else, on the protocols the manifest
//! speaks about. Every `apiVersion` from `ossa/v0.2.2` to `ossa/v0.5` is
//! read (`ossa/v0.2.x`, `ossa/v0.3` and `ossa/v1` too; a template such as
//! `ossa/${OSSA_VERSION}` is not a version); a file of several YAML
//! documents must hold one `kind: Agent` document, which is the one read.
//! The mapping, field by field:
//!
//! - **`spec.tools[]` of `type: mcp`** allow `tools/call` of the tools they
//!   name (`capabilities`, as names or `{name: ...}` objects; else `name`)
//!   on their server only. The server is named by `endpoint`,
//!   `config.endpoint` or a URL in `server`/`config.server` (that host, in
//!   its in-cluster spellings, and port), or by a bare `server` or
//!   `config.server` name (an ActionPolicy route of that name, or that
//!   host). A tool naming no server is allowed only on the MCP routes of
//!   the ActionPolicy; without one, nowhere. Two different servers for one
//!   tool are refused. The session plumbing every MCP client needs
//!   (`initialize`, `ping`, `notifications/*`, `tools/list`, `$/listen`,
//!   `$/close`, `$/response`) is allowed to the same servers. Every other
//!   MCP call is denied, naming the manifest. `transport.rateLimit
//!   .requestsPerMinute` is a rate limit on the tool. 0.4+:
//!   `spec.protocols.mcp.servers[]` (`url`/`endpoint`/`name` and `tools`)
//!   declare tools the same way.
//! - **`type: http`, `api`, `grpc`** with an endpoint allow HTTP requests to
//!   that host and port under that path (and scheme); **`type: a2a`**
//!   allows A2A calls to its endpoint. Once a manifest declares any, the
//!   rest of that protocol is denied; otherwise the ActionPolicy decides it.
//!   0.4+: `spec.security.network_access.allowed_domains` allow HTTP to
//!   those domains, `blocked_domains` deny every protocol to them.
//! - **Other tool types**: `function` and the trigger types run in the
//!   agent, `kubernetes` and `custom` name no protocol the sidecar tells
//!   apart; they are accepted and listed in notes (`--check`, the log). A
//!   type no schema defines is refused.
//! - **`spec.llm`**: `provider` (`anthropic`; `openai` and the
//!   OpenAI-compatible ones: `azure`, `google`, `ollama`, `mistral`, `groq`,
//!   `together`, `fireworks`, `deepseek`, `cohere`, `vllm`; `custom`: either
//!   API; `${VAR:-default}`: the default) and `model` (a name, or a map
//!   whose values are names) plus `fallback_models[]` are the models
//!   allowed; any other is denied. An unknown provider is refused.
//! - **`spec.constraints.cost`**: `maxTokensPerRequest` caps every LLM
//!   request's `max_tokens`; `maxTokensPerDay` is a daily token budget.
//!   `maxCostPerDay` and `spec.constraints.performance` are not enforced
//!   (noted).
//! - **`spec.safety.rate_limiting`**: `requests_per_minute` and
//!   `requests_per_hour` limit every action of the agent (unless
//!   `enabled: false`). `guardrails.max_tool_calls` is not enforced (noted).
//! - **`spec.autonomy`**: `blocked_actions` are always denied.
//!   `approval_required: true` means a person must approve each action;
//!   the sidecar cannot obtain that approval yet, so every tool call is
//!   denied except `allowed_actions` (approved in advance) that are also
//!   declared tools on their servers. `approval_required: [a, b]` (0.3+)
//!   denies exactly those tools, as does 0.4+
//!   `governance.authorization.tool_permissions[].requires_approval`.
//!   Without approval, a non-empty `allowed_actions` is a whitelist within
//!   the declared tools. `level` is recorded only.
//!
//! **Combining with an ActionPolicy file.** An action must pass both: the
//! baseline is evaluated first and a denial there is final; otherwise the
//! ActionPolicy decides (its routes, limits and budgets apply). Kubernetes,
//! and HTTP and A2A when the manifest declares none, are the ActionPolicy's
//! alone. With no ActionPolicy the baseline alone decides
//! ([`Baseline::standalone`]), and everything it does not allow is denied.
//!
//! Fields of the manifest this module does not read (`taxonomy`,
//! `observability`, `extensions`, ...) are accepted and ignored; the ones it
//! reads are typed, and errors name `file:line:column` or the field path.
//! [`schema::validate`] says, separately, whether a manifest is valid under
//! the official JSON Schema of its version.

use std::sync::Arc;

use super::ActionPolicy;

mod baseline;
mod manifest;
mod read;
pub mod schema;
mod server;

pub use baseline::{Baseline, Placement, Plan};
pub use manifest::{
    AgentManifest, AgentMetadata, AgentSpec, ApprovalRequired, Authorization, AutonomySpec,
    CapabilitySpec, ConstraintsSpec, CostSpec, FallbackModel, GovernanceSpec, LlmSpec,
    MAX_MANIFEST_BYTES, McpProtocol, McpServer, ModelSpec, NetworkAccess, OssaVersion,
    ProtocolsSpec, RateLimiting, SafetySpec, SecuritySpec, ToolPermission, ToolRateLimit, ToolSpec,
    TransportSpec,
};

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
