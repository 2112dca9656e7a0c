//! The verification state machine: fed one line at a time in segment
//! order, it checks each record's hash, its link to the one before, every
//! checkpoint's signature, and collects the gaps the chain must account for.

use std::collections::HashSet;

use serde::Deserialize;

use super::{Problem, Report, Verdict, anchor, describe, salvage, signature_ok};
use crate::journal::segment::{Line, notice_ranges};
use crate::keys::VerifyingKey;
use crate::record::{self, GENESIS, Hash};

/// How the chain explains a missing range of records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cover {
    /// Deleted from the live directory after export (and archiving, if
    /// `archived`).
    Deleted { archived: bool },
    /// Dropped unexported at the spool cap (a recorded loss).
    Dropped,
    /// Deleted from the archive after its retention period.
    Expired,
}

#[derive(Debug, Clone)]
struct Coverage {
    first: u64,
    last: u64,
    first_prev: Hash,
    last_hash: Hash,
    cover: Cover,
}

/// A record some signed statement (`head.json`, an external anchor, a
/// checkpoint) says the chain holds.
#[derive(Debug, Clone)]
struct Expected {
    /// Where the statement comes from, for reports (`head.json`, the anchor).
    source: String,
    /// The record's sequence number.
    seq: u64,
    /// Its hash.
    hash: Hash,
    /// `Some(true)` once found with that hash, `Some(false)` once found with
    /// another.
    found: Option<bool>,
    /// What the statement claims, for reports.
    what: String,
}

/// A journal notice waiting for the signed checkpoint that must follow it.
#[derive(Debug, Clone)]
struct Pending {
    seq: u64,
    hash: Hash,
    verb: String,
    coverage: Vec<Coverage>,
}

#[derive(Debug, Clone)]
struct Gap {
    from: u64,
    to: u64,
    before: Hash,
    after_prev: Hash,
    order: (usize, u64),
    segment: String,
    offset: u64,
    seq: u64,
    id: Option<String>,
}

/// Verification state across segments.
pub struct Chain {
    keys: Vec<VerifyingKey>,
    archive_checked: bool,
    head: Option<(u64, Hash)>,
    resync: bool,
    first_seq: Option<u64>,
    records: u64,
    events: u64,
    pub(crate) checkpoints: u64,
    last_checkpoint: Option<u64>,
    since_checkpoint: u64,
    checkpoint_records: HashSet<Hash>,
    problems: Vec<Problem>,
    pub(crate) notes: Vec<String>,
    gaps: Vec<Gap>,
    coverage: Vec<Coverage>,
    pending: Option<Pending>,
    expected: Vec<Expected>,
    resolved: Vec<(u64, u64)>,
    seg_index: usize,
    seg_display: String,
    seg_first: u64,
    seg_records: u64,
    seg_sealed: bool,
    seg_end: u64,
}

impl Chain {
    /// A fresh verification trusting `keys`; `archive_checked` says whether
    /// archived segments are part of this run.
    pub fn new(keys: Vec<VerifyingKey>, archive_checked: bool) -> Chain {
        Chain {
            keys,
            archive_checked,
            head: None,
            resync: false,
            first_seq: None,
            records: 0,
            events: 0,
            checkpoints: 0,
            last_checkpoint: None,
            since_checkpoint: 0,
            checkpoint_records: HashSet::new(),
            problems: Vec::new(),
            notes: Vec::new(),
            gaps: Vec::new(),
            coverage: Vec::new(),
            pending: None,
            expected: Vec::new(),
            resolved: Vec::new(),
            seg_index: 0,
            seg_display: String::new(),
            seg_first: 0,
            seg_records: 0,
            seg_sealed: false,
            seg_end: 0,
        }
    }

    pub(crate) fn problem(
        &mut self,
        order: (usize, u64),
        segment: String,
        offset: u64,
        seq: Option<u64>,
        id: Option<String>,
        reason: String,
    ) {
        self.problems.push(Problem {
            segment,
            offset,
            seq,
            id,
            reason,
            order,
        });
    }

    fn here(&mut self, offset: u64, seq: Option<u64>, id: Option<String>, reason: String) {
        let segment = self.seg_display.clone();
        self.problem((self.seg_index, offset), segment, offset, seq, id, reason);
    }

    pub(crate) fn begin_segment(
        &mut self,
        index: usize,
        display: &str,
        first_seq: u64,
        _archived: bool,
    ) {
        self.seg_index = index;
        self.seg_display = display.to_owned();
        self.seg_first = first_seq;
        self.seg_records = 0;
        self.seg_sealed = false;
        self.seg_end = 0;
    }

    pub(crate) fn end_segment(&mut self, readable: bool, last: bool) {
        if readable && !last && self.seg_records > 0 && !self.seg_sealed {
            let offset = self.seg_end;
            self.here(
                offset,
                self.head.map(|h| h.0),
                None,
                "the segment does not end with its sealing checkpoint: records were cut from its end".into(),
            );
        }
        if readable && !last && self.seg_records == 0 {
            self.notes.push(format!("{} is empty", self.seg_display));
        }
    }

    /// Feeds one line. `may_be_torn`: the line belongs to the last live
    /// segment, whose final line may be a write in progress.
    pub(crate) fn line(&mut self, line: &Line, may_be_torn: bool) {
        self.seg_end = line.offset + line.bytes.len() as u64 + u64::from(line.complete);
        if line.too_long {
            self.here(
                line.offset,
                None,
                None,
                "a line longer than any record".into(),
            );
            self.resync = true;
            return;
        }
        if !line.complete {
            if may_be_torn {
                self.notes.push(format!(
                    "{} ends with an incomplete record at offset {} ({} bytes): a crash or a write in progress; the writer cuts it (and records the cut) at its next start",
                    self.seg_display,
                    line.offset,
                    line.bytes.len()
                ));
            } else {
                let (seq, id) = salvage(&line.bytes);
                self.here(
                    line.offset,
                    seq,
                    id,
                    "an incomplete record inside the journal".into(),
                );
            }
            return;
        }
        let parsed = match record::parse::<NoticeHead>(&line.bytes) {
            Ok(p) => p,
            Err(e) => {
                let (seq, id) = salvage(&line.bytes);
                self.here(line.offset, seq, id, describe(&e));
                self.resync = true;
                return;
            }
        };
        let seq = parsed.envelope.seq;
        let id = parsed.envelope.event.as_ref().map(|e| e.id.clone());
        let first_in_segment = self.seg_records == 0;
        if first_in_segment && seq != self.seg_first {
            self.here(
                line.offset,
                Some(seq),
                id.clone(),
                format!(
                    "the segment file is named for record {} but starts with record {seq} (renamed, or records removed from its start)",
                    self.seg_first
                ),
            );
        }
        if self.seg_sealed {
            self.here(
                line.offset,
                Some(seq),
                id.clone(),
                "a record after the sealing checkpoint of its segment (appended to a sealed segment)".into(),
            );
        }
        self.link(line, seq, parsed.prev, id.clone(), first_in_segment);
        for expected in self.expected.iter_mut().filter(|e| e.seq == seq) {
            expected.found = Some(expected.hash == parsed.hash && expected.found != Some(false));
        }
        let pending = self.pending.take();
        let mut confirmed = false;
        self.head = Some((seq, parsed.hash));
        self.first_seq.get_or_insert(seq);
        self.records += 1;
        self.seg_records += 1;
        self.resync = false;
        match (parsed.envelope.checkpoint, parsed.envelope.event) {
            (Some(cp), _) => {
                self.seg_sealed = cp.seal;
                let covers =
                    seq.checked_sub(1) == Some(cp.head_seq) && cp.head_hash == parsed.envelope.prev;
                if !covers {
                    self.here(
                        line.offset,
                        Some(seq),
                        None,
                        format!(
                            "the checkpoint claims to cover record {} but follows record {}",
                            cp.head_seq,
                            seq.saturating_sub(1)
                        ),
                    );
                } else if let Err(reason) = signature_ok(&self.keys, &cp) {
                    self.here(line.offset, Some(seq), None, reason);
                } else {
                    self.checkpoints += 1;
                    self.last_checkpoint = Some(cp.head_seq);
                    self.since_checkpoint = 0;
                    self.checkpoint_records.insert(parsed.hash);
                    if let Some(p) = &pending
                        && p.seq == cp.head_seq
                        && record::unhex(cp.head_hash.as_bytes()) == Some(p.hash)
                    {
                        self.coverage.extend(p.coverage.iter().cloned());
                        confirmed = true;
                    }
                }
            }
            (None, Some(event)) => {
                self.events += 1;
                self.since_checkpoint += 1;
                if event.source == "journal" {
                    self.notice(line.offset, seq, parsed.hash, &event);
                }
            }
            (None, None) => {}
        }
        if let Some(p) = pending
            && !confirmed
            && !p.coverage.is_empty()
        {
            self.notes.push(format!(
                "the {} notice at record {} is not followed by a signed checkpoint over it: the deletion it records is not trusted",
                p.verb, p.seq
            ));
        }
    }

    fn link(
        &mut self,
        line: &Line,
        seq: u64,
        prev: Hash,
        id: Option<String>,
        first_in_segment: bool,
    ) {
        if self.resync {
            return;
        }
        let gap = |from: u64, before: Hash, chain: &Chain| Gap {
            from,
            to: seq.saturating_sub(1),
            before,
            after_prev: prev,
            order: (chain.seg_index, line.offset),
            segment: chain.seg_display.clone(),
            offset: line.offset,
            seq,
            id: id.clone(),
        };
        match self.head {
            None => {
                if seq > 1 {
                    let g = gap(1, GENESIS, self);
                    self.gaps.push(g);
                } else if prev != GENESIS {
                    self.here(
                        line.offset,
                        Some(seq),
                        id.clone(),
                        "the first record does not start a chain (its prev is not the genesis hash)".into(),
                    );
                }
            }
            Some((head_seq, head_hash)) => {
                if seq == head_seq.saturating_add(1) && prev == head_hash {
                    return;
                }
                if first_in_segment && seq > head_seq.saturating_add(1) {
                    let g = gap(head_seq + 1, head_hash, self);
                    self.gaps.push(g);
                } else if seq <= head_seq {
                    self.here(
                        line.offset,
                        Some(seq),
                        id.clone(),
                        format!("record {seq} appears after record {head_seq}: records were reordered or duplicated"),
                    );
                } else if seq > head_seq.saturating_add(1) {
                    self.here(
                        line.offset,
                        Some(seq),
                        id.clone(),
                        format!(
                            "record {seq} found where record {} was expected: records {}..{} are missing here (deleted or moved)",
                            head_seq + 1,
                            head_seq + 1,
                            seq - 1
                        ),
                    );
                } else {
                    self.here(
                        line.offset,
                        Some(seq),
                        id.clone(),
                        format!(
                            "the record does not chain to record {head_seq}: a record before it was altered, replaced or inserted"
                        ),
                    );
                }
            }
        }
    }

    fn notice(&mut self, offset: u64, seq: u64, hash: Hash, event: &EventNotice) {
        let reason = event.decision.reason.clone().unwrap_or_default();
        let verb = event.action.verb.as_str();
        let attributes = &event.action.attributes;
        match verb {
            "segment-dropped" => self
                .notes
                .push(format!("LOSS recorded at record {seq}: {reason}")),
            "tail-cut"
                if attributes
                    .get("tampering")
                    .and_then(serde_json::Value::as_bool)
                    == Some(true) =>
            {
                // Recorded by a writer that found the chain shorter than
                // its last signed checkpoint: the cut is reported for ever,
                // signed or not (a forged incident only makes things worse).
                self.here(
                    offset,
                    Some(seq),
                    Some(event.id.clone()),
                    format!("records were cut from the end of the journal before a writer restarted (recorded at restart): {reason}"),
                );
            }
            "tail-cut"
            | "spool-full"
            | "spool-available"
            | "signing-key-changed"
            | "unsigned-tail" => {
                self.notes.push(format!("record {seq} ({verb}): {reason}"));
            }
            _ => {}
        }
        let mut coverage = Vec::new();
        let has_own = attributes.contains_key("firstSeq");
        for (index, range) in notice_ranges(verb, attributes).into_iter().enumerate() {
            let own = index == 0 && has_own;
            let cover = match range.cause.as_str() {
                "segment-deleted" => Cover::Deleted {
                    archived: range.archived,
                },
                "segment-dropped" => Cover::Dropped,
                _ => Cover::Expired,
            };
            if own && range.cause == "segment-deleted" && !acknowledged(attributes, range.last_seq)
            {
                self.notes.push(format!(
                    "the segment-deleted notice at record {seq} does not show every exporter acknowledging records up to {}: the deletion it records is not trusted",
                    range.last_seq
                ));
                continue;
            }
            let hashes = (
                record::unhex(range.first_prev.as_bytes()),
                record::unhex(range.last_hash.as_bytes()),
            );
            if let (Some(first_prev), Some(last_hash)) = hashes {
                coverage.push(Coverage {
                    first: range.first_seq,
                    last: range.last_seq,
                    first_prev,
                    last_hash,
                    cover,
                });
            }
        }
        self.pending = Some(Pending {
            seq,
            hash,
            verb: verb.to_owned(),
            coverage,
        });
    }

    /// Whether the chain accounts for the records `from..=to` between a
    /// record hashed `before` and one whose prev is `after_prev`.
    fn resolve(&self, gap: &Gap) -> Option<Vec<Cover>> {
        let mut pos = gap.from;
        let mut hash = gap.before;
        let mut used = Vec::new();
        for _ in 0..=self.coverage.len() {
            if pos > gap.to {
                return (hash == gap.after_prev).then_some(used);
            }
            let step = self.coverage.iter().find(|c| {
                c.first == pos
                    && c.first_prev == hash
                    && c.last >= c.first
                    && !(self.archive_checked && c.cover == Cover::Deleted { archived: true })
            })?;
            used.push(step.cover);
            pos = step.last.saturating_add(1);
            hash = step.last_hash;
        }
        None
    }

    /// Registers a signed statement about the chain — `head.json` or an
    /// external anchor (a checkpoint record line, or a checkpoint as
    /// exported to a SIEM) — that the records read next must bear out.
    /// Call it before feeding lines.
    pub(crate) fn expect(&mut self, source: &str, bytes: &[u8]) {
        let order = (usize::MAX, u64::MAX);
        let statement = match anchor::parse(bytes) {
            Ok(s) => s,
            Err(reason) => {
                self.problem(order, source.to_owned(), 0, None, None, reason);
                return;
            }
        };
        if let Err(reason) = signature_ok(&self.keys, &statement.checkpoint) {
            self.problem(
                order,
                source.to_owned(),
                0,
                statement.record.map(|r| r.0),
                None,
                reason,
            );
            return;
        }
        let cp = &statement.checkpoint;
        let Some(head_hash) = record::unhex(cp.head_hash.as_bytes()) else {
            self.problem(
                order,
                source.to_owned(),
                0,
                None,
                None,
                "the checkpoint's head hash is not 64 hex digits".into(),
            );
            return;
        };
        self.expected.push(Expected {
            source: source.to_owned(),
            seq: cp.head_seq,
            hash: head_hash,
            found: None,
            what: format!(
                "the signed checkpoint in {source} covers records up to {}",
                cp.head_seq
            ),
        });
        if let Some((seq, hash)) = statement.record {
            self.expected.push(Expected {
                source: source.to_owned(),
                seq,
                hash,
                found: None,
                what: format!("{source} holds checkpoint record {seq}"),
            });
        }
    }

    fn check_expected(&mut self) {
        let head_seq = self.head.map_or(0, |h| h.0);
        let expected = std::mem::take(&mut self.expected);
        let order = (usize::MAX, u64::MAX);
        let mut reported: Vec<String> = Vec::new();
        for e in expected {
            if reported.contains(&e.source) {
                continue;
            }
            let reason = match e.found {
                Some(true) => continue,
                Some(false) => format!(
                    "record {} differs from the one {}: the chain was rewritten",
                    e.seq, e.what
                ),
                None if self
                    .resolved
                    .iter()
                    .any(|(from, to)| *from <= e.seq && e.seq <= *to) =>
                {
                    continue;
                }
                None if e.seq > head_seq => format!(
                    "the journal ends at record {head_seq}, but {}: records were cut from the end",
                    e.what
                ),
                None => format!(
                    "record {} is not in the journal, but {}: the chain was rewritten",
                    e.seq, e.what
                ),
            };
            reported.push(e.source.clone());
            self.problem(order, e.source, 0, Some(e.seq), None, reason);
        }
    }

    /// The report.
    pub(crate) fn finish(mut self, segments: usize, archived_segments: usize) -> Report {
        let gaps = std::mem::take(&mut self.gaps);
        for gap in gaps {
            match self.resolve(&gap) {
                Some(covers) => {
                    self.resolved.push((gap.from, gap.to));
                    let what = if covers.contains(&Cover::Dropped) {
                        "dropped unexported at the spool cap (recorded loss)"
                    } else if covers.contains(&Cover::Deleted { archived: true }) {
                        "deleted from the live journal after archiving (pass --archive to check the archived copies)"
                    } else if covers.contains(&Cover::Expired) {
                        "deleted from the archive after its retention period"
                    } else {
                        "deleted from the live journal after every exporter acknowledged them"
                    };
                    self.notes.push(format!("records {}..{} are not here: {what}", gap.from, gap.to));
                }
                None => self.problems.push(Problem {
                    segment: gap.segment,
                    offset: gap.offset,
                    seq: Some(gap.seq),
                    id: gap.id,
                    reason: format!(
                        "records {}..{} are missing before this record and no retention or loss record accounts for them (a segment was deleted)",
                        gap.from, gap.to
                    ),
                    order: gap.order,
                }),
            }
        }
        if let Some(p) = self.pending.take()
            && !p.coverage.is_empty()
        {
            self.notes.push(format!(
                "the {} notice at record {} is not followed by a signed checkpoint over it: the deletion it records is not trusted",
                p.verb, p.seq
            ));
        }
        self.check_expected();
        self.problems.sort_by_key(|p| p.order);
        let (head_seq, head_hash) = self.head.unwrap_or((0, GENESIS));
        Report {
            verdict: if self.problems.is_empty() {
                Verdict::Intact
            } else {
                Verdict::Tampered
            },
            records: self.records,
            events: self.events,
            checkpoints: self.checkpoints,
            segments,
            archived_segments,
            first_seq: self.first_seq,
            head_seq,
            head_hash: record::hex(&head_hash),
            last_checkpoint: self.last_checkpoint,
            uncovered: self.since_checkpoint,
            problems: self.problems,
            notes: self.notes,
            error: None,
        }
    }
}

/// Whether a `segment-deleted` notice shows the export state that allowed
/// the deletion: at least one consumer, every one of which had acknowledged
/// records up to `last_seq`.
fn acknowledged(attributes: &serde_json::Map<String, serde_json::Value>, last_seq: u64) -> bool {
    let Some(acks) = attributes
        .get("acknowledged")
        .and_then(serde_json::Value::as_object)
    else {
        return false;
    };
    !acks.is_empty()
        && acks
            .values()
            .all(|v| v.as_u64().is_some_and(|acked| acked >= last_seq))
}

/// What verification reads of an event.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct EventNotice {
    #[serde(default)]
    id: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    action: NoticeAction,
    #[serde(default)]
    decision: NoticeDecision,
}

#[derive(Debug, Default, Deserialize)]
struct NoticeAction {
    #[serde(default)]
    verb: String,
    #[serde(default)]
    attributes: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
struct NoticeDecision {
    #[serde(default)]
    reason: Option<String>,
}

type NoticeHead = EventNotice;
