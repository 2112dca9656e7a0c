//! A2A (Agent2Agent), both protocol generations and both HTTP bindings:
//! JSON-RPC with A2A 0.3 names (`message/send`, `tasks/get`, ...) or A2A
//! 1.0 names (`SendMessage`, `GetTask`, ...), the A2A 1.0 HTTP+JSON
//! binding (`POST /message:send`, `GET /tasks/{id}`,
//! `POST /tasks/{id}:cancel`, ..., optionally under a tenant or version
//! prefix), and fetching the agent card. Every spelling of one operation
//! becomes one canonical method name (see
//! [`tollgate_policies::action::A2A_METHODS`]).

use serde_json::Value;
use tollgate_policies::action::{A2aCall, Action, ActionKind, Protocol, canonical_a2a_method};

use super::jsonrpc::{self, Kind, Message};
use super::{Call, Classified, Framing, RequestHead};

/// Whether `method` belongs to A2A (checked before MCP's, so the shared
/// `tasks/get`, `tasks/cancel` and `tasks/list` count as A2A when no route
/// says otherwise).
pub(super) fn is_a2a_method(method: &str) -> bool {
    canonical_a2a_method(method).is_some()
        || method.starts_with("message/")
        || method.starts_with("agent/")
        || method.starts_with("tasks/pushNotificationConfig/")
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
    if let Some(op) = rest_operation(head.method, head.path, false)? {
        return rest(head, base, agent, op, body, max_json_depth);
    }
    match head.method {
        "POST" => {
            let body = body.ok_or("an A2A POST must carry a JSON-RPC message")?;
            let value = super::json_body(head, body, max_json_depth)
                .map_err(|e| format!("A2A request body refused: {e}"))?;
            from_value(base, agent, value)
        }
        "GET" if AGENT_CARD_PATHS.iter().any(|p| head.path.ends_with(p)) => Ok(single(
            base,
            A2aCall {
                method: "$/agent-card".into(),
                agent: agent.to_owned(),
                ..A2aCall::default()
            },
        )),
        other => Err(format!(
            "{other} {} is not part of A2A (a JSON-RPC POST, an HTTP+JSON operation, or GET of the agent card)",
            head.path
        )),
    }
}

/// An A2A HTTP+JSON operation on an undeclared host: only the
/// `:send`/`:stream`/`:cancel`/`:subscribe` verbs, which no other common
/// API spells that way (a plain `GET /tasks/x` stays plain HTTP there).
pub(super) fn detect_rest(
    head: &RequestHead<'_>,
    base: Action,
    agent: &str,
    body: Option<&[u8]>,
    max_json_depth: u32,
) -> Option<Result<Classified, String>> {
    match rest_operation(head.method, head.path, true) {
        Ok(None) => None,
        Ok(Some(op)) => Some(rest(head, base, agent, op, body, max_json_depth)),
        Err(e) => Some(Err(e)),
    }
}

/// One HTTP+JSON operation: its canonical method and the task the path
/// names.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RestOp {
    method: &'static str,
    task_id: Option<String>,
}

/// The HTTP+JSON operation a request is, judged on the path as the server
/// routes it (percent-decoded, so `t1%3Acancel` is `t1:cancel`), matched
/// at the end of the path so any tenant or version prefix is allowed. Two
/// readings that disagree (`GET /tasks/tasks`: task `tasks`, or the task
/// list of tenant `tasks`) are refused.
fn rest_operation(method: &str, path: &str, verbs_only: bool) -> Result<Option<RestOp>, String> {
    let decoded = percent_decode(path);
    let segments: Vec<&str> = decoded.split('/').filter(|s| !s.is_empty()).collect();
    let mut found: Vec<RestOp> = Vec::new();
    let mut add = |op: RestOp| {
        if !found.contains(&op) {
            found.push(op);
        }
    };
    let task = |id: &str| Some(id.to_owned());
    match segments.as_slice() {
        [.., last] if method == "POST" && *last == "message:send" => add(RestOp {
            method: "message/send",
            task_id: None,
        }),
        [.., last] if method == "POST" && *last == "message:stream" => add(RestOp {
            method: "message/stream",
            task_id: None,
        }),
        _ => {}
    }
    if let [.., "tasks", last] = segments.as_slice() {
        if let Some(id) = last.strip_suffix(":cancel").filter(|i| !i.is_empty())
            && method == "POST"
        {
            add(RestOp {
                method: "tasks/cancel",
                task_id: task(id),
            });
        }
        if let Some(id) = last.strip_suffix(":subscribe").filter(|i| !i.is_empty())
            && matches!(method, "GET" | "POST")
        {
            add(RestOp {
                method: "tasks/resubscribe",
                task_id: task(id),
            });
        }
    }
    if !verbs_only {
        match (method, segments.as_slice()) {
            ("GET", [.., "tasks", id]) => add(RestOp {
                method: "tasks/get",
                task_id: task(id),
            }),
            ("GET", [.., "tasks"]) => add(RestOp {
                method: "tasks/list",
                task_id: None,
            }),
            ("GET", [.., "extendedAgentCard"] | [.., "v1", "card"]) => add(RestOp {
                method: "agent/getAuthenticatedExtendedCard",
                task_id: None,
            }),
            _ => {}
        }
        match (method, segments.as_slice()) {
            ("GET", [.., "tasks", id, "pushNotificationConfigs", _]) => add(RestOp {
                method: "tasks/pushNotificationConfig/get",
                task_id: task(id),
            }),
            ("DELETE", [.., "tasks", id, "pushNotificationConfigs", _]) => add(RestOp {
                method: "tasks/pushNotificationConfig/delete",
                task_id: task(id),
            }),
            ("POST", [.., "tasks", id, "pushNotificationConfigs"]) => add(RestOp {
                method: "tasks/pushNotificationConfig/set",
                task_id: task(id),
            }),
            ("GET", [.., "tasks", id, "pushNotificationConfigs"]) => add(RestOp {
                method: "tasks/pushNotificationConfig/list",
                task_id: task(id),
            }),
            _ => {}
        }
    }
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => Err(format!(
            "{method} {path} is ambiguous: it reads as more than one A2A operation ({})",
            found
                .iter()
                .map(|o| o.method)
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Percent-decodes a path the way Python servers do before routing
/// (`%2F` included; invalid UTF-8 becomes U+FFFD).
fn percent_decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%'
            && let (Some(&h), Some(&l)) = (bytes.get(i + 1), bytes.get(i + 2))
            && let (Some(hv), Some(lv)) = ((h as char).to_digit(16), (l as char).to_digit(16))
        {
            out.push((hv * 16 + lv) as u8);
            i += 3;
            continue;
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn rest(
    head: &RequestHead<'_>,
    base: Action,
    agent: &str,
    op: RestOp,
    body: Option<&[u8]>,
    max_json_depth: u32,
) -> Result<Classified, String> {
    let value = match body {
        Some(bytes) if !bytes.is_empty() => super::json_body(head, bytes, max_json_depth)
            .map_err(|e| format!("A2A request body refused: {e}"))?,
        _ => Value::Null,
    };
    let mut call = A2aCall {
        method: op.method.to_owned(),
        agent: agent.to_owned(),
        task_id: op.task_id,
        context_id: None,
    };
    if matches!(op.method, "message/send" | "message/stream") {
        let (task, context) = message_ids(Some(&value))?;
        call.task_id = task;
        call.context_id = context;
    }
    Ok(single(base, call))
}

fn single(base: Action, call: A2aCall) -> Classified {
    Classified {
        protocol: Protocol::A2a,
        framing: Framing::Plain,
        calls: vec![Call {
            action: Action {
                kind: ActionKind::A2a(call),
                ..base
            },
            rpc_id: None,
        }],
    }
}

pub(super) fn from_value(base: Action, agent: &str, value: Value) -> Result<Classified, String> {
    let (batch, messages) = jsonrpc::messages(&value)?;
    let calls = messages
        .iter()
        .map(|m| call(&base, agent, m))
        .collect::<Result<Vec<_>, _>>()?;
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

/// A string field spelled either in camelCase or in snake_case (protobuf
/// JSON reads both); two spellings with different values are refused.
fn field<'a>(obj: Option<&'a Value>, camel: &str, snake: &str) -> Result<Option<&'a str>, String> {
    let Some(obj) = obj else {
        return Ok(None);
    };
    let a = obj.get(camel).and_then(Value::as_str);
    let b = if camel == snake {
        None
    } else {
        obj.get(snake).and_then(Value::as_str)
    };
    match (a, b) {
        (Some(a), Some(b)) if a != b => Err(format!(
            "ambiguous A2A request: {camel:?} and {snake:?} name different values"
        )),
        (a, b) => Ok(a.or(b)),
    }
}

/// The task and context a message names (`message` in A2A 0.3 and 1.0;
/// the 0.3 protobuf field is also readable as `request`).
fn message_ids(params: Option<&Value>) -> Result<(Option<String>, Option<String>), String> {
    let message = match params {
        Some(p) => match (p.get("message"), p.get("request")) {
            (Some(_), Some(_)) => {
                return Err("ambiguous A2A request: both \"message\" and \"request\"".into());
            }
            (m, r) => m.or(r),
        },
        None => None,
    };
    let task = field(message, "taskId", "task_id")?;
    let context = field(message, "contextId", "context_id")?;
    Ok((task.map(str::to_owned), context.map(str::to_owned)))
}

fn call(base: &Action, agent: &str, m: &Message<'_>) -> Result<Call, String> {
    let sent = m.method.unwrap_or("$/response");
    let method = canonical_a2a_method(sent).unwrap_or(sent);
    let v1 = method != sent;
    let params = m.params;
    let (task_id, context_id) = match method {
        "message/send" | "message/stream" => message_ids(params)?,
        "tasks/list" => (
            None,
            field(params, "contextId", "context_id")?.map(str::to_owned),
        ),
        // A2A 1.0 names the task in `taskId` (`id` is the config); A2A
        // 0.3 in `id`, except `set`, whose params are the config itself.
        m if m.starts_with("tasks/pushNotificationConfig/") => {
            let task = if v1 || m == "tasks/pushNotificationConfig/set" {
                field(params, "taskId", "task_id")?
            } else {
                field(params, "id", "id")?
            };
            (task.map(str::to_owned), None)
        }
        _ => {
            let task = match field(params, "id", "id")? {
                Some(id) => Some(id),
                None => field(params, "taskId", "task_id")?,
            };
            (task.map(str::to_owned), None)
        }
    };
    let a2a = A2aCall {
        method: method.to_owned(),
        agent: agent.to_owned(),
        task_id,
        context_id,
    };
    Ok(Call {
        action: Action {
            kind: ActionKind::A2a(a2a),
            ..base.clone()
        },
        rpc_id: match m.kind {
            Kind::Request => m.id.cloned(),
            Kind::Notification | Kind::Response => None,
        },
    })
}
