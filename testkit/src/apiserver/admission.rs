//! The admission chain, as kube-apiserver runs it: mutating webhooks of every
//! stored MutatingWebhookConfiguration (in name order, with
//! `reinvocationPolicy: IfNeeded`), then validating webhooks; AdmissionReview
//! v1 over HTTPS trusting the configuration's `caBundle`.
//!
//! Not evaluated: `matchConditions` (CEL), `matchPolicy: Equivalent`
//! conversions, and webhooks on subresources or DELETE.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::selector::{Selector, labels_of};
use super::store::ResourceType;

/// What the chain decided.
#[derive(Debug)]
pub enum Outcome {
    /// Admitted; the (possibly mutated) object and the warnings to return.
    Allowed {
        /// The object after mutation.
        object: Value,
        /// Warnings from every webhook.
        warnings: Vec<String>,
    },
    /// Refused: HTTP status code, reason, message (a Status body).
    Denied {
        /// HTTP status.
        code: u16,
        /// Status reason.
        reason: String,
        /// Status message.
        message: String,
        /// Warnings collected before the refusal.
        warnings: Vec<String>,
    },
}

/// One admission request, before webhooks see it.
#[derive(Debug, Clone)]
pub struct Attributes {
    /// The resource type.
    pub resource: ResourceType,
    /// The version the client used.
    pub version: String,
    /// `CREATE` or `UPDATE`.
    pub operation: &'static str,
    /// Namespace (`""` for cluster-scoped).
    pub namespace: String,
    /// Labels of that namespace.
    pub namespace_labels: BTreeMap<String, String>,
    /// The object's name.
    pub name: String,
    /// The stored object, for updates.
    pub old: Option<Value>,
    /// Whether the request is a dry run.
    pub dry_run: bool,
    /// The requesting user.
    pub user: String,
    /// The user's groups.
    pub groups: Vec<String>,
}

/// Runs the chain over `object` with `mutating` and `validating` webhook
/// configuration objects.
pub async fn admit(
    attrs: &Attributes,
    mut object: Value,
    mutating: &[Value],
    validating: &[Value],
    services: &BTreeMap<(String, String), SocketAddr>,
) -> Outcome {
    let mut warnings = Vec::new();
    let mutating_hooks = hooks(mutating);
    let mut reinvoke = Vec::new();
    let mut changed_since: Vec<bool> = Vec::new();
    for (index, hook) in mutating_hooks.iter().enumerate() {
        if !applies(hook, attrs, &object) {
            continue;
        }
        match call(hook, attrs, &object, services).await {
            Ok(Reply::Allowed { patch, warnings: w }) => {
                warnings.extend(w);
                if let Some(patch) = patch {
                    match apply_patch(&object, &patch) {
                        Ok(next) => {
                            if next != object {
                                for c in changed_since.iter_mut() {
                                    *c = true;
                                }
                            }
                            object = next;
                        }
                        Err(e) => return internal(hook, &e, warnings),
                    }
                }
                if hook.get("reinvocationPolicy").and_then(Value::as_str) == Some("IfNeeded") {
                    reinvoke.push(index);
                    changed_since.push(false);
                }
            }
            Ok(Reply::Denied(status)) => return denied(hook, &status, warnings),
            Err(e) => {
                if fails_closed(hook) {
                    return internal(hook, &e, warnings);
                }
                tracing::warn!(webhook = %hook_name(hook), error = %e, "webhook failed, ignored");
            }
        }
    }
    // Reinvoke, once, IfNeeded webhooks that ran before a later change.
    for (pos, index) in reinvoke.iter().enumerate() {
        if !changed_since.get(pos).copied().unwrap_or(false) {
            continue;
        }
        let Some(hook) = mutating_hooks.get(*index) else {
            continue;
        };
        match call(hook, attrs, &object, services).await {
            Ok(Reply::Allowed { patch, warnings: w }) => {
                warnings.extend(w);
                if let Some(patch) = patch {
                    match apply_patch(&object, &patch) {
                        Ok(next) => object = next,
                        Err(e) => return internal(hook, &e, warnings),
                    }
                }
            }
            Ok(Reply::Denied(status)) => return denied(hook, &status, warnings),
            Err(e) if fails_closed(hook) => return internal(hook, &e, warnings),
            Err(_) => {}
        }
    }
    for hook in hooks(validating) {
        if !applies(&hook, attrs, &object) {
            continue;
        }
        match call(&hook, attrs, &object, services).await {
            Ok(Reply::Allowed { warnings: w, .. }) => warnings.extend(w),
            Ok(Reply::Denied(status)) => return denied(&hook, &status, warnings),
            Err(e) => {
                if fails_closed(&hook) {
                    return internal(&hook, &e, warnings);
                }
                tracing::warn!(webhook = %hook_name(&hook), error = %e, "webhook failed, ignored");
            }
        }
    }
    Outcome::Allowed { object, warnings }
}

/// The webhooks of configurations, configurations in name order, each
/// webhook carrying its configuration's name for error messages.
fn hooks(configs: &[Value]) -> Vec<Value> {
    let mut sorted: Vec<&Value> = configs.iter().collect();
    sorted.sort_by_key(|c| super::store::name_of(c));
    sorted
        .into_iter()
        .flat_map(|c| {
            c.get("webhooks")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .collect()
}

fn hook_name(hook: &Value) -> String {
    hook.get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn fails_closed(hook: &Value) -> bool {
    hook.get("failurePolicy").and_then(Value::as_str) != Some("Ignore")
}

fn list_matches(list: Option<&Value>, value: &str) -> bool {
    list.and_then(Value::as_array).is_some_and(|items| {
        items
            .iter()
            .filter_map(Value::as_str)
            .any(|item| item == "*" || item == value)
    })
}

/// Whether a webhook's rules and selectors cover this request.
fn applies(hook: &Value, attrs: &Attributes, object: &Value) -> bool {
    let rules = hook
        .get("rules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let rule_match = rules.iter().any(|rule| {
        let scope_ok = match rule.get("scope").and_then(Value::as_str).unwrap_or("*") {
            "Cluster" => !attrs.resource.namespaced,
            "Namespaced" => attrs.resource.namespaced,
            _ => true,
        };
        let resource_ok = rule
            .get("resources")
            .and_then(Value::as_array)
            .is_some_and(|rs| {
                rs.iter()
                    .filter_map(Value::as_str)
                    .any(|r| r == "*" || r == "*/*" || r == attrs.resource.plural)
            });
        scope_ok
            && resource_ok
            && list_matches(rule.get("operations"), attrs.operation)
            && list_matches(rule.get("apiGroups"), &attrs.resource.group)
            && list_matches(rule.get("apiVersions"), &attrs.version)
    });
    if !rule_match {
        return false;
    }
    let Ok(object_selector) = Selector::from_label_selector(hook.get("objectSelector")) else {
        return true;
    };
    let object_ok = object_selector.matches(&labels_of(object))
        || attrs
            .old
            .as_ref()
            .is_some_and(|old| object_selector.matches(&labels_of(old)));
    if !object_ok {
        return false;
    }
    let Ok(ns_selector) = Selector::from_label_selector(hook.get("namespaceSelector")) else {
        return true;
    };
    if attrs.resource.group.is_empty() && attrs.resource.plural == "namespaces" {
        return ns_selector.matches(&labels_of(object));
    }
    if !attrs.resource.namespaced {
        return true;
    }
    ns_selector.matches(&attrs.namespace_labels)
}

enum Reply {
    Allowed {
        patch: Option<Vec<u8>>,
        warnings: Vec<String>,
    },
    Denied(Value),
}

/// Sends the AdmissionReview to the webhook and reads its answer.
async fn call(
    hook: &Value,
    attrs: &Attributes,
    object: &Value,
    services: &BTreeMap<(String, String), SocketAddr>,
) -> Result<Reply, String> {
    let client_config = hook.get("clientConfig").ok_or("no clientConfig")?;
    let timeout = hook
        .get("timeoutSeconds")
        .and_then(Value::as_u64)
        .unwrap_or(10);
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(timeout))
        .no_proxy();
    if let Some(bundle) = client_config.get("caBundle").and_then(Value::as_str) {
        let pem = STANDARD
            .decode(bundle)
            .map_err(|e| format!("caBundle is not base64: {e}"))?;
        let tls = tollgate_certs::client_config(&pem).map_err(|e| e.to_string())?;
        builder = builder.tls_backend_preconfigured(tls);
    } else {
        return Err(
            "clientConfig has no caBundle (this API server trusts only the caBundle)".into(),
        );
    }
    let url = if let Some(url) = client_config.get("url").and_then(Value::as_str) {
        url.to_owned()
    } else if let Some(svc) = client_config.get("service") {
        let ns = svc
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let name = svc.get("name").and_then(Value::as_str).unwrap_or_default();
        let port = svc.get("port").and_then(Value::as_u64).unwrap_or(443);
        let path = svc.get("path").and_then(Value::as_str).unwrap_or("/");
        let host = format!("{name}.{ns}.svc");
        let addr = services
            .get(&(ns.to_owned(), name.to_owned()))
            .ok_or_else(|| format!("service \"{ns}/{name}\" has no endpoints (route it with FakeApiServer::route_service)"))?;
        builder = builder.resolve(&host, *addr);
        format!("https://{host}:{port}{path}")
    } else {
        return Err("clientConfig has neither url nor service".into());
    };
    let client = builder.build().map_err(|e| e.to_string())?;
    let uid = uuid::Uuid::now_v7().to_string();
    let gvk = json!({"group": attrs.resource.group, "version": attrs.version, "kind": attrs.resource.kind});
    let gvr = json!({"group": attrs.resource.group, "version": attrs.version, "resource": attrs.resource.plural});
    let review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": gvk,
            "resource": gvr,
            "requestKind": gvk,
            "requestResource": gvr,
            "name": attrs.name,
            "namespace": attrs.namespace,
            "operation": attrs.operation,
            "userInfo": {"username": attrs.user, "groups": attrs.groups},
            "object": object,
            "oldObject": attrs.old.clone().unwrap_or(Value::Null),
            "dryRun": attrs.dry_run,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": if attrs.operation == "CREATE" { "CreateOptions" } else { "UpdateOptions" }},
        }
    });
    let response = client.post(&url).json(&review).send().await.map_err(|e| {
        format!(
            "failed to call webhook: Post \"{url}\": {}",
            error_chain(&e)
        )
    })?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .map_err(|e| format!("failed to decode webhook response: {e}"))?;
    if !status.is_success() {
        return Err(format!("webhook answered HTTP {status}: {body}"));
    }
    let resp = body
        .get("response")
        .ok_or("webhook response did not contain response")?;
    if resp.get("uid").and_then(Value::as_str) != Some(uid.as_str()) {
        return Err(format!(
            "expected response.uid={uid:?}, got {:?}",
            resp.get("uid")
        ));
    }
    let warnings = resp
        .get("warnings")
        .and_then(Value::as_array)
        .map(|w| {
            w.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if resp.get("allowed").and_then(Value::as_bool) != Some(true) {
        return Ok(Reply::Denied(
            resp.get("status").cloned().unwrap_or(Value::Null),
        ));
    }
    let patch = match resp.get("patch").and_then(Value::as_str) {
        Some(p) => {
            if resp.get("patchType").and_then(Value::as_str) != Some("JSONPatch") {
                return Err("patch without patchType JSONPatch".into());
            }
            Some(
                STANDARD
                    .decode(p)
                    .map_err(|e| format!("patch is not base64: {e}"))?,
            )
        }
        None => None,
    };
    Ok(Reply::Allowed { patch, warnings })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn apply_patch(object: &Value, patch: &[u8]) -> Result<Value, String> {
    let patch: json_patch::Patch =
        serde_json::from_slice(patch).map_err(|e| format!("invalid JSON patch: {e}"))?;
    let mut next = object.clone();
    json_patch::patch(&mut next, &patch).map_err(|e| format!("JSON patch failed: {e}"))?;
    Ok(next)
}

fn denied(hook: &Value, status: &Value, warnings: Vec<String>) -> Outcome {
    let name = hook_name(hook);
    let message = status.get("message").and_then(Value::as_str).unwrap_or("");
    let reason = status.get("reason").and_then(Value::as_str).unwrap_or("");
    let code = status
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| *c >= 400)
        .unwrap_or(400);
    let denied_by = format!("admission webhook \"{name}\" denied the request");
    let message = if !message.is_empty() {
        format!("{denied_by}: {message}")
    } else if !reason.is_empty() {
        format!("{denied_by}: {reason}")
    } else {
        format!("{denied_by} without explanation")
    };
    Outcome::Denied {
        code,
        reason: if reason.is_empty() {
            reason_for(code).into()
        } else {
            reason.into()
        },
        message,
        warnings,
    }
}

fn internal(hook: &Value, error: &str, warnings: Vec<String>) -> Outcome {
    Outcome::Denied {
        code: 500,
        reason: "InternalError".into(),
        message: format!(
            "Internal error occurred: failed calling webhook \"{}\": {error}",
            hook_name(hook)
        ),
        warnings,
    }
}

/// The Status reason kube-apiserver uses for an HTTP code.
pub fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        410 => "Expired",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    }
}
