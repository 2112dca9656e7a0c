# Availability: resource requests and limits, health probes.

package tollgate.compliance

import rego.v1

violation contains v if {
	input.rules["container-resources"]
	some list, cs in pod_main_containers
	some i, c in cs
	resources := object.get(c, "resources", {})
	not resources_complete(resources)
	missing := missing_resources(resources)
	count(missing) > 0
	v := {
		"rule": "container-resources",
		"path": concat("", [container_path(list, i), ".resources"]),
		"container": c.name,
		"msg": sprintf(
			"container %q does not set resources %s; set requests and limits, e.g. resources: {requests: {cpu: 100m, memory: 128Mi}, limits: {cpu: 500m, memory: 256Mi}}",
			[c.name, concat(", ", missing)],
		),
	}
}

# The common case, tested first: limits set (requests default to them).
resources_complete(r) if {
	object.get(r, ["limits", "memory"], null) != null
	object.get(r, ["limits", "cpu"], null) != null
}

# The requests and limits a container's resources lack. Kubernetes defaults
# a missing request to the limit, so a limit satisfies its request too.
missing_resources(r) := [name |
	some name in resource_names
	not resource_set(r, name)
]

resource_names := ["requests.cpu", "requests.memory", "limits.cpu", "limits.memory"] if {
	input.params.requireCpuLimit
} else := ["requests.cpu", "requests.memory", "limits.memory"]

resource_set(r, "requests.cpu") if object.get(r, ["requests", "cpu"], null) != null

resource_set(r, "requests.cpu") if object.get(r, ["limits", "cpu"], null) != null

resource_set(r, "requests.memory") if object.get(r, ["requests", "memory"], null) != null

resource_set(r, "requests.memory") if object.get(r, ["limits", "memory"], null) != null

resource_set(r, "limits.cpu") if object.get(r, ["limits", "cpu"], null) != null

resource_set(r, "limits.memory") if object.get(r, ["limits", "memory"], null) != null

violation contains v if {
	input.rules["health-probes"]
	long_running
	some i, c in object.get(spec, "containers", [])
	missing := [probe | some probe in ["livenessProbe", "readinessProbe"]; object.get(c, probe, null) == null]
	count(missing) > 0
	v := {
		"rule": "health-probes",
		"path": container_path("containers", i),
		"container": c.name,
		"msg": sprintf(
			"container %q has no %s; add them so failures are detected and the container is restarted or taken out of service, e.g. livenessProbe: {httpGet: {path: /healthz, port: 8080}}",
			[c.name, concat(" or ", missing)],
		),
	}
}

inapplicable contains "health-probes" if {
	input.rules["health-probes"]
	input.pod
	not long_running
}

# Controllers that keep pods running, and Pods that restart always.
long_running if input.kind in {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController"}

long_running if {
	input.kind == "Pod"
	object.get(spec, "restartPolicy", "Always") == "Always"
}
