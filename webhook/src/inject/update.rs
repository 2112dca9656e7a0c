//! An injected pod after admission: every UPDATE (the pod itself,
//! `ephemeralcontainers`, `resize`, any subresource that carries the pod)
//! keeps the sidecar exactly as it was admitted, field for field, with its
//! volumes, and may not bring in any problem the pod did not already have.
//!
//! The comparison is with the admitted pod rather than with the current
//! template: after an upgrade of Tollgate the template renders another
//! image, and the pods admitted before must still be updatable (finalizers
//! removed, labels changed) without a new sidecar.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::bypass::{self, Problem, Scope};
use super::compare;
use super::names::{SIDECAR_NAME, SIDECAR_ONLY_VOLUMES, VOLUME_TRUST};
use super::patch::containers;
use super::template::Template;

/// The pod's sidecar: where it is, and the container.
pub fn sidecar(spec: &PodSpec) -> Option<(&'static str, usize, &Container)> {
    ["initContainers", "containers"].into_iter().find_map(|l| {
        containers(spec, l)
            .iter()
            .enumerate()
            .find(|(_, c)| c.name == SIDECAR_NAME)
            .map(|(i, c)| (l, i, c))
    })
}

/// Every problem an UPDATE from `old` to `new` brings in.
pub fn check(
    old: (&ObjectMeta, &PodSpec),
    new: (&ObjectMeta, &PodSpec),
    template: &Template,
    enforced: bool,
) -> Vec<Problem> {
    let mut out = Vec::new();
    let fix = "an injected pod's sidecar and its volumes cannot change after admission; delete the pod and create it again through Tollgate's mutating webhook";
    match (sidecar(old.1), sidecar(new.1)) {
        (Some((ol, oi, oc)), Some((nl, ni, nc))) => {
            let mut diff = compare::container_differences(nc, oc);
            if (ol, oi) != (nl, ni) {
                diff.insert(0, "position".to_owned());
            }
            if !diff.is_empty() {
                out.push(Problem {
                    rule: "sidecarChanged",
                    path: format!("spec.{nl}[{ni}]"),
                    container: Some(SIDECAR_NAME.into()),
                    message: format!(
                        "this update changes {SIDECAR_NAME} in {}; {fix}",
                        diff.join(", ")
                    ),
                });
            }
        }
        (Some(_), None) => out.push(Problem {
            rule: "sidecarChanged",
            path: "spec".into(),
            container: Some(SIDECAR_NAME.into()),
            message: format!("this update removes {SIDECAR_NAME}; {fix}"),
        }),
        (None, Some((nl, ni, _))) => out.push(Problem {
            rule: "sidecarChanged",
            path: format!("spec.{nl}[{ni}]"),
            container: Some(SIDECAR_NAME.into()),
            message: format!("this update adds a container named {SIDECAR_NAME}; {fix}"),
        }),
        (None, None) => {}
    }
    let reserved = |name: &str| {
        SIDECAR_ONLY_VOLUMES.contains(&name)
            || name == VOLUME_TRUST
            || template.volumes_typed.iter().any(|v| v.name == name)
    };
    let volumes = |spec: &PodSpec| {
        spec.volumes
            .iter()
            .flatten()
            .filter(|v| reserved(&v.name))
            .map(|v| serde_json::to_value(v).unwrap_or_default())
            .collect::<Vec<_>>()
    };
    if volumes(old.1) != volumes(new.1) {
        out.push(Problem {
            rule: "volumeChanged",
            path: "spec.volumes".into(),
            container: None,
            message: format!("this update changes the injected sidecar's volumes; {fix}"),
        });
    }
    let before: BTreeSet<(&str, String)> =
        bypass::check(old.0, old.1, template, Scope::Running, enforced)
            .into_iter()
            .map(|p| (p.rule, p.path))
            .collect();
    out.extend(
        bypass::check(new.0, new.1, template, Scope::Running, enforced)
            .into_iter()
            .filter(|p| !before.contains(&(p.rule, p.path.clone()))),
    );
    out
}
