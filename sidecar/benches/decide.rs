//! Micro-benchmarks of the decision path without the network: classifying
//! an MCP `tools/call` and a plain GET, and evaluating them against a
//! 20-rule policy whose matching rule is last. `cargo bench -p tollgate-sidecar`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use http::HeaderMap;
use tollgate_policies::action::{ActionPolicy, Protocol};
use tollgate_sidecar::classify::{Known, RequestHead, classify};

const CALL: &[u8] = br#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"search_docs","arguments":{"query":"rotate credentials","limit":10}}}"#;

fn policy() -> ActionPolicy {
    let mut rules = String::new();
    for i in 0..18 {
        rules.push_str(&format!(
            "    - {{ name: r{i}, effect: allow, protocol: mcp, match: {{ servers: [s{i}], tools: [\"t{i}_*\"] }} }}\n"
        ));
    }
    let text = format!(
        "apiVersion: tollgate.dev/v1alpha1\nkind: ActionPolicy\nspec:\n  rules:\n{rules}    - name: docs\n      effect: allow\n      protocol: mcp\n      match:\n        servers: [docs]\n        tools: [\"search_*\"]\n        arguments: [{{ pointer: /query, maxLength: 200 }}, {{ pointer: /limit, range: {{ min: 1, max: 50 }} }}]\n    - {{ name: web, effect: allow, protocol: http, match: {{ hosts: [\"*.example.com\"], methods: [GET] }} }}\n"
    );
    ActionPolicy::parse(&text, "bench.yaml").unwrap()
}

fn bench(c: &mut Criterion) {
    let policy = policy();
    let headers = HeaderMap::new();
    let mcp = RequestHead {
        method: "POST",
        scheme: "http",
        host: "docs.tools.svc",
        port: 8000,
        path: "/mcp",
        query: None,
        headers: &headers,
        upgrade: None,
    };
    let get = RequestHead {
        method: "GET",
        scheme: "https",
        host: "api.example.com",
        port: 443,
        path: "/v1/items",
        query: Some("page=2"),
        headers: &headers,
        upgrade: None,
    };
    let known = Known::Declared(Protocol::Mcp, None);
    c.bench_function("classify mcp tools/call", |b| {
        b.iter(|| classify(&mcp, Some("docs"), known, Some(CALL), 64).unwrap())
    });
    let action = classify(&mcp, Some("docs"), known, Some(CALL), 64)
        .unwrap()
        .calls
        .remove(0)
        .action;
    c.bench_function("evaluate mcp tools/call, 20 rules", |b| {
        b.iter(|| assert!(policy.evaluate(&action, Instant::now()).allowed()))
    });
    c.bench_function("classify + evaluate GET, 20 rules", |b| {
        b.iter(|| {
            let c = classify(&get, None, Known::Undeclared, None, 64).unwrap();
            assert!(
                policy
                    .evaluate(&c.calls[0].action, Instant::now())
                    .allowed()
            );
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
