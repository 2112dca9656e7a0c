//! Tamper tests: each kind of tampering with a real journal (written by the
//! `tollgate` binary) is detected by `tollgate audit verify`, which exits 1
//! and names the first bad record at the right place.

// Helpers of this test file may panic: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support_audit;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use support_audit::*;
use tollgate_audit::journal::segment::{self, SegmentFile};
use tollgate_audit::record::{self, Checkpoint, EventHead};

/// A journal of ~700 events over several sealed segments, with a signed
/// checkpoint every 50 records, built once.
fn base() -> &'static Path {
    static BASE: OnceLock<tempfile::TempDir> = OnceLock::new();
    BASE.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let config = write_config(
            tmp.path(),
            "journal: {maxRecordBytes: 16KiB}\nsegment: {maxBytes: 64KiB}\ncheckpoint: {everyRecords: 50}",
        );
        let mut run = Loadgen::spawn(&[
            tmp.path().join("journal").to_str().unwrap(),
            "--config", config.to_str().unwrap(),
            "--state-dir", tmp.path().join("state").to_str().unwrap(),
            "--count", "700",
        ]);
        assert!(run.finish(Duration::from_secs(120)).success());
        tmp
    })
    .path()
}

/// A private copy of the base journal.
fn journal() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    copy_dir(&base().join("journal"), &dir);
    let (code, report) = verify(&dir, &[]);
    assert_eq!(code, 0, "the untouched copy verifies: {report:#}");
    (tmp, dir)
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

fn segments(dir: &Path) -> Vec<SegmentFile> {
    segment::list(&dir.join("segments")).unwrap()
}

fn read(seg: &SegmentFile) -> Vec<u8> {
    let mut out = Vec::new();
    if seg.compressed {
        flate2::read::GzDecoder::new(std::fs::File::open(&seg.path).unwrap())
            .read_to_end(&mut out)
            .unwrap();
    } else {
        out = std::fs::read(&seg.path).unwrap();
    }
    out
}

fn write(seg: &SegmentFile, content: &[u8]) {
    if seg.compressed {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(content).unwrap();
        std::fs::write(&seg.path, e.finish().unwrap()).unwrap();
    } else {
        std::fs::write(&seg.path, content).unwrap();
    }
}

/// (offset, bytes) of each line.
fn lines(content: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut offset = 0u64;
    for line in content.split_inclusive(|b| *b == b'\n') {
        out.push((offset, line.strip_suffix(b"\n").unwrap_or(line).to_vec()));
        offset += line.len() as u64;
    }
    out
}

fn join(lines: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (_, l) in lines {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out
}

fn head(line: &[u8]) -> (u64, Option<String>) {
    let p = record::parse::<EventHead>(line).unwrap();
    (p.envelope.seq, p.envelope.event.map(|e| e.id))
}

fn name(seg: &SegmentFile) -> String {
    format!(
        "segments/{}",
        seg.path.file_name().unwrap().to_string_lossy()
    )
}

/// Asserts exit 1 and the first problem's location and reason.
fn assert_first(
    dir: &Path,
    segment: &str,
    offset: u64,
    seq: Option<u64>,
    id: Option<&str>,
    reason: &str,
) {
    let (code, report) = verify(dir, &[]);
    assert_eq!(code, 1, "tampering must be detected: {report:#}");
    let first = &report["problems"][0];
    assert_eq!(first["segment"], segment, "{report:#}");
    assert_eq!(first["offset"], offset, "{report:#}");
    if let Some(seq) = seq {
        assert_eq!(first["seq"], seq, "{report:#}");
    }
    if let Some(id) = id {
        assert_eq!(first["id"], id, "{report:#}");
    }
    assert!(
        first["reason"].as_str().unwrap().contains(reason),
        "{report:#}"
    );
}

#[test]
fn the_base_journal_spans_sealed_and_live_segments() {
    let (_tmp, dir) = journal();
    let segs = segments(&dir);
    assert!(segs.len() >= 5, "{segs:?}");
    assert!(segs[..segs.len() - 1].iter().all(|s| s.compressed));
    assert!(!segs.last().unwrap().compressed);
}

#[test]
fn an_edited_byte_in_a_sealed_segment_is_named() {
    let (_tmp, dir) = journal();
    let seg = segments(&dir)[1].clone();
    let mut ls = lines(&read(&seg));
    let (offset, line) = ls[5].clone();
    let (seq, id) = head(&line);
    let text = String::from_utf8(line)
        .unwrap()
        .replace("synthetic load", "synthetic lOad");
    ls[5].1 = text.into_bytes();
    write(&seg, &join(&ls));
    assert_first(
        &dir,
        &name(&seg),
        offset,
        Some(seq),
        id.as_deref(),
        "does not match its hash",
    );
}

#[test]
fn an_edited_byte_in_the_live_segment_is_named() {
    let (_tmp, dir) = journal();
    let seg = segments(&dir).last().unwrap().clone();
    let mut content = read(&seg);
    let ls = lines(&content);
    let (offset, line) = ls[3].clone();
    let (seq, id) = head(&line);
    let pos = offset as usize + line.windows(4).position(|w| w == b"load").unwrap();
    content[pos] ^= 0x01;
    write(&seg, &content);
    assert_first(
        &dir,
        &name(&seg),
        offset,
        Some(seq),
        id.as_deref(),
        "does not match its hash",
    );
}

#[test]
fn a_deleted_record_is_named_at_the_gap() {
    let (_tmp, dir) = journal();
    let seg = segments(&dir)[2].clone();
    let mut ls = lines(&read(&seg));
    let (offset, _) = ls[7].clone();
    let (next_seq, next_id) = head(&ls[8].1);
    ls.remove(7);
    write(&seg, &join(&ls));
    assert_first(
        &dir,
        &name(&seg),
        offset,
        Some(next_seq),
        next_id.as_deref(),
        "missing",
    );
}

#[test]
fn two_reordered_records_are_named_where_the_order_breaks() {
    let (_tmp, dir) = journal();
    let seg = segments(&dir)[1].clone();
    let mut ls = lines(&read(&seg));
    let (offset, _) = ls[10].clone();
    let (later_seq, later_id) = head(&ls[11].1);
    let a = ls[10].1.clone();
    ls[10].1 = ls[11].1.clone();
    ls[11].1 = a;
    write(&seg, &join(&ls));
    assert_first(
        &dir,
        &name(&seg),
        offset,
        Some(later_seq),
        later_id.as_deref(),
        "expected",
    );
}

#[test]
fn a_dropped_segment_is_named_at_the_next_one() {
    let (_tmp, dir) = journal();
    let segs = segments(&dir);
    std::fs::remove_file(&segs[2].path).unwrap();
    let first = lines(&read(&segs[3]))[0].1.clone();
    let (seq, id) = head(&first);
    assert_first(
        &dir,
        &name(&segs[3]),
        0,
        Some(seq),
        id.as_deref(),
        "no retention or loss record accounts for them",
    );
}

#[test]
fn a_sealed_segment_cut_short_is_named_at_its_end() {
    let (_tmp, dir) = journal();
    let seg = segments(&dir)[1].clone();
    let mut ls = lines(&read(&seg));
    let removed = ls.pop().unwrap();
    write(&seg, &join(&ls));
    assert_first(
        &dir,
        &name(&seg),
        removed.0,
        None,
        None,
        "does not end with its sealing checkpoint",
    );
}

#[test]
fn tail_truncation_before_the_last_checkpoint_is_detected() {
    for torn in [false, true] {
        let (_tmp, dir) = journal();
        let seg = segments(&dir).last().unwrap().clone();
        let content = read(&seg);
        let ls = lines(&content);
        // Cut the final (shutdown) checkpoint and the two records before it,
        // at a record boundary or in the middle of a record.
        let cut = ls[ls.len() - 3].0 as usize + if torn { 17 } else { 0 };
        write(&seg, &content[..cut]);
        let (code, report) = verify(&dir, &[]);
        assert_eq!(code, 1, "{report:#}");
        let first = &report["problems"][0];
        assert_eq!(first["segment"], "head.json", "{report:#}");
        assert!(
            first["reason"]
                .as_str()
                .unwrap()
                .contains("cut from the end"),
            "{report:#}"
        );
    }
}

#[test]
fn rewriting_the_chain_after_an_edit_fails_at_the_next_signed_checkpoint() {
    // An attacker without the signing key edits a record and recomputes
    // every hash after it; the next checkpoint's signature gives it away.
    let (_tmp, dir) = journal();
    let seg = segments(&dir)[1].clone();
    let ls = lines(&read(&seg));
    let mut prev = record::parse::<EventHead>(&ls[0].1).unwrap().prev;
    let mut out = Vec::new();
    let mut first_checkpoint = None;
    for (i, (offset, line)) in ls.iter().enumerate() {
        let parsed = record::parse::<serde_json::Value>(line).unwrap();
        let env = parsed.envelope;
        let start = out.len() as u64;
        if let Some(mut cp) = env.checkpoint.clone() {
            cp.head_hash = record::hex(&prev);
            if i > 2 && first_checkpoint.is_none() {
                first_checkpoint = Some((start, env.seq, *offset));
            }
            prev = record::encode_checkpoint(
                &mut out,
                env.seq,
                &env.time,
                &prev,
                &Checkpoint { ..cp },
            );
        } else {
            let mut event = env.event.unwrap();
            if i == 2 {
                event["decision"]["outcome"] = "allow".into();
                event["decision"]["reason"] = "nothing to see".into();
            }
            let json = serde_json::to_vec(&event).unwrap();
            prev = record::encode_event(&mut out, env.seq, &env.time, &prev, &json);
        }
    }
    write(&seg, &out);
    let (offset, seq, _) = first_checkpoint.unwrap();
    assert_first(
        &dir,
        &name(&seg),
        offset,
        Some(seq),
        None,
        "signature does not verify",
    );
}

#[test]
fn an_untrusted_or_wrong_key_is_refused() {
    let (_tmp, dir) = journal();
    let other = tempfile::tempdir().unwrap();
    let key = tollgate_audit::keys::SigningKey::generate(&other.path().join("k.key")).unwrap();
    drop(key);
    let (code, report) = verify(
        &dir,
        &["--public-key", other.path().join("k.pub").to_str().unwrap()],
    );
    assert_eq!(code, 1, "{report:#}");
    assert!(
        report["problems"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("not trusted"),
        "{report:#}"
    );
    // The journal's own key, passed explicitly, verifies.
    let own = base().join("state/audit-signing.pub");
    let (code, report) = verify(&dir, &["--public-key", own.to_str().unwrap()]);
    assert_eq!(code, 0, "{report:#}");
}

#[test]
fn an_unreadable_journal_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, report) = verify(&tmp.path().join("nope"), &[]);
    assert_eq!(code, 2, "{report:#}");
    assert_eq!(report["verdict"], "unreadable");
    let out = std::process::Command::new(tollgate())
        .args(["audit", "verify"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("UNREADABLE"));
}
