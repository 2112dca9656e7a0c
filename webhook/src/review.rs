//! `admission.k8s.io/v1` AdmissionReview: decoding untrusted bytes into a
//! typed [`AdmissionRequest`], and encoding the response exactly as
//! kube-apiserver expects it (`uid` echoed, `allowed`, `status` on denial,
//! `warnings`, and `patchType: JSONPatch` with a base64 `patch` only when
//! there is one).

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;
use tollgate_policies::engine::{AdmissionRequest, Evaluation};

/// The only AdmissionReview version served.
pub const API_VERSION: &str = "admission.k8s.io/v1";
/// The AdmissionReview kind.
pub const KIND: &str = "AdmissionReview";

/// Why a request body is not an AdmissionReview this webhook can answer.
/// Each maps to HTTP 400 with a JSON `Status` body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    /// The body is not JSON.
    #[error("request body is not valid JSON: {0}")]
    MalformedJson(String),
    /// The JSON nests deeper than the configured limit.
    #[error("request body nests JSON deeper than {0} levels")]
    TooDeep(usize),
    /// The body is JSON but not an object.
    #[error("request body must be a JSON object (an AdmissionReview)")]
    NotAnObject,
    /// `apiVersion` is missing or not `admission.k8s.io/v1`.
    #[error(
        "apiVersion {0:?} is not served: send admission.k8s.io/v1 (set admissionReviewVersions: [\"v1\"] in the webhook configuration)"
    )]
    WrongApiVersion(String),
    /// `kind` is missing or not `AdmissionReview`.
    #[error("kind {0:?} is not served: send an AdmissionReview")]
    WrongKind(String),
    /// There is no `request`.
    #[error("AdmissionReview has no request")]
    MissingRequest,
    /// `request.uid` is missing or empty.
    #[error("request.uid is missing: kube-apiserver matches the response to it")]
    MissingUid,
    /// A `request` field has the wrong type or value.
    #[error("request is invalid: {0}")]
    InvalidRequest(String),
}

impl ReviewError {
    /// A short, fixed label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            ReviewError::MalformedJson(_) => "malformed_json",
            ReviewError::TooDeep(_) => "json_too_deep",
            ReviewError::NotAnObject => "not_an_object",
            ReviewError::WrongApiVersion(_) => "wrong_api_version",
            ReviewError::WrongKind(_) => "wrong_kind",
            ReviewError::MissingRequest => "missing_request",
            ReviewError::MissingUid => "missing_uid",
            ReviewError::InvalidRequest(_) => "invalid_request",
        }
    }
}

/// The review, read in one pass (objects inside stay raw JSON).
#[derive(serde::Deserialize)]
struct Envelope {
    #[serde(default, rename = "apiVersion")]
    api_version: Option<Value>,
    #[serde(default)]
    kind: Option<Value>,
    #[serde(default)]
    request: Option<AdmissionRequest>,
}

/// Decodes an AdmissionReview body, refusing JSON nested deeper than
/// `max_depth` before parsing it. Objects in the request stay raw JSON
/// until a policy reads them.
pub fn decode(body: &[u8], max_depth: usize) -> Result<AdmissionRequest, ReviewError> {
    check_depth(body, max_depth)?;
    let starts_an_object = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{');
    if !starts_an_object {
        // Serde would read a JSON array as the envelope's fields in order.
        return Err(
            match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                Ok(_) => ReviewError::NotAnObject,
                Err(e) => ReviewError::MalformedJson(e.to_string()),
            },
        );
    }
    let envelope: Envelope = serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ReviewError::InvalidRequest(e.to_string()),
        _ => ReviewError::MalformedJson(e.to_string()),
    })?;
    let text = |v: Option<Value>| match v {
        Some(Value::String(s)) => s,
        Some(other) => other.to_string(),
        None => String::new(),
    };
    let api_version = text(envelope.api_version);
    if api_version != API_VERSION {
        return Err(ReviewError::WrongApiVersion(api_version));
    }
    let kind = text(envelope.kind);
    if kind != KIND {
        return Err(ReviewError::WrongKind(kind));
    }
    let Some(request) = envelope.request else {
        return Err(ReviewError::MissingRequest);
    };
    if request.uid.is_empty() {
        return Err(ReviewError::MissingUid);
    }
    Ok(request)
}

/// Refuses JSON that nests arrays and objects deeper than `max`, in one
/// pass over the bytes (strings and escapes skipped), before any parser
/// recurses into it.
pub fn check_depth(body: &[u8], max: usize) -> Result<(), ReviewError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in body {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Err(ReviewError::TooDeep(max));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReviewOut<'a> {
    api_version: &'static str,
    kind: &'static str,
    response: ResponseOut<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResponseOut<'a> {
    uid: &'a str,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<StatusOut>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    audit_annotations: &'a BTreeMap<String, String>,
}

/// A Kubernetes `Status` (as in `response.status` and error bodies).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusOut {
    /// HTTP-style code.
    pub code: u16,
    /// Why, for a person.
    pub message: String,
    /// `Forbidden`, `BadRequest`, `InternalError`, ...
    pub reason: &'static str,
    /// Always `Failure`.
    pub status: &'static str,
}

/// Encodes the response to `uid`: the evaluation's decision, warnings and
/// (when allowed and non-empty) its patch. `override_denial` replaces the
/// decision with a refusal (e.g. the audit trail could not record it).
pub fn encode(uid: &str, evaluation: &Evaluation, override_denial: Option<StatusOut>) -> Vec<u8> {
    let denial = override_denial.or_else(|| {
        evaluation.denial().map(|d| StatusOut {
            code: d.code,
            message: d.message,
            reason: d.reason,
            status: "Failure",
        })
    });
    let allowed = denial.is_none();
    let patch = if allowed && !evaluation.patch.is_empty() {
        serde_json::to_vec(&evaluation.patch)
            .ok()
            .map(|bytes| base64::engine::general_purpose::STANDARD.encode(bytes))
    } else {
        None
    };
    let out = ReviewOut {
        api_version: API_VERSION,
        kind: KIND,
        response: ResponseOut {
            uid,
            allowed,
            status: denial,
            warnings: evaluation.warnings(),
            patch_type: patch.as_ref().map(|_| "JSONPatch"),
            patch,
            audit_annotations: &evaluation.audit_annotations,
        },
    };
    // Serialising these plain structs cannot fail; an empty body would be
    // refused by kube-apiserver rather than misread.
    serde_json::to_vec(&out).unwrap_or_default()
}

/// A JSON `Status` body for an HTTP error.
pub fn error_body(code: u16, reason: &'static str, message: &str) -> Vec<u8> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Body<'a> {
        api_version: &'static str,
        kind: &'static str,
        status: &'static str,
        message: &'a str,
        reason: &'static str,
        code: u16,
    }
    serde_json::to_vec(&Body {
        api_version: "v1",
        kind: "Status",
        status: "Failure",
        message,
        reason,
        code,
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests;
