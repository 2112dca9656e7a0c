//! Prometheus metrics of the webhook, served on `/metrics` of the plain-HTTP
//! port. Label values come from fixed sets (endpoints, operations, known
//! kinds, outcomes, error reasons, policy rules), so cardinality is bounded
//! whatever clients send.

use std::sync::Arc;
use std::sync::atomic::AtomicI64;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The admission endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum EndpointLabel {
    /// `/validate`.
    validate,
    /// `/mutate`.
    mutate,
}

/// `requests_total` labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RequestLabels {
    /// `validate` or `mutate`.
    pub endpoint: EndpointLabel,
    /// `CREATE`, `UPDATE`, `DELETE`, `CONNECT`, or `none` when the request
    /// could not be decoded.
    pub operation: &'static str,
    /// The object's kind when it is one Tollgate judges, else `other`.
    pub kind: &'static str,
    /// `allow`, `warn`, `deny` or `error`.
    pub outcome: &'static str,
}

/// `request_duration_seconds` labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct EndpointLabels {
    /// `validate` or `mutate`.
    pub endpoint: EndpointLabel,
}

/// `violations_total` labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ViolationLabels {
    /// The policy set (`pod-security`, ...).
    pub policy: &'static str,
    /// The rule (a Pod Security check id, ...).
    pub rule: String,
    /// `deny`, `warn` or `audit`.
    pub action: &'static str,
}

/// Labels with a single `reason`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReasonLabels {
    /// Why.
    pub reason: &'static str,
}

/// `exemptions_total` labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ExemptionLabels {
    /// The policy set.
    pub policy: &'static str,
    /// `namespace`, `user` or `runtimeClass`.
    pub reason: &'static str,
}

/// `cert_reloads_total` and `injections_total` labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ResultLabels {
    /// `success` or `failure`; for injections one of
    /// [`crate::inject::RESULTS`].
    pub result: &'static str,
}

/// Every metric the webhook exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Admission reviews answered.
    pub requests: Family<RequestLabels, Counter>,
    /// Time from the request's headers to the response, per endpoint.
    pub duration: Family<EndpointLabels, Histogram>,
    /// Violations found, by policy, rule and action.
    pub violations: Family<ViolationLabels, Counter>,
    /// Requests refused before evaluation, and connection-level failures.
    pub errors: Family<ReasonLabels, Counter>,
    /// Requests a policy set skipped by exemption.
    pub exemptions: Family<ExemptionLabels, Counter>,
    /// Serving-certificate reloads.
    pub cert_reloads: Family<ResultLabels, Counter>,
    /// When the served certificate expires (Unix seconds).
    pub cert_expiry: Gauge<i64, AtomicI64>,
    /// Requests being handled now.
    pub in_flight: Gauge<i64, AtomicI64>,
    /// Open connections on the HTTPS port.
    pub connections: Gauge<i64, AtomicI64>,
    /// Admission decisions the audit trail failed to record.
    pub audit_failures: Family<ReasonLabels, Counter>,
    /// Sidecar injection outcomes of pod creations it applied to.
    pub injections: Family<ResultLabels, Counter>,
}

impl Metrics {
    /// A fresh set of metrics, registered under the `tollgate_webhook`
    /// prefix.
    pub fn new() -> Arc<Metrics> {
        Self::with(|_| {})
    }

    /// Like [`Metrics::new`], and lets `extra` register more metrics (the
    /// audit trail's, under their own prefix) in the same exposition.
    pub fn with(extra: impl FnOnce(&mut Registry)) -> Arc<Metrics> {
        let mut root = Registry::default();
        let registry = root.sub_registry_with_prefix("tollgate_webhook");
        let requests = Family::<RequestLabels, Counter>::default();
        let duration = Family::<EndpointLabels, Histogram>::new_with_constructor(
            (|| {
                Histogram::new([
                    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05,
                    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
            }) as fn() -> Histogram,
        );
        let violations = Family::<ViolationLabels, Counter>::default();
        let errors = Family::<ReasonLabels, Counter>::default();
        let exemptions = Family::<ExemptionLabels, Counter>::default();
        let cert_reloads = Family::<ResultLabels, Counter>::default();
        let cert_expiry = Gauge::<i64, AtomicI64>::default();
        let in_flight = Gauge::<i64, AtomicI64>::default();
        let connections = Gauge::<i64, AtomicI64>::default();
        let audit_failures = Family::<ReasonLabels, Counter>::default();
        let injections = Family::<ResultLabels, Counter>::default();
        registry.register(
            "requests",
            "Admission reviews answered, by endpoint, operation, kind and outcome",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time to answer an admission review, from headers to response",
            duration.clone(),
        );
        registry.register(
            "violations",
            "Policy violations found, by policy set, rule and enforcement action",
            violations.clone(),
        );
        registry.register(
            "errors",
            "Requests refused before evaluation and connection failures, by reason",
            errors.clone(),
        );
        registry.register(
            "exemptions",
            "Requests a policy set skipped by exemption",
            exemptions.clone(),
        );
        registry.register(
            "cert_reloads",
            "Serving certificate reloads, by result",
            cert_reloads.clone(),
        );
        registry.register(
            "cert_expiry_timestamp_seconds",
            "When the served certificate expires, in Unix seconds",
            cert_expiry.clone(),
        );
        registry.register(
            "in_flight_requests",
            "Requests being handled",
            in_flight.clone(),
        );
        registry.register(
            "open_connections",
            "Open connections on the HTTPS port",
            connections.clone(),
        );
        registry.register(
            "audit_failures",
            "Admission decisions the audit trail could not record, by reason",
            audit_failures.clone(),
        );
        registry.register(
            "injections",
            "Sidecar injection at pod creation, by result (injected, unchanged, excluded_namespace, namespace_disabled, opted_out)",
            injections.clone(),
        );
        // Series that alerts watch exist from the start, at zero.
        for result in ["success", "failure"] {
            let _ = cert_reloads.get_or_create(&ResultLabels { result });
        }
        for reason in ["spool_full", "unavailable", "timeout"] {
            let _ = audit_failures.get_or_create(&ReasonLabels { reason });
        }
        extra(&mut root);
        Arc::new(Metrics {
            registry: root,
            requests,
            duration,
            violations,
            errors,
            exemptions,
            cert_reloads,
            cert_expiry,
            in_flight,
            connections,
            audit_failures,
            injections,
        })
    }

    /// Counts an error by reason.
    pub fn error(&self, reason: &'static str) {
        self.errors.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Counts a value up while alive (in-flight requests, open connections).
#[derive(Debug)]
pub struct GaugeGuard {
    gauge: Gauge<i64, AtomicI64>,
}

impl GaugeGuard {
    /// Increments `gauge` until the guard drops.
    pub fn new(gauge: &Gauge<i64, AtomicI64>) -> GaugeGuard {
        gauge.inc();
        GaugeGuard {
            gauge: gauge.clone(),
        }
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// The `kind` label for a request's kind.
pub fn kind_label(kind: &str) -> &'static str {
    match kind {
        "Pod" => "Pod",
        "Deployment" => "Deployment",
        "ReplicaSet" => "ReplicaSet",
        "StatefulSet" => "StatefulSet",
        "DaemonSet" => "DaemonSet",
        "Job" => "Job",
        "CronJob" => "CronJob",
        "ReplicationController" => "ReplicationController",
        "Namespace" => "Namespace",
        _ => "other",
    }
}
