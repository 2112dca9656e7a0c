//! The producer-side interface: the webhook and the sidecar hand events to a
//! [`Recorder`] and learn when they are durable, or that they were refused.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use crate::Event;

/// Why an event was not recorded.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    /// The spool is at its cap and the policy is fail-closed: the producer
    /// must deny the action it was about to allow.
    #[error("audit spool is full (fail-closed): {0}")]
    SpoolFull(String),
    /// The journal cannot write (disk error, shut down).
    #[error("audit journal unavailable: {0}")]
    Unavailable(String),
}

/// Resolves when the event is durable (fsync'd), or with the reason it is not.
pub type RecordFuture = Pin<Box<dyn Future<Output = Result<(), AuditError>> + Send>>;

/// Accepts audit events.
pub trait Recorder: Send + Sync {
    /// Submits an event. Refusal (spool full in fail-closed mode) is
    /// reported by the returned future without waiting for the disk.
    fn record(&self, event: Event) -> RecordFuture;
}

/// Discards every event (auditing off).
#[derive(Debug, Clone, Copy, Default)]
pub struct Discard;

impl Recorder for Discard {
    fn record(&self, _event: Event) -> RecordFuture {
        Box::pin(async { Ok(()) })
    }
}

/// Keeps events in memory, for tests.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    events: Arc<Mutex<Vec<Event>>>,
}

impl Memory {
    /// The events recorded so far.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

impl Recorder for Memory {
    fn record(&self, event: Event) -> RecordFuture {
        if let Ok(mut events) = self.events.lock() {
            events.push(event);
        }
        Box::pin(async { Ok(()) })
    }
}
