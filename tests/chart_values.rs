//! The chart's values, rendered by real Helm (see `support_chart`): what a
//! user can set and what the chart refuses. The chart passes Tollgate's own
//! policy; common labels and annotations reach the objects that tools like
//! ArgoCD track; names that YAML would read as numbers or booleans stay
//! strings; PodDisruptionBudget and rollout values that would block drains,
//! kill in-flight admissions or clash with the chart's own settings are
//! render errors; the pod options Kyverno's and Gatekeeper's charts offer
//! are there; `helm test` probes the webhook. Without `helm_python`
//! installed the tests skip with a message.

// Test helpers may panic: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support_chart;
mod support_webhook;

use std::process::Command;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::de::DeserializeOwned;
use serde_json::{Value as Json, json};
use support_chart::{Output, Release, render, render_default, render_set};

fn typed<T: DeserializeOwned>(doc: &Json) -> T {
    serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{e}: {doc:#}"))
}

fn deployment(out: &Output) -> Deployment {
    typed(&out.one("Deployment"))
}

fn refused(release: &Release, values: Json) -> String {
    match render(release, std::slice::from_ref(&values)) {
        Ok(_) => panic!("{values} rendered"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_default_render_passes_tollgate_check() {
    require_helm!();
    let out = render_default(&[]);
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: tollgate\n  labels:\n    \
         pod-security.kubernetes.io/enforce: restricted\n",
    );
    for doc in out.documents() {
        text.push_str("---\n");
        text.push_str(&yaml_serde::to_string(&doc).unwrap());
    }
    let file = dir.path().join("tollgate.yaml");
    std::fs::write(&file, &text).unwrap();
    let run = Command::new(support_webhook::binary())
        .arg("check")
        .arg("--filename")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let annotations = deployment(&out).metadata.annotations.unwrap();
    assert_eq!(annotations["deployscope.dev/owner"], "platform-security");
    assert_eq!(annotations["deployscope.dev/tier"], "standard");
}

#[test]
fn common_labels_and_annotations_reach_the_tracked_objects() {
    require_helm!();
    let out = render_default(&[json!({
        "commonLabels": {"team": "platform", "argocd.argoproj.io/instance": "on"},
        "commonAnnotations": {"admissions.enforcer/disabled": "true", "deployscope.dev/tier": "critical"},
        "certManager": {"enabled": true},
        "service": {"annotations": {"a": "b"}},
    })]);
    let metas = [
        deployment(&out).metadata,
        typed::<Service>(&out.one("Service")).metadata,
        typed::<MutatingWebhookConfiguration>(&out.one("MutatingWebhookConfiguration")).metadata,
        typed::<ValidatingWebhookConfiguration>(&out.one("ValidatingWebhookConfiguration"))
            .metadata,
    ];
    for meta in metas {
        let name = meta.name.clone().unwrap();
        let labels = meta.labels.unwrap();
        assert_eq!(labels["team"], "platform", "{name}");
        assert_eq!(labels["argocd.argoproj.io/instance"], "on", "{name}");
        let annotations = meta.annotations.unwrap();
        assert_eq!(
            annotations["admissions.enforcer/disabled"], "true",
            "{name}"
        );
    }
    // commonAnnotations may raise the Deployment's tier; the chart's own
    // annotations stay.
    let d = deployment(&out).metadata.annotations.unwrap();
    assert_eq!(d["deployscope.dev/tier"], "critical");
    assert_eq!(d["deployscope.dev/owner"], "platform-security");
    let svc = typed::<Service>(&out.one("Service"))
        .metadata
        .annotations
        .unwrap();
    assert_eq!(svc["a"], "b");
    let mwc = typed::<MutatingWebhookConfiguration>(&out.one("MutatingWebhookConfiguration"))
        .metadata
        .annotations
        .unwrap();
    assert!(mwc.contains_key("cert-manager.io/inject-ca-from"));
    // The pods are not selected by them: the selector stays the chart's.
    let selector = deployment(&out).spec.selector.match_labels.unwrap();
    assert!(!selector.contains_key("team"));
}

#[test]
fn names_yaml_would_read_as_numbers_or_booleans_stay_strings() {
    require_helm!();
    for (name, namespace) in [("1234", "on"), ("1234", "2024"), ("tollgate", "yes")] {
        let release = Release::new(name, namespace);
        let out = render(
            &release,
            &[
                json!({"certManager": {"enabled": true}, "cluster": {"enabled": false},
                     "serviceMonitor": {"enabled": true}}),
            ],
        )
        .unwrap();
        for doc in out.documents() {
            let kind = doc["kind"].as_str().unwrap().to_owned();
            if doc["metadata"].get("namespace").is_some() {
                assert_eq!(doc["metadata"]["namespace"], namespace, "{kind}");
            }
            assert_eq!(
                doc["metadata"]["labels"]["app.kubernetes.io/instance"], name,
                "{kind}"
            );
        }
        for kind in [
            "MutatingWebhookConfiguration",
            "ValidatingWebhookConfiguration",
        ] {
            let doc = out.one(kind);
            let hook = &doc["webhooks"][0];
            assert_eq!(hook["clientConfig"]["service"]["namespace"], namespace);
            let values = &hook["namespaceSelector"]["matchExpressions"][0]["values"];
            assert!(
                values.as_array().unwrap().iter().all(Json::is_string),
                "{values}"
            );
            assert_eq!(values[0], namespace);
        }
        let monitor = out.one("ServiceMonitor");
        assert_eq!(
            monitor["spec"]["namespaceSelector"]["matchNames"][0],
            namespace
        );
        let cm = out.one("ConfigMap");
        let config: Json =
            yaml_serde::from_str(cm["data"]["config.yaml"].as_str().unwrap()).unwrap();
        assert_eq!(config["injection"]["excludedNamespaces"][0], namespace);
    }
}

#[test]
fn disruption_budget_values_leave_room_for_one_drain() {
    require_helm!();
    let release = Release::default();
    // --set maxUnavailable alone works (minAvailable has no default to clash).
    let out = render_set(&release, &["podDisruptionBudget.maxUnavailable=1"]).unwrap();
    let pdb: PodDisruptionBudget = typed(&out.one("PodDisruptionBudget"));
    let spec = pdb.spec.unwrap();
    assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)));
    assert_eq!(spec.min_available, None);
    // Neither: minAvailable 1.
    let spec = typed::<PodDisruptionBudget>(&render_default(&[]).one("PodDisruptionBudget"))
        .spec
        .unwrap();
    assert_eq!(spec.min_available, Some(IntOrString::Int(1)));
    assert_eq!(spec.max_unavailable, None);
    // A percentage.
    let out = render_set(&release, &["podDisruptionBudget.maxUnavailable=50%"]).unwrap();
    let spec = typed::<PodDisruptionBudget>(&out.one("PodDisruptionBudget"))
        .spec
        .unwrap();
    assert_eq!(
        spec.max_unavailable,
        Some(IntOrString::String("50%".into()))
    );
    for (values, want) in [
        (
            json!({"podDisruptionBudget": {"maxUnavailable": 0}}),
            "maxUnavailable: 0 blocks every node drain",
        ),
        (
            json!({"podDisruptionBudget": {"maxUnavailable": "0%"}}),
            "maxUnavailable: 0 blocks every node drain",
        ),
        (
            json!({"podDisruptionBudget": {"minAvailable": 2}}),
            "minAvailable (2) must be below replicaCount (2)",
        ),
        (
            json!({"replicaCount": 3, "podDisruptionBudget": {"minAvailable": 5}}),
            "minAvailable (5) must be below replicaCount (3)",
        ),
        (
            json!({"podDisruptionBudget": {"minAvailable": "100%"}}),
            "minAvailable: 100% blocks every node drain",
        ),
        (
            json!({"podDisruptionBudget": {"minAvailable": 1, "maxUnavailable": 1}}),
            "set minAvailable or maxUnavailable, not both",
        ),
    ] {
        let err = refused(&release, values.clone());
        assert!(err.contains(want), "{values}: {err}");
    }
}

#[test]
fn rollout_values_that_break_admission_are_render_errors() {
    require_helm!();
    let release = Release::default();
    for (values, want) in [
        // null deletes the chart's default: `replicas:` would be empty.
        (json!({"replicaCount": null}), "replicaCount"),
        (
            json!({"webhook": {"shutdownGrace": "40s"}}),
            "terminationGracePeriodSeconds (30) must be at least",
        ),
        (
            json!({"webhook": {"shutdownGrace": "1m"}, "terminationGracePeriodSeconds": 59}),
            "terminationGracePeriodSeconds (59) must be at least",
        ),
        (
            json!({"preStopSleepSeconds": 15}),
            "terminationGracePeriodSeconds (30) must be at least preStopSleepSeconds plus webhook.shutdownGrace (35 s)",
        ),
        (
            json!({"webhook": {"matchConditions": [{"name": "spec-changing-subresources-only", "expression": "true"}]}}),
            "spec-changing-subresources-only is the chart's own",
        ),
        (
            json!({"webhook": {"matchConditions": [
                {"name": "a", "expression": "true"}, {"name": "a", "expression": "false"}]}}),
            "the name a is used twice",
        ),
        (
            json!({"webhook": {"metricsPort": 8443}}),
            "webhook.port and webhook.metricsPort must differ",
        ),
    ] {
        let err = refused(&release, values.clone());
        assert!(err.contains(want), "{values}: {err}");
    }
    // At the limit: accepted.
    render(
        &release,
        &[json!({"webhook": {"shutdownGrace": "25s"}, "preStopSleepSeconds": 5})],
    )
    .unwrap();
    render(
        &release,
        &[json!({"webhook": {"shutdownGrace": "30000ms"}})],
    )
    .unwrap();
}

#[test]
fn an_empty_exclusion_list_still_spares_kube_system() {
    require_helm!();
    let out = render(
        &Release::new("guard", "security"),
        &[json!({"webhook": {"excludedNamespaces": []}})],
    )
    .unwrap();
    for kind in [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ] {
        let doc = out.one(kind);
        let values = &doc["webhooks"][0]["namespaceSelector"]["matchExpressions"][0]["values"];
        assert_eq!(values, &json!(["security", "kube-system"]), "{kind}");
    }
    // Listed again or as the release namespace: once.
    let out = render(
        &Release::new("guard", "kube-system"),
        &[json!({"webhook": {"excludedNamespaces": ["kube-system", "kube-public"]}})],
    )
    .unwrap();
    let doc = out.one("ValidatingWebhookConfiguration");
    let values = &doc["webhooks"][0]["namespaceSelector"]["matchExpressions"][0]["values"];
    assert_eq!(values, &json!(["kube-system", "kube-public"]));
}

#[test]
fn the_pod_options_of_other_admission_charts_are_there() {
    require_helm!();
    let d = deployment(&render_default(&[]));
    let pod = d.spec.template.spec.unwrap();
    assert_eq!(
        pod.priority_class_name.as_deref(),
        Some("system-cluster-critical")
    );
    assert_eq!(pod.host_network, None);
    assert!(pod.containers[0].lifecycle.is_none());

    let d = deployment(&render_default(&[json!({
        "priorityClassName": "",
        "podSecurityContext": {"runAsUser": null, "runAsGroup": null, "fsGroup": null},
        "securityContext": {"runAsUser": null, "runAsGroup": null},
        "hostNetwork": true,
        "extraArgs": ["--log-level", "debug"],
        "extraEnv": [{"name": "RUST_BACKTRACE", "value": "1"}],
        "preStopSleepSeconds": 5,
    })]));
    let pod = d.spec.template.spec.unwrap();
    assert_eq!(pod.priority_class_name, None);
    let psc = pod.security_context.unwrap();
    assert_eq!((psc.run_as_user, psc.fs_group), (None, None));
    assert_eq!(psc.run_as_non_root, Some(true));
    let c = &pod.containers[0];
    let sc = c.security_context.clone().unwrap();
    assert_eq!(sc.run_as_user, None);
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(pod.host_network, Some(true));
    assert_eq!(pod.dns_policy.as_deref(), Some("ClusterFirstWithHostNet"));
    let args = c.args.clone().unwrap();
    assert_eq!(&args[args.len() - 2..], ["--log-level", "debug"]);
    assert!(
        c.env
            .clone()
            .unwrap()
            .iter()
            .any(|e| e.name == "RUST_BACKTRACE")
    );
    let sleep = c
        .lifecycle
        .clone()
        .unwrap()
        .pre_stop
        .unwrap()
        .sleep
        .unwrap();
    assert_eq!(sleep.seconds, 5);
    let d = deployment(&render_default(&[
        json!({"dnsPolicy": "None", "hostNetwork": true}),
    ]));
    assert_eq!(
        d.spec.template.spec.unwrap().dns_policy.as_deref(),
        Some("None")
    );
}

#[test]
fn helm_test_probes_the_webhook_through_its_service() {
    require_helm!();
    let out = render(&Release::new("guard", "security"), &[]).unwrap();
    let pods = out.of_kind("Pod");
    assert_eq!(pods.len(), 1);
    let pod: Pod = typed(&pods[0]);
    let annotations = pod.metadata.annotations.unwrap();
    assert_eq!(annotations["helm.sh/hook"], "test");
    let svc: Service = typed(&out.one("Service"));
    let metrics = svc
        .spec
        .unwrap()
        .ports
        .unwrap()
        .into_iter()
        .find(|p| p.name.as_deref() == Some("metrics"))
        .unwrap();
    let args = pod.spec.unwrap().containers[0].args.clone().unwrap();
    assert_eq!(args[0], "wait-ready");
    assert!(args.contains(&format!(
        "http://{}.security.svc:{}/readyz",
        svc.metadata.name.unwrap(),
        metrics.port
    )));
    // The Deployment does not select it.
    let selector = deployment(&out).spec.selector.match_labels.unwrap();
    let labels = pod.metadata.labels.unwrap();
    assert!(!selector.iter().all(|(k, v)| labels.get(k) == Some(v)));
}

#[test]
fn helm_lint_strict_has_nothing_to_say() {
    require_helm!();
    let messages = support_chart::lint_strict(&[]).unwrap();
    assert!(messages.is_empty(), "{messages:?}");
    let chart: Json = yaml_serde::from_str(
        &std::fs::read_to_string(support_chart::chart_dir().join("Chart.yaml")).unwrap(),
    )
    .unwrap();
    assert!(chart["home"].as_str().unwrap().starts_with("https://"));
    assert!(!chart["sources"].as_array().unwrap().is_empty());
}

#[test]
fn typos_in_the_config_sections_are_refused_with_the_key_named() {
    require_helm!();
    let release = Release::default();
    for (values, want) in [
        (
            json!({"policy": {"podSecurity": {"enforce": {"level": "strict"}}}}),
            "/policy/podSecurity/enforce/level",
        ),
        (
            json!({"policy": {"podSecurity": {"enforse": {}}}}),
            "enforse",
        ),
        (json!({"policy": {"polices": {}}}), "polices"),
        (
            json!({"injection": {"config": {"modee": "native"}}}),
            "modee",
        ),
        (
            json!({"injection": {"config": {"mode": "sidecar"}}}),
            "/injection/config/mode",
        ),
        (json!({"audit": {"config": {"exporterz": []}}}), "exporterz"),
        (json!({"cluster": {"config": {"polices": {}}}}), "polices"),
    ] {
        let err = refused(&release, values.clone());
        assert!(
            err.contains("schema") && err.contains(want),
            "{values}: {err}"
        );
    }
}

/// The keys of a section as the config types write them.
fn keys(value: &Json) -> std::collections::BTreeSet<String> {
    value.as_object().unwrap().keys().cloned().collect()
}

fn schema_keys(schema: &Json, path: &[&str]) -> std::collections::BTreeSet<String> {
    let mut node = schema;
    for p in path {
        node = &node["properties"][*p];
    }
    assert_eq!(node["additionalProperties"], false, "{path:?}");
    keys(&node["properties"])
}

#[test]
fn the_config_section_schemas_follow_the_config_types() {
    // Hand-written in values.schema.json: every key the config types know,
    // no other (a key missing here would refuse a valid config).
    let schema: Json = serde_json::from_str(
        &std::fs::read_to_string(support_chart::chart_dir().join("values.schema.json")).unwrap(),
    )
    .unwrap();
    let policy = serde_json::to_value(tollgate_policies::config::PolicyConfig::default()).unwrap();
    assert_eq!(schema_keys(&schema, &["policy"]), keys(&policy));
    assert_eq!(
        schema_keys(&schema, &["policy", "podSecurity"]),
        keys(&policy["podSecurity"])
    );
    for mode in ["enforce", "warn", "audit"] {
        assert_eq!(
            schema_keys(&schema, &["policy", "podSecurity", mode]),
            keys(&policy["podSecurity"][mode])
        );
    }
    assert_eq!(
        schema_keys(&schema, &["policy", "podSecurity", "exemptions"]),
        keys(&policy["podSecurity"]["exemptions"])
    );
    let injection = serde_json::to_value(tollgate_webhook::InjectionConfig::default()).unwrap();
    assert_eq!(
        schema_keys(&schema, &["injection", "config"]),
        keys(&injection)
    );
    assert_eq!(
        schema_keys(&schema, &["injection", "config", "policyAuthors"]),
        keys(&injection["policyAuthors"])
    );
    let audit = serde_json::to_value(tollgate_audit::AuditConfig::default()).unwrap();
    assert_eq!(schema_keys(&schema, &["audit", "config"]), keys(&audit));
    let cluster = serde_json::to_value(tollgate_cluster::ClusterSettings::default()).unwrap();
    assert_eq!(schema_keys(&schema, &["cluster", "config"]), keys(&cluster));
}

#[test]
fn an_upgrade_says_how_to_upgrade_the_crd() {
    require_helm!();
    let install = render(&Release::default(), &[]).unwrap();
    let upgrade = render(&Release::default().upgraded(), &[]).unwrap();
    assert!(!install.notes.contains("tollgate crd"), "{}", install.notes);
    assert!(
        upgrade.notes.contains("tollgate crd | kubectl apply -f -"),
        "{}",
        upgrade.notes
    );
    assert!(install.notes.contains("helm test tollgate -n tollgate"));
    // The notes name every namespace the webhooks skip, kube-system
    // included even when the list is empty.
    let out = render(
        &Release::new("guard", "security"),
        &[json!({"webhook": {"excludedNamespaces": []}})],
    )
    .unwrap();
    assert!(
        out.notes
            .contains("Never sent to the webhook: namespaces security, kube-system."),
        "{}",
        out.notes
    );
}

#[test]
fn common_labels_cannot_replace_the_charts_own() {
    require_helm!();
    for key in [
        "app.kubernetes.io/name",
        "app.kubernetes.io/instance",
        "app.kubernetes.io/component",
        "app.kubernetes.io/managed-by",
        "helm.sh/chart",
    ] {
        let values = json!({"commonLabels": {key: "x"}});
        let err = refused(&Release::default(), values.clone());
        assert!(
            err.contains("commonLabels") && err.contains(key),
            "{values}: {err}"
        );
    }
}

#[test]
fn pod_labels_annotations_and_env_cannot_replace_the_charts_own() {
    require_helm!();
    for (values, want) in [
        (
            json!({"podLabels": {"app.kubernetes.io/instance": "other"}}),
            "podLabels: app.kubernetes.io/instance",
        ),
        (
            json!({"podLabels": {"app.kubernetes.io/component": "x"}}),
            "podLabels: app.kubernetes.io/component",
        ),
        (
            json!({"podAnnotations": {"checksum/config": "0"}}),
            "podAnnotations: checksum/config",
        ),
        (
            json!({"extraEnv": [{"name": "POD_NAME", "value": "elsewhere"}]}),
            "extraEnv: POD_NAME",
        ),
        (
            json!({"extraEnv": [{"name": "POD_NAMESPACE", "value": "x"}]}),
            "extraEnv: POD_NAMESPACE",
        ),
    ] {
        let err = refused(&Release::default(), values.clone());
        assert!(err.contains(want), "{values}: {err}");
    }
    // Other keys are fine.
    render(
        &Release::default(),
        &[
            json!({"podLabels": {"team": "a"}, "podAnnotations": {"x": "y"},
                 "extraEnv": [{"name": "RUST_LOG", "value": "info"}]}),
        ],
    )
    .unwrap();
}
