//! Golden cases for sidecar injection and anti-bypass validation: one YAML
//! file per case under `tests/inject/` (the injection config, the
//! namespace's labels, the object), and below its `expect:` line what the
//! engine must answer: the `/mutate` patch and `/validate` verdict.
//!
//! Every case also checks, whatever it expects:
//! - the patch applies, in order, to the object (secure defaults first,
//!   then injection);
//! - mutating the patched object again yields an empty patch (re-invocation
//!   and re-applies are idempotent);
//! - the injected sidecar passes the restricted Pod Security level, and no
//!   other policy set (ownership, compliance packs) objects to it.
//!
//! `TOLLGATE_BLESS=1 cargo test -p tollgate-webhook --test inject_golden`
//! rewrites each file's `expect:` section from the current output; review
//! the diff before committing it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tollgate_policies::config::PolicyConfig;
use tollgate_policies::engine::{AdmissionRequest, Operation, Options, Snapshot};
use tollgate_policies::namespace::{NamespaceInfo, StaticNamespaces};
use tollgate_policies::{Level, Version, WorkloadKind};
use tollgate_webhook::inject::names::SIDECAR_NAME;
use tollgate_webhook::{InjectionConfig, Injector};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    description: String,
    #[serde(default)]
    config: InjectionConfig,
    /// The `policy:` section (default: every default).
    #[serde(default)]
    policy: PolicyConfig,
    #[serde(default)]
    namespace: Option<NamespaceInfo>,
    /// `CREATE` (default), `UPDATE` (then `oldObject` is `old_object`, or
    /// the object itself), `DELETE` (the object is the `oldObject`) or
    /// `CONNECT` (the object is the options, e.g. `PodExecOptions`).
    #[serde(default)]
    operation: Option<String>,
    #[serde(default)]
    sub_resource: Option<String>,
    /// The stored object of an UPDATE, when it differs from the object.
    #[serde(default)]
    old_object: Option<Value>,
    /// The resource (`pods` for CONNECT), when not the object's own.
    #[serde(default)]
    resource: Option<String>,
    /// The request's name (the pod's, for CONNECT).
    #[serde(default)]
    name: Option<String>,
    /// The requesting user (default: a cluster administrator).
    #[serde(default)]
    user: Option<String>,
    /// The requesting user's groups.
    #[serde(default)]
    groups: Vec<String>,
    /// A JSON Patch applied to the object as admitted (CREATE, mutated):
    /// the case is then the UPDATE from the admitted pod to the patched one
    /// (a sidecar swapped after admission, an ephemeral container added).
    #[serde(default)]
    then_update: Option<Value>,
    /// A JSON Patch applied to the object as admitted: the case is then the
    /// CREATE of the patched pod (a pod arriving with a pre-filled sidecar
    /// that differs from the template in one field).
    #[serde(default)]
    prefill: Option<Value>,
    /// Validate the object as given instead of the mutated one.
    #[serde(default)]
    validate_as_given: bool,
    object: Value,
    #[serde(default)]
    expect: Option<Expect>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    /// The `injection` audit annotation, if any.
    injection: Option<String>,
    /// The JSON Patch `/mutate` answers.
    patch: Value,
    /// Mutation warnings.
    mutate_warnings: Vec<String>,
    /// Whether `/validate` admits the (mutated) object.
    allowed: bool,
    /// The injection rules that fired, `rule@path` with their action.
    violations: Vec<String>,
    /// The denial message, when denied.
    denial: Option<String>,
}

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/inject")
}

fn snapshot(case: &Case) -> Snapshot {
    let namespaces = StaticNamespaces::new(case.namespace.clone());
    Snapshot::builder(&case.policy)
        .namespaces(Arc::new(namespaces))
        .evaluator(Arc::new(Injector::new(case.config.clone())))
        .build()
}

/// The object as admitted at CREATE (the case's object, mutated).
fn admitted(case: &Case, snapshot: &Snapshot) -> Value {
    let ns = case
        .namespace
        .as_ref()
        .map(|n| n.name.clone())
        .unwrap_or_else(|| "default".into());
    let req = AdmissionRequest::for_object(case.object.clone(), &ns).unwrap();
    let mutated = snapshot.mutate(&req, &Options::default());
    assert!(mutated.failure.is_none(), "{:?}", mutated.failure);
    let mut object = case.object.clone();
    json_patch::patch(&mut object, &mutated.patch).unwrap();
    object
}

fn patched(object: &Value, ops: &Value) -> Result<Value, String> {
    let ops: json_patch::Patch =
        serde_json::from_value(ops.clone()).map_err(|e| format!("patch: {e}"))?;
    let mut object = object.clone();
    json_patch::patch(&mut object, &ops).map_err(|e| format!("patch: {e}"))?;
    Ok(object)
}

fn request(case: &Case, object: Value) -> AdmissionRequest {
    let ns = case
        .namespace
        .as_ref()
        .map(|n| n.name.clone())
        .unwrap_or_else(|| "default".into());
    let mut req = AdmissionRequest::for_object(object.clone(), &ns).unwrap();
    let stored = |v: &Value| Some(tollgate_policies::engine::Object::from_value(v.clone()));
    match case.operation.as_deref() {
        Some("UPDATE") => {
            req.operation = Operation::Update;
            req.old_object = stored(case.old_object.as_ref().unwrap_or(&object));
        }
        Some("DELETE") => {
            req.operation = Operation::Delete;
            req.old_object = req.object.take();
        }
        Some("CONNECT") => req.operation = Operation::Connect,
        _ => {}
    }
    if let Some(sub) = &case.sub_resource {
        req.sub_resource = sub.clone();
    }
    if let Some(resource) = &case.resource {
        req.resource.resource = resource.clone();
    }
    if let Some(name) = &case.name {
        req.name = name.clone();
    }
    req.user_info.username = case
        .user
        .clone()
        .unwrap_or_else(|| "kubernetes-admin".into());
    req.user_info.groups = if case.user.is_some() {
        case.groups.clone()
    } else {
        vec!["system:masters".into(), "system:authenticated".into()]
    };
    req
}

fn run(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut case: Case = yaml_serde::from_str(&text).map_err(|e| format!("parse: {e}"))?;
    case.config.validate().map_err(|e| format!("config: {e}"))?;
    let snapshot = snapshot(&case);
    let options = Options::default();
    if let Some(ops) = case.then_update.clone() {
        let admitted = admitted(&case, &snapshot);
        case.object = patched(&admitted, &ops)?;
        case.old_object = Some(admitted);
        case.operation = Some("UPDATE".into());
    }
    if let Some(ops) = case.prefill.clone() {
        case.object = patched(&admitted(&case, &snapshot), &ops)?;
    }

    let mutated = snapshot.mutate(&request(&case, case.object.clone()), &options);
    if let Some(f) = &mutated.failure {
        return Err(format!("mutate failed: {}", f.message));
    }
    let patch = serde_json::to_value(&mutated.patch).unwrap();
    let mut object = case.object.clone();
    json_patch::patch(&mut object, &mutated.patch).map_err(|e| format!("patch: {e}"))?;

    // Idempotent: the patched object needs nothing more.
    let again = snapshot.mutate(&request(&case, object.clone()), &options);
    if !again.patch.is_empty() {
        return Err(format!(
            "second mutation is not empty: {}",
            serde_json::to_string(&again.patch).unwrap()
        ));
    }
    // The injected sidecar is restricted-compliant.
    if let Some(kind) = WorkloadKind::from_kind(object["kind"].as_str().unwrap_or_default()) {
        let obj = tollgate_policies::engine::Object::from_value(object.clone());
        let w = obj.workload(kind).map_err(|e| format!("workload: {e}"))?;
        let bad: Vec<String> = tollgate_policies::pss::check_pod(
            Level::Restricted,
            Version::Latest,
            &w.pod_metadata,
            &w.spec,
        )
        .into_iter()
        .filter(|v| v.container.as_deref() == Some(SIDECAR_NAME))
        .map(|v| v.message)
        .collect();
        if !bad.is_empty() {
            return Err(format!("the sidecar fails restricted: {bad:?}"));
        }
    }

    let to_validate = if case.validate_as_given {
        case.object.clone()
    } else {
        object
    };
    let validated = snapshot.validate(&request(&case, to_validate), &options);
    // No other policy set (Pod Security, ownership, compliance) objects to
    // the injected sidecar itself.
    if !case.validate_as_given {
        let about_sidecar: Vec<String> = validated
            .verdict
            .violations
            .iter()
            .filter(|v| v.policy != tollgate_policies::PolicySet::Injection)
            .filter(|v| v.container.as_deref() == Some(SIDECAR_NAME))
            .map(|v| format!("{}:{} {}", v.policy.as_str(), v.rule, v.message))
            .collect();
        if !about_sidecar.is_empty() {
            return Err(format!("violations about the sidecar: {about_sidecar:#?}"));
        }
    }
    let got = Expect {
        injection: mutated.audit_annotations.get("injection").cloned(),
        patch,
        mutate_warnings: mutated.warnings(),
        allowed: validated.allowed(),
        violations: validated
            .verdict
            .violations
            .iter()
            .filter(|v| v.policy == tollgate_policies::PolicySet::Injection)
            .map(|v| {
                format!(
                    "{}@{} ({:?})",
                    v.rule,
                    v.path.clone().unwrap_or_default(),
                    v.action
                )
            })
            .collect(),
        denial: validated.denial().map(|d| d.message),
    };
    if std::env::var_os("TOLLGATE_BLESS").is_some() {
        let head = text.split("\nexpect:").next().unwrap_or(&text).trim_end();
        let mut wrapper = BTreeMap::new();
        wrapper.insert("expect", &got);
        let body = yaml_serde::to_string(&wrapper).unwrap();
        std::fs::write(path, format!("{head}\n{body}")).unwrap();
        return Ok(());
    }
    let Some(want) = case.expect else {
        return Err("no expect: section (run with TOLLGATE_BLESS=1 to write it)".into());
    };
    if want != got {
        return Err(format!(
            "{}\nwant: {}\ngot:  {}",
            case.description,
            serde_json::to_string_pretty(&serde_json::to_value(&want).unwrap()).unwrap(),
            serde_json::to_string_pretty(&serde_json::to_value(&got).unwrap()).unwrap()
        ));
    }
    Ok(())
}

#[test]
fn golden_injection_cases() {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    assert!(
        paths.len() >= 10,
        "expected the golden cases, found {paths:?}"
    );
    let failures: Vec<String> = paths
        .iter()
        .filter_map(|p| run(p).err().map(|e| format!("{}: {e}", p.display())))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
