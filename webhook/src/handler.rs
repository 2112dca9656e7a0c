//! [`Admission`]: the real admission handler. Decodes the review, evaluates
//! it with the engine's current snapshot (read once per request), records
//! the decision in the audit trail, counts it, and encodes the answer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use tollgate_audit::{AuditError, Recorder};
use tollgate_policies::EnforcementAction;
use tollgate_policies::engine::{AdmissionRequest, Engine, Evaluation, Options, Snapshot};

use crate::metrics::{
    EndpointLabel, ExemptionLabels, Metrics, ReasonLabels, RequestLabels, ViolationLabels,
    kind_label,
};
use crate::review::{self, ReviewError, StatusOut};
use crate::settings::{AuditFailurePolicy, Settings};
use crate::{AdmissionHandler, BoxFuture, Endpoint, Reply, audit};

/// Decodes an AdmissionReview body and evaluates it: the synchronous core
/// of the webhook, with no I/O (the fuzz target drives it directly).
pub fn decide(
    snapshot: &Snapshot,
    endpoint: Endpoint,
    body: &[u8],
    max_json_depth: usize,
    options: &Options,
) -> Result<(AdmissionRequest, Evaluation), ReviewError> {
    let request = review::decode(body, max_json_depth)?;
    let evaluation = match endpoint {
        Endpoint::Validate => snapshot.validate(&request, options),
        Endpoint::Mutate => snapshot.mutate(&request, options),
    };
    Ok((request, evaluation))
}

/// The admission handler.
pub struct Admission {
    engine: Arc<Engine>,
    recorder: Option<Arc<dyn Recorder>>,
    metrics: Arc<Metrics>,
    max_json_depth: usize,
    audit_policy: AuditFailurePolicy,
    audit_timeout: Duration,
    options: Options,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("engine", &self.engine)
            .field("audit_policy", &self.audit_policy)
            .finish_non_exhaustive()
    }
}

impl Admission {
    /// A handler over `engine`, recording every decision into `recorder`
    /// (`None`: auditing off, and no event is even built).
    pub fn new(
        engine: Arc<Engine>,
        recorder: Option<Arc<dyn Recorder>>,
        metrics: Arc<Metrics>,
        settings: &Settings,
    ) -> Admission {
        Admission {
            engine,
            recorder,
            metrics,
            max_json_depth: settings.limits.max_json_depth,
            audit_policy: settings.audit_failure_policy,
            audit_timeout: settings.audit_timeout,
            options: Options::default(),
        }
    }

    /// Answers one request body.
    pub async fn answer(&self, endpoint: Endpoint, body: Bytes) -> Reply {
        let started = Instant::now();
        let snapshot = self.engine.snapshot();
        let (request, evaluation) = match decide(
            &snapshot,
            endpoint,
            &body,
            self.max_json_depth,
            &self.options,
        ) {
            Ok(decided) => decided,
            Err(err) => {
                self.metrics.error(err.label());
                self.count(endpoint, "none", "other", "error");
                tracing::info!(endpoint = endpoint.as_str(), error = %err, "refused a malformed admission review");
                return Reply::error(StatusCode::BAD_REQUEST, "BadRequest", &err.to_string());
            }
        };
        drop(snapshot);
        let audit_denial = match &self.recorder {
            None => None,
            Some(recorder) => {
                let event = audit::event(endpoint, &request, &evaluation, started.elapsed());
                self.record(recorder.as_ref(), event).await
            }
        };
        let audit_denial = audit_denial.and_then(|err| {
            evaluation.allowed().then(|| StatusOut {
                code: 503,
                message: format!(
                    "Tollgate could not record this admission decision in the audit trail, so the request is refused; retry later ({err})"
                ),
                reason: "ServiceUnavailable",
                status: "Failure",
            })
        });
        let body = review::encode(&request.uid, &evaluation, audit_denial.clone());
        self.observe(endpoint, &request, &evaluation, audit_denial.is_some());
        Reply::ok(body)
    }

    /// Records the event per the audit failure policy; returns the failure
    /// that must refuse the request, if any.
    async fn record(
        &self,
        recorder: &dyn Recorder,
        event: tollgate_audit::Event,
    ) -> Option<String> {
        let future = recorder.record(event);
        match self.audit_policy {
            AuditFailurePolicy::Fail => {
                match tokio::time::timeout(self.audit_timeout, future).await {
                    Ok(Ok(())) => None,
                    Ok(Err(err)) => {
                        self.audit_failed(&err);
                        Some(err.to_string())
                    }
                    Err(_) => {
                        self.metrics
                            .audit_failures
                            .get_or_create(&ReasonLabels { reason: "timeout" })
                            .inc();
                        tracing::error!(timeout = ?self.audit_timeout, "audit trail did not record an admission decision in time");
                        Some(format!(
                            "no acknowledgement within {:?}",
                            self.audit_timeout
                        ))
                    }
                }
            }
            AuditFailurePolicy::Ignore => {
                let metrics = Arc::clone(&self.metrics);
                tokio::spawn(async move {
                    if let Err(err) = future.await {
                        audit_failed(&metrics, &err);
                    }
                });
                None
            }
        }
    }

    fn audit_failed(&self, err: &AuditError) {
        audit_failed(&self.metrics, err);
    }

    fn count(
        &self,
        endpoint: Endpoint,
        operation: &'static str,
        kind: &'static str,
        outcome: &'static str,
    ) {
        self.metrics
            .requests
            .get_or_create(&RequestLabels {
                endpoint: endpoint_label(endpoint),
                operation,
                kind,
                outcome,
            })
            .inc();
    }

    fn observe(
        &self,
        endpoint: Endpoint,
        request: &AdmissionRequest,
        evaluation: &Evaluation,
        audit_refused: bool,
    ) {
        let outcome = if evaluation.failure.is_some() {
            "error"
        } else if audit_refused || !evaluation.allowed() {
            "deny"
        } else if evaluation
            .verdict
            .violations
            .iter()
            .any(|v| v.action == EnforcementAction::Warn)
        {
            "warn"
        } else {
            "allow"
        };
        self.count(
            endpoint,
            request.operation.as_str(),
            kind_label(&request.kind.kind),
            outcome,
        );
        for v in &evaluation.verdict.violations {
            self.metrics
                .violations
                .get_or_create(&ViolationLabels {
                    policy: v.policy.as_str(),
                    rule: v.rule.clone(),
                    action: match v.action {
                        EnforcementAction::Deny => "deny",
                        EnforcementAction::Warn => "warn",
                        EnforcementAction::Audit => "audit",
                    },
                })
                .inc();
        }
        if endpoint == Endpoint::Mutate
            && evaluation.failure.is_none()
            && let Some(result) = evaluation
                .audit_annotations
                .get(crate::inject::names::AUDIT_ANNOTATION)
                .and_then(|r| crate::inject::RESULTS.iter().find(|k| **k == r.as_str()))
        {
            self.metrics
                .injections
                .get_or_create(&crate::metrics::ResultLabels { result })
                .inc();
        }
        for e in &evaluation.exemptions {
            self.metrics
                .exemptions
                .get_or_create(&ExemptionLabels {
                    policy: e.policy.as_str(),
                    reason: e.reason,
                })
                .inc();
        }
        if outcome == "deny" || outcome == "error" {
            tracing::info!(
                endpoint = endpoint.as_str(),
                uid = %request.uid,
                kind = %request.kind.kind,
                namespace = %request.namespace,
                name = %evaluation.subject.name,
                user = %request.user_info.username,
                "admission refused"
            );
        }
    }
}

fn audit_failed(metrics: &Metrics, err: &AuditError) {
    let reason = match err {
        AuditError::SpoolFull(_) => "spool_full",
        AuditError::Unavailable(_) => "unavailable",
    };
    metrics
        .audit_failures
        .get_or_create(&ReasonLabels { reason })
        .inc();
    tracing::error!(error = %err, "audit trail refused an admission decision");
}

fn endpoint_label(endpoint: Endpoint) -> EndpointLabel {
    match endpoint {
        Endpoint::Validate => EndpointLabel::validate,
        Endpoint::Mutate => EndpointLabel::mutate,
    }
}

impl AdmissionHandler for Admission {
    fn handle(&self, endpoint: Endpoint, body: Bytes) -> BoxFuture<'_, Reply> {
        Box::pin(self.answer(endpoint, body))
    }
}

/// The metrics label of an endpoint (used by the HTTP layer too).
pub fn endpoint_metric(endpoint: Endpoint) -> EndpointLabel {
    endpoint_label(endpoint)
}

#[cfg(test)]
mod tests;
