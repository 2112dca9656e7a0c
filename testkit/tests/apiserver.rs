//! The fake API server against real clients: kube-rs and `kubectl`.
//! (There is no kube-apiserver here; these tests pin the protocol behaviour
//! the fake promises.)

// Test helpers may panic: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::convert::Infallible;
use std::sync::Arc;

use base64::Engine;
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use serde_json::{Value, json};
use tollgate_testkit::FakeApiServer;

#[tokio::test]
async fn crud_conflicts_and_status_bodies() {
    let server = FakeApiServer::start().await.unwrap();
    let client = server.client().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("a".into());
    cm.data = Some([("k".to_string(), "v".to_string())].into());
    let created = cms.create(&PostParams::default(), &cm).await.unwrap();
    assert!(created.metadata.uid.is_some());
    let rv1 = created.metadata.resource_version.clone().unwrap();

    // AlreadyExists.
    let err = cms.create(&PostParams::default(), &cm).await.unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("{err}")
    };
    assert_eq!(
        (status.code, status.reason.as_str()),
        (409, "AlreadyExists")
    );

    // Update with the current version succeeds; the stale one conflicts.
    let mut next = created.clone();
    next.data = Some([("k".to_string(), "w".to_string())].into());
    let updated = cms
        .replace("a", &PostParams::default(), &next)
        .await
        .unwrap();
    assert_ne!(updated.metadata.resource_version.unwrap(), rv1);
    let err = cms
        .replace("a", &PostParams::default(), &next)
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("{err}")
    };
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));

    // Merge, JSON and apply patches.
    cms.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"m": "1"}})),
    )
    .await
    .unwrap();
    let p =
        serde_json::from_value(json!([{"op": "add", "path": "/data/j", "value": "2"}])).unwrap();
    cms.patch("a", &PatchParams::default(), &Patch::<()>::Json(p))
        .await
        .unwrap();
    cms.patch(
        "b",
        &PatchParams::apply("test"),
        &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}, "data": {"x": "y"}})),
    )
    .await
    .unwrap();
    let a = cms.get("a").await.unwrap();
    let data = a.data.unwrap();
    assert_eq!(
        (data["k"].as_str(), data["m"].as_str(), data["j"].as_str()),
        ("w", "1", "2")
    );
    assert_eq!(cms.get("b").await.unwrap().data.unwrap()["x"], "y");

    // NotFound, label selectors, delete.
    let err = cms.get("missing").await.unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("{err}")
    };
    assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
    cms.patch(
        "b",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"team": "x"}}})),
    )
    .await
    .unwrap();
    let listed = cms
        .list(&ListParams::default().labels("team=x"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    let listed = cms
        .list(&ListParams::default().labels("team notin (x)"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    cms.delete("a", &DeleteParams::default()).await.unwrap();
    assert!(cms.get_opt("a").await.unwrap().is_none());

    // A namespaced object in a namespace that does not exist.
    let other: Api<ConfigMap> = Api::namespaced(client, "nowhere");
    let err = other.create(&PostParams::default(), &cm).await.unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("{err}")
    };
    assert_eq!(status.code, 404);
}

#[tokio::test]
async fn watch_resumes_expires_and_bookmarks() {
    let server = FakeApiServer::start().await.unwrap();
    let client = server.client().await.unwrap();
    let leases: Api<Lease> = Api::namespaced(client, "default");
    let list = leases.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();
    let mut lease = Lease::default();
    lease.metadata.name = Some("l".into());
    leases.create(&PostParams::default(), &lease).await.unwrap();

    let mut stream = leases
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    match stream.next().await.unwrap().unwrap() {
        WatchEvent::Added(l) => assert_eq!(l.metadata.name.as_deref(), Some("l")),
        other => panic!("{other:?}"),
    }
    server.send_bookmarks();
    assert!(matches!(
        stream.next().await.unwrap().unwrap(),
        WatchEvent::Bookmark(_)
    ));
    server.drop_watches();
    assert!(
        stream.next().await.is_none(),
        "the stream ends when dropped"
    );

    server.expire_watches();
    let mut stream = leases
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    match stream.next().await.unwrap().unwrap() {
        WatchEvent::Error(e) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn crds_show_up_in_discovery() {
    let server = FakeApiServer::start().await.unwrap();
    server
        .apply(json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.dev"},
            "spec": {"group": "example.dev", "scope": "Cluster",
                     "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                     "versions": [{"name": "v1", "served": true, "storage": true}]}
        }))
        .unwrap();
    let client = server.client().await.unwrap();
    let discovery = kube::Discovery::new(client.clone()).run().await.unwrap();
    let (ar, _) = discovery
        .groups()
        .flat_map(|g| g.recommended_resources())
        .find(|(ar, _)| ar.kind == "Widget")
        .expect("Widget discovered");
    let api: Api<kube::api::DynamicObject> = Api::all_with(client, &ar);
    let obj: kube::api::DynamicObject =
        serde_json::from_value(json!({"apiVersion": "example.dev/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"a": 1}}))
            .unwrap();
    api.create(&PostParams::default(), &obj).await.unwrap();
    assert_eq!(
        server.get("example.dev/v1", "Widget", "", "w").unwrap()["spec"]["a"],
        1
    );
}

#[tokio::test]
async fn kubectl_apply_get_delete() {
    if std::process::Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_err()
    {
        panic!("kubectl is not installed: run `make test-deps`");
    }
    let server = FakeApiServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("ns.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-a\n  labels:\n    pss.tollgate.dev/enforce: restricted\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  namespace: team-a\ndata:\n  a: b\n",
    )
    .unwrap();
    let kubectl = |args: &[&str]| {
        let kubeconfig = server.kubeconfig_path().to_owned();
        let cache = dir.path().join("cache");
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        async move {
            tokio::task::spawn_blocking(move || {
                std::process::Command::new("kubectl")
                    .arg("--kubeconfig")
                    .arg(&kubeconfig)
                    .arg("--cache-dir")
                    .arg(&cache)
                    .args(&args)
                    .output()
                    .unwrap()
            })
            .await
            .unwrap()
        }
    };
    let path = manifest.to_str().unwrap();
    let out = kubectl(&["apply", "--validate=false", "-f", path]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("namespace/team-a created"), "{stdout}");
    assert!(stdout.contains("configmap/cfg created"), "{stdout}");
    // Re-apply: client-side apply GETs and PATCHes.
    std::fs::write(
        &manifest,
        std::fs::read_to_string(&manifest)
            .unwrap()
            .replace("a: b", "a: c"),
    )
    .unwrap();
    let out = kubectl(&["apply", "--validate=false", "-f", path]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        server.get("v1", "ConfigMap", "team-a", "cfg").unwrap()["data"]["a"],
        "c"
    );
    let out = kubectl(&["get", "namespace", "team-a", "-o", "json"]).await;
    let ns: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "team-a"
    );
    let out = kubectl(&["apply", "--server-side", "--validate=false", "-f", path]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = kubectl(&["delete", "configmap", "cfg", "-n", "team-a"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(server.get("v1", "ConfigMap", "team-a", "cfg").is_none());
}

/// A minimal validating webhook: denies ConfigMaps with data.deny, adds a
/// label by JSON patch, warns.
async fn tiny_webhook() -> (std::net::SocketAddr, String) {
    let ca =
        tollgate_certs::Authority::generate("test webhook CA", time::Duration::days(1)).unwrap();
    let pair = ca
        .issue_server(&["127.0.0.1".into()], time::Duration::days(1))
        .unwrap();
    #[derive(Debug)]
    struct Fixed(Arc<rustls::sign::CertifiedKey>);
    impl rustls::server::ResolvesServerCert for Fixed {
        fn resolve(
            &self,
            _: rustls::server::ClientHello<'_>,
        ) -> Option<Arc<rustls::sign::CertifiedKey>> {
            Some(self.0.clone())
        }
    }
    let key =
        tollgate_certs::certified_key(pair.cert_pem.as_bytes(), pair.key_pem.as_bytes()).unwrap();
    let tls =
        tollgate_certs::server_config(Arc::new(Fixed(Arc::new(key))), &[b"http/1.1"]).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let tls = acceptor.accept(tcp).await.unwrap();
                let svc = hyper::service::service_fn(
                    |req: hyper::Request<hyper::body::Incoming>| async move {
                        use http_body_util::BodyExt;
                        let path = req.uri().path().to_owned();
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let review: Value = serde_json::from_slice(&body).unwrap();
                        let request = &review["request"];
                        let uid = request["uid"].clone();
                        let response = if path == "/mutate" {
                            let patch = json!([{"op": "add", "path": "/metadata/labels", "value": {"mutated": "yes"}}]);
                            json!({"uid": uid, "allowed": true, "patchType": "JSONPatch",
                               "patch": base64::engine::general_purpose::STANDARD.encode(patch.to_string())})
                        } else if request["object"]["data"]["deny"].is_string() {
                            assert_eq!(request["object"]["metadata"]["labels"]["mutated"], "yes");
                            json!({"uid": uid, "allowed": false, "status": {"code": 403, "message": "no deny keys"}})
                        } else {
                            json!({"uid": uid, "allowed": true, "warnings": ["be careful"]})
                        };
                        let out = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response});
                        Ok::<_, Infallible>(hyper::Response::new(http_body_util::Full::new(
                            bytes::Bytes::from(out.to_string()),
                        )))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (
        addr,
        base64::engine::general_purpose::STANDARD.encode(ca.cert_pem()),
    )
}

#[tokio::test]
async fn admission_chain_mutates_validates_and_warns() {
    let server = FakeApiServer::start().await.unwrap();
    let (addr, bundle) = tiny_webhook().await;
    let rules = json!([{"operations": ["CREATE", "UPDATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]}]);
    let ns_selector = json!({"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]}]});
    server.apply(json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "m"}, "webhooks": [{"name": "m.test", "rules": rules, "namespaceSelector": ns_selector,
        "clientConfig": {"url": format!("https://{addr}/mutate"), "caBundle": bundle}, "sideEffects": "None", "admissionReviewVersions": ["v1"]}]})).unwrap();
    server.apply(json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "v"}, "webhooks": [{"name": "v.test", "rules": rules, "namespaceSelector": ns_selector,
        "clientConfig": {"url": format!("https://{addr}/validate"), "caBundle": bundle}, "sideEffects": "None", "admissionReviewVersions": ["v1"]}]})).unwrap();
    let client = server.client().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let ok: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "ok"}, "data": {"a": "b"}})).unwrap();
    let created = cms.create(&PostParams::default(), &ok).await.unwrap();
    assert_eq!(created.metadata.labels.unwrap()["mutated"], "yes");
    let bad: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "bad"}, "data": {"deny": "x"}}))
            .unwrap();
    let err = cms.create(&PostParams::default(), &bad).await.unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("{err}")
    };
    assert_eq!(status.code, 403);
    assert_eq!(
        status.message,
        "admission webhook \"v.test\" denied the request: no deny keys"
    );
    // Warnings reach the client as Warning headers; kubectl prints them.
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = server.kubeconfig_path().to_owned();
    let cache = dir.path().join("cache");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--cache-dir")
            .arg(&cache)
            .args(["create", "--validate=false", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(
                    b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: warned\ndata:\n  a: b\n",
                )?;
                child.wait_with_output()
            })
            .expect("kubectl is not installed: run `make test-deps`")
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("Warning: be careful"), "{stderr}");
    // kube-system is excluded by the namespace selector.
    let system: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
    let created = system.create(&PostParams::default(), &bad).await.unwrap();
    assert!(created.metadata.labels.is_none());
    // Unreachable webhook with failurePolicy Fail: refused with the cause.
    server.apply(json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "w"}, "webhooks": [{"name": "down.test", "rules": rules, "failurePolicy": "Fail",
        "clientConfig": {"url": "https://127.0.0.1:1/validate", "caBundle": bundle}, "sideEffects": "None", "admissionReviewVersions": ["v1"]}]})).unwrap();
    let err = cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap(),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("{err}")
    };
    assert_eq!(status.code, 500);
    assert!(
        status
            .message
            .contains("failed calling webhook \"down.test\""),
        "{}",
        status.message
    );
}
