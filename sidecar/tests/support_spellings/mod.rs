//! The spelling generator and property shared by the `json_spellings`
//! fuzz target and the `spellings` test.
//!
//! Equivalent spellings of one JSON-RPC request must never be decided more
//! leniently than the request itself. The input drives a small generator:
//! a canonical request (one message or a batch of MCP and A2A calls,
//! responses and notifications) and one re-spelling of it — whitespace, key
//! order, `\u` escapes (`\u0074ools/call`), `\/`, number spellings, batch
//! order, A2A 0.3 or 1.0 method names — or a non-strict form (a byte order
//! mark, UTF-16, `NaN`, `1e400`, a duplicate key, a lone surrogate,
//! trailing data). Both go through the sidecar's classifier and a policy
//! that denies `delete_repo` and task cancellation.
//!
//! The property: a spelling is never allowed when the canonical request is
//! not; a strict re-spelling of an allowed request is allowed; a non-strict
//! form is never allowed.
use std::time::Instant;

use http::HeaderMap;
use serde_json::{Map, Value, json};
use tollgate_policies::action::{ActionPolicy, Effect, Protocol};
use tollgate_sidecar::classify::{self, Known, RequestHead};

const POLICY: &str = r#"apiVersion: tollgate.dev/v1alpha1
kind: ActionPolicy
metadata: { name: spellings }
spec:
  rules:
    - { name: no-delete, effect: deny, protocol: mcp, match: { tools: [delete_repo] } }
    - { name: no-cancel, effect: deny, protocol: a2a, match: { methods: [CancelTask] } }
    - { name: mcp, effect: allow, protocol: mcp, match: { methods: ["*"] } }
    - { name: a2a, effect: allow, protocol: a2a, match: { methods: ["*"] } }
    - { name: host, effect: allow, protocol: http, match: { hosts: [fuzz.example] } }
"#;

/// A byte source: the fuzzer's input, then zeros.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn next(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn below(&mut self, n: u8) -> u8 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, one_in: u8) -> bool {
        self.below(one_in) == 0
    }
}

const TOOLS: &[&str] = &["read_repo", "delete_repo", "search"];
const A2A: &[(&str, &str)] = &[
    ("message/send", "SendMessage"),
    ("tasks/get", "GetTask"),
    ("tasks/cancel", "CancelTask"),
    ("tasks/list", "ListTasks"),
];

/// One message of the canonical request.
fn message(b: &mut Bytes<'_>, id: u64, v1: bool) -> Value {
    match b.below(6) {
        0 | 1 => json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": TOOLS[usize::from(b.below(3))], "arguments": {"repo": "r/é"}}}),
        2 => json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"}),
        3 => json!({"jsonrpc": "2.0", "method": "notifications/x"}),
        4 => json!({"jsonrpc": "2.0", "id": id, "result": {}}),
        _ => {
            let (old, new) = A2A[usize::from(b.below(4))];
            json!({"jsonrpc": "2.0", "id": id, "method": if v1 { new } else { old },
                "params": {"id": "t1"}})
        }
    }
}

/// Writes `v` as JSON, re-spelled as `b` says (always strict).
fn respell(b: &mut Bytes<'_>, v: &Value, out: &mut String) {
    let ws = |b: &mut Bytes<'_>, out: &mut String| {
        for _ in 0..b.below(3) {
            out.push([' ', '\t', '\n', '\r'][usize::from(b.below(4))]);
        }
    };
    ws(&mut *b, &mut *out);
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            if b.chance(2) {
                entries.reverse();
            }
            if entries.len() > 1 && b.chance(2) {
                let n = entries.len();
                entries.swap(usize::from(b.next()) % n, usize::from(b.next()) % n);
            }
            out.push('{');
            for (i, (k, val)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                ws(&mut *b, &mut *out);
                string(b, k, out);
                ws(&mut *b, &mut *out);
                out.push(':');
                respell(b, val, out);
            }
            ws(&mut *b, &mut *out);
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                respell(b, item, out);
            }
            ws(&mut *b, &mut *out);
            out.push(']');
        }
        Value::String(s) => string(b, s, out),
        Value::Number(n) => match (n.as_u64(), b.below(3)) {
            (Some(u), 1) => out.push_str(&format!("{u}.0")),
            (Some(u), 2) => out.push_str(&format!("{u}e0")),
            _ => out.push_str(&n.to_string()),
        },
        other => out.push_str(&other.to_string()),
    }
    ws(&mut *b, &mut *out);
}

fn string(b: &mut Bytes<'_>, s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match (c, b.below(4)) {
            ('"', _) => out.push_str("\\\""),
            ('\\', _) => out.push_str("\\\\"),
            ('/', 1) => out.push_str("\\/"),
            (c, 0) => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
            (c, _) if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            (c, _) => out.push(c),
        }
    }
    out.push('"');
}

/// A non-strict form of `canonical`, which must be refused.
fn unstrict(b: &mut Bytes<'_>, canonical: &str) -> Vec<u8> {
    let first_brace = canonical.find('{').unwrap_or(0);
    let (head, tail) = canonical.split_at(first_brace + 1);
    match b.below(8) {
        0 => [&b"\xef\xbb\xbf"[..], canonical.as_bytes()].concat(),
        1 => canonical
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect(),
        2 => format!("{head}\"x\":NaN,{tail}").into_bytes(),
        3 => format!("{head}\"x\":1e400,{tail}").into_bytes(),
        4 => format!("{head}\"x\":\"\\ud800\",{tail}").into_bytes(),
        5 => format!("{head}\"jsonrpc\":\"2.0\",{tail}").into_bytes(),
        6 => format!("{canonical} x").into_bytes(),
        _ => format!("{head}\"x\":-Infinity,{tail}").into_bytes(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Allowed,
    Denied,
    Refused,
}

fn decide(policy: &ActionPolicy, known: Known, body: &[u8]) -> Decision {
    let headers = HeaderMap::new();
    let head = RequestHead {
        method: "POST",
        scheme: "http",
        host: "fuzz.example",
        port: 80,
        path: "/rpc",
        query: None,
        headers: &headers,
        upgrade: None,
    };
    let route = match known {
        Known::Declared(..) => Some("tools"),
        Known::Undeclared => None,
    };
    match classify::classify(&head, route, known, Some(body), 32) {
        Err(_) => Decision::Refused,
        Ok(c) => {
            let now = Instant::now();
            if c.calls
                .iter()
                .all(|call| policy.evaluate(&call.action, now).effect == Effect::Allow)
            {
                Decision::Allowed
            } else {
                Decision::Denied
            }
        }
    }
}

/// Checks the property on the request and spellings `data` describes;
/// panics on a violation.
pub fn check(policy: &ActionPolicy, data: &[u8]) {
    let mut b = Bytes(data);
    let known = if b.chance(3) {
        Known::Declared(Protocol::Mcp, None)
    } else {
        Known::Undeclared
    };
    let n = 1 + usize::from(b.below(4));
    let batch = n > 1 || b.chance(2);
    let v1 = b.chance(2);
    let mut messages: Vec<Value> = (0..n).map(|i| message(&mut b, i as u64 + 1, v1)).collect();
    let canonical_value = if batch {
        Value::Array(messages.clone())
    } else {
        messages.pop().unwrap_or(Value::Object(Map::new()))
    };
    let canonical = canonical_value.to_string();
    let reference = decide(policy, known, canonical.as_bytes());

    // Re-spellings: the same messages, maybe in another order (and the
    // A2A methods in the other generation's names).
    let mut variant_value = canonical_value.clone();
    if let Value::Array(items) = &mut variant_value
        && items.len() > 1
        && b.chance(2)
    {
        let by = 1 + usize::from(b.next()) % (items.len() - 1);
        items.rotate_left(by);
    }
    if b.chance(2) {
        swap_a2a_names(&mut variant_value);
    }
    let mut strict = String::new();
    respell(&mut b, &variant_value, &mut strict);
    let got = decide(policy, known, strict.as_bytes());
    if reference != Decision::Allowed {
        assert_ne!(got, Decision::Allowed, "{canonical}\nallowed as\n{strict}");
    } else {
        assert_eq!(
            got,
            Decision::Allowed,
            "{canonical}\ndecided {got:?} as\n{strict}"
        );
    }

    let loose = unstrict(&mut b, &canonical);
    let got = decide(policy, known, &loose);
    assert_eq!(
        got,
        Decision::Refused,
        "{canonical}\nnot refused as\n{}",
        String::from_utf8_lossy(&loose)
    );
}

/// The policy every spelling is decided under.
pub fn policy() -> ActionPolicy {
    match ActionPolicy::parse(POLICY, "spellings.yaml") {
        Ok(p) => p,
        Err(e) => panic!("the policy must parse: {e}"),
    }
}

fn swap_a2a_names(v: &mut Value) {
    match v {
        Value::Array(items) => items.iter_mut().for_each(swap_a2a_names),
        Value::Object(map) => {
            if let Some(Value::String(m)) = map.get_mut("method") {
                let swapped = A2A.iter().find_map(|(old, new)| {
                    if m.as_str() == *old {
                        Some(*new)
                    } else if m.as_str() == *new {
                        Some(*old)
                    } else {
                        None
                    }
                });
                if let Some(name) = swapped {
                    *m = name.to_owned();
                }
            }
        }
        _ => {}
    }
}
