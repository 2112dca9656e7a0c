//! Golden cases: one YAML file per case under `cases/`, each a policy and
//! either the error it must be refused with, or a sequence of actions (at
//! given times) with the decision each must get.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::spec::{ActionPolicyDocument, MatchSpec, RuleSpec};
use super::*;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Case {
    #[allow(dead_code)]
    description: String,
    policy: String,
    #[serde(default)]
    error: Option<ExpectError>,
    #[serde(default)]
    steps: Vec<Step>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ExpectError {
    line: Option<usize>,
    contains: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Step {
    #[serde(default)]
    at_seconds: f64,
    #[serde(default)]
    action: Option<Action>,
    #[serde(default)]
    expect: Option<Expect>,
    #[serde(default)]
    charge: Option<Charge>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Expect {
    effect: Effect,
    #[serde(default)]
    rule: Option<String>,
    #[serde(default)]
    kind: Option<DecisionKind>,
    #[serde(default)]
    reason_contains: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Charge {
    rule: String,
    tokens: u64,
}

fn cases_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/action/cases")
}

fn run_case(path: &std::path::Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let case: Case = yaml_serde::from_str(&text).map_err(|e| format!("bad case file: {e}"))?;
    let parsed = ActionPolicy::parse(&case.policy, "policy.yaml");
    if let Some(want) = &case.error {
        let err = match parsed {
            Ok(_) => return Err("the policy was accepted; expected an error".into()),
            Err(e) => e,
        };
        let shown = err.to_string();
        if !shown.contains(&want.contains) {
            return Err(format!(
                "error {shown:?} does not contain {:?}",
                want.contains
            ));
        }
        if let Some(line) = want.line {
            match &err {
                ActionPolicyError::File { line: got, .. } if *got == line => {}
                other => return Err(format!("error {other} is not at line {line}")),
            }
        }
        if !shown.starts_with("policy.yaml") {
            return Err(format!("error {shown:?} does not name the file"));
        }
        return Ok(());
    }
    let policy = parsed.map_err(|e| format!("policy refused: {e}"))?;
    let t0 = Instant::now();
    for (i, step) in case.steps.iter().enumerate() {
        let now = t0 + Duration::from_secs_f64(step.at_seconds);
        if let Some(charge) = &step.charge {
            let index = policy
                .rule_names()
                .position(|n| n == charge.rule)
                .ok_or_else(|| format!("step {i}: no rule {:?}", charge.rule))?;
            policy.charge_tokens(index, charge.tokens, now);
        }
        let (Some(action), Some(want)) = (&step.action, &step.expect) else {
            continue;
        };
        let got = policy.evaluate(action, now);
        let ctx = || {
            format!(
                "step {i} ({} {}): got {got:?}",
                action.protocol(),
                action.verb()
            )
        };
        if got.effect != want.effect {
            return Err(format!(
                "{}: effect {:?}, want {:?}",
                ctx(),
                got.effect,
                want.effect
            ));
        }
        if let Some(rule) = &want.rule
            && got.rule.as_deref() != Some(rule.as_str())
        {
            return Err(format!("{}: want rule {rule:?}", ctx()));
        }
        if let Some(kind) = want.kind
            && got.kind != kind
        {
            return Err(format!("{}: want kind {kind:?}", ctx()));
        }
        if let Some(part) = &want.reason_contains
            && !got.reason.contains(part.as_str())
        {
            return Err(format!("{}: reason does not contain {part:?}", ctx()));
        }
    }
    Ok(())
}

#[test]
fn golden_cases() {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    assert!(
        paths.len() >= 10,
        "expected the golden cases, found {paths:?}"
    );
    let failures: Vec<String> = paths
        .iter()
        .filter_map(|p| run_case(p).err().map(|e| format!("{}: {e}", p.display())))
        .collect();
    assert!(
        failures.is_empty(),
        "failing cases:\n{}",
        failures.join("\n")
    );
}

#[test]
fn examples_compile() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/action-policies");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            ActionPolicy::parse(&text, &path.display().to_string())
                .unwrap_or_else(|e| panic!("{e}"));
            seen += 1;
        }
    }
    assert!(seen >= 3, "expected example policies in {}", dir.display());
}

#[test]
fn a_spec_built_in_code_compiles_and_round_trips() {
    let mut spec = spec::ActionPolicySpec::default();
    spec.rules.push(
        RuleSpec::allow("github-read", Some(Protocol::Mcp)).with_match(MatchSpec {
            tools: vec!["get_*".into()],
            ..MatchSpec::default()
        }),
    );
    let doc = ActionPolicyDocument::new("ossa-baseline", spec);
    let policy = ActionPolicy::compile(&doc).unwrap();
    assert_eq!(policy.rule_count(), 1);
    let yaml = yaml_serde::to_string(&doc).unwrap();
    let reparsed = ActionPolicy::parse(&yaml, "generated.yaml").unwrap();
    assert_eq!(
        reparsed.rule_names().collect::<Vec<_>>(),
        vec!["github-read"]
    );
    assert_eq!(
        ActionPolicyDocument::from_yaml(&yaml, "generated.yaml").unwrap(),
        doc
    );

    let mut bad = doc.clone();
    bad.spec.rules[0].matches.verbs = vec!["get".into()];
    let err = ActionPolicy::compile(&bad).unwrap_err().to_string();
    assert!(
        err.starts_with("spec.rules[0]: match.verbs needs protocol: kubernetes"),
        "{err}"
    );
}

#[test]
fn limits_carry_over_a_reload_when_unchanged() {
    let text = |n: u64| {
        format!(
            "apiVersion: tollgate.dev/v1alpha1\nkind: ActionPolicy\nspec:\n  rules:\n    - name: web\n      effect: allow\n      protocol: http\n      rateLimit: {{ requests: {n}, per: 1m }}\n"
        )
    };
    let action = Action::http(Target {
        method: "GET".into(),
        scheme: "http".into(),
        host: "example.com".into(),
        port: 80,
        path: "/".into(),
        query: None,
    });
    let t0 = Instant::now();
    let old = ActionPolicy::parse(&text(1), "p").unwrap();
    assert!(old.evaluate(&action, t0).allowed());
    let mut same = ActionPolicy::parse(&text(1), "p").unwrap();
    same.inherit_limits(&old);
    assert!(
        !same.evaluate(&action, t0).allowed(),
        "the used-up limit carries over"
    );
    let mut changed = ActionPolicy::parse(&text(2), "p").unwrap();
    changed.inherit_limits(&old);
    assert!(
        changed.evaluate(&action, t0).allowed(),
        "a changed limit starts afresh"
    );
    let usage = same.limit_usage(t0);
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0].used, 1.0);
}

#[test]
fn durations_parse() {
    use spec::parse_duration;
    assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
    assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
    assert!(parse_duration("0s").is_err());
    assert!(parse_duration("5").is_err());
    assert!(parse_duration("1w").is_err());
    assert!(parse_duration("").is_err());
}
