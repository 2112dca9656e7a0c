//! Support for the audit trail's end-to-end tests: a real rsyslog, the
//! `tollgate` binary, and readers of what landed where.
// Test helpers: a panic here is a failed test, as in the tests themselves.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

pub mod rsyslog;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The `tollgate` binary under test.
pub fn tollgate() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tollgate"))
}

/// Polls `check` every 20 ms until true or `timeout`.
pub fn wait_for<F: FnMut() -> bool>(timeout: Duration, what: &str, mut check: F) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Writes a Tollgate configuration file with the given `audit:` section.
pub fn write_config(dir: &Path, audit_yaml: &str) -> PathBuf {
    let path = dir.join("tollgate.yaml");
    let indented: String = audit_yaml.lines().map(|l| format!("  {l}\n")).collect();
    std::fs::write(
        &path,
        format!("apiVersion: tollgate.dev/v1alpha1\nkind: TollgateConfig\naudit:\n{indented}"),
    )
    .unwrap();
    path
}

/// A running `tollgate audit loadgen` whose stdout lines are collected.
pub struct Loadgen {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Loadgen {
    pub fn spawn(args: &[&str]) -> Loadgen {
        Self::spawn_with(
            Command::new(tollgate())
                .arg("audit")
                .arg("loadgen")
                .args(args),
        )
    }

    pub fn spawn_with(cmd: &mut Command) -> Loadgen {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tollgate audit loadgen");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Loadgen {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    fn pump(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
    }

    /// Lines starting with `acked`.
    pub fn acked(&mut self) -> Vec<Acked> {
        self.pump();
        self.seen.iter().filter_map(|l| Acked::parse(l)).collect()
    }

    /// Waits until `n` events were acknowledged.
    pub fn wait_acked(&mut self, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            self.pump();
            if self.seen.iter().filter(|l| l.starts_with("acked ")).count() >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "loadgen acknowledged fewer than {n} events in {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the process to exit and collects everything it printed.
    pub fn finish(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Drain what the reader thread still holds.
                std::thread::sleep(Duration::from_millis(50));
                while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                    self.seen.push(line);
                }
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("loadgen did not finish within {timeout:?}");
            }
            self.pump();
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Loadgen {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One `acked <id> <source> <n>` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acked {
    pub id: String,
    pub source: String,
    pub n: u64,
}

impl Acked {
    fn parse(line: &str) -> Option<Acked> {
        let mut parts = line.split(' ');
        if parts.next()? != "acked" {
            return None;
        }
        Some(Acked {
            id: parts.next()?.to_owned(),
            source: parts.next()?.to_owned(),
            n: parts.next()?.parse().ok()?,
        })
    }
}

/// Every record line of a journal (live segments, decompressed).
pub fn journal_records(dir: &Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for seg in tollgate_audit::journal::segment::list(&dir.join("segments")).unwrap() {
        let bytes = tollgate_audit::journal::segment::read_all(&seg).unwrap();
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            if let Ok(v) = serde_json::from_slice(line) {
                out.push(v);
            }
        }
    }
    out
}

/// How many times each event id occurs in the journal.
pub fn journal_id_counts(dir: &Path) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for r in journal_records(dir) {
        if r["kind"] == "event" {
            *counts
                .entry(r["event"]["id"].as_str().unwrap().to_owned())
                .or_insert(0) += 1;
        }
    }
    counts
}

/// Runs `tollgate audit verify` and returns its exit code and JSON report.
pub fn verify(dir: &Path, extra: &[&str]) -> (i32, serde_json::Value) {
    let out = Command::new(tollgate())
        .args(["audit", "verify"])
        .arg(dir)
        .args(["--format", "json"])
        .args(extra)
        .output()
        .unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), report)
}

/// Checks that, per source, first occurrences in `events` (source, n) come
/// in increasing `n` order, and returns the distinct (source, n) seen.
pub fn assert_ordered_per_source(
    events: &[(String, u64)],
) -> std::collections::HashSet<(String, u64)> {
    let mut last: HashMap<&str, u64> = HashMap::new();
    let mut seen = std::collections::HashSet::new();
    for (source, n) in events {
        if !seen.insert((source.clone(), *n)) {
            continue; // a resend: same event, already placed
        }
        if let Some(prev) = last.get(source.as_str()) {
            assert!(n > prev, "source {source}: event {n} arrived after {prev}");
        }
        last.insert(source, *n);
    }
    seen
}
