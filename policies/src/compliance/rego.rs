//! A minimal Rego evaluator over `regorus` for the built-in packs. The
//! modules are parsed, checked and compiled once into a regorus VM program
//! (bytecode, several times faster than the tree-walking interpreter);
//! each thread evaluates with its own VM loaded with that program (made on
//! first use, kept for the thread's life), so evaluation takes no lock and a
//! slow evaluation on one worker never blocks another. Evaluation is bounded
//! by an instruction budget and regorus's execution timer.
//!
//! The interface (`compile` once, `eval` of the entry point with an input)
//! is what a shared Rego layer offers too, so the packs can move onto it
//! unchanged.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::program::Program;
use regorus::rvm::vm::RegoVM;
use regorus::utils::limits::ExecutionTimerConfig;
use serde_json::Value;

/// Nesting deeper than this in an input object is refused (Kubernetes
/// objects are far shallower; the bound keeps conversion's recursion safe).
pub(crate) const MAX_INPUT_DEPTH: usize = 64;

/// VMs kept per thread (one per live compiled policy set; more than a few
/// only while sets are being replaced).
const VMS_PER_THREAD: usize = 4;

/// Work units between execution-timer checks.
const TIMER_CHECK_INTERVAL: u32 = 256;

/// The most VM instructions one evaluation may execute. The built-in packs
/// use a few thousand on a typical Deployment; the time limit is the
/// primary bound, this one keeps a runaway loop from even reaching it.
const MAX_INSTRUCTIONS: usize = 50_000_000;

/// Distinguishes compiled policy sets in the per-thread VM cache.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Object keys interned per thread (Kubernetes objects repeat the same few
/// hundred keys): a key is then an atomic increment instead of an
/// allocation. Bounded in count and length.
const MAX_INTERNED_KEYS: usize = 4096;
const MAX_INTERNED_KEY_LEN: usize = 64;

thread_local! {
    static VMS: RefCell<Vec<(u64, RegoVM)>> = const { RefCell::new(Vec::new()) };
    static KEYS: RefCell<HashMap<String, regorus::Value, BuildHasherDefault<Fnv>>> =
        RefCell::new(HashMap::default());
}

/// FNV-1a: the interned keys are short, and SipHash's DoS resistance is not
/// needed for a bounded table that only affects speed.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// A Rego string for an object key, interned when short.
pub(crate) fn key(k: &str) -> regorus::Value {
    if k.len() > MAX_INTERNED_KEY_LEN {
        return regorus::Value::from(k);
    }
    KEYS.with(|cell| {
        let Ok(mut keys) = cell.try_borrow_mut() else {
            return regorus::Value::from(k);
        };
        if let Some(v) = keys.get(k) {
            return v.clone();
        }
        let v = regorus::Value::from(k);
        if keys.len() < MAX_INTERNED_KEYS {
            keys.insert(k.to_owned(), v.clone());
        }
        v
    })
}

/// A compiled set of Rego modules with one entry point.
#[derive(Clone)]
pub(crate) struct Compiled {
    id: u64,
    program: Arc<Program>,
    /// The interpreter, kept to cross-check the VM in tests.
    #[cfg(test)]
    pub(crate) interpreter: regorus::Engine,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Why Rego could not be compiled or evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegoError {
    /// A module does not parse or compile; the message has file:line:col.
    #[error("{0}")]
    Compile(String),
    /// Evaluation failed or ran past its time or instruction limit.
    #[error("{0}")]
    Eval(String),
    /// The input is nested too deeply.
    #[error("input nested deeper than {MAX_INPUT_DEPTH} levels")]
    TooDeep,
}

impl Compiled {
    /// Parses, checks and compiles `modules` (path, source) to a VM program
    /// for `entry_point`.
    pub(crate) fn compile(modules: &[(&str, &str)], entry_point: &str) -> Result<Self, RegoError> {
        let mut engine = regorus::Engine::new();
        engine.set_rego_v0(false);
        for (path, source) in modules {
            engine
                .add_policy((*path).to_owned(), (*source).to_owned())
                .map_err(|e| RegoError::Compile(e.to_string()))?;
        }
        let entry: regorus::Rc<str> = entry_point.into();
        let policy = engine
            .compile_with_entrypoint(&entry)
            .map_err(|e| RegoError::Compile(e.to_string()))?;
        let program = Compiler::compile_from_policy(&policy, &[entry_point])
            .map_err(|e| RegoError::Compile(e.to_string()))?;
        Ok(Compiled {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            program,
            #[cfg(test)]
            interpreter: engine,
        })
    }

    /// Evaluates the entry point with `input` on this thread's VM, within
    /// `limit`.
    pub(crate) fn eval(
        &self,
        input: regorus::Value,
        limit: Duration,
    ) -> Result<regorus::Value, RegoError> {
        VMS.with(|cell| {
            let Ok(mut vms) = cell.try_borrow_mut() else {
                // Only reachable by re-entering evaluation from inside it;
                // use a fresh VM rather than fail.
                return self.run(&mut self.new_vm(), input, limit);
            };
            let index = match vms.iter().position(|(id, _)| *id == self.id) {
                Some(i) => i,
                None => {
                    if vms.len() >= VMS_PER_THREAD {
                        vms.remove(0);
                    }
                    vms.push((self.id, self.new_vm()));
                    vms.len() - 1
                }
            };
            match vms.get_mut(index) {
                Some((_, vm)) => self.run(vm, input, limit),
                None => Err(RegoError::Eval("VM cache out of step".into())),
            }
        })
    }

    fn new_vm(&self) -> RegoVM {
        let mut vm = RegoVM::new();
        vm.load_program(Arc::clone(&self.program));
        vm.set_max_instructions(MAX_INSTRUCTIONS);
        vm
    }

    fn run(
        &self,
        vm: &mut RegoVM,
        input: regorus::Value,
        limit: Duration,
    ) -> Result<regorus::Value, RegoError> {
        vm.set_execution_timer_config(Some(ExecutionTimerConfig {
            limit,
            check_interval: NonZeroU32::new(TIMER_CHECK_INTERVAL).unwrap_or(NonZeroU32::MIN),
        }));
        vm.set_input(input);
        let result = vm.execute().map_err(|e| RegoError::Eval(e.to_string()));
        // Do not keep the object alive in the cached VM.
        vm.set_input(regorus::Value::Null);
        result
    }
}

/// Converts a JSON value into a Rego value, leaving out
/// `metadata.managedFields` (large, and never a policy input).
pub(crate) fn to_rego(value: &Value) -> Result<regorus::Value, RegoError> {
    convert(value, 0, false)
}

/// Converts a JSON object into a Rego object without the top-level `skip`
/// keys (and without `metadata.managedFields`).
pub(crate) fn to_rego_without(value: &Value, skip: &[&str]) -> Result<regorus::Value, RegoError> {
    let Value::Object(map) = value else {
        return convert(value, 0, false);
    };
    let mut out = regorus::value::Object::new();
    for (k, v) in map {
        if !skip.contains(&k.as_str()) {
            out.insert(key(k), convert(v, 1, k == "metadata")?);
        }
    }
    Ok(out.into_value())
}

fn convert(value: &Value, depth: usize, in_metadata: bool) -> Result<regorus::Value, RegoError> {
    if depth > MAX_INPUT_DEPTH {
        return Err(RegoError::TooDeep);
    }
    Ok(match value {
        Value::Null => regorus::Value::Null,
        Value::Bool(b) => regorus::Value::from(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                regorus::Value::from(i)
            } else if let Some(u) = n.as_u64() {
                regorus::Value::from(u)
            } else {
                regorus::Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => regorus::Value::from(s.as_str()),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                out.push(convert(item, depth + 1, false)?);
            }
            regorus::Value::from(out)
        }
        Value::Object(map) => {
            let mut out = regorus::value::Object::new();
            for (k, v) in map {
                if in_metadata && k == "managedFields" {
                    continue;
                }
                let child = convert(v, depth + 1, k == "metadata")?;
                out.insert(key(k), child);
            }
            out.into_value()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn converts_json_and_drops_managed_fields() {
        let v = json!({"metadata": {"name": "a", "managedFields": [{"x": 1}]},
            "n": [1, -2, 2.5, 18446744073709551615u64], "b": true, "z": null});
        let r = to_rego(&v).unwrap();
        let back: Value = serde_json::from_str(&r.to_json_str().unwrap()).unwrap();
        assert_eq!(
            back,
            json!({"metadata": {"name": "a"}, "n": [1, -2, 2.5, 18446744073709551615u64], "b": true, "z": null})
        );
    }

    #[test]
    fn refuses_deep_inputs() {
        let mut v = json!(1);
        for _ in 0..(MAX_INPUT_DEPTH + 2) {
            v = json!([v]);
        }
        assert_eq!(to_rego(&v).unwrap_err(), RegoError::TooDeep);
    }

    #[test]
    fn vm_and_interpreter_agree() {
        let src = "package p\nimport rego.v1\ny contains x if { some x in input.xs; x > 1 }\n";
        let mut compiled = Compiled::compile(&[("p.rego", src)], "data.p.y").unwrap();
        let input = to_rego(&json!({"xs": [1, 2, 3]})).unwrap();
        let vm = compiled
            .eval(input.clone(), Duration::from_secs(1))
            .unwrap();
        compiled.interpreter.set_input(input);
        let interpreted = compiled.interpreter.eval_rule("data.p.y".into()).unwrap();
        assert_eq!(vm, interpreted);
        assert_eq!(vm.to_json_str().unwrap().replace([' ', '\n'], ""), "[2,3]");
    }

    #[test]
    fn reports_compile_errors_with_a_location() {
        let err = Compiled::compile(&[("bad.rego", "package p\nx := {\n")], "data.p.x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("bad.rego:"), "{err}");
    }

    #[test]
    fn stops_runaway_evaluation() {
        let src = "package p\nimport rego.v1\ny := count([1 | some a in numbers.range(1, input.n); some b in numbers.range(1, input.n)])\n";
        let compiled = Compiled::compile(&[("slow.rego", src)], "data.p.y").unwrap();
        let input = to_rego(&json!({"n": 20_000})).unwrap();
        let start = std::time::Instant::now();
        let err = compiled
            .eval(input, Duration::from_millis(20))
            .unwrap_err()
            .to_string();
        assert!(err.contains("time") || err.contains("limit"), "{err}");
        // Bounded: stopped long before the 400 million iterations end.
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}
