//! End to end: `tollgate check` as a CI gate. What a pipeline relies on:
//! every input error reaches every output format and fails the gate (exit
//! 2), empty input fails unless asked for, warnings are shown whole, and
//! each finding is reported once.

// Test helpers may panic: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support_webhook;

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use support_webhook::{binary, write};

fn tollgate(args: &[&str], stdin: Option<&str>, cwd: &std::path::Path) -> Output {
    let mut child = Command::new(binary())
        .current_dir(cwd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

const POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: default
  annotations: {deployscope.dev/owner: team-web, deployscope.dev/tier: standard}
spec:
  securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
  containers:
  - name: web
    image: ghcr.io/acme/web:1.0
    securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
";

#[test]
fn input_errors_reach_every_output_format_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "pod.yaml", POD);
    let args =
        |format: &'static str| vec!["check", "-f", "nope.yaml", "-f", "pod.yaml", "-o", format];

    let out = tollgate(&args("json"), None, dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["summary"]["errors"], 1, "{doc}");
    assert_eq!(doc["summary"]["objects"], 1, "{doc}");
    let message = doc["errors"][0]["message"].as_str().unwrap();
    assert!(message.starts_with("nope.yaml: "), "{message}");

    let out = tollgate(&args("junit"), None, dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let xml = String::from_utf8_lossy(&out.stdout);
    assert!(xml.contains("<testsuite name=\"input\""), "{xml}");
    assert!(
        xml.contains("<error type=\"input\" message=\"nope.yaml: "),
        "{xml}"
    );

    let out = tollgate(&args("sarif"), None, dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let invocation = &doc["runs"][0]["invocations"][0];
    assert_eq!(invocation["executionSuccessful"], false, "{doc}");
    let text0 = invocation["toolExecutionNotifications"][0]["message"]["text"]
        .as_str()
        .unwrap();
    assert!(text0.starts_with("nope.yaml: "), "{text0}");
}

#[test]
fn empty_input_fails_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    for input in ["", "# only a comment\n", "---\n---\n"] {
        let out = tollgate(&["check", "-f", "-"], Some(input), dir.path());
        assert_eq!(out.status.code(), Some(2), "{input:?}: {}", text(&out));
        assert!(
            text(&out).contains("no Kubernetes objects in the input"),
            "{}",
            text(&out)
        );
        let out = tollgate(&["check", "-f", "-", "-o", "json"], Some(input), dir.path());
        assert_eq!(out.status.code(), Some(2));
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(doc["summary"]["errors"], 1, "{doc}");
        let out = tollgate(
            &["check", "-f", "-", "--allow-empty"],
            Some(input),
            dir.path(),
        );
        assert_eq!(out.status.code(), Some(0), "{input:?}: {}", text(&out));
    }
}

/// The README promises `check` shows every warning whole; admission
/// warnings are cut at 256 characters for kube-apiserver, `check` is not.
#[test]
fn warnings_are_shown_whole() {
    let dir = tempfile::tempdir().unwrap();
    let long_profile = "p".repeat(63);
    let namespace = "n".repeat(63);
    let label = format!("compliance.tollgate.dev/{long_profile}=enforce");
    let out = tollgate(
        &[
            "check",
            "-f",
            "-",
            "--namespace",
            &namespace,
            "--namespace-labels",
            &label,
        ],
        Some(&POD.replace("  namespace: default\n", "")),
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let warning = stdout
        .lines()
        .find(|l| l.contains("unknown profile"))
        .unwrap_or_else(|| panic!("no warning in {stdout}"));
    assert!(warning.chars().count() > 256, "{warning}");
    assert!(warning.contains(&namespace), "{warning}");
    assert!(warning.ends_with("it is ignored"), "{warning}");
}

/// `tollgate certs issue` keeps private keys out of git work trees unless
/// forced, and refuses names a certificate cannot carry.
#[test]
fn certs_issue_keeps_keys_out_of_git_and_checks_names() {
    let repo = tempfile::tempdir().unwrap();
    let status = Command::new("git")
        .args(["init", "-q"])
        .current_dir(repo.path())
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::create_dir(repo.path().join("sub")).unwrap();
    let issue = |extra: &[&str], cwd: &std::path::Path| {
        let mut args = vec!["certs", "issue", "--dns", "tollgate-webhook.tollgate.svc"];
        args.extend_from_slice(extra);
        tollgate(&args, None, cwd)
    };
    // From a subdirectory, into a directory that does not exist yet.
    let out = issue(&["--out", "certs/new"], &repo.path().join("sub"));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("inside the git work tree"),
        "{}",
        text(&out)
    );
    assert!(!repo.path().join("sub/certs").exists());
    let out = issue(&["--out", "certs", "--force"], repo.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(repo.path().join("certs/ca.key").exists());

    let outside = tempfile::tempdir().unwrap();
    let out = issue(&["--out", "certs"], outside.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let out = tollgate(
        &["certs", "issue", "--dns", "bad name!", "--out", "more"],
        None,
        outside.path(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("is not a DNS name or IP address"),
        "{}",
        text(&out)
    );
    assert!(!outside.path().join("more").exists());
}

/// A Gatekeeper library directory (template, `suite.yaml`, `samples/` with
/// constraints and example objects) is usable as `--constraints DIR`: what
/// is not a template or constraint is skipped with a note.
#[test]
fn constraints_dir_skips_what_is_not_a_template_or_constraint() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "app.yaml",
        &POD.replace("ghcr.io/acme/web:1.0", "ghcr.io/acme/web:latest"),
    );
    let library = support_webhook::root().join("policies/gatekeeper/image-digests");
    let out = tollgate(
        &[
            "check",
            "-f",
            "app.yaml",
            "--constraints",
            library.to_str().unwrap(),
        ],
        None,
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("[constraints:K8sImageDigests/"),
        "{}",
        text(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("note: constraints: skipped ") && stderr.contains("suite.yaml"),
        "{stderr}"
    );
    // A file named directly is never skipped: it must be what it claims.
    let suite = library.join("suite.yaml");
    let out = tollgate(
        &[
            "check",
            "-f",
            "app.yaml",
            "--constraints",
            suite.to_str().unwrap(),
        ],
        None,
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

/// `audit verify` and `audit tail` take `-o/--output` like every other
/// command; `--format` still works and is no longer advertised.
#[test]
fn audit_commands_take_output_like_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    std::fs::create_dir(&journal).unwrap();
    let j = journal.to_str().unwrap();
    for (command, format) in [("verify", "json"), ("tail", "json")] {
        let short = tollgate(&["audit", command, j, "-o", format], None, dir.path());
        let long = tollgate(&["audit", command, j, "--output", format], None, dir.path());
        let old = tollgate(&["audit", command, j, "--format", format], None, dir.path());
        assert!(
            !text(&short).contains("unexpected argument"),
            "{}",
            text(&short)
        );
        // JSON, not the text format: the flag took effect.
        let stdout = String::from_utf8_lossy(&short.stdout);
        if !stdout.trim().is_empty() {
            for line in stdout.lines().filter(|l| !l.trim().is_empty()).take(1) {
                assert!(line.trim_start().starts_with('{'), "{command}: {stdout}");
            }
        }
        for other in [&long, &old] {
            assert_eq!(other.status.code(), short.status.code(), "{command}");
            assert_eq!(other.stdout, short.stdout, "{command}");
        }
        let help = tollgate(&["audit", command, "--help"], None, dir.path());
        let help = String::from_utf8_lossy(&help.stdout);
        assert!(help.contains("-o, --output"), "{help}");
        assert!(!help.contains("--format"), "{help}");
    }
}

/// What users of kubectl, conftest and the kyverno CLI expect: `-o yaml`,
/// `--fail-on-warn`, `-q`, and a per-policy table after the text report.
#[test]
fn ci_conventions() {
    let dir = tempfile::tempdir().unwrap();
    let pod = POD.replace("ghcr.io/acme/web:1.0", "ghcr.io/acme/web:latest");
    let warn = ["--namespace-labels", "compliance.tollgate.dev/pci-dss=warn"];
    let run = |extra: &[&str]| {
        let mut args = vec!["check", "-f", "-"];
        args.extend_from_slice(&warn);
        args.extend_from_slice(extra);
        tollgate(&args, Some(&pod), dir.path())
    };

    let out = run(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let table = stdout
        .lines()
        .skip_while(|l| !l.starts_with("POLICY"))
        .collect::<Vec<_>>();
    assert!(!table.is_empty(), "{stdout}");
    assert!(
        table[0]
            .split_whitespace()
            .eq(["POLICY", "RULE", "DENY", "WARN", "AUDIT"])
    );
    assert!(
        table.iter().any(|l| l.split_whitespace().eq([
            "compliance",
            "image-pinned",
            "0",
            "1",
            "0"
        ])),
        "{stdout}"
    );

    let out = run(&["--fail-on-warn"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    let out = run(&["-q"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty(), "{}", text(&out));
    let out = run(&["-q", "--fail-on-warn"]);
    assert_eq!(out.status.code(), Some(1));

    let out = run(&["-o", "yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let doc: Value = yaml_serde::from_str(&String::from_utf8_lossy(&out.stdout)).unwrap();
    assert_eq!(doc["kind"], "CheckReport");
    assert_eq!(doc["results"][0]["object"]["name"], "web");
}

/// `tollgate completion SHELL` prints a script the shell accepts.
#[test]
fn shell_completion() {
    let dir = tempfile::tempdir().unwrap();
    let out = tollgate(&["completion", "bash"], None, dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let script = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        script.contains("complete -F") && script.contains("tollgate"),
        "{script}"
    );
    assert!(
        script.contains("--fail-on-warn"),
        "check's flags are completed"
    );
    // bash parses it.
    let path = write(dir.path(), "tollgate.bash", &script);
    let status = Command::new("bash")
        .args(["-n", path.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    for shell in ["zsh", "fish"] {
        let out = tollgate(&["completion", shell], None, dir.path());
        assert_eq!(out.status.code(), Some(0), "{shell}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("tollgate"),
            "{shell}"
        );
    }
    let out = tollgate(&["completion", "tcsh"], None, dir.path());
    assert_eq!(out.status.code(), Some(2));
}

/// Exit statuses are the ones the help states.
#[test]
fn sidecar_check_exit_codes_match_the_help() {
    let dir = tempfile::tempdir().unwrap();
    let help = tollgate(&["sidecar", "--help"], None, dir.path());
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    assert!(
        help.contains("0 valid, 1 invalid, 2 a file cannot be read"),
        "{help}"
    );
    let out = tollgate(
        &["sidecar", "--check", "--policy", "missing.yaml"],
        None,
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let bad = write(dir.path(), "bad.yaml", "kind: NotAPolicy\n");
    let out = tollgate(
        &["sidecar", "--check", "--policy", bad.to_str().unwrap()],
        None,
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}

/// An error's cause is printed once, not once per layer that wraps it.
#[test]
fn error_causes_are_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = tollgate(
        &[
            "webhook",
            "--listen",
            &addr,
            "--metrics-listen",
            "127.0.0.1:0",
            "--state-dir",
            dir.path().join("state").to_str().unwrap(),
        ],
        None,
        dir.path(),
    );
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("in use"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert_eq!(line.matches("in use").count(), 1, "{line}");
}
