//! A2A (Agent2Agent) over JSON-RPC: `message/send`, `message/stream`,
//! `tasks/*`, and fetching the agent card.

use serde_json::Value;
use tollgate_policies::action::{A2aCall, Action, ActionKind, Protocol};

use super::jsonrpc::{self, Kind, Message, param_str};
use super::{Call, Classified, Framing, RequestHead};
use crate::json::parse_strict;

/// Whether `method` belongs to A2A (checked before MCP's, so the shared
/// `tasks/get`, `tasks/cancel` and `tasks/list` count as A2A when no route
/// says otherwise).
pub(super) fn is_a2a_method(method: &str) -> bool {
    method.starts_with("message/")
        || method.starts_with("agent/")
        || method.starts_with("tasks/pushNotificationConfig/")
        || matches!(
            method,
            "tasks/get" | "tasks/cancel" | "tasks/list" | "tasks/resubscribe"
        )
}

/// Paths of the agent card (A2A 0.3 and the earlier name).
const AGENT_CARD_PATHS: &[&str] = &["/.well-known/agent-card.json", "/.well-known/agent.json"];

pub(super) fn classify(
    head: &RequestHead<'_>,
    base: Action,
    agent: &str,
    body: Option<&[u8]>,
    max_json_depth: u32,
) -> Result<Classified, String> {
    match head.method {
        "POST" => {
            let body = body.ok_or("an A2A POST must carry a JSON-RPC message")?;
            let value = parse_strict(body, max_json_depth)
                .map_err(|e| format!("A2A request body refused: {e}"))?;
            from_value(base, agent, value)
        }
        "GET" if AGENT_CARD_PATHS.iter().any(|p| head.path.ends_with(p)) => {
            let action = Action {
                kind: ActionKind::A2a(A2aCall {
                    method: "$/agent-card".into(),
                    agent: agent.to_owned(),
                    ..A2aCall::default()
                }),
                ..base
            };
            Ok(Classified {
                protocol: Protocol::A2a,
                framing: Framing::Plain,
                calls: vec![Call {
                    action,
                    rpc_id: None,
                }],
            })
        }
        other => Err(format!(
            "{other} {} is not part of the A2A JSON-RPC binding (POST, or GET of the agent card)",
            head.path
        )),
    }
}

pub(super) fn from_value(base: Action, agent: &str, value: Value) -> Result<Classified, String> {
    let (batch, messages) = jsonrpc::messages(&value)?;
    let calls = messages.iter().map(|m| call(&base, agent, m)).collect();
    Ok(Classified {
        protocol: Protocol::A2a,
        framing: if batch {
            Framing::JsonRpcBatch
        } else {
            Framing::JsonRpc
        },
        calls,
    })
}

fn call(base: &Action, agent: &str, m: &Message<'_>) -> Call {
    let method = m.method.unwrap_or("$/response");
    let message = m.params.and_then(|p| p.get("message"));
    let from_message = |key: &str| message.and_then(|msg| msg.get(key)).and_then(Value::as_str);
    let task_id = match method {
        "message/send" | "message/stream" => from_message("taskId"),
        _ => param_str(m.params, "id").or_else(|| param_str(m.params, "taskId")),
    };
    let a2a = A2aCall {
        method: method.to_owned(),
        agent: agent.to_owned(),
        task_id: task_id.map(str::to_owned),
        context_id: from_message("contextId").map(str::to_owned),
    };
    Call {
        action: Action {
            kind: ActionKind::A2a(a2a),
            ..base.clone()
        },
        rpc_id: match m.kind {
            Kind::Request => m.id.cloned(),
            Kind::Notification | Kind::Response => None,
        },
    }
}
