//! Serving: the HTTPS port (TLS 1.2/1.3, HTTP/1.1 or HTTP/2 chosen by
//! ALPN) and the plain-HTTP metrics port (`/healthz`, `/readyz`,
//! `/metrics`). Readiness turns on once both listeners are bound and the
//! certificate is loaded, and off when shutdown begins. Shutdown happens in
//! one place ([`Bound::serve`]'s `shutdown` future): stop accepting, let
//! in-flight requests finish within the grace period, then return.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tollgate_audit::Recorder;
use tollgate_policies::engine::Engine;

use crate::handler::Admission;
use crate::metrics::{GaugeGuard, Metrics};
use crate::service::Service;
use crate::settings::Settings;
use crate::tls::{self, PreparedTls, Upkeep};
use crate::{AdmissionHandler, WebhookError, review};

/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

/// A webhook, configured but not yet listening.
pub struct Webhook {
    settings: Settings,
    engine: Arc<Engine>,
    recorder: Option<Arc<dyn Recorder>>,
    metrics: Arc<Metrics>,
    handler: Option<Arc<dyn AdmissionHandler>>,
    readiness: Option<ReadinessGate>,
    collectors: Vec<Arc<dyn prometheus_client::collector::Collector>>,
}

/// A collector shared with the component it reports on.
#[derive(Debug)]
struct SharedCollector(Arc<dyn prometheus_client::collector::Collector>);

impl prometheus_client::collector::Collector for SharedCollector {
    fn encode(
        &self,
        encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        self.0.encode(encoder)
    }
}

/// An extra condition of `/readyz`: `Err(reason)` while not ready (for
/// example until the live namespace list and the certificate are loaded).
pub type ReadinessGate = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// A webhook with both ports bound and its certificate loaded.
pub struct Bound {
    settings: Settings,
    listener: TcpListener,
    admin: TcpListener,
    local_addr: SocketAddr,
    metrics_addr: SocketAddr,
    tls: PreparedTls,
    acceptor: TlsAcceptor,
    service: Arc<Service>,
    metrics: Arc<Metrics>,
    readiness: Option<ReadinessGate>,
}

impl std::fmt::Debug for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bound")
            .field("local_addr", &self.local_addr)
            .field("metrics_addr", &self.metrics_addr)
            .finish_non_exhaustive()
    }
}

impl Webhook {
    /// A webhook serving `engine`'s decisions with `settings`. Auditing is
    /// off (as with `tollgate_audit::Discard`, without building events)
    /// until a recorder is set.
    pub fn new(settings: Settings, engine: Arc<Engine>) -> Webhook {
        Webhook {
            settings,
            engine,
            recorder: None,
            metrics: Metrics::new(),
            handler: None,
            readiness: None,
            collectors: Vec::new(),
        }
    }

    /// Adds a collector (read on every scrape) to `/metrics`. Call before
    /// [`Webhook::register_metrics`] and [`Webhook::metrics`].
    pub fn collector(
        mut self,
        collector: Arc<dyn prometheus_client::collector::Collector>,
    ) -> Webhook {
        self.collectors.push(collector);
        let collectors = self.collectors.clone();
        self.metrics = Metrics::with(|registry| {
            for c in collectors {
                registry.register_collector(Box::new(SharedCollector(c)));
            }
        });
        self
    }

    /// Makes `/readyz` also wait for `gate`.
    pub fn readiness(mut self, gate: ReadinessGate) -> Webhook {
        self.readiness = Some(gate);
        self
    }

    /// Records every admission decision into `recorder`.
    pub fn recorder(mut self, recorder: Arc<dyn Recorder>) -> Webhook {
        self.recorder = Some(recorder);
        self
    }

    /// Answers admission requests with `handler` instead of evaluating them
    /// (benchmarks measure the server's floor this way).
    pub fn handler(mut self, handler: Arc<dyn AdmissionHandler>) -> Webhook {
        self.handler = Some(handler);
        self
    }

    /// Adds metrics of other components (the audit trail's) to the
    /// webhook's `/metrics`. Call before [`Webhook::metrics`].
    pub fn register_metrics(
        mut self,
        extra: impl FnOnce(&mut prometheus_client::registry::Registry),
    ) -> Webhook {
        let collectors = self.collectors.clone();
        self.metrics = Metrics::with(|registry| {
            for c in collectors {
                registry.register_collector(Box::new(SharedCollector(c)));
            }
            extra(registry);
        });
        self
    }

    /// The metrics this webhook updates.
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    /// Validates the settings, prepares the certificate and binds both
    /// ports.
    pub async fn bind(self) -> Result<Bound, WebhookError> {
        self.settings.validate()?;
        let settings = self.settings;
        let prepared = {
            let s = settings.clone();
            tokio::task::spawn_blocking(move || tls::prepare(&s))
                .await
                .map_err(|e| {
                    WebhookError::Certificates(tollgate_certs::CertError::Pem {
                        what: "certificate setup".into(),
                        reason: e.to_string(),
                    })
                })??
        };
        let resolver: Arc<dyn rustls::server::ResolvesServerCert> = prepared.resolver.clone();
        let config = tollgate_certs::server_config(resolver, &[b"h2", b"http/1.1"])
            .map_err(WebhookError::Certificates)?;
        let listener = bind(settings.listen).await?;
        let admin = bind(settings.metrics_listen).await?;
        let local_addr = local(&listener, settings.listen)?;
        let metrics_addr = local(&admin, settings.metrics_listen)?;
        let handler = match self.handler {
            Some(h) => h,
            None => Arc::new(Admission::new(
                self.engine,
                self.recorder,
                Arc::clone(&self.metrics),
                &settings,
            )),
        };
        let service = Arc::new(Service::new(
            handler,
            Arc::clone(&self.metrics),
            &settings.limits,
        ));
        Ok(Bound {
            listener,
            admin,
            local_addr,
            metrics_addr,
            acceptor: TlsAcceptor::from(Arc::new(config)),
            tls: prepared,
            service,
            metrics: self.metrics,
            readiness: self.readiness,
            settings,
        })
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, WebhookError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| WebhookError::Bind { addr, source })
}

fn local(listener: &TcpListener, addr: SocketAddr) -> Result<SocketAddr, WebhookError> {
    listener
        .local_addr()
        .map_err(|source| WebhookError::Bind { addr, source })
}

impl Bound {
    /// The HTTPS address (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The plain-HTTP metrics address.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    /// The serving certificate.
    pub fn tls(&self) -> &PreparedTls {
        &self.tls
    }

    /// Serves until `shutdown` resolves, then stops accepting, drains
    /// in-flight requests for up to the grace period, and returns.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), WebhookError> {
        let Bound {
            settings,
            listener,
            admin,
            local_addr,
            tls,
            acceptor,
            service,
            metrics,
            readiness,
            ..
        } = self;
        let _upkeep: Upkeep = tls::upkeep(&tls, &settings, &metrics);
        let ready = Arc::new(AtomicBool::new(true));
        let (admin_stop, admin_stopped) = tokio::sync::oneshot::channel::<()>();
        let admin_task = tokio::spawn(serve_admin(
            admin,
            Arc::clone(&ready),
            Arc::clone(&metrics),
            readiness,
            admin_stopped,
        ));
        tracing::info!(%local_addr, "serving admission reviews");

        // HTTP/2 connections get a GOAWAY as soon as shutdown begins (their
        // open streams finish); HTTP/1.1 connections keep being answered,
        // each response saying `Connection: close`, until they close or the
        // grace period ends: closing an idle keep-alive connection at once
        // would drop a request its client has just written on it.
        let graceful_h1 = GracefulShutdown::new();
        let graceful_h2 = GracefulShutdown::new();
        let mut connections = JoinSet::new();
        let permits = Arc::new(Semaphore::new(settings.limits.max_connections));
        let unshaken = Arc::new(Unshaken::default());
        let conn_settings = Arc::new(ConnSettings::new(&settings));
        tokio::pin!(shutdown);
        loop {
            while connections.try_join_next().is_some() {}
            let (stream, peer) = tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(err) => {
                        metrics.error("accept");
                        tracing::warn!(error = %err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let permit = match Arc::clone(&permits).try_acquire_owned() {
                Ok(p) => p,
                Err(_) => {
                    // Every slot is taken: the oldest connection that has
                    // not finished its TLS handshake gives its slot up, so
                    // idle sockets cannot keep kube-apiserver waiting.
                    if unshaken.shed_oldest() {
                        metrics.error("shed_before_handshake");
                    }
                    tokio::select! {
                        () = &mut shutdown => break,
                        permit = Arc::clone(&permits).acquire_owned() => match permit {
                            Ok(p) => p,
                            Err(_) => break,
                        },
                    }
                }
            };
            let conn = Connection {
                acceptor: acceptor.clone(),
                service: Arc::clone(&service),
                metrics: Arc::clone(&metrics),
                settings: Arc::clone(&conn_settings),
                unshaken: Arc::clone(&unshaken),
            };
            let watchers = (graceful_h1.watcher(), graceful_h2.watcher());
            connections.spawn(async move {
                let _permit = permit;
                conn.serve(stream, peer, watchers).await;
            });
        }

        ready.store(false, Ordering::SeqCst);
        drop(listener);
        service.close_connections();
        tracing::info!(
            grace = ?settings.shutdown_grace,
            open = graceful_h1.count() + graceful_h2.count(),
            "shutting down: no new connections; answering open connections with Connection: close and draining them"
        );
        let drain = async {
            let h1_closed = async {
                while graceful_h1.count() > 0 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            };
            tokio::join!(graceful_h2.shutdown(), h1_closed);
        };
        match tokio::time::timeout(settings.shutdown_grace, drain).await {
            Ok(()) => tracing::info!("all connections drained"),
            Err(_) => tracing::warn!("grace period over; closing the remaining connections"),
        }
        // Idle HTTP/1.1 connections left at the end of the grace period are
        // closed; a request that is being answered gets a moment more.
        let _ = tokio::time::timeout(Duration::from_millis(500), graceful_h1.shutdown()).await;
        connections.shutdown().await;
        let _ = admin_stop.send(());
        let _ = admin_task.await;
        Ok(())
    }
}

/// Connections that have not finished their TLS handshake, oldest first.
#[derive(Default)]
struct Unshaken {
    next: std::sync::atomic::AtomicU64,
    queue: std::sync::Mutex<std::collections::VecDeque<(u64, tokio::sync::oneshot::Sender<()>)>>,
}

impl Unshaken {
    fn queue(
        &self,
    ) -> std::sync::MutexGuard<
        '_,
        std::collections::VecDeque<(u64, tokio::sync::oneshot::Sender<()>)>,
    > {
        // The queue stays whole whatever panicked while holding it.
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a connection; the receiver fires when it must give up.
    fn enter(&self) -> (u64, tokio::sync::oneshot::Receiver<()>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.queue().push_back((id, tx));
        (id, rx)
    }

    fn leave(&self, id: u64) {
        self.queue().retain(|(i, _)| *i != id);
    }

    /// Tells the oldest connection still before its handshake to close;
    /// false when there is none.
    fn shed_oldest(&self) -> bool {
        let mut queue = self.queue();
        while let Some((_, tx)) = queue.pop_front() {
            if tx.send(()).is_ok() {
                return true;
            }
        }
        false
    }
}

/// Leaves [`Unshaken`] when the handshake is over, however it ended.
struct Shaken<'a>(&'a Unshaken, u64);

impl Drop for Shaken<'_> {
    fn drop(&mut self) {
        self.0.leave(self.1);
    }
}

/// Per-connection settings, built once.
struct ConnSettings {
    handshake_timeout: Duration,
    http1: hyper::server::conn::http1::Builder,
    http2: hyper::server::conn::http2::Builder<TokioExecutor>,
    first_request_timeout: Duration,
}

impl ConnSettings {
    fn new(settings: &Settings) -> ConnSettings {
        let limits = &settings.limits;
        let mut http1 = hyper::server::conn::http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_headers(100)
            .keep_alive(true);
        let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .max_concurrent_streams(limits.max_concurrent_streams)
            .max_header_list_size(64 * 1024)
            .keep_alive_interval(Some(Duration::from_secs(30)))
            .keep_alive_timeout(Duration::from_secs(10));
        ConnSettings {
            handshake_timeout: limits.tls_handshake_timeout,
            http1,
            http2,
            first_request_timeout: limits.header_read_timeout,
        }
    }
}

struct Connection {
    acceptor: TlsAcceptor,
    service: Arc<Service>,
    metrics: Arc<Metrics>,
    settings: Arc<ConnSettings>,
    unshaken: Arc<Unshaken>,
}

impl Connection {
    async fn serve(
        self,
        stream: TcpStream,
        peer: SocketAddr,
        (watcher_h1, watcher_h2): (
            hyper_util::server::graceful::Watcher,
            hyper_util::server::graceful::Watcher,
        ),
    ) {
        let _open = GaugeGuard::new(&self.metrics.connections);
        let _ = stream.set_nodelay(true);
        let (id, shed) = self.unshaken.enter();
        let shaken = Shaken(&self.unshaken, id);
        let tls = tokio::select! {
            tls = self.handshake(stream, peer) => tls,
            Ok(()) = shed => None,
        };
        drop(shaken);
        let Some(tls) = tls else {
            return;
        };
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let service = Arc::clone(&self.service);
        let seen = Arc::new(AtomicBool::new(false));
        let seen_in_service = Arc::clone(&seen);
        let svc = service_fn(move |req: Request<Incoming>| {
            let service = Arc::clone(&service);
            seen_in_service.store(true, Ordering::Relaxed);
            async move { Ok::<_, Infallible>(service.handle(req).await) }
        });
        let io = TokioIo::new(tls);
        if h2 {
            let conn = watcher_h2.watch(self.settings.http2.serve_connection(io, svc));
            // HTTP/2 has no header timeout of its own: a client that never
            // sends a request is dropped after the header timeout.
            let idle = first_request_deadline(seen, self.settings.first_request_timeout);
            tokio::select! {
                res = conn => if let Err(err) = res {
                    tracing::debug!(%peer, error = %err, "HTTP/2 connection ended with an error");
                },
                () = idle => self.metrics.error("idle_timeout"),
            }
        } else {
            let conn = watcher_h1.watch(self.settings.http1.serve_connection(io, svc));
            if let Err(err) = conn.await {
                if err.is_timeout() {
                    self.metrics.error("header_timeout");
                }
                tracing::debug!(%peer, error = %err, "HTTP/1 connection ended with an error");
            }
        }
    }
}

impl Connection {
    /// Waits for the client's first byte and completes the TLS handshake,
    /// both within the handshake timeout; `None` when the client gave up,
    /// spoke plain text or failed the handshake.
    async fn handshake(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
    ) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
        let deadline = Instant::now() + self.settings.handshake_timeout;
        let mut first = [0u8; 1];
        match tokio::time::timeout_at(deadline, stream.peek(&mut first)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return None,
            Ok(Ok(_)) => {}
            Err(_) => {
                self.metrics.error("tls_handshake_timeout");
                return None;
            }
        }
        if first != [TLS_HANDSHAKE] {
            self.metrics.error("plain_http");
            tracing::debug!(%peer, "plain-text client on the HTTPS port");
            refuse_plain_text(stream).await;
            return None;
        }
        match tokio::time::timeout_at(deadline, self.acceptor.accept(stream)).await {
            Ok(Ok(tls)) => Some(tls),
            Ok(Err(err)) => {
                self.metrics.error("tls_handshake");
                tracing::debug!(%peer, error = %err, "TLS handshake failed");
                None
            }
            Err(_) => {
                self.metrics.error("tls_handshake_timeout");
                None
            }
        }
    }
}

async fn first_request_deadline(seen: Arc<AtomicBool>, timeout: Duration) {
    tokio::time::sleep(timeout).await;
    if seen.load(Ordering::Relaxed) {
        std::future::pending::<()>().await;
    }
}

/// Tells a plain-text HTTP client, in plain text, to use TLS.
async fn refuse_plain_text(mut stream: TcpStream) {
    let body = review::error_body(
        400,
        "BadRequest",
        "this port serves HTTPS only: connect with TLS (https://...)",
    );
    let head = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&body).await?;
        stream.shutdown().await
    })
    .await;
}

async fn serve_admin(
    listener: TcpListener,
    ready: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    readiness: Option<ReadinessGate>,
    stop: tokio::sync::oneshot::Receiver<()>,
) {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    let builder = Arc::new(builder);
    let mut tasks = JoinSet::new();
    tokio::pin!(stop);
    loop {
        while tasks.try_join_next().is_some() {}
        let (stream, _) = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let ready = Arc::clone(&ready);
        let metrics = Arc::clone(&metrics);
        let readiness = readiness.clone();
        let builder = Arc::clone(&builder);
        tasks.spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let response = admin_response(&req, &ready, readiness.as_ref(), &metrics);
                async move { Ok::<_, Infallible>(response) }
            });
            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
        });
    }
    tasks.shutdown().await;
}

fn admin_response(
    req: &Request<Incoming>,
    ready: &AtomicBool,
    readiness: Option<&ReadinessGate>,
    metrics: &Metrics,
) -> Response<Full<Bytes>> {
    let text = |status: StatusCode, body: String, content_type: &'static str| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(content_type),
        );
        r
    };
    const PLAIN: &str = "text/plain; charset=utf-8";
    if req.method() != http::Method::GET && req.method() != http::Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n".into(), PLAIN);
    }
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n".into(), PLAIN),
        "/readyz" if !ready.load(Ordering::SeqCst) => {
            text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n".into(), PLAIN)
        }
        "/readyz" => match readiness.map_or(Ok(()), |gate| gate()) {
            Ok(()) => text(StatusCode::OK, "ready\n".into(), PLAIN),
            Err(reason) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {reason}\n"),
                PLAIN,
            ),
        },
        "/metrics" => text(
            StatusCode::OK,
            metrics.encode(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: this port serves /healthz, /readyz and /metrics\n".into(),
            PLAIN,
        ),
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C): the one place shutdown starts.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM received"),
                    _ = int.recv() => tracing::info!("SIGINT received"),
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
