# Regulated data: workloads labelled data.tollgate.dev/classification carry
# the audit sidecar, and personal data stays in allowed regions.

package tollgate.compliance

import rego.v1

inject_key := "tollgate.dev/inject"

region_key := "topology.kubernetes.io/region"

violation contains v if {
	input.rules["classified-data-audit"]
	input.pod
	classification in input.params.auditedClassifications
	not audit_sidecar
	v := {
		"rule": "classified-data-audit",
		"path": concat("", [input.podPath, "metadata.labels"]),
		"container": "",
		"msg": sprintf(
			"the workload handles %s data (data.tollgate.dev/classification) but %s; label %smetadata with %s: enabled so every action it takes is recorded",
			[classification, sidecar_state, input.podPath, inject_key],
		),
	}
}

inapplicable contains "classified-data-audit" if {
	input.rules["classified-data-audit"]
	input.pod
	not classification in input.params.auditedClassifications
}

# The sidecar will be injected (the pod asks for it, or the namespace does
# and the pod does not opt out), or is already there. Cheapest tests first.
audit_sidecar := true if {
	pod_labels[inject_key] == "enabled"
} else := true if {
	pod_annotations[inject_key] == "enabled"
} else := true if {
	input.namespace.labels[inject_key] == "enabled"
	not pod_opts_out
} else := true if {
	some cs in pod_containers
	some c in cs
	c.name == input.params.sidecarContainerName
}

pod_opts_out if pod_labels[inject_key] == "disabled"

pod_opts_out if pod_annotations[inject_key] == "disabled"

sidecar_state := "opts out of the audit sidecar (tollgate.dev/inject: disabled)" if {
	pod_opts_out
} else := "does not carry the audit sidecar"

violation contains v if {
	input.rules["personal-data-residency"]
	input.pod
	classification in input.params.residencyClassifications
	region := spec.nodeSelector[region_key]
	not region in input.params.allowedRegions
	v := residency_violation(
		concat("", [input.podPath, "spec.nodeSelector"]),
		sprintf("its nodeSelector pins region %q, which is not allowed", [region]),
	)
}

violation contains v if {
	input.rules["personal-data-residency"]
	input.pod
	classification in input.params.residencyClassifications
	not spec.nodeSelector[region_key]
	not affinity_pinned
	v := residency_violation(concat("", [input.podPath, "spec.affinity.nodeAffinity"]), affinity_problem)
}

residency_violation(path, problem) := {
	"rule": "personal-data-residency",
	"path": path,
	"container": "",
	"msg": sprintf(
		"the workload handles %s data but %s; pin it to allowed regions (%s) with nodeSelector %s: <region> or a required node affinity on that key with operator In",
		[classification, problem, listing(input.params.allowedRegions), region_key],
	),
}

inapplicable contains "personal-data-residency" if {
	input.rules["personal-data-residency"]
	input.pod
	not classification in input.params.residencyClassifications
}

required_terms := object.get(
	spec,
	["affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms"],
	[],
)

# Required node affinity pins the pod when it has terms and every term
# (terms are alternatives) restricts the region to allowed values. (A region
# nodeSelector decides on its own: node affinity can only narrow it.)
affinity_pinned if {
	count(required_terms) > 0
	every term in required_terms {
		term_pinned(term)
	}
}

affinity_problem := "it is not pinned to a region" if {
	count(required_terms) == 0
} else := sprintf("%d of its %d required node affinity terms allow nodes outside the allowed regions", [count(unpinned_terms), count(required_terms)])

unpinned_terms := [i |
	some i, term in required_terms
	not term_pinned(term)
]

term_pinned(term) if {
	some expr in term.matchExpressions
	expr.key == region_key
	expr.operator == "In"
	count(expr.values) > 0
	every value in expr.values {
		value in input.params.allowedRegions
	}
}
