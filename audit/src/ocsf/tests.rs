//! Golden OCSF cases: one YAML file per case under `testdata/ocsf/`, each a
//! native event and its expected API Activity form.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    description: String,
    sequence: Option<u64>,
    event: Event,
    expect: Value,
}

#[test]
fn golden_cases() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/ocsf");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("PRODUCT_VERSION", env!("CARGO_PKG_VERSION"));
        let case: Case =
            yaml_serde::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let got = to_ocsf(&case.event, case.sequence);
        assert_eq!(
            got,
            case.expect,
            "{}: {}\n got: {}",
            path.display(),
            case.description,
            serde_json::to_string_pretty(&got).unwrap()
        );
        seen += 1;
    }
    assert!(seen >= 3);
}

#[test]
fn every_activity_id_is_in_the_class_enum_and_type_uid_follows() {
    for verb in [
        "",
        "CREATE",
        "post",
        "get",
        "LIST",
        "watch",
        "tools/list",
        "resources/read",
        "prompts/get",
        "update",
        "PATCH",
        "delete",
        "deletecollection",
        "tasks/cancel",
        "tools/call",
        "CONNECT",
        "initialize",
    ] {
        let (id, name) = activity(verb);
        assert!(matches!(id, 0 | 1 | 2 | 3 | 4 | 99), "{verb}: {id}");
        let expected = match id {
            0 => "Unknown",
            1 => "Create",
            2 => "Read",
            3 => "Update",
            4 => "Delete",
            _ => "Other",
        };
        assert_eq!(name, expected);
    }
    assert_eq!(activity("tools/call").0, 99);
    assert_eq!(activity("deletecollection").0, 4);
}

#[test]
fn unparseable_time_maps_to_zero_not_a_panic() {
    assert_eq!(epoch_millis("yesterday"), None);
    assert_eq!(url_host("not a url"), None);
    assert_eq!(url_host("https://[::1]:8443/x"), Some("::1"));
    assert_eq!(url_host("https:///path"), None);
}
