//! Requests the HTTP layer refuses before the proxy sees them, sent over
//! raw sockets to the real `tollgate sidecar`: each is answered by hyper
//! (400, 414, 431, or an HTTP/2 GOAWAY) and still becomes an audit event
//! (rule `tollgate/protocol-error`); a flood is recorded as a few events
//! plus a count, so it cannot fill the spool.
// Test code: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "support_sidecar/mod.rs"]
mod support;

use std::time::Duration;

use serde_json::Value;
use support::{Sidecar, eventually, rule};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const POLICY: &str = r#"apiVersion: tollgate.dev/v1alpha1
kind: ActionPolicy
metadata: { name: refusals }
spec:
  rules:
    - name: any-http
      effect: allow
      protocol: http
"#;

/// Writes `bytes` on a fresh connection and reads until the server closes
/// it (or 10 s pass); returns what came back.
async fn raw(addr: std::net::SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(bytes).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    out
}

fn protocol_refusals(events: &[Value]) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| rule(e) == "tollgate/protocol-error")
        .collect()
}

/// Individual events plus the counts in summaries.
fn refusals_counted(events: &[Value]) -> u64 {
    protocol_refusals(events)
        .iter()
        .map(|e| e["action"]["attributes"]["coalesced"].as_u64().unwrap_or(1))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_hyper_refuses_are_recorded() {
    let sidecar = Sidecar::start(Some(POLICY), &[]).await;
    let mut many_headers =
        String::from("GET http://127.0.0.1:9/ HTTP/1.1\r\nHost: 127.0.0.1:9\r\n");
    for n in 0..200 {
        many_headers.push_str(&format!("X-H{n}: v\r\n"));
    }
    many_headers.push_str("\r\n");
    let long_uri = format!(
        "GET http://127.0.0.1:9/{} HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\n",
        "a".repeat(70_000)
    );
    // An HTTP/2 preface, then a SETTINGS frame whose length is not a
    // multiple of 6: a connection error (FRAME_SIZE_ERROR).
    let mut bad_h2 = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    bad_h2.extend_from_slice(&[0, 0, 5, 0x4, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5]);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "transfer-encoding identity",
            b"POST http://127.0.0.1:9/x HTTP/1.1\r\nHost: 127.0.0.1:9\r\nTransfer-Encoding: identity\r\n\r\nabc".to_vec(),
            "HTTP/1.1 400",
        ),
        ("garbage request line", b"GARBAGE\x01\x02 / nothing\r\n\r\n".to_vec(), "HTTP/1.1 400"),
        ("200 headers", many_headers.into_bytes(), "HTTP/1.1 431"),
        ("oversize URI", long_uri.into_bytes(), "HTTP/1.1 414"),
        ("bad HTTP/2 frame", bad_h2, ""),
    ];
    for (seen, (name, bytes, want)) in cases.iter().enumerate() {
        let answer = raw(sidecar.addr, bytes).await;
        let head = String::from_utf8_lossy(&answer);
        assert!(head.starts_with(want), "{name}: {head:?}");
        // One at a time, so each is recorded on its own.
        eventually(Duration::from_secs(10), name, || {
            (protocol_refusals(&sidecar.events()).len() > seen).then_some(())
        })
        .await;
    }
    let events = sidecar.events();
    let refusals = protocol_refusals(&events);
    assert_eq!(refusals.len(), cases.len(), "{refusals:?}");
    let kinds: Vec<&str> = refusals
        .iter()
        .map(|e| e["action"]["attributes"]["refusal"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "malformed-request",
            "malformed-request",
            "headers-too-large",
            "uri-too-long",
            "http2-protocol-error"
        ]
    );
    for e in &refusals {
        assert_eq!(e["decision"]["outcome"], "deny");
        assert!(
            e["decision"]["reason"]
                .as_str()
                .unwrap()
                .contains("refused by the HTTP layer")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bad_requests_is_coalesced_not_recorded_one_by_one() {
    let sidecar = Sidecar::start(Some(POLICY), &[]).await;
    let started = std::time::Instant::now();
    let floods: Vec<_> = (0..60)
        .map(|_| {
            let addr = sidecar.addr;
            tokio::spawn(async move { raw(addr, b"GARBAGE\r\n\r\n").await })
        })
        .collect();
    for f in floods {
        f.await.unwrap();
    }
    let elapsed = started.elapsed();
    // Every refusal is accounted for, individually or in a count ...
    let events = eventually(Duration::from_secs(10), "60 refusals counted", || {
        let events = sidecar.events();
        (refusals_counted(&events) >= 60).then_some(events)
    })
    .await;
    assert_eq!(refusals_counted(&events), 60);
    // ... but only a burst per second was recorded one by one.
    let windows = elapsed.as_secs() + 2;
    let single = protocol_refusals(&events)
        .iter()
        .filter(|e| e["action"]["attributes"]["coalesced"].is_null())
        .count() as u64;
    assert!(single <= 5 * windows, "{single} events in {elapsed:?}");
    assert!(
        protocol_refusals(&events)
            .iter()
            .any(|e| e["action"]["attributes"]["coalesced"].as_u64() > Some(0))
    );
}
