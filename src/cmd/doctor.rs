//! `tollgate doctor`: the agent-readiness score of a cluster (live, through
//! the Kubernetes API) or of manifests (`-f`, offline, like `tollgate
//! check`), per namespace and overall, with the ownership keys most often
//! missing, the compliance controls failing, and the next steps.
//!
//! Exit codes: 0 when the score meets `--min-score` (or none is given, or
//! nothing is scored), 1 when it is below, 2 when an input cannot be read
//! or the cluster cannot be listed (unreachable, no permission). Policy
//! violations alone do not change the exit code: `tollgate check` is the
//! gate for those.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use tollgate_cluster::background::{self, Policies};
use tollgate_cluster::doctor;
use tollgate_cluster::scan::{Scan, Scanner};
use tollgate_policies::engine::offline;
use tollgate_policies::engine::{Options, Snapshot};
use tollgate_policies::gatekeeper::ConstraintStore;
use tollgate_policies::namespace::NamespaceInfo;
use tollgate_policies::ownership::OwnershipConfig;
use tollgate_policies::{NamespaceSource, StaticNamespaces};

use crate::config::TollgateConfig;

/// Arguments of `tollgate doctor`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Score these manifests (file, directory searched recursively, or -
    /// for stdin; repeatable) instead of a cluster.
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILE|DIR|-",
        conflicts_with = "kubeconfig"
    )]
    pub files: Vec<String>,
    /// Kubeconfig to use (its current context); default: in-cluster
    /// configuration, else KUBECONFIG or ~/.kube/config.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Config file (its policy: section; namespaces listed there supply
    /// labels and annotations offline).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Gatekeeper ConstraintTemplates and constraints (file or directory);
    /// repeatable. Added to the config file's policy.constraints.paths.
    #[arg(long, value_name = "PATH")]
    pub constraints: Vec<PathBuf>,
    /// Namespace of manifest objects that do not name one.
    #[arg(long, value_name = "NAMESPACE", default_value = "default")]
    pub namespace: String,
    /// Exit 1 when the cluster score is below this (0..1, or a percentage
    /// such as 80%).
    #[arg(long, value_name = "SCORE", value_parser = parse_score)]
    pub min_score: Option<f64>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: Output,
    /// Objects per list request (live).
    #[arg(long, value_name = "N", default_value_t = 500)]
    pub page_size: u32,
}

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// A table and next steps.
    Text,
    /// The `DoctorReport` document.
    Json,
}

fn parse_score(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let (number, scale) = match t.strip_suffix('%') {
        Some(n) => (n, 100.0),
        None => (t, 1.0),
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number; use e.g. 0.8 or 80%"))?;
    let value = value / scale;
    if !(0.0..=1.0).contains(&value) {
        return Err(format!("{text:?} is outside 0..1 (0%..100%)"));
    }
    Ok(value)
}

/// The ownership requirements readiness is measured against: the config
/// file's `policy.ownership` (the built-in ones without `--config`).
fn ownership(config: &TollgateConfig) -> OwnershipConfig {
    config.policy.ownership.clone()
}

/// Runs `tollgate doctor`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = TollgateConfig::load_or_builtin(args.config.as_deref())?;
    let ownership = ownership(&config);
    let constraint_paths = config.constraint_paths(&args.constraints);
    let constraints = match crate::constraints::load(&constraint_paths) {
        Ok(store) => store,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let (scan, source) = if args.files.is_empty() {
        match live(&args, &config, &ownership, constraints)? {
            Ok(scan) => (scan, "cluster"),
            Err(message) => {
                eprintln!("error: {message}");
                return Ok(ExitCode::from(2));
            }
        }
    } else {
        let mut errors = Vec::new();
        let scan = offline_scan(&args, &config, &ownership, constraints, &mut errors);
        if !errors.is_empty() {
            for e in &errors {
                eprintln!("error: {e}");
            }
            return Ok(ExitCode::from(2));
        }
        (scan, "manifests")
    };
    let diagnosis = doctor::diagnose(&scan, source, args.min_score);
    match args.output {
        Output::Text => print!("{}", doctor::text(&diagnosis)),
        Output::Json => print!("{}", doctor::json(&diagnosis)),
    }
    Ok(if diagnosis.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn offline_scan(
    args: &Args,
    config: &TollgateConfig,
    ownership: &OwnershipConfig,
    constraints: Option<Arc<ConstraintStore>>,
    errors: &mut Vec<String>,
) -> Scan {
    let mut objects = Vec::new();
    for input in &args.files {
        for (source, text) in super::check::read_input(input, errors) {
            match offline::parse_manifests(&text) {
                Ok(found) => objects.extend(found),
                Err(e) => errors.push(format!("{source}: {e}")),
            }
        }
    }
    // Namespaces in the manifests stand in for the cluster's, over those
    // the config lists.
    let mut namespaces: std::collections::BTreeMap<String, NamespaceInfo> = config
        .policy
        .namespaces
        .iter()
        .map(|(name, e)| {
            (
                name.clone(),
                NamespaceInfo {
                    name: name.clone(),
                    labels: e.labels.clone(),
                    annotations: e.annotations.clone(),
                },
            )
        })
        .collect();
    for o in &objects {
        if o.get("kind").and_then(|k| k.as_str()) == Some("Namespace")
            && let Some(info) = background::namespace_info(o)
        {
            namespaces.insert(info.name.clone(), info);
        }
    }
    let source: Arc<dyn NamespaceSource> =
        Arc::new(StaticNamespaces::new(namespaces.into_values()));
    let mut builder = Snapshot::builder(&config.policy).namespaces(source.clone());
    if let Some(store) = constraints {
        builder = builder.constraints(store);
    }
    let snapshot = builder.build();
    let options = Options {
        only: None,
        evidence: true,
    };
    Scanner {
        snapshot: &snapshot,
        options: &options,
        ownership,
        namespaces: source.as_ref(),
        default_namespace: &args.namespace,
    }
    .scan(objects)
}

/// Lists and scans the cluster; the inner error is a message for exit 2.
fn live(
    args: &Args,
    config: &TollgateConfig,
    ownership: &OwnershipConfig,
    constraints: Option<Arc<ConstraintStore>>,
) -> anyhow::Result<Result<Scan, String>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    Ok(runtime.block_on(async {
        let client = doctor::client(args.kubeconfig.as_deref())
            .await
            .map_err(|e| e.to_string())?;
        background::scan_cluster(
            &client,
            Policies::Config(&config.policy, constraints),
            ownership,
            args.page_size.max(1),
        )
        .await
        .map_err(|e| {
            format!(
                "{e}\n(doctor needs list permission on {})",
                background::RESOURCES
                    .iter()
                    .map(|(plural, group)| if group.is_empty() {
                        (*plural).to_owned()
                    } else {
                        format!("{group}/{plural}")
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
    }))
}
