//! Comparing what a pod has with what the template says. The sidecar is
//! compared field for field, every field of the container: a pre-filled
//! or edited sidecar with its own probes, limits, `stdin`, `workingDir`,
//! devices or hooks is not the sidecar. Both sides are first brought to the
//! form the API server stores (its defaults filled in, quantities in one
//! notation, empty values as absent), so a defaulted pod still matches its
//! template. Volumes are compared on the fields that decide what the
//! sidecar reads and where its data goes.

use k8s_openapi::api::core::v1::{Container, EnvVar, Probe, Volume};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde_json::Value;

/// The sidecar fields that differ from the template, by field name
/// (`image`, `livenessProbe`, `stdin`, ...), in the container's field order.
pub fn sidecar_differences(have: &Container, want: &Container) -> Vec<String> {
    container_differences(have, want)
}

/// The fields of two containers that differ once both are in stored form.
pub fn container_differences(have: &Container, want: &Container) -> Vec<String> {
    let as_map = |c: &Container| match serde_json::to_value(stored(c)) {
        Ok(Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    let (have, want) = (as_map(have), as_map(want));
    let mut keys: Vec<&String> = have.keys().chain(want.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| have.get(*k) != want.get(*k))
        .cloned()
        .collect()
}

/// The container as the API server stores it: its defaults filled in, and
/// values that mean "unset" removed.
fn stored(c: &Container) -> Container {
    let mut c = c.clone();
    if c.image_pull_policy.is_none() {
        let image = c.image.as_deref().unwrap_or("");
        let last = image.rsplit('/').next().unwrap_or(image);
        let latest = !image.contains('@') && (!last.contains(':') || last.ends_with(":latest"));
        c.image_pull_policy = Some(if latest { "Always" } else { "IfNotPresent" }.to_owned());
    }
    if c.termination_message_path.is_none() {
        c.termination_message_path = Some("/dev/termination-log".to_owned());
    }
    if c.termination_message_policy.is_none() {
        c.termination_message_policy = Some("File".to_owned());
    }
    for port in c.ports.iter_mut().flatten() {
        if port.protocol.is_none() {
            port.protocol = Some("TCP".to_owned());
        }
    }
    for probe in [
        &mut c.liveness_probe,
        &mut c.readiness_probe,
        &mut c.startup_probe,
    ]
    .into_iter()
    .flatten()
    {
        probe_defaults(probe);
    }
    if let Some(resources) = c.resources.as_mut() {
        if let Some(limits) = &resources.limits {
            let requests = resources.requests.get_or_insert_with(Default::default);
            for (name, limit) in limits {
                requests
                    .entry(name.clone())
                    .or_insert_with(|| limit.clone());
            }
        }
        for map in [resources.requests.as_mut(), resources.limits.as_mut()]
            .into_iter()
            .flatten()
        {
            for q in map.values_mut() {
                *q = canonical(q);
            }
        }
        for map in [&mut resources.requests, &mut resources.limits] {
            if map.as_ref().is_some_and(|m| m.is_empty()) {
                *map = None;
            }
        }
        if resources.claims.as_ref().is_some_and(|v| v.is_empty()) {
            resources.claims = None;
        }
    }
    if let Some(policies) = c.resize_policy.as_mut() {
        policies.retain(|p| p.restart_policy != "NotRequired");
    }
    for flag in [&mut c.stdin, &mut c.stdin_once, &mut c.tty] {
        if *flag == Some(false) {
            *flag = None;
        }
    }
    if c.working_dir.as_deref() == Some("") {
        c.working_dir = None;
    }
    for mount in c.volume_mounts.iter_mut().flatten() {
        if mount.read_only == Some(false) {
            mount.read_only = None;
        }
        if mount.mount_propagation.as_deref() == Some("None") {
            mount.mount_propagation = None;
        }
        if mount.recursive_read_only.as_deref() == Some("Disabled") {
            mount.recursive_read_only = None;
        }
        if mount.sub_path.as_deref() == Some("") {
            mount.sub_path = None;
        }
    }
    if let Some(sc) = c.security_context.as_mut()
        && sc.proc_mount.as_deref() == Some("Default")
    {
        sc.proc_mount = None;
    }
    c.env = Some(normalized_env(c.env.as_deref()));
    macro_rules! none_if_empty {
        ($($field:ident),*) => {$(
            if c.$field.as_ref().is_some_and(|v| v.is_empty()) {
                c.$field = None;
            }
        )*};
    }
    none_if_empty!(
        env,
        env_from,
        ports,
        volume_mounts,
        volume_devices,
        resize_policy,
        command,
        args
    );
    c
}

fn probe_defaults(probe: &mut Probe) {
    probe.timeout_seconds.get_or_insert(1);
    probe.period_seconds.get_or_insert(10);
    probe.success_threshold.get_or_insert(1);
    probe.failure_threshold.get_or_insert(3);
    if let Some(get) = probe.http_get.as_mut() {
        get.scheme.get_or_insert_with(|| "HTTP".to_owned());
        if get.path.as_deref() == Some("") {
            get.path = None;
        }
    }
}

/// A quantity in one notation (its value in scientific notation), so that
/// `0.5` and `500m`, `1024Mi` and `1Gi` compare equal. A quantity that does
/// not parse is kept as written (and so compares by its spelling).
fn canonical(q: &Quantity) -> Quantity {
    match quantity_value(&q.0) {
        Some(v) => Quantity(format!("{v:e}")),
        None => q.clone(),
    }
}

fn quantity_value(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text
        .find(|ch: char| !(ch.is_ascii_digit() || matches!(ch, '.' | '+' | '-')))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0_f64.powi(2),
        "Gi" => 1024.0_f64.powi(3),
        "Ti" => 1024.0_f64.powi(4),
        "Pi" => 1024.0_f64.powi(5),
        "Ei" => 1024.0_f64.powi(6),
        exp => {
            let exp = exp.strip_prefix(['e', 'E'])?;
            10f64.powi(exp.parse::<i32>().ok()?.clamp(-30, 30))
        }
    };
    let v = number * factor;
    v.is_finite().then_some(v)
}

/// An env list in stored form: a `fieldRef` without `apiVersion` is the
/// API server's `v1`, an empty value is no value.
fn normalized_env(list: Option<&[EnvVar]>) -> Vec<EnvVar> {
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
