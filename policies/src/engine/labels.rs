//! Namespace labels that select Pod Security levels:
//! `pss.tollgate.dev/{enforce,warn,audit}` and `…-version`, with the values
//! and the error semantics of Pod Security Admission's
//! `pod-security.kubernetes.io/*` labels:
//!
//! - an unset label falls back to the cluster default from the config file;
//! - an invalid `enforce` level fails closed to `restricted`; an invalid
//!   `warn` or `audit` level fails open to `privileged`; an invalid version
//!   evaluates as `latest`; each invalid label is reported;
//! - `v1.N` newer than this build evaluates as the latest version it knows.

use std::collections::BTreeMap;
use std::fmt;

use crate::config::PodSecurityConfig;
use crate::{Level, LevelVersion, Version};

/// The label prefix.
pub const PREFIX: &str = "pss.tollgate.dev/";
/// The enforce level label.
pub const ENFORCE: &str = "pss.tollgate.dev/enforce";
/// The enforce version label.
pub const ENFORCE_VERSION: &str = "pss.tollgate.dev/enforce-version";
/// The warn level label.
pub const WARN: &str = "pss.tollgate.dev/warn";
/// The warn version label.
pub const WARN_VERSION: &str = "pss.tollgate.dev/warn-version";
/// The audit level label.
pub const AUDIT: &str = "pss.tollgate.dev/audit";
/// The audit version label.
pub const AUDIT_VERSION: &str = "pss.tollgate.dev/audit-version";

const KNOWN: [&str; 6] = [
    ENFORCE,
    ENFORCE_VERSION,
    WARN,
    WARN_VERSION,
    AUDIT,
    AUDIT_VERSION,
];

/// The three modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Deny.
    Enforce,
    /// Warn.
    Warn,
    /// Record only.
    Audit,
}

impl Mode {
    /// `enforce`, `warn` or `audit`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Warn => "warn",
            Mode::Audit => "audit",
        }
    }
}

/// The level and version each mode evaluates in one namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamespacePolicy {
    /// Deny at this level.
    pub enforce: LevelVersion,
    /// Warn at this level.
    pub warn: LevelVersion,
    /// Record at this level.
    pub audit: LevelVersion,
}

/// A namespace label Pod Security could not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelError {
    /// The label key.
    pub label: String,
    /// Its value.
    pub value: String,
    /// What is accepted.
    pub expected: &'static str,
}

impl fmt::Display for LabelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "metadata.labels[{}]: invalid value {:?}: must be {}",
            self.label, self.value, self.expected
        )
    }
}

const LEVELS: &str = "one of privileged, baseline, restricted";
const VERSIONS: &str = "\"latest\" or \"v1.x\"";

impl NamespacePolicy {
    /// The cluster defaults from the config file.
    pub fn defaults(config: &PodSecurityConfig) -> NamespacePolicy {
        let lv = |m: &crate::config::ModeConfig| LevelVersion {
            level: m.level,
            version: m.version,
        };
        NamespacePolicy {
            enforce: lv(&config.enforce),
            warn: lv(&config.warn),
            audit: lv(&config.audit),
        }
    }

    /// Resolves a namespace's labels over `defaults`. Always returns a usable
    /// policy; invalid labels are reported alongside it.
    pub fn from_labels(
        labels: &BTreeMap<String, String>,
        defaults: NamespacePolicy,
    ) -> (NamespacePolicy, Vec<LabelError>) {
        let mut policy = defaults;
        let mut errors = Vec::new();
        if labels.is_empty() {
            return (policy, errors);
        }
        let mut level = |key: &str, fallback: Level, slot: &mut Level| {
            if let Some(value) = labels.get(key) {
                match value.parse::<Level>() {
                    Ok(l) => *slot = l,
                    Err(_) => {
                        *slot = fallback;
                        errors.push(LabelError {
                            label: key.to_owned(),
                            value: value.clone(),
                            expected: LEVELS,
                        });
                    }
                }
            }
        };
        level(ENFORCE, Level::Restricted, &mut policy.enforce.level);
        level(WARN, Level::Privileged, &mut policy.warn.level);
        level(AUDIT, Level::Privileged, &mut policy.audit.level);
        for (key, slot) in [
            (ENFORCE_VERSION, &mut policy.enforce.version),
            (WARN_VERSION, &mut policy.warn.version),
            (AUDIT_VERSION, &mut policy.audit.version),
        ] {
            if let Some(value) = labels.get(key) {
                match parse_version(value) {
                    Some(v) => *slot = v,
                    None => {
                        *slot = Version::Latest;
                        errors.push(LabelError {
                            label: key.to_owned(),
                            value: value.clone(),
                            expected: VERSIONS,
                        });
                    }
                }
            }
        }
        // Report in label order, as PSA does (enforce, enforce-version, ...).
        errors.sort_by_key(|e| KNOWN.iter().position(|k| *k == e.label));
        (policy, errors)
    }

    /// The level and version of one mode.
    pub fn mode(&self, mode: Mode) -> LevelVersion {
        match mode {
            Mode::Enforce => self.enforce,
            Mode::Warn => self.warn,
            Mode::Audit => self.audit,
        }
    }
}

/// Labels under the prefix that are not Pod Security labels (likely typos).
pub fn unknown_labels(labels: &BTreeMap<String, String>) -> impl Iterator<Item = &str> {
    labels
        .keys()
        .filter(|k| k.starts_with(PREFIX) && !KNOWN.contains(&k.as_str()))
        .map(String::as_str)
}

/// `latest` or `v1.N` as Pod Security Admission's regular expression
/// `^v1\.([0-9]|[1-9][0-9]*)$` accepts it; a minor too large to count is
/// still a valid (future) version and evaluates as latest.
fn parse_version(text: &str) -> Option<Version> {
    if text == "latest" {
        return Some(Version::Latest);
    }
    let minor = text.strip_prefix("v1.")?;
    let digits_ok = !minor.is_empty()
        && minor.bytes().all(|b| b.is_ascii_digit())
        && !(minor.len() > 1 && minor.starts_with('0'));
    if !digits_ok {
        return None;
    }
    Some(Version::Minor(minor.parse::<u16>().unwrap_or(u16::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn lv(text: &str) -> LevelVersion {
        text.parse().unwrap()
    }

    fn defaults() -> NamespacePolicy {
        NamespacePolicy {
            enforce: lv("baseline:v1.30"),
            warn: lv("restricted:latest"),
            audit: lv("restricted:v1.25"),
        }
    }

    #[test]
    fn unset_labels_keep_the_defaults() {
        let (p, errs) = NamespacePolicy::from_labels(&labels(&[("team", "a")]), defaults());
        assert_eq!(p, defaults());
        assert!(errs.is_empty());
    }

    #[test]
    fn labels_override_each_mode() {
        let (p, errs) = NamespacePolicy::from_labels(
            &labels(&[
                (ENFORCE, "privileged"),
                (WARN, "baseline"),
                (WARN_VERSION, "v1.2"),
                (AUDIT_VERSION, "latest"),
            ]),
            defaults(),
        );
        assert!(errs.is_empty());
        assert_eq!(p.enforce, lv("privileged:v1.30"));
        assert_eq!(p.warn, lv("baseline:v1.2"));
        assert_eq!(p.audit, lv("restricted:latest"));
    }

    #[test]
    fn invalid_labels_fail_closed_for_enforce_and_open_for_warn_and_audit() {
        let (p, errs) = NamespacePolicy::from_labels(
            &labels(&[
                (ENFORCE, "strict"),
                (ENFORCE_VERSION, "1.30"),
                (WARN, "loud"),
                (AUDIT, "Restricted"),
                (AUDIT_VERSION, "v1.030"),
            ]),
            defaults(),
        );
        assert_eq!(p.enforce, lv("restricted:latest"));
        assert_eq!(p.warn.level, Level::Privileged);
        assert_eq!(p.audit, lv("privileged:latest"));
        let keys: Vec<_> = errs.iter().map(|e| e.label.as_str()).collect();
        assert_eq!(keys, [ENFORCE, ENFORCE_VERSION, WARN, AUDIT, AUDIT_VERSION]);
        assert_eq!(
            errs[0].to_string(),
            "metadata.labels[pss.tollgate.dev/enforce]: invalid value \"strict\": must be one of privileged, baseline, restricted"
        );
    }

    #[test]
    fn future_versions_are_valid_and_evaluate_as_latest() {
        assert_eq!(parse_version("v1.99"), Some(Version::Minor(99)));
        assert_eq!(
            parse_version("v1.99999999999").map(Version::minor),
            Some(crate::level::LATEST_MINOR)
        );
        assert_eq!(parse_version("v1.0"), Some(Version::Minor(0)));
        for bad in ["v1.", "v1.01", "v2.0", "V1.2", " v1.2", "v1.2 "] {
            assert_eq!(parse_version(bad), None, "{bad}");
        }
    }

    #[test]
    fn finds_misspelt_labels() {
        let l = labels(&[(ENFORCE, "baseline"), ("pss.tollgate.dev/enfroce", "x")]);
        assert_eq!(
            unknown_labels(&l).collect::<Vec<_>>(),
            ["pss.tollgate.dev/enfroce"]
        );
    }
}
