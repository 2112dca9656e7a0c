//! Why an action policy was refused.

/// An action policy that cannot be used. The message names the place to fix:
/// `file:line:column` and the field path for files, the field path for specs
/// built in code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionPolicyError {
    /// The file is not valid YAML, does not follow the schema, or holds a
    /// rule or route that does not compile (bad glob, regex, Rego, ...).
    #[error("{file}:{line}:{column}: {message}")]
    File {
        /// The file name as given.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong, with the field path (`spec.rules[2].match`).
        message: String,
    },
    /// The same, when the parser could not tell where.
    #[error("{file}: {message}")]
    Unlocated {
        /// The file name as given.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// A spec built in code is invalid.
    #[error("{path}: {message}")]
    Spec {
        /// The field path (`spec.rules[2] (name "x")`).
        path: String,
        /// What is wrong.
        message: String,
    },
}
