//! A stub upstream on loopback (plain or TLS) that records what reached it:
//! an echo endpoint, a 1 KiB document, an SSE stream released by the test,
//! a slow endpoint, a WebSocket-style echo upgrade, a JSON-RPC responder and
//! an OpenAI-style chat completions endpoint that reports usage (a stub: no
//! model runs here).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::sync::Notify;

/// One request the upstream received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The method.
    pub method: String,
    /// The path and query.
    pub uri: String,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

/// A running stub upstream.
pub struct Upstream {
    /// Its address.
    pub addr: SocketAddr,
    /// Requests received.
    pub count: Arc<AtomicUsize>,
    /// What they were.
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// Releases the second event of `/sse`.
    pub release: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    /// Starts a plain-HTTP upstream.
    pub async fn start() -> Upstream {
        Self::start_with(None).await
    }

    /// Starts an upstream, TLS when `tls` is given.
    pub async fn start_with(tls: Option<Arc<rustls::ServerConfig>>) -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let release = Arc::new(Notify::new());
        let state = State {
            count: count.clone(),
            seen: seen.clone(),
            release: release.clone(),
        };
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = state.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(state.handle(req).await) }
                    });
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    match tls {
                        Some(config) => {
                            let Ok(stream) =
                                tokio_rustls::TlsAcceptor::from(config).accept(stream).await
                            else {
                                return;
                            };
                            let _ = builder
                                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                                .await;
                        }
                        None => {
                            let _ = builder
                                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                                .await;
                        }
                    }
                });
            }
        });
        Upstream {
            addr,
            count,
            seen,
            release,
            task,
        }
    }

    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The requests received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

#[derive(Clone)]
struct State {
    count: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
    release: Arc<Notify>,
}

type Body = BoxBody<Bytes, Infallible>;

fn full(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(Full::new(body.into()).boxed());
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert("content-type", content_type.parse().unwrap());
    resp
}

impl State {
    async fn handle(&self, mut req: Request<Incoming>) -> Response<Body> {
        self.count.fetch_add(1, Ordering::SeqCst);
        let path = req.uri().path().to_owned();
        if path == "/ws" && req.headers().contains_key("upgrade") {
            let upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                if let Ok(upgraded) = upgrade.await {
                    let mut io = TokioIo::new(upgraded);
                    let (mut r, mut w) = tokio::io::split(&mut io);
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                }
            });
            let mut resp = Response::new(Full::new(Bytes::new()).boxed());
            *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            resp.headers_mut()
                .insert("connection", "upgrade".parse().unwrap());
            resp.headers_mut()
                .insert("upgrade", "websocket".parse().unwrap());
            return resp;
        }
        let (parts, body) = req.into_parts();
        let body = body
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        self.seen.lock().unwrap().push(Seen {
            method: parts.method.to_string(),
            uri: parts
                .uri
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default(),
            headers: parts.headers.clone(),
            body: body.clone(),
        });
        match path.as_str() {
            "/1k" => full(StatusCode::OK, "text/plain", vec![b'a'; 1024]),
            "/slow" => {
                tokio::time::sleep(Duration::from_secs(3)).await;
                full(StatusCode::OK, "text/plain", "slow")
            }
            "/sse" => {
                let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
                let release = self.release.clone();
                tokio::spawn(async move {
                    let _ = tx.send(Bytes::from_static(b"data: first\n\n")).await;
                    let _ = tokio::time::timeout(Duration::from_secs(10), release.notified()).await;
                    let _ = tx.send(Bytes::from_static(b"data: second\n\n")).await;
                });
                let mut resp = Response::new(ChannelBody(rx).boxed());
                resp.headers_mut()
                    .insert("content-type", "text/event-stream".parse().unwrap());
                resp
            }
            p if p.ends_with("/chat/completions") => chat_completions(&body),
            _ => {
                let parsed: Option<Value> = serde_json::from_slice(&body).ok();
                if let Some(reply) = parsed.as_ref().and_then(jsonrpc_reply) {
                    return full(StatusCode::OK, "application/json", reply.to_string());
                }
                let headers: serde_json::Map<String, Value> = parts
                    .headers
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.to_string(),
                            Value::String(v.to_str().unwrap_or("").to_owned()),
                        )
                    })
                    .collect();
                let echo = json!({
                    "method": parts.method.as_str(),
                    "uri": parts.uri.to_string(),
                    "headers": headers,
                    "body": String::from_utf8_lossy(&body),
                });
                full(StatusCode::OK, "application/json", echo.to_string())
            }
        }
    }
}

/// A body fed by a channel, frame by frame.
struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|b| b.map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

/// Answers JSON-RPC requests (single or batch) with `{"echo": method}`.
fn jsonrpc_reply(v: &Value) -> Option<Value> {
    let one = |m: &Value| -> Option<Value> {
        m.get("jsonrpc")?;
        let id = m.get("id")?;
        Some(json!({"jsonrpc": "2.0", "id": id, "result": {"echo": m.get("method")}}))
    };
    match v {
        Value::Array(items) => Some(Value::Array(items.iter().filter_map(one).collect())),
        other => one(other),
    }
}

/// An OpenAI-style chat completion reporting 30 tokens (10 in, 20 out),
/// streamed (with a final usage chunk) when asked.
fn chat_completions(body: &[u8]) -> Response<Body> {
    let req: Value = serde_json::from_slice(body).unwrap_or_default();
    let model = req["model"].as_str().unwrap_or("unknown").to_owned();
    let usage = json!({"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30});
    if req["stream"].as_bool() == Some(true) {
        let mut text = String::new();
        for piece in ["Hel", "lo"] {
            let chunk = json!({
                "id": "chatcmpl-stub", "object": "chat.completion.chunk", "created": 0, "model": model,
                "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": null}],
            });
            text.push_str(&format!("data: {chunk}\n\n"));
        }
        let last = json!({
            "id": "chatcmpl-stub", "object": "chat.completion.chunk", "created": 0, "model": model,
            "choices": [], "usage": usage,
        });
        text.push_str(&format!("data: {last}\n\ndata: [DONE]\n\n"));
        return full(StatusCode::OK, "text/event-stream", text);
    }
    let resp = json!({
        "id": "chatcmpl-stub", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"}, "finish_reason": "stop"}],
        "usage": usage,
    });
    full(StatusCode::OK, "application/json", resp.to_string())
}
