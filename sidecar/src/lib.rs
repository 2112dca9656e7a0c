//! The agent action proxy: classify every request into a typed action,
//! allow or deny it by the pod's action policy, forward or refuse, record it.
//!
//! [`Sidecar::bind`] loads the policy, sets up interception and binds the
//! listeners; [`Sidecar::serve`] runs until the shutdown token fires, then
//! drains. Every decision is handed to an [`tollgate_audit::Recorder`]
//! (the journal, or [`recorder::JsonLinesRecorder`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tollgate_audit::Recorder;
use tollgate_certs::Interceptor;

pub mod audit;
pub mod body;
pub mod classify;
pub mod config;
pub mod deny;
mod error;
pub mod json;
pub mod metrics;
pub mod policy;
mod proxy;
pub mod recorder;
mod server;
pub mod trust;
mod tunnel;
pub mod upstream;
pub mod usage;

pub use config::{AuditAck, Config, Identity, Timeouts};
pub use error::SidecarError;
pub use policy::{PolicyCell, PolicyStore, Reload};

use crate::audit::Auditor;
use crate::metrics::Metrics;
use crate::proxy::Shared;
use crate::server::Health;

/// A bound sidecar, ready to serve.
pub struct Sidecar {
    shared: Arc<Shared>,
    store: Arc<PolicyStore>,
    listener: TcpListener,
    admin: Option<TcpListener>,
    health: Arc<Health>,
}

impl std::fmt::Debug for Sidecar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sidecar")
            .field("listen", &self.shared.local)
            .finish_non_exhaustive()
    }
}

impl Sidecar {
    /// Loads the policy (a bad or missing file is logged and every action
    /// denied until a good one appears), prepares interception and the
    /// upstream client, and binds the listeners.
    pub async fn bind(
        config: Config,
        recorder: Arc<dyn Recorder>,
    ) -> Result<Sidecar, SidecarError> {
        Self::bind_with_metrics(config, recorder, |_| {}).await
    }

    /// Like [`Sidecar::bind`], and lets `extra` register more metrics (the
    /// audit journal's) in the sidecar's `/metrics`.
    pub async fn bind_with_metrics(
        config: Config,
        recorder: Arc<dyn Recorder>,
        extra: impl FnOnce(&mut Registry),
    ) -> Result<Sidecar, SidecarError> {
        let cell = Arc::new(PolicyCell::default());
        let mut registry = Registry::default();
        let metrics = Arc::new(Metrics::new(&mut registry, Arc::clone(&cell)));
        extra(&mut registry);
        let store = match (&config.policy, &config.ossa_manifest) {
            (Some(policy), manifest) => {
                PolicyStore::new(policy.clone(), Arc::clone(&cell)).with_manifest(manifest.clone())
            }
            (None, Some(manifest)) => {
                PolicyStore::manifest_only(manifest.clone(), Arc::clone(&cell))
            }
            (None, None) => {
                return Err(SidecarError::Config(
                    "neither an action policy file nor an OSSA manifest is configured".into(),
                ));
            }
        };
        let store = Arc::new(store.with_namespace(config.identity.namespace.clone()));
        store.reload(&metrics);

        let interceptor = match &config.intercept_ca {
            Some(dir) => {
                let owner = config.identity.pod.clone().unwrap_or_default();
                let interceptor = Arc::new(Interceptor::load_or_generate(dir, &owner)?);
                if let Some(out) = &config.intercept_ca_cert_out {
                    tollgate_certs::pem::write_atomic(
                        out,
                        interceptor.ca_cert_pem().as_bytes(),
                        false,
                    )?;
                }
                if let Some(out) = &config.trust_bundle_out {
                    trust::write_bundle(out, &config, interceptor.ca_cert_pem())?;
                }
                Some(interceptor)
            }
            None => None,
        };
        let intercept_tls = match &interceptor {
            Some(i) => Some(Arc::new(tollgate_certs::server_config(
                Arc::clone(i) as Arc<dyn rustls::server::ResolvesServerCert>,
                &[b"h2", b"http/1.1"],
            )?)),
            None => None,
        };
        let clients = upstream::Clients::new(&config)?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| SidecarError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let local = listener.local_addr().map_err(|source| SidecarError::Bind {
            addr: config.listen,
            source,
        })?;
        let admin = match config.metrics_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| SidecarError::Bind { addr, source })?,
            ),
            None => None,
        };
        let identity = &config.identity;
        let auditor = Auditor::new(
            recorder,
            identity.actor(),
            identity.ownership(),
            config.audit_ack,
            Arc::clone(&metrics),
        );
        let health = Arc::new(Health {
            ready: Default::default(),
            policy: Arc::clone(&cell),
            registry,
        });
        let shared = Arc::new(Shared {
            config,
            policy: cell,
            auditor,
            metrics,
            clients,
            interceptor,
            intercept_tls,
            local,
        });
        Ok(Sidecar {
            shared,
            store,
            listener,
            admin,
            health,
        })
    }

    /// The proxy's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local
    }

    /// The metrics and health address, if configured.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The policy store (to reload by hand).
    pub fn policy_store(&self) -> Arc<PolicyStore> {
        Arc::clone(&self.store)
    }

    /// Serves until `shutdown` is cancelled, then stops accepting and drains
    /// open connections for the grace period. With more than one worker,
    /// the others run on their own threads, each with a single-threaded
    /// runtime accepting from the same listener.
    pub async fn serve(self, shutdown: CancellationToken) {
        let Sidecar {
            shared,
            store,
            listener,
            admin,
            health,
        } = self;
        let watch = tokio::spawn(Arc::clone(&store).watch(
            Arc::clone(&shared.metrics),
            shared.config.policy_poll,
            shutdown.clone(),
        ));
        let admin = admin.map(|l| {
            tokio::spawn(server::serve_admin(
                Arc::clone(&health),
                l,
                shutdown.clone(),
            ))
        });
        let mut workers = Vec::new();
        for n in 1..shared.config.workers.max(1) {
            let Some(clone) = socket_clone(&listener) else {
                tracing::warn!(
                    "cannot share the listener with worker {n}; serving with fewer workers"
                );
                break;
            };
            let shared = Arc::clone(&shared);
            let shutdown = shutdown.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("tollgate-worker-{n}"))
                .spawn(move || {
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(r) => r,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot start worker runtime");
                            return;
                        }
                    };
                    runtime.block_on(async move {
                        match TcpListener::from_std(clone) {
                            Ok(l) => server::serve_proxy(shared, l, shutdown).await,
                            Err(e) => tracing::error!(error = %e, "cannot use the shared listener"),
                        }
                    });
                });
            match spawned {
                Ok(handle) => workers.push(handle),
                Err(e) => tracing::warn!(error = %e, "cannot start worker {n}"),
            }
        }
        health.ready.store(true, Ordering::Relaxed);
        tracing::info!(listen = %shared.local, workers = workers.len() + 1, "sidecar proxy listening");
        server::serve_proxy(Arc::clone(&shared), listener, shutdown).await;
        health.ready.store(false, Ordering::Relaxed);
        let _ = tokio::task::spawn_blocking(move || {
            for w in workers {
                let _ = w.join();
            }
        })
        .await;
        let _ = watch.await;
        if let Some(a) = admin {
            let _ = a.await;
        }
    }
}

/// Another handle on the listening socket, for a worker's runtime.
fn socket_clone(listener: &TcpListener) -> Option<std::net::TcpListener> {
    use std::os::fd::AsFd;
    let fd = listener.as_fd().try_clone_to_owned().ok()?;
    let std = std::net::TcpListener::from(fd);
    std.set_nonblocking(true).ok()?;
    Some(std)
}
