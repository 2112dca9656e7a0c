//! `tollgate check`: evaluate manifests offline with the webhook's engine.
//! Reads files, directories (recursively: `*.yaml`, `*.yml`, `*.json`) or
//! stdin, judges every object, prints one block per object with the fixes,
//! and exits 0 when everything is allowed, 1 when something is denied, 2 on
//! a usage or input error.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::sync::Arc;

use anyhow::Context as _;
use tollgate_policies::engine::offline::{self, Checked};
use tollgate_policies::engine::{Options, Snapshot};
use tollgate_policies::gatekeeper::Inventory;
use tollgate_policies::report::{CheckResult, evidence};
use tollgate_policies::{EnforcementAction, LevelVersion, PolicySet};
use tollgate_policies::{NamespaceInfo, NamespaceSource};

use crate::config::TollgateConfig;

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
    /// Labels of every namespace that neither the input (Namespace objects) nor the config file
    /// describes, e.g. compliance.tollgate.dev/pci-dss=enforce,pss.tollgate.dev/enforce=baseline
    /// (one label per compliance framework: a label value cannot hold a comma).
    #[arg(long, value_name = "KEY=VALUE,...", value_delimiter = ',', value_parser = parse_label)]
    pub namespace_labels: Vec<(String, String)>,
    /// Namespace of objects that do not name one.
    #[arg(long, value_name = "NAMESPACE", default_value = "default")]
    pub namespace: String,
    /// Judge the manifests as written, without applying the mutating webhook's changes first.
    #[arg(long)]
    pub no_mutate: bool,
    /// Gatekeeper ConstraintTemplates and constraints (file or directory); repeatable. Added to
    /// the config file's policy.constraints.paths.
    #[arg(long, value_name = "FILE|DIR")]
    pub constraints: Vec<PathBuf>,
    /// Output format of the check (or, with --report, of the evidence report: text or json).
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// Print the compliance evidence report (per framework and control) instead of the check.
    #[arg(long)]
    pub report: bool,
    /// Accept input that holds no objects (by default it is an input error, exit 2, so a
    /// failed `helm template ... | tollgate check -f -` does not pass).
    #[arg(long)]
    pub allow_empty: bool,
    /// Fail (exit 1) when a warn-mode violation is found, not only when something is denied.
    #[arg(long)]
    pub fail_on_warn: bool,
    /// Print nothing on standard output; the exit code says the result (errors still go to
    /// standard error).
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// `tollgate check --output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// One block per object with the fixes, then a summary line.
    Text,
    /// A `CheckReport` document (per object: outcome, violations with controls, rules run).
    Json,
    /// JUnit XML (a test case per object and rule), as CI systems read it.
    Junit,
    /// SARIF 2.1.0, for code-scanning dashboards.
    Sarif,
    /// The `CheckReport` document as YAML.
    Yaml,
}

/// One `KEY=VALUE` of `--namespace-labels`, refused unless kube-apiserver
/// would accept it on a Namespace.
fn parse_label(text: &str) -> Result<(String, String), String> {
    let Some((key, value)) = text.split_once('=') else {
        return Err(format!(
            "expected KEY=VALUE, found {text:?} (labels are separated by commas, so a value cannot \
             hold one: select several compliance profiles with one label each, e.g. \
             compliance.tollgate.dev/soc2=enforce,compliance.tollgate.dev/pci-dss=enforce)"
        ));
    };
    tollgate_policies::validate_label(key, value).map_err(|e| e.to_string())?;
    Ok((key.to_owned(), value.to_owned()))
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
    /// Per object, as the report formats take it.
    pub results: Vec<CheckResult>,
}

impl Report {
    /// 0 all allowed, 1 something denied (or, with `fail_on_warn`, warned),
    /// 2 an input could not be read.
    pub fn exit_code(&self, fail_on_warn: bool) -> ExitCode {
        let warned = || {
            self.objects.iter().any(|o| {
                o.checked
                    .evaluation
                    .verdict
                    .with_action(EnforcementAction::Warn)
                    .next()
                    .is_some()
            })
        };
        if !self.input_errors.is_empty() {
            ExitCode::from(2)
        } else if self.objects.iter().any(|o| !o.checked.evaluation.allowed())
            || (fail_on_warn && warned())
        {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        }
    }
}

/// Runs `tollgate check`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.report && matches!(args.output, Output::Junit | Output::Sarif | Output::Yaml) {
        eprintln!(
            "error: --report prints text or json; --output junit and sarif describe the check itself"
        );
        return Ok(ExitCode::from(2));
    }
    let config = TollgateConfig::load_or_builtin(args.config.as_deref())?;
    let mut report = Report::default();
    let mut inputs = Vec::new();
    for input in &args.files {
        for (source, text) in read_input(input, &mut report.input_errors) {
            match offline::parse_documents(&text) {
                Ok(objects) => {
                    let lines = tollgate_policies::report::document_lines(&text);
                    inputs.extend(
                        objects
                            .into_iter()
                            .map(|(doc, object)| (source.clone(), lines.get(doc).copied(), object)),
                    );
                }
                Err(e) => report.input_errors.push(format!("{source}: {e}")),
            }
        }
    }
    if inputs.is_empty() && report.input_errors.is_empty() && !args.allow_empty {
        report.input_errors.push(format!(
            "{}: no Kubernetes objects in the input (pass --allow-empty if that is expected)",
            args.files.join(", ")
        ));
    }
    let constraint_paths = config.constraint_paths(&args.constraints);
    let store = match crate::constraints::load(&constraint_paths) {
        Ok(store) => store,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    // Namespaces in the manifests supply their labels (profiles, Pod
    // Security levels, inherited ownership) ahead of the config file's.
    let in_manifests = Inventory::from_objects(
        inputs
            .iter()
            .map(|(_, _, o)| o)
            .filter(|o| o.get("kind").and_then(|k| k.as_str()) == Some("Namespace")),
    )
    .context("cannot read the Namespace objects of the manifests")?;
    let mut layers: Vec<Arc<dyn NamespaceSource>> = vec![
        Arc::new(in_manifests),
        Arc::new(config.policy.static_namespaces()),
    ];
    if !args.namespace_labels.is_empty() {
        layers.push(Arc::new(AnyNamespace(
            args.namespace_labels.iter().cloned().collect(),
        )));
    }
    let namespaces = Arc::new(Layered(layers));
    let mut builder = Snapshot::builder(&config.policy).namespaces(namespaces);
    if let Some(level) = args.pod_security {
        builder = builder.pod_security_level(level);
    }
    if let Some(store) = store {
        builder = builder.constraints(store);
    }
    let snapshot = builder.build();
    let options = Options {
        only: (!args.only.is_empty()).then(|| args.only.clone()),
        evidence: true,
    };
    for (source, line, object) in inputs {
        let mut result = CheckResult::new(source.clone(), line, &object);
        let checked = offline::check_object(
            &snapshot,
            object,
            &args.namespace,
            &options,
            !args.no_mutate,
        );
        let eval = &checked.evaluation;
        if result.object.namespace.is_empty() && eval.subject.kind != "Namespace" {
            result.object.namespace = eval.subject.namespace.clone();
        }
        result.verdict = eval.verdict.clone();
        result.evaluated = eval.evaluated.clone();
        result.frameworks = eval.frameworks.clone();
        result.notes = eval.notes.clone();
        result.error = eval.failure.as_ref().map(|f| f.message.clone());
        result.fold_modes();
        report.results.push(result);
        report.objects.push(ObjectReport { source, checked });
    }
    let catalogue = tollgate_policies::compliance::Catalogue::builtin().ok();
    let out = if args.report {
        let evidence = evidence::build(&report.results, catalogue);
        match args.output {
            Output::Json => evidence::json(&evidence),
            _ => evidence::text(&evidence),
        }
    } else {
        match args.output {
            Output::Text => {
                let mut text = render_text(&report);
                text.push_str(&summary_table(&report.results));
                text
            }
            Output::Json => tollgate_policies::report::json(&report.results, &report.input_errors),
            Output::Yaml => as_yaml(&tollgate_policies::report::json(
                &report.results,
                &report.input_errors,
            )),
            Output::Junit => {
                tollgate_policies::report::junit(&report.results, &report.input_errors)
            }
            Output::Sarif => {
                tollgate_policies::report::sarif(&report.results, &report.input_errors, catalogue)
            }
        }
    };
    if !args.quiet {
        print!("{out}");
        if !out.ends_with('\n') {
            println!();
        }
    }
    for err in &report.input_errors {
        eprintln!("error: {err}");
    }
    Ok(report.exit_code(args.fail_on_warn))
}

/// A JSON document as YAML (the same `CheckReport`).
fn as_yaml(json: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(json)
        .map_err(|e| e.to_string())
        .and_then(|v| yaml_serde::to_string(&v).map_err(|e| e.to_string()))
    {
        Ok(yaml) => yaml,
        Err(e) => format!("# cannot render YAML: {e}\n"),
    }
}

/// Violations per policy set and rule (deny, warn, audit), as a table.
fn summary_table(results: &[CheckResult]) -> String {
    let mut counts: std::collections::BTreeMap<(String, String), [usize; 3]> = Default::default();
    for r in results {
        for v in &r.verdict.violations {
            let slot = counts
                .entry((v.policy.as_str().to_owned(), v.rule.clone()))
                .or_default();
            let i = match v.action {
                EnforcementAction::Deny => 0,
                EnforcementAction::Warn => 1,
                EnforcementAction::Audit => 2,
            };
            if let Some(n) = slot.get_mut(i) {
                *n += 1;
            }
        }
    }
    if counts.is_empty() {
        return String::new();
    }
    let rows: Vec<[String; 5]> = counts
        .into_iter()
        .map(|((policy, rule), [d, w, a])| {
            [policy, rule, d.to_string(), w.to_string(), a.to_string()]
        })
        .collect();
    let header = ["POLICY", "RULE", "DENY", "WARN", "AUDIT"].map(str::to_owned);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::from("\n");
    for row in std::iter::once(&header).chain(rows.iter()) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Every namespace, with the same labels (`--namespace-labels`).
struct AnyNamespace(std::collections::BTreeMap<String, String>);

impl NamespaceSource for AnyNamespace {
    fn namespace(&self, name: &str) -> Option<Arc<NamespaceInfo>> {
        Some(Arc::new(NamespaceInfo {
            name: name.to_owned(),
            labels: self.0.clone(),
            annotations: Default::default(),
        }))
    }
}

/// Namespace sources consulted in order; the first that knows a namespace
/// answers.
struct Layered(Vec<Arc<dyn NamespaceSource>>);

impl NamespaceSource for Layered {
    fn namespace(&self, name: &str) -> Option<Arc<NamespaceInfo>> {
        self.0.iter().find_map(|s| s.namespace(name))
    }
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
        match crate::files::manifest_files(path) {
            Ok(found) => files = found,
            Err(e) => errors.push(format!("{e:#}")),
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

/// Every warn-mode violation (`path: message [policy:rule]`) and note, whole:
/// unlike admission warnings, which kube-apiserver limits to 256 characters
/// each, nothing is cut here. Control characters from the manifest are
/// shown as spaces so they cannot drive the terminal.
fn warning_lines(eval: &tollgate_policies::engine::Evaluation) -> Vec<String> {
    let printable = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect()
    };
    let mut lines: Vec<String> = eval
        .verdict
        .with_action(EnforcementAction::Warn)
        .map(|v| match v.path.as_deref().filter(|p| !p.is_empty()) {
            Some(path) => format!("{path}: {} [{}:{}]", v.message, v.policy.as_str(), v.rule),
            None => format!("{} [{}:{}]", v.message, v.policy.as_str(), v.rule),
        })
        .map(|l| printable(&l))
        .collect();
    lines.extend(eval.notes.iter().map(|n| printable(n)));
    lines
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
        let warnings = warning_lines(eval);
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
