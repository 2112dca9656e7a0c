//! Segment files: naming, listing, bounded line reading (plain or gzip),
//! summaries and compression.
//!
//! A segment is named after the sequence number of its first record:
//! `seg-00000000000000000001.jsonl` while active or just sealed,
//! `seg-00000000000000000001.jsonl.gz` once compressed (readable with
//! `zcat`).

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;

use serde::{Deserialize, Serialize};

use crate::record::{self, EventHead, Hash, MAX_LINE};

/// Sub-directory of the journal holding segments.
pub const SEGMENTS_DIR: &str = "segments";
const PREFIX: &str = "seg-";
const PLAIN: &str = ".jsonl";
const GZ: &str = ".jsonl.gz";

/// One segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFile {
    /// Sequence number of its first record (from its name).
    pub first_seq: u64,
    /// Where it is.
    pub path: PathBuf,
    /// Whether it is gzip-compressed.
    pub compressed: bool,
}

/// The file name of the segment starting at `first_seq`.
pub fn file_name(first_seq: u64, compressed: bool) -> String {
    format!(
        "{PREFIX}{first_seq:020}{}",
        if compressed { GZ } else { PLAIN }
    )
}

/// Parses a segment file name.
pub fn parse_name(name: &str) -> Option<(u64, bool)> {
    let rest = name.strip_prefix(PREFIX)?;
    let (digits, compressed) = if let Some(d) = rest.strip_suffix(GZ) {
        (d, true)
    } else {
        (rest.strip_suffix(PLAIN)?, false)
    };
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((digits.parse().ok()?, compressed))
}

/// Every segment file in `dir`, by first sequence number (plain before
/// compressed when both exist). Other files are ignored.
pub fn list(dir: &Path) -> io::Result<Vec<SegmentFile>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some((first_seq, compressed)) = name.to_str().and_then(parse_name) else {
            continue;
        };
        out.push(SegmentFile {
            first_seq,
            path: entry.path(),
            compressed,
        });
    }
    out.sort_by_key(|s| (s.first_seq, s.compressed));
    Ok(out)
}

/// Opens a segment for reading, decompressing if needed.
pub fn open(segment: &SegmentFile) -> io::Result<Box<dyn BufRead + Send>> {
    let file = File::open(&segment.path)?;
    Ok(if segment.compressed {
        Box::new(BufReader::with_capacity(
            256 << 10,
            MultiGzDecoder::new(BufReader::new(file)),
        ))
    } else {
        Box::new(BufReader::with_capacity(256 << 10, file))
    })
}

/// One line of a segment.
#[derive(Debug, Clone)]
pub struct Line {
    /// Byte offset of the line's start (in the decompressed content).
    pub offset: u64,
    /// The line without its newline (empty when `too_long`).
    pub bytes: Vec<u8>,
    /// Whether it ended with a newline (the last line of a torn or
    /// in-progress file does not).
    pub complete: bool,
    /// Whether it exceeded [`MAX_LINE`] (its bytes were discarded).
    pub too_long: bool,
}

/// Reads lines with offsets, never holding more than [`MAX_LINE`] bytes of
/// one line in memory, whatever the input.
pub struct Lines<R> {
    reader: R,
    offset: u64,
}

impl<R: BufRead> Lines<R> {
    /// Lines of `reader`, whose first byte is at `offset`.
    pub fn new(reader: R, offset: u64) -> Lines<R> {
        Lines { reader, offset }
    }

    /// The offset of the next line.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next line, or `None` at the end.
    pub fn next_line(&mut self) -> io::Result<Option<Line>> {
        let start = self.offset;
        let mut bytes = Vec::new();
        let mut too_long = false;
        loop {
            let buf = match self.reader.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buf.is_empty() {
                if bytes.is_empty() && !too_long && self.offset == start {
                    return Ok(None);
                }
                return Ok(Some(Line {
                    offset: start,
                    bytes,
                    complete: false,
                    too_long,
                }));
            }
            let (chunk, found) = match buf.iter().position(|b| *b == b'\n') {
                Some(i) => (buf.get(..i).unwrap_or_default(), true),
                None => (buf, false),
            };
            if !too_long {
                if bytes.len() + chunk.len() > MAX_LINE {
                    too_long = true;
                    bytes = Vec::new();
                } else {
                    bytes.extend_from_slice(chunk);
                }
            }
            let used = chunk.len() + usize::from(found);
            self.reader.consume(used);
            self.offset += used as u64;
            if found {
                return Ok(Some(Line {
                    offset: start,
                    bytes,
                    complete: true,
                    too_long,
                }));
            }
        }
    }
}

/// A range of records the chain accounts for as deleted: carried forward
/// from the deletion notices inside a segment that is itself deleted, so
/// the explanation of a gap never disappears with the segment holding it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CoverRange {
    /// First record of the range.
    pub first_seq: u64,
    /// Last record of the range.
    pub last_seq: u64,
    /// Hash the range continues from, hex.
    pub first_prev: String,
    /// Hash of its last record, hex.
    pub last_hash: String,
    /// `segment-deleted`, `segment-dropped` or `archive-expired`.
    pub cause: String,
    /// For `segment-deleted`: whether the segment had been archived.
    #[serde(default)]
    pub archived: bool,
    /// Producer events in the range.
    #[serde(default)]
    pub events: u64,
}

/// Verbs of the notices recording a deletion.
pub const DELETION_VERBS: [&str; 3] = ["segment-deleted", "segment-dropped", "archive-expired"];

/// The ranges a deletion notice accounts for: its own and those it carries.
pub fn notice_ranges(
    verb: &str,
    attributes: &serde_json::Map<String, serde_json::Value>,
) -> Vec<CoverRange> {
    let mut out = Vec::new();
    if !DELETION_VERBS.contains(&verb) {
        return out;
    }
    let get_u64 = |k: &str| attributes.get(k).and_then(serde_json::Value::as_u64);
    let get_str = |k: &str| attributes.get(k).and_then(serde_json::Value::as_str);
    if let (Some(first_seq), Some(last_seq), Some(first_prev), Some(last_hash)) = (
        get_u64("firstSeq"),
        get_u64("lastSeq"),
        get_str("firstPrev"),
        get_str("lastHash"),
    ) {
        out.push(CoverRange {
            first_seq,
            last_seq,
            first_prev: first_prev.to_owned(),
            last_hash: last_hash.to_owned(),
            cause: verb.to_owned(),
            archived: attributes
                .get("archived")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false),
            events: get_u64("events").unwrap_or(0),
        });
    }
    if let Some(carried) = attributes
        .get("carried")
        .and_then(serde_json::Value::as_array)
    {
        for entry in carried {
            if let Ok(range) = serde_json::from_value::<CoverRange>(entry.clone()) {
                out.push(range);
            }
        }
    }
    out
}

/// Merges contiguous ranges of the same cause, so carried lists stay short.
pub fn merge_ranges(mut ranges: Vec<CoverRange>) -> Vec<CoverRange> {
    ranges.sort_by_key(|r| (r.first_seq, r.last_seq));
    ranges.dedup();
    let mut out: Vec<CoverRange> = Vec::with_capacity(ranges.len());
    for r in ranges {
        if let Some(last) = out.last_mut()
            && last.last_seq.checked_add(1) == Some(r.first_seq)
            && last.last_hash == r.first_prev
            && last.cause == r.cause
            && last.archived == r.archived
        {
            last.last_seq = r.last_seq;
            last.last_hash = r.last_hash;
            last.events += r.events;
            continue;
        }
        out.push(r);
    }
    out
}

/// What a segment holds, for loss and retention records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// First record's sequence number.
    pub first_seq: u64,
    /// Last record's sequence number.
    pub last_seq: u64,
    /// The `prev` of the first record (the hash it continues from), hex.
    pub first_prev: String,
    /// The last record's hash, hex.
    pub last_hash: String,
    /// Producer event records (journal notices and checkpoints excluded).
    pub events: u64,
    /// Journal notices.
    pub notices: u64,
    /// Id of the first event.
    pub first_id: Option<String>,
    /// Id of the last event.
    pub last_id: Option<String>,
    /// Time of the last record.
    pub last_time: Option<String>,
    /// Whether it ends with a sealing checkpoint.
    pub sealed: bool,
    /// Deletions recorded inside it (to be carried forward).
    pub covers: Vec<CoverRange>,
}

/// Reads a whole segment and summarises its well-formed records (a
/// malformed one ends the summary: summaries describe what a deletion
/// removes, verification judges integrity).
pub fn summarize(segment: &SegmentFile) -> io::Result<Option<Summary>> {
    let mut lines = Lines::new(open(segment)?, 0);
    let mut summary: Option<Summary> = None;
    // A notice's ranges count only once the next record, a checkpoint,
    // signs it (as verification requires).
    let mut pending: Vec<CoverRange> = Vec::new();
    while let Some(line) = lines.next_line()? {
        if !line.complete {
            break;
        }
        let Ok(parsed) = record::parse::<EventHead>(&line.bytes) else {
            break;
        };
        let s = summary.get_or_insert_with(|| Summary {
            first_seq: parsed.envelope.seq,
            first_prev: parsed.envelope.prev.clone(),
            ..Summary::default()
        });
        s.last_seq = parsed.envelope.seq;
        s.last_hash = record::hex(&parsed.hash);
        s.last_time = Some(parsed.envelope.time.clone());
        s.sealed = parsed.envelope.checkpoint.as_ref().is_some_and(|c| c.seal);
        if parsed.envelope.checkpoint.is_some() {
            s.covers.append(&mut pending);
        }
        pending.clear();
        if let Some(event) = parsed.envelope.event {
            if event.source == "journal" {
                s.notices += 1;
                pending = notice_ranges(&event.action.verb, &event.action.attributes);
                continue;
            }
            s.events += 1;
            if s.first_id.is_none() {
                s.first_id = Some(event.id.clone());
            }
            s.last_id = Some(event.id);
        }
    }
    Ok(summary)
}

/// The last well-formed record of a segment: `(seq, hash, sealed)`.
pub fn last_record(segment: &SegmentFile) -> io::Result<Option<(u64, Hash, bool)>> {
    Ok(summarize(segment)?.and_then(|s| {
        let hash = record::unhex(s.last_hash.as_bytes())?;
        Some((s.last_seq, hash, s.sealed))
    }))
}

/// fsyncs a directory so entries created, renamed or removed in it are
/// durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Compresses a sealed plain segment: writes `.jsonl.gz` (through a
/// temporary file, fsync'd), then removes the plain file. Returns the
/// compressed segment.
pub fn compress(segment: &SegmentFile, level: u32) -> io::Result<SegmentFile> {
    let dir = segment.path.parent().unwrap_or_else(|| Path::new("."));
    let final_path = dir.join(file_name(segment.first_seq, true));
    let tmp = dir.join(format!("{}.tmp", file_name(segment.first_seq, true)));
    {
        let mut input = File::open(&segment.path)?;
        let out = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        let mut encoder = GzEncoder::new(io::BufWriter::new(out), Compression::new(level.min(9)));
        io::copy(&mut input, &mut encoder)?;
        let mut writer = encoder.finish()?;
        writer.flush()?;
        let file = writer.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, &final_path)?;
    sync_dir(dir)?;
    std::fs::remove_file(&segment.path)?;
    sync_dir(dir)?;
    Ok(SegmentFile {
        first_seq: segment.first_seq,
        path: final_path,
        compressed: true,
    })
}

/// Reads all of a segment's content (decompressed).
pub fn read_all(segment: &SegmentFile) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    open(segment)?.read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_junk_is_ignored() {
        assert_eq!(parse_name(&file_name(42, false)), Some((42, false)));
        assert_eq!(
            parse_name(&file_name(u64::MAX, true)),
            Some((u64::MAX, true))
        );
        for junk in [
            "seg-1.jsonl",
            "seg-0000000000000000000x.jsonl",
            "x",
            "seg-00000000000000000001.jsonl.gz.tmp",
        ] {
            assert_eq!(parse_name(junk), None, "{junk}");
        }
    }

    #[test]
    fn lines_report_offsets_torn_tails_and_overlong_lines() {
        let mut data = b"ab\ncd\n".to_vec();
        data.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
        data.extend_from_slice(b"\nlast");
        let mut lines = Lines::new(io::BufReader::with_capacity(7, &data[..]), 0);
        let a = lines.next_line().unwrap().unwrap();
        assert_eq!(
            (a.offset, a.bytes.as_slice(), a.complete),
            (0, &b"ab"[..], true)
        );
        let b = lines.next_line().unwrap().unwrap();
        assert_eq!(b.offset, 3);
        let long = lines.next_line().unwrap().unwrap();
        assert!(long.too_long && long.complete && long.bytes.is_empty());
        let last = lines.next_line().unwrap().unwrap();
        assert_eq!(
            (last.bytes.as_slice(), last.complete),
            (&b"last"[..], false)
        );
        assert!(lines.next_line().unwrap().is_none());
    }

    #[test]
    fn compress_keeps_content_and_removes_the_plain_file() {
        let dir = tempfile::tempdir().unwrap();
        let plain = SegmentFile {
            first_seq: 1,
            path: dir.path().join(file_name(1, false)),
            compressed: false,
        };
        std::fs::write(&plain.path, b"line one\nline two\n").unwrap();
        let gz = compress(&plain, 1).unwrap();
        assert!(!plain.path.exists());
        assert_eq!(read_all(&gz).unwrap(), b"line one\nline two\n");
        assert_eq!(list(dir.path()).unwrap(), vec![gz]);
    }
}
