//! Secure defaults, property-tested over every pod of the Pod Security
//! fixture corpus (`../shared/corpora/pod-security`, relative to the project
//! root) and our golden cases, each wrapped in every workload kind:
//!
//! - the patch is `add` operations under the pod template, and applies
//!   cleanly with the `json-patch` crate;
//! - the patched object still parses, and a second pass adds nothing;
//! - every value the author set is still there, unchanged (only a
//!   `capabilities.drop` list may grow, by `ALL`);
//! - a pod whose only restricted violations are defaultable fields left
//!   unset passes restricted (latest) once patched.
//!
//! Skips the corpus, saying so, when it is absent.

// Test helpers outside #[test] functions: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};

use json_patch::PatchOperation;
use serde_json::{Value, json};
use tollgate_policies::defaults::{DefaultsConfig, NonRootId, secure_defaults};
use tollgate_policies::pss::{PssViolation, check_pod};
use tollgate_policies::{Level, Version, Workload, WorkloadKind};

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().and_then(|e| e.to_str()) == Some("yaml") {
            out.push(path);
        }
    }
}

/// Every pod to test: the corpus fixtures (when present) and the pods of
/// our golden cases.
fn pods() -> Vec<(String, Value)> {
    let mut pods = Vec::new();
    let corpus = project_root().join("../shared/corpora/pod-security");
    if corpus.is_dir() {
        let mut files = Vec::new();
        yaml_files(&corpus, &mut files);
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            let name = f.strip_prefix(&corpus).unwrap().display().to_string();
            pods.push((name, yaml_serde::from_str(&text).unwrap()));
        }
    } else {
        eprintln!(
            "SKIPPED the fixture corpus: {} is absent; testing golden cases only",
            corpus.display()
        );
    }
    let mut golden = Vec::new();
    yaml_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pss"),
        &mut golden,
    );
    for f in golden {
        let case: Value = yaml_serde::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        let object = &case["object"];
        let w = Workload::from_object(object).unwrap().unwrap();
        // Re-wrap as a Pod so every kind below starts from the pod itself.
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": serde_json::to_value(&w.pod_metadata).unwrap(),
            "spec": serde_json::to_value(&w.spec).unwrap(),
        });
        pods.push((f.file_name().unwrap().to_string_lossy().into_owned(), pod));
    }
    assert!(!pods.is_empty());
    pods
}

/// The pod wrapped as a `kind` workload.
fn wrap(pod: &Value, kind: WorkloadKind) -> Value {
    if kind == WorkloadKind::Pod {
        return pod.clone();
    }
    let template =
        json!({"metadata": pod.get("metadata").cloned().unwrap_or(json!({})), "spec": pod["spec"]});
    let mut object =
        json!({"apiVersion": "apps/v1", "kind": kind.as_str(), "metadata": {"name": "w"}});
    let segments = kind.template_segments();
    let mut cur = &mut object;
    for seg in &segments[..segments.len() - 1] {
        cur = &mut cur[*seg];
    }
    cur[segments[segments.len() - 1]] = template;
    object
}

/// Checks that every value set in `before` is in `after` unchanged;
/// `null` counts as unset. Only arrays at `capabilities/drop` may grow.
fn preserved(before: &Value, after: &Value, path: &str) -> Result<(), String> {
    match (before, after) {
        (Value::Null, _) => Ok(()),
        (Value::Object(b), Value::Object(a)) => b.iter().try_for_each(|(k, v)| match a.get(k) {
            Some(av) => preserved(v, av, &format!("{path}/{k}")),
            None if v.is_null() => Ok(()),
            None => Err(format!("{path}/{k} was removed")),
        }),
        (Value::Array(b), Value::Array(a)) => {
            let may_grow = path.ends_with("/capabilities/drop");
            if a.len() < b.len() || (a.len() != b.len() && !may_grow) {
                return Err(format!("{path} changed length {} -> {}", b.len(), a.len()));
            }
            b.iter()
                .zip(a)
                .enumerate()
                .try_for_each(|(i, (bv, av))| preserved(bv, av, &format!("{path}/{i}")))
        }
        (b, a) if b == a => Ok(()),
        (b, a) => Err(format!("{path} changed {b} -> {a}")),
    }
}

/// The restricted checks whose violation secure defaults can fix when the
/// field is simply unset.
const DEFAULTABLE: [&str; 4] = [
    "allowPrivilegeEscalation",
    "capabilities_restricted",
    "seccompProfile_restricted",
    "runAsNonRoot",
];

/// The JSON pointer of a violation's dotted path (`spec.containers[0].x`).
fn pointer(path: &str) -> String {
    let mut out = String::new();
    for part in path.split('.') {
        match part.split_once('[') {
            Some((name, idx)) => {
                out.push('/');
                out.push_str(name);
                out.push('/');
                out.push_str(idx.trim_end_matches(']'));
            }
            None => {
                out.push('/');
                out.push_str(part);
            }
        }
    }
    out
}

/// True when the violation is about a field the author left unset (or, for
/// `capabilities.drop`, a list that lacks `ALL`), which defaults can fill.
/// A seccomp profile is not defaulted against a legacy pod annotation that
/// names another profile (the API server refuses the mismatch).
fn defaultable(v: &PssViolation, pod: &Value) -> bool {
    if !DEFAULTABLE.contains(&v.check) || v.path.contains("capabilities.add") {
        return false;
    }
    let annotation =
        pod["metadata"]["annotations"]["seccomp.security.alpha.kubernetes.io/pod"].as_str();
    if v.check == "seccompProfile_restricted"
        && annotation.is_some_and(|a| a != "runtime/default" && a != "docker/default")
    {
        return false;
    }
    let value = pod.pointer(&pointer(&v.path));
    v.path.ends_with("capabilities.drop") || value.is_none_or(Value::is_null)
}

fn check_config(config: &DefaultsConfig, label: &str) -> (usize, usize) {
    let mut objects = 0;
    let mut now_pass = 0;
    let mut failures = Vec::new();
    for (name, pod) in pods() {
        let before = Workload::from_object(&pod).unwrap().unwrap();
        let violations = check_pod(
            Level::Restricted,
            Version::Latest,
            &before.pod_metadata,
            &before.spec,
        );
        let only_defaultable = violations.iter().all(|v| defaultable(v, &pod));
        for kind in WorkloadKind::ALL {
            objects += 1;
            let object = wrap(&pod, kind);
            let workload = Workload::from_object(&object).unwrap().unwrap();
            let ops = secure_defaults(&workload, config);
            let what = format!("{label}: {name} as {kind}");
            let prefix = format!("{}/spec/", kind.template_pointer());
            for op in &ops {
                let PatchOperation::Add(add) = op else {
                    failures.push(format!("{what}: not an add operation: {op}"));
                    continue;
                };
                if !add.path.as_str().starts_with(&prefix) {
                    failures.push(format!("{what}: {} is outside {prefix}", add.path));
                }
            }
            let mut patched = object.clone();
            if let Err(e) = json_patch::patch(&mut patched, &ops) {
                failures.push(format!("{what}: patch does not apply: {e}"));
                continue;
            }
            if let Err(e) = preserved(&object, &patched, "") {
                failures.push(format!("{what}: {e}"));
            }
            let after = match Workload::from_object(&patched) {
                Ok(Some(w)) => w,
                other => {
                    failures.push(format!("{what}: patched object does not parse: {other:?}"));
                    continue;
                }
            };
            let again = secure_defaults(&after, config);
            if !again.is_empty() {
                failures.push(format!("{what}: second pass not empty: {again:?}"));
            }
            if only_defaultable {
                let left = check_pod(
                    Level::Restricted,
                    Version::Latest,
                    &after.pod_metadata,
                    &after.spec,
                );
                if left.is_empty() {
                    now_pass += 1;
                } else {
                    let msgs: Vec<&str> = left.iter().map(|v| v.message.as_str()).collect();
                    failures.push(format!(
                        "{what}: still fails restricted after defaults: {msgs:?}"
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    (objects, now_pass)
}

#[test]
fn default_config_over_every_pod_and_workload_kind() {
    let (objects, now_pass) = check_config(&DefaultsConfig::default(), "default");
    eprintln!("secure defaults: {objects} objects, {now_pass} made restricted-compliant");
    assert!(now_pass > 0, "no pod had only defaultable violations");
}

#[test]
fn every_default_on_over_every_pod_and_workload_kind() {
    let id = NonRootId::new(65534).unwrap();
    let config = DefaultsConfig {
        read_only_root_filesystem: true,
        run_as_user: Some(id),
        run_as_group: Some(id),
        ..DefaultsConfig::default()
    };
    let (objects, _) = check_config(&config, "all-on");
    assert!(objects > 0);
}
