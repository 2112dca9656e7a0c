//! Unit tests of the compliance evaluator: the golden cases under
//! `tests/golden` cover every rule; these cover the machinery around them.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use super::*;

fn all_profiles() -> ComplianceConfig {
    ComplianceConfig {
        profiles: Profile::ALL.to_vec(),
        parameters: Parameters {
            allowed_registries: Some(vec!["ghcr.io/acme".into()]),
            allowed_regions: Some(vec!["eu-west-1".into()]),
            allowed_storage_classes: Some(vec!["encrypted-gp3".into()]),
            ..Parameters::default()
        },
        ..ComplianceConfig::default()
    }
}

fn deployment(env: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a", "namespace": "x"},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "ghcr.io/acme/c:1", "env": env}]}}}})
}

#[test]
fn profiles_parse_case_insensitively_with_the_alias() {
    for p in Profile::ALL {
        assert_eq!(p.as_str().parse::<Profile>().unwrap(), p);
        assert_eq!(p.as_str().to_uppercase().parse::<Profile>().unwrap(), p);
    }
    assert_eq!("nist-800-53".parse::<Profile>().unwrap(), Profile::Fedramp);
    let err = "sox".parse::<Profile>().unwrap_err().to_string();
    assert!(err.contains("expected soc2, hipaa"), "{err}");
    let config: ComplianceConfig = yaml_serde::from_str("profiles: [soc2, NIST-800-53]").unwrap();
    assert_eq!(config.profiles, [Profile::Soc2, Profile::Fedramp]);
    assert!(yaml_serde::from_str::<ComplianceConfig>("profiles: [sox]").is_err());
    assert!(yaml_serde::from_str::<ComplianceConfig>("profile: [soc2]").is_err());
}

#[test]
fn config_validation_names_the_field() {
    let catalogue = Catalogue::builtin().unwrap();
    let mut c = ComplianceConfig::default();
    c.rules.insert("image-pined".into(), RuleAction::Off);
    let err = c.validate(catalogue).unwrap_err().to_string();
    assert!(
        err.starts_with("compliance.rules.image-pined: unknown compliance rule"),
        "{err}"
    );
    let mut c = ComplianceConfig::default();
    c.rules.insert("ownership-owner".into(), RuleAction::Off);
    assert!(
        c.validate(catalogue).is_err(),
        "ownership rules are not compliance rules"
    );
    let mut c = ComplianceConfig::default();
    c.parameters.allowed_registries = Some(vec!["https://ghcr.io/acme".into()]);
    let err = c.validate(catalogue).unwrap_err().to_string();
    assert!(err.contains("parameters.allowedRegistries"), "{err}");
    let mut c = ComplianceConfig::default();
    c.namespaces.insert(
        "team".into(),
        NamespaceCompliance {
            parameters: Parameters {
                allowed_regions: Some(vec![" ".into()]),
                ..Parameters::default()
            },
            ..NamespaceCompliance::default()
        },
    );
    let err = c.validate(catalogue).unwrap_err().to_string();
    assert!(
        err.contains("namespaces.team.parameters.allowedRegions"),
        "{err}"
    );
    assert!(ComplianceConfig::default().validate(catalogue).is_ok());
}

fn namespace(labels: &[(&str, &str)]) -> NamespaceInfo {
    NamespaceInfo {
        name: "x".into(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..NamespaceInfo::default()
    }
}

fn action_of(scope: &Scope, rule: &str) -> Option<EnforcementAction> {
    scope
        .rules
        .iter()
        .find(|(id, _)| id == rule)
        .map(|(_, a)| *a)
}

#[test]
fn unknown_profiles_in_a_label_become_warnings() {
    let packs = Packs::builtin().unwrap();
    let ns = namespace(&[
        ("compliance.tollgate.dev/soc2", "enforce"),
        ("compliance.tollgate.dev/hipa", "enforce"),
    ]);
    let e = packs
        .evaluate(
            &deployment(json!([])),
            Some(&ns),
            &ComplianceConfig::default(),
        )
        .unwrap();
    assert_eq!(e.profiles, [Profile::Soc2]);
    assert_eq!(e.frameworks, ["SOC2"]);
    assert_eq!(e.warnings.len(), 1);
    assert!(
        e.warnings[0].contains("unknown profile \"hipa\""),
        "{:?}",
        e.warnings
    );
}

#[test]
fn one_label_per_framework_sets_its_mode() {
    let catalogue = Catalogue::builtin().unwrap();
    let ns = namespace(&[
        ("compliance.tollgate.dev/gdpr", "audit"),
        ("compliance.tollgate.dev/pci-dss", "enforce"),
    ]);
    let scope = ComplianceConfig::default().scope(catalogue, "x", Some(&ns));
    assert_eq!(scope.profiles, [Profile::PciDss, Profile::Gdpr]);
    assert!(scope.warnings.is_empty(), "{:?}", scope.warnings);
    // Among the selected frameworks, GDPR only: the GDPR label's mode.
    assert_eq!(
        action_of(&scope, "personal-data-residency"),
        Some(EnforcementAction::Audit)
    );
    // In PCI-DSS: enforced.
    assert_eq!(
        action_of(&scope, "image-pinned"),
        Some(EnforcementAction::Deny)
    );
    // A rule in two selected frameworks takes the strictest of their modes
    // (residency evidences GDPR and NIST 800-53; alias accepted).
    let ns = namespace(&[
        ("compliance.tollgate.dev/gdpr", "audit"),
        ("compliance.tollgate.dev/nist-800-53", "warn"),
    ]);
    let scope = ComplianceConfig::default().scope(catalogue, "x", Some(&ns));
    assert_eq!(scope.profiles, [Profile::Gdpr, Profile::Fedramp]);
    assert_eq!(
        action_of(&scope, "personal-data-residency"),
        Some(EnforcementAction::Warn)
    );
}

#[test]
fn a_label_cannot_weaken_the_configuration() {
    let catalogue = Catalogue::builtin().unwrap();
    let config = ComplianceConfig {
        profiles: vec![Profile::PciDss],
        ..ComplianceConfig::default()
    };
    let ns = namespace(&[("compliance.tollgate.dev/pci-dss", "audit")]);
    let scope = config.scope(catalogue, "x", Some(&ns));
    assert_eq!(
        action_of(&scope, "image-pinned"),
        Some(EnforcementAction::Deny)
    );
    // A label can make a configured warn-mode framework stricter.
    let config = ComplianceConfig {
        profiles: vec![Profile::PciDss],
        action: EnforcementAction::Warn,
        ..ComplianceConfig::default()
    };
    let ns = namespace(&[("compliance.tollgate.dev/pci-dss", "enforce")]);
    let scope = config.scope(catalogue, "x", Some(&ns));
    assert_eq!(
        action_of(&scope, "image-pinned"),
        Some(EnforcementAction::Deny)
    );
}

#[test]
fn an_unknown_mode_fails_closed_with_a_warning() {
    let catalogue = Catalogue::builtin().unwrap();
    for value in ["Enforce", "true", "", "deny"] {
        let ns = namespace(&[("compliance.tollgate.dev/pci-dss", value)]);
        let scope = ComplianceConfig::default().scope(catalogue, "x", Some(&ns));
        assert_eq!(scope.profiles, [Profile::PciDss], "{value:?}");
        assert_eq!(
            action_of(&scope, "image-pinned"),
            Some(EnforcementAction::Deny),
            "{value:?}"
        );
        assert_eq!(scope.warnings.len(), 1, "{value:?}");
        assert!(
            scope.warnings[0].contains("unknown mode"),
            "{:?}",
            scope.warnings
        );
    }
}

#[test]
fn the_single_profile_label_keeps_working_and_a_list_is_flagged() {
    let catalogue = Catalogue::builtin().unwrap();
    let config = ComplianceConfig {
        action: EnforcementAction::Warn,
        ..ComplianceConfig::default()
    };
    let ns = namespace(&[(PROFILES_LABEL, "pci-dss")]);
    let scope = config.scope(catalogue, "x", Some(&ns));
    assert_eq!(scope.profiles, [Profile::PciDss]);
    assert!(scope.warnings.is_empty(), "{:?}", scope.warnings);
    assert_eq!(
        action_of(&scope, "image-pinned"),
        Some(EnforcementAction::Warn),
        "the single-profile label takes the configured action"
    );
    // A list cannot exist on a cluster; offline, its profiles still apply
    // (failing closed) and the label is reported with the labels to use.
    let ns = namespace(&[(PROFILES_LABEL, "soc2,pci-dss")]);
    let scope = config.scope(catalogue, "x", Some(&ns));
    assert_eq!(scope.profiles, [Profile::Soc2, Profile::PciDss]);
    assert_eq!(scope.warnings.len(), 1, "{:?}", scope.warnings);
    assert!(
        scope.warnings[0].contains(
            "compliance.tollgate.dev/soc2: enforce, compliance.tollgate.dev/pci-dss: enforce"
        ),
        "{:?}",
        scope.warnings
    );
}

#[test]
fn messages_never_repeat_secret_values() {
    let packs = Packs::builtin().unwrap();
    let secret = "sk-ant-abcdefghijklmnopqrstuvwxyz0123";
    let obj = deployment(json!([{"name": "ANTHROPIC_API_KEY", "value": secret},
        {"name": "DB_PASSWORD", "value": "correct horse battery staple"}]));
    let e = packs.evaluate(&obj, None, &all_profiles()).unwrap();
    let found: Vec<&Violation> = e
        .violations
        .iter()
        .filter(|v| v.rule == "env-plaintext-secret")
        .collect();
    assert_eq!(found.len(), 2, "{:?}", e.violations);
    for v in &e.violations {
        assert!(
            !v.message.contains(secret) && !v.message.contains("horse"),
            "{}",
            v.message
        );
    }
}

#[test]
fn evaluation_is_bounded_in_time() {
    let packs = Packs::builtin().unwrap();
    let scope = all_profiles().scope(packs.catalogue(), "x", None);
    // A huge (but well-formed) object against a limit no evaluation meets.
    let env: Vec<Value> = (0..5000)
        .map(|i| json!({"name": format!("V{i}"), "value": "x"}))
        .collect();
    let err = packs
        .evaluate_in(
            &deployment(json!(env)),
            None,
            &scope,
            true,
            Duration::from_nanos(1),
        )
        .unwrap_err();
    assert!(
        matches!(err, ComplianceError::Rego(RegoError::Eval(_))),
        "{err}"
    );
}

#[test]
fn deep_objects_are_errors_not_crashes() {
    let packs = Packs::builtin().unwrap();
    let mut deep = json!("x");
    for _ in 0..200 {
        deep = json!({"a": deep});
    }
    let mut obj = deployment(json!([]));
    obj["spec"]["template"]["spec"]["containers"][0]["resources"] = deep;
    let err = packs.evaluate(&obj, None, &all_profiles()).unwrap_err();
    assert_eq!(err, ComplianceError::Rego(RegoError::TooDeep));
}

#[test]
fn odd_shapes_do_not_break_evaluation() {
    let packs = Packs::builtin().unwrap();
    for obj in [
        json!({"kind": "Deployment"}),
        json!({"kind": "Deployment", "metadata": "x", "spec": {"template": 3}}),
        json!({"kind": "Pod", "spec": {"containers": "nope", "initContainers": [1, null]}}),
        json!({"kind": "Ingress", "spec": {"rules": [{"host": 1}], "tls": "x"}}),
        json!({"kind": "Service", "spec": {"type": ["NodePort"]}}),
        json!({"kind": "PersistentVolumeClaim", "spec": null}),
        json!({"kind": "Namespace", "metadata": {"labels": {PROFILES_LABEL: 7}}}),
        json!([1, 2]),
    ] {
        let e = packs.evaluate(&obj, None, &all_profiles());
        assert!(e.is_ok(), "{obj}: {e:?}");
    }
}

/// The VM evaluates every golden case's object exactly as regorus's
/// interpreter does (the VM is the faster engine; the interpreter is the
/// reference).
#[test]
fn vm_agrees_with_the_interpreter_on_every_golden_object() {
    let compiled = rego::Compiled::compile(SOURCES, ENTRY_POINT).unwrap();
    let mut interpreter = compiled.interpreter.clone();
    let catalogue = Catalogue::builtin().unwrap();
    let config = all_profiles();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut files = Vec::new();
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    assert!(files.len() > 50, "golden cases not found");
    for path in files {
        let case: Value = yaml_serde::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let object = &case["object"];
        let namespace: Option<NamespaceInfo> =
            serde_json::from_value(case["namespace"].clone()).ok();
        let kind = object["kind"].as_str().unwrap_or("");
        let scope = config.scope(catalogue, "payments", namespace.as_ref());
        let rules: Vec<&str> = scope
            .rules
            .iter()
            .map(|(id, _)| id.as_str())
            .filter(|id| catalogue.rule(id).is_some_and(|r| r.applies_to(kind)))
            .collect();
        let build = || input::build(object, kind, namespace.as_ref(), &scope, &rules).unwrap();
        let vm = compiled.eval(build(), Duration::from_secs(5)).unwrap();
        interpreter.set_input(build());
        let reference = interpreter.eval_rule(ENTRY_POINT.into()).unwrap();
        assert_eq!(vm, reference, "{}", path.display());
    }
}
