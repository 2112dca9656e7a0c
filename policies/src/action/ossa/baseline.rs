//! The baseline action policy of a manifest: what it declares becomes
//! allow rules, everything else on the protocols it speaks about is denied
//! (see the module docs of [`crate::action::ossa`] for the mapping).

use std::sync::Arc;

use super::super::spec::{
    ActionPolicyDocument, ActionPolicySpec, MatchSpec, RateLimitSpec, RuleSpec, TokenBudgetSpec,
};
use super::super::{ActionPolicy, ActionPolicyError, LlmProvider, Protocol};
use super::manifest::{AgentManifest, ApprovalRequired};
use super::read::{
    LOCAL_TOOL_TYPES, Refusal, Tool, intersect, models, positive, protocols_mcp, provider,
    read_tools, resolve_default,
};
use super::server::ServerRef;

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

/// Where the baseline runs: the pod's namespace (for in-cluster names) and
/// the routes of the pod's ActionPolicy (the servers of tools that name
/// none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    /// The pod's namespace.
    pub namespace: Option<String>,
    /// The names of the ActionPolicy's MCP routes.
    pub mcp_routes: Vec<String>,
    /// The names of its HTTP routes.
    pub http_routes: Vec<String>,
    /// The names of its A2A routes.
    pub a2a_routes: Vec<String>,
}

impl Placement {
    /// A placement in `namespace` (unknown: `None`), with no routes.
    pub fn new(namespace: Option<String>) -> Placement {
        Placement {
            namespace: namespace.filter(|n| !n.is_empty()),
            ..Placement::default()
        }
    }

    /// This placement with the routes of `policy`.
    pub fn with_routes_of(mut self, policy: &ActionPolicy) -> Placement {
        for r in policy.routes() {
            let list = match r.protocol {
                Protocol::Mcp => &mut self.mcp_routes,
                Protocol::Http => &mut self.http_routes,
                Protocol::A2a => &mut self.a2a_routes,
                _ => continue,
            };
            list.push(r.name.to_string());
        }
        self
    }
}

/// A manifest's baseline: its rules, the agent-wide limits in front of
/// them, and what the manifest declares that the sidecar cannot enforce.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The rules.
    pub spec: ActionPolicySpec,
    /// Agent-wide rate limits, each a policy every action passes first.
    pub gates: Vec<ActionPolicySpec>,
    /// Declarations accepted but not enforced (or enforced only in part),
    /// for `--check` and the sidecar's log.
    pub notes: Vec<String>,
}

/// The baseline action policy of a manifest.
#[derive(Debug)]
pub struct Baseline;

impl Baseline {
    /// The baseline as a constraint on an ActionPolicy file (whose routes
    /// `placement` names): decides what the manifest speaks about, allows
    /// the rest (the file decides it).
    pub fn constraint(
        manifest: &AgentManifest,
        placement: &Placement,
    ) -> Result<ActionPolicy, ActionPolicyError> {
        Self::compile(manifest, placement, false)
    }

    /// The baseline alone (no ActionPolicy file): what it does not allow is
    /// denied.
    pub fn standalone(
        manifest: &AgentManifest,
        placement: &Placement,
    ) -> Result<ActionPolicy, ActionPolicyError> {
        Self::compile(manifest, placement, true)
    }

    fn compile(
        manifest: &AgentManifest,
        placement: &Placement,
        standalone: bool,
    ) -> Result<ActionPolicy, ActionPolicyError> {
        let plan = Self::plan(manifest, placement, standalone)?;
        let name = format!("ossa:{}", manifest.name());
        let mut policy = ActionPolicy::compile(&ActionPolicyDocument::new(&name, plan.spec))?;
        // Gates nest, each evaluated before the one it wraps.
        let mut outer: Option<Arc<ActionPolicy>> = None;
        for gate in plan.gates {
            let mut gate = ActionPolicy::compile(&ActionPolicyDocument::new(&name, gate))?;
            if let Some(o) = outer.take() {
                gate = gate.with_baseline(o);
            }
            outer = Some(Arc::new(gate));
        }
        if let Some(o) = outer {
            policy = policy.with_baseline(o);
        }
        Ok(policy)
    }

    /// The rules, gates and notes of a manifest.
    pub fn plan(
        manifest: &AgentManifest,
        placement: &Placement,
        standalone: bool,
    ) -> Result<Plan, ActionPolicyError> {
        let mut b = Builder {
            name: manifest.name().to_owned(),
            placement,
            standalone,
            rules: Vec::new(),
            notes: Vec::new(),
        };
        b.build(manifest, standalone)
            .map_err(|(path, message)| ActionPolicyError::Spec { path, message })?;
        let gates = rate_gates(manifest, &mut b.notes);
        Ok(Plan {
            spec: ActionPolicySpec {
                rules: b.rules,
                ..ActionPolicySpec::default()
            },
            gates,
            notes: b.notes,
        })
    }
}

struct Builder<'a> {
    name: String,
    placement: &'a Placement,
    standalone: bool,
    rules: Vec<RuleSpec>,
    notes: Vec<String>,
}

impl Builder<'_> {
    fn build(&mut self, manifest: &AgentManifest, standalone: bool) -> Result<(), Refusal> {
        let tools = read_tools(manifest, &mut self.notes)?;
        self.blocked_domains(manifest);
        self.mcp(manifest, &tools)?;
        self.llm(manifest)?;
        let http_declared = self.endpoints(&tools, Protocol::Http, manifest);
        let a2a_declared = self.endpoints(&tools, Protocol::A2a, manifest);
        for t in &tools {
            if LOCAL_TOOL_TYPES.contains(&t.kind.as_str()) {
                self.notes.push(format!(
                    "spec.tools[{}] ({}): type {} runs in the agent, not over the network; nothing to enforce",
                    t.index, t.label, t.kind
                ));
            } else if t.kind == "kubernetes" || t.kind == "custom" {
                self.notes.push(format!(
                    "spec.tools[{}] ({}): type {} names no protocol the sidecar can tell apart; its traffic is decided by the ActionPolicy (standalone: denied)",
                    t.index, t.label, t.kind
                ));
            }
        }
        let name = self.name.clone();
        if standalone {
            self.rules.push(RuleSpec::deny("ossa:not-declared", None).with_reason(format!(
                "the OSSA manifest of agent {name:?} does not declare this, and the pod has no ActionPolicy; name one with the tollgate.dev/action-policy annotation to allow other actions"
            )));
        } else {
            for (p, declared) in [
                (Protocol::Http, http_declared),
                (Protocol::Kubernetes, false),
                (Protocol::A2a, a2a_declared),
            ] {
                if declared {
                    continue;
                }
                // Upgrades (WebSocket, SPDY) are the ActionPolicy's call too.
                let mut rule = RuleSpec::allow(format!("ossa:defer-{p}"), Some(p))
                    .with_reason("not governed by the OSSA manifest; the ActionPolicy decides");
                rule.allow_upgrade = true;
                self.rules.push(rule);
            }
        }
        Ok(())
    }

    /// `security.network_access.blocked_domains`: denied on every protocol.
    fn blocked_domains(&mut self, manifest: &AgentManifest) {
        let blocked: Vec<String> = manifest
            .spec
            .security
            .as_ref()
            .and_then(|s| s.network_access.as_ref())
            .and_then(|n| n.blocked_domains.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|d| d.trim().trim_start_matches("*.").to_ascii_lowercase())
            .filter(|d| !d.is_empty() && !d.contains(':'))
            // A blocked domain's subdomains are blocked too.
            .flat_map(|d| [format!("*.{d}"), d])
            .collect();
        if blocked.is_empty() {
            return;
        }
        let name = &self.name;
        self.rules.push(
            RuleSpec::deny("ossa:blocked-domains", None)
                .with_match(MatchSpec {
                    hosts: blocked,
                    ..MatchSpec::default()
                })
                .with_reason(format!(
                    "the OSSA manifest of agent {name:?} blocks this domain (spec.security.network_access.blocked_domains)"
                )),
        );
    }

    /// The alternative matchers for a tool's server; `None` when it names
    /// none and no route of `protocol` exists.
    fn server_matchers(
        &self,
        server: Option<&ServerRef>,
        protocol: Protocol,
        with_path: bool,
    ) -> Option<Vec<MatchSpec>> {
        match server {
            Some(s) => Some(s.matchers(self.placement.namespace.as_deref(), with_path)),
            None => {
                let routes = match protocol {
                    Protocol::Mcp => &self.placement.mcp_routes,
                    Protocol::Http => &self.placement.http_routes,
                    Protocol::A2a => &self.placement.a2a_routes,
                    _ => return None,
                };
                (!routes.is_empty()).then(|| {
                    vec![MatchSpec {
                        servers: routes.clone(),
                        ..MatchSpec::default()
                    }]
                })
            }
        }
    }

    fn mcp(&mut self, manifest: &AgentManifest, tools: &[Tool]) -> Result<(), Refusal> {
        let name = self.name.clone();
        let autonomy = manifest.spec.autonomy.clone().unwrap_or_default();
        let tool_call = |tools: Vec<String>| MatchSpec {
            methods: vec!["tools/call".into()],
            tools,
            ..MatchSpec::default()
        };
        let blocked = autonomy.blocked_actions.clone().unwrap_or_default();
        if !blocked.is_empty() {
            self.rules.push(
                RuleSpec::deny("ossa:blocked-actions", Some(Protocol::Mcp))
                    .with_match(tool_call(blocked))
                    .with_reason(format!(
                        "the OSSA manifest of agent {name:?} blocks this tool (spec.autonomy.blocked_actions)"
                    )),
            );
        }
        // Actions that need a person's approval: denied until Tollgate can
        // obtain one.
        let mut needs_approval: Vec<String> = match &autonomy.approval_required {
            Some(ApprovalRequired::Only(list)) => list.clone(),
            _ => Vec::new(),
        };
        for p in manifest
            .spec
            .governance
            .as_ref()
            .and_then(|g| g.authorization.as_ref())
            .and_then(|a| a.tool_permissions.as_ref())
            .into_iter()
            .flatten()
        {
            if p.requires_approval == Some(true)
                && let Some(t) = &p.tool
            {
                needs_approval.push(t.clone());
            }
        }
        needs_approval.retain(|t| !t.trim().is_empty());
        if !needs_approval.is_empty() {
            self.rules.push(
                RuleSpec::deny("ossa:requires-approval", Some(Protocol::Mcp))
                    .with_match(tool_call(needs_approval))
                    .with_reason(format!(
                        "the OSSA manifest of agent {name:?} requires a person's approval for this tool (spec.autonomy.approval_required), which Tollgate cannot obtain yet, so it is denied"
                    )),
            );
        }
        let approve_all = matches!(
            autonomy.approval_required,
            Some(ApprovalRequired::All(true))
        );
        let allowed = autonomy.allowed_actions.clone().unwrap_or_default();
        // With approval for everything, only pre-approved actions; without,
        // a non-empty allowed_actions is a whitelist. Either way never
        // beyond the declared tools and their servers.
        let whitelist = (approve_all || !allowed.is_empty()).then_some(&allowed);
        if approve_all && allowed.is_empty() {
            self.notes.push(
                "spec.autonomy.approval_required: true with no allowed_actions: every MCP tool call is denied (Tollgate cannot obtain approval yet)".into(),
            );
        }
        let mut session: Vec<MatchSpec> = Vec::new();
        let mcp: Vec<&Tool> = tools.iter().filter(|t| t.kind == "mcp").collect();
        let declared_mcp = protocols_mcp(manifest);
        for t in &mcp {
            let label = format!("spec.tools[{}] ({})", t.index, t.label);
            let Some(matchers) = self.server_matchers(t.server.as_ref(), Protocol::Mcp, false)
            else {
                self.notes.push(format!(
                    "{label} names no server and the ActionPolicy declares no MCP route: its tools are allowed nowhere; give it server: or endpoint:"
                ));
                continue;
            };
            session.extend(matchers.iter().cloned());
            let names = match whitelist {
                Some(allowed) => intersect(&t.names, allowed),
                None => t.names.clone(),
            };
            if names.is_empty() {
                self.notes.push(format!(
                    "{label} allows no tool call: {}",
                    if t.names.is_empty() {
                        "it names no tool (no name, no capabilities)"
                    } else {
                        "none of its tools is in spec.autonomy.allowed_actions"
                    }
                ));
                continue;
            }
            let why = if approve_all {
                format!(
                    "approved in advance by the OSSA manifest of agent {name:?} (spec.autonomy.allowed_actions, declared in spec.tools[{}])",
                    t.index
                )
            } else {
                format!(
                    "declared in the OSSA manifest of agent {name:?} (spec.tools[{}])",
                    t.index
                )
            };
            for (k, m) in matchers.into_iter().enumerate() {
                let mut rule = RuleSpec::allow(
                    format!("ossa:tool[{}]:{}{}", t.index, t.label, alt(k)),
                    Some(Protocol::Mcp),
                )
                .with_match(MatchSpec {
                    methods: vec!["tools/call".into()],
                    tools: names.clone(),
                    ..m
                })
                .with_reason(why.clone());
                rule.rate_limit = t.rate_per_minute.map(|n| RateLimitSpec {
                    requests: n,
                    per: "1m".into(),
                });
                self.rules.push(rule);
            }
        }
        for (i, (server, tools)) in declared_mcp.into_iter().enumerate() {
            let matchers = server.matchers(self.placement.namespace.as_deref(), false);
            session.extend(matchers.iter().cloned());
            let names = match whitelist {
                Some(allowed) => intersect(&tools, allowed),
                None => tools,
            };
            if names.is_empty() {
                continue;
            }
            for (k, m) in matchers.into_iter().enumerate() {
                self.rules.push(
                    RuleSpec::allow(
                        format!("ossa:mcp-server[{i}]:{server}{}", alt(k)),
                        Some(Protocol::Mcp),
                    )
                    .with_match(MatchSpec {
                        methods: vec!["tools/call".into()],
                        tools: names.clone(),
                        ..m
                    })
                    .with_reason(format!(
                        "declared in the OSSA manifest of agent {name:?} (spec.protocols.mcp.servers[{i}])"
                    )),
                );
            }
        }
        if approve_all {
            self.rules.push(
                RuleSpec::deny("ossa:approval-required", Some(Protocol::Mcp))
                    .with_match(tool_call(Vec::new()))
                    .with_reason(format!(
                        "the OSSA manifest of agent {name:?} requires a person's approval for every action (spec.autonomy.approval_required: true), which Tollgate cannot obtain yet; only tools in spec.autonomy.allowed_actions that spec.tools declares run, on their declared servers"
                    )),
            );
        } else if whitelist.is_some() {
            self.rules.push(
                RuleSpec::deny("ossa:allowed-actions", Some(Protocol::Mcp))
                    .with_match(tool_call(Vec::new()))
                    .with_reason(format!(
                        "the OSSA manifest of agent {name:?} allows only the tools in spec.autonomy.allowed_actions that spec.tools declares, on their declared servers"
                    )),
            );
        }
        for (k, m) in session.into_iter().enumerate() {
            self.rules.push(
                RuleSpec::allow(format!("ossa:mcp-session{}", alt(k)), Some(Protocol::Mcp))
                    .with_match(MatchSpec {
                        methods: MCP_SESSION_METHODS
                            .iter()
                            .map(|m| (*m).to_owned())
                            .collect(),
                        ..m
                    })
                    .with_reason(format!(
                        "MCP session plumbing for the declared servers of agent {name:?}"
                    )),
            );
        }
        self.rules.push(
            RuleSpec::deny("ossa:undeclared-tool", Some(Protocol::Mcp)).with_reason(format!(
                "the OSSA manifest of agent {name:?} does not declare this MCP tool on this server; add it to spec.tools[] (type: mcp, with its server)"
            )),
        );
        Ok(())
    }

    fn llm(&mut self, manifest: &AgentManifest) -> Result<(), Refusal> {
        let name = self.name.clone();
        let llm = manifest.spec.llm.clone().unwrap_or_default();
        let mut providers: Vec<LlmProvider> = Vec::new();
        let mut models_allowed: Vec<String> = Vec::new();
        let mut any_model = false;
        let primary = match &llm.provider {
            Some(p) => Some(provider(p, "spec.llm.provider")?),
            None => None,
        };
        let primary_models = llm.model.as_ref().map(models).unwrap_or_default();
        if primary.is_some() || !primary_models.is_empty() {
            providers.extend(
                primary
                    .clone()
                    .unwrap_or(vec![LlmProvider::Openai, LlmProvider::Anthropic]),
            );
            if primary_models.is_empty() {
                any_model = true;
            }
            models_allowed.extend(primary_models);
        }
        for (i, f) in llm.fallback_models.iter().flatten().enumerate() {
            let path = format!("spec.llm.fallback_models[{i}]");
            let p = match &f.provider {
                Some(p) => provider(p, &format!("{path}.provider"))?,
                None => primary
                    .clone()
                    .unwrap_or(vec![LlmProvider::Openai, LlmProvider::Anthropic]),
            };
            providers.extend(p);
            match &f.model {
                Some(m) if !m.trim().is_empty() => models_allowed.push(resolve_default(m)),
                _ => any_model = true,
            }
        }
        providers.dedup();
        let cost = manifest
            .spec
            .constraints
            .as_ref()
            .and_then(|c| c.cost.clone())
            .unwrap_or_default();
        let max_tokens = cost
            .max_tokens_per_request
            .map(|n| positive(n, "spec.constraints.cost.maxTokensPerRequest"))
            .transpose()?;
        let per_day = cost
            .max_tokens_per_day
            .map(|n| positive(n, "spec.constraints.cost.maxTokensPerDay"))
            .transpose()?;
        if cost.max_cost_per_day.is_some() {
            self.notes.push("spec.constraints.cost.maxCostPerDay: not enforced (the sidecar counts tokens, not money); maxTokensPerDay is".into());
        }
        if !providers.is_empty() {
            let mut rule = RuleSpec::allow("ossa:llm", Some(Protocol::Llm))
                .with_match(MatchSpec {
                    providers,
                    models: if any_model {
                        Vec::new()
                    } else {
                        models_allowed.clone()
                    },
                    max_tokens,
                    ..MatchSpec::default()
                })
                .with_reason(format!(
                    "the LLM declared in the OSSA manifest of agent {name:?} (spec.llm)"
                ));
            rule.token_budget = per_day.map(|tokens| TokenBudgetSpec {
                tokens,
                per: "1d".into(),
            });
            self.rules.push(rule);
            if per_day.is_some() && !self.standalone {
                self.notes.push("spec.constraints.cost.maxTokensPerDay: counted only when the manifest decides alone; with an ActionPolicy give its LLM rule a tokenBudget".into());
            }
        }
        let declared = if any_model || models_allowed.is_empty() {
            match &llm.provider {
                Some(p) => format!("only provider {p} is declared"),
                None => "no LLM is declared".to_owned(),
            }
        } else {
            format!("only {} declared", models_allowed.join(", "))
        };
        let cap = match max_tokens {
            Some(n) => format!(
                ", and each request must set max_tokens to at most {n} (spec.constraints.cost.maxTokensPerRequest)"
            ),
            None => String::new(),
        };
        self.rules.push(
            RuleSpec::deny("ossa:undeclared-llm", Some(Protocol::Llm)).with_reason(format!(
                "the OSSA manifest of agent {name:?} does not allow this model request ({declared} in spec.llm{cap})"
            )),
        );
        Ok(())
    }

    /// HTTP (`http`, `api`, `grpc`) or A2A (`a2a`) tools: their endpoints
    /// narrow what the protocol may reach. True when the manifest declares
    /// any (then the rest of the protocol is denied).
    fn endpoints(&mut self, tools: &[Tool], protocol: Protocol, manifest: &AgentManifest) -> bool {
        let name = self.name.clone();
        let kinds: &[&str] = match protocol {
            Protocol::Http => &["http", "api", "grpc"],
            _ => &["a2a"],
        };
        let mine: Vec<&Tool> = tools
            .iter()
            .filter(|t| kinds.contains(&t.kind.as_str()))
            .collect();
        let domains: Vec<String> = if protocol == Protocol::Http {
            manifest
                .spec
                .security
                .as_ref()
                .and_then(|s| s.network_access.as_ref())
                .and_then(|n| n.allowed_domains.clone())
                .unwrap_or_default()
                .into_iter()
                .map(|d| d.trim().to_ascii_lowercase())
                .filter(|d| !d.is_empty() && !d.contains(':'))
                .collect()
        } else {
            Vec::new()
        };
        if mine.is_empty() && domains.is_empty() {
            return false;
        }
        for t in &mine {
            let Some(matchers) = self.server_matchers(t.server.as_ref(), protocol, true) else {
                self.notes.push(format!(
                    "spec.tools[{}] ({}): names no endpoint and the ActionPolicy declares no {protocol} route: allowed nowhere",
                    t.index, t.label
                ));
                continue;
            };
            for (k, m) in matchers.into_iter().enumerate() {
                let mut rule = RuleSpec::allow(
                    format!("ossa:tool[{}]:{}{}", t.index, t.label, alt(k)),
                    Some(protocol),
                )
                .with_match(m)
                .with_reason(format!(
                    "declared in the OSSA manifest of agent {name:?} (spec.tools[{}])",
                    t.index
                ));
                rule.rate_limit = t.rate_per_minute.map(|n| RateLimitSpec {
                    requests: n,
                    per: "1m".into(),
                });
                self.rules.push(rule);
            }
        }
        if !domains.is_empty() {
            self.rules.push(
                RuleSpec::allow("ossa:allowed-domains", Some(Protocol::Http))
                    .with_match(MatchSpec {
                        hosts: domains,
                        ..MatchSpec::default()
                    })
                    .with_reason(format!(
                        "allowed by the OSSA manifest of agent {name:?} (spec.security.network_access.allowed_domains)"
                    )),
            );
        }
        let what = match protocol {
            Protocol::Http => {
                "HTTP endpoint (spec.tools[] of type http, api or grpc, and spec.security.network_access.allowed_domains)"
            }
            _ => "agent (spec.tools[] of type a2a)",
        };
        self.rules.push(
            RuleSpec::deny(format!("ossa:undeclared-{protocol}"), Some(protocol)).with_reason(
                format!("the OSSA manifest of agent {name:?} does not declare this {what}"),
            ),
        );
        true
    }
}

/// Agent-wide limits (`spec.safety.rate_limiting`): one gate per limit.
fn rate_gates(manifest: &AgentManifest, notes: &mut Vec<String>) -> Vec<ActionPolicySpec> {
    let mut gates = Vec::new();
    let safety = manifest.spec.safety.clone().unwrap_or_default();
    if let Some(r) = safety.rate_limiting
        && r.enabled != Some(false)
    {
        for (n, per, field) in [
            (r.requests_per_minute, "1m", "requests_per_minute"),
            (r.requests_per_hour, "1h", "requests_per_hour"),
        ] {
            let Some(n) = n else { continue };
            match positive(n, field) {
                Ok(requests) => {
                    let mut rule = RuleSpec::allow(format!("ossa:rate-limit-{per}"), None)
                        .with_reason("within spec.safety.rate_limiting of the OSSA manifest");
                    rule.allow_upgrade = true;
                    rule.rate_limit = Some(RateLimitSpec {
                        requests,
                        per: per.into(),
                    });
                    gates.push(ActionPolicySpec {
                        rules: vec![rule],
                        ..ActionPolicySpec::default()
                    });
                }
                Err((_, m)) => {
                    notes.push(format!("spec.safety.rate_limiting.{field}: {m}; ignored"))
                }
            }
        }
    }
    if safety
        .guardrails
        .as_ref()
        .is_some_and(|g| g.get("max_tool_calls").is_some())
    {
        notes.push("spec.safety.guardrails.max_tool_calls: not enforced (a task's boundaries are not visible on the network)".into());
    }
    if let Some(perf) = manifest
        .spec
        .constraints
        .as_ref()
        .and_then(|c| c.performance.as_ref())
        .and_then(serde_json::Value::as_object)
        && !perf.is_empty()
    {
        notes.push(format!(
            "spec.constraints.performance ({}): not enforced by the sidecar (concurrency and timeouts are the agent's)",
            perf.keys().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    if let Some(level) = manifest
        .spec
        .autonomy
        .as_ref()
        .and_then(|a| a.level.as_ref())
    {
        notes.push(format!(
            "spec.autonomy.level {level:?}: recorded; approval_required, allowed_actions and blocked_actions are what is enforced"
        ));
    }
    gates
}

/// The suffix telling alternative rules of one declaration apart.
fn alt(k: usize) -> String {
    if k == 0 {
        String::new()
    } else {
        format!("#{k}")
    }
}
