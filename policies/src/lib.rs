//! Tollgate's policy engine: the one place where decisions are made.
//!
//! It evaluates the native Pod Security Standards checks, the ownership
//! annotation rules, the built-in compliance packs and users' Gatekeeper
//! constraints (Rego, via `regorus`), and the sidecar's action policies. It
//! does no I/O of its own: callers hand it parsed objects and get typed
//! [`verdict::Verdict`]s back, which keeps it trivial to test and to fuzz.

pub mod action;
pub mod compliance;
pub mod config;
pub mod defaults;
pub mod engine;
pub mod error;
pub mod gatekeeper;
pub mod level;
pub mod namespace;
pub mod ownership;
pub mod pss;
pub mod rego;
pub mod report;
pub mod verdict;
pub mod workload;

pub use error::PolicyError;
pub use level::{Level, LevelVersion, Version};
pub use namespace::{LabelError, NamespaceInfo, NamespaceSource, StaticNamespaces, validate_label};
pub use verdict::{Control, EnforcementAction, PolicySet, Verdict, Violation};
pub use workload::{Workload, WorkloadKind};
