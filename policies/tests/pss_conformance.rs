//! Pod Security Standards conformance.
//!
//! 1. Every fixture of the Kubernetes Pod Security Admission fixture set in
//!    `../shared/corpora/pod-security/<level>/<version>/<pass|fail>/*.yaml`
//!    (relative to the project root) is evaluated at its level and version:
//!    `pass/` must produce no violation, `fail/` at least one. The test
//!    skips, saying so, when the corpus is absent.
//! 2. Our own golden cases in `tests/data/pss/*.yaml` cover the upstream
//!    generator cases missing from that corpus and the version boundaries
//!    of every check. Each file holds one object and the exact set of
//!    failing check ids expected per level and version range.

// Test helpers outside #[test] functions: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;
use tollgate_policies::level::LATEST_MINOR;
use tollgate_policies::pss::{PssViolation, check_pod};
use tollgate_policies::{Level, Version, Workload};

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn load_yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    yaml_serde::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn evaluate(object: &Value, level: Level, version: Version, what: &str) -> Vec<PssViolation> {
    let workload = Workload::from_object(object)
        .unwrap_or_else(|e| panic!("{what}: {e}"))
        .unwrap_or_else(|| panic!("{what}: not a workload"));
    check_pod(level, version, &workload.pod_metadata, &workload.spec)
}

fn sorted_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

fn describe(violations: &[PssViolation]) -> String {
    let mut s = String::new();
    for v in violations {
        let _ = write!(s, "\n      - [{}] {}: {}", v.check, v.path, v.message);
    }
    s
}

#[test]
fn upstream_fixture_corpus_matches_exactly() {
    let corpus = project_root().join("../shared/corpora/pod-security");
    if !corpus.is_dir() {
        eprintln!(
            "SKIPPED: the Pod Security fixture corpus is absent ({}); place the shared corpora beside the project to run this test",
            corpus.display()
        );
        return;
    }
    let mut total = 0usize;
    let mut mismatches = Vec::new();
    for level in [Level::Baseline, Level::Restricted] {
        let level_dir = corpus.join(level.as_str());
        for version_dir in sorted_files(&level_dir) {
            let name = version_dir
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let version: Version = name.parse().unwrap_or_else(|e| panic!("{name}: {e}"));
            for (expect_pass, sub) in [(true, "pass"), (false, "fail")] {
                let dir = version_dir.join(sub);
                if !dir.is_dir() {
                    continue;
                }
                for file in sorted_files(&dir) {
                    if file.extension().and_then(|e| e.to_str()) != Some("yaml") {
                        continue;
                    }
                    total += 1;
                    let what = file.strip_prefix(&corpus).unwrap().display().to_string();
                    let violations = evaluate(&load_yaml(&file), level, version, &what);
                    if violations.is_empty() != expect_pass {
                        mismatches.push(format!(
                            "  {what}\n    expected: {}\n    got: {}{}",
                            if expect_pass { "pass" } else { "fail" },
                            if violations.is_empty() {
                                "pass (no violation)"
                            } else {
                                "fail"
                            },
                            describe(&violations)
                        ));
                    }
                }
            }
        }
    }
    assert!(total > 0, "no fixtures found under {}", corpus.display());
    eprintln!(
        "pod security conformance: {total} fixtures, {} mismatches",
        mismatches.len()
    );
    assert!(
        mismatches.is_empty(),
        "{} of {total} fixtures disagree with Pod Security Admission:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

/// One golden case: an object and what each level/version makes of it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Golden {
    /// What the case shows, and where it comes from.
    #[allow(dead_code)]
    description: String,
    object: Value,
    expect: Vec<Expectation>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expectation {
    level: String,
    /// `v1.N`, `v1.A-v1.B`, `v1.N+` (through the latest) or `latest`.
    versions: String,
    /// The exact set of failing check ids; empty means the pod passes.
    violations: Vec<String>,
    /// When given, the exact set of field paths reported.
    #[serde(default)]
    paths: Option<Vec<String>>,
}

fn version_range(spec: &str) -> Vec<Version> {
    let minor = |s: &str| -> u16 {
        match s
            .parse::<Version>()
            .unwrap_or_else(|e| panic!("versions {spec:?}: {e}"))
        {
            Version::Minor(m) => m,
            Version::Latest => LATEST_MINOR,
        }
    };
    if spec == "latest" {
        return vec![Version::Latest];
    }
    if let Some(from) = spec.strip_suffix('+') {
        let mut v: Vec<Version> = (minor(from)..=LATEST_MINOR).map(Version::Minor).collect();
        v.push(Version::Latest);
        v.push(Version::Minor(LATEST_MINOR + 5));
        return v;
    }
    if let Some((from, to)) = spec.split_once('-') {
        return (minor(from)..=minor(to)).map(Version::Minor).collect();
    }
    vec![Version::Minor(minor(spec))]
}

#[test]
fn golden_cases_match() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pss");
    let mut failures = Vec::new();
    let mut cases = 0usize;
    let mut evaluations = 0usize;
    for file in sorted_files(&dir) {
        if file.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        cases += 1;
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&file).unwrap();
        let golden: Golden = yaml_serde::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!golden.expect.is_empty(), "{name}: no expectations");
        for exp in &golden.expect {
            let level: Level = exp.level.parse().unwrap_or_else(|e| panic!("{name}: {e}"));
            let want: BTreeSet<&str> = exp.violations.iter().map(String::as_str).collect();
            for version in version_range(&exp.versions) {
                evaluations += 1;
                let got = evaluate(&golden.object, level, version, &name);
                let got_ids: BTreeSet<&str> = got.iter().map(|v| v.check).collect();
                let mut wrong = got_ids != want;
                if let Some(paths) = &exp.paths {
                    let want_paths: BTreeSet<&str> = paths.iter().map(String::as_str).collect();
                    let got_paths: BTreeSet<&str> = got.iter().map(|v| v.path.as_str()).collect();
                    wrong |= want_paths != got_paths;
                }
                if wrong {
                    failures.push(format!(
                        "  {name} at {level} {version}\n    expected: {:?}{}\n    got: {:?}{}",
                        want,
                        exp.paths
                            .as_ref()
                            .map(|p| format!(" at {p:?}"))
                            .unwrap_or_default(),
                        got_ids,
                        describe(&got)
                    ));
                }
            }
        }
    }
    assert!(cases > 0, "no golden cases in {}", dir.display());
    eprintln!("pod security golden cases: {cases} files, {evaluations} evaluations");
    assert!(
        failures.is_empty(),
        "{} golden mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
