//! Test support for Tollgate's crates.
//!
//! [`apiserver::FakeApiServer`] is an in-process fake Kubernetes API server:
//! there is no kube-apiserver where these tests run, so it speaks the real
//! REST, watch and admission-webhook protocols closely enough for kube-rs
//! clients and `kubectl`.

pub mod apiserver;

pub use apiserver::{FakeApiServer, FakeError, Fault, Options, RecordedRequest};
