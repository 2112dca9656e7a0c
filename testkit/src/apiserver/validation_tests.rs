//! The fake refuses what kube-apiserver refuses, with its messages.

use serde_json::{Value, json};

use super::*;
use crate::apiserver::store::builtin_types;

fn rt(kind: &str) -> ResourceType {
    builtin_types()
        .into_iter()
        .find(|t| t.kind == kind)
        .unwrap()
}

fn namespace(labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "payments", "labels": labels}})
}

fn messages(r: Result<(), Refusal>) -> Vec<String> {
    match r {
        Err(Refusal::Invalid(errors)) => errors.into_iter().map(|e| e.message).collect(),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn a_comma_list_is_not_a_label_value() {
    let ns = rt("Namespace");
    let errs = messages(validate_create(
        &ns,
        &namespace(json!({"compliance.tollgate.dev/profiles": "soc2,pci-dss"})),
    ));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("metadata.labels: Invalid value: \"soc2,pci-dss\": a valid label must be an empty string"),
        "{errs:?}"
    );
    let (code, body) = Refusal::Invalid(vec![invalid("metadata.labels", &json!("x,y"), "m")])
        .status(&ns, "payments");
    assert_eq!(code, 422);
    assert_eq!(body["reason"], "Invalid");
    assert_eq!(
        body["message"],
        "Namespace \"payments\" is invalid: metadata.labels: Invalid value: \"x,y\": m"
    );
    assert_eq!(body["details"]["causes"][0]["field"], "metadata.labels");
    assert_eq!(
        body["details"]["causes"][0]["message"],
        "Invalid value: \"x,y\": m"
    );
    // One label per framework is fine.
    assert_eq!(
        validate_create(
            &ns,
            &namespace(json!({
                "compliance.tollgate.dev/soc2": "enforce",
                "compliance.tollgate.dev/pci-dss": "audit",
                "empty": "",
            }))
        ),
        Ok(())
    );
}

#[test]
fn label_keys_and_values_follow_apimachinery() {
    let ns = rt("Namespace");
    let long = "a".repeat(64);
    let prefix_253 = format!("{}abc", "a.".repeat(125));
    assert_eq!(prefix_253.len(), 253);
    for (key, value, expect) in [
        (
            long.clone(),
            "v".to_owned(),
            "name part must be no more than 63 characters",
        ),
        (
            "/x".to_owned(),
            "v".to_owned(),
            "prefix part must be non-empty",
        ),
        (
            "a/b/c".to_owned(),
            "v".to_owned(),
            "a qualified name must consist of",
        ),
        (
            "Tollgate.dev/x".to_owned(),
            "v".to_owned(),
            "prefix part a lowercase RFC 1123 subdomain",
        ),
        (
            format!("{prefix_253}a/x"),
            "v".to_owned(),
            "prefix part must be no more than 253 characters",
        ),
        (
            "x".to_owned(),
            long.clone(),
            "must be no more than 63 characters",
        ),
        ("x".to_owned(), "-v".to_owned(), "a valid label must be"),
        ("x".to_owned(), "a b".to_owned(), "a valid label must be"),
        ("x_".to_owned(), "v".to_owned(), "name part must consist of"),
    ] {
        let errs = messages(validate_create(
            &ns,
            &namespace(json!({key.clone(): value})),
        ));
        assert!(
            errs.iter().any(|e| e.contains(expect)),
            "{key}: {errs:?} lacks {expect:?}"
        );
    }
    let ok = [
        ("a".repeat(63), "b".repeat(63)),
        (
            format!("{prefix_253}/{}", "n".repeat(63)),
            "V_1.x-Y".to_owned(),
        ),
        ("MixedCase_Name.1".to_owned(), String::new()),
    ];
    for (key, value) in ok {
        assert_eq!(
            validate_create(&ns, &namespace(json!({key.clone(): value}))),
            Ok(()),
            "{key}"
        );
    }
    let errs = messages(validate_create(&ns, &namespace(json!({"x": 7}))));
    assert!(errs[0].contains("must be a string"), "{errs:?}");
}

#[test]
fn annotations_total_at_most_256_kib() {
    let cm = rt("ConfigMap");
    let at_limit = "v".repeat(ANNOTATIONS_MAX_BYTES - 1);
    let obj = |v: &str| json!({"metadata": {"name": "c", "annotations": {"k": v}}});
    assert_eq!(validate_create(&cm, &obj(&at_limit)), Ok(()));
    let errs = messages(validate_create(&cm, &obj(&format!("{at_limit}v"))));
    assert_eq!(
        errs,
        ["metadata.annotations: Too long: may not be more than 262144 bytes"]
    );
    // Keys are checked lower-cased: upper case passes, a bad character not.
    let ok = json!({"metadata": {"name": "c", "annotations": {"Example.COM/Key": "v"}}});
    assert_eq!(validate_create(&cm, &ok), Ok(()));
    let bad = json!({"metadata": {"name": "c", "annotations": {"a b": "v"}}});
    assert_eq!(messages(validate_create(&cm, &bad)).len(), 1);
}

#[test]
fn names_follow_each_kind_rule() {
    let named = |name: &str| json!({"metadata": {"name": name}});
    let sub_ok = format!("{}.b", "a".repeat(63));
    let cases: Vec<(&str, &str, bool)> = vec![
        ("ConfigMap", "my.config-1", true),
        ("ConfigMap", sub_ok.as_str(), true),
        ("ConfigMap", "My-Config", false),
        ("ConfigMap", "a_b", false),
        ("ConfigMap", "-a", false),
        ("Namespace", "team-a", true),
        ("Namespace", "team.a", false),
        ("Service", "web", true),
        ("Service", "1web", false),
        ("Service", "web.svc", false),
        ("StatefulSet", "db.primary", false),
        ("Deployment", "web.v2", true),
        ("Role", "system:controller:x", true),
        ("Role", "a/b", false),
        ("Role", "..", false),
    ];
    for (kind, name, ok) in cases {
        let r = validate_create(&rt(kind), &named(name));
        // Workloads also need a selector; only the name matters here.
        let name_errs: Vec<String> = match r {
            Ok(()) => Vec::new(),
            Err(Refusal::Invalid(e)) => e
                .into_iter()
                .filter(|e| e.field == "metadata.name")
                .map(|e| e.message)
                .collect(),
            Err(other) => panic!("{other:?}"),
        };
        assert_eq!(name_errs.is_empty(), ok, "{kind} {name:?}: {name_errs:?}");
    }
    let long_label = "a".repeat(64);
    assert!(validate_create(&rt("Namespace"), &named(&long_label)).is_err());
    let cron = json!({"metadata": {"name": "a".repeat(53)}});
    assert!(messages(validate_create(&rt("CronJob"), &cron))[0].contains("no more than 52"));
    let errs = messages(validate_create(&rt("ConfigMap"), &json!({"metadata": {}})));
    assert_eq!(
        errs,
        ["metadata.name: Required value: name or generateName is required"]
    );
}

#[test]
fn generate_name_prefixes_may_end_in_a_dash() {
    let cm = rt("ConfigMap");
    let obj =
        |prefix: &str, name: &str| json!({"metadata": {"generateName": prefix, "name": name}});
    assert_eq!(validate_create(&cm, &obj("web-", "web-x7k2p")), Ok(()));
    let errs = messages(validate_create(&cm, &obj("Web-", "Web-x7k2p")));
    assert!(
        errs.iter()
            .any(|e| e.starts_with("metadata.generateName: Invalid value: \"Web-\"")),
        "{errs:?}"
    );
    let name = generated_name(&"p".repeat(100), "abcde");
    assert_eq!(name.len(), 63);
    assert!(name.ends_with("pabcde"));
}

fn deployment(selector: Value, labels: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "uid": "u-1"},
        "spec": {"selector": selector, "template": {"metadata": {"labels": labels}}}})
}

#[test]
fn workload_selectors_match_their_template_and_never_change() {
    let d = rt("Deployment");
    let old = deployment(
        json!({"matchLabels": {"app": "web"}}),
        json!({"app": "web"}),
    );
    assert_eq!(validate_create(&d, &old), Ok(()));
    let errs = messages(validate_create(
        &d,
        &deployment(
            json!({"matchLabels": {"app": "web"}}),
            json!({"app": "api"}),
        ),
    ));
    assert!(
        errs[0].contains("`selector` does not match template `labels`"),
        "{errs:?}"
    );
    let errs = messages(validate_create(
        &d,
        &deployment(json!({}), json!({"app": "web"})),
    ));
    assert_eq!(errs, ["spec.selector: Required value: "]);
    // Scaling or relabelling the template in a way the selector still
    // matches is fine; changing the selector is not.
    let mut scaled = old.clone();
    scaled["spec"]["replicas"] = json!(4);
    assert_eq!(
        validate_update(&d, "web", "default", &old, &scaled, false),
        Ok(())
    );
    let new = deployment(
        json!({"matchLabels": {"app": "web", "v": "2"}}),
        json!({"app": "web", "v": "2"}),
    );
    let errs = messages(validate_update(&d, "web", "default", &old, &new, false));
    assert!(
        errs[0].starts_with("spec.selector: Invalid value: ")
            && errs[0].ends_with("field is immutable"),
        "{errs:?}"
    );
}

#[test]
fn name_namespace_and_uid_never_change() {
    let d = rt("Deployment");
    let old = deployment(
        json!({"matchLabels": {"app": "web"}}),
        json!({"app": "web"}),
    );
    let mut renamed = old.clone();
    renamed["metadata"]["name"] = json!("web2");
    assert_eq!(
        validate_update(&d, "web", "default", &old, &renamed, false),
        Err(Refusal::BadRequest(
            "the name of the object (web2) does not match the name on the URL (web)".into()
        ))
    );
    let mut moved = old.clone();
    moved["metadata"]["namespace"] = json!("other");
    assert!(matches!(
        validate_update(&d, "web", "default", &old, &moved, false),
        Err(Refusal::BadRequest(_))
    ));
    let mut other_uid = old.clone();
    other_uid["metadata"]["uid"] = json!("u-2");
    let r = validate_update(&d, "web", "default", &old, &other_uid, false);
    assert!(
        matches!(&r, Err(Refusal::Conflict(m)) if m.contains("Precondition failed: UID in precondition: u-2, UID in object meta: u-1")),
        "{r:?}"
    );
    // Labels are checked on update too.
    let mut labelled = old.clone();
    labelled["metadata"]["labels"] = json!({"compliance.tollgate.dev/profiles": "soc2,hipaa"});
    assert_eq!(
        messages(validate_update(
            &d, "web", "default", &old, &labelled, false
        ))
        .len(),
        1
    );
}

#[test]
fn jobs_and_pods_keep_their_spec() {
    let job = rt("Job");
    let old = json!({"metadata": {"name": "j"}, "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "a"}]}}}});
    let mut new = old.clone();
    new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("b");
    assert!(
        messages(validate_update(&job, "j", "default", &old, &new, false))[0]
            .starts_with("spec.template: Invalid value:")
    );
    let pod = rt("Pod");
    let old =
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "a"}]}});
    let mut image = old.clone();
    image["spec"]["containers"][0]["image"] = json!("b");
    assert_eq!(
        validate_update(&pod, "p", "default", &old, &image, false),
        Ok(())
    );
    let mut privileged = old.clone();
    privileged["spec"]["containers"][0]["securityContext"] = json!({"privileged": true});
    assert!(
        messages(validate_update(
            &pod,
            "p",
            "default",
            &old,
            &privileged,
            false
        ))[0]
            .starts_with("spec: Forbidden: pod updates may not change fields")
    );
    // The status subresource does not look at the spec.
    assert_eq!(
        validate_update(&pod, "p", "default", &old, &privileged, true),
        Ok(())
    );
}
