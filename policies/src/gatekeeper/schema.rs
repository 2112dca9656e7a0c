//! Validation of a constraint's `spec.parameters` against its template's
//! `openAPIV3Schema`, as the API server validates the constraint CRD
//! Gatekeeper generates: types, enums, required properties, array items,
//! `additionalProperties`, and the value bounds Kubernetes structural schemas
//! use. Unknown keywords are ignored; `x-kubernetes-preserve-unknown-fields`
//! and an absent `type` accept anything.

use serde_json::Value;

/// The first problem found, as `path: message`, or `None` when `value`
/// satisfies `schema`.
pub(crate) fn validate(schema: &Value, value: &Value) -> Option<String> {
    let mut errors = Vec::new();
    check(schema, value, "spec.parameters", &mut errors, 0);
    errors.into_iter().next()
}

fn type_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_matches(expected: &str, value: &Value) -> bool {
    match (expected, value) {
        ("object", Value::Object(_))
        | ("array", Value::Array(_))
        | ("string", Value::String(_))
        | ("boolean", Value::Bool(_))
        | ("number", Value::Number(_)) => true,
        ("integer", Value::Number(n)) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    }
}

fn check(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>, depth: usize) {
    // Schemas and parameters are small; the bound only guards against
    // adversarial nesting.
    if depth > 64 || !errors.is_empty() {
        return;
    }
    let Some(schema) = schema.as_object() else {
        return;
    };
    if value.is_null() && schema.get("nullable").and_then(Value::as_bool) == Some(true) {
        return;
    }
    if let Some(expected) = schema.get("type").and_then(Value::as_str)
        && !type_matches(expected, value)
    {
        errors.push(format!(
            "{path}: expected {expected}, got {}",
            type_of(value)
        ));
        return;
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        let allowed: Vec<String> = options.iter().map(Value::to_string).collect();
        errors.push(format!(
            "{path}: {value} is not one of {}",
            allowed.join(", ")
        ));
        return;
    }
    match value {
        Value::Object(map) => {
            if let Some(required) = schema.get("required").and_then(Value::as_array) {
                for key in required.iter().filter_map(Value::as_str) {
                    if !map.contains_key(key) {
                        errors.push(format!("{path}.{key}: required"));
                        return;
                    }
                }
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            for (key, item) in map {
                let child = format!("{path}.{key}");
                if let Some(sub) = properties.and_then(|p| p.get(key)) {
                    check(sub, item, &child, errors, depth + 1);
                } else if let Some(additional) = additional {
                    match additional {
                        Value::Bool(false) => {
                            errors.push(format!("{child}: unknown field"));
                        }
                        Value::Object(_) => check(additional, item, &child, errors, depth + 1),
                        _ => {}
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(sub, item, &format!("{path}[{i}]"), errors, depth + 1);
                }
            }
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && items.len() as u64 > max
            {
                errors.push(format!("{path}: more than {max} items"));
            }
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && (items.len() as u64) < min
            {
                errors.push(format!("{path}: fewer than {min} items"));
            }
        }
        Value::String(s) => {
            let len = s.chars().count() as u64;
            if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
                && len > max
            {
                errors.push(format!("{path}: longer than {max} characters"));
            }
            if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
                && len < min
            {
                errors.push(format!("{path}: shorter than {min} characters"));
            }
            if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
                && let Ok(re) = regex::Regex::new(pattern)
                && !re.is_match(s)
            {
                errors.push(format!("{path}: does not match {pattern:?}"));
            }
        }
        Value::Number(n) => {
            let v = n.as_f64().unwrap_or_default();
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
                && v > max
            {
                errors.push(format!("{path}: greater than {max}"));
            }
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
                && v < min
            {
                errors.push(format!("{path}: less than {min}"));
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "labels": {"type": "array", "items": {"type": "object", "properties": {
                    "key": {"type": "string"}, "allowedRegex": {"type": "string"}}}},
                "mode": {"type": "string", "enum": ["strict", "lax"]},
                "ratio": {"type": "number"},
                "max": {"type": "integer"},
                "anything": {"x-kubernetes-preserve-unknown-fields": true}
            }
        })
    }

    #[test]
    fn accepts_matching_parameters() {
        let params = json!({"labels": [{"key": "owner"}], "mode": "lax", "ratio": 2, "max": 3, "anything": [1, {"a": 2}], "extra": true});
        assert_eq!(validate(&schema(), &params), None);
    }

    #[test]
    fn reports_the_first_mismatch_with_its_path() {
        let err = validate(&schema(), &json!({"labels": [{"key": 5}]})).unwrap();
        assert_eq!(
            err,
            "spec.parameters.labels[0].key: expected string, got integer"
        );
        let err = validate(&schema(), &json!({"mode": "other"})).unwrap();
        assert!(
            err.starts_with("spec.parameters.mode: \"other\" is not one of"),
            "{err}"
        );
        let err = validate(&schema(), &json!({"max": 1.5})).unwrap();
        assert!(err.contains("expected integer"), "{err}");
        let err = validate(&schema(), &json!("flat")).unwrap();
        assert_eq!(err, "spec.parameters: expected object, got string");
    }
}
