//! The `policy.defaults` section: settings of the secure-defaults mutation.
//!
//! The mutation and its typed settings live in the secure-defaults module;
//! this section carries them through the config file unchanged. It must be
//! a mapping (or absent).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The secure-defaults settings, as written in the config file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct DefaultsSection(pub Map<String, Value>);
