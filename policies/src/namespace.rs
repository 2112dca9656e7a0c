//! Namespace labels and annotations as policy inputs, behind a trait: the
//! config file supplies them offline; the cluster reflector supplies them live.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// What policies need to know about a namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceInfo {
    /// The namespace's name.
    pub name: String,
    /// Its labels (Pod Security levels, compliance profiles, injection).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Its annotations (inherited `deployscope.dev/*` ownership).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// Looks up namespaces. Implementations answer from memory: the call sits on
/// the admission path and must not block.
pub trait NamespaceSource: Send + Sync {
    /// The namespace, or `None` when it is unknown.
    fn namespace(&self, name: &str) -> Option<Arc<NamespaceInfo>>;
}

/// A fixed set of namespaces, from the config file or the command line.
#[derive(Debug, Clone, Default)]
pub struct StaticNamespaces {
    namespaces: BTreeMap<String, Arc<NamespaceInfo>>,
}

impl StaticNamespaces {
    /// A source holding these namespaces.
    pub fn new(namespaces: impl IntoIterator<Item = NamespaceInfo>) -> Self {
        Self {
            namespaces: namespaces
                .into_iter()
                .map(|ns| (ns.name.clone(), Arc::new(ns)))
                .collect(),
        }
    }
}

impl NamespaceSource for StaticNamespaces {
    fn namespace(&self, name: &str) -> Option<Arc<NamespaceInfo>> {
        self.namespaces.get(name).cloned()
    }
}
