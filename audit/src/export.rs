//! Exporters: deliver the journal to SIEMs at least once.
//!
//! Every exporter runs the same driver: read a batch of durable records
//! after its cursor, hand it to its sink, retry what failed with exponential
//! backoff and full jitter (forever — nothing is given up; the spool cap
//! decides what happens when a receiver stays down), write records the
//! receiver refuses permanently (a mapping error, an event it will never
//! accept) to a dead-letter file, and only then move its durable cursor. A
//! crash between delivery and cursor write resends the batch: duplicates
//! carry the same event id (Elasticsearch and Splunk indexes can dedupe on
//! it; Elasticsearch does by `_id`).
//!
//! Exporters never block producers: they read the journal from disk on
//! their own tasks.

use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use rand::Rng;
use tokio::sync::watch;

use crate::config::{BatchSettings, ExporterConfig, Format, RetrySettings};
use crate::journal::Journal;
use crate::metrics::Metrics;
use crate::reader::{Item, Reader};
use crate::{Error, Event};

mod elastic;
mod file;
mod http;
mod splunk;
pub mod syslog;
pub mod tls;
mod webhook;

pub use elastic::ecs_document;

/// What a receiver did with a batch.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Delivery {
    /// Indices (into the batch sent) that failed transiently: resend them.
    pub retry: Vec<usize>,
    /// Indices refused permanently, with the receiver's reason.
    pub rejected: Vec<(usize, String)>,
}

/// Why a whole batch failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    /// What happened.
    pub reason: String,
    /// The receiver refused the request as too large: split it.
    pub too_large: bool,
}

impl Failure {
    pub(crate) fn transient(reason: impl Into<String>) -> Failure {
        Failure {
            reason: reason.into(),
            too_large: false,
        }
    }
}

pub(crate) type SendFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Delivery, Failure>> + Send + 'a>>;

/// A destination.
pub(crate) trait Sink: Send {
    /// Delivers `batch`; resolves when the receiver acknowledged (or not).
    fn send<'a>(&'a mut self, batch: &'a [&'a Item]) -> SendFuture<'a>;
}

/// The payload of one event in the configured form.
pub(crate) fn payload(item: &Item, format: Format) -> serde_json::Value {
    match format {
        Format::Native => serde_json::to_value(&item.event).unwrap_or_default(),
        Format::Ocsf => crate::ocsf::to_ocsf(&item.event, Some(item.seq)),
    }
}

/// Builds the sink of one configured exporter.
pub(crate) fn build(config: &ExporterConfig) -> Result<Box<dyn Sink>, Error> {
    Ok(match config {
        ExporterConfig::Syslog(c) => Box::new(syslog::SyslogSink::new(c)?),
        ExporterConfig::SplunkHec(c) => Box::new(splunk::SplunkSink::new(c)?),
        ExporterConfig::Elasticsearch(c) => Box::new(elastic::ElasticSink::new(c)?),
        ExporterConfig::Webhook(c) => Box::new(webhook::WebhookSink::new(c)?),
        ExporterConfig::File(c) => Box::new(file::FileSink::new(c)?),
    })
}

/// Exponential backoff with full jitter.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub(crate) fn new(retry: &RetrySettings) -> Backoff {
        Backoff {
            initial: retry.initial_backoff.0,
            max: retry.max_backoff.0,
            attempt: 0,
        }
    }

    /// The next delay: uniform in [0, min(max, initial * 2^attempt)].
    pub(crate) fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .initial
            .saturating_mul(1u32.checked_shl(self.attempt.min(30)).unwrap_or(u32::MAX))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::rng().random_range(0..=millis.max(1)))
    }

    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// Appends refused records to `deadletter/<exporter>.jsonl` (fsync'd).
struct DeadLetter {
    path: PathBuf,
}

impl DeadLetter {
    fn write(&self, exporter: &str, entries: &[(&Item, String)]) -> std::io::Result<()> {
        let mut out = Vec::new();
        for (item, reason) in entries {
            let line = serde_json::json!({
                "time": crate::now_rfc3339(),
                "exporter": exporter,
                "seq": item.seq,
                "id": item.event.id,
                "reason": reason,
                "event": item.event,
            });
            out.extend_from_slice(line.to_string().as_bytes());
            out.push(b'\n');
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        f.write_all(&out)?;
        f.sync_data()
    }
}

/// One running exporter.
pub(crate) struct Driver {
    pub name: String,
    pub sink: Box<dyn Sink>,
    pub journal: Journal,
    pub batch: BatchSettings,
    pub retry: RetrySettings,
    pub stop: watch::Receiver<bool>,
}

enum Gathered {
    Batch(Vec<Item>),
    Stopped,
}

/// The reading side of an exporter: the journal after its cursor.
struct Feed {
    name: String,
    reader: Reader,
    head: watch::Receiver<crate::journal::Head>,
    stop: watch::Receiver<bool>,
    batch: BatchSettings,
}

impl Feed {
    /// The next batch: durable records after the last one read, as soon as
    /// `maxRecords` are there or `maxWait` after the first one.
    async fn gather(mut self) -> (Feed, Gathered) {
        let max = self.batch.max_records.max(1);
        let max_bytes = usize::try_from(self.batch.max_bytes.0).unwrap_or(usize::MAX);
        let mut items: Vec<Item> = Vec::new();
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            if *self.stop.borrow() {
                return (self, Gathered::Stopped);
            }
            let durable = self.head.borrow_and_update().seq;
            let want = max - items.len();
            let mut reader = std::mem::replace(&mut self.reader, Reader::new(Path::new(""), 1));
            let joined = tokio::task::spawn_blocking(move || {
                let result = reader.read(durable, want, max_bytes.max(1));
                (reader, result)
            })
            .await;
            let result = match joined {
                Ok((reader, result)) => {
                    self.reader = reader;
                    result
                }
                Err(e) => {
                    tracing::error!(exporter = %self.name, "journal reader task failed: {e}");
                    return (self, Gathered::Stopped);
                }
            };
            match result {
                Ok(mut more) => items.append(&mut more),
                Err(e) => {
                    tracing::warn!(exporter = %self.name, "reading the journal: {e}; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(500)) => {}
                        _ = self.stop.changed() => return (self, Gathered::Stopped),
                    }
                    continue;
                }
            }
            if items.len() >= max {
                return (self, Gathered::Batch(items));
            }
            let now = tokio::time::Instant::now();
            if !items.is_empty() {
                let d = *deadline.get_or_insert(now + self.batch.max_wait.0);
                if now >= d {
                    return (self, Gathered::Batch(items));
                }
            }
            let wake = deadline.unwrap_or(now + Duration::from_secs(1));
            tokio::select! {
                _ = self.head.changed() => {}
                () = tokio::time::sleep_until(wake) => {}
                _ = self.stop.changed() => return (self, Gathered::Stopped),
            }
        }
    }
}

impl Driver {
    /// Runs until `stop` turns true. The next batch is read from the
    /// journal while the current one is being delivered.
    pub(crate) async fn run(mut self) {
        let cursors = self.journal.cursors().clone();
        let feed = Feed {
            name: self.name.clone(),
            reader: Reader::new(self.journal.dir(), cursors.get(&self.name) + 1),
            head: self.journal.subscribe(),
            stop: self.stop.clone(),
            batch: self.batch.clone(),
        };
        let metrics = self.journal.metrics().clone();
        let labels = Metrics::exporter(&self.name);
        let dead = DeadLetter {
            path: self
                .journal
                .dir()
                .join("deadletter")
                .join(format!("{}.jsonl", self.name)),
        };
        let mut next = tokio::spawn(feed.gather());
        loop {
            let (feed, gathered) = match next.await {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::error!(exporter = %self.name, "journal reader task failed: {e}");
                    return;
                }
            };
            let batch = match gathered {
                Gathered::Batch(b) => b,
                Gathered::Stopped => return,
            };
            next = tokio::spawn(feed.gather());
            let Some(last) = batch.last().map(|i| i.seq) else {
                continue;
            };
            if !self.deliver(&batch, &metrics, &labels, &dead).await {
                next.abort();
                return;
            }
            metrics
                .export_sent
                .get_or_create(&labels)
                .inc_by(batch.len() as u64);
            let mut backoff = Backoff::new(&self.retry);
            while let Err(e) = cursors.store(&self.name, last) {
                tracing::error!(exporter = %self.name, "cannot persist the export cursor: {e}");
                if self.sleep(backoff.next_delay()).await {
                    next.abort();
                    return;
                }
            }
            self.journal.wake_maintenance();
        }
    }

    /// Sleeps unless stopped first; returns whether it was stopped.
    async fn sleep(&mut self, d: Duration) -> bool {
        if *self.stop.borrow() {
            return true;
        }
        tokio::select! {
            () = tokio::time::sleep(d) => false,
            _ = self.stop.changed() => true,
        }
    }

    /// Delivers a batch; returns false if stopped before it was delivered.
    async fn deliver(
        &mut self,
        batch: &[Item],
        metrics: &Metrics,
        labels: &crate::metrics::ExporterLabels,
        dead: &DeadLetter,
    ) -> bool {
        let mut pending: Vec<&Item> = batch.iter().collect();
        let mut chunk = pending.len();
        let mut backoff = Backoff::new(&self.retry);
        let mut failures = 0u64;
        while !pending.is_empty() {
            let take = chunk.min(pending.len()).max(1);
            let attempt: Vec<&Item> = pending.iter().take(take).copied().collect();
            let result = tokio::time::timeout(self.retry.timeout.0, self.sink.send(&attempt)).await;
            let result = result.unwrap_or_else(|_| {
                Err(Failure::transient(format!(
                    "no acknowledgement within {}",
                    crate::config::Duration(self.retry.timeout.0)
                )))
            });
            match result {
                Ok(delivery) => {
                    if !delivery.rejected.is_empty() {
                        let entries: Vec<(&Item, String)> = delivery
                            .rejected
                            .iter()
                            .filter_map(|(i, r)| attempt.get(*i).map(|item| (*item, r.clone())))
                            .collect();
                        self.dead_letter(dead, &entries, metrics, labels).await;
                    }
                    let retry: Vec<&Item> = delivery
                        .retry
                        .iter()
                        .filter_map(|i| attempt.get(*i).copied())
                        .collect();
                    let rest: Vec<&Item> = pending.iter().skip(take).copied().collect();
                    let partial = !retry.is_empty();
                    pending = retry.into_iter().chain(rest).collect();
                    if partial {
                        metrics.export_retries.get_or_create(labels).inc();
                        metrics.export_failed.get_or_create(labels).inc();
                        if self.sleep(backoff.next_delay()).await {
                            return false;
                        }
                    } else {
                        backoff.reset();
                        failures = 0;
                    }
                }
                Err(f) if f.too_large => {
                    if take > 1 {
                        chunk = take / 2;
                        continue;
                    }
                    if let Some(item) = attempt.first() {
                        self.dead_letter(dead, &[(*item, f.reason.clone())], metrics, labels)
                            .await;
                    }
                    pending.remove(0);
                }
                Err(f) => {
                    failures += 1;
                    metrics.export_failed.get_or_create(labels).inc();
                    metrics.export_retries.get_or_create(labels).inc();
                    if failures == 1 || failures.is_multiple_of(20) {
                        tracing::warn!(
                            exporter = %self.name,
                            failures,
                            records = pending.len(),
                            "delivery failed, retrying: {}",
                            f.reason
                        );
                    }
                    if self.sleep(backoff.next_delay()).await {
                        return false;
                    }
                }
            }
        }
        true
    }

    async fn dead_letter(
        &mut self,
        dead: &DeadLetter,
        entries: &[(&Item, String)],
        metrics: &Metrics,
        labels: &crate::metrics::ExporterLabels,
    ) {
        for (item, reason) in entries {
            tracing::error!(
                exporter = %self.name,
                seq = item.seq,
                id = %item.event.id,
                "receiver refused a record permanently; kept in {}: {reason}",
                dead.path.display()
            );
        }
        let mut backoff = Backoff::new(&self.retry);
        while let Err(e) = dead.write(&self.name, entries) {
            tracing::error!(exporter = %self.name, "cannot write the dead-letter file: {e}");
            if self.sleep(backoff.next_delay()).await {
                return;
            }
        }
        metrics
            .export_dead_lettered
            .get_or_create(labels)
            .inc_by(entries.len() as u64);
    }
}

/// The host name for syslog HOSTNAME and HEC `host`, read once.
pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "-".to_owned())
}

/// A one-line human summary of an event (for `message` fields).
pub(crate) fn summary(event: &Event) -> String {
    let mut message = format!(
        "{} {} {} {}",
        event.decision.outcome.as_str(),
        event.action.protocol,
        event.action.verb,
        event.action.target
    );
    if let Some(reason) = &event.decision.reason {
        message.push_str(": ");
        message.push_str(reason);
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_full_jitter_up_to_the_ceiling_and_resets() {
        let retry = RetrySettings {
            initial_backoff: crate::config::Duration(Duration::from_millis(100)),
            max_backoff: crate::config::Duration(Duration::from_millis(1000)),
            timeout: crate::config::Duration(Duration::from_secs(1)),
        };
        let mut b = Backoff::new(&retry);
        let ceilings = [100u64, 200, 400, 800, 1000, 1000, 1000];
        let mut maxima = [0u64; 7];
        for _ in 0..200 {
            b.reset();
            for (i, ceiling) in ceilings.iter().enumerate() {
                let d = b.next_delay().as_millis() as u64;
                assert!(d <= *ceiling, "attempt {i}: {d} > {ceiling}");
                maxima[i] = maxima[i].max(d);
            }
        }
        // Jitter spreads delays over the whole range.
        assert!(maxima[4] > 500, "{maxima:?}");
        for _ in 0..100 {
            b.next_delay();
        }
        assert!(
            b.next_delay() <= Duration::from_millis(1000),
            "no overflow after many attempts"
        );
    }
}
