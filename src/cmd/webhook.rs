//! `tollgate webhook`: serve the validating and mutating admission webhook.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use base64::Engine as _;
use tollgate_policies::config::PolicyConfig;
use tollgate_policies::engine::{Engine, Snapshot};
use tollgate_webhook::tls::CertificateSource;
use tollgate_webhook::{Bound, Webhook, settings};

use crate::config::TollgateConfig;

/// Arguments of `tollgate webhook`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// HTTPS address for POST /validate and /mutate [default: 127.0.0.1:8443].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Plain-HTTP address for /metrics, /healthz, /readyz [default: 127.0.0.1:9090].
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Directory of the generated CA and serving certificate [default: ./.tollgate].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Config file (apiVersion: tollgate.dev/v1alpha1, kind: TollgateConfig).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Serve this certificate (PEM chain) instead of a generated one; reloaded when it changes.
    #[arg(long, value_name = "FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// The private key of --tls-cert-file.
    #[arg(long, value_name = "FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,
    /// Extra DNS name for the generated certificate (the Service name); repeatable.
    #[arg(long = "dns", value_name = "NAME")]
    pub dns: Vec<String>,
    /// How long in-flight requests may finish after SIGTERM, e.g. 20s [default: 20s].
    #[arg(long, value_name = "DURATION", value_parser = settings::parse_duration)]
    pub shutdown_grace: Option<std::time::Duration>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Record every admission decision in the tamper-evident audit journal in DIR (exporters
    /// and retention come from the config file's audit: section).
    #[arg(long, value_name = "DIR")]
    pub audit_dir: Option<PathBuf>,
    /// Ed25519 signing key (PKCS#8 PEM) for the journal's checkpoints [default: generated
    /// into the state directory].
    #[arg(long, value_name = "FILE", requires = "audit_dir")]
    pub audit_signing_key: Option<PathBuf>,
    /// Gatekeeper ConstraintTemplates and constraints (file or directory); repeatable. Added
    /// to policy.constraints.paths; reloaded when the files change.
    #[arg(long, value_name = "FILE|DIR")]
    pub constraints: Vec<PathBuf>,
    /// How often the constraint files are checked for changes.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = settings::parse_duration)]
    pub constraints_poll: std::time::Duration,
    /// Run against the cluster (in-cluster service account or KUBECONFIG): live namespaces,
    /// self-managed certificates, cluster policies (config section cluster:).
    #[arg(long)]
    pub in_cluster: bool,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per event.
    Json,
}

/// Runs `tollgate webhook`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    init_logging(args.log_format);
    let mut config = TollgateConfig::load_or_builtin(args.config.as_deref())?;
    apply_flags(&mut config.webhook, &args);
    config
        .webhook
        .validate()
        .context("invalid webhook settings")?;
    let constraint_paths = config.constraint_paths(&args.constraints);
    let store = crate::constraints::load(&constraint_paths)?;
    let injector = Arc::new(tollgate_webhook::Injector::new(config.injection.clone()));
    let mut builder = Snapshot::builder(&config.policy).evaluator(injector);
    if let Some(store) = &store {
        builder = builder.constraints(Arc::clone(store));
    }
    let engine = Arc::new(Engine::new(builder.build()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let in_cluster = match args.in_cluster {
            true => Some(super::cluster::start(&mut config, &engine, &constraint_paths).await?),
            false => None,
        };
        let mut webhook = Webhook::new(config.webhook.clone(), engine);
        let mut certificate = None;
        if let Some(in_cluster) = in_cluster {
            certificate = in_cluster.certificate();
            webhook = in_cluster.attach(webhook);
        }
        let mut audit = None;
        if let Some(dir) = &args.audit_dir {
            let (recorder, handle) = tollgate_audit::start(tollgate_audit::AuditOptions {
                dir: dir.clone(),
                state_dir: config.webhook.state_dir.clone(),
                signing_key: args.audit_signing_key.clone(),
                config: config.audit.clone(),
            })
            .await
            .with_context(|| format!("cannot start the audit journal in {}", dir.display()))?;
            webhook = webhook
                .register_metrics(|registry| handle.register_metrics(registry))
                .recorder(recorder);
            audit = Some(handle);
        }
        let bound = webhook.bind().await.context("cannot start the webhook")?;
        print_banner(&bound, &config.policy);
        if let Some(dir) = &args.audit_dir {
            println!(
                "  audit journal: {} (verify with: tollgate audit verify {})",
                dir.display(),
                dir.display()
            );
        }
        if args.in_cluster && !constraint_paths.is_empty() {
            // In a cluster the files join the cluster's templates and
            // constraints in the cluster's store; they are read at start.
            println!(
                "  Gatekeeper constraints from {} (read at start, with the cluster's)",
                constraint_paths
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        } else if let Some(store) = &store {
            println!(
                "  Gatekeeper constraints: {} from {} (reloaded when they change)",
                store.current().constraints().len(),
                constraint_paths
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            tokio::spawn(watch_constraints(
                Arc::clone(store),
                constraint_paths,
                args.constraints_poll,
            ));
        }
        let served = bound
            .serve(tollgate_webhook::shutdown_signal())
            .await
            .context("webhook failed");
        // Hand the certificate Lease over now rather than at its expiry.
        if let Some(certificate) = certificate {
            certificate.elector().release().await;
        }
        // Requests are drained: close the journal with a final signed
        // checkpoint, even when serving failed.
        if let Some(handle) = audit {
            handle
                .shutdown()
                .await
                .context("audit journal did not close cleanly")?;
        }
        served?;
        println!("tollgate webhook: stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// Reloads the constraints when their files change; a set that fails to
/// load is logged and the active one stays.
async fn watch_constraints(
    store: Arc<tollgate_policies::gatekeeper::ConstraintStore>,
    paths: Vec<PathBuf>,
    every: std::time::Duration,
) {
    let mut seen = crate::constraints::fingerprint(&paths);
    let mut ticks = tokio::time::interval(every.max(std::time::Duration::from_millis(50)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let now = crate::constraints::fingerprint(&paths);
        if now == seen {
            continue;
        }
        seen = now;
        let (store, paths) = (Arc::clone(&store), paths.clone());
        let result =
            tokio::task::spawn_blocking(move || crate::constraints::reload(&store, &paths)).await;
        match result {
            Ok(Ok(n)) => tracing::info!(constraints = n, "Gatekeeper constraints reloaded"),
            Ok(Err(e)) => tracing::error!("{e:#}"),
            Err(e) => tracing::error!("constraint reload failed: {e}"),
        }
    }
}

/// Logs to stderr (stdout carries the banner); `RUST_LOG` refines the
/// default `info` filter.
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

fn apply_flags(webhook: &mut tollgate_webhook::Settings, args: &Args) {
    if let Some(addr) = args.listen {
        webhook.listen = addr;
    }
    if let Some(addr) = args.metrics_listen {
        webhook.metrics_listen = addr;
    }
    if let Some(dir) = &args.state_dir {
        webhook.state_dir = dir.clone();
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert_file, &args.tls_key_file) {
        webhook.tls.cert_file = Some(cert.clone());
        webhook.tls.key_file = Some(key.clone());
    }
    for name in &args.dns {
        if !webhook.tls.dns_names.contains(name) {
            webhook.tls.dns_names.push(name.clone());
        }
    }
    if let Some(grace) = args.shutdown_grace {
        webhook.shutdown_grace = grace;
    }
}

/// What a person needs to use the webhook right away.
fn print_banner(bound: &Bound, policy: &PolicyConfig) {
    let https = bound.local_addr();
    let metrics = bound.metrics_addr();
    println!("tollgate webhook: serving admission reviews");
    println!("  https://{https}/validate and /mutate (AdmissionReview admission.k8s.io/v1)");
    println!("  http://{metrics}/metrics, /healthz, /readyz");
    let tls = bound.tls();
    match &tls.source {
        CertificateSource::Files => {
            println!(
                "  certificate: {} and {} (reloaded when they change)",
                tls.resolver.cert_path().display(),
                tls.resolver.key_path().display()
            );
        }
        CertificateSource::Generated(state) => {
            let action = |a: &tollgate_certs::state::Action| match a {
                tollgate_certs::state::Action::Reused => "reused".to_owned(),
                tollgate_certs::state::Action::Generated => "generated".to_owned(),
                tollgate_certs::state::Action::Renewed(why) => format!("renewed: {why}"),
            };
            println!(
                "  CA: {} ({})",
                state.ca_cert.display(),
                action(&state.ca_action)
            );
            println!(
                "  serving certificate: {} and {} ({}; valid until {})",
                state.cert.display(),
                state.key.display(),
                action(&state.serving_action),
                state.not_after.date()
            );
            println!(
                "  caBundle (base64 of the CA, for the webhook configurations):\n    {}",
                base64::engine::general_purpose::STANDARD.encode(state.ca_pem.as_bytes())
            );
            println!(
                "  try: curl --cacert {} -H 'Content-Type: application/json' --data @examples/admission/deployment-privileged.json https://{https}/validate",
                state.ca_cert.display()
            );
        }
    }
    let ps = &policy.pod_security;
    if ps.enabled {
        println!(
            "  policy: Pod Security enforce {}:{}, warn {}:{}, audit {}:{}; exempt namespaces: {}",
            ps.enforce.level,
            ps.enforce.version,
            ps.warn.level,
            ps.warn.version,
            ps.audit.level,
            ps.audit.version,
            if ps.exemptions.namespaces.is_empty() {
                "none".to_owned()
            } else {
                ps.exemptions.namespaces.join(", ")
            }
        );
    } else {
        println!("  policy: Pod Security off");
    }
    let own = &policy.ownership;
    if own.enabled {
        println!(
            "  policy: ownership annotations required: {} ({}); compliance profiles by default: {} (namespace labels {}<profile>: {})",
            own.required
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            own.action.as_str(),
            if policy.compliance.profiles.is_empty() {
                "none".to_owned()
            } else {
                policy
                    .compliance
                    .profiles
                    .iter()
                    .map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            tollgate_policies::compliance::PROFILE_LABEL_PREFIX,
            tollgate_policies::compliance::LABEL_MODES.join("|")
        );
    }
    println!("  stop with Ctrl-C or SIGTERM (in-flight requests are drained)");
}
