//! Checks that keep a pod off the host: host namespaces, host ports,
//! Windows HostProcess containers, and probes or lifecycle hooks aimed at
//! another host.

use k8s_openapi::api::core::v1::{HTTPGetAction, TCPSocketAction};

use super::pod::{ContainerRef, PodView, Report};

/// `hostNamespaces` (baseline, v1.0+): sharing the host's network, PID or
/// IPC namespace is forbidden. Allowed: undefined or `false`.
pub(crate) fn host_namespaces(pod: &PodView<'_>, report: &mut Report<'_>) {
    let spec = pod.spec;
    let fields = [
        ("hostNetwork", spec.host_network, "network"),
        ("hostPID", spec.host_pid, "process (PID)"),
        ("hostIPC", spec.host_ipc, "IPC"),
    ];
    for (field, value, what) in fields {
        if value == Some(true) {
            report.pod(
                format!("spec.{field}"),
                format_args!(
                    "pod must not set spec.{field}=true (it shares the node's {what} namespace); remove it or set it to false"
                ),
            );
        }
    }
}

/// `hostPorts` (baseline, v1.0+): containers must not bind host ports.
/// Allowed: undefined or `0`.
pub(crate) fn host_ports(pod: &PodView<'_>, report: &mut Report<'_>) {
    for c in pod.containers() {
        for (i, port) in c.ports.iter().enumerate() {
            let Some(host_port) = port.host_port.filter(|p| *p != 0) else {
                continue;
            };
            report.container(
                &c,
                c.path(&format!("ports[{i}].hostPort")),
                format_args!(
                    "{} must not set ports[{i}].hostPort={host_port}; remove hostPort and expose the port through a Service",
                    c.label()
                ),
            );
        }
    }
}

/// `windowsHostProcess` (baseline, v1.0+): Windows HostProcess containers
/// have full access to the node. Allowed: undefined or `false`, at pod and
/// container level.
pub(crate) fn windows_host_process(pod: &PodView<'_>, report: &mut Report<'_>) {
    let pod_level = pod
        .security_context()
        .and_then(|sc| sc.windows_options.as_ref())
        .and_then(|w| w.host_process);
    if pod_level == Some(true) {
        report.pod(
            "spec.securityContext.windowsOptions.hostProcess".to_owned(),
            format_args!(
                "pod must not set spec.securityContext.windowsOptions.hostProcess=true; remove it or set it to false"
            ),
        );
    }
    for c in pod.containers() {
        let host_process = c
            .security_context
            .and_then(|sc| sc.windows_options.as_ref())
            .and_then(|w| w.host_process);
        if host_process == Some(true) {
            report.container(
                &c,
                c.path("securityContext.windowsOptions.hostProcess"),
                format_args!(
                    "{} must not set securityContext.windowsOptions.hostProcess=true; remove it or set it to false",
                    c.label()
                ),
            );
        }
    }
}

/// `hostProbesAndHostLifecycle` (baseline, v1.34+): probes and lifecycle
/// handlers must not name a `host`, which would let the kubelet reach
/// arbitrary addresses on the pod's behalf. Allowed: undefined or `""`.
pub(crate) fn probe_hosts(pod: &PodView<'_>, report: &mut Report<'_>) {
    for c in pod.containers() {
        let probes = [
            ("livenessProbe", c.liveness_probe),
            ("readinessProbe", c.readiness_probe),
            ("startupProbe", c.startup_probe),
        ];
        for (field, probe) in probes {
            if let Some(probe) = probe {
                handler_hosts(
                    &c,
                    field,
                    probe.http_get.as_ref(),
                    probe.tcp_socket.as_ref(),
                    report,
                );
            }
        }
        let Some(lifecycle) = c.lifecycle else {
            continue;
        };
        let hooks = [
            ("lifecycle.postStart", lifecycle.post_start.as_ref()),
            ("lifecycle.preStop", lifecycle.pre_stop.as_ref()),
        ];
        for (field, hook) in hooks {
            if let Some(hook) = hook {
                handler_hosts(
                    &c,
                    field,
                    hook.http_get.as_ref(),
                    hook.tcp_socket.as_ref(),
                    report,
                );
            }
        }
    }
}

fn handler_hosts(
    c: &ContainerRef<'_>,
    field: &str,
    http_get: Option<&HTTPGetAction>,
    tcp_socket: Option<&TCPSocketAction>,
    report: &mut Report<'_>,
) {
    let hosts = [
        ("httpGet", http_get.and_then(|h| h.host.as_deref())),
        ("tcpSocket", tcp_socket.and_then(|t| t.host.as_deref())),
    ];
    for (action, host) in hosts {
        let Some(host) = host.filter(|h| !h.is_empty()) else {
            continue;
        };
        report.container(
            c,
            c.path(&format!("{field}.{action}.host")),
            format_args!(
                "{} must not set {field}.{action}.host ({host:?}); remove host so the kubelet targets the pod's own IP",
                c.label()
            ),
        );
    }
}
