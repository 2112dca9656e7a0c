//! Prometheus metrics of the journal and the exporters. Created once at
//! start; [`crate::AuditHandle::register_metrics`] adds them to the
//! process's registry.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of per-exporter metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExporterLabels {
    /// The exporter's configured name.
    pub exporter: String,
}

/// Labels of records written, by kind.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// `event`, `notice` or `checkpoint`.
    pub kind: String,
}

/// Every metric of the audit trail.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Records made durable, by kind.
    pub records: Family<KindLabels, Counter>,
    /// Time from `record()` to durable, seconds.
    pub append_latency: Histogram,
    /// Duration of each fsync, seconds.
    pub fsync_duration: Histogram,
    /// Records per fsync.
    pub batch_records: Histogram,
    /// Write or fsync failures (each fails its batch, which producers see).
    pub write_errors: Counter,
    /// Signed checkpoints written.
    pub checkpoints: Counter,
    /// Segments sealed.
    pub segments_sealed: Counter,
    /// Sealed segments deleted from the live directory by retention.
    pub segments_deleted: Counter,
    /// Torn tails cut at start.
    pub tail_cuts: Counter,
    /// Bytes in the spool (live segments some consumer still needs).
    pub spool_bytes: Gauge,
    /// The spool cap.
    pub spool_limit_bytes: Gauge,
    /// 1 while the spool is full and events are refused (fail-closed).
    pub spool_full: Gauge,
    /// Events refused because the spool was full.
    pub spool_refused: Counter,
    /// Records dropped unexported (drop-oldest-unexported).
    pub dropped_records: Counter,
    /// Records sent and acknowledged, per exporter.
    pub export_sent: Family<ExporterLabels, Counter>,
    /// Failed delivery attempts, per exporter.
    pub export_failed: Family<ExporterLabels, Counter>,
    /// Retries, per exporter.
    pub export_retries: Family<ExporterLabels, Counter>,
    /// Records the receiver refused permanently (written to the
    /// dead-letter file), per exporter.
    pub export_dead_lettered: Family<ExporterLabels, Counter>,
    /// Records written to the journal but not yet acknowledged, per exporter.
    pub export_lag: Family<ExporterLabels, Gauge>,
    /// Segments copied to the archive.
    pub archived_segments: Counter,
    /// Archived segments deleted after the archive retention.
    pub archive_expired: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            records: Family::default(),
            append_latency: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            fsync_duration: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            batch_records: Histogram::new(exponential_buckets(1.0, 2.0, 14)),
            write_errors: Counter::default(),
            checkpoints: Counter::default(),
            segments_sealed: Counter::default(),
            segments_deleted: Counter::default(),
            tail_cuts: Counter::default(),
            spool_bytes: Gauge::default(),
            spool_limit_bytes: Gauge::default(),
            spool_full: Gauge::default(),
            spool_refused: Counter::default(),
            dropped_records: Counter::default(),
            export_sent: Family::default(),
            export_failed: Family::default(),
            export_retries: Family::default(),
            export_dead_lettered: Family::default(),
            export_lag: Family::default(),
            archived_segments: Counter::default(),
            archive_expired: Counter::default(),
        }
    }
}

impl Metrics {
    /// Registers every metric under the `tollgate_audit_` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("tollgate_audit");
        r.register(
            "records",
            "Records made durable in the journal, by kind",
            self.records.clone(),
        );
        r.register(
            "append_latency_seconds",
            "Time from record() to durable (fsync done)",
            self.append_latency.clone(),
        );
        r.register(
            "fsync_duration_seconds",
            "Duration of each journal fsync",
            self.fsync_duration.clone(),
        );
        r.register(
            "batch_records",
            "Records made durable per fsync (group commit)",
            self.batch_records.clone(),
        );
        r.register(
            "write_errors",
            "Journal write or fsync failures; each failed its batch",
            self.write_errors.clone(),
        );
        r.register(
            "checkpoints",
            "Signed checkpoints written",
            self.checkpoints.clone(),
        );
        r.register(
            "segments_sealed",
            "Journal segments sealed",
            self.segments_sealed.clone(),
        );
        r.register(
            "segments_deleted",
            "Sealed segments deleted from the live directory after export and retention",
            self.segments_deleted.clone(),
        );
        r.register(
            "tail_cuts",
            "Torn journal tails cut back at start (each recorded in the chain)",
            self.tail_cuts.clone(),
        );
        r.register(
            "spool_bytes",
            "Bytes of live segments not yet acknowledged by every exporter",
            self.spool_bytes.clone(),
        );
        r.register(
            "spool_limit_bytes",
            "The spool cap",
            self.spool_limit_bytes.clone(),
        );
        r.register(
            "spool_full",
            "1 while the spool is at its cap and events are refused (fail-closed)",
            self.spool_full.clone(),
        );
        r.register(
            "spool_refused",
            "Events refused because the spool was full",
            self.spool_refused.clone(),
        );
        r.register(
            "dropped_records",
            "Records dropped unexported at the spool cap (each drop recorded in the chain)",
            self.dropped_records.clone(),
        );
        r.register(
            "export_sent",
            "Records delivered and acknowledged by the receiver",
            self.export_sent.clone(),
        );
        r.register(
            "export_failed",
            "Failed delivery attempts",
            self.export_failed.clone(),
        );
        r.register(
            "export_retries",
            "Delivery retries",
            self.export_retries.clone(),
        );
        r.register(
            "export_dead_lettered",
            "Records refused permanently by the receiver and kept in the dead-letter file",
            self.export_dead_lettered.clone(),
        );
        r.register(
            "export_lag_records",
            "Records in the journal not yet acknowledged by the exporter",
            self.export_lag.clone(),
        );
        r.register(
            "archived_segments",
            "Sealed segments copied to the archive",
            self.archived_segments.clone(),
        );
        r.register(
            "archive_expired_segments",
            "Archived segments deleted after the archive retention period",
            self.archive_expired.clone(),
        );
    }

    /// The labels of one exporter.
    pub fn exporter(name: &str) -> ExporterLabels {
        ExporterLabels {
            exporter: name.to_owned(),
        }
    }

    /// Counts one durable record of `kind`.
    pub fn record(&self, kind: &str, n: u64) {
        self.records
            .get_or_create(&KindLabels {
                kind: kind.to_owned(),
            })
            .inc_by(n);
    }
}
