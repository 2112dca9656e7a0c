//! `kubectl` through the sidecar (its kubeconfig's `proxy-url`), with TLS
//! interception: the API server is a loopback stub speaking the real REST
//! shapes, because no kube-apiserver can run here. `get pods` is allowed,
//! `delete` and `exec` are denied with a Kubernetes `Status` kubectl
//! prints, and each decision is audited with its verb and resource.
// Test code: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "support_sidecar/mod.rs"]
mod support;

use std::path::Path;
use std::time::Duration;

use support::kube::KubeStub;
use support::{Sidecar, TestCa, outcome, require_program, rule, run_bounded};

fn policy(port: u16) -> String {
    format!(
        r#"apiVersion: tollgate.dev/v1alpha1
kind: ActionPolicy
metadata: {{ name: kubectl-e2e }}
spec:
  routes:
    - name: cluster
      protocol: kubernetes
      hosts: ["127.0.0.1:{port}"]
  rules:
    - name: no-exec
      effect: deny
      protocol: kubernetes
      reason: interactive access to pods needs a human with break-glass rights
      match: {{ resources: [pods/exec, pods/attach] }}
    - name: discovery
      effect: allow
      protocol: kubernetes
      match: {{ verbs: [get], nonResourcePaths: [/api, "/api/*", /apis, "/apis/*", /version] }}
    - name: read-pods
      effect: allow
      protocol: kubernetes
      match: {{ verbs: [get, list, watch], resources: [pods], namespaces: [team-a] }}
"#
    )
}

fn kubeconfig(dir: &Path, api: u16, proxy: &str, ca: &Path) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            r#"apiVersion: v1
kind: Config
clusters:
  - name: stub
    cluster:
      server: https://127.0.0.1:{api}
      certificate-authority: {ca}
      proxy-url: {proxy}
contexts:
  - name: stub
    context: {{ cluster: stub, user: agent, namespace: team-a }}
current-context: stub
users:
  - name: agent
    user: {{ token: not-a-real-token }}
"#,
            ca = ca.display()
        ),
    )
    .unwrap();
    path
}

async fn kubectl(config: &Path, cache: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let mut cmd = tokio::process::Command::new("kubectl");
    cmd.arg("--kubeconfig")
        .arg(config)
        .arg("--cache-dir")
        .arg(cache)
        .arg("--request-timeout=10s")
        .args(args)
        .env_remove("HTTPS_PROXY")
        .env_remove("HTTP_PROXY")
        .env_remove("NO_PROXY")
        .env("HOME", cache);
    run_bounded(cmd, Duration::from_secs(30)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_allowed_delete_and_exec_denied() {
    require_program("kubectl");
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let api = KubeStub::start(ca.server_config(&[b"http/1.1"])).await;
    let intercept = dir.path().join("intercept");
    let sidecar = Sidecar::start(
        Some(&policy(api.addr.port())),
        &[
            "--intercept-ca",
            intercept.to_str().unwrap(),
            "--upstream-ca",
            ca.ca_file.to_str().unwrap(),
            "--no-system-roots",
        ],
    )
    .await;
    let config = kubeconfig(
        dir.path(),
        api.addr.port(),
        &sidecar.url(),
        &intercept.join("ca.crt"),
    );
    let cache = dir.path().join("cache");

    let (code, out, err) = kubectl(&config, &cache, &["get", "pods", "-o", "name"]).await;
    assert_eq!(
        code,
        Some(0),
        "kubectl get pods failed:\n{out}\n{err}\n{}",
        sidecar.log()
    );
    assert_eq!(out.trim(), "pod/web-0");

    let (code, out, err) = kubectl(&config, &cache, &["delete", "pod", "web-0"]).await;
    assert_ne!(code, Some(0), "delete must fail:\n{out}\n{err}");
    assert!(err.contains("Forbidden"), "{err}");
    assert!(
        err.contains("no rule of action policy \"kubectl-e2e\" allows kubernetes delete"),
        "{err}"
    );

    let (code, out, err) = kubectl(&config, &cache, &["exec", "web-0", "--", "ls"]).await;
    assert_ne!(code, Some(0), "exec must fail:\n{out}\n{err}");
    assert!(
        err.contains("interactive access to pods needs a human"),
        "kubectl should print the rule's reason:\n{err}"
    );

    // Nothing destructive reached the API server.
    let seen = api.seen();
    assert!(
        seen.iter()
            .any(|r| r.starts_with("GET /api/v1/namespaces/team-a/pods")),
        "{seen:?}"
    );
    assert!(
        !seen
            .iter()
            .any(|r| r.starts_with("DELETE") || r.contains("/exec")),
        "{seen:?}"
    );

    // The audit log is written asynchronously: wait for the last decision.
    sidecar
        .events_where(1, |e| e["action"]["attributes"]["subresource"] == "exec")
        .await;
    let events = sidecar.events();
    let find = |verb: &str, sub: Option<&str>| {
        events
            .iter()
            .filter(|e| {
                let a = &e["action"]["attributes"];
                e["action"]["verb"] == verb
                    && a["resource"] == "pods"
                    && a["subresource"].as_str() == sub
            })
            .collect::<Vec<_>>()
    };
    let lists = find("list", None);
    assert!(
        !lists.is_empty()
            && lists
                .iter()
                .all(|e| outcome(e) == "allow" && rule(e) == "read-pods")
    );
    let deletes = find("delete", None);
    assert_eq!(deletes.len(), 1, "{events:#?}");
    assert_eq!(outcome(deletes[0]), "deny");
    assert_eq!(deletes[0]["action"]["attributes"]["name"], "web-0");
    let execs: Vec<_> = events
        .iter()
        .filter(|e| e["action"]["attributes"]["subresource"] == "exec")
        .collect();
    assert!(!execs.is_empty(), "{events:#?}");
    assert!(
        execs
            .iter()
            .all(|e| outcome(e) == "deny" && rule(e) == "no-exec")
    );
}
