//! The `tollgate.audit/v1` event: who did what, what was decided and why,
//! and how urgently a SIEM should route it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The schema identifier carried by every event.
pub const SCHEMA: &str = "tollgate.audit/v1";

/// Which boundary made the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The admission webhook.
    Webhook,
    /// The agent action sidecar.
    Sidecar,
    /// The journal itself: integrity notices (a torn tail cut at start, a
    /// spool overflow, a retention deletion, a signed checkpoint), so the
    /// trail explains every gap in itself and SIEMs see it too.
    Journal,
}

impl Source {
    /// The lower-case name used in the JSON form, metrics and syslog.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Webhook => "webhook",
            Source::Sidecar => "sidecar",
            Source::Journal => "journal",
        }
    }
}

/// Who acted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The requesting user or `system:serviceaccount:NS:NAME`.
    pub user: Option<String>,
    /// The user's groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// The ServiceAccount (for the sidecar: the pod's).
    pub service_account: Option<String>,
    /// The pod acting (sidecar) or being admitted (webhook), if known.
    pub pod: Option<String>,
    /// The namespace.
    pub namespace: Option<String>,
    /// The agent's name (OSSA manifest or pod label), if known.
    pub agent: Option<String>,
}

/// Ownership context from the `deployscope.dev/*` annotations. Absent values
/// are `null`, never omitted, so the schema keeps one shape.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ownership {
    /// `deployscope.dev/owner`.
    pub owner: Option<String>,
    /// `deployscope.dev/tier`: `critical`, `standard` or `best-effort`.
    pub tier: Option<String>,
    /// `deployscope.dev/oncall`.
    pub oncall: Option<String>,
}

/// What was attempted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventAction {
    /// `admission`, `mcp`, `a2a`, `kubernetes`, `llm`, `http`.
    pub protocol: String,
    /// The verb: admission operation, JSON-RPC method, Kubernetes verb,
    /// HTTP method.
    pub verb: String,
    /// The target: object reference, tool, URL, resource.
    pub target: String,
    /// Protocol-specific detail (tool arguments, model, tokens, ...),
    /// redacted before the event is written.
    #[serde(default)]
    pub attributes: Map<String, Value>,
}

/// The outcome of a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Allowed.
    Allow,
    /// Denied.
    Deny,
    /// Allowed with a warning.
    Warn,
}

/// What was decided and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Allow, deny or warn.
    pub outcome: Outcome,
    /// The rule that decided, if one did.
    pub rule: Option<String>,
    /// The human-readable reason.
    pub reason: Option<String>,
    /// Compliance control ids, e.g. `PCI-DSS 2.2.5`.
    #[serde(default)]
    pub controls: Vec<String>,
}

/// The routing priority a SIEM acts on, derived from tier and outcome only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Priority {
    /// Page the on-call now: critical tier, denied.
    P0Escalate,
    /// Notify the on-call: critical tier, warned.
    P1Warn,
    /// Open a work order: standard tier, denied.
    P1Inform,
    /// Log a work order: standard warned, or best-effort denied.
    P2Log,
    /// No action.
    Observe,
}

/// One audit event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// A unique, time-sortable id (UUIDv7).
    pub id: String,
    /// When the decision was made, RFC 3339 in UTC.
    pub time: String,
    /// Which boundary decided.
    pub source: Source,
    /// Who acted.
    pub actor: Actor,
    /// Ownership context.
    pub ownership: Ownership,
    /// What was attempted.
    pub action: EventAction,
    /// What was decided.
    pub decision: Decision,
    /// How long the decision took, in microseconds.
    pub latency_us: u64,
    /// Routing priority, from [`Priority::route`].
    pub priority: Priority,
    /// Which kinds of secret were redacted from this event (empty: none).
    #[serde(default)]
    pub redactions: Vec<String>,
}

impl Outcome {
    /// The lower-case name used in the JSON form.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
            Outcome::Warn => "warn",
        }
    }
}

impl Priority {
    /// The kebab-case name used in the JSON form.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::P0Escalate => "p0-escalate",
            Priority::P1Warn => "p1-warn",
            Priority::P1Inform => "p1-inform",
            Priority::P2Log => "p2-log",
            Priority::Observe => "observe",
        }
    }

    /// The deterministic routing table (DeployScope convention): tier and
    /// outcome in, priority out. A missing or unknown tier routes as
    /// `standard`, so an unannotated workload is never silently ignored.
    pub fn route(tier: Option<&str>, outcome: Outcome) -> Priority {
        match (tier.unwrap_or("standard"), outcome) {
            (_, Outcome::Allow) => Priority::Observe,
            ("critical", Outcome::Deny) => Priority::P0Escalate,
            ("critical", Outcome::Warn) => Priority::P1Warn,
            ("best-effort", Outcome::Deny) => Priority::P2Log,
            ("best-effort", Outcome::Warn) => Priority::Observe,
            (_, Outcome::Deny) => Priority::P1Inform,
            (_, Outcome::Warn) => Priority::P2Log,
        }
    }
}

impl Event {
    /// A new event stamped with a fresh id and the current time; the
    /// priority is derived from the ownership tier and the outcome.
    pub fn new(
        source: Source,
        actor: Actor,
        ownership: Ownership,
        action: EventAction,
        decision: Decision,
        latency_us: u64,
    ) -> Event {
        let priority = Priority::route(ownership.tier.as_deref(), decision.outcome);
        let now = time::OffsetDateTime::now_utc();
        Event {
            schema: SCHEMA.to_owned(),
            id: uuid::Uuid::now_v7().to_string(),
            time: now
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            source,
            actor,
            ownership,
            action,
            decision,
            latency_us,
            priority,
            redactions: Vec::new(),
        }
    }

    /// A journal notice: an event the journal writes about itself
    /// ([`Source::Journal`], protocol `audit`). `verb` names what happened
    /// (`tail-cut`, `segment-dropped`, ...), `target` what it happened to,
    /// `attributes` the machine-readable detail; the priority is set
    /// explicitly because no ownership tier applies.
    pub fn notice(
        verb: &str,
        target: &str,
        outcome: Outcome,
        priority: Priority,
        reason: String,
        attributes: Map<String, Value>,
    ) -> Event {
        let mut event = Event::new(
            Source::Journal,
            Actor::default(),
            Ownership::default(),
            EventAction {
                protocol: "audit".to_owned(),
                verb: verb.to_owned(),
                target: target.to_owned(),
                attributes,
            },
            Decision {
                outcome,
                rule: Some(format!("journal.{verb}")),
                reason: Some(reason),
                controls: Vec::new(),
            },
            0,
        );
        event.priority = priority;
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_follows_the_tier_table() {
        use Outcome::*;
        use Priority::*;
        let table = [
            (Some("critical"), Deny, P0Escalate),
            (Some("critical"), Warn, P1Warn),
            (Some("standard"), Deny, P1Inform),
            (Some("standard"), Warn, P2Log),
            (Some("best-effort"), Deny, P2Log),
            (Some("best-effort"), Warn, Observe),
            (None, Deny, P1Inform),
            (Some("critical"), Allow, Observe),
        ];
        for (tier, outcome, want) in table {
            assert_eq!(Priority::route(tier, outcome), want, "{tier:?} {outcome:?}");
        }
    }
}
