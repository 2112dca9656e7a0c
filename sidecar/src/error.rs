//! Why the sidecar could not start.

use std::net::SocketAddr;
use std::path::PathBuf;

/// A startup failure. Once serving, the sidecar answers failures per
/// request (a denial or a 502/504) and never stops on bad input.
#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The interception CA or an upstream trust bundle is unusable.
    #[error("certificates: {0}")]
    Certs(#[from] tollgate_certs::CertError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The configuration is inconsistent.
    #[error("configuration: {0}")]
    Config(String),
    /// TLS could not be configured.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}
