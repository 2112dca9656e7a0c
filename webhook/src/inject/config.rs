//! The `injection:` section of Tollgate's config file: the sidecar
//! template's knobs (image, mode, interception, resources, ports), which
//! namespaces are never injected, and what agents do not send through the
//! proxy. Every field has a default; [`InjectionConfig::validate`] refuses
//! what the types alone cannot, naming the field.

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde::{Deserialize, Serialize};

/// Namespaces that are never injected, whatever the config says (like
/// Istio's injector): the control plane's own pods must not depend on a
/// webhook-injected proxy.
pub const ALWAYS_EXCLUDED: [&str; 2] = ["kube-system", "kube-public"];

/// How the sidecar is added to the pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum InjectionMode {
    /// A native sidecar (Kubernetes 1.29 and later): the first init
    /// container, with `restartPolicy: Always`. It starts (and passes its
    /// startup probe) before any other init or regular container, stops
    /// after them, and does not keep Jobs from completing.
    #[default]
    Native,
    /// For older clusters: the first regular container, with a `postStart`
    /// hook that returns only once the proxy is ready. The kubelet starts
    /// containers in order and waits for a container's `postStart` hook
    /// before starting the next one, so agents never run before the proxy
    /// (the technique Istio uses for `holdApplicationUntilProxyStarts`).
    /// Init containers run before the sidecar and are not proxied.
    Legacy,
}

/// The `injection:` section.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct InjectionConfig {
    /// Inject at all. Off: the mutating webhook never adds the sidecar and
    /// the anti-bypass checks do not run.
    pub enabled: bool,
    /// The sidecar image (the `tollgate` binary).
    pub image: String,
    /// The image pull policy.
    pub image_pull_policy: String,
    /// The `tollgate` executable inside the image (the container's
    /// `command`, and the legacy-mode readiness gate).
    pub binary: String,
    /// Native sidecar or the legacy fallback.
    pub mode: InjectionMode,
    /// TLS interception: the sidecar mints a per-pod CA and the agents get
    /// `SSL_CERT_FILE`, `REQUESTS_CA_BUNDLE` and `NODE_EXTRA_CA_CERTS`
    /// pointing at a bundle of the system roots plus that CA. Off: HTTPS is
    /// decided on host and port only (`CONNECT`).
    pub interception: bool,
    /// The sidecar's resource requests and limits.
    pub resources: ResourceRequirements,
    /// The proxy port on 127.0.0.1 (`HTTP_PROXY`).
    pub proxy_port: u16,
    /// The metrics and health port (`/metrics`, `/healthz`, `/readyz`).
    pub metrics_port: u16,
    /// Namespaces never injected, besides `kube-system` and `kube-public`
    /// (typically Tollgate's own).
    pub excluded_namespaces: Vec<String>,
    /// Hosts agents reach directly (`NO_PROXY`). Loopback is always
    /// included.
    pub no_proxy: Vec<String>,
    /// Also let agents reach cluster Services directly (adds `.svc` and
    /// `.svc.<clusterDomain>` to `NO_PROXY`). Off by default: in-cluster
    /// MCP servers, other agents and the Kubernetes API are exactly the
    /// actions the sidecar exists to decide.
    pub bypass_cluster_services: bool,
    /// The cluster's DNS domain.
    pub cluster_domain: String,
    /// The ConfigMap key holding the ActionPolicy in the ConfigMap named by
    /// `tollgate.dev/action-policy`.
    pub action_policy_key: String,
    /// The ConfigMap key holding the OSSA manifest in the ConfigMap named
    /// by `tollgate.dev/ossa-manifest`.
    pub ossa_manifest_key: String,
    /// The ActionPolicy ConfigMap for pods that name neither an action
    /// policy nor an OSSA manifest. Without it such pods get a sidecar that
    /// denies every action and never reports ready, so their agents do not
    /// start (and the admission warns).
    pub default_action_policy: Option<String>,
    /// The size limit of the audit spool (an `emptyDir` only the sidecar
    /// mounts).
    pub audit_spool_size: Quantity,
    /// A ConfigMap (in the pod's namespace) holding a TollgateConfig under
    /// the key `config.yaml`, mounted read-only into the sidecar and passed
    /// as `--config`: its `audit:` section configures the exporters that
    /// deliver the sidecar's journal to the SIEM. Without it the journal
    /// stays on the pod's audit volume.
    pub sidecar_config: Option<String>,
    /// Who may create, change or delete the ConfigMaps injected pods read
    /// their policy and sidecar config from (see [`PolicyAuthors`]).
    pub policy_authors: PolicyAuthors,
}

/// The requesters allowed to write protected policy ConfigMaps, to `exec`,
/// `attach` or `port-forward` into injected sidecars. A ServiceAccount of
/// the object's own namespace never is, whatever is listed here: the agents
/// of that namespace run as those. Default: the group `system:masters`
/// (cluster administrators, who could remove the webhook anyway).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct PolicyAuthors {
    /// User names, exactly as the API server authenticates them
    /// (`alice@example.com`, `system:serviceaccount:gitops:argocd`).
    pub users: Vec<String>,
    /// Groups, exactly as the API server authenticates them
    /// (`platform-security`).
    pub groups: Vec<String>,
}

impl Default for PolicyAuthors {
    fn default() -> Self {
        PolicyAuthors {
            users: Vec::new(),
            groups: vec!["system:masters".to_owned()],
        }
    }
}

impl Default for InjectionConfig {
    fn default() -> Self {
        let quantity = |s: &str| Quantity(s.to_owned());
        InjectionConfig {
            enabled: true,
            image: concat!("ghcr.io/tollgate-dev/tollgate:", env!("CARGO_PKG_VERSION")).to_owned(),
            image_pull_policy: "IfNotPresent".to_owned(),
            binary: "tollgate".to_owned(),
            mode: InjectionMode::Native,
            interception: false,
            resources: ResourceRequirements {
                requests: Some(
                    [
                        ("cpu".to_owned(), quantity("50m")),
                        ("memory".to_owned(), quantity("64Mi")),
                    ]
                    .into(),
                ),
                // A CPU limit too: compliance packs require both limits.
                limits: Some(
                    [
                        ("cpu".to_owned(), quantity("500m")),
                        ("memory".to_owned(), quantity("256Mi")),
                    ]
                    .into(),
                ),
                ..ResourceRequirements::default()
            },
            proxy_port: 15001,
            metrics_port: 15090,
            excluded_namespaces: Vec::new(),
            no_proxy: Vec::new(),
            bypass_cluster_services: false,
            cluster_domain: "cluster.local".to_owned(),
            action_policy_key: "policy.yaml".to_owned(),
            ossa_manifest_key: "agent.yaml".to_owned(),
            default_action_policy: None,
            audit_spool_size: quantity("512Mi"),
            sidecar_config: None,
            policy_authors: PolicyAuthors::default(),
        }
    }
}

/// Why an `injection:` section was refused.
#[derive(Debug, thiserror::Error)]
pub enum InjectionConfigError {
    /// A value is well-typed but unusable.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field, as a dotted path inside the `injection:` section.
        field: &'static str,
        /// What is wrong with it, and what would be accepted.
        reason: String,
    },
}

impl InjectionConfig {
    /// Checks what the types alone cannot.
    pub fn validate(&self) -> Result<(), InjectionConfigError> {
        let invalid = |field, reason: String| Err(InjectionConfigError::Invalid { field, reason });
        if self
            .sidecar_config
            .as_deref()
            .is_some_and(|n| n.trim().is_empty())
        {
            return invalid(
                "sidecarConfig",
                "is empty; name a ConfigMap or leave it out".into(),
            );
        }
        if self.image.trim().is_empty() || self.image.chars().any(char::is_whitespace) {
            return invalid(
                "image",
                format!("{:?} is not an image reference", self.image),
            );
        }
        if !matches!(
            self.image_pull_policy.as_str(),
            "Always" | "IfNotPresent" | "Never"
        ) {
            return invalid(
                "imagePullPolicy",
                format!(
                    "{:?}: expected Always, IfNotPresent or Never",
                    self.image_pull_policy
                ),
            );
        }
        if self.binary.trim().is_empty() {
            return invalid("binary", "must not be empty".to_owned());
        }
        if self.proxy_port == 0 {
            return invalid("proxyPort", "must be between 1 and 65535".to_owned());
        }
        if self.metrics_port == 0 {
            return invalid("metricsPort", "must be between 1 and 65535".to_owned());
        }
        if self.proxy_port == self.metrics_port {
            return invalid("metricsPort", "must differ from proxyPort".to_owned());
        }
        for ns in &self.excluded_namespaces {
            if !is_dns_label(ns) {
                return invalid(
                    "excludedNamespaces",
                    format!("{ns:?} is not a namespace name (a DNS label)"),
                );
            }
        }
        for host in &self.no_proxy {
            if host.is_empty() || host.contains(',') || host.chars().any(char::is_whitespace) {
                return invalid(
                    "noProxy",
                    format!("{host:?}: one host, domain (.example.com) or CIDR per entry"),
                );
            }
        }
        if self.cluster_domain.is_empty() || !self.cluster_domain.split('.').all(is_dns_label) {
            return invalid(
                "clusterDomain",
                format!("{:?} is not a DNS domain", self.cluster_domain),
            );
        }
        for (field, key) in [
            ("actionPolicyKey", &self.action_policy_key),
            ("ossaManifestKey", &self.ossa_manifest_key),
        ] {
            if !is_config_map_key(key) {
                return invalid(
                    field,
                    format!("{key:?} is not a ConfigMap key (letters, digits, '-', '_', '.')"),
                );
            }
        }
        if let Some(name) = &self.default_action_policy
            && !is_dns_subdomain(name)
        {
            return invalid(
                "defaultActionPolicy",
                format!("{name:?} is not a ConfigMap name"),
            );
        }
        for (field, list) in [
            ("policyAuthors.users", &self.policy_authors.users),
            ("policyAuthors.groups", &self.policy_authors.groups),
        ] {
            if let Some(bad) = list
                .iter()
                .find(|n| n.trim().is_empty() || n.trim() != n.as_str())
            {
                return invalid(
                    field,
                    format!("{bad:?} is not a name: no empty entries, no surrounding spaces"),
                );
            }
        }
        if self.audit_spool_size.0.trim().is_empty() {
            return invalid("auditSpoolSize", "must not be empty".to_owned());
        }
        Ok(())
    }

    /// True when pods in `namespace` are never injected.
    pub fn excluded(&self, namespace: &str) -> bool {
        ALWAYS_EXCLUDED.contains(&namespace)
            || self.excluded_namespaces.iter().any(|n| n == namespace)
    }

    /// The `NO_PROXY` value agents get.
    pub fn no_proxy_value(&self) -> String {
        let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        if self.bypass_cluster_services {
            hosts.push(".svc".to_owned());
            hosts.push(format!(".svc.{}", self.cluster_domain));
        }
        for h in &self.no_proxy {
            if !hosts.contains(h) {
                hosts.push(h.clone());
            }
        }
        hosts.join(",")
    }
}

/// A DNS label (RFC 1123): what namespace names are.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A DNS subdomain (RFC 1123): what ConfigMap names are.
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// A ConfigMap data key.
pub fn is_config_map_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_unusable_values_are_refused_by_field() {
        InjectionConfig::default().validate().unwrap();
        type Breaker = fn(&mut InjectionConfig);
        let cases: [(Breaker, &str); 9] = [
            (|c| c.image = "two words".into(), "image"),
            (
                |c| c.image_pull_policy = "Sometimes".into(),
                "imagePullPolicy",
            ),
            (|c| c.proxy_port = 0, "proxyPort"),
            (|c| c.metrics_port = c.proxy_port, "metricsPort"),
            (
                |c| c.excluded_namespaces = vec!["Bad_NS".into()],
                "excludedNamespaces",
            ),
            (|c| c.no_proxy = vec!["a,b".into()], "noProxy"),
            (
                |c| c.cluster_domain = "cluster..local".into(),
                "clusterDomain",
            ),
            (|c| c.action_policy_key = "../etc".into(), "actionPolicyKey"),
            (
                |c| c.default_action_policy = Some("Not A Name".into()),
                "defaultActionPolicy",
            ),
        ];
        for (break_it, field) in cases {
            let mut c = InjectionConfig::default();
            break_it(&mut c);
            let err = c.validate().unwrap_err().to_string();
            assert!(err.starts_with(field), "{field}: {err}");
        }
    }

    #[test]
    fn no_proxy_keeps_loopback_and_adds_cluster_services_only_on_request() {
        let mut c = InjectionConfig {
            no_proxy: vec!["169.254.169.254".into(), "localhost".into()],
            ..InjectionConfig::default()
        };
        assert_eq!(
            c.no_proxy_value(),
            "localhost,127.0.0.1,::1,169.254.169.254"
        );
        c.bypass_cluster_services = true;
        c.cluster_domain = "corp.internal".into();
        assert_eq!(
            c.no_proxy_value(),
            "localhost,127.0.0.1,::1,.svc,.svc.corp.internal,169.254.169.254"
        );
        assert!(c.excluded("kube-system") && c.excluded("kube-public"));
        assert!(!c.excluded("agents"));
    }
}
