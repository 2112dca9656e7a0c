//! The active action policy and its hot reload.
//!
//! The file is re-read when its directory changes (which catches a mounted
//! ConfigMap's atomic `..data` symlink swap as well as in-place edits) and
//! on a slow poll as a safety net. A file that does not parse or compile is
//! refused with a logged, located error and a metric, and the last good
//! policy stays active; with no valid policy at all every action is
//! denied. Rate-limit and budget counters carry over a reload for rules
//! whose name and limit are unchanged.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tollgate_policies::action::ActionPolicy;

use crate::metrics::Metrics;

/// The active policy, shared by the proxy and the metrics collector.
#[derive(Debug, Default)]
pub struct PolicyCell(RwLock<Option<Arc<ActionPolicy>>>);

impl PolicyCell {
    /// The active policy, if a valid one was ever loaded.
    pub fn current(&self) -> Option<Arc<ActionPolicy>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, policy: Arc<ActionPolicy>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Some(policy);
    }
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    /// A new policy is active.
    Loaded,
    /// The file did not change.
    Unchanged,
    /// The file was refused; the message says why.
    Refused(String),
    /// The file could not be read.
    Missing(String),
}

/// Loads and reloads the policy file into a [`PolicyCell`].
#[derive(Debug)]
pub struct PolicyStore {
    path: PathBuf,
    cell: Arc<PolicyCell>,
    last_digest: Mutex<Option<u64>>,
}

impl PolicyStore {
    /// A store for `path`, publishing into `cell`. Nothing is loaded yet.
    pub fn new(path: PathBuf, cell: Arc<PolicyCell>) -> PolicyStore {
        PolicyStore {
            path,
            cell,
            last_digest: Mutex::new(None),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Re-reads the file and activates it if it changed and is valid.
    pub fn reload(&self, metrics: &Metrics) -> Reload {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) => {
                let message = format!("{}: {e}", self.path.display());
                tracing::error!(error = %message, "cannot read the action policy; keeping the last good one");
                Metrics::count(&metrics.policy_reloads, "missing");
                return Reload::Missing(message);
            }
        };
        let mut hasher = DefaultHasher::new();
        text.hash(&mut hasher);
        let digest = hasher.finish();
        let mut last = self.last_digest.lock().unwrap_or_else(|e| e.into_inner());
        if *last == Some(digest) {
            return Reload::Unchanged;
        }
        *last = Some(digest);
        match ActionPolicy::parse(&text, &self.path.display().to_string()) {
            Ok(mut policy) => {
                if let Some(previous) = self.cell.current() {
                    policy.inherit_limits(&previous);
                }
                tracing::info!(
                    policy = policy.name(),
                    rules = policy.rule_count(),
                    routes = policy.routes().len(),
                    "action policy loaded"
                );
                metrics.policy_rules.set(policy.rule_count() as i64);
                metrics.policy_active.set(1);
                self.cell.set(Arc::new(policy));
                Metrics::count(&metrics.policy_reloads, "loaded");
                Reload::Loaded
            }
            Err(e) => {
                let active = self.cell.current().is_some();
                tracing::error!(
                    error = %e,
                    "action policy refused; {}",
                    if active { "the last good policy stays active" } else { "no policy is active: every action is denied" }
                );
                Metrics::count(&metrics.policy_reloads, "refused");
                Reload::Refused(e.to_string())
            }
        }
    }

    /// Watches the file until `shutdown`, reloading on change and every
    /// `poll`.
    pub async fn watch(
        self: Arc<Self>,
        metrics: Arc<Metrics>,
        poll: Duration,
        shutdown: CancellationToken,
    ) {
        let (tx, mut rx) = mpsc::channel::<()>(1);
        let watcher = self.start_watcher(tx);
        if let Err(e) = &watcher {
            tracing::warn!(error = %e, "cannot watch the policy file; polling every {poll:?}");
        }
        let mut ticker = tokio::time::interval(poll);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = ticker.tick() => {}
                Some(()) = rx.recv() => {
                    // Let a burst of events (a ConfigMap swap is several)
                    // settle before reading.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    while rx.try_recv().is_ok() {}
                }
            }
            let store = Arc::clone(&self);
            let metrics = Arc::clone(&metrics);
            let _ = tokio::task::spawn_blocking(move || store.reload(&metrics)).await;
        }
        drop(watcher);
    }

    fn start_watcher(&self, tx: mpsc::Sender<()>) -> notify::Result<notify::RecommendedWatcher> {
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        // Only changes that can change what the policy path reads: the file
        // itself, a ConfigMap's `..data` link, or the directory it points to.
        let name = self.path.file_name().map(|n| n.to_owned());
        let real_dir = std::fs::canonicalize(&self.path)
            .ok()
            .and_then(|p| p.parent().map(Path::to_owned));
        let relevant = move |path: &Path| {
            let file = path.file_name();
            file.is_some_and(|f| {
                Some(f) == name.as_deref() || f.to_string_lossy().starts_with("..data")
            }) || real_dir.as_ref().is_some_and(|d| path.starts_with(d))
        };
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if let Ok(event) = event
                    && (event.paths.is_empty() || event.paths.iter().any(|p| relevant(p)))
                {
                    let _ = tx.try_send(());
                }
            })?;
        watcher.watch(&dir, RecursiveMode::NonRecursive)?;
        // A symlinked file (ConfigMap key -> ..data/key) also changes when
        // its target's directory does; watch that too when it differs.
        if let Ok(real) = std::fs::canonicalize(&self.path)
            && let Some(real_dir) = real.parent()
            && real_dir != dir
        {
            let _ = watcher.watch(real_dir, RecursiveMode::NonRecursive);
        }
        Ok(watcher)
    }
}
