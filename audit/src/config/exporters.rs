//! Exporter configuration: one entry per SIEM destination, each with a
//! unique `name` (its cursor file and metric label), batching and retry.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ByteSize, ConfigError, Duration, Headers};

/// Which form of the event is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The native `tollgate.audit/v1` JSON.
    #[default]
    Native,
    /// OCSF API Activity (class 6003).
    Ocsf,
}

/// Batching: a batch is sent when it is full or `maxWait` after its first
/// record, whichever comes first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct BatchSettings {
    /// Most records per batch.
    pub max_records: usize,
    /// Most encoded bytes per batch (a single larger record is sent alone).
    pub max_bytes: ByteSize,
    /// Longest wait for a batch to fill.
    pub max_wait: Duration,
}

impl Default for BatchSettings {
    fn default() -> Self {
        BatchSettings {
            max_records: 1000,
            max_bytes: ByteSize(4 << 20),
            max_wait: Duration(std::time::Duration::from_millis(200)),
        }
    }
}

/// Retry with exponential backoff and full jitter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RetrySettings {
    /// First backoff.
    pub initial_backoff: Duration,
    /// Backoff ceiling; retries never stop (nothing is given up).
    pub max_backoff: Duration,
    /// Per-attempt timeout (connect + send + acknowledgement).
    pub timeout: Duration,
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings {
            initial_backoff: Duration(std::time::Duration::from_millis(250)),
            max_backoff: Duration(std::time::Duration::from_secs(30)),
            timeout: Duration(std::time::Duration::from_secs(10)),
        }
    }
}

/// TLS to the receiver: always verified, TLS 1.2 or 1.3.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TlsSettings {
    /// CA bundle (PEM) to trust; the system roots when absent.
    pub ca_file: Option<PathBuf>,
    /// Name to verify instead of the host in the address or URL.
    pub server_name: Option<String>,
    /// Client certificate (PEM) for mutual TLS.
    pub client_cert_file: Option<PathBuf>,
    /// Client key (PEM) for mutual TLS.
    pub client_key_file: Option<PathBuf>,
}

/// One exporter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ExporterConfig {
    /// RFC 5424 syslog over TLS with RFC 5425 octet-counting framing.
    Syslog(SyslogConfig),
    /// Splunk HTTP Event Collector.
    SplunkHec(SplunkHecConfig),
    /// Elasticsearch `_bulk` API.
    Elasticsearch(ElasticsearchConfig),
    /// A generic HTTPS endpoint receiving JSON batches.
    Webhook(WebhookConfig),
    /// A JSON-lines file for Fluent Bit, Vector or Filebeat to tail.
    File(FileConfig),
}

/// `type: syslog`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyslogConfig {
    /// Unique exporter name.
    pub name: String,
    /// `host:port` of the TLS syslog receiver (6514 is the standard port).
    pub address: String,
    /// TLS settings.
    #[serde(default)]
    pub tls: TlsSettings,
    /// Syslog facility name (`audit` = 13, `authpriv`, `local0`..`local7`, ...).
    #[serde(default = "default_facility")]
    pub facility: String,
    /// HOSTNAME field; the machine's host name when absent.
    #[serde(default)]
    pub hostname: Option<String>,
    /// APP-NAME field.
    #[serde(default = "default_app_name")]
    pub app_name: String,
    /// Private enterprise number of the structured-data id
    /// (`tollgate@<n>`). 32473 is the number RFC 5612 reserves for
    /// documentation; set your organisation's own.
    #[serde(default = "default_enterprise_id")]
    pub enterprise_id: u32,
    /// Payload form.
    #[serde(default)]
    pub format: Format,
    /// Batching.
    #[serde(default)]
    pub batch: BatchSettings,
    /// Retry.
    #[serde(default)]
    pub retry: RetrySettings,
}

fn default_facility() -> String {
    "audit".into()
}

fn default_app_name() -> String {
    "tollgate".into()
}

fn default_enterprise_id() -> u32 {
    32473
}

/// `type: splunk-hec`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SplunkHecConfig {
    /// Unique exporter name.
    pub name: String,
    /// `https://host:8088` (the `/services/collector/event` path is added
    /// when the URL has no path).
    pub url: String,
    /// File holding the HEC token (a mounted Secret).
    pub token_file: PathBuf,
    /// Target index (the token's default when absent).
    #[serde(default)]
    pub index: Option<String>,
    /// Sourcetype.
    #[serde(default = "default_sourcetype")]
    pub sourcetype: String,
    /// Source.
    #[serde(default = "default_app_name")]
    pub source: String,
    /// TLS settings.
    #[serde(default)]
    pub tls: TlsSettings,
    /// Payload form.
    #[serde(default)]
    pub format: Format,
    /// Batching.
    #[serde(default)]
    pub batch: BatchSettings,
    /// Retry.
    #[serde(default)]
    pub retry: RetrySettings,
}

fn default_sourcetype() -> String {
    "tollgate:audit".into()
}

/// `type: elasticsearch`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ElasticsearchConfig {
    /// Unique exporter name.
    pub name: String,
    /// Base URL of the cluster, `https://host:9200`.
    pub url: String,
    /// Index or data stream written to (documents are created with the
    /// event id as `_id`, so a resend is recognised as a duplicate).
    #[serde(default = "default_index")]
    pub index: String,
    /// File holding an API key (`Authorization: ApiKey <key>`).
    #[serde(default)]
    pub api_key_file: Option<PathBuf>,
    /// Basic-auth user (with `passwordFile`).
    #[serde(default)]
    pub username: Option<String>,
    /// File holding the basic-auth password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Ingest pipeline.
    #[serde(default)]
    pub pipeline: Option<String>,
    /// TLS settings.
    #[serde(default)]
    pub tls: TlsSettings,
    /// Batching.
    #[serde(default)]
    pub batch: BatchSettings,
    /// Retry.
    #[serde(default)]
    pub retry: RetrySettings,
}

fn default_index() -> String {
    "tollgate-audit".into()
}

/// `type: webhook`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookConfig {
    /// Unique exporter name.
    pub name: String,
    /// `https://...` receiving `POST` of `{"events": [...]}`.
    pub url: String,
    /// Extra headers (not for secrets: use `bearerTokenFile`).
    #[serde(default)]
    pub headers: Headers,
    /// File holding a bearer token sent as `Authorization: Bearer`.
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    /// TLS settings.
    #[serde(default)]
    pub tls: TlsSettings,
    /// Payload form.
    #[serde(default)]
    pub format: Format,
    /// Batching.
    #[serde(default)]
    pub batch: BatchSettings,
    /// Retry.
    #[serde(default)]
    pub retry: RetrySettings,
}

/// `type: file`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileConfig {
    /// Unique exporter name.
    pub name: String,
    /// The JSON-lines file (one event per line, appended, fsync'd).
    pub path: PathBuf,
    /// Rotate (rename to `<path>.1`, `.2`, ...) beyond this size.
    #[serde(default = "default_file_max_bytes")]
    pub max_bytes: ByteSize,
    /// Rotated files kept.
    #[serde(default = "default_file_max_files")]
    pub max_files: u32,
    /// Payload form.
    #[serde(default)]
    pub format: Format,
    /// Batching.
    #[serde(default)]
    pub batch: BatchSettings,
    /// Retry.
    #[serde(default)]
    pub retry: RetrySettings,
}

fn default_file_max_bytes() -> ByteSize {
    ByteSize(100 << 20)
}

fn default_file_max_files() -> u32 {
    5
}

/// The numeric code of a syslog facility name (RFC 5424 table 1).
pub fn facility_code(name: &str) -> Option<u8> {
    Some(match name {
        "kern" => 0,
        "user" => 1,
        "mail" => 2,
        "daemon" => 3,
        "auth" => 4,
        "syslog" => 5,
        "lpr" => 6,
        "news" => 7,
        "uucp" => 8,
        "cron" => 9,
        "authpriv" => 10,
        "ftp" => 11,
        "ntp" => 12,
        "audit" => 13,
        "alert" => 14,
        "clock" => 15,
        "local0" => 16,
        "local1" => 17,
        "local2" => 18,
        "local3" => 19,
        "local4" => 20,
        "local5" => 21,
        "local6" => 22,
        "local7" => 23,
        _ => return None,
    })
}

fn https_url(field: &str, url: &str) -> Result<(), ConfigError> {
    match url.parse::<http::Uri>() {
        Ok(uri) if uri.scheme_str() == Some("https") && uri.host().is_some() => Ok(()),
        Ok(_) => Err(ConfigError::new(
            field,
            format!(
                "{url:?}: must be an https:// URL with a host (audit data never travels in clear text)"
            ),
        )),
        Err(e) => Err(ConfigError::new(field, format!("{url:?}: {e}"))),
    }
}

fn batch_ok(field: &str, batch: &BatchSettings, retry: &RetrySettings) -> Result<(), ConfigError> {
    if batch.max_records == 0 {
        return Err(ConfigError::new(
            format!("{field}.batch.maxRecords"),
            "must be at least 1",
        ));
    }
    if retry.initial_backoff.0.is_zero() || retry.max_backoff < retry.initial_backoff {
        return Err(ConfigError::new(
            format!("{field}.retry"),
            "initialBackoff must be positive and at most maxBackoff",
        ));
    }
    if retry.timeout.0.is_zero() {
        return Err(ConfigError::new(
            format!("{field}.retry.timeout"),
            "must be positive",
        ));
    }
    Ok(())
}

impl ExporterConfig {
    /// The exporter's unique name.
    pub fn name(&self) -> &str {
        match self {
            ExporterConfig::Syslog(c) => &c.name,
            ExporterConfig::SplunkHec(c) => &c.name,
            ExporterConfig::Elasticsearch(c) => &c.name,
            ExporterConfig::Webhook(c) => &c.name,
            ExporterConfig::File(c) => &c.name,
        }
    }

    /// The exporter's type, as written in the configuration.
    pub fn kind(&self) -> &'static str {
        match self {
            ExporterConfig::Syslog(_) => "syslog",
            ExporterConfig::SplunkHec(_) => "splunk-hec",
            ExporterConfig::Elasticsearch(_) => "elasticsearch",
            ExporterConfig::Webhook(_) => "webhook",
            ExporterConfig::File(_) => "file",
        }
    }

    /// Batching settings.
    pub fn batch(&self) -> &BatchSettings {
        match self {
            ExporterConfig::Syslog(c) => &c.batch,
            ExporterConfig::SplunkHec(c) => &c.batch,
            ExporterConfig::Elasticsearch(c) => &c.batch,
            ExporterConfig::Webhook(c) => &c.batch,
            ExporterConfig::File(c) => &c.batch,
        }
    }

    /// Retry settings.
    pub fn retry(&self) -> &RetrySettings {
        match self {
            ExporterConfig::Syslog(c) => &c.retry,
            ExporterConfig::SplunkHec(c) => &c.retry,
            ExporterConfig::Elasticsearch(c) => &c.retry,
            ExporterConfig::Webhook(c) => &c.retry,
            ExporterConfig::File(c) => &c.retry,
        }
    }

    pub(super) fn validate(&self, field: &str) -> Result<(), ConfigError> {
        batch_ok(field, self.batch(), self.retry())?;
        match self {
            ExporterConfig::Syslog(c) => {
                if facility_code(&c.facility).is_none() {
                    return Err(ConfigError::new(
                        format!("{field}.facility"),
                        format!(
                            "{:?} is not a syslog facility (e.g. audit, authpriv, local0)",
                            c.facility
                        ),
                    ));
                }
                let Some((host, port)) = c.address.rsplit_once(':') else {
                    return Err(ConfigError::new(
                        format!("{field}.address"),
                        "expected host:port",
                    ));
                };
                if host.is_empty() || port.parse::<u16>().is_err() {
                    return Err(ConfigError::new(
                        format!("{field}.address"),
                        format!("{:?}: expected host:port", c.address),
                    ));
                }
                let app_ok = !c.app_name.is_empty()
                    && c.app_name.len() <= 48
                    && c.app_name.bytes().all(|b| (33..=126).contains(&b));
                if !app_ok {
                    return Err(ConfigError::new(
                        format!("{field}.appName"),
                        "1-48 printable ASCII characters without spaces (RFC 5424)",
                    ));
                }
                Ok(())
            }
            ExporterConfig::SplunkHec(c) => https_url(&format!("{field}.url"), &c.url),
            ExporterConfig::Elasticsearch(c) => {
                https_url(&format!("{field}.url"), &c.url)?;
                if c.username.is_some() != c.password_file.is_some() {
                    return Err(ConfigError::new(
                        format!("{field}.username"),
                        "username and passwordFile go together",
                    ));
                }
                if c.index.is_empty() {
                    return Err(ConfigError::new(
                        format!("{field}.index"),
                        "must not be empty",
                    ));
                }
                Ok(())
            }
            ExporterConfig::Webhook(c) => {
                https_url(&format!("{field}.url"), &c.url)?;
                for name in c.headers.keys() {
                    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                        return Err(ConfigError::new(
                            format!("{field}.headers"),
                            format!("{name:?} is not a valid header name"),
                        ));
                    }
                }
                Ok(())
            }
            ExporterConfig::File(c) => {
                if c.path.as_os_str().is_empty() {
                    return Err(ConfigError::new(
                        format!("{field}.path"),
                        "must not be empty",
                    ));
                }
                if c.max_bytes.0 == 0 {
                    return Err(ConfigError::new(
                        format!("{field}.maxBytes"),
                        "must be positive",
                    ));
                }
                Ok(())
            }
        }
    }
}
