//! End to end, in-cluster: compliance profiles selected the way a real
//! cluster allows, one label per framework set with `kubectl label`, take
//! effect live in `tollgate webhook --in-cluster`; the old comma list is
//! refused by the (fake, as strict as the real) API server with
//! kube-apiserver's own message.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support_cluster;
mod support_webhook;

use std::time::Duration;

use support_cluster::{cluster_with_webhook_configurations, kubectl, start_in_cluster, wait};
use support_webhook::{http_get, write};

/// Passes Pod Security restricted and ownership; its image is `:latest`,
/// which PCI-DSS's `image-pinned` refuses.
const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  namespace: agents
  annotations: {deployscope.dev/owner: team-agents, deployscope.dev/tier: standard}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: api
        image: ghcr.io/acme/api:latest
        securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_label_selects_compliance_profiles_live() {
    let server = cluster_with_webhook_configurations().await;
    let dir = tempfile::tempdir().unwrap();
    let (running, https, metrics) = start_in_cluster(&server, dir.path());
    server.route_service("tollgate", "tollgate-webhook", https);
    wait("/readyz", Duration::from_secs(20), || {
        http_get(metrics, "/readyz").0 == 200
    });
    let cache = dir.path().join("kube-cache");
    let run = |args: &[&str]| tokio::task::block_in_place(|| kubectl(&server, &cache, args));

    // The comma list is not a label value: kubectl refuses it itself, and
    // the API server refuses it from any client, before any webhook.
    let out = run(&[
        "label",
        "namespace",
        "agents",
        "compliance.tollgate.dev/profiles=soc2,pci-dss",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("invalid label value"), "{stderr}");
    let out = run(&[
        "patch",
        "namespace",
        "agents",
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"labels":{"compliance.tollgate.dev/profiles":"soc2,pci-dss"}}}"#,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("is invalid: metadata.labels: Invalid value: \"soc2,pci-dss\": a valid label must be an empty string"),
        "{stderr}"
    );

    // No profile yet: the :latest image is admitted.
    let file = write(dir.path(), "api.yaml", DEPLOYMENT);
    let apply = || run(&["apply", "--validate=false", "-f", file.to_str().unwrap()]);
    let out = apply();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        running.output()
    );
    run(&["delete", "deployment", "api", "-n", "agents"]);

    // One label per framework, each with its mode.
    let out = run(&[
        "label",
        "namespace",
        "agents",
        "compliance.tollgate.dev/pci-dss=enforce",
        "compliance.tollgate.dev/soc2=warn",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ns = server.get("v1", "Namespace", "", "agents").unwrap();
    assert_eq!(
        ns["metadata"]["labels"]["compliance.tollgate.dev/pci-dss"],
        "enforce"
    );
    // The webhook's reflector sees the labels: PCI-DSS is enforced.
    let mut last = String::new();
    wait("PCI-DSS to be enforced", Duration::from_secs(15), || {
        let out = apply();
        last = String::from_utf8_lossy(&out.stderr).into_owned();
        !out.status.success()
    });
    assert!(last.contains("image-pinned"), "{last}");

    // In warn mode only, it is admitted with a warning.
    let out = run(&[
        "label",
        "--overwrite",
        "namespace",
        "agents",
        "compliance.tollgate.dev/pci-dss=warn",
    ]);
    assert!(out.status.success());
    let mut warned = String::new();
    wait("PCI-DSS to warn", Duration::from_secs(15), || {
        let out = apply();
        warned = String::from_utf8_lossy(&out.stderr).into_owned();
        out.status.success()
    });
    assert!(warned.contains("image-pinned"), "{warned}");
}
