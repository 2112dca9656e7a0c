//! Fuzzes the Rego layer: the input is a Rego module, compiled as v0 and as
//! v1; every rule it defines is evaluated with an empty input under a tight
//! time limit. No input may panic, hang or overflow the stack.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tollgate_policies::rego::{Limits, Module, Program, RegoVersion, Value};

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let limits = Limits {
        eval_timeout: Duration::from_millis(20),
        max_builtin_elements: 10_000,
    };
    for version in [RegoVersion::V0, RegoVersion::V1] {
        let Ok(program) = Program::compile(vec![Module::new("fuzz.rego", source, version)], limits) else {
            continue;
        };
        let rules: Vec<String> = program
            .modules()
            .iter()
            .flat_map(|m| m.rules.iter().filter(|r| !r.function).map(|r| m.rule_path(&r.name)))
            .collect();
        for rule in rules.iter().take(16) {
            let _ = program.eval_rule(rule, &Value::empty_object(), None);
        }
    }
});
