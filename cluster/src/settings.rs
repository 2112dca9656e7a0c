//! The `cluster:` section of the config file (used with
//! `tollgate webhook --in-cluster`).

use serde::{Deserialize, Serialize};

use crate::{CertificateSettings, NamespaceSettings, PolicySettings};

/// Where a pod's own namespace is mounted.
const SERVICE_ACCOUNT_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// The `cluster:` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterSettings {
    /// Tollgate's own namespace (certificate Secret, Lease). Default:
    /// `$POD_NAMESPACE`, then the service account's namespace, then
    /// `tollgate`.
    #[serde(default)]
    pub namespace: Option<String>,
    /// This replica's identity in the Lease. Default: `$POD_NAME`, then
    /// `$HOSTNAME`, then a random name.
    #[serde(default)]
    pub identity: Option<String>,
    /// The namespace reflector.
    #[serde(default)]
    pub namespaces: NamespaceSettings,
    /// Webhook certificates.
    #[serde(default)]
    pub certificates: CertificateSettings,
    /// Policies held in the cluster.
    #[serde(default)]
    pub policies: PolicySettings,
    /// Background audit: PolicyReports and the agent-readiness score.
    #[serde(default)]
    pub background_audit: crate::background::BackgroundSettings,
}

impl ClusterSettings {
    /// The namespace Tollgate runs in.
    pub fn resolved_namespace(&self) -> String {
        if let Some(ns) = self.namespace.clone().filter(|n| !n.is_empty()) {
            return ns;
        }
        if let Ok(ns) = std::env::var("POD_NAMESPACE")
            && !ns.is_empty()
        {
            return ns;
        }
        if let Ok(ns) = std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE)
            && !ns.trim().is_empty()
        {
            return ns.trim().to_owned();
        }
        "tollgate".into()
    }

    /// This replica's Lease identity.
    pub fn resolved_identity(&self) -> String {
        if let Some(id) = self.identity.clone().filter(|n| !n.is_empty()) {
            return id;
        }
        for var in ["POD_NAME", "HOSTNAME"] {
            if let Ok(v) = std::env::var(var)
                && !v.is_empty()
            {
                return v;
            }
        }
        format!("tollgate-{}", std::process::id())
    }
}

/// A kube client: the in-cluster service account when running in a pod,
/// otherwise `KUBECONFIG` / `~/.kube/config`.
pub async fn client() -> Result<kube::Client, crate::ClusterError> {
    kube::Client::try_default()
        .await
        .map_err(|e| crate::ClusterError::Config(e.to_string()))
}
