# Container hardening beyond Pod Security restricted: a read-only root
# filesystem and an explicit non-root UID. Windows pods are not checked.

package tollgate.compliance

import rego.v1

violation contains v if {
	input.rules["read-only-root-filesystem"]
	not windows
	some list, cs in pod_containers
	some i, c in cs
	object.get(c, ["securityContext", "readOnlyRootFilesystem"], false) != true
	v := {
		"rule": "read-only-root-filesystem",
		"path": concat("", [container_path(list, i), ".securityContext.readOnlyRootFilesystem"]),
		"container": c.name,
		"msg": sprintf(
			"container %q has a writable root filesystem; set securityContext.readOnlyRootFilesystem: true and mount an emptyDir where it writes (e.g. /tmp)",
			[c.name],
		),
	}
}

violation contains v if {
	input.rules["run-as-non-root-uid"]
	not windows
	some list, cs in pod_containers
	some i, c in cs
	uid := object.get(c, ["securityContext", "runAsUser"], pod_uid)
	not is_number(uid)
	v := uid_violation(list, i, c, uid)
}

violation contains v if {
	input.rules["run-as-non-root-uid"]
	not windows
	some list, cs in pod_containers
	some i, c in cs
	uid := object.get(c, ["securityContext", "runAsUser"], pod_uid)
	is_number(uid)
	uid <= 0
	v := uid_violation(list, i, c, uid)
}

uid_violation(list, i, c, uid) := {
	"rule": "run-as-non-root-uid",
	"path": concat("", [container_path(list, i), ".securityContext.runAsUser"]),
	"container": c.name,
	"msg": sprintf(
		"container %q %s; set securityContext.runAsUser to a non-zero UID (e.g. 65532) on the container or the pod",
		[c.name, uid_state(uid)],
	),
}

# The pod's runAsUser, which containers inherit unless they set their own.
pod_uid := object.get(spec, ["securityContext", "runAsUser"], null)

uid_state(0) := "runs as root (runAsUser: 0)"

uid_state(null) := "has no explicit UID (runAsUser is unset, so the image decides)"

uid_state(uid) := sprintf("has an invalid runAsUser %v", [uid]) if {
	uid != 0
	uid != null
}
