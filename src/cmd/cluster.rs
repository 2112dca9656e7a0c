//! `tollgate crd` and the in-cluster side of `tollgate webhook --in-cluster`:
//! the kube client (in-cluster service account or `KUBECONFIG`), the
//! namespace reflector feeding the engine's namespace lookups, the
//! self-managed certificate (Secret + Lease + caBundle) served from hot-
//! reloaded files, cluster-held Gatekeeper constraints and the
//! `TollgatePolicy`, and the `/readyz` gate (first namespace list and a
//! certificate).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tollgate_cluster::ClusterMetrics;
use tollgate_cluster::background::{self, AuditMetrics, Background};
use tollgate_cluster::{CertificateManager, CertificateMode, ClusterPolicies, NamespaceReflector};
use tollgate_policies::NamespaceSource;
use tollgate_policies::config::PolicyConfig;
use tollgate_policies::engine::{Engine, Snapshot};
use tollgate_policies::gatekeeper::{ConstraintSet, ConstraintStore, LoadOptions};
use tollgate_webhook::Webhook;

use crate::config::TollgateConfig;

/// `tollgate crd`: the TollgatePolicy CRD, generated from the Rust type.
pub fn print_crd() -> anyhow::Result<ExitCode> {
    let yaml = tollgate_cluster::crd::crd_yaml().context("cannot render the CRD")?;
    print!("{yaml}");
    Ok(ExitCode::SUCCESS)
}

/// The running in-cluster components, to attach to the webhook.
pub struct InCluster {
    reflector: NamespaceReflector,
    certificate: Option<Arc<CertificateManager>>,
    policies: ClusterPolicies,
    audit: Option<Arc<AuditMetrics>>,
}

impl InCluster {
    /// The certificate manager, when this replica manages certificates:
    /// release its Lease at shutdown so the next leader need not wait for
    /// it to expire.
    pub fn certificate(&self) -> Option<Arc<CertificateManager>> {
        self.certificate.clone()
    }

    /// Adds the `/readyz` gate (first namespace list, certificate) and the
    /// `tollgate_cluster_*` metrics. Call right after `Webhook::new`.
    pub fn attach(self, webhook: Webhook) -> Webhook {
        let metrics = ClusterMetrics {
            reflector: Some(self.reflector.clone()),
            policies: Some(self.policies),
            certificates: self.certificate.clone(),
        };
        let reflector = self.reflector;
        let certificate = self.certificate;
        let webhook = match self.audit {
            Some(audit) => webhook.collector(audit),
            None => webhook,
        };
        webhook
            .collector(Arc::new(metrics))
            .readiness(Arc::new(move || {
                if !reflector.is_ready() {
                    return Err("waiting for the first namespace list".into());
                }
                if certificate.as_ref().is_some_and(|c| !c.is_ready()) {
                    return Err("waiting for the certificate".into());
                }
                Ok(())
            }))
    }
}

/// Starts everything `--in-cluster` turns on. Adjusts `config.webhook` to
/// serve the cluster-managed certificate, swaps the engine's snapshot for
/// one reading live namespaces and cluster constraints, and returns the
/// components to attach. Waits until a certificate is installed (self-managed
/// mode), since the webhook cannot serve without one.
pub async fn start(
    config: &mut TollgateConfig,
    engine: &Arc<Engine>,
    constraint_paths: &[PathBuf],
) -> anyhow::Result<InCluster> {
    let settings = config.cluster.clone();
    let client = tollgate_cluster::client().await.context(
        "--in-cluster: no Kubernetes client configuration (in-cluster service account or KUBECONFIG)",
    )?;
    let namespace = settings.resolved_namespace();
    let identity = settings.resolved_identity();

    let (reflector, _) = NamespaceReflector::spawn(client.clone(), settings.namespaces.clone());

    let certificate = match settings.certificates.mode {
        CertificateMode::CertManager => {
            if config.webhook.tls.cert_file.is_none() {
                anyhow::bail!(
                    "cluster.certificates.mode cert-manager: set webhook.tls.certFile and keyFile to the mounted Secret's files"
                );
            }
            None
        }
        CertificateMode::SelfManaged => {
            let dir = config.webhook.state_dir.join("cluster-tls");
            let manager = Arc::new(CertificateManager::new(
                client.clone(),
                settings.certificates.clone(),
                &namespace,
                &identity,
                &dir,
            ));
            let mut announced = false;
            loop {
                match manager.reconcile().await {
                    Ok(_) if manager.is_ready() => break,
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "certificate Secret not usable yet"),
                }
                if !announced {
                    println!(
                        "tollgate webhook: waiting for the certificate Secret {namespace}/{} (written by the Lease holder)",
                        settings.certificates.secret_name
                    );
                    announced = true;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            config.webhook.tls.cert_file = Some(manager.cert_path());
            config.webhook.tls.key_file = Some(manager.key_path());
            tokio::spawn(Arc::clone(&manager).run());
            Some(manager)
        }
    };

    // Constraints: the cluster's, plus any from files (read once here).
    let extra = crate::constraints::read_sources(constraint_paths)?;
    let store = Arc::new(ConstraintStore::new(
        ConstraintSet::load(&extra, LoadOptions::default())
            .map_err(|e| anyhow::anyhow!("constraints refused:\n{e}"))?,
    ));
    let policies = ClusterPolicies::spawn(
        client.clone(),
        &settings.policies,
        Arc::clone(&store),
        LoadOptions::default(),
        extra,
    );
    let namespaces: Arc<dyn NamespaceSource> = Arc::new(reflector.clone());
    // Every snapshot, including those rebuilt from a TollgatePolicy,
    // injects the sidecar and checks for bypasses, as outside a cluster.
    let injector = Arc::new(tollgate_webhook::Injector::new(config.injection.clone()));
    let build = {
        let store = Arc::clone(&store);
        move |policy: &PolicyConfig| {
            Snapshot::builder(policy)
                .namespaces(Arc::clone(&namespaces))
                .constraints(Arc::clone(&store))
                .evaluator(Arc::clone(&injector) as Arc<dyn tollgate_policies::engine::Evaluator>)
                .build()
        }
    };
    engine.replace(build(&config.policy));
    // Background audit: PolicyReports and the agent-readiness score, from
    // the replica holding its Lease.
    let audit = if settings.background_audit.enabled {
        settings
            .background_audit
            .validate()
            .map_err(|e| anyhow::anyhow!("cluster.{e}"))?;
        let metrics = Arc::new(AuditMetrics::new());
        let background = Background {
            client: client.clone(),
            engine: Arc::clone(engine),
            ownership: config.policy.ownership.clone(),
            settings: settings.background_audit.clone(),
            metrics: Arc::clone(&metrics),
            leader: Some(background::leadership(
                client.clone(),
                &namespace,
                &settings.certificates.lease_name,
                &identity,
                match settings.certificates.mode {
                    CertificateMode::SelfManaged => background::Election::Follow,
                    CertificateMode::CertManager => background::Election::Elect,
                },
            )),
        };
        tokio::spawn(background::run(background, std::future::pending()));
        Some(metrics)
    } else {
        None
    };
    let mut updates = policies.tollgate_policy();
    let file_policy = config.policy.clone();
    let engine = Arc::clone(engine);
    tokio::spawn(async move {
        while updates.changed().await.is_ok() {
            let policy = updates.borrow_and_update().clone();
            let from_cluster = policy.is_some();
            engine.replace(build(policy.as_ref().unwrap_or(&file_policy)));
            tracing::info!(from_cluster, "policy configuration applied");
        }
    });
    println!(
        "  in-cluster: namespace {namespace}, identity {identity}; live namespaces, {} certificates, cluster policies{}",
        match settings.certificates.mode {
            CertificateMode::SelfManaged => "self-managed",
            CertificateMode::CertManager => "cert-manager",
        },
        if settings.background_audit.enabled {
            format!(
                ", background audit every {}s",
                settings.background_audit.interval_seconds
            )
        } else {
            String::new()
        }
    );
    Ok(InCluster {
        reflector,
        certificate,
        policies,
        audit,
    })
}
