//! The engine's evaluators for ownership annotations, the compliance packs
//! and Gatekeeper constraints: thin adapters from an admission request to
//! [`crate::ownership`], [`crate::compliance`] and [`crate::gatekeeper`].

use std::sync::Arc;

use json_patch::PatchOperation;

use super::{Context, EvalError, Evaluator, Findings, Operation};
use crate::PolicySet;
use crate::compliance::{Catalogue, ComplianceConfig, Packs};
use crate::gatekeeper::{ConstraintStore, Inventory, Review};
use crate::namespace::NamespaceSource;
use crate::ownership::OwnershipConfig;
use crate::report::Evaluated;

/// True for requests a policy on object contents judges: CREATE and UPDATE
/// of the object itself (not of a subresource such as `status` or
/// `scale`, which cannot change what these policies read).
fn judges(ctx: &Context<'_>) -> bool {
    matches!(ctx.request.operation, Operation::Create | Operation::Update)
        && ctx.request.sub_resource.is_empty()
}

/// Ownership annotations: validation of every required and present
/// `deployscope.dev/*` key, and inheritance from the namespace on mutation.
#[derive(Debug)]
pub struct OwnershipEvaluator {
    config: OwnershipConfig,
}

impl OwnershipEvaluator {
    /// An evaluator of `config`.
    pub fn new(config: OwnershipConfig) -> Self {
        OwnershipEvaluator { config }
    }
}

impl Evaluator for OwnershipEvaluator {
    fn policy_set(&self) -> PolicySet {
        PolicySet::Ownership
    }

    fn validate(&self, ctx: &Context<'_>, findings: &mut Findings) -> Result<(), EvalError> {
        let Some(workload) = ctx.workload.filter(|_| judges(ctx)) else {
            return Ok(());
        };
        let evaluation = crate::ownership::evaluate(workload, ctx.namespace, &self.config);
        if ctx.evidence {
            for rule in evaluation.evaluated {
                let controls = crate::ownership::controls(&rule);
                findings
                    .evaluated
                    .push(Evaluated::new(PolicySet::Ownership, rule, controls));
            }
        }
        findings.violations.extend(evaluation.violations);
        Ok(())
    }

    /// Ownership reads the `deployscope.dev/*` annotations of the object
    /// and its pod template.
    fn judged_unchanged(&self, ctx: &Context<'_>) -> bool {
        super::update::annotations_unchanged(ctx, crate::ownership::PREFIX)
    }

    fn mutate(
        &self,
        ctx: &Context<'_>,
        _findings: &mut Findings,
    ) -> Result<Vec<PatchOperation>, EvalError> {
        match ctx.workload.filter(|_| judges(ctx)) {
            Some(workload) => Ok(crate::ownership::inherit(
                workload,
                ctx.namespace,
                &self.config,
            )),
            None => Ok(Vec::new()),
        }
    }
}

/// The built-in compliance packs, selected per namespace by profile.
#[derive(Debug)]
pub struct ComplianceEvaluator {
    config: ComplianceConfig,
}

impl ComplianceEvaluator {
    /// An evaluator of `config`. The packs compile once per process, on
    /// first use.
    pub fn new(config: ComplianceConfig) -> Self {
        ComplianceEvaluator { config }
    }
}

impl Evaluator for ComplianceEvaluator {
    fn policy_set(&self) -> PolicySet {
        PolicySet::Compliance
    }

    fn validate(&self, ctx: &Context<'_>, findings: &mut Findings) -> Result<(), EvalError> {
        let Some(object) = ctx.object.filter(|_| judges(ctx)) else {
            return Ok(());
        };
        let packs = Packs::builtin().map_err(|e| EvalError::Policy(e.to_string()))?;
        let evaluation = packs
            .evaluate(object.value(), ctx.namespace, &self.config)
            .map_err(|e| EvalError::Policy(e.to_string()))?;
        if ctx.evidence {
            let catalogue = Catalogue::builtin().ok();
            let frameworks: Vec<&str> = evaluation.frameworks.iter().map(String::as_str).collect();
            for rule in &evaluation.evaluated {
                let controls = catalogue
                    .map(|c| c.controls(rule, Some(&frameworks)))
                    .unwrap_or_default();
                findings.evaluated.push(Evaluated::new(
                    PolicySet::Compliance,
                    rule.clone(),
                    controls,
                ));
            }
        }
        findings.violations.extend(evaluation.violations);
        findings.warnings.extend(evaluation.warnings);
        for f in evaluation.frameworks {
            if !findings.frameworks.contains(&f) {
                findings.frameworks.push(f);
            }
        }
        Ok(())
    }
}

/// Users' Gatekeeper constraints, read from a store that reloads swap.
pub struct ConstraintsEvaluator {
    store: Arc<ConstraintStore>,
    namespaces: Arc<dyn NamespaceSource>,
    inventory: Inventory,
}

impl std::fmt::Debug for ConstraintsEvaluator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConstraintsEvaluator")
            .field("constraints", &self.store.current().constraints().len())
            .finish_non_exhaustive()
    }
}

impl ConstraintsEvaluator {
    /// An evaluator of whatever set `store` holds, reading namespace labels
    /// (for `namespaceSelector`) from `namespaces`.
    pub fn new(store: Arc<ConstraintStore>, namespaces: Arc<dyn NamespaceSource>) -> Self {
        ConstraintsEvaluator {
            store,
            namespaces,
            inventory: Inventory::empty(),
        }
    }
}

impl Evaluator for ConstraintsEvaluator {
    fn policy_set(&self) -> PolicySet {
        PolicySet::Constraints
    }

    fn validate(&self, ctx: &Context<'_>, findings: &mut Findings) -> Result<(), EvalError> {
        if ctx.request.operation == Operation::Connect {
            return Ok(());
        }
        let set = self.store.current();
        if set.is_empty() {
            return Ok(());
        }
        let request = serde_json::to_value(ctx.request)
            .map_err(|e| EvalError::Object(format!("cannot encode the request: {e}")))?;
        let review = Review::from_admission_request(&request)
            .map_err(|e| EvalError::Object(e.to_string()))?;
        let violations = set.evaluate(&review, self.namespaces.as_ref(), &self.inventory);
        if ctx.evidence {
            for v in &violations {
                findings.evaluated.push(Evaluated::new(
                    PolicySet::Constraints,
                    v.rule.clone(),
                    Vec::new(),
                ));
            }
        }
        findings.violations.extend(violations);
        Ok(())
    }
}
