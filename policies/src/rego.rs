//! The reusable Rego layer over `regorus`: compile a set of modules once into
//! a [`Program`], then evaluate its rules against JSON input from any number
//! of threads.
//!
//! What this layer adds to the bare interpreter:
//!
//! - **Compile once, evaluate everywhere.** [`Program::compile`] parses,
//!   analyses and prepares the modules once. Each worker thread evaluates on
//!   its own clone of the prepared engine, cached in thread-local storage and
//!   keyed by the program, so the request path takes no lock and never
//!   re-parses.
//! - **Errors with `file:line:column`.** Parse and analysis errors carry a
//!   [`Location`]; modules embedded in YAML (ConstraintTemplates) report the
//!   YAML file's own line and column through [`Origin`].
//! - **Rego v0 and v1**, per module.
//! - **Bounded evaluation.** Every evaluation runs under a wall-clock limit
//!   ([`Limits::eval_timeout`]); calls that could allocate without bound in a
//!   single step (`numbers.range`) are capped, `test.sleep` and network
//!   builtins are refused, and recursive functions — which would overflow the
//!   interpreter's stack — are rejected at compile time, as OPA does.
//! - **Source pre-processing** for what regorus reads differently from OPA:
//!   Rego v0 rules with several bodies (`p[x] { a } { b }`) become one rule
//!   per body, and a line starting with `(` starts a new expression.
//! - **OPA builtins regorus lacks** (the deprecated v0 ones such as
//!   `re_match`, `set_diff`, `any`, `all`, `cast_*`) and Gatekeeper's
//!   `external_data`, as extension builtins registered on every engine.
//! - **Fast input conversion** from `serde_json::Value` ([`Value::from_json`]),
//!   done once per request and shared by every evaluation.

mod analysis;
mod builtins;
mod error;
mod rewrite;
mod source;
mod sprintf;
pub mod testing;
mod value;
mod worker;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use analysis::{ModuleInfo, RuleInfo};
pub use error::{Location, RegoError};
pub use source::Origin;
pub use value::Value;

/// Which edition of the Rego language a module is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RegoVersion {
    /// Rego v0: rule bodies without `if`, multi-value rules without
    /// `contains`, the deprecated builtins. What Gatekeeper assumes unless a
    /// template says `version: v1`.
    #[default]
    V0,
    /// Rego v1 (OPA 1.0): `if` and `contains` required.
    V1,
}

impl RegoVersion {
    /// `v0` or `v1`.
    pub fn as_str(self) -> &'static str {
        match self {
            RegoVersion::V0 => "v0",
            RegoVersion::V1 => "v1",
        }
    }
}

/// One Rego source file to compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// The name errors use when the module has no [`Origin`]: usually the
    /// file name (`policy.rego`).
    pub name: String,
    /// The Rego text.
    pub source: String,
    /// The language edition to parse it with.
    pub version: RegoVersion,
    /// Where the text sits inside a larger file (a ConstraintTemplate's YAML),
    /// so errors point into that file.
    pub origin: Option<Origin>,
}

impl Module {
    /// A stand-alone module.
    pub fn new(name: impl Into<String>, source: impl Into<String>, version: RegoVersion) -> Self {
        Module {
            name: name.into(),
            source: source.into(),
            version,
            origin: None,
        }
    }

    /// The same module, located inside a larger file.
    pub fn with_origin(mut self, origin: Origin) -> Self {
        self.origin = Some(origin);
        self
    }
}

/// Bounds on evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock budget of one evaluation. Exceeding it is an error
    /// ([`RegoError::Timeout`]). Default 100 ms.
    pub eval_timeout: Duration,
    /// The largest array a single builtin call may build (`numbers.range`).
    /// Default 1,000,000 elements.
    pub max_builtin_elements: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            eval_timeout: Duration::from_millis(100),
            max_builtin_elements: 1_000_000,
        }
    }
}

/// A base document (`data`) evaluations can see, such as Gatekeeper's
/// `data.inventory`. Immutable; each one carries a unique generation so
/// worker engines notice when it is replaced.
#[derive(Debug, Clone)]
pub struct Data {
    generation: u64,
    value: Value,
}

static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

fn next_generation() -> u64 {
    NEXT_GENERATION.fetch_add(1, Ordering::Relaxed)
}

impl Data {
    /// A data document; `value` must be an object (its keys become
    /// `data.<key>`).
    pub fn new(value: Value) -> Result<Self, RegoError> {
        if !value.is_object() {
            return Err(RegoError::InvalidData(
                "the data document must be a JSON object".to_owned(),
            ));
        }
        Ok(Data {
            generation: next_generation(),
            value,
        })
    }

    /// The document.
    pub fn value(&self) -> &Value {
        &self.value
    }
}

/// A compiled set of Rego modules, ready to evaluate. Cheap to clone and
/// safe to share between threads.
#[derive(Clone)]
pub struct Program {
    inner: Arc<ProgramInner>,
}

pub(crate) struct ProgramInner {
    id: u64,
    prototype: regorus::Engine,
    modules: Vec<ModuleInfo>,
    limits: Limits,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program")
            .field("id", &self.inner.id)
            .field("modules", &self.inner.modules)
            .field("limits", &self.inner.limits)
            .finish()
    }
}

impl Program {
    /// Parses, checks and prepares `modules`. Errors carry the location of
    /// the first problem.
    pub fn compile(modules: Vec<Module>, limits: Limits) -> Result<Self, RegoError> {
        let mut engine = regorus::Engine::new();
        // As in OPA (and so Gatekeeper), a builtin that fails on its
        // arguments makes its expression undefined rather than failing the
        // whole evaluation.
        engine.set_strict_builtin_errors(false);
        engine.set_gather_prints(true);
        for module in &modules {
            if let Some(offset) = rewrite::too_deep(&module.source) {
                let before = module.source.get(..offset).unwrap_or("");
                let line = u32::try_from(before.matches('\n').count() + 1).unwrap_or(u32::MAX);
                let column =
                    u32::try_from(before.len() - before.rfind('\n').map_or(0, |n| n + 1) + 1)
                        .unwrap_or(u32::MAX);
                let location = match &module.origin {
                    Some(origin) => origin.translate(line, column),
                    None => Location {
                        file: module.name.clone(),
                        line,
                        column,
                    },
                };
                return Err(RegoError::Parse {
                    location,
                    message: format!(
                        "brackets nested more than {} levels deep; flatten the expression \
                         (deeper nesting would take the parser exponential time)",
                        rewrite::MAX_BRACKET_DEPTH
                    ),
                });
            }
            let v0 = module.version == RegoVersion::V0;
            engine.set_rego_v0(v0);
            // Constructs OPA accepts and regorus misreads are rewritten
            // first, keeping every line in place (see `rewrite`).
            let source =
                rewrite::preprocess(&module.source, v0).unwrap_or_else(|| module.source.clone());
            if let Err(err) = engine.add_policy(module.name.clone(), source) {
                return Err(error::from_regorus(err, &modules, "parse"));
            }
        }
        let infos = analysis::analyse(engine.get_modules(), &modules)?;
        builtins::register(&mut engine, &limits)
            .map_err(|err| RegoError::Internal(format!("registering builtins: {err}")))?;
        // Prepare once (scheduling, rule indexing, loop hoisting) so every
        // worker clone starts ready to evaluate.
        worker::apply_timeout(&mut engine, limits.eval_timeout);
        if let Err(err) = engine.eval_query("true".to_owned(), false) {
            return Err(error::from_regorus(err, &modules, "compile"));
        }
        Ok(Program {
            inner: Arc::new(ProgramInner {
                id: next_generation(),
                prototype: engine,
                modules: infos,
                limits,
            }),
        })
    }

    /// A number unique to this compilation (clones share it).
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// What was compiled: packages and rules, in module order.
    pub fn modules(&self) -> &[ModuleInfo] {
        &self.inner.modules
    }

    /// The limits evaluations run under.
    pub fn limits(&self) -> Limits {
        self.inner.limits
    }

    /// Evaluates the rule at `path` (`data.pkg.rule`) with `input`, and
    /// `data` as the base document when given. An undefined rule yields
    /// [`Value::undefined`]. Runs under [`Limits::eval_timeout`].
    pub fn eval_rule(
        &self,
        path: &str,
        input: &Value,
        data: Option<&Data>,
    ) -> Result<Value, RegoError> {
        self.eval_rule_within(path, input, data, self.inner.limits.eval_timeout)
    }

    /// Like [`Program::eval_rule`], with a tighter time budget (never looser
    /// than the program's own limit).
    pub fn eval_rule_within(
        &self,
        path: &str,
        input: &Value,
        data: Option<&Data>,
        budget: Duration,
    ) -> Result<Value, RegoError> {
        self.run(Some(input), data, budget, |engine| {
            engine.eval_rule(path.to_owned())
        })
        .map(|(value, _)| Value::from_regorus(value))
    }

    /// Evaluates a Rego query (`data.pkg.allow == true`, `x := data.a[_]`)
    /// and returns the value of its last expression for every solution.
    pub fn eval_query(
        &self,
        query: &str,
        input: Option<&Value>,
        data: Option<&Data>,
    ) -> Result<Vec<Value>, RegoError> {
        let (results, _) = self.run(input, data, self.inner.limits.eval_timeout, |engine| {
            engine.eval_query(query.to_owned(), false)
        })?;
        Ok(results
            .result
            .into_iter()
            .filter_map(|r| r.expressions.into_iter().last())
            .map(|e| Value::from_regorus(e.value))
            .collect())
    }

    /// Evaluates rule `path` without input and returns what `print` wrote
    /// beside the result (for unit tests).
    pub(crate) fn eval_rule_printing(&self, path: &str) -> (Result<Value, RegoError>, Vec<String>) {
        match self.run(None, None, self.inner.limits.eval_timeout, |engine| {
            engine.eval_rule(path.to_owned())
        }) {
            Ok((value, prints)) => (Ok(Value::from_regorus(value)), prints),
            Err(err) => (Err(err), Vec::new()),
        }
    }

    fn run<T>(
        &self,
        input: Option<&Value>,
        data: Option<&Data>,
        budget: Duration,
        f: impl FnOnce(&mut regorus::Engine) -> anyhow::Result<T>,
    ) -> Result<(T, Vec<String>), RegoError> {
        let budget = budget.min(self.inner.limits.eval_timeout);
        worker::with_engine(&self.inner, data, budget, |engine| {
            let input = input.map_or(regorus::Value::Undefined, |i| i.as_regorus().clone());
            engine.set_input(input);
            f(engine)
        })
        .map_err(|err| self.eval_error(err, budget))
    }

    fn eval_error(&self, err: worker::EvalFailure, budget: Duration) -> RegoError {
        match err {
            worker::EvalFailure::Panicked(message) => RegoError::Internal(format!(
                "the Rego interpreter failed unexpectedly: {message}"
            )),
            worker::EvalFailure::Regorus(err) => {
                if let Some(regorus::LimitError::TimeLimitExceeded { .. }) =
                    err.downcast_ref::<regorus::LimitError>()
                {
                    return RegoError::Timeout { limit: budget };
                }
                let text = format!("{err:#}");
                if text.contains("execution exceeded time limit") {
                    return RegoError::Timeout { limit: budget };
                }
                error::eval_error(&text, &self.inner.sources())
            }
        }
    }
}

impl ProgramInner {
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn prototype(&self) -> &regorus::Engine {
        &self.prototype
    }

    fn sources(&self) -> Vec<(String, Option<Origin>)> {
        self.modules
            .iter()
            .map(|m| (m.name.clone(), m.origin.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests;
