//! Engine tests. The golden cases in `testdata/` (one YAML file per case:
//! config, request, expected decision) exercise the admission plumbing —
//! modes, labels, exemptions, operations, subresources, kinds, messages —
//! with a small stand-in Pod Security checker whose outcome is obvious
//! from the object (`privileged: true` fails baseline; a container without
//! `allowPrivilegeEscalation: false` fails restricted from v1.8). The
//! checks themselves are tested against the Kubernetes conformance
//! fixtures elsewhere.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::{Value, json};

use super::*;
use crate::config::PolicyConfig;

fn fake_checker(
    level: Level,
    version: Version,
    _meta: &ObjectMeta,
    spec: &PodSpec,
) -> Vec<PssViolation> {
    let mut out = Vec::new();
    if level == Level::Privileged {
        return out;
    }
    let lists = [
        ("containers", Some(spec.containers.as_slice())),
        ("initContainers", spec.init_containers.as_deref()),
    ];
    for (field, list) in lists {
        for (i, c) in list.unwrap_or_default().iter().enumerate() {
            let sc = c.security_context.as_ref();
            if sc.and_then(|s| s.privileged) == Some(true) {
                out.push(PssViolation {
                    check: "privileged",
                    level: Level::Baseline,
                    container: Some(c.name.clone()),
                    path: format!("spec.{field}[{i}].securityContext.privileged"),
                    message: format!(
                        "container {:?} must not set securityContext.privileged=true ({level}, v1.{})",
                        c.name,
                        version.minor()
                    ),
                });
            }
            if level == Level::Restricted
                && version.at_least(8)
                && sc.and_then(|s| s.allow_privilege_escalation) != Some(false)
            {
                out.push(PssViolation {
                    check: "allowPrivilegeEscalation",
                    level: Level::Restricted,
                    container: Some(c.name.clone()),
                    path: format!("spec.{field}[{i}].securityContext.allowPrivilegeEscalation"),
                    message: format!(
                        "container {:?} must set securityContext.allowPrivilegeEscalation=false ({level}, v1.{})",
                        c.name,
                        version.minor()
                    ),
                });
            }
        }
    }
    for (i, c) in spec
        .ephemeral_containers
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        if c.security_context.as_ref().and_then(|s| s.privileged) == Some(true) {
            out.push(PssViolation {
                check: "privileged",
                level: Level::Baseline,
                container: Some(c.name.clone()),
                path: format!("spec.ephemeralContainers[{i}].securityContext.privileged"),
                message: format!(
                    "container {:?} must not set securityContext.privileged=true ({level}, v1.{})",
                    c.name,
                    version.minor()
                ),
            });
        }
    }
    out
}

/// Sets `runAsNonRoot: true` on the pod when it is missing: enough to see
/// the mutation plumbing work.
fn fake_defaults(
    workload: &Workload,
    _settings: &crate::defaults::DefaultsConfig,
    scope: DefaultsScope,
) -> Vec<PatchOperation> {
    if scope == DefaultsScope::EphemeralContainers {
        return Vec::new();
    }
    let set = workload
        .spec
        .security_context
        .as_ref()
        .and_then(|s| s.run_as_non_root)
        .is_some();
    if set {
        return Vec::new();
    }
    let base = workload.kind.template_pointer();
    let has_sc = workload.spec.security_context.is_some();
    let (path, value) = if has_sc {
        (
            format!("{base}/spec/securityContext/runAsNonRoot"),
            json!(true),
        )
    } else {
        (
            format!("{base}/spec/securityContext"),
            json!({"runAsNonRoot": true}),
        )
    };
    serde_json::from_value(json!([{"op": "add", "path": path, "value": value}])).unwrap()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    #[serde(default)]
    config: Option<Value>,
    #[serde(default)]
    pod_security: Option<String>,
    #[serde(default)]
    only: Option<Vec<String>>,
    #[serde(default = "validate")]
    endpoint: String,
    request: Value,
    expect: Expect,
}

fn validate() -> String {
    "validate".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    allowed: bool,
    #[serde(default)]
    code: Option<u16>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    message_contains: Vec<String>,
    #[serde(default)]
    warnings: Option<Vec<String>>,
    /// `action rule path` per violation, in order.
    #[serde(default)]
    violations: Option<Vec<String>>,
    #[serde(default)]
    exemptions: Option<Vec<String>>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    patch: Option<Value>,
}

/// The default config with only Pod Security on: these tests are about the
/// engine's plumbing, which Pod Security exercises fully.
fn pss_only() -> PolicyConfig {
    let mut config = PolicyConfig::default();
    config.ownership.enabled = false;
    config.compliance.enabled = false;
    config
}

fn snapshot_for(case: &Case) -> Snapshot {
    let mut config: PolicyConfig = match &case.config {
        Some(c) => serde_json::from_value(c.clone()).unwrap(),
        None => PolicyConfig::default(),
    };
    // Sets a case does not configure stay out of it.
    let configures = |key: &str| case.config.as_ref().is_some_and(|c| c.get(key).is_some());
    if !configures("ownership") {
        config.ownership.enabled = false;
    }
    if !configures("compliance") {
        config.compliance.enabled = false;
    }
    config.validate().unwrap();
    let mut builder = Snapshot::builder(&config)
        .pss_checker(fake_checker)
        .defaults_mutation(fake_defaults);
    if let Some(level) = &case.pod_security {
        builder = builder.pod_security_level(level.parse().unwrap());
    }
    builder.build()
}

fn run_case(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let case: Case = yaml_serde::from_str(&text).map_err(|e| format!("bad case: {e}"))?;
    let snapshot = snapshot_for(&case);
    let request: AdmissionRequest =
        serde_json::from_value(case.request.clone()).map_err(|e| format!("bad request: {e}"))?;
    let options = Options {
        only: case.only.as_ref().map(|only| {
            only.iter()
                .map(|s| match s.as_str() {
                    "pod-security" => PolicySet::PodSecurity,
                    "ownership" => PolicySet::Ownership,
                    other => panic!("unknown set {other}"),
                })
                .collect()
        }),
        ..Options::default()
    };
    let eval = match case.endpoint.as_str() {
        "validate" => snapshot.validate(&request, &options),
        "mutate" => snapshot.mutate(&request, &options),
        other => return Err(format!("unknown endpoint {other}")),
    };
    let e = &case.expect;
    let mut problems = Vec::new();
    if eval.allowed() != e.allowed {
        problems.push(format!("allowed = {}, want {}", eval.allowed(), e.allowed));
    }
    let denial = eval.denial();
    if let Some(code) = e.code {
        let got = denial.as_ref().map(|d| d.code);
        if got != Some(code) {
            problems.push(format!("code = {got:?}, want {code}"));
        }
    }
    let message = denial
        .as_ref()
        .map(|d| d.message.clone())
        .unwrap_or_default();
    if let Some(want) = &e.message
        && message.trim_end() != want.trim_end()
    {
        problems.push(format!("message =\n{message}\nwant\n{want}"));
    }
    for want in &e.message_contains {
        if !message.contains(want.as_str()) {
            problems.push(format!("message {message:?} lacks {want:?}"));
        }
    }
    if let Some(want) = &e.warnings {
        let got = eval.warnings();
        if &got != want {
            problems.push(format!("warnings = {got:#?}, want {want:#?}"));
        }
    }
    if let Some(want) = &e.violations {
        let got: Vec<String> = eval
            .verdict
            .violations
            .iter()
            .map(|v| {
                format!(
                    "{} {} {}",
                    serde_json::to_value(v.action).unwrap().as_str().unwrap(),
                    v.rule,
                    v.path.as_deref().unwrap_or("-")
                )
            })
            .collect();
        if &got != want {
            problems.push(format!("violations = {got:#?}, want {want:#?}"));
        }
    }
    if let Some(want) = &e.exemptions {
        let got: Vec<String> = eval
            .exemptions
            .iter()
            .map(|x| x.reason.to_owned())
            .collect();
        if &got != want {
            problems.push(format!("exemptions = {got:?}, want {want:?}"));
        }
    }
    for (k, v) in &e.annotations {
        if eval.audit_annotations.get(k) != Some(v) {
            problems.push(format!(
                "annotation {k} = {:?}, want {v:?}",
                eval.audit_annotations.get(k)
            ));
        }
    }
    if let Some(want) = &e.patch {
        let got = serde_json::to_value(&eval.patch).unwrap();
        if &got != want {
            problems.push(format!("patch = {got}, want {want}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

#[test]
fn golden_cases() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/engine/testdata");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 20, "expected the golden cases in {dir:?}");
    let failures: Vec<String> = paths
        .iter()
        .filter_map(|p| {
            run_case(p)
                .err()
                .map(|e| format!("--- {}:\n{e}", p.file_name().unwrap().to_string_lossy()))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn deployment_request(privileged: bool) -> AdmissionRequest {
    serde_json::from_value(json!({
        "uid": "u", "operation": "CREATE", "namespace": "team-a", "name": "web",
        "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
        "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
        "object": {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"template": {"spec": {"containers": [{"name": "a", "image": "x",
                "securityContext": {"privileged": privileged, "allowPrivilegeEscalation": false}}]}}}}
    }))
    .unwrap()
}

#[test]
fn swapping_the_snapshot_changes_later_decisions_only() {
    let strict = pss_only();
    let engine = Engine::new(Snapshot::builder(&strict).pss_checker(fake_checker).build());
    let request = deployment_request(true);
    let before = engine.snapshot();
    assert!(!engine.validate(&request, &Options::default()).allowed());

    let mut lax = pss_only();
    lax.pod_security.enforce.level = Level::Privileged;
    let old = engine.replace(Snapshot::builder(&lax).pss_checker(fake_checker).build());
    assert!(Arc::ptr_eq(&old, &before));
    assert!(engine.validate(&request, &Options::default()).allowed());
    // A request that read the old snapshot keeps its whole policy.
    assert!(!before.validate(&request, &Options::default()).allowed());
}

#[test]
fn only_filters_policy_sets() {
    let snapshot = Snapshot::builder(&pss_only())
        .pss_checker(fake_checker)
        .build();
    let request = deployment_request(true);
    let only_ownership = Options {
        only: Some(vec![PolicySet::Ownership]),
        ..Options::default()
    };
    assert!(snapshot.validate(&request, &only_ownership).allowed());
    assert_eq!(snapshot.policy_sets(), vec![PolicySet::PodSecurity]);
    let mut off = pss_only();
    off.pod_security.enabled = false;
    assert!(Snapshot::from_config(&off).policy_sets().is_empty());
}

#[test]
fn the_default_config_runs_every_built_in_set_and_constraints_when_given() {
    let store = Arc::new(crate::gatekeeper::ConstraintStore::new(
        crate::gatekeeper::ConstraintSet::empty(),
    ));
    let snapshot = Snapshot::builder(&PolicyConfig::default())
        .constraints(store)
        .build();
    assert_eq!(
        snapshot.policy_sets(),
        vec![
            PolicySet::PodSecurity,
            PolicySet::Ownership,
            PolicySet::Compliance,
            PolicySet::Constraints
        ]
    );
}

/// A Deployment compliant with restricted Pod Security, in a namespace
/// whose labels select PCI-DSS and whose annotations supply the owner.
fn payments_request(annotations: Value) -> AdmissionRequest {
    serde_json::from_value(serde_json::json!({
        "uid": "u", "operation": "CREATE", "namespace": "payments", "name": "api",
        "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
        "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
        "object": {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "api", "namespace": "payments", "annotations": annotations},
            "spec": {"template": {"metadata": {"labels": {"app": "api"}}, "spec": {
                "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{"name": "api", "image": "ghcr.io/acme/api:latest",
                "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]}}}}
    }))
    .unwrap()
}

fn payments_config() -> PolicyConfig {
    serde_json::from_value(serde_json::json!({
        "namespaces": {"payments": {
            "labels": {"compliance.tollgate.dev/profiles": "pci-dss"},
            "annotations": {"deployscope.dev/owner": "team-payments"}}}
    }))
    .unwrap()
}

#[test]
fn ownership_and_compliance_judge_with_the_namespace_and_record_evidence() {
    let snapshot = Snapshot::from_config(&payments_config());
    let request = payments_request(serde_json::json!({}));
    let options = Options {
        evidence: true,
        ..Options::default()
    };
    let eval = snapshot.validate(&request, &options);
    let rules: Vec<(PolicySet, &str)> = eval
        .verdict
        .violations
        .iter()
        .map(|v| (v.policy, v.rule.as_str()))
        .collect();
    // Both ownership keys are missing on the object itself; the packs
    // flag the :latest image with its PCI-DSS control.
    assert!(
        rules.contains(&(PolicySet::Ownership, "ownership-owner")),
        "{rules:?}"
    );
    assert!(
        rules.contains(&(PolicySet::Ownership, "ownership-tier")),
        "{rules:?}"
    );
    let pinned = eval
        .verdict
        .violations
        .iter()
        .find(|v| v.rule == "image-pinned")
        .unwrap_or_else(|| panic!("no image-pinned violation in {rules:?}"));
    assert!(pinned.controls.iter().any(|c| c.framework == "PCI-DSS"));
    assert!(
        !rules.iter().any(|(p, _)| *p == PolicySet::PodSecurity),
        "{rules:?}"
    );
    assert_eq!(eval.frameworks, vec!["PCI-DSS".to_owned()]);
    // Evidence: the restricted checks that passed, the rules that ran.
    let ran: Vec<&str> = eval.evaluated.iter().map(|e| e.rule.as_str()).collect();
    assert!(ran.contains(&"runAsNonRoot"), "{ran:?}");
    assert!(
        ran.contains(&"image-pinned") && ran.contains(&"ownership-owner"),
        "{ran:?}"
    );
    // Without evidence, nothing is recorded on the hot path.
    assert!(
        snapshot
            .validate(&request, &Options::default())
            .evaluated
            .is_empty()
    );
}

#[test]
fn ownership_is_inherited_from_the_namespace_on_mutation() {
    let snapshot = Snapshot::from_config(&payments_config());
    let request = payments_request(serde_json::json!({"deployscope.dev/tier": "standard"}));
    let eval = snapshot.mutate(&request, &Options::default());
    assert!(eval.failure.is_none(), "{:?}", eval.failure);
    let mut object = request.object.as_ref().unwrap().value().clone();
    json_patch::patch(&mut object, &eval.patch).unwrap();
    assert_eq!(
        object["metadata"]["annotations"]["deployscope.dev/owner"],
        "team-payments"
    );
    // The mutated object passes ownership; mutating again changes nothing.
    let mut again: Value = serde_json::to_value(&request).unwrap();
    again["object"] = object;
    let again: AdmissionRequest = serde_json::from_value(again).unwrap();
    let only = Options {
        only: Some(vec![PolicySet::Ownership]),
        ..Options::default()
    };
    assert!(snapshot.validate(&again, &only).allowed());
    assert!(snapshot.mutate(&again, &only).patch.is_empty());
}

struct Failing;

impl Evaluator for Failing {
    fn policy_set(&self) -> PolicySet {
        PolicySet::Constraints
    }
    fn validate(&self, _: &Context<'_>, _: &mut Findings) -> Result<(), EvalError> {
        Err(EvalError::Policy("execution limit exceeded".into()))
    }
    fn mutate(&self, _: &Context<'_>, _: &mut Findings) -> Result<Vec<PatchOperation>, EvalError> {
        Ok(serde_json::from_value(json!([{"op": "remove", "path": "/nope"}])).unwrap())
    }
}

#[test]
fn evaluator_errors_fail_closed_and_bad_patches_are_refused() {
    let snapshot = Snapshot::builder(&PolicyConfig::default())
        .pss_checker(fake_checker)
        .evaluator(Arc::new(Failing))
        .build();
    let request = deployment_request(false);
    let eval = snapshot.validate(&request, &Options::default());
    assert!(!eval.allowed());
    let denial = eval.denial().unwrap();
    assert_eq!(denial.code, 403);
    assert!(
        denial
            .message
            .contains("constraints could not evaluate this object, so it is refused: execution limit exceeded [constraints:evaluationError]"),
        "{}",
        denial.message
    );
    let eval = snapshot.mutate(&request, &Options::default());
    let failure = eval.failure.unwrap();
    assert_eq!((failure.code, failure.reason), (500, "InternalError"));
    assert!(
        failure
            .message
            .contains("constraints produced a patch that does not apply")
    );
}

#[test]
fn mutation_patches_chain_and_apply_to_the_original() {
    let snapshot = Snapshot::builder(&PolicyConfig::default())
        .pss_checker(fake_checker)
        .defaults_mutation(fake_defaults)
        .build();
    let request = deployment_request(false);
    let eval = snapshot.mutate(&request, &Options::default());
    assert!(eval.allowed());
    assert_eq!(eval.patch.len(), 1);
    let mut object = request.object.clone().unwrap().into_value();
    json_patch::patch(&mut object, &eval.patch).unwrap();
    assert_eq!(
        object["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"],
        true
    );
    // Idempotent: the mutated object needs no further patch.
    let mut again = request.clone();
    again.object = Some(Object::from_value(object));
    assert!(
        snapshot
            .mutate(&again, &Options::default())
            .patch
            .is_empty()
    );
}

#[test]
fn the_built_in_mutation_and_checker_are_wired() {
    // With the built-in functions the engine runs end to end on a clean
    // restricted pod: allowed, and any patch applies.
    let snapshot = Snapshot::from_config(&PolicyConfig::default());
    let request = deployment_request(false);
    let eval = snapshot.mutate(&request, &Options::default());
    assert!(eval.failure.is_none());
    let mut object = request.object.clone().unwrap().into_value();
    json_patch::patch(&mut object, &eval.patch).unwrap();
}
