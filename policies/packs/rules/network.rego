# Network exposure: Ingresses terminate TLS for every host; Services
# reachable from outside the cluster carry an approved exception.

package tollgate.compliance

import rego.v1

exposure_reason_annotation := "compliance.tollgate.dev/exposure-reason"

ingress_tls := object.get(input.object, ["spec", "tls"], [])

violation contains v if {
	input.rules["ingress-tls"]
	input.kind == "Ingress"
	some i, rule in object.get(input.object, ["spec", "rules"], [])
	host := object.get(rule, "host", "")
	not host_covered(host)
	v := {
		"rule": "ingress-tls",
		"path": sprintf("spec.rules[%d].host", [i]),
		"container": "",
		"msg": sprintf(
			"%s is served without TLS; add it to spec.tls[].hosts with a certificate Secret, e.g. tls: [{hosts: [%s], secretName: %s-tls}]",
			[host_text(host), host_example(host), object.get(input.object, ["metadata", "name"], "ingress")],
		),
	}
}

violation contains v if {
	input.rules["ingress-tls"]
	input.kind == "Ingress"
	count(object.get(input.object, ["spec", "rules"], [])) == 0
	count(ingress_tls) == 0
	v := {
		"rule": "ingress-tls",
		"path": "spec.tls",
		"container": "",
		"msg": "the Ingress has no spec.tls, so its default backend is served without TLS; add a spec.tls entry with a certificate Secret",
	}
}

violation contains v if {
	input.rules["ingress-tls"]
	input.kind == "Ingress"
	some key in ["nginx.ingress.kubernetes.io/ssl-redirect", "nginx.ingress.kubernetes.io/force-ssl-redirect"]
	lower(object_annotations[key]) == "false"
	count(ingress_tls) > 0
	v := {
		"rule": "ingress-tls",
		"path": sprintf("metadata.annotations[%q]", [key]),
		"container": "",
		"msg": sprintf("the Ingress turns the HTTPS redirect off (%s: \"false\"), so plain HTTP is served too; remove the annotation", [key]),
	}
}

# A host is covered by a TLS entry listing it, or a wildcard *.domain
# listing its parent (one label only). A rule without a host (any host)
# is covered by a TLS entry without hosts (the controller's default
# certificate).
host_covered(host) if {
	host != ""
	some entry in ingress_tls
	some h in object.get(entry, "hosts", [])
	lower(h) == lower(host)
}

host_covered(host) if {
	host != ""
	not startswith(host, "*.")
	some entry in ingress_tls
	some h in object.get(entry, "hosts", [])
	startswith(h, "*.")
	parts := split(host, ".")
	count(parts) > 2
	lower(concat(".", array.slice(parts, 1, count(parts)))) == lower(substring(h, 2, -1))
}

host_covered("") if {
	some entry in ingress_tls
	count(object.get(entry, "hosts", [])) == 0
}

host_text("") := "the rule without a host (any host)"

host_text(host) := sprintf("host %q", [host]) if host != ""

host_example("") := "<host>"

host_example(host) := host if host != ""

violation contains v if {
	input.rules["service-exposure"]
	input.kind == "Service"
	exposure := service_exposure
	trim_space(object.get(object_annotations, exposure_reason_annotation, "")) == ""
	v := {
		"rule": "service-exposure",
		"path": exposure.path,
		"container": "",
		"msg": sprintf(
			"the Service is reachable from outside the cluster (%s) without an approved exception; use type ClusterIP behind an Ingress, or annotate it with %s: <approval and reason>",
			[exposure.what, exposure_reason_annotation],
		),
	}
}

service_exposure := {"path": "spec.type", "what": sprintf("type %s", [input.object.spec.type])} if {
	input.object.spec.type in {"NodePort", "LoadBalancer"}
} else := {"path": "spec.externalIPs", "what": "spec.externalIPs"} if {
	count(input.object.spec.externalIPs) > 0
}
