//! Reading back a journal the way an operator does: `tollgate audit verify`
//! and `tollgate audit tail --format json`, through the real binary.
#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Asserts that `tollgate audit verify DIR` finds the journal intact.
pub fn verify(binary: &Path, dir: &Path) {
    let out = Command::new(binary)
        .args(["audit", "verify"])
        .arg(dir)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every event in the journal, in order (native `tollgate.audit/v1` JSON).
pub fn events(binary: &Path, dir: &Path) -> Vec<Value> {
    let out = Command::new(binary)
        .args(["audit", "tail", "--format", "json", "-n", "100000000"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}
