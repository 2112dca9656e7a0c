# Tollgate compliance packs: shared helpers and the entry point.
#
# Every rule lives in package tollgate.compliance and adds entries to
# `violation`:
#
#   {"rule": ID, "msg": TEXT, "path": FIELD, "container": NAME}
#
# where ID is a rule of packs/catalogue.yaml (the catalogue supplies the
# controls), TEXT says what is wrong and how to fix it, FIELD is the dotted
# path of the field at fault from the object's root and NAME the container
# at fault ("" when the violation is not about one). Rules whose condition
# does not arise for this object (no regulated data, no volumes, a Job for
# the probe rule) add their ID to `inapplicable`, so the evidence report
# does not count a vacuous pass.
#
# The host evaluates data.tollgate.compliance.result once per object, with:
#
#   input.object     the Kubernetes object
#   input.kind       its kind
#   input.pod        {"metadata", "spec"} of its pod (template), for kinds
#                    that carry one; absent otherwise
#   input.podPath    where that pod sits in the object ("spec.template.")
#   input.images     every image of the pod, parsed (see images.rego)
#   input.namespace  {"name", "labels", "annotations"} of its namespace
#   input.rules      {ID: true} for every rule enabled for this namespace
#   input.params     the resolved compliance.parameters
#
# Only enabled rules run: each starts with input.rules[ID].
#
# For kinds with a pod, object and pod are projections holding the fields
# the packs read (metadata name, namespace, labels, annotations; the pod
# spec's containers with name, image, env name/value, resources, probes (as
# true when set), securityContext readOnlyRootFilesystem and runAsUser; the
# pod's securityContext runAsUser, service account fields, nodeSelector,
# nodeAffinity, os, volume names and ephemeral volumes, restartPolicy;
# StatefulSet volumeClaimTemplates). A rule that reads another field adds it
# to the projection in policies/src/compliance/input.rs.

package tollgate.compliance

import rego.v1

result := {
	"violations": violation,
	"inapplicable": inapplicable,
}

spec := input.pod.spec

pod_labels := object.get(input.pod, ["metadata", "labels"], {})

pod_annotations := object.get(input.pod, ["metadata", "annotations"], {})

object_labels := object.get(input.object, ["metadata", "labels"], {})

object_annotations := object.get(input.object, ["metadata", "annotations"], {})

# The container lists of the pod, by field name (only those present):
# rules iterate
#   some list, cs in pod_containers
#   some i, c in cs
# which is much cheaper than building a list of all containers first.
pod_containers := object.filter(spec, ["initContainers", "containers", "ephemeralContainers"])

# Ephemeral containers take no resources and no probes.
pod_main_containers := object.filter(spec, ["initContainers", "containers"])

# The dotted path of a container.
container_path(list, i) := sprintf("%sspec.%s[%d]", [input.podPath, list, i])

windows if spec.os.name == "windows"

# A value of an annotation on the object or on its pod template.
annotation(key) := object_annotations[key]

annotation(key) := pod_annotations[key] if not object_annotations[key]

# A non-empty annotation value, after trimming.
has_reason(key) if trim_space(annotation(key)) != ""

# The data classification of the workload, lower-cased: the object's label,
# else its pod template's.
classification := lower(object_labels["data.tollgate.dev/classification"])

classification := lower(pod_labels["data.tollgate.dev/classification"]) if {
	not object_labels["data.tollgate.dev/classification"]
}

# A list of strings, for messages: "a, b, c", or "(none configured)".
listing(xs) := concat(", ", xs) if count(xs) > 0

listing(xs) := "(none configured)" if count(xs) == 0
