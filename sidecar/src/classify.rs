//! Classification: one HTTP request in, typed [`Action`]s out (one per
//! JSON-RPC call in a batch), before any decision is made.
//!
//! How a request is recognised, in order:
//!
//! 1. **Declared route.** A route in the policy (by host for the forward
//!    proxy and intercepted TLS, by path prefix for the reverse proxy) says
//!    what the traffic is. Classification is then strict: an MCP route's
//!    POST must be JSON-RPC, an LLM route's POST must be a JSON body, and
//!    anything that does not parse is denied.
//! 2. **Well-known hosts.** `api.openai.com` (OpenAI), `api.anthropic.com`
//!    (Anthropic), and the in-cluster API server (`kubernetes`,
//!    `kubernetes.default`, `kubernetes.default.svc`,
//!    `kubernetes.default.svc.cluster.local`, and `KUBERNETES_SERVICE_HOST`)
//!    are treated as declared routes of their protocol.
//! 3. **Shape.** An A2A HTTP+JSON verb in the path (`/message:send`,
//!    `/message:stream`, `/tasks/{id}:cancel`, `/tasks/{id}:subscribe`) is
//!    A2A. Any other request whose body looks like JSON (after an optional
//!    byte order mark and whitespace it starts with `{` or `[`, in any
//!    encoding, whatever its `Content-Type`) must be strict UTF-8 JSON or it
//!    is refused (see [`crate::json`]): never passed on as opaque bytes a
//!    lenient server would run. Every message of a batch is looked at: any
//!    MCP method makes it MCP, any A2A method A2A (a batch with both is
//!    refused, the `tasks/*` names both protocols use included); a POST to `.../chat/completions`, `.../responses` or
//!    `.../messages` with a `model` is an LLM call.
//! 4. Everything else is plain HTTP (method, scheme, host, port, path).

use http::HeaderMap;
use serde_json::Value;
use tollgate_policies::action::{Action, ActionKind, LlmProvider, Protocol, Route, Target};

use crate::json::{self, JsonError};

mod a2a;
mod jsonrpc;
mod kube;
mod llm;
mod mcp;

/// The request line and headers, as the classifier sees them: the target is
/// where the request will actually go (for reverse-proxy routes, the
/// upstream and its path).
#[derive(Debug, Clone)]
pub struct RequestHead<'a> {
    /// The HTTP method.
    pub method: &'a str,
    /// `http` or `https`.
    pub scheme: &'a str,
    /// The host, lowercase.
    pub host: &'a str,
    /// The port.
    pub port: u16,
    /// The path (without query).
    pub path: &'a str,
    /// The query string.
    pub query: Option<&'a str>,
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The protocol of an HTTP upgrade, if the request asks for one.
    pub upgrade: Option<&'a str>,
}

/// What a request was classified as.
#[derive(Debug, Clone, PartialEq)]
pub struct Classified {
    /// The protocol.
    pub protocol: Protocol,
    /// How the request frames its calls (decides the shape of a denial).
    pub framing: Framing,
    /// One call per action: one for most requests, one per message in a
    /// JSON-RPC batch.
    pub calls: Vec<Call>,
}

/// How calls are framed in the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One request, one action.
    Plain,
    /// One JSON-RPC message.
    JsonRpc,
    /// A JSON-RPC batch (array).
    JsonRpcBatch,
}

/// One action, with its JSON-RPC id when it is a JSON-RPC request.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The action.
    pub action: Action,
    /// The JSON-RPC id of a request (`None` for notifications, responses
    /// and non-JSON-RPC requests).
    pub rpc_id: Option<Value>,
}

/// A request that could not be classified, and so is denied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unclassified {
    /// The protocol the request was expected to speak (from its route), or
    /// `http`.
    pub protocol: Protocol,
    /// Why, phrased for the agent.
    pub reason: String,
}

/// Configuration of recognition that does not come from the policy.
#[derive(Debug, Clone, Default)]
pub struct Recognition {
    /// Extra hosts (`host` or `host:port`) that are the Kubernetes API
    /// server, e.g. `KUBERNETES_SERVICE_HOST:KUBERNETES_SERVICE_PORT`.
    pub kubernetes_hosts: Vec<(String, Option<u16>)>,
}

/// Host names that are the in-cluster API server.
const KUBERNETES_NAMES: &[&str] = &[
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
];

/// What a request is known to be before its body is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    /// Declared (by a route or a well-known host) as this protocol.
    Declared(Protocol, Option<LlmProvider>),
    /// Not declared: recognised by shape.
    Undeclared,
}

impl Recognition {
    /// What a request to `host`:`port` is, given its route.
    pub fn known(&self, route: Option<&Route>, host: &str, port: u16) -> Known {
        if let Some(route) = route {
            return Known::Declared(route.protocol, route.provider);
        }
        match host {
            "api.openai.com" => return Known::Declared(Protocol::Llm, Some(LlmProvider::Openai)),
            "api.anthropic.com" => {
                return Known::Declared(Protocol::Llm, Some(LlmProvider::Anthropic));
            }
            _ => {}
        }
        if KUBERNETES_NAMES.contains(&host)
            || self
                .kubernetes_hosts
                .iter()
                .any(|(h, p)| h == host && p.is_none_or(|p| p == port))
        {
            return Known::Declared(Protocol::Kubernetes, None);
        }
        Known::Undeclared
    }
}

/// Classifies a request. `route` is the declared route it takes (if any);
/// `body` the decoded body (`None` when the request has none);
/// `max_json_depth` the nesting bound.
pub fn classify(
    head: &RequestHead<'_>,
    route_name: Option<&str>,
    known: Known,
    body: Option<&[u8]>,
    max_json_depth: u32,
) -> Result<Classified, Unclassified> {
    let target = Target {
        method: head.method.to_owned(),
        scheme: head.scheme.to_owned(),
        host: head.host.to_owned(),
        port: head.port,
        path: head.path.to_owned(),
        query: head.query.map(str::to_owned),
    };
    let base = Action {
        target,
        route: route_name.map(str::to_owned),
        upgrade: head.upgrade.map(str::to_owned),
        kind: ActionKind::Http,
    };
    // Without a route, a server is named by host and port: two servers on
    // one address are two servers.
    let authority;
    let server = match route_name {
        Some(name) => name,
        None => {
            authority = format!("{}:{}", head.host, head.port);
            authority.as_str()
        }
    };
    match known {
        Known::Declared(protocol, provider) => {
            let fail = |reason: String| Unclassified { protocol, reason };
            match protocol {
                Protocol::Mcp => {
                    mcp::classify(head, base, server, body, max_json_depth).map_err(fail)
                }
                Protocol::A2a => {
                    a2a::classify(head, base, server, body, max_json_depth).map_err(fail)
                }
                Protocol::Kubernetes => kube::classify(head, base).map_err(fail),
                Protocol::Llm => {
                    llm::classify(head, base, provider, body, max_json_depth).map_err(fail)
                }
                Protocol::Http => Ok(plain(base)),
            }
        }
        Known::Undeclared => detect(head, base, server, body, max_json_depth),
    }
}

/// Recognition by shape, for requests no route declares.
fn detect(
    head: &RequestHead<'_>,
    base: Action,
    server: &str,
    body: Option<&[u8]>,
    max_json_depth: u32,
) -> Result<Classified, Unclassified> {
    if let Some(result) = a2a::detect_rest(head, base.clone(), server, body, max_json_depth) {
        return result.map_err(|reason| Unclassified {
            protocol: Protocol::A2a,
            reason,
        });
    }
    let Some(bytes) = body else {
        return Ok(plain(base));
    };
    let value = match json::parse_body(bytes, charset(head.headers), max_json_depth) {
        Ok(Some(v)) => v,
        Ok(None) => return Ok(plain(base)),
        Err(e) => {
            return Err(Unclassified {
                protocol: Protocol::Http,
                reason: format!("request body refused: {e}"),
            });
        }
    };
    // Every message of a batch counts, whatever comes first and whether or
    // not it says "jsonrpc": a response or an unknown method must not hide
    // a later call.
    let methods = jsonrpc::methods(&value);
    let mcp = methods.iter().any(|m| mcp::is_mcp_method(m));
    let a2a = methods.iter().any(|m| a2a::is_a2a_method(m));
    // MCP no longer batches and A2A servers rarely do; a batch with calls
    // of both (the shared `tasks/*` names included) would be judged under
    // one protocol and run under the other, so it is refused.
    if mcp && a2a {
        return Err(Unclassified {
            protocol: Protocol::Http,
            reason: "the JSON-RPC batch mixes MCP and A2A calls; send them separately".into(),
        });
    }
    if mcp {
        return mcp::from_value(base, server, value).map_err(|reason| Unclassified {
            protocol: Protocol::Mcp,
            reason,
        });
    }
    if a2a {
        return a2a::from_value(base, server, value).map_err(|reason| Unclassified {
            protocol: Protocol::A2a,
            reason,
        });
    }
    if head.method == "POST"
        && let Some(provider) = llm::provider_for_path(head.path)
        && value.get("model").is_some_and(Value::is_string)
    {
        return llm::from_value(head, base, provider, &value, bytes.len()).map_err(|reason| {
            Unclassified {
                protocol: Protocol::Llm,
                reason,
            }
        });
    }
    Ok(plain(base))
}

/// The `charset` of the request's `Content-Type`, if it declares one.
fn charset(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(json::content_type_charset)
}

/// A body that must be JSON (a declared route's): strict UTF-8 JSON, or a
/// refusal saying why not.
pub(crate) fn json_body(
    head: &RequestHead<'_>,
    bytes: &[u8],
    max_json_depth: u32,
) -> Result<Value, JsonError> {
    match json::parse_body(bytes, charset(head.headers), max_json_depth)? {
        Some(value) => Ok(value),
        // Not an object or an array: parse it anyway, for the error (or a
        // scalar, which the caller then refuses as the wrong shape).
        None => json::parse_strict(bytes, max_json_depth),
    }
}

/// Normalises a request path for matching (RFC 3986 section 6.2.2):
/// percent-escapes of unreserved characters are decoded, other escapes are
/// upper-cased, and `.`/`..` segments are resolved, so `/%61dmin` and
/// `/public/../admin` are both judged as `/admin`. The request is forwarded
/// with the path the agent sent.
pub fn normalize_path(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%'
            && let (Some(&h), Some(&l)) = (bytes.get(i + 1), bytes.get(i + 2))
            && let (Some(hv), Some(lv)) = ((h as char).to_digit(16), (l as char).to_digit(16))
        {
            let c = (hv * 16 + lv) as u8;
            if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
                out.push(c);
            } else {
                out.extend_from_slice(&[b'%', h.to_ascii_uppercase(), l.to_ascii_uppercase()]);
            }
            i += 3;
            continue;
        }
        out.push(b);
        i += 1;
    }
    let decoded = String::from_utf8_lossy(&out);
    if !decoded.split('/').any(|s| s == "." || s == "..") {
        return decoded.into_owned();
    }
    let mut out: Vec<&str> = Vec::new();
    let trailing = decoded.ends_with("/.") || decoded.ends_with("/..");
    for segment in decoded.split('/').skip(1) {
        match segment {
            "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut normal = String::with_capacity(decoded.len());
    for s in &out {
        normal.push('/');
        normal.push_str(s);
    }
    if trailing || normal.is_empty() {
        normal.push('/');
    }
    normal
}

fn plain(action: Action) -> Classified {
    Classified {
        protocol: Protocol::Http,
        framing: Framing::Plain,
        calls: vec![Call {
            action,
            rpc_id: None,
        }],
    }
}

#[cfg(test)]
mod tests;
