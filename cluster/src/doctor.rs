//! `tollgate doctor`: how ready a cluster (or a set of manifests) is for
//! agents — the agent-readiness score per namespace and overall, the
//! ownership keys most often missing, the compliance controls failing, and
//! what to do next. Pure: a [`Scan`] in, a [`Diagnosis`] out, rendered as
//! text or JSON. Listing the cluster is [`crate::background::scan_cluster`];
//! building a client is [`client`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;
use tollgate_policies::EnforcementAction;
use tollgate_policies::ownership::Key;

use crate::readiness::{self, Score, Status};
use crate::scan::Scan;

/// The schema identifier of the JSON output.
pub const API_VERSION: &str = "tollgate.dev/v1";
/// Keys listed per namespace.
const TOP_KEYS: usize = 3;
/// Controls listed per namespace.
const TOP_CONTROLS: usize = 3;
/// Workloads named in one next step.
const NAMED: usize = 5;
/// Next steps listed.
const MAX_STEPS: usize = 10;

/// One namespace's row.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceRow {
    /// The namespace.
    pub namespace: String,
    /// Its readiness counts.
    pub readiness: Score,
    /// `ready / scored`, when anything is scored.
    pub score: Option<f64>,
    /// The keys most often missing or invalid, with counts.
    pub top_gaps: Vec<Count>,
    /// Failing (deny or audit) compliance controls, with the number of
    /// objects failing each, most first.
    pub failing_controls: Vec<Count>,
    /// Objects with at least one failing result.
    pub failing_objects: usize,
}

/// A name and how often it occurs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Count {
    /// A key (`owner`) or a control (`PCI-DSS 2.2.6`).
    pub name: String,
    /// Workloads or objects concerned.
    pub count: usize,
}

/// One workload's readiness, for the JSON output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkloadRow {
    /// `Deployment`.
    pub kind: String,
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
    /// Its readiness.
    #[serde(flatten)]
    pub readiness: readiness::Readiness,
}

/// What `tollgate doctor` found.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Diagnosis {
    /// `tollgate.dev/v1`.
    pub api_version: &'static str,
    /// `DoctorReport`.
    pub kind: &'static str,
    /// `cluster` or `manifests`.
    pub source: String,
    /// The cluster's score (`None` when nothing is scored).
    pub score: Option<f64>,
    /// `--min-score`, when given.
    pub min_score: Option<f64>,
    /// True unless the score is below `min_score`.
    pub passed: bool,
    /// The cluster's readiness counts.
    pub readiness: Score,
    /// Workloads not counted because an audited controller owns them.
    pub controlled: usize,
    /// Per namespace, by name.
    pub namespaces: Vec<NamespaceRow>,
    /// Every scored, ignored or exempt workload.
    pub workloads: Vec<WorkloadRow>,
    /// What to do, most useful first.
    pub next_steps: Vec<String>,
}

/// Diagnoses a scan.
pub fn diagnose(scan: &Scan, source: &str, min_score: Option<f64>) -> Diagnosis {
    let scores = readiness::score(scan);
    let mut controls: BTreeMap<&str, BTreeMap<String, BTreeSet<usize>>> = BTreeMap::new();
    let mut failing: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, o) in scan.objects.iter().enumerate() {
        let failed: Vec<_> = o
            .violations
            .iter()
            .filter(|v| v.action != EnforcementAction::Warn)
            .collect();
        if !failed.is_empty() || o.error.is_some() {
            *failing.entry(&o.object.namespace).or_default() += 1;
        }
        for v in failed {
            for c in &v.controls {
                controls
                    .entry(&o.object.namespace)
                    .or_default()
                    .entry(c.to_string())
                    .or_default()
                    .insert(i);
            }
        }
    }
    let namespaces = scores
        .namespaces
        .iter()
        .filter(|(ns, _)| !ns.is_empty())
        .map(|(ns, score)| {
            let mut failing_controls: Vec<Count> = controls
                .get(ns.as_str())
                .map(|m| {
                    m.iter()
                        .map(|(c, objs)| Count {
                            name: c.clone(),
                            count: objs.len(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            failing_controls
                .sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
            NamespaceRow {
                namespace: ns.clone(),
                readiness: score.clone(),
                score: score.ratio(),
                top_gaps: score
                    .top_gaps(TOP_KEYS)
                    .into_iter()
                    .map(|(k, count)| Count {
                        name: k.as_str().to_owned(),
                        count,
                    })
                    .collect(),
                failing_controls,
                failing_objects: failing.get(ns.as_str()).copied().unwrap_or(0),
            }
        })
        .collect::<Vec<_>>();
    let workloads: Vec<WorkloadRow> = scan
        .objects
        .iter()
        .filter_map(|o| {
            o.readiness.as_ref().map(|r| WorkloadRow {
                kind: o.object.kind.clone(),
                namespace: o.object.namespace.clone(),
                name: o.object.name.clone(),
                readiness: r.clone(),
            })
        })
        .collect();
    let score = scores.cluster.ratio();
    let passed = match (min_score, score) {
        (Some(min), Some(s)) => s + f64::EPSILON >= min,
        _ => true,
    };
    let next_steps = next_steps(&namespaces, &workloads, scan);
    Diagnosis {
        api_version: API_VERSION,
        kind: "DoctorReport",
        source: source.to_owned(),
        score,
        min_score,
        passed,
        readiness: scores.cluster,
        controlled: scan.controlled,
        namespaces,
        workloads,
        next_steps,
    }
}

fn resource(kind: &str) -> String {
    kind.to_ascii_lowercase()
}

fn next_steps(namespaces: &[NamespaceRow], workloads: &[WorkloadRow], scan: &Scan) -> Vec<String> {
    let mut steps = Vec::new();
    let not_ready = |w: &&WorkloadRow| w.readiness.status == Status::NotReady;
    // 1. Re-applying is enough where the namespace already says it all.
    for ns in namespaces {
        if ns.readiness.ready_after_inheritance > 0 {
            let names: Vec<String> = workloads
                .iter()
                .filter(not_ready)
                .filter(|w| w.namespace == ns.namespace && w.readiness.ready_after_inheritance)
                .take(NAMED)
                .map(|w| format!("{}/{}", resource(&w.kind), w.name))
                .collect();
            steps.push(format!(
                "namespace {}: {} workload(s) become ready when re-applied through the webhook, which fills in the namespace's deployscope.dev/* annotations (e.g. {})",
                ns.namespace,
                ns.readiness.ready_after_inheritance,
                names.join(", ")
            ));
        }
    }
    // 2. A key missing on several workloads of a namespace: annotate the
    // namespace once.
    for ns in namespaces {
        let shared: Vec<Key> = [Key::Owner, Key::Tier]
            .into_iter()
            .filter(|k| ns.readiness.missing.get(k).copied().unwrap_or(0) >= 2)
            .collect();
        if !shared.is_empty() {
            let pairs: Vec<String> = shared
                .iter()
                .map(|k| format!("{}='{}'", k.annotation(), k.placeholder()))
                .collect();
            steps.push(format!(
                "namespace {}: {} workloads lack {}; annotate the namespace once (kubectl annotate namespace {} {}) and re-apply them",
                ns.namespace,
                shared
                    .iter()
                    .map(|k| ns.readiness.missing.get(k).copied().unwrap_or(0))
                    .max()
                    .unwrap_or(0),
                shared.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(" and "),
                ns.namespace,
                pairs.join(" ")
            ));
        }
    }
    // 3. Invalid values, named with what is wrong.
    for w in workloads.iter().filter(not_ready) {
        for (key, problem) in w
            .readiness
            .invalid
            .iter()
            .filter(|(k, _)| w.readiness.required.contains(k))
        {
            steps.push(format!(
                "{}/{} in {}: annotation {} {problem}; set {}='{}'",
                resource(&w.kind),
                w.name,
                w.namespace,
                key.annotation(),
                key.annotation(),
                key.placeholder()
            ));
        }
    }
    // 4. Critical workloads that cannot page anyone.
    let critical: Vec<&WorkloadRow> = workloads
        .iter()
        .filter(not_ready)
        .filter(|w| w.readiness.tier == Some(tollgate_policies::ownership::Tier::Critical))
        .collect();
    for w in critical.iter().take(NAMED) {
        let pairs: Vec<String> = w
            .readiness
            .missing
            .iter()
            .map(|k| format!("{}='{}'", k.annotation(), k.placeholder()))
            .collect();
        if !pairs.is_empty() {
            steps.push(format!(
                "critical {}/{} in {} cannot be routed: add {}, e.g. kubectl annotate -n {} {}/{} {}",
                resource(&w.kind),
                w.name,
                w.namespace,
                w.readiness
                    .missing
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                w.namespace,
                resource(&w.kind),
                w.name,
                pairs.join(" ")
            ));
        }
    }
    // 5. Remaining unready workloads, by name.
    let rest: Vec<&WorkloadRow> = workloads
        .iter()
        .filter(not_ready)
        .filter(|w| w.readiness.tier != Some(tollgate_policies::ownership::Tier::Critical))
        .filter(|w| !w.readiness.ready_after_inheritance && !w.readiness.missing.is_empty())
        .collect();
    if !rest.is_empty() {
        steps.push(format!(
            "{} more workload(s) lack required keys, e.g. {}: add at least {}",
            rest.len(),
            rest.iter()
                .take(NAMED)
                .map(|w| format!("{}/{}/{}", w.namespace, resource(&w.kind), w.name))
                .collect::<Vec<_>>()
                .join(", "),
            rest.first()
                .map(|w| w
                    .readiness
                    .missing
                    .iter()
                    .map(|k| k.annotation())
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default()
        ));
    }
    // 6. Compliance.
    let failing: usize = namespaces.iter().map(|n| n.failing_objects).sum();
    if failing > 0 {
        steps.push(format!(
            "{failing} object(s) fail policy checks: run `tollgate check -f` on their manifests for the exact fixes, or read the PolicyReports (kubectl get policyreports -A)"
        ));
    }
    if scan.objects.iter().all(|o| o.readiness.is_none()) {
        steps.push("no workloads found: nothing to score".to_owned());
    }
    steps.truncate(MAX_STEPS);
    steps
}

fn percent(r: Option<f64>) -> String {
    match r {
        Some(r) => format!("{:.0}%", r * 100.0),
        None => "n/a".to_owned(),
    }
}

/// The human report: the score, one row per namespace, the next steps.
pub fn text(d: &Diagnosis) -> String {
    let mut out = String::new();
    let s = &d.readiness;
    let _ = writeln!(
        out,
        "Agent readiness: {} of {} scored workload{} can route an incident ({} ready, {} not ready; {} ignored, {} exempt, {} controller-owned not counted)",
        percent(d.score),
        s.scored,
        if s.scored == 1 { "" } else { "s" },
        s.ready,
        s.scored - s.ready,
        s.ignored,
        s.exempt,
        d.controlled
    );
    if let Some(min) = d.min_score {
        let _ = writeln!(
            out,
            "Minimum score {}: {}",
            percent(Some(min)),
            if d.passed { "met" } else { "NOT met" }
        );
    }
    out.push('\n');
    let rows: Vec<[String; 5]> = d
        .namespaces
        .iter()
        .map(|n| {
            let r = &n.readiness;
            let ready = if r.scored == 0 {
                if r.exempt > 0 {
                    "exempt".to_owned()
                } else if r.ignored > 0 {
                    "ignored".to_owned()
                } else {
                    "-".to_owned()
                }
            } else {
                format!("{}/{} ({})", r.ready, r.scored, percent(n.score))
            };
            let list = |items: Vec<String>| {
                if items.is_empty() {
                    "-".to_owned()
                } else {
                    items.join(", ")
                }
            };
            [
                n.namespace.clone(),
                r.workloads.to_string(),
                ready,
                list(
                    n.top_gaps
                        .iter()
                        .map(|c| format!("{} ({})", c.name, c.count))
                        .collect(),
                ),
                list(
                    n.failing_controls
                        .iter()
                        .take(TOP_CONTROLS)
                        .map(|c| format!("{} ({})", c.name, c.count))
                        .collect(),
                ),
            ]
        })
        .collect();
    let header = [
        "NAMESPACE".to_owned(),
        "WORKLOADS".to_owned(),
        "READY".to_owned(),
        "TOP MISSING KEYS".to_owned(),
        "FAILING CONTROLS".to_owned(),
    ];
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ");
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    if !d.next_steps.is_empty() {
        let _ = writeln!(out, "\nNext steps:");
        for (i, step) in d.next_steps.iter().enumerate() {
            let _ = writeln!(out, "  {}. {step}", i + 1);
        }
    }
    out
}

/// The machine-readable report.
pub fn json(d: &Diagnosis) -> String {
    let mut text = serde_json::to_string_pretty(d).unwrap_or_default();
    text.push('\n');
    text
}

/// Why no client could be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The kubeconfig could not be read or used.
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// Neither in-cluster configuration nor `KUBECONFIG`/`~/.kube/config`
    /// worked.
    #[error("no Kubernetes configuration (in-cluster or KUBECONFIG): {0}")]
    Infer(String),
}

/// A client from `kubeconfig` (its current context), else the in-cluster
/// configuration or `KUBECONFIG`/`~/.kube/config`.
pub async fn client(kubeconfig: Option<&Path>) -> Result<kube::Client, ClientError> {
    let config = match kubeconfig {
        Some(path) => {
            let err = |message: String| ClientError::Kubeconfig {
                path: path.display().to_string(),
                message,
            };
            let file = kube::config::Kubeconfig::read_from(path).map_err(|e| err(e.to_string()))?;
            kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| err(e.to_string()))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| ClientError::Infer(e.to_string()))?,
    };
    kube::Client::try_from(config).map_err(|e| ClientError::Infer(e.to_string()))
}
