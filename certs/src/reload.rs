//! Hot reload of a serving certificate and key from files.
//!
//! The files are watched (inotify through `notify`, on their directories, so
//! the atomic `..data` symlink swap Kubernetes performs on mounted Secrets
//! is seen) and polled as a fallback. A new pair replaces the served one
//! only when it differs from it, both files parse, and the key belongs to
//! the certificate; otherwise the old pair keeps serving and the failure is
//! reported once per distinct file content (a half-written rotation —
//! new certificate, old key — is retried on the next change). TLS
//! handshakes read the current pair without waiting: a swap never fails an
//! in-flight or a new connection.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::{CertError, not_after, pem, tls};

/// How long to let a burst of file events settle before reloading.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// The result of one reload check.
#[derive(Debug)]
pub enum ReloadOutcome {
    /// The files hold the pair already served (or a failure already
    /// reported).
    Unchanged,
    /// A new pair is being served.
    Reloaded {
        /// When the new certificate expires.
        not_after: Option<OffsetDateTime>,
    },
    /// The files changed but could not be used; the previous pair is
    /// still served.
    Failed(CertError),
}

struct Current {
    key: Arc<CertifiedKey>,
    fingerprint: [u8; 32],
    not_after: Option<OffsetDateTime>,
}

/// A certificate resolver serving the pair in two files, reloaded when they
/// change.
pub struct ReloadingResolver {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Arc<Current>>,
    last_failed: Mutex<Option<[u8; 32]>>,
}

impl std::fmt::Debug for ReloadingResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingResolver")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .finish_non_exhaustive()
    }
}

impl ResolvesServerCert for ReloadingResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current_key())
    }
}

/// Stops watching when dropped.
#[derive(Debug)]
pub struct WatchHandle {
    task: JoinHandle<()>,
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ReloadingResolver {
    /// Loads the pair; fails when it is unusable (there is nothing to serve
    /// yet, so this is a startup error).
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Arc<ReloadingResolver>, CertError> {
        let (cert, key) = read_pair(cert_path, key_path)?;
        let current = build(&cert, &key)?;
        Ok(Arc::new(ReloadingResolver {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            current: RwLock::new(Arc::new(current)),
            last_failed: Mutex::new(None),
        }))
    }

    /// The pair being served.
    pub fn current_key(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.current_state().key)
    }

    /// When the served certificate expires.
    pub fn not_after(&self) -> Option<OffsetDateTime> {
        self.current_state().not_after
    }

    /// The certificate file.
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// The key file.
    pub fn key_path(&self) -> &Path {
        &self.key_path
    }

    fn current_state(&self) -> Arc<Current> {
        // A poisoned lock still holds a whole Arc: a swap is one assignment.
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Reads the files and swaps in the pair they hold if it is new and
    /// usable.
    pub fn check(&self) -> ReloadOutcome {
        let (cert, key) = match read_pair(&self.cert_path, &self.key_path) {
            Ok(pair) => pair,
            Err(e) => return self.failed(None, e),
        };
        let print = fingerprint(&cert, &key);
        if print == self.current_state().fingerprint {
            return ReloadOutcome::Unchanged;
        }
        match build(&cert, &key) {
            Ok(next) => {
                let not_after = next.not_after;
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(next);
                *self
                    .last_failed
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = None;
                ReloadOutcome::Reloaded { not_after }
            }
            Err(e) => self.failed(Some(print), e),
        }
    }

    /// Reports a failure once per distinct content (`None`: unreadable).
    fn failed(&self, print: Option<[u8; 32]>, err: CertError) -> ReloadOutcome {
        let marker = print.unwrap_or([0; 32]);
        let mut last = self
            .last_failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if *last == Some(marker) {
            return ReloadOutcome::Unchanged;
        }
        *last = Some(marker);
        ReloadOutcome::Failed(err)
    }

    /// Watches the files (and polls every `poll`), reporting every reload
    /// or failure to `on_event`. Needs a Tokio runtime.
    pub fn watch<F>(self: &Arc<Self>, poll: Duration, on_event: F) -> WatchHandle
    where
        F: Fn(&ReloadOutcome) + Send + Sync + 'static,
    {
        let (tx, mut rx) = mpsc::channel::<()>(1);
        let watcher = self.file_watcher(tx);
        let this = Arc::clone(self);
        let task = tokio::spawn(async move {
            // Keep the watcher alive as long as the task runs.
            let _watcher = watcher;
            let mut ticker = tokio::time::interval(poll);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                tokio::select! {
                    Some(()) = rx.recv() => {
                        tokio::time::sleep(DEBOUNCE).await;
                        while rx.try_recv().is_ok() {}
                    }
                    _ = ticker.tick() => {}
                }
                let outcome = this.check();
                if !matches!(outcome, ReloadOutcome::Unchanged) {
                    on_event(&outcome);
                }
            }
        });
        WatchHandle { task }
    }

    fn file_watcher(&self, tx: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
        use notify::Watcher as _;
        let mut watcher =
            match notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                if res.is_ok() {
                    // A full channel already holds a pending wake-up.
                    let _ = tx.try_send(());
                }
            }) {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch certificate files; polling only");
                    return None;
                }
            };
        let mut dirs: Vec<PathBuf> = Vec::new();
        for file in [&self.cert_path, &self.key_path] {
            let dir = match file.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
                _ => PathBuf::from("."),
            };
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
        for dir in dirs {
            if let Err(e) = watcher.watch(&dir, notify::RecursiveMode::NonRecursive) {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot watch directory; polling only");
            }
        }
        Some(watcher)
    }
}

fn read_pair(cert_path: &Path, key_path: &Path) -> Result<(Vec<u8>, Vec<u8>), CertError> {
    Ok((pem::read(cert_path)?, pem::read(key_path)?))
}

fn build(cert: &[u8], key: &[u8]) -> Result<Current, CertError> {
    let certified = tls::certified_key(cert, key)?;
    Ok(Current {
        key: Arc::new(certified),
        fingerprint: fingerprint(cert, key),
        not_after: not_after(cert).ok(),
    })
}

fn fingerprint(cert: &[u8], key: &[u8]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(&(cert.len() as u64).to_le_bytes());
    ctx.update(cert);
    ctx.update(key);
    ctx.finish().as_ref().try_into().unwrap_or([0u8; 32])
}

#[cfg(test)]
mod tests;
