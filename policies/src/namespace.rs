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

/// Why a label key or value would be refused by kube-apiserver.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    /// The key is not a qualified name (`[prefix/]name`, the prefix a DNS
    /// subdomain of at most 253 characters, the name at most 63 characters
    /// of alphanumerics, `-`, `_`, `.`, starting and ending alphanumeric).
    #[error("label key {key:?}: {reason}")]
    Key {
        /// The key.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The value is not a label value (at most 63 characters of
    /// alphanumerics, `-`, `_`, `.`, starting and ending alphanumeric, or
    /// empty).
    #[error(
        "label value {value:?} of {key}: a label value is empty or at most 63 alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric (no commas or spaces)"
    )]
    Value {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
}

/// Checks a label as kube-apiserver does (`IsQualifiedName` for the key,
/// `IsValidLabelValue` for the value), so what passes here can be set with
/// `kubectl label`.
pub fn validate_label(key: &str, value: &str) -> Result<(), LabelError> {
    let key_error = |reason| LabelError::Key {
        key: key.to_owned(),
        reason,
    };
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        if name.contains('/') {
            return Err(key_error("has more than one '/'"));
        }
        if !is_dns1123_subdomain(prefix) {
            return Err(key_error(
                "the prefix must be a DNS subdomain: at most 253 lower-case alphanumerics, '-' or '.', each part starting and ending alphanumeric",
            ));
        }
    }
    if name.is_empty() || name.len() > 63 || !is_qualified_name_part(name) {
        return Err(key_error(
            "the name part must be 1 to 63 alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric",
        ));
    }
    if !value.is_empty() && (value.len() > 63 || !is_qualified_name_part(value)) {
        return Err(LabelError::Value {
            key: key.to_owned(),
            value: value.to_owned(),
        });
    }
    Ok(())
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`.
fn is_qualified_name_part(s: &str) -> bool {
    let bytes = s.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// A DNS-1123 subdomain: at most 253 characters, dot-separated parts of
/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`.
fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|part| {
            let bytes = part.as_bytes();
            match (bytes.first(), bytes.last()) {
                (Some(first), Some(last)) => {
                    (first.is_ascii_lowercase() || first.is_ascii_digit())
                        && (last.is_ascii_lowercase() || last.is_ascii_digit())
                        && bytes
                            .iter()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
                }
                _ => false,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_checked_as_kube_apiserver_does() {
        for (key, value) in [
            ("compliance.tollgate.dev/pci-dss", "enforce"),
            ("app", ""),
            ("a.b-c/X_y.z", "V1.0_a-b"),
            ("pss.tollgate.dev/enforce", "baseline"),
        ] {
            assert_eq!(validate_label(key, value), Ok(()), "{key}={value}");
        }
        let long = "a".repeat(64);
        // 254 characters: one over (a part may be longer than 63: the
        // subdomain rule limits the whole prefix only).
        let long_prefix = format!("{}.io/x", "a".repeat(251));
        assert_eq!(
            validate_label(&format!("{}.io/x", "a".repeat(250)), ""),
            Ok(())
        );
        for key in [
            "",
            "/x",
            "a/",
            "a/b/c",
            "Compliance.tollgate.dev/x",
            "-x",
            "x-",
            "has space",
            long.as_str(),
            long_prefix.as_str(),
            "a..b/x",
        ] {
            assert!(
                matches!(validate_label(key, "v"), Err(LabelError::Key { .. })),
                "{key:?}"
            );
        }
        for value in [
            "soc2,pci-dss",
            "soc2 ",
            " x",
            "-x",
            "x.",
            long.as_str(),
            "ü",
        ] {
            assert!(
                matches!(
                    validate_label("compliance.tollgate.dev/profiles", value),
                    Err(LabelError::Value { .. })
                ),
                "{value:?}"
            );
        }
        assert_eq!(validate_label(&"a".repeat(63), &"b".repeat(63)), Ok(()));
    }
}
