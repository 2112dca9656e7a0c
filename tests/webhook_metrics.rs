//! End to end: the plain-HTTP port serves health, readiness and the
//! Prometheus metrics a platform team alerts on.

// Test helpers may panic: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support_webhook;

use serde_json::json;
use support_webhook::{Webhook, admit, example_review, http_get, pod, restricted_context};

#[tokio::test]
async fn health_readiness_and_metrics() {
    let webhook = Webhook::start(&[]);
    assert_eq!(
        http_get(webhook.metrics, "/healthz"),
        (200, "ok\n".to_owned())
    );
    assert_eq!(
        http_get(webhook.metrics, "/readyz"),
        (200, "ready\n".to_owned())
    );
    assert_eq!(http_get(webhook.metrics, "/nope").0, 404);

    admit(
        &webhook,
        &pod("p", "team-a", restricted_context()),
        "CREATE",
        "alice",
    )
    .await
    .unwrap();
    admit(
        &webhook,
        &pod("p", "kube-system", json!({})),
        "CREATE",
        "alice",
    )
    .await
    .unwrap();
    let (_, body) = webhook
        .post("/validate", &example_review("namespace-invalid-label.json"))
        .await;
    assert_eq!(body["response"]["allowed"], false);
    let _ = webhook
        .client()
        .get(webhook.url("/validate"))
        .send()
        .await
        .unwrap();

    let text = webhook.metrics_text();
    for want in [
        "# TYPE tollgate_webhook_requests counter",
        r#"tollgate_webhook_requests_total{endpoint="mutate",operation="CREATE",kind="Pod",outcome="allow"} 2"#,
        r#"tollgate_webhook_requests_total{endpoint="validate",operation="CREATE",kind="Pod",outcome="allow"} 2"#,
        r#"tollgate_webhook_requests_total{endpoint="validate",operation="CREATE",kind="Namespace",outcome="deny"} 1"#,
        "# TYPE tollgate_webhook_request_duration_seconds histogram",
        r#"tollgate_webhook_request_duration_seconds_count{endpoint="validate"} 3"#,
        r#"tollgate_webhook_request_duration_seconds_bucket{le="0.001",endpoint="validate"}"#,
        r#"tollgate_webhook_violations_total{policy="pod-security",rule="namespaceLabel",action="deny"} 1"#,
        r#"tollgate_webhook_errors_total{reason="method_not_allowed"} 1"#,
        r#"tollgate_webhook_exemptions_total{policy="pod-security",reason="namespace"} 2"#,
        "tollgate_webhook_in_flight_requests 0",
        "# TYPE tollgate_webhook_open_connections gauge",
        "# TYPE tollgate_webhook_cert_expiry_timestamp_seconds gauge",
        "# TYPE tollgate_webhook_cert_reloads counter",
        "# TYPE tollgate_webhook_audit_failures counter",
        "# EOF",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    let expiry: i64 = text
        .lines()
        .find_map(|l| l.strip_prefix("tollgate_webhook_cert_expiry_timestamp_seconds "))
        .unwrap()
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        expiry > now + 300 * 86_400,
        "a generated certificate lasts a year"
    );
}
