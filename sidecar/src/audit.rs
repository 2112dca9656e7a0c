//! Turning decisions into audit events and handing them to the recorder:
//! exactly one event per decided action, with the pod's identity and
//! ownership; fail-closed when the recorder refuses.

use std::sync::Arc;

use futures::FutureExt;
use serde_json::{Map, Value};
use tollgate_audit::{
    Actor, AuditError, Decision, Event, EventAction, Outcome, Ownership, Recorder, Source,
};
use tollgate_policies::action::Action;

use crate::config::AuditAck;
use crate::metrics::Metrics;

/// The largest serialized tool-argument document kept in an event.
const MAX_ARGUMENTS_BYTES: usize = 8 << 10;

/// What was decided about one action, for its event.
#[derive(Debug, Clone)]
pub struct Decided {
    /// Allow, deny or warn.
    pub outcome: Outcome,
    /// The rule (a policy rule, or a `tollgate/...` name for decisions the
    /// proxy makes itself).
    pub rule: Arc<str>,
    /// Why.
    pub reason: Arc<str>,
    /// Compliance controls.
    pub controls: Arc<[String]>,
}

/// Emits audit events.
pub struct Auditor {
    recorder: Arc<dyn Recorder>,
    actor: Actor,
    ownership: Ownership,
    ack: AuditAck,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Auditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auditor")
            .field("actor", &self.actor)
            .field("ack", &self.ack)
            .finish_non_exhaustive()
    }
}

impl Auditor {
    /// An auditor recording through `recorder` for `actor`.
    pub fn new(
        recorder: Arc<dyn Recorder>,
        actor: Actor,
        ownership: Ownership,
        ack: AuditAck,
        metrics: Arc<Metrics>,
    ) -> Auditor {
        Auditor {
            recorder,
            actor,
            ownership,
            ack,
            metrics,
        }
    }

    /// The event for `action` and its decision.
    pub fn event(
        &self,
        action: &Action,
        decided: &Decided,
        latency_us: u64,
        extra: Option<Map<String, Value>>,
    ) -> Event {
        let mut attributes = match serde_json::to_value(action) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        attributes.remove("protocol");
        // `url` below says the same, flat.
        attributes.remove("target");
        if let Some(Value::Object(args)) = attributes.get("arguments")
            && serde_json::to_vec(args).map_or(0, |v| v.len()) > MAX_ARGUMENTS_BYTES
        {
            attributes.remove("arguments");
            attributes.insert("argumentsTruncated".into(), Value::Bool(true));
        }
        attributes.insert("url".into(), Value::String(action.url()));
        if let Some(extra) = extra {
            attributes.extend(extra);
        }
        Event::new(
            Source::Sidecar,
            self.actor.clone(),
            self.ownership.clone(),
            EventAction {
                protocol: action.protocol().as_str().to_owned(),
                verb: action.verb().to_owned(),
                target: action.target_label(),
                attributes,
            },
            Decision {
                outcome: decided.outcome,
                rule: Some(decided.rule.to_string()),
                reason: Some(decided.reason.to_string()),
                controls: decided.controls.to_vec(),
            },
            latency_us,
        )
    }

    /// Records `event`. With [`AuditAck::Accepted`] this returns as soon as
    /// the recorder accepted or refused it, and durability completes in the
    /// background; with [`AuditAck::Durable`] it waits for durability. An
    /// error means the action must not proceed.
    pub async fn record(&self, event: Event) -> Result<(), AuditError> {
        let mut future = self.recorder.record(event);
        let result = match self.ack {
            AuditAck::Durable => future.await,
            AuditAck::Accepted => match (&mut future).now_or_never() {
                Some(result) => result,
                None => {
                    let metrics = Arc::clone(&self.metrics);
                    tokio::spawn(async move {
                        if let Err(e) = future.await {
                            tracing::error!(error = %e, "an accepted audit event was not made durable");
                            Metrics::count(&metrics.audit_events, "failed");
                        }
                    });
                    Ok(())
                }
            },
        };
        match &result {
            Ok(()) => {
                self.metrics.audit_recorded.inc();
            }
            Err(e) => {
                tracing::error!(error = %e, "audit event refused; the action is denied");
                Metrics::count(&self.metrics.audit_events, "refused");
            }
        }
        result
    }
}
