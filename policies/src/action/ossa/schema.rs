//! Whether a manifest is valid under the official JSON Schema of its
//! `apiVersion` (shipped in `schemas/`), told apart from whether Tollgate
//! can enforce it: many real manifests are one and not the other.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use jsonschema::Validator;
use serde_json::Value;

use super::super::ActionPolicyError;
use super::manifest::{AgentManifest, OssaVersion};

/// The most validation errors reported.
const MAX_ERRORS: usize = 10;

/// The outcome of validating a manifest against its version's schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaCheck {
    /// Valid under the named schema (`0.3.6`).
    Valid {
        /// The schema's version.
        schema: &'static str,
    },
    /// Invalid under the named schema; the first errors, as
    /// `instance/path: message`.
    Invalid {
        /// The schema's version.
        schema: &'static str,
        /// What is wrong.
        errors: Vec<String>,
    },
    /// No shipped schema is that of this version.
    NoSchema,
}

/// The shipped schema for a version: `(name, JSON text)`.
pub fn schema_for(version: OssaVersion) -> Option<(&'static str, &'static str)> {
    let v = (version.major, version.minor, version.patch);
    Some(match v {
        (1, _, _) | (0, Some(2), Some(2)) => {
            ("0.2.2", include_str!("schemas/ossa-0.2.2.schema.json"))
        }
        (0, Some(2), Some(3)) => ("0.2.3", include_str!("schemas/ossa-0.2.3.schema.json")),
        (0, Some(2), None | Some(4)) => ("0.2.4", include_str!("schemas/ossa-0.2.4.schema.json")),
        (0, Some(2), Some(5)) => ("0.2.5", include_str!("schemas/ossa-0.2.5.schema.json")),
        (0, Some(2), Some(6 | 7)) => ("0.2.6", include_str!("schemas/ossa-0.2.6.schema.json")),
        (0, Some(2), Some(8)) => ("0.2.8", include_str!("schemas/ossa-0.2.8.schema.json")),
        (0, Some(2), Some(9)) => ("0.2.9", include_str!("schemas/ossa-0.2.9.schema.json")),
        (0, Some(3), Some(0 | 1)) => ("0.3.0", include_str!("schemas/ossa-0.3.0.schema.json")),
        (0, Some(3), Some(2)) => ("0.3.2", include_str!("schemas/ossa-0.3.2.schema.json")),
        (0, Some(3), Some(3 | 4)) => ("0.3.3", include_str!("schemas/ossa-0.3.3.schema.json")),
        (0, Some(3), Some(5)) => ("0.3.5", include_str!("schemas/ossa-0.3.5.schema.json")),
        (0, Some(3), None | Some(6)) => ("0.3.6", include_str!("schemas/ossa-0.3.6.schema.json")),
        (0, Some(4), _) => ("0.4", include_str!("schemas/ossa-0.4.schema.json")),
        (0, Some(5), _) => ("0.5", include_str!("schemas/ossa-0.5.schema.json")),
        _ => return None,
    })
}

/// The compiled validator of a shipped schema, compiled once per process.
fn compiled(name: &'static str, text: &'static str) -> Result<Arc<Validator>, String> {
    static CACHE: OnceLock<Mutex<HashMap<&'static str, Arc<Validator>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(v) = cache.get(name) {
        return Ok(Arc::clone(v));
    }
    let schema: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let validator = Arc::new(jsonschema::validator_for(&schema).map_err(|e| e.to_string())?);
    cache.insert(name, Arc::clone(&validator));
    Ok(validator)
}

/// Validates `document` (the manifest as JSON) against the schema of
/// `api_version`.
pub fn validate(api_version: &str, document: &Value) -> SchemaCheck {
    let Some((name, text)) = OssaVersion::parse(api_version).and_then(schema_for) else {
        return SchemaCheck::NoSchema;
    };
    let validator = match compiled(name, text) {
        Ok(v) => v,
        Err(e) => {
            return SchemaCheck::Invalid {
                schema: name,
                errors: vec![format!("the shipped schema does not compile: {e}")],
            };
        }
    };
    let errors: Vec<String> = validator
        .iter_errors(document)
        .take(MAX_ERRORS)
        .map(|e| {
            let path = e.instance_path().to_string();
            let full = e.to_string();
            let mut message: String = full.chars().take(300).collect();
            if message.len() < full.len() {
                message.push_str("...");
            }
            format!("{}: {message}", if path.is_empty() { "/" } else { &path })
        })
        .collect();
    if errors.is_empty() {
        SchemaCheck::Valid { schema: name }
    } else {
        SchemaCheck::Invalid {
            schema: name,
            errors,
        }
    }
}

/// Validates the `kind: Agent` document of a manifest file against the
/// schema of its `apiVersion`; `file` names it in errors.
pub fn check_manifest(text: &str, file: &str) -> Result<SchemaCheck, ActionPolicyError> {
    let document = AgentManifest::document(text, file)?;
    let api_version = document
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    Ok(validate(&api_version, &document))
}
