//! Reading the journal in sequence order, from any position, across live
//! segments — for exporters and `tollgate audit tail`.
//!
//! Only records at or below a given durable sequence number are returned
//! (the writer publishes it after each fsync), so an exporter never ships a
//! record that a failed write could still take back. Segments deleted by
//! retention or dropped at the spool cap are skipped; the notice recording
//! the deletion comes later in the stream.

use std::fs::File;
use std::io::{self, BufRead};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::journal::segment::{self, Lines, SegmentFile};
use crate::record::{self, Checkpoint, Envelope, MAX_LINE};
use crate::{Event, Outcome, Priority};

/// One exported record: its position and the event (a checkpoint becomes
/// a journal notice, so receivers hold the signed chain heads too).
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Sequence number in the journal.
    pub seq: u64,
    /// The event.
    pub event: Event,
}

enum Source {
    Plain(PlainTail),
    Compressed(Lines<Box<dyn BufRead + Send>>),
}

struct Current {
    segment: SegmentFile,
    source: Source,
}

/// A sequential reader over the segments of a journal directory.
pub struct Reader {
    seg_dir: PathBuf,
    next: u64,
    current: Option<Current>,
    skipped: u64,
}

/// Reads complete lines of a plain (possibly growing) segment by offset,
/// so a line is consumed only once it is accepted.
struct PlainTail {
    file: File,
    offset: u64,
    buf: Vec<u8>,
    buf_start: u64,
}

impl PlainTail {
    /// The complete line at the current offset, without consuming it:
    /// `(length including the newline, line)`.
    fn peek(&mut self) -> io::Result<Option<(u64, Vec<u8>)>> {
        let mut want: usize = 256 << 10;
        loop {
            if self.offset >= self.buf_start {
                let rel = usize::try_from(self.offset - self.buf_start).unwrap_or(usize::MAX);
                if let Some(avail) = self.buf.get(rel..)
                    && let Some(end) = avail.iter().position(|b| *b == b'\n')
                {
                    let line = avail.get(..end).unwrap_or_default().to_vec();
                    return Ok(Some((end as u64 + 1, line)));
                }
            }
            if want > MAX_LINE * 2 {
                // Longer than any record can be: skip it as garbage.
                return Ok(Some((self.buf.len() as u64, Vec::new())));
            }
            let mut chunk = vec![0u8; want];
            let n = self.file.read_at(&mut chunk, self.offset)?;
            chunk.truncate(n);
            let eof = n < want;
            self.buf = chunk;
            self.buf_start = self.offset;
            if !self.buf.contains(&b'\n') {
                if eof {
                    return Ok(None);
                }
                want = want.saturating_mul(2);
            }
        }
    }
}

impl Reader {
    /// A reader of `journal` starting at sequence number `from` (the first
    /// record still present if `from` is older).
    pub fn new(journal: &Path, from: u64) -> Reader {
        Reader {
            seg_dir: journal.join(segment::SEGMENTS_DIR),
            next: from.max(1),
            current: None,
            skipped: 0,
        }
    }

    /// The sequence number the next record is expected to have.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// Lines that could not be parsed and were skipped so far.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    fn open_for(&mut self, seq: u64) -> io::Result<bool> {
        let mut segments = segment::list(&self.seg_dir)?;
        segments.dedup_by_key(|s| s.first_seq);
        let chosen = match segments.iter().rev().find(|s| s.first_seq <= seq) {
            Some(s) => s.clone(),
            None => match segments.first() {
                Some(s) => {
                    // Everything before it was deleted or dropped.
                    self.next = s.first_seq;
                    s.clone()
                }
                None => return Ok(false),
            },
        };
        let source = if chosen.compressed {
            Source::Compressed(Lines::new(segment::open(&chosen)?, 0))
        } else {
            Source::Plain(PlainTail {
                file: File::open(&chosen.path)?,
                offset: 0,
                buf: Vec::new(),
                buf_start: 0,
            })
        };
        self.current = Some(Current {
            segment: chosen,
            source,
        });
        Ok(true)
    }

    /// Up to `max_records` records (and about `max_bytes` of record text)
    /// with sequence numbers from [`Reader::position`] to `durable`.
    pub fn read(
        &mut self,
        durable: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> io::Result<Vec<Item>> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let mut reopened = false;
        while out.len() < max_records && bytes < max_bytes && self.next <= durable {
            if self.current.is_none() {
                if reopened || !self.open_for(self.next)? {
                    break;
                }
                reopened = true;
            }
            let Some(current) = self.current.as_mut() else {
                break;
            };
            let line = match &mut current.source {
                Source::Plain(tail) => match tail.peek() {
                    Ok(Some((len, line))) => Some((len, line)),
                    Ok(None) => None,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                    Err(e) => return Err(e),
                },
                Source::Compressed(lines) => match lines.next_line()? {
                    Some(l) if l.complete => Some((0, l.bytes)),
                    _ => None,
                },
            };
            let Some((len, line)) = line else {
                // End of this segment: move on if a later one exists.
                let first = current.segment.first_seq;
                let later = segment::list(&self.seg_dir)?
                    .iter()
                    .any(|s| s.first_seq > first);
                if later {
                    self.current = None;
                    reopened = false;
                    continue;
                }
                break;
            };
            match record::parse::<Event>(&line) {
                Ok(parsed) => {
                    let seq = parsed.envelope.seq;
                    if seq > durable {
                        break;
                    }
                    advance(current, len);
                    if seq < self.next {
                        continue;
                    }
                    bytes += line.len();
                    self.next = seq + 1;
                    let hash = parsed.hash;
                    if let Some(event) = into_event(parsed.envelope, &hash) {
                        out.push(Item { seq, event });
                    }
                }
                Err(e) => {
                    advance(current, len);
                    self.skipped += 1;
                    tracing::error!(
                        segment = %current.segment.path.display(),
                        "skipping an unreadable journal record ({e}); run `tollgate audit verify`"
                    );
                }
            }
        }
        Ok(out)
    }
}

fn advance(current: &mut Current, len: u64) {
    if let Source::Plain(tail) = &mut current.source {
        tail.offset += len;
    }
}

fn into_event(envelope: Envelope<Event>, hash: &record::Hash) -> Option<Event> {
    match (envelope.event, envelope.checkpoint) {
        (Some(event), _) => Some(event),
        (None, Some(cp)) => Some(checkpoint_event(envelope.seq, hash, cp)),
        (None, None) => None,
    }
}

/// The journal notice standing for a checkpoint record in exports. Its id
/// is derived from the record's hash, so a resend carries the same id.
pub fn checkpoint_event(seq: u64, hash: &record::Hash, cp: Checkpoint) -> Event {
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(hash.get(..16).unwrap_or(&[0u8; 16]));
    let id = uuid::Builder::from_custom_bytes(bytes).into_uuid();
    let mut attributes = serde_json::Map::new();
    attributes.insert("seq".into(), serde_json::json!(seq));
    attributes.insert("hash".into(), serde_json::json!(record::hex(hash)));
    attributes.insert("headSeq".into(), serde_json::json!(cp.head_seq));
    attributes.insert("headHash".into(), serde_json::json!(cp.head_hash));
    attributes.insert("keyId".into(), serde_json::json!(cp.key_id));
    attributes.insert("signature".into(), serde_json::json!(cp.signature));
    attributes.insert("seal".into(), serde_json::json!(cp.seal));
    attributes.insert("reason".into(), serde_json::json!(cp.reason));
    let mut event = Event::notice(
        "checkpoint",
        &format!("chain head {}", cp.head_seq),
        Outcome::Allow,
        Priority::Observe,
        format!(
            "signed checkpoint over records up to {} (key {})",
            cp.head_seq, cp.key_id
        ),
        attributes,
    );
    event.id = id.to_string();
    event.time = cp.time;
    event
}

#[cfg(test)]
mod tests;
