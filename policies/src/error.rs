//! Errors raised while turning untrusted input into policy inputs.

/// Why an object or a policy file could not be evaluated.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The object is not a Kubernetes object this engine understands
    /// (no `kind`, or a pod spec that does not match the Kubernetes schema).
    #[error("invalid object: {0}")]
    InvalidObject(String),
    /// A level or version string is not one Pod Security Admission accepts.
    #[error("invalid pod security {what} {value:?}: {hint}")]
    InvalidLevel {
        /// `level` or `version`.
        what: &'static str,
        /// The rejected text.
        value: String,
        /// What would have been accepted.
        hint: &'static str,
    },
}
