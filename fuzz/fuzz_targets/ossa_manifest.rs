//! The OSSA agent manifest parser on arbitrary text, and the baselines it
//! compiles to on a few actions. Neither may panic.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use tollgate_policies::action::ossa::{AgentManifest, Baseline};
use tollgate_policies::action::{Action, ActionKind, McpCall, Target};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(manifest) = AgentManifest::parse(text, "fuzz.yaml") else {
        return;
    };
    let mut mcp = Action::http(Target {
        method: "POST".into(),
        scheme: "https".into(),
        host: "mcp.example".into(),
        port: 443,
        path: "/mcp".into(),
        query: None,
    });
    mcp.kind = ActionKind::Mcp(McpCall {
        method: "tools/call".into(),
        tool: Some("read_file".into()),
        server: "mcp.example".into(),
        ..McpCall::default()
    });
    let now = Instant::now();
    for baseline in [Baseline::standalone(&manifest), Baseline::constraint(&manifest)]
        .into_iter()
        .flatten()
    {
        let _ = baseline.evaluate(&mcp, now);
    }
});
