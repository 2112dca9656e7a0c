//! `tollgate test`: runs Rego unit tests (`test_*` rules) like `opa test`.
//!
//! Every `.rego` file under the paths is compiled together (Rego v1 or v0,
//! detected per file unless `--rego-version` says); each rule whose name
//! starts with `test_` is a test that passes when it evaluates to true.
//! Exit status: 0 when every test passed, 1 when any failed or errored, 2
//! when the files could not be read or compiled.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use tollgate_policies::rego::testing::{self, TestOutcome, TestResult};
use tollgate_policies::rego::{Limits, RegoVersion};

use super::verify::find_files;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Failures, then a summary (every test with `--verbose`).
    Text,
    /// A JSON array with one record per test.
    Json,
}

/// The Rego edition of the files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Version {
    /// Detect per file: v1 when it parses as v1, else v0.
    Auto,
    /// Rego v0.
    V0,
    /// Rego v1.
    V1,
}

/// Arguments of `tollgate test`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// `.rego` files, or directories searched (recursively) for them.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    output: Output,
    /// Run only the tests whose full name (`data.pkg.test_x`) matches this
    /// regular expression.
    #[arg(long, value_name = "REGEX")]
    run: Option<String>,
    /// Print every test, not only failures.
    #[arg(long, short = 'v')]
    verbose: bool,
    /// The Rego edition of the files.
    #[arg(long, value_enum, default_value_t = Version::Auto)]
    rego_version: Version,
    /// Time limit of one test, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    timeout_ms: u64,
}

fn is_rego(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()) == Some("rego")
}

fn label(outcome: &TestOutcome) -> &'static str {
    match outcome {
        TestOutcome::Pass => "PASS",
        TestOutcome::Fail => "FAIL",
        TestOutcome::Error(_) => "ERROR",
        TestOutcome::Skip => "SKIPPED",
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn print_text(results: &[TestResult], verbose: bool, out: &mut impl Write) -> std::io::Result<()> {
    let mut shown = 0;
    for r in results {
        let notable = !matches!(r.outcome, TestOutcome::Pass | TestOutcome::Skip);
        if !verbose && !notable {
            continue;
        }
        shown += 1;
        write!(
            out,
            "{}: {} ({:.3}ms)",
            r.case.name,
            label(&r.outcome),
            millis(r.duration)
        )?;
        writeln!(out, "  [{}]", r.case.location)?;
        if let TestOutcome::Error(e) = &r.outcome {
            writeln!(out, "  {e}")?;
        }
        if notable || verbose {
            for line in &r.output {
                writeln!(out, "  {line}")?;
            }
        }
    }
    if shown > 0 {
        writeln!(out, "{}", "-".repeat(80))?;
    }
    let total = results.len();
    for (name, n) in [
        (
            "PASS",
            results
                .iter()
                .filter(|r| r.outcome == TestOutcome::Pass)
                .count(),
        ),
        (
            "FAIL",
            results
                .iter()
                .filter(|r| r.outcome == TestOutcome::Fail)
                .count(),
        ),
        (
            "ERROR",
            results
                .iter()
                .filter(|r| matches!(r.outcome, TestOutcome::Error(_)))
                .count(),
        ),
        (
            "SKIPPED",
            results
                .iter()
                .filter(|r| r.outcome == TestOutcome::Skip)
                .count(),
        ),
    ] {
        if n > 0 || (name == "PASS" && total == 0) {
            writeln!(out, "{name}: {n}/{total}")?;
        }
    }
    Ok(())
}

fn print_json(results: &[TestResult], out: &mut impl Write) -> anyhow::Result<()> {
    let records: Vec<serde_json::Value> = results
        .iter()
        .map(|r| {
            serde_json::json!({
                "name": r.case.name,
                "package": r.case.package,
                "location": r.case.location.to_string(),
                "outcome": label(&r.outcome).to_ascii_lowercase(),
                "passed": r.outcome == TestOutcome::Pass,
                "error": match &r.outcome { TestOutcome::Error(e) => Some(e.to_string()), _ => None },
                "output": r.output,
                "duration_ms": millis(r.duration),
            })
        })
        .collect();
    serde_json::to_writer_pretty(&mut *out, &records)?;
    writeln!(out)?;
    Ok(())
}

/// Runs `tollgate test`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let filter = args
        .run
        .as_deref()
        .map(regex::Regex::new)
        .transpose()
        .context("--run is not a valid regular expression")?;
    let mut files = Vec::new();
    for path in &args.paths {
        for file in find_files(path, &|p| is_rego(p))? {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            files.push((file.display().to_string(), text));
        }
    }
    if files.is_empty() {
        anyhow::bail!("no .rego files under the given paths");
    }
    let version = match args.rego_version {
        Version::Auto => None,
        Version::V0 => Some(RegoVersion::V0),
        Version::V1 => Some(RegoVersion::V1),
    };
    let limits = Limits {
        eval_timeout: Duration::from_millis(args.timeout_ms),
        ..Limits::default()
    };
    let program = testing::compile(&files, version, limits)?;
    let results = testing::run(&program, filter.as_ref());
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match args.output {
        Output::Text => print_text(&results, args.verbose, &mut out)?,
        Output::Json => print_json(&results, &mut out)?,
    }
    out.flush()?;
    let failed = results
        .iter()
        .any(|r| matches!(r.outcome, TestOutcome::Fail | TestOutcome::Error(_)));
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
