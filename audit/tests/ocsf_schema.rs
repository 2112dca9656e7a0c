//! Every OCSF shape Tollgate emits — webhook and sidecar events, journal
//! notices, exported checkpoints — validates against the OCSF 1.3.0 schema
//! (class API Activity 6003 with the `security_control` profile), read from
//! the schema's own dictionary, class, include and object files kept under
//! `tests/data/ocsf-1.3.0` (from the `ocsf/ocsf-schema` repository, tag
//! 1.3.0). Checked: required attributes, `at_least_one`/`just_one`
//! constraints, no attribute the schema does not define, value types
//! (scalars through the dictionary's types, objects recursively, arrays)
//! and enumerations.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};
use tollgate_audit::event::{Actor, Decision, EventAction, Ownership, Source};
use tollgate_audit::{Event, Outcome, Priority};

struct Schema {
    root: PathBuf,
    dictionary: Map<String, Value>,
    types: Map<String, Value>,
    observable_types: BTreeSet<u64>,
}

/// Attribute definitions of a class or object, and its constraints.
struct Definition {
    attributes: Map<String, Value>,
    constraints: Option<Value>,
}

fn merge_attribute(into: &mut Map<String, Value>, name: &str, def: &Value) {
    let slot = into
        .entry(name.to_owned())
        .or_insert_with(|| Value::Object(Map::new()));
    let (Some(slot), Some(def)) = (slot.as_object_mut(), def.as_object()) else {
        return;
    };
    for (k, v) in def {
        if k == "enum"
            && let (Some(Value::Object(old)), Some(new)) = (slot.get_mut("enum"), v.as_object())
        {
            for (ek, ev) in new {
                old.insert(ek.clone(), ev.clone());
            }
            continue;
        }
        slot.insert(k.clone(), v.clone());
    }
}

impl Schema {
    fn load() -> Schema {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ocsf-1.3.0");
        let dict: Value = read(&root.join("dictionary.json"));
        let dictionary = dict["attributes"].as_object().unwrap().clone();
        let types = dict["types"]["attributes"].as_object().unwrap().clone();
        let mut observable_types: BTreeSet<u64> = [0, 99].into();
        for def in dictionary.values().chain(types.values()) {
            if let Some(n) = def.get("observable").and_then(Value::as_u64) {
                observable_types.insert(n);
            }
        }
        for entry in std::fs::read_dir(root.join("objects")).unwrap() {
            let object: Value = read(&entry.unwrap().path());
            if let Some(n) = object.get("observable").and_then(Value::as_u64) {
                observable_types.insert(n);
            }
        }
        Schema {
            root,
            dictionary,
            types,
            observable_types,
        }
    }

    /// Attributes of a schema file, with its `$include`s and parents.
    fn collect(&self, file: &Path, out: &mut Definition) {
        let value: Value = read(file);
        let parent = value.get("extends").and_then(Value::as_str);
        if let Some(parent) = parent.filter(|p| *p != "object") {
            let dir = file.parent().unwrap();
            let candidate = dir.join(format!("{parent}.json"));
            let path = if candidate.exists() {
                candidate
            } else {
                self.root.join("events").join(format!("{parent}.json"))
            };
            self.collect(&path, out);
        }
        let attributes = value["attributes"].as_object().unwrap();
        for (name, def) in attributes {
            if name == "$include" {
                for include in def.as_array().unwrap() {
                    let path = self.root.join(include.as_str().unwrap());
                    if path.exists() {
                        self.collect(&path, out);
                    }
                }
                continue;
            }
            merge_attribute(&mut out.attributes, name, def);
        }
        if let Some(c) = value.get("constraints") {
            out.constraints = Some(c.clone());
        }
    }

    fn class(&self) -> Definition {
        let mut def = Definition {
            attributes: Map::new(),
            constraints: None,
        };
        self.collect(&self.root.join("events/application/api.json"), &mut def);
        let profile: Value = read(&self.root.join("profiles/security_control.json"));
        for (name, attr) in profile["attributes"].as_object().unwrap() {
            merge_attribute(&mut def.attributes, name, attr);
        }
        def
    }

    fn object(&self, name: &str) -> Definition {
        let path = self.root.join("objects").join(format!("{name}.json"));
        assert!(
            path.exists(),
            "object {name} is emitted but its schema file is not kept"
        );
        let mut def = Definition {
            attributes: Map::new(),
            constraints: None,
        };
        self.collect(&path, &mut def);
        def
    }

    fn validate(
        &self,
        at: &str,
        object_name: &str,
        value: &Value,
        def: &Definition,
    ) -> Vec<String> {
        let mut errors = Vec::new();
        let Some(fields) = value.as_object() else {
            return vec![format!("{at}: not an object")];
        };
        for (name, attr) in &def.attributes {
            if attr.get("requirement").and_then(Value::as_str) == Some("required")
                && fields.get(name).is_none_or(Value::is_null)
            {
                errors.push(format!("{at}: required `{name}` is missing"));
            }
        }
        if let Some(constraints) = &def.constraints {
            for (kind, names) in constraints.as_object().unwrap() {
                let present = names
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|n| {
                        fields
                            .get(n.as_str().unwrap())
                            .is_some_and(|v| !v.is_null())
                    })
                    .count();
                let ok = match kind.as_str() {
                    "at_least_one" => present >= 1,
                    "just_one" => present == 1,
                    _ => true,
                };
                if !ok {
                    errors.push(format!("{at}: constraint {kind} {names} not met"));
                }
            }
        }
        for (name, v) in fields {
            let path = format!("{at}.{name}");
            let Some(local) = def.attributes.get(name) else {
                errors.push(format!("{path}: not an attribute of {object_name}"));
                continue;
            };
            let mut merged = Map::new();
            if let Some(global) = self.dictionary.get(name) {
                merge_attribute(&mut merged, name, global);
            }
            merge_attribute(&mut merged, name, local);
            let attr = &merged[name];
            let ty = attr["type"].as_str().unwrap_or("");
            let is_array = attr.get("is_array").and_then(Value::as_bool) == Some(true);
            if v.is_null() {
                errors.push(format!("{path}: null"));
                continue;
            }
            if is_array {
                let Some(items) = v.as_array() else {
                    errors.push(format!("{path}: not an array"));
                    continue;
                };
                for (i, item) in items.iter().enumerate() {
                    errors.extend(self.check(
                        &format!("{path}[{i}]"),
                        object_name,
                        name,
                        ty,
                        attr,
                        item,
                    ));
                }
            } else {
                errors.extend(self.check(&path, object_name, name, ty, attr, v));
            }
        }
        errors
    }

    fn check(
        &self,
        path: &str,
        object_name: &str,
        name: &str,
        ty: &str,
        attr: &Value,
        v: &Value,
    ) -> Vec<String> {
        if ty == "object" || ty == "json_t" {
            return Vec::new();
        }
        if !ty.ends_with("_t") {
            return self.validate(path, ty, v, &self.object(ty));
        }
        let base = self
            .types
            .get(ty)
            .and_then(|t| t.get("type"))
            .and_then(Value::as_str)
            .unwrap_or(ty);
        let ok = match base {
            "string_t" => v.is_string(),
            "integer_t" | "long_t" | "timestamp_t" => v.is_i64() || v.is_u64(),
            "boolean_t" => v.is_boolean(),
            "float_t" => v.is_number(),
            _ => true,
        };
        if !ok {
            return vec![format!("{path}: {v} is not a {ty}")];
        }
        // The schema compiler derives these three from categories.json and
        // the class file; checked against them in `class_ids`.
        let derived = matches!(name, "category_uid" | "class_uid" | "type_uid");
        if let Some(n) = v.as_u64()
            && !derived
            && let Some(values) = attr.get("enum").and_then(Value::as_object)
        {
            let allowed = if object_name == "observable" && name == "type_id" {
                self.observable_types.contains(&n)
            } else {
                values.contains_key(&n.to_string())
            };
            if !allowed {
                return vec![format!("{path}: {n} is not one of its enumeration")];
            }
        }
        Vec::new()
    }
}

fn read(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn event(
    source: Source,
    actor: Actor,
    protocol: &str,
    verb: &str,
    target: &str,
    outcome: Outcome,
) -> Event {
    let mut attributes = Map::new();
    if source == Source::Webhook {
        attributes.insert("uid".into(), json!("705ab4f5-6393-11e8-b7cc-42010a800002"));
    }
    Event::new(
        source,
        actor,
        Ownership {
            owner: Some("team-ml".into()),
            tier: Some("critical".into()),
            oncall: None,
        },
        EventAction {
            protocol: protocol.into(),
            verb: verb.into(),
            target: target.into(),
            attributes,
        },
        Decision {
            outcome,
            rule: Some("r".into()),
            reason: Some("because".into()),
            controls: vec!["CC7.2".into()],
        },
        17,
    )
}

/// Every kind of event Tollgate writes, as OCSF.
fn shapes() -> Vec<(&'static str, Event, Value)> {
    let webhook = event(
        Source::Webhook,
        Actor {
            user: Some("alice@example.com".into()),
            groups: vec!["system:authenticated".into()],
            namespace: Some("prod".into()),
            ..Actor::default()
        },
        "admission",
        "create",
        "apps/v1/deployments/prod/web",
        Outcome::Deny,
    );
    let sidecar_sa = event(
        Source::Sidecar,
        Actor {
            service_account: Some("system:serviceaccount:agents:researcher".into()),
            pod: Some("researcher-7d9f".into()),
            namespace: Some("agents".into()),
            agent: Some("researcher".into()),
            ..Actor::default()
        },
        "mcp",
        "tools/call",
        "docs-server/search_docs",
        Outcome::Allow,
    );
    let sidecar_bare = event(
        Source::Sidecar,
        Actor {
            pod: Some("job-1".into()),
            ..Actor::default()
        },
        "http",
        "POST",
        "https://api.example.com:8443/v1/things?x=1",
        Outcome::Warn,
    );
    let nothing_known = event(
        Source::Sidecar,
        Actor::default(),
        "llm",
        "chat.completions",
        "gpt-x",
        Outcome::Allow,
    );
    let notice = Event::notice(
        "segment-deleted",
        "seg-00000000000000000001.jsonl.gz",
        Outcome::Allow,
        Priority::Observe,
        "records 1..9 removed".into(),
        Map::new(),
    );
    let checkpoint = tollgate_audit::reader::checkpoint_event(
        10,
        &[7u8; 32],
        tollgate_audit::record::Checkpoint {
            head_seq: 9,
            head_hash: "ab".repeat(32),
            time: "2026-01-01T00:00:00Z".into(),
            seal: true,
            reason: "records".into(),
            key_id: "e744c0791320c328".into(),
            signature: "c2ln".into(),
        },
    );
    [
        ("webhook", webhook),
        ("sidecar with a ServiceAccount", sidecar_sa),
        ("sidecar with only a pod, URL target", sidecar_bare),
        ("sidecar with nothing known", nothing_known),
        ("journal notice", notice),
        ("exported checkpoint", checkpoint),
    ]
    .into_iter()
    .map(|(what, e)| {
        let ocsf = tollgate_audit::ocsf::to_ocsf(&e, Some(3));
        (what, e, ocsf)
    })
    .collect()
}

/// `(category_uid, class_uid)` of API Activity, as the schema derives them.
fn class_ids(schema: &Schema) -> (u64, u64) {
    let categories = read(&schema.root.join("categories.json"));
    let class = read(&schema.root.join("events/application/api.json"));
    let category = categories["attributes"]["application"]["uid"]
        .as_u64()
        .unwrap();
    (category, category * 1000 + class["uid"].as_u64().unwrap())
}

#[test]
fn every_emitted_shape_validates_against_ocsf_1_3_0() {
    let schema = Schema::load();
    let class = schema.class();
    let (category_uid, class_uid) = class_ids(&schema);
    for (what, _, ocsf) in shapes() {
        assert_eq!(ocsf["category_uid"], category_uid, "{what}");
        assert_eq!(ocsf["class_uid"], class_uid, "{what}");
        assert_eq!(
            ocsf["type_uid"].as_u64(),
            Some(class_uid * 100 + ocsf["activity_id"].as_u64().unwrap()),
            "{what}"
        );
        let errors = schema.validate("event", "api_activity", &ocsf, &class);
        assert!(errors.is_empty(), "{what}: {errors:#?}\n{ocsf:#}");
        assert_eq!(ocsf["metadata"]["version"], "1.3.0");
    }
}

#[test]
fn the_fields_an_auditor_looks_for_are_there() {
    for (what, event, ocsf) in shapes() {
        let actor = ocsf["actor"].as_object().unwrap();
        assert!(!actor.is_empty(), "{what}: actor is empty");
        for field in [
            "status_code",
            "dst_endpoint",
            "observables",
            "timezone_offset",
        ] {
            assert!(
                ocsf.get(field).is_some(),
                "{what}: {field} missing: {ocsf:#}"
            );
        }
        assert_eq!(ocsf["metadata"]["log_provider"], "tollgate", "{what}");
        assert_eq!(ocsf["metadata"]["uid"], json!(event.id), "{what}");
        if let Some(user) = actor.get("user") {
            assert!(user["type_id"].is_u64(), "{what}: {user}");
            // A user name never stands in for the source endpoint.
            assert_ne!(ocsf["src_endpoint"].get("name"), user.get("name"), "{what}");
        }
        if event.source == Source::Webhook {
            assert_eq!(
                ocsf["api"]["request"]["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002",
                "the AdmissionReview uid"
            );
            assert_eq!(ocsf["actor"]["user"]["type_id"], 1);
        }
        if event.action.target.starts_with("https://") {
            assert_eq!(ocsf["http_request"]["http_method"], "POST");
            assert_eq!(
                ocsf["http_request"]["url"]["url_string"],
                json!(event.action.target)
            );
            assert_eq!(ocsf["dst_endpoint"]["hostname"], "api.example.com");
        }
    }
}

#[test]
fn the_validator_catches_what_1_3_0_forbids() {
    // The checks can fail: each of these breaks the schema.
    let schema = Schema::load();
    let class = schema.class();
    let (_, _, good) = shapes().remove(0);
    let mut cases = Vec::new();
    let mut no_actor = good.clone();
    no_actor["actor"] = json!({});
    cases.push(("empty actor", no_actor));
    let mut no_api = good.clone();
    no_api.as_object_mut().unwrap().remove("api");
    cases.push(("missing api", no_api));
    let mut unknown = good.clone();
    unknown["src_endpoint"]["user_name"] = json!("alice");
    cases.push(("unknown attribute", unknown));
    let mut bad_enum = good.clone();
    bad_enum["severity_id"] = json!(42);
    cases.push(("severity_id out of its enumeration", bad_enum));
    let mut bad_type = good.clone();
    bad_type["time"] = json!("yesterday");
    cases.push(("time not a timestamp", bad_type));
    let mut bad_observable = good;
    bad_observable["observables"][0]["type_id"] = json!(7777);
    cases.push(("observable type", bad_observable));
    for (what, value) in cases {
        let errors = schema.validate("event", "api_activity", &value, &class);
        assert!(!errors.is_empty(), "{what} was accepted");
    }
}
