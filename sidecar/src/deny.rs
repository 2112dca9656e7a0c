//! Refusals shaped for the protocol, so the agent understands them:
//!
//! - MCP and A2A requests get a JSON-RPC error with the same `id`, code
//!   [`DENIED_CODE`] and the rule and reason in `data`, with HTTP 200 (as
//!   JSON, or as one SSE event when the client accepts only
//!   `text/event-stream`), which MCP SDKs surface as an error of the call.
//!   Notifications and other messages without an id get HTTP 403 with the
//!   JSON-RPC error (id `null`), as the MCP transport specifies.
//! - Kubernetes clients get a `Status` object (`Failure`, `Forbidden`, 403).
//! - Anthropic clients get Anthropic's error shape; everything else (plain
//!   HTTP, OpenAI) gets `{"error": {...}}` with 403.
//! - Rate limits and exhausted budgets are 429 with `Retry-After`.
//! - Proxy failures are 502/504 (and 400, 408, 413, 415 for bad requests)
//!   with the same JSON shapes.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde_json::{Value, json};
use tollgate_policies::action::{LlmProvider, Protocol};

use crate::body::Payload;

/// The JSON-RPC error code of a Tollgate denial (in the implementation-
/// defined server error range).
pub const DENIED_CODE: i64 = -32040;
/// The JSON-RPC error code of a proxy failure (upstream unreachable or too
/// slow).
pub const PROXY_ERROR_CODE: i64 = -32041;

/// Why and by what a request is refused.
#[derive(Debug, Clone)]
pub struct Refusal<'a> {
    /// The HTTP status for non-JSON-RPC shapes.
    pub status: StatusCode,
    /// The rule (or `tollgate/...`).
    pub rule: &'a str,
    /// Why, for the agent.
    pub reason: &'a str,
    /// Seconds after which a retry may succeed (rate limits).
    pub retry_after: Option<u64>,
}

/// How the refusal must be shaped.
#[derive(Debug, Clone, Copy)]
pub enum Shape<'a> {
    /// JSON-RPC (MCP or A2A): the ids of the requests to answer (empty
    /// for notifications), and whether it was a batch.
    JsonRpc {
        /// The protocol.
        protocol: Protocol,
        /// Ids of the requests that expect an answer.
        ids: &'a [Value],
        /// Whether the request was a batch.
        batch: bool,
        /// Whether the client accepts only SSE.
        sse_only: bool,
    },
    /// A Kubernetes client.
    Kubernetes,
    /// An LLM client of `provider`.
    Llm(LlmProvider),
    /// Anything else.
    Plain,
}

/// The response refusing a request.
pub fn refuse(shape: Shape<'_>, refusal: &Refusal<'_>) -> Response<Payload> {
    match shape {
        Shape::JsonRpc {
            protocol,
            ids,
            batch,
            sse_only,
        } => jsonrpc(protocol, ids, batch, sse_only, refusal),
        Shape::Kubernetes => {
            let reason = match refusal.status.as_u16() {
                403 => "Forbidden",
                408 => "Timeout",
                413 => "RequestEntityTooLarge",
                415 => "UnsupportedMediaType",
                429 => "TooManyRequests",
                502 | 503 => "ServiceUnavailable",
                504 => "Timeout",
                _ => "BadRequest",
            };
            let body = json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": message(refusal),
                "reason": reason,
                "details": { "causes": [{ "reason": "TollgateDenied", "message": refusal.reason, "field": refusal.rule }] },
                "code": refusal.status.as_u16(),
            });
            json_response(refusal.status, &body, refusal.retry_after)
        }
        Shape::Llm(LlmProvider::Anthropic) => {
            let kind = match refusal.status.as_u16() {
                403 => "permission_error",
                413 => "request_too_large",
                429 => "rate_limit_error",
                502..=504 => "api_error",
                _ => "invalid_request_error",
            };
            let body = json!({
                "type": "error",
                "error": { "type": kind, "message": message(refusal) },
                "tollgate": { "rule": refusal.rule, "reason": refusal.reason },
            });
            json_response(refusal.status, &body, refusal.retry_after)
        }
        Shape::Llm(LlmProvider::Openai) | Shape::Plain => {
            let body = json!({
                "error": {
                    "type": "tollgate_denied",
                    "code": code_word(refusal.status),
                    "message": message(refusal),
                    "rule": refusal.rule,
                    "reason": refusal.reason,
                }
            });
            json_response(refusal.status, &body, refusal.retry_after)
        }
    }
}

/// The one-line message: who refused, by which rule, why.
fn message(refusal: &Refusal<'_>) -> String {
    format!(
        "denied by Tollgate rule {:?}: {}",
        refusal.rule, refusal.reason
    )
}

fn code_word(status: StatusCode) -> &'static str {
    match status.as_u16() {
        403 => "forbidden",
        408 => "request_timeout",
        413 => "body_too_large",
        415 => "unsupported_encoding",
        429 => "rate_limited",
        502 => "bad_gateway",
        504 => "gateway_timeout",
        _ => "bad_request",
    }
}

fn jsonrpc(
    protocol: Protocol,
    ids: &[Value],
    batch: bool,
    sse_only: bool,
    refusal: &Refusal<'_>,
) -> Response<Payload> {
    let code = if refusal.status.is_server_error() {
        PROXY_ERROR_CODE
    } else {
        DENIED_CODE
    };
    let error = |id: &Value| {
        json!({
            "jsonrpc": "2.0",
            "id": id,
            "error": {
                "code": code,
                "message": message(refusal),
                "data": {
                    "tollgate": true,
                    "protocol": protocol.as_str(),
                    "rule": refusal.rule,
                    "reason": refusal.reason,
                    "status": refusal.status.as_u16(),
                },
            },
        })
    };
    if ids.is_empty() {
        // Notifications and client responses expect no JSON-RPC answer:
        // the transport's HTTP status carries the refusal.
        let status = if refusal.status.is_success() {
            StatusCode::FORBIDDEN
        } else {
            refusal.status
        };
        return json_response(status, &error(&Value::Null), refusal.retry_after);
    }
    let body = if batch {
        Value::Array(ids.iter().map(error).collect())
    } else {
        ids.first().map_or(Value::Null, error)
    };
    if sse_only {
        let mut text = String::from("event: message\ndata: ");
        text.push_str(&body.to_string());
        text.push_str("\n\n");
        return response(StatusCode::OK, "text/event-stream", Bytes::from(text), None);
    }
    json_response(StatusCode::OK, &body, None)
}

fn json_response(status: StatusCode, body: &Value, retry_after: Option<u64>) -> Response<Payload> {
    let mut bytes = body.to_string().into_bytes();
    bytes.push(b'\n');
    response(status, "application/json", Bytes::from(bytes), retry_after)
}

fn response(
    status: StatusCode,
    content_type: &'static str,
    body: Bytes,
    retry_after: Option<u64>,
) -> Response<Payload> {
    let mut resp = Response::new(Payload::full(body));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-tollgate-decision", HeaderValue::from_static("deny"));
    if let Some(secs) = retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    async fn body_of(resp: Response<Payload>) -> (StatusCode, Value) {
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    fn refusal() -> Refusal<'static> {
        Refusal {
            status: StatusCode::FORBIDDEN,
            rule: "no-delete",
            reason: "deleting is not allowed",
            retry_after: None,
        }
    }

    #[tokio::test]
    async fn jsonrpc_errors_keep_the_id() {
        let ids = [json!(7)];
        let shape = Shape::JsonRpc {
            protocol: Protocol::Mcp,
            ids: &ids,
            batch: false,
            sse_only: false,
        };
        let (status, body) = body_of(refuse(shape, &refusal())).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["id"], 7);
        assert_eq!(body["error"]["code"], DENIED_CODE);
        assert_eq!(body["error"]["data"]["rule"], "no-delete");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("deleting is not allowed")
        );

        let ids = [json!("a"), json!(2)];
        let shape = Shape::JsonRpc {
            protocol: Protocol::A2a,
            ids: &ids,
            batch: true,
            sse_only: false,
        };
        let (_, body) = body_of(refuse(shape, &refusal())).await;
        assert_eq!(body.as_array().unwrap().len(), 2);
        assert_eq!(body[0]["id"], "a");

        let shape = Shape::JsonRpc {
            protocol: Protocol::Mcp,
            ids: &[],
            batch: false,
            sse_only: false,
        };
        let (status, body) = body_of(refuse(shape, &refusal())).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(body["id"], Value::Null);
    }

    #[tokio::test]
    async fn sse_only_clients_get_an_event() {
        let ids = [json!(1)];
        let shape = Shape::JsonRpc {
            protocol: Protocol::Mcp,
            ids: &ids,
            batch: false,
            sse_only: true,
        };
        let resp = refuse(shape, &refusal());
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/event-stream");
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let text = std::str::from_utf8(&bytes).unwrap();
        let data = text
            .strip_prefix("event: message\ndata: ")
            .unwrap()
            .trim_end();
        let v: Value = serde_json::from_str(data).unwrap();
        assert_eq!(v["error"]["code"], DENIED_CODE);
    }

    #[tokio::test]
    async fn kubernetes_clients_get_a_status() {
        let (status, body) = body_of(refuse(Shape::Kubernetes, &refusal())).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(body["kind"], "Status");
        assert_eq!(body["status"], "Failure");
        assert_eq!(body["reason"], "Forbidden");
        assert_eq!(body["code"], 403);
    }

    #[tokio::test]
    async fn http_and_llm_shapes() {
        let (status, body) = body_of(refuse(Shape::Plain, &refusal())).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(body["error"]["rule"], "no-delete");
        let limited = Refusal {
            status: StatusCode::TOO_MANY_REQUESTS,
            retry_after: Some(60),
            ..refusal()
        };
        let resp = refuse(Shape::Llm(LlmProvider::Anthropic), &limited);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "60");
        let (status, body) = body_of(resp).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(body["error"]["type"], "rate_limit_error");
    }
}
