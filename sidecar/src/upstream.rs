//! The pooled upstream client (keep-alive HTTP/1.1, HTTP/2 by ALPN, TLS
//! verified against the system roots and/or configured bundles) and the
//! header hygiene of a proxy: hop-by-hop headers never cross it.

use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::RootCertStore;
use rustls::crypto::ring::default_provider;

use crate::SidecarError;
use crate::body::Payload;
use crate::config::Config;

/// The upstream client.
pub type UpstreamClient = Client<HttpsConnector<HttpConnector>, Payload>;

/// Idle keep-alive connections kept per upstream.
const MAX_IDLE_PER_HOST: usize = 64;

/// The TLS client configuration for upstreams.
pub fn tls_config(config: &Config) -> Result<rustls::ClientConfig, SidecarError> {
    let mut roots = RootCertStore::empty();
    if config.system_roots {
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            tracing::warn!(error = %e, "cannot load part of the system trust store");
        }
        let (added, ignored) = roots.add_parsable_certificates(native.certs);
        tracing::debug!(added, ignored, "system trust store loaded");
    }
    for path in &config.upstream_ca {
        let pem = tollgate_certs::pem::read(path)?;
        for cert in tollgate_certs::pem::parse_certs(&pem, &path.display().to_string())? {
            roots.add(cert)?;
        }
    }
    if roots.is_empty() {
        return Err(SidecarError::Config(
            "no trusted roots for upstream TLS: the system store is empty or disabled and no --upstream-ca was given".into(),
        ));
    }
    Ok(
        rustls::ClientConfig::builder_with_provider(Arc::new(default_provider()))
            .with_protocol_versions(tollgate_certs::tls::PROTOCOL_VERSIONS)?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// Builds a pooled client over `tls`.
pub fn client(tls: Arc<rustls::ClientConfig>, connect_timeout: Duration) -> UpstreamClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_keepalive(Some(Duration::from_secs(60)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((*tls).clone())
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
        .build(https)
}

/// Hands each serving thread its own client, so a pooled upstream
/// connection is always driven by the thread that uses it (no cross-thread
/// wake-ups on the request path).
#[derive(Debug)]
pub struct Clients {
    id: u64,
    tls: Arc<rustls::ClientConfig>,
    connect_timeout: Duration,
}

static NEXT_CLIENTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

thread_local! {
    static CLIENTS: std::cell::RefCell<Vec<(u64, UpstreamClient)>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Clients {
    /// Clients trusting what `config` says.
    pub fn new(config: &Config) -> Result<Clients, SidecarError> {
        Ok(Clients {
            id: NEXT_CLIENTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            tls: Arc::new(tls_config(config)?),
            connect_timeout: config.timeouts.connect,
        })
    }

    /// This thread's client.
    pub fn get(&self) -> UpstreamClient {
        CLIENTS.with(|cell| {
            let mut clients = cell.borrow_mut();
            if let Some((_, c)) = clients.iter().find(|(id, _)| *id == self.id) {
                return c.clone();
            }
            let c = client(Arc::clone(&self.tls), self.connect_timeout);
            clients.push((self.id, c.clone()));
            c
        })
    }
}

/// Headers that describe one connection, never forwarded (RFC 9110
/// section 7.6.1), plus the proxy's own.
const HOP_BY_HOP: &[HeaderName] = &[
    header::CONNECTION,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes hop-by-hop headers, including those the `Connection` header
/// names. With `keep_upgrade`, `Connection: upgrade` and `Upgrade` stay.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .filter(|n| !(keep_upgrade && *n == header::UPGRADE))
        .collect();
    let upgrade = keep_upgrade
        .then(|| headers.get(header::UPGRADE).cloned())
        .flatten();
    for name in HOP_BY_HOP.iter().chain(named.iter()) {
        headers.remove(name);
    }
    for name in ["proxy-connection", "keep-alive"] {
        headers.remove(name);
    }
    if let Some(upgrade) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, upgrade);
    }
}

/// The protocol an HTTP/1.1 request asks to upgrade to, if it does.
pub fn requested_upgrade(headers: &HeaderMap) -> Option<String> {
    let wants = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    if !wants {
        return None;
    }
    let proto = headers.get(header::UPGRADE)?.to_str().ok()?;
    let first = proto.split(',').next()?.trim();
    (!first.is_empty()).then(|| first.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "keep-alive, x-secret".parse().unwrap());
        h.insert("x-secret", "1".parse().unwrap());
        h.insert("proxy-connection", "keep-alive".parse().unwrap());
        h.insert(header::PROXY_AUTHORIZATION, "Basic x".parse().unwrap());
        h.insert(header::TRANSFER_ENCODING, "chunked".parse().unwrap());
        h.insert("x-keep", "1".parse().unwrap());
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-keep"));
    }

    #[test]
    fn upgrades_are_recognised_and_kept_when_allowed() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "keep-alive, Upgrade".parse().unwrap());
        h.insert(header::UPGRADE, "WebSocket".parse().unwrap());
        assert_eq!(requested_upgrade(&h).as_deref(), Some("websocket"));
        let mut kept = h.clone();
        strip_hop_by_hop(&mut kept, true);
        assert_eq!(kept[header::CONNECTION], "upgrade");
        assert_eq!(kept[header::UPGRADE], "WebSocket");
        strip_hop_by_hop(&mut h, false);
        assert!(h.is_empty());
    }
}
