//! End to end: every kind of bad input gets a clear answer (a JSON `Status`
//! with the right HTTP code, or a closed connection for clients that stall
//! before sending a request) and the real binary keeps serving. Limits are
//! configured small so each is crossed quickly.

// Test helpers may panic: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support_webhook;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support_webhook::{Start, Webhook, client_for, pod, restricted_context, review};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CONFIG: &str = r#"
apiVersion: tollgate.dev/v1alpha1
kind: TollgateConfig
webhook:
  limits:
    maxRequestBytes: 65536
    maxJsonDepth: 32
    headerReadTimeout: 1s
    bodyReadTimeout: 1s
    tlsHandshakeTimeout: 1s
"#;

fn start() -> Webhook {
    Webhook::start_with(Start {
        config: Some(CONFIG),
        ..Start::default()
    })
}

async fn raw_post(
    webhook: &Webhook,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let response = webhook
        .client()
        .post(webhook.url(path))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn still_serving(webhook: &Webhook) {
    let request = review(
        &pod("ok", "team-a", restricted_context()),
        "CREATE",
        "alice",
    );
    let (status, body) = webhook.post("/validate", &request).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["response"]["uid"], request["request"]["uid"]);
}

fn good_review() -> Value {
    review(&pod("p", "team-a", restricted_context()), "CREATE", "alice")
}

#[tokio::test]
async fn malformed_reviews_get_400_with_a_status_body() {
    let webhook = start();
    let mut no_uid = good_review();
    no_uid["request"].as_object_mut().unwrap().remove("uid");
    let mut wrong_version = good_review();
    wrong_version["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let mut wrong_kind = good_review();
    wrong_kind["kind"] = json!("AdmissionReviewList");
    let mut no_request = good_review();
    no_request.as_object_mut().unwrap().remove("request");
    let mut bad_object = good_review();
    bad_object["request"]["object"]["spec"]["containers"] = json!("nope");
    let deep = format!("{}1{}", "[".repeat(40), "]".repeat(40));
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            b"{\"apiVersion\": ".to_vec(),
            "request body is not valid JSON",
        ),
        (
            serde_json::to_vec(&no_uid).unwrap(),
            "request.uid is missing",
        ),
        (
            serde_json::to_vec(&wrong_version).unwrap(),
            "admissionReviewVersions",
        ),
        (
            serde_json::to_vec(&wrong_kind).unwrap(),
            "send an AdmissionReview",
        ),
        (serde_json::to_vec(&no_request).unwrap(), "has no request"),
        (deep.into_bytes(), "deeper than 32 levels"),
    ];
    for (body, want) in cases {
        let (status, json) = raw_post(&webhook, "/validate", "application/json", body).await;
        assert_eq!(status, 400, "{want}: {json}");
        assert_eq!(json["kind"], "Status");
        assert_eq!(json["reason"], "BadRequest");
        assert_eq!(json["code"], 400);
        let message = json["message"].as_str().unwrap();
        assert!(message.contains(want), "{message} should mention {want}");
    }
    // An object kube-apiserver would never send is refused in the review.
    let (status, json) = webhook.post("/validate", &bad_object).await;
    assert_eq!(status, 200);
    assert_eq!(json["response"]["allowed"], false);
    assert_eq!(json["response"]["status"]["code"], 400);
    still_serving(&webhook).await;
}

#[tokio::test]
async fn wrong_paths_methods_and_content_types() {
    let webhook = start();
    let client = webhook.client();
    let response = client.get(webhook.url("/validate")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 405);
    assert_eq!(response.headers()["allow"], "POST");
    let (status, json) = raw_post(&webhook, "/admit", "application/json", b"{}".to_vec()).await;
    assert_eq!((status, json["reason"].as_str()), (404, Some("NotFound")));
    let body = serde_json::to_vec(&good_review()).unwrap();
    let (status, json) = raw_post(&webhook, "/mutate", "application/yaml", body).await;
    assert_eq!(
        (status, json["reason"].as_str()),
        (415, Some("UnsupportedMediaType"))
    );
    still_serving(&webhook).await;
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let webhook = start();
    let mut big = good_review();
    big["request"]["object"]["metadata"]["annotations"] = json!({"x": "y".repeat(100_000)});
    let (status, json) = raw_post(
        &webhook,
        "/validate",
        "application/json",
        serde_json::to_vec(&big).unwrap(),
    )
    .await;
    assert_eq!(status, 413, "{json}");
    assert!(json["message"].as_str().unwrap().contains("65536 bytes"));
    still_serving(&webhook).await;
    assert!(
        webhook
            .metrics_text()
            .contains(r#"tollgate_webhook_errors_total{reason="body_too_large"} 1"#)
    );
}

#[tokio::test]
async fn plain_http_on_the_tls_port_gets_a_json_400() {
    let webhook = start();
    let mut stream = TcpStream::connect(webhook.https).await.unwrap();
    stream
        .write_all(b"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        .await
        .unwrap();
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut response))
        .await
        .unwrap()
        .unwrap();
    assert!(
        response.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{response}"
    );
    let body: Value = serde_json::from_str(response.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert!(body["message"].as_str().unwrap().contains("HTTPS only"));

    // Garbage that starts like a TLS record: the handshake fails, the
    // connection closes.
    let mut stream = TcpStream::connect(webhook.https).await.unwrap();
    stream
        .write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5])
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf))
        .await
        .unwrap();
    still_serving(&webhook).await;
    let metrics = webhook.metrics_text();
    assert!(
        metrics.contains(r#"errors_total{reason="plain_http"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"errors_total{reason="tls_handshake"} 1"#),
        "{metrics}"
    );
}

async fn tls_connect(webhook: &Webhook) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut config = tollgate_certs::client_config(&webhook.ca_pem).unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(webhook.https).await.unwrap();
    connector
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap()
}

/// Reads until the server closes; returns what was read and how long it
/// took.
async fn read_until_closed<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> (String, Duration) {
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf))
        .await
        .expect("the server must close a stalled connection");
    (
        String::from_utf8_lossy(&buf).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test]
async fn stalled_clients_are_cut_off() {
    let webhook = start();

    // Connects and never starts the TLS handshake.
    let mut idle = TcpStream::connect(webhook.https).await.unwrap();
    // Starts a request and never finishes its headers.
    let mut slow_headers = tls_connect(&webhook).await;
    slow_headers
        .write_all(b"POST /validate HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    // Sends headers and part of the body.
    let mut slow_body = tls_connect(&webhook).await;
    slow_body
        .write_all(
            b"POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"apiVersion\":",
        )
        .await
        .unwrap();

    let (out, waited) = read_until_closed(&mut idle).await;
    assert!(out.is_empty());
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    let (out, _) = read_until_closed(&mut slow_headers).await;
    assert!(out.is_empty() || out.starts_with("HTTP/1.1 408"), "{out}");
    let (out, _) = read_until_closed(&mut slow_body).await;
    assert!(out.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{out}");
    assert!(out.contains("bodyReadTimeout"), "{out}");

    still_serving(&webhook).await;
    let metrics = webhook.metrics_text();
    for reason in ["tls_handshake_timeout", "header_timeout", "body_timeout"] {
        assert!(
            metrics.contains(&format!(r#"errors_total{{reason="{reason}"}} 1"#)),
            "{reason}:\n{metrics}"
        );
    }
}

#[tokio::test]
async fn http2_and_http1_by_alpn() {
    let webhook = start();
    for (alpn, want) in [
        (&[&b"h2"[..], b"http/1.1"][..], reqwest::Version::HTTP_2),
        (&[&b"http/1.1"[..]][..], reqwest::Version::HTTP_11),
    ] {
        let client = client_for(&webhook.ca_pem, alpn);
        let request = good_review();
        let response = client
            .post(webhook.url("/validate"))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&request).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(response.version(), want);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["response"]["uid"], request["request"]["uid"]);
    }
}

#[tokio::test]
async fn only_tls_1_2_and_1_3_are_spoken() {
    let webhook = start();
    let connect = |version: &str| {
        std::process::Command::new("openssl")
            .args([
                "s_client",
                version,
                "-connect",
                &webhook.https.to_string(),
                "-servername",
                "localhost",
                "-cipher",
                "DEFAULT:@SECLEVEL=0",
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("openssl is needed for this test (run `make test-deps`)")
    };
    for refused in ["-tls1", "-tls1_1"] {
        let out = connect(refused);
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{refused} must be refused:\n{text}");
    }
    for accepted in ["-tls1_2", "-tls1_3"] {
        let out = connect(accepted);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            text.contains("Verification") || text.contains("Cipher is"),
            "{accepted}:\n{text}"
        );
        assert!(!text.contains("Cipher is (NONE)"), "{accepted}:\n{text}");
    }
    still_serving(&webhook).await;
}
