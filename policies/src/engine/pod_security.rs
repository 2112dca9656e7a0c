//! Pod Security as an admission policy set, with the request handling of
//! Kubernetes Pod Security Admission (`admission.go`):
//!
//! - Pods: CREATE and UPDATE, including the `ephemeralcontainers` and
//!   `resize` subresources and any subresource this build does not know
//!   (fail safe); `exec`, `attach`, `binding`, `eviction`, `log`,
//!   `portforward`, `proxy` and `status` are skipped. An UPDATE that changes
//!   nothing Pod Security judges (images, seccomp annotations, containers
//!   added) is admitted without evaluation.
//! - Pod templates of controllers: CREATE and UPDATE of the main resource.
//!   Unlike PSA (which only warns there), every mode applies to the kinds
//!   configured for it, so a bad Deployment is refused at `kubectl apply`.
//! - Exemptions by namespace, requesting user and runtime class.
//! - Enforce, audit and warn, each at its own level and version; warnings
//!   are not added to a request that is denied.
//! - Namespace objects: invalid `pss.tollgate.dev/*` label values are
//!   refused on CREATE, and on UPDATE when they changed.

use std::collections::BTreeMap;

use json_patch::PatchOperation;
use serde_json::Value;

use crate::config::PodSecurityConfig;
use crate::defaults::DefaultsConfig;
use crate::pss::PssViolation;
use crate::{EnforcementAction, Level, LevelVersion, PolicySet, Violation, Workload, WorkloadKind};

use super::labels::{self, LabelError, Mode, NamespacePolicy};
use super::{
    Context, DefaultsMutation, DefaultsScope, EvalError, Exemption, Findings, Object, Operation,
    PssChecker,
};

/// Pod subresources that never change what Pod Security judges.
const IGNORED_POD_SUBRESOURCES: [&str; 8] = [
    "exec",
    "attach",
    "binding",
    "eviction",
    "log",
    "portforward",
    "proxy",
    "status",
];

/// The legacy pod-level seccomp annotation.
const SECCOMP_POD_ANNOTATION: &str = "seccomp.security.alpha.kubernetes.io/pod";
/// The legacy per-container seccomp annotation prefix.
const SECCOMP_CONTAINER_PREFIX: &str = "container.seccomp.security.alpha.kubernetes.io/";

/// Audit annotation keys (kube-apiserver prefixes the webhook's name).
const ANNOTATION_ENFORCE: &str = "pod-security.enforce-policy";
const ANNOTATION_AUDIT: &str = "pod-security.audit-violations";
const ANNOTATION_EXEMPT: &str = "pod-security.exempt";
const ANNOTATION_ERROR: &str = "pod-security.error";

/// Pod Security Standards as an [`super::Evaluator`].
pub struct PodSecurityEvaluator {
    config: PodSecurityConfig,
    cluster_defaults: NamespacePolicy,
    fixed: Option<LevelVersion>,
    checker: PssChecker,
    defaults: DefaultsConfig,
    mutation: DefaultsMutation,
}

/// The modes that apply to one request, resolved.
struct Plan {
    policy: NamespacePolicy,
    errors: Vec<LabelError>,
    enforce: bool,
    warn: bool,
    audit: bool,
}

impl Plan {
    fn level(&self, mode: Mode) -> Option<LevelVersion> {
        let on = match mode {
            Mode::Enforce => self.enforce,
            Mode::Warn => self.warn,
            Mode::Audit => self.audit,
        };
        let lv = self.policy.mode(mode);
        (on && lv.level != Level::Privileged).then_some(lv)
    }
}

impl PodSecurityEvaluator {
    /// An evaluator for `config`. With `fixed`, every mode evaluates that
    /// level and namespace labels are ignored.
    pub fn new(
        config: &PodSecurityConfig,
        defaults: &DefaultsConfig,
        fixed: Option<LevelVersion>,
        checker: PssChecker,
        mutation: DefaultsMutation,
    ) -> PodSecurityEvaluator {
        PodSecurityEvaluator {
            cluster_defaults: NamespacePolicy::defaults(config),
            config: config.clone(),
            fixed,
            checker,
            defaults: defaults.clone(),
            mutation,
        }
    }

    fn plan(&self, ctx: &Context<'_>, kind: WorkloadKind) -> Plan {
        let (policy, errors) = match self.fixed {
            Some(lv) => (
                NamespacePolicy {
                    enforce: lv,
                    warn: lv,
                    audit: lv,
                },
                Vec::new(),
            ),
            None => match ctx.namespace {
                Some(ns) => NamespacePolicy::from_labels(&ns.labels, self.cluster_defaults),
                None => (self.cluster_defaults, Vec::new()),
            },
        };
        Plan {
            policy,
            errors,
            enforce: self.config.enforce.applies_to(kind),
            warn: self.config.warn.applies_to(kind),
            audit: self.config.audit.applies_to(kind),
        }
    }

    /// The exemption that applies to the request itself (namespace or
    /// user), if any.
    fn request_exemption(&self, ctx: &Context<'_>) -> Option<&'static str> {
        let ex = &self.config.exemptions;
        let ns = &ctx.request.namespace;
        let user = &ctx.request.user_info.username;
        if !ns.is_empty() && ex.namespaces.iter().any(|n| n == ns) {
            Some("namespace")
        } else if !user.is_empty() && ex.usernames.iter().any(|u| u == user) {
            Some("user")
        } else {
            None
        }
    }

    fn runtime_class_exempt(&self, workload: &Workload) -> bool {
        match workload.spec.runtime_class_name.as_deref() {
            Some(rc) if !rc.is_empty() => self
                .config
                .exemptions
                .runtime_classes
                .iter()
                .any(|r| r == rc),
            _ => false,
        }
    }

    /// True when Pod Security judges this request at all (kind, operation,
    /// subresource), as PSA decides it.
    fn in_scope(ctx: &Context<'_>, workload: &Workload) -> bool {
        if !matches!(ctx.request.operation, Operation::Create | Operation::Update) {
            return false;
        }
        let sub = ctx.request.sub_resource.as_str();
        if workload.kind == WorkloadKind::Pod {
            !IGNORED_POD_SUBRESOURCES.contains(&sub)
        } else {
            sub.is_empty()
        }
    }

    fn exempt(findings: &mut Findings, reason: &'static str) {
        findings.exemptions.push(Exemption {
            policy: PolicySet::PodSecurity,
            reason,
        });
        findings
            .audit_annotations
            .insert(ANNOTATION_EXEMPT.to_owned(), reason.to_owned());
    }

    fn validate_namespace(&self, ctx: &Context<'_>, findings: &mut Findings) {
        if self.fixed.is_some() {
            return;
        }
        let new_labels = object_labels(ctx.object.map(Object::value));
        let (_, new_errors) = NamespacePolicy::from_labels(&new_labels, self.cluster_defaults);
        for key in labels::unknown_labels(&new_labels) {
            findings.warnings.push(format!(
                "metadata.labels[{key}]: not a Pod Security label (expected one of pss.tollgate.dev/enforce, warn, audit and their -version labels); it has no effect"
            ));
        }
        let refuse = match ctx.request.operation {
            Operation::Create => !new_errors.is_empty(),
            Operation::Update => {
                let old_labels = object_labels(ctx.request.old_object.as_ref().map(Object::value));
                let (_, old_errors) =
                    NamespacePolicy::from_labels(&old_labels, self.cluster_defaults);
                !new_errors.is_empty() && new_errors != old_errors
            }
            Operation::Delete | Operation::Connect => false,
        };
        if refuse {
            for err in new_errors {
                findings.violations.push(Violation {
                    policy: PolicySet::PodSecurity,
                    rule: "namespaceLabel".to_owned(),
                    message: format!("invalid value {:?}: must be {}", err.value, err.expected),
                    path: Some(format!("metadata.labels[{}]", err.label)),
                    container: None,
                    controls: Vec::new(),
                    action: EnforcementAction::Deny,
                });
            }
        }
    }

    fn violations(
        &self,
        workload: &Workload,
        action: EnforcementAction,
        found: &[PssViolation],
    ) -> impl Iterator<Item = Violation> {
        let prefix = workload.kind.template_path();
        // Check messages end with the level and version evaluated.
        found.iter().map(move |v| Violation {
            policy: PolicySet::PodSecurity,
            rule: v.check.to_owned(),
            message: v.message.clone(),
            path: Some(format!("{prefix}{}", v.path)),
            container: v.container.clone(),
            controls: Vec::new(),
            action,
        })
    }
}

impl super::Evaluator for PodSecurityEvaluator {
    fn policy_set(&self) -> PolicySet {
        PolicySet::PodSecurity
    }

    fn validate(&self, ctx: &Context<'_>, findings: &mut Findings) -> Result<(), EvalError> {
        if ctx.request.is_namespace() {
            self.validate_namespace(ctx, findings);
            return Ok(());
        }
        let Some(workload) = ctx.workload else {
            return Ok(());
        };
        if !Self::in_scope(ctx, workload) {
            return Ok(());
        }
        if let Some(reason) = self.request_exemption(ctx) {
            Self::exempt(findings, reason);
            return Ok(());
        }
        let plan = self.plan(ctx, workload.kind);
        let modes = [Mode::Enforce, Mode::Audit, Mode::Warn];
        if plan.errors.is_empty() && modes.iter().all(|m| plan.level(*m).is_none()) {
            return Ok(());
        }
        if ctx.request.operation == Operation::Update
            && workload.kind == WorkloadKind::Pod
            && let Some(old) = ctx.old_workload
            && !is_significant_pod_update(workload, old)
        {
            return Ok(());
        }
        if self.runtime_class_exempt(workload) {
            Self::exempt(findings, "runtimeClass");
            return Ok(());
        }
        if !plan.errors.is_empty() {
            let text = plan
                .errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            findings.audit_annotations.insert(
                ANNOTATION_ERROR.to_owned(),
                format!("Failed to parse policy: {text}"),
            );
            for err in &plan.errors {
                findings.warnings.push(format!(
                    "namespace {:?} has an invalid Pod Security label: {err}; evaluating {} instead",
                    ctx.request.namespace,
                    match err.label.as_str() {
                        labels::ENFORCE => "restricted",
                        labels::WARN | labels::AUDIT => "privileged",
                        _ => "latest",
                    }
                ));
            }
        }

        // One evaluation per distinct level and version.
        let mut cache: Vec<((Level, u16), Vec<PssViolation>)> = Vec::new();
        let mut run = |lv: LevelVersion| -> Vec<PssViolation> {
            let key = (lv.level, lv.version.minor());
            if let Some((_, found)) = cache.iter().find(|(k, _)| *k == key) {
                return found.clone();
            }
            let found =
                (self.checker)(lv.level, lv.version, &workload.pod_metadata, &workload.spec);
            cache.push((key, found.clone()));
            found
        };

        let mut denied = false;
        if plan.enforce {
            let lv = plan.policy.enforce;
            findings
                .audit_annotations
                .insert(ANNOTATION_ENFORCE.to_owned(), lv.to_string());
            if let Some(lv) = plan.level(Mode::Enforce) {
                let found = run(lv);
                denied = !found.is_empty();
                findings.violations.extend(self.violations(
                    workload,
                    EnforcementAction::Deny,
                    &found,
                ));
            }
        }
        if let Some(lv) = plan.level(Mode::Audit) {
            let found = run(lv);
            if !found.is_empty() {
                let checks = distinct_checks(&found);
                findings.audit_annotations.insert(
                    ANNOTATION_AUDIT.to_owned(),
                    format!("would violate PodSecurity {:?}: {checks}", lv.to_string()),
                );
                findings.violations.extend(self.violations(
                    workload,
                    EnforcementAction::Audit,
                    &found,
                ));
            }
        }
        if !denied && let Some(lv) = plan.level(Mode::Warn) {
            let found = run(lv);
            findings
                .violations
                .extend(self.violations(workload, EnforcementAction::Warn, &found));
        }
        if ctx.evidence {
            // The checks of the strictest mode in force are what this
            // object was held to.
            let judged = [Mode::Enforce, Mode::Warn, Mode::Audit]
                .into_iter()
                .filter_map(|m| plan.level(m))
                .max_by_key(|lv| lv.level);
            if let Some(lv) = judged {
                findings
                    .evaluated
                    .extend(crate::report::pod_security_evidence(
                        crate::pss::active_checks(lv.level, lv.version),
                    ));
            }
        }
        Ok(())
    }

    /// Pod Security reads the pod template only: metadata of the object
    /// itself, its replica count and status never change a verdict. For
    /// Pods, an update PSA would not judge (see
    /// [`is_significant_pod_update`]).
    fn judged_unchanged(&self, ctx: &Context<'_>) -> bool {
        match (ctx.workload, ctx.old_workload) {
            (Some(new), Some(old))
                if new.kind == WorkloadKind::Pod && super::update::is_update(ctx) =>
            {
                !is_significant_pod_update(new, old)
            }
            _ => super::update::template_unchanged(ctx),
        }
    }

    fn mutate(
        &self,
        ctx: &Context<'_>,
        findings: &mut Findings,
    ) -> Result<Vec<PatchOperation>, EvalError> {
        let Some(workload) = ctx.workload else {
            return Ok(Vec::new());
        };
        // Pod specs are immutable after creation except for ephemeral
        // containers; controllers' templates are not.
        let sub = ctx.request.sub_resource.as_str();
        let scope = match (ctx.request.operation, workload.kind, sub) {
            (Operation::Create, _, "") => DefaultsScope::Pod,
            (Operation::Update, WorkloadKind::Pod, "ephemeralcontainers") => {
                DefaultsScope::EphemeralContainers
            }
            (Operation::Update, kind, "") if kind != WorkloadKind::Pod => DefaultsScope::Pod,
            _ => return Ok(Vec::new()),
        };
        if let Some(reason) = self.request_exemption(ctx) {
            Self::exempt(findings, reason);
            return Ok(Vec::new());
        }
        if self.runtime_class_exempt(workload) {
            Self::exempt(findings, "runtimeClass");
            return Ok(Vec::new());
        }
        let plan = self.plan(ctx, workload.kind);
        if plan.level(Mode::Enforce).is_none() {
            return Ok(Vec::new());
        }
        Ok((self.mutation)(workload, &self.defaults, scope))
    }
}

fn distinct_checks(found: &[PssViolation]) -> String {
    let mut checks: Vec<&str> = Vec::new();
    for v in found {
        if !checks.contains(&v.check) {
            checks.push(v.check);
        }
    }
    checks.join(", ")
}

fn object_labels(object: Option<&Value>) -> BTreeMap<String, String> {
    object
        .and_then(|o| o.pointer("/metadata/labels"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// True when a pod update changes something Pod Security judges. Pod specs
/// are immutable except images, the legacy seccomp annotations and added
/// ephemeral containers (as PSA's `isSignificantPodUpdate`).
pub fn is_significant_pod_update(new: &Workload, old: &Workload) -> bool {
    let annotation = |w: &Workload, key: &str| -> Option<String> {
        w.pod_metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key).cloned())
    };
    if annotation(new, SECCOMP_POD_ANNOTATION) != annotation(old, SECCOMP_POD_ANNOTATION) {
        return true;
    }
    let container_changed = |name: &str, image: &Option<String>, old_image: &Option<String>| {
        let key = format!("{SECCOMP_CONTAINER_PREFIX}{name}");
        image != old_image || annotation(new, &key) != annotation(old, &key)
    };
    let (spec, old_spec) = (&new.spec, &old.spec);
    if spec.containers.len() != old_spec.containers.len() {
        return true;
    }
    let init = spec.init_containers.as_deref().unwrap_or_default();
    let old_init = old_spec.init_containers.as_deref().unwrap_or_default();
    if init.len() != old_init.len() {
        return true;
    }
    let pairs = spec
        .containers
        .iter()
        .zip(&old_spec.containers)
        .chain(init.iter().zip(old_init));
    for (c, o) in pairs {
        if container_changed(&c.name, &c.image, &o.image) {
            return true;
        }
    }
    let old_ephemeral = old_spec.ephemeral_containers.as_deref().unwrap_or_default();
    for c in spec.ephemeral_containers.as_deref().unwrap_or_default() {
        match old_ephemeral.iter().find(|o| o.name == c.name) {
            None => return true,
            Some(o) => {
                if container_changed(&c.name, &c.image, &o.image) {
                    return true;
                }
            }
        }
    }
    false
}
