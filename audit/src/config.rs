//! `AuditConfig`: the `audit:` section of the Tollgate configuration file.
//!
//! Every knob has a default a production deployment can start with; unknown
//! keys are refused so a typo never silently falls back to a default.
//! Durations are strings such as `500us`, `2ms`, `10s`, `5m`, `24h`, `7d`,
//! `7y` (a year counts as 366 days, so retention never deletes early) or
//! sums like `1h30m`; sizes are bytes or strings such as `64MiB`, `1GiB`,
//! `500MB`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

mod exporters;

pub use exporters::{
    BatchSettings, ElasticsearchConfig, ExporterConfig, FileConfig, Format, RetrySettings,
    SplunkHecConfig, SyslogConfig, TlsSettings, WebhookConfig, facility_code,
};

/// Why a configuration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit configuration: {field}: {reason}")]
pub struct ConfigError {
    /// The offending key, as a path (`audit.spool.maxBytes`).
    pub field: String,
    /// What is wrong and how to fix it.
    pub reason: String,
}

impl ConfigError {
    pub(crate) fn new(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// A duration written as a human string (`10s`, `1h30m`, `7y`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration(pub std::time::Duration);

/// A size in bytes written as a number or a human string (`64MiB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

/// What happens when the spool (the journal not yet acknowledged by every
/// exporter) reaches its cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Overflow {
    /// Refuse new events (`AuditError::SpoolFull`) so the webhook and the
    /// sidecar deny until exporters catch up. Nothing is ever lost.
    #[default]
    FailClosed,
    /// Delete the oldest segment not yet exported and write a loss record
    /// into the chain (segment, sequence range, event count, id range).
    DropOldestUnexported,
}

/// The `audit:` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct AuditConfig {
    /// The writer: group commit, queue and record bounds.
    pub journal: JournalSettings,
    /// Segment rotation.
    pub segment: SegmentSettings,
    /// Signed checkpoints.
    pub checkpoint: CheckpointSettings,
    /// The bounded spool.
    pub spool: SpoolSettings,
    /// When sealed segments may leave the live journal directory.
    pub retention: RetentionSettings,
    /// Long-term archive of sealed segments (off when absent).
    pub archive: Option<ArchiveSettings>,
    /// Extra redaction patterns.
    pub redaction: RedactionSettings,
    /// SIEM exporters, each with its own durable cursor.
    pub exporters: Vec<ExporterConfig>,
    /// An external anchor: where the latest signed checkpoint is published
    /// outside the journal's volume (off when absent).
    pub anchor: Option<AnchorSettings>,
}

/// The external anchor: a copy of the latest signed checkpoint, written
/// after each checkpoint to a place an insider with write access to the
/// journal's volume cannot rewrite (another volume, an object-store
/// mount). `tollgate audit verify --anchor FILE` checks a journal against
/// it; a writer starting on a journal shorter than it records the cut.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnchorSettings {
    /// The anchor file (replaced atomically; its directory must exist).
    pub file: PathBuf,
}

/// Group commit and bounds of the writer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct JournalSettings {
    /// How long the writer waits for more records before an fsync once it
    /// has at least one (0: write whatever has queued up while the previous
    /// fsync ran — group commit happens naturally under load).
    pub group_commit_window: Duration,
    /// Most records written per fsync.
    pub max_batch_records: usize,
    /// Events queued for the writer before producers wait.
    pub queue_capacity: usize,
    /// Largest serialized event; bigger events keep their decision and lose
    /// their attributes (recorded as the `oversize` redaction).
    pub max_record_bytes: ByteSize,
}

impl Default for JournalSettings {
    fn default() -> Self {
        JournalSettings {
            group_commit_window: Duration(std::time::Duration::ZERO),
            max_batch_records: 4096,
            queue_capacity: 65_536,
            max_record_bytes: ByteSize(1 << 20),
        }
    }
}

/// Segment rotation: whichever limit comes first seals the segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct SegmentSettings {
    /// Seal the active segment once it is this large.
    pub max_bytes: ByteSize,
    /// Seal the active segment once it is this old (and not empty).
    pub max_age: Duration,
    /// gzip level of sealed segments, 0 (store) to 9 (smallest). The
    /// default, 1, compresses audit JSON about tenfold at a fraction of the
    /// CPU of higher levels.
    pub compression_level: u32,
}

impl Default for SegmentSettings {
    fn default() -> Self {
        SegmentSettings {
            max_bytes: ByteSize(64 << 20),
            max_age: Duration(std::time::Duration::from_secs(3600)),
            compression_level: 1,
        }
    }
}

/// Signed checkpoints over the chain head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct CheckpointSettings {
    /// Sign a checkpoint after this many records...
    pub every_records: u64,
    /// ...or this long after the last one, whichever comes first (only
    /// when records were written since).
    pub interval: Duration,
}

impl Default for CheckpointSettings {
    fn default() -> Self {
        CheckpointSettings {
            every_records: 10_000,
            interval: Duration(std::time::Duration::from_secs(10)),
        }
    }
}

/// The bounded spool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct SpoolSettings {
    /// Cap on the on-disk size of live segments holding records some
    /// exporter has not acknowledged (all segments when no exporter or
    /// archive is configured). At least twice `segment.maxBytes`.
    pub max_bytes: ByteSize,
    /// What happens at the cap.
    pub overflow: Overflow,
}

impl Default for SpoolSettings {
    fn default() -> Self {
        SpoolSettings {
            max_bytes: ByteSize(1 << 30),
            overflow: Overflow::FailClosed,
        }
    }
}

/// Live-directory retention.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RetentionSettings {
    /// A sealed segment leaves the live directory only when every exporter
    /// (and the archive) acknowledged it and it is at least this old. With
    /// no exporter and no archive configured nothing is ever deleted.
    pub minimum_age: Duration,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings {
            minimum_age: Duration(std::time::Duration::from_secs(24 * 3600)),
        }
    }
}

/// The long-term archive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArchiveSettings {
    /// Where sealed, compressed segments and their checkpoints are copied
    /// (a PVC or an object-store mount).
    pub dir: PathBuf,
    /// How long archived segments are kept (default `7y`); older ones are
    /// deleted and the deletion recorded in the chain and in
    /// `RETENTION.jsonl` in the archive.
    #[serde(default = "default_archive_retention")]
    pub retention: Duration,
    /// How often the archive looks for expired segments.
    #[serde(default = "default_sweep_interval")]
    pub sweep_interval: Duration,
}

fn default_archive_retention() -> Duration {
    Duration(std::time::Duration::from_secs(7 * YEAR_SECS))
}

fn default_sweep_interval() -> Duration {
    Duration(std::time::Duration::from_secs(3600))
}

/// Extra redaction patterns on top of the built-in ones.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RedactionSettings {
    /// Each pattern's matches become `[REDACTED:<kind>]`.
    pub patterns: Vec<RedactionPattern>,
}

/// One extra redaction pattern.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedactionPattern {
    /// The kind recorded in `redactions` (e.g. `employee-id`).
    pub kind: String,
    /// A Rust `regex` expression.
    pub regex: String,
}

/// Seconds in a retention year: 366 days, so "7 years" never deletes early.
pub const YEAR_SECS: u64 = 366 * 24 * 3600;

impl AuditConfig {
    /// Checks cross-field constraints; call once before starting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let j = &self.journal;
        if j.max_batch_records == 0 {
            return Err(ConfigError::new(
                "audit.journal.maxBatchRecords",
                "must be at least 1",
            ));
        }
        if j.queue_capacity == 0 {
            return Err(ConfigError::new(
                "audit.journal.queueCapacity",
                "must be at least 1",
            ));
        }
        if j.max_record_bytes.0 < 4096 {
            return Err(ConfigError::new(
                "audit.journal.maxRecordBytes",
                "must be at least 4KiB",
            ));
        }
        if self.segment.max_bytes.0 < 4096 {
            return Err(ConfigError::new(
                "audit.segment.maxBytes",
                "must be at least 4KiB",
            ));
        }
        if self.segment.compression_level > 9 {
            return Err(ConfigError::new(
                "audit.segment.compressionLevel",
                "must be 0 to 9",
            ));
        }
        if self.segment.max_age.0.is_zero() {
            return Err(ConfigError::new("audit.segment.maxAge", "must be positive"));
        }
        if self.checkpoint.every_records == 0 {
            return Err(ConfigError::new(
                "audit.checkpoint.everyRecords",
                "must be at least 1",
            ));
        }
        if self.checkpoint.interval.0.is_zero() {
            return Err(ConfigError::new(
                "audit.checkpoint.interval",
                "must be positive",
            ));
        }
        if self.spool.max_bytes.0 < self.segment.max_bytes.0.saturating_mul(2) {
            return Err(ConfigError::new(
                "audit.spool.maxBytes",
                format!(
                    "{} is below twice audit.segment.maxBytes ({}); raise it or lower the segment size",
                    self.spool.max_bytes, self.segment.max_bytes
                ),
            ));
        }
        if let Some(archive) = &self.archive {
            if archive.dir.as_os_str().is_empty() {
                return Err(ConfigError::new("audit.archive.dir", "must not be empty"));
            }
            if archive.retention.0.is_zero() {
                return Err(ConfigError::new(
                    "audit.archive.retention",
                    "must be positive",
                ));
            }
        }
        for (i, pattern) in self.redaction.patterns.iter().enumerate() {
            if !valid_name(&pattern.kind) {
                return Err(ConfigError::new(
                    format!("audit.redaction.patterns[{i}].kind"),
                    "use lower-case letters, digits and '-'",
                ));
            }
            if let Err(e) = regex::Regex::new(&pattern.regex) {
                return Err(ConfigError::new(
                    format!("audit.redaction.patterns[{i}].regex"),
                    e.to_string(),
                ));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, exporter) in self.exporters.iter().enumerate() {
            let name = exporter.name();
            if !valid_name(name) || name == "archive" {
                return Err(ConfigError::new(
                    format!("audit.exporters[{i}].name"),
                    format!(
                        "{name:?}: use 1-63 lower-case letters, digits and '-' (not \"archive\", which names the archive)"
                    ),
                ));
            }
            if !names.insert(name.to_owned()) {
                return Err(ConfigError::new(
                    format!("audit.exporters[{i}].name"),
                    format!("{name:?} is used twice; each exporter needs its own cursor"),
                ));
            }
            exporter.validate(&format!("audit.exporters[{i}]"))?;
        }
        Ok(())
    }

    /// The names of every consumer whose acknowledgement gates deletion:
    /// each exporter, plus `archive` when the archive is configured.
    pub fn consumers(&self) -> Vec<String> {
        let mut names: Vec<String> = self.exporters.iter().map(|e| e.name().to_owned()).collect();
        if self.archive.is_some() {
            names.push("archive".to_owned());
        }
        names
    }
}

/// Exporter and pattern names: used in file names and metric labels.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
}

/// Parses `10s`, `1h30m`, `250ms`, `500us`, `7d`, `7y`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".into());
    }
    if text == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    let mut total = std::time::Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (number, tail) = rest.split_at(digits);
        let unit_len = tail
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit())
            .map_or(tail.len(), |(i, _)| i);
        let (unit, next) = tail.split_at(unit_len);
        let n: u64 = number
            .parse()
            .map_err(|_| format!("{text:?}: expected a number before {unit:?}"))?;
        let part = match unit {
            "ns" => std::time::Duration::from_nanos(n),
            "us" | "µs" => std::time::Duration::from_micros(n),
            "ms" => std::time::Duration::from_millis(n),
            "s" => std::time::Duration::from_secs(n),
            "m" => std::time::Duration::from_secs(n.saturating_mul(60)),
            "h" => std::time::Duration::from_secs(n.saturating_mul(3600)),
            "d" => std::time::Duration::from_secs(n.saturating_mul(86_400)),
            "y" => std::time::Duration::from_secs(n.saturating_mul(YEAR_SECS)),
            "" => return Err(format!("{text:?}: missing unit (ms, s, m, h, d, y)")),
            other => {
                return Err(format!(
                    "{text:?}: unknown unit {other:?} (use ns, us, ms, s, m, h, d, y)"
                ));
            }
        };
        total = total.saturating_add(part);
        rest = next;
    }
    Ok(total)
}

/// Parses `4096`, `64KiB`, `64MiB`, `1GiB`, `500MB`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a number of bytes"))?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1000,
        "KiB" => 1 << 10,
        "MB" => 1_000_000,
        "MiB" => 1 << 20,
        "GB" => 1_000_000_000,
        "GiB" => 1 << 30,
        "TB" => 1_000_000_000_000,
        "TiB" => 1 << 40,
        other => {
            return Err(format!(
                "{text:?}: unknown unit {other:?} (use B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)"
            ));
        }
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("{text:?}: too large"))
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        let secs = d.as_secs();
        if d.subsec_nanos() != 0 {
            if d.subsec_nanos().is_multiple_of(1_000_000) {
                return write!(f, "{}ms", d.as_millis());
            }
            return write!(f, "{}us", d.as_micros());
        }
        if secs == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in [("y", YEAR_SECS), ("d", 86_400), ("h", 3600), ("m", 60)] {
            if secs.is_multiple_of(size) {
                return write!(f, "{}{unit}", secs / size);
            }
        }
        write!(f, "{secs}s")
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (unit, size) in [
            ("TiB", 1u64 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ] {
            if n >= size && n.is_multiple_of(size) {
                return write!(f, "{}{unit}", n / size);
            }
        }
        write!(f, "{n}B")
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text)
            .map(Duration)
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(ByteSize(n)),
            Raw::Text(text) => parse_size(&text)
                .map(ByteSize)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// Extra HTTP headers of the webhook exporter.
pub type Headers = BTreeMap<String, String>;

#[cfg(test)]
mod tests;
