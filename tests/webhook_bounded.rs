//! End to end: one request cannot take the webhook's time and memory. Pods
//! with absurd container counts are refused before they are built, denial
//! messages list a bounded number of violations, and the process's peak
//! memory stays small (read from `/proc/<pid>/status`).

// Test helpers may panic: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support_webhook;

use std::time::Duration;

use serde_json::{Value, json};
use support_webhook::{Webhook, review};

/// The webhook's peak resident memory in bytes (`VmHWM`).
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/<pid>/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap();
    kib * 1024
}

fn pod_with(containers: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "many", "namespace": "team-a"},
        "spec": {"containers": containers}
    })
}

/// POSTs raw bytes and returns the status, the body's size and the body,
/// failing when no answer comes within `within`.
async fn post_within(webhook: &Webhook, body: Vec<u8>, within: Duration) -> (u16, usize, Value) {
    let send = async {
        let response = webhook
            .client()
            .post(webhook.url("/validate"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap();
        (
            status,
            bytes.len(),
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    };
    tokio::time::timeout(within, send)
        .await
        .expect("the webhook answered within the deadline")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_container_counts_get_a_small_answer_fast_and_little_memory() {
    let webhook = Webhook::start(&[]);
    for count in [100_000usize, 1_000_000] {
        let containers = Value::Array(vec![json!({}); count]);
        let body = serde_json::to_vec(&review(&pod_with(containers), "CREATE", "mallory")).unwrap();
        assert!(body.len() < 8 * 1024 * 1024, "under the body limit");
        let (status, size, answer) = post_within(&webhook, body, Duration::from_secs(20)).await;
        assert_eq!(status, 200, "{answer}");
        let response = &answer["response"];
        assert_eq!(response["allowed"], false, "{answer}");
        assert_eq!(response["status"]["code"], 400, "{answer}");
        let message = response["status"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("holds {count} containers")),
            "{message}"
        );
        assert!(size < 4096, "{count} containers: a {size}-byte answer");
    }
    let peak = peak_rss(webhook.pid());
    assert!(
        peak < 256 * 1024 * 1024,
        "peak RSS {} MiB",
        peak / 1024 / 1024
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denial_of_many_violations_lists_the_first_and_counts_the_rest() {
    let webhook = Webhook::start(&[]);
    // Within the container limit, each container breaking several
    // restricted checks.
    let containers: Vec<Value> = (0..1000)
        .map(|i| json!({"name": format!("c{i}"), "image": "busybox"}))
        .collect();
    let body = serde_json::to_vec(&review(
        &pod_with(Value::Array(containers)),
        "CREATE",
        "mallory",
    ))
    .unwrap();
    let (status, size, answer) = post_within(&webhook, body, Duration::from_secs(20)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["response"]["allowed"], false, "{answer}");
    let message = answer["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.lines().count() <= 52,
        "{} lines",
        message.lines().count()
    );
    assert!(message.contains(" more; run `tollgate check`"), "{message}");
    assert!(size < 64 * 1024, "a {size}-byte answer");
}
