//! Precompiled matchers: glob lists with fast paths for the common shapes
//! (exact, `*`, `*.suffix`, `prefix*`), host[:port] patterns, RBAC-style
//! Kubernetes resource patterns, and constraints on tool-call arguments.

use globset::{GlobBuilder, GlobMatcher};
use regex::Regex;
use serde_json::Value;

use super::spec::ArgumentSpec;

/// How a glob treats `/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Separator {
    /// `*` matches any character, `/` included (names, hosts, methods).
    Free,
    /// `*` stays within a `/` segment; `**` crosses segments (paths, URIs).
    Path,
}

/// One compiled pattern.
#[derive(Debug, Clone)]
enum Pattern {
    Any,
    Exact(Box<str>),
    Prefix(Box<str>),
    Suffix(Box<str>),
    Glob(Box<GlobMatcher>),
}

impl Pattern {
    fn compile(text: &str, sep: Separator, lowercase: bool) -> Result<Pattern, String> {
        let text = if lowercase {
            text.to_ascii_lowercase()
        } else {
            text.to_owned()
        };
        let meta = |c: char| matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | '\\');
        if (text == "*" && sep == Separator::Free) || text == "**" {
            return Ok(Pattern::Any);
        }
        if !text.contains(meta) {
            return Ok(Pattern::Exact(text.into()));
        }
        if sep == Separator::Free {
            if let Some(rest) = text.strip_prefix('*').filter(|r| !r.contains(meta)) {
                return Ok(Pattern::Suffix(rest.into()));
            }
            if let Some(rest) = text.strip_suffix('*').filter(|r| !r.contains(meta)) {
                return Ok(Pattern::Prefix(rest.into()));
            }
        }
        let glob = GlobBuilder::new(&text)
            .literal_separator(sep == Separator::Path)
            .backslash_escape(true)
            .build()
            .map_err(|e| format!("invalid glob {text:?}: {}", e.kind()))?;
        Ok(Pattern::Glob(Box::new(glob.compile_matcher())))
    }

    fn matches(&self, value: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Exact(p) => **p == *value,
            Pattern::Prefix(p) => value.starts_with(&**p),
            Pattern::Suffix(p) => value.ends_with(&**p),
            Pattern::Glob(g) => g.is_match(value),
        }
    }
}

/// A list of patterns; empty matches everything.
#[derive(Debug, Clone, Default)]
pub(crate) struct Patterns {
    patterns: Vec<Pattern>,
    lowercase: bool,
}

impl Patterns {
    /// Compiles `texts`; `lowercase` makes matching case-insensitive (the
    /// caller passes lowercase values).
    pub(crate) fn compile(
        texts: &[String],
        sep: Separator,
        lowercase: bool,
    ) -> Result<Patterns, String> {
        let patterns = texts
            .iter()
            .map(|t| Pattern::compile(t, sep, lowercase))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Patterns {
            patterns,
            lowercase,
        })
    }

    /// True when no pattern was given.
    pub(crate) fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// True when the list is empty or some pattern matches.
    pub(crate) fn matches(&self, value: &str) -> bool {
        if self.patterns.is_empty() {
            return true;
        }
        if self.lowercase && value.bytes().any(|b| b.is_ascii_uppercase()) {
            let lower = value.to_ascii_lowercase();
            return self.patterns.iter().any(|p| p.matches(&lower));
        }
        self.patterns.iter().any(|p| p.matches(value))
    }

    /// True when the list is empty, or the value is present and matches.
    pub(crate) fn matches_opt(&self, value: Option<&str>) -> bool {
        match value {
            Some(v) => self.matches(v),
            None => self.patterns.is_empty(),
        }
    }
}

/// `host` or `host:port` patterns; the host part is a case-insensitive glob.
#[derive(Debug, Clone, Default)]
pub(crate) struct HostPatterns {
    entries: Vec<(Pattern, Option<u16>)>,
}

impl HostPatterns {
    pub(crate) fn compile(texts: &[String]) -> Result<HostPatterns, String> {
        let mut entries = Vec::with_capacity(texts.len());
        let meta = |c: char| matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | '\\');
        for text in texts {
            let (host, port) = split_host_port(text)?;
            // Written hosts are reduced to the canonical form requests are
            // (`0x7f.1` is `127.0.0.1`, `Bücher.de.` is `xn--bcher-kva.de`).
            let is_glob = !host.starts_with('[') && host.contains(meta);
            let host = super::host::policy_host_pattern(host, is_glob)
                .map_err(|e| format!("host {text:?}: {e}"))?;
            entries.push((Pattern::compile(&host, Separator::Free, true)?, port));
        }
        Ok(HostPatterns { entries })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// True when the list is empty or some entry matches `host` (lowercase)
    /// and `port`.
    pub(crate) fn matches(&self, host: &str, port: u16) -> bool {
        if self.entries.is_empty() {
            return true;
        }
        let lower;
        let host = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = host.to_ascii_lowercase();
            lower.as_str()
        } else {
            host
        };
        self.entries
            .iter()
            .any(|(h, p)| p.is_none_or(|p| p == port) && h.matches(host))
    }
}

/// Splits `host[:port]`; IPv6 literals must be bracketed (`[::1]:8080`).
pub(crate) fn split_host_port(text: &str) -> Result<(&str, Option<u16>), String> {
    let bad_port = || format!("invalid port in host pattern {text:?}");
    if text.is_empty() {
        return Err("empty host pattern".into());
    }
    if text.starts_with('[') {
        let end = text
            .find(']')
            .ok_or_else(|| format!("unterminated IPv6 literal in {text:?}"))?;
        let (host, rest) = text.split_at(end + 1);
        return match rest.strip_prefix(':') {
            Some(port) => Ok((host, Some(port.parse().map_err(|_| bad_port())?))),
            None if rest.is_empty() => Ok((host, None)),
            None => Err(format!(
                "unexpected {rest:?} after IPv6 literal in {text:?}"
            )),
        };
    }
    match text.rsplit_once(':') {
        Some((host, _)) if host.contains(':') => Err(format!(
            "IPv6 literal {text:?} must be bracketed, e.g. [::1]:8080"
        )),
        Some((host, port)) if !host.is_empty() => {
            Ok((host, Some(port.parse().map_err(|_| bad_port())?)))
        }
        Some(_) => Err(format!("empty host in pattern {text:?}")),
        None => Ok((text, None)),
    }
}

/// RBAC-style Kubernetes resource patterns: `pods`, `pods/exec`, `pods/*`,
/// `*/status`, `*`.
#[derive(Debug, Clone, Default)]
pub(crate) struct ResourcePatterns {
    entries: Vec<(Box<str>, Option<Box<str>>)>,
}

impl ResourcePatterns {
    pub(crate) fn compile(texts: &[String]) -> Result<ResourcePatterns, String> {
        let mut entries = Vec::with_capacity(texts.len());
        for text in texts {
            let (resource, sub) = match text.split_once('/') {
                Some((r, s)) if !r.is_empty() && !s.is_empty() && !s.contains('/') => (r, Some(s)),
                Some(_) => {
                    return Err(format!(
                        "invalid resource {text:?}: expected resource, resource/subresource, resource/*, */subresource or *"
                    ));
                }
                None if text.is_empty() => return Err("empty resource name".into()),
                None => (text.as_str(), None),
            };
            entries.push((resource.into(), sub.map(Into::into)));
        }
        Ok(ResourcePatterns { entries })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn matches(&self, resource: &str, subresource: Option<&str>) -> bool {
        if self.entries.is_empty() {
            return true;
        }
        self.entries
            .iter()
            .any(|(r, s)| match (&**r, s.as_deref(), subresource) {
                ("*", None, _) => true,
                (r, None, None) => r == resource,
                (_, None, Some(_)) => false,
                (_, Some(_), None) => false,
                ("*", Some(s), Some(sub)) => s == sub,
                (r, Some("*"), Some(_)) => r == resource,
                (r, Some(s), Some(sub)) => r == resource && s == sub,
            })
    }
}

/// A compiled constraint on one argument value.
#[derive(Debug, Clone)]
pub(crate) struct ArgumentConstraint {
    pointer: String,
    optional: bool,
    equals: Option<Value>,
    one_of: Option<Vec<Value>>,
    glob: Option<Pattern>,
    regex: Option<Regex>,
    min: Option<f64>,
    max: Option<f64>,
    max_length: Option<u64>,
    within_path: Option<String>,
}

/// The largest compiled regex accepted in a policy, in bytes.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

impl ArgumentConstraint {
    pub(crate) fn compile(spec: &ArgumentSpec) -> Result<ArgumentConstraint, String> {
        if !spec.pointer.is_empty() && !spec.pointer.starts_with('/') {
            return Err(format!(
                "invalid JSON pointer {:?}: it must be empty or start with '/' (e.g. /path)",
                spec.pointer
            ));
        }
        let regex = match &spec.regex {
            Some(r) => Some(
                regex::RegexBuilder::new(&format!("^(?:{r})$"))
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| format!("invalid regex {r:?}: {e}"))?,
            ),
            None => None,
        };
        let glob = match &spec.glob {
            Some(g) => Some(Pattern::compile(g, Separator::Path, false)?),
            None => None,
        };
        let (min, max) = match &spec.range {
            Some(r) => {
                if let (Some(lo), Some(hi)) = (r.min, r.max)
                    && lo > hi
                {
                    return Err(format!("range min {lo} is greater than max {hi}"));
                }
                if r.min.is_none() && r.max.is_none() {
                    return Err("range needs min, max or both".into());
                }
                (r.min, r.max)
            }
            None => (None, None),
        };
        let within_path = match &spec.within_path {
            Some(p) if p.starts_with('/') => Some(
                normalize_path(p).ok_or_else(|| format!("withinPath {p:?} escapes the root"))?,
            ),
            Some(p) => return Err(format!("withinPath {p:?} must be an absolute path")),
            None => None,
        };
        let constraint = ArgumentConstraint {
            pointer: spec.pointer.clone(),
            optional: spec.optional,
            equals: spec.equals.clone(),
            one_of: spec.one_of.clone(),
            glob,
            regex,
            min,
            max,
            max_length: spec.max_length,
            within_path,
        };
        if constraint.equals.is_none()
            && constraint.one_of.is_none()
            && constraint.glob.is_none()
            && constraint.regex.is_none()
            && min.is_none()
            && max.is_none()
            && constraint.max_length.is_none()
            && constraint.within_path.is_none()
        {
            return Err(format!(
                "argument constraint on {:?} checks nothing: give equals, oneOf, glob, regex, range, maxLength or withinPath",
                spec.pointer
            ));
        }
        Ok(constraint)
    }

    /// Whether `arguments` satisfies the constraint.
    pub(crate) fn holds(&self, arguments: Option<&Value>) -> bool {
        let value = match arguments.and_then(|a| a.pointer(&self.pointer)) {
            Some(v) => v,
            None => return self.optional,
        };
        if let Some(want) = &self.equals
            && !json_eq(value, want)
        {
            return false;
        }
        if let Some(set) = &self.one_of
            && !set.iter().any(|w| json_eq(value, w))
        {
            return false;
        }
        if self.glob.is_some() || self.regex.is_some() || self.within_path.is_some() {
            let Some(s) = value.as_str() else {
                return false;
            };
            if self.glob.as_ref().is_some_and(|g| !g.matches(s))
                || self.regex.as_ref().is_some_and(|r| !r.is_match(s))
            {
                return false;
            }
            if let Some(dir) = &self.within_path
                && !within(dir, s)
            {
                return false;
            }
        }
        if self.min.is_some() || self.max.is_some() {
            let Some(n) = value.as_f64() else {
                return false;
            };
            if self.min.is_some_and(|lo| n < lo) || self.max.is_some_and(|hi| n > hi) {
                return false;
            }
        }
        if let Some(limit) = self.max_length {
            let len = match value {
                Value::String(s) => s.chars().count() as u64,
                Value::Array(a) => a.len() as u64,
                _ => return false,
            };
            if len > limit {
                return false;
            }
        }
        true
    }
}

/// JSON equality where numbers compare by value (`1` equals `1.0`).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Resolves `.` and `..` in an absolute path; `None` when `..` climbs above
/// the root.
fn normalize_path(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            s => parts.push(s),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

/// Whether `path` (absolute) stays inside `dir` (normalised) once resolved.
fn within(dir: &str, path: &str) -> bool {
    if !path.starts_with('/') || path.contains('\0') {
        return false;
    }
    let Some(resolved) = normalize_path(path) else {
        return false;
    };
    dir == "/"
        || resolved == dir
        || resolved
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}
