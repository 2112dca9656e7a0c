//! The HTTP layer and the admission handler driven in-process (no sockets):
//! routing, refusals, limits, the AdmissionReview answer, audit events and
//! metrics. Pod Security decisions come from a stand-in checker that flags
//! `privileged: true`, so these tests prove the plumbing whatever the
//! checks' bodies.

use std::pin::Pin;
use std::task::{Context, Poll};

use base64::Engine as _;
use http_body::Frame;
use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Value, json};
use tollgate_audit::{AuditError, Event, Memory, Outcome, RecordFuture, Recorder};
use tollgate_policies::config::PolicyConfig;
use tollgate_policies::engine::{Engine, Snapshot};
use tollgate_policies::pss::PssViolation;
use tollgate_policies::{Level, Version, Workload};

use super::*;
use crate::handler::Admission;
use crate::settings::{AuditFailurePolicy, Settings};

fn privileged_checker(
    level: Level,
    v: Version,
    _m: &ObjectMeta,
    spec: &PodSpec,
) -> Vec<PssViolation> {
    if level == Level::Privileged {
        return vec![];
    }
    spec.containers
        .iter()
        .enumerate()
        .filter(|(_, c)| c.security_context.as_ref().and_then(|s| s.privileged) == Some(true))
        .map(|(i, c)| PssViolation {
            check: "privileged",
            level: Level::Baseline,
            container: Some(c.name.clone()),
            path: format!("spec.containers[{i}].securityContext.privileged"),
            message: format!(
                "container {:?} must not set securityContext.privileged=true ({level}, v1.{})",
                c.name,
                v.minor()
            ),
        })
        .collect()
}

fn label_defaults(
    w: &Workload,
    _: &tollgate_policies::defaults::DefaultsConfig,
    _: tollgate_policies::engine::DefaultsScope,
) -> Vec<json_patch::PatchOperation> {
    if w.pod_metadata.labels.is_some() {
        return vec![];
    }
    serde_json::from_value(
        json!([{"op": "add", "path": "/metadata/labels", "value": {"defaulted": "yes"}}]),
    )
    .unwrap()
}

struct Harness {
    service: Service,
    metrics: Arc<Metrics>,
}

fn harness_with(recorder: Arc<dyn Recorder>, settings: Settings) -> Harness {
    // The service's plumbing, exercised through Pod Security alone.
    let mut policy = PolicyConfig::default();
    policy.ownership.enabled = false;
    policy.compliance.enabled = false;
    let snapshot = Snapshot::builder(&policy)
        .pss_checker(privileged_checker)
        .defaults_mutation(label_defaults)
        .build();
    let engine = Arc::new(Engine::new(snapshot));
    let metrics = Metrics::new();
    let admission = Admission::new(engine, Some(recorder), Arc::clone(&metrics), &settings);
    Harness {
        service: Service::new(Arc::new(admission), Arc::clone(&metrics), &settings.limits),
        metrics,
    }
}

fn harness() -> Harness {
    harness_with(Arc::new(Memory::default()), Settings::default())
}

fn pod_review(privileged: bool) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "0d3c1c3e-1111-2222-3333-444455556666", "operation": "CREATE",
            "namespace": "team-a", "name": "agent",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "userInfo": {"username": "alice", "groups": ["dev"]},
            "object": {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "agent", "annotations": {"deployscope.dev/owner": "team-a", "deployscope.dev/tier": "critical"}},
                "spec": {"containers": [{"name": "agent", "image": "x", "securityContext": {"privileged": privileged}}]}}
        }
    }))
    .unwrap()
}

fn post(path: &str, body: Vec<u8>) -> Request<Full<Bytes>> {
    Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

async fn json_body(response: Response<Full<Bytes>>) -> (StatusCode, Value) {
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn validates_and_denies_with_a_readable_status() {
    let h = harness();
    let (status, body) = json_body(
        h.service
            .handle(post("/validate?timeout=10s", pod_review(true)))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let r = &body["response"];
    assert_eq!(r["uid"], "0d3c1c3e-1111-2222-3333-444455556666");
    assert_eq!(r["allowed"], false);
    assert_eq!(r["status"]["code"], 403);
    assert_eq!(r["status"]["reason"], "Forbidden");
    assert_eq!(
        r["status"]["message"],
        "Pod \"agent\" in namespace \"team-a\" has 1 policy violation:\n- spec.containers[0].securityContext.privileged: container \"agent\" must not set securityContext.privileged=true (restricted, v1.37) [pod-security:privileged]"
    );

    let (_, body) = json_body(h.service.handle(post("/validate", pod_review(false))).await).await;
    assert_eq!(body["response"]["allowed"], true);
    assert!(body["response"].get("status").is_none());

    let text = h.metrics.encode();
    for want in [
        r#"tollgate_webhook_requests_total{endpoint="validate",operation="CREATE",kind="Pod",outcome="deny"} 1"#,
        r#"tollgate_webhook_requests_total{endpoint="validate",operation="CREATE",kind="Pod",outcome="allow"} 1"#,
        r#"tollgate_webhook_violations_total{policy="pod-security",rule="privileged",action="deny"} 1"#,
        r#"tollgate_webhook_request_duration_seconds_count{endpoint="validate"} 2"#,
        "tollgate_webhook_in_flight_requests 0",
    ] {
        assert!(text.contains(want), "missing {want} in\n{text}");
    }
}

#[tokio::test]
async fn mutates_with_a_base64_json_patch() {
    let h = harness();
    let (_, body) = json_body(h.service.handle(post("/mutate", pod_review(false))).await).await;
    let r = &body["response"];
    assert_eq!(r["allowed"], true);
    assert_eq!(r["patchType"], "JSONPatch");
    let patch = base64::engine::general_purpose::STANDARD
        .decode(r["patch"].as_str().unwrap())
        .unwrap();
    let patch: Value = serde_json::from_slice(&patch).unwrap();
    assert_eq!(
        patch,
        json!([{"op": "add", "path": "/metadata/labels", "value": {"defaulted": "yes"}}])
    );
}

#[tokio::test]
async fn refuses_bad_requests_with_json_status_and_counts_them() {
    let h = harness();
    let get = Request::builder()
        .method("GET")
        .uri("/validate")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = h.service.handle(get).await;
    assert_eq!(response.headers()["allow"], "POST");
    let (status, body) = json_body(response).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["kind"], "Status");
    assert_eq!(body["reason"], "MethodNotAllowed");

    let (status, body) = json_body(h.service.handle(post("/nope", vec![])).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["message"].as_str().unwrap().contains("POST /validate"));

    for ct in [Some("text/plain"), None, Some("application/jsonx")] {
        let mut builder = Request::builder().method("POST").uri("/validate");
        if let Some(ct) = ct {
            builder = builder.header("content-type", ct);
        }
        let req = builder
            .body(Full::new(Bytes::from(pod_review(false))))
            .unwrap();
        let (status, _) = json_body(h.service.handle(req).await).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct:?}");
    }
    let req = Request::builder()
        .method("POST")
        .uri("/validate")
        .header("content-type", "Application/JSON; charset=utf-8")
        .body(Full::new(Bytes::from(pod_review(false))))
        .unwrap();
    assert_eq!(h.service.handle(req).await.status(), StatusCode::OK);

    let (status, body) =
        json_body(h.service.handle(post("/validate", b"{nope".to_vec())).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("request body is not valid JSON")
    );

    let text = h.metrics.encode();
    for want in [
        r#"tollgate_webhook_errors_total{reason="method_not_allowed"} 1"#,
        r#"tollgate_webhook_errors_total{reason="not_found"} 1"#,
        r#"tollgate_webhook_errors_total{reason="unsupported_media_type"} 3"#,
        r#"tollgate_webhook_errors_total{reason="malformed_json"} 1"#,
        r#"tollgate_webhook_requests_total{endpoint="validate",operation="none",kind="other",outcome="error"} 1"#,
    ] {
        assert!(text.contains(want), "missing {want} in\n{text}");
    }
}

/// A body that streams `chunks` then stalls forever.
struct Trickle {
    chunks: Vec<Bytes>,
}

impl http_body::Body for Trickle {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.chunks.pop() {
            Some(chunk) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
            None => Poll::Pending,
        }
    }
}

#[tokio::test]
async fn enforces_body_size_and_time_limits() {
    let mut settings = Settings::default();
    settings.limits.max_request_bytes = 4096;
    settings.limits.body_read_timeout = Duration::from_millis(100);
    let h = harness_with(Arc::new(Memory::default()), settings);

    // Declared too large: refused before reading.
    let req = Request::builder()
        .method("POST")
        .uri("/validate")
        .header("content-type", "application/json")
        .header("content-length", "5000")
        .body(Full::new(Bytes::from(vec![b' '; 5000])))
        .unwrap();
    let response = h.service.handle(req).await;
    assert_eq!(response.headers()["connection"], "close");
    let (status, body) = json_body(response).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(body["message"].as_str().unwrap().contains("4096 bytes"));

    // Streamed (no length) past the limit: refused while reading.
    let req = Request::builder()
        .method("POST")
        .uri("/validate")
        .header("content-type", "application/json")
        .body(Trickle {
            chunks: vec![Bytes::from(vec![b' '; 3000]), Bytes::from(vec![b' '; 3000])],
        })
        .unwrap();
    assert_eq!(
        h.service.handle(req).await.status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );

    // Stalled: 408 after the body timeout.
    let req = Request::builder()
        .method("POST")
        .uri("/validate")
        .header("content-type", "application/json")
        .body(Trickle {
            chunks: vec![Bytes::from_static(b"{")],
        })
        .unwrap();
    let (status, body) = json_body(h.service.handle(req).await).await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("bodyReadTimeout")
    );

    let text = h.metrics.encode();
    assert!(
        text.contains(r#"tollgate_webhook_errors_total{reason="body_too_large"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"tollgate_webhook_errors_total{reason="body_timeout"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn records_one_audit_event_per_decision() {
    let memory = Memory::default();
    let h = harness_with(Arc::new(memory.clone()), Settings::default());
    h.service.handle(post("/validate", pod_review(true))).await;
    h.service.handle(post("/mutate", pod_review(false))).await;
    let events: Vec<Event> = memory.events();
    assert_eq!(events.len(), 2);
    let denied = &events[0];
    assert_eq!(denied.decision.outcome, Outcome::Deny);
    assert_eq!(
        denied.decision.rule.as_deref(),
        Some("pod-security:privileged")
    );
    assert!(
        denied
            .decision
            .reason
            .as_deref()
            .unwrap()
            .contains("securityContext.privileged")
    );
    assert_eq!(denied.actor.user.as_deref(), Some("alice"));
    assert_eq!(denied.actor.groups, vec!["dev".to_owned()]);
    assert_eq!(denied.actor.pod.as_deref(), Some("agent"));
    assert_eq!(denied.actor.namespace.as_deref(), Some("team-a"));
    assert_eq!(denied.ownership.owner.as_deref(), Some("team-a"));
    assert_eq!(denied.ownership.tier.as_deref(), Some("critical"));
    assert_eq!(denied.priority, tollgate_audit::Priority::P0Escalate);
    assert_eq!(denied.action.protocol, "admission");
    assert_eq!(denied.action.verb, "CREATE");
    assert_eq!(denied.action.target, "v1/Pod team-a/agent");
    assert_eq!(denied.action.attributes["endpoint"], "validate");
    assert_eq!(
        denied.action.attributes["violations"][0]["rule"],
        "privileged"
    );
    let mutated = &events[1];
    assert_eq!(mutated.decision.outcome, Outcome::Allow);
    assert_eq!(mutated.action.attributes["patchOperations"], 1);
}

struct Refusing(AuditError);

impl Recorder for Refusing {
    fn record(&self, _event: Event) -> RecordFuture {
        let err = self.0.clone();
        Box::pin(async move { Err(err) })
    }
}

struct Stuck;

impl Recorder for Stuck {
    fn record(&self, _event: Event) -> RecordFuture {
        Box::pin(std::future::pending())
    }
}

#[tokio::test]
async fn an_unrecorded_decision_is_refused_unless_configured_otherwise() {
    let full: Arc<dyn Recorder> = Arc::new(Refusing(AuditError::SpoolFull("cap reached".into())));
    let h = harness_with(Arc::clone(&full), Settings::default());
    let (_, body) = json_body(h.service.handle(post("/validate", pod_review(false))).await).await;
    assert_eq!(body["response"]["allowed"], false);
    assert_eq!(body["response"]["status"]["code"], 503);
    assert!(
        body["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("audit spool is full")
    );
    // A request denied anyway keeps its own, more useful, message.
    let (_, body) = json_body(h.service.handle(post("/validate", pod_review(true))).await).await;
    assert_eq!(body["response"]["status"]["code"], 403);
    assert!(
        h.metrics
            .encode()
            .contains(r#"tollgate_webhook_audit_failures_total{reason="spool_full"} 2"#)
    );

    let mut settings = Settings {
        audit_timeout: Duration::from_millis(50),
        ..Settings::default()
    };
    let h = harness_with(Arc::new(Stuck), settings.clone());
    let (_, body) = json_body(h.service.handle(post("/validate", pod_review(false))).await).await;
    assert_eq!(body["response"]["status"]["code"], 503);
    assert!(
        h.metrics
            .encode()
            .contains(r#"audit_failures_total{reason="timeout"} 1"#)
    );

    settings.audit_failure_policy = AuditFailurePolicy::Ignore;
    let h = harness_with(full, settings);
    let (_, body) = json_body(h.service.handle(post("/validate", pod_review(false))).await).await;
    assert_eq!(body["response"]["allowed"], true);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !h
        .metrics
        .encode()
        .contains(r#"audit_failures_total{reason="spool_full"} 1"#)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "failure never counted"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
