//! A stub Kubernetes API server over TLS, for `kubectl` through the sidecar.
//! No kube-apiserver can run here, so this serves the documents `kubectl`
//! reads in the real REST shapes: legacy discovery (`/api`, `/apis`,
//! `/api/v1`), `PodList` and `Pod` in one namespace, `Status` otherwise.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};

/// A running stub API server.
pub struct KubeStub {
    /// Its address.
    pub addr: SocketAddr,
    /// `METHOD path?query` of every request that reached it.
    pub seen: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for KubeStub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl KubeStub {
    /// Starts it with `tls`.
    pub async fn start(tls: Arc<rustls::ServerConfig>) -> KubeStub {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let tls = tls.clone();
                let log = log.clone();
                tokio::spawn(async move {
                    let Ok(stream) = tokio_rustls::TlsAcceptor::from(tls).accept(stream).await
                    else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req| {
                        let log = log.clone();
                        async move { Ok::<_, Infallible>(handle(&log, addr, req)) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        KubeStub { addr, seen, task }
    }

    /// The requests received.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

fn reply(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    resp
}

fn pod(ns: &str, name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "uid": "7d3c8a3e-0000-4000-8000-000000000001", "resourceVersion": "42"},
        "spec": {"containers": [{"name": "agent", "image": "example/agent:1"}]},
        "status": {"phase": "Running"},
    })
}

fn handle(
    log: &Mutex<Vec<String>>,
    addr: SocketAddr,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    log.lock().unwrap().push(format!(
        "{} {}",
        req.method(),
        req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("")
    ));
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (req.method().as_str(), parts.as_slice()) {
        ("GET", ["api"]) => reply(
            StatusCode::OK,
            json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": addr.to_string()}]}),
        ),
        ("GET", ["apis"]) => reply(
            StatusCode::OK,
            json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []}),
        ),
        ("GET", ["version"]) => reply(
            StatusCode::OK,
            json!({"major": "1", "minor": "37", "gitVersion": "v1.37.0-stub", "platform": "linux/amd64"}),
        ),
        ("GET", ["api", "v1"]) => reply(
            StatusCode::OK,
            json!({
                "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1",
                "resources": [
                    {"name": "pods", "singularName": "pod", "namespaced": true, "kind": "Pod", "shortNames": ["po"],
                     "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]},
                    {"name": "pods/exec", "singularName": "", "namespaced": true, "kind": "PodExecOptions", "verbs": ["create", "get"]},
                    {"name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"]},
                ],
            }),
        ),
        ("GET", ["api", "v1", "namespaces", ns, "pods"]) => reply(
            StatusCode::OK,
            json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "42"}, "items": [pod(ns, "web-0")]}),
        ),
        ("GET", ["api", "v1", "namespaces", ns, "pods", name]) => {
            reply(StatusCode::OK, pod(ns, name))
        }
        ("DELETE", ["api", "v1", "namespaces", ns, "pods", name]) => {
            reply(StatusCode::OK, pod(ns, name))
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": format!("{path} not found"), "reason": "NotFound", "code": 404}),
        ),
    }
}
