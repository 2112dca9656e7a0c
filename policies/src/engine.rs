//! The admission engine: a typed admission request in, an [`Evaluation`]
//! out (the [`Verdict`] with every violation, the admission warnings, and
//! the JSON Patch of the mutation). No I/O: namespace labels come through a
//! [`NamespaceSource`], everything else is in the request.
//!
//! Policy sets plug in as [`Evaluator`]s. A [`Snapshot`] is an immutable,
//! compiled set of evaluators built from a [`PolicyConfig`]; the [`Engine`]
//! holds the current snapshot and swaps in a new one atomically, so a
//! request always sees one whole policy set, read once.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use json_patch::PatchOperation;
use serde_json::Value;

use crate::config::PolicyConfig;
use crate::gatekeeper::ConstraintStore;
use crate::namespace::{NamespaceInfo, NamespaceSource};
use crate::pss::PssViolation;
use crate::report::Evaluated;
use crate::{EnforcementAction, Level, LevelVersion, PolicySet, Verdict, Version, Violation};
use crate::{Workload, WorkloadKind};
use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

pub mod labels;
mod message;
mod mutation;
mod object;
pub mod offline;
mod pod_security;
mod request;
mod sets;
pub mod update;

pub use labels::{LabelError, Mode, NamespacePolicy};
pub use message::{
    MAX_DENIAL_LINE_CHARS, MAX_DENIAL_LINES, MAX_WARNING_CHARS, MAX_WARNINGS_TOTAL_CHARS,
};
pub use mutation::{DefaultsMutation, DefaultsScope, secure_defaults};
pub use object::{MAX_CONTAINERS, Object};
pub use pod_security::PodSecurityEvaluator;
pub use request::{
    AdmissionRequest, GroupVersionKind, GroupVersionResource, Operation, UserInfo, workload_group,
};
pub use sets::{ComplianceEvaluator, ConstraintsEvaluator, OwnershipEvaluator};

/// The Pod Security check function: level, version, pod metadata and spec
/// in, every violation out ([`crate::pss::check_pod`] by default).
pub type PssChecker = fn(Level, Version, &ObjectMeta, &PodSpec) -> Vec<PssViolation>;

/// What an evaluator sees of one request.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The request.
    pub request: &'a AdmissionRequest,
    /// The object to judge: the request's object, or during mutation the
    /// object with earlier evaluators' patches applied. [`Object::value`]
    /// parses it (once per request).
    pub object: Option<&'a Object>,
    /// The object's pod spec and metadata, when it is a workload.
    pub workload: Option<&'a Workload>,
    /// The old object's, on UPDATE of a workload.
    pub old_workload: Option<&'a Workload>,
    /// The request's namespace, when the namespace source knows it.
    pub namespace: Option<&'a NamespaceInfo>,
    /// Record the rules that ran, passed or failed ([`Options::evidence`]).
    pub evidence: bool,
}

/// What evaluators report about one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Findings {
    /// Violations, each with its enforcement action.
    pub violations: Vec<Violation>,
    /// Warnings that are not violations (e.g. a misspelt namespace label).
    pub warnings: Vec<String>,
    /// Annotations for the Kubernetes audit log (`auditAnnotations`); keys
    /// are plain names (kube-apiserver prefixes the webhook name).
    pub audit_annotations: BTreeMap<String, String>,
    /// Policy sets that skipped the request by exemption, and why.
    pub exemptions: Vec<Exemption>,
    /// The rules that judged the request, passed or failed, with the
    /// controls they evidence (only when [`Context::evidence`] is set).
    pub evaluated: Vec<Evaluated>,
    /// The compliance frameworks in scope for the object.
    pub frameworks: Vec<String>,
}

/// A policy set skipped a request because it is exempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exemption {
    /// The policy set.
    pub policy: PolicySet,
    /// `namespace`, `user` or `runtimeClass`.
    pub reason: &'static str,
}

/// An evaluator could not judge a request. The engine turns it into a
/// denial (fail closed) naming the policy set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// The object lacks something the policy needs, or has it in a shape the
    /// policy cannot read.
    #[error("{0}")]
    Object(String),
    /// The policy itself failed (an evaluation error or limit).
    #[error("{0}")]
    Policy(String),
}

/// A policy set, as the engine runs it.
pub trait Evaluator: Send + Sync {
    /// Which policy set this is (for `--only`, metrics and messages).
    fn policy_set(&self) -> PolicySet;

    /// Judges the request, adding violations to `findings`.
    fn validate(&self, ctx: &Context<'_>, findings: &mut Findings) -> Result<(), EvalError>;

    /// The JSON Patch operations this policy set applies to the object
    /// (paths from the object's root). Default: none.
    fn mutate(
        &self,
        ctx: &Context<'_>,
        findings: &mut Findings,
    ) -> Result<Vec<PatchOperation>, EvalError> {
        let _ = (ctx, findings);
        Ok(Vec::new())
    }

    /// True when `ctx` is an UPDATE that leaves every field this policy set
    /// reads unchanged: its refusals then become warnings, and it applies
    /// no mutation. Default: the object is the same without what only
    /// controllers and the API server write (status, bookkeeping metadata,
    /// finalizers, the replica count).
    fn judged_unchanged(&self, ctx: &Context<'_>) -> bool {
        update::is_update(ctx) && update::object_unchanged(ctx)
    }
}

/// Which policy sets to run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Run only these sets (`--only`); `None` runs every configured set.
    pub only: Option<Vec<PolicySet>>,
    /// Record every rule that ran, passed or failed, with its controls
    /// (`tollgate check` reports, compliance evidence). Off on the
    /// webhook's hot path.
    pub evidence: bool,
}

/// Why a request could not be evaluated at all. The webhook answers with
/// `allowed: false` and this code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// 400 for a request whose object cannot be read, 500 for an internal
    /// failure.
    pub code: u16,
    /// The Kubernetes status reason: `BadRequest` or `InternalError`.
    pub reason: &'static str,
    /// What went wrong.
    pub message: String,
}

/// The object a request is about, for messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    /// The kind (`Deployment`).
    pub kind: String,
    /// The name, or the `generateName` prefix followed by `*`.
    pub name: String,
    /// The namespace (empty for cluster-scoped objects).
    pub namespace: String,
}

/// The outcome of evaluating one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evaluation {
    /// The object judged.
    pub subject: Subject,
    /// Every violation, with its action.
    pub verdict: Verdict,
    /// The mutation (empty for validation).
    pub patch: Vec<PatchOperation>,
    /// Warnings that are not violations.
    pub notes: Vec<String>,
    /// Annotations for the Kubernetes audit log.
    pub audit_annotations: BTreeMap<String, String>,
    /// Exemptions that applied.
    pub exemptions: Vec<Exemption>,
    /// Set when the request could not be evaluated.
    pub failure: Option<Failure>,
    /// The rules that ran ([`Options::evidence`]).
    pub evaluated: Vec<Evaluated>,
    /// The compliance frameworks in scope.
    pub frameworks: Vec<String>,
}

/// A denial, as kube-apiserver's `status` wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// HTTP-style status code: 403 for policy violations.
    pub code: u16,
    /// `Forbidden`, `BadRequest` or `InternalError`.
    pub reason: &'static str,
    /// One line per violation, each naming the field and the fix.
    pub message: String,
}

impl Evaluation {
    fn new(request: &AdmissionRequest, workload: Option<&Workload>) -> Evaluation {
        Evaluation {
            subject: Subject::of(request, workload),
            ..Evaluation::default()
        }
    }

    fn failed(request: &AdmissionRequest, failure: Failure) -> Evaluation {
        Evaluation {
            failure: Some(failure),
            ..Evaluation::new(request, None)
        }
    }

    /// True when the request is admitted.
    pub fn allowed(&self) -> bool {
        self.failure.is_none() && self.verdict.allowed()
    }

    /// The denial, when the request is refused.
    pub fn denial(&self) -> Option<Denial> {
        if let Some(f) = &self.failure {
            return Some(Denial {
                code: f.code,
                reason: f.reason,
                message: message::sanitize(&f.message),
            });
        }
        let denied: Vec<&Violation> = self.verdict.with_action(EnforcementAction::Deny).collect();
        if denied.is_empty() {
            return None;
        }
        Some(Denial {
            code: 403,
            reason: "Forbidden",
            message: message::denial(&self.subject, &denied),
        })
    }

    /// The admission warnings kubectl will print: the warn-mode violations
    /// (unless the request is denied) and the notes, within kube-apiserver's
    /// limits ([`MAX_WARNING_CHARS`] each, [`MAX_WARNINGS_TOTAL_CHARS`] in
    /// all).
    pub fn warnings(&self) -> Vec<String> {
        let warned: Vec<&Violation> = if self.allowed() {
            self.verdict.with_action(EnforcementAction::Warn).collect()
        } else {
            Vec::new()
        };
        message::warnings(&self.subject, &warned, &self.notes)
    }

    fn absorb(&mut self, findings: Findings) {
        self.verdict.violations.extend(findings.violations);
        self.notes.extend(findings.warnings);
        self.audit_annotations.extend(findings.audit_annotations);
        self.exemptions.extend(findings.exemptions);
        self.evaluated.extend(findings.evaluated);
        for f in findings.frameworks {
            if !self.frameworks.contains(&f) {
                self.frameworks.push(f);
            }
        }
    }
}

impl Findings {
    /// Adds `other`'s findings to these.
    pub fn merge(&mut self, other: Findings) {
        self.violations.extend(other.violations);
        self.warnings.extend(other.warnings);
        self.audit_annotations.extend(other.audit_annotations);
        self.exemptions.extend(other.exemptions);
        self.evaluated.extend(other.evaluated);
        for f in other.frameworks {
            if !self.frameworks.contains(&f) {
                self.frameworks.push(f);
            }
        }
    }
}

impl Subject {
    fn of(request: &AdmissionRequest, workload: Option<&Workload>) -> Subject {
        let (name, generate_name) = match (workload, request.name.is_empty()) {
            (_, false) => (None, None),
            (Some(w), true) => (w.metadata.name.clone(), w.metadata.generate_name.clone()),
            (None, true) => {
                let meta = request
                    .object
                    .as_ref()
                    .and_then(|o| o.value().get("metadata"));
                let field = |k: &str| {
                    meta.and_then(|m| m.get(k))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                };
                (field("name"), field("generateName"))
            }
        };
        let name = if !request.name.is_empty() {
            request.name.clone()
        } else if let Some(n) = name.filter(|n| !n.is_empty()) {
            n
        } else if let Some(g) = generate_name.filter(|g| !g.is_empty()) {
            format!("{g}*")
        } else {
            String::new()
        };
        Subject {
            kind: request.kind.kind.clone(),
            name,
            namespace: request.namespace.clone(),
        }
    }
}

/// An immutable, ready-to-run policy set: evaluators plus the namespace
/// source they read labels from.
pub struct Snapshot {
    evaluators: Vec<Arc<dyn Evaluator>>,
    namespaces: Arc<dyn NamespaceSource>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("policy_sets", &self.policy_sets())
            .finish_non_exhaustive()
    }
}

/// Builds a [`Snapshot`] from a config, with optional overrides.
pub struct SnapshotBuilder<'a> {
    config: &'a PolicyConfig,
    namespaces: Option<Arc<dyn NamespaceSource>>,
    pod_security_level: Option<LevelVersion>,
    checker: PssChecker,
    defaults: DefaultsMutation,
    extra: Vec<Arc<dyn Evaluator>>,
    constraints: Option<Arc<ConstraintStore>>,
}

impl<'a> SnapshotBuilder<'a> {
    /// Enforces the Gatekeeper constraints of `store` (whatever set it
    /// holds when a request arrives: reloads need no new snapshot).
    pub fn constraints(mut self, store: Arc<ConstraintStore>) -> Self {
        self.constraints = Some(store);
        self
    }

    /// Reads namespaces from `source` instead of `policy.namespaces`.
    pub fn namespaces(mut self, source: Arc<dyn NamespaceSource>) -> Self {
        self.namespaces = Some(source);
        self
    }

    /// Evaluates every object at this level in every mode, ignoring
    /// namespace labels (`tollgate check --pod-security`).
    pub fn pod_security_level(mut self, level: LevelVersion) -> Self {
        self.pod_security_level = Some(level);
        self
    }

    /// Uses another Pod Security check function (tests of the plumbing).
    pub fn pss_checker(mut self, checker: PssChecker) -> Self {
        self.checker = checker;
        self
    }

    /// Uses another secure-defaults mutation (tests of the plumbing).
    pub fn defaults_mutation(mut self, mutation: DefaultsMutation) -> Self {
        self.defaults = mutation;
        self
    }

    /// Adds an evaluator after the built-in ones.
    pub fn evaluator(mut self, evaluator: Arc<dyn Evaluator>) -> Self {
        self.extra.push(evaluator);
        self
    }

    /// The snapshot.
    pub fn build(self) -> Snapshot {
        let mut evaluators: Vec<Arc<dyn Evaluator>> = Vec::new();
        if self.config.pod_security.enabled {
            evaluators.push(Arc::new(PodSecurityEvaluator::new(
                &self.config.pod_security,
                &self.config.defaults,
                self.pod_security_level,
                self.checker,
                self.defaults,
            )));
        }
        let namespaces: Arc<dyn NamespaceSource> = self
            .namespaces
            .unwrap_or_else(|| Arc::new(self.config.static_namespaces()));
        if self.config.ownership.enabled {
            evaluators.push(Arc::new(OwnershipEvaluator::new(
                self.config.ownership.clone(),
            )));
        }
        if self.config.compliance.enabled {
            evaluators.push(Arc::new(ComplianceEvaluator::new(
                self.config.compliance.clone(),
            )));
        }
        if let Some(store) = self.constraints {
            evaluators.push(Arc::new(ConstraintsEvaluator::new(
                store,
                Arc::clone(&namespaces),
            )));
        }
        evaluators.extend(self.extra);
        Snapshot {
            evaluators,
            namespaces,
        }
    }
}

/// The request's objects, parsed once for every evaluator.
struct Prepared {
    workload: Option<Workload>,
    old_workload: Option<Workload>,
}

impl Prepared {
    fn new(request: &AdmissionRequest) -> Result<Prepared, Failure> {
        let writes = matches!(request.operation, Operation::Create | Operation::Update);
        if writes && request.object.is_none() {
            // kube-apiserver always sends the object of a CREATE or UPDATE;
            // a request without one cannot be judged, so it is not admitted.
            return Err(bad_request(format!(
                "request.object is missing or null: a {} request must carry the object to judge",
                request.operation
            )));
        }
        let Some(kind) = request.kind.workload_kind() else {
            return Ok(Prepared {
                workload: None,
                old_workload: None,
            });
        };
        if !matches!(request.operation, Operation::Create | Operation::Update) {
            return Ok(Prepared {
                workload: None,
                old_workload: None,
            });
        }
        let workload = parse_workload(kind, request.object.as_ref(), "object")?;
        if let Some(w) = &workload
            && w.spec.containers.is_empty()
        {
            // Kubernetes refuses a pod without containers; admitting one
            // here would judge nothing (`spec: null`, `containers: null`).
            return Err(bad_request(format!(
                "request.object: {kind} {:?}: {}spec.containers is missing, null or empty; a pod needs at least one container",
                w.name(),
                kind.template_path()
            )));
        }
        let old_workload = match request.operation {
            Operation::Update => parse_workload(kind, request.old_object.as_ref(), "oldObject")?,
            _ => None,
        };
        Ok(Prepared {
            workload,
            old_workload,
        })
    }
}

fn bad_request(message: String) -> Failure {
    Failure {
        code: 400,
        reason: "BadRequest",
        message,
    }
}

fn parse_workload(
    kind: WorkloadKind,
    object: Option<&Object>,
    what: &str,
) -> Result<Option<Workload>, Failure> {
    let Some(object) = object else {
        return Ok(None);
    };
    object
        .workload(kind)
        .map(Some)
        .map_err(|e| bad_request(format!("request.{what}: {e}")))
}

impl Snapshot {
    /// A builder over `config`.
    pub fn builder(config: &PolicyConfig) -> SnapshotBuilder<'_> {
        SnapshotBuilder {
            config,
            namespaces: None,
            pod_security_level: None,
            checker: crate::pss::check_pod,
            defaults: secure_defaults,
            extra: Vec::new(),
            constraints: None,
        }
    }

    /// The snapshot for `config` with the built-in evaluators.
    pub fn from_config(config: &PolicyConfig) -> Snapshot {
        Self::builder(config).build()
    }

    /// The policy sets this snapshot runs, in order.
    pub fn policy_sets(&self) -> Vec<PolicySet> {
        self.evaluators.iter().map(|e| e.policy_set()).collect()
    }

    fn active<'s>(&'s self, options: &'s Options) -> impl Iterator<Item = &'s dyn Evaluator> {
        self.evaluators
            .iter()
            .map(|e| e.as_ref())
            .filter(move |e| match &options.only {
                None => true,
                Some(only) => only.contains(&e.policy_set()),
            })
    }

    fn namespace(&self, request: &AdmissionRequest) -> Option<Arc<NamespaceInfo>> {
        if request.namespace.is_empty() {
            None
        } else {
            self.namespaces.namespace(&request.namespace)
        }
    }

    /// Judges a request (the validating webhook).
    pub fn validate(&self, request: &AdmissionRequest, options: &Options) -> Evaluation {
        let prepared = match Prepared::new(request) {
            Ok(p) => p,
            Err(f) => return Evaluation::failed(request, f),
        };
        let namespace = self.namespace(request);
        let ctx = Context {
            request,
            object: request.object.as_ref(),
            workload: prepared.workload.as_ref(),
            old_workload: prepared.old_workload.as_ref(),
            namespace: namespace.as_deref(),
            evidence: options.evidence,
        };
        let mut findings = Findings::default();
        for evaluator in self.active(options) {
            let mut own = Findings::default();
            if let Err(err) = evaluator.validate(&ctx, &mut own) {
                own.violations
                    .push(error_violation(evaluator.policy_set(), &err));
            }
            let refuses = own
                .violations
                .iter()
                .any(|v| v.action == EnforcementAction::Deny);
            if refuses && evaluator.judged_unchanged(&ctx) {
                update::admit_unchanged(evaluator.policy_set(), &mut own);
            }
            findings.merge(own);
        }
        if prepared.workload.is_none()
            && matches!(request.operation, Operation::Create | Operation::Update)
            && request.sub_resource.is_empty()
            && request
                .object
                .as_ref()
                .is_some_and(Object::has_pod_template)
        {
            // Not a kind Pod Security and ownership know: say so rather
            // than answer a silent "allowed".
            findings.warnings.push(format!(
                "{} {} carries a pod template that Pod Security and ownership do not judge (not a built-in workload kind); check the pods it creates",
                request.kind.api_version(),
                request.kind.kind
            ));
            findings.audit_annotations.insert(
                "pod-template.not-evaluated".to_owned(),
                request.kind.kind.clone(),
            );
        }
        let mut evaluation = Evaluation::new(request, prepared.workload.as_ref());
        evaluation.absorb(findings);
        evaluation
    }

    /// Computes the mutation (the mutating webhook). Each evaluator sees the
    /// object with the earlier evaluators' patches applied; the returned
    /// patch is their concatenation and applies to the request's object.
    pub fn mutate(&self, request: &AdmissionRequest, options: &Options) -> Evaluation {
        let prepared = match Prepared::new(request) {
            Ok(p) => p,
            Err(f) => return Evaluation::failed(request, f),
        };
        let namespace = self.namespace(request);
        let mut evaluation = Evaluation::new(request, prepared.workload.as_ref());
        let Some(original) = request.object.as_ref() else {
            return evaluation;
        };
        let internal = |message: String| Failure {
            code: 500,
            reason: "InternalError",
            message,
        };
        let mut patched: Option<Object> = None;
        let original_ctx = Context {
            request,
            object: Some(original),
            workload: prepared.workload.as_ref(),
            old_workload: prepared.old_workload.as_ref(),
            namespace: namespace.as_deref(),
            evidence: false,
        };
        // Judged on the object as sent: a mutation of an unchanged object
        // would itself be the change that gets it refused.
        let unchanged: Vec<PolicySet> = self
            .active(options)
            .filter(|e| e.judged_unchanged(&original_ctx))
            .map(|e| e.policy_set())
            .collect();
        let mut workload = prepared.workload;
        let mut findings = Findings::default();
        for evaluator in self.active(options) {
            if unchanged.contains(&evaluator.policy_set()) {
                continue;
            }
            let current = patched.as_ref().unwrap_or(original);
            let ctx = Context {
                request,
                object: Some(current),
                workload: workload.as_ref(),
                old_workload: prepared.old_workload.as_ref(),
                namespace: namespace.as_deref(),
                evidence: false,
            };
            let set = evaluator.policy_set().as_str();
            let ops = match evaluator.mutate(&ctx, &mut findings) {
                Ok(ops) if ops.is_empty() => continue,
                Ok(ops) => ops,
                Err(err) => {
                    evaluation.failure = Some(internal(format!(
                        "{set} could not compute its mutation: {err}"
                    )));
                    return evaluation;
                }
            };
            let mut value = current.value().clone();
            if let Err(err) = json_patch::patch(&mut value, &ops) {
                evaluation.failure = Some(internal(format!(
                    "{set} produced a patch that does not apply: {err}"
                )));
                return evaluation;
            }
            evaluation.patch.extend(ops);
            let next = Object::from_value(value);
            if let Some(kind) = workload.as_ref().map(|w| w.kind) {
                workload = match parse_workload(kind, Some(&next), "object") {
                    Ok(w) => w,
                    Err(f) => {
                        evaluation.failure = Some(internal(format!(
                            "{set} produced an invalid object: {}",
                            f.message
                        )));
                        return evaluation;
                    }
                };
            }
            patched = Some(next);
        }
        evaluation.absorb(findings);
        evaluation
    }
}

fn error_violation(policy: PolicySet, err: &EvalError) -> Violation {
    Violation {
        policy,
        rule: "evaluationError".to_owned(),
        message: format!(
            "{} could not evaluate this object, so it is refused: {err}",
            policy.as_str()
        ),
        path: None,
        container: None,
        controls: Vec::new(),
        action: EnforcementAction::Deny,
    }
}

/// The current policy set, swapped atomically.
pub struct Engine {
    current: RwLock<Arc<Snapshot>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("current", &self.snapshot())
            .finish()
    }
}

impl Engine {
    /// An engine running `snapshot`.
    pub fn new(snapshot: Snapshot) -> Engine {
        Engine {
            current: RwLock::new(Arc::new(snapshot)),
        }
    }

    /// The current snapshot. Read it once per request: a swap during the
    /// request does not change what the request sees.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        // A poisoned lock still holds a whole Arc: a swap is one assignment.
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Makes `snapshot` current for every later request; returns the
    /// previous one.
    pub fn replace(&self, snapshot: Snapshot) -> Arc<Snapshot> {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut *current, Arc::new(snapshot))
    }

    /// Judges a request with the current snapshot.
    pub fn validate(&self, request: &AdmissionRequest, options: &Options) -> Evaluation {
        self.snapshot().validate(request, options)
    }

    /// Computes the mutation with the current snapshot.
    pub fn mutate(&self, request: &AdmissionRequest, options: &Options) -> Evaluation {
        self.snapshot().mutate(request, options)
    }
}

#[cfg(test)]
mod tests;
