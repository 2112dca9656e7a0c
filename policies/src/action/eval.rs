//! Evaluating an action: the first matching rule decides, nothing matching
//! denies. Pure apart from the in-memory rate-limit counters, which are told
//! the time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::compile::{ActionPolicy, Matcher, Rule};
use super::limit::TokenReservation;
use super::{Action, ActionKind};

/// What a rule does when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// Let the action through.
    Allow,
    /// Refuse it.
    Deny,
}

impl Effect {
    /// `allow` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
        }
    }
}

/// How the decision came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DecisionKind {
    /// A rule matched and its effect applies.
    Rule,
    /// No rule matched: denied by default.
    NoMatch,
    /// The matching allow rule's rate limit is used up.
    RateLimited,
    /// The matching allow rule's token budget is used up.
    BudgetExhausted,
    /// A rule's Rego condition failed to evaluate (error or timeout).
    RegoFailed,
}

impl DecisionKind {
    /// The kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionKind::Rule => "rule",
            DecisionKind::NoMatch => "no-match",
            DecisionKind::RateLimited => "rate-limited",
            DecisionKind::BudgetExhausted => "budget-exhausted",
            DecisionKind::RegoFailed => "rego-failed",
        }
    }
}

/// The policy's answer about one action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionDecision {
    /// Allow or deny.
    pub effect: Effect,
    /// How it came about.
    pub kind: DecisionKind,
    /// The deciding rule's name (`None`: no rule matched).
    pub rule: Option<Arc<str>>,
    /// The deciding rule's position, for [`ActionPolicy::charge_tokens`].
    pub rule_index: Option<usize>,
    /// Why, phrased for the agent and the audit trail.
    pub reason: Arc<str>,
    /// The compliance controls the deciding rule evidences.
    pub controls: Arc<[String]>,
    /// For rate limits and budgets: when the action may succeed again.
    pub retry_after: Option<Duration>,
    /// For an LLM call allowed under a token budget: the tokens held for
    /// it until its response settles them (see [`TokenReservation`]).
    pub reservation: Option<Arc<TokenReservation>>,
}

impl ActionDecision {
    /// Whether the action may proceed.
    pub fn allowed(&self) -> bool {
        self.effect == Effect::Allow
    }

    /// A denial not tied to a rule (`reason` says why).
    pub fn deny(kind: DecisionKind, reason: impl Into<Arc<str>>) -> ActionDecision {
        ActionDecision {
            effect: Effect::Deny,
            kind,
            rule: None,
            rule_index: None,
            reason: reason.into(),
            controls: Arc::from(Vec::new()),
            retry_after: None,
            reservation: None,
        }
    }
}

impl ActionPolicy {
    /// Decides `action` at time `now` (which moves rate-limit windows).
    pub fn evaluate(&self, action: &Action, now: Instant) -> ActionDecision {
        if let Some(baseline) = &self.baseline {
            let decision = baseline.evaluate(action, now);
            if !decision.allowed() {
                // The baseline's rules are not this policy's: no index.
                return ActionDecision {
                    rule_index: None,
                    ..decision
                };
            }
        }
        let protocol = action.protocol();
        let mut upgrade_skipped: Option<&Rule> = None;
        let mut rego_input: Option<regorus::Value> = None;
        for (index, rule) in self.rules.iter().enumerate() {
            if rule.protocol.is_some_and(|p| p != protocol) || !rule.matcher.matches(action) {
                continue;
            }
            if rule.effect == Effect::Allow && action.upgrade.is_some() && !rule.allow_upgrade {
                upgrade_skipped.get_or_insert(rule);
                continue;
            }
            if let Some(rego) = &rule.rego {
                let input = rego_input.get_or_insert_with(|| rego_input_for(action));
                match rego.evaluate(input) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => {
                        return self.decision(
                            rule,
                            index,
                            Effect::Deny,
                            DecisionKind::RegoFailed,
                            format!(
                                "rule {:?} could not be evaluated, so the action is denied: {e}",
                                rule.name
                            )
                            .into(),
                        );
                    }
                }
            }
            if rule.effect == Effect::Deny {
                return self.decision(
                    rule,
                    index,
                    Effect::Deny,
                    DecisionKind::Rule,
                    rule.reason.clone(),
                );
            }
            let mut reservation = None;
            if let Some(budget) = &rule.token_budget {
                let worst_case = match &action.kind {
                    ActionKind::Llm(l) => l.worst_case_tokens,
                    _ => None,
                };
                match budget.try_reserve(worst_case, now) {
                    Some(r) => reservation = Some(Arc::new(r)),
                    None => {
                        let reason = format!(
                            "token budget of rule {:?} is used up: {} tokens per {:?} (counting calls in flight); wait for the window to pass or raise tokenBudget.tokens",
                            rule.name, budget.limit, budget.per
                        );
                        let mut d = self.decision(
                            rule,
                            index,
                            Effect::Deny,
                            DecisionKind::BudgetExhausted,
                            reason.into(),
                        );
                        d.retry_after = Some(budget.retry_after(now));
                        return d;
                    }
                }
            }
            if let Some(limit) = &rule.rate_limit
                && !limit.try_acquire(now)
            {
                let reason = format!(
                    "rate limit of rule {:?} exceeded: {} requests per {:?}; slow down or raise rateLimit.requests",
                    rule.name, limit.limit, limit.per
                );
                let mut d = self.decision(
                    rule,
                    index,
                    Effect::Deny,
                    DecisionKind::RateLimited,
                    reason.into(),
                );
                d.retry_after = Some(limit.retry_after(now));
                return d;
            }
            let mut d = self.decision(
                rule,
                index,
                Effect::Allow,
                DecisionKind::Rule,
                rule.reason.clone(),
            );
            d.reservation = reservation;
            return d;
        }
        let mut reason = format!(
            "no rule of action policy {:?} allows {} {} {}; add an allow rule to spec.rules",
            self.name,
            protocol,
            action.verb(),
            action.target_label()
        );
        if let (Some(upgrade), Some(rule)) = (&action.upgrade, upgrade_skipped) {
            reason = format!(
                "{upgrade} upgrade denied: rule {:?} matches but does not set allowUpgrade: true",
                rule.name
            );
        }
        ActionDecision::deny(DecisionKind::NoMatch, reason)
    }

    fn decision(
        &self,
        rule: &Rule,
        index: usize,
        effect: Effect,
        kind: DecisionKind,
        reason: Arc<str>,
    ) -> ActionDecision {
        ActionDecision {
            effect,
            kind,
            rule: Some(Arc::clone(&rule.name)),
            rule_index: Some(index),
            reason,
            controls: Arc::clone(&rule.controls),
            retry_after: None,
            reservation: None,
        }
    }
}

/// The Rego input document: `{"action": <action>}`.
fn rego_input_for(action: &Action) -> regorus::Value {
    regorus::Value::from(serde_json::json!({ "action": action }))
}

impl Matcher {
    /// Whether `servers` matches the action's server. Without a route, an
    /// MCP server or A2A agent is named `host:port`; an entry without a
    /// port (`tools.example.com`) matches that host on any port.
    fn servers_match(&self, action: &Action) -> bool {
        let server = action.server();
        if self.servers.matches(server) {
            return true;
        }
        action.route.is_none()
            && matches!(action.kind, ActionKind::Mcp(_) | ActionKind::A2a(_))
            && server.rsplit_once(':').is_some_and(|(host, port)| {
                port.parse::<u16>().is_ok() && self.servers.matches(host)
            })
    }

    /// Whether every given matcher matches `action`.
    pub(crate) fn matches(&self, action: &Action) -> bool {
        let t = &action.target;
        if !self.hosts.matches(&t.host, t.port)
            || !(self.ports.is_empty() || self.ports.contains(&t.port))
            || !(self.schemes.is_empty() || self.schemes.contains(&t.scheme))
            || !self.paths.matches(&t.path)
            || !self.servers_match(action)
        {
            return false;
        }
        match &action.kind {
            ActionKind::Http => self.methods.matches(&t.method),
            ActionKind::Mcp(c) => {
                self.methods.matches(&c.method)
                    && self.tools.matches_opt(c.tool.as_deref())
                    && self.uris.matches_opt(c.uri.as_deref())
                    && self.prompts.matches_opt(c.prompt.as_deref())
                    && (self.arguments.is_empty()
                        || (c.tool.is_some()
                            && self.arguments.iter().all(|a| a.holds(c.arguments.as_ref()))))
            }
            ActionKind::A2a(c) => {
                self.methods.matches(&c.method)
                    || super::a2a_method_alias(&c.method).is_some_and(|a| self.methods.matches(a))
            }
            ActionKind::Kubernetes(k) => {
                if !(self.verbs.is_empty() || self.verbs.iter().any(|v| v == "*" || *v == k.verb)) {
                    return false;
                }
                if !k.resource_request {
                    return self.resources.is_empty()
                        && self.api_groups.is_empty()
                        && self.namespaces.is_empty()
                        && self.names.is_empty()
                        && self.non_resource_paths.matches(&t.path);
                }
                self.non_resource_paths.is_empty()
                    && (self.api_groups.is_empty()
                        || self
                            .api_groups
                            .iter()
                            .any(|g| g == "*" || *g == k.api_group))
                    && self
                        .resources
                        .matches(&k.resource, k.subresource.as_deref())
                    && self.namespaces.matches_opt(k.namespace.as_deref())
                    && self.names.matches_opt(k.name.as_deref())
            }
            ActionKind::Llm(l) => {
                (self.providers.is_empty() || self.providers.contains(&l.provider))
                    && self.models.matches_opt(l.model.as_deref())
                    && self.operations.matches(&l.operation)
                    && self
                        .max_tokens
                        .is_none_or(|cap| l.generation_cap().is_some_and(|m| m <= cap))
            }
        }
    }
}
