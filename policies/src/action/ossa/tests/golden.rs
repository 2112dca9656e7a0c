//! Golden cases: one YAML file per manifest in `golden/` (the manifest,
//! optionally the pod's namespace and an ActionPolicy, and actions with
//! the expected decision), all run by one test.

use std::path::Path;
use std::time::Instant;

use serde::Deserialize;

use super::super::{AgentManifest, Baseline, Placement};
use crate::action::{Action, ActionPolicy};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Golden {
    manifest: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    policy: Option<String>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    action: Action,
    allowed: bool,
    #[serde(default)]
    rule: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

#[test]
fn golden_cases() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/action/ossa/golden");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    let mut failures = Vec::new();
    let mut count = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let golden: Golden =
            yaml_serde::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let manifest = AgentManifest::parse(&golden.manifest, "agent.yaml")
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let placement = Placement::new(golden.namespace.clone());
        let policy = match &golden.policy {
            Some(p) => {
                let p = ActionPolicy::parse(p, "policy.yaml").unwrap();
                let placement = placement.with_routes_of(&p);
                p.with_baseline(std::sync::Arc::new(
                    Baseline::constraint(&manifest, &placement).unwrap(),
                ))
            }
            None => Baseline::standalone(&manifest, &placement).unwrap(),
        };
        for case in &golden.cases {
            count += 1;
            let d = policy.evaluate(&case.action, Instant::now());
            let label = format!("{}: {}", file.display(), case.name);
            if d.allowed() != case.allowed {
                failures.push(format!(
                    "{label}: allowed {} (rule {:?}: {}), expected {}",
                    d.allowed(),
                    d.rule,
                    d.reason,
                    case.allowed
                ));
                continue;
            }
            if let Some(rule) = &case.rule
                && d.rule.as_deref() != Some(rule.as_str())
            {
                failures.push(format!(
                    "{label}: decided by {:?} ({}), expected {rule:?}",
                    d.rule, d.reason
                ));
            }
            if let Some(reason) = &case.reason
                && !d.reason.contains(reason.as_str())
            {
                failures.push(format!("{label}: reason {:?} lacks {reason:?}", d.reason));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!("{count} golden OSSA cases in {} files", files.len());
}
