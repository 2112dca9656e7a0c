//! `ConstraintTemplate`s: the constraint kind they define, the schema of its
//! parameters, and their Rego compiled into a [`Program`].
//!
//! Both template forms are read: `spec.targets[].rego` + `libs` (the
//! original form), and `spec.targets[].code[]`, where the entry with
//! `engine: Rego` holds `source.rego`, `source.libs` and `source.version`
//! (entries for other engines, such as CEL's `K8sNativeValidation`, are
//! ignored when a Rego entry exists). `version: v1` compiles as Rego v1;
//! otherwise, as in Gatekeeper, the Rego is read as v1 and, should that fail
//! to parse, as v0.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use serde_json::Value;

use super::yaml::Document;
use super::{GatekeeperError, TARGET};
use crate::rego::{Limits, Module, Origin, Program, RegoError, RegoVersion};

/// A compiled ConstraintTemplate.
#[derive(Debug, Clone)]
pub struct Template {
    name: String,
    kind: String,
    file: String,
    version: RegoVersion,
    program: Program,
    violation_path: String,
    schema: Option<Value>,
    uses_inventory: bool,
    fingerprint: u64,
}

impl Template {
    /// `metadata.name`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The constraint kind it defines (`spec.crd.spec.names.kind`).
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The file it was loaded from.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The Rego edition its code compiled as.
    pub fn version(&self) -> RegoVersion {
        self.version
    }

    /// The compiled Rego.
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// The rule evaluated for violations (`data.<package>.violation`).
    pub fn violation_path(&self) -> &str {
        &self.violation_path
    }

    pub(crate) fn schema(&self) -> Option<&Value> {
        self.schema.as_ref()
    }

    pub(crate) fn uses_inventory(&self) -> bool {
        self.uses_inventory
    }

    pub(crate) fn fingerprint(&self) -> u64 {
        self.fingerprint
    }
}

/// The Rego of a template target.
struct RegoSource {
    rego: String,
    libs: Vec<String>,
    version: Option<String>,
    field: String,
    libs_field: String,
}

fn doc_error(doc: &Document, text: &str, key: &str, message: String) -> GatekeeperError {
    GatekeeperError::Document {
        location: doc.field_location(text, key),
        message,
    }
}

fn string_list(value: Option<&Value>) -> Option<Vec<String>> {
    match value {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(_) => None,
    }
}

fn rego_source(
    doc: &Document,
    text: &str,
    name: &str,
    target: &Value,
) -> Result<RegoSource, GatekeeperError> {
    let legacy = target.get("rego").and_then(Value::as_str);
    let code = target.get("code").and_then(Value::as_array);
    let rego_entry = code.and_then(|entries| {
        entries
            .iter()
            .enumerate()
            .find(|(_, e)| e.get("engine").and_then(Value::as_str) == Some("Rego"))
    });
    match (legacy, rego_entry) {
        (Some(_), Some(_)) => Err(doc_error(
            doc,
            text,
            "code",
            format!(
                "ConstraintTemplate {name} has both spec.targets[0].rego and a code entry \
                 with engine Rego; keep only one"
            ),
        )),
        (Some(rego), None) => Ok(RegoSource {
            rego: rego.to_owned(),
            libs: string_list(target.get("libs")).ok_or_else(|| {
                doc_error(
                    doc,
                    text,
                    "libs",
                    format!(
                        "ConstraintTemplate {name}: spec.targets[0].libs must be a list of strings"
                    ),
                )
            })?,
            version: None,
            field: "spec.targets[0].rego".to_owned(),
            libs_field: "spec.targets[0].libs".to_owned(),
        }),
        (None, Some((index, entry))) => {
            let source = entry.get("source");
            let rego = source
                .and_then(|s| s.get("rego"))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    doc_error(
                        doc,
                        text,
                        "source",
                        format!(
                            "ConstraintTemplate {name}: spec.targets[0].code[{index}] (engine Rego) \
                             needs source.rego"
                        ),
                    )
                })?;
            let libs = string_list(source.and_then(|s| s.get("libs"))).ok_or_else(|| {
                doc_error(
                    doc,
                    text,
                    "libs",
                    format!(
                        "ConstraintTemplate {name}: spec.targets[0].code[{index}].source.libs \
                         must be a list of strings"
                    ),
                )
            })?;
            let version = source
                .and_then(|s| s.get("version"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            Ok(RegoSource {
                rego: rego.to_owned(),
                libs,
                version,
                field: format!("spec.targets[0].code[{index}].source.rego"),
                libs_field: format!("spec.targets[0].code[{index}].source.libs"),
            })
        }
        (None, None) => {
            let engines: Vec<&str> = code
                .map(|entries| {
                    entries
                        .iter()
                        .filter_map(|e| e.get("engine").and_then(Value::as_str))
                        .collect()
                })
                .unwrap_or_default();
            let message = if engines.is_empty() {
                format!("ConstraintTemplate {name} has no Rego: set spec.targets[0].rego")
            } else {
                format!(
                    "ConstraintTemplate {name} has code only for engine(s) {}; Tollgate runs \
                     Rego, so add a code entry with engine: Rego",
                    engines.join(", ")
                )
            };
            Err(doc_error(doc, text, "targets", message))
        }
    }
}

fn modules(doc: &Document, text: &str, src: &RegoSource, version: RegoVersion) -> Vec<Module> {
    let mut out = vec![
        Module::new(format!("{}#{}", doc.file, src.field), &src.rego, version)
            .with_origin(Origin::locate(&doc.file, text, &src.rego, &src.field)),
    ];
    for (i, lib) in src.libs.iter().enumerate() {
        let field = format!("{}[{i}]", src.libs_field);
        out.push(
            Module::new(format!("{}#{field}", doc.file), lib, version)
                .with_origin(Origin::locate(&doc.file, text, lib, &field)),
        );
    }
    out
}

fn position(err: &RegoError) -> (u32, u32) {
    err.location().map_or((0, 0), |l| (l.line, l.column))
}

/// Compiles per the declared version. Without one (or with `v0`, the
/// schema's default), it does what Gatekeeper does: tries Rego v1 first and
/// falls back to v0, so templates written in either edition load unchanged.
/// When neither parses, the attempt that got further is reported (the v0 one
/// on a tie).
fn compile(
    doc: &Document,
    text: &str,
    src: &RegoSource,
    limits: Limits,
) -> Result<(Program, RegoVersion), RegoError> {
    if src.version.as_deref() == Some("v1") {
        return Program::compile(modules(doc, text, src, RegoVersion::V1), limits)
            .map(|p| (p, RegoVersion::V1));
    }
    match Program::compile(modules(doc, text, src, RegoVersion::V1), limits) {
        Ok(p) => Ok((p, RegoVersion::V1)),
        Err(v1 @ RegoError::Parse { .. }) => {
            match Program::compile(modules(doc, text, src, RegoVersion::V0), limits) {
                Ok(p) => Ok((p, RegoVersion::V0)),
                Err(v0) if position(&v1) > position(&v0) => Err(v1),
                Err(v0) => Err(v0),
            }
        }
        Err(other) => Err(other),
    }
}

fn fingerprint(doc: &Document, src: &RegoSource, limits: Limits, text: &str) -> u64 {
    let mut h = DefaultHasher::new();
    doc.file.hash(&mut h);
    doc.value.to_string().hash(&mut h);
    Origin::locate(&doc.file, text, &src.rego, &src.field).hash(&mut h);
    format!("{limits:?}").hash(&mut h);
    h.finish()
}

/// Reads and compiles the template in `doc` (from file text `text`).
/// `reuse` returns an already compiled template with the same fingerprint,
/// if the caller has one.
pub(crate) fn parse(
    doc: &Document,
    text: &str,
    limits: Limits,
    reuse: &dyn Fn(u64) -> Option<Template>,
) -> Result<Template, GatekeeperError> {
    let v = &doc.value;
    let name = v
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            doc_error(
                doc,
                text,
                "metadata",
                "ConstraintTemplate needs metadata.name".to_owned(),
            )
        })?
        .to_owned();
    let kind = v
        .pointer("/spec/crd/spec/names/kind")
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            doc_error(
                doc,
                text,
                "names",
                format!("ConstraintTemplate {name} needs spec.crd.spec.names.kind"),
            )
        })?
        .to_owned();
    if name != kind.to_lowercase() {
        return Err(doc_error(
            doc,
            text,
            "name",
            format!(
                "ConstraintTemplate name {name:?} must be the lowercase of its kind {kind:?} \
                 (expected {:?})",
                kind.to_lowercase()
            ),
        ));
    }
    let targets = v
        .pointer("/spec/targets")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            doc_error(
                doc,
                text,
                "targets",
                format!("ConstraintTemplate {name} needs spec.targets"),
            )
        })?;
    let [target] = targets.as_slice() else {
        return Err(doc_error(
            doc,
            text,
            "targets",
            format!(
                "ConstraintTemplate {name} must have exactly one target, found {}",
                targets.len()
            ),
        ));
    };
    let target_name = target.get("target").and_then(Value::as_str).unwrap_or("");
    if target_name != TARGET {
        return Err(doc_error(
            doc,
            text,
            "target",
            format!(
                "ConstraintTemplate {name} targets {target_name:?}; only {TARGET} is supported"
            ),
        ));
    }
    let src = rego_source(doc, text, &name, target)?;
    if let Some(version) = &src.version
        && version != "v0"
        && version != "v1"
    {
        return Err(doc_error(
            doc,
            text,
            "version",
            format!("ConstraintTemplate {name}: source.version {version:?} is not v0 or v1"),
        ));
    }
    let fingerprint = fingerprint(doc, &src, limits, text);
    if let Some(t) = reuse(fingerprint) {
        return Ok(t);
    }
    let (program, version) =
        compile(doc, text, &src, limits).map_err(|error| GatekeeperError::Rego {
            template: name.clone(),
            error,
        })?;
    let main = program.modules().first();
    let violation_path = match main {
        Some(m) if m.defines("violation") => m.rule_path("violation"),
        _ => {
            let location = Origin::locate(&doc.file, text, &src.rego, &src.field).translate(1, 1);
            return Err(GatekeeperError::Rego {
                template: name,
                error: RegoError::Compile {
                    location: Some(location),
                    message: "the template's Rego must define a `violation` rule".to_owned(),
                },
            });
        }
    };
    let schema = v
        .pointer("/spec/crd/spec/validation/openAPIV3Schema")
        .filter(|s| s.is_object())
        .cloned();
    let uses_inventory =
        src.rego.contains("inventory") || src.libs.iter().any(|l| l.contains("inventory"));
    Ok(Template {
        name,
        kind,
        file: doc.file.clone(),
        version,
        program,
        violation_path,
        schema,
        uses_inventory,
        fingerprint,
    })
}
