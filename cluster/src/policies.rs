//! Policies held in the cluster, hot-reloaded:
//!
//! - Gatekeeper `ConstraintTemplate`s (`templates.gatekeeper.sh/v1`) and
//!   their constraints (`constraints.gatekeeper.sh/v1beta1`, one resource
//!   per template kind, plural = lower-cased kind as Gatekeeper names them).
//!   Every change rebuilds the [`ConstraintSet`] and swaps it into the
//!   shared [`ConstraintStore`]; a set that fails to load (a broken template
//!   or constraint) is reported — log, [`PolicyStatus`], metric — and the
//!   last good set stays active.
//! - The `TollgatePolicy` named in the settings (see [`crate::crd`]):
//!   parsed and validated as the `policy:` section, published on a watch
//!   channel (`None` when absent: the file's section applies).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tollgate_policies::config::PolicyConfig;
use tollgate_policies::gatekeeper::{ConstraintSet, ConstraintStore, LoadOptions, SourceFile};

use crate::crd::TollgatePolicy;

/// The `cluster.policies` config section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicySettings {
    /// Load Gatekeeper ConstraintTemplates and constraints from the cluster.
    #[serde(default = "yes")]
    pub gatekeeper: bool,
    /// Load the `TollgatePolicy` object named below.
    #[serde(default = "yes")]
    pub tollgate_policy: bool,
    /// The `TollgatePolicy` to load.
    #[serde(default = "default_policy_name")]
    pub tollgate_policy_name: String,
}

fn yes() -> bool {
    true
}
fn default_policy_name() -> String {
    "default".into()
}

impl Default for PolicySettings {
    fn default() -> Self {
        PolicySettings {
            gatekeeper: true,
            tollgate_policy: true,
            tollgate_policy_name: default_policy_name(),
        }
    }
}

/// What the last reload did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PolicyStatus {
    /// Templates in the active set.
    pub templates: usize,
    /// Constraints in the active set.
    pub constraints: usize,
    /// Successful reloads.
    pub reloads: u64,
    /// Refused reloads (the previous set stayed active).
    pub failures: u64,
    /// Why the last reload was refused, while the problem persists.
    pub last_error: Option<String>,
    /// Why the last `TollgatePolicy` was refused, while it persists.
    pub tollgate_policy_error: Option<String>,
}

const TEMPLATE_GROUP: &str = "templates.gatekeeper.sh";
const CONSTRAINT_GROUP: &str = "constraints.gatekeeper.sh";

enum Msg {
    Template(Event<DynamicObject>),
    Constraint(String, Event<DynamicObject>),
}

/// A keyed map that follows a watcher, replacing its contents atomically
/// after each (re)list.
#[derive(Default)]
struct Followed {
    items: BTreeMap<String, DynamicObject>,
    buffer: Option<BTreeMap<String, DynamicObject>>,
}

impl Followed {
    /// Applies an event; returns whether the contents changed.
    fn apply(&mut self, event: Event<DynamicObject>) -> bool {
        let key = |o: &DynamicObject| o.metadata.name.clone().unwrap_or_default();
        match event {
            Event::Init => {
                self.buffer = Some(BTreeMap::new());
                false
            }
            Event::InitApply(o) => {
                if let Some(b) = self.buffer.as_mut() {
                    b.insert(key(&o), o);
                }
                false
            }
            Event::InitDone => {
                self.items = self.buffer.take().unwrap_or_default();
                true
            }
            Event::Apply(o) => {
                self.items.insert(key(&o), o);
                true
            }
            Event::Delete(o) => self.items.remove(&key(&o)).is_some(),
        }
    }
}

/// Cluster-held policies; cheap to clone.
#[derive(Debug, Clone)]
pub struct ClusterPolicies {
    constraints: Arc<ConstraintStore>,
    status: Arc<Mutex<PolicyStatus>>,
    config: watch::Sender<Option<PolicyConfig>>,
}

impl ClusterPolicies {
    /// Starts following the cluster on the current runtime, swapping
    /// constraint sets into `constraints`.
    /// `extra` documents (constraints from files) are part of every set.
    pub fn spawn(
        client: Client,
        settings: &PolicySettings,
        constraints: Arc<ConstraintStore>,
        options: LoadOptions,
        extra: Vec<SourceFile>,
    ) -> ClusterPolicies {
        let policies = ClusterPolicies {
            constraints,
            status: Arc::new(Mutex::new(PolicyStatus::default())),
            config: watch::channel(None).0,
        };
        if settings.gatekeeper {
            tokio::spawn(
                policies
                    .clone()
                    .follow_gatekeeper(client.clone(), options, extra),
            );
        }
        if settings.tollgate_policy {
            tokio::spawn(
                policies
                    .clone()
                    .follow_tollgate_policy(client, settings.tollgate_policy_name.clone()),
            );
        }
        policies
    }

    /// The store constraint sets are swapped into.
    pub fn constraints(&self) -> &Arc<ConstraintStore> {
        &self.constraints
    }

    /// The current status.
    pub fn status(&self) -> PolicyStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The `TollgatePolicy` configuration (`None`: absent or not loaded yet,
    /// the file applies); changes are announced on the receiver.
    pub fn tollgate_policy(&self) -> watch::Receiver<Option<PolicyConfig>> {
        self.config.subscribe()
    }

    fn update_status(&self, f: impl FnOnce(&mut PolicyStatus)) {
        if let Ok(mut s) = self.status.lock() {
            f(&mut s);
        }
    }

    async fn follow_gatekeeper(self, client: Client, options: LoadOptions, extra: Vec<SourceFile>) {
        let (tx, mut rx) = mpsc::channel::<Msg>(256);
        let templates_ar = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(TEMPLATE_GROUP, "v1", "ConstraintTemplate"),
            "constrainttemplates",
        );
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &templates_ar);
        let template_tx = tx.clone();
        tokio::spawn(async move {
            let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
            futures::pin_mut!(stream);
            while let Some(item) = stream.next().await {
                match item {
                    Ok(e) => {
                        if template_tx.send(Msg::Template(e)).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "ConstraintTemplate watch failed; retrying")
                    }
                }
            }
        });
        let mut templates = Followed::default();
        let mut constraints: HashMap<String, Followed> = HashMap::new();
        let mut watchers: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
        let mut templates_listed = false;
        while let Some(msg) = rx.recv().await {
            let mut changed = match msg {
                Msg::Template(e) => {
                    if matches!(e, Event::InitDone) {
                        templates_listed = true;
                    }
                    templates.apply(e)
                }
                Msg::Constraint(kind, e) => constraints.entry(kind).or_default().apply(e),
            };
            // Batch what is already queued into one rebuild.
            while let Ok(msg) = rx.try_recv() {
                changed |= match msg {
                    Msg::Template(e) => {
                        if matches!(e, Event::InitDone) {
                            templates_listed = true;
                        }
                        templates.apply(e)
                    }
                    Msg::Constraint(kind, e) => constraints.entry(kind).or_default().apply(e),
                };
            }
            if !changed || !templates_listed {
                continue;
            }
            // One constraint watcher per template kind.
            let kinds: Vec<String> = templates.items.values().filter_map(template_kind).collect();
            watchers.retain(|kind, task| {
                let keep = kinds.contains(kind);
                if !keep {
                    task.abort();
                }
                keep
            });
            constraints.retain(|kind, _| kinds.contains(kind));
            for kind in &kinds {
                if !watchers.contains_key(kind) {
                    watchers.insert(
                        kind.clone(),
                        spawn_constraint_watch(client.clone(), kind, tx.clone()),
                    );
                }
            }
            self.rebuild(&templates, &constraints, options, &extra);
        }
    }

    fn rebuild(
        &self,
        templates: &Followed,
        constraints: &HashMap<String, Followed>,
        options: LoadOptions,
        extra: &[SourceFile],
    ) {
        let mut files = extra.to_vec();
        for (name, t) in &templates.items {
            files.push(source(
                &format!("ConstraintTemplate/{name}"),
                t,
                "templates.gatekeeper.sh/v1",
                "ConstraintTemplate",
            ));
        }
        let mut kinds: Vec<&String> = constraints.keys().collect();
        kinds.sort();
        for kind in kinds {
            if let Some(f) = constraints.get(kind) {
                for (name, c) in &f.items {
                    files.push(source(
                        &format!("{kind}/{name}"),
                        c,
                        "constraints.gatekeeper.sh/v1beta1",
                        kind,
                    ));
                }
            }
        }
        match self.constraints.reload(&files, options) {
            Ok(set) => {
                let (t, c) = counts(&set);
                tracing::info!(
                    templates = t,
                    constraints = c,
                    "cluster constraints reloaded"
                );
                self.update_status(|s| {
                    s.templates = t;
                    s.constraints = c;
                    s.reloads += 1;
                    s.last_error = None;
                });
            }
            Err(e) => {
                tracing::error!(error = %e, "cluster constraints refused; the previous set stays active");
                self.update_status(|s| {
                    s.failures += 1;
                    s.last_error = Some(e.to_string());
                });
            }
        }
    }

    async fn follow_tollgate_policy(self, client: Client, name: String) {
        let api: Api<TollgatePolicy> = Api::all(client);
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let stream = watcher::watcher(api, config).default_backoff();
        futures::pin_mut!(stream);
        let mut seen: Option<TollgatePolicy> = None;
        let mut buffer: Option<Option<TollgatePolicy>> = None;
        while let Some(item) = stream.next().await {
            let next = match item {
                Ok(Event::Init) => {
                    buffer = Some(None);
                    continue;
                }
                Ok(Event::InitApply(p)) => {
                    buffer = Some(Some(p));
                    continue;
                }
                Ok(Event::InitDone) => buffer.take().flatten(),
                Ok(Event::Apply(p)) => Some(p),
                Ok(Event::Delete(_)) => None,
                Err(e) => {
                    tracing::warn!(error = %e, "TollgatePolicy watch failed; retrying");
                    continue;
                }
            };
            if next.as_ref().map(|p| &p.spec) == seen.as_ref().map(|p| &p.spec)
                && next.is_some() == seen.is_some()
            {
                continue;
            }
            seen = next.clone();
            match next {
                None => {
                    tracing::info!(%name, "no TollgatePolicy; the config file's policy section applies");
                    self.update_status(|s| s.tollgate_policy_error = None);
                    self.config.send_replace(None);
                }
                Some(p) => match parse_policy(&p) {
                    Ok(cfg) => {
                        tracing::info!(%name, "TollgatePolicy loaded");
                        self.update_status(|s| s.tollgate_policy_error = None);
                        self.config.send_replace(Some(cfg));
                    }
                    Err(e) => {
                        tracing::error!(%name, error = %e, "TollgatePolicy refused; the previous policy stays active");
                        self.update_status(|s| {
                            s.failures += 1;
                            s.tollgate_policy_error = Some(e);
                        });
                    }
                },
            }
        }
    }
}

/// Parses and validates a `TollgatePolicy`'s `spec.policy`.
pub fn parse_policy(policy: &TollgatePolicy) -> Result<PolicyConfig, String> {
    let name = policy.metadata.name.clone().unwrap_or_default();
    let value = if policy.spec.policy.is_null() {
        serde_json::json!({})
    } else {
        policy.spec.policy.clone()
    };
    let config: PolicyConfig = serde_json::from_value(value)
        .map_err(|e| format!("TollgatePolicy/{name}: spec.policy: {e}"))?;
    config
        .validate()
        .map_err(|e| format!("TollgatePolicy/{name}: spec.policy.{e}"))?;
    Ok(config)
}

fn counts(set: &ConstraintSet) -> (usize, usize) {
    (set.templates().count(), set.constraints().len())
}

/// The constraint kind a template defines (`spec.crd.spec.names.kind`).
fn template_kind(t: &DynamicObject) -> Option<String> {
    t.data
        .pointer("/spec/crd/spec/names/kind")
        .and_then(|k| k.as_str())
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
}

/// An object as a source document named `Kind/name` for error messages.
fn source(name: &str, obj: &DynamicObject, api_version: &str, kind: &str) -> SourceFile {
    let mut value = serde_json::to_value(obj).unwrap_or_default();
    if let Some(o) = value.as_object_mut() {
        o.insert("apiVersion".into(), api_version.into());
        o.insert("kind".into(), kind.into());
        if let Some(meta) = o.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            meta.remove("managedFields");
            meta.remove("annotations");
        }
    }
    let text = serde_json::to_string_pretty(&value).unwrap_or_default();
    SourceFile::new(name, text)
}

fn spawn_constraint_watch(
    client: Client,
    kind: &str,
    tx: mpsc::Sender<Msg>,
) -> tokio::task::JoinHandle<()> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(CONSTRAINT_GROUP, "v1beta1", kind),
        &kind.to_lowercase(),
    );
    let api: Api<DynamicObject> = Api::all_with(client, &ar);
    let kind = kind.to_owned();
    tokio::spawn(async move {
        let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
        futures::pin_mut!(stream);
        while let Some(item) = stream.next().await {
            match item {
                Ok(e) => {
                    if tx.send(Msg::Constraint(kind.clone(), e)).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(%kind, error = %e, "constraint watch failed (is the constraint CRD installed?); retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    })
}
