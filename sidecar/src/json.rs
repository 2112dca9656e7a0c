//! Strict JSON for classification: duplicate object keys and nesting beyond
//! a bound are refused, because two parsers that disagree on
//! `{"method":"tools/list","method":"tools/call"}` are a policy bypass.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Why a body is not acceptable JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// Not JSON at all (or trailing data).
    #[error("malformed JSON: {0}")]
    Syntax(String),
    /// An object repeats a key, which parsers resolve differently.
    #[error("ambiguous JSON: duplicate key {0:?}")]
    DuplicateKey(String),
    /// Nested deeper than allowed.
    #[error("JSON nested deeper than {0} levels")]
    TooDeep(u32),
}

/// Parses `bytes` as one JSON value, refusing duplicate keys and nesting
/// deeper than `max_depth`.
pub fn parse_strict(bytes: &[u8], max_depth: u32) -> Result<Value, JsonError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Strict {
        depth: 0,
        max_depth,
    }
    .deserialize(&mut de)
    .map_err(classify_error)?;
    de.end().map_err(|e| JsonError::Syntax(e.to_string()))?;
    Ok(value)
}

const DUPLICATE: &str = "\u{1}duplicate-key\u{1}";
const TOO_DEEP: &str = "\u{1}too-deep\u{1}";

fn classify_error(e: serde_json::Error) -> JsonError {
    let text = e.to_string();
    if let Some(rest) = text.strip_prefix(DUPLICATE) {
        let key = rest.split(" at line ").next().unwrap_or(rest);
        return JsonError::DuplicateKey(key.to_owned());
    }
    if let Some(rest) = text.strip_prefix(TOO_DEEP) {
        let depth = rest
            .split(" at line ")
            .next()
            .and_then(|d| d.parse().ok())
            .unwrap_or(0);
        return JsonError::TooDeep(depth);
    }
    if text.starts_with("recursion limit exceeded") {
        return JsonError::TooDeep(128);
    }
    JsonError::Syntax(text)
}

#[derive(Clone, Copy)]
struct Strict {
    depth: u32,
    max_depth: u32,
}

impl Strict {
    fn deeper<E: de::Error>(self) -> Result<Strict, E> {
        if self.depth >= self.max_depth {
            return Err(E::custom(format_args!("{TOO_DEEP}{}", self.max_depth)));
        }
        Ok(Strict {
            depth: self.depth + 1,
            max_depth: self.max_depth,
        })
    }
}

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
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

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
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
                return Err(de::Error::custom(format_args!("{DUPLICATE}{key}")));
            }
            let value = map.next_value_seed(inner)?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_json() {
        let v = parse_strict(br#"{"a":[1,2.5,"x",null,true],"b":{"c":-3}}"#, 8).unwrap();
        assert_eq!(v["a"][1], 2.5);
        assert_eq!(v["b"]["c"], -3);
    }

    #[test]
    fn refuses_duplicate_keys_at_any_depth() {
        assert_eq!(
            parse_strict(br#"{"method":"tools/list","method":"tools/call"}"#, 8),
            Err(JsonError::DuplicateKey("method".into()))
        );
        assert_eq!(
            parse_strict(br#"{"params":{"arguments":{"p":"/a","p":"/b"}}}"#, 8),
            Err(JsonError::DuplicateKey("p".into()))
        );
        // Keys equal after unescaping are duplicates too.
        assert_eq!(
            parse_strict(br#"{"method":1,"\u006dethod":2}"#, 8),
            Err(JsonError::DuplicateKey("method".into()))
        );
    }

    #[test]
    fn bounds_nesting() {
        let deep = format!("{}{}", "[".repeat(10), "]".repeat(10));
        assert!(parse_strict(deep.as_bytes(), 10).is_ok());
        assert_eq!(parse_strict(deep.as_bytes(), 9), Err(JsonError::TooDeep(9)));
        let very = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
        assert!(matches!(
            parse_strict(very.as_bytes(), 128),
            Err(JsonError::TooDeep(_))
        ));
    }

    #[test]
    fn refuses_trailing_data_and_garbage() {
        assert!(matches!(
            parse_strict(b"{} {}", 8),
            Err(JsonError::Syntax(_))
        ));
        assert!(matches!(
            parse_strict(b"\xff", 8),
            Err(JsonError::Syntax(_))
        ));
        assert!(matches!(parse_strict(b"", 8), Err(JsonError::Syntax(_))));
    }
}
