//! Prometheus metrics: decisions by protocol, outcome and rule, decision and
//! upstream latency, upstream errors, policy reloads, audit recording, LLM
//! tokens, and the use of every rate limit and token budget.

use std::sync::Arc;
use std::time::Instant;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::policy::PolicyCell;

/// Labels of a decision.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct DecisionLabels {
    /// `mcp`, `a2a`, `kubernetes`, `llm`, `http`.
    pub protocol: &'static str,
    /// `allow` or `deny`.
    pub outcome: &'static str,
    /// The deciding rule, or a `tollgate/...` reason.
    pub rule: Arc<str>,
}

/// Labels with one `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct KindLabels {
    /// What happened.
    pub kind: &'static str,
}

/// Labels of LLM token counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct TokenLabels {
    /// `openai` or `anthropic`.
    pub provider: &'static str,
    /// The rule whose budget was charged.
    pub rule: Arc<str>,
}

/// The sidecar's metrics.
#[derive(Debug)]
pub struct Metrics {
    /// Decisions made.
    pub decisions: Family<DecisionLabels, Counter>,
    /// Time from a complete request to its decision (classification,
    /// evaluation and audit submission).
    pub decision_seconds: Histogram,
    /// Time from forwarding to the upstream's response headers.
    pub upstream_seconds: Histogram,
    /// Upstream failures by kind (`connect`, `timeout`, `tls`, `protocol`).
    pub upstream_errors: Family<KindLabels, Counter>,
    /// Policy reloads by result (`loaded`, `refused`, `missing`).
    pub policy_reloads: Family<KindLabels, Counter>,
    /// 1 while a valid policy is active.
    pub policy_active: Gauge,
    /// Rules in the active policy.
    pub policy_rules: Gauge,
    /// Audit events by result (`recorded`, `refused`, `failed`).
    pub audit_events: Family<KindLabels, Counter>,
    /// `audit_events{kind="recorded"}`, looked up once.
    pub audit_recorded: Counter,
    /// LLM tokens charged to budgets.
    pub llm_tokens: Family<TokenLabels, Counter>,
    /// LLM responses under a budget that reported no usage.
    pub llm_usage_unreported: Counter,
    /// Open client connections.
    pub connections: Gauge,
}

impl Metrics {
    /// Creates the metrics and registers them, with the limit-usage
    /// collector reading `policy`.
    pub fn new(registry: &mut Registry, policy: Arc<PolicyCell>) -> Metrics {
        let latency = || Histogram::new(exponential_buckets(0.000_01, 2.0, 22));
        let audit_events: Family<KindLabels, Counter> = Family::default();
        let audit_recorded = audit_events
            .get_or_create(&KindLabels { kind: "recorded" })
            .clone();
        let m = Metrics {
            decisions: Family::default(),
            decision_seconds: latency(),
            upstream_seconds: latency(),
            upstream_errors: Family::default(),
            policy_reloads: Family::default(),
            policy_active: Gauge::default(),
            policy_rules: Gauge::default(),
            audit_events,
            audit_recorded,
            llm_tokens: Family::default(),
            llm_usage_unreported: Counter::default(),
            connections: Gauge::default(),
        };
        let r = registry.sub_registry_with_prefix("tollgate_sidecar");
        r.register(
            "decisions",
            "Actions decided, by protocol, outcome and rule",
            m.decisions.clone(),
        );
        r.register(
            "decision_duration_seconds",
            "Time from a complete request to its decision",
            m.decision_seconds.clone(),
        );
        r.register(
            "upstream_duration_seconds",
            "Time from forwarding to the upstream's response headers",
            m.upstream_seconds.clone(),
        );
        r.register(
            "upstream_errors",
            "Upstream failures by kind",
            m.upstream_errors.clone(),
        );
        r.register(
            "policy_reloads",
            "Policy (re)loads by result",
            m.policy_reloads.clone(),
        );
        r.register(
            "policy_active",
            "1 while a valid action policy is active",
            m.policy_active.clone(),
        );
        r.register(
            "policy_rules",
            "Rules in the active action policy",
            m.policy_rules.clone(),
        );
        r.register(
            "audit_events",
            "Audit events by result",
            m.audit_events.clone(),
        );
        r.register(
            "llm_tokens",
            "LLM tokens charged to token budgets",
            m.llm_tokens.clone(),
        );
        r.register(
            "llm_usage_unreported",
            "LLM responses under a token budget that reported no usage",
            m.llm_usage_unreported.clone(),
        );
        r.register(
            "connections",
            "Open client connections",
            m.connections.clone(),
        );
        r.register_collector(Box::new(LimitCollector { policy }));
        m
    }

    /// Counts a decision.
    pub fn decision(&self, protocol: &'static str, allowed: bool, rule: &Arc<str>) {
        self.decisions
            .get_or_create(&DecisionLabels {
                protocol,
                outcome: if allowed { "allow" } else { "deny" },
                rule: Arc::clone(rule),
            })
            .inc();
    }

    /// Counts one of a `kind` family.
    pub fn count(family: &Family<KindLabels, Counter>, kind: &'static str) {
        family.get_or_create(&KindLabels { kind }).inc();
    }

    /// Observes the time since `start` on `histogram`.
    pub fn observe_since(histogram: &Histogram, start: Instant) {
        histogram.observe(start.elapsed().as_secs_f64());
    }
}

/// Reports the use and limit of every rate limit and token budget of the
/// active policy at scrape time.
#[derive(Debug)]
struct LimitCollector {
    policy: Arc<PolicyCell>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct LimitLabels {
    rule: Arc<str>,
    kind: &'static str,
}

impl Collector for LimitCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(policy) = self.policy.current() else {
            return Ok(());
        };
        let usage = policy.limit_usage(Instant::now());
        if usage.is_empty() {
            return Ok(());
        }
        {
            let mut family = encoder.encode_descriptor(
                "limit_used",
                "Estimated use of each rule's rate limit (requests) or token budget (tokens) over its window",
                None,
                MetricType::Gauge,
            )?;
            for u in &usage {
                let labels = LimitLabels {
                    rule: Arc::clone(&u.rule),
                    kind: u.kind.as_str(),
                };
                ConstGauge::new(u.used).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "limit",
            "Each rule's rate limit (requests) or token budget (tokens) per window",
            None,
            MetricType::Gauge,
        )?;
        for u in &usage {
            let labels = LimitLabels {
                rule: Arc::clone(&u.rule),
                kind: u.kind.as_str(),
            };
            ConstGauge::new(u.limit as f64).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
