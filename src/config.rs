//! The config file (`--config FILE`): one YAML document,
//! `apiVersion: tollgate.dev/v1alpha1`, `kind: TollgateConfig`, with a
//! section per part of Tollgate (`webhook:`, `policy:`, `audit:`, `injection:`). Every section and
//! field is optional; unknown fields are errors that name the file, the
//! field and its line.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde::Deserialize;
use tollgate_policies::config::PolicyConfig;
use tollgate_webhook::Settings;
use tollgate_webhook::inject::InjectionConfig;

/// The config file's `apiVersion`.
pub const API_VERSION: &str = "tollgate.dev/v1alpha1";
/// The config file's `kind`.
pub const KIND: &str = "TollgateConfig";

/// The whole config file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TollgateConfig {
    /// Must be [`API_VERSION`].
    #[serde(default)]
    pub api_version: String,
    /// Must be [`KIND`].
    #[serde(default)]
    pub kind: String,
    /// The admission webhook server.
    #[serde(default)]
    pub webhook: Settings,
    /// The policies the webhook and `tollgate check` evaluate.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// The audit journal and its exporters (used with `--audit-dir`).
    #[serde(default)]
    pub audit: tollgate_audit::AuditConfig,
    /// Live cluster state (used with `tollgate webhook --in-cluster`).
    #[serde(default)]
    pub cluster: tollgate_cluster::ClusterSettings,
    /// The directory of the config file: relative paths in it are resolved
    /// against it.
    #[serde(skip)]
    pub base_dir: Option<PathBuf>,
    /// Sidecar injection into agent pods.
    #[serde(default)]
    pub injection: InjectionConfig,
}

impl TollgateConfig {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> anyhow::Result<TollgateConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let mut config =
            Self::parse(&text).with_context(|| format!("config file {}", path.display()))?;
        config.base_dir = path.parent().map(Path::to_path_buf);
        Ok(config)
    }

    /// Where Gatekeeper constraints are read from: `policy.constraints.paths`
    /// (relative to the config file) followed by `extra` (`--constraints`).
    pub fn constraint_paths(&self, extra: &[PathBuf]) -> Vec<PathBuf> {
        self.policy
            .constraints
            .paths
            .iter()
            .map(|p| self.resolve(p))
            .chain(extra.iter().cloned())
            .collect()
    }

    /// `path` as written in the config file: relative to the file's
    /// directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        match &self.base_dir {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_path_buf(),
        }
    }

    /// Parses and checks config text.
    pub fn parse(text: &str) -> anyhow::Result<TollgateConfig> {
        // Syntax first, so a syntax error is reported as one and not as
        // whatever field the typed reader was in when it met it.
        yaml_serde::from_str::<yaml_serde::Value>(text)
            .map_err(|e| anyhow::anyhow!("YAML syntax error: {e}"))?;
        // Typed from the text again: its errors carry the line and column.
        let config: TollgateConfig =
            yaml_serde::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        if config.api_version != API_VERSION {
            bail!(
                "apiVersion: expected {API_VERSION:?}, found {:?}",
                config.api_version
            );
        }
        if config.kind != KIND {
            bail!("kind: expected {KIND:?}, found {:?}", config.kind);
        }
        config
            .policy
            .validate()
            .map_err(|e| anyhow::anyhow!("policy.{e}"))?;
        config
            .webhook
            .validate()
            .map_err(|e| anyhow::anyhow!("webhook.{e}"))?;
        config
            .audit
            .validate()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        config
            .injection
            .validate()
            .map_err(|e| anyhow::anyhow!("injection.{e}"))?;
        Ok(config)
    }

    /// The config used without `--config`: every default.
    pub fn builtin() -> TollgateConfig {
        TollgateConfig {
            api_version: API_VERSION.to_owned(),
            kind: KIND.to_owned(),
            ..TollgateConfig::default()
        }
    }

    /// Loads `path`, or the built-in config when there is none.
    pub fn load_or_builtin(path: Option<&Path>) -> anyhow::Result<TollgateConfig> {
        match path {
            Some(p) => Self::load(p),
            None => Ok(Self::builtin()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_parses_and_differs_from_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/config/tollgate.yaml");
        let config = TollgateConfig::load(&path).unwrap();
        assert_ne!(config.policy, PolicyConfig::default());
        assert_ne!(config.webhook, Settings::default());
        assert!(config.injection.interception);
        assert_eq!(
            config.injection.default_action_policy.as_deref(),
            Some("agent-baseline")
        );
    }

    #[test]
    fn the_audit_example_is_a_whole_config_file() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/audit/tollgate.yaml");
        let config = TollgateConfig::load(&path).unwrap();
        assert_ne!(config.audit, tollgate_audit::AuditConfig::default());
    }

    #[test]
    fn relative_paths_resolve_against_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tollgate.yaml");
        std::fs::write(
            &file,
            "apiVersion: tollgate.dev/v1alpha1\nkind: TollgateConfig\npolicy:\n  constraints: {paths: [gk]}\n",
        )
        .unwrap();
        let config = TollgateConfig::load(&file).unwrap();
        let paths = config.constraint_paths(&[PathBuf::from("/x")]);
        assert_eq!(paths, vec![dir.path().join("gk"), PathBuf::from("/x")]);
        assert_eq!(config.resolve(Path::new("/abs")), PathBuf::from("/abs"));
    }

    #[test]
    fn errors_name_the_field_and_the_line() {
        let cases = [
            (
                "apiVersion: tollgate.dev/v1alpha1\nkind: TollgateConfig\nwebhok: {}\n",
                "unknown field `webhok`",
            ),
            (
                "apiVersion: tollgate.dev/v1\nkind: TollgateConfig\n",
                "apiVersion: expected",
            ),
            (
                "apiVersion: tollgate.dev/v1alpha1\nkind: Config\n",
                "kind: expected",
            ),
            (
                "apiVersion: tollgate.dev/v1alpha1\nkind: TollgateConfig\npolicy:\n  podSecurity:\n    enforce: {level: strict}\n",
                "line 5",
            ),
            (
                "apiVersion: tollgate.dev/v1alpha1\nkind: TollgateConfig\nwebhook:\n  limits: {bodyReadTimeout: 10}\n",
                "invalid duration",
            ),
            (
                "apiVersion: tollgate.dev/v1alpha1\nkind: TollgateConfig\nwebhook:\n  tls: {certFile: a.crt}\n",
                "webhook.tls.keyFile: is required with tls.certFile",
            ),
            (
                "apiVersion: tollgate.dev/v1alpha1\nkind: TollgateConfig\npolicy:\n  podSecurity:\n    warn: {kinds: []}\n",
                "policy.podSecurity.warn.kinds",
            ),
            (
                "apiVersion: tollgate.dev/v1alpha1\nkind: TollgateConfig\ninjection:\n  mode: sidecar\n",
                "line 4",
            ),
            (
                "apiVersion: tollgate.dev/v1alpha1\nkind: TollgateConfig\ninjection:\n  proxyPort: 15090\n",
                "injection.metricsPort: must differ from proxyPort",
            ),
            (
                "apiVersion: tollgate.dev/v1alpha1\nkind: TollgateConfig\ninjection:\n  excludedNamespaces: [Tollgate]\n",
                "injection.excludedNamespaces",
            ),
            (
                "apiVersion: tollgate.dev/v1alpha1\nkind: TollgateConfig\ninjection:\n  imagePulPolicy: Always\n",
                "unknown field `imagePulPolicy`",
            ),
            ("- a\n- b\n", "invalid type"),
        ];
        for (text, want) in cases {
            let err = format!("{:#}", TollgateConfig::parse(text).unwrap_err());
            assert!(err.contains(want), "{text:?}: {err} should mention {want}");
        }
    }
}
