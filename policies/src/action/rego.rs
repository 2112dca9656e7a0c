//! Rego conditions on rules, via `regorus`.
//!
//! A module is parsed and prepared once, when the policy compiles. Each
//! worker thread then keeps its own clone of the prepared engine, so
//! evaluation takes no shared lock; a time limit bounds every evaluation.

use std::cell::RefCell;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use regorus::utils::limits::ExecutionTimerConfig;
use regorus::{Engine, Value};

use super::Effect;
use super::spec::{RegoSpec, parse_duration};

/// The default evaluation time limit.
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(20);
/// The largest time limit a policy may ask for.
const MAX_TIMEOUT: Duration = Duration::from_secs(1);
/// How many prepared engines a worker thread keeps (old policies' engines
/// are evicted first).
const ENGINES_PER_THREAD: usize = 64;

/// Work units between clock reads during evaluation.
const CHECK_INTERVAL: NonZeroU32 = match NonZeroU32::new(32) {
    Some(n) => n,
    None => NonZeroU32::MIN,
};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static ENGINES: RefCell<Vec<(u64, Engine)>> = const { RefCell::new(Vec::new()) };
}

/// A compiled Rego condition.
#[derive(Debug)]
pub(crate) struct RegoCondition {
    id: u64,
    prototype: Mutex<Engine>,
    query: String,
}

impl RegoCondition {
    /// Parses and prepares `spec`; `label` names the module in errors.
    pub(crate) fn compile(
        spec: &RegoSpec,
        effect: Effect,
        label: &str,
    ) -> Result<RegoCondition, String> {
        let timeout = match &spec.timeout {
            Some(t) => parse_duration(t)?,
            None => DEFAULT_TIMEOUT,
        };
        if timeout > MAX_TIMEOUT {
            return Err(format!(
                "rego timeout {timeout:?} is over the maximum of {MAX_TIMEOUT:?}"
            ));
        }
        let mut engine = Engine::new();
        engine.set_execution_timer_config(ExecutionTimerConfig {
            limit: timeout,
            check_interval: CHECK_INTERVAL,
        });
        let package = engine
            .add_policy(format!("{label}.rego"), spec.module.clone())
            .map_err(|e| format!("rego module does not compile: {e}"))?;
        let query = match &spec.query {
            Some(q) => q.clone(),
            None => match effect {
                Effect::Allow => format!("{package}.allow"),
                Effect::Deny => format!("{package}.deny"),
            },
        };
        // Prepares the engine and checks the query names a rule, against an
        // empty input. Running out of time here is accepted: the query was
        // resolved before evaluation started, and at request time a timeout
        // denies.
        engine.set_input(Value::new_object());
        if let Err(e) = engine.eval_rule(query.clone()) {
            let message = e.to_string();
            if !message.contains("time limit") {
                return Err(format!(
                    "rego query {query:?} cannot be evaluated: {message}"
                ));
            }
        }
        Ok(RegoCondition {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            prototype: Mutex::new(engine),
            query,
        })
    }

    /// Evaluates the condition on `input`: `Ok(true)` when the query is
    /// `true`, `Ok(false)` when it is undefined or `false`, `Err` on an
    /// error, a timeout or a non-boolean result.
    pub(crate) fn evaluate(&self, input: &Value) -> Result<bool, String> {
        ENGINES.with(|cell| {
            let mut engines = cell.borrow_mut();
            let index = match engines.iter().position(|(id, _)| *id == self.id) {
                Some(i) => i,
                None => {
                    let engine = self
                        .prototype
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .clone();
                    if engines.len() >= ENGINES_PER_THREAD {
                        engines.remove(0);
                    }
                    engines.push((self.id, engine));
                    engines.len() - 1
                }
            };
            let Some((_, engine)) = engines.get_mut(index) else {
                return Err("rego engine cache is inconsistent".into());
            };
            engine.set_input(input.clone());
            match engine.eval_rule(self.query.clone()) {
                Ok(Value::Bool(b)) => Ok(b),
                Ok(Value::Undefined) => Ok(false),
                Ok(other) => Err(format!(
                    "rego query {:?} returned {other}, not a boolean",
                    self.query
                )),
                Err(e) => Err(format!("rego evaluation failed: {e}")),
            }
        })
    }
}
