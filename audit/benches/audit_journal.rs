//! Audit journal and export benchmark, each against a baseline measured in
//! the same run:
//!
//! 1. durable append through the journal (redaction, JSON, hash chain,
//!    checkpoints, group-commit fsync) with many concurrent producers —
//!    events/s and per-event latency from `record()` to durable — against
//!    raw `write` + `fsync` of the same bytes in batches of the same size,
//!    and against one `fsync` per event;
//! 2. export of the same journal to a real rsyslog over TLS (RFC 5425
//!    framing, each batch confirmed by an orderly close) against rsyslog fed
//!    the same frames by a plain TLS client as fast as it can write.
//!
//! `cargo bench -p tollgate-audit --bench audit_journal` runs the full
//! sizes; under `cargo test` (no `--bench`) a small smoke run checks it
//! still works.

// A benchmark binary: a panic is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

#[path = "../../tests/support_audit/rsyslog.rs"]
mod rsyslog;

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tollgate_audit::config::Format;
use tollgate_audit::export::syslog::{Header, format_message};
use tollgate_audit::reader::Reader;
use tollgate_audit::{
    Actor, AuditConfig, AuditOptions, Decision, Event, EventAction, Outcome, Ownership, Source,
};

struct Sizes {
    events: usize,
    producers: usize,
    rate: usize,
    seconds: usize,
}

fn event(n: usize) -> Event {
    let mut attributes = serde_json::Map::new();
    attributes.insert("tool".into(), serde_json::json!("search_docs"));
    attributes.insert(
        "arguments".into(),
        serde_json::json!({"query": format!("quarterly report {n}"), "limit": 10}),
    );
    Event::new(
        Source::Sidecar,
        Actor {
            user: None,
            groups: vec![],
            service_account: Some("system:serviceaccount:agents:researcher".into()),
            pod: Some(format!("researcher-{}", n % 8)),
            namespace: Some("agents".into()),
            agent: Some("researcher".into()),
        },
        Ownership {
            owner: Some("team-ml".into()),
            tier: Some("standard".into()),
            oncall: Some("#ml-oncall".into()),
        },
        EventAction {
            protocol: "mcp".into(),
            verb: "tools/call".into(),
            target: "docs-server/search_docs".into(),
            attributes,
        },
        Decision {
            outcome: if n.is_multiple_of(10) {
                Outcome::Deny
            } else {
                Outcome::Allow
            },
            rule: Some("allow-docs-search".into()),
            reason: Some("tool allowed for this agent".into()),
            controls: vec!["SOC2 CC6.1".into()],
        },
        42,
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

async fn append(dir: &Path, sizes: &Sizes) -> (f64, Vec<Duration>, f64) {
    let config: AuditConfig = yaml_serde::from_str("{spool: {maxBytes: 8GiB}}").unwrap();
    let (recorder, handle) = tollgate_audit::start(AuditOptions {
        dir: dir.join("journal"),
        state_dir: dir.join("state"),
        signing_key: None,
        config,
    })
    .await
    .unwrap();
    let events: Vec<Event> = (0..sizes.events).map(event).collect();
    let per = sizes.events / sizes.producers;
    let mut chunks: Vec<Vec<Event>> = Vec::new();
    let mut it = events.into_iter();
    for _ in 0..sizes.producers {
        chunks.push(it.by_ref().take(per).collect());
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for chunk in chunks {
        let recorder = recorder.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(chunk.len());
            for e in chunk {
                let t = Instant::now();
                recorder.record(e).await.unwrap();
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::with_capacity(sizes.events);
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    let elapsed = start.elapsed();
    let metrics = handle.journal().metrics().clone();
    handle.shutdown().await.unwrap();
    latencies.sort();
    let rate = latencies.len() as f64 / elapsed.as_secs_f64();
    // Mean records per fsync, from the histogram: appended / batches.
    let mut text = String::new();
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    let value = |name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let batches = value("tollgate_audit_batch_records_count");
    let records = value("tollgate_audit_batch_records_sum");
    (
        rate,
        latencies,
        if batches > 0.0 {
            records / batches
        } else {
            1.0
        },
    )
}

/// Open-loop load at `rate` events/s for `seconds`: each event's latency
/// is measured from the moment it was due (no coordinated omission).
async fn paced(dir: &Path, rate: usize, seconds: usize) -> (f64, Vec<Duration>) {
    let config: AuditConfig = yaml_serde::from_str("{spool: {maxBytes: 8GiB}}").unwrap();
    let (recorder, handle) = tollgate_audit::start(AuditOptions {
        dir: dir.join("paced"),
        state_dir: dir.join("state"),
        signing_key: None,
        config,
    })
    .await
    .unwrap();
    let total = rate * seconds;
    let events: Vec<Event> = (0..total).map(event).collect();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let start = tokio::time::Instant::now();
    for (i, e) in events.into_iter().enumerate() {
        let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
        if due > tokio::time::Instant::now() + Duration::from_millis(1) {
            tokio::time::sleep_until(due).await;
        }
        let recorder = recorder.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            recorder.record(e).await.unwrap();
            let _ = tx.send(due.elapsed());
        });
    }
    drop(tx);
    let mut latencies = Vec::with_capacity(total);
    while let Some(l) = rx.recv().await {
        latencies.push(l);
    }
    let elapsed = start.elapsed();
    handle.shutdown().await.unwrap();
    latencies.sort();
    (latencies.len() as f64 / elapsed.as_secs_f64(), latencies)
}

/// The journal's bytes written again with `write` + `fsync` every
/// `per_sync` records: events/s.
fn raw_baseline(journal: &Path, out: &Path, per_sync: usize) -> f64 {
    let mut lines = Vec::new();
    for seg in tollgate_audit::journal::segment::list(&journal.join("segments")).unwrap() {
        let content = tollgate_audit::journal::segment::read_all(&seg).unwrap();
        lines.extend(content.split_inclusive(|b| *b == b'\n').map(<[u8]>::to_vec));
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out)
        .unwrap();
    let start = Instant::now();
    for chunk in lines.chunks(per_sync.max(1)) {
        let buf: Vec<u8> = chunk.concat();
        f.write_all(&buf).unwrap();
        f.sync_data().unwrap();
    }
    lines.len() as f64 / start.elapsed().as_secs_f64()
}

/// Counts the lines of a growing file, reading only what is new.
struct LineCounter {
    path: std::path::PathBuf,
    offset: u64,
    lines: usize,
}

impl LineCounter {
    fn new(path: &Path) -> LineCounter {
        LineCounter {
            path: path.to_owned(),
            offset: 0,
            lines: 0,
        }
    }

    fn count(&mut self) -> usize {
        use std::io::{Read, Seek, SeekFrom};
        if let Ok(mut f) = std::fs::File::open(&self.path) {
            let _ = f.seek(SeekFrom::Start(self.offset));
            let mut buf = Vec::new();
            if let Ok(n) = f.read_to_end(&mut buf) {
                self.offset += n as u64;
                self.lines += buf.iter().filter(|c| **c == b'\n').count();
            }
        }
        self.lines
    }
}

fn wait_lines(out: &Path, n: usize, timeout: Duration) -> Duration {
    let start = Instant::now();
    let mut counter = LineCounter::new(out);
    while counter.count() < n {
        assert!(
            start.elapsed() < timeout,
            "rsyslog received {} of {n}",
            counter.lines
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

async fn export(dir: &Path, records: usize) -> f64 {
    let rs = rsyslog::Rsyslog::start(&dir.join("rsyslog-export"));
    let yaml = format!(
        "spool: {{maxBytes: 8GiB}}\nexporters:\n  - {{type: syslog, name: rsyslog, address: '127.0.0.1:{}', tls: {{caFile: '{}'}}, batch: {{maxRecords: 2000, maxWait: 20ms}}}}",
        rs.port,
        rs.ca.display()
    );
    let config: AuditConfig = yaml_serde::from_str(&yaml).unwrap();
    let start = Instant::now();
    let (_recorder, handle) = tollgate_audit::start(AuditOptions {
        dir: dir.join("journal"),
        state_dir: dir.join("state"),
        signing_key: None,
        config,
    })
    .await
    .unwrap();
    let out = rs.out.clone();
    let elapsed = tokio::task::spawn_blocking(move || {
        wait_lines(&out, records, Duration::from_secs(600));
        start.elapsed()
    })
    .await
    .unwrap();
    handle.shutdown().await.unwrap();
    records as f64 / elapsed.as_secs_f64()
}

async fn plain_client(dir: &Path, records: usize) -> f64 {
    let rs = rsyslog::Rsyslog::start(&dir.join("rsyslog-plain"));
    let header = Header {
        facility: 13,
        hostname: "bench".into(),
        app_name: "tollgate".into(),
        procid: "1".into(),
        enterprise_id: 32473,
    };
    let mut reader = Reader::new(&dir.join("journal"), 1);
    let mut frames = Vec::new();
    let mut count = 0;
    loop {
        let items = reader.read(u64::MAX, 10_000, 64 << 20).unwrap();
        if items.is_empty() || count >= records {
            break;
        }
        for item in items.iter().take(records - count) {
            let msg = format_message(&header, item, Format::Native);
            frames.extend_from_slice(msg.len().to_string().as_bytes());
            frames.push(b' ');
            frames.extend_from_slice(&msg);
            count += 1;
        }
    }
    let ca = std::fs::read(&rs.ca).unwrap();
    let tls = tollgate_certs::client_config(&ca).unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let start = Instant::now();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", rs.port))
        .await
        .unwrap();
    let mut stream = connector
        .connect("127.0.0.1".try_into().unwrap(), tcp)
        .await
        .unwrap();
    stream.write_all(&frames).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut sink = [0u8; 64];
    while stream.read(&mut sink).await.is_ok_and(|n| n > 0) {}
    let out = rs.out.clone();
    let elapsed = tokio::task::spawn_blocking(move || {
        wait_lines(&out, count, Duration::from_secs(600));
        start.elapsed()
    })
    .await
    .unwrap();
    count as f64 / elapsed.as_secs_f64()
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let sizes = if full {
        Sizes {
            events: 200_000,
            producers: 512,
            rate: 50_000,
            seconds: 4,
        }
    } else {
        Sizes {
            events: 4_000,
            producers: 64,
            rate: 2_000,
            seconds: 1,
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    runtime.block_on(async {
        let (rate, latencies, per_batch) = append(dir, &sizes).await;
        let batched = raw_baseline(&dir.join("journal"), &dir.join("raw-batched"), per_batch.round() as usize);
        let single = raw_baseline(
            &dir.join("journal"),
            &dir.join("raw-single"),
            1,
        );
        println!(
            "audit journal: durable append, {} events, {} concurrent producers",
            latencies.len(),
            sizes.producers
        );
        println!("  journal            {rate:>10.0} events/s  (mean {per_batch:.0} records per fsync)");
        println!(
            "  latency record()->durable  p50 {}  p99 {}  max {}",
            ms(percentile(&latencies, 0.50)),
            ms(percentile(&latencies, 0.99)),
            ms(*latencies.last().unwrap())
        );
        println!("  raw write+fsync, same bytes, same batch size  {batched:>10.0} records/s  -> journal/raw = {:.2}", rate / batched);
        println!("  raw write+fsync per event                     {single:>10.0} records/s  -> journal/raw = {:.1}", rate / single);
        let (achieved, paced_latencies) = paced(dir, sizes.rate, sizes.seconds).await;
        println!(
            "audit journal: open-loop load at {} events/s for {} s: achieved {achieved:.0} events/s",
            sizes.rate, sizes.seconds
        );
        println!(
            "  latency due->durable  p50 {}  p99 {}  p99.9 {}  max {}",
            ms(percentile(&paced_latencies, 0.50)),
            ms(percentile(&paced_latencies, 0.99)),
            ms(percentile(&paced_latencies, 0.999)),
            ms(*paced_latencies.last().unwrap())
        );
        let records = received_records(&dir.join("journal"));
        let export_rate = export(dir, records).await;
        let plain_rate = plain_client(dir, records).await;
        println!("audit export: {records} records to rsyslog over TLS (RFC 5425)");
        println!("  tollgate exporter  {export_rate:>10.0} events/s  (journal read, RFC 5424, confirmed batches)");
        println!("  plain TLS client   {plain_rate:>10.0} events/s  (same frames, one stream, no confirmation)");
        println!("  exporter/plain = {:.2}", export_rate / plain_rate);
    });
}

/// Records in the journal (events, notices and checkpoints are all exported).
fn received_records(journal: &Path) -> usize {
    let mut reader = Reader::new(journal, 1);
    let mut n = 0;
    loop {
        let items = reader.read(u64::MAX, 50_000, 256 << 20).unwrap();
        if items.is_empty() {
            return n;
        }
        n += items.len();
    }
}
