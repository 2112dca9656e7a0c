//! AdmissionReview decoding, evaluation (validate and mutate) and response
//! encoding, on arbitrary bytes: nothing may panic, every decoded request
//! gets a well-formed answer echoing its uid, and every patch applies to
//! the object it was computed for.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tollgate_policies::config::PolicyConfig;
use tollgate_policies::engine::{Options, Snapshot};
use tollgate_webhook::{Endpoint, decide, review};

/// The built-in policy plus namespaces whose labels exercise every mode,
/// every level and the invalid-label paths.
static SNAPSHOT: LazyLock<Snapshot> = LazyLock::new(|| {
    let config = PolicyConfig::from_yaml(
        r#"
podSecurity:
  exemptions: {namespaces: [kube-system], usernames: [admin], runtimeClasses: [kata]}
namespaces:
  baseline: {labels: {pss.tollgate.dev/enforce: baseline, pss.tollgate.dev/enforce-version: v1.20}}
  warn: {labels: {pss.tollgate.dev/enforce: privileged, pss.tollgate.dev/warn: restricted}}
  open: {labels: {pss.tollgate.dev/enforce: privileged, pss.tollgate.dev/warn: privileged, pss.tollgate.dev/audit: privileged}}
  typo: {labels: {pss.tollgate.dev/enforce: strict, pss.tollgate.dev/warn-version: "1.2"}}
"#,
    )
    .expect("the fuzz config parses");
    Snapshot::from_config(&config)
});

fuzz_target!(|data: &[u8]| {
    for endpoint in [Endpoint::Validate, Endpoint::Mutate] {
        let Ok((request, evaluation)) =
            decide(&SNAPSHOT, endpoint, data, 64, &Options::default())
        else {
            continue;
        };
        let out = review::encode(&request.uid, &evaluation, None);
        let answer: Value = serde_json::from_slice(&out).expect("the answer is JSON");
        assert_eq!(answer["response"]["uid"].as_str(), Some(request.uid.as_str()));
        assert_eq!(answer["response"]["allowed"].as_bool(), Some(evaluation.allowed()));
        if !evaluation.patch.is_empty() {
            let mut object = request
                .object
                .as_ref()
                .expect("a patch needs an object")
                .value()
                .clone();
            json_patch::patch(&mut object, &evaluation.patch).expect("the patch applies");
        }
        if let Some(denial) = evaluation.denial() {
            assert!(!denial.message.is_empty());
        }
        let warnings = evaluation.warnings();
        assert!(warnings.iter().all(|w| w.chars().count() <= 256));
        assert!(warnings.iter().map(|w| w.chars().count()).sum::<usize>() <= 4096);
    }
});
