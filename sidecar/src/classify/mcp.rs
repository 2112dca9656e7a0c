//! MCP over Streamable HTTP: JSON-RPC POSTs (single or batch, answered as
//! JSON or SSE), the GET that opens the server-to-client stream, and the
//! DELETE that ends a session.

use serde_json::Value;
use tollgate_policies::action::{Action, ActionKind, McpCall, Protocol};

use super::jsonrpc::{self, Kind, Message, param_str};
use super::{Call, Classified, Framing, RequestHead};

/// MCP method families, for recognising undeclared MCP traffic.
const PREFIXES: &[&str] = &[
    "tools/",
    "resources/",
    "prompts/",
    "notifications/",
    "completion/",
    "logging/",
    "sampling/",
    "roots/",
    "elicitation/",
];

/// Whether `method` belongs to MCP.
pub(super) fn is_mcp_method(method: &str) -> bool {
    method == "initialize" || method == "ping" || PREFIXES.iter().any(|p| method.starts_with(p))
}

pub(super) fn classify(
    head: &RequestHead<'_>,
    base: Action,
    server: &str,
    body: Option<&[u8]>,
    max_json_depth: u32,
) -> Result<Classified, String> {
    match head.method {
        "POST" => {
            let body = body.ok_or("an MCP POST must carry a JSON-RPC message")?;
            let value = super::json_body(head, body, max_json_depth)
                .map_err(|e| format!("MCP request body refused: {e}"))?;
            from_value(base, server, value)
        }
        "GET" => Ok(transport(base, server, "$/listen")),
        "DELETE" => Ok(transport(base, server, "$/close")),
        other => Err(format!(
            "{other} is not part of MCP Streamable HTTP (POST, GET, DELETE)"
        )),
    }
}

pub(super) fn from_value(base: Action, server: &str, value: Value) -> Result<Classified, String> {
    let (batch, messages) = jsonrpc::messages(&value)?;
    let calls = messages
        .iter()
        .map(|m| call(&base, server, m))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Classified {
        protocol: Protocol::Mcp,
        framing: if batch {
            Framing::JsonRpcBatch
        } else {
            Framing::JsonRpc
        },
        calls,
    })
}

fn transport(base: Action, server: &str, method: &str) -> Classified {
    let action = Action {
        kind: ActionKind::Mcp(McpCall {
            method: method.to_owned(),
            server: server.to_owned(),
            ..McpCall::default()
        }),
        ..base
    };
    Classified {
        protocol: Protocol::Mcp,
        framing: Framing::Plain,
        calls: vec![Call {
            action,
            rpc_id: None,
        }],
    }
}

fn call(base: &Action, server: &str, m: &Message<'_>) -> Result<Call, String> {
    let method = m.method.unwrap_or("$/response");
    let mut mcp = McpCall {
        method: method.to_owned(),
        server: server.to_owned(),
        ..McpCall::default()
    };
    match method {
        "tools/call" => {
            let name = param_str(m.params, "name")
                .ok_or("tools/call needs params.name (the tool's name)")?;
            mcp.tool = Some(name.to_owned());
            match m.params.and_then(|p| p.get("arguments")) {
                None | Some(Value::Null) => {}
                Some(args @ Value::Object(_)) => mcp.arguments = Some(args.clone()),
                Some(_) => return Err("tools/call params.arguments must be an object".into()),
            }
        }
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
            let uri =
                param_str(m.params, "uri").ok_or_else(|| format!("{method} needs params.uri"))?;
            mcp.uri = Some(uri.to_owned());
        }
        "prompts/get" => {
            let name = param_str(m.params, "name").ok_or("prompts/get needs params.name")?;
            mcp.prompt = Some(name.to_owned());
        }
        _ => {}
    }
    Ok(Call {
        action: Action {
            kind: ActionKind::Mcp(mcp),
            ..base.clone()
        },
        rpc_id: match m.kind {
            Kind::Request => m.id.cloned(),
            Kind::Notification | Kind::Response => None,
        },
    })
}
