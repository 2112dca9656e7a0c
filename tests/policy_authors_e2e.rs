//! Who may change an injected pod's policy, end to end: the real
//! `tollgate webhook --in-cluster` behind the in-process fake API server,
//! whose stored webhook configurations (`examples/webhook-configuration/`)
//! route ConfigMap writes to it. The agent's own ServiceAccount (`kubectl
//! --as`) rewriting its policy ConfigMap is refused and the stored policy
//! stays; a listed policy author changes it, and the real sidecar, reading
//! the ConfigMap's data as the kubelet projects it into the pod, reloads
//! and decides by the new policy.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support_cluster;
#[path = "support_sidecar/mod.rs"]
mod support_sidecar;
mod support_webhook;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support_cluster::{kubectl, start_in_cluster_with, store_webhook_configurations, wait};
use support_sidecar::upstream::Upstream;
use support_sidecar::{Sidecar, via_proxy};
use support_webhook::http_get;
use tollgate_testkit::FakeApiServer;

const CONFIG: &str = "apiVersion: tollgate.dev/v1alpha1
kind: TollgateConfig
injection:
  policyAuthors:
    users: [alice@example.com]
";

const AUTHOR: &[&str] = &["--as=alice@example.com"];
const AGENT: &[&str] = &[
    "--as=system:serviceaccount:agents:researcher",
    "--as-group=system:serviceaccounts",
    "--as-group=system:serviceaccounts:agents",
];

/// An ActionPolicy: nothing allowed, or GETs to loopback.
fn policy(allow_gets: bool) -> String {
    let mut text =
        "apiVersion: tollgate.dev/v1alpha1\nkind: ActionPolicy\nmetadata: { name: researcher }\n"
            .to_owned();
    if allow_gets {
        text.push_str("spec:\n  rules:\n    - name: reads\n      effect: allow\n      protocol: http\n      match: { hosts: [127.0.0.1], methods: [GET] }\n");
    } else {
        text.push_str("spec: {}\n");
    }
    text
}

fn config_map(policy: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "researcher-policy", "namespace": "agents",
            "labels": {"tollgate.dev/policy": "true"}},
        "data": {"policy.yaml": policy}
    })
}

/// `kubectl apply` of `object` as the identity `who`.
fn apply(server: &FakeApiServer, dir: &Path, who: &[&str], object: &Value) -> Output {
    let file = dir.join("object.json");
    std::fs::write(&file, serde_json::to_vec(object).unwrap()).unwrap();
    let mut args = vec!["apply", "--validate=false", "-f", file.to_str().unwrap()];
    args.extend_from_slice(who);
    tokio::task::block_in_place(|| kubectl(server, &dir.join("kube-cache"), &args))
}

fn stored_policy(server: &FakeApiServer) -> String {
    let cm = server
        .get("v1", "ConfigMap", "agents", "researcher-policy")
        .unwrap();
    cm["data"]["policy.yaml"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_policy_author_rewrites_an_agents_policy_and_the_sidecar_reloads_it() {
    let server = FakeApiServer::start().await.unwrap();
    server
        .apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tollgate"}}))
        .unwrap();
    server
        .apply(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {
            "name": "agents", "labels": {"tollgate.dev/inject": "enabled"}}}),
        )
        .unwrap();
    store_webhook_configurations(&server);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tollgate.yaml");
    std::fs::write(&config, CONFIG).unwrap();
    let (webhook, https, metrics) =
        start_in_cluster_with(&server, dir.path(), &["--config", config.to_str().unwrap()]);
    server.route_service("tollgate", "tollgate-webhook", https);
    wait("/readyz", Duration::from_secs(30), || {
        http_get(metrics, "/readyz").0 == 200
    });

    // The author writes the first policy: nothing is allowed.
    let out = apply(&server, dir.path(), AUTHOR, &config_map(&policy(false)));
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        webhook.output()
    );
    let sidecar = Sidecar::start(Some(&stored_policy(&server)), &[]).await;
    let up = Upstream::start().await;
    let url = format!("http://127.0.0.1:{}/echo", up.addr.port());
    assert_eq!(via_proxy(sidecar.addr, "GET", &url, &[], "").await.0, 403);

    // The agent's ServiceAccount tries to allow itself everything.
    let out = apply(&server, dir.path(), AGENT, &config_map(&policy(true)));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the agent rewrote its policy");
    assert!(
        stderr.contains("injection:policyConfigMap")
            && stderr.contains("is a ServiceAccount of namespace \"agents\""),
        "{stderr}"
    );
    assert_eq!(stored_policy(&server), policy(false));

    // The author may, and the sidecar decides by the new policy once the
    // kubelet has projected it.
    let out = apply(&server, dir.path(), AUTHOR, &config_map(&policy(true)));
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        webhook.output()
    );
    let now = stored_policy(&server);
    assert_eq!(now, policy(true));
    sidecar.write_policy(&now);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = 0;
    while Instant::now() < deadline {
        last = via_proxy(sidecar.addr, "GET", &url, &[], "").await.0;
        if last == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(last, 200, "the sidecar never took the author's policy");
}
