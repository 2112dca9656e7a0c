//! End to end: the serving certificate is rotated the way the kubelet
//! updates a mounted Secret (a new timestamped directory, then an atomic
//! swap of the `..data` symlink) while clients hammer the webhook. Every
//! request succeeds, new handshakes see the new certificate, and a broken
//! rotation keeps the previous certificate serving.

// Test helpers may panic: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![cfg(unix)]

mod support_webhook;

use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support_webhook::{Start, Webhook, client_for, pod, restricted_context, review};
use tollgate_certs::{Authority, CertifiedPair};

fn publish(dir: &Path, version: &str, cert: &str, key: &str) {
    let versioned = dir.join(format!("..{version}"));
    std::fs::create_dir(&versioned).unwrap();
    std::fs::write(versioned.join("tls.crt"), cert).unwrap();
    std::fs::write(versioned.join("tls.key"), key).unwrap();
    let tmp = dir.join("..data_tmp");
    symlink(format!("..{version}"), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for f in ["tls.crt", "tls.key"] {
        if std::fs::symlink_metadata(dir.join(f)).is_err() {
            symlink(format!("..data/{f}"), dir.join(f)).unwrap();
        }
    }
}

fn leaf(ca: &Authority) -> CertifiedPair {
    ca.issue_server(
        &["localhost".into(), "127.0.0.1".into()],
        time::Duration::days(1),
    )
    .unwrap()
}

fn der(pem: &str) -> Vec<u8> {
    tollgate_certs::pem::parse_certs(pem.as_bytes(), "leaf").unwrap()[0]
        .as_ref()
        .to_vec()
}

/// The certificate a brand-new connection is served.
async fn served(webhook: &Webhook) -> Vec<u8> {
    let client = client_for(&webhook.ca_pem, &[b"http/1.1"]);
    let request = review(
        &pod("probe", "team-a", restricted_context()),
        "CREATE",
        "alice",
    );
    let response = client
        .post(webhook.url("/validate"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&request).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .unwrap()
        .to_vec()
}

async fn wait_served(webhook: &Webhook, want: &[u8], what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while served(webhook).await != want {
        assert!(Instant::now() < deadline, "never served {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_under_load_fails_no_request() {
    let ca = Authority::generate("rotation test CA", time::Duration::days(1)).unwrap();
    let certs = tempfile::tempdir().unwrap();
    let (one, two, three) = (leaf(&ca), leaf(&ca), leaf(&ca));
    publish(certs.path(), "v1", &one.cert_pem, &one.key_pem);
    let cert_file = certs.path().join("tls.crt").display().to_string();
    let key_file = certs.path().join("tls.key").display().to_string();
    let webhook = Arc::new(Webhook::start_with(Start {
        args: vec![
            "--tls-cert-file".into(),
            cert_file,
            "--tls-key-file".into(),
            key_file,
        ],
        // A long poll interval: the file watcher must see the swaps.
        config: Some(
            "apiVersion: tollgate.dev/v1alpha1\nkind: TollgateConfig\nwebhook:\n  tls:\n    reloadInterval: 1h\n",
        ),
        ca_pem: Some(ca.cert_pem().as_bytes().to_vec()),
        ..Start::default()
    }));
    assert!(webhook.stdout().contains("reloaded when they change"));
    assert_eq!(served(&webhook).await, der(&one.cert_pem));

    // Clients: half keep their connection, half handshake every time.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for worker in 0..4 {
        let (webhook, stop, ok, failed) = (
            Arc::clone(&webhook),
            Arc::clone(&stop),
            Arc::clone(&ok),
            Arc::clone(&failed),
        );
        tasks.push(tokio::spawn(async move {
            let keep = client_for(&webhook.ca_pem, &[b"h2", b"http/1.1"]);
            while !stop.load(Ordering::SeqCst) {
                let client = if worker % 2 == 0 {
                    keep.clone()
                } else {
                    client_for(&webhook.ca_pem, &[b"http/1.1"])
                };
                let request = review(
                    &pod("load", "team-a", restricted_context()),
                    "CREATE",
                    "alice",
                );
                let result = client
                    .post(webhook.url("/validate"))
                    .header("content-type", "application/json")
                    .body(serde_json::to_vec(&request).unwrap())
                    .send()
                    .await;
                match result {
                    Ok(r) if r.status() == 200 => {
                        let body: serde_json::Value = r.json().await.unwrap();
                        assert_eq!(body["response"]["uid"], request["request"]["uid"]);
                        ok.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(r) => {
                        eprintln!("status {}", r.status());
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(e) => {
                        eprintln!("request failed: {e:?}");
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        }));
    }

    tokio::time::sleep(Duration::from_millis(300)).await;
    publish(certs.path(), "v2", &two.cert_pem, &two.key_pem);
    wait_served(&webhook, &der(&two.cert_pem), "the second certificate").await;

    // A broken rotation: the key does not belong to the certificate.
    publish(certs.path(), "v3", &three.cert_pem, &one.key_pem);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !webhook
        .metrics_text()
        .contains(r#"tollgate_webhook_cert_reloads_total{result="failure"} 1"#)
    {
        assert!(Instant::now() < deadline, "failure never counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(served(&webhook).await, der(&two.cert_pem), "old pair kept");

    publish(certs.path(), "v4", &three.cert_pem, &three.key_pem);
    wait_served(&webhook, &der(&three.cert_pem), "the third certificate").await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    assert_eq!(failed, 0, "{failed} of {} requests failed", ok + failed);
    assert!(ok > 20, "only {ok} requests were made");
    let metrics = webhook.metrics_text();
    assert!(
        metrics.contains(r#"tollgate_webhook_cert_reloads_total{result="success"} 2"#),
        "{metrics}"
    );
    assert!(metrics.contains("tollgate_webhook_cert_expiry_timestamp_seconds "));
}
