//! What kube-apiserver refuses before it stores an object, with its
//! messages: object names by kind (DNS-1123 subdomain or label, DNS-1035
//! label, path segment), `generateName` prefixes, label keys and values,
//! annotation keys and their 256 KiB total, pod template metadata, workload
//! selectors that must match their template, and on update the fields that
//! never change (name, namespace and uid; a workload's `spec.selector`; a
//! Job's template; a Pod's spec beyond images and a few scheduling fields).
//!
//! The rules follow apimachinery's `pkg/util/validation` and
//! `pkg/api/validation` (`ValidateObjectMeta`, `ValidateObjectMetaUpdate`)
//! and the kinds' own validation in kubernetes/pkg/apis; the messages keep
//! their wording so a test reads what a real cluster would say.

use serde_json::{Value, json};

use super::store::ResourceType;

/// The longest label value and qualified-name part.
const NAME_PART_MAX: usize = 63;
/// The longest DNS-1123 subdomain.
const SUBDOMAIN_MAX: usize = 253;
/// The largest total size of an object's annotations (keys and values).
pub const ANNOTATIONS_MAX_BYTES: usize = 256 * 1024;
/// The random suffix kube-apiserver appends to `generateName`.
pub const GENERATED_SUFFIX_LEN: usize = 5;
/// The longest name a CronJob may have (its Jobs append 11 characters).
const CRONJOB_NAME_MAX: usize = 52;

const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

/// One field error, as Go's `field.Error` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// `metadata.labels`, ...
    pub field: String,
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueTooLong`, `FieldValueForbidden`.
    pub reason: &'static str,
    /// The whole message: `field: Type: value: detail`.
    pub message: String,
}

fn invalid(field: &str, value: &Value, detail: &str) -> FieldError {
    let shown = match value {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    };
    FieldError {
        field: field.to_owned(),
        reason: "FieldValueInvalid",
        message: format!("{field}: Invalid value: {shown}: {detail}"),
    }
}

fn required(field: &str, detail: &str) -> FieldError {
    FieldError {
        field: field.to_owned(),
        reason: "FieldValueRequired",
        message: format!("{field}: Required value: {detail}"),
    }
}

fn forbidden(field: &str, detail: &str) -> FieldError {
    FieldError {
        field: field.to_owned(),
        reason: "FieldValueForbidden",
        message: format!("{field}: Forbidden: {detail}"),
    }
}

/// Why a write is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `400 BadRequest` with this message.
    BadRequest(String),
    /// `409 Conflict` with this message.
    Conflict(String),
    /// `422 Invalid` with these field errors.
    Invalid(Vec<FieldError>),
}

impl Refusal {
    /// The HTTP status, reason and Status body kube-apiserver answers with.
    pub fn status(&self, rt: &ResourceType, name: &str) -> (u16, Value) {
        let (code, reason, message, causes) = match self {
            Refusal::BadRequest(m) => (400, "BadRequest", m.clone(), Vec::new()),
            Refusal::Conflict(m) => (409, "Conflict", m.clone(), Vec::new()),
            Refusal::Invalid(errors) => {
                let kind = if rt.group.is_empty() {
                    rt.kind.clone()
                } else {
                    format!("{}.{}", rt.kind, rt.group)
                };
                let list = match errors.as_slice() {
                    [one] => one.message.clone(),
                    many => format!(
                        "[{}]",
                        many.iter()
                            .map(|e| e.message.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                // A cause's message is the error without its field, as
                // apimachinery's ErrorBody (kubectl prints `field: message`).
                let causes = errors
                    .iter()
                    .map(|e| {
                        let body = e
                            .message
                            .strip_prefix(&format!("{}: ", e.field))
                            .unwrap_or(&e.message);
                        json!({"reason": e.reason, "message": body, "field": e.field})
                    })
                    .collect();
                (
                    422,
                    "Invalid",
                    format!("{kind} {name:?} is invalid: {list}"),
                    causes,
                )
            }
        };
        let mut details = json!({"name": name, "group": rt.group, "kind": rt.kind.to_lowercase()});
        if !causes.is_empty()
            && let Some(d) = details.as_object_mut()
        {
            d.insert("causes".into(), Value::Array(causes));
        }
        let body = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "details": details,
            "code": code,
        });
        (code, body)
    }
}

/// How a kind's names are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameRule {
    Subdomain,
    Label,
    Dns1035,
    PathSegment,
}

fn name_rule(rt: &ResourceType) -> NameRule {
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Namespace") | ("apps", "StatefulSet") => NameRule::Label,
        ("", "Service") => NameRule::Dns1035,
        ("rbac.authorization.k8s.io", _) => NameRule::PathSegment,
        _ => NameRule::Subdomain,
    }
}

/// Problems with a name (or, with `prefix`, a `generateName`, whose
/// trailing `-` is allowed).
fn name_problems(rule: NameRule, name: &str, prefix: bool) -> Vec<String> {
    let masked;
    let name = match name.strip_suffix('-') {
        Some(head) if prefix && !head.is_empty() => {
            masked = format!("{head}a");
            masked.as_str()
        }
        _ => name,
    };
    match rule {
        NameRule::Subdomain => subdomain_problems(name),
        NameRule::Label => {
            let mut out = Vec::new();
            if name.len() > NAME_PART_MAX {
                out.push(format!("must be no more than {NAME_PART_MAX} characters"));
            }
            if !is_dns_label(name, false) {
                out.push(LABEL_MSG.to_owned());
            }
            out
        }
        NameRule::Dns1035 => {
            let mut out = Vec::new();
            if name.len() > NAME_PART_MAX {
                out.push(format!("must be no more than {NAME_PART_MAX} characters"));
            }
            if !is_dns_label(name, true) {
                out.push(DNS1035_MSG.to_owned());
            }
            out
        }
        NameRule::PathSegment => {
            if name == "." || name == ".." {
                vec![format!("may not be '{name}'")]
            } else if let Some(c) = ['/', '%'].into_iter().find(|c| name.contains(*c)) {
                vec![format!("may not contain '{c}'")]
            } else {
                Vec::new()
            }
        }
    }
}

fn subdomain_problems(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > SUBDOMAIN_MAX {
        out.push(format!("must be no more than {SUBDOMAIN_MAX} characters"));
    }
    if !s.split('.').all(|part| is_dns_label(part, false)) {
        out.push(SUBDOMAIN_MSG.to_owned());
    }
    out
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?` (DNS-1123), or with `alpha_first`
/// `[a-z]([-a-z0-9]*[a-z0-9])?` (DNS-1035). Length is checked apart.
fn is_dns_label(s: &str, alpha_first: bool) -> bool {
    let b = s.as_bytes();
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            (if alpha_first {
                first.is_ascii_lowercase()
            } else {
                alnum(first)
            }) && alnum(last)
                && b.iter().all(|c| alnum(c) || *c == b'-')
        }
        _ => false,
    }
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`.
fn is_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// apimachinery's `IsQualifiedName`.
pub fn qualified_name_problems(value: &str) -> Vec<String> {
    let parts: Vec<&str> = value.split('/').collect();
    let mut out = Vec::new();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                out.push("prefix part must be non-empty".to_owned());
            } else {
                out.extend(
                    subdomain_problems(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            name
        }
        _ => {
            return vec![format!(
                "a qualified name {QUALIFIED_NAME_MSG} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            )];
        }
    };
    if name.is_empty() {
        out.push("name part must be non-empty".to_owned());
    } else if name.len() > NAME_PART_MAX {
        out.push(format!(
            "name part must be no more than {NAME_PART_MAX} characters"
        ));
    }
    if !is_name_part(name) {
        out.push(format!("name part {QUALIFIED_NAME_MSG}"));
    }
    out
}

/// apimachinery's `IsValidLabelValue`.
pub fn label_value_problems(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    if value.len() > NAME_PART_MAX {
        out.push(format!("must be no more than {NAME_PART_MAX} characters"));
    }
    if !value.is_empty() && !is_name_part(value) {
        out.push(LABEL_VALUE_MSG.to_owned());
    }
    out
}

/// `ValidateLabels` at `field` (a map of strings; other shapes are the
/// schema's business and refused as such).
fn labels(field: &str, value: Option<&Value>, out: &mut Vec<FieldError>) {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return;
    };
    let Some(map) = value.as_object() else {
        out.push(invalid(field, value, "must be a map of strings"));
        return;
    };
    for (k, v) in map {
        for m in qualified_name_problems(k) {
            out.push(invalid(field, &Value::String(k.clone()), &m));
        }
        match v.as_str() {
            Some(s) => {
                for m in label_value_problems(s) {
                    out.push(invalid(field, v, &m));
                }
            }
            None => out.push(invalid(field, v, "must be a string")),
        }
    }
}

/// `ValidateAnnotations` at `field`: keys are qualified names (checked
/// lower-cased), and keys plus values stay within 256 KiB.
fn annotations(field: &str, value: Option<&Value>, out: &mut Vec<FieldError>) {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return;
    };
    let Some(map) = value.as_object() else {
        out.push(invalid(field, value, "must be a map of strings"));
        return;
    };
    let mut total = 0usize;
    for (k, v) in map {
        for m in qualified_name_problems(&k.to_lowercase()) {
            out.push(invalid(field, &Value::String(k.clone()), &m));
        }
        total += k.len();
        match v.as_str() {
            Some(s) => total += s.len(),
            None => out.push(invalid(field, v, "must be a string")),
        }
    }
    if total > ANNOTATIONS_MAX_BYTES {
        out.push(FieldError {
            field: field.to_owned(),
            reason: "FieldValueTooLong",
            message: format!(
                "{field}: Too long: may not be more than {ANNOTATIONS_MAX_BYTES} bytes"
            ),
        });
    }
}

/// Where a kind keeps its pod template, if it has one.
fn template_path(rt: &ResourceType) -> Option<&'static str> {
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet")
        | ("batch", "Job")
        | ("", "ReplicationController") => Some("/spec/template"),
        ("batch", "CronJob") => Some("/spec/jobTemplate/spec/template"),
        _ => None,
    }
}

fn has_selector_rule(rt: &ResourceType) -> bool {
    rt.group == "apps"
        && matches!(
            rt.kind.as_str(),
            "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet"
        )
}

fn dotted(pointer: &str) -> String {
    pointer.trim_start_matches('/').replace('/', ".")
}

/// Checks an object about to be created (its name already generated from
/// `generateName` when it had none).
pub fn validate_create(rt: &ResourceType, obj: &Value) -> Result<(), Refusal> {
    let mut errors = Vec::new();
    let meta = obj.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    if let Some(prefix) = meta
        .and_then(|m| m.get("generateName"))
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
    {
        for m in name_problems(name_rule(rt), prefix, true) {
            errors.push(invalid(
                "metadata.generateName",
                &Value::String(prefix.to_owned()),
                &m,
            ));
        }
    }
    validate_common(rt, obj, name, &mut errors);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Refusal::Invalid(errors))
    }
}

/// What every write checks: the name, labels and annotations, the pod
/// template's, and a workload selector that matches its template.
fn validate_common(rt: &ResourceType, obj: &Value, name: &str, errors: &mut Vec<FieldError>) {
    let meta = obj.get("metadata");
    if name.is_empty() {
        errors.push(required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else {
        for m in name_problems(name_rule(rt), name, false) {
            errors.push(invalid(
                "metadata.name",
                &Value::String(name.to_owned()),
                &m,
            ));
        }
    }
    if rt.group == "batch" && rt.kind == "CronJob" && name.len() > CRONJOB_NAME_MAX {
        errors.push(invalid(
            "metadata.name",
            &Value::String(name.to_owned()),
            &format!("must be no more than {CRONJOB_NAME_MAX} characters"),
        ));
    }
    if rt.group == "apiextensions.k8s.io" && rt.kind == "CustomResourceDefinition" {
        let plural = obj.pointer("/spec/names/plural").and_then(Value::as_str);
        let group = obj.pointer("/spec/group").and_then(Value::as_str);
        if let (Some(plural), Some(group)) = (plural, group)
            && name != format!("{plural}.{group}")
        {
            errors.push(invalid(
                "metadata.name",
                &Value::String(name.to_owned()),
                "must be spec.names.plural+\".\"+spec.group",
            ));
        }
    }
    labels(
        "metadata.labels",
        meta.and_then(|m| m.get("labels")),
        errors,
    );
    annotations(
        "metadata.annotations",
        meta.and_then(|m| m.get("annotations")),
        errors,
    );
    if let Some(path) = template_path(rt) {
        let field = dotted(path);
        let tmeta = obj.pointer(&format!("{path}/metadata"));
        labels(
            &format!("{field}.metadata.labels"),
            tmeta.and_then(|m| m.get("labels")),
            errors,
        );
        annotations(
            &format!("{field}.metadata.annotations"),
            tmeta.and_then(|m| m.get("annotations")),
            errors,
        );
    }
    if has_selector_rule(rt) {
        selector_matches_template(obj, errors);
    }
}

/// An apps/v1 workload needs a non-empty selector whose `matchLabels` the
/// template's labels carry.
fn selector_matches_template(obj: &Value, errors: &mut Vec<FieldError>) {
    let selector = obj.pointer("/spec/selector");
    let empty = selector.is_none_or(|s| {
        s.get("matchLabels")
            .and_then(Value::as_object)
            .is_none_or(|m| m.is_empty())
            && s.get("matchExpressions")
                .and_then(Value::as_array)
                .is_none_or(|m| m.is_empty())
    });
    if empty {
        errors.push(required("spec.selector", ""));
        return;
    }
    let template_labels = obj.pointer("/spec/template/metadata/labels");
    let wanted = obj
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object);
    let matches = wanted.is_none_or(|wanted| {
        wanted
            .iter()
            .all(|(k, v)| template_labels.and_then(|l| l.get(k)) == Some(v))
    });
    if !matches {
        errors.push(invalid(
            "spec.template.metadata.labels",
            template_labels.unwrap_or(&Value::Null),
            "`selector` does not match template `labels`",
        ));
    }
}

/// Checks an update of `old` to `new` arriving for `name` in `namespace`
/// (the URL's); `status_only` for the status subresource.
pub fn validate_update(
    rt: &ResourceType,
    name: &str,
    namespace: &str,
    old: &Value,
    new: &Value,
    status_only: bool,
) -> Result<(), Refusal> {
    let text = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_owned);
    if let Some(new_name) = text(new, "/metadata/name")
        && new_name != name
    {
        return Err(Refusal::BadRequest(format!(
            "the name of the object ({new_name}) does not match the name on the URL ({name})"
        )));
    }
    if rt.namespaced
        && let Some(ns) = text(new, "/metadata/namespace").filter(|n| !n.is_empty())
        && ns != namespace
    {
        return Err(Refusal::BadRequest(
            "the namespace of the provided object does not match the namespace sent on the request"
                .to_owned(),
        ));
    }
    if let (Some(new_uid), Some(old_uid)) = (
        text(new, "/metadata/uid").filter(|u| !u.is_empty()),
        text(old, "/metadata/uid"),
    ) && new_uid != old_uid
    {
        return Err(Refusal::Conflict(format!(
            "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: UID in precondition: {new_uid}, UID in object meta: {old_uid}",
            rt.qualified()
        )));
    }
    if status_only {
        return Ok(());
    }
    let mut errors = Vec::new();
    validate_common(rt, new, name, &mut errors);
    let immutable = |pointer: &str, errors: &mut Vec<FieldError>| {
        let before = old.pointer(pointer);
        let after = new.pointer(pointer);
        if before != after {
            errors.push(invalid(
                &dotted(pointer),
                after.unwrap_or(&Value::Null),
                "field is immutable",
            ));
        }
    };
    if has_selector_rule(rt) {
        immutable("/spec/selector", &mut errors);
    }
    if rt.group == "batch" && rt.kind == "Job" {
        immutable("/spec/selector", &mut errors);
        immutable("/spec/template", &mut errors);
    }
    if rt.group.is_empty() && rt.kind == "Pod" && mutable_pod_spec(old) != mutable_pod_spec(new) {
        errors.push(forbidden(
            "spec",
            "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Refusal::Invalid(errors))
    }
}

/// A Pod's spec without the fields an update may change.
fn mutable_pod_spec(pod: &Value) -> Value {
    let mut spec = pod.get("spec").cloned().unwrap_or(Value::Null);
    if let Some(o) = spec.as_object_mut() {
        for k in [
            "activeDeadlineSeconds",
            "tolerations",
            "terminationGracePeriodSeconds",
            "ephemeralContainers",
        ] {
            o.remove(k);
        }
        for list in ["containers", "initContainers"] {
            if let Some(items) = o.get_mut(list).and_then(Value::as_array_mut) {
                for c in items.iter_mut().filter_map(Value::as_object_mut) {
                    c.remove("image");
                }
            }
        }
    }
    spec
}

/// The name for `generateName`: the prefix cut so that prefix and suffix
/// fit a DNS label, as kube-apiserver's name generator does.
pub fn generated_name(prefix: &str, suffix: &str) -> String {
    let keep = NAME_PART_MAX - GENERATED_SUFFIX_LEN;
    let cut: String = prefix.chars().take(keep).collect();
    format!("{cut}{suffix}")
}

#[cfg(test)]
#[path = "validation_tests.rs"]
mod tests;
