//! Listeners and connections: the proxy listener (HTTP/1.1 and HTTP/2,
//! slow clients answered with 408 and an audit event, requests the HTTP
//! layer refuses recorded through [`refusals`]), the metrics and health
//! listener, and graceful shutdown.

mod refusals;

use std::convert::Infallible;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tollgate_policies::action::{Action, Protocol, Target};

use crate::audit::Decided;
use crate::config::Config;
use crate::policy::PolicyCell;
use crate::proxy::{self, Conn, Early, Shared};

/// The connection builder every proxied connection uses.
pub(crate) fn http_builder(
    config: &Config,
    executor: TokioExecutor,
) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(executor);
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.timeouts.header)
        .half_close(true)
        .keep_alive(true)
        .max_buf_size(256 << 10);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(std::time::Duration::from_secs(30)));
    builder
}

/// Accepts proxy connections until `shutdown`, then drains them for the
/// grace period.
pub(crate) async fn serve_proxy(
    shared: Arc<Shared>,
    listener: TcpListener,
    shutdown: CancellationToken,
) {
    let graceful = GracefulShutdown::new();
    let coalescer = Arc::new(refusals::Coalescer::default());
    let summaries = tokio::spawn(summarize_refusals(
        Arc::clone(&shared),
        Arc::clone(&coalescer),
        shutdown.clone(),
    ));
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(
            Arc::clone(&shared),
            stream,
            peer,
            graceful.watcher(),
            Arc::clone(&coalescer),
        ));
    }
    drop(listener);
    let grace = shared.config.timeouts.shutdown_grace;
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after {grace:?}; closing them");
    }
    let _ = summaries.await;
}

/// Every [`refusals::WINDOW`], records one event for the refusals that were
/// counted instead of recorded; a last one at shutdown.
async fn summarize_refusals(
    shared: Arc<Shared>,
    coalescer: Arc<refusals::Coalescer>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(refusals::WINDOW);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            () = shutdown.cancelled() => true,
            _ = tick.tick() => false,
        };
        if let Some((count, kinds)) = coalescer.take() {
            let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{k}: {n}")).collect();
            let reason = format!(
                "{count} more requests were refused by the HTTP layer (over {} a second are counted, not recorded one by one): {}",
                refusals::BURST,
                kinds.join(", ")
            );
            let mut extra = serde_json::Map::new();
            extra.insert("coalesced".into(), serde_json::Value::from(count));
            record_protocol_refusal(&shared, None, StatusCode::BAD_REQUEST, reason, Some(extra))
                .await;
        }
        if stopping {
            return;
        }
    }
}

/// Records one refusal the HTTP layer made (`peer` unknown for a summary).
async fn record_protocol_refusal(
    shared: &Shared,
    peer: Option<SocketAddr>,
    status: StatusCode,
    reason: String,
    extra: Option<serde_json::Map<String, serde_json::Value>>,
) {
    let action = Action::http(Target {
        method: String::new(),
        scheme: "http".into(),
        host: peer.map(|p| p.ip().to_string()).unwrap_or_default(),
        port: peer.map_or(0, |p| p.port()),
        path: String::new(),
        query: None,
    });
    let decided = Decided {
        outcome: tollgate_audit::Outcome::Deny,
        rule: Arc::from(PROTOCOL_RULE),
        reason: Arc::from(reason),
        controls: Arc::from(Vec::new()),
    };
    let mut extra = extra.unwrap_or_default();
    extra.insert("status".into(), serde_json::Value::from(status.as_u16()));
    let event = shared.auditor.event(&action, &decided, 0, Some(extra));
    shared
        .metrics
        .decision(Protocol::Http.as_str(), false, &decided.rule);
    // A refusal stands whatever the recorder says; its errors are logged
    // and counted by the auditor.
    let _ = shared.auditor.record(event).await;
}

/// The rule named in events for requests the HTTP layer refused.
const PROTOCOL_RULE: &str = "tollgate/protocol-error";

async fn serve_connection(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    watcher: Watcher,
    coalescer: Arc<refusals::Coalescer>,
) {
    shared.metrics.connections.inc();
    // A second handle on the socket, to answer a slow client after hyper
    // has given up on the connection.
    let answer = stream
        .as_fd()
        .try_clone_to_owned()
        .ok()
        .map(std::net::TcpStream::from);
    let mid_request = Arc::new(AtomicBool::new(false));
    let io = TrackedTcp {
        inner: stream,
        mid_request: Arc::clone(&mid_request),
    };
    let conn = Arc::new(Conn { peer, tunnel: None });
    let svc_shared = Arc::clone(&shared);
    let service = hyper::service::service_fn(move |req| {
        let shared = Arc::clone(&svc_shared);
        let conn = Arc::clone(&conn);
        async move { Ok::<_, Infallible>(proxy::handle(shared, conn, req).await) }
    });
    let builder = http_builder(&shared.config, TokioExecutor::new());
    let result = watcher
        .watch(builder.serve_connection_with_upgrades(TokioIo::new(io), service))
        .await;
    if let Err(e) = result {
        let header_timeout = e
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_timeout);
        if header_timeout && mid_request.load(Ordering::Relaxed) {
            slow_client(&shared, answer, peer).await;
        } else if let Some(refused) = refusals::classify(e.as_ref()) {
            tracing::info!(%peer, kind = refused.kind, error = %e, "request refused by the HTTP layer");
            if coalescer.admit(refused.kind, Instant::now()) {
                let mut extra = serde_json::Map::new();
                extra.insert("refusal".into(), serde_json::Value::from(refused.kind));
                record_protocol_refusal(
                    &shared,
                    Some(peer),
                    refused.status,
                    refused.reason,
                    Some(extra),
                )
                .await;
            }
        } else {
            tracing::debug!(%peer, error = %e, "connection ended with an error");
        }
    }
    shared.metrics.connections.dec();
}

/// A client started a request but did not finish its headers in time:
/// answer 408 and record it. (An idle keep-alive connection is just closed.)
async fn slow_client(shared: &Shared, answer: Option<std::net::TcpStream>, peer: SocketAddr) {
    let timeout = shared.config.timeouts.header;
    let reason = format!("request headers not received within {timeout:?}");
    let body = serde_json::json!({
        "error": {
            "type": "tollgate_denied",
            "code": "request_timeout",
            "message": format!("denied by Tollgate rule \"tollgate/slow-client\": {reason}"),
            "rule": "tollgate/slow-client",
            "reason": reason,
        }
    })
    .to_string();
    let response = format!(
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    if let Some(mut socket) = answer {
        // The socket is non-blocking; the answer is small enough for the
        // send buffer of a connection that has received nothing.
        let bytes = response.as_bytes();
        let mut written = 0;
        for _ in 0..20 {
            match socket.write(bytes.get(written..).unwrap_or_default()) {
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                Err(_) => break,
            }
            if written >= bytes.len() {
                break;
            }
        }
        let _ = socket.shutdown(std::net::Shutdown::Both);
    }
    let action = Action::http(Target {
        method: String::new(),
        scheme: "http".into(),
        host: peer.ip().to_string(),
        port: peer.port(),
        path: String::new(),
        query: None,
    });
    let early = Early {
        status: StatusCode::REQUEST_TIMEOUT,
        rule: "tollgate/slow-client",
        reason,
    };
    shared
        .record_refusal(&action, Some(Protocol::Http), &early, Instant::now())
        .await;
}

/// The client's TCP stream, noting whether a request is half-received
/// (bytes read since the last write).
struct TrackedTcp {
    inner: TcpStream,
    mid_request: Arc<AtomicBool>,
}

impl AsyncRead for TrackedTcp {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            self.mid_request.store(true, Ordering::Relaxed);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for TrackedTcp {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let n = ready!(Pin::new(&mut self.inner).poll_write(cx, buf))?;
        self.mid_request.store(false, Ordering::Relaxed);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let n = ready!(Pin::new(&mut self.inner).poll_write_vectored(cx, bufs))?;
        self.mid_request.store(false, Ordering::Relaxed);
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// State the health endpoints read.
#[derive(Debug)]
pub(crate) struct Health {
    pub(crate) ready: AtomicBool,
    pub(crate) policy: Arc<PolicyCell>,
    pub(crate) registry: Registry,
}

/// Serves `/metrics`, `/healthz` and `/readyz` until `shutdown`.
pub(crate) async fn serve_admin(
    health: Arc<Health>,
    listener: TcpListener,
    shutdown: CancellationToken,
) {
    loop {
        let (stream, _) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(_) => continue,
            },
        };
        let health = Arc::clone(&health);
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let health = Arc::clone(&health);
                    async move { Ok::<_, Infallible>(admin(&health, req.uri().path())) }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn admin(health: &Health, path: &str) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match path {
        "/metrics" => {
            let mut text = String::new();
            match prometheus_client::encoding::text::encode(&mut text, &health.registry) {
                Ok(()) => (
                    StatusCode::OK,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    text,
                ),
                Err(e) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    e.to_string(),
                ),
            }
        }
        "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
        "/readyz" => {
            let listening = health.ready.load(Ordering::Relaxed);
            let policy = health.policy.current();
            match (listening, policy) {
                (true, Some(p)) => (
                    StatusCode::OK,
                    "application/json",
                    serde_json::json!({"ready": true, "policy": p.name(), "rules": p.rule_count()}).to_string(),
                ),
                (false, _) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "application/json",
                    serde_json::json!({"ready": false, "reason": "the proxy listener is not bound yet"}).to_string(),
                ),
                (true, None) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "application/json",
                    serde_json::json!({"ready": false, "reason": "no valid action policy is loaded; every action is denied"}).to_string(),
                ),
            }
        }
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_owned(),
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}
