//! Errors that stop the webhook from starting or serving.

use std::net::SocketAddr;

use tollgate_certs::CertError;

use crate::settings::SettingsError;

/// Why the webhook could not start or keep serving.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The `webhook:` settings are unusable.
    #[error("webhook settings: {0}")]
    Settings(#[from] SettingsError),
    /// The serving certificate could not be generated or loaded.
    #[error("serving certificate: {0}")]
    Certificates(#[source] CertError),
    /// A listening address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}
