//! Sidecar injection and its anti-bypass checks, as one policy set
//! ([`Injector`], an engine [`Evaluator`] run after the built-in ones, so
//! secure defaults never touch the injected sidecar).
//!
//! **Who is injected.** A Pod is injected at CREATE when its namespace is
//! labelled `tollgate.dev/inject=enabled` (and the pod does not opt out
//! with the pod label `tollgate.dev/inject=disabled`), when its namespace
//! is labelled `tollgate.dev/inject=enforced` (no opt-out: the pod label is
//! ignored, with a warning), or when the pod itself is labelled
//! `tollgate.dev/inject=enabled` (unless its namespace says `disabled`).
//! `kube-system`, `kube-public` and `injection.excludedNamespaces` are
//! never injected. Namespace labels come from the engine's
//! [`tollgate_policies::namespace::NamespaceSource`].
//!
//! **Mutation** (`/mutate`): Pods at CREATE (pod specs are immutable
//! afterwards), and the new containers of a `pods/ephemeralcontainers`
//! UPDATE of an injected pod, which get the agents' proxy environment.
//! Controllers' templates are left alone: their Pods come through the
//! webhook when they are created, like Istio. The patch is a difference
//! against the template ([`patch`]), so re-invocation and re-applies
//! produce no operation.
//!
//! **Validation** (`/validate`): wherever injection applies, a Pod must
//! carry the sidecar exactly as the template renders it, field for field,
//! and nothing may route around it ([`bypass`], [`escape`], [`isolation`]).
//! Every later UPDATE of an injected pod, whatever its subresource, keeps
//! the sidecar as it was admitted and brings in no new problem
//! ([`update`]). Writes to the ConfigMaps injected pods read their policy
//! from, and `exec`/`attach`/`port-forward` into sidecars, are refused but
//! for the policy authors ([`guard`]). A controller's template is only
//! warned about what would make its Pods fail (host network, `NET_ADMIN`,
//! proxy env of its own, reserved volumes), so `kubectl apply` of a
//! Deployment tells the author before the ReplicaSet's Pods are refused.

use std::collections::BTreeMap;

use json_patch::PatchOperation;
use tollgate_policies::engine::{Context, EvalError, Evaluator, Findings, Operation};
use tollgate_policies::namespace::NamespaceInfo;
use tollgate_policies::{EnforcementAction, PolicySet, Violation, WorkloadKind};

pub mod bypass;
pub mod compare;
pub mod config;
pub mod escape;
pub mod guard;
pub mod isolation;
pub mod names;
pub mod patch;
pub mod template;
pub mod update;

pub use config::{InjectionConfig, InjectionConfigError, InjectionMode, PolicyAuthors};
pub use template::Template;

use names::{AUDIT_ANNOTATION, LABEL_INJECT};

/// Whether and how injection applies to one pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// Inject; `enforced` when the namespace forbids opting out.
    Inject {
        /// The namespace is `tollgate.dev/inject=enforced`.
        enforced: bool,
    },
    /// Do not inject.
    Skip(SkipReason),
}

/// Why a pod is not injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// `injection.enabled: false`.
    Disabled,
    /// A namespace that is never injected.
    ExcludedNamespace,
    /// The namespace is labelled `disabled`.
    NamespaceDisabled,
    /// The pod is labelled `disabled` in an `enabled` namespace.
    OptedOut,
    /// Neither the namespace nor the pod asks for injection.
    NotSelected,
}

impl SkipReason {
    /// The metric and audit-annotation value.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Disabled => "disabled",
            SkipReason::ExcludedNamespace => "excluded_namespace",
            SkipReason::NamespaceDisabled => "namespace_disabled",
            SkipReason::OptedOut => "opted_out",
            SkipReason::NotSelected => "not_selected",
        }
    }
}

/// The injection results recorded in the `injection` audit annotation and
/// counted by the webhook's `injections_total` metric.
pub const RESULTS: [&str; 5] = [
    "injected",
    "unchanged",
    "excluded_namespace",
    "namespace_disabled",
    "opted_out",
];

/// Sidecar injection as a policy set.
#[derive(Debug, Clone)]
pub struct Injector {
    config: InjectionConfig,
}

impl Injector {
    /// An injector rendering `config`'s template.
    pub fn new(config: InjectionConfig) -> Injector {
        Injector { config }
    }

    /// The config.
    pub fn config(&self) -> &InjectionConfig {
        &self.config
    }

    /// Whether injection applies to a pod with `pod_labels` in `namespace`,
    /// and warnings about the labels.
    pub fn select(
        &self,
        namespace: &str,
        ns: Option<&NamespaceInfo>,
        pod_labels: &BTreeMap<String, String>,
    ) -> (Selection, Vec<String>) {
        let mut notes = Vec::new();
        if !self.config.enabled {
            return (Selection::Skip(SkipReason::Disabled), notes);
        }
        if self.config.excluded(namespace) {
            return (Selection::Skip(SkipReason::ExcludedNamespace), notes);
        }
        let ns_value = ns
            .and_then(|n| n.labels.get(LABEL_INJECT))
            .map(String::as_str);
        let pod_value = pod_labels.get(LABEL_INJECT).map(String::as_str);
        if let Some(v) = ns_value
            && !matches!(v, "enabled" | "enforced" | "disabled")
        {
            notes.push(format!(
                "Tollgate: namespace {namespace:?} has label {LABEL_INJECT}={v:?}, which is not one of enabled, enforced, disabled; it is ignored"
            ));
        }
        if let Some(v) = pod_value
            && !matches!(v, "enabled" | "disabled")
        {
            notes.push(format!(
                "Tollgate: pod label {LABEL_INJECT}={v:?} is not one of enabled, disabled; it is ignored"
            ));
        }
        let selection = match (ns_value, pod_value) {
            (Some("enforced"), pod) => {
                if pod == Some("disabled") {
                    notes.push(format!(
                        "Tollgate: namespace {namespace:?} enforces sidecar injection ({LABEL_INJECT}=enforced), so the pod's {LABEL_INJECT}=disabled is ignored"
                    ));
                }
                Selection::Inject { enforced: true }
            }
            (Some("disabled"), _) => Selection::Skip(SkipReason::NamespaceDisabled),
            (Some("enabled"), Some("disabled")) => Selection::Skip(SkipReason::OptedOut),
            (Some("enabled"), _) | (_, Some("enabled")) => Selection::Inject { enforced: false },
            (_, Some("disabled")) => Selection::Skip(SkipReason::OptedOut),
            _ => Selection::Skip(SkipReason::NotSelected),
        };
        (selection, notes)
    }

    /// The template for a pod with these annotations.
    pub fn template(&self, annotations: &BTreeMap<String, String>) -> Template {
        Template::render(&self.config, annotations)
    }
}

fn violation(p: bypass::Problem, prefix: &str, action: EnforcementAction) -> Violation {
    Violation {
        policy: PolicySet::Injection,
        rule: p.rule.to_owned(),
        message: p.message,
        path: Some(format!("{prefix}{}", p.path)),
        container: p.container,
        controls: Vec::new(),
        action,
    }
}

impl Injector {
    /// Whether an UPDATE concerns an injected pod: it carries the sidecar,
    /// or injection applies to it by its old or its new labels (so removing
    /// the opt-in label is itself checked).
    fn injected_update(&self, ctx: &Context<'_>, new: &tollgate_policies::Workload) -> bool {
        let empty = BTreeMap::new();
        let selected = |w: &tollgate_policies::Workload| {
            let labels = w.pod_metadata.labels.as_ref().unwrap_or(&empty);
            matches!(
                self.select(&ctx.request.namespace, ctx.namespace, labels).0,
                Selection::Inject { .. }
            )
        };
        let carries = |w: &tollgate_policies::Workload| update::sidecar(&w.spec).is_some();
        self.config.enabled
            && !self.config.excluded(&ctx.request.namespace)
            && (selected(new) || ctx.old_workload.is_some_and(|o| carries(o) || selected(o)))
    }
}

/// True when the request's namespace is `tollgate.dev/inject=enforced`.
fn enforced(ctx: &Context<'_>) -> bool {
    ctx.namespace
        .and_then(|n| n.labels.get(LABEL_INJECT))
        .is_some_and(|v| v == "enforced")
}

impl Evaluator for Injector {
    fn policy_set(&self) -> PolicySet {
        PolicySet::Injection
    }

    /// The anti-bypass checks are never relaxed for an "unchanged" UPDATE
    /// of a pod or of anything that is not a workload: who may write a
    /// policy ConfigMap or connect into a sidecar does not depend on what
    /// is written, and an injected pod's UPDATE is already compared with
    /// the pod as it was admitted. Pod templates (Deployments, ...) follow
    /// the engine's rule, so scaling an old workload never freezes it.
    fn judged_unchanged(&self, ctx: &Context<'_>) -> bool {
        match ctx.workload {
            Some(workload) if workload.kind != WorkloadKind::Pod => {
                tollgate_policies::engine::update::is_update(ctx)
                    && tollgate_policies::engine::update::template_unchanged(ctx)
            }
            _ => false,
        }
    }

    fn validate(&self, ctx: &Context<'_>, findings: &mut Findings) -> Result<(), EvalError> {
        let Some(workload) = ctx.workload else {
            if let Some(r) = guard::check(&self.config, ctx.request, ctx.namespace) {
                findings.violations.push(Violation {
                    policy: PolicySet::Injection,
                    rule: r.rule.to_owned(),
                    message: r.message,
                    path: Some(r.path),
                    container: None,
                    controls: Vec::new(),
                    action: EnforcementAction::Deny,
                });
            }
            return Ok(());
        };
        let empty = BTreeMap::new();
        let annotations = workload.pod_metadata.annotations.as_ref().unwrap_or(&empty);
        let enforced = enforced(ctx);
        let prefix = workload.kind.template_path();
        // Every UPDATE of an injected pod, whatever its subresource, is
        // checked against the pod as it was admitted.
        if ctx.request.operation == Operation::Update && workload.kind == WorkloadKind::Pod {
            if !self.injected_update(ctx, workload) {
                return Ok(());
            }
            let template = self.template(annotations);
            let new = (&workload.pod_metadata, &workload.spec);
            let problems = match ctx.old_workload {
                Some(old) => {
                    update::check((&old.pod_metadata, &old.spec), new, &template, enforced)
                }
                None => bypass::check(new.0, new.1, &template, bypass::Scope::Running, enforced),
            };
            findings.violations.extend(
                problems
                    .into_iter()
                    .map(|p| violation(p, prefix, EnforcementAction::Deny)),
            );
            return Ok(());
        }
        let (scope, action) = match (
            ctx.request.operation,
            workload.kind,
            ctx.request.sub_resource.as_str(),
        ) {
            (Operation::Create, WorkloadKind::Pod, "") => {
                (bypass::Scope::Pod, EnforcementAction::Deny)
            }
            (Operation::Create | Operation::Update, kind, "") if kind != WorkloadKind::Pod => {
                (bypass::Scope::PodTemplate, EnforcementAction::Warn)
            }
            _ => return Ok(()),
        };
        let labels = workload.pod_metadata.labels.as_ref().unwrap_or(&empty);
        let (selection, _) = self.select(&ctx.request.namespace, ctx.namespace, labels);
        if !matches!(selection, Selection::Inject { .. }) {
            return Ok(());
        }
        let template = self.template(annotations);
        if scope == bypass::Scope::Pod {
            for (path, message) in &template.errors {
                findings.violations.push(Violation {
                    policy: PolicySet::Injection,
                    rule: "annotation".into(),
                    message: message.clone(),
                    path: Some(format!("{prefix}{path}")),
                    container: None,
                    controls: Vec::new(),
                    action,
                });
            }
        }
        findings.violations.extend(
            bypass::check(
                &workload.pod_metadata,
                &workload.spec,
                &template,
                scope,
                enforced,
            )
            .into_iter()
            .map(|p| violation(p, prefix, action)),
        );
        Ok(())
    }

    fn mutate(
        &self,
        ctx: &Context<'_>,
        findings: &mut Findings,
    ) -> Result<Vec<PatchOperation>, EvalError> {
        let Some(workload) = ctx.workload else {
            return Ok(Vec::new());
        };
        if ctx.request.operation == Operation::Update
            && workload.kind == WorkloadKind::Pod
            && ctx.request.sub_resource == "ephemeralcontainers"
        {
            if !self.injected_update(ctx, workload) {
                return Ok(Vec::new());
            }
            let empty = BTreeMap::new();
            let annotations = workload.pod_metadata.annotations.as_ref().unwrap_or(&empty);
            let template = self.template(annotations);
            let computed =
                patch::ephemeral(&workload.spec, ctx.old_workload.map(|o| &o.spec), &template);
            findings.warnings.extend(computed.notes);
            return Ok(computed.ops);
        }
        if !(ctx.request.operation == Operation::Create
            && workload.kind == WorkloadKind::Pod
            && ctx.request.sub_resource.is_empty())
        {
            return Ok(Vec::new());
        }
        let Some(object) = ctx.object else {
            return Ok(Vec::new());
        };
        let empty = BTreeMap::new();
        let labels = workload.pod_metadata.labels.as_ref().unwrap_or(&empty);
        let annotations = workload.pod_metadata.annotations.as_ref().unwrap_or(&empty);
        let (selection, notes) = self.select(&ctx.request.namespace, ctx.namespace, labels);
        findings.warnings.extend(notes);
        match selection {
            Selection::Skip(SkipReason::NotSelected | SkipReason::Disabled) => Ok(Vec::new()),
            Selection::Skip(reason) => {
                findings
                    .audit_annotations
                    .insert(AUDIT_ANNOTATION.to_owned(), reason.as_str().to_owned());
                Ok(Vec::new())
            }
            Selection::Inject { .. } => {
                let template = self.template(annotations);
                for (path, message) in &template.errors {
                    findings.violations.push(Violation {
                        policy: PolicySet::Injection,
                        rule: "annotation".into(),
                        message: message.clone(),
                        path: Some(path.clone()),
                        container: None,
                        controls: Vec::new(),
                        action: EnforcementAction::Deny,
                    });
                }
                let computed = patch::compute(object.value(), &workload.spec, &template);
                let result = if computed.ops.is_empty() {
                    "unchanged"
                } else {
                    findings.warnings.extend(template.notes.iter().cloned());
                    findings.warnings.extend(computed.notes);
                    "injected"
                };
                findings
                    .audit_annotations
                    .insert(AUDIT_ANNOTATION.to_owned(), result.to_owned());
                Ok(computed.ops)
            }
        }
    }
}
