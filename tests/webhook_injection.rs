//! End to end: sidecar injection through the real `tollgate webhook` over
//! TLS. The test plays kube-apiserver's part (there is no kube-apiserver
//! here): it sends the AdmissionReview to /mutate, applies the JSON Patch,
//! sends the result to /validate, exactly as the API server does. An agent
//! pod in an enforced namespace comes back injected and admitted; applying
//! the stored pod again changes nothing; a pod that skipped the mutating
//! webhook and routes around the sidecar is refused with every problem
//! listed.

// Test helpers may panic: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support_webhook;

use serde_json::{Value, json};
use support_webhook::{Start, Webhook, admit, check_response, restricted_context, review};

const CONFIG: &str = r#"apiVersion: tollgate.dev/v1alpha1
kind: TollgateConfig
injection:
  interception: true
policy:
  namespaces:
    agents:
      labels:
        tollgate.dev/inject: enforced
        pss.tollgate.dev/enforce: restricted
      annotations:
        deployscope.dev/owner: team-research
        deployscope.dev/tier: standard
"#;

fn agent_pod(name: &str, namespace: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "annotations": {"tollgate.dev/action-policy": "researcher-policy"}
        },
        "spec": {
            "serviceAccountName": "researcher",
            "containers": [{
                "name": "agent",
                "image": "ghcr.io/example/researcher:1.0",
                "securityContext": restricted_context()
            }]
        }
    })
}

fn env_of(container: &Value, name: &str) -> Option<String> {
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str().map(str::to_owned))
}

fn metric(webhook: &Webhook, line: &str) -> Option<f64> {
    webhook
        .metrics_text()
        .lines()
        .find(|l| l.starts_with(line))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn an_agent_pod_is_injected_once_and_admitted() {
    let webhook = Webhook::start_with(Start {
        config: Some(CONFIG),
        ..Start::default()
    });
    let admitted = admit(
        &webhook,
        &agent_pod("researcher", "agents"),
        "CREATE",
        "alice",
    )
    .await
    .unwrap_or_else(|r| panic!("refused: {r:?}"));
    let pod = &admitted.object;
    let sidecar = &pod["spec"]["initContainers"][0];
    assert_eq!(sidecar["name"], "tollgate-sidecar", "{pod:#}");
    assert_eq!(sidecar["restartPolicy"], "Always");
    assert_eq!(sidecar["securityContext"]["runAsUser"], 65534);
    assert_eq!(sidecar["securityContext"]["readOnlyRootFilesystem"], true);
    let args: Vec<&str> = sidecar["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    for flag in [
        "--policy",
        "--audit-dir",
        "--intercept-ca",
        "--trust-bundle-out",
    ] {
        assert!(args.contains(&flag), "{flag} missing from {args:?}");
    }
    let agent = &pod["spec"]["containers"][0];
    assert_eq!(
        env_of(agent, "HTTPS_PROXY").as_deref(),
        Some("http://127.0.0.1:15001")
    );
    assert_eq!(
        env_of(agent, "SSL_CERT_FILE").as_deref(),
        Some("/var/run/tollgate/trust/ca-bundle.crt")
    );
    // Only the sidecar mounts the audit spool and the CA key.
    let mounts: Vec<&str> = agent["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(mounts, ["tollgate-trust"]);
    assert!(
        pod["metadata"]["annotations"]["tollgate.dev/injected-version"]
            .as_str()
            .unwrap()
            .starts_with("v1-")
    );

    // Re-applying the stored pod (re-invocation, `kubectl apply` of what
    // `kubectl get -o yaml` printed) adds nothing.
    let again = admit(&webhook, pod, "CREATE", "alice").await.unwrap();
    assert_eq!(again.patch, json!([]), "{:#}", again.patch);
    assert_eq!(&again.object, pod);

    // A pod in kube-system is never injected.
    let mut system = agent_pod("coredns", "kube-system");
    system["metadata"]["labels"] = json!({"tollgate.dev/inject": "enabled"});
    let request = review(
        &system,
        "CREATE",
        "system:serviceaccount:kube-system:replicaset-controller",
    );
    let (status, body) = webhook.post("/mutate", &request).await;
    assert_eq!(status, 200);
    let r = check_response(&request, &body);
    let patch = r["patch"].as_str().map(|b64| {
        use base64::Engine as _;
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap(),
        )
        .unwrap()
    });
    assert!(
        !patch.unwrap_or_default().contains("tollgate-sidecar"),
        "kube-system must not be injected"
    );

    assert_eq!(
        metric(
            &webhook,
            r#"tollgate_webhook_injections_total{result="injected"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &webhook,
            r#"tollgate_webhook_injections_total{result="unchanged"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &webhook,
            r#"tollgate_webhook_injections_total{result="excluded_namespace"}"#
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn a_pod_bypassing_the_sidecar_is_refused_with_every_problem() {
    let webhook = Webhook::start_with(Start {
        config: Some(CONFIG),
        ..Start::default()
    });
    let mut pod = agent_pod("sneaky", "agents");
    pod["spec"]["hostNetwork"] = json!(true);
    pod["spec"]["containers"][0]["env"] = json!([{"name": "HTTPS_PROXY", "value": ""}]);
    pod["spec"]["containers"][0]["securityContext"]["capabilities"]["add"] = json!(["NET_ADMIN"]);
    // Sent straight to /validate: the mutating webhook was skipped.
    let request = review(&pod, "CREATE", "mallory");
    let (status, body) = webhook.post("/validate", &request).await;
    assert_eq!(status, 200);
    let r = check_response(&request, &body);
    assert_eq!(r["allowed"], false, "{r:#}");
    assert_eq!(r["status"]["code"], 403);
    let message = r["status"]["message"].as_str().unwrap();
    for want in [
        "[injection:sidecarMissing]",
        "[injection:volumeMissing]",
        "[injection:hostNetwork]",
        "[injection:netCapability]",
        "sets HTTPS_PROXY to \"\"",
        "let Tollgate's mutating webhook set it",
        "create the pod through Tollgate's mutating webhook",
    ] {
        assert!(message.contains(want), "{want:?} missing from:\n{message}");
    }

    // Through /mutate first the sidecar and env are fixed, but host
    // networking and NET_ADMIN still refuse it.
    let refused = admit(&webhook, &pod, "CREATE", "mallory")
        .await
        .unwrap_err();
    assert!(
        refused.message.contains("[injection:hostNetwork]"),
        "{}",
        refused.message
    );
    assert!(
        refused.message.contains("[injection:netCapability]"),
        "{}",
        refused.message
    );
    assert!(
        !refused.message.contains("sidecarMissing"),
        "{}",
        refused.message
    );
    assert!(
        refused
            .warnings
            .iter()
            .any(|w| w.contains("Tollgate set HTTPS_PROXY of container \"agent\"")),
        "{:?}",
        refused.warnings
    );
}
