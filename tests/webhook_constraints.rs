//! `tollgate webhook --constraints`: Gatekeeper constraints enforced on
//! admission beside the built-in sets, reloaded when their files change,
//! and a broken set never replaces a working one.
// Test code: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "support_webhook/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::{Start, Webhook, pod, restricted_context, review, root};

#[tokio::test]
async fn constraints_are_enforced_and_hot_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let gk = dir.path().join("gatekeeper");
    std::fs::create_dir(&gk).unwrap();
    let library = root().join("policies/gatekeeper/image-digests");
    std::fs::copy(library.join("template.yaml"), gk.join("template.yaml")).unwrap();
    let constraint = gk.join("constraint.yaml");
    std::fs::copy(
        library.join("samples/pinned-images/constraint.yaml"),
        &constraint,
    )
    .unwrap();
    let webhook = Webhook::start_with(Start {
        args: vec![
            "--constraints".into(),
            gk.display().to_string(),
            "--constraints-poll".into(),
            "100ms".into(),
        ],
        dir: Some(dir),
        ..Start::default()
    });
    assert!(
        webhook.stdout().contains("Gatekeeper constraints: 1"),
        "{}",
        webhook.stdout()
    );

    // Compliant with Pod Security and ownership; the image is tagged, not
    // pinned by digest.
    let tagged = pod("agent", "team-a", restricted_context());
    let request = review(&tagged, "CREATE", "alice");
    let (_, answer) = webhook.post("/validate", &request).await;
    assert_eq!(answer["response"]["allowed"], false, "{answer}");
    let message = answer["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("[constraints:K8sImageDigests/pinned-images]"),
        "{message}"
    );

    // A broken edit is refused; the constraint stays in force.
    std::fs::write(&constraint, "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sImageDigests\nmetadata: {name: pinned-images}\nspec:\n  parameters: {exemptImages: 7}\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !webhook.stderr().contains("constraints refused") {
        assert!(
            Instant::now() < deadline,
            "no reload error logged:\n{}",
            webhook.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, answer) = webhook.post("/validate", &request).await;
    assert_eq!(answer["response"]["allowed"], false, "{answer}");

    // Exempting the image through the constraint's parameters takes effect
    // without a restart.
    std::fs::write(
        &constraint,
        "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sImageDigests\nmetadata: {name: pinned-images}\nspec:\n  match: {kinds: [{apiGroups: [\"\"], kinds: [Pod]}]}\n  parameters: {exemptImages: [\"registry.example.com/*\"]}\n",
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, answer) = webhook.post("/validate", &request).await;
        if answer["response"]["allowed"] == json!(true) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the reload never took effect: {answer}\n{}",
            webhook.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
