//! The writer thread: group commit, checkpoints, rotation.
//!
//! One thread owns the active segment. It takes whatever has queued up
//! (waiting at most the group-commit window for more), encodes each record
//! onto the chain, appends the batch in one `write`, `fdatasync`s, and only
//! then resolves the producers' futures. A failed write or fsync is rolled
//! back — the file is truncated to the last durable byte and the chain head
//! restored — and every producer of that batch is told, so an event is
//! never acknowledged unless it is on disk, and never written twice.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, json};
use tokio::sync::{mpsc, oneshot};

use super::maintenance::Message;
use super::recover::Recovered;
use super::segment::{self, SegmentFile};
use super::{Command, Head, Shared, WriteFault};
use crate::keys::SigningKey;
use crate::record::{self, Checkpoint, Hash};
use crate::{AuditError, Error, Event, Outcome, Priority};

struct Active {
    file: File,
    path: PathBuf,
    first_seq: u64,
    len: u64,
    records: u64,
    /// When the segment's first record was written (for rotation by age).
    born: Option<Instant>,
}

pub(crate) struct Writer {
    shared: Arc<Shared>,
    key: SigningKey,
    seg_dir: PathBuf,
    active: Option<Active>,
    head_seq: u64,
    head_hash: Hash,
    since_checkpoint: u64,
    last_checkpoint: Instant,
    buf: Vec<u8>,
    last_checkpoint_line: Option<Range<usize>>,
    maintenance: std::sync::mpsc::Sender<Message>,
    fault: Option<WriteFault>,
    rotate_requested: bool,
}

type Ack = (oneshot::Sender<Result<(), AuditError>>, Instant);

impl Writer {
    pub(crate) fn new(
        shared: Arc<Shared>,
        key: SigningKey,
        recovered: Recovered,
        maintenance: std::sync::mpsc::Sender<Message>,
        fault: Option<WriteFault>,
    ) -> Result<Writer, Error> {
        let seg_dir = shared.dir.join(segment::SEGMENTS_DIR);
        let active = match recovered.active {
            Some((seg, len, records)) => {
                let file = OpenOptions::new()
                    .append(true)
                    .open(&seg.path)
                    .map_err(|e| Error::io("opening", &seg.path, e))?;
                let born = recovered
                    .active_first_time
                    .as_deref()
                    .and_then(age_of)
                    .map(|age| Instant::now().checked_sub(age).unwrap_or_else(Instant::now));
                Some(Active {
                    file,
                    path: seg.path,
                    first_seq: seg.first_seq,
                    len,
                    records,
                    born,
                })
            }
            None => None,
        };
        for sealed in recovered.sealed_plain {
            let _ = maintenance.send(Message::Sealed(sealed));
        }
        let mut writer = Writer {
            shared,
            key,
            seg_dir,
            active,
            head_seq: recovered.head_seq,
            head_hash: recovered.head_hash,
            since_checkpoint: recovered.since_checkpoint,
            last_checkpoint: Instant::now(),
            buf: Vec::with_capacity(1 << 20),
            last_checkpoint_line: None,
            maintenance,
            fault,
            rotate_requested: false,
        };
        if writer.active.is_none() {
            writer.create_segment(writer.head_seq + 1)?;
        }
        writer.publish();
        let mut notices = recovered.notices;
        if let Some(previous) = recovered.last_key_id
            && previous != writer.key.id()
        {
            let mut attributes = Map::new();
            attributes.insert("previousKeyId".into(), json!(previous));
            attributes.insert("keyId".into(), json!(writer.key.id()));
            notices.push(Event::notice(
                "signing-key-changed",
                writer.key.id(),
                Outcome::Warn,
                Priority::P1Warn,
                format!(
                    "checkpoints are now signed by key {} (previously {previous})",
                    writer.key.id()
                ),
                attributes,
            ));
        }
        if !notices.is_empty() {
            let batch = notices
                .into_iter()
                .map(|n| Command::Notice(Box::new(n), None))
                .collect();
            writer
                .commit(batch)
                .map_err(|e| Error::Stopped(format!("recording recovery notices: {e}")))?;
        }
        Ok(writer)
    }

    /// Runs until a shutdown command.
    pub(crate) fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!("audit writer cannot start its timer runtime: {e}");
                return;
            }
        };
        runtime.block_on(async move {
            let window = self.shared.config.journal.group_commit_window.0;
            let max = self.shared.config.journal.max_batch_records.max(1);
            let mut errors = ErrorLog::default();
            loop {
                let deadline = self.next_deadline();
                let first = tokio::select! {
                    cmd = rx.recv() => cmd,
                    () = tokio::time::sleep_until(deadline.into()) => {
                        self.on_timer();
                        continue;
                    }
                };
                let Some(first) = first else {
                    // Every sender is gone: stop as on shutdown.
                    let _ = self.commit(Vec::new());
                    self.final_checkpoint();
                    return;
                };
                let mut batch = Vec::with_capacity(64);
                batch.push(first);
                if !window.is_zero() {
                    let until = tokio::time::Instant::now() + window;
                    while batch.len() < max {
                        tokio::select! {
                            cmd = rx.recv() => match cmd {
                                Some(cmd) => batch.push(cmd),
                                None => break,
                            },
                            () = tokio::time::sleep_until(until) => break,
                        }
                    }
                }
                while batch.len() < max {
                    match rx.try_recv() {
                        Ok(cmd) => batch.push(cmd),
                        Err(_) => break,
                    }
                }
                match self.commit(batch) {
                    Ok(true) => return,
                    Ok(false) => {}
                    Err(e) => errors.report(&e),
                }
            }
        });
    }

    fn next_deadline(&self) -> Instant {
        let cfg = &self.shared.config;
        let mut deadline = Instant::now() + Duration::from_secs(3600);
        if self.since_checkpoint > 0 {
            deadline = deadline.min(self.last_checkpoint + cfg.checkpoint.interval.0);
        }
        if let Some(born) = self.active.as_ref().and_then(|a| a.born) {
            deadline = deadline.min(born + cfg.segment.max_age.0);
        }
        deadline
    }

    fn on_timer(&mut self) {
        let cfg = &self.shared.config;
        let age_due = self
            .active
            .as_ref()
            .and_then(|a| a.born)
            .is_some_and(|born| born.elapsed() >= cfg.segment.max_age.0);
        if age_due {
            self.rotate_requested = true;
        }
        let checkpoint_due = self.since_checkpoint > 0
            && self.last_checkpoint.elapsed() >= cfg.checkpoint.interval.0;
        if (checkpoint_due || self.rotate_requested)
            && let Err(e) = self.commit_checkpoint("interval")
        {
            tracing::error!("audit journal checkpoint failed: {e}");
        }
    }

    fn commit_checkpoint(&mut self, reason: &str) -> Result<(), String> {
        self.buf.clear();
        self.last_checkpoint_line = None;
        if self.since_checkpoint > 0 {
            let time = crate::now_rfc3339();
            self.encode_checkpoint(&time, reason, false);
        }
        let rollback = (self.head_seq, self.head_hash, self.since_checkpoint);
        self.write_buffer(rollback)?;
        self.after_write()
    }

    /// Writes one batch. Returns `Ok(true)` after a shutdown command.
    fn commit(&mut self, batch: Vec<Command>) -> Result<bool, String> {
        let time = crate::now_rfc3339();
        self.buf.clear();
        self.last_checkpoint_line = None;
        let rollback = (self.head_seq, self.head_hash, self.since_checkpoint);
        let every = self.shared.config.checkpoint.every_records;
        let mut acks: Vec<Ack> = Vec::with_capacity(batch.len());
        let mut flushes = Vec::new();
        let mut shutdown = None;
        let (mut events, mut notices) = (0u64, 0u64);
        for cmd in batch {
            match cmd {
                Command::Append(append) => {
                    if shutdown.is_some() {
                        let _ = append.done.send(Err(AuditError::Unavailable(
                            "the audit journal is shutting down".into(),
                        )));
                        continue;
                    }
                    self.encode_event(&time, &append.json);
                    acks.push((append.done, append.start));
                    events += 1;
                }
                Command::Notice(event, done) => {
                    let json = serde_json::to_vec(&event).unwrap_or_default();
                    self.encode_event(&time, &json);
                    // Every notice is signed at once, by the very next
                    // record: verification trusts no notice that is not
                    // (an attacker can append a well-chained notice, not
                    // sign it).
                    self.encode_checkpoint(&time, "notice", false);
                    notices += 1;
                    if let Some(done) = done {
                        acks.push((done, Instant::now()));
                    }
                }
                Command::Rotate => self.rotate_requested = true,
                Command::Flush(tx) => flushes.push(tx),
                Command::Shutdown(tx) => shutdown = Some(tx),
            }
            if self.since_checkpoint >= every {
                self.encode_checkpoint(&time, "records", false);
            }
        }
        let explicit = !flushes.is_empty() || shutdown.is_some();
        if explicit && self.since_checkpoint > 0 {
            let reason = if shutdown.is_some() {
                "shutdown"
            } else {
                "flush"
            };
            self.encode_checkpoint(&time, reason, false);
        }
        let shared = self.shared.clone();
        let metrics = &shared.metrics;
        match self.write_buffer(rollback) {
            Ok(()) => {
                metrics.record("event", events);
                metrics.record("notice", notices);
                metrics.batch_records.observe((events + notices) as f64);
                for (done, start) in acks {
                    metrics
                        .append_latency
                        .observe(start.elapsed().as_secs_f64());
                    let _ = done.send(Ok(()));
                }
            }
            Err(reason) => {
                let err =
                    AuditError::Unavailable(format!("the audit journal could not write: {reason}"));
                for (done, _) in acks {
                    let _ = done.send(Err(err.clone()));
                }
                for tx in flushes {
                    let _ = tx.send(Err(reason.clone()));
                }
                if let Some(tx) = shutdown {
                    let _ = tx.send(Err(reason.clone()));
                    return Ok(true);
                }
                return Err(reason);
            }
        }
        let after = self.after_write();
        for tx in flushes {
            let _ = tx.send(after.clone());
        }
        if let Some(tx) = shutdown {
            let _ = tx.send(after);
            return Ok(true);
        }
        after.map(|()| false)
    }

    /// Bookkeeping after a durable write: head.json, rotation.
    fn after_write(&mut self) -> Result<(), String> {
        if let Some(range) = self.last_checkpoint_line.take()
            && let Some(line) = self.buf.get(range)
        {
            let _ = self.maintenance.send(Message::Head(line.to_vec()));
        }
        let cfg = &self.shared.config;
        let too_big = self
            .active
            .as_ref()
            .is_some_and(|a| a.len >= cfg.segment.max_bytes.0);
        let has_records = self.active.as_ref().is_some_and(|a| a.records > 0);
        if (too_big || self.rotate_requested) && has_records {
            self.seal()?;
        }
        self.rotate_requested = false;
        if self.active.is_none() {
            self.create_segment(self.head_seq + 1)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn final_checkpoint(&mut self) {
        if let Err(e) = self.commit_checkpoint("shutdown") {
            tracing::error!("final audit checkpoint failed: {e}");
        }
    }

    fn encode_event(&mut self, time: &str, json: &[u8]) {
        let prev = self.head_hash;
        self.head_seq += 1;
        self.head_hash = record::encode_event(&mut self.buf, self.head_seq, time, &prev, json);
        self.since_checkpoint += 1;
    }

    fn encode_checkpoint(&mut self, time: &str, reason: &str, seal: bool) {
        let head_hash = record::hex(&self.head_hash);
        let message =
            record::checkpoint_message(self.head_seq, &head_hash, time, seal, self.key.id());
        let checkpoint = Checkpoint {
            head_seq: self.head_seq,
            head_hash,
            time: time.to_owned(),
            seal,
            reason: reason.to_owned(),
            key_id: self.key.id().to_owned(),
            signature: STANDARD.encode(self.key.sign(&message)),
        };
        let prev = self.head_hash;
        self.head_seq += 1;
        let start = self.buf.len();
        self.head_hash =
            record::encode_checkpoint(&mut self.buf, self.head_seq, time, &prev, &checkpoint);
        let end = self.buf.len().saturating_sub(1);
        self.last_checkpoint_line = Some(start..end);
        self.since_checkpoint = 0;
        self.last_checkpoint = Instant::now();
        self.shared.metrics.checkpoints.inc();
    }

    /// Appends `buf` and fsyncs; on failure truncates back and restores the
    /// chain head to `rollback`.
    fn write_buffer(&mut self, rollback: (u64, Hash, u64)) -> Result<(), String> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if self.active.is_none()
            && let Err(e) = self.create_segment(rollback.0 + 1)
        {
            self.restore(rollback);
            return Err(format!("no active segment: {e}"));
        }
        let Some(active) = self.active.as_mut() else {
            self.restore(rollback);
            return Err("no active segment".into());
        };
        let attempt = (|| -> std::io::Result<Duration> {
            if let Some(fault) = &self.fault {
                fault(self.buf.len())?;
            }
            active.file.write_all(&self.buf)?;
            let t = Instant::now();
            active.file.sync_data()?;
            Ok(t.elapsed())
        })();
        match attempt {
            Ok(fsync) => {
                let records = self.head_seq.saturating_sub(rollback.0);
                active.len += self.buf.len() as u64;
                active.records += records;
                if active.born.is_none() {
                    active.born = Some(Instant::now());
                }
                self.shared
                    .metrics
                    .fsync_duration
                    .observe(fsync.as_secs_f64());
                self.publish();
                Ok(())
            }
            Err(e) => {
                self.shared.metrics.write_errors.inc();
                let restored = active
                    .file
                    .set_len(active.len)
                    .and_then(|()| active.file.sync_data());
                let path = active.path.display().to_string();
                self.restore(rollback);
                match restored {
                    Ok(()) => Err(format!("{path}: {e}")),
                    Err(e2) => {
                        // The file may hold a partial batch we cannot remove:
                        // never append after it. Seal nothing, start afresh.
                        tracing::error!(
                            "cannot truncate {path} after a failed write ({e2}); a new segment will be started"
                        );
                        self.active = None;
                        Err(format!(
                            "{path}: {e}; truncating after it also failed: {e2}"
                        ))
                    }
                }
            }
        }
    }

    fn restore(&mut self, (seq, hash, since): (u64, Hash, u64)) {
        self.head_seq = seq;
        self.head_hash = hash;
        self.since_checkpoint = since;
        self.last_checkpoint_line = None;
    }

    /// Writes the sealing checkpoint and hands the segment to maintenance.
    fn seal(&mut self) -> Result<(), String> {
        let time = crate::now_rfc3339();
        self.buf.clear();
        self.last_checkpoint_line = None;
        let rollback = (self.head_seq, self.head_hash, self.since_checkpoint);
        self.encode_checkpoint(&time, "rotation", true);
        self.write_buffer(rollback)?;
        if let Some(range) = self.last_checkpoint_line.take()
            && let Some(line) = self.buf.get(range)
        {
            let _ = self.maintenance.send(Message::Head(line.to_vec()));
        }
        if let Some(active) = self.active.take() {
            self.shared.metrics.segments_sealed.inc();
            let _ = self.maintenance.send(Message::Sealed(SegmentFile {
                first_seq: active.first_seq,
                path: active.path,
                compressed: false,
            }));
        }
        self.create_segment(self.head_seq + 1)
            .map_err(|e| e.to_string())
    }

    fn create_segment(&mut self, first_seq: u64) -> Result<(), Error> {
        let path = self.seg_dir.join(segment::file_name(first_seq, false));
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::io("creating", &path, e))?;
        segment::sync_dir(&self.seg_dir).map_err(|e| Error::io("syncing", &self.seg_dir, e))?;
        self.active = Some(Active {
            file,
            path,
            first_seq,
            len: 0,
            records: 0,
            born: None,
        });
        self.publish();
        Ok(())
    }

    fn publish(&self) {
        let (segment, offset) = self
            .active
            .as_ref()
            .map_or((self.head_seq + 1, 0), |a| (a.first_seq, a.len));
        self.shared.durable.send_replace(Head {
            seq: self.head_seq,
            segment,
            offset,
        });
    }
}

/// Logs write failures without flooding: the first at once, then at
/// most one line per second with the number of failures in between.
#[derive(Default)]
struct ErrorLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl ErrorLog {
    fn report(&mut self, error: &str) {
        if self
            .last
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            self.suppressed += 1;
            return;
        }
        tracing::error!(
            failed_batches_since_last_report = self.suppressed,
            "audit journal write failed; producers of the batch were refused: {error}"
        );
        self.last = Some(Instant::now());
        self.suppressed = 0;
    }
}

/// How long ago an RFC 3339 time was.
fn age_of(time: &str) -> Option<Duration> {
    let t =
        time::OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339).ok()?;
    let age = time::OffsetDateTime::now_utc() - t;
    age.try_into().ok()
}
