//! The journal against a real file system: group commit, chaining,
//! rotation, compression, recovery from torn tails, refusal to write over
//! damage, write failures, the bounded spool and retention.

// Helpers of this test file may panic: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use support::*;
use tollgate_audit::verify::{Verdict, VerifyOptions, verify};
use tollgate_audit::{AuditError, Recorder};

fn check(dir: &std::path::Path) -> tollgate_audit::verify::Report {
    verify(&VerifyOptions {
        dir: dir.to_owned(),
        ..VerifyOptions::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_are_chained_signed_and_survive_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, state) = (tmp.path().join("j"), tmp.path().join("state"));
    let journal = open_with(&dir, &state, small_config(""), &[], None).unwrap();
    let mut tasks = Vec::new();
    for n in 0..400u64 {
        let j = journal.clone();
        tasks.push(tokio::spawn(async move {
            let e = event(n, "a");
            let id = e.id.clone();
            j.record(e).await.map(|()| id)
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.push(t.await.unwrap().unwrap());
    }
    assert!(journal.head().seq >= 400);
    journal.shutdown().await.unwrap();
    assert!(
        journal.record(event(1, "a")).await.is_err(),
        "closed journal refuses"
    );

    let ids = journal_event_ids(&dir);
    assert_eq!(ids.len(), 400);
    assert_eq!(
        ids.iter().collect::<HashSet<_>>(),
        acked.iter().collect::<HashSet<_>>()
    );
    let report = check(&dir);
    assert_eq!(report.verdict, Verdict::Intact, "{report:#?}");
    assert_eq!(report.uncovered, 0, "shutdown writes a final checkpoint");
    assert!(report.checkpoints >= 1);
    assert!(dir.join("head.json").exists());
    assert!(state.join("audit-signing.key").exists() && state.join("audit-signing.pub").exists());

    // Restart continues the same chain.
    let journal = open_with(&dir, &state, small_config(""), &[], None).unwrap();
    let before = journal.head().seq;
    journal.record(event(1000, "a")).await.unwrap();
    assert_eq!(journal.head().seq, before + 1);
    journal.shutdown().await.unwrap();
    let report = check(&dir);
    assert_eq!(report.verdict, Verdict::Intact, "{report:#?}");
    assert_eq!(report.events, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_rotate_by_size_and_are_compressed() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, state) = (tmp.path().join("j"), tmp.path().join("state"));
    let journal = open_with(
        &dir,
        &state,
        small_config("spool: {maxBytes: 100MiB}"),
        &[],
        None,
    )
    .unwrap();
    for n in 0..1500u64 {
        journal.record(event(n, "a")).await.unwrap();
    }
    let seg_dir = dir.join("segments");
    eventually(
        Duration::from_secs(10),
        "sealed segments compressed",
        || {
            let segs = tollgate_audit::journal::segment::list(&seg_dir).unwrap();
            segs.len() >= 5 && segs.iter().filter(|s| !s.compressed).count() == 1
        },
    )
    .await;
    journal.shutdown().await.unwrap();
    // Readable with any gzip reader (zcat): plain JSON lines inside.
    let segs = tollgate_audit::journal::segment::list(&seg_dir).unwrap();
    let gz = segs.iter().find(|s| s.compressed).unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(&gz.path).unwrap()),
        &mut text,
    )
    .unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["kind"], "checkpoint");
    assert_eq!(
        last["checkpoint"]["seal"], true,
        "a sealed segment ends with its sealing checkpoint"
    );
    let report = check(&dir);
    assert_eq!(report.verdict, Verdict::Intact, "{report:#?}");
    assert_eq!(report.events, 1500);
    assert!(report.segments >= 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_tail_is_cut_quarantined_and_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, state) = (tmp.path().join("j"), tmp.path().join("state"));
    let journal = open_with(&dir, &state, small_config(""), &[], None).unwrap();
    for n in 0..10u64 {
        journal.record(event(n, "a")).await.unwrap();
    }
    journal.shutdown().await.unwrap();
    let active = tollgate_audit::journal::segment::list(&dir.join("segments"))
        .unwrap()
        .pop()
        .unwrap();
    let torn = br#"{"seq":12,"time":"2025-01-01T00:00:00Z","prev":"00","kind":"event","event":{"id":"half"#;
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&active.path)
            .unwrap();
        f.write_all(torn).unwrap();
    }
    let before = check(&dir);
    assert_eq!(
        before.verdict,
        Verdict::Intact,
        "a torn write is not tampering: {before:#?}"
    );
    assert!(
        before.notes.iter().any(|n| n.contains("incomplete record")),
        "{:?}",
        before.notes
    );

    let journal = open_with(&dir, &state, small_config(""), &[], None).unwrap();
    assert_eq!(journal.metrics().tail_cuts.get(), 1);
    journal.record(event(99, "a")).await.unwrap();
    journal.shutdown().await.unwrap();
    let cut = notices(&dir, "tail-cut");
    assert_eq!(cut.len(), 1, "the cut is recorded in the chain");
    let attrs = &cut[0]["action"]["attributes"];
    assert_eq!(attrs["bytes"], torn.len());
    let quarantined = dir.join(attrs["quarantine"].as_str().unwrap());
    assert_eq!(
        std::fs::read(quarantined).unwrap(),
        torn.to_vec(),
        "the cut bytes are kept"
    );
    let report = check(&dir);
    assert_eq!(report.verdict, Verdict::Intact, "{report:#?}");
    assert!(
        report.notes.iter().any(|n| n.contains("tail-cut")),
        "{:?}",
        report.notes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_before_the_tail_is_never_written_over() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, state) = (tmp.path().join("j"), tmp.path().join("state"));
    let journal = open_with(&dir, &state, small_config(""), &[], None).unwrap();
    for n in 0..10u64 {
        journal.record(event(n, "a")).await.unwrap();
    }
    journal.shutdown().await.unwrap();
    let active = tollgate_audit::journal::segment::list(&dir.join("segments"))
        .unwrap()
        .pop()
        .unwrap();
    let mut bytes = std::fs::read(&active.path).unwrap();
    let pos = bytes.windows(7).position(|w| w == b"because").unwrap();
    bytes[pos] = b'B';
    std::fs::write(&active.path, &bytes).unwrap();
    let err = open_with(&dir, &state, small_config(""), &[], None).unwrap_err();
    assert!(
        matches!(err, tollgate_audit::Error::Damaged { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("tollgate audit verify"), "{err}");
    assert_eq!(
        std::fs::read(&active.path).unwrap(),
        bytes,
        "left untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_disk_fails_the_batch_and_loses_nothing_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, state) = (tmp.path().join("j"), tmp.path().join("state"));
    let full = Arc::new(AtomicBool::new(false));
    let flag = full.clone();
    let fault: tollgate_audit::journal::WriteFault = Arc::new(move |_| {
        if flag.load(Ordering::SeqCst) {
            Err(std::io::Error::from_raw_os_error(28)) // ENOSPC
        } else {
            Ok(())
        }
    });
    let journal = open_with(&dir, &state, small_config(""), &[], Some(fault)).unwrap();
    let mut acked = Vec::new();
    for n in 0..20u64 {
        let e = event(n, "a");
        acked.push(e.id.clone());
        journal.record(e).await.unwrap();
    }
    full.store(true, Ordering::SeqCst);
    let mut refused = Vec::new();
    for n in 20..30u64 {
        let e = event(n, "a");
        refused.push(e.id.clone());
        let err = journal.record(e).await.unwrap_err();
        assert!(
            matches!(&err, AuditError::Unavailable(m) if m.contains("No space left")),
            "{err}"
        );
    }
    assert!(journal.metrics().write_errors.get() >= 10);
    full.store(false, Ordering::SeqCst);
    for n in 30..40u64 {
        let e = event(n, "a");
        acked.push(e.id.clone());
        journal.record(e).await.unwrap();
    }
    journal.shutdown().await.unwrap();
    let ids = journal_event_ids(&dir);
    assert_eq!(
        ids, acked,
        "every acknowledged event once, in order; refused ones absent"
    );
    let report = check(&dir);
    assert_eq!(report.verdict, Verdict::Intact, "{report:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_closed_spool_refuses_at_the_cap_and_recovers_when_exporters_catch_up() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, state) = (tmp.path().join("j"), tmp.path().join("state"));
    let config = small_config(
        "spool: {maxBytes: 192KiB, overflow: fail-closed}\nretention: {minimumAge: 1h}",
    );
    let journal = open_with(&dir, &state, config, &["siem"], None).unwrap();
    let mut accepted = 0u64;
    let mut refusal = None;
    for n in 0..20_000u64 {
        match journal.record(event(n, "a")).await {
            Ok(()) => accepted += 1,
            Err(e) => {
                refusal = Some(e);
                break;
            }
        }
        if n % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let refusal = refusal.expect("the spool must fill");
    assert!(matches!(refusal, AuditError::SpoolFull(_)), "{refusal}");
    assert!(journal.spool_full());
    assert!(journal.metrics().spool_refused.get() >= 1);
    // The exporter acknowledges everything: room returns.
    let head = journal.head().seq;
    journal.cursors().store("siem", head).unwrap();
    eventually(Duration::from_secs(10), "spool has room again", || {
        !journal.spool_full()
    })
    .await;
    journal.record(event(99_999, "a")).await.unwrap();
    journal.shutdown().await.unwrap();
    assert_eq!(notices(&dir, "spool-full").len(), 1);
    let available = notices(&dir, "spool-available");
    assert_eq!(available.len(), 1);
    assert!(
        available[0]["action"]["attributes"]["refused"]
            .as_u64()
            .unwrap()
            >= 1
    );
    assert_eq!(
        journal_event_ids(&dir).len() as u64 - 2,
        accepted + 1,
        "nothing accepted was lost"
    );
    let report = check(&dir);
    assert_eq!(report.verdict, Verdict::Intact, "{report:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_oldest_unexported_records_every_loss_in_the_chain() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, state) = (tmp.path().join("j"), tmp.path().join("state"));
    let config = small_config("spool: {maxBytes: 192KiB, overflow: drop-oldest-unexported}");
    let journal = open_with(&dir, &state, config, &["siem"], None).unwrap();
    let total = 4000u64;
    for n in 0..total {
        journal
            .record(event(n, "a"))
            .await
            .expect("drop mode never refuses");
        if n % 100 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    eventually(Duration::from_secs(10), "a segment dropped", || {
        journal.metrics().dropped_records.get() > 0
    })
    .await;
    journal.shutdown().await.unwrap();
    let drops = notices(&dir, "segment-dropped");
    assert!(!drops.is_empty());
    // Loss records of dropped segments are carried forward by later ones:
    // the maximal dropped ranges account for every lost event.
    let mut ranges: Vec<(u64, u64, u64)> = Vec::new();
    for d in &drops {
        let a = &d["action"]["attributes"];
        ranges.push((
            a["firstSeq"].as_u64().unwrap(),
            a["lastSeq"].as_u64().unwrap(),
            a["events"].as_u64().unwrap(),
        ));
        for c in a["carried"].as_array().into_iter().flatten() {
            if c["cause"] == "segment-dropped" {
                ranges.push((
                    c["firstSeq"].as_u64().unwrap(),
                    c["lastSeq"].as_u64().unwrap(),
                    c["events"].as_u64().unwrap(),
                ));
            }
        }
    }
    let maximal: Vec<&(u64, u64, u64)> = ranges
        .iter()
        .filter(|r| !ranges.iter().any(|o| o != *r && o.0 <= r.0 && r.1 <= o.1))
        .collect();
    let mut distinct = maximal.clone();
    distinct.sort();
    distinct.dedup();
    let dropped: u64 = distinct.iter().map(|r| r.2).sum();
    for d in &drops {
        let a = &d["action"]["attributes"];
        assert!(a["firstId"].is_string() && a["lastId"].is_string() && a["firstSeq"].is_u64());
        assert_eq!(d["priority"], "p0-escalate");
        assert_eq!(a["unexportedTo"]["siem"], 0);
    }
    let present = journal_event_ids(&dir).len() as u64
        - (journal_lines(&dir)
            .iter()
            .filter(|r| r["event"]["source"] == "journal")
            .count() as u64);
    assert_eq!(
        present + dropped,
        total,
        "every event is either present or counted in a loss record"
    );
    let report = check(&dir);
    assert_eq!(report.verdict, Verdict::Intact, "{report:#?}");
    assert!(
        report.notes.iter().any(|n| n.starts_with("LOSS")),
        "{:?}",
        report.notes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_only_acknowledged_segments_past_the_minimum_age() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, state) = (tmp.path().join("j"), tmp.path().join("state"));
    let config = small_config("spool: {maxBytes: 100MiB}\nretention: {minimumAge: 1s}");
    let journal = open_with(&dir, &state, config, &["siem", "lake"], None).unwrap();
    for n in 0..1500u64 {
        journal.record(event(n, "a")).await.unwrap();
    }
    let seg_dir = dir.join("segments");
    // Distinct segments (a plain file and its compressed copy coexist for
    // a moment during compression).
    let count = || {
        let mut segs = tollgate_audit::journal::segment::list(&seg_dir).unwrap();
        segs.dedup_by_key(|s| s.first_seq);
        segs.len()
    };
    let before = count();
    assert!(before >= 5);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Only one exporter caught up: nothing may go.
    journal.cursors().store("siem", journal.head().seq).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        count() >= before,
        "deleted before every exporter acknowledged"
    );
    journal.cursors().store("lake", journal.head().seq).unwrap();
    eventually(
        Duration::from_secs(10),
        "acknowledged old segments deleted",
        || count() <= 1,
    )
    .await;
    journal.shutdown().await.unwrap();
    assert!(notices(&dir, "segment-deleted").len() >= before - 1);
    let report = check(&dir);
    assert_eq!(report.verdict, Verdict::Intact, "{report:#?}");
    assert!(
        report.notes.iter().any(|n| n.contains("acknowledged")),
        "{:?}",
        report.notes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifying_a_journal_while_it_is_written_and_rotated_finds_it_intact() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, state) = (tmp.path().join("j"), tmp.path().join("state"));
    let config = small_config("spool: {maxBytes: 100MiB}\ncheckpoint: {everyRecords: 40}");
    let journal = open_with(&dir, &state, config, &[], None).unwrap();
    let writer = {
        let journal = journal.clone();
        tokio::spawn(async move {
            for n in 0..3000u64 {
                journal.record(event(n, "a")).await.unwrap();
            }
        })
    };
    let mut runs = 0;
    while !writer.is_finished() {
        let dir = dir.clone();
        let report = tokio::task::spawn_blocking(move || check(&dir))
            .await
            .unwrap();
        assert_eq!(
            report.verdict,
            Verdict::Intact,
            "live verification: {report:#?}"
        );
        runs += 1;
    }
    writer.await.unwrap();
    journal.shutdown().await.unwrap();
    assert!(runs >= 3, "verification ran {runs} times during the writes");
    assert_eq!(check(&dir).verdict, Verdict::Intact);
}
