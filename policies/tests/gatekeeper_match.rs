//! Golden tests of constraint `spec.match`: one YAML file per case under
//! `tests/gatekeeper/match/` giving the match block, the object (or a full
//! AdmissionRequest), the namespaces the cluster knows, and whether the
//! constraint should apply (`match`, `no-match` or `error`).
//!
//! Each case runs through the public API: a template whose `violation` rule
//! always fires, a constraint carrying the case's match block, and a review
//! of the object; the constraint applied exactly when a violation comes back.

// Test helpers may unwrap: a panic here is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::Path;

use serde_json::{Value, json};
use tollgate_policies::gatekeeper::{ConstraintSet, Inventory, LoadOptions, Review, SourceFile};
use tollgate_policies::{NamespaceInfo, StaticNamespaces};

const TEMPLATE: &str = r#"apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8salwaysviolates
spec:
  crd:
    spec:
      names:
        kind: K8sAlwaysViolates
  targets:
  - target: admission.k8s.gatekeeper.sh
    rego: |
      package k8salwaysviolates
      violation[{"msg": "matched"}] { true }
"#;

fn run_case(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let case: Value = yaml_serde::from_str(&text).map_err(|e| e.to_string())?;
    let constraint = json!({
        "apiVersion": "constraints.gatekeeper.sh/v1beta1",
        "kind": "K8sAlwaysViolates",
        "metadata": {"name": "case"},
        "spec": {"match": case.get("match").cloned().unwrap_or(Value::Null)},
    });
    let set = ConstraintSet::load(
        &[
            SourceFile::new("template.yaml", TEMPLATE),
            SourceFile::new("constraint.yaml", constraint.to_string()),
        ],
        LoadOptions::default(),
    )
    .map_err(|e| format!("load: {e}"))?;
    let review = match (case.get("object"), case.get("request")) {
        (Some(object), None) => Review::from_object(object),
        (None, Some(request)) => Review::from_admission_request(request),
        _ => return Err("a case needs exactly one of object or request".into()),
    }
    .map_err(|e| format!("review: {e}"))?;
    let namespaces: Vec<NamespaceInfo> = case
        .get("namespaces")
        .map(|n| serde_json::from_value(n.clone()))
        .transpose()
        .map_err(|e| format!("namespaces: {e}"))?
        .unwrap_or_default();
    let namespaces = StaticNamespaces::new(namespaces);
    let results = set.review(&review, &namespaces, &Inventory::empty(), None);
    let got = match results.as_slice() {
        [] => "no-match",
        [r] if r.error => "error",
        [r] if r.message == "matched" => "match",
        other => return Err(format!("unexpected results {other:?}")),
    };
    let want = case.get("expect").and_then(Value::as_str).unwrap_or("");
    if got == want {
        Ok(())
    } else {
        Err(format!("expected {want}, got {got} ({results:?})"))
    }
}

#[test]
fn match_golden_cases() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gatekeeper/match");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    assert!(
        paths.len() >= 25,
        "expected the golden cases in {}",
        dir.display()
    );
    let failures: Vec<String> = paths
        .iter()
        .filter_map(|p| {
            run_case(p)
                .err()
                .map(|e| format!("{}: {e}", p.file_name().unwrap().to_string_lossy()))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn invalid_selectors_are_refused_at_load() {
    for (name, selector, needle) in [
        (
            "in-without-values",
            json!({"matchExpressions": [{"key": "a", "operator": "In"}]}),
            "non-empty",
        ),
        (
            "exists-with-values",
            json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
            "must be empty",
        ),
        (
            "bad-operator",
            json!({"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]}),
            "Equals",
        ),
    ] {
        let constraint = json!({
            "apiVersion": "constraints.gatekeeper.sh/v1beta1",
            "kind": "K8sAlwaysViolates",
            "metadata": {"name": name},
            "spec": {"match": {"labelSelector": selector}},
        });
        let err = ConstraintSet::load(
            &[
                SourceFile::new("template.yaml", TEMPLATE),
                SourceFile::new("constraint.yaml", constraint.to_string()),
            ],
            LoadOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains(needle), "{name}: {err}");
        assert!(err.starts_with("constraint.yaml:1:"), "{name}: {err}");
    }
}
