//! A [`Recorder`] writing events as JSON lines (to a file or standard
//! output), for when no journal is configured: container log collectors and
//! Fluent Bit/Vector pick them up.
//!
//! Events go through a bounded queue to a writer thread, so recording never
//! blocks a request. When the queue is full the recorder refuses with
//! [`AuditError::SpoolFull`] and the sidecar denies (fail-closed); when a
//! write fails it refuses with [`AuditError::Unavailable`] from then on.
//! Events are accepted, not durable: the journal is the durable recorder.
//! Every event is redacted first, by the same [`Redactor`] the journal uses,
//! so secrets never reach the log in clear.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tollgate_audit::redact::Redactor;
use tollgate_audit::{AuditError, Event, RecordFuture, Recorder};

use crate::SidecarError;

/// The default queue bound, in events.
pub const DEFAULT_QUEUE: usize = 65_536;

/// Writes events as JSON lines.
#[derive(Debug)]
pub struct JsonLinesRecorder {
    redactor: Arc<Redactor>,
    tx: SyncSender<Msg>,
    failed: Arc<AtomicBool>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl JsonLinesRecorder {
    /// Appends to `path` (created if missing), or writes to standard output
    /// when `path` is `-`; every event is redacted by `redactor` first.
    pub fn open(
        path: &Path,
        queue: usize,
        redactor: Arc<Redactor>,
    ) -> Result<JsonLinesRecorder, SidecarError> {
        let out: Box<dyn Write + Send> = if path == Path::new("-") {
            Box::new(std::io::stdout())
        } else {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| SidecarError::Io {
                    path: path.to_owned(),
                    source,
                })?;
            Box::new(file)
        };
        Ok(Self::with_writer(out, queue, redactor))
    }

    /// Writes to `out`, redacting every event with `redactor` first.
    pub fn with_writer(
        out: Box<dyn Write + Send>,
        queue: usize,
        redactor: Arc<Redactor>,
    ) -> JsonLinesRecorder {
        let (tx, rx) = sync_channel(queue.max(1));
        let failed = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&failed);
        let writer = std::thread::Builder::new()
            .name("tollgate-audit-log".into())
            .spawn(move || write_loop(rx, out, &flag))
            .ok();
        if writer.is_none() {
            failed.store(true, Ordering::Relaxed);
        }
        JsonLinesRecorder {
            redactor,
            tx,
            failed,
            writer: Mutex::new(writer),
        }
    }

    /// Stops accepting events, writes out those queued and waits for the
    /// writer.
    pub fn close(&self) {
        let _ = self.tx.send(Msg::Close);
        if let Some(handle) = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = handle.join();
        }
    }
}

/// What the writer thread receives.
#[derive(Debug)]
enum Msg {
    /// One event, already serialized (on the producer's thread, so the
    /// event's many small allocations are freed where they were made).
    Line(Vec<u8>),
    Close,
}

/// How long the writer lets events accumulate once it is busy, instead of
/// being woken for each one.
const BATCH_WINDOW: std::time::Duration = std::time::Duration::from_millis(5);

fn write_loop(rx: Receiver<Msg>, out: Box<dyn Write + Send>, failed: &AtomicBool) {
    let mut out = std::io::BufWriter::with_capacity(64 << 10, out);
    // Block for the first event, then drain in batches every BATCH_WINDOW
    // while events keep coming; back to blocking when a drain finds none.
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        loop {
            let mut closing = false;
            let mut wrote = false;
            let mut result = Ok(());
            while let Some(msg) = next.take().or_else(|| rx.try_recv().ok()) {
                match msg {
                    Msg::Line(line) => {
                        wrote = true;
                        result = out.write_all(&line);
                    }
                    Msg::Close => closing = true,
                }
                if result.is_err() || closing {
                    break;
                }
            }
            if let Err(e) = result.and_then(|()| out.flush()) {
                tracing::error!(error = %e, "cannot write audit events; denying actions from now on");
                failed.store(true, Ordering::Relaxed);
                return;
            }
            if closing {
                return;
            }
            if !wrote {
                break;
            }
            std::thread::sleep(BATCH_WINDOW);
        }
    }
    let _ = out.flush();
}

impl Recorder for JsonLinesRecorder {
    fn record(&self, mut event: Event) -> RecordFuture {
        let result = if self.failed.load(Ordering::Relaxed) {
            Err(AuditError::Unavailable(
                "the audit log cannot be written".into(),
            ))
        } else {
            self.redactor.redact_event(&mut event);
            let mut line = Vec::with_capacity(1024);
            if let Err(e) = serde_json::to_writer(&mut line, &event) {
                return Box::pin(std::future::ready(Err(AuditError::Unavailable(format!(
                    "the event cannot be serialized: {e}"
                )))));
            }
            line.push(b'\n');
            match self.tx.try_send(Msg::Line(line)) {
                Ok(()) => Ok(()),
                Err(TrySendError::Full(_)) => {
                    Err(AuditError::SpoolFull("the audit log queue is full".into()))
                }
                Err(TrySendError::Disconnected(_)) => {
                    Err(AuditError::Unavailable("the audit log is closed".into()))
                }
            }
        };
        Box::pin(std::future::ready(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_audit::{Actor, Decision, EventAction, Outcome, Ownership, Source};

    fn redactor() -> Arc<Redactor> {
        Arc::new(Redactor::new(&[]).unwrap())
    }

    fn event(n: usize) -> Event {
        Event::new(
            Source::Sidecar,
            Actor::default(),
            Ownership::default(),
            EventAction {
                protocol: "http".into(),
                verb: "GET".into(),
                target: format!("http://example/{n}"),
                ..EventAction::default()
            },
            Decision {
                outcome: Outcome::Allow,
                rule: None,
                reason: None,
                controls: Vec::new(),
            },
            1,
        )
    }

    #[tokio::test]
    async fn writes_one_line_per_event() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let r = JsonLinesRecorder::open(&path, 16, redactor()).unwrap();
        for n in 0..10 {
            r.record(event(n)).await.unwrap();
        }
        r.close();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Event> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 10);
        assert_eq!(lines[9].action.target, "http://example/9");
        assert!(matches!(
            r.record(event(11)).await,
            Err(AuditError::Unavailable(_))
        ));
    }

    /// A writer that blocks until the gate opens, so the queue fills up.
    struct Gate(Arc<(Mutex<bool>, std::sync::Condvar)>);
    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let (open, cv) = &*self.0;
            let mut open = open.lock().unwrap();
            while !*open {
                open = cv.wait(open).unwrap();
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_full_queue_refuses_with_spool_full() {
        let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let r = JsonLinesRecorder::with_writer(Box::new(Gate(gate.clone())), 2, redactor());
        let mut refused = 0;
        for n in 0..20 {
            if matches!(r.record(event(n)).await, Err(AuditError::SpoolFull(_))) {
                refused += 1;
            }
        }
        assert!(
            refused > 0,
            "a queue of 2 behind a blocked writer must fill up"
        );
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        r.close();
    }

    struct Broken;
    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk full"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Err(std::io::Error::other("disk full"))
        }
    }

    #[tokio::test]
    async fn a_failed_write_makes_it_unavailable() {
        let r = JsonLinesRecorder::with_writer(Box::new(Broken), 4, redactor());
        r.record(event(0)).await.unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            if matches!(r.record(event(1)).await, Err(AuditError::Unavailable(_))) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "never became unavailable"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}
