//! The container image: built with `scripts/build-image` (buildah, the
//! offline path, from the binary under test) and run with
//! `buildah run --isolation chroot`: `tollgate --version`, the webhook serving
//! a review on loopback with the built-in policy, `tollgate sidecar --check`
//! on an example policy; the image config (numeric non-root user, the binary
//! as entrypoint, OCI labels), no shell inside, and the SBOM listing the
//! crates of `Cargo.lock`. Also: `deploy/tollgate.yaml` is the chart rendered
//! by real Helm and up to date, and the chart, the injector and the image
//! agree on the image.
//!
//! Skipped, with a message, where buildah is not installed or cannot run
//! (it needs root for chroot isolation and vfs storage); `make test-deps`
//! installs it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support_webhook;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support_webhook::{binary, client_for, example_review, root, wait_for};

/// `buildah` with the storage this test owns (vfs, under a temporary
/// directory, so nothing is left in the machine's image store).
struct Buildah {
    storage: tempfile::TempDir,
}

impl Buildah {
    fn new() -> Option<Buildah> {
        if Command::new("buildah").arg("--version").output().is_err() {
            eprintln!(
                "SKIP: buildah is not installed (Debian: apt-get install buildah; `make test-deps`)"
            );
            return None;
        }
        // Chroot isolation and vfs storage need root here.
        let uid = Command::new("id").arg("-u").output().unwrap();
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            eprintln!("SKIP: buildah needs root for chroot isolation on this machine");
            return None;
        }
        let storage = tempfile::tempdir().unwrap();
        Some(Buildah { storage })
    }

    fn global(&self) -> String {
        let root = self.storage.path().join("root");
        let run = self.storage.path().join("run");
        format!(
            "--storage-driver vfs --root {} --runroot {}",
            root.display(),
            run.display()
        )
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new("buildah");
        cmd.args(self.global().split(' '));
        cmd.env("BUILDAH_ISOLATION", "chroot");
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = self.command().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "buildah {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn stdout(&self, args: &[&str]) -> String {
        String::from_utf8(self.run(args).stdout)
            .unwrap()
            .trim()
            .to_owned()
    }
}

/// The binary under test with its debug information removed (the image
/// build strips it again; this keeps the vfs copies small).
fn stripped_binary(dir: &Path) -> PathBuf {
    let out = dir.join("tollgate");
    let status = Command::new("objcopy")
        .args(["--strip-debug", binary()])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success(), "objcopy --strip-debug failed");
    out
}

fn build_image(buildah: &Buildah, work: &Path, image: &str) -> PathBuf {
    let binary = stripped_binary(work);
    let sbom = work.join("sbom.cdx.json");
    let out = Command::new(root().join("scripts/build-image"))
        .current_dir(root())
        .env("BUILDAH_ARGS", buildah.global())
        .args(["--offline", "--image", image, "--binary"])
        .arg(&binary)
        .arg("--sbom")
        .arg(&sbom)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/build-image failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    sbom
}

/// A `buildah run` in the background, in its own process group so the test
/// can stop it and everything it started.
struct Running {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Running {
    fn lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let pgid = self.child.id();
        // `--`: a negative pid is the process group, not an option.
        let _ = Command::new("kill")
            .args(["-s", "TERM", "--", &format!("-{pgid}")])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{pgid}")])
            .status();
        let _ = self.child.wait();
    }
}

fn lines_of<R: std::io::Read + Send + 'static>(stream: R) -> Arc<Mutex<Vec<String>>> {
    let sink = Arc::new(Mutex::new(Vec::new()));
    let writer = Arc::clone(&sink);
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            writer.lock().unwrap().push(line);
        }
    });
    sink
}

fn address_after(lines: &[String], prefix: &str) -> Option<std::net::SocketAddr> {
    lines.iter().find_map(|l| {
        let rest = l.trim().strip_prefix(prefix)?;
        let end = rest.find('/')?;
        rest.get(..end)?.parse().ok()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_runs_the_webhook_and_the_sidecar_as_a_numeric_non_root_user() {
    let Some(buildah) = Buildah::new() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let image = format!("localhost/tollgate:test-{}", std::process::id());
    let sbom = build_image(&buildah, work.path(), &image);

    // The image config: numeric, non-zero user; the binary is the
    // entrypoint; OCI labels.
    let config: Value =
        serde_json::from_str(&buildah.stdout(&["inspect", "--type", "image", &image])).unwrap();
    let oci = &config["OCIv1"]["config"];
    let user = oci["User"].as_str().unwrap();
    let (uid, gid) = user.split_once(':').unwrap();
    let (uid, gid): (u32, u32) = (uid.parse().unwrap(), gid.parse().unwrap());
    assert!(
        uid != 0 && gid != 0,
        "image user {user} must be numeric and non-root"
    );
    assert_eq!(
        oci["Entrypoint"],
        serde_json::json!(["/usr/local/bin/tollgate"])
    );
    let labels = &oci["Labels"];
    assert_eq!(
        labels["org.opencontainers.image.version"],
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(labels["org.opencontainers.image.licenses"], "Apache-2.0");
    assert!(
        labels["org.opencontainers.image.source"]
            .as_str()
            .unwrap()
            .starts_with("https://")
    );

    // No shell, no package manager: the runtime is the binary, glibc and
    // the CA bundle.
    let ctr = buildah.stdout(&["from", &image]);
    let mnt = PathBuf::from(buildah.stdout(&["mount", &ctr]));
    for shell in [
        "bin/sh",
        "usr/bin/sh",
        "bin/bash",
        "bin/busybox",
        "usr/bin/apt",
        "usr/bin/dpkg",
    ] {
        assert!(
            !mnt.join(shell).exists(),
            "{shell} must not be in the image"
        );
    }
    assert!(
        mnt.join("etc/ssl/certs/ca-certificates.crt").is_file(),
        "the CA bundle is missing"
    );
    let sbom_inside = std::fs::read(mnt.join("usr/share/doc/tollgate/sbom.cdx.json")).unwrap();
    assert_eq!(
        sbom_inside,
        std::fs::read(&sbom).unwrap(),
        "the image carries the SBOM the build wrote"
    );
    buildah.run(&["umount", &ctr]);

    // `tollgate --version`, as the image's user.
    let version = buildah.stdout(&[
        "run",
        "--isolation",
        "chroot",
        &ctr,
        "--",
        "/usr/local/bin/tollgate",
        "--version",
    ]);
    assert!(
        version.contains(env!("CARGO_PKG_VERSION")),
        "unexpected version output: {version}"
    );

    // `tollgate sidecar --check` on an example policy, copied in.
    let policy = root().join("examples/action-policies/kubernetes-agent.yaml");
    buildah.run(&["copy", &ctr, policy.to_str().unwrap(), "/tmp/policy.yaml"]);
    let out = buildah
        .command()
        .args([
            "run",
            "--isolation",
            "chroot",
            &ctr,
            "--",
            "tollgate",
            "sidecar",
            "--check",
            "--policy",
            "/tmp/policy.yaml",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sidecar --check failed in the image:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // The webhook with the embedded default, its state on a volume the
    // image's user can write, serving on loopback.
    let state = work.path().join("state");
    std::fs::create_dir(&state).unwrap();
    Command::new("chown")
        .arg(format!("{uid}:{gid}"))
        .arg(&state)
        .status()
        .unwrap();
    let mut cmd = Command::new("setsid");
    cmd.arg("buildah")
        .args(buildah.global().split(' '))
        .env("BUILDAH_ISOLATION", "chroot")
        .args(["run", "--isolation", "chroot", "--network", "host", "-v"])
        .arg(format!("{}:/state", state.display()))
        .args([
            &ctr,
            "--",
            "tollgate",
            "webhook",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--state-dir",
            "/state",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let stdout = lines_of(child.stdout.take().unwrap());
    let stderr = lines_of(child.stderr.take().unwrap());
    let running = Running {
        child,
        stdout,
        stderr,
    };
    let (https, metrics) = wait_for(
        Duration::from_secs(60),
        "the webhook in the image to serve",
        || {
            let lines = running.lines();
            Some((
                address_after(&lines, "https://")?,
                address_after(&lines, "http://")?,
            ))
        },
    );
    let _ = &running.stderr;
    wait_for(Duration::from_secs(20), "/readyz", || {
        (support_webhook::http_get(metrics, "/readyz").0 == 200).then_some(())
    });
    let ca = std::fs::read(state.join("ca.crt")).unwrap();
    let review = example_review("deployment-privileged.json");
    let response = client_for(&ca, &[b"h2", b"http/1.1"])
        .post(format!("https://{https}/validate"))
        .json(&review)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["response"]["uid"], review["request"]["uid"]);
    assert_eq!(
        body["response"]["allowed"], false,
        "the built-in policy refuses a privileged Deployment"
    );
    drop(running);
    buildah.run(&["rm", &ctr]);

    // The SBOM lists the crates of Cargo.lock the binary is built from.
    let sbom: Value = serde_json::from_slice(&std::fs::read(&sbom).unwrap()).unwrap();
    assert_eq!(sbom["bomFormat"], "CycloneDX");
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).unwrap();
    let locked: std::collections::HashSet<(String, String)> = lock
        .split("[[package]]")
        .filter_map(|block| {
            let field = |key: &str| {
                block.lines().find_map(|l| {
                    l.strip_prefix(&format!("{key} = \""))
                        .map(|v| v.trim_end_matches('"').to_owned())
                })
            };
            Some((field("name")?, field("version")?))
        })
        .collect();
    let mut components = Vec::new();
    collect_components(&sbom, &mut components);
    assert!(
        components.len() > 100,
        "the SBOM lists only {} components",
        components.len()
    );
    for (name, version) in &components {
        assert!(
            locked.contains(&(name.clone(), version.clone())),
            "SBOM component {name} {version} is not in Cargo.lock"
        );
    }
    for needed in [
        "hyper",
        "rustls",
        "kube-client",
        "regorus",
        "serde_json",
        "tokio",
        "k8s-openapi",
    ] {
        assert!(
            components.iter().any(|(n, _)| n == needed),
            "the SBOM does not list {needed}"
        );
    }
    // Test-only crates are not in the binary, so not in its SBOM.
    for test_only in ["criterion", "gtmpl", "tollgate-testkit"] {
        assert!(
            !components.iter().any(|(n, _)| n == test_only),
            "the SBOM lists the dev-only {test_only}"
        );
    }
}

fn collect_components(node: &Value, out: &mut Vec<(String, String)>) {
    if let Some(list) = node.get("components").and_then(Value::as_array) {
        for c in list {
            if let (Some(name), Some(version)) = (c["name"].as_str(), c["version"].as_str()) {
                out.push((name.to_owned(), version.to_owned()));
            }
            collect_components(c, out);
        }
    }
}

/// `deploy/tollgate.yaml` is what real Helm renders from the chart today.
#[test]
fn the_plain_manifests_are_the_chart_rendered_by_helm() {
    let helm = Command::new("python3")
        .args(["-c", "import helm_python"])
        .output()
        .unwrap();
    if !helm.status.success() {
        eprintln!("SKIP: helm-python-sdk is not installed (`make test-deps`)");
        return;
    }
    let out = Command::new(root().join("scripts/render-manifests"))
        .arg("--check")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The chart's default image, the injector's default sidecar image and the
/// release version are one: `ghcr.io/tollgate-dev/tollgate:<version>`.
#[test]
fn the_chart_the_injector_and_the_release_agree_on_the_image() {
    let version = env!("CARGO_PKG_VERSION");
    let chart = std::fs::read_to_string(root().join("charts/tollgate/Chart.yaml")).unwrap();
    assert!(
        chart
            .lines()
            .any(|l| l.trim() == format!("appVersion: \"{version}\"")),
        "Chart.yaml appVersion must be the crate version {version}"
    );
    let expected = format!("ghcr.io/tollgate-dev/tollgate:{version}");
    let manifests = std::fs::read_to_string(root().join("deploy/tollgate.yaml")).unwrap();
    let mut images = Vec::new();
    for doc in manifests.split("\n---\n") {
        let Ok(value) = yaml_serde::from_str::<Value>(doc) else {
            continue;
        };
        if value["kind"] == "Deployment" {
            for c in value["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
            {
                images.push(c["image"].as_str().unwrap().to_owned());
            }
        }
        if value["kind"] == "ConfigMap" {
            for text in value["data"]
                .as_object()
                .into_iter()
                .flat_map(|m| m.values())
            {
                for line in text.as_str().unwrap_or("").lines() {
                    if let Some(image) = line.trim().strip_prefix("image: ") {
                        images.push(image.trim_matches('"').to_owned());
                    }
                }
            }
        }
    }
    assert!(
        images.len() >= 2,
        "expected the webhook's and the injected sidecar's image, found {images:?}"
    );
    for image in &images {
        assert_eq!(image, &expected);
    }
    let injector = tollgate_webhook::InjectionConfig::default();
    assert_eq!(
        injector.image, expected,
        "the injector's default sidecar image"
    );
}

/// The release workflow is well-formed: it parses, every step either runs a
/// command or uses an action pinned to a version, the image job may request
/// an OIDC token (keyless signing) and push packages, and it signs, attests
/// the SBOM and checks the plain manifests. (No GitHub runner here: this is
/// a syntax and structure check, not a run.)
#[test]
fn the_release_workflow_is_well_formed() {
    let text = std::fs::read_to_string(root().join(".github/workflows/release.yml")).unwrap();
    let workflow: Value = yaml_serde::from_str(&text).unwrap();
    assert!(
        workflow["on"]["push"]["tags"].is_array(),
        "released from version tags"
    );
    let jobs = workflow["jobs"].as_object().unwrap();
    assert!(!jobs.is_empty());
    let mut runs = String::new();
    for (name, job) in jobs {
        assert!(job["runs-on"].is_string(), "job {name} has no runs-on");
        for step in job["steps"].as_array().unwrap() {
            let uses = step.get("uses").and_then(Value::as_str);
            let run = step.get("run").and_then(Value::as_str);
            assert!(
                uses.is_some() != run.is_some(),
                "a step of {name} must have exactly one of uses/run: {step}"
            );
            if let Some(action) = uses {
                let (_, version) = action
                    .split_once('@')
                    .unwrap_or_else(|| panic!("{action} is not pinned"));
                assert!(!version.is_empty());
            }
            if let Some(run) = run {
                runs.push_str(run);
                runs.push('\n');
            }
        }
    }
    let image = &workflow["jobs"]["image"];
    assert_eq!(image["permissions"]["id-token"], "write");
    assert_eq!(image["permissions"]["packages"], "write");
    for needed in [
        "cosign sign",
        "cosign attest",
        "cargo cyclonedx",
        "scripts/render-manifests --check",
        ".ci/run",
    ] {
        assert!(
            runs.contains(needed),
            "the release workflow does not run `{needed}`"
        );
    }
}
