//! Users' Gatekeeper policies: `ConstraintTemplate`s and their constraints,
//! run unchanged.
//!
//! A [`ConstraintSet`] is loaded from YAML documents ([`SourceFile`]s):
//! every template's Rego (v0 or v1, the `spec.targets[].rego` form or the
//! `spec.targets[].code[]` form) is compiled once into a
//! [`crate::rego::Program`]; every constraint is checked against its
//! template's parameter schema and its `spec.match` parsed. A set that fails
//! to load reports every problem with `file:line:column` and is not
//! returned, so the caller keeps whatever set it had; [`ConstraintStore`]
//! packages that: atomic swaps, lock-free reads.
//!
//! Evaluating a [`Review`] (an AdmissionRequest, or a bare object as
//! `gator` builds it) matches each constraint in Rust first, then runs the
//! template's `violation` rule with Gatekeeper's input —
//! `{"review": <request>, "parameters": <spec.parameters or {}>}` — and
//! `data.inventory` from an [`Inventory`]. Each result becomes a
//! [`crate::Violation`] named `Kind/name` with the constraint's enforcement
//! action. A constraint that cannot be evaluated (time limit, runtime error,
//! unusable match) yields a violation carrying the error under the same
//! action: deny constraints fail closed, warn and dryrun constraints report.

mod constraint;
mod inventory;
mod matching;
mod review;
mod schema;
mod set;
pub mod suite;
mod template;
mod yaml;

use crate::rego::{Location, RegoError};

pub use constraint::{Constraint, EnforcementPoint};
pub use inventory::Inventory;
pub use review::Review;
pub use set::{ConstraintResult, ConstraintSet, ConstraintStore, LoadError, LoadOptions};
pub use template::Template;
pub use yaml::SourceFile;

/// The one Gatekeeper target Tollgate evaluates.
pub const TARGET: &str = "admission.k8s.gatekeeper.sh";

/// Why a template, constraint, review or inventory object was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatekeeperError {
    /// A file is not valid YAML.
    #[error("{location}: invalid YAML: {message}")]
    Yaml {
        /// Where the parser stopped.
        location: Location,
        /// What it expected.
        message: String,
    },
    /// A document is not a well-formed ConstraintTemplate or constraint.
    #[error("{location}: {message}")]
    Document {
        /// The document (its first line), or the offending field.
        location: Location,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A template's Rego does not compile.
    #[error("{error} (ConstraintTemplate {template})")]
    Rego {
        /// The template's name.
        template: String,
        /// The compiler's error, located in the template's file.
        #[source]
        error: RegoError,
    },
    /// A constraint's parameters do not match its template's schema.
    #[error("{location}: {kind}/{name}: invalid parameters: {message}")]
    Schema {
        /// The constraint document.
        location: Location,
        /// The constraint's kind.
        kind: String,
        /// The constraint's name.
        name: String,
        /// Which field is wrong.
        message: String,
    },
    /// The request or object under review is malformed.
    #[error("invalid review: {0}")]
    InvalidReview(String),
    /// An inventory object is malformed.
    #[error("invalid inventory object: {0}")]
    InvalidInventory(String),
}

#[cfg(test)]
mod tests;
