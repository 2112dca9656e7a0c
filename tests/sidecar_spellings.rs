//! Differential end-to-end test: the real `tollgate sidecar` binary in
//! front of real servers that route on their own reading of the request —
//! uvicorn (decodes `%2F` before routing) and nginx (merges `//`, decodes
//! and resolves `.`/`..`, then proxies the normalised path to uvicorn) —
//! with a policy that denies `/admin/**` and the loopback host. Every
//! spelling of a denied path or host is sent; what the servers actually
//! executed is read back from uvicorn's log, and nothing the policy denies
//! may be in it. Also `tollgate sidecar --check` on rules that can never
//! match.
// Test code: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "support_sidecar/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::{Sidecar, eventually, free_port, python_script, require_program, require_python};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Kills the child when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_port(addr: SocketAddr) {
    eventually(
        Duration::from_secs(20),
        &format!("{addr} to listen"),
        || {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100))
                .ok()
                .map(|_| ())
        },
    )
    .await;
}

fn start_uvicorn(port: u16, log: &Path) -> Proc {
    Proc(
        Command::new("python3")
            .arg(python_script("path_logger.py"))
            .arg(port.to_string())
            .arg(log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start uvicorn"),
    )
}

/// nginx on 127.0.0.2 (a loopback address the policy does not deny),
/// proxying to uvicorn on 127.0.0.1.
fn start_nginx(dir: &Path, port: u16, upstream: u16) -> Proc {
    let nginx = ["/usr/sbin/nginx", "/usr/local/sbin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("nginx is missing: run `make test-deps`");
    let prefix = dir.join("nginx");
    std::fs::create_dir_all(prefix.join("logs")).unwrap();
    // `proxy_pass` with a URI part sends the normalised path (slashes
    // merged, escapes decoded, dots resolved): what nginx routed on.
    let conf = format!(
        r#"worker_processes 1;
error_log {prefix}/logs/error.log warn;
pid {prefix}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    server {{
        listen 127.0.0.2:{port};
        location / {{ proxy_pass http://127.0.0.1:{upstream}/; }}
    }}
}}
"#,
        prefix = prefix.display()
    );
    let conf_path = prefix.join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    Proc(
        Command::new(nginx)
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&conf_path)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx"),
    )
}

/// Sends raw bytes to `addr`, returns the status (0 when none).
async fn raw(addr: SocketAddr, bytes: &str) -> u16 {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        while !complete(&out) {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    String::from_utf8_lossy(&out)
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Whether `buf` holds one complete response (headers and, by
/// `Content-Length`, the body).
fn complete(buf: &[u8]) -> bool {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    buf.len() >= end + 4 + len
}

fn executed(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Whether uvicorn's routing path is under `/admin`.
fn is_admin(path: &str) -> bool {
    let p = path.to_ascii_lowercase();
    p == "/admin" || p.starts_with("/admin/") || p.starts_with("/admin;")
}

const PATH_SPELLINGS: &[&str] = &[
    "/admin/x",
    "//admin/x",
    "/admin%2fx",
    "%2fadmin/x",
    "/%61dmin/x",
    "/x/../admin/x",
    "/x/%2e%2e/admin/x",
    "/x/%2E%2E%2fadmin/x",
    "/./admin/x",
    "/%2e/admin/x",
    "/admin;p=1/x",
    "/x/..;/admin/x",
    "/admin%252fx",
    "/x/%252e%252e/admin/x",
    "\\admin\\x",
    "%5cadmin%5cx",
    "///admin",
    "/admin",
    "/admin/",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_the_policy_denies_is_executed_upstream() {
    require_python(&["uvicorn"]);
    require_program("nginx");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("executed.jsonl");
    let py = free_port();
    let _uvicorn = start_uvicorn(py, &log);
    let ng = free_port();
    let _nginx = start_nginx(dir.path(), ng, py);
    wait_port(SocketAddr::from(([127, 0, 0, 1], py))).await;
    wait_port(SocketAddr::from(([127, 0, 0, 2], ng))).await;

    let policy = format!(
        r#"apiVersion: tollgate.dev/v1alpha1
kind: ActionPolicy
metadata: {{ name: spellings }}
spec:
  routes:
    - {{ name: direct, protocol: http, pathPrefix: /direct, upstream: "http://127.0.0.1:{py}" }}
    - {{ name: dnorm, protocol: http, pathPrefix: /dnorm, upstream: "http://127.0.0.1:{py}", pathStrictness: normalize }}
    - {{ name: nginx, protocol: http, pathPrefix: /nginx, upstream: "http://127.0.0.2:{ng}" }}
    - {{ name: nnorm, protocol: http, pathPrefix: /nnorm, upstream: "http://127.0.0.2:{ng}", pathStrictness: normalize }}
  rules:
    - {{ name: no-admin, effect: deny, match: {{ paths: ["/admin", "/admin/**"] }} }}
    - {{ name: routes, effect: allow, match: {{ servers: [direct, dnorm, nginx, nnorm] }} }}
    - {{ name: no-loopback, effect: deny, match: {{ hosts: ["127.0.0.1", "localhost"] }} }}
    - {{ name: the-rest, effect: allow }}
"#
    );
    let sc = Sidecar::start(Some(&policy), &[]).await;

    // Positive controls: allowed paths are executed, so the log is live.
    for prefix in ["/direct", "/dnorm", "/nginx", "/nnorm"] {
        let req = format!(
            "GET {prefix}/public/x HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            sc.addr
        );
        assert_eq!(raw(sc.addr, &req).await, 200, "{prefix}/public/x");
    }
    eventually(
        Duration::from_secs(10),
        "the controls to be executed",
        || {
            (executed(&log)
                .iter()
                .filter(|e| e["path"] == "/public/x")
                .count()
                >= 4)
                .then_some(())
        },
    )
    .await;

    for prefix in ["/direct", "/dnorm", "/nginx", "/nnorm"] {
        for p in PATH_SPELLINGS {
            let req = format!(
                "GET {prefix}{p} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                sc.addr
            );
            let status = raw(sc.addr, &req).await;
            assert!(
                status == 0 || status >= 400,
                "{prefix}{p} was answered {status}"
            );
        }
    }
    // Forward-proxy requests: the same paths through nginx, and every
    // spelling of the denied loopback host straight to uvicorn.
    for p in PATH_SPELLINGS.iter().filter(|p| p.starts_with('/')) {
        let req = format!(
            "GET http://127.0.0.2:{ng}{p} HTTP/1.1\r\nHost: 127.0.0.2:{ng}\r\nConnection: close\r\n\r\n"
        );
        let status = raw(sc.addr, &req).await;
        assert!(
            status == 0 || status >= 400,
            "{p} via nginx was answered {status}"
        );
    }
    for h in [
        "127.0.0.1",
        "2130706433",
        "127.1",
        "0x7f000001",
        "0177.0.0.1",
        "127.000.000.001",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "0",
        "0.0.0.0",
        "[::127.0.0.1]",
        "127.0.0.1.",
        "LOCALHOST",
    ] {
        let req = format!(
            "GET http://{h}:{py}/public/x HTTP/1.1\r\nHost: {h}:{py}\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(raw(sc.addr, &req).await, 403, "{h}:{py}");
        let connect = format!("CONNECT {h}:{py} HTTP/1.1\r\nHost: {h}:{py}\r\n\r\n");
        assert_eq!(raw(sc.addr, &connect).await, 403, "CONNECT {h}:{py}");
    }
    // The sidecar answers only after the upstream answered, and uvicorn
    // logs before it answers: everything executed is in the log now.
    let all = executed(&log);
    let admin: Vec<&Value> = all
        .iter()
        .filter(|e| is_admin(e["path"].as_str().unwrap_or_default()))
        .collect();
    assert!(
        admin.is_empty(),
        "the upstream executed denied paths: {admin:?}"
    );
    let controls = all.iter().filter(|e| e["path"] == "/public/x").count();
    assert_eq!(
        controls, 4,
        "only the four controls may reach /public/x (the loopback spellings must not): {all:?}"
    );
    // The reverse-route refusals carry the path as sent and as judged.
    sc.events_where(1, |e| {
        e["action"]["attributes"]["pathSent"] == "/nnorm//admin/x"
            && e["action"]["attributes"]["pathJudged"] == "/admin/x"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_warns_about_a_rule_that_can_never_match() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("never.yaml");
    std::fs::write(
        &policy,
        "apiVersion: tollgate.dev/v1alpha1\nkind: ActionPolicy\nspec:\n  rules:\n    - name: docs-read\n      effect: allow\n      protocol: mcp\n      match: { tools: [read_doc], uris: [\"docs://**\"] }\n",
    )
    .unwrap();
    let out = Command::new(support::bin())
        .args(["sidecar", "--check", "--policy"])
        .arg(&policy)
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning:")
            && err.contains("spec.rules[0] (name \"docs-read\") can never match"),
        "{err}"
    );
    // The shipped examples carry no such rule.
    for entry in std::fs::read_dir(support::root().join("examples/action-policies")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let out = Command::new(support::bin())
            .args(["sidecar", "--check", "--policy"])
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{}: {err}", path.display());
        assert!(!err.contains("warning:"), "{}: {err}", path.display());
    }
}
