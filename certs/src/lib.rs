//! Certificates: a CA and serving certificates for the webhook, per-pod
//! interception CAs and on-the-fly leaf certificates for the sidecar, rustls
//! configurations (TLS 1.2 and 1.3 only), and hot reload of rotated files.
//!
//! This crate knows PEM, X.509 and rustls; it knows nothing of HTTP.

pub mod authority;
pub mod error;
pub mod intercept;
pub mod pem;
pub mod reload;
pub mod state;
pub mod tls;

pub use authority::{Authority, CertifiedPair, not_after, save_serving};
pub use error::CertError;
pub use intercept::Interceptor;
pub use reload::{ReloadOutcome, ReloadingResolver, WatchHandle};
pub use state::{Lifetimes, ServingState, ensure_serving, issue_bundle};
pub use tls::{certified_key, client_config, server_config};
