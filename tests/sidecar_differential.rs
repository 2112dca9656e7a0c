//! Differential check against real upstreams: every spelling of a denied
//! call (`NaN`, `Infinity`, `1e400`, a byte order mark, lone surrogates,
//! UTF-16, duplicate keys, escapes, trailing data, other Content-Types,
//! compression, batch orders, A2A 0.3/1.0 names and HTTP+JSON paths) is sent
//! through the real `tollgate sidecar` to the official MCP Python SDK server
//! and to the a2a-sdk server, which record what they execute. The policy
//! allows plain HTTP to the upstream host (the setting in which a body the
//! sidecar could not read used to be waved through), so the only thing
//! between the agent and the denied action is classification. Whatever the
//! sidecar lets through, the servers must never have run a denied action.
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

use serde_json::Value;
use support::{Sidecar, free_port, require_python, send};

const POLICY: &str = r#"apiVersion: tollgate.dev/v1alpha1
kind: ActionPolicy
metadata: { name: differential }
spec:
  rules:
    - name: no-delete
      effect: deny
      protocol: mcp
      match: { tools: [delete_repo] }
    - name: no-cancel
      effect: deny
      protocol: a2a
      match: { methods: [tasks/cancel] }
    - name: mcp-ok
      effect: allow
      protocol: mcp
      match: { methods: ["*"] }
    - name: a2a-ok
      effect: allow
      protocol: a2a
      match: { methods: ["*"] }
    - name: upstream-host
      effect: allow
      protocol: http
      match: { hosts: ["127.0.0.1"] }
"#;

/// One request: path, extra headers, body bytes.
struct Spelling {
    what: String,
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

fn json(what: &str, path: &str, body: &str) -> Spelling {
    Spelling {
        what: what.to_owned(),
        method: "POST",
        path: path.to_owned(),
        headers: vec![("content-type", "application/json".to_owned())],
        body: body.as_bytes().to_vec(),
    }
}

fn utf16le(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Every spelling of `tools/call delete_repo` (and of batches carrying it).
fn mcp_spellings() -> Vec<Spelling> {
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_repo","arguments":{"repo":"R"}}}"#;
    let with = |what: &str, body: String| json(what, "/mcp", &body);
    let mut out = vec![
        with("canonical", call.to_owned()),
        with(
            "escaped method and name",
            r#"{"jsonrpc":"2.0","id":1,"method":"\u0074ools/call","params":{"name":"delete\u005frepo","arguments":{"repo":"R"}}}"#.into(),
        ),
        with(
            "reordered with whitespace",
            " \n{ \"params\" : { \"arguments\" : {\"repo\":\"R\"}, \"name\" : \"delete_repo\" },\t\"method\":\"tools/call\", \"id\":1, \"jsonrpc\":\"2.0\" }\r\n".into(),
        ),
        with("NaN", call.replace("\"params\":{", "\"params\":{\"x\":NaN,")),
        with("Infinity", call.replace("\"params\":{", "\"params\":{\"x\":Infinity,")),
        with("-Infinity", call.replace("\"params\":{", "\"params\":{\"x\":-Infinity,")),
        with("1e400", call.replace("\"params\":{", "\"params\":{\"x\":1e400,")),
        with("lone surrogate", call.replace("\"repo\":\"R\"", "\"repo\":\"R\\ud800\"")),
        with("duplicate name", call.replace("\"name\":\"delete_repo\"", "\"name\":\"read_repo\",\"name\":\"delete_repo\"")),
        with("duplicate method", call.replace("\"method\":\"tools/call\"", "\"method\":\"tools/list\",\"method\":\"tools/call\"")),
        with("trailing data", format!("{call} x")),
        with("batch of one", format!("[{call}]")),
        with("response first", format!(r#"[{{"jsonrpc":"2.0","id":9,"result":{{}}}},{call}]"#)),
        with("unknown method first", format!(r#"[{{"jsonrpc":"2.0","method":"x/y"}},{call}]"#)),
        with("no jsonrpc first", format!(r#"[{{"id":2,"method":"x"}},{call}]"#)),
        with("call without jsonrpc", call.replace("\"jsonrpc\":\"2.0\",", "")),
    ];
    let mut bom = b"\xef\xbb\xbf".to_vec();
    bom.extend_from_slice(call.as_bytes());
    out.push(Spelling {
        body: bom,
        ..with("UTF-8 BOM", String::new())
    });
    out.push(Spelling {
        body: utf16le(call),
        ..with("UTF-16LE", String::new())
    });
    let mut utf16_bom = vec![0xff, 0xfe];
    utf16_bom.extend(utf16le(call));
    out.push(Spelling {
        body: utf16_bom,
        ..with("UTF-16 with BOM", String::new())
    });
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/json; charset=utf-16",
    ] {
        let mut s = with(&format!("as {ct}"), call.to_owned());
        s.headers = vec![("content-type", ct.to_owned())];
        out.push(s);
    }
    let mut gz = with("gzip", String::new());
    gz.body = gzip(call.as_bytes());
    gz.headers.push(("content-encoding", "gzip".to_owned()));
    out.push(gz);
    out
}

/// Every spelling of cancelling task `task`.
fn a2a_spellings(task: &str) -> Vec<Spelling> {
    let v1 =
        format!(r#"{{"jsonrpc":"2.0","id":2,"method":"CancelTask","params":{{"id":"{task}"}}}}"#);
    let v03 = v1.replace("CancelTask", "tasks/cancel");
    let rpc = |what: &str, body: String| {
        let mut s = json(what, "/rpc", &body);
        s.headers.push(("a2a-version", "1.0".to_owned()));
        s
    };
    let rest = |what: &str, path: String| Spelling {
        what: what.to_owned(),
        method: "POST",
        path,
        headers: vec![
            ("content-type", "application/json".to_owned()),
            ("a2a-version", "1.0".to_owned()),
        ],
        body: b"{}".to_vec(),
    };
    let mut out = vec![
        rpc("CancelTask", v1.clone()),
        rpc("tasks/cancel (0.3)", v03.clone()),
        rpc(
            "escaped method",
            v1.replace("CancelTask", "\\u0043ancelTask"),
        ),
        rpc("NaN", v1.replace("\"params\":{", "\"params\":{\"x\":NaN,")),
        rpc(
            "1e400",
            v1.replace("\"params\":{", "\"params\":{\"x\":1e400,"),
        ),
        rpc(
            "lone surrogate",
            v1.replace("\"params\":{", "\"params\":{\"x\":\"\\udfff\","),
        ),
        rpc(
            "duplicate method",
            v1.replace(
                "\"method\":\"CancelTask\"",
                "\"method\":\"GetTask\",\"method\":\"CancelTask\"",
            ),
        ),
        rpc(
            "duplicate id",
            v1.replace("\"params\":{", "\"params\":{\"id\":\"other\","),
        ),
        rpc(
            "0.3 with metadata",
            v03.replace("\"params\":{", "\"params\":{\"metadata\":{},"),
        ),
        rpc(
            "batch",
            format!(
                r#"[{{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{{"id":"{task}"}}}},{v1}]"#
            ),
        ),
        rest("REST", format!("/rest/tasks/{task}:cancel")),
        rest("REST 0.3", format!("/rest/v1/tasks/{task}:cancel")),
        rest("REST tenant", format!("/rest/acme/tasks/{task}:cancel")),
        rest("REST escaped colon", format!("/rest/tasks/{task}%3Acancel")),
        rest(
            "REST escaped letters",
            format!("/rest/tasks/{task}:%63ancel"),
        ),
    ];
    let mut bom = b"\xef\xbb\xbf".to_vec();
    bom.extend_from_slice(v1.as_bytes());
    out.push(Spelling {
        body: bom,
        ..rpc("UTF-8 BOM", String::new())
    });
    out.push(Spelling {
        body: utf16le(&v1),
        ..rpc("UTF-16LE", String::new())
    });
    let mut plain = rpc("as text/plain", v1.clone());
    plain.headers[0].1 = "text/plain".to_owned();
    out.push(plain);
    out
}

async fn through(sidecar: &Sidecar, port: u16, s: &Spelling) -> (u16, String) {
    let url = format!("http://127.0.0.1:{port}{}", s.path);
    let mut req = http::Request::builder()
        .method(s.method)
        .uri(&url)
        .header("host", format!("127.0.0.1:{port}"))
        .header("accept", "application/json, text/event-stream");
    for (k, v) in &s.headers {
        req = req.header(*k, v.as_str());
    }
    let (status, _, body) = send(sidecar.addr, req.body(s.body.clone()).unwrap())
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", s.what));
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_server_never_runs_a_denied_tool_whatever_the_spelling() {
    require_python(&["mcp", "httpx"]);
    let port = free_port();
    let state = tempfile::tempdir().unwrap();
    let log = state.path().join("executed.jsonl");
    let sidecar = Sidecar::start(Some(POLICY), &[]).await;
    let _server = support::start_logging_server("mcp_exec_server.py", port, &log).await;

    // The control: an allowed call runs, so the log would show a bypass.
    let read = json(
        "allowed",
        "/mcp",
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_repo","arguments":{"repo":"R"}}}"#,
    );
    let (status, body) = through(&sidecar, port, &read).await;
    assert_eq!(status, 200, "{body}\n{}", sidecar.log());
    assert!(body.contains("read R"), "{body}");

    let mut let_through = Vec::new();
    for s in mcp_spellings() {
        let (status, body) = through(&sidecar, port, &s).await;
        assert!(
            !body.contains("deleted"),
            "{}: the tool ran: {body}",
            s.what
        );
        if !(status == 403 || body.contains("-32040")) {
            let_through.push(format!("{} -> {status} {body}", s.what));
        }
    }
    let ran = support::executed(&log);
    let deletes: Vec<&Value> = ran.iter().filter(|r| r["tool"] == "delete_repo").collect();
    assert!(
        deletes.is_empty(),
        "the server ran a denied tool: {deletes:?}"
    );
    assert!(ran.iter().any(|r| r["tool"] == "read_repo"), "{ran:?}");
    // Only spellings the sidecar could judge reach the server; the one a
    // server cannot read (gzip, which uvicorn does not decode) is denied
    // by its content too.
    assert!(let_through.is_empty(), "not refused: {let_through:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a2a_server_never_cancels_whatever_the_spelling() {
    require_python(&["a2a", "httpx", "uvicorn", "starlette"]);
    let port = free_port();
    let state = tempfile::tempdir().unwrap();
    let log = state.path().join("executed.jsonl");
    let sidecar = Sidecar::start(Some(POLICY), &[]).await;
    let _server = support::start_logging_server("a2a_server.py", port, &log).await;

    // An allowed message creates a task waiting for input: cancellable.
    let send_msg = {
        let mut s = json(
            "send",
            "/rpc",
            r#"{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":{"role":"ROLE_USER","messageId":"m1","parts":[{"text":"plan"}]}}}"#,
        );
        s.headers.push(("a2a-version", "1.0".to_owned()));
        s
    };
    let (status, body) = through(&sidecar, port, &send_msg).await;
    assert_eq!(status, 200, "{body}\n{}", sidecar.log());
    let reply: Value = serde_json::from_str(&body).unwrap();
    let task = reply["result"]["task"]["id"].as_str().unwrap().to_owned();

    let mut let_through = Vec::new();
    for s in a2a_spellings(&task) {
        let (status, body) = through(&sidecar, port, &s).await;
        assert!(
            !body.contains("TASK_STATE_CANCELED"),
            "{}: the task was cancelled: {body}",
            s.what
        );
        if !(status == 403 || body.contains("-32040")) {
            let_through.push(format!("{} -> {status} {body}", s.what));
        }
    }
    let ran = support::executed(&log);
    assert!(
        ran.iter()
            .any(|r| r["op"] == "execute" && r["task"] == task.as_str()),
        "{ran:?}"
    );
    let cancels: Vec<&Value> = ran.iter().filter(|r| r["op"] == "cancel").collect();
    assert!(
        cancels.is_empty(),
        "the server cancelled a task: {cancels:?}"
    );
    assert!(let_through.is_empty(), "not refused: {let_through:#?}");
}
