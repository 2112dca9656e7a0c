//! Golden cases: one YAML file per case under `cases/`: a request (and the
//! route it takes, if any) and either the calls it must classify into or
//! the reason it must be refused with.

use std::path::PathBuf;

use http::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::Value;
use tollgate_policies::action::{LlmProvider, Protocol};

use super::*;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Case {
    #[allow(dead_code)]
    description: String,
    request: Request,
    #[serde(default)]
    route: Option<RouteDecl>,
    #[serde(default)]
    expect: Option<Expect>,
    #[serde(default)]
    unclassified: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Request {
    method: String,
    url: String,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    upgrade: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RouteDecl {
    name: String,
    protocol: Protocol,
    #[serde(default)]
    provider: Option<LlmProvider>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Expect {
    protocol: Protocol,
    framing: String,
    calls: Vec<ExpectCall>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ExpectCall {
    #[serde(default)]
    rpc_id: Option<Value>,
    action: Value,
}

fn run(path: &std::path::Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let case: Case = yaml_serde::from_str(&text).map_err(|e| format!("bad case: {e}"))?;
    let uri: http::Uri = case
        .request
        .url
        .parse()
        .map_err(|e| format!("bad url: {e}"))?;
    let scheme = uri.scheme_str().unwrap_or("http");
    let host = uri.host().unwrap_or_default().to_ascii_lowercase();
    let port = uri
        .port_u16()
        .unwrap_or(if scheme == "https" { 443 } else { 80 });
    let path = normalize_path(uri.path());
    let mut headers = HeaderMap::new();
    for (k, v) in &case.request.headers {
        headers.insert(
            HeaderName::from_bytes(k.as_bytes()).map_err(|e| e.to_string())?,
            HeaderValue::from_str(v).map_err(|e| e.to_string())?,
        );
    }
    let head = RequestHead {
        method: &case.request.method,
        scheme,
        host: &host,
        port,
        path: &path,
        query: uri.query(),
        headers: &headers,
        upgrade: case.request.upgrade.as_deref(),
    };
    let recognition = Recognition {
        kubernetes_hosts: vec![("10.96.0.1".into(), Some(443))],
    };
    let known = match &case.route {
        Some(r) => Known::Declared(r.protocol, r.provider),
        None => recognition.known(None, &host, port),
    };
    let body = case.request.body.as_deref().map(str::as_bytes);
    let got = classify(
        &head,
        case.route.as_ref().map(|r| r.name.as_str()),
        known,
        body,
        16,
    );
    match (&case.expect, &case.unclassified, got) {
        (_, Some(want), Err(e)) => {
            if e.reason.contains(want.as_str()) {
                Ok(())
            } else {
                Err(format!("reason {:?} does not contain {want:?}", e.reason))
            }
        }
        (_, Some(_), Ok(c)) => Err(format!("classified as {c:?}; expected a refusal")),
        (Some(_), None, Err(e)) => Err(format!("refused: {e:?}")),
        (Some(want), None, Ok(got)) => {
            if got.protocol != want.protocol {
                return Err(format!(
                    "protocol {:?}, want {:?}",
                    got.protocol, want.protocol
                ));
            }
            let framing = match got.framing {
                Framing::Plain => "plain",
                Framing::JsonRpc => "json-rpc",
                Framing::JsonRpcBatch => "json-rpc-batch",
            };
            if framing != want.framing {
                return Err(format!("framing {framing}, want {}", want.framing));
            }
            if got.calls.len() != want.calls.len() {
                return Err(format!(
                    "{} calls, want {}",
                    got.calls.len(),
                    want.calls.len()
                ));
            }
            for (i, (g, w)) in got.calls.iter().zip(&want.calls).enumerate() {
                if g.rpc_id != w.rpc_id {
                    return Err(format!(
                        "call {i}: rpc id {:?}, want {:?}",
                        g.rpc_id, w.rpc_id
                    ));
                }
                let action = serde_json::to_value(&g.action).map_err(|e| e.to_string())?;
                if !contains(&action, &w.action) {
                    return Err(format!(
                        "call {i}: action {action} does not contain {}",
                        w.action
                    ));
                }
            }
            Ok(())
        }
        (None, None, _) => Err("the case expects nothing".into()),
    }
}

/// Whether `got` has every field of `want` (recursively, for objects).
fn contains(got: &Value, want: &Value) -> bool {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => w
            .iter()
            .all(|(k, wv)| g.get(k).is_some_and(|gv| contains(gv, wv))),
        _ => got == want,
    }
}

#[test]
fn golden_cases() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/classify/cases");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    assert!(
        paths.len() >= 20,
        "expected the golden cases in {}",
        dir.display()
    );
    let failures: Vec<String> = paths
        .iter()
        .filter_map(|p| run(p).err().map(|e| format!("{}: {e}", p.display())))
        .collect();
    assert!(
        failures.is_empty(),
        "failing cases:\n{}",
        failures.join("\n")
    );
}

#[test]
fn paths_are_normalised_for_matching() {
    for (raw, want) in [
        ("/a/b", "/a/b"),
        ("/%61dmin", "/admin"),
        ("/public/../admin", "/admin"),
        ("/a/./b/", "/a/b/"),
        ("/a/b/..", "/a/"),
        ("/../../etc", "/etc"),
        ("/x%2fy", "/x%2Fy"),
        ("/%7euser", "/~user"),
        ("/%zz", "/%zz"),
        ("", ""),
    ] {
        assert_eq!(normalize_path(raw), want, "{raw}");
    }
}

#[test]
fn kubernetes_paths_are_percent_decoded() {
    let k = kube::resolve("GET", "/api/v1/namespaces/kube%2Dsystem/secrets", None).unwrap();
    assert_eq!(k.namespace.as_deref(), Some("kube-system"));
    assert!(kube::resolve("GET", "/api/v1/namespaces/%zz/pods", None).is_err());
}
