use std::time::{Duration, Instant};

use serde_json::json;

use super::*;

fn program(src: &str, version: RegoVersion) -> Program {
    Program::compile(
        vec![Module::new("policy.rego", src, version)],
        Limits::default(),
    )
    .unwrap_or_else(|e| panic!("compile: {e}"))
}

fn input(doc: serde_json::Value) -> Value {
    Value::from_json(&doc).unwrap()
}

#[test]
fn evaluates_v0_and_v1_rules_against_json_input() {
    let v0 = program(
        "package k8s\nviolation[{\"msg\": msg}] {\n  not input.labels.owner\n  msg := \"missing owner\"\n}\n",
        RegoVersion::V0,
    );
    let v1 = program(
        "package k8s\nviolation contains {\"msg\": msg} if {\n  not input.labels.owner\n  msg := \"missing owner\"\n}\n",
        RegoVersion::V1,
    );
    for p in [&v0, &v1] {
        let bad = p
            .eval_rule("data.k8s.violation", &input(json!({"labels": {}})), None)
            .unwrap();
        assert_eq!(bad.to_json(), json!([{"msg": "missing owner"}]));
        let good = p
            .eval_rule(
                "data.k8s.violation",
                &input(json!({"labels": {"owner": "a"}})),
                None,
            )
            .unwrap();
        assert_eq!(good.to_json(), json!([]));
    }
}

#[test]
fn parse_errors_point_into_the_enclosing_file() {
    let yaml =
        "spec:\n  rego: |\n    package x\n    violation[{\"msg\": m}] {\n      m := \n    }\n";
    let src = "package x\nviolation[{\"msg\": m}] {\n  m := \n}\n";
    let module = Module::new("template.yaml#rego", src, RegoVersion::V0)
        .with_origin(Origin::locate("template.yaml", yaml, src, "spec.rego"));
    let err = Program::compile(vec![module], Limits::default()).unwrap_err();
    let location = err.location().expect("located").clone();
    assert_eq!(location.file, "template.yaml");
    assert!(
        (4..=6).contains(&location.line),
        "error should be inside the rego block: {err}"
    );
    assert!(location.column > 4, "{err}");
    assert!(err.to_string().starts_with("template.yaml:"), "{err}");
}

#[test]
fn v0_syntax_is_refused_in_v1_mode() {
    let v0_src = "package x\nallow { true }\n";
    let err = Program::compile(
        vec![Module::new("a.rego", v0_src, RegoVersion::V1)],
        Limits::default(),
    )
    .unwrap_err();
    assert!(matches!(err, RegoError::Parse { .. }), "{err}");
    assert_eq!(err.location().unwrap().to_string(), "a.rego:2:7");
}

#[test]
fn recursive_functions_are_rejected_at_compile_time() {
    let src =
        "package x\n\nf(x) = y {\n  y := g(x)\n}\n\ng(x) = y {\n  y := f(x)\n}\n\nallow { f(1) }\n";
    let err = Program::compile(
        vec![Module::new("rec.rego", src, RegoVersion::V0)],
        Limits::default(),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("recursion"), "{text}");
    assert!(text.contains("f -> g -> f"), "{text}");
    assert_eq!(err.location().unwrap().to_string(), "rec.rego:3:1");

    // Through an import alias, across packages.
    let lib = Module::new(
        "lib.rego",
        "package lib.h\nimport data.x\nh(a) = b { b := x.k(a) }\n",
        RegoVersion::V0,
    );
    let main = Module::new(
        "x.rego",
        "package x\nimport data.lib.h\nk(a) = b { b := h.h(a) }\n",
        RegoVersion::V0,
    );
    let err = Program::compile(vec![lib, main], Limits::default()).unwrap_err();
    assert!(err.to_string().contains("recursion"), "{err}");
}

#[test]
fn recursive_rules_fail_evaluation_without_crashing() {
    let p = program("package x\np { q }\nq { p }\n", RegoVersion::V0);
    let err = p
        .eval_rule("data.x.p", &Value::empty_object(), None)
        .unwrap_err();
    assert!(err.to_string().contains("recursion"), "{err}");
}

#[test]
fn runaway_evaluation_is_stopped_at_its_budget() {
    let src = "package x\nn = c {\n  r := numbers.range(1, 2000)\n  c := count([1 | r[_]; r[_]; r[_]])\n}\n";
    let limits = Limits {
        eval_timeout: Duration::from_millis(50),
        ..Limits::default()
    };
    let p = Program::compile(vec![Module::new("slow.rego", src, RegoVersion::V0)], limits).unwrap();
    let started = Instant::now();
    let err = p
        .eval_rule("data.x.n", &Value::empty_object(), None)
        .unwrap_err();
    assert!(matches!(err, RegoError::Timeout { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // A tighter per-call budget wins.
    let err = p
        .eval_rule_within(
            "data.x.n",
            &Value::empty_object(),
            None,
            Duration::from_millis(5),
        )
        .unwrap_err();
    assert_eq!(
        err,
        RegoError::Timeout {
            limit: Duration::from_millis(5)
        }
    );
}

#[test]
fn dangerous_builtins_are_bounded_or_refused() {
    let p = program(
        "package x\nbig = n { n := count(numbers.range(0, 100000000000)) }\nnap { test.sleep(\"10s\") }\nnet { http.send({\"method\": \"get\", \"url\": \"http://example.com\"}) }\nsmall = numbers.range_step(0, 10, 5)\n",
        RegoVersion::V0,
    );
    let empty = Value::empty_object();
    let err = p.eval_rule("data.x.big", &empty, None).unwrap_err();
    assert!(err.to_string().contains("more than the limit"), "{err}");
    let started = Instant::now();
    let err = p.eval_rule("data.x.nap", &empty, None).unwrap_err();
    assert!(err.to_string().contains("test.sleep is disabled"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(1));
    let err = p.eval_rule("data.x.net", &empty, None).unwrap_err();
    assert!(err.to_string().contains("http.send is disabled"), "{err}");
    assert_eq!(
        p.eval_rule("data.x.small", &empty, None).unwrap().to_json(),
        json!([0, 5, 10])
    );
}

#[test]
fn deprecated_v0_builtins_behave_like_opa() {
    let p = program(
        r#"package x
m1 { re_match("^kube-", "kube-system") }
m2 { not re_match("^kube-", "default") }
d = set_diff({1, 2, 3}, {2})
a1 { any([false, true]) }
a2 { not all([true, false]) }
c = cast_array({3, 1})
o { net.cidr_overlap("10.0.0.0/8", "10.2.3.4") }
e = external_data({"provider": "p", "keys": ["k"]})
"#,
        RegoVersion::V0,
    );
    let empty = Value::empty_object();
    for rule in ["m1", "m2", "a1", "a2", "o"] {
        let v = p
            .eval_rule(&format!("data.x.{rule}"), &empty, None)
            .unwrap();
        assert_eq!(v.as_bool(), Some(true), "{rule}");
    }
    assert_eq!(
        p.eval_rule("data.x.d", &empty, None).unwrap().to_json(),
        json!([1, 3])
    );
    assert_eq!(
        p.eval_rule("data.x.c", &empty, None).unwrap().to_json(),
        json!([1, 3])
    );
    let e = p.eval_rule("data.x.e", &empty, None).unwrap().to_json();
    assert_eq!(e["errors"][0][0], json!("k"));
    assert_eq!(e["status_code"], json!(503));
}

#[test]
fn data_documents_are_seen_and_replaced() {
    let p = program(
        "package x\nnames[n] { data.inventory.cluster.v1.Namespace[n] }\n",
        RegoVersion::V0,
    );
    let empty = Value::empty_object();
    let one = Data::new(input(
        json!({"inventory": {"cluster": {"v1": {"Namespace": {"a": {}}}}}}),
    ))
    .unwrap();
    let two = Data::new(input(
        json!({"inventory": {"cluster": {"v1": {"Namespace": {"b": {}, "c": {}}}}}}),
    ))
    .unwrap();
    assert_eq!(
        p.eval_rule("data.x.names", &empty, Some(&one))
            .unwrap()
            .to_json(),
        json!(["a"])
    );
    assert_eq!(
        p.eval_rule("data.x.names", &empty, Some(&two))
            .unwrap()
            .to_json(),
        json!(["b", "c"])
    );
    assert_eq!(
        p.eval_rule("data.x.names", &empty, None).unwrap().to_json(),
        json!([])
    );
    assert!(Data::new(Value::string("nope")).is_err());
}

#[test]
fn programs_evaluate_concurrently_and_release_worker_engines() {
    let p = program(
        "package x\ndouble = y { y := input.n * 2 }\n",
        RegoVersion::V0,
    );
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let p = p.clone();
            std::thread::spawn(move || {
                for i in 0..200 {
                    let n = t * 1000 + i;
                    let v = p
                        .eval_rule("data.x.double", &input(json!({"n": n})), None)
                        .unwrap();
                    assert_eq!(v.to_json(), json!(n * 2));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    // This thread's cache holds one engine per live program; engines of
    // dropped programs go when the next program is cached.
    p.eval_rule("data.x.double", &input(json!({"n": 1})), None)
        .unwrap();
    let before = worker::cached_engines();
    drop(p);
    let q = program("package y\nv = 1\n", RegoVersion::V0);
    q.eval_rule("data.y.v", &Value::empty_object(), None)
        .unwrap();
    assert_eq!(worker::cached_engines(), before);
}

#[test]
fn queries_and_module_metadata() {
    let p = Program::compile(
        vec![
            Module::new(
                "a.rego",
                "package a.b\nallow { input.x == 1 }\nf(x) = x\n",
                RegoVersion::V0,
            ),
            Module::new(
                "c.rego",
                "package c\nimport rego.v1\nlist contains 2 if { true }\n",
                RegoVersion::V1,
            ),
        ],
        Limits::default(),
    )
    .unwrap();
    let modules = p.modules();
    assert_eq!(modules[0].package_path(), "data.a.b");
    assert!(modules[0].defines("allow"));
    assert!(modules[0].rules.iter().any(|r| r.name == "f" && r.function));
    assert_eq!(modules[1].rule_path("list"), "data.c.list");
    let v = p
        .eval_query("data.a.b.allow", Some(&input(json!({"x": 1}))), None)
        .unwrap();
    assert_eq!(v, vec![Value::from(true)]);
}

#[test]
fn v0_rules_with_several_bodies_hold_when_any_body_does() {
    let p = program(
        "package x\n\nviolation[{\"msg\": m}] {\n  input.a\n  m := \"a\"\n} {\n  input.b\n  m := \"b\"\n}\n\nkind(o) = k {\n  o.x\n  k := \"x\"\n} {\n  o.y\n  k := \"y\"\n}\n\nk = kind(input)\n",
        RegoVersion::V0,
    );
    let v = p
        .eval_rule(
            "data.x.violation",
            &input(json!({"a": true, "b": true})),
            None,
        )
        .unwrap();
    assert_eq!(v.to_json(), json!([{"msg": "a"}, {"msg": "b"}]));
    let v = p
        .eval_rule("data.x.violation", &input(json!({"b": true})), None)
        .unwrap();
    assert_eq!(v.to_json(), json!([{"msg": "b"}]));
    assert_eq!(
        p.eval_rule("data.x.k", &input(json!({"y": 1})), None)
            .unwrap()
            .to_json(),
        json!("y")
    );
    // Errors after the rewritten lines keep their positions.
    let located = |src: &str| {
        Program::compile(
            vec![Module::new("m.rego", src, RegoVersion::V0)],
            Limits::default(),
        )
        .unwrap_err()
        .location()
        .cloned()
        .unwrap()
    };
    assert_eq!(
        located("package x\np[1] { true } { true }\nq {\n  x := [1,\n}\n"),
        located("package x\np[1] { true }\nq {\n  x := [1,\n}\n"),
    );
}

#[test]
fn a_line_starting_with_a_paren_is_its_own_expression() {
    let src = "package x\n\nspread_ok(s) {\n  input.min_spread\n  (s.max - s.min) >= input.min_spread\n}\n\nok { spread_ok(input.s) }\n";
    for version in [RegoVersion::V0, RegoVersion::V1] {
        let src = if version == RegoVersion::V1 {
            src.replace("(s) {", "(s) if {").replace("ok {", "ok if {")
        } else {
            src.to_owned()
        };
        let p = program(&src, version);
        let ok = |doc| p.eval_rule("data.x.ok", &input(doc), None).unwrap();
        assert_eq!(
            ok(json!({"min_spread": 2, "s": {"min": 1, "max": 4}})).as_bool(),
            Some(true)
        );
        assert!(ok(json!({"min_spread": 2, "s": {"min": 1, "max": 2}})).is_undefined());
        assert!(ok(json!({"s": {"min": 1, "max": 4}})).is_undefined());
    }
}

#[test]
fn deeply_nested_literals_are_refused_quickly() {
    let src = format!(
        "package x\np = {}1{}\n",
        "[{\"a\": ".repeat(10),
        "}]".repeat(10)
    );
    let started = Instant::now();
    let err = Program::compile(
        vec![Module::new("deep.rego", src, RegoVersion::V0)],
        Limits::default(),
    )
    .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(err.to_string().starts_with("deep.rego:2:"), "{err}");
    assert!(
        err.to_string().contains("nested more than 12 levels"),
        "{err}"
    );
}
