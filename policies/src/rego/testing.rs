//! Rego unit tests, as `opa test` runs them: every rule whose name starts
//! with `test_` is a test; it passes when it evaluates to `true` (defined and
//! not `false`), fails when it is undefined or `false`, and errors when
//! evaluation fails. Rules named `todo_test_*` are reported as skipped.

use std::time::{Duration, Instant};

use super::{Limits, Location, Module, Program, RegoError, RegoVersion};

/// One test rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCase {
    /// The full rule path: `data.k8s.labels.test_missing_label`.
    pub name: String,
    /// The package path: `data.k8s.labels`.
    pub package: String,
    /// Where the rule is defined.
    pub location: Location,
    /// `todo_test_*`: reported, not run.
    pub todo: bool,
}

/// How a test ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestOutcome {
    /// Evaluated to `true`.
    Pass,
    /// Undefined or `false`.
    Fail,
    /// Evaluation failed.
    Error(RegoError),
    /// A `todo_test_*` rule.
    Skip,
}

/// The result of one test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResult {
    /// The test.
    pub case: TestCase,
    /// Its outcome.
    pub outcome: TestOutcome,
    /// How long evaluation took.
    pub duration: Duration,
    /// What the test printed (`print(...)`).
    pub output: Vec<String>,
}

fn position(err: &RegoError) -> (u32, u32) {
    err.location().map_or((0, 0), |l| (l.line, l.column))
}

/// The edition `module` parses as: v1 if it parses as v1 (OPA 1.0's
/// default), else v0. When neither parses, the error of the attempt that got
/// further is returned (the v0 one on a tie).
fn detect(name: &str, source: &str, limits: Limits) -> Result<RegoVersion, RegoError> {
    let attempt = |version| Program::compile(vec![Module::new(name, source, version)], limits);
    match attempt(RegoVersion::V1) {
        Ok(_) => Ok(RegoVersion::V1),
        Err(v1 @ RegoError::Parse { .. }) => match attempt(RegoVersion::V0) {
            Ok(_) => Ok(RegoVersion::V0),
            Err(v0 @ RegoError::Parse { .. }) => Err(if position(&v1) > position(&v0) {
                v1
            } else {
                v0
            }),
            // It parses as v0; the problem is elsewhere and shows when the
            // whole set compiles.
            Err(_) => Ok(RegoVersion::V0),
        },
        // It parses as v1.
        Err(_) => Ok(RegoVersion::V1),
    }
}

/// Compiles test files (`(name, text)` pairs) into one program. With
/// `version` `None`, each file's edition is detected (v1 first, then v0).
pub fn compile(
    files: &[(String, String)],
    version: Option<RegoVersion>,
    limits: Limits,
) -> Result<Program, RegoError> {
    let mut modules = Vec::with_capacity(files.len());
    for (name, source) in files {
        let v = match version {
            Some(v) => v,
            None => detect(name, source, limits)?,
        };
        modules.push(Module::new(name.clone(), source.clone(), v));
    }
    Program::compile(modules, limits)
}

/// Every test rule of `program`, in module and definition order.
pub fn discover(program: &Program) -> Vec<TestCase> {
    let mut cases: Vec<TestCase> = Vec::new();
    for module in program.modules() {
        for rule in &module.rules {
            if rule.function {
                continue;
            }
            let todo = rule.name.starts_with("todo_test_");
            if !todo && !rule.name.starts_with("test_") {
                continue;
            }
            let name = module.rule_path(&rule.name);
            // Packages may span modules: a rule is one test however many
            // modules define parts of it.
            if cases.iter().any(|c| c.name == name) {
                continue;
            }
            cases.push(TestCase {
                name,
                package: module.package_path(),
                location: rule.location.clone(),
                todo,
            });
        }
    }
    cases
}

/// Runs the tests of `program` whose full name matches `filter` (all when
/// `None`).
pub fn run(program: &Program, filter: Option<&regex::Regex>) -> Vec<TestResult> {
    discover(program)
        .into_iter()
        .filter(|case| filter.is_none_or(|f| f.is_match(&case.name)))
        .map(|case| {
            if case.todo {
                return TestResult {
                    case,
                    outcome: TestOutcome::Skip,
                    duration: Duration::ZERO,
                    output: Vec::new(),
                };
            }
            let started = Instant::now();
            let (result, output) = program.eval_rule_printing(&case.name);
            let outcome = match result {
                Ok(value) if value.as_bool() == Some(false) || value.is_undefined() => {
                    TestOutcome::Fail
                }
                Ok(_) => TestOutcome::Pass,
                Err(err) => TestOutcome::Error(err),
            };
            TestResult {
                case,
                outcome,
                duration: started.elapsed(),
                output,
            }
        })
        .collect()
}
