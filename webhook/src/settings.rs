//! The `webhook:` section of Tollgate's config file: where the server
//! listens, its certificates, and the limits that keep it serving under
//! bad input. Every field has a default; command-line flags override the
//! file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod duration;

pub use duration::{format_duration, parse_duration};

/// The largest JSON nesting depth that may be configured: the JSON parser
/// refuses deeper input on its own at 128 levels.
pub const MAX_JSON_DEPTH_LIMIT: usize = 120;

/// The `webhook:` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Settings {
    /// HTTPS address for `/validate` and `/mutate`.
    pub listen: SocketAddr,
    /// Plain-HTTP address for `/healthz`, `/readyz` and `/metrics`.
    pub metrics_listen: SocketAddr,
    /// Where generated certificates live when no certificate files are
    /// configured.
    pub state_dir: PathBuf,
    /// Serving certificate.
    pub tls: TlsSettings,
    /// Limits on requests and connections.
    pub limits: Limits,
    /// How long in-flight requests may take to finish after SIGTERM.
    #[serde(with = "duration")]
    pub shutdown_grace: Duration,
    /// What to do when an admission decision cannot be recorded in the
    /// audit trail.
    pub audit_failure_policy: AuditFailurePolicy,
    /// How long to wait for the audit trail to take a decision.
    #[serde(with = "duration")]
    pub audit_timeout: Duration,
}

/// The serving certificate: files (hot-reloaded) or generated.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TlsSettings {
    /// PEM certificate chain (e.g. a mounted `kubernetes.io/tls` Secret's
    /// `tls.crt`). With `keyFile`; without both, a CA and certificate are
    /// generated in the state directory.
    pub cert_file: Option<PathBuf>,
    /// PEM private key.
    pub key_file: Option<PathBuf>,
    /// Extra DNS names for a generated certificate (the Service's
    /// `NAME.NAMESPACE.svc`); loopback names are always included.
    pub dns_names: Vec<String>,
    /// How often certificate files are re-read even without a file event.
    #[serde(with = "duration")]
    pub reload_interval: Duration,
}

/// Limits: each has a default and is enforced per request or connection.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body accepted (413 above). kube-apiserver's own
    /// request limit is 3 MiB of object, so 8 MiB of AdmissionReview (object
    /// plus oldObject) fits every legal request.
    pub max_request_bytes: u64,
    /// Deepest JSON nesting accepted (400 above).
    pub max_json_depth: usize,
    /// A client must send a request's headers within this time; idle
    /// keep-alive connections are closed after it too.
    #[serde(with = "duration")]
    pub header_read_timeout: Duration,
    /// A client must send a request's body within this time (408 after).
    #[serde(with = "duration")]
    pub body_read_timeout: Duration,
    /// A client must complete the TLS handshake within this time.
    #[serde(with = "duration")]
    pub tls_handshake_timeout: Duration,
    /// Connections served at once; further clients wait to be accepted.
    pub max_connections: usize,
    /// HTTP/2 streams per connection.
    pub max_concurrent_streams: u32,
}

/// Whether an admission may be answered when its audit record failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum AuditFailurePolicy {
    /// Wait (up to `auditTimeout`) until the record is durable; refuse the
    /// request when it cannot be recorded (spool full in fail-closed mode,
    /// journal unavailable, timeout). Nothing is admitted unrecorded.
    #[default]
    Fail,
    /// Answer at once; recording continues in the background and failures
    /// are logged and counted.
    Ignore,
}

/// Why settings were refused.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A value is well-typed but unusable.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field, as a dotted path inside the `webhook:` section.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            metrics_listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            state_dir: PathBuf::from(".tollgate"),
            tls: TlsSettings::default(),
            limits: Limits::default(),
            shutdown_grace: Duration::from_secs(20),
            audit_failure_policy: AuditFailurePolicy::Fail,
            audit_timeout: Duration::from_secs(2),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_bytes: 8 * 1024 * 1024,
            max_json_depth: 64,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            tls_handshake_timeout: Duration::from_secs(3),
            max_connections: 1024,
            max_concurrent_streams: 250,
        }
    }
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            cert_file: None,
            key_file: None,
            dns_names: Vec::new(),
            reload_interval: Duration::from_secs(10),
        }
    }
}

impl Settings {
    /// Checks what the types alone cannot.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let invalid = |field, reason: &str| {
            Err(SettingsError::Invalid {
                field,
                reason: reason.to_owned(),
            })
        };
        match (&self.tls.cert_file, &self.tls.key_file) {
            (Some(_), None) => return invalid("tls.keyFile", "is required with tls.certFile"),
            (None, Some(_)) => return invalid("tls.certFile", "is required with tls.keyFile"),
            _ => {}
        }
        if self.listen == self.metrics_listen && self.listen.port() != 0 {
            return invalid("metricsListen", "must differ from listen");
        }
        let l = &self.limits;
        if l.max_request_bytes < 1024 {
            return invalid("limits.maxRequestBytes", "must be at least 1024");
        }
        if l.max_json_depth < 8 || l.max_json_depth > MAX_JSON_DEPTH_LIMIT {
            return Err(SettingsError::Invalid {
                field: "limits.maxJsonDepth",
                reason: format!("must be between 8 and {MAX_JSON_DEPTH_LIMIT}"),
            });
        }
        for (field, d) in [
            ("limits.headerReadTimeout", l.header_read_timeout),
            ("limits.bodyReadTimeout", l.body_read_timeout),
            ("limits.tlsHandshakeTimeout", l.tls_handshake_timeout),
            ("tls.reloadInterval", self.tls.reload_interval),
            ("auditTimeout", self.audit_timeout),
        ] {
            if d.is_zero() {
                return invalid(field, "must be greater than zero");
            }
        }
        if l.max_connections == 0 {
            return invalid("limits.maxConnections", "must be at least 1");
        }
        if l.max_concurrent_streams == 0 {
            return invalid("limits.maxConcurrentStreams", "must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_round_trip() {
        let settings = Settings::default();
        settings.validate().unwrap();
        let text = serde_json::to_string(&settings).unwrap();
        assert!(text.contains("\"bodyReadTimeout\":\"10s\""), "{text}");
        assert!(text.contains("\"auditFailurePolicy\":\"fail\""), "{text}");
        let back: Settings = serde_json::from_str(&text).unwrap();
        assert_eq!(back, settings);
        let partial: Settings =
            serde_json::from_str(r#"{"limits": {"maxJsonDepth": 16}}"#).unwrap();
        assert_eq!(partial.limits.max_json_depth, 16);
        assert_eq!(partial.limits.max_request_bytes, 8 * 1024 * 1024);
    }

    #[test]
    fn refuses_unusable_values_by_name() {
        type Breaker = fn(&mut Settings);
        let cases: [(Breaker, &str); 7] = [
            (|s| s.tls.cert_file = Some("a".into()), "tls.keyFile"),
            (|s| s.tls.key_file = Some("a".into()), "tls.certFile"),
            (|s| s.metrics_listen = s.listen, "metricsListen"),
            (
                |s| s.limits.max_request_bytes = 10,
                "limits.maxRequestBytes",
            ),
            (|s| s.limits.max_json_depth = 500, "limits.maxJsonDepth"),
            (
                |s| s.limits.body_read_timeout = Duration::ZERO,
                "limits.bodyReadTimeout",
            ),
            (|s| s.limits.max_connections = 0, "limits.maxConnections"),
        ];
        for (break_it, field) in cases {
            let mut s = Settings::default();
            break_it(&mut s);
            let err = s.validate().unwrap_err().to_string();
            assert!(err.starts_with(field), "{err}");
        }
        let err = serde_json::from_str::<Settings>(r#"{"limits": {"maxBodyBytes": 1}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `maxBodyBytes`"), "{err}");
    }
}
