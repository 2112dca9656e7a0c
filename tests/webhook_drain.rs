//! End to end, with raw sockets: shutdown answers what clients already
//! sent on idle keep-alive connections, and idle sockets that never start a
//! TLS handshake cannot make new clients wait.

// Test helpers may panic: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![cfg(unix)]

mod support_webhook;

use std::time::Duration;

use support_webhook::{Webhook, http_get, pod, restricted_context, review, tls_connect, wait_for};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn request_bytes() -> Vec<u8> {
    let request = review(&pod("p", "team-a", restricted_context()), "CREATE", "alice");
    let body = serde_json::to_vec(&request).unwrap();
    let mut out = format!(
        "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

/// Reads one HTTP/1.1 response with a Content-Length body; returns its head
/// and body.
async fn read_response(
    stream: &mut tokio_rustls::client::TlsStream<TcpStream>,
) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap();
            while buf.len() < end + 4 + length {
                let n = stream.read(&mut chunk).await.unwrap();
                assert!(n > 0, "connection closed inside a response");
                buf.extend_from_slice(&chunk[..n]);
            }
            return (head, buf[end + 4..end + 4 + length].to_vec());
        }
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(
            n > 0,
            "connection closed with no response; read {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_written_on_an_idle_keep_alive_connection_after_sigterm_is_answered() {
    let mut webhook = Webhook::start(&["--shutdown-grace", "5s"]);
    let mut stream = tls_connect(&webhook).await;
    stream.write_all(&request_bytes()).await.unwrap();
    let (head, _) = read_response(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );

    // The connection is idle and kept alive; shutdown begins.
    webhook.sigterm();
    wait_for(Duration::from_secs(10), "readiness to turn off", || {
        (http_get(webhook.metrics, "/readyz").0 == 503).then_some(())
    });
    // kube-apiserver reuses the connection it holds.
    stream.write_all(&request_bytes()).await.unwrap();
    let (head, body) = tokio::time::timeout(Duration::from_secs(10), read_response(&mut stream))
        .await
        .expect("an answer within the grace period");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["response"]["allowed"], true, "{json}");

    let status = webhook.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_that_never_start_tls_do_not_make_new_clients_wait() {
    let webhook = Webhook::start(&[]);
    // More idle sockets than the default maxConnections (1024), none
    // sending a ClientHello.
    let mut idle = Vec::new();
    for _ in 0..1100 {
        idle.push(TcpStream::connect(webhook.https).await.unwrap());
    }
    // A real client is answered well within kube-apiserver's timeout for
    // the chart's webhooks (5 s).
    let answered = tokio::time::timeout(Duration::from_secs(3), async {
        let mut stream = tls_connect(&webhook).await;
        stream.write_all(&request_bytes()).await.unwrap();
        read_response(&mut stream).await
    })
    .await
    .expect("a new client answered while idle sockets fill the server");
    assert!(answered.0.starts_with("HTTP/1.1 200"), "{}", answered.0);
    assert!(
        webhook
            .metrics_text()
            .contains("reason=\"shed_before_handshake\""),
        "{}",
        webhook.metrics_text()
    );
    drop(idle);
}
