//! The whole path of an agent, end to end: `kubectl apply` of an agent
//! Deployment into an injection-enabled, compliance-profiled namespace,
//! admitted by the real `tollgate webhook --in-cluster` (mutated: secure
//! defaults and inherited ownership; validated: Pod Security, ownership,
//! SOC 2), its Pod created from the template and injected with the sidecar,
//! then the real `tollgate sidecar`, started with exactly the arguments the
//! injector wrote, enforcing its ActionPolicy on real MCP traffic (the
//! official Python SDK as client and server). Both journals hold the
//! events and verify.
//!
//! There is no kube-apiserver here: the in-process fake API server plays
//! its part (REST, watch, and calling the stored webhook configurations
//! over HTTPS), and the test plays the ReplicaSet controller by creating
//! the Pod from the stored template through the same admission chain.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support_cluster;
mod support_journal;
#[path = "support_sidecar/mod.rs"]
mod support_sidecar;
mod support_webhook;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support_cluster::{kubectl, start_in_cluster_with, store_webhook_configurations, wait};
use support_sidecar::{free_port, python_script, require_python, run_bounded, start_mcp_server};
use support_webhook::http_get;
use tollgate_testkit::FakeApiServer;

const CONFIG: &str = "apiVersion: tollgate.dev/v1alpha1
kind: TollgateConfig
policy:
  compliance:
    parameters:
      allowedRegistries: [ghcr.io/acme, ghcr.io/tollgate-dev]
";

/// The agent, as its team writes it: no ownership annotations (the
/// namespace has them), no capabilities/seccomp/privilege-escalation
/// settings (the secure defaults fill them in).
const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: researcher
  namespace: agents
spec:
  replicas: 1
  selector:
    matchLabels: {app: researcher}
  template:
    metadata:
      labels: {app: researcher}
      annotations:
        tollgate.dev/action-policy: researcher-policy
    spec:
      serviceAccountName: researcher
      automountServiceAccountToken: false
      securityContext:
        runAsNonRoot: true
        runAsUser: 10001
      containers:
      - name: agent
        image: ghcr.io/acme/researcher:1.2.0
        securityContext:
          readOnlyRootFilesystem: true
        resources:
          requests: {cpu: 100m, memory: 128Mi}
          limits: {cpu: 500m, memory: 256Mi}
        livenessProbe: {httpGet: {path: /healthz, port: 8080}}
        readinessProbe: {httpGet: {path: /readyz, port: 8080}}
";

fn policy(port: u16) -> String {
    format!(
        r#"apiVersion: tollgate.dev/v1alpha1
kind: ActionPolicy
metadata: {{ name: researcher }}
spec:
  routes:
    - name: tools
      protocol: mcp
      hosts: ["127.0.0.1:{port}"]
  rules:
    - name: mcp-session
      effect: allow
      protocol: mcp
      match: {{ servers: [tools], methods: [initialize, ping, "notifications/*", tools/list, "$/listen", "$/close"] }}
    - name: no-deletes
      effect: deny
      protocol: mcp
      reason: deleting files needs a human
      match: {{ tools: [delete_file] }}
    - name: read-workspace
      effect: allow
      protocol: mcp
      match:
        tools: [read_file]
        arguments: [{{ pointer: /path, withinPath: /workspace }}]
    - name: tools
      effect: allow
      protocol: mcp
      match: {{ tools: [add, search] }}
"#
    )
}

fn events(journal: &Path) -> Vec<Value> {
    support_journal::events(Path::new(support_webhook::binary()), journal)
}

fn verify(journal: &Path) {
    support_journal::verify(Path::new(support_webhook::binary()), journal);
}

fn sigterm(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_is_admitted_injected_and_its_actions_enforced_and_journaled() {
    require_python(&["mcp", "httpx"]);
    let server = FakeApiServer::start().await.unwrap();
    server
        .apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tollgate"}}))
        .unwrap();
    server
        .apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {
            "name": "agents",
            "labels": {"tollgate.dev/inject": "enabled", "compliance.tollgate.dev/profiles": "soc2"},
            "annotations": {"deployscope.dev/owner": "team-research", "deployscope.dev/tier": "standard"}}}))
        .unwrap();
    store_webhook_configurations(&server);

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tollgate.yaml");
    std::fs::write(&config, CONFIG).unwrap();
    let webhook_journal = dir.path().join("webhook-journal");
    let (webhook, https, metrics) = start_in_cluster_with(
        &server,
        dir.path(),
        &[
            "--config",
            config.to_str().unwrap(),
            "--audit-dir",
            webhook_journal.to_str().unwrap(),
            "--shutdown-grace",
            "1s",
        ],
    );
    server.route_service("tollgate", "tollgate-webhook", https);
    wait("/readyz", Duration::from_secs(30), || {
        http_get(metrics, "/readyz").0 == 200
    });

    // kubectl apply: mutated (defaults, inherited ownership), validated.
    let cache = dir.path().join("kube-cache");
    let manifest = dir.path().join("deployment.yaml");
    std::fs::write(&manifest, DEPLOYMENT).unwrap();
    let out = tokio::task::block_in_place(|| {
        kubectl(
            &server,
            &cache,
            &[
                "apply",
                "--validate=false",
                "-f",
                manifest.to_str().unwrap(),
            ],
        )
    });
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        webhook.output()
    );
    let stored = server
        .get("apps/v1", "Deployment", "agents", "researcher")
        .unwrap();
    assert_eq!(
        stored["metadata"]["annotations"]["deployscope.dev/owner"], "team-research",
        "ownership inherited from the namespace: {stored}"
    );
    let template = &stored["spec"]["template"];
    let agent = &template["spec"]["containers"][0];
    assert_eq!(agent["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(
        agent["securityContext"]["capabilities"]["drop"],
        json!(["ALL"])
    );
    assert_eq!(
        template["spec"]["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );

    // The ReplicaSet controller's part: a Pod from the template, through
    // the same admission chain, gets the sidecar.
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": "researcher-7d4b9-x2k8q", "namespace": "agents",
            "labels": template["metadata"]["labels"],
            "annotations": template["metadata"]["annotations"],
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": "researcher-7d4b9", "uid": "6f1c1f5e-0000-4000-8000-000000000001",
                "controller": true, "blockOwnerDeletion": true}]
        },
        "spec": template["spec"]
    });
    pod["metadata"]["annotations"]
        .as_object_mut()
        .unwrap()
        .extend(
            stored["metadata"]["annotations"]
                .as_object()
                .unwrap()
                .iter()
                .filter(|(k, _)| k.starts_with("deployscope.dev/"))
                .map(|(k, v)| (k.clone(), v.clone())),
        );
    let pod_file = dir.path().join("pod.json");
    std::fs::write(&pod_file, serde_json::to_vec(&pod).unwrap()).unwrap();
    let out = tokio::task::block_in_place(|| {
        kubectl(
            &server,
            &cache,
            &[
                "create",
                "--validate=false",
                "-f",
                pod_file.to_str().unwrap(),
            ],
        )
    });
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        webhook.output()
    );
    let pod = server
        .get("v1", "Pod", "agents", "researcher-7d4b9-x2k8q")
        .unwrap();
    let sidecar = &pod["spec"]["initContainers"][0];
    assert_eq!(sidecar["name"], "tollgate-sidecar", "{pod}");
    assert_eq!(
        sidecar["restartPolicy"], "Always",
        "native sidecar: {sidecar}"
    );
    assert!(
        pod["metadata"]["annotations"]["tollgate.dev/injected-version"]
            .as_str()
            .is_some_and(|v| v.starts_with("v1-")),
        "{pod}"
    );
    let agent_env = pod["spec"]["containers"][0]["env"].as_array().unwrap();
    let proxy = agent_env
        .iter()
        .find(|e| e["name"] == "HTTP_PROXY")
        .and_then(|e| e["value"].as_str())
        .unwrap_or_else(|| panic!("no HTTP_PROXY on the agent: {agent_env:?}"));
    assert_eq!(proxy, "http://127.0.0.1:15001");
    assert!(
        !pod["spec"]["containers"][0]["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|m| m["name"] == "tollgate-audit"),
        "the agent must not mount the audit volume: {pod}"
    );

    // The sidecar, run with exactly the injected arguments; container paths
    // map into the test's directory, the fixed ports to free ones.
    let port = free_port();
    let proxy_port = free_port();
    let metrics_port = free_port();
    let root = dir.path().join("pod");
    for sub in [
        "etc/tollgate/policy",
        "etc/tollgate/podinfo",
        "var/lib/tollgate/audit",
    ] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
    }
    std::fs::write(root.join("etc/tollgate/policy/policy.yaml"), policy(port)).unwrap();
    std::fs::write(
        root.join("etc/tollgate/podinfo/annotations"),
        "deployscope.dev/owner=\"team-research\"\ndeployscope.dev/tier=\"standard\"\n",
    )
    .unwrap();
    std::fs::write(
        root.join("etc/tollgate/podinfo/labels"),
        "app=\"researcher\"\n",
    )
    .unwrap();
    let map = |s: &str| -> String {
        let s = s
            .replace("127.0.0.1:15001", &format!("127.0.0.1:{proxy_port}"))
            .replace("0.0.0.0:15090", &format!("127.0.0.1:{metrics_port}"));
        if s.starts_with('/') {
            root.join(s.trim_start_matches('/')).display().to_string()
        } else {
            s
        }
    };
    let args: Vec<String> = sidecar["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| map(a.as_str().unwrap()))
        .collect();
    let mut cmd = Command::new(support_webhook::binary());
    cmd.args(&args)
        .env("POD_NAME", "researcher-7d4b9-x2k8q")
        .env("POD_NAMESPACE", "agents")
        .env("SERVICE_ACCOUNT", "researcher")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(dir.path().join("sidecar.log")).unwrap(),
        ));
    for e in sidecar["env"].as_array().unwrap() {
        if let Some(v) = e["value"].as_str() {
            cmd.env(e["name"].as_str().unwrap(), map(v));
        }
    }
    let mut child = cmd.spawn().unwrap();
    let log = || std::fs::read_to_string(dir.path().join("sidecar.log")).unwrap_or_default();
    let metrics_addr = format!("127.0.0.1:{metrics_port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while http_get(metrics_addr, "/readyz").0 != 200 {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the sidecar exited ({status}) with {args:?}:\n{}", log());
        }
        assert!(
            Instant::now() < deadline,
            "the sidecar never became ready:\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Real MCP traffic through it, as the agent would send it.
    let _mcp_server = start_mcp_server(port).await;
    let mut client = tokio::process::Command::new("python3");
    client
        .arg(python_script("mcp_client.py"))
        .arg(format!("http://127.0.0.1:{port}/mcp"))
        .env("HTTP_PROXY", format!("http://127.0.0.1:{proxy_port}"))
        .env("http_proxy", format!("http://127.0.0.1:{proxy_port}"))
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .env_remove("HTTPS_PROXY")
        .env_remove("ALL_PROXY");
    let (code, stdout, stderr) = run_bounded(client, Duration::from_secs(60)).await;
    assert_eq!(code, Some(0), "{stdout}\n{stderr}\n{}", log());
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let call = |tool: &str, i: usize| {
        lines
            .iter()
            .filter(|l| l["tool"] == tool)
            .nth(i)
            .unwrap()
            .clone()
    };
    assert_eq!(call("read_file", 0)["ok"], true, "{stdout}");
    assert_eq!(call("read_file", 1)["ok"], false, "{stdout}");
    assert!(
        call("delete_file", 0)["error"]
            .as_str()
            .unwrap_or("")
            .contains("deleting files needs a human"),
        "{stdout}"
    );

    // Stop both; each journal holds its events and verifies.
    sigterm(child.id());
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the sidecar did not stop:\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sidecar_journal = root.join("var/lib/tollgate/audit/journal");
    verify(&sidecar_journal);
    let actions = events(&sidecar_journal);
    let calls: Vec<&Value> = actions
        .iter()
        .filter(|e| e["action"]["verb"] == "tools/call")
        .collect();
    assert_eq!(calls.len(), 5, "{actions:?}");
    let denied = calls
        .iter()
        .find(|e| e["decision"]["rule"] == "no-deletes")
        .unwrap();
    assert_eq!(denied["decision"]["outcome"], "deny");
    assert_eq!(denied["actor"]["pod"], "researcher-7d4b9-x2k8q", "{denied}");
    assert_eq!(denied["ownership"]["owner"], "team-research", "{denied}");

    sigterm(webhook.child.id());
    let wait_exit = Instant::now() + Duration::from_secs(30);
    let mut webhook = webhook;
    while webhook.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < wait_exit, "the webhook did not stop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    verify(&webhook_journal);
    // The certificate Lease was handed back at shutdown, not left to expire.
    let lease = server
        .get(
            "coordination.k8s.io/v1",
            "Lease",
            "tollgate",
            "tollgate-webhook-certificates",
        )
        .expect("the certificate Lease");
    assert!(
        lease["spec"]["holderIdentity"].is_null(),
        "the Lease is still held after shutdown: {lease}"
    );
    let admissions = events(&webhook_journal);
    let targets: Vec<String> = admissions
        .iter()
        .filter(|e| e["source"] == "webhook")
        .map(|e| {
            format!(
                "{} {}",
                e["decision"]["outcome"].as_str().unwrap_or(""),
                e["action"]["target"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert!(
        targets
            .iter()
            .any(|t| t.starts_with("allow") && t.contains("researcher-7d4b9-x2k8q")),
        "{targets:?}"
    );
    assert!(
        targets
            .iter()
            .any(|t| t.starts_with("allow") && t.contains("apps/v1/Deployment agents/researcher")),
        "{targets:?}"
    );
}
