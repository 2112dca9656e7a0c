//! End to end: the config file. A bad one stops the binary before it
//! serves, with the file, field and line named; the shipped example starts.

// Test helpers may panic: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support_webhook;

use std::process::Command;
use std::time::Duration;

use support_webhook::{Start, Webhook, admit, binary, pod, restricted_context, write};

fn webhook_with(config: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "bad.yaml", config);
    let mut child = Command::new(binary())
        .current_dir(dir.path())
        .args([
            "webhook",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(&path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("a bad config must stop the webhook before serving");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn bad_config_files_exit_2_naming_the_problem() {
    let cases = [
        (
            "apiVersion: tollgate.dev/v1alpha1\nkind: TollgateConfig\npolicy:\n  podSecurity:\n    enforce:\n      level: strict\n",
            "privileged, baseline or restricted",
        ),
        (
            "apiVersion: tollgate.dev/v1alpha1\nkind: TollgateConfig\nwebhook:\n  limits:\n    maxBodyBytes: 10\n",
            "unknown field `maxBodyBytes`",
        ),
        (
            "apiVersion: tollgate.dev/v1alpha1\nkind: TollgateConfig\nwebhook:\n  limits:\n    maxJsonDepth: 500\n",
            "webhook.limits.maxJsonDepth: must be between 8 and 120",
        ),
        (
            "apiVersion: v1\nkind: ConfigMap\n",
            "apiVersion: expected \"tollgate.dev/v1alpha1\"",
        ),
        ("{ not yaml", "config file"),
    ];
    for (config, want) in cases {
        let out = webhook_with(config);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{config}: {stderr}");
        assert!(stderr.contains("bad.yaml"), "the file is named: {stderr}");
        assert!(stderr.contains(want), "{want} missing from {stderr}");
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("serving"),
            "nothing was served"
        );
    }
    let missing = Command::new(binary())
        .args(["webhook", "--config", "/nonexistent/tollgate.yaml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/tollgate.yaml"));
}

#[tokio::test]
async fn the_example_config_serves() {
    let example =
        std::fs::read_to_string(support_webhook::root().join("examples/config/tollgate.yaml"))
            .unwrap();
    let webhook = Webhook::start_with(Start {
        config: Some(&example),
        ..Start::default()
    });
    let stdout = webhook.stdout();
    assert!(
        stdout.contains("audit restricted:v1.37; exempt namespaces: kube-system, kube-node-lease"),
        "{stdout}"
    );
    admit(
        &webhook,
        &pod("p", "agents", restricted_context()),
        "CREATE",
        "alice",
    )
    .await
    .unwrap();
}
