//! The OCSF form of an event: **API Activity** (`class_uid` 6003, category
//! 6 "Application Activity") with the `security_control` profile, for SIEMs
//! that normalise on OCSF (Amazon Security Lake, Splunk, Sentinel, ...).
//!
//! Mapping, field by field:
//!
//! | OCSF | from |
//! | --- | --- |
//! | `activity_id` | the verb: create/POST/`message/send` → 1 Create; get, list, watch, GET, `*/list`, `*/read`, `*/get` → 2 Read; update, patch, PUT, PATCH → 3 Update; delete, deletecollection, `tasks/cancel` → 4 Delete; anything else (`tools/call`, CONNECT, ...) → 99 Other; no verb → 0 Unknown |
//! | `type_uid` | `class_uid * 100 + activity_id` |
//! | `severity_id` | the routing priority: p0-escalate → 5 Critical, p1-warn → 4 High, p1-inform → 3 Medium, p2-log → 2 Low, observe → 1 Informational |
//! | `status_id`, `status_detail` | deny → 2 Failure, allow and warn → 1 Success; the decision's reason |
//! | `action_id`, `disposition_id` | allow/warn → 1 Allowed / 1 Allowed; deny → 2 Denied / 2 Blocked |
//! | `actor` | `user` {name, uid, `type_id`: 1 User, 3 System (`system:*`, and Tollgate itself for journal notices), 99 Other with type `ServiceAccount`; groups} from the user, else the ServiceAccount; `app_name` (the agent); with neither, `app_name` is the pod (OCSF requires an actor) |
//! | `api` | `operation` (the verb), `service.name` (the protocol), `request.uid` (the AdmissionReview uid for webhook events, which correlates with the kube-apiserver audit log; the event id otherwise) |
//! | `src_endpoint` | `name`: the acting pod (never a user name), `svc_name` `tollgate-<source>` |
//! | `dst_endpoint` | `svc_name` by protocol (`kubernetes-api`, `mcp-server`, `a2a-agent`, `llm-api`, `http`, `tollgate-journal`), `hostname` of a URL target |
//! | `http_request` | for a URL target: `url` {url_string, hostname}, `http_method` when the verb is one |
//! | `status_code` | the outcome (`allow`, `deny`, `warn`) |
//! | `observables` | the user name (4), a URL target's host (1) and URL (6), the target (99) |
//! | `timezone_offset` | 0: every time is UTC |
//! | `resources` | the target, typed by protocol, with its owner |
//! | `metadata` | OCSF `version`, `product` (Tollgate), `uid` (event id), `log_name` (`tollgate.audit/v1`), `log_provider` (`tollgate`), `original_time`, `sequence` (journal sequence number), `profiles` |
//! | `unmapped.tollgate` | everything OCSF has no place for: source, ownership (owner, tier, oncall), rule, control ids, priority, latency, redactions, attributes, namespace, pod, ServiceAccount |

use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::{Event, Outcome, Priority, SCHEMA, Source};

/// The OCSF schema version the mapping follows.
pub const OCSF_VERSION: &str = "1.3.0";
/// OCSF category: Application Activity.
pub const CATEGORY_UID: u32 = 6;
/// OCSF class: API Activity.
pub const CLASS_UID: u32 = 6003;

/// The OCSF `activity_id` and its caption for a verb.
pub fn activity(verb: &str) -> (u32, &'static str) {
    let verb = verb.trim().to_ascii_lowercase();
    if verb.is_empty() {
        return (0, "Unknown");
    }
    match verb.as_str() {
        "create" | "post" | "message/send" | "message/stream" => (1, "Create"),
        "get" | "list" | "watch" | "head" | "options" | "tasks/get" | "tasks/resubscribe" => {
            (2, "Read")
        }
        "update" | "patch" | "put" => (3, "Update"),
        "delete" | "deletecollection" | "tasks/cancel" => (4, "Delete"),
        v if v.ends_with("/list") || v.ends_with("/read") || v.ends_with("/get") => (2, "Read"),
        _ => (99, "Other"),
    }
}

/// The OCSF `severity_id` and caption for a routing priority.
pub fn severity(priority: Priority) -> (u32, &'static str) {
    match priority {
        Priority::P0Escalate => (5, "Critical"),
        Priority::P1Warn => (4, "High"),
        Priority::P1Inform => (3, "Medium"),
        Priority::P2Log => (2, "Low"),
        Priority::Observe => (1, "Informational"),
    }
}

/// Milliseconds since the epoch of an RFC 3339 time, or `None`.
pub fn epoch_millis(time: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(time, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

fn resource_type(protocol: &str) -> &'static str {
    match protocol {
        "admission" | "kubernetes" => "Kubernetes Object",
        "mcp" => "MCP Tool or Resource",
        "a2a" => "Agent",
        "llm" => "Model",
        "http" => "URL",
        "audit" => "Audit Journal",
        _ => "Other",
    }
}

/// HTTP methods, as OCSF `http_request.http_method` takes them.
const HTTP_METHODS: [&str; 9] = [
    "CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE",
];

/// The OCSF user type of a Kubernetes user name.
fn user_type(name: &str) -> (u32, &'static str) {
    if name.starts_with("system:serviceaccount:") {
        (99, "ServiceAccount")
    } else if name.starts_with("system:") {
        (3, "System")
    } else {
        (1, "User")
    }
}

/// The service an action was aimed at, by protocol.
fn destination(protocol: &str) -> &'static str {
    match protocol {
        "admission" | "kubernetes" => "kubernetes-api",
        "mcp" => "mcp-server",
        "a2a" => "a2a-agent",
        "llm" => "llm-api",
        "http" => "http",
        "audit" => "tollgate-journal",
        _ => "unknown",
    }
}

fn url_host(target: &str) -> Option<&str> {
    let rest = target.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit('@').next()?;
    let host = if let Some(stripped) = host_port.strip_prefix('[') {
        stripped.split(']').next()?
    } else {
        host_port.split(':').next()?
    };
    (!host.is_empty()).then_some(host)
}

/// Maps an event onto OCSF API Activity. `sequence` is the journal
/// sequence number when the event comes from the journal.
pub fn to_ocsf(event: &Event, sequence: Option<u64>) -> Value {
    let (activity_id, activity_name) = activity(&event.action.verb);
    let (severity_id, severity_name) = severity(event.priority);
    let denied = event.decision.outcome == Outcome::Deny;
    let (status_id, status) = if denied {
        (2, "Failure")
    } else {
        (1, "Success")
    };
    let (action_id, action, disposition_id, disposition) = if denied {
        (2, "Denied", 2, "Blocked")
    } else {
        (1, "Allowed", 1, "Allowed")
    };
    let actor = &event.actor;
    let mut user = Map::new();
    let name = actor
        .user
        .as_deref()
        .or(actor.service_account.as_deref())
        .or((event.source == Source::Journal).then_some("tollgate"));
    if let Some(name) = name {
        let (type_id, type_name) = if event.source == Source::Journal && actor.user.is_none() {
            (3, "System")
        } else {
            user_type(name)
        };
        user.insert("name".into(), json!(name));
        user.insert("uid".into(), json!(name));
        user.insert("type_id".into(), json!(type_id));
        user.insert("type".into(), json!(type_name));
    }
    if !actor.groups.is_empty() {
        let groups: Vec<Value> = actor.groups.iter().map(|g| json!({ "name": g })).collect();
        user.insert("groups".into(), Value::Array(groups));
    }
    let mut actor_obj = Map::new();
    if !user.is_empty() {
        actor_obj.insert("user".into(), Value::Object(user));
    }
    if let Some(agent) = &actor.agent {
        actor_obj.insert("app_name".into(), json!(agent));
    }
    if actor_obj.is_empty() {
        // OCSF requires an actor: the workload, as far as it is known.
        actor_obj.insert(
            "app_name".into(),
            json!(actor.pod.as_deref().unwrap_or("unknown")),
        );
    }
    let mut src_endpoint = Map::new();
    if let Some(pod) = &actor.pod {
        src_endpoint.insert("name".into(), json!(pod));
    }
    src_endpoint.insert(
        "svc_name".into(),
        json!(format!("tollgate-{}", event.source.as_str())),
    );
    let host = url_host(&event.action.target);
    let mut dst_endpoint = Map::new();
    dst_endpoint.insert(
        "svc_name".into(),
        json!(destination(&event.action.protocol)),
    );
    if let Some(host) = host {
        dst_endpoint.insert("hostname".into(), json!(host));
    }
    let mut observables = Vec::new();
    if let Some(name) = name {
        observables.push(
            json!({"name": "actor.user.name", "type_id": 4, "type": "User Name", "value": name}),
        );
    }
    if let Some(host) = host {
        observables.push(json!({"name": "dst_endpoint.hostname", "type_id": 1, "type": "Hostname", "value": host}));
        observables.push(json!({"name": "http_request.url.url_string", "type_id": 6, "type": "URL String", "value": event.action.target}));
    }
    observables.push(json!({"name": "resources.name", "type_id": 99, "type": "Other", "value": event.action.target}));
    // The AdmissionReview uid correlates with the kube-apiserver audit log.
    let request_uid = match event.action.attributes.get("uid") {
        Some(Value::String(uid)) if event.source == Source::Webhook && !uid.is_empty() => {
            uid.clone()
        }
        _ => event.id.clone(),
    };
    let mut message = format!(
        "{} {} {} {}",
        event.decision.outcome.as_str(),
        event.action.protocol,
        event.action.verb,
        event.action.target
    );
    if let Some(reason) = &event.decision.reason {
        message.push_str(": ");
        message.push_str(reason);
    }
    let mut resource = Map::new();
    resource.insert("name".into(), json!(event.action.target));
    resource.insert("type".into(), json!(resource_type(&event.action.protocol)));
    if let Some(owner) = &event.ownership.owner {
        resource.insert("owner".into(), json!({ "name": owner }));
    }
    let mut metadata = Map::new();
    metadata.insert("version".into(), json!(OCSF_VERSION));
    metadata.insert(
        "product".into(),
        json!({
            "name": "Tollgate",
            "vendor_name": "Tollgate",
            "version": env!("CARGO_PKG_VERSION"),
        }),
    );
    metadata.insert("uid".into(), json!(event.id));
    metadata.insert("log_name".into(), json!(SCHEMA));
    metadata.insert("log_provider".into(), json!("tollgate"));
    metadata.insert("original_time".into(), json!(event.time));
    if let Some(seq) = sequence {
        metadata.insert("sequence".into(), json!(seq));
    }
    metadata.insert("profiles".into(), json!(["security_control"]));
    let mut out = Map::new();
    out.insert("activity_id".into(), json!(activity_id));
    out.insert("activity_name".into(), json!(activity_name));
    out.insert("category_uid".into(), json!(CATEGORY_UID));
    out.insert("category_name".into(), json!("Application Activity"));
    out.insert("class_uid".into(), json!(CLASS_UID));
    out.insert("class_name".into(), json!("API Activity"));
    out.insert(
        "type_uid".into(),
        json!(u64::from(CLASS_UID) * 100 + u64::from(activity_id)),
    );
    out.insert(
        "type_name".into(),
        json!(format!("API Activity: {activity_name}")),
    );
    out.insert(
        "time".into(),
        json!(epoch_millis(&event.time).unwrap_or_default()),
    );
    out.insert("timezone_offset".into(), json!(0));
    out.insert("severity_id".into(), json!(severity_id));
    out.insert("severity".into(), json!(severity_name));
    out.insert("status_id".into(), json!(status_id));
    out.insert("status".into(), json!(status));
    out.insert("status_code".into(), json!(event.decision.outcome.as_str()));
    if let Some(reason) = &event.decision.reason {
        out.insert("status_detail".into(), json!(reason));
    }
    out.insert("action_id".into(), json!(action_id));
    out.insert("action".into(), json!(action));
    out.insert("disposition_id".into(), json!(disposition_id));
    out.insert("disposition".into(), json!(disposition));
    out.insert("message".into(), json!(message));
    out.insert("actor".into(), Value::Object(actor_obj));
    out.insert(
        "api".into(),
        json!({
            "operation": event.action.verb,
            "service": { "name": event.action.protocol },
            "request": { "uid": request_uid },
        }),
    );
    out.insert("src_endpoint".into(), Value::Object(src_endpoint));
    out.insert("dst_endpoint".into(), Value::Object(dst_endpoint));
    if let Some(host) = host {
        let mut request = Map::new();
        let method = event.action.verb.to_ascii_uppercase();
        if HTTP_METHODS.contains(&method.as_str()) {
            request.insert("http_method".into(), json!(method));
        }
        request.insert(
            "url".into(),
            json!({ "url_string": event.action.target, "hostname": host }),
        );
        out.insert("http_request".into(), Value::Object(request));
    }
    out.insert("observables".into(), Value::Array(observables));
    out.insert("resources".into(), json!([Value::Object(resource)]));
    out.insert("metadata".into(), Value::Object(metadata));
    out.insert(
        "unmapped".into(),
        json!({
            "tollgate": {
                "source": event.source.as_str(),
                "namespace": actor.namespace,
                "pod": actor.pod,
                "service_account": actor.service_account,
                "ownership": event.ownership,
                "rule": event.decision.rule,
                "controls": event.decision.controls,
                "priority": event.priority.as_str(),
                "outcome": event.decision.outcome.as_str(),
                "latency_us": event.latency_us,
                "redactions": event.redactions,
                "attributes": event.action.attributes,
            }
        }),
    );
    Value::Object(out)
}

#[cfg(test)]
mod tests;
