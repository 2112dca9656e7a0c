//! Rego values, and their conversion from and to `serde_json::Value`.
//!
//! Conversion walks the JSON tree once and builds the interpreter's
//! reference-counted values directly (no text round-trip), so a request is
//! converted once and then shared by every evaluation at the cost of a
//! pointer copy.

use std::collections::BTreeMap;

use super::RegoError;

/// The deepest JSON nesting accepted as input. Kubernetes objects stay far
/// below it; the bound keeps the interpreter's recursion within its stack.
pub const MAX_DEPTH: usize = 256;

/// A Rego value: JSON plus sets, and `undefined`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Value(regorus::Value);

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.to_json())
    }
}

impl Default for Value {
    fn default() -> Self {
        Value::undefined()
    }
}

impl Value {
    /// The undefined value (no result).
    pub fn undefined() -> Self {
        Value(regorus::Value::Undefined)
    }

    /// An empty object.
    pub fn empty_object() -> Self {
        Value(regorus::Value::new_object())
    }

    /// A string.
    pub fn string(s: &str) -> Self {
        Value(regorus::Value::from(s))
    }

    /// An object from string keys.
    pub fn object<'a>(entries: impl IntoIterator<Item = (&'a str, Value)>) -> Self {
        let map: BTreeMap<regorus::Value, regorus::Value> = entries
            .into_iter()
            .map(|(k, v)| (regorus::Value::from(k), v.0))
            .collect();
        Value(regorus::Value::from(map))
    }

    /// Converts JSON, refusing nesting deeper than [`MAX_DEPTH`].
    pub fn from_json(json: &serde_json::Value) -> Result<Self, RegoError> {
        convert(json, 0).map(Value)
    }

    /// Converts to JSON. Sets become arrays; non-string object keys become
    /// their JSON text; `undefined` becomes `null`.
    pub fn to_json(&self) -> serde_json::Value {
        to_json(&self.0)
    }

    /// True when undefined.
    pub fn is_undefined(&self) -> bool {
        matches!(self.0, regorus::Value::Undefined)
    }

    /// True for objects.
    pub fn is_object(&self) -> bool {
        matches!(self.0, regorus::Value::Object(_))
    }

    /// The string, for strings.
    pub fn as_str(&self) -> Option<&str> {
        match &self.0 {
            regorus::Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The boolean, for booleans.
    pub fn as_bool(&self) -> Option<bool> {
        match &self.0 {
            regorus::Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The member `key` of an object.
    pub fn field(&self, key: &str) -> Option<Value> {
        match &self.0 {
            regorus::Value::Object(o) => o.get(&regorus::Value::from(key)).cloned().map(Value),
            _ => None,
        }
    }

    /// The elements of an array or a set (sets in their sorted order);
    /// empty for anything else.
    pub fn elements(&self) -> Vec<Value> {
        match &self.0 {
            regorus::Value::Array(a) => a.iter().cloned().map(Value).collect(),
            regorus::Value::Set(s) => s.iter().cloned().map(Value).collect(),
            _ => Vec::new(),
        }
    }

    pub(crate) fn from_regorus(value: regorus::Value) -> Self {
        Value(value)
    }

    pub(crate) fn as_regorus(&self) -> &regorus::Value {
        &self.0
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::string(s)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value(regorus::Value::from(b))
    }
}

fn convert(json: &serde_json::Value, depth: usize) -> Result<regorus::Value, RegoError> {
    if depth > MAX_DEPTH {
        return Err(RegoError::InvalidInput(format!(
            "JSON nested deeper than {MAX_DEPTH} levels"
        )));
    }
    Ok(match json {
        serde_json::Value::Null => regorus::Value::Null,
        serde_json::Value::Bool(b) => regorus::Value::from(*b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                regorus::Value::from(i)
            } else if let Some(u) = n.as_u64() {
                regorus::Value::from(u)
            } else {
                // Finite by construction: serde_json has no NaN or infinity.
                regorus::Value::from(n.as_f64().unwrap_or_default())
            }
        }
        serde_json::Value::String(s) => regorus::Value::from(s.as_str()),
        serde_json::Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                out.push(convert(item, depth + 1)?);
            }
            regorus::Value::from(out)
        }
        serde_json::Value::Object(map) => {
            let mut out = BTreeMap::new();
            for (k, v) in map {
                out.insert(regorus::Value::from(k.as_str()), convert(v, depth + 1)?);
            }
            regorus::Value::from(out)
        }
    })
}

fn number_to_json(value: &regorus::Value) -> serde_json::Value {
    if let Ok(i) = value.as_i64() {
        return serde_json::Value::from(i);
    }
    if let Ok(u) = value.as_u64() {
        return serde_json::Value::from(u);
    }
    value
        .as_f64()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(serde_json::Value::Null, serde_json::Value::Number)
}

fn to_json(value: &regorus::Value) -> serde_json::Value {
    match value {
        regorus::Value::Null | regorus::Value::Undefined => serde_json::Value::Null,
        regorus::Value::Bool(b) => serde_json::Value::Bool(*b),
        regorus::Value::Number(_) => number_to_json(value),
        regorus::Value::String(s) => serde_json::Value::String(s.to_string()),
        regorus::Value::Array(a) => serde_json::Value::Array(a.iter().map(to_json).collect()),
        regorus::Value::Set(s) => serde_json::Value::Array(s.iter().map(to_json).collect()),
        regorus::Value::Object(o) => {
            let mut map = serde_json::Map::new();
            for (k, v) in o.iter_sorted() {
                let key = match k {
                    regorus::Value::String(s) => s.to_string(),
                    other => to_json(other).to_string(),
                };
                map.insert(key, to_json(v));
            }
            serde_json::Value::Object(map)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_json() {
        let doc = json!({"a": [1, -2, 3.5, "x", null, true], "b": {"c": {}}, "u": 18446744073709551615u64});
        let value = Value::from_json(&doc).unwrap();
        assert_eq!(value.to_json(), doc);
        assert_eq!(value.field("b").unwrap().to_json(), json!({"c": {}}));
        assert_eq!(value.field("a").unwrap().elements().len(), 6);
    }

    #[test]
    fn refuses_nesting_past_the_limit() {
        let mut doc = json!(1);
        for _ in 0..=MAX_DEPTH + 1 {
            doc = json!([doc]);
        }
        let err = Value::from_json(&doc).unwrap_err();
        assert!(matches!(err, RegoError::InvalidInput(_)), "{err}");
    }
}
