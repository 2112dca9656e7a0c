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
            &format!(
                "journal: {{maxRecordBytes: 16KiB}}\nsegment: {{maxBytes: 64KiB}}\ncheckpoint: {{everyRecords: 50}}\nanchor: {{file: {}}}",
                tmp.path().join("anchor.json").display()
            ),
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
    let (code, out) = python_verify(&dir, &[]);
    assert_eq!(code, 0, "the independent verifier agrees: {out}");
    (tmp, dir)
}

/// Runs the independent verifier (`tests/python/verify_journal.py`,
/// written from `docs/audit-format.md`): exit code and output.
fn python_verify(dir: &Path, extra: &[&str]) -> (i32, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/verify_journal.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(dir)
        .args(extra)
        .output()
        .expect("python3 runs");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Asserts the independent verifier finds `dir` tampered, with and
/// without the trusted public key.
fn assert_python_tampered(dir: &Path, extra: &[&str]) {
    let key = public_key();
    for keys in [vec![], vec!["--public-key", key.as_str()]] {
        let mut args: Vec<&str> = keys.clone();
        args.extend_from_slice(extra);
        let (code, out) = python_verify(dir, &args);
        assert_eq!(
            code, 1,
            "the independent verifier must agree ({args:?}): {out}"
        );
    }
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
    assert_python_tampered(dir, &[]);
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
        assert_python_tampered(&dir, &[]);
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

/// The base journal's public key, as a verifier would hold it.
fn public_key() -> String {
    base().join("state/audit-signing.pub").display().to_string()
}

/// A copy of the base journal's external anchor, beside the journal.
fn anchor(dir: &Path) -> PathBuf {
    let path = dir.parent().unwrap().join("anchor.json");
    std::fs::copy(base().join("anchor.json"), &path).unwrap();
    path
}

/// Asserts `verify` exits 1 with a problem whose reason contains one of
/// `reasons`, trusting the journal's keys and trusting only the given key.
fn assert_tampered(dir: &Path, extra: &[&str], reasons: &[&str]) {
    let key = public_key();
    for keys in [vec![], vec!["--public-key", key.as_str()]] {
        let mut args: Vec<&str> = keys.clone();
        args.extend_from_slice(extra);
        let (code, report) = verify(dir, &args);
        assert_eq!(code, 1, "tampering must be detected ({args:?}): {report:#}");
        let found = report["problems"].as_array().unwrap().iter().any(|p| {
            let reason = p["reason"].as_str().unwrap();
            reasons.iter().any(|r| reason.contains(r))
        });
        assert!(found, "expected one of {reasons:?} ({args:?}): {report:#}");
    }
    assert_python_tampered(dir, extra);
}

/// Starts a writer on `dir` (with the base journal's key) and stops it.
fn restart_writer(dir: &Path, config: Option<&Path>) {
    let state = base().join("state");
    let mut args = vec![
        dir.to_str().unwrap().to_owned(),
        "--state-dir".into(),
        state.to_str().unwrap().to_owned(),
        "--count".into(),
        "0".into(),
    ];
    if let Some(config) = config {
        args.push("--config".into());
        args.push(config.to_str().unwrap().to_owned());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut run = Loadgen::spawn(&args);
    assert!(run.finish(Duration::from_secs(60)).success());
}

/// Appends a journal notice, chained after the last record of `seg`, as an
/// attacker who knows the format but not the signing key would.
fn append_forged_notice(seg: &SegmentFile, verb: &str, attributes: serde_json::Value) {
    let mut content = read(seg);
    let ls = lines(&content);
    let last = record::parse::<EventHead>(&ls.last().unwrap().1).unwrap();
    let event = tollgate_audit::Event::notice(
        verb,
        "forged",
        tollgate_audit::Outcome::Allow,
        tollgate_audit::Priority::Observe,
        "records acknowledged by every exporter: removed from the live journal".into(),
        attributes.as_object().unwrap().clone(),
    );
    let json = serde_json::to_vec(&event).unwrap();
    record::encode_event(
        &mut content,
        last.envelope.seq + 1,
        &last.envelope.time,
        &last.hash,
        &json,
    );
    write(seg, &content);
}

/// Cuts the live segment back by `records` whole records.
fn cut_live(dir: &Path, records: usize) -> SegmentFile {
    let seg = segments(dir).last().unwrap().clone();
    let content = read(&seg);
    let ls = lines(&content);
    let cut = ls[ls.len() - records].0 as usize;
    write(&seg, &content[..cut]);
    seg
}

#[test]
fn a_writer_restart_does_not_launder_a_cut_tail() {
    for torn in [false, true] {
        let (_tmp, dir) = journal();
        let seg = cut_live(&dir, 3);
        if torn {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&seg.path)
                .unwrap();
            f.write_all(b"{\"seq\":").unwrap();
        }
        assert_tampered(&dir, &[], &["cut from the end"]);
        restart_writer(&dir, None);
        assert_tampered(&dir, &[], &["cut from the end"]);
        // And again after a second restart: the incident is never erased.
        restart_writer(&dir, None);
        assert_tampered(&dir, &[], &["cut from the end"]);
    }
}

#[test]
fn a_writer_restart_records_a_cut_hidden_by_deleting_head_json_when_anchored() {
    let (tmp, dir) = journal();
    let anchor = anchor(&dir);
    cut_live(&dir, 3);
    std::fs::remove_file(dir.join("head.json")).unwrap();
    let config = write_config(
        tmp.path(),
        &format!("anchor: {{file: {}}}", anchor.display()),
    );
    restart_writer(&dir, Some(&config));
    assert_tampered(&dir, &[], &["cut from the end"]);
}

/// Real boundary hashes of a sealed segment, as a deletion notice holds
/// them.
fn deletion_attributes(seg: &SegmentFile) -> serde_json::Value {
    let summary = segment::summarize(seg).unwrap().unwrap();
    serde_json::json!({
        "segment": seg.path.file_name().unwrap().to_string_lossy(),
        "firstSeq": summary.first_seq,
        "lastSeq": summary.last_seq,
        "firstPrev": summary.first_prev,
        "lastHash": summary.last_hash,
        "events": summary.events,
        "archived": false,
        "acknowledged": {"siem": 1_000_000_000u64},
    })
}

#[test]
fn a_forged_segment_deleted_notice_is_not_trusted() {
    let (_tmp, dir) = journal();
    let segs = segments(&dir);
    let attributes = deletion_attributes(&segs[2]);
    std::fs::remove_file(&segs[2].path).unwrap();
    append_forged_notice(segs.last().unwrap(), "segment-deleted", attributes);
    assert_tampered(
        &dir,
        &[],
        &["no retention or loss record accounts for them"],
    );
    // A writer restarted on it signs the forged notice along with the
    // records it adopts, but not at once: it still does not count.
    restart_writer(&dir, None);
    assert_tampered(
        &dir,
        &[],
        &["no retention or loss record accounts for them"],
    );
}

#[test]
fn a_fake_coverage_range_does_not_disable_the_truncation_check() {
    for verb in ["segment-deleted", "segment-dropped", "archive-expired"] {
        let (_tmp, dir) = journal();
        let seg = cut_live(&dir, 3);
        let cut_at = segment::summarize(&seg).unwrap().unwrap().last_seq;
        append_forged_notice(
            &seg,
            verb,
            serde_json::json!({
                "firstSeq": cut_at + 2,
                "lastSeq": 1_000_000_000u64,
                "firstPrev": "0".repeat(64),
                "lastHash": "0".repeat(64),
                "acknowledged": {"siem": 1_000_000_000u64},
            }),
        );
        assert_tampered(&dir, &[], &["cut from the end"]);
    }
}

#[test]
fn an_intact_journal_verifies_against_its_anchor() {
    let (_tmp, dir) = journal();
    let anchor = anchor(&dir);
    let (code, report) = verify(&dir, &["--anchor", anchor.to_str().unwrap()]);
    assert_eq!(code, 0, "{report:#}");
    let (code, out) = python_verify(&dir, &["--anchor", anchor.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    // The anchor is the latest checkpoint, as head.json holds it.
    assert_eq!(
        std::fs::read(&anchor).unwrap(),
        std::fs::read(dir.join("head.json")).unwrap()
    );
}

#[test]
fn a_cut_past_the_last_checkpoint_with_head_json_deleted_fails_against_the_anchor() {
    let (_tmp, dir) = journal();
    let anchor = anchor(&dir);
    cut_live(&dir, 3);
    std::fs::remove_file(dir.join("head.json")).unwrap();
    // Locally only a note...
    let (code, report) = verify(&dir, &[]);
    assert_eq!(code, 0, "{report:#}");
    // ...but the anchor proves the cut.
    assert_tampered(
        &dir,
        &["--anchor", anchor.to_str().unwrap()],
        &["cut from the end"],
    );
}

#[test]
fn a_dropped_last_segment_with_an_older_head_fails_against_the_anchor() {
    let (_tmp, dir) = journal();
    let anchor = anchor(&dir);
    let segs = segments(&dir);
    let live = segs.last().unwrap();
    std::fs::remove_file(&live.path).unwrap();
    // The previous segment's sealing checkpoint becomes head.json.
    let sealed = lines(&read(&segs[segs.len() - 2]));
    let mut head = sealed.last().unwrap().1.clone();
    head.push(b'\n');
    std::fs::write(dir.join("head.json"), head).unwrap();
    let (code, report) = verify(&dir, &[]);
    assert_eq!(code, 0, "locally consistent: {report:#}");
    assert_tampered(
        &dir,
        &["--anchor", anchor.to_str().unwrap()],
        &["cut from the end"],
    );
}

#[test]
fn a_checkpoint_exported_to_a_siem_serves_as_an_anchor() {
    let (tmp, dir) = journal();
    let out = std::process::Command::new(tollgate())
        .args(["audit", "tail", "--format", "json", "-n", "100000000"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let exported = text
        .lines()
        .rfind(|l| l.contains("\"verb\":\"checkpoint\""))
        .expect("checkpoints are exported")
        .to_owned();
    let anchor = tmp.path().join("siem-checkpoint.json");
    std::fs::write(&anchor, &exported).unwrap();
    let (code, report) = verify(&dir, &["--anchor", anchor.to_str().unwrap()]);
    assert_eq!(code, 0, "{report:#}");
    cut_live(&dir, 3);
    std::fs::remove_file(dir.join("head.json")).unwrap();
    assert_tampered(
        &dir,
        &["--anchor", anchor.to_str().unwrap()],
        &["cut from the end"],
    );
    // An altered exported checkpoint is refused.
    let forged = exported.replacen("\"headSeq\":", "\"headSeq\":1", 1);
    std::fs::write(&anchor, forged).unwrap();
    assert_tampered(
        &dir,
        &["--anchor", anchor.to_str().unwrap()],
        &["signature does not verify"],
    );
}

#[test]
fn the_complete_example_in_the_format_document_verifies() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/audit-format.md"))
            .unwrap();
    let section = &doc[doc.find("## 8. A complete example").unwrap()..];
    let blocks: Vec<&str> = section
        .split("```text\n")
        .skip(1)
        .map(|b| &b[..b.find("```").unwrap()])
        .collect();
    let (segment_text, key_text) = (blocks[0], blocks[1]);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    std::fs::create_dir_all(dir.join("segments")).unwrap();
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    let seg = dir.join("segments/seg-00000000000000000001.jsonl");
    std::fs::write(&seg, segment_text).unwrap();
    std::fs::write(dir.join("keys/e744c0791320c328.pub"), key_text).unwrap();
    let head = format!("{}\n", segment_text.lines().nth(2).unwrap());
    std::fs::write(dir.join("head.json"), head).unwrap();
    let (code, report) = verify(&dir, &[]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["checkpoints"], 1, "{report:#}");
    let (code, out) = python_verify(&dir, &[]);
    assert_eq!(code, 0, "{out}");
    // The hash the text works out by hand is the first record's.
    let first =
        record::parse::<EventHead>(segment_text.lines().next().unwrap().as_bytes()).unwrap();
    assert!(section.contains(&record::hex(&first.hash)));
    // And one edited byte is caught by both.
    std::fs::write(&seg, segment_text.replacen("tool-1", "tool-2", 1)).unwrap();
    assert_eq!(verify(&dir, &[]).0, 1);
    assert_eq!(python_verify(&dir, &[]).0, 1);
}
