//! Compiled routes: which declared route a request takes, by host (forward
//! proxy) or by path prefix on the sidecar's own listener (reverse proxy),
//! and the inspection limits.

use std::sync::Arc;

use super::matcher::{HostPatterns, split_host_port};
use super::path::{PathStrictness, judge_path};
use super::spec::{LimitsSpec, RouteSpec};
use super::{LlmProvider, Protocol};

/// The default bound on a request body as sent.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1 << 20;
/// The default bound on a decoded request body.
pub const DEFAULT_MAX_DECODED_BODY_BYTES: u64 = 8 << 20;
/// The default bound on JSON nesting.
pub const DEFAULT_MAX_JSON_DEPTH: u32 = 64;

/// Bounds on request inspection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    /// The largest body read, as sent.
    pub max_body_bytes: u64,
    /// The largest body after `Content-Encoding` decoding.
    pub max_decoded_body_bytes: u64,
    /// The deepest JSON nesting accepted.
    pub max_json_depth: u32,
}

impl Default for BodyLimits {
    fn default() -> Self {
        BodyLimits {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_decoded_body_bytes: DEFAULT_MAX_DECODED_BODY_BYTES,
            max_json_depth: DEFAULT_MAX_JSON_DEPTH,
        }
    }
}

impl BodyLimits {
    pub(crate) fn compile(spec: &LimitsSpec) -> Result<BodyLimits, String> {
        let d = BodyLimits::default();
        let limits = BodyLimits {
            max_body_bytes: spec.max_body_bytes.unwrap_or(d.max_body_bytes),
            max_decoded_body_bytes: spec
                .max_decoded_body_bytes
                .unwrap_or(d.max_decoded_body_bytes),
            max_json_depth: spec.max_json_depth.unwrap_or(d.max_json_depth),
        };
        if limits.max_json_depth == 0 || limits.max_json_depth > 128 {
            return Err("maxJsonDepth must be between 1 and 128".into());
        }
        if limits.max_decoded_body_bytes < limits.max_body_bytes {
            return Err(format!(
                "maxDecodedBodyBytes ({}) must be at least maxBodyBytes ({})",
                limits.max_decoded_body_bytes, limits.max_body_bytes
            ));
        }
        Ok(limits)
    }
}

/// Where a reverse-proxy route sends requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTarget {
    /// `http` or `https`.
    pub scheme: String,
    /// The upstream host (lowercase; IPv6 bracketed).
    pub host: String,
    /// The upstream port.
    pub port: u16,
    /// The upstream base path (no trailing `/`, may be empty).
    pub base_path: String,
}

/// A compiled route.
#[derive(Debug)]
pub struct Route {
    /// The route's name.
    pub name: Arc<str>,
    /// What its traffic is.
    pub protocol: Protocol,
    /// LLM routes: the API family, if declared.
    pub provider: Option<LlmProvider>,
    /// Reverse proxy: the path prefix on the sidecar's listener.
    pub path_prefix: Option<String>,
    /// Reverse proxy: the upstream.
    pub upstream: Option<RouteTarget>,
    /// Whether request bodies are read before the decision.
    pub inspect_body: bool,
    /// How paths servers could read differently are treated.
    pub path_strictness: PathStrictness,
    hosts: HostPatterns,
}

impl Route {
    pub(crate) fn compile(spec: &RouteSpec) -> Result<Route, String> {
        if spec.name.is_empty() {
            return Err("a route needs a name".into());
        }
        if spec.hosts.is_empty() && spec.path_prefix.is_none() {
            return Err(format!(
                "route {:?} matches nothing: give hosts (forward proxy) or pathPrefix + upstream (reverse proxy)",
                spec.name
            ));
        }
        let upstream = match (&spec.path_prefix, &spec.upstream) {
            (Some(prefix), Some(url)) => {
                if !prefix.starts_with('/') {
                    return Err(format!("pathPrefix {prefix:?} must start with '/'"));
                }
                if judge_path(prefix, PathStrictness::Refuse).as_deref() != Ok(prefix.as_str()) {
                    return Err(format!(
                        "pathPrefix {prefix:?} must be a plain path: no escapes, '//', '\\', ';' or '.'/'..' segments"
                    ));
                }
                Some(parse_upstream(url)?)
            }
            (Some(_), None) => {
                return Err(format!(
                    "route {:?} has a pathPrefix but no upstream",
                    spec.name
                ));
            }
            (None, Some(_)) => {
                return Err(format!(
                    "route {:?} has an upstream but no pathPrefix to serve it under",
                    spec.name
                ));
            }
            (None, None) => None,
        };
        if spec.provider.is_some() && spec.protocol != Protocol::Llm {
            return Err("provider is only valid on llm routes".into());
        }
        if spec.inspect_body == Some(false) && spec.protocol != Protocol::Http {
            return Err(format!(
                "inspectBody: false is only valid on http routes: {} requests are classified from their bodies",
                spec.protocol
            ));
        }
        Ok(Route {
            name: spec.name.as_str().into(),
            protocol: spec.protocol,
            provider: spec.provider,
            path_prefix: spec
                .path_prefix
                .as_ref()
                .map(|p| p.trim_end_matches('/').to_owned()),
            upstream,
            inspect_body: spec.inspect_body.unwrap_or(true),
            path_strictness: spec.path_strictness.unwrap_or_default(),
            hosts: HostPatterns::compile(&spec.hosts)?,
        })
    }

    /// Whether the route claims requests to `host` (lowercase) and `port`.
    pub fn matches_host(&self, host: &str, port: u16) -> bool {
        !self.hosts.is_empty() && self.hosts.matches(host, port)
    }

    /// If `path` is under the route's prefix, the rest of the path
    /// (starting with `/`, or empty).
    pub fn strip_prefix<'a>(&self, path: &'a str) -> Option<&'a str> {
        let prefix = self.path_prefix.as_deref()?;
        let rest = path.strip_prefix(prefix)?;
        (rest.is_empty() || rest.starts_with('/') || prefix.is_empty()).then_some(rest)
    }
}

/// Parses `http(s)://host[:port][/base]`.
fn parse_upstream(url: &str) -> Result<RouteTarget, String> {
    let bad = |why: &str| format!("invalid upstream {url:?}: {why}");
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("expected http://host[:port][/path] or https://..."))?;
    let default_port = match scheme {
        "http" => 80,
        "https" => 443,
        _ => return Err(bad("the scheme must be http or https")),
    };
    if rest.contains(['?', '#', '@']) {
        return Err(bad("no query, fragment or user info allowed"));
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let (host, port) = split_host_port(authority).map_err(|e| bad(&e))?;
    if host.contains(['*', '?', '[']) && !host.starts_with('[') {
        return Err(bad("the host cannot be a pattern"));
    }
    let host = super::host::request_host(host).map_err(|e| bad(&e.to_string()))?;
    Ok(RouteTarget {
        scheme: scheme.to_owned(),
        host,
        port: port.unwrap_or(default_port),
        base_path: path.trim_end_matches('/').to_owned(),
    })
}
