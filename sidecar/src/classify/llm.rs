//! LLM provider APIs: OpenAI-style (`/v1/chat/completions`,
//! `/v1/responses`, and the rest of the family) and Anthropic
//! (`/v1/messages`): provider, operation, model, requested max tokens,
//! streaming.

use serde_json::Value;
use tollgate_policies::action::{Action, ActionKind, LlmProvider, LlmRequest, Protocol};

use super::{Call, Classified, Framing, RequestHead};

/// The provider a path belongs to, for the operations that generate text.
pub(super) fn provider_for_path(path: &str) -> Option<LlmProvider> {
    if path.ends_with("/chat/completions") || path.ends_with("/responses") {
        Some(LlmProvider::Openai)
    } else if path.ends_with("/messages") {
        Some(LlmProvider::Anthropic)
    } else {
        None
    }
}

/// The operation a path names.
fn operation(path: &str) -> String {
    const KNOWN: &[(&str, &str)] = &[
        ("/chat/completions", "chat.completions"),
        ("/responses", "responses"),
        ("/messages/count_tokens", "messages.count_tokens"),
        ("/messages", "messages"),
        ("/embeddings", "embeddings"),
        ("/completions", "completions"),
        ("/models", "models"),
    ];
    KNOWN
        .iter()
        .find(|(suffix, _)| path.ends_with(suffix))
        .map_or_else(|| path.to_owned(), |(_, op)| (*op).to_owned())
}

pub(super) fn classify(
    head: &RequestHead<'_>,
    base: Action,
    provider: Option<LlmProvider>,
    body: Option<&[u8]>,
    max_json_depth: u32,
) -> Result<Classified, String> {
    let provider = provider
        .or_else(|| provider_for_path(head.path))
        .unwrap_or(LlmProvider::Openai);
    match body {
        Some(bytes) if head.method != "GET" => {
            let value = super::json_body(head, bytes, max_json_depth)
                .map_err(|e| format!("LLM request body refused: {e}"))?;
            from_value(head, base, provider, &value, bytes.len())
        }
        _ => Ok(single(
            base,
            LlmRequest {
                provider,
                operation: operation(head.path),
                model: None,
                max_tokens: None,
                choices: 1,
                // No body, no prompt: nothing to generate from. A body that
                // was not inspected (or one on a GET) is not bounded.
                worst_case_tokens: (body.is_none() && matches!(head.method, "GET" | "HEAD"))
                    .then_some(0),
                stream: false,
            },
        )),
    }
}

pub(super) fn from_value(
    head: &RequestHead<'_>,
    base: Action,
    provider: LlmProvider,
    value: &Value,
    body_len: usize,
) -> Result<Classified, String> {
    let Value::Object(body) = value else {
        return Err("an LLM request body must be a JSON object".into());
    };
    let model = match body.get("model") {
        None => None,
        Some(Value::String(m)) => Some(m.clone()),
        Some(_) => return Err("\"model\" must be a string".into()),
    };
    let mut max_tokens = None;
    for key in ["max_completion_tokens", "max_output_tokens", "max_tokens"] {
        match body.get(key) {
            None | Some(Value::Null) => {}
            Some(v) => {
                let n = v
                    .as_u64()
                    .ok_or_else(|| format!("{key:?} must be a non-negative integer"))?;
                // When several are given, the largest counts: it is the
                // most the provider may be asked to generate.
                max_tokens = Some(max_tokens.map_or(n, |m: u64| m.max(n)));
            }
        }
    }
    let mut choices: u64 = 1;
    for key in ["n", "best_of"] {
        match body.get(key) {
            None | Some(Value::Null) => {}
            Some(v) => {
                let n = v
                    .as_u64()
                    .ok_or_else(|| format!("{key:?} must be a non-negative integer"))?;
                // Each generation may use the whole cap; `best_of`
                // generations are made and `n` returned, so the product
                // bounds both readings.
                choices = choices.saturating_mul(n.max(1));
            }
        }
    }
    let stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("\"stream\" must be a boolean".into()),
    };
    let operation = operation(head.path);
    let output = match operation.as_str() {
        "embeddings" | "models" | "messages.count_tokens" => Some(0),
        _ => max_tokens.map(|m| m.saturating_mul(choices)),
    };
    let input = input_bound(value, body_len);
    Ok(single(
        base,
        LlmRequest {
            provider,
            operation,
            model,
            max_tokens,
            choices,
            worst_case_tokens: input.zip(output).map(|(i, o)| i.saturating_add(o)),
            stream,
        },
    ))
}

/// Top-level fields that make the provider read input the body does not
/// carry: a stored conversation, a stored prompt, a code container, MCP
/// servers it connects to.
const STORED_INPUT_FIELDS: &[&str] = &[
    "previous_response_id",
    "conversation",
    "prompt",
    "container",
    "mcp_servers",
];

/// Fields whose value is content the provider fetches (unless it is an
/// inline `data:` URL, which the body carries).
const FETCHED_FIELDS: &[&str] = &["url", "image_url", "file_url", "file_id"];

/// Tool types the caller runs itself; any other tool (web search, file
/// search, code execution, remote MCP) runs at the provider and feeds its
/// results back as input.
const CLIENT_TOOL_TYPES: &[&str] = &["function", "custom"];

/// An upper bound on the input tokens of a request body of `len` bytes: a
/// token of text is never shorter than a byte, and every message, tool and
/// image the provider counts is in the body. `None` when the body makes the
/// provider read input it does not carry (stored conversations and prompts,
/// fetched URLs and files, provider-run tools).
fn input_bound(value: &Value, len: usize) -> Option<u64> {
    let Value::Object(top) = value else {
        return None;
    };
    if STORED_INPUT_FIELDS
        .iter()
        .any(|k| top.get(*k).is_some_and(|v| !v.is_null()))
    {
        return None;
    }
    if let Some(Value::Array(tools)) = top.get("tools") {
        for tool in tools {
            if let Some(kind) = tool.get("type").and_then(Value::as_str)
                && !CLIENT_TOOL_TYPES.contains(&kind)
            {
                return None;
            }
        }
    }
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(map) => {
                for (key, item) in map {
                    if FETCHED_FIELDS.contains(&key.as_str())
                        && item.as_str().is_some_and(|s| !s.starts_with("data:"))
                    {
                        return None;
                    }
                    stack.push(item);
                }
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    u64::try_from(len).ok()
}

fn single(base: Action, llm: LlmRequest) -> Classified {
    Classified {
        protocol: Protocol::Llm,
        framing: Framing::Plain,
        calls: vec![Call {
            action: Action {
                kind: ActionKind::Llm(llm),
                ..base
            },
            rpc_id: None,
        }],
    }
}
