//! Comparing what a pod has with what the template says: the fields of the
//! sidecar and of its volumes that decide what the sidecar enforces and
//! where its data goes. Fields the API server defaults or that do not
//! change enforcement (probes, resources, termination settings) are not
//! compared, so a defaulted pod still matches its template.

use k8s_openapi::api::core::v1::{Container, EnvVar, Volume};

/// The sidecar fields that differ from the template, by field name.
pub fn sidecar_differences(have: &Container, want: &Container) -> Vec<&'static str> {
    let mut out = Vec::new();
    if have.image != want.image {
        out.push("image");
    }
    if have.command != want.command {
        out.push("command");
    }
    if have.args != want.args {
        out.push("args");
    }
    if !same_env(have.env.as_deref(), want.env.as_deref()) {
        out.push("env");
    }
    if have.env_from.as_ref().is_some_and(|e| !e.is_empty()) {
        out.push("envFrom");
    }
    if have.volume_mounts != want.volume_mounts {
        out.push("volumeMounts");
    }
    if have.security_context != want.security_context {
        out.push("securityContext");
    }
    if have.restart_policy != want.restart_policy {
        out.push("restartPolicy");
    }
    if have.lifecycle != want.lifecycle {
        out.push("lifecycle");
    }
    out
}

/// Env lists compare equal when the same names have the same values; a
/// `fieldRef` without `apiVersion` is the API server's `v1`.
fn same_env(have: Option<&[EnvVar]>, want: Option<&[EnvVar]>) -> bool {
    let norm = |list: Option<&[EnvVar]>| -> Vec<EnvVar> {
        list.unwrap_or(&[])
            .iter()
            .cloned()
            .map(|mut e| {
                if let Some(field) = e.value_from.as_mut().and_then(|v| v.field_ref.as_mut())
                    && field.api_version.is_none()
                {
                    field.api_version = Some("v1".to_owned());
                }
                if e.value.as_deref() == Some("") {
                    e.value = None;
                }
                e
            })
            .collect()
    };
    norm(have) == norm(want)
}

/// The volume fields that differ from the template.
pub fn volume_differences(have: &Volume, want: &Volume) -> Vec<&'static str> {
    let mut out = Vec::new();
    let kind = |v: &Volume| -> &'static str {
        if v.empty_dir.is_some() {
            "emptyDir"
        } else if v.config_map.is_some() {
            "configMap"
        } else if v.downward_api.is_some() {
            "downwardAPI"
        } else {
            "other"
        }
    };
    let (hk, wk) = (kind(have), kind(want));
    if hk != wk || hk == "other" {
        out.push("source");
        return out;
    }
    if let (Some(h), Some(w)) = (&have.empty_dir, &want.empty_dir)
        && (h.medium.as_deref().unwrap_or("") != w.medium.as_deref().unwrap_or("")
            || h.size_limit != w.size_limit)
    {
        out.push("emptyDir");
    }
    if let (Some(h), Some(w)) = (&have.config_map, &want.config_map)
        && (h.name != w.name || h.items != w.items || h.optional.unwrap_or(false))
    {
        out.push("configMap");
    }
    if let (Some(h), Some(w)) = (&have.downward_api, &want.downward_api) {
        let paths = |d: &k8s_openapi::api::core::v1::DownwardAPIVolumeSource| {
            d.items
                .iter()
                .flatten()
                .map(|i| {
                    (
                        i.path.clone(),
                        i.field_ref.as_ref().map(|f| f.field_path.clone()),
                        i.resource_field_ref.is_some(),
                    )
                })
                .collect::<Vec<_>>()
        };
        if paths(h) != paths(w) {
            out.push("downwardAPI");
        }
    }
    out
}
