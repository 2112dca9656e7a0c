//! Golden cases for the ownership rules and the compliance packs: one YAML
//! file per case under `tests/golden/**`, each expanded into its own test
//! (a small harness with libtest's output, name filters, `--exact`,
//! `--skip` and `--list`), plus coverage tests over the catalogue and the
//! Rego packs.
//!
//! A case holds:
//!
//! ```yaml
//! description: what it shows
//! namespace: {name: payments, labels: {...}, annotations: {...}}  # optional
//! config: {compliance: {...}, ownership: {...}}   # merged over BASE_CONFIG
//! podSecurity: restricted        # optional: also run Pod Security (latest)
//! sets: [compliance]             # default [ownership, compliance]
//! mutate: true                   # apply the ownership mutation first
//! check: [image-pinned]          # compare only these rules (default: all)
//! object: {...}                  # the Kubernetes object
//! expect:
//!   patch: [...]                 # the mutation's JSON Patch, exactly
//!   evaluated: [...]             # the rules that judged it, exactly
//!   violations:                  # exactly these, in any order
//!   - rule: image-pinned
//!     path: spec.template.spec.containers[0].image   # optional
//!     message: substring                             # optional
//!     controls: [SOC2 CC8.1, PCI-DSS 6.5.1]          # optional, exactly
//!     action: deny                                   # optional
//! ```
//!
//! Every catalogue rule must have a failing case, and every rule the Rego
//! packs report must be in the catalogue.

// Test code: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Deserialize;
use serde_json::Value;
use tollgate_policies::compliance::{Catalogue, ComplianceConfig, Packs};
use tollgate_policies::ownership::{self, OwnershipConfig};
use tollgate_policies::pss::check_pod;
use tollgate_policies::{Level, NamespaceInfo, PolicySet, Version, Violation, Workload};

/// The configuration every case starts from; a case's `config` is merged
/// over it (objects key by key, everything else replaced).
const BASE_CONFIG: &str = r#"
compliance:
  parameters:
    allowedRegistries: [ghcr.io/acme, registry.acme.example]
    allowedRegions: [eu-west-1, eu-central-1]
    allowedStorageClasses: [encrypted-gp3, encrypted-premium]
ownership: {}
"#;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    description: String,
    #[serde(default)]
    namespace: Option<NamespaceInfo>,
    #[serde(default)]
    config: Option<Value>,
    #[serde(default, rename = "podSecurity")]
    pod_security: Option<String>,
    #[serde(default)]
    sets: Option<Vec<PolicySet>>,
    #[serde(default)]
    mutate: bool,
    #[serde(default)]
    check: Option<Vec<String>>,
    object: Value,
    expect: Expect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    #[serde(default)]
    patch: Option<Value>,
    #[serde(default)]
    evaluated: Option<Vec<String>>,
    violations: Vec<Expected>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    rule: String,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    controls: Option<Vec<String>>,
    #[serde(default)]
    action: Option<String>,
}

/// What a case produced.
struct Outcome {
    violations: Vec<Violation>,
    evaluated: Vec<String>,
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn case_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().and_then(|e| e.to_str()) == Some("yaml") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&golden_dir(), &mut out);
    out
}

fn load(path: &Path) -> Case {
    let text = std::fs::read_to_string(path).unwrap();
    yaml_serde::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o.clone(),
    }
}

fn configs(case: &Case) -> (OwnershipConfig, ComplianceConfig) {
    let mut config: Value = yaml_serde::from_str(BASE_CONFIG).unwrap();
    if let Some(over) = &case.config {
        merge(&mut config, over);
    }
    let ownership: OwnershipConfig = serde_json::from_value(config["ownership"].clone())
        .unwrap_or_else(|e| panic!("ownership config: {e}"));
    ownership.validate().unwrap();
    let compliance: ComplianceConfig = serde_json::from_value(config["compliance"].clone())
        .unwrap_or_else(|e| panic!("compliance config: {e}"));
    compliance.validate(Catalogue::builtin().unwrap()).unwrap();
    (ownership, compliance)
}

/// Runs a case's policy sets; returns what they found.
fn evaluate(case: &Case) -> Result<Outcome, String> {
    let (own_cfg, comp_cfg) = configs(case);
    let sets = case
        .sets
        .clone()
        .unwrap_or_else(|| vec![PolicySet::Ownership, PolicySet::Compliance]);
    let ns = case.namespace.as_ref();
    let mut object = case.object.clone();
    let mut errors = String::new();

    if case.mutate {
        let workload = Workload::from_object(&object)
            .unwrap()
            .expect("mutate needs a workload");
        let patch = ownership::inherit(&workload, ns, &own_cfg);
        let patch_json = serde_json::to_value(&patch).unwrap();
        if let Some(expected) = &case.expect.patch
            && *expected != patch_json
        {
            let _ = writeln!(
                errors,
                "patch differs:\n  expected: {expected}\n  actual:   {patch_json}"
            );
        }
        json_patch::patch(&mut object, &patch).map_err(|e| format!("patch does not apply: {e}"))?;
        let again = Workload::from_object(&object).unwrap().unwrap();
        let second = ownership::inherit(&again, ns, &own_cfg);
        if !second.is_empty() {
            let _ = writeln!(
                errors,
                "mutation is not idempotent: second pass gives {}",
                serde_json::to_string(&second).unwrap()
            );
        }
    } else if case.expect.patch.is_some() {
        return Err("expect.patch needs mutate: true".into());
    }

    let mut violations = Vec::new();
    let mut evaluated = Vec::new();
    let workload = Workload::from_object(&object).map_err(|e| e.to_string())?;
    let catalogue = Catalogue::builtin().unwrap();
    if let (Some(level), Some(w)) = (&case.pod_security, &workload) {
        let level: Level = level.parse().map_err(|e| format!("{e}"))?;
        for v in check_pod(level, Version::Latest, &w.pod_metadata, &w.spec) {
            violations.push(Violation {
                policy: PolicySet::PodSecurity,
                rule: v.check.to_owned(),
                message: v.message,
                path: Some(format!("{}{}", w.kind.template_path(), v.path)),
                container: v.container,
                controls: catalogue.pod_security_controls(v.level),
                action: tollgate_policies::EnforcementAction::Deny,
            });
        }
    }
    if sets.contains(&PolicySet::Ownership)
        && let Some(w) = &workload
    {
        let e = ownership::evaluate(w, ns, &own_cfg);
        violations.extend(e.violations);
        evaluated.extend(e.evaluated);
    }
    if sets.contains(&PolicySet::Compliance) {
        let e = Packs::builtin()
            .unwrap()
            .evaluate(&object, ns, &comp_cfg)
            .map_err(|e| e.to_string())?;
        violations.extend(e.violations);
        evaluated.extend(e.evaluated);
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Outcome {
        violations,
        evaluated,
    })
}

fn describe(violations: &[&Violation]) -> String {
    let mut s = String::new();
    for v in violations {
        let _ = write!(
            s,
            "\n    - [{}:{}] {} ({:?}) {}  controls: {}",
            v.policy.as_str(),
            v.rule,
            v.path.as_deref().unwrap_or("-"),
            v.action,
            v.message,
            v.controls
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    s
}

fn matches(e: &Expected, v: &Violation) -> bool {
    e.rule == v.rule
        && e.path.as_ref().is_none_or(|p| Some(p) == v.path.as_ref())
        && e.message.as_ref().is_none_or(|m| v.message.contains(m))
        && e.action
            .as_ref()
            .is_none_or(|a| serde_json::to_value(v.action).unwrap() == Value::String(a.clone()))
        && e.controls.as_ref().is_none_or(|c| {
            let want: BTreeSet<&str> = c.iter().map(String::as_str).collect();
            let have: Vec<String> = v.controls.iter().map(ToString::to_string).collect();
            let have: BTreeSet<&str> = have.iter().map(String::as_str).collect();
            want == have
        })
}

fn run_case(path: &Path) -> Result<(), String> {
    let case = load(path);
    if case.description.trim().is_empty() {
        return Err("the case needs a description".into());
    }
    let outcome = evaluate(&case)?;
    let actual: Vec<&Violation> = outcome
        .violations
        .iter()
        .filter(|v| case.check.as_ref().is_none_or(|c| c.contains(&v.rule)))
        .collect();
    let mut unmatched: Vec<&Violation> = actual.clone();
    let mut missing = Vec::new();
    for e in &case.expect.violations {
        match unmatched.iter().position(|v| matches(e, v)) {
            Some(i) => {
                unmatched.remove(i);
            }
            None => missing.push(e),
        }
    }
    let mut err = String::new();
    if !missing.is_empty() || !unmatched.is_empty() {
        let _ = write!(err, "violations differ");
        for m in &missing {
            let _ = write!(err, "\n  expected but not found: {m:?}");
        }
        if !unmatched.is_empty() {
            let _ = write!(err, "\n  found but not expected:{}", describe(&unmatched));
        }
        let _ = write!(err, "\n  all found:{}", describe(&actual));
    }
    if let Some(expected) = &case.expect.evaluated {
        let got: Vec<&String> = outcome
            .evaluated
            .iter()
            .filter(|r| case.check.as_ref().is_none_or(|c| c.contains(r)))
            .collect();
        let want: Vec<&String> = expected.iter().collect();
        if got != want {
            let _ = write!(
                err,
                "\n  evaluated rules differ:\n    expected: {want:?}\n    actual:   {got:?}"
            );
        }
    }
    if err.is_empty() { Ok(()) } else { Err(err) }
}

/// Every catalogue rule has at least one golden case where it fails.
fn every_catalogue_rule_fails_somewhere() -> Result<(), String> {
    let catalogue = Catalogue::builtin().unwrap();
    let mut failed: BTreeSet<String> = BTreeSet::new();
    for path in case_files() {
        let case = load(&path);
        let Ok(outcome) = evaluate(&case) else {
            continue;
        };
        for v in outcome.violations {
            if v.policy == PolicySet::PodSecurity {
                let level = tollgate_policies::pss::registry()
                    .iter()
                    .find(|c| c.id == v.rule)
                    .map(|c| c.level);
                match level {
                    Some(Level::Baseline) => failed.insert("pod-security-baseline".into()),
                    Some(_) => failed.insert("pod-security-restricted".into()),
                    None => false,
                };
            } else {
                failed.insert(v.rule);
            }
        }
    }
    let missing: Vec<&str> = catalogue
        .rules()
        .iter()
        .map(|r| r.id.as_str())
        .filter(|id| !failed.contains(*id))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "catalogue rules without a failing golden case: {missing:?}"
        ))
    }
}

/// Every rule id the Rego packs can report is a compliance rule of the
/// catalogue, and every compliance rule of the catalogue (but the
/// namespace label check, which is native) is implemented in Rego.
fn rego_rules_match_the_catalogue() -> Result<(), String> {
    let catalogue = Catalogue::builtin().unwrap();
    let pattern = regex::Regex::new(r#""rule":\s*"([a-z0-9-]+)""#).unwrap();
    let gated = regex::Regex::new(r#"input\.rules\["([a-z0-9-]+)"\]"#).unwrap();
    let mut in_rego = BTreeSet::new();
    for (path, source) in Packs::sources() {
        for cap in pattern
            .captures_iter(source)
            .chain(gated.captures_iter(source))
        {
            let id = cap[1].to_owned();
            match catalogue.rule(&id) {
                Some(r) if r.policy == PolicySet::Compliance => {}
                _ => {
                    return Err(format!(
                        "{path}: rule {id:?} is not a compliance rule of the catalogue"
                    ));
                }
            }
            in_rego.insert(id);
        }
    }
    let missing: Vec<&str> = catalogue
        .rules()
        .iter()
        .filter(|r| r.policy == PolicySet::Compliance && r.id != "profiles-label")
        .map(|r| r.id.as_str())
        .filter(|id| !in_rego.contains(*id))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "catalogue compliance rules not implemented in Rego: {missing:?}"
        ))
    }
}

/// Every ownership key has a rule in the catalogue, and the other way
/// round.
fn ownership_rules_match_the_catalogue() -> Result<(), String> {
    let catalogue = Catalogue::builtin().unwrap();
    let keys: BTreeSet<&str> = ownership::Key::ALL.iter().map(|k| k.rule()).collect();
    let listed: BTreeSet<&str> = catalogue
        .rules()
        .iter()
        .filter(|r| r.policy == PolicySet::Ownership)
        .map(|r| r.id.as_str())
        .collect();
    if keys == listed {
        Ok(())
    } else {
        Err(format!(
            "ownership keys {keys:?} != catalogue ownership rules {listed:?}"
        ))
    }
}

/// The catalogue table in the README's "Compliance packs" section lists
/// every rule with exactly the catalogue's controls.
fn readme_catalogue_table_is_current() -> Result<(), String> {
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let text =
        std::fs::read_to_string(&readme).map_err(|e| format!("{}: {e}", readme.display()))?;
    let catalogue = Catalogue::builtin().unwrap();
    let frameworks: Vec<&str> = catalogue
        .frameworks()
        .iter()
        .map(|f| f.id.as_str())
        .collect();
    let header = format!("| rule | checks | {} |", frameworks.join(" | "));
    if !text.lines().any(|l| l == header) {
        return Err(format!("README lacks the table header {header:?}"));
    }
    let mut missing = Vec::new();
    for rule in catalogue.rules() {
        let cells: Vec<String> = frameworks
            .iter()
            .map(|f| {
                let ids: Vec<&str> = rule
                    .controls
                    .iter()
                    .filter(|c| c.framework == *f)
                    .map(|c| c.id.as_str())
                    .collect();
                if ids.is_empty() {
                    "–".to_owned()
                } else {
                    ids.join(", ")
                }
            })
            .collect();
        let row = format!("| `{}` | {} | {} |", rule.id, rule.title, cells.join(" | "));
        if !text.lines().any(|l| l == row) {
            missing.push(row);
        }
    }
    let rows = text
        .lines()
        .filter(|l| l.starts_with("| `") && l.matches(" | ").count() == frameworks.len() + 1)
        .count();
    if missing.is_empty() && rows == catalogue.rules().len() {
        Ok(())
    } else {
        Err(format!(
            "README catalogue table is out of date ({rows} rows for {} rules); expected rows:\n{}",
            catalogue.rules().len(),
            missing.join("\n")
        ))
    }
}

type Test = (String, Box<dyn Fn() -> Result<(), String>>);

fn tests() -> Vec<Test> {
    let mut tests: Vec<Test> = Vec::new();
    let root = golden_dir();
    for path in case_files() {
        let rel = path.strip_prefix(&root).unwrap().with_extension("");
        let name = format!(
            "golden::{}",
            rel.components()
                .map(|c| c.as_os_str().to_string_lossy().replace('-', "_"))
                .collect::<Vec<_>>()
                .join("::")
        );
        tests.push((name, Box::new(move || run_case(&path))));
    }
    tests.push((
        "coverage::every_catalogue_rule_fails_somewhere".into(),
        Box::new(every_catalogue_rule_fails_somewhere),
    ));
    tests.push((
        "coverage::rego_rules_match_the_catalogue".into(),
        Box::new(rego_rules_match_the_catalogue),
    ));
    tests.push((
        "coverage::readme_catalogue_table_is_current".into(),
        Box::new(readme_catalogue_table_is_current),
    ));
    tests.push((
        "coverage::ownership_rules_match_the_catalogue".into(),
        Box::new(ownership_rules_match_the_catalogue),
    ));
    tests
}

fn main() -> ExitCode {
    let mut filters = Vec::new();
    let mut skips = Vec::new();
    let (mut exact, mut list) = (false, false);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--exact" => exact = true,
            "--list" => list = true,
            "--skip" => skips.extend(args.next()),
            "--test-threads" | "--format" | "--logfile" | "--color" | "-Z" => {
                args.next();
            }
            a if a.starts_with('-') => {}
            a => filters.push(a.to_owned()),
        }
    }
    let all = tests();
    let total = all.len();
    let selected: Vec<Test> = all
        .into_iter()
        .filter(|(name, _)| {
            let hit = |f: &String| {
                if exact {
                    name == f
                } else {
                    name.contains(f.as_str())
                }
            };
            (filters.is_empty() || filters.iter().any(hit))
                && !skips.iter().any(|s| name.contains(s.as_str()))
        })
        .collect();
    if list {
        for (name, _) in &selected {
            println!("{name}: test");
        }
        return ExitCode::SUCCESS;
    }
    println!("\nrunning {} tests", selected.len());
    let mut failures = Vec::new();
    for (name, test) in &selected {
        let result = catch_unwind(AssertUnwindSafe(test)).unwrap_or_else(|p| {
            Err(p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "panicked".into()))
        });
        match result {
            Ok(()) => println!("test {name} ... ok"),
            Err(e) => {
                println!("test {name} ... FAILED");
                failures.push((name.clone(), e));
            }
        }
    }
    if !failures.is_empty() {
        println!("\nfailures:\n");
        for (name, e) in &failures {
            println!("---- {name} ----\n{e}\n");
        }
    }
    println!(
        "\ntest result: {}. {} passed; {} failed; 0 ignored; 0 measured; {} filtered out\n",
        if failures.is_empty() { "ok" } else { "FAILED" },
        selected.len() - failures.len(),
        failures.len(),
        total - selected.len()
    );
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
