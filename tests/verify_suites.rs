//! End-to-end tests of `tollgate verify`: the real binary runs the example
//! Gatekeeper suites under `policies/gatekeeper/`, and broken copies of them.

// Test helpers may unwrap: a panic here is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tollgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run tollgate")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn example_suites_pass() {
    let out = tollgate(&["verify", "policies/gatekeeper"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = stdout.lines().last().unwrap();
    assert!(summary.contains(" 0 failed"), "{summary}");
    let passed: usize = summary
        .split(", ")
        .find_map(|p| p.strip_suffix(" passed"))
        .and_then(|p| p.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(passed >= 25, "{summary}");
    for suite in [
        "required-labels",
        "image-digests",
        "unique-service-selector",
        "agent-sidecar",
        "immutable-owner",
    ] {
        assert!(
            stdout.contains(&format!("policies/gatekeeper/{suite}/suite.yaml")),
            "{suite} not run:\n{stdout}"
        );
    }
}

#[test]
fn json_output_has_one_record_per_case() {
    let out = tollgate(&[
        "verify",
        "--output",
        "json",
        "policies/gatekeeper/immutable-owner",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let records: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let records = records.as_array().unwrap();
    assert_eq!(records.len(), 5);
    for r in records {
        for key in ["suite", "test", "case", "passed", "message"] {
            assert!(r.get(key).is_some(), "{key} missing in {r}");
        }
        assert_eq!(r["passed"], true);
        assert_eq!(r["test"], "owner-is-immutable");
    }
    assert_eq!(records[0]["case"], "owner-changed");
}

#[test]
fn failing_assertions_exit_1_and_say_why() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(
        &root().join("policies/gatekeeper/required-labels"),
        dir.path(),
    );
    let suite = dir.path().join("suite.yaml");
    let text = std::fs::read_to_string(&suite).unwrap();
    std::fs::write(
        &suite,
        text.replace("    - violations: 2\n", "    - violations: 3\n"),
    )
    .unwrap();
    let out = tollgate(&["verify", dir.path().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL  owner-and-tier/bad-values"),
        "{stdout}"
    );
    assert!(
        stdout.contains("got 2 violations but want exactly 3"),
        "{stdout}"
    );
    assert!(stdout.contains("PASS  owner-and-tier/allowed"), "{stdout}");
}

#[test]
fn run_filter_selects_cases() {
    let out = tollgate(&[
        "verify",
        "--run",
        "owner-and-tier/missing",
        "policies/gatekeeper",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("1 cases: 1 passed"), "{stdout}");
    let bad = tollgate(&["verify", "--run", "(", "policies/gatekeeper"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn unreadable_input_exits_2() {
    let missing = tollgate(&["verify", "no/such/dir"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no/such/dir"));

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("suite.yaml"), "kind: Suite\ntests: [\n").unwrap();
    let broken = tollgate(&["verify", dir.path().to_str().unwrap()]);
    assert_eq!(broken.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&broken.stderr).contains("invalid YAML"),
        "{}",
        String::from_utf8_lossy(&broken.stderr)
    );

    let empty = tempfile::tempdir().unwrap();
    let none = tollgate(&["verify", empty.path().to_str().unwrap()]);
    assert_eq!(none.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&none.stderr).contains("no suite.yaml"));
}

#[test]
fn a_broken_template_fails_its_cases_with_the_location() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(
        &root().join("policies/gatekeeper/unique-service-selector"),
        dir.path(),
    );
    let template = dir.path().join("template.yaml");
    let text = std::fs::read_to_string(&template).unwrap();
    std::fs::write(
        &template,
        text.replace(
            "s := concat(\",\", sort(pairs))",
            "s := concat(\",\", sort(pairs)",
        ),
    )
    .unwrap();
    let out = tollgate(&["verify", dir.path().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let location = format!("{}:", template.display());
    assert!(
        stdout.contains(&location),
        "the error should name {location}:\n{stdout}"
    );
    assert!(
        stdout.contains("(ConstraintTemplate k8suniqueserviceselector)"),
        "{stdout}"
    );
}
