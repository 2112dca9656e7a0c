//! The adversarial corpus: one YAML file per family under `adversarial/`,
//! each a policy and many spellings of requests with the decision each must
//! get, run through the sidecar in-process against a real loopback upstream
//! that logs every request it executes.
//!
//! Placeholders in policies and requests: `{up}` is the upstream's
//! `127.0.0.1:port`, `{port}` its port, `{sc}` the sidecar's address.
//! A case expects `allow` (the upstream executed exactly `upstream`, the
//! path and query it received) or `deny` (refused with `status` and `rule`,
//! and the upstream executed nothing). `event` names attributes the audit
//! event of the request must carry.
// Test code: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::Deserialize;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tollgate_audit::Memory;
use tollgate_sidecar::{Config, Sidecar};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Family {
    #[allow(dead_code)]
    description: String,
    /// The `spec` of the ActionPolicy.
    spec: String,
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Case {
    /// The raw request (CRLF line ends are added to bare `\n`).
    send: String,
    expect: Expect,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    rule: Option<String>,
    /// What the upstream must have received (path and query).
    #[serde(default)]
    upstream: Option<String>,
    /// Attributes the request's (last) audit event must carry.
    #[serde(default)]
    event: Option<serde_json::Map<String, Value>>,
}

#[derive(Debug, Deserialize, PartialEq, Eq, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Expect {
    Allow,
    Deny,
}

/// A loopback upstream that logs the request target and Host of every
/// request it executes.
async fn upstream() -> (SocketAddr, Arc<Mutex<Vec<(String, String)>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&log);
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: hyper::Request<_>| {
                    let host = req
                        .headers()
                        .get("host")
                        .and_then(|h| h.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    let target = req
                        .uri()
                        .path_and_query()
                        .map(|p| p.as_str().to_owned())
                        .unwrap_or_default();
                    seen.lock().unwrap().push((target, host));
                    async {
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                            b"{\"executed\":true}",
                        ))))
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, log)
}

/// Sends raw bytes, reads the answer until the connection closes.
async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        while !complete(&out) {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `buf` holds one complete response (headers and, by
/// `Content-Length`, the body).
fn complete(buf: &[u8]) -> bool {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    buf.len() >= end + 4 + len
}

fn fill(text: &str, up: SocketAddr, sc: SocketAddr) -> String {
    text.replace("{up}", &up.to_string())
        .replace("{port}", &up.port().to_string())
        .replace("{sc}", &sc.to_string())
}

async fn run(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let family: Family = yaml_serde::from_str(&text)
        .unwrap_or_else(|e| panic!("{}: bad corpus file: {e}", path.display()));
    let (up, log) = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    let spec = fill(&family.spec, up, up);
    let indented: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    std::fs::write(
        &policy,
        format!("apiVersion: tollgate.dev/v1alpha1\nkind: ActionPolicy\nmetadata: {{ name: adversarial }}\nspec:\n{indented}"),
    )
    .unwrap();
    let mut config = Config::new(policy);
    config.listen = "127.0.0.1:0".parse().unwrap();
    let memory = Memory::default();
    let sidecar = Sidecar::bind(config, Arc::new(memory.clone()))
        .await
        .unwrap();
    let sc = sidecar.local_addr();
    let token = CancellationToken::new();
    tokio::spawn(sidecar.serve(token.clone()));

    let mut failures = Vec::new();
    for (i, case) in family.cases.iter().enumerate() {
        let send = fill(&case.send, up, sc)
            .replace("\r\n", "\n")
            .replace('\n', "\r\n");
        let before = log.lock().unwrap().len();
        let events_before = memory.events().len();
        let answer = raw(sc, send.as_bytes()).await;
        let executed: Vec<(String, String)> = log.lock().unwrap()[before..].to_vec();
        let first = send.lines().next().unwrap_or_default().to_owned();
        let mut fail = |why: String| {
            failures.push(format!(
                "{} case {i} ({first:?}): {why}\n  answer: {answer}",
                path.display()
            ));
        };
        let status: u16 = answer.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        match case.expect {
            Expect::Deny => {
                if !executed.is_empty() {
                    fail(format!("denied, but the upstream executed {executed:?}"));
                }
                // JSON-RPC refusals are HTTP 200 with error -32040.
                if status < 400 && !answer.contains("-32040") {
                    fail(format!("expected a refusal, got status {status}"));
                }
            }
            Expect::Allow => {
                if status != 200 {
                    fail(format!("expected 200 from the upstream, got {status}"));
                }
                match (executed.as_slice(), &case.upstream) {
                    ([(target, host)], Some(want)) => {
                        if target != want {
                            fail(format!(
                                "the upstream executed {target:?}, expected {want:?}"
                            ));
                        }
                        if *host != up.to_string() {
                            fail(format!("the upstream saw Host {host:?}, expected {up}"));
                        }
                    }
                    ([_], None) => {}
                    (other, _) => fail(format!("expected one upstream request, got {other:?}")),
                }
            }
        }
        if let Some(want) = case.status
            && status != want
        {
            fail(format!("status {status}, expected {want}"));
        }
        if let Some(rule) = &case.rule
            && !answer.contains(&format!("\"rule\":\"{rule}\""))
        {
            fail(format!("the answer does not name rule {rule:?}"));
        }
        let events = memory.events();
        if events.len() <= events_before {
            fail("no audit event was recorded".into());
        }
        if let Some(want) = &case.event {
            let Some(event) = events.last() else { continue };
            for (k, v) in want {
                let v = match v {
                    Value::String(s) => Value::String(fill(s, up, sc)),
                    other => other.clone(),
                };
                if event.action.attributes.get(k) != Some(&v) {
                    fail(format!(
                        "the audit event has {k} = {:?}, expected {v}",
                        event.action.attributes.get(k)
                    ));
                }
            }
        }
    }
    token.cancel();
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_spelling_gets_the_decision_of_its_canonical_form() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/adversarial");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "the corpus is missing: {files:?}");
    let mut failures = Vec::new();
    let mut cases = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        cases += text.matches("- send:").count();
        failures.extend(run(file).await);
    }
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
