//! The object under review, as Gatekeeper hands it to templates in
//! `input.review`: an AdmissionRequest (from the webhook), or — for offline
//! checks and `tollgate verify` — the request `gator` synthesises from a
//! bare object. Converted to a Rego value once, then shared by every
//! constraint.

use serde_json::{Map, Value, json};

use super::GatekeeperError;
use super::matching::{ObjectInfo, split_api_version};
use crate::rego;

/// A request under review.
#[derive(Debug, Clone)]
pub struct Review {
    pub(crate) input: rego::Value,
    pub(crate) objects: Vec<ObjectInfo>,
    pub(crate) namespace: Option<String>,
    kind: String,
    name: String,
}

fn nonempty(value: Option<&Value>) -> Option<&Value> {
    value.filter(|v| !v.is_null() && v.as_object().is_none_or(|o| !o.is_empty()))
}

impl Review {
    /// A review of an `admission.k8s.io/v1` AdmissionRequest (the `request`
    /// member of an AdmissionReview), passed to templates as it is, except
    /// that for `DELETE` the `object` is set to the `oldObject`, as
    /// Gatekeeper does.
    pub fn from_admission_request(request: &Value) -> Result<Self, GatekeeperError> {
        let map = request.as_object().ok_or_else(|| {
            GatekeeperError::InvalidReview("the request must be an object".into())
        })?;
        let operation = map.get("operation").and_then(Value::as_str).unwrap_or("");
        // DELETE requests carry only the old object; Gatekeeper reviews it as
        // the object. Only then is the request copied; otherwise it is
        // converted as it is.
        let patched = (operation == "DELETE" && nonempty(map.get("object")).is_none())
            .then(|| map.get("oldObject").cloned())
            .flatten()
            .map(|old| {
                let mut copy = map.clone();
                copy.insert("object".to_owned(), old);
                Value::Object(copy)
            });
        let document = patched.as_ref().unwrap_or(request);
        let map = document.as_object().unwrap_or(map);
        let gvk = map.get("kind");
        let group = gvk
            .and_then(|k| k.get("group"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let kind = gvk
            .and_then(|k| k.get("kind"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let objects: Vec<ObjectInfo> = ["object", "oldObject"]
            .iter()
            .filter_map(|k| nonempty(map.get(*k)))
            .map(|o| ObjectInfo::of(o, Some((&group, &kind))))
            .collect();
        if objects.is_empty() {
            return Err(GatekeeperError::InvalidReview(
                "the request has neither an object nor an oldObject".into(),
            ));
        }
        let namespace = map
            .get("namespace")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .map(str::to_owned);
        let name = map
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| objects.first().map(|o| o.name.clone()))
            .unwrap_or_default();
        Ok(Review {
            input: rego::Value::from_json(document)
                .map_err(|e| GatekeeperError::InvalidReview(e.to_string()))?,
            objects,
            namespace,
            kind,
            name,
        })
    }

    /// A review of a bare object, shaped exactly as `gator` shapes it: the
    /// object's group/version/kind, name and namespace, an empty operation
    /// and user. An `admission.k8s.io` AdmissionReview is reviewed as its
    /// request instead.
    pub fn from_object(object: &Value) -> Result<Self, GatekeeperError> {
        let api_version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
        let (group, version) = split_api_version(api_version);
        if kind == "AdmissionReview" && group == "admission.k8s.io" {
            let request = object
                .get("request")
                .filter(|r| !r.is_null())
                .ok_or_else(|| {
                    GatekeeperError::InvalidReview("the AdmissionReview has no request".into())
                })?;
            return Self::from_admission_request(request);
        }
        let info = ObjectInfo::of(object, None);
        if version.is_empty() {
            return Err(GatekeeperError::InvalidReview(format!(
                "object {:?} has no apiVersion",
                info.name
            )));
        }
        if kind.is_empty() {
            return Err(GatekeeperError::InvalidReview(format!(
                "object {:?} has no kind",
                info.name
            )));
        }
        let mut request = Map::new();
        request.insert("uid".into(), json!(""));
        request.insert(
            "kind".into(),
            json!({"group": group, "version": version, "kind": kind}),
        );
        request.insert(
            "resource".into(),
            json!({"group": "", "version": "", "resource": ""}),
        );
        if !info.name.is_empty() {
            request.insert("name".into(), json!(info.name));
        }
        if !info.namespace.is_empty() {
            request.insert("namespace".into(), json!(info.namespace));
        }
        request.insert("operation".into(), json!(""));
        request.insert("userInfo".into(), json!({}));
        request.insert("object".into(), object.clone());
        let document = Value::Object(request);
        let namespace = (!info.namespace.is_empty()).then(|| info.namespace.clone());
        Ok(Review {
            input: rego::Value::from_json(&document)
                .map_err(|e| GatekeeperError::InvalidReview(e.to_string()))?,
            kind: kind.to_owned(),
            name: info.name.clone(),
            objects: vec![info],
            namespace,
        })
    }

    /// The kind under review.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The name under review (may be empty for `generateName` objects).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The request's namespace, if any.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The `input.review` document templates see.
    pub fn document(&self) -> Value {
        self.input.to_json()
    }
}
