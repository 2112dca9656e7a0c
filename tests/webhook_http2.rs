//! End to end with a real HTTP/2 client (curl, as kube-apiserver speaks
//! HTTP/2 to webhooks): requests refused before their body matters (wrong
//! content type, unknown path, body over the limit) get their documented
//! JSON `Status` answer, not a reset stream.

// Test helpers may panic: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support_webhook;

use std::process::Command;

use serde_json::Value;
use support_webhook::Webhook;

/// POSTs `body` with curl over HTTP/2 (prior knowledge refused: ALPN
/// `h2` over TLS, as kube-apiserver does); returns curl's exit status, the
/// HTTP version, the status code and the JSON body.
fn curl_h2(
    webhook: &Webhook,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> (i32, String, u16, Value) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("body");
    let output = dir.path().join("answer");
    std::fs::write(&input, body).unwrap();
    let out = Command::new("curl")
        .args([
            "--silent",
            "--show-error",
            "--insecure",
            "--http2",
            "--max-time",
            "20",
        ])
        .args(["--header", &format!("Content-Type: {content_type}")])
        .arg("--data-binary")
        .arg(format!("@{}", input.display()))
        .arg("--output")
        .arg(&output)
        .args(["--write-out", "%{http_version} %{http_code}"])
        .arg(webhook.url(path))
        .output()
        .expect("run curl");
    let written = String::from_utf8_lossy(&out.stdout).into_owned();
    let (version, code) = written.split_once(' ').unwrap_or(("", "0"));
    let answer = std::fs::read(&output).unwrap_or_default();
    assert!(
        out.status.code() == Some(0),
        "curl failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.code().unwrap_or(-1),
        version.to_owned(),
        code.parse().unwrap_or(0),
        serde_json::from_slice(&answer).unwrap_or(Value::Null),
    )
}

#[test]
fn early_refusals_reach_http2_clients_intact() {
    // Default limits (8 MiB bodies): the bodies are larger than HTTP/2's
    // flow-control windows, so the client is still sending when the answer
    // is ready, as in the cases seen with curl.
    let webhook = Webhook::start(&[]);
    let json = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec();
    let big = vec![b' '; 5 * 1024 * 1024];
    let too_big = vec![b' '; 9 * 1024 * 1024];
    let cases: [(&str, &str, Vec<u8>, u16, &str); 4] = [
        (
            "/validate",
            "text/plain",
            big.clone(),
            415,
            "UnsupportedMediaType",
        ),
        ("/nope", "application/json", big.clone(), 404, "NotFound"),
        (
            "/validate",
            "application/json",
            too_big,
            413,
            "RequestEntityTooLarge",
        ),
        ("/validate", "application/json", json, 400, "BadRequest"),
    ];
    for (path, content_type, body, code, reason) in cases {
        let (_, version, status, answer) = curl_h2(&webhook, path, content_type, &body);
        assert_eq!(version, "2", "{path} {content_type}: spoke HTTP/{version}");
        assert_eq!(status, code, "{path} {content_type}: {answer}");
        assert_eq!(answer["kind"], "Status", "{answer}");
        assert_eq!(answer["reason"], reason, "{answer}");
    }
}
