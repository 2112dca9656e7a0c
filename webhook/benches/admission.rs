//! Admission webhook benchmark: the real HTTPS server on loopback, driven by
//! concurrent keep-alive HTTP/1.1 clients sending AdmissionReviews for a
//! Deployment with three containers under restricted enforcement, against
//! the same server without evaluation, measured in the same run: answering
//! fixed bytes without reading the review (transport floor), and decoding
//! the review to answer `allowed: true` for its uid (allow-all floor, the
//! least a webhook must do).
//!
//! Each server runs in its own process (this binary re-executed), so its
//! RSS is its own; with `--pin` (default when `taskset` exists) the server
//! is pinned to CPU 0 and the load generator to CPU 1, so they do not
//! compete for a core.
//!
//! ```sh
//! cargo bench -p tollgate-webhook --bench admission -- [--rounds 5] [--seconds 2] [--connections 16] [--rate 2000] [--no-pin]
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
    rounds: usize,
    seconds: u64,
    connections: usize,
    rate: u64,
    pin: bool,
}

fn options() -> Options {
    let mut o = Options {
        rounds: 5,
        seconds: 2,
        connections: 16,
        rate: 2000,
        pin: Command::new("taskset").arg("-V").output().is_ok(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_default();
        match arg.as_str() {
            "--seconds" => o.seconds = value().parse().unwrap(),
            "--rounds" => o.rounds = value().parse::<usize>().unwrap().max(1),
            "--connections" => o.connections = value().parse().unwrap(),
            "--rate" => o.rate = value().parse().unwrap(),
            "--no-pin" => o.pin = false,
            // cargo bench passes --bench; anything else is ignored.
            _ => {}
        }
    }
    o
}

/// The policy under test: every built-in set — Pod Security restricted
/// (latest), ownership annotations, and all five compliance packs in every
/// namespace (with the registries the review's images come from allowed).
fn bench_policy() -> PolicyConfig {
    serde_json::from_value(json!({
        "compliance": {
            "profiles": ["soc2", "hipaa", "pci-dss", "gdpr", "fedramp"],
            "parameters": {"allowedRegistries": ["registry.example.com"]}
        }
    }))
    .unwrap()
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
            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
            "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
            "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8080}}
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
                    "annotations": {"deployscope.dev/owner": "ml-platform", "deployscope.dev/tier": "critical",
                        "deployscope.dev/oncall": "ml-platform-oncall", "deployscope.dev/gitops-repo": "github.com/acme/agents",
                        "deployscope.dev/gitops-path": "clusters/prod/agents/",
                        "deployscope.dev/runbook": "https://runbooks.acme.example/research-agent"}},
                "spec": {
                    "replicas": 3,
                    "selector": {"matchLabels": {"app": "research-agent"}},
                    "template": {
                        "metadata": {"labels": {"app": "research-agent"}},
                        "spec": {
                            "securityContext": {"runAsNonRoot": true, "runAsUser": 65534, "seccompProfile": {"type": "RuntimeDefault"}},
                            "serviceAccountName": "research-agent",
                            "automountServiceAccountToken": false,
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

/// Transport floor: a fixed answer, the body neither decoded nor
/// evaluated (TLS, HTTP and body reading only).
struct Fixed(Bytes);

impl AdmissionHandler for Fixed {
    fn handle(&self, _endpoint: Endpoint, _body: Bytes) -> BoxFuture<'_, Reply> {
        let body = self.0.clone();
        Box::pin(async move { Reply::ok(body) })
    }
}

/// Allow-all floor: the least a webhook kube-apiserver accepts does —
/// decode the review and answer `allowed: true` for its uid — without
/// evaluating anything.
struct AllowAll;

impl AdmissionHandler for AllowAll {
    fn handle(&self, _endpoint: Endpoint, body: Bytes) -> BoxFuture<'_, Reply> {
        Box::pin(async move {
            match tollgate_webhook::review::decode(&body, 64) {
                Ok(request) => Reply::ok(tollgate_webhook::review::encode(
                    &request.uid,
                    &tollgate_policies::engine::Evaluation::default(),
                    None,
                )),
                Err(e) => Reply::error(http::StatusCode::BAD_REQUEST, "BadRequest", &e.to_string()),
            }
        })
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
        let engine = Arc::new(Engine::new(Snapshot::from_config(&bench_policy())));
        let mut webhook = Webhook::new(settings, engine);
        if mode == "transport" {
            let answer = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "response": {"uid": "7f0d2c4e-5b1a-4c8e-9a4f-2f1e3d5c6b7a", "allowed": true}});
            webhook = webhook.handler(Arc::new(Fixed(serde_json::to_vec(&answer).unwrap().into())));
        } else if mode == "allow-all" {
            webhook = webhook.handler(Arc::new(AllowAll));
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
    // The pacer runs on its own thread: OS sleeps are precise to tens of
    // microseconds, the async timer only to a millisecond, which would add
    // up to a millisecond of false latency to every scheduled send.
    let pacer = std::thread::spawn(move || {
        for i in 0..total {
            let at = start + interval * i as u32;
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
            if tx.blocking_send(at).is_err() {
                break;
            }
        }
    });
    let mut latencies_us = Vec::new();
    for t in tasks {
        latencies_us.extend(t.await.unwrap());
    }
    pacer.join().unwrap();
    latencies_us.sort_unstable();
    Run {
        requests: latencies_us.len(),
        seconds: start.elapsed().as_secs_f64(),
        latencies_us,
    }
}

/// Where one request's CPU time goes, in-process (no network, no TLS).
fn breakdown(body: &[u8]) {
    use std::hint::black_box;
    use tollgate_policies::engine::Options;
    use tollgate_webhook::review;
    let snapshot = Snapshot::from_config(&bench_policy());
    let options = Options::default();
    let time = |name: &str, f: &mut dyn FnMut()| {
        for _ in 0..200 {
            f();
        }
        let n = 5_000u32;
        let t = Instant::now();
        for _ in 0..n {
            f();
        }
        let per = t.elapsed() / n;
        println!("  {name:<40} {:>8.1} µs", per.as_secs_f64() * 1e6);
        per
    };
    println!("per-request CPU (in-process, one thread):");
    let request = review::decode(body, 64).unwrap();
    let evaluation = snapshot.validate(&request, &options);
    // The review passes every set: the bench measures the full path of an
    // admitted object, not an early denial.
    assert!(
        evaluation.allowed() && evaluation.verdict.violations.is_empty(),
        "the bench review must pass every built-in set: {:?}",
        evaluation.verdict.violations
    );
    time("for scale: the body into a serde_json Value", &mut || {
        black_box(serde_json::from_slice::<serde_json::Value>(black_box(body)).unwrap());
    });
    let d = time("decode AdmissionReview", &mut || {
        black_box(review::decode(black_box(body), 64).unwrap());
    });
    let v = time("evaluate (validate, every built-in set)", &mut || {
        black_box(snapshot.validate(black_box(&request), &options));
    });
    let m = time("evaluate (mutate, secure defaults)", &mut || {
        black_box(snapshot.mutate(black_box(&request), &options));
    });
    let e = time("encode response", &mut || {
        black_box(review::encode(&request.uid, black_box(&evaluation), None));
    });
    let a = time("build audit event (when auditing is on)", &mut || {
        black_box(tollgate_webhook::audit::event(
            Endpoint::Validate,
            &request,
            &evaluation,
            Duration::from_micros(1),
        ));
    });
    let _ = m;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let admission = tollgate_webhook::Admission::new(
        Arc::new(Engine::new(Snapshot::from_config(&bench_policy()))),
        None,
        tollgate_webhook::Metrics::new(),
        &Settings::default(),
    );
    let bytes = Bytes::copy_from_slice(body);
    time("whole handler (Admission::answer)", &mut || {
        black_box(runtime.block_on(admission.answer(Endpoint::Validate, bytes.clone())));
    });
    println!(
        "  {:<40} {:>8.1} µs",
        "total for /validate (auditing on)",
        (d + v + e + a).as_secs_f64() * 1e6
    );
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
        "admission webhook bench: {} connections, {} rounds of {} s per mode, {} B AdmissionReview (Deployment, 3 containers), servers pinned: {}",
        o.connections,
        o.rounds,
        o.seconds,
        body.len(),
        o.pin
    );
    breakdown(&body);
    // All three servers run side by side and are measured in alternating
    // rounds, so a burst of outside load hits every mode alike; each
    // figure is the median over the rounds.
    let modes = ["transport", "allow-all", "eval"];
    let servers: Vec<Server> = modes.iter().map(|m| Server::start(m, o.pin)).collect();
    let idle: Vec<u64> = servers.iter().map(|s| s.rss_kib().0).collect();
    for server in &servers {
        runtime.block_on(saturate(
            server,
            o.connections,
            Duration::from_secs(1),
            &body,
        ));
    }
    let mut sat: Vec<Vec<Run>> = modes.iter().map(|_| Vec::new()).collect();
    let mut fixed: Vec<Vec<Run>> = modes.iter().map(|_| Vec::new()).collect();
    for _ in 0..o.rounds {
        for (i, server) in servers.iter().enumerate() {
            sat[i].push(runtime.block_on(saturate(server, o.connections, duration, &body)));
        }
    }
    for _ in 0..o.rounds {
        for (i, server) in servers.iter().enumerate() {
            fixed[i].push(runtime.block_on(fixed_rate(
                server,
                o.connections,
                o.rate,
                duration,
                &body,
            )));
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut summary = Vec::new();
    for (i, mode) in modes.iter().enumerate() {
        let (rss, hwm) = servers[i].rss_kib();
        let rate = median(sat[i].iter().map(Run::rate).collect());
        let s50 = median(sat[i].iter().map(|r| r.percentile(0.50)).collect());
        let s99 = median(sat[i].iter().map(|r| r.percentile(0.99)).collect());
        let f50 = median(fixed[i].iter().map(|r| r.percentile(0.50)).collect());
        let f99 = median(fixed[i].iter().map(|r| r.percentile(0.99)).collect());
        let f999 = median(fixed[i].iter().map(|r| r.percentile(0.999)).collect());
        println!(
            "{mode:>9}: saturation {rate:>8.0} req/s  p50 {s50:>6.3} ms  p99 {s99:>6.3} ms | at {} req/s: p50 {f50:>6.3} ms  p99 {f99:>6.3} ms  p99.9 {f999:>6.3} ms | RSS idle {} KiB, now {rss} KiB, peak {hwm} KiB",
            o.rate, idle[i]
        );
        summary.push((rate, f99, hwm));
    }
    for server in servers {
        server.stop();
    }
    let eval = summary[2];
    for (i, floor) in summary[..2].iter().enumerate() {
        println!(
            "eval / {}: throughput {:.2}x, p99 at {} req/s {:.2}x",
            modes[i],
            eval.0 / floor.0,
            o.rate,
            eval.1 / floor.1.max(0.001),
        );
    }
    println!("eval server peak RSS {:.1} MiB", eval.2 as f64 / 1024.0);
}
