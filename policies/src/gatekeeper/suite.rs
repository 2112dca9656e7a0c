//! Gatekeeper test suites (`suite.yaml`, the format `gator verify` runs).
//!
//! ```yaml
//! kind: Suite
//! apiVersion: test.gatekeeper.sh/v1alpha1
//! tests:
//! - name: required-labels
//!   template: template.yaml          # paths are relative to the suite file
//!   constraint: samples/constraint.yaml
//!   cases:
//!   - name: missing-owner
//!     object: samples/example_disallowed.yaml
//!     inventory: [samples/namespace.yaml]   # optional, fills data.inventory
//!     assertions:
//!     - violations: yes                     # yes | no | <count>
//!       message: owner                      # optional regular expression
//! ```
//!
//! As in gator: an assertion without `violations` means `yes`; a case needs
//! at least one assertion; `invalid: true` on a test expects the constraint
//! to be rejected by the template's parameter schema; `skip: true` skips a
//! suite, test or case. An object file may hold an `AdmissionReview`, which
//! is reviewed as its request. The runner does no I/O of its own: files are
//! read through [`SuiteFiles`].

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use super::yaml::{self, SourceFile};
use super::{ConstraintResult, ConstraintSet, GatekeeperError, Inventory, LoadOptions, Review};

/// Reads the files a suite refers to.
pub trait SuiteFiles {
    /// The contents of `path` (the suite's directory joined with the path the
    /// suite gives).
    fn read(&self, path: &Path) -> std::io::Result<String>;
}

/// How a case ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Every assertion held.
    Pass,
    /// An assertion failed, or the case could not run.
    Fail,
    /// Skipped (`skip: true`).
    Skip,
}

/// The result of one case (or of a test without cases, with an empty case
/// name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaseReport {
    /// The suite file.
    pub suite: String,
    /// The test's name.
    pub test: String,
    /// The case's name.
    pub case: String,
    /// Pass, fail or skip.
    pub outcome: Outcome,
    /// Why it failed (empty when it passed).
    pub message: String,
    /// How long the case took.
    #[serde(skip)]
    pub duration: Duration,
}

/// A suite file that cannot be used at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct SuiteError {
    /// The suite file.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

#[derive(Debug)]
struct Assertion {
    violations: Expect,
    message: Option<regex::Regex>,
    message_text: Option<String>,
}

#[derive(Debug, Clone, Copy)]
enum Expect {
    Yes,
    No,
    Exactly(u64),
}

fn field_str<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn field_bool(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn parse_assertion(v: &Value) -> Result<Assertion, String> {
    let violations = match v.get("violations") {
        None | Some(Value::Null) => Expect::Yes,
        Some(Value::Bool(true)) => Expect::Yes,
        Some(Value::Bool(false)) => Expect::No,
        Some(Value::String(s)) if s == "yes" => Expect::Yes,
        Some(Value::String(s)) if s == "no" => Expect::No,
        Some(Value::Number(n)) if n.as_u64().is_some() => Expect::Exactly(n.as_u64().unwrap_or(0)),
        Some(other) => {
            return Err(format!(
                "assertion.violations must be a nonnegative integer, \"yes\" or \"no\", got {other}"
            ));
        }
    };
    let message_text = v.get("message").and_then(Value::as_str).map(str::to_owned);
    let message = match &message_text {
        Some(m) => Some(
            regex::Regex::new(m)
                .map_err(|e| format!("assertion.message is not a valid regular expression: {e}"))?,
        ),
        None => None,
    };
    Ok(Assertion {
        violations,
        message,
        message_text,
    })
}

impl Assertion {
    fn check(&self, results: &[ConstraintResult]) -> Result<(), String> {
        let matching = results
            .iter()
            .filter(|r| {
                self.message
                    .as_ref()
                    .is_none_or(|re| re.is_match(&r.message))
            })
            .count() as u64;
        let containing = self
            .message_text
            .as_ref()
            .map(|m| format!(" matching {m:?}"))
            .unwrap_or_default();
        let problem = match self.violations {
            Expect::Yes if matching == 0 => {
                Some(format!("got 0 violations{containing} but want at least 1"))
            }
            Expect::No if matching > 0 => Some(format!(
                "got {matching} violations{containing} but want none"
            )),
            Expect::Exactly(n) if matching != n => Some(format!(
                "got {matching} violations{containing} but want exactly {n}"
            )),
            _ => None,
        };
        match problem {
            None => Ok(()),
            Some(p) => {
                let messages: Vec<&str> = results.iter().map(|r| r.message.as_str()).collect();
                Err(format!("{p}: got messages {messages:?}"))
            }
        }
    }
}

/// Why a test's template and constraint did not load.
enum LoadFailure {
    /// Only the constraint's parameters were refused by the schema.
    Schema(String),
    /// Anything else.
    Other(String),
}

struct Runner<'a> {
    suite: String,
    dir: PathBuf,
    files: &'a dyn SuiteFiles,
    options: LoadOptions,
    previous: Option<ConstraintSet>,
}

impl Runner<'_> {
    fn read(&self, relative: &str) -> Result<SourceFile, String> {
        let path = self.dir.join(relative);
        self.files
            .read(&path)
            .map(|contents| SourceFile::new(path.display().to_string(), contents))
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
    }

    fn objects(&self, relative: &str) -> Result<Vec<Value>, String> {
        let file = self.read(relative)?;
        let docs = yaml::documents(&file).map_err(|e| e.to_string())?;
        if docs.is_empty() {
            return Err(format!("{} defines no objects", file.name));
        }
        Ok(docs.into_iter().map(|d| d.value).collect())
    }

    fn load(&mut self, test: &Value) -> Result<ConstraintSet, LoadFailure> {
        let template = field_str(test, "template");
        let constraint = field_str(test, "constraint");
        if template.is_empty() {
            return Err(LoadFailure::Other("the test has no template".to_owned()));
        }
        if constraint.is_empty() {
            return Err(LoadFailure::Other("the test has no constraint".to_owned()));
        }
        let files = [
            self.read(template).map_err(LoadFailure::Other)?,
            self.read(constraint).map_err(LoadFailure::Other)?,
        ];
        match ConstraintSet::load_reusing(&files, self.options, self.previous.as_ref()) {
            Ok(set) if set.constraints().len() == 1 => {
                self.previous = Some(set.clone());
                Ok(set)
            }
            Ok(set) => Err(LoadFailure::Other(format!(
                "{} must define exactly one constraint, found {}",
                constraint,
                set.constraints().len()
            ))),
            Err(e) => {
                let schema_only = !e.errors.is_empty()
                    && e.errors
                        .iter()
                        .all(|e| matches!(e, GatekeeperError::Schema { .. }));
                Err(if schema_only {
                    LoadFailure::Schema(e.to_string())
                } else {
                    LoadFailure::Other(e.to_string())
                })
            }
        }
    }

    fn report(
        &self,
        test: &str,
        case: &str,
        outcome: Outcome,
        message: String,
        started: Instant,
    ) -> CaseReport {
        CaseReport {
            suite: self.suite.clone(),
            test: test.to_owned(),
            case: case.to_owned(),
            outcome,
            message,
            duration: started.elapsed(),
        }
    }

    fn run_case(&self, set: &ConstraintSet, case: &Value) -> Result<(), String> {
        let object = field_str(case, "object");
        if object.is_empty() {
            return Err("the case must define an object".to_owned());
        }
        let assertions: Vec<Assertion> = case
            .get("assertions")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(parse_assertion).collect::<Result<_, _>>())
            .transpose()?
            .unwrap_or_default();
        if assertions.is_empty() {
            return Err("the case must have at least one assertion".to_owned());
        }
        let objects = self.objects(object)?;
        let [object] = objects.as_slice() else {
            return Err(format!(
                "{object} defines {} objects; a case reviews exactly one",
                objects.len()
            ));
        };
        let mut inventory_objects = Vec::new();
        if let Some(paths) = case.get("inventory").and_then(Value::as_array) {
            for p in paths.iter().filter_map(Value::as_str) {
                inventory_objects.extend(self.objects(p)?);
            }
        }
        let inventory = Inventory::from_objects(&inventory_objects).map_err(|e| e.to_string())?;
        let review = Review::from_object(object).map_err(|e| e.to_string())?;
        let results = set.review(&review, &inventory, &inventory, None);
        for (i, a) in assertions.iter().enumerate() {
            a.check(&results)
                .map_err(|m| format!("assertion {}: {m}", i + 1))?;
        }
        Ok(())
    }

    fn run_test(&mut self, test: &Value, filter: Option<&regex::Regex>, out: &mut Vec<CaseReport>) {
        let name = field_str(test, "name").to_owned();
        let cases: Vec<Value> = test
            .get("cases")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let selected: Vec<&Value> = cases
            .iter()
            .filter(|c| {
                filter.is_none_or(|f| f.is_match(&format!("{name}/{}", field_str(c, "name"))))
            })
            .collect();
        if filter.is_some() && selected.is_empty() && !filter.is_some_and(|f| f.is_match(&name)) {
            return;
        }
        let started = Instant::now();
        if field_bool(test, "skip") {
            if selected.is_empty() {
                out.push(self.report(&name, "", Outcome::Skip, String::new(), started));
            }
            for c in &selected {
                out.push(self.report(
                    &name,
                    field_str(c, "name"),
                    Outcome::Skip,
                    String::new(),
                    started,
                ));
            }
            return;
        }
        let invalid = field_bool(test, "invalid");
        let loaded = self.load(test);
        if invalid {
            let (outcome, message) = match loaded {
                Err(LoadFailure::Schema(_)) => (Outcome::Pass, String::new()),
                Err(LoadFailure::Other(e)) => (
                    Outcome::Fail,
                    format!("want the constraint rejected by the template's schema, got: {e}"),
                ),
                Ok(_) => (
                    Outcome::Fail,
                    "want the constraint rejected by the template's schema, but it loaded"
                        .to_owned(),
                ),
            };
            out.push(self.report(&name, "", outcome, message, started));
            return;
        }
        let set = match loaded {
            Ok(set) => set,
            Err(LoadFailure::Schema(message) | LoadFailure::Other(message)) => {
                if selected.is_empty() {
                    out.push(self.report(&name, "", Outcome::Fail, message, started));
                    return;
                }
                for c in &selected {
                    let case = field_str(c, "name");
                    out.push(self.report(&name, case, Outcome::Fail, message.clone(), started));
                }
                return;
            }
        };
        for c in selected {
            let started = Instant::now();
            let case_name = field_str(c, "name");
            if field_bool(c, "skip") {
                out.push(self.report(&name, case_name, Outcome::Skip, String::new(), started));
                continue;
            }
            let (outcome, message) = match self.run_case(&set, c) {
                Ok(()) => (Outcome::Pass, String::new()),
                Err(m) => (Outcome::Fail, m),
            };
            out.push(self.report(&name, case_name, outcome, message, started));
        }
    }
}

/// Runs the suite at `path` (contents `text`) and reports every case.
/// `filter` selects cases by `test/case` (or a whole test by its name).
pub fn run(
    path: &Path,
    text: &str,
    files: &dyn SuiteFiles,
    filter: Option<&regex::Regex>,
    options: LoadOptions,
) -> Result<Vec<CaseReport>, SuiteError> {
    let suite_name = path.display().to_string();
    let bad = |message: String| SuiteError {
        path: suite_name.clone(),
        message,
    };
    let docs = yaml::documents(&SourceFile::new(suite_name.clone(), text))
        .map_err(|e| bad(e.to_string()))?;
    let [doc] = docs.as_slice() else {
        return Err(bad(format!(
            "expected one Suite document, found {}",
            docs.len()
        )));
    };
    let suite = &doc.value;
    if field_str(suite, "kind") != "Suite" {
        return Err(bad(format!(
            "expected kind: Suite, found {:?}",
            field_str(suite, "kind")
        )));
    }
    let tests = match suite.get("tests") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(t)) => t.clone(),
        Some(_) => return Err(bad("tests must be a list".to_owned())),
    };
    let mut runner = Runner {
        suite: suite_name.clone(),
        dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
        files,
        options,
        previous: None,
    };
    let mut out = Vec::new();
    if field_bool(suite, "skip") {
        out.push(runner.report("", "", Outcome::Skip, String::new(), Instant::now()));
        return Ok(out);
    }
    for test in &tests {
        runner.run_test(test, filter, &mut out);
    }
    Ok(out)
}
