//! Shared support for the sidecar's end-to-end tests: the real `tollgate`
//! binary started with a policy on loopback, its audit log and metrics, stub
//! upstreams (plain and TLS), and helpers to run the Python SDK clients.
#![allow(dead_code)]
// Test support: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

pub mod kube;
pub mod upstream;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The `tollgate` binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tollgate"))
}

/// The project root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A free loopback port (bound and released; good enough on loopback).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` until it returns `Some`, or panics after `timeout` with `what`.
pub async fn eventually<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A running `tollgate sidecar`.
pub struct Sidecar {
    child: Child,
    /// The proxy listener.
    pub addr: SocketAddr,
    /// The metrics listener.
    pub metrics: SocketAddr,
    /// The working directory (policy, audit log, CA).
    pub dir: tempfile::TempDir,
    /// The policy file.
    pub policy: PathBuf,
    /// The audit log (JSON lines).
    pub audit: PathBuf,
    /// The audit journal, when started with `--audit-dir`.
    pub journal: Option<PathBuf>,
}

impl Sidecar {
    /// Starts the sidecar with `policy` (YAML; `None` leaves the file
    /// missing, or with `--ossa-manifest` among `extra` passes no
    /// `--policy` at all) and extra arguments, and waits until it listens.
    pub async fn start(policy: Option<&str>, extra: &[&str]) -> Sidecar {
        Self::start_with(policy, extra, true).await
    }

    /// Like [`Sidecar::start`]; `wait_ready` false waits only for the
    /// listener (for tests starting without a valid policy).
    pub async fn start_with(policy: Option<&str>, extra: &[&str], wait_ready: bool) -> Sidecar {
        let dir = tempfile::tempdir().unwrap();
        let policy_path = dir.path().join("policy.yaml");
        if let Some(p) = policy {
            std::fs::write(&policy_path, p).unwrap();
        }
        let audit = dir.path().join("audit.jsonl");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut cmd = Command::new(bin());
        cmd.arg("sidecar")
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--metrics-listen")
            .arg(metrics.to_string());
        // Defaults the test did not override.
        let defaults = [
            ("--policy", policy_path.to_str().unwrap()),
            ("--audit-log", audit.to_str().unwrap()),
            ("--policy-poll", "200ms"),
        ];
        // An OSSA manifest without a policy: the baseline alone decides.
        let manifest_only = policy.is_none() && extra.contains(&"--ossa-manifest");
        for (flag, value) in defaults {
            let skipped = manifest_only && flag == "--policy";
            if !extra.contains(&flag) && !skipped {
                cmd.arg(flag).arg(value);
            }
        }
        cmd.args(extra)
            .env("RUST_LOG", "info")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY")
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("sidecar.log")).unwrap(),
            ));
        let child = cmd.spawn().expect("start tollgate sidecar");
        let mut sidecar = Sidecar {
            child,
            addr,
            metrics,
            policy: policy_path,
            audit,
            journal: extra
                .iter()
                .position(|a| *a == "--audit-dir")
                .and_then(|i| extra.get(i + 1))
                .map(PathBuf::from),
            dir,
        };
        let path = if wait_ready { "/readyz" } else { "/healthz" };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = sidecar.child.try_wait().unwrap() {
                panic!("the sidecar exited with {status}:\n{}", sidecar.log());
            }
            if let Ok((200, _)) = http_get(metrics, path).await {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the sidecar never became ready:\n{}",
                sidecar.log()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        sidecar
    }

    /// The proxy URL (`http://addr`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What the sidecar logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sidecar.log")).unwrap_or_default()
    }

    /// The audit events written so far (read back with `tollgate audit
    /// tail` when the sidecar writes a journal).
    pub fn events(&self) -> Vec<Value> {
        if let Some(journal) = &self.journal {
            let out = Command::new(bin())
                .args(["audit", "tail", "--format", "json", "-n", "1000000"])
                .arg(journal)
                .output()
                .unwrap();
            return String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
        }
        let Ok(file) = std::fs::File::open(&self.audit) else {
            return Vec::new();
        };
        BufReader::new(file)
            .lines()
            .map_while(Result::ok)
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(&l).unwrap())
            .collect()
    }

    /// Waits until at least `n` events satisfy `pred`, and returns those.
    pub async fn events_where(&self, n: usize, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        eventually(
            Duration::from_secs(10),
            &format!("{n} matching audit events"),
            || {
                let found: Vec<Value> = self.events().into_iter().filter(|e| pred(e)).collect();
                (found.len() >= n).then_some(found)
            },
        )
        .await
    }

    /// The metrics text.
    pub async fn metrics_text(&self) -> String {
        http_get(self.metrics, "/metrics").await.unwrap().1
    }

    /// The value of the sample whose line starts with `prefix` (a name with
    /// its labels), if present.
    pub async fn metric(&self, prefix: &str) -> Option<f64> {
        let text = self.metrics_text().await;
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    /// Replaces the policy file atomically.
    pub fn write_policy(&self, yaml: &str) {
        let tmp = self.dir.path().join(".policy.tmp");
        std::fs::write(&tmp, yaml).unwrap();
        std::fs::rename(&tmp, &self.policy).unwrap();
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Sidecar {
    /// Sends SIGTERM and waits (up to `timeout`) for the process to exit.
    pub async fn terminate(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the sidecar did not exit:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain GET on loopback, returning status and body.
pub async fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let req = http::Request::get(format!("http://{addr}{path}"))
        .body(String::new())
        .unwrap();
    let (status, _, body) = send(addr, req).await?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Sends `req` over a fresh HTTP/1.1 connection to `addr` (the request's
/// URI is written as given: absolute-form makes it a proxy request).
pub async fn send<B: Into<bytes::Bytes>>(
    addr: SocketAddr,
    req: http::Request<B>,
) -> Result<(u16, http::HeaderMap, bytes::Bytes), String> {
    use http_body_util::BodyExt;
    let req = req.map(|b| http_body_util::Full::new(b.into()));
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok((parts.status.as_u16(), parts.headers, body))
}

/// Sends a request through the proxy at `proxy` to `url` (absolute-form).
pub async fn via_proxy(
    proxy: SocketAddr,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, http::HeaderMap, Value) {
    let uri: http::Uri = url.parse().unwrap();
    let mut req = http::Request::builder()
        .method(method)
        .uri(url)
        .header("host", uri.authority().unwrap().as_str());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let (status, headers, bytes) = send(proxy, req.body(body.to_owned()).unwrap())
        .await
        .unwrap();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, headers, value)
}

/// Fails the test with a pointer to `make test-deps` when a Python module
/// is missing.
pub fn require_python(modules: &[&str]) {
    let probe = modules
        .iter()
        .map(|m| format!("import {m}"))
        .collect::<Vec<_>>()
        .join("; ");
    let ok = Command::new("python3")
        .args(["-c", &probe])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "Python modules {modules:?} are missing: run `make test-deps` (installs tests/requirements.txt)"
    );
}

/// Fails the test with a pointer to `make test-deps` when a program is
/// missing.
pub fn require_program(name: &str) {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "`{name}` is missing: run `make test-deps`");
}

/// A Python script from `tests/python`.
pub fn python_script(name: &str) -> PathBuf {
    root().join("tests/python").join(name)
}

/// Starts the MCP server of `tests/python/mcp_server.py` (official Python
/// SDK, Streamable HTTP) on `port` and waits until it accepts connections.
/// The process is killed when the handle drops.
pub async fn start_mcp_server(port: u16) -> tokio::process::Child {
    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg(python_script("mcp_server.py"))
        .arg(port.to_string())
        .env("PYTHONUNBUFFERED", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("start the MCP server");
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the MCP server exited with {status}");
        }
        assert!(Instant::now() < deadline, "the MCP server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child
}

/// Runs `cmd` to completion within `timeout` (killing it after), returning
/// its exit status, stdout and stderr.
pub async fn run_bounded(
    mut cmd: tokio::process::Command,
    timeout: Duration,
) -> (Option<i32>, String, String) {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().expect("spawn");
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(out)) => (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ),
        Ok(Err(e)) => panic!("waiting for the process failed: {e}"),
        Err(_) => panic!("the process did not finish within {timeout:?}"),
    }
}

/// A test CA and a server certificate for `localhost` and `127.0.0.1`.
pub struct TestCa {
    /// The CA.
    pub ca: tollgate_certs::Authority,
    /// Where `ca.crt` was written.
    pub ca_file: PathBuf,
    /// The server certificate and key.
    pub server: tollgate_certs::CertifiedPair,
}

impl TestCa {
    /// Generates one into `dir`.
    pub fn new(dir: &Path) -> TestCa {
        let ca = tollgate_certs::Authority::generate(
            "Tollgate test upstream CA",
            time::Duration::days(1),
        )
        .unwrap();
        let ca_file = dir.join("upstream-ca.crt");
        std::fs::write(&ca_file, ca.cert_pem()).unwrap();
        let server = ca
            .issue_server(
                &["localhost".into(), "127.0.0.1".into()],
                time::Duration::days(1),
            )
            .unwrap();
        TestCa {
            ca,
            ca_file,
            server,
        }
    }

    /// A rustls server config presenting the server certificate.
    pub fn server_config(&self, alpn: &[&[u8]]) -> std::sync::Arc<rustls::ServerConfig> {
        let key = tollgate_certs::certified_key(
            self.server.cert_pem.as_bytes(),
            self.server.key_pem.as_bytes(),
        )
        .unwrap();
        let resolver = std::sync::Arc::new(rustls::sign::SingleCertAndKey::from(key));
        std::sync::Arc::new(tollgate_certs::server_config(resolver, alpn).unwrap())
    }
}

/// An event's decision outcome.
pub fn outcome(e: &Value) -> &str {
    e["decision"]["outcome"].as_str().unwrap_or_default()
}

/// An event's rule.
pub fn rule(e: &Value) -> &str {
    e["decision"]["rule"].as_str().unwrap_or_default()
}

/// Starts `tests/python/<script> PORT LOG` (a real server that records
/// every operation it executes in LOG, one JSON line each) and waits until
/// it listens.
pub async fn start_logging_server(script: &str, port: u16, log: &Path) -> tokio::process::Child {
    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg(python_script(script))
        .arg(port.to_string())
        .arg(log)
        .env("PYTHONUNBUFFERED", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("start the server");
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{script} exited with {status}");
        }
        assert!(Instant::now() < deadline, "{script} did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child
}

/// The operations a logging server recorded.
pub fn executed(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
