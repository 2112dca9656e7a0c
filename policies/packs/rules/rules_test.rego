# Unit tests of the compliance rules, run with `tollgate test policies/packs`
# (like `opa test`): for each rule tested, an input that violates it and one
# that does not. Inputs have the shape the host builds (see lib.rego): a
# compliant Deployment's projection, changed one field at a time.
#
# Not part of the packs the product loads (compliance.rs lists those).

package tollgate.compliance_test

import rego.v1

import data.tollgate.compliance

# The rules that report a violation for `inp`.
found(inp) := rules if {
	vs := compliance.violation with input as inp
	rules := {v.rule | some v in vs}
}

# The rules `inp` makes inapplicable.
inapplicable(inp) := rules if {
	rules := compliance.inapplicable with input as inp
}

all_rules := {
	"image-registry": true, "image-pinned": true, "container-resources": true,
	"health-probes": true, "env-plaintext-secret": true, "service-account-token": true,
	"default-service-account": true, "read-only-root-filesystem": true,
	"run-as-non-root-uid": true, "classified-data-audit": true,
	"personal-data-residency": true, "ingress-tls": true, "service-exposure": true,
	"storage-encrypted": true,
}

params := {
	"allowedRegistries": ["ghcr.io/acme"],
	"allowedRegistryPrefixes": ["ghcr.io/acme/"],
	"requireDigest": false,
	"requireCpuLimit": true,
	"allowedStorageClasses": ["encrypted-gp3"],
	"allowedRegions": ["eu-west-1"],
	"auditedClassifications": ["phi", "pci", "personal"],
	"residencyClassifications": ["personal"],
	"sidecarContainerName": "tollgate-sidecar",
}

good_image := "ghcr.io/acme/web:1.4.2"

images := {
	good_image: {"registry": "ghcr.io", "repository": "ghcr.io/acme/web", "tag": "1.4.2", "digest": ""},
	"ghcr.io/acme/web:latest": {"registry": "ghcr.io", "repository": "ghcr.io/acme/web", "tag": "latest", "digest": ""},
	"nginx:1.25": {"registry": "docker.io", "repository": "docker.io/library/nginx", "tag": "1.25", "digest": ""},
}

good_container := {
	"name": "web",
	"image": good_image,
	"resources": {
		"requests": {"cpu": "100m", "memory": "128Mi"},
		"limits": {"cpu": "500m", "memory": "256Mi"},
	},
	"livenessProbe": true,
	"readinessProbe": true,
	"securityContext": {"readOnlyRootFilesystem": true, "runAsUser": 10001},
}

good_spec := {
	"serviceAccountName": "web",
	"automountServiceAccountToken": false,
	"containers": [good_container],
}

# A Deployment whose pod spec is `spec` and pod labels `labels`.
deployment(spec, labels) := {
	"object": {"metadata": {"name": "web", "namespace": "team"}},
	"kind": "Deployment",
	"pod": {"metadata": {"labels": labels, "annotations": {}}, "spec": spec},
	"podPath": "spec.template.",
	"images": images,
	"namespace": {"name": "team", "labels": {}, "annotations": {}},
	"rules": all_rules,
	"params": params,
}

# The compliant Deployment with its container changed.
with_container(c) := deployment(object.union(good_spec, {"containers": [c]}), {})

# A kind without a pod, passed whole.
other(kind, obj) := {
	"object": obj,
	"kind": kind,
	"images": {},
	"namespace": {"name": "team", "labels": {}, "annotations": {}},
	"rules": all_rules,
	"params": params,
}

test_a_compliant_deployment_passes_every_rule if {
	count(found(deployment(good_spec, {}))) == 0
}

test_container_resources if {
	"container-resources" in found(with_container(object.remove(good_container, ["resources"])))
	not "container-resources" in found(deployment(good_spec, {}))
}

test_health_probes if {
	"health-probes" in found(with_container(object.remove(good_container, ["readinessProbe"])))
	not "health-probes" in found(deployment(good_spec, {}))
}

test_health_probes_not_applicable_to_jobs if {
	job := object.union(with_container(object.remove(good_container, ["readinessProbe"])), {"kind": "Job"})
	not "health-probes" in found(job)
	"health-probes" in inapplicable(job)
}

test_service_account_token_with_a_reason if {
	mounted := object.union(good_spec, {"automountServiceAccountToken": true})
	inp := object.union(deployment(mounted, {}), {"pod": {"metadata": {"annotations": {
		"compliance.tollgate.dev/automount-token-reason": "reads ConfigMaps",
	}}}})
	not "service-account-token" in found(inp)
}

test_ingress_tls if {
	plain := {"metadata": {"name": "web"}, "spec": {"rules": [{"host": "web.example.com"}]}}
	"ingress-tls" in found(other("Ingress", plain))
	tls := object.union(plain, {"spec": {"tls": [{"hosts": ["web.example.com"]}]}})
	not "ingress-tls" in found(other("Ingress", tls))
}

test_storage_encrypted if {
	plain := {"metadata": {"name": "data"}, "spec": {"storageClassName": "gp2"}}
	"storage-encrypted" in found(other("PersistentVolumeClaim", plain))
	encrypted := {"metadata": {"name": "data"}, "spec": {"storageClassName": "encrypted-gp3"}}
	not "storage-encrypted" in found(other("PersistentVolumeClaim", encrypted))
	default_class := {"metadata": {"name": "data"}, "spec": {}}
	"storage-encrypted" in found(other("PersistentVolumeClaim", default_class))
}

# Only enabled rules run.
test_disabled_rules_do_not_run if {
	inp := object.union(with_container(object.union(good_container, {"image": "nginx:1.25"})), {"rules": {"image-registry": false}})
	not "image-registry" in found(inp)
	count(found(object.remove(inp, ["rules"]))) == 0
}
