//! One request through the proxy: find where it goes, read and decode its
//! body (bounded), classify it, decide every action it carries, record one
//! audit event per action, then refuse it in the protocol's own shape or
//! forward it unchanged.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderMap};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::Value;
use tollgate_audit::Outcome;
use tollgate_certs::Interceptor;
use tollgate_policies::action::host::{self, HostError};
use tollgate_policies::action::path::{PathStrictness, judge_path};
use tollgate_policies::action::{
    Action, ActionDecision, ActionPolicy, DecisionKind, LlmProvider, Protocol, Route, Target,
};

use crate::audit::{Auditor, Decided};
use crate::body::{self, BodyError, Payload};
use crate::classify::{self, Classified, Framing, Known, RequestHead};
use crate::config::Config;
use crate::deny::{Refusal, Shape, refuse};
use crate::metrics::Metrics;
use crate::policy::PolicyCell;
use crate::upstream::{self, Clients};

mod forward;

/// Everything the request handlers share.
pub struct Shared {
    pub(crate) config: Config,
    pub(crate) policy: Arc<PolicyCell>,
    pub(crate) auditor: Auditor,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) clients: Clients,
    pub(crate) interceptor: Option<Arc<Interceptor>>,
    /// The interception server config for clients that send SNI.
    pub(crate) intercept_tls: Option<Arc<rustls::ServerConfig>>,
    /// The address the proxy listens on (requests aimed at it are
    /// reverse-proxy requests, never forwarded to itself).
    pub(crate) local: SocketAddr,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

/// The connection a request arrived on.
#[derive(Debug, Clone)]
pub struct Conn {
    /// The client.
    pub peer: SocketAddr,
    /// Inside an intercepted `CONNECT` tunnel: where it goes.
    pub tunnel: Option<TunnelTarget>,
}

/// The destination of an intercepted tunnel.
#[derive(Debug, Clone)]
pub struct TunnelTarget {
    /// The host the client asked for (lowercase).
    pub host: String,
    /// The port.
    pub port: u16,
    /// Whether TLS was terminated (else the tunnel carried plain HTTP).
    pub tls: bool,
}

/// Where a request goes.
#[derive(Debug)]
pub(crate) struct Destination {
    pub(crate) scheme: &'static str,
    pub(crate) host: String,
    pub(crate) port: u16,
    /// The path and query sent upstream: the judged path and the query as
    /// the agent wrote it.
    pub(crate) path_and_query: String,
    /// The path as judged (the upstream path, one spelling).
    pub(crate) path: String,
    /// The path as the agent sent it (for reverse routes, the path on the
    /// sidecar's listener).
    pub(crate) sent_path: String,
    pub(crate) query: Option<String>,
    pub(crate) route: Option<Arc<Route>>,
}

impl Destination {
    /// `host[:port]`, the port omitted when it is the scheme's default.
    pub(crate) fn authority(&self) -> String {
        match (self.scheme, self.port) {
            ("http", 80) | ("https", 443) => self.host.clone(),
            _ => format!("{}:{}", self.host, self.port),
        }
    }

    /// The audit attributes saying which path was sent and which judged,
    /// when they differ (always for reverse routes).
    pub(crate) fn paths(&self) -> Option<serde_json::Map<String, Value>> {
        if self.sent_path == self.path {
            return None;
        }
        let mut extra = serde_json::Map::new();
        extra.insert("pathSent".into(), Value::String(self.sent_path.clone()));
        extra.insert("pathJudged".into(), Value::String(self.path.clone()));
        Some(extra)
    }

    pub(crate) fn target(&self, method: &str) -> Target {
        Target {
            method: method.to_owned(),
            scheme: self.scheme.to_owned(),
            host: self.host.clone(),
            port: self.port,
            path: self.path.clone(),
            query: self.query.clone(),
        }
    }
}

/// A request refused before classification.
#[derive(Debug)]
pub(crate) struct Early {
    pub(crate) status: StatusCode,
    pub(crate) rule: &'static str,
    pub(crate) reason: String,
}

impl Early {
    fn new(status: StatusCode, rule: &'static str, reason: impl Into<String>) -> Early {
        Early {
            status,
            rule,
            reason: reason.into(),
        }
    }

    fn from_body(e: &BodyError) -> Early {
        let (status, rule) = match e {
            BodyError::TooLarge(_) | BodyError::DecodedTooLarge(_) => {
                (StatusCode::PAYLOAD_TOO_LARGE, "tollgate/body-limit")
            }
            BodyError::Timeout(_) => (StatusCode::REQUEST_TIMEOUT, "tollgate/slow-client"),
            BodyError::Read(_) => (StatusCode::BAD_REQUEST, "tollgate/client-error"),
            BodyError::UnknownEncoding(_) | BodyError::Corrupt { .. } => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "tollgate/encoding")
            }
        };
        Early::new(status, rule, e.to_string())
    }
}

/// Handles one request.
pub async fn handle(
    shared: Arc<Shared>,
    conn: Arc<Conn>,
    mut req: Request<Incoming>,
) -> Response<Payload> {
    if req.method() == Method::CONNECT {
        if conn.tunnel.is_none() {
            return crate::tunnel::connect(shared, conn, req).await;
        }
        let early = Early::new(
            StatusCode::BAD_REQUEST,
            "tollgate/framing",
            "CONNECT inside a CONNECT tunnel is not supported",
        );
        return shared.refuse_early(&conn, &req, None, early).await;
    }
    let policy = shared.policy.current();
    let dest = match shared.destination(&conn, &req, policy.as_deref()) {
        Ok(d) => d,
        Err(early) => return shared.refuse_early(&conn, &req, None, early).await,
    };
    let upgrade = upstream::requested_upgrade(req.headers());
    let client_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut req));
    let (parts, incoming) = req.into_parts();
    if let Some(te) = parts.headers.get(header::TRANSFER_ENCODING)
        && !te.as_bytes().eq_ignore_ascii_case(b"chunked")
    {
        let early = Early::new(
            StatusCode::BAD_REQUEST,
            "tollgate/framing",
            format!("Transfer-Encoding {te:?} is not supported; only chunked"),
        );
        return shared
            .refuse_parts(&parts.method, &parts.headers, &dest, early)
            .await;
    }
    let limits = policy.as_ref().map(|p| p.limits()).unwrap_or_default();
    let inspect = dest.route.as_ref().is_none_or(|r| r.inspect_body);
    let has_body = !http_body::Body::is_end_stream(&incoming);
    let (outgoing, decoded) = if has_body && inspect {
        let raw = match body::collect(incoming, limits.max_body_bytes, shared.config.timeouts.body)
            .await
        {
            Ok(raw) => raw,
            Err(e) => {
                return shared
                    .refuse_parts(&parts.method, &parts.headers, &dest, Early::from_body(&e))
                    .await;
            }
        };
        let decoded = match body::content_codings(&parts.headers)
            .and_then(|codings| body::decode(raw.clone(), &codings, limits.max_decoded_body_bytes))
        {
            Ok(d) => d,
            Err(e) => {
                return shared
                    .refuse_parts(&parts.method, &parts.headers, &dest, Early::from_body(&e))
                    .await;
            }
        };
        (Outgoing::Buffered(raw), Some(decoded))
    } else if has_body {
        (Outgoing::Streamed(incoming), None)
    } else {
        (Outgoing::Empty, None)
    };

    let decide_start = Instant::now();
    let head = RequestHead {
        method: parts.method.as_str(),
        scheme: dest.scheme,
        host: &dest.host,
        port: dest.port,
        path: &dest.path,
        query: dest.query.as_deref(),
        headers: &parts.headers,
        upgrade: upgrade.as_deref(),
    };
    let known = shared
        .config
        .recognition
        .known(dest.route.as_deref(), &dest.host, dest.port);
    let route_name = dest.route.as_ref().map(|r| &*r.name);
    // MCP and A2A carry calls in POST bodies only; a body on any other
    // method is refused rather than forwarded unjudged to a server that
    // might read it.
    if let Known::Declared(protocol @ (Protocol::Mcp | Protocol::A2a), _) = known
        && parts.method != Method::POST
        && (decoded.as_ref().is_some_and(|b| !b.is_empty())
            || matches!(outgoing, Outgoing::Streamed(_)))
    {
        let mut action = Action::http(dest.target(parts.method.as_str()));
        action.route = route_name.map(str::to_owned);
        let early = Early::new(
            StatusCode::BAD_REQUEST,
            "tollgate/framing",
            format!(
                "a {} request to a {protocol} route carries a body; only POST bodies carry calls, so this one is refused instead of being forwarded unjudged",
                parts.method
            ),
        );
        let shape = shape_for(protocol, known, &parts.headers, &[], false);
        return shared
            .refuse_action(&action, &dest, Some(protocol), shape, early, decide_start)
            .await;
    }
    let classified = match classify::classify(
        &head,
        route_name,
        known,
        decoded.as_deref(),
        limits.max_json_depth,
    ) {
        Ok(c) => c,
        Err(u) => {
            let mut action = Action::http(dest.target(parts.method.as_str()));
            action.route = route_name.map(str::to_owned);
            let early = Early::new(StatusCode::FORBIDDEN, "tollgate/unclassified", u.reason);
            let shape = shape_for(u.protocol, known, &parts.headers, &[], false);
            return shared
                .refuse_action(&action, &dest, Some(u.protocol), shape, early, decide_start)
                .await;
        }
    };
    let decisions = decide(policy.as_deref(), &classified, Instant::now());
    let ids: Vec<Value> = classified
        .calls
        .iter()
        .filter_map(|c| c.rpc_id.clone())
        .collect();
    let shape = shape_for(
        classified.protocol,
        known,
        &parts.headers,
        &ids,
        classified.framing == Framing::JsonRpcBatch,
    );
    let denied = decisions.iter().find(|d| !d.allowed());
    let latency_us = u64::try_from(decide_start.elapsed().as_micros()).unwrap_or(u64::MAX);
    let mut audit_failed = false;
    for (call, decision) in classified.calls.iter().zip(&decisions) {
        let decided = decided(decision, denied, classified.calls.len(), policy.is_some());
        shared.metrics.decision(
            classified.protocol.as_str(),
            decided.outcome == Outcome::Allow,
            &decided.rule,
        );
        let event = shared
            .auditor
            .event(&call.action, &decided, latency_us, dest.paths());
        if shared.auditor.record(event).await.is_err() {
            audit_failed = true;
        }
    }
    Metrics::observe_since(&shared.metrics.decision_seconds, decide_start);
    if let Some(d) = denied {
        let status = match d.kind {
            DecisionKind::RateLimited | DecisionKind::BudgetExhausted => {
                StatusCode::TOO_MANY_REQUESTS
            }
            _ => StatusCode::FORBIDDEN,
        };
        let refusal = Refusal {
            status,
            rule: d
                .rule
                .as_deref()
                .unwrap_or(rule_for_default(policy.is_some())),
            reason: &d.reason,
            retry_after: d.retry_after.map(|r| r.as_secs()),
        };
        return refuse(shape, &refusal);
    }
    if audit_failed {
        let refusal = Refusal {
            status: StatusCode::SERVICE_UNAVAILABLE,
            rule: "tollgate/audit-unavailable",
            reason: "the audit trail cannot record this action, so it is denied (fail-closed) until recording works again",
            retry_after: Some(5),
        };
        return refuse(shape, &refusal);
    }
    forward::forward(
        &shared,
        forward::Forward {
            parts,
            dest,
            body: outgoing,
            upgrade,
            client_upgrade,
            classified: &classified,
            decisions: &decisions,
            policy,
            shape,
        },
    )
    .await
}

/// The request body as it will be forwarded.
pub(crate) enum Outgoing {
    Empty,
    /// Read for inspection; forwarded as sent (still encoded).
    Buffered(Bytes),
    /// Not inspected; streamed through.
    Streamed(Incoming),
}

/// Decides every call; without a policy, everything is denied.
fn decide(
    policy: Option<&ActionPolicy>,
    classified: &Classified,
    now: Instant,
) -> Vec<ActionDecision> {
    classified
        .calls
        .iter()
        .map(|c| match policy {
            Some(p) => p.evaluate(&c.action, now),
            None => ActionDecision::deny(
                DecisionKind::NoMatch,
                "no valid action policy is loaded, so every action is denied; fix the policy file (see the sidecar's log for the error)",
            ),
        })
        .collect()
}

fn rule_for_default(has_policy: bool) -> &'static str {
    if has_policy {
        "tollgate/default-deny"
    } else {
        "tollgate/no-policy"
    }
}

/// The event's decision for one call. In a batch with a denied call, every
/// call is denied (the batch is judged as one).
fn decided(
    decision: &ActionDecision,
    denied: Option<&ActionDecision>,
    calls: usize,
    has_policy: bool,
) -> Decided {
    let rule: Arc<str> = match &decision.rule {
        Some(r) => Arc::clone(r),
        None => Arc::from(rule_for_default(has_policy)),
    };
    if decision.allowed()
        && calls > 1
        && let Some(d) = denied
    {
        return Decided {
            outcome: Outcome::Deny,
            rule: Arc::from("tollgate/batch"),
            reason: Arc::from(format!(
                "denied with its batch: another call in the same JSON-RPC batch was denied ({})",
                d.reason
            )),
            controls: Arc::from(Vec::new()),
        };
    }
    Decided {
        outcome: if decision.allowed() {
            Outcome::Allow
        } else {
            Outcome::Deny
        },
        rule,
        reason: Arc::clone(&decision.reason),
        controls: Arc::clone(&decision.controls),
    }
}

/// The refusal shape for a protocol and client.
pub(crate) fn shape_for<'a>(
    protocol: Protocol,
    known: Known,
    headers: &HeaderMap,
    ids: &'a [Value],
    batch: bool,
) -> Shape<'a> {
    match protocol {
        Protocol::Mcp | Protocol::A2a => {
            let accept = headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let sse_only =
                accept.contains("text/event-stream") && !accept.contains("application/json");
            Shape::JsonRpc {
                protocol,
                ids,
                batch,
                sse_only,
            }
        }
        Protocol::Kubernetes => Shape::Kubernetes,
        Protocol::Llm => {
            let provider = match known {
                Known::Declared(_, Some(p)) => p,
                _ if headers.contains_key("anthropic-version") => LlmProvider::Anthropic,
                _ => LlmProvider::Openai,
            };
            Shape::Llm(provider)
        }
        Protocol::Http => Shape::Plain,
    }
}

impl Shared {
    /// Works out where a request goes: every host is reduced to its
    /// canonical form and every path to the one it is judged on (and
    /// forwarded with) before anything is matched.
    fn destination(
        &self,
        conn: &Conn,
        req: &Request<Incoming>,
        policy: Option<&ActionPolicy>,
    ) -> Result<Destination, Early> {
        let uri = req.uri();
        let bad = |reason: String| Early::new(StatusCode::BAD_REQUEST, "tollgate/framing", reason);
        if req.headers().get_all(header::HOST).iter().count() > 1 {
            return Err(bad("more than one Host header".into()));
        }
        let host_header = match req.headers().get(header::HOST) {
            Some(v) => Some(
                v.to_str()
                    .map_err(|_| bad("unreadable Host header".into()))?,
            ),
            None => None,
        };
        let sent_path = uri.path().to_owned();
        let judged = |route: Option<&Arc<Route>>| -> Result<String, Early> {
            let strictness = route.map_or(PathStrictness::default(), |r| r.path_strictness);
            judge_path(uri.path(), strictness).map_err(|e| path_refusal(&e))
        };
        let with_query = |path: &str| match uri.query() {
            Some(q) => format!("{path}?{q}"),
            None => path.to_owned(),
        };
        if let Some(t) = &conn.tunnel {
            let default = if t.tls { 443 } else { 80 };
            let mut named = Vec::with_capacity(2);
            if let Some(h) = host_header {
                named.push(("the Host header", h));
            }
            if let Some(a) = uri.authority() {
                named.push(("the request", a.as_str()));
            }
            for (what, authority) in named {
                let (h, p) = split_authority(authority, default)
                    .map_err(|e| e.early(&format!("{what} ({authority:?})")))?;
                if h != t.host || p != t.port {
                    return Err(Early::new(
                        StatusCode::FORBIDDEN,
                        "tollgate/host-mismatch",
                        format!(
                            "{what} names {authority} but the tunnel goes to {}:{}; requests must name the host they were tunnelled to",
                            t.host, t.port
                        ),
                    ));
                }
            }
            let route = policy
                .and_then(|p| p.route_for_host(&t.host, t.port))
                .cloned();
            let path = judged(route.as_ref())?;
            return Ok(Destination {
                scheme: if t.tls { "https" } else { "http" },
                host: t.host.clone(),
                port: t.port,
                path_and_query: with_query(&path),
                path,
                sent_path,
                query: uri.query().map(str::to_owned),
                route,
            });
        }
        if let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) {
            let scheme = match scheme {
                "http" => "http",
                "https" => "https",
                other => return Err(bad(format!("scheme {other:?} cannot be proxied"))),
            };
            let default = if scheme == "https" { 443 } else { 80 };
            let (host, port) = split_authority(authority.as_str(), default)
                .map_err(|e| e.early(&format!("the request's authority {authority}")))?;
            // A proxy replaces Host with the authority (RFC 9112 3.2.2); a
            // Host that names another host is refused, not silently
            // dropped, since some server behind could still read it.
            if let Some(h) = host_header {
                let (hh, hp) = split_authority(h, default)
                    .map_err(|e| e.early(&format!("the Host header {h:?}")))?;
                if hh != host || hp != port {
                    return Err(Early::new(
                        StatusCode::FORBIDDEN,
                        "tollgate/host-mismatch",
                        format!(
                            "the Host header names {h} but the request names {authority}; send the same host in both"
                        ),
                    ));
                }
            }
            if !self.is_self(&host, port) {
                let route = policy.and_then(|p| p.route_for_host(&host, port)).cloned();
                let path = judged(route.as_ref())?;
                return Ok(Destination {
                    scheme,
                    host,
                    port,
                    path_and_query: with_query(&path),
                    path,
                    sent_path,
                    query: uri.query().map(str::to_owned),
                    route,
                });
            }
        }
        // Origin-form (or aimed at the proxy itself): a reverse-proxy route,
        // chosen on the most reduced form of the path; the route's
        // strictness then decides whether that reduction is allowed (refuse
        // mode's answer, when it has one, is the same path).
        let listener =
            judge_path(uri.path(), PathStrictness::Normalize).map_err(|e| path_refusal(&e))?;
        let Some((route, rest)) = policy.and_then(|p| p.route_for_path(&listener)) else {
            return Err(Early::new(
                StatusCode::FORBIDDEN,
                "tollgate/no-route",
                format!(
                    "no route serves {listener} on the sidecar's listener: use it as an HTTP proxy (absolute URLs, CONNECT) or declare a route with pathPrefix"
                ),
            ));
        };
        if route.path_strictness == PathStrictness::Refuse {
            judge_path(uri.path(), PathStrictness::Refuse).map_err(|e| path_refusal(&e))?;
        }
        let Some(up) = &route.upstream else {
            return Err(Early::new(
                StatusCode::FORBIDDEN,
                "tollgate/no-route",
                "the route has no upstream",
            ));
        };
        let scheme = if up.scheme == "https" {
            "https"
        } else {
            "http"
        };
        let path = format!(
            "{}{}",
            up.base_path,
            if rest.is_empty() && up.base_path.is_empty() {
                "/"
            } else {
                rest
            }
        );
        Ok(Destination {
            scheme,
            host: up.host.clone(),
            port: up.port,
            path_and_query: with_query(&path),
            path,
            sent_path,
            query: uri.query().map(str::to_owned),
            route: Some(Arc::clone(route)),
        })
    }

    fn is_self(&self, host: &str, port: u16) -> bool {
        if port != self.local.port() {
            return false;
        }
        let ip = host.trim_start_matches('[').trim_end_matches(']');
        match ip.parse::<std::net::IpAddr>() {
            Ok(addr) => {
                addr == self.local.ip() || (self.local.ip().is_unspecified() && addr.is_loopback())
            }
            Err(_) => host == "localhost",
        }
    }

    /// Refuses a request before its destination is known.
    async fn refuse_early(
        &self,
        conn: &Conn,
        req: &Request<Incoming>,
        protocol: Option<Protocol>,
        early: Early,
    ) -> Response<Payload> {
        let uri = req.uri();
        let (host, port) = match &conn.tunnel {
            Some(t) => (t.host.clone(), t.port),
            None => uri
                .authority()
                .and_then(|a| split_authority(a.as_str(), 80).ok())
                .unwrap_or_else(|| (self.local.ip().to_string(), self.local.port())),
        };
        let action = Action::http(Target {
            method: req.method().as_str().to_owned(),
            scheme: uri.scheme_str().unwrap_or("http").to_owned(),
            host,
            port,
            path: uri.path().to_owned(),
            query: uri.query().map(str::to_owned),
        });
        // Refused before any path was judged: the event says what was sent.
        let mut extra = serde_json::Map::new();
        extra.insert("pathSent".into(), Value::String(uri.path().to_owned()));
        self.record_refusal_with(&action, protocol, &early, Instant::now(), Some(extra))
            .await;
        refuse(Shape::Plain, &early.refusal())
    }

    /// Refuses a request whose destination is known, before classification.
    async fn refuse_parts(
        &self,
        method: &Method,
        headers: &HeaderMap,
        dest: &Destination,
        early: Early,
    ) -> Response<Payload> {
        let mut action = Action::http(dest.target(method.as_str()));
        action.route = dest.route.as_ref().map(|r| r.name.to_string());
        let known = self
            .config
            .recognition
            .known(dest.route.as_deref(), &dest.host, dest.port);
        let protocol = match known {
            Known::Declared(p, _) => p,
            Known::Undeclared => Protocol::Http,
        };
        self.record_refusal_with(
            &action,
            Some(protocol),
            &early,
            Instant::now(),
            dest.paths(),
        )
        .await;
        refuse(
            shape_for(protocol, known, headers, &[], false),
            &early.refusal(),
        )
    }

    /// Refuses a request that could not be classified.
    async fn refuse_action(
        &self,
        action: &Action,
        dest: &Destination,
        protocol: Option<Protocol>,
        shape: Shape<'_>,
        early: Early,
        started: Instant,
    ) -> Response<Payload> {
        self.record_refusal_with(action, protocol, &early, started, dest.paths())
            .await;
        refuse(shape, &early.refusal())
    }

    /// Records a refusal made by the proxy itself (the request is refused
    /// whatever the recorder says).
    pub(crate) async fn record_refusal(
        &self,
        action: &Action,
        protocol: Option<Protocol>,
        early: &Early,
        started: Instant,
    ) {
        self.record_refusal_with(action, protocol, early, started, None)
            .await;
    }

    /// [`Shared::record_refusal`] with extra event attributes.
    async fn record_refusal_with(
        &self,
        action: &Action,
        protocol: Option<Protocol>,
        early: &Early,
        started: Instant,
        extra: Option<serde_json::Map<String, Value>>,
    ) {
        let decided = early.decided();
        let latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let mut event = self.auditor.event(action, &decided, latency_us, extra);
        if let Some(p) = protocol {
            event.action.protocol = p.as_str().to_owned();
        }
        self.metrics.decision(
            protocol.unwrap_or(Protocol::Http).as_str(),
            false,
            &decided.rule,
        );
        // A refusal stands whatever the recorder says; its errors are
        // logged and counted by the auditor.
        let _ = self.auditor.record(event).await;
    }
}

impl Early {
    pub(crate) fn refusal(&self) -> Refusal<'_> {
        Refusal {
            status: self.status,
            rule: self.rule,
            reason: &self.reason,
            retry_after: None,
        }
    }

    fn decided(&self) -> Decided {
        Decided {
            outcome: Outcome::Deny,
            rule: Arc::from(self.rule),
            reason: Arc::from(self.reason.as_str()),
            controls: Arc::from(Vec::new()),
        }
    }
}

/// The refusal of a path no server could be trusted to read as judged.
fn path_refusal(e: &tollgate_policies::action::path::PathError) -> Early {
    Early::new(StatusCode::FORBIDDEN, "tollgate/path", e.to_string())
}

/// Why an authority has no canonical `host:port`.
#[derive(Debug)]
pub(crate) enum BadAuthority {
    /// Not `host[:port]` at all (bad port, unterminated IPv6 literal).
    Malformed,
    /// The host has no canonical form.
    Host(HostError),
}

impl BadAuthority {
    /// The refusal, naming `what` was refused.
    pub(crate) fn early(&self, what: &str) -> Early {
        match self {
            BadAuthority::Malformed => Early::new(
                StatusCode::BAD_REQUEST,
                "tollgate/framing",
                format!("{what} is not a valid host[:port]"),
            ),
            BadAuthority::Host(e) => Early::new(
                StatusCode::FORBIDDEN,
                "tollgate/host",
                format!("{what} is refused: {e}"),
            ),
        }
    }
}

/// Splits `host[:port]` (IPv6 bracketed) and reduces the host to its
/// canonical form (see [`host::request_host`]).
pub(crate) fn split_authority(
    authority: &str,
    default_port: u16,
) -> Result<(String, u16), BadAuthority> {
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let (raw, port) = if authority.starts_with('[') {
        let end = authority.find(']').ok_or(BadAuthority::Malformed)?;
        let (h, rest) = authority.split_at(end + 1);
        match rest.strip_prefix(':') {
            Some(p) => (h, parse_port(p)?),
            None if rest.is_empty() => (h, default_port),
            None => return Err(BadAuthority::Malformed),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, parse_port(p)?),
            None => (authority, default_port),
        }
    };
    if port == 0 {
        return Err(BadAuthority::Malformed);
    }
    let host = host::request_host(raw).map_err(BadAuthority::Host)?;
    Ok((host, port))
}

/// A port: decimal digits only (no sign), 1..=65535.
fn parse_port(p: &str) -> Result<u16, BadAuthority> {
    if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BadAuthority::Malformed);
    }
    p.parse().map_err(|_| BadAuthority::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities_split_with_defaults_and_brackets() {
        let split = |a: &str, d: u16| split_authority(a, d).ok();
        assert_eq!(split("Example.COM", 80), Some(("example.com".into(), 80)));
        assert_eq!(
            split("example.com.:8443", 80),
            Some(("example.com".into(), 8443))
        );
        assert_eq!(split("[::1]:9000", 80), Some(("[::1]".into(), 9000)));
        assert_eq!(split("[::1]", 443), Some(("[::1]".into(), 443)));
        assert_eq!(split("user:pw@host:81", 80), Some(("host".into(), 81)));
        assert_eq!(split("host:0", 80), None);
        assert_eq!(split("host:x", 80), None);
        assert_eq!(split("host:+80", 80), None);
        assert_eq!(split("host:", 80), None);
        assert_eq!(split(":80", 80), None);
        assert_eq!(split("[::1", 80), None);
    }

    #[test]
    fn authorities_reduce_every_spelling_of_a_host_to_one() {
        for a in [
            "127.0.0.1:8080",
            "2130706433:8080",
            "127.1:8080",
            "0x7f000001:8080",
            "0177.0.0.1:8080",
            "127.000.000.001:8080",
            "[::ffff:127.0.0.1]:8080",
            "[::ffff:7f00:1]:8080",
            "127.0.0.1.:8080",
        ] {
            assert_eq!(
                split_authority(a, 80).ok(),
                Some(("127.0.0.1".into(), 8080)),
                "{a}"
            );
        }
        for a in [
            "0:80",
            "0.0.0.0:80",
            "[::]:80",
            "[::127.0.0.1]:80",
            "1.2.3.256:80",
            "[fe80::1%25lo]:80",
        ] {
            assert!(
                matches!(split_authority(a, 80), Err(BadAuthority::Host(_))),
                "{a}"
            );
        }
    }

    #[test]
    fn a_denied_call_denies_its_batch() {
        let allow = ActionDecision {
            effect: tollgate_policies::action::Effect::Allow,
            kind: DecisionKind::Rule,
            rule: Some(Arc::from("ok")),
            rule_index: Some(0),
            reason: Arc::from("fine"),
            controls: Arc::from(Vec::new()),
            retry_after: None,
            reservation: None,
        };
        let deny = ActionDecision::deny(DecisionKind::NoMatch, "nope");
        let d = decided(&allow, Some(&deny), 2, true);
        assert_eq!(d.outcome, Outcome::Deny);
        assert_eq!(&*d.rule, "tollgate/batch");
        assert!(d.reason.contains("nope"));
        let d = decided(&allow, None, 2, true);
        assert_eq!(d.outcome, Outcome::Allow);
        assert_eq!(&*d.rule, "ok");
        let d = decided(&deny, Some(&deny), 1, false);
        assert_eq!(&*d.rule, "tollgate/no-policy");
        let d = decided(&deny, Some(&deny), 1, true);
        assert_eq!(&*d.rule, "tollgate/default-deny");
    }

    #[test]
    fn sse_only_clients_are_recognised() {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, "text/event-stream".parse().unwrap());
        let ids = [Value::from(1)];
        match shape_for(Protocol::Mcp, Known::Undeclared, &h, &ids, false) {
            Shape::JsonRpc { sse_only, .. } => assert!(sse_only),
            other => panic!("{other:?}"),
        }
        h.insert(
            header::ACCEPT,
            "application/json, text/event-stream".parse().unwrap(),
        );
        match shape_for(Protocol::Mcp, Known::Undeclared, &h, &ids, false) {
            Shape::JsonRpc { sse_only, .. } => assert!(!sse_only),
            other => panic!("{other:?}"),
        }
        h.insert("anthropic-version", "2023-06-01".parse().unwrap());
        assert!(matches!(
            shape_for(Protocol::Llm, Known::Undeclared, &h, &[], false),
            Shape::Llm(LlmProvider::Anthropic)
        ));
    }
}
