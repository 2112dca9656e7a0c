//! End-to-end tests of `tollgate test`: the real binary runs Rego unit tests
//! (`test_*` rules) from files written to a temporary directory.

// Test helpers may unwrap: a panic here is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::Path;
use std::process::{Command, Output};

fn tollgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(args)
        .output()
        .expect("run tollgate")
}

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A v0 policy with its tests, and a v1 library with its own.
fn project(dir: &Path) {
    write(
        dir,
        "labels/policy.rego",
        r#"package k8srequiredlabels

violation[{"msg": msg}] {
  not input.review.object.metadata.labels.owner
  msg := "missing owner"
}
"#,
    );
    write(
        dir,
        "labels/policy_test.rego",
        r#"package k8srequiredlabels

test_missing_owner_is_a_violation {
  count(violation) == 1 with input as {"review": {"object": {"metadata": {"labels": {}}}}}
}

test_owner_present_is_fine {
  count(violation) == 0 with input as {"review": {"object": {"metadata": {"labels": {"owner": "a"}}}}}
}

todo_test_annotations {
  false
}
"#,
    );
    write(
        dir,
        "lib/images.rego",
        r#"package lib.images

import rego.v1

tag(image) := t if {
  parts := split(image, ":")
  count(parts) > 1
  t := parts[count(parts) - 1]
}
"#,
    );
    write(
        dir,
        "lib/images_test.rego",
        r#"package lib.images_test

import data.lib.images
import rego.v1

test_tag if images.tag("nginx:1.27") == "1.27"

test_untagged_has_no_tag if not images.tag("nginx")
"#,
    );
}

#[test]
fn passing_tests_exit_0_with_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    project(dir.path());
    let out = tollgate(&["test", dir.path().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("PASS: 4/5"), "{stdout}");
    assert!(stdout.contains("SKIPPED: 1/5"), "{stdout}");

    let verbose = tollgate(&["test", "-v", dir.path().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&verbose.stdout);
    assert!(
        stdout.contains("data.lib.images_test.test_tag: PASS"),
        "{stdout}"
    );
    assert!(
        stdout.contains("data.k8srequiredlabels.test_owner_present_is_fine: PASS"),
        "{stdout}"
    );
}

#[test]
fn failures_and_errors_exit_1_and_are_located() {
    let dir = tempfile::tempdir().unwrap();
    project(dir.path());
    write(
        dir.path(),
        "labels/more_test.rego",
        r#"package k8srequiredlabels

test_wrong_expectation {
  count(violation) == 2 with input as {"review": {"object": {"metadata": {"labels": {}}}}}
}

test_builtin_error_is_undefined {
  print("about to fail")
  to_number("not a number") == 1
}

conflict = 1 { true }
conflict = 2 { true }

test_conflict {
  conflict == 1
}
"#,
    );
    let out = tollgate(&["test", dir.path().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("data.k8srequiredlabels.test_wrong_expectation: FAIL"),
        "{stdout}"
    );
    assert!(stdout.contains("more_test.rego:3:1]"), "{stdout}");
    assert!(
        stdout.contains("data.k8srequiredlabels.test_conflict: ERROR"),
        "{stdout}"
    );
    assert!(
        stdout.contains("data.k8srequiredlabels.test_builtin_error_is_undefined: FAIL"),
        "{stdout}"
    );
    assert!(
        stdout.contains(": about to fail"),
        "prints of failing tests are shown:\n{stdout}"
    );
    assert!(stdout.contains("FAIL: 2/8"), "{stdout}");
    assert!(stdout.contains("ERROR: 1/8"), "{stdout}");
}

#[test]
fn run_filter_and_json_output() {
    let dir = tempfile::tempdir().unwrap();
    project(dir.path());
    let out = tollgate(&[
        "test",
        "--run",
        "images",
        "--output",
        "json",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let records: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = records
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "data.lib.images_test.test_tag",
            "data.lib.images_test.test_untagged_has_no_tag"
        ]
    );
    assert!(
        records[0]["location"]
            .as_str()
            .unwrap()
            .ends_with("images_test.rego:6:1")
    );
    assert_eq!(records[0]["outcome"], "pass");
}

#[test]
fn compile_errors_exit_2_with_file_line_column() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "broken.rego",
        "package broken\n\nallow {\n  input.x ==\n}\n",
    );
    let out = tollgate(&["test", dir.path().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("broken.rego:"), "{stderr}");

    let recursive = tempfile::tempdir().unwrap();
    write(
        recursive.path(),
        "r.rego",
        "package r\nf(x) = y { y := f(x) }\ntest_f { f(1) }\n",
    );
    let out = tollgate(&["test", recursive.path().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("r.rego:2:1: recursion is not allowed"),
        "{stderr}"
    );

    let none = tempfile::tempdir().unwrap();
    assert_eq!(
        tollgate(&["test", none.path().to_str().unwrap()])
            .status
            .code(),
        Some(2)
    );
}

/// The repository's own compliance packs carry Rego unit tests, found and
/// passed by `tollgate test`.
#[test]
fn the_compliance_packs_have_passing_rego_tests() {
    let packs = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/packs");
    let out = tollgate(&["test", packs.to_str().unwrap(), "-o", "json"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let records = records.as_array().unwrap();
    let names: Vec<&str> = records
        .iter()
        .map(|r| r["name"].as_str().unwrap_or_default())
        .collect();
    assert!(records.iter().all(|r| r["outcome"] == "pass"), "{stdout}");
    let rules = [
        "container-resources",
        "health-probes",
        "ingress-tls",
        "storage-encrypted",
    ];
    for rule in rules {
        let test = format!("test_{}", rule.replace('-', "_"));
        assert!(
            names.iter().any(|n| n.ends_with(&test)),
            "no {test} among {names:?}"
        );
    }
}
