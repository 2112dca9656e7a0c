//! The admission webhook: AdmissionReview v1 over TLS in, a decision and a
//! JSON Patch out. A thin layer over `tollgate-policies`:
//!
//! - [`review`] turns untrusted bytes into a typed request and encodes the
//!   response kube-apiserver expects;
//! - [`Injector`] injects the sidecar into agent pods and refuses pods
//!   that would bypass it;
//! - [`Admission`] evaluates it with the current policy snapshot and records
//!   the decision in the audit trail;
//! - [`service`] is the HTTP layer (routing, content type, body limits and
//!   timeouts), driven in-process by tests;
//! - [`server`] binds the HTTPS and metrics ports, serves connections with
//!   hyper (HTTP/1.1 and HTTP/2 by ALPN) and drains them on shutdown.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use http::StatusCode;

pub mod audit;
pub mod error;
pub mod handler;
pub mod inject;
pub mod metrics;
pub mod review;
pub mod server;
pub mod service;
pub mod settings;
pub mod tls;

pub use error::WebhookError;
pub use handler::{Admission, decide};
pub use inject::{InjectionConfig, Injector};
pub use metrics::Metrics;
pub use server::{Bound, ReadinessGate, Webhook, shutdown_signal};
pub use settings::{AuditFailurePolicy, Limits, Settings, TlsSettings};

/// The two admission endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /validate`: allow or deny, with warnings.
    Validate,
    /// `POST /mutate`: a JSON Patch.
    Mutate,
}

impl Endpoint {
    /// `validate` or `mutate`.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Validate => "validate",
            Endpoint::Mutate => "mutate",
        }
    }

    /// The URL path.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Validate => "/validate",
            Endpoint::Mutate => "/mutate",
        }
    }
}

/// An HTTP answer: status and JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The HTTP status (200 for every AdmissionReview answered, allowed or
    /// not).
    pub status: StatusCode,
    /// The JSON body.
    pub body: Bytes,
}

impl Reply {
    /// A 200 with `body`.
    pub fn ok(body: impl Into<Bytes>) -> Reply {
        Reply {
            status: StatusCode::OK,
            body: body.into(),
        }
    }

    /// An error with a JSON `Status` body.
    pub fn error(status: StatusCode, reason: &'static str, message: &str) -> Reply {
        Reply {
            status,
            body: review::error_body(status.as_u16(), reason, message).into(),
        }
    }
}

/// A boxed future, for object-safe async handlers.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Answers the body of a `POST` to an admission endpoint. [`Admission`] is
/// the real one; benchmarks plug in a fixed answer to measure the server's
/// floor.
pub trait AdmissionHandler: Send + Sync + 'static {
    /// The answer to one request body.
    fn handle(&self, endpoint: Endpoint, body: Bytes) -> BoxFuture<'_, Reply>;
}
