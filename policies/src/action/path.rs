//! One spelling per path: the path a request is judged on, and forwarded
//! with, whatever spelling the agent sent.
//!
//! Servers read the same bytes differently: nginx merges `//`, uvicorn and
//! many frameworks decode `%2F` before routing, IIS and some Java servers
//! treat `\` as `/`, Tomcat and Spring drop `;param` from segments, and
//! everyone resolves `.` and `..`. A rule on `/admin/**` must hold for all
//! of them, so a path is either reduced to one unambiguous form or refused:
//!
//! - always: escapes of unreserved characters are decoded (`%61` is `a`),
//!   other escapes are upper-cased; a `%` not followed by two hex digits,
//!   an escaped `%` followed by hex (`%252F`, double encoding), and
//!   control characters (raw or escaped, `%00`) are refused;
//! - [`PathStrictness::Refuse`] (the default): empty segments (`//`), `%2F`,
//!   `\` and `%5C`, `;` parameters and `.`/`..` segments (in any encoding,
//!   `%2e%2e`) are refused;
//! - [`PathStrictness::Normalize`]: `%2F`, `\` and `%5C` become `/`,
//!   `;parameters` are removed from each segment, empty segments are merged
//!   and `.`/`..` are resolved (climbing above the root is refused).
//!
//! The result is what rules are judged on **and** what is sent upstream, so
//! the upstream executes exactly the judged path. Refuse mode's result, when
//! there is one, equals normalize mode's for the same input.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// How a route treats paths that servers could read differently.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PathStrictness {
    /// Refuse ambiguous paths (the default).
    #[default]
    Refuse,
    /// Reduce ambiguous paths to one form, and forward that form.
    Normalize,
}

/// Why a path is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// A spelling servers read differently, refused in refuse mode.
    #[error(
        "the path {path:?} is ambiguous ({what}): servers read it differently, so it is refused; send the path in its plain form, or set pathStrictness: normalize on the route"
    )]
    Ambiguous {
        /// The path as sent.
        path: String,
        /// What makes it ambiguous.
        what: &'static str,
    },
    /// A spelling refused in every mode.
    #[error("the path {path:?} is refused: {what}")]
    Invalid {
        /// The path as sent.
        path: String,
        /// What is wrong.
        what: &'static str,
    },
}

/// The path `raw` (as sent, without the query) is judged on and forwarded
/// with, under `strictness`.
pub fn judge_path(raw: &str, strictness: PathStrictness) -> Result<String, PathError> {
    if raw == "*" {
        return Ok(raw.to_owned());
    }
    let normalize = strictness == PathStrictness::Normalize;
    let ambiguous = |what: &'static str| PathError::Ambiguous {
        path: raw.to_owned(),
        what,
    };
    let invalid = |what: &'static str| PathError::Invalid {
        path: raw.to_owned(),
        what,
    };
    if !raw.starts_with('/') {
        return Err(invalid("it does not start with '/'"));
    }
    // Pass 1: escapes and separators, into one string whose only `/` are
    // segment separators.
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let value = match (bytes.get(i + 1), bytes.get(i + 2)) {
                    (Some(&h), Some(&l)) => hex(h).zip(hex(l)).map(|(h, l)| h * 16 + l),
                    _ => None,
                };
                let Some(c) = value else {
                    return Err(invalid("a '%' is not followed by two hex digits"));
                };
                i += 3;
                if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
                    out.push(char::from(c));
                } else if c < 0x20 || c == 0x7f {
                    return Err(invalid("it holds an escaped control character"));
                } else if c == b'/' || c == b'\\' {
                    if !normalize {
                        return Err(ambiguous(if c == b'/' {
                            "an encoded '/' (%2F)"
                        } else {
                            "an encoded backslash (%5C)"
                        }));
                    }
                    out.push('/');
                } else {
                    let _ = write!(out, "%{c:02X}");
                }
            }
            b'\\' => {
                if !normalize {
                    return Err(ambiguous("a backslash"));
                }
                out.push('/');
                i += 1;
            }
            _ if b < 0x20 || b == 0x7f => {
                return Err(invalid("it holds a control character"));
            }
            _ => {
                // Multi-byte UTF-8 is copied byte by byte below.
                let start = i;
                let len = utf8_len(b);
                let chunk = raw
                    .get(start..start + len)
                    .ok_or_else(|| invalid("it is not valid UTF-8"))?;
                out.push_str(chunk);
                i += len;
            }
        }
    }
    // Decoding unreserved escapes can complete a double encoding
    // (`%25%32%46` is `%252F`), so this is checked on the result.
    let ob = out.as_bytes();
    let twice = ob.windows(5).any(|w| {
        w.starts_with(b"%25")
            && w.get(3).copied().and_then(hex).is_some()
            && w.get(4).copied().and_then(hex).is_some()
    });
    if twice {
        return Err(invalid(
            "it is percent-encoded twice (%25 followed by hex digits)",
        ));
    }
    // Pass 2: segments.
    let trailing = out.ends_with('/') || out.ends_with("/.") || out.ends_with("/..");
    let mut segments: Vec<&str> = Vec::new();
    let mut rest = out.strip_prefix('/').unwrap_or(&out);
    let mut last = false;
    while !last {
        let (segment, tail) = match rest.split_once('/') {
            Some((s, t)) => (s, t),
            None => {
                last = true;
                (rest, "")
            }
        };
        rest = tail;
        let segment = match segment.split_once(';') {
            Some((kept, _)) if normalize => kept,
            Some(_) => return Err(ambiguous("a ';' parameter")),
            None => segment,
        };
        match segment {
            "" if last => {}
            "" => {
                if !normalize {
                    return Err(ambiguous("an empty segment (//)"));
                }
            }
            "." | ".." if !normalize => {
                return Err(ambiguous("a '.' or '..' segment"));
            }
            "." => {}
            ".." => {
                if segments.pop().is_none() {
                    return Err(invalid("'..' climbs above the root"));
                }
            }
            s => segments.push(s),
        }
    }
    let mut judged = String::with_capacity(out.len());
    for s in &segments {
        judged.push('/');
        judged.push_str(s);
    }
    if trailing || judged.is_empty() {
        judged.push('/');
    }
    Ok(judged)
}

fn hex(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// The length of the UTF-8 sequence a leading byte starts.
fn utf8_len(b: u8) -> usize {
    match b {
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        _ => 1,
    }
}

#[cfg(test)]
mod tests;
