//! The serving certificate: configured files, or the embedded default
//! (a CA and certificate generated into the state directory). Either way
//! the files are hot-reloaded, and a generated certificate is renewed
//! before it expires.

use std::sync::Arc;
use std::time::Duration;

use tollgate_certs::{
    Lifetimes, ReloadOutcome, ReloadingResolver, ServingState, WatchHandle, ensure_serving,
};

use crate::WebhookError;
use crate::metrics::{Metrics, ResultLabels};
use crate::settings::Settings;

/// How often a generated certificate's expiry is checked.
const RENEW_CHECK: Duration = Duration::from_secs(3600);

/// Where the serving certificate comes from.
#[derive(Debug, Clone)]
pub enum CertificateSource {
    /// Configured files (`tls.certFile`, `tls.keyFile`).
    Files,
    /// Generated into the state directory.
    Generated(ServingState),
}

/// The serving certificate, ready for rustls.
#[derive(Debug, Clone)]
pub struct PreparedTls {
    /// Serves the current pair; reloaded when the files change.
    pub resolver: Arc<ReloadingResolver>,
    /// Where it comes from.
    pub source: CertificateSource,
}

/// Loads the configured pair, or generates (or reuses) the embedded default.
pub fn prepare(settings: &Settings) -> Result<PreparedTls, WebhookError> {
    match (&settings.tls.cert_file, &settings.tls.key_file) {
        (Some(cert), Some(key)) => Ok(PreparedTls {
            resolver: ReloadingResolver::load(cert, key).map_err(WebhookError::Certificates)?,
            source: CertificateSource::Files,
        }),
        _ => {
            let state = ensure_serving(
                &settings.state_dir,
                &settings.tls.dns_names,
                &Lifetimes::default(),
            )
            .map_err(WebhookError::Certificates)?;
            let resolver = ReloadingResolver::load(&state.cert, &state.key)
                .map_err(WebhookError::Certificates)?;
            Ok(PreparedTls {
                resolver,
                source: CertificateSource::Generated(state),
            })
        }
    }
}

/// Background work that keeps the certificate fresh; stops when dropped.
#[derive(Debug)]
pub struct Upkeep {
    _watch: WatchHandle,
    renew: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Upkeep {
    fn drop(&mut self) {
        if let Some(task) = &self.renew {
            task.abort();
        }
    }
}

/// Starts watching the certificate files (and renewing a generated
/// certificate), counting reloads in `metrics`.
pub fn upkeep(prepared: &PreparedTls, settings: &Settings, metrics: &Arc<Metrics>) -> Upkeep {
    set_expiry(metrics, &prepared.resolver);
    let m = Arc::clone(metrics);
    let resolver = Arc::clone(&prepared.resolver);
    let watch = prepared
        .resolver
        .watch(settings.tls.reload_interval, move |outcome| match outcome {
            ReloadOutcome::Reloaded { .. } => {
                m.cert_reloads
                    .get_or_create(&ResultLabels { result: "success" })
                    .inc();
                set_expiry(&m, &resolver);
                tracing::info!(cert = %resolver.cert_path().display(), "serving certificate reloaded");
            }
            ReloadOutcome::Failed(err) => {
                m.cert_reloads
                    .get_or_create(&ResultLabels { result: "failure" })
                    .inc();
                tracing::error!(error = %err, "serving certificate not reloaded; still serving the previous one");
            }
            ReloadOutcome::Unchanged => {}
        });
    let renew = match &prepared.source {
        CertificateSource::Files => None,
        CertificateSource::Generated(_) => {
            let dir = settings.state_dir.clone();
            let names = settings.tls.dns_names.clone();
            Some(tokio::spawn(async move {
                let mut ticker = tokio::time::interval(RENEW_CHECK);
                ticker.tick().await;
                loop {
                    ticker.tick().await;
                    let (dir, names) = (dir.clone(), names.clone());
                    let result = tokio::task::spawn_blocking(move || {
                        ensure_serving(&dir, &names, &Lifetimes::default())
                    })
                    .await;
                    match result {
                        Ok(Ok(state)) => {
                            if state.serving_action != tollgate_certs::state::Action::Reused {
                                tracing::info!(action = ?state.serving_action, "generated serving certificate renewed");
                            }
                        }
                        Ok(Err(err)) => {
                            tracing::error!(error = %err, "could not renew the generated serving certificate")
                        }
                        Err(err) => {
                            tracing::error!(error = %err, "certificate renewal task failed")
                        }
                    }
                }
            }))
        }
    };
    Upkeep {
        _watch: watch,
        renew,
    }
}

fn set_expiry(metrics: &Metrics, resolver: &ReloadingResolver) {
    if let Some(t) = resolver.not_after() {
        metrics.cert_expiry.set(t.unix_timestamp());
    }
}
