//! The sidecar template: the container, volumes and agent environment one
//! pod gets, rendered from the `injection:` config and the pod's
//! annotations. The mutation adds exactly this; the anti-bypass check
//! compares the admitted pod against exactly this.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, EnvVar, Volume, VolumeMount};
use serde_json::{Value, json};

use super::config::{InjectionConfig, InjectionMode, is_dns_subdomain};
use super::names::{
    ANNOTATION_ACTION_POLICY, ANNOTATION_OSSA, AUDIT_PATH, CA_PATH, CONFIG_PATH, OSSA_PATH,
    PODINFO_PATH, POLICY_PATH, SIDECAR_NAME, TEMPLATE_REVISION, TRUST_BUNDLE, TRUST_PATH,
    VOLUME_AUDIT, VOLUME_CA, VOLUME_CONFIG, VOLUME_OSSA, VOLUME_PODINFO, VOLUME_POLICY,
    VOLUME_TRUST,
};

/// The uid and gid the sidecar runs as (`nobody`).
pub const SIDECAR_UID: i64 = 65534;

/// The environment variables that point agents at the proxy.
pub const PROXY_ENV: [&str; 6] = [
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
];

/// The environment variables that make agents trust the per-pod CA.
pub const TRUST_ENV: [&str; 3] = ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS"];

/// Everything one pod gets.
#[derive(Debug, Clone)]
pub struct Template {
    /// The sidecar container (JSON, as it is patched in).
    pub sidecar: Value,
    /// The same, typed, for comparisons.
    pub sidecar_typed: Container,
    /// The pod volumes the sidecar and agents use.
    pub volumes: Vec<Value>,
    /// The same, typed.
    pub volumes_typed: Vec<Volume>,
    /// The environment every agent container gets, in order.
    pub agent_env: Vec<(String, String)>,
    /// The read-only trust-bundle mount agents get (interception only).
    pub agent_mount: Option<VolumeMount>,
    /// The template version recorded in `tollgate.dev/injected-version`.
    pub version: String,
    /// Native sidecar or legacy.
    pub mode: InjectionMode,
    /// Admission warnings about the pod's annotations.
    pub notes: Vec<String>,
    /// Problems with the pod's annotations that refuse it (invalid
    /// ConfigMap names).
    pub errors: Vec<(String, String)>,
}

impl Template {
    /// The template for a pod with these annotations.
    pub fn render(config: &InjectionConfig, annotations: &BTreeMap<String, String>) -> Template {
        let mut notes = Vec::new();
        let mut errors = Vec::new();
        let mut config_map = |key: &str| -> Option<String> {
            let name = annotations.get(key)?.trim();
            if is_dns_subdomain(name) {
                Some(name.to_owned())
            } else {
                errors.push((
                    format!("metadata.annotations[{key}]"),
                    format!(
                        "{name:?} is not a ConfigMap name: set it to the name of a ConfigMap in the pod's namespace"
                    ),
                ));
                None
            }
        };
        let ossa = config_map(ANNOTATION_OSSA);
        let policy = config_map(ANNOTATION_ACTION_POLICY);
        let policy = match (policy, &ossa, &config.default_action_policy) {
            (Some(p), _, _) => Some(p),
            (None, Some(_), _) => None,
            (None, None, Some(default)) => Some(default.clone()),
            (None, None, None) => {
                if errors.is_empty() {
                    notes.push(format!(
                        "Tollgate: this pod names neither an action policy ({ANNOTATION_ACTION_POLICY}) nor an OSSA manifest ({ANNOTATION_OSSA}), so its sidecar has no policy: it denies every action and never reports ready, and the pod's other containers do not start; set one of the annotations to a ConfigMap name"
                    ));
                }
                None
            }
        };

        let mut args: Vec<String> = vec![
            "sidecar".into(),
            "--listen".into(),
            format!("127.0.0.1:{}", config.proxy_port),
            "--metrics-listen".into(),
            format!("0.0.0.0:{}", config.metrics_port),
            // The journal and its generated signing key live on the audit
            // volume, which only the sidecar mounts (the root filesystem is
            // read-only).
            "--audit-dir".into(),
            format!("{AUDIT_PATH}/journal"),
            "--state-dir".into(),
            format!("{AUDIT_PATH}/state"),
        ];
        // Without any policy the sidecar is still pointed at the (absent)
        // policy file: it denies every action and never reports ready, so
        // the agents never start (fail-closed).
        if policy.is_some() || ossa.is_none() {
            args.push("--policy".into());
            args.push(format!("{POLICY_PATH}/{}", config.action_policy_key));
        }
        if ossa.is_some() {
            args.push("--ossa-manifest".into());
            args.push(format!("{OSSA_PATH}/{}", config.ossa_manifest_key));
        }
        if config.sidecar_config.is_some() {
            args.push("--config".into());
            args.push(format!("{CONFIG_PATH}/config.yaml"));
        }
        if config.interception {
            args.extend([
                "--intercept-ca".into(),
                CA_PATH.into(),
                "--trust-bundle-out".into(),
                format!("{TRUST_PATH}/{TRUST_BUNDLE}"),
            ]);
        }

        let mut mounts = vec![
            json!({"name": VOLUME_AUDIT, "mountPath": AUDIT_PATH}),
            json!({"name": VOLUME_PODINFO, "mountPath": PODINFO_PATH, "readOnly": true}),
        ];
        let mut volumes = vec![
            json!({"name": VOLUME_AUDIT, "emptyDir": {"sizeLimit": config.audit_spool_size.0}}),
            json!({"name": VOLUME_PODINFO, "downwardAPI": {"defaultMode": 420, "items": [
                {"path": "labels", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.labels"}},
                {"path": "annotations", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.annotations"}},
            ]}}),
        ];
        if let Some(name) = &policy {
            mounts.push(json!({"name": VOLUME_POLICY, "mountPath": POLICY_PATH, "readOnly": true}));
            volumes.push(
                json!({"name": VOLUME_POLICY, "configMap": {"name": name, "defaultMode": 420}}),
            );
        }
        if let Some(name) = &ossa {
            mounts.push(json!({"name": VOLUME_OSSA, "mountPath": OSSA_PATH, "readOnly": true}));
            volumes.push(
                json!({"name": VOLUME_OSSA, "configMap": {"name": name, "defaultMode": 420}}),
            );
        }
        if let Some(name) = &config.sidecar_config {
            mounts.push(json!({"name": VOLUME_CONFIG, "mountPath": CONFIG_PATH, "readOnly": true}));
            volumes.push(
                json!({"name": VOLUME_CONFIG, "configMap": {"name": name, "defaultMode": 420}}),
            );
        }
        if config.interception {
            mounts.push(json!({"name": VOLUME_CA, "mountPath": CA_PATH}));
            mounts.push(json!({"name": VOLUME_TRUST, "mountPath": TRUST_PATH}));
            volumes.push(json!({"name": VOLUME_CA, "emptyDir": {"medium": "Memory"}}));
            volumes.push(json!({"name": VOLUME_TRUST, "emptyDir": {}}));
        }

        let field = |path: &str| json!({"fieldRef": {"apiVersion": "v1", "fieldPath": path}});
        let probe = |path: &str, period: i32, failures: i32| {
            json!({
                "httpGet": {"path": path, "port": config.metrics_port, "scheme": "HTTP"},
                "periodSeconds": period,
                "failureThreshold": failures,
                "timeoutSeconds": 1,
                "successThreshold": 1,
            })
        };
        let mut sidecar = json!({
            "name": SIDECAR_NAME,
            "image": config.image,
            "imagePullPolicy": config.image_pull_policy,
            "command": [config.binary],
            "args": args,
            "env": [
                {"name": "POD_NAME", "valueFrom": field("metadata.name")},
                {"name": "POD_NAMESPACE", "valueFrom": field("metadata.namespace")},
                {"name": "SERVICE_ACCOUNT", "valueFrom": field("spec.serviceAccountName")},
                {"name": "TOLLGATE_POD_LABELS", "value": format!("{PODINFO_PATH}/labels")},
                {"name": "TOLLGATE_POD_ANNOTATIONS", "value": format!("{PODINFO_PATH}/annotations")},
            ],
            "ports": [{"name": "tollgate-metrics", "containerPort": config.metrics_port, "protocol": "TCP"}],
            "resources": serde_json::to_value(&config.resources).unwrap_or(Value::Null),
            "securityContext": {
                "runAsUser": SIDECAR_UID,
                "runAsGroup": SIDECAR_UID,
                "runAsNonRoot": true,
                "readOnlyRootFilesystem": true,
                "allowPrivilegeEscalation": false,
                "privileged": false,
                "capabilities": {"drop": ["ALL"]},
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "startupProbe": probe("/readyz", 1, 120),
            "readinessProbe": probe("/readyz", 5, 3),
            "livenessProbe": probe("/healthz", 10, 3),
            "volumeMounts": mounts,
            "terminationMessagePolicy": "FallbackToLogsOnError",
        });
        if let Some(obj) = sidecar.as_object_mut() {
            match config.mode {
                InjectionMode::Native => {
                    obj.insert("restartPolicy".into(), json!("Always"));
                }
                InjectionMode::Legacy => {
                    obj.insert(
                        "lifecycle".into(),
                        json!({"postStart": {"exec": {"command": [
                            config.binary, "wait-ready",
                            "--url", format!("http://127.0.0.1:{}/readyz", config.metrics_port),
                            "--timeout", "120s",
                        ]}}}),
                    );
                }
            }
        }

        let proxy = format!("http://127.0.0.1:{}", config.proxy_port);
        let no_proxy = config.no_proxy_value();
        let mut agent_env: Vec<(String, String)> = PROXY_ENV
            .iter()
            .map(|name| {
                let value = if name.eq_ignore_ascii_case("NO_PROXY") {
                    no_proxy.clone()
                } else {
                    proxy.clone()
                };
                ((*name).to_owned(), value)
            })
            .collect();
        let agent_mount = config.interception.then(|| {
            let bundle = format!("{TRUST_PATH}/{TRUST_BUNDLE}");
            agent_env.extend(TRUST_ENV.iter().map(|n| ((*n).to_owned(), bundle.clone())));
            VolumeMount {
                name: VOLUME_TRUST.to_owned(),
                mount_path: TRUST_PATH.to_owned(),
                read_only: Some(true),
                ..VolumeMount::default()
            }
        });

        let sidecar_typed = serde_json::from_value(sidecar.clone()).unwrap_or_default();
        let volumes_typed = volumes
            .iter()
            .filter_map(|v| serde_json::from_value(v.clone()).ok())
            .collect();
        let version = format!(
            "{TEMPLATE_REVISION}-{:016x}",
            fnv1a(
                serde_json::to_string(&json!([sidecar, volumes, agent_env]))
                    .unwrap_or_default()
                    .as_bytes()
            )
        );
        Template {
            sidecar,
            sidecar_typed,
            volumes,
            volumes_typed,
            agent_env,
            agent_mount,
            version,
            mode: config.mode,
            notes,
            errors,
        }
    }

    /// The agent environment as typed env vars.
    pub fn agent_env_vars(&self) -> Vec<EnvVar> {
        self.agent_env
            .iter()
            .map(|(name, value)| EnvVar {
                name: name.clone(),
                value: Some(value.clone()),
                value_from: None,
            })
            .collect()
    }
}

/// FNV-1a, 64 bits: a hash that is the same in every build and process, so
/// the recorded template version only changes when the template does.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}
