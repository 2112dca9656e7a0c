//! How a server an OSSA manifest names becomes matchers.
//!
//! A manifest names a tool's server as a URL (`http://trivy-server:8080`),
//! a `host:port`, or a bare name (`postgres-mcp`: a route of the
//! ActionPolicy, or an in-cluster Service). Requests reach a Service under
//! several spellings that the pod's resolver turns into the same name
//! (`kubernetes-mcp` in namespace `default` is also `kubernetes-mcp.default`,
//! `kubernetes-mcp.default.svc` and `kubernetes-mcp.default.svc.cluster.local`),
//! so each declared name allows exactly those spellings: the bare Service
//! name only when the pod's namespace is known and is the Service's.

use super::super::spec::MatchSpec;

/// The cluster DNS domain the spellings assume.
const CLUSTER_DOMAIN: &str = "cluster.local";

/// A server as a manifest names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ServerRef {
    /// A bare name: a route of that name, or that host on any port.
    Name(String),
    /// A URL or `host:port`: that host (in its in-cluster spellings) and
    /// port, and with a URL its scheme and path.
    Address {
        /// `http` or `https`, when a URL gave it.
        scheme: Option<String>,
        /// The host, lowercase.
        host: String,
        /// The port (the scheme's default for a URL without one).
        port: Option<u16>,
        /// The URL's path, without a trailing `/` (empty: none).
        path: String,
    },
}

impl std::fmt::Display for ServerRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerRef::Name(n) => write!(f, "{n}"),
            ServerRef::Address {
                scheme,
                host,
                port,
                path,
            } => {
                if let Some(s) = scheme {
                    write!(f, "{s}://")?;
                }
                write!(f, "{host}")?;
                if let Some(p) = port {
                    write!(f, ":{p}")?;
                }
                write!(f, "{path}")
            }
        }
    }
}

impl ServerRef {
    /// Reads a server reference; the message says what is wrong.
    pub(crate) fn parse(text: &str) -> Result<ServerRef, String> {
        let text = text.trim();
        if text.contains("${") {
            return Err(format!(
                "{text:?} is a template; write the server the sidecar should allow"
            ));
        }
        let (scheme, rest) = match text.split_once("://") {
            Some((s, rest)) => {
                let s = s.to_ascii_lowercase();
                if !matches!(s.as_str(), "http" | "https") {
                    return Err(format!(
                        "{text:?}: scheme {s:?} is not one the sidecar sees (http, https)"
                    ));
                }
                (Some(s), rest)
            }
            None => (None, text),
        };
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(format!(
                "{text:?}: user information in a server address is ambiguous; remove it"
            ));
        }
        let (host, port) = split_host_port(authority).map_err(|m| format!("{text:?}: {m}"))?;
        let host = host.to_ascii_lowercase();
        if !valid_host(&host) {
            return Err(format!("{text:?}: {host:?} is not a host name"));
        }
        let path = path.split(['?', '#']).next().unwrap_or_default();
        let path = path.trim_end_matches('/');
        if path.contains(['*', '?', '[', ']', '{', '}']) || path.split('/').any(|s| s == "..") {
            return Err(format!("{text:?}: the path must be plain"));
        }
        match (scheme, port) {
            (None, None) => Ok(ServerRef::Name(host)),
            (scheme, port) => {
                let port = port.or(match scheme.as_deref() {
                    Some("http") => Some(80),
                    Some("https") => Some(443),
                    _ => None,
                });
                Ok(ServerRef::Address {
                    scheme,
                    host,
                    port,
                    path: path.to_owned(),
                })
            }
        }
    }

    /// Alternative matchers (any may match) confining an action to this
    /// server; `with_path` also confines a URL's requests to its path.
    pub(crate) fn matchers(&self, namespace: Option<&str>, with_path: bool) -> Vec<MatchSpec> {
        match self {
            ServerRef::Name(name) => vec![
                // A route of that name (or the bare host, unrouted).
                MatchSpec {
                    servers: vec![name.clone()],
                    ..MatchSpec::default()
                },
                // The host, under any route, in its in-cluster spellings.
                MatchSpec {
                    hosts: spellings(name, namespace),
                    ..MatchSpec::default()
                },
            ],
            ServerRef::Address {
                scheme,
                host,
                port,
                path,
            } => {
                let hosts = spellings(host, namespace)
                    .into_iter()
                    .map(|h| match port {
                        Some(p) => format!("{h}:{p}"),
                        None => h,
                    })
                    .collect();
                let paths = if with_path && !path.is_empty() {
                    vec![path.clone(), format!("{path}/**")]
                } else {
                    Vec::new()
                };
                vec![MatchSpec {
                    hosts,
                    schemes: scheme.iter().cloned().collect(),
                    paths,
                    ..MatchSpec::default()
                }]
            }
        }
    }
}

/// The spellings under which the pod's resolver reaches `host`: itself,
/// and for a Service name every form of `<service>.<namespace>` (the bare
/// service only in the pod's own namespace).
pub(crate) fn spellings(host: &str, namespace: Option<&str>) -> Vec<String> {
    let mut out = vec![host.to_owned()];
    if host.starts_with('[') || host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return out;
    }
    let labels: Vec<&str> = host.split('.').collect();
    let (service, ns) = match labels.as_slice() {
        [service] => match namespace {
            Some(ns) => (*service, ns),
            None => return out,
        },
        [service, ns] | [service, ns, "svc"] => (*service, *ns),
        [service, ns, "svc", a, b] if format!("{a}.{b}") == CLUSTER_DOMAIN => (*service, *ns),
        _ => return out,
    };
    for s in [
        format!("{service}.{ns}"),
        format!("{service}.{ns}.svc"),
        format!("{service}.{ns}.svc.{CLUSTER_DOMAIN}"),
    ] {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    if namespace == Some(ns) && !out.iter().any(|s| s == service) {
        out.push(service.to_owned());
    }
    out
}

/// Splits `host[:port]`; IPv6 literals are bracketed.
fn split_host_port(text: &str) -> Result<(&str, Option<u16>), String> {
    let bad_port = || "invalid port".to_owned();
    if let Some(rest) = text.strip_prefix('[') {
        let end = rest.find(']').ok_or("unterminated IPv6 literal")?;
        let (inside, after) = rest.split_at(end);
        let host = text
            .get(..inside.len() + 2)
            .ok_or("unterminated IPv6 literal")?;
        return match after.strip_prefix(']').and_then(|a| a.strip_prefix(':')) {
            Some(p) => Ok((host, Some(p.parse().map_err(|_| bad_port())?))),
            None if after == "]" => Ok((host, None)),
            None => Err("unexpected text after the IPv6 literal".into()),
        };
    }
    match text.rsplit_once(':') {
        Some((host, _)) if host.contains(':') => {
            Err("an IPv6 literal must be bracketed, e.g. [::1]:8080".into())
        }
        Some((host, port)) => {
            let port: u16 = port.parse().map_err(|_| bad_port())?;
            if port == 0 {
                return Err(bad_port());
            }
            Ok((host, Some(port)))
        }
        None => Ok((text, None)),
    }
}

/// A DNS name (letters, digits, `-`, `_`, dots between labels), an IPv4
/// address or a bracketed IPv6 literal.
fn valid_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}
