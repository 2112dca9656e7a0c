//! Fuzzes ConstraintTemplate + constraint loading and evaluation: the input
//! is split into a template document, a constraint document and an object
//! (JSON) at NUL bytes. Loading must never panic; whatever loads is
//! evaluated under a tight time limit and must not panic either.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tollgate_policies::StaticNamespaces;
use tollgate_policies::gatekeeper::{ConstraintSet, Inventory, LoadOptions, Review, SourceFile};
use tollgate_policies::rego::Limits;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |b| *b == 0);
    let template = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let constraint = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let object = parts.next().unwrap_or_default();
    let options = LoadOptions {
        limits: Limits {
            eval_timeout: Duration::from_millis(20),
            max_builtin_elements: 10_000,
        },
        review_budget: Duration::from_millis(50),
    };
    let files = [
        SourceFile::new("template.yaml", template),
        SourceFile::new("constraint.yaml", constraint),
    ];
    let Ok(set) = ConstraintSet::load(&files, options) else {
        return;
    };
    let Ok(object) = serde_json::from_slice::<serde_json::Value>(object) else {
        return;
    };
    let review = match Review::from_object(&object) {
        Ok(r) => r,
        Err(_) => match Review::from_admission_request(&object) {
            Ok(r) => r,
            Err(_) => return,
        },
    };
    let inventory = Inventory::from_objects(std::slice::from_ref(&object)).unwrap_or_default();
    let _ = set.evaluate(&review, &StaticNamespaces::default(), &inventory);
});
