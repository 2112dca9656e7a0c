use base64::Engine as _;
use serde_json::json;
use tollgate_policies::config::PolicyConfig;
use tollgate_policies::engine::{Options, Snapshot};

use super::*;

fn review(request: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({"apiVersion": API_VERSION, "kind": KIND, "request": request}))
        .unwrap()
}

fn pod_request() -> Value {
    json!({
        "uid": "abc", "operation": "CREATE", "namespace": "default", "name": "p",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "x"}]}}
    })
}

#[test]
fn decodes_a_review() {
    let req = decode(&review(pod_request()), 64).unwrap();
    assert_eq!(req.uid, "abc");
    assert_eq!(req.kind.kind, "Pod");
}

#[test]
fn every_malformed_review_gets_its_own_error() {
    let mut no_uid = pod_request();
    no_uid.as_object_mut().unwrap().remove("uid");
    let mut empty_uid = pod_request();
    empty_uid["uid"] = json!("");
    let mut num_uid = pod_request();
    num_uid["uid"] = json!(7);
    let mut bad_op = pod_request();
    bad_op["operation"] = json!("PATCH");
    let mut no_op = pod_request();
    no_op.as_object_mut().unwrap().remove("operation");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"{".to_vec(), "malformed_json"),
        (b"".to_vec(), "malformed_json"),
        (b"[1,2]".to_vec(), "not_an_object"),
        (b"\"x\"".to_vec(), "not_an_object"),
        (
            serde_json::to_vec(&json!({"apiVersion": "admission.k8s.io/v1beta1", "kind": KIND, "request": pod_request()})).unwrap(),
            "wrong_api_version",
        ),
        (
            serde_json::to_vec(&json!({"kind": KIND, "request": pod_request()})).unwrap(),
            "wrong_api_version",
        ),
        (
            serde_json::to_vec(&json!({"apiVersion": API_VERSION, "kind": "Pod", "request": pod_request()})).unwrap(),
            "wrong_kind",
        ),
        (
            serde_json::to_vec(&json!({"apiVersion": API_VERSION, "kind": KIND})).unwrap(),
            "missing_request",
        ),
        (
            serde_json::to_vec(&json!({"apiVersion": API_VERSION, "kind": KIND, "request": null})).unwrap(),
            "missing_request",
        ),
        (
            serde_json::to_vec(&json!({"apiVersion": API_VERSION, "kind": KIND, "request": []})).unwrap(),
            "invalid_request",
        ),
        (review(no_uid), "missing_uid"),
        (review(empty_uid), "missing_uid"),
        (review(num_uid), "invalid_request"),
        (review(bad_op), "invalid_request"),
        (review(no_op), "invalid_request"),
        (
            format!("{}{}", "[".repeat(65), "]".repeat(65)).into_bytes(),
            "json_too_deep",
        ),
    ];
    for (body, want) in cases {
        let err = decode(&body, 64).unwrap_err();
        assert_eq!(
            err.label(),
            want,
            "{}: {err}",
            String::from_utf8_lossy(&body)
        );
    }
    let v1beta1 = decode(
        &serde_json::to_vec(&json!({"apiVersion": "admission.k8s.io/v1beta1", "kind": KIND}))
            .unwrap(),
        64,
    )
    .unwrap_err()
    .to_string();
    assert!(v1beta1.contains("admissionReviewVersions"), "{v1beta1}");
}

#[test]
fn depth_counts_only_structure_outside_strings() {
    check_depth(
        br#"{"a": "[[[[[[[[[[[[[[[[[[[[[[[[", "b": "\"{{{{{{{{{{{"}"#,
        2,
    )
    .unwrap();
    check_depth(br#"{"a": {"b": 1}}"#, 2).unwrap();
    assert_eq!(
        check_depth(br#"{"a": {"b": [1]}}"#, 2),
        Err(ReviewError::TooDeep(2))
    );
    // A deeply nested review is refused before serde_json's own limit.
    let deep = format!("{}{}", "{\"a\":".repeat(200), "}".repeat(200));
    assert_eq!(
        decode(deep.as_bytes(), 120).unwrap_err().label(),
        "json_too_deep"
    );
}

#[test]
fn encodes_what_kube_apiserver_expects() {
    let snapshot = Snapshot::from_config(&PolicyConfig::default());
    let req = decode(&review(pod_request()), 64).unwrap();
    let eval = snapshot.validate(&req, &Options::default());
    let out: Value = serde_json::from_slice(&encode("abc", &eval, None)).unwrap();
    assert_eq!(out["apiVersion"], API_VERSION);
    assert_eq!(out["kind"], KIND);
    assert_eq!(out["response"]["uid"], "abc");
    assert_eq!(out["response"]["allowed"], eval.allowed());
    assert!(out["response"].get("patch").is_none());
    assert!(out["response"].get("patchType").is_none());

    let denied = encode(
        "abc",
        &eval,
        Some(StatusOut {
            code: 503,
            message: "audit down".into(),
            reason: "ServiceUnavailable",
            status: "Failure",
        }),
    );
    let out: Value = serde_json::from_slice(&denied).unwrap();
    assert_eq!(out["response"]["allowed"], false);
    assert_eq!(
        out["response"]["status"],
        json!({"code": 503, "message": "audit down", "reason": "ServiceUnavailable", "status": "Failure"})
    );
}

#[test]
fn patches_are_base64_json_patch() {
    let eval = tollgate_policies::engine::Evaluation {
        patch: serde_json::from_value(json!([
            {"op": "add", "path": "/metadata/labels", "value": {"a": "b"}}
        ]))
        .unwrap(),
        ..Default::default()
    };
    let out: Value = serde_json::from_slice(&encode("u", &eval, None)).unwrap();
    assert_eq!(out["response"]["patchType"], "JSONPatch");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(out["response"]["patch"].as_str().unwrap())
        .unwrap();
    let patch: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(patch[0]["op"], "add");
    assert_eq!(patch[0]["path"], "/metadata/labels");
}

#[test]
fn error_bodies_are_kubernetes_status_objects() {
    let body: Value = serde_json::from_slice(&error_body(404, "NotFound", "no")).unwrap();
    assert_eq!(
        body,
        json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "message": "no", "reason": "NotFound", "code": 404})
    );
}
