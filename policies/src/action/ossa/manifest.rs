//! The OSSA `kind: Agent` manifest as Tollgate reads it: the fields that
//! become rules are typed (in every shape the 0.2.x to 0.5 schemas allow),
//! everything else is accepted and ignored. Parsing picks the `kind: Agent`
//! document of a multi-document file and checks `apiVersion`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::super::ActionPolicyError;
use super::baseline::{Baseline, Placement};

/// The largest manifest accepted, in bytes.
pub const MAX_MANIFEST_BYTES: usize = 1 << 20;

/// The most YAML documents a manifest file may hold.
const MAX_DOCUMENTS: usize = 64;

/// An OSSA agent manifest, as far as Tollgate reads it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentManifest {
    /// `ossa/v0.3.6`, `ossa/v0.2.x`, `ossa/v1`, ...
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
}

/// `spec`: the parts Tollgate enforces.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct AgentSpec {
    /// The model the agent uses.
    #[serde(default)]
    pub llm: Option<LlmSpec>,
    /// The tools it may use.
    #[serde(default)]
    pub tools: Option<Vec<ToolSpec>>,
    /// How far it may act on its own.
    #[serde(default)]
    pub autonomy: Option<AutonomySpec>,
    /// Cost and performance limits.
    #[serde(default)]
    pub constraints: Option<ConstraintsSpec>,
    /// Rate limits and guardrails.
    #[serde(default)]
    pub safety: Option<SafetySpec>,
    /// 0.4+: network access.
    #[serde(default)]
    pub security: Option<SecuritySpec>,
    /// 0.4+: protocol bindings (`protocols.mcp.servers[]`).
    #[serde(default)]
    pub protocols: Option<ProtocolsSpec>,
    /// 0.4+: per-tool authorization.
    #[serde(default)]
    pub governance: Option<GovernanceSpec>,
}

/// `spec.llm`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct LlmSpec {
    /// `openai`, `anthropic`, an OpenAI-compatible provider, `custom`, or
    /// `${VARIABLE:-default}`.
    #[serde(default)]
    pub provider: Option<String>,
    /// The model, or a map of models (every value is allowed).
    #[serde(default)]
    pub model: Option<ModelSpec>,
    /// Models to fall back to.
    #[serde(default)]
    pub fallback_models: Option<Vec<FallbackModel>>,
}

/// `spec.llm.model`: one name, or a map whose string values are names.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ModelSpec {
    /// One model.
    Name(String),
    /// Several, by role (`default`, `fast`, ...).
    Map(BTreeMap<String, Value>),
}

/// `spec.llm.fallback_models[]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FallbackModel {
    /// The provider (default: the primary one).
    #[serde(default)]
    pub provider: Option<String>,
    /// The model.
    #[serde(default)]
    pub model: Option<String>,
}

/// `spec.tools[]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ToolSpec {
    /// `mcp`, `http`, `a2a`, `function`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// The tool's name (optional from the schema's point of view).
    #[serde(default)]
    pub name: Option<String>,
    /// The MCP server: a route name, an in-cluster name, a host or a URL.
    #[serde(default)]
    pub server: Option<String>,
    /// The endpoint URL (HTTP, A2A, gRPC, and MCP servers too).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Free-form configuration; `server` and `endpoint` in it are read.
    #[serde(default)]
    pub config: Option<Value>,
    /// The operations of the tool (MCP tool names).
    #[serde(default)]
    pub capabilities: Option<Vec<CapabilitySpec>>,
    /// Transport settings; `rateLimit` is read.
    #[serde(default)]
    pub transport: Option<TransportSpec>,
}

/// `spec.tools[].capabilities[]`: a name or an object with a name.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum CapabilitySpec {
    /// `get_file_contents`.
    Name(String),
    /// `{name: get_file_contents, ...}`.
    Object {
        /// The capability's name.
        name: String,
    },
}

impl CapabilitySpec {
    /// The capability's name.
    pub fn name(&self) -> &str {
        match self {
            CapabilitySpec::Name(n) | CapabilitySpec::Object { name: n } => n,
        }
    }
}

/// `spec.tools[].transport`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct TransportSpec {
    /// Requests per minute to this tool.
    #[serde(default, rename = "rateLimit")]
    pub rate_limit: Option<ToolRateLimit>,
}

/// `spec.tools[].transport.rateLimit`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ToolRateLimit {
    /// Requests per minute.
    #[serde(default, rename = "requestsPerMinute")]
    pub requests_per_minute: Option<f64>,
}

/// `spec.autonomy`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct AutonomySpec {
    /// `autonomous`, `supervised`, ... (recorded, not enforced by itself).
    #[serde(default)]
    pub level: Option<String>,
    /// `true`: every action needs a person's approval; a list: those
    /// actions do.
    #[serde(default)]
    pub approval_required: Option<ApprovalRequired>,
    /// The actions the agent may take (with `approval_required: true`:
    /// approved in advance).
    #[serde(default)]
    pub allowed_actions: Option<Vec<String>>,
    /// Tools never allowed.
    #[serde(default)]
    pub blocked_actions: Option<Vec<String>>,
}

/// `spec.autonomy.approval_required`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ApprovalRequired {
    /// For every action, or none.
    All(bool),
    /// For these actions.
    Only(Vec<String>),
}

/// `spec.constraints`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ConstraintsSpec {
    /// Token and cost limits.
    #[serde(default)]
    pub cost: Option<CostSpec>,
    /// Concurrency and timeouts.
    #[serde(default)]
    pub performance: Option<Value>,
}

/// `spec.constraints.cost`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CostSpec {
    /// LLM tokens per day.
    #[serde(default)]
    pub max_tokens_per_day: Option<f64>,
    /// LLM tokens per request (the request's `max_tokens` must not exceed
    /// it).
    #[serde(default)]
    pub max_tokens_per_request: Option<f64>,
    /// Money per day.
    #[serde(default)]
    pub max_cost_per_day: Option<f64>,
}

/// `spec.safety`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct SafetySpec {
    /// Request rate limits.
    #[serde(default)]
    pub rate_limiting: Option<RateLimiting>,
    /// Guardrails.
    #[serde(default)]
    pub guardrails: Option<Value>,
}

/// `spec.safety.rate_limiting`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct RateLimiting {
    /// `false` turns the limits off.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Requests per minute.
    #[serde(default)]
    pub requests_per_minute: Option<f64>,
    /// Requests per hour.
    #[serde(default)]
    pub requests_per_hour: Option<f64>,
}

/// `spec.security` (0.4+).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct SecuritySpec {
    /// Which domains the agent may reach.
    #[serde(default)]
    pub network_access: Option<NetworkAccess>,
}

/// `spec.security.network_access`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct NetworkAccess {
    /// Domains the agent may reach (plain HTTP).
    #[serde(default)]
    pub allowed_domains: Option<Vec<String>>,
    /// Domains it must never reach (any protocol).
    #[serde(default)]
    pub blocked_domains: Option<Vec<String>>,
}

/// `spec.protocols` (0.4+).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ProtocolsSpec {
    /// MCP.
    #[serde(default)]
    pub mcp: Option<McpProtocol>,
}

/// `spec.protocols.mcp`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct McpProtocol {
    /// The MCP servers and the tools used on each.
    #[serde(default)]
    pub servers: Option<Vec<McpServer>>,
}

/// `spec.protocols.mcp.servers[]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct McpServer {
    /// The server's name.
    #[serde(default)]
    pub name: Option<String>,
    /// Its URL.
    #[serde(default)]
    pub url: Option<String>,
    /// Its URL (another spelling).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The tools used on it: names, or objects with a `name`.
    #[serde(default)]
    pub tools: Option<Vec<CapabilitySpec>>,
}

/// `spec.governance` (0.4+).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct GovernanceSpec {
    /// Authorization.
    #[serde(default)]
    pub authorization: Option<Authorization>,
}

/// `spec.governance.authorization`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Authorization {
    /// Per-tool permissions.
    #[serde(default)]
    pub tool_permissions: Option<Vec<ToolPermission>>,
}

/// `spec.governance.authorization.tool_permissions[]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ToolPermission {
    /// The tool.
    #[serde(default)]
    pub tool: Option<String>,
    /// Whether a person must approve each use.
    #[serde(default)]
    pub requires_approval: Option<bool>,
}

/// A version of the specification, from `apiVersion`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct OssaVersion {
    /// Major.
    pub major: u32,
    /// Minor (`None` in `ossa/v1`).
    pub minor: Option<u32>,
    /// Patch (`None` in `ossa/v0.3` and `ossa/v0.2.x`).
    pub patch: Option<u32>,
}

impl std::fmt::Display for OssaVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.major)?;
        if let Some(minor) = self.minor {
            write!(f, ".{minor}")?;
        }
        if let Some(patch) = self.patch {
            write!(f, ".{patch}")?;
        }
        Ok(())
    }
}

impl OssaVersion {
    /// Reads `ossa/v<major>[.<minor>[.<patch>|.x]][-<suffix>]`; anything
    /// else (`ossa/${OSSA_VERSION}`, `ossa/latest`) is not a version.
    pub fn parse(api_version: &str) -> Option<OssaVersion> {
        let rest = api_version.strip_prefix("ossa/v")?;
        let (numbers, suffix) = match rest.split_once('-') {
            Some((n, s)) => (n, Some(s)),
            None => (rest, None),
        };
        if suffix.is_some_and(|s| {
            s.is_empty() || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.')
        }) {
            return None;
        }
        let number = |s: &str| -> Option<u32> {
            if s.is_empty() || s.len() > 6 || !s.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            s.parse().ok()
        };
        let mut parts = numbers.split('.');
        let major = number(parts.next()?)?;
        let minor = match parts.next() {
            Some(m) => Some(number(m)?),
            None => None,
        };
        let patch = match parts.next() {
            Some("x") => None,
            Some(p) => Some(number(p)?),
            None => None,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(OssaVersion {
            major,
            minor,
            patch,
        })
    }
}

impl AgentManifest {
    /// Parses a manifest; `file` names it in errors. A file of several
    /// YAML documents must hold exactly one `kind: Agent` document.
    pub fn parse(text: &str, file: &str) -> Result<AgentManifest, ActionPolicyError> {
        let index = Self::locate(text, file)?.0;
        // The chosen document again, typed, for located errors.
        let manifest = yaml_serde::Deserializer::from_str(text)
            .nth(index)
            .ok_or_else(|| ActionPolicyError::Unlocated {
                file: file.to_owned(),
                message: "the Agent document vanished".into(),
            })
            .and_then(|doc| AgentManifest::deserialize(doc).map_err(|e| located(e, file)))?;
        manifest
            .check()
            .map_err(|(path, message)| ActionPolicyError::Unlocated {
                file: file.to_owned(),
                message: format!("{path}: {message}"),
            })?;
        Ok(manifest)
    }

    /// The manifest's `kind: Agent` document as JSON (for schema
    /// validation), chosen as [`AgentManifest::parse`] chooses it.
    pub fn document(text: &str, file: &str) -> Result<Value, ActionPolicyError> {
        Ok(Self::locate(text, file)?.1)
    }

    /// The index of the document to read, and that document.
    fn locate(text: &str, file: &str) -> Result<(usize, Value), ActionPolicyError> {
        let unlocated = |message: String| ActionPolicyError::Unlocated {
            file: file.to_owned(),
            message,
        };
        if text.len() > MAX_MANIFEST_BYTES {
            return Err(unlocated(format!(
                "the OSSA manifest is {} bytes; the limit is {MAX_MANIFEST_BYTES}",
                text.len()
            )));
        }
        let mut documents = Vec::new();
        for doc in yaml_serde::Deserializer::from_str(text) {
            if documents.len() == MAX_DOCUMENTS {
                return Err(unlocated(format!(
                    "the file holds more than {MAX_DOCUMENTS} YAML documents"
                )));
            }
            let value = Value::deserialize(doc).map_err(|e| located(e, file))?;
            documents.push(value);
        }
        let index = Self::agent_document(&documents).map_err(unlocated)?;
        let document = documents.into_iter().nth(index).unwrap_or_default();
        Ok((index, document))
    }

    /// The index of the one `kind: Agent` document (the only document,
    /// whatever its kind, so that its own errors are reported).
    fn agent_document(documents: &[Value]) -> Result<usize, String> {
        if documents.is_empty() {
            return Err(
                "the file holds no YAML document; expected an OSSA kind: Agent manifest".into(),
            );
        }
        if documents.len() == 1 {
            return Ok(0);
        }
        let agents: Vec<(usize, &str)> = documents
            .iter()
            .enumerate()
            .filter(|(_, d)| d.get("kind").and_then(Value::as_str) == Some("Agent"))
            .map(|(i, d)| {
                (
                    i,
                    d.pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or("?"),
                )
            })
            .collect();
        match agents.as_slice() {
            [(i, _)] => Ok(*i),
            [] => Err(format!(
                "kind: none of the {} YAML documents is kind: Agent",
                documents.len()
            )),
            many => Err(format!(
                "kind: the file holds {} Agent documents ({}); a pod's manifest must hold one: put each agent in its own file or ConfigMap key",
                many.len(),
                many.iter()
                    .map(|(i, n)| format!("document {} {n:?}", i + 1))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    fn check(&self) -> Result<(), (String, String)> {
        if OssaVersion::parse(&self.api_version).is_none() {
            return Err((
                "apiVersion".into(),
                format!(
                    "expected an OSSA version such as \"ossa/v0.3.6\" or \"ossa/v0.2.x\", found {:?}",
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
        // What the baseline cannot enforce is refused here, with its field.
        match Baseline::standalone(self, &Placement::default()) {
            Ok(_) => Ok(()),
            Err(ActionPolicyError::Spec { path, message }) => Err((path, message)),
            Err(e) => Err(("spec".into(), e.to_string())),
        }
    }

    /// The specification version of `apiVersion`.
    pub fn version(&self) -> Option<OssaVersion> {
        OssaVersion::parse(&self.api_version)
    }

    /// The agent's name (`metadata.name`, or `agent`).
    pub fn name(&self) -> &str {
        if self.metadata.name.is_empty() {
            "agent"
        } else {
            &self.metadata.name
        }
    }

    /// `spec.tools`, or none.
    pub fn tools(&self) -> &[ToolSpec] {
        self.spec.tools.as_deref().unwrap_or_default()
    }
}

/// A YAML error as a located policy error.
fn located(e: yaml_serde::Error, file: &str) -> ActionPolicyError {
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
}
