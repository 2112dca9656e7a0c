//! Unit tests: the registry's shape and the version boundaries of every
//! check. Upstream fixtures and golden cases live in
//! `tests/pss_conformance.rs`.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;

use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Value, json};

use super::*;
use crate::level::LATEST_MINOR;

fn parse(pod: &Value) -> (ObjectMeta, PodSpec) {
    let meta = serde_json::from_value(pod["metadata"].clone()).unwrap();
    let spec = serde_json::from_value(pod["spec"].clone()).unwrap();
    (meta, spec)
}

/// A pod that passes restricted at every version.
fn restricted_pod() -> Value {
    let sc = json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}});
    json!({
        "metadata": {"name": "p"},
        "spec": {
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "initContainers": [{"name": "init", "image": "i", "securityContext": sc}],
            "containers": [{"name": "app", "image": "i", "securityContext": sc}],
        }
    })
}

fn with(mut pod: Value, edit: impl FnOnce(&mut Value)) -> Value {
    edit(&mut pod);
    pod
}

/// The minor versions at which `check` reports a violation.
fn failing(level: Level, pod: &Value, check: &str) -> Vec<u16> {
    let (meta, spec) = parse(pod);
    (0..=LATEST_MINOR)
        .filter(|m| {
            check_pod(level, Version::Minor(*m), &meta, &spec)
                .iter()
                .any(|v| v.check == check)
        })
        .collect()
}

fn range(r: RangeInclusive<u16>) -> Vec<u16> {
    r.collect()
}

#[test]
fn registry_is_well_formed() {
    let mut ids = BTreeSet::new();
    for check in registry() {
        assert!(ids.insert(check.id), "duplicate check id {}", check.id);
        assert!(check.level != Level::Privileged, "{}", check.id);
        assert!(!check.revisions.is_empty(), "{}", check.id);
        for pair in check.revisions.windows(2) {
            assert!(
                pair[0].since < pair[1].since,
                "{} revisions out of order",
                check.id
            );
        }
        assert!(
            check.revisions.iter().all(|r| r.since <= LATEST_MINOR),
            "{}",
            check.id
        );
    }
    for check in registry() {
        for r in check.revisions {
            for o in r.overrides {
                let target = registry().iter().find(|c| c.id == *o);
                assert!(
                    check.level == Level::Restricted
                        && target.is_some_and(|t| t.level == Level::Baseline),
                    "{} overrides {o}, which is not a baseline check",
                    check.id
                );
            }
        }
    }
    assert_eq!(ids.len(), 19);
    let seccomp = registry()
        .iter()
        .find(|c| c.id == "seccompProfile_restricted")
        .unwrap();
    let ranges: Vec<(u16, u16)> = seccomp.version_ranges().map(|(a, b, _)| (a, b)).collect();
    assert_eq!(ranges, [(19, 24), (25, LATEST_MINOR)]);
    assert_eq!(seccomp.since(), 19);
    assert!(seccomp.revision_at(18).is_none());
}

#[test]
fn active_checks_follow_versions_and_overrides() {
    let ids = |level, minor| active_checks(level, Version::Minor(minor)).collect::<Vec<_>>();
    assert!(ids(Level::Privileged, LATEST_MINOR).is_empty());
    assert_eq!(ids(Level::Baseline, 0).len(), 11);
    assert_eq!(ids(Level::Baseline, 34).len(), 12);
    let r21 = ids(Level::Restricted, 21);
    assert!(r21.contains(&"capabilities_baseline") && !r21.contains(&"capabilities_restricted"));
    let r22 = ids(Level::Restricted, 22);
    assert!(!r22.contains(&"capabilities_baseline") && r22.contains(&"capabilities_restricted"));
    assert!(ids(Level::Restricted, 18).contains(&"seccompProfile_baseline"));
    assert!(!ids(Level::Restricted, 19).contains(&"seccompProfile_baseline"));
    assert!(ids(Level::Restricted, 34).contains(&"procMount"));
    let r35 = ids(Level::Restricted, 35);
    assert!(!r35.contains(&"procMount") && r35.contains(&"procMount_restricted"));
    assert!(!ids(Level::Restricted, 0).contains(&"hostPathVolumes"));
    assert!(!ids(Level::Restricted, 7).contains(&"allowPrivilegeEscalation"));
    assert!(!ids(Level::Restricted, 22).contains(&"runAsUser"));
    // Versions past this build's latest evaluate as the latest.
    assert_eq!(
        active_checks(Level::Restricted, Version::Minor(99)).collect::<Vec<_>>(),
        active_checks(Level::Restricted, Version::Latest).collect::<Vec<_>>()
    );
}

#[test]
fn compliant_pod_passes_everywhere_and_privileged_never_fails() {
    let (meta, spec) = parse(&restricted_pod());
    for level in [Level::Privileged, Level::Baseline, Level::Restricted] {
        for minor in 0..=LATEST_MINOR + 3 {
            let v = check_pod(level, Version::Minor(minor), &meta, &spec);
            assert!(v.is_empty(), "{level} v1.{minor}: {v:?}");
        }
    }
    let awful = with(restricted_pod(), |p| {
        p["spec"]["hostNetwork"] = json!(true);
        p["spec"]["containers"][0]["securityContext"]["privileged"] = json!(true);
    });
    let (meta, spec) = parse(&awful);
    assert!(check_pod(Level::Privileged, Version::Latest, &meta, &spec).is_empty());
}

#[test]
fn messages_name_the_container_field_fix_level_and_version() {
    let pod = with(restricted_pod(), |p| {
        p["spec"]["containers"][0]["name"] = json!("agent");
        p["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = json!(null);
    });
    let (meta, spec) = parse(&pod);
    let v = check_pod(Level::Restricted, Version::Latest, &meta, &spec);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].check, "allowPrivilegeEscalation");
    assert_eq!(v[0].level, Level::Restricted);
    assert_eq!(v[0].container.as_deref(), Some("agent"));
    assert_eq!(
        v[0].path,
        "spec.containers[0].securityContext.allowPrivilegeEscalation"
    );
    assert_eq!(
        v[0].message,
        "container \"agent\" must set securityContext.allowPrivilegeEscalation=false (it is unset) (restricted, v1.37)"
    );
    // A baseline check evaluated at restricted keeps its own level.
    let pod = with(restricted_pod(), |p| p["spec"]["hostIPC"] = json!(true));
    let (meta, spec) = parse(&pod);
    let v = check_pod(Level::Restricted, Version::Minor(30), &meta, &spec);
    assert_eq!(
        (v[0].check, v[0].level),
        ("hostNamespaces", Level::Baseline)
    );
    assert!(
        v[0].message.ends_with("(restricted, v1.30)"),
        "{}",
        v[0].message
    );
}

#[test]
fn every_violation_is_reported_not_just_the_first() {
    let pod = with(restricted_pod(), |p| {
        for list in ["initContainers", "containers"] {
            p["spec"][list][0]["securityContext"] = json!({});
        }
    });
    let (meta, spec) = parse(&pod);
    let v = check_pod(Level::Restricted, Version::Latest, &meta, &spec);
    let paths: Vec<&str> = v.iter().map(|v| v.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "spec.initContainers[0].securityContext.allowPrivilegeEscalation",
            "spec.containers[0].securityContext.allowPrivilegeEscalation",
            "spec.initContainers[0].securityContext.capabilities.drop",
            "spec.containers[0].securityContext.capabilities.drop",
        ]
    );
}

#[test]
fn baseline_version_boundaries() {
    let b = Level::Baseline;
    let all = range(0..=LATEST_MINOR);
    let c0 =
        |p: &mut Value, k: &str, v: Value| p["spec"]["containers"][0]["securityContext"][k] = v;
    let cases: Vec<(&str, Value, Vec<u16>)> = vec![
        (
            "hostNamespaces",
            with(restricted_pod(), |p| p["spec"]["hostPID"] = json!(true)),
            all.clone(),
        ),
        (
            "privileged",
            with(restricted_pod(), |p| c0(p, "privileged", json!(true))),
            all.clone(),
        ),
        (
            "capabilities_baseline",
            with(restricted_pod(), |p| {
                c0(p, "capabilities", json!({"add": ["SYS_ADMIN"]}))
            }),
            all.clone(),
        ),
        (
            "hostPathVolumes",
            with(restricted_pod(), |p| {
                p["spec"]["volumes"] = json!([{"name": "h", "hostPath": {"path": "/"}}])
            }),
            all.clone(),
        ),
        (
            "hostPorts",
            with(restricted_pod(), |p| {
                p["spec"]["containers"][0]["ports"] = json!([{"containerPort": 1, "hostPort": 1}])
            }),
            all.clone(),
        ),
        (
            "appArmorProfile",
            with(restricted_pod(), |p| {
                c0(p, "appArmorProfile", json!({"type": "Unconfined"}))
            }),
            all.clone(),
        ),
        (
            "seLinuxOptions",
            with(restricted_pod(), |p| {
                c0(p, "seLinuxOptions", json!({"type": "container_engine_t"}))
            }),
            range(0..=30),
        ),
        (
            "procMount",
            with(restricted_pod(), |p| {
                p["spec"]["hostUsers"] = json!(false);
                c0(p, "procMount", json!("Unmasked"));
            }),
            range(0..=34),
        ),
        (
            "seccompProfile_baseline",
            with(restricted_pod(), |p| {
                c0(p, "seccompProfile", json!({"type": "Unconfined"}))
            }),
            range(19..=LATEST_MINOR),
        ),
        (
            "seccompProfile_baseline",
            with(restricted_pod(), |p| {
                p["metadata"]["annotations"] =
                    json!({"container.seccomp.security.alpha.kubernetes.io/app": "unconfined"});
            }),
            range(0..=18),
        ),
        (
            "windowsHostProcess",
            with(restricted_pod(), |p| {
                c0(p, "windowsOptions", json!({"hostProcess": true}))
            }),
            all.clone(),
        ),
        (
            "hostProbesAndHostLifecycle",
            with(restricted_pod(), |p| {
                p["spec"]["containers"][0]["livenessProbe"] =
                    json!({"httpGet": {"host": "h", "port": 1}});
            }),
            range(34..=LATEST_MINOR),
        ),
    ];
    for (check, pod, want) in &cases {
        assert_eq!(&failing(b, pod, check), want, "{check}");
    }
    let sysctl = |name: &str| {
        with(restricted_pod(), |p| {
            p["spec"]["securityContext"]["sysctls"] = json!([{"name": name, "value": "1"}]);
        })
    };
    for (name, since) in [
        ("kernel.shm_rmid_forced", 0),
        ("net.ipv4.ip_local_reserved_ports", 27),
        ("net.ipv4.tcp_fin_timeout", 29),
        ("net.ipv4.tcp_wmem", 32),
        ("net.ipv4.tcp_notsent_lowat", 37),
    ] {
        let before: Vec<u16> = (0..since).collect();
        assert_eq!(failing(b, &sysctl(name), "sysctls"), before, "{name}");
    }
    assert_eq!(failing(b, &sysctl("kernel.msgmax"), "sysctls"), all);
}

#[test]
fn restricted_version_boundaries() {
    let r = Level::Restricted;
    let latest = LATEST_MINOR;
    let windows = |p: &mut Value| p["spec"]["os"] = json!({"name": "windows"});
    let sc = |p: &mut Value, k: &str, v: Value| {
        for list in ["initContainers", "containers"] {
            p["spec"][list][0]["securityContext"][k] = v.clone();
        }
    };
    let no_ape = |p: &mut Value| sc(p, "allowPrivilegeEscalation", Value::Null);
    let no_seccomp = |p: &mut Value| p["spec"]["securityContext"]["seccompProfile"] = Value::Null;
    let no_caps = |p: &mut Value| sc(p, "capabilities", Value::Null);
    let userns = |p: &mut Value| p["spec"]["hostUsers"] = json!(false);
    let no_nonroot = |p: &mut Value| p["spec"]["securityContext"]["runAsNonRoot"] = Value::Null;
    let root = |p: &mut Value| p["spec"]["securityContext"]["runAsUser"] = json!(0);
    let unmasked = |p: &mut Value| sc(p, "procMount", json!("Unmasked"));
    let cases: Vec<(&str, Value, Vec<u16>)> = vec![
        (
            "restrictedVolumes",
            with(restricted_pod(), |p| {
                p["spec"]["volumes"] = json!([{"name": "g", "gitRepo": {"repository": "r"}}])
            }),
            range(0..=latest),
        ),
        (
            "restrictedVolumes",
            with(restricted_pod(), |p| {
                p["spec"]["volumes"] = json!([{"name": "h", "hostPath": {"path": "/"}}])
            }),
            range(0..=latest),
        ),
        (
            "allowPrivilegeEscalation",
            with(restricted_pod(), no_ape),
            range(8..=latest),
        ),
        (
            "allowPrivilegeEscalation",
            with(with(restricted_pod(), no_ape), windows),
            range(8..=24),
        ),
        (
            "runAsNonRoot",
            with(restricted_pod(), no_nonroot),
            range(0..=latest),
        ),
        (
            "runAsNonRoot",
            with(with(restricted_pod(), no_nonroot), userns),
            range(0..=34),
        ),
        (
            "runAsUser",
            with(restricted_pod(), root),
            range(23..=latest),
        ),
        (
            "runAsUser",
            with(with(restricted_pod(), root), userns),
            range(23..=34),
        ),
        (
            "seccompProfile_restricted",
            with(restricted_pod(), no_seccomp),
            range(19..=latest),
        ),
        (
            "seccompProfile_restricted",
            with(with(restricted_pod(), no_seccomp), windows),
            range(19..=24),
        ),
        (
            "capabilities_restricted",
            with(restricted_pod(), no_caps),
            range(22..=latest),
        ),
        (
            "capabilities_restricted",
            with(with(restricted_pod(), no_caps), windows),
            range(22..=24),
        ),
        (
            "procMount_restricted",
            with(with(restricted_pod(), unmasked), userns),
            range(35..=latest),
        ),
        (
            "procMount",
            with(with(restricted_pod(), unmasked), userns),
            range(0..=34),
        ),
    ];
    for (check, pod, want) in &cases {
        assert_eq!(&failing(r, pod, check), want, "{check}");
    }
}
