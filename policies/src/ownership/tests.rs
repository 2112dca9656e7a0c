//! Unit tests of the ownership machinery; the golden cases under
//! `tests/golden/ownership` cover the rules themselves.

use serde_json::json;

use super::*;

#[test]
fn config_parses_strictly_with_defaults() {
    let c: OwnershipConfig = yaml_serde::from_str(
        "required: [owner]\ntiers: {critical: [oncall, runbook]}\nnamespaces: {legacy: {enabled: false}}\n",
    )
    .unwrap();
    assert_eq!(c.required, [Key::Owner]);
    assert_eq!(
        c.tiers.get(&Tier::Critical).unwrap(),
        &[Key::Oncall, Key::Runbook]
    );
    assert!(
        !c.tiers.contains_key(&Tier::Standard),
        "a map given replaces the default"
    );
    assert!(c.inherit && c.skip_controlled_pods && !c.honour_ignore);
    assert!(c.validate().is_ok());
    for bad in [
        "required: [owners]",
        "tiers: {gold: []}",
        "inheritance: true",
        "namespaces: {x: {require: [owner]}}",
    ] {
        assert!(
            yaml_serde::from_str::<OwnershipConfig>(bad).is_err(),
            "{bad}"
        );
    }
    let c: OwnershipConfig = yaml_serde::from_str("kinds: [Pod, Deploymnet]").unwrap();
    let err = c.validate().unwrap_err().to_string();
    assert!(
        err.starts_with("ownership.kinds: \"Deploymnet\" is not a workload kind"),
        "{err}"
    );
}

#[test]
fn default_config_round_trips() {
    let c = OwnershipConfig::default();
    let text = yaml_serde::to_string(&c).unwrap();
    let back: OwnershipConfig = yaml_serde::from_str(&text).unwrap();
    assert_eq!(back, c);
}

#[test]
fn keys_rules_and_annotations_line_up() {
    for key in Key::ALL {
        assert_eq!(key.annotation(), format!("{PREFIX}{}", key.as_str()));
        assert_eq!(key.rule(), format!("ownership-{}", key.as_str()));
        assert!(
            validate::problem(key, key.example()).is_none(),
            "example of {key:?}"
        );
        let k: Key = serde_json::from_value(json!(key.as_str())).unwrap();
        assert_eq!(k, key);
    }
}

#[test]
fn checked_controllers_from_json() {
    let pod = |kind: &str, api: &str, controller: bool| {
        json!({"kind": "Pod", "metadata": {"ownerReferences": [
            {"apiVersion": api, "kind": kind, "name": "web-1", "uid": "u", "controller": controller}]}})
    };
    assert_eq!(
        checked_controller(&pod("ReplicaSet", "apps/v1", true)).as_deref(),
        Some("ReplicaSet \"web-1\"")
    );
    assert!(checked_controller(&pod("ReplicaSet", "apps/v1", false)).is_none());
    assert!(checked_controller(&pod("ReplicaSet", "example.com/v1", true)).is_none());
    assert!(checked_controller(&pod("Deployment", "apps/v1", true)).is_none());
    assert!(
        checked_controller(&json!({"kind": "Job", "metadata": {"ownerReferences": [
            {"apiVersion": "batch/v1", "kind": "CronJob", "name": "n", "uid": "u", "controller": true}]}}))
        .is_some()
    );
    assert!(
        checked_controller(&json!({"kind": "Pod", "metadata": {"ownerReferences": "x"}})).is_none()
    );
}

#[test]
fn violations_carry_every_framework_control() {
    let w = Workload::from_object(&json!({"kind": "Deployment", "metadata": {"name": "a"}}))
        .unwrap()
        .unwrap();
    let v = check(&w, None, &OwnershipConfig::default());
    assert_eq!(v.len(), 2);
    assert_eq!(v[0].rule, "ownership-owner");
    assert_eq!(v[0].controls, controls("ownership-owner"));
    assert!(
        !v[0].message.contains("annotate namespace"),
        "no namespace to name"
    );
}
