//! The audit trail: one event schema (`tollgate.audit/v1`) for every decision
//! the webhook and the sidecar make, a tamper-evident hash-chained journal
//! that keeps them, and exporters that deliver them to SIEMs at least once.
//!
//! # Using it from a producer
//!
//! `tollgate webhook --audit-dir DIR` and `tollgate sidecar --audit-dir DIR`
//! call [`start`] once, on their tokio runtime:
//!
//! ```no_run
//! # async fn example(config: tollgate_audit::AuditConfig) -> Result<(), tollgate_audit::Error> {
//! use tollgate_audit::{AuditOptions, start};
//!
//! let (recorder, handle) = start(AuditOptions {
//!     dir: "/var/lib/tollgate/audit".into(),        // --audit-dir
//!     state_dir: "/var/lib/tollgate/state".into(),  // --state-dir
//!     signing_key: None,                            // --audit-signing-key
//!     config,                                       // the `audit:` section
//! })
//! .await?;
//! let mut registry = prometheus_client::registry::Registry::default();
//! handle.register_metrics(&mut registry);
//! // For each decision: deny if the event cannot be recorded.
//! # let event: tollgate_audit::Event = todo!();
//! if let Err(e) = recorder.record(event).await {
//!     // AuditError::SpoolFull (fail-closed) or Unavailable: refuse the action.
//! #   let _ = e;
//! }
//! // On SIGTERM, after draining requests:
//! handle.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! [`start`] opens or recovers the journal in `dir` (cutting and recording a
//! torn tail), loads the Ed25519 signing key from `signing_key` or generates
//! `state_dir/audit-signing.key` (0600) with `audit-signing.pub` beside it
//! (and a copy in `dir/keys/`, where `tollgate audit verify` finds it),
//! starts the group-commit writer, the maintenance thread, every configured
//! exporter and the archive, and returns the [`Recorder`] producers call plus
//! an [`AuditHandle`]. `record()` resolves only once the event is fsync'd;
//! it fails fast with [`AuditError::SpoolFull`] when the spool is at its cap
//! in `fail-closed` mode, and with [`AuditError::Unavailable`] when the disk
//! refuses the write — in both cases the producer must deny.
//!
//! # Modules
//!
//! - [`event`], [`redact`], [`ocsf`]: the schema, secret redaction, the
//!   OCSF API Activity mapping;
//! - [`record`], [`journal`], [`keys`]: the on-disk format, the writer,
//!   checkpoint signing;
//! - [`verify`], [`reader`]: verification and sequential reading;
//! - [`export`], [`cursor`], [`archive`]: delivery to SIEMs and long-term
//!   storage.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub mod archive;
pub mod config;
pub mod cursor;
mod error;
pub mod event;
pub mod export;
pub mod journal;
pub mod keys;
pub mod metrics;
pub mod ocsf;
pub mod reader;
pub mod record;
pub mod recorder;
pub mod redact;
pub mod text;
pub mod verify;

pub use config::AuditConfig;
pub use error::Error;
pub use event::{
    Actor, Decision, Event, EventAction, Outcome, Ownership, Priority, SCHEMA, Source,
};
pub use journal::{Journal, JournalOptions};
pub use recorder::{AuditError, Discard, Memory, RecordFuture, Recorder};

/// How to start the audit trail.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// The journal directory (`--audit-dir`).
    pub dir: PathBuf,
    /// The state directory, where a signing key is generated when none is
    /// given.
    pub state_dir: PathBuf,
    /// The signing key file (`--audit-signing-key`, e.g. a mounted Secret);
    /// it must exist.
    pub signing_key: Option<PathBuf>,
    /// The `audit:` configuration section.
    pub config: AuditConfig,
}

/// Controls a running audit trail.
pub struct AuditHandle {
    journal: Journal,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for AuditHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditHandle")
            .field("journal", &self.journal)
            .field("tasks", &self.tasks.len())
            .finish()
    }
}

/// Opens the journal and starts the writer, maintenance, exporters and
/// archive on the current tokio runtime. See the crate documentation.
pub async fn start(options: AuditOptions) -> Result<(Arc<dyn Recorder>, AuditHandle), Error> {
    let AuditOptions {
        dir,
        state_dir,
        signing_key,
        config,
    } = options;
    config.validate()?;
    // Build every sink first: bad TLS material or a missing token file
    // fails the start, before anything is written.
    let mut sinks = Vec::with_capacity(config.exporters.len());
    for exporter in &config.exporters {
        sinks.push((exporter.clone(), export::build(exporter)?));
    }
    if config.exporters.is_empty() && config.archive.is_none() {
        tracing::warn!(
            dir = %dir.display(),
            "no audit exporter or archive configured: the journal is the only copy and its segments are never deleted"
        );
    }
    let open_config = config.clone();
    let journal = tokio::task::spawn_blocking(move || {
        let key = keys::SigningKey::load_or_generate(signing_key.as_deref(), &state_dir)?;
        let cursors = Arc::new(cursor::Cursors::load(&dir, &open_config.consumers())?);
        Journal::open(
            JournalOptions {
                dir,
                config: open_config,
                key,
                fault: None,
            },
            cursors,
            metrics::Metrics::default(),
        )
    })
    .await
    .map_err(|e| Error::Stopped(format!("opening the journal: {e}")))??;
    let (stop, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    for (exporter, sink) in sinks {
        let driver = export::Driver {
            name: exporter.name().to_owned(),
            sink,
            journal: journal.clone(),
            batch: exporter.batch().clone(),
            retry: exporter.retry().clone(),
            stop: stop_rx.clone(),
        };
        tasks.push(tokio::spawn(driver.run()));
    }
    if let Some(settings) = &config.archive {
        let archiver = archive::Archiver {
            journal: journal.clone(),
            settings: settings.clone(),
            stop: stop_rx.clone(),
        };
        tasks.push(tokio::spawn(archiver.run()));
    }
    tracing::info!(
        dir = %journal.dir().display(),
        head = journal.head().seq,
        exporters = config.exporters.len(),
        archive = config.archive.is_some(),
        "audit journal open"
    );
    let recorder: Arc<dyn Recorder> = Arc::new(journal.clone());
    Ok((
        recorder,
        AuditHandle {
            journal,
            stop,
            tasks,
        },
    ))
}

impl AuditHandle {
    /// The journal (head, metrics, flush).
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Adds the audit metrics (`tollgate_audit_*`) to `registry`.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        self.journal.metrics().register(registry);
    }

    /// Stops the exporters (an unacknowledged batch is resent at the next
    /// start), then writes a final signed checkpoint, fsyncs and closes the
    /// journal.
    pub async fn shutdown(self) -> Result<(), Error> {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        self.journal.shutdown().await
    }
}

/// The current time, RFC 3339 in UTC.
pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
