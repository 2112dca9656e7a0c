//! Strict JSON for classification. A body is judged on what the upstream
//! will parse, so every spelling two parsers could read differently is
//! refused rather than guessed at: duplicate object keys
//! (`{"method":"tools/list","method":"tools/call"}`), `NaN`/`Infinity`,
//! numbers that overflow (`1e400`), lone surrogates (`"\ud800"`), invalid
//! UTF-8, trailing data, nesting beyond a bound, and JSON behind a byte
//! order mark or in UTF-16/UTF-32 (Python's `json.loads` reads all of
//! those; this parser reads none of them).
//!
//! [`sniff`] decides whether a body *looks like* JSON to a lenient server
//! (after an optional byte order mark and whitespace it starts with `{` or
//! `[`, in any encoding Python's `json.loads` detects); [`parse_body`]
//! then either parses it strictly or refuses it. A body that looks like
//! JSON is never passed on as opaque bytes.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Nesting that `serde_json` itself refuses (its recursion limit is 128
/// containers); the bound this parser enforces is kept below it so the
/// refusal is always the typed [`JsonError::TooDeep`].
pub const MAX_SUPPORTED_DEPTH: u32 = 126;

/// Why a body is not acceptable JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// Not JSON (bad token, `NaN`, a number out of range, a lone
    /// surrogate, invalid UTF-8, ...), with the parser's complaint.
    #[error("malformed JSON: {0}")]
    Syntax(String),
    /// The body ends in the middle of a value.
    #[error("truncated JSON")]
    Truncated,
    /// Something follows the JSON value.
    #[error("trailing data after the JSON value")]
    TrailingData,
    /// An object repeats a key, which parsers resolve differently.
    #[error("ambiguous JSON: duplicate key {0:?}")]
    DuplicateKey(String),
    /// Nested deeper than allowed.
    #[error("JSON nested deeper than {0} levels")]
    TooDeep(u32),
    /// JSON in an encoding other than UTF-8 without a byte order mark.
    #[error("JSON must be UTF-8 without a byte order mark; this body is {0}")]
    Encoding(Encoding),
    /// JSON declared in a charset other than UTF-8.
    #[error("JSON must be UTF-8; the request declares charset {0:?}")]
    Charset(String),
}

/// The text encoding of a body, detected the way Python's `json.loads`
/// detects it (RFC 4627 section 3 and byte order marks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// UTF-8 without a byte order mark.
    Utf8,
    /// UTF-8 after a byte order mark.
    Utf8Bom,
    /// UTF-16, little endian.
    Utf16Le,
    /// UTF-16, big endian.
    Utf16Be,
    /// UTF-32, little endian.
    Utf32Le,
    /// UTF-32, big endian.
    Utf32Be,
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Encoding::Utf8 => "UTF-8",
            Encoding::Utf8Bom => "UTF-8 with a byte order mark",
            Encoding::Utf16Le => "UTF-16LE",
            Encoding::Utf16Be => "UTF-16BE",
            Encoding::Utf32Le => "UTF-32LE",
            Encoding::Utf32Be => "UTF-32BE",
        })
    }
}

/// What a body looks like before it is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sniffed {
    /// Its encoding.
    pub encoding: Encoding,
    /// Whether, in that encoding, after whitespace it starts with `{` or `[`.
    pub json_like: bool,
}

/// Detects the encoding of `body` and whether it looks like a JSON object
/// or array to a lenient parser.
pub fn sniff(body: &[u8]) -> Sniffed {
    let (encoding, skip) = detect_encoding(body);
    let rest = body.get(skip..).unwrap_or_default();
    let unit = match encoding {
        Encoding::Utf8 | Encoding::Utf8Bom => 1,
        Encoding::Utf16Le | Encoding::Utf16Be => 2,
        Encoding::Utf32Le | Encoding::Utf32Be => 4,
    };
    let big_endian = matches!(encoding, Encoding::Utf16Be | Encoding::Utf32Be);
    let first = rest
        .chunks(unit)
        .map(|c| {
            let iter = c.iter().map(|b| u32::from(*b));
            if big_endian {
                iter.fold(0u32, |acc, b| (acc << 8) | b)
            } else {
                iter.rev().fold(0u32, |acc, b| (acc << 8) | b)
            }
        })
        .find(|c| !is_space(*c));
    Sniffed {
        encoding,
        json_like: matches!(first, Some(0x7b | 0x5b)),
    }
}

/// Whitespace a lenient reader may skip before a value: JSON's four, and
/// the vertical tab and form feed some parsers also accept.
fn is_space(c: u32) -> bool {
    matches!(c, 0x20 | 0x09 | 0x0a | 0x0d | 0x0b | 0x0c)
}

/// Python's `json.detect_encoding`: byte order marks first, then the
/// pattern of zero bytes in the first four.
fn detect_encoding(b: &[u8]) -> (Encoding, usize) {
    if b.starts_with(&[0x00, 0x00, 0xfe, 0xff]) {
        return (Encoding::Utf32Be, 4);
    }
    if b.starts_with(&[0xff, 0xfe, 0x00, 0x00]) {
        return (Encoding::Utf32Le, 4);
    }
    if b.starts_with(&[0xfe, 0xff]) {
        return (Encoding::Utf16Be, 2);
    }
    if b.starts_with(&[0xff, 0xfe]) {
        return (Encoding::Utf16Le, 2);
    }
    if b.starts_with(&[0xef, 0xbb, 0xbf]) {
        return (Encoding::Utf8Bom, 3);
    }
    match b {
        [0, 0, ..] if b.len() >= 4 => (Encoding::Utf32Be, 0),
        [0, _, ..] => (Encoding::Utf16Be, 0),
        [_, 0, 0, 0, ..] => (Encoding::Utf32Le, 0),
        [_, 0, ..] => (Encoding::Utf16Le, 0),
        _ => (Encoding::Utf8, 0),
    }
}

/// The body as JSON, when it looks like JSON: `Ok(None)` for a body that
/// does not (plain HTTP), `Ok(Some(value))` for strict JSON, and an error
/// for anything that looks like JSON but is not strict UTF-8 JSON, or that
/// is declared in a charset other than UTF-8.
pub fn parse_body(
    body: &[u8],
    charset: Option<&str>,
    max_depth: u32,
) -> Result<Option<Value>, JsonError> {
    let sniffed = sniff(body);
    if !sniffed.json_like {
        return Ok(None);
    }
    if sniffed.encoding != Encoding::Utf8 {
        return Err(JsonError::Encoding(sniffed.encoding));
    }
    if let Some(charset) = charset
        && !is_utf8_charset(charset)
    {
        return Err(JsonError::Charset(charset.to_owned()));
    }
    parse_strict(body, max_depth).map(Some)
}

/// Whether a `charset` parameter names UTF-8 (or its ASCII subset).
fn is_utf8_charset(charset: &str) -> bool {
    let c = charset.trim().trim_matches('"');
    ["utf-8", "utf8", "us-ascii", "ascii"]
        .iter()
        .any(|u| c.eq_ignore_ascii_case(u))
}

/// The `charset` parameter of a `Content-Type` value, if any.
pub fn content_type_charset(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case("charset").then_some(v.trim())
    })
}

/// Parses `bytes` as one JSON value, refusing duplicate keys and nesting
/// deeper than `max_depth` (at most [`MAX_SUPPORTED_DEPTH`]).
pub fn parse_strict(bytes: &[u8], max_depth: u32) -> Result<Value, JsonError> {
    let failure = Cell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Strict {
        depth: 0,
        max_depth: max_depth.min(MAX_SUPPORTED_DEPTH),
        failure: &failure,
    }
    .deserialize(&mut de);
    let value = match value {
        Ok(v) => v,
        Err(e) => {
            return Err(failure.take().unwrap_or_else(|| from_serde(&e)));
        }
    };
    de.end().map_err(|_| JsonError::TrailingData)?;
    Ok(value)
}

/// A parser error this module did not raise itself.
fn from_serde(e: &serde_json::Error) -> JsonError {
    if e.is_eof() {
        JsonError::Truncated
    } else {
        JsonError::Syntax(e.to_string())
    }
}

/// The seed that builds a [`Value`] while checking keys and depth; a
/// refusal it raises is recorded in `failure` (serde's error type carries
/// only text) and returned typed by [`parse_strict`].
#[derive(Clone, Copy)]
struct Strict<'f> {
    depth: u32,
    max_depth: u32,
    failure: &'f Cell<Option<JsonError>>,
}

impl<'f> Strict<'f> {
    fn fail<E: de::Error>(self, error: JsonError) -> E {
        let e = E::custom(&error);
        self.failure.set(Some(error));
        e
    }

    fn deeper<E: de::Error>(self) -> Result<Strict<'f>, E> {
        if self.depth >= self.max_depth {
            return Err(self.fail(JsonError::TooDeep(self.max_depth)));
        }
        Ok(Strict {
            depth: self.depth + 1,
            ..self
        })
    }
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| self.fail(JsonError::Syntax(format!("number {v} is not finite"))))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.deeper()?;
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element_seed(inner)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.deeper()?;
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(self.fail(JsonError::DuplicateKey(key)));
            }
            let value = map.next_value_seed(inner)?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests;
