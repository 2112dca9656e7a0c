//! The proxy's behaviour end to end, with the real `tollgate sidecar`
//! binary and Rust clients (raw TCP where framing matters): decisions and
//! their audit events, reverse routes, encoded and batched bodies, framing
//! attacks, slow and half-closed clients, upstream failures, streaming,
//! upgrades, HTTP/2, `CONNECT` with SNI checks, hot reload and fail-closed
//! auditing.
// Test code: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "support_sidecar/mod.rs"]
mod support;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use support::upstream::Upstream;
use support::{Sidecar, TestCa, eventually, http_get, outcome, rule, send, via_proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A policy over the stub upstream at `port`.
fn policy(port: u16) -> String {
    format!(
        r#"apiVersion: tollgate.dev/v1alpha1
kind: ActionPolicy
metadata: {{ name: proxy-e2e }}
spec:
  limits: {{ maxBodyBytes: 65536, maxDecodedBodyBytes: 262144 }}
  routes:
    - name: tools
      protocol: mcp
      hosts: ["localhost:{port}"]
    - name: planner
      protocol: a2a
      pathPrefix: /agents/planner
      upstream: http://127.0.0.1:{port}/a2a
    - name: cluster
      protocol: kubernetes
      pathPrefix: /k8s
      upstream: http://127.0.0.1:{port}
    - name: svc
      protocol: http
      pathPrefix: /svc
      upstream: http://127.0.0.1:{port}/base
  rules:
    - name: no-deletes
      effect: deny
      protocol: mcp
      reason: deleting needs a human
      match: {{ tools: [delete_file] }}
    - name: mcp-all
      effect: allow
      protocol: mcp
      match: {{ servers: [tools] }}
    - name: planner-read
      effect: allow
      protocol: a2a
      match: {{ methods: [tasks/get] }}
    - name: k8s-read
      effect: allow
      protocol: kubernetes
      match: {{ verbs: [get, list] }}
    - name: ws
      effect: allow
      protocol: http
      allowUpgrade: true
      match: {{ hosts: [127.0.0.1], paths: [/ws] }}
    - name: web-read
      effect: allow
      protocol: http
      match: {{ hosts: [127.0.0.1, localhost], methods: [GET, HEAD] }}
    - name: svc
      effect: allow
      protocol: http
      match: {{ servers: [svc] }}
    - name: tls-localhost
      effect: allow
      protocol: http
      match: {{ methods: [CONNECT], hosts: [localhost] }}
"#
    )
}

/// The URL of the stub's MCP endpoint, by the host the `tools` route
/// declares (`127.0.0.1` is plain HTTP to the same stub).
fn mcp_url(up: &Upstream) -> String {
    format!("http://localhost:{}/mcp", up.addr.port())
}

async fn setup(extra: &[&str]) -> (Upstream, Sidecar) {
    let upstream = Upstream::start().await;
    let sidecar = Sidecar::start(Some(&policy(upstream.addr.port())), extra).await;
    (upstream, sidecar)
}

fn tools_call(id: u64, tool: &str) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": {"path": "/tmp/x"}}})
        .to_string()
}

/// Writes `bytes` on a fresh connection, optionally half-closes it, and
/// reads until the peer closes or `wait` passes.
async fn raw(addr: std::net::SocketAddr, bytes: &[u8], half_close: bool, wait: Duration) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    if half_close {
        s.shutdown().await.unwrap();
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_is_decided_forwarded_and_audited() {
    // Two serving threads sharing the listener.
    let (up, sc) = setup(&["--workers", "2"]).await;
    let url = format!("{}/echo?x=1", up.url());
    let (status, headers, body) = via_proxy(sc.addr, "GET", &url, &[("x-agent", "a1")], "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["uri"], "/echo?x=1");
    assert_eq!(body["headers"]["x-agent"], "a1");
    assert_eq!(body["headers"]["host"], up.addr.to_string());
    assert!(headers.get("x-tollgate-decision").is_none());

    let (status, headers, body) = via_proxy(sc.addr, "DELETE", &url, &[], "").await;
    assert_eq!(status, 403);
    assert_eq!(headers["x-tollgate-decision"], "deny");
    assert_eq!(body["error"]["rule"], "tollgate/default-deny");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("DELETE")
    );
    assert_eq!(
        up.seen().len(),
        1,
        "the denied request never reached the upstream"
    );

    let events = sc
        .events_where(2, |e| e["action"]["protocol"] == "http")
        .await;
    assert_eq!(
        (outcome(&events[0]), rule(&events[0])),
        ("allow", "web-read")
    );
    assert_eq!(events[0]["action"]["verb"], "GET");
    assert_eq!(events[0]["action"]["target"], url);
    assert_eq!(
        (outcome(&events[1]), rule(&events[1])),
        ("deny", "tollgate/default-deny")
    );
    assert_eq!(
        sc.metric(
            r#"tollgate_sidecar_decisions_total{protocol="http",outcome="allow",rule="web-read"}"#
        )
        .await,
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reverse_routes_rewrite_the_path_and_unrouted_paths_are_refused() {
    let (up, sc) = setup(&[]).await;
    let req = http::Request::post(format!("{}/svc/items/7?full=1", sc.url()))
        .header("host", sc.addr.to_string())
        .body("payload".to_owned())
        .unwrap();
    // Origin-form, as a client of a reverse proxy sends it.
    let req = {
        let (mut parts, body) = req.into_parts();
        parts.uri = "/svc/items/7?full=1".parse().unwrap();
        http::Request::from_parts(parts, body)
    };
    let (status, _, body) = send(sc.addr, req).await.unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let seen = up.seen();
    assert_eq!(seen[0].uri, "/base/items/7?full=1");
    assert_eq!(seen[0].body, "payload");
    assert_eq!(seen[0].headers["host"], up.addr.to_string());

    let (status, body) = http_get(sc.addr, "/nowhere").await.unwrap();
    assert_eq!(status, 403);
    assert!(body.contains("tollgate/no-route"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_bodies_are_judged_decoded_and_forwarded_unchanged() {
    let (up, sc) = setup(&[]).await;
    let gzip = |s: &str| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(s.as_bytes()).unwrap();
        e.finish().unwrap()
    };
    let url = mcp_url(&up);
    let post = |body: Vec<u8>, encoding: &'static str| {
        let uri: http::Uri = url.parse().unwrap();
        http::Request::post(uri.clone())
            .header("host", uri.authority().unwrap().as_str())
            .header("content-type", "application/json")
            .header("content-encoding", encoding)
            .body(body)
            .unwrap()
    };
    // The denied tool hides inside gzip: still denied.
    let (status, _, body) = send(sc.addr, post(gzip(&tools_call(1, "delete_file")), "gzip"))
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 200);
    assert_eq!(body["id"], 1);
    assert_eq!(body["error"]["data"]["rule"], "no-deletes");
    // An allowed one is forwarded with its original (compressed) bytes.
    let allowed = gzip(&tools_call(2, "read_file"));
    let (status, _, _) = send(sc.addr, post(allowed.clone(), "gzip")).await.unwrap();
    assert_eq!(status, 200);
    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body.as_ref(), allowed.as_slice());
    assert_eq!(seen[0].headers["content-encoding"], "gzip");

    // Unknown encodings cannot be inspected: refused.
    let (status, _, body) = send(sc.addr, post(b"(zstd bytes)".to_vec(), "zstd"))
        .await
        .unwrap();
    assert_eq!(status, 415, "{}", String::from_utf8_lossy(&body));
    // A zip bomb: 32 KiB that decodes past maxDecodedBodyBytes.
    let bomb = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(&vec![b' '; 4 << 20]).unwrap();
        e.finish().unwrap()
    };
    assert!(bomb.len() < 65536);
    let (status, _, body) = send(sc.addr, post(bomb, "gzip")).await.unwrap();
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&body));
    // Over maxBodyBytes as sent.
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":3,"method":"ping","params":{{"pad":"{}"}}}}"#,
        "x".repeat(70_000)
    );
    let (status, _, _) = send(sc.addr, post(big.into_bytes(), "identity"))
        .await
        .unwrap();
    assert_eq!(status, 413);
    assert_eq!(up.seen().len(), 1, "nothing refused reached the upstream");
    let refusals = sc
        .events_where(3, |e| {
            rule(e) == "tollgate/encoding" || rule(e) == "tollgate/body-limit"
        })
        .await;
    assert_eq!(refusals.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_with_a_denied_call_are_denied_whole_and_each_call_audited() {
    let (up, sc) = setup(&[]).await;
    let batch = format!(
        "[{},{},{}]",
        json!({"jsonrpc": "2.0", "id": "a", "method": "tools/list"}),
        tools_call(2, "delete_file"),
        json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {}}),
    );
    let url = mcp_url(&up);
    let (status, _, body) = via_proxy(
        sc.addr,
        "POST",
        &url,
        &[("accept", "application/json, text/event-stream")],
        &batch,
    )
    .await;
    assert_eq!(status, 200);
    let replies = body.as_array().unwrap();
    assert_eq!(replies.len(), 2, "one error per request id: {body}");
    assert_eq!(replies[0]["id"], "a");
    assert_eq!(replies[1]["id"], 2);
    assert!(replies.iter().all(|r| r["error"]["code"] == -32040));
    assert!(up.seen().is_empty());
    let events = sc
        .events_where(3, |e| e["action"]["protocol"] == "mcp")
        .await;
    let rules: Vec<&str> = events.iter().map(rule).collect();
    assert_eq!(rules, ["tollgate/batch", "no-deletes", "tollgate/batch"]);
    assert!(events.iter().all(|e| outcome(e) == "deny"));

    // An allowed batch goes through whole.
    let ok = format!(
        "[{},{}]",
        tools_call(1, "read_file"),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
    );
    let (status, _, body) = via_proxy(sc.addr, "POST", &url, &[], &ok).await;
    assert_eq!(status, 200);
    assert_eq!(body[1]["result"]["echo"], "tools/list");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_json_and_a2a_and_kubernetes_denials_are_shaped() {
    let (up, sc) = setup(&[]).await;
    // Two "method" keys: refused, never forwarded.
    let dup = r#"{"jsonrpc":"2.0","id":9,"method":"tools/list","method":"tools/call","params":{"name":"delete_file"}}"#;
    let (status, _, body) = via_proxy(sc.addr, "POST", &mcp_url(&up), &[], dup).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("duplicate key \"method\""),
        "{body}"
    );

    // A2A over a reverse route: the JSON-RPC error keeps the id.
    let send_msg = json!({"jsonrpc": "2.0", "id": "m-1", "method": "message/send", "params": {"message": {"role": "user", "messageId": "x", "parts": []}}});
    let req = http::Request::post("/agents/planner")
        .header("host", sc.addr.to_string())
        .body(send_msg.to_string())
        .unwrap();
    let (status, _, body) = send(sc.addr, req).await.unwrap();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 200);
    assert_eq!(body["id"], "m-1");
    assert_eq!(body["error"]["data"]["protocol"], "a2a");

    // Kubernetes clients get a Status.
    let req = http::Request::delete("/k8s/api/v1/namespaces/default/pods/web-0")
        .header("host", sc.addr.to_string())
        .body(String::new())
        .unwrap();
    let (status, _, body) = send(sc.addr, req).await.unwrap();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 403);
    assert_eq!(body["kind"], "Status");
    assert_eq!(body["status"], "Failure");
    assert_eq!(body["reason"], "Forbidden");
    assert_eq!(body["code"], 403);
    let req = http::Request::get("/k8s/api/v1/namespaces/default/pods")
        .header("host", sc.addr.to_string())
        .body(String::new())
        .unwrap();
    let (status, _, _) = send(sc.addr, req).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        up.seen().last().unwrap().uri,
        "/api/v1/namespaces/default/pods"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framing_attacks_are_handled_safely() {
    let (up, sc) = setup(&[]).await;
    let host = up.addr;
    // Content-Length and Transfer-Encoding together: chunked wins, the
    // connection closes after the response, and the "smuggled" request
    // hidden after the chunked terminator is never forwarded.
    let smuggled = format!("GET http://{host}/smuggled HTTP/1.1\r\nHost: {host}\r\n\r\n");
    let body = format!("0\r\n\r\n{smuggled}");
    let req = format!(
        "POST http://{host}/svc-none HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n{body}",
        body.len()
    );
    let out = raw(sc.addr, req.as_bytes(), false, Duration::from_secs(3)).await;
    assert!(out.starts_with("HTTP/1.1 403"), "{out}");
    assert_eq!(
        out.matches("HTTP/1.1").count(),
        1,
        "one response only: {out}"
    );
    assert!(!up.seen().iter().any(|s| s.uri.contains("smuggled")));

    // A transfer coding the proxy cannot frame: refused.
    let req = format!(
        "POST http://{host}/mcp HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"
    );
    let out = raw(sc.addr, req.as_bytes(), false, Duration::from_secs(3)).await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert!(out.contains("tollgate/framing"), "{out}");

    // Two Host headers on a reverse-proxy request: refused.
    let req = format!(
        "GET /svc/x HTTP/1.1\r\nHost: {}\r\nHost: evil.example\r\n\r\n",
        sc.addr
    );
    let out = raw(sc.addr, req.as_bytes(), false, Duration::from_secs(3)).await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");

    // A path that climbs out of an allowed prefix is ambiguous: refused.
    let out = raw(
        sc.addr,
        format!("GET http://{host}/ws/../other HTTP/1.1\r\nHost: {host}\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n").as_bytes(),
        false,
        Duration::from_secs(3),
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 403"), "{out}");
    assert!(out.contains("tollgate/path"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrades_need_a_rule_that_allows_them() {
    let (up, sc) = setup(&[]).await;
    let host = up.addr;
    // Allowed on /ws (allowUpgrade), then bytes flow both ways.
    let mut s = TcpStream::connect(sc.addr).await.unwrap();
    s.write_all(format!("GET http://{host}/ws HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = vec![0u8; 0];
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s.write_all(b"ping over the socket").await.unwrap();
    let mut echo = [0u8; 20];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut echo))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echo, b"ping over the socket");

    // Elsewhere the matching allow rule lacks allowUpgrade: denied.
    let out = raw(
        sc.addr,
        format!("GET http://{host}/chat HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n").as_bytes(),
        false,
        Duration::from_secs(3),
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 403"), "{out}");
    assert!(
        out.contains(
            "websocket upgrade denied: rule \\\"web-read\\\" matches but does not set allowUpgrade"
        ),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_half_closed_clients() {
    let (up, sc) = setup(&["--header-timeout", "400ms", "--body-timeout", "400ms"]).await;
    let host = up.addr;
    // Headers that never finish: 408 with a JSON body, and an event.
    let out = raw(
        sc.addr,
        format!("GET http://{host}/echo HTTP/1.1\r\nHost: {host}\r\nX-Slow: ").as_bytes(),
        false,
        Duration::from_secs(5),
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 408"), "{out:?}");
    assert!(out.contains("tollgate/slow-client"));
    sc.events_where(1, |e| rule(e) == "tollgate/slow-client")
        .await;

    // A body that never finishes: 408 too.
    let out = raw(
        sc.addr,
        format!("POST http://{host}/mcp HTTP/1.1\r\nHost: {host}\r\nContent-Length: 100\r\n\r\n{{\"jsonrpc\"").as_bytes(),
        false,
        Duration::from_secs(5),
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 408"), "{out:?}");
    assert!(out.contains("not received within"), "{out}");

    // An idle keep-alive connection is closed without a response.
    let out = raw(sc.addr, b"", false, Duration::from_secs(2)).await;
    assert_eq!(out, "");

    // A client that half-closes after its request still gets the answer.
    let out = raw(
        sc.addr,
        format!("GET http://{host}/1k HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
        true,
        Duration::from_secs(5),
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.ends_with(&"a".repeat(1024)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures_get_502_and_504_and_an_incident_event() {
    let (up, sc) = setup(&["--upstream-timeout", "500ms", "--connect-timeout", "1s"]).await;
    let dead = support::free_port();
    let (status, _, body) = via_proxy(
        sc.addr,
        "GET",
        &format!("http://127.0.0.1:{dead}/x"),
        &[],
        "",
    )
    .await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["rule"], "tollgate/upstream-error");
    let (status, _, body) = via_proxy(sc.addr, "GET", &format!("{}/slow", up.url()), &[], "").await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"]["code"], "gateway_timeout");
    // An MCP call to a host no route declares is recognised by its shape
    // (server = the host) and denied with a JSON-RPC error.
    let (status, _, body) = via_proxy(
        sc.addr,
        "POST",
        &format!("http://127.0.0.1:{dead}/mcp"),
        &[],
        &tools_call(5, "read_file"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], 5);
    assert_eq!(body["error"]["code"], -32040);

    let incidents = sc.events_where(2, |e| outcome(e) == "warn").await;
    assert_eq!(incidents[0]["decision"]["rule"], "tollgate/upstream-error");
    assert_eq!(
        incidents[0]["action"]["attributes"]["allowedBy"],
        "web-read"
    );
    assert_eq!(incidents[1]["action"]["attributes"]["status"], 504);
    assert!(
        sc.metric(r#"tollgate_sidecar_upstream_errors_total{kind="timeout"}"#)
            .await
            >= Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_responses_stream_through_without_buffering() {
    let (up, sc) = setup(&[]).await;
    let mut s = TcpStream::connect(sc.addr).await.unwrap();
    let host = up.addr;
    s.write_all(
        format!(
            "GET http://{host}/sse HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    // The first event arrives while the upstream still holds the second.
    tokio::time::timeout(Duration::from_secs(5), async {
        while !String::from_utf8_lossy(&got).contains("data: first") {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed early");
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("the first event was buffered");
    assert!(!String::from_utf8_lossy(&got).contains("second"));
    up.release.notify_one();
    tokio::time::timeout(Duration::from_secs(5), async {
        while !String::from_utf8_lossy(&got).contains("data: second") {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed early");
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("the second event never came");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_clients_are_served() {
    let (up, sc) = setup(&[]).await;
    use http_body_util::BodyExt;
    let stream = TcpStream::connect(sc.addr).await.unwrap();
    let (mut h2, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    // HTTP/2 to the proxy (prior knowledge): a reverse route by path...
    let req = http::Request::get(format!("http://{}/svc/h2", sc.addr))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let resp = h2.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["uri"], "/base/h2");
    // ...and an upstream named by :authority, decided like any request.
    let req = http::Request::delete(format!("{}/x", up.url()))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let resp = h2.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 403);
}

/// Opens a `CONNECT` tunnel through the sidecar; the status line and the
/// stream.
async fn tunnel(sidecar: std::net::SocketAddr, target: &str) -> (String, TcpStream) {
    let mut s = TcpStream::connect(sidecar).await.unwrap();
    s.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).await.unwrap() == 0 {
            break;
        }
        head.push(byte[0]);
    }
    (String::from_utf8_lossy(&head).into_owned(), s)
}

fn tls_client(ca: &TestCa) -> tokio_rustls::TlsConnector {
    let config = tollgate_certs::client_config(ca.ca.cert_pem().as_bytes()).unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_tunnels_are_decided_on_host_and_port_and_sni() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let up = Upstream::start_with(Some(ca.server_config(&[b"http/1.1"]))).await;
    let sc = Sidecar::start(Some(&policy(up.addr.port())), &[]).await;
    let port = up.addr.port();

    // Allowed: TLS end to end, the sidecar sees only the tunnel.
    let (head, stream) = tunnel(sc.addr, &format!("localhost:{port}")).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let tls = tls_client(&ca)
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            stream,
        )
        .await
        .unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let resp = sender
        .send_request(
            http::Request::get("/echo")
                .header("host", "localhost")
                .body(String::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // Denied host: 403 before any byte is relayed.
    let (head, _) = tunnel(sc.addr, &format!("127.0.0.1:{port}")).await;
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");

    // Allowed tunnel, but the ClientHello names another host: refused.
    let (head, stream) = tunnel(sc.addr, &format!("localhost:{port}")).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let err = tls_client(&ca)
        .connect(
            rustls_pki_types::ServerName::try_from("evil.example").unwrap(),
            stream,
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("AccessDenied") || err.to_string().contains("access"),
        "{err}"
    );

    // Plain text through a non-intercepted tunnel: refused.
    let (_, mut stream) = tunnel(sc.addr, &format!("localhost:{port}")).await;
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut rest)).await;
    assert!(!String::from_utf8_lossy(&rest).contains("HTTP/1.1 200"));

    let tunnel_events = sc.events_where(2, |e| rule(e) == "tollgate/tunnel").await;
    assert!(
        tunnel_events[0]["decision"]["reason"]
            .as_str()
            .unwrap()
            .contains("evil.example")
    );
    assert!(
        tunnel_events[1]["decision"]["reason"]
            .as_str()
            .unwrap()
            .contains("does not carry TLS")
    );
    let connects = sc
        .events_where(4, |e| e["action"]["verb"] == "CONNECT")
        .await;
    assert_eq!(
        (outcome(&connects[0]), rule(&connects[0])),
        ("allow", "tls-localhost")
    );
    assert_eq!(outcome(&connects[1]), "deny");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intercepted_tunnels_are_classified_inside() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let up = Upstream::start_with(Some(ca.server_config(&[b"h2", b"http/1.1"]))).await;
    let intercept = dir.path().join("intercept");
    let sc = Sidecar::start(
        Some(&policy(up.addr.port())),
        &[
            "--intercept-ca",
            intercept.to_str().unwrap(),
            "--upstream-ca",
            ca.ca_file.to_str().unwrap(),
            "--no-system-roots",
        ],
    )
    .await;
    let agent_trust =
        tollgate_certs::client_config(&std::fs::read(intercept.join("ca.crt")).unwrap()).unwrap();
    let port = up.addr.port();
    let (head, stream) = tunnel(sc.addr, &format!("localhost:{port}")).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(agent_trust))
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            stream,
        )
        .await
        .expect("the agent trusts the per-pod CA");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    // The tool call inside TLS is classified like plain HTTP.
    let call = |id, tool| {
        http::Request::post("/mcp")
            .header("host", format!("localhost:{port}"))
            .body(tools_call(id, tool))
            .unwrap()
    };
    use http_body_util::BodyExt;
    sender.ready().await.unwrap();
    let resp = sender.send_request(call(1, "delete_file")).await.unwrap();
    let body: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["error"]["data"]["rule"], "no-deletes");
    sender.ready().await.unwrap();
    let resp = sender.send_request(call(2, "read_file")).await.unwrap();
    let body: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["result"]["echo"], "tools/call");
    // A Host header naming somewhere else is refused.
    sender.ready().await.unwrap();
    let resp = sender
        .send_request(
            http::Request::get("/echo")
                .header("host", "elsewhere.example")
                .body(String::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let events = sc
        .events_where(2, |e| e["action"]["verb"] == "tools/call")
        .await;
    assert!(
        events[0]["action"]["attributes"]["url"]
            .as_str()
            .unwrap()
            .starts_with("https://localhost:")
    );
    assert_eq!(rule(&events[1]), "mcp-all");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_hot_reload_and_broken_files_keep_the_last_good_one() {
    let (up, sc) = setup(&[]).await;
    let url = format!("{}/echo", up.url());
    assert_eq!(via_proxy(sc.addr, "GET", &url, &[], "").await.0, 200);
    let deny_all = "apiVersion: tollgate.dev/v1alpha1\nkind: ActionPolicy\nmetadata: { name: locked }\nspec: {}\n";
    sc.write_policy(deny_all);
    let mut last = 0;
    for _ in 0..250 {
        last = via_proxy(sc.addr, "GET", &url, &[], "").await.0;
        if last == 403 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(last, 403, "the new policy never took effect");
    // A broken file is refused; the last good policy stays.
    sc.write_policy("apiVersion: tollgate.dev/v1alpha1\nkind: ActionPolicy\nspec:\n  rules:\n    - name: x\n      effect: sometimes\n");
    eventually(Duration::from_secs(10), "a refused reload", || {
        std::fs::read_to_string(sc.dir.path().join("sidecar.log"))
            .ok()
            .filter(|l| l.contains("action policy refused"))
    })
    .await;
    assert!(
        sc.log().contains("unknown variant `sometimes`"),
        "{}",
        sc.log()
    );
    assert!(
        sc.metric(r#"tollgate_sidecar_policy_reloads_total{kind="refused"}"#)
            .await
            >= Some(1.0)
    );
    let (status, _, body) = via_proxy(sc.addr, "GET", &url, &[], "").await;
    assert_eq!(status, 403);
    assert!(
        body["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("\"locked\""),
        "{body}"
    );
    assert_eq!(http_get(sc.metrics, "/readyz").await.unwrap().0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configmap_symlink_swaps_are_picked_up() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    // The layout the kubelet gives a mounted ConfigMap.
    let v1 = dir.path().join("..2026_01_01_00_00_00.1");
    std::fs::create_dir(&v1).unwrap();
    std::fs::write(
        v1.join("policy.yaml"),
        "apiVersion: tollgate.dev/v1alpha1\nkind: ActionPolicy\nmetadata: { name: v1 }\nspec: {}\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(v1.file_name().unwrap(), dir.path().join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/policy.yaml", dir.path().join("policy.yaml")).unwrap();
    let policy_path = dir.path().join("policy.yaml");
    let sc = Sidecar::start(
        None,
        &[
            "--policy",
            policy_path.to_str().unwrap(),
            "--policy-poll",
            "60s",
        ],
    )
    .await;
    let url = format!("{}/echo", up.url());
    assert_eq!(via_proxy(sc.addr, "GET", &url, &[], "").await.0, 403);
    // The atomic swap: a new directory, a new ..data link renamed over the
    // old one.
    let v2 = dir.path().join("..2026_01_01_00_01_00.2");
    std::fs::create_dir(&v2).unwrap();
    std::fs::write(
        v2.join("policy.yaml"),
        policy(up.addr.port()).replace("proxy-e2e", "v2"),
    )
    .unwrap();
    std::os::unix::fs::symlink(v2.file_name().unwrap(), dir.path().join("..data_tmp")).unwrap();
    std::fs::rename(dir.path().join("..data_tmp"), dir.path().join("..data")).unwrap();
    std::fs::remove_dir_all(&v1).unwrap();
    let mut last = 0;
    for _ in 0..250 {
        last = via_proxy(sc.addr, "GET", &url, &[], "").await.0;
        if last == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        last, 200,
        "the swapped ConfigMap was not loaded (the poll is 60s, so a watch event must have done it)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_valid_policy_everything_is_denied() {
    let up = Upstream::start().await;
    let sc = Sidecar::start_with(None, &[], false).await;
    let (status, body) = http_get(sc.metrics, "/readyz").await.unwrap();
    assert_eq!(status, 503, "{body}");
    let url = format!("{}/echo", up.url());
    let (status, _, body) = via_proxy(sc.addr, "GET", &url, &[], "").await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["rule"], "tollgate/no-policy");
    sc.write_policy(&policy(up.addr.port()));
    let mut last = 0;
    for _ in 0..250 {
        last = via_proxy(sc.addr, "GET", &url, &[], "").await.0;
        if last == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(last, 200);
    assert_eq!(http_get(sc.metrics, "/readyz").await.unwrap().0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_log_that_cannot_be_written_fails_closed() {
    let up = Upstream::start().await;
    let sc = Sidecar::start(Some(&policy(up.addr.port())), &["--audit-log", "/dev/full"]).await;
    let url = format!("{}/echo", up.url());
    let mut last = (0, Value::Null);
    for _ in 0..250 {
        let (status, _, body) = via_proxy(sc.addr, "GET", &url, &[], "").await;
        last = (status, body);
        if status == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(last.0, 503, "{}", last.1);
    assert_eq!(last.1["error"]["rule"], "tollgate/audit-unavailable");
    assert!(sc.log().contains("cannot write audit events"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_audit_dir_stops_the_sidecar_with_a_clear_error() {
    // A journal that cannot be opened is fatal at start: the sidecar never
    // proxies an action it cannot record.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-directory");
    std::fs::write(&file, "x").unwrap();
    let policy = support::root().join("examples/action-policies/research-agent.yaml");
    let out = std::process::Command::new(support::bin())
        .arg("sidecar")
        .arg("--policy")
        .arg(&policy)
        .args(["--listen", "127.0.0.1:0", "--audit-dir"])
        .arg(file.join("journal"))
        .arg("--state-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot start the audit journal"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_mode_reports_located_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = support::root().join("examples/action-policies/research-agent.yaml");
    let out = std::process::Command::new(support::bin())
        .args(["sidecar", "--check", "--policy"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "apiVersion: tollgate.dev/v1alpha1\nkind: ActionPolicy\nspec:\n  rules:\n    - name: r\n      effect: allow\n      protocol: mcp\n      match: { tools: [\"[\"] }\n").unwrap();
    let out = std::process::Command::new(support::bin())
        .args(["sidecar", "--check", "--policy"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.yaml:5:7: spec.rules[0]: invalid glob"),
        "{err}"
    );
}
