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

/// A quantity in one notation (its value in billionths), so that `0.5`
/// and `500m`, `1024Mi` and `1Gi` compare equal. A quantity that does not
/// parse, or needs finer than a billionth, is kept as written (and so
/// compares by its spelling).
fn canonical(q: &Quantity) -> Quantity {
    match quantity_nanos(&q.0) {
        Some(v) => Quantity(format!("{v}n")),
        None => q.clone(),
    }
}

/// The value of a Kubernetes quantity in billionths, exactly.
fn quantity_nanos(text: &str) -> Option<i128> {
    let text = text.trim();
    let split = text
        .find(|ch: char| !(ch.is_ascii_digit() || matches!(ch, '.' | '+' | '-')))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let (negative, number) = match number.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, number.strip_prefix('+').unwrap_or(number)),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && fraction.is_empty())
        || fraction.len() > 9
        || !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: i128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let fraction: i128 = format!("{fraction:0<9}").parse().ok()?;
    let nanos = whole.checked_mul(1_000_000_000)?.checked_add(fraction)?;
    let (multiply, divide): (i128, i128) = match suffix {
        "" => (1, 1),
        "n" => (1, 1_000_000_000),
        "u" => (1, 1_000_000),
        "m" => (1, 1_000),
        "k" => (1_000, 1),
        "M" => (1_000_000, 1),
        "G" => (1_000_000_000, 1),
        "T" => (1_000_000_000_000, 1),
        "P" => (1_000_000_000_000_000, 1),
        "E" => (1_000_000_000_000_000_000, 1),
        "Ki" => (1 << 10, 1),
        "Mi" => (1 << 20, 1),
        "Gi" => (1 << 30, 1),
        "Ti" => (1 << 40, 1),
        "Pi" => (1 << 50, 1),
        "Ei" => (1 << 60, 1),
        exp => {
            let exp: i32 = exp.strip_prefix(['e', 'E'])?.parse().ok()?;
            let power = 10_i128.checked_pow(exp.unsigned_abs().min(30))?;
            if exp >= 0 { (power, 1) } else { (1, power) }
        }
    };
    let scaled = nanos.checked_mul(multiply)?;
    // Kubernetes rounds a quantity finer than a billionth up.
    let value = scaled
        .checked_add(divide.checked_sub(1)?)?
        .checked_div(divide)?;
    Some(if negative { -value } else { value })
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

#[cfg(test)]
mod tests {
    use super::quantity_nanos;

    #[test]
    fn quantities_compare_by_value_whatever_their_notation() {
        let same = [
            ("500m", "0.5"),
            ("300m", "0.3"),
            ("1Gi", "1024Mi"),
            ("1k", "1e3"),
            ("2", "2000m"),
            ("1.5Gi", "1536Mi"),
        ];
        for (a, b) in same {
            assert_eq!(quantity_nanos(a), quantity_nanos(b), "{a} {b}");
            assert!(quantity_nanos(a).is_some(), "{a}");
        }
        assert_ne!(quantity_nanos("4Mi"), quantity_nanos("256Mi"));
        for bad in [
            "",
            "abc",
            "1..2",
            "1Zi",
            "1.0000000001",
            "99999999999999999999999E",
        ] {
            assert_eq!(quantity_nanos(bad), None, "{bad}");
        }
    }
}
