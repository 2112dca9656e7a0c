//! Shared helpers for the end-to-end tests of `tollgate webhook` and
//! `tollgate check`: start the real binary on loopback ports (port 0, read
//! back from its banner), speak TLS to it trusting the CA it uses, and play
//! kube-apiserver's part (send AdmissionReviews to /mutate, apply the JSON
//! Patch, send the result to /validate). There is no kube-apiserver here:
//! these helpers send exactly what it sends and check exactly what it
//! checks (response uid, allowed, status, warnings, patchType + base64
//! patch).

// Test helpers: a panic here is a failed test, as in the tests themselves.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

/// The tollgate binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_tollgate")
}

/// The project root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Reads a file under `examples/admission/`.
pub fn example_review(name: &str) -> Value {
    let path = root().join("examples/admission").join(name);
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

/// A running `tollgate webhook`.
pub struct Webhook {
    child: Option<Child>,
    /// Working directory (the state directory lives in it).
    pub dir: tempfile::TempDir,
    /// The HTTPS address.
    pub https: SocketAddr,
    /// The metrics address.
    pub metrics: SocketAddr,
    /// The CA clients trust.
    pub ca_pem: Vec<u8>,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

/// How to start the webhook.
#[derive(Default)]
pub struct Start<'a> {
    /// Extra command-line arguments.
    pub args: Vec<String>,
    /// A config file's content, written into the working directory.
    pub config: Option<&'a str>,
    /// The CA to trust, when certificate files are given (default: the
    /// generated `.tollgate/ca.crt`).
    pub ca_pem: Option<Vec<u8>>,
    /// An existing working directory.
    pub dir: Option<tempfile::TempDir>,
}

fn reader<R: std::io::Read + Send + 'static>(stream: R, sink: Arc<Mutex<Vec<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            match line {
                Ok(l) => sink.lock().unwrap().push(l),
                Err(_) => break,
            }
        }
    });
}

/// Polls `f` every 20 ms until it returns `Some`, or panics after
/// `timeout` with `what`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn address_after(lines: &[String], prefix: &str) -> Option<SocketAddr> {
    lines.iter().find_map(|l| {
        let rest = l.trim().strip_prefix(prefix)?;
        let end = rest.find('/')?;
        rest[..end].parse().ok()
    })
}

impl Webhook {
    /// Starts with the embedded default (generated certificates) and
    /// `args`.
    pub fn start(args: &[&str]) -> Webhook {
        Self::start_with(Start {
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            ..Start::default()
        })
    }

    /// Starts as described.
    pub fn start_with(start: Start<'_>) -> Webhook {
        let dir = start.dir.unwrap_or_else(|| tempfile::tempdir().unwrap());
        let mut cmd = Command::new(binary());
        cmd.current_dir(dir.path())
            .arg("webhook")
            .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
            .args(&start.args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(config) = start.config {
            let path = dir.path().join("tollgate.yaml");
            std::fs::write(&path, config).unwrap();
            cmd.arg("--config").arg(&path);
        }
        let mut child = cmd.spawn().expect("start tollgate webhook");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        reader(child.stdout.take().unwrap(), Arc::clone(&stdout));
        reader(child.stderr.take().unwrap(), Arc::clone(&stderr));
        let (https, metrics) = {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let lines = stdout.lock().unwrap().clone();
                let https = address_after(&lines, "https://");
                let metrics = address_after(&lines, "http://");
                if let (Some(h), Some(m)) = (https, metrics) {
                    break (h, m);
                }
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "tollgate webhook exited ({status}) before serving:\n{}\n{}",
                        lines.join("\n"),
                        stderr.lock().unwrap().join("\n")
                    );
                }
                assert!(Instant::now() < deadline, "tollgate webhook did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        let ca_pem = start
            .ca_pem
            .unwrap_or_else(|| std::fs::read(dir.path().join(".tollgate/ca.crt")).unwrap());
        let webhook = Webhook {
            child: Some(child),
            dir,
            https,
            metrics,
            ca_pem,
            stdout,
            stderr,
        };
        wait_for(Duration::from_secs(10), "/readyz", || {
            (http_get(webhook.metrics, "/readyz").0 == 200).then_some(())
        });
        webhook
    }

    /// Everything printed on stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().join("\n")
    }

    /// Everything logged on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// A client trusting the webhook's CA, offering HTTP/2 and HTTP/1.1.
    pub fn client(&self) -> reqwest::Client {
        client_for(&self.ca_pem, &[b"h2", b"http/1.1"])
    }

    /// The base URL.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.https)
    }

    /// POSTs an AdmissionReview to an endpoint; returns the HTTP status and
    /// the JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .client()
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(body).unwrap())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// The metrics text.
    pub fn metrics_text(&self) -> String {
        http_get(self.metrics, "/metrics").1
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit (after a signal).
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let child = self.child.as_mut().unwrap();
        wait_for(timeout, "the webhook to exit", || child.try_wait().unwrap())
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take()
            && child.try_wait().ok().flatten().is_none()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- tollgate webhook stdout:\n{}\n--- stderr:\n{}",
                self.stdout(),
                self.stderr()
            );
        }
    }
}

/// A reqwest client trusting `ca_pem`, offering `alpn`.
pub fn client_for(ca_pem: &[u8], alpn: &[&[u8]]) -> reqwest::Client {
    let mut config = tollgate_certs::client_config(ca_pem).unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .tls_info(true)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// A plain-HTTP GET (metrics port): status and body.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return (0, String::new());
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    // The admin port answers with Content-Length; no chunked decoding
    // needed.
    (status, body)
}

/// An AdmissionReview for `object`, as kube-apiserver sends it.
pub fn review(object: &Value, operation: &str, user: &str) -> Value {
    let api_version = object["apiVersion"].as_str().unwrap_or("v1");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let kind = object["kind"].as_str().unwrap();
    let resource = format!("{}s", kind.to_ascii_lowercase());
    let namespace = object["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default");
    let name = object["metadata"]["name"].as_str().unwrap_or("");
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uuid(),
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": resource},
            "requestKind": {"group": group, "version": version, "kind": kind},
            "name": name,
            "namespace": if kind == "Namespace" { name } else { namespace },
            "operation": operation,
            "userInfo": {"username": user, "groups": ["system:authenticated"]},
            "object": object,
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    })
}

/// A random-enough request uid.
pub fn uuid() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:08x}-0000-4000-8000-{:012x}", (t & 0xffff_ffff) as u32, n)
}

/// What kube-apiserver concluded from the webhook's answers.
#[derive(Debug)]
pub struct Admitted {
    /// The object as it would be stored (mutations applied).
    pub object: Value,
    /// Warnings kubectl would print (mutating and validating).
    pub warnings: Vec<String>,
    /// The JSON Patch the mutating webhook returned.
    pub patch: Value,
}

/// A refusal, as kube-apiserver reports it to kubectl.
#[derive(Debug)]
pub struct Refused {
    /// The status code.
    pub code: u64,
    /// The reason.
    pub reason: String,
    /// The message.
    pub message: String,
    /// Warnings returned with the refusal.
    pub warnings: Vec<String>,
}

/// Checks a response the way kube-apiserver does: same apiVersion and
/// kind, uid echoed, `patchType` only with a patch.
pub fn check_response(request: &Value, response: &Value) -> Value {
    assert_eq!(response["apiVersion"], "admission.k8s.io/v1", "{response}");
    assert_eq!(response["kind"], "AdmissionReview", "{response}");
    let r = response["response"].clone();
    assert_eq!(r["uid"], request["request"]["uid"], "uid must be echoed");
    assert!(r["allowed"].is_boolean(), "{r}");
    assert_eq!(
        r.get("patch").is_some(),
        r.get("patchType").is_some(),
        "patch and patchType go together: {r}"
    );
    if let Some(t) = r.get("patchType") {
        assert_eq!(t, "JSONPatch");
    }
    r
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

/// Plays kube-apiserver for one write: /mutate, apply the JSON Patch with
/// the json-patch crate, then /validate the result.
pub async fn admit(
    webhook: &Webhook,
    object: &Value,
    operation: &str,
    user: &str,
) -> Result<Admitted, Refused> {
    let request = review(object, operation, user);
    let (status, body) = webhook.post("/mutate", &request).await;
    assert_eq!(status, 200, "{body}");
    let r = check_response(&request, &body);
    let mut warnings = strings(&r["warnings"]);
    if r["allowed"] != true {
        return Err(refused(&r, warnings));
    }
    let mut mutated = object.clone();
    let patch = match r["patch"].as_str() {
        Some(b64) => {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap();
            let patch: json_patch::Patch = serde_json::from_slice(&raw).unwrap();
            json_patch::patch(&mut mutated, &patch).expect("the webhook's patch applies");
            serde_json::from_slice(&raw).unwrap()
        }
        None => json!([]),
    };
    let request = review(&mutated, operation, user);
    let (status, body) = webhook.post("/validate", &request).await;
    assert_eq!(status, 200, "{body}");
    let r = check_response(&request, &body);
    warnings.extend(strings(&r["warnings"]));
    if r["allowed"] != true {
        return Err(refused(&r, warnings));
    }
    Ok(Admitted {
        object: mutated,
        warnings,
        patch,
    })
}

fn refused(r: &Value, warnings: Vec<String>) -> Refused {
    Refused {
        code: r["status"]["code"].as_u64().unwrap_or(0),
        reason: r["status"]["reason"].as_str().unwrap_or("").to_owned(),
        message: r["status"]["message"].as_str().unwrap_or("").to_owned(),
        warnings,
    }
}

/// Writes `text` into `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// A Pod in `namespace` with one container and the given security context,
/// carrying the ownership annotations the built-in policy requires.
pub fn pod(name: &str, namespace: &str, security_context: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "annotations": {
            "deployscope.dev/owner": "team-a", "deployscope.dev/tier": "standard"}},
        "spec": {"containers": [{"name": "app", "image": "registry.example.com/app:1", "securityContext": security_context}]}
    })
}

/// A pod security context that passes restricted.
pub fn restricted_context() -> Value {
    json!({
        "runAsNonRoot": true,
        "allowPrivilegeEscalation": false,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"}
    })
}

/// A raw TLS connection to the webhook speaking HTTP/1.1 (ALPN), for tests
/// that write requests byte by byte.
pub async fn tls_connect(
    webhook: &Webhook,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut config = tollgate_certs::client_config(&webhook.ca_pem).unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(webhook.https).await.unwrap();
    connector
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap()
}
