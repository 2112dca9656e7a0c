//! Errors of the Rego layer, and the translation of regorus's error text
//! (`--> file:line:col` snippets) into typed locations.

use std::fmt;
use std::time::Duration;

use super::{Module, Origin};

/// A position in a file, 1-based.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Location {
    /// The file (or module name).
    pub file: String,
    /// Line, from 1.
    pub line: u32,
    /// Column, from 1.
    pub column: u32,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// Why Rego could not be compiled or evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegoError {
    /// A module is not valid Rego.
    #[error("{location}: {message}")]
    Parse {
        /// Where the parser stopped.
        location: Location,
        /// What it expected.
        message: String,
    },
    /// The modules parse but cannot be compiled together (unsafe variables,
    /// recursion, conflicting rules, a missing required rule).
    #[error("{}{message}", prefix(.location))]
    Compile {
        /// Where, when known.
        location: Option<Location>,
        /// What is wrong.
        message: String,
    },
    /// Evaluation failed (a builtin error, a conflicting rule value).
    #[error("{}{message}", prefix(.location))]
    Eval {
        /// The expression that failed, when known.
        location: Option<Location>,
        /// What went wrong.
        message: String,
    },
    /// Evaluation ran past its time budget and was stopped.
    #[error("evaluation exceeded its time limit of {} ms and was stopped", .limit.as_millis())]
    Timeout {
        /// The budget that was exceeded.
        limit: Duration,
    },
    /// The input document cannot be converted (too deeply nested).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A data document is not usable (not an object).
    #[error("invalid data document: {0}")]
    InvalidData(String),
    /// The interpreter failed in a way that is not the policy's fault.
    #[error("internal error: {0}")]
    Internal(String),
}

fn prefix(location: &Option<Location>) -> String {
    location
        .as_ref()
        .map(|l| format!("{l}: "))
        .unwrap_or_default()
}

impl RegoError {
    /// Where the error is, when known.
    pub fn location(&self) -> Option<&Location> {
        match self {
            RegoError::Parse { location, .. } => Some(location),
            RegoError::Compile { location, .. } | RegoError::Eval { location, .. } => {
                location.as_ref()
            }
            _ => None,
        }
    }
}

/// A location as regorus prints it, in module coordinates.
struct RawLocation {
    file: String,
    line: u32,
    column: u32,
}

/// Parses `file:line:col`.
fn parse_marker(marker: &str) -> Option<RawLocation> {
    let (head, column) = marker.trim().rsplit_once(':')?;
    let (file, line) = head.rsplit_once(':')?;
    Some(RawLocation {
        file: file.to_owned(),
        line: line.trim().parse().ok()?,
        column: column.trim().parse().ok()?,
    })
}

/// The first `--> file:line:col` marker in regorus's error text.
fn first_marker(text: &str) -> Option<RawLocation> {
    text.lines()
        .find_map(|line| line.trim_start().strip_prefix("--> "))
        .and_then(parse_marker)
}

/// Translates a module-relative position into the enclosing file's.
fn translate(raw: RawLocation, sources: &[(String, Option<Origin>)]) -> Location {
    match sources.iter().find(|(name, _)| *name == raw.file) {
        Some((_, Some(origin))) => origin.translate(raw.line, raw.column),
        _ => Location {
            file: raw.file,
            line: raw.line,
            column: raw.column,
        },
    }
}

/// True for the source-snippet lines regorus prints under a marker
/// (`  |`, `3 | p { q }`, `  |   ^`).
fn is_snippet_line(line: &str) -> bool {
    let trimmed = line.trim_start();
    trimmed.is_empty()
        || trimmed.starts_with('|')
        || trimmed
            .split_once(" |")
            .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

/// The human message of a regorus error: the text after the first
/// `error: `, with further `--> file:line:col` markers (recursion chains)
/// rewritten as plain locations and their source snippets dropped.
fn message_of(text: &str, sources: &[(String, Option<Origin>)]) -> String {
    let body = match text.find("\nerror: ") {
        Some(i) => text.get(i + 1..).unwrap_or(text),
        None => text,
    };
    let mut parts: Vec<String> = Vec::new();
    let mut in_snippet = false;
    for line in body.lines() {
        if let Some(marker) = line.trim_start().strip_prefix("--> ") {
            if let Some(raw) = parse_marker(marker) {
                parts.push(format!("({})", translate(raw, sources)));
            }
            in_snippet = true;
            continue;
        }
        if in_snippet && is_snippet_line(line) {
            continue;
        }
        in_snippet = false;
        parts.push(line.trim().trim_start_matches("error: ").to_owned());
    }
    parts
        .iter()
        .flat_map(|p| p.split_whitespace())
        .collect::<Vec<_>>()
        .join(" ")
}

fn sources_of(modules: &[Module]) -> Vec<(String, Option<Origin>)> {
    modules
        .iter()
        .map(|m| (m.name.clone(), m.origin.clone()))
        .collect()
}

/// A parse or compile error from regorus, located.
pub(crate) fn from_regorus(err: anyhow::Error, modules: &[Module], stage: &str) -> RegoError {
    let text = format!("{err:#}");
    let sources = sources_of(modules);
    match first_marker(&text) {
        Some(raw) => {
            let location = translate(raw, &sources);
            let message = message_of(&text, &sources);
            if stage == "parse" {
                RegoError::Parse { location, message }
            } else {
                RegoError::Compile {
                    location: Some(location),
                    message,
                }
            }
        }
        None => RegoError::Compile {
            location: None,
            message: text.trim().to_owned(),
        },
    }
}

/// An evaluation error from regorus, located when it names a position.
pub(crate) fn eval_error(text: &str, sources: &[(String, Option<Origin>)]) -> RegoError {
    match first_marker(text) {
        Some(raw) => RegoError::Eval {
            location: Some(translate(raw, sources)),
            message: message_of(text, sources),
        },
        None => RegoError::Eval {
            location: None,
            message: text.trim().to_owned(),
        },
    }
}
