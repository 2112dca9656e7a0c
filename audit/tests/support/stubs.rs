//! Loopback HTTPS receivers that enforce the real API contracts of the
//! SIEMs Tollgate exports to (no Splunk or Elasticsearch server can run
//! here): Splunk HEC's `/services/collector/event` (token auth, batch
//! parsing, `invalid-event-number`, 503 busy), Elasticsearch `_bulk`
//! (API-key auth, NDJSON, per-item statuses with 409 for an existing `_id`,
//! 429 rejections, 400 mapping errors), and a generic JSON webhook.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// What a stub received and how it behaves.
#[derive(Debug, Default)]
pub struct State {
    /// Accepted documents/events, in arrival order.
    pub accepted: Vec<Value>,
    /// Requests seen (including refused ones).
    pub requests: usize,
    /// Answer this many requests with a transient error first.
    pub fail_first: usize,
    /// Per-id attempts (Elasticsearch).
    pub attempts: HashMap<String, usize>,
    /// Ids already indexed (Elasticsearch).
    pub indexed: HashSet<String>,
    /// Ids answered 429 on their first attempt (Elasticsearch).
    pub reject_once: HashSet<String>,
    /// Headers of the last request.
    pub last_headers: Vec<(String, String)>,
}

pub type Shared = Arc<Mutex<State>>;

/// A running stub.
pub struct Stub {
    pub addr: SocketAddr,
    pub ca: PathBuf,
    pub state: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn reply(status: u16, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

type Handler =
    Arc<dyn Fn(&str, &[(String, String)], Bytes, &Shared) -> Response<Full<Bytes>> + Send + Sync>;

async fn serve(dir: &Path, handler: Handler) -> Stub {
    let ca = tollgate_certs::Authority::generate("stub CA", time::Duration::days(1)).unwrap();
    let pair = ca
        .issue_server(
            &["localhost".into(), "127.0.0.1".into()],
            time::Duration::days(1),
        )
        .unwrap();
    let ca_path = dir.join(format!("stub-ca-{}.pem", rand_suffix()));
    std::fs::write(&ca_path, ca.cert_pem()).unwrap();
    let chain = tollgate_certs::pem::parse_certs(pair.cert_pem.as_bytes(), "cert").unwrap();
    let key = tollgate_certs::pem::parse_key(pair.key_pem.as_bytes(), "key").unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(tollgate_certs::tls::PROTOCOL_VERSIONS)
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state: Shared = Arc::default();
    let st = state.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let handler = handler.clone();
            let st = st.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = service_fn(move |req: Request<Incoming>| {
                    let handler = handler.clone();
                    let st = st.clone();
                    async move {
                        let path = req.uri().path().to_owned();
                        let headers: Vec<(String, String)> = req
                            .headers()
                            .iter()
                            .map(|(k, v)| {
                                (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned())
                            })
                            .collect();
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        Ok::<_, std::convert::Infallible>(handler(&path, &headers, body, &st))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    Stub {
        addr,
        ca: ca_path,
        state,
        task,
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Splunk HEC: `POST /services/collector/event`, `Authorization: Splunk
/// <token>`, a body of concatenated event objects. An event whose `event`
/// is missing is refused with code 12; one whose text contains `poison`
/// with code 6 ("Invalid data format"); both report `invalid-event-number`
/// and, as Splunk does, index the events before it.
pub async fn splunk(dir: &Path, token: &str) -> Stub {
    let token = token.to_owned();
    serve(
        dir,
        Arc::new(move |path, headers, body, st| {
            let mut s = st.lock().unwrap();
            s.requests += 1;
            s.last_headers = headers.to_vec();
            if path != "/services/collector/event" {
                return reply(404, json!({"text": "The requested URL was not found on this server.", "code": 404}));
            }
            match header(headers, "authorization") {
                None => return reply(401, json!({"text": "Token is required", "code": 2})),
                Some(v) if v != format!("Splunk {token}") => {
                    return reply(403, json!({"text": "Invalid token", "code": 4}));
                }
                Some(_) => {}
            }
            if s.fail_first > 0 {
                s.fail_first -= 1;
                return reply(503, json!({"text": "Server is busy", "code": 9}));
            }
            let events: Vec<Value> = match serde_json::Deserializer::from_slice(&body)
                .into_iter::<Value>()
                .collect::<Result<_, _>>()
            {
                Ok(v) => v,
                Err(_) => return reply(400, json!({"text": "Invalid data format", "code": 6})),
            };
            if events.is_empty() {
                return reply(400, json!({"text": "No data", "code": 5}));
            }
            for (i, e) in events.iter().enumerate() {
                if e.get("event").is_none_or(Value::is_null) {
                    return reply(400, json!({"text": "Event field is required", "code": 12, "invalid-event-number": i}));
                }
                if e["event"].to_string().contains("poison") {
                    return reply(400, json!({"text": "Invalid data format", "code": 6, "invalid-event-number": i}));
                }
                s.accepted.push(e.clone());
            }
            reply(200, json!({"text": "Success", "code": 0}))
        }),
    )
    .await
}

/// Elasticsearch `_bulk`: `Authorization: ApiKey <key>`, NDJSON of
/// `create` actions and documents; per item 201 created, 409
/// `version_conflict_engine_exception` if the `_id` exists, 429
/// `es_rejected_execution_exception` for ids in `reject_once` on their
/// first attempt, 400 `mapper_parsing_exception` for documents whose text
/// contains `mapping-bomb`.
pub async fn elasticsearch(dir: &Path, api_key: &str) -> Stub {
    let api_key = api_key.to_owned();
    serve(
        dir,
        Arc::new(move |path, headers, body, st| {
            let mut s = st.lock().unwrap();
            s.requests += 1;
            if path != "/_bulk" {
                return reply(404, json!({"error": "no handler", "status": 404}));
            }
            if header(headers, "authorization") != Some(&format!("ApiKey {api_key}")) {
                return reply(401, json!({"error": {"type": "security_exception", "reason": "missing authentication credentials"}, "status": 401}));
            }
            if header(headers, "content-type") != Some("application/x-ndjson") {
                return reply(406, json!({"error": "Content-Type header is not supported", "status": 406}));
            }
            if s.fail_first > 0 {
                s.fail_first -= 1;
                return reply(503, json!({"error": {"type": "unavailable_shards_exception"}, "status": 503}));
            }
            let text = String::from_utf8_lossy(&body).to_string();
            if !text.ends_with('\n') {
                return reply(400, json!({"error": {"type": "illegal_argument_exception", "reason": "The bulk request must be terminated by a newline [\\n]"}, "status": 400}));
            }
            let lines: Vec<&str> = text.lines().collect();
            let mut items = Vec::new();
            let mut errors = false;
            for pair in lines.chunks(2) {
                let action: Value = serde_json::from_str(pair[0]).unwrap();
                let doc: Value = serde_json::from_str(pair[1]).unwrap();
                let meta = &action["create"];
                let id = meta["_id"].as_str().unwrap().to_owned();
                let index = meta["_index"].as_str().unwrap().to_owned();
                let attempt = {
                    let a = s.attempts.entry(id.clone()).or_insert(0);
                    *a += 1;
                    *a
                };
                let (status, error) = if s.indexed.contains(&id) {
                    (409, Some(json!({"type": "version_conflict_engine_exception", "reason": format!("[{id}]: version conflict, document already exists")})))
                } else if doc.to_string().contains("mapping-bomb") {
                    (400, Some(json!({"type": "mapper_parsing_exception", "reason": "failed to parse field [tollgate.action.attributes.x] of type [long]"})))
                } else if s.reject_once.contains(&id) && attempt == 1 {
                    (429, Some(json!({"type": "es_rejected_execution_exception", "reason": "rejected execution of coordinating operation"})))
                } else {
                    s.indexed.insert(id.clone());
                    s.accepted.push(doc);
                    (201, None)
                };
                let mut item = json!({"_index": index, "_id": id, "status": status});
                if let Some(e) = error {
                    errors = true;
                    item["error"] = e;
                }
                items.push(json!({"create": item}));
            }
            reply(200, json!({"took": 3, "errors": errors, "items": items}))
        }),
    )
    .await
}

/// A generic webhook: `POST /ingest` with `Authorization: Bearer <token>`
/// and `{"events": [...]}`; 500 for the first `fail_first` requests; 400 if
/// any event's text contains `reject-me`.
pub async fn webhook(dir: &Path, token: &str) -> Stub {
    let token = token.to_owned();
    serve(
        dir,
        Arc::new(move |path, headers, body, st| {
            let mut s = st.lock().unwrap();
            s.requests += 1;
            s.last_headers = headers.to_vec();
            if path != "/ingest" {
                return reply(404, json!({"error": "not found"}));
            }
            if header(headers, "authorization") != Some(&format!("Bearer {token}")) {
                return reply(401, json!({"error": "unauthorized"}));
            }
            if s.fail_first > 0 {
                s.fail_first -= 1;
                return reply(500, json!({"error": "internal"}));
            }
            let Ok(doc) = serde_json::from_slice::<Value>(&body) else {
                return reply(400, json!({"error": "not JSON"}));
            };
            let Some(events) = doc["events"].as_array() else {
                return reply(400, json!({"error": "missing events"}));
            };
            if events.iter().any(|e| e.to_string().contains("reject-me")) {
                return reply(400, json!({"error": "schema violation"}));
            }
            s.accepted.extend(events.iter().cloned());
            reply(202, json!({"accepted": events.len()}))
        }),
    )
    .await
}
