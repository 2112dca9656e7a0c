//! The archive: sealed segments copied with their checkpoints and keys,
//! live copies deleted only after every consumer acknowledged them, the
//! archive retention enforced and recorded, and `verify` reading both
//! places.

// Helpers of this test file may panic: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support;

use std::path::Path;
use std::time::Duration;

use support::*;
use tollgate_audit::journal::segment;
use tollgate_audit::verify::{Verdict, VerifyOptions, verify};
use tollgate_audit::{AuditConfig, AuditOptions};

async fn run(dir: &Path, retention: &str, events: u64) -> tollgate_audit::AuditHandle {
    let yaml = format!(
        "journal: {{maxRecordBytes: 16KiB}}\nsegment: {{maxBytes: 32KiB}}\nspool: {{maxBytes: 64MiB}}\nretention: {{minimumAge: 0s}}\narchive: {{dir: '{}', retention: {retention}, sweepInterval: 500ms}}",
        dir.join("archive").display()
    );
    let config: AuditConfig = yaml_serde::from_str(&yaml).unwrap();
    let (recorder, handle) = tollgate_audit::start(AuditOptions {
        dir: dir.join("journal"),
        state_dir: dir.join("state"),
        signing_key: None,
        config,
    })
    .await
    .unwrap();
    for n in 0..events {
        recorder.record(event(n, "pod-a")).await.unwrap();
    }
    handle
}

fn archived(dir: &Path) -> Vec<segment::SegmentFile> {
    segment::list(&dir.join("archive/segments")).unwrap()
}

fn live(dir: &Path) -> Vec<segment::SegmentFile> {
    segment::list(&dir.join("journal/segments")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_segments_move_to_the_archive_and_verify_reads_both() {
    let tmp = tempfile::tempdir().unwrap();
    let handle = run(tmp.path(), "7y", 600).await;
    let dir = tmp.path().to_owned();
    eventually(
        Duration::from_secs(20),
        "segments archived and removed from the live journal",
        || archived(&dir).len() >= 4 && live(&dir).len() <= 2,
    )
    .await;
    handle.shutdown().await.unwrap();
    // Checkpoints and keys travel with the segments.
    for seg in archived(&dir) {
        let cp = dir.join(format!(
            "archive/segments/seg-{:020}.checkpoint.json",
            seg.first_seq
        ));
        let line = std::fs::read_to_string(cp).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["checkpoint"]["seal"], true);
    }
    assert_eq!(
        std::fs::read_dir(dir.join("archive/keys")).unwrap().count(),
        1
    );
    // The live journal records each deletion as archived.
    let deleted = notices(&dir.join("journal"), "segment-deleted");
    assert!(!deleted.is_empty());
    assert!(
        deleted
            .iter()
            .all(|d| d["action"]["attributes"]["archived"] == true)
    );
    // verify finds the archive through journal.json and reads both places.
    let report = verify(&VerifyOptions {
        dir: dir.join("journal"),
        ..VerifyOptions::default()
    });
    assert_eq!(report.verdict, Verdict::Intact, "{report:#?}");
    assert!(report.archived_segments >= 4);
    assert_eq!(
        report.first_seq,
        Some(1),
        "the chain starts at 1 again with the archive"
    );

    // An archived segment removed without a record is tampering.
    let victim = archived(&dir)[1].clone();
    let bytes = std::fs::read(&victim.path).unwrap();
    std::fs::remove_file(&victim.path).unwrap();
    let report = verify(&VerifyOptions {
        dir: dir.join("journal"),
        ..VerifyOptions::default()
    });
    assert_eq!(report.verdict, Verdict::Tampered, "{report:#?}");
    assert!(
        report.problems[0]
            .reason
            .contains("no retention or loss record"),
        "{report:#?}"
    );
    // And an edited archived copy is named.
    std::fs::write(&victim.path, &bytes).unwrap();
    let mut content = segment::read_all(&victim).unwrap();
    let pos = content.windows(7).position(|w| w == b"because").unwrap();
    content[pos] = b'B';
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut enc, &content).unwrap();
    std::fs::write(&victim.path, enc.finish().unwrap()).unwrap();
    let report = verify(&VerifyOptions {
        dir: dir.join("journal"),
        ..VerifyOptions::default()
    });
    assert_eq!(report.verdict, Verdict::Tampered, "{report:#?}");
    assert!(
        report.problems[0].segment.starts_with("archive/segments/"),
        "{report:#?}"
    );
    assert!(
        report.problems[0]
            .reason
            .contains("does not match its hash"),
        "{report:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_archive_retention_is_enforced_and_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let handle = run(tmp.path(), "1s", 400).await;
    let dir = tmp.path().to_owned();
    eventually(Duration::from_secs(30), "archived segments expired", || {
        std::fs::read_to_string(dir.join("archive/RETENTION.jsonl"))
            .map(|s| s.lines().count() >= 3)
            .unwrap_or(false)
    })
    .await;
    handle.shutdown().await.unwrap();
    let ledger: Vec<serde_json::Value> =
        std::fs::read_to_string(dir.join("archive/RETENTION.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    assert!(
        ledger
            .iter()
            .all(|e| e["retention"] == "1s" && e["lastHash"].is_string())
    );
    let expired = notices(&dir.join("journal"), "archive-expired");
    assert!(expired.len() >= 3, "each expiry is recorded in the chain");
    let report = verify(&VerifyOptions {
        dir: dir.join("journal"),
        ..VerifyOptions::default()
    });
    assert_eq!(report.verdict, Verdict::Intact, "{report:#?}");
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("after its retention period")),
        "{:?}",
        report.notes
    );
}
