//! `CONNECT` tunnels.
//!
//! Without interception (or for `spec.tls.passthrough` hosts) a tunnel is
//! one action, `http CONNECT host:port`, decided on host and port. Once
//! allowed, the first bytes must be a TLS ClientHello whose SNI (if any)
//! names the `CONNECT` host; anything else is refused with an alert.
//!
//! With interception, the tunnel is opened without a decision of its own:
//! TLS is terminated with a leaf minted for the `CONNECT` host (the SNI
//! must agree), and every request inside is classified and decided like a
//! plain-HTTP one. A tunnel that carries plain HTTP is served the same way.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::{Buf, Bytes};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::upgrade::Upgraded;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tollgate_audit::Outcome;
use tollgate_policies::action::{Action, DecisionKind, Protocol, Target};

use crate::audit::Decided;
use crate::body::Payload;
use crate::deny::{Refusal, Shape, refuse};
use crate::proxy::{self, Conn, Early, Shared, TunnelTarget, split_authority};

pub(crate) mod hello;

use hello::{Hello, read_hello};

/// A fatal TLS `access_denied` alert, sent when a tunnel is refused after
/// it was opened.
const ACCESS_DENIED_ALERT: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 49];

/// Handles a `CONNECT` on the proxy's listener. (Boxed: tunnels serve
/// requests through the proxy, which handles `CONNECT` here.)
pub(crate) fn connect(
    shared: Arc<Shared>,
    conn: Arc<Conn>,
    req: Request<Incoming>,
) -> Pin<Box<dyn Future<Output = Response<Payload>> + Send>> {
    Box::pin(connect_inner(shared, conn, req))
}

async fn connect_inner(
    shared: Arc<Shared>,
    conn: Arc<Conn>,
    req: Request<Incoming>,
) -> Response<Payload> {
    let started = Instant::now();
    let authority = req.uri().authority().map(|a| a.as_str().to_owned());
    let (host, port) = match authority.as_deref().map(|a| split_authority(a, 443)) {
        Some(Ok(hp)) => hp,
        Some(Err(e)) => {
            let early = e.early(&format!(
                "the CONNECT target {:?}",
                authority.as_deref().unwrap_or_default()
            ));
            // Recorded as sent: the host has no canonical form.
            let action = Action::http(Target {
                method: "CONNECT".into(),
                scheme: "https".into(),
                host: authority.clone().unwrap_or_default(),
                port: 0,
                path: String::new(),
                query: None,
            });
            shared
                .record_refusal(&action, Some(Protocol::Http), &early, started)
                .await;
            return refuse(Shape::Plain, &early.refusal());
        }
        None => {
            let early = Early {
                status: StatusCode::BAD_REQUEST,
                rule: "tollgate/framing",
                reason: format!("CONNECT needs host:port, got {:?}", req.uri().to_string()),
            };
            return refuse(Shape::Plain, &early.refusal());
        }
    };
    let policy = shared.policy.current();
    let intercept = shared.interceptor.is_some()
        && !policy
            .as_ref()
            .is_some_and(|p| p.tls_passthrough(&host, port));
    let action = Action::http(Target {
        method: "CONNECT".into(),
        scheme: "https".into(),
        host: host.clone(),
        port,
        path: String::new(),
        query: None,
    });
    if intercept {
        let inner = Arc::clone(&shared);
        let peer = conn.peer;
        let upgrade = hyper::upgrade::on(req);
        tokio::spawn(async move {
            match upgrade.await {
                Ok(upgraded) => intercept_tunnel(inner, peer, host, port, upgraded).await,
                Err(e) => tracing::debug!(error = %e, "CONNECT upgrade failed"),
            }
        });
        return established();
    }

    let decision = match &policy {
        Some(p) => p.evaluate(&action, Instant::now()),
        None => tollgate_policies::action::ActionDecision::deny(
            DecisionKind::NoMatch,
            "no valid action policy is loaded, so every action is denied",
        ),
    };
    let default_rule = if policy.is_some() {
        "tollgate/default-deny"
    } else {
        "tollgate/no-policy"
    };
    let decided = Decided {
        outcome: if decision.allowed() {
            Outcome::Allow
        } else {
            Outcome::Deny
        },
        rule: decision
            .rule
            .clone()
            .unwrap_or_else(|| Arc::from(default_rule)),
        reason: Arc::clone(&decision.reason),
        controls: Arc::clone(&decision.controls),
    };
    shared
        .metrics
        .decision(Protocol::Http.as_str(), decision.allowed(), &decided.rule);
    let latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    let recorded = shared
        .auditor
        .record(shared.auditor.event(&action, &decided, latency_us, None))
        .await;
    if !decision.allowed() {
        let status = match decision.kind {
            DecisionKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::FORBIDDEN,
        };
        return refuse(
            Shape::Plain,
            &Refusal {
                status,
                rule: &decided.rule,
                reason: &decided.reason,
                retry_after: decision.retry_after.map(|r| r.as_secs()),
            },
        );
    }
    if recorded.is_err() {
        return refuse(
            Shape::Plain,
            &Refusal {
                status: StatusCode::SERVICE_UNAVAILABLE,
                rule: "tollgate/audit-unavailable",
                reason: "the audit trail cannot record this action, so it is denied (fail-closed)",
                retry_after: Some(5),
            },
        );
    }
    let upstream = match dial(&shared, &host, port).await {
        Ok(s) => s,
        Err(reason) => {
            let decided = Decided {
                outcome: Outcome::Warn,
                rule: Arc::from("tollgate/upstream-error"),
                reason: Arc::from(reason.as_str()),
                controls: Arc::from(Vec::new()),
            };
            let mut extra = serde_json::Map::new();
            extra.insert("incident".into(), "upstream-error".into());
            extra.insert("status".into(), 502.into());
            let _ = shared
                .auditor
                .record(shared.auditor.event(&action, &decided, 0, Some(extra)))
                .await;
            return refuse(
                Shape::Plain,
                &Refusal {
                    status: StatusCode::BAD_GATEWAY,
                    rule: "tollgate/upstream-error",
                    reason: &reason,
                    retry_after: None,
                },
            );
        }
    };
    let upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => passthrough(shared, action, upgraded, upstream).await,
            Err(e) => tracing::debug!(error = %e, "CONNECT upgrade failed"),
        }
    });
    established()
}

fn established() -> Response<Payload> {
    Response::new(Payload::Empty)
}

/// Opens a TCP connection to `host`:`port` within the connect timeout.
async fn dial(shared: &Shared, host: &str, port: u16) -> Result<TcpStream, String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let timeout = shared.config.timeouts.connect;
    match tokio::time::timeout(timeout, TcpStream::connect((bare, port))).await {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
        Ok(Err(e)) => Err(format!("cannot connect to {host}:{port}: {e}")),
        Err(_) => Err(format!(
            "connecting to {host}:{port} took longer than {timeout:?}"
        )),
    }
}

/// An allowed, non-intercepted tunnel: check the ClientHello, then relay.
async fn passthrough(
    shared: Arc<Shared>,
    action: Action,
    upgraded: Upgraded,
    mut upstream: TcpStream,
) {
    let mut client = TokioIo::new(upgraded);
    let host = action.target.host.clone();
    let refused = match read_hello(&mut client, shared.config.timeouts.tls_handshake).await {
        Ok((bytes, Hello::Tls(sni))) => match sni {
            Some(name) if !same_host(&name, &host) => Some(format!(
                "the TLS ClientHello asks for {name} but the tunnel was opened to {host}"
            )),
            _ => {
                if upstream.write_all(&bytes).await.is_ok() {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
                None
            }
        },
        Ok((_, Hello::NotTls)) => Some(
            "the tunnel does not carry TLS; without interception only TLS can be tunnelled (use the proxy for plain HTTP)".to_owned(),
        ),
        Err(e) => Some(e.to_string()),
    };
    if let Some(reason) = refused {
        tracing::info!(%host, reason, "tunnel refused");
        let _ = client.write_all(&ACCESS_DENIED_ALERT).await;
        let _ = client.shutdown().await;
        let early = Early {
            status: StatusCode::FORBIDDEN,
            rule: "tollgate/tunnel",
            reason,
        };
        shared
            .record_refusal(&action, Some(Protocol::Http), &early, Instant::now())
            .await;
    }
}

/// Whether an SNI names the `CONNECT` host (already canonical): the SNI is
/// reduced to its canonical form first, and one that has none never does.
fn same_host(sni: &str, host: &str) -> bool {
    tollgate_policies::action::host::request_host(sni).is_ok_and(|s| s == host)
}

/// An intercepted tunnel: terminate TLS (or take plain HTTP) and serve the
/// requests inside through the proxy.
async fn intercept_tunnel(
    shared: Arc<Shared>,
    peer: std::net::SocketAddr,
    host: String,
    port: u16,
    upgraded: Upgraded,
) {
    let mut io = TokioIo::new(upgraded);
    let timeout = shared.config.timeouts.tls_handshake;
    let mut first = [0u8; 1];
    let n = match tokio::time::timeout(timeout, io.read(&mut first)).await {
        Ok(Ok(n)) if n > 0 => n,
        _ => return,
    };
    let io = Prefixed {
        prefix: Bytes::copy_from_slice(first.get(..n).unwrap_or_default()),
        inner: io,
    };
    let action = Action::http(Target {
        method: "CONNECT".into(),
        scheme: "https".into(),
        host: host.clone(),
        port,
        path: String::new(),
        query: None,
    });
    let refuse_tunnel = |reason: String| {
        let shared = Arc::clone(&shared);
        let action = action.clone();
        async move {
            tracing::info!(host = %action.target.host, reason, "intercepted tunnel refused");
            let early = Early {
                status: StatusCode::FORBIDDEN,
                rule: "tollgate/tls",
                reason,
            };
            shared
                .record_refusal(&action, Some(Protocol::Http), &early, Instant::now())
                .await;
        }
    };
    if first.first() != Some(&0x16) {
        let conn = Conn {
            peer,
            tunnel: Some(TunnelTarget {
                host,
                port,
                tls: false,
            }),
        };
        serve_inner(shared, conn, io).await;
        return;
    }
    let acceptor = tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), io);
    let start = match tokio::time::timeout(timeout, acceptor).await {
        Ok(Ok(start)) => start,
        Ok(Err(e)) => return refuse_tunnel(format!("malformed TLS ClientHello: {e}")).await,
        Err(_) => return refuse_tunnel(format!("no TLS ClientHello within {timeout:?}")).await,
    };
    let sni = start.client_hello().server_name().map(str::to_owned);
    if let Some(name) = &sni
        && !same_host(name, &host)
    {
        return refuse_tunnel(format!(
            "the TLS ClientHello asks for {name} but the tunnel was opened to {host}"
        ))
        .await;
    }
    let config = match (&sni, &shared.intercept_tls, &shared.interceptor) {
        (Some(_), Some(config), _) => Arc::clone(config),
        (_, _, Some(interceptor)) => {
            match tollgate_certs::server_config(
                interceptor.resolver_for(&host),
                &[b"h2", b"http/1.1"],
            ) {
                Ok(c) => Arc::new(c),
                Err(e) => return refuse_tunnel(format!("cannot configure TLS: {e}")).await,
            }
        }
        _ => return,
    };
    let tls = match tokio::time::timeout(timeout, start.into_stream(config)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            return refuse_tunnel(format!(
                "TLS handshake with the agent failed ({e}); does the agent trust the sidecar's interception CA (SSL_CERT_FILE, REQUESTS_CA_BUNDLE, NODE_EXTRA_CA_CERTS)?"
            ))
            .await;
        }
        Err(_) => {
            return refuse_tunnel(format!("TLS handshake took longer than {timeout:?}")).await;
        }
    };
    let conn = Conn {
        peer,
        tunnel: Some(TunnelTarget {
            host,
            port,
            tls: true,
        }),
    };
    serve_inner(shared, conn, tls).await;
}

/// Serves HTTP/1.1 or HTTP/2 requests arriving inside a tunnel.
async fn serve_inner<I>(shared: Arc<Shared>, conn: Conn, io: I)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = Arc::new(conn);
    let svc_shared = Arc::clone(&shared);
    let service = hyper::service::service_fn(move |req| {
        let shared = Arc::clone(&svc_shared);
        let conn = Arc::clone(&conn);
        async move { Ok::<_, std::convert::Infallible>(proxy::handle(shared, conn, req).await) }
    });
    let builder = crate::server::http_builder(&shared.config, TokioExecutor::new());
    if let Err(e) = builder
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .await
    {
        tracing::debug!(error = %e, "tunnelled connection ended with an error");
    }
}

/// An IO that replays `prefix` before reading from `inner`.
struct Prefixed<T> {
    prefix: Bytes,
    inner: T,
}

impl<T: AsyncRead + Unpin> AsyncRead for Prefixed<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(self.prefix.get(..n).unwrap_or_default());
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Prefixed<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
