//! `tollgate config check FILE`: exit status 0 and "valid" for a good
//! config file, 1 and the field, line or cause for a bad one.

// Test helpers may panic: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

fn check(path: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["config", "check"])
        .arg(path)
        .output()
        .unwrap()
}

#[test]
fn the_example_config_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/config/tollgate.yaml");
    let out = check(&path);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.ends_with(": valid\n"), "{stdout}");
}

#[test]
fn a_bad_config_names_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "typo.yaml",
            "apiVersion: tollgate.dev/v1alpha1\nkind: TollgateConfig\nwebhook:\n  lisen: 0.0.0.0:8443\n",
            "unknown field `lisen`",
        ),
        (
            "value.yaml",
            "apiVersion: tollgate.dev/v1alpha1\nkind: TollgateConfig\npolicy:\n  podSecurity:\n    enforce: {level: strict}\n",
            "line 5",
        ),
        (
            "kind.yaml",
            "apiVersion: tollgate.dev/v1alpha1\nkind: Config\n",
            "kind: expected",
        ),
        // A syntax error is reported as one, not as a bad value of the
        // field being read when the parser met it.
        (
            "syntax.yaml",
            "apiVersion: tollgate.dev/v1alpha1\nkind: TollgateConfig\npolicy:\n  podSecurity:\n    enforce: {level: \"restricted}\n",
            "YAML syntax error",
        ),
        (
            "indent.yaml",
            "apiVersion: tollgate.dev/v1alpha1\nkind: TollgateConfig\npolicy:\n  podSecurity:\n    enforce:\n      level: restricted\n     version: latest\n",
            "YAML syntax error",
        ),
    ];
    for (name, text, want) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let out = check(&path);
        assert_eq!(out.status.code(), Some(1), "{name}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("invalid") && stderr.contains(want),
            "{name}: {stderr}"
        );
        assert!(out.stdout.is_empty());
    }
    let out = check(&dir.path().join("missing.yaml"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read config file"));
}

/// `tollgate crd | head -1`, `tollgate audit verify DIR | head`: a reader
/// that goes away ends the CLI quietly with SIGPIPE's shell status, not a
/// panic report.
#[test]
fn a_closed_stdout_ends_the_cli_quietly() {
    let (reader, writer) = std::io::pipe().unwrap();
    // No reader at all: the first write fails with a broken pipe.
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("crd")
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(141), "{stderr}");
}
