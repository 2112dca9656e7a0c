//! Serde for the policy types that have Pod Security Admission spellings
//! (`restricted`, `v1.30`, `Deployment`), so config errors quote the
//! accepted values.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::WorkloadKind;

/// `level: restricted`.
pub mod level {
    use super::*;
    use crate::Level;

    /// Writes the label spelling.
    pub fn serialize<S: Serializer>(level: &Level, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(level.as_str())
    }

    /// Reads `privileged`, `baseline` or `restricted`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Level, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(D::Error::custom)
    }
}

/// `version: v1.30`.
pub mod version {
    use super::*;
    use crate::Version;

    /// Writes `latest` or `v1.N`.
    pub fn serialize<S: Serializer>(version: &Version, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&version.to_string())
    }

    /// Reads `latest` or `v1.N`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Version, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(D::Error::custom)
    }
}

/// A set of workload kinds, written as a list of Kubernetes kind names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindList(Vec<WorkloadKind>);

impl KindList {
    /// Every workload kind.
    pub fn all() -> KindList {
        KindList(WorkloadKind::ALL.to_vec())
    }

    /// Exactly these kinds (duplicates removed).
    pub fn new(kinds: impl IntoIterator<Item = WorkloadKind>) -> KindList {
        let mut list = Vec::new();
        for kind in kinds {
            if !list.contains(&kind) {
                list.push(kind);
            }
        }
        KindList(list)
    }

    /// True when `kind` is in the list.
    pub fn contains(&self, kind: WorkloadKind) -> bool {
        self.0.contains(&kind)
    }

    /// True when the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The kinds, in the order written.
    pub fn iter(&self) -> impl Iterator<Item = WorkloadKind> + '_ {
        self.0.iter().copied()
    }
}

impl Serialize for KindList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|k| k.as_str()))
    }
}

impl<'de> Deserialize<'de> for KindList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        let mut kinds = Vec::with_capacity(names.len());
        for name in names {
            let kind = WorkloadKind::from_kind(&name).ok_or_else(|| {
                D::Error::custom(format!(
                    "unknown kind {name:?}: expected one of {}",
                    WorkloadKind::ALL.map(WorkloadKind::as_str).join(", ")
                ))
            })?;
            kinds.push(kind);
        }
        Ok(KindList::new(kinds))
    }
}
