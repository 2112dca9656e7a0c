//! The sidecar benchmark: on loopback, in one run, the same load against
//! (1) the upstream directly, (2) `tollgate sidecar` (release build, a
//! 20-rule policy, auditing into the journal) as a forward proxy, and (3) nginx as a
//! keep-alive reverse proxy, for (a) a 1 KiB plain-HTTP GET and (b) an MCP
//! `tools/call`. Reports added latency (p50/p99) at a fixed 1,000 req/s,
//! saturation throughput as ratios to direct and to nginx, the sidecar's
//! RSS under load and CPU per 1,000 req/s.
//!
//! `cargo bench --bench sidecar` (needs nginx: `make test-deps`).
//! `TOLLGATE_BENCH_SECONDS` sets the length of each phase (default 10);
//! `TOLLGATE_BENCH_AUDIT=jsonl` records to JSON lines instead of the journal.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

const MCP_CALL: &str = r#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"search_docs","arguments":{"query":"rotate credentials","limit":10}}}"#;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("sidecar: bench");
        return;
    }
    let seconds: u64 = std::env::var("TOLLGATE_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let dir = tempfile::tempdir().unwrap();
    let upstream_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let upstream = upstream_rt.block_on(start_upstream());
    let sidecar = start_sidecar(dir.path(), upstream);
    let nginx = start_nginx(dir.path(), upstream);
    let load = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    load.block_on(async {
        wait_port(sidecar.addr).await;
        wait_port(nginx.addr).await;
    });
    println!(
        "# tollgate sidecar benchmark: {seconds}s per phase, {} cores, sidecar worker threads: {}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        workers()
    );
    for payload in [Payload::Http1k, Payload::McpCall] {
        let targets = [
            Target::Direct(upstream),
            Target::Sidecar(sidecar.addr, upstream),
            Target::Nginx(nginx.addr),
        ];
        let mut results = Vec::new();
        for target in targets {
            // Warm up connections and caches.
            load.block_on(fixed_rate(target, payload, 500, Duration::from_secs(1)));
            let cpu_before = sidecar_cpu(&sidecar, &nginx, target);
            let started = Instant::now();
            let latencies = load.block_on(fixed_rate(
                target,
                payload,
                1000,
                Duration::from_secs(seconds),
            ));
            let cpu = (sidecar_cpu(&sidecar, &nginx, target) - cpu_before)
                / started.elapsed().as_secs_f64();
            let throughput = load.block_on(saturate(
                target,
                payload,
                32,
                Duration::from_secs(seconds.div_ceil(2)),
            ));
            let rss = match target {
                Target::Sidecar(..) => rss_kib(sidecar.child.id()),
                _ => (0, 0),
            };
            results.push(Result {
                name: target.name(),
                p50: percentile(&latencies, 0.50),
                p99: percentile(&latencies, 0.99),
                errors: latencies.iter().filter(|l| **l == u64::MAX).count(),
                throughput,
                cpu,
                rss,
            });
        }
        report(payload, &results);
    }
    drop(nginx);
    drop(sidecar);
    let journal = dir.path().join("journal");
    if journal.exists() {
        let events = Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args(["audit", "tail", "--format", "json", "-n", "100000000"])
            .arg(&journal)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).lines().count())
            .unwrap_or(0);
        println!(
            "\naudit events in the sidecar's journal (durable, hash-chained, signed): {events}"
        );
    } else {
        let events = std::fs::read_to_string(dir.path().join("audit.jsonl"))
            .map(|t| t.lines().count())
            .unwrap_or(0);
        println!("\naudit events written as JSON lines: {events}");
    }
}

#[derive(Clone, Copy)]
enum Payload {
    Http1k,
    McpCall,
}

impl Payload {
    fn name(self) -> &'static str {
        match self {
            Payload::Http1k => "(a) 1 KiB plain HTTP GET",
            Payload::McpCall => "(b) MCP tools/call (JSON-RPC POST)",
        }
    }
}

#[derive(Clone, Copy)]
enum Target {
    Direct(SocketAddr),
    Sidecar(SocketAddr, SocketAddr),
    Nginx(SocketAddr),
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Direct(_) => "direct",
            Target::Sidecar(..) => "tollgate sidecar",
            Target::Nginx(_) => "nginx (keep-alive reverse proxy)",
        }
    }

    fn connect_addr(self) -> SocketAddr {
        match self {
            Target::Direct(a) | Target::Sidecar(a, _) | Target::Nginx(a) => a,
        }
    }

    fn request(self, payload: Payload) -> http::Request<Full<Bytes>> {
        let (path, method, body) = match payload {
            Payload::Http1k => ("/1k", "GET", Bytes::new()),
            Payload::McpCall => ("/mcp", "POST", Bytes::from_static(MCP_CALL.as_bytes())),
        };
        let (uri, host) = match (self, payload) {
            // The policy's MCP route names the upstream as localhost; plain
            // HTTP goes to it by address.
            (Target::Sidecar(_, up), Payload::McpCall) => {
                let host = format!("localhost:{}", up.port());
                (format!("http://{host}{path}"), host)
            }
            (Target::Sidecar(_, up), Payload::Http1k) => {
                (format!("http://{up}{path}"), up.to_string())
            }
            (Target::Direct(a) | Target::Nginx(a), _) => (path.to_owned(), a.to_string()),
        };
        let mut req = http::Request::builder()
            .method(method)
            .uri(uri)
            .header("host", host);
        if matches!(payload, Payload::McpCall) {
            req = req
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream");
        }
        req.body(Full::new(body)).unwrap()
    }
}

struct Result {
    name: &'static str,
    p50: u64,
    p99: u64,
    errors: usize,
    throughput: f64,
    cpu: f64,
    rss: (u64, u64),
}

fn report(payload: Payload, results: &[Result]) {
    let direct = &results[0];
    let nginx = &results[2];
    println!("\n## {}\n", payload.name());
    println!(
        "| path | p50 µs | p99 µs | added p50 µs | added p99 µs | saturation req/s | × direct | × nginx | CPU cores per 1,000 req/s | errors |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for r in results {
        println!(
            "| {} | {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {} | {} |",
            r.name,
            r.p50,
            r.p99,
            r.p50 as i64 - direct.p50 as i64,
            r.p99 as i64 - direct.p99 as i64,
            r.throughput,
            r.throughput / direct.throughput,
            r.throughput / nginx.throughput,
            if r.cpu > 0.0 {
                format!("{:.3}", r.cpu)
            } else {
                "-".into()
            },
            r.errors,
        );
    }
    let sidecar = &results[1];
    println!(
        "\nsidecar RSS after the phase: {:.1} MiB (peak {:.1} MiB)",
        sidecar.rss.0 as f64 / 1024.0,
        sidecar.rss.1 as f64 / 1024.0
    );
}

fn percentile(latencies: &[u64], p: f64) -> u64 {
    let mut ok: Vec<u64> = latencies
        .iter()
        .copied()
        .filter(|l| *l != u64::MAX)
        .collect();
    if ok.is_empty() {
        return 0;
    }
    ok.sort_unstable();
    ok[((ok.len() as f64 - 1.0) * p).round() as usize]
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connection(addr: SocketAddr) -> Sender {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

/// One request; its latency in µs (`u64::MAX` on failure).
async fn one(sender: &mut Sender, target: Target, payload: Payload, since: Instant) -> u64 {
    if sender.ready().await.is_err() {
        return u64::MAX;
    }
    match sender.send_request(target.request(payload)).await {
        Ok(resp) => {
            let ok = resp.status().is_success();
            if resp.into_body().collect().await.is_err() || !ok {
                return u64::MAX;
            }
            since.elapsed().as_micros() as u64
        }
        Err(_) => u64::MAX,
    }
}

/// Open-loop load at `rate` req/s over a pool of keep-alive connections
/// (latency from the moment each request is sent).
async fn fixed_rate(target: Target, payload: Payload, rate: u64, duration: Duration) -> Vec<u64> {
    let (idle_tx, mut idle_rx) = tokio::sync::mpsc::unbounded_channel::<Sender>();
    for _ in 0..16 {
        idle_tx
            .send(connection(target.connect_addr()).await)
            .unwrap();
    }
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let total = rate * duration.as_secs();
    let period = Duration::from_nanos(1_000_000_000 / rate);
    let start = tokio::time::Instant::now();
    for i in 0..total {
        let at = start + period * i as u32;
        tokio::time::sleep_until(at).await;
        let mut sender = idle_rx.recv().await.unwrap();
        let idle_tx = idle_tx.clone();
        let done_tx = done_tx.clone();
        tokio::spawn(async move {
            let latency = one(&mut sender, target, payload, Instant::now()).await;
            let _ = done_tx.send(latency);
            if latency != u64::MAX {
                let _ = idle_tx.send(sender);
            } else {
                let _ = idle_tx.send(connection(target.connect_addr()).await);
            }
        });
    }
    drop(done_tx);
    let mut out = Vec::with_capacity(total as usize);
    while let Some(l) = done_rx.recv().await {
        out.push(l);
        if out.len() as u64 == total {
            break;
        }
    }
    out
}

/// Closed-loop load with `concurrency` connections; completed req/s.
async fn saturate(target: Target, payload: Payload, concurrency: usize, duration: Duration) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let done = done.clone();
        let stop = stop.clone();
        let mut sender = connection(target.connect_addr()).await;
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if one(&mut sender, target, payload, Instant::now()).await != u64::MAX {
                    done.fetch_add(1, Ordering::Relaxed);
                } else {
                    sender = connection(target.connect_addr()).await;
                }
            }
        }));
    }
    let started = Instant::now();
    let before = done.load(Ordering::Relaxed);
    tokio::time::sleep(duration).await;
    let count = done.load(Ordering::Relaxed) - before;
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    count as f64 / elapsed
}

async fn start_upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let one_k = Bytes::from(vec![b'a'; 1024]);
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            stream.set_nodelay(true).unwrap();
            let one_k = one_k.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: http::Request<hyper::body::Incoming>| {
                        let one_k = one_k.clone();
                        async move {
                            let path = req.uri().path().to_owned();
                            let _ = req.into_body().collect().await;
                            let body = if path == "/mcp" {
                                Bytes::from_static(br#"{"jsonrpc":"2.0","id":42,"result":{"content":[{"type":"text","text":"3 results"}],"isError":false}}"#)
                            } else {
                                one_k
                            };
                            Ok::<_, Infallible>(http::Response::new(Full::new(body)))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

struct Proc {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A 20-rule policy; the rules these requests match come last, so every
/// decision walks the whole list.
fn policy(upstream: SocketAddr) -> String {
    let port = upstream.port();
    let mut rules = String::new();
    for i in 0..9 {
        rules.push_str(&format!(
            "    - {{ name: mcp-{i}, effect: allow, protocol: mcp, match: {{ servers: [server-{i}], tools: [\"tool_{i}_*\"] }} }}\n"
        ));
    }
    for i in 0..5 {
        rules.push_str(&format!(
            "    - {{ name: k8s-{i}, effect: allow, protocol: kubernetes, match: {{ verbs: [get, list], resources: [pods], namespaces: [\"team-{i}-*\"] }} }}\n"
        ));
    }
    for i in 0..4 {
        rules.push_str(&format!(
            "    - {{ name: web-{i}, effect: allow, protocol: http, match: {{ hosts: [\"*.svc-{i}.example\"], methods: [GET] }} }}\n"
        ));
    }
    format!(
        r#"apiVersion: tollgate.dev/v1alpha1
kind: ActionPolicy
metadata: {{ name: bench-20-rules }}
spec:
  routes:
    - {{ name: docs, protocol: mcp, hosts: ["localhost:{port}"] }}
    - {{ name: files, protocol: http, hosts: ["files.example"] }}
  rules:
{rules}    - name: docs-search
      effect: allow
      protocol: mcp
      match:
        servers: [docs]
        methods: [tools/call]
        tools: ["search_*"]
        arguments:
          - {{ pointer: /query, maxLength: 200 }}
          - {{ pointer: /limit, range: {{ min: 1, max: 50 }} }}
    - {{ name: local-reads, effect: allow, protocol: http, match: {{ hosts: ["127.0.0.1"], methods: [GET], paths: ["/1k"] }} }}
"#
    )
}

fn start_sidecar(dir: &Path, upstream: SocketAddr) -> Proc {
    let policy_path = dir.join("policy.yaml");
    std::fs::write(&policy_path, policy(upstream)).unwrap();
    let addr = free_addr();
    let child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["sidecar", "--policy"])
        .arg(&policy_path)
        .args(["--listen", &addr.to_string(), "--workers", &workers()])
        .args(audit_args(dir))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start tollgate sidecar");
    Proc { child, addr }
}

/// Where the sidecar records its decisions: the journal (default) or,
/// with `TOLLGATE_BENCH_AUDIT=jsonl`, the JSON-lines recorder, to show what
/// durability costs.
fn audit_args(dir: &Path) -> Vec<std::ffi::OsString> {
    if std::env::var("TOLLGATE_BENCH_AUDIT").as_deref() == Ok("jsonl") {
        vec!["--audit-log".into(), dir.join("audit.jsonl").into()]
    } else {
        vec![
            "--audit-dir".into(),
            dir.join("journal").into(),
            "--state-dir".into(),
            dir.into(),
        ]
    }
}

/// The sidecar's worker threads (`TOLLGATE_BENCH_WORKERS`, default its own
/// default).
fn workers() -> String {
    std::env::var("TOLLGATE_BENCH_WORKERS").unwrap_or_else(|_| "1".into())
}

fn start_nginx(dir: &Path, upstream: SocketAddr) -> Proc {
    let nginx = ["/usr/sbin/nginx", "/usr/local/sbin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("nginx is missing: run `make test-deps`");
    let addr = free_addr();
    let prefix = dir.join("nginx");
    std::fs::create_dir_all(prefix.join("logs")).unwrap();
    let conf = format!(
        r#"worker_processes 2;
error_log {prefix}/logs/error.log warn;
pid {prefix}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    upstream backend {{ server {upstream}; keepalive 64; }}
    server {{
        listen {addr} reuseport;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
}}
"#,
        prefix = prefix.display()
    );
    let conf_path = prefix.join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let child = Command::new(nginx)
        .arg("-p")
        .arg(&prefix)
        .arg("-c")
        .arg(&conf_path)
        .args(["-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start nginx");
    Proc { child, addr }
}

async fn wait_port(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "{addr} never listened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// CPU seconds used so far by the proxy under test (the sidecar, or nginx's
/// master and workers).
fn sidecar_cpu(sidecar: &Proc, nginx: &Proc, target: Target) -> f64 {
    match target {
        Target::Sidecar(..) => cpu_seconds(sidecar.child.id()),
        Target::Nginx(_) => {
            let master = nginx.child.id();
            cpu_seconds(master) + children(master).into_iter().map(cpu_seconds).sum::<f64>()
        }
        Target::Direct(_) => 0.0,
    }
}

fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 =
        fields[11].parse::<f64>().unwrap_or(0.0) + fields[12].parse::<f64>().unwrap_or(0.0);
    ticks / 100.0
}

fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) {
            let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
            if after.split_whitespace().nth(1) == Some(&pid.to_string()) {
                out.push(child);
            }
        }
    }
    out
}

/// (VmRSS, VmHWM) in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}
