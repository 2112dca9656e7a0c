//! A constraint's `spec.match`, evaluated in Rust before any Rego runs, with
//! Gatekeeper's semantics:
//!
//! - `kinds`: any entry whose `apiGroups` and `kinds` both contain the
//!   object's group and kind (`*` matches all; an empty list matches all);
//! - `scope`: `Cluster` (cluster-scoped objects and Namespaces), `Namespaced`,
//!   or `*`;
//! - `namespaces` / `excludedNamespaces`: names with a prefix (`kube-*`),
//!   suffix (`*-system`) or infix (`*sys*`) glob; a Namespace object is
//!   judged by its own name; cluster-scoped objects are never excluded;
//! - `labelSelector`: the object's labels;
//! - `namespaceSelector`: the labels of the object's namespace (a Namespace
//!   object's own labels; cluster-scoped objects always match);
//! - `name`: the object's name, same glob rules (a `generateName` prefix for
//!   objects without a name yet).
//!
//! A review matches when its object or its old object matches.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::NamespaceInfo;

/// A namespace or name pattern with Gatekeeper's glob rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Wildcard(String);

impl Wildcard {
    pub fn new(pattern: &str) -> Self {
        Wildcard(pattern.to_owned())
    }

    pub fn matches(&self, candidate: &str) -> bool {
        let w = self.0.as_str();
        match (w.strip_prefix('*'), w.strip_suffix('*')) {
            (Some(_), Some(_)) if w.len() >= 2 => {
                candidate.contains(w.get(1..w.len() - 1).unwrap_or(""))
            }
            (Some(suffix), _) => candidate.ends_with(suffix),
            (None, Some(prefix)) => candidate.starts_with(prefix),
            (None, None) => w == candidate,
        }
    }

    fn matches_generate_name(&self, prefix: &str) -> bool {
        let w = self.0.as_str();
        match (w.strip_prefix('*'), w.strip_suffix('*')) {
            (Some(_), Some(_)) if w.len() >= 2 => {
                prefix.contains(w.get(1..w.len() - 1).unwrap_or(""))
            }
            (None, Some(p)) => prefix.starts_with(p),
            _ => false,
        }
    }
}

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A Kubernetes label selector.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct LabelSelector {
    match_labels: BTreeMap<String, String>,
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// Parses and validates a selector as `ValidateLabelSelector` does.
    pub fn parse(value: &Value, field: &str) -> Result<Self, String> {
        let obj = value
            .as_object()
            .ok_or_else(|| format!("{field} must be an object"))?;
        let mut selector = LabelSelector::default();
        if let Some(labels) = obj.get("matchLabels").filter(|v| !v.is_null()) {
            let labels = labels
                .as_object()
                .ok_or_else(|| format!("{field}.matchLabels must be a map of strings"))?;
            for (k, v) in labels {
                let v = v
                    .as_str()
                    .ok_or_else(|| format!("{field}.matchLabels.{k} must be a string"))?;
                selector.match_labels.insert(k.clone(), v.to_owned());
            }
        }
        if let Some(exprs) = obj.get("matchExpressions").filter(|v| !v.is_null()) {
            let exprs = exprs
                .as_array()
                .ok_or_else(|| format!("{field}.matchExpressions must be a list"))?;
            for (i, e) in exprs.iter().enumerate() {
                let at = format!("{field}.matchExpressions[{i}]");
                let key = e
                    .get("key")
                    .and_then(Value::as_str)
                    .filter(|k| !k.is_empty())
                    .ok_or_else(|| format!("{at}.key is required"))?
                    .to_owned();
                let op = e.get("operator").and_then(Value::as_str).unwrap_or("");
                let values: Vec<String> = match e.get("values") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Array(items)) => items
                        .iter()
                        .map(|v| {
                            v.as_str()
                                .map(str::to_owned)
                                .ok_or_else(|| format!("{at}.values must be strings"))
                        })
                        .collect::<Result<_, _>>()?,
                    Some(_) => return Err(format!("{at}.values must be a list")),
                };
                let req = match op {
                    "In" | "NotIn" if values.is_empty() => {
                        return Err(format!(
                            "{at}: values must be non-empty when operator is {op}"
                        ));
                    }
                    "Exists" | "DoesNotExist" if !values.is_empty() => {
                        return Err(format!("{at}: values must be empty when operator is {op}"));
                    }
                    "In" => Requirement::In(key, values),
                    "NotIn" => Requirement::NotIn(key, values),
                    "Exists" => Requirement::Exists(key),
                    "DoesNotExist" => Requirement::DoesNotExist(key),
                    other => {
                        return Err(format!(
                            "{at}.operator {other:?} is not one of In, NotIn, Exists, DoesNotExist"
                        ));
                    }
                };
                selector.requirements.push(req);
            }
        }
        Ok(selector)
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.requirements.iter().all(|r| match r {
                Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
                Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
                Requirement::Exists(k) => labels.contains_key(k),
                Requirement::DoesNotExist(k) => !labels.contains_key(k),
            })
    }
}

/// `spec.match.scope`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    All,
    Cluster,
    Namespaced,
}

/// One `spec.match.kinds` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KindSelector {
    groups: Vec<String>,
    kinds: Vec<String>,
}

/// A constraint's `spec.match`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Match {
    kinds: Vec<KindSelector>,
    scope: Scope,
    namespaces: Vec<Wildcard>,
    excluded_namespaces: Vec<Wildcard>,
    label_selector: Option<LabelSelector>,
    namespace_selector: Option<LabelSelector>,
    name: Option<Wildcard>,
}

/// What matching needs to know about an object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ObjectInfo {
    pub group: String,
    pub kind: String,
    pub name: String,
    pub generate_name: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
}

impl ObjectInfo {
    /// Reads an object's identity; `fallback` supplies group and kind when
    /// the object does not carry them (AdmissionRequest.kind).
    pub fn of(object: &Value, fallback: Option<(&str, &str)>) -> Self {
        let api_version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        let (mut group, _) = split_api_version(api_version);
        let mut kind = object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        if kind.is_empty()
            && let Some((g, k)) = fallback
        {
            group = g.to_owned();
            kind = k.to_owned();
        }
        let meta = object.get("metadata");
        let text = |key: &str| {
            meta.and_then(|m| m.get(key))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        let labels = meta
            .and_then(|m| m.get("labels"))
            .and_then(Value::as_object)
            .map(|l| {
                l.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        ObjectInfo {
            group,
            kind,
            name: text("name"),
            generate_name: text("generateName"),
            namespace: text("namespace"),
            labels,
        }
    }

    fn is_namespace(&self) -> bool {
        self.kind == "Namespace" && self.group.is_empty()
    }
}

/// `(group, version)` of an `apiVersion`.
pub(crate) fn split_api_version(api_version: &str) -> (String, String) {
    match api_version.rsplit_once('/') {
        Some((g, v)) => (g.to_owned(), v.to_owned()),
        None => (String::new(), api_version.to_owned()),
    }
}

fn strings(value: Option<&Value>, field: &str) -> Result<Vec<String>, String> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("{field} must be a list of strings"))
            })
            .collect(),
        Some(_) => Err(format!("{field} must be a list of strings")),
    }
}

impl Match {
    /// Matches everything.
    pub fn everything() -> Self {
        Match {
            kinds: Vec::new(),
            scope: Scope::All,
            namespaces: Vec::new(),
            excluded_namespaces: Vec::new(),
            label_selector: None,
            namespace_selector: None,
            name: None,
        }
    }

    /// Parses `spec.match`.
    pub fn parse(value: Option<&Value>) -> Result<Self, String> {
        let mut m = Match::everything();
        let Some(value) = value.filter(|v| !v.is_null()) else {
            return Ok(m);
        };
        let obj = value.as_object().ok_or("spec.match must be an object")?;
        if let Some(kinds) = obj.get("kinds").filter(|v| !v.is_null()) {
            let kinds = kinds.as_array().ok_or("spec.match.kinds must be a list")?;
            for (i, k) in kinds.iter().enumerate() {
                let at = format!("spec.match.kinds[{i}]");
                m.kinds.push(KindSelector {
                    groups: strings(k.get("apiGroups"), &format!("{at}.apiGroups"))?,
                    kinds: strings(k.get("kinds"), &format!("{at}.kinds"))?,
                });
            }
        }
        m.scope = match obj.get("scope").and_then(Value::as_str) {
            None | Some("*") | Some("") => Scope::All,
            Some("Cluster") => Scope::Cluster,
            Some("Namespaced") => Scope::Namespaced,
            Some(other) => {
                return Err(format!(
                    "spec.match.scope {other:?} is not one of *, Cluster, Namespaced"
                ));
            }
        };
        m.namespaces = strings(obj.get("namespaces"), "spec.match.namespaces")?
            .iter()
            .map(|s| Wildcard::new(s))
            .collect();
        m.excluded_namespaces = strings(
            obj.get("excludedNamespaces"),
            "spec.match.excludedNamespaces",
        )?
        .iter()
        .map(|s| Wildcard::new(s))
        .collect();
        if let Some(sel) = obj.get("labelSelector").filter(|v| !v.is_null()) {
            m.label_selector = Some(LabelSelector::parse(sel, "spec.match.labelSelector")?);
        }
        if let Some(sel) = obj.get("namespaceSelector").filter(|v| !v.is_null()) {
            m.namespace_selector = Some(LabelSelector::parse(sel, "spec.match.namespaceSelector")?);
        }
        match obj.get("name") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s.is_empty() => {}
            Some(Value::String(s)) => m.name = Some(Wildcard::new(s)),
            Some(_) => return Err("spec.match.name must be a string".to_owned()),
        }
        Ok(m)
    }

    /// Whether `obj` (in namespace `ns`, when known) matches.
    pub fn matches(&self, obj: &ObjectInfo, ns: Option<&NamespaceInfo>) -> Result<bool, String> {
        let is_namespace = obj.is_namespace();
        // Kinds.
        if !self.kinds.is_empty()
            && !self.kinds.iter().any(|k| {
                let kind_ok =
                    k.kinds.is_empty() || k.kinds.iter().any(|x| x == "*" || *x == obj.kind);
                let group_ok =
                    k.groups.is_empty() || k.groups.iter().any(|g| g == "*" || *g == obj.group);
                kind_ok && group_ok
            })
        {
            return Ok(false);
        }
        // Scope.
        let has_namespace = !obj.namespace.is_empty() || ns.is_some();
        match self.scope {
            Scope::Cluster if !is_namespace && has_namespace => return Ok(false),
            Scope::Namespaced if is_namespace || !has_namespace => return Ok(false),
            _ => {}
        }
        // Namespaces and excluded namespaces.
        let namespace = if is_namespace {
            Some(obj.name.as_str())
        } else if let Some(ns) = ns {
            Some(ns.name.as_str())
        } else if !obj.namespace.is_empty() {
            Some(obj.namespace.as_str())
        } else {
            None
        };
        if let Some(namespace) = namespace {
            if !self.namespaces.is_empty() && !self.namespaces.iter().any(|w| w.matches(namespace))
            {
                return Ok(false);
            }
            if self
                .excluded_namespaces
                .iter()
                .any(|w| w.matches(namespace))
            {
                return Ok(false);
            }
        }
        // Label selector.
        if let Some(sel) = &self.label_selector
            && !sel.matches(&obj.labels)
        {
            return Ok(false);
        }
        // Namespace selector.
        if let Some(sel) = &self.namespace_selector {
            if is_namespace {
                if !sel.matches(&obj.labels) {
                    return Ok(false);
                }
            } else if ns.is_none() && obj.namespace.is_empty() {
                // Cluster-scoped objects always match.
            } else {
                let ns = ns.ok_or_else(|| {
                    format!(
                        "the namespace {:?} of the object is unknown, so the constraint's \
                         namespaceSelector cannot be evaluated",
                        obj.namespace
                    )
                })?;
                if !sel.matches(&ns.labels) {
                    return Ok(false);
                }
            }
        }
        // Name.
        if let Some(w) = &self.name {
            let ok = if obj.name.is_empty() && !obj.generate_name.is_empty() {
                w.matches_generate_name(&obj.generate_name)
            } else {
                w.matches(&obj.name)
            };
            if !ok {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_follow_gatekeeper() {
        let cases = [
            ("kube-*", "kube-system", true),
            ("kube-*", "default", false),
            ("*-system", "kube-system", true),
            ("*-system", "system-x", false),
            ("*sys*", "a-sys-b", true),
            ("*", "anything", true),
            ("exact", "exact", true),
            ("exact", "exactly", false),
        ];
        for (w, c, want) in cases {
            assert_eq!(Wildcard::new(w).matches(c), want, "{w} vs {c}");
        }
        assert!(Wildcard::new("web-*").matches_generate_name("web-abc-"));
        assert!(!Wildcard::new("*-web").matches_generate_name("x-web-"));
    }
}
