//! The object store: resource types (built in and registered by CRDs),
//! objects with resource versions, and the event history watches replay.

use std::collections::{BTreeMap, VecDeque};

use serde_json::{Value, json};

/// How many events the history keeps before the oldest are compacted away
/// (watches from before then get `410 Gone`).
const HISTORY: usize = 10_000;

/// A resource type the server serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceType {
    /// API group (`""` for core).
    pub group: String,
    /// Versions served (the first is the preferred one).
    pub versions: Vec<String>,
    /// Plural resource name (`pods`).
    pub plural: String,
    /// Singular name (`pod`).
    pub singular: String,
    /// Kind (`Pod`).
    pub kind: String,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Short names (`po`).
    pub short_names: Vec<String>,
    /// Subresources served (`status`).
    pub subresources: Vec<String>,
}

impl ResourceType {
    fn builtin(
        group: &str,
        version: &str,
        plural: &str,
        kind: &str,
        namespaced: bool,
        short: &[&str],
        status: bool,
    ) -> ResourceType {
        ResourceType {
            group: group.into(),
            versions: vec![version.into()],
            plural: plural.into(),
            singular: kind.to_lowercase(),
            kind: kind.into(),
            namespaced,
            short_names: short.iter().map(|s| (*s).to_owned()).collect(),
            subresources: if status {
                vec!["status".into()]
            } else {
                Vec::new()
            },
        }
    }

    /// `apiVersion` for `version`.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_owned()
        } else {
            format!("{}/{}", self.group, version)
        }
    }

    /// `pods` or `deployments.apps`, as Status details and messages name it.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

/// The resource types every cluster has (the subset Tollgate and its tests
/// touch).
pub fn builtin_types() -> Vec<ResourceType> {
    use ResourceType as R;
    vec![
        R::builtin("", "v1", "namespaces", "Namespace", false, &["ns"], true),
        R::builtin("", "v1", "pods", "Pod", true, &["po"], true),
        R::builtin("", "v1", "secrets", "Secret", true, &[], false),
        R::builtin("", "v1", "configmaps", "ConfigMap", true, &["cm"], false),
        R::builtin("", "v1", "services", "Service", true, &["svc"], true),
        R::builtin(
            "",
            "v1",
            "serviceaccounts",
            "ServiceAccount",
            true,
            &["sa"],
            false,
        ),
        R::builtin("", "v1", "events", "Event", true, &["ev"], false),
        R::builtin(
            "",
            "v1",
            "replicationcontrollers",
            "ReplicationController",
            true,
            &["rc"],
            true,
        ),
        R::builtin(
            "",
            "v1",
            "persistentvolumeclaims",
            "PersistentVolumeClaim",
            true,
            &["pvc"],
            true,
        ),
        R::builtin(
            "apps",
            "v1",
            "deployments",
            "Deployment",
            true,
            &["deploy"],
            true,
        ),
        R::builtin(
            "apps",
            "v1",
            "replicasets",
            "ReplicaSet",
            true,
            &["rs"],
            true,
        ),
        R::builtin(
            "apps",
            "v1",
            "statefulsets",
            "StatefulSet",
            true,
            &["sts"],
            true,
        ),
        R::builtin("apps", "v1", "daemonsets", "DaemonSet", true, &["ds"], true),
        R::builtin("batch", "v1", "jobs", "Job", true, &[], true),
        R::builtin("batch", "v1", "cronjobs", "CronJob", true, &["cj"], true),
        R::builtin(
            "networking.k8s.io",
            "v1",
            "ingresses",
            "Ingress",
            true,
            &["ing"],
            true,
        ),
        R::builtin(
            "networking.k8s.io",
            "v1",
            "networkpolicies",
            "NetworkPolicy",
            true,
            &["netpol"],
            false,
        ),
        R::builtin(
            "coordination.k8s.io",
            "v1",
            "leases",
            "Lease",
            true,
            &[],
            false,
        ),
        R::builtin(
            "admissionregistration.k8s.io",
            "v1",
            "mutatingwebhookconfigurations",
            "MutatingWebhookConfiguration",
            false,
            &[],
            false,
        ),
        R::builtin(
            "admissionregistration.k8s.io",
            "v1",
            "validatingwebhookconfigurations",
            "ValidatingWebhookConfiguration",
            false,
            &[],
            false,
        ),
        R::builtin(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            &["crd", "crds"],
            true,
        ),
        R::builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "roles",
            "Role",
            true,
            &[],
            false,
        ),
        R::builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "rolebindings",
            "RoleBinding",
            true,
            &[],
            false,
        ),
        R::builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterroles",
            "ClusterRole",
            false,
            &[],
            false,
        ),
        R::builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterrolebindings",
            "ClusterRoleBinding",
            false,
            &[],
            false,
        ),
    ]
}

/// A watch event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// `ADDED`.
    Added,
    /// `MODIFIED`.
    Modified,
    /// `DELETED`.
    Deleted,
}

impl EventType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as the history keeps it.
#[derive(Debug, Clone)]
pub struct Change {
    /// Its resource version.
    pub rv: u64,
    /// `(group, plural)` of the resource.
    pub resource: (String, String),
    /// Namespace (`""` for cluster-scoped).
    pub namespace: String,
    /// What happened.
    pub kind: EventType,
    /// The object after the change (for deletes: the last state).
    pub object: Value,
    /// The object before (modifications only).
    pub old: Option<Value>,
}

/// Objects of one resource, keyed by (namespace, name).
pub type Objects = BTreeMap<(String, String), Value>;

/// The store: types, objects, history.
#[derive(Debug)]
pub struct Store {
    /// Resource types by (group, plural).
    pub types: BTreeMap<(String, String), ResourceType>,
    /// Objects by (group, plural).
    pub objects: BTreeMap<(String, String), Objects>,
    /// The last resource version handed out.
    pub rv: u64,
    /// Watches from before this version are expired (`410 Gone`).
    pub floor: u64,
    /// Recent changes.
    pub history: VecDeque<Change>,
}

impl Store {
    /// A store with the built-in types and the namespaces every cluster has.
    pub fn new() -> Store {
        let mut store = Store {
            types: builtin_types()
                .into_iter()
                .map(|t| ((t.group.clone(), t.plural.clone()), t))
                .collect(),
            objects: BTreeMap::new(),
            rv: 0,
            floor: 0,
            history: VecDeque::new(),
        };
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            store.insert_new(("".into(), "namespaces".into()), "", obj);
        }
        store
    }

    /// Finds a type by group and plural (or singular / short name / kind,
    /// case-insensitively, for convenience).
    pub fn find_type(&self, group: &str, name: &str) -> Option<&ResourceType> {
        if let Some(t) = self.types.get(&(group.to_owned(), name.to_owned())) {
            return Some(t);
        }
        let lower = name.to_lowercase();
        self.types.values().find(|t| {
            t.group == group
                && (t.singular == lower
                    || t.kind.to_lowercase() == lower
                    || t.short_names.contains(&lower))
        })
    }

    /// Hands out the next resource version.
    pub fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    /// Records a change in the history.
    pub fn record(&mut self, change: Change) {
        self.history.push_back(change);
        while self.history.len() > HISTORY {
            if let Some(old) = self.history.pop_front() {
                self.floor = old.rv;
            }
        }
    }

    /// Inserts an object that does not exist yet, assigning metadata;
    /// returns the stored object.
    pub fn insert_new(&mut self, key: (String, String), namespace: &str, mut obj: Value) -> Value {
        let rv = self.next_rv();
        fill_new_metadata(&mut obj, rv);
        if key.0.is_empty()
            && key.1 == "namespaces"
            && let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut)
        {
            let name = meta.get("name").cloned().unwrap_or(Value::Null);
            let labels = meta.entry("labels").or_insert_with(|| json!({}));
            if let Some(labels) = labels.as_object_mut() {
                labels.insert("kubernetes.io/metadata.name".into(), name);
            }
        }
        let name = name_of(&obj);
        self.objects
            .entry(key.clone())
            .or_default()
            .insert((namespace.to_owned(), name), obj.clone());
        self.record(Change {
            rv,
            resource: key,
            namespace: namespace.to_owned(),
            kind: EventType::Added,
            object: obj.clone(),
            old: None,
        });
        obj
    }

    /// Replaces an existing object (the caller checked preconditions),
    /// bumping its resource version; returns the stored object.
    pub fn replace(
        &mut self,
        key: (String, String),
        namespace: &str,
        old: Value,
        mut obj: Value,
    ) -> Value {
        let rv = self.next_rv();
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        }
        let name = name_of(&obj);
        self.objects
            .entry(key.clone())
            .or_default()
            .insert((namespace.to_owned(), name), obj.clone());
        self.record(Change {
            rv,
            resource: key,
            namespace: namespace.to_owned(),
            kind: EventType::Modified,
            object: obj.clone(),
            old: Some(old),
        });
        obj
    }

    /// Removes an object; returns its last state.
    pub fn remove(&mut self, key: (String, String), namespace: &str, name: &str) -> Option<Value> {
        let mut obj = self
            .objects
            .get_mut(&key)?
            .remove(&(namespace.to_owned(), name.to_owned()))?;
        let rv = self.next_rv();
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        }
        self.record(Change {
            rv,
            resource: key,
            namespace: namespace.to_owned(),
            kind: EventType::Deleted,
            object: obj.clone(),
            old: None,
        });
        Some(obj)
    }

    /// Gets an object.
    pub fn get(&self, key: &(String, String), namespace: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(key)?
            .get(&(namespace.to_owned(), name.to_owned()))
    }

    /// Compacts the history: every resource version handed out so far is
    /// expired, so watches resuming from one get `410 Gone` and must relist.
    pub fn compact(&mut self) {
        let rv = self.next_rv();
        self.floor = rv;
        self.history.clear();
    }

    /// Registers (or re-registers) the types a CRD object defines.
    pub fn register_crd(&mut self, crd: &Value) {
        let spec = crd.get("spec");
        let text = |p: &str| {
            spec.and_then(|s| s.pointer(p))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let group = text("/group");
        let plural = text("/names/plural");
        let kind = text("/names/kind");
        if group.is_empty() || plural.is_empty() || kind.is_empty() {
            return;
        }
        let mut singular = text("/names/singular");
        if singular.is_empty() {
            singular = kind.to_lowercase();
        }
        let versions: Vec<String> = spec
            .and_then(|s| s.get("versions"))
            .and_then(Value::as_array)
            .map(|vs| {
                vs.iter()
                    .filter(|v| v.get("served").and_then(Value::as_bool).unwrap_or(true))
                    .filter_map(|v| v.get("name").and_then(Value::as_str).map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let has_status = spec
            .and_then(|s| s.get("versions"))
            .and_then(Value::as_array)
            .is_some_and(|vs| {
                vs.iter()
                    .any(|v| v.pointer("/subresources/status").is_some())
            });
        let short_names = spec
            .and_then(|s| s.pointer("/names/shortNames"))
            .and_then(Value::as_array)
            .map(|v| {
                v.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        self.types.insert(
            (group.clone(), plural.clone()),
            ResourceType {
                group,
                versions,
                plural,
                singular,
                kind,
                namespaced: text("/scope") == "Namespaced",
                short_names,
                subresources: if has_status {
                    vec!["status".into()]
                } else {
                    Vec::new()
                },
            },
        );
    }

    /// Removes the types a deleted CRD defined, and their objects.
    pub fn unregister_crd(&mut self, crd: &Value) {
        let group = crd
            .pointer("/spec/group")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let plural = crd
            .pointer("/spec/names/plural")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let key = (group.to_owned(), plural.to_owned());
        self.types.remove(&key);
        self.objects.remove(&key);
    }
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

/// `metadata.name` of an object.
pub fn name_of(obj: &Value) -> String {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// `metadata.resourceVersion` of an object.
pub fn rv_of(obj: &Value) -> Option<String> {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn fill_new_metadata(obj: &mut Value, rv: u64) {
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert(
            "uid".into(),
            Value::String(uuid::Uuid::now_v7().to_string()),
        );
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        meta.insert("creationTimestamp".into(), Value::String(now));
        meta.insert("generation".into(), json!(1));
        meta.remove("deletionTimestamp");
    }
}
