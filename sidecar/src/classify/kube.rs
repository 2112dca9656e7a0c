//! Kubernetes API requests, decoded from method, path and query the way the
//! API server's request-info resolver decodes them (verb, API group and
//! version, resource and subresource, namespace, name), so a rule means
//! what the equivalent RBAC rule means.

use tollgate_policies::action::{Action, ActionKind, KubeRequest, Protocol};

use super::{Call, Classified, Framing, RequestHead};

/// Subresources of namespaces that are not resources in their own right.
const NAMESPACE_SUBRESOURCES: &[&str] = &["status", "finalize"];

pub(super) fn classify(head: &RequestHead<'_>, base: Action) -> Result<Classified, String> {
    let kube = resolve(head.method, head.path, head.query)?;
    Ok(Classified {
        protocol: Protocol::Kubernetes,
        framing: Framing::Plain,
        calls: vec![Call {
            action: Action {
                kind: ActionKind::Kubernetes(kube),
                ..base
            },
            rpc_id: None,
        }],
    })
}

/// Resolves a request like the API server does.
pub(crate) fn resolve(
    method: &str,
    raw_path: &str,
    query: Option<&str>,
) -> Result<KubeRequest, String> {
    let path = percent_decode(raw_path)
        .ok_or_else(|| format!("malformed percent-encoding in path {raw_path:?}"))?;
    let non_resource = || KubeRequest {
        verb: method.to_ascii_lowercase(),
        resource_request: false,
        ..KubeRequest::default()
    };
    if !path.starts_with('/') {
        return Ok(non_resource());
    }
    let mut parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    if parts.len() < 3 {
        return Ok(non_resource());
    }
    let mut req = KubeRequest {
        resource_request: true,
        ..KubeRequest::default()
    };
    match parts.first().copied() {
        Some("api") => {
            parts.remove(0);
        }
        Some("apis") => {
            parts.remove(0);
            if parts.len() < 3 {
                return Ok(non_resource());
            }
            req.api_group = parts.remove(0).to_owned();
        }
        _ => return Ok(non_resource()),
    }
    req.api_version = parts.remove(0).to_owned();
    let mut by_method = true;
    match parts.first().copied() {
        Some(special @ ("watch" | "proxy")) => {
            if parts.len() < 2 {
                return Err(format!("cannot tell the resource in {path:?}"));
            }
            req.verb = special.to_owned();
            parts.remove(0);
            by_method = false;
        }
        _ => {
            req.verb = match method {
                "POST" => "create",
                "GET" | "HEAD" => "get",
                "PUT" => "update",
                "PATCH" => "patch",
                "DELETE" => "delete",
                _ => "",
            }
            .to_owned();
        }
    }
    if req.verb.is_empty() {
        return Err(format!("{method} is not a Kubernetes API method"));
    }
    if parts.first() == Some(&"namespaces")
        && let Some(ns) = parts.get(1)
    {
        req.namespace = Some((*ns).to_owned());
        if parts
            .get(2)
            .is_some_and(|p| !NAMESPACE_SUBRESOURCES.contains(p))
        {
            parts.drain(..2);
        }
    }
    if let Some(resource) = parts.first() {
        req.resource = (*resource).to_owned();
    }
    if let Some(name) = parts.get(1) {
        req.name = Some((*name).to_owned());
    }
    if req.verb != "proxy"
        && let Some(sub) = parts.get(2)
    {
        req.subresource = Some((*sub).to_owned());
    }
    if req.resource.is_empty() || req.name.as_deref() == Some("") {
        return Err(format!("cannot tell the resource in {path:?}"));
    }
    if by_method && req.name.is_none() && req.verb == "get" {
        req.verb = if query_flag(query, "watch") {
            "watch"
        } else {
            "list"
        }
        .to_owned();
        if let Some(name) = field_selector_name(query)? {
            req.name = Some(name);
        }
    }
    if by_method && req.name.is_none() && req.verb == "delete" {
        req.verb = "deletecollection".into();
    }
    Ok(req)
}

/// Query parameters, decoded (`+` is a space).
fn query_params(query: Option<&str>) -> impl Iterator<Item = (String, String)> + '_ {
    query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = percent_decode(&k.replace('+', " "))?;
            let v = percent_decode(&v.replace('+', " "))?;
            Some((k, v))
        })
}

/// A boolean query flag as the API server reads it: present and not `0` or
/// `false` means true (the first occurrence counts).
fn query_flag(query: Option<&str>, name: &str) -> bool {
    query_params(query)
        .find(|(k, _)| k == name)
        .is_some_and(|(_, v)| !(v == "0" || v.eq_ignore_ascii_case("false")))
}

/// The name a `fieldSelector=metadata.name=x` pins a list or watch to.
///
/// The API server reads the first `fieldSelector` parameter, splits it on
/// unescaped commas, **sorts** the terms, and names the request after the
/// first `metadata.name` term with `=`/`==` in that order (not in the order
/// written). Rather than mirror that, a selector that could name two
/// different objects is refused: repeated `fieldSelector` parameters that
/// differ, `metadata.name` terms with different values, or escapes (`\\`)
/// in a selector that mentions `metadata.name`.
fn field_selector_name(query: Option<&str>) -> Result<Option<String>, String> {
    let mut selectors = query_params(query).filter(|(k, _)| k == "fieldSelector");
    let Some((_, selector)) = selectors.next() else {
        return Ok(None);
    };
    if selectors.any(|(_, other)| other != selector) {
        return Err(
            "more than one fieldSelector parameter, with different values: refused as ambiguous"
                .into(),
        );
    }
    if !selector.contains("metadata.name") {
        return Ok(None);
    }
    if selector.contains('\\') {
        return Err(format!(
            "fieldSelector {selector:?} escapes characters around metadata.name: refused as ambiguous"
        ));
    }
    let mut name: Option<&str> = None;
    for term in selector.split(',') {
        let Some((field, value)) = term.split_once("==").or_else(|| term.split_once('=')) else {
            continue;
        };
        if field.trim() != "metadata.name" || field.ends_with('!') {
            continue;
        }
        match name {
            Some(seen) if seen != value.trim() => {
                return Err(format!(
                    "fieldSelector {selector:?} names more than one metadata.name: refused as ambiguous"
                ));
            }
            _ => name = Some(value.trim()),
        }
    }
    Ok(name
        .filter(|n| !n.is_empty() && !n.contains(['/', '%']) && *n != "." && *n != "..")
        .map(str::to_owned))
}

/// Decodes `%XX` escapes (as Go's `URL.Path` is decoded); `None` for a
/// malformed escape or invalid UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_owned());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hi = hex(*bytes.get(i + 1)?)?;
            let lo = hex(*bytes.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}
