//! Errors of the journal, the exporters and verification set-up. Producers
//! only ever see the small [`crate::AuditError`]; operators see these.

use std::path::PathBuf;

use crate::config::ConfigError;

/// Why the audit trail could not be started, written or read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A file or directory could not be read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done (`creating`, `writing`, `reading`, ...).
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Another process holds the journal's lock.
    #[error(
        "journal {path} is in use by another process (lock held on {path}/LOCK); one writer per journal directory"
    )]
    Locked {
        /// The journal directory.
        path: PathBuf,
    },
    /// The signing key or a public key could not be used.
    #[error("signing key {path}: {reason}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The active segment is damaged somewhere other than its tail (so it
    /// is not a torn write): the journal refuses to write over evidence.
    #[error(
        "journal damaged in {segment} at offset {offset}: {reason}; run `tollgate audit verify` on the directory and move it aside to start a new journal"
    )]
    Damaged {
        /// The segment file.
        segment: PathBuf,
        /// Byte offset of the first bad record.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A configured redaction pattern failed to compile.
    #[error("redaction pattern: {0}")]
    Redaction(#[from] regex::Error),
    /// TLS material for an exporter could not be loaded.
    #[error("exporter {exporter}: {reason}")]
    Exporter {
        /// The exporter's name.
        exporter: String,
        /// What is wrong.
        reason: String,
    },
    /// The journal writer has stopped (shut down or crashed).
    #[error("journal writer stopped: {0}")]
    Stopped(String),
}

impl Error {
    /// An I/O error with its context.
    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Error {
        Error::Io {
            what,
            path: path.into(),
            source,
        }
    }
}
