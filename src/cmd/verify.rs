//! `tollgate verify`: runs Gatekeeper `suite.yaml` test suites (the format
//! of `gator verify`) and prints pass/fail per case.
//!
//! Exit status: 0 when every case passed (skipped cases allowed), 1 when any
//! failed, 2 when a path or a suite file could not be read or parsed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use tollgate_policies::gatekeeper::LoadOptions;
use tollgate_policies::gatekeeper::suite::{self, CaseReport, Outcome, SuiteFiles};
use tollgate_policies::rego::Limits;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// One line per case and a summary.
    Text,
    /// A JSON array with one record per case.
    Json,
}

/// Arguments of `tollgate verify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Suite files, or directories searched (recursively) for `suite.yaml`.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    output: Output,
    /// Run only the cases whose `test/case` name matches this regular
    /// expression (or whole tests whose name matches it).
    #[arg(long, value_name = "REGEX")]
    run: Option<String>,
    /// Time limit of one template evaluation, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    eval_timeout_ms: u64,
}

/// Reads suite files from disk.
struct Disk;

impl SuiteFiles for Disk {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }
}

/// The deepest directory nesting searched.
const MAX_DEPTH: usize = 32;

/// Every file under `root` (itself, when it is a file) accepted by `keep`,
/// sorted; hidden directories are skipped.
pub(crate) fn find_files(
    root: &Path,
    keep: &dyn Fn(&Path) -> bool,
) -> anyhow::Result<Vec<PathBuf>> {
    fn walk(
        dir: &Path,
        depth: usize,
        keep: &dyn Fn(&Path) -> bool,
        out: &mut Vec<PathBuf>,
    ) -> anyhow::Result<()> {
        if depth > MAX_DEPTH {
            return Ok(());
        }
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read directory {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for path in entries {
            let hidden = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            if path.is_dir() {
                if !hidden {
                    walk(&path, depth + 1, keep, out)?;
                }
            } else if keep(&path) {
                out.push(path);
            }
        }
        Ok(())
    }
    let meta =
        std::fs::metadata(root).with_context(|| format!("cannot read {}", root.display()))?;
    let mut out = Vec::new();
    if meta.is_dir() {
        walk(root, 0, keep, &mut out)?;
    } else {
        out.push(root.to_path_buf());
    }
    Ok(out)
}

fn is_suite(path: &Path) -> bool {
    matches!(
        path.file_name().and_then(|n| n.to_str()),
        Some("suite.yaml" | "suite.yml")
    )
}

fn print_text(reports: &[CaseReport], out: &mut impl Write) -> std::io::Result<()> {
    for r in reports {
        let label = match r.outcome {
            Outcome::Pass => "PASS",
            Outcome::Fail => "FAIL",
            Outcome::Skip => "SKIP",
        };
        let name = if r.case.is_empty() {
            r.test.clone()
        } else {
            format!("{}/{}", r.test, r.case)
        };
        write!(out, "{label}  {name}  ({})", r.suite)?;
        if r.outcome == Outcome::Pass {
            writeln!(out, " {:.1}ms", r.duration.as_secs_f64() * 1000.0)?;
        } else if r.message.is_empty() {
            writeln!(out)?;
        } else {
            writeln!(out, "\n      {}", r.message)?;
        }
    }
    let count = |o: Outcome| reports.iter().filter(|r| r.outcome == o).count();
    writeln!(
        out,
        "{} cases: {} passed, {} failed, {} skipped",
        reports.len(),
        count(Outcome::Pass),
        count(Outcome::Fail),
        count(Outcome::Skip)
    )
}

fn print_json(reports: &[CaseReport], out: &mut impl Write) -> anyhow::Result<()> {
    let records: Vec<serde_json::Value> = reports
        .iter()
        .map(|r| {
            serde_json::json!({
                "suite": r.suite,
                "test": r.test,
                "case": r.case,
                "passed": r.outcome == Outcome::Pass,
                "skipped": r.outcome == Outcome::Skip,
                "message": r.message,
                "duration_ms": r.duration.as_secs_f64() * 1000.0,
            })
        })
        .collect();
    serde_json::to_writer_pretty(&mut *out, &records)?;
    writeln!(out)?;
    Ok(())
}

/// Runs `tollgate verify`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let filter = args
        .run
        .as_deref()
        .map(regex::Regex::new)
        .transpose()
        .context("--run is not a valid regular expression")?;
    let options = LoadOptions {
        limits: Limits {
            eval_timeout: Duration::from_millis(args.eval_timeout_ms),
            ..Limits::default()
        },
        review_budget: Duration::from_millis(args.eval_timeout_ms.saturating_mul(4)),
    };
    let mut unreadable = false;
    let mut suites = Vec::new();
    for path in &args.paths {
        match find_files(path, &|p| is_suite(p)) {
            Ok(found) if found.is_empty() => {
                eprintln!("error: no suite.yaml under {}", path.display());
                unreadable = true;
            }
            Ok(found) => suites.extend(found),
            Err(e) => {
                eprintln!("error: {e:#}");
                unreadable = true;
            }
        }
    }
    let mut reports = Vec::new();
    for path in &suites {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", path.display());
                unreadable = true;
                continue;
            }
        };
        match suite::run(path, &text, &Disk, filter.as_ref(), options) {
            Ok(r) => reports.extend(r),
            Err(e) => {
                eprintln!("error: {e}");
                unreadable = true;
            }
        }
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match args.output {
        Output::Text => print_text(&reports, &mut out)?,
        Output::Json => print_json(&reports, &mut out)?,
    }
    out.flush()?;
    if unreadable {
        return Ok(ExitCode::from(2));
    }
    if reports.iter().any(|r| r.outcome == Outcome::Fail) {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
