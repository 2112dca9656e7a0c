//! End to end: the real `tollgate webhook` on loopback, spoken to over TLS
//! the way kube-apiserver speaks to it (mutate, apply the JSON Patch,
//! validate). No kube-apiserver runs here; `support_webhook::admit` does its
//! part.

// Test helpers may panic: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support_webhook;

use serde_json::{Value, json};
use support_webhook::{
    Start, Webhook, admit, check_response, example_review, pod, restricted_context,
};

#[tokio::test]
async fn the_readme_example_is_denied_with_one_line_per_fix() {
    // Depends on the Pod Security check bodies: a privileged container that
    // allows privilege escalation violates baseline and restricted.
    let webhook = Webhook::start(&[]);
    let request = example_review("deployment-privileged.json");
    let (status, body) = webhook.post("/validate", &request).await;
    assert_eq!(status, 200);
    let r = check_response(&request, &body);
    assert_eq!(r["allowed"], false, "{r}");
    assert_eq!(r["status"]["code"], 403);
    assert_eq!(r["status"]["reason"], "Forbidden");
    let message = r["status"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("Deployment \"research-agent\" in namespace \"agents\" has "),
        "{message}"
    );
    for want in [
        "spec.template.spec.containers[0].securityContext.privileged",
        "spec.template.spec.containers[0].securityContext.allowPrivilegeEscalation",
        "[pod-security:privileged]",
        "[pod-security:allowPrivilegeEscalation]",
        "(restricted, v1.37)",
        "container \"agent\"",
        "container \"tools\"",
        "container \"metrics\"",
    ] {
        assert!(message.contains(want), "{want} missing from:\n{message}");
    }
    // One line per violation, each naming its rule.
    for line in message.lines().skip(1) {
        assert!(line.starts_with("- spec.template."), "{line}");
        assert!(line.ends_with(']'), "{line}");
    }
}

#[tokio::test]
async fn privileged_pods_are_denied_and_hardened_ones_admitted() {
    // Depends on the Pod Security check bodies.
    let webhook = Webhook::start(&[]);
    let bad = pod(
        "agent",
        "team-a",
        json!({"privileged": true, "allowPrivilegeEscalation": true}),
    );
    let refused = admit(&webhook, &bad, "CREATE", "alice").await.unwrap_err();
    assert_eq!(refused.code, 403);
    assert!(
        refused
            .message
            .contains("spec.containers[0].securityContext.privileged"),
        "{}",
        refused.message
    );
    let good = pod("agent", "team-a", restricted_context());
    let admitted = admit(&webhook, &good, "CREATE", "alice").await.unwrap();
    assert!(admitted.warnings.is_empty(), "{:?}", admitted.warnings);
}

#[tokio::test]
async fn a_deployment_without_security_context_is_admitted_after_mutation() {
    // The mutating webhook fills in the restricted settings the user left
    // out; the validating webhook then admits the patched object, exactly
    // as kube-apiserver chains them. Depends on the secure-defaults
    // mutation and the check bodies together: without defaults, restricted
    // refuses this Deployment.
    let webhook = Webhook::start(&[]);
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "plain", "namespace": "team-a", "annotations": {
            "deployscope.dev/owner": "team-a", "deployscope.dev/tier": "best-effort"}},
        "spec": {
            "selector": {"matchLabels": {"app": "plain"}},
            "template": {
                "metadata": {"labels": {"app": "plain"}},
                "spec": {"containers": [{"name": "app", "image": "registry.example.com/app:1"}]}
            }
        }
    });
    let admitted = admit(&webhook, &deployment, "CREATE", "alice")
        .await
        .unwrap_or_else(|r| panic!("refused: {}", r.message));
    assert_ne!(admitted.patch, json!([]), "defaults were applied");
    // Mutating the mutated object is a no-op.
    let again = admit(&webhook, &admitted.object, "UPDATE", "alice")
        .await
        .unwrap();
    assert_eq!(again.patch, json!([]));
}

#[tokio::test]
async fn namespace_label_values_are_validated_like_psa() {
    let webhook = Webhook::start(&[]);
    let request = example_review("namespace-invalid-label.json");
    let (_, body) = webhook.post("/validate", &request).await;
    let r = check_response(&request, &body);
    assert_eq!(r["allowed"], false);
    assert_eq!(r["status"]["code"], 403);
    assert_eq!(
        r["status"]["message"],
        "Namespace \"agents\" has 1 policy violation:\n- metadata.labels[pss.tollgate.dev/enforce]: invalid value \"strict\": must be one of privileged, baseline, restricted [pod-security:namespaceLabel]"
    );
    let valid = json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "agents", "labels": {"pss.tollgate.dev/enforce": "baseline", "pss.tollgate.dev/enforce-version": "v1.30"}}});
    admit(&webhook, &valid, "CREATE", "alice").await.unwrap();
}

const CONFIG: &str = r#"
apiVersion: tollgate.dev/v1alpha1
kind: TollgateConfig
policy:
  podSecurity:
    exemptions:
      namespaces: [kube-system, infra]
      usernames: ["system:serviceaccount:infra:installer"]
      runtimeClasses: [kata]
  namespaces:
    typo:
      labels: {pss.tollgate.dev/warn: loud}
    infra:
      labels: {pss.tollgate.dev/warn: loud}
    sandbox:
      labels:
        pss.tollgate.dev/enforce: privileged
        pss.tollgate.dev/warn: restricted
"#;

fn note_count(warnings: &[String]) -> usize {
    warnings
        .iter()
        .filter(|w| w.contains("has an invalid Pod Security label"))
        .count()
}

#[tokio::test]
async fn namespace_labels_and_exemptions_come_from_the_config_file() {
    // The namespace "typo" carries an invalid warn label in the config file:
    // every evaluated request there earns a warning naming it. Exempt
    // requests are not evaluated, so they carry none. This holds whatever
    // the checks find.
    let webhook = Webhook::start_with(Start {
        config: Some(CONFIG),
        ..Start::default()
    });
    let good = |ns: &str| pod("p", ns, restricted_context());

    let admitted = admit(&webhook, &good("typo"), "CREATE", "alice")
        .await
        .unwrap();
    assert_eq!(note_count(&admitted.warnings), 1, "{:?}", admitted.warnings);
    assert!(
        admitted.warnings[0].contains("pss.tollgate.dev/warn]: invalid value \"loud\""),
        "{:?}",
        admitted.warnings
    );

    // Exempt namespace (from the config), exempt user, exempt runtime class.
    let admitted = admit(&webhook, &good("infra"), "CREATE", "alice")
        .await
        .unwrap();
    assert_eq!(note_count(&admitted.warnings), 0);
    let admitted = admit(
        &webhook,
        &good("typo"),
        "CREATE",
        "system:serviceaccount:infra:installer",
    )
    .await
    .unwrap();
    assert_eq!(note_count(&admitted.warnings), 0);
    let mut kata = good("typo");
    kata["spec"]["runtimeClassName"] = json!("kata");
    let admitted = admit(&webhook, &kata, "CREATE", "alice").await.unwrap();
    assert_eq!(note_count(&admitted.warnings), 0);

    let text = webhook.metrics_text();
    for want in [
        r#"tollgate_webhook_exemptions_total{policy="pod-security",reason="namespace"}"#,
        r#"tollgate_webhook_exemptions_total{policy="pod-security",reason="user"}"#,
        r#"tollgate_webhook_exemptions_total{policy="pod-security",reason="runtimeClass"}"#,
    ] {
        assert!(text.contains(want), "{want} missing:\n{text}");
    }
}

#[tokio::test]
async fn warn_mode_namespaces_admit_with_warnings() {
    // Depends on the Pod Security check bodies: "sandbox" enforces
    // privileged but warns at restricted.
    let webhook = Webhook::start_with(Start {
        config: Some(CONFIG),
        ..Start::default()
    });
    let bad = pod("p", "sandbox", json!({"privileged": true}));
    let admitted = admit(&webhook, &bad, "CREATE", "alice").await.unwrap();
    assert!(
        admitted
            .warnings
            .first()
            .is_some_and(|w| w.starts_with("Pod \"p\" in namespace \"sandbox\" has")
                && w.ends_with("(warn mode, not enforced):")),
        "{:?}",
        admitted.warnings
    );
    assert!(
        admitted
            .warnings
            .iter()
            .any(|w| w.contains("securityContext.privileged")),
        "{:?}",
        admitted.warnings
    );
    assert!(admitted.warnings.iter().all(|w| w.chars().count() <= 256));
}

#[tokio::test]
async fn non_workloads_and_ignored_operations_pass_untouched() {
    let webhook = Webhook::start(&[]);
    let config_map = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "team-a"}, "data": {"k": "v"}});
    let admitted = admit(&webhook, &config_map, "CREATE", "alice")
        .await
        .unwrap();
    assert_eq!(admitted.patch, json!([]));
    assert_eq!(admitted.object, config_map);

    // DELETE carries no object; the answer is still a well-formed review.
    let mut request = support_webhook::review(
        &pod("p", "team-a", json!({"privileged": true})),
        "DELETE",
        "alice",
    );
    let old = request["request"]["object"].take();
    request["request"]["oldObject"] = old;
    request["request"]["object"] = Value::Null;
    for path in ["/validate", "/mutate"] {
        let (status, body) = webhook.post(path, &request).await;
        assert_eq!(status, 200);
        let r = check_response(&request, &body);
        assert_eq!(r["allowed"], true, "{path}: {r}");
        assert!(r.get("patch").is_none());
    }
}
