//! The shared redaction corpus (`audit/tests/redaction_corpus.yaml`) and
//! the checks every recorder's output is held to.
#![allow(dead_code)]
// Test support: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

/// One corpus case.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// What it covers.
    pub name: String,
    /// Free text for every user-supplied string field.
    #[serde(default)]
    pub text: Option<String>,
    /// Tool arguments.
    #[serde(default)]
    pub arguments: Map<String, Value>,
    /// What must not appear.
    pub secrets: Vec<String>,
    /// What must still appear.
    #[serde(default)]
    pub keep: Vec<String>,
    /// Kinds `redactions` must list.
    pub redactions: Vec<String>,
}

/// The corpus file.
pub fn path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|d| d.join("audit/tests/redaction_corpus.yaml"))
        .find(|p| p.exists())
        .expect("audit/tests/redaction_corpus.yaml")
}

/// Every case.
pub fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(path()).unwrap();
    let cases: Vec<Case> = yaml_serde::from_str(&text).unwrap();
    assert!(cases.len() >= 15, "the corpus lost cases");
    cases
}

/// Asserts that `output` (what a recorder wrote, in any form) holds none of
/// the case's secrets.
pub fn assert_clean(case: &Case, output: &str, what: &str) {
    for secret in &case.secrets {
        assert!(
            !output.contains(secret.as_str()),
            "{what}: case {:?} leaked {secret:?}:\n{output}",
            case.name
        );
    }
}

/// Asserts that `output` (a form that carries every field) still holds what
/// is not a secret: redaction must not eat the evidence around it.
pub fn assert_kept(case: &Case, output: &str, what: &str) {
    for keep in &case.keep {
        assert!(
            output.contains(keep.as_str()),
            "{what}: case {:?} lost {keep:?}:\n{output}",
            case.name
        );
    }
}

/// Asserts that an event's `redactions` list every kind the case expects.
pub fn assert_kinds(case: &Case, event: &Value, what: &str) {
    let got: Vec<&str> = event["redactions"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for kind in &case.redactions {
        assert!(
            got.contains(&kind.as_str()),
            "{what}: case {:?} should record {kind:?}, recorded {got:?}",
            case.name
        );
    }
    if case.redactions.is_empty() && case.secrets.is_empty() {
        assert!(
            got.is_empty(),
            "{what}: case {:?} redacted {got:?}",
            case.name
        );
    }
}
