//! The Helm chart `charts/tollgate`, rendered by real Helm (see
//! `support_chart`: Helm's Go SDK through the `helm-python-sdk` package),
//! for the default values and for each option, installed and upgraded,
//! under several release names and namespaces. Every rendered object
//! parses as its Kubernetes type with no field Kubernetes would drop; the
//! webhook pods pass Pod Security `restricted` as Tollgate itself judges
//! it; the RBAC is exactly what `tollgate webhook --in-cluster` calls; the
//! webhook configurations reach the Service on the paths the server serves
//! and never see the system namespaces or the release's own; the rendered
//! config file is accepted by `tollgate config check`; bad values fail with
//! a message that says what to set; `helm lint --strict` is clean. Without
//! `helm_python` installed the tests skip with a message.

// Test helpers may panic: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support_chart;
mod support_webhook;

use std::collections::BTreeSet;
use std::process::Command;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, RuleWithOperations, ValidatingWebhookConfiguration,
    WebhookClientConfig,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Pod, PodSpec, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::de::DeserializeOwned;
use serde_json::{Value as Json, json};
use support_chart::{Output, Release, Request, render, render_all, render_default};
use tollgate_policies::{Level, Version};
use tollgate_webhook::Endpoint;

/// The default values and each case under `charts/tollgate/ci/` (one
/// option each, the chart-testing convention), each installed and
/// upgraded, for the release `tollgate` in namespace `tollgate`, `guard` in
/// `security`, and names YAML would read as numbers or booleans.
fn scenarios() -> Vec<(String, Release, Json)> {
    let mut cases = vec![("default".to_owned(), json!({}))];
    let mut files: Vec<_> = std::fs::read_dir(support_chart::chart_dir().join("ci"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let name = name
            .strip_suffix("-values.yaml")
            .unwrap_or_else(|| panic!("{name}: ci files are named CASE-values.yaml"));
        let values: Json = yaml_serde::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        cases.push((name.to_owned(), values));
    }
    assert!(cases.len() >= 15, "{} cases", cases.len());
    let releases = [
        Release::default(),
        Release::default().upgraded(),
        Release::new("guard", "security"),
        Release::new("guard", "security").upgraded(),
        // Names YAML would read as a number or a boolean.
        Release::new("1234", "on"),
        Release::new("guard", "2024").upgraded(),
    ];
    let mut out = Vec::new();
    for (name, values) in cases {
        for release in &releases {
            out.push((
                format!(
                    "{name} ({} {} in {})",
                    if release.upgrade {
                        "upgrade"
                    } else {
                        "install"
                    },
                    release.name,
                    release.namespace
                ),
                release.clone(),
                values.clone(),
            ));
        }
    }
    out
}

/// The default values and each `ci/` case, as `-f` overrides.
fn value_cases() -> Vec<(String, Json)> {
    let mut names: BTreeSet<String> = BTreeSet::new();
    let mut cases = Vec::new();
    for (name, _, values) in scenarios() {
        let case = name.split(' ').next().unwrap().to_owned();
        if names.insert(case.clone()) {
            cases.push((case, values));
        }
    }
    cases
}

/// Every scenario, rendered once for all the tests.
fn rendered() -> &'static [(String, Release, Output)] {
    static RENDERED: std::sync::OnceLock<Vec<(String, Release, Output)>> =
        std::sync::OnceLock::new();
    RENDERED.get_or_init(|| {
        let scenarios = scenarios();
        let requests: Vec<Request> = scenarios
            .iter()
            .map(|(_, release, values)| Request {
                release: release.clone(),
                values: vec![values.clone()],
                set: Vec::new(),
            })
            .collect();
        scenarios
            .into_iter()
            .zip(render_all(&requests))
            .map(|((name, release, _), out)| {
                let out = out.unwrap_or_else(|e| panic!("scenario {name:?} failed to render: {e}"));
                (name, release, out)
            })
            .collect()
    })
}

/// Parses a document as `T` and checks that nothing in it is unknown to the
/// type (Kubernetes would drop such a field silently).
fn typed<T: DeserializeOwned + serde::Serialize>(doc: &Json) -> T {
    let value: T = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("{} does not parse: {e}\n{doc:#}", doc["kind"]));
    let back = serde_json::to_value(&value).unwrap();
    no_unknown_fields(doc, &back, &format!("{}", doc["kind"]));
    value
}

fn no_unknown_fields(original: &Json, typed: &Json, path: &str) {
    match (original, typed) {
        (Json::Object(o), Json::Object(t)) => {
            for (k, v) in o {
                if v.is_null() {
                    continue;
                }
                let Some(tv) = t.get(k) else {
                    panic!("{path}.{k}: unknown field (dropped by the typed object)");
                };
                no_unknown_fields(v, tv, &format!("{path}.{k}"));
            }
        }
        (Json::Array(o), Json::Array(t)) => {
            assert_eq!(o.len(), t.len(), "{path}");
            for (i, (ov, tv)) in o.iter().zip(t).enumerate() {
                no_unknown_fields(ov, tv, &format!("{path}[{i}]"));
            }
        }
        (Json::Object(o), _) if !o.is_empty() => panic!("{path}: object became {typed}"),
        _ => {}
    }
}

fn meta(doc: &Json) -> ObjectMeta {
    typed::<ObjectMeta>(&doc["metadata"])
}

fn matches(selector: &LabelSelector, labels: &std::collections::BTreeMap<String, String>) -> bool {
    assert!(selector.match_expressions.is_none());
    let want = selector.match_labels.as_ref().unwrap();
    !want.is_empty() && want.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn deployment(out: &Output) -> Deployment {
    typed(&out.one("Deployment"))
}

fn pod_spec(out: &Output) -> PodSpec {
    deployment(out).spec.template.spec.unwrap()
}

// ---- Every object ----

#[test]
fn every_document_parses_as_its_kubernetes_type() {
    require_helm!();
    for (name, release, out) in rendered() {
        let docs = out.documents();
        assert!(docs.len() >= 8, "{name}: {} documents", docs.len());
        for doc in &docs {
            let kind = doc["kind"].as_str().unwrap();
            match kind {
                "Deployment" => drop(typed::<Deployment>(doc)),
                "Service" => drop(typed::<Service>(doc)),
                "ServiceAccount" => drop(typed::<ServiceAccount>(doc)),
                "ConfigMap" => drop(typed::<ConfigMap>(doc)),
                "ClusterRole" => drop(typed::<ClusterRole>(doc)),
                "ClusterRoleBinding" => drop(typed::<ClusterRoleBinding>(doc)),
                "Role" => drop(typed::<Role>(doc)),
                "RoleBinding" => drop(typed::<RoleBinding>(doc)),
                "PodDisruptionBudget" => drop(typed::<PodDisruptionBudget>(doc)),
                "MutatingWebhookConfiguration" => drop(typed::<MutatingWebhookConfiguration>(doc)),
                "ValidatingWebhookConfiguration" => {
                    drop(typed::<ValidatingWebhookConfiguration>(doc))
                }
                "NetworkPolicy" => drop(typed::<NetworkPolicy>(doc)),
                "PersistentVolumeClaim" => drop(typed::<PersistentVolumeClaim>(doc)),
                // The `helm test` hook only.
                "Pod" => {
                    drop(typed::<Pod>(doc));
                    assert_eq!(doc["metadata"]["annotations"]["helm.sh/hook"], "test");
                }
                // Custom resources of cert-manager and the Prometheus
                // Operator: their group and version, typed metadata, a spec.
                "Certificate" | "Issuer" => {
                    assert_eq!(doc["apiVersion"], "cert-manager.io/v1", "{name}");
                    assert!(doc["spec"].is_object(), "{name}: {kind} without spec");
                }
                "ServiceMonitor" => {
                    assert_eq!(doc["apiVersion"], "monitoring.coreos.com/v1", "{name}");
                }
                other => panic!("{name}: unexpected kind {other}"),
            }
            let m = meta(doc);
            let object_name = m.name.clone().unwrap();
            assert!(
                object_name.len() <= 63 && !object_name.ends_with('-'),
                "{name}: {object_name}"
            );
            let cluster_scoped = matches!(
                kind,
                "ClusterRole"
                    | "ClusterRoleBinding"
                    | "MutatingWebhookConfiguration"
                    | "ValidatingWebhookConfiguration"
            );
            assert_eq!(
                m.namespace.is_none(),
                cluster_scoped,
                "{name}: {kind} {object_name} namespace"
            );
            if !cluster_scoped {
                assert_eq!(m.namespace.as_deref(), Some(release.namespace.as_str()));
            }
            let labels = m.labels.unwrap();
            assert_eq!(labels["app.kubernetes.io/instance"], release.name, "{name}");
            assert_eq!(labels["app.kubernetes.io/managed-by"], "Helm", "{name}");
        }
        // No two objects of a kind share a name.
        let keys: Vec<String> = docs
            .iter()
            .map(|d| format!("{}/{}", d["kind"], d["metadata"]["name"]))
            .collect();
        let unique: BTreeSet<&String> = keys.iter().collect();
        assert_eq!(unique.len(), keys.len(), "{name}: {keys:?}");
    }
}

// ---- The webhook's pods ----

#[test]
fn the_webhook_pods_pass_restricted_and_are_highly_available() {
    require_helm!();
    for (name, _, out) in rendered() {
        let d = deployment(out);
        let spec = d.spec.clone();
        let template = spec.template.clone();
        let pod = template.spec.clone().unwrap();
        let violations = tollgate_policies::pss::check_pod(
            Level::Restricted,
            Version::Latest,
            template.metadata.as_ref().unwrap(),
            &pod,
        );
        assert!(violations.is_empty(), "{name}: {violations:?}");

        let psc = pod.security_context.as_ref().unwrap();
        assert_eq!(psc.run_as_non_root, Some(true));
        // 65534 unless unset for platforms that assign the UID (OpenShift).
        let uid = |section: &str| out.values[section]["runAsUser"].as_i64();
        assert!(matches!(uid("podSecurityContext"), Some(65534) | None));
        assert_eq!(psc.run_as_user, uid("podSecurityContext"), "{name}");
        assert_eq!(
            psc.seccomp_profile.as_ref().unwrap().type_,
            "RuntimeDefault"
        );
        assert_eq!(pod.containers.len(), 1);
        let c = &pod.containers[0];
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.read_only_root_filesystem, Some(true), "{name}");
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{name}");
        assert!(matches!(uid("securityContext"), Some(65534) | None));
        assert_eq!(sc.run_as_user, uid("securityContext"), "{name}");
        assert_eq!(sc.run_as_non_root, Some(true), "{name}");
        assert_eq!(
            sc.capabilities.as_ref().unwrap().drop.as_deref(),
            Some(&["ALL".to_owned()][..])
        );
        assert!(sc.capabilities.as_ref().unwrap().add.is_none());
        let requests = c.resources.as_ref().unwrap().requests.as_ref().unwrap();
        assert!(requests.contains_key("cpu") && requests.contains_key("memory"));
        assert!(
            c.resources
                .as_ref()
                .unwrap()
                .limits
                .as_ref()
                .unwrap()
                .contains_key("memory")
        );

        // Probes on the plain-HTTP port, at the paths it serves.
        let metrics_port = c
            .ports
            .as_ref()
            .unwrap()
            .iter()
            .find(|p| p.name.as_deref() == Some("metrics"))
            .unwrap()
            .container_port;
        for (probe, path) in [
            (c.readiness_probe.as_ref(), "/readyz"),
            (c.liveness_probe.as_ref(), "/healthz"),
        ] {
            let get = probe.unwrap().http_get.as_ref().unwrap();
            assert_eq!(get.path.as_deref(), Some(path));
            assert_eq!(
                get.port,
                k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("metrics".into())
            );
            assert!(get.scheme.is_none() || get.scheme.as_deref() == Some("HTTP"));
        }
        assert_eq!(metrics_port, 9090);

        // Several replicas, spread, never all disrupted; rolling updates
        // never drop below the current count.
        let replicas = spec.replicas.unwrap();
        assert_eq!(
            i64::from(replicas),
            out.values["replicaCount"].as_i64().unwrap()
        );
        let anti = pod.affinity.as_ref().unwrap().pod_anti_affinity.as_ref();
        assert!(anti.is_some(), "{name}: no pod anti-affinity");
        assert_eq!(
            spec.strategy
                .unwrap()
                .rolling_update
                .unwrap()
                .max_unavailable
                .unwrap(),
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(0)
        );
        let pod_labels = template.metadata.unwrap().labels.unwrap();
        assert!(matches(&spec.selector, &pod_labels));
        if replicas == 1 {
            // A budget would block every drain.
            assert!(out.of_kind("PodDisruptionBudget").is_empty(), "{name}");
        } else {
            let pdb: PodDisruptionBudget = typed(&out.one("PodDisruptionBudget"));
            let pdb_spec = pdb.spec.unwrap();
            assert!(matches(pdb_spec.selector.as_ref().unwrap(), &pod_labels));
            assert!(pdb_spec.min_available.is_some() != pdb_spec.max_unavailable.is_some());
        }
        // The grace period outlasts the webhook's own drain.
        assert!(pod.termination_grace_period_seconds.unwrap() > 20);
    }
    let hard = render_default(&[json!({"podAntiAffinity": "hard"})]);
    let anti = pod_spec(&hard).affinity.unwrap().pod_anti_affinity.unwrap();
    assert!(
        anti.required_during_scheduling_ignored_during_execution
            .is_some()
    );
}

#[test]
fn the_container_runs_the_webhook_with_the_mounted_config() {
    require_helm!();
    let out = render_default(&[]);
    let pod = pod_spec(&out);
    let c = &pod.containers[0];
    assert_eq!(
        c.image.as_deref(),
        Some("ghcr.io/tollgate-dev/tollgate:0.1.0")
    );
    let args = c.args.clone().unwrap();
    assert_eq!(
        args,
        [
            "webhook",
            "--in-cluster",
            "--config",
            "/etc/tollgate/config.yaml",
            "--audit-dir",
            "/var/lib/tollgate/audit/$(POD_NAME)",
            "--log-format",
            "json"
        ]
    );
    // /etc/tollgate is the ConfigMap holding config.yaml.
    let mount = c
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.mount_path == "/etc/tollgate")
        .unwrap();
    assert_eq!(mount.read_only, Some(true));
    let volume = pod
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.name == mount.name)
        .unwrap();
    let cm_name = volume.config_map.as_ref().unwrap().name.clone();
    let cm: ConfigMap = typed(&out.one("ConfigMap"));
    assert_eq!(cm.metadata.name.as_deref(), Some(cm_name.as_str()));
    assert!(cm.data.unwrap().contains_key("config.yaml"));
    // The token is mounted only because --in-cluster talks to the API.
    assert_eq!(pod.automount_service_account_token, Some(true));
    let sa: ServiceAccount = typed(&out.one("ServiceAccount"));
    assert_eq!(sa.metadata.name, pod.service_account_name);
    assert_eq!(sa.automount_service_account_token, Some(false));

    // Without cluster access: no flag, no token, no RBAC.
    let out =
        render_default(&[json!({"cluster": {"enabled": false}, "certManager": {"enabled": true}})]);
    let pod = pod_spec(&out);
    assert!(
        !pod.containers[0]
            .args
            .as_ref()
            .unwrap()
            .contains(&"--in-cluster".to_owned())
    );
    assert_eq!(pod.automount_service_account_token, Some(false));
    for kind in ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"] {
        assert!(out.of_kind(kind).is_empty(), "{kind}");
    }

    // Constraint ConfigMaps: each --constraints path is that ConfigMap,
    // mounted read-only.
    let out =
        render_default(&[json!({"constraintConfigMaps": ["required-labels", "allowed-repos"]})]);
    let pod = pod_spec(&out);
    let c = &pod.containers[0];
    let args = c.args.clone().unwrap();
    let paths: Vec<&String> = args
        .iter()
        .zip(args.iter().skip(1))
        .filter(|(flag, _)| *flag == "--constraints")
        .map(|(_, p)| p)
        .collect();
    assert_eq!(paths.len(), 2);
    for (path, name) in paths.iter().zip(["required-labels", "allowed-repos"]) {
        let mount = c
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .find(|m| &&m.mount_path == path)
            .unwrap();
        assert_eq!(mount.read_only, Some(true));
        let volume = pod
            .volumes
            .as_ref()
            .unwrap()
            .iter()
            .find(|v| v.name == mount.name)
            .unwrap();
        assert_eq!(volume.config_map.as_ref().unwrap().name, name);
    }

    // A digest pins the image; a tag overrides the appVersion.
    let out = render_default(&[
        json!({"image": {"repository": "registry.example/tollgate", "tag": "0.2.0"}}),
    ]);
    assert_eq!(
        pod_spec(&out).containers[0].image.as_deref(),
        Some("registry.example/tollgate:0.2.0")
    );
    let digest = format!("sha256:{}", "a".repeat(64));
    let out = render_default(&[json!({"image": {"digest": digest}})]);
    assert_eq!(
        pod_spec(&out).containers[0].image.clone().unwrap(),
        format!("ghcr.io/tollgate-dev/tollgate@{digest}")
    );
}

#[test]
fn the_pods_roll_when_the_config_changes() {
    require_helm!();
    let checksum = |out: &Output| {
        deployment(out)
            .spec
            .template
            .metadata
            .unwrap()
            .annotations
            .unwrap()["checksum/config"]
            .clone()
    };
    let a = checksum(&render_default(&[]));
    assert_eq!(a.len(), 64);
    assert_eq!(a, checksum(&render_default(&[])));
    let b = checksum(&render_default(&[
        json!({"webhook": {"shutdownGrace": "25s"}}),
    ]));
    assert_ne!(a, b);
}

// ---- The rendered config file ----

/// Whether this build's config file has a top-level `section`.
fn binary_knows(dir: &std::path::Path, section: &'static str) -> bool {
    static KNOWN: std::sync::Mutex<Vec<(&'static str, bool)>> = std::sync::Mutex::new(Vec::new());
    if let Some((_, known)) = KNOWN.lock().unwrap().iter().find(|(s, _)| *s == section) {
        return *known;
    }
    let path = dir.join(format!("probe-{section}.yaml"));
    std::fs::write(
        &path,
        format!("apiVersion: tollgate.dev/v1alpha1\nkind: TollgateConfig\n{section}: {{}}\n"),
    )
    .unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["config", "check"])
        .arg(&path)
        .output()
        .unwrap();
    let known = run.status.success();
    if !known {
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(
            stderr.contains(&format!("unknown field `{section}`")),
            "{stderr}"
        );
    }
    KNOWN.lock().unwrap().push((section, known));
    known
}

/// The rendered config as this build can load it: a section this build
/// does not have (sidecar injection, live cluster state) is set aside, and
/// said so; everything else is checked.
fn for_this_build(dir: &std::path::Path, text: &str) -> String {
    let mut config: Json = yaml_serde::from_str(text).unwrap();
    let mut changed = false;
    for section in ["injection", "cluster"] {
        if config.get(section).is_some() && !binary_knows(dir, section) {
            eprintln!("note: this build has no `{section}:` config section; checking the rest");
            config.as_object_mut().unwrap().remove(section);
            changed = true;
        }
    }
    if changed {
        yaml_serde::to_string(&config).unwrap()
    } else {
        text.to_owned()
    }
}

/// `tollgate config check` on a rendered config file. In a build without
/// sidecar injection, the `injection:` section is set aside (and said so)
/// and everything else is checked.
fn config_check(dir: &std::path::Path, file: &str, text: &str) -> std::process::Output {
    let text = for_this_build(dir, text);
    let path = dir.join(file);
    std::fs::write(&path, &text).unwrap();
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["config", "check"])
        .arg(&path)
        .output()
        .unwrap()
}

#[test]
fn the_rendered_config_file_is_valid() {
    require_helm!();
    let dir = tempfile::tempdir().unwrap();
    for (i, (name, _, out)) in rendered().iter().enumerate() {
        let cm: ConfigMap = typed(&out.one("ConfigMap"));
        let text = cm.data.unwrap()["config.yaml"].clone();
        let run = config_check(dir.path(), &format!("config-{i}.yaml"), &text);
        assert_eq!(
            run.status.code(),
            Some(0),
            "{name}: {}\n{text}",
            String::from_utf8_lossy(&run.stderr)
        );

        // The config agrees with the Deployment: ports, certificate files.
        let config: Json = yaml_serde::from_str(&text).unwrap();
        let pod = pod_spec(out);
        let c = &pod.containers[0];
        let port = |n: &str| {
            c.ports
                .as_ref()
                .unwrap()
                .iter()
                .find(|p| p.name.as_deref() == Some(n))
                .unwrap()
                .container_port
        };
        assert_eq!(
            config["webhook"]["listen"],
            format!("0.0.0.0:{}", port("https"))
        );
        assert_eq!(
            config["webhook"]["metricsListen"],
            format!("0.0.0.0:{}", port("metrics"))
        );
        let mounts = c.volume_mounts.as_ref().unwrap();
        let state = config["webhook"]["stateDir"].as_str().unwrap();
        assert!(
            mounts
                .iter()
                .any(|m| m.mount_path == state && m.read_only != Some(true)),
            "{name}: the state directory must be a writable volume"
        );
        if let Some(cert) = config["webhook"]["tls"]["certFile"].as_str() {
            let tls = mounts
                .iter()
                .find(|m| cert.starts_with(&m.mount_path))
                .unwrap();
            let volume = pod
                .volumes
                .as_ref()
                .unwrap()
                .iter()
                .find(|v| v.name == tls.name)
                .unwrap();
            assert!(volume.secret.is_some(), "{name}");
        } else {
            let svc: Service = typed(&out.one("Service"));
            let want = format!(
                "{}.{}.svc",
                svc.metadata.name.unwrap(),
                svc.metadata.namespace.unwrap()
            );
            assert!(
                config["webhook"]["tls"]["dnsNames"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|n| n == &want),
                "{name}: {want}"
            );
        }
    }
    // The sidecar runs the webhook's image; the release namespace is
    // never injected; given settings win.
    let out = render(
        &Release::new("guard", "security"),
        &[json!({"image": {"repository": "registry.example/tollgate", "tag": "1.2.3"}})],
    )
    .unwrap();
    let cm: ConfigMap = typed(&out.one("ConfigMap"));
    let config: Json = yaml_serde::from_str(&cm.data.unwrap()["config.yaml"]).unwrap();
    assert_eq!(
        config["injection"]["image"],
        "registry.example/tollgate:1.2.3"
    );
    assert_eq!(
        config["injection"]["image"].as_str(),
        pod_spec(&out).containers[0].image.as_deref()
    );
    assert_eq!(
        config["injection"]["excludedNamespaces"],
        json!(["security"])
    );
    let out = render_default(&[
        json!({"injection": {"config": {"image": "mirror/tollgate:1", "excludedNamespaces": ["a", "b"], "mode": "legacy"}}}),
    ]);
    let cm: ConfigMap = typed(&out.one("ConfigMap"));
    let config: Json = yaml_serde::from_str(&cm.data.unwrap()["config.yaml"]).unwrap();
    assert_eq!(config["injection"]["image"], "mirror/tollgate:1");
    assert_eq!(config["injection"]["excludedNamespaces"], json!(["a", "b"]));
    assert_eq!(config["injection"]["mode"], "legacy");
    let out = render_default(&[json!({"injection": {"enabled": false}})]);
    let cm: ConfigMap = typed(&out.one("ConfigMap"));
    let config: Json = yaml_serde::from_str(&cm.data.unwrap()["config.yaml"]).unwrap();
    assert!(config.get("injection").is_none());

    // Values flow into the config.
    let out = render_default(
        &[json!({"webhook": {"limits": {"maxRequestBytes": 4194304}},
                                      "policy": {"podSecurity": {"enforce": {"level": "baseline"}}}})],
    );
    let cm: ConfigMap = typed(&out.one("ConfigMap"));
    let config: Json = yaml_serde::from_str(&cm.data.unwrap()["config.yaml"]).unwrap();
    assert_eq!(config["webhook"]["limits"]["maxRequestBytes"], 4194304);
    assert_eq!(
        config["policy"]["podSecurity"]["enforce"]["level"],
        "baseline"
    );
}

#[test]
fn a_bad_config_value_is_caught_by_the_config_check() {
    require_helm!();
    // A typo deeper than values.schema.json describes renders, and
    // `tollgate config check` names it: the check the chart's tests rely on
    // can fail.
    let out = render_default(&[json!({"policy": {"ownership": {"enforse": {}}}})]);
    let cm: ConfigMap = typed(&out.one("ConfigMap"));
    let dir = tempfile::tempdir().unwrap();
    let run = config_check(dir.path(), "config.yaml", &cm.data.unwrap()["config.yaml"]);
    assert_eq!(run.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("unknown field `enforse`"), "{stderr}");
}

// ---- RBAC ----

/// One permission: (apiGroup, resource, verb, resourceName or "").
type Grant = (String, String, String, String);

fn grants(rules: &[PolicyRule]) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for r in rules {
        assert!(r.non_resource_urls.is_none());
        let names = r.resource_names.clone().unwrap_or_default();
        let names = if names.is_empty() {
            vec![String::new()]
        } else {
            names
        };
        for g in r.api_groups.as_ref().unwrap() {
            for res in r.resources.as_ref().unwrap() {
                for v in &r.verbs {
                    for n in &names {
                        out.insert((g.clone(), res.clone(), v.clone(), n.clone()));
                    }
                }
            }
        }
    }
    out
}

/// Expected rules: (apiGroup, resources, verbs, resourceNames).
type RuleSpec<'a> = (&'a str, &'a [&'a str], &'a [&'a str], &'a [&'a str]);

fn expect(list: &[RuleSpec]) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for (group, resources, verbs, names) in list {
        let names: Vec<&str> = if names.is_empty() {
            vec![""]
        } else {
            names.to_vec()
        };
        for res in *resources {
            for v in *verbs {
                for n in &names {
                    out.insert((
                        (*group).to_owned(),
                        (*res).to_owned(),
                        (*v).to_owned(),
                        (*n).to_owned(),
                    ));
                }
            }
        }
    }
    out
}

const WORKLOAD_LIST: &[RuleSpec] = &[
    ("", &["namespaces"], &["get", "list", "watch"], &[]),
    (
        "templates.gatekeeper.sh",
        &["constrainttemplates"],
        &["get", "list", "watch"],
        &[],
    ),
    (
        "constraints.gatekeeper.sh",
        &["*"],
        &["get", "list", "watch"],
        &[],
    ),
    (
        "tollgate.dev",
        &["tollgatepolicies"],
        &["get", "list", "watch"],
        &[],
    ),
    (
        "",
        &["pods", "replicationcontrollers"],
        &["list", "watch"],
        &[],
    ),
    (
        "apps",
        &["deployments", "replicasets", "statefulsets", "daemonsets"],
        &["list", "watch"],
        &[],
    ),
    ("batch", &["jobs", "cronjobs"], &["list", "watch"], &[]),
    (
        "wgpolicyk8s.io",
        &["policyreports", "clusterpolicyreports"],
        &["get", "list", "create", "update", "patch", "delete"],
        &[],
    ),
];

#[test]
fn rbac_is_exactly_what_the_controller_calls() {
    require_helm!();
    for (name, release, out) in rendered() {
        let cluster_enabled = out.values["cluster"]["enabled"] == true;
        if !cluster_enabled {
            assert!(out.of_kind("ClusterRole").is_empty(), "{name}");
            continue;
        }
        let self_managed = out.values["certManager"]["enabled"] != true
            && out.values["certificates"]["existingSecret"] == "";
        let fullname = if release.name.contains("tollgate") {
            release.name.clone()
        } else {
            format!("{}-tollgate", release.name)
        };

        let cr: ClusterRole = typed(&out.one("ClusterRole"));
        let mut want = expect(WORKLOAD_LIST);
        if self_managed {
            let config_name = [fullname.as_str()];
            want.extend(expect(&[(
                "admissionregistration.k8s.io",
                &[
                    "mutatingwebhookconfigurations",
                    "validatingwebhookconfigurations",
                ],
                &["get", "patch", "update"],
                &config_name,
            )]));
        }
        let have = grants(cr.rules.as_deref().unwrap());
        assert_eq!(have, want, "{name}: ClusterRole");

        let role: Role = typed(&out.one("Role"));
        let lease = format!("{fullname}-webhook-certificates");
        let secret = format!("{fullname}-webhook-tls");
        let lease_names = [lease.as_str()];
        let secret_names = [secret.as_str()];
        let mut want = expect(&[
            ("", &["configmaps"], &["get", "list", "watch"], &[]),
            ("coordination.k8s.io", &["leases"], &["create"], &[]),
            (
                "coordination.k8s.io",
                &["leases"],
                &["get", "update"],
                &lease_names,
            ),
        ]);
        if self_managed {
            want.extend(expect(&[
                ("", &["secrets"], &["create"], &[]),
                ("", &["secrets"], &["get", "update", "patch"], &secret_names),
            ]));
        }
        assert_eq!(grants(role.rules.as_deref().unwrap()), want, "{name}: Role");

        // The dangerous ones, spelled out: no wildcard but the constraint
        // kinds (generated per template), no verb wildcard, nothing that
        // grants more RBAC, no Secret beyond the named one.
        for (g, r, v, _) in grants(cr.rules.as_deref().unwrap())
            .into_iter()
            .chain(grants(role.rules.as_deref().unwrap()))
        {
            assert_ne!(g, "*");
            assert_ne!(v, "*");
            assert!(r != "*" || g == "constraints.gatekeeper.sh", "{g}/{r}");
            assert!(!["escalate", "bind", "impersonate"].contains(&v.as_str()));
            assert!(!g.starts_with("rbac.authorization.k8s.io"));
        }
        assert!(
            !grants(cr.rules.as_deref().unwrap())
                .iter()
                .any(|(_, r, _, _)| r == "secrets"),
            "{name}: secrets cluster-wide"
        );

        // The bindings give exactly these roles to the pod's account.
        let pod = pod_spec(out);
        let crb: ClusterRoleBinding = typed(&out.one("ClusterRoleBinding"));
        let rb: RoleBinding = typed(&out.one("RoleBinding"));
        assert_eq!(crb.role_ref.kind, "ClusterRole");
        assert_eq!(Some(crb.role_ref.name.clone()), cr.metadata.name);
        assert_eq!(rb.role_ref.kind, "Role");
        assert_eq!(Some(rb.role_ref.name.clone()), role.metadata.name);
        for subjects in [crb.subjects.unwrap(), rb.subjects.unwrap()] {
            assert_eq!(subjects.len(), 1);
            assert_eq!(subjects[0].kind, "ServiceAccount");
            assert_eq!(Some(subjects[0].name.clone()), pod.service_account_name);
            assert_eq!(
                subjects[0].namespace.as_deref(),
                Some(release.namespace.as_str())
            );
        }
        // The controller is told the names RBAC allows: the config's
        // cluster.certificates section names the same objects.
        let cm: ConfigMap = typed(&out.one("ConfigMap"));
        let config: Json = yaml_serde::from_str(&cm.data.unwrap()["config.yaml"]).unwrap();
        let certs = &config["cluster"]["certificates"];
        assert_eq!(
            certs["mode"],
            if self_managed {
                "self-managed"
            } else {
                "cert-manager"
            },
            "{name}"
        );
        assert_eq!(certs["leaseName"], lease.as_str(), "{name}");
        let svc: Service = typed(&out.one("Service"));
        assert_eq!(certs["serviceName"].as_str(), svc.metadata.name.as_deref());
        let m: MutatingWebhookConfiguration = typed(&out.one("MutatingWebhookConfiguration"));
        let v: ValidatingWebhookConfiguration = typed(&out.one("ValidatingWebhookConfiguration"));
        assert_eq!(
            certs["mutatingWebhookConfigurations"],
            json!([m.metadata.name])
        );
        assert_eq!(
            certs["validatingWebhookConfigurations"],
            json!([v.metadata.name])
        );
        if self_managed {
            assert_eq!(certs["secretName"], secret.as_str(), "{name}");
        }
        // The names in resourceNames are the objects the chart names.
        if self_managed {
            let m: MutatingWebhookConfiguration = typed(&out.one("MutatingWebhookConfiguration"));
            assert_eq!(m.metadata.name.as_deref(), Some(fullname.as_str()));
        }
    }
}

// ---- Webhook configurations ----

fn check_client_config(
    scenario: &str,
    cc: &WebhookClientConfig,
    endpoint: Endpoint,
    out: &Output,
    release: &Release,
) {
    let svc: Service = typed(&out.one("Service"));
    let reference = cc.service.as_ref().unwrap();
    assert_eq!(Some(&reference.name), svc.metadata.name.as_ref());
    assert_eq!(reference.namespace, release.namespace);
    assert_eq!(reference.path.as_deref(), Some(endpoint.path()));
    let port = svc
        .spec
        .as_ref()
        .unwrap()
        .ports
        .as_ref()
        .unwrap()
        .iter()
        .find(|p| Some(p.port) == reference.port)
        .unwrap_or_else(|| panic!("{scenario}: the Service has no port {:?}", reference.port));
    assert_eq!(
        port.target_port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("https".into()))
    );
    // The Service selects the webhook's pods.
    let pod_labels = deployment(out)
        .spec
        .template
        .metadata
        .unwrap()
        .labels
        .unwrap();
    let selector = svc.spec.unwrap().selector.unwrap();
    assert!(selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)));
    if out.values["certificates"]["existingSecret"] != "" {
        assert!(cc.ca_bundle.is_some(), "{scenario}");
    } else {
        // cert-manager's cainjector or the webhook itself fills it in; a
        // rendered empty one would be reset on every upgrade.
        assert!(cc.ca_bundle.is_none(), "{scenario}");
    }
}

fn excluded_namespaces(selector: &Option<LabelSelector>) -> Vec<String> {
    let exprs = selector
        .as_ref()
        .unwrap()
        .match_expressions
        .clone()
        .unwrap();
    let expr = exprs
        .iter()
        .find(|e| e.key == "kubernetes.io/metadata.name")
        .unwrap();
    assert_eq!(expr.operator, "NotIn");
    expr.values.clone().unwrap()
}

fn resources(rules: &Option<Vec<RuleWithOperations>>) -> BTreeSet<String> {
    rules
        .as_ref()
        .unwrap()
        .iter()
        .flat_map(|r| {
            let ops = r.operations.clone().unwrap();
            let res = r.resources.clone().unwrap();
            // Writes for objects, CONNECT for the connections into pods,
            // DELETE only where a deletion is judged (policy ConfigMaps).
            let want: &[&str] = if res.iter().any(|x| x == "configmaps") {
                &["CREATE", "UPDATE", "DELETE"]
            } else if res.iter().any(|x| x == "pods/exec") {
                &["CONNECT"]
            } else {
                &["CREATE", "UPDATE"]
            };
            assert_eq!(ops, want, "{res:?}");
            assert_eq!(r.api_versions.as_deref().unwrap(), ["v1".to_owned()]);
            let group = r.api_groups.as_ref().unwrap()[0].clone();
            r.resources
                .clone()
                .unwrap()
                .into_iter()
                .map(move |res| format!("{group}/{res}"))
        })
        .collect()
}

const WORKLOADS: [&str; 8] = [
    "/pods",
    "/replicationcontrollers",
    "apps/deployments",
    "apps/replicasets",
    "apps/statefulsets",
    "apps/daemonsets",
    "batch/jobs",
    "batch/cronjobs",
];

#[test]
fn webhook_configurations_reach_the_service_and_spare_the_system() {
    require_helm!();
    for (name, release, out) in rendered() {
        let m: MutatingWebhookConfiguration = typed(&out.one("MutatingWebhookConfiguration"));
        let v: ValidatingWebhookConfiguration = typed(&out.one("ValidatingWebhookConfiguration"));
        assert_eq!(m.metadata.name, v.metadata.name);
        let mw = m.webhooks.as_ref().unwrap();
        let vw = v.webhooks.as_ref().unwrap();
        assert_eq!((mw.len(), vw.len()), (1, 1));
        let (mw, vw) = (&mw[0], &vw[0]);
        check_client_config(name, &mw.client_config, Endpoint::Mutate, out, release);
        check_client_config(name, &vw.client_config, Endpoint::Validate, out, release);

        let fail_open = out.values["webhook"]["validating"]["failurePolicy"] == "Ignore";
        assert_eq!(
            out.values["webhook"]["mutating"]["failurePolicy"],
            out.values["webhook"]["validating"]["failurePolicy"]
        );
        for (versions, side_effects, failure, timeout, selector, object, conditions) in [
            (
                &mw.admission_review_versions,
                &mw.side_effects,
                &mw.failure_policy,
                mw.timeout_seconds,
                &mw.namespace_selector,
                &mw.object_selector,
                &mw.match_conditions,
            ),
            (
                &vw.admission_review_versions,
                &vw.side_effects,
                &vw.failure_policy,
                vw.timeout_seconds,
                &vw.namespace_selector,
                &vw.object_selector,
                &vw.match_conditions,
            ),
        ] {
            assert_eq!(versions, &["v1".to_owned()]);
            assert_eq!(side_effects, "None");
            let want = if fail_open { "Ignore" } else { "Fail" };
            assert_eq!(failure.as_deref(), Some(want), "{name}");
            assert!(timeout.unwrap() <= 5 && timeout.unwrap() >= 1);
            let excluded = excluded_namespaces(selector);
            for ns in ["kube-system", "kube-node-lease", release.namespace.as_str()] {
                assert!(
                    excluded.iter().any(|e| e == ns),
                    "{name}: {ns} not excluded"
                );
            }
            let unique: BTreeSet<&String> = excluded.iter().collect();
            assert_eq!(unique.len(), excluded.len(), "{name}: {excluded:?}");
            // Extra expressions are ANDed after the exclusion.
            let exprs = selector
                .as_ref()
                .unwrap()
                .match_expressions
                .clone()
                .unwrap();
            let extra = out.values["webhook"]["namespaceSelectorExpressions"]
                .as_array()
                .unwrap();
            assert_eq!(exprs.len(), 1 + extra.len(), "{name}");
            for (e, want) in exprs.iter().skip(1).zip(extra) {
                assert_eq!(e.key, want["key"].as_str().unwrap());
                assert_eq!(e.operator, want["operator"].as_str().unwrap());
            }
            // Nothing lets an object's own labels opt it out.
            assert!(object.is_none(), "{name}");
            let conditions = conditions.as_ref().unwrap();
            let text: Vec<&str> = conditions.iter().map(|c| c.expression.as_str()).collect();
            assert!(text.iter().any(|e| e.contains("'leases'")), "{name}");
            assert!(text.iter().any(|e| e.contains("'events'")), "{name}");
        }
        assert_eq!(mw.reinvocation_policy.as_deref(), Some("IfNeeded"));
        // pods/* reaches the validating webhook only for the subresources
        // that change the pod's spec.
        let narrowed = vw
            .match_conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.name == "spec-changing-subresources-only")
            .unwrap();
        assert!(narrowed.expression.contains("request.subResource == ''"));
        assert!(narrowed.expression.contains("'ephemeralcontainers'"));
        for sub in ["'exec'", "'attach'", "'portforward'"] {
            assert!(narrowed.expression.contains(sub), "{name}: {sub}");
        }

        let mutated = resources(&mw.rules);
        let validated = resources(&vw.rules);
        for kind in WORKLOADS {
            assert!(mutated.contains(kind), "{name}: mutating misses {kind}");
            assert!(validated.contains(kind), "{name}: validating misses {kind}");
        }
        assert!(mutated.contains("/pods/ephemeralcontainers"));
        // Injected pods' policy ConfigMaps and the connections into their
        // sidecars are judged by the injection guard.
        assert!(!mutated.contains("/configmaps"), "{name}");
        for extra in [
            "/configmaps",
            "/pods/exec",
            "/pods/attach",
            "/pods/portforward",
            "/pods/*",
            "/namespaces",
            "/services",
            "/persistentvolumeclaims",
            "networking.k8s.io/ingresses",
        ] {
            assert!(
                validated.contains(extra),
                "{name}: validating misses {extra}"
            );
        }

        // cert-manager: the CA is injected from the serving Certificate,
        // which lands in the Secret the pods mount.
        let inject = m
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("cert-manager.io/inject-ca-from"));
        assert_eq!(
            inject,
            v.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("cert-manager.io/inject-ca-from"))
        );
        if out.values["certManager"]["enabled"] == true {
            let certs: Vec<Json> = out
                .of_kind("Certificate")
                .into_iter()
                .filter(|c| c["spec"]["isCA"] != true)
                .collect();
            assert_eq!(certs.len(), 1, "{name}");
            let cert = &certs[0];
            assert_eq!(
                inject.unwrap(),
                &format!(
                    "{}/{}",
                    release.namespace,
                    cert["metadata"]["name"].as_str().unwrap()
                )
            );
            let svc: Service = typed(&out.one("Service"));
            let dns = format!("{}.{}.svc", svc.metadata.name.unwrap(), release.namespace);
            assert!(
                cert["spec"]["dnsNames"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|n| n == &dns)
            );
            let secret = cert["spec"]["secretName"].as_str().unwrap();
            let pod = pod_spec(out);
            assert!(
                pod.volumes.unwrap().iter().any(|v| v
                    .secret
                    .as_ref()
                    .and_then(|s| s.secret_name.as_deref())
                    == Some(secret)),
                "{name}: the pods do not mount {secret}"
            );
            let issuer = &cert["spec"]["issuerRef"];
            if out.values["certManager"]["issuerRef"]
                .as_object()
                .unwrap()
                .is_empty()
            {
                // The chart's own chain: self-signed root -> CA Issuer.
                let issuers = out.of_kind("Issuer");
                assert_eq!(issuers.len(), 2);
                assert!(issuers.iter().any(
                    |i| i["metadata"]["name"] == issuer["name"] && i["spec"]["ca"].is_object()
                ));
            } else {
                assert_eq!(issuer["kind"], "ClusterIssuer");
                assert!(out.of_kind("Issuer").is_empty());
            }
        } else {
            assert!(inject.is_none());
            assert!(out.of_kind("Certificate").is_empty());
        }
    }
}

#[test]
fn the_chart_covers_the_plain_manifests() {
    require_helm!();
    // examples/webhook-configuration/ is the same installation without
    // Helm: the chart routes at least every resource it routes.
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/webhook-configuration/webhooks.yaml"),
    )
    .unwrap()
    .replace("${CA_BUNDLE}", "Q0E=");
    let docs: Vec<Json> = yaml_serde::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let example_m: MutatingWebhookConfiguration = serde_json::from_value(docs[0].clone()).unwrap();
    let example_v: ValidatingWebhookConfiguration =
        serde_json::from_value(docs[1].clone()).unwrap();
    let out = render_default(&[]);
    let m: MutatingWebhookConfiguration = typed(&out.one("MutatingWebhookConfiguration"));
    let v: ValidatingWebhookConfiguration = typed(&out.one("ValidatingWebhookConfiguration"));
    let em = &example_m.webhooks.unwrap()[0];
    let ev = &example_v.webhooks.unwrap()[0];
    let cm = &m.webhooks.unwrap()[0];
    let cv = &v.webhooks.unwrap()[0];
    assert!(resources(&em.rules).is_subset(&resources(&cm.rules)));
    assert!(resources(&ev.rules).is_subset(&resources(&cv.rules)));
    assert_eq!(em.name, cm.name);
    assert_eq!(ev.name, cv.name);
    for ns in excluded_namespaces(&ev.namespace_selector) {
        assert!(excluded_namespaces(&cv.namespace_selector).contains(&ns));
    }
}

/// The real webhook, started with the rendered config file (addresses and
/// state directory moved to a temporary place), serves the paths the
/// webhook configurations and the probes name.
#[tokio::test]
async fn the_webhook_serves_what_the_chart_routes_to() {
    require_helm!();
    use support_webhook::{Start, Webhook, http_get, pod, review};
    let out = render_default(&[]);
    let cm: ConfigMap = typed(&out.one("ConfigMap"));
    let config = cm.data.unwrap()["config.yaml"].clone();
    // The helper trusts the CA generated under WORKDIR/.tollgate.
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join(".tollgate");
    let config = for_this_build(dir.path(), &config);
    // The container's own arguments, with its paths moved here (the helper
    // adds --config FILE and loopback addresses).
    let help = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["webhook", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let audit = dir.path().join("audit/tollgate-webhook-0");
    let rendered_args = pod_spec(&out).containers[0].args.clone().unwrap();
    assert_eq!(rendered_args[0], "webhook");
    let mut args = vec![
        "--state-dir".to_owned(),
        state.to_string_lossy().into_owned(),
    ];
    let mut rest = rendered_args[1..].iter();
    while let Some(flag) = rest.next() {
        assert!(flag.starts_with("--"), "{flag}");
        if flag == "--in-cluster" {
            // A flag without a value. There is no API server here, so this
            // run serves without it; tests/cluster_e2e.rs runs --in-cluster
            // against the in-process fake.
            assert!(
                help.contains("--in-cluster"),
                "tollgate webhook has no --in-cluster"
            );
            continue;
        }
        assert!(
            help.contains(flag.as_str()),
            "tollgate webhook has no {flag}"
        );
        let value = rest.next().unwrap();
        match flag.as_str() {
            "--config" => assert_eq!(value, "/etc/tollgate/config.yaml"),
            "--audit-dir" => {
                assert_eq!(value, "/var/lib/tollgate/audit/$(POD_NAME)");
                args.extend([flag.clone(), audit.to_string_lossy().into_owned()]);
            }
            _ => args.extend([flag.clone(), value.clone()]),
        }
    }
    let webhook = Webhook::start_with(Start {
        args,
        config: Some(&config),
        dir: Some(dir),
        ..Start::default()
    });
    let m: MutatingWebhookConfiguration = typed(&out.one("MutatingWebhookConfiguration"));
    let v: ValidatingWebhookConfiguration = typed(&out.one("ValidatingWebhookConfiguration"));
    let path = |cc: &WebhookClientConfig| cc.service.as_ref().unwrap().path.clone().unwrap();
    let privileged = pod("agent", "agents", json!({"privileged": true}));
    let request = review(&privileged, "CREATE", "alice");
    let (status, body) = webhook
        .post(&path(&m.webhooks.unwrap()[0].client_config), &request)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["kind"], "AdmissionReview");
    let (status, body) = webhook
        .post(&path(&v.webhooks.unwrap()[0].client_config), &request)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["response"]["allowed"], false, "{body}");

    let c = &pod_spec(&out).containers[0];
    for probe in [c.readiness_probe.as_ref(), c.liveness_probe.as_ref()] {
        let probe_path = probe
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .clone()
            .unwrap();
        let (status, _) = http_get(webhook.metrics, &probe_path);
        assert_eq!(status, 200, "{probe_path}");
    }
    // The generated certificate names the Service the chart renders.
    let svc: Service = typed(&out.one("Service"));
    let dns = format!("{}.tollgate.svc", svc.metadata.name.unwrap());
    assert!(webhook.stdout().contains("serving admission reviews"));
    // The admission decisions went into the journal.
    assert!(std::fs::read_dir(&audit).unwrap().next().is_some());
    let cert = std::fs::read_to_string(state.join("tls.crt")).unwrap();
    let der = rustls_pki_types::pem::PemObject::from_pem_slice(cert.as_bytes())
        .map(|c: rustls_pki_types::CertificateDer<'static>| c)
        .unwrap();
    assert!(
        der.as_ref().windows(dns.len()).any(|w| w == dns.as_bytes()),
        "the serving certificate lacks {dns}"
    );
}

// ---- Options ----

#[test]
fn audit_storage_follows_the_values() {
    require_helm!();
    let audit_volume = |out: &Output| {
        let pod = pod_spec(out);
        let c = &pod.containers[0];
        let mount = c
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .find(|m| m.mount_path == "/var/lib/tollgate/audit")
            .cloned();
        let args = c.args.clone().unwrap();
        let pos = args.iter().position(|a| a == "--audit-dir");
        (pod, mount, pos.map(|p| args[p + 1].clone()))
    };

    // Default: an emptyDir journal.
    let out = render_default(&[]);
    let (pod, mount, dir) = audit_volume(&out);
    assert_eq!(dir.as_deref(), Some("/var/lib/tollgate/audit/$(POD_NAME)"));
    // $(POD_NAME) is an env var of the container, so the kubelet expands it.
    assert!(pod.containers[0].env.as_ref().unwrap().iter().any(|e| {
        e.name == "POD_NAME"
            && e.value_from
                .as_ref()
                .unwrap()
                .field_ref
                .as_ref()
                .unwrap()
                .field_path
                == "metadata.name"
    }));
    let mount = mount.unwrap();
    let volume = pod
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.name == mount.name)
        .unwrap();
    assert!(volume.empty_dir.is_some());
    assert!(out.of_kind("PersistentVolumeClaim").is_empty());

    // A claim the chart creates (and keeps on uninstall).
    let out = render_default(&[
        json!({"audit": {"persistence": {"enabled": true, "size": "50Gi", "storageClassName": "fast"}}}),
    ]);
    let pvc: PersistentVolumeClaim = typed(&out.one("PersistentVolumeClaim"));
    assert_eq!(
        pvc.metadata.annotations.unwrap()["helm.sh/resource-policy"],
        "keep"
    );
    let spec = pvc.spec.unwrap();
    assert_eq!(spec.storage_class_name.as_deref(), Some("fast"));
    assert_eq!(
        spec.resources.unwrap().requests.unwrap()["storage"].0,
        "50Gi"
    );
    let (pod, mount, _) = audit_volume(&out);
    let volume = pod
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.name == mount.as_ref().unwrap().name)
        .unwrap();
    assert_eq!(
        volume.persistent_volume_claim.unwrap().claim_name,
        pvc.metadata.name.unwrap()
    );
    // The pod's fsGroup makes the claim writable by the non-root user.
    assert_eq!(pod.security_context.unwrap().fs_group, Some(65534));

    // An existing claim: used, not created.
    let out = render_default(&[
        json!({"audit": {"persistence": {"enabled": true, "existingClaim": "journal"}}}),
    ]);
    assert!(out.of_kind("PersistentVolumeClaim").is_empty());
    let (pod, _, _) = audit_volume(&out);
    assert!(pod.volumes.unwrap().iter().any(|v| {
        v.persistent_volume_claim
            .as_ref()
            .map(|c| c.claim_name == "journal")
            .unwrap_or(false)
    }));

    // A stable checkpoint signing key from a Secret.
    let out = render_default(&[
        json!({"audit": {"signingKey": {"existingSecret": "k", "key": "ed25519.pem"}}}),
    ]);
    let (pod, _, _) = audit_volume(&out);
    let args = pod.containers[0].args.clone().unwrap();
    let at = args
        .iter()
        .position(|a| a == "--audit-signing-key")
        .unwrap();
    assert_eq!(args[at + 1], "/var/run/tollgate/audit-key/ed25519.pem");
    let mount = pod.containers[0]
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.mount_path == "/var/run/tollgate/audit-key")
        .unwrap()
        .clone();
    assert_eq!(mount.read_only, Some(true));
    let secret = pod
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.name == mount.name)
        .unwrap()
        .secret
        .unwrap();
    assert_eq!(secret.secret_name.as_deref(), Some("k"));
    assert_eq!(secret.default_mode, Some(0o440));
    assert_eq!(secret.items.unwrap()[0].key, "ed25519.pem");
    let out = render_default(&[]);
    assert!(
        !pod_spec(&out).containers[0]
            .args
            .as_ref()
            .unwrap()
            .contains(&"--audit-signing-key".to_owned())
    );

    // Off: no flag, no volume.
    let out = render_default(&[json!({"audit": {"enabled": false}})]);
    let (_, mount, dir) = audit_volume(&out);
    assert!(mount.is_none() && dir.is_none());
}

#[test]
fn the_network_policy_admits_the_api_server_and_scrapers_only() {
    require_helm!();
    let out = render_default(&[json!({"networkPolicy": {"apiServerCIDRs": ["10.0.0.1/32"]}})]);
    let np: NetworkPolicy = typed(&out.one("NetworkPolicy"));
    let spec = np.spec.unwrap();
    let pod_labels = deployment(&out)
        .spec
        .template
        .metadata
        .unwrap()
        .labels
        .unwrap();
    assert!(matches(&spec.pod_selector.unwrap(), &pod_labels));
    assert_eq!(
        spec.policy_types.unwrap(),
        ["Ingress".to_owned(), "Egress".to_owned()]
    );
    // Ingress names the container ports.
    let pod = pod_spec(&out);
    let port_names: BTreeSet<String> = pod.containers[0]
        .ports
        .as_ref()
        .unwrap()
        .iter()
        .filter_map(|p| p.name.clone())
        .collect();
    let mut allowed = BTreeSet::new();
    for rule in spec.ingress.unwrap() {
        for p in rule.ports.unwrap() {
            match p.port.unwrap() {
                k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => {
                    assert!(port_names.contains(&s));
                    allowed.insert(s);
                }
                other => panic!("ingress by number: {other:?}"),
            }
        }
    }
    assert_eq!(allowed, port_names);
    // Egress: DNS and the API server's address only.
    let egress = spec.egress.unwrap();
    assert_eq!(egress.len(), 2);
    let api = &egress[1];
    assert_eq!(
        api.to.as_ref().unwrap()[0].ip_block.as_ref().unwrap().cidr,
        "10.0.0.1/32"
    );
    // Off: none.
    let out = render_default(&[json!({"networkPolicy": {"enabled": false}})]);
    assert!(out.of_kind("NetworkPolicy").is_empty());
}

#[test]
fn the_service_monitor_scrapes_the_metrics_port() {
    require_helm!();
    assert!(render_default(&[]).of_kind("ServiceMonitor").is_empty());
    let out = render_default(&[
        json!({"serviceMonitor": {"enabled": true, "labels": {"release": "prom"}}}),
    ]);
    let sm = out.one("ServiceMonitor");
    let svc: Service = typed(&out.one("Service"));
    let svc_labels = svc.metadata.labels.clone().unwrap();
    let selector: LabelSelector = serde_json::from_value(sm["spec"]["selector"].clone()).unwrap();
    assert!(matches(&selector, &svc_labels));
    assert_eq!(sm["metadata"]["labels"]["release"], "prom");
    let endpoint = &sm["spec"]["endpoints"][0];
    assert_eq!(endpoint["path"], "/metrics");
    assert!(
        svc.spec
            .unwrap()
            .ports
            .unwrap()
            .iter()
            .any(|p| p.name.as_deref() == endpoint["port"].as_str())
    );
}

#[test]
fn notes_say_where_the_webhook_is() {
    require_helm!();
    let out = render_default(&[]);
    assert!(
        out.notes
            .contains("https://tollgate-webhook.tollgate.svc:443/mutate and /validate"),
        "{}",
        out.notes
    );
    assert!(
        out.notes
            .contains("self-managed in Secret tollgate-webhook-tls")
    );
    assert!(!out.notes.contains("<no value>"));
    let out = render_default(&[json!({"certManager": {"enabled": true}})]);
    assert!(out.notes.contains("issued by cert-manager"));
}

// ---- Bad values ----

#[test]
fn missing_or_contradictory_values_fail_with_a_clear_message() {
    require_helm!();
    let cases = [
        (
            json!({"cluster": {"enabled": false}}),
            "the webhook needs a serving certificate: set cluster.enabled=true",
        ),
        (
            json!({"certificates": {"existingSecret": "tls"}}),
            "certificates.caBundle (base64 PEM of the CA) is required with certificates.existingSecret",
        ),
        (
            json!({"certificates": {"existingSecret": "tls", "caBundle": "QQ=="}, "certManager": {"enabled": true}}),
            "certManager.enabled and certificates.existingSecret are exclusive",
        ),
        (
            json!({"serviceAccount": {"create": false}}),
            "serviceAccount.name is required when serviceAccount.create is false",
        ),
        (
            json!({"audit": {"persistence": {"enabled": true, "accessModes": ["ReadWriteOnce"]}}}),
            "replicas on different nodes cannot share a ReadWriteOnce claim",
        ),
        (
            json!({"podDisruptionBudget": {"minAvailable": 1, "maxUnavailable": 1}}),
            "podDisruptionBudget: set minAvailable or maxUnavailable, not both",
        ),
    ];
    for (values, want) in cases {
        let err = render(&Release::default(), std::slice::from_ref(&values))
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{values}: {err}");
    }
}

#[test]
fn the_schema_accepts_the_defaults_and_refuses_bad_values() {
    require_helm!();
    // The defaults pass (render checks them against values.schema.json).
    let out = render_default(&[]);
    assert_eq!(out.values["replicaCount"], 2);
    assert_eq!(deployment(&out).spec.replicas, Some(2));
    let cases = [
        (json!({"replicaCount": 0}), "/replicaCount"),
        (
            json!({"webhook": {"timeoutSeconds": 60}}),
            "/webhook/timeoutSeconds",
        ),
        (
            json!({"webhook": {"validating": {"failurePolicy": "fail"}}}),
            "/webhook/validating/failurePolicy",
        ),
        (json!({"webhok": {}}), "webhok"),
        (
            json!({"webhook": {"shutdownGrace": "twenty"}}),
            "/webhook/shutdownGrace",
        ),
        (json!({"podAntiAffinity": "strict"}), "/podAntiAffinity"),
        (json!({"image": {"digest": "latest"}}), "/image/digest"),
    ];
    for (values, want) in cases {
        let err = render(&Release::default(), std::slice::from_ref(&values))
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("schema") && err.contains(want),
            "{values}: {err}"
        );
    }
}

#[test]
fn helm_lint_strict_is_clean_for_every_values_file() {
    require_helm!();
    for (name, values) in value_cases() {
        let messages = support_chart::lint_strict(&[values])
            .unwrap_or_else(|e| panic!("{name}: helm lint failed: {e}"));
        // `helm lint --strict` fails on warnings and errors; infos are
        // recommendations.
        let failing: Vec<_> = messages.iter().filter(|m| m.severity >= 2).collect();
        assert!(failing.is_empty(), "{name}: {failing:?}");
    }
    // A value the schema refuses is a lint error.
    let messages = support_chart::lint_strict(&[json!({"replicaCount": "two"})]).unwrap();
    assert!(
        messages
            .iter()
            .any(|m| m.severity == 3 && m.error.contains("/replicaCount")),
        "{messages:?}"
    );
}

#[test]
fn every_value_is_documented() {
    // Leaves of values.yaml (an empty map or list is a leaf: users fill it).
    fn leaves(prefix: &str, value: &Json, out: &mut Vec<String>) {
        match value {
            Json::Object(map) if !map.is_empty() && !prefix.ends_with("resources") => {
                for (k, v) in map {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    leaves(&path, v, out);
                }
            }
            _ => out.push(prefix.to_owned()),
        }
    }
    let dir = support_chart::chart_dir();
    let values: Json =
        yaml_serde::from_str(&std::fs::read_to_string(dir.join("values.yaml")).unwrap()).unwrap();
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    let mut paths = Vec::new();
    leaves("", &values, &mut paths);
    assert!(paths.len() > 50, "{paths:?}");
    let missing: Vec<&String> = paths
        .iter()
        .filter(|p| {
            let mut documented = readme.contains(&format!("`{p}`"));
            // `probes.readiness.*` documents every key under it.
            let mut prefix = p.as_str();
            while let Some((parent, _)) = prefix.rsplit_once('.') {
                documented |= readme.contains(&format!("`{parent}.*`"));
                prefix = parent;
            }
            !documented
        })
        .collect();
    assert!(
        missing.is_empty(),
        "values missing from the chart README: {missing:?}"
    );
}

#[test]
fn numbers_printed_by_the_templates_stay_below_exponent_form() {
    // Helm holds numbers from values as float64 and prints a raw
    // `{{ .Values.n }}` of 1e6 or more in exponent form ("1e+06"), which
    // Kubernetes refuses as an integer. Numbers the templates print raw are
    // therefore bounded by the schema; the rest go through toYaml.
    fn walk(path: &str, schema: &Json, out: &mut Vec<String>) {
        if schema["type"] == "integer" {
            let max = schema["maximum"].as_f64().unwrap_or(f64::INFINITY);
            if max >= 1_000_000.0 {
                out.push(path.to_owned());
            }
        }
        for key in ["anyOf", "oneOf", "allOf"] {
            for s in schema[key].as_array().into_iter().flatten() {
                walk(path, s, out);
            }
        }
        if let Some(props) = schema["properties"].as_object() {
            for (k, v) in props {
                walk(&format!("{path}.{k}"), v, out);
            }
        }
        if schema["additionalProperties"].is_object() {
            walk(&format!("{path}.*"), &schema["additionalProperties"], out);
        }
        if schema["items"].is_object() {
            walk(&format!("{path}[]"), &schema["items"], out);
        }
    }
    let dir = support_chart::chart_dir();
    let schema: Json =
        serde_json::from_str(&std::fs::read_to_string(dir.join("values.schema.json")).unwrap())
            .unwrap();
    let mut unbounded = Vec::new();
    walk("", &schema, &mut unbounded);
    // Rendered with toYaml only (JSON numbers, never exponent form).
    let through_to_yaml = [
        ".resources.requests.*",
        ".resources.limits.*",
        ".webhook.limits.maxRequestBytes",
        ".webhook.limits.maxConnections",
    ];
    unbounded.retain(|p| !through_to_yaml.contains(&p.as_str()));
    assert!(
        unbounded.is_empty(),
        "unbounded numbers printed raw: {unbounded:?}"
    );
    let templates = std::fs::read_to_string(dir.join("templates/_config.tpl")).unwrap();
    assert!(templates.contains("{{- with .Values.webhook.limits }}"));
    assert!(templates.contains("toYaml . | nindent 4"));
}

#[test]
fn the_chart_ships_the_generated_crd() {
    require_helm!();
    let path = support_chart::chart_dir().join("crds/tollgate.dev_tollgatepolicies.yaml");
    let shipped = std::fs::read_to_string(&path).unwrap();
    let crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
        typed(&yaml_serde::from_str(&shipped).unwrap());
    // The ClusterRole reads exactly this resource, cluster-wide.
    assert_eq!(crd.spec.scope, "Cluster");
    let cr: ClusterRole = typed(&render_default(&[]).one("ClusterRole"));
    assert!(cr.rules.unwrap().iter().any(|r| {
        r.api_groups.as_deref() == Some(&[crd.spec.group.clone()][..])
            && r.resources.as_deref() == Some(&[crd.spec.names.plural.clone()][..])
            && r.verbs == ["get", "list", "watch"]
    }));

    // And it is what the binary generates from the Rust type.
    let help = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    if !help.lines().any(|l| l.trim_start().starts_with("crd ")) {
        eprintln!("note: this build has no `tollgate crd`; the shipped CRD is not compared");
        return;
    }
    let generated = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("crd")
        .output()
        .unwrap();
    assert!(generated.status.success());
    assert_eq!(
        shipped,
        String::from_utf8(generated.stdout).unwrap(),
        "{} is stale: regenerate it with `tollgate crd > charts/tollgate/crds/tollgate.dev_tollgatepolicies.yaml`",
        path.display()
    );
}
