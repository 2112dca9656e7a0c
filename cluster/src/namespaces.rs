//! The namespace reflector: a kube-runtime watcher over Namespaces feeding an
//! in-memory map that answers [`NamespaceSource`] lookups on the admission
//! path without I/O.
//!
//! Memory stays bounded by what policies read: every label is kept (Pod
//! Security levels, compliance profiles, injection, and any key a Gatekeeper
//! `namespaceSelector` may name; the API server limits their size), but only
//! annotations under the configured prefixes (by default the inherited
//! `deployscope.dev/*` ownership and `*tollgate.dev/*`), so large annotations
//! such as `kubectl.kubernetes.io/last-applied-configuration` are dropped.
//!
//! Resync: after a watch error the watcher resumes from its last resource
//! version; when that has expired (`410 Gone`) it relists, and the relisted
//! set replaces the map atomically at the end of the list (namespaces
//! deleted while disconnected disappear). The reflector is ready once the
//! first list completed.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tollgate_policies::{NamespaceInfo, NamespaceSource};

/// Which annotations the reflector keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamespaceSettings {
    /// Annotation key prefixes kept; a prefix starting with `.` matches any
    /// domain ending in it (`.tollgate.dev/` keeps `pss.tollgate.dev/x`).
    #[serde(default = "default_prefixes")]
    pub annotation_prefixes: Vec<String>,
}

impl Default for NamespaceSettings {
    fn default() -> Self {
        NamespaceSettings {
            annotation_prefixes: default_prefixes(),
        }
    }
}

fn default_prefixes() -> Vec<String> {
    vec![
        "deployscope.dev/".into(),
        "tollgate.dev/".into(),
        ".tollgate.dev/".into(),
    ]
}

impl NamespaceSettings {
    /// Whether an annotation key is kept.
    pub fn keeps(&self, key: &str) -> bool {
        self.annotation_prefixes.iter().any(|p| {
            if let Some(suffix) = p.strip_prefix('.') {
                key.split_once('/').is_some_and(|(domain, _)| {
                    domain.ends_with(&format!(".{}", suffix.trim_end_matches('/')))
                })
            } else {
                key.starts_with(p.as_str())
            }
        })
    }

    /// The policy view of a Namespace object.
    pub fn info(&self, ns: &Namespace) -> Option<NamespaceInfo> {
        let name = ns.metadata.name.clone()?;
        let labels: BTreeMap<String, String> = ns.metadata.labels.clone().unwrap_or_default();
        let annotations = ns
            .metadata
            .annotations
            .iter()
            .flatten()
            .filter(|(k, _)| self.keeps(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Some(NamespaceInfo {
            name,
            labels,
            annotations,
        })
    }
}

/// Counters of the reflector, for metrics and tests.
#[derive(Debug, Default)]
pub struct ReflectorStats {
    /// Completed lists (the first, then one per relist).
    pub lists: AtomicU64,
    /// Watch errors seen (each followed by a resume or a relist).
    pub errors: AtomicU64,
    /// Events applied.
    pub events: AtomicU64,
}

#[derive(Debug)]
struct Inner {
    map: RwLock<HashMap<String, Arc<NamespaceInfo>>>,
    ready: AtomicBool,
    ready_tx: watch::Sender<bool>,
    settings: NamespaceSettings,
    stats: ReflectorStats,
}

/// Live namespaces; cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct NamespaceReflector {
    inner: Arc<Inner>,
}

impl NamespaceReflector {
    /// An empty, not yet ready reflector.
    pub fn new(settings: NamespaceSettings) -> NamespaceReflector {
        NamespaceReflector {
            inner: Arc::new(Inner {
                map: RwLock::new(HashMap::new()),
                ready: AtomicBool::new(false),
                ready_tx: watch::channel(false).0,
                settings,
                stats: ReflectorStats::default(),
            }),
        }
    }

    /// Starts watching with `client` on the current runtime.
    pub fn spawn(
        client: Client,
        settings: NamespaceSettings,
    ) -> (NamespaceReflector, tokio::task::JoinHandle<()>) {
        let reflector = NamespaceReflector::new(settings);
        let task = tokio::spawn(reflector.clone().run(client));
        (reflector, task)
    }

    /// Watches namespaces until the task is dropped; errors are logged and
    /// retried with backoff.
    pub async fn run(self, client: Client) {
        let api: Api<Namespace> = Api::all(client);
        let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
        futures::pin_mut!(stream);
        let mut buffer: Option<HashMap<String, Arc<NamespaceInfo>>> = None;
        while let Some(item) = stream.next().await {
            match item {
                Ok(event) => self.apply(event, &mut buffer),
                Err(e) => {
                    self.inner.stats.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "namespace watch failed; resuming (relisting if expired)");
                }
            }
        }
    }

    fn apply(
        &self,
        event: Event<Namespace>,
        buffer: &mut Option<HashMap<String, Arc<NamespaceInfo>>>,
    ) {
        self.inner.stats.events.fetch_add(1, Ordering::Relaxed);
        match event {
            Event::Init => *buffer = Some(HashMap::new()),
            Event::InitApply(ns) => {
                if let (Some(buf), Some(info)) = (buffer.as_mut(), self.inner.settings.info(&ns)) {
                    buf.insert(info.name.clone(), Arc::new(info));
                }
            }
            Event::InitDone => {
                let fresh = buffer.take().unwrap_or_default();
                let count = fresh.len();
                *self.write() = fresh;
                self.inner.stats.lists.fetch_add(1, Ordering::Relaxed);
                if !self.inner.ready.swap(true, Ordering::SeqCst) {
                    tracing::info!(namespaces = count, "namespace reflector ready");
                }
                self.inner.ready_tx.send_replace(true);
            }
            Event::Apply(ns) => {
                if let Some(info) = self.inner.settings.info(&ns) {
                    let changed = self.get(&info.name).is_none_or(|old| *old != info);
                    if changed {
                        self.write().insert(info.name.clone(), Arc::new(info));
                    }
                }
            }
            Event::Delete(ns) => {
                if let Some(name) = ns.metadata.name {
                    self.write().remove(&name);
                }
            }
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<NamespaceInfo>>> {
        self.inner.map.write().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, name: &str) -> Option<Arc<NamespaceInfo>> {
        let map = self.inner.map.read().unwrap_or_else(|e| e.into_inner());
        map.get(name).cloned()
    }

    /// Whether the first list completed.
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::SeqCst)
    }

    /// Resolves once the first list completed.
    pub async fn wait_ready(&self) {
        let mut rx = self.inner.ready_tx.subscribe();
        let _ = rx.wait_for(|r| *r).await;
    }

    /// How many namespaces are known.
    pub fn len(&self) -> usize {
        self.inner.map.read().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether no namespace is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The counters.
    pub fn stats(&self) -> &ReflectorStats {
        &self.inner.stats
    }
}

impl NamespaceSource for NamespaceReflector {
    fn namespace(&self, name: &str) -> Option<Arc<NamespaceInfo>> {
        self.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotation_filter() {
        let s = NamespaceSettings::default();
        assert!(s.keeps("deployscope.dev/owner"));
        assert!(s.keeps("tollgate.dev/inject"));
        assert!(s.keeps("pss.tollgate.dev/enforce"));
        assert!(!s.keeps("kubectl.kubernetes.io/last-applied-configuration"));
        assert!(!s.keeps("eviltollgate.dev/x"));
    }
}
