//! Token budgets and output caps under concurrency, through the real
//! `tollgate sidecar`: parallel calls against a stub LLM upstream (no model
//! runs here) that holds every call until the test has seen all of them
//! either reach it or be refused, and that reports the worst case each call
//! could use. The budget may be overrun by at most one call's worth.
// Test code: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "support_sidecar/mod.rs"]
mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use support::{Sidecar, eventually, outcome, rule, send};
use tokio::sync::watch;

/// A stub chat-completions upstream. Each call waits for the gate, then
/// reports as used its whole body length (input) plus `max_tokens` × `n`
/// (output): the most the sidecar could have reserved for it.
struct Llm {
    addr: SocketAddr,
    arrived: Arc<AtomicUsize>,
    reported: Arc<AtomicU64>,
    gate: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Llm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Llm {
    async fn start() -> Llm {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let arrived = Arc::new(AtomicUsize::new(0));
        let reported = Arc::new(AtomicU64::new(0));
        let (gate, _) = watch::channel(true);
        let (a, r, g) = (arrived.clone(), reported.clone(), gate.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (a, r, g) = (a.clone(), r.clone(), g.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            let (a, r, mut open) = (a.clone(), r.clone(), g.subscribe());
                            async move {
                                let body: Bytes =
                                    req.into_body().collect().await.unwrap().to_bytes();
                                a.fetch_add(1, Ordering::SeqCst);
                                let _ = open.wait_for(|o| *o).await;
                                let v: Value = serde_json::from_slice(&body).unwrap_or_default();
                                let out = v["max_tokens"].as_u64().unwrap_or(0)
                                    * v["n"].as_u64().unwrap_or(1).max(1);
                                let input = body.len() as u64;
                                r.fetch_add(input + out, Ordering::SeqCst);
                                let resp = json!({
                                    "id": "chatcmpl-stub", "object": "chat.completion",
                                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "length"}],
                                    "usage": {"prompt_tokens": input, "completion_tokens": out, "total_tokens": input + out},
                                });
                                let mut resp =
                                    http::Response::new(Full::new(Bytes::from(resp.to_string())));
                                resp.headers_mut()
                                    .insert("content-type", "application/json".parse().unwrap());
                                Ok::<_, Infallible>(resp)
                            }
                        },
                    );
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Llm {
            addr,
            arrived,
            reported,
            gate,
            task,
        }
    }
}

fn policy(port: u16) -> String {
    format!(
        r#"apiVersion: tollgate.dev/v1alpha1
kind: ActionPolicy
metadata: {{ name: budget }}
spec:
  routes:
    - name: llm
      protocol: llm
      provider: openai
      hosts: ["127.0.0.1:{port}"]
  rules:
    - name: capped
      effect: allow
      protocol: llm
      match: {{ models: ["capped-*"], maxTokens: 100 }}
    - name: budgeted
      effect: allow
      protocol: llm
      match: {{ models: ["budget-*"] }}
      tokenBudget: {{ tokens: 1000, per: 1h }}
"#
    )
}

async fn chat(proxy: SocketAddr, llm: SocketAddr, body: Value) -> u16 {
    let req = http::Request::post(format!("http://{llm}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .unwrap();
    send(proxy, req).await.unwrap().0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_calls_overrun_a_budget_by_at_most_one_call() {
    let llm = Llm::start().await;
    let sidecar = Sidecar::start(Some(&policy(llm.addr.port())), &[]).await;
    let small = |max_tokens: u64| json!({"model": "budget-1", "max_tokens": max_tokens, "messages": [{"role": "user", "content": "hi"}]});
    // 900 of 1000 used.
    let first = small(820);
    assert_eq!(chat(sidecar.addr, llm.addr, first).await, 200);
    let used = llm.reported.load(Ordering::SeqCst);
    assert!((880..=920).contains(&used), "used {used}");

    // Ten parallel calls worth up to ~180 tokens each, held at the upstream
    // until every one of them either reached it or was refused.
    llm.gate.send_replace(false);
    let refused = Arc::new(AtomicUsize::new(0));
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let (proxy, upstream, refused) = (sidecar.addr, llm.addr, refused.clone());
            tokio::spawn(async move {
                let status = chat(proxy, upstream, small(100)).await;
                if status == 429 {
                    refused.fetch_add(1, Ordering::SeqCst);
                }
                status
            })
        })
        .collect();
    eventually(Duration::from_secs(20), "every call decided", || {
        let reached = llm.arrived.load(Ordering::SeqCst) - 1;
        (refused.load(Ordering::SeqCst) + reached >= 10).then_some(())
    })
    .await;
    llm.gate.send_replace(true);
    let mut statuses = Vec::new();
    for h in calls {
        statuses.push(h.await.unwrap());
    }
    let allowed = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(statuses.len(), 10);
    assert_eq!(
        allowed + statuses.iter().filter(|s| **s == 429).count(),
        10,
        "{statuses:?}"
    );
    // 900 used leaves room to start one call; its reservation holds the
    // rest until it settles.
    assert_eq!(allowed, 1, "{statuses:?}\n{}", sidecar.log());
    let total = llm.reported.load(Ordering::SeqCst);
    let one_call = small(100).to_string().len() as u64 + 100;
    assert!(
        total <= 1000 + one_call,
        "the upstream was asked for {total} tokens against a budget of 1000"
    );

    let events = sidecar
        .events_where(11, |e| e["action"]["protocol"] == "llm")
        .await;
    let denied: Vec<_> = events.iter().filter(|e| outcome(e) == "deny").collect();
    assert_eq!(denied.len(), 9);
    assert!(denied.iter().all(|e| rule(e) == "budgeted"));
    // The settled use is what the upstream reported.
    assert_eq!(
        sidecar
            .metric(r#"tollgate_sidecar_limit_used{rule="budgeted",kind="tokens"}"#)
            .await,
        Some(total as f64)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_tokens_bounds_every_generation_of_a_call() {
    let llm = Llm::start().await;
    let sidecar = Sidecar::start(Some(&policy(llm.addr.port())), &[]).await;
    let call = |extra: Value| {
        let mut body =
            json!({"model": "capped-1", "messages": [{"role": "user", "content": "hi"}]});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let cases = [
        (json!({"max_tokens": 100}), 200),
        (json!({"max_tokens": 100, "n": 1}), 200),
        (json!({"max_tokens": 50, "n": 2}), 200),
        (json!({"max_tokens": 100, "n": 128}), 403),
        (json!({"max_tokens": 100, "best_of": 3}), 403),
        (json!({"max_completion_tokens": 60, "n": 2}), 403),
        (json!({"max_output_tokens": 30, "n": 2, "best_of": 2}), 403),
        (json!({"n": 2}), 403),
        (json!({"max_tokens": 100, "n": "2"}), 403),
    ];
    for (extra, want) in cases {
        let status = chat(sidecar.addr, llm.addr, call(extra.clone())).await;
        assert_eq!(status, want, "{extra}");
    }
    assert_eq!(llm.arrived.load(Ordering::SeqCst), 3);
}
