//! The journal: append-only, hash-chained, signed, group-committed.
//!
//! Producers call [`Recorder::record`]; the event is redacted and
//! serialized on the producer's task, queued to one writer thread, which
//! appends whatever has queued up in one `write`, `fdatasync`s it, and only
//! then resolves every producer's future — a record counts as written only
//! once it is on disk. A maintenance thread compresses sealed segments,
//! applies retention, keeps the spool under its cap and mirrors the latest
//! checkpoint into `head.json`.
//!
//! Directory layout:
//!
//! ```text
//! DIR/LOCK                 held by the one writer process
//! DIR/segments/            seg-<first seq>.jsonl (active), .jsonl.gz (sealed)
//! DIR/head.json            the latest signed checkpoint (truncation check)
//! DIR/keys/<key id>.pub    every public key that signed a checkpoint here
//! DIR/cursors/<name>.json  each exporter's acknowledged position
//! DIR/deadletter/<name>.jsonl  records a receiver refused permanently
//! DIR/quarantine/          bytes cut from a torn tail, kept as evidence
//! ```

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot, watch};

use crate::config::{AuditConfig, Overflow};
use crate::cursor::Cursors;
use crate::keys::SigningKey;
use crate::metrics::Metrics;
use crate::redact::Redactor;
use crate::{AuditError, Error, Event, RecordFuture, Recorder};

mod maintenance;
mod recover;
pub mod segment;
mod writer;

/// Name of the file mirroring the latest checkpoint.
pub const HEAD_FILE: &str = "head.json";
/// Sub-directory of public keys.
pub const KEYS_DIR: &str = "keys";
/// The journal's manifest: schema and archive location, for `verify`.
pub const MANIFEST_FILE: &str = "journal.json";

/// A hook called before each journal write with its size; an error fails
/// the write as the disk would. For fault tests only.
#[doc(hidden)]
pub type WriteFault = Arc<dyn Fn(usize) -> std::io::Result<()> + Send + Sync>;

/// How to open a journal.
pub struct JournalOptions {
    /// The journal directory (`--audit-dir`).
    pub dir: PathBuf,
    /// The `audit:` configuration.
    pub config: AuditConfig,
    /// The checkpoint signing key.
    pub key: SigningKey,
    /// Fault injection for tests.
    #[doc(hidden)]
    pub fault: Option<WriteFault>,
}

/// The durable end of the chain: records up to `seq` are on disk; the
/// active segment (named by its first sequence number `segment`) holds
/// `offset` durable bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Head {
    /// Sequence number of the last durable record (0: none yet).
    pub seq: u64,
    /// First sequence number of the active segment.
    pub segment: u64,
    /// Durable bytes in the active segment.
    pub offset: u64,
}

pub(crate) struct Append {
    pub json: Vec<u8>,
    pub start: Instant,
    pub done: oneshot::Sender<Result<(), AuditError>>,
}

pub(crate) enum Command {
    Append(Append),
    /// A journal notice (not subject to the spool cap), acknowledged once
    /// durable when a sender is given.
    Notice(Box<Event>, Option<oneshot::Sender<Result<(), AuditError>>>),
    Rotate,
    Flush(oneshot::Sender<Result<(), String>>),
    Shutdown(oneshot::Sender<Result<(), String>>),
}

pub(crate) struct Shared {
    pub dir: PathBuf,
    pub config: AuditConfig,
    pub redactor: Redactor,
    pub metrics: Metrics,
    pub cursors: Arc<Cursors>,
    pub tx: mpsc::Sender<Command>,
    pub durable: watch::Sender<Head>,
    pub spool_full: AtomicBool,
    pub refused: AtomicU64,
    pub stopped: AtomicBool,
    pub maintenance: Mutex<Option<std::sync::mpsc::Sender<maintenance::Message>>>,
    writer_thread: Mutex<Option<JoinHandle<()>>>,
    maintenance_thread: Mutex<Option<JoinHandle<()>>>,
    lock: Mutex<Option<File>>,
}

/// An open journal. Cheap to clone; every clone records into the same
/// chain.
#[derive(Clone)]
pub struct Journal {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("dir", &self.shared.dir)
            .field("head", &*self.shared.durable.borrow())
            .finish()
    }
}

fn create_dir(path: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(path).map_err(|e| Error::io("creating", path, e))
}

impl Journal {
    /// Opens (creating or recovering) the journal and starts its writer and
    /// maintenance threads. Blocking: call it from a blocking context.
    pub fn open(
        options: JournalOptions,
        cursors: Arc<Cursors>,
        metrics: Metrics,
    ) -> Result<Journal, Error> {
        let JournalOptions {
            dir,
            config,
            key,
            fault,
        } = options;
        config.validate()?;
        create_dir(&dir)?;
        let lock_path = dir.join("LOCK");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io("creating", &lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(Error::Locked { path: dir }),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::io("locking", &lock_path, e));
            }
        }
        for sub in [segment::SEGMENTS_DIR, KEYS_DIR, "quarantine", "deadletter"] {
            create_dir(&dir.join(sub))?;
        }
        let key_file = dir.join(KEYS_DIR).join(format!("{}.pub", key.id()));
        if !key_file.exists() {
            tollgate_certs::pem::write_atomic(&key_file, key.public_pem().as_bytes(), false)
                .map_err(|e| Error::Key {
                    path: key_file.clone(),
                    reason: e.to_string(),
                })?;
        }
        let manifest = serde_json::json!({
            "schema": crate::SCHEMA,
            "archive": config.archive.as_ref().map(|a| a.dir.display().to_string()),
        });
        tollgate_certs::pem::write_atomic(
            &dir.join(MANIFEST_FILE),
            manifest.to_string().as_bytes(),
            false,
        )
        .map_err(|e| Error::Stopped(format!("writing {MANIFEST_FILE}: {e}")))?;
        let extra: Vec<(String, String)> = config
            .redaction
            .patterns
            .iter()
            .map(|p| (p.kind.clone(), p.regex.clone()))
            .collect();
        let redactor = Redactor::new(&extra)?;
        let recovered = recover::recover(&dir, config.anchor.as_ref().map(|a| a.file.as_path()))?;
        metrics.tail_cuts.inc_by(recovered.tail_cuts);
        metrics
            .spool_limit_bytes
            .set(i64::try_from(config.spool.max_bytes.0).unwrap_or(i64::MAX));
        let (tx, rx) = mpsc::channel(config.journal.queue_capacity);
        let (durable, _) = watch::channel(Head::default());
        let (mtx, mrx) = std::sync::mpsc::channel();
        let shared = Arc::new(Shared {
            dir: dir.clone(),
            config,
            redactor,
            metrics,
            cursors,
            tx,
            durable,
            spool_full: AtomicBool::new(false),
            refused: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
            maintenance: Mutex::new(Some(mtx.clone())),
            writer_thread: Mutex::new(None),
            maintenance_thread: Mutex::new(None),
            lock: Mutex::new(Some(lock)),
        });
        let writer = writer::Writer::new(shared.clone(), key, recovered, mtx, fault)?;
        let writer_thread = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| Error::io("starting the writer for", &dir, e))?;
        let maint = maintenance::Maintenance::new(shared.clone());
        let maint_thread = std::thread::Builder::new()
            .name("audit-maintenance".into())
            .spawn(move || maint.run(mrx))
            .map_err(|e| Error::io("starting maintenance for", &dir, e))?;
        if let Ok(mut slot) = shared.writer_thread.lock() {
            *slot = Some(writer_thread);
        }
        if let Ok(mut slot) = shared.maintenance_thread.lock() {
            *slot = Some(maint_thread);
        }
        Ok(Journal { shared })
    }

    /// The journal directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The durable head now.
    pub fn head(&self) -> Head {
        *self.shared.durable.borrow()
    }

    /// Follows the durable head.
    pub fn subscribe(&self) -> watch::Receiver<Head> {
        self.shared.durable.subscribe()
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// The export cursors.
    pub fn cursors(&self) -> &Arc<Cursors> {
        &self.shared.cursors
    }

    /// The configuration in force.
    pub fn config(&self) -> &AuditConfig {
        &self.shared.config
    }

    /// Whether the spool is full and events are being refused.
    pub fn spool_full(&self) -> bool {
        self.shared.spool_full.load(Ordering::Acquire)
    }

    /// Writes a signed checkpoint over the head (if records were written
    /// since the last one) and fsyncs.
    pub async fn flush(&self) -> Result<(), AuditError> {
        let (tx, rx) = oneshot::channel();
        self.shared
            .tx
            .send(Command::Flush(tx))
            .await
            .map_err(|_| stopped())?;
        rx.await
            .map_err(|_| stopped())?
            .map_err(AuditError::Unavailable)
    }

    /// Seals the active segment now (it is compressed in the background).
    pub async fn rotate(&self) -> Result<(), AuditError> {
        self.shared
            .tx
            .send(Command::Rotate)
            .await
            .map_err(|_| stopped())?;
        self.flush().await
    }

    /// Appends a journal notice (not subject to the spool cap) and waits
    /// until it is durable. For blocking threads only.
    pub(crate) fn notice_blocking(&self, event: Event) -> Result<(), AuditError> {
        notice_blocking(&self.shared, event)
    }

    /// Wakes the maintenance thread (a cursor moved, a segment was archived).
    pub(crate) fn wake_maintenance(&self) {
        if let Ok(guard) = self.shared.maintenance.lock()
            && let Some(tx) = guard.as_ref()
        {
            let _ = tx.send(maintenance::Message::Wake);
        }
    }

    /// Stops accepting events, writes a final checkpoint, fsyncs, and stops
    /// the writer and maintenance threads. Idempotent.
    pub async fn shutdown(&self) -> Result<(), Error> {
        if self.shared.stopped.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        // The writer first: a final checkpoint and fsync. Maintenance then
        // mirrors that checkpoint into head.json and stops; it never
        // deletes anything after the writer is gone, because a deletion is
        // recorded durably before it happens and that now fails.
        let (tx, rx) = oneshot::channel();
        let result = match self.shared.tx.send(Command::Shutdown(tx)).await {
            Ok(()) => match rx.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(reason)) => Err(Error::Stopped(reason)),
                Err(_) => Err(Error::Stopped("the writer exited".into())),
            },
            Err(_) => Err(Error::Stopped("the writer exited".into())),
        };
        let writer = self
            .shared
            .writer_thread
            .lock()
            .ok()
            .and_then(|mut t| t.take());
        if let Some(thread) = writer {
            tokio::task::spawn_blocking(move || thread.join())
                .await
                .map_err(|e| Error::Stopped(e.to_string()))?
                .map_err(|_| Error::Stopped("the writer thread panicked".into()))?;
        }
        if let Ok(mut guard) = self.shared.maintenance.lock()
            && let Some(tx) = guard.take()
        {
            let _ = tx.send(maintenance::Message::Stop);
        }
        let maintenance = self
            .shared
            .maintenance_thread
            .lock()
            .ok()
            .and_then(|mut t| t.take());
        if let Some(thread) = maintenance {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        // Release the directory for the next writer.
        if let Ok(mut lock) = self.shared.lock.lock() {
            lock.take();
        }
        result
    }

    fn prepare(&self, mut event: Event) -> Vec<u8> {
        self.shared.redactor.redact_event(&mut event);
        let limit =
            usize::try_from(self.shared.config.journal.max_record_bytes.0).unwrap_or(usize::MAX);
        let json = serde_json::to_vec(&event).unwrap_or_default();
        if json.len() <= limit {
            return json;
        }
        shrink(&mut event, json.len());
        serde_json::to_vec(&event).unwrap_or_default()
    }
}

/// See [`Journal::notice_blocking`].
pub(crate) fn notice_blocking(shared: &Shared, event: Event) -> Result<(), AuditError> {
    let (tx, rx) = oneshot::channel();
    shared
        .tx
        .blocking_send(Command::Notice(Box::new(event), Some(tx)))
        .map_err(|_| stopped())?;
    rx.blocking_recv().map_err(|_| stopped())?
}

fn stopped() -> AuditError {
    AuditError::Unavailable("the audit journal is shut down".into())
}

/// Makes an oversize event fit: its attributes are replaced by their size
/// and every long string is truncated; recorded as the `oversize`
/// redaction, so the decision itself is never lost.
fn shrink(event: &mut Event, original: usize) {
    const KEEP: usize = 1024;
    let cut = |s: &mut String| {
        if s.len() > KEEP {
            let mut end = KEEP;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s.truncate(end);
            s.push_str("…[truncated]");
        }
    };
    let mut replaced = serde_json::Map::new();
    replaced.insert("oversizeBytes".into(), serde_json::json!(original));
    event.action.attributes = replaced;
    cut(&mut event.action.target);
    cut(&mut event.action.verb);
    cut(&mut event.action.protocol);
    for s in [
        &mut event.actor.user,
        &mut event.actor.service_account,
        &mut event.actor.pod,
        &mut event.actor.namespace,
        &mut event.actor.agent,
        &mut event.ownership.owner,
        &mut event.ownership.tier,
        &mut event.ownership.oncall,
        &mut event.decision.rule,
        &mut event.decision.reason,
    ]
    .into_iter()
    .flatten()
    {
        cut(s);
    }
    event.actor.groups.truncate(32);
    event.actor.groups.iter_mut().for_each(cut);
    event.decision.controls.truncate(64);
    event.decision.controls.iter_mut().for_each(cut);
    if !event.redactions.iter().any(|r| r == "oversize") {
        event.redactions.push("oversize".into());
        event.redactions.sort();
    }
}

impl Recorder for Journal {
    fn record(&self, event: Event) -> RecordFuture {
        let shared = &self.shared;
        if shared.stopped.load(Ordering::Acquire) {
            return Box::pin(async { Err(stopped()) });
        }
        if shared.config.spool.overflow == Overflow::FailClosed
            && shared.spool_full.load(Ordering::Acquire)
        {
            shared.refused.fetch_add(1, Ordering::AcqRel);
            shared.metrics.spool_refused.inc();
            let cap = shared.config.spool.max_bytes;
            return Box::pin(async move {
                Err(AuditError::SpoolFull(format!(
                    "the audit spool reached its cap of {cap} because exporters are behind; actions are denied until they catch up"
                )))
            });
        }
        let start = Instant::now();
        let json = self.prepare(event);
        let (done, rx) = oneshot::channel();
        let tx = shared.tx.clone();
        Box::pin(async move {
            tx.send(Command::Append(Append { json, start, done }))
                .await
                .map_err(|_| stopped())?;
            rx.await.map_err(|_| stopped())?
        })
    }
}
