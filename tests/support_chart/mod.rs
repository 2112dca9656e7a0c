//! Renders and lints the Helm chart `charts/tollgate` with real Helm: the
//! `helm-python-sdk` package (import `helm_python`) binds Helm's Go SDK, and
//! `tests/python/helm_chart.py` drives it with JSON on stdin and stdout. No
//! `helm` binary and no Go toolchain are needed; when the package is not
//! installed, [`helm_available`] says so and the tests skip.

// Test helpers: a panic here is a failed test, as in the tests themselves.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde::Deserialize;
use serde_json::{Value as Json, json};

/// The chart's directory.
pub fn chart_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("charts/tollgate")
}

fn helper() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/helm_chart.py")
}

/// Whether real Helm (the `helm_python` module) can be imported; prints why
/// the calling test skips when it cannot.
pub fn helm_available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let available = *AVAILABLE.get_or_init(|| {
        Command::new("python3")
            .args(["-c", "import helm_python"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if !available {
        eprintln!(
            "SKIP: helm-python-sdk is not installed (`make test-deps` installs tests/requirements.txt)"
        );
    }
    available
}

/// Returns from the calling test when real Helm is not installed.
#[macro_export]
macro_rules! require_helm {
    () => {
        if !support_chart::helm_available() {
            return;
        }
    };
}

/// The release being rendered (`helm install NAME --namespace NS`, or
/// `helm upgrade` when `upgrade` is set).
#[derive(Debug, Clone)]
pub struct Release {
    /// `.Release.Name`.
    pub name: String,
    /// `.Release.Namespace`.
    pub namespace: String,
    /// `.Release.IsUpgrade` (otherwise `.Release.IsInstall`).
    pub upgrade: bool,
}

impl Release {
    /// An install of `name` into `namespace`.
    pub fn new(name: &str, namespace: &str) -> Self {
        Release {
            name: name.into(),
            namespace: namespace.into(),
            upgrade: false,
        }
    }

    /// The same release, upgraded.
    pub fn upgraded(mut self) -> Self {
        self.upgrade = true;
        self
    }
}

impl Default for Release {
    fn default() -> Self {
        Release::new("tollgate", "tollgate")
    }
}

/// One rendered template file.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// `tollgate/templates/NAME`.
    pub file: String,
    /// The file's rendered text.
    pub text: String,
}

/// The output of a render.
#[derive(Debug, Clone)]
pub struct Output {
    /// Every manifest template, rendered (NOTES.txt excluded), by name.
    pub files: Vec<Rendered>,
    /// NOTES.txt, rendered.
    pub notes: String,
    /// The coalesced values the templates saw.
    pub values: Json,
}

impl Output {
    /// Every non-empty YAML document of every manifest, as JSON.
    pub fn documents(&self) -> Vec<Json> {
        let mut docs = Vec::new();
        for file in &self.files {
            for doc in yaml_serde::Deserializer::from_str(&file.text) {
                let value = Json::deserialize(doc)
                    .unwrap_or_else(|e| panic!("{}: invalid YAML: {e}\n{}", file.file, file.text));
                if !value.is_null() {
                    docs.push(value);
                }
            }
        }
        docs
    }

    /// The documents of one kind.
    pub fn of_kind(&self, kind: &str) -> Vec<Json> {
        self.documents()
            .into_iter()
            .filter(|d| d["kind"] == kind)
            .collect()
    }

    /// The one document of a kind.
    pub fn one(&self, kind: &str) -> Json {
        let mut docs = self.of_kind(kind);
        assert_eq!(docs.len(), 1, "expected exactly one {kind}");
        docs.remove(0)
    }
}

/// Why Helm refused to render: a schema violation or a template error
/// (`required`, `fail`, a missing value...), as Helm words it.
#[derive(Debug, Clone)]
pub struct RenderError(pub String);

impl std::fmt::Display for RenderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One render: a release, `-f` value overrides in order, then `--set`
/// expressions in order.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The release.
    pub release: Release,
    /// Like repeated `-f values.yaml`.
    pub values: Vec<Json>,
    /// Like repeated `--set a.b=c`.
    pub set: Vec<String>,
}

fn call(request: &Json) -> Json {
    let mut child = Command::new("python3")
        .arg(helper())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "helm_chart.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Renders every request with real Helm, in one helper process.
pub fn render_all(requests: &[Request]) -> Vec<Result<Output, RenderError>> {
    let body: Vec<Json> = requests
        .iter()
        .map(|r| {
            json!({
                "name": r.release.name,
                "namespace": r.release.namespace,
                "upgrade": r.release.upgrade,
                "values": r.values,
                "set": r.set,
            })
        })
        .collect();
    let answer = call(&json!({
        "op": "render",
        "chart": chart_dir(),
        "requests": body,
    }));
    let answers = answer.as_array().unwrap();
    assert_eq!(answers.len(), requests.len());
    answers.iter().map(output).collect()
}

fn output(answer: &Json) -> Result<Output, RenderError> {
    if let Some(error) = answer.get("error") {
        return Err(RenderError(error.as_str().unwrap_or_default().to_owned()));
    }
    let files: BTreeMap<String, String> = serde_json::from_value(answer["files"].clone()).unwrap();
    let mut notes = String::new();
    let mut rendered = Vec::new();
    for (file, text) in files {
        if file.ends_with("NOTES.txt") {
            notes = text;
        } else {
            rendered.push(Rendered { file, text });
        }
    }
    Ok(Output {
        files: rendered,
        notes,
        values: answer["values"].clone(),
    })
}

/// Renders the chart for `release` with `overrides` (each like a `-f
/// values.yaml`, applied in order) on top of the chart's values.yaml.
pub fn render(release: &Release, overrides: &[Json]) -> Result<Output, RenderError> {
    render_all(&[Request {
        release: release.clone(),
        values: overrides.to_vec(),
        set: Vec::new(),
    }])
    .remove(0)
}

/// Renders the chart with `--set` expressions.
pub fn render_set(release: &Release, set: &[&str]) -> Result<Output, RenderError> {
    render_all(&[Request {
        release: release.clone(),
        values: Vec::new(),
        set: set.iter().map(|s| (*s).to_owned()).collect(),
    }])
    .remove(0)
}

/// Renders with the default release.
pub fn render_default(overrides: &[Json]) -> Output {
    render(&Release::default(), overrides).unwrap_or_else(|e| panic!("render failed: {e}"))
}

/// One finding of `helm lint`.
#[derive(Debug, Clone, Deserialize)]
pub struct LintMessage {
    /// 1 info, 2 warning, 3 error.
    pub severity: u8,
    /// The file it is about.
    pub path: String,
    /// What is wrong.
    pub error: String,
}

/// The findings of `helm lint --strict` with `overrides`.
pub fn lint_strict(overrides: &[Json]) -> Result<Vec<LintMessage>, RenderError> {
    let answer = call(&json!({
        "op": "lint",
        "chart": chart_dir(),
        "values": overrides,
        "kube_version": "1.30.0",
    }));
    if let Some(error) = answer.get("error") {
        return Err(RenderError(error.as_str().unwrap_or_default().to_owned()));
    }
    Ok(serde_json::from_value(answer["messages"].clone()).unwrap())
}
