//! The `ActionPolicy` document as written in YAML (or assembled in code):
//! plain data, validated and compiled by [`super::ActionPolicy::compile`].
//!
//! ```yaml
//! apiVersion: tollgate.dev/v1alpha1
//! kind: ActionPolicy
//! metadata: { name: research-agent }
//! spec:
//!   routes:
//!     - { name: github, protocol: mcp, hosts: ["mcp.github.example"] }
//!   rules:
//!     - name: read-only-tools
//!       effect: allow
//!       protocol: mcp
//!       match: { servers: [github], methods: ["tools/call"], tools: ["get_*"] }
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use super::eval::Effect;
use super::path::PathStrictness;
use super::{LlmProvider, Protocol};

/// The `apiVersion` of an action policy document.
pub const API_VERSION: &str = "tollgate.dev/v1alpha1";
/// The `kind` of an action policy document.
pub const KIND: &str = "ActionPolicy";

/// A whole action policy file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ActionPolicyDocument {
    /// Always [`API_VERSION`].
    pub api_version: String,
    /// Always [`KIND`].
    pub kind: String,
    /// Name and labels.
    #[serde(default)]
    pub metadata: Metadata,
    /// The policy itself.
    pub spec: ActionPolicySpec,
}

/// Identifies the policy in logs, metrics and audit events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// The policy's name.
    #[serde(default)]
    pub name: String,
    /// Free-form labels.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
    /// Free-form annotations.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// Routes, limits and the ordered rules.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ActionPolicySpec {
    /// Bounds on what the sidecar inspects.
    #[serde(default)]
    pub limits: LimitsSpec,
    /// TLS interception settings.
    #[serde(default)]
    pub tls: TlsSpec,
    /// How requests are recognised as MCP, A2A, Kubernetes or LLM traffic,
    /// and the upstreams of reverse-proxy routes.
    #[serde(default)]
    pub routes: Vec<RouteSpec>,
    /// The rules, in order: the first that matches decides; no match denies.
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
}

/// Bounds on request inspection. Anything over a bound is denied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LimitsSpec {
    /// The largest request body read for classification, as sent (default
    /// 1 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<u64>,
    /// The largest body after `Content-Encoding` decoding (default 8 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_decoded_body_bytes: Option<u64>,
    /// The deepest JSON nesting accepted in a body (default 64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_json_depth: Option<u32>,
}

/// TLS interception settings (used only when interception is on).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsSpec {
    /// Hosts (`host` or `host:port` globs) whose TLS is never terminated:
    /// `CONNECT` to them is decided on host and port, as without
    /// interception (for clients that pin certificates).
    #[serde(default)]
    pub passthrough: Vec<String>,
}

/// A declared route: how requests to a host, or under a path of the
/// sidecar's own listener, are recognised, and where reverse-proxied
/// requests go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteSpec {
    /// The route's name: the `server`/`agent` of MCP and A2A actions, and
    /// what `servers:` matchers compare against.
    pub name: String,
    /// What the traffic on this route is.
    pub protocol: Protocol,
    /// Forward proxy: requests (or `CONNECT` tunnels, when intercepted) to
    /// these hosts take this route. `host` or `host:port`, globs allowed.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Reverse proxy: requests to the sidecar's listener under this path
    /// prefix take this route; the prefix is replaced by the upstream's path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// Reverse proxy: the upstream base URL (`http://` or `https://`).
    /// Required with `pathPrefix`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// LLM routes: which API family (default: from the path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<LlmProvider>,
    /// HTTP routes only: `false` streams request bodies to the upstream
    /// without reading them (large uploads). Default `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inspect_body: Option<bool>,
    /// Paths servers could read differently (`//`, `%2F`, `\\`, `;param`,
    /// `.`/`..`): `refuse` them (the default) or `normalize` them to one
    /// form, which is then judged and forwarded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_strictness: Option<PathStrictness>,
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleSpec {
    /// Unique name, reported in denials, metrics and audit events.
    pub name: String,
    /// `allow` or `deny`.
    pub effect: Effect,
    /// The protocol the rule applies to; required for protocol-specific
    /// matchers. Absent: every protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// Why the rule exists; returned to the agent when the rule denies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Compliance controls the rule evidences (`SOC2 CC6.1`), copied into
    /// audit events.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub controls: Vec<String>,
    /// What the rule matches; every given matcher must match.
    #[serde(default, rename = "match")]
    pub matches: MatchSpec,
    /// Allow rules: at most this many requests per window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSpec>,
    /// Allow rules on LLM traffic: at most this many tokens (as reported by
    /// the provider's usage) per window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_budget: Option<TokenBudgetSpec>,
    /// Allow rules: also allow HTTP upgrades (WebSocket, SPDY). Without it an
    /// allow rule never matches an upgrade request.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_upgrade: bool,
    /// A Rego condition for what matchers cannot say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rego: Option<RegoSpec>,
}

/// Matchers. Lists match when any entry matches; an absent or empty list
/// matches everything.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MatchSpec {
    /// Target hosts: `host` or `host:port`, globs, case-insensitive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Target ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
    /// `http`, `https`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schemes: Vec<String>,
    /// Request paths (globs: `*` stays within a segment, `**` crosses).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// The route name, MCP server or A2A agent (globs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<String>,
    /// `http`: HTTP methods (`GET`, `CONNECT`); `mcp`, `a2a`: JSON-RPC
    /// methods (globs: `tools/*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// `mcp`: tool names for `tools/call` (globs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
    /// `mcp`: resource URIs for `resources/*` (globs: `*` stays within a
    /// path segment).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uris: Vec<String>,
    /// `mcp`: prompt names for `prompts/get` (globs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompts: Vec<String>,
    /// `mcp`: constraints on `tools/call` arguments; all must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arguments: Vec<ArgumentSpec>,
    /// `kubernetes`: verbs (`get`, `list`, `watch`, `create`, `update`,
    /// `patch`, `delete`, `deletecollection`, or `*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verbs: Vec<String>,
    /// `kubernetes`: API groups (`""` is the core group, `*` any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_groups: Vec<String>,
    /// `kubernetes`: resources as RBAC writes them: `pods`, `pods/exec`,
    /// `pods/*`, `*/status`, `*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// `kubernetes`: namespaces (globs); cluster-scoped requests never match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// `kubernetes`: object names (globs); requests without a name never
    /// match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// `kubernetes`: non-resource paths (`/version`, `/apis/*`); resource
    /// requests never match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub non_resource_paths: Vec<String>,
    /// `llm`: providers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<LlmProvider>,
    /// `llm`: models (globs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    /// `llm`: operations (`chat.completions`, `responses`, `messages`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<String>,
    /// `llm`: the request must cap generated tokens at or below this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
}

/// A constraint on one value inside MCP `tools/call` arguments. Every check
/// given must hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArgumentSpec {
    /// RFC 6901 JSON pointer into `arguments` (`/path`, `/options/0/name`).
    pub pointer: String,
    /// A missing value satisfies the constraint (default: it does not).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
    /// The value equals this JSON value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<Value>,
    /// The value equals one of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_of: Option<Vec<Value>>,
    /// A string matching this glob (`*` stays within a `/` segment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub glob: Option<String>,
    /// A string the regular expression matches entirely.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// A number within these inclusive bounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<RangeSpec>,
    /// A string of at most this many characters, or an array of at most
    /// this many items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u64>,
    /// A path that, once `.` and `..` are resolved, stays inside this
    /// directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within_path: Option<String>,
}

/// Inclusive numeric bounds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RangeSpec {
    /// The smallest accepted value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// The largest accepted value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// A request rate limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimitSpec {
    /// Requests allowed per window.
    pub requests: u64,
    /// The window: `30s`, `1m`, `1h`, `1d`, `1h30m`.
    pub per: String,
}

/// An LLM token budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenBudgetSpec {
    /// Tokens (input + output, as the provider reports them) per window.
    pub tokens: u64,
    /// The window: `30s`, `1m`, `1h`, `1d`, `1h30m`.
    pub per: String,
}

/// A Rego condition. The rule matches only when the query is `true`; an
/// evaluation error or timeout denies the action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegoSpec {
    /// The Rego module (v1 syntax). Its input is `{"action": <the action>}`.
    pub module: String,
    /// The rule to evaluate; default `data.<package>.allow` for allow rules
    /// and `data.<package>.deny` for deny rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// The evaluation time limit (default `20ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

impl ActionPolicyDocument {
    /// A document wrapping `spec`, named `name`.
    pub fn new(name: impl Into<String>, spec: ActionPolicySpec) -> ActionPolicyDocument {
        ActionPolicyDocument {
            api_version: API_VERSION.to_owned(),
            kind: KIND.to_owned(),
            metadata: Metadata {
                name: name.into(),
                ..Metadata::default()
            },
            spec,
        }
    }
}

impl RuleSpec {
    /// An allow rule with no matchers yet.
    pub fn allow(name: impl Into<String>, protocol: Option<Protocol>) -> RuleSpec {
        Self::new(name, Effect::Allow, protocol)
    }

    /// A deny rule with no matchers yet.
    pub fn deny(name: impl Into<String>, protocol: Option<Protocol>) -> RuleSpec {
        Self::new(name, Effect::Deny, protocol)
    }

    fn new(name: impl Into<String>, effect: Effect, protocol: Option<Protocol>) -> RuleSpec {
        RuleSpec {
            name: name.into(),
            effect,
            protocol,
            reason: None,
            controls: Vec::new(),
            matches: MatchSpec::default(),
            rate_limit: None,
            token_budget: None,
            allow_upgrade: false,
            rego: None,
        }
    }

    /// Sets the matchers.
    pub fn with_match(mut self, matches: MatchSpec) -> RuleSpec {
        self.matches = matches;
        self
    }

    /// Sets the reason.
    pub fn with_reason(mut self, reason: impl Into<String>) -> RuleSpec {
        self.reason = Some(reason.into());
        self
    }
}

impl RouteSpec {
    /// A forward-proxy route recognising `hosts` as `protocol` traffic.
    pub fn hosts(name: impl Into<String>, protocol: Protocol, hosts: Vec<String>) -> RouteSpec {
        RouteSpec {
            name: name.into(),
            protocol,
            hosts,
            path_prefix: None,
            upstream: None,
            path_strictness: None,
            provider: None,
            inspect_body: None,
        }
    }
}

/// Parses a duration: one or more `<number><unit>` terms with units `ms`,
/// `s`, `m`, `h`, `d` (`500ms`, `30s`, `1h30m`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "invalid duration {text:?}: expected terms like 500ms, 30s, 5m, 1h, 1d (e.g. 1h30m)"
        )
    };
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (number, tail) = rest.split_at(digits);
        let value: u64 = number.parse().map_err(|_| bad())?;
        let unit_len = tail.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, tail) = tail.split_at(unit_len);
        let term = match unit {
            "ms" => Duration::from_millis(value),
            "s" => Duration::from_secs(value),
            "m" => Duration::from_secs(value.saturating_mul(60)),
            "h" => Duration::from_secs(value.saturating_mul(3600)),
            "d" => Duration::from_secs(value.saturating_mul(86_400)),
            _ => return Err(bad()),
        };
        total = total.saturating_add(term);
        rest = tail;
    }
    if total.is_zero() {
        return Err(format!(
            "invalid duration {text:?}: must be greater than zero"
        ));
    }
    Ok(total)
}
