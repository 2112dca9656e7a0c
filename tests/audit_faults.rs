//! Fault tests of the audit trail with the real `tollgate` binary as the
//! producer process (`tollgate audit loadgen`, which prints each event id
//! once `record()` resolved, i.e. once the event is fsync'd):
//! - kill -9 mid-stream and restart;
//! - a full disk (a tiny tmpfs mounted in a private user and mount
//!   namespace with `unshare`);
//! - an unreachable SIEM with the spool cap reached, in both overflow modes.

// Helpers of this test file may panic: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support_audit;

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support_audit::*;

fn sink_ids(path: &Path) -> Vec<String> {
    let mut ids = Vec::new();
    for file in [path.to_owned()] {
        for line in std::fs::read_to_string(file).unwrap_or_default().lines() {
            // A line torn by the kill is skipped; its event is resent.
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(line)
                && v["source"] == "sidecar"
            {
                ids.push(v["id"].as_str().unwrap().to_owned());
            }
        }
    }
    ids
}

#[test]
fn kill_9_mid_stream_loses_no_acknowledged_event() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let sink = tmp.path().join("sink/audit.jsonl");
    let config = write_config(
        tmp.path(),
        &format!(
            r#"segment: {{maxBytes: 256KiB}}
checkpoint: {{everyRecords: 500}}
exporters:
  - type: file
    name: sink
    path: "{}"
    batch: {{maxRecords: 200, maxWait: 20ms}}
    retry: {{initialBackoff: 20ms, maxBackoff: 200ms}}"#,
            sink.display()
        ),
    );
    let (dir_s, config_s, state_s) = (
        dir.to_str().unwrap(),
        config.to_str().unwrap(),
        tmp.path().join("state").to_str().unwrap().to_owned(),
    );
    let mut first = Loadgen::spawn(&[
        dir_s,
        "--config",
        config_s,
        "--state-dir",
        &state_s,
        "--count",
        "1000000",
        "--sources",
        "4",
    ]);
    first.wait_acked(3000, Duration::from_secs(60));
    first.child.kill().unwrap(); // SIGKILL, mid-stream
    first.finish(Duration::from_secs(10));
    let mut acked: Vec<String> = first.acked().into_iter().map(|a| a.id).collect();
    assert!(acked.len() >= 3000);

    // Restart: recovery, a few more events, then wait for the exporter.
    let mut second = Loadgen::spawn(&[
        dir_s,
        "--config",
        config_s,
        "--state-dir",
        &state_s,
        "--count",
        "50",
        "--sources",
        "2",
        "--wait-export",
        "30",
    ]);
    assert!(second.finish(Duration::from_secs(60)).success());
    let second_acked: Vec<String> = second.acked().into_iter().map(|a| a.id).collect();
    assert_eq!(second_acked.len(), 100);
    acked.extend(second_acked);

    let (code, report) = verify(&dir, &[]);
    assert_eq!(code, 0, "verify after kill -9: {report:#}");
    let counts = journal_id_counts(&dir);
    for id in &acked {
        assert_eq!(
            counts.get(id),
            Some(&1),
            "acknowledged event {id} must be in the journal exactly once"
        );
    }
    let delivered: HashSet<String> = sink_ids(&sink).into_iter().collect();
    let missing: Vec<&String> = acked.iter().filter(|id| !delivered.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged events never reached the sink, e.g. {:?}",
        missing.len(),
        missing.first()
    );
}

#[test]
fn a_full_disk_refuses_clearly_and_loses_nothing_acknowledged() {
    let probe = Command::new("unshare").args(["-rm", "true"]).status();
    assert!(
        probe.is_ok_and(|s| s.success()),
        "this test mounts a tiny tmpfs in a private namespace: it needs util-linux `unshare` and unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("disk");
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&mnt).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    let script = r#"
set -e
mount -t tmpfs -o size=4m tmpfs "$MNT"
dd if=/dev/zero of="$MNT/ballast" bs=1k count=3300 status=none
set +e
"$TOLLGATE" audit loadgen "$MNT/journal" --state-dir "$MNT/state" --count 3000 \
    --release-file "$MNT/ballast" --release-after 25
echo "loadgen-exit $?"
"$TOLLGATE" audit verify "$MNT/journal" > "$OUT/verify.txt" 2>&1
echo "verify-exit $?"
cp -a "$MNT/journal" "$OUT/journal"
"#;
    let mut run = Loadgen::spawn_with(
        Command::new("unshare")
            .args(["-rm", "sh", "-c", script])
            .env("MNT", &mnt)
            .env("OUT", &out)
            .env("TOLLGATE", tollgate()),
    );
    assert!(run.finish(Duration::from_secs(120)).success());
    let acked: Vec<String> = run.acked().into_iter().map(|a| a.id).collect();
    let refused: Vec<&String> = run
        .seen
        .iter()
        .filter(|l| l.starts_with("refused "))
        .collect();
    assert!(
        run.seen.iter().any(|l| l == "loadgen-exit 0"),
        "{:?}",
        run.seen.last()
    );
    assert!(
        refused.len() >= 25,
        "the disk filled up ({} refusals)",
        refused.len()
    );
    assert!(
        refused
            .iter()
            .all(|l| l.contains("No space left on device")),
        "the refusal says why: {}",
        refused[0]
    );
    assert!(
        acked.len() > 2000,
        "writing resumed once space returned ({} acked)",
        acked.len()
    );
    assert!(
        run.seen.iter().any(|l| l == "verify-exit 0"),
        "{}",
        std::fs::read_to_string(out.join("verify.txt")).unwrap()
    );
    let counts = journal_id_counts(&out.join("journal"));
    for id in &acked {
        assert_eq!(
            counts.get(id),
            Some(&1),
            "acknowledged {id} present exactly once"
        );
    }
    for line in &refused {
        let id = line.split(' ').nth(1).unwrap();
        assert!(
            !counts.contains_key(id),
            "a refused event must not be in the journal"
        );
    }
}

fn unreachable_siem_config(dir: &Path, overflow: &str) -> std::path::PathBuf {
    // Nothing listens on port 9: every delivery fails.
    write_config(
        dir,
        &format!(
            r#"journal: {{maxRecordBytes: 16KiB}}
segment: {{maxBytes: 64KiB}}
spool: {{maxBytes: 192KiB, overflow: {overflow}}}
exporters:
  - type: syslog
    name: siem
    address: "127.0.0.1:9"
    retry: {{initialBackoff: 50ms, maxBackoff: 1s, timeout: 2s}}"#
        ),
    )
}

#[test]
fn unreachable_siem_fail_closed_refuses_fast_at_the_spool_cap() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let config = unreachable_siem_config(tmp.path(), "fail-closed");
    let started = Instant::now();
    let mut run = Loadgen::spawn(&[
        dir.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--state-dir",
        tmp.path().join("state").to_str().unwrap(),
        "--count",
        "3000",
    ]);
    assert!(run.finish(Duration::from_secs(60)).success());
    let elapsed = started.elapsed();
    let acked = run.acked().len();
    let refused: Vec<&String> = run
        .seen
        .iter()
        .filter(|l| l.starts_with("refused "))
        .collect();
    assert!(
        acked > 0 && !refused.is_empty(),
        "acked {acked}, refused {}",
        refused.len()
    );
    assert!(
        refused
            .iter()
            .all(|l| l.contains("spool is full (fail-closed)")),
        "{}",
        refused[0]
    );
    assert_eq!(acked + refused.len(), 3000);
    assert!(
        elapsed < Duration::from_secs(30),
        "producers were blocked: {elapsed:?}"
    );
    let (code, report) = verify(&dir, &[]);
    assert_eq!(code, 0, "{report:#}");
    let spool_full = journal_records(&dir)
        .into_iter()
        .filter(|r| r["event"]["action"]["verb"] == "spool-full")
        .count();
    assert_eq!(spool_full, 1, "the refusal is recorded in the chain");
}

#[test]
fn unreachable_siem_drop_oldest_never_refuses_and_records_the_loss() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let config = unreachable_siem_config(tmp.path(), "drop-oldest-unexported");
    let mut run = Loadgen::spawn(&[
        dir.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--state-dir",
        tmp.path().join("state").to_str().unwrap(),
        "--count",
        "3000",
        "--rate",
        "1500",
    ]);
    assert!(run.finish(Duration::from_secs(60)).success());
    assert_eq!(
        run.acked().len(),
        3000,
        "drop-oldest-unexported never refuses"
    );
    let (code, report) = verify(&dir, &[]);
    assert_eq!(code, 0, "{report:#}");
    let notes = report["notes"].as_array().unwrap();
    assert!(
        notes
            .iter()
            .any(|n| n.as_str().unwrap().starts_with("LOSS")),
        "{notes:?}"
    );
    let drops: Vec<serde_json::Value> = journal_records(&dir)
        .into_iter()
        .filter(|r| r["event"]["action"]["verb"] == "segment-dropped")
        .collect();
    assert!(!drops.is_empty());
    let a = &drops[0]["event"]["action"]["attributes"];
    assert!(a["events"].as_u64().unwrap() > 0);
    assert!(a["firstId"].is_string() && a["lastId"].is_string());
    assert_eq!(a["unexportedTo"]["siem"], 0);
}
