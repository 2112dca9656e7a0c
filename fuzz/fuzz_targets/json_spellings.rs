//! Equivalent JSON spellings of one request are never decided more
//! leniently than the request itself: see the generator and the property in
//! `sidecar/tests/support_spellings/mod.rs`, shared with the `spellings` test.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tollgate_policies::action::ActionPolicy;

#[path = "../../sidecar/tests/support_spellings/mod.rs"]
mod spellings;

fuzz_target!(|data: &[u8]| {
    static POLICY: OnceLock<ActionPolicy> = OnceLock::new();
    spellings::check(POLICY.get_or_init(spellings::policy), data);
});
