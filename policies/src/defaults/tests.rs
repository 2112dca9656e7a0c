//! Unit tests for secure defaults: the exact patch for representative
//! pods, each rule that withholds a default, and the configuration.
//! Property tests over the fixture corpus live in `tests/defaults_corpus.rs`.

use serde_json::{Value, json};

use super::*;

fn workload(object: &Value) -> Workload {
    Workload::from_object(object).unwrap().unwrap()
}

fn pod(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec})
}

/// The patch as JSON, after checking that it applies and that a second
/// pass over the patched object adds nothing.
fn patch_for(object: &Value, config: &DefaultsConfig) -> Value {
    let ops = secure_defaults(&workload(object), config);
    let mut patched = object.clone();
    json_patch::patch(&mut patched, &ops).unwrap();
    let again = secure_defaults(&workload(&patched), config);
    assert!(again.is_empty(), "not idempotent: {again:?}");
    serde_json::to_value(&ops).unwrap()
}

fn add_op(path: &str, value: Value) -> Value {
    json!({"op": "add", "path": path, "value": value})
}

#[test]
fn bare_deployment_gets_every_default_under_its_template() {
    let object = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"template": {"spec": {
            "initContainers": [{"name": "init", "image": "i"}],
            "containers": [{"name": "a", "image": "i"}, {"name": "b", "image": "i"}],
        }}}
    });
    let drop_all = json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}});
    assert_eq!(
        patch_for(&object, &DefaultsConfig::default()),
        json!([
            add_op(
                "/spec/template/spec/securityContext",
                json!({"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}})
            ),
            add_op(
                "/spec/template/spec/initContainers/0/securityContext",
                drop_all.clone()
            ),
            add_op(
                "/spec/template/spec/containers/0/securityContext",
                drop_all.clone()
            ),
            add_op("/spec/template/spec/containers/1/securityContext", drop_all),
        ])
    );
}

#[test]
fn cronjob_patches_its_job_template() {
    let object = json!({
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"},
        "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "a", "image": "i", "securityContext": {"allowPrivilegeEscalation": false}}],
        }}}}}
    });
    assert_eq!(
        patch_for(&object, &DefaultsConfig::default()),
        json!([add_op(
            "/spec/jobTemplate/spec/template/spec/containers/0/securityContext/capabilities",
            json!({"drop": ["ALL"]})
        )])
    );
}

#[test]
fn values_the_user_set_are_never_changed() {
    let object = pod(json!({
        "securityContext": {"runAsNonRoot": false, "seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}},
        "containers": [
            {"name": "a", "image": "i", "securityContext": {
                "allowPrivilegeEscalation": true,
                "capabilities": {"add": ["NET_ADMIN"], "drop": ["NET_RAW"]}}},
            {"name": "b", "image": "i", "securityContext": {"capabilities": {"add": ["NET_BIND_SERVICE"]}}},
            {"name": "c", "image": "i", "securityContext": {"capabilities": {"drop": []}}},
        ],
    }));
    assert_eq!(
        patch_for(&object, &DefaultsConfig::default()),
        json!([
            add_op(
                "/spec/containers/0/securityContext/capabilities/drop/-",
                json!("ALL")
            ),
            add_op(
                "/spec/containers/1/securityContext/allowPrivilegeEscalation",
                json!(false)
            ),
            add_op(
                "/spec/containers/1/securityContext/capabilities/drop",
                json!(["ALL"])
            ),
            add_op(
                "/spec/containers/2/securityContext/allowPrivilegeEscalation",
                json!(false)
            ),
            add_op(
                "/spec/containers/2/securityContext/capabilities/drop/-",
                json!("ALL")
            ),
        ])
    );
}

#[test]
fn no_escalation_default_where_the_api_server_would_refuse_it() {
    let object = pod(json!({
        "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [
            {"name": "priv", "image": "i", "securityContext": {"privileged": true}},
            {"name": "admin", "image": "i", "securityContext": {"capabilities": {"add": ["CAP_SYS_ADMIN"], "drop": ["ALL"]}}},
        ],
    }));
    assert_eq!(
        patch_for(&object, &DefaultsConfig::default()),
        json!([add_op(
            "/spec/containers/0/securityContext/capabilities",
            json!({"drop": ["ALL"]})
        )])
    );
}

#[test]
fn windows_pods_get_only_run_as_non_root() {
    let full = DefaultsConfig {
        read_only_root_filesystem: true,
        run_as_user: Some(NonRootId::new(65534).unwrap()),
        run_as_group: Some(NonRootId::new(65534).unwrap()),
        ..DefaultsConfig::default()
    };
    for marker in [
        json!({"os": {"name": "windows"}}),
        json!({"nodeSelector": {"kubernetes.io/os": "windows"}}),
    ] {
        let mut spec = json!({"containers": [{"name": "a", "image": "i"}]});
        for (k, v) in marker.as_object().unwrap() {
            spec[k] = v.clone();
        }
        assert_eq!(
            patch_for(&pod(spec), &full),
            json!([add_op(
                "/spec/securityContext",
                json!({"runAsNonRoot": true})
            )])
        );
    }
}

#[test]
fn host_process_pods_and_empty_pods_are_left_alone() {
    let host_process = pod(json!({
        "hostNetwork": true,
        "containers": [{"name": "a", "image": "i",
            "securityContext": {"windowsOptions": {"hostProcess": true, "runAsUserName": "NT AUTHORITY\\SYSTEM"}}}],
    }));
    assert_eq!(
        patch_for(&host_process, &DefaultsConfig::default()),
        json!([])
    );
    let template_without_spec = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {}});
    assert_eq!(
        patch_for(&template_without_spec, &DefaultsConfig::default()),
        json!([])
    );
}

#[test]
fn run_as_non_root_is_withheld_from_pods_that_run_as_root() {
    let root_container = pod(json!({
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [
            {"name": "a", "image": "i", "securityContext": {"runAsUser": 0, "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}},
        ],
    }));
    assert_eq!(
        patch_for(&root_container, &DefaultsConfig::default()),
        json!([])
    );
    // A container that decides runAsNonRoot itself does not inherit it.
    let opted_out = pod(json!({
        "securityContext": {"runAsUser": 0, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [
            {"name": "a", "image": "i", "securityContext": {"runAsNonRoot": false, "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}},
        ],
    }));
    assert_eq!(
        patch_for(&opted_out, &DefaultsConfig::default()),
        json!([add_op("/spec/securityContext/runAsNonRoot", json!(true))])
    );
}

#[test]
fn seccomp_default_respects_the_legacy_annotation() {
    let object = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "annotations": {"seccomp.security.alpha.kubernetes.io/pod": "unconfined"}},
        "spec": {"securityContext": {"runAsNonRoot": true},
                 "containers": [{"name": "a", "image": "i", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]}
    });
    assert_eq!(patch_for(&object, &DefaultsConfig::default()), json!([]));
    let mut agreeing = object.clone();
    agreeing["metadata"]["annotations"]["seccomp.security.alpha.kubernetes.io/pod"] =
        json!("docker/default");
    assert_eq!(
        patch_for(&agreeing, &DefaultsConfig::default()),
        json!([add_op(
            "/spec/securityContext/seccompProfile",
            json!({"type": "RuntimeDefault"})
        )])
    );
}

#[test]
fn optional_defaults_and_switches() {
    let object = pod(json!({
        "securityContext": {},
        "containers": [{"name": "a", "image": "i", "securityContext": {}}],
    }));
    let id = NonRootId::new(65534).unwrap();
    let all_on = DefaultsConfig {
        read_only_root_filesystem: true,
        run_as_user: Some(id),
        run_as_group: Some(id),
        ..DefaultsConfig::default()
    };
    assert_eq!(
        patch_for(&object, &all_on),
        json!([
            add_op("/spec/securityContext/runAsUser", json!(65534)),
            add_op("/spec/securityContext/runAsGroup", json!(65534)),
            add_op("/spec/securityContext/runAsNonRoot", json!(true)),
            add_op(
                "/spec/securityContext/seccompProfile",
                json!({"type": "RuntimeDefault"})
            ),
            add_op(
                "/spec/containers/0/securityContext/allowPrivilegeEscalation",
                json!(false)
            ),
            add_op(
                "/spec/containers/0/securityContext/readOnlyRootFilesystem",
                json!(true)
            ),
            add_op(
                "/spec/containers/0/securityContext/capabilities",
                json!({"drop": ["ALL"]})
            ),
        ])
    );
    assert_eq!(patch_for(&object, &DefaultsConfig::none()), json!([]));
    type Switch = (fn(&mut DefaultsConfig), &'static str);
    let switches: [Switch; 4] = [
        (
            |c| c.disallow_privilege_escalation = false,
            "allowPrivilegeEscalation",
        ),
        (|c| c.drop_all_capabilities = false, "capabilities"),
        (|c| c.seccomp_runtime_default = false, "seccompProfile"),
        (|c| c.run_as_non_root = false, "runAsNonRoot"),
    ];
    for (switch_off, field) in switches {
        let mut config = DefaultsConfig::default();
        switch_off(&mut config);
        let patch = patch_for(&object, &config);
        let paths: Vec<&str> = patch
            .as_array()
            .unwrap()
            .iter()
            .map(|op| op["path"].as_str().unwrap())
            .collect();
        assert_eq!(paths.len(), 3, "{field}: {paths:?}");
        assert!(
            paths.iter().all(|p| !p.ends_with(field)),
            "{field} still added: {paths:?}"
        );
    }
}

#[test]
fn ephemeral_containers_are_defaulted_on_their_own() {
    let object = pod(json!({
        "containers": [{"name": "a", "image": "i"}],
        "ephemeralContainers": [{"name": "debug", "image": "busybox", "securityContext": {"privileged": false}}],
    }));
    let ops = ephemeral_container_defaults(&workload(&object), &DefaultsConfig::default());
    assert_eq!(
        serde_json::to_value(&ops).unwrap(),
        json!([
            add_op(
                "/spec/ephemeralContainers/0/securityContext/allowPrivilegeEscalation",
                json!(false)
            ),
            add_op(
                "/spec/ephemeralContainers/0/securityContext/capabilities",
                json!({"drop": ["ALL"]})
            ),
        ])
    );
    // The full pass covers them too.
    let full = patch_for(&object, &DefaultsConfig::default());
    assert_eq!(full.as_array().unwrap().len(), 4, "{full}");
}

#[test]
fn config_reads_camel_case_with_defaults_and_refuses_mistakes() {
    let config: DefaultsConfig =
        yaml_serde::from_str("readOnlyRootFilesystem: true\nrunAsUser: 65534\n").unwrap();
    assert!(config.read_only_root_filesystem && config.drop_all_capabilities);
    assert_eq!(config.run_as_user.map(NonRootId::get), Some(65534));
    let unknown = yaml_serde::from_str::<DefaultsConfig>("dropAllCaps: true\n").unwrap_err();
    assert!(unknown.to_string().contains("dropAllCaps"), "{unknown}");
    let root = yaml_serde::from_str::<DefaultsConfig>("runAsUser: 0\n").unwrap_err();
    assert!(
        root.to_string().contains("0 is not a non-root id"),
        "{root}"
    );
    assert!(NonRootId::new(2_147_483_648).is_err() && NonRootId::new(-1).is_err());
    let round: DefaultsConfig =
        serde_json::from_value(serde_json::to_value(&config).unwrap()).unwrap();
    assert_eq!(round, config);
}
