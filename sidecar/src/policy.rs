//! The active action policy and its hot reload.
//!
//! The file is re-read when its directory changes (which catches a mounted
//! ConfigMap's atomic `..data` symlink swap as well as in-place edits) and
//! on a slow poll as a safety net. A file that does not parse or compile is
//! refused with a logged, located error and a metric, and the last good
//! policy stays active; with no valid policy at all every action is
//! denied. Rate-limit and budget counters carry over a reload for rules
//! whose name and limit are unchanged.
//!
//! With an OSSA agent manifest (`--ossa-manifest`) the manifest is watched
//! and reloaded the same way, and its baseline is combined with the policy
//! file (an action must pass both); with a manifest and no policy file the
//! baseline alone decides (see `tollgate_policies::action::ossa`).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tollgate_policies::action::ActionPolicy;
use tollgate_policies::action::ossa::{AgentManifest, Baseline, Placement};

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
    path: Option<PathBuf>,
    manifest: Option<PathBuf>,
    /// The pod's namespace, for the manifest's in-cluster server names.
    namespace: Option<String>,
    cell: Arc<PolicyCell>,
    last_digest: Mutex<Option<u64>>,
}

impl PolicyStore {
    /// A store for `path`, publishing into `cell`. Nothing is loaded yet.
    pub fn new(path: PathBuf, cell: Arc<PolicyCell>) -> PolicyStore {
        PolicyStore {
            path: Some(path),
            manifest: None,
            namespace: None,
            cell,
            last_digest: Mutex::new(None),
        }
    }

    /// A store for an OSSA manifest alone: its baseline decides.
    pub fn manifest_only(manifest: PathBuf, cell: Arc<PolicyCell>) -> PolicyStore {
        PolicyStore {
            path: None,
            manifest: Some(manifest),
            namespace: None,
            cell,
            last_digest: Mutex::new(None),
        }
    }

    /// Also reads the OSSA manifest at `manifest` and combines its
    /// baseline with the policy file.
    pub fn with_manifest(mut self, manifest: Option<PathBuf>) -> PolicyStore {
        self.manifest = manifest;
        self
    }

    /// The pod's namespace: an OSSA manifest's bare Service names (`mcp`)
    /// also match their in-cluster spellings (`mcp.<namespace>.svc`).
    pub fn with_namespace(mut self, namespace: Option<String>) -> PolicyStore {
        self.namespace = namespace;
        self
    }

    /// The policy file, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The OSSA manifest, if any.
    pub fn manifest(&self) -> Option<&Path> {
        self.manifest.as_deref()
    }

    fn paths(&self) -> impl Iterator<Item = &Path> {
        self.path
            .iter()
            .chain(self.manifest.iter())
            .map(PathBuf::as_path)
    }

    /// Re-reads the file (and manifest) and activates the result if it
    /// changed and is valid.
    pub fn reload(&self, metrics: &Metrics) -> Reload {
        let mut texts = Vec::with_capacity(2);
        for path in self.paths() {
            match std::fs::read_to_string(path) {
                Ok(t) => texts.push(t),
                Err(e) => {
                    let message = format!("{}: {e}", path.display());
                    tracing::error!(error = %message, "cannot read the action policy; keeping the last good one");
                    Metrics::count(&metrics.policy_reloads, "missing");
                    return Reload::Missing(message);
                }
            }
        }
        let mut hasher = DefaultHasher::new();
        texts.hash(&mut hasher);
        let digest = hasher.finish();
        let mut last = self.last_digest.lock().unwrap_or_else(|e| e.into_inner());
        if *last == Some(digest) {
            return Reload::Unchanged;
        }
        *last = Some(digest);
        match self.build(&texts) {
            Ok(mut policy) => {
                if let Some(previous) = self.cell.current() {
                    policy.inherit_limits(&previous);
                }
                tracing::info!(
                    policy = policy.name(),
                    rules = policy.rule_count(),
                    routes = policy.routes().len(),
                    ossa_baseline = policy.baseline().map(ActionPolicy::name),
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

    /// The policy from the texts of the policy file and the manifest, in
    /// that order (each present when its path is).
    fn build(
        &self,
        texts: &[String],
    ) -> Result<ActionPolicy, tollgate_policies::action::ActionPolicyError> {
        let mut texts = texts.iter().map(String::as_str);
        let policy = match &self.path {
            Some(path) => Some(ActionPolicy::parse(
                texts.next().unwrap_or_default(),
                &path.display().to_string(),
            )?),
            None => None,
        };
        let manifest = match &self.manifest {
            Some(path) => Some(AgentManifest::parse(
                texts.next().unwrap_or_default(),
                &path.display().to_string(),
            )?),
            None => None,
        };
        let placement = Placement::new(self.namespace.clone());
        Ok(match (policy, manifest) {
            (Some(policy), Some(m)) => {
                let placement = placement.with_routes_of(&policy);
                log_notes(&m, &placement, false);
                let baseline = Baseline::constraint(&m, &placement)?;
                policy.with_baseline(Arc::new(baseline))
            }
            (Some(policy), None) => policy,
            (None, Some(m)) => {
                log_notes(&m, &placement, true);
                Baseline::standalone(&m, &placement)?
            }
            (None, None) => ActionPolicy::compile_spec("none", &Default::default())?,
        })
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
        // Only changes that can change what a watched path reads: the file
        // itself, a ConfigMap's `..data` link, or the directory it points to.
        let mut dirs: Vec<PathBuf> = Vec::new();
        let mut names = Vec::new();
        let mut real_dirs: Vec<PathBuf> = Vec::new();
        for path in self.paths() {
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
                _ => PathBuf::from("."),
            };
            if !dirs.contains(&dir) {
                dirs.push(dir.clone());
            }
            names.extend(path.file_name().map(|n| n.to_owned()));
            // A symlinked file (ConfigMap key -> ..data/key) also changes
            // when its target's directory does; watch that too.
            if let Ok(real) = std::fs::canonicalize(path)
                && let Some(real_dir) = real.parent()
                && real_dir != dir
            {
                real_dirs.push(real_dir.to_owned());
            }
        }
        let watched_real = real_dirs.clone();
        let relevant = move |path: &Path| {
            let file = path.file_name();
            file.is_some_and(|f| {
                names.iter().any(|n| n.as_os_str() == f)
                    || f.to_string_lossy().starts_with("..data")
            }) || watched_real.iter().any(|d| path.starts_with(d))
        };
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if let Ok(event) = event
                    && (event.paths.is_empty() || event.paths.iter().any(|p| relevant(p)))
                {
                    let _ = tx.try_send(());
                }
            })?;
        for dir in &dirs {
            watcher.watch(dir, RecursiveMode::NonRecursive)?;
        }
        for dir in &real_dirs {
            let _ = watcher.watch(dir, RecursiveMode::NonRecursive);
        }
        Ok(watcher)
    }
}

/// Logs what the manifest declares that the sidecar does not enforce, so
/// nothing it declares is dropped silently.
fn log_notes(manifest: &AgentManifest, placement: &Placement, standalone: bool) {
    if let Ok(plan) = Baseline::plan(manifest, placement, standalone) {
        for note in plan.notes {
            tracing::warn!(agent = manifest.name(), %note, "OSSA manifest: declared but not enforced");
        }
    }
}
