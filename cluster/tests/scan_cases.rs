//! Golden cases for background audit's pure half: one YAML file per case
//! under `tests/cases/scan/`, each with the objects found in a cluster (or
//! manifests), the namespaces' labels and annotations, optional policy and
//! ownership configuration, and what the scan must yield — the skipped
//! counts, the readiness scores and the PolicyReports. Expectations are
//! matched as a subset of the actual JSON: every key a case names must be
//! there with that value; arrays must match element by element and in
//! length.

use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};
use tollgate_cluster::readiness;
use tollgate_cluster::report;
use tollgate_cluster::scan::Scanner;
use tollgate_policies::config::PolicyConfig;
use tollgate_policies::engine::{Options, Snapshot};
use tollgate_policies::ownership::OwnershipConfig;
use tollgate_policies::{NamespaceInfo, StaticNamespaces};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    #[allow(dead_code)]
    description: String,
    #[serde(default)]
    policy: Option<PolicyConfig>,
    #[serde(default)]
    ownership: Option<OwnershipConfig>,
    #[serde(default)]
    namespaces: Vec<NamespaceInfo>,
    objects: Vec<Value>,
    expect: Value,
}

/// The time every result is stamped with.
const NOW: i64 = 1_800_000_000;

fn run(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let case: Case = yaml_serde::from_str(&text).map_err(|e| format!("parse: {e}"))?;
    let policy = case.policy.unwrap_or_default();
    let ownership = case.ownership.unwrap_or_default();
    let namespaces = Arc::new(StaticNamespaces::new(case.namespaces.clone()));
    let snapshot = Snapshot::builder(&policy)
        .namespaces(namespaces.clone())
        .build();
    let options = Options {
        only: None,
        evidence: true,
    };
    let scanner = Scanner {
        snapshot: &snapshot,
        options: &options,
        ownership: &ownership,
        namespaces: namespaces.as_ref(),
        default_namespace: "default",
    };
    let scan = scanner.scan(case.objects);
    let scores = readiness::score(&scan);
    let now = time::OffsetDateTime::from_unix_timestamp(NOW).map_err(|e| e.to_string())?;
    let reports = report::build(&scan, now);
    let ratios: serde_json::Map<String, Value> = scores
        .namespaces
        .iter()
        .map(|(ns, s)| (ns.clone(), json!(s.ratio())))
        .collect();
    let actual = json!({
        "controlled": scan.controlled,
        "other": scan.other,
        "namespaces": scan.namespaces,
        "readiness": scan.objects.iter().filter_map(|o| o.readiness.as_ref().map(|r| {
            json!({"object": format!("{} {}/{}", o.object.kind, o.object.namespace, o.object.name), "readiness": r})
        })).collect::<Vec<_>>(),
        "scores": scores,
        "ratios": {"cluster": scores.cluster.ratio(), "namespaces": ratios},
        "reports": reports.namespaced,
        "clusterReport": reports.cluster,
    });
    let mut problems = Vec::new();
    subset(&case.expect, &actual, "expect", &mut problems);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}\nactual: {}",
            problems.join("\n"),
            serde_json::to_string_pretty(&actual).unwrap_or_default()
        ))
    }
}

fn subset(expected: &Value, actual: &Value, at: &str, problems: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                match a.get(k) {
                    Some(av) => subset(ev, av, &format!("{at}.{k}"), problems),
                    None if ev.is_null() => {}
                    None => problems.push(format!("{at}.{k}: missing")),
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                problems.push(format!("{at}: {} items, expected {}", a.len(), e.len()));
            }
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                subset(ev, av, &format!("{at}[{i}]"), problems);
            }
        }
        (Value::Number(e), Value::Number(a)) => {
            if e.as_f64() != a.as_f64() {
                problems.push(format!("{at}: {a}, expected {e}"));
            }
        }
        (e, a) => {
            if e != a {
                problems.push(format!("{at}: {a}, expected {e}"));
            }
        }
    }
}

#[test]
fn scan_cases() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases/scan");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 5, "cases missing in {}", dir.display());
    let mut failures = Vec::new();
    for path in &paths {
        if let Err(e) = run(path) {
            failures.push(format!("{}: {e}", path.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
