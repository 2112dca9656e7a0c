//! Reading an action policy file: YAML in, [`ActionPolicy`] out, with every
//! error located as `file:line:column` plus the field path.
//!
//! Rules and routes compile *while* they are deserialized (inside the map
//! visitor), so a bad glob, regex or Rego module is reported at the line of
//! the rule that holds it, not at the end of the file.

use std::collections::HashSet;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, DeserializeOwned, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::ActionPolicyError;
use super::compile::{ActionPolicy, Rule, check_header};
use super::matcher::HostPatterns;
use super::route::{BodyLimits, Route};
use super::spec::{ActionPolicyDocument, LimitsSpec, Metadata, RouteSpec, RuleSpec, TlsSpec};

/// The largest policy file accepted, in bytes.
pub const MAX_POLICY_BYTES: usize = 4 << 20;

impl ActionPolicy {
    /// Parses and compiles a policy file's contents; `file` names it in
    /// errors.
    pub fn parse(text: &str, file: &str) -> Result<ActionPolicy, ActionPolicyError> {
        check_size(text, file)?;
        let doc: Compiled<FileDocument> =
            yaml_serde::from_str(text).map_err(|e| located(&e, file))?;
        let doc = doc.0;
        Ok(ActionPolicy {
            name: doc.metadata.name.as_str().into(),
            rules: doc.spec.rules.0,
            routes: doc.spec.routes.0,
            limits: doc.spec.limits.0,
            passthrough: doc.spec.tls.0,
            baseline: None,
        })
    }
}

impl ActionPolicyDocument {
    /// Parses a policy file into its spec (schema checks only; compile it
    /// with [`ActionPolicy::compile`]).
    pub fn from_yaml(text: &str, file: &str) -> Result<ActionPolicyDocument, ActionPolicyError> {
        check_size(text, file)?;
        let doc: ActionPolicyDocument =
            yaml_serde::from_str(text).map_err(|e| located(&e, file))?;
        check_header(&doc).map_err(|message| ActionPolicyError::File {
            file: file.to_owned(),
            line: 1,
            column: 1,
            message,
        })?;
        Ok(doc)
    }
}

fn check_size(text: &str, file: &str) -> Result<(), ActionPolicyError> {
    if text.len() > MAX_POLICY_BYTES {
        return Err(ActionPolicyError::Unlocated {
            file: file.to_owned(),
            message: format!(
                "the policy is {} bytes; the limit is {MAX_POLICY_BYTES}",
                text.len()
            ),
        });
    }
    Ok(())
}

/// Turns a YAML error into a located policy error.
fn located(err: &yaml_serde::Error, file: &str) -> ActionPolicyError {
    let text = err.to_string();
    match err.location() {
        Some(loc) => {
            let suffix = format!(" at line {} column {}", loc.line(), loc.column());
            let message = text.strip_suffix(&suffix).unwrap_or(&text).to_owned();
            ActionPolicyError::File {
                file: file.to_owned(),
                line: loc.line(),
                column: loc.column(),
                message,
            }
        }
        None => ActionPolicyError::Unlocated {
            file: file.to_owned(),
            message: text,
        },
    }
}

/// Something compiled from a spec while it is deserialized.
trait Compile: Sized {
    type Spec: DeserializeOwned;
    fn compile(spec: Self::Spec) -> Result<Self, String>;
}

/// Deserializes `T::Spec` from a mapping and compiles it inside the map
/// visitor, so a compile error carries the mapping's location.
struct Compiled<T>(T);

impl<'de, T: Compile> Deserialize<'de> for Compiled<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Compile> Visitor<'de> for V<T> {
            type Value = Compiled<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let spec = T::Spec::deserialize(MapAccessDeserializer::new(map))?;
                T::compile(spec).map(Compiled).map_err(de::Error::custom)
            }
        }
        deserializer.deserialize_map(V(PhantomData))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawDocument {
    api_version: String,
    kind: String,
    #[serde(default)]
    metadata: Metadata,
    spec: FileSpec,
}

struct FileDocument {
    metadata: Metadata,
    spec: FileSpec,
}

impl Compile for FileDocument {
    type Spec = RawDocument;
    fn compile(raw: RawDocument) -> Result<Self, String> {
        let header = ActionPolicyDocument {
            api_version: raw.api_version,
            kind: raw.kind,
            metadata: Metadata::default(),
            spec: Default::default(),
        };
        check_header(&header)?;
        Ok(FileDocument {
            metadata: raw.metadata,
            spec: raw.spec,
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FileSpec {
    #[serde(default)]
    limits: Compiled<BodyLimits>,
    #[serde(default)]
    tls: Compiled<HostPatterns>,
    #[serde(default)]
    routes: Named<Arc<Route>>,
    #[serde(default)]
    rules: Named<Rule>,
}

impl Default for Compiled<BodyLimits> {
    fn default() -> Self {
        Compiled(BodyLimits::default())
    }
}

impl Default for Compiled<HostPatterns> {
    fn default() -> Self {
        Compiled(HostPatterns::default())
    }
}

impl Compile for BodyLimits {
    type Spec = LimitsSpec;
    fn compile(spec: LimitsSpec) -> Result<Self, String> {
        BodyLimits::compile(&spec)
    }
}

impl Compile for HostPatterns {
    type Spec = TlsSpec;
    fn compile(spec: TlsSpec) -> Result<Self, String> {
        HostPatterns::compile(&spec.passthrough).map_err(|e| format!("passthrough: {e}"))
    }
}

impl Compile for Arc<Route> {
    type Spec = RouteSpec;
    fn compile(spec: RouteSpec) -> Result<Self, String> {
        Route::compile(&spec).map(Arc::new)
    }
}

impl Compile for Rule {
    type Spec = RuleSpec;
    fn compile(spec: RuleSpec) -> Result<Self, String> {
        Rule::compile(&spec)
    }
}

/// Things with a unique name.
trait HasName {
    fn name(&self) -> &str;
    const WHAT: &'static str;
}

impl HasName for Rule {
    fn name(&self) -> &str {
        &self.name
    }
    const WHAT: &'static str = "rule";
}

impl HasName for Arc<Route> {
    fn name(&self) -> &str {
        &self.name
    }
    const WHAT: &'static str = "route";
}

/// A list of compiled, uniquely named items.
struct Named<T>(Vec<T>);

impl<T> Default for Named<T> {
    fn default() -> Self {
        Named(Vec::new())
    }
}

impl<'de, T: Compile + HasName> Deserialize<'de> for Named<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Compile + HasName> Visitor<'de> for V<T> {
            type Value = Named<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a list of {}s", T::WHAT)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items: Vec<T> = Vec::new();
                let mut names = HashSet::new();
                while let Some(Compiled(item)) = seq.next_element::<Compiled<T>>()? {
                    if !names.insert(item.name().to_owned()) {
                        return Err(de::Error::custom(format!(
                            "[{}]: duplicate {} name {:?}",
                            items.len(),
                            T::WHAT,
                            item.name()
                        )));
                    }
                    items.push(item);
                }
                Ok(Named(items))
            }
        }
        deserializer.deserialize_seq(V(PhantomData))
    }
}
