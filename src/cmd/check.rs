//! `tollgate check`: evaluate manifests offline with the webhook's engine.
//! Reads files, directories (recursively: `*.yaml`, `*.yml`, `*.json`) or
//! stdin, judges every object, prints one block per object with the fixes,
//! and exits 0 when everything is allowed, 1 when something is denied, 2 on
//! a usage or input error.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use tollgate_policies::engine::offline::{self, Checked};
use tollgate_policies::engine::{Options, Snapshot};
use tollgate_policies::{EnforcementAction, LevelVersion, PolicySet};

use crate::config::TollgateConfig;

/// Directories deeper than this are not searched.
const MAX_DIR_DEPTH: usize = 32;

/// Arguments of `tollgate check`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Manifest file, directory (searched recursively), or - for stdin; repeatable.
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILE|DIR|-",
        required = true
    )]
    pub files: Vec<String>,
    /// Evaluate Pod Security at this level in every mode, ignoring namespace labels (e.g. baseline:v1.30).
    #[arg(long, value_name = "LEVEL[:VERSION]", value_parser = parse_level)]
    pub pod_security: Option<LevelVersion>,
    /// Evaluate only these policy sets (comma-separated).
    #[arg(long, value_name = "SET,...", value_delimiter = ',', value_parser = parse_set)]
    pub only: Vec<PolicySet>,
    /// Config file (its policy: section; namespaces listed there supply labels).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Namespace of objects that do not name one.
    #[arg(long, value_name = "NAMESPACE", default_value = "default")]
    pub namespace: String,
    /// Judge the manifests as written, without applying the mutating webhook's changes first.
    #[arg(long)]
    pub no_mutate: bool,
}

fn parse_level(text: &str) -> Result<LevelVersion, String> {
    text.parse()
        .map_err(|e: tollgate_policies::PolicyError| e.to_string())
}

fn parse_set(text: &str) -> Result<PolicySet, String> {
    match text.trim() {
        "pod-security" => Ok(PolicySet::PodSecurity),
        "ownership" => Ok(PolicySet::Ownership),
        "compliance" => Ok(PolicySet::Compliance),
        "constraints" => Ok(PolicySet::Constraints),
        other => Err(format!(
            "unknown policy set {other:?}: expected pod-security, ownership, compliance or constraints"
        )),
    }
}

/// One object's result, with where it came from.
#[derive(Debug)]
pub struct ObjectReport {
    /// The file (or `<stdin>`).
    pub source: String,
    /// What was found.
    pub checked: Checked,
}

/// Everything `tollgate check` found.
#[derive(Debug, Default)]
pub struct Report {
    /// Per object, in input order.
    pub objects: Vec<ObjectReport>,
    /// Inputs that could not be read or parsed.
    pub input_errors: Vec<String>,
}

impl Report {
    /// 0 all allowed, 1 something denied, 2 an input could not be read.
    pub fn exit_code(&self) -> ExitCode {
        if !self.input_errors.is_empty() {
            ExitCode::from(2)
        } else if self.objects.iter().any(|o| !o.checked.evaluation.allowed()) {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        }
    }
}

/// Runs `tollgate check`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = TollgateConfig::load_or_builtin(args.config.as_deref())?;
    let mut builder = Snapshot::builder(&config.policy);
    if let Some(level) = args.pod_security {
        builder = builder.pod_security_level(level);
    }
    let snapshot = builder.build();
    let options = Options {
        only: (!args.only.is_empty()).then(|| args.only.clone()),
    };
    let mut report = Report::default();
    for input in &args.files {
        for (source, text) in read_input(input, &mut report.input_errors) {
            match offline::parse_manifests(&text) {
                Ok(objects) => {
                    for object in objects {
                        report.objects.push(ObjectReport {
                            source: source.clone(),
                            checked: offline::check_object(
                                &snapshot,
                                object,
                                &args.namespace,
                                &options,
                                !args.no_mutate,
                            ),
                        });
                    }
                }
                Err(e) => report.input_errors.push(format!("{source}: {e}")),
            }
        }
    }
    print!("{}", render_text(&report));
    for err in &report.input_errors {
        eprintln!("error: {err}");
    }
    Ok(report.exit_code())
}

/// The texts named by one `-f` argument, as (source, text) pairs.
pub(crate) fn read_input(input: &str, errors: &mut Vec<String>) -> Vec<(String, String)> {
    if input == "-" {
        let mut text = String::new();
        return match std::io::stdin().read_to_string(&mut text) {
            Ok(_) => vec![("<stdin>".to_owned(), text)],
            Err(e) => {
                errors.push(format!("<stdin>: {e}"));
                Vec::new()
            }
        };
    }
    let path = Path::new(input);
    let mut files = Vec::new();
    if path.is_dir() {
        if let Err(e) = collect(path, 0, &mut files) {
            errors.push(format!("{e:#}"));
        }
        if files.is_empty() && errors.is_empty() {
            errors.push(format!(
                "{input}: no *.yaml, *.yml or *.json files in this directory"
            ));
        }
    } else {
        files.push(path.to_owned());
    }
    let mut out = Vec::new();
    for file in files {
        match std::fs::read_to_string(&file) {
            Ok(text) => out.push((file.display().to_string(), text)),
            Err(e) => errors.push(format!("{}: {e}", file.display())),
        }
    }
    out
}

fn collect(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    if depth > MAX_DIR_DEPTH {
        anyhow::bail!("{}: directories nested too deeply", dir.display());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| dir.display().to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect(&path, depth + 1, out)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        {
            out.push(path);
        }
    }
    Ok(())
}

/// One block per object: the verdict, each violation with its fix, the
/// warnings; then a summary line.
pub fn render_text(report: &Report) -> String {
    let mut out = String::new();
    let (mut denied, mut warned, mut allowed) = (0, 0, 0);
    for object in &report.objects {
        let eval = &object.checked.evaluation;
        let subject = &eval.subject;
        let mut what = subject.kind.clone();
        if !subject.name.is_empty() {
            what.push_str(&format!(" {:?}", subject.name));
        }
        if !subject.namespace.is_empty() && subject.kind != "Namespace" {
            what.push_str(&format!(" in namespace {:?}", subject.namespace));
        }
        let warnings = eval.warnings();
        let status = if let Some(denial) = eval.denial() {
            denied += 1;
            let lines: Vec<&str> = denial.message.lines().collect();
            // The first line of a policy denial repeats the subject.
            let body: Vec<&str> = if denial.code == 403 {
                lines.iter().skip(1).copied().collect()
            } else {
                lines
            };
            let count = eval.verdict.with_action(EnforcementAction::Deny).count();
            let mut block = if count > 0 {
                format!(
                    "DENIED ({count} violation{})\n",
                    if count == 1 { "" } else { "s" }
                )
            } else {
                "DENIED\n".to_owned()
            };
            for line in body {
                let line = line.strip_prefix("- ").unwrap_or(line);
                block.push_str(&format!("  - {line}\n"));
            }
            block
        } else if !warnings.is_empty() {
            warned += 1;
            "allowed with warnings\n".to_owned()
        } else {
            allowed += 1;
            "allowed\n".to_owned()
        };
        out.push_str(&format!("{}: {what}: {status}", object.source));
        for w in &warnings {
            out.push_str(&format!("  warning: {w}\n"));
        }
        let n = object.checked.mutation.len();
        if n > 0 {
            out.push_str(&format!(
                "  mutated first: {n} JSON Patch operation{} from the mutating webhook (--no-mutate judges the manifest as written)\n",
                if n == 1 { "" } else { "s" }
            ));
        }
    }
    out.push_str(&format!(
        "{} object{}: {denied} denied, {warned} allowed with warnings, {allowed} allowed{}\n",
        report.objects.len(),
        if report.objects.len() == 1 { "" } else { "s" },
        if report.input_errors.is_empty() {
            String::new()
        } else {
            format!("; {} input error(s)", report.input_errors.len())
        }
    ));
    out
}
