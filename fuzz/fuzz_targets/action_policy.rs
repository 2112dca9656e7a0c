//! The action policy parser on arbitrary text, and the parsed policy on a
//! few actions. Neither may panic.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use tollgate_policies::action::{Action, ActionKind, ActionPolicy, KubeRequest, McpCall, Target};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(policy) = ActionPolicy::parse(text, "fuzz.yaml") else {
        return;
    };
    let target = Target {
        method: "POST".into(),
        scheme: "https".into(),
        host: "mcp.example".into(),
        port: 443,
        path: "/mcp".into(),
        query: None,
    };
    let mut mcp = Action::http(target.clone());
    mcp.kind = ActionKind::Mcp(McpCall {
        method: "tools/call".into(),
        tool: Some("read_file".into()),
        arguments: Some(serde_json::json!({"path": "/workspace/../etc", "n": 3, "list": [1, 2]})),
        server: "tools".into(),
        ..McpCall::default()
    });
    let mut kube = Action::http(target.clone());
    kube.kind = ActionKind::Kubernetes(KubeRequest {
        verb: "delete".into(),
        resource_request: true,
        resource: "pods".into(),
        subresource: Some("exec".into()),
        namespace: Some("default".into()),
        name: Some("web".into()),
        ..KubeRequest::default()
    });
    let mut upgrade = Action::http(target);
    upgrade.upgrade = Some("websocket".into());
    let now = Instant::now();
    for action in [&mcp, &kube, &upgrade] {
        let _ = policy.evaluate(action, now);
    }
    let _ = policy.route_for_path("/mcp/x");
    let _ = policy.route_for_host("mcp.example", 443);
    let _ = policy.limit_usage(now);
});
