//! The view of a pod the checks read (every container of every kind, with
//! its position for field paths) and the report they write violations to.

use std::fmt;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EphemeralContainer, Lifecycle, PodSecurityContext, PodSpec, Probe,
    SecurityContext,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::PssViolation;
use super::registry::Check;
use crate::Level;

/// The value of `spec.os.name` that marks a Windows pod.
const WINDOWS: &str = "windows";

/// A pod under evaluation.
pub(crate) struct PodView<'a> {
    pub meta: &'a ObjectMeta,
    pub spec: &'a PodSpec,
}

/// Which list of the pod spec a container is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContainerList {
    Init,
    Regular,
    Ephemeral,
}

/// One container of any kind, with where it sits in the pod spec.
#[derive(Clone, Copy)]
pub(crate) struct ContainerRef<'a> {
    pub list: ContainerList,
    pub index: usize,
    pub name: &'a str,
    pub security_context: Option<&'a SecurityContext>,
    pub ports: &'a [ContainerPort],
    pub liveness_probe: Option<&'a Probe>,
    pub readiness_probe: Option<&'a Probe>,
    pub startup_probe: Option<&'a Probe>,
    pub lifecycle: Option<&'a Lifecycle>,
}

/// Collects the violations of one check.
pub(crate) struct Report<'a> {
    check: &'static Check,
    level: Level,
    minor: u16,
    out: &'a mut Vec<PssViolation>,
}

impl<'a> PodView<'a> {
    pub fn new(meta: &'a ObjectMeta, spec: &'a PodSpec) -> Self {
        PodView { meta, spec }
    }

    /// Every container, in Pod Security Admission's order: init containers,
    /// containers, then ephemeral containers.
    pub fn containers(&self) -> impl Iterator<Item = ContainerRef<'a>> + 'a {
        let spec = self.spec;
        let init = spec
            .init_containers
            .as_deref()
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(i, c)| ContainerRef::regular(ContainerList::Init, i, c));
        let regular = spec
            .containers
            .iter()
            .enumerate()
            .map(|(i, c)| ContainerRef::regular(ContainerList::Regular, i, c));
        let ephemeral = spec
            .ephemeral_containers
            .as_deref()
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(i, c)| ContainerRef::ephemeral(i, c));
        init.chain(regular).chain(ephemeral)
    }

    /// The pod-level security context, if any.
    pub fn security_context(&self) -> Option<&'a PodSecurityContext> {
        self.spec.security_context.as_ref()
    }

    /// True for pods that declare `spec.os.name: windows`, the only signal
    /// Pod Security Admission uses for its Windows exemptions.
    pub fn is_windows(&self) -> bool {
        self.spec.os.as_ref().is_some_and(|os| os.name == WINDOWS)
    }

    /// True for pods in a user namespace (`spec.hostUsers: false`), which
    /// some checks relax from v1.35 (KEP-127).
    pub fn in_user_namespace(&self) -> bool {
        self.spec.host_users == Some(false)
    }

    /// The pod's annotations, in key order.
    pub fn annotations(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.meta
            .annotations
            .iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl<'a> ContainerRef<'a> {
    fn regular(list: ContainerList, index: usize, c: &'a Container) -> Self {
        ContainerRef {
            list,
            index,
            name: &c.name,
            security_context: c.security_context.as_ref(),
            ports: c.ports.as_deref().unwrap_or_default(),
            liveness_probe: c.liveness_probe.as_ref(),
            readiness_probe: c.readiness_probe.as_ref(),
            startup_probe: c.startup_probe.as_ref(),
            lifecycle: c.lifecycle.as_ref(),
        }
    }

    fn ephemeral(index: usize, c: &'a EphemeralContainer) -> Self {
        ContainerRef {
            list: ContainerList::Ephemeral,
            index,
            name: &c.name,
            security_context: c.security_context.as_ref(),
            ports: c.ports.as_deref().unwrap_or_default(),
            liveness_probe: c.liveness_probe.as_ref(),
            readiness_probe: c.readiness_probe.as_ref(),
            startup_probe: c.startup_probe.as_ref(),
            lifecycle: c.lifecycle.as_ref(),
        }
    }

    /// The field path of `rest` inside this container, relative to the pod:
    /// `spec.initContainers[0].securityContext.privileged`.
    pub fn path(&self, rest: &str) -> String {
        format!("spec.{}[{}].{rest}", self.list.field(), self.index)
    }

    /// How to name the container in a message: `container "agent"`,
    /// `init container "setup"`, `ephemeral container "debug"`.
    pub fn label(&self) -> ContainerLabel<'a> {
        ContainerLabel(self.list, self.name)
    }
}

impl ContainerList {
    /// The pod spec field holding the list.
    pub fn field(self) -> &'static str {
        match self {
            ContainerList::Init => "initContainers",
            ContainerList::Regular => "containers",
            ContainerList::Ephemeral => "ephemeralContainers",
        }
    }
}

/// Displays a container with its kind, for messages.
#[derive(Clone, Copy)]
pub(crate) struct ContainerLabel<'a>(ContainerList, &'a str);

impl fmt::Display for ContainerLabel<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.0 {
            ContainerList::Init => "init container",
            ContainerList::Regular => "container",
            ContainerList::Ephemeral => "ephemeral container",
        };
        write!(f, "{kind} {:?}", self.1)
    }
}

impl<'a> Report<'a> {
    pub fn new(
        check: &'static Check,
        level: Level,
        minor: u16,
        out: &'a mut Vec<PssViolation>,
    ) -> Self {
        Report {
            check,
            level,
            minor,
            out,
        }
    }

    /// The policy minor version under evaluation.
    pub fn minor(&self) -> u16 {
        self.minor
    }

    /// Reports a violation of the pod as a whole.
    pub fn pod(&mut self, path: String, message: fmt::Arguments<'_>) {
        self.push(None, path, message);
    }

    /// Reports a violation by one container.
    pub fn container(&mut self, c: &ContainerRef<'_>, path: String, message: fmt::Arguments<'_>) {
        self.push(Some(c.name), path, message);
    }

    /// Reports a violation with an explicit container (or none).
    pub fn push(&mut self, container: Option<&str>, path: String, message: fmt::Arguments<'_>) {
        let message = format!("{message} ({}, v1.{})", self.level, self.minor);
        self.out.push(PssViolation {
            check: self.check.id,
            level: self.check.level,
            container: container.map(str::to_owned),
            path,
            message,
        });
    }
}
