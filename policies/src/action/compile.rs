//! Compiling a spec into an [`ActionPolicy`]: every glob, regex and Rego
//! module is compiled once here, so evaluation is a pass over the rules.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use super::limit::{LimitKind, LimitUsage, Limiter};
use super::matcher::{ArgumentConstraint, HostPatterns, Patterns, ResourcePatterns, Separator};
use super::rego::RegoCondition;
use super::route::{BodyLimits, Route};
use super::spec::{
    API_VERSION, ActionPolicyDocument, ActionPolicySpec, KIND, MatchSpec, RuleSpec, parse_duration,
};
use super::{ActionPolicyError, Effect, LlmProvider, Protocol};

/// A compiled action policy: routes, limits and ordered rules.
#[derive(Debug)]
pub struct ActionPolicy {
    pub(crate) name: Arc<str>,
    pub(crate) rules: Vec<Rule>,
    pub(crate) routes: Vec<Arc<Route>>,
    pub(crate) limits: BodyLimits,
    pub(crate) passthrough: HostPatterns,
    /// A baseline (an OSSA manifest's) every action must also pass.
    pub(crate) baseline: Option<Arc<ActionPolicy>>,
}

/// A compiled rule.
#[derive(Debug)]
pub(crate) struct Rule {
    pub(crate) name: Arc<str>,
    pub(crate) effect: Effect,
    pub(crate) protocol: Option<Protocol>,
    /// What the agent is told when this rule denies, or the audit trail
    /// records when it allows.
    pub(crate) reason: Arc<str>,
    pub(crate) controls: Arc<[String]>,
    pub(crate) matcher: Matcher,
    pub(crate) rate_limit: Option<Arc<Limiter>>,
    pub(crate) token_budget: Option<Arc<Limiter>>,
    pub(crate) allow_upgrade: bool,
    pub(crate) rego: Option<RegoCondition>,
    /// Why the rule can never match, if it cannot (a warning, not an
    /// error: the rule is harmless, but its author meant something else).
    pub(crate) never_matches: Option<String>,
}

/// A rule's compiled matchers.
#[derive(Debug, Default)]
pub(crate) struct Matcher {
    pub(crate) hosts: HostPatterns,
    pub(crate) ports: Vec<u16>,
    pub(crate) schemes: Vec<String>,
    pub(crate) paths: Patterns,
    pub(crate) servers: Patterns,
    pub(crate) methods: Patterns,
    pub(crate) tools: Patterns,
    pub(crate) uris: Patterns,
    pub(crate) prompts: Patterns,
    pub(crate) arguments: Vec<ArgumentConstraint>,
    pub(crate) verbs: Vec<String>,
    pub(crate) api_groups: Vec<String>,
    pub(crate) resources: ResourcePatterns,
    pub(crate) namespaces: Patterns,
    pub(crate) names: Patterns,
    pub(crate) non_resource_paths: Patterns,
    pub(crate) providers: Vec<LlmProvider>,
    pub(crate) models: Patterns,
    pub(crate) operations: Patterns,
    pub(crate) max_tokens: Option<u64>,
}

/// The Kubernetes verbs a rule may name.
const KUBE_VERBS: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
    "post",
    "put",
    "head",
    "options",
    "*",
];

impl ActionPolicy {
    /// Compiles a document built in code (or parsed elsewhere).
    pub fn compile(document: &ActionPolicyDocument) -> Result<ActionPolicy, ActionPolicyError> {
        check_header(document).map_err(|message| ActionPolicyError::Spec {
            path: String::new(),
            message,
        })?;
        Self::compile_spec(&document.metadata.name, &document.spec)
    }

    /// Compiles a bare spec named `name`.
    pub fn compile_spec(
        name: &str,
        spec: &ActionPolicySpec,
    ) -> Result<ActionPolicy, ActionPolicyError> {
        let err = |path: String, message: String| ActionPolicyError::Spec { path, message };
        let limits = BodyLimits::compile(&spec.limits).map_err(|m| err("spec.limits".into(), m))?;
        let passthrough = HostPatterns::compile(&spec.tls.passthrough)
            .map_err(|m| err("spec.tls.passthrough".into(), m))?;
        let mut routes = Vec::with_capacity(spec.routes.len());
        let mut route_names = HashSet::new();
        for (i, r) in spec.routes.iter().enumerate() {
            let path = format!("spec.routes[{i}]");
            if !route_names.insert(r.name.as_str()) {
                return Err(err(path, format!("duplicate route name {:?}", r.name)));
            }
            routes.push(Arc::new(Route::compile(r).map_err(|m| err(path, m))?));
        }
        let mut rules = Vec::with_capacity(spec.rules.len());
        let mut rule_names = HashSet::new();
        for (i, r) in spec.rules.iter().enumerate() {
            let path = format!("spec.rules[{i}]");
            if !rule_names.insert(r.name.as_str()) {
                return Err(err(path, format!("duplicate rule name {:?}", r.name)));
            }
            rules.push(Rule::compile(r).map_err(|m| err(path, m))?);
        }
        Ok(ActionPolicy {
            name: name.into(),
            rules,
            routes,
            limits,
            passthrough,
            baseline: None,
        })
    }

    /// What is legal in the policy but almost certainly a mistake, such as
    /// a rule that can never match; each names the rule.
    pub fn warnings(&self) -> Vec<String> {
        self.rules
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                r.never_matches.as_ref().map(|why| {
                    format!("spec.rules[{i}] (name {:?}) can never match: {why}", r.name)
                })
            })
            .collect()
    }

    /// The policy's name (`metadata.name`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many rules it has.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// The rule names, in order.
    pub fn rule_names(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| &*r.name)
    }

    /// The declared routes, in order.
    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }

    /// The first route claiming `host` (lowercase) and `port`.
    pub fn route_for_host(&self, host: &str, port: u16) -> Option<&Arc<Route>> {
        self.routes.iter().find(|r| r.matches_host(host, port))
    }

    /// The route with the longest path prefix under which `path` falls,
    /// and the rest of the path.
    pub fn route_for_path<'p>(&self, path: &'p str) -> Option<(&Arc<Route>, &'p str)> {
        self.routes
            .iter()
            .filter_map(|r| r.strip_prefix(path).map(|rest| (r, rest)))
            .max_by_key(|(r, _)| r.path_prefix.as_ref().map_or(0, String::len))
    }

    /// Bounds on request inspection.
    pub fn limits(&self) -> BodyLimits {
        self.limits
    }

    /// Whether TLS to `host`:`port` is passed through, not intercepted.
    pub fn tls_passthrough(&self, host: &str, port: u16) -> bool {
        !self.passthrough.is_empty() && self.passthrough.matches(host, port)
    }

    /// Carries rate-limit and budget counters over from the policy this one
    /// replaces, for rules with the same name and the same limit.
    pub fn inherit_limits(&mut self, previous: &ActionPolicy) {
        for rule in &mut self.rules {
            let Some(old) = previous.rules.iter().find(|r| r.name == rule.name) else {
                continue;
            };
            for (new, old) in [
                (&mut rule.rate_limit, &old.rate_limit),
                (&mut rule.token_budget, &old.token_budget),
            ] {
                if let (Some(n), Some(o)) = (new.as_ref(), old)
                    && n.same_config(o)
                {
                    *new = Some(Arc::clone(o));
                }
            }
        }
    }

    /// Charges `tokens` reported by an LLM response to the budget of the
    /// rule at `rule_index` (as returned in the decision).
    pub fn charge_tokens(&self, rule_index: usize, tokens: u64, now: Instant) {
        if let Some(budget) = self
            .rules
            .get(rule_index)
            .and_then(|r| r.token_budget.as_ref())
        {
            budget.add(tokens, now);
        }
    }

    /// Whether the rule at `rule_index` has a token budget.
    pub fn has_token_budget(&self, rule_index: usize) -> bool {
        self.rules
            .get(rule_index)
            .is_some_and(|r| r.token_budget.is_some())
    }

    /// The use of every rate limit and token budget.
    pub fn limit_usage(&self, now: Instant) -> Vec<LimitUsage> {
        let mut out = Vec::new();
        for rule in &self.rules {
            for limiter in [&rule.rate_limit, &rule.token_budget].into_iter().flatten() {
                out.push(LimitUsage {
                    rule: Arc::clone(&rule.name),
                    kind: limiter.kind,
                    used: limiter.used(now),
                    limit: limiter.limit,
                    per: limiter.per,
                });
            }
        }
        out
    }
}

/// Why a rule's matchers can never all hold at once, if they cannot: an
/// MCP call names a tool (`tools/call`), a resource (`resources/*`) or a
/// prompt (`prompts/get`), never two of them, and `arguments` belong to
/// tool calls.
fn never_matches(m: &MatchSpec) -> Option<String> {
    let tool = !m.tools.is_empty() || !m.arguments.is_empty();
    let set: Vec<&str> = [
        (tool, "tools/arguments (tools/call only)"),
        (!m.uris.is_empty(), "uris (resources/* only)"),
        (!m.prompts.is_empty(), "prompts (prompts/get only)"),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, name)| *name)
    .collect();
    (set.len() > 1).then(|| {
        format!(
            "one MCP call never carries {}; split it into one rule per kind of call",
            set.join(" and ")
        )
    })
}

/// Checks `apiVersion` and `kind`.
pub(crate) fn check_header(document: &ActionPolicyDocument) -> Result<(), String> {
    if document.api_version != API_VERSION {
        return Err(format!(
            "apiVersion is {:?}; expected {API_VERSION:?}",
            document.api_version
        ));
    }
    if document.kind != KIND {
        return Err(format!("kind is {:?}; expected {KIND:?}", document.kind));
    }
    Ok(())
}

impl Rule {
    pub(crate) fn compile(spec: &RuleSpec) -> Result<Rule, String> {
        if spec.name.is_empty() {
            return Err("a rule needs a name".into());
        }
        let matcher = Matcher::compile(&spec.matches, spec.protocol)?;
        if spec.effect == Effect::Deny
            && (spec.rate_limit.is_some() || spec.token_budget.is_some() || spec.allow_upgrade)
        {
            return Err(
                "rateLimit, tokenBudget and allowUpgrade only make sense on allow rules".into(),
            );
        }
        let rate_limit = match &spec.rate_limit {
            Some(r) if r.requests == 0 => {
                return Err(
                    "rateLimit.requests must be at least 1 (use a deny rule to block)".into(),
                );
            }
            Some(r) => Some(Arc::new(Limiter::new(
                LimitKind::Requests,
                r.requests,
                parse_duration(&r.per)?,
            ))),
            None => None,
        };
        let token_budget = match &spec.token_budget {
            Some(_) if spec.protocol != Some(Protocol::Llm) => {
                return Err("tokenBudget needs protocol: llm".into());
            }
            Some(b) if b.tokens == 0 => {
                return Err(
                    "tokenBudget.tokens must be at least 1 (use a deny rule to block)".into(),
                );
            }
            Some(b) => Some(Arc::new(Limiter::new(
                LimitKind::Tokens,
                b.tokens,
                parse_duration(&b.per)?,
            ))),
            None => None,
        };
        let rego = match &spec.rego {
            Some(r) => Some(RegoCondition::compile(r, spec.effect, &spec.name)?),
            None => None,
        };
        let reason = match (&spec.reason, spec.effect) {
            (Some(r), _) => r.clone(),
            (None, Effect::Allow) => format!("allowed by rule {:?}", spec.name),
            (None, Effect::Deny) => format!("denied by rule {:?}", spec.name),
        };
        Ok(Rule {
            name: spec.name.as_str().into(),
            effect: spec.effect,
            protocol: spec.protocol,
            reason: reason.into(),
            controls: spec.controls.clone().into(),
            matcher,
            rate_limit,
            token_budget,
            allow_upgrade: spec.allow_upgrade,
            rego,
            never_matches: never_matches(&spec.matches),
        })
    }
}

impl Matcher {
    fn compile(m: &MatchSpec, protocol: Option<Protocol>) -> Result<Matcher, String> {
        use Separator::{Free, Path};
        let only = |field: &str, set: bool, allowed: &[Protocol]| -> Result<(), String> {
            if !set || protocol.is_some_and(|p| allowed.contains(&p)) {
                return Ok(());
            }
            let names: Vec<&str> = allowed.iter().map(|p| p.as_str()).collect();
            Err(format!(
                "match.{field} needs protocol: {} on the rule",
                names.join(" or ")
            ))
        };
        only(
            "methods",
            !m.methods.is_empty(),
            &[Protocol::Http, Protocol::Mcp, Protocol::A2a],
        )?;
        for (field, set) in [
            ("tools", !m.tools.is_empty()),
            ("uris", !m.uris.is_empty()),
            ("prompts", !m.prompts.is_empty()),
            ("arguments", !m.arguments.is_empty()),
        ] {
            only(field, set, &[Protocol::Mcp])?;
        }
        for (field, set) in [
            ("verbs", !m.verbs.is_empty()),
            ("apiGroups", !m.api_groups.is_empty()),
            ("resources", !m.resources.is_empty()),
            ("namespaces", !m.namespaces.is_empty()),
            ("names", !m.names.is_empty()),
            ("nonResourcePaths", !m.non_resource_paths.is_empty()),
        ] {
            only(field, set, &[Protocol::Kubernetes])?;
        }
        for (field, set) in [
            ("providers", !m.providers.is_empty()),
            ("models", !m.models.is_empty()),
            ("operations", !m.operations.is_empty()),
            ("maxTokens", m.max_tokens.is_some()),
        ] {
            only(field, set, &[Protocol::Llm])?;
        }
        let resource_matchers = !(m.resources.is_empty()
            && m.api_groups.is_empty()
            && m.namespaces.is_empty()
            && m.names.is_empty());
        if !m.non_resource_paths.is_empty() && resource_matchers {
            return Err(
                "match.nonResourcePaths cannot be combined with resources, apiGroups, namespaces or names".into(),
            );
        }
        for verb in &m.verbs {
            if !KUBE_VERBS.contains(&verb.as_str()) {
                return Err(format!(
                    "unknown Kubernetes verb {verb:?}; expected one of {}",
                    KUBE_VERBS.join(", ")
                ));
            }
        }
        for scheme in &m.schemes {
            if scheme != "http" && scheme != "https" {
                return Err(format!("unknown scheme {scheme:?}; expected http or https"));
            }
        }
        if m.ports.contains(&0) {
            return Err("port 0 is not a valid port".into());
        }
        let methods = if protocol == Some(Protocol::Http) {
            let upper: Vec<String> = m.methods.iter().map(|s| s.to_ascii_uppercase()).collect();
            Patterns::compile(&upper, Free, false)?
        } else {
            Patterns::compile(&m.methods, Free, false)?
        };
        let arguments = m
            .arguments
            .iter()
            .enumerate()
            .map(|(i, a)| {
                ArgumentConstraint::compile(a).map_err(|e| format!("match.arguments[{i}]: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Matcher {
            hosts: HostPatterns::compile(&m.hosts).map_err(|e| format!("match.hosts: {e}"))?,
            ports: m.ports.clone(),
            schemes: m.schemes.clone(),
            paths: Patterns::compile(&m.paths, Path, false)?,
            servers: Patterns::compile(&m.servers, Free, false)?,
            methods,
            tools: Patterns::compile(&m.tools, Free, false)?,
            uris: Patterns::compile(&m.uris, Path, false)?,
            prompts: Patterns::compile(&m.prompts, Free, false)?,
            arguments,
            verbs: m.verbs.clone(),
            api_groups: m.api_groups.clone(),
            resources: ResourcePatterns::compile(&m.resources)?,
            namespaces: Patterns::compile(&m.namespaces, Free, false)?,
            names: Patterns::compile(&m.names, Free, false)?,
            non_resource_paths: Patterns::compile(&m.non_resource_paths, Free, false)?,
            providers: m.providers.clone(),
            models: Patterns::compile(&m.models, Free, false)?,
            operations: Patterns::compile(&m.operations, Free, false)?,
            max_tokens: m.max_tokens,
        })
    }
}
