//! End to end: `tollgate check` over files, directories and stdin, with its
//! exit codes (0 allowed, 1 denied, 2 usage or input error).

// Test helpers may panic: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support_webhook;

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use support_webhook::{binary, root, write};

fn check(args: &[&str], stdin: Option<&str>, cwd: &std::path::Path) -> Output {
    let mut child = Command::new(binary())
        .current_dir(cwd)
        .arg("check")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

const BAD_NAMESPACE: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: agents\n  labels:\n    pss.tollgate.dev/enforce: strict\n";

#[test]
fn allowed_manifests_exit_0() {
    let examples = root().join("examples/admission/manifests/restricted-agent.yaml");
    let out = check(&["-f", examples.to_str().unwrap()], None, &root());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Deployment \"summariser-agent\" in namespace \"agents\": allowed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("1 object: 0 denied, 0 allowed with warnings, 1 allowed"),
        "{stdout}"
    );
}

#[test]
fn denied_manifests_exit_1_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "ns.yaml", BAD_NAMESPACE);
    let out = check(&["-f", file.to_str().unwrap()], None, dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(
            "Namespace \"agents\": DENIED (1 violation)\n  - metadata.labels[pss.tollgate.dev/enforce]: invalid value \"strict\": must be one of privileged, baseline, restricted [pod-security:namespaceLabel]"
        ),
        "{stdout}"
    );
}

#[test]
fn the_agent_example_is_denied_until_hardened() {
    // Depends on the Pod Security check bodies.
    let dir = root().join("examples/admission/manifests");
    let out = check(&["-f", dir.to_str().unwrap()], None, &root());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Deployment \"research-agent\" in namespace \"agents\": DENIED"),
        "{stdout}"
    );
    assert!(
        stdout.contains("spec.template.spec.hostNetwork"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Deployment \"summariser-agent\" in namespace \"agents\": allowed"),
        "{stdout}"
    );
    // At the privileged level nothing is refused.
    let out = check(
        &["-f", dir.to_str().unwrap(), "--pod-security", "privileged"],
        None,
        &root(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn reads_directories_stdin_lists_and_json() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a/ok.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n",
    );
    write(
        dir.path(),
        "a/b/ok.json",
        r#"{"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "c"}}]}"#,
    );
    write(dir.path(), "a/b/ns.yml", BAD_NAMESPACE);
    write(dir.path(), "a/notes.txt", "not a manifest");
    let out = check(&["-f", "a"], None, dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("4 objects: 1 denied, 0 allowed with warnings, 3 allowed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("a/b/ok.json: Secret \"c\" in namespace \"default\": allowed"),
        "{stdout}"
    );

    let out = check(
        &["-f", "-", "--namespace", "team-a"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"),
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("<stdin>: ConfigMap \"x\" in namespace \"team-a\": allowed")
    );
}

#[test]
fn namespace_labels_come_from_the_config_file() {
    // The namespace's invalid warn label earns a warning on every evaluated
    // object there, whatever the checks find.
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "tollgate.yaml",
        "apiVersion: tollgate.dev/v1alpha1\nkind: TollgateConfig\npolicy:\n  namespaces:\n    typo:\n      labels: {pss.tollgate.dev/warn: loud}\n      annotations: {deployscope.dev/owner: team-a, deployscope.dev/tier: standard}\n",
    );
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: typo}\nspec:\n  securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}\n  containers:\n  - name: c\n    image: x\n    securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}\n";
    let out = check(
        &["-f", "-", "--config", config.to_str().unwrap()],
        Some(pod),
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Pod \"p\" in namespace \"typo\": allowed with warnings"),
        "{stdout}"
    );
    assert!(
        stdout.contains("warning: namespace \"typo\" has an invalid Pod Security label"),
        "{stdout}"
    );
    // Without pod-security there is nothing to warn about.
    let out = check(
        &[
            "-f",
            "-",
            "--config",
            config.to_str().unwrap(),
            "--only",
            "ownership",
        ],
        Some(pod),
        dir.path(),
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(": allowed\n"));
}

#[test]
fn usage_and_input_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad_yaml = write(dir.path(), "bad.yaml", "a: [\n");
    let ns = write(dir.path(), "ns.yaml", BAD_NAMESPACE);
    let cases: Vec<(Vec<&str>, Option<&str>, &str)> = vec![
        (vec![], None, "--filename"),
        (
            vec!["-f", "x.yaml", "--only", "pod-securty"],
            None,
            "unknown policy set \"pod-securty\"",
        ),
        (
            vec!["-f", "x.yaml", "--pod-security", "restricted:1.30"],
            None,
            "latest or v1.N",
        ),
        (vec!["-f", "missing.yaml"], None, "missing.yaml"),
        (
            vec!["-f", bad_yaml.to_str().unwrap()],
            None,
            "bad.yaml: document 1",
        ),
        (
            vec!["-f", "-"],
            Some("- just\n- a list\n"),
            "<stdin>: document 1: a document must be a mapping",
        ),
        // An input error wins over a denial elsewhere.
        (
            vec!["-f", ns.to_str().unwrap(), "-f", "missing.yaml"],
            None,
            "DENIED",
        ),
        (vec!["-f", ".", "--config", "nope.yaml"], None, "nope.yaml"),
    ];
    for (args, stdin, want) in cases {
        let out = check(&args, stdin, dir.path());
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(
            text(&out).contains(want),
            "{args:?}: {want} missing from {}",
            text(&out)
        );
    }
    let empty = tempfile::tempdir().unwrap();
    let out = check(&["-f", empty.path().to_str().unwrap()], None, dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("no *.yaml, *.yml or *.json files"));
}

/// A Deployment that passes Pod Security and ownership, in a namespace
/// (declared in the same input) whose label selects PCI-DSS; its image is
/// tagged `:latest`.
const PCI_INPUT: &str = "apiVersion: v1
kind: Namespace
metadata:
  name: payments
  labels: {compliance.tollgate.dev/pci-dss: enforce}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  namespace: payments
  annotations: {deployscope.dev/owner: team-payments, deployscope.dev/tier: standard}
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

#[test]
fn compliance_profiles_come_from_namespaces_in_the_input_and_every_format_reports_them() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "app.yaml", PCI_INPUT);
    let f = file.to_str().unwrap();

    let out = check(&["-f", f], None, dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("[compliance:image-pinned]"), "{stdout}");

    let out = check(&["-f", f, "--output", "json"], None, dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["kind"], "CheckReport", "{doc}");
    let objects = doc["results"].as_array().unwrap();
    let api = objects
        .iter()
        .find(|o| o["object"]["name"] == "api")
        .unwrap_or_else(|| panic!("{doc}"));
    assert_eq!(api["line"], 7, "{api}");
    let pinned = api["violations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["rule"] == "image-pinned")
        .unwrap_or_else(|| panic!("{api}"));
    assert!(pinned.to_string().contains("PCI-DSS"), "{pinned}");

    let out = check(&["-f", f, "--output", "junit"], None, dir.path());
    let xml = String::from_utf8_lossy(&out.stdout);
    assert!(xml.starts_with("<?xml"), "{xml}");
    assert!(xml.contains("<failure"), "{xml}");
    // Well-formed for a real XML parser.
    let mut parse = Command::new("python3")
        .args(["-c", "import sys, xml.etree.ElementTree as E; r = E.parse(sys.stdin).getroot(); print(r.tag, len(r.findall('.//testcase')), len(r.findall('.//failure')))"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    parse.stdin.take().unwrap().write_all(&out.stdout).unwrap();
    let parsed = parse.wait_with_output().unwrap();
    assert!(parsed.status.success());
    let parsed = String::from_utf8_lossy(&parsed.stdout);
    let fields: Vec<&str> = parsed.split_whitespace().collect();
    assert_eq!(fields.first(), Some(&"testsuites"), "{parsed}");
    assert!(fields[2].parse::<u32>().unwrap() >= 1, "{parsed}");

    let out = check(&["-f", f, "--output", "sarif"], None, dir.path());
    let sarif: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert!(
        results.iter().any(|r| r["ruleId"]
            .as_str()
            .is_some_and(|id| id.contains("image-pinned"))),
        "{sarif}"
    );

    // The evidence report: PCI-DSS controls, with the failing object.
    let out = check(&["-f", f, "--report", "--output", "json"], None, dir.path());
    let evidence: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(evidence["kind"], "EvidenceReport", "{evidence}");
    assert!(evidence.to_string().contains("PCI-DSS"), "{evidence}");
    assert!(
        evidence.to_string().contains("payments/api") || evidence.to_string().contains("\"api\""),
        "{evidence}"
    );
    let out = check(&["-f", f, "--report"], None, dir.path());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("PCI-DSS"),
        "{}",
        text(&out)
    );

    // Without the namespace's label, no framework is in scope.
    let out = check(
        &["-f", "-", "--output", "json"],
        Some(PCI_INPUT.split("---\n").nth(1).unwrap()),
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // --namespace-labels stands in for the cluster's namespace.
    let out = check(
        &[
            "-f",
            "-",
            "--namespace-labels",
            "compliance.tollgate.dev/profiles=pci-dss",
        ],
        Some(PCI_INPUT.split("---\n").nth(1).unwrap()),
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("[compliance:image-pinned]"),
        "{}",
        text(&out)
    );
    let out = check(
        &["-f", f, "--namespace-labels", "novalue"],
        None,
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    let out = check(
        &["-f", f, "--report", "--output", "sarif"],
        None,
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

/// Several compliance profiles are selected with one label each, as on a
/// cluster (`kubectl label ns payments compliance.tollgate.dev/pci-dss=enforce`);
/// labels kube-apiserver would refuse are refused with the labels to use.
#[test]
fn namespace_labels_select_one_framework_each() {
    let dir = tempfile::tempdir().unwrap();
    let deployment = PCI_INPUT.split("---\n").nth(1).unwrap();
    let out = check(
        &[
            "-f",
            "-",
            "-o",
            "json",
            "--namespace-labels",
            "compliance.tollgate.dev/soc2=audit,compliance.tollgate.dev/pci-dss=enforce",
        ],
        Some(deployment),
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let frameworks = &json["results"][0]["frameworks"];
    assert_eq!(
        frameworks,
        &serde_json::json!(["SOC2", "PCI-DSS"]),
        "{json}"
    );
    // In warn mode for both frameworks: admitted with warnings.
    let out = check(
        &[
            "-f",
            "-",
            "--namespace-labels",
            "compliance.tollgate.dev/soc2=warn,compliance.tollgate.dev/pci-dss=warn",
        ],
        Some(deployment),
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("image-pinned"), "{}", text(&out));
    for (bad, says) in [
        (
            "compliance.tollgate.dev/profiles=soc2,pci-dss",
            "one label each",
        ),
        (
            "compliance.tollgate.dev/profiles=soc2 pci-dss",
            "label value",
        ),
        ("Compliance.tollgate.dev/pci-dss=enforce", "label key"),
        (
            &format!("compliance.tollgate.dev/{}=enforce", "x".repeat(64)),
            "label key",
        ),
    ] {
        let out = check(
            &["-f", "-", "--namespace-labels", bad],
            Some(deployment),
            dir.path(),
        );
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", text(&out));
        assert!(text(&out).contains(says), "{bad}: {}", text(&out));
    }
}

#[test]
fn gatekeeper_constraints_run_in_check() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "app.yaml",
        PCI_INPUT.split("---\n").nth(1).unwrap(),
    );
    let f = file.to_str().unwrap();
    let library = root().join("policies/gatekeeper/image-digests");
    let template = library.join("template.yaml");
    let constraint = library.join("samples/pinned-images/constraint.yaml");
    let out = check(
        &[
            "-f",
            f,
            "--constraints",
            template.to_str().unwrap(),
            "--constraints",
            constraint.to_str().unwrap(),
        ],
        None,
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("[constraints:K8sImageDigests/pinned-images]"),
        "{}",
        text(&out)
    );

    // A broken constraint set is refused with its location, exit 2.
    let broken = write(
        dir.path(),
        "broken.yaml",
        "apiVersion: templates.gatekeeper.sh/v1\nkind: ConstraintTemplate\nmetadata: {name: k8sbroken}\nspec:\n  crd: {spec: {names: {kind: K8sBroken}}}\n  targets:\n  - target: admission.k8s.gatekeeper.sh\n    rego: 'package x\n      violation[{\"msg\": m}] { m := }'\n",
    );
    let out = check(
        &["-f", f, "--constraints", broken.to_str().unwrap()],
        None,
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("broken.yaml"), "{}", text(&out));
}
