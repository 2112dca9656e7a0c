//! The sidecar's configuration, built once from the command line: where to
//! listen, the policy file, interception, timeouts, and the pod's identity
//! for audit events.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tollgate_audit::{Actor, Ownership};

use crate::classify::Recognition;

/// The default forward-proxy address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:15001";

/// Environment variables the CLI reads (the injected pod sets them through
/// the downward API).
pub mod env {
    /// The pod's name.
    pub const POD_NAME: &str = "POD_NAME";
    /// The pod's namespace.
    pub const POD_NAMESPACE: &str = "POD_NAMESPACE";
    /// The pod's ServiceAccount.
    pub const SERVICE_ACCOUNT: &str = "SERVICE_ACCOUNT";
    /// The agent's name.
    pub const AGENT_NAME: &str = "TOLLGATE_AGENT_NAME";
    /// A downward-API file of the pod's annotations.
    pub const POD_ANNOTATIONS: &str = "TOLLGATE_POD_ANNOTATIONS";
    /// A downward-API file of the pod's labels.
    pub const POD_LABELS: &str = "TOLLGATE_POD_LABELS";
    /// The in-cluster API server address (set by the kubelet).
    pub const KUBERNETES_SERVICE_HOST: &str = "KUBERNETES_SERVICE_HOST";
    /// The in-cluster API server port (set by the kubelet).
    pub const KUBERNETES_SERVICE_PORT: &str = "KUBERNETES_SERVICE_PORT";
}

/// When an allowed action may proceed relative to its audit event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuditAck {
    /// As soon as the recorder accepted the event (a refusal, such as a full
    /// spool in fail-closed mode, still denies the action); durability is
    /// awaited in the background. Adds no disk latency to requests.
    #[default]
    Accepted,
    /// Only once the recorder reports the event durable.
    Durable,
}

/// Timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// For a client to send a request's headers.
    pub header: Duration,
    /// For a client to send a request body that is inspected.
    pub body: Duration,
    /// For a TCP connection to an upstream.
    pub connect: Duration,
    /// For an upstream's response headers.
    pub upstream: Duration,
    /// For a TLS handshake (interception, or the ClientHello of a tunnel).
    pub tls_handshake: Duration,
    /// For connections to drain at shutdown.
    pub shutdown_grace: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            header: Duration::from_secs(10),
            body: Duration::from_secs(30),
            connect: Duration::from_secs(5),
            upstream: Duration::from_secs(120),
            tls_handshake: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Who the sidecar acts for, recorded in every audit event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// The pod's name.
    pub pod: Option<String>,
    /// The pod's namespace.
    pub namespace: Option<String>,
    /// The pod's ServiceAccount.
    pub service_account: Option<String>,
    /// The agent's name.
    pub agent: Option<String>,
    /// The pod's annotations (`deployscope.dev/*` ownership among them).
    pub annotations: BTreeMap<String, String>,
    /// The pod's labels.
    pub labels: BTreeMap<String, String>,
}

impl Identity {
    /// The audit actor.
    pub fn actor(&self) -> Actor {
        let user = match (&self.namespace, &self.service_account) {
            (Some(ns), Some(sa)) => Some(format!("system:serviceaccount:{ns}:{sa}")),
            _ => None,
        };
        let agent = self.agent.clone().or_else(|| {
            ["tollgate.dev/agent", "app.kubernetes.io/name", "app"]
                .iter()
                .find_map(|k| self.labels.get(*k).cloned())
        });
        Actor {
            user,
            groups: Vec::new(),
            service_account: self.service_account.clone(),
            pod: self.pod.clone(),
            namespace: self.namespace.clone(),
            agent,
        }
    }

    /// The ownership context from `deployscope.dev/*` annotations.
    pub fn ownership(&self) -> Ownership {
        let get = |k: &str| {
            self.annotations
                .get(&format!("deployscope.dev/{k}"))
                .cloned()
        };
        Ownership {
            owner: get("owner"),
            tier: get("tier"),
            oncall: get("oncall"),
        }
    }
}

/// Parses a downward-API labels or annotations file: one `key="value"` per
/// line, the value a Go-quoted string. Lines that do not parse are skipped.
pub fn parse_downward_api(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if let Some(value) = unquote(value.trim()) {
            out.insert(key.trim().to_owned(), value);
        }
    }
    out
}

/// Undoes Go's `strconv.Quote` for the escapes it emits.
fn unquote(s: &str) -> Option<String> {
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            '\\' => out.push('\\'),
            '"' => out.push('"'),
            'u' => {
                let hex: String = chars.by_ref().take(4).collect();
                out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
            }
            'x' => {
                let hex: String = chars.by_ref().take(2).collect();
                out.push(char::from(u8::from_str_radix(&hex, 16).ok()?));
            }
            other => out.push(other),
        }
    }
    Some(out)
}

/// Everything the sidecar needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// The forward/reverse proxy listener.
    pub listen: SocketAddr,
    /// The metrics and health listener (`/metrics`, `/healthz`, `/readyz`).
    pub metrics_listen: Option<SocketAddr>,
    /// The action policy file (hot-reloaded). `None` with an OSSA manifest:
    /// the manifest's baseline alone decides.
    pub policy: Option<PathBuf>,
    /// An OSSA agent manifest (hot-reloaded) whose baseline every action
    /// must also pass.
    pub ossa_manifest: Option<PathBuf>,
    /// How often the policy file is re-read even without a change event.
    pub policy_poll: Duration,
    /// Interception: the directory holding (or to receive) the per-pod CA.
    pub intercept_ca: Option<PathBuf>,
    /// Interception: where to also write the CA certificate for the agent.
    pub intercept_ca_cert_out: Option<PathBuf>,
    /// Interception: where to write the agents' trust bundle (the system
    /// roots, `upstream_ca` and the per-pod CA), for `SSL_CERT_FILE` and
    /// friends.
    pub trust_bundle_out: Option<PathBuf>,
    /// Extra trust bundles (PEM) for upstream TLS.
    pub upstream_ca: Vec<PathBuf>,
    /// Whether the system trust store is used for upstream TLS.
    pub system_roots: bool,
    /// Who the sidecar acts for.
    pub identity: Identity,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// When allowed actions proceed relative to their audit event.
    pub audit_ack: AuditAck,
    /// Recognition settings beyond the policy's routes.
    pub recognition: Recognition,
    /// Threads serving requests, each with its own single-threaded runtime
    /// and upstream pool, accepting from the same listener.
    pub workers: usize,
}

impl Config {
    /// A configuration with defaults, for `policy`.
    pub fn new(policy: PathBuf) -> Config {
        Config {
            listen: DEFAULT_LISTEN
                .parse()
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 15001))),
            metrics_listen: None,
            policy: Some(policy),
            ossa_manifest: None,
            policy_poll: Duration::from_secs(10),
            intercept_ca: None,
            intercept_ca_cert_out: None,
            trust_bundle_out: None,
            upstream_ca: Vec::new(),
            system_roots: true,
            identity: Identity::default(),
            timeouts: Timeouts::default(),
            audit_ack: AuditAck::default(),
            recognition: Recognition::default(),
            workers: 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downward_api_files_parse() {
        let text = "deployscope.dev/owner=\"team-payments\"\ndeployscope.dev/tier=\"critical\"\nnote=\"a \\\"quoted\\\" line\\nnext\"\nbroken\n";
        let map = parse_downward_api(text);
        assert_eq!(map["deployscope.dev/owner"], "team-payments");
        assert_eq!(map["note"], "a \"quoted\" line\nnext");
        assert_eq!(map.len(), 3);
        let identity = Identity {
            pod: Some("agent-0".into()),
            namespace: Some("agents".into()),
            service_account: Some("researcher".into()),
            annotations: map,
            labels: [("app.kubernetes.io/name".to_owned(), "researcher".to_owned())].into(),
            ..Identity::default()
        };
        let actor = identity.actor();
        assert_eq!(
            actor.user.as_deref(),
            Some("system:serviceaccount:agents:researcher")
        );
        assert_eq!(actor.agent.as_deref(), Some("researcher"));
        assert_eq!(identity.ownership().tier.as_deref(), Some("critical"));
    }
}
