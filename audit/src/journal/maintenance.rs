//! The maintenance thread: compresses sealed segments, mirrors the latest
//! checkpoint into `head.json`, keeps the spool under its cap (refusing
//! events or dropping the oldest unexported segment, as configured) and
//! deletes sealed segments every consumer acknowledged once they are old
//! enough. Every deletion is recorded in the chain, so `verify` can tell a
//! retention deletion from a segment an attacker removed.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value, json};

use super::segment::{self, SegmentFile};
use super::{Command, HEAD_FILE, Shared};
use crate::config::Overflow;
use crate::{Event, Outcome, Priority};

/// How often the spool and retention are re-evaluated: the spool cap is
/// enforced within this delay.
const EVALUATE_EVERY: Duration = Duration::from_millis(100);

pub(crate) enum Message {
    /// A segment was sealed: compress it.
    Sealed(SegmentFile),
    /// A checkpoint record was made durable: mirror it into `head.json`.
    Head(Vec<u8>),
    /// Something changed (a write, a cursor): re-evaluate the spool.
    Wake,
    /// Stop after finishing pending work.
    Stop,
}

pub(crate) struct Maintenance {
    shared: Arc<Shared>,
    seg_dir: PathBuf,
    to_compress: Vec<SegmentFile>,
    head: Option<Vec<u8>>,
}

/// A sealed segment as maintenance sees it.
struct Sealed {
    file: SegmentFile,
    last_seq: u64,
    bytes: u64,
    age: Duration,
}

impl Maintenance {
    pub(crate) fn new(shared: Arc<Shared>) -> Maintenance {
        let seg_dir = shared.dir.join(segment::SEGMENTS_DIR);
        Maintenance {
            shared,
            seg_dir,
            to_compress: Vec::new(),
            head: None,
        }
    }

    pub(crate) fn run(mut self, rx: Receiver<Message>) {
        let mut stop = false;
        let mut last_evaluation: Option<std::time::Instant> = None;
        while !stop {
            match rx.recv_timeout(EVALUATE_EVERY) {
                Ok(msg) => stop |= self.take(msg),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => stop = true,
            }
            while let Ok(msg) = rx.try_recv() {
                stop |= self.take(msg);
            }
            self.write_head();
            self.compress_pending();
            // The spool is re-evaluated at most every EVALUATE_EVERY (it
            // lists the segment directory); never once stopping, so nothing
            // is deleted that the writer could no longer record.
            if !stop && last_evaluation.is_none_or(|t| t.elapsed() >= EVALUATE_EVERY) {
                self.evaluate();
                last_evaluation = Some(std::time::Instant::now());
            }
        }
    }

    fn take(&mut self, msg: Message) -> bool {
        match msg {
            Message::Sealed(seg) => self.to_compress.push(seg),
            Message::Head(line) => self.head = Some(line),
            Message::Wake => {}
            Message::Stop => return true,
        }
        false
    }

    fn write_head(&mut self) {
        let Some(line) = self.head.take() else {
            return;
        };
        let mut targets = vec![self.shared.dir.join(HEAD_FILE)];
        if let Some(anchor) = &self.shared.config.anchor {
            targets.push(anchor.file.clone());
        }
        let mut failed = false;
        for path in targets {
            if let Err(e) = write_atomic(&path, &line) {
                tracing::error!(path = %path.display(), "cannot update the head checkpoint: {e}");
                failed = true;
            }
        }
        if failed {
            // Retry with the next checkpoint (or this one if none comes).
            self.head.get_or_insert(line);
        }
    }

    fn compress_pending(&mut self) {
        let pending = std::mem::take(&mut self.to_compress);
        for seg in pending {
            match segment::compress(&seg, self.shared.config.segment.compression_level) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(segment = %seg.path.display(), "compressing a sealed segment failed, will retry: {e}");
                    let _ = std::fs::remove_file(seg.path.with_file_name(format!(
                        "{}.tmp",
                        segment::file_name(seg.first_seq, true)
                    )));
                    self.to_compress.push(seg);
                }
            }
        }
    }

    fn sealed_segments(&self, active_first: u64) -> Vec<Sealed> {
        let Ok(files) = segment::list(&self.seg_dir) else {
            return Vec::new();
        };
        let mut files: Vec<SegmentFile> = files
            .into_iter()
            .filter(|s| s.first_seq < active_first)
            .collect();
        files.dedup_by_key(|s| s.first_seq);
        let now = SystemTime::now();
        let mut out = Vec::with_capacity(files.len());
        for (i, file) in files.iter().enumerate() {
            let next_first = files.get(i + 1).map_or(active_first, |n| n.first_seq);
            let Ok(meta) = std::fs::metadata(&file.path) else {
                continue;
            };
            let age = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .unwrap_or_default();
            out.push(Sealed {
                file: file.clone(),
                last_seq: next_first.saturating_sub(1),
                bytes: meta.len(),
                age,
            });
        }
        out
    }

    fn evaluate(&mut self) {
        let head = *self.shared.durable.borrow();
        let sealed = self.sealed_segments(head.segment);
        let min_ack = self.shared.cursors.min();
        let acked_upto = min_ack.unwrap_or(0);
        let mut spool: u64 = head.offset
            + sealed
                .iter()
                .filter(|s| s.last_seq > acked_upto)
                .map(|s| s.bytes)
                .sum::<u64>();
        let metrics = &self.shared.metrics;
        metrics
            .spool_bytes
            .set(i64::try_from(spool).unwrap_or(i64::MAX));
        for name in self.shared.cursors.names() {
            let lag = head.seq.saturating_sub(self.shared.cursors.get(name));
            metrics
                .export_lag
                .get_or_create(&crate::metrics::Metrics::exporter(name))
                .set(i64::try_from(lag).unwrap_or(i64::MAX));
        }
        let cap = self.shared.config.spool.max_bytes.0;
        let overflow = self.shared.config.spool.overflow;
        if spool >= cap {
            match overflow {
                Overflow::FailClosed => {
                    if !self.shared.spool_full.swap(true, Ordering::AcqRel) {
                        metrics.spool_full.set(1);
                        tracing::error!(
                            spool,
                            cap,
                            "audit spool full: refusing new events until exporters catch up"
                        );
                        self.notice(spool_notice(true, spool, cap, 0, &self.behind(acked_upto)));
                    }
                }
                Overflow::DropOldestUnexported => {
                    let mut dropped_any = false;
                    for s in sealed.iter().filter(|s| s.last_seq > acked_upto) {
                        if spool < cap {
                            break;
                        }
                        if self.delete(s, "segment-dropped", acked_upto) {
                            spool = spool.saturating_sub(s.bytes);
                            dropped_any = true;
                        }
                    }
                    if spool >= cap && !dropped_any {
                        // Only the active segment is left to drop: seal it.
                        let _ = self.shared.tx.blocking_send(Command::Rotate);
                    }
                }
            }
        } else if self.shared.spool_full.load(Ordering::Acquire) && spool < cap / 10 * 9 {
            self.shared.spool_full.store(false, Ordering::Release);
            metrics.spool_full.set(0);
            let refused = self.shared.refused.swap(0, Ordering::AcqRel);
            tracing::warn!(refused, "audit spool has room again: accepting events");
            self.notice(spool_notice(false, spool, cap, refused, &[]));
        }
        // Retention: acknowledged by everyone and old enough.
        if let Some(min) = min_ack {
            let minimum = self.shared.config.retention.minimum_age.0;
            for s in sealed
                .iter()
                .filter(|s| s.last_seq <= min && s.age >= minimum)
            {
                self.delete(s, "segment-deleted", min);
            }
        }
    }

    /// Consumers behind `seq`.
    fn behind(&self, upto: u64) -> Vec<(String, u64)> {
        let cursors = &self.shared.cursors;
        cursors
            .names()
            .map(|n| (n.to_owned(), cursors.get(n)))
            .filter(|(_, acked)| *acked <= upto)
            .collect()
    }

    /// Deletes a sealed segment and records it. Returns whether it did.
    fn delete(&self, s: &Sealed, verb: &str, acked_upto: u64) -> bool {
        let summary = match segment::summarize(&s.file) {
            Ok(Some(summary)) => summary,
            Ok(None) => return false,
            Err(e) => {
                tracing::error!(segment = %s.file.path.display(), "cannot read a segment before deleting it: {e}");
                return false;
            }
        };
        let name = s
            .file
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut attributes = Map::new();
        attributes.insert("segment".into(), json!(name));
        attributes.insert("firstSeq".into(), json!(summary.first_seq));
        attributes.insert("lastSeq".into(), json!(summary.last_seq));
        attributes.insert("firstPrev".into(), json!(summary.first_prev));
        attributes.insert("lastHash".into(), json!(summary.last_hash));
        attributes.insert("events".into(), json!(summary.events));
        attributes.insert("notices".into(), json!(summary.notices));
        attributes.insert("firstId".into(), json!(summary.first_id));
        attributes.insert("lastId".into(), json!(summary.last_id));
        attributes.insert("lastTime".into(), json!(summary.last_time));
        attributes.insert("bytes".into(), json!(s.bytes));
        if verb == "segment-deleted" {
            attributes.insert(
                "archived".into(),
                json!(self.shared.config.archive.is_some()),
            );
            // The export state that allows the deletion, signed with it.
            let cursors = &self.shared.cursors;
            let acknowledged: Map<String, Value> = cursors
                .names()
                .map(|n| (n.to_owned(), json!(cursors.get(n))))
                .collect();
            attributes.insert("acknowledged".into(), Value::Object(acknowledged));
            attributes.insert(
                "minimumAge".into(),
                json!(self.shared.config.retention.minimum_age.to_string()),
            );
        }
        let carried = segment::merge_ranges(summary.covers.clone());
        if !carried.is_empty() {
            attributes.insert("carried".into(), json!(carried));
        }
        let metrics = &self.shared.metrics;
        let event = if verb == "segment-dropped" {
            let behind: Map<String, Value> = self
                .behind(acked_upto.max(summary.first_seq.saturating_sub(1)))
                .into_iter()
                .filter(|(_, acked)| *acked < summary.last_seq)
                .map(|(n, a)| (n, json!(a)))
                .collect();
            attributes.insert("unexportedTo".into(), Value::Object(behind.clone()));
            metrics.dropped_records.inc_by(summary.events);
            tracing::error!(
                segment = %name,
                events = summary.events,
                first_seq = summary.first_seq,
                last_seq = summary.last_seq,
                "audit spool full: dropped the oldest unexported segment"
            );
            Event::notice(
                verb,
                &name,
                Outcome::Warn,
                Priority::P0Escalate,
                format!(
                    "spool cap reached: {} events (records {}..{}, ids {} .. {}) were deleted before every exporter received them ({})",
                    summary.events,
                    summary.first_seq,
                    summary.last_seq,
                    summary.first_id.as_deref().unwrap_or("-"),
                    summary.last_id.as_deref().unwrap_or("-"),
                    behind.keys().cloned().collect::<Vec<_>>().join(", "),
                ),
                attributes,
            )
        } else {
            metrics.segments_deleted.inc();
            tracing::info!(segment = %name, "sealed segment exported everywhere and past the retention minimum: deleted");
            Event::notice(
                verb,
                &name,
                Outcome::Allow,
                Priority::Observe,
                format!(
                    "records {}..{} acknowledged by every exporter and older than the retention minimum: removed from the live journal",
                    summary.first_seq, summary.last_seq
                ),
                attributes,
            )
        };
        // Record the deletion durably first: if that fails nothing is
        // deleted, so no gap is ever left unexplained. (A deletion that then
        // fails leaves a recorded deletion of a segment still present:
        // harmless, verification reads the segment.)
        if let Err(e) = super::notice_blocking(&self.shared, event) {
            tracing::error!(segment = %name, "not deleting: the deletion could not be recorded: {e}");
            return false;
        }
        if let Err(e) =
            std::fs::remove_file(&s.file.path).and_then(|()| segment::sync_dir(&self.seg_dir))
        {
            tracing::error!(segment = %s.file.path.display(), "cannot delete a segment (its deletion is already recorded): {e}");
            return false;
        }
        true
    }

    fn notice(&self, event: Event) {
        if let Err(e) = super::notice_blocking(&self.shared, event) {
            tracing::error!("a maintenance notice could not be written: {e}");
        }
    }
}

/// Replaces `path` by `line` and a newline: written to a temporary file
/// beside it, fsync'd, renamed over it, the directory fsync'd.
fn write_atomic(path: &std::path::Path, line: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(line)?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    segment::sync_dir(&dir)
}

fn spool_notice(full: bool, spool: u64, cap: u64, refused: u64, behind: &[(String, u64)]) -> Event {
    let mut attributes = Map::new();
    attributes.insert("spoolBytes".into(), json!(spool));
    attributes.insert("capBytes".into(), json!(cap));
    if full {
        let behind: Map<String, Value> =
            behind.iter().map(|(n, a)| (n.clone(), json!(a))).collect();
        attributes.insert("behind".into(), Value::Object(behind));
        Event::notice(
            "spool-full",
            "spool",
            Outcome::Deny,
            Priority::P0Escalate,
            format!(
                "audit spool at its cap ({spool} of {cap} bytes): new events are refused (fail-closed) until exporters catch up"
            ),
            attributes,
        )
    } else {
        attributes.insert("refused".into(), json!(refused));
        Event::notice(
            "spool-available",
            "spool",
            Outcome::Allow,
            Priority::P1Warn,
            format!(
                "audit spool below its cap again ({spool} of {cap} bytes): accepting events; {refused} were refused meanwhile"
            ),
            attributes,
        )
    }
}
