//! `tollgate audit verify`: checks the chain, the checkpoints and their
//! signatures across live and archived segments, and names the first bad
//! record (segment, offset, sequence number, event id).
//!
//! # What is guaranteed
//!
//! Against anyone without the signing key:
//! - **any edited byte** of a record is detected at that record (its hash
//!   no longer matches; rewriting the hash breaks the next record's link,
//!   rewriting the whole rest of the chain breaks the next signed
//!   checkpoint);
//! - **a deleted, inserted, duplicated or reordered record** is detected at
//!   the first record out of place (sequence numbers and `prev` links);
//! - **a deleted segment** is detected unless the chain itself records its
//!   deletion (retention after export, a drop at the spool cap, archive
//!   expiry) with matching boundary hashes, in a notice that the very next
//!   record — a checkpoint — signs; a `segment-deleted` notice must also
//!   show every exporter's acknowledgement of the deleted records. Unsigned
//!   or forged notices, and ranges that match no real gap, account for
//!   nothing. A segment renamed, or truncated before its sealing
//!   checkpoint, is detected;
//! - **tail truncation** back to or before the latest checkpoint is detected
//!   through `head.json`, the signed copy of that checkpoint, and for ever
//!   once a writer restarted on the cut journal (it records a `tail-cut`
//!   incident with `tampering: true`). Records written after the latest
//!   checkpoint (at most `checkpoint.everyRecords` records or
//!   `checkpoint.interval` of time) can be cut at a record boundary without
//!   local evidence; an incomplete final line is reported as a torn write
//!   (a crash or a write in progress), not as tampering;
//! - **truncation hidden locally** (`head.json` deleted or replaced by an
//!   older checkpoint, the last segments dropped) is detected with an
//!   external anchor (`--anchor`): a checkpoint published outside the
//!   volume (`anchor.file`) or exported to a SIEM.
//!
//! Against someone holding the signing key and write access to every copy,
//! local files prove nothing; keep the key in a Secret the node cannot
//! read back and verify with `--public-key` from a trusted copy.
//!
//! Verification streams every segment once and never panics on any input
//! (the `journal_verify` fuzz target feeds it arbitrary bytes).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;

use crate::journal::segment::{self, Lines, SegmentFile};
use crate::journal::{HEAD_FILE, KEYS_DIR};
use crate::keys::VerifyingKey;
use crate::record::{self, GENESIS, RecordError};

pub(crate) mod anchor;
mod chain;
#[cfg(test)]
mod tests;

pub use chain::Chain;

/// The overall result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Every check passed.
    Intact,
    /// Evidence of alteration, deletion, reordering or truncation.
    Tampered,
    /// The journal could not be read (missing, permissions, I/O errors).
    Unreadable,
}

impl Verdict {
    /// The exit code of `tollgate audit verify`: 0, 1, 2.
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Intact => 0,
            Verdict::Tampered => 1,
            Verdict::Unreadable => 2,
        }
    }
}

/// One finding, located as precisely as the evidence allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// The segment file (relative to the journal or archive directory).
    pub segment: String,
    /// Byte offset of the record in the segment's (decompressed) content.
    pub offset: u64,
    /// The record's sequence number, when readable.
    pub seq: Option<u64>,
    /// The event id, when readable.
    pub id: Option<String>,
    /// What is wrong.
    pub reason: String,
    #[serde(skip)]
    order: (usize, u64),
}

/// The verification report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The verdict.
    pub verdict: Verdict,
    /// Records checked.
    pub records: u64,
    /// Event records among them.
    pub events: u64,
    /// Checkpoints whose signature verified.
    pub checkpoints: u64,
    /// Segment files read.
    pub segments: usize,
    /// Of which from the archive.
    pub archived_segments: usize,
    /// First sequence number present.
    pub first_seq: Option<u64>,
    /// Last sequence number present.
    pub head_seq: u64,
    /// Its hash.
    pub head_hash: String,
    /// Sequence number of the last signed checkpoint.
    pub last_checkpoint: Option<u64>,
    /// Records after the last checkpoint (not yet covered by a signature).
    pub uncovered: u64,
    /// Problems, first bad record first.
    pub problems: Vec<Problem>,
    /// Facts an auditor should know that are not tampering: gaps the chain
    /// accounts for, recorded losses, torn tails, unread archives.
    pub notes: Vec<String>,
    /// Why the journal is unreadable, when it is.
    pub error: Option<String>,
}

/// What to verify.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// The live journal directory.
    pub dir: PathBuf,
    /// The archive directory (read from `journal.json` when absent).
    pub archive: Option<PathBuf>,
    /// Trusted public keys; when empty, the keys stored in the journal
    /// (and archive) `keys/` directories are used.
    pub public_keys: Vec<VerifyingKey>,
    /// External anchors (`--anchor`): checkpoints published outside the
    /// journal's volume; the journal must reach and contain each.
    pub anchors: Vec<PathBuf>,
}

/// A segment to read and where it comes from.
struct Planned {
    file: SegmentFile,
    display: String,
    archived: bool,
    /// Another copy (live vs archive) that must be identical.
    twin: Option<(SegmentFile, String)>,
}

fn unreadable(error: String) -> Report {
    Report {
        verdict: Verdict::Unreadable,
        records: 0,
        events: 0,
        checkpoints: 0,
        segments: 0,
        archived_segments: 0,
        first_seq: None,
        head_seq: 0,
        head_hash: record::hex(&GENESIS),
        last_checkpoint: None,
        uncovered: 0,
        problems: Vec::new(),
        notes: Vec::new(),
        error: Some(error),
    }
}

/// The archive directory a journal records in its `journal.json`.
pub fn recorded_archive(dir: &Path) -> Option<PathBuf> {
    let bytes = std::fs::read(dir.join(crate::journal::MANIFEST_FILE)).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    value
        .get("archive")
        .and_then(|a| a.as_str())
        .map(PathBuf::from)
}

fn load_keys(dirs: &[PathBuf]) -> Result<Vec<VerifyingKey>, String> {
    let mut keys = Vec::new();
    for dir in dirs {
        let keys_dir = dir.join(KEYS_DIR);
        let entries = match std::fs::read_dir(&keys_dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("{}: {e}", keys_dir.display())),
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("pub") {
                continue;
            }
            match VerifyingKey::load(&path) {
                Ok(k) => keys.push(k),
                Err(e) => return Err(e.to_string()),
            }
        }
    }
    Ok(keys)
}

/// Verifies a journal. A running writer may compress or delete a segment
/// while it is read; verification then starts over (at most three times).
pub fn verify(options: &VerifyOptions) -> Report {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match verify_once(options) {
            Err(Vanished) if attempt < 5 => continue,
            Err(Vanished) => {
                return unreadable("segments kept changing while being read (is a writer compressing or deleting them?)".into());
            }
            Ok(report) => return report,
        }
    }
}

/// A segment disappeared between listing and reading.
struct Vanished;

fn verify_once(options: &VerifyOptions) -> Result<Report, Vanished> {
    let dir = &options.dir;
    let seg_dir = dir.join(segment::SEGMENTS_DIR);
    match std::fs::metadata(&seg_dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Ok(unreadable(format!(
                "{} is not a directory",
                seg_dir.display()
            )));
        }
        Err(e) => {
            return Ok(unreadable(format!(
                "{}: {e} (is {} a Tollgate audit journal?)",
                seg_dir.display(),
                dir.display()
            )));
        }
    }
    // head.json is read before the segments are listed: a writer still
    // running only ever adds records, and writes head.json after the
    // checkpoint it copies is on disk, so the segments read next reach it.
    let head = std::fs::read(dir.join(HEAD_FILE));
    let mut notes = Vec::new();
    let archive = options.archive.clone().or_else(|| recorded_archive(dir));
    let archive = match archive {
        Some(a) if a.is_dir() => Some(a),
        Some(a) => {
            notes.push(format!(
                "archive {} not found: archived segments were not checked",
                a.display()
            ));
            None
        }
        None => None,
    };
    let live = match segment::list(&seg_dir) {
        Ok(l) => l,
        Err(e) => return Ok(unreadable(format!("{}: {e}", seg_dir.display()))),
    };
    let archived = match &archive {
        Some(a) => match segment::list(&a.join(segment::SEGMENTS_DIR)) {
            Ok(l) => l,
            Err(e) => return Ok(unreadable(format!("{}: {e}", a.display()))),
        },
        None => Vec::new(),
    };
    let keys = if options.public_keys.is_empty() {
        let mut dirs = vec![dir.clone()];
        dirs.extend(archive.iter().cloned());
        match load_keys(&dirs) {
            Ok(k) => k,
            Err(e) => return Ok(unreadable(e)),
        }
    } else {
        options.public_keys.clone()
    };
    let plan = plan(&live, &archived);
    let mut chain = Chain::new(keys, archive.is_some());
    chain.notes.append(&mut notes);
    for path in &options.anchors {
        match std::fs::read(path) {
            Ok(bytes) => chain.expect(&format!("anchor {}", path.display()), &bytes),
            Err(e) => return Ok(unreadable(format!("{}: {e}", path.display()))),
        }
    }
    let head = match head {
        Ok(bytes) => {
            chain.expect(HEAD_FILE, &bytes);
            Ok(())
        }
        Err(e) => Err(e),
    };
    let last_index = plan.len().saturating_sub(1);
    for (index, planned) in plan.iter().enumerate() {
        if let Err(e) = read_segment(&mut chain, index, planned, index == last_index) {
            if e.kind() == io::ErrorKind::NotFound {
                return Err(Vanished);
            }
            return Ok(unreadable(format!("{}: {e}", planned.file.path.display())));
        }
        if let Some((twin, twin_display)) = &planned.twin {
            match compare(&planned.file, twin) {
                Ok(None) => {}
                Ok(Some(offset)) => chain.problem(
                    (index, u64::MAX),
                    twin_display.clone(),
                    offset,
                    None,
                    None,
                    format!(
                        "this copy differs from {} from offset {offset}",
                        planned.display
                    ),
                ),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Vanished),
                Err(e) => chain.problem(
                    (index, u64::MAX),
                    twin_display.clone(),
                    0,
                    None,
                    None,
                    format!("this copy cannot be read: {e}"),
                ),
            }
        }
    }
    match head {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if chain.checkpoints > 0 {
                chain.notes.push(format!(
                    "{HEAD_FILE} is missing: truncation back past the last checkpoint cannot be ruled out locally"
                ));
            }
        }
        Err(e) => {
            return Ok(unreadable(format!(
                "{}: {e}",
                dir.join(HEAD_FILE).display()
            )));
        }
    }
    Ok(chain.finish(plan.len(), plan.iter().filter(|p| p.archived).count()))
}

/// Orders segments by first sequence number; live copies are primary.
fn plan(live: &[SegmentFile], archived: &[SegmentFile]) -> Vec<Planned> {
    let mut by_seq: BTreeMap<u64, Planned> = BTreeMap::new();
    for seg in live {
        // A plain file and its compressed copy (interrupted compression):
        // the plain one is authoritative, the copy must match it.
        let display = format!("segments/{}", file_name(&seg.path));
        match by_seq.get_mut(&seg.first_seq) {
            Some(existing) => existing.twin = Some((seg.clone(), display)),
            None => {
                by_seq.insert(
                    seg.first_seq,
                    Planned {
                        file: seg.clone(),
                        display,
                        archived: false,
                        twin: None,
                    },
                );
            }
        }
    }
    for seg in archived {
        let display = format!("archive/segments/{}", file_name(&seg.path));
        match by_seq.get_mut(&seg.first_seq) {
            Some(existing) => {
                if existing.twin.is_none() {
                    existing.twin = Some((seg.clone(), display));
                }
            }
            None => {
                by_seq.insert(
                    seg.first_seq,
                    Planned {
                        file: seg.clone(),
                        display,
                        archived: true,
                        twin: None,
                    },
                );
            }
        }
    }
    by_seq.into_values().collect()
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn is_corruption(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput | io::ErrorKind::UnexpectedEof
    )
}

/// Opens a planned segment; a plain segment compressed since it was listed
/// is read from its compressed replacement (same records, same name).
fn open_planned(file: &SegmentFile) -> io::Result<(Box<dyn io::BufRead + Send>, bool)> {
    match segment::open(file) {
        Ok(reader) => Ok((reader, file.compressed)),
        Err(e) if e.kind() == io::ErrorKind::NotFound && !file.compressed => {
            let replacement = SegmentFile {
                first_seq: file.first_seq,
                path: file
                    .path
                    .with_file_name(segment::file_name(file.first_seq, true)),
                compressed: true,
            };
            Ok((segment::open(&replacement)?, true))
        }
        Err(e) => Err(e),
    }
}

fn read_segment(chain: &mut Chain, index: usize, planned: &Planned, last: bool) -> io::Result<()> {
    let (reader, compressed) = open_planned(&planned.file)?;
    let mut lines = Lines::new(reader, 0);
    chain.begin_segment(
        index,
        &planned.display,
        planned.file.first_seq,
        planned.archived,
    );
    loop {
        let line = match lines.next_line() {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(e) if compressed && is_corruption(&e) => {
                let offset = lines.offset();
                chain.problem(
                    (index, offset),
                    planned.display.clone(),
                    offset,
                    None,
                    None,
                    format!("compressed data is corrupt from here on ({e})"),
                );
                chain.end_segment(false, last);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        chain.line(&line, last && !compressed);
    }
    chain.end_segment(true, last);
    Ok(())
}

/// The first offset at which two segments' contents differ, if any.
fn compare(a: &SegmentFile, b: &SegmentFile) -> io::Result<Option<u64>> {
    let mut la = Lines::new(open_planned(a)?.0, 0);
    let mut lb = Lines::new(open_planned(b)?.0, 0);
    loop {
        let x = la.next_line();
        let y = match lb.next_line() {
            Ok(y) => y,
            Err(e) if is_corruption(&e) => return Ok(Some(lb.offset())),
            Err(e) => return Err(e),
        };
        let x = x?;
        match (x, y) {
            (None, None) => return Ok(None),
            (Some(x), Some(y)) if x.bytes == y.bytes && x.complete == y.complete => {}
            (Some(x), _) => return Ok(Some(x.offset)),
            (None, Some(y)) => return Ok(Some(y.offset)),
        }
    }
}

/// Checks a checkpoint's signature with the key it names.
pub(crate) fn signature_ok(keys: &[VerifyingKey], cp: &record::Checkpoint) -> Result<(), String> {
    let Some(key) = keys.iter().find(|k| k.id() == cp.key_id) else {
        return Err(format!(
            "checkpoint signed by key {} which is not trusted (pass its public key with --public-key)",
            cp.key_id
        ));
    };
    let Ok(signature) = STANDARD.decode(cp.signature.as_bytes()) else {
        return Err("checkpoint signature is not base64".into());
    };
    if key.verify(&cp.message(), &signature) {
        Ok(())
    } else {
        Err(format!(
            "checkpoint signature does not verify with key {} (the checkpoint or the records it covers were altered)",
            cp.key_id
        ))
    }
}

/// Best-effort sequence number and id of a record that failed to parse.
pub(crate) fn salvage(line: &[u8]) -> (Option<u64>, Option<String>) {
    let seq = find_after(line, b"\"seq\":").and_then(|rest| {
        let digits: Vec<u8> = rest
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .copied()
            .collect();
        std::str::from_utf8(&digits).ok()?.parse().ok()
    });
    let id = find_after(line, b"\"id\":\"").and_then(|rest| {
        let end = rest.iter().position(|b| *b == b'"')?;
        let id = std::str::from_utf8(rest.get(..end)?).ok()?;
        (id.len() <= 64).then(|| id.to_owned())
    });
    (seq, id)
}

fn find_after<'a>(haystack: &'a [u8], needle: &[u8]) -> Option<&'a [u8]> {
    let pos = haystack.windows(needle.len()).position(|w| w == needle)?;
    haystack.get(pos + needle.len()..)
}

/// Why a line is bad, for people.
pub(crate) fn describe(e: &RecordError) -> String {
    match e {
        RecordError::HashMismatch => "the record's content does not match its hash (edited)".into(),
        other => other.to_string(),
    }
}

/// Verifies raw segment bytes as the only segment of a journal, named for
/// record `first_seq` (the fuzz targets' entry point): never panics,
/// whatever the bytes.
pub fn verify_bytes(bytes: &[u8], first_seq: u64, keys: Vec<VerifyingKey>) -> Report {
    let mut chain = Chain::new(keys, false);
    chain.begin_segment(0, "segment", first_seq, false);
    let mut lines = Lines::new(bytes, 0);
    while let Ok(Some(line)) = lines.next_line() {
        chain.line(&line, true);
    }
    chain.end_segment(true, true);
    chain.finish(1, 0)
}
