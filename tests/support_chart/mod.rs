//! Renders the Helm chart `charts/tollgate` without a `helm` binary, the way
//! `helm template` does: values.yaml coalesced with the overrides, checked
//! against values.schema.json, every template under `templates/` executed
//! by a Go text/template engine (the `gtmpl` crate) with the built-in
//! objects (`.Values`, `.Release`, `.Chart`, `.Capabilities`, `.Template`)
//! and the Sprig/Helm functions the chart uses, `<no value>` removed, and
//! the output split into YAML documents.
//!
//! Only the subset of Helm's language the chart uses is implemented (the
//! chart's `_helpers.tpl` lists it). Known differences from Helm, none of
//! which the chart relies on:
//! - numbers print as written (Helm's float64 values print 1e6 and more in
//!   exponent form, `1e+06`): every number the chart prints raw is bounded
//!   below that by values.schema.json (tested), the rest go through
//!   `toYaml`;
//! - `range` over a map visits keys in no particular order (Go: sorted);
//!   the chart ranges over lists only;
//! - `and` / `or` evaluate every argument (Go ≥ 1.18 stops early).

// Test helpers: a panic here is a failed test, as in the tests themselves.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use base64::Engine as _;
use gtmpl::{Context, Func, FuncError, Template, Value};
use serde::Deserialize;
use serde_json::Value as Json;

/// The chart's directory.
pub fn chart_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("charts/tollgate")
}

/// The release being rendered (`helm template NAME --namespace NS`).
#[derive(Debug, Clone)]
pub struct Release {
    /// `.Release.Name`.
    pub name: String,
    /// `.Release.Namespace`.
    pub namespace: String,
}

impl Default for Release {
    fn default() -> Self {
        Release {
            name: "tollgate".into(),
            namespace: "tollgate".into(),
        }
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
    /// Every manifest template, rendered (NOTES.txt excluded).
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

/// Why a render failed: a schema violation or a template error (`required`,
/// `fail`, a missing value...), with the file it happened in.
#[derive(Debug, Clone)]
pub struct RenderError(pub String);

impl std::fmt::Display for RenderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Renders the chart for `release` with `overrides` (each like a `-f
/// values.yaml`, applied in order) on top of the chart's values.yaml.
pub fn render(release: &Release, overrides: &[Json]) -> Result<Output, RenderError> {
    let dir = chart_dir();
    let mut values = read_yaml(&dir.join("values.yaml"));
    for o in overrides {
        coalesce(&mut values, o);
    }
    check_schema(&dir, &values)?;
    let chart = chart_object(&read_yaml(&dir.join("Chart.yaml")));
    let mut files: Vec<(String, String)> = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir.join("templates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        files.push((
            format!("tollgate/templates/{name}"),
            std::fs::read_to_string(&path).unwrap(),
        ));
    }
    // Helm makes every `define` of every file visible to every template;
    // the chart keeps its named templates in `_*.tpl` files.
    let partials: Vec<(String, String)> = files
        .iter()
        .filter(|(name, _)| base(name).starts_with('_'))
        .cloned()
        .collect();
    PARTIALS.with(|p| {
        let mut p = p.borrow_mut();
        if *p != partials {
            *p = partials.clone();
            INCLUDES.with(|i| i.borrow_mut().clear());
        }
    });

    let mut top = json_object(&[
        ("Values", values.clone()),
        (
            "Release",
            serde_json::json!({
                "Name": release.name,
                "Namespace": release.namespace,
                "Service": "Helm",
                "IsInstall": true,
                "IsUpgrade": false,
                "Revision": 1,
            }),
        ),
        ("Chart", chart),
        (
            "Capabilities",
            serde_json::json!({
                "KubeVersion": {"Version": "v1.37.0", "Major": "1", "Minor": "37", "GitVersion": "v1.37.0"},
                "HelmVersion": {"Version": "v3.19.0"},
            }),
        ),
    ]);
    let mut out = Output {
        files: Vec::new(),
        notes: String::new(),
        values,
    };
    // One template set holds every file (Helm's defines are global); each
    // manifest is executed by naming its tree.
    let mut template = new_template("");
    for (name, text) in &files {
        template
            .add_template(name.clone(), text.clone())
            .map_err(|e| RenderError(format!("{name}: parse error: {e}")))?;
    }
    for (name, _) in &files {
        if base(name).starts_with('_') {
            continue;
        }
        top["Template"] = serde_json::json!({"Name": name, "BasePath": "tollgate/templates"});
        template.name = name.clone();
        let rendered = template
            .render(&Context::from(to_value(&top)))
            .map_err(|e| RenderError(format!("{name}: {e}")))?
            .replace("<no value>", "");
        if base(name) == "NOTES.txt" {
            out.notes = rendered;
        } else {
            out.files.push(Rendered {
                file: name.clone(),
                text: rendered,
            });
        }
    }
    Ok(out)
}

/// Renders one template text against `data` (no named templates).
pub fn render_text(text: &str, data: &Json) -> Result<String, String> {
    let mut template = new_template("text");
    template.parse(text).map_err(|e| e.to_string())?;
    template
        .render(&Context::from(to_value(data)))
        .map(|s| s.replace("<no value>", ""))
        .map_err(|e| e.to_string())
}

/// Renders with the default release.
pub fn render_default(overrides: &[Json]) -> Output {
    render(&Release::default(), overrides).unwrap_or_else(|e| panic!("render failed: {e}"))
}

fn base(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

fn read_yaml(path: &Path) -> Json {
    let text = std::fs::read_to_string(path).unwrap();
    yaml_serde::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn json_object(entries: &[(&str, Json)]) -> Json {
    let mut map = serde_json::Map::new();
    for (k, v) in entries {
        map.insert((*k).to_owned(), v.clone());
    }
    Json::Object(map)
}

/// `.Chart`: Chart.yaml's fields with Helm's capitalised names.
fn chart_object(chart: &Json) -> Json {
    let mut map = serde_json::Map::new();
    for (k, v) in chart.as_object().unwrap() {
        let mut name = k.clone();
        if let Some(first) = name.get(..1) {
            name = format!("{}{}", first.to_uppercase(), &k[1..]);
        }
        // Helm's Metadata calls these APIVersion and KubeVersion.
        if k == "apiVersion" {
            name = "APIVersion".into();
        }
        map.insert(name, v.clone());
    }
    Json::Object(map)
}

/// Helm's coalescing of user values into the chart's: maps merge key by
/// key, anything else replaces, and `null` deletes the chart's key.
pub fn coalesce(base: &mut Json, over: &Json) {
    match (base, over) {
        (Json::Object(b), Json::Object(o)) => {
            for (k, v) in o {
                if v.is_null() {
                    b.remove(k);
                } else if let Some(existing) = b.get_mut(k)
                    && existing.is_object()
                    && v.is_object()
                {
                    coalesce(existing, v);
                } else {
                    b.insert(k.clone(), v.clone());
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// `helm install` refuses values that break values.schema.json.
fn check_schema(dir: &Path, values: &Json) -> Result<(), RenderError> {
    static VALIDATOR: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    let validator = VALIDATOR.get_or_init(|| {
        let schema: Json =
            serde_json::from_str(&std::fs::read_to_string(dir.join("values.schema.json")).unwrap())
                .unwrap();
        jsonschema::validator_for(&schema).unwrap()
    });
    let errors: Vec<String> = validator
        .iter_errors(values)
        .map(|e| format!("at '{}': {e}", e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(RenderError(format!(
            "values don't meet the specifications of the schema(s): {}",
            errors.join("; ")
        )))
    }
}

// ---- Values between JSON and the template engine ----

/// JSON into a template value. Objects become maps (a missing key reads as
/// no value, as with Go maps); integers stay integers.
pub fn to_value(json: &Json) -> Value {
    match json {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => {
            if let Some(u) = n.as_u64() {
                Value::from(u)
            } else if let Some(i) = n.as_i64() {
                Value::from(i)
            } else {
                Value::from(n.as_f64().unwrap())
            }
        }
        Json::String(s) => Value::String(s.clone()),
        Json::Array(a) => Value::Array(a.iter().map(to_value).collect()),
        Json::Object(o) => Value::Map(
            o.iter()
                .map(|(k, v)| (k.clone(), to_value(v)))
                .collect::<HashMap<_, _>>(),
        ),
    }
}

/// A template value as JSON, map keys sorted (as Go's YAML encoder does).
pub fn to_json(value: &Value) -> Json {
    match value {
        Value::NoValue | Value::Nil | Value::Function(_) => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::String(s) => Json::String(s.clone()),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Json::from(u)
            } else if let Some(i) = n.as_i64() {
                Json::from(i)
            } else {
                n.as_f64().map(Json::from).unwrap_or(Json::Null)
            }
        }
        Value::Array(a) => Json::Array(a.iter().map(to_json).collect()),
        Value::Map(m) | Value::Object(m) => {
            let sorted: BTreeMap<&String, &Value> = m.iter().collect();
            let mut map = serde_json::Map::new();
            for (k, v) in sorted {
                map.insert(k.clone(), to_json(v));
            }
            Json::Object(map)
        }
    }
}

/// Go's `fmt.Sprint` of a value, for string functions.
fn strval(value: &Value) -> String {
    match value {
        Value::NoValue | Value::Nil => String::new(),
        other => other.to_string(),
    }
}

/// Sprig's notion of empty: nil, false, 0, "", and empty lists and maps.
fn is_empty(value: &Value) -> bool {
    match value {
        Value::NoValue | Value::Nil => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Map(m) | Value::Object(m) => m.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0) || n.as_u64() == Some(0),
        Value::Function(_) => false,
    }
}

// ---- The template set and the functions ----

thread_local! {
    /// The `_*.tpl` files of the chart being rendered: `include` executes a
    /// named template from them (functions are plain `fn` pointers, so the
    /// set is reached through the thread).
    static PARTIALS: RefCell<Vec<(String, String)>> = const { RefCell::new(Vec::new()) };
    /// Named templates ready to execute, parsed once per thread.
    static INCLUDES: RefCell<HashMap<String, Rc<Template>>> = RefCell::new(HashMap::new());
    /// Nesting of `include`, bounded like Helm's (recursion is an error).
    static INCLUDE_DEPTH: RefCell<usize> = const { RefCell::new(0) };
}

const MAX_INCLUDE_DEPTH: usize = 1000;

/// The functions beyond Go's built-ins (`and`, `or`, `not`, `eq`, `ne`,
/// `len`, `index`, `printf`, `print`).
const FUNCS: &[(&str, Func)] = &[
    ("include", include),
    ("required", required),
    ("fail", fail),
    ("default", default),
    ("empty", empty),
    ("quote", quote),
    ("toYaml", to_yaml),
    ("nindent", nindent),
    ("indent", indent),
    ("trunc", trunc),
    ("trimSuffix", trim_suffix),
    ("contains", contains),
    ("hasKey", has_key),
    ("dict", dict),
    ("has", has),
    ("int", int),
    ("b64enc", b64enc),
    ("sha256sum", sha256sum),
];

fn new_template(name: &str) -> Template {
    let mut t = Template::with_name(name);
    t.add_funcs(FUNCS);
    t
}

fn arg<'a>(args: &'a [Value], i: usize, func: &str, n: usize) -> Result<&'a Value, FuncError> {
    if args.len() != n {
        return Err(FuncError::ExactlyXArgs(func.into(), n));
    }
    Ok(&args[i])
}

fn int_arg(value: &Value, func: &str) -> Result<i64, FuncError> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .ok_or_else(|| FuncError::Generic(format!("{func}: not an integer: {n}"))),
        other => Err(FuncError::Generic(format!(
            "{func}: expected an integer, got {other}"
        ))),
    }
}

fn include(args: &[Value]) -> Result<Value, FuncError> {
    let name = match arg(args, 0, "include", 2)? {
        Value::String(s) => s.clone(),
        other => {
            return Err(FuncError::Generic(format!(
                "include: template name must be a string, got {other}"
            )));
        }
    };
    let depth = INCLUDE_DEPTH.with(|d| {
        *d.borrow_mut() += 1;
        *d.borrow()
    });
    let result = (|| {
        if depth > MAX_INCLUDE_DEPTH {
            return Err(FuncError::Generic(format!(
                "include: rendering template has a nested reference name: {name}"
            )));
        }
        let template = match INCLUDES.with(|i| i.borrow().get(&name).cloned()) {
            Some(t) => t,
            None => {
                let mut template = new_template(&name);
                for (pname, ptext) in PARTIALS.with(|p| p.borrow().clone()) {
                    template
                        .add_template(pname.clone(), ptext)
                        .map_err(|e| FuncError::Generic(format!("{pname}: {e}")))?;
                }
                if !template.tree_set.contains_key(&name) {
                    return Err(FuncError::Generic(format!(
                        "include: no template {name:?} associated with template"
                    )));
                }
                let template = Rc::new(template);
                INCLUDES.with(|i| i.borrow_mut().insert(name.clone(), template.clone()));
                template
            }
        };
        template
            .render(&Context::from(args[1].clone()))
            .map(|s| Value::String(s.replace("<no value>", "")))
            .map_err(|e| FuncError::Generic(format!("error calling include: template {name}: {e}")))
    })();
    INCLUDE_DEPTH.with(|d| *d.borrow_mut() -= 1);
    result
}

fn required(args: &[Value]) -> Result<Value, FuncError> {
    let msg = strval(arg(args, 0, "required", 2)?);
    let value = &args[1];
    match value {
        Value::NoValue | Value::Nil => Err(FuncError::Generic(msg)),
        Value::String(s) if s.is_empty() => Err(FuncError::Generic(msg)),
        v => Ok(v.clone()),
    }
}

fn fail(args: &[Value]) -> Result<Value, FuncError> {
    Err(FuncError::Generic(strval(arg(args, 0, "fail", 1)?)))
}

fn default(args: &[Value]) -> Result<Value, FuncError> {
    // `default D` with a missing piped value gets one argument.
    match args {
        [d] => Ok(d.clone()),
        [d, given] => Ok(if is_empty(given) {
            d.clone()
        } else {
            given.clone()
        }),
        _ => Err(FuncError::ExactlyXArgs("default".into(), 2)),
    }
}

fn empty(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::Bool(is_empty(arg(args, 0, "empty", 1)?)))
}

/// Go's `strconv.Quote` for the strings a chart quotes.
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn quote(args: &[Value]) -> Result<Value, FuncError> {
    let parts: Vec<String> = args
        .iter()
        .filter(|v| !matches!(v, Value::NoValue | Value::Nil))
        .map(|v| go_quote(&strval(v)))
        .collect();
    Ok(Value::String(parts.join(" ")))
}

fn to_yaml(args: &[Value]) -> Result<Value, FuncError> {
    let json = to_json(arg(args, 0, "toYaml", 1)?);
    let text = yaml_serde::to_string(&json).map_err(|e| FuncError::Generic(e.to_string()))?;
    Ok(Value::String(text.trim_end_matches('\n').to_owned()))
}

fn pad(n: i64, text: &str) -> String {
    let pad = " ".repeat(usize::try_from(n).unwrap_or(0));
    format!("{pad}{}", text.replace('\n', &format!("\n{pad}")))
}

fn indent(args: &[Value]) -> Result<Value, FuncError> {
    let n = int_arg(arg(args, 0, "indent", 2)?, "indent")?;
    Ok(Value::String(pad(n, &strval(&args[1]))))
}

fn nindent(args: &[Value]) -> Result<Value, FuncError> {
    let n = int_arg(arg(args, 0, "nindent", 2)?, "nindent")?;
    Ok(Value::String(format!("\n{}", pad(n, &strval(&args[1])))))
}

fn trunc(args: &[Value]) -> Result<Value, FuncError> {
    let n = int_arg(arg(args, 0, "trunc", 2)?, "trunc")?;
    let s: Vec<char> = strval(&args[1]).chars().collect();
    let len = i64::try_from(s.len()).unwrap();
    let out: String = if n >= 0 {
        s.iter()
            .take(usize::try_from(n.min(len)).unwrap())
            .collect()
    } else {
        s.iter()
            .skip(usize::try_from((len + n).max(0)).unwrap())
            .collect()
    };
    Ok(Value::String(out))
}

fn trim_suffix(args: &[Value]) -> Result<Value, FuncError> {
    let suffix = strval(arg(args, 0, "trimSuffix", 2)?);
    let s = strval(&args[1]);
    Ok(Value::String(
        s.strip_suffix(suffix.as_str()).unwrap_or(&s).to_owned(),
    ))
}

fn contains(args: &[Value]) -> Result<Value, FuncError> {
    let needle = strval(arg(args, 0, "contains", 2)?);
    Ok(Value::Bool(strval(&args[1]).contains(&needle)))
}

fn has_key(args: &[Value]) -> Result<Value, FuncError> {
    let map = arg(args, 0, "hasKey", 2)?;
    let key = strval(&args[1]);
    match map {
        Value::Map(m) | Value::Object(m) => Ok(Value::Bool(m.contains_key(&key))),
        other => Err(FuncError::Generic(format!(
            "hasKey: expected a map, got {other}"
        ))),
    }
}

fn dict(args: &[Value]) -> Result<Value, FuncError> {
    let mut map = HashMap::new();
    for pair in args.chunks(2) {
        let key = strval(&pair[0]);
        let value = pair.get(1).cloned().unwrap_or(Value::String(String::new()));
        map.insert(key, value);
    }
    Ok(Value::Map(map))
}

fn has(args: &[Value]) -> Result<Value, FuncError> {
    let needle = arg(args, 0, "has", 2)?;
    match &args[1] {
        Value::Array(items) => Ok(Value::Bool(items.contains(needle))),
        Value::NoValue | Value::Nil => Ok(Value::Bool(false)),
        other => Err(FuncError::Generic(format!(
            "has: expected a list, got {other}"
        ))),
    }
}

/// Sprig's `int`. Non-negative results are unsigned, like the template
/// engine's integer literals, so `gt (int .Values.n) 1` compares like with
/// like (Helm's values are float64: comparing one with a literal needs `int`).
fn int(args: &[Value]) -> Result<Value, FuncError> {
    let n = match arg(args, 0, "int", 1)? {
        Value::String(s) => s.trim().parse::<i64>().unwrap_or(0),
        Value::NoValue | Value::Nil => 0,
        Value::Bool(b) => i64::from(*b),
        other => int_arg(other, "int")?,
    };
    Ok(u64::try_from(n).map(Value::from).unwrap_or(Value::from(n)))
}

fn b64enc(args: &[Value]) -> Result<Value, FuncError> {
    let s = strval(arg(args, 0, "b64enc", 1)?);
    Ok(Value::String(
        base64::engine::general_purpose::STANDARD.encode(s.as_bytes()),
    ))
}

fn sha256sum(args: &[Value]) -> Result<Value, FuncError> {
    let s = strval(arg(args, 0, "sha256sum", 1)?);
    let digest = ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    Ok(Value::String(
        digest.as_ref().iter().map(|b| format!("{b:02x}")).collect(),
    ))
}
