//! The names the injected pod shape is built from: labels, annotations,
//! the sidecar container, its volumes and where they are mounted. Shared
//! with the Helm chart and documented in the README.

/// Namespace or pod label turning injection on (`enabled`), off
/// (`disabled`), or, on a namespace, on without opt-out (`enforced`).
pub const LABEL_INJECT: &str = "tollgate.dev/inject";
/// ConfigMap label marking a policy (ActionPolicy, OSSA manifest, sidecar
/// config) only policy authors may write.
pub const LABEL_POLICY: &str = "tollgate.dev/policy";
/// Pod annotation naming the ConfigMap with the pod's ActionPolicy.
pub const ANNOTATION_ACTION_POLICY: &str = "tollgate.dev/action-policy";
/// Pod annotation naming the ConfigMap with the pod's OSSA agent manifest.
pub const ANNOTATION_OSSA: &str = "tollgate.dev/ossa-manifest";
/// Pod annotation recording the injected template's version.
pub const ANNOTATION_VERSION: &str = "tollgate.dev/injected-version";
/// The audit annotation (`auditAnnotations`) with the injection result.
pub const AUDIT_ANNOTATION: &str = "injection";

/// The sidecar container's name.
pub const SIDECAR_NAME: &str = "tollgate-sidecar";
/// The template's revision: bumped whenever the shape of the injected pod
/// changes in a way the config does not express.
pub const TEMPLATE_REVISION: &str = "v1";

/// The ActionPolicy ConfigMap volume.
pub const VOLUME_POLICY: &str = "tollgate-policy";
/// The OSSA manifest ConfigMap volume.
pub const VOLUME_OSSA: &str = "tollgate-ossa";
/// The audit spool: only the sidecar mounts it.
pub const VOLUME_AUDIT: &str = "tollgate-audit";
/// The per-pod interception CA key: only the sidecar mounts it.
pub const VOLUME_CA: &str = "tollgate-ca";
/// The trust bundle the sidecar writes and agents read.
pub const VOLUME_TRUST: &str = "tollgate-trust";
/// The pod's labels and annotations (downward API).
pub const VOLUME_PODINFO: &str = "tollgate-podinfo";

/// Where the ActionPolicy ConfigMap is mounted.
pub const POLICY_PATH: &str = "/etc/tollgate/policy";
/// Where the OSSA ConfigMap is mounted.
pub const OSSA_PATH: &str = "/etc/tollgate/ossa";
/// Where the audit spool is mounted.
pub const AUDIT_PATH: &str = "/var/lib/tollgate/audit";
/// Where the interception CA lives.
pub const CA_PATH: &str = "/var/run/tollgate/ca";
/// Where the trust bundle is written (and read by agents).
pub const TRUST_PATH: &str = "/var/run/tollgate/trust";
/// The trust bundle's file name.
pub const TRUST_BUNDLE: &str = "ca-bundle.crt";
/// Where the sidecar's own config file (`injection.sidecarConfig`) is
/// mounted.
pub const CONFIG_PATH: &str = "/etc/tollgate/config";
/// The sidecar's own config volume.
pub const VOLUME_CONFIG: &str = "tollgate-config";
/// Where the downward-API files are mounted.
pub const PODINFO_PATH: &str = "/etc/tollgate/podinfo";

/// Volumes no container but the sidecar may mount.
pub const SIDECAR_ONLY_VOLUMES: [&str; 2] = [VOLUME_AUDIT, VOLUME_CA];
