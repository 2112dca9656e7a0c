//! The audit trail: one event schema (`tollgate.audit/v1`) for every decision
//! the webhook and the sidecar make, a tamper-evident hash-chained journal
//! that keeps them, and exporters that deliver them to SIEMs at least once.

pub mod event;
pub mod recorder;

pub use event::{Actor, Decision, Event, EventAction, Outcome, Ownership, Priority, Source};
pub use recorder::{AuditError, Discard, Memory, RecordFuture, Recorder};
