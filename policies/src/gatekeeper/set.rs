//! A compiled set of templates and constraints, its evaluation, and the
//! store that swaps sets atomically.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::GatekeeperError;
use super::constraint::{self, Constraint, EnforcementPoint};
use super::inventory::Inventory;
use super::review::Review;
use super::template::{self, Template};
use super::yaml::{self, Document, SourceFile};
use crate::rego::{self, Limits};
use crate::{EnforcementAction, NamespaceSource, PolicySet, Violation};

/// How sets are compiled and evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadOptions {
    /// Bounds on each template evaluation.
    pub limits: Limits,
    /// The time all constraints together may spend on one review; once it
    /// is spent, the remaining matched constraints report a time-limit error
    /// instead of running. Default 1 s.
    pub review_budget: Duration,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            limits: Limits::default(),
            review_budget: Duration::from_secs(1),
        }
    }
}

/// Every problem that kept a set from loading.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct LoadError {
    /// The problems, in file order.
    pub errors: Vec<GatekeeperError>,
}

/// One result of one constraint: a violation its template reported, or the
/// error that kept it from being evaluated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConstraintResult {
    /// The constraint's kind.
    pub kind: String,
    /// The constraint's name.
    pub name: String,
    /// The violation's `msg` (or the error).
    pub message: String,
    /// The violation's `details` (`{}` when absent).
    pub details: Value,
    /// The constraint's action at the point of evaluation.
    pub action: EnforcementAction,
    /// True when this reports an evaluation error, not a violation.
    pub error: bool,
}

impl ConstraintResult {
    /// As a policy [`Violation`] (rule `Kind/name`).
    pub fn to_violation(&self) -> Violation {
        Violation {
            policy: PolicySet::Constraints,
            rule: format!("{}/{}", self.kind, self.name),
            message: self.message.clone(),
            path: None,
            container: None,
            controls: Vec::new(),
            action: self.action,
        }
    }
}

/// Compiled templates and their constraints.
#[derive(Debug, Clone, Default)]
pub struct ConstraintSet {
    templates: BTreeMap<String, Template>,
    constraints: Vec<Constraint>,
    options: LoadOptions,
}

fn text_of<'a>(files: &'a [SourceFile], name: &str) -> &'a str {
    files
        .iter()
        .find(|f| f.name == name)
        .map_or("", |f| f.contents.as_str())
}

fn group_of(doc: &Document) -> &str {
    doc.value
        .get("apiVersion")
        .and_then(Value::as_str)
        .and_then(|v| v.split_once('/'))
        .map_or("", |(g, _)| g)
}

impl ConstraintSet {
    /// No templates, no constraints.
    pub fn empty() -> Self {
        ConstraintSet::default()
    }

    /// Loads every ConstraintTemplate and constraint in `files` (YAML or
    /// JSON, several documents per file, `List`s expanded). Every problem is
    /// reported, each with its `file:line:column`; nothing is returned unless
    /// all of it loads.
    pub fn load(files: &[SourceFile], options: LoadOptions) -> Result<Self, LoadError> {
        Self::load_reusing(files, options, None)
    }

    /// Like [`ConstraintSet::load`], reusing the compiled programs of
    /// `previous` for templates that did not change.
    pub fn load_reusing(
        files: &[SourceFile],
        options: LoadOptions,
        previous: Option<&ConstraintSet>,
    ) -> Result<Self, LoadError> {
        let mut errors = Vec::new();
        let mut docs = Vec::new();
        for file in files {
            match yaml::documents(file) {
                Ok(d) => docs.extend(d),
                Err(e) => errors.push(e),
            }
        }
        let reusable: HashMap<u64, Template> = previous
            .map(|p| {
                p.templates
                    .values()
                    .map(|t| (t.fingerprint(), t.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let reuse = |fp: u64| reusable.get(&fp).cloned();
        let mut templates: BTreeMap<String, Template> = BTreeMap::new();
        let mut constraint_docs = Vec::new();
        for doc in &docs {
            let kind = doc.value.get("kind").and_then(Value::as_str).unwrap_or("");
            let group = group_of(doc);
            if kind == "ConstraintTemplate" && group == "templates.gatekeeper.sh" {
                match template::parse(doc, text_of(files, &doc.file), options.limits, &reuse) {
                    Ok(t) => {
                        if templates.contains_key(t.kind()) {
                            errors.push(GatekeeperError::Document {
                                location: doc.location(),
                                message: format!(
                                    "a second ConstraintTemplate defines kind {}",
                                    t.kind()
                                ),
                            });
                        } else {
                            templates.insert(t.kind().to_owned(), t);
                        }
                    }
                    Err(e) => errors.push(e),
                }
            } else if group == "constraints.gatekeeper.sh" {
                constraint_docs.push(doc);
            } else {
                errors.push(GatekeeperError::Document {
                    location: doc.location(),
                    message: format!(
                        "expected a ConstraintTemplate (templates.gatekeeper.sh) or a constraint \
                         (constraints.gatekeeper.sh), found {kind:?} of apiVersion {:?}",
                        doc.value
                            .get("apiVersion")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                    ),
                });
            }
        }
        let mut constraints: Vec<Constraint> = Vec::new();
        for doc in constraint_docs {
            let kind = doc.value.get("kind").and_then(Value::as_str).unwrap_or("");
            let Some(template) = templates.get(kind) else {
                // A template that failed to compile is already reported.
                let failed = errors.iter().any(|e| matches!(e, GatekeeperError::Rego { template, .. } if template.eq_ignore_ascii_case(kind)));
                if !failed {
                    errors.push(GatekeeperError::Document {
                        location: doc.location(),
                        message: format!("no ConstraintTemplate defines constraint kind {kind:?}"),
                    });
                }
                continue;
            };
            match constraint::parse(doc, text_of(files, &doc.file), template) {
                Ok(c) => {
                    if constraints
                        .iter()
                        .any(|o| o.kind() == c.kind() && o.name() == c.name())
                    {
                        errors.push(GatekeeperError::Document {
                            location: doc.location(),
                            message: format!("constraint {} is defined twice", c.key()),
                        });
                    } else {
                        constraints.push(c);
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(LoadError { errors });
        }
        constraints.sort_by(|a, b| (a.kind(), a.name()).cmp(&(b.kind(), b.name())));
        Ok(ConstraintSet {
            templates,
            constraints,
            options,
        })
    }

    /// The templates, by constraint kind.
    pub fn templates(&self) -> impl Iterator<Item = &Template> {
        self.templates.values()
    }

    /// The template defining `kind`.
    pub fn template(&self, kind: &str) -> Option<&Template> {
        self.templates.get(kind)
    }

    /// The constraints, ordered by kind and name.
    pub fn constraints(&self) -> &[Constraint] {
        &self.constraints
    }

    /// True when there is no constraint to evaluate.
    pub fn is_empty(&self) -> bool {
        self.constraints.is_empty()
    }

    /// The options it was loaded with.
    pub fn options(&self) -> LoadOptions {
        self.options
    }

    /// Evaluates every constraint at the admission webhook's enforcement
    /// point and returns the violations (including evaluation errors, under
    /// each constraint's action).
    pub fn evaluate(
        &self,
        review: &Review,
        namespaces: &dyn NamespaceSource,
        inventory: &Inventory,
    ) -> Vec<Violation> {
        self.review(
            review,
            namespaces,
            inventory,
            Some(EnforcementPoint::Validation),
        )
        .iter()
        .map(ConstraintResult::to_violation)
        .collect()
    }

    /// Evaluates the constraints enforced at `point` (all of them when
    /// `None`) and returns every result with its details.
    pub fn review(
        &self,
        review: &Review,
        namespaces: &dyn NamespaceSource,
        inventory: &Inventory,
        point: Option<EnforcementPoint>,
    ) -> Vec<ConstraintResult> {
        let started = Instant::now();
        let namespace = review.namespace().and_then(|n| namespaces.namespace(n));
        let mut results = Vec::new();
        for constraint in &self.constraints {
            let Some(action) = constraint.action_at(point) else {
                continue;
            };
            let error = |message: String| ConstraintResult {
                kind: constraint.kind().to_owned(),
                name: constraint.name().to_owned(),
                message,
                details: Value::Object(serde_json::Map::new()),
                action,
                error: true,
            };
            let mut matched = Ok(false);
            for object in &review.objects {
                match constraint.matcher.matches(object, namespace.as_deref()) {
                    Ok(true) => {
                        matched = Ok(true);
                        break;
                    }
                    Ok(false) => {}
                    Err(e) => matched = Err(e),
                }
            }
            match matched {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    results.push(error(format!(
                        "constraint {} could not be matched: {e}",
                        constraint.key()
                    )));
                    continue;
                }
            }
            let Some(template) = self.templates.get(constraint.kind()) else {
                continue;
            };
            let remaining = self.options.review_budget.saturating_sub(started.elapsed());
            if remaining.is_zero() {
                results.push(error(format!(
                    "constraint {} was not evaluated: the review's time budget of {} ms was spent",
                    constraint.key(),
                    self.options.review_budget.as_millis()
                )));
                continue;
            }
            let input = rego::Value::object([
                ("review", review.input.clone()),
                ("parameters", constraint.parameters.clone()),
            ]);
            let data = if template.uses_inventory() {
                inventory.data()
            } else {
                None
            };
            match template.program().eval_rule_within(
                template.violation_path(),
                &input,
                data,
                remaining,
            ) {
                Ok(value) => {
                    for r in value.elements() {
                        let Some(msg) = r.field("msg") else {
                            continue;
                        };
                        let message = match msg.as_str() {
                            Some(s) => s.to_owned(),
                            None => msg.to_json().to_string(),
                        };
                        let details = r
                            .field("details")
                            .map_or_else(|| Value::Object(serde_json::Map::new()), |d| d.to_json());
                        results.push(ConstraintResult {
                            kind: constraint.kind().to_owned(),
                            name: constraint.name().to_owned(),
                            message,
                            details,
                            action,
                            error: false,
                        });
                    }
                }
                Err(e) => results.push(error(format!(
                    "constraint {} could not be evaluated: {e}",
                    constraint.key()
                ))),
            }
        }
        results
    }
}

static NEXT_STORE: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// Per-thread copies of stores' current sets: (store id, version, set).
    static CURRENT: RefCell<Vec<(u64, u64, Arc<ConstraintSet>)>> = const { RefCell::new(Vec::new()) };
}

/// How many stores each thread keeps a copy for.
const THREAD_CACHE: usize = 8;

/// The active constraint set, swapped atomically. Readers take no lock on
/// the hot path: each thread keeps the set it last saw and only consults the
/// shared slot when the version number moved.
#[derive(Debug)]
pub struct ConstraintStore {
    id: u64,
    version: AtomicU64,
    current: RwLock<Arc<ConstraintSet>>,
}

impl ConstraintStore {
    /// A store holding `set`.
    pub fn new(set: ConstraintSet) -> Self {
        ConstraintStore {
            id: NEXT_STORE.fetch_add(1, Ordering::Relaxed),
            version: AtomicU64::new(1),
            current: RwLock::new(Arc::new(set)),
        }
    }

    fn read_shared(&self) -> Arc<ConstraintSet> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The active set.
    pub fn current(&self) -> Arc<ConstraintSet> {
        let version = self.version.load(Ordering::Acquire);
        CURRENT.with(|cache| {
            let mut cache = cache.borrow_mut();
            if let Some((_, v, set)) = cache.iter().find(|(id, _, _)| *id == self.id)
                && *v == version
            {
                return set.clone();
            }
            let set = self.read_shared();
            cache.retain(|(id, _, _)| *id != self.id);
            if cache.len() >= THREAD_CACHE {
                cache.remove(0);
            }
            cache.push((self.id, version, set.clone()));
            set
        })
    }

    /// Makes `set` the active set.
    pub fn replace(&self, set: ConstraintSet) -> Arc<ConstraintSet> {
        let set = Arc::new(set);
        match self.current.write() {
            Ok(mut guard) => *guard = set.clone(),
            Err(poisoned) => *poisoned.into_inner() = set.clone(),
        }
        self.version.fetch_add(1, Ordering::AcqRel);
        set
    }

    /// Loads `files` (reusing unchanged templates of the active set) and, if
    /// everything loads, makes the result active. On error the active set
    /// stays as it was and every problem is returned.
    pub fn reload(
        &self,
        files: &[SourceFile],
        options: LoadOptions,
    ) -> Result<Arc<ConstraintSet>, LoadError> {
        let previous = self.read_shared();
        let set = ConstraintSet::load_reusing(files, options, Some(&previous))?;
        Ok(self.replace(set))
    }
}
