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
            from_value(head, base, provider, &value)
        }
        _ => Ok(single(
            base,
            LlmRequest {
                provider,
                operation: operation(head.path),
                model: None,
                max_tokens: None,
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
    let stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("\"stream\" must be a boolean".into()),
    };
    Ok(single(
        base,
        LlmRequest {
            provider,
            operation: operation(head.path),
            model,
            max_tokens,
            stream,
        },
    ))
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
