//! End to end: SIGTERM stops the real binary the way Kubernetes expects —
//! readiness off, no new connections, the request in flight answered, then
//! exit 0; and a request that outlives the grace period does not keep the
//! process alive.

// Test helpers may panic: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![cfg(unix)]

mod support_webhook;

use std::time::{Duration, Instant};

use support_webhook::{
    Start, Webhook, http_get, pod, restricted_context, review, tls_connect, wait_for,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn in_flight(webhook: &Webhook, n: u32) -> bool {
    webhook
        .metrics_text()
        .contains(&format!("tollgate_webhook_in_flight_requests {n}\n"))
}

#[tokio::test]
async fn sigterm_drains_the_request_in_flight_then_exits_0() {
    let mut webhook = Webhook::start(&["--shutdown-grace", "20s"]);
    let request = review(&pod("p", "team-a", restricted_context()), "CREATE", "alice");
    let body = serde_json::to_vec(&request).unwrap();
    let (first, rest) = body.split_at(body.len() / 2);

    let mut stream = tls_connect(&webhook).await;
    let head = format!(
        "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(first).await.unwrap();
    stream.flush().await.unwrap();
    wait_for(
        Duration::from_secs(10),
        "the request to be in flight",
        || in_flight(&webhook, 1).then_some(()),
    );

    webhook.sigterm();
    wait_for(Duration::from_secs(10), "readiness to turn off", || {
        (http_get(webhook.metrics, "/readyz").0 == 503).then_some(())
    });
    wait_for(
        Duration::from_secs(10),
        "new connections to be refused",
        || {
            std::net::TcpStream::connect_timeout(&webhook.https, Duration::from_millis(200))
                .is_err()
                .then_some(())
        },
    );

    stream.write_all(rest).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    let response = String::from_utf8(response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    let json: serde_json::Value =
        serde_json::from_str(response.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(json["response"]["uid"], request["request"]["uid"]);

    let status = webhook.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status}");
    assert!(webhook.stdout().contains("tollgate webhook: stopped"));
    assert!(webhook.stderr().contains("all connections drained"));
}

#[tokio::test]
async fn the_grace_period_bounds_shutdown() {
    let mut webhook = Webhook::start_with(Start {
        args: vec!["--shutdown-grace".into(), "1s".into()],
        config: Some(
            "apiVersion: tollgate.dev/v1alpha1\nkind: TollgateConfig\nwebhook:\n  limits: {bodyReadTimeout: 60s}\n",
        ),
        ..Start::default()
    });
    let mut stream = tls_connect(&webhook).await;
    stream
        .write_all(b"POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        .await
        .unwrap();
    stream.flush().await.unwrap();
    wait_for(
        Duration::from_secs(10),
        "the request to be in flight",
        || in_flight(&webhook, 1).then_some(()),
    );
    let started = Instant::now();
    webhook.sigterm();
    let status = webhook.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "exited before the grace period: {took:?}"
    );
    assert!(took < Duration::from_secs(8), "{took:?}");
    assert!(webhook.stderr().contains("grace period over"));
}
