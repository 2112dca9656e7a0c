//! Opening a journal after a clean stop or a crash: find the chain head,
//! detect a torn tail, cut it back — quarantining the cut bytes and
//! recording the cut in the chain — and refuse to write over damage that a
//! crash cannot explain.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use serde_json::{Map, Value, json};

use super::segment::{self, Lines, SegmentFile};
use crate::record::{self, EventHead, GENESIS, Hash};
use crate::{Error, Event, Outcome, Priority};

/// The state a writer resumes from.
#[derive(Debug, Default)]
pub(crate) struct Recovered {
    /// The plain segment to keep appending to, with its length and record
    /// count; `None` when a new segment must be created.
    pub active: Option<(SegmentFile, u64, u64)>,
    /// Sequence number of the last record (0: empty journal).
    pub head_seq: u64,
    /// Hash of the last record.
    pub head_hash: Hash,
    /// Records after the last checkpoint.
    pub since_checkpoint: u64,
    /// Key id of the last checkpoint seen.
    pub last_key_id: Option<String>,
    /// Time of the active segment's first record.
    pub active_first_time: Option<String>,
    /// Sealed segments not yet compressed.
    pub sealed_plain: Vec<SegmentFile>,
    /// Notices to write first (a torn tail cut).
    pub notices: Vec<Event>,
    /// Torn tails cut (for the metric).
    pub tail_cuts: u64,
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |e| Error::io(what, path, e)
}

/// Recovers the journal in `dir` (segments under `dir/segments`), then
/// compares the chain with the signed checkpoints kept apart from it
/// (`head.json`, the external anchor): a chain that no longer reaches or
/// contains them was cut or rewritten, which no crash explains. The writer
/// records that as a `tail-cut` incident (`tampering: true`) that
/// verification reports for ever, and continues: refusing to start would
/// stop every admission and agent action, and the incident cannot be
/// erased without breaking the chain or a later signed checkpoint.
pub(crate) fn recover(dir: &Path, anchor: Option<&Path>) -> Result<Recovered, Error> {
    let mut out = recover_chain(dir)?;
    let mut sources = vec![("head.json".to_owned(), dir.join(super::HEAD_FILE))];
    if let Some(anchor) = anchor {
        sources.push((format!("anchor {}", anchor.display()), anchor.to_owned()));
    }
    let keys = known_keys(dir);
    for (source, path) in sources {
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("reading", &path, e)),
        };
        if let Some(incident) = compare_signed(dir, &source, &bytes, &keys, &out)? {
            out.notices.push(incident);
            out.tail_cuts += 1;
        }
    }
    if out.since_checkpoint > 0 {
        let first = out.head_seq.saturating_sub(out.since_checkpoint) + 1;
        let mut attributes = Map::new();
        attributes.insert("firstSeq".into(), json!(first));
        attributes.insert("lastSeq".into(), json!(out.head_seq));
        out.notices.push(Event::notice(
            "unsigned-tail",
            "journal",
            Outcome::Warn,
            Priority::P2Log,
            format!(
                "records {first}..{} were written after the last signed checkpoint before an unclean stop; they are signed from here on",
                out.head_seq
            ),
            attributes,
        ));
    }
    Ok(out)
}

/// Every public key in `dir/keys` (unreadable files are skipped).
fn known_keys(dir: &Path) -> Vec<crate::keys::VerifyingKey> {
    let Ok(entries) = std::fs::read_dir(dir.join(super::KEYS_DIR)) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("pub"))
        .filter_map(|p| crate::keys::VerifyingKey::load(&p).ok())
        .collect()
}

/// The incident to record when the chain does not bear out the signed
/// checkpoint `bytes` from `source`.
fn compare_signed(
    dir: &Path,
    source: &str,
    bytes: &[u8],
    keys: &[crate::keys::VerifyingKey],
    out: &Recovered,
) -> Result<Option<Event>, Error> {
    let mut attributes = Map::new();
    attributes.insert("tampering".into(), json!(true));
    attributes.insert("source".into(), json!(source));
    attributes.insert("chainHeadSeq".into(), json!(out.head_seq));
    attributes.insert("chainHeadHash".into(), json!(record::hex(&out.head_hash)));
    let incident = |attributes: Map<String, Value>, reason: String| {
        tracing::error!(source, "{reason}");
        Event::notice(
            "tail-cut",
            source,
            Outcome::Warn,
            Priority::P0Escalate,
            reason,
            attributes,
        )
    };
    let statement = match crate::verify::anchor::parse(bytes) {
        Ok(s) => s,
        Err(reason) => {
            return Ok(Some(incident(
                attributes,
                format!(
                    "{source} is not a signed checkpoint ({reason}): the journal's signed head was replaced"
                ),
            )));
        }
    };
    if let Err(reason) = crate::verify::signature_ok(keys, &statement.checkpoint) {
        return Ok(Some(incident(attributes, format!("{source}: {reason}"))));
    }
    let cp = &statement.checkpoint;
    let mut claims = Vec::new();
    if let Some(h) = record::unhex(cp.head_hash.as_bytes()) {
        claims.push((cp.head_seq, h));
    }
    claims.extend(statement.record);
    for (seq, hash) in claims {
        attributes.insert("signedSeq".into(), json!(seq));
        attributes.insert("signedHash".into(), json!(record::hex(&hash)));
        if seq > out.head_seq {
            return Ok(Some(incident(
                attributes,
                format!(
                    "the journal ends at record {}, but {source} holds a signed checkpoint reaching record {seq}: records {}..{seq} were cut from the end while no writer ran",
                    out.head_seq,
                    out.head_seq + 1
                ),
            )));
        }
        match hash_at(dir, seq)? {
            Some(found) if found != hash => {
                return Ok(Some(incident(
                    attributes,
                    format!(
                        "record {seq} is not the one {source} holds a signed checkpoint for: the chain was cut and rewritten while no writer ran"
                    ),
                )));
            }
            _ => {}
        }
    }
    Ok(None)
}

/// The hash of record `seq`, if a segment holds it.
fn hash_at(dir: &Path, seq: u64) -> Result<Option<Hash>, Error> {
    let seg_dir = dir.join(segment::SEGMENTS_DIR);
    let segments = segment::list(&seg_dir).map_err(io_err("listing", &seg_dir))?;
    let Some(seg) = segments.iter().rev().find(|s| s.first_seq <= seq) else {
        return Ok(None);
    };
    let mut lines = Lines::new(segment::open(seg).map_err(io_err("reading", &seg.path))?, 0);
    while let Some(line) = lines.next_line().map_err(io_err("reading", &seg.path))? {
        if let Ok(parsed) = record::parse::<EventHead>(&line.bytes)
            && parsed.envelope.seq == seq
        {
            return Ok(Some(parsed.hash));
        }
    }
    Ok(None)
}

fn recover_chain(dir: &Path) -> Result<Recovered, Error> {
    let seg_dir = dir.join(segment::SEGMENTS_DIR);
    clean_temporaries(&seg_dir)?;
    let mut segments = segment::list(&seg_dir).map_err(io_err("listing", &seg_dir))?;
    // A crash between writing `.jsonl.gz` and removing `.jsonl` leaves
    // both: the plain file is authoritative, the copy is redone.
    let mut deduped: Vec<SegmentFile> = Vec::with_capacity(segments.len());
    for seg in segments.drain(..) {
        if let Some(prev) = deduped.last()
            && prev.first_seq == seg.first_seq
        {
            if seg.compressed {
                tracing::warn!(path = %seg.path.display(), "removing a compressed copy left by an interrupted compression");
                std::fs::remove_file(&seg.path).map_err(io_err("removing", &seg.path))?;
            }
            continue;
        }
        deduped.push(seg);
    }
    let mut out = Recovered::default();
    let Some((last, earlier)) = deduped.split_last() else {
        out.head_hash = GENESIS;
        return Ok(out);
    };
    out.sealed_plain = earlier.iter().filter(|s| !s.compressed).cloned().collect();
    let previous = earlier.last();
    if last.compressed {
        resume_after(last, &mut out)?;
        return Ok(out);
    }
    let scan = scan_active(dir, last)?;
    if let Some(notice) = scan.notice {
        out.notices.push(notice);
        out.tail_cuts += 1;
    }
    match scan.head {
        None => {
            // Empty (or entirely torn) active segment: the chain continues
            // from the previous segment.
            match previous {
                Some(prev) => resume_after(prev, &mut out)?,
                None => out.head_hash = GENESIS,
            }
            if out.head_seq + 1 != last.first_seq {
                // An empty file whose name does not fit: nothing in it to
                // lose, replace it by one that does.
                std::fs::remove_file(&last.path).map_err(io_err("removing", &last.path))?;
                out.active = None;
            } else {
                out.active = Some((last.clone(), 0, 0));
            }
        }
        Some((seq, hash)) => {
            out.head_seq = seq;
            out.head_hash = hash;
            out.since_checkpoint = scan.since_checkpoint;
            out.last_key_id = scan.last_key_id;
            out.active_first_time = scan.first_time;
            if scan.sealed {
                out.sealed_plain.push(last.clone());
                out.active = None;
            } else {
                out.active = Some((last.clone(), scan.valid_len, scan.records));
            }
        }
    }
    Ok(out)
}

fn resume_after(segment: &SegmentFile, out: &mut Recovered) -> Result<(), Error> {
    let summary = segment::summarize(segment).map_err(io_err("reading", &segment.path))?;
    let Some(summary) = summary else {
        return Err(Error::Damaged {
            segment: segment.path.clone(),
            offset: 0,
            reason: "a sealed segment holds no readable record".into(),
        });
    };
    out.head_seq = summary.last_seq;
    out.head_hash = record::unhex(summary.last_hash.as_bytes()).unwrap_or(GENESIS);
    out.last_key_id = last_key_id(segment)?;
    Ok(())
}

fn last_key_id(segment: &SegmentFile) -> Result<Option<String>, Error> {
    let mut lines = Lines::new(
        segment::open(segment).map_err(io_err("reading", &segment.path))?,
        0,
    );
    let mut key = None;
    while let Some(line) = lines
        .next_line()
        .map_err(io_err("reading", &segment.path))?
    {
        if let Ok(parsed) = record::parse::<EventHead>(&line.bytes)
            && let Some(cp) = parsed.envelope.checkpoint
        {
            key = Some(cp.key_id);
        }
    }
    Ok(key)
}

fn clean_temporaries(seg_dir: &Path) -> Result<(), Error> {
    let entries = match std::fs::read_dir(seg_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("listing", seg_dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err("listing", seg_dir))?;
        let name = entry.file_name();
        if name.to_string_lossy().ends_with(".tmp") {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(io_err("removing", &path))?;
        }
    }
    Ok(())
}

struct Scan {
    head: Option<(u64, Hash)>,
    valid_len: u64,
    records: u64,
    since_checkpoint: u64,
    last_key_id: Option<String>,
    first_time: Option<String>,
    sealed: bool,
    notice: Option<Event>,
}

/// Reads the active segment, verifying each record's hash and its link to
/// the one before. The first record that fails starts the bad region; if
/// no self-consistent record follows inside it, it is a torn write and is
/// cut, otherwise the segment is damaged and left untouched.
fn scan_active(dir: &Path, seg: &SegmentFile) -> Result<Scan, Error> {
    let path = &seg.path;
    let file = File::open(path).map_err(io_err("reading", path))?;
    let mut lines = Lines::new(io::BufReader::with_capacity(256 << 10, file), 0);
    let mut scan = Scan {
        head: None,
        valid_len: 0,
        records: 0,
        since_checkpoint: 0,
        last_key_id: None,
        first_time: None,
        sealed: false,
        notice: None,
    };
    let mut bad: Option<(u64, String)> = None;
    while let Some(line) = lines.next_line().map_err(io_err("reading", path))? {
        let verdict = if !line.complete {
            Err("incomplete record (no newline)".to_owned())
        } else if line.too_long {
            Err("record too long".to_owned())
        } else {
            match record::parse::<EventHead>(&line.bytes) {
                Err(e) => Err(e.to_string()),
                Ok(parsed) => {
                    let seq = parsed.envelope.seq;
                    match scan.head {
                        None if seq != seg.first_seq => Err(format!(
                            "first record has sequence {seq}, the file name says {}",
                            seg.first_seq
                        )),
                        Some((head_seq, head_hash))
                            if seq != head_seq + 1 || parsed.prev != head_hash =>
                        {
                            Err(format!(
                                "record {seq} does not follow record {head_seq} in the chain"
                            ))
                        }
                        _ => Ok(parsed),
                    }
                }
            }
        };
        match verdict {
            Ok(parsed) => {
                if scan.sealed {
                    bad = Some((line.offset, "record after a sealing checkpoint".into()));
                    break;
                }
                scan.head = Some((parsed.envelope.seq, parsed.hash));
                scan.valid_len = lines.offset();
                scan.records += 1;
                if scan.first_time.is_none() {
                    scan.first_time = Some(parsed.envelope.time.clone());
                }
                match parsed.envelope.checkpoint {
                    Some(cp) => {
                        scan.since_checkpoint = 0;
                        scan.sealed = cp.seal;
                        scan.last_key_id = Some(cp.key_id);
                    }
                    None => scan.since_checkpoint += 1,
                }
            }
            Err(reason) => {
                bad = Some((line.offset, reason));
                break;
            }
        }
    }
    let Some((offset, reason)) = bad else {
        return Ok(scan);
    };
    // Is anything after the bad spot a well-formed record? Then this is
    // not a torn write.
    let mut tail = Lines::new(
        {
            let mut f = File::open(path).map_err(io_err("reading", path))?;
            f.seek(SeekFrom::Start(offset))
                .map_err(io_err("reading", path))?;
            io::BufReader::new(f)
        },
        offset,
    );
    while let Some(line) = tail.next_line().map_err(io_err("reading", path))? {
        if line.complete && record::parse::<EventHead>(&line.bytes).is_ok() {
            return Err(Error::Damaged {
                segment: path.clone(),
                offset,
                reason: format!(
                    "{reason}, and a well-formed record follows at offset {}",
                    line.offset
                ),
            });
        }
    }
    scan.notice = Some(cut_tail(dir, seg, offset, &reason, scan.head.map(|h| h.0))?);
    Ok(scan)
}

/// Moves the bytes from `offset` to the end into `quarantine/`, truncates
/// the segment there, and returns the notice recording it.
fn cut_tail(
    dir: &Path,
    seg: &SegmentFile,
    offset: u64,
    reason: &str,
    last_valid: Option<u64>,
) -> Result<Event, Error> {
    let path = &seg.path;
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_err("opening", path))?;
    file.seek(SeekFrom::Start(offset))
        .map_err(io_err("reading", path))?;
    let mut cut = Vec::new();
    file.read_to_end(&mut cut)
        .map_err(io_err("reading", path))?;
    let quarantine_dir = dir.join("quarantine");
    std::fs::create_dir_all(&quarantine_dir).map_err(io_err("creating", &quarantine_dir))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let quarantine = quarantine_dir.join(format!("{name}.at-{offset}.{stamp}.torn"));
    {
        let mut q = File::create(&quarantine).map_err(io_err("writing", &quarantine))?;
        q.write_all(&cut).map_err(io_err("writing", &quarantine))?;
        q.sync_all().map_err(io_err("writing", &quarantine))?;
    }
    segment::sync_dir(&quarantine_dir).map_err(io_err("syncing", &quarantine_dir))?;
    file.set_len(offset).map_err(io_err("truncating", path))?;
    file.sync_all().map_err(io_err("syncing", path))?;
    let digest = ring::digest::digest(&ring::digest::SHA256, &cut);
    tracing::error!(
        segment = %path.display(),
        offset,
        bytes = cut.len(),
        quarantine = %quarantine.display(),
        "torn journal tail cut back to the last valid record: {reason}"
    );
    let mut attributes = Map::new();
    attributes.insert("segment".into(), json!(name));
    attributes.insert("offset".into(), json!(offset));
    attributes.insert("bytes".into(), json!(cut.len()));
    attributes.insert("sha256".into(), json!(record::hex(digest.as_ref())));
    attributes.insert("lastValidSeq".into(), json!(last_valid));
    attributes.insert(
        "quarantine".into(),
        Value::String(format!(
            "quarantine/{}",
            quarantine
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        )),
    );
    attributes.insert("cause".into(), json!(reason));
    Ok(Event::notice(
        "tail-cut",
        &name,
        Outcome::Warn,
        Priority::P1Warn,
        format!(
            "torn tail of {name} cut at offset {offset} ({} bytes, kept in quarantine): {reason}; records written but never acknowledged may be among them",
            cut.len()
        ),
        attributes,
    ))
}
