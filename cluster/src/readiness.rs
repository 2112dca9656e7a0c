//! The agent-readiness score: the share of workloads whose ownership
//! annotations are complete enough for an agent (or a person) to route an
//! incident about them without asking anyone — the "doctor" idea of the
//! DeployScope convention.
//!
//! **Complete enough to route**, precisely: a workload is *ready* when every
//! key the ownership rule requires of it is present on the workload's own
//! `metadata.annotations` and passes the rule's value validation. The
//! required keys are the ownership configuration's (by default `owner` and
//! `tier`, plus `oncall`, `gitops-repo`, `gitops-path` and `runbook` for
//! tier `critical`; per-namespace and per-tier overrides apply), read
//! through [`OwnershipConfig::required_keys`], and values are validated by
//! [`value_problem`] — the admission rule's own definitions, never a second
//! copy. In detail:
//! - a `tier` that is missing or invalid makes the workload not ready, and
//!   no tier-specific keys are asked for until it is valid;
//! - an invalid *optional* key (a `dashboard` that is not a URL) is
//!   reported but does not block routing;
//! - keys the namespace's own `deployscope.dev/*` annotations would supply
//!   by inheritance are reported as *inheritable*: they do not count until
//!   the workload carries them (re-applying it through the webhook does);
//! - workloads annotated `deployscope.dev/ignore: "true"` are *ignored*
//!   (invisible to agents by the convention): not in the score, counted
//!   apart so that opting out stays visible;
//! - workloads in namespaces the ownership rule exempts (`kube-system`,
//!   `kube-public`, `kube-node-lease` by default) are *exempt*: not in the
//!   score either;
//! - workloads controlled by another audited workload are never seen here
//!   (see [`crate::scan`]), so a Deployment with three pods counts once.
//!
//! The score of a namespace or the cluster is `ready / scored`, where
//! `scored` excludes ignored and exempt workloads; it is undefined (`None`)
//! when nothing is scored.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use tollgate_policies::NamespaceInfo;
use tollgate_policies::ownership::{Key, OwnershipConfig, Tier, value_problem};

use crate::scan::Scan;

/// Where a workload stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Every required key present and valid.
    Ready,
    /// Some required key missing or invalid.
    NotReady,
    /// Annotated `deployscope.dev/ignore: "true"`; not scored.
    Ignored,
    /// In a namespace the ownership rule exempts; not scored.
    Exempt,
}

/// One workload's readiness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Readiness {
    /// Where it stands.
    pub status: Status,
    /// Its tier, when valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier: Option<Tier>,
    /// The keys required of it.
    pub required: Vec<Key>,
    /// Required keys it lacks.
    pub missing: Vec<Key>,
    /// Keys it carries with an invalid value (required or not), with what
    /// is wrong.
    pub invalid: Vec<(Key, String)>,
    /// Keys it lacks that its namespace would let it inherit (through the
    /// mutating webhook, on its next apply).
    pub inheritable: Vec<Key>,
    /// True when it is not ready but inheriting those keys would make it
    /// ready.
    pub ready_after_inheritance: bool,
}

/// Judges one workload's own metadata in `namespace`.
pub fn assess(
    meta: &ObjectMeta,
    namespace: &str,
    info: Option<&NamespaceInfo>,
    config: &OwnershipConfig,
) -> Readiness {
    let empty = BTreeMap::new();
    let own = meta.annotations.as_ref().unwrap_or(&empty);
    let gaps = Gaps::of(own, namespace, config);
    // What the mutating webhook would fill in from the namespace: every
    // key the workload lacks whose namespace value is valid (never
    // `ignore`).
    let mut inheritable = Vec::new();
    let mut ready_after_inheritance = false;
    if config.inherit && !gaps.ready() {
        let ns = info.map(|i| &i.annotations).unwrap_or(&empty);
        let mut merged = own.clone();
        for key in Key::ALL {
            if key == Key::Ignore || own.contains_key(key.annotation()) {
                continue;
            }
            if let Some(v) = ns.get(key.annotation())
                && value_problem(key, v).is_none()
            {
                merged.insert(key.annotation().to_owned(), v.clone());
                inheritable.push(key);
            }
        }
        ready_after_inheritance =
            !inheritable.is_empty() && Gaps::of(&merged, namespace, config).ready();
    }
    let status = if config.is_exempt(namespace) {
        Status::Exempt
    } else if own.get(Key::Ignore.annotation()).map(String::as_str) == Some("true") {
        Status::Ignored
    } else if gaps.ready() {
        Status::Ready
    } else {
        Status::NotReady
    };
    Readiness {
        status,
        tier: gaps.tier,
        required: gaps.required,
        missing: gaps.missing,
        invalid: gaps.invalid,
        inheritable,
        ready_after_inheritance,
    }
}

/// The required keys of a set of annotations, and which are missing or
/// invalid.
struct Gaps {
    tier: Option<Tier>,
    required: Vec<Key>,
    missing: Vec<Key>,
    invalid: Vec<(Key, String)>,
}

impl Gaps {
    fn of(
        annotations: &BTreeMap<String, String>,
        namespace: &str,
        config: &OwnershipConfig,
    ) -> Gaps {
        let tier = annotations
            .get(Key::Tier.annotation())
            .and_then(|t| t.parse::<Tier>().ok());
        let required = config.required_keys(namespace, tier);
        let mut missing = Vec::new();
        let mut invalid = Vec::new();
        for key in Key::ALL {
            match annotations.get(key.annotation()) {
                None if required.contains(&key) => missing.push(key),
                None => {}
                Some(value) => {
                    if let Some(problem) = value_problem(key, value) {
                        invalid.push((key, problem));
                    }
                }
            }
        }
        Gaps {
            tier,
            required,
            missing,
            invalid,
        }
    }

    fn ready(&self) -> bool {
        self.missing.is_empty() && !self.invalid.iter().any(|(k, _)| self.required.contains(k))
    }
}

/// Readiness counts over a set of workloads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Score {
    /// Workloads seen (scored, ignored and exempt).
    pub workloads: usize,
    /// Workloads in the score (not ignored nor exempt).
    pub scored: usize,
    /// Scored workloads that are ready.
    pub ready: usize,
    /// Ignored workloads.
    pub ignored: usize,
    /// Exempt workloads.
    pub exempt: usize,
    /// Not-ready workloads that inheriting from their namespace would make
    /// ready.
    pub ready_after_inheritance: usize,
    /// Scored workloads lacking each required key.
    pub missing: BTreeMap<Key, usize>,
    /// Scored workloads with an invalid value for each key.
    pub invalid: BTreeMap<Key, usize>,
}

impl Score {
    /// `ready / scored`, or `None` when nothing is scored.
    pub fn ratio(&self) -> Option<f64> {
        // Counts stay far below 2^52: the conversion is exact.
        #[allow(clippy::cast_precision_loss)]
        (self.scored > 0).then(|| self.ready as f64 / self.scored as f64)
    }

    /// The keys most often missing or invalid, most frequent first (ties in
    /// key order), at most `n`.
    pub fn top_gaps(&self, n: usize) -> Vec<(Key, usize)> {
        let mut gaps: BTreeMap<Key, usize> = self.missing.clone();
        for (k, c) in &self.invalid {
            *gaps.entry(*k).or_default() += c;
        }
        let mut gaps: Vec<(Key, usize)> = gaps.into_iter().collect();
        gaps.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        gaps.truncate(n);
        gaps
    }

    fn add(&mut self, r: &Readiness) {
        self.workloads += 1;
        match r.status {
            Status::Ignored => self.ignored += 1,
            Status::Exempt => self.exempt += 1,
            Status::Ready | Status::NotReady => {
                self.scored += 1;
                if r.status == Status::Ready {
                    self.ready += 1;
                } else if r.ready_after_inheritance {
                    self.ready_after_inheritance += 1;
                }
                for k in &r.missing {
                    *self.missing.entry(*k).or_default() += 1;
                }
                for (k, _) in &r.invalid {
                    *self.invalid.entry(*k).or_default() += 1;
                }
            }
        }
    }
}

/// The score of every namespace and of the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Scores {
    /// The whole cluster (or every manifest given).
    pub cluster: Score,
    /// Per namespace; every namespace the scan saw is present, even with no
    /// workloads.
    pub namespaces: BTreeMap<String, Score>,
}

/// Scores a scan.
pub fn score(scan: &Scan) -> Scores {
    let mut scores = Scores {
        cluster: Score::default(),
        namespaces: scan
            .namespaces
            .iter()
            .map(|n| (n.clone(), Score::default()))
            .collect(),
    };
    for object in &scan.objects {
        let Some(r) = &object.readiness else { continue };
        scores.cluster.add(r);
        scores
            .namespaces
            .entry(object.object.namespace.clone())
            .or_default()
            .add(r);
    }
    scores
}
