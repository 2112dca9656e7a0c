# Storage: persistent volumes come from encrypted storage classes.
#
# PersistentVolumeClaims, the volumeClaimTemplates of StatefulSets and the
# generic ephemeral volumes of pods all name a storage class; it must be
# one of compliance.parameters.allowedStorageClasses.

package tollgate.compliance

import rego.v1

# Every claim of the object: path -> claim spec.
claims[path] := claim if {
	input.kind == "PersistentVolumeClaim"
	path := "spec"
	claim := object.get(input.object, "spec", {})
}

claims[path] := t.spec if {
	input.kind == "StatefulSet"
	some i, t in input.object.spec.volumeClaimTemplates
	path := sprintf("spec.volumeClaimTemplates[%d].spec", [i])
}

claims[path] := vol.ephemeral.volumeClaimTemplate.spec if {
	some i, vol in object.get(spec, "volumes", [])
	vol.ephemeral
	path := sprintf("%sspec.volumes[%d].ephemeral.volumeClaimTemplate.spec", [input.podPath, i])
}

violation contains v if {
	input.rules["storage-encrypted"]
	some path, claim in claims
	not storage_class(claim)
	v := storage_violation(path, "does not name a storage class, so the cluster default is used and its encryption cannot be verified")
}

violation contains v if {
	input.rules["storage-encrypted"]
	some path, claim in claims
	class := storage_class(claim)
	not class in input.params.allowedStorageClasses
	v := storage_violation(path, class_state(class))
}

inapplicable contains "storage-encrypted" if {
	input.rules["storage-encrypted"]
	count(claims) == 0
}

storage_violation(path, problem) := {
	"rule": "storage-encrypted",
	"path": concat("", [path, ".storageClassName"]),
	"container": "",
	"msg": sprintf(
		"%s %s; set storageClassName to an encrypted class: %s",
		[claim_text(path), problem, listing(input.params.allowedStorageClasses)],
	),
}

# storageClassName, else the deprecated beta annotation (on a claim
# object); undefined when neither is set (the cluster default class).
storage_class(claim) := claim.storageClassName if {
	is_string(claim.storageClassName)
} else := class if {
	input.kind == "PersistentVolumeClaim"
	class := object_annotations["volume.beta.kubernetes.io/storage-class"]
}

class_state("") := "binds only volumes without a storage class (storageClassName: \"\"), whose encryption cannot be verified"

class_state(class) := sprintf("uses storage class %q, which is not an allowed (encrypted) class", [class]) if class != ""

claim_text("spec") := "the claim"

claim_text(path) := sprintf("the claim at %s", [path]) if path != "spec"
