//! `tollgate sidecar`: the agent action proxy.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tollgate_policies::action::ActionPolicy;
use tollgate_policies::action::ossa::schema::{self, SchemaCheck};
use tollgate_policies::action::ossa::{AgentManifest, Baseline, Placement};
use tollgate_policies::action::spec::parse_duration;
use tollgate_sidecar::classify::Recognition;
use tollgate_sidecar::config::{self, env, parse_downward_api};
use tollgate_sidecar::recorder::JsonLinesRecorder;
use tollgate_sidecar::{AuditAck, Config, Identity, Sidecar, Timeouts};

/// Arguments of `tollgate sidecar`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The ActionPolicy file (YAML); reloaded when it changes.
    #[arg(
        long,
        env = "TOLLGATE_ACTION_POLICY",
        value_name = "FILE",
        required_unless_present = "ossa_manifest"
    )]
    policy: Option<PathBuf>,
    /// An OSSA agent manifest (kind: Agent); reloaded when it changes. Its
    /// declared MCP tools and LLM are a baseline every action must also
    /// pass; without --policy the baseline alone decides.
    #[arg(long, value_name = "FILE")]
    ossa_manifest: Option<PathBuf>,
    /// Check the policy file and exit (0 valid, 1 invalid, 2 a file cannot be read).
    #[arg(long)]
    check: bool,
    /// Forward-proxy (HTTP_PROXY/HTTPS_PROXY) and reverse-proxy listener.
    #[arg(long, default_value = config::DEFAULT_LISTEN, value_name = "ADDR")]
    listen: SocketAddr,
    /// Listener for /metrics, /healthz and /readyz.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// Record decisions in the tamper-evident audit journal in DIR (exporters and retention
    /// from --config's audit: section).
    #[arg(long, env = "TOLLGATE_AUDIT_DIR", value_name = "DIR")]
    audit_dir: Option<PathBuf>,
    /// Ed25519 signing key (PKCS#8 PEM) for the journal's checkpoints [default: generated
    /// into --state-dir].
    #[arg(long, value_name = "FILE", requires = "audit_dir")]
    audit_signing_key: Option<PathBuf>,
    /// Where a generated audit signing key is kept.
    #[arg(long, default_value = ".tollgate", value_name = "DIR")]
    state_dir: PathBuf,
    /// Config file (TollgateConfig); the sidecar reads its audit: section.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Without --audit-dir: write audit events as JSON lines to FILE ("-" is
    /// standard output).
    #[arg(long, default_value = "-", value_name = "FILE")]
    audit_log: PathBuf,
    /// Without --audit-dir: events queued for the writer before actions are
    /// denied (fail-closed).
    #[arg(long, default_value_t = tollgate_sidecar::recorder::DEFAULT_QUEUE, value_name = "N")]
    audit_queue: usize,
    /// When an allowed action proceeds: once its event is `accepted` by the
    /// recorder (a refusal still denies), or once it is `durable`.
    #[arg(long, default_value = "accepted", value_parser = ["accepted", "durable"])]
    audit_ack: String,
    /// Intercept TLS with leaves minted from the per-pod CA in DIR
    /// (ca.crt, ca.key; generated if absent).
    #[arg(long, value_name = "DIR")]
    intercept_ca: Option<PathBuf>,
    /// Also write the interception CA certificate to FILE, for the agent to
    /// trust (SSL_CERT_FILE, REQUESTS_CA_BUNDLE, NODE_EXTRA_CA_CERTS).
    #[arg(long, value_name = "FILE", requires = "intercept_ca")]
    intercept_ca_cert_out: Option<PathBuf>,
    /// Write the agents' trust bundle to FILE (atomically): the system
    /// roots, --upstream-ca and the interception CA, for SSL_CERT_FILE,
    /// REQUESTS_CA_BUNDLE and NODE_EXTRA_CA_CERTS.
    #[arg(long, value_name = "FILE", requires = "intercept_ca")]
    trust_bundle_out: Option<PathBuf>,
    /// Extra CA bundle (PEM) trusted for upstream TLS; repeatable.
    #[arg(long, value_name = "FILE")]
    upstream_ca: Vec<PathBuf>,
    /// Do not trust the system roots for upstream TLS (only --upstream-ca).
    #[arg(long)]
    no_system_roots: bool,
    /// The pod's name, for audit events.
    #[arg(long, env = env::POD_NAME)]
    pod_name: Option<String>,
    /// The pod's namespace, for audit events.
    #[arg(long, env = env::POD_NAMESPACE)]
    pod_namespace: Option<String>,
    /// The pod's ServiceAccount, for audit events.
    #[arg(long, env = env::SERVICE_ACCOUNT)]
    service_account: Option<String>,
    /// The agent's name, for audit events.
    #[arg(long, env = env::AGENT_NAME)]
    agent_name: Option<String>,
    /// Downward-API file of the pod's annotations (deployscope.dev/* ownership).
    #[arg(long, env = env::POD_ANNOTATIONS, value_name = "FILE")]
    pod_annotations: Option<PathBuf>,
    /// Downward-API file of the pod's labels.
    #[arg(long, env = env::POD_LABELS, value_name = "FILE")]
    pod_labels: Option<PathBuf>,
    /// The in-cluster API server address, recognised as Kubernetes traffic.
    #[arg(long, env = env::KUBERNETES_SERVICE_HOST, hide = true)]
    kubernetes_service_host: Option<String>,
    /// The in-cluster API server port.
    #[arg(long, env = env::KUBERNETES_SERVICE_PORT, hide = true)]
    kubernetes_service_port: Option<u16>,
    /// Time for a client to send request headers.
    #[arg(long, default_value = "10s", value_parser = duration)]
    header_timeout: Duration,
    /// Time for a client to send an inspected request body.
    #[arg(long, default_value = "30s", value_parser = duration)]
    body_timeout: Duration,
    /// Time to connect to an upstream.
    #[arg(long, default_value = "5s", value_parser = duration)]
    connect_timeout: Duration,
    /// Time for an upstream to send response headers.
    #[arg(long, default_value = "120s", value_parser = duration)]
    upstream_timeout: Duration,
    /// Time for a TLS handshake (interception, ClientHello of a tunnel).
    #[arg(long, default_value = "10s", value_parser = duration)]
    tls_handshake_timeout: Duration,
    /// Time for open connections to finish at shutdown.
    #[arg(long, default_value = "10s", value_parser = duration)]
    shutdown_grace: Duration,
    /// Re-read the policy file at least this often.
    #[arg(long, default_value = "10s", value_parser = duration)]
    policy_poll: Duration,
    /// Threads serving requests, each with its own event loop and upstream
    /// connection pool.
    #[arg(long, default_value_t = 1, value_name = "N")]
    workers: usize,
}

/// `--check`: validates the policy file and the OSSA manifest. For the
/// manifest it says, separately, whether it is valid under the official
/// schema of its version and whether the sidecar can enforce it; only the
/// second decides the exit code (the sidecar loads what it can enforce).
fn check(args: &Args) -> anyhow::Result<ExitCode> {
    let mut ok = true;
    let mut policy = None;
    if let Some(path) = &args.policy {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        match ActionPolicy::parse(&text, &path.display().to_string()) {
            Ok(p) => {
                println!(
                    "{}: valid action policy {:?}: {} routes, {} rules",
                    path.display(),
                    p.name(),
                    p.routes().len(),
                    p.rule_count()
                );
                for w in p.warnings() {
                    eprintln!("warning: {}: {w}", path.display());
                }
                policy = Some(p);
            }
            Err(e) => {
                eprintln!("{e}");
                ok = false;
            }
        }
    }
    if let Some(path) = &args.ossa_manifest {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let file = path.display().to_string();
        match schema::check_manifest(&text, &file) {
            Ok(SchemaCheck::Valid { schema }) => {
                println!("{file}: schema: valid under the OSSA {schema} schema");
            }
            Ok(SchemaCheck::Invalid { schema, errors }) => {
                println!("{file}: schema: NOT valid under the OSSA {schema} schema:");
                for e in errors {
                    println!("  {e}");
                }
            }
            Ok(SchemaCheck::NoSchema) => {
                println!("{file}: schema: no official OSSA schema for its apiVersion");
            }
            Err(e) => println!("{file}: schema: not checked: {e}"),
        }
        match AgentManifest::parse(&text, &file) {
            Ok(m) => {
                let standalone = policy.is_none() && args.policy.is_none();
                let mut placement = Placement::new(args.pod_namespace.clone());
                if let Some(p) = &policy {
                    placement = placement.with_routes_of(p);
                }
                let built = if standalone {
                    Baseline::standalone(&m, &placement)
                } else {
                    Baseline::constraint(&m, &placement)
                };
                match built {
                    Ok(b) => {
                        println!(
                            "{file}: enforceable: OSSA manifest of agent {:?}: baseline of {} rules ({})",
                            m.name(),
                            b.rule_count(),
                            if standalone {
                                "decides alone"
                            } else {
                                "every action must also pass the policy"
                            }
                        );
                        if let Ok(plan) = Baseline::plan(&m, &placement, standalone) {
                            for note in plan.notes {
                                println!("  note: {note}");
                            }
                        }
                    }
                    Err(e) => {
                        eprintln!("{file}: not enforceable: {e}");
                        ok = false;
                    }
                }
            }
            Err(e) => {
                eprintln!("not enforceable: {e}");
                ok = false;
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn duration(s: &str) -> Result<Duration, String> {
    parse_duration(s)
}

/// Runs `tollgate sidecar`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    if args.check {
        return check(&args);
    }
    let file_config = crate::config::TollgateConfig::load_or_builtin(args.config.as_deref())?;
    let config = config_from(&args)?;
    // Each worker is a thread with a single-threaded runtime: no work
    // stealing and no cross-thread wake-ups on the request path.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(8)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(async {
        let shutdown = tokio_util::sync::CancellationToken::new();
        match &args.audit_dir {
            Some(dir) => {
                let (recorder, handle) = tollgate_audit::start(tollgate_audit::AuditOptions {
                    dir: dir.clone(),
                    state_dir: args.state_dir.clone(),
                    signing_key: args.audit_signing_key.clone(),
                    config: file_config.audit.clone(),
                })
                .await
                .with_context(|| format!("cannot start the audit journal in {}", dir.display()))?;
                let bound = Sidecar::bind_with_metrics(config, recorder, |registry| {
                    handle.register_metrics(registry)
                })
                .await;
                let served = match bound {
                    Ok(sidecar) => {
                        tokio::spawn(signals(shutdown.clone()));
                        sidecar.serve(shutdown).await;
                        Ok(())
                    }
                    Err(e) => Err(anyhow::Error::from(e)),
                };
                // Connections are drained: close the journal with a final
                // signed checkpoint.
                handle
                    .shutdown()
                    .await
                    .context("audit journal did not close cleanly")?;
                served
            }
            None => {
                let redactor =
                    tollgate_audit::redact::Redactor::from_settings(&file_config.audit.redaction)
                        .context("invalid audit.redaction.patterns")?;
                let recorder = Arc::new(
                    JsonLinesRecorder::open(&args.audit_log, args.audit_queue, Arc::new(redactor))
                        .with_context(|| {
                            format!("cannot open the audit log {}", args.audit_log.display())
                        })?,
                );
                let bound = Sidecar::bind(config, recorder.clone()).await;
                let served = match bound {
                    Ok(sidecar) => {
                        tokio::spawn(signals(shutdown.clone()));
                        sidecar.serve(shutdown).await;
                        Ok(())
                    }
                    Err(e) => Err(anyhow::Error::from(e)),
                };
                recorder.close();
                served
            }
        }
    });
    result?;
    Ok(ExitCode::SUCCESS)
}

fn config_from(args: &Args) -> anyhow::Result<Config> {
    let read_map = |path: &Option<PathBuf>| -> anyhow::Result<_> {
        Ok(match path {
            Some(p) => parse_downward_api(
                &std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read {}", p.display()))?,
            ),
            None => Default::default(),
        })
    };
    let mut config = Config::new(PathBuf::new());
    config.policy = args.policy.clone();
    config.ossa_manifest = args.ossa_manifest.clone();
    config.trust_bundle_out = args.trust_bundle_out.clone();
    config.listen = args.listen;
    config.metrics_listen = args.metrics_listen;
    config.policy_poll = args.policy_poll;
    config.intercept_ca = args.intercept_ca.clone();
    config.intercept_ca_cert_out = args.intercept_ca_cert_out.clone();
    config.upstream_ca = args.upstream_ca.clone();
    config.system_roots = !args.no_system_roots;
    config.audit_ack = if args.audit_ack == "durable" {
        AuditAck::Durable
    } else {
        AuditAck::Accepted
    };
    config.identity = Identity {
        pod: args.pod_name.clone(),
        namespace: args.pod_namespace.clone(),
        service_account: args.service_account.clone(),
        agent: args.agent_name.clone(),
        annotations: read_map(&args.pod_annotations)?,
        labels: read_map(&args.pod_labels)?,
    };
    config.timeouts = Timeouts {
        header: args.header_timeout,
        body: args.body_timeout,
        connect: args.connect_timeout,
        upstream: args.upstream_timeout,
        tls_handshake: args.tls_handshake_timeout,
        shutdown_grace: args.shutdown_grace,
    };
    config.workers = args.workers.max(1);
    config.recognition = Recognition {
        kubernetes_hosts: args
            .kubernetes_service_host
            .iter()
            .map(|h| (h.to_ascii_lowercase(), args.kubernetes_service_port))
            .collect(),
    };
    Ok(config)
}

/// Cancels `token` on SIGTERM or SIGINT.
async fn signals(token: tokio_util::sync::CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                token.cancel();
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("shutting down");
    token.cancel();
}
