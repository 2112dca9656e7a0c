//! JSON-RPC 2.0 framing shared by MCP and A2A: single messages and batches,
//! requests, notifications and responses.

use serde_json::Value;

/// What a JSON-RPC message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A request (has an id; expects a response).
    Request,
    /// A notification (no id; no response).
    Notification,
    /// A response the client posts back to a server-initiated request.
    Response,
}

/// One parsed message, borrowing from the body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Message<'a> {
    pub(crate) kind: Kind,
    pub(crate) method: Option<&'a str>,
    pub(crate) id: Option<&'a Value>,
    pub(crate) params: Option<&'a Value>,
}

/// The largest batch accepted.
pub(crate) const MAX_BATCH: usize = 256;

/// Splits a body into messages; `true` when it was a batch.
pub(crate) fn messages(value: &Value) -> Result<(bool, Vec<Message<'_>>), String> {
    match value {
        Value::Array(items) => {
            if items.is_empty() {
                return Err("empty JSON-RPC batch".into());
            }
            if items.len() > MAX_BATCH {
                return Err(format!(
                    "JSON-RPC batch of {} messages is over the limit of {MAX_BATCH}",
                    items.len()
                ));
            }
            let msgs = items
                .iter()
                .enumerate()
                .map(|(i, m)| message(m).map_err(|e| format!("batch item {i}: {e}")))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((true, msgs))
        }
        other => Ok((false, vec![message(other)?])),
    }
}

fn message(value: &Value) -> Result<Message<'_>, String> {
    let Value::Object(obj) = value else {
        return Err("a JSON-RPC message must be an object".into());
    };
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err("not JSON-RPC 2.0 (\"jsonrpc\": \"2.0\" is missing)".into());
    }
    let id = obj.get("id");
    if let Some(id) = id
        && !(id.is_string() || id.is_number() || id.is_null())
    {
        return Err("a JSON-RPC id must be a string, a number or null".into());
    }
    let params = obj.get("params");
    if let Some(p) = params
        && !(p.is_object() || p.is_array())
    {
        return Err("JSON-RPC params must be an object or an array".into());
    }
    let has_result = obj.contains_key("result") || obj.contains_key("error");
    match obj.get("method") {
        Some(Value::String(method)) => {
            if has_result {
                return Err("a JSON-RPC message cannot be both a request and a response".into());
            }
            if method.is_empty() {
                return Err("empty JSON-RPC method".into());
            }
            let kind = if id.is_some() {
                Kind::Request
            } else {
                Kind::Notification
            };
            Ok(Message {
                kind,
                method: Some(method),
                id,
                params,
            })
        }
        Some(_) => Err("the JSON-RPC method must be a string".into()),
        None if has_result && id.is_some() => Ok(Message {
            kind: Kind::Response,
            method: None,
            id,
            params: None,
        }),
        None => Err("a JSON-RPC message needs a method, or a result/error and an id".into()),
    }
}

/// The `method` of every object in a body (one message or a batch),
/// whether or not it says `"jsonrpc": "2.0"`, for recognising the protocol.
pub(crate) fn methods(value: &Value) -> Vec<&str> {
    let items = match value {
        Value::Array(items) => items.as_slice(),
        other => std::slice::from_ref(other),
    };
    items
        .iter()
        .filter_map(|m| m.get("method").and_then(Value::as_str))
        .collect()
}

/// A string field of `params`.
pub(crate) fn param_str<'a>(params: Option<&'a Value>, key: &str) -> Option<&'a str> {
    params?.get(key)?.as_str()
}
