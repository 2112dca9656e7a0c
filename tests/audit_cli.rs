//! `tollgate audit tail`, `verify` (text output) and `keygen` as a person
//! uses them.

// Helpers of this test file may panic: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support_audit;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use support_audit::*;

fn produce(dir: &std::path::Path, state: &std::path::Path, count: &str) {
    let mut run = Loadgen::spawn(&[
        dir.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
        "--count",
        count,
    ]);
    assert!(run.finish(Duration::from_secs(60)).success());
}

fn tail(dir: &std::path::Path, args: &[&str]) -> Vec<String> {
    let out = Command::new(tollgate())
        .args(["audit", "tail"])
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn tail_prints_the_last_events_in_each_format_and_follows() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, state) = (tmp.path().join("journal"), tmp.path().join("state"));
    produce(&dir, &state, "30");

    let text = tail(&dir, &["-n", "5"]);
    assert_eq!(text.len(), 5);
    let last = text.last().unwrap();
    assert!(
        last.contains(" source=journal ") && last.contains("verb=checkpoint"),
        "{last}"
    );
    assert!(
        text[0].contains(" seq=") && text[0].contains(" outcome="),
        "{}",
        text[0]
    );

    let all = tail(&dir, &["--from", "1", "--format", "json"]);
    assert_eq!(all.len(), 31, "30 events and the shutdown checkpoint");
    let first: serde_json::Value = serde_json::from_str(&all[0]).unwrap();
    assert_eq!(first["schema"], "tollgate.audit/v1");
    let denied = tail(&dir, &["--from", "1"])
        .into_iter()
        .filter(|l| l.contains(" outcome=deny "))
        .count();
    assert_eq!(denied, 3, "grep-friendly: loadgen denies every tenth event");

    let ocsf = tail(&dir, &["-n", "1", "--format", "ocsf"]);
    let v: serde_json::Value = serde_json::from_str(&ocsf[0]).unwrap();
    assert_eq!(v["class_uid"], 6003);

    // -f follows events written by another process.
    let mut follow = Command::new(tollgate())
        .args(["audit", "tail", "-f", "-n", "0"])
        .arg(&dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = follow.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    produce(&dir, &state, "10");
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while seen
        .iter()
        .filter(|l: &&String| l.contains(" source=sidecar "))
        .count()
        < 10
    {
        assert!(
            std::time::Instant::now() < deadline,
            "tail -f showed {seen:?}"
        );
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            seen.push(line);
        }
    }
    follow.kill().unwrap();
    follow.wait().unwrap();
}

#[test]
fn verify_text_output_and_keygen() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, state) = (tmp.path().join("journal"), tmp.path().join("state"));
    let key = tmp.path().join("keys/audit-signing.key");
    let out = Command::new(tollgate())
        .args(["audit", "keygen", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("key id"));
    let again = Command::new(tollgate())
        .args(["audit", "keygen", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2), "never overwrites a key");

    let mut run = Loadgen::spawn(&[
        dir.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
        "--audit-signing-key",
        key.to_str().unwrap(),
        "--count",
        "20",
    ]);
    assert!(run.finish(Duration::from_secs(60)).success());
    assert!(
        !state.join("audit-signing.key").exists(),
        "the given key is used, none generated"
    );
    let out = Command::new(tollgate())
        .args(["audit", "verify"])
        .arg(&dir)
        .arg("--public-key")
        .arg(key.with_extension("pub"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.starts_with("INTACT"), "{text}");
    assert!(
        text.contains("records 1..21 (20 events, 1 signed checkpoints)"),
        "{text}"
    );
}
