use std::time::Duration;

use serde_json::json;

use super::*;
use crate::rego::Limits;
use crate::{EnforcementAction, PolicySet, StaticNamespaces};

fn template(kind: &str, rego: &str) -> String {
    let indented: String = rego.lines().map(|l| format!("        {l}\n")).collect();
    format!(
        "apiVersion: templates.gatekeeper.sh/v1\nkind: ConstraintTemplate\nmetadata:\n  name: {}\nspec:\n  crd:\n    spec:\n      names:\n        kind: {kind}\n  targets:\n    - target: admission.k8s.gatekeeper.sh\n      rego: |\n{indented}",
        kind.to_lowercase()
    )
}

fn constraint(kind: &str, name: &str, extra: &str) -> String {
    format!(
        "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: {kind}\nmetadata:\n  name: {name}\nspec:\n{extra}"
    )
}

fn load(files: &[(&str, String)]) -> Result<ConstraintSet, LoadError> {
    let files: Vec<SourceFile> = files
        .iter()
        .map(|(n, c)| SourceFile::new(*n, c.clone()))
        .collect();
    ConstraintSet::load(&files, LoadOptions::default())
}

fn pod(name: &str, labels: serde_json::Value) -> Review {
    Review::from_object(&json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop", "labels": labels},
        "spec": {"containers": [{"name": "app", "image": "nginx:latest"}]},
    }))
    .unwrap()
}

const LABELS_V0: &str = r#"package k8srequiredlabels
violation[{"msg": msg, "details": {"missing": missing}}] {
  provided := {l | input.review.object.metadata.labels[l]}
  required := {l | l := input.parameters.labels[_]}
  missing := required - provided
  count(missing) > 0
  msg := sprintf("missing labels: %v", [missing])
}"#;

fn none() -> StaticNamespaces {
    StaticNamespaces::default()
}

#[test]
fn runs_a_v0_template_with_parameters_and_details() {
    let set = load(&[
        ("t.yaml", template("K8sRequiredLabels", LABELS_V0)),
        (
            "c.yaml",
            constraint(
                "K8sRequiredLabels",
                "owner",
                "  parameters:\n    labels: [owner, team]\n",
            ),
        ),
    ])
    .unwrap();
    let results = set.review(
        &pod("p", json!({"team": "a"})),
        &none(),
        &Inventory::empty(),
        None,
    );
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].message, "missing labels: {\"owner\"}");
    assert_eq!(results[0].details, json!({"missing": ["owner"]}));
    assert_eq!(results[0].action, EnforcementAction::Deny);
    let v = set.evaluate(
        &pod("p", json!({"team": "a"})),
        &none(),
        &Inventory::empty(),
    );
    assert_eq!(v[0].policy, PolicySet::Constraints);
    assert_eq!(v[0].rule, "K8sRequiredLabels/owner");
    assert!(
        set.evaluate(
            &pod("p", json!({"team": "a", "owner": "b"})),
            &none(),
            &Inventory::empty()
        )
        .is_empty()
    );
}

#[test]
fn absent_parameters_are_an_empty_object() {
    let rego = "package k8sparams\nviolation[{\"msg\": msg}] {\n  input.parameters == {}\n  msg := \"empty\"\n}";
    let set = load(&[
        ("t.yaml", template("K8sParams", rego)),
        ("c.yaml", constraint("K8sParams", "none", "  match: {}\n")),
    ])
    .unwrap();
    let results = set.review(&pod("p", json!({})), &none(), &Inventory::empty(), None);
    assert_eq!(results.len(), 1, "{results:?}");
}

#[test]
fn reads_the_code_form_with_rego_v1_and_skips_other_engines() {
    let t = r#"apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8sdenylatest
spec:
  crd:
    spec:
      names:
        kind: K8sDenyLatest
  targets:
    - target: admission.k8s.gatekeeper.sh
      code:
        - engine: K8sNativeValidation
          source:
            validations:
              - expression: "true"
        - engine: Rego
          source:
            version: "v1"
            rego: |
              package k8sdenylatest
              import data.lib.images.tag
              violation contains {"msg": msg} if {
                some c in input.review.object.spec.containers
                tag(c.image) == "latest"
                msg := sprintf("container %v uses :latest", [c.name])
              }
            libs:
              - |
                package lib.images
                tag(image) := t if {
                  parts := split(image, ":")
                  t := parts[count(parts) - 1]
                }
"#;
    let set = load(&[
        ("t.yaml", t.to_owned()),
        (
            "c.yaml",
            constraint("K8sDenyLatest", "no-latest", "  match: {}\n"),
        ),
    ])
    .unwrap();
    assert_eq!(
        set.template("K8sDenyLatest").unwrap().version(),
        crate::rego::RegoVersion::V1
    );
    let results = set.review(&pod("p", json!({})), &none(), &Inventory::empty(), None);
    assert_eq!(results[0].message, "container app uses :latest");
}

#[test]
fn unversioned_v1_rego_is_accepted() {
    let rego = "package k8sv1\nviolation contains {\"msg\": \"x\"} if { true }";
    let set = load(&[
        ("t.yaml", template("K8sV1", rego)),
        ("c.yaml", constraint("K8sV1", "x", "  match: {}\n")),
    ])
    .unwrap();
    assert_eq!(
        set.template("K8sV1").unwrap().version(),
        crate::rego::RegoVersion::V1
    );
}

#[test]
fn cel_only_templates_are_refused_clearly() {
    let t = "apiVersion: templates.gatekeeper.sh/v1\nkind: ConstraintTemplate\nmetadata:\n  name: k8scel\nspec:\n  crd:\n    spec:\n      names:\n        kind: K8sCel\n  targets:\n    - target: admission.k8s.gatekeeper.sh\n      code:\n        - engine: K8sNativeValidation\n          source:\n            validations: []\n";
    let err = load(&[("t.yaml", t.to_owned())]).unwrap_err().to_string();
    assert!(err.contains("K8sNativeValidation"), "{err}");
    assert!(err.contains("engine: Rego"), "{err}");
    assert!(err.starts_with("t.yaml:10:3:"), "{err}");
}

#[test]
fn rego_errors_point_into_the_yaml_file() {
    let rego = "package k8sbroken\n\nviolation[{\"msg\": msg}] {\n  msg := concat(\"\", [\"a\"\n}";
    let err = load(&[("dir/template.yaml", template("K8sBroken", rego))]).unwrap_err();
    let text = err.to_string();
    let GatekeeperError::Rego { error, template } = &err.errors[0] else {
        panic!("{text}");
    };
    assert_eq!(template, "k8sbroken");
    let location = error.location().unwrap();
    assert_eq!(location.file, "dir/template.yaml");
    // The Rego starts on line 13 of the YAML, indented by 8 columns.
    assert!((15..=17).contains(&location.line), "{text}");
    assert!(location.column > 8, "{text}");
}

#[test]
fn template_and_constraint_mistakes_are_all_reported() {
    let bad_name = template(
        "K8sNamed",
        "package x\nviolation[{\"msg\": \"m\"}] { true }",
    )
    .replace("name: k8snamed", "name: wrong");
    let no_violation = template("K8sNoViolation", "package y\ndeny[m] { m := 1 }");
    let err = load(&[
        ("a.yaml", bad_name),
        ("b.yaml", no_violation),
        ("c.yaml", constraint("K8sUnknown", "x", "  match: {}\n")),
        (
            "d.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n".to_owned(),
        ),
    ])
    .unwrap_err();
    let text = err.to_string();
    assert_eq!(err.errors.len(), 4, "{text}");
    assert!(
        text.contains("a.yaml:4:3: ConstraintTemplate name \"wrong\" must be the lowercase"),
        "{text}"
    );
    assert!(text.contains("must define a `violation` rule"), "{text}");
    assert!(
        text.contains("c.yaml:1:1: no ConstraintTemplate defines constraint kind \"K8sUnknown\""),
        "{text}"
    );
    assert!(
        text.contains("d.yaml:1:1: expected a ConstraintTemplate"),
        "{text}"
    );
}

#[test]
fn parameters_are_checked_against_the_schema() {
    let t = template("K8sRequiredLabels", LABELS_V0).replace(
        "        kind: K8sRequiredLabels\n",
        "        kind: K8sRequiredLabels\n      validation:\n        openAPIV3Schema:\n          type: object\n          properties:\n            labels:\n              type: array\n              items:\n                type: string\n",
    );
    let err = load(&[
        ("t.yaml", t),
        (
            "c.yaml",
            constraint(
                "K8sRequiredLabels",
                "bad",
                "  parameters:\n    labels: owner\n",
            ),
        ),
    ])
    .unwrap_err();
    assert!(matches!(err.errors[0], GatekeeperError::Schema { .. }));
    assert_eq!(
        err.to_string(),
        "c.yaml:6:3: K8sRequiredLabels/bad: invalid parameters: spec.parameters.labels: expected array, got string"
    );
}

#[test]
fn enforcement_actions_map_to_violation_actions() {
    let t = template(
        "K8sAlways",
        "package k8salways\nviolation[{\"msg\": \"hit\"}] { true }",
    );
    let set = load(&[
        ("t.yaml", t),
        ("a.yaml", constraint("K8sAlways", "a-deny", "  match: {}\n")),
        ("b.yaml", constraint("K8sAlways", "b-warn", "  enforcementAction: warn\n")),
        ("c.yaml", constraint("K8sAlways", "c-dryrun", "  enforcementAction: dryrun\n")),
        (
            "d.yaml",
            constraint(
                "K8sAlways",
                "d-scoped",
                "  enforcementAction: scoped\n  scopedEnforcementActions:\n  - action: warn\n    enforcementPoints:\n    - name: validation.gatekeeper.sh\n  - action: deny\n    enforcementPoints:\n    - name: audit.gatekeeper.sh\n",
            ),
        ),
    ])
    .unwrap();
    let actions: Vec<_> = set
        .evaluate(&pod("p", json!({})), &none(), &Inventory::empty())
        .into_iter()
        .map(|v| (v.rule, v.action))
        .collect();
    assert_eq!(
        actions,
        vec![
            ("K8sAlways/a-deny".to_owned(), EnforcementAction::Deny),
            ("K8sAlways/b-warn".to_owned(), EnforcementAction::Warn),
            ("K8sAlways/c-dryrun".to_owned(), EnforcementAction::Audit),
            ("K8sAlways/d-scoped".to_owned(), EnforcementAction::Warn),
        ]
    );
    let audit = set.review(
        &pod("p", json!({})),
        &none(),
        &Inventory::empty(),
        Some(EnforcementPoint::Audit),
    );
    let scoped = audit.iter().find(|r| r.name == "d-scoped").unwrap();
    assert_eq!(scoped.action, EnforcementAction::Deny);
    let err = load(&[
        (
            "t.yaml",
            template(
                "K8sAlways",
                "package k8salways\nviolation[{\"msg\": \"hit\"}] { true }",
            ),
        ),
        (
            "x.yaml",
            constraint("K8sAlways", "x", "  enforcementAction: block\n"),
        ),
    ])
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("\"block\" is not one of deny, warn, dryrun, scoped"),
        "{err}"
    );
}

#[test]
fn evaluation_errors_follow_the_constraint_action() {
    // `x` is 1 and 2 at once: a conflict error at evaluation time.
    let rego = "package k8sconflict\nx = 1 { true }\nx = 2 { true }\nviolation[{\"msg\": \"m\"}] { x == 1 }";
    let set = load(&[
        ("t.yaml", template("K8sConflict", rego)),
        ("a.yaml", constraint("K8sConflict", "deny", "  match: {}\n")),
        (
            "b.yaml",
            constraint("K8sConflict", "warn", "  enforcementAction: warn\n"),
        ),
    ])
    .unwrap();
    let results = set.review(&pod("p", json!({})), &none(), &Inventory::empty(), None);
    assert_eq!(results.len(), 2);
    assert!(results.iter().all(|r| r.error));
    assert!(
        results[0]
            .message
            .starts_with("constraint K8sConflict/deny could not be evaluated"),
        "{}",
        results[0].message
    );
    let v = set.evaluate(&pod("p", json!({})), &none(), &Inventory::empty());
    assert_eq!(v[0].action, EnforcementAction::Deny);
    assert_eq!(v[1].action, EnforcementAction::Warn);
}

#[test]
fn slow_templates_are_stopped_and_fail_closed() {
    let rego = "package k8sslow\nviolation[{\"msg\": msg}] {\n  r := numbers.range(1, 1000)\n  n := count([1 | r[_]; r[_]; r[_]])\n  msg := sprintf(\"%v\", [n])\n}";
    let files = [
        SourceFile::new("t.yaml", template("K8sSlow", rego)),
        SourceFile::new("a.yaml", constraint("K8sSlow", "a", "  match: {}\n")),
        SourceFile::new("b.yaml", constraint("K8sSlow", "b", "  match: {}\n")),
    ];
    let options = LoadOptions {
        limits: Limits {
            eval_timeout: Duration::from_millis(20),
            ..Limits::default()
        },
        review_budget: Duration::from_millis(30),
    };
    let set = ConstraintSet::load(&files, options).unwrap();
    let started = std::time::Instant::now();
    let results = set.review(&pod("p", json!({})), &none(), &Inventory::empty(), None);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(results.len(), 2);
    assert!(
        results[0].message.contains("time limit"),
        "{}",
        results[0].message
    );
    assert!(results[1].error);
    assert_eq!(
        set.evaluate(&pod("p", json!({})), &none(), &Inventory::empty())[0].action,
        EnforcementAction::Deny
    );
}

#[test]
fn inventory_is_visible_as_data_inventory() {
    let rego = r#"package k8suniquename
violation[{"msg": msg}] {
  other := data.inventory.namespace[ns][_]["ConfigMap"][name]
  name == input.review.object.metadata.name
  ns != input.review.object.metadata.namespace
  msg := sprintf("name %v is used in %v", [name, ns])
}
violation[{"msg": msg}] {
  data.inventory.cluster["v1"]["Namespace"]["shop"].metadata.labels.frozen == "true"
  msg := "namespace is frozen"
}"#;
    let set = load(&[
        ("t.yaml", template("K8sUniqueName", rego)),
        ("c.yaml", constraint("K8sUniqueName", "x", "  match: {}\n")),
    ])
    .unwrap();
    let review = Review::from_object(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "shop"}})).unwrap();
    let inventory = Inventory::from_objects(&[
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "other"}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"frozen": "true"}}}),
    ])
    .unwrap();
    let mut messages: Vec<String> = set
        .review(&review, &inventory, &inventory, None)
        .into_iter()
        .map(|r| r.message)
        .collect();
    messages.sort();
    assert_eq!(
        messages,
        ["name cfg is used in other", "namespace is frozen"]
    );
    assert!(
        set.review(&review, &none(), &Inventory::empty(), None)
            .is_empty()
    );
    assert!(Inventory::from_objects(&[json!({"kind": "Pod"})]).is_err());
}

#[test]
fn reviews_are_shaped_like_gatekeepers() {
    let review = Review::from_object(&json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"}
    }))
    .unwrap();
    assert_eq!(
        review.document(),
        json!({
            "uid": "",
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "", "version": "", "resource": ""},
            "name": "web",
            "namespace": "shop",
            "operation": "",
            "userInfo": {},
            "object": {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"}},
        })
    );
    let wrapped = Review::from_object(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "u", "kind": {"group": "", "version": "v1", "kind": "Pod"}, "operation": "DELETE",
                    "namespace": "shop", "userInfo": {"username": "bob"},
                    "oldObject": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}}
    }))
    .unwrap();
    let doc = wrapped.document();
    assert_eq!(
        doc["object"], doc["oldObject"],
        "DELETE reviews see the old object as object"
    );
    assert_eq!(doc["userInfo"]["username"], "bob");
    assert!(Review::from_object(&json!({"kind": "Pod"})).is_err());
    assert!(Review::from_admission_request(&json!({"operation": "CREATE"})).is_err());
}

#[test]
fn store_swaps_atomically_and_keeps_the_last_good_set() {
    let good = vec![
        SourceFile::new("t.yaml", template("K8sRequiredLabels", LABELS_V0)),
        SourceFile::new(
            "c.yaml",
            constraint(
                "K8sRequiredLabels",
                "owner",
                "  parameters:\n    labels: [owner]\n",
            ),
        ),
    ];
    let store = ConstraintStore::new(ConstraintSet::empty());
    assert!(store.current().is_empty());
    let first = store.reload(&good, LoadOptions::default()).unwrap();
    assert_eq!(store.current().constraints().len(), 1);
    // A broken file is refused; the active set stays.
    let mut broken = good.clone();
    broken.push(SourceFile::new("x.yaml", "kind: [".to_owned()));
    let err = store.reload(&broken, LoadOptions::default()).unwrap_err();
    assert!(err.to_string().starts_with("x.yaml:"), "{err}");
    assert!(std::sync::Arc::ptr_eq(&store.current(), &first));
    // An unchanged template is not recompiled.
    let second = store.reload(&good, LoadOptions::default()).unwrap();
    let id = |s: &ConstraintSet| s.template("K8sRequiredLabels").unwrap().program().id();
    assert_eq!(id(&first), id(&second));
    // Other threads see the new set too.
    let seen = std::thread::scope(|s| {
        s.spawn(|| store.current().constraints().len())
            .join()
            .unwrap()
    });
    assert_eq!(seen, 1);
}
