//! Offline evaluation of manifests (`tollgate check`): multi-document YAML
//! or JSON, `List`s expanded, each object judged as kube-apiserver would
//! have the webhook judge a CREATE — mutated first (as the mutating
//! webhook runs before the validating one), then validated.

use json_patch::PatchOperation;
use serde::Deserialize as _;
use serde_json::Value;

use super::{AdmissionRequest, Evaluation, Failure, Object, Options, Snapshot};

/// Lists nested deeper than this are refused (a `List` of `List`s ...).
const MAX_LIST_DEPTH: usize = 8;

/// Why a manifest could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Not YAML or JSON.
    #[error("document {document}: {message}")]
    Syntax {
        /// 1-based document number.
        document: usize,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A document is not a Kubernetes object.
    #[error("document {document}: {message}")]
    NotAnObject {
        /// 1-based document number.
        document: usize,
        /// What is missing.
        message: String,
    },
}

/// Every object in a multi-document YAML (or JSON) text, with `List`s
/// expanded into their items. Empty documents are skipped.
pub fn parse_manifests(text: &str) -> Result<Vec<Value>, ManifestError> {
    Ok(parse_documents(text)?
        .into_iter()
        .map(|(_, object)| object)
        .collect())
}

/// Like [`parse_manifests`], with the 0-based index of the YAML document
/// each object came from (the items of a `List` share their document's).
pub fn parse_documents(text: &str) -> Result<Vec<(usize, Value)>, ManifestError> {
    let mut out = Vec::new();
    for (i, doc) in yaml_serde::Deserializer::from_str(text).enumerate() {
        let document = i + 1;
        let value = Value::deserialize(doc).map_err(|e| ManifestError::Syntax {
            document,
            message: e.to_string(),
        })?;
        let mut objects = Vec::new();
        expand(value, document, 0, &mut objects)?;
        out.extend(objects.into_iter().map(|o| (i, o)));
    }
    Ok(out)
}

fn expand(
    value: Value,
    document: usize,
    depth: usize,
    out: &mut Vec<Value>,
) -> Result<(), ManifestError> {
    let not_object = |message: &str| ManifestError::NotAnObject {
        document,
        message: message.to_owned(),
    };
    match value {
        Value::Null => Ok(()),
        Value::Object(mut map) => {
            let kind = map.get("kind").and_then(Value::as_str).unwrap_or("");
            if kind.is_empty() || map.get("apiVersion").and_then(Value::as_str).is_none() {
                return Err(not_object("an object needs apiVersion and kind"));
            }
            if kind == "List" || (kind.ends_with("List") && map.get("items").is_some()) {
                if depth >= MAX_LIST_DEPTH {
                    return Err(not_object("Lists nested too deeply"));
                }
                return match map.remove("items") {
                    Some(Value::Array(items)) => {
                        for item in items {
                            expand(item, document, depth + 1, out)?;
                        }
                        Ok(())
                    }
                    None | Some(Value::Null) => Ok(()),
                    Some(_) => Err(not_object("List items must be an array")),
                };
            }
            out.push(Value::Object(map));
            Ok(())
        }
        _ => Err(not_object(
            "a document must be a mapping (a Kubernetes object)",
        )),
    }
}

/// One object judged offline.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    /// The validation of the (mutated) object.
    pub evaluation: Evaluation,
    /// The mutation applied before validation (empty when none, or when
    /// mutation was skipped).
    pub mutation: Vec<PatchOperation>,
}

/// Judges one manifest object as a CREATE in `default_namespace` (unless
/// it names its own). With `mutate`, the mutation is applied first.
pub fn check_object(
    snapshot: &Snapshot,
    object: Value,
    default_namespace: &str,
    options: &Options,
    mutate: bool,
) -> Checked {
    let Some(mut request) = AdmissionRequest::for_object(object, default_namespace) else {
        let evaluation = Evaluation {
            failure: Some(Failure {
                code: 400,
                reason: "BadRequest",
                message: "an object needs apiVersion and kind".into(),
            }),
            ..Evaluation::default()
        };
        return Checked {
            evaluation,
            mutation: Vec::new(),
        };
    };
    let mut mutation = Vec::new();
    if mutate {
        let mutated = snapshot.mutate(&request, options);
        if mutated.failure.is_some() {
            return Checked {
                evaluation: mutated,
                mutation,
            };
        }
        if !mutated.patch.is_empty()
            && let Some(object) = request.object.take()
        {
            let mut value = object.into_value();
            // The engine checked that its patch applies.
            if json_patch::patch(&mut value, &mutated.patch).is_ok() {
                mutation = mutated.patch;
            }
            request.object = Some(Object::from_value(value));
        }
    }
    Checked {
        evaluation: snapshot.validate(&request, options),
        mutation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PolicyConfig;

    #[test]
    fn reads_multi_document_yaml_json_and_lists() {
        let text = r#"
# leading comment
apiVersion: v1
kind: ConfigMap
metadata: {name: a}
---
---
{"apiVersion": "v1", "kind": "List", "items": [
  {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "b"}},
  {"apiVersion": "v1", "kind": "PodList", "items": [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "c"}}]}
]}
"#;
        let objects = parse_manifests(text).unwrap();
        let names: Vec<_> = objects
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["a", "b", "c"]);
    }

    #[test]
    fn names_the_bad_document() {
        let err = parse_manifests("apiVersion: v1\nkind: A\n---\n- 1\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "document 2: a document must be a mapping (a Kubernetes object)"
        );
        let err = parse_manifests("kind: A\n").unwrap_err();
        assert!(err.to_string().contains("apiVersion and kind"));
        let err = parse_manifests("a: [\n").unwrap_err();
        assert!(
            matches!(err, ManifestError::Syntax { document: 1, .. }),
            "{err}"
        );
    }

    #[test]
    fn checks_objects_with_their_own_namespace() {
        let snapshot = Snapshot::from_config(&PolicyConfig::default());
        let object = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "x", "namespace": "team-a"}});
        let checked = check_object(&snapshot, object, "default", &Options::default(), true);
        assert!(checked.evaluation.allowed());
        assert_eq!(checked.evaluation.subject.namespace, "team-a");
    }
}
