//! The sidecar driven in-process with recorders the test controls:
//! `tollgate_audit::Memory` sees exactly one event per decided action, and a
//! recorder that refuses with `SpoolFull` (fail-closed) makes allowed
//! actions be denied instead.
// Test code: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tollgate_audit::{AuditError, Event, Memory, Outcome, RecordFuture, Recorder};
use tollgate_sidecar::{Config, Sidecar};

async fn upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|_req| async {
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(b"ok"))))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

async fn start(
    recorder: Arc<dyn Recorder>,
    dir: &std::path::Path,
) -> (SocketAddr, CancellationToken) {
    let policy = dir.join("policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: tollgate.dev/v1alpha1\nkind: ActionPolicy\nmetadata: { name: in-process }\nspec:\n  rules:\n    - { name: reads, effect: allow, protocol: http, match: { methods: [GET] } }\n",
    )
    .unwrap();
    let mut config = Config::new(policy);
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.identity.pod = Some("agent-0".into());
    config.identity.namespace = Some("agents".into());
    config.identity.service_account = Some("researcher".into());
    config
        .identity
        .annotations
        .insert("deployscope.dev/tier".into(), "critical".into());
    let sidecar = Sidecar::bind(config, recorder).await.unwrap();
    let addr = sidecar.local_addr();
    let token = CancellationToken::new();
    tokio::spawn(sidecar.serve(token.clone()));
    (addr, token)
}

async fn get(proxy: SocketAddr, method: &str, url: &str) -> (u16, Value) {
    let stream = tokio::net::TcpStream::connect(proxy).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let uri: http::Uri = url.parse().unwrap();
    let req = http::Request::builder()
        .method(method)
        .uri(url)
        .header("host", uri.authority().unwrap().as_str())
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn one_event_per_decision_with_identity() {
    let dir = tempfile::tempdir().unwrap();
    let memory = Memory::default();
    let (proxy, token) = start(Arc::new(memory.clone()), dir.path()).await;
    let up = upstream().await;
    assert_eq!(get(proxy, "GET", &format!("http://{up}/a")).await.0, 200);
    assert_eq!(get(proxy, "POST", &format!("http://{up}/b")).await.0, 403);
    let events = memory.events();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].decision.outcome, Outcome::Allow);
    assert_eq!(events[0].decision.rule.as_deref(), Some("reads"));
    assert_eq!(events[1].decision.outcome, Outcome::Deny);
    let actor = &events[1].actor;
    assert_eq!(
        actor.user.as_deref(),
        Some("system:serviceaccount:agents:researcher")
    );
    assert_eq!(actor.pod.as_deref(), Some("agent-0"));
    // A critical-tier denial pages the on-call.
    assert_eq!(events[1].priority, tollgate_audit::Priority::P0Escalate);
    token.cancel();
}

/// Refuses every event, as a journal whose spool is full in fail-closed
/// mode does.
struct RefusingRecorder;

impl Recorder for RefusingRecorder {
    fn record(&self, _event: Event) -> RecordFuture {
        Box::pin(async { Err(AuditError::SpoolFull("spool at its cap".into())) })
    }
}

#[tokio::test]
async fn a_full_spool_denies_allowed_actions() {
    let dir = tempfile::tempdir().unwrap();
    let (proxy, token) = start(Arc::new(RefusingRecorder), dir.path()).await;
    let up = upstream().await;
    let (status, body) = get(proxy, "GET", &format!("http://{up}/a")).await;
    assert_eq!(status, 503);
    assert_eq!(body["error"]["rule"], "tollgate/audit-unavailable");
    token.cancel();
}
