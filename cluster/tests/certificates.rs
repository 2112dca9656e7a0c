//! Self-managed certificates with two replicas against the in-process fake
//! API server (there is no kube-apiserver here; the fake enforces resource
//! versions, so conflicting writers really conflict).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use tollgate_cluster::{CertificateManager, CertificateSettings};
use tollgate_testkit::FakeApiServer;

const NS: &str = "tollgate";

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn settings() -> CertificateSettings {
    // Long enough for a loaded machine to renew in time, short enough for
    // the fail-over below to stay quick.
    CertificateSettings {
        lease_duration: Duration::from_secs(5),
        check_interval: Duration::from_millis(200),
        ..CertificateSettings::default()
    }
}

async fn setup() -> FakeApiServer {
    let server = FakeApiServer::start().await.unwrap();
    server
        .apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}))
        .unwrap();
    let hook = |name: &str| {
        json!({"name": name, "clientConfig": {"service": {"namespace": NS, "name": "tollgate-webhook", "path": "/validate"}},
               "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
               "sideEffects": "None", "admissionReviewVersions": ["v1"]})
    };
    for kind in [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ] {
        server
            .apply(json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
                          "metadata": {"name": "tollgate"}, "webhooks": [hook("a.tollgate.dev"), hook("b.tollgate.dev")]}))
            .unwrap();
    }
    server
}

fn secret(server: &FakeApiServer) -> Value {
    server
        .get("v1", "Secret", NS, "tollgate-webhook-tls")
        .expect("secret exists")
}

fn secret_key(server: &FakeApiServer, key: &str) -> Vec<u8> {
    let b64 = secret(server)["data"][key].as_str().unwrap().to_owned();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

fn bundles(server: &FakeApiServer) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for kind in [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ] {
        let config = server
            .get("admissionregistration.k8s.io/v1", kind, "", "tollgate")
            .unwrap();
        for hook in config["webhooks"].as_array().unwrap() {
            let b = hook["clientConfig"]["caBundle"]
                .as_str()
                .unwrap_or_default();
            out.push(base64::engine::general_purpose::STANDARD.decode(b).unwrap());
        }
    }
    out
}

#[tokio::test]
async fn two_replicas_create_share_rotate_and_fail_over() {
    let server = setup().await;
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let a = Arc::new(CertificateManager::new(
        server.client().await.unwrap(),
        settings(),
        NS,
        "replica-a",
        dir_a.path(),
    ));
    let b = Arc::new(CertificateManager::new(
        server.client().await.unwrap(),
        settings(),
        NS,
        "replica-b",
        dir_b.path(),
    ));

    // First pass: a leads and creates; b follows and installs the same pair.
    let ra = a.reconcile().await.unwrap();
    assert!(ra.leader && ra.wrote_secret && ra.installed, "{ra:?}");
    assert_eq!(ra.patched.len(), 2, "{ra:?}");
    let rb = b.reconcile().await.unwrap();
    assert!(!rb.leader && !rb.wrote_secret && rb.installed, "{rb:?}");
    for file in ["ca.crt", "tls.crt", "tls.key"] {
        assert_eq!(
            std::fs::read(dir_a.path().join(file)).unwrap(),
            std::fs::read(dir_b.path().join(file)).unwrap()
        );
    }
    let ca = secret_key(&server, "ca.crt");
    assert!(
        bundles(&server).iter().all(|b| *b == ca),
        "every webhook trusts the CA"
    );
    assert_eq!(secret(&server)["type"], "kubernetes.io/tls");
    // The installed pair loads and covers the Service names.
    let resolver = tollgate_certs::ReloadingResolver::load(&b.cert_path(), &b.key_path()).unwrap();
    assert!(
        resolver.not_after().unwrap() > time::OffsetDateTime::now_utc() + time::Duration::days(300)
    );

    // Running side by side, neither rewrites the Secret.
    let task_a = tokio::spawn(a.clone().run());
    let task_b = tokio::spawn(b.clone().run());
    let rv = secret(&server)["metadata"]["resourceVersion"].clone();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        secret(&server)["metadata"]["resourceVersion"],
        rv,
        "replicas do not fight over the Secret"
    );
    let creates = server
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/secrets"))
        .count();
    assert_eq!(creates, 1);

    // Rotation: a serving certificate about to expire is renewed by the
    // leader under the same CA, and both replicas pick it up.
    let old_key = secret_key(&server, "ca.key");
    let authority = tollgate_certs::Authority::from_pem(
        std::str::from_utf8(&ca).unwrap(),
        std::str::from_utf8(&old_key).unwrap(),
    )
    .unwrap();
    let short = authority
        .issue_server(
            &["tollgate-webhook.tollgate.svc".into()],
            time::Duration::days(1),
        )
        .unwrap();
    let mut s = secret(&server);
    s["data"]["tls.crt"] = json!(base64::engine::general_purpose::STANDARD.encode(&short.cert_pem));
    s["data"]["tls.key"] = json!(base64::engine::general_purpose::STANDARD.encode(&short.key_pem));
    server.apply(s).unwrap();
    eventually("renewed serving certificate", || {
        let cert = secret_key(&server, "tls.crt");
        tollgate_certs::not_after(&cert).unwrap()
            > time::OffsetDateTime::now_utc() + time::Duration::days(300)
    })
    .await;
    let renewed = secret_key(&server, "tls.crt");
    eventually("both replicas installed the renewal", || {
        std::fs::read(dir_a.path().join("tls.crt")).unwrap() == renewed
            && std::fs::read(dir_b.path().join("tls.crt")).unwrap() == renewed
    })
    .await;
    assert_eq!(
        secret_key(&server, "ca.crt"),
        ca,
        "the CA (and caBundle) stay"
    );

    // CA renewal: a CA about to expire is replaced; the caBundles trust the
    // new and the old CA together, so replicas still serving the old pair
    // stay trusted until they install the new one.
    let expiring =
        tollgate_certs::Authority::generate("expiring CA", time::Duration::days(2)).unwrap();
    let old_pair = expiring
        .issue_server(
            &["tollgate-webhook.tollgate.svc".into()],
            time::Duration::days(1),
        )
        .unwrap();
    let b64 = |t: &str| json!(base64::engine::general_purpose::STANDARD.encode(t));
    let mut s = secret(&server);
    s["data"]["ca.crt"] = b64(expiring.cert_pem());
    s["data"]["ca.key"] = b64(&expiring.pair().key_pem);
    s["data"]["tls.crt"] = b64(&old_pair.cert_pem);
    s["data"]["tls.key"] = b64(&old_pair.key_pem);
    server.apply(s).unwrap();
    eventually("CA renewed", || {
        let ca_now = secret_key(&server, "ca.crt");
        ca_now != expiring.cert_pem().as_bytes() && ca_now != ca
    })
    .await;
    let renewed_ca = String::from_utf8(secret_key(&server, "ca.crt")).unwrap();
    let bundle = String::from_utf8(secret_key(&server, "ca-bundle.crt")).unwrap();
    assert!(
        bundle.starts_with(&renewed_ca) && bundle.contains(expiring.cert_pem()),
        "{bundle}"
    );
    eventually("caBundles trust both CAs", || {
        bundles(&server).iter().all(|b| *b == bundle.as_bytes())
    })
    .await;

    // Fail-over: the leader stops; b takes the lease once it expires and
    // recreates a deleted Secret with a new CA, then fixes the caBundles.
    task_a.abort();
    assert!(server.delete("v1", "Secret", NS, "tollgate-webhook-tls"));
    eventually("b recreated the Secret", || {
        server
            .get("v1", "Secret", NS, "tollgate-webhook-tls")
            .is_some()
    })
    .await;
    assert!(b.elector().is_leader());
    let new_ca = secret_key(&server, "ca.crt");
    assert_ne!(new_ca, ca);
    eventually("caBundles follow the new CA", || {
        bundles(&server).iter().all(|b| *b == new_ca)
    })
    .await;
    eventually("b installed the new pair", || {
        std::fs::read(dir_b.path().join("ca.crt")).unwrap() == new_ca
    })
    .await;
    let lease = server
        .get(
            "coordination.k8s.io/v1",
            "Lease",
            NS,
            "tollgate-webhook-certificates",
        )
        .unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "replica-b");
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
    task_b.abort();
}
