//! What an injected pod's own namespace may not touch: the ConfigMaps its
//! sidecar reads its policy and config from, and the sidecar container
//! through `exec`, `attach` or `port-forward`. Only the configured policy
//! authors ([`PolicyAuthors`]) may, and never a ServiceAccount of the
//! object's own namespace, whatever is configured: the agents run as those.
//!
//! **Which ConfigMaps are protected**, in every namespace where injection
//! can apply (not excluded, not labelled `tollgate.dev/inject=disabled`):
//! - those labelled `tollgate.dev/policy` (any value), before or after the
//!   write, so removing the label is itself a protected write;
//! - those named by `injection.defaultActionPolicy` or
//!   `injection.sidecarConfig`;
//! - in namespaces labelled `tollgate.dev/inject=enabled` or `enforced`,
//!   every ConfigMap that holds, before or after the write, the key the
//!   sidecar reads an ActionPolicy or OSSA manifest from
//!   (`injection.actionPolicyKey`, `injection.ossaManifestKey`): a policy
//!   is protected by what it is, not only by how it is labelled.
//!
//! `exec` and `attach` into a container named `tollgate-sidecar` are
//! refused wherever injection can apply; `port-forward` reaches the pod's
//! loopback, where the proxy listens, and the port it reaches is not
//! known at admission, so namespaces that enforce injection refuse it.

use serde_json::Value;
use tollgate_policies::engine::{AdmissionRequest, Operation};
use tollgate_policies::namespace::NamespaceInfo;

use super::config::{InjectionConfig, PolicyAuthors};
use super::names::{LABEL_INJECT, LABEL_POLICY, SIDECAR_NAME};

/// A refused request: the rule, the field and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The rule id (`policyConfigMap`, `sidecarExec`, `portForward`).
    pub rule: &'static str,
    /// The field at fault.
    pub path: String,
    /// What is refused and who may do it.
    pub message: String,
}

/// The ServiceAccounts kube-controller-manager deletes objects as when a
/// namespace or an owner is deleted: they may delete protected ConfigMaps
/// (a namespace must be able to go away).
const DELETERS: [&str; 2] = [
    "system:serviceaccount:kube-system:namespace-controller",
    "system:serviceaccount:kube-system:generic-garbage-collector",
];

/// The refusal for `request`, if it is a write to a protected ConfigMap or
/// a connection into a sidecar by someone who is not a policy author.
pub fn check(
    config: &InjectionConfig,
    request: &AdmissionRequest,
    namespace: Option<&NamespaceInfo>,
) -> Option<Refusal> {
    if !config.enabled || config.excluded(&request.namespace) {
        return None;
    }
    let ns_label = namespace
        .and_then(|n| n.labels.get(LABEL_INJECT))
        .map(String::as_str);
    if ns_label == Some("disabled") {
        return None;
    }
    let core = request.resource.group.is_empty();
    let refusal = match (
        request.operation,
        core,
        request.resource.resource.as_str(),
        request.sub_resource.as_str(),
    ) {
        (Operation::Create | Operation::Update | Operation::Delete, true, "configmaps", "") => {
            config_map(config, request, ns_label)?
        }
        (Operation::Connect, true, "pods", sub @ ("exec" | "attach")) => {
            let container = request
                .object
                .as_ref()
                .and_then(|o| o.value().get("container"))
                .and_then(Value::as_str)
                .unwrap_or("");
            if container != SIDECAR_NAME {
                return None;
            }
            Refusal {
                rule: "sidecarExec",
                path: "container".into(),
                message: format!(
                    "{sub} into {SIDECAR_NAME} is refused: inside it the interception CA key, the audit journal and its signing key are reachable and the proxy can be stopped; {}",
                    who(&config.policy_authors)
                ),
            }
        }
        (Operation::Connect, true, "pods", "portforward") if ns_label == Some("enforced") => {
            Refusal {
                rule: "portForward",
                path: "ports".into(),
                message: format!(
                    "port-forward into a pod of a namespace that enforces sidecar injection is refused: it reaches the pod's loopback, where the sidecar's proxy listens, and the port is not known at admission; reach the agent through a Service; {}",
                    who(&config.policy_authors)
                ),
            }
        }
        _ => return None,
    };
    let user = &request.user_info;
    let own_namespace = user
        .username
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
        .is_some_and(|(ns, _)| ns == request.namespace);
    let author = !own_namespace
        && (config.policy_authors.users.contains(&user.username)
            || user
                .groups
                .iter()
                .any(|g| config.policy_authors.groups.contains(g)));
    let deleter =
        request.operation == Operation::Delete && DELETERS.contains(&user.username.as_str());
    if author || deleter {
        return None;
    }
    let mut refusal = refusal;
    if own_namespace {
        refusal.message.push_str(&format!(
            " ({} is a ServiceAccount of namespace {:?}, which never may)",
            user.username, request.namespace
        ));
    }
    Some(refusal)
}

fn config_map(
    config: &InjectionConfig,
    request: &AdmissionRequest,
    ns_label: Option<&str>,
) -> Option<Refusal> {
    let objects: Vec<&Value> = [request.object.as_ref(), request.old_object.as_ref()]
        .into_iter()
        .flatten()
        .map(|o| o.value())
        .collect();
    let name = if request.name.is_empty() {
        objects
            .iter()
            .find_map(|o| o.pointer("/metadata/name").and_then(Value::as_str))
            .unwrap_or("")
    } else {
        request.name.as_str()
    };
    let labelled = objects.iter().any(|o| {
        o.pointer("/metadata/labels")
            .and_then(|l| l.get(LABEL_POLICY))
            .is_some()
    });
    let named = [&config.default_action_policy, &config.sidecar_config]
        .into_iter()
        .flatten()
        .any(|n| n == name);
    let keys = [&config.action_policy_key, &config.ossa_manifest_key];
    let holds_policy = matches!(ns_label, Some("enabled" | "enforced"))
        && objects.iter().any(|o| {
            ["data", "binaryData"].iter().any(|field| {
                o.get(*field)
                    .and_then(Value::as_object)
                    .is_some_and(|m| keys.iter().any(|k| m.contains_key(k.as_str())))
            })
        });
    let why = if labelled {
        format!("is labelled {LABEL_POLICY}")
    } else if named {
        "is named by the injection config (defaultActionPolicy or sidecarConfig)".to_owned()
    } else if holds_policy {
        format!(
            "holds the key {:?} or {:?} that injected sidecars read their policy from",
            config.action_policy_key, config.ossa_manifest_key
        )
    } else {
        return None;
    };
    Some(Refusal {
        rule: "policyConfigMap",
        path: "metadata.name".into(),
        message: format!(
            "{} of ConfigMap {name:?} is refused: it {why}, and agents must not change the policy that judges them; {}",
            match request.operation {
                Operation::Create => "creation",
                Operation::Delete => "deletion",
                _ => "a change",
            },
            who(&config.policy_authors)
        ),
    })
}

fn who(authors: &PolicyAuthors) -> String {
    if authors.users.is_empty() && authors.groups.is_empty() {
        "no policy authors are configured: list the people or pipelines who may in injection.policyAuthors".to_owned()
    } else {
        let mut names: Vec<String> = authors.users.iter().map(|u| format!("user {u}")).collect();
        names.extend(authors.groups.iter().map(|g| format!("group {g}")));
        format!(
            "only the policy authors may ({}, injection.policyAuthors)",
            names.join(", ")
        )
    }
}
