//! Shared by the in-cluster end-to-end tests: the real `tollgate webhook
//! --in-cluster` against the in-process fake API server (there is no
//! kube-apiserver here), driven by the real `kubectl`.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tollgate_testkit::FakeApiServer;

use crate::support_webhook::{self, root};

pub struct Running {
    /// The process.
    pub child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    /// Everything it printed.
    pub fn output(&self) -> String {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            self.stdout.lock().unwrap().join("\n"),
            self.stderr.lock().unwrap().join("\n")
        )
    }
}

pub fn pipe<R: std::io::Read + Send + 'static>(r: R, sink: Arc<Mutex<Vec<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
}

pub fn address_after(lines: &[String], prefix: &str) -> Option<SocketAddr> {
    lines.iter().find_map(|l| {
        let rest = l.trim().strip_prefix(prefix)?;
        rest[..rest.find('/')?].parse().ok()
    })
}

pub fn wait(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn kubectl(server: &FakeApiServer, cache: &Path, args: &[&str]) -> Output {
    Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(server.kubeconfig_path())
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .output()
        .expect("kubectl is not installed: run `make test-deps`")
}

/// The example webhook configurations, without the `${CA_BUNDLE}`
/// placeholder: Tollgate's certificate manager fills the caBundle in.
pub fn store_webhook_configurations(server: &FakeApiServer) {
    let text = std::fs::read_to_string(root().join("examples/webhook-configuration/webhooks.yaml"))
        .unwrap();
    for doc in text.split("\n---") {
        let mut value: Value = yaml_serde::from_str(doc).unwrap();
        if value.is_null() {
            continue;
        }
        for hook in value["webhooks"].as_array_mut().unwrap() {
            hook["clientConfig"]
                .as_object_mut()
                .unwrap()
                .remove("caBundle");
        }
        server.apply(value).unwrap();
    }
}

/// Starts `tollgate webhook --in-cluster` against `server`; returns the
/// process and its HTTPS and metrics addresses.
pub fn start_in_cluster(server: &FakeApiServer, dir: &Path) -> (Running, SocketAddr, SocketAddr) {
    start_in_cluster_with(server, dir, &[])
}

/// Like [`start_in_cluster`], with extra arguments.
pub fn start_in_cluster_with(
    server: &FakeApiServer,
    dir: &Path,
    extra: &[&str],
) -> (Running, SocketAddr, SocketAddr) {
    let mut child = Command::new(support_webhook::binary())
        .current_dir(dir)
        .args([
            "webhook",
            "--in-cluster",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .args(extra)
        .env("KUBECONFIG", server.kubeconfig_path())
        .env("POD_NAMESPACE", "tollgate")
        .env("POD_NAME", "tollgate-webhook-0")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = Arc::new(Mutex::new(Vec::new()));
    let stderr = Arc::new(Mutex::new(Vec::new()));
    pipe(child.stdout.take().unwrap(), Arc::clone(&stdout));
    pipe(child.stderr.take().unwrap(), Arc::clone(&stderr));
    let mut running = Running {
        child,
        stdout,
        stderr,
    };
    let mut found = None;
    wait("the webhook to start", Duration::from_secs(30), || {
        let lines = running.stdout.lock().unwrap().clone();
        found = address_after(&lines, "https://").zip(address_after(&lines, "http://"));
        if let Ok(Some(status)) = running.child.try_wait() {
            panic!("tollgate webhook exited ({status}):\n{}", running.output());
        }
        found.is_some()
    });
    let (https, metrics) = found.unwrap();
    (running, https, metrics)
}

pub async fn cluster_with_webhook_configurations() -> FakeApiServer {
    let server = FakeApiServer::start().await.unwrap();
    for ns in ["tollgate", "agents"] {
        server
            .apply(serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
            .unwrap();
    }
    store_webhook_configurations(&server);
    server
}
