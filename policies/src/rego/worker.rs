//! Per-worker engines: each thread evaluates on its own clone of a program's
//! prepared engine, kept in thread-local storage and keyed by the program
//! (and the data document it was given). No lock is taken on the request
//! path; a clone is made once per thread per program, and again only when
//! the data document changes.
//!
//! Entries hold a weak reference to their program, so engines of programs
//! that were dropped (a replaced policy set) are released the next time the
//! thread builds a new engine.

use std::cell::RefCell;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Weak};
use std::time::Duration;

use regorus::utils::limits::ExecutionTimerConfig;

use super::{Data, ProgramInner};

/// Work units between two reads of the clock: small enough that a runaway
/// evaluation is stopped within microseconds of its budget.
const CHECK_INTERVAL: u32 = 32;

struct Slot {
    owner: Weak<ProgramInner>,
    data_generation: u64,
    engine: Option<regorus::Engine>,
}

thread_local! {
    static ENGINES: RefCell<HashMap<u64, Slot>> = RefCell::new(HashMap::new());
}

/// Why an evaluation produced no value.
pub(crate) enum EvalFailure {
    /// The interpreter returned an error.
    Regorus(anyhow::Error),
    /// The interpreter panicked; the engine was discarded.
    Panicked(String),
}

/// Sets the wall-clock budget of the engine's next evaluation.
pub(crate) fn apply_timeout(engine: &mut regorus::Engine, budget: Duration) {
    let check_interval = NonZeroU32::new(CHECK_INTERVAL).unwrap_or(NonZeroU32::MIN);
    engine.set_execution_timer_config(ExecutionTimerConfig {
        limit: budget,
        check_interval,
    });
}

fn take(program: &Arc<ProgramInner>, generation: u64) -> Option<regorus::Engine> {
    ENGINES.with(|engines| {
        let mut engines = engines.borrow_mut();
        let slot = engines.get_mut(&program.id())?;
        if slot.data_generation != generation {
            return None;
        }
        slot.engine.take()
    })
}

fn put_back(program: &Arc<ProgramInner>, generation: u64, engine: regorus::Engine) {
    ENGINES.with(|engines| {
        let mut engines = engines.borrow_mut();
        match engines.get_mut(&program.id()) {
            Some(slot) if slot.data_generation == generation => slot.engine = Some(engine),
            _ => {
                // A new entry: first drop the engines of programs that no
                // longer exist anywhere.
                engines.retain(|_, slot| slot.owner.strong_count() > 0);
                engines.insert(
                    program.id(),
                    Slot {
                        owner: Arc::downgrade(program),
                        data_generation: generation,
                        engine: Some(engine),
                    },
                );
            }
        }
    })
}

fn fresh(program: &ProgramInner, data: Option<&Data>) -> Result<regorus::Engine, EvalFailure> {
    let mut engine = program.prototype().clone();
    engine.set_gather_prints(true);
    if let Some(data) = data {
        engine
            .add_data(data.value().as_regorus().clone())
            .map_err(EvalFailure::Regorus)?;
    }
    Ok(engine)
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

/// Runs `f` on this thread's engine for `program`, with `data` as the base
/// document and `budget` as the time limit. Output of `print` is returned
/// beside the result.
pub(crate) fn with_engine<T>(
    program: &Arc<ProgramInner>,
    data: Option<&Data>,
    budget: Duration,
    f: impl FnOnce(&mut regorus::Engine) -> anyhow::Result<T>,
) -> Result<(T, Vec<String>), EvalFailure> {
    let generation = data.map_or(0, |d| d.generation);
    let mut engine = match take(program, generation) {
        Some(engine) => engine,
        None => fresh(program, data)?,
    };
    apply_timeout(&mut engine, budget);
    // regorus is written not to panic; should it anyway, the request gets an
    // error instead of taking the worker down, and the engine is discarded.
    let outcome = catch_unwind(AssertUnwindSafe(|| f(&mut engine)));
    match outcome {
        Ok(result) => {
            let prints = engine.take_prints().unwrap_or_default();
            put_back(program, generation, engine);
            result.map(|v| (v, prints)).map_err(EvalFailure::Regorus)
        }
        Err(payload) => Err(EvalFailure::Panicked(panic_message(payload.as_ref()))),
    }
}

/// How many engines this thread holds (for tests).
#[cfg(test)]
pub(crate) fn cached_engines() -> usize {
    ENGINES.with(|engines| engines.borrow().len())
}
