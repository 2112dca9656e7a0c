//! TLS interception for the sidecar: a per-pod CA (loaded from, or generated
//! into, a directory) and leaf certificates minted on the fly for the host a
//! client asked for, cached in a bounded LRU, served as a rustls
//! [`ResolvesServerCert`].
//!
//! The agent trusts the CA certificate (`ca.crt`) through `SSL_CERT_FILE`,
//! `REQUESTS_CA_BUNDLE` or `NODE_EXTRA_CA_CERTS`; the key never leaves the
//! sidecar's directory.

use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use lru::LruCache;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use time::Duration;

use crate::{Authority, CertError, tls};

/// How long a minted leaf is valid.
pub const LEAF_VALIDITY: Duration = Duration::days(7);
/// How long a minted leaf is served before a fresh one replaces it (well
/// before it expires).
pub const LEAF_REFRESH: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
/// How long a generated interception CA is valid.
pub const CA_VALIDITY: Duration = Duration::days(365);
/// The default number of cached leaves.
pub const DEFAULT_CACHE_SIZE: usize = 1024;
/// The longest host name a leaf is minted for (RFC 1035).
const MAX_HOST_LEN: usize = 253;

/// Mints and caches leaf certificates signed by a per-pod CA.
pub struct Interceptor {
    authority: Authority,
    cache: Mutex<LruCache<String, (Arc<CertifiedKey>, Instant)>>,
}

impl std::fmt::Debug for Interceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interceptor")
            .field("authority", &self.authority)
            .finish_non_exhaustive()
    }
}

impl Interceptor {
    /// An interceptor signing with `authority`, caching up to `capacity`
    /// leaves.
    pub fn new(authority: Authority, capacity: NonZeroUsize) -> Interceptor {
        Interceptor {
            authority,
            cache: Mutex::new(LruCache::new(capacity)),
        }
    }

    /// Loads the CA in `dir` (`ca.crt`, `ca.key`), or generates one there
    /// named after `owner` (the pod), and caches [`DEFAULT_CACHE_SIZE`]
    /// leaves.
    pub fn load_or_generate(dir: &Path, owner: &str) -> Result<Interceptor, CertError> {
        let name = if owner.is_empty() {
            "Tollgate sidecar interception CA".to_owned()
        } else {
            format!("Tollgate sidecar interception CA ({owner})")
        };
        let authority = Authority::load_or_generate(dir, &name, CA_VALIDITY)?;
        let capacity = NonZeroUsize::new(DEFAULT_CACHE_SIZE).unwrap_or(NonZeroUsize::MIN);
        Ok(Interceptor::new(authority, capacity))
    }

    /// The CA certificate (PEM) clients must trust.
    pub fn ca_cert_pem(&self) -> &str {
        self.authority.cert_pem()
    }

    /// The leaf for `host` (a DNS name or an IP address), minted on first
    /// use and cached.
    pub fn leaf(&self, host: &str) -> Result<Arc<CertifiedKey>, CertError> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(&host)
            .to_owned();
        if host.is_empty() || host.len() > MAX_HOST_LEN {
            return Err(CertError::Pem {
                what: "interception leaf".into(),
                reason: format!("cannot mint a certificate for host {host:?}"),
            });
        }
        if let Some(key) = self.cached(&host) {
            return Ok(key);
        }
        // Minted outside the lock: key generation and signing take a while,
        // and other handshakes must not wait on them. Two concurrent mints
        // for one host are harmless; the later one stays cached.
        let pair = self
            .authority
            .issue_server(std::slice::from_ref(&host), LEAF_VALIDITY)?;
        let mut chain_pem = pair.cert_pem.clone();
        chain_pem.push_str(self.authority.cert_pem());
        let key = Arc::new(tls::certified_key(
            chain_pem.as_bytes(),
            pair.key_pem.as_bytes(),
        )?);
        self.lock().put(host, (Arc::clone(&key), Instant::now()));
        Ok(key)
    }

    /// How many leaves are cached.
    pub fn cached_leaves(&self) -> usize {
        self.lock().len()
    }

    /// A resolver that presents the leaf for `host` whatever the client
    /// sends as SNI (for clients that send none, e.g. to an IP address).
    pub fn resolver_for(self: &Arc<Self>, host: &str) -> Arc<dyn ResolvesServerCert> {
        Arc::new(FixedHost {
            interceptor: Arc::clone(self),
            host: host.to_owned(),
        })
    }

    fn cached(&self, host: &str) -> Option<Arc<CertifiedKey>> {
        let mut cache = self.lock();
        match cache.get(host) {
            Some((key, minted)) if minted.elapsed() < LEAF_REFRESH => Some(Arc::clone(key)),
            Some(_) => {
                cache.pop(host);
                None
            }
            None => None,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<String, (Arc<CertifiedKey>, Instant)>> {
        // The cache holds only finished entries; a panic elsewhere while
        // holding the lock cannot leave one half-written.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ResolvesServerCert for Interceptor {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let host = client_hello.server_name()?;
        match self.leaf(host) {
            Ok(key) => Some(key),
            Err(e) => {
                tracing::warn!(host, error = %e, "cannot mint an interception certificate");
                None
            }
        }
    }
}

#[derive(Debug)]
struct FixedHost {
    interceptor: Arc<Interceptor>,
    host: String,
}

impl ResolvesServerCert for FixedHost {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        match self.interceptor.leaf(&self.host) {
            Ok(key) => Some(key),
            Err(e) => {
                tracing::warn!(host = %self.host, error = %e, "cannot mint an interception certificate");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use rustls_pki_types::ServerName;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn ca_is_generated_once_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let first = Interceptor::load_or_generate(dir.path(), "agent-0").unwrap();
        assert!(dir.path().join("ca.crt").exists());
        let second = Interceptor::load_or_generate(dir.path(), "agent-0").unwrap();
        assert_eq!(first.ca_cert_pem(), second.ca_cert_pem());
    }

    #[test]
    fn leaves_are_cached_and_bounded() {
        let ca = Authority::generate("test", Duration::days(1)).unwrap();
        let i = Interceptor::new(ca, NonZeroUsize::new(2).unwrap());
        let a = i.leaf("a.example").unwrap();
        assert!(Arc::ptr_eq(&a, &i.leaf("A.example.").unwrap()));
        i.leaf("b.example").unwrap();
        i.leaf("127.0.0.1").unwrap();
        assert_eq!(i.cached_leaves(), 2);
        assert!(!Arc::ptr_eq(&a, &i.leaf("a.example").unwrap()), "evicted");
        assert!(i.leaf("").is_err());
        assert!(i.leaf(&"x".repeat(300)).is_err());
    }

    /// A real rustls client trusting only the interception CA completes a
    /// handshake against a minted leaf, by SNI and for an IP address.
    #[tokio::test]
    async fn clients_trusting_the_ca_accept_minted_leaves() {
        let dir = tempfile::tempdir().unwrap();
        let interceptor = Arc::new(Interceptor::load_or_generate(dir.path(), "pod").unwrap());
        let client = Arc::new(tls::client_config(interceptor.ca_cert_pem().as_bytes()).unwrap());
        for (name, resolver) in [
            (
                "api.example.com",
                interceptor.clone() as Arc<dyn ResolvesServerCert>,
            ),
            ("127.0.0.1", interceptor.resolver_for("127.0.0.1")),
        ] {
            let server = Arc::new(tls::server_config(resolver, &[b"http/1.1"]).unwrap());
            let (a, b) = tokio::io::duplex(64 * 1024);
            let acceptor = tokio_rustls::TlsAcceptor::from(server);
            let serve = tokio::spawn(async move {
                let mut s = acceptor.accept(b).await.unwrap();
                s.write_all(b"pong").await.unwrap();
                s.shutdown().await.unwrap();
            });
            let connector = tokio_rustls::TlsConnector::from(client.clone());
            let mut c = connector
                .connect(ServerName::try_from(name.to_owned()).unwrap(), a)
                .await
                .unwrap();
            let mut got = Vec::new();
            c.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, b"pong");
            serve.await.unwrap();
        }
    }
}
