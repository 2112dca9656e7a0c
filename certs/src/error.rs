//! Certificate errors.

use std::path::PathBuf;

/// Why a certificate could not be issued, read or used.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// Key generation or signing failed.
    #[error("certificate generation failed: {0}")]
    Generate(#[source] rcgen::Error),
    /// A PEM file held no usable certificate or key.
    #[error("{what}: {reason}")]
    Pem {
        /// Which input (a file name or a description).
        what: String,
        /// What was wrong with it.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// rustls refused the certificate or key.
    #[error("TLS configuration: {0}")]
    Tls(#[source] rustls::Error),
}
