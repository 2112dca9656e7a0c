//! Admission webhook benchmark: the real HTTPS server on loopback, driven by
//! concurrent keep-alive HTTP/1.1 clients sending AdmissionReviews for a
//! Deployment with three containers under restricted enforcement, against
//! the same server answering a fixed response without evaluation (the
//! floor), measured in the same run.
//!
//! Each server runs in its own process (this binary re-executed), so its
//! RSS is its own; with `--pin` (default when `taskset` exists) the server
//! is pinned to CPU 0 and the load generator to CPU 1, so they do not
//! compete for a core.
//!
//! ```sh
//! cargo bench -p tollgate-webhook --bench admission -- [--seconds 10] [--connections 16] [--rate 2000] [--no-pin]
//! ```

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader, Write as _};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpStream;
use tollgate_policies::config::PolicyConfig;
use tollgate_policies::engine::{Engine, Snapshot};
use tollgate_webhook::{AdmissionHandler, BoxFuture, Endpoint, Reply, Settings, Webhook};

const SERVER_ENV: &str = "TOLLGATE_BENCH_SERVER";

struct Options {
    seconds: u64,
    connections: usize,
    rate: u64,
    pin: bool,
}

fn options() -> Options {
    let mut o = Options {
        seconds: 10,
        connections: 16,
        rate: 2000,
        pin: Command::new("taskset").arg("-V").output().is_ok(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_default();
        match arg.as_str() {
            "--seconds" => o.seconds = value().parse().unwrap(),
            "--connections" => o.connections = value().parse().unwrap(),
            "--rate" => o.rate = value().parse().unwrap(),
            "--no-pin" => o.pin = false,
            // cargo bench passes --bench; anything else is ignored.
            _ => {}
        }
    }
    o
}

fn deployment_review() -> Vec<u8> {
    let container = |name: &str, image: &str| {
        json!({
            "name": name,
            "image": image,
            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
            "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "MODEL", "value": "small"}],
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
            "securityContext": {
                "allowPrivilegeEscalation": false,
                "readOnlyRootFilesystem": true,
                "capabilities": {"drop": ["ALL"]}
            },
            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}]
        })
    };
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "7f0d2c4e-5b1a-4c8e-9a4f-2f1e3d5c6b7a",
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "requestKind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "requestResource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "name": "research-agent", "namespace": "agents", "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:ci:deployer", "groups": ["system:serviceaccounts", "system:authenticated"]},
            "object": {
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "research-agent", "namespace": "agents",
                    "labels": {"app": "research-agent"},
                    "annotations": {"deployscope.dev/owner": "ml-platform", "deployscope.dev/tier": "critical"}},
                "spec": {
                    "replicas": 3,
                    "selector": {"matchLabels": {"app": "research-agent"}},
                    "template": {
                        "metadata": {"labels": {"app": "research-agent"}},
                        "spec": {
                            "securityContext": {"runAsNonRoot": true, "runAsUser": 65534, "seccompProfile": {"type": "RuntimeDefault"}},
                            "containers": [
                                container("agent", "registry.example.com/agents/research:1.4.2"),
                                container("tools", "registry.example.com/agents/mcp-tools:0.9.0"),
                                container("exporter", "registry.example.com/observability/exporter:2.1.0")
                            ],
                            "volumes": [{"name": "tmp", "emptyDir": {}}]
                        }
                    }
                }
            },
            "oldObject": null, "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    }))
    .unwrap()
}

/// The floor: a fixed, valid answer without decoding or evaluating.
struct Fixed(Bytes);

impl AdmissionHandler for Fixed {
    fn handle(&self, _endpoint: Endpoint, _body: Bytes) -> BoxFuture<'_, Reply> {
        let body = self.0.clone();
        Box::pin(async move { Reply::ok(body) })
    }
}

/// Server mode: serve until stdin closes.
fn serve(mode: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let state = tempfile::tempdir().unwrap();
        let settings = Settings {
            listen: "127.0.0.1:0".parse().unwrap(),
            metrics_listen: "127.0.0.1:0".parse().unwrap(),
            state_dir: state.path().to_owned(),
            ..Settings::default()
        };
        let engine = Arc::new(Engine::new(Snapshot::from_config(&PolicyConfig::default())));
        let mut webhook = Webhook::new(settings, engine);
        if mode == "floor" {
            let answer = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "response": {"uid": "7f0d2c4e-5b1a-4c8e-9a4f-2f1e3d5c6b7a", "allowed": true}});
            webhook = webhook.handler(Arc::new(Fixed(serde_json::to_vec(&answer).unwrap().into())));
        }
        let bound = webhook.bind().await.unwrap();
        let ca = std::fs::read_to_string(state.path().join("ca.crt")).unwrap();
        println!("READY {} {}", bound.local_addr(), ca.replace('\n', "|"));
        std::io::stdout().flush().unwrap();
        let stop = async {
            tokio::task::spawn_blocking(|| {
                let mut line = String::new();
                let _ = std::io::stdin().read_line(&mut line);
            })
            .await
            .ok();
        };
        bound.serve(stop).await.unwrap();
    });
}

struct Server {
    child: Child,
    addr: SocketAddr,
    ca: Vec<u8>,
}

impl Server {
    fn start(mode: &str, pin: bool) -> Server {
        let exe = std::env::current_exe().unwrap();
        let mut cmd = if pin {
            let mut c = Command::new("taskset");
            c.args(["-c", "0"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        let mut child = cmd
            .env(SERVER_ENV, mode)
            .env("RUST_LOG", "error")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let mut parts = line.trim().splitn(3, ' ');
        assert_eq!(parts.next(), Some("READY"), "{line}");
        let addr = parts.next().unwrap().parse().unwrap();
        let ca = parts.next().unwrap().replace('|', "\n").into_bytes();
        Server { child, addr, ca }
    }

    fn rss_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    fn stop(mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr, ca: &[u8]) -> Sender {
    let mut config = tollgate_certs::client_config(ca).unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

async fn send(sender: &mut Sender, body: &Bytes) {
    sender.ready().await.unwrap();
    let request = Request::post("/validate")
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(body.clone()))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    assert!(bytes.len() > 20);
}

struct Run {
    requests: usize,
    seconds: f64,
    latencies_us: Vec<u64>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
    fn percentile(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies_us.len() - 1) as f64 * p).round() as usize;
        self.latencies_us[i] as f64 / 1000.0
    }
}

/// Closed loop: every connection sends back to back.
async fn saturate(server: &Server, connections: usize, duration: Duration, body: &Bytes) -> Run {
    let mut tasks = Vec::new();
    let start = Instant::now();
    let end = start + duration;
    for _ in 0..connections {
        let (addr, ca, body) = (server.addr, server.ca.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut sender = connect(addr, &ca).await;
            let mut lat = Vec::new();
            while Instant::now() < end {
                let t = Instant::now();
                send(&mut sender, &body).await;
                lat.push(t.elapsed().as_micros() as u64);
            }
            lat
        }));
    }
    let mut latencies_us = Vec::new();
    for t in tasks {
        latencies_us.extend(t.await.unwrap());
    }
    latencies_us.sort_unstable();
    Run {
        requests: latencies_us.len(),
        seconds: start.elapsed().as_secs_f64(),
        latencies_us,
    }
}

/// Open loop at a fixed offered rate; latency counts from the scheduled
/// send time, so queueing behind a slow answer is measured.
async fn fixed_rate(
    server: &Server,
    connections: usize,
    rate: u64,
    duration: Duration,
    body: &Bytes,
) -> Run {
    let total = (rate as f64 * duration.as_secs_f64()) as usize;
    let (tx, rx) = tokio::sync::mpsc::channel::<Instant>(total.max(1));
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (addr, ca, body, rx) = (
            server.addr,
            server.ca.clone(),
            body.clone(),
            Arc::clone(&rx),
        );
        tasks.push(tokio::spawn(async move {
            let mut sender = connect(addr, &ca).await;
            let mut lat = Vec::new();
            loop {
                let scheduled = { rx.lock().await.recv().await };
                let Some(scheduled) = scheduled else { break };
                send(&mut sender, &body).await;
                lat.push(scheduled.elapsed().as_micros() as u64);
            }
            lat
        }));
    }
    // Let the connections handshake before the clock starts.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    for i in 0..total {
        let at = start + interval * i as u32;
        tokio::time::sleep_until(at.into()).await;
        tx.send(at).await.unwrap();
    }
    drop(tx);
    let mut latencies_us = Vec::new();
    for t in tasks {
        latencies_us.extend(t.await.unwrap());
    }
    latencies_us.sort_unstable();
    Run {
        requests: latencies_us.len(),
        seconds: start.elapsed().as_secs_f64(),
        latencies_us,
    }
}

fn main() {
    if let Ok(mode) = std::env::var(SERVER_ENV) {
        serve(&mode);
        return;
    }
    let o = options();
    if o.pin {
        // The load generator (this process) takes CPU 1; servers get CPU 0.
        let _ = Command::new("taskset")
            .args(["-a", "-cp", "1", &std::process::id().to_string()])
            .output();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let body = Bytes::from(deployment_review());
    let duration = Duration::from_secs(o.seconds);
    println!(
        "admission webhook bench: {} connections, {} s per run, {} B AdmissionReview (Deployment, 3 containers), server pinned: {}",
        o.connections,
        o.seconds,
        body.len(),
        o.pin
    );
    let mut results = Vec::new();
    for mode in ["floor", "eval"] {
        let server = Server::start(mode, o.pin);
        let (rss_idle, _) = server.rss_kib();
        runtime.block_on(saturate(
            &server,
            o.connections,
            Duration::from_secs(1),
            &body,
        ));
        let sat = runtime.block_on(saturate(&server, o.connections, duration, &body));
        let fixed = runtime.block_on(fixed_rate(&server, o.connections, o.rate, duration, &body));
        let (rss, hwm) = server.rss_kib();
        server.stop();
        println!(
            "{mode:>5}: saturation {:>8.0} req/s  p50 {:>6.3} ms  p99 {:>6.3} ms | at {} req/s offered: {:>7.0} req/s  p50 {:>6.3} ms  p99 {:>6.3} ms  p99.9 {:>6.3} ms | RSS idle {} KiB, after load {} KiB, peak {} KiB",
            sat.rate(),
            sat.percentile(0.50),
            sat.percentile(0.99),
            o.rate,
            fixed.rate(),
            fixed.percentile(0.50),
            fixed.percentile(0.99),
            fixed.percentile(0.999),
            rss_idle,
            rss,
            hwm
        );
        results.push((mode, sat, fixed, hwm));
    }
    let floor = &results[0];
    let eval = &results[1];
    println!(
        "ratio eval/floor: throughput {:.2}x, p99 at {} req/s {:.2}x; eval peak RSS {:.1} MiB",
        eval.1.rate() / floor.1.rate(),
        o.rate,
        eval.2.percentile(0.99) / floor.2.percentile(0.99).max(0.001),
        eval.3 as f64 / 1024.0
    );
}
