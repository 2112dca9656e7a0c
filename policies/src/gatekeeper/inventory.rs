//! `data.inventory`: the cluster objects templates may consult for
//! cross-object checks (unique ingress hosts, unique service selectors),
//! laid out as Gatekeeper's sync does:
//! `data.inventory.namespace[<namespace>][<apiVersion>][<kind>][<name>]` for
//! namespaced objects and `data.inventory.cluster[<apiVersion>][<kind>][<name>]`
//! for cluster-scoped ones. Namespace objects in the inventory also answer
//! namespace lookups (`namespaceSelector`).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::GatekeeperError;
use crate::rego;
use crate::{NamespaceInfo, NamespaceSource};

/// A snapshot of synced cluster objects. Immutable: build a new one when the
/// cluster changes (worker engines notice the new generation).
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    data: Option<rego::Data>,
    namespaces: BTreeMap<String, Arc<NamespaceInfo>>,
    objects: usize,
}

fn insert_path(root: &mut Map<String, Value>, path: &[&str], object: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = root;
    for key in parents {
        let entry = node
            .entry((*key).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        let Value::Object(next) = entry else {
            return;
        };
        node = next;
    }
    node.insert((*last).to_owned(), object);
}

fn string_map(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

impl Inventory {
    /// No objects.
    pub fn empty() -> Self {
        Inventory::default()
    }

    /// An inventory of `objects` (each needs `apiVersion`, `kind` and
    /// `metadata.name`).
    pub fn from_objects<'a>(
        objects: impl IntoIterator<Item = &'a Value>,
    ) -> Result<Self, GatekeeperError> {
        let mut root = Map::new();
        let mut namespaces = BTreeMap::new();
        let mut count = 0;
        for object in objects {
            let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_owned();
            let api_version = text(object.get("apiVersion"));
            let kind = text(object.get("kind"));
            let meta = object.get("metadata");
            let name = text(meta.and_then(|m| m.get("name")));
            let namespace = text(meta.and_then(|m| m.get("namespace")));
            if api_version.is_empty() || kind.is_empty() || name.is_empty() {
                return Err(GatekeeperError::InvalidInventory(format!(
                    "every inventory object needs apiVersion, kind and metadata.name \
                     (got apiVersion {api_version:?}, kind {kind:?}, name {name:?})"
                )));
            }
            if kind == "Namespace" && api_version == "v1" {
                namespaces.insert(
                    name.clone(),
                    Arc::new(NamespaceInfo {
                        name: name.clone(),
                        labels: string_map(meta.and_then(|m| m.get("labels"))),
                        annotations: string_map(meta.and_then(|m| m.get("annotations"))),
                    }),
                );
            }
            if namespace.is_empty() {
                insert_path(
                    &mut root,
                    &["cluster", &api_version, &kind, &name],
                    object.clone(),
                );
            } else {
                insert_path(
                    &mut root,
                    &["namespace", &namespace, &api_version, &kind, &name],
                    object.clone(),
                );
            }
            count += 1;
        }
        let data = if count == 0 {
            None
        } else {
            let mut doc = Map::new();
            doc.insert("inventory".to_owned(), Value::Object(root));
            let value = rego::Value::from_json(&Value::Object(doc))
                .map_err(|e| GatekeeperError::InvalidInventory(e.to_string()))?;
            Some(
                rego::Data::new(value)
                    .map_err(|e| GatekeeperError::InvalidInventory(e.to_string()))?,
            )
        };
        Ok(Inventory {
            data,
            namespaces,
            objects: count,
        })
    }

    /// How many objects it holds.
    pub fn len(&self) -> usize {
        self.objects
    }

    /// True when it holds no objects.
    pub fn is_empty(&self) -> bool {
        self.objects == 0
    }

    /// The `data` document (`{"inventory": ...}`), when not empty.
    pub(crate) fn data(&self) -> Option<&rego::Data> {
        self.data.as_ref()
    }
}

impl NamespaceSource for Inventory {
    fn namespace(&self, name: &str) -> Option<Arc<NamespaceInfo>> {
        self.namespaces.get(name).cloned()
    }
}
