//! An in-process fake Kubernetes API server.
//!
//! There is no kube-apiserver on the machines these tests run on, so this
//! server plays its part: HTTPS with a generated CA, bearer-token
//! authentication, legacy discovery (`/api`, `/apis`, resource lists,
//! including CRDs registered at runtime), get / list / create / update /
//! patch (JSON patch, merge patch, strategic merge treated as merge patch,
//! server-side apply treated as create-or-merge) / delete, resource versions
//! with `409 Conflict` on stale updates, `AlreadyExists`, `NotFound` Status
//! bodies, label and field selectors, watches (`resourceVersion`,
//! `allowWatchBookmarks`, `sendInitialEvents`, `timeoutSeconds`), and the
//! admission chain (mutating then validating webhooks, AdmissionReview v1),
//! and kube-apiserver's own checks of what it stores (`validation`): object
//! names per kind and `generateName`, label keys and values, annotation
//! keys and total size, workload selectors, and the fields an update may
//! not change, refused with the same status codes and messages.
//! Tests can expire history (`410 Gone` on resume), drop watch connections,
//! and inject failures.
//!
//! What it does not do: authorization (every authenticated user may do
//! everything), OpenAPI schema validation and defaulting, garbage collection,
//! finalizers, field management beyond the above, pagination (all items are
//! returned at once, which the protocol allows), Protobuf request bodies
//! (answered `415`; `kubectl create configmap …` sends them, `kubectl
//! create|apply -f FILE` sends JSON), and
//! aggregated discovery (clients fall back to the legacy documents, as they
//! do against older servers). `kubectl` needs `--validate=false` because
//! there is no OpenAPI document.

mod admission;
mod selector;
mod store;
mod validation;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use futures::StreamExt;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

pub use selector::Selector;
pub use store::{EventType, ResourceType};

use admission::{Attributes, Outcome, reason_for};
use selector::labels_of;
use store::{Store, name_of, rv_of};
use validation::Refusal;

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Errors starting or driving the fake server.
#[derive(Debug, thiserror::Error)]
pub enum FakeError {
    /// Binding, TLS or file I/O failed.
    #[error("fake API server: {0}")]
    Io(#[from] std::io::Error),
    /// Certificates could not be generated.
    #[error("fake API server certificates: {0}")]
    Certs(#[from] tollgate_certs::CertError),
    /// The kube client could not be configured.
    #[error("kube client for the fake API server: {0}")]
    Kube(String),
    /// An object handed to the server directly is invalid.
    #[error("invalid object: {0}")]
    Invalid(String),
}

/// Options for [`FakeApiServer::start_with`].
#[derive(Debug, Clone)]
pub struct Options {
    /// How often watches that asked for bookmarks get one.
    pub bookmark_interval: Duration,
    /// The bearer token clients must present.
    pub token: String,
    /// The user name admission requests carry.
    pub user: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            bookmark_interval: Duration::from_secs(1),
            token: "tollgate-fake-token".into(),
            user: "kubernetes-admin".into(),
        }
    }
}

/// A request the server received, for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Path.
    pub path: String,
    /// Raw query string.
    pub query: String,
    /// `Content-Type`, if any.
    pub content_type: String,
    /// HTTP status answered (for watches: the status the stream started with).
    pub status: u16,
}

/// A failure to inject into matching requests.
#[derive(Debug, Clone)]
pub struct Fault {
    /// Method to match (any when `None`).
    pub method: Option<Method>,
    /// Substring `PATH?QUERY` must contain (so `/api/v1/namespaces?`
    /// matches the namespace collection only).
    pub path_contains: String,
    /// Substring the query must contain (e.g. `watch=true`).
    pub query_contains: String,
    /// HTTP status to answer with.
    pub code: u16,
    /// How many matching requests fail.
    pub times: usize,
}

struct Shared {
    store: Mutex<Store>,
    rv_tx: watch::Sender<u64>,
    drop_tx: watch::Sender<u64>,
    bookmark_tx: watch::Sender<u64>,
    shutdown_tx: watch::Sender<bool>,
    services: Mutex<BTreeMap<(String, String), SocketAddr>>,
    requests: Mutex<Vec<RecordedRequest>>,
    faults: Mutex<Vec<Fault>>,
    active_watches: AtomicUsize,
    started_watches: AtomicUsize,
    options: Options,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The fake API server; stops when dropped.
pub struct FakeApiServer {
    addr: SocketAddr,
    ca_pem: String,
    shared: Arc<Shared>,
    _dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl std::fmt::Debug for FakeApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeApiServer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        let _ = self.shared.shutdown_tx.send(true);
    }
}

impl FakeApiServer {
    /// Starts a server on a loopback port with default options.
    pub async fn start() -> Result<FakeApiServer, FakeError> {
        FakeApiServer::start_with(Options::default()).await
    }

    /// Starts a server on a loopback port.
    pub async fn start_with(options: Options) -> Result<FakeApiServer, FakeError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ca =
            tollgate_certs::Authority::generate("fake kube-apiserver CA", time::Duration::days(1))?;
        let pair = ca.issue_server(
            &[
                "localhost".into(),
                "127.0.0.1".into(),
                "kubernetes.default.svc".into(),
            ],
            time::Duration::days(1),
        )?;
        let certified =
            tollgate_certs::certified_key(pair.cert_pem.as_bytes(), pair.key_pem.as_bytes())?;
        let tls = tollgate_certs::server_config(
            Arc::new(FixedCert(Arc::new(certified))),
            &[b"http/1.1"],
        )?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::new()),
            rv_tx: watch::channel(0).0,
            drop_tx: watch::channel(0).0,
            bookmark_tx: watch::channel(0).0,
            shutdown_tx,
            services: Mutex::new(BTreeMap::new()),
            requests: Mutex::new(Vec::new()),
            faults: Mutex::new(Vec::new()),
            active_watches: AtomicUsize::new(0),
            started_watches: AtomicUsize::new(0),
            options,
        });
        let dir = tempfile::tempdir()?;
        let kubeconfig = dir.path().join("kubeconfig");
        let server = FakeApiServer {
            addr,
            ca_pem: ca.cert_pem().to_owned(),
            shared: shared.clone(),
            _dir: dir,
            kubeconfig,
        };
        std::fs::write(&server.kubeconfig, server.kubeconfig_yaml())?;
        tokio::spawn(accept_loop(listener, acceptor, shared, shutdown_rx));
        Ok(server)
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The CA certificate (PEM) clients must trust.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The bearer token clients present.
    pub fn token(&self) -> &str {
        &self.shared.options.token
    }

    /// A kubeconfig for this server (context `fake`, namespace `default`).
    pub fn kubeconfig_yaml(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n    certificate-authority-data: {}\nusers:\n- name: admin\n  user:\n    token: {}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: admin\n    namespace: default\ncurrent-context: fake\n",
            self.url(),
            STANDARD.encode(self.ca_pem.as_bytes()),
            self.shared.options.token
        )
    }

    /// Path of a kubeconfig file for this server (lives as long as the
    /// server), for `KUBECONFIG=` and `kubectl --kubeconfig`.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// A kube client configuration for this server.
    pub async fn config(&self) -> Result<kube::Config, FakeError> {
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&self.kubeconfig_yaml())
            .map_err(|e| FakeError::Kube(e.to_string()))?;
        kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .map_err(|e| FakeError::Kube(e.to_string()))
    }

    /// A kube client talking to this server.
    pub async fn client(&self) -> Result<kube::Client, FakeError> {
        kube::Client::try_from(self.config().await?).map_err(|e| FakeError::Kube(e.to_string()))
    }

    /// Stores `object` directly (create, or replace when it exists),
    /// bypassing admission; CRDs register their types. Returns the stored
    /// object with its new resource version.
    pub fn apply(&self, object: Value) -> Result<Value, FakeError> {
        let api_version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .ok_or_else(|| FakeError::Invalid("no apiVersion".into()))?;
        let kind = object
            .get("kind")
            .and_then(Value::as_str)
            .ok_or_else(|| FakeError::Invalid("no kind".into()))?;
        let (group, _) = split_api_version(api_version);
        let mut store = lock(&self.shared.store);
        let rt = store
            .find_type(group, kind)
            .cloned()
            .ok_or_else(|| FakeError::Invalid(format!("unknown kind {api_version}/{kind}")))?;
        let namespace = if rt.namespaced {
            object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("default")
                .to_owned()
        } else {
            String::new()
        };
        let name = name_of(&object);
        if name.is_empty() {
            return Err(FakeError::Invalid("no metadata.name".into()));
        }
        let key = (rt.group.clone(), rt.plural.clone());
        let checked = match store.get(&key, &namespace, &name) {
            Some(old) => validation::validate_update(&rt, &name, &namespace, old, &object, false),
            None => validation::validate_create(&rt, &object),
        };
        if let Err(refusal) = checked {
            let (_, body) = refusal.status(&rt, &name);
            return Err(FakeError::Invalid(
                body.get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            ));
        }
        let mut object = object;
        if rt.namespaced
            && let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut)
        {
            meta.insert("namespace".into(), Value::String(namespace.clone()));
        }
        let stored = match store.get(&key, &namespace, &name).cloned() {
            Some(old) => {
                let merged = carry_metadata(&old, object);
                store.replace(key, &namespace, old, merged)
            }
            None => store.insert_new(key, &namespace, object),
        };
        after_write(&mut store, &rt, &stored, false);
        let rv = store.rv;
        drop(store);
        let _ = self.shared.rv_tx.send(rv);
        Ok(stored)
    }

    /// An object, by `apiVersion`, kind (or plural), namespace and name.
    pub fn get(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let (group, _) = split_api_version(api_version);
        let store = lock(&self.shared.store);
        let rt = store.find_type(group, kind)?;
        let ns = if rt.namespaced { namespace } else { "" };
        store
            .get(&(rt.group.clone(), rt.plural.clone()), ns, name)
            .cloned()
    }

    /// Every object of a kind (in `namespace`, or all when `None`).
    pub fn list(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Value> {
        let (group, _) = split_api_version(api_version);
        let store = lock(&self.shared.store);
        let Some(rt) = store.find_type(group, kind) else {
            return Vec::new();
        };
        store
            .objects
            .get(&(rt.group.clone(), rt.plural.clone()))
            .map(|objs| {
                objs.iter()
                    .filter(|((ns, _), _)| namespace.is_none_or(|want| want == ns))
                    .map(|(_, v)| v.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Deletes an object directly; returns whether it existed.
    pub fn delete(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> bool {
        let (group, _) = split_api_version(api_version);
        let mut store = lock(&self.shared.store);
        let Some(rt) = store.find_type(group, kind).cloned() else {
            return false;
        };
        let ns = if rt.namespaced { namespace } else { "" };
        let removed = store.remove((rt.group.clone(), rt.plural.clone()), ns, name);
        if let Some(obj) = &removed {
            after_delete(&mut store, &rt, obj);
        }
        let rv = store.rv;
        drop(store);
        let _ = self.shared.rv_tx.send(rv);
        removed.is_some()
    }

    /// The latest resource version handed out.
    pub fn resource_version(&self) -> u64 {
        lock(&self.shared.store).rv
    }

    /// Compacts the history and ends every open watch: clients resuming from
    /// a resource version they saw get `410 Gone` (an `ERROR` event with
    /// reason `Expired`, as kube-apiserver sends) and must relist.
    pub fn expire_watches(&self) {
        let rv = {
            let mut store = lock(&self.shared.store);
            store.compact();
            store.rv
        };
        let _ = self.shared.rv_tx.send(rv);
        self.drop_watches();
    }

    /// Ends every open watch stream (as a restarting API server or load
    /// balancer would); clients reconnect from their last resource version.
    pub fn drop_watches(&self) {
        self.shared.drop_tx.send_modify(|g| *g += 1);
    }

    /// Sends a bookmark now on every watch that allows them.
    pub fn send_bookmarks(&self) {
        self.shared.bookmark_tx.send_modify(|g| *g += 1);
    }

    /// Open watch streams.
    pub fn active_watches(&self) -> usize {
        self.shared.active_watches.load(Ordering::SeqCst)
    }

    /// Watch requests received so far.
    pub fn watches_started(&self) -> usize {
        self.shared.started_watches.load(Ordering::SeqCst)
    }

    /// Routes a Service webhooks reference (`clientConfig.service`) to an
    /// address; the TLS name checked is `NAME.NAMESPACE.svc`.
    pub fn route_service(&self, namespace: &str, name: &str, addr: SocketAddr) {
        lock(&self.shared.services).insert((namespace.into(), name.into()), addr);
    }

    /// Makes matching requests fail with a Status of `fault.code`.
    pub fn inject(&self, fault: Fault) {
        lock(&self.shared.faults).push(fault);
    }

    /// Removes every injected fault.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// The requests received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }
}

#[derive(Debug)]
struct FixedCert(Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for FixedCert {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let Ok((tcp, _)) = accepted else { continue };
        let acceptor = acceptor.clone();
        let shared = shared.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let service = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(shared, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service);
            tokio::select! {
                _ = conn => {}
                _ = shutdown.changed() => {}
            }
        });
    }
}

// ---------------------------------------------------------------- responses

fn json_response(code: u16, value: &Value) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut resp = Response::new(Full::new(Bytes::from(body)).boxed_unsync());
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

fn status_value(code: u16, reason: &str, message: &str, details: Option<Value>) -> Value {
    let mut v = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if let (Some(d), Some(obj)) = (details, v.as_object_mut()) {
        obj.insert("details".into(), d);
    }
    v
}

fn status(code: u16, reason: &str, message: impl AsRef<str>) -> Response<Body> {
    json_response(code, &status_value(code, reason, message.as_ref(), None))
}

fn details(rt: &ResourceType, name: &str) -> Value {
    json!({"name": name, "group": rt.group, "kind": rt.plural})
}

fn not_found(rt: &ResourceType, name: &str) -> Response<Body> {
    let msg = format!("{} \"{name}\" not found", rt.qualified());
    json_response(
        404,
        &status_value(404, "NotFound", &msg, Some(details(rt, name))),
    )
}

fn conflict(rt: &ResourceType, name: &str) -> Response<Body> {
    let msg = format!(
        "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
        rt.qualified()
    );
    json_response(
        409,
        &status_value(409, "Conflict", &msg, Some(details(rt, name))),
    )
}

fn with_warnings(mut resp: Response<Body>, warnings: &[String]) -> Response<Body> {
    for w in warnings {
        let text = format!("299 - \"{}\"", w.replace('\\', "\\\\").replace('"', "\\\""));
        if let Ok(v) = http::HeaderValue::from_str(&text) {
            resp.headers_mut().append(http::header::WARNING, v);
        }
    }
    resp
}

// ---------------------------------------------------------------- requests

fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                if let Some(v) = hex {
                    out.push(v);
                    i += 2;
                } else {
                    out.push(b);
                }
            }
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(q: &str) -> BTreeMap<String, String> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

/// A resolved resource path.
struct Target {
    rt: ResourceType,
    version: String,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
    /// The user and groups the request impersonates (`kubectl --as
    /// --as-group`), which admission requests carry instead of the
    /// server's own user (no authorization is checked).
    user: Option<(String, Vec<String>)>,
}

enum Route {
    Discovery(Value),
    Resource(Box<Target>),
    NotFound,
}

fn route(store: &Store, path: &str) -> Route {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest): (&str, &str, &[&str]) = match segs.as_slice() {
        ["api"] => {
            return Route::Discovery(json!({
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
            }));
        }
        ["apis"] => return Route::Discovery(group_list(store)),
        ["apis", group] => {
            let list = group_list(store);
            let found = list
                .get("groups")
                .and_then(Value::as_array)
                .and_then(|gs| {
                    gs.iter()
                        .find(|g| g.get("name").and_then(Value::as_str) == Some(*group))
                })
                .cloned();
            return match found {
                Some(mut g) => {
                    if let Some(o) = g.as_object_mut() {
                        o.insert("kind".into(), "APIGroup".into());
                        o.insert("apiVersion".into(), "v1".into());
                    }
                    Route::Discovery(g)
                }
                None => Route::NotFound,
            };
        }
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Route::NotFound,
    };
    let serves = |rt: &ResourceType| rt.group == group && rt.versions.iter().any(|v| v == version);
    if rest.is_empty() {
        let resources: Vec<Value> = store
            .types
            .values()
            .filter(|rt| serves(rt))
            .flat_map(|rt| {
                let mut out = vec![json!({
                    "name": rt.plural,
                    "singularName": rt.singular,
                    "namespaced": rt.namespaced,
                    "kind": rt.kind,
                    "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
                    "shortNames": rt.short_names,
                })];
                for sub in &rt.subresources {
                    out.push(json!({
                        "name": format!("{}/{sub}", rt.plural),
                        "singularName": "",
                        "namespaced": rt.namespaced,
                        "kind": rt.kind,
                        "verbs": ["get", "patch", "update"],
                    }));
                }
                out
            })
            .collect();
        if resources.is_empty() {
            return Route::NotFound;
        }
        let gv = if group.is_empty() {
            version.to_owned()
        } else {
            format!("{group}/{version}")
        };
        return Route::Discovery(json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": gv,
            "resources": resources,
        }));
    }
    let find = |plural: &str| {
        store
            .types
            .get(&(group.to_owned(), plural.to_owned()))
            .filter(|rt| serves(rt))
            .cloned()
    };
    let target = |rt: ResourceType, namespace: Option<&str>, more: &[&str]| {
        Route::Resource(Box::new(Target {
            rt,
            version: version.to_owned(),
            namespace: namespace.map(percent_decode),
            name: more.first().map(|n| percent_decode(n)),
            sub: more.get(1).map(|s| (*s).to_owned()),
            user: None,
        }))
    };
    if let ["namespaces", ns, plural, more @ ..] = rest
        && let Some(rt) = find(plural).filter(|rt| rt.namespaced)
        && more.len() <= 2
    {
        return target(rt, Some(ns), more);
    }
    if let [plural, more @ ..] = rest
        && let Some(rt) = find(plural)
        && more.len() <= 2
    {
        return target(rt, None, more);
    }
    Route::NotFound
}

fn group_list(store: &Store) -> Value {
    let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for rt in store.types.values().filter(|rt| !rt.group.is_empty()) {
        let entry = groups.entry(rt.group.as_str()).or_default();
        for v in &rt.versions {
            if !entry.contains(&v.as_str()) {
                entry.push(v);
            }
        }
    }
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(g, vs)| {
            let versions: Vec<Value> = vs
                .iter()
                .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                .collect();
            json!({
                "name": g,
                "versions": versions,
                "preferredVersion": versions.first().cloned().unwrap_or(Value::Null),
            })
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or_default().to_owned();
    let content_type = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let resp = dispatch(&shared, req, &method, &path, &query, &content_type).await;
    let mut requests = lock(&shared.requests);
    if requests.len() >= 10_000 {
        requests.remove(0);
    }
    requests.push(RecordedRequest {
        method: method.to_string(),
        path,
        query,
        content_type,
        status: resp.status().as_u16(),
    });
    resp
}

async fn dispatch(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    method: &Method,
    path: &str,
    query: &str,
    content_type: &str,
) -> Response<Body> {
    let authorized = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| t == shared.options.token);
    match path {
        "/healthz" | "/readyz" | "/livez" => {
            return Response::new(Full::new(Bytes::from_static(b"ok")).boxed_unsync());
        }
        _ => {}
    }
    if !authorized {
        return status(401, "Unauthorized", "Unauthorized");
    }
    {
        let mut faults = lock(&shared.faults);
        if let Some(f) = faults.iter_mut().find(|f| {
            f.times > 0
                && f.method.as_ref().is_none_or(|m| m == method)
                && format!("{path}?{query}").contains(&f.path_contains)
                && query.contains(&f.query_contains)
        }) {
            f.times -= 1;
            let code = f.code;
            return status(code, reason_for(code), format!("injected failure ({code})"));
        }
    }
    if path == "/version" {
        return json_response(
            200,
            &json!({"major": "1", "minor": "37", "gitVersion": "v1.37.0-tollgate-fake", "platform": "linux/amd64"}),
        );
    }
    if path.starts_with("/openapi/") {
        return status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
    }
    let routed = route(&lock(&shared.store), path);
    let target = match routed {
        Route::Discovery(doc) => return json_response(200, &doc),
        Route::NotFound => {
            return status(
                404,
                "NotFound",
                "the server could not find the requested resource",
            );
        }
        Route::Resource(t) => *t,
    };
    let mut target = target;
    target.user = impersonated(req.headers());
    if content_type.contains("protobuf") {
        return status(
            415,
            "UnsupportedMediaType",
            "this fake API server reads JSON and YAML bodies only, not Protobuf (kubectl create/apply -f FILE sends JSON)",
        );
    }
    let params = parse_query(query);
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return status(400, "BadRequest", format!("reading body: {e}")),
    };
    if target
        .sub
        .as_deref()
        .is_some_and(|s| !target.rt.subresources.iter().any(|x| x == s))
    {
        return status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
    }
    if target.rt.namespaced && target.namespace.is_none() && target.name.is_some() {
        return status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
    }
    match (method, &target.name) {
        (&Method::GET, None) => {
            if matches!(params.get("watch").map(String::as_str), Some("true" | "1")) {
                watch(shared, &target, &params)
            } else {
                list(shared, &target, &params)
            }
        }
        (&Method::GET, Some(name)) => {
            let store = lock(&shared.store);
            let ns = target.namespace.clone().unwrap_or_default();
            match store.get(&key(&target.rt), &ns, name) {
                Some(obj) => json_response(200, &versioned(obj, &target)),
                None => not_found(&target.rt, name),
            }
        }
        (&Method::POST, None) => match parse_body(&body, content_type) {
            Ok(obj) => create(shared, &target, obj, &params).await,
            Err(e) => status(400, "BadRequest", e),
        },
        (&Method::PUT, Some(name)) => match parse_body(&body, content_type) {
            Ok(obj) => update(shared, &target, name, Edit::Replace(obj), &params).await,
            Err(e) => status(400, "BadRequest", e),
        },
        (&Method::PATCH, Some(name)) => {
            let edit = match content_type.split(';').next().unwrap_or_default().trim() {
                "application/json-patch+json" => {
                    match serde_json::from_slice::<json_patch::Patch>(&body) {
                        Ok(p) => Edit::JsonPatch(p),
                        Err(e) => {
                            return status(400, "BadRequest", format!("invalid JSON patch: {e}"));
                        }
                    }
                }
                "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                    match serde_json::from_slice::<Value>(&body) {
                        Ok(p) => Edit::Merge(p),
                        Err(e) => return status(400, "BadRequest", format!("invalid patch: {e}")),
                    }
                }
                "application/apply-patch+yaml" | "application/apply-patch+json" => {
                    if !params.contains_key("fieldManager") {
                        return status(400, "BadRequest", "PATCH with apply requires fieldManager");
                    }
                    match parse_body(&body, "application/yaml") {
                        Ok(p) => Edit::Apply(p),
                        Err(e) => return status(400, "BadRequest", e),
                    }
                }
                other => {
                    return status(
                        415,
                        "UnsupportedMediaType",
                        format!(
                            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {other:?})"
                        ),
                    );
                }
            };
            update(shared, &target, name, edit, &params).await
        }
        (&Method::DELETE, Some(name)) => delete(shared, &target, name, &body),
        _ => status(
            405,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource ({method})"),
        ),
    }
}

fn key(rt: &ResourceType) -> (String, String) {
    (rt.group.clone(), rt.plural.clone())
}

/// The object with `apiVersion` of the version the client asked for.
fn versioned(obj: &Value, target: &Target) -> Value {
    let mut obj = obj.clone();
    if let Some(o) = obj.as_object_mut() {
        o.insert(
            "apiVersion".into(),
            Value::String(target.rt.api_version(&target.version)),
        );
        o.insert("kind".into(), Value::String(target.rt.kind.clone()));
    }
    obj
}

fn parse_body(body: &[u8], content_type: &str) -> Result<Value, String> {
    if content_type.contains("yaml") {
        let text = std::str::from_utf8(body).map_err(|e| format!("body is not UTF-8: {e}"))?;
        yaml_serde::from_str(text).map_err(|e| format!("invalid YAML: {e}"))
    } else {
        serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))
    }
}

struct Filter {
    namespace: Option<String>,
    labels: Selector,
    fields: Vec<(String, String, bool)>,
}

impl Filter {
    fn from(target: &Target, params: &BTreeMap<String, String>) -> Result<Filter, String> {
        let labels = Selector::parse(
            params
                .get("labelSelector")
                .map(String::as_str)
                .unwrap_or(""),
        )?;
        let mut fields = Vec::new();
        for part in params
            .get("fieldSelector")
            .map(String::as_str)
            .unwrap_or("")
            .split(',')
            .filter(|p| !p.is_empty())
        {
            let (k, v, eq) = if let Some((k, v)) = part.split_once("!=") {
                (k, v, false)
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (k, v, true)
            } else {
                return Err(format!("invalid field selector {part:?}"));
            };
            if k != "metadata.name" && k != "metadata.namespace" {
                return Err(format!("field label not supported: {k}"));
            }
            fields.push((k.to_owned(), v.to_owned(), eq));
        }
        Ok(Filter {
            namespace: target.namespace.clone(),
            labels,
            fields,
        })
    }

    fn matches(&self, namespace: &str, obj: &Value) -> bool {
        if self.namespace.as_deref().is_some_and(|ns| ns != namespace) {
            return false;
        }
        let fields_ok = self.fields.iter().all(|(k, v, eq)| {
            let actual = if k == "metadata.name" {
                name_of(obj)
            } else {
                namespace.to_owned()
            };
            (actual == *v) == *eq
        });
        fields_ok && self.labels.matches(&labels_of(obj))
    }
}

fn list(
    shared: &Arc<Shared>,
    target: &Target,
    params: &BTreeMap<String, String>,
) -> Response<Body> {
    let filter = match Filter::from(target, params) {
        Ok(f) => f,
        Err(e) => return status(400, "BadRequest", e),
    };
    let store = lock(&shared.store);
    let items: Vec<Value> = store
        .objects
        .get(&key(&target.rt))
        .map(|objs| {
            objs.iter()
                .filter(|((ns, _), obj)| filter.matches(ns, obj))
                .map(|(_, obj)| versioned(obj, target))
                .collect()
        })
        .unwrap_or_default();
    json_response(
        200,
        &json!({
            "kind": format!("{}List", target.rt.kind),
            "apiVersion": target.rt.api_version(&target.version),
            "metadata": {"resourceVersion": store.rv.to_string()},
            "items": items,
        }),
    )
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

fn bookmark(target: &Target, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end && let Some(m) = meta.as_object_mut() {
        m.insert(
            "annotations".into(),
            json!({"k8s.io/initial-events-end": "true"}),
        );
    }
    event_line(
        "BOOKMARK",
        &json!({"kind": target.rt.kind, "apiVersion": target.rt.api_version(&target.version), "metadata": meta}),
    )
}

fn watch(
    shared: &Arc<Shared>,
    target: &Target,
    params: &BTreeMap<String, String>,
) -> Response<Body> {
    let filter = match Filter::from(target, params) {
        Ok(f) => f,
        Err(e) => return status(400, "BadRequest", e),
    };
    let bookmarks = params
        .get("allowWatchBookmarks")
        .is_some_and(|v| v == "true" || v == "1");
    let initial_events = params
        .get("sendInitialEvents")
        .is_some_and(|v| v == "true" || v == "1");
    let timeout = params
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs);
    let requested_rv = params.get("resourceVersion").cloned().unwrap_or_default();
    let start: Option<u64> = if requested_rv.is_empty() || requested_rv == "0" {
        None
    } else {
        match requested_rv.parse() {
            Ok(v) => Some(v),
            Err(_) => {
                return status(
                    400,
                    "BadRequest",
                    format!("invalid resourceVersion {requested_rv:?}"),
                );
            }
        }
    };
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let target = Target {
        rt: target.rt.clone(),
        version: target.version.clone(),
        namespace: target.namespace.clone(),
        name: None,
        sub: None,
        user: None,
    };
    shared.started_watches.fetch_add(1, Ordering::SeqCst);
    let shared = shared.clone();
    tokio::spawn(async move {
        shared.active_watches.fetch_add(1, Ordering::SeqCst);
        run_watch(
            &shared,
            &target,
            filter,
            start,
            bookmarks,
            initial_events,
            timeout,
            tx,
        )
        .await;
        shared.active_watches.fetch_sub(1, Ordering::SeqCst);
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    let mut resp = Response::new(BodyExt::boxed_unsync(StreamBody::new(stream.boxed())));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

#[allow(clippy::too_many_arguments)]
async fn run_watch(
    shared: &Arc<Shared>,
    target: &Target,
    filter: Filter,
    start: Option<u64>,
    bookmarks: bool,
    initial_events: bool,
    timeout: Option<Duration>,
    tx: mpsc::Sender<Bytes>,
) {
    let mut drop_rx = shared.drop_tx.subscribe();
    let mut rv_rx = shared.rv_tx.subscribe();
    let mut bookmark_rx = shared.bookmark_tx.subscribe();
    let mut shutdown_rx = shared.shutdown_tx.subscribe();
    let deadline = tokio::time::sleep(timeout.unwrap_or(Duration::from_secs(3600)));
    tokio::pin!(deadline);
    let mut ticker = tokio::time::interval(shared.options.bookmark_interval);
    ticker.reset();
    let rkey = key(&target.rt);
    // Where the stream starts: an explicit version, or now after synthetic
    // ADDED events for the current state.
    let mut last = match start {
        Some(rv) => {
            let floor = lock(&shared.store).floor;
            if rv < floor {
                let msg = format!("too old resource version: {rv} ({floor})");
                let st = status_value(410, "Expired", &msg, None);
                let _ = tx.send(event_line("ERROR", &st)).await;
                return;
            }
            rv
        }
        None => {
            let (lines, rv) = {
                let store = lock(&shared.store);
                let lines: Vec<Bytes> = store
                    .objects
                    .get(&rkey)
                    .map(|objs| {
                        objs.iter()
                            .filter(|((ns, _), obj)| filter.matches(ns, obj))
                            .map(|(_, obj)| event_line("ADDED", &versioned(obj, target)))
                            .collect()
                    })
                    .unwrap_or_default();
                (lines, store.rv)
            };
            for line in lines {
                if tx.send(line).await.is_err() {
                    return;
                }
            }
            if initial_events && tx.send(bookmark(target, rv, true)).await.is_err() {
                return;
            }
            rv
        }
    };
    loop {
        rv_rx.borrow_and_update();
        let (lines, scanned, gone) = {
            let store = lock(&shared.store);
            if last < store.floor {
                (Vec::new(), last, true)
            } else {
                let lines: Vec<Bytes> = store
                    .history
                    .iter()
                    .filter(|c| c.rv > last && c.resource == rkey)
                    .filter_map(|c| {
                        let now = filter.matches(&c.namespace, &c.object);
                        let before = c
                            .old
                            .as_ref()
                            .is_some_and(|o| filter.matches(&c.namespace, o));
                        let kind = match (c.kind, before, now) {
                            (EventType::Modified, true, false) => "DELETED",
                            (EventType::Modified, false, true) => "ADDED",
                            (EventType::Modified, false, false) => return None,
                            (_, _, true) => c.kind.as_str(),
                            _ => return None,
                        };
                        Some(event_line(kind, &versioned(&c.object, target)))
                    })
                    .collect();
                (lines, store.rv, false)
            }
        };
        if gone {
            let st = status_value(
                410,
                "Expired",
                &format!("too old resource version: {last}"),
                None,
            );
            let _ = tx.send(event_line("ERROR", &st)).await;
            return;
        }
        for line in lines {
            if tx.send(line).await.is_err() {
                return;
            }
        }
        last = scanned;
        tokio::select! {
            r = rv_rx.changed() => if r.is_err() { return },
            _ = ticker.tick() => {
                if bookmarks && tx.send(bookmark(target, last, false)).await.is_err() {
                    return;
                }
            }
            r = bookmark_rx.changed() => {
                if r.is_err() { return }
                if bookmarks && tx.send(bookmark(target, last, false)).await.is_err() {
                    return;
                }
            }
            _ = drop_rx.changed() => return,
            _ = shutdown_rx.changed() => return,
            _ = &mut deadline => return,
            _ = tx.closed() => return,
        }
    }
}

/// Keeps server-owned metadata of `old` in a replacement object.
fn carry_metadata(old: &Value, mut new: Value) -> Value {
    let spec_changed = strip_meta(old) != strip_meta(&new);
    if let (Some(old_meta), Some(meta)) = (
        old.get("metadata").and_then(Value::as_object),
        new.get_mut("metadata").and_then(Value::as_object_mut),
    ) {
        for k in ["uid", "creationTimestamp", "generation"] {
            if let Some(v) = old_meta.get(k) {
                meta.insert(k.into(), v.clone());
            }
        }
        if spec_changed {
            let generation = old_meta
                .get("generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            meta.insert("generation".into(), json!(generation + 1));
        }
    }
    new
}

fn strip_meta(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("metadata");
        o.remove("status");
    }
    v
}

/// Side effects of a stored write: CRDs register their types (and report
/// themselves Established), namespaces keep their name label.
fn after_write(store: &mut Store, rt: &ResourceType, obj: &Value, _created: bool) {
    if rt.group == "apiextensions.k8s.io" && rt.plural == "customresourcedefinitions" {
        store.register_crd(obj);
        let established = obj
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|c| {
                c.iter()
                    .any(|c| c.get("type").and_then(Value::as_str) == Some("Established"))
            });
        if !established {
            let mut with_status = obj.clone();
            if let Some(o) = with_status.as_object_mut() {
                let names = obj.pointer("/spec/names").cloned().unwrap_or(Value::Null);
                o.insert(
                    "status".into(),
                    json!({
                        "acceptedNames": names,
                        "conditions": [
                            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found"},
                            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"},
                        ],
                        "storedVersions": obj.pointer("/spec/versions/0/name").cloned().map(|v| vec![v]).unwrap_or_default(),
                    }),
                );
            }
            store.replace(key(rt), "", obj.clone(), with_status);
        }
    }
}

fn after_delete(store: &mut Store, rt: &ResourceType, obj: &Value) {
    if rt.group == "apiextensions.k8s.io" && rt.plural == "customresourcedefinitions" {
        store.unregister_crd(obj);
    }
    if rt.group.is_empty() && rt.plural == "namespaces" {
        let ns = name_of(obj);
        let keys: Vec<((String, String), String)> = store
            .objects
            .iter()
            .flat_map(|(k, objs)| {
                objs.keys()
                    .filter(|(o_ns, _)| *o_ns == ns)
                    .map(|(_, name)| (k.clone(), name.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        for (k, name) in keys {
            store.remove(k, &ns, &name);
        }
    }
}

/// What a write request does to the stored object.
enum Edit {
    Replace(Value),
    Merge(Value),
    JsonPatch(json_patch::Patch),
    Apply(Value),
}

fn is_dry_run(params: &BTreeMap<String, String>) -> bool {
    params.get("dryRun").is_some_and(|v| v == "All")
}

/// Everything admission needs, read under the store lock.
struct AdmissionInputs {
    mutating: Vec<Value>,
    validating: Vec<Value>,
    namespace_labels: BTreeMap<String, String>,
    services: BTreeMap<(String, String), SocketAddr>,
}

fn admission_inputs(shared: &Arc<Shared>, target: &Target, namespace: &str) -> AdmissionInputs {
    let store = lock(&shared.store);
    let configs = |plural: &str| {
        store
            .objects
            .get(&("admissionregistration.k8s.io".to_owned(), plural.to_owned()))
            .map(|o| o.values().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let exempt = target.rt.group == "admissionregistration.k8s.io";
    let (m, v) = if exempt {
        (Vec::new(), Vec::new())
    } else {
        (
            configs("mutatingwebhookconfigurations"),
            configs("validatingwebhookconfigurations"),
        )
    };
    let ns_labels = store
        .get(&(String::new(), "namespaces".into()), "", namespace)
        .map(labels_of)
        .unwrap_or_default();
    let services = lock(&shared.services).clone();
    AdmissionInputs {
        mutating: m,
        validating: v,
        namespace_labels: ns_labels,
        services,
    }
}

/// The identity of `Impersonate-User` and `Impersonate-Group` headers,
/// with `system:authenticated` as the real API server adds it.
fn impersonated(headers: &http::HeaderMap) -> Option<(String, Vec<String>)> {
    let user = headers.get("impersonate-user")?.to_str().ok()?.to_owned();
    let mut groups: Vec<String> = headers
        .get_all("impersonate-group")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    groups.push("system:authenticated".into());
    Some((user, groups))
}

async fn run_admission(
    shared: &Arc<Shared>,
    target: &Target,
    operation: &'static str,
    namespace: &str,
    object: Value,
    old: Option<Value>,
    dry_run: bool,
) -> Outcome {
    let AdmissionInputs {
        mutating,
        validating,
        namespace_labels,
        services,
    } = admission_inputs(shared, target, namespace);
    if mutating.is_empty() && validating.is_empty() {
        return Outcome::Allowed {
            object,
            warnings: Vec::new(),
        };
    }
    let attrs = Attributes {
        resource: target.rt.clone(),
        version: target.version.clone(),
        operation,
        namespace: namespace.to_owned(),
        namespace_labels,
        name: name_of(&object),
        old,
        dry_run,
        user: target
            .user
            .as_ref()
            .map_or_else(|| shared.options.user.clone(), |id| id.0.clone()),
        groups: target.user.as_ref().map_or_else(
            || vec!["system:masters".into(), "system:authenticated".into()],
            |id| id.1.clone(),
        ),
    };
    admission::admit(&attrs, object, &mutating, &validating, &services).await
}

async fn create(
    shared: &Arc<Shared>,
    target: &Target,
    mut obj: Value,
    params: &BTreeMap<String, String>,
) -> Response<Body> {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return status(400, "BadRequest", "metadata is required");
    };
    let namespace = if target.rt.namespaced {
        let path_ns = target.namespace.clone().unwrap_or_default();
        match meta.get("namespace").and_then(Value::as_str) {
            Some(ns) if !ns.is_empty() && ns != path_ns => {
                return status(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on the request",
                );
            }
            _ => {}
        }
        meta.insert("namespace".into(), Value::String(path_ns.clone()));
        path_ns
    } else {
        meta.remove("namespace");
        String::new()
    };
    let name = match meta
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        Some(n) => n.to_owned(),
        None => match meta.get("generateName").and_then(Value::as_str) {
            Some(prefix) => {
                let suffix: String = uuid::Uuid::now_v7()
                    .simple()
                    .to_string()
                    .chars()
                    .rev()
                    .take(5)
                    .collect();
                let n = validation::generated_name(prefix, &suffix);
                meta.insert("name".into(), Value::String(n.clone()));
                n
            }
            None => {
                return json_response(
                    422,
                    &status_value(
                        422,
                        "Invalid",
                        &format!(
                            "{} \"\" is invalid: metadata.name: Required value: name or generateName is required",
                            target.rt.kind
                        ),
                        None,
                    ),
                );
            }
        },
    };
    meta.remove("resourceVersion");
    if let Some(o) = obj.as_object_mut() {
        o.insert(
            "apiVersion".into(),
            Value::String(target.rt.api_version(&target.version)),
        );
        o.insert("kind".into(), Value::String(target.rt.kind.clone()));
    }
    {
        let store = lock(&shared.store);
        if target.rt.namespaced
            && store
                .get(&(String::new(), "namespaces".into()), "", &namespace)
                .is_none()
        {
            let msg = format!("namespaces \"{namespace}\" not found");
            return json_response(
                404,
                &status_value(
                    404,
                    "NotFound",
                    &msg,
                    Some(json!({"name": namespace, "kind": "namespaces"})),
                ),
            );
        }
        if store.get(&key(&target.rt), &namespace, &name).is_some() {
            return already_exists(&target.rt, &name);
        }
    }
    if let Err(refusal) = validation::validate_create(&target.rt, &obj) {
        return refuse(&refusal, &target.rt, &name, &[]);
    }
    let dry_run = is_dry_run(params);
    let (obj, warnings) =
        match run_admission(shared, target, "CREATE", &namespace, obj, None, dry_run).await {
            // What mutating webhooks changed is validated again, as
            // kube-apiserver validates the object it is about to store.
            Outcome::Allowed { object, warnings } => {
                if let Err(refusal) = validation::validate_create(&target.rt, &object) {
                    return refuse(&refusal, &target.rt, &name, &warnings);
                }
                (object, warnings)
            }
            Outcome::Denied {
                code,
                reason,
                message,
                warnings,
            } => {
                return with_warnings(
                    json_response(code, &status_value(code, &reason, &message, None)),
                    &warnings,
                );
            }
        };
    if dry_run {
        return with_warnings(json_response(201, &obj), &warnings);
    }
    let stored = {
        let mut store = lock(&shared.store);
        if store.get(&key(&target.rt), &namespace, &name).is_some() {
            return already_exists(&target.rt, &name);
        }
        let stored = store.insert_new(key(&target.rt), &namespace, obj);
        after_write(&mut store, &target.rt, &stored, true);
        let rv = store.rv;
        let latest = store
            .get(&key(&target.rt), &namespace, &name)
            .cloned()
            .unwrap_or(stored);
        drop(store);
        let _ = shared.rv_tx.send(rv);
        latest
    };
    with_warnings(json_response(201, &versioned(&stored, target)), &warnings)
}

/// The Status answer for a write kube-apiserver would refuse.
fn refuse(refusal: &Refusal, rt: &ResourceType, name: &str, warnings: &[String]) -> Response<Body> {
    let (code, body) = refusal.status(rt, name);
    with_warnings(json_response(code, &body), warnings)
}

fn already_exists(rt: &ResourceType, name: &str) -> Response<Body> {
    let msg = format!("{} \"{name}\" already exists", rt.qualified());
    json_response(
        409,
        &status_value(409, "AlreadyExists", &msg, Some(details(rt, name))),
    )
}

async fn update(
    shared: &Arc<Shared>,
    target: &Target,
    name: &str,
    edit: Edit,
    params: &BTreeMap<String, String>,
) -> Response<Body> {
    let namespace = target.namespace.clone().unwrap_or_default();
    let old = lock(&shared.store)
        .get(&key(&target.rt), &namespace, name)
        .cloned();
    let Some(old) = old else {
        if let Edit::Apply(obj) = edit {
            let mut obj = obj;
            if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.insert("name".into(), Value::String(name.to_owned()));
            }
            return create(shared, target, obj, params).await;
        }
        return not_found(&target.rt, name);
    };
    let status_only = target.sub.as_deref() == Some("status");
    let new = match edit {
        Edit::Replace(mut obj) => {
            if let Some(rv) = rv_of(&obj)
                && Some(rv) != rv_of(&old)
            {
                return conflict(&target.rt, name);
            }
            if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.insert(
                    "resourceVersion".into(),
                    old.pointer("/metadata/resourceVersion")
                        .cloned()
                        .unwrap_or(Value::Null),
                );
            }
            obj
        }
        Edit::Merge(patch) | Edit::Apply(patch) => {
            if let Some(rv) = rv_of(&patch)
                && Some(rv) != rv_of(&old)
            {
                return conflict(&target.rt, name);
            }
            let mut obj = old.clone();
            json_patch::merge(&mut obj, &patch);
            obj
        }
        Edit::JsonPatch(patch) => {
            let mut obj = old.clone();
            if let Err(e) = json_patch::patch(&mut obj, &patch) {
                return json_response(
                    422,
                    &status_value(
                        422,
                        "Invalid",
                        &format!("the JSON patch could not be applied: {e}"),
                        None,
                    ),
                );
            }
            if rv_of(&obj) != rv_of(&old) {
                return conflict(&target.rt, name);
            }
            obj
        }
    };
    let mut new = if status_only {
        let mut obj = old.clone();
        if let Some(o) = obj.as_object_mut() {
            o.insert(
                "status".into(),
                new.get("status").cloned().unwrap_or(Value::Null),
            );
        }
        obj
    } else {
        let mut new = new;
        if let Some(o) = new.as_object_mut() {
            if let Some(s) = old.get("status") {
                o.insert("status".into(), s.clone());
            } else {
                o.remove("status");
            }
        }
        new
    };
    if let Err(refusal) =
        validation::validate_update(&target.rt, name, &namespace, &old, &new, status_only)
    {
        return refuse(&refusal, &target.rt, name, &[]);
    }
    if let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("name".into(), Value::String(name.to_owned()));
        if target.rt.namespaced {
            meta.insert("namespace".into(), Value::String(namespace.clone()));
        }
    }
    if let Some(o) = new.as_object_mut() {
        o.insert(
            "apiVersion".into(),
            Value::String(target.rt.api_version(&target.version)),
        );
        o.insert("kind".into(), Value::String(target.rt.kind.clone()));
    }
    let new = carry_metadata(&old, new);
    let dry_run = is_dry_run(params);
    let (new, warnings) = if status_only {
        (new, Vec::new())
    } else {
        match run_admission(
            shared,
            target,
            "UPDATE",
            &namespace,
            new,
            Some(old.clone()),
            dry_run,
        )
        .await
        {
            Outcome::Allowed { object, warnings } => {
                if let Err(refusal) =
                    validation::validate_update(&target.rt, name, &namespace, &old, &object, false)
                {
                    return refuse(&refusal, &target.rt, name, &warnings);
                }
                (object, warnings)
            }
            Outcome::Denied {
                code,
                reason,
                message,
                warnings,
            } => {
                return with_warnings(
                    json_response(code, &status_value(code, &reason, &message, None)),
                    &warnings,
                );
            }
        }
    };
    if dry_run {
        return with_warnings(json_response(200, &new), &warnings);
    }
    let stored = {
        let mut store = lock(&shared.store);
        let current = store.get(&key(&target.rt), &namespace, name).cloned();
        match current {
            Some(current) if rv_of(&current) == rv_of(&old) => {}
            Some(_) => return conflict(&target.rt, name),
            None => return not_found(&target.rt, name),
        }
        let mut new = new;
        if target.rt.group.is_empty()
            && target.rt.plural == "namespaces"
            && let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut)
        {
            let labels = meta.entry("labels").or_insert_with(|| json!({}));
            if let Some(labels) = labels.as_object_mut() {
                labels.insert(
                    "kubernetes.io/metadata.name".into(),
                    Value::String(name.to_owned()),
                );
            }
        }
        let stored = store.replace(key(&target.rt), &namespace, old, new);
        after_write(&mut store, &target.rt, &stored, false);
        let rv = store.rv;
        drop(store);
        let _ = shared.rv_tx.send(rv);
        stored
    };
    with_warnings(json_response(200, &versioned(&stored, target)), &warnings)
}

fn delete(shared: &Arc<Shared>, target: &Target, name: &str, body: &[u8]) -> Response<Body> {
    let namespace = target.namespace.clone().unwrap_or_default();
    let precondition = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        v.pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    let mut store = lock(&shared.store);
    let Some(current) = store.get(&key(&target.rt), &namespace, name).cloned() else {
        return not_found(&target.rt, name);
    };
    if precondition.is_some() && precondition != rv_of(&current) {
        return conflict(&target.rt, name);
    }
    let removed = store.remove(key(&target.rt), &namespace, name);
    if let Some(obj) = &removed {
        after_delete(&mut store, &target.rt, obj);
    }
    let rv = store.rv;
    drop(store);
    let _ = shared.rv_tx.send(rv);
    match removed {
        Some(obj) => json_response(200, &versioned(&obj, target)),
        None => not_found(&target.rt, name),
    }
}
