//! End to end, in-cluster: the real `tollgate webhook --in-cluster` against
//! the in-process fake API server (there is no kube-apiserver here; the fake
//! plays its part, including calling the webhooks of the stored webhook
//! configurations over HTTPS with their caBundle), driven by the real
//! `kubectl`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support_cluster;
mod support_webhook;

use std::time::Duration;

use base64::Engine as _;
use support_cluster::{cluster_with_webhook_configurations, kubectl, start_in_cluster, wait};
use support_webhook::{http_get, root};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_waits_for_the_namespace_list_and_metrics_report_the_cluster() {
    let server = cluster_with_webhook_configurations().await;
    // Listing namespaces fails until the fault is cleared.
    server.inject(tollgate_testkit::Fault {
        method: None,
        path_contains: "/api/v1/namespaces?".into(),
        query_contains: String::new(),
        code: 503,
        times: usize::MAX,
    });
    let dir = tempfile::tempdir().unwrap();
    let (running, _https, metrics) = start_in_cluster(&server, dir.path());
    let (code, body) = http_get(metrics, "/readyz");
    assert_eq!(code, 503, "{body}\n{}", running.output());
    assert!(
        body.contains("waiting for the first namespace list"),
        "{body}"
    );
    server.clear_faults();
    wait("/readyz", Duration::from_secs(20), || {
        http_get(metrics, "/readyz").0 == 200
    });
    let (_, text) = http_get(metrics, "/metrics");
    for line in [
        "tollgate_cluster_namespaces_ready 1",
        "tollgate_cluster_certificate_leader 1",
        "tollgate_cluster_certificate_ready 1",
        "tollgate_cluster_policy_error 0",
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
    assert!(
        text.contains("# TYPE tollgate_webhook_"),
        "the webhook's own metrics stay:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_is_admitted_by_the_in_cluster_webhook() {
    let server = cluster_with_webhook_configurations().await;
    let dir = tempfile::tempdir().unwrap();
    let (running, https, metrics) = start_in_cluster(&server, dir.path());
    // The Service the webhook configurations name resolves to the process.
    server.route_service("tollgate", "tollgate-webhook", https);
    wait("/readyz", Duration::from_secs(20), || {
        http_get(metrics, "/readyz").0 == 200
    });

    // The certificate Secret exists and every caBundle trusts its CA.
    let secret = server
        .get("v1", "Secret", "tollgate", "tollgate-webhook-tls")
        .expect("certificate Secret");
    let ca = secret["data"]["ca.crt"].as_str().unwrap().to_owned();
    for kind in [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ] {
        let config = server
            .get("admissionregistration.k8s.io/v1", kind, "", "tollgate")
            .unwrap();
        assert_eq!(
            config["webhooks"][0]["clientConfig"]["caBundle"],
            ca.as_str(),
            "{kind}"
        );
    }
    let ca_pem = base64::engine::general_purpose::STANDARD
        .decode(&ca)
        .unwrap();
    assert!(
        String::from_utf8(ca_pem)
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );

    let cache = dir.path().join("kube-cache");
    let manifests = root().join("examples/admission/manifests");

    // The privileged agent is refused, with Tollgate's message in kubectl's output.
    let bad = manifests.join("research-agent.yaml");
    let out = tokio::task::block_in_place(|| {
        kubectl(
            &server,
            &cache,
            &["apply", "--validate=false", "-f", bad.to_str().unwrap()],
        )
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the privileged agent must be refused:\n{stderr}\n{}",
        running.output()
    );
    assert!(
        stderr.contains("admission webhook \"validate.tollgate.dev\" denied the request"),
        "{stderr}"
    );
    assert!(stderr.contains("privileged"), "{stderr}");
    eprintln!("kubectl said:\n{stderr}");
    assert!(
        server
            .get("apps/v1", "Deployment", "agents", "research-agent")
            .is_none()
    );

    // The hardened one is created.
    let good = manifests.join("restricted-agent.yaml");
    let out = tokio::task::block_in_place(|| {
        kubectl(
            &server,
            &cache,
            &["apply", "--validate=false", "-f", good.to_str().unwrap()],
        )
    });
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        running.output()
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("deployment.apps/summariser-agent created")
    );
    assert!(
        server
            .get("apps/v1", "Deployment", "agents", "summariser-agent")
            .is_some()
    );

    // Live namespace labels: relaxing the namespace's Pod Security level
    // (read by the reflector, no restart) changes the decision.
    let out = tokio::task::block_in_place(|| {
        kubectl(
            &server,
            &cache,
            &[
                "label",
                "namespace",
                "agents",
                "pss.tollgate.dev/enforce=privileged",
            ],
        )
    });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait("the label to take effect", Duration::from_secs(15), || {
        kubectl(
            &server,
            &cache,
            &["apply", "--validate=false", "-f", bad.to_str().unwrap()],
        )
        .status
        .success()
    });
    assert!(
        server
            .get("apps/v1", "Deployment", "agents", "research-agent")
            .is_some()
    );
}
