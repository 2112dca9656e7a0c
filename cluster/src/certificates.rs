//! Self-managed webhook certificates: a `kubernetes.io/tls` Secret holding
//! the CA and the serving pair (`ca.crt`, `ca.key`, `tls.crt`, `tls.key`),
//! created when missing and renewed before expiry by the Lease holder, who
//! also keeps the `caBundle` of the Mutating- and
//! ValidatingWebhookConfigurations in step. Every replica (leader or not)
//! installs the Secret's pair into its state directory with atomic writes;
//! the webhook's reloading resolver picks the files up without a restart.
//!
//! In `cert-manager` mode nothing here runs: the webhook serves the mounted
//! files and cert-manager's CA injector fills the `caBundle`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tollgate_certs::state::Action;
use tollgate_certs::{Lifetimes, ensure_serving, pem};

use crate::ClusterError;
use crate::lease::LeaderElector;

/// Who provides the serving certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CertificateMode {
    /// Tollgate creates, rotates and distributes it (Secret + Lease).
    #[default]
    SelfManaged,
    /// cert-manager does; Tollgate serves the mounted files.
    CertManager,
}

/// The `cluster.certificates` config section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertificateSettings {
    /// Self-managed or cert-manager.
    #[serde(default)]
    pub mode: CertificateMode,
    /// The Secret holding CA and serving pair.
    #[serde(default = "default_secret")]
    pub secret_name: String,
    /// The Service the webhook configurations point at; the certificate
    /// covers `NAME`, `NAME.NAMESPACE`, `NAME.NAMESPACE.svc` and
    /// `NAME.NAMESPACE.svc.cluster.local`.
    #[serde(default = "default_service")]
    pub service_name: String,
    /// MutatingWebhookConfigurations whose `caBundle` is kept in step.
    #[serde(default = "default_configurations")]
    pub mutating_webhook_configurations: Vec<String>,
    /// ValidatingWebhookConfigurations whose `caBundle` is kept in step.
    #[serde(default = "default_configurations")]
    pub validating_webhook_configurations: Vec<String>,
    /// The Lease writers coordinate through.
    #[serde(default = "default_lease")]
    pub lease_name: String,
    /// How long a Lease holder keeps it without renewing.
    #[serde(default = "default_lease_duration", with = "crate::duration")]
    pub lease_duration: Duration,
    /// How often the Secret and the `caBundle`s are checked.
    #[serde(default = "default_check_interval", with = "crate::duration")]
    pub check_interval: Duration,
    /// Validity of a new CA.
    #[serde(default = "default_ca_validity", with = "crate::duration")]
    pub ca_validity: Duration,
    /// Validity of a new serving certificate.
    #[serde(default = "default_serving_validity", with = "crate::duration")]
    pub serving_validity: Duration,
    /// Renew when a certificate expires within this window.
    #[serde(default = "default_renew_before", with = "crate::duration")]
    pub renew_before: Duration,
}

fn default_secret() -> String {
    "tollgate-webhook-tls".into()
}
fn default_service() -> String {
    "tollgate-webhook".into()
}
fn default_configurations() -> Vec<String> {
    vec!["tollgate".into()]
}
fn default_lease() -> String {
    "tollgate-webhook-certificates".into()
}
fn default_lease_duration() -> Duration {
    Duration::from_secs(15)
}
fn default_check_interval() -> Duration {
    Duration::from_secs(60)
}
fn default_ca_validity() -> Duration {
    Duration::from_secs(3650 * 86_400)
}
fn default_serving_validity() -> Duration {
    Duration::from_secs(365 * 86_400)
}
fn default_renew_before() -> Duration {
    Duration::from_secs(30 * 86_400)
}

impl Default for CertificateSettings {
    fn default() -> Self {
        CertificateSettings {
            mode: CertificateMode::default(),
            secret_name: default_secret(),
            service_name: default_service(),
            mutating_webhook_configurations: default_configurations(),
            validating_webhook_configurations: default_configurations(),
            lease_name: default_lease(),
            lease_duration: default_lease_duration(),
            check_interval: default_check_interval(),
            ca_validity: default_ca_validity(),
            serving_validity: default_serving_validity(),
            renew_before: default_renew_before(),
        }
    }
}

impl CertificateSettings {
    /// The DNS names the serving certificate covers in `namespace`.
    pub fn dns_names(&self, namespace: &str) -> Vec<String> {
        let s = &self.service_name;
        vec![
            format!("{s}.{namespace}.svc"),
            format!("{s}.{namespace}.svc.cluster.local"),
            format!("{s}.{namespace}"),
            s.clone(),
        ]
    }

    fn lifetimes(&self) -> Lifetimes {
        let d =
            |d: Duration| time::Duration::seconds(i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        Lifetimes {
            ca: d(self.ca_validity),
            serving: d(self.serving_validity),
            renew_before: d(self.renew_before),
        }
    }
}

/// The Secret's keys.
const KEYS: [&str; 4] = ["ca.crt", "ca.key", "tls.crt", "tls.key"];

/// The optional key holding what the `caBundle`s trust: the current CA and,
/// after a CA renewal, the previous one while it is still valid, so
/// replicas still serving a pair from the old CA stay trusted until they
/// install the new one.
const BUNDLE: &str = "ca-bundle.crt";

/// What one reconciliation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciled {
    /// Whether this replica held the Lease.
    pub leader: bool,
    /// Whether the Secret was created or renewed by this replica.
    pub wrote_secret: bool,
    /// Webhook configurations whose `caBundle` this replica patched.
    pub patched: Vec<String>,
    /// Whether the local files changed.
    pub installed: bool,
}

/// Keeps the certificate Secret, the local files and the `caBundle`s right.
pub struct CertificateManager {
    client: Client,
    settings: CertificateSettings,
    namespace: String,
    dir: PathBuf,
    elector: LeaderElector,
    ready: watch::Sender<bool>,
}

impl std::fmt::Debug for CertificateManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateManager")
            .field("namespace", &self.namespace)
            .field("secret", &self.settings.secret_name)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl CertificateManager {
    /// A manager for replica `identity` in `namespace`, installing files
    /// into `dir` (`ca.crt`, `tls.crt`, `tls.key`).
    pub fn new(
        client: Client,
        settings: CertificateSettings,
        namespace: &str,
        identity: &str,
        dir: &Path,
    ) -> CertificateManager {
        let elector = LeaderElector::new(
            client.clone(),
            namespace,
            &settings.lease_name,
            identity,
            settings.lease_duration,
        );
        CertificateManager {
            client,
            settings,
            namespace: namespace.to_owned(),
            dir: dir.to_owned(),
            elector,
            ready: watch::channel(false).0,
        }
    }

    /// `tls.crt` in the state directory.
    pub fn cert_path(&self) -> PathBuf {
        self.dir.join("tls.crt")
    }

    /// `tls.key` in the state directory.
    pub fn key_path(&self) -> PathBuf {
        self.dir.join("tls.key")
    }

    /// The leader elector (for status and shutdown).
    pub fn elector(&self) -> &LeaderElector {
        &self.elector
    }

    /// Whether a certificate is installed locally.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// A receiver that turns `true` once a certificate is installed.
    pub fn ready_receiver(&self) -> watch::Receiver<bool> {
        self.ready.subscribe()
    }

    /// One pass: take or renew the Lease, check the Secret (leader: create
    /// or renew it), install it locally, and (leader) fix `caBundle`s.
    pub async fn reconcile(&self) -> Result<Reconciled, ClusterError> {
        let leader = match self.elector.try_acquire_or_renew().await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "lease: cannot acquire or renew");
                false
            }
        };
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        let existing = secrets.get_opt(&self.settings.secret_name).await?;
        let names = self.settings.dns_names(&self.namespace);
        let scratch = tempfile::tempdir().map_err(|source| ClusterError::Io {
            path: "temporary directory".into(),
            source,
        })?;
        if let Some(secret) = &existing {
            for (key, value) in secret_data(secret).into_iter().filter(|(k, _)| k != BUNDLE) {
                pem::write_atomic(&scratch.path().join(&key), &value, key.ends_with(".key"))?;
            }
        }
        let state = ensure_serving(scratch.path(), &names, &self.settings.lifetimes())?;
        let good_as_is =
            state.ca_action == Action::Reused && state.serving_action == Action::Reused;
        let mut wrote_secret = false;
        let material: Option<BTreeMap<String, Vec<u8>>> = if good_as_is {
            existing.as_ref().map(secret_data)
        } else if leader {
            let mut data = BTreeMap::new();
            for key in KEYS {
                data.insert(key.to_owned(), pem::read(&scratch.path().join(key))?);
            }
            if let (Action::Renewed(_), Some(new_ca)) = (&state.ca_action, data.get("ca.crt"))
                && let Some(old_ca) = existing
                    .as_ref()
                    .map(secret_data)
                    .and_then(|d| d.get("ca.crt").cloned())
                && tollgate_certs::not_after(&old_ca)
                    .is_ok_and(|t| t > time::OffsetDateTime::now_utc())
            {
                let mut bundle = new_ca.clone();
                if !bundle.ends_with(b"\n") {
                    bundle.push(b'\n');
                }
                bundle.extend_from_slice(&old_ca);
                data.insert(BUNDLE.to_owned(), bundle);
            }
            let reason = match (&state.ca_action, &state.serving_action) {
                (Action::Renewed(r), _) | (_, Action::Renewed(r)) => r.clone(),
                _ => "missing".into(),
            };
            if self
                .write_secret(&secrets, existing.as_ref(), &data)
                .await?
            {
                tracing::info!(secret = %self.settings.secret_name, %reason, "wrote the webhook certificate Secret");
                wrote_secret = true;
                Some(data)
            } else {
                None
            }
        } else {
            // Not ours to fix; serve what the Secret has until the leader
            // renews it (a renewal window leaves weeks of validity).
            existing
                .as_ref()
                .map(secret_data)
                .filter(|d| KEYS.iter().all(|k| d.contains_key(*k)))
        };
        let Some(material) = material else {
            return Ok(Reconciled {
                leader,
                wrote_secret,
                patched: Vec::new(),
                installed: false,
            });
        };
        let installed = self.install(&material)?;
        let mut patched = Vec::new();
        if leader && let Some(ca) = material.get(BUNDLE).or_else(|| material.get("ca.crt")) {
            patched = self.patch_ca_bundles(ca).await;
        }
        self.ready.send_replace(true);
        Ok(Reconciled {
            leader,
            wrote_secret,
            patched,
            installed,
        })
    }

    /// Creates or updates (conditionally on its resource version) the
    /// Secret; `false` when another writer got there first.
    async fn write_secret(
        &self,
        api: &Api<Secret>,
        existing: Option<&Secret>,
        data: &BTreeMap<String, Vec<u8>>,
    ) -> Result<bool, ClusterError> {
        let data: BTreeMap<String, ByteString> = data
            .iter()
            .map(|(k, v)| (k.clone(), ByteString(v.clone())))
            .collect();
        let result = match existing {
            Some(current) => {
                let mut next = current.clone();
                next.data = Some(data);
                next.string_data = None;
                api.replace(&self.settings.secret_name, &PostParams::default(), &next)
                    .await
            }
            None => {
                let secret = Secret {
                    metadata: ObjectMeta {
                        name: Some(self.settings.secret_name.clone()),
                        namespace: Some(self.namespace.clone()),
                        labels: Some(BTreeMap::from([(
                            "app.kubernetes.io/managed-by".to_owned(),
                            "tollgate".to_owned(),
                        )])),
                        ..ObjectMeta::default()
                    },
                    type_: Some("kubernetes.io/tls".into()),
                    data: Some(data),
                    ..Secret::default()
                };
                api.create(&PostParams::default(), &secret).await
            }
        };
        match result {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes `ca.crt`, `tls.key`, `tls.crt` when they differ; returns
    /// whether anything changed.
    fn install(&self, material: &BTreeMap<String, Vec<u8>>) -> Result<bool, ClusterError> {
        std::fs::create_dir_all(&self.dir).map_err(|source| ClusterError::Io {
            path: self.dir.display().to_string(),
            source,
        })?;
        let mut changed = false;
        // The key before the certificate: a reload between the two writes
        // sees a mismatched pair, fails, and keeps the old one until the
        // certificate lands.
        for key in ["ca.crt", "tls.key", "tls.crt"] {
            let Some(value) = material.get(key) else {
                continue;
            };
            let path = self.dir.join(key);
            if std::fs::read(&path).ok().as_deref() != Some(value.as_slice()) {
                pem::write_atomic(&path, value, key.ends_with(".key"))?;
                changed = true;
            }
        }
        if changed {
            tracing::info!(dir = %self.dir.display(), "installed the webhook certificate from the Secret");
        }
        Ok(changed)
    }

    /// Sets every webhook's `caBundle` in the configured configurations;
    /// returns the names patched. Missing configurations are logged.
    async fn patch_ca_bundles(&self, ca: &[u8]) -> Vec<String> {
        let mut patched = Vec::new();
        let mutating: Api<MutatingWebhookConfiguration> = Api::all(self.client.clone());
        for name in &self.settings.mutating_webhook_configurations {
            match mutating.get_opt(name).await {
                Ok(Some(mut config)) => {
                    let mut changed = false;
                    for hook in config.webhooks.iter_mut().flatten() {
                        changed |= set_bundle(&mut hook.client_config.ca_bundle, ca);
                    }
                    if changed {
                        match mutating
                            .replace(name, &PostParams::default(), &config)
                            .await
                        {
                            Ok(_) => patched.push(format!("MutatingWebhookConfiguration/{name}")),
                            Err(e) => {
                                tracing::warn!(error = %e, configuration = %name, "cannot update caBundle (retrying)")
                            }
                        }
                    }
                }
                Ok(None) => {
                    tracing::warn!(configuration = %name, "MutatingWebhookConfiguration not found; caBundle not set")
                }
                Err(e) => {
                    tracing::warn!(error = %e, configuration = %name, "cannot read MutatingWebhookConfiguration")
                }
            }
        }
        let validating: Api<ValidatingWebhookConfiguration> = Api::all(self.client.clone());
        for name in &self.settings.validating_webhook_configurations {
            match validating.get_opt(name).await {
                Ok(Some(mut config)) => {
                    let mut changed = false;
                    for hook in config.webhooks.iter_mut().flatten() {
                        changed |= set_bundle(&mut hook.client_config.ca_bundle, ca);
                    }
                    if changed {
                        match validating
                            .replace(name, &PostParams::default(), &config)
                            .await
                        {
                            Ok(_) => patched.push(format!("ValidatingWebhookConfiguration/{name}")),
                            Err(e) => {
                                tracing::warn!(error = %e, configuration = %name, "cannot update caBundle (retrying)")
                            }
                        }
                    }
                }
                Ok(None) => {
                    tracing::warn!(configuration = %name, "ValidatingWebhookConfiguration not found; caBundle not set")
                }
                Err(e) => {
                    tracing::warn!(error = %e, configuration = %name, "cannot read ValidatingWebhookConfiguration")
                }
            }
        }
        patched
    }

    /// Reconciles forever: every third of the lease duration (so the
    /// leader renews in time), or `check_interval` if shorter.
    pub async fn run(self: std::sync::Arc<Self>) {
        let period = self
            .settings
            .check_interval
            .min(self.settings.lease_duration / 3)
            .max(Duration::from_millis(100));
        loop {
            if let Err(e) = self.reconcile().await {
                tracing::warn!(error = %e, "certificate reconciliation failed; retrying");
            }
            tokio::time::sleep(period).await;
        }
    }
}

fn set_bundle(slot: &mut Option<ByteString>, ca: &[u8]) -> bool {
    if slot.as_ref().is_some_and(|b| b.0 == ca) {
        return false;
    }
    *slot = Some(ByteString(ca.to_vec()));
    true
}

/// The Secret's data (and `stringData`, as a client may have written).
fn secret_data(secret: &Secret) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = secret
        .data
        .iter()
        .flatten()
        .filter(|(k, _)| KEYS.contains(&k.as_str()) || k.as_str() == BUNDLE)
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    for (k, v) in secret.string_data.iter().flatten() {
        if KEYS.contains(&k.as_str()) || k.as_str() == BUNDLE {
            out.insert(k.clone(), v.as_bytes().to_vec());
        }
    }
    out
}

/// base64 of a PEM, as a `caBundle` field holds it in YAML.
pub fn ca_bundle_base64(ca_pem: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(ca_pem)
}
