//! End to end: `tollgate certs issue` for a cluster Service, serving with
//! the issued files, and the embedded default's generate / reuse / renew
//! cycle in the state directory.

// Test helpers may panic: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support_webhook;

use std::process::Command;

use base64::Engine as _;
use support_webhook::{Start, Webhook, binary, pod, restricted_context, review};

fn issue(out: &std::path::Path, dns: &[&str]) -> std::process::Output {
    Command::new(binary())
        .args(["certs", "issue", "--out"])
        .arg(out)
        .arg("--dns")
        .args(dns)
        .output()
        .unwrap()
}

#[tokio::test]
async fn issued_certificates_serve_the_service_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tls");
    let first = issue(
        &out,
        &[
            "tollgate-webhook.security.svc",
            "tollgate-webhook.security.svc.cluster.local",
        ],
    );
    assert!(first.status.success(), "{first:?}");
    let stdout = String::from_utf8(first.stdout).unwrap();
    let ca = std::fs::read(out.join("ca.crt")).unwrap();
    let bundle = base64::engine::general_purpose::STANDARD.encode(&ca);
    assert!(stdout.contains("(generated)"), "{stdout}");
    assert!(
        stdout.contains("kubectl -n security create secret generic tollgate-webhook-tls --type=kubernetes.io/tls"),
        "{stdout}"
    );
    assert!(stdout.contains(&bundle), "the caBundle is printed");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for key in ["ca.key", "tls.key"] {
            let mode = std::fs::metadata(out.join(key))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{key}");
        }
    }

    // Reissuing keeps the CA, so the caBundle in the cluster stays valid.
    let second = issue(&out, &["tollgate-webhook.security.svc"]);
    let stdout = String::from_utf8(second.stdout).unwrap();
    assert!(stdout.contains("(reused)"), "{stdout}");
    assert_eq!(std::fs::read(out.join("ca.crt")).unwrap(), ca);

    let webhook = Webhook::start_with(Start {
        args: vec![
            "--tls-cert-file".into(),
            out.join("tls.crt").display().to_string(),
            "--tls-key-file".into(),
            out.join("tls.key").display().to_string(),
        ],
        ca_pem: Some(ca.clone()),
        ..Start::default()
    });
    let config = tollgate_certs::client_config(&ca).unwrap();
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .resolve("tollgate-webhook.security.svc", webhook.https)
        .build()
        .unwrap();
    let request = review(&pod("p", "team-a", restricted_context()), "CREATE", "alice");
    let response = client
        .post(format!(
            "https://tollgate-webhook.security.svc:{}/validate",
            webhook.https.port()
        ))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&request).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // The issued certificate names the Service, not localhost.
    let localhost = webhook
        .client()
        .post(webhook.url("/validate"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&request).unwrap())
        .send()
        .await;
    assert!(
        localhost.is_err(),
        "localhost is not a name of the issued certificate"
    );
}

#[test]
fn certs_issue_needs_names() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(binary())
        .args(["certs", "issue", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--dns"));
}

#[test]
fn the_embedded_default_generates_then_reuses_then_renews() {
    let dir = tempfile::tempdir().unwrap();
    let first = Webhook::start_with(Start {
        dir: Some(dir),
        ..Start::default()
    });
    let stdout = first.stdout();
    assert!(
        stdout.contains("CA: .tollgate/ca.crt (generated)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("serving certificate: .tollgate/tls.crt and .tollgate/tls.key (generated;"),
        "{stdout}"
    );
    let bundle = base64::engine::general_purpose::STANDARD.encode(&first.ca_pem);
    assert!(stdout.contains(&bundle), "caBundle printed: {stdout}");
    assert!(
        stdout.contains("curl --cacert .tollgate/ca.crt"),
        "{stdout}"
    );
    let dir = {
        let mut first = first;
        first.sigterm();
        assert!(
            first
                .wait_exit(std::time::Duration::from_secs(10))
                .success()
        );
        // Move the directory out before the helper drops.
        std::mem::replace(&mut first.dir, tempfile::tempdir().unwrap())
    };

    let second = Webhook::start_with(Start {
        dir: Some(dir),
        ..Start::default()
    });
    assert!(
        second.stdout().contains("CA: .tollgate/ca.crt (reused)"),
        "{}",
        second.stdout()
    );
    assert!(
        second.stdout().contains("(reused; valid until"),
        "{}",
        second.stdout()
    );
    let dir = {
        let mut second = second;
        second.sigterm();
        assert!(
            second
                .wait_exit(std::time::Duration::from_secs(10))
                .success()
        );
        std::mem::replace(&mut second.dir, tempfile::tempdir().unwrap())
    };

    let third = Webhook::start_with(Start {
        args: vec!["--dns".into(), "tollgate.extra.svc".into()],
        dir: Some(dir),
        ..Start::default()
    });
    let stdout = third.stdout();
    assert!(stdout.contains("CA: .tollgate/ca.crt (reused)"), "{stdout}");
    assert!(
        stdout.contains("renewed: the serving certificate does not cover tollgate.extra.svc"),
        "{stdout}"
    );
}
