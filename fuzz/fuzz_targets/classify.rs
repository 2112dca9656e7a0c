//! The sidecar's classifier on arbitrary requests: a request line, headers
//! and a body, under every recognition mode (declared MCP, A2A, Kubernetes,
//! LLM, HTTP routes, and shape detection). It must never panic.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use tollgate_sidecar::classify::{self, Known, RequestHead, Recognition};
use tollgate_sidecar::json::parse_strict;
use tollgate_policies::action::{LlmProvider, Protocol};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let (head, body) = match text.split_once("\n\n") {
        Some((h, b)) => (h, Some(b.as_bytes())),
        None => (text.as_ref(), None),
    };
    let mut lines = head.lines();
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.splitn(2, ' ');
    let method = parts.next().unwrap_or("GET");
    let target = parts.next().unwrap_or("/");
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let mut headers = HeaderMap::new();
    for line in lines {
        if let Some((k, v)) = line.split_once(':')
            && let (Ok(k), Ok(v)) = (HeaderName::from_bytes(k.trim().as_bytes()), HeaderValue::from_str(v.trim()))
        {
            headers.append(k, v);
        }
    }
    let path = classify::normalize_path(path);
    let known = match mode % 8 {
        0 => Known::Declared(Protocol::Mcp, None),
        1 => Known::Declared(Protocol::A2a, None),
        2 => Known::Declared(Protocol::Kubernetes, None),
        3 => Known::Declared(Protocol::Llm, Some(LlmProvider::Anthropic)),
        4 => Known::Declared(Protocol::Llm, None),
        5 => Known::Declared(Protocol::Http, None),
        _ => Recognition::default().known(None, "fuzz.example", 443),
    };
    let head = RequestHead {
        method,
        scheme: if mode & 0x10 == 0 { "http" } else { "https" },
        host: "fuzz.example",
        port: 443,
        path: &path,
        query,
        headers: &headers,
        upgrade: (mode & 0x20 != 0).then_some("websocket"),
    };
    let depth = u32::from(mode >> 6) * 20 + 1;
    if let Ok(classified) = classify::classify(&head, Some("route"), known, body, depth) {
        for call in &classified.calls {
            let _ = call.action.target_label();
            let _ = call.action.url();
            let _ = serde_json::to_string(&call.action);
        }
    }
    if let Some(body) = body {
        let _ = parse_strict(body, 128);
    }
});
