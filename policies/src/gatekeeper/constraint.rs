//! Constraints: instances of a template's kind, with parameters, a
//! `spec.match` and an enforcement action.
//!
//! `spec.enforcementAction` is `deny` (the default), `warn`, `dryrun`
//! (recorded only, [`EnforcementAction::Audit`]) or `scoped`, where
//! `spec.scopedEnforcementActions` lists actions per enforcement point
//! (`validation.gatekeeper.sh` is the admission webhook, `audit.gatekeeper.sh`
//! background audit, `gator.gatekeeper.sh` offline tests, `*` all of them).

use serde_json::Value;

use super::GatekeeperError;
use super::matching::Match;
use super::schema;
use super::template::Template;
use super::yaml::Document;
use crate::EnforcementAction;
use crate::rego::{self, Location};

/// Where a constraint is being enforced, for `scoped` enforcement actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EnforcementPoint {
    /// The admission webhook (`validation.gatekeeper.sh`).
    Validation,
    /// Background audit (`audit.gatekeeper.sh`).
    Audit,
    /// Offline test runs (`gator.gatekeeper.sh`): `tollgate verify` and
    /// `tollgate check`.
    Gator,
}

impl EnforcementPoint {
    /// Gatekeeper's name for the point.
    pub fn as_str(self) -> &'static str {
        match self {
            EnforcementPoint::Validation => "validation.gatekeeper.sh",
            EnforcementPoint::Audit => "audit.gatekeeper.sh",
            EnforcementPoint::Gator => "gator.gatekeeper.sh",
        }
    }
}

/// The enforcement action(s) of a constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Actions {
    /// One action everywhere.
    Single(EnforcementAction),
    /// Actions per enforcement point.
    Scoped(Vec<(EnforcementAction, Vec<String>)>),
}

/// A loaded constraint.
#[derive(Debug, Clone)]
pub struct Constraint {
    kind: String,
    name: String,
    location: Location,
    pub(crate) parameters: rego::Value,
    parameters_json: Value,
    pub(crate) matcher: Match,
    actions: Actions,
}

fn parse_action(text: &str) -> Option<EnforcementAction> {
    match text.to_ascii_lowercase().as_str() {
        "deny" => Some(EnforcementAction::Deny),
        "warn" => Some(EnforcementAction::Warn),
        "dryrun" => Some(EnforcementAction::Audit),
        _ => None,
    }
}

fn severity(a: EnforcementAction) -> u8 {
    match a {
        EnforcementAction::Deny => 2,
        EnforcementAction::Warn => 1,
        EnforcementAction::Audit => 0,
    }
}

impl Constraint {
    /// Its kind (the template's constraint kind).
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `Kind/name`, the rule name its violations carry.
    pub fn key(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }

    /// Where it was loaded from.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// `spec.parameters` (`{}` when absent).
    pub fn parameters(&self) -> &Value {
        &self.parameters_json
    }

    /// The action at `point` (the most severe when several apply), or
    /// `None` when the constraint is not enforced there. `None` as the point
    /// means "anywhere".
    pub fn action_at(&self, point: Option<EnforcementPoint>) -> Option<EnforcementAction> {
        match &self.actions {
            Actions::Single(a) => Some(*a),
            Actions::Scoped(scoped) => scoped
                .iter()
                .filter(|(_, points)| {
                    point.is_none_or(|p| points.iter().any(|n| n == "*" || n == p.as_str()))
                })
                .map(|(a, _)| *a)
                .max_by_key(|a| severity(*a)),
        }
    }
}

fn constraint_error(doc: &Document, text: &str, key: &str, message: String) -> GatekeeperError {
    GatekeeperError::Document {
        location: doc.field_location(text, key),
        message,
    }
}

fn parse_actions(
    doc: &Document,
    text: &str,
    spec: Option<&Value>,
    key: &str,
) -> Result<Actions, GatekeeperError> {
    let action = spec
        .and_then(|s| s.get("enforcementAction"))
        .and_then(Value::as_str)
        .unwrap_or("deny");
    if action.eq_ignore_ascii_case("scoped") {
        let entries = spec
            .and_then(|s| s.get("scopedEnforcementActions"))
            .and_then(Value::as_array)
            .filter(|e| !e.is_empty())
            .ok_or_else(|| {
                constraint_error(
                    doc,
                    text,
                    "enforcementAction",
                    format!("{key}: enforcementAction scoped needs spec.scopedEnforcementActions"),
                )
            })?;
        let mut scoped = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            let name = entry.get("action").and_then(Value::as_str).unwrap_or("");
            let action = parse_action(name).ok_or_else(|| {
                constraint_error(
                    doc,
                    text,
                    "scopedEnforcementActions",
                    format!(
                        "{key}: spec.scopedEnforcementActions[{i}].action {name:?} is not one of \
                         deny, warn, dryrun"
                    ),
                )
            })?;
            let points: Vec<String> = entry
                .get("enforcementPoints")
                .and_then(Value::as_array)
                .map(|ps| {
                    ps.iter()
                        .filter_map(|p| p.get("name").and_then(Value::as_str).map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            scoped.push((action, points));
        }
        return Ok(Actions::Scoped(scoped));
    }
    parse_action(action).map(Actions::Single).ok_or_else(|| {
        constraint_error(
            doc,
            text,
            "enforcementAction",
            format!(
                "{key}: spec.enforcementAction {action:?} is not one of deny, warn, dryrun, scoped"
            ),
        )
    })
}

/// Reads the constraint in `doc`, an instance of `template`.
pub(crate) fn parse(
    doc: &Document,
    text: &str,
    template: &Template,
) -> Result<Constraint, GatekeeperError> {
    let v = &doc.value;
    let kind = template.kind().to_owned();
    let name = v
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            constraint_error(
                doc,
                text,
                "metadata",
                format!("{kind} constraint needs metadata.name"),
            )
        })?
        .to_owned();
    let key = format!("{kind}/{name}");
    let spec = v.get("spec").filter(|s| !s.is_null());
    if let Some(spec) = spec
        && !spec.is_object()
    {
        return Err(constraint_error(
            doc,
            text,
            "spec",
            format!("{key}: spec must be an object"),
        ));
    }
    let parameters_json = match spec.and_then(|s| s.get("parameters")) {
        None | Some(Value::Null) => Value::Object(serde_json::Map::new()),
        Some(p) => p.clone(),
    };
    if let Some(schema) = template.schema()
        && let Some(message) = schema::validate(schema, &parameters_json)
    {
        return Err(GatekeeperError::Schema {
            location: doc.field_location(text, "parameters"),
            kind,
            name,
            message,
        });
    }
    let matcher = Match::parse(spec.and_then(|s| s.get("match")))
        .map_err(|m| constraint_error(doc, text, "match", format!("{key}: {m}")))?;
    let actions = parse_actions(doc, text, spec, &key)?;
    let parameters = rego::Value::from_json(&parameters_json)
        .map_err(|e| constraint_error(doc, text, "parameters", format!("{key}: {e}")))?;
    Ok(Constraint {
        kind,
        name,
        location: doc.location(),
        parameters,
        parameters_json,
        matcher,
        actions,
    })
}
