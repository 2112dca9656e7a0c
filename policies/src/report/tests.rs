//! Report tests over real evaluations: manifests are judged by the
//! ownership rules and the compliance packs, then every format is parsed
//! back (JUnit with quick-xml, SARIF and JSON with serde_json) and checked
//! for structure and content.

use serde::Deserialize as _;
use serde_json::Value;

use super::*;
use crate::compliance::{ComplianceConfig, Packs, Parameters, Profile};
use crate::namespace::NamespaceInfo;
use crate::ownership::{self, OwnershipConfig};
use crate::{Workload, WorkloadKind};

const MANIFEST: &str = r#"# A compliant Deployment, a bad one, a Service and a ConfigMap.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: good
  namespace: payments
  annotations: {deployscope.dev/owner: team-payments, deployscope.dev/tier: standard}
spec:
  template:
    spec:
      serviceAccountName: good
      automountServiceAccountToken: false
      securityContext: {runAsUser: 10001}
      containers:
      - name: app
        image: ghcr.io/acme/app:1.0
        resources: {limits: {cpu: "1", memory: 1Gi}}
        livenessProbe: {httpGet: {port: 8080}}
        readinessProbe: {httpGet: {port: 8080}}
        securityContext: {readOnlyRootFilesystem: true}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: bad
  namespace: payments
spec:
  template:
    spec:
      containers:
      - name: app
        image: nginx
        env:
        - {name: DB_PASSWORD, value: "<&\"'>\u0007"}
---

---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: payments}
spec: {type: NodePort, ports: [{port: 80}]}
...
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg, namespace: payments}
"#;

/// Judges every object of `text` with ownership (warn) and all compliance
/// profiles (deny), as `tollgate check` would.
fn check(text: &str, file: &str) -> Vec<CheckResult> {
    let packs = Packs::builtin().unwrap();
    let namespace = NamespaceInfo {
        name: "payments".into(),
        ..NamespaceInfo::default()
    };
    let own = OwnershipConfig {
        action: crate::EnforcementAction::Warn,
        ..OwnershipConfig::default()
    };
    let comp = ComplianceConfig {
        profiles: Profile::ALL.to_vec(),
        parameters: Parameters {
            allowed_registries: Some(vec!["ghcr.io/acme".into()]),
            ..Parameters::default()
        },
        ..ComplianceConfig::default()
    };
    let lines = document_lines(text);
    let mut out = Vec::new();
    for (i, doc) in yaml_serde::Deserializer::from_str(text).enumerate() {
        let object = Value::deserialize(doc).unwrap();
        if object.is_null() {
            continue;
        }
        let mut r = CheckResult::new(file, lines.get(i).copied(), &object);
        let e = packs.evaluate(&object, Some(&namespace), &comp).unwrap();
        r.add_compliance(e);
        if let Some(w) = Workload::from_object(&object).unwrap() {
            assert_ne!(w.kind, WorkloadKind::Pod);
            r.add_ownership(ownership::evaluate(&w, Some(&namespace), &own));
        }
        out.push(r);
    }
    out
}

#[test]
fn document_lines_follow_yaml_documents() {
    let cases = [
        "a: 1\n",
        "---\na: 1\n---\nb: 2\n",
        "# c\n\n---\n# d\na: 1\n",
        "a: 1\n---\n---\nb: 2\n",
        "a: 1\n...\n---\nb: 2\n",
        "%YAML 1.2\n---\na: 1\n",
        "--- {a: 1}\n--- {b: 2}\n",
        "a: 1\n---\n",
        "{\"a\": [1,\n 2]}\n",
        MANIFEST,
    ];
    for text in cases {
        let docs = yaml_serde::Deserializer::from_str(text).count();
        assert_eq!(document_lines(text).len(), docs, "{text:?}");
    }
    assert_eq!(document_lines(MANIFEST), [2, 22, 35, 38, 44]);
    assert_eq!(document_lines("--- {a: 1}\n--- {b: 2}\n"), [1, 2]);
    assert_eq!(document_lines("# c\n\n---\n# d\na: 1\n"), [5]);
}

#[test]
fn text_groups_per_object_with_the_fix() {
    let results = check(MANIFEST, "deploy/app.yaml");
    assert_eq!(results.len(), 4);
    let out = text(&results);
    assert!(
        out.contains("deploy/app.yaml:2: Deployment payments/good: allowed\n"),
        "{out}"
    );
    assert!(
        out.contains("deploy/app.yaml:22: Deployment payments/bad: DENIED ("),
        "{out}"
    );
    assert!(
        out.contains("  deny  compliance/image-pinned at spec.template.spec.containers[0].image\n"),
        "{out}"
    );
    assert!(
        out.contains(
            "        controls: SOC2 CC8.1, PCI-DSS 6.5.1, NIST-800-53 CM-2, NIST-800-53 CM-3\n"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "  warn  ownership/ownership-owner at metadata.annotations[\"deployscope.dev/owner\"]\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("Service payments/web: DENIED (1 violation)"),
        "{out}"
    );
    let s = summary(&results);
    assert_eq!((s.objects, s.denied, s.warned, s.allowed), (4, 2, 0, 2));
    assert!(out.ends_with(&format!(
        "4 objects: 2 denied, 0 allowed with warnings, 2 allowed; {} violations ({} deny, 2 warn, 0 audit)\n",
        s.violations.deny + 2,
        s.violations.deny
    )), "{out}");
}

#[test]
fn json_report_parses_and_counts() {
    let results = check(MANIFEST, "app.yaml");
    let doc: Value = serde_json::from_str(&json(&results, &[])).unwrap();
    assert_eq!(doc["apiVersion"], API_VERSION);
    assert_eq!(doc["kind"], "CheckReport");
    assert_eq!(doc["summary"]["objects"], 4);
    let items = doc["results"].as_array().unwrap();
    assert_eq!(items[0]["outcome"], "allowed");
    assert_eq!(items[1]["outcome"], "denied");
    assert_eq!(items[1]["line"], 22);
    assert_eq!(items[1]["object"]["name"], "bad");
    let v = &items[1]["violations"][0];
    assert!(v["rule"].is_string() && v["message"].is_string() && v["action"].is_string());
    assert!(items[1]["evaluated"].as_array().unwrap().len() >= 9);
    assert_eq!(items[1]["frameworks"][0], "SOC2");
}

/// An element: name, attributes, text.
type Element = (String, Vec<(String, String)>, String);

/// (name, attributes) of every element, and the text under it (entities
/// resolved): a real XML parser, so malformed output fails the test.
fn parse_xml(xml: &str) -> Vec<Element> {
    use quick_xml::XmlVersion;
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut out: Vec<Element> = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    loop {
        let event = reader.read_event().unwrap();
        match event {
            Event::Eof => break,
            Event::Start(ref e) | Event::Empty(ref e) => {
                let name = e.name().as_ref().to_owned();
                let attrs = e
                    .attributes()
                    .map(|a| {
                        let a = a.unwrap();
                        (
                            a.key.as_ref().to_owned(),
                            a.normalized_value(XmlVersion::Implicit1_0)
                                .unwrap()
                                .into_owned(),
                        )
                    })
                    .collect();
                out.push((name, attrs, String::new()));
                if matches!(event, Event::Start(_)) {
                    open.push(out.len() - 1);
                }
            }
            Event::Text(t) => {
                if let Some(&i) = open.last() {
                    out[i].2.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                if let Some(&i) = open.last() {
                    let text = match r.resolve_char_ref().unwrap() {
                        Some(c) => c.to_string(),
                        None => quick_xml::escape::resolve_predefined_entity(&r)
                            .expect("only predefined entities")
                            .to_owned(),
                    };
                    out[i].2.push_str(&text);
                }
            }
            Event::End(_) => {
                open.pop();
            }
            _ => {}
        }
    }
    assert!(open.is_empty(), "unclosed elements");
    out
}

fn attr<'a>(attrs: &'a [(String, String)], key: &str) -> &'a str {
    attrs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no attribute {key}"))
}

#[test]
fn junit_is_well_formed_with_consistent_counts() {
    let mut results = check(MANIFEST, "app.yaml");
    results.push(CheckResult {
        file: "broken.yaml".into(),
        error: Some("spec.template.spec: invalid type".into()),
        ..CheckResult::default()
    });
    let xml = junit(&results, &[]);
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites "));
    let elements = parse_xml(&xml);
    let (root, suites): (Vec<_>, Vec<_>) = elements.iter().partition(|(n, _, _)| n == "testsuites");
    let root = &root[0].1;
    let suite_names: Vec<&str> = suites
        .iter()
        .filter(|(n, _, _)| n == "testsuite")
        .map(|(_, a, _)| attr(a, "name"))
        .collect();
    assert_eq!(suite_names, ["ownership", "compliance", "evaluation"]);
    let cases = elements.iter().filter(|(n, _, _)| n == "testcase").count();
    let failures: Vec<_> = elements.iter().filter(|(n, _, _)| n == "failure").collect();
    let errors = elements.iter().filter(|(n, _, _)| n == "error").count();
    assert_eq!(attr(root, "tests").parse::<usize>().unwrap(), cases);
    assert_eq!(
        attr(root, "failures").parse::<usize>().unwrap(),
        failures.len()
    );
    assert_eq!(attr(root, "errors").parse::<usize>().unwrap(), errors);
    assert_eq!(errors, 1);
    // Every evaluated rule is a test case: passes count too.
    let evaluated: usize = results.iter().map(|r| r.evaluated.len()).sum();
    assert_eq!(cases, evaluated + 1);
    // Ownership violations warn: no failure, the message is in system-out.
    assert!(failures.iter().all(|(_, a, _)| attr(a, "type") == "deny"));
    let outs: Vec<&String> = elements
        .iter()
        .filter(|(n, _, _)| n == "system-out")
        .map(|(_, _, t)| t)
        .collect();
    assert!(
        outs.iter()
            .any(|t| t.starts_with("warn: metadata.annotations")),
        "{outs:?}"
    );
    // Special characters survive; control characters XML cannot carry go.
    assert!(!xml.contains('\u{7}'));
    let secret_case = elements
        .iter()
        .find(|(n, _, t)| n == "failure" && t.contains("env DB_PASSWORD"))
        .unwrap();
    assert!(
        secret_case.2.contains("controls: SOC2 CC6.1"),
        "{}",
        secret_case.2
    );
    let escaped = super::junit::escape("a<b>&\"c'\n\u{1}d");
    assert_eq!(escaped, "a&lt;b&gt;&amp;&quot;c&apos;&#10;d");
}

/// The properties SARIF 2.1.0 requires (and GitHub code scanning relies
/// on), checked by hand rather than with the schema file.
fn validate_sarif(doc: &Value) -> Result<(), String> {
    let fail = |m: &str| Err(m.to_owned());
    if doc["version"] != "2.1.0" {
        return fail("version must be 2.1.0");
    }
    let Some(runs) = doc["runs"].as_array() else {
        return fail("runs must be an array");
    };
    for run in runs {
        let driver = &run["tool"]["driver"];
        if !driver["name"].is_string() {
            return fail("tool.driver.name is required");
        }
        let rules = driver["rules"].as_array().cloned().unwrap_or_default();
        let mut ids = std::collections::BTreeSet::new();
        for rule in &rules {
            let Some(id) = rule["id"].as_str() else {
                return fail("every rule needs an id");
            };
            if !ids.insert(id.to_owned()) {
                return Err(format!("rule id {id} listed twice"));
            }
            for key in ["shortDescription", "fullDescription", "help"] {
                if rule.get(key).is_some() && !rule[key]["text"].is_string() {
                    return Err(format!("{id}: {key}.text is required"));
                }
            }
            if let Some(tags) = rule["properties"].get("tags")
                && !tags
                    .as_array()
                    .is_some_and(|t| t.iter().all(Value::is_string))
            {
                return Err(format!("{id}: tags must be strings"));
            }
        }
        let Some(results) = run["results"].as_array() else {
            return fail("results must be an array");
        };
        for r in results {
            if !r["message"]["text"].is_string() {
                return fail("result.message.text is required");
            }
            let Some(rule_id) = r["ruleId"].as_str() else {
                return fail("ruleId expected");
            };
            if !ids.contains(rule_id) {
                return Err(format!("result rule {rule_id} not in tool.driver.rules"));
            }
            if let Some(i) = r.get("ruleIndex") {
                let i = i.as_u64().ok_or("ruleIndex must be a number")? as usize;
                if rules.get(i).map(|rule| &rule["id"]) != Some(&Value::from(rule_id)) {
                    return Err(format!("ruleIndex {i} does not point at {rule_id}"));
                }
            }
            if !["none", "note", "warning", "error"].contains(&r["level"].as_str().unwrap_or("")) {
                return fail("level must be none, note, warning or error");
            }
            for loc in r["locations"].as_array().ok_or("locations expected")? {
                let p = &loc["physicalLocation"];
                let uri = p["artifactLocation"]["uri"]
                    .as_str()
                    .ok_or("uri expected")?;
                if uri.is_empty() || uri.contains(' ') || uri.contains('\\') {
                    return Err(format!("bad uri {uri:?}"));
                }
                if p["region"]["startLine"].as_u64().is_none_or(|l| l < 1) {
                    return fail("region.startLine must be >= 1");
                }
            }
        }
    }
    Ok(())
}

#[test]
fn sarif_has_every_required_property() {
    let mut results = check(MANIFEST, "./deploy dir/app.yaml");
    results.push(CheckResult {
        file: "<stdin>".into(),
        error: Some("not a Kubernetes object".into()),
        ..CheckResult::default()
    });
    let doc: Value = serde_json::from_str(&sarif(&results, &[], None)).unwrap();
    validate_sarif(&doc).unwrap();
    let run = &doc["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "Tollgate");
    let results_out = run["results"].as_array().unwrap();
    let violations: usize = results.iter().map(|r| r.verdict.violations.len()).sum();
    assert_eq!(results_out.len(), violations + 1);
    let pinned = results_out
        .iter()
        .find(|r| r["ruleId"] == "compliance/image-pinned")
        .unwrap();
    assert_eq!(pinned["level"], "error");
    let loc = &pinned["locations"][0];
    assert_eq!(
        loc["physicalLocation"]["artifactLocation"]["uri"],
        "deploy%20dir/app.yaml"
    );
    assert_eq!(loc["physicalLocation"]["region"]["startLine"], 22);
    assert_eq!(
        loc["logicalLocations"][0]["fullyQualifiedName"],
        "Deployment payments/bad"
    );
    assert!(pinned["partialFingerprints"]["tollgateObjectRule/v1"].is_string());
    let owner = results_out
        .iter()
        .find(|r| r["ruleId"] == "ownership/ownership-owner")
        .unwrap();
    assert_eq!(owner["level"], "warning");
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    let rule = rules
        .iter()
        .find(|r| r["id"] == "compliance/image-pinned")
        .unwrap();
    let tags: Vec<&str> = rule["properties"]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(
        tags.contains(&"PCI-DSS 6.5.1") && tags.contains(&"security"),
        "{tags:?}"
    );
    assert!(rule["help"]["text"].as_str().unwrap().contains("digest"));
    let stdin = results_out.last().unwrap();
    assert_eq!(
        stdin["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "stdin"
    );
    // A rule the validator does not know fails validation (the validator
    // itself is tested).
    let mut broken = doc.clone();
    broken["runs"][0]["results"][0]["ruleId"] = "nope".into();
    assert!(validate_sarif(&broken).is_err());
}

#[test]
fn sarif_describes_pod_security_checks() {
    let mut r = CheckResult::new(
        "pod.yaml",
        Some(1),
        &serde_json::json!({"kind": "Pod", "metadata": {"name": "p"}}),
    );
    r.add_pod_security(
        ["privileged"],
        vec![crate::Violation {
            policy: PolicySet::PodSecurity,
            rule: "privileged".into(),
            message: "container \"a\" must not set securityContext.privileged=true".into(),
            path: Some("spec.containers[0].securityContext.privileged".into()),
            container: Some("a".into()),
            controls: Vec::new(),
            action: crate::EnforcementAction::Deny,
        }],
    );
    assert_eq!(r.evaluated[0].controls, r.verdict.violations[0].controls);
    assert!(
        r.verdict.violations[0]
            .controls
            .iter()
            .any(|c| c.id == "SC-39")
    );
    let doc: Value = serde_json::from_str(&sarif(&[r], &[], None)).unwrap();
    validate_sarif(&doc).unwrap();
    let rule = &doc["runs"][0]["tool"]["driver"]["rules"][0];
    assert_eq!(rule["id"], "pod-security/privileged");
    assert_eq!(rule["name"], "Privileged");
    assert!(
        rule["helpUri"]
            .as_str()
            .unwrap()
            .contains("pod-security-standards")
    );
    assert!(
        rule["shortDescription"]["text"]
            .as_str()
            .unwrap()
            .contains("baseline")
    );
}

#[test]
fn evidence_groups_by_framework_and_control() {
    let results = check(MANIFEST, "app.yaml");
    let report = evidence::build(&results, None);
    assert_eq!(report.objects, 4);
    let ids: Vec<&str> = report.frameworks.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(ids, ["SOC2", "HIPAA", "PCI-DSS", "GDPR", "NIST-800-53"]);
    let soc2 = &report.frameworks[0];
    assert_eq!(soc2.objects, 4);
    let control = |id: &str| soc2.controls.iter().find(|c| c.id == id).unwrap();
    // CC8.1: image pinning and registries (compliance) and gitops (ownership,
    // not required here): good passes, bad fails.
    let cc81 = control("CC8.1");
    assert_eq!(cc81.status, evidence::Status::Fail);
    assert_eq!((cc81.passed_objects, cc81.failed_objects), (1, 1));
    assert!(cc81.failures.iter().all(|f| f.object.name == "bad"));
    assert!(cc81.rules.contains(&"compliance/image-pinned".to_owned()));
    // CC6.6 (service exposure) judged the Service only.
    let cc66 = control("CC6.6");
    assert_eq!((cc66.passed_objects, cc66.failed_objects), (0, 1));
    // CC7.4 (on-call, runbook) is not required for standard tiers: no
    // object was judged against it.
    assert_eq!(control("CC7.4").status, evidence::Status::NotEvaluated);
    // Ownership failures (warn) count as failures of the control.
    let cc61 = control("CC6.1");
    assert!(
        cc61.failures
            .iter()
            .any(|f| f.rule == "ownership/ownership-owner" && f.action == "warn")
    );
    assert_eq!(
        soc2.passed + soc2.failed + soc2.not_evaluated,
        soc2.controls.len()
    );
    let text = evidence::text(&report);
    assert!(
        text.starts_with("Compliance evidence: 4 objects judged\n"),
        "{text}"
    );
    assert!(text.contains("  FAIL  CC8.1 "), "{text}");
    assert!(text.contains("  n/a   CC7.4 "), "{text}");
    assert!(
        text.contains("- Deployment payments/bad (app.yaml:22) compliance/image-pinned [deny]: "),
        "{text}"
    );
    let json: Value = serde_json::from_str(&evidence::json(&report)).unwrap();
    assert_eq!(json["kind"], "EvidenceReport");
    assert!(json["frameworks"][0]["controls"][0]["status"].is_string());
    assert_eq!(json["frameworks"][2]["id"], "PCI-DSS");
}

#[test]
fn evidence_without_frameworks_says_how_to_get_some() {
    let report = evidence::build(&[CheckResult::default()], None);
    assert!(report.frameworks.is_empty());
    assert!(evidence::text(&report).contains("No compliance framework is in scope"));
}

/// Inputs that could not be read are reported in every machine format.
#[test]
fn input_errors_reach_every_format() {
    let results = check(MANIFEST, "app.yaml");
    let errors = vec![
        "nope.yaml: No such file or directory (os error 2)".to_owned(),
        "bad.yaml: <a> & \"b\"".to_owned(),
    ];
    let doc: Value = serde_json::from_str(&json(&results, &errors)).unwrap();
    assert_eq!(doc["summary"]["errors"], 2, "{doc}");
    assert_eq!(doc["errors"][0]["message"], errors[0].as_str());
    assert_eq!(doc["errors"][1]["message"], errors[1].as_str());
    let clean: Value = serde_json::from_str(&json(&results, &[])).unwrap();
    assert_eq!(clean["summary"]["errors"], 0);
    assert_eq!(clean["errors"], serde_json::json!([]));

    let xml = junit(&results, &errors);
    let elements = parse_xml(&xml);
    let root = &elements
        .iter()
        .find(|(n, _, _)| n == "testsuites")
        .unwrap()
        .1;
    assert_eq!(attr(root, "errors"), "2");
    let input = elements
        .iter()
        .find(|(n, a, _)| n == "testsuite" && attr(a, "name") == "input")
        .unwrap();
    assert_eq!(attr(&input.1, "errors"), "2");
    let messages: Vec<&str> = elements
        .iter()
        .filter(|(n, _, _)| n == "error")
        .map(|(_, a, _)| attr(a, "message"))
        .collect();
    assert!(messages.iter().any(|m| m.contains("nope.yaml")), "{xml}");

    let doc: Value = serde_json::from_str(&sarif(&results, &errors, None)).unwrap();
    validate_sarif(&doc).unwrap();
    let invocation = &doc["runs"][0]["invocations"][0];
    assert_eq!(invocation["executionSuccessful"], false);
    let notes = invocation["toolExecutionNotifications"].as_array().unwrap();
    assert_eq!(notes.len(), 2);
    assert_eq!(notes[0]["level"], "error");
    assert_eq!(notes[1]["message"]["text"], errors[1].as_str());
    let doc: Value = serde_json::from_str(&sarif(&results, &[], None)).unwrap();
    assert_eq!(
        doc["runs"][0]["invocations"][0]["executionSuccessful"],
        true
    );
}

fn violation(rule: &str, action: EnforcementAction) -> Violation {
    Violation {
        policy: PolicySet::PodSecurity,
        rule: rule.into(),
        message: format!("{rule} is not allowed"),
        path: Some("spec.containers[0]".into()),
        container: Some("app".into()),
        controls: Vec::new(),
        action,
    }
}

/// A fault the enforce and audit levels both find is one finding that
/// names both modes, in every format.
#[test]
fn a_finding_of_several_modes_is_reported_once() {
    let mut r = CheckResult {
        file: "pod.yaml".into(),
        object: ObjectRef {
            api_version: "v1".into(),
            kind: "Pod".into(),
            namespace: "default".into(),
            name: "p".into(),
        },
        ..CheckResult::default()
    };
    r.verdict.violations = vec![
        violation("privileged", EnforcementAction::Audit),
        violation("privileged", EnforcementAction::Deny),
        violation("hostPath", EnforcementAction::Warn),
        violation("privileged", EnforcementAction::Audit),
    ];
    r.fold_modes();
    assert_eq!(r.verdict.violations.len(), 2);
    assert_eq!(r.verdict.violations[0].action, EnforcementAction::Deny);
    assert_eq!(
        r.modes_of(0),
        [EnforcementAction::Deny, EnforcementAction::Audit]
    );
    assert_eq!(r.modes_of(1), [EnforcementAction::Warn]);
    let results = vec![r];
    assert_eq!(summary(&results).violations.deny, 1);
    assert_eq!(summary(&results).violations.audit, 0);

    let doc: Value = serde_json::from_str(&json(&results, &[])).unwrap();
    let violations = doc["results"][0]["violations"].as_array().unwrap();
    assert_eq!(violations.len(), 2);
    assert_eq!(violations[0]["modes"], serde_json::json!(["deny", "audit"]));
    assert!(violations[1].get("modes").is_none());

    let doc: Value = serde_json::from_str(&sarif(&results, &[], None)).unwrap();
    let out = doc["runs"][0]["results"].as_array().unwrap();
    assert_eq!(out.len(), 2);
    let prints: std::collections::BTreeSet<&str> = out
        .iter()
        .map(|r| {
            r["partialFingerprints"]["tollgateObjectRule/v1"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(prints.len(), 2, "one result per fingerprint");
    assert_eq!(
        out[0]["properties"]["modes"],
        serde_json::json!(["deny", "audit"])
    );

    let text = text(&results);
    assert!(
        text.contains("deny  pod-security/privileged at spec.containers[0] (also audit)"),
        "{text}"
    );
    assert_eq!(
        text.matches("privileged is not allowed").count(),
        1,
        "{text}"
    );
}

/// The JSON report is one line, and each rule's controls appear once.
#[test]
fn json_is_compact_with_controls_once_per_rule() {
    let results = check(MANIFEST, "app.yaml");
    let out = json(&results, &[]);
    assert_eq!(out.lines().count(), 1);
    let doc: Value = serde_json::from_str(&out).unwrap();
    let evaluated = doc["results"][1]["evaluated"].as_array().unwrap();
    assert!(
        evaluated
            .iter()
            .all(|e| e.as_str().is_some_and(|s| s.contains('/'))),
        "{evaluated:?}"
    );
    for id in evaluated {
        assert!(
            doc["rules"][id.as_str().unwrap()]["controls"].is_array(),
            "{id}"
        );
    }
    assert!(!doc["rules"].as_object().unwrap().is_empty());
}
